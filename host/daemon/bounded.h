/*
 * bounded.h - run one piece of plugin-facing work on a thread of its own
 * and wait for it with a time limit.
 *
 * Plugin code (a registration, a fini) may never return, and a thread
 * cannot be killed safely: past the limit the waiter gives up and goes
 * on, the thread keeps running (abandoned, knowingly leaked), and if it
 * ever returns a callback on that thread says so.  This file knows
 * nothing of plugins; it does not log.
 */
#ifndef CMDHOST_BOUNDED_H
#define CMDHOST_BOUNDED_H

#include <stdatomic.h>
#include <stdint.h>

/* The work, on its own thread; arg is the caller's. */
typedef void (*bounded_fn)(void *arg);

/* Called on the work's thread when work that was abandoned returns at
 * last, with how long it ran; it owns arg from then on (frees it). */
typedef void (*bounded_late_fn)(void *arg, int64_t ran_ms);

/*
 * Run fn(arg) on a new detached thread and wait until it returns, until
 * deadline_ns (CLOCK_MONOTONIC) passes, or until *cancel (if not NULL)
 * is non-zero and bounded_wake() was called, and then 200 ms more for
 * work about to return (or the deadline, if sooner), whichever is first.
 * Returns 0 when fn returned in time (arg is the caller's again), or
 * -ETIMEDOUT (also on cancel) when it was abandoned: from then on arg
 * belongs to the running thread, which calls late(arg, ms) when fn
 * returns, and the caller must not touch it.  Returns another negative
 * errno when no thread could be started (fn did not run).
 */
int bounded_run(bounded_fn fn, bounded_late_fn late, void *arg,
    int64_t deadline_ns, const atomic_int *cancel);

/* Wake every bounded_run() waiting, so that it looks at its cancel flag
 * again.  Any thread. */
void bounded_wake(void);

#endif /* CMDHOST_BOUNDED_H */
