/*
 * ctor_spin.c - plugin "ctor_spin": its ELF constructor never returns, so
 * dlopen never does; the load probe must refuse it in time
 * (test_isolation.c).
 */
#include <cmdhost/plugin.h>

#include <stdint.h>

__attribute__((constructor)) static void
forever(void)
{
	volatile uint64_t x = 0;

	for (;;)
		x++;
}

static int
ok_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok(ctx, NULL);
}

static const cmdhost_command cmd = {
	"ctor_spin.run", "Never loads", NULL, NULL, ok_execute, 0
};

static int
ctor_spin_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &cmd) != 0 ? -1 : 0;
}

CMDHOST_PLUGIN("ctor_spin", "1.0.0", ctor_spin_register);
