/*
 * spin.c - plugin "spin": spin.run burns the CPU for payload "ms"
 * milliseconds (no sleep, no system call a signal could cut short) and is
 * NOT declared blocking, so it runs inline on the event loop that read it:
 * the stuck inline call the daemon must contain.  Its body names the
 * thread that ran it ("thread"), so a test can tell a loop from the pool.
 */
#include <cmdhost/plugin.h>

#include <stdint.h>
#include <sys/prctl.h>
#include <time.h>

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
spin_execute(cmdhost_ctx *ctx)
{
	json_object *ms, *body = json_object_new_object();
	int64_t n = 0, until;
	char name[17] = "";
	volatile uint64_t x = 0;

	if (json_object_object_get_ex(cmdhost_payload(ctx), "ms", &ms))
		n = json_object_get_int64(ms);
	until = mono_ms() + n;
	while (mono_ms() < until)
		for (int i = 0; i < 1000; i++)
			x += (uint64_t)i;
	prctl(PR_GET_NAME, name, 0, 0, 0);
	json_object_object_add(body, "thread", json_object_new_string(name));
	json_object_object_add(body, "spun_ms", json_object_new_int64(n));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_command spin_cmd = {
	"spin.run", "Spin ms on the CPU, inline (not blocking)", NULL, NULL,
	spin_execute, 0
};

static int
spin_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &spin_cmd) != 0 ? -1 : 0;
}

CMDHOST_PLUGIN("spin", "1.0.0", spin_register);
