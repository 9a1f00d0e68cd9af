/*
 * wf_path.c - the data paths of workflow definitions: a JSONPath subset
 * ("$", "$$", ".name", "['name']", "[N]"), Parameters templates,
 * ResultPath, and Choice rules.
 *
 * No wildcards, filters or intrinsic functions: wf_path_check() refuses
 * them, so evaluation here never meets them.
 */
#include "wf_def.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One step of a path: a field name (copied into name) or an index. */
struct step {
	int is_index;
	size_t index;
	char name[256];
};

/* Read the step at *p; advance.  Returns 1 with a step, 0 at the end,
 * -1 with the reason. */
static int
next_step(const char **pp, struct step *st, const char **why)
{
	const char *p = *pp;
	size_t n = 0;

	if (*p == '\0')
		return 0;
	if (*p == '.') {
		p++;
		if (*p == '.' || *p == '*') {
			*why = "wildcards and deep scans ('..', '*') are not in "
			    "cmdhost's path subset";
			return -1;
		}
		while (*p != '\0' && *p != '.' && *p != '[') {
			if (n + 1 >= sizeof(st->name)) {
				*why = "a field name is longer than 255 bytes";
				return -1;
			}
			st->name[n++] = *p++;
		}
		if (n == 0) {
			*why = "an empty field name";
			return -1;
		}
		st->name[n] = '\0';
		st->is_index = 0;
		*pp = p;
		return 1;
	}
	if (*p == '[') {
		p++;
		if (*p == '\'' || *p == '"') {
			char q = *p++;

			while (*p != '\0' && *p != q) {
				if (n + 1 >= sizeof(st->name)) {
					*why = "a field name is longer than 255 "
					    "bytes";
					return -1;
				}
				st->name[n++] = *p++;
			}
			if (*p != q || p[1] != ']') {
				*why = "an unterminated ['name']";
				return -1;
			}
			st->name[n] = '\0';
			st->is_index = 0;
			*pp = p + 2;
			return 1;
		}
		if (!isdigit((unsigned char)*p)) {
			*why = "only [N] (an index) or ['name'] may follow '[' "
			    "(no filters, slices or wildcards)";
			return -1;
		}
		st->index = 0;
		while (isdigit((unsigned char)*p)) {
			st->index = st->index * 10 + (size_t)(*p - '0');
			if (st->index > 100000000) {
				*why = "an index too large";
				return -1;
			}
			p++;
		}
		if (*p != ']') {
			*why = "only [N] (an index) or ['name'] may follow '[' "
			    "(no filters, slices or wildcards)";
			return -1;
		}
		st->is_index = 1;
		*pp = p + 1;
		return 1;
	}
	*why = "expected '.name', '['name']' or '[N]'";
	return -1;
}

int
wf_path_check(const char *path, int allow_ctx, int fields_only, char *err,
    size_t errlen)
{
	const char *p = path, *why = NULL;
	struct step st;
	int rc;

	if (p[0] != '$') {
		snprintf(err, errlen, "'%s' is not a path: a path starts with "
		    "'$'", path);
		return -1;
	}
	p++;
	if (*p == '$') {
		if (!allow_ctx) {
			snprintf(err, errlen, "'%s': the context ($$) cannot be "
			    "written", path);
			return -1;
		}
		p++;
	}
	while ((rc = next_step(&p, &st, &why)) == 1)
		if (fields_only && st.is_index) {
			snprintf(err, errlen, "'%s': a result path names fields "
			    "only, not [N]", path);
			return -1;
		}
	if (rc < 0) {
		snprintf(err, errlen, "'%s': %s", path, why);
		return -1;
	}
	return 0;
}

int
wf_path_get(const char *path, struct json_object *doc,
    struct json_object *ctx, struct json_object **out)
{
	const char *p = path + 1, *why;
	struct json_object *cur = doc;
	struct step st;
	int rc;

