/*
 * test_nats_wf_kv.c - workflow executions in a JetStream key-value bucket
 * ([jetstream] workflow_bucket) shared by daemons A and B: A killed
 * mid-step, B claims the execution once A's heartbeat stops, reruns the
 * step that was running (same idempotency key) and finishes it, no
 * finished step repeated; a live A keeps its execution however long its
 * step runs; bad bucket settings are refused with the key's name.
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

#define LEASE_MS 1500

static struct natsd *srv;
static struct daemon *da, *db;
static char base[64];

static void
setup(void)
{
	srv = natsd_start();
	cr_assert(srv != NULL, "nats-server did not start");
	check_tmp_dir(base, sizeof(base), "wkv", "wf");
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

TestSuite(nats_wf_kv, .init = setup, .fini = teardown, .timeout = 90);

/* Wait (up to 20 s) until base/NAME holds needle. */
static int
file_wait(const char *name, const char *needle)
{
	for (int i = 0; i < 2000; i++) {
		char *t = harness_file_text(base, name);
		int found = strstr(t, needle) != NULL;

		free(t);
		if (found)
			return 1;
		nap_ms(10);
	}
	return 0;
}

/* Three wfstep steps; the second waits at base/gate. */
static void
write_flow(void)
{
	char def[2048];

	snprintf(def, sizeof(def), "{\"StartAt\":\"S1\",\"States\":{"
	    "\"S1\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"S1\",\"key.$\":\"$$.Task.IdempotencyKey\"},"
	    "\"ResultPath\":\"$.s1\",\"Next\":\"S2\"},"
	    "\"S2\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"S2\",\"key.$\":\"$$.Task.IdempotencyKey\",\"gate\":"
	    "\"%s/gate\"},\"TimeoutSeconds\":60,\"ResultPath\":\"$.s2\","
	    "\"Next\":\"S3\"},"
	    "\"S3\":{\"Type\":\"Task\",\"Resource\":\"wfstep.do\",\"Parameters\":"
	    "{\"tag\":\"S3\",\"key.$\":\"$$.Task.IdempotencyKey\"},"
	    "\"ResultPath\":\"$.s3\",\"End\":true}}}", base);
	check_write_file(base, "wf/kvflow.json", def);
}

/* Daemon `name` ("a" or "b"): its own state_dir and steps file, the
 * shared workflow_dir and bucket; ready once its heartbeat is written. */
static struct daemon *
start_node(const char *name)
{
	const char *const plugins[] = { "wfstep.so", NULL };
	char head[512], extra[512];
	struct daemon *d;

	snprintf(head, sizeof(head), "state_dir = %s/s%s\nworkflow_dir = "
	    "%s/wf\n", base, name, base);
	snprintf(extra, sizeof(extra), "[jetstream]\nworkflow_bucket = WFKV\n"
	    "workflow_lease_ms = %d\n[plugin:wfstep]\nfile = %s/%s.log\n",
	    LEASE_MS, base, name);
	d = nats_daemon_start(srv, plugins, head, extra, "kvflow");
	cr_assert(daemon_log_wait(d, "workflow bucket: heartbeat n.", 20000),
	    "daemon %s never wrote its heartbeat", name);
	return d;
}

static json_object *
show(struct daemon *d, const char *id)
{
	char line[256];

	snprintf(line, sizeof(line), "{\"id\":9,\"command\":\"host.executions\","
	    "\"payload\":{\"id\":\"%s\"}}", id);
	return client_call_once(daemon_socket_path(d), line);
}

/* Start kvflow on d, async: its execution id into id. */
static void
start_flow(struct daemon *d, char *id, size_t n)
{
	json_object *r = client_call_once(daemon_socket_path(d), "{\"id\":1,"
	    "\"command\":\"kvflow\",\"async\":true,\"payload\":{\"n\":1}}");

	cr_assert_eq(reply_status(r), 202, "%s", reply_text(r));
	snprintf(id, n, "%s", json_path_str(r, "body/execution_id"));
	json_object_put(r);
}

