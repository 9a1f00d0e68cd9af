/*
 * test_wf_def.c - workflow definitions: what parses, what is refused
 * with which reason and position, and the data paths.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "core/wf_def.h"

static void
refused(const char *text, const char *want)
{
	char err[1024];
	struct wf_def *d = wf_def_parse(text, strlen(text), "t", err,
	    sizeof(err));

	cr_assert_null(d, "accepted: %s", text);
	cr_assert(strstr(err, want) != NULL, "'%s' lacks '%s'", err, want);
}

Test(wf_def, good_definition)
{
	static const char t[] = "{\"Comment\":\"c\",\"StartAt\":\"A\","
	    "\"States\":{\"A\":{\"Type\":\"Task\",\"Resource\":\"echo\","
	    "\"Retry\":[{\"ErrorEquals\":[\"States.ALL\"],\"MaxAttempts\":2}],"
	    "\"Catch\":[{\"ErrorEquals\":[\"x\"],\"Next\":\"F\"}],"
	    "\"Compensate\":{\"Resource\":\"undo\"},\"Next\":\"C\"},"
	    "\"C\":{\"Type\":\"Choice\",\"Choices\":[{\"And\":[{\"Variable\":"
	    "\"$.a\",\"NumericGreaterThan\":1},{\"Not\":{\"Variable\":\"$.b\","
	    "\"IsPresent\":true}}],\"Next\":\"S\"}],\"Default\":\"F\"},"
	    "\"S\":{\"Type\":\"Succeed\"},\"F\":{\"Type\":\"Fail\"}}}";
	char err[512];
	struct wf_def *d = wf_def_parse(t, strlen(t), "t", err, sizeof(err));

	cr_assert_not_null(d, "%s", err);
	cr_assert_str_eq(d->name, "t");
	cr_assert_eq(d->n_states, 4);
	cr_assert_eq(d->states[d->start_idx].n_retry, 1);
	cr_assert_str_eq(d->states[d->start_idx].comp->resource, "undo");
	wf_def_free(d);
}

Test(wf_def, refusals_name_reason_and_position)
{
	refused("{\"StartAt\":\"A\",", "ends inside a value");
	refused("{\"StartAt\":x}", "line 1, column");
	refused("{\"StartAt\":\"A\",\n\"States\":{\"A\":{\"Type\":\"Pass\","
	    "\"End\":true}},}", "line 2");
	refused("{\"StartAt\":\"B\",\"States\":{\"A\":{\"Type\":\"Pass\","
	    "\"End\":true}}}", "/StartAt");
	refused("{\"StartAt\":\"A\",\"States\":{\"A\":{\"Type\":\"Map\","
	    "\"End\":true}}}", "not in cmdhost's subset");
	refused("{\"StartAt\":\"A\",\"States\":{\"A\":{\"Type\":\"Pass\","
	    "\"Next\":\"Z\"}}}", "'Z', which is not a state");
	refused("{\"StartAt\":\"A\",\"States\":{\"A\":{\"Type\":\"Pass\","
	    "\"Next\":\"B\"},\"B\":{\"Type\":\"Pass\",\"Next\":\"A\"}}}",
	    "cycle that can never end");
	refused("{\"StartAt\":\"A\",\"States\":{\"A\":{\"Type\":\"Task\","
	    "\"Resource\":\"e\",\"Retry\":[{\"ErrorEquals\":[\"x\"],"
	    "\"MaxAttempts\":-1}],\"End\":true}}}", "/States/A/Retry/0");
	refused("{\"StartAt\":\"A\",\"States\":{\"A\":{\"Type\":\"Task\","
	    "\"Resource\":\"e\",\"Parameters\":{\"x.$\":\"$..a\"},"
	    "\"End\":true}}}", "/States/A/Parameters/x.$");
	refused("{\"StartAt\":\"A\",\"States\":{\"A\":{\"Type\":\"Task\","
	    "\"Resource\":\"arn:aws:lambda:x\",\"End\":true}}}", "not an ARN");
	refused("{\"StartAt\":\"A\",\"States\":{\"A\":{\"Type\":\"Pass\","
	    "\"End\":true},\"B\":{\"Type\":\"Pass\",\"End\":true}}}",
	    "cannot be reached");
	refused("{\"StartAt\":\"A\",\"Foo\":1,\"States\":{\"A\":{\"Type\":"
	    "\"Pass\",\"End\":true}}}", "'Foo' is not a field");
}

Test(wf_def, paths)
{
	struct json_object *doc = json_tokener_parse("{\"a\":{\"b\":[1,"
	    "{\"c\":\"x\"}]},\"n\":null}"), *ctx = json_tokener_parse(
	    "{\"Execution\":{\"Id\":\"E1\"}}"), *v, *t, *out;
	char err[256];

	cr_assert_eq(wf_path_get("$.a.b[1].c", doc, ctx, &v), 0);
	cr_assert_str_eq(json_object_get_string(v), "x");
	cr_assert_eq(wf_path_get("$['a']['b'][0]", doc, ctx, &v), 0);
	cr_assert_eq(json_object_get_int(v), 1);
	cr_assert_eq(wf_path_get("$.n", doc, ctx, &v), 0);
	cr_assert_null(v);
	cr_assert_eq(wf_path_get("$.zz", doc, ctx, &v), -1);
	cr_assert_eq(wf_path_get("$$.Execution.Id", doc, ctx, &v), 0);
	cr_assert_neq(wf_path_check("$.a[*]", 1, 0, err, sizeof(err)), 0);
	cr_assert_neq(wf_path_check("$.a[0]", 1, 1, err, sizeof(err)), 0);
	t = json_tokener_parse("{\"k.$\":\"$.a.b[1]\",\"l\":[{\"id.$\":"
	    "\"$$.Execution.Id\"}]}");
	out = wf_params_apply(t, doc, ctx, err, sizeof(err));
	cr_assert_not_null(out, "%s", err);
	cr_assert_str_eq(json_object_to_json_string_ext(out,
	    JSON_C_TO_STRING_PLAIN), "{\"k\":{\"c\":\"x\"},\"l\":[{\"id\":"
	    "\"E1\"}]}");
	json_object_put(out);
	json_object_put(t);
	t = json_tokener_parse("{\"k.$\":\"$.missing\"}");
	cr_assert_null(wf_params_apply(t, doc, ctx, err, sizeof(err)));
	cr_assert(strstr(err, "$.missing") != NULL, "%s", err);
	json_object_put(t);
	out = json_object_get(doc);
	cr_assert_eq(wf_path_set(&out, "$.r.s", json_object_new_int(7)), 0);
	cr_assert_eq(wf_path_get("$.r.s", out, ctx, &v), 0);
	cr_assert_eq(json_object_get_int(v), 7);
	cr_assert_eq(wf_path_set(&out, "$.a.b.c", json_object_new_int(1)),
	    -1, "through an array");
	json_object_put(out);
	json_object_put(doc);
	json_object_put(ctx);
}

Test(wf_def, errors_and_delays)
{
	char *all[] = { "States.ALL" }, *tf[] = { "States.TaskFailed" },
	    *to[] = { "States.Timeout" };
	struct wf_errors a = { all, 1 }, b = { tf, 1 }, c = { to, 1 };
	struct wf_retry r = { { all, 1 }, 0.5, 3, 2.0, 1.5 };

	cr_assert(wf_errors_match(&a, "x", 0, 1));
	cr_assert(!wf_errors_match(&a, "States.Runtime", 0, 0));
	cr_assert(wf_errors_match(&b, "x", 0, 1));
	cr_assert(!wf_errors_match(&b, "timeout", 1, 1));
	cr_assert(wf_errors_match(&c, "timeout", 1, 1));
	cr_assert_float_eq(wf_retry_delay(&r, 1), 0.5, 1e-9);
	cr_assert_float_eq(wf_retry_delay(&r, 2), 1.0, 1e-9);
	cr_assert_float_eq(wf_retry_delay(&r, 3), 1.5, 1e-9, "capped");
}
