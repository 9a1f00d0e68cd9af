/*
 * request.c - the request line parser, the field checker and the reply
 * formatter of protocol v1.
 *
 * Replies are formatted by hand around json-c's serialization of the id and
 * body, so that the hot path builds no json-c object of its own.
 */
#include "request.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "jsoncheck.h"

#define SERIALIZE_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

void
request_tokener_reset(struct json_tokener *tok)
{
	json_tokener_reset(tok);
	/* A deprecated field, public in json-c 0.16 (json_tokener.h), that
	 * reset does not clear (found by tests/fuzz/fuzz_jscan_diff). */
	tok->high_surrogate = 0;
}

struct json_tokener *
request_tokener_new(void)
{
	/* json-c counts the request object itself as a level. */
	struct json_tokener *tok = json_tokener_new_ex(REQUEST_MAX_DEPTH + 1);

	if (tok != NULL)
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	return tok;
}

/* What one pass over a request line learned (see line_check). */
struct line_scan {
	size_t digits;   /* the longest run of ASCII digits */
	int big_number;  /* a number that may not fit in a double */
};

/*
 * s[0..n) starts with a backslash inside a string.  Returns how many
 * bytes the escape takes (2, 6, or 12 for a surrogate pair), or 0 if it
 * is a "\u" escape of half a surrogate pair alone: json-c would decode
 * that to bytes that are not UTF-8 (a plugin would see them, and its
 * reply would be refused) or to U+FFFD (an id echoed would not be the
 * one sent, and two such ids would be one).  An escape json-c refuses
 * anyway (bad hex digits, cut short) counts as 2: json-c words it.
 */
static size_t
escape_len(const unsigned char *s, size_t n)
{
	long hi, lo;

	if (n < 6 || s[1] != 'u' || (hi = buf_hex4(s + 2)) < 0)
		return 2;
	if (hi < 0xd800 || hi > 0xdfff)
		return 6;
	if (hi <= 0xdbff && n >= 12 && s[6] == '\\' && s[7] == 'u' &&
	    (lo = buf_hex4(s + 8)) >= 0xdc00 && lo <= 0xdfff)
		return 12;
	return 0;
}

/*
 * One pass over the raw line before json-c sees it: strict UTF-8 (see
 * buf_utf8_seq; json-c's own check looks at byte structure only), no
 * raw control byte inside a string (json-c lets a raw tab through even
 * when strict), no lone surrogate escape (see escape_len), and no
 * "\u0000" in a member name.  Returns
 * the offset of the first bad byte, or n when all is well; *what says
 * what was wrong.  sc gets what the number checks below need: the
 * longest digit run, and whether an exponent of three digits or more
 * appeared (only such a number can overflow a double).
 */
static size_t
line_check(const unsigned char *s, size_t n, struct line_scan *sc,
    const char **what)
{
	size_t i = 0, run = 0, exp_run = 0, len, k;
	int in_str = 0, in_exp = 0, str_nul = 0;

	memset(sc, 0, sizeof(*sc));
	while (i < n) {
		unsigned char c = s[i];

		if (c >= 0x80) {
			run = 0;
			if ((len = buf_utf8_seq(s + i, n - i)) == 0) {
				*what = "malformed utf-8";
				return i;
			}
			i += len;
			continue;
		}
		if (in_str) {
			if (c < 0x20) {
				*what = "a raw control character inside a "
				    "string (escape it)";
				return i;
			}
			if (c == '\\') {
				if ((len = escape_len(s + i, n - i)) == 0) {
					*what = "a lone surrogate escape (half "
					    "of a \\u pair)";
					return i;
				}
				if (len == 6 && memcmp(s + i + 2, "0000", 4) == 0)
					str_nul = 1;
				i += len; /* json-c checks what it escapes */
				continue;
			}
			if (c == '"') {
				in_str = 0;
				/* json-c cuts a member name at a NUL: the
				 * plugin would see another name, which may
				 * be one given later ("\u0000x" and ""). */
				for (k = i + 1; str_nul && k < n &&
				    (s[k] == ' ' || s[k] == '\t' ||
				    s[k] == '\r' || s[k] == '\n'); k++)
					;
				if (str_nul && k < n && s[k] == ':') {
					*what = "a NUL (\\u0000) in a member "
					    "name";
					return i;
				}
			}
			i++;
			continue;
		}
		if (c >= '0' && c <= '9') {
			if (++run > sc->digits)
				sc->digits = run;
			if (in_exp && ++exp_run >= 3)
				sc->big_number = 1;
		} else {
			run = 0;
			in_exp = (c == 'e' || c == 'E' ||
			    ((c == '+' || c == '-') && in_exp && exp_run == 0));
			if (c == 'e' || c == 'E')
				exp_run = 0;
			if (c == '"') {
				in_str = 1;
				str_nul = 0;
			}
		}
		i++;
	}
	/* 309 digits in a row exceed DBL_MAX whatever follows. */
	if (sc->digits >= 300)
		sc->big_number = 1;
	return n;
}

