/*
 * test_nats_events.c - events published to a real nats-server: a subject
 * no route takes goes to NATS with Nats-Msg-Id = the event id; while the
 * server is down the events wait in the outbox, and go out in order per
 * subject once it is back.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
