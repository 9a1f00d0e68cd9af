/*
 * jscan.h - the one strict JSON scanner: a single pass over a text that
 * checks it is exactly one JSON value (RFC 8259) in strict UTF-8, with no
 * allocation and no tree.  Every check of JSON text in the host is this
 * scanner in one of its modes: the request line (request.c), a plugin's
 * text body (body_text.c) and the last check of every reply (jsoncheck.c).
 *
 * Strict beyond RFC 8259 in every mode: no NaN or Infinity, no number that
 * overflows a double, no integer beyond 64 bits (int64 when negative,
 * uint64 when not), a nesting limit.  What differs by mode is chosen with
 * flags: which whitespace is allowed between tokens, whether a lone
 * surrogate escape is refused or only noted, whether the text is copied
 * without its whitespace, whether member names are watched (an escape, a
 * name given twice), and a callback for each member of a top-level object
 * (how the request envelope is read without building anything).
 */
#ifndef CMDHOST_JSCAN_H
#define CMDHOST_JSCAN_H

#include <stddef.h>

/* The deepest nesting the scanner can follow (its bit stack's size). */
#define JSCAN_MAX_DEPTH 4096

/* Flags of struct jscan. */
#define JSCAN_RFC_SPACE  0x01u /* tab, CR and LF between tokens too (else
                                * only spaces) */
#define JSCAN_SURROGATES 0x02u /* refuse a lone surrogate escape (else set
                                * lone_surrogate and go on) */
#define JSCAN_COMPACT    0x04u /* copy the text without the whitespace
                                * between tokens to out */
#define JSCAN_KEYS       0x08u /* set key_escape and dup_key */

/* What was wrong first, finer than callers need: each maps it. */
enum jscan_error {
	JSCAN_OK = 0,
	JSCAN_SYNTAX,        /* not JSON here */
	JSCAN_EMPTY,         /* nothing but whitespace */
	JSCAN_TRAILING,      /* text after the value */
	JSCAN_UNTERMINATED,  /* a string that does not end */
	JSCAN_ESCAPE,        /* a backslash escape JSON does not have */
	JSCAN_ESCAPE_BYTE,   /* a backslash before a control or non-ASCII
	                      * byte */
	JSCAN_SURROGATE,     /* a lone surrogate escape (JSCAN_SURROGATES) */
	JSCAN_STR_UTF8,      /* a byte in a string that is not strict UTF-8 */
	JSCAN_STR_CONTROL,   /* a raw control byte in a string */
	JSCAN_CONTROL,       /* a control byte between tokens */
	JSCAN_BYTE_UTF8,     /* a non-ASCII byte between tokens, not UTF-8 */
	JSCAN_BYTE,          /* a non-ASCII character between tokens */
	JSCAN_NONFINITE,     /* NaN, Infinity, -Infinity (json-c's tokens) */
	JSCAN_INTEGER,       /* an integer beyond 64 bits */
	JSCAN_DOUBLE,        /* a number beyond the range of a double */
	JSCAN_DEPTH,         /* nested deeper than max_depth */
	JSCAN_NOMEM          /* (a number token over 127 bytes to read) */
};

/* One member of the top-level object, as offsets into the text. */
struct jscan_member {
	size_t key;        /* the name's opening quote */
	size_t key_len;    /* quotes included */
	int key_escaped;   /* the name holds a backslash */
	size_t value;      /* the value's first byte */
	size_t value_end;  /* one past its last byte */
	size_t value_ws;   /* whitespace bytes between the value's tokens */
};

struct jscan;

/* Called for each member of a top-level object, after its value was
 * scanned, in text order (a name given twice comes twice). */
typedef void (*jscan_member_fn)(struct jscan *js,
    const struct jscan_member *m);

struct jscan {
	/* Set by the caller (jscan_init sets all but these to zero). */
	unsigned flags;
	int max_depth;             /* 1..JSCAN_MAX_DEPTH: arrays and objects */
	char *out;                 /* JSCAN_COMPACT: the caller's, >= n bytes */
	jscan_member_fn member;    /* NULL: none */
	void *arg;                 /* the callback's */

	/* Results. */
	size_t at;                 /* where the error is (0 on success) */
	size_t out_len;            /* JSCAN_COMPACT: bytes written to out */
	int top;                   /* the value's first byte ('{', '"', ...) */
	int lone_surrogate;        /* a lone surrogate escape was seen */
	int key_escape;            /* JSCAN_KEYS: a member name has an escape */
	int key_nul;               /* a member name (any depth) may hold a
	                            * \u0000 escape (never missed; an
	                            * escaped backslash before "u0000" also
	                            * sets it) */
	int dup_key;               /* JSCAN_KEYS: a name came twice in one
	                            * object, or too many to tell */

	/* Private. */
	const unsigned char *s;
	size_t n, i, mark, ws;
	int depth;
	unsigned nkeys;
	unsigned char stack[JSCAN_MAX_DEPTH / 8];
};

/*
 * Check text[0..n) (borrowed; need not end in a NUL; NUL bytes in it are
 * refused like any control byte) with the settings in js, which must have
 * been set up with jscan_init().  Returns JSCAN_OK, or what was wrong
 * first with its offset in js->at.  Allocates nothing but, for a number
 * token longer than 127 bytes that might overflow a double, a copy of it.
 */
enum jscan_error jscan_text(struct jscan *js, const char *text, size_t n);

/* Set js up: flags, a depth limit, everything else zero. */
void jscan_init(struct jscan *js, unsigned flags, int max_depth);

/* A phrase for an error, static. */
const char *jscan_what(enum jscan_error e);

#endif /* CMDHOST_JSCAN_H */