/*
 * json-c clamps an integer that does not fit in 64 bits to the nearest
 * limit, silently.  Find integer tokens (outside strings) in p[0..n)
 * beyond int64 (negative) or uint64 (positive).  Returns 1 if one is there.
 */
static int
has_huge_integer(const char *p, size_t n)
{
	static const char max_neg[] = "9223372036854775808";
	static const char max_pos[] = "18446744073709551615";

	for (size_t i = 0; i < n; i++) {
		size_t start, digits;
		const char *limit;
		int neg = 0;

		if (p[i] == '"') {
			/* Skip the string, escapes included. */
			for (i++; i < n && p[i] != '"'; i++)
				if (p[i] == '\\')
					i++;
			continue;
		}
		if (p[i] == '-' && i + 1 < n && p[i + 1] >= '0' &&
		    p[i + 1] <= '9') {
			neg = 1;
			i++;
		} else if (p[i] < '0' || p[i] > '9') {
			continue;
		}
		start = i;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
		digits = i - start;
		if (i < n && (p[i] == '.' || p[i] == 'e' || p[i] == 'E')) {
			/* A double: json-c keeps its text; skip the rest. */
			while (i < n && ((p[i] >= '0' && p[i] <= '9') ||
			    p[i] == '.' || p[i] == 'e' || p[i] == 'E' ||
			    p[i] == '+' || p[i] == '-'))
				i++;
			i--;
			continue;
		}
		limit = neg ? max_neg : max_pos;
		if (digits > strlen(limit) || (digits == strlen(limit) &&
		    memcmp(p + start, limit, digits) > 0))
			return 1;
		i--;
	}
	return 0;
}

/*
 * json-c accepts the non-JSON tokens NaN, Infinity and -Infinity even when
 * strict, and reads a number beyond the range of a double (1e400) as an
 * infinity without a word.  1 if v holds a number that is not finite
 * anywhere.
 */
