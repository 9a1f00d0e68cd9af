/*
 * test_request.c - unit tests of request.c: parsing one request line,
 * checking a payload against declared fields, and formatting reply lines.
 * Every formatted reply is parsed back with json-c, never compared by eye.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "request.h"

static struct json_tokener *tok;
static struct request req;
static char err[512];

/* A request tokener and a zeroed request per test. */
static void
setup(void)
{
	tok = request_tokener_new();
	cr_assert_not_null(tok);
	memset(&req, 0, sizeof(req));
	err[0] = '\0';
}

/* Release the request and the tokener. */
static void
teardown(void)
{
	request_fini(&req);
	json_tokener_free(tok);
}

TestSuite(parse, .init = setup, .fini = teardown);
TestSuite(fields);
TestSuite(format);

/* Parse `len` bytes of line into the global req (released first, so a test
 * may parse several lines).  Returns request_parse()'s result. */
static int
parse_len(const char *line, size_t len)
{
	request_fini(&req);
	err[0] = '\0';
	return request_parse(tok, line, len, &req, err, sizeof(err));
}

/* parse_len() of a NUL-terminated line. */
static int
parse(const char *line)
{
	return parse_len(line, strlen(line));
}

/* Assert that line is refused and that the reason contains `why`. */
static void
expect_refused(const char *line, const char *why)
{
	cr_assert_eq(parse(line), -1, "accepted: %s", line);
	cr_assert_neq(err[0], '\0', "no reason for: %s", line);
	cr_assert_not_null(strstr(err, why), "reason for %s is \"%s\", "
	    "expected it to contain \"%s\"", line, err, why);
}

/* ------------------------------------------------------------ parse */

Test(parse, full_request_with_string_id)
{
	struct json_object *x;

	cr_assert_eq(parse("{\"id\":\"req-1\",\"command\":\"test.echo\","
	    "\"payload\":{\"x\":7},\"timeout_ms\":250}"), 0, "%s", err);
	cr_assert_not_null(req.root);
	cr_assert_not_null(req.id);
	cr_assert(json_object_is_type(req.id, json_type_string));
	cr_assert_str_eq(json_object_get_string(req.id), "req-1");
	cr_assert_str_eq(req.command, "test.echo");
	cr_assert(json_object_is_type(req.payload, json_type_object));
	cr_assert(json_object_object_get_ex(req.payload, "x", &x));
	cr_assert_eq(json_object_get_int64(x), 7);
	cr_assert_eq(req.timeout_ms, 250);
}

Test(parse, integer_ids_are_kept_as_integers)
{
	cr_assert_eq(parse("{\"id\":42,\"command\":\"c\"}"), 0, "%s", err);
	cr_assert(json_object_is_type(req.id, json_type_int));
	cr_assert_eq(json_object_get_int64(req.id), 42);

	cr_assert_eq(parse("{\"id\":-9,\"command\":\"c\"}"), 0, "%s", err);
	cr_assert_eq(json_object_get_int64(req.id), -9);

	cr_assert_eq(parse("{\"id\":0,\"command\":\"c\"}"), 0, "%s", err);
	cr_assert_not_null(req.id);
	cr_assert_eq(json_object_get_int64(req.id), 0);
}

Test(parse, no_id_and_null_id_mean_absent)
{
	cr_assert_eq(parse("{\"command\":\"c\"}"), 0, "%s", err);
	cr_assert_null(req.id);
	cr_assert_eq(req.timeout_ms, 0);
	cr_assert_eq(parse("{\"id\":null,\"command\":\"c\"}"), 0, "%s", err);
	cr_assert_null(req.id);
}

Test(parse, seed_command_type)
{
	struct json_object *v;

	cr_assert_eq(parse("{\"commandType\":\"PROCESS_ORDER\","
	    "\"payload\":{\"orderId\":\"o-1\"}}"), 0, "%s", err);
	cr_assert_str_eq(req.command, "PROCESS_ORDER");
	cr_assert_null(req.id);
	cr_assert(json_object_object_get_ex(req.payload, "orderId", &v));
	cr_assert_str_eq(json_object_get_string(v), "o-1");
}

Test(parse, command_wins_over_command_type)
{
	cr_assert_eq(parse("{\"command\":\"a\",\"commandType\":\"b\"}"), 0);
	cr_assert_str_eq(req.command, "a");
	cr_assert_eq(parse("{\"commandType\":\"b\",\"command\":\"a\"}"), 0);
	cr_assert_str_eq(req.command, "a");
}

Test(parse, missing_or_null_payload_is_an_empty_object)
{
	cr_assert_eq(parse("{\"command\":\"c\"}"), 0, "%s", err);
	cr_assert_not_null(req.payload);
	cr_assert(json_object_is_type(req.payload, json_type_object));
	cr_assert_eq(json_object_object_length(req.payload), 0);

	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":null}"), 0, "%s",
	    err);
	cr_assert_not_null(req.payload);
	cr_assert(json_object_is_type(req.payload, json_type_object));
	cr_assert_eq(json_object_object_length(req.payload), 0);
}

Test(parse, payload_may_be_any_json)
{
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":[1,2,3]}"), 0);
	cr_assert(json_object_is_type(req.payload, json_type_array));
	cr_assert_eq(json_object_array_length(req.payload), 3);
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":\"text\"}"), 0);
	cr_assert_str_eq(json_object_get_string(req.payload), "text");
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":12}"), 0);
	cr_assert_eq(json_object_get_int64(req.payload), 12);
}

Test(parse, unknown_members_are_ignored)
{
	cr_assert_eq(parse("{\"command\":\"c\",\"extra\":{\"a\":[1]},"
	    "\"v\":2}"), 0, "%s", err);
	cr_assert_str_eq(req.command, "c");
}

Test(parse, trailing_cr_and_whitespace)
{
	cr_assert_eq(parse("{\"command\":\"c\"}\r"), 0, "%s", err);
	cr_assert_str_eq(req.command, "c");
	cr_assert_eq(parse("  {\"command\":\"c\"}  \t\r"), 0, "%s", err);
	cr_assert_str_eq(req.command, "c");
}

