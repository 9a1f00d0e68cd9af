/*
 * sleep.h - for the test plugins: sleep the payload's "ms" milliseconds
 * (all of them, even past the call's deadline, so that the daemon's
 * timeout and late-result paths run).  Header-only: each test plugin is
 * built from its one source file.
 */
#ifndef CMDHOST_TEST_SLEEP_H
#define CMDHOST_TEST_SLEEP_H

#include <cmdhost/plugin.h>

#include <errno.h>
#include <stdint.h>
#include <time.h>

/* Sleep payload "ms" (missing or negative: 0) and return it.  A payload
 * "say" string is logged at info first, so that a test can tell that the
 * call has started. */
static inline int64_t
sleep_payload_ms(cmdhost_ctx *ctx)
{
	json_object *ms, *say;
	struct timespec ts;
	int64_t n = 0;

	if (json_object_object_get_ex(cmdhost_payload(ctx), "say", &say))
		cmdhost_log(ctx, CMDHOST_LOG_INFO, "%s",
		    json_object_get_string(say));
	if (json_object_object_get_ex(cmdhost_payload(ctx), "ms", &ms))
		n = json_object_get_int64(ms);
	if (n < 0)
		n = 0;
	ts.tv_sec = (time_t)(n / 1000);
	ts.tv_nsec = (long)(n % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	return n;
}

#endif /* CMDHOST_TEST_SLEEP_H */
