/*
 * record.c - a test plugin that records the id of every event it is given
 * in a file (the [plugin:record] `file`), one line per call, so the
 * JetStream tests can count deliveries.  record.event succeeds,
 * record.reject answers 422, record.fail answers 500, record.slow sleeps
 * payload "ms" first; each records the id before it answers.
 */
#include <cmdhost/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The state: an owned copy of the file's path, freed by fini. */
static void
record_fini(void *state)
{
	free(state);
}

/* Append "<id>\n" to the file with one O_APPEND write (whole lines even
 * with several writers).  Returns 0 or -1. */
static int
record_id(cmdhost_ctx *ctx)
{
	const char *path = cmdhost_state(ctx);
	json_object *id;
	char line[32];
	int fd, n, rc;

	if (!json_object_object_get_ex(cmdhost_payload(ctx), "id", &id))
		return -1;
	n = snprintf(line, sizeof(line), "%lld\n",
	    (long long)json_object_get_int64(id));
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) < 0)
		return -1;
	rc = write(fd, line, (size_t)n) == n ? 0 : -1;
	close(fd);
	return rc;
}

static int
event_execute(cmdhost_ctx *ctx)
{
	if (record_id(ctx) < 0)
		return cmdhost_fail(ctx, 500, "record_failed", strerror(errno));
	return cmdhost_ok(ctx, NULL);
}

static int
reject_execute(cmdhost_ctx *ctx)
{
	record_id(ctx);
	return cmdhost_fail(ctx, 422, "rejected", "record.reject refuses all");
}

static int
fail_execute(cmdhost_ctx *ctx)
{
	record_id(ctx);
	return cmdhost_fail(ctx, 500, "failed", "record.fail always fails");
}

static int
slow_execute(cmdhost_ctx *ctx)
{
	json_object *ms;
	struct timespec ts = { 0, 0 };
	int64_t n = 0;

	if (json_object_object_get_ex(cmdhost_payload(ctx), "ms", &ms))
		n = json_object_get_int64(ms);
	ts.tv_sec = (time_t)(n / 1000);
	ts.tv_nsec = (long)(n % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	return event_execute(ctx);
}

static const cmdhost_field id_field[] = {
	{ "id", CMDHOST_INTEGER, 1 },
	{ 0 }
};

static const cmdhost_command commands[] = {
	{ "record.event", "Record the event id", id_field, NULL,
	    event_execute, 0 },
	{ "record.reject", "Record the id, answer 422", id_field, NULL,
	    reject_execute, 0 },
	{ "record.fail", "Record the id, answer 500", id_field, NULL,
	    fail_execute, 0 },
	{ "record.slow", "Sleep payload ms, then record the id", id_field,
	    NULL, slow_execute, CMDHOST_BLOCKING },
};

static int
record_register(cmdhost_registrar *reg)
{
	const char *file = cmdhost_config(reg, "file");
	char *copy;

	if (file == NULL) {
		cmdhost_reg_error(reg, "[plugin:record] needs file = PATH");
		return -1;
	}
	if ((copy = strdup(file)) == NULL) {
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	cmdhost_set_state(reg, copy, record_fini);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (cmdhost_add_command(reg, &commands[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("record", "1.0.0", record_register);
