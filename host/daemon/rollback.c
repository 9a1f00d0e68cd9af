/*
 * rollback.c - probation windows, kept and good copies, refused bytes,
 * and the thread that decides a rollback.
 *
 * The registry tells this file what each plugin file serves
 * (rollback_published, rollback_gone) under its writer lock; dispatch
 * counts answers on the generation itself (rollback_note).  The thread
 * here looks at every window twenty times a second and, when one fails,
 * calls registry_rollback() with no lock of this file held.  It never
 * loads plugin code itself and never logs a call.
 */
#include "rollback.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/loader.h"
#include "core/log.h"
#include "core/thread.h"
#include "registry.h"

/* How often the thread looks at open windows. */
#define TICK_NS 50000000LL
/* Refused bytes remembered (the oldest go first). */
#define REFUSED_MAX 256
#define VERSION_MAX (CMDHOST_NAME_MAX + 1)
#define WHY_MAX 512

/* One copy of a generation's bytes on disk. */
struct copy {
	char path[PATH_MAX];      /* "" when none */
	uint64_t hash;
	char version[VERSION_MAX];
	long long number;
};

/* One plugin file, by name in plugin_dir. */
struct rb_file {
	LIST_ENTRY(rb_file) link;
	char file[NAME_MAX + 1];
	struct rollback_policy pol;
	struct generation *watch; /* on probation: one reference, or NULL */
	int64_t watch_ns;         /* since when (CLOCK_MONOTONIC) */
	int pending;              /* a rollback was asked for */
	struct copy cur;          /* what serves */
	int cur_proven;           /* ...is not on probation */
	struct copy prev;         /* the rollback target */
	/* The last rollback or refusal, while it stands. */
	int rolled_back;
	struct copy bad;          /* path unused */
	char why[WHY_MAX];
	int64_t at_ms;
};

struct refused {
	char file[NAME_MAX + 1];
	uint64_t hash;
	char why[WHY_MAX];
};

struct rollback {
	const struct config *cfg;
	char kept_dir[PATH_MAX];
	char good_dir[PATH_MAX];
	char refused_path[PATH_MAX];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	LIST_HEAD(, rb_file) files;
	struct refused refused[REFUSED_MAX];
	size_t n_refused;
	unsigned next_copy;
	atomic_long rollbacks;
	struct registry *reg;
	pthread_t thread;
	int started, stop;
};

/* ------------------------------------------------------------ judging */

enum rollback_verdict
rollback_judge(const struct rollback_policy *p, int64_t age_ms,
    uint64_t calls, uint64_t fails, unsigned crashes, char *why,
    size_t whylen)
{
	uint64_t min = p->min_calls > 0 ? p->min_calls : 1;
	char dummy[8];

	if (why == NULL) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	if (p->crashes > 0 && crashes >= p->crashes) {
		snprintf(why, whylen, "%u worker crashes within the window "
		    "(rollback_crashes = %u)", crashes, p->crashes);
		return ROLLBACK_NOW;
	}
	/* fails / calls > pct / 100, without a division. */
	if (calls >= min && fails * 100 > (uint64_t)p->pct_5xx * calls) {
		snprintf(why, whylen, "5xx share %llu%% (%llu of %llu calls) "
		    "over rollback_5xx_percent = %u%%", (unsigned long long)
		    (fails * 100 / calls), (unsigned long long)fails,
		    (unsigned long long)calls, p->pct_5xx);
		return ROLLBACK_NOW;
	}
	if (age_ms >= (int64_t)p->window_s * 1000 && calls >= min)
		return ROLLBACK_PROVEN;
	return ROLLBACK_WATCH;
}

/* One key of the policy: [plugin:NAME] over [host]. */
static void
override(const struct config *cfg, const char *plugin, const char *key,
    long long lo, long long hi, unsigned *field, char *bad, size_t badlen)
{
	const char *v = plugin ? config_plugin_value(cfg, plugin, key) : NULL;
	char *end;
	long long n;

	if (v == NULL)
		return;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi) {
		snprintf(bad, badlen, "[plugin:%s] %s = '%s' is not an integer "
		    "in %lld..%lld; the [host] value is used", plugin, key, v,
		    lo, hi);
		return;
	}
	*field = (unsigned)n;
}

