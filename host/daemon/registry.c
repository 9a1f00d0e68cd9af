/*
 * registry.c - plugins, their generations, and the published command table.
 *
 * Writers (start-up, rescans, the watcher, the scan thread) serialize on
 * one mutex, build a complete new table and publish it (cmd_table.c);
 * request lookups take no lock.  Views take a second mutex that writers
 * hold only while they change what views show, never while a plugin
 * loads.  Two threads of the registry's own: the reaper finalizes
 * generations whose last reference is gone, off the threads that serve
 * requests; the scanner runs rescans asked for from event loops.
 */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/loader.h"
#include "core/log.h"
#include "executor.h"

/* One plugin file of plugin_dir. */
struct plugin {
	TAILQ_ENTRY(plugin) link; /* r->plugins, in directory order */
	char *file;               /* owned: name in plugin_dir */
	char *name;               /* owned: descriptor name if ever read */
	struct generation *current; /* published, one reference */
	char *last_error;         /* owned, or NULL */
	int present;              /* seen by the current scan */
	uint64_t loads, load_failures;
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
};

struct registry {
	struct cmd_index index;   /* first: 64-byte aligned */
	const struct config *cfg;
	char *plugin_dir;
	char *copy_dir;
	pthread_mutex_t lock;     /* writers: one load or scan at a time */
	pthread_mutex_t view_lock;/* plugins and names, as views see them */
	TAILQ_HEAD(, plugin) plugins;
	SLIST_HEAD(, per_name) names; /* by command name, never shrinks */
	uint64_t next_generation;
	registry_publish_fn on_publish; /* under lock */
	void *publish_arg;

	/* The reaper. */
	pthread_t reaper;
	int reaper_started;
	pthread_mutex_t reap_lock;
	pthread_cond_t reap_cond;
	SLIST_HEAD(, generation) reap;
	int reap_stop;

	/* The scanner. */
	pthread_t scanner;
	int scanner_started;
	pthread_mutex_t jobs_lock;
	pthread_cond_t jobs_cond;
	STAILQ_HEAD(, scan_job) jobs;
	int jobs_stop;
};

/* ------------------------------------------------------------ threads */

static void
unload_logged(struct generation *g)
{
	struct log_ctx lc = LOG_CTX_INIT;

	lc.plugin = g->name;
	lc.version = g->version;
	lc.file = g->file;
	lc.generation = (long long)g->number;
	lc.reason = "its last call returned";
	log_emit(LOGL_INFO, &lc, "plugin generation finalized and unloaded");
	loader_unload(g);
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
		unload_logged(g);
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
		report = json_object_new_object();
		failures = registry_scan(r, report);
		job->fn(job->arg, report, failures);
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
	pthread_mutex_lock(&r->jobs_lock);
	STAILQ_INSERT_TAIL(&r->jobs, job, link);
	pthread_cond_signal(&r->jobs_cond);
	pthread_mutex_unlock(&r->jobs_lock);
	return 0;
}

