/*
 * invocation.h - one call of one command: the request it came from, its
 * deadline, and its result, as the plugin API sees it (a cmdhost_ctx is
 * the start of an invocation).
 *
 * The invocation knows nothing of transports or threads: dispatch owns
 * its life in the daemon, `cmdhost exec` runs one directly.
 */
#ifndef CMDHOST_INVOCATION_H
#define CMDHOST_INVOCATION_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include <cmdhost/plugin.h>

struct command;
struct event;
struct log_ctx;
struct request;

/* Bytes of payload or body text an invocation holds without a malloc. */
#define INV_TEXT_INLINE 256

/* An invocation's life on an executor. */
enum inv_state {
	INV_QUEUED = 0,  /* not started (waiting, or run inline) */
	INV_RUNNING,     /* a thread took it */
	INV_CANCELLED    /* answered already: never start it */
};

/* The opaque SDK context; an invocation begins with it. */
struct cmdhost_ctx {
	const struct cmdhost_api *api;
};

struct invocation {
	struct cmdhost_ctx ctx;       /* first: plugins get &inv->ctx */
	struct command *cmd;          /* holds a reference on cmd->gen */
	struct json_object *root;     /* owned reference: the request */
	struct json_object *id;       /* borrowed from root, or NULL */
	struct json_object *payload;  /* borrowed from root */
	char *payload_text;           /* owned, made on first request */
	size_t payload_len;
	const char *id_text;          /* id as JSON (id_buf or owned), or NULL */
	char id_buf[48];
	char request_id[24];          /* the daemon's id (invocation_new) */
	atomic_int cold_start;        /* it ran first in its generation */
	long long peer_pid;           /* the client's, -1 when unknown */
	long long peer_uid;
	atomic_int state;             /* enum inv_state */
	int64_t start_ns;             /* CLOCK_MONOTONIC */
	int64_t deadline_ns;
	int64_t end_ns;
	int want_request_id;          /* the reply carries request_id */
	int async;                    /* the request's "async": true */
	int keep_late;                /* invocation_run keeps a result past
	                               * the deadline: its owner decides */

	/* The result, filled by the call. */
	int finished;
	int oom;                      /* the error could not be copied */
	int status;
	struct json_object *body;     /* owned reference, 2xx only */
	char *code;                   /* owned, error only */
	char *message;                /* owned, error only */

	/* A result that came after the deadline (then status is 504): what
	 * the command answered, kept for whoever still wants it (an
	 * idempotency key stores a late success). */
	int late_status;              /* 0: none */
	struct json_object *late_body;  /* owned reference, or NULL */
	char *late_code, *late_message; /* owned, or NULL */

	/* Events execute emitted (ABI 1.2): the owner publishes them only
	 * when the answer is this 2xx result. */
	struct event *events;         /* owned array of n_events */
	size_t n_events;
	int in_execute;               /* emits are taken now */
	char *emit_refused;           /* owned: why an emit was refused */

	/* A call made from a scanned request (invocation_init_req): the
	 * payload is text first (payload_text, the client's bytes without
	 * the whitespace between tokens), its tree made on first ask
	 * (invocation_payload; then root and payload own it). */
	int text_mode;
	int payload_plain;            /* payload_text as a reply body needs
	                               * no second check (request.h) */
	int own_id;                   /* id is an owned reference */
	/* A 2xx body given as checked text (ctx_respond_text) that needs no
	 * tree: body stays NULL.  body_buf, or owned. */
	char *body_text;
	size_t body_len;
	char *late_text;              /* the same, kept past the deadline */
	size_t late_len;

	/* Last: never cleared as a whole (init clears what is above). */
	char payload_buf[INV_TEXT_INLINE];
	char body_buf[INV_TEXT_INLINE];
};

/* Set up inv (the caller's memory, zeroed here) to own `root` (one
 * reference passes to it) and hold the caller's reference on cmd->gen.
 * id and payload are borrowed from root; the id's JSON text is taken now,
 * so that replies never touch the id object again.  The request id is
 * made from rid_ms (wall clock), rid_src and rid_seq.  Returns 0, or
 * -ENOMEM (then root and the reference are still the caller's and inv
 * holds nothing). */
int invocation_init(struct invocation *inv, struct command *cmd,
    struct json_object *root, struct json_object *id,
    struct json_object *payload, int64_t rid_ms, unsigned rid_src,
    uint64_t rid_seq);

/* invocation_init() from a request either maker made (request.h).  A
 * request_parse() one gives its root to inv; an envelope_scan() one
 * gives a copy of its payload text and id (no tree, no allocation for
 * small ones) and its payload tree if dispatch made one.  What inv takes
 * is NULL in req afterwards; req stays the caller's.  Returns 0 or
 * -ENOMEM (then req still holds everything and inv nothing). */
int invocation_init_req(struct invocation *inv, struct command *cmd,
    struct request *req, int64_t rid_ms, unsigned rid_src,
    uint64_t rid_seq);

/* The payload as a json-c value, made from the text on first ask for a
 * text-mode call.  Borrowed from inv; NULL only on ENOMEM. */
struct json_object *invocation_payload(struct invocation *inv);

/* The client's id as a json-c value, made from its text on first ask
 * for a text-mode call.  Borrowed from inv; NULL when there is none (or
 * on ENOMEM). */
struct json_object *invocation_client_id(struct invocation *inv);

/* Release everything inv holds, including the generation reference; the
 * memory stays the caller's.  NULL is ok. */
void invocation_fini(struct invocation *inv);

/* invocation_init() on new heap memory: returns new (invocation_free), or
 * NULL on ENOMEM (root and the reference are then still the caller's). */
struct invocation *invocation_new(struct command *cmd, struct json_object *root,
    struct json_object *id, struct json_object *payload, int64_t rid_ms,
    unsigned rid_src, uint64_t rid_seq);

/* invocation_fini() and free.  NULL is ok. */
void invocation_free(struct invocation *inv);

/* Run validate and execute of inv on the calling thread and fill its
 * result, including 504 when the deadline passed (unless keep_late). */
void invocation_run(struct invocation *inv);

/* If inv finished past its deadline, make its result 504. */
void invocation_check_deadline(struct invocation *inv);

/* Mark inv, answered by its owner, so that no executor ever starts it.
 * Returns 1 if it will not run, 0 if it is already running (its result
 * will be dropped by the owner).  Any thread. */
int invocation_cancel(struct invocation *inv);

/* Take inv for running: 1 if it was queued (it is RUNNING now), 0 if it
 * was cancelled.  Any thread. */
int invocation_start(struct invocation *inv);

/* Fill the request-context fields of lc (request id, client id, command,
 * plugin, version, generation, cold start, peer) from inv; the strings
 * are borrowed from inv and live as long as it. */
void invocation_log_ctx(const struct invocation *inv, struct log_ctx *lc);

/* Set an error result (code and message copied).  Any earlier body is
 * dropped. */
void invocation_set_error(struct invocation *inv, int status,
    const char *code, const char *message);

/* The body inv's command answered cannot be sent (request_format_body()
 * said why: `why`, borrowed): make the result 500 "bad_reply", with a
 * message naming the plugin, its version and generation. */
void invocation_refuse_body(struct invocation *inv, const char *why);

/* Free inv's events (it emits nothing after).  Any thread that owns inv. */
void invocation_drop_events(struct invocation *inv);

/* The invocation a plugin's context belongs to.  Borrowed. */
static inline struct invocation *
invocation_of(cmdhost_ctx *ctx)
{
	return (struct invocation *)(void *)ctx;
}

#endif /* CMDHOST_INVOCATION_H */
