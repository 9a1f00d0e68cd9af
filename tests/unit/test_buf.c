/*
 * test_buf.c - unit tests of buf.c: appending, consuming, growth and the
 * reclaiming of consumed space, printf, and the JSON string escaper.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"

/* Assert that the unconsumed bytes of b are exactly the string want. */
static void
expect_content(const struct buf *b, const char *want)
{
	size_t n = strlen(want);

	cr_assert_eq(buf_size(b), n, "size %zu, want %zu (\"%s\")",
	    buf_size(b), n, want);
	if (n > 0)
		cr_assert_eq(memcmp(buf_head(b), want, n), 0, "got \"%.*s\", "
		    "want \"%s\"", (int)buf_size(b), buf_head(b), want);
	cr_assert_leq(b->start, b->len);
	cr_assert_leq(b->len, b->cap);
}

Test(buf, starts_empty)
{
	struct buf b = BUF_INIT;

	cr_assert_eq(buf_size(&b), 0);
	cr_assert_null(b.data);
	cr_assert_eq(buf_put(&b, NULL, 0), 0);
	cr_assert_eq(buf_puts(&b, ""), 0);
	cr_assert_eq(buf_size(&b), 0);
	buf_free(&b);
	buf_free(&b);
}

Test(buf, put_and_consume)
{
	struct buf b = BUF_INIT;

	cr_assert_eq(buf_put(&b, "hello", 5), 0);
	cr_assert_eq(buf_puts(&b, ", world"), 0);
	expect_content(&b, "hello, world");
	buf_consume(&b, 7);
	expect_content(&b, "world");
	cr_assert_eq(buf_puts(&b, "!"), 0);
	expect_content(&b, "world!");
	/* Consuming everything rewinds to the start of the memory. */
	buf_consume(&b, 6);
	cr_assert_eq(buf_size(&b), 0);
	cr_assert_eq(b.start, 0);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(buf_puts(&b, "again"), 0);
	expect_content(&b, "again");
	buf_free(&b);
}

Test(buf, growth_keeps_every_byte)
{
	struct buf b = BUF_INIT;
	char chunk[37];
	size_t total = 0;

	for (int round = 0; total < 300000; round++) {
		for (size_t i = 0; i < sizeof(chunk); i++)
			chunk[i] = (char)((total + i) * 7 % 251);
		cr_assert_eq(buf_put(&b, chunk, sizeof(chunk)), 0);
		total += sizeof(chunk);
		cr_assert_eq(buf_size(&b), total);
		cr_assert_geq(b.cap, b.len);
	}
	for (size_t i = 0; i < total; i++)
		cr_assert_eq(buf_head(&b)[i], (char)(i * 7 % 251),
		    "byte %zu changed", i);
	/* Growth doubles: capacity is a power of two times the first 512. */
	cr_assert_eq(b.cap % 512, 0);
	cr_assert_eq((b.cap / 512) & (b.cap / 512 - 1), 0, "cap %zu", b.cap);
	buf_free(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.cap, 0);
}

Test(buf, reserve_makes_room)
{
	struct buf b = BUF_INIT;

	cr_assert_eq(buf_reserve(&b, 0), 0);
	cr_assert_eq(buf_reserve(&b, 10), 0);
	cr_assert_not_null(b.data);
	cr_assert_geq(b.cap - b.len, 10);
	cr_assert_eq(buf_reserve(&b, 5000), 0);
	cr_assert_geq(b.cap - b.len, 5000);
	cr_assert_eq(buf_size(&b), 0);
	buf_free(&b);
}

Test(buf, reserve_reclaims_consumed_space_first)
{
	struct buf b = BUF_INIT;
	char block[400];
	size_t cap;
	char *data;

	memset(block, 'x', sizeof(block));
	memcpy(block + 300, "0123456789", 10);
	cr_assert_eq(buf_put(&b, block, sizeof(block)), 0);
	cap = b.cap;
	data = b.data;
	buf_consume(&b, 300);
	/* 400 more bytes fit once the 300 consumed ones are reclaimed. */
	cr_assert_lt(cap - b.len, 400);
	cr_assert_eq(buf_reserve(&b, 400), 0);
	cr_assert_eq(b.cap, cap, "grew instead of reclaiming");
	cr_assert_eq(b.data, data);
	cr_assert_eq(b.start, 0);
	cr_assert_eq(buf_size(&b), 100);
	cr_assert_eq(memcmp(buf_head(&b), "0123456789", 10), 0);
	cr_assert_geq(b.cap - b.len, 400);
	buf_free(&b);
}

Test(buf, growth_after_consume_keeps_live_bytes)
{
	struct buf b = BUF_INIT;
	char block[500];

	for (size_t i = 0; i < sizeof(block); i++)
		block[i] = (char)('a' + i % 26);
	cr_assert_eq(buf_put(&b, block, sizeof(block)), 0);
	buf_consume(&b, 450);
	cr_assert_eq(buf_put(&b, block, sizeof(block)), 0);
	cr_assert_eq(buf_put(&b, block, sizeof(block)), 0);
	cr_assert_eq(buf_size(&b), 50 + 2 * sizeof(block));
	cr_assert_eq(memcmp(buf_head(&b), block + 450, 50), 0);
	cr_assert_eq(memcmp(buf_head(&b) + 50, block, sizeof(block)), 0);
	cr_assert_eq(memcmp(buf_head(&b) + 50 + sizeof(block), block,
	    sizeof(block)), 0);
	buf_free(&b);
}

