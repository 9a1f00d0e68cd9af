/*
 * bad_magic.c - exports a descriptor with the right layout but a wrong
 * magic number; the daemon must refuse it without calling register_fn.
 */
#include <cmdhost/plugin.h>

#include <stdlib.h>

static int
bad_magic_register(cmdhost_registrar *reg)
{
	(void)reg;
	abort(); /* never called: the magic check comes first */
}

__attribute__((visibility("default")))
const cmdhost_plugin_desc cmdhost_plugin = {
	0xdeadbeefu, CMDHOST_ABI_MAJOR, CMDHOST_ABI_MINOR,
	"bad_magic", "1.0.0", bad_magic_register
};