Test(parse, invalid_json)
{
	expect_refused("{\"command\":", "invalid JSON");
	expect_refused("not json", "JSON");
	expect_refused("{\"command\":\"c\",}", "invalid JSON");
	expect_refused("{'command':'c'}", "invalid JSON");
	expect_refused("{\"command\":\"c\",\"payload\":[1,2,]}",
	    "invalid JSON");
	expect_refused("{\"command\":\"c\",\"payload\":01}", "invalid JSON");
	cr_assert_null(req.root);
}

Test(parse, empty_and_blank_lines_are_errors)
{
	cr_assert_eq(parse(""), -1);
	cr_assert_eq(parse("   \r"), -1);
}

Test(parse, non_objects)
{
	expect_refused("[1,2]", "object");
	expect_refused("12", "object");
	expect_refused("-3.5", "object");
	expect_refused("\"a string\"", "object");
	expect_refused("true", "object");
	expect_refused("null", "object");
	cr_assert_null(req.root);
}

Test(parse, missing_command)
{
	expect_refused("{\"payload\":{}}", "\"command\"");
	expect_refused("{}", "\"command\"");
	expect_refused("{\"command\":null}", "\"command\"");
}

Test(parse, id_is_kept_when_the_command_is_missing)
{
	/* The error reply must still echo the client's id. */
	expect_refused("{\"id\":\"keep-me\",\"payload\":{}}", "command");
	cr_assert_not_null(req.id);
	cr_assert_str_eq(json_object_get_string(req.id), "keep-me");
}

Test(parse, command_not_a_string)
{
	expect_refused("{\"command\":5}", "must be a string");
	expect_refused("{\"command\":[\"a\"]}", "must be a string");
	expect_refused("{\"command\":{\"a\":1}}", "must be a string");
	expect_refused("{\"command\":true}", "must be a string");
	expect_refused("{\"commandType\":7}", "must be a string");
}

Test(parse, id_of_a_bad_type)
{
	expect_refused("{\"id\":1.5,\"command\":\"c\"}", "\"id\"");
	cr_assert_not_null(strstr(err, "string or an integer"), "%s", err);
	cr_assert_null(req.id);
	expect_refused("{\"id\":{\"a\":1},\"command\":\"c\"}",
	    "string or an integer");
	cr_assert_null(req.id);
	expect_refused("{\"id\":[1],\"command\":\"c\"}",
	    "string or an integer");
	expect_refused("{\"id\":true,\"command\":\"c\"}",
	    "string or an integer");
	expect_refused("{\"id\":1e3,\"command\":\"c\"}",
	    "string or an integer");
}

Test(parse, bad_timeout)
{
	expect_refused("{\"command\":\"c\",\"timeout_ms\":0}", "timeout_ms");
	expect_refused("{\"command\":\"c\",\"timeout_ms\":-5}", "timeout_ms");
	expect_refused("{\"command\":\"c\",\"timeout_ms\":\"100\"}",
	    "timeout_ms");
	expect_refused("{\"command\":\"c\",\"timeout_ms\":1.5}", "timeout_ms");
	expect_refused("{\"command\":\"c\",\"timeout_ms\":true}", "timeout_ms");
	expect_refused("{\"command\":\"c\",\"timeout_ms\":{}}", "timeout_ms");
}

Test(parse, timeout_error_still_echoes_the_id)
{
	expect_refused("{\"id\":9,\"command\":\"c\",\"timeout_ms\":0}",
	    "timeout_ms");
	cr_assert_not_null(req.id);
	cr_assert_eq(json_object_get_int64(req.id), 9);
}

Test(parse, timeout_bounds)
{
	cr_assert_eq(parse("{\"command\":\"c\",\"timeout_ms\":1}"), 0);
	cr_assert_eq(req.timeout_ms, 1);
	cr_assert_eq(parse("{\"command\":\"c\",\"timeout_ms\":86400000}"), 0);
	cr_assert_eq(req.timeout_ms, 86400000);
	expect_refused("{\"command\":\"c\",\"timeout_ms\":86400001}",
	    "timeout_ms");
	/* null counts as absent: the default applies. */
	cr_assert_eq(parse("{\"command\":\"c\",\"timeout_ms\":null}"), 0);
	cr_assert_eq(req.timeout_ms, 0);
}

Test(parse, trailing_garbage)
{
	expect_refused("{\"command\":\"c\"} x", "invalid JSON");
	expect_refused("{\"command\":\"c\"}{}", "invalid JSON");
	expect_refused("{\"command\":\"c\"}]", "invalid JSON");
	expect_refused("{\"command\":\"c\"}\r\n{\"command\":\"d\"}",
	    "invalid JSON");
	cr_assert_null(req.root);
}

Test(parse, nul_byte_after_the_object)
{
	static const char line[] = "{\"command\":\"c\"}\0junk";

	cr_assert_eq(parse_len(line, sizeof(line) - 1), -1);
	cr_assert_null(req.root);
}

/* A line of n '[' (plus an optional prefix), malloc'd; caller frees. */
static char *
nesting(const char *prefix, size_t n, size_t *len)
{
	size_t plen = strlen(prefix);
	char *s = malloc(plen + n + 1);

	cr_assert_not_null(s);
	memcpy(s, prefix, plen);
	memset(s + plen, '[', n);
	s[plen + n] = '\0';
	*len = plen + n;
	return s;
}

Test(parse, nesting_bomb_is_refused)
{
	size_t len;
	char *s = nesting("", 100000, &len);

	cr_assert_eq(parse_len(s, len), -1);
	cr_assert_not_null(strstr(err, "nesting"), "%s", err);
	free(s);

	s = nesting("{\"command\":\"c\",\"payload\":", 100000, &len);
	cr_assert_eq(parse_len(s, len), -1);
	cr_assert_not_null(strstr(err, "nesting"), "%s", err);
	cr_assert_null(req.root);
	free(s);
}

