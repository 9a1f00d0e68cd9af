/*
 * wf_def.c - parse and check a workflow definition (an Amazon States
 * Language subset) into struct wf_def.
 *
 * Everything outside the subset is refused with its position rather than
 * ignored: a definition that parses here means what docs/workflows.md
 * says.  The data paths live in wf_path.c.
 */
#include "wf_def.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generation.h"

char WF_PATH_NULL[] = "null";

/* Where we are, as a JSON pointer, and where errors go. */
struct ctx {
	char *err;
	size_t errlen;
	char where[512];
};

static int
fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(struct ctx *c, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "at %s: %s", c->where[0] ? c->where : "/",
	    msg);
	return -1;
}

/* Push a step onto the pointer; returns the old length to pop to. */
static size_t
push(struct ctx *c, const char *step)
{
	size_t n = strlen(c->where);

	snprintf(c->where + n, sizeof(c->where) - n, "/%s", step);
	return n;
}

static size_t
push_idx(struct ctx *c, size_t i)
{
	char b[32];

	snprintf(b, sizeof(b), "%zu", i);
	return push(c, b);
}

static void
pop(struct ctx *c, size_t n)
{
	c->where[n] = '\0';
}

/* Only these members may appear in obj. */
static int
only(struct ctx *c, struct json_object *obj, const char *const *allowed,
    const char *what)
{
	json_object_object_foreach(obj, key, val) {
		int ok = 0;

		(void)val;
		for (size_t i = 0; allowed[i] != NULL && !ok; i++)
			ok = strcmp(allowed[i], key) == 0;
		if (!ok)
			return fail(c, "'%s' is not a field cmdhost accepts in %s "
			    "(see docs/workflows.md for the subset)", key, what);
	}
	return 0;
}

static int
get_string(struct ctx *c, struct json_object *obj, const char *key,
    int required, char **out)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v)) {
		if (required)
			return fail(c, "'%s' is required", key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(c, "'%s' must be a string", key);
	if ((*out = strdup(json_object_get_string(v))) == NULL)
		return fail(c, "out of memory");
	return 0;
}

/* A path member: absent (NULL), null (WF_PATH_NULL) or a checked path. */
static int
get_path(struct ctx *c, struct json_object *obj, const char *key,
    int allow_null, int allow_ctx, int fields_only, char **out)
{
	struct json_object *v;
	char perr[256];

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (v == NULL) {
		if (!allow_null)
			return fail(c, "'%s' may not be null", key);
		*out = WF_PATH_NULL;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(c, "'%s' must be a path string such as \"$.a.b\"",
		    key);
	if (wf_path_check(json_object_get_string(v), allow_ctx, fields_only,
	    perr, sizeof(perr)) < 0)
		return fail(c, "'%s': %s", key, perr);
	if ((*out = strdup(json_object_get_string(v))) == NULL)
		return fail(c, "out of memory");
	return 0;
}

static int
get_number(struct ctx *c, struct json_object *obj, const char *key,
    double min, double max, double def, double *out)
{
	struct json_object *v;
	double d;

	*out = def;
	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) &&
	    !json_object_is_type(v, json_type_double))
		return fail(c, "'%s' must be a number", key);
	d = json_object_get_double(v);
	if (!(d >= min && d <= max))
		return fail(c, "'%s' must be between %g and %g", key, min, max);
	*out = d;
	return 0;
}

static int
get_int(struct ctx *c, struct json_object *obj, const char *key, int min,
    int max, int def, int *out)
{
	struct json_object *v;
	int64_t n;

	*out = def;
	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return fail(c, "'%s' must be an integer", key);
	n = json_object_get_int64(v);
	if (n < min || n > max)
		return fail(c, "'%s' must be between %d and %d", key, min, max);
	*out = (int)n;
	return 0;
}

/* ---------------------------------------------------------- templates */

