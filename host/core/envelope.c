/*
 * envelope.c - the request envelope read in one strict pass, and the
 * payload's tree and field checks made only when a call needs them (see
 * envelope.h).  It never words a JSON refusal itself when request_parse()
 * can: a refused line is handed to it, so every reason stays as it was.
 */
#include "envelope.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jscan.h"

/* The members the envelope reads. */
enum {
	M_ID, M_COMMAND, M_CTYPE, M_TIMEOUT, M_WANT, M_KEY, M_PAYLOAD, M_ASYNC,
	M_N
};

struct env {
	const char *line;
	struct jscan_member m[M_N];
	unsigned have;     /* bit per member seen with a non-null value */
	int escaped;       /* a top-level name has an escape */
};

static void
on_member(struct jscan *js, const struct jscan_member *m)
{
	struct env *ev = js->arg;
	const char *k = ev->line + m->key + 1;
	size_t n = m->key_len - 2;
	int which = -1;

	if (m->key_escaped) {
		ev->escaped = 1; /* "\u0069d" is "id" to json-c */
		return;
	}
	switch (n) {
	case 2:
		if (memcmp(k, "id", 2) == 0)
			which = M_ID;
		break;
	case 5:
		if (memcmp(k, "async", 5) == 0)
			which = M_ASYNC;
		break;
	case 7:
		if (memcmp(k, "command", 7) == 0)
			which = M_COMMAND;
		else if (memcmp(k, "payload", 7) == 0)
			which = M_PAYLOAD;
		break;
	case 10:
		if (memcmp(k, "timeout_ms", 10) == 0)
			which = M_TIMEOUT;
		break;
	case 11:
		if (memcmp(k, "commandType", 11) == 0)
			which = M_CTYPE;
		break;
	case 15:
		if (memcmp(k, "want_request_id", 15) == 0)
			which = M_WANT;
		else if (memcmp(k, "idempotency_key", 15) == 0)
			which = M_KEY;
		break;
	}
	if (which < 0)
		return;
	/* The last of two wins, as in json-c; null is no member at all. */
	ev->m[which] = *m;
	if (ev->line[m->value] == 'n')
		ev->have &= ~(1u << which);
	else
		ev->have |= 1u << which;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* 1 if the number token p[0..n) is an integer to json-c. */
static int
is_integer(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '.' || p[i] == 'e' || p[i] == 'E')
			return 0;
	return 1;
}

/* The value of the JSON token p[0..n) (borrowed) from json-c: new, or
 * NULL on ENOMEM.  For strings with escapes: json-c's decoding is the
 * one every other path uses. */
static struct json_object *
token_value(struct json_tokener *tok, const char *p, size_t n)
{
	request_tokener_reset(tok);
	return json_tokener_parse_ex(tok, p, (int)n);
}

/* 1 if the string v holds a NUL byte (json-c keeps "\u0000" as one). */
static int
has_nul(struct json_object *v)
{
	return strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v);
}

/* The refusal of a line the scanner refused: request_parse()'s words;
 * if json-c takes it (its lenient numbers, single quotes), the
 * scanner's. */
static int
refuse(struct json_tokener *tok, const char *line, size_t len,
    struct request *req, const struct jscan *js, enum jscan_error e,
    char *err, size_t errlen)
{
	if (request_parse(tok, line, len, req, err, errlen) < 0)
		return -1;
	request_fini(req);
	snprintf(err, errlen, "invalid JSON: %s at offset %zu", jscan_what(e),
	    js->at);
	return -1;
}

/* The id member: its text in req->id_buf, or (escapes, DEL, long) its
 * json-c value in req->id.  Returns 0, or -1 with err. */
