/*
 * buf.c - growable byte buffer.
 */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
buf_reserve(struct buf *b, size_t n)
{
	size_t live = b->len - b->start, cap;
	char *p;

	if (b->cap - b->len >= n)
		return 0;
	/* Reclaim consumed space first when that is enough and cheap: moving
	 * no more than was consumed keeps appends amortized O(1). */
	if (b->start >= live && b->cap - live >= n) {
		memmove(b->data, b->data + b->start, live);
		b->start = 0;
		b->len = live;
		return 0;
	}
	cap = b->cap ? b->cap : 512;
	while (cap - live < n) {
		if (cap > ((size_t)-1) / 2)
			return -ENOMEM;
		cap *= 2;
	}
	if (b->start > 0) {
		memmove(b->data, b->data + b->start, live);
		b->start = 0;
		b->len = live;
	}
	p = realloc(b->data, cap);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int
buf_put(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) < 0)
		return -ENOMEM;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_put(b, s, strlen(s));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if (buf_reserve(b, (size_t)n + 1) < 0)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

size_t
buf_json_escape(unsigned char c, char e[6])
{
	static const char hex[] = "0123456789abcdef";

	if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
		return 0;
	e[0] = '\\';
	switch (c) {
	case '"':
	case '\\':
		e[1] = (char)c;
		return 2;
	case '\n':
		e[1] = 'n';
		return 2;
	case '\t':
		e[1] = 't';
		return 2;
	case '\r':
		e[1] = 'r';
		return 2;
	default:
		e[1] = 'u';
		e[2] = '0';
		e[3] = '0';
		e[4] = hex[c >> 4];
		e[5] = hex[c & 15];
		return 6;
	}
}

int
buf_put_json_string(struct buf *b, const char *s)
{
	const char *run = s;

	if (buf_put(b, "\"", 1) < 0)
		return -ENOMEM;
	while (*s != '\0') {
		const unsigned char *u = (const unsigned char *)s;
		char e[6];
		size_t elen, adv = 1;

		if (*u >= 0x80) {
			/* A strict sequence stands for itself; any other
			 * byte is replaced, so the text stays UTF-8. */
			if ((adv = buf_utf8_seq(u, strnlen(s, 4))) != 0) {
				s += adv;
				continue;
			}
			memcpy(e, "\\ufffd", 6);
			elen = 6;
			adv = 1;
		} else if ((elen = buf_json_escape(*u, e)) == 0) {
			s++;
			continue;
		}
		if (buf_put(b, run, (size_t)(s - run)) < 0 ||
		    buf_put(b, e, elen) < 0)
			return -ENOMEM;
		s += adv;
		run = s;
	}
	if (buf_put(b, run, (size_t)(s - run)) < 0)
		return -ENOMEM;
	return buf_put(b, "\"", 1);
}

void
buf_consume(struct buf *b, size_t n)
{
	b->start += n;
	if (b->start >= b->len)
		b->start = b->len = 0;
}

void
buf_reset(struct buf *b)
{
	b->start = b->len = 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->start = b->len = b->cap = 0;
}

long
buf_hex4(const unsigned char *s)
{
	long v = 0;

	for (int k = 0; k < 4; k++) {
		unsigned char c = s[k];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v |= (c | 0x20) - 'a' + 10;
		else
			return -1;
	}
	return v;
}

size_t
buf_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
	} else {
		return 0;
	}
	if (n <= need || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k <= need; k++)
		if (s[k] < 0x80 || s[k] > 0xbf)
			return 0;
	return need + 1;
}
