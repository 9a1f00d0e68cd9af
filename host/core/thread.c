/*
 * thread.c - per-thread locale and monotonic condition variables.
 */
#include "thread.h"

#include <locale.h>

void
thread_use_c_locale(void)
{
	/*
	 * json-c's parser switches to a "C" numeric locale around every call
	 * with duplocale() and newlocale(), which take glibc's global locale
	 * lock -- unless the thread already uses the static C locale object,
	 * which duplocale() returns as it is.  The daemon never leaves the C
	 * locale, so this changes nothing but the lock: parsing on several
	 * threads no longer serializes.
	 */
	locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);

	if (c != (locale_t)0)
		uselocale(c);
}

void
thread_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}
