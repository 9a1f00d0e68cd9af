/*
 * executor.h - the seam between dispatch and where a command runs.
 *
 * An executor is a table of operations (the shape of redis's
 * ConnectionType): submit a call, cancel one its owner has answered, stop,
 * and report.  Dispatch picks one per plugin and never knows how it runs
 * the call.  The first implementation, exec_pool.c, runs in the daemon's
 * process: on the submitting thread or on a pool of threads.  A process
 * executor is a new file behind the same table.
 */
#ifndef CMDHOST_EXECUTOR_H
#define CMDHOST_EXECUTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <json-c/json.h>

#include "call.h"

struct config;
struct executor;

enum exec_result {
	EXEC_DONE = 0,   /* ran on the calling thread: the result is in c */
	EXEC_QUEUED,     /* taken: c->executed(c) will be called once */
	EXEC_REJECTED    /* not taken (queue full, stopping): answer 503 */
};

struct executor_ops {
	const char *name;              /* "in-process", ... */

	/* Run or take c (see enum exec_result).  Before the executor puts c
	 * where another thread may take it, it calls c->taken(c) (at most
	 * once; then it returns EXEC_QUEUED); from then on it borrows c
	 * until it calls c->executed(c), on any thread, exactly once --
	 * whether it ran c or found it cancelled.  On EXEC_DONE and
	 * EXEC_REJECTED neither was called and c is untouched after return.
	 * Any thread. */
	int (*submit)(struct executor *ex, struct call *c);

	/* c was answered by its owner (504, shutdown, peer gone): never
	 * start it.  Returns 1 if it will not run, 0 if it is running (its
	 * result will be dropped).  c->executed is still called.  Any
	 * thread. */
	int (*cancel)(struct executor *ex, struct call *c);

	/* Refuse new work; wait until running calls are done and the
	 * executor's threads (or processes) are gone, or until deadline_ns
	 * (CLOCK_MONOTONIC).  Returns 0, or -1 when some call is still
	 * running. */
	int (*stop)(struct executor *ex, int64_t deadline_ns);

	/* Free; only after stop() returned 0.  NULL is ok. */
	void (*free)(struct executor *ex);

	/* Add the executor's figures (at least "queue_depth") to `into`
	 * (borrowed).  Any thread. */
	void (*stats)(struct executor *ex, struct json_object *into);
};

/* Every executor begins with its table. */
struct executor {
	const struct executor_ops *ops;
};

/*
 * What an executor keeps per command name, across generations (so that
 * SERIAL holds across a hot swap, and a slow command stays on the pool
 * after one): the SERIAL gate and the pool decision.  Owned by the
 * registry (executor_sched_new/free).
 */
struct cmd_sched {
	pthread_mutex_t lock;           /* guards the gate */
	int busy;                       /* a SERIAL call holds the gate */
	struct call_queue waiters;      /* SERIAL calls waiting for it */
	int waiting;
	atomic_int offloaded;           /* 1: calls run on the pool */
	atomic_int fast_runs;           /* pool runs under budget in a row */
	atomic_int slow_runs;           /* inline overruns in a row */
};

/* Returns new per-name scheduling state (executor_sched_free), or NULL. */
struct cmd_sched *executor_sched_new(void);
void executor_sched_free(struct cmd_sched *sc);

/* exec_pool.c: the in-process executor.  Returns new (ops->free) with its
 * pool threads started, or NULL with errno.  cfg is borrowed and must
 * outlive it. */
struct executor *exec_pool_new(const struct config *cfg);

/* exec_proc.c: the process executor (isolated generations run in their
 * pools of worker processes, proc.h).  Returns new (ops->free), or NULL
 * with errno.  cfg is borrowed and must outlive it. */
struct executor *exec_proc_new(const struct config *cfg);

#endif /* CMDHOST_EXECUTOR_H */
