/*
 * jscan.c - the strict JSON scanner (see jscan.h): one pass, a bit per
 * open container, strings sixteen or eight bytes at a time (a table
 * lookup per byte near a special one), no tree.  It reads no
 * value out but member spans; request.c, body_text.c and json-c do that.
 */
#include "jscan.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* How many member names JSCAN_KEYS remembers at once, and how deep. */
#define KEYS_MAX   128
#define KEYS_DEPTH 64

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

/* The one-letter escapes JSON has. */
static const unsigned char escape_ok[256] = {
	['"'] = 1, ['\\'] = 1, ['/'] = 1, ['b'] = 1, ['f'] = 1, ['n'] = 1,
	['r'] = 1, ['t'] = 1,
};

/* Per-call state that does not fit in struct jscan's public part. */
struct keys {
	struct {
		uint32_t off, len;
	} k[KEYS_MAX];
	uint16_t start[KEYS_DEPTH + 1]; /* first key of each open object */
};

void
jscan_init(struct jscan *js, unsigned flags, int max_depth)
{
	js->flags = flags;
	js->max_depth = max_depth < 1 ? 1 : max_depth > JSCAN_MAX_DEPTH ?
	    JSCAN_MAX_DEPTH : max_depth;
	js->out = NULL;
	js->member = NULL;
	js->arg = NULL;
	js->at = js->out_len = 0;
	js->top = 0;
	js->lone_surrogate = js->key_escape = js->dup_key = js->key_nul = 0;
	js->s = NULL;
	js->n = js->i = js->mark = js->ws = 0;
	js->depth = 0;
	js->nkeys = 0;
}

/* Whitespace between tokens: spaces, and with JSCAN_RFC_SPACE the other
 * three RFC 8259 allows.  With JSCAN_COMPACT the text before a run of
 * whitespace goes to out. */
static inline void
skip_ws(struct jscan *js)
{
	size_t start = js->i;

	/* Compact text has none: every whitespace byte is <= ' '. */
	if (start < js->n && js->s[start] > ' ')
		return;
	if (js->flags & JSCAN_RFC_SPACE) {
		while (js->i < js->n && (js->s[js->i] == ' ' ||
		    js->s[js->i] == '\n' || js->s[js->i] == '\t' ||
		    js->s[js->i] == '\r'))
			js->i++;
	} else {
		while (js->i < js->n && js->s[js->i] == ' ')
			js->i++;
	}
	if (js->i == start)
		return;
	js->ws += js->i - start;
	if (js->flags & JSCAN_COMPACT) {
		memcpy(js->out + js->out_len, js->s + js->mark, start -
		    js->mark);
		js->out_len += start - js->mark;
		js->mark = js->i;
	}
}

/* The four hex digits at js->i into *v, and past them; or -1. */
static int
hex4(struct jscan *js, unsigned *v)
{
	long h;

	if (js->n - js->i < 4 || (h = buf_hex4(js->s + js->i)) < 0)
		return -1;
	*v = (unsigned)h;
	js->i += 4;
	return 0;
}

/* A \u escape, js->i past the 'u'. */
static enum jscan_error
scan_unicode(struct jscan *js)
{
	unsigned v, lo;
	size_t second;

	if (hex4(js, &v) < 0)
		return JSCAN_ESCAPE;
	if (v < 0xd800 || v > 0xdfff)
		return JSCAN_OK;
	if (v <= 0xdbff && js->n - js->i >= 2 && js->s[js->i] == '\\' &&
	    js->s[js->i + 1] == 'u') {
		second = js->i;
		js->i += 2;
		if (hex4(js, &lo) < 0) {
			if (js->flags & JSCAN_SURROGATES)
				return JSCAN_ESCAPE;
			js->i = second; /* the next escape is scanned alone */
		} else if (lo >= 0xdc00 && lo <= 0xdfff) {
			return JSCAN_OK; /* a pair */
		} else {
			js->i = second;
		}
	}
	/* A low half alone, or a high half without its low one. */
	if (js->flags & JSCAN_SURROGATES)
		return JSCAN_SURROGATE;
	js->lone_surrogate = 1;
	return JSCAN_OK;
}

