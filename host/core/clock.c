/*
 * clock.c - monotonic and wall time, and deadline conversions.
 */
#include "clock.h"

__thread int clock_pass_enabled;
__thread int64_t clock_passed_ns;

int64_t
clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t
clock_mono_ms(void)
{
	return clock_mono_ns() / 1000000;
}

long long
clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec
clock_mono_ts(int64_t deadline_ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(deadline_ns / 1000000000LL);
	ts.tv_nsec = (long)(deadline_ns % 1000000000LL);
	return ts;
}

struct timespec
clock_wall_ts(int64_t deadline_ns)
{
	struct timespec ts;
	int64_t wall, left = deadline_ns - clock_mono_ns();

	clock_gettime(CLOCK_REALTIME, &ts);
	wall = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	if (left > 0)
		wall += left;
	ts.tv_sec = (time_t)(wall / 1000000000LL);
	ts.tv_nsec = (long)(wall % 1000000000LL);
	return ts;
}
