/*
 * desc_fn_null.c - a plugin whose cmdhost_plugin_descriptor() returns
 * NULL: the loader must refuse it with a clear reason.
 */
#include <cmdhost/plugin.h>

#include <stddef.h>

__attribute__((visibility("default"))) const cmdhost_plugin_desc *
cmdhost_plugin_descriptor(void);

const cmdhost_plugin_desc *
cmdhost_plugin_descriptor(void)
{
	return NULL;
}
