/*
 * body_text.c - check a plugin's JSON text body strictly and keep it as a
 * json-c tree that prints the plugin's own bytes (see body_text.h).
 *
 * The strict scanner (jscan.c) checks the text and drops the whitespace
 * between tokens in one pass; a text whose names need no rewriting is
 * then sent as it is (body_text_check).  For the rest json-c builds the
 * tree, and a walk of tree and text together gives the leaves json-c
 * would print otherwise (escapes, '/', -0) their own token as text.  The tree is an ordinary one otherwise: members may
 * be added, it may be deep-copied.  Member names are printed as json-c
 * prints them, and a name that comes twice keeps its last value.
 */
#include "body_text.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jscan.h"

/* The reason for a refusal, phrased for the plugin's author.  text
 * (borrowed) is len bytes and need not be NUL-terminated: the scanner
 * may stop at its end (a number refused when it ends there). */
static void
refusal(const struct jscan *js, enum jscan_error e, const char *text,
    size_t len, char *err, size_t errlen)
{
	unsigned char c = js->at < len ? (unsigned char)text[js->at] : 0;

	switch (e) {
	case JSCAN_EMPTY:
		snprintf(err, errlen, "empty text: not a JSON value");
		break;
	case JSCAN_UNTERMINATED:
		snprintf(err, errlen, "unterminated string");
		break;
	case JSCAN_STR_CONTROL:
		snprintf(err, errlen, "control character 0x%02x in a string "
		    "at byte %zu", c, js->at);
		break;
	case JSCAN_ESCAPE_BYTE:
		snprintf(err, errlen, "bad escape at byte %zu", js->at);
		break;
	case JSCAN_STR_UTF8:
		snprintf(err, errlen, "invalid UTF-8 at byte %zu", js->at);
		break;
	case JSCAN_CONTROL:
	case JSCAN_BYTE_UTF8:
	case JSCAN_BYTE:
		snprintf(err, errlen, "unexpected byte 0x%02x at byte %zu", c,
		    js->at);
		break;
	case JSCAN_INTEGER:
		snprintf(err, errlen, "integer out of range at byte %zu",
		    js->at);
		break;
	case JSCAN_NONFINITE:
	case JSCAN_DOUBLE:
		snprintf(err, errlen, "NaN, Infinity or a number out of range");
		break;
	case JSCAN_DEPTH:
		snprintf(err, errlen, "not JSON: nesting deeper than %d levels "
		    "at byte %zu", BODY_TEXT_MAX_DEPTH, js->at);
		break;
	default:
		snprintf(err, errlen, "not JSON: %s at byte %zu",
		    jscan_what(e), js->at);
		break;
	}
}

int
body_text_check(const char *text, size_t len, size_t max, char *out,
    size_t *out_len, int *needs_tree, char *err, size_t errlen)
{
	struct jscan js;
	enum jscan_error e;

	*out_len = 0;
	*needs_tree = 0;
	if (text == NULL) {
		snprintf(err, errlen, "NULL text of %zu bytes", len);
		return -EINVAL;
	}
	if (len > max) {
		snprintf(err, errlen, "body of %zu bytes is over the limit of "
		    "%zu", len, max);
		return -EINVAL;
	}
	if (len > (size_t)INT32_MAX - 2) {
		snprintf(err, errlen, "body too large");
		return -EINVAL;
	}
	jscan_init(&js, JSCAN_RFC_SPACE | JSCAN_COMPACT | JSCAN_KEYS,
	    BODY_TEXT_MAX_DEPTH);
	js.out = out;
	if ((e = jscan_text(&js, text, len)) != JSCAN_OK) {
		if (e == JSCAN_NOMEM)
			return -ENOMEM;
		refusal(&js, e, text, len, err, errlen);
		return -EINVAL;
	}
	out[js.out_len] = '\0';
	*out_len = js.out_len;
	/* json-c writes names its own way and keeps the last of two; a
	 * lone surrogate escape is refused when the reply is checked. */
	*needs_tree = js.key_escape || js.dup_key || js.lone_surrogate;
	return 0;
}

/* 1 if v (borrowed) holds a number that is not finite (NaN, Infinity,
 * 1e400). */
