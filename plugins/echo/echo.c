/*
 * echo.c - the "echo" plugin: one command that answers with its payload.
 *
 * It is the benchmark command, so it does nothing but hand the payload back:
 * no fields, no validate, no state, no logging.
 */
#include <cmdhost/plugin.h>

/*
 * echo: reply 200 with the payload itself.  The payload is borrowed, so take
 * one reference for the body; cmdhost_ok() takes that reference.
 */
static int
echo_execute(cmdhost_ctx *ctx)
{
	cmdhost_ok(ctx, json_object_get(cmdhost_payload(ctx)));
	return 0;
}

static const cmdhost_command echo_command = {
	.name = "echo",
	.summary = "Reply with the payload",
	.execute = echo_execute,
};

/* Registration: add the one command; no state, no config. */
static int
echo_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &echo_command) == 0 ? 0 : -1;
}

CMDHOST_PLUGIN("echo", "1.0.0", echo_register);