/* Parameters / ResultSelector: every "k.$" value a valid path. */
static int
check_template(struct ctx *c, struct json_object *t)
{
	char perr[256];

	if (json_object_is_type(t, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(t); i++) {
			size_t n = push_idx(c, i);

			if (check_template(c, json_object_array_get_idx(t, i)) <
			    0)
				return -1;
			pop(c, n);
		}
		return 0;
	}
	if (!json_object_is_type(t, json_type_object))
		return 0;
	json_object_object_foreach(t, key, val) {
		size_t kl = strlen(key), n = push(c, key);

		if (kl >= 2 && strcmp(key + kl - 2, ".$") == 0) {
			if (!json_object_is_type(val, json_type_string))
				return fail(c, "a '.$' member must be a path "
				    "string");
			if (strncmp(json_object_get_string(val), "States.", 7)
			    == 0)
				return fail(c, "intrinsic functions (%s) are not "
				    "in cmdhost's subset",
				    json_object_get_string(val));
			if (wf_path_check(json_object_get_string(val), 1, 0,
			    perr, sizeof(perr)) < 0)
				return fail(c, "%s", perr);
		} else if (check_template(c, val) < 0)
			return -1;
		pop(c, n);
	}
	return 0;
}

static int
get_template(struct ctx *c, struct json_object *obj, const char *key,
    struct json_object **out)
{
	struct json_object *v;
	size_t n;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	n = push(c, key);
	if (check_template(c, v) < 0)
		return -1;
	pop(c, n);
	*out = json_object_get(v);
	return 0;
}

/* ---------------------------------------------------------- retry, catch */

static int
get_errors(struct ctx *c, struct json_object *obj, struct wf_errors *e)
{
	struct json_object *v;
	size_t n;

	if (!json_object_object_get_ex(obj, "ErrorEquals", &v) ||
	    !json_object_is_type(v, json_type_array) ||
	    json_object_array_length(v) == 0)
		return fail(c, "'ErrorEquals' must be a non-empty array of "
		    "error names");
	n = json_object_array_length(v);
	if ((e->names = calloc(n, sizeof(char *))) == NULL)
		return fail(c, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(v, i);

		if (!json_object_is_type(s, json_type_string) ||
		    json_object_get_string_len(s) == 0)
			return fail(c, "'ErrorEquals' item %zu must be a "
			    "non-empty string", i);
		if (strcmp(json_object_get_string(s), "States.ALL") == 0 &&
		    n != 1)
			return fail(c, "'States.ALL' must be alone in its "
			    "ErrorEquals");
		if ((e->names[i] = strdup(json_object_get_string(s))) == NULL)
			return fail(c, "out of memory");
		e->n = i + 1;
	}
	return 0;
}

static int
get_retry(struct ctx *c, struct json_object *obj, struct wf_retry **out,
    size_t *n_out)
{
	static const char *const fields[] = { "ErrorEquals", "IntervalSeconds",
		"MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy",
		"Comment", NULL };
	struct json_object *arr;
	size_t n, at = push(c, "Retry");

	if (!json_object_object_get_ex(obj, "Retry", &arr)) {
		pop(c, at);
		return 0;
	}
	if (!json_object_is_type(arr, json_type_array))
		return fail(c, "must be an array of retriers");
	n = json_object_array_length(arr);
	if (n == 0) {
		pop(c, at);
		return 0;
	}
	if ((*out = calloc(n, sizeof(**out))) == NULL)
		return fail(c, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *r = json_object_array_get_idx(arr, i), *j;
		struct wf_retry *w = &(*out)[i];
		size_t k = push_idx(c, i);

		*n_out = i + 1;
		if (!json_object_is_type(r, json_type_object))
			return fail(c, "a retrier must be an object");
		if (only(c, r, fields, "a retrier") < 0 ||
		    get_errors(c, r, &w->errors) < 0 ||
		    get_number(c, r, "IntervalSeconds", 0.001, 99999999, 1,
		    &w->interval_s) < 0 ||
		    get_number(c, r, "BackoffRate", 1.0, 1000, 2.0,
		    &w->backoff) < 0 ||
		    get_number(c, r, "MaxDelaySeconds", 0.001, 31622400, 0,
		    &w->max_delay_s) < 0 ||
		    get_int(c, r, "MaxAttempts", 0, 99999999, 3,
		    &w->max_attempts) < 0)
			return -1;
		if (json_object_object_get_ex(r, "JitterStrategy", &j) &&
		    (!json_object_is_type(j, json_type_string) ||
		    strcmp(json_object_get_string(j), "NONE") != 0))
			return fail(c, "'JitterStrategy': only \"NONE\" is "
			    "supported (delays are exact)");
		pop(c, k);
	}
	pop(c, at);
	return 0;
}

