/*
 * null_execute.c - registers a command whose execute is NULL.
 */
#include <cmdhost/plugin.h>

static const cmdhost_command null_cmd = {
	"nx.cmd", "No execute", NULL, NULL, NULL, 0
};

static int
null_execute_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &null_cmd) != 0 ? -1 : 0;
}

CMDHOST_PLUGIN("null_execute", "1.0.0", null_execute_register);
