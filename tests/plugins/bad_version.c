/*
 * bad_version.c - a plugin whose version string holds a newline and a
 * byte that is not UTF-8: it would go into logs, JSON and Prometheus
 * labels as it is, so the daemon refuses it.
 */
#include <cmdhost/plugin.h>

static int
bad_version_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, NULL);
}

static const cmdhost_command bad_version_cmd = {
	"badver.cmd", "Never loads", NULL, NULL, bad_version_execute, 0
};

static int
bad_version_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &bad_version_cmd) != 0 ? -1 : 0;
}

CMDHOST_PLUGIN("bad_version", "1.0\n\xff", bad_version_register);
