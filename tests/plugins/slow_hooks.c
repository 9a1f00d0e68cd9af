/*
 * slow_hooks.c - a registration and a fini that are slow but do end:
 * they sleep [plugin:slow_hooks] reg_ms and fini_ms milliseconds.  Past
 * load_timeout_ms / fini_timeout_ms the daemon gives up on them; when
 * they return after all, the late load is discarded, the late fini's
 * generation unloaded, and the abandoned gauge goes back down.
 */
#include <cmdhost/plugin.h>

#include <errno.h>
#include <stdlib.h>
#include <time.h>

static long fini_ms;

static void
nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void
slow_fini(void *st)
{
	(void)st;
	nap_ms(fini_ms);
}

static int
slow_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, NULL);
}

static const cmdhost_command slow_cmd = {
	"slow.ping", "Answers; its hooks are slow", NULL, NULL, slow_execute, 0
};

static int
slow_register(cmdhost_registrar *reg)
{
	const char *r = cmdhost_config(reg, "reg_ms");
	const char *f = cmdhost_config(reg, "fini_ms");

	fini_ms = f ? atol(f) : 0;
	nap_ms(r ? atol(r) : 0);
	cmdhost_set_state(reg, &fini_ms, slow_fini);
	return cmdhost_add_command(reg, &slow_cmd);
}

CMDHOST_PLUGIN("slow_hooks", "1.0.0", slow_register);
