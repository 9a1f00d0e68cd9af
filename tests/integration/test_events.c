/*
 * test_events.c - events a command emits (ABI 1.2), through a real
 * daemon: nothing goes out of a call that fails, a route's consumer gets
 * each event once with its data, a failing consumer is retried with the
 * declared backoff and then dead-lettered, listed and re-queued.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(events, .fini = check_free);

static const char *const plugins[] = { "emitter.so", NULL };

/* Lines in the daemon's sink file. */
static int
sink_lines(void)
{
	char path[4200];
	FILE *f;
	int n = 0, c;

	snprintf(path, sizeof(path), "%s/sink.log", daemon_dir(check_daemon()));
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while ((c = fgetc(f)) != EOF)
		if (c == '\n')
			n++;
	fclose(f);
	return n;
}

static char *
sink_text(void)
{
	char path[4200];
	size_t len;

	snprintf(path, sizeof(path), "%s/sink.log", daemon_dir(check_daemon()));
	return harness_read_bytes(path, &len);
}

static int want_lines;

static int
enough_lines(void *arg)
{
	(void)arg;
	return sink_lines() >= want_lines;
}

/* host.events's count of `what` ("pending", "dead"). */
static int
events_count(const char *what)
{
	json_object *r = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.events\"}");
	json_object *v = json_path(r, "body") ? json_path(r, "body") : NULL;
	int n = -1;

	if (v != NULL && json_object_object_get_ex(v, what, &v))
		n = json_object_get_int(v);
	json_object_put(r);
	return n;
}

static int
drained(void *arg)
{
	(void)arg;
	return events_count("pending") == 0;
}

static int
one_dead(void *arg)
{
	(void)arg;
	return events_count("dead") == 1;
}

static void
start(const char *routes)
{
	char cfg[1024];

	snprintf(cfg, sizeof(cfg), "[plugin:emitter]\nfile = sink.log\n%s",
	    routes);
	check_start_with(plugins, cfg);
}

/* 1. A call that emits and then fails, or emits what is refused, or too
 * many: nothing is published; the next good call's event is. */
Test(events, failed_calls_publish_nothing)
{
	json_object *r;
	char *text;
	int fd;

	start("[route:t.ev]\ncommand = emit.sink\n");
	fd = check_connect();
	json_object_put(check_call(fd, "{\"command\":\"emit.some\",\"payload\":"
	    "{\"n\":2,\"fail\":422}}", 422, "asked_to_fail"));
	json_object_put(check_call(fd, "{\"command\":\"emit.some\",\"payload\":"
	    "{\"n\":3,\"fail\":500}}", 500, "asked_to_fail"));
	json_object_put(check_call(fd, "{\"command\":\"emit.some\",\"payload\":"
	    "{\"bad\":true}}", 500, "event_refused"));
	json_object_put(check_call(fd, "{\"command\":\"emit.some\",\"payload\":"
	    "{\"n\":65}}", 500, "event_refused"));
	json_object_put(check_call(fd, "{\"command\":\"emit.some\",\"payload\":"
	    "{\"subject\":\"bad..subject\"}}", 500, "event_refused"));
	r = check_call(fd, "{\"command\":\"emit.some\",\"payload\":"
	    "{\"data\":\"marker\"}}", 200, NULL);
	json_object_put(r);
	want_lines = 1;
	CHECK(wait_until(enough_lines, NULL, 10000), "the good event never "
	    "arrived");
	/* Give a wrongly published event time to show up too. */
	r = check_call(fd, "{\"command\":\"emit.some\",\"payload\":"
	    "{\"data\":\"marker2\"}}", 200, NULL);
	json_object_put(r);
	want_lines = 2;
	CHECK(wait_until(enough_lines, NULL, 10000), "the second event never "
	    "arrived");
	text = sink_text();
	CHECK(text != NULL && strstr(text, "\"marker\"") != NULL, "%s", text);
	CHECK(sink_lines() == 2, "published from a failed call: %s", text);
	free(text);
	close(fd);
	check_stop_clean();
}

