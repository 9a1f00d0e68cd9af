/*
 * buf.h - a growable byte buffer for reads, replies and write queues.
 *
 * Bytes are appended at the end and consumed from the front; consumed
 * space is reclaimed lazily.  Nothing here knows about JSON except the
 * string escaper that reply formatting needs.
 */
#ifndef CMDHOST_BUF_H
#define CMDHOST_BUF_H

#include <stddef.h>

struct buf {
	char *data;   /* owned, NULL until the first append */
	size_t start; /* first unconsumed byte */
	size_t len;   /* end of data (data[start..len) is live) */
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0, 0 }

/* Bytes not yet consumed, and where they start. */
static inline size_t buf_size(const struct buf *b) { return b->len - b->start; }
static inline char *buf_head(const struct buf *b) { return b->data + b->start; }

/* Make room for at least `n` more bytes at the end.  Returns 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t n);

/* Append bytes (copied).  Returns 0 or -ENOMEM (then b is unchanged). */
int buf_put(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append s as a quoted JSON string, escaping quotes, backslashes and
 * control bytes; a byte that does not begin a strict UTF-8 sequence (see
 * buf_utf8_seq) becomes \ufffd, so the result is always valid JSON and
 * UTF-8.  Returns 0 or -ENOMEM. */
int buf_put_json_string(struct buf *b, const char *s);

/* The JSON escape of byte c, written to e: its length (2 or 6), or 0 when
 * c stands for itself inside a JSON string. */
size_t buf_json_escape(unsigned char c, char e[6]);

/* Drop n bytes from the front. */
void buf_consume(struct buf *b, size_t n);

/* Forget the content, keep the memory. */
void buf_reset(struct buf *b);

/* Free the memory; b is empty and reusable afterwards. */
void buf_free(struct buf *b);

/* The value (0..0xffff) of the four hex digits at s (4 readable bytes,
 * borrowed), either case, or -1 if they are not four hex digits. */
long buf_hex4(const unsigned char *s);

/* The length (1..4) of the strict UTF-8 sequence (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF) at s, of which n >= 1 bytes
 * may be read, or 0 when it is not one. */
size_t buf_utf8_seq(const unsigned char *s, size_t n);

#endif /* CMDHOST_BUF_H */
