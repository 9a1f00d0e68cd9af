/*
 * nats_js.c - consume the JetStream work queue for the NATS module.
 *
 * One thread per daemon creates (or binds) the work-queue stream and the
 * durable pull consumer shared by all daemons, fetches events and hands
 * each to the host as a call.  The reply decides: 2xx ack; 4xx term and
 * dead-letter; 5xx or timeout nak with a delay, and on the last allowed
 * delivery term and dead-letter.  404 counts as a retry, not a refusal:
 * during a rolling upgrade another daemon may have the command.  An event held by a daemon that dies is
 * redelivered by the server after ack_wait.
 */
#include "nats_bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>


#define FETCH_WAIT_MS 500
#define MAX_SUBJECTS 16

struct nats_js {
	struct bridge *b;
	jsCtx *ctx;
	natsSubscription *sub;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;       /* held, stop */
	pthread_cond_t cond;
	int held;                   /* events fetched and not yet settled */
	int stop;
	atomic_uint_fast64_t acked, termed, naked;
};

/* One event on its way through the host. */
struct event {
	struct nats_js *js;
	natsMsg *msg;
	char *command;              /* owned, or NULL when the event is bad */
	uint64_t delivered;
	uint64_t stream_seq;
};

/* Publish {"event", "reply", "deliveries", "stream_seq"} to the dead
 * letter subject of the event's command. */
static void
dead_letter(struct event *ev, const char *reply, size_t len)
{
	struct bridge *b = ev->js->b;
	struct json_object *o = json_object_new_object(), *e, *r;
	char subject[512];
	const char *data = natsMsg_GetData(ev->msg);
	int dlen = natsMsg_GetDataLength(ev->msg);
	natsStatus s;

	snprintf(subject, sizeof(subject), "%s%s", b->cfg->js_dead_letter,
	    ev->command ? ev->command : "_invalid");
	e = json_tokener_parse(dlen > 0 ? data : "null");
	if (e == NULL && dlen > 0)
		e = json_object_new_string_len(data, dlen);
	r = json_tokener_parse(reply);
	(void)len;
	json_object_object_add(o, "event", e);
	json_object_object_add(o, "reply", r);
	json_object_object_add(o, "deliveries",
	    json_object_new_uint64(ev->delivered));
	json_object_object_add(o, "stream_seq",
	    json_object_new_uint64(ev->stream_seq));
	s = natsConnection_PublishString(b->nc, subject,
	    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	if (s != NATS_OK)
		bridge_log(b, NLOG_WARN, "nats: dead letter to %s not "
		    "published: %s", subject, natsStatus_GetText(s));
	else
		bridge_log(b, NLOG_WARN, "nats: event %llu dead-lettered to %s "
		    "after %llu deliveries", (unsigned long long)ev->stream_seq,
		    subject, (unsigned long long)ev->delivered);
	json_object_put(o);
}

/* The host's reply for one event: settle it. */
static void
on_event_reply(void *arg, const char *reply, size_t len, int status)
{
	struct event *ev = arg;
	struct nats_js *js = ev->js;
	const struct nats_config *cfg = js->b->cfg;
	natsStatus s;

	if (status >= 200 && status < 300) {
		s = natsMsg_Ack(ev->msg, NULL);
		atomic_fetch_add(&js->acked, 1);
	} else if ((status >= 400 && status < 500 && status != 404 &&
	    status != 408) || ev->delivered >= (uint64_t)cfg->js_max_deliver) {
		/* Refused for good, or out of attempts: never again. */
		dead_letter(ev, reply, len);
		s = natsMsg_Term(ev->msg, NULL);
		atomic_fetch_add(&js->termed, 1);
	} else {
		s = natsMsg_NakWithDelay(ev->msg, cfg->js_nak_delay_ms, NULL);
		atomic_fetch_add(&js->naked, 1);
	}
	if (s != NATS_OK)
		bridge_log(js->b, NLOG_WARN, "nats: event not settled (%s); the "
		    "server redelivers it after ack_wait", natsStatus_GetText(s));
	natsMsg_Destroy(ev->msg);
	free(ev->command);
	free(ev);
	pthread_mutex_lock(&js->lock);
	js->held--;
	pthread_cond_broadcast(&js->cond);
	pthread_mutex_unlock(&js->lock);
}

/* Hand one fetched message to the host (it always settles it). */
static void
handle(struct nats_js *js, natsMsg *msg)
{
	struct bridge *b = js->b;
	struct event *ev = calloc(1, sizeof(*ev));
	struct json_object *o = NULL, *v, *payload = NULL;
	jsMsgMetaData *meta = NULL;
	const char *payload_text = "", *id_text = NULL;
	char id_buf[160];
	int64_t timeout_ms = 0;
	static const char bad[] = "{\"id\":null,\"status\":400,\"error\":{"
	    "\"code\":\"bad_request\",\"message\":\"an event is a JSON object "
	    "with a string member command\"}}";

	if (ev == NULL) {
		natsMsg_Destroy(msg); /* redelivered after ack_wait */
		pthread_mutex_lock(&js->lock);
		js->held--;
		pthread_mutex_unlock(&js->lock);
		return;
	}
	ev->js = js;
	ev->msg = msg;
	if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
		ev->delivered = meta->NumDelivered;
		ev->stream_seq = meta->Sequence.Stream;
		jsMsgMetaData_Destroy(meta);
	}
	if (natsMsg_GetDataLength(msg) > 0)
		o = json_tokener_parse(natsMsg_GetData(msg));
	if (o == NULL || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "command", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		json_object_put(o);
		on_event_reply(ev, bad, sizeof(bad) - 1, 400);
		return;
	}
	ev->command = strdup(json_object_get_string(v));
	if (json_object_object_get_ex(o, "payload", &payload) &&
	    payload != NULL)
		payload_text = json_object_to_json_string_ext(payload,
		    JSON_C_TO_STRING_PLAIN);
	if (json_object_object_get_ex(o, "id", &v) && v != NULL) {
		id_text = json_object_to_json_string_ext(v,
		    JSON_C_TO_STRING_PLAIN);
	} else {
		/* No id of its own: the stream sequence, the same on every
		 * delivery, so a command can spot a repeat. */
		snprintf(id_buf, sizeof(id_buf), "\"%s:%llu\"",
		    b->cfg->js_stream, (unsigned long long)ev->stream_seq);
		id_text = id_buf;
	}
	if (json_object_object_get_ex(o, "timeout_ms", &v) &&
	    json_object_is_type(v, json_type_int))
		timeout_ms = json_object_get_int64(v);
	/* An event must be settled before ack_wait hands it to another
	 * daemon: its deadline ends a second before that. */
	if (timeout_ms > (int64_t)b->cfg->js_ack_wait_ms - 1000)
		timeout_ms = b->cfg->js_ack_wait_ms - 1000;
	if (ev->command == NULL) {
		json_object_put(o);
		on_event_reply(ev, bad, sizeof(bad) - 1, 503);
		return;
	}
	b->api->call(b->api->host, ev->command, payload_text,
	    strlen(payload_text), id_text, timeout_ms, on_event_reply, ev);
	json_object_put(o);
}

