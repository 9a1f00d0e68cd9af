/*
 * reg_hangs.c - a registration that never returns (it adds a command,
 * then sleeps forever): the daemon must give up on the load after
 * load_timeout_ms, log it, list the file as stuck, and carry on.
 */
#include <cmdhost/plugin.h>

#include <errno.h>
#include <time.h>

static int
reghang_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, NULL);
}

static const cmdhost_command reghang_cmd = {
	"reghang.cmd", "Never published", NULL, NULL, reghang_execute, 0
};

static int
reg_hangs_register(cmdhost_registrar *reg)
{
	struct timespec ts = { 3600, 0 };

	cmdhost_add_command(reg, &reghang_cmd);
	for (;;)
		(void)nanosleep(&ts, NULL);
	return 0;
}

CMDHOST_PLUGIN("reg_hangs", "1.0.0", reg_hangs_register);
