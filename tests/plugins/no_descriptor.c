/*
 * no_descriptor.c - a valid shared object that does not export the
 * cmdhost_plugin symbol.
 */
#include <cmdhost/plugin.h>

/* Exported, so the object has a symbol, just not the one the daemon wants. */
__attribute__((visibility("default"))) int not_a_cmdhost_plugin(void);

int
not_a_cmdhost_plugin(void)
{
	return 42;
}