static int
has_non_finite(struct json_object *v, int depth)
{
	if (depth > REQUEST_MAX_DEPTH + 1)
		return 0;
	switch (json_object_get_type(v)) {
	case json_type_double:
		return !isfinite(json_object_get_double(v));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (has_non_finite(json_object_array_get_idx(v, i),
			    depth + 1))
				return 1;
		return 0;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			(void)key;
			if (has_non_finite(val, depth + 1))
				return 1;
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* 1 if the integer id is where json-c puts an integer it clamped. */
static int
id_may_be_clamped(struct json_object *id)
{
	return json_object_is_type(id, json_type_int) &&
	    (json_object_get_int64(id) == INT64_MIN ||
	    json_object_get_uint64(id) == UINT64_MAX);
}

/* 1 if the string v holds a NUL byte (json-c keeps "\u0000" as one). */
static int
has_nul(struct json_object *v)
{
	return strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v);
}

void
request_fini(struct request *req)
{
	if (req->root != NULL)
		json_object_put(req->root);
	if (req->scanned && req->id != NULL)
		json_object_put(req->id);
	req->root = req->id = req->payload = NULL;
	req->command = req->idem_key = req->payload_text = req->id_text = NULL;
	req->scanned = 0;
}

const char *
request_echo_id(const struct request *req)
{
	if (req->id_text != NULL)
		return req->id_text;
	return req->id != NULL ? request_id_text(req->id) : NULL;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
request_parse(struct json_tokener *tok, const char *line, size_t len,
    struct request *req, char *err, size_t errlen)
{
	static const char nul = '\0';
	struct json_object *root, *v;
	struct line_scan sc;
	enum json_tokener_error jerr;

	memset(req, 0, offsetof(struct request, id_buf));
	while (len > 0 && is_space(line[len - 1]))
		len--;
	{
		const char *what = NULL;
		size_t bad = line_check((const unsigned char *)line, len, &sc,
		    &what);

		if (bad < len) {
			snprintf(err, errlen, "invalid JSON: %s at offset %zu",
			    what, bad);
			return -1;
		}
	}
	request_tokener_reset(tok);
	root = json_tokener_parse_ex(tok, line, (int)len);
	jerr = json_tokener_get_error(tok);
	if (root == NULL && jerr == json_tokener_continue) {
		/* A bare scalar ("12") needs an end marker to complete. */
		root = json_tokener_parse_ex(tok, &nul, 1);
		jerr = json_tokener_get_error(tok);
		if (jerr == json_tokener_continue) {
			snprintf(err, errlen, "incomplete JSON");
			return -1;
		}
	} else if (jerr == json_tokener_success &&
	    json_tokener_get_parse_end(tok) < len) {
		if (root != NULL)
			json_object_put(root);
		snprintf(err, errlen, "invalid JSON: unexpected text after "
		    "the object at offset %zu", json_tokener_get_parse_end(tok));
		return -1;
	}
	if (jerr != json_tokener_success) {
		if (root != NULL)
			json_object_put(root);
		snprintf(err, errlen, "invalid JSON: %s at offset %zu",
		    json_tokener_error_desc(jerr),
		    json_tokener_get_parse_end(tok));
		return -1;
	}
	if (!json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		snprintf(err, errlen, "a request must be a JSON object");
		return -1;
	}
	req->root = root;

	if (json_object_object_get_ex(root, "id", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_string) &&
		    !json_object_is_type(v, json_type_int)) {
			snprintf(err, errlen, "\"id\" must be a string or an "
			    "integer");
			return -1;
		}
		req->id = v;
	}
	/* Only a line with 20 digits in a row can hold such an integer.  The
	 * reply must not echo an id json-c clamped (it could be another
	 * client's): such an id is answered as null. */
	if (sc.digits >= 19 && has_huge_integer(line, len)) {
		if (req->id != NULL && id_may_be_clamped(req->id))
			req->id = NULL;
		snprintf(err, errlen, "an integer does not fit in 64 bits (send "
		    "it as a string, or as a number with a fraction or "
		    "exponent)");
		return -1;
	}
	/* Cheap filter first: only lines that spell the tokens, or hold a
	 * number that could overflow, are walked. */
	if ((sc.big_number || (memchr(line, 'N', len) != NULL &&
	    memmem(line, len, "NaN", 3) != NULL) ||
	    (memchr(line, 'I', len) != NULL &&
	    memmem(line, len, "Infinity", 8) != NULL)) &&
	    has_non_finite(root, 0)) {
		snprintf(err, errlen, "invalid JSON: NaN, Infinity and numbers "
		    "beyond the range of a double (such as 1e400) are not "
		    "accepted");
		return -1;
	}
	if (req->id != NULL && json_object_is_type(req->id, json_type_string) &&
	    has_nul(req->id)) {
		snprintf(err, errlen, "\"id\" must not contain a NUL "
		    "(\\u0000)");
		return -1;
	}
	if (!json_object_object_get_ex(root, "command", &v) || v == NULL)
		json_object_object_get_ex(root, "commandType", &v);
	if (v == NULL) {
		snprintf(err, errlen, "\"command\" is missing");
		return -1;
	}
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "\"command\" must be a string");
		return -1;
	}
	if (has_nul(v)) {
		snprintf(err, errlen, "\"command\" must not contain a NUL "
		    "(\\u0000)");
		return -1;
	}
	req->command = json_object_get_string(v);
	if (json_object_object_get_ex(root, "timeout_ms", &v) && v != NULL) {
		int64_t t;

		if (!json_object_is_type(v, json_type_int) ||
		    (t = json_object_get_int64(v)) <= 0 || t > 86400000) {
			snprintf(err, errlen, "\"timeout_ms\" must be an integer "
			    "from 1 to 86400000");
			return -1;
		}
		req->timeout_ms = t;
	}
	if (json_object_object_get_ex(root, "async", &v) &&
	    json_object_is_type(v, json_type_boolean))
		req->async = json_object_get_boolean(v);
	if (json_object_object_get_ex(root, "want_request_id", &v) &&
	    v != NULL) {
		if (!json_object_is_type(v, json_type_boolean)) {
			snprintf(err, errlen, "\"want_request_id\" must be true "
			    "or false");
			return -1;
		}
		req->want_request_id = json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(root, "idempotency_key", &v) &&
	    v != NULL) {
		size_t n;

		if (!json_object_is_type(v, json_type_string) ||
		    (n = (size_t)json_object_get_string_len(v)) == 0 ||
		    n > REQUEST_MAX_IDEM_KEY) {
			snprintf(err, errlen, "\"idempotency_key\" must be a "
			    "string of 1 to %d bytes", REQUEST_MAX_IDEM_KEY);
			return -1;
		}
		req->idem_key = json_object_get_string(v);
		req->idem_key_len = n;
	}
	if (!json_object_object_get_ex(root, "payload", &v) || v == NULL) {
		/* Absent or null: an empty object, owned by root. */
		v = json_object_new_object();
		if (v == NULL ||
		    json_object_object_add(root, "payload", v) != 0) {
			json_object_put(v);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	req->payload = v;
	return 0;
}

const char *
request_type_name(int type)
{
	switch (type) {
	case CMDHOST_STRING:
		return "string";
	case CMDHOST_NUMBER:
		return "number";
	case CMDHOST_INTEGER:
		return "integer";
	case CMDHOST_BOOLEAN:
		return "boolean";
	case CMDHOST_OBJECT:
		return "object";
	case CMDHOST_ARRAY:
		return "array";
	default:
		return "any";
	}
}

const char *
request_json_type_label(enum json_type t)
{
	switch (t) {
	case json_type_string:
		return "a string";
	case json_type_int:
		return "an integer";
	case json_type_double:
		return "a number";
	case json_type_boolean:
		return "a boolean";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	default:
		return "null";
	}
}

int
request_type_matches(int type, enum json_type t)
{
	switch (type) {
	case CMDHOST_STRING:
		return t == json_type_string;
	case CMDHOST_NUMBER:
		return t == json_type_int || t == json_type_double;
	case CMDHOST_INTEGER:
		return t == json_type_int;
	case CMDHOST_BOOLEAN:
		return t == json_type_boolean;
	case CMDHOST_OBJECT:
		return t == json_type_object;
	case CMDHOST_ARRAY:
		return t == json_type_array;
	default:
		return 1;
	}
}

int
request_check_fields(const cmdhost_field *fields, struct json_object *payload,
    char *err, size_t errlen)
{
	if (fields == NULL || fields[0].name == NULL)
		return 0;
	if (!json_object_is_type(payload, json_type_object)) {
		snprintf(err, errlen, "payload must be an object, got %s",
		    request_json_type_label(json_object_get_type(payload)));
		return -1;
	}
	for (const cmdhost_field *f = fields; f->name != NULL; f++) {
		struct json_object *v = NULL;

		json_object_object_get_ex(payload, f->name, &v);
		if (v == NULL) {
			if (!f->required)
				continue;
			snprintf(err, errlen, "field '%s' is required", f->name);
			return -1;
		}
		if (!request_type_matches(f->type, json_object_get_type(v))) {
			snprintf(err, errlen, "field '%s' must be %s %s, got %s",
			    f->name, f->type == CMDHOST_INTEGER ? "an" : "a",
			    request_type_name(f->type),
			    request_json_type_label(json_object_get_type(v)));
			return -1;
		}
	}
	return 0;
}

const char *
request_id_text(struct json_object *id)
{
	return id == NULL ? NULL : json_object_to_json_string_ext(id,
	    SERIALIZE_FLAGS);
}

const char *
request_id_format(struct json_object *id, char *buf, size_t size)
{
	const char *s;
	size_t n = 0;

	if (json_object_is_type(id, json_type_int)) {
		int64_t v = json_object_get_int64(id);
		uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
		char tmp[24], *p = tmp + sizeof(tmp);

		/* A uint64 beyond int64 reads back as INT64_MAX: json-c's. */
		if (v == INT64_MAX && json_object_get_uint64(id) > INT64_MAX)
			return NULL;
		do {
			*--p = (char)('0' + u % 10);
			u /= 10;
		} while (u != 0);
		if (v < 0)
			*--p = '-';
		n = (size_t)(tmp + sizeof(tmp) - p);
		if (n >= size)
			return NULL;
		memcpy(buf, p, n);
		buf[n] = '\0';
		return buf;
	}
	if (size < 3)
		return NULL;
	buf[n++] = '"';
	for (s = json_object_get_string(id); *s != '\0'; s++) {
		char e[6];
		size_t elen = buf_json_escape((unsigned char)*s, e);

		if (elen == 0) {
			e[0] = *s;
			elen = 1;
		}
		if (n + elen + 2 > size)
			return NULL;
		memcpy(buf + n, e, elen);
		n += elen;
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

int
request_format_ok(struct buf *out, struct json_object *id, int status,
    struct json_object *body)
{
	return request_format_ok_text(out, request_id_text(id), status, body);
}

int
request_format_error(struct buf *out, struct json_object *id, int status,
    const char *code, const char *message)
{
	return request_format_error_text(out, request_id_text(id), status,
	    code, message);
}

/* A status code (100..999) as three digits. */
static void
status_digits(char num[3], int status)
{
	if (status < 100 || status > 999)
		status = 500;
	num[0] = (char)('0' + status / 100);
	num[1] = (char)('0' + status / 10 % 10);
	num[2] = (char)('0' + status % 10);
}

/* A reply's head is {"id":ID,"status":NNN: HEAD_FIXED bytes and the
 * id's JSON text (borrowed; NULL writes null), id_len(id) bytes. */
#define HEAD_FIXED (6 + 10 + 3)

static size_t
id_len(const char *id)
{
	return id != NULL ? strlen(id) : 4;
}

/* Write the head at p, room for it made; returns its end. */
static char *
write_head(char *p, const char *id, size_t idn, int status)
{
	memcpy(p, "{\"id\":", 6);
	memcpy(p += 6, id != NULL ? id : "null", idn);
	memcpy(p += idn, ",\"status\":", 10);
	status_digits(p += 10, status);
	return p + 3;
}

/* Append the head to out.  Returns 0 or -ENOMEM (out unchanged). */
static int
put_head(struct buf *out, const char *id, int status)
{
	size_t idn = id_len(id);

	if (buf_reserve(out, HEAD_FIXED + idn) < 0)
		return -ENOMEM;
	write_head(out->data + out->len, id, idn, status);
	out->len += HEAD_FIXED + idn;
	return 0;
}

/*
 * The JSON text of body (borrowed; NULL is null) into *text and *len,
 * borrowed from body (json-c keeps it until body is serialized again or
 * freed).  Returns 0, -ENOMEM, or -EILSEQ when the text is not strict
 * JSON (see jsoncheck.h): then *bad and *e say where and what.
 */
static int
body_text(struct json_object *body, const char **text, size_t *len,
    size_t *bad, enum jsoncheck_error *e)
{
	*text = "null";
	*len = 4;
	*e = JSONCHECK_OK;
	if (body == NULL)
		return 0;
	if ((*text = json_object_to_json_string_length(body, SERIALIZE_FLAGS,
	    len)) == NULL)
		return -ENOMEM;
	if ((*e = jsoncheck_text(*text, *len, bad)) == JSONCHECK_OK)
		return 0;
	return *e == JSONCHECK_NOMEM ? -ENOMEM : -EILSEQ;
}

static void
bad_body_message(char *err, size_t errlen, enum jsoncheck_error e,
    size_t bad)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s at byte %zu of the body",
		    jsoncheck_what(e), bad);
}

int
request_format_body(struct buf *out, const char *id, int status,
    struct json_object *body, char *err, size_t errlen)
{
	size_t blen, bad = 0;
	const char *btext;
	enum jsoncheck_error e;
	int rc;

	if ((rc = body_text(body, &btext, &blen, &bad, &e)) < 0) {
		if (rc == -EILSEQ)
			bad_body_message(err, errlen, e, bad);
		return rc;
	}
	return request_format_checked(out, id, status, btext, blen);
}

int
request_format_checked(struct buf *out, const char *id, int status,
    const char *text, size_t len)
{
	size_t idn = id_len(id), total = HEAD_FIXED + idn + 8 + len + 2;
	char *p;

	/* One reservation, then the pieces in place: every 2xx reply comes
	 * here. */
	if (buf_reserve(out, total) < 0)
		return -ENOMEM;
	p = write_head(out->data + out->len, id, idn, status);
	memcpy(p, ",\"body\":", 8);
	if (len > 0)
		memcpy(p + 8, text, len);
	memcpy(p + 8 + len, "}\n", 2);
	out->len += total;
	return 0;
}

int
request_format_ok_text(struct buf *out, const char *id, int status,
    struct json_object *body)
{
	size_t mark = buf_size(out), blen, bad = 0, at;
	const char *btext;
	enum jsoncheck_error e;
	char err[160];
	int rc;

	rc = request_format_body(out, id, status, body, err, sizeof(err));
	if (rc != -EILSEQ)
		return rc;
	/* A body the host made from names a plugin chose: bytes that are
	 * not UTF-8 (json-c writes them only inside strings) become
	 * U+FFFD; anything else cannot go out at all. */
	if (body_text(body, &btext, &blen, &bad, &e) == -EILSEQ &&
	    e == JSONCHECK_UTF8) {
		if (put_head(out, id, status) < 0 ||
		    buf_put(out, ",\"body\":", 8) < 0 ||
		    buf_reserve(out, 3 * blen + 2) < 0)
			goto oom;
		at = out->len;
		out->len += jsoncheck_repair_utf8(btext, blen, out->data + at);
		if (jsoncheck_text(out->data + at, out->len - at, NULL) ==
		    JSONCHECK_OK) {
			if (buf_put(out, "}\n", 2) < 0)
				goto oom;
			return 0;
		}
		out->len = out->start + mark;
	}
	return request_format_error_text(out, id, 500, "bad_reply", err);
oom:
	out->len = out->start + mark;
	return -ENOMEM;
}

int
request_format_error_text(struct buf *out, const char *id, int status,
    const char *code, const char *message)
{
	size_t mark = buf_size(out);

	if (put_head(out, id, status) < 0 ||
	    buf_puts(out, ",\"error\":{\"code\":") < 0 ||
	    buf_put_json_string(out, code) < 0 ||
	    buf_puts(out, ",\"message\":") < 0 ||
	    buf_put_json_string(out, message) < 0 ||
	    buf_put(out, "}}\n", 3) < 0) {
		out->len = out->start + mark;
		return -ENOMEM;
	}
	return 0;
}

int
request_format_member(struct buf *out, int status, struct json_object *body,
    const char *code, const char *message)
{
	size_t mark = buf_size(out), blen, bad;
	const char *btext;
	enum jsoncheck_error e;
	int rc;

	if (status >= 200 && status < 300) {
		if ((rc = body_text(body, &btext, &blen, &bad, &e)) < 0)
			return rc;
		if (buf_put(out, btext, blen) < 0)
			goto oom;
		return 0;
	}
	if (buf_puts(out, "{\"code\":") < 0 ||
	    buf_put_json_string(out, code) < 0 ||
	    buf_puts(out, ",\"message\":") < 0 ||
	    buf_put_json_string(out, message) < 0 || buf_put(out, "}", 1) < 0)
		goto oom;
	return 0;
oom:
	out->len = out->start + mark;
	return -ENOMEM;
}

int
request_format_stored(struct buf *out, const char *id, int status,
    const char *text, size_t len)
{
	size_t mark = buf_size(out);

	/* Stored by this daemon's encoder, or by another daemon's in a
	 * shared bucket that anyone allowed to write it could change. */
	if (text != NULL && jsoncheck_text(text, len, NULL) != JSONCHECK_OK)
		return -EILSEQ;
	if (put_head(out, id, status) < 0 ||
	    buf_puts(out, status < 300 ? ",\"body\":" : ",\"error\":") < 0 ||
	    buf_put(out, text != NULL ? text : "null", text != NULL ? len :
	    4) < 0 || buf_puts(out, ",\"replayed\":true}\n") < 0) {
		out->len = out->start + mark;
		return -ENOMEM;
	}
	return 0;
}

void
request_id_make(char out[REQUEST_ID_LEN + 1], int64_t unix_ms,
    unsigned source, uint64_t seq)
{
	static const char hex[] = "0123456789abcdef";
	/* The time and source digits change once a millisecond at most: a
	 * thread keeps the last ones it wrote. */
	static __thread char prefix[13];
	static __thread uint64_t prefix_of = UINT64_MAX;
	uint64_t key = ((uint64_t)unix_ms << 8) | (source & 0xff);

	if (key != prefix_of) {
		uint64_t ms = (uint64_t)unix_ms;

		for (int i = 10; i >= 0; i--, ms >>= 4)
			prefix[i] = hex[ms & 0xf];
		prefix[11] = hex[(source >> 4) & 0xf];
		prefix[12] = hex[source & 0xf];
		prefix_of = key;
	}
	memcpy(out, prefix, sizeof(prefix));
	for (int i = 19; i >= 13; i--, seq >>= 4)
		out[i] = hex[seq & 0xf];
	out[REQUEST_ID_LEN] = '\0';
}

int
request_put_request_id(struct buf *out, const char *rid)
{
	size_t len = buf_size(out);

	/* Replies end in "}\n": reopen the object. */
	if (len < 2 || memcmp(buf_head(out) + len - 2, "}\n", 2) != 0)
		return -EINVAL;
	out->len -= 2;
	if (buf_puts(out, ",\"request_id\":") < 0 ||
	    buf_put_json_string(out, rid) < 0 || buf_put(out, "}\n", 2) < 0)
		return -ENOMEM;
	return 0;
}

/* ------------------------------------------------------------ fingerprint */

/* Two FNV-1a streams with different bases; mixed at the end. */
struct fp_state {
	uint64_t a, b;
};

static void
fp_bytes(struct fp_state *st, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++) {
		st->a = (st->a ^ c[i]) * 1099511628211ULL;
		st->b = (st->b ^ c[i]) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
	}
}

