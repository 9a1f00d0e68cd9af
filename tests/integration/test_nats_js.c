/*
 * test_nats_js.c - events on JetStream with real daemons and a real
 * nats-server: 5,000 events consumed by two daemons, one SIGKILLed
 * mid-way, none lost; a 4xx event dead-lettered once and never retried; a
 * failing event retried max_deliver times, then dead-lettered; a graceful
 * stop finishes and acks what it holds.
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "nats_harness.h"

#define N_EVENTS 5000

static struct natsd *srv;
static struct daemon *d1, *d2;
static natsConnection *nc;
static jsCtx *js;
static char files[2][PATH_MAX];

static void
teardown(void)
{
	if (js != NULL)
		jsCtx_Destroy(js);
	js = NULL;
	if (nc != NULL)
		natsConnection_Destroy(nc);
	nc = NULL;
	daemon_free(d1);
	daemon_free(d2);
	d1 = d2 = NULL;
	natsd_free(srv);
	srv = NULL;
	unlink(files[0]);
	unlink(files[1]);
}

static void
setup(void)
{
	srv = natsd_start();
	cr_assert(srv != NULL, "nats-server did not start");
	nc = nclient_connect(srv);
	cr_assert(nc != NULL);
	cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
	for (int i = 0; i < 2; i++) {
		snprintf(files[i], sizeof(files[i]), "/tmp/cmdhost-record.%d.%d",
		    (int)getpid(), i);
		unlink(files[i]);
	}
}

/* A daemon with the record plugin writing to files[which], consuming the
 * stream; waits until its consumer is bound. */
static struct daemon *
start_consumer(int which, const char *js_extra)
{
	const char *const plugins[] = { "record.so", NULL };
	struct daemon_opts o = { 0 };
	char extra[1024], *nats, *cfg;
	struct daemon *d;

	snprintf(extra, sizeof(extra), "[jetstream]\nack_wait_ms = 3000\n"
	    "nak_delay_ms = 100\n%s\n[plugin:record]\nfile = %s\n",
	    js_extra ? js_extra : "", files[which]);
	nats = natsd_config(srv, extra);
	/* [host] first: command timeouts stay under ack_wait. */
	cr_assert(asprintf(&cfg, "default_timeout_ms = 2000\n%s", nats) > 0);
	free(nats);
	o.plugins = plugins;
	o.config = cfg;
	d = daemon_start(&o);
	free(cfg);
	cr_assert(d != NULL, "daemon did not start");
	if (!daemon_log_wait(d, "nats: consuming stream", 10000)) {
		daemon_dump_log(d);
		natsd_dump_log(srv);
		cr_assert_fail("the consumer was never bound");
	}
	return d;
}

static void
publish(const char *command, int id, const char *extra)
{
	char subject[128], data[256];
	jsPubAck *pa = NULL;
	natsStatus s;

	snprintf(subject, sizeof(subject), "cmdhost.events.%s", command);
	snprintf(data, sizeof(data), "{\"command\":\"%s\",\"payload\":"
	    "{\"id\":%d%s}}", command, id, extra ? extra : "");
	s = js_Publish(&pa, js, subject, data, (int)strlen(data), NULL, NULL);
	cr_assert_eq(s, NATS_OK, "publish: %s", natsStatus_GetText(s));
	jsPubAck_Destroy(pa);
}

/* How many distinct ids 0..n-1 the two files hold; *lines gets the total
 * number of lines. */
static int
distinct_ids(int n, long *lines)
{
	int *a = calloc((size_t)n, sizeof(int)), *b = calloc((size_t)n,
	    sizeof(int)), seen = 0;
	long la, lb;

	cr_assert(a != NULL && b != NULL);
	la = count_ids(files[0], a, n);
	lb = count_ids(files[1], b, n);
	for (int i = 0; i < n; i++)
		seen += a[i] + b[i] > 0;
	if (lines != NULL)
		*lines = (la > 0 ? la : 0) + (lb > 0 ? lb : 0);
	free(a);
	free(b);
	return seen;
}

TestSuite(nats_js, .init = setup, .fini = teardown, .timeout = 90);

Test(nats_js, five_thousand_events_none_lost_when_a_daemon_dies)
{
	int64_t deadline;
	long lines = 0, la;
	int seen = 0, *counts = calloc(N_EVENTS, sizeof(int));

	cr_assert(counts != NULL);
	d1 = start_consumer(0, NULL);
	d2 = start_consumer(1, NULL);
	for (int i = 0; i < N_EVENTS; i++)
		publish("record.event", i, NULL);
	/* Kill d1 once it has done part of the work. */
	deadline = now_ms() + 30000;
	while ((la = count_ids(files[0], counts, N_EVENTS)) < 500 &&
	    distinct_ids(N_EVENTS, NULL) < N_EVENTS && now_ms() < deadline)
		nap_ms(5);
	cr_assert_eq(daemon_signal(d1, SIGKILL), 0);
	deadline = now_ms() + 30000;
	while ((seen = distinct_ids(N_EVENTS, &lines)) < N_EVENTS &&
	    now_ms() < deadline)
		nap_ms(20);
	cr_assert_eq(seen, N_EVENTS, "%d of %d ids recorded (%ld lines; d1 "
	    "had %ld when killed)", seen, N_EVENTS, lines, la);
	cr_assert_gt(count_ids(files[1], counts, N_EVENTS), 0,
	    "the second daemon did no work");
	free(counts);
	cr_assert_eq(daemon_stop(d2), 0);
}

