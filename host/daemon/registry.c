/*
 * registry.c - plugins, their generations, and the published command table.
 *
 * Writers (start-up, rescans, the watcher, the scan thread) serialize on
 * one mutex only to decide what to do with a file and to publish the
 * result; the load itself (copy, dlopen, registration) runs outside it,
 * on a thread of its own under load_timeout_ms (bounded.c), so a file or
 * a registration that never returns is given up on and jams nothing.
 * Request lookups take no lock.  Views take a second mutex that writers
 * hold only while they change what views show, never while a plugin
 * loads.  Two threads of the registry's own: the reaper finalizes
 * generations whose last reference is gone (each fini under
 * fini_timeout_ms), off the threads that serve requests; the scanner runs
 * rescans asked for from event loops.  Files are reached through one
 * descriptor of plugin_dir, opened and checked once (core/trust.h).
 */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounded.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/loader.h"
#include "core/log.h"
#include "core/trust.h"
#include "executor.h"
#include "rollback.h"
#include "proc.h"

/* What makes a file the same file for "do not try it again": a load of
 * it was abandoned, and nothing about it has changed since. */
struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* Generations given up on (a load or a fini past its limit) whose thread
 * is still running: the "abandoned" gauge.  Global, since an abandoned
 * thread may outlive its registry. */
static atomic_long abandoned_loads, abandoned_finis;

/* How long past a stop's deadline the reaper and the scanner, which run
 * no plugin code themselves, may take to leave. */
#define REAPER_GRACE_NS 250000000LL

/* One plugin file of plugin_dir. */
struct plugin {
	TAILQ_ENTRY(plugin) link; /* r->plugins, in directory order */
	char *file;               /* owned: name in plugin_dir */
	char *name;               /* owned: descriptor name if ever read */
	struct generation *current; /* published, one reference */
	char *last_error;         /* owned, or NULL */
	int loading;              /* a writer is loading it (lock dropped) */
	int again;                /* another writer wanted it meanwhile */
	int stuck;                /* its last load was abandoned... */
	struct file_id stuck_id;  /* ...when the file was this */
	uint64_t loads, load_failures;
	int extra;                /* not a file: registry_put_extra() */
	char *warning;            /* owned, or NULL: registry_extra_warning */
};

/* What outlives generations, per command name: statistics and the
 * executor's scheduling state (SERIAL gate, pool decision). */
struct per_name {
	SLIST_ENTRY(per_name) link;
	struct cmd_stats *stats;  /* owned; stats->name is the name */
	struct cmd_sched *sched;  /* owned */
};

/* A rescan asked for by registry_scan_async(). */
struct scan_job {
	STAILQ_ENTRY(scan_job) link;
	registry_scan_fn fn;
	void *arg;
	char *rollback;           /* owned: roll this plugin back instead */
};

struct registry {
	struct cmd_index index;   /* first: 64-byte aligned */
	const struct config *cfg;
	char *plugin_dir;
	char *copy_dir;
	int dirfd;                /* plugin_dir, opened once; -1 until then */
	dev_t dir_dev;            /* ...and what it was */
	ino_t dir_ino;
	atomic_int stopping;      /* registry_stop(): no more loads */
	int stopped;              /* registry_stop() ran; its result: */
	int stop_rc;
	pthread_mutex_t lock;     /* writers: decisions and publishing */
	pthread_mutex_t view_lock;/* plugins and names, as views see them */
	TAILQ_HEAD(, plugin) plugins;
	SLIST_HEAD(, per_name) names; /* by command name, never shrinks */
	struct per_name **name_slots; /* owned: the same, open addressing by
	                               * command_name_hash(), half full at most */
	size_t name_mask;         /* slots - 1; 0 with no slots yet */
	size_t n_names;
	uint64_t next_generation;
	registry_publish_fn on_publish; /* under lock */
	void *publish_arg;
	struct rollback *rb;      /* borrowed, or NULL: no rollback */

	/* The reaper. */
	pthread_t reaper;
	int reaper_started;
	pthread_mutex_t reap_lock;
	pthread_cond_t reap_cond;
	SLIST_HEAD(, generation) reap;
	int reap_stop;
	_Atomic int64_t reap_deadline_ns; /* at a stop: finis end by then */

	/* The scanner. */
	pthread_t scanner;
	int scanner_started;
	pthread_mutex_t jobs_lock;
	pthread_cond_t jobs_cond;
	STAILQ_HEAD(, scan_job) jobs;
	int jobs_stop;
};

/* ------------------------------------------------------------ threads */

/* One generation to finalize, and what its log lines name (copied: an
 * abandoned fini may free the generation whenever it returns). */
struct fini_job {
	struct generation *g;
	int still_mapped;         /* dlclose left the copy mapped */
	char name[CMDHOST_NAME_MAX + 1];
	char version[CMDHOST_NAME_MAX + 1];
	char file[NAME_MAX + 1];
	long long number;
	int limit_ms;
};

static void
fini_ctx(const struct fini_job *job, struct log_ctx *lc, const char *reason)
{
	lc->plugin = job->name;
	lc->version = job->version;
	lc->file = job->file;
	lc->generation = job->number;
	lc->reason = reason;
}

/* On a thread of its own: fini, dlclose, free. */
static void
fini_main(void *arg)
{
	struct fini_job *job = arg;

	job->still_mapped = loader_unload_mapped(job->g);
}

/* An abandoned fini returned after all: the generation is gone now. */
static void
fini_late(void *arg, int64_t ran_ms)
{
	struct fini_job *job = arg;
	struct log_ctx lc = LOG_CTX_INIT;

	atomic_fetch_sub(&abandoned_finis, 1);
	fini_ctx(job, &lc, "its fini returned late");
	log_emit(LOGL_WARN, &lc, "abandoned fini of plugin %s generation %lld "
	    "returned after %lld ms; the generation is unloaded now",
	    job->name, job->number, (long long)ran_ms);
	free(job);
}

/* Finalize and unload g under fini_timeout_ms (or what is left of a
 * stop's time); past it, log and give up on it.  Runs on the reaper. */
static void
unload_logged(struct registry *r, struct generation *g)
{
	struct log_ctx lc = LOG_CTX_INIT;
	struct fini_job *job = calloc(1, sizeof(*job)), info;
	int64_t now = clock_mono_ns(), stop = atomic_load(&r->reap_deadline_ns);
	int64_t deadline = now + (int64_t)r->cfg->fini_timeout_ms * 1000000;
	int rc;

	if (job == NULL) {
		/* No memory for a thread's job: unbounded, but unloaded. */
		lc.plugin = g->name;
		lc.generation = (long long)g->number;
		lc.reason = "its last call returned";
		log_emit(LOGL_INFO, &lc, "plugin generation finalized and "
		    "unloaded");
		loader_unload(g);
		return;
	}
	if (stop > 0 && stop < deadline)
		deadline = stop;
	job->g = g;
	snprintf(job->name, sizeof(job->name), "%s", g->name ? g->name : "");
	snprintf(job->version, sizeof(job->version), "%s",
	    g->version ? g->version : "");
	snprintf(job->file, sizeof(job->file), "%s", g->file ? g->file : "");
	job->number = (long long)g->number;
	job->limit_ms = (int)((deadline - now) / 1000000);
	/* What the log lines need: once abandoned, job is not ours. */
	info = *job;
	rc = bounded_run(fini_main, fini_late, job, deadline, NULL);
	if (rc == -ETIMEDOUT) {
		atomic_fetch_add(&abandoned_finis, 1);
		fini_ctx(&info, &lc, "fini did not return");
		log_emit(LOGL_ERROR, &lc, "fini of plugin %s generation %lld "
		    "(%s) did not return within %d ms; generation abandoned: "
		    "its thread and code stay in memory, later generations are "
		    "finalized as usual", info.name, info.number, info.file,
		    info.limit_ms);
		return;
	}
	if (rc < 0)
		fini_main(job); /* no thread: unbounded, but unloaded */
	fini_ctx(job, &lc, "its last call returned");
	if (job->still_mapped) {
		lc.reason = "dlclose left it mapped";
		log_emit(LOGL_WARN, &lc, "plugin generation %lld finalized, "
		    "but its code is still mapped after dlclose: likely a "
		    "thread-local variable with a destructor (C++ thread_local, "
		    "Rust thread_local!) that holds it until its threads exit, "
		    "RTLD_NODELETE (linked with -z nodelete), or unique symbols "
		    "(STB_GNU_UNIQUE, from C++ inline statics); counted in "
		    "host.stats plugins_still_mapped", job->number);
	} else {
		log_emit(LOGL_INFO, &lc, "plugin generation finalized and "
		    "unloaded");
	}
	free(job);
}

