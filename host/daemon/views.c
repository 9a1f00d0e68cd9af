/*
 * views.c - host.list, host.stats and the published commands as JSON.
 *
 * Each view is one pass of a registry iterator; the callbacks run under
 * the registry's view lock and only read what they are handed.
 */
#include "views.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/request.h"
#include "proc.h"
#include "registry.h"
#include "rollback.h"

static struct json_object *
str_or_null(const char *s)
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
	json_object_object_add(o, "summary", str_or_null(c->summary));
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

static int
add_plugin(const struct registry_plugin *p, void *arg)
{
	struct json_object *arr = arg;
	struct json_object *o = json_object_new_object();
	struct json_object *cmds = json_object_new_array();
	const struct generation *g = p->g;
	char stamp[40];

	json_object_object_add(o, "name", json_object_new_string(p->name));
	json_object_object_add(o, "version",
	    str_or_null(g ? g->version : NULL));
	json_object_object_add(o, "file", json_object_new_string(p->file));
	/* Of the bytes that serve (the private copy dlopen mapped). */
	json_object_object_add(o, "sha256", g != NULL && g->sha256[0] ?
	    json_object_new_string(g->sha256) : NULL);
	json_object_object_add(o, "generation",
	    g ? json_object_new_int64((int64_t)g->number) : NULL);
	json_object_object_add(o, "state", json_object_new_string(p->state));
	if (g != NULL) {
		log_timestamp(stamp, sizeof(stamp), g->loaded_at_ms);
		json_object_object_add(o, "loaded_at",
		    json_object_new_string(stamp));
	} else {
		json_object_object_add(o, "loaded_at", NULL);
	}
	json_object_object_add(o, "error", str_or_null(p->error));
	if (g != NULL) {
		char hex[17];

		json_object_object_add(o, "hash", json_object_new_string(
		    rollback_hash_text(g->content_hash, hex)));
	} else {
		json_object_object_add(o, "hash", NULL);
	}
	/* "rolled_back" and "rollback": the window, the kept copies. */
	(void)rollback_view(p->rb, p->file, g != NULL, o);
	if (p->warning != NULL)
		json_object_object_add(o, "warning",
		    json_object_new_string(p->warning));
	json_object_object_add(o, "loads", json_object_new_uint64(p->loads));
	json_object_object_add(o, "load_failures",
	    json_object_new_uint64(p->load_failures));
	if (g != NULL)
		proc_pool_describe(g->pool, o); /* isolation, worker pids */
	for (size_t i = 0; g != NULL && i < g->n_commands; i++)
		json_object_array_add(cmds, command_json(&g->commands[i]));
	json_object_object_add(o, "commands", cmds);
	json_object_array_add(arr, o);
	return 0;
}

struct json_object *
view_plugins(struct registry *r)
{
	struct json_object *arr = json_object_new_array();

	registry_each_plugin(r, add_plugin, arr);
	return arr;
}

static int
add_name(const struct cmd_stats *s, void *arg)
{
	json_object_object_add(arg, s->name, metrics_cmd_json(s));
	return 0;
}

struct json_object *
view_command_stats(struct registry *r)
{
	struct json_object *o = json_object_new_object();

	registry_each_name(r, add_name, o);
	return o;
}

static int
add_plugin_stats(const struct registry_plugin *p, void *arg)
{
	struct json_object *po = json_object_new_object();
	const struct generation *g = p->g;
	char stamp[40];

	json_object_object_add(po, "file", json_object_new_string(p->file));
	json_object_object_add(po, "name", json_object_new_string(g ? g->name :
	    p->read_name ? p->read_name : p->file));
	json_object_object_add(po, "version",
	    str_or_null(g ? g->version : NULL));
	json_object_object_add(po, "state", json_object_new_string(p->state));
	json_object_object_add(po, "generation",
	    g ? json_object_new_int64((int64_t)g->number) : NULL);
	json_object_object_add(po, "loads", json_object_new_uint64(p->loads));
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
	/* Keyed by file: two files may claim one name while one of them is
	 * refused. */
	json_object_object_add(arg, p->file, po);
	return 0;
}

struct json_object *
view_plugin_stats(struct registry *r)
{
	struct json_object *o = json_object_new_object();

	registry_each_plugin(r, add_plugin_stats, o);
	return o;
}

static int
add_commands(const struct registry_plugin *p, void *arg)
{
	const struct generation *g = p->g;

	/* Only generations that serve (a failed file has none). */
	for (size_t i = 0; g != NULL && i < g->n_commands; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "name",
		    json_object_new_string(g->commands[i].name));
		json_object_object_add(o, "summary",
		    str_or_null(g->commands[i].summary));
		json_object_object_add(o, "plugin",
		    json_object_new_string(g->name));
		json_object_object_add(o, "version",
		    json_object_new_string(g->version));
		json_object_array_add(arg, o);
	}
	return 0;
}

struct json_object *
view_commands(struct registry *r)
{
	struct json_object *arr = json_object_new_array();

	registry_each_plugin(r, add_commands, arr);
	return arr;
}

struct health_acc {
	struct json_object *reasons;
	int not_ok;
};

static int
add_reason(const struct registry_plugin *p, void *arg)
{
	struct health_acc *h = arg;
	char text[1024];

	/* Any state but "loaded" is not ok: "degraded" (an old generation
	 * serves, the new file was refused), "failed", "loading", "stuck",
	 * and the states of the isolation and rollback work ("crashing",
	 * "rolled_back"), whatever they are called. */
	if (strcmp(p->state, "loaded") == 0)
		return 0;
	h->not_ok++;
	snprintf(text, sizeof(text), "plugin %s (file %s) is %s%s%.900s",
	    p->name, p->file, p->state, p->error ? ": " : "",
	    p->error ? p->error : "");
	json_object_array_add(h->reasons, json_object_new_string(text));
	return 0;
}

int
view_health_reasons(struct registry *r, struct json_object *reasons)
{
	struct health_acc h = { reasons, 0 };

	registry_each_plugin(r, add_reason, &h);
	return h.not_ok;
}
