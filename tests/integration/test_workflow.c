/*
 * test_workflow.c - durable workflows on a real daemon: compensation in
 * reverse order (and none with a Catch), retries at their declared
 * intervals, paths, bad definitions refused, hot reload (running
 * executions finish on their version), SIGKILL between attempts, during
 * a step and during a compensation (each execution ends as it should,
 * nothing finished runs twice, the interrupted call runs again with the
 * same key), 1,000 executions at once, the metrics, and the cmdhost
 * workflow verbs.  The wfstep plugin's gates let a test kill at a known
 * point without sleeping.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* A directory of our own (state, definitions, the step log) that
 * outlives one daemon. */
static char base[64];

static char *
steps_log(void)
{
	return harness_file_text(base, "steps.log");
}

static struct daemon *
start(void)
{
	static const char *const plugins[] = { "wfstep.so", "plugins/echo.so",
		NULL };
	char config[1024];
	struct daemon_opts o = { 0 };

	snprintf(config, sizeof(config), "state_dir = %s/state\n"
	    "workflow_dir = %s/wf\nworkflow_poll_ms = 50\n"
	    "[plugin:wfstep]\nfile = %s/steps.log\n", base, base, base);
	o.plugins = plugins;
	o.config = config;
	return check_start(&o);
}

static void
setup(void)
{
	check_tmp_dir(base, sizeof(base), "wf", "wf");
}

static void
teardown(void)
{
	check_free();
	harness_rm_tree(base);
}

TestSuite(workflow, .init = setup, .fini = teardown, .timeout = 60);

#define STEP(tag, extra) "{\"Type\":\"Task\",\"Resource\":\"wfstep.do\"," \
	"\"Parameters\":{\"tag\":\"" tag "\",\"key.$\":" \
	"\"$$.Task.IdempotencyKey\"" extra "},\"ResultPath\":null," \
	"\"Compensate\":{\"Resource\":\"wfstep.do\",\"Parameters\":" \
	"{\"tag\":\"undo-" tag "\"}}"

static const char SAGA[] = "{\"StartAt\":\"A\",\"States\":{"
    "\"A\":" STEP("A", "") ",\"Next\":\"B\"},"
    "\"B\":" STEP("B", "") ",\"Next\":\"C\"},"
    "\"C\":" STEP("C", "") ",\"Next\":\"D\"},"
    "\"D\":" STEP("D", ",\"fail.$\":\"$.fail\"") ",\"End\":true}}}";

static const char SAGA_CATCH[] = "{\"StartAt\":\"A\",\"States\":{"
    "\"A\":" STEP("A", "") ",\"Next\":\"B\"},"
    "\"B\":" STEP("B", "") ",\"Next\":\"C\"},"
    "\"C\":" STEP("C", "") ",\"Next\":\"D\"},"
    "\"D\":" STEP("D", ",\"fail.$\":\"$.fail\"") ",\"End\":true,"
    "\"Catch\":[{\"ErrorEquals\":[\"step_failed\"],\"Next\":\"Handled\"}]},"
    "\"Handled\":{\"Type\":\"Pass\",\"End\":true}}}";

Test(workflow, compensation_in_reverse_order_once)
{
	json_object *r;
	char *log;
	const char *a, *b, *c;
	int fd;

	check_write_file(base, "wf/saga.json", SAGA);
	start();
	fd = check_connect();
	r = check_call(fd, "{\"id\":1,\"command\":\"saga\",\"payload\":"
	    "{\"fail\":true}}", 500, NULL);
	json_object_put(r);
	log = steps_log();
	CHECK(harness_count(log, "undo-C ") == 1 && harness_count(log, "undo-B ") == 1 &&
	    harness_count(log, "undo-A ") == 1 && harness_count(log, "undo-D ") == 0,
	    "each compensation once: %s", log);
	a = strstr(log, "undo-A ");
	b = strstr(log, "undo-B ");
	c = strstr(log, "undo-C ");
	CHECK(c < b && b < a, "reverse order C, B, A: %s", log);
	free(log);
	/* A success compensates nothing. */
	r = check_call(fd, "{\"id\":2,\"command\":\"saga\",\"payload\":"
	    "{\"fail\":false}}", 200, NULL);
	json_object_put(r);
	log = steps_log();
	CHECK(harness_count(log, "undo-") == 3, "%s", log);
	free(log);
	close(fd);
}

Test(workflow, catch_means_no_compensation)
{
	json_object *r;
	char *log;
	int fd;

	check_write_file(base, "wf/saga.json", SAGA_CATCH);
	start();
	fd = check_connect();
	r = check_call(fd, "{\"id\":1,\"command\":\"saga\",\"payload\":"
	    "{\"fail\":true}}", 200, NULL);
	json_object_put(r);
	log = steps_log();
	CHECK(harness_count(log, "undo-") == 0 && harness_count(log, "D ") == 1, "%s", log);
	free(log);
	close(fd);
}

