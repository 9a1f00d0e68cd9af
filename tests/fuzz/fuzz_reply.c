/*
 * fuzz_reply.c - libFuzzer harness for the reply encoder: the input is a
 * little program that builds a json-c tree the way a plugin could (any
 * double bits, NaN and infinities included, strings and keys of any
 * bytes, a double with its own text, nesting) and a plugin result (a
 * status, an error code and message of any bytes).  Every line the
 * encoder writes must be one strict JSON object and valid UTF-8, by a
 * check written here independently of jsoncheck.c; a body it refuses
 * must really be unfit, and a body built only of clean parts must never
 * be refused.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	const uint8_t *p;
	size_t n;
	int clean;   /* no part the encoder may refuse */
};

static int
take(struct input *in, void *out, size_t len)
{
	if (in->n < len) {
		memset(out, 0, len);
		in->n = 0;
		return -1;
	}
	memcpy(out, in->p, len);
	in->p += len;
	in->n -= len;
	return 0;
}

static uint8_t
byte(struct input *in)
{
	uint8_t b = 0;

	take(in, &b, 1);
	return b;
}

/* An independent strict UTF-8 decoder: 1 if s[0..n) is all valid. */
static int
utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned long cp;
		int k, need;

		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc0 && s[i] < 0xe0) {
			need = 1;
			cp = s[i] & 0x1f;
		} else if (s[i] >= 0xe0 && s[i] < 0xf0) {
			need = 2;
			cp = s[i] & 0x0f;
		} else if (s[i] >= 0xf0 && s[i] < 0xf8) {
			need = 3;
			cp = s[i] & 0x07;
		} else {
			return 0;
		}
		if (i + (size_t)need >= n)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) ||
		    (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += (size_t)need + 1;
	}
	return 1;
}

/* Up to 32 raw bytes from the input, NUL-terminated, into buf[33]. */
static size_t
bytes(struct input *in, char *buf)
{
	size_t len = byte(in) % 33;

	take(in, buf, len);
	buf[len] = '\0';
	return len;
}

static struct json_object *
build(struct input *in, int depth)
{
	uint8_t op = byte(in);
	struct json_object *o;
	char s[33], key[33];
	double d;
	int64_t i;
	size_t len, n;

	if (depth > 40)
		op = 0;
	switch (op % 9) {
	case 0:
		return NULL;
	case 1:
		return json_object_new_boolean(op & 0x10);
	case 2:
		take(in, &i, sizeof(i));
		return json_object_new_int64(i);
	case 3:
		take(in, &d, sizeof(d));
		if (!isfinite(d))
			in->clean = 0;
		return json_object_new_double(d);
	case 4:
		len = bytes(in, s);
		if (!utf8_ok((unsigned char *)s, len))
			in->clean = 0;
		/* With its NULs: json-c writes them as \u0000. */
		return json_object_new_string_len(s, (int)len);
	case 5:
		o = json_object_new_object();
		n = byte(in) % 5;
		while (n-- > 0 && in->n > 0) {
			len = bytes(in, key);
			if (strlen(key) != len)
				continue; /* a key is a C string */
			if (!utf8_ok((unsigned char *)key, len))
				in->clean = 0;
			json_object_object_add(o, key, build(in, depth + 1));
		}
		return o;
	case 6:
		o = json_object_new_array();
		n = byte(in) % 5;
		while (n-- > 0 && in->n > 0)
			json_object_array_add(o, build(in, depth + 1));
		return o;
	case 7:
		/* A double with text of its own: anything at all. */
		bytes(in, s);
		in->clean = 0;
		return json_object_new_double_s(1.0, s);
	default:
		take(in, &i, sizeof(i));
		return json_object_new_uint64((uint64_t)i);
	}
}

/* 1 if every number in v is finite. */
static int
finite_tree(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_double:
		return isfinite(json_object_get_double(v));
	case json_type_array:
		for (size_t k = 0; k < json_object_array_length(v); k++)
			if (!finite_tree(json_object_array_get_idx(v, k)))
				return 0;
		return 1;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			(void)key;
			if (!finite_tree(val))
				return 0;
		}
		return 1;
	}
	default:
		return 1;
	}
}

/* Abort unless out[from..] is one line: a strict JSON object with an
 * integer "status", valid UTF-8, no control byte but the final '\n'. */
static void
check_line(const struct buf *out, size_t from)
{
	const char *p = buf_head(out) + from;
	size_t n = buf_size(out) - from;
	struct json_tokener *tok;
	struct json_object *o, *st;

	if (n < 2 || p[n - 1] != '\n')
		abort();
	for (size_t k = 0; k + 1 < n; k++)
		if ((unsigned char)p[k] < 0x20)
			abort();
	if (!utf8_ok((const unsigned char *)p, n - 1))
		abort();
	if ((tok = json_tokener_new_ex(200)) == NULL)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, p, (int)(n - 1));
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != n - 1 ||
	    !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "status", &st) ||
	    !json_object_is_type(st, json_type_int) || !finite_tree(o))
		abort();
	json_object_put(o);
	json_tokener_free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 1 };
	struct buf out = BUF_INIT;
	struct json_object *body;
	char code[33], msg[33], why[160];
	int status, rc;
	size_t mark;

	status = 100 + byte(&in) * 4 % 900;
	bytes(&in, code);
	bytes(&in, msg);
	body = build(&in, 0);

	/* A plugin's body: written as it is, or refused with a reason. */
	rc = request_format_body(&out, "\"id\"", 200, body, why, sizeof(why));
	if (rc == 0) {
		check_line(&out, 0);
	} else if (rc == -EILSEQ) {
		if (in.clean)
			abort(); /* a clean body must go out */
		if (buf_size(&out) != 0 || why[0] == '\0')
			abort();
		/* What dispatch then sends. */
		if (request_format_error_text(&out, "\"id\"", 500, "bad_reply",
		    why) < 0)
			abort();
		check_line(&out, 0);
	} else if (rc != -ENOMEM) {
		abort();
	}
	/* The same body from the host: always a line, repaired or 500. */
	mark = buf_size(&out);
	if (request_format_ok_text(&out, NULL, status, body) == 0)
		check_line(&out, mark);
	/* A plugin's error code and message, any bytes. */
	mark = buf_size(&out);
	if (request_format_error_text(&out, "1", status, code, msg) == 0)
		check_line(&out, mark);
	/* What an idempotency key stores, replayed. */
	{
		struct buf member = BUF_INIT;

		if (request_format_member(&member, 200, body, code, msg) == 0) {
			mark = buf_size(&out);
			if (request_format_stored(&out, "2", 200,
			    buf_head(&member), buf_size(&member)) == 0)
				check_line(&out, mark);
		}
		buf_free(&member);
	}
	json_object_put(body);
	buf_free(&out);
	return 0;
}