/*
 * The bytes of the 8 at p that are not plain (see plain[] above: below
 * 0x20, from 0x80, '"' and '\\'), each flagged in its top bit; 0 when
 * all are plain.  Each term is one of the classic "has a zero byte" and
 * "has a byte below n" tests: a borrow may flag a later byte too, never
 * an earlier one, so the lowest flag is the first byte that is not
 * plain.  p is borrowed, 8 readable bytes.
 */
static inline uint64_t
chunk_mask(const unsigned char *p)
{
	const uint64_t ones = 0x0101010101010101ULL;
	const uint64_t high = 0x8080808080808080ULL;
	uint64_t v, q, b;

	memcpy(&v, p, sizeof(v));
	q = v ^ (ones * '"');
	b = v ^ (ones * '\\');
	return (((v - ones * 0x20) & ~v) | ((q - ones) & ~q) |
	    ((b - ones) & ~b) | v) & high;
}

/*
 * How many of the n bytes at p (borrowed) are plain, up to the first
 * that is not or the last whole chunk: fewer than 8 bytes at the end are
 * for the byte loop.  With SSE2 (every x86-64) sixteen bytes at a time:
 * a signed "less than 0x20" catches the controls and every byte from
 * 0x80 at once, and the mask says where the first one is; then (and
 * elsewhere) eight at a time with chunk_mask(), whose lowest flag says
 * the same.
 */
static inline size_t
plain_run(const unsigned char *p, size_t n)
{
	size_t i = 0;
#ifdef __SSE2__
	const __m128i lo = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
	    bs = _mm_set1_epi8('\\');

	while (n - i >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)
		    (p + i));
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(
		    _mm_cmplt_epi8(v, lo), _mm_or_si128(_mm_cmpeq_epi8(v,
		    quote), _mm_cmpeq_epi8(v, bs))));

		if (m != 0)
			return i + (size_t)__builtin_ctz(m);
		i += 16;
	}
#endif
	while (n - i >= 8) {
		uint64_t m = chunk_mask(p + i);

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		if (m != 0)
			return i + (size_t)__builtin_ctzll(m) / 8;
#else
		/* The lowest flag is the first byte only in little-endian
		 * order: here the byte loop finds it. */
		if (m != 0)
			return i;
#endif
		i += 8;
	}
	return i;
}

/* The rest of a string, js->i inside it at a byte that may not be
 * plain (see scan_string).  *esc gets 1 if it has a backslash. */
static enum jscan_error
scan_string_rest(struct jscan *js, int *esc)
{
	for (;;) {
		const unsigned char *s = js->s;
		size_t i = js->i, n = js->n, len;
		unsigned char c;
		enum jscan_error e;

		/* Many plain bytes at a time, then the table for the rest
		 * (a long string is almost all of a large payload); in
		 * locals, which the byte reads cannot be taken to change. */
		i += plain_run(s + i, n - i);
		while (i < n && plain[s[i]])
			i++;
		js->i = i;
		if (i >= n)
			return JSCAN_UNTERMINATED;
		c = s[i];
		if (c == '"') {
			js->i = i + 1;
			return JSCAN_OK;
		}
		if (c < 0x20)
			return JSCAN_STR_CONTROL;
		if (c >= 0x80) {
			if ((len = buf_utf8_seq(js->s + js->i, js->n - js->i))
			    == 0)
				return JSCAN_STR_UTF8;
			js->i += len;
			continue;
		}
		if (c != '\\') {
			js->i++; /* DEL */
			continue;
		}
		*esc = 1;
		if (js->i + 1 >= js->n)
			return JSCAN_UNTERMINATED;
		c = js->s[js->i + 1];
		if (c < 0x20 || c >= 0x80)
			return JSCAN_ESCAPE_BYTE;
		js->i += 2;
		if (c == 'u') {
			if ((e = scan_unicode(js)) != JSCAN_OK)
				return e;
		} else if (!escape_ok[c]) {
			js->i--;
			return JSCAN_ESCAPE;
		}
	}
}

