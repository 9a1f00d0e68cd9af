/*
 * echo.c - the "echo" plugin: one command that answers with its payload.
 *
 * It is the benchmark command, so it does nothing but hand the payload back:
 * no fields, no validate, no state, no logging, no json-c tree (ABI 1.1).
 */
#include <cmdhost/plugin.h>

/*
 * echo: reply 200 with the payload itself, text in and text out: the
 * payload's text (the client's bytes, borrowed for this call) goes back
 * as the body (the daemon copies and checks it), so no json-c tree is
 * ever built for an echo.
 */
static int
echo_execute(cmdhost_ctx *ctx)
{
	size_t len;
	const char *text = cmdhost_payload_text(ctx, &len);

	return cmdhost_respond_text(ctx, 200, text, len) == 0 ? 0 : -1;
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
