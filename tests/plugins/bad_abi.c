/*
 * bad_abi.c - claims ABI major 99; the daemon must refuse it, naming both
 * majors, without calling register_fn.
 */
#include <cmdhost/plugin.h>

#include <stdlib.h>

static int
bad_abi_register(cmdhost_registrar *reg)
{
	(void)reg;
	abort(); /* never called: the ABI check comes first */
}

__attribute__((visibility("default")))
const cmdhost_plugin_desc cmdhost_plugin = {
	CMDHOST_MAGIC, 99, 0, "bad_abi", "1.0.0", bad_abi_register
};
