/*
 * jsoncheck.c - the last check of every reply: the strict scanner
 * (jscan.c) with spaces as the only whitespace, surrogate escapes in
 * pairs only, and its errors told the way replies report them; and the
 * UTF-8 repair of host-made text.
 */
#include "jsoncheck.h"

#include <string.h>

#include "buf.h"
#include "jscan.h"

/* The reply checker's view of the scanner's finer errors. */
static enum jsoncheck_error
coarse(enum jscan_error e)
{
	switch (e) {
	case JSCAN_OK:
		return JSONCHECK_OK;
	case JSCAN_SURROGATE:
	case JSCAN_STR_UTF8:
	case JSCAN_BYTE_UTF8:
		return JSONCHECK_UTF8;
	case JSCAN_STR_CONTROL:
	case JSCAN_CONTROL:
		return JSONCHECK_CONTROL;
	case JSCAN_NONFINITE:
		return JSONCHECK_NONFINITE;
	case JSCAN_INTEGER:
	case JSCAN_DOUBLE:
		return JSONCHECK_NUMBER;
	case JSCAN_DEPTH:
		return JSONCHECK_DEPTH;
	case JSCAN_NOMEM:
		return JSONCHECK_NOMEM;
	default:
		return JSONCHECK_SYNTAX;
	}
}

enum jsoncheck_error
jsoncheck_text(const char *text, size_t n, size_t *bad)
{
	struct jscan js;
	enum jscan_error e;

	/* Spaces only: a raw line break would end the reply line, and no
	 * control byte (tab included) goes out raw. */
	jscan_init(&js, JSCAN_SURROGATES, JSONCHECK_MAX_DEPTH);
	e = jscan_text(&js, text, n);
	if (bad != NULL)
		*bad = js.at;
	return coarse(e);
}

const char *
jsoncheck_what(enum jsoncheck_error e)
{
	switch (e) {
	case JSONCHECK_OK:
		return "valid JSON";
	case JSONCHECK_UTF8:
		return "invalid UTF-8";
	case JSONCHECK_SYNTAX:
		return "not JSON";
	case JSONCHECK_NONFINITE:
		return "NaN or Infinity (not JSON numbers)";
	case JSONCHECK_CONTROL:
		return "a raw control character";
	case JSONCHECK_NUMBER:
		return "a number beyond the range of a double or 64 bits";
	case JSONCHECK_DEPTH:
		return "nesting deeper than 4096 levels";
	case JSONCHECK_NOMEM:
		return "out of memory";
	}
	return "not JSON";
}

size_t
jsoncheck_repair_utf8(const char *text, size_t n, char *out)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0, o = 0, len;

	while (i < n) {
		if (s[i] < 0x80) {
			out[o++] = (char)s[i++];
		} else if ((len = buf_utf8_seq(s + i, n - i)) != 0) {
			memcpy(out + o, s + i, len);
			o += len;
			i += len;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	return o;
}
