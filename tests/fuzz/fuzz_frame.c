/*
 * fuzz_frame.c - libFuzzer harness for frame.c: feeds the input to a
 * simulated connection in chunks chosen by the input's first bytes and
 * abort()s unless the events match a plain split of the whole input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One expected or observed event: a line (bytes) or a too-long report. */
struct ev {
	int kind;        /* FRAME_LINE or FRAME_TOO_LONG */
	const char *p;   /* borrowed; for FRAME_LINE */
	size_t len;
};

/* Expected events, from ref_split(); owned by LLVMFuzzerTestOneInput. */
static struct ev *want;
static size_t nwant, next_want;

/* True if p[0..len) is only spaces, tabs and '\r'. */
static int
is_blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return 0;
	return 1;
}

/*
 * The reference: split all of p[0..n) (borrowed) on '\n' into want (which
 * must have room for n + 1 events).  A terminated line over max is too
 * long, a blank one is skipped, any other is a line.  The unterminated
 * tail is promised only this: if it is over max, it was reported too long
 * (the framer cannot know more about a line it has not seen end).
 */
static void
ref_split(const char *p, size_t n, size_t max)
{
	size_t i = 0;

	nwant = 0;
	while (i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t l = nl != NULL ? (size_t)(nl - (p + i)) : n - i;

		if (l > max) {
			want[nwant].kind = FRAME_TOO_LONG;
			want[nwant].p = NULL;
			want[nwant++].len = 0;
		} else if (nl != NULL && !is_blank(p + i, l)) {
			want[nwant].kind = FRAME_LINE;
			want[nwant].p = p + i;
			want[nwant++].len = l;
		}
		if (nl == NULL)
			break;
		i += l + 1;
	}
}

/* Check one observed event against the next expected one; abort() on a
 * mismatch.  line is borrowed. */
static void
observe(int kind, const char *line, size_t len)
{
	const struct ev *e;

	if (next_want >= nwant)
		abort();
	e = &want[next_want++];
	if (e->kind != kind)
		abort();
	if (kind == FRAME_LINE && (e->len != len ||
	    (len > 0 && memcmp(e->p, line, len) != 0)))
		abort();
}

/*
 * Run the framer over conn[*start..*end) (borrowed) as a connection does
 * after each read, consuming what it uses, and check what it reports.
 */
static void
drain(struct framer *f, char *conn, size_t *start, size_t end)
{
	while (*start < end) {
		const char *line;
		size_t len, used, n = end - *start;
		int kind;

		kind = frame_next(f, conn + *start, n, &line, &len, &used);
		if (used > n)
			abort();
		if (kind == FRAME_LINE) {
			if (line != conn + *start || len >= used)
				abort();
			observe(kind, line, len);
		} else if (kind == FRAME_TOO_LONG) {
			observe(kind, NULL, 0);
		} else if (kind != FRAME_NONE) {
			abort();
		}
		if (used == 0) {
			/* Waiting for the rest of a line: it must be a
			 * partial line no longer than the limit. */
			if (kind != FRAME_NONE || f->discarding ||
			    memchr(conn + *start, '\n', n) != NULL ||
			    n > f->max)
				abort();
			break;
		}
		*start += used;
	}
}

/* Size of the next chunk under `mode`, at least 1; state is the caller's. */
static size_t
chunk_size(int mode, unsigned *state, const uint8_t *body, size_t at,
    size_t left)
{
	size_t c;

	switch (mode) {
	case 0:
		c = left;
		break;
	case 1:
		c = 1;
		break;
	case 2:
		*state = *state * 1103515245u + 12345u;
		c = 1 + (*state >> 16) % 23;
		break;
	default:
		c = 1 + body[at] % 37;
		break;
	}
	return c < left ? c : left;
}

/* The fuzzer entry point: data is borrowed; everything made here is freed
 * here.  data[0] picks the limit, data[1] the chunking, the rest is sent. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct framer f;
	const uint8_t *body;
	char *conn;
	size_t max, n, at = 0, start = 0, end = 0;
	unsigned state;
	int mode;

	if (size < 2)
		return 0;
	max = data[0] & 0x80 ? (size_t)(data[0] & 0x7f) * 64 : data[0];
	mode = data[1] & 3;
	state = data[1];
	body = data + 2;
	n = size - 2;
	if ((want = calloc(n + 1, sizeof(*want))) == NULL)
		abort();
	if ((conn = malloc(n + 1)) == NULL)
		abort();
	ref_split((const char *)body, n, max);
	next_want = 0;
	frame_init(&f, max);
	while (at < n) {
		size_t c = chunk_size(mode, &state, body, at, n - at);

		/* Keep the unconsumed bytes, then append the chunk. */
		memmove(conn, conn + start, end - start);
		end -= start;
		start = 0;
		memcpy(conn + end, body + at, c);
		end += c;
		at += c;
		drain(&f, conn, &start, end);
	}
	if (next_want != nwant)
		abort();
	free(conn);
	free(want);
	want = NULL;
	return 0;
}