static int
get_catch(struct ctx *c, struct json_object *obj, struct wf_state *s)
{
	static const char *const fields[] = { "ErrorEquals", "Next",
		"ResultPath", "Comment", NULL };
	struct json_object *arr;
	size_t n, at = push(c, "Catch");

	if (!json_object_object_get_ex(obj, "Catch", &arr)) {
		pop(c, at);
		return 0;
	}
	if (!json_object_is_type(arr, json_type_array))
		return fail(c, "must be an array of catchers");
	n = json_object_array_length(arr);
	if (n > 0 && (s->catches = calloc(n, sizeof(*s->catches))) == NULL)
		return fail(c, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *r = json_object_array_get_idx(arr, i);
		struct wf_catch *w = &s->catches[i];
		size_t k = push_idx(c, i);

		s->n_catch = i + 1;
		w->next_idx = -1;
		if (!json_object_is_type(r, json_type_object))
			return fail(c, "a catcher must be an object");
		if (only(c, r, fields, "a catcher") < 0 ||
		    get_errors(c, r, &w->errors) < 0 ||
		    get_string(c, r, "Next", 1, &w->next) < 0 ||
		    get_path(c, r, "ResultPath", 1, 0, 1, &w->result_path) < 0)
			return -1;
		pop(c, k);
	}
	pop(c, at);
	return 0;
}

static int
get_comp(struct ctx *c, struct json_object *obj, struct wf_state *s)
{
	static const char *const fields[] = { "Resource", "Parameters",
		"Retry", "TimeoutSeconds", "Comment", NULL };
	struct json_object *v;
	struct wf_comp *w;
	size_t at;

	if (!json_object_object_get_ex(obj, "Compensate", &v))
		return 0;
	at = push(c, "Compensate");
	if (!json_object_is_type(v, json_type_object))
		return fail(c, "must be an object {\"Resource\": command, "
		    "\"Parameters\": ...}");
	if ((s->comp = w = calloc(1, sizeof(*w))) == NULL)
		return fail(c, "out of memory");
	if (only(c, v, fields, "Compensate") < 0 ||
	    get_string(c, v, "Resource", 1, &w->resource) < 0 ||
	    get_template(c, v, "Parameters", &w->params) < 0 ||
	    get_retry(c, v, &w->retry, &w->n_retry) < 0 ||
	    get_int(c, v, "TimeoutSeconds", 1, 99999999, 0, &w->timeout_s) < 0)
		return -1;
	if (!generation_valid_name(w->resource))
		return fail(c, "'Resource' '%s' is not a command name "
		    "([A-Za-z0-9_.:-]{1,128})", w->resource);
	pop(c, at);
	return 0;
}

/* ---------------------------------------------------------- choice */

static const char *const cmp_ops[] = {
	"StringEquals", "StringLessThan", "StringGreaterThan",
	"StringLessThanEquals", "StringGreaterThanEquals", "StringMatches",
	"NumericEquals", "NumericLessThan", "NumericGreaterThan",
	"NumericLessThanEquals", "NumericGreaterThanEquals", "BooleanEquals",
	"IsPresent", "IsNull", "IsString", "IsNumeric", "IsBoolean", NULL
};

