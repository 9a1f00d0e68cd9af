/*
 * test_nats_idem.c - idempotency keys across daemons: two real daemons in
 * one queue group on a real nats-server with JetStream and the bucket
 * [jetstream] idempotency_bucket.  A keyed call answered by one daemon
 * replays on the other (found by retrying until the queue group hands a
 * retry to it, then again with the first daemon stopped) and ran once;
 * the same key with another payload is 422 on both; a retry while the
 * first call runs is 409 on both; a record whose call overran its
 * deadline is taken over by a retry, and the first call's late result
 * does not overwrite it; a 500 is not stored.  Without the
 * bucket a daemon keeps the keys in its local store (still replays); with
 * the bucket configured and JetStream down, keyed calls get 503 and do
 * not run.  And the CLI's -k: Idempotency-Key on invoke, Nats-Msg-Id on
 * publish.
 *
 * kvcount.so counts its runs in one file both daemons share, one line
 * "<pid> <n>" per run, written as the run starts.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "nats_harness.h"

#define BUCKET "CMDHOST_IDEM"
/* Retries until the queue group hands one to a given daemon: with two
 * members each retry goes to either, so 200 all missing one is beyond
 * any bad luck. */
#define SPREAD_TRIES 200

static struct natsd *srv;
static struct daemon *d1, *d2;
static natsConnection *nc;
static char counts[128];       /* the shared file */

static void
teardown(void)
{
	if (nc != NULL)
		natsConnection_Destroy(nc);
	nc = NULL;
	daemon_free(d1);
	daemon_free(d2);
	d1 = d2 = NULL;
	natsd_free(srv);
	srv = NULL;
	unlink(counts);
}

static void
setup(void)
{
	srv = natsd_start();
	cr_assert(srv != NULL, "nats-server did not start");
	snprintf(counts, sizeof(counts), "/tmp/cmdhost-kvcount.%d",
	    (int)getpid());
	unlink(counts);
}

/* A daemon with kvcount on srv (bucket: with idempotency_bucket); waits
 * until it subscribed kvcount.add and, with the bucket, bound it. */
static struct daemon *
start_daemon(int bucket)
{
	const char *const plugins[] = { "kvcount.so", NULL };
	struct daemon_opts o = { 0 };
	char extra[1024], *nats, *cfg;
	struct daemon *d;

	snprintf(extra, sizeof(extra), "%s[plugin:kvcount]\nfile = %s\n",
	    bucket ? "[jetstream]\nidempotency_bucket = " BUCKET "\n" : "",
	    counts);
	nats = natsd_config(srv, extra);
	/* [host] first: the harness writes o.config right after its own. */
	cr_assert(asprintf(&cfg, "default_timeout_ms = 10000\n%s", nats) > 0);
	free(nats);
	o.plugins = plugins;
	o.config = cfg;
	d = daemon_start(&o);
	free(cfg);
	if (d == NULL) {
		natsd_dump_log(srv);
		cr_assert_fail("daemon did not start");
	}
	if (!daemon_log_wait(d, "nats: subscribed cmdhost.cmd.kvcount.add",
	    10000) || (bucket && !daemon_log_wait(d, "nats: idempotency "
	    "bucket " BUCKET " ready", 10000))) {
		daemon_dump_log(d);
		natsd_dump_log(srv);
		cr_assert_fail("daemon not ready on NATS");
	}
	return d;
}

static void
connect_client(void)
{
	nc = nclient_connect(srv);
	cr_assert(nc != NULL, "cannot connect a NATS client");
}

/* A keyed call of kvcount.add with payload; fails the test when no reply
 * came.  Returns it (put it). */
static json_object *
keyed(const char *key, const char *payload)
{
	natsStatus st;
	json_object *r = nclient_call_keyed(nc, "kvcount.add", payload, key, 0,
	    15000, &st);

	cr_assert(r != NULL, "no reply: %s", natsStatus_GetText(st));
	return r;
}

