/*
 * jsoncheck.h - is this text one strict JSON value that fits on a reply
 * line?  The last check on everything the daemon writes that a plugin
 * (or a name a plugin chose) could have shaped.
 *
 * Strict means RFC 8259 and a little more: strict UTF-8 (no overlong
 * forms, no surrogates, nothing past U+10FFFF; no lone surrogate escape
 * either), no NaN or Infinity, no number that overflows a double, no
 * integer beyond 64 bits (what the request parser refuses, a reply never
 * holds), and no raw control byte anywhere, not even a tab or a line
 * break between tokens: the only whitespace allowed is a space.  Nothing here
 * allocates for ordinary text or logs.
 */
#ifndef CMDHOST_JSONCHECK_H
#define CMDHOST_JSONCHECK_H

#include <stddef.h>

/* The deepest nesting jsoncheck_text() follows; deeper text is refused. */
#define JSONCHECK_MAX_DEPTH 4096

/* What jsoncheck_text() found wrong first. */
enum jsoncheck_error {
	JSONCHECK_OK = 0,
	JSONCHECK_UTF8,       /* a byte that is not strict UTF-8 */
	JSONCHECK_SYNTAX,     /* not JSON */
	JSONCHECK_NONFINITE,  /* a NaN or (-)Infinity token */
	JSONCHECK_CONTROL,    /* a raw control byte (line break, ...) */
	JSONCHECK_NUMBER,     /* out of a double's range, or > 64 bits */
	JSONCHECK_DEPTH,      /* nested past JSONCHECK_MAX_DEPTH */
	JSONCHECK_NOMEM
};

/*
 * Check that text[0..n) (borrowed; need not end in a NUL) is exactly one
 * strict JSON value, as above.  Returns JSONCHECK_OK, or what was wrong
 * first with its byte offset in *bad (may be NULL).
 */
enum jsoncheck_error jsoncheck_text(const char *text, size_t n, size_t *bad);

/* A phrase for an error ("invalid UTF-8", ...), static. */
const char *jsoncheck_what(enum jsoncheck_error e);

/*
 * Copy text[0..n) to out (the caller's, at least 3 * n bytes) with every
 * byte that does not begin a strict UTF-8 sequence replaced by U+FFFD
 * (EF BF BD).  Returns the length written.  For text made by the host
 * from names a plugin chose: json-c only ever writes such bytes inside
 * strings, where the replacement keeps the text JSON.
 */
size_t jsoncheck_repair_utf8(const char *text, size_t n, char *out);

#endif /* CMDHOST_JSONCHECK_H */