/* host.stats' workflow_bucket counter `what` of d, or -1. */
static long
bucket_stat(struct daemon *d, const char *what)
{
	json_object *r = client_call_once(daemon_socket_path(d), "{\"id\":8,"
	    "\"command\":\"host.stats\"}");
	char path[128];
	json_object *v;
	long n = -1;

	snprintf(path, sizeof(path), "body/workflow_bucket/%s", what);
	if ((v = json_path(r, path)) != NULL)
		n = (long)json_object_get_int64(v);
	json_object_put(r);
	return n;
}

Test(nats_wf_kv, owner_killed_mid_step_peer_finishes)
{
	char id[64], *t, *ta, *tb, key[160];
	json_object *r = NULL;
	int done = 0;

	write_flow();
	da = start_node("a");
	db = start_node("b");
	start_flow(da, id, sizeof(id));
	/* A ran S1 and waits in S2: kill it there. */
	cr_assert(file_wait("a.log.enter", "S2 wf:"), "A never reached S2");
	kill(daemon_pid(da), SIGKILL);
	daemon_wait(da, 5000);
	check_write_file(base, "gate", "");
	/* B claims it once A's heartbeat has not changed for a lease. */
	for (int i = 0; i < 1500 && !done; i++) {
		json_object_put(r);
		r = show(db, id);
		done = reply_status(r) == 200 && strstr(reply_text(r),
		    "\"status\":\"succeeded\"") != NULL;
		if (!done)
			nap_ms(20);
	}
	cr_assert(done, "B never finished execution %s: %s", id,
	    r ? reply_text(r) : "(no reply)");
	t = (char *)reply_text(r);
	cr_assert(strstr(t, "\"type\":\"ExecutionClaimed\"") != NULL, "%s", t);
	cr_assert(strstr(t, "\"rerun_step\":true") != NULL, "%s", t);
	/* Every step's result is in the output. */
	cr_assert(strstr(t, "\"s1\":{") != NULL && strstr(t, "\"s2\":{") !=
	    NULL && strstr(t, "\"s3\":{") != NULL, "%s", t);
	json_object_put(r);

	/* S1 ran once (on A), S2 was entered on A and again on B with the
	 * same key and finished once (on B), S3 ran once (on B). */
	ta = harness_file_text(base, "a.log");
	tb = harness_file_text(base, "b.log");
	cr_assert_eq(harness_count(ta, "S1 wf:") + harness_count(tb, "S1 wf:"), 1,
	    "S1 ran once: A %s B %s", ta, tb);
	cr_assert_eq(harness_count(ta, "S1 wf:"), 1, "on A: %s", ta);
	cr_assert_eq(harness_count(ta, "S2 wf:"), 0, "A died in S2: %s", ta);
	cr_assert_eq(harness_count(tb, "S2 wf:"), 1, "B ran S2 once: %s", tb);
	cr_assert_eq(harness_count(tb, "S3 wf:"), 1, "B ran S3 once: %s", tb);
	free(ta);
	free(tb);
	ta = harness_file_text(base, "a.log.enter");
	tb = harness_file_text(base, "b.log.enter");
	cr_assert_eq(harness_count(ta, "S2 wf:"), 1, "%s", ta);
	cr_assert_eq(harness_count(tb, "S2 wf:"), 1, "%s", tb);
	/* The same idempotency key both times. */
	snprintf(key, sizeof(key), "%.*s", (int)strcspn(strstr(ta, "S2 wf:"),
	    "\n"), strstr(ta, "S2 wf:"));
	cr_assert(strstr(tb, key) != NULL, "B reran %s: %s", key, tb);
	free(ta);
	free(tb);
	cr_assert_eq(bucket_stat(db, "claimed"), 1);
}