Test(workflow, paths_and_missing_path)
{
	json_object *r;
	int fd;

	check_write_file(base, "wf/paths.json", "{\"StartAt\":\"E\",\"States\":{"
	    "\"E\":{\"Type\":\"Task\",\"Resource\":\"echo\",\"Parameters\":"
	    "{\"first.$\":\"$.items[1].name\",\"nested\":{\"id.$\":"
	    "\"$$.Execution.Id\"},\"lit\":[1,2]},\"ResultPath\":\"$.out.echo\","
	    "\"OutputPath\":\"$.out\",\"End\":true}}}");
	check_write_file(base, "wf/missing.json", "{\"StartAt\":\"E\",\"States\":{"
	    "\"E\":{\"Type\":\"Task\",\"Resource\":\"echo\",\"Parameters\":"
	    "{\"x.$\":\"$.nope\"},\"End\":true}}}");
	start();
	fd = check_connect();
	r = check_call(fd, "{\"id\":1,\"command\":\"paths\",\"payload\":"
	    "{\"items\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}", 200, NULL);
	CHECK(strstr(reply_text(r), "{\"echo\":{\"first\":\"b\","
	    "\"nested\":{\"id\":\"") != NULL &&
	    strstr(reply_text(r), "\"lit\":[1,2]") != NULL,
	    "%s", reply_text(r));
	json_object_put(r);
	r = check_call(fd, "{\"id\":2,\"command\":\"missing\",\"payload\":{}}",
	    500, "States.Runtime");
	CHECK(strstr(reply_error_message(r), "$.nope") != NULL, "%s",
	    reply_text(r));
	json_object_put(r);
	close(fd);
}

Test(workflow, retry_intervals_and_max_attempts)
{
	json_object *r;
	int64_t t0;
	char *log;
	int fd;

	check_write_file(base, "wf/retry.json", "{\"StartAt\":\"T\",\"States\":{"
	    "\"T\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"try\",\"fail\":true},\"Retry\":[{\"ErrorEquals\":"
	    "[\"step_failed\"],\"IntervalSeconds\":0.2,\"BackoffRate\":2,"
	    "\"MaxAttempts\":2}],\"End\":true}}}");
	start();
	fd = check_connect();
	t0 = now_ms();
	r = check_call(fd, "{\"id\":1,\"command\":\"retry\",\"payload\":{}}",
	    500, "step_failed");
	/* 0.2 s then 0.4 s: at least 600 ms, and not much more. */
	CHECK(now_ms() - t0 >= 590 && now_ms() - t0 < 5000, "took %lld ms",
	    (long long)(now_ms() - t0));
	json_object_put(r);
	log = steps_log();
	CHECK(harness_count(log, "try ") == 3, "1 + MaxAttempts 2: %s", log);
	free(log);
	close(fd);
}

Test(workflow, bad_definition_refused_previous_serves)
{
	json_object *r;
	int fd;

	check_write_file(base, "wf/hot.json", "{\"StartAt\":\"P\",\"States\":{\"P\":"
	    "{\"Type\":\"Pass\",\"Result\":1,\"End\":true}}}");
	check_write_file(base, "wf/cycle.json", "{\"StartAt\":\"A\",\"States\":{"
	    "\"A\":{\"Type\":\"Pass\",\"Next\":\"B\"},\"B\":{\"Type\":\"Pass\","
	    "\"Next\":\"A\"}}}");
	start();
	CHECK(daemon_log_wait(check_daemon(), "cycle that can never end",
	    5000) != 0, "the cycle is refused");
	fd = check_connect();
	r = check_call(fd, "{\"id\":1,\"command\":\"hot\"}", 200, NULL);
	CHECK(json_object_get_int(reply_body(r)) == 1, "%s", reply_text(r));
	json_object_put(r);
	/* A bad version: refused with its position, v1 keeps serving. */
	check_write_file(base, "wf/hot.json", "{\"StartAt\":\"P\",\"States\":{\"P\":"
	    "{\"Type\":\"Parallel\",\"End\":true}}}");
	CHECK(daemon_log_wait(check_daemon(), "/States/P", 5000) != 0,
	    "refused with the position");
	r = check_call(fd, "{\"id\":2,\"command\":\"hot\"}", 200, NULL);
	CHECK(json_object_get_int(reply_body(r)) == 1, "%s", reply_text(r));
	json_object_put(r);
	/* A good v2 takes over. */
	check_write_file(base, "wf/hot.json", "{\"StartAt\":\"P\",\"States\":{\"P\":"
	    "{\"Type\":\"Pass\",\"Result\":2,\"End\":true}}}");
	for (int i = 0; i < 100; i++) {
		r = check_call(fd, "{\"id\":3,\"command\":\"hot\"}", 200, NULL);
		if (json_object_get_int(reply_body(r)) == 2) {
			json_object_put(r);
			break;
		}
		json_object_put(r);
		CHECK(i < 99, "v2 never served");
		nap_ms(50);
	}
	close(fd);
}

