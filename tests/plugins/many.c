/*
 * many.c - a test and benchmark plugin that registers N commands, for the
 * command-count curve (issue 19: lookup cost as the table grows).  N is
 * the [plugin:many] `commands` key (1 to MANY_MAX, default 1).  The
 * commands are named many.c00000 .. many.c<N-1>, five digits each, so
 * every name hashes and compares over the same length whatever N is;
 * each one answers its own name as a JSON string, text out, never looking
 * at its payload, so a call costs the same at every N but the lookup.
 * `duplicate = K` adds command K a second time after the N, which the
 * daemon must refuse ("added twice"), for the test of its name index.
 */
#include <cmdhost/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANY_MAX 100000
#define MANY_NAME_LEN sizeof("many.c00000")

/* The generation's state: the names, N of MANY_NAME_LEN bytes in one
 * block (owned; the daemon borrows them while the plugin is loaded),
 * freed by fini. */
static void
many_fini(void *state)
{
	free(state);
}

/* Answer "<command name>": the name is [A-Za-z0-9_.:-], so it needs no
 * escaping. */
static int
many_execute(cmdhost_ctx *ctx)
{
	const char *name = cmdhost_command_name(ctx);
	char body[CMDHOST_NAME_MAX + 3];
	int n = snprintf(body, sizeof(body), "\"%s\"", name);

	return cmdhost_respond_text(ctx, 200, body, (size_t)n) == 0 ? 0 : -1;
}

/* Registration: read `commands`, make the names, add them all. */
static int
many_register(cmdhost_registrar *reg)
{
	const char *v = cmdhost_config(reg, "commands");
	const char *dup = cmdhost_config(reg, "duplicate");
	cmdhost_command cmd = {
		.summary = "Answer this command's name",
		.execute = many_execute,
	};
	long n = 1;
	char *names, *end;

	if (v != NULL) {
		n = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || n < 1 || n > MANY_MAX) {
			cmdhost_reg_error(reg, "[plugin:many] commands must be "
			    "1 to %d, not '%s'", MANY_MAX, v);
			return -1;
		}
	}
	if ((names = malloc((size_t)n * MANY_NAME_LEN)) == NULL) {
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	cmdhost_set_state(reg, names, many_fini);
	for (long i = 0; i < n; i++) {
		char *name = names + (size_t)i * MANY_NAME_LEN;

		snprintf(name, MANY_NAME_LEN, "many.c%05ld", i);
		cmd.name = name;
		if (cmdhost_add_command(reg, &cmd) != 0)
			return -1;
	}
	if (dup != NULL) {
		long k = strtol(dup, &end, 10);

		if (*dup == '\0' || *end != '\0' || k < 0 || k >= n) {
			cmdhost_reg_error(reg, "[plugin:many] duplicate must "
			    "be 0 to %ld, not '%s'", n - 1, dup);
			return -1;
		}
		cmd.name = names + (size_t)k * MANY_NAME_LEN;
		if (cmdhost_add_command(reg, &cmd) != 0)
			return -1;
	}
	cmdhost_reg_log(reg, CMDHOST_LOG_INFO, "registered %ld commands", n);
	return 0;
}

CMDHOST_PLUGIN("many", "1.0.0", many_register);