Test(parse, moderate_nesting_is_fine)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "{\"command\":\"c\",\"payload\":"
	    "%.*s1%.*s}", 20, "[[[[[[[[[[[[[[[[[[[[", 20,
	    "]]]]]]]]]]]]]]]]]]]]");

	cr_assert_eq(parse_len(line, (size_t)n), 0, "%s", err);
	cr_assert(json_object_is_type(req.payload, json_type_array));
}

/* A request whose payload is nested `depth` levels deep (the request
 * object around it is not counted), malloc'd; caller frees. */
static char *
nested_request(int depth, size_t *len)
{
	static const char head[] = "{\"command\":\"c\",\"payload\":";
	size_t n = sizeof(head) - 1, inner = (size_t)depth;
	char *s = malloc(n + 2 * inner + 2);

	cr_assert_not_null(s);
	memcpy(s, head, n);
	memset(s + n, '[', inner);
	memset(s + n + inner, ']', inner);
	n += 2 * inner;
	s[n++] = '}';
	s[n] = '\0';
	*len = n;
	return s;
}

/* The docs say a payload may nest 64 levels: 64 is fine, 65 is not. */
Test(parse, depth_limit_is_request_max_depth)
{
	size_t len;
	char *s = nested_request(REQUEST_MAX_DEPTH, &len);

	cr_assert_eq(REQUEST_MAX_DEPTH, 64);
	cr_assert_eq(parse_len(s, len), 0, "depth %d refused: %s",
	    REQUEST_MAX_DEPTH, err);
	free(s);
	s = nested_request(REQUEST_MAX_DEPTH + 1, &len);
	cr_assert_eq(parse_len(s, len), -1, "depth %d accepted",
	    REQUEST_MAX_DEPTH + 1);
	cr_assert_not_null(strstr(err, "nesting"), "%s", err);
	free(s);
}

Test(parse, invalid_utf8_is_refused)
{
	expect_refused("{\"command\":\"\xff\"}", "utf-8");
	expect_refused("{\"command\":\"c\",\"payload\":\"a\xc3\"}", "utf-8");
	expect_refused("{\"command\":\"c\",\"payload\":{\"k\xfe\":1}}",
	    "utf-8");
}

Test(parse, valid_utf8_is_accepted)
{
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":\"h\xc3\xa9llo "
	    "\xe2\x82\xac \xf0\x9f\x98\x80\"}"), 0, "%s", err);
	cr_assert_str_eq(json_object_get_string(req.payload),
	    "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
}

/*
 * Overlong encodings and encoded surrogates are not UTF-8 (RFC 3629); a
 * strict client cannot decode a reply that echoes them back.
 */
Test(parse, overlong_and_surrogate_utf8_is_refused)
{
	expect_refused("{\"command\":\"c\",\"payload\":\"\xc0\xaf\"}", "utf-8");
	expect_refused("{\"command\":\"c\",\"payload\":\"\xed\xa0\x80\"}",
	    "utf-8");
}

/*
 * NaN and Infinity are not JSON (RFC 8259); json-c accepts them even in
 * strict mode and prints them back verbatim, so an echoed payload would
 * make the reply line unparseable.
 */
Test(parse, nan_and_infinity_are_refused)
{
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":NaN}"), -1,
	    "NaN accepted");
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":[Infinity]}"), -1,
	    "Infinity accepted");
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":-Infinity}"), -1,
	    "-Infinity accepted");
}

/* Documented behaviour: json-c keeps the last of duplicate members. */
Test(parse, duplicate_keys_last_wins)
{
	struct json_object *v;

	cr_assert_eq(parse("{\"command\":\"a\",\"command\":\"b\"}"), 0, "%s",
	    err);
	cr_assert_str_eq(req.command, "b");
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":{\"x\":1},"
	    "\"payload\":{\"y\":2}}"), 0, "%s", err);
	cr_assert_not(json_object_object_get_ex(req.payload, "x", NULL));
	cr_assert(json_object_object_get_ex(req.payload, "y", &v));
	cr_assert_eq(json_object_get_int64(v), 2);
	cr_assert_eq(parse("{\"id\":1,\"id\":\"two\",\"command\":\"c\"}"), 0);
	cr_assert_str_eq(json_object_get_string(req.id), "two");
}

Test(parse, tokener_is_reusable_after_an_error)
{
	cr_assert_eq(parse("{\"command\":"), -1);
	cr_assert_eq(parse("{\"command\":\"after\"}"), 0, "%s", err);
	cr_assert_str_eq(req.command, "after");
}

Test(parse, fini_is_safe_on_a_zeroed_request)
{
	struct request z;

	memset(&z, 0, sizeof(z));
	request_fini(&z);
	request_fini(&z);
	cr_assert_null(z.root);
}

/* ------------------------------------------------------------ fields */

static const cmdhost_field all_types[] = {
	{ "s", CMDHOST_STRING, 1 },
	{ "n", CMDHOST_NUMBER, 1 },
	{ "i", CMDHOST_INTEGER, 1 },
	{ "b", CMDHOST_BOOLEAN, 1 },
	{ "o", CMDHOST_OBJECT, 0 },
	{ "a", CMDHOST_ARRAY, 0 },
	{ "x", CMDHOST_ANY, 0 },
	{ 0 }
};

/* Check the JSON text `payload` against all_types; the reason goes to
 * reason.  Returns request_check_fields()'s result. */
static int
check(const char *payload, char *reason, size_t len)
{
	struct json_object *p = json_tokener_parse(payload);
	int rc;

	cr_assert(p != NULL || strcmp(payload, "null") == 0, "bad test "
	    "payload %s", payload);
	reason[0] = '\0';
	rc = request_check_fields(all_types, p, reason, len);
	json_object_put(p);
	return rc;
}

