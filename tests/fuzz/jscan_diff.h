/*
 * jscan_diff.h - the differential check of the strict scanner against
 * json-c, shared by the libFuzzer harness (fuzz_jscan_diff.c) and the
 * corpus replay in make test (tests/unit/test_jscan_diff.c).  One request
 * line goes through both readers the daemon has had: envelope_scan() (one
 * jscan pass, what the daemon uses now) and request_parse() (json-c's
 * json_tokener with JSON_TOKENER_STRICT and the checks around it, what
 * the daemon used before).  They must agree on accept/refuse and on every
 * member read, with the exceptions issue 19 documents, each encoded below
 * with the direction it must go, and nothing else but json-c's lenient
 * number and quote forms (docs/performance.md), checked at the byte the
 * scanner refused.  Everything here is static: include it once.
 */
#ifndef CMDHOST_TESTS_JSCAN_DIFF_H
#define CMDHOST_TESTS_JSCAN_DIFF_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "envelope.h"
#include "jscan.h"
#include "request.h"

/* How the lines seen so far fell out (each line counts once). */
struct jdiff_stats {
	unsigned long accepted;     /* both accepted, members equal */
	unsigned long refused;      /* both refused, same reason */
	unsigned long exc_integer;  /* documented: integer beyond 64 bits */
	unsigned long exc_nonfinite; /* documented: NaN/Infinity/1e400 that
	                              * json-c's tree does not show (a
	                              * replaced duplicate member) */
	unsigned long exc_depth;    /* documented: json-c's depth counts a
	                             * leaf, one level short of the limit */
	unsigned long exc_lenient;  /* json-c's lenient forms (1., 01, 'a') */
	unsigned long exc_key_nul;  /* documented: a "\u0000" in a member
	                             * name, which the scanner only flags
	                             * (key_nul) and request_parse() refuses */
};

/* One field of each type, required and optional: envelope_check_fields()
 * must give request_check_fields()'s verdict and message. */
static const cmdhost_field jdiff_fields[] = {
	{ "any", CMDHOST_ANY, 0 },
	{ "s", CMDHOST_STRING, 0 },
	{ "n", CMDHOST_NUMBER, 0 },
	{ "i", CMDHOST_INTEGER, 0 },
	{ "b", CMDHOST_BOOLEAN, 0 },
	{ "o", CMDHOST_OBJECT, 0 },
	{ "a", CMDHOST_ARRAY, 0 },
	{ "msg", CMDHOST_STRING, 1 },
	{ NULL, 0, 0 }
};

static int
jdiff_fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

/* 1 if request_parse()'s message err says the line is not (strict) JSON,
 * rather than a request with a wrong member. */
static int
jdiff_validity_message(const char *err)
{
	return strncmp(err, "invalid JSON", 12) == 0 ||
	    strncmp(err, "incomplete JSON", 15) == 0 ||
	    strncmp(err, "an integer does not fit", 23) == 0;
}

/*
 * 1 if the scanner's refusal at s[at] is one of json-c's lenient forms
 * that JSON_TOKENER_STRICT still takes: a single quote ('a'), a fraction
 * or exponent after a '.' with no digit ("1.", "0.e1"), a '.' right
 * after a minus sign ("-.5"), or a digit after a leading zero ("00",
 * "-01").  Only the byte refused is looked at, so
 * any other disagreement on the same line still counts.
 */
