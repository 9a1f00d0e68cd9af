/*
 * admin.h - the daemon's own commands, host.*.
 *
 * host.ping, host.health, host.list and host.stats are open to every peer;
 * host.reload and host.rollback (and any later command that changes
 * state) only to peers whose uid is the daemon's, root's, or listed in
 * admin_uids.
 */
#ifndef CMDHOST_ADMIN_H
#define CMDHOST_ADMIN_H

#include <sys/types.h>

#include "core/buf.h"
#include "core/request.h"

struct config;
struct daemon_stats;
struct dispatch;
struct registry;
struct wf_engine;

struct admin {
	const struct config *cfg;    /* borrowed */
	struct registry *reg;        /* borrowed */
	struct daemon_stats *stats;  /* borrowed */
	struct dispatch *disp;       /* borrowed */
	struct wf_engine *wf;        /* borrowed, or NULL: no workflows */
	uid_t self_uid;
	/* NULL, or: add one object per call stuck inline to arr (borrowed)
	 * and return how many (host.health is degraded while any is). */
	int (*stuck_fn)(void *arg, struct json_object *arr);
	void *stuck_arg;
	/* NULL, or: add one object per event loop to arr (borrowed), for
	 * host.stats's "loops". */
	void (*loops_fn)(void *arg, struct json_object *arr);
	void *loops_arg;
};

/* Answer the host.* request req (borrowed) from a peer with uid peer_uid:
 * append exactly one reply line to out.  Returns the reply's status, or a
 * negative errno when out could not grow (then nothing was appended). */
int admin_handle(const struct admin *a, uid_t peer_uid,
    const struct request *req, struct buf *out);

/*
 * host.health's body, a new object (json_object_put it): "status" is
 * "ok" only when every plugin file is "loaded" and no loop thread is
 * stuck, else "degraded", with one line per cause in "reasons"; also
 * stuck, plugins, commands, failed, not_ok, version, uptime_s.  Any
 * thread (the HTTP endpoint's too).
 */
struct json_object *admin_health(const struct admin *a);

/* host.stats's body, a new object (json_object_put it): the daemon's
 * counters, its version, each command's and each plugin file's. */
struct json_object *admin_stats(const struct admin *a);

/* True when peer_uid is an admin: root, the daemon's own uid, or listed in
 * admin_uids (may run host.reload; exempt from the per-uid limits). */
int admin_allowed(const struct admin *a, uid_t peer_uid);

/* True when req is a host.reload or a host.rollback that peer_uid may
 * run: then the caller runs it off its thread (registry_scan_async,
 * registry_rollback_async) and replies with its report, instead of
 * calling admin_handle(). */
int admin_is_reload(const struct admin *a, uid_t peer_uid,
    const struct request *req);

#endif /* CMDHOST_ADMIN_H */
