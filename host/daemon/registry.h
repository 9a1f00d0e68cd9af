/*
 * registry.h - plugin files, their generations, and the commands they
 * publish.
 *
 * A generation is one loaded copy of one plugin file (core/generation.h).
 * The registry brings the plugin directory and the published command
 * table (cmd_table.h) in line, one writer at a time, and finalizes
 * generations whose last call returned on a thread of its own.  Views
 * (host.list, host.stats, NATS discovery) are built by iterating over
 * plugins and command names (views.h); the registry makes no JSON of its
 * own except a rescan's report.
 */
#ifndef CMDHOST_REGISTRY_H
#define CMDHOST_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "cmd_table.h"
#include "core/generation.h"
#include "core/metrics.h"

struct config;
struct registry;

/* Returns new (registry_free), or NULL with errno.  cfg is borrowed and must
 * outlive the registry; copy_dir is copied (where private copies go). */
struct registry *registry_new(const struct config *cfg, const char *plugin_dir,
    const char *copy_dir);

/* Open plugin_dir for good: walk its path checking every directory
 * (core/trust.h) and keep one descriptor that every later scan reads
 * through; later scans check that the path still leads there.  The first
 * scan does it if this was not called.  Returns 0, or -1 with the reason
 * in err (then refuse to start). */
int registry_open(struct registry *r, char *err, size_t errlen);

/* Stop loading: loads waited for are abandoned now, later scans and
 * syncs load nothing and report "the daemon is stopping".  Any thread;
 * first thing at shutdown, so that no writer holds up a join. */
void registry_quiesce(struct registry *r);

/*
 * registry_quiesce(), stop the scan thread, unpublish everything and
 * finalize every generation nobody uses, each fini bounded by
 * fini_timeout_ms and by deadline_ns (CLOCK_MONOTONIC; 0: none); it
 * returns at most a quarter of a second after deadline_ns.
 * Returns 0, or -1 if a generation or a load was abandoned, now or
 * earlier, and still runs (or a thread did not end by the deadline):
 * then plugin code may still run, so the caller must not free the
 * registry or the config and should exit (status 1).  A second call
 * returns the first one's result.
 */
int registry_stop(struct registry *r, int64_t deadline_ns);

/* registry_stop(r, 0) unless it ran, then free.  Generations still in
 * use are unloaded when their last call returns.  NULL is ok. */
void registry_free(struct registry *r);

/* The "abandoned" gauge: loads and finis given up on past their limit
 * whose threads have not returned (process-wide). */
void registry_abandoned(long *loads, long *finis);

/* Claim a reader slot for the calling thread (at most
 * REGISTRY_MAX_READERS).  Returns the slot, or -1. */
#define REGISTRY_MAX_READERS CMD_TABLE_MAX_READERS
int registry_reader(struct registry *r);

/* Find a command by name.  Returns it with a reference taken on its
 * generation (release with generation_release(cmd->gen)), or NULL.
 * Lock-free; `reader` is the caller's slot from registry_reader(). */
struct command *registry_lookup(struct registry *r, int reader,
    const char *name);

/* Rescan plugin_dir: load new and changed files, unload removed ones.  A
 * file that fails keeps its previous generation serving; each load runs
 * under load_timeout_ms outside the writers' lock (a stuck one is
 * abandoned and listed "stuck"); when plugin_dir fails its checks
 * (registry_open) nothing changes, the reason is logged and goes into
 * the report as "error".  If report is not
 * NULL, adds arrays "loaded", "unloaded", "failed" and "unchanged" to it
 * (borrowed object).  Returns the number of failures.  Serialized with
 * other writers by the registry's lock; never blocks readers.  It loads
 * plugin code: never call it on an event loop (see registry_scan_async). */
int registry_scan(struct registry *r, struct json_object *report);

/* Called once on the registry's scan thread when a scan asked for by
 * registry_scan_async() is done, with its report (a new object: the
 * function takes the reference) and its number of failures. */
typedef void (*registry_scan_fn)(void *arg, struct json_object *report,
    int failures);

/* Have registry_scan() run on the registry's own scan thread, then
 * fn(arg, ...) called there.  Returns 0 (fn will be called), or -ENOMEM
 * (it will not). */
int registry_scan_async(struct registry *r, registry_scan_fn fn, void *arg);

/* Like registry_scan() for one file name of plugin_dir (what the watcher
 * calls when that file changed).  Names that are not plugin files (no
 * ".so", dotfiles) are ignored.  Returns 1 if the file was refused. */
int registry_sync_file(struct registry *r, const char *file,
    struct json_object *report);

/* True for the names the registry loads: "*.so", not starting with ".". */
int registry_is_plugin_file(const char *name);

/* One plugin file as views see it; every pointer is borrowed for the
 * duration of the callback only. */
