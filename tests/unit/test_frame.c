/*
 * test_frame.c - unit tests of frame.c: lines split across reads, CRLF,
 * blank lines, the length limit, and over-long lines skipped to their end.
 * A small simulated connection feeds chunks the way the server does.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* A connection's read buffer and what the framer reported from it. */
struct conn {
	struct framer f;
	char buf[8192];     /* unconsumed bytes at buf[start..end) */
	size_t start, end;
	char lines[16][512];/* FRAME_LINE lines, NUL-terminated copies */
	size_t nlines;
	int too_long;       /* FRAME_TOO_LONG events */
	char order[64];     /* 'L' and 'T' per event, in order */
};

/* Start a connection whose lines may hold at most max bytes. */
static void
conn_init(struct conn *c, size_t max)
{
	memset(c, 0, sizeof(*c));
	frame_init(&c->f, max);
}

/* Append s (borrowed) as one read, then frame all that can be framed,
 * as the server does after each read. */
static void
conn_feed_len(struct conn *c, const char *s, size_t n)
{
	cr_assert_leq(c->end - c->start + n, sizeof(c->buf));
	memmove(c->buf, c->buf + c->start, c->end - c->start);
	c->end -= c->start;
	c->start = 0;
	memcpy(c->buf + c->end, s, n);
	c->end += n;
	while (c->start < c->end) {
		const char *line;
		size_t len, used, avail = c->end - c->start;
		int ev;

		ev = frame_next(&c->f, c->buf + c->start, avail, &line, &len,
		    &used);
		cr_assert_leq(used, avail);
		if (ev == FRAME_LINE) {
			cr_assert_lt(c->nlines, 16);
			cr_assert_lt(len, sizeof(c->lines[0]));
			memcpy(c->lines[c->nlines], line, len);
			c->lines[c->nlines++][len] = '\0';
			c->order[strlen(c->order)] = 'L';
		} else if (ev == FRAME_TOO_LONG) {
			c->too_long++;
			c->order[strlen(c->order)] = 'T';
		} else {
			cr_assert_eq(ev, FRAME_NONE);
		}
		if (used == 0)
			break;
		c->start += used;
	}
}

/* conn_feed_len() of a NUL-terminated string. */
static void
conn_feed(struct conn *c, const char *s)
{
	conn_feed_len(c, s, strlen(s));
}

/* Feed s (borrowed) n bytes at a time. */
static void
conn_feed_by(struct conn *c, const char *s, size_t n)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < len; i += n)
		conn_feed_len(c, s + i, len - i < n ? len - i : n);
}

Test(frame, one_line)
{
	struct conn c;

	conn_init(&c, 100);
	conn_feed(&c, "{\"command\":\"echo\"}\n");
	cr_assert_eq(c.nlines, 1);
	cr_assert_str_eq(c.lines[0], "{\"command\":\"echo\"}");
	cr_assert_eq(c.start, c.end);
}

Test(frame, partial_line_waits)
{
	struct framer f;
	const char *line;
	size_t len, used;

	frame_init(&f, 100);
	cr_assert_eq(frame_next(&f, "abc", 3, &line, &len, &used),
	    FRAME_NONE);
	cr_assert_eq(used, 0);
	cr_assert_null(line);
	cr_assert_eq(frame_next(&f, "abc\n", 4, &line, &len, &used),
	    FRAME_LINE);
	cr_assert_eq(used, 4);
	cr_assert_eq(len, 3);
}

Test(frame, empty_input)
{
	struct framer f;
	const char *line;
	size_t len, used;

	frame_init(&f, 0);
	cr_assert_eq(frame_next(&f, "", 0, &line, &len, &used), FRAME_NONE);
	cr_assert_eq(used, 0);
}

Test(frame, lines_split_across_chunks)
{
	struct conn c;

	conn_init(&c, 100);
	conn_feed(&c, "{\"comm");
	cr_assert_eq(c.nlines, 0);
	conn_feed(&c, "and\":\"a\"}\n{\"command\"");
	cr_assert_eq(c.nlines, 1);
	conn_feed(&c, ":\"b\"}");
	cr_assert_eq(c.nlines, 1);
	conn_feed(&c, "\n");
	cr_assert_eq(c.nlines, 2);
	cr_assert_str_eq(c.lines[0], "{\"command\":\"a\"}");
	cr_assert_str_eq(c.lines[1], "{\"command\":\"b\"}");
}

Test(frame, byte_at_a_time)
{
	struct conn c;

	conn_init(&c, 100);
	conn_feed_by(&c, "one\ntwo\r\n\nthree\n", 1);
	cr_assert_eq(c.nlines, 3);
	cr_assert_str_eq(c.lines[0], "one");
	cr_assert_str_eq(c.lines[1], "two\r");
	cr_assert_str_eq(c.lines[2], "three");
}

Test(frame, several_lines_in_one_chunk)
{
	struct conn c;

	conn_init(&c, 100);
	conn_feed(&c, "a\nb\nc\nd");
	cr_assert_eq(c.nlines, 3);
	cr_assert_str_eq(c.lines[2], "c");
	cr_assert_eq(c.end - c.start, 1, "the partial \"d\" is kept");
}

Test(frame, crlf_kept_in_line)
{
	struct conn c;

	conn_init(&c, 100);
	conn_feed(&c, "{\"command\":\"x\"}\r\n");
	cr_assert_eq(c.nlines, 1);
	cr_assert_str_eq(c.lines[0], "{\"command\":\"x\"}\r");
}

