/*
 * slow_inline.c - plugin "slowinline": slow.inline sleeps payload "ms"
 * milliseconds but is NOT declared blocking, so the daemon must cope with
 * a command that overruns on its fast path.
 */
#include <cmdhost/plugin.h>

#include "sleep.h"

static int
slow_execute(cmdhost_ctx *ctx)
{
	int64_t n = sleep_payload_ms(ctx);
	json_object *body = json_object_new_object();

	json_object_object_add(body, "slept", json_object_new_int64(n));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_command slow_cmd = {
	"slow.inline", "Sleep ms without CMDHOST_BLOCKING", NULL, NULL,
	slow_execute, 0
};

static int
slow_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &slow_cmd) != 0 ? -1 : 0;
}

CMDHOST_PLUGIN("slowinline", "1.0.0", slow_register);
