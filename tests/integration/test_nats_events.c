/*
 * test_nats_events.c - events published to a real nats-server: a subject
 * no route takes goes to NATS with Nats-Msg-Id = the event id; while the
 * server is down the events wait in the outbox, and go out in order per
 * subject once it is back; a daemon SIGKILLed right after the replies of
 * emitting calls, or right after a plugin's commit to its own outbox,
 * delivers everything after a restart, and the stream keeps each event
 * once (its duplicate window, by Nats-Msg-Id).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "harness.h"
#include "nats_harness.h"

static struct natsd *srv;

static void
fini(void)
{
	check_free();
	natsd_free(srv);
	srv = NULL;
}

TestSuite(nats_events, .fini = fini);

static const char *const plugins[] = { "emitter.so", NULL };

/* Receive n messages on sub and require data "i":0..n-1 in order and a
 * Nats-Msg-Id each. */
static void
expect_in_order(natsSubscription *sub, int n)
{
	for (int i = 0; i < n; i++) {
		natsMsg *m = NULL;
		const char *id = NULL;
		char want[32];

		CHECK(natsSubscription_NextMsg(&m, sub, 15000) == NATS_OK,
		    "message %d of %d never came", i, n);
		snprintf(want, sizeof(want), "{\"i\":%d,", i);
		CHECK(strncmp(natsMsg_GetData(m), want, strlen(want)) == 0,
		    "message %d: %s", i, natsMsg_GetData(m));
		CHECK(natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK &&
		    id != NULL && strchr(id, '.') != NULL, "no event id");
		natsMsg_Destroy(m);
	}
}

/* A file-backed stream EVT on ev.>: what is published while nobody
 * listens is kept, across the server's restart. */
static void
add_stream(natsConnection *nc)
{
	jsCtx *js = NULL;
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	const char *subjects[] = { "ev.>" };
	jsErrCode jerr = 0;

	cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
	jsStreamConfig_Init(&sc);
	sc.Name = "EVT";
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	cr_assert_eq(js_AddStream(&si, js, &sc, NULL, &jerr), NATS_OK,
	    "stream: %d", (int)jerr);
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
}

/* An ordered consumer of `subject` on the stream. */
static natsSubscription *
js_sub(natsConnection *nc, const char *subject, jsCtx **js)
{
	natsSubscription *sub = NULL;
	jsErrCode jerr = 0;

	cr_assert_eq(natsConnection_JetStream(js, nc, NULL), NATS_OK);
	cr_assert_eq(js_SubscribeSync(&sub, *js, subject, NULL, NULL, &jerr),
	    NATS_OK, "subscribe: %d", (int)jerr);
	return sub;
}

Test(nats_events, published_and_held_while_nats_is_down)
{
	natsConnection *nc;
	natsSubscription *sub = NULL;
	jsCtx *js = NULL;
	char *cfg;
	int fd;

	cr_assert_not_null(srv = natsd_start());
	cfg = natsd_config(srv, "[events]\nbackoff_ms = 50\n"
	    "backoff_max_ms = 200\n");
	check_start_with(plugins, cfg);
	free(cfg);
	cr_assert_not_null(nc = nclient_connect(srv));
	add_stream(nc);
	sub = js_sub(nc, "ev.up", &js);
	fd = check_connect();
	json_object_put(check_call(fd, "{\"command\":\"emit.some\",\"payload\":"
	    "{\"subject\":\"ev.up\",\"n\":5}}", 200, NULL));
	expect_in_order(sub, 5);
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);

	/* Down: the calls still succeed, their events wait. */
	cr_assert_eq(natsd_stop(srv), 0);
	for (int i = 0; i < 4; i++)
		json_object_put(check_call(fd, "{\"command\":\"emit.some\","
		    "\"payload\":{\"subject\":\"ev.down\",\"n\":5}}", 200, NULL));
	cr_assert_eq(natsd_restart(srv), 0);
	cr_assert_not_null(nc = nclient_connect(srv));
	sub = js_sub(nc, "ev.down", &js);
	/* Each call's 5 events, in order, 4 times over. */
	for (int k = 0; k < 4; k++)
		expect_in_order(sub, 5);
	{
		natsMsg *m = NULL;

		/* And each once: nothing more comes. */
		CHECK(natsSubscription_NextMsg(&m, sub, 500) == NATS_TIMEOUT,
		    "an extra message: %s", m ? natsMsg_GetData(m) : "");
	}
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	close(fd);
	check_stop_clean();
}

/* A subject no stream takes: a plain message each, in order, with the
 * event id as Nats-Msg-Id; a stream's subject in the same rounds still
 * goes to the stream. */
