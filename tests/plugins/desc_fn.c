/*
 * desc_fn.c - a plugin that gives its descriptor through the function
 * cmdhost_plugin_descriptor() instead of the data symbol, as a language
 * whose linker cannot export data does.  descfn.ping answers {"pong":1}.
 */
#include <cmdhost/plugin.h>

static int
ping_execute(cmdhost_ctx *ctx)
{
	return cmdhost_ok_text(ctx, "{\"pong\":1}");
}

static const cmdhost_command ping = {
	"descfn.ping", "answer pong", NULL, NULL, ping_execute, 0
};

static int
descfn_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &ping);
}

/* Not exported: only the function is. */
static const cmdhost_plugin_desc desc = {
	CMDHOST_MAGIC, CMDHOST_ABI_MAJOR, CMDHOST_ABI_MINOR, "desc_fn",
	"1.0.0", descfn_register
};

__attribute__((visibility("default"))) const cmdhost_plugin_desc *
cmdhost_plugin_descriptor(void);

const cmdhost_plugin_desc *
cmdhost_plugin_descriptor(void)
{
	return &desc;
}
