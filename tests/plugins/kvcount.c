/*
 * kvcount.c - a test plugin that counts its runs in a file that several
 * daemons share (the [plugin:kvcount] `file`), for the idempotency tests
 * across daemons: kvcount.add appends "<pid> <n>\n" (one O_APPEND write,
 * so lines stay whole with several writers) as soon as it starts, then
 * sleeps payload "ms" if given, and answers {"pid": its daemon's pid,
 * "n": n}, or 500 when the payload has "fail": true.  kvcount.event is
 * the same, not blocking, for events.
 */
#include <cmdhost/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sleep.h"

/* The state: an owned copy of the file's path, freed by fini. */
static void
kvcount_fini(void *state)
{
	free(state);
}

static int
add_execute(cmdhost_ctx *ctx)
{
	const char *path = cmdhost_state(ctx);
	json_object *p = cmdhost_payload(ctx), *v, *body;
	long long n = 0;
	char line[64];
	int fd, len, rc;

	if (json_object_object_get_ex(p, "n", &v))
		n = (long long)json_object_get_int64(v);
	len = snprintf(line, sizeof(line), "%ld %lld\n", (long)getpid(), n);
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) < 0)
		return cmdhost_fail(ctx, 500, "count_failed", strerror(errno));
	rc = write(fd, line, (size_t)len) == len ? 0 : -1;
	close(fd);
	if (rc < 0)
		return cmdhost_fail(ctx, 500, "count_failed", "short write");
	sleep_payload_ms(ctx);
	if (json_object_object_get_ex(p, "fail", &v) &&
	    json_object_get_boolean(v))
		return cmdhost_fail(ctx, 500, "failed", "kvcount.add was asked "
		    "to fail");
	body = json_object_new_object();
	json_object_object_add(body, "pid", json_object_new_int64(getpid()));
	json_object_object_add(body, "n", json_object_new_int64(n));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_field add_fields[] = {
	{ "n", CMDHOST_INTEGER, 1 },
	{ 0 }
};

static const cmdhost_command commands[] = {
	{ "kvcount.add", "Count a run in the shared file, answer the pid",
	    add_fields, NULL, add_execute, CMDHOST_BLOCKING },
	{ "kvcount.event", "kvcount.add for events", add_fields, NULL,
	    add_execute, 0 },
};

static int
kvcount_register(cmdhost_registrar *reg)
{
	const char *file = cmdhost_config(reg, "file");
	char *copy;

	if (file == NULL) {
		cmdhost_reg_error(reg, "[plugin:kvcount] needs file = PATH");
		return -1;
	}
	if ((copy = strdup(file)) == NULL) {
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	cmdhost_set_state(reg, copy, kvcount_fini);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (cmdhost_add_command(reg, &commands[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("kvcount", "1.0.0", kvcount_register);
