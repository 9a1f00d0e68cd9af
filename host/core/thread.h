/*
 * thread.h - how every thread that parses requests or runs plugin code is
 * set up, and condition variables that wait on the monotonic clock.
 */
#ifndef CMDHOST_THREAD_H
#define CMDHOST_THREAD_H

#include <pthread.h>

/* Put the calling thread in the C locale object (see thread.c for why:
 * it keeps json-c's parser off glibc's locale lock).  Call first thing in
 * every thread that parses requests or runs commands. */
void thread_use_c_locale(void);

/* Initialize a condition variable whose timed waits take CLOCK_MONOTONIC
 * deadlines (clock_mono_ts(clock_mono_ns() + n)). */
void thread_cond_init(pthread_cond_t *cond);

#endif /* CMDHOST_THREAD_H */
