/*
 * test_jsoncheck.c - unit tests of jsoncheck.c, the strict checker every
 * reply body passes: fixed cases of valid and invalid text, each with the
 * error it must give, and the UTF-8 repair.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"

struct tcase {
	const char *text;
	size_t len;              /* 0: strlen */
	enum jsoncheck_error want;
};

#define LIT(s) s, sizeof(s) - 1

static void
run(const struct tcase *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = c[i].len ? c[i].len : strlen(c[i].text), bad;
		enum jsoncheck_error e = jsoncheck_text(c[i].text, len, &bad);

		cr_expect_eq(e, c[i].want, "case %zu (%s): got %d (%s at %zu), "
		    "want %d", i, c[i].text, e, jsoncheck_what(e), bad,
		    c[i].want);
	}
}

Test(jsoncheck, valid_text)
{
	static const struct tcase ok[] = {
		{ "null", 0, 0 }, { "true", 0, 0 }, { "false", 0, 0 },
		{ "0", 0, 0 }, { "-0", 0, 0 }, { "1.5e-3", 0, 0 },
		{ "1E+308", 0, 0 }, { "1e-400", 0, 0 }, { "-1.7976931348623157e308", 0, 0 },
		{ "18446744073709551615", 0, 0 },
		{ "-9223372036854775808", 0, 0 },
		{ "\"\"", 0, 0 }, { "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\"", 0, 0 },
		{ "\"\\u0000\\u00e9\\ud83d\\ude00\"", 0, 0 },
		{ "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"", 0, 0 },
		{ "{}", 0, 0 }, { "[]", 0, 0 },
		{ "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}", 0, 0 },
		{ " [ 1 , 2 ] ", 0, 0 },
	};

	run(ok, sizeof(ok) / sizeof(ok[0]));
}

Test(jsoncheck, invalid_text)
{
	static const struct tcase bad[] = {
		{ "", 0, JSONCHECK_SYNTAX },
		{ "NaN", 0, JSONCHECK_NONFINITE },
		{ "{\"a\":Infinity}", 0, JSONCHECK_NONFINITE },
		{ "[1,-Infinity]", 0, JSONCHECK_NONFINITE },
		{ "nan", 0, JSONCHECK_SYNTAX },
		{ "1e400", 0, JSONCHECK_NUMBER },
		{ "-1e400", 0, JSONCHECK_NUMBER },
		{ "18446744073709551616", 0, JSONCHECK_NUMBER },
		{ "-9223372036854775809", 0, JSONCHECK_NUMBER },
		{ "01", 0, JSONCHECK_SYNTAX }, { "1.", 0, JSONCHECK_SYNTAX },
		{ ".5", 0, JSONCHECK_SYNTAX }, { "1e", 0, JSONCHECK_SYNTAX },
		{ "+1", 0, JSONCHECK_SYNTAX },
		{ "\"\xff\"", 0, JSONCHECK_UTF8 },
		{ "{\"k\xc3(\":1}", 0, JSONCHECK_UTF8 },
		{ "\"\xed\xa0\x80\"", 0, JSONCHECK_UTF8 },
		{ "\"\xc0\xaf\"", 0, JSONCHECK_UTF8 },
		{ "\"\xf4\x90\x80\x80\"", 0, JSONCHECK_UTF8 },
		{ "\"\\ud800\"", 0, JSONCHECK_UTF8 },
		{ "\"\\udc00\"", 0, JSONCHECK_UTF8 },
		{ "\"\\ud800\\u0041\"", 0, JSONCHECK_UTF8 },
		{ "\"a\tb\"", 0, JSONCHECK_CONTROL },
		{ "[1,\n2]", 0, JSONCHECK_CONTROL },
		{ "[1,\t2]", 0, JSONCHECK_CONTROL },
		{ "1\n", 0, JSONCHECK_CONTROL },
		{ LIT("\"a\0b\""), JSONCHECK_CONTROL },
		{ "\"\\x\"", 0, JSONCHECK_SYNTAX },
		{ "\"\\u12\"", 0, JSONCHECK_SYNTAX },
		{ "\"abc", 0, JSONCHECK_SYNTAX },
		{ "[1,]", 0, JSONCHECK_SYNTAX }, { "{\"a\"}", 0, JSONCHECK_SYNTAX },
		{ "{\"a\":1,}", 0, JSONCHECK_SYNTAX }, { "{1:2}", 0, JSONCHECK_SYNTAX },
		{ "[1]]", 0, JSONCHECK_SYNTAX }, { "[1}", 0, JSONCHECK_SYNTAX },
		{ "1}}\n{\"id\":1}", 0, JSONCHECK_SYNTAX },
		{ "{} {}", 0, JSONCHECK_SYNTAX }, { "tru", 0, JSONCHECK_SYNTAX },
	};

	run(bad, sizeof(bad) / sizeof(bad[0]));
}

/* A text need not end in a NUL: nothing past len is read. */
Test(jsoncheck, stops_at_len)
{
	cr_assert_eq(jsoncheck_text("[1]xxx", 3, NULL), JSONCHECK_OK);
	cr_assert_eq(jsoncheck_text("1e400", 3, NULL), JSONCHECK_OK);
	cr_assert_eq(jsoncheck_text("\"ab\"", 3, NULL), JSONCHECK_SYNTAX);
}

Test(jsoncheck, depth_limit)
{
	size_t n = JSONCHECK_MAX_DEPTH + 1;
	char *s = malloc(2 * n);

	cr_assert_not_null(s);
	memset(s, '[', n - 1);
	memset(s + n - 1, ']', n - 1);
	cr_assert_eq(jsoncheck_text(s, 2 * (n - 1), NULL), JSONCHECK_OK);
	memset(s, '[', n);
	memset(s + n, ']', n);
	cr_assert_eq(jsoncheck_text(s, 2 * n, NULL), JSONCHECK_DEPTH);
	free(s);
}

/* Bad bytes become U+FFFD; good sequences and ASCII stay; the result
 * passes the check. */
Test(jsoncheck, repair_utf8)
{
	static const char in[] = "{\"k\xff\":\"\xc3\xa9\xc3(\xed\xa0\x80\"}";
	char out[3 * sizeof(in)];
	size_t n = jsoncheck_repair_utf8(in, sizeof(in) - 1, out);

	cr_assert_eq(jsoncheck_text(out, n, NULL), JSONCHECK_OK);
	out[n] = '\0';
	cr_assert_str_eq(out, "{\"k\xef\xbf\xbd\":\"\xc3\xa9\xef\xbf\xbd("
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}");
}