/* Stop one of the two threads once its queue is empty. */
static void
stop_thread(pthread_t *t, int *started, pthread_mutex_t *lock,
    pthread_cond_t *cond, int *stop)
{
	if (!*started)
		return;
	pthread_mutex_lock(lock);
	*stop = 1;
	pthread_cond_signal(cond);
	pthread_mutex_unlock(lock);
	pthread_join(*t, NULL);
	*started = 0;
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

/* Give command c the per-name state of its name, made on first use.
 * Returns 0 or -ENOMEM.  r->lock is held. */
static int
attach_per_name(struct registry *r, struct command *c)
{
	struct per_name *pn;

	SLIST_FOREACH(pn, &r->names, link)
		if (strcmp(pn->stats->name, c->name) == 0)
			break;
	if (pn == NULL) {
		if ((pn = calloc(1, sizeof(*pn))) == NULL ||
		    (pn->stats = metrics_cmd_new(c->name)) == NULL ||
		    (pn->sched = executor_sched_new()) == NULL) {
			if (pn != NULL)
				metrics_cmd_free(pn->stats);
			free(pn);
			return -ENOMEM;
		}
		SLIST_INSERT_HEAD(&r->names, pn, link);
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

/* Try to load the file for plugin p and publish it.  Returns 0 or -1. */
static int
load_one(struct registry *r, struct plugin *p, const char *path,
    struct json_object *report)
{
	struct generation *g = NULL, *old = p->current;
	struct cmd_table *t;
	struct plugin *q;
	struct log_ctx lc = LOG_CTX_INIT;
	char err[1024], *name = NULL;
	int rc;

	lc.file = p->file;
	rc = loader_load(r->cfg, path, p->file, r->copy_dir, &g, &name, err,
	    sizeof(err));
	/* The slow part is done; what follows changes what views show. */
	pthread_mutex_lock(&r->view_lock);
	if (rc < 0)
		goto fail;
	free(p->name);
	p->name = name;
	name = NULL;
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
	if (old != NULL) {
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
	if (name != NULL) {
		free(p->name);
		p->name = name;
	}
	generation_release(g);
	p->load_failures++;
	set_error(p, err);
	lc.plugin = p->name;
	lc.reason = err;
	if (old != NULL) {
		lc.version = old->version;
		lc.generation = (long long)old->number;
	}
	log_emit(LOGL_ERROR, &lc, "plugin refused: %s%s", err,
	    old != NULL ? " (the previous generation keeps serving)" : "");
	report_add(report, "failed", p->file, err);
	pthread_mutex_unlock(&r->view_lock);
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

/*
 * Bring the plugin of `file` (a name in plugin_dir) in line with the
 * directory: load it if it is new or its bytes changed, unload it if it is
 * gone.  r->lock is held.  Returns 1 if the file was refused, else 0.
 */
static int
sync_file(struct registry *r, const char *file, struct json_object *report)
{
	struct plugin *p;
	struct stat st;
	uint64_t hash;
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", r->plugin_dir, file);
	p = plugin_find(r, file);
	if (lstat(path, &st) < 0 && errno == ENOENT) {
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
	p->present = 1;
	/* The bytes that serve already: nothing to do.  A file that failed
	 * is tried again, since what made it fail may have gone. */
	if (loader_hash_file(path, &hash) == 0 && p->current != NULL &&
	    p->current->content_hash == hash) {
		pthread_mutex_lock(&r->view_lock);
		set_error(p, NULL);
		pthread_mutex_unlock(&r->view_lock);
		report_add(report, "unchanged", file, NULL);
		return 0;
	}
	return load_one(r, p, path, report) < 0;
}

int
registry_sync_file(struct registry *r, const char *file,
    struct json_object *report)
{
	int failed;

	if (!registry_is_plugin_file(file))
		return 0;
	report_init(report);
	pthread_mutex_lock(&r->lock);
	failed = sync_file(r, file, report);
	pthread_mutex_unlock(&r->lock);
	return failed;
}

int
registry_scan(struct registry *r, struct json_object *report)
{
	struct dirent **names = NULL;
	struct plugin *p, *next;
	int n, failures = 0;

	report_init(report);
	pthread_mutex_lock(&r->lock);
	n = scandir(r->plugin_dir, &names, NULL, alphasort);
	if (n < 0) {
		log_error("cannot read plugin_dir %s", r->plugin_dir);
		pthread_mutex_unlock(&r->lock);
		return 1;
	}
	TAILQ_FOREACH(p, &r->plugins, link)
		p->present = 0;
	for (int i = 0; i < n; i++) {
		if (registry_is_plugin_file(names[i]->d_name))
			failures += sync_file(r, names[i]->d_name, report);
		free(names[i]);
	}
	free(names);
	/* Files that are gone: unpublish, then forget. */
	for (p = TAILQ_FIRST(&r->plugins); p != NULL; p = next) {
		char *file;

		next = TAILQ_NEXT(p, link);
		if (p->present)
			continue;
		if ((file = strdup(p->file)) == NULL)
			continue;
		sync_file(r, file, report); /* frees p */
		free(file);
	}
	pthread_mutex_unlock(&r->lock);
	return failures;
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
		    "loaded") : p->last_error ? "failed" : "loading";
		v.read_name = p->name;
		v.error = p->last_error;
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
registry_free(struct registry *r)
{
	struct plugin *p;
	struct per_name *pn;

	if (r == NULL)
		return;
	stop_thread(&r->scanner, &r->scanner_started, &r->jobs_lock,
	    &r->jobs_cond, &r->jobs_stop);
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
	/* Finalize what the unloads above queued, then stop the reaper. */
	stop_thread(&r->reaper, &r->reaper_started, &r->reap_lock,
	    &r->reap_cond, &r->reap_stop);
	while ((pn = SLIST_FIRST(&r->names)) != NULL) {
		SLIST_REMOVE_HEAD(&r->names, link);
		metrics_cmd_free(pn->stats);
		executor_sched_free(pn->sched);
		free(pn);
	}
	cmd_index_fini(&r->index);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->view_lock);
	pthread_mutex_destroy(&r->reap_lock);
	pthread_cond_destroy(&r->reap_cond);
	pthread_mutex_destroy(&r->jobs_lock);
	pthread_cond_destroy(&r->jobs_cond);
	free(r->plugin_dir);
	free(r->copy_dir);
	free(r);
}
