/*
 * request.h - parse and check one request line; format one reply line.
 *
 * A request is one JSON object: {"id", "command" (or the seed's
 * "commandType"), "payload", "timeout_ms", "want_request_id",
 * "idempotency_key"}.  Parsing never logs; it says
 * what is wrong in a caller-supplied buffer, phrased for the client.
 */
#ifndef CMDHOST_REQUEST_H
#define CMDHOST_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include <cmdhost/plugin.h>

#include "buf.h"

/* The deepest nesting a request's payload may have: 64 arrays or objects
 * inside each other, not counting the request object around them. */
#define REQUEST_MAX_DEPTH 64

/* The longest command name envelope_scan() keeps (a longer one is cut:
 * it can match no registered name, and messages show 200 bytes). */
#define REQUEST_MAX_COMMAND 255

/*
 * A request, made by request_parse() (a json-c tree of the whole line:
 * `scanned` is 0) or by envelope_scan() (envelope.h: the members read
 * from the line without a tree; `scanned` is 1, and root is the
 * payload's tree once envelope_payload() made it, else NULL).
 */
struct request {
	struct json_object *root;    /* owned reference: the whole line, or
	                              * (scanned) the payload, or NULL */
	struct json_object *id;      /* borrowed from root, or (scanned)
	                              * owned, or NULL */
	const char *command;         /* borrowed from root or cmd_buf */
	struct json_object *payload; /* borrowed from root; never NULL on 0
	                              * unless scanned */
	int64_t timeout_ms;          /* 0: the default */
	int want_request_id;         /* "want_request_id": true */
	int async;                   /* "async": true (a workflow answers
	                              * 202 at once); other values: false */
	const char *idem_key;        /* "idempotency_key", borrowed from
	                              * root, the line or key_buf (may hold
	                              * any byte), or NULL */
	size_t idem_key_len;         /* 1..REQUEST_MAX_IDEM_KEY */

	/* envelope_scan() only. */
	int scanned;
	struct json_tokener *tok;    /* borrowed, for envelope_payload() */
	const char *payload_text;    /* borrowed from the line, or "{}" */
	size_t payload_len;
	size_t payload_ws;           /* whitespace bytes between its tokens */
	int payload_plain;           /* no name in the line has an escape or
	                              * comes twice in its object: the
	                              * payload, without its whitespace, is
	                              * what body_text_check() would make */
	const char *id_text;         /* the id's JSON text in id_buf, or NULL
	                              * (then id, if any, says it) */
	char id_buf[48];
	char cmd_buf[REQUEST_MAX_COMMAND + 1];
	char key_buf[256];
};

/* The longest idempotency_key, in bytes. */
#define REQUEST_MAX_IDEM_KEY 255

/* The daemon's request ids: 20 hex digits, sortable by time. */
#define REQUEST_ID_LEN 20

/* A tokener set up for requests (strict, UTF-8, depth limit).  Returns new
 * (json_tokener_free), or NULL. */
struct json_tokener *request_tokener_new(void);

/* json_tokener_reset(tok) (borrowed), and what it forgets in json-c
 * 0.16: a high surrogate escape seen by a parse that then failed stays
 * in the tokener and puts a U+FFFD before the next parse's first \u
 * escape, so one client's bad line would change the next line's id,
 * command or payload on the same loop.  Every parse starts here. */
void request_tokener_reset(struct json_tokener *tok);

/*
 * Parse one line (without its '\n'; a trailing '\r' is allowed) into req.
 * Returns 0, or -1 with the reason in err; then req->id may still hold the
 * id to echo.  Either way release req with request_fini().
 */
int request_parse(struct json_tokener *tok, const char *line, size_t len,
    struct request *req, char *err, size_t errlen);

/* Release what req holds; safe on a zeroed request.  Either maker's. */
void request_fini(struct request *req);

/* Check `payload` against a {0}-terminated field list (NULL: nothing to
 * check).  Returns 0, or -1 with a message naming the field in err. */
int request_check_fields(const cmdhost_field *fields,
    struct json_object *payload, char *err, size_t errlen);

/* A 128-bit fingerprint of `command` and the canonical form of payload
 * (both borrowed): object members in key order, numbers as json-c reads
 * them, so that equal payloads sent with members in another order or
 * other spacing match.  For idempotency keys. */
void request_fingerprint(const char *command, struct json_object *payload,
    uint64_t fp[2]);

/* The length of request_key_digest()'s text. */
#define REQUEST_KEY_DIGEST_LEN 32

/* The name of (scope, command, key[0..len)) where only a few characters
 * may go, a JetStream key-value key: 128 bits from two independent 64-bit
 * hashes, as 32 lowercase hex digits and a NUL into out (the caller's).
 * All arguments are borrowed; key may hold any byte. */