/* Create the stream (work queue) unless it exists, and bind the durable
 * pull consumer.  Returns 0, or -1 to retry later. */
static int
js_bind(struct nats_js *js)
{
	struct bridge *b = js->b;
	const struct nats_config *c = b->cfg;
	jsStreamInfo *si = NULL;
	jsStreamConfig sc;
	jsSubOptions so;
	jsConsumerConfig cc;
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	const char *subjects[MAX_SUBJECTS];
	char *copy, *tok, *save = NULL;
	int n = 0;

	if (js->ctx == NULL &&
	    natsConnection_JetStream(&js->ctx, b->nc, NULL) != NATS_OK)
		return -1;
	s = js_GetStreamInfo(&si, js->ctx, c->js_stream, NULL, &jerr);
	if (s == NATS_OK) {
		jsStreamInfo_Destroy(si);
	} else if (jerr == JSStreamNotFoundErr) {
		if ((copy = strdup(c->js_subjects)) == NULL)
			return -1;
		for (tok = strtok_r(copy, ", ", &save); tok != NULL &&
		    n < MAX_SUBJECTS; tok = strtok_r(NULL, ", ", &save))
			subjects[n++] = tok;
		jsStreamConfig_Init(&sc);
		sc.Name = c->js_stream;
		sc.Subjects = subjects;
		sc.SubjectsLen = n;
		sc.Retention = js_WorkQueuePolicy;
		sc.Storage = js_FileStorage;
		s = js_AddStream(&si, js->ctx, &sc, NULL, &jerr);
		free(copy);
		if (s != NATS_OK) {
			bridge_log(b, NLOG_WARN, "nats: cannot create stream %s: "
			    "%s (%d); retrying", c->js_stream,
			    natsStatus_GetText(s), (int)jerr);
			return -1;
		}
		jsStreamInfo_Destroy(si);
		bridge_log(b, NLOG_INFO, "nats: created work-queue stream %s "
		    "on %s", c->js_stream, c->js_subjects);
	} else {
		return -1; /* not connected yet, most likely */
	}
	/* Made explicitly, so that no daemon's unsubscribe deletes it. */
	jsConsumerConfig_Init(&cc);
	cc.Durable = c->js_durable;
	cc.AckPolicy = js_AckExplicit;
	cc.AckWait = (int64_t)c->js_ack_wait_ms * 1000000;
	cc.MaxDeliver = c->js_max_deliver;
	cc.MaxAckPending = -1;
	s = js_AddConsumer(&ci, js->ctx, c->js_stream, &cc, NULL, &jerr);
	if (s == NATS_OK)
		jsConsumerInfo_Destroy(ci);
	else
		bridge_log(b, NLOG_DEBUG, "nats: consumer %s not added (%s, "
		    "%d): binding the existing one", c->js_durable,
		    natsStatus_GetText(s), (int)jerr);
	jsSubOptions_Init(&so);
	so.Stream = c->js_stream;
	so.Consumer = c->js_durable;
	so.ManualAck = true;
	s = js_PullSubscribe(&js->sub, js->ctx, NULL, c->js_durable, NULL,
	    &so, &jerr);
	if (s != NATS_OK) {
		js->sub = NULL;
		bridge_log(b, NLOG_WARN, "nats: cannot bind consumer %s on %s: "
		    "%s (%d); retrying", c->js_durable, c->js_stream,
		    natsStatus_GetText(s), (int)jerr);
		return -1;
	}
	bridge_log(b, NLOG_INFO, "nats: consuming stream %s with durable %s "
	    "(ack_wait %d ms, max_deliver %d)", c->js_stream, c->js_durable,
	    c->js_ack_wait_ms, c->js_max_deliver);
	return 0;
}