Test(nats_events, plain_subject_published_beside_a_stream)
{
	natsConnection *nc;
	natsSubscription *plain = NULL, *sub;
	jsCtx *js = NULL;
	char *cfg;
	int fd;

	cr_assert_not_null(srv = natsd_start());
	cfg = natsd_config(srv, "[events]\nwindow = 8\n");
	check_start_with(plugins, cfg);
	free(cfg);
	cr_assert_not_null(nc = nclient_connect(srv));
	add_stream(nc);
	cr_assert_eq(natsConnection_SubscribeSync(&plain, nc, "plain.ev"),
	    NATS_OK);
	cr_assert_eq(natsConnection_Flush(nc), NATS_OK);
	sub = js_sub(nc, "ev.mixed", &js);
	fd = check_connect();
	for (int k = 0; k < 3; k++) {
		json_object_put(check_call(fd, "{\"command\":\"emit.some\","
		    "\"payload\":{\"subject\":\"plain.ev\",\"n\":10}}", 200,
		    NULL));
		json_object_put(check_call(fd, "{\"command\":\"emit.some\","
		    "\"payload\":{\"subject\":\"ev.mixed\",\"n\":10}}", 200,
		    NULL));
	}
	for (int k = 0; k < 3; k++) {
		expect_in_order(plain, 10);
		expect_in_order(sub, 10);
	}
	natsSubscription_Destroy(plain);
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------- SIGKILL and restart */

/* The state both lives of a daemon share (removed by the test). */
static char life_dir[64];

static void
life_dir_make(void)
{
	snprintf(life_dir, sizeof(life_dir), "/tmp/cmdhost-nev.XXXXXX");
	cr_assert_not_null(mkdtemp(life_dir));
}

static void
life_dir_remove(void)
{
	char *argv[] = { (char *)"/bin/rm", (char *)"-rf", life_dir, NULL };
	int st;

	run_command(argv, NULL, 30000, &st, NULL, NULL);
}

/* host.events's pending count of the test's daemon, or -1. */
static int
pending(void)
{
	json_object *r = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.events\"}");
	json_object *v = json_path(r, "body/pending");
	int n = v != NULL ? json_object_get_int(v) : -1;

	json_object_put(r);
	return n;
}

static int
drained(void *arg)
{
	(void)arg;
	return pending() == 0;
}

/* How many messages the stream EVT holds now. */
static uint64_t
stream_msgs(natsConnection *nc)
{
	jsCtx *js = NULL;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	uint64_t n;

	cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
	cr_assert_eq(js_GetStreamInfo(&si, js, "EVT", NULL, &jerr), NATS_OK,
	    "stream info: %d", (int)jerr);
	n = si->State.Msgs;
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
	return n;
}

static uint64_t stream_want;

/* The stream holds stream_want messages or more; arg is the client. */
static int
stream_has(void *arg)
{
	return stream_msgs(arg) >= stream_want;
}

/*
 * Read every message of the stream on `subject` until none comes for a
 * second, and count those whose data holds the string "k<i>" for i in
 * 0..n-1 into counts (n ints, zeroed here).  Returns how many were read.
 */
static int
read_stream(natsConnection *nc, const char *subject, int *counts, int n)
{
	natsSubscription *sub;
	jsCtx *js = NULL;
	natsMsg *m = NULL;
	int total = 0;

	memset(counts, 0, sizeof(*counts) * (size_t)n);
	sub = js_sub(nc, subject, &js);
	while (natsSubscription_NextMsg(&m, sub, 1000) == NATS_OK) {
		const char *data = natsMsg_GetData(m);
		const char *k = strstr(data, ":\"k");
		int i = k != NULL ? atoi(k + 3) : -1;

		if (i >= 0 && i < n)
			counts[i]++;
		total++;
		natsMsg_Destroy(m);
		m = NULL;
	}
	natsSubscription_Destroy(sub);
	jsCtx_Destroy(js);
	return total;
}

#define N_KILL 200

/* The JetStream case of "SIGKILL right after the replies": 200 calls
 * that each emit one event on a stream's subject, the daemon killed at
 * once after the last reply; after a restart on the same state every
 * event is on the stream, and each once: what the first life published
 * but had not yet deleted from its outbox goes again with the same
 * Nats-Msg-Id, and the stream's duplicate window drops it. */
