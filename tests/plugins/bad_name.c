/*
 * bad_name.c - registers a command whose name has characters outside
 * [A-Za-z0-9_.:-].
 */
#include <cmdhost/plugin.h>

static int
bad_name_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, NULL);
}

static const cmdhost_command bad_name_cmd = {
	"bad name!", "Invalid name", NULL, NULL, bad_name_execute, 0
};

static int
bad_name_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &bad_name_cmd) != 0 ? -1 : 0;
}

CMDHOST_PLUGIN("bad_name", "1.0.0", bad_name_register);
