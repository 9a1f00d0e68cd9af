/*
 * jsoncheck.c - a strict JSON text checker without a tree: one pass, a
 * bit per open container, no allocation (but for a number token longer
 * than 127 bytes that might overflow).  It does not parse values out;
 * request.c and json-c do that.
 */
#include "jsoncheck.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

struct scan {
	const unsigned char *s;
	size_t n, i;
	int depth;
	unsigned char stack[JSONCHECK_MAX_DEPTH / 8]; /* 1: object */
};

/* Spaces only: a raw line break would end the reply line, and no
 * control byte (tab included) goes out raw. */
static void
skip_ws(struct scan *sc)
{
	while (sc->i < sc->n && sc->s[sc->i] == ' ')
		sc->i++;
}

static int
hex4(struct scan *sc, unsigned *v)
{
	*v = 0;
	if (sc->n - sc->i < 4)
		return -1;
	for (int k = 0; k < 4; k++) {
		unsigned char c = sc->s[sc->i + k];

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			*v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			*v |= c - 'A' + 10;
		else
			return -1;
	}
	sc->i += 4;
	return 0;
}

/* 1 for the bytes that stand for themselves inside a string: printable
 * ASCII but '"' and '\\' (the hot loop below looks at nothing else). */
static const unsigned char plain[256] = {
	[0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* A string, sc->i at its opening quote. */
static enum jsoncheck_error
scan_string(struct scan *sc)
{
	sc->i++;
	for (;;) {
		unsigned char c;
		size_t len;

		while (sc->i < sc->n && plain[sc->s[sc->i]])
			sc->i++;
		if (sc->i >= sc->n)
			return JSONCHECK_SYNTAX;
		c = sc->s[sc->i];
		if (c == '"') {
			sc->i++;
			return JSONCHECK_OK;
		}
		if (c < 0x20)
			return JSONCHECK_CONTROL;
		if (c >= 0x80) {
			if ((len = buf_utf8_seq(sc->s + sc->i, sc->n - sc->i))
			    == 0)
				return JSONCHECK_UTF8;
			sc->i += len;
			continue;
		}
		if (c != '\\') {
			sc->i++;
			continue;
		}
		if (++sc->i >= sc->n)
			return JSONCHECK_SYNTAX;
		c = sc->s[sc->i++];
		if (c == 'u') {
			unsigned v, lo;

			if (hex4(sc, &v) < 0)
				return JSONCHECK_SYNTAX;
			if (v >= 0xdc00 && v <= 0xdfff)
				return JSONCHECK_UTF8; /* a lone low half */
			if (v >= 0xd800 && v <= 0xdbff) {
				if (sc->n - sc->i < 2 || sc->s[sc->i] != '\\' ||
				    sc->s[sc->i + 1] != 'u')
					return JSONCHECK_UTF8;
				sc->i += 2;
				if (hex4(sc, &lo) < 0)
					return JSONCHECK_SYNTAX;
				if (lo < 0xdc00 || lo > 0xdfff)
					return JSONCHECK_UTF8;
			}
		} else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
			return JSONCHECK_SYNTAX;
		}
	}
}

static size_t
digits(struct scan *sc)
{
	size_t start = sc->i;

	while (sc->i < sc->n && sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9')
		sc->i++;
	return sc->i - start;
}

/* 1 if the integer text p[0..n) (digits, after any '-') is beyond 64
 * bits: int64 when negative, uint64 when not. */
static int
beyond_64_bits(const unsigned char *p, size_t n, int neg)
{
	const char *limit = neg ? "9223372036854775808" :
	    "18446744073709551615";
	size_t ln = strlen(limit);

	return n > ln || (n == ln && memcmp(p, limit, n) > 0);
}

/* 1 if the number p[0..n) overflows a double. */
static int
overflows_double(const unsigned char *p, size_t n, enum jsoncheck_error *e)
{
	char stack[128], *copy = stack;
	double v;

	if (n >= sizeof(stack) && (copy = malloc(n + 1)) == NULL) {
		*e = JSONCHECK_NOMEM;
		return 1;
	}
	memcpy(copy, p, n);
	copy[n] = '\0';
	v = strtod(copy, NULL);
	if (copy != stack)
		free(copy);
	*e = JSONCHECK_NUMBER;
	return isinf(v);
}

/* A number, sc->i at its first byte ('-' or a digit). */
static enum jsoncheck_error
scan_number(struct scan *sc)
{
	size_t start = sc->i, int_digits, exp_digits = 0;
	int neg = 0, is_int = 1;
	enum jsoncheck_error e;

	if (sc->s[sc->i] == '-') {
		neg = 1;
		sc->i++;
	}
	if (sc->i >= sc->n)
		return JSONCHECK_SYNTAX;
	if (sc->s[sc->i] == 'I')
		return JSONCHECK_NONFINITE; /* json-c's -Infinity */
	if (sc->s[sc->i] == '0') {
		sc->i++;
		int_digits = 1;
	} else if ((int_digits = digits(sc)) == 0) {
		return JSONCHECK_SYNTAX;
	}
	if (sc->i < sc->n && sc->s[sc->i] == '.') {
		sc->i++;
		is_int = 0;
		if (digits(sc) == 0)
			return JSONCHECK_SYNTAX;
	}
	if (sc->i < sc->n && (sc->s[sc->i] == 'e' || sc->s[sc->i] == 'E')) {
		sc->i++;
		is_int = 0;
		if (sc->i < sc->n && (sc->s[sc->i] == '+' ||
		    sc->s[sc->i] == '-'))
			sc->i++;
		if ((exp_digits = digits(sc)) == 0)
			return JSONCHECK_SYNTAX;
	}
	if (is_int) {
		if (int_digits >= 19 && beyond_64_bits(sc->s + start + neg,
		    int_digits, neg))
			return JSONCHECK_NUMBER;
		return JSONCHECK_OK;
	}
	/* Only a long mantissa or a 3-digit exponent can reach past
	 * DBL_MAX; json-c's own "%.17g" never does. */
	if ((int_digits >= 300 || exp_digits >= 3) &&
	    overflows_double(sc->s + start, sc->i - start, &e))
		return e;
	return JSONCHECK_OK;
}

static enum jsoncheck_error
scan_word(struct scan *sc, const char *w)
{
	size_t len = strlen(w);

	if (sc->n - sc->i < len || memcmp(sc->s + sc->i, w, len) != 0)
		return JSONCHECK_SYNTAX;
	sc->i += len;
	return JSONCHECK_OK;
}

static int
push(struct scan *sc, int is_object)
{
	if (sc->depth >= JSONCHECK_MAX_DEPTH)
		return -1;
	if (is_object)
		sc->stack[sc->depth / 8] |= (unsigned char)(1u << sc->depth % 8);
	else
		sc->stack[sc->depth / 8] &= (unsigned char)~(1u << sc->depth % 8);
	sc->depth++;
	return 0;
}

static int
top_is_object(const struct scan *sc)
{
	int d = sc->depth - 1;

	return (sc->stack[d / 8] >> d % 8) & 1;
}

/* An object member's key and colon; sc->i at the key. */
static enum jsoncheck_error
scan_key(struct scan *sc)
{
	enum jsoncheck_error e;

	if (sc->i >= sc->n || sc->s[sc->i] != '"')
		return JSONCHECK_SYNTAX;
	if ((e = scan_string(sc)) != JSONCHECK_OK)
		return e;
	skip_ws(sc);
	if (sc->i >= sc->n || sc->s[sc->i] != ':')
		return JSONCHECK_SYNTAX;
	sc->i++;
	skip_ws(sc);
	return JSONCHECK_OK;
}

static enum jsoncheck_error
scan_all(struct scan *sc)
{
	enum jsoncheck_error e;
	unsigned char c;

	skip_ws(sc);
value:
	if (sc->i >= sc->n)
		return JSONCHECK_SYNTAX;
	c = sc->s[sc->i];
	switch (c) {
	case '{':
	case '[':
		if (push(sc, c == '{') < 0)
			return JSONCHECK_DEPTH;
		sc->i++;
		skip_ws(sc);
		if (sc->i < sc->n && sc->s[sc->i] == (c == '{' ? '}' : ']')) {
			sc->i++;
			sc->depth--;
			goto after;
		}
		if (c == '{' && (e = scan_key(sc)) != JSONCHECK_OK)
			return e;
		goto value;
	case '"':
		e = scan_string(sc);
		break;
	case 't':
		e = scan_word(sc, "true");
		break;
	case 'f':
		e = scan_word(sc, "false");
		break;
	case 'n':
		e = scan_word(sc, "null");
		break;
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			e = scan_number(sc);
		else if (c == 'N' || c == 'I')
			e = JSONCHECK_NONFINITE; /* json-c's NaN, Infinity */
		else
			e = c < 0x20 ? JSONCHECK_CONTROL : c >= 0x80 &&
			    buf_utf8_seq(sc->s + sc->i, sc->n - sc->i) == 0 ?
			    JSONCHECK_UTF8 : JSONCHECK_SYNTAX;
		break;
	}
	if (e != JSONCHECK_OK)
		return e;
after:
	skip_ws(sc);
	if (sc->depth == 0)
		return sc->i == sc->n ? JSONCHECK_OK : sc->s[sc->i] < 0x20 ?
		    JSONCHECK_CONTROL : JSONCHECK_SYNTAX;
	if (sc->i >= sc->n)
		return JSONCHECK_SYNTAX;
	c = sc->s[sc->i];
	if (c == ',') {
		sc->i++;
		skip_ws(sc);
		if (top_is_object(sc) && (e = scan_key(sc)) != JSONCHECK_OK)
			return e;
		goto value;
	}
	if (c == (top_is_object(sc) ? '}' : ']')) {
		sc->i++;
		sc->depth--;
		goto after;
	}
	return c < 0x20 ? JSONCHECK_CONTROL : JSONCHECK_SYNTAX;
}

enum jsoncheck_error
jsoncheck_text(const char *text, size_t n, size_t *bad)
{
	struct scan sc;
	enum jsoncheck_error e;

	sc.s = (const unsigned char *)text;
	sc.n = n;
	sc.i = 0;
	sc.depth = 0;
	e = scan_all(&sc);
	if (bad != NULL)
		*bad = e == JSONCHECK_OK ? 0 : sc.i;
	return e;
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
