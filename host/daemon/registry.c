/*
 * registry.c - plugins, their generations, and the published command table.
 *
 * Writers (start-up, rescans, the watcher) serialize on one mutex, build a
 * complete new table and swap it in with one atomic store; then they wait
 * until no reader's hazard pointer names the old table before freeing it
 * and dropping the references of generations that left.  Request lookups
 * take no lock.  Admin views (host.list, host.stats) take a second mutex
 * that writers hold only while they change what those views show, never
 * while a plugin loads.
 */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/loader.h"
#include "core/log.h"
#include "core/request.h"
#include "executor.h"

/* An immutable open-addressing table of command pointers. */
struct cmd_table {
	size_t mask;              /* slots - 1 (slots is a power of two) */
	size_t count;
	struct command *slots[];
};

/* One plugin file of plugin_dir. */
struct plugin {
	char *file;               /* owned: name in plugin_dir */
	char *name;               /* owned: descriptor name if ever read */
	struct generation *current; /* published, one reference */
	char *last_error;         /* owned, or NULL */
	int present;              /* seen by the current scan */
	uint64_t loads, load_failures;
	struct plugin *next;
};

/* A hazard slot on a cache line of its own: readers on different threads
 * never write to a line that another reader or the table pointer uses. */
struct hazard {
	_Atomic(struct cmd_table *) table;
	char pad[64 - sizeof(void *)];
};

struct registry {
	_Alignas(64) _Atomic(struct cmd_table *) table;
	char pad[64 - sizeof(void *)];
	struct hazard hazards[REGISTRY_MAX_READERS];
	atomic_int n_readers;

	const struct config *cfg;
	char *plugin_dir;
	char *copy_dir;
	pthread_mutex_t lock;     /* writers: one load or scan at a time */
	pthread_mutex_t view_lock;/* plugins and names, as admin views see them */
	struct plugin *plugins;
	struct per_name *names;   /* by command name, never shrinks */
	uint64_t next_generation;
	registry_publish_fn on_publish; /* under lock */
	void *publish_arg;

	/* Generations whose last reference is gone are finalized here, off
	 * the threads that serve requests. */
	pthread_t reaper;
	int reaper_started;
	pthread_mutex_t reap_lock;
	pthread_cond_t reap_cond;
	struct generation *reap_head;
	int reap_stop;
};

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
 * gone. */
static void
reap(struct generation *g, void *arg)
{
	struct registry *r = arg;

	/* fini may be slow (closing a database): never on a loop thread. */
	pthread_mutex_lock(&r->reap_lock);
	g->reap_next = r->reap_head;
	r->reap_head = g;
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
		while (r->reap_head == NULL && !r->reap_stop)
			pthread_cond_wait(&r->reap_cond, &r->reap_lock);
		if (r->reap_head == NULL)
			break;
		g = r->reap_head;
		r->reap_head = g->reap_next;
		pthread_mutex_unlock(&r->reap_lock);
		unload_logged(g);
		pthread_mutex_lock(&r->reap_lock);
	}
	pthread_mutex_unlock(&r->reap_lock);
	return NULL;
}

static uint64_t
hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct cmd_table *
table_new(size_t count)
{
	size_t slots = 8;
	struct cmd_table *t;

	while (slots < count * 2)
		slots *= 2;
	t = calloc(1, sizeof(*t) + slots * sizeof(struct command *));
	if (t == NULL)
		return NULL;
	t->mask = slots - 1;
	return t;
}

static void
table_insert(struct cmd_table *t, struct command *c)
{
	size_t i = (size_t)hash_name(c->name) & t->mask;

	while (t->slots[i] != NULL)
		i = (i + 1) & t->mask;
	t->slots[i] = c;
	t->count++;
}

static struct command *
table_find(const struct cmd_table *t, const char *name)
{
	size_t i = (size_t)hash_name(name) & t->mask;

	for (;;) {
		struct command *c = t->slots[i];

		if (c == NULL)
			return NULL;
		if (strcmp(c->name, name) == 0)
			return c;
		i = (i + 1) & t->mask;
	}
}

