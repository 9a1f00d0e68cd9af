/*
 * emitter.c - a test plugin for events (ABI 1.2).
 *
 * emit.some emits payload "n" events (default 1) on payload "subject"
 * (default "t.ev"), each {"i": i, "data": payload "data"}, as JSON text
 * when payload "text" is true, then answers {"emitted": n} -- or, when
 * payload "fail" is a status, fails with it after emitting.  Payload
 * "bad": true emits one invalid JSON text.  emit.sink, the route consumer,
 * appends its payload's text (one line per call) to [plugin:emitter]
 * file and answers 200; emit.flaky appends "<monotonic ms> <payload>"
 * to the same file and answers 503.
 */
#include <cmdhost/plugin.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The state: an owned copy of the file's path (or NULL), freed by fini. */
static void
emitter_fini(void *state)
{
	free(state);
}

static int64_t
member_int(json_object *p, const char *k, int64_t def)
{
	json_object *v;

	return json_object_object_get_ex(p, k, &v) ? json_object_get_int64(v) :
	    def;
}

static int
some_execute(cmdhost_ctx *ctx)
{
	json_object *p = cmdhost_payload(ctx), *v, *data = NULL;
	const char *subject = "t.ev";
	int64_t n = member_int(p, "n", 1), fail = member_int(p, "fail", 0);
	int text = 0;

	if (json_object_object_get_ex(p, "subject", &v))
		subject = json_object_get_string(v);
	if (json_object_object_get_ex(p, "text", &v))
		text = json_object_get_boolean(v);
	json_object_object_get_ex(p, "data", &data);
	if (json_object_object_get_ex(p, "bad", &v) &&
	    json_object_get_boolean(v) &&
	    cmdhost_emit_text(ctx, subject, "{\"x\": NaN}") == 0)
		return cmdhost_fail(ctx, 500, "test_failed", "NaN was taken");
	for (int64_t i = 0; i < n; i++) {
		json_object *b = json_object_new_object();
		int rc;

		json_object_object_add(b, "i", json_object_new_int64(i));
		json_object_object_add(b, "data", json_object_get(data));
		if (text)
			rc = cmdhost_emit_text(ctx, subject,
			    json_object_to_json_string_ext(b,
			    JSON_C_TO_STRING_PLAIN));
		else
			rc = cmdhost_emit(ctx, subject, b);
		json_object_put(b);
		if (rc != 0)
			break; /* the call fails: the daemon says why */
	}
	if (fail != 0)
		return cmdhost_fail(ctx, (int)fail, "asked_to_fail",
		    "emit.some was asked to fail");
	v = json_object_new_object();
	json_object_object_add(v, "emitted", json_object_new_int64(n));
	return cmdhost_ok(ctx, v);
}

/* Append `prefix` and the payload's text as one line to the file. */
static int
append(cmdhost_ctx *ctx, const char *prefix)
{
	const char *path = cmdhost_state(ctx);
	size_t len, pl = strlen(prefix);
	const char *t = cmdhost_payload_text(ctx, &len);
	char *line;
	int fd, rc = -1;

	if (path == NULL || (line = malloc(pl + len + 2)) == NULL)
		return -1;
	memcpy(line, prefix, pl);
	memcpy(line + pl, t, len);
	line[pl + len] = '\n';
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) >= 0) {
		rc = write(fd, line, pl + len + 1) == (ssize_t)(pl + len + 1) ?
		    0 : -1;
		close(fd);
	}
	free(line);
	return rc;
}

static int
sink_execute(cmdhost_ctx *ctx)
{
	if (append(ctx, "") < 0)
		return cmdhost_fail(ctx, 500, "sink_failed", "cannot append");
	return cmdhost_ok(ctx, NULL);
}

static int
flaky_execute(cmdhost_ctx *ctx)
{
	struct timespec ts;
	char prefix[32];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(prefix, sizeof(prefix), "%lld ", (long long)ts.tv_sec * 1000 +
	    ts.tv_nsec / 1000000);
	append(ctx, prefix);
	return cmdhost_fail(ctx, 503, "flaky", "emit.flaky always fails");
}

static const cmdhost_command some_cmd = {
	"emit.some", "emit events, then answer", NULL, NULL, some_execute, 0
};
static const cmdhost_command sink_cmd = {
	"emit.sink", "record an event", NULL, NULL, sink_execute,
	CMDHOST_BLOCKING
};
static const cmdhost_command flaky_cmd = {
	"emit.flaky", "record an event and fail", NULL, NULL, flaky_execute,
	CMDHOST_BLOCKING
};

static int
emitter_register(cmdhost_registrar *reg)
{
	const char *file = cmdhost_config(reg, "file");
	char *copy = file != NULL ? strdup(file) : NULL;

	cmdhost_set_state(reg, copy, emitter_fini);
	if (cmdhost_add_command(reg, &some_cmd) != 0 ||
	    cmdhost_add_command(reg, &sink_cmd) != 0 ||
	    cmdhost_add_command(reg, &flaky_cmd) != 0)
		return -1;
	return 0;
}

CMDHOST_PLUGIN("emitter", "1.0", emitter_register);