/* The release hook of published generations: the last reference is
 * gone.  fini may be slow (closing a database): never on a loop thread. */
static void
reap(struct generation *g, void *arg)
{
	struct registry *r = arg;

	pthread_mutex_lock(&r->reap_lock);
	SLIST_INSERT_HEAD(&r->reap, g, reap_link);
	pthread_cond_signal(&r->reap_cond);
	pthread_mutex_unlock(&r->reap_lock);
}

static void *
reaper_main(void *arg)
{
	struct registry *r = arg;
	struct generation *g;

	pthread_mutex_lock(&r->reap_lock);
	for (;;) {
		while (SLIST_EMPTY(&r->reap) && !r->reap_stop)
			pthread_cond_wait(&r->reap_cond, &r->reap_lock);
		if ((g = SLIST_FIRST(&r->reap)) == NULL)
			break;
		SLIST_REMOVE_HEAD(&r->reap, reap_link);
		pthread_mutex_unlock(&r->reap_lock);
		unload_logged(r, g);
		pthread_mutex_lock(&r->reap_lock);
	}
	pthread_mutex_unlock(&r->reap_lock);
	return NULL;
}

static void *
scanner_main(void *arg)
{
	struct registry *r = arg;
	struct scan_job *job;

	pthread_mutex_lock(&r->jobs_lock);
	for (;;) {
		struct json_object *report;
		int failures;

		while (STAILQ_EMPTY(&r->jobs) && !r->jobs_stop)
			pthread_cond_wait(&r->jobs_cond, &r->jobs_lock);
		if ((job = STAILQ_FIRST(&r->jobs)) == NULL)
			break;
		STAILQ_REMOVE_HEAD(&r->jobs, link);
		pthread_mutex_unlock(&r->jobs_lock);
		/* Once stopping, a scan answers at once (it loads nothing):
		 * whoever asked still gets its report. */
		report = json_object_new_object();
		if (job->rollback != NULL)
			failures = registry_rollback(r, job->rollback, 0,
			    "asked for by hand (host.rollback)", report) < 0;
		else
			failures = registry_scan(r, report);
		job->fn(job->arg, report, failures);
		free(job->rollback);
		free(job);
		pthread_mutex_lock(&r->jobs_lock);
	}
	pthread_mutex_unlock(&r->jobs_lock);
	return NULL;
}

int
registry_scan_async(struct registry *r, registry_scan_fn fn, void *arg)
{
	struct scan_job *job = malloc(sizeof(*job));

	if (job == NULL)
		return -ENOMEM;
	job->fn = fn;
	job->arg = arg;
	job->rollback = NULL;
	pthread_mutex_lock(&r->jobs_lock);
	STAILQ_INSERT_TAIL(&r->jobs, job, link);
	pthread_cond_signal(&r->jobs_cond);
	pthread_mutex_unlock(&r->jobs_lock);
	return 0;
}

int
registry_rollback_async(struct registry *r, const char *name,
    registry_scan_fn fn, void *arg)
{
	struct scan_job *job = malloc(sizeof(*job));

	if (job == NULL || (job->rollback = strdup(name)) == NULL) {
		free(job);
		return -ENOMEM;
	}
	job->fn = fn;
	job->arg = arg;
	pthread_mutex_lock(&r->jobs_lock);
	STAILQ_INSERT_TAIL(&r->jobs, job, link);
	pthread_cond_signal(&r->jobs_cond);
	pthread_mutex_unlock(&r->jobs_lock);
	return 0;
}

/* Stop one of the two threads once its queue is empty, waiting until
 * deadline_ns (CLOCK_MONOTONIC; 0: as long as it takes).  Returns 0, or
 * -1 if it did not end in time (it is left running). */
static int
stop_thread(pthread_t *t, int *started, pthread_mutex_t *lock,
    pthread_cond_t *cond, int *stop, int64_t deadline_ns)
{
	struct timespec ts;

	if (!*started)
		return 0;
	pthread_mutex_lock(lock);
	*stop = 1;
	pthread_cond_signal(cond);
	pthread_mutex_unlock(lock);
	if (deadline_ns <= 0) {
		pthread_join(*t, NULL);
	} else {
		ts = clock_wall_ts(deadline_ns);
		if (pthread_timedjoin_np(*t, NULL, &ts) != 0)
			return -1;
	}
	*started = 0;
	return 0;
}

/* ------------------------------------------------------------ the table */

struct registry *
registry_new(const struct config *cfg, const char *plugin_dir,
    const char *copy_dir)
{
	struct registry *r = aligned_alloc(64, sizeof(*r));

	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	r->dirfd = -1;
	TAILQ_INIT(&r->plugins);
	SLIST_INIT(&r->names);
	SLIST_INIT(&r->reap);
	STAILQ_INIT(&r->jobs);
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->view_lock, NULL);
	pthread_mutex_init(&r->reap_lock, NULL);
	pthread_cond_init(&r->reap_cond, NULL);
	pthread_mutex_init(&r->jobs_lock, NULL);
	pthread_cond_init(&r->jobs_cond, NULL);
	r->plugin_dir = strdup(plugin_dir);
	r->copy_dir = strdup(copy_dir);
	if (r->plugin_dir == NULL || r->copy_dir == NULL ||
	    cmd_index_init(&r->index) < 0) {
		registry_free(r);
		errno = ENOMEM;
		return NULL;
	}
	if ((errno = pthread_create(&r->reaper, NULL, reaper_main, r)) != 0) {
		registry_free(r);
		return NULL;
	}
	r->reaper_started = 1;
	if ((errno = pthread_create(&r->scanner, NULL, scanner_main,
	    r)) != 0) {
		registry_free(r);
		return NULL;
	}
	r->scanner_started = 1;
	return r;
}

int
registry_reader(struct registry *r)
{
	return cmd_index_reader(&r->index);
}

struct command *
registry_lookup(struct registry *r, int reader, const char *name)
{
	return cmd_index_lookup(&r->index, reader, name);
}

/* Publish `next`; then tell the hook.  r->lock is held. */
static void
publish(struct registry *r, struct cmd_table *next)
{
	cmd_index_publish(&r->index, next);
	if (r->on_publish != NULL)
		r->on_publish(r->publish_arg);
}