/* Assert that the payload is refused with a reason naming 'field'. */
static void
expect_field_error(const char *payload, const char *field)
{
	char reason[256], quoted[64];

	cr_assert_eq(check(payload, reason, sizeof(reason)), -1,
	    "accepted: %s", payload);
	snprintf(quoted, sizeof(quoted), "'%s'", field);
	cr_assert_not_null(strstr(reason, quoted), "reason \"%s\" for %s does "
	    "not name field %s", reason, payload, quoted);
}

#define BASE "\"s\":\"x\",\"n\":1.5,\"i\":3,\"b\":true"

Test(fields, every_type_accepted)
{
	char reason[256];

	cr_assert_eq(check("{" BASE ",\"o\":{\"k\":1},\"a\":[1],\"x\":\"y\"}",
	    reason, sizeof(reason)), 0, "%s", reason);
	/* An integer is a number too. */
	cr_assert_eq(check("{\"s\":\"\",\"n\":2,\"i\":-3,\"b\":false}",
	    reason, sizeof(reason)), 0, "%s", reason);
	/* ANY takes anything. */
	cr_assert_eq(check("{" BASE ",\"x\":[{}]}", reason, sizeof(reason)), 0,
	    "%s", reason);
	cr_assert_eq(check("{" BASE ",\"x\":false}", reason, sizeof(reason)),
	    0, "%s", reason);
}

Test(fields, optional_missing_is_ok)
{
	char reason[256];

	cr_assert_eq(check("{" BASE "}", reason, sizeof(reason)), 0, "%s",
	    reason);
}

Test(fields, wrong_types)
{
	expect_field_error("{\"s\":5,\"n\":1,\"i\":1,\"b\":true}", "s");
	expect_field_error("{\"s\":\"x\",\"n\":\"1\",\"i\":1,\"b\":true}", "n");
	expect_field_error("{\"s\":\"x\",\"n\":1,\"i\":1.5,\"b\":true}", "i");
	expect_field_error("{\"s\":\"x\",\"n\":1,\"i\":1e3,\"b\":true}", "i");
	expect_field_error("{\"s\":\"x\",\"n\":1,\"i\":2.0,\"b\":true}", "i");
	expect_field_error("{\"s\":\"x\",\"n\":1,\"i\":\"2\",\"b\":true}", "i");
	expect_field_error("{\"s\":\"x\",\"n\":1,\"i\":1,\"b\":1}", "b");
	expect_field_error("{\"s\":\"x\",\"n\":1,\"i\":1,\"b\":\"true\"}", "b");
	expect_field_error("{" BASE ",\"o\":[]}", "o");
	expect_field_error("{" BASE ",\"o\":\"{}\"}", "o");
	expect_field_error("{" BASE ",\"a\":{}}", "a");
	expect_field_error("{" BASE ",\"a\":1}", "a");
}

Test(fields, message_says_expected_and_actual_type)
{
	char reason[256];

	cr_assert_eq(check("{\"s\":\"x\",\"n\":1,\"i\":1.5,\"b\":true}", reason,
	    sizeof(reason)), -1);
	cr_assert_not_null(strstr(reason, "integer"), "%s", reason);
	cr_assert_not_null(strstr(reason, "number"), "%s", reason);
}

Test(fields, required_missing)
{
	char reason[256];

	expect_field_error("{\"n\":1,\"i\":1,\"b\":true}", "s");
	expect_field_error("{\"s\":\"x\",\"i\":1,\"b\":true}", "n");
	expect_field_error("{\"s\":\"x\",\"n\":1,\"b\":true}", "i");
	expect_field_error("{\"s\":\"x\",\"n\":1,\"i\":1}", "b");
	cr_assert_eq(check("{}", reason, sizeof(reason)), -1);
	cr_assert_not_null(strstr(reason, "required"), "%s", reason);
}

Test(fields, null_counts_as_absent)
{
	char reason[256];

	/* A required field given null is missing. */
	expect_field_error("{\"s\":null,\"n\":1,\"i\":1,\"b\":true}", "s");
	cr_assert_eq(check("{\"s\":null,\"n\":1,\"i\":1,\"b\":true}", reason,
	    sizeof(reason)), -1);
	cr_assert_not_null(strstr(reason, "required"), "%s", reason);
	/* An optional field given null is fine, whatever its type. */
	cr_assert_eq(check("{" BASE ",\"o\":null,\"a\":null,\"x\":null}",
	    reason, sizeof(reason)), 0, "%s", reason);
}

Test(fields, payload_must_be_an_object_when_fields_are_declared)
{
	char reason[256];

	cr_assert_eq(check("[1,2]", reason, sizeof(reason)), -1);
	cr_assert_not_null(strstr(reason, "object"), "%s", reason);
	cr_assert_eq(check("\"str\"", reason, sizeof(reason)), -1);
	cr_assert_eq(check("5", reason, sizeof(reason)), -1);
	cr_assert_eq(check("null", reason, sizeof(reason)), -1);
}

Test(fields, no_declared_fields_accepts_anything)
{
	static const cmdhost_field none[] = { { 0 } };
	struct json_object *arr = json_tokener_parse("[1]");
	char reason[64] = "";

	cr_assert_eq(request_check_fields(NULL, arr, reason, sizeof(reason)),
	    0);
	cr_assert_eq(request_check_fields(none, arr, reason, sizeof(reason)),
	    0);
	cr_assert_eq(request_check_fields(NULL, NULL, reason, sizeof(reason)),
	    0);
	json_object_put(arr);
}

Test(fields, type_names)
{
	cr_assert_str_eq(request_type_name(CMDHOST_ANY), "any");
	cr_assert_str_eq(request_type_name(CMDHOST_STRING), "string");
	cr_assert_str_eq(request_type_name(CMDHOST_NUMBER), "number");
	cr_assert_str_eq(request_type_name(CMDHOST_INTEGER), "integer");
	cr_assert_str_eq(request_type_name(CMDHOST_BOOLEAN), "boolean");
	cr_assert_str_eq(request_type_name(CMDHOST_OBJECT), "object");
	cr_assert_str_eq(request_type_name(CMDHOST_ARRAY), "array");
}

