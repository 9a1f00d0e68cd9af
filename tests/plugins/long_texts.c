/*
 * long_texts.c - a test plugin for the limits behind the table: every
 * text is 3000 bytes of 'é' (two bytes each), longer than any limit, so
 * that a cut at a fixed byte count lands inside a character unless it
 * steps back.  Each text goes once through the table's entry, as a
 * binding calls it, and once through the C convenience, which must cut
 * nowhere of its own.
 *
 * [plugin:long_texts] reg_error = direct | wrapper: registration fails
 * with the long text through reg_error or cmdhost_reg_error().
 * Otherwise: long.fail_direct / long.failf fail with it (ctx_fail,
 * cmdhost_failf()); long.log_direct / long.log_wrapper log "DD" or "WW"
 * and then it (ctx_log, cmdhost_log()).
 */
#include <cmdhost/plugin.h>

#include <string.h>

#define LONG_TEXT 3000

/* Fill buf (LONG_TEXT + 2 bytes) with `prefix` (borrowed, a few ASCII
 * bytes) and then 'é' up to LONG_TEXT bytes.  Returns buf. */
static char *
long_text(char *buf, const char *prefix)
{
	size_t i = strlen(prefix);

	memcpy(buf, prefix, i);
	for (; i + 1 < LONG_TEXT; i += 2) {
		buf[i] = (char)0xc3;
		buf[i + 1] = (char)0xa9;
	}
	buf[i] = '\0';
	return buf;
}

static int
fail_direct(cmdhost_ctx *ctx)
{
	char msg[LONG_TEXT + 2];

	return cmdhost_api(ctx)->ctx_fail(ctx, 422, "too_long",
	    long_text(msg, ""));
}

static int
fail_wrapper(cmdhost_ctx *ctx)
{
	char msg[LONG_TEXT + 2];

	return cmdhost_failf(ctx, 422, "too_long", "%s", long_text(msg, ""));
}

static int
log_direct(cmdhost_ctx *ctx)
{
	char msg[LONG_TEXT + 2];

	cmdhost_api(ctx)->ctx_log(ctx, CMDHOST_LOG_WARN, long_text(msg, "DD"));
	return cmdhost_ok_text(ctx, "{}");
}

static int
log_wrapper(cmdhost_ctx *ctx)
{
	char msg[LONG_TEXT + 2];

	/* 'é's from an even offset: a cut at 1023 bytes would split one. */
	cmdhost_log(ctx, CMDHOST_LOG_WARN, "WW%s", long_text(msg, ""));
	return cmdhost_ok_text(ctx, "{}");
}

static const cmdhost_command commands[] = {
	{ "long.fail_direct", NULL, NULL, NULL, fail_direct, 0 },
	{ "long.failf", NULL, NULL, NULL, fail_wrapper, 0 },
	{ "long.log_direct", NULL, NULL, NULL, log_direct, 0 },
	{ "long.log_wrapper", NULL, NULL, NULL, log_wrapper, 0 },
};

static int
long_register(cmdhost_registrar *reg)
{
	const char *how = cmdhost_config(reg, "reg_error");
	char msg[LONG_TEXT + 2];

	if (how != NULL && strcmp(how, "direct") == 0) {
		cmdhost_api(reg)->reg_error(reg, long_text(msg, ""));
		return -1;
	}
	if (how != NULL) {
		cmdhost_reg_error(reg, "%s", long_text(msg, ""));
		return -1;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (cmdhost_add_command(reg, &commands[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("long_texts", "1.0.0", long_register);
