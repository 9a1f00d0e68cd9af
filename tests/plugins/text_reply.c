/*
 * text_reply.c - a test plugin for the ABI 1.1 text entries:
 * text.reply answers the bytes it is given (hex, so that any byte can be
 * sent) through ctx_respond_text, with a chosen status or a huge body;
 * text.client_id answers the client's id as text; text.log logs a long
 * multi-byte message through ctx_log directly, as another language would.
 */
#include <cmdhost/plugin.h>

#include <stdlib.h>
#include <string.h>

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* {"hex": "7b7d"} | {"huge": N} | {"status": S}: reply the decoded bytes
 * (or a string body of N bytes) with status S (default 200). */
static int
reply_execute(cmdhost_ctx *ctx)
{
	struct json_object *p = cmdhost_payload(ctx), *v;
	int status = 200, rc;
	size_t n = 0;
	char *bytes;

	if (json_object_object_get_ex(p, "status", &v))
		status = json_object_get_int(v);
	if (json_object_object_get_ex(p, "huge", &v)) {
		n = (size_t)json_object_get_int64(v);
		if ((bytes = malloc(n)) == NULL)
			return cmdhost_fail(ctx, 503, "oom", "out of memory");
		memset(bytes, 'a', n);
		bytes[0] = bytes[n - 1] = '"';
	} else {
		const char *hex = json_object_object_get_ex(p, "hex", &v) ?
		    json_object_get_string(v) : "";
		size_t len = strlen(hex);

		if ((bytes = malloc(len / 2 + 1)) == NULL)
			return cmdhost_fail(ctx, 503, "oom", "out of memory");
		for (size_t i = 0; i + 1 < len; i += 2) {
			int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);

			if (hi < 0 || lo < 0) {
				free(bytes);
				return cmdhost_fail(ctx, 400, "bad_hex",
				    "hex digits only");
			}
			bytes[n++] = (char)(hi << 4 | lo);
		}
	}
	/* The table's entry itself, as a binding calls it. */
	rc = cmdhost_api(ctx)->ctx_respond_text(ctx, status, bytes, n);
	free(bytes);
	(void)rc;
	return 0;
}

/* {"id_text": <the client's id as text, or null>, "again": <the second
 * finishing call's return>} */
static int
client_id_execute(cmdhost_ctx *ctx)
{
	const char *id = cmdhost_client_id_text(ctx);
	char body[256];
	int rc;

	snprintf(body, sizeof(body), "{\"id_text\":%s%s%s}", id ? "\"" : "",
	    id ? "" : "null", id ? "" : "");
	if (id != NULL) {
		/* id is JSON text; put it in a string, escaping quotes. */
		size_t o = strlen("{\"id_text\":\"");
		for (const char *s = id; *s && o < sizeof(body) - 4; s++) {
			if (*s == '"' || *s == '\\')
				body[o++] = '\\';
			body[o++] = *s;
		}
		body[o++] = '"';
		body[o++] = '}';
		body[o] = '\0';
	}
	rc = cmdhost_ok_text(ctx, body);
	/* A second finish is refused and changes nothing. */
	if (cmdhost_ok_text(ctx, "\"second\"") != -1 || rc != 0)
		return -1;
	return 0;
}

/* Log 3000 bytes of 'é' (two bytes each) straight through the table: the
 * daemon cuts it at CMDHOST_LOG_MAX on a character boundary. */
static int
log_execute(cmdhost_ctx *ctx)
{
	char msg[3001];

	/* An odd start: the cut at 1024 falls inside a character. */
	msg[0] = 'L';
	for (int i = 1; i + 1 < 3000; i += 2) {
		msg[i] = (char)0xc3;
		msg[i + 1] = (char)0xa9;
	}
	msg[2999] = '\0';
	cmdhost_api(ctx)->ctx_log(ctx, CMDHOST_LOG_WARN, msg + 0);
	return cmdhost_ok_text(ctx, "{\"logged\":true}");
}

static const cmdhost_command commands[] = {
	{ "text.reply", "reply JSON text", NULL, NULL, reply_execute, 0 },
	{ "text.client_id", "the client's id as text", NULL, NULL,
	    client_id_execute, 0 },
	{ "text.log", "log a long message", NULL, NULL, log_execute, 0 },
};

static int
text_register(cmdhost_registrar *reg)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (cmdhost_add_command(reg, &commands[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("text_reply", "1.0.0", text_register);
