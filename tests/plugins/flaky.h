/*
 * flaky.h - the body of the flaky_* test plugins, which differ only in
 * FLAKY_VERSION and FLAKY_FAIL.  Plugin "flaky": `flaky.call` replies
 * {"version": FLAKY_VERSION}; with FLAKY_FAIL = N > 0 every Nth call of
 * the generation fails 500 "flaky" instead; with FLAKY_FAIL = -1 the
 * first call dereferences NULL (the daemon dies of SIGSEGV).  The
 * rollback tests swap between them.
 */
#ifndef FLAKY_VERSION
#error define FLAKY_VERSION and FLAKY_FAIL before including flaky.h
#endif

#include <cmdhost/plugin.h>

#include <stdatomic.h>
#include <stddef.h>

static atomic_uint flaky_calls;

static int
flaky_call(cmdhost_ctx *ctx)
{
	unsigned n = atomic_fetch_add(&flaky_calls, 1) + 1;
	struct json_object *body;

	if (FLAKY_FAIL < 0) {
		volatile int *nowhere = NULL;

		*nowhere = 1; /* on purpose: the crash record's test */
	}
	if (FLAKY_FAIL > 0 && n % (FLAKY_FAIL > 0 ? FLAKY_FAIL : 1) == 0)
		return cmdhost_fail(ctx, 500, "flaky", "every call of this "
		    "count fails (a bad version on purpose)");
	body = json_object_new_object();
	json_object_object_add(body, "version",
	    json_object_new_string(FLAKY_VERSION));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_command flaky_command = {
	"flaky.call", "Reply the version; some versions fail on purpose",
	NULL, NULL, flaky_call, 0
};

static int
flaky_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &flaky_command) != 0 ? -1 : 0;
}

CMDHOST_PLUGIN("flaky", FLAKY_VERSION, flaky_register);