	if (*p == '$') {
		cur = ctx;
		p++;
	}
	while ((rc = next_step(&p, &st, &why)) == 1) {
		if (st.is_index) {
			if (!json_object_is_type(cur, json_type_array) ||
			    st.index >= json_object_array_length(cur))
				return -1;
			cur = json_object_array_get_idx(cur, st.index);
		} else {
			struct json_object *v;

			if (!json_object_is_type(cur, json_type_object) ||
			    !json_object_object_get_ex(cur, st.name, &v))
				return -1;
			cur = v;
		}
	}
	if (rc < 0)
		return -1;
	*out = cur;
	return 0;
}

int
wf_path_set(struct json_object **doc, const char *path,
    struct json_object *val)
{
	const char *p = path + 1, *why;
	struct json_object *cur;
	struct step st, nx;
	int rc;

	if (*p == '\0') {
		json_object_put(*doc);
		*doc = val;
		return 0;
	}
	if (!json_object_is_type(*doc, json_type_object)) {
		json_object_put(val);
		return -1;
	}
	cur = *doc;
	if ((rc = next_step(&p, &st, &why)) != 1) {
		json_object_put(val);
		return -1;
	}
	for (;;) {
		struct json_object *v = NULL;

		rc = next_step(&p, &nx, &why);
		if (rc < 0 || st.is_index) {
			json_object_put(val);
			return -1;
		}
		if (rc == 0) {
			json_object_object_add(cur, st.name, val);
			return 0;
		}
		if (!json_object_object_get_ex(cur, st.name, &v) || v == NULL) {
			v = json_object_new_object();
			json_object_object_add(cur, st.name, v);
		} else if (!json_object_is_type(v, json_type_object)) {
			json_object_put(val);
			return -1;
		}
		cur = v;
		st = nx;
	}
}

struct json_object *
wf_params_apply(struct json_object *tmpl, struct json_object *doc,
    struct json_object *ctx, char *err, size_t errlen)
{
	struct json_object *out;

	if (json_object_is_type(tmpl, json_type_array)) {
		out = json_object_new_array();
		for (size_t i = 0; i < json_object_array_length(tmpl); i++) {
			struct json_object *v = wf_params_apply(
			    json_object_array_get_idx(tmpl, i), doc, ctx, err,
			    errlen);

			if (v == NULL && err[0] != '\0') {
				json_object_put(out);
				return NULL;
			}
			json_object_array_add(out, v);
		}
		return out;
	}
	if (!json_object_is_type(tmpl, json_type_object)) {
		struct json_object *copy = NULL;

		err[0] = '\0';
		if (tmpl != NULL && json_object_deep_copy(tmpl, &copy, NULL) < 0)
			snprintf(err, errlen, "out of memory");
		return copy;
	}
	out = json_object_new_object();
	json_object_object_foreach(tmpl, key, val) {
		size_t kl = strlen(key);
		struct json_object *v = NULL;

		err[0] = '\0';
		if (kl >= 2 && strcmp(key + kl - 2, ".$") == 0) {
			const char *path = json_object_get_string(val);
			struct json_object *found;
			char name[512];

			if (wf_path_get(path, doc, ctx, &found) < 0) {
				snprintf(err, errlen, "the path %s (of \"%s\") "
				    "names nothing in the %s", path, key,
				    path[1] == '$' ? "context" : "input");
				json_object_put(out);
				return NULL;
			}
			if (found != NULL && json_object_deep_copy(found, &v,
			    NULL) < 0) {
				snprintf(err, errlen, "out of memory");
				json_object_put(out);
				return NULL;
			}
			snprintf(name, sizeof(name), "%.*s", (int)(kl - 2), key);
			json_object_object_add(out, name, v);
			continue;
		}
		v = wf_params_apply(val, doc, ctx, err, errlen);
		if (v == NULL && err[0] != '\0') {
			json_object_put(out);
			return NULL;
		}
		json_object_object_add(out, key, v);
	}
	err[0] = '\0';
	return out;
}

/* ---------------------------------------------------------- choice */

static int
is_number(struct json_object *v)
{
	return json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_double);
}

/* Glob with '*' only ("\\*" a literal star), as StringMatches. */
static int
glob(const char *pat, const char *s)
{
	if (*pat == '\0')
		return *s == '\0';
	if (*pat == '*') {
		for (;; s++) {
			if (glob(pat + 1, s))
				return 1;
			if (*s == '\0')
				return 0;
		}
	}
	if (pat[0] == '\\' && pat[1] == '*') {
		return *s == '*' && glob(pat + 2, s + 1);
	}
	return *pat == *s && glob(pat + 1, s + 1);
}

