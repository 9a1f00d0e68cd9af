/*
 * test_nats_workflow.c - a workflow on daemon A whose Task command only
 * daemon B serves: the step goes over NATS (B's queue group), its answer
 * feeds the next state, B runs it once under the step's idempotency key
 * and logs it with the execution id; a command nobody serves fails the
 * step with unknown_command; A killed while B runs its step: after A's
 * restart the step goes again with the same key and B, which finished
 * it meanwhile, answers with the stored result.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "nats_harness.h"

static struct natsd *srv;
static struct daemon *da, *db;
static char base[64];

static void
setup(void)
{
	srv = natsd_start();
	cr_assert(srv != NULL, "nats-server did not start");
	check_tmp_dir(base, sizeof(base), "nwf", "wf");
}

static void
teardown(void)
{
	daemon_free(da);
	daemon_free(db);
	da = db = NULL;
	natsd_free(srv);
	srv = NULL;
	harness_rm_tree(base);
}

TestSuite(nats_workflow, .init = setup, .fini = teardown, .timeout = 60);

/* Start a daemon with plugins on srv, host keys `host` (may be NULL);
 * wait until it subscribed ready_cmd. */
static struct daemon *
start_on_nats(const char *const *plugins, const char *host,
    const char *ready_cmd)
{
	return nats_daemon_start(srv, plugins, host, NULL, ready_cmd);
}