static int
jdiff_lenient_at(const char *s, size_t n, size_t at)
{
	if (at >= n)
		return at > 0 && s[at - 1] == '.' && at >= 2 &&
		    s[at - 2] >= '0' && s[at - 2] <= '9';
	if (s[at] == '\'')
		return 1;
	if (s[at] == '.' && at >= 1 && s[at - 1] == '-')
		return 1; /* "-.5" */
	if (at >= 2 && s[at - 1] == '.' && s[at - 2] >= '0' &&
	    s[at - 2] <= '9')
		return 1;
	if (at >= 1 && s[at] >= '0' && s[at] <= '9' && s[at - 1] == '0' &&
	    (at == 1 || ((s[at - 2] < '0' || s[at - 2] > '9') &&
	    s[at - 2] != '.' && s[at - 2] != 'e' && s[at - 2] != 'E' &&
	    s[at - 2] != '+' && (s[at - 2] != '-' || at < 3 ||
	    (s[at - 3] != 'e' && s[at - 3] != 'E')))))
		return 1;
	return 0;
}

static int
jdiff_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* json-c's strict tree of text[0..n) (borrowed): new, or NULL. */
static struct json_object *
jdiff_tree(const char *text, size_t n)
{
	static const char nul = '\0';
	struct json_tokener *tok = request_tokener_new();
	struct json_object *o;

	if (tok == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, text, (int)n);
	if (o == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, &nul, 1);
	json_tokener_free(tok);
	return o;
}

/*
 * 1 if every NaN, Infinity or out-of-range number that makes the scanner
 * refuse line[0..n) sits where json-c's tree cannot show it (a member
 * that a later one of the same name replaces, the name as json-c keeps
 * it: cut at a "\u0000"): with each of them written over with a 0,
 * json-c builds a tree equal to the one it builds from the line.
 */
static int
jdiff_nonfinite_replaced(const char *line, size_t n)
{
	struct json_object *t1, *t2;
	struct jscan js;
	enum jscan_error e;
	char *c = malloc(n + 1);
	int ok;

	if (c == NULL)
		return 0;
	memcpy(c, line, n);
	for (int round = 0; round < 4096; round++) {
		size_t at, len;

		jscan_init(&js, JSCAN_RFC_SPACE, REQUEST_MAX_DEPTH + 1);
		e = jscan_text(&js, c, n);
		at = js.at;
		if (e == JSCAN_NONFINITE && n - at >= 3 &&
		    memcmp(c + at, "NaN", 3) == 0) {
			len = 3;
		} else if (e == JSCAN_NONFINITE && n - at >= 8 &&
		    memcmp(c + at, "Infinity", 8) == 0) {
			len = 8;
		} else if (e == JSCAN_DOUBLE) {
			/* js.at is the number's end. */
			len = 0;
			while (at > 0 && c[at - 1] != '\0' &&
			    strchr("0123456789.eE+-", c[at - 1]) != NULL) {
				at--;
				len++;
			}
		} else {
			break;
		}
		memset(c + at, ' ', len);
		c[at] = '0';
	}
	t1 = jdiff_tree(line, n);
	t2 = jdiff_tree(c, n);
	ok = t1 != NULL && t2 != NULL && json_object_equal(t1, t2);
	json_object_put(t1);
	json_object_put(t2);
	free(c);
	return ok;
}

/*
 * The scanner refused a line json-c's reader did not refuse as JSON (it
 * accepted it, or refused a member of it).  0 if that is a documented
 * exception going the documented way (counted in st), else -1 with why.
 */
static int
jdiff_exception(const char *line, size_t n, const struct jscan *js,
    enum jscan_error e, int rparse_ok, const char *ea, struct jdiff_stats *st,
    char *why, size_t whylen)
{
	/* request_parse() refuses a line that is not an object, and an id
	 * of the wrong type, before it looks for big or non-finite numbers. */
	int id_first = !rparse_ok && (strcmp(ea, "\"id\" must be a string "
	    "or an integer") == 0 || strcmp(ea, "a request must be a JSON "
	    "object") == 0);

	switch (e) {
	case JSCAN_INTEGER:
		/* request_parse() refuses one too, right after the id
		 * check: only a bad id or a non-object may come first. */
		if (!id_first)
			break;
		st->exc_integer++;
		return 0;
	case JSCAN_NONFINITE:
	case JSCAN_DOUBLE:
		/* json-c's tree lost the value to a later member of the same
		 * name (so request_parse()'s walk never saw it), or it
		 * refused the id before walking the tree. */
		if (!id_first && !jdiff_nonfinite_replaced(line, n))
			break;
		st->exc_nonfinite++;
		return 0;
	case JSCAN_SYNTAX:
	case JSCAN_TRAILING:
		if (!jdiff_lenient_at(line, n, js->at))
			break;
		st->exc_lenient++;
		return 0;
	default:
		break;
	}
	return jdiff_fail(why, whylen, "scanner refuses (%s at %zu), json-c "
	    "%s", jscan_what(e), js->at, rparse_ok ? "accepts" :
	    "refuses only a member");
}

