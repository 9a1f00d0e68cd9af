/*
 * test_envelope.c - unit tests of envelope.c: the request line read in one
 * strict pass must agree with request_parse() (json-c's tree) on every
 * line -- accepted or refused, the same reason, the same id echoed, the
 * same command, timeout, flags and key, an equal payload -- except json-c's
 * lenient forms the scanner refuses (docs/performance.md).  Fixed cases
 * for each envelope rule, then a differential run over generated lines.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "envelope.h"
#include "request.h"

static struct json_tokener *tok1, *tok2;

static void
setup(void)
{
	tok1 = request_tokener_new();
	tok2 = request_tokener_new();
	cr_assert(tok1 != NULL && tok2 != NULL);
}

static void
teardown(void)
{
	json_tokener_free(tok1);
	json_tokener_free(tok2);
}

TestSuite(envelope, .init = setup, .fini = teardown);

/* 1 if the line holds one of json-c's lenient forms: a single quote, a
 * number with a leading zero ("00", "-01"), or a '.' not followed by a
 * digit ("1.", "0.e1"). */
static int
lenient(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\'')
			return 1;
		if (s[i] == '.' && i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9' &&
		    (i + 1 >= n || s[i + 1] < '0' || s[i + 1] > '9'))
			return 1;
		if (s[i] == '0' && i + 1 < n && s[i + 1] >= '0' &&
		    s[i + 1] <= '9' && (i == 0 || s[i - 1] < '0' ||
		    s[i - 1] > '9'))
			return 1;
	}
	return 0;
}

static int n_lenient, n_accepted, n_refused;

/* Both readers on line[0..n): they must agree.  Returns envelope's rc. */
static int
agree(const char *line, size_t n)
{
	struct request a, b;
	char ea[512], eb[512];
	int ra, rb;
	const char *ia, *ib;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	ea[0] = eb[0] = '\0';
	ra = request_parse(tok1, line, n, &a, ea, sizeof(ea));
	rb = envelope_scan(tok2, line, n, &b, eb, sizeof(eb));
	/* json-c's lenient forms; and a NaN or 1e400 in a member a later
	 * one of the same name replaces, which the tree never shows. */
	if (ra == 0 && rb < 0 && (lenient(line, n) ||
	    strstr(eb, "NaN or Infinity") != NULL ||
	    strstr(eb, "range of a double") != NULL)) {
		n_lenient++;
		cr_assert(strncmp(eb, "invalid JSON: ", 14) == 0, "%.*s: %s",
		    (int)n, line, eb);
		goto out;
	}
	cr_assert_eq(ra, rb, "%.*s: json-c %d (%s), scanner %d (%s)", (int)n,
	    line, ra, ea, rb, eb);
	ia = request_echo_id(&a);
	ib = request_echo_id(&b);
	cr_assert((ia == NULL) == (ib == NULL) && (ia == NULL ||
	    strcmp(ia, ib) == 0), "%.*s: id %s vs %s", (int)n, line,
	    ia ? ia : "(none)", ib ? ib : "(none)");
	if (ra < 0) {
		n_refused++;
		cr_assert_str_eq(ea, eb, "%.*s", (int)n, line);
		goto out;
	}
	n_accepted++;
	cr_assert(strlen(a.command) > REQUEST_MAX_COMMAND ?
	    strncmp(a.command, b.command, REQUEST_MAX_COMMAND) == 0 :
	    strcmp(a.command, b.command) == 0, "%.*s", (int)n, line);
	cr_assert_eq(a.timeout_ms, b.timeout_ms, "%.*s", (int)n, line);
	cr_assert_eq(a.want_request_id, b.want_request_id);
	cr_assert_eq(a.idem_key == NULL, b.idem_key == NULL, "%.*s", (int)n,
	    line);
	if (a.idem_key != NULL) {
		cr_assert_eq(a.idem_key_len, b.idem_key_len);
		cr_assert(memcmp(a.idem_key, b.idem_key, a.idem_key_len) == 0);
	}
	cr_assert_not_null(envelope_payload(&b));
	cr_assert(json_object_equal(a.payload, b.payload), "%.*s: %s vs %s",
	    (int)n, line, json_object_to_json_string(a.payload),
	    json_object_to_json_string(b.payload));
out:
	request_fini(&a);
	request_fini(&b);
	return rb;
}