void
rollback_policy_of(const struct config *cfg, const char *plugin,
    struct rollback_policy *p, char *bad, size_t badlen)
{
	const char *v = plugin ? config_plugin_value(cfg, plugin, "rollback") :
	    NULL;
	unsigned w;

	bad[0] = '\0';
	p->on = cfg->rollback;
	p->window_s = cfg->rollback_window_s;
	p->min_calls = (unsigned)cfg->rollback_min_calls;
	p->pct_5xx = (unsigned)cfg->rollback_5xx_percent;
	p->crashes = (unsigned)cfg->rollback_crashes;
	if (v != NULL) {
		if (strcasecmp(v, "on") == 0 || strcasecmp(v, "true") == 0 ||
		    strcasecmp(v, "yes") == 0 || strcmp(v, "1") == 0)
			p->on = 1;
		else if (strcasecmp(v, "off") == 0 || strcasecmp(v, "false") ==
		    0 || strcasecmp(v, "no") == 0 || strcmp(v, "0") == 0)
			p->on = 0;
		else
			snprintf(bad, badlen, "[plugin:%s] rollback = '%s' is "
			    "not on or off; the [host] value is used", plugin,
			    v);
	}
	w = (unsigned)p->window_s;
	override(cfg, plugin, "rollback_window_s", 0, 86400 * 31, &w, bad,
	    badlen);
	p->window_s = (int)w;
	override(cfg, plugin, "rollback_min_calls", 0, 100000000,
	    &p->min_calls, bad, badlen);
	override(cfg, plugin, "rollback_5xx_percent", 0, 100, &p->pct_5xx,
	    bad, badlen);
	override(cfg, plugin, "rollback_crashes", 0, 1000000, &p->crashes,
	    bad, badlen);
}

const char *
rollback_hash_text(uint64_t hash, char *buf)
{
	snprintf(buf, 17, "%016llx", (unsigned long long)hash);
	return buf;
}

/* ------------------------------------------------------------ files */

/* Copy fd (from offset 0) to a new file dst (0600).  Returns 0 or -1. */
static int
copy_fd_to(int in, const char *dst)
{
	char block[65536];
	off_t off = 0;
	ssize_t n;
	int out, rc = 0;

	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0)
		return -1;
	for (;;) {
		n = pread(in, block, sizeof(block), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -1 : 0;
			break;
		}
		for (ssize_t w = 0, k; w < n; w += k)
			if ((k = write(out, block + w, (size_t)(n - w))) < 0) {
				if (errno == EINTR) {
					k = 0;
					continue;
				}
				rc = -1;
				goto out;
			}
		off += n;
	}
out:
	if (close(out) < 0)
		rc = -1;
	if (rc < 0)
		unlink(dst);
	return rc;
}

/* Copy the file at src to dst (replaced whole, through a temp name)
 * and check that what landed hashes to `hash`.  Returns 0 or -1. */
static int
copy_file(const char *src, const char *dst, uint64_t hash)
{
	char tmp[PATH_MAX + NAME_MAX + 16];
	uint64_t h;
	int in, rc;

	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	(void)unlink(tmp);
	if ((in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return -1;
	rc = copy_fd_to(in, tmp);
	close(in);
	if (rc == 0 && (loader_hash_file(tmp, &h) < 0 || h != hash))
		rc = -1;
	if (rc == 0 && rename(tmp, dst) < 0)
		rc = -1;
	if (rc < 0)
		(void)unlink(tmp);
	return rc;
}

static void
drop_copy(struct copy *c)
{
	if (c->path[0] != '\0')
		(void)unlink(c->path);
	memset(c, 0, sizeof(*c));
}

/* Make dir (0700) if missing.  Returns 0 or -1. */
static int
make_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -1;
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return -1;
	if (st.st_uid == geteuid() && (st.st_mode & 07777) != 0700)
		(void)chmod(dir, 0700);
	return 0;
}

/* Empty dir of files an earlier run left. */
static void
empty_dir(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	char path[PATH_MAX + NAME_MAX + 2];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		(void)unlink(path);
	}
	closedir(d);
}

/* ------------------------------------------------------ refused store */