Test(workflow, thousand_executions_all_finish, .timeout = 90)
{
	json_object *r;
	char line[128];
	int fd, done = 0;

	check_write_file(base, "wf/three.json", "{\"StartAt\":\"A\",\"States\":{"
	    "\"A\":{\"Type\":\"Task\",\"Resource\":\"echo\",\"ResultPath\":"
	    "\"$.a\",\"Next\":\"B\"},\"B\":{\"Type\":\"Task\",\"Resource\":"
	    "\"echo\",\"ResultPath\":\"$.b\",\"Next\":\"C\"},\"C\":{\"Type\":"
	    "\"Task\",\"Resource\":\"echo\",\"ResultPath\":\"$.c\",\"End\":"
	    "true}}}");
	start();
	fd = check_connect();
	for (int i = 0; i < 1000; i++) {
		snprintf(line, sizeof(line), "{\"id\":%d,\"command\":\"three\","
		    "\"async\":true,\"payload\":{\"n\":%d}}", i, i);
		r = check_call(fd, line, 202, NULL);
		json_object_put(r);
	}
	for (int i = 0; i < 1500 && !done; i++) {
		r = check_call(fd, "{\"id\":0,\"command\":\"host.executions\","
		    "\"payload\":{\"limit\":1}}", 200, NULL);
		done = strstr(reply_text(r), "\"counts\":{\"succeeded\":1000}")
		    != NULL;
		if (!done)
			nap_ms(20);
		json_object_put(r);
	}
	CHECK(done, "not all 1000 executions succeeded");
	/* Each history is complete: started, 3 x (scheduled, succeeded)
	 * minus the last succeeded folded into the end = 7 events. */
	r = check_call(fd, "{\"id\":0,\"command\":\"host.executions\","
	    "\"payload\":{\"limit\":1000}}", 200, NULL);
	CHECK(harness_count(reply_text(r), "\"events\":7") == 1000, "histories");
	json_object_put(r);
	close(fd);
}

/* ------------------------------------------------------------ the CLI */

#define CLI CMDHOST_BUILD_DIR "/cmdhost"

/* Run cmdhost -s SOCK (sock may be NULL) with args (NULL-ended, at most
 * 8); the exit status, *out and *err new strings (free them). */
static int
cli(const char *sock, char **out, char **err, ...)
{
	char *argv[16];
	const char *a;
	int n = 0, status = -1;
	va_list ap;

	argv[n++] = (char *)CLI;
	if (sock != NULL) {
		argv[n++] = (char *)"-s";
		argv[n++] = (char *)sock;
	}
	va_start(ap, err);
	while (n < 14 && (a = va_arg(ap, const char *)) != NULL)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	cr_assert_eq(run_command(argv, NULL, 30000, &status, out, err), 0,
	    "could not run %s", CLI);
	cr_assert_not_null(*out);
	cr_assert_not_null(*err);
	return status;
}

/* Wait (bounded) until execution id is no longer running; its status
 * line from host.executions. */
static void
wait_finished(int fd, const char *id)
{
	char line[256];

	snprintf(line, sizeof(line), "{\"id\":9,\"command\":\"host.executions\","
	    "\"payload\":{\"id\":\"%s\"}}", id);
	for (int i = 0; i < 1000; i++) {
		json_object *r = check_call(fd, line, 200, NULL);
		const char *st = json_object_get_string(json_object_object_get(
		    reply_body(r), "status"));
		int done = st != NULL && strcmp(st, "running") != 0 &&
		    strcmp(st, "compensating") != 0;

		json_object_put(r);
		if (done)
			return;
		nap_ms(20);
	}
	cr_assert_fail("execution %s never finished", id);
}

/* The execution id of an async call's 202 (new string). */
static char *
start_async(int fd, const char *line)
{
	json_object *r = check_call(fd, line, 202, NULL);
	char *id = strdup(json_object_get_string(json_object_object_get(
	    reply_body(r), "execution_id")));

	json_object_put(r);
	return id;
}

