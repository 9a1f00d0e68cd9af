/*
 * reserved_name.c - registers host.evil; the host. prefix is reserved for
 * the daemon's own commands.
 */
#include <cmdhost/plugin.h>

static int
evil_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, json_object_new_string("evil"));
}

static const cmdhost_command evil_cmd = {
	"host.evil", "Reserved prefix", NULL, NULL, evil_execute, 0
};

static int
reserved_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &evil_cmd) != 0 ? -1 : 0;
}

CMDHOST_PLUGIN("reserved_name", "1.0.0", reserved_register);
