/*
 * good.c - a well-behaved test plugin whose commands exercise every reply
 * path of the daemon: echo, declared fields, validate, failures, 201, a
 * blocking sleep and a config value.
 */
#include <cmdhost/plugin.h>

#include <stdlib.h>
#include <string.h>

#include "sleep.h"

/* The [plugin:good] greeting captured at registration: NULL or a copy
 * owned by the generation, freed by fini. */
struct good {
	char *greeting;
};

static void
good_fini(void *state)
{
	struct good *g = state;

	if (g == NULL)
		return;
	free(g->greeting);
	free(g);
}

/* Replies the payload itself (a new reference to the borrowed payload). */
static int
echo_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, json_object_get(cmdhost_payload(ctx)));
}

static const cmdhost_field fields_fields[] = {
	{ "s", CMDHOST_STRING, 1 },
	{ "n", CMDHOST_NUMBER, 1 },
	{ "i", CMDHOST_INTEGER, 1 },
	{ "b", CMDHOST_BOOLEAN, 1 },
	{ "o", CMDHOST_OBJECT, 0 },
	{ "a", CMDHOST_ARRAY, 0 },
	{ "x", CMDHOST_ANY, 0 },
	{ 0 }
};

/* Refuses a payload with "bad": true. */
static int
validate_validate(cmdhost_ctx *ctx)
{
	json_object *bad;

	if (json_object_object_get_ex(cmdhost_payload(ctx), "bad", &bad) &&
	    json_object_get_boolean(bad)) {
		cmdhost_fail(ctx, 400, "invalid_payload",
		    "field \"bad\" must not be true");
		return -1;
	}
	return 0;
}

static int
fail_execute(cmdhost_ctx *ctx)
{
	cmdhost_fail(ctx, 409, "conflict", "test.fail always conflicts");
	return 0;
}

/* Fails without saying why: the daemon answers 500 command_failed. */
static int
fail500_execute(cmdhost_ctx *ctx)
{
	(void)ctx;
	return -1;
}

/* Returns without finishing the call: also 500 command_failed. */
static int
noreply_execute(cmdhost_ctx *ctx)
{
	(void)ctx;
	return 0;
}

static int
created_execute(cmdhost_ctx *ctx)
{
	json_object *body = json_object_new_object();

	json_object_object_add(body, "created", json_object_new_boolean(1));
	return cmdhost_respond(ctx, 201, body);
}

/* Sleeps the full payload "ms", even past the deadline, so the daemon's
 * timeout and drop-late-result paths are exercised. */
static int
sleep_execute(cmdhost_ctx *ctx)
{
	int64_t n = sleep_payload_ms(ctx);
	json_object *body = json_object_new_object();

	json_object_object_add(body, "slept", json_object_new_int64(n));
	return cmdhost_ok(ctx, body);
}

static int
config_execute(cmdhost_ctx *ctx)
{
	struct good *g = cmdhost_state(ctx);

	return cmdhost_ok(ctx, g->greeting != NULL ?
	    json_object_new_string(g->greeting) : NULL);
}

static const cmdhost_command commands[] = {
	{ "test.echo", "Reply the payload", NULL, NULL, echo_execute, 0 },
	{ "test.fields", "Check every field type", fields_fields, NULL,
	    echo_execute, 0 },
	{ "test.validate", "Refuse {\"bad\":true}", NULL, validate_validate,
	    echo_execute, 0 },
	{ "test.fail", "Fail with 409 conflict", NULL, NULL, fail_execute,
	    0 },
	{ "test.fail500", "Return -1 without failing", NULL, NULL,
	    fail500_execute, 0 },
	{ "test.noreply", "Return 0 without finishing", NULL, NULL,
	    noreply_execute, 0 },
	{ "test.created", "Respond 201", NULL, NULL, created_execute, 0 },
	{ "test.sleep", "Sleep payload ms milliseconds", NULL, NULL,
	    sleep_execute, CMDHOST_BLOCKING },
	{ "test.config", "Reply the greeting config value", NULL, NULL,
	    config_execute, 0 },
};

static int
good_register(cmdhost_registrar *reg)
{
	struct good *g;
	const char *greeting;
	size_t i;

	if ((g = calloc(1, sizeof(*g))) == NULL) {
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	greeting = cmdhost_config(reg, "greeting");
	if (greeting != NULL && (g->greeting = strdup(greeting)) == NULL) {
		free(g);
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	cmdhost_set_state(reg, g, good_fini);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (cmdhost_add_command(reg, &commands[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("good", "1.0.0", good_register);