Test(workflow, cli_list_and_show)
{
	struct daemon *d;
	char *out, *err, *bad, *good;
	int fd, st;

	check_write_file(base, "wf/saga.json", SAGA);
	d = start();
	fd = check_connect();
	bad = start_async(fd, "{\"id\":\"run-bad\",\"command\":\"saga\","
	    "\"async\":true,\"payload\":{\"fail\":true}}");
	good = start_async(fd, "{\"id\":\"run-good\",\"command\":\"saga\","
	    "\"async\":true,\"payload\":{\"fail\":false}}");
	wait_finished(fd, bad);
	wait_finished(fd, good);

	st = cli(daemon_socket_path(d), &out, &err, "workflow", "list",
	    "--status", "failed", NULL);
	CHECK(st == 0, "exit %d: %s", st, err);
	CHECK(strstr(out, bad) != NULL && strstr(out, good) == NULL &&
	    strstr(out, "counts: failed 1, succeeded 1") != NULL,
	    "only the failed one, and the counts:\n%s", out);
	free(out);
	free(err);
	st = cli(daemon_socket_path(d), &out, &err, "workflow", "list", NULL);
	CHECK(st == 0 && strstr(out, bad) != NULL && strstr(out, good) !=
	    NULL, "both:\n%s", out);
	free(out);
	free(err);

	st = cli(daemon_socket_path(d), &out, &err, "workflow", "show", bad,
	    NULL);
	CHECK(st == 0, "exit %d: %s", st, err);
	CHECK(strstr(out, "status     failed") != NULL &&
	    strstr(out, "current    D") != NULL, "status and state:\n%s", out);
	/* The compensations in the order they ran, then the history: each
	 * step's event with the request id of its call. */
	CHECK(strstr(out, "compensations (in the order they ran):") != NULL &&
	    strstr(out, "  C ") < strstr(out, "  B ") &&
	    strstr(out, "  B ") < strstr(out, "  A "), "%s", out);
	CHECK(strstr(out, "ExecutionStarted") != NULL &&
	    strstr(out, "TaskFailed") != NULL &&
	    strstr(out, "error step_failed") != NULL && strstr(out,
	    "CompensationSucceeded") != NULL && strstr(out,
	    "ExecutionFailed") != NULL, "history:\n%s", out);
	{
		/* Every TaskSucceeded, TaskFailed and CompensationSucceeded
		 * row names a request id. */
		int rows = 0;

		for (char *l = strtok(out, "\n"); l != NULL;
		    l = strtok(NULL, "\n")) {
			char seq[16], time[64], type[64], state[64], att[16],
			    rid[64];

			if (sscanf(l, "%15s %63s %63s %63s %15s %63s", seq, time,
			    type, state, att, rid) != 6)
				continue;
			if (strcmp(type, "TaskSucceeded") != 0 &&
			    strcmp(type, "TaskFailed") != 0 &&
			    strcmp(type, "CompensationSucceeded") != 0)
				continue;
			rows++;
			CHECK(strlen(rid) >= 16 && strcmp(rid, "-") != 0,
			    "a request id: %s", l);
		}
		CHECK(rows == 3 + 1 + 3, "A, B, C ok, D failed, 3 undone: %d",
		    rows);
	}
	free(out);
	free(err);

	/* The succeeded one: its last step's request id is on the end. */
	st = cli(daemon_socket_path(d), &out, &err, "workflow", "show", good,
	    "--json", NULL);
	CHECK(st == 0 && strstr(out, "\"type\":\"ExecutionSucceeded\"") !=
	    NULL, "%s", out);
	{
		json_object *o = json_tokener_parse(out), *h, *last;

		cr_assert_not_null(o, "%s", out);
		h = json_object_object_get(o, "history");
		last = json_object_array_get_idx(h,
		    json_object_array_length(h) - 1);
		CHECK(json_object_get_string(json_object_object_get(last,
		    "request_id")) != NULL, "the last step's request id: %s",
		    json_object_to_json_string(last));
		json_object_put(o);
	}
	free(out);
	free(err);

	st = cli(daemon_socket_path(d), &out, &err, "workflow", "show",
	    "no-such-id", NULL);
	CHECK(st == 1 && strstr(err, "404") != NULL, "exit %d: %s", st, err);
	free(out);
	free(err);
	st = cli(daemon_socket_path(d), &out, &err, "workflow", "frob", NULL);
	CHECK(st == 2, "usage: exit %d", st);
	free(out);
	free(err);
	free(bad);
	free(good);
	close(fd);
}

Test(workflow, cli_check_offline)
{
	char good[256], syntax[256], meaning[256], *out, *err;
	int st;

	/* No daemon: check reads the files only. */
	check_write_file(base, "good.json", SAGA);
	check_write_file(base, "syntax.json", "{\"StartAt\":\"A\",\n"
	    "  \"States\": {\"A\": {\"Type\": \"Pass\" \"End\": true}}}");
	check_write_file(base, "meaning.json", "{\"StartAt\":\"P\",\"States\":{\"P\":"
	    "{\"Type\":\"Task\",\"Resource\":\"echo\",\"Retry\":[{"
	    "\"ErrorEquals\":[\"x\"],\"MaxAttempts\":-1}],\"End\":true}}}");
	snprintf(good, sizeof(good), "%s/good.json", base);
	snprintf(syntax, sizeof(syntax), "%s/syntax.json", base);
	snprintf(meaning, sizeof(meaning), "%s/meaning.json", base);

	st = cli(NULL, &out, &err, "workflow", "check", good, NULL);
	CHECK(st == 0, "exit %d: %s", st, err);
	CHECK(strstr(out, "ok: workflow good, 4 states, starts at A") != NULL &&
	    strstr(out, "wfstep.do (compensation)") != NULL, "%s", out);
	free(out);
	free(err);

	st = cli(NULL, &out, &err, "workflow", "check", good, syntax, meaning,
	    NULL);
	CHECK(st == 1, "a bad one: exit %d", st);
	CHECK(strstr(out, "good.json: ok") != NULL, "%s", out);
	CHECK(strstr(err, "syntax.json: refused:") != NULL &&
	    strstr(err, "line 2") != NULL, "syntax, with its line: %s", err);
	CHECK(strstr(err, "meaning.json: refused: at /States/P/Retry/0") !=
	    NULL, "meaning, with its pointer: %s", err);
	free(out);
	free(err);

	st = cli(NULL, &out, &err, "workflow", "check", "/nonexistent.json",
	    NULL);
	CHECK(st == 1 && strstr(err, "cannot open") != NULL, "%d %s", st, err);
	free(out);
	free(err);
	st = cli(NULL, &out, &err, "workflow", "check", NULL);
	CHECK(st == 2, "no file: usage, exit %d", st);
	free(out);
	free(err);
}