/* Wait for dead letters on sub until `want` arrived and `quiet_ms` pass
 * without another; returns how many came.  *last gets the last one
 * (put it). */
static int
dead_letters(natsSubscription *sub, int want, int quiet_ms, json_object **last)
{
	int64_t deadline = now_ms() + 15000;
	int got = 0;

	*last = NULL;
	while (now_ms() < deadline) {
		natsMsg *m = NULL;
		int wait = got >= want ? quiet_ms : 500;

		if (natsSubscription_NextMsg(&m, sub, wait) != NATS_OK) {
			if (got >= want)
				break;
			continue;
		}
		got++;
		json_object_put(*last);
		*last = json_tokener_parse(natsMsg_GetData(m));
		natsMsg_Destroy(m);
	}
	return got;
}

/*
 * Start a consumer with `extra` config, publish one event of `command`
 * with payload id `id`, and wait for exactly one dead letter (failing the
 * test otherwise).  Returns it (json_object_put() it).
 */
static json_object *
one_dead_letter(const char *extra, const char *command, int id)
{
	natsSubscription *sub = NULL;
	json_object *dl = NULL;
	int got;

	cr_assert_eq(natsConnection_SubscribeSync(&sub, nc,
	    "cmdhost.dead.>"), NATS_OK);
	cr_assert_eq(natsConnection_Flush(nc), NATS_OK);
	d1 = start_consumer(0, extra);
	publish(command, id, NULL);
	got = dead_letters(sub, 1, 1500, &dl);
	natsSubscription_Destroy(sub);
	if (got != 1) {
		daemon_dump_log(d1);
		cr_assert_fail("%d dead letters", got);
	}
	return dl;
}

Test(nats_js, refused_event_dead_lettered_once)
{
	json_object *dl = one_dead_letter("max_deliver = 4", "record.reject",
	    7);
	int counts[8];

	cr_assert_eq(json_object_get_int(json_path(dl, "reply/status")), 422,
	    "%s", reply_text(dl));
	cr_assert_eq(json_object_get_int(json_path(dl, "deliveries")), 1);
	cr_assert_eq(json_object_get_int(json_path(dl, "event/payload/id")),
	    7);
	cr_assert_eq(count_ids(files[0], counts, 8), 1, "retried");
	json_object_put(dl);
	cr_assert_eq(daemon_stop(d1), 0);
}

Test(nats_js, failing_event_retried_max_deliver_times)
{
	json_object *dl = one_dead_letter("max_deliver = 3", "record.fail", 3);
	int counts[8];

	cr_assert_eq(json_object_get_int(json_path(dl, "reply/status")), 500,
	    "%s", reply_text(dl));
	cr_assert_eq(json_object_get_int(json_path(dl, "deliveries")), 3);
	cr_assert_eq(count_ids(files[0], counts, 8), 3);
	cr_assert_eq(counts[3], 3);
	json_object_put(dl);
	cr_assert_eq(daemon_stop(d1), 0);
}

Test(nats_js, graceful_stop_acks_what_it_holds)
{
	int64_t deadline;
	long lines = 0;
	int seen, counts[200];

	d1 = start_consumer(0, "max_inflight = 8");
	for (int i = 0; i < 200; i++)
		publish("record.slow", i, ",\"ms\":20");
	deadline = now_ms() + 20000;
	while (count_ids(files[0], counts, 200) < 20 && now_ms() < deadline)
		nap_ms(5);
	cr_assert_eq(daemon_stop(d1), 0, "the daemon did not stop cleanly");
	if (!daemon_log_contains(d1, "JetStream consumer stopped")) {
		daemon_dump_log(d1);
		cr_assert_fail("the consumer did not stop cleanly");
	}
	d2 = start_consumer(1, "max_inflight = 8");
	deadline = now_ms() + 30000;
	while ((seen = distinct_ids(200, &lines)) < 200 && now_ms() < deadline)
		nap_ms(20);
	cr_assert_eq(seen, 200, "%d of 200", seen);
	/* Acked before the stop: nothing ran twice. */
	cr_assert_eq(lines, 200, "%ld lines for 200 events", lines);
	cr_assert_eq(daemon_stop(d2), 0);
}