struct registry *
registry_new(const struct config *cfg, const char *plugin_dir,
    const char *copy_dir)
{
	struct registry *r = aligned_alloc(64, sizeof(*r));

	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	r->plugin_dir = strdup(plugin_dir);
	r->copy_dir = strdup(copy_dir);
	if (r->plugin_dir == NULL || r->copy_dir == NULL) {
		free(r->plugin_dir);
		free(r->copy_dir);
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->view_lock, NULL);
	pthread_mutex_init(&r->reap_lock, NULL);
	pthread_cond_init(&r->reap_cond, NULL);
	atomic_init(&r->table, table_new(0));
	if (atomic_load(&r->table) == NULL) {
		registry_free(r);
		errno = ENOMEM;
		return NULL;
	}
	if ((errno = pthread_create(&r->reaper, NULL, reaper_main, r)) != 0) {
		registry_free(r);
		return NULL;
	}
	r->reaper_started = 1;
	return r;
}

int
registry_reader(struct registry *r)
{
	int slot = atomic_fetch_add(&r->n_readers, 1);

	return slot < REGISTRY_MAX_READERS ? slot : -1;
}

struct command *
registry_lookup(struct registry *r, int reader, const char *name)
{
	struct cmd_table *t;
	struct command *c;

	/* Publish the table we are about to read, then check that it is
	 * still current: a writer that swapped after our store will see our
	 * hazard and wait for us. */
	do {
		t = atomic_load(&r->table);
		atomic_store(&r->hazards[reader].table, t);
	} while (t != atomic_load(&r->table));
	c = table_find(t, name);
	if (c != NULL)
		generation_hold(c->gen);
	atomic_store_explicit(&r->hazards[reader].table, NULL,
	    memory_order_release);
	return c;
}

