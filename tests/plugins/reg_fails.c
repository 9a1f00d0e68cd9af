/*
 * reg_fails.c - adds a command, then fails registration; the command must
 * not be published.
 */
#include <cmdhost/plugin.h>

static int
regfail_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, NULL);
}

static const cmdhost_command regfail_cmd = {
	"regfail.cmd", "Never published", NULL, NULL, regfail_execute, 0
};

static int
reg_fails_register(cmdhost_registrar *reg)
{
	cmdhost_add_command(reg, &regfail_cmd);
	cmdhost_reg_error(reg, "database unreachable");
	return -1;
}

CMDHOST_PLUGIN("reg_fails", "1.0.0", reg_fails_register);