/* Write the refused store whole (temp, then rename).  rb->lock held. */
static void
refused_save(struct rollback *rb)
{
	char tmp[PATH_MAX + 8], hex[17];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", rb->refused_path);
	if ((f = fopen(tmp, "we")) == NULL) {
		log_warn("cannot write %s", tmp);
		return;
	}
	fprintf(f, "# cmdhostd: plugin bytes not loaded again (hash file "
	    "reason); delete a line to allow them\n");
	for (size_t i = 0; i < rb->n_refused; i++)
		fprintf(f, "%s %s %s\n", rollback_hash_text(rb->refused[i].hash,
		    hex), rb->refused[i].file, rb->refused[i].why);
	if (fclose(f) != 0 || rename(tmp, rb->refused_path) < 0) {
		log_warn("cannot write %s", rb->refused_path);
		(void)unlink(tmp);
	}
}

/* A file name or reason as one field of a line: no newline in it. */
static void
one_line(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
	for (char *p = dst; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

static void
refused_add(struct rollback *rb, const char *file, uint64_t hash,
    const char *why)
{
	struct refused *e;

	for (size_t i = 0; i < rb->n_refused; i++)
		if (rb->refused[i].hash == hash &&
		    strcmp(rb->refused[i].file, file) == 0) {
			one_line(rb->refused[i].why, WHY_MAX, why);
			return;
		}
	if (rb->n_refused == REFUSED_MAX) {
		memmove(&rb->refused[0], &rb->refused[1],
		    (REFUSED_MAX - 1) * sizeof(rb->refused[0]));
		rb->n_refused--;
	}
	e = &rb->refused[rb->n_refused++];
	one_line(e->file, sizeof(e->file), file);
	e->hash = hash;
	one_line(e->why, sizeof(e->why), why);
}

/* Read the refused store, if there is one.  Lines that do not parse are
 * skipped. */
static void
refused_load(struct rollback *rb)
{
	char line[NAME_MAX + WHY_MAX + 64];
	FILE *f = fopen(rb->refused_path, "re");

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *file, *why, *end;
		unsigned long long h;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		errno = 0;
		h = strtoull(line, &end, 16);
		if (errno != 0 || end != line + 16 || *end != ' ')
			continue;
		file = end + 1;
		if ((why = strchr(file, ' ')) == NULL)
			continue;
		*why++ = '\0';
		refused_add(rb, file, (uint64_t)h, why);
	}
	fclose(f);
}

/* ------------------------------------------------------------ state */

/* The entry of file, made if missing (NULL: out of memory).  rb->lock
 * held. */
static struct rb_file *
file_get(struct rollback *rb, const char *file, int make)
{
	struct rb_file *f;

	LIST_FOREACH(f, &rb->files, link)
		if (strcmp(f->file, file) == 0)
			return f;
	if (!make || (f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	snprintf(f->file, sizeof(f->file), "%s", file);
	f->cur_proven = 1;
	LIST_INSERT_HEAD(&rb->files, f, link);
	return f;
}

/* Stop watching f's generation.  rb->lock held. */
static void
unwatch(struct rb_file *f)
{
	struct generation *g = f->watch;

	if (g == NULL)
		return;
	f->watch = NULL;
	f->pending = 0;
	atomic_store_explicit(&g->watched, 0, memory_order_relaxed);
	generation_release(g);
}

static void
copy_info(struct copy *c, const struct generation *g)
{
	c->hash = g->content_hash;
	snprintf(c->version, sizeof(c->version), "%s", g->version ?
	    g->version : "");
	c->number = (long long)g->number;
}

/* f's current copy is good: keep it as good/<file> (and its version in
 * good/<file>.meta).  rb->lock held. */
static void
keep_good(struct rollback *rb, struct rb_file *f)
{
	char dst[PATH_MAX + NAME_MAX + 2], meta[PATH_MAX + NAME_MAX + 8];
	char hex[17];
	FILE *m;

	if (f->cur.path[0] == '\0')
		return;
	snprintf(dst, sizeof(dst), "%s/%s", rb->good_dir, f->file);
	if (copy_file(f->cur.path, dst, f->cur.hash) < 0) {
		log_warn("cannot keep a good copy of %s in %s", f->file,
		    rb->good_dir);
		return;
	}
	snprintf(meta, sizeof(meta), "%s/%s.meta", rb->good_dir, f->file);
	if ((m = fopen(meta, "we")) != NULL) {
		fprintf(m, "%s %s\n", rollback_hash_text(f->cur.hash, hex),
		    f->cur.version);
		fclose(m);
	}
}

/* Read good/<file>.meta: hash and version.  Returns 0 or -1. */
static int
good_meta(struct rollback *rb, const char *file, uint64_t *hash,
    char *version, size_t vlen)
{
	char meta[PATH_MAX + NAME_MAX + 8], line[256], *end;
	FILE *m;

	snprintf(meta, sizeof(meta), "%s/%s.meta", rb->good_dir, file);
	if ((m = fopen(meta, "re")) == NULL)
		return -1;
	if (fgets(line, sizeof(line), m) == NULL) {
		fclose(m);
		return -1;
	}
	fclose(m);
	line[strcspn(line, "\n")] = '\0';
	*hash = strtoull(line, &end, 16);
	if (end != line + 16)
		return -1;
	snprintf(version, vlen, "%.128s", *end == ' ' ? end + 1 : "");
	return 0;
}

/* ------------------------------------------------------------ thread */

struct decision {
	char file[NAME_MAX + 1];
	uint64_t number;
	char why[WHY_MAX];
};

/* Judge every open window at now_ns: prove, or collect rollbacks into
 * out (at most max).  rb->lock held.  Returns how many were collected;
 * *open_windows is how many stay open. */
static size_t
judge_all(struct rollback *rb, int64_t now_ns, struct decision *out,
    size_t max, int *open_windows)
{
	struct rb_file *f;
	size_t n = 0;

	*open_windows = 0;
	LIST_FOREACH(f, &rb->files, link) {
		struct generation *g = f->watch;
		uint64_t calls, fails;
		unsigned crashes;
		char why[WHY_MAX];
		enum rollback_verdict v;

		if (g == NULL)
			continue;
		generation_watch_counts(g, &calls, &fails);
		crashes = atomic_load_explicit(&g->worker_crashes,
		    memory_order_relaxed);
		v = rollback_judge(&f->pol, (now_ns - f->watch_ns) / 1000000,
		    calls, fails, crashes, why, sizeof(why));
		if (v == ROLLBACK_PROVEN) {
			struct log_ctx lc = LOG_CTX_INIT;

			lc.plugin = g->name;
			lc.version = g->version;
			lc.file = f->file;
			lc.generation = (long long)g->number;
			lc.reason = "its window passed";
			log_emit(LOGL_INFO, &lc, "plugin generation %llu proved "
			    "itself: %llu calls, %llu 5xx, in %lld s; kept as "
			    "the good copy, the previous copy is let go",
			    (unsigned long long)g->number,
			    (unsigned long long)calls,
			    (unsigned long long)fails,
			    (long long)((now_ns - f->watch_ns) / 1000000000));
			unwatch(f);
			f->cur_proven = 1;
			drop_copy(&f->prev);
			keep_good(rb, f);
			continue;
		}
		(*open_windows)++;
		if (v == ROLLBACK_NOW && !f->pending && n < max) {
			f->pending = 1;
			snprintf(out[n].file, sizeof(out[n].file), "%s",
			    f->file);
			out[n].number = g->number;
			snprintf(out[n].why, sizeof(out[n].why), "%s", why);
			n++;
		}
	}
	return n;
}

static void *
thread_main(void *arg)
{
	struct rollback *rb = arg;
	struct decision todo[8];
	int open_windows = 0;

	pthread_mutex_lock(&rb->lock);
	while (!rb->stop) {
		size_t n;

		n = judge_all(rb, clock_mono_ns(), todo, 8, &open_windows);
		if (n > 0) {
			pthread_mutex_unlock(&rb->lock);
			for (size_t i = 0; i < n; i++)
				(void)registry_rollback(rb->reg, todo[i].file,
				    todo[i].number, todo[i].why, NULL);
			pthread_mutex_lock(&rb->lock);
			continue;
		}
		if (open_windows == 0) {
			pthread_cond_wait(&rb->cond, &rb->lock);
		} else {
			struct timespec ts = clock_mono_ts(clock_mono_ns() +
			    TICK_NS);

			pthread_cond_timedwait(&rb->cond, &rb->lock, &ts);
		}
	}
	pthread_mutex_unlock(&rb->lock);
	return NULL;
}

/* ------------------------------------------------------------ API */

struct rollback *
rollback_new(const struct config *cfg, const char *state_dir, char *err,
    size_t errlen)
{
	struct rollback *rb = calloc(1, sizeof(*rb));

	if (rb == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rb->cfg = cfg;
	LIST_INIT(&rb->files);
	pthread_mutex_init(&rb->lock, NULL);
	thread_cond_init(&rb->cond);
	if ((size_t)snprintf(rb->kept_dir, sizeof(rb->kept_dir), "%s/kept",
	    state_dir) >= sizeof(rb->kept_dir) - NAME_MAX - 16 ||
	    (size_t)snprintf(rb->good_dir, sizeof(rb->good_dir), "%s/good",
	    state_dir) >= sizeof(rb->good_dir) - NAME_MAX - 16) {
		snprintf(err, errlen, "state_dir %s: path too long", state_dir);
		rollback_free(rb);
		return NULL;
	}
	snprintf(rb->refused_path, sizeof(rb->refused_path), "%s/refused",
	    state_dir);
	if (make_dir(rb->kept_dir) < 0 || make_dir(rb->good_dir) < 0) {
		snprintf(err, errlen, "cannot make %s and %s: %s", rb->kept_dir,
		    rb->good_dir, strerror(errno));
		rollback_free(rb);
		return NULL;
	}
	empty_dir(rb->kept_dir);
	refused_load(rb);
	return rb;
}

int
rollback_start(struct rollback *rb, struct registry *reg)
{
	int rc;

	rb->reg = reg;
	if ((rc = pthread_create(&rb->thread, NULL, thread_main, rb)) != 0)
		return -rc;
	rb->started = 1;
	return 0;
}

void
rollback_stop(struct rollback *rb)
{
	if (rb == NULL || !rb->started)
		return;
	pthread_mutex_lock(&rb->lock);
	rb->stop = 1;
	pthread_cond_signal(&rb->cond);
	pthread_mutex_unlock(&rb->lock);
	pthread_join(rb->thread, NULL);
	rb->started = 0;
}

void
rollback_free(struct rollback *rb)
{
	struct rb_file *f;

	if (rb == NULL)
		return;
	rollback_stop(rb);
	while ((f = LIST_FIRST(&rb->files)) != NULL) {
		LIST_REMOVE(f, link);
		unwatch(f);
		free(f);
	}
	pthread_mutex_destroy(&rb->lock);
	pthread_cond_destroy(&rb->cond);
	free(rb);
}

int
rollback_refused(struct rollback *rb, const char *file, uint64_t hash,
    char *why, size_t whylen)
{
	int found = 0;

	if (rb == NULL)
		return 0;
	pthread_mutex_lock(&rb->lock);
	for (size_t i = 0; i < rb->n_refused && !found; i++)
		if (rb->refused[i].hash == hash &&
		    strcmp(rb->refused[i].file, file) == 0) {
			snprintf(why, whylen, "%s", rb->refused[i].why);
			found = 1;
		}
	pthread_mutex_unlock(&rb->lock);
	return found;
}

int
rollback_good_copy(struct rollback *rb, const char *file, char *path,
    size_t pathlen, uint64_t *hash)
{
	char why[8], version[VERSION_MAX];
	uint64_t h;

	if (rb == NULL)
		return -1;
	snprintf(path, pathlen, "%s/%s", rb->good_dir, file);
	if (loader_hash_file(path, &h) < 0 || rollback_refused(rb, file, h,
	    why, sizeof(why)))
		return -1;
	/* The meta file, if there, must speak of these bytes. */
	if (good_meta(rb, file, hash, version, sizeof(version)) == 0 &&
	    *hash != h)
		return -1;
	*hash = h;
	return 0;
}

int
rollback_keep(struct rollback *rb, const char *file, int fd, uint64_t hash,
    char *path, size_t pathlen)
{
	uint64_t h;
	unsigned n;

	path[0] = '\0';
	if (rb == NULL)
		return -1;
	pthread_mutex_lock(&rb->lock);
	n = rb->next_copy++;
	pthread_mutex_unlock(&rb->lock);
	snprintf(path, pathlen, "%s/%u-%s", rb->kept_dir, n, file);
	if (copy_fd_to(fd, path) < 0) {
		path[0] = '\0';
		return -1;
	}
	if (loader_hash_file(path, &h) < 0 || h != hash) {
		(void)unlink(path);
		path[0] = '\0';
		return -1;
	}
	return 0;
}

void
rollback_published(struct rollback *rb, const char *file,
    const struct generation *old, struct generation *g, const char *kept,
    enum rollback_how how)
{
	struct rb_file *f;
	char bad[256];

	if (rb == NULL)
		return;
	pthread_mutex_lock(&rb->lock);
	if ((f = file_get(rb, file, 1)) == NULL) {
		pthread_mutex_unlock(&rb->lock);
		if (kept[0] != '\0')
			(void)unlink(kept);
		return;
	}
	unwatch(f);
	rollback_policy_of(rb->cfg, g->name, &f->pol, bad, sizeof(bad));
	if (bad[0] != '\0')
		log_warnx("%s", bad);
	if (how == ROLLBACK_LOADED) {
		if (old != NULL && f->cur.path[0] != '\0' && (f->cur_proven ||
		    f->prev.path[0] == '\0')) {
			/* What served goes back if this one fails. */
			drop_copy(&f->prev);
			f->prev = f->cur;
		} else {
			/* On probation itself (or nothing served): the
			 * older target stays. */
			drop_copy(&f->cur);
			if (old == NULL)
				drop_copy(&f->prev);
		}
		memset(&f->cur, 0, sizeof(f->cur));
		f->rolled_back = 0;
	} else {
		/* The restored or good copy: trusted, nothing to go back
		 * to. */
		drop_copy(&f->cur);
		drop_copy(&f->prev);
	}
	snprintf(f->cur.path, sizeof(f->cur.path), "%s", kept);
	copy_info(&f->cur, g);
	f->cur_proven = 1;
	if (how == ROLLBACK_LOADED && f->pol.on && kept[0] != '\0') {
		generation_hold(g);
		generation_watch_reset(g);
		atomic_store_explicit(&g->watched, 1, memory_order_relaxed);
		f->watch = g;
		f->watch_ns = clock_mono_ns();
		f->cur_proven = 0;
		pthread_cond_signal(&rb->cond);
	} else if (how == ROLLBACK_LOADED) {
		/* rollback = off: no window, no previous copy. */
		drop_copy(&f->prev);
	} else if (how == ROLLBACK_RESTORED) {
		keep_good(rb, f);
	}
	pthread_mutex_unlock(&rb->lock);
}

void
rollback_gone(struct rollback *rb, const char *file)
{
	struct rb_file *f;

	if (rb == NULL)
		return;
	pthread_mutex_lock(&rb->lock);
	if ((f = file_get(rb, file, 0)) != NULL) {
		LIST_REMOVE(f, link);
		unwatch(f);
		drop_copy(&f->cur);
		drop_copy(&f->prev);
		free(f);
	}
	pthread_mutex_unlock(&rb->lock);
}

int
rollback_target(struct rollback *rb, const char *file, char *path,
    size_t pathlen, uint64_t *hash, char *err, size_t errlen)
{
	struct rb_file *f;
	int rc = -1;

	if (rb == NULL) {
		snprintf(err, errlen, "rollback is not set up");
		return -1;
	}
	pthread_mutex_lock(&rb->lock);
	f = file_get(rb, file, 0);
	if (f == NULL || f->prev.path[0] == '\0')
		snprintf(err, errlen, "no previous copy of %s is kept (it is "
		    "kept from a swap until the new generation proves itself, "
		    "and with rollback = on)", file);
	else {
		snprintf(path, pathlen, "%s", f->prev.path);
		*hash = f->prev.hash;
		rc = 0;
	}
	pthread_mutex_unlock(&rb->lock);
	return rc;
}

void
rollback_refuse(struct rollback *rb, const char *file, uint64_t hash,
    const char *version, long long number, const char *why)
{
	struct rb_file *f;

	if (rb == NULL)
		return;
	pthread_mutex_lock(&rb->lock);
	refused_add(rb, file, hash, why);
	refused_save(rb);
	if ((f = file_get(rb, file, 1)) != NULL) {
		f->rolled_back = 1;
		memset(&f->bad, 0, sizeof(f->bad));
		f->bad.hash = hash;
		snprintf(f->bad.version, sizeof(f->bad.version), "%s",
		    version ? version : "");
		f->bad.number = number;
		snprintf(f->why, sizeof(f->why), "%s", why);
		f->at_ms = clock_wall_ms();
	}
	atomic_fetch_add(&rb->rollbacks, 1);
	pthread_mutex_unlock(&rb->lock);
}

static struct json_object *
copy_json(const struct copy *c)
{
	struct json_object *o;
	char hex[17];

	if (c->path[0] == '\0')
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "version",
	    json_object_new_string(c->version));
	json_object_object_add(o, "hash",
	    json_object_new_string(rollback_hash_text(c->hash, hex)));
	json_object_object_add(o, "generation",
	    json_object_new_int64(c->number));
	return o;
}

int
rollback_view(struct rollback *rb, const char *file, int serving,
    struct json_object *o)
{
	struct json_object *w, *rbo = NULL;
	struct rb_file *f;
	char hex[17], stamp[40], version[VERSION_MAX];
	uint64_t h;
	int rolled = 0;

	if (rb == NULL)
		return 0;
	w = json_object_new_object();
	pthread_mutex_lock(&rb->lock);
	f = file_get(rb, file, 0);
	if (f != NULL && f->rolled_back) {
		rbo = json_object_new_object();
		json_object_object_add(rbo, "version",
		    json_object_new_string(f->bad.version));
		json_object_object_add(rbo, "hash", json_object_new_string(
		    rollback_hash_text(f->bad.hash, hex)));
		json_object_object_add(rbo, "generation", f->bad.number > 0 ?
		    json_object_new_int64(f->bad.number) : NULL);
		json_object_object_add(rbo, "reason",
		    json_object_new_string(f->why));
		log_timestamp(stamp, sizeof(stamp), f->at_ms);
		json_object_object_add(rbo, "at", json_object_new_string(stamp));
		rolled = serving;
	}
	if (f != NULL && f->watch != NULL) {
		uint64_t calls, fails;

		generation_watch_counts(f->watch, &calls, &fails);
		json_object_object_add(w, "window",
		    json_object_new_string("watching"));
		json_object_object_add(w, "calls",
		    json_object_new_uint64(calls));
		json_object_object_add(w, "5xx", json_object_new_uint64(fails));
		json_object_object_add(w, "worker_crashes",
		    json_object_new_uint64(atomic_load(
		    &f->watch->worker_crashes)));
		json_object_object_add(w, "age_ms", json_object_new_int64(
		    (clock_mono_ns() - f->watch_ns) / 1000000));
	} else {
		json_object_object_add(w, "window", json_object_new_string(
		    f != NULL && !f->pol.on ? "off" : "closed"));
	}
	json_object_object_add(w, "previous", f != NULL ?
	    copy_json(&f->prev) : NULL);
	pthread_mutex_unlock(&rb->lock);
	if (good_meta(rb, file, &h, version, sizeof(version)) == 0) {
		struct json_object *go = json_object_new_object();

		json_object_object_add(go, "version",
		    json_object_new_string(version));
		json_object_object_add(go, "hash", json_object_new_string(
		    rollback_hash_text(h, hex)));
		json_object_object_add(w, "good_copy", go);
	} else {
		json_object_object_add(w, "good_copy", NULL);
	}
	json_object_object_add(o, "rolled_back", rbo);
	json_object_object_add(o, "rollback", w);
	return rolled;
}

int
rollback_is_rolled_back(struct rollback *rb, const char *file)
{
	struct rb_file *f;
	int rolled;

	if (rb == NULL)
		return 0;
	pthread_mutex_lock(&rb->lock);
	f = file_get(rb, file, 0);
	rolled = f != NULL && f->rolled_back;
	pthread_mutex_unlock(&rb->lock);
	return rolled;
}

long
rollback_count(struct rollback *rb)
{
	return rb != NULL ? atomic_load(&rb->rollbacks) : 0;
}
