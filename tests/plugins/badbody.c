/*
 * badbody.c - commands whose replies json-c would write as text that is
 * not JSON or not UTF-8: NaN, Infinity and -Infinity (nested), invalid
 * UTF-8 in a string and in a key, a double whose own text breaks the
 * line, and an error code and message with invalid UTF-8 and controls.
 * `bad.ok` answers a plain body, so a test can tell the plugin works.
 */
#include <math.h>
#include <string.h>

#include <cmdhost/plugin.h>

static int
ok_execute(cmdhost_ctx *ctx)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return cmdhost_ok(ctx, o);
}

/* {"deep":[{"v":X}]}: the bad value sits below the top. */
static int
nested(cmdhost_ctx *ctx, struct json_object *v)
{
	struct json_object *o = json_object_new_object(),
	    *a = json_object_new_array(), *in = json_object_new_object();

	json_object_object_add(in, "v", v);
	json_object_array_add(a, in);
	json_object_object_add(o, "deep", a);
	return cmdhost_ok(ctx, o);
}

static int
nan_execute(cmdhost_ctx *ctx)
{
	return nested(ctx, json_object_new_double(NAN));
}

static int
inf_execute(cmdhost_ctx *ctx)
{
	return nested(ctx, json_object_new_double(INFINITY));
}

static int
ninf_execute(cmdhost_ctx *ctx)
{
	return nested(ctx, json_object_new_double(-INFINITY));
}

static int
utf8_execute(cmdhost_ctx *ctx)
{
	return nested(ctx, json_object_new_string("ok \xff\xfe then \xc3("));
}

static int
utf8_key_execute(cmdhost_ctx *ctx)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "key\xed\xa0\x80", json_object_new_int(1));
	return cmdhost_ok(ctx, o);
}

/* A double's own text is written as it is: here, a second reply line. */
static int
text_execute(cmdhost_ctx *ctx)
{
	return nested(ctx, json_object_new_double_s(1.0,
	    "1}}\n{\"id\":\"forged\",\"status\":200,\"body\":1}"));
}

static int
error_execute(cmdhost_ctx *ctx)
{
	return cmdhost_fail(ctx, 422, "bad\xff\"code\n",
	    "message \xc0\xaf with \x01 control and \xf5 bytes");
}

static const cmdhost_command cmds[] = {
	{ "bad.ok", "A plain body", NULL, NULL, ok_execute, 0 },
	{ "bad.nan", "NaN, nested", NULL, NULL, nan_execute, 0 },
	{ "bad.inf", "Infinity, nested", NULL, NULL, inf_execute, 0 },
	{ "bad.ninf", "-Infinity, nested", NULL, NULL, ninf_execute, 0 },
	{ "bad.utf8", "Invalid UTF-8 in a string", NULL, NULL, utf8_execute,
	    0 },
	{ "bad.utf8key", "Invalid UTF-8 in a key", NULL, NULL,
	    utf8_key_execute, 0 },
	{ "bad.text", "A double whose text is not a number", NULL, NULL,
	    text_execute, 0 },
	{ "bad.error", "Invalid UTF-8 in an error code and message", NULL,
	    NULL, error_execute, 0 },
};

static int
badbody_register(cmdhost_registrar *reg)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (cmdhost_add_command(reg, &cmds[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("badbody", "1.0.0", badbody_register);