/* 2. A route's consumer gets each event once, with the call's data. */
Test(events, route_consumer_runs_once_with_the_data)
{
	char *text;
	int fd;

	start("[route:order.paid]\ncommand = emit.sink\n");
	fd = check_connect();
	json_object_put(check_call(fd, "{\"command\":\"emit.some\",\"payload\":"
	    "{\"subject\":\"order.paid\",\"n\":3,\"text\":true,"
	    "\"data\":{\"orderId\":\"o-1\",\"amount\":12.5}}}", 200, NULL));
	want_lines = 3;
	CHECK(wait_until(enough_lines, NULL, 10000), "events not delivered");
	/* A delivery is marked done after its consumer returned. */
	CHECK(wait_until(drained, NULL, 10000), "still pending");
	text = sink_text();
	for (int i = 0; i < 3; i++) {
		char want[96];

		snprintf(want, sizeof(want), "{\"i\":%d,\"data\":{\"orderId\":"
		    "\"o-1\",\"amount\":12.5}}", i);
		CHECK(strstr(text, want) != NULL, "no %s in %s", want, text);
	}
	CHECK(sink_lines() == 3, "delivered more than once: %s", text);
	free(text);
	{
		char *const argv[] = { CMDHOST_BUILD_DIR "/cmdhost", "-s",
		    (char *)daemon_socket_path(check_daemon()), "stats",
		    "--prometheus", NULL };
		char *out = NULL;
		int st = -1;

		CHECK(run_command(argv, NULL, 10000, &st, &out, NULL) == 0 &&
		    st == 0, "cmdhost stats --prometheus: %d", st);
		CHECK(strstr(out, "cmdhost_events_delivered_total{subject="
		    "\"order.paid\"} 3\n") != NULL &&
		    strstr(out, "cmdhost_events_pending{subject=\"order.paid\"} "
		    "0\n") != NULL, "%s", out);
		free(out);
	}
	close(fd);
	check_stop_clean();
}

/* 3. A consumer that fails is retried with the declared backoff, then
 * dead-lettered, listed, and re-queued by hand. */