static int
check_rule(struct ctx *c, struct json_object *r, int top)
{
	struct json_object *v;
	const char *op = NULL;
	int n_ops = 0;
	char perr[256];

	if (!json_object_is_type(r, json_type_object))
		return fail(c, "a choice rule must be an object");
	json_object_object_foreach(r, key, val) {
		(void)val;
		if (strcmp(key, "Next") == 0) {
			if (!top)
				return fail(c, "'Next' only on a top-level rule");
			continue;
		}
		if (strcmp(key, "Variable") == 0 || strcmp(key, "Comment") == 0)
			continue;
		if (strcmp(key, "And") == 0 || strcmp(key, "Or") == 0 ||
		    strcmp(key, "Not") == 0) {
			op = key;
			n_ops++;
			continue;
		}
		{
			int known = 0;
			size_t kl = strlen(key);

			for (size_t i = 0; cmp_ops[i] != NULL && !known; i++) {
				size_t ol = strlen(cmp_ops[i]);

				known = strcmp(key, cmp_ops[i]) == 0 ||
				    (kl == ol + 4 && strncmp(key, cmp_ops[i], ol)
				    == 0 && strcmp(key + ol, "Path") == 0 &&
				    strncmp(key, "Is", 2) != 0);
			}
			if (!known)
				return fail(c, "'%s' is not a comparison cmdhost "
				    "knows (String*, Numeric*, BooleanEquals, "
				    "Is*, their *Path forms, And, Or, Not)", key);
		}
		op = key;
		n_ops++;
	}
	if (top && !json_object_object_get_ex(r, "Next", &v))
		return fail(c, "a top-level choice rule needs 'Next'");
	if (n_ops != 1)
		return fail(c, "a choice rule needs exactly one comparison or "
		    "And/Or/Not");
	json_object_object_get_ex(r, op, &v);
	if (strcmp(op, "And") == 0 || strcmp(op, "Or") == 0) {
		size_t at = push(c, op);

		if (!json_object_is_type(v, json_type_array) ||
		    json_object_array_length(v) == 0)
			return fail(c, "must be a non-empty array of rules");
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			size_t k = push_idx(c, i);

			if (check_rule(c, json_object_array_get_idx(v, i), 0) <
			    0)
				return -1;
			pop(c, k);
		}
		pop(c, at);
		return 0;
	}
	if (strcmp(op, "Not") == 0) {
		size_t at = push(c, op);

		if (check_rule(c, v, 0) < 0)
			return -1;
		pop(c, at);
		return 0;
	}
	{
		struct json_object *var;
		size_t ol = strlen(op);
		int is_path = ol > 4 && strcmp(op + ol - 4, "Path") == 0;

		if (!json_object_object_get_ex(r, "Variable", &var) ||
		    !json_object_is_type(var, json_type_string))
			return fail(c, "'%s' needs 'Variable' (a path)", op);
		if (wf_path_check(json_object_get_string(var), 1, 0, perr,
		    sizeof(perr)) < 0)
			return fail(c, "'Variable': %s", perr);
		if (is_path) {
			if (!json_object_is_type(v, json_type_string) ||
			    wf_path_check(json_object_get_string(v), 1, 0, perr,
			    sizeof(perr)) < 0)
				return fail(c, "'%s' must be a path", op);
		} else if (strncmp(op, "String", 6) == 0) {
			if (!json_object_is_type(v, json_type_string))
				return fail(c, "'%s' must be a string", op);
		} else if (strncmp(op, "Numeric", 7) == 0) {
			if (!json_object_is_type(v, json_type_int) &&
			    !json_object_is_type(v, json_type_double))
				return fail(c, "'%s' must be a number", op);
		} else if (!json_object_is_type(v, json_type_boolean))
			return fail(c, "'%s' must be true or false", op);
	}
	return 0;
}

/* ---------------------------------------------------------- states */

static int
parse_state(struct ctx *c, const char *name, struct json_object *o,
    struct wf_state *s)
{
	static const char *const task_f[] = { "Type", "Comment", "Resource",
		"Parameters", "ResultSelector", "InputPath", "OutputPath",
		"ResultPath", "TimeoutSeconds", "Retry", "Catch", "Next", "End",
		"Compensate", NULL };
	static const char *const pass_f[] = { "Type", "Comment", "Parameters",
		"Result", "InputPath", "OutputPath", "ResultPath", "Next", "End",
		NULL };
	static const char *const choice_f[] = { "Type", "Comment", "Choices",
		"Default", "InputPath", "OutputPath", NULL };
	static const char *const succeed_f[] = { "Type", "Comment",
		"InputPath", "OutputPath", NULL };
	static const char *const fail_f[] = { "Type", "Comment", "Error",
		"Cause", NULL };
	struct json_object *v;
	const char *type;

