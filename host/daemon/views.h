/*
 * views.h - the JSON views of the registry that admin commands and NATS
 * discovery show, built with the registry's iterators.
 */
#ifndef CMDHOST_VIEWS_H
#define CMDHOST_VIEWS_H

#include <json-c/json.h>

struct registry;

/* Returns a new JSON array describing every plugin (host.list): name,
 * version, file, sha256 (of the bytes that serve), generation, state, loaded_at, error, loads,
 * load_failures, commands (name, summary, flags, fields). */
struct json_object *view_plugins(struct registry *r);

/* Returns a new JSON object: command name -> stats (host.stats). */
struct json_object *view_command_stats(struct registry *r);

/* Returns a new JSON object: plugin file -> {file, name, version, state,
 * generation, loads, load_failures, last_swap, last_swap_ms}
 * (host.stats). */
struct json_object *view_plugin_stats(struct registry *r);

/* Add to reasons (borrowed array) one line per plugin file whose state
 * is not "loaded", saying which and why.  Returns how many. */
int view_health_reasons(struct registry *r, struct json_object *reasons);

/* Returns a new JSON array of {name, summary, plugin, version}, one per
 * command now published (NATS discovery). */
struct json_object *view_commands(struct registry *r);

#endif /* CMDHOST_VIEWS_H */
