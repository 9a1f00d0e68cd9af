/*
 * fuzz_request.c - libFuzzer harness for request.c: parse one request line,
 * check its payload against fields of every type, format both kinds of
 * reply, and abort() unless each reply is one JSON object line with "status".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One field of each type, required and optional, checked on every payload. */
static const cmdhost_field fields[] = {
	{ "any", CMDHOST_ANY, 0 },
	{ "s", CMDHOST_STRING, 0 },
	{ "n", CMDHOST_NUMBER, 0 },
	{ "i", CMDHOST_INTEGER, 0 },
	{ "b", CMDHOST_BOOLEAN, 0 },
	{ "o", CMDHOST_OBJECT, 0 },
	{ "a", CMDHOST_ARRAY, 0 },
	{ "msg", CMDHOST_STRING, 1 },
	{ NULL, 0, 0 }
};

/* Abort unless out holds exactly one '\n'-terminated line that json-c
 * parses as an object with a "status" member.  out is borrowed; the copy
 * made here is freed here. */
static void
check_reply(const struct buf *out)
{
	size_t n = buf_size(out);
	const char *p = buf_head(out);
	struct json_object *o, *st;
	char *s;

	if (n < 2 || p[n - 1] != '\n' || memchr(p, '\n', n - 1) != NULL)
		abort();
	if (memchr(p, '\0', n) != NULL)
		abort();
	if ((s = malloc(n)) == NULL)
		abort();
	memcpy(s, p, n - 1);
	s[n - 1] = '\0';
	o = json_tokener_parse(s);
	free(s);
	if (o == NULL || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "status", &st) ||
	    !json_object_is_type(st, json_type_int))
		abort();
	json_object_put(o);
}

/* Format an error reply with id and message (borrowed) and check it. */
static void
try_error(struct json_object *id, int status, const char *code,
    const char *message)
{
	struct buf out = BUF_INIT;

	if (request_format_error(&out, id, status, code, message) != 0)
		abort();
	check_reply(&out);
	buf_free(&out);
}

/* Format an ok reply with id and body (borrowed) and check it. */
static void
try_ok(struct json_object *id, int status, struct json_object *body)
{
	struct buf out = BUF_INIT;

	if (request_format_ok(&out, id, status, body) != 0)
		abort();
	check_reply(&out);
	buf_free(&out);
}

/* The fuzzer entry point: data is borrowed; everything made here is freed
 * here, except the tokener, kept for the whole run. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct json_tokener *tok;
	struct request req;
	char err[256], ferr[256];

	if (tok == NULL && (tok = request_tokener_new()) == NULL)
		abort();
	memset(&req, 0, sizeof(req));
	err[0] = '\0';
	if (request_parse(tok, (const char *)data, size, &req, err,
	    sizeof(err)) != 0) {
		if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		try_error(req.id, 400, "bad_request", err);
		request_fini(&req);
		return 0;
	}
	if (req.command == NULL || req.payload == NULL || req.root == NULL ||
	    req.timeout_ms < 0)
		abort();
	ferr[0] = '\0';
	if (request_check_fields(fields, req.payload, ferr,
	    sizeof(ferr)) != 0) {
		if (ferr[0] == '\0')
			abort();
		try_error(req.id, 400, "invalid_payload", ferr);
	}
	/* The command name is client text: a message must survive it. */
	try_error(req.id, 404, "unknown_command", req.command);
	try_ok(req.id, 200, req.payload);
	try_ok(req.id, 201, req.root);
	try_ok(NULL, 200, NULL);
	request_fini(&req);
	return 0;
}
