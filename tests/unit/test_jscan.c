/*
 * test_jscan.c - unit tests of jscan.c, the one strict scanner, mode by
 * mode: the grammar rules and errors, whitespace by flag, lone surrogates
 * noted or refused, compaction, name watching and the member callback.
 * (The reply rules are tested through jsoncheck in test_jsoncheck.c.)
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "jscan.h"

static enum jscan_error
scan(unsigned flags, int depth, const char *s)
{
	struct jscan js;

	jscan_init(&js, flags, depth);
	return jscan_text(&js, s, strlen(s));
}

Test(jscan, grammar_rules)
{
	static const struct { const char *s; enum jscan_error want; } c[] = {
		{ "0", JSCAN_OK }, { "-0", JSCAN_OK }, { "1.5e-3", JSCAN_OK },
		{ "1E+2", JSCAN_OK }, { "\"\"", JSCAN_OK }, { "[]", JSCAN_OK },
		{ "{}", JSCAN_OK }, { "{\"a\":[1,{\"b\":null}]}", JSCAN_OK },
		{ "true", JSCAN_OK }, { "false", JSCAN_OK }, { "null", JSCAN_OK },
		{ "", JSCAN_EMPTY }, { "  ", JSCAN_EMPTY },
		{ "01", JSCAN_TRAILING }, { "1.", JSCAN_SYNTAX },
		{ ".5", JSCAN_SYNTAX }, { "1e", JSCAN_SYNTAX }, { "+1", JSCAN_SYNTAX },
		{ "-", JSCAN_SYNTAX }, { "[1,]", JSCAN_SYNTAX },
		{ "{\"a\":1,}", JSCAN_SYNTAX }, { "{'a':1}", JSCAN_SYNTAX },
		{ "[1 2]", JSCAN_SYNTAX }, { "{\"a\" 1}", JSCAN_SYNTAX },
		{ "[1}", JSCAN_SYNTAX }, { "{} {}", JSCAN_TRAILING },
		{ "tru", JSCAN_SYNTAX }, { "nul", JSCAN_SYNTAX },
		{ "True", JSCAN_SYNTAX }, { "\"abc", JSCAN_UNTERMINATED },
		{ "\"\\x\"", JSCAN_ESCAPE }, { "\"\\u12g4\"", JSCAN_ESCAPE },
		{ "\"\\\xc3\xa9\"", JSCAN_ESCAPE_BYTE },
		{ "\"a\tb\"", JSCAN_STR_CONTROL }, { "\"\xff\"", JSCAN_STR_UTF8 },
		{ "\"\xed\xa0\x80\"", JSCAN_STR_UTF8 },
		{ "\"\xc0\xaf\"", JSCAN_STR_UTF8 }, { "\x01", JSCAN_CONTROL },
		{ "\xef\xbb\xbf{}", JSCAN_BYTE }, { "\xff", JSCAN_BYTE_UTF8 },
		{ "NaN", JSCAN_NONFINITE }, { "[Infinity]", JSCAN_NONFINITE },
		{ "-Infinity", JSCAN_NONFINITE },
		{ "18446744073709551615", JSCAN_OK },
		{ "18446744073709551616", JSCAN_INTEGER },
		{ "-9223372036854775808", JSCAN_OK },
		{ "-9223372036854775809", JSCAN_INTEGER },
		{ "1e400", JSCAN_DOUBLE }, { "-1e400", JSCAN_DOUBLE },
		{ "1e-400", JSCAN_OK }, { "1.7976931348623157e308", JSCAN_OK },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		cr_expect_eq(scan(JSCAN_RFC_SPACE, 64, c[i].s), c[i].want,
		    "%s: %d, want %d", c[i].s, scan(JSCAN_RFC_SPACE, 64,
		    c[i].s), c[i].want);
	/* 10^309 spelled with a long mantissa and a short exponent. */
	{
		char big[320];

		memset(big, '9', 300);
		memcpy(big + 300, "e10", 4);
		cr_expect_eq(scan(0, 64, big), JSCAN_DOUBLE);
	}
}

