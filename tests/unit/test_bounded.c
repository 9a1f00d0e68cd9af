/*
 * test_bounded.c - work on a thread of its own, waited for with a limit:
 * in time it is the caller's again; past the limit (or cancelled) the
 * caller goes on at once and the late callback owns the work when it
 * returns.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "bounded.h"
#include "core/clock.h"

/* Work that blocks until `go` is set, then counts itself done. */
struct work {
	atomic_int go, ran, late;
	int64_t late_ms;
};

static void
nap(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void
blocking(void *arg)
{
	struct work *w = arg;

	/* Polls: the test owns the clock. */
	while (!atomic_load(&w->go))
		nap(2);
	atomic_store(&w->ran, 1);
}

static void
late(void *arg, int64_t ms)
{
	struct work *w = arg;

	w->late_ms = ms;
	atomic_store(&w->late, 1);
}

/* Wait up to ms for *flag. */
static int
wait_flag(atomic_int *flag, int ms)
{
	int64_t end = clock_mono_ms() + ms;

	while (!atomic_load(flag) && clock_mono_ms() < end)
		nap(2);
	return atomic_load(flag);
}

Test(bounded, returns_in_time)
{
	struct work w = { 0 };

	atomic_store(&w.go, 1);
	cr_assert_eq(bounded_run(blocking, late, &w, clock_mono_ns() +
	    5000000000LL, NULL), 0);
	cr_assert(atomic_load(&w.ran));
	cr_assert_not(atomic_load(&w.late));
}

Test(bounded, abandons_past_the_deadline)
{
	static struct work w; /* outlives the call: the thread has it */
	int64_t t0 = clock_mono_ms(), took;

	cr_assert_eq(bounded_run(blocking, late, &w, clock_mono_ns() +
	    200000000LL, NULL), -ETIMEDOUT);
	took = clock_mono_ms() - t0;
	cr_assert(took >= 190 && took < 3000, "took %lld ms", (long long)took);
	cr_assert_not(atomic_load(&w.ran));
	/* Let it return: late() runs on its thread, with how long it ran. */
	atomic_store(&w.go, 1);
	cr_assert(wait_flag(&w.late, 5000), "late() never ran");
	cr_assert(w.late_ms >= 190, "late after %lld ms", (long long)w.late_ms);
}

static atomic_int cancel_flag;

static void *
canceller(void *arg)
{
	(void)arg;
	nap(100);
	atomic_store(&cancel_flag, 1);
	bounded_wake();
	return NULL;
}

Test(bounded, cancel_gives_up_at_once)
{
	static struct work w;
	pthread_t t;
	int64_t t0 = clock_mono_ms(), took;

	cr_assert_eq(pthread_create(&t, NULL, canceller, NULL), 0);
	cr_assert_eq(bounded_run(blocking, late, &w, clock_mono_ns() +
	    60000000000LL, &cancel_flag), -ETIMEDOUT);
	took = clock_mono_ms() - t0;
	pthread_join(t, NULL);
	cr_assert(took < 5000, "cancel took %lld ms", (long long)took);
	atomic_store(&w.go, 1);
	cr_assert(wait_flag(&w.late, 5000), "late() never ran");
}

/* Cancelled before it starts, work that returns at once is still waited
 * for (the grace): a stop in the middle of a rescan abandons only what
 * hangs, not a refusal that was about to be recorded. */
Test(bounded, cancel_still_waits_for_work_about_to_return)
{
	static atomic_int cancelled = 1;
	struct work w = { 0 };

	atomic_store(&w.go, 1);
	cr_assert_eq(bounded_run(blocking, late, &w, clock_mono_ns() +
	    60000000000LL, &cancelled), 0);
	cr_assert(atomic_load(&w.ran));
	cr_assert_not(atomic_load(&w.late));
}
