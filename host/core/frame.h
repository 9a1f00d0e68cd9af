/*
 * frame.h - split a byte stream into request lines.
 *
 * Protocol v1 framing: one request per line ended by '\n' (a '\r' before
 * it stays part of the line, for the parser to ignore), blank lines are
 * skipped, and a line longer than the limit is reported once and its rest
 * skipped.  No I/O and no allocation: the caller owns the bytes.
 */
#ifndef CMDHOST_FRAME_H
#define CMDHOST_FRAME_H

#include <stddef.h>

enum frame_event {
	FRAME_NONE = 0,  /* nothing to handle (need more bytes, or skipped) */
	FRAME_LINE,      /* a request line */
	FRAME_TOO_LONG   /* a line over the limit: answer 413 once */
};

/* The framing state of one connection. */
struct framer {
	size_t max;      /* longest line, without its '\n' */
	int discarding;  /* inside the rest of a line reported too long */
};

/* Start framing with lines of at most max bytes. */
void frame_init(struct framer *f, size_t max);

/*
 * Look at p[0..n) (borrowed) and report the next event.  *used gets how
 * many bytes it consumed; FRAME_NONE with *used == 0 means a complete line
 * needs more bytes (keep them and call again with more).  For FRAME_LINE,
 * *line and *len give the line inside p, without its '\n'.
 */
int frame_next(struct framer *f, const char *p, size_t n, const char **line,
    size_t *len, size_t *used);

#endif /* CMDHOST_FRAME_H */