/* ------------------------------------------------------------ metrics */

/* The value of the sample line that starts with `head` (name{labels}
 * and a space), or -1. */
static double
prom_value(const char *text, const char *head)
{
	const char *p = text;

	while ((p = strstr(p, head)) != NULL) {
		if (p == text || p[-1] == '\n')
			return strtod(p + strlen(head), NULL);
		p++;
	}
	return -1;
}

/* host.stats workflows.<wf>.<key>, or -1. */
static int64_t
stat_of(int fd, const char *wf, const char *key)
{
	json_object *r = check_call(fd, "{\"id\":7,\"command\":\"host.stats\"}",
	    200, NULL), *w, *v;
	int64_t n = -1;

	if (json_object_object_get_ex(reply_body(r), "workflows", &w) &&
	    json_object_object_get_ex(w, wf, &w) &&
	    json_object_object_get_ex(w, key, &v))
		n = json_object_get_int64(v);
	json_object_put(r);
	return n;
}

Test(workflow, metrics_in_stats_and_prometheus)
{
	struct daemon *d;
	json_object *r;
	char *out, *err;
	int fd, st;

	check_write_file(base, "wf/saga.json", SAGA);
	/* A compensation that fails: compensation_failed. */
	check_write_file(base, "wf/cfail.json", "{\"StartAt\":\"A\",\"States\":{"
	    "\"A\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"cA\"},\"Compensate\":{\"Resource\":\"wfstep.do\","
	    "\"Parameters\":{\"tag\":\"undo-cA\",\"fail\":true}},\"Next\":"
	    "\"F\"},\"F\":{\"Type\":\"Fail\",\"Error\":\"Nope\"}}}");
	d = start();
	fd = check_connect();
	CHECK(stat_of(fd, "saga", "started") <= 0, "nothing yet");
	r = check_call(fd, "{\"id\":1,\"command\":\"saga\",\"payload\":"
	    "{\"fail\":false}}", 200, NULL);
	json_object_put(r);
	r = check_call(fd, "{\"id\":2,\"command\":\"saga\",\"payload\":"
	    "{\"fail\":false}}", 200, NULL);
	json_object_put(r);
	r = check_call(fd, "{\"id\":3,\"command\":\"saga\",\"payload\":"
	    "{\"fail\":true}}", 500, NULL);
	json_object_put(r);
	r = check_call(fd, "{\"id\":4,\"command\":\"cfail\",\"payload\":{}}",
	    500, "compensation_failed");
	json_object_put(r);
	CHECK(stat_of(fd, "saga", "started") == 3 &&
	    stat_of(fd, "saga", "succeeded") == 2 &&
	    stat_of(fd, "saga", "compensated") == 1 &&
	    stat_of(fd, "saga", "failed") == 0 &&
	    stat_of(fd, "saga", "running") == 0,
	    "saga: 3 started, 2 succeeded, 1 compensated");
	CHECK(stat_of(fd, "cfail", "started") == 1 &&
	    stat_of(fd, "cfail", "compensation_failed") == 1 &&
	    stat_of(fd, "cfail", "compensated") == 0, "cfail");

	st = cli(daemon_socket_path(d), &out, &err, "stats", "--prometheus",
	    NULL);
	CHECK(st == 0, "exit %d: %s", st, err);
	CHECK(strstr(out, "# TYPE cmdhost_workflow_executions_started_total "
	    "counter\n") != NULL && strstr(out, "# TYPE "
	    "cmdhost_workflow_duration_seconds histogram\n") != NULL,
	    "the families:\n%s", out);
	CHECK(prom_value(out, "cmdhost_workflow_executions_started_total"
	    "{workflow=\"saga\"} ") == 3 &&
	    prom_value(out, "cmdhost_workflow_executions_succeeded_total"
	    "{workflow=\"saga\"} ") == 2 &&
	    prom_value(out, "cmdhost_workflow_executions_compensated_total"
	    "{workflow=\"saga\"} ") == 1 &&
	    prom_value(out, "cmdhost_workflow_executions_failed_total"
	    "{workflow=\"saga\"} ") == 0 &&
	    prom_value(out, "cmdhost_workflow_executions_compensation_failed_"
	    "total{workflow=\"cfail\"} ") == 1 &&
	    prom_value(out, "cmdhost_workflow_executions_running"
	    "{workflow=\"saga\"} ") == 0, "counters:\n%s", out);
	/* Every execution is in the histogram's +Inf and count; the
	 * buckets never go down. */
	CHECK(prom_value(out, "cmdhost_workflow_duration_seconds_bucket"
	    "{workflow=\"saga\",le=\"+Inf\"} ") == 3 &&
	    prom_value(out, "cmdhost_workflow_duration_seconds_count"
	    "{workflow=\"saga\"} ") == 3 &&
	    prom_value(out, "cmdhost_workflow_duration_seconds_bucket"
	    "{workflow=\"saga\",le=\"60\"} ") <= 3 &&
	    prom_value(out, "cmdhost_workflow_duration_seconds_bucket"
	    "{workflow=\"saga\",le=\"0.001\"} ") <= prom_value(out,
	    "cmdhost_workflow_duration_seconds_bucket{workflow=\"saga\","
	    "le=\"60\"} "), "histogram:\n%s", out);
	CHECK(prom_value(out, "cmdhost_workflow_executions_unfinished ") == 0,
	    "unfinished:\n%s", out);
	if (access("/usr/bin/promtool", X_OK) == 0) {
		char *pargv[] = { (char *)"/usr/bin/promtool", (char *)"check",
		    (char *)"metrics", NULL };
		char *pout = NULL, *perr = NULL;

		CHECK(run_command(pargv, out, 30000, &st, &pout, &perr) == 0 &&
		    st == 0, "promtool check metrics: status %d\n%s%s", st,
		    pout ? pout : "", perr ? perr : "");
		free(pout);
		free(perr);
	} else {
		cr_log_warn("promtool is not installed: not checked by it");
	}
	free(out);
	free(err);
	close(fd);
}

