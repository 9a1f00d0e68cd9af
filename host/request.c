/*
 * request.c - the request line parser, the field checker and the reply
 * formatter of protocol v1.
 *
 * Replies are formatted by hand around json-c's serialization of the id and
 * body, so that the hot path builds no json-c object of its own.
 */
#include "request.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SERIALIZE_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

struct json_tokener *
request_tokener_new(void)
{
	struct json_tokener *tok = json_tokener_new_ex(REQUEST_MAX_DEPTH);

	if (tok != NULL)
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
		    JSON_TOKENER_VALIDATE_UTF8);
	return tok;
}

void
request_fini(struct request *req)
{
	if (req->root != NULL)
		json_object_put(req->root);
	memset(req, 0, sizeof(*req));
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
request_parse(struct json_tokener *tok, const char *line, size_t len,
    struct request *req, char *err, size_t errlen)
{
	static const char nul = '\0';
	struct json_object *root, *v;
	enum json_tokener_error jerr;

	memset(req, 0, sizeof(*req));
	while (len > 0 && is_space(line[len - 1]))
		len--;
	json_tokener_reset(tok);
	root = json_tokener_parse_ex(tok, line, (int)len);
	jerr = json_tokener_get_error(tok);
	if (root == NULL && jerr == json_tokener_continue) {
		/* A bare scalar ("12") needs an end marker to complete. */
		root = json_tokener_parse_ex(tok, &nul, 1);
		jerr = json_tokener_get_error(tok);
		if (jerr == json_tokener_continue) {
			snprintf(err, errlen, "incomplete JSON");
			return -1;
		}
	} else if (jerr == json_tokener_success &&
	    json_tokener_get_parse_end(tok) < len) {
		if (root != NULL)
			json_object_put(root);
		snprintf(err, errlen, "invalid JSON: unexpected text after "
		    "the object at offset %zu", json_tokener_get_parse_end(tok));
		return -1;
	}
	if (jerr != json_tokener_success) {
		if (root != NULL)
			json_object_put(root);
		snprintf(err, errlen, "invalid JSON: %s at offset %zu",
		    json_tokener_error_desc(jerr),
		    json_tokener_get_parse_end(tok));
		return -1;
	}
	if (!json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		snprintf(err, errlen, "a request must be a JSON object");
		return -1;
	}
	req->root = root;

	if (json_object_object_get_ex(root, "id", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_string) &&
		    !json_object_is_type(v, json_type_int)) {
			snprintf(err, errlen, "\"id\" must be a string or an "
			    "integer");
			return -1;
		}
		req->id = v;
	}
	if (!json_object_object_get_ex(root, "command", &v) || v == NULL)
		json_object_object_get_ex(root, "commandType", &v);
	if (v == NULL) {
		snprintf(err, errlen, "\"command\" is missing");
		return -1;
	}
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "\"command\" must be a string");
		return -1;
	}
	req->command = json_object_get_string(v);
	if (json_object_object_get_ex(root, "timeout_ms", &v) && v != NULL) {
		int64_t t;

		if (!json_object_is_type(v, json_type_int) ||
		    (t = json_object_get_int64(v)) <= 0 || t > 86400000) {
			snprintf(err, errlen, "\"timeout_ms\" must be an integer "
			    "from 1 to 86400000");
			return -1;
		}
		req->timeout_ms = t;
	}
	if (!json_object_object_get_ex(root, "payload", &v) || v == NULL) {
		/* Absent or null: an empty object, owned by root. */
		v = json_object_new_object();
		if (v == NULL ||
		    json_object_object_add(root, "payload", v) != 0) {
			json_object_put(v);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	req->payload = v;
	return 0;
}

const char *
request_type_name(int type)
{
	switch (type) {
	case CMDHOST_STRING:
		return "string";
	case CMDHOST_NUMBER:
		return "number";
	case CMDHOST_INTEGER:
		return "integer";
	case CMDHOST_BOOLEAN:
		return "boolean";
	case CMDHOST_OBJECT:
		return "object";
	case CMDHOST_ARRAY:
		return "array";
	default:
		return "any";
	}
}

static const char *
json_type_label(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		return "a string";
	case json_type_int:
		return "an integer";
	case json_type_double:
		return "a number";
	case json_type_boolean:
		return "a boolean";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	default:
		return "null";
	}
}