Test(events, failing_consumer_backs_off_then_dead_letters)
{
	long long t[8];
	json_object *r;
	char *text, *p;
	int fd, n = 0;

	start("[route:t.bad]\ncommand = emit.flaky\nmax_attempts = 4\n"
	    "backoff_ms = 100\nbackoff_max_ms = 300\n");
	fd = check_connect();
	json_object_put(check_call(fd, "{\"command\":\"emit.some\",\"payload\":"
	    "{\"subject\":\"t.bad\"}}", 200, NULL));
	CHECK(wait_until(one_dead, NULL, 15000), "never dead-lettered");
	CHECK(sink_lines() == 4, "attempts: %d", sink_lines());
	text = sink_text();
	for (p = text; p != NULL && *p != '\0' && n < 8; n++) {
		t[n] = atoll(p);
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	/* Waits of 100, 200, then 300 (capped) ms, give or take a tick. */
	CHECK(t[1] - t[0] >= 90 && t[2] - t[1] >= 180 && t[3] - t[2] >= 270,
	    "gaps %lld %lld %lld", t[1] - t[0], t[2] - t[1], t[3] - t[2]);
	CHECK(t[3] - t[2] < 2000, "gap %lld", t[3] - t[2]);
	free(text);
	r = check_call(fd, "{\"command\":\"host.events\",\"payload\":"
	    "{\"dead\":true}}", 200, NULL);
	{
		json_object *list = json_path(r, "body/dead_events"), *e;
		char line[300];

		CHECK(list != NULL && json_object_array_length(list) == 1, "%s",
		    reply_text(r));
		e = json_object_array_get_idx(list, 0);
		CHECK(json_object_get_int(json_object_object_get(e,
		    "attempts")) == 4, "%s", reply_text(r));
		CHECK(strstr(json_object_get_string(json_object_object_get(e,
		    "last_error")), "503") != NULL, "%s", reply_text(r));
		snprintf(line, sizeof(line), "{\"command\":\"host.events\","
		    "\"payload\":{\"requeue\":\"%s\"}}",
		    json_object_get_string(json_object_object_get(e, "id")));
		json_object_put(check_call(fd, line, 200, NULL));
	}
	json_object_put(r);
	want_lines = 8;
	CHECK(wait_until(enough_lines, NULL, 15000), "re-queued event not "
	    "retried");
	CHECK(wait_until(one_dead, NULL, 15000), "not dead again");
	json_object_put(check_call(fd, "{\"command\":\"host.events\",\"payload\":"
	    "{\"requeue\":\"nope\"}}", 404, "not_found"));
	close(fd);
	check_stop_clean();
}

/* Send `calls` emit.some calls of `per` events each on subject t.many,
 * pipelined on `conns` connections at once, and require a 200 for each. */
static void
emit_load(int conns, int calls, int per)
{
	int fds[8];
	char line[160];

	cr_assert(conns <= 8);
	for (int c = 0; c < conns; c++)
		fds[c] = check_connect();
	for (int i = 0; i < calls; i++) {
		snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
		    "\"emit.some\",\"payload\":{\"subject\":\"t.many\","
		    "\"n\":%d}}", i, per);
		CHECK(client_send(fds[i % conns], line) == 0, "send");
	}
	for (int i = 0; i < calls; i++) {
		char *rep = client_recv_line(fds[i % conns]);

		CHECK(rep != NULL && strstr(rep, "\"status\":200") != NULL,
		    "reply %d: %s", i, rep ? rep : "(none)");
		free(rep);
	}
	for (int c = 0; c < conns; c++)
		close(fds[c]);
}

#if defined(__SANITIZE_ADDRESS__) || defined(CMDHOST_DAEMON_SANITIZED)
/* A sanitizer's quarantine and shadow memory: RSS means nothing. */
#define RSS_CHECKED 0
#else
#define RSS_CHECKED 1
#endif
/* What delivered events may leave behind once the caches are warm:
 * allocator arenas and SQLite page caches settling, not the events. */
#define RSS_SLACK_KB (8 * 1024)
#define ROUNDS 3

/* Wait for `lines` lines in the sink, then for nothing pending nor
 * dead; `what` names the step in a failure. */
static void
expect_delivered(int lines, const char *what)
{
	want_lines = lines;
	CHECK(wait_until(enough_lines, NULL, 120000), "%s: %d of %d lines",
	    what, sink_lines(), lines);
	CHECK(wait_until(drained, NULL, 30000), "%s: pending left: %d", what,
	    events_count("pending"));
	CHECK(events_count("dead") == 0, "%s: dead letters", what);
	CHECK(sink_lines() == lines, "%s: lines %d", what, sink_lines());
}

/*
 * 4. 10,000 events under load (8 connections pipelining 200 calls of 50
 * events each): all delivered, the outbox back to empty; after a first
 * such round has warmed the caches, three more leave the daemon's RSS
 * near where it was.  Each route delivery stores an idempotency record
 * (its event id is the key), kept in memory up to idempotency_memory by
 * design: 100 here, so that what is measured is the events' memory.
 */
