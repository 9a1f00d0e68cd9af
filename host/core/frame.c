/*
 * frame.c - protocol v1 line framing, kept apart from the sockets so that
 * it can be tested and fuzzed on its own.
 */
#include "frame.h"

#include <string.h>

void
frame_init(struct framer *f, size_t max)
{
	f->max = max;
	f->discarding = 0;
}

/* True if p[0..len) holds nothing but spaces, tabs and '\r'. */
static int
blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return 0;
	return 1;
}

int
frame_next(struct framer *f, const char *p, size_t n, const char **line,
    size_t *len, size_t *used)
{
	const char *nl = memchr(p, '\n', n);
	size_t l;

	*line = NULL;
	*len = 0;
	*used = 0;
	if (nl == NULL) {
		if (f->discarding) {
			*used = n; /* more of the line being skipped */
			return FRAME_NONE;
		}
		if (n > f->max) {
			/* Over the limit before its end: say so now, skip the
			 * rest as it comes. */
			f->discarding = 1;
			*used = n;
			return FRAME_TOO_LONG;
		}
		return FRAME_NONE; /* wait for the rest */
	}
	l = (size_t)(nl - p);
	*used = l + 1;
	if (f->discarding) {
		f->discarding = 0; /* the end of the line already answered */
		return FRAME_NONE;
	}
	if (l > f->max)
		return FRAME_TOO_LONG;
	if (blank(p, l))
		return FRAME_NONE;
	*line = p;
	*len = l;
	return FRAME_LINE;
}