static int
read_id(struct request *req, const char *line, const struct jscan_member *m,
    char *err, size_t errlen)
{
	const char *v = line + m->value;
	size_t n = m->value_end - m->value;

	if (*v == '-' || (*v >= '0' && *v <= '9')) {
		if (!is_integer(v, n)) {
			snprintf(err, errlen, "\"id\" must be a string or an "
			    "integer");
			return -1;
		}
		if (n == 2 && v[0] == '-' && v[1] == '0') {
			v = "0"; /* json-c's int64 */
			n = 1;
		}
	} else if (*v != '"') {
		snprintf(err, errlen, "\"id\" must be a string or an integer");
		return -1;
	} else if (n >= sizeof(req->id_buf) || memchr(v, '\\', n) != NULL ||
	    memchr(v, 0x7f, n) != NULL) {
		/* Echoed as json-c writes it: let json-c read it. */
		if ((req->id = token_value(req->tok, v, n)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (has_nul(req->id)) {
			snprintf(err, errlen, "\"id\" must not contain a NUL "
			    "(\\u0000)");
			return -1;
		}
		return 0;
	}
	memcpy(req->id_buf, v, n);
	req->id_buf[n] = '\0';
	req->id_text = req->id_buf;
	return 0;
}

/* A string member's content and its length: borrowed from the line when
 * it has no escape, else decoded by json-c into buf (size bytes, NUL
 * included; a longer one is cut there, *out_len stays the whole
 * length).  Returns 0, 1 when it holds a NUL, -1 on ENOMEM. */
static int
read_string(struct request *req, const char *v, size_t n, char *buf,
    size_t size, const char **out, size_t *out_len)
{
	struct json_object *o;
	size_t len;
	int rc = 0;

	if (memchr(v, '\\', n) == NULL) {
		*out = v + 1;
		*out_len = n - 2;
		return 0;
	}
	if ((o = token_value(req->tok, v, n)) == NULL)
		return -1;
	*out_len = len = (size_t)json_object_get_string_len(o);
	if (has_nul(o))
		rc = 1;
	if (len > size - 1)
		len = size - 1;
	memcpy(buf, json_object_get_string(o), len);
	buf[len] = '\0';
	json_object_put(o);
	*out = buf;
	return rc;
}

int
envelope_scan(struct json_tokener *tok, const char *line, size_t len,
    struct request *req, char *err, size_t errlen)
{
	struct jscan js;
	struct env ev;
	enum jscan_error e;
	const struct jscan_member *m;
	const char *s;
	size_t n;
	int rc;

	memset(req, 0, offsetof(struct request, id_buf));
	while (len > 0 && is_space(line[len - 1]))
		len--;
	ev.line = line;
	ev.have = 0;
	ev.escaped = 0;
	/* A lone surrogate escape is refused as request_parse() refuses
	 * it: json-c would decode it to bytes that are not UTF-8. */
	jscan_init(&js, JSCAN_RFC_SPACE | JSCAN_SURROGATES | JSCAN_KEYS,
	    REQUEST_MAX_DEPTH + 1);
	js.member = on_member;
	js.arg = &ev;
	if ((e = jscan_text(&js, line, len)) != JSCAN_OK)
		return refuse(tok, line, len, req, &js, e, err, errlen);
	/* An escaped top-level name, or a "\u0000" in a name at any depth
	 * (refused there): json-c's reading decides. */
	if (ev.escaped || js.key_nul)
		return request_parse(tok, line, len, req, err, errlen);
	if (js.top != '{') {
		snprintf(err, errlen, "a request must be a JSON object");
		return -1;
	}
	req->scanned = 1;
	req->tok = tok;
	req->payload_plain = !js.key_escape && !js.dup_key;
	if ((ev.have & (1u << M_ID)) && read_id(req, line, &ev.m[M_ID], err,
	    errlen) < 0)
		return -1;

	m = (ev.have & (1u << M_COMMAND)) ? &ev.m[M_COMMAND] :
	    (ev.have & (1u << M_CTYPE)) ? &ev.m[M_CTYPE] : NULL;
	if (m == NULL) {
		snprintf(err, errlen, "\"command\" is missing");
		return -1;
	}
	if (line[m->value] != '"') {
		snprintf(err, errlen, "\"command\" must be a string");
		return -1;
	}
	if ((rc = read_string(req, line + m->value, m->value_end - m->value,
	    req->cmd_buf, sizeof(req->cmd_buf), &s, &n)) != 0) {
		snprintf(err, errlen, rc < 0 ? "out of memory" : "\"command\" "
		    "must not contain a NUL (\\u0000)");
		return -1;
	}
	if (s != req->cmd_buf) {
		if (n > REQUEST_MAX_COMMAND)
			n = REQUEST_MAX_COMMAND; /* matches nothing anyway */
		memcpy(req->cmd_buf, s, n);
		req->cmd_buf[n] = '\0';
	}
	req->command = req->cmd_buf;

	if (ev.have & (1u << M_TIMEOUT)) {
		const char *v = line + ev.m[M_TIMEOUT].value;
		size_t vn = ev.m[M_TIMEOUT].value_end - ev.m[M_TIMEOUT].value;
		int64_t t = 0;

		if (*v >= '0' && *v <= '9' && vn <= 8 && is_integer(v, vn))
			for (size_t i = 0; i < vn; i++)
				t = t * 10 + (v[i] - '0');
		if (t <= 0 || t > 86400000) {
			snprintf(err, errlen, "\"timeout_ms\" must be an integer "
			    "from 1 to 86400000");
			return -1;
		}
		req->timeout_ms = t;
	}
	if (ev.have & (1u << M_WANT)) {
		char c = line[ev.m[M_WANT].value];

		if (c != 't' && c != 'f') {
			snprintf(err, errlen, "\"want_request_id\" must be true "
			    "or false");
			return -1;
		}
		req->want_request_id = c == 't';
	}
	/* "async": true asks a workflow for 202 at once; anything but a
	 * boolean is no ask, as for the tree parser (request.c). */
	if (ev.have & (1u << M_ASYNC))
		req->async = line[ev.m[M_ASYNC].value] == 't';
	if (ev.have & (1u << M_KEY)) {
		m = &ev.m[M_KEY];
		if (line[m->value] != '"' || (rc = read_string(req, line +
		    m->value, m->value_end - m->value, req->key_buf,
		    sizeof(req->key_buf), &s, &n)) < 0 || n == 0 ||
		    n > REQUEST_MAX_IDEM_KEY) {
			if (line[m->value] == '"' && rc < 0)
				snprintf(err, errlen, "out of memory");
			else
				snprintf(err, errlen, "\"idempotency_key\" must "
				    "be a string of 1 to %d bytes",
				    REQUEST_MAX_IDEM_KEY);
			return -1;
		}
		req->idem_key = s;
		req->idem_key_len = n;
	}
	if (ev.have & (1u << M_PAYLOAD)) {
		req->payload_text = line + ev.m[M_PAYLOAD].value;
		req->payload_len = ev.m[M_PAYLOAD].value_end -
		    ev.m[M_PAYLOAD].value;
		req->payload_ws = ev.m[M_PAYLOAD].value_ws;
	} else {
		req->payload_text = "{}"; /* absent or null */
		req->payload_len = 2;
		req->payload_ws = 0;
	}
	return 0;
}

struct json_object *
envelope_payload(struct request *req)
{
	static const char nul = '\0';
	struct json_object *v;

	if (req->payload != NULL || !req->scanned)
		return req->payload;
	request_tokener_reset(req->tok);
	v = json_tokener_parse_ex(req->tok, req->payload_text,
	    (int)req->payload_len);
	if (v == NULL && json_tokener_get_error(req->tok) ==
	    json_tokener_continue)
		v = json_tokener_parse_ex(req->tok, &nul, 1); /* a number */
	req->root = req->payload = v;
	return v;
}

/* ------------------------------------------------------------ fields */

/* The most fields checked without a tree. */
#define FIELDS_MAX 32

struct field_scan {
	const char *text;
	const cmdhost_field *fields;
	size_t nfields;
	int unsure;                 /* a name with an escape */
	size_t at[FIELDS_MAX];      /* value offset + 1 of each; 0: absent */
	size_t end[FIELDS_MAX];
};

static void
on_field(struct jscan *js, const struct jscan_member *m)
{
	struct field_scan *fs = js->arg;
	const char *k = fs->text + m->key + 1;
	size_t n = m->key_len - 2;

	if (m->key_escaped) {
		fs->unsure = 1;
		return;
	}
	for (size_t i = 0; i < fs->nfields; i++)
		if (strncmp(fs->fields[i].name, k, n) == 0 &&
		    fs->fields[i].name[n] == '\0') {
			/* The last wins; null is absent (json-c's NULL). */
			fs->at[i] = fs->text[m->value] == 'n' ? 0 :
			    m->value + 1;
			fs->end[i] = m->value_end;
		}
}

/* json-c's type of the value whose text starts at v and ends at e. */
static enum json_type
text_type(const char *v, const char *e)
{
	switch (*v) {
	case '"':
		return json_type_string;
	case '{':
		return json_type_object;
	case '[':
		return json_type_array;
	case 't':
	case 'f':
		return json_type_boolean;
	case 'n':
		return json_type_null;
	default:
		return is_integer(v, (size_t)(e - v)) ? json_type_int :
		    json_type_double;
	}
}

int
envelope_check_fields(struct request *req, const cmdhost_field *fields,
    char *err, size_t errlen)
{
	struct field_scan fs;
	struct jscan js;
	const char *p = req->payload_text;
	size_t nf = 0;

	if (fields == NULL || fields[0].name == NULL)
		return 0;
	if (!req->scanned || req->payload != NULL)
		goto tree;
	while (fields[nf].name != NULL)
		nf++;
	if (nf > FIELDS_MAX)
		goto tree;
	if (*p != '{') {
		snprintf(err, errlen, "payload must be an object, got %s",
		    request_json_type_label(text_type(p,
		    p + req->payload_len)));
		return -1;
	}
	fs.text = p;
	fs.fields = fields;
	fs.nfields = nf;
	fs.unsure = 0;
	memset(fs.at, 0, nf * sizeof(fs.at[0]));
	jscan_init(&js, JSCAN_RFC_SPACE, REQUEST_MAX_DEPTH);
	js.member = on_field;
	js.arg = &fs;
	if (jscan_text(&js, p, req->payload_len) != JSCAN_OK || fs.unsure)
		goto tree; /* (the line was checked: memory only) */
	for (size_t i = 0; i < nf; i++) {
		const cmdhost_field *f = &fields[i];
		enum json_type t;

		if (fs.at[i] == 0) {
			if (!f->required)
				continue;
			snprintf(err, errlen, "field '%s' is required", f->name);
			return -1;
		}
		t = text_type(p + fs.at[i] - 1, p + fs.end[i]);
		if (!request_type_matches(f->type, t)) {
			snprintf(err, errlen, "field '%s' must be %s %s, got %s",
			    f->name, f->type == CMDHOST_INTEGER ? "an" : "a",
			    request_type_name(f->type),
			    request_json_type_label(t));
			return -1;
		}
	}
	return 0;
tree:
	if (envelope_payload(req) == NULL)
		return -ENOMEM;
	return request_check_fields(fields, req->payload, err, errlen);
}
