/*
 * dispatch.h - the one call path of every transport.
 *
 * A transport (the socket's event loops, the NATS host) decodes a request
 * and hands it here.  Dispatch looks the command up, checks the declared
 * fields, makes the call, submits it to the plugin's executor, owns its
 * deadline, and completes it exactly once -- with the result, a 503 or a
 * 504 -- by the reply policy (request id, metrics, log).  The transport
 * then only writes what dispatch_reply() formatted.  A request with an
 * idempotency_key runs once per (scope, command, key): a retry gets the
 * stored result (idem.h), and a result is stored before its reply is
 * released.
 *
 * The completion rule (libuv's): for every call that dispatch_call()
 * accepted, the owner's done(c) runs exactly once, on the owner's thread:
 * inside dispatch_call() when the call ran inline or was refused, else
 * later -- an owner with a post function gets c handed to it from the
 * thread that answered and runs dispatch_complete(c) on its own thread;
 * an owner without one has done(c) run on the answering thread (a pool
 * thread, or the deadline timer).  A call that fails to start returns an
 * error and done is never called.  Deadlines are kept by dispatch's own
 * timer thread, so they fire even when the thread that runs the call
 * never returns.
 */
#ifndef CMDHOST_DISPATCH_H
#define CMDHOST_DISPATCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "call.h"
#include "core/buf.h"

struct config;
struct daemon_stats;
struct dispatch;
struct executor;
struct registry;
struct request;

/* A transport that owns calls. */
struct dispatch_owner {
	/* NULL, or: hand c to the owner's thread (called from any thread,
	 * once per call); there the owner calls dispatch_complete(c). */
	void (*post)(struct dispatch_owner *o, struct call *c);
	/* The log message of a call that finished 2xx ("call finished"). */
	const char *finished_msg;
};

/* What a transport says about one request. */
struct dispatch_args {
	int reader;                   /* the caller's registry reader slot */
	int64_t rid_ms;               /* request id: wall clock, */
	unsigned rid_src;             /* source (loop) and */
	uint64_t rid_seq;             /* that source's counter */
	long long pid, uid;           /* the peer's, -1 when unknown */
	int pool_only;                /* never run on the calling thread */
	const char *scope;            /* whose idempotency keys ("uid:1000",
	                               * "nats"), borrowed for the call */
	const struct idem_backend *idem; /* where keyed calls' records are:
	                               * NULL, dispatch's local store (where
	                               * idempotency_shared applies); else
	                               * borrowed, outlives its records */
	struct dispatch_owner *owner; /* borrowed, outlives its calls */
	call_done_fn done;
	void *owner_arg;              /* stored in c->owner_arg */
};

enum {
	DISPATCH_DONE = 0,   /* done(c) already ran; c is gone */
	DISPATCH_PENDING     /* done(c) will run later */
};

/*
 * Returns a new dispatcher (dispatch_free) with its executors and its
 * timer thread started, or NULL with the reason in err.  cfg, reg and
 * stats are borrowed and must outlive it.
 */
struct dispatch *dispatch_new(const struct config *cfg, struct registry *reg,
    struct daemon_stats *stats, char *err, size_t errlen);

/*
 * Run req (borrowed; req->root is taken on success).  Returns
 * DISPATCH_DONE or DISPATCH_PENDING (then, for an owner with post, *callp
 * is the call, valid on the owner's thread until done(c) runs or
 * dispatch_abandon(); for others *callp is NULL).  Returns -1 when no
 * call could be made (unknown command, fields, out of memory): then the
 * error reply's status and code (static) and the message in err, and req
 * is unchanged; the transport answers with reply_error().
 */
int dispatch_call(struct dispatch *d, const struct dispatch_args *a,
    struct request *req, struct call **callp, int *status, const char **code,
    char *err, size_t errlen);

/* On the owner's thread, for a call handed to post: run done(c) and drop
 * dispatch's reference (c is gone after). */
void dispatch_complete(struct call *c);

/*
 * Inside done(c): append c's reply line to out (the caller's) -- the
 * result, or the 503/504 dispatch answered with -- with its request id
 * when asked, count it and log it at the line time unix_ms (0: now).
 * Returns 0, or -ENOMEM (out may then hold part of it: drop the reply).
 */
int dispatch_reply(struct call *c, struct buf *out, long long unix_ms);