void
registry_set_publish_hook(struct registry *r, registry_publish_fn fn,
    void *arg)
{
	pthread_mutex_lock(&r->lock);
	r->on_publish = fn;
	r->publish_arg = arg;
	pthread_mutex_unlock(&r->lock);
}

/* The slot of r->name_slots where `name` is, or the empty one where it
 * would go (borrowed).  There must be slots.  r->lock is held. */
static struct per_name **
name_slot(struct registry *r, const char *name)
{
	size_t i = (size_t)command_name_hash(name) & r->name_mask;

	while (r->name_slots[i] != NULL &&
	    strcmp(r->name_slots[i]->stats->name, name) != 0)
		i = (i + 1) & r->name_mask;
	return &r->name_slots[i];
}

/* Make room in r->name_slots for one more name: double the slots (and
 * rehash from r->names) when they would pass half full.  Returns 0 or
 * -ENOMEM (the old slots stay).  r->lock is held. */
static int
name_slots_reserve(struct registry *r)
{
	size_t slots = r->name_slots != NULL ? r->name_mask + 1 : 0;
	struct per_name **old = r->name_slots, *pn;
	size_t old_mask = r->name_mask;

	if ((r->n_names + 1) * 2 <= slots)
		return 0;
	slots = slots != 0 ? slots * 2 : 64;
	if ((r->name_slots = calloc(slots, sizeof(*r->name_slots))) == NULL) {
		r->name_slots = old;
		r->name_mask = old_mask;
		return -ENOMEM;
	}
	r->name_mask = slots - 1;
	SLIST_FOREACH(pn, &r->names, link)
		*name_slot(r, pn->stats->name) = pn;
	free(old);
	return 0;
}

/* Give command c the per-name state of its name, made on first use: one
 * hash probe, so that loading N commands costs O(N) whatever number of
 * names came before.  Returns 0 or -ENOMEM.  r->lock is held. */
static int
attach_per_name(struct registry *r, struct command *c)
{
	struct per_name *pn, **slot;

	if (name_slots_reserve(r) < 0)
		return -ENOMEM;
	slot = name_slot(r, c->name);
	if ((pn = *slot) == NULL) {
		if ((pn = calloc(1, sizeof(*pn))) == NULL ||
		    (pn->stats = metrics_cmd_new(c->name)) == NULL ||
		    (pn->sched = executor_sched_new()) == NULL) {
			if (pn != NULL)
				metrics_cmd_free(pn->stats);
			free(pn);
			return -ENOMEM;
		}
		SLIST_INSERT_HEAD(&r->names, pn, link);
		*slot = pn;
		r->n_names++;
	}
	c->stats = pn->stats;
	c->sched = pn->sched;
	return 0;
}

/*
 * Build the table that results from giving plugin p the generation g (NULL:
 * p has no commands).  Fails if a command of g belongs to another plugin.
 * Returns the new table, or NULL with the reason in err.
 */