/* ------------------------------------------------------------ format */

/*
 * Check that the unconsumed bytes of b are exactly one line: they end with
 * the only '\n' and parse as one JSON object.  Returns the object (new
 * reference, caller puts).
 */
static struct json_object *
one_line(const struct buf *b)
{
	struct json_tokener *t = json_tokener_new();
	struct json_object *o;
	size_t n = buf_size(b);
	const char *s = buf_head(b);

	cr_assert_gt(n, 1);
	cr_assert_eq(s[n - 1], '\n', "reply does not end with a newline");
	cr_assert_null(memchr(s, '\n', n - 1), "reply has an inner newline: "
	    "%.*s", (int)n, s);
	json_tokener_set_flags(t, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(t, s, (int)(n - 1));
	cr_assert_not_null(o, "reply is not JSON: %.*s", (int)n, s);
	cr_assert_eq(json_tokener_get_parse_end(t), n - 1, "text after the "
	    "object: %.*s", (int)n, s);
	cr_assert(json_object_is_type(o, json_type_object));
	json_tokener_free(t);
	return o;
}

/* The member `key` of o, asserted present. */
static struct json_object *
member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "no member \"%s\" "
	    "in %s", key, json_object_to_json_string(o));
	return v;
}

Test(format, ok_with_string_id_and_body)
{
	struct buf b = BUF_INIT;
	struct json_object *id = json_object_new_string("a\"b\nc");
	struct json_object *body = json_tokener_parse("{\"list\":[1,\"two\","
	    "null],\"s\":\"line1\\nline2 \\\"q\\\" a/b\"}");
	struct json_object *o;

	cr_assert_not_null(body);
	cr_assert_eq(request_format_ok(&b, id, 200, body), 0);
	o = one_line(&b);
	cr_assert_str_eq(json_object_get_string(member(o, "id")), "a\"b\nc");
	cr_assert_eq(json_object_get_int(member(o, "status")), 200);
	cr_assert(json_object_equal(member(o, "body"), body),
	    "body changed: %s", json_object_to_json_string(member(o, "body")));
	cr_assert_not(json_object_object_get_ex(o, "error", NULL));
	/* Slashes are not escaped. */
	cr_assert_not_null(memmem(buf_head(&b), buf_size(&b), "a/b", 3));
	json_object_put(o);
	json_object_put(id);
	json_object_put(body);
	buf_free(&b);
}

Test(format, ok_with_integer_id)
{
	struct buf b = BUF_INIT;
	struct json_object *id = json_object_new_int64(-17);
	struct json_object *body = json_object_new_string("x");
	struct json_object *o;

	cr_assert_eq(request_format_ok(&b, id, 201, body), 0);
	o = one_line(&b);
	cr_assert(json_object_is_type(member(o, "id"), json_type_int));
	cr_assert_eq(json_object_get_int64(member(o, "id")), -17);
	cr_assert_eq(json_object_get_int(member(o, "status")), 201);
	cr_assert_str_eq(json_object_get_string(member(o, "body")), "x");
	json_object_put(o);
	json_object_put(id);
	json_object_put(body);
	buf_free(&b);
}

Test(format, ok_null_id_and_null_body)
{
	static const char want[] =
	    "{\"id\":null,\"status\":200,\"body\":null}\n";
	struct buf b = BUF_INIT;
	struct json_object *o;

	cr_assert_eq(request_format_ok(&b, NULL, 200, NULL), 0);
	cr_assert_eq(buf_size(&b), sizeof(want) - 1);
	cr_assert_eq(memcmp(buf_head(&b), want, sizeof(want) - 1), 0,
	    "got %.*s", (int)buf_size(&b), buf_head(&b));
	o = one_line(&b);
	cr_assert(json_object_object_get_ex(o, "id", NULL));
	cr_assert_null(member(o, "id"));
	cr_assert_null(member(o, "body"));
	json_object_put(o);
	buf_free(&b);
}

Test(format, error_escapes_the_message)
{
	static const char msg[] = "bad \"field\" \\ here\nnext\tline\r\x01"
	    "\x1f\x7f end \xc3\xa9";
	struct buf b = BUF_INIT;
	struct json_object *o, *e;

	cr_assert_eq(request_format_error(&b, NULL, 400, "invalid_payload",
	    msg), 0);
	o = one_line(&b);
	cr_assert_null(member(o, "id"));
	cr_assert_eq(json_object_get_int(member(o, "status")), 400);
	cr_assert_not(json_object_object_get_ex(o, "body", NULL));
	e = member(o, "error");
	cr_assert(json_object_is_type(e, json_type_object));
	cr_assert_str_eq(json_object_get_string(member(e, "code")),
	    "invalid_payload");
	cr_assert_str_eq(json_object_get_string(member(e, "message")), msg);
	/* No raw control byte may reach the wire. */
	for (size_t i = 0; i + 1 < buf_size(&b); i++)
		cr_assert_geq((unsigned char)buf_head(&b)[i], 0x20,
		    "raw control byte at %zu", i);
	json_object_put(o);
	buf_free(&b);
}

Test(format, error_exact_text)
{
	static const char want[] = "{\"id\":\"r1\",\"status\":404,\"error\":"
	    "{\"code\":\"unknown_command\","
	    "\"message\":\"no command \\\"x\\\"\"}}"
	    "\n";
	struct buf b = BUF_INIT;
	struct json_object *id = json_object_new_string("r1");

	cr_assert_eq(request_format_error(&b, id, 404, "unknown_command",
	    "no command \"x\""), 0);
	cr_assert_eq(buf_size(&b), sizeof(want) - 1, "got %.*s",
	    (int)buf_size(&b), buf_head(&b));
	cr_assert_eq(memcmp(buf_head(&b), want, sizeof(want) - 1), 0,
	    "got %.*s", (int)buf_size(&b), buf_head(&b));
	json_object_put(id);
	buf_free(&b);
}

