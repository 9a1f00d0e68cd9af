/*
 * logger.c - a test plugin that logs through the SDK, for the log tests:
 * test.log logs payload "msg" at payload "level" (0 debug .. 3 error), or,
 * with "hostile": true, a message made to break a log line: quotes,
 * backslashes, newlines, control bytes, DEL and bytes that are not UTF-8.
 * It replies {"logged": true}.
 */
#include <cmdhost/plugin.h>

static int
log_execute(cmdhost_ctx *ctx)
{
	static const char hostile[] = "say \"hi\"\\ \n{\"level\":\"fake\"}\r\n"
	    "\x01\x02\x1b[31m\x1f\x7f tab\t bad utf-8: \xff\xfe \xc3\x28 "
	    "\xed\xa0\x80 cut \xe2\x82 ok: \xc3\xa9\xe2\x82\xac";
	json_object *payload = cmdhost_payload(ctx), *v, *body;
	const char *msg = "plugin says hello";
	int level = CMDHOST_LOG_INFO;

	if (json_object_object_get_ex(payload, "msg", &v))
		msg = json_object_get_string(v);
	if (json_object_object_get_ex(payload, "level", &v))
		level = json_object_get_int(v);
	if (json_object_object_get_ex(payload, "hostile", &v) &&
	    json_object_get_boolean(v))
		msg = hostile;
	cmdhost_log(ctx, level, "%s", msg);
	body = json_object_new_object();
	json_object_object_add(body, "logged", json_object_new_boolean(1));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_command commands[] = {
	{ "test.log", "Log payload msg (or a hostile one) through the SDK",
	    NULL, NULL, log_execute, 0 },
};

static int
logger_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &commands[0]);
}

CMDHOST_PLUGIN("logger", "1.0.0", logger_register);