static int
non_finite(struct json_object *v, int depth)
{
	if (depth > BODY_TEXT_MAX_DEPTH)
		return 0;
	switch (json_object_get_type(v)) {
	case json_type_double:
		return !isfinite(json_object_get_double(v));
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (non_finite(json_object_array_get_idx(v, i),
			    depth + 1))
				return 1;
		return 0;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			(void)key;
			if (non_finite(val, depth + 1))
				return 1;
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* The end of the string token starting at t[i] (its closing quote + 1);
 * t is borrowed, checked compact text. */
static size_t
string_end(const char *t, size_t i)
{
	for (i++; t[i] != '"'; i++)
		if (t[i] == '\\')
			i++;
	return i + 1;
}

/* The end of the scalar token (number or literal) starting at t[i] of
 * the borrowed compact text t. */
static size_t
scalar_end(const char *t, size_t i)
{
	while (t[i] != '\0' && t[i] != ',' && t[i] != ']' && t[i] != '}' &&
	    t[i] != ':')
		i++;
	return i;
}

/* The member name of string token t[0..n), escapes undone by json-c:
 * new (free it), or NULL on ENOMEM. */
static char *
unescaped(const char *t, size_t n)
{
	struct json_object *k;
	char *tok = strndup(t, n), *key = NULL;

	if (tok == NULL)
		return NULL;
	if ((k = json_tokener_parse(tok)) != NULL)
		key = strdup(json_object_get_string(k));
	json_object_put(k);
	free(tok);
	return key;
}

/* Give leaf v (borrowed) a copy of the token t[s..e) as its text when
 * `needs`, else json-c's own.  v owns the copy (json-c frees it with v,
 * and a deep copy takes one of its own).  Returns -1 on ENOMEM. */
static int
leaf_text(struct json_object *v, const char *t, size_t s, size_t e,
    int needs)
{
	char *copy;

	if (!needs) {
		json_object_set_serializer(v, NULL, NULL, NULL);
		return 0;
	}
	if ((copy = strndup(t + s, e - s)) == NULL)
		return -1;
	json_object_set_serializer(v, json_object_userdata_to_json_string,
	    copy, json_object_free_userdata);
	return 0;
}

/*
 * Walk the compact text t (borrowed) from *i (a value) along v (borrowed),
 * the tree json-c made of it (NULL where the text has a value the tree
 * does not: the first of two members of one name), and give the leaves
 * json-c would print differently their own token: strings with an escape
 * or a '/', and -0.
 * json-c keeps a double's text itself.  A member name that comes twice
 * walks the last value twice; the last walk wins, as the value does.
 * Advances *i past the value.  Returns 0 or -1 (ENOMEM).
 */
static int
keep_tokens(struct json_object *v, const char *t, size_t *i)
{
	size_t s = *i, e;

	if (t[s] == '{' || t[s] == '[') {
		int obj = t[s] == '{';
		size_t idx = 0;

		if (v != NULL && !json_object_is_type(v, obj ? json_type_object :
		    json_type_array))
			v = NULL;
		(*i)++;
		if (t[*i] == (obj ? '}' : ']')) {
			(*i)++;
			return 0;
		}
		for (;;) {
			struct json_object *child = NULL;

			if (obj) {
				size_t ks = *i, ke = string_end(t, ks);
				char *key;

				if (v != NULL) {
					if (memchr(t + ks, '\\', ke - ks) ==
					    NULL) {
						key = strndup(t + ks + 1,
						    ke - ks - 2);
					} else {
						key = unescaped(t + ks, ke - ks);
					}
					if (key == NULL)
						return -1;
					json_object_object_get_ex(v, key,
					    &child);
					free(key);
				}
				*i = ke + 1; /* past the ':' */
			} else if (v != NULL && idx <
			    json_object_array_length(v)) {
				child = json_object_array_get_idx(v, idx);
			}
			idx++;
			if (keep_tokens(child, t, i) < 0)
				return -1;
			if (t[*i] == ',') {
				(*i)++;
				continue;
			}
			(*i)++; /* the closing bracket */
			return 0;
		}
	}
	if (t[s] == '"') {
		e = string_end(t, s);
		*i = e;
		if (v == NULL || !json_object_is_type(v, json_type_string))
			return 0;
		return leaf_text(v, t, s, e, memchr(t + s, '\\', e - s) !=
		    NULL || memchr(t + s, '/', e - s) != NULL);
	}
	e = scalar_end(t, s);
	*i = e;
	if (v == NULL || !json_object_is_type(v, json_type_int))
		return 0; /* a double keeps its text; literals are literal */
	return leaf_text(v, t, s, e, e - s == 2 && t[s] == '-' &&
	    t[s + 1] == '0');
}

int
body_text_tree(const char *t, size_t n, struct json_object **out, char *err,
    size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *v;
	enum json_tokener_error e;

	*out = NULL;
	if ((tok = json_tokener_new_ex(BODY_TEXT_MAX_DEPTH)) == NULL)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	/* The terminating NUL too: it ends a number at the top level. */
	v = json_tokener_parse_ex(tok, t, (int)n + 1);
	e = json_tokener_get_error(tok);
	if (e != json_tokener_success || json_tokener_get_parse_end(tok) != n) {
		/* The scanner passed it: json-c fails only on its limits. */
		if (e == json_tokener_success)
			snprintf(err, errlen, "more than one JSON value");
		else
			snprintf(err, errlen, "not JSON: %s near byte %zu",
			    json_tokener_error_desc(e),
			    json_tokener_get_parse_end(tok));
		json_object_put(v);
		json_tokener_free(tok);
		return -EINVAL;
	}
	json_tokener_free(tok);
	if (non_finite(v, 0)) {
		snprintf(err, errlen, "NaN, Infinity or a number out of range");
		json_object_put(v);
		return -EINVAL;
	}
	if (v != NULL) {
		size_t at = 0;

		if (keep_tokens(v, t, &at) < 0) {
			json_object_put(v);
			return -ENOMEM;
		}
	}
	*out = v;
	return 0;
}

int
body_text_parse(const char *text, size_t len, size_t max,
    struct json_object **out, char *err, size_t errlen)
{
	char *t;
	size_t n;
	int rc, needs_tree;

	*out = NULL;
	if (text == NULL && len == 0)
		return 0; /* JSON null */
	if (text != NULL && len <= max && len <= (size_t)INT32_MAX - 2) {
		if ((t = malloc(len + 1)) == NULL)
			return -ENOMEM;
	} else {
		t = NULL; /* body_text_check() says why */
	}
	if ((rc = body_text_check(text, len, max, t, &n, &needs_tree, err,
	    errlen)) == 0)
		rc = body_text_tree(t, n, out, err, errlen);
	free(t);
	return rc;
}

size_t
body_text_cut(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	/* Step back over continuation bytes to the start of a sequence. */
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}
