/*
 * reply.c - the end of every reply: request id, 503 count, log line.
 */
#include "reply.h"

#include <errno.h>

#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/request.h"

int
reply_finish_needed(const struct config *cfg, int want, int status,
    int cold_start)
{
	/* What reply_finish() looks at, in the same terms. */
	return want || cfg->reply_request_id || status >= 400 ||
	    cfg->access_log || cold_start == 1;
}

int
reply_finish(const struct config *cfg, struct daemon_stats *stats,
    struct buf *out, int want, const struct log_ctx *lc,
    const char *message)
{
	int level = lc->status >= 500 ? LOGL_ERROR :
	    lc->status >= 400 ? LOGL_WARN : LOGL_INFO;
	int rc = 0;

	if (want || cfg->reply_request_id)
		rc = request_put_request_id(out, lc->request_id);
	if (lc->status == 503)
		metrics_add(stats, DM_UNAVAILABLE, 1);
	/* Error replies come as fast as a client sends: limited per uid. */
	if (level > LOGL_INFO)
		log_client_str(level, lc, message);
	else if (cfg->access_log || lc->cold_start == 1)
		log_emit_str(level, lc, message);
	return rc < 0 ? -ENOMEM : 0;
}

int
reply_error(const struct config *cfg, struct daemon_stats *stats,
    struct buf *out, const struct request *req, const char *rid, int status,
    const char *code, const char *message, long long pid, long long uid)
{
	struct log_ctx lc = LOG_CTX_INIT;

	if (request_format_error_text(out, req ? request_echo_id(req) : NULL,
	    status, code, message) < 0)
		return -ENOMEM;
	lc.request_id = rid;
	if (req != NULL) {
		lc.id = request_echo_id(req);
		lc.command = req->command;
	}
	lc.status = status;
	lc.error_code = code;
	lc.pid = pid;
	lc.uid = uid;
	return reply_finish(cfg, stats, out, req ? req->want_request_id : 0,
	    &lc, message);
}