/* ------------------------------------------------------------ kills */

/* Wait (bounded) until base/NAME holds needle. */
static void
wait_text(const char *name, const char *needle)
{
	for (int i = 0; i < 1500; i++) {
		char *t = harness_file_text(base, name);
		int found = strstr(t, needle) != NULL;

		free(t);
		if (found)
			return;
		nap_ms(20);
	}
	cr_assert_fail("%s never held '%s'", name, needle);
}

/* host.executions of id as text (new string). */
static char *
show_text(int fd, const char *id)
{
	char line[256];
	json_object *r;
	char *t;

	snprintf(line, sizeof(line), "{\"id\":8,\"command\":\"host.executions\","
	    "\"payload\":{\"id\":\"%s\"}}", id);
	r = check_call(fd, line, 200, NULL);
	t = strdup(reply_text(r));
	json_object_put(r);
	return t;
}

/* How many lines of text start with head. */
static int
count_starts(const char *text, const char *head)
{
	int n = 0;

	for (const char *p = text; p != NULL && *p != '\0';
	    p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		n += strncmp(p, head, strlen(head)) == 0;
	return n;
}

/* Every line of text ("<tag> <key>") is there once: nothing that
 * finished ran twice. */
static void
check_lines_unique(const char *text)
{
	char *copy = strdup(text), *save = NULL;

	for (char *l = strtok_r(copy, "\n", &save); l != NULL;
	    l = strtok_r(NULL, "\n", &save)) {
		char want[512];

		snprintf(want, sizeof(want), "%s\n", l);
		CHECK(harness_count(text, want) == 1, "'%s' more than once:\n%s", l,
		    text);
	}
	free(copy);
}

/* Kill the daemon (SIGKILL), then open base/GATE (so that the step
 * waiting there cannot finish before the kill), and start a new daemon
 * on the same state. */
static struct daemon *
kill_and_restart(struct daemon *d, const char *gate)
{
	kill(daemon_pid(d), SIGKILL);
	daemon_wait(d, 5000);
	check_free();
	check_write_file(base, gate, "");
	return start();
}

Test(workflow, sigkill_between_attempts_resumes_at_its_time)
{
	struct daemon *d;
	char def[1024], gate[256], line[512], *id, *log, *show;
	int fd;

	/* B fails until the gate exists, retried 3 s later: kill while it
	 * waits, with nothing in flight. */
	snprintf(gate, sizeof(gate), "%s/gate-b", base);
	snprintf(def, sizeof(def), "{\"StartAt\":\"A\",\"States\":{"
	    "\"A\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"A\",\"key.$\":\"$$.Task.IdempotencyKey\"},"
	    "\"ResultPath\":null,\"Next\":\"B\"},"
	    "\"B\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"B\",\"key.$\":\"$$.Task.IdempotencyKey\","
	    "\"fail_unless\":\"%s\"},\"ResultPath\":null,\"Retry\":[{"
	    "\"ErrorEquals\":[\"step_failed\"],\"IntervalSeconds\":3,"
	    "\"MaxAttempts\":5,\"BackoffRate\":1}],\"Next\":\"C\"},"
	    "\"C\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"C\",\"key.$\":\"$$.Task.IdempotencyKey\"},"
	    "\"End\":true}}}", gate);
	check_write_file(base, "wf/between.json", def);
	d = start();
	fd = check_connect();
	id = start_async(fd, "{\"id\":1,\"command\":\"between\",\"async\":true,"
	    "\"payload\":{}}");
	for (int i = 0; i < 1500; i++) {
		show = show_text(fd, id);
		if (strstr(show, "TaskRetryScheduled") != NULL)
			break;
		free(show);
		show = NULL;
		nap_ms(10);
	}
	CHECK(show != NULL, "B's retry was never scheduled");
	free(show);
	close(fd);
	d = kill_and_restart(d, "gate-b");
	fd = check_connect();
	wait_finished(fd, id);
	show = show_text(fd, id);
	CHECK(strstr(show, "\"status\":\"succeeded\"") != NULL &&
	    strstr(show, "\"type\":\"ExecutionResumed\"") != NULL &&
	    strstr(show, "\"rerun_step\":false") != NULL, "%s", show);
	free(show);
	log = steps_log();
	CHECK(harness_count(log, "A ") == 1 && harness_count(log, "C ") == 1, "A and C once:\n"
	    "%s", log);
	snprintf(line, sizeof(line), "B wf:%s:2:B:1\n", id);
	CHECK(harness_count(log, line) == 1, "B's first attempt once:\n%s", log);
	snprintf(line, sizeof(line), "B wf:%s:2:B:2\n", id);
	CHECK(harness_count(log, line) == 1, "then attempt 2 after the restart, "
	    "not attempt 1 again:\n%s", log);
	check_lines_unique(log);
	free(log);
	free(id);
	close(fd);
	(void)d;
}

Test(workflow, sigkill_during_step_reruns_it_once)
{
	struct daemon *d;
	char def[1024], line[512], *id, *log, *enter, *show;
	int fd;

	/* B waits at its gate (after writing its .enter line): killed
	 * there, it has not finished; after the restart it runs again with
	 * the same key, once. */
	snprintf(def, sizeof(def), "{\"StartAt\":\"A\",\"States\":{"
	    "\"A\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"A\",\"key.$\":\"$$.Task.IdempotencyKey\"},"
	    "\"ResultPath\":null,\"Next\":\"B\"},"
	    "\"B\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"B\",\"key.$\":\"$$.Task.IdempotencyKey\","
	    "\"gate\":\"%s/gate-b\"},\"TimeoutSeconds\":3,\"ResultPath\":null,"
	    "\"Next\":\"C\"},"
	    "\"C\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"C\",\"key.$\":\"$$.Task.IdempotencyKey\"},"
	    "\"End\":true}}}", base);
	check_write_file(base, "wf/during.json", def);
	d = start();
	fd = check_connect();
	id = start_async(fd, "{\"id\":1,\"command\":\"during\",\"async\":true,"
	    "\"payload\":{}}");
	close(fd);
	wait_text("steps.log.enter", "B wf:");
	d = kill_and_restart(d, "gate-b");
	fd = check_connect();
	wait_finished(fd, id);
	show = show_text(fd, id);
	CHECK(strstr(show, "\"status\":\"succeeded\"") != NULL &&
	    strstr(show, "\"rerun_step\":true") != NULL, "%s", show);
	free(show);
	log = steps_log();
	enter = harness_file_text(base, "steps.log.enter");
	snprintf(line, sizeof(line), "B wf:%s:2:B:1\n", id);
	/* Killed before it finished, so B finished once: after the
	 * restart, with the same key as the first time. */
	CHECK(harness_count(log, "A ") == 1 && harness_count(log, line) == 1 &&
	    harness_count(log, "B ") == 1 && harness_count(log, "C ") == 1, "%s", log);
	CHECK(harness_count(enter, line) == 2, "B entered twice, same key:\n%s", enter);
	free(enter);
	free(log);
	free(id);
	close(fd);
	(void)d;
}

#define GSTEP(tag, comp_params, extra) "{\"Type\":\"Task\",\"Resource\":" \
	"\"wfstep.do\",\"Parameters\":{\"tag\":\"" tag "\",\"key.$\":" \
	"\"$$.Task.IdempotencyKey\",\"undo_gate.$\":\"$.gate\"" extra "}," \
	"\"ResultPath\":null,\"Compensate\":{\"Resource\":\"wfstep.do\"," \
	"\"TimeoutSeconds\":3,\"Parameters\":{\"tag\":\"undo-" tag "\"," \
	"\"key.$\":\"$$.Task.IdempotencyKey\"" comp_params "}}"

Test(workflow, sigkill_during_compensation_finishes_the_rest_once)
{
	static const char def[] = "{\"StartAt\":\"A\",\"States\":{"
	    "\"A\":" GSTEP("A", "", "") ",\"Next\":\"B\"},"
	    "\"B\":" GSTEP("B", ",\"gate.$\":\"$.input.undo_gate\"", "")
	    ",\"Next\":\"C\"},"
	    "\"C\":" GSTEP("C", "", "") ",\"Next\":\"D\"},"
	    "\"D\":" GSTEP("D", "", ",\"fail\":true") ",\"End\":true}}}";
	struct daemon *d;
	char payload[512], *id, *log, *enter, *show;
	const char *a, *b, *c;
	int fd;

	check_write_file(base, "wf/comp.json", def);
	d = start();
	fd = check_connect();
	snprintf(payload, sizeof(payload), "{\"id\":1,\"command\":\"comp\","
	    "\"async\":true,\"payload\":{\"gate\":\"%s/gate-undo-b\"}}", base);
	id = start_async(fd, payload);
	close(fd);
	/* D failed, C was compensated, B's compensation waits: kill. */
	wait_text("steps.log.enter", "undo-B wf:");
	d = kill_and_restart(d, "gate-undo-b");
	fd = check_connect();
	wait_finished(fd, id);
	show = show_text(fd, id);
	CHECK(strstr(show, "\"status\":\"failed\"") != NULL &&
	    strstr(show, "\"rerun_step\":true") != NULL, "%s", show);
	free(show);
	log = steps_log();
	enter = harness_file_text(base, "steps.log.enter");
	CHECK(count_starts(log, "A ") == 1 && count_starts(log, "B ") == 1 &&
	    count_starts(log, "C ") == 1 && count_starts(log, "D ") == 1,
	    "no step ran again:\n%s", log);
	CHECK(harness_count(log, "undo-C ") == 1 && harness_count(log, "undo-B ") == 1 &&
	    harness_count(log, "undo-A ") == 1 && harness_count(log, "undo-D ") == 0,
	    "each compensation once:\n%s", log);
	c = strstr(log, "undo-C ");
	b = strstr(log, "undo-B ");
	a = strstr(log, "undo-A ");
	CHECK(c < b && b < a, "still C, B, A:\n%s", log);
	CHECK(harness_count(enter, "undo-B wf:") == 2 && harness_count(enter, ":comp:1:1\n") ==
	    2, "B's compensation entered twice, same key:\n%s", enter);
	check_lines_unique(log);
	free(enter);
	free(log);
	free(id);
	close(fd);
	(void)d;
}

/* ------------------------------------------------------------ reload */

Test(workflow, hot_reload_keeps_running_executions_on_their_version)
{
	char def[1024], payload[512], *id1, *id2, *show, *log;
	json_object *r;
	int fd;

	/* v1 and v2 differ in the tag of B; A waits at a gate of the
	 * execution's own. */
#define RELOAD_DEF(v) "{\"StartAt\":\"A\",\"States\":{" \
	"\"A\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":" \
	"{\"tag\":\"A\",\"key.$\":\"$$.Task.IdempotencyKey\",\"gate.$\":" \
	"\"$.gate\"},\"ResultPath\":null,\"Next\":\"B\"}," \
	"\"B\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":" \
	"{\"tag\":\"" v "\",\"key.$\":\"$$.Execution.Id\"},\"End\":true}}}"
	check_write_file(base, "wf/hot.json", RELOAD_DEF("B-v1"));
	start();
	fd = check_connect();
	snprintf(payload, sizeof(payload), "{\"id\":1,\"command\":\"hot\","
	    "\"async\":true,\"payload\":{\"gate\":\"%s/gate-1\"}}", base);
	id1 = start_async(fd, payload);
	wait_text("steps.log.enter", "A wf:");
	/* v2 while execution 1 waits in A. */
	snprintf(def, sizeof(def), "%s", RELOAD_DEF("B-v2"));
	check_write_file(base, "wf/hot.json", def);
	/* Wait until v2 serves: host.list shows workflow:hot at its second
	 * load. */
	for (int i = 0; i < 500; i++) {
		json_object *plugins, *p;
		int64_t loads = 0;

		r = check_call(fd, "{\"id\":2,\"command\":\"host.list\"}", 200,
		    NULL);
		plugins = json_object_object_get(reply_body(r), "plugins");
		for (size_t k = 0; k < json_object_array_length(plugins); k++) {
			p = json_object_array_get_idx(plugins, k);
			if (strcmp(json_object_get_string(json_object_object_get(
			    p, "name")), "workflow:hot") == 0)
				loads = json_object_get_int64(
				    json_object_object_get(p, "loads"));
		}
		json_object_put(r);
		if (loads >= 2)
			break;
		CHECK(i < 499, "v2 never published");
		nap_ms(20);
	}
	/* A new execution (its gate already open) runs v2. */
	check_write_file(base, "gate-2", "");
	snprintf(payload, sizeof(payload), "{\"id\":3,\"command\":\"hot\","
	    "\"async\":true,\"payload\":{\"gate\":\"%s/gate-2\"}}", base);
	id2 = start_async(fd, payload);
	wait_finished(fd, id2);
	/* Execution 1 goes on, on v1. */
	check_write_file(base, "gate-1", "");
	wait_finished(fd, id1);
	log = steps_log();
	{
		char want[256];

		snprintf(want, sizeof(want), "B-v1 %s\n", id1);
		CHECK(harness_count(log, want) == 1, "execution 1 ran v1's B:\n%s", log);
		snprintf(want, sizeof(want), "B-v2 %s\n", id2);
		CHECK(harness_count(log, want) == 1, "execution 2 ran v2's B:\n%s", log);
		CHECK(harness_count(log, "B-v") == 2, "%s", log);
	}
	show = show_text(fd, id1);
	CHECK(strstr(show, "\"status\":\"succeeded\"") != NULL, "%s", show);
	free(show);
	free(log);
	free(id1);
	free(id2);
	close(fd);
}
