/*
 * admin.c - host.ping, host.health, host.list, host.stats, host.reload.
 *
 * These run on the event-loop thread that read them, except the rescan of
 * host.reload, which loads plugin code: the server runs it on the
 * registry's scan thread (admin_is_reload tells it when).
 */
#include "admin.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "dispatch.h"
#include "registry.h"
#include "views.h"

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
	int rc = request_format_ok(out, req->id, 200, body);

	json_object_put(body);
	return rc < 0 ? rc : 200;
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
	if (strcmp(name, "host.health") == 0) {
		int plugins, commands, failed, stuck = 0, crashing;
		struct json_object *arr = json_object_new_array();
		struct json_object *crash = json_object_new_array();

		registry_counts(a->reg, &plugins, &commands, &failed);
		if (a->stuck_fn != NULL)
			stuck = a->stuck_fn(a->stuck_arg, arr);
		crashing = registry_crashing(a->reg, crash);
		body = json_object_new_object();
		json_object_object_add(body, "status",
		    json_object_new_string(stuck > 0 || crashing > 0 ?
		    "degraded" : "ok"));
		/* Each names a plugin whose worker processes keep dying. */
		json_object_object_add(body, "crashing", crash);
		/* Each names a command whose inline call holds a thread. */
		json_object_object_add(body, "stuck", arr);
		json_object_object_add(body, "plugins",
		    json_object_new_int(plugins));
		json_object_object_add(body, "commands",
		    json_object_new_int(commands));
		json_object_object_add(body, "failed",
		    json_object_new_int(failed));
		json_object_object_add(body, "uptime_s", json_object_new_int64(
		    (clock_wall_ms() - a->stats->started_ms) / 1000));
		return ok(out, req, body);
	}
	if (strcmp(name, "host.list") == 0) {
		body = json_object_new_object();
		json_object_object_add(body, "plugins",
		    view_plugins(a->reg));
		return ok(out, req, body);
	}
	if (strcmp(name, "host.stats") == 0) {
		body = metrics_daemon_json(a->stats, clock_wall_ms());
		dispatch_stats(a->disp, body);
		json_object_object_add(body, "commands",
		    view_command_stats(a->reg));
		json_object_object_add(body, "plugins",
		    view_plugin_stats(a->reg));
		{
			struct json_object *ab = json_object_new_object();
			long loads, finis;

			/* Given up on past load_timeout_ms / fini_timeout_ms
			 * and still running: a gauge. */
			registry_abandoned(&loads, &finis);
			json_object_object_add(ab, "loads",
			    json_object_new_int64(loads));
			json_object_object_add(ab, "finis",
			    json_object_new_int64(finis));
			json_object_object_add(body, "abandoned", ab);
		}
		return ok(out, req, body);
	}
	if (strcmp(name, "host.reload") == 0) {
		if (!admin_allowed(a, peer_uid)) {
			char msg[128];

			snprintf(msg, sizeof(msg), "host.reload is for admins; "
			    "uid %u is not one", (unsigned)peer_uid);
			rc = request_format_error(out, req->id, 403,
			    "forbidden", msg);
			return rc < 0 ? rc : 403;
		}
		/* Allowed: the caller runs it off its thread (see
		 * admin_is_reload). */
		rc = request_format_error(out, req->id, 503, "unavailable",
		    "host.reload runs on the registry's scan thread");
		return rc < 0 ? rc : 503;
	}
	rc = request_format_error(out, req->id, 404, "unknown_command",
	    "no such host command (host.ping, host.health, host.list, "
	    "host.stats, host.reload)");
	return rc < 0 ? rc : 404;
}

int
admin_is_reload(const struct admin *a, uid_t peer_uid,
    const struct request *req)
{
	return strcmp(req->command, "host.reload") == 0 &&
	    admin_allowed(a, peer_uid);
}