struct registry_plugin {
	const char *file;           /* its name in plugin_dir */
	const char *name;           /* the descriptor's, or the file's without
	                             * ".so" when never read */
	const char *read_name;      /* the descriptor's if ever read, or NULL */
	const char *state;          /* "loaded", "degraded", "failed",
	                             * "loading", "stuck" (its last load was
	                             * abandoned, nothing serves),
	                             * "rolled_back" (a kept copy serves, the
	                             * file's bytes are refused), "crashing"
	                             * (its worker processes keep dying) */
	struct rollback *rb;        /* for rollback_view(), or NULL */
	const struct generation *g; /* what serves, or NULL */
	const char *error;          /* the last load error, or NULL */
	uint64_t loads, load_failures;
	const char *warning;        /* an extra's note (a workflow naming a
	                             * command nobody serves), or NULL */
};

/* Call fn(p, arg) for every plugin file, in directory order, under the
 * registry's view lock: fn must not call into the registry.  fn returns
 * 0 to go on, non-zero to stop. */
typedef int (*registry_plugin_fn)(const struct registry_plugin *p,
    void *arg);
void registry_each_plugin(struct registry *r, registry_plugin_fn fn,
    void *arg);

/* Call fn(stats, arg) for every command name ever published (its
 * statistics outlive generations), under the view lock as above. */
typedef int (*registry_name_fn)(const struct cmd_stats *stats, void *arg);
void registry_each_name(struct registry *r, registry_name_fn fn, void *arg);

/* Called after each new command table is published (a load, a swap or an
 * unload), with the registry's writer lock held: it must only take note
 * (signal a thread) and never call back into the registry.  fn NULL
 * clears the hook.  arg is borrowed. */
typedef void (*registry_publish_fn)(void *arg);
void registry_set_publish_hook(struct registry *r, registry_publish_fn fn,
    void *arg);

/* Have rescans refuse what rb refuses, keep copies there, and tell it
 * what each file serves (rollback.h); rb is borrowed and outlives the
 * registry's loads.  Before the first scan. */
struct rollback;
void registry_set_rollback(struct registry *r, struct rollback *rb);

/* What registry_set_rollback() set, or NULL.  Borrowed. */
struct rollback *registry_get_rollback(struct registry *r);

/*
 * Put back the kept previous copy of plugin `name` (its plugin name or
 * its file's): load it (outside the writers' lock, under
 * load_timeout_ms) and publish it like a swap -- calls running on the bad
 * generation finish there, no call is lost -- then refuse the bad bytes
 * until the file's bytes change (rollback_refuse, with `why`, copied).
 * expect: the generation that must still serve (0: whichever serves),
 * else nothing is done.  report (borrowed, may be NULL) gets what was
 * put back, or "status", "code" and "error".  Returns 0 (done, or
 * another generation serves already), or -1.  Never on an event loop.
 */
int registry_rollback(struct registry *r, const char *name, uint64_t expect,
    const char *why, struct json_object *report);

/* registry_rollback(r, name, 0, "asked for by hand", report) on the scan
 * thread, then fn(arg, report, failures) there as registry_scan_async()
 * does.  Returns 0 or -ENOMEM (fn will not be called). */
int registry_rollback_async(struct registry *r, const char *name,
    registry_scan_fn fn, void *arg);
/*
 * Extras: commands that come from somewhere else than a plugin file (the
 * workflow definitions), listed by host.list next to the plugins under
 * `key` (a name no plugin file can have, such as "workflows/x.json"),
 * published in the same command table under the same rules.
 *
 * registry_put_extra() publishes g (one reference taken over; made
 * outside the loader with handle NULL: its fini runs on the reaper once
 * its last call returned) in place of what key published before.
 * Returns 0, or -1 (a command another plugin owns, out of memory): then
 * the refusal is logged and listed, g is released, the previous keeps
 * serving.  Scans of plugin_dir never touch extras.
 */
int registry_put_extra(struct registry *r, const char *key,
    struct generation *g, struct json_object *report);

/* Record that a new version of key was refused (err borrowed): listed as
 * degraded (the previous serves) or failed. */
void registry_extra_refused(struct registry *r, const char *key,
    const char *err);

/* Unpublish key's commands and forget it; `why` is logged (borrowed). */
void registry_del_extra(struct registry *r, const char *key,
    const char *why);

/* Set (copied) or clear (NULL) key's warning, shown by host.list. */
void registry_extra_warning(struct registry *r, const char *key,
    const char *warning);

/* Add the name of every plugin whose workers keep dying (state
 * "crashing") to the array `names` (borrowed); returns how many. */
int registry_crashing(struct registry *r, struct json_object *names);

/* Counts for host.health. */
void registry_counts(struct registry *r, int *plugins, int *commands,
    int *failed);

#endif /* CMDHOST_REGISTRY_H */
