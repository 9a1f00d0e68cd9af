/*
 * clock.h - the one clock of every program: monotonic time for deadlines
 * and durations, wall time for timestamps and request ids.
 */
#ifndef CMDHOST_CLOCK_H
#define CMDHOST_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t clock_mono_ns(void);

/*
 * One reading handed from the end of a call to the start of the next on
 * the same thread, so that an event loop working through the lines of
 * one read reads the clock once per call, not twice.  A thread turns it
 * on (clock_pass_on(1): an event loop, in dispatch_thread_cache); then
 * clock_pass() keeps a reading and clock_mono_ns_passed() takes it, or
 * reads the clock when none is kept.  The thread drops what is kept (clock_pass_clear) where
 * it might wait or work long between calls: the next call's start is at
 * most that much early.
 */
extern __thread int clock_pass_enabled;
extern __thread int64_t clock_passed_ns;

static inline void
clock_pass_on(int on)
{
	clock_pass_enabled = on;
	clock_passed_ns = 0;
}

static inline void
clock_pass(int64_t ns)
{
	if (clock_pass_enabled)
		clock_passed_ns = ns;
}

static inline void
clock_pass_clear(void)
{
	clock_passed_ns = 0;
}

static inline int64_t
clock_mono_ns_passed(void)
{
	int64_t ns = clock_passed_ns;

	if (ns == 0)
		return clock_mono_ns();
	clock_passed_ns = 0;
	return ns;
}

/* CLOCK_MONOTONIC in milliseconds. */
int64_t clock_mono_ms(void);

/* Milliseconds since the epoch (CLOCK_REALTIME), as timestamps use. */
long long clock_wall_ms(void);

/* A monotonic deadline (ns) as a timespec for the pthread calls that
 * take CLOCK_MONOTONIC deadlines (see thread_cond_init()). */
struct timespec clock_mono_ts(int64_t deadline_ns);

/* A monotonic deadline (ns) as an absolute CLOCK_REALTIME timespec, for
 * the calls that only take the wall clock (pthread_timedjoin_np). */
struct timespec clock_wall_ts(int64_t deadline_ns);

#endif /* CMDHOST_CLOCK_H */