static struct cmd_table *
build_table(struct registry *r, struct plugin *p, struct generation *g,
    char *err, size_t errlen)
{
	struct cmd_table *t;
	struct command *other;
	struct plugin *q;
	size_t count = g ? g->n_commands : 0;

	TAILQ_FOREACH(q, &r->plugins, link)
		if (q != p && q->current != NULL)
			count += q->current->n_commands;
	if ((t = cmd_table_new(count)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	TAILQ_FOREACH(q, &r->plugins, link) {
		if (q == p || q->current == NULL)
			continue;
		for (size_t i = 0; i < q->current->n_commands; i++)
			(void)cmd_table_add(t, &q->current->commands[i],
			    &other);
	}
	for (size_t i = 0; g != NULL && i < g->n_commands; i++) {
		if (cmd_table_add(t, &g->commands[i], &other) < 0) {
			snprintf(err, errlen, "command '%s' is already "
			    "registered by plugin '%s' (%s)",
			    g->commands[i].name, other->gen->name,
			    other->gen->file);
			cmd_table_free(t);
			return NULL;
		}
	}
	return t;
}

static struct plugin *
plugin_find(struct registry *r, const char *file)
{
	struct plugin *p;

	TAILQ_FOREACH(p, &r->plugins, link)
		if (strcmp(p->file, file) == 0)
			return p;
	return NULL;
}

static void
set_error(struct plugin *p, const char *err)
{
	free(p->last_error);
	p->last_error = err ? strdup(err) : NULL;
}

static void
report_add(struct json_object *report, const char *key, const char *file,
    const char *err)
{
	struct json_object *arr, *item;

	if (report == NULL)
		return;
	if (!json_object_object_get_ex(report, key, &arr))
		return;
	if (err == NULL) {
		json_object_array_add(arr, json_object_new_string(file));
		return;
	}
	item = json_object_new_object();
	json_object_object_add(item, "file", json_object_new_string(file));
	json_object_object_add(item, "error", json_object_new_string(err));
	json_object_array_add(arr, item);
}

/* ------------------------------------------------------------ loading */

/* What a load thread is given and gives back.  Owned by the writer that
 * made it until bounded_run() abandons it, then by the load's thread. */
struct load_job {
	const struct config *cfg; /* borrowed: outlives every load (an
	                           * abandoned one ends the process's life
	                           * with exit 1, see registry_stop) */
	int dirfd;                /* owned: a dup of the registry's */
	char *file;               /* owned */
	char *copy_dir;           /* owned */
	int have_current;         /* compare with current_hash first */
	int64_t deadline_ns;      /* a probe and workers are ready by then */
	uint64_t current_hash;
	struct rollback *rb;      /* borrowed (outlives loads), or NULL */
	char *path;               /* owned: load this file instead (a kept
	                           * copy being put back), or NULL */
	/* Results. */
	enum { JOB_FAILED, JOB_UNCHANGED, JOB_LOADED, JOB_REFUSED } result;
	enum rollback_how how;    /* JOB_LOADED: from where */
	char kept[PATH_MAX];      /* JOB_LOADED: its kept copy, or "" */
	struct generation *g;     /* JOB_LOADED: one reference */
	char *name;               /* the descriptor's name if read, or NULL */
	char err[1024];
};

static void
load_job_free(struct load_job *job)
{
	if (job == NULL)
		return;
	if (job->dirfd >= 0)
		close(job->dirfd);
	if (job->kept[0] != '\0' && job->result != JOB_LOADED)
		(void)unlink(job->kept);
	free(job->file);
	free(job->copy_dir);
	free(job->path);
	free(job->name);
	free(job);
}

/* Load `path` (a kept or good copy in state_dir) as the job's file, and
 * keep a copy of it again.  On the load thread. */
static void
load_copy(struct load_job *job, const char *path, enum rollback_how how)
{
	int fd;

	/* Probed and, for an isolated plugin, run by workers, like a file of
	 * plugin_dir (proc_load). */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		snprintf(job->err, sizeof(job->err), "%s: %s", path,
		    strerror(errno));
		return;
	}
	if (proc_load(job->cfg, fd, job->file, job->copy_dir,
	    job->deadline_ns, &job->g, &job->name, job->err,
	    sizeof(job->err)) < 0) {
		close(fd);
		return;
	}
	job->result = JOB_LOADED;
	job->how = how;
	if (lseek(fd, 0, SEEK_SET) == 0)
		(void)rollback_keep(job->rb, job->file, fd,
		    job->g->content_hash, job->kept, sizeof(job->kept));
	close(fd);
}

/* On a thread of its own: open, check, hash; then unless the bytes are
 * those that serve, or refused (then the good copy, if nothing serves),
 * copy, dlopen and register, and keep a copy for a rollback. */
static void
load_main(void *arg)
{
	struct load_job *job = arg;
	char why[512], good[PATH_MAX];
	uint64_t hash, good_hash;
	int fd, hashed = 0;

	job->result = JOB_FAILED;
	if (job->path != NULL) {
		load_copy(job, job->path, ROLLBACK_RESTORED);
		return;
	}
	if ((fd = loader_open_at(job->dirfd, job->file, job->cfg, job->err,
	    sizeof(job->err))) < 0)
		return;
	if ((job->have_current || job->rb != NULL) && loader_hash_fd(fd,
	    job->cfg->max_plugin_bytes, &hash) == 0)
		hashed = 1;
	if (hashed && job->have_current && hash == job->current_hash) {
		job->result = JOB_UNCHANGED;
	} else if (hashed && rollback_refused(job->rb, job->file, hash, why,
	    sizeof(why))) {
		if (!job->have_current && rollback_good_copy(job->rb,
		    job->file, good, sizeof(good), &good_hash) == 0) {
			load_copy(job, good, ROLLBACK_GOOD);
			if (job->result == JOB_LOADED) {
				snprintf(job->err, sizeof(job->err), "%s",
				    why);
			} else {
				char e[sizeof(job->err)];

				snprintf(e, sizeof(e), "%s", job->err);
				snprintf(job->err, sizeof(job->err), "%.400s; "
				    "its good copy does not load either: "
				    "%.500s", why, e);
			}
		} else {
			job->result = JOB_REFUSED;
			snprintf(job->err, sizeof(job->err), "%s", why);
		}
	} else if (proc_load(job->cfg, fd, job->file, job->copy_dir,
	    job->deadline_ns, &job->g, &job->name, job->err,
	    sizeof(job->err)) == 0) {
		job->result = JOB_LOADED;
		job->how = ROLLBACK_LOADED;
		(void)rollback_keep(job->rb, job->file, fd,
		    job->g->content_hash, job->kept, sizeof(job->kept));
	}
	close(fd);
}

/* An abandoned load returned after all: nobody wants it now. */
static void
load_late(void *arg, int64_t ran_ms)
{
	struct load_job *job = arg;
	struct log_ctx lc = LOG_CTX_INIT;

	lc.file = job->file;
	lc.plugin = job->name;
	lc.reason = "the load returned late";
	log_emit(LOGL_WARN, &lc, "abandoned load of %s returned after %lld ms; "
	    "discarded (deploy the file again to load it)", job->file,
	    (long long)ran_ms);
	/* Never published: unloaded right here, fini included. */
	generation_release(job->g);
	job->g = NULL;
	job->result = JOB_FAILED; /* its kept copy goes too */
	atomic_fetch_sub(&abandoned_loads, 1);
	load_job_free(job);
}

/* Hand a generation that will never be published to the reaper, so that
 * its fini runs there under its limit, not on a writer. */
static void
discard(struct registry *r, struct generation *g)
{
	if (g == NULL)
		return;
	g->release = reap;
	g->release_arg = r;
	generation_release(g);
}

/* Log and record a refused load of plugin p.  r->lock and view_lock are
 * held. */
static void
refuse(struct plugin *p, const char *err, struct json_object *report)
{
	struct generation *old = p->current;
	struct log_ctx lc = LOG_CTX_INIT;

	p->load_failures++;
	set_error(p, err);
	lc.file = p->file;
	lc.plugin = p->name;
	lc.reason = err;
	if (old != NULL) {
		lc.version = old->version;
		lc.generation = (long long)old->number;
	}
	log_emit(LOGL_ERROR, &lc, "plugin refused: %s%s", err,
	    old != NULL ? " (the previous generation keeps serving)" : "");
	report_add(report, "failed", p->file, err);
}

/* Publish g (one reference, taken over), just loaded for plugin p as
 * `how` says (its kept copy `kept`, taken over; why: the reason of a
 * rollback or a good copy), or refuse it.  r->lock is held.  Returns 0
 * or -1. */
static int
publish_loaded(struct registry *r, struct plugin *p, struct generation *g,
    char *name, struct json_object *report, enum rollback_how how,
    const char *kept, const char *why)
{
	struct generation *old = p->current;
	struct cmd_table *t;
	struct plugin *q;
	struct log_ctx lc = LOG_CTX_INIT;
	char err[1024];

	lc.file = p->file;
	pthread_mutex_lock(&r->view_lock);
	if (name != NULL) {
		free(p->name);
		p->name = name;
	}
	/* One plugin name, one file; one command, one plugin. */
	TAILQ_FOREACH(q, &r->plugins, link)
		if (q != p && q->current != NULL && generation_conflict(g,
		    q->current, err, sizeof(err)) < 0)
			goto fail;
	if ((t = build_table(r, p, g, err, sizeof(err))) == NULL)
		goto fail;
	for (size_t i = 0; i < g->n_commands; i++) {
		if (attach_per_name(r, &g->commands[i]) < 0) {
			cmd_table_free(t);
			snprintf(err, sizeof(err), "out of memory");
			goto fail;
		}
	}
	g->number = ++r->next_generation;
	for (size_t i = 0; i < g->n_commands; i++) {
		struct log_ctx fc = LOG_CTX_INIT;

		fc.command = g->commands[i].name;
		fc.plugin = g->name;
		fc.version = g->version;
		fc.generation = (long long)g->number;
		/* NULL (out of memory) only costs speed: see
		 * invocation_log_ctx(). */
		g->commands[i].log_frag = log_fragment(&fc);
	}
	g->release = reap;
	g->release_arg = r;
	p->current = g;
	p->loads++;
	set_error(p, NULL);
	publish(r, t);
	lc.plugin = g->name;
	lc.version = g->version;
	lc.generation = (long long)g->number;
	/* Extras (workflows) are not files: no probation, no kept copy. */
	if (!p->extra)
		rollback_published(r->rb, p->file, old, g, kept, how);
	if (how == ROLLBACK_RESTORED && old != NULL) {
		char hex[17];

		lc.old_version = old->version;
		lc.old_generation = (long long)old->number;
		lc.reason = why;
		log_emit(LOGL_WARN, &lc, "plugin rolled back: version %s "
		    "(generation %llu, hash %s) -> version %s (generation %llu, "
		    "its kept previous copy): %s; calls running on generation "
		    "%llu finish there; these bytes are not loaded again until "
		    "the file changes", old->version, (unsigned long long)
		    old->number, rollback_hash_text(old->content_hash, hex),
		    g->version, (unsigned long long)g->number, why,
		    (unsigned long long)old->number);
	} else if (how == ROLLBACK_GOOD) {
		lc.reason = why;
		log_emit(LOGL_WARN, &lc, "plugin file refused (%s); its kept "
		    "good copy is loaded instead: version %s, %zu commands",
		    why, g->version, g->n_commands);
	} else if (old != NULL) {
		lc.old_version = old->version;
		lc.old_generation = (long long)old->number;
		lc.reason = "the file changed";
		log_emit(LOGL_INFO, &lc, "plugin swapped: version %s -> %s, "
		    "%zu commands; calls running on generation %llu finish "
		    "there", old->version, g->version, g->n_commands,
		    (unsigned long long)old->number);
	} else {
		lc.reason = "new file";
		log_emit(LOGL_INFO, &lc, "plugin loaded: version %s, %zu "
		    "commands", g->version, g->n_commands);
	}
	report_add(report, "loaded", p->file, NULL);
	generation_release(old);
	pthread_mutex_unlock(&r->view_lock);
	return 0;

fail:
	refuse(p, err, report);
	pthread_mutex_unlock(&r->view_lock);
	discard(r, g);
	if (kept[0] != '\0')
		(void)unlink(kept);
	return -1;
}

static void plugin_free(struct plugin *p);

/* Unpublish plugin p's commands and drop its generation; if `forget`,
 * also take p off the list (and free it) in the same step, so that no view
 * shows it half gone. */
static void
unload_one(struct registry *r, struct plugin *p, struct json_object *report,
    const char *why, int forget)
{
	struct generation *old = p->current;
	struct cmd_table *t = NULL;
	char err[256], file[256];

	snprintf(file, sizeof(file), "%s", p->file);
	pthread_mutex_lock(&r->view_lock);
	if (old != NULL) {
		if ((t = build_table(r, p, NULL, err, sizeof(err))) == NULL) {
			pthread_mutex_unlock(&r->view_lock);
			log_errorx("cannot unload %s: %s", p->file, err);
			return;
		}
		p->current = NULL;
		publish(r, t);
	}
	if (forget) {
		TAILQ_REMOVE(&r->plugins, p, link);
		plugin_free(p);
	}
	pthread_mutex_unlock(&r->view_lock);
	if (old == NULL)
		return;
	rollback_gone(r->rb, file);
	{
		struct log_ctx lc = LOG_CTX_INIT;

		lc.plugin = old->name;
		lc.version = old->version;
		lc.file = file;
		lc.generation = (long long)old->number;
		lc.reason = why;
		log_emit(LOGL_INFO, &lc, "plugin unpublished (%s); its commands "
		    "answer 404 from now on", why);
	}
	report_add(report, "unloaded", file, NULL);
	generation_release(old);
}

int
registry_is_plugin_file(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 3 && strcmp(name + n - 3, ".so") == 0;
}

static void
plugin_free(struct plugin *p)
{
	if (p == NULL)
		return;
	free(p->file);
	free(p->name);
	free(p->last_error);
	free(p->warning);
	free(p);
}

static void
report_init(struct json_object *report)
{
	static const char *const keys[] = { "loaded", "unloaded", "failed",
	    "unchanged" };

	if (report == NULL)
		return;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!json_object_object_get_ex(report, keys[i], NULL))
			json_object_object_add(report, keys[i],
			    json_object_new_array());
}

