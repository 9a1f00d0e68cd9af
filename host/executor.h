/*
 * executor.h - where commands run.
 *
 * A checked invocation is either run at once on the calling event-loop
 * thread (the fast path: no hand-off between threads) or queued to a pool
 * of threads: commands flagged CMDHOST_BLOCKING, commands that overran the
 * inline budget (until they prove fast again on the pool), and SERIAL calls
 * that wait for the previous call of their command (they wait in a list,
 * not on a thread).  The caller learns which by the return value and, for
 * the pool, by the invocation's done callback.  The executor knows nothing
 * of connections.
 */
#ifndef CMDHOST_EXECUTOR_H
#define CMDHOST_EXECUTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include <cmdhost/plugin.h>

struct config;
struct command;
struct invocation;

/*
 * What the executor keeps per command name, across generations (so that
 * SERIAL holds across a hot swap, and a slow command stays on the pool
 * after one): the SERIAL gate and the pool decision.  Owned by the
 * registry (executor_sched_new/free).
 */
struct cmd_sched {
	pthread_mutex_t lock;           /* guards the gate */
	int busy;                       /* a SERIAL call holds the gate */
	struct invocation *head, *tail; /* SERIAL calls waiting for it */
	int waiting;
	atomic_int offloaded;           /* 1: calls run on the pool */
	atomic_int fast_runs;           /* pool runs under budget in a row */
};

/* An invocation's life on the pool. */
enum inv_state {
	INV_QUEUED = 0,  /* not started (waiting, or run inline) */
	INV_RUNNING,     /* a pool thread took it */
	INV_CANCELLED    /* answered already: never start it */
};

/* The opaque SDK context; an invocation begins with it. */
struct cmdhost_ctx {
	const struct cmdhost_api *api;
};

typedef void (*invocation_done_fn)(struct invocation *inv);

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

	/* The result, filled by the call. */
	int finished;
	int oom;                      /* the error could not be copied */
	int status;
	struct json_object *body;     /* owned reference, 2xx only */
	char *code;                   /* owned, error only */
	char *message;                /* owned, error only */

	/* The owner's (the server's); the executor does not touch these. */
	invocation_done_fn done;      /* called on a pool thread */
	int want_request_id;          /* the reply carries request_id */
	int answered;                 /* replied before it finished (504) */
	int pool_only;                /* set by the owner: never run it on
	                               * the submitting thread */
	void *owner;                  /* read by done (any thread) */
	void *owner_slot;             /* the owner's thread only */
	struct invocation *next;
};

enum exec_result {
	EXEC_DONE = 0,   /* ran inline: the result is in inv */
	EXEC_QUEUED,     /* on the pool: inv->done(inv) will be called */
	EXEC_REJECTED    /* the pool's queue is full: answer 503 */
};

struct executor;

/* Returns new (executor_free) with its pool threads started, or NULL with
 * errno.  cfg is borrowed and must outlive the executor. */
struct executor *executor_new(const struct config *cfg);

/* Run or queue inv (see enum exec_result).  On EXEC_QUEUED the executor
 * borrows inv until it calls inv->done; on the others it is untouched
 * after return. */
int executor_submit(struct executor *ex, struct invocation *inv);

/* Run validate and execute of inv on the calling thread and fill its
 * result, including 504 when the deadline passed.  Used by the executor and
 * by anything that runs a command in-process. */
void executor_run_call(struct invocation *inv);

/* How many calls wait in the pool's queue now. */
int executor_queue_depth(struct executor *ex);

/* Refuse new pool work and wait until the pool is idle and its threads
 * have exited, or until deadline_ns (CLOCK_MONOTONIC).  Returns 0 when all
 * threads exited, -1 when some are still inside a command. */
int executor_stop(struct executor *ex, int64_t deadline_ns);

/* Free the executor; only after executor_stop() returned 0.  NULL ok. */
void executor_free(struct executor *ex);