Test(jscan, whitespace_by_flag)
{
	cr_expect_eq(scan(JSCAN_RFC_SPACE, 8, " [1,\t2,\r\n3] "), JSCAN_OK);
	cr_expect_eq(scan(0, 8, " [1, 2] "), JSCAN_OK);
	cr_expect_eq(scan(0, 8, "[1,\t2]"), JSCAN_CONTROL);
	cr_expect_eq(scan(JSCAN_RFC_SPACE, 8, "[1,\f2]"), JSCAN_CONTROL);
	cr_expect_eq(scan(JSCAN_RFC_SPACE, 8, "[1,\v2]"), JSCAN_CONTROL);
}

Test(jscan, depth_limit)
{
	char s[200];

	memset(s, '[', 64);
	memset(s + 64, ']', 64);
	s[128] = '\0';
	cr_expect_eq(scan(0, 64, s), JSCAN_OK);
	memset(s, '[', 65);
	memset(s + 65, ']', 65);
	s[130] = '\0';
	cr_expect_eq(scan(0, 64, s), JSCAN_DEPTH);
}

Test(jscan, lone_surrogates_noted_or_refused)
{
	static const char *const lone[] = { "\"\\ud800\"", "\"\\udc00\"",
		"\"\\ud800\\u0041\"", "\"\\ud800\\ud800\"", "\"\\ud800x\"" };
	struct jscan js;

	for (size_t i = 0; i < sizeof(lone) / sizeof(lone[0]); i++) {
		jscan_init(&js, 0, 8);
		cr_expect_eq(jscan_text(&js, lone[i], strlen(lone[i])),
		    JSCAN_OK, "%s", lone[i]);
		cr_expect(js.lone_surrogate, "%s", lone[i]);
		cr_expect_eq(scan(JSCAN_SURROGATES, 8, lone[i]),
		    JSCAN_SURROGATE, "%s", lone[i]);
	}
	jscan_init(&js, JSCAN_SURROGATES, 8);
	cr_expect_eq(jscan_text(&js, "\"\\ud83d\\ude00\"", 14), JSCAN_OK);
	cr_expect_not(js.lone_surrogate);
}

Test(jscan, compaction_keeps_strings)
{
	static const char in[] = " {\n\t\"a b\" : [ 1 , \"x  y\" ]\r\n} ";
	char out[sizeof(in)];
	struct jscan js;

	jscan_init(&js, JSCAN_RFC_SPACE | JSCAN_COMPACT, 8);
	js.out = out;
	cr_assert_eq(jscan_text(&js, in, sizeof(in) - 1), JSCAN_OK);
	cr_expect_eq(js.out_len, strlen("{\"a b\":[1,\"x  y\"]}"));
	cr_expect(memcmp(out, "{\"a b\":[1,\"x  y\"]}", js.out_len) == 0,
	    "%.*s", (int)js.out_len, out);
}

Test(jscan, names_watched)
{
	static const struct { const char *s; int esc, dup; } c[] = {
		{ "{\"a\":1,\"b\":2}", 0, 0 }, { "{\"a\":1,\"a\":2}", 0, 1 },
		{ "{\"a\":{\"a\":1},\"b\":{\"a\":2}}", 0, 0 },
		{ "{\"a\":{\"b\":1},\"a\":2}", 0, 1 },
		{ "[{\"a\":1},{\"a\":1}]", 0, 0 }, { "{\"\\u0061\":1}", 1, 0 },
	};
	struct jscan js;

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		jscan_init(&js, JSCAN_KEYS, 8);
		cr_assert_eq(jscan_text(&js, c[i].s, strlen(c[i].s)), JSCAN_OK);
		cr_expect_eq(js.key_escape, c[i].esc, "%s", c[i].s);
		cr_expect_eq(js.dup_key, c[i].dup, "%s", c[i].s);
	}
}

static char seen[256];

static void
on_member(struct jscan *js, const struct jscan_member *m)
{
	const char *s = js->arg;
	size_t n = strlen(seen);

	snprintf(seen + n, sizeof(seen) - n, "%.*s=%.*s/%zu;",
	    (int)m->key_len, s + m->key, (int)(m->value_end - m->value),
	    s + m->value, m->value_ws);
}