	s->next_idx = s->default_idx = -1;
	if ((s->name = strdup(name)) == NULL)
		return fail(c, "out of memory");
	if (strlen(name) == 0 || strlen(name) > WF_NAME_MAX)
		return fail(c, "a state name must be 1 to %d bytes",
		    WF_NAME_MAX);
	if (!json_object_is_type(o, json_type_object))
		return fail(c, "a state must be an object");
	if (!json_object_object_get_ex(o, "Type", &v) ||
	    !json_object_is_type(v, json_type_string))
		return fail(c, "'Type' is required (Task, Pass, Choice, Succeed "
		    "or Fail)");
	type = json_object_get_string(v);
	if (get_string(c, o, "Comment", 0, &s->comment) < 0)
		return -1;
	if (strcmp(type, "Task") == 0) {
		s->type = WF_TASK;
		if (only(c, o, task_f, "a Task") < 0 ||
		    get_string(c, o, "Resource", 1, &s->resource) < 0 ||
		    get_template(c, o, "Parameters", &s->params) < 0 ||
		    get_template(c, o, "ResultSelector", &s->selector) < 0 ||
		    get_int(c, o, "TimeoutSeconds", 1, 99999999, 0,
		    &s->timeout_s) < 0 ||
		    get_retry(c, o, &s->retry, &s->n_retry) < 0 ||
		    get_catch(c, o, s) < 0 || get_comp(c, o, s) < 0)
			return -1;
		if (strncmp(s->resource, "arn:", 4) == 0)
			return fail(c, "'Resource' is a cmdhost command name, not "
			    "an ARN ('%s')", s->resource);
		if (!generation_valid_name(s->resource))
			return fail(c, "'Resource' '%s' is not a command name "
			    "([A-Za-z0-9_.:-]{1,128})", s->resource);
	} else if (strcmp(type, "Pass") == 0) {
		s->type = WF_PASS;
		if (only(c, o, pass_f, "a Pass") < 0 ||
		    get_template(c, o, "Parameters", &s->params) < 0)
			return -1;
		if (json_object_object_get_ex(o, "Result", &v))
			s->result = json_object_get(v);
	} else if (strcmp(type, "Choice") == 0) {
		size_t at;

		s->type = WF_CHOICE;
		if (only(c, o, choice_f, "a Choice") < 0 ||
		    get_string(c, o, "Default", 0, &s->deflt) < 0)
			return -1;
		at = push(c, "Choices");
		if (!json_object_object_get_ex(o, "Choices", &v) ||
		    !json_object_is_type(v, json_type_array) ||
		    json_object_array_length(v) == 0)
			return fail(c, "a Choice needs a non-empty 'Choices' "
			    "array");
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			size_t k = push_idx(c, i);

			if (check_rule(c, json_object_array_get_idx(v, i), 1) <
			    0)
				return -1;
			pop(c, k);
		}
		pop(c, at);
		s->choices = json_object_get(v);
		s->choice_next = calloc(json_object_array_length(v),
		    sizeof(int));
		if (s->choice_next == NULL)
			return fail(c, "out of memory");
	} else if (strcmp(type, "Succeed") == 0) {
		s->type = WF_SUCCEED;
		if (only(c, o, succeed_f, "a Succeed") < 0)
			return -1;
	} else if (strcmp(type, "Fail") == 0) {
		s->type = WF_FAIL;
		if (only(c, o, fail_f, "a Fail") < 0 ||
		    get_string(c, o, "Error", 0, &s->error) < 0 ||
		    get_string(c, o, "Cause", 0, &s->cause) < 0)
			return -1;
	} else if (strcmp(type, "Map") == 0 || strcmp(type, "Parallel") == 0 ||
	    strcmp(type, "Wait") == 0) {
		return fail(c, "state type '%s' is not in cmdhost's subset "
		    "(Task, Pass, Choice, Succeed, Fail)", type);
	} else {
		return fail(c, "unknown state type '%s' (Task, Pass, Choice, "
		    "Succeed, Fail)", type);
	}
	if (get_path(c, o, "InputPath", 1, 1, 0, &s->input_path) < 0 ||
	    get_path(c, o, "OutputPath", 1, 1, 0, &s->output_path) < 0 ||
	    get_path(c, o, "ResultPath", 1, 0, 1, &s->result_path) < 0)
		return -1;
	if (s->type == WF_TASK || s->type == WF_PASS) {
		struct json_object *end = NULL;
		int has_end = json_object_object_get_ex(o, "End", &end);

		if (has_end && !json_object_is_type(end, json_type_boolean))
			return fail(c, "'End' must be true or false");
		if (get_string(c, o, "Next", 0, &s->next) < 0)
			return -1;
		has_end = has_end && json_object_get_boolean(end);
		if (has_end && s->next != NULL)
			return fail(c, "a state has 'Next' or \"End\": true, not "
			    "both");
		if (!has_end && s->next == NULL)
			return fail(c, "a %s state needs 'Next' or \"End\": true",
			    type);
	}
	return 0;
}

