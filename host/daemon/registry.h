/*
 * registry.h - the command table and plugin generations.
 *
 * A generation is one loaded copy of one plugin file.  The table that maps
 * command names to commands is immutable once published; a change builds a
 * new table and swaps one pointer.  Readers never lock: a hazard pointer
 * per reader thread keeps a table alive while it is searched, and a
 * reference on the generation keeps a command alive while it runs.
 */
#ifndef CMDHOST_REGISTRY_H
#define CMDHOST_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include <cmdhost/plugin.h>

#include "core/generation.h"
#include "core/metrics.h"

struct config;

struct registry;

/* Returns new (registry_free), or NULL with errno.  cfg is borrowed and must
 * outlive the registry; copy_dir is copied (where private copies go). */
struct registry *registry_new(const struct config *cfg, const char *plugin_dir,
    const char *copy_dir);

/* Unpublish everything and drop the registry's references (generations
 * still in use are unloaded when their last call returns).  NULL is ok. */
void registry_free(struct registry *r);

/* Claim a reader slot for the calling thread (at most REGISTRY_MAX_READERS).
 * Returns the slot, or -1. */
#define REGISTRY_MAX_READERS 256
int registry_reader(struct registry *r);

/* Find a command by name.  Returns it with a reference taken on its
 * generation (release with generation_release(cmd->gen)), or NULL.
 * Lock-free; `reader` is the caller's slot from registry_reader(). */
struct command *registry_lookup(struct registry *r, int reader,
    const char *name);

/* Rescan plugin_dir: load new and changed files, unload removed ones.  A
 * file that fails keeps its previous generation serving.  If report is not
 * NULL, adds arrays "loaded", "unloaded", "failed" and "unchanged" to it
 * (borrowed object).  Returns the number of failures.  Serialized with
 * other writers by the registry's lock; never blocks readers. */
int registry_scan(struct registry *r, struct json_object *report);

/* Like registry_scan() for one file name of plugin_dir (what the watcher
 * calls when that file changed).  Names that are not plugin files (no
 * ".so", dotfiles) are ignored.  Returns 1 if the file was refused. */
int registry_sync_file(struct registry *r, const char *file,
    struct json_object *report);

/* True for the names the registry loads: "*.so", not starting with ".". */
int registry_is_plugin_file(const char *name);

/* Returns a new JSON array describing every plugin (host.list). */
struct json_object *registry_list_json(struct registry *r);

/* Returns a new JSON object: command name -> stats (host.stats). */
struct json_object *registry_stats_json(struct registry *r);

/* Returns a new JSON object: plugin file -> {file, version, generation,
 * loads, load_failures, last_swap, last_swap_ms} (host.stats). */
struct json_object *registry_plugin_stats_json(struct registry *r);

/* Called after each new command table is published (a load, a swap or an
 * unload), with the registry's writer lock held: it must only take note
 * (signal a thread) and never call back into the registry.  fn NULL
 * clears the hook.  arg is borrowed. */
typedef void (*registry_publish_fn)(void *arg);
void registry_set_publish_hook(struct registry *r, registry_publish_fn fn,
    void *arg);

/* Counts for host.health. */
void registry_counts(struct registry *r, int *plugins, int *commands,
    int *failed);

#endif /* CMDHOST_REGISTRY_H */