static void
file_id_of(const struct stat *st, struct file_id *id)
{
	memset(id, 0, sizeof(*id));
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
}

static int
file_id_eq(const struct file_id *a, const struct file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/*
 * Open plugin_dir the first time (trust_open_dir: every directory on its
 * path checked, no link followed blindly), or check that it still leads,
 * by the same rules, to the directory opened then: a directory swapped
 * for another (a symbolic link put in its place) is not followed.
 * Returns 0, or -1 with the reason in err.  r->lock is held.
 */
static int
check_dir(struct registry *r, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	fd = trust_open_dir(r->plugin_dir, "plugin_dir",
	    r->cfg->allow_insecure_plugins, err, errlen);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "plugin_dir %s: %s", r->plugin_dir,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (r->dirfd < 0) {
		r->dirfd = fd;
		r->dir_dev = st.st_dev;
		r->dir_ino = st.st_ino;
		return 0;
	}
	close(fd);
	if (st.st_dev != r->dir_dev || st.st_ino != r->dir_ino) {
		snprintf(err, errlen, "plugin_dir %s now leads to another "
		    "directory than the one opened at start-up (was it "
		    "replaced, or swapped for a symbolic link?); it is not "
		    "followed: restart cmdhostd to use the new one",
		    r->plugin_dir);
		return -1;
	}
	return 0;
}

int
registry_open(struct registry *r, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&r->lock);
	rc = check_dir(r, err, errlen);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Look at plugin_dir before a rescan; on failure log, note the reason in
 * the report and keep serving what is loaded.  Returns 0 or -1. */
static int
rescan_allowed(struct registry *r, struct json_object *report)
{
	char err[1024];
	int rc;

	if (atomic_load(&r->stopping)) {
		snprintf(err, sizeof(err), "the daemon is stopping");
		rc = -1;
	} else {
		pthread_mutex_lock(&r->lock);
		rc = check_dir(r, err, sizeof(err));
		pthread_mutex_unlock(&r->lock);
		if (rc < 0)
			log_errorx("rescan refused: %s; what is loaded keeps "
			    "serving", err);
	}
	if (rc < 0 && report != NULL)
		json_object_object_add(report, "error",
		    json_object_new_string(err));
	return rc;
}

/* A new load job for plugin p, whose file is st.  r->lock is held.
 * Returns it, or NULL (out of memory). */
static struct load_job *
load_job_new(struct registry *r, struct plugin *p)
{
	struct load_job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return NULL;
	job->cfg = r->cfg;
	job->dirfd = fcntl(r->dirfd, F_DUPFD_CLOEXEC, 0);
	job->file = strdup(p->file);
	job->copy_dir = strdup(r->copy_dir);
	if (job->dirfd < 0 || job->file == NULL || job->copy_dir == NULL) {
		load_job_free(job);
		return NULL;
	}
	if (p->current != NULL) {
		job->have_current = 1;
		job->current_hash = p->current->content_hash;
	}
	job->rb = r->rb;
	return job;
}

/*
 * Run job (borrowed; abandoned -- -ETIMEDOUT -- it belongs to its thread,
 * which frees it in load_late) on a thread of its own within
 * load_timeout_ms.  Its probe
 * and workers get a little less, so that one that hangs is refused with
 * its reason rather than abandoned.  Returns what bounded_run does.
 */
static int
run_load_job(struct registry *r, struct load_job *job)
{
	int64_t t0 = clock_mono_ns();
	int64_t limit = (int64_t)r->cfg->load_timeout_ms * 1000000;

	job->deadline_ns = t0 + limit * 9 / 10;
	return bounded_run(load_main, load_late, job, t0 + limit,
	    &r->stopping);
}

/* Record that the load of p was abandoned.  r->lock is held. */
static void
stuck(struct registry *r, struct plugin *p, const struct file_id *id,
    int cancelled, struct json_object *report)
{
	char err[512];

	atomic_fetch_add(&abandoned_loads, 1);
	if (cancelled)
		snprintf(err, sizeof(err), "load abandoned: the daemon is "
		    "stopping (its thread stays until it returns)");
	else
		snprintf(err, sizeof(err), "stuck: loading (copy, dlopen or "
		    "registration) did not return within load_timeout_ms "
		    "(%d ms); load abandoned, its thread and mapping stay in "
		    "memory; not tried again until the file changes",
		    r->cfg->load_timeout_ms);
	pthread_mutex_lock(&r->view_lock);
	p->stuck = 1; /* views read it */
	p->stuck_id = *id;
	refuse(p, err, report);
	pthread_mutex_unlock(&r->view_lock);
}

/*
 * Bring the plugin of `file` (a name in plugin_dir) in line with the
 * directory, once: load it if it is new or its bytes changed, unload it if
 * it is gone.  r->lock is held on entry and on return, but not while the
 * file loads.  Sets *again when another writer asked for the file
 * meanwhile.  Returns 1 if the file was refused, else 0.
 */
static int
sync_once(struct registry *r, const char *file, struct json_object *report,
    int *again)
{
	struct plugin *p;
	struct load_job *job;
	struct stat st;
	struct file_id id;
	int rc, failed = 0;

	*again = 0;
	p = plugin_find(r, file);
	if (p != NULL && p->loading) {
		/* Its loader looks again when it is done. */
		p->again = 1;
		return 0;
	}
	if (fstatat(r->dirfd, file, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
	    errno == ENOENT) {
		if (p == NULL)
			return 0;
		unload_one(r, p, report, "its file was removed", 1);
		return 0;
	}
	if (p == NULL) {
		if ((p = calloc(1, sizeof(*p))) == NULL ||
		    (p->file = strdup(file)) == NULL) {
			/* Refused like a load that fails: logged, reported. */
			struct log_ctx lc = LOG_CTX_INIT;

			free(p);
			lc.file = file;
			lc.reason = "out of memory";
			log_emit(LOGL_ERROR, &lc, "plugin refused: out of "
			    "memory");
			report_add(report, "failed", file, "out of memory");
			return 1;
		}
		/* Append, so that the first file keeps a name. */
		pthread_mutex_lock(&r->view_lock);
		TAILQ_INSERT_TAIL(&r->plugins, p, link);
		pthread_mutex_unlock(&r->view_lock);
	}
	/* What the link leads to, if it is one (stat never opens). */
	if (fstatat(r->dirfd, file, &st, 0) < 0)
		memset(&st, 0, sizeof(st));
	file_id_of(&st, &id);
	if (p->stuck && file_id_eq(&id, &p->stuck_id)) {
		/* Loading these bytes jammed once: not again. */
		report_add(report, "failed", p->file, p->last_error ?
		    p->last_error : "stuck");
		return 1;
	}
	if (atomic_load(&r->stopping)) {
		/* Not started, so nothing to abandon. */
		report_add(report, "failed", p->file,
		    "not loaded: the daemon is stopping");
		return 1;
	}
	if ((job = load_job_new(r, p)) == NULL) {
		pthread_mutex_lock(&r->view_lock);
		refuse(p, "out of memory", report);
		pthread_mutex_unlock(&r->view_lock);
		return 1;
	}
	p->loading = 1;
	pthread_mutex_unlock(&r->lock);
	/* The slow part, with no lock held: bounded. */
	rc = run_load_job(r, job);
	pthread_mutex_lock(&r->lock);
	p->loading = 0;
	*again = p->again;
	p->again = 0;
	if (rc == -ETIMEDOUT) {
		struct log_ctx lc = LOG_CTX_INIT;
		int cancelled = atomic_load(&r->stopping);

		stuck(r, p, &id, cancelled, report);
		lc.file = p->file;
		lc.plugin = p->name;
		lc.reason = cancelled ? "the daemon is stopping" :
		    "load_timeout_ms passed";
		if (cancelled)
			log_emit(LOGL_WARN, &lc, "load of %s given up on: the "
			    "daemon is stopping", p->file);
		else
			log_emit(LOGL_ERROR, &lc, "load of %s is stuck (in its "
			    "copy, dlopen, constructors or registration) after "
			    "%d ms; abandoned: later deploys, reloads and "
			    "stopping carry on", p->file,
			    r->cfg->load_timeout_ms);
		return 1;
	}
	pthread_mutex_lock(&r->view_lock);
	p->stuck = 0;
	pthread_mutex_unlock(&r->view_lock);
	if (rc < 0) {
		char err[128];

		snprintf(err, sizeof(err), "cannot start a load thread: %s",
		    strerror(-rc));
		pthread_mutex_lock(&r->view_lock);
		refuse(p, rc == -ENOMEM ? "out of memory" : err, report);
		pthread_mutex_unlock(&r->view_lock);
		failed = 1;
	} else if (job->result == JOB_UNCHANGED) {
		/* The bytes that serve already: nothing to do.  A file that
		 * failed is tried again, since what made it fail may have
		 * gone. */
		pthread_mutex_lock(&r->view_lock);
		set_error(p, NULL);
		pthread_mutex_unlock(&r->view_lock);
		report_add(report, "unchanged", file, NULL);
	} else if (job->result == JOB_LOADED) {
		char why[sizeof(job->err)] = "";

		if (job->how == ROLLBACK_GOOD)
			memcpy(why, job->err, sizeof(why));
		failed = publish_loaded(r, p, job->g, job->name, report,
		    job->how, job->kept, why) < 0;
		job->g = NULL;
		job->name = NULL;
		job->kept[0] = '\0';
	} else if (job->result == JOB_REFUSED && p->current != NULL) {
		/* The bytes that were rolled back, put back: nothing to do
		 * (the rollback stands until the file's bytes change). */
		struct log_ctx lc = LOG_CTX_INIT;

		lc.file = p->file;
		lc.plugin = p->name;
		lc.reason = job->err;
		log_emit(LOGL_INFO, &lc, "plugin file not loaded: its bytes are "
		    "refused (%s); version %s keeps serving", job->err,
		    p->current->version);
		report_add(report, "unchanged", file, NULL);
	} else {
		pthread_mutex_lock(&r->view_lock);
		if (job->name != NULL) {
			free(p->name);
			p->name = job->name;
			job->name = NULL;
		}
		refuse(p, job->err, report);
		pthread_mutex_unlock(&r->view_lock);
		failed = 1;
	}
	load_job_free(job);
	return failed;
}

/* sync_once() until no other writer asked for the file meanwhile.
 * r->lock is held. */
static int
sync_file(struct registry *r, const char *file, struct json_object *report)
{
	int again, failed;

	do
		failed = sync_once(r, file, report, &again);
	while (again && !atomic_load(&r->stopping));
	return failed;
}

int
registry_sync_file(struct registry *r, const char *file,
    struct json_object *report)
{
	int failed;

	if (!registry_is_plugin_file(file))
		return 0;
	report_init(report);
	if (rescan_allowed(r, report) < 0)
		return 1;
	pthread_mutex_lock(&r->lock);
	failed = sync_file(r, file, report);
	pthread_mutex_unlock(&r->lock);
	return failed;
}

static int
plugin_name_filter(const struct dirent *d)
{
	return registry_is_plugin_file(d->d_name);
}

int
registry_scan(struct registry *r, struct json_object *report)
{
	struct dirent **names = NULL;
	struct plugin *p;
	char **gone = NULL;
	size_t n_gone = 0, cap = 0;
	int n, failures = 0;

	report_init(report);
	if (rescan_allowed(r, report) < 0)
		return 1;
	n = scandirat(r->dirfd, ".", &names, plugin_name_filter, alphasort);
	if (n < 0) {
		log_error("cannot read plugin_dir %s", r->plugin_dir);
		if (report != NULL)
			json_object_object_add(report, "error",
			    json_object_new_string("cannot read plugin_dir"));
		return 1;
	}
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < n; i++)
		failures += sync_file(r, names[i]->d_name, report);
	/* Files that are gone: unpublish, then forget. */
	TAILQ_FOREACH(p, &r->plugins, link) {
		int seen = p->extra; /* not a file of plugin_dir */

		for (int i = 0; i < n && !seen; i++)
			seen = strcmp(names[i]->d_name, p->file) == 0;
		if (seen)
			continue;
		if (n_gone == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			char **ng = realloc(gone, ncap * sizeof(*ng));

			if (ng == NULL)
				break; /* seen again by the next scan */
			gone = ng;
			cap = ncap;
		}
		if ((gone[n_gone] = strdup(p->file)) != NULL)
			n_gone++;
	}
	for (size_t i = 0; i < n_gone; i++) {
		sync_file(r, gone[i], report); /* may free its plugin */
		free(gone[i]);
	}
	pthread_mutex_unlock(&r->lock);
	free(gone);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return failures;
}

/* ------------------------------------------------------------ extras */

/* The extra entry `key`, made if missing and make.  r->lock is held. */
static struct plugin *
extra_find(struct registry *r, const char *key, int make)
{
	struct plugin *p = plugin_find(r, key);

	if (p != NULL || !make)
		return p;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->file = strdup(key)) == NULL ||
	    (p->name = strdup(key)) == NULL) {
		if (p != NULL)
			free(p->file);
		free(p);
		return NULL;
	}
	p->extra = 1;
	pthread_mutex_lock(&r->view_lock);
	TAILQ_INSERT_TAIL(&r->plugins, p, link);
	pthread_mutex_unlock(&r->view_lock);
	return p;
}

