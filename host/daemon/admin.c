/*
 * admin.c - host.ping, host.health, host.list, host.stats, host.reload,
 * host.rollback.
 *
 * These run on the event-loop thread that read them, except the rescan of
 * host.reload and the load of host.rollback, which run plugin code: the
 * server runs them on the registry's scan thread (admin_is_reload tells
 * it when).
 */
#include "admin.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/envelope.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/version.h"
#include "dispatch.h"
#include "core/loader.h"
#include "outbox.h"
#include "registry.h"
#include "rollback.h"
#include "views.h"
#include "workflow.h"

int
admin_allowed(const struct admin *a, uid_t peer_uid)
{
	if (peer_uid == 0 || peer_uid == a->self_uid)
		return 1;
	for (int i = 0; i < a->cfg->n_admin_uids; i++)
		if (a->cfg->admin_uids[i] == peer_uid)
			return 1;
	return 0;
}

/* Append the reply with `body` (reference released here). */
static int
ok(struct buf *out, const struct request *req, struct json_object *body)
{
	int rc = request_format_ok_text(out, request_echo_id(req), 200,
	    body);

	json_object_put(body);
	return rc < 0 ? rc : 200;
}

/* Append a 4xx error reply; returns its status or a negative errno. */
static int
fail(struct buf *out, const struct request *req, int status, const char *code,
    const char *msg)
{
	int rc = request_format_error_text(out, request_echo_id(req), status,
	    code, msg);

	return rc < 0 ? rc : status;
}

/*
 * host.events (admin only: event bodies are the commands' data):
 * {"dead": true} lists dead letters instead of pending events, "limit"
 * caps the list (default 100), {"requeue": "ID"} puts a dead letter
 * back in its subject's queue.
 */
static int
events(const struct admin *a, uid_t peer_uid, const struct request *req,
    struct buf *out)
{
	struct outbox *ob = dispatch_outbox(a->disp);
	/* A scanned request makes its payload's tree on first ask. */
	struct json_object *p = envelope_payload((struct request *)req), *v,
	    *body;
	size_t pending, dead, limit = 100;
	int want_dead = 0;
	char msg[200];

	if (!admin_allowed(a, peer_uid)) {
		snprintf(msg, sizeof(msg), "host.events is for admins; uid %u "
		    "is not one", (unsigned)peer_uid);
		return fail(out, req, 403, "forbidden", msg);
	}
	if (p != NULL && !json_object_is_type(p, json_type_object))
		return fail(out, req, 400, "invalid_payload", "the payload of "
		    "host.events must be an object");
	if (p != NULL && json_object_object_get_ex(p, "requeue", &v)) {
		const char *id = json_object_get_string(v);

		if (!json_object_is_type(v, json_type_string))
			return fail(out, req, 400, "invalid_payload",
			    "\"requeue\" must be an event id (a string)");
		if (outbox_requeue(ob, id) < 0) {
			snprintf(msg, sizeof(msg), "no dead event has the id "
			    "'%.128s'", id);
			return fail(out, req, 404, "not_found", msg);
		}
		body = json_object_new_object();
		json_object_object_add(body, "requeued",
		    json_object_new_string(id));
		return ok(out, req, body);
	}
	if (p != NULL && json_object_object_get_ex(p, "dead", &v))
		want_dead = json_object_get_boolean(v);
	if (p != NULL && json_object_object_get_ex(p, "limit", &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) >
	    0)
		limit = (size_t)json_object_get_int64(v);
	outbox_counts(ob, &pending, &dead);
	body = json_object_new_object();
	json_object_object_add(body, "pending", json_object_new_uint64(pending));
	json_object_object_add(body, "dead", json_object_new_uint64(dead));
	json_object_object_add(body, want_dead ? "dead_events" : "events",
	    outbox_list(ob, want_dead, limit));
	return ok(out, req, body);
}

struct json_object *
admin_health(const struct admin *a)
{
	int plugins, commands, failed, stuck = 0, not_ok;
	struct json_object *arr = json_object_new_array();
	struct json_object *reasons = json_object_new_array();
	struct json_object *body = json_object_new_object();

	registry_counts(a->reg, &plugins, &commands, &failed);
	not_ok = view_health_reasons(a->reg, reasons);
	if (a->stuck_fn != NULL)
		stuck = a->stuck_fn(a->stuck_arg, arr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *t = json_object_array_get_idx(arr, i);
		char text[512];

		snprintf(text, sizeof(text), "command %s (plugin %s) is stuck "
		    "in an inline call on loop %d for %lld ms",
		    json_object_get_string(json_object_object_get(t,
		    "command")), json_object_get_string(json_object_object_get(
		    t, "plugin")), json_object_get_int(json_object_object_get(
		    t, "loop")), (long long)json_object_get_int64(
		    json_object_object_get(t, "running_ms")));
		json_object_array_add(reasons, json_object_new_string(text));
	}
	json_object_object_add(body, "status", json_object_new_string(
	    stuck > 0 || not_ok > 0 ? "degraded" : "ok"));
	/* One line each: a plugin not "loaded", a loop thread stuck. */
	json_object_object_add(body, "reasons", reasons);
	/* Each names a command whose inline call holds a thread. */
	json_object_object_add(body, "stuck", arr);
	json_object_object_add(body, "plugins", json_object_new_int(plugins));
	json_object_object_add(body, "commands",
	    json_object_new_int(commands));
	json_object_object_add(body, "failed", json_object_new_int(failed));
	json_object_object_add(body, "not_ok", json_object_new_int(not_ok));
	json_object_object_add(body, "version",
	    json_object_new_string(CMDHOST_VERSION));
	json_object_object_add(body, "uptime_s", json_object_new_int64(
	    (clock_wall_ms() - a->stats->started_ms) / 1000));
	return body;
}

