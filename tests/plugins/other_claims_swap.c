/* other_claims_swap.c - plugin "claimer" that claims swap.version, which
 * the swap plugin owns: it must be refused as a whole. */
#include <cmdhost/plugin.h>

static int
claim(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, json_object_new_string("claimer"));
}

static const cmdhost_command claim_cmds[] = {
	{ "claimer.own", "A command of its own", NULL, NULL, claim, 0 },
	{ "swap.version", "Someone else's command", NULL, NULL, claim, 0 },
};

static int
claimer_register(cmdhost_registrar *reg)
{
	for (int i = 0; i < 2; i++)
		if (cmdhost_add_command(reg, &claim_cmds[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("claimer", "1.0.0", claimer_register);