Test(nats_workflow, step_served_by_the_other_daemon)
{
	const char *const pa[] = { "good.so", NULL };
	const char *const pb[] = { "plugins/echo.so", NULL };
	char host[512], line[256], id[64];
	json_object *r, *v;

	/* A: test.echo here, echo only on B. */
	check_write_file(base, "wf/span.json", "{\"StartAt\":\"Here\",\"States\":{"
	    "\"Here\":{\"Type\":\"Task\",\"Resource\":\"test.echo\","
	    "\"ResultPath\":\"$.here\",\"Next\":\"There\"},"
	    "\"There\":{\"Type\":\"Task\",\"Resource\":\"echo\",\"Parameters\":"
	    "{\"n.$\":\"$.n\",\"key.$\":\"$$.Task.IdempotencyKey\"},"
	    "\"ResultPath\":\"$.there\",\"Next\":\"Check\"},"
	    "\"Check\":{\"Type\":\"Choice\",\"Choices\":[{\"Variable\":"
	    "\"$.there.n\",\"NumericEquals\":7,\"Next\":\"Done\"}],"
	    "\"Default\":\"Wrong\"},"
	    "\"Done\":{\"Type\":\"Succeed\"},"
	    "\"Wrong\":{\"Type\":\"Fail\",\"Error\":\"Wrong\"}}}");
	check_write_file(base, "wf/nobody.json", "{\"StartAt\":\"T\",\"States\":{"
	    "\"T\":{\"Type\":\"Task\",\"Resource\":\"no.such.command\","
	    "\"End\":true}}}");
	db = start_on_nats(pb, NULL, "echo");
	snprintf(host, sizeof(host), "state_dir = %s/state\nworkflow_dir = "
	    "%s/wf\n", base, base);
	da = start_on_nats(pa, host, "span");

	r = client_call_once(daemon_socket_path(da), "{\"id\":1,\"command\":"
	    "\"span\",\"payload\":{\"n\":7}}");
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_assert(strstr(reply_text(r), "\"there\":{\"n\":7,\"key\":\"wf:") !=
	    NULL, "B's answer fed the next state: %s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(daemon_calls_of(db, "echo"), 1, "B ran the step once");
	cr_assert_eq(daemon_calls_of(da, "test.echo"), 1, "A ran its own step");

	/* The execution's history names the step's request id; A logged the
	 * step, B logged its call with the execution id. */
	r = client_call_once(daemon_socket_path(da), "{\"id\":2,\"command\":"
	    "\"host.executions\",\"payload\":{\"workflow\":\"span\"}}");
	v = json_object_object_get(json_object_array_get_idx(json_path(r,
	    "body/executions"), 0), "id");
	cr_assert_not_null(v, "%s", reply_text(r));
	snprintf(id, sizeof(id), "%s", json_object_get_string(v));
	json_object_put(r);
	cr_assert(daemon_log_wait(da, "workflow step finished over NATS",
	    5000), "A logs the remote step");
	snprintf(line, sizeof(line), "\"id\":\"%s\"", id);
	cr_assert(daemon_log_wait(db, line, 5000), "B's line carries the "
	    "execution id %s", id);
	snprintf(line, sizeof(line), "{\"id\":3,\"command\":\"host.executions\","
	    "\"payload\":{\"id\":\"%s\"}}", id);
	r = client_call_once(daemon_socket_path(da), line);
	cr_assert(strstr(reply_text(r), "\"type\":\"TaskSucceeded\","
	    "\"state\":\"There\",\"attempt\":null,\"request_id\":\"") != NULL,
	    "%s", reply_text(r));
	json_object_put(r);

	/* Nobody serves it: the step fails with unknown_command. */
	r = client_call_once(daemon_socket_path(da), "{\"id\":4,\"command\":"
	    "\"nobody\",\"payload\":{}}");
	cr_assert_eq(reply_status(r), 404, "%s", reply_text(r));
	cr_assert(strstr(reply_text(r), "unknown_command") != NULL &&
	    strstr(reply_text(r), "no responders") != NULL, "%s",
	    reply_text(r));
	json_object_put(r);
}

Test(nats_workflow, caller_killed_mid_remote_step_step_runs_once)
{
	const char *const pa[] = { "good.so", NULL };
	const char *const pb[] = { "wfstep.so", NULL };
	char host[512], bcfg[512], def[1024], line[256], id[64], *t;
	json_object *r;
	int found = 0;

	/* B serves wfstep.do, which waits at a gate; A's workflow calls it. */
	snprintf(def, sizeof(def), "{\"StartAt\":\"W\",\"States\":{"
	    "\"W\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"W\",\"key.$\":\"$$.Task.IdempotencyKey\",\"gate\":"
	    "\"%s/gate\"},\"TimeoutSeconds\":20,\"End\":true}}}", base);
	check_write_file(base, "wf/far.json", def);
	snprintf(bcfg, sizeof(bcfg), "[plugin:wfstep]\nfile = %s/steps.log\n",
	    base);
	{
		/* B's [plugin:wfstep] goes after its [nats] section. */
		struct daemon_opts o = { 0 };
		char *cfg = natsd_config(srv, bcfg);

		o.plugins = pb;
		o.config = cfg;
		db = daemon_start(&o);
		free(cfg);
		cr_assert_not_null(db, "B did not start");
		cr_assert(daemon_log_wait(db, "nats: subscribed "
		    "cmdhost.cmd.wfstep.do", 10000), "B never subscribed");
	}
	snprintf(host, sizeof(host), "state_dir = %s/state\nworkflow_dir = "
	    "%s/wf\n", base, base);
	da = start_on_nats(pa, host, "far");
	r = client_call_once(daemon_socket_path(da), "{\"id\":1,\"command\":"
	    "\"far\",\"async\":true,\"payload\":{}}");
	cr_assert_eq(reply_status(r), 202, "%s", reply_text(r));
	snprintf(id, sizeof(id), "%s", json_object_get_string(json_path(r,
	    "body/execution_id")));
	json_object_put(r);
	/* B runs the step and waits at the gate: kill A, open the gate (B's
	 * call finishes and its result is stored under the step's key),
	 * start A again on its store. */
	for (int i = 0; i < 1000 && !found; i++) {
		t = harness_file_text(base, "steps.log.enter");
		found = strstr(t, "W wf:") != NULL;
		free(t);
		if (!found)
			nap_ms(10);
	}
	cr_assert(found, "the step never reached B");
	kill(daemon_pid(da), SIGKILL);
	daemon_wait(da, 5000);
	daemon_free(da);
	da = NULL;
	check_write_file(base, "gate", "");
	da = start_on_nats(pa, host, "far");
	snprintf(line, sizeof(line), "{\"id\":2,\"command\":\"host.executions\","
	    "\"payload\":{\"id\":\"%s\"}}", id);
	found = 0;
	for (int i = 0; i < 1000 && !found; i++) {
		r = client_call_once(daemon_socket_path(da), line);
		found = strstr(reply_text(r), "\"status\":\"succeeded\"") != NULL;
		if (found)
			cr_assert(strstr(reply_text(r), "\"rerun_step\":true") !=
			    NULL, "%s", reply_text(r));
		json_object_put(r);
		if (!found)
			nap_ms(20);
	}
	cr_assert(found, "the execution never succeeded after the restart");
	/* B ran it once: the re-run from A got the stored result. */
	t = harness_file_text(base, "steps.log");
	cr_assert_eq(harness_count(t, "W wf:"), 1, "B ran the step once: %s", t);
	free(t);
	t = harness_file_text(base, "steps.log.enter");
	cr_assert_eq(harness_count(t, "W wf:"), 1, "and entered it once: %s", t);
	free(t);
}