/* Swap in `next` and free the old table once no reader holds it. */
static void
publish(struct registry *r, struct cmd_table *next)
{
	struct cmd_table *old = atomic_exchange(&r->table, next);
	int n = atomic_load(&r->n_readers);

	if (n > REGISTRY_MAX_READERS)
		n = REGISTRY_MAX_READERS;
	for (int i = 0; i < n; i++)
		while (atomic_load(&r->hazards[i].table) == old)
			sched_yield();
	free(old);
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

/* What outlives generations, per command name: statistics and the
 * executor's scheduling state (SERIAL gate, pool decision). */
struct per_name {
	struct per_name *next;
	struct cmd_stats *stats;  /* owned; stats->name is the name */
	struct cmd_sched *sched;  /* owned */
};

/* Give command c the per-name state of its name, made on first use.
 * Returns 0 or -ENOMEM.  r->lock is held. */
static int
attach_per_name(struct registry *r, struct command *c)
{
	struct per_name *pn;

	for (pn = r->names; pn != NULL; pn = pn->next)
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
		pn->next = r->names;
		r->names = pn;
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
	struct plugin *q;
	size_t count = g ? g->n_commands : 0;

	for (q = r->plugins; q != NULL; q = q->next)
		if (q != p && q->current != NULL)
			count += q->current->n_commands;
	if ((t = table_new(count)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (q = r->plugins; q != NULL; q = q->next) {
		if (q == p || q->current == NULL)
			continue;
		for (size_t i = 0; i < q->current->n_commands; i++)
			table_insert(t, &q->current->commands[i]);
	}
	for (size_t i = 0; g != NULL && i < g->n_commands; i++) {
		struct command *c = &g->commands[i], *other;

		if ((other = table_find(t, c->name)) != NULL) {
			snprintf(err, errlen, "command '%s' is already "
			    "registered by plugin '%s' (%s)", c->name,
			    other->gen->name, other->gen->file);
			free(t);
			return NULL;
		}
		table_insert(t, c);
	}
	return t;
}

static struct plugin *
plugin_find(struct registry *r, const char *file)
{
	for (struct plugin *p = r->plugins; p != NULL; p = p->next)
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

/* Try to load the file for plugin p and publish it.  Returns 0 or -1. */
static int
load_one(struct registry *r, struct plugin *p, const char *path,
    struct json_object *report)
{
	struct generation *g = NULL, *old = p->current;
	struct cmd_table *t;
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
	for (struct plugin *q = r->plugins; q != NULL; q = q->next)
		if (q != p && q->current != NULL && generation_conflict(g,
		    q->current, err, sizeof(err)) < 0)
			goto fail;
	if ((t = build_table(r, p, g, err, sizeof(err))) == NULL)
		goto fail;
	for (size_t i = 0; i < g->n_commands; i++) {
		if (attach_per_name(r, &g->commands[i]) < 0) {
			free(t);
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
	struct plugin **pp;
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
		for (pp = &r->plugins; *pp != p; pp = &(*pp)->next)
			;
		*pp = p->next;
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
	struct plugin *p, **pp;
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
		for (pp = &r->plugins; *pp != NULL; pp = &(*pp)->next)
			;
		*pp = p;
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
	for (p = r->plugins; p != NULL; p = p->next)
		p->present = 0;
	for (int i = 0; i < n; i++) {
		if (registry_is_plugin_file(names[i]->d_name))
			failures += sync_file(r, names[i]->d_name, report);
		free(names[i]);
	}
	free(names);
	/* Files that are gone: unpublish, then forget. */
	for (p = r->plugins; p != NULL; p = next) {
		char *file;

		next = p->next;
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

static struct json_object *
json_str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static struct json_object *
command_json(const struct command *c)
{
	struct json_object *o = json_object_new_object();
	struct json_object *flags = json_object_new_array();
	struct json_object *fields = json_object_new_array();

	json_object_object_add(o, "name", json_object_new_string(c->name));
	json_object_object_add(o, "summary", json_str_or_null(c->summary));
	if (c->flags & CMDHOST_SERIAL)
		json_object_array_add(flags, json_object_new_string("serial"));
	if (c->flags & CMDHOST_BLOCKING)
		json_object_array_add(flags, json_object_new_string("blocking"));
	json_object_object_add(o, "flags", flags);
	for (const cmdhost_field *f = c->fields; f && f->name; f++) {
		struct json_object *fo = json_object_new_object();

		json_object_object_add(fo, "name",
		    json_object_new_string(f->name));
		json_object_object_add(fo, "type",
		    json_object_new_string(request_type_name(f->type)));
		json_object_object_add(fo, "required",
		    json_object_new_boolean(f->required != 0));
		json_object_array_add(fields, fo);
	}
	json_object_object_add(o, "fields", fields);
	return o;
}

struct json_object *
registry_list_json(struct registry *r)
{
	struct json_object *arr = json_object_new_array();
	char stamp[40];

	pthread_mutex_lock(&r->view_lock);
	for (struct plugin *p = r->plugins; p != NULL; p = p->next) {
		struct json_object *o = json_object_new_object();
		struct json_object *cmds = json_object_new_array();
		struct generation *g = p->current;
		char base[256];

		if (p->name != NULL) {
			snprintf(base, sizeof(base), "%s", p->name);
		} else {
			snprintf(base, sizeof(base), "%s", p->file);
			base[strlen(base) - 3] = '\0'; /* drop ".so" */
		}
		json_object_object_add(o, "name", json_object_new_string(
		    g ? g->name : base));
		json_object_object_add(o, "version",
		    json_str_or_null(g ? g->version : NULL));
		json_object_object_add(o, "file", json_object_new_string(p->file));
		json_object_object_add(o, "generation",
		    g ? json_object_new_int64((int64_t)g->number) : NULL);
		/* A new file is listed before its first load finishes. */
		json_object_object_add(o, "state", json_object_new_string(
		    g != NULL ? (p->last_error ? "degraded" : "loaded") :
		    p->last_error ? "failed" : "loading"));
		if (g != NULL) {
			log_timestamp(stamp, sizeof(stamp), g->loaded_at_ms);
			json_object_object_add(o, "loaded_at",
			    json_object_new_string(stamp));
		} else {
			json_object_object_add(o, "loaded_at", NULL);
		}
		json_object_object_add(o, "error", json_str_or_null(
		    p->last_error));
		json_object_object_add(o, "loads",
		    json_object_new_uint64(p->loads));
		json_object_object_add(o, "load_failures",
		    json_object_new_uint64(p->load_failures));
		for (size_t i = 0; g != NULL && i < g->n_commands; i++)
			json_object_array_add(cmds,
			    command_json(&g->commands[i]));
		json_object_object_add(o, "commands", cmds);
		json_object_array_add(arr, o);
	}
	pthread_mutex_unlock(&r->view_lock);
	return arr;
}

struct json_object *
registry_stats_json(struct registry *r)
{
	struct json_object *o = json_object_new_object();

	pthread_mutex_lock(&r->view_lock);
	for (struct per_name *pn = r->names; pn != NULL; pn = pn->next)
		json_object_object_add(o, pn->stats->name,
		    metrics_cmd_json(pn->stats));
	pthread_mutex_unlock(&r->view_lock);
	return o;
}

struct json_object *
registry_plugin_stats_json(struct registry *r)
{
	struct json_object *o = json_object_new_object();
	char stamp[40];

	pthread_mutex_lock(&r->view_lock);
	for (struct plugin *p = r->plugins; p != NULL; p = p->next) {
		struct json_object *po = json_object_new_object();
		struct generation *g = p->current;

		json_object_object_add(po, "file",
		    json_object_new_string(p->file));
		json_object_object_add(po, "name", json_object_new_string(
		    g ? g->name : p->name ? p->name : p->file));
		json_object_object_add(po, "version",
		    json_str_or_null(g ? g->version : NULL));
		json_object_object_add(po, "generation",
		    g ? json_object_new_int64((int64_t)g->number) : NULL);
		json_object_object_add(po, "loads",
		    json_object_new_uint64(p->loads));
		json_object_object_add(po, "load_failures",
		    json_object_new_uint64(p->load_failures));
		if (g != NULL) {
			log_timestamp(stamp, sizeof(stamp), g->loaded_at_ms);
			json_object_object_add(po, "last_swap",
			    json_object_new_string(stamp));
			json_object_object_add(po, "last_swap_ms",
			    json_object_new_int64(g->loaded_at_ms));
		} else {
			json_object_object_add(po, "last_swap", NULL);
			json_object_object_add(po, "last_swap_ms", NULL);
		}
		/* Keyed by file: two files may claim one name while one of
		 * them is refused. */
		json_object_object_add(o, p->file, po);
	}
	pthread_mutex_unlock(&r->view_lock);
	return o;
}

void
registry_counts(struct registry *r, int *plugins, int *commands, int *failed)
{
	*plugins = *commands = *failed = 0;
	pthread_mutex_lock(&r->view_lock);
	for (struct plugin *p = r->plugins; p != NULL; p = p->next) {
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
	struct plugin *p, *next;
	struct per_name *pn, *pnext;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	for (p = r->plugins; p != NULL; p = p->next) {
		if (p->current == NULL)
			continue;
		unload_one(r, p, NULL, "the daemon is stopping", 0);
	}
	pthread_mutex_unlock(&r->lock);
	for (p = r->plugins; p != NULL; p = next) {
		next = p->next;
		/* Still published if unload_one() found no memory for a
		 * table: no reader is left, drop its generation anyway. */
		generation_release(p->current);
		plugin_free(p);
	}
	/* Finalize what the unloads above queued, then stop the reaper. */
	if (r->reaper_started) {
		pthread_mutex_lock(&r->reap_lock);
		r->reap_stop = 1;
		pthread_cond_signal(&r->reap_cond);
		pthread_mutex_unlock(&r->reap_lock);
		pthread_join(r->reaper, NULL);
	}
	for (pn = r->names; pn != NULL; pn = pnext) {
		pnext = pn->next;
		metrics_cmd_free(pn->stats);
		executor_sched_free(pn->sched);
		free(pn);
	}
	free(atomic_load(&r->table));
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->view_lock);
	pthread_mutex_destroy(&r->reap_lock);
	pthread_cond_destroy(&r->reap_cond);
	free(r->plugin_dir);
	free(r->copy_dir);
	free(r);
}