/* Returns a new invocation (invocation_free) owning `root` (one reference
 * passes to it) and holding the caller's reference on cmd->gen.  id and
 * payload are borrowed from root; the id's JSON text is taken now, so that
 * replies never touch the id object again.  The request id is made from
 * rid_ms (wall clock), rid_loop and rid_seq.  NULL on ENOMEM (root and the
 * reference are then still the caller's). */
struct invocation *invocation_new(struct command *cmd, struct json_object *root,
    struct json_object *id, struct json_object *payload, int64_t rid_ms,
    unsigned rid_loop, uint64_t rid_seq);

/*
 * The invocation of a parsed request, as every transport makes it: look
 * the command up (reader: the caller's registry slot), check the payload's
 * declared fields (a failure counts as a 400 call of the command), and
 * take req->root (then NULL).  The deadline comes from req->timeout_ms or
 * default_timeout_ms, start_ns is now, the request id is made from rid_ms,
 * rid_src and rid_seq.  Returns a new invocation (invocation_free) holding
 * a reference on its generation, or NULL with the error reply's status and
 * code (static) and the message in err; req is then unchanged.
 */
struct registry;
struct request;
struct invocation *invocation_for_request(struct registry *reg, int reader,
    struct request *req, int64_t default_timeout_ms, int64_t rid_ms,
    unsigned rid_src, uint64_t rid_seq, int *status, const char **code,
    char *err, size_t errlen);

/* Mark inv, answered by its owner, so that the pool never starts it.
 * Returns 1 if it will not run, 0 if it is already running (its result
 * will be dropped by the owner).  Any thread. */
int executor_cancel(struct invocation *inv);

/* Returns new per-name scheduling state (executor_sched_free), or NULL. */
struct cmd_sched *executor_sched_new(void);
void executor_sched_free(struct cmd_sched *sc);

/* Release everything inv holds, including the generation reference.  The
 * memory may be kept for reuse by the calling thread (see below). */
void invocation_free(struct invocation *inv);

/* Free the invocations the calling thread keeps for reuse; call before a
 * thread that freed invocations exits. */
void executor_thread_cache_free(void);

/* The daemon's request id of inv (made on first use).  Borrowed. */
const char *invocation_request_id(struct invocation *inv);

/* Fill the request-context fields of lc (request id, client id, command,
 * plugin, version, generation, cold start, peer) from inv; the strings
 * are borrowed from inv and live as long as it. */
struct log_ctx;
void invocation_log_ctx(const struct invocation *inv, struct log_ctx *lc);

/* Set an error result (code and message copied).  Any earlier body is
 * dropped. */
void invocation_set_error(struct invocation *inv, int status,
    const char *code, const char *message);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t executor_now_ns(void);

/* Put the calling thread in the C locale object (see executor.c for why:
 * it keeps json-c's parser off glibc's locale lock).  Call first thing in
 * every thread that parses requests or runs commands. */
void executor_thread_locale(void);

/* Initialize a condition variable whose timed waits take CLOCK_MONOTONIC
 * deadlines (such as executor_now_ns() + n). */
void executor_cond_init(pthread_cond_t *cond);

/* The context functions of the host API table (see cmdhost/plugin.h). */
void *executor_ctx_state(cmdhost_ctx *ctx);
struct json_object *executor_ctx_payload(cmdhost_ctx *ctx);
const char *executor_ctx_payload_text(cmdhost_ctx *ctx, size_t *len);
const char *executor_ctx_request_id(cmdhost_ctx *ctx);
const char *executor_ctx_command(cmdhost_ctx *ctx);
int64_t executor_ctx_time_left_ms(cmdhost_ctx *ctx);
void executor_ctx_log(cmdhost_ctx *ctx, int level, const char *message);
int executor_ctx_respond(cmdhost_ctx *ctx, int status, struct json_object *body);
int executor_ctx_fail(cmdhost_ctx *ctx, int status, const char *code,
    const char *message);
struct json_object *executor_ctx_client_id(cmdhost_ctx *ctx);

#endif /* CMDHOST_EXECUTOR_H */
