/*
 * hangs.c - plugin "hangs": calls that never end by themselves, for the
 * deadline of process isolation (test_isolation.c).  hangs.spin burns the
 * CPU forever; hangs.sleep forks a child that sleeps 30 s, then sleeps 30
 * s itself, and answers nothing in time.  Both bodies would say the pids
 * ({"pid", "child"}), but they are killed first; hangs.pid answers
 * {"pid"} at once.  hangs.leak keeps payload "mb" MiB (touched) each
 * call and never frees it.
 */
#include <cmdhost/plugin.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
spin_execute(cmdhost_ctx *ctx)
{
	volatile uint64_t x = 0;

	(void)ctx;
	for (;;)
		x++;
	return 0;
}

static int
sleep_execute(cmdhost_ctx *ctx)
{
	json_object *body = json_object_new_object();
	pid_t child = fork();

	if (child == 0) {
		sleep(30);
		_exit(0);
	}
	cmdhost_log(ctx, CMDHOST_LOG_INFO, "forked a child that sleeps");
	sleep(30);
	json_object_object_add(body, "pid", json_object_new_int(getpid()));
	json_object_object_add(body, "child", json_object_new_int(child));
	return cmdhost_ok(ctx, body);
}

static int
pid_execute(cmdhost_ctx *ctx)
{
	json_object *body = json_object_new_object();

	json_object_object_add(body, "pid", json_object_new_int(getpid()));
	return cmdhost_ok(ctx, body);
}

/* Kept where the compiler must assume they are read: the stores that
 * make the pages resident cannot be optimized out. */
static char *volatile kept[4096];
static volatile unsigned n_kept;

static int
leak_execute(cmdhost_ctx *ctx)
{
	json_object *mb, *body = json_object_new_object();
	int64_t n = 8;
	char *p;

	if (json_object_object_get_ex(cmdhost_payload(ctx), "mb", &mb))
		n = json_object_get_int64(mb);
	if ((p = malloc((size_t)n << 20)) == NULL)
		return cmdhost_fail(ctx, 503, "no_memory", "malloc failed");
	memset(p, 1, (size_t)n << 20); /* resident, and never freed */
	kept[n_kept++ % 4096] = p;
	json_object_object_add(body, "pid", json_object_new_int(getpid()));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_command cmds[] = {
	{ "hangs.spin", "Spin forever", NULL, NULL, spin_execute, 0 },
	{ "hangs.sleep", "Fork a sleeper, then sleep 30 s", NULL, NULL,
	    sleep_execute, 0 },
	{ "hangs.pid", "Answer the worker's pid", NULL, NULL, pid_execute, 0 },
	{ "hangs.leak", "Keep mb MiB for good", NULL, NULL, leak_execute, 0 },
};

static int
hangs_register(cmdhost_registrar *reg)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (cmdhost_add_command(reg, &cmds[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("hangs", "1.0.0", hangs_register);