static int
agree_s(const char *line)
{
	return agree(line, strlen(line));
}

Test(envelope, reads_the_members)
{
	struct request r;
	char err[256];

	memset(&r, 0, sizeof(r));
	static const char line[] = "{\"id\":\"a-1\",\"command\":\"echo\","
	    "\"payload\":{\"msg\": \"hi\"},\"timeout_ms\":250,"
	    "\"want_request_id\":true,\"idempotency_key\":\"k1\"}  \r";

	cr_assert_eq(envelope_scan(tok2, line, sizeof(line) - 1, &r, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert(r.scanned);
	cr_assert_str_eq(r.command, "echo");
	cr_assert_str_eq(request_echo_id(&r), "\"a-1\"");
	cr_assert_eq(r.timeout_ms, 250);
	cr_assert(r.want_request_id);
	cr_assert_eq(r.idem_key_len, 2);
	cr_assert(memcmp(r.idem_key, "k1", 2) == 0);
	cr_assert_eq(r.payload_len, 13);
	cr_assert(memcmp(r.payload_text, "{\"msg\": \"hi\"}", 13) == 0);
	cr_assert_eq(r.payload_ws, 1);
	/* No tree until asked. */
	cr_assert_null(r.root);
	cr_assert_null(r.payload);
	cr_assert_not_null(envelope_payload(&r));
	cr_assert_str_eq(json_object_get_string(json_object_object_get(
	    r.payload, "msg")), "hi");
	request_fini(&r);
}

Test(envelope, each_rule_agrees_with_json_c)
{
	static const char *const lines[] = {
		/* accepted */
		"{\"command\":\"a\"}",
		"{\"commandType\":\"PROCESS_ORDER\",\"payload\":{\"orderId\":1}}",
		"{\"command\":null,\"commandType\":\"b\"}",
		"{\"command\":\"a\",\"command\":\"b\"}",
		"{\"id\":7,\"command\":\"c\"}", "{\"id\":-0,\"command\":\"c\"}",
		"{\"id\":18446744073709551615,\"command\":\"c\"}",
		"{\"id\":-9223372036854775808,\"command\":\"c\"}",
		"{\"id\":null,\"command\":\"c\"}",
		"{\"id\":\"a\\/b\\u00e9\\t\",\"command\":\"c\"}",
		"{\"id\":\"\x7f\",\"command\":\"c\"}",
		"{\"id\":\"0123456789012345678901234567890123456789012345678\","
		    "\"command\":\"c\"}",
		"{\"command\":\"e\\u0063ho\"}",
		"{\"\\u0063ommand\":\"echo\"}",
		"{\"command\":\"c\",\"payload\":null}",
		"{\"command\":\"c\",\"payload\":[1,2,3]}",
		"{\"command\":\"c\",\"payload\":\"text\"}",
		"{\"command\":\"c\",\"payload\":12}",
		"{\"command\":\"c\",\"payload\":-1.5e3}",
		"{\"command\":\"c\",\"payload\":{\"x\":1,\"x\":2}}",
		"{\"command\":\"c\",\"timeout_ms\":1}",
		"{\"command\":\"c\",\"timeout_ms\":86400000}",
		"{\"command\":\"c\",\"want_request_id\":false}",
		"{\"command\":\"c\",\"idempotency_key\":\"k\\u0000y\"}",
		"\t {\"command\":\"c\"} \t\r\n",
		"{\"command\":\"c\",\"payload\":\"\\ud83d\\uDE00\"}",
		"{\"command\":\"c\",\"payload\":{\"s\":\"\xc3\xa9\xf0\x9f\x98\x80\"}}",
		"{\"command\":\"c\",\"payload\":1e-400}",
		/* refused */
		"", "   ", "[]", "12", "\"x\"", "null", "{", "{\"command\":}",
		"{\"command\":\"c\"} x", "{\"command\":\"c\"}{}",
		"{\"command\":1}", "{\"id\":1}", "{\"id\":1.5,\"command\":\"c\"}",
		"{\"id\":[1],\"command\":\"c\"}", "{\"id\":true,\"command\":\"c\"}",
		"{\"id\":\"a\\u0000b\",\"command\":\"c\"}",
		"{\"id\":5,\"command\":\"c\\u0000d\"}",
		"{\"id\":5,\"command\":\"c\",\"timeout_ms\":0}",
		"{\"id\":5,\"command\":\"c\",\"timeout_ms\":-1}",
		"{\"id\":5,\"command\":\"c\",\"timeout_ms\":86400001}",
		"{\"id\":5,\"command\":\"c\",\"timeout_ms\":1.5}",
		"{\"id\":5,\"command\":\"c\",\"timeout_ms\":\"5\"}",
		"{\"id\":5,\"command\":\"c\",\"timeout_ms\":1e3}",
		"{\"id\":5,\"command\":\"c\",\"want_request_id\":1}",
		"{\"id\":5,\"command\":\"c\",\"idempotency_key\":\"\"}",
		"{\"id\":5,\"command\":\"c\",\"idempotency_key\":5}",
		"{\"id\":5,\"command\":\"c\",\"payload\":NaN}",
		"{\"id\":5,\"command\":\"c\",\"payload\":[Infinity]}",
		"{\"id\":5,\"command\":\"c\",\"payload\":-Infinity}",
		"{\"id\":5,\"command\":\"c\",\"payload\":1e400}",
		"{\"id\":5,\"command\":\"c\",\"payload\":18446744073709551616}",
		"{\"id\":5,\"command\":\"c\",\"payload\":-9223372036854775809}",
		"{\"id\":99999999999999999999,\"command\":\"c\"}",
		"{\"id\":5,\"command\":\"c\",\"payload\":\"a\tb\"}",
		"{\"id\":5,\"command\":\"c\",\"payload\":\"\xff\"}",
		"{\"id\":5,\"command\":\"c\",\"payload\":\"\xed\xa0\x80\"}",
		"{\"id\":5,\"command\":\"c\",\"payload\":\"\xc0\xaf\"}",
		"{\"id\":5,\"command\":\"c\",\"payload\":[1,]}",
		"{\"id\":5,\"command\":\"c\",\"payload\":\"\\x\"}",
		"{\"id\":5,\"command\":\"c\",\"payload\":tru}",
		"{\"id\":5,\"command\":\"c\",\"payload\":nan}",
		"\xef\xbb\xbf{\"command\":\"c\"}",
		"{\"id\":5\f,\"command\":\"c\"}",
		/* lone surrogate escapes, wherever they are */
		"{\"command\":\"c\",\"payload\":\"\\ud800\"}",
		"{\"command\":\"c\",\"payload\":\"\\udc00\\ud800\"}",
		"{\"command\":\"c\",\"payload\":{\"\\ud800\":1}}",
		"{\"id\":\"\\ud800\",\"command\":\"c\"}",
		"{\"id\":\"x\\uDBFFy\",\"command\":\"c\"}",
		"{\"command\":\"c\\udfff\"}",
		"{\"command\":\"c\",\"idempotency_key\":\"k\\ud800\"}",
		"{\"command\":\"c\",\"payload\":\"\\ud800\\u0041\"}",
		/* a NUL in a member name at any depth; in a value it is
		 * data (accepted) */
		"{\"command\":\"c\",\"payload\":{\"k\\u0000\":1}}",
		"{\"command\":\"c\",\"payload\":[{\"a\":{\"\\u0000\" : 2}}]}",
		"{\"command\":\"c\",\"payload\":{\"\\u0000\":1,\"\":2}}",
		"{\"command\":\"c\",\"payload\":{\"k\":\"\\u0000\"}}",
		"{\"command\":\"c\",\"payload\":\"\\\\u0000\"}",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		agree_s(lines[i]);
	cr_assert_gt(n_accepted, 20);
	cr_assert_gt(n_refused, 30);
}

/* The payload nests 64 levels inside the request, not 65. */
Test(envelope, depth_64_inside_the_request)
{
	char line[400];
	int k;

	for (k = 63; k <= 66; k++) {
		int n = snprintf(line, sizeof(line), "{\"command\":\"c\","
		    "\"payload\":");

		memset(line + n, '[', (size_t)k);
		memset(line + n + k, ']', (size_t)k);
		line[n + 2 * k] = '}';
		line[n + 2 * k + 1] = '\0';
		cr_assert_eq(agree_s(line), k <= 64 ? 0 : -1, "depth %d", k);
	}
}

/* json-c's lenient forms are refused, with the scanner's reason. */
Test(envelope, lenient_forms_are_refused)
{
	static const char *const lines[] = {
		"{\"command\":\"c\",\"payload\":1.}",
		"{\"command\":\"c\",\"payload\":-01}",
		"{\"command\":\"c\",\"payload\":00}",
		"{\"command\":\"c\",\"payload\":0.e1}",
		"{\"command\":\"c\",\"payload\":{'a':1}}",
		"{'command':'c'}",
	};
	struct request r;
	char err[256];

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		memset(&r, 0, sizeof(r));
		cr_assert_eq(envelope_scan(tok2, lines[i], strlen(lines[i]), &r,
		    err, sizeof(err)), -1, "%s", lines[i]);
		cr_assert(strncmp(err, "invalid JSON: ", 14) == 0, "%s", err);
		request_fini(&r);
	}
}

/* Fields are checked on the scanned members, with the tree's messages. */
Test(envelope, fields_without_a_tree)
{
	static const cmdhost_field fields[] = {
		{ "s", CMDHOST_STRING, 1 }, { "i", CMDHOST_INTEGER, 0 },
		{ "n", CMDHOST_NUMBER, 0 }, { "b", CMDHOST_BOOLEAN, 0 },
		{ "o", CMDHOST_OBJECT, 0 }, { "a", CMDHOST_ARRAY, 0 },
		{ "x", CMDHOST_ANY, 0 }, { NULL, 0, 0 }
	};
	static const char *const payloads[] = {
		"{\"s\":\"v\"}", "{}", "{\"s\":1}", "{\"s\":null}",
		"{\"s\":\"v\",\"i\":1.5}", "{\"s\":\"v\",\"i\":-0}",
		"{\"s\":\"v\",\"n\":1e5}", "{\"s\":\"v\",\"b\":\"true\"}",
		"{\"s\":\"v\",\"o\":[]}", "{\"s\":\"v\",\"a\":{}}",
		"{\"s\":\"v\",\"x\":[{}]}", "{\"s\":1,\"s\":\"v\"}",
		"{\"s\":\"v\",\"s\":1}", "{\"\\u0073\":1}", "[1]", "\"s\"", "3",
		"2.5", "true", "null", "{\"s\":\"v\",\"i\":null}",
		"{ \"s\" : \"v\" , \"a\" : [ 1 ] }",
	};

	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		struct request a, b;
		char line[256], ea[256], eb[256];
		int ra, rb;

		snprintf(line, sizeof(line), "{\"command\":\"c\",\"payload\":%s}",
		    payloads[i]);
		memset(&a, 0, sizeof(a));
		memset(&b, 0, sizeof(b));
		cr_assert_eq(request_parse(tok1, line, strlen(line), &a, ea,
		    sizeof(ea)), 0);
		cr_assert_eq(envelope_scan(tok2, line, strlen(line), &b, eb,
		    sizeof(eb)), 0);
		ea[0] = eb[0] = '\0';
		ra = request_check_fields(fields, a.payload, ea, sizeof(ea));
		rb = envelope_check_fields(&b, fields, eb, sizeof(eb));
		cr_assert_eq(ra, rb, "%s: %s / %s", payloads[i], ea, eb);
		cr_assert_str_eq(ea, eb, "%s", payloads[i]);
		/* Only a name with an escape needed the tree. */
		cr_assert_eq(b.payload != NULL, strchr(payloads[i], '\\') !=
		    NULL, "%s", payloads[i]);
		request_fini(&a);
		request_fini(&b);
	}
}

/* Differential: generated request lines, most of them near-valid. */
Test(envelope, differential_against_json_c, .timeout = 120)
{
	static const char *const keys[] = { "\"id\"", "\"command\"",
		"\"commandType\"", "\"payload\"", "\"timeout_ms\"",
		"\"want_request_id\"", "\"idempotency_key\"", "\"other\"",
		"\"\\u0069d\"" };
	static const char *const values[] = { "\"echo\"", "\"host.ping\"",
		"1", "-0", "0", "7", "250", "86400001", "1.5", "1e3", "1e400",
		"-1", "18446744073709551615", "18446744073709551616",
		"-9223372036854775809", "true", "false", "null", "[]", "{}",
		"[1,2]", "{\"a\":{\"b\":[null]}}", "\"a\\u0000b\"", "\"\\/\"",
		"\"\\ud800\"", "\"\xc3\xa9\"", "\"\x7f\"", "\"\"", "NaN",
		"Infinity", "-Infinity", "\"k\\\"q\"", "{\"x\":1,\"x\":2}",
		"\"\\u00e9\"" };
	static const char *const junk[] = { "{", "}", "[", "]", ",", ":", " ",
		"\t", "\n", "\"", "\\", "'", "1.", "-01", "00", "\xff", "\xc3",
		"\x01", "\0", "x", "NaN", "e", "-", "\"\\u", "nul", "\xef\xbb\xbf" };
	unsigned seed = 19;

	for (int round = 0; round < 100000; round++) {
		char line[512];
		size_t n = 0;
		int members;

#define RND(k) (seed = seed * 1103515245u + 12345u, (seed >> 16) % (k))
#define PUT(p) do { const char *p_ = (p); size_t l_ = strlen(p_); \
	if (n + l_ < sizeof(line)) { memcpy(line + n, p_, l_); n += l_; } \
	} while (0)
		members = (int)RND(5);
		PUT(RND(8) == 0 ? " { " : "{");
		if (RND(2))
			PUT(members > 0 ? "\"command\":\"echo\"," :
			    "\"command\":\"echo\"");
		for (int m = 0; m < members; m++) {
			if (m > 0)
				PUT(RND(6) == 0 ? " , " : ",");
			PUT(keys[RND(sizeof(keys) / sizeof(keys[0]))]);
			PUT(RND(6) == 0 ? " : " : ":");
			PUT(values[RND(sizeof(values) / sizeof(values[0]))]);
		}
		PUT("}");
		/* Now and then, a few bytes go wrong. */
		for (int k = (int)RND(4) - 1; k > 0; k--) {
			const char *p = junk[RND(sizeof(junk) / sizeof(junk[0]))];
			size_t at = RND((unsigned)n + 1), l = strlen(p);

			if (p[0] == '\0')
				l = 1;
			if (n + l >= sizeof(line))
				break;
			if (RND(2)) {
				memmove(line + at + l, line + at, n - at);
				n += l;
			} else if (at + l > n) {
				n = at + l;
			}
			memcpy(line + at, p, l);
		}
#undef PUT
#undef RND
		agree(line, n);
	}
	cr_log_info("differential: %d accepted, %d refused, %d lenient",
	    n_accepted, n_refused, n_lenient);
	cr_assert_gt(n_accepted, 1000);
	cr_assert_gt(n_refused, 1000);
}