Test(frame, crlf_split_between_chunks)
{
	struct conn c;

	conn_init(&c, 100);
	conn_feed(&c, "abc\r");
	cr_assert_eq(c.nlines, 0);
	conn_feed(&c, "\n");
	cr_assert_eq(c.nlines, 1);
	cr_assert_str_eq(c.lines[0], "abc\r");
}

Test(frame, blank_lines_skipped)
{
	struct conn c;

	conn_init(&c, 100);
	conn_feed(&c, "\n\r\n \n\t\t\n \t\r \r\n");
	cr_assert_eq(c.nlines, 0);
	cr_assert_eq(c.too_long, 0);
	cr_assert_eq(c.start, c.end, "blank lines are consumed");
	conn_feed(&c, "x\n");
	cr_assert_eq(c.nlines, 1);
	cr_assert_str_eq(c.lines[0], "x");
}

Test(frame, space_around_text_is_a_line)
{
	struct conn c;

	conn_init(&c, 100);
	conn_feed(&c, "  {} \n\v\n");
	cr_assert_eq(c.nlines, 2, "only space, tab and CR are blank");
	cr_assert_str_eq(c.lines[0], "  {} ");
	cr_assert_str_eq(c.lines[1], "\v");
}

Test(frame, exactly_max_is_ok)
{
	struct conn c;

	conn_init(&c, 8);
	conn_feed(&c, "12345678\n");
	cr_assert_eq(c.nlines, 1);
	cr_assert_eq(c.too_long, 0);
	cr_assert_str_eq(c.lines[0], "12345678");
}

Test(frame, exactly_max_in_pieces_is_ok)
{
	struct conn c;

	conn_init(&c, 8);
	conn_feed(&c, "12345678");
	cr_assert_eq(c.too_long, 0, "max bytes without a newline may wait");
	conn_feed(&c, "\n");
	cr_assert_eq(c.nlines, 1);
	cr_assert_eq(c.too_long, 0);
}

Test(frame, max_plus_one_is_too_long)
{
	struct conn c;

	conn_init(&c, 8);
	conn_feed(&c, "123456789\nok\n");
	cr_assert_eq(c.too_long, 1);
	cr_assert_eq(c.nlines, 1);
	cr_assert_str_eq(c.lines[0], "ok");
	cr_assert_str_eq(c.order, "TL");
}

Test(frame, cr_counts_toward_limit)
{
	struct conn c;

	conn_init(&c, 8);
	conn_feed(&c, "12345678\r\n");
	cr_assert_eq(c.too_long, 1, "the '\\r' is part of the line");
	cr_assert_eq(c.nlines, 0);
}

Test(frame, long_blank_line_is_too_long)
{
	struct conn c;

	conn_init(&c, 4);
	conn_feed(&c, "          \n");
	cr_assert_eq(c.too_long, 1);
	cr_assert_eq(c.nlines, 0);
}

Test(frame, long_partial_reported_once_across_chunks)
{
	struct conn c;

	conn_init(&c, 16);
	conn_feed(&c, "0123456789");
	cr_assert_eq(c.too_long, 0);
	conn_feed(&c, "0123456789");
	cr_assert_eq(c.too_long, 1, "reported before its end arrives");
	cr_assert_eq(c.start, c.end, "and not kept");
	for (int i = 0; i < 100; i++) {
		conn_feed(&c, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		cr_assert_eq(c.start, c.end, "the rest is dropped");
	}
	conn_feed(&c, "\n\n");
	cr_assert_eq(c.too_long, 1, "reported once");
	cr_assert_eq(c.nlines, 0);
	conn_feed(&c, "{\"c\":\"next\"}\n");
	cr_assert_eq(c.nlines, 1, "the next line is fine");
	cr_assert_str_eq(c.lines[0], "{\"c\":\"next\"}");
	cr_assert_eq(c.too_long, 1);
}

Test(frame, long_partial_end_with_next_line_in_same_chunk)
{
	struct conn c;

	conn_init(&c, 4);
	conn_feed(&c, "abcdefgh");
	cr_assert_eq(c.too_long, 1);
	conn_feed(&c, "ijk\nok\n");
	cr_assert_eq(c.too_long, 1);
	cr_assert_eq(c.nlines, 1);
	cr_assert_str_eq(c.lines[0], "ok");
	cr_assert_str_eq(c.order, "TL");
}

Test(frame, long_lines_byte_at_a_time)
{
	struct conn c;

	conn_init(&c, 3);
	conn_feed_by(&c, "aaaaaa\nbb\ncccc\n\nd\n", 1);
	cr_assert_eq(c.too_long, 2);
	cr_assert_eq(c.nlines, 2);
	cr_assert_str_eq(c.lines[0], "bb");
	cr_assert_str_eq(c.lines[1], "d");
	cr_assert_str_eq(c.order, "TLTL");
}

Test(frame, two_long_lines_in_a_row)
{
	struct conn c;

	conn_init(&c, 2);
	conn_feed(&c, "aaaa\nbbbb\n");
	cr_assert_eq(c.too_long, 2, "each over-long line is answered");
	cr_assert_eq(c.nlines, 0);
}

Test(frame, max_zero)
{
	struct conn c;

	conn_init(&c, 0);
	conn_feed(&c, "\n\na\n");
	cr_assert_eq(c.too_long, 1);
	cr_assert_eq(c.nlines, 0);
}