Test(format, replies_append_one_line_each)
{
	struct buf b = BUF_INIT;
	struct json_object *id = json_object_new_int(1), *o;
	size_t first;

	cr_assert_eq(request_format_ok(&b, id, 200, NULL), 0);
	first = buf_size(&b);
	cr_assert_eq(request_format_error(&b, id, 504, "timeout", "late"), 0);
	cr_assert_eq(buf_head(&b)[first - 1], '\n');
	buf_consume(&b, first);
	o = one_line(&b);
	cr_assert_eq(json_object_get_int(member(o, "status")), 504);
	cr_assert_str_eq(json_object_get_string(member(member(o, "error"),
	    "code")), "timeout");
	json_object_put(o);
	/* After a partial consume, appending still yields whole lines. */
	buf_consume(&b, 3);
	cr_assert_eq(request_format_ok(&b, NULL, 200, NULL), 0);
	cr_assert_eq(buf_head(&b)[buf_size(&b) - 1], '\n');
	json_object_put(id);
	buf_free(&b);
}

/* json-c would clamp these silently; they are refused instead.  Integers
 * at the limits, finite doubles and digits inside strings are fine. */
Test(parse, integers_beyond_64_bits_are_refused)
{
	expect_refused("{\"command\":\"c\",\"payload\":18446744073709551616}",
	    "64 bits");
	expect_refused("{\"command\":\"c\",\"payload\":[-9223372036854775809]}",
	    "64 bits");
	expect_refused("{\"command\":\"c\",\"payload\":{\"n\":"
	    "123456789012345678901234567890}}", "64 bits");
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":"
	    "[18446744073709551615,-9223372036854775808]}"), 0, "%s", err);
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":"
	    "[1e300,123456789012345678901234567890.5,1e-400]}"), 0, "%s",
	    err);
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":"
	    "\"123456789012345678901234567890\"}"), 0, "%s", err);
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":{"
	    "\"123456789012345678901234567890\":1}}"), 0, "%s", err);
}

/* request_id_format() writes what json-c would, escaped, or gives up when
 * the buffer is too small. */
Test(format, id_format_matches_json_c)
{
	static const char *const ids[] = { "42", "-9223372036854775808",
	    "18446744073709551615", "\"plain\"", "\"a\\\"b\\\\c\\n\\u0001\"",
	    "\"\"", NULL };
	char buf[48];

	for (int i = 0; ids[i] != NULL; i++) {
		struct json_object *id = json_tokener_parse(ids[i]);
		const char *t = request_id_format(id, buf, sizeof(buf));
		struct json_object *back;

		cr_assert_not_null(id, "%s", ids[i]);
		if (t == NULL) {
			/* Only json-c's uint64 beyond int64 is left to it. */
			cr_assert_str_eq(ids[i], "18446744073709551615");
		} else {
			back = json_tokener_parse(t);
			cr_assert(json_object_equal(back, id), "%s -> %s", ids[i],
			    t);
			json_object_put(back);
		}
		json_object_put(id);
	}
	{
		struct json_object *id = json_object_new_string(
		    "a string id far too long for a buffer of 48 bytes");

		cr_assert_null(request_id_format(id, buf, sizeof(buf)));
		json_object_put(id);
	}
}

/* json-c reads a number past a double's range as an infinity, silently:
 * refused, with a long mantissa as with a long exponent.  Underflow to 0
 * is rounding like any other and is fine. */
Test(parse, numbers_beyond_a_double_are_refused)
{
	static const char *const bad[] = { "1e400", "-1e400", "1E+400",
	    "[0.5,{\"x\":2.5e999}]", "1e999999", NULL };
	char line[1200];

	for (int i = 0; bad[i] != NULL; i++) {
		snprintf(line, sizeof(line), "{\"command\":\"c\",\"payload\":"
		    "%s}", bad[i]);
		expect_refused(line, "1e400");
	}
	/* 310 digits and a fraction: beyond DBL_MAX with no exponent. */
	strcpy(line, "{\"command\":\"c\",\"payload\":");
	memset(line + strlen(line), '9', 310);
	strcpy(line + strlen("{\"command\":\"c\",\"payload\":") + 310, ".5}");
	expect_refused(line, "1e400");
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":[1e308,-1.7e308,"
	    "1e-400,\"1e400\"]}"), 0, "%s", err);
}

/* A raw control byte inside a string is not JSON (json-c takes a raw tab
 * even when strict); escaped, or between tokens, a tab is fine. */
Test(parse, raw_control_bytes_in_strings_are_refused)
{
	expect_refused("{\"command\":\"c\",\"payload\":\"a\tb\"}",
	    "control character");
	expect_refused("{\"command\":\"c\",\"payload\":{\"k\x01\":1}}",
	    "control character");
	expect_refused("{\"id\":\"a\x1f\",\"command\":\"c\"}",
	    "control character");
	cr_assert_eq(parse("{\"command\":\"c\",\t\"payload\":\"a\\tb\\\"\\\\\"}"),
	    0, "%s", err);
	cr_assert_str_eq(json_object_get_string(req.payload), "a\tb\"\\");
}

/* json-c keeps "\u0000" inside a string; a command or id holding it would
 * be cut at the NUL (and "echo\u0000x" would run echo). */