/* Resolve a Next-like name to an index, or fail naming it. */
static int
resolve(struct ctx *c, const struct wf_def *d, const char *what,
    const char *name, int *idx)
{
	if ((*idx = wf_def_find(d, name)) < 0)
		return fail(c, "'%s' names '%s', which is not a state", what,
		    name);
	return 0;
}

/* Every state reachable from StartAt, and from every state a terminal
 * one (Succeed, Fail, End): else a cycle that cannot end. */
static int
check_graph(struct ctx *c, struct wf_def *d)
{
	size_t n = d->n_states;
	char *seen = calloc(n, 1), *ends = calloc(n, 1);
	int *stack = calloc(n + 1, sizeof(int)), sp = 0, changed, rc = 0;

	if (seen == NULL || ends == NULL || stack == NULL) {
		rc = fail(c, "out of memory");
		goto out;
	}
	stack[sp++] = d->start_idx;
	seen[d->start_idx] = 1;
	while (sp > 0) {
		const struct wf_state *s = &d->states[stack[--sp]];
		int nexts[1024], nn = 0;

		if (s->next_idx >= 0)
			nexts[nn++] = s->next_idx;
		for (size_t i = 0; i < s->n_catch && nn < 1000; i++)
			nexts[nn++] = s->catches[i].next_idx;
		if (s->type == WF_CHOICE) {
			for (size_t i = 0; i < json_object_array_length(
			    s->choices) && nn < 1000; i++)
				nexts[nn++] = s->choice_next[i];
			if (s->default_idx >= 0 && nn < 1023)
				nexts[nn++] = s->default_idx;
		}
		for (int i = 0; i < nn; i++)
			if (!seen[nexts[i]]) {
				seen[nexts[i]] = 1;
				stack[sp++] = nexts[i];
			}
	}
	for (size_t i = 0; i < n; i++)
		if (!seen[i]) {
			snprintf(c->where, sizeof(c->where), "/States/%s",
			    d->states[i].name);
			rc = fail(c, "state '%s' cannot be reached from StartAt",
			    d->states[i].name);
			goto out;
		}
	/* Which states can reach an end: a fixpoint. */
	for (size_t i = 0; i < n; i++) {
		const struct wf_state *s = &d->states[i];

		ends[i] = s->type == WF_SUCCEED || s->type == WF_FAIL ||
		    ((s->type == WF_TASK || s->type == WF_PASS) &&
		    s->next == NULL);
	}
	do {
		changed = 0;
		for (size_t i = 0; i < n; i++) {
			const struct wf_state *s = &d->states[i];
			int ok = 0;

			if (ends[i])
				continue;
			if (s->next_idx >= 0 && ends[s->next_idx])
				ok = 1;
			for (size_t k = 0; k < s->n_catch && !ok; k++)
				ok = ends[s->catches[k].next_idx];
			if (s->type == WF_CHOICE) {
				for (size_t k = 0; k < json_object_array_length(
				    s->choices) && !ok; k++)
					ok = ends[s->choice_next[k]];
				if (!ok && s->default_idx >= 0)
					ok = ends[s->default_idx];
			}
			if (ok)
				ends[i] = changed = 1;
		}
	} while (changed);
	for (size_t i = 0; i < n; i++)
		if (!ends[i]) {
			snprintf(c->where, sizeof(c->where), "/States/%s",
			    d->states[i].name);
			rc = fail(c, "state '%s' is in a cycle that can never "
			    "end: no path from it reaches Succeed, Fail or "
			    "\"End\": true", d->states[i].name);
			goto out;
		}
out:
	free(seen);
	free(ends);
	free(stack);
	return rc;
}