/* A tag and a length before every value keep "ab"+"c" apart from
 * "a"+"bc". */
static void
fp_tagged(struct fp_state *st, char tag, const void *p, size_t n)
{
	uint64_t len = n;

	fp_bytes(st, &tag, 1);
	fp_bytes(st, &len, sizeof(len));
	fp_bytes(st, p, n);
}

static int
key_cmp(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static void
fp_value(struct fp_state *st, struct json_object *v)
{
	char num[40];
	int n;

	switch (json_object_get_type(v)) {
	case json_type_null:
		fp_tagged(st, 'n', NULL, 0);
		break;
	case json_type_boolean:
		fp_tagged(st, json_object_get_boolean(v) ? 't' : 'f', NULL, 0);
		break;
	case json_type_int:
		n = snprintf(num, sizeof(num), "%lld",
		    (long long)json_object_get_int64(v));
		fp_tagged(st, 'i', num, (size_t)n);
		break;
	case json_type_double:
		n = snprintf(num, sizeof(num), "%.17g",
		    json_object_get_double(v));
		fp_tagged(st, 'd', num, (size_t)n);
		break;
	case json_type_string:
		fp_tagged(st, 's', json_object_get_string(v),
		    (size_t)json_object_get_string_len(v));
		break;
	case json_type_array: {
		size_t len = json_object_array_length(v);

		fp_tagged(st, '[', &len, sizeof(len));
		for (size_t i = 0; i < len; i++)
			fp_value(st, json_object_array_get_idx(v, i));
		break;
	}
	case json_type_object: {
		size_t len = (size_t)json_object_object_length(v), i = 0;
		const char *stack[32], **keys = stack;

		if (len > 32 && (keys = malloc(len * sizeof(*keys))) == NULL) {
			/* Out of memory: hash in json-c's order (a retry
			 * with reordered members then mismatches). */
			keys = NULL;
		}
		fp_tagged(st, '{', &len, sizeof(len));
		if (keys == NULL) {
			json_object_object_foreach(v, k, val) {
				fp_tagged(st, 'k', k, strlen(k));
				fp_value(st, val);
			}
			break;
		}
		json_object_object_foreach(v, k, val) {
			(void)val;
			keys[i++] = k;
		}
		qsort(keys, len, sizeof(*keys), key_cmp);
		for (i = 0; i < len; i++) {
			fp_tagged(st, 'k', keys[i], strlen(keys[i]));
			fp_value(st, json_object_object_get(v, keys[i]));
		}
		if (keys != stack)
			free(keys);
		break;
	}
	}
}

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

void
request_fingerprint(const char *command, struct json_object *payload,
    uint64_t fp[2])
{
	struct fp_state st = { 1469598103934665603ULL, 0x6c62272e07bb0142ULL };

	fp_tagged(&st, 'c', command, strlen(command));
	fp_value(&st, payload);
	fp[0] = mix(st.a ^ (st.b << 1));
	fp[1] = mix(st.b ^ (st.a >> 1));
}

void
request_key_digest(const char *scope, const char *command, const char *key,
    size_t len, char out[REQUEST_KEY_DIGEST_LEN + 1])
{
	/* Other bases than the fingerprint's: the two never meet anyway. */
	struct fp_state st = { 0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL };

	fp_tagged(&st, 's', scope, strlen(scope));
	fp_tagged(&st, 'c', command, strlen(command));
	fp_tagged(&st, 'k', key, len);
	snprintf(out, REQUEST_KEY_DIGEST_LEN + 1, "%016llx%016llx",
	    (unsigned long long)mix(st.a ^ (st.b << 1)),
	    (unsigned long long)mix(st.b ^ (st.a >> 1)));
}