/* A string, js->i at its opening quote.  *esc gets 1 if it has a
 * backslash.  Inline for the common string of plain bytes only; what
 * else it holds (escapes, UTF-8) is scan_string_rest()'s. */
static inline __attribute__((always_inline)) enum jscan_error
scan_string(struct jscan *js, int *esc)
{
	const unsigned char *s = js->s;
	size_t i = js->i + 1, n = js->n;

	i += plain_run(s + i, n - i);
	while (i < n && plain[s[i]])
		i++;
	if (i < n && s[i] == '"') {
		js->i = i + 1;
		return JSCAN_OK;
	}
	js->i = i;
	return scan_string_rest(js, esc);
}

static size_t
digits(struct jscan *js)
{
	size_t start = js->i;

	while (js->i < js->n && js->s[js->i] >= '0' && js->s[js->i] <= '9')
		js->i++;
	return js->i - start;
}

/* 1 if the integer text p[0..n) (digits, after any '-') is beyond 64
 * bits: int64 when negative, uint64 when not. */
static int
beyond_64_bits(const unsigned char *p, size_t n, int neg)
{
	const char *limit = neg ? "9223372036854775808" :
	    "18446744073709551615";
	size_t ln = neg ? 19 : 20;

	return n > ln || (n == ln && memcmp(p, limit, n) > 0);
}

/* JSCAN_DOUBLE if the number p[0..n) overflows a double, else JSCAN_OK
 * (or JSCAN_NOMEM). */
static enum jscan_error
overflows_double(const unsigned char *p, size_t n)
{
	char stack[128], *copy = stack;
	double v;

	if (n >= sizeof(stack) && (copy = malloc(n + 1)) == NULL)
		return JSCAN_NOMEM;
	memcpy(copy, p, n);
	copy[n] = '\0';
	v = strtod(copy, NULL);
	if (copy != stack)
		free(copy);
	return isinf(v) ? JSCAN_DOUBLE : JSCAN_OK;
}

/* A number, js->i at its first byte ('-' or a digit). */
static enum jscan_error
scan_number(struct jscan *js)
{
	size_t start = js->i, int_digits, exp_digits = 0, exp_at = 0;
	int neg = 0, is_int = 1;

	if (js->s[js->i] == '-') {
		neg = 1;
		js->i++;
	}
	if (js->i >= js->n)
		return JSCAN_SYNTAX;
	if (js->s[js->i] == 'I')
		return JSCAN_NONFINITE; /* json-c's -Infinity */
	if (js->s[js->i] == '0') {
		js->i++;
		int_digits = 1;
	} else if ((int_digits = digits(js)) == 0) {
		return JSCAN_SYNTAX;
	}
	if (js->i < js->n && js->s[js->i] == '.') {
		js->i++;
		is_int = 0;
		if (digits(js) == 0)
			return JSCAN_SYNTAX;
	}
	if (js->i < js->n && (js->s[js->i] == 'e' || js->s[js->i] == 'E')) {
		js->i++;
		is_int = 0;
		if (js->i < js->n && (js->s[js->i] == '+' ||
		    js->s[js->i] == '-'))
			js->i++;
		exp_at = js->i;
		if ((exp_digits = digits(js)) == 0)
			return JSCAN_SYNTAX;
	}
	if (is_int) {
		if (int_digits >= 19 && beyond_64_bits(js->s + start + neg,
		    int_digits, neg))
			return JSCAN_INTEGER;
		return JSCAN_OK;
	}
	/* Only a long mantissa or a large exponent can reach past DBL_MAX
	 * (about 1.8e308): 10^(digits - 1 + exponent). */
	if (int_digits >= 300 || exp_digits >= 3 || (exp_digits > 0 &&
	    js->s[exp_at - 1] != '-' && int_digits + (size_t)(exp_digits == 1 ?
	    js->s[exp_at] - '0' : (js->s[exp_at] - '0') * 10 +
	    js->s[exp_at + 1] - '0') >= 300))
		return overflows_double(js->s + start, js->i - start);
	return JSCAN_OK;
}

static enum jscan_error
scan_word(struct jscan *js, const char *w, size_t len)
{
	if (js->n - js->i < len || memcmp(js->s + js->i, w, len) != 0)
		return JSCAN_SYNTAX;
	js->i += len;
	return JSCAN_OK;
}