Test(buf, reset_keeps_memory)
{
	struct buf b = BUF_INIT;
	size_t cap;
	char *data;

	cr_assert_eq(buf_puts(&b, "some text"), 0);
	cap = b.cap;
	data = b.data;
	buf_reset(&b);
	cr_assert_eq(buf_size(&b), 0);
	cr_assert_eq(b.cap, cap);
	cr_assert_eq(b.data, data);
	cr_assert_eq(buf_puts(&b, "new"), 0);
	expect_content(&b, "new");
	buf_free(&b);
}

Test(buf, free_then_reuse)
{
	struct buf b = BUF_INIT;

	cr_assert_eq(buf_puts(&b, "one"), 0);
	buf_free(&b);
	cr_assert_eq(buf_size(&b), 0);
	cr_assert_eq(buf_puts(&b, "two"), 0);
	expect_content(&b, "two");
	buf_free(&b);
}

Test(buf, printf_appends)
{
	struct buf b = BUF_INIT;

	cr_assert_eq(buf_puts(&b, "n="), 0);
	cr_assert_eq(buf_printf(&b, "%d:%s:%05.1f", 42, "abc", 3.14159), 0);
	expect_content(&b, "n=42:abc:003.1");
	cr_assert_eq(buf_printf(&b, "%s", ""), 0);
	expect_content(&b, "n=42:abc:003.1");
	buf_free(&b);
}

Test(buf, printf_grows)
{
	struct buf b = BUF_INIT;
	char want[3001];

	memset(want, 'z', 3000);
	want[3000] = '\0';
	cr_assert_eq(buf_puts(&b, "head "), 0);
	buf_consume(&b, 5);
	cr_assert_eq(buf_printf(&b, "%s", want), 0);
	expect_content(&b, want);
	cr_assert_eq(buf_printf(&b, "%3000s", "z"), 0);
	cr_assert_eq(buf_size(&b), 6000);
	cr_assert_eq(buf_head(&b)[5999], 'z');
	cr_assert_eq(buf_head(&b)[3000], ' ');
	buf_free(&b);
}

/* buf_put_json_string(s) alone, compared with the expected text. */
static void
expect_json_string(const char *s, const char *want)
{
	struct buf b = BUF_INIT;

	cr_assert_eq(buf_put_json_string(&b, s), 0);
	expect_content(&b, want);
	buf_free(&b);
}

Test(buf, json_string_escapes)
{
	expect_json_string("", "\"\"");
	expect_json_string("plain", "\"plain\"");
	expect_json_string("a\"b", "\"a\\\"b\"");
	expect_json_string("back\\slash", "\"back\\\\slash\"");
	expect_json_string("l1\nl2", "\"l1\\nl2\"");
	expect_json_string("t\tt", "\"t\\tt\"");
	expect_json_string("r\rr", "\"r\\rr\"");
	expect_json_string("x\x01y", "\"x\\u0001y\"");
	expect_json_string("\x1f", "\"\\u001f\"");
	expect_json_string("del\x7f", "\"del\\u007f\"");
	expect_json_string("a/b", "\"a/b\"");
	expect_json_string("\"\\\n", "\"\\\"\\\\\\n\"");
}

Test(buf, json_string_utf8_passes_through)
{
	expect_json_string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80",
	    "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");
}

Test(buf, json_string_round_trips_every_byte)
{
	struct buf b = BUF_INIT;
	struct json_object *o;
	char s[256];
	size_t n = 0;

	/* Every ASCII byte but NUL, then some UTF-8. */
	for (int c = 1; c < 128; c++)
		s[n++] = (char)c;
	memcpy(s + n, "\xc3\xa9\xe2\x82\xac", 5);
	n += 5;
	s[n] = '\0';
	cr_assert_eq(buf_puts(&b, "{\"k\":"), 0);
	cr_assert_eq(buf_put_json_string(&b, s), 0);
	cr_assert_eq(buf_puts(&b, "}"), 0);
	for (size_t i = 0; i < buf_size(&b); i++)
		cr_assert_geq((unsigned char)buf_head(&b)[i], 0x20,
		    "raw control byte at %zu", i);
	cr_assert_eq(buf_put(&b, "", 1), 0); /* NUL for the parser */
	o = json_tokener_parse(buf_head(&b));
	cr_assert_not_null(o, "not JSON: %s", buf_head(&b));
	cr_assert_str_eq(json_object_get_string(json_object_object_get(o, "k")),
	    s);
	json_object_put(o);
	buf_free(&b);
}

Test(buf, json_string_after_consume)
{
	struct buf b = BUF_INIT;

	cr_assert_eq(buf_puts(&b, "xxxx"), 0);
	buf_consume(&b, 2);
	cr_assert_eq(buf_put_json_string(&b, "q\""), 0);
	expect_content(&b, "xx\"q\\\"\"");
	buf_free(&b);
}