/* Was the reply replayed? */
static int
replayed(json_object *r)
{
	json_object *v = json_path(r, "replayed");

	return v != NULL && json_object_get_boolean(v);
}

/* How many runs of kvcount with n the shared file counts; *pid gets the
 * pid of the first (if not NULL). */
static int
runs_of(long n, long *pid)
{
	FILE *f = fopen(counts, "r");
	long p, v;
	int runs = 0;

	if (pid != NULL)
		*pid = 0;
	if (f == NULL)
		return 0;
	while (fscanf(f, "%ld %ld\n", &p, &v) == 2)
		if (v == n && runs++ == 0 && pid != NULL)
			*pid = p;
	fclose(f);
	return runs;
}

/* An integer of the daemon's host.stats at path, or -1. */
static long
stat_of(struct daemon *d, const char *path)
{
	json_object *r = client_call_once(daemon_socket_path(d),
	    "{\"command\":\"host.stats\"}"), *v;
	long n = -1;

	if ((v = json_path(r, path)) != NULL)
		n = (long)json_object_get_int64(v);
	json_object_put(r);
	return n;
}

static long
calls_of(struct daemon *d)
{
	return stat_of(d, "body/commands/kvcount.add/calls");
}

/* The daemon whose pid is pid (d1 or d2); fails the test otherwise. */
static struct daemon *
daemon_of(long pid)
{
	if (d1 != NULL && pid == (long)daemon_pid(d1))
		return d1;
	if (d2 != NULL && pid == (long)daemon_pid(d2))
		return d2;
	cr_assert_fail("pid %ld is neither daemon's", pid);
	return NULL;
}

TestSuite(nats_idem, .init = setup, .fini = teardown, .timeout = 90);

Test(nats_idem, retry_on_the_other_daemon_replays_and_ran_once)
{
	struct daemon *runner, *other;
	json_object *r;
	long pid, before;
	int tries = 0;

	d1 = start_daemon(1);
	d2 = start_daemon(1);
	connect_client();
	r = keyed("k-1", "{\"n\":1}");
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_assert(!replayed(r), "%s", reply_text(r));
	pid = (long)json_object_get_int64(json_path(r, "body/pid"));
	json_object_put(r);
	runner = daemon_of(pid);
	other = runner == d1 ? d2 : d1;

	/* Retry until the queue group hands one to the other daemon. */
	before = calls_of(other);
	while (calls_of(other) == before && tries++ < SPREAD_TRIES) {
		r = keyed("k-1", "{\"n\":1}");
		cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
		cr_assert(replayed(r), "retry %d ran: %s", tries, reply_text(r));
		cr_assert_eq(json_object_get_int64(json_path(r, "body/pid")),
		    pid, "not the first result: %s", reply_text(r));
		json_object_put(r);
	}
	cr_assert_gt(calls_of(other), before, "no retry reached the other "
	    "daemon in %d tries", SPREAD_TRIES);
	/* It replayed the first daemon's record: not from its own store. */
	cr_assert_geq(stat_of(other, "body/idempotency/replays"), 1);
	cr_assert_eq(stat_of(other, "body/idempotency/stored"), 0);
	cr_assert_eq(runs_of(1, NULL), 1, "the command ran more than once");

	/* With the first daemon gone, the retry can only land on the
	 * other, and still replays. */
	cr_assert_eq(daemon_stop(runner), 0);
	r = keyed("k-1", "{\"n\":1}");
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_assert(replayed(r), "%s", reply_text(r));
	cr_assert_eq(json_object_get_int64(json_path(r, "body/pid")), pid);
	json_object_put(r);
	cr_assert_eq(runs_of(1, NULL), 1);
	cr_assert_eq(daemon_stop(other), 0);
}