/* The status dispatch_reply() formats for c (inside done). */
int dispatch_status(const struct call *c);

/*
 * On the owner's thread: the owner of pending call c is going away (the
 * peer hung up).  Returns 1 if nobody had answered c: it never will be,
 * done(c) is not called, c is gone for the owner, and its result, when
 * it comes, is logged as dropped.  Returns 0 if an answer was already
 * handed to post: done(c) still runs when the owner takes it, and should
 * call dispatch_drop() instead of replying.
 */
int dispatch_abandon(struct call *c);

/* Inside done(c) of an owner that can no longer deliver: count and log
 * the answer as dropped instead of replying. */
void dispatch_drop(struct call *c);

/* On the owner's thread, at a forced shutdown: answer pending call c with
 * 503 now (done(c) runs before this returns) unless an answer is already
 * on its way to post. */
void dispatch_force(struct call *c);

/* The outbox of emitted events (state_dir/events.db).  Borrowed: it
 * lives until dispatch_stop(). */
struct outbox *dispatch_outbox(struct dispatch *d);
/* Install ex (taken over: dispatch stops and frees it) as the executor of
 * generations of isolation kind `kind`, which has none yet.  Before any
 * such generation is published.  Returns 0, or -EEXIST. */
int dispatch_set_executor(struct dispatch *d, int kind, struct executor *ex);

/* Add the executors' figures (queue_depth) to `into` (borrowed). */
void dispatch_stats(struct dispatch *d, struct json_object *into);

/* Stop the executors (see executor_ops.stop) until deadline_ns, then the
 * timer.  Returns 0, or -1 when a call is still running (then the
 * dispatcher must not be freed). */
int dispatch_stop(struct dispatch *d, int64_t deadline_ns);

/* Free after dispatch_stop() returned 0.  NULL is ok. */
void dispatch_free(struct dispatch *d);

/*
 * Inline calls that get stuck.  A thread that runs calls inline (an event
 * loop) gives dispatch a watch of its own (dispatch_thread_watch); each
 * dispatch_call() on it publishes its call there while it is submitted,
 * with no lock.  Another thread may then find the call stuck and adopt it
 * (dispatch_adopt): from then on the call is pending as if an executor
 * had taken it -- on the deadline heap, answered 504 at its deadline, its
 * result (if it ever comes) posted to the owner -- and the watched thread,
 * once its call returns, calls w->lost(w), which must not return: its
 * owner's state now belongs to the thread that adopted the call.
 */
enum { WATCH_IDLE = 0, WATCH_RUNNING, WATCH_CLAIMING, WATCH_ADOPTED };

struct dispatch_watch {
	atomic_uint_fast64_t state;     /* seq << 2 | WATCH_* */
	_Atomic(struct call *) call;    /* while RUNNING (borrowed) */
	atomic_int_fast64_t start_ns;   /* and when it started, */
	atomic_int_fast64_t deadline_ns; /* and its deadline */
	struct dispatch_owner *owner;   /* only calls of this owner are
	                                 * watched (borrowed) */
	void (*lost)(struct dispatch_watch *w); /* see above; no return */
};

/* Watch the inline calls of the calling thread with w (borrowed, lives
 * as long as the thread), or stop (NULL). */
void dispatch_thread_watch(struct dispatch_watch *w);

/*
 * Any thread: if w's call has run for stuck_ns or is past its deadline
 * at now_ns, adopt it: it goes on the deadline heap, its command
 * runs on the pool from now on (cmd_sched.offloaded), and it is returned
 * (dispatch keeps its reference: the owner completes it as a pending
 * call: done(c) runs once, on the owner's thread, through post).  Returns
 * NULL when there is nothing to adopt.
 */
struct call *dispatch_adopt(struct dispatch *d, struct dispatch_watch *w,
    int64_t now_ns, int64_t stuck_ns);

/* Make the calling thread an event loop's (on) or end that (off, before
 * the thread exits).  An event loop keeps freed calls, references on
 * generations (generation_cache) and its last command (cmd_index_cache)
 * for reuse, owns its metrics shard (metrics_shard_own) and hands clock
 * readings from one inline call to the next (clock_pass_on); off frees
 * and gives back what it kept. */
void dispatch_thread_cache(int on);

#endif /* CMDHOST_DISPATCH_H */