Test(nats_wf_kv, live_owner_keeps_its_execution)
{
	char id[64], *t;
	json_object *r = NULL;
	long s0, s;
	int done = 0;

	write_flow();
	da = start_node("a");
	db = start_node("b");
	start_flow(da, id, sizeof(id));
	cr_assert(file_wait("a.log.enter", "S2 wf:"), "A never reached S2");
	/* B looks at the bucket several times, over more than two leases,
	 * while A's step runs: A's heartbeat goes on, nothing is claimed. */
	s0 = bucket_stat(db, "sweeps");
	cr_assert_geq(s0, 0);
	for (int i = 0; i < 3000; i++) {
		s = bucket_stat(db, "sweeps");
		if (s >= s0 + 6)
			break;
		nap_ms(10);
	}
	cr_assert_geq(bucket_stat(db, "sweeps"), s0 + 6, "B stopped sweeping");
	cr_assert_eq(bucket_stat(db, "claimed"), 0, "B took a live daemon's "
	    "execution");
	cr_assert_eq(bucket_stat(db, "peers"), 1, "B sees A");
	check_write_file(base, "gate", "");
	for (int i = 0; i < 1500 && !done; i++) {
		json_object_put(r);
		r = show(da, id);
		done = strstr(reply_text(r), "\"status\":\"succeeded\"") != NULL;
		if (!done)
			nap_ms(20);
	}
	cr_assert(done, "A never finished: %s", reply_text(r));
	cr_assert(strstr(reply_text(r), "ExecutionClaimed") == NULL, "%s",
	    reply_text(r));
	json_object_put(r);
	r = show(db, id);
	cr_assert_eq(reply_status(r), 404, "B never had it: %s",
	    reply_text(r));
	json_object_put(r);
	t = harness_file_text(base, "b.log.enter");
	cr_assert_str_empty(t, "B ran nothing: %s", t);
	free(t);
	cr_assert_eq(bucket_stat(da, "lost"), 0);
}

Test(nats_wf_kv, bad_bucket_settings_refused)
{
	char cfg[512], *err = NULL;
	int status;

	snprintf(cfg, sizeof(cfg), "[host]\nsocket = x.sock\n[nats]\nurl = %s\n"
	    "[jetstream]\nworkflow_bucket = no.dots\n", natsd_url(srv));
	cr_assert_eq(daemon_run_expect_fail(cfg, &status, &err), 0);
	cr_assert_neq(status, 0);
	cr_assert(strstr(err, "workflow_bucket") != NULL &&
	    strstr(err, "not a bucket name") != NULL, "%s", err);
	free(err);
	err = NULL;
	snprintf(cfg, sizeof(cfg), "[host]\nsocket = x.sock\nworkflow_dir = "
	    "%s/wf\n[nats]\nurl = %s\n[jetstream]\nworkflow_bucket = SAME\n"
	    "idempotency_bucket = SAME\n", base, natsd_url(srv));
	cr_assert_eq(daemon_run_expect_fail(cfg, &status, &err), 0);
	cr_assert_neq(status, 0);
	cr_assert(strstr(err, "must be two buckets") != NULL, "%s", err);
	free(err);
	err = NULL;
	snprintf(cfg, sizeof(cfg), "[host]\nsocket = x.sock\n[nats]\nurl = %s\n"
	    "[jetstream]\nworkflow_bucket = OK\nworkflow_lease_ms = 10\n",
	    natsd_url(srv));
	cr_assert_eq(daemon_run_expect_fail(cfg, &status, &err), 0);
	cr_assert_neq(status, 0);
	cr_assert(strstr(err, "workflow_lease_ms") != NULL, "%s", err);
	free(err);
	err = NULL;
	/* Executions run where workflows are served. */
	snprintf(cfg, sizeof(cfg), "[host]\nsocket = x.sock\n[nats]\nurl = %s\n"
	    "[jetstream]\nworkflow_bucket = WF\n", natsd_url(srv));
	cr_assert_eq(daemon_run_expect_fail(cfg, &status, &err), 0);
	cr_assert_neq(status, 0);
	cr_assert(strstr(err, "needs [host] workflow_dir") != NULL, "%s", err);
	free(err);
}
