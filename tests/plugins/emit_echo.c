/*
 * emit_echo.c - the events benchmark's command: echo that emits one
 * event per call (ABI 1.2).
 *
 * emit.echo answers with its payload as echo does (text in, text out, no
 * json-c tree) and emits that same text as one event on subject
 * [plugin:emit_echo] subject (default "bench.ev"), so that the only
 * difference from plain echo is the event.
 */
#include <cmdhost/plugin.h>

#include <stdlib.h>
#include <string.h>

/* The state: an owned copy of the subject, freed by fini. */
static void
emit_echo_fini(void *state)
{
	free(state);
}

static int
emit_echo_execute(cmdhost_ctx *ctx)
{
	const struct cmdhost_api *api = cmdhost_api(ctx);
	size_t len;
	const char *text = cmdhost_payload_text(ctx, &len);

	if (api->ctx_emit_text(ctx, cmdhost_state(ctx), text, len) != 0)
		return -1;
	return cmdhost_respond_text(ctx, 200, text, len) == 0 ? 0 : -1;
}

static const cmdhost_command emit_echo_command = {
	.name = "emit.echo",
	.summary = "Reply with the payload and emit it as one event",
	.execute = emit_echo_execute,
};

static int
emit_echo_register(cmdhost_registrar *reg)
{
	const char *subject = cmdhost_config(reg, "subject");
	char *copy = strdup(subject != NULL ? subject : "bench.ev");

	if (copy == NULL)
		return -1;
	cmdhost_set_state(reg, copy, emit_echo_fini);
	return cmdhost_add_command(reg, &emit_echo_command) == 0 ? 0 : -1;
}

CMDHOST_PLUGIN("emit_echo", "1.0", emit_echo_register);
