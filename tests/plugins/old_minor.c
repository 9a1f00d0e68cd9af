/*
 * old_minor.c - a plugin that says ABI 1.0, as every plugin built before
 * the text entries did: it must load and work unchanged on a 1.1 daemon.
 * old.ping answers {"pong": true, "has_text": <the daemon's table has
 * ctx_respond_text>} using only 1.0 entries.
 */
#include <cmdhost/plugin.h>

static int
ping_execute(cmdhost_ctx *ctx)
{
	struct json_object *body = json_object_new_object();

	json_object_object_add(body, "pong", json_object_new_boolean(1));
	json_object_object_add(body, "has_text", json_object_new_boolean(
	    CMDHOST_API_HAS(cmdhost_api(ctx), ctx_respond_text)));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_command ping = {
	"old.ping", "answer pong", NULL, NULL, ping_execute, 0
};

static int
old_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &ping);
}

__attribute__((visibility("default")))
const cmdhost_plugin_desc cmdhost_plugin = {
	CMDHOST_MAGIC, 1, 0, "old_minor", "1.0.0", old_register
};