void request_key_digest(const char *scope, const char *command,
    const char *key, size_t len, char out[REQUEST_KEY_DIGEST_LEN + 1]);

/* The name of a field type ("string", ...), for messages and host.list. */
const char *request_type_name(int type);

/* "a string", "an integer", ... for a value of JSON type t, in messages
 * about declared fields (static text).  Both request parsers use it. */
const char *request_json_type_label(enum json_type t);

/* True when a value of JSON type t satisfies declared field type `type`
 * (CMDHOST_STRING, ...; an unknown type accepts anything). */
int request_type_matches(int type, enum json_type t);

/* Append `{"id":..,"status":..,"body":..}\n` to out.  id and body are
 * borrowed (NULL is JSON null).  Returns 0 or -ENOMEM. */
int request_format_ok(struct buf *out, struct json_object *id, int status,
    struct json_object *body);

/* Append `{"id":..,"status":..,"error":{"code":..,"message":..}}\n`.  All
 * arguments are borrowed.  Returns 0 or -ENOMEM. */
int request_format_error(struct buf *out, struct json_object *id, int status,
    const char *code, const char *message);

/* The same two, with the id given as its JSON text (NULL: null), for
 * replies formatted away from the thread that owns the id object.
 *
 * Every reply line is strict JSON (jsoncheck.h) whatever the body holds:
 * request_format_ok() and request_format_ok_text() are for bodies the
 * host builds; bytes in them that are not UTF-8 (a name a plugin chose)
 * become U+FFFD, and a body that still is not strict JSON (NaN) is
 * answered 500 "bad_reply" instead. */
int request_format_ok_text(struct buf *out, const char *id_text, int status,
    struct json_object *body);

/* For a plugin's body (borrowed; NULL is null): append the reply, or
 * nothing when the body's text is not strict JSON (NaN, Infinity, invalid
 * UTF-8 in a key or a string, a custom serializer's stray text).  Returns
 * 0, -ENOMEM, or -EILSEQ with the reason in err (the caller's, errlen
 * bytes; may be NULL) -- then answer 500 "bad_reply" naming the plugin. */
int request_format_body(struct buf *out, const char *id_text, int status,
    struct json_object *body, char *err, size_t errlen);
int request_format_error_text(struct buf *out, const char *id_text,
    int status, const char *code, const char *message);

/* Append `{"id":..,"status":..,"body":text}\n` for a body text the
 * strict scanner passed with the reply rules (body_text_check(): no
 * whitespace, names as json-c writes them): text[0..len) is borrowed and
 * copied as it is.  Returns 0 or -ENOMEM. */
int request_format_checked(struct buf *out, const char *id_text, int status,
    const char *text, size_t len);

/* Append the JSON text of a reply's result member to out: for a 2xx the
 * body (borrowed; NULL is null), else the error object {"code",
 * "message"}.  What idempotency keys store.  Returns 0, -ENOMEM, or
 * -EILSEQ (nothing appended) for a body request_format_body() refuses. */
int request_format_member(struct buf *out, int status,
    struct json_object *body, const char *code, const char *message);

/* Append a replayed reply: {"id":..,"status":..,"body" (2xx) or "error":
 * text (len bytes, a member request_format_member() made; NULL is
 * null),"replayed":true}\n.  Returns 0, -ENOMEM, or -EILSEQ (nothing
 * appended) when text is not strict JSON (see jsoncheck.h). */
int request_format_stored(struct buf *out, const char *id_text, int status,
    const char *text, size_t len);

/* The JSON text of an id (string or integer) written into buf (size
 * bytes, owned by the caller), without json-c's print buffer.  Returns buf,
 * or NULL when it does not fit (then use request_id_text()). */
const char *request_id_format(struct json_object *id, char *buf,
    size_t size);

/* The JSON text of req's id (either maker's) as error replies echo it,
 * or NULL for none.  Borrowed from req. */
const char *request_echo_id(const struct request *req);

/* The JSON text of an id (string or integer), or NULL for none.  Borrowed
 * from the object (json-c keeps it), valid until the object changes. */
const char *request_id_text(struct json_object *id);

/* Write a request id into out: 11 hex digits of unix_ms, 2 of `source`
 * (which loop or thread), 7 of `seq` (that source's counter): unique while
 * no source makes 2^28 ids in one millisecond, and ordered by time. */
void request_id_make(char out[REQUEST_ID_LEN + 1], int64_t unix_ms,
    unsigned source, uint64_t seq);

/* Add "request_id": rid (borrowed) to the reply that was just formatted at
 * the end of out.  Returns 0, -ENOMEM, or -EINVAL if out does not end in a
 * reply. */
int request_put_request_id(struct buf *out, const char *rid);

#endif /* CMDHOST_REQUEST_H */