int
wf_choice_eval(struct json_object *rule, struct json_object *doc,
    struct json_object *ctx)
{
	struct json_object *var = NULL, *v = NULL, *cmp;
	const char *op = NULL;
	int present;

	json_object_object_foreach(rule, key, val) {
		(void)val;
		if (strcmp(key, "Next") != 0 && strcmp(key, "Variable") != 0 &&
		    strcmp(key, "Comment") != 0)
			op = key;
	}
	if (op == NULL)
		return 0;
	json_object_object_get_ex(rule, op, &cmp);
	if (strcmp(op, "And") == 0 || strcmp(op, "Or") == 0) {
		int and = op[0] == 'A';

		for (size_t i = 0; i < json_object_array_length(cmp); i++) {
			int m = wf_choice_eval(json_object_array_get_idx(cmp,
			    i), doc, ctx);

			if (and && !m)
				return 0;
			if (!and && m)
				return 1;
		}
		return and;
	}
	if (strcmp(op, "Not") == 0)
		return !wf_choice_eval(cmp, doc, ctx);
	json_object_object_get_ex(rule, "Variable", &var);
	present = wf_path_get(json_object_get_string(var), doc, ctx, &v) == 0;
	if (strcmp(op, "IsPresent") == 0)
		return present == json_object_get_boolean(cmp);
	if (!present)
		return 0;
	if (strcmp(op, "IsNull") == 0)
		return (v == NULL) == json_object_get_boolean(cmp);
	if (strcmp(op, "IsString") == 0)
		return json_object_is_type(v, json_type_string) ==
		    json_object_get_boolean(cmp);
	if (strcmp(op, "IsNumeric") == 0)
		return is_number(v) == json_object_get_boolean(cmp);
	if (strcmp(op, "IsBoolean") == 0)
		return json_object_is_type(v, json_type_boolean) ==
		    json_object_get_boolean(cmp);
	{
		size_t ol = strlen(op);
		char base[64];

		if (ol > 4 && strcmp(op + ol - 4, "Path") == 0) {
			if (wf_path_get(json_object_get_string(cmp), doc, ctx,
			    &cmp) < 0)
				return 0;
			ol -= 4;
		}
		snprintf(base, sizeof(base), "%.*s", (int)ol, op);
		if (strncmp(base, "String", 6) == 0) {
			int c;

			if (!json_object_is_type(v, json_type_string) ||
			    !json_object_is_type(cmp, json_type_string))
				return 0;
			if (strcmp(base, "StringMatches") == 0)
				return glob(json_object_get_string(cmp),
				    json_object_get_string(v));
			c = strcmp(json_object_get_string(v),
			    json_object_get_string(cmp));
			if (strcmp(base, "StringEquals") == 0)
				return c == 0;
			if (strcmp(base, "StringLessThan") == 0)
				return c < 0;
			if (strcmp(base, "StringGreaterThan") == 0)
				return c > 0;
			if (strcmp(base, "StringLessThanEquals") == 0)
				return c <= 0;
			return c >= 0;
		}
		if (strncmp(base, "Numeric", 7) == 0) {
			double a, b;

			if (!is_number(v) || !is_number(cmp))
				return 0;
			a = json_object_get_double(v);
			b = json_object_get_double(cmp);
			if (strcmp(base, "NumericEquals") == 0)
				return a == b;
			if (strcmp(base, "NumericLessThan") == 0)
				return a < b;
			if (strcmp(base, "NumericGreaterThan") == 0)
				return a > b;
			if (strcmp(base, "NumericLessThanEquals") == 0)
				return a <= b;
			return a >= b;
		}
		if (strcmp(base, "BooleanEquals") == 0)
			return json_object_is_type(v, json_type_boolean) &&
			    json_object_is_type(cmp, json_type_boolean) &&
			    json_object_get_boolean(v) ==
			    json_object_get_boolean(cmp);
	}
	return 0;
}
