/*
 * wfstep.c - a test plugin for workflow steps: wfstep.do appends
 * "<tag> <key>\n" to the file of [plugin:wfstep] `file` (payload "tag",
 * and "key", the step's idempotency key handed in by Parameters), sleeps
 * payload "ms" first, then fails 500 "step_failed" when payload "fail"
 * is true, else answers its payload.
 *
 * So that a test can kill the daemon at a known point without sleeps:
 * with payload "gate" (a path) it first appends "<tag> <key>\n" to
 * <file>.enter and then waits (up to 60 s, then 503 "gate_timeout") until
 * that path exists; with "fail_unless" (a path) it fails "step_failed"
 * while that path does not exist.
 */
#include <cmdhost/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The state: an owned copy of the file's path, freed by fini. */
static void
wfstep_fini(void *state)
{
	free(state);
}

static const char *
str_of(json_object *p, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(p, k, &v) ? json_object_get_string(v) :
	    "-";
}

/* Append line (n bytes) to path. */
static void
append(const char *path, const char *line, int n)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	if (fd >= 0) {
		if (write(fd, line, (size_t)n) != n)
			n = -1;
		close(fd);
	}
}

/* Wait until path exists, up to 60 s; 0 or -1. */
static int
wait_gate(const char *path)
{
	struct timespec ts = { 0, 10 * 1000000L };
	struct stat st;

	for (int i = 0; i < 6000; i++) {
		if (stat(path, &st) == 0)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}

static int
do_execute(cmdhost_ctx *ctx)
{
	json_object *p = cmdhost_payload(ctx), *v;
	char line[512], enter[4096];
	struct stat st;
	int n;

	n = snprintf(line, sizeof(line), "%s %s\n", str_of(p, "tag"),
	    str_of(p, "key"));
	if (json_object_object_get_ex(p, "gate", &v)) {
		snprintf(enter, sizeof(enter), "%s.enter",
		    (const char *)cmdhost_state(ctx));
		append(enter, line, n);
		if (wait_gate(json_object_get_string(v)) < 0)
			return cmdhost_fail(ctx, 503, "gate_timeout", "the gate "
			    "never opened");
	}

	if (json_object_object_get_ex(p, "ms", &v)) {
		int64_t ms = json_object_get_int64(v);
		struct timespec ts = { (time_t)(ms / 1000),
			(long)(ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	append(cmdhost_state(ctx), line, n);
	if (json_object_object_get_ex(p, "fail", &v) &&
	    json_object_get_boolean(v))
		return cmdhost_fail(ctx, 500, "step_failed", "asked to fail");
	if (json_object_object_get_ex(p, "fail_unless", &v) &&
	    stat(json_object_get_string(v), &st) < 0)
		return cmdhost_fail(ctx, 500, "step_failed", "not yet");
	return cmdhost_ok(ctx, json_object_get(p));
}

static const cmdhost_command cmds[] = {
	{ .name = "wfstep.do", .summary = "record a workflow step",
	  .execute = do_execute, .flags = CMDHOST_BLOCKING },
	{ 0 }
};

static int
wfstep_register(cmdhost_registrar *reg)
{
	const char *file = cmdhost_config(reg, "file");
	char *copy;

	if (file == NULL) {
		cmdhost_reg_error(reg, "[plugin:wfstep] needs file = PATH");
		return -1;
	}
	if ((copy = strdup(file)) == NULL)
		return -1;
	cmdhost_set_state(reg, copy, wfstep_fini);
	for (const cmdhost_command *c = cmds; c->name != NULL; c++)
		if (cmdhost_add_command(reg, c) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("wfstep", "1.0.0", wfstep_register);