Test(jscan, top_level_members_only)
{
	static const char s[] = "{\"a\":1, \"b\" : [ 2, {\"c\":3} ] ,\"d\":\"x\"}";
	struct jscan js;

	seen[0] = '\0';
	jscan_init(&js, JSCAN_RFC_SPACE, 8);
	js.member = on_member;
	js.arg = (void *)s;
	cr_assert_eq(jscan_text(&js, s, sizeof(s) - 1), JSCAN_OK);
	cr_expect_str_eq(seen, "\"a\"=1/0;\"b\"=[ 2, {\"c\":3} ]/3;"
	    "\"d\"=\"x\"/0;");
	/* An array at the top has no members. */
	seen[0] = '\0';
	jscan_init(&js, 0, 8);
	js.member = on_member;
	js.arg = (void *)"[{\"a\":1}]";
	cr_assert_eq(jscan_text(&js, "[{\"a\":1}]", 9), JSCAN_OK);
	cr_expect_str_eq(seen, "");
}

/* The string loop reads eight plain bytes at a time: every byte value at
 * every place of a run longer than two chunks must be judged as the
 * byte-at-a-time table judges it, and an error must name that byte. */
Test(jscan, string_chunks_judge_every_byte_in_place)
{
	char s[40];
	struct jscan js;
	enum jscan_error want, got;

	for (int k = 0; k < 24; k++) {
		for (int c = 0; c < 256; c++) {
			memset(s, 'a', sizeof(s));
			s[0] = '"';
			s[1 + k] = (char)c;
			s[25] = '"';
			want = c < 0x20 ? JSCAN_STR_CONTROL : c == '"' ?
			    JSCAN_TRAILING : c == '\\' ? (k == 23 ? JSCAN_UNTERMINATED :
			    JSCAN_ESCAPE) :
			    c >= 0x80 ? JSCAN_STR_UTF8 : JSCAN_OK;
			jscan_init(&js, 0, 8);
			got = jscan_text(&js, s, 26);
			cr_assert_eq(got, want, "byte 0x%02x at %d: %s, want %s",
			    c, k, jscan_what(got), jscan_what(want));
			if (want == JSCAN_STR_CONTROL || want == JSCAN_STR_UTF8)
				cr_assert_eq(js.i, (size_t)(1 + k),
				    "byte 0x%02x at %d named at %zu", c, k,
				    js.i);
		}
		/* Whole characters of two to four bytes, and one cut short
		 * by the closing quote, at every place. */
		static const char *const chars[] = { "\xc3\xa9",
		    "\xe2\x82\xac", "\xf0\x9f\x98\x80" };

		for (size_t j = 0; j < 3; j++) {
			size_t len = strlen(chars[j]);

			memset(s, 'a', sizeof(s));
			s[0] = '"';
			memcpy(s + 1 + k, chars[j], len);
			s[30] = '"';
			jscan_init(&js, 0, 8);
			cr_assert_eq(jscan_text(&js, s, 31), JSCAN_OK,
			    "%zu-byte character at %d", len, k);
			jscan_init(&js, 0, 8);
			s[1 + k + len - 1] = '"';
			cr_assert_neq(jscan_text(&js, s, (size_t)(1 + k + len)),
			    JSCAN_OK, "%zu-byte character cut at %d", len, k);
		}
	}
}

/* key_nul: a "\u0000" in a name at any depth is noted (envelope_scan
 * sends such a line to json-c's reading, which refuses it); one in a
 * value, or a name without it, is not. */
Test(jscan, nul_escape_in_a_name_is_noted)
{
	static const struct {
		const char *s;
		int nul;
	} c[] = {
		{ "{\"a\":{\"k\\u0000x\":1}}", 1 },
		{ "{\"\\u0000\":1}", 1 },
		{ "[{\"x\":[{\"\\u0000\":0}]}]", 1 },
		{ "{\"a\":\"\\u0000\"}", 0 },
		{ "{\"k\\n\":\"v\\u0000\"}", 0 },
		{ "{\"a\":{\"b\":1}}", 0 },
	};
	struct jscan js;

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		jscan_init(&js, JSCAN_RFC_SPACE, 8);
		cr_assert_eq(jscan_text(&js, c[i].s, strlen(c[i].s)), JSCAN_OK,
		    "%s", c[i].s);
		cr_expect_eq(js.key_nul, c[i].nul, "%s: key_nul %d", c[i].s,
		    js.key_nul);
	}
}