int
registry_put_extra(struct registry *r, const char *key, struct generation *g,
    struct json_object *report)
{
	struct plugin *p;
	char *name;
	int rc;

	pthread_mutex_lock(&r->lock);
	if ((p = extra_find(r, key, 1)) == NULL || (name = strdup(g->name)) ==
	    NULL) {
		pthread_mutex_unlock(&r->lock);
		discard(r, g);
		return -1;
	}
	rc = publish_loaded(r, p, g, name, report, ROLLBACK_LOADED, "", NULL);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void
registry_extra_refused(struct registry *r, const char *key, const char *err)
{
	struct plugin *p;

	pthread_mutex_lock(&r->lock);
	if ((p = extra_find(r, key, 1)) != NULL) {
		pthread_mutex_lock(&r->view_lock);
		refuse(p, err, NULL);
		pthread_mutex_unlock(&r->view_lock);
	}
	pthread_mutex_unlock(&r->lock);
}

void
registry_del_extra(struct registry *r, const char *key, const char *why)
{
	struct plugin *p;

	pthread_mutex_lock(&r->lock);
	if ((p = extra_find(r, key, 0)) != NULL && p->extra)
		unload_one(r, p, NULL, why, 1);
	pthread_mutex_unlock(&r->lock);
}

void
registry_extra_warning(struct registry *r, const char *key,
    const char *warning)
{
	struct plugin *p;

	pthread_mutex_lock(&r->lock);
	if ((p = extra_find(r, key, 0)) != NULL) {
		pthread_mutex_lock(&r->view_lock);
		if (warning == NULL || p->warning == NULL ||
		    strcmp(warning, p->warning) != 0) {
			free(p->warning);
			p->warning = warning ? strdup(warning) : NULL;
		}
		pthread_mutex_unlock(&r->view_lock);
	}
	pthread_mutex_unlock(&r->lock);
}

/* ------------------------------------------------------------ views */

void
registry_each_plugin(struct registry *r, registry_plugin_fn fn, void *arg)
{
	struct plugin *p;

	pthread_mutex_lock(&r->view_lock);
	TAILQ_FOREACH(p, &r->plugins, link) {
		struct registry_plugin v;
		char base[256];

		if (p->name == NULL) {
			snprintf(base, sizeof(base), "%s", p->file);
			base[strlen(base) - 3] = '\0'; /* drop ".so" */
		}
		v.file = p->file;
		v.g = p->current;
		v.name = p->current ? p->current->name : p->name ? p->name :
		    base;
		/* A new file is listed before its first load finishes. */
		v.state = p->current != NULL ? (p->last_error ? "degraded" :
		    rollback_is_rolled_back(r->rb, p->file) ? "rolled_back" :
		    "loaded") : p->stuck ? "stuck" : p->last_error ? "failed" :
		    "loading";
		v.rb = r->rb;
		if (p->current != NULL && proc_pool_crashing(p->current->pool))
			v.state = "crashing"; /* its workers keep dying */
		v.read_name = p->name;
		v.error = p->last_error;
		v.warning = p->warning;
		v.loads = p->loads;
		v.load_failures = p->load_failures;
		if (fn(&v, arg) != 0)
			break;
	}
	pthread_mutex_unlock(&r->view_lock);
}

void
registry_each_name(struct registry *r, registry_name_fn fn, void *arg)
{
	struct per_name *pn;

	pthread_mutex_lock(&r->view_lock);
	SLIST_FOREACH(pn, &r->names, link)
		if (fn(pn->stats, arg) != 0)
			break;
	pthread_mutex_unlock(&r->view_lock);
}

int
registry_crashing(struct registry *r, struct json_object *names)
{
	struct plugin *p;
	int n = 0;

	pthread_mutex_lock(&r->view_lock);
	TAILQ_FOREACH(p, &r->plugins, link) {
		if (p->current == NULL || !proc_pool_crashing(p->current->pool))
			continue;
		n++;
		json_object_array_add(names,
		    json_object_new_string(p->current->name));
	}
	pthread_mutex_unlock(&r->view_lock);
	return n;
}

void
registry_counts(struct registry *r, int *plugins, int *commands, int *failed)
{
	struct plugin *p;

	*plugins = *commands = *failed = 0;
	pthread_mutex_lock(&r->view_lock);
	TAILQ_FOREACH(p, &r->plugins, link) {
		if (p->current != NULL) {
			(*plugins)++;
			*commands += (int)p->current->n_commands;
		}
		if (p->last_error != NULL)
			(*failed)++;
	}
	pthread_mutex_unlock(&r->view_lock);
}

void
registry_quiesce(struct registry *r)
{
	atomic_store(&r->stopping, 1);
	bounded_wake();
}

void
registry_abandoned(long *loads, long *finis)
{
	long l = atomic_load(&abandoned_loads), f = atomic_load(&abandoned_finis);

	/* A late return may be counted before its abandonment is. */
	*loads = l > 0 ? l : 0;
	*finis = f > 0 ? f : 0;
}

int
registry_stop(struct registry *r, int64_t deadline_ns)
{
	struct plugin *p;
	long loads, finis;

	if (r->stopped)
		return r->stop_rc;
	r->stopped = 1;
	r->stop_rc = -1;
	registry_quiesce(r);
	atomic_store(&r->reap_deadline_ns, deadline_ns);
	/* Scans asked for still answer (they load nothing now). */
	if (stop_thread(&r->scanner, &r->scanner_started, &r->jobs_lock,
	    &r->jobs_cond, &r->jobs_stop, deadline_ns > 0 ? deadline_ns +
	    REAPER_GRACE_NS : 0) < 0) {
		log_errorx("the registry's scan thread did not end in time");
		return -1;
	}
	pthread_mutex_lock(&r->lock);
	TAILQ_FOREACH(p, &r->plugins, link) {
		if (p->current == NULL)
			continue;
		unload_one(r, p, NULL, "the daemon is stopping", 0);
	}
	pthread_mutex_unlock(&r->lock);
	while ((p = TAILQ_FIRST(&r->plugins)) != NULL) {
		TAILQ_REMOVE(&r->plugins, p, link);
		/* Still published if unload_one() found no memory for a
		 * table: no reader is left, drop its generation anyway. */
		generation_release(p->current);
		plugin_free(p);
	}
	/* Finalize what the unloads above queued (each fini bounded by
	 * the deadline too), then stop the reaper: it runs no plugin code
	 * itself, so a moment past the deadline is enough for it to log
	 * what it gave up on and leave. */
	if (stop_thread(&r->reaper, &r->reaper_started, &r->reap_lock,
	    &r->reap_cond, &r->reap_stop, deadline_ns > 0 ? deadline_ns +
	    REAPER_GRACE_NS : 0) < 0) {
		log_errorx("the registry's reaper did not end in time");
		return -1;
	}
	registry_abandoned(&loads, &finis);
	r->stop_rc = loads + finis > 0 ? -1 : 0;
	return r->stop_rc;
}

void
registry_free(struct registry *r)
{
	struct per_name *pn;

	if (r == NULL)
		return;
	/* Without a deadline: everything is finalized (each fini still
	 * bounded by fini_timeout_ms). */
	if (!r->stopped)
		registry_stop(r, 0);
	while ((pn = SLIST_FIRST(&r->names)) != NULL) {
		SLIST_REMOVE_HEAD(&r->names, link);
		metrics_cmd_free(pn->stats);
		executor_sched_free(pn->sched);
		free(pn);
	}
	free(r->name_slots);
	cmd_index_fini(&r->index);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->view_lock);
	pthread_mutex_destroy(&r->reap_lock);
	pthread_cond_destroy(&r->reap_cond);
	pthread_mutex_destroy(&r->jobs_lock);
	pthread_cond_destroy(&r->jobs_cond);
	if (r->dirfd >= 0)
		close(r->dirfd);
	free(r->plugin_dir);
	free(r->copy_dir);
	free(r);
}

