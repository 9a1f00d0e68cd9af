/*
 * dup_command.c - plugin "dup" registers test.echo, which plugin "good"
 * owns, and dup.only; loading is all or nothing, so neither is published.
 */
#include <cmdhost/plugin.h>

static int
dup_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, json_object_new_string("dup"));
}

static const cmdhost_command dup_only = {
	"dup.only", "Never published", NULL, NULL, dup_execute, 0
};

static const cmdhost_command dup_echo = {
	"test.echo", "Owned by good", NULL, NULL, dup_execute, 0
};

static int
dup_register(cmdhost_registrar *reg)
{
	if (cmdhost_add_command(reg, &dup_only) != 0 ||
	    cmdhost_add_command(reg, &dup_echo) != 0)
		return -1;
	return 0;
}

CMDHOST_PLUGIN("dup", "1.0.0", dup_register);