static int
type_matches(int type, struct json_object *v)
{
	enum json_type t = json_object_get_type(v);

	switch (type) {
	case CMDHOST_STRING:
		return t == json_type_string;
	case CMDHOST_NUMBER:
		return t == json_type_int || t == json_type_double;
	case CMDHOST_INTEGER:
		return t == json_type_int;
	case CMDHOST_BOOLEAN:
		return t == json_type_boolean;
	case CMDHOST_OBJECT:
		return t == json_type_object;
	case CMDHOST_ARRAY:
		return t == json_type_array;
	default:
		return 1;
	}
}

int
request_check_fields(const cmdhost_field *fields, struct json_object *payload,
    char *err, size_t errlen)
{
	if (fields == NULL || fields[0].name == NULL)
		return 0;
	if (!json_object_is_type(payload, json_type_object)) {
		snprintf(err, errlen, "payload must be an object, got %s",
		    json_type_label(payload));
		return -1;
	}
	for (const cmdhost_field *f = fields; f->name != NULL; f++) {
		struct json_object *v = NULL;

		json_object_object_get_ex(payload, f->name, &v);
		if (v == NULL) {
			if (!f->required)
				continue;
			snprintf(err, errlen, "field '%s' is required", f->name);
			return -1;
		}
		if (!type_matches(f->type, v)) {
			snprintf(err, errlen, "field '%s' must be %s %s, got %s",
			    f->name, f->type == CMDHOST_INTEGER ? "an" : "a",
			    request_type_name(f->type), json_type_label(v));
			return -1;
		}
	}
	return 0;
}

static int
put_id(struct buf *out, struct json_object *id)
{
	if (id == NULL)
		return buf_put(out, "{\"id\":null,\"status\":", 20);
	if (buf_put(out, "{\"id\":", 6) < 0 ||
	    buf_puts(out, json_object_to_json_string_ext(id,
	    SERIALIZE_FLAGS)) < 0)
		return -ENOMEM;
	return buf_put(out, ",\"status\":", 10);
}

int
request_format_ok(struct buf *out, struct json_object *id, int status,
    struct json_object *body)
{
	size_t mark = buf_size(out);
	char num[16];
	int n;

	n = snprintf(num, sizeof(num), "%d", status);
	if (put_id(out, id) < 0 || buf_put(out, num, (size_t)n) < 0 ||
	    buf_put(out, ",\"body\":", 8) < 0 ||
	    buf_puts(out, body == NULL ? "null" :
	    json_object_to_json_string_ext(body, SERIALIZE_FLAGS)) < 0 ||
	    buf_put(out, "}\n", 2) < 0) {
		out->len = out->start + mark;
		return -ENOMEM;
	}
	return 0;
}

int
request_format_error(struct buf *out, struct json_object *id, int status,
    const char *code, const char *message)
{
	size_t mark = buf_size(out);
	char num[16];
	int n;

	n = snprintf(num, sizeof(num), "%d", status);
	if (put_id(out, id) < 0 || buf_put(out, num, (size_t)n) < 0 ||
	    buf_puts(out, ",\"error\":{\"code\":") < 0 ||
	    buf_put_json_string(out, code) < 0 ||
	    buf_puts(out, ",\"message\":") < 0 ||
	    buf_put_json_string(out, message) < 0 ||
	    buf_put(out, "}}\n", 3) < 0) {
		out->len = out->start + mark;
		return -ENOMEM;
	}
	return 0;
}
