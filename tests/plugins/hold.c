/*
 * hold.c - plugin "hold": commands whose timing a test controls, for the
 * unit tests of dispatch.
 *
 * hold.wait (BLOCKING) writes one byte to the [plugin:hold] `started` file
 * descriptor when it starts, then waits for one byte on the `release`
 * descriptor (which the test made non-blocking) for at most payload
 * "max_ms" (default 10000) and answers {"released": true}, or 500 when
 * nothing came.  A test thus knows a call is running and ends it when it
 * wants, without sleeping.
 *
 * hold.serial (SERIAL, not blocking) sleeps payload "us" microseconds
 * and answers {"overlap": N}: how many other calls of it were inside
 * execute meanwhile, which the SERIAL gate must keep at 0.
 */
#include <cmdhost/plugin.h>

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct hold {
	int release_fd;
	int started_fd;
};

static atomic_int serial_inside;

static void
hold_fini(void *state)
{
	free(state);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
wait_execute(cmdhost_ctx *ctx)
{
	struct hold *h = cmdhost_state(ctx);
	json_object *v;
	int64_t max_ms = 10000, end;
	char byte = 's';

	if (json_object_object_get_ex(cmdhost_payload(ctx), "max_ms", &v))
		max_ms = json_object_get_int64(v);
	if (write(h->started_fd, &byte, 1) != 1)
		return cmdhost_fail(ctx, 500, "hold_failed", "cannot write "
		    "to the started descriptor");
	end = now_ms() + max_ms;
	for (;;) {
		struct pollfd pfd = { h->release_fd, POLLIN, 0 };
		int64_t left = end - now_ms();

		if (read(h->release_fd, &byte, 1) == 1)
			break;
		if (errno != EAGAIN && errno != EINTR)
			return cmdhost_fail(ctx, 500, "hold_failed", "cannot "
			    "read the release descriptor");
		if (left <= 0)
			return cmdhost_fail(ctx, 500, "hold_failed", "not "
			    "released in time");
		poll(&pfd, 1, (int)left);
	}
	v = json_object_new_object();
	json_object_object_add(v, "released", json_object_new_boolean(1));
	return cmdhost_ok(ctx, v);
}

static int
serial_execute(cmdhost_ctx *ctx)
{
	json_object *v;
	struct timespec ts;
	int64_t us = 0;
	int before, after;

	before = atomic_fetch_add(&serial_inside, 1);
	if (json_object_object_get_ex(cmdhost_payload(ctx), "us", &v))
		us = json_object_get_int64(v);
	if (us > 0) {
		ts.tv_sec = (time_t)(us / 1000000);
		ts.tv_nsec = (long)(us % 1000000) * 1000L;
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	after = atomic_fetch_sub(&serial_inside, 1) - 1;
	v = json_object_new_object();
	json_object_object_add(v, "overlap", json_object_new_int(before +
	    after));
	return cmdhost_ok(ctx, v);
}

static const cmdhost_command commands[] = {
	{ "hold.wait", "Wait for a byte on the release descriptor", NULL,
	    NULL, wait_execute, CMDHOST_BLOCKING },
	{ "hold.serial", "Sleep payload us, alone", NULL, NULL,
	    serial_execute, CMDHOST_SERIAL },
};

/* The descriptor number in key, or -1. */
static int
config_fd(cmdhost_registrar *reg, const char *key)
{
	const char *s = cmdhost_config(reg, key);
	char *end;
	long n;

	if (s == NULL)
		return -1;
	n = strtol(s, &end, 10);
	return *end == '\0' && n >= 0 && n < 65536 ? (int)n : -1;
}

static int
hold_register(cmdhost_registrar *reg)
{
	struct hold *h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	h->release_fd = config_fd(reg, "release");
	h->started_fd = config_fd(reg, "started");
	cmdhost_set_state(reg, h, hold_fini);
	if (h->release_fd < 0 || h->started_fd < 0) {
		cmdhost_reg_error(reg, "[plugin:hold] needs release = FD and "
		    "started = FD");
		return -1;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (cmdhost_add_command(reg, &commands[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("hold", "1.0.0", hold_register);