/* One client's bad line leaves nothing in the loop's tokener for the
 * next: a parse that fails after a high surrogate escape must not put a
 * U+FFFD before the next line's first \u escape (json-c 0.16 keeps it
 * across json_tokener_reset; found by tests/fuzz/fuzz_jscan_diff). */
Test(envelope, a_failed_surrogate_leaves_nothing_for_the_next_line)
{
	static const char bad[] = "{\"command\":\"x\",\"payload\":"
	    "\"\\ud800\\uzzzz\"}";
	static const char next[] = "{\"id\":\"a\\u0041\",\"command\":\"x\","
	    "\"payload\":{\"s\":\"\\u0042\"}}";
	struct request a, b;
	char err[256];
	struct json_object *s;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	cr_assert_neq(envelope_scan(tok2, bad, sizeof(bad) - 1, &a, err,
	    sizeof(err)), 0, "the bad line was accepted");
	request_fini(&a);
	/* The same through json-c's whole-line path. */
	cr_assert_neq(request_parse(tok1, bad, sizeof(bad) - 1, &a, err,
	    sizeof(err)), 0);
	request_fini(&a);
	cr_assert_eq(envelope_scan(tok2, next, sizeof(next) - 1, &b, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(request_echo_id(&b), "\"aA\"");
	cr_assert(json_object_object_get_ex(envelope_payload(&b), "s", &s));
	cr_assert_str_eq(json_object_get_string(s), "B");
	request_fini(&b);
	memset(&b, 0, sizeof(b));
	cr_assert_neq(request_parse(tok1, bad, sizeof(bad) - 1, &a, err,
	    sizeof(err)), 0);
	request_fini(&a);
	cr_assert_eq(request_parse(tok1, next, sizeof(next) - 1, &b, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(request_echo_id(&b), "\"aA\"");
	request_fini(&b);
}
