/*
 * test_body_text.c - the strict check of JSON text bodies (body_text.c):
 * numbered cases, then a differential fuzz against json-c: whatever
 * body_text_parse accepts, json-c's strict parser accepts too and reads
 * the same value from the text it prints; whatever it refuses has a
 * reason.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/body_text.h"

static char err[256];

static const char *
printed(struct json_object *v)
{
	return v == NULL ? "null" : json_object_to_json_string_ext(v,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

static void
expect_text(const char *in, const char *out)
{
	struct json_object *v;
	int rc = body_text_parse(in, strlen(in), 1 << 20, &v, err,
	    sizeof(err));

	cr_assert_eq(rc, 0, "%s: %s", in, err);
	cr_expect_str_eq(printed(v), out, "%s", in);
	json_object_put(v);
}

static void
expect_refused(const char *in, size_t n, const char *why)
{
	struct json_object *v = (struct json_object *)1;
	int rc = body_text_parse(in, n, 1 << 20, &v, err, sizeof(err));

	cr_assert_eq(rc, -EINVAL, "%.*s accepted", (int)n, in);
	cr_assert_null(v);
	cr_expect(strstr(err, why) != NULL, "%.*s: %s (want %s)", (int)n, in,
	    err, why);
}

Test(body_text, valid_texts_print_themselves)
{
	expect_text("{\"a\":1}", "{\"a\":1}");
	expect_text(" [ 1 ,\n2 ] ", "[1,2]");
	expect_text("\"\\u00e9 \\/ \"", "\"\\u00e9 \\/ \"");
	expect_text("1.50", "1.50");
	expect_text("-0", "-0");
	expect_text("null", "null");
	expect_text("\"a\\\\\"", "\"a\\\\\"");
	expect_text("0.000000000000000000000000001",
	    "0.000000000000000000000000001");
}

Test(body_text, names_and_duplicates)
{
	/* A name given twice keeps its last value, text and all. */
	expect_text("{\"a\":\"x\\/y\",\"a\":\"z\"}", "{\"a\":\"z\"}");
	expect_text("{\"a\":{\"b\":\"\\n\"},\"a\":{\"c\":-0}}",
	    "{\"a\":{\"c\":-0}}");
	expect_text("{\"a\":-0,\"a\":5}", "{\"a\":5}");
	/* Names are printed as json-c prints them. */
	expect_text("{\"\\u0041\":\"\\u0041\"}", "{\"A\":\"\\u0041\"}");
	expect_text("[\"\\u00e9\",[-0,\"/\"],{\"k\":\"\\t\"}]",
	    "[\"\\u00e9\",[-0,\"/\"],{\"k\":\"\\t\"}]");
}

/* The tree is an ordinary one: members can be added, it deep-copies
 * with its leaves' text (a workflow step keeps its result this way). */
