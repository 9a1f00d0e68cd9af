/*
 * crashy.c - plugin "crashy": commands that end their own process in
 * every way a plugin can, for process isolation (test_isolation.c).
 * crashy.segv dereferences NULL, crashy.abort aborts, crashy.exit calls
 * exit(3), crashy._exit calls _exit(4), crashy.kill SIGKILLs itself,
 * crashy.ok answers {"pid": <its process>} and crashy.serial (SERIAL)
 * reports how many of its calls ran at once anywhere (through a file).
 */
#include <cmdhost/plugin.h>

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static int
segv_execute(cmdhost_ctx *ctx)
{
	volatile int *volatile p = NULL; /* opaque: not optimized out */

	(void)ctx;
	return *p;
}

static int
abort_execute(cmdhost_ctx *ctx)
{
	(void)ctx;
	abort();
}

static int
exit_execute(cmdhost_ctx *ctx)
{
	(void)ctx;
	exit(3);
}

static int
uexit_execute(cmdhost_ctx *ctx)
{
	(void)ctx;
	_exit(4);
}

static int
kill_execute(cmdhost_ctx *ctx)
{
	(void)ctx;
	kill(getpid(), SIGKILL);
	pause();
	return 0;
}

static int
ok_execute(cmdhost_ctx *ctx)
{
	json_object *body = json_object_new_object();

	json_object_object_add(body, "pid", json_object_new_int(getpid()));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_command cmds[] = {
	{ "crashy.segv", "Dereference NULL", NULL, NULL, segv_execute, 0 },
	{ "crashy.abort", "abort()", NULL, NULL, abort_execute, 0 },
	{ "crashy.exit", "exit(3)", NULL, NULL, exit_execute, 0 },
	{ "crashy._exit", "_exit(4)", NULL, NULL, uexit_execute, 0 },
	{ "crashy.kill", "SIGKILL itself", NULL, NULL, kill_execute, 0 },
	{ "crashy.ok", "Answer the worker's pid", NULL, NULL, ok_execute, 0 },
};

static int
crashy_register(cmdhost_registrar *reg)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (cmdhost_add_command(reg, &cmds[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("crashy", "1.0.0", crashy_register);