static int
push(struct jscan *js, int is_object)
{
	if (js->depth >= js->max_depth)
		return -1;
	if (is_object)
		js->stack[js->depth / 8] |= (unsigned char)(1u << js->depth % 8);
	else
		js->stack[js->depth / 8] &= (unsigned char)~(1u <<
		    js->depth % 8);
	js->depth++;
	return 0;
}

static int
top_is_object(const struct jscan *js)
{
	int d = js->depth - 1;

	return (js->stack[d / 8] >> d % 8) & 1;
}

/* Remember the name at s[off..off+len) of the object at js->depth, and
 * say whether it came before in that object. */
static inline void
note_key(struct jscan *js, struct keys *ks, size_t off, size_t len)
{
	unsigned from;

	if (js->depth > KEYS_DEPTH || js->nkeys >= KEYS_MAX) {
		js->dup_key = 1; /* cannot tell: say so */
		return;
	}
	from = ks->start[js->depth];
	for (unsigned k = from; k < js->nkeys; k++)
		if (ks->k[k].len == len && js->s[ks->k[k].off + 1] ==
		    js->s[off + 1] && memcmp(js->s + ks->k[k].off,
		    js->s + off, len) == 0) {
			js->dup_key = 1;
			break;
		}
	ks->k[js->nkeys].off = (uint32_t)off;
	ks->k[js->nkeys].len = (uint32_t)len;
	js->nkeys++;
}

/* An object member's name and colon; js->i at the name.  *m gets the
 * name's span. */
static inline __attribute__((always_inline)) enum jscan_error
scan_key(struct jscan *js, struct keys *ks, struct jscan_member *m)
{
	enum jscan_error e;
	size_t start = js->i;
	int esc = 0;

	if (js->i >= js->n || js->s[js->i] != '"')
		return JSCAN_SYNTAX;
	if ((e = scan_string(js, &esc)) != JSCAN_OK)
		return e;
	/* Only a name with a backslash is looked at again, and only its
	 * own bytes. */
	if (esc && memmem(js->s + start, js->i - start, "\\u0000", 6) != NULL)
		js->key_nul = 1;
	if (js->depth == 1) {
		m->key = start;
		m->key_len = js->i - start;
		m->key_escaped = esc;
	}
	if (js->flags & JSCAN_KEYS) {
		if (esc)
			js->key_escape = 1;
		note_key(js, ks, start, js->i - start);
	}
	skip_ws(js);
	if (js->i >= js->n || js->s[js->i] != ':')
		return JSCAN_SYNTAX;
	js->i++;
	skip_ws(js);
	return JSCAN_OK;
}

/* What a byte that cannot begin a value or follow one is. */
static enum jscan_error
stray(const struct jscan *js)
{
	unsigned char c = js->s[js->i];

	if (c < 0x20)
		return JSCAN_CONTROL;
	if (c >= 0x80)
		return buf_utf8_seq(js->s + js->i, js->n - js->i) == 0 ?
		    JSCAN_BYTE_UTF8 : JSCAN_BYTE;
	return JSCAN_SYNTAX;
}

