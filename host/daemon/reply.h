/*
 * reply.h - what every transport (the socket, NATS) does with a reply it
 * has formatted: add the request id when asked, count a 503, and log the
 * request by the daemon's rules.  One place, so the two cannot drift.
 */
#ifndef CMDHOST_REPLY_H
#define CMDHOST_REPLY_H

#include "core/buf.h"

struct config;
struct daemon_stats;
struct log_ctx;
struct request;

/*
 * The reply just formatted at the end of out (borrowed) gets
 * "request_id" when the client asked (want) or the config says so; a 503
 * is counted in stats; the request is logged: errors always (4xx at warn,
 * 5xx at error; limited per client uid, see log_client_str()), a
 * generation's first call (lc->cold_start) and, with
 * access_log, every other one at info.  lc (borrowed) must hold the
 * request id and the status.  Returns 0, or -ENOMEM when the request id
 * could not be added.
 */
int reply_finish(const struct config *cfg, struct daemon_stats *stats,
    struct buf *out, int want, const struct log_ctx *lc,
    const char *message);

/* 0 when reply_finish() would do nothing for a reply of `status` (want
 * and cold_start as there): no request id to add, nothing to count or
 * log.  A caller may then skip making the log context. */
int reply_finish_needed(const struct config *cfg, int want, int status,
    int cold_start);

/*
 * Append the error reply no plugin made to req (borrowed; NULL for a
 * line that made no request) to out, and reply_finish() it with request
 * id rid and the peer's pid and uid (-1: unknown).  Returns 0 or -ENOMEM
 * (out may then hold part of it: the caller drops the reply).
 */
int reply_error(const struct config *cfg, struct daemon_stats *stats,
    struct buf *out, const struct request *req, const char *rid, int status,
    const char *code, const char *message, long long pid, long long uid);

#endif /* CMDHOST_REPLY_H */