/*
 * Read line[0..n) (borrowed) with both readers and compare.  tok1 and
 * tok2 are request_tokener_new() tokeners (borrowed).  Returns 0 when
 * they agree (st counts how), else -1 with the disagreement in why.
 */
static int
jdiff_line(struct json_tokener *tok1, struct json_tokener *tok2,
    const char *line, size_t n, struct jdiff_stats *st, char *why,
    size_t whylen)
{
	struct request a, b;
	struct jscan js;
	enum jscan_error e;
	char ea[512], eb[512], fa[512], fb[512];
	const char *ia, *ib;
	size_t tn = n;
	int ra, rb, fra, frb, rc = 0;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	ea[0] = eb[0] = '\0';
	ra = request_parse(tok1, line, n, &a, ea, sizeof(ea));
	rb = envelope_scan(tok2, line, n, &b, eb, sizeof(eb));

	/* The scanner as envelope_scan() runs it, with names watched. */
	while (tn > 0 && jdiff_is_space(line[tn - 1]))
		tn--;
	jscan_init(&js, JSCAN_RFC_SPACE | JSCAN_SURROGATES | JSCAN_KEYS,
	    REQUEST_MAX_DEPTH + 1);
	e = jscan_text(&js, line, tn);

	if (e == JSCAN_OK && ra < 0 && strstr(ea, "nesting too deep") !=
	    NULL) {
		/* Documented: depth.  json-c counts a value inside the
		 * deepest container as a level too, so it refuses 64 arrays
		 * holding a 1 in the payload, which the limit allows (the
		 * scanner counts containers, REQUEST_MAX_DEPTH).  The line
		 * must be exactly that deep. */
		jscan_init(&js, JSCAN_RFC_SPACE, REQUEST_MAX_DEPTH);
		if (jscan_text(&js, line, tn) != JSCAN_DEPTH) {
			rc = jdiff_fail(why, whylen, "scanner accepts, json-c "
			    "refuses: %s", ea);
			goto out;
		}
		st->exc_depth++;
		goto out;
	}
	if (e == JSCAN_OK && ra < 0 && js.key_nul &&
	    strstr(ea, "a NUL (\\u0000) in a member name") != NULL) {
		/* Documented: the scanner flags such a name and goes on;
		 * envelope_scan() hands the line to request_parse(), which
		 * refuses it: the envelope must say just that. */
		if (rb == 0 || strcmp(ea, eb) != 0) {
			rc = jdiff_fail(why, whylen, "a NUL in a member name: "
			    "json-c refuses (%s), envelope %s (%s)", ea,
			    rb == 0 ? "accepts" : "refuses", eb);
			goto out;
		}
		st->exc_key_nul++;
		goto out;
	}
	if (e == JSCAN_OK && ra < 0 && jdiff_validity_message(ea)) {
		rc = jdiff_fail(why, whylen, "scanner accepts, json-c refuses: "
		    "%s", ea);
		goto out;
	}
	if (e != JSCAN_OK && (ra == 0 || !jdiff_validity_message(ea))) {
		rc = jdiff_exception(line, tn, &js, e, ra == 0, ea, st,
		    why, whylen);
		goto out;
	}
	if (e != JSCAN_OK && rb == 0) {
		rc = jdiff_fail(why, whylen, "scanner refuses (%s) but "
		    "envelope_scan accepts", jscan_what(e));
		goto out;
	}
	if (ra != rb) {
		rc = jdiff_fail(why, whylen, "json-c %s (%s), envelope %s (%s)",
		    ra == 0 ? "accepts" : "refuses", ea, rb == 0 ? "accepts" :
		    "refuses", eb);
		goto out;
	}
	ia = request_echo_id(&a);
	ib = request_echo_id(&b);
	if ((ia == NULL) != (ib == NULL) || (ia != NULL && strcmp(ia, ib) !=
	    0)) {
		rc = jdiff_fail(why, whylen, "id echoed %s vs %s", ia != NULL ?
		    ia : "(none)", ib != NULL ? ib : "(none)");
		goto out;
	}
	if (ra < 0) {
		if (strcmp(ea, eb) != 0)
			rc = jdiff_fail(why, whylen, "reasons differ: %s / %s",
			    ea, eb);
		else
			st->refused++;
		goto out;
	}

	/* Both accepted: every member the daemon reads. */
	if (strlen(a.command) > REQUEST_MAX_COMMAND ?
	    strncmp(a.command, b.command, REQUEST_MAX_COMMAND) != 0 :
	    strcmp(a.command, b.command) != 0) {
		rc = jdiff_fail(why, whylen, "command %s vs %s", a.command,
		    b.command);
		goto out;
	}
	if (a.timeout_ms != b.timeout_ms || a.want_request_id !=
	    b.want_request_id || a.async != b.async) {
		rc = jdiff_fail(why, whylen, "timeout %lld/%lld, want_request_id "
		    "%d/%d, async %d/%d", (long long)a.timeout_ms,
		    (long long)b.timeout_ms, a.want_request_id,
		    b.want_request_id, a.async, b.async);
		goto out;
	}
	if ((a.idem_key == NULL) != (b.idem_key == NULL) || (a.idem_key !=
	    NULL && (a.idem_key_len != b.idem_key_len || memcmp(a.idem_key,
	    b.idem_key, a.idem_key_len) != 0))) {
		rc = jdiff_fail(why, whylen, "idempotency_key differs");
		goto out;
	}
	/* The payload's own text, parsed by json-c, is json-c's payload. */
	if (envelope_payload(&b) == NULL) {
		rc = jdiff_fail(why, whylen, "payload text %.*s: json-c cannot "
		    "parse it", (int)b.payload_len, b.payload_text != NULL ?
		    b.payload_text : "");
		goto out;
	}
	if (!json_object_equal(a.payload, b.payload)) {
		rc = jdiff_fail(why, whylen, "payload %s vs %s",
		    json_object_to_json_string(a.payload),
		    json_object_to_json_string(b.payload));
		goto out;
	}
	/* Declared fields: checked on scanned members when it can.  A fresh
	 * scan, so that the tree made above is not what is checked. */
	request_fini(&b);
	memset(&b, 0, sizeof(b));
	if (envelope_scan(tok2, line, n, &b, eb, sizeof(eb)) != 0) {
		rc = jdiff_fail(why, whylen, "second scan refuses: %s", eb);
		goto out;
	}
	fa[0] = fb[0] = '\0';
	fra = request_check_fields(jdiff_fields, a.payload, fa, sizeof(fa));
	frb = envelope_check_fields(&b, jdiff_fields, fb, sizeof(fb));
	if (fra != frb || strcmp(fa, fb) != 0) {
		rc = jdiff_fail(why, whylen, "fields %d (%s) vs %d (%s)", fra,
		    fa, frb, fb);
		goto out;
	}
	st->accepted++;
out:
	request_fini(&a);
	request_fini(&b);
	return rc;
}

#endif /* CMDHOST_TESTS_JSCAN_DIFF_H */