/* Syntax errors: the tokener's offset as line:column. */
static void
syntax_error(const char *text, size_t len, struct json_tokener *tok,
    char *err, size_t errlen)
{
	size_t at = json_tokener_get_parse_end(tok), line = 1, col = 1;

	if (at > len)
		at = len;
	for (size_t i = 0; i < at; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else
			col++;
	}
	snprintf(err, errlen, "at line %zu, column %zu: invalid JSON: %s",
	    line, col, json_tokener_error_desc(json_tokener_get_error(tok)));
}

struct wf_def *
wf_def_parse(const char *text, size_t len, const char *default_name,
    char *err, size_t errlen)
{
	static const char *const top_f[] = { "Comment", "StartAt", "States",
		"Version", "TimeoutSeconds", "Name", NULL };
	struct json_tokener *tok = json_tokener_new_ex(64);
	struct json_object *root = NULL, *states;
	struct wf_def *d = calloc(1, sizeof(*d));
	struct ctx c = { err, errlen, "" };
	char *start = NULL;
	size_t i;

	if (d == NULL || tok == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, text, (int)len);
	if (root == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) < len) {
		if (root != NULL && json_tokener_get_error(tok) ==
		    json_tokener_success) {
			/* Only white space may follow the object. */
			size_t at = json_tokener_get_parse_end(tok);

			while (at < len && strchr(" \t\r\n", text[at]) != NULL)
				at++;
			if (at == len)
				goto parsed;
			snprintf(err, errlen, "at byte %zu: text after the "
			    "definition's object", at);
			goto fail;
		}
		if (json_tokener_get_error(tok) == json_tokener_continue)
			snprintf(err, errlen, "at the end: invalid JSON: the "
			    "text ends inside a value");
		else
			syntax_error(text, len, tok, err, errlen);
		goto fail;
	}
parsed:
	d->root = root;
	if ((d->text = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(d->text, text, len);
	d->text[len] = '\0';
	d->hash = 1469598103934665603ULL;
	for (i = 0; i < len; i++)
		d->hash = (d->hash ^ (unsigned char)text[i]) *
		    1099511628211ULL;
	if (!json_object_is_type(root, json_type_object)) {
		fail(&c, "a definition is a JSON object");
		goto fail;
	}
	if (only(&c, root, top_f, "a definition") < 0 ||
	    get_string(&c, root, "Comment", 0, &d->comment) < 0 ||
	    get_string(&c, root, "Name", 0, &d->name) < 0 ||
	    get_string(&c, root, "StartAt", 1, &start) < 0)
		goto fail;
	if (d->name == NULL && (d->name = strdup(default_name)) == NULL) {
		fail(&c, "out of memory");
		goto fail;
	}
	if (!generation_valid_name(d->name) ||
	    strncmp(d->name, "host.", 5) == 0) {
		fail(&c, "the command name '%s' is not valid "
		    "([A-Za-z0-9_.:-]{1,128}, not host.*); set \"Name\" or "
		    "rename the file", d->name);
		goto fail;
	}
	if (!json_object_object_get_ex(root, "States", &states) ||
	    !json_object_is_type(states, json_type_object) ||
	    json_object_object_length(states) == 0) {
		fail(&c, "'States' must be a non-empty object");
		goto fail;
	}
	d->n_states = (size_t)json_object_object_length(states);
	if ((d->states = calloc(d->n_states, sizeof(*d->states))) == NULL) {
		fail(&c, "out of memory");
		goto fail;
	}
	i = 0;
	{
		json_object_object_foreach(states, name, o) {
			size_t at;

			snprintf(c.where, sizeof(c.where), "/States");
			at = push(&c, name);
			(void)at;
			if (parse_state(&c, name, o, &d->states[i++]) < 0)
				goto fail;
		}
	}
	c.where[0] = '\0';
	if ((d->start_idx = wf_def_find(d, start)) < 0) {
		snprintf(c.where, sizeof(c.where), "/StartAt");
		fail(&c, "'%s' is not a state", start);
		goto fail;
	}
	for (i = 0; i < d->n_states; i++) {
		struct wf_state *s = &d->states[i];

		snprintf(c.where, sizeof(c.where), "/States/%s", s->name);
		if (s->next != NULL && resolve(&c, d, "Next", s->next,
		    &s->next_idx) < 0)
			goto fail;
		if (s->deflt != NULL && resolve(&c, d, "Default", s->deflt,
		    &s->default_idx) < 0)
			goto fail;
		for (size_t k = 0; k < s->n_catch; k++)
			if (resolve(&c, d, "Catch Next", s->catches[k].next,
			    &s->catches[k].next_idx) < 0)
				goto fail;
		for (size_t k = 0; s->choices != NULL &&
		    k < json_object_array_length(s->choices); k++) {
			struct json_object *nx;

			json_object_object_get_ex(json_object_array_get_idx(
			    s->choices, k), "Next", &nx);
			if (!json_object_is_type(nx, json_type_string)) {
				fail(&c, "Choices[%zu] 'Next' must be a string",
				    k);
				goto fail;
			}
			if (resolve(&c, d, "Choice Next",
			    json_object_get_string(nx), &s->choice_next[k]) < 0)
				goto fail;
		}
	}
	c.where[0] = '\0';
	if (check_graph(&c, d) < 0)
		goto fail;
	free(start);
	json_tokener_free(tok);
	return d;
fail:
	free(start);
	if (d != NULL && d->root == NULL)
		json_object_put(root);
	json_tokener_free(tok);
	wf_def_free(d);
	return NULL;
}

static void
errors_free(struct wf_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->names[i]);
	free(e->names);
}

