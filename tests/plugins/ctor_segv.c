/*
 * ctor_segv.c - plugin "ctor_segv": its ELF constructor dereferences NULL,
 * so it crashes whatever process maps it; the load probe must refuse it
 * before the daemon does (test_isolation.c).
 */
#include <cmdhost/plugin.h>

__attribute__((constructor)) static void
boom(void)
{
	volatile int *volatile p = NULL; /* opaque: not optimized out */

	*p = 1;
}

static int
ok_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, NULL);
}

static const cmdhost_command cmd = {
	"ctor_segv.run", "Never loads", NULL, NULL, ok_execute, 0
};

static int
ctor_segv_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &cmd) != 0 ? -1 : 0;
}

CMDHOST_PLUGIN("ctor_segv", "1.0.0", ctor_segv_register);