/* ------------------------------------------------------------ rollback */

void
registry_set_rollback(struct registry *r, struct rollback *rb)
{
	pthread_mutex_lock(&r->lock);
	r->rb = rb;
	pthread_mutex_unlock(&r->lock);
}

struct rollback *
registry_get_rollback(struct registry *r)
{
	return r->rb;
}

/* A rollback's answer in report (may be NULL): an error with its status
 * and code, or what was put back. */
static void
rollback_report(struct json_object *report, int status, const char *code,
    const char *msg)
{
	if (report == NULL)
		return;
	json_object_object_add(report, "status", json_object_new_int(status));
	if (code != NULL)
		json_object_object_add(report, "code",
		    json_object_new_string(code));
	json_object_object_add(report, status < 300 ? "message" : "error",
	    json_object_new_string(msg));
}

int
registry_rollback(struct registry *r, const char *name, uint64_t expect,
    const char *why, struct json_object *report)
{
	struct plugin *p;
	struct load_job *job;
	struct generation *bad;
	char err[1024], path[PATH_MAX], hex[17];
	char bad_version[CMDHOST_NAME_MAX + 1];
	uint64_t hash, bad_hash, bad_number;
	int rc, failed = -1, again = 0;

	pthread_mutex_lock(&r->lock);
	TAILQ_FOREACH(p, &r->plugins, link)
		if (strcmp(p->file, name) == 0 || (p->current != NULL &&
		    strcmp(p->current->name, name) == 0))
			break;
	if (p == NULL || p->current == NULL) {
		snprintf(err, sizeof(err), "no plugin named %s serves", name);
		rollback_report(report, 404, "unknown_plugin", err);
		goto out;
	}
	if (expect != 0 && p->current->number != expect) {
		failed = 0; /* another generation serves already */
		goto out;
	}
	if (atomic_load(&r->stopping)) {
		rollback_report(report, 503, "unavailable",
		    "the daemon is stopping");
		goto out;
	}
	if (p->loading) {
		snprintf(err, sizeof(err), "a load of %s is in progress; try "
		    "again", p->file);
		rollback_report(report, 409, "busy", err);
		goto out;
	}
	if (rollback_target(r->rb, p->file, path, sizeof(path), &hash, err,
	    sizeof(err)) < 0) {
		rollback_report(report, 409, "no_previous_copy", err);
		goto out;
	}
	bad = p->current;
	bad_hash = bad->content_hash;
	bad_number = bad->number;
	snprintf(bad_version, sizeof(bad_version), "%s", bad->version);
	if ((job = load_job_new(r, p)) == NULL ||
	    (job->path = strdup(path)) == NULL) {
		load_job_free(job);
		rollback_report(report, 503, "unavailable", "out of memory");
		goto out;
	}
	job->have_current = 0;
	p->loading = 1;
	pthread_mutex_unlock(&r->lock);
	rc = run_load_job(r, job);
	pthread_mutex_lock(&r->lock);
	p->loading = 0;
	/* A writer wanted the file meanwhile: looked at again at the end,
	 * once the bad bytes are refused. */
	again = p->again;
	p->again = 0;
	if (rc == -ETIMEDOUT) {
		atomic_fetch_add(&abandoned_loads, 1);
		snprintf(err, sizeof(err), "loading the kept copy did not "
		    "return within load_timeout_ms; abandoned");
		log_errorx("rollback of %s: %s", name, err);
		rollback_report(report, 500, "rollback_failed", err);
		goto out;
	}
	if (rc < 0 || job->result != JOB_LOADED) {
		snprintf(err, sizeof(err), "the kept copy does not load: %.900s",
		    rc < 0 ? strerror(-rc) : job->err);
		log_errorx("rollback of %s: %s", name, err);
		rollback_report(report, 500, "rollback_failed", err);
		load_job_free(job);
		goto out;
	}
	if (p->current == NULL || p->current->number != bad_number) {
		/* Changed meanwhile: what serves now is not what failed. */
		discard(r, job->g);
		job->g = NULL;
		job->result = JOB_FAILED;
		load_job_free(job);
		rollback_report(report, 409, "busy", "another generation was "
		    "published meanwhile; nothing rolled back");
		goto out;
	}
	/* Refused first, so that the view never shows it loadable. */
	rollback_refuse(r->rb, p->file, bad_hash, bad_version,
	    (long long)bad_number, why);
	if (publish_loaded(r, p, job->g, job->name, NULL, ROLLBACK_RESTORED,
	    job->kept, why) == 0) {
		failed = 0;
		if (report != NULL) {
			struct json_object *o = json_object_new_object();

			json_object_object_add(o, "version",
			    json_object_new_string(bad_version));
			json_object_object_add(o, "hash", json_object_new_string(
			    rollback_hash_text(bad_hash, hex)));
			json_object_object_add(o, "generation",
			    json_object_new_int64((int64_t)bad_number));
			json_object_object_add(report, "plugin",
			    json_object_new_string(p->current->name));
			json_object_object_add(report, "file",
			    json_object_new_string(p->file));
			json_object_object_add(report, "rolled_back", o);
			json_object_object_add(report, "version",
			    json_object_new_string(p->current->version));
			json_object_object_add(report, "generation",
			    json_object_new_int64((int64_t)
			    p->current->number));
			json_object_object_add(report, "reason",
			    json_object_new_string(why));
		}
	} else {
		rollback_report(report, 500, "rollback_failed",
		    p->last_error ? p->last_error : "publishing failed");
	}
	job->g = NULL;
	job->name = NULL;
	job->kept[0] = '\0';
	load_job_free(job);
out:
	if (again && p != NULL)
		(void)sync_file(r, p->file, NULL);
	pthread_mutex_unlock(&r->lock);
	return failed;
}