static void
retry_free(struct wf_retry *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		errors_free(&r[i].errors);
	free(r);
}

static void
path_free(char *p)
{
	if (p != WF_PATH_NULL)
		free(p);
}

void
wf_def_free(struct wf_def *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; d->states != NULL && i < d->n_states; i++) {
		struct wf_state *s = &d->states[i];

		free(s->name);
		free(s->comment);
		free(s->next);
		path_free(s->input_path);
		path_free(s->output_path);
		path_free(s->result_path);
		json_object_put(s->params);
		json_object_put(s->selector);
		json_object_put(s->result);
		free(s->resource);
		retry_free(s->retry, s->n_retry);
		for (size_t k = 0; k < s->n_catch; k++) {
			errors_free(&s->catches[k].errors);
			free(s->catches[k].next);
			path_free(s->catches[k].result_path);
		}
		free(s->catches);
		if (s->comp != NULL) {
			free(s->comp->resource);
			json_object_put(s->comp->params);
			retry_free(s->comp->retry, s->comp->n_retry);
			free(s->comp);
		}
		json_object_put(s->choices);
		free(s->choice_next);
		free(s->deflt);
		free(s->error);
		free(s->cause);
	}
	free(d->states);
	free(d->name);
	free(d->comment);
	free(d->text);
	json_object_put(d->root);
	free(d);
}

int
wf_def_find(const struct wf_def *d, const char *name)
{
	for (size_t i = 0; i < d->n_states; i++)
		if (d->states[i].name != NULL &&
		    strcmp(d->states[i].name, name) == 0)
			return (int)i;
	return -1;
}

int
wf_errors_match(const struct wf_errors *errors, const char *name,
    int is_timeout, int is_task)
{
	for (size_t i = 0; i < errors->n; i++) {
		const char *e = errors->names[i];

		if (strcmp(e, name) == 0)
			return 1;
		if (strcmp(e, "States.ALL") == 0 &&
		    strcmp(name, "States.Runtime") != 0)
			return 1;
		if (is_timeout && strcmp(e, "States.Timeout") == 0)
			return 1;
		if (is_task && !is_timeout &&
		    strcmp(e, "States.TaskFailed") == 0)
			return 1;
	}
	return 0;
}

double
wf_retry_delay(const struct wf_retry *r, int attempt)
{
	double d = r->interval_s;

	/* No libm: a loop, capped (the cap is reached long before). */
	for (int i = 1; i < attempt && i < 64; i++)
		d *= r->backoff;

	if (r->max_delay_s > 0 && d > r->max_delay_s)
		d = r->max_delay_s;
	return d;
}