Test(nats_idem, same_key_other_payload_is_422_on_both)
{
	json_object *r;
	int tries = 0;

	d1 = start_daemon(1);
	d2 = start_daemon(1);
	connect_client();
	r = keyed("k-2", "{\"n\":2}");
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	json_object_put(r);
	while ((stat_of(d1, "body/idempotency/mismatches") < 1 ||
	    stat_of(d2, "body/idempotency/mismatches") < 1) &&
	    tries++ < SPREAD_TRIES) {
		r = keyed("k-2", "{\"n\":3}");
		cr_assert_eq(reply_status(r), 422, "%s", reply_text(r));
		cr_assert_str_eq(reply_error_code(r), "idempotency_key_reused");
		json_object_put(r);
	}
	cr_assert_geq(stat_of(d1, "body/idempotency/mismatches"), 1);
	cr_assert_geq(stat_of(d2, "body/idempotency/mismatches"), 1);
	cr_assert_eq(runs_of(2, NULL), 1);
	cr_assert_eq(runs_of(3, NULL), 0, "the other payload ran");
	/* The first payload still replays. */
	r = keyed("k-2", "{\"n\":2}");
	cr_assert(replayed(r), "%s", reply_text(r));
	json_object_put(r);
}

static int
started(void *arg)
{
	return runs_of(*(long *)arg, NULL) > 0;
}