Test(parse, nul_in_command_or_id_is_refused)
{
	expect_refused("{\"command\":\"echo\\u0000x\"}", "NUL");
	cr_assert_null(req.command);
	expect_refused("{\"id\":\"a\\u0000b\",\"command\":\"c\"}", "NUL");
	/* The id is still echoed, whole. */
	cr_assert_not_null(req.id);
	cr_assert_eq(json_object_get_string_len(req.id), 3);
	cr_assert_str_eq(request_id_text(req.id), "\"a\\u0000b\"");
	/* In the payload a NUL is data. */
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":\"a\\u0000b\"}"),
	    0, "%s", err);
	cr_assert_eq(parse("{\"command\":\"c\",\"payload\":{\"k\":"
	    "[\"\\u0000\"]}}"), 0, "%s", err);
	/* In a member name it is not: json-c cut "k\u0000x" to "k" (and
	 * "\u0000x" to "", which a later "" replaced). */
	expect_refused("{\"command\":\"c\",\"payload\":{\"k\\u0000x\":1}}",
	    "NUL");
	expect_refused("{\"command\":\"c\",\"payload\":[{\"\\u0000\" :1}]}",
	    "member name");
	expect_refused("{\"command\":\"c\",\"x\\u0000\":1}", "member name");
}

/* json-c decodes a lone surrogate escape to bytes that are not UTF-8
 * (a plugin would get them, and its echo be refused as its own bad
 * reply) or, in an id, to U+FFFD (echoed as another id than the one
 * sent, and two ids as one): refused everywhere.  A pair is a
 * character like any other. */
Test(parse, lone_surrogate_escapes_are_refused)
{
	static const char *const lone[] = {
		"{\"command\":\"c\",\"payload\":\"\\ud800\"}",
		"{\"command\":\"c\",\"payload\":\"\\uDC00x\"}",
		"{\"command\":\"c\",\"payload\":\"\\udc00\\ud800\"}",
		"{\"command\":\"c\",\"payload\":\"\\ud800\\u0041\"}",
		"{\"command\":\"c\",\"payload\":\"\\ud800\\\\udc00\"}",
		"{\"command\":\"c\",\"payload\":{\"\\ud800\":1}}",
		"{\"id\":\"\\ud800\",\"command\":\"c\"}",
		"{\"command\":\"c\\udbff\"}",
	};

	for (size_t i = 0; i < sizeof(lone) / sizeof(lone[0]); i++) {
		expect_refused(lone[i], "lone surrogate");
		cr_assert_null(req.id, "%s: echoes %s", lone[i],
		    request_id_text(req.id));
	}
	cr_assert_eq(parse("{\"id\":\"\\ud83d\\uDE00\",\"command\":\"c\","
	    "\"payload\":\"\\\\ud800 \\u00e9\"}"), 0, "%s", err);
	cr_assert_str_eq(json_object_get_string(req.id), "\xf0\x9f\x98\x80");
	cr_assert_str_eq(json_object_get_string(req.payload),
	    "\\ud800 \xc3\xa9");
}

/* An id json-c clamped is never echoed as the clamped value (another
 * client's id could be exactly that): it is answered as null. */
Test(parse, huge_integer_id_is_not_echoed_clamped)
{
	expect_refused("{\"id\":99999999999999999999,\"command\":\"c\"}",
	    "64 bits");
	cr_assert_null(req.id, "echoes %s", request_id_text(req.id));
	expect_refused("{\"id\":-99999999999999999999,\"command\":\"c\"}",
	    "64 bits");
	cr_assert_null(req.id, "echoes %s", request_id_text(req.id));
	/* A fine id and a huge number elsewhere: the id is echoed. */
	expect_refused("{\"id\":7,\"command\":\"c\",\"payload\":"
	    "99999999999999999999}", "64 bits");
	cr_assert_not_null(req.id);
	cr_assert_eq(json_object_get_int64(req.id), 7);
	/* The limits themselves are ids like others. */
	cr_assert_eq(parse("{\"id\":18446744073709551615,\"command\":\"c\"}"),
	    0, "%s", err);
	cr_assert_str_eq(request_id_text(req.id), "18446744073709551615");
	cr_assert_eq(parse("{\"id\":-9223372036854775808,\"command\":\"c\"}"),
	    0, "%s", err);
	cr_assert_str_eq(request_id_text(req.id), "-9223372036854775808");
}

/* ------------------------------------------------------------ bad bodies */

/* 1 if no number in v is NaN or infinite (json-c reads them). */
static int
all_finite(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_double:
		return isfinite(json_object_get_double(v));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (!all_finite(json_object_array_get_idx(v, i)))
				return 0;
		return 1;
	case json_type_object: {
		json_object_object_foreach(v, k, val) {
			(void)k;
			if (!all_finite(val))
				return 0;
		}
		return 1;
	}
	default:
		return 1;
	}
}

/* The line at the end of b, without its '\n', must pass a strict check:
 * json-c (strict), no NaN/Infinity token, only UTF-8, no raw control
 * byte, and exactly one '\n', at the end. */
