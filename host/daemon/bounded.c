/*
 * bounded.c - work on a thread of its own, waited for with a limit.
 *
 * One lock and one condition variable serve every job: jobs are rare
 * (one per plugin load or unload) and a wake-up for the wrong job only
 * costs a look at a flag.  A job is shared by its waiter and its thread
 * and freed by whichever of the two lets go of it last.
 */
#include "bounded.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/thread.h"

/* How long a cancelled wait still waits for its job to return. */
#define BOUNDED_GRACE_NS (200 * 1000000LL)

struct job {
	bounded_fn fn;
	bounded_late_fn late;
	void *arg;
	int64_t started_ns;
	int done;          /* fn returned; under lock */
	int abandoned;     /* the waiter went on; under lock */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
init_cond(void)
{
	thread_cond_init(&cond);
}

static void *
job_main(void *p)
{
	struct job *j = p;
	int abandoned;

	j->fn(j->arg);
	pthread_mutex_lock(&lock);
	j->done = 1;
	abandoned = j->abandoned;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	if (abandoned) {
		/* The waiter is gone: the job and arg are ours alone.  The
		 * job goes first, so that nothing is left once late() has
		 * said it is done. */
		bounded_late_fn late = j->late;
		void *jarg = j->arg;
		int64_t ms = (clock_mono_ns() - j->started_ns) / 1000000;

		free(j);
		if (late != NULL)
			late(jarg, ms);
	}
	return NULL;
}

int
bounded_run(bounded_fn fn, bounded_late_fn late, void *arg,
    int64_t deadline_ns, const atomic_int *cancel)
{
	pthread_attr_t attr;
	pthread_t t;
	struct job *j;
	int rc, graced = 0;

	pthread_once(&once, init_cond);
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	j->fn = fn;
	j->late = late;
	j->arg = arg;
	j->started_ns = clock_mono_ns();
	if ((rc = pthread_attr_init(&attr)) != 0) {
		free(j);
		return -rc;
	}
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, job_main, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(j);
		return -rc;
	}
	pthread_mutex_lock(&lock);
	while (!j->done) {
		struct timespec ts;

		/* Cancelled: what is about to return (a refusal's stat, a
		 * quick load) still gets BOUNDED_GRACE_NS to do it, so a
		 * stop in the middle of a rescan abandons only what hangs. */
		if (!graced && cancel != NULL && atomic_load(cancel)) {
			int64_t end = clock_mono_ns() + BOUNDED_GRACE_NS;

			graced = 1;
			if (end < deadline_ns)
				deadline_ns = end;
		}
		ts = clock_mono_ts(deadline_ns);
		if (clock_mono_ns() >= deadline_ns ||
		    pthread_cond_timedwait(&cond, &lock, &ts) == ETIMEDOUT)
			break;
	}
	if (!j->done) {
		j->abandoned = 1;
		pthread_mutex_unlock(&lock);
		return -ETIMEDOUT;
	}
	pthread_mutex_unlock(&lock);
	/* The thread has let go of j: it only read `abandoned` (0). */
	free(j);
	return 0;
}

void
bounded_wake(void)
{
	pthread_once(&once, init_cond);
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}
