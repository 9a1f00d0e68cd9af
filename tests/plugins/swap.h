/*
 * swap.h - the body of the swap_v1 and swap_v2 test plugins, which differ
 * only in SWAP_VERSION.  Plugin "swap": `swap.version` replies
 * {"version": SWAP_VERSION}; `swap.slow` (blocking) sleeps payload "ms"
 * then replies the same; `swap.v<N>.only` exists in one version only.  If
 * [plugin:swap] fini_marker names a file, fini appends "fini <version>\n".
 */
#ifndef SWAP_VERSION
#error define SWAP_VERSION before including swap.h
#endif

#include <cmdhost/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sleep.h"

struct swap_state {
	char marker[1024]; /* "" when no marker file */
};

static int
reply_version(cmdhost_ctx *ctx)
{
	struct json_object *body = json_object_new_object();

	json_object_object_add(body, "version",
	    json_object_new_string(SWAP_VERSION));
	return cmdhost_ok(ctx, body);
}

static int
swap_slow(cmdhost_ctx *ctx)
{
	sleep_payload_ms(ctx);
	return reply_version(ctx);
}

static void
swap_fini(void *arg)
{
	struct swap_state *st = arg;
	FILE *f;

	if (st->marker[0] != '\0' && (f = fopen(st->marker, "a")) != NULL) {
		fprintf(f, "fini %s\n", SWAP_VERSION);
		fclose(f);
	}
	free(st);
}

static const cmdhost_command swap_commands[] = {
	{ "swap.version", "Reply the plugin's version", NULL, NULL,
	    reply_version, 0 },
	{ "swap.slow", "Sleep payload ms, then reply the version", NULL, NULL,
	    swap_slow, CMDHOST_BLOCKING },
	{ "swap.v" SWAP_VERSION ".only", "Exists in this version only", NULL,
	    NULL, reply_version, 0 },
};

static int
swap_register(cmdhost_registrar *reg)
{
	struct swap_state *st = calloc(1, sizeof(*st));
	const char *marker = cmdhost_config(reg, "fini_marker");

	if (st == NULL) {
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	if (marker != NULL)
		snprintf(st->marker, sizeof(st->marker), "%s", marker);
	cmdhost_set_state(reg, st, swap_fini);
	for (size_t i = 0; i < sizeof(swap_commands) / sizeof(swap_commands[0]);
	    i++)
		if (cmdhost_add_command(reg, &swap_commands[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("swap", SWAP_VERSION, swap_register);