static struct json_object *
strict_line(struct buf *b, size_t from)
{
	const char *p = buf_head(b) + from;
	size_t n = buf_size(b) - from;
	struct json_tokener *t = json_tokener_new();
	struct json_object *o;

	cr_assert_gt(n, 1);
	cr_assert_eq(p[n - 1], '\n');
	for (size_t i = 0; i + 1 < n; i++)
		cr_assert((unsigned char)p[i] >= 0x20, "control byte at %zu: "
		    "%.*s", i, (int)n, p);
	for (size_t i = 0; i + 1 < n;) {
		size_t k = buf_utf8_seq((const unsigned char *)p + i, n - 1 - i);

		cr_assert_neq(k, 0, "bad UTF-8 at %zu: %.*s", i, (int)n, p);
		i += k;
	}
	json_tokener_set_flags(t, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(t, p, (int)n - 1);
	cr_assert_not_null(o, "not JSON: %.*s", (int)n, p);
	cr_assert_eq(json_tokener_get_parse_end(t), n - 1);
	json_tokener_free(t);
	cr_assert(all_finite(o), "NaN or Infinity in %.*s", (int)n, p);
	return o;
}

/* A body whose text is not strict JSON is refused whole: nothing is
 * appended, and the reason says what and where. */
Test(format, plugin_body_that_is_not_json_is_refused)
{
	struct json_object *bodies[6];
	struct buf b = BUF_INIT;
	char why[160];

	bodies[0] = json_object_new_double(0.0 / 0.0);
	bodies[1] = json_object_new_array();
	json_object_array_add(bodies[1], json_object_new_double(1.0 / 0.0));
	bodies[2] = json_object_new_object();
	json_object_object_add(bodies[2], "x", json_object_new_double(-1.0 /
	    0.0));
	bodies[3] = json_object_new_string("a\xff");
	bodies[4] = json_object_new_object();
	json_object_object_add(bodies[4], "k\xc3(", json_object_new_int(1));
	bodies[5] = json_object_new_double_s(1, "1}\n{\"forged\":1}");
	buf_puts(&b, "before");
	for (int i = 0; i < 6; i++) {
		why[0] = '\0';
		cr_assert_eq(request_format_body(&b, "1", 200, bodies[i], why,
		    sizeof(why)), -EILSEQ, "body %d accepted", i);
		cr_assert_eq(buf_size(&b), 6, "body %d left bytes", i);
		cr_assert_neq(why[0], '\0');
		json_object_put(bodies[i]);
	}
	cr_assert_eq(request_format_body(&b, "1", 200, NULL, why, sizeof(why)),
	    0);
	json_object_put(strict_line(&b, 6));
	buf_free(&b);
}

/* A body the host made (host.list naming a file "\xff.so") has its bad
 * bytes replaced; one that still is not JSON becomes 500 bad_reply. */
Test(format, host_body_is_repaired_or_refused)
{
	struct json_object *o = json_object_new_object(), *r;
	struct buf b = BUF_INIT;

	json_object_object_add(o, "file\xfe", json_object_new_string(
	    "\xff.so"));
	cr_assert_eq(request_format_ok_text(&b, "\"x\"", 200, o), 0);
	r = strict_line(&b, 0);
	cr_assert_eq(json_object_get_int(member(r, "status")), 200);
	cr_assert_str_eq(json_object_get_string(member(member(r, "body"),
	    "file\xef\xbf\xbd")), "\xef\xbf\xbd.so");
	json_object_put(r);
	json_object_put(o);
	buf_reset(&b);
	o = json_object_new_double(0.0 / 0.0);
	cr_assert_eq(request_format_ok_text(&b, "\"x\"", 200, o), 0);
	r = strict_line(&b, 0);
	cr_assert_eq(json_object_get_int(member(r, "status")), 500);
	cr_assert_str_eq(json_object_get_string(member(member(r, "error"),
	    "code")), "bad_reply");
	json_object_put(r);
	json_object_put(o);
	buf_free(&b);
}

/* Error codes and messages: escaped, and bad UTF-8 becomes U+FFFD. */
Test(format, error_code_and_message_stay_json)
{
	struct buf b = BUF_INIT;
	struct json_object *r;

	cr_assert_eq(request_format_error_text(&b, "1", 422, "bad\xff\"code\n",
	    "m \xc0\xaf \x01 \xf5 \xe2\x82"), 0);
	r = strict_line(&b, 0);
	cr_assert_str_eq(json_object_get_string(member(member(r, "error"),
	    "code")), "bad\xef\xbf\xbd\"code\n");
	cr_assert_str_eq(json_object_get_string(member(member(r, "error"),
	    "message")), "m \xef\xbf\xbd\xef\xbf\xbd \x01 \xef\xbf\xbd "
	    "\xef\xbf\xbd\xef\xbf\xbd");
	json_object_put(r);
	buf_free(&b);
}

/* What idempotency keys store is checked the same way. */
Test(format, member_of_a_bad_body_is_refused)
{
	struct buf b = BUF_INIT;
	struct json_object *o = json_object_new_double(1.0 / 0.0);

	cr_assert_eq(request_format_member(&b, 200, o, NULL, NULL), -EILSEQ);
	cr_assert_eq(buf_size(&b), 0);
	json_object_put(o);
	buf_free(&b);
}

/* A stored result is replayed only if it is strict JSON: a record in a
 * shared bucket may have been written by anyone allowed to. */
Test(format, stored_text_that_is_not_json_is_refused)
{
	static const char *const bad[] = { "NaN", "1}\n{\"id\":1",
	    "\"\xff\"", "{\"code\":\"x\",", NULL };
	struct buf b = BUF_INIT;

	for (int i = 0; bad[i] != NULL; i++) {
		cr_assert_eq(request_format_stored(&b, "1", 200, bad[i],
		    strlen(bad[i])), -EILSEQ, "replayed %s", bad[i]);
		cr_assert_eq(buf_size(&b), 0);
	}
	cr_assert_eq(request_format_stored(&b, "1", 200, "{\"a\":1}", 7), 0);
	json_object_put(strict_line(&b, 0));
	buf_free(&b);
}

/* The daemon's request ids: 11 hex digits of the time, 2 of the
 * source, 7 of the sequence, whatever came before on the thread (the
 * time and source digits are kept between calls). */
Test(format, request_ids_are_time_source_and_sequence_in_hex)
{
	static const struct { long long ms; unsigned src; uint64_t seq; } v[] = {
		{ 1700000000000LL, 3, 42 }, { 1700000000000LL, 3, 43 },
		{ 1700000000000LL, 4, 43 }, { 1700000000001LL, 4, 0 },
		{ 0, 0, 0 }, { 0xfffffffffffLL, 0xff, 0xfffffff },
		{ 1700000000001LL, 4, 0x1234567890ULL }, { 1, 0x1ff, 5 },
		{ 1700000000000LL, 3, 42 },
	};
	char got[REQUEST_ID_LEN + 1], want[64];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		memset(got, 'x', sizeof(got));
		request_id_make(got, v[i].ms, v[i].src, v[i].seq);
		snprintf(want, sizeof(want), "%011llx%02x%07llx",
		    (unsigned long long)v[i].ms, v[i].src & 0xff,
		    (unsigned long long)(v[i].seq & 0xfffffff));
		cr_assert_str_eq(got, want, "case %zu", i);
	}
}