Test(nats_idem, retry_while_the_first_runs_is_409_on_both)
{
	natsSubscription *sub = NULL;
	natsMsg *req = NULL, *rep = NULL;
	natsInbox *inbox = NULL;
	static const char slow[] = "{\"n\":4,\"ms\":2500}";
	json_object *r;
	long n = 4;
	int tries = 0;

	d1 = start_daemon(1);
	d2 = start_daemon(1);
	connect_client();
	/* The first call, without waiting for its reply. */
	cr_assert_eq(natsInbox_Create(&inbox), NATS_OK);
	cr_assert_eq(natsConnection_SubscribeSync(&sub, nc,
	    (const char *)inbox), NATS_OK);
	cr_assert_eq(natsMsg_Create(&req, "cmdhost.cmd.kvcount.add",
	    (const char *)inbox, slow, (int)strlen(slow)), NATS_OK);
	cr_assert_eq(natsMsgHeader_Set(req, "Idempotency-Key", "k-3"),
	    NATS_OK);
	cr_assert_eq(natsConnection_PublishMsg(nc, req), NATS_OK);
	cr_assert(wait_until(started, &n, 10000), "the first call never ran");

	while ((stat_of(d1, "body/idempotency/conflicts") < 1 ||
	    stat_of(d2, "body/idempotency/conflicts") < 1) &&
	    tries++ < SPREAD_TRIES) {
		r = keyed("k-3", slow);
		cr_assert_eq(reply_status(r), 409, "%s", reply_text(r));
		cr_assert_str_eq(reply_error_code(r),
		    "idempotency_in_progress");
		json_object_put(r);
	}
	cr_assert_geq(stat_of(d1, "body/idempotency/conflicts"), 1);
	cr_assert_geq(stat_of(d2, "body/idempotency/conflicts"), 1);

	/* The first call's own reply, then a retry replays it. */
	cr_assert_eq(natsSubscription_NextMsg(&rep, sub, 15000), NATS_OK);
	r = json_tokener_parse(natsMsg_GetData(rep));
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_assert(!replayed(r));
	json_object_put(r);
	r = keyed("k-3", slow);
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_assert(replayed(r), "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(runs_of(4, NULL), 1);
	natsMsg_Destroy(rep);
	natsMsg_Destroy(req);
	natsSubscription_Destroy(sub);
	natsInbox_Destroy(inbox);
}

/* A keyed call of kvcount.add with a deadline (Cmdhost-Timeout-Ms). */
static json_object *
keyed_timeout(const char *key, const char *payload, int timeout_ms)
{
	natsStatus st;
	json_object *r = nclient_call_keyed(nc, "kvcount.add", payload, key,
	    timeout_ms, 15000, &st);

	cr_assert(r != NULL, "no reply: %s", natsStatus_GetText(st));
	return r;
}

static int
dropped_late(void *arg)
{
	static const char line[] = "was taken over by a retry; this call's "
	    "late result is dropped";

	(void)arg;
	return daemon_log_contains(d1, line) || daemon_log_contains(d2, line);
}

Test(nats_idem, overrun_record_is_taken_over_and_its_late_result_dropped)
{
	static const char slow[] = "{\"n\":12,\"ms\":1500}";
	int64_t deadline;
	json_object *r;
	int status = 409;

	d1 = start_daemon(1);
	d2 = start_daemon(1);
	connect_client();
	/* The first call overruns its 300 ms deadline: 504, and its record
	 * stays in progress until then (its result may still come). */
	r = keyed_timeout("k-7", slow, 300);
	cr_assert_eq(reply_status(r), 504, "%s", reply_text(r));
	json_object_put(r);
	/* Past the deadline a retry (with time enough) takes it over. */
	deadline = now_ms() + 10000;
	while (status == 409 && now_ms() < deadline) {
		r = keyed_timeout("k-7", slow, 10000);
		status = reply_status(r);
		cr_assert(status == 409 || status == 200, "%s", reply_text(r));
		cr_assert(!replayed(r), "%s", reply_text(r));
		json_object_put(r);
		if (status == 409)
			nap_ms(20);
	}
	cr_assert_eq(status, 200, "never taken over");
	cr_assert_eq(runs_of(12, NULL), 2);
	/* The first call's late 200 found the record taken over. */
	cr_assert(wait_until(dropped_late, NULL, 10000), "no late result "
	    "dropped");
	r = keyed("k-7", slow);
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_assert(replayed(r), "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(runs_of(12, NULL), 2);
}

Test(nats_idem, a_500_is_not_stored)
{
	static const char fail[] = "{\"n\":5,\"fail\":true}";
	json_object *r;

	d1 = start_daemon(1);
	d2 = start_daemon(1);
	connect_client();
	for (int i = 1; i <= 3; i++) {
		r = keyed("k-4", fail);
		cr_assert_eq(reply_status(r), 500, "%s", reply_text(r));
		cr_assert(!replayed(r), "%s", reply_text(r));
		json_object_put(r);
		cr_assert_eq(runs_of(5, NULL), i, "retry %d did not run", i);
	}
	/* The key is free again: a success under it is kept. */
	r = keyed("k-4", "{\"n\":6}");
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	json_object_put(r);
	r = keyed("k-4", "{\"n\":6}");
	cr_assert(replayed(r), "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(runs_of(6, NULL), 1);
}

Test(nats_idem, without_the_bucket_the_local_store_replays)
{
	json_object *r;

	d1 = start_daemon(0);
	connect_client();
	r = keyed("k-5", "{\"n\":7}");
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_assert(!replayed(r));
	json_object_put(r);
	r = keyed("k-5", "{\"n\":7}");
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_assert(replayed(r), "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(runs_of(7, NULL), 1);
	cr_assert_eq(stat_of(d1, "body/idempotency/stored"), 1,
	    "not kept in the local store");
	cr_assert(!daemon_log_contains(d1, "idempotency bucket"));
	cr_assert_eq(daemon_stop(d1), 0);
}

Test(nats_idem, jetstream_down_answers_503_and_does_not_run)
{
	natsStatus st;
	json_object *r;

	natsd_free(srv);
	srv = natsd_start_without_js();
	cr_assert(srv != NULL);
	{
		/* Not start_daemon(1): the bucket never becomes ready. */
		const char *const plugins[] = { "kvcount.so", NULL };
		struct daemon_opts o = { 0 };
		char extra[512], *cfg;

		snprintf(extra, sizeof(extra), "[jetstream]\n"
		    "idempotency_bucket = " BUCKET "\n[plugin:kvcount]\n"
		    "file = %s\n", counts);
		cfg = natsd_config(srv, extra);
		o.plugins = plugins;
		o.config = cfg;
		d1 = daemon_start(&o);
		free(cfg);
		cr_assert(d1 != NULL);
		cr_assert(daemon_log_wait(d1, "nats: subscribed "
		    "cmdhost.cmd.kvcount.add", 10000));
	}
	connect_client();
	r = keyed("k-6", "{\"n\":8}");
	cr_assert_eq(reply_status(r), 503, "%s", reply_text(r));
	cr_assert_str_eq(reply_error_code(r), "unavailable");
	cr_assert(strstr(reply_error_message(r), "idempotency") != NULL,
	    "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(runs_of(8, NULL), 0, "ran unguarded");
	cr_assert(daemon_log_contains(d1, "idempotency bucket " BUCKET
	    " unavailable"));
	/* Calls without a key are not affected. */
	r = nclient_call(nc, "kvcount.add", "{\"n\":9}", NULL, 0, 15000, &st);
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(runs_of(9, NULL), 1);
	cr_assert_eq(daemon_stop(d1), 0);
}

/* Run build/cmdhost --nats URL verb -k key name payload; returns the exit
 * status, stdout in *out (free it). */
static int
cli(char **out, const char *verb, const char *key, const char *name,
    const char *payload)
{
	char *argv[] = { (char *)CMDHOST_BUILD_DIR "/cmdhost",
	    (char *)"--nats", (char *)natsd_url(srv), (char *)verb,
	    (char *)"-k", (char *)key, (char *)name, (char *)payload, NULL };
	char *err = NULL;
	int status = -1;

	cr_assert_eq(run_command(argv, NULL, 20000, &status, out, &err), 0);
	if (status != 0)
		fprintf(stderr, "cmdhost %s: %s\n", verb, err);
	free(err);
	return status;
}

static int
event_ran(void *arg)
{
	(void)arg;
	return runs_of(11, NULL) > 0;
}

Test(nats_idem, cli_sends_the_key_on_invoke_and_publish)
{
	char *a = NULL, *b = NULL;
	json_object *ja, *jb;

	d1 = start_daemon(1);
	d2 = start_daemon(1);
	cr_assert(daemon_log_wait(d1, "nats: consuming stream", 10000));

	cr_assert_eq(cli(&a, "invoke", "c-1", "kvcount.add", "{\"n\":10}"), 0);
	cr_assert_eq(cli(&b, "invoke", "c-1", "kvcount.add", "{\"n\":10}"), 0);
	cr_assert_str_eq(a, b, "the retry did not replay the first body");
	cr_assert_eq(runs_of(10, NULL), 1);
	free(a);
	free(b);

	/* publish: Nats-Msg-Id; the stream drops the repeat. */
	cr_assert_eq(cli(&a, "publish", "e-1", "kvcount.event",
	    "{\"n\":11}"), 0);
	cr_assert_eq(cli(&b, "publish", "e-1", "kvcount.event",
	    "{\"n\":11}"), 0);
	ja = json_tokener_parse(a);
	jb = json_tokener_parse(b);
	cr_assert(ja != NULL && jb != NULL, "%s / %s", a, b);
	cr_assert_eq(json_object_get_int64(json_path(ja, "seq")),
	    json_object_get_int64(json_path(jb, "seq")), "%s / %s", a, b);
	cr_assert_null(json_path(ja, "duplicate"), "%s", a);
	cr_assert(json_object_get_boolean(json_path(jb, "duplicate")), "%s",
	    b);
	json_object_put(ja);
	json_object_put(jb);
	free(a);
	free(b);
	cr_assert(wait_until(event_ran, NULL, 10000), "the event never ran");
	cr_assert_eq(runs_of(11, NULL), 1);
}
