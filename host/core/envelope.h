/*
 * envelope.h - read a request line without building a tree: one strict
 * pass (jscan.h) checks the whole line and records the envelope (id,
 * command or commandType, timeout_ms, want_request_id, idempotency_key,
 * the payload's span); the payload's json-c tree is made only when
 * someone asks for it.  The fast path of every request on the socket.
 *
 * It accepts exactly what request_parse() accepts and gives the same
 * errors, with the exceptions docs/performance.md lists (json-c's
 * lenient numbers such as "1." or "-01" and its single-quoted strings
 * are refused here).
 */
#ifndef CMDHOST_ENVELOPE_H
#define CMDHOST_ENVELOPE_H

#include <stddef.h>

#include <json-c/json.h>

#include <cmdhost/plugin.h>

#include "request.h"

/*
 * Read one line (without its '\n'; trailing whitespace is allowed) into
 * req.  The line is borrowed: req points into it (payload_text,
 * idem_key) until request_fini(), so it must outlive req.  tok (borrowed,
 * from request_tokener_new()) is kept for envelope_payload() and is what
 * a line that needs a tree after all is parsed with (a member name with
 * an escape, or a refusal whose reason json-c words).  Returns 0, or -1
 * with the reason in err; then request_echo_id(req) is the id to echo.
 * Either way release req with request_fini().  Allocates nothing for an
 * ordinary line.
 */
int envelope_scan(struct json_tokener *tok, const char *line, size_t len,
    struct request *req, char *err, size_t errlen);

/*
 * The payload of req as a json-c value: req->payload when there is one,
 * else parsed now from the line (which must still be there) and owned by
 * req (req->root).  Borrowed from req; NULL on ENOMEM.
 */
struct json_object *envelope_payload(struct request *req);

/*
 * Check req's payload against a {0}-terminated field list (NULL:
 * nothing to check), as request_check_fields() does and with its
 * messages, on the scanned top-level members when it can (no tree), else
 * on envelope_payload().  Returns 0, -1 with a message naming the field
 * in err, or -ENOMEM.
 */
int envelope_check_fields(struct request *req, const cmdhost_field *fields,
    char *err, size_t errlen);

#endif /* CMDHOST_ENVELOPE_H */