static enum jscan_error
scan_all(struct jscan *js, struct keys *ks)
{
	struct jscan_member m = { 0, 0, 0, 0, 0, 0 };
	size_t ws0 = 0;
	enum jscan_error e;
	unsigned char c;
	int esc;

	skip_ws(js);
	if (js->i >= js->n)
		return JSCAN_EMPTY;
	js->top = js->s[js->i];
value:
	if (js->i >= js->n)
		return JSCAN_SYNTAX;
	if (js->depth == 1) {
		m.value = js->i;
		ws0 = js->ws;
	}
	c = js->s[js->i];
	switch (c) {
	case '{':
	case '[':
		if (push(js, c == '{') < 0)
			return JSCAN_DEPTH;
		if (c == '{' && (js->flags & JSCAN_KEYS) &&
		    js->depth <= KEYS_DEPTH)
			ks->start[js->depth] = (uint16_t)js->nkeys;
		js->i++;
		skip_ws(js);
		if (js->i < js->n && js->s[js->i] == (c == '{' ? '}' : ']')) {
			js->i++;
			js->depth--;
			goto after;
		}
		if (c == '{' && (e = scan_key(js, ks, &m)) != JSCAN_OK)
			return e;
		goto value;
	case '"':
		esc = 0;
		e = scan_string(js, &esc);
		break;
	case 't':
		e = scan_word(js, "true", 4);
		break;
	case 'f':
		e = scan_word(js, "false", 5);
		break;
	case 'n':
		e = scan_word(js, "null", 4);
		break;
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			e = scan_number(js);
		else if (c == 'N' || c == 'I')
			e = JSCAN_NONFINITE; /* json-c's NaN, Infinity */
		else
			e = stray(js);
		break;
	}
	if (e != JSCAN_OK)
		return e;
after:
	if (js->depth == 1 && top_is_object(js) && js->member != NULL) {
		/* A member of the top-level object has just ended. */
		m.value_end = js->i;
		m.value_ws = js->ws - ws0;
		js->member(js, &m);
	}
	skip_ws(js);
	if (js->depth == 0) {
		if (js->i == js->n)
			return JSCAN_OK;
		return js->s[js->i] < 0x20 ? JSCAN_CONTROL : JSCAN_TRAILING;
	}
	if (js->i >= js->n)
		return JSCAN_SYNTAX;
	c = js->s[js->i];
	if (c == ',') {
		js->i++;
		skip_ws(js);
		if (top_is_object(js) && (e = scan_key(js, ks, &m)) != JSCAN_OK)
			return e;
		goto value;
	}
	if (c == (top_is_object(js) ? '}' : ']')) {
		if (c == '}' && (js->flags & JSCAN_KEYS) &&
		    js->depth <= KEYS_DEPTH)
			js->nkeys = ks->start[js->depth];
		js->i++;
		js->depth--;
		goto after;
	}
	return c < 0x20 ? JSCAN_CONTROL : JSCAN_SYNTAX;
}

enum jscan_error
jscan_text(struct jscan *js, const char *text, size_t n)
{
	struct keys ks_store, *ks = (js->flags & JSCAN_KEYS) ? &ks_store :
	    NULL;
	enum jscan_error e;

	js->s = (const unsigned char *)text;
	js->n = n;
	js->i = js->mark = js->ws = 0;
	js->depth = 0;
	js->nkeys = 0;
	js->out_len = 0;
	e = scan_all(js, ks);
	js->at = e == JSCAN_OK ? 0 : js->i;
	if (e == JSCAN_OK && (js->flags & JSCAN_COMPACT)) {
		memcpy(js->out + js->out_len, js->s + js->mark, js->n -
		    js->mark);
		js->out_len += js->n - js->mark;
	}
	return e;
}

const char *
jscan_what(enum jscan_error e)
{
	switch (e) {
	case JSCAN_OK:
		return "valid JSON";
	case JSCAN_SYNTAX:
		return "not JSON";
	case JSCAN_EMPTY:
		return "no JSON value";
	case JSCAN_TRAILING:
		return "text after the value";
	case JSCAN_UNTERMINATED:
		return "an unterminated string";
	case JSCAN_ESCAPE:
		return "an invalid escape";
	case JSCAN_ESCAPE_BYTE:
		return "a bad escape";
	case JSCAN_SURROGATE:
		return "a lone surrogate escape";
	case JSCAN_STR_UTF8:
	case JSCAN_BYTE_UTF8:
		return "invalid UTF-8";
	case JSCAN_STR_CONTROL:
		return "a raw control character inside a string";
	case JSCAN_CONTROL:
		return "a raw control character";
	case JSCAN_BYTE:
		return "a character that is not JSON";
	case JSCAN_NONFINITE:
		return "NaN or Infinity (not JSON numbers)";
	case JSCAN_INTEGER:
		return "an integer beyond 64 bits";
	case JSCAN_DOUBLE:
		return "a number beyond the range of a double";
	case JSCAN_DEPTH:
		return "nesting too deep";
	case JSCAN_NOMEM:
		return "out of memory";
	}
	return "not JSON";
}
