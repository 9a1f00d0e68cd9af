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