/* Wait up to ms or until stop.  Returns 1 when stopping.  js->lock held. */
static int
nap(struct nats_js *js, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (!js->stop)
		pthread_cond_timedwait(&js->cond, &js->lock, &ts);
	return js->stop;
}

static void *
js_main(void *arg)
{
	struct nats_js *js = arg;
	const struct nats_config *c = js->b->cfg;

	js->b->api->thread_init();
	pthread_mutex_lock(&js->lock);
	while (!js->stop && js->sub == NULL) {
		pthread_mutex_unlock(&js->lock);
		if (js_bind(js) == 0) {
			pthread_mutex_lock(&js->lock);
			break;
		}
		pthread_mutex_lock(&js->lock);
		nap(js, 500);
	}
	while (!js->stop) {
		natsMsgList list = { NULL, 0 };
		natsStatus s;
		int room;

		while (!js->stop && js->held >= c->js_max_inflight)
			pthread_cond_wait(&js->cond, &js->lock);
		if (js->stop)
			break;
		room = c->js_max_inflight - js->held;
		if (room > c->js_fetch_batch)
			room = c->js_fetch_batch;
		pthread_mutex_unlock(&js->lock);
		s = natsSubscription_Fetch(&list, js->sub, room, FETCH_WAIT_MS,
		    NULL);
		pthread_mutex_lock(&js->lock);
		if (s != NATS_OK && s != NATS_TIMEOUT)
			(void)nap(js, 200); /* disconnected: wait for reconnect */
		js->held += list.Count;
		pthread_mutex_unlock(&js->lock);
		for (int i = 0; i < list.Count; i++) {
			natsMsg *m = list.Msgs[i];

			list.Msgs[i] = NULL; /* ours now */
			handle(js, m);
		}
		natsMsgList_Destroy(&list);
		pthread_mutex_lock(&js->lock);
	}
	pthread_mutex_unlock(&js->lock);
	return NULL;
}

struct nats_js *
js_start(struct bridge *b)
{
	struct nats_js *js = calloc(1, sizeof(*js));

	if (js == NULL)
		return NULL;
	js->b = b;
	pthread_mutex_init(&js->lock, NULL);
	pthread_cond_init(&js->cond, NULL);
	if (pthread_create(&js->thread, NULL, js_main, js) != 0) {
		bridge_log(b, NLOG_ERROR, "nats: cannot start the JetStream "
		    "thread");
		js_stop(js, 0);
		return NULL;
	}
	js->started = 1;
	return js;
}

void
js_stop(struct nats_js *js, int64_t deadline_ns)
{
	int held;

	if (js == NULL)
		return;
	pthread_mutex_lock(&js->lock);
	js->stop = 1;
	pthread_cond_broadcast(&js->cond);
	pthread_mutex_unlock(&js->lock);
	if (js->started)
		pthread_join(js->thread, NULL);
	/* What we hold finishes and is settled (acked) by its reply. */
	pthread_mutex_lock(&js->lock);
	while (js->held > 0 && bridge_now_ns() < deadline_ns) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 5000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&js->cond, &js->lock, &ts);
	}
	held = js->held;
	pthread_mutex_unlock(&js->lock);
	if (held > 0) {
		bridge_log(js->b, NLOG_WARN, "nats: %d event(s) still running at "
		    "shutdown; the server redelivers them after ack_wait", held);
		return; /* their replies still use js */
	}
	bridge_log(js->b, NLOG_INFO, "nats: JetStream consumer stopped (%llu "
	    "acked, %llu terminated, %llu retried)",
	    (unsigned long long)atomic_load(&js->acked),
	    (unsigned long long)atomic_load(&js->termed),
	    (unsigned long long)atomic_load(&js->naked));
	if (js->sub != NULL) {
		/* The durable stays on the server for the other daemons. */
		natsSubscription_Destroy(js->sub);
	}
	jsCtx_Destroy(js->ctx);
	pthread_mutex_destroy(&js->lock);
	pthread_cond_destroy(&js->cond);
	free(js);
}
