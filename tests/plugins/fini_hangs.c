/*
 * fini_hangs.c - a plugin whose fini never returns (it sleeps forever):
 * the reaper must give up on that generation after fini_timeout_ms, log
 * it, and still finalize later generations; a stop must still end in
 * time (with exit status 1).
 */
#include <cmdhost/plugin.h>

#include <errno.h>
#include <time.h>

static int state = 1;

static void
finihang_fini(void *st)
{
	struct timespec ts = { 3600, 0 };

	(void)st;
	for (;;)
		(void)nanosleep(&ts, NULL);
}

static int
finihang_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, NULL);
}

static const cmdhost_command finihang_cmd = {
	"finihang.ping", "Answers; its fini never returns", NULL, NULL,
	finihang_execute, 0
};

static int
fini_hangs_register(cmdhost_registrar *reg)
{
	cmdhost_set_state(reg, &state, finihang_fini);
	return cmdhost_add_command(reg, &finihang_cmd);
}

CMDHOST_PLUGIN("fini_hangs", "1.0.0", fini_hangs_register);