Test(nats_events, sigkill_after_replies_each_event_once_on_the_stream,
    .timeout = 180)
{
	natsConnection *nc;
	struct daemon *d;
	char extra[512], *cfg, line[256];
	int counts[N_KILL], fd, total;

	cr_assert_not_null(srv = natsd_start());
	cr_assert_not_null(nc = nclient_connect(srv));
	add_stream(nc);
	life_dir_make();
	snprintf(extra, sizeof(extra), "[host]\nstate_dir = %s/state\n", life_dir);
	cfg = natsd_config(srv, extra);
	d = check_start_with(plugins, cfg);
	fd = check_connect();
	/* Pipelined: the kill comes while deliveries are under way. */
	for (int i = 0; i < N_KILL; i++) {
		snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
		    "\"emit.some\",\"payload\":{\"subject\":\"ev.kill\","
		    "\"data\":\"k%d\"}}", i, i);
		CHECK(client_send(fd, line) == 0, "send %d", i);
	}
	for (int i = 0; i < N_KILL; i++) {
		char *rep = client_recv_line(fd);

		CHECK(rep != NULL && strstr(rep, "\"status\":200") != NULL,
		    "reply %d: %s", i, rep ? rep : "(none)");
		free(rep);
	}
	cr_assert_eq(daemon_signal(d, SIGKILL), 0);
	cr_assert_eq(daemon_wait(d, 10000), 128 + SIGKILL);
	close(fd);
	check_free();
	cr_log_info("first life: %llu of %d events on the stream at the "
	    "kill\n", (unsigned long long)stream_msgs(nc), N_KILL);

	/* Second life: the same state. */
	check_start_with(plugins, cfg);
	free(cfg);
	CHECK(wait_until(drained, NULL, 60000), "events still pending: %d",
	    pending());
	{
		json_object *r = client_call_once(daemon_socket_path(
		    check_daemon()), "{\"command\":\"host.stats\"}");
		json_object *v = json_path(r, "body/events/delivered");

		/* More than were missing: the rest were the stream's
		 * duplicates. */
		cr_log_info("second life: %d published again\n", v ?
		    json_object_get_int(v) : -1);
		json_object_put(r);
	}
	total = read_stream(nc, "ev.kill", counts, N_KILL);
	for (int i = 0; i < N_KILL; i++)
		CHECK(counts[i] == 1, "event k%d is on the stream %d times", i,
		    counts[i]);
	CHECK(total == N_KILL, "%d messages on ev.kill", total);
	CHECK(stream_msgs(nc) == N_KILL, "the stream holds %llu",
	    (unsigned long long)stream_msgs(nc));
	natsConnection_Destroy(nc);
	check_stop_clean();
	life_dir_remove();
}

/* relaybox's gate file `name` exists. */
static int
gate_has(void *arg)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", life_dir, (const char *)arg);
	return access(path, F_OK) == 0;
}

/* The relay case: a plugin with its own outbox commits a row and the
 * daemon is killed right after that commit, before it could fetch the
 * row (relaybox holds the call and refuses fetches until released).
 * After a restart the relay hands the row over and it reaches the
 * stream, once; so do the rows the first life had relayed already. */
Test(nats_events, sigkill_after_the_plugins_commit_relay_delivers,
    .timeout = 180)
{
	static const char *const box[] = { "relaybox.so", NULL };
	natsConnection *nc;
	struct daemon *d;
	char extra[1024], *cfg;
	int counts[4], fd, total;

	cr_assert_not_null(srv = natsd_start());
	cr_assert_not_null(nc = nclient_connect(srv));
	add_stream(nc);
	life_dir_make();
	snprintf(extra, sizeof(extra), "[host]\nstate_dir = %s/state\n"
	    "[events]\nrelay_interval_ms = 20\n"
	    "[plugin:relaybox]\ndatabase = %s/box.db\ngate = %s\n",
	    life_dir, life_dir, life_dir);
	cfg = natsd_config(srv, extra);
	d = check_start_with(box, cfg);
	fd = check_connect();
	/* Three rows relayed in the first life... */
	for (int i = 0; i < 3; i++) {
		char line[160];

		snprintf(line, sizeof(line), "{\"command\":\"relay.put\","
		    "\"payload\":{\"subject\":\"ev.box\",\"k\":\"k%d\"}}", i);
		json_object_put(check_call(fd, line, 200, NULL));
	}
	stream_want = 3;
	CHECK(wait_until(stream_has, nc, 30000) && stream_msgs(nc) == 3,
	    "the first rows were not relayed: %llu on the stream",
	    (unsigned long long)stream_msgs(nc));
	/* ...and one committed right before the kill. */
	CHECK(client_send(fd, "{\"command\":\"relay.put\",\"payload\":"
	    "{\"subject\":\"ev.box\",\"k\":\"k3\",\"hold\":true}}") == 0,
	    "send");
	CHECK(wait_until(gate_has, (void *)"committed", 30000),
	    "relaybox never committed");
	cr_assert_eq(daemon_signal(d, SIGKILL), 0);
	cr_assert_eq(daemon_wait(d, 10000), 128 + SIGKILL);
	close(fd);
	check_free();
	cr_assert_eq(stream_msgs(nc), 3, "k3 left before the kill");

	/* Second life: the same state. */
	check_start_with(box, cfg);
	free(cfg);
	stream_want = 4;
	CHECK(wait_until(stream_has, nc, 60000), "the committed row never "
	    "reached the stream (%llu)", (unsigned long long)stream_msgs(nc));
	CHECK(wait_until(drained, NULL, 30000), "events still pending");
	total = read_stream(nc, "ev.box", counts, 4);
	for (int i = 0; i < 4; i++)
		CHECK(counts[i] == 1, "row k%d is on the stream %d times", i,
		    counts[i]);
	CHECK(total == 4 && stream_msgs(nc) == 4, "%d messages", total);
	natsConnection_Destroy(nc);
	check_stop_clean();
	life_dir_remove();
}