struct json_object *
admin_stats(const struct admin *a)
{
	struct json_object *body = metrics_daemon_json(a->stats,
	    clock_wall_ms());

	json_object_object_add(body, "version",
	    json_object_new_string(CMDHOST_VERSION));
	dispatch_stats(a->disp, body);
	json_object_object_add(body, "commands", view_command_stats(a->reg));
	json_object_object_add(body, "plugins", view_plugin_stats(a->reg));
	{
		struct json_object *ab = json_object_new_object();
		long loads, finis;

		/* Given up on past load_timeout_ms / fini_timeout_ms and
		 * still running: a gauge. */
		registry_abandoned(&loads, &finis);
		json_object_object_add(ab, "loads",
		    json_object_new_int64(loads));
		json_object_object_add(ab, "finis",
		    json_object_new_int64(finis));
		json_object_object_add(body, "abandoned", ab);
	}
	if (a->loops_fn != NULL) {
		struct json_object *arr = json_object_new_array();

		a->loops_fn(a->loops_arg, arr);
		json_object_object_add(body, "loops", arr);
	}
	/* Unloaded generations whose copy dlclose left mapped. */
	json_object_object_add(body, "plugins_still_mapped",
	    json_object_new_int64(loader_still_mapped()));
	json_object_object_add(body, "rollbacks",
	    json_object_new_int64(rollback_count(
	    registry_get_rollback(a->reg))));
	return body;
}

int
admin_handle(const struct admin *a, uid_t peer_uid, const struct request *req,
    struct buf *out)
{
	const char *name = req->command;
	struct json_object *body;
	int rc;

	if (strcmp(name, "host.ping") == 0) {
		body = json_object_new_object();
		json_object_object_add(body, "pong", json_object_new_boolean(1));
		return ok(out, req, body);
	}
	if (strcmp(name, "host.health") == 0)
		return ok(out, req, admin_health(a));
	if (strcmp(name, "host.list") == 0) {
		body = json_object_new_object();
		json_object_object_add(body, "version",
		    json_object_new_string(CMDHOST_VERSION));
		json_object_object_add(body, "plugins",
		    view_plugins(a->reg));
		return ok(out, req, body);
	}
	if (strcmp(name, "host.stats") == 0)
		return ok(out, req, admin_stats(a));
	if (strcmp(name, "host.events") == 0)
		return events(a, peer_uid, req, out);
	if (strcmp(name, "host.executions") == 0) {
		const char *msg = NULL;
		int st = 500;

		body = wf_engine_executions(a->wf, envelope_payload(
		    (struct request *)req), &st, &msg);
		if (body == NULL) {
			rc = request_format_error_text(out,
			    request_echo_id(req), st, st == 404 ?
			    "not_found" : "bad_request", msg);
			return rc < 0 ? rc : st;
		}
		return ok(out, req, body);
	}
	if (strcmp(name, "host.reload") == 0 ||
	    strcmp(name, "host.rollback") == 0) {
		if (!admin_allowed(a, peer_uid)) {
			char msg[128];

			snprintf(msg, sizeof(msg), "%s is for admins; "
			    "uid %u is not one", name, (unsigned)peer_uid);
			rc = request_format_error_text(out,
			    request_echo_id(req), 403,
			    "forbidden", msg);
			return rc < 0 ? rc : 403;
		}
		/* Allowed: the caller runs it off its thread (see
		 * admin_is_reload). */
		rc = request_format_error_text(out, request_echo_id(req),
		    503, "unavailable",
		    "this command runs on the registry's scan thread");
		return rc < 0 ? rc : 503;
	}
	rc = request_format_error_text(out, request_echo_id(req), 404,
	    "unknown_command",
	    "no such host command (host.ping, host.health, host.list, "
	    "host.stats, host.events, host.executions, host.reload, "
	    "host.rollback)");
	return rc < 0 ? rc : 404;
}

int
admin_is_reload(const struct admin *a, uid_t peer_uid,
    const struct request *req)
{
	return (strcmp(req->command, "host.reload") == 0 ||
	    strcmp(req->command, "host.rollback") == 0) &&
	    admin_allowed(a, peer_uid);
}