Test(events, many_events_all_delivered, .timeout = 300)
{
	long rss0, rss1;
	pid_t pid;

	start("[host]\nidempotency_memory = 100\n[events]\nwindow = 16\n"
	    "[route:t.many]\ncommand = emit.sink\n");
	pid = daemon_pid(check_daemon());
	emit_load(8, 200, 50);
	expect_delivered(10000, "the first 10,000");
	rss0 = proc_rss_kib(pid);
	CHECK(rss0 > 0, "cannot read /proc/%d/status", (int)pid);
	for (int r = 1; r <= ROUNDS; r++) {
		emit_load(8, 200, 50);
		expect_delivered(10000 * (r + 1), "a round of 10,000");
	}
	rss1 = proc_rss_kib(pid);
	cr_log_info("VmRSS %ld kB after 10,000 events, %ld kB after %d more "
	    "rounds\n", rss0, rss1, ROUNDS);
	if (RSS_CHECKED)
		CHECK(rss1 <= rss0 + RSS_SLACK_KB, "VmRSS %ld kB after 10,000 "
		    "events, %ld kB after %d more rounds (allowed +%d kB)",
		    rss0, rss1, ROUNDS, RSS_SLACK_KB);
	check_stop_clean();
}

static char shared[64];

static int
sink_has(const char *path, const char *text, int times)
{
	size_t len;
	char *t = harness_read_bytes(path, &len), *p;
	int n = 0;

	for (p = t; p != NULL && (p = strstr(p, text)) != NULL; p++)
		n++;
	free(t);
	return n >= times;
}

struct want {
	const char *path, *text;
	int times;
};

static int
want_met(void *arg)
{
	struct want *w = arg;

	return sink_has(w->path, w->text, w->times);
}

/* 5. SIGKILL right after the replies of emitting calls, and after the
 * orders plugin's own commit (its outbox relayed): after a restart on
 * the same state every event is delivered. */
Test(events, sigkill_then_restart_delivers_everything)
{
	static const char *const both[] = { "emitter.so", "plugins/orders.so",
	    NULL };
	char cfg[2048], sink[128], line[256];
	struct daemon *d;
	struct want w;
	int fd;

	check_tmp_dir(shared, sizeof(shared), "ev", NULL);
	snprintf(sink, sizeof(sink), "%s/sink.log", shared);
	/* First life: every delivery fails and waits a minute. */
	snprintf(cfg, sizeof(cfg), "state_dir = %s/state\n"
	    "[plugin:emitter]\nfile = %s/flaky.log\n"
	    "[plugin:orders]\ndatabase = %s/orders.db\n"
	    "[route:t.k]\ncommand = emit.flaky\nbackoff_ms = 60000\n"
	    "[route:payment.requested]\ncommand = emit.flaky\n"
	    "backoff_ms = 60000\n", shared, shared, shared);
	d = check_start_with(both, cfg);
	fd = check_connect();
	for (int i = 0; i < 200; i++) {
		snprintf(line, sizeof(line), "{\"command\":\"emit.some\","
		    "\"payload\":{\"subject\":\"t.k\",\"data\":\"k%d\"}}", i);
		json_object_put(check_call(fd, line, 200, NULL));
	}
	json_object_put(check_call(fd, "{\"command\":\"PROCESS_ORDER\","
	    "\"payload\":{\"orderId\":\"o-kill\",\"userId\":\"u-1\","
	    "\"amount\":3}}", 200, NULL));
	close(fd);
	cr_assert_eq(daemon_signal(d, SIGKILL), 0);
	daemon_wait(d, 5000);
	check_free();
	/* Second life: the same state, working consumers. */
	snprintf(cfg, sizeof(cfg), "state_dir = %s/state\n"
	    "[plugin:emitter]\nfile = %s\n"
	    "[plugin:orders]\ndatabase = %s/orders.db\n"
	    "[route:t.k]\ncommand = emit.sink\n"
	    "[route:payment.requested]\ncommand = emit.sink\n", shared, sink,
	    shared);
	check_start_with(both, cfg);
	w.path = sink;
	w.text = "o-kill";
	w.times = 1;
	CHECK(wait_until(want_met, &w, 15000), "the order's payment.requested "
	    "was lost");
	for (int i = 0; i < 200; i++) {
		char want[32];

		snprintf(want, sizeof(want), "\"k%d\"", i);
		w.text = want;
		CHECK(wait_until(want_met, &w, 15000), "event %s was lost",
		    want);
	}
	check_stop_clean();
	harness_rm_tree(shared);
}