Test(body_text, tree_can_grow_and_be_copied)
{
	struct json_object *v, *copy = NULL, *arr;
	const char *in = "{\"s\":\"\\u00e9\",\"n\":[-0,1.50]}";

	cr_assert_eq(body_text_parse(in, strlen(in), 1 << 20, &v, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(json_object_deep_copy(v, &copy, NULL), 0);
	cr_expect_str_eq(printed(copy), "{\"s\":\"\\u00e9\",\"n\":[-0,1.50]}");
	json_object_object_add(v, "added", json_object_new_int(7));
	json_object_object_get_ex(v, "n", &arr);
	json_object_array_add(arr, json_object_new_boolean(1));
	cr_expect_str_eq(printed(v), "{\"s\":\"\\u00e9\",\"n\":[-0,1.50,"
	    "true],\"added\":7}");
	json_object_put(copy);
	json_object_put(v);
}

Test(body_text, refusals_have_reasons)
{
	expect_refused("NaN", 3, "NaN");
	expect_refused("[1e400]", 7, "out of range");
	expect_refused("-1e400", 6, "out of range");
	expect_refused("99999999999999999999", 20, "out of range");
	expect_refused("\"\xff\"", 3, "UTF-8");
	expect_refused("\"\\\xc3\xa9\"", 5, "bad escape");
	expect_refused("\"a\0\"", 4, "control character");
	expect_refused("{} []", 5, "not JSON");
	expect_refused("", 0, "empty");
	expect_refused("\"abc", 4, "unterminated");
	expect_refused("[1]", 3 + 1, "unexpected byte"); /* the NUL */
	expect_refused(NULL, 3, "NULL");
}

Test(body_text, null_pointer_is_json_null_and_limit_holds)
{
	struct json_object *v = (struct json_object *)1;

	cr_assert_eq(body_text_parse(NULL, 0, 10, &v, err, sizeof(err)), 0);
	cr_assert_null(v);
	cr_assert_eq(body_text_parse("\"123456789\"", 11, 10, &v, err,
	    sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "over the limit") != NULL, "%s", err);
	cr_assert_eq(body_text_parse("\"12345678\"", 10, 10, &v, err,
	    sizeof(err)), 0);
	json_object_put(v);
}

/*
 * A plugin's text need not be NUL-terminated (a Rust &str is not): no
 * byte past len may be read, refused text included, whose refusal is
 * found at its very end.  Each text ends where a PROT_NONE page begins,
 * so a read past it is SIGSEGV with or without a sanitizer.
 */
Test(body_text, text_is_never_read_past_its_length)
{
	static const char *const texts[] = { "1e400", "[1,", "\"abc",
		"12345678901234567890123", "tru", "{\"a\":1} 2", "-", "1.",
		"{\"a\"", "[NaN]", "\"\\u12", "", "7" };
	long page = sysconf(_SC_PAGESIZE);
	char *map, out[64];

	map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(map != MAP_FAILED);
	cr_assert_eq(mprotect(map + page, (size_t)page, PROT_NONE), 0);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		size_t n = strlen(texts[i]), out_len;
		char *at = map + page - n;
		int needs_tree, rc;

		memcpy(at, texts[i], n);
		err[0] = '\0';
		rc = body_text_check(at, n, 1 << 20, out, &out_len,
		    &needs_tree, err, sizeof(err));
		if (strcmp(texts[i], "7") == 0)
			cr_expect(rc == 0 && strcmp(out, "7") == 0, "7: %s", err);
		else
			cr_expect(rc == -EINVAL && err[0] != '\0', "%s: rc %d",
			    texts[i], rc);
	}
	munmap(map, (size_t)page * 2);
}

Test(body_text, cut_keeps_utf8_whole)
{
	cr_assert_eq(body_text_cut("abc", 10), 3);
	cr_assert_eq(body_text_cut("abcdef", 4), 4);
	cr_assert_eq(body_text_cut("a\xc3\xa9", 2), 1);
	cr_assert_eq(body_text_cut("a\xf0\x9f\x98\x80z", 4), 1);
	cr_assert_eq(body_text_cut("a\xf0\x9f\x98\x80z", 5), 5);
}

/* Differential fuzz: random bytes and JSON pieces. */
Test(body_text, fuzz_against_json_c, .timeout = 60)
{
	static const char *const pieces[] = { "{", "}", "[", "]", ",", ":",
		"\"k\"", "1", "-", "0", ".5", "e9", "E-3", "true", "null", "\"",
		"\\", "\\u00e9", "\\ud800", "\xc3", "\xa9", "\xff", " ", "\n",
		"NaN", "1e999", "\"\xc3\xa9\"", "18446744073709551616",
		"\x01", "x", "[]", "{}", "\"a\":", "Infinity", "\xef\xbb\xbf" };
	unsigned seed = 42;
	int accepted = 0;

	for (int round = 0; round < 200000; round++) {
		char text[128];
		size_t n = 0;
		int k;
		struct json_object *v, *again;
		struct json_tokener *tok;
		const char *out;
		int rc;

		seed = seed * 1103515245u + 12345u;
		k = 1 + (int)((seed >> 16) % 10);
		for (int i = 0; i < k; i++) {
			const char *p;

			seed = seed * 1103515245u + 12345u;
			p = pieces[(seed >> 16) % (sizeof(pieces) /
			    sizeof(pieces[0]))];
			if (n + strlen(p) >= sizeof(text))
				break;
			memcpy(text + n, p, strlen(p));
			n += strlen(p);
		}
		rc = body_text_parse(text, n, 1 << 20, &v, err, sizeof(err));
		if (rc != 0) {
			cr_assert_eq(rc, -EINVAL);
			cr_assert(err[0] != '\0');
			continue;
		}
		accepted++;
		out = printed(v);
		/* What it prints is strict JSON with no raw control byte,
		 * and reads back as the same value. */
		for (const char *s = out; *s; s++)
			cr_assert((unsigned char)*s >= 0x20, "%s", out);
		tok = json_tokener_new_ex(BODY_TEXT_MAX_DEPTH);
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
		    JSON_TOKENER_VALIDATE_UTF8);
		again = json_tokener_parse_ex(tok, out, (int)strlen(out) + 1);
		cr_assert_eq(json_tokener_get_error(tok), json_tokener_success,
		    "%s -> %s", text, out);
		json_tokener_free(tok);
		cr_assert(json_object_equal(v, again), "%s", out);
		json_object_put(again);
		json_object_put(v);
	}
	cr_log_info("fuzz: %d of 200000 accepted", accepted);
	cr_assert_gt(accepted, 100);
}
