/*
 * newer_minor.c - claims ABI 1.999, newer than any daemon; the daemon must
 * refuse it without calling register_fn.
 */
#include <cmdhost/plugin.h>

#include <stdlib.h>

static int
newer_minor_register(cmdhost_registrar *reg)
{
	(void)reg;
	abort(); /* never called: the ABI check comes first */
}

__attribute__((visibility("default")))
const cmdhost_plugin_desc cmdhost_plugin = {
	CMDHOST_MAGIC, 1, 999, "newer_minor", "1.0.0", newer_minor_register
};
