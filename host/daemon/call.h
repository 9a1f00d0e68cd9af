/*
 * call.h - a call: one invocation on its way through the daemon, from
 * dispatch to an executor and back, with what each of them keeps on it.
 *
 * Dispatch makes and frees calls (dispatch.h); executors only run them
 * (executor.h) and say once, through `executed`, that they are done.
 */
#ifndef CMDHOST_CALL_H
#define CMDHOST_CALL_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/queue.h>

#include "core/invocation.h"
#include "idem.h"

struct call;
struct dispatch;
struct dispatch_owner;
struct executor;

/* The owner's completion: see dispatch.h for when it runs. */
typedef void (*call_done_fn)(struct call *c);

/* Who answered a call first; exactly one of them does. */
enum call_answer {
	CALL_OPEN = 0,   /* nobody yet */
	CALL_RESULT,     /* the executor's result */
	CALL_REFUSED,    /* the executor would not take it: 503 */
	CALL_TIMEOUT,    /* the deadline passed first: 504 */
	CALL_FORCED,     /* shutdown gave up on it: 503 */
	CALL_ABANDONED,  /* the owner went away: nobody is told */
	CALL_REPLAY      /* its idempotency key's stored result */
};

struct call {
	struct invocation inv;        /* first */
	struct dispatch *d;           /* that made it */
	struct executor *ex;          /* that runs it */
	atomic_int refs;              /* dispatch's answer, the executor's */
	atomic_int answer;            /* enum call_answer */
	const char *answer_msg;       /* static: why dispatch answered */
	int pool_only;                /* never run on the submitting thread */
	void *idem;                   /* its key's record while it runs */
	const struct idem_backend *idem_be; /* whose record it is */
	struct idem_result replay;    /* CALL_REPLAY: owned */
	int key_reply;                /* deliver once its result is stored */
	int ev_won;                   /* its events are being stored, and
	                               * its result was the answer */
	size_t heap_idx;              /* in dispatch's deadline heap, or -1 */

	/* The owner's, set before dispatch_call(); dispatch never reads
	 * owner_arg or owner_slot. */
	struct dispatch_owner *owner; /* NULL: complete on any thread */
	call_done_fn done;
	void *owner_arg;
	void *owner_slot;
	STAILQ_ENTRY(call) owner_link;  /* the owner's completion queue */

	/* Set by dispatch for the executor: taken(c) right before the
	 * executor puts c where another thread may run it (then, and only
	 * then, executed(c) once when it is done with it). */
	void (*taken)(struct call *c);
	void (*executed)(struct call *c);
	STAILQ_ENTRY(call) exec_link;   /* the executor's queues */
	int64_t answer_ns;              /* when dispatch answered */
	struct call *timer_next;        /* dispatch's timer's batch */
	int adopted;                    /* an inline call found stuck and made
	                                 * pending (dispatch_adopt): it counts
	                                 * as taken; under dispatch's lock */
};

STAILQ_HEAD(call_queue, call);

#endif /* CMDHOST_CALL_H */
