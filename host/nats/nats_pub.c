/*
 * nats_pub.c - publish the daemon's events for the NATS module.
 *
 * One event, one publish, and an answer only once the server has it: a
 * JetStream publish waits for the stream's ack (Nats-Msg-Id = the event
 * id, so the stream keeps one copy within its duplicate window); a
 * subject no stream takes is published plainly and the connection
 * flushed; event_publish_many() sends a round of events and then reads
 * their acks together.  While the connection is down nothing is
 * buffered: the caller keeps the event and tries again.  Called from the
 * daemon's one delivery thread only.
 */
#include "nats_bridge.h"

#include <stdio.h>
#include <string.h>

#define PUB_WAIT_MS 2000

int
event_publish(void *bp, const char *subject, const char *data, size_t len,
    const char *msg_id, char *err, size_t errlen)
{
	struct bridge *b = bp;
	jsPubOptions po;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsMsg *m = NULL;
	natsStatus s;

	if (b->nc == NULL ||
	    natsConnection_Status(b->nc) != NATS_CONN_STATUS_CONNECTED) {
		snprintf(err, errlen, "not connected to NATS");
		return NATS_PUB_UNAVAILABLE;
	}
	if (b->pub_js == NULL && (s = natsConnection_JetStream(&b->pub_js,
	    b->nc, NULL)) != NATS_OK) {
		snprintf(err, errlen, "JetStream context: %s",
		    natsStatus_GetText(s));
		return NATS_PUB_UNAVAILABLE;
	}
	jsPubOptions_Init(&po);
	po.MsgId = msg_id;
	po.MaxWait = PUB_WAIT_MS;
	s = js_Publish(&pa, b->pub_js, subject, data, (int)len, &po, &jerr);
	jsPubAck_Destroy(pa);
	if (s == NATS_OK)
		return NATS_PUB_OK;
	if (s != NATS_NO_RESPONDERS) {
		snprintf(err, errlen, "JetStream publish on %s: %s", subject,
		    natsStatus_GetText(s));
		return NATS_PUB_UNAVAILABLE;
	}
	/* No stream takes the subject: a plain message, with the id as a
	 * header all the same, flushed so that the server has it. */
	s = natsMsg_Create(&m, subject, NULL, data, (int)len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(b->nc, m);
	if (s == NATS_OK)
		s = natsConnection_FlushTimeout(b->nc, PUB_WAIT_MS);
	natsMsg_Destroy(m);
	if (s != NATS_OK) {
		snprintf(err, errlen, "publish on %s: %s", subject,
		    natsStatus_GetText(s));
		return NATS_PUB_UNAVAILABLE;
	}
	return NATS_PUB_OK;
}

/* Acks of one round, read from the bridge's own inbox. */
#define MANY_WAIT_MS 2000

/* The bridge's ack subscription, made on first use: <inbox>.> */
static int
pub_sub(struct bridge *b, char *err, size_t errlen)
{
	char subject[96];
	natsStatus s;

	if (b->pub_sub != NULL)
		return 0;
	snprintf(b->pub_inbox, sizeof(b->pub_inbox), "_INBOX.cmdhost-ev.%s",
	    b->id);
	snprintf(subject, sizeof(subject), "%s.>", b->pub_inbox);
	s = natsConnection_SubscribeSync(&b->pub_sub, b->nc, subject);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(b->pub_sub, -1, -1);
	if (s != NATS_OK) {
		natsSubscription_Destroy(b->pub_sub);
		b->pub_sub = NULL;
		snprintf(err, errlen, "ack subscription: %s",
		    natsStatus_GetText(s));
		return -1;
	}
	return 0;
}

/* A message on subject with the header Nats-Msg-Id msg_id and, when
 * reply is not NULL, that reply subject.  Returns NATS_OK or the
 * failure. */
static natsStatus
send_one(struct bridge *b, const char *subject, const char *reply,
    const char *data, size_t len, const char *msg_id)
{
	natsMsg *m = NULL;
	natsStatus s = natsMsg_Create(&m, subject, reply, data, (int)len);

	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(b->nc, m);
	natsMsg_Destroy(m);
	return s;
}

/* Remember the first failure's reason in err. */
static void
first_error(char *err, size_t errlen, const char *fmt, const char *a,
    const char *c)
{
	if (err[0] == '\0')
		snprintf(err, errlen, fmt, a, c);
}

/* How long what JetStream said about a subject is believed. */
#define STREAM_TTL_MS 5000
#define STREAM_CACHE 64

/* Does a stream take `subject`?  1 yes, 0 no (or JetStream is off), -1
 * cannot tell now (not connected): asked of the JetStream API
 * ($JS.API.STREAM.NAMES with the subject as filter) and kept for
 * STREAM_TTL_MS, so that a stream added later is seen. */
static int
stream_takes(struct bridge *b, const char *subject)
{
	static struct {
		char subject[256];
		int takes;
		int64_t at_ms;
	} cache[STREAM_CACHE];
	static unsigned next;
	int64_t now = bridge_now_ns() / 1000000;
	char req[320];
	natsMsg *m = NULL;
	natsStatus s;
	const char *d;
	int takes, i;

	for (i = 0; i < STREAM_CACHE; i++)
		if (cache[i].at_ms != 0 && now - cache[i].at_ms < STREAM_TTL_MS &&
		    strcmp(cache[i].subject, subject) == 0)
			return cache[i].takes;
	if (strlen(subject) >= sizeof(cache[0].subject))
		return 1; /* not cached: let JetStream's answer decide */
	snprintf(req, sizeof(req), "{\"subject\":\"%s\"}", subject);
	s = natsConnection_RequestString(&m, b->nc, "$JS.API.STREAM.NAMES",
	    req, PUB_WAIT_MS);
	if (s == NATS_NO_RESPONDERS) {
		takes = 0; /* no JetStream: plain messages */
	} else if (s != NATS_OK) {
		return -1;
	} else {
		d = natsMsg_GetData(m);
		takes = d != NULL && strstr(d, "\"streams\":[\"") != NULL;
		natsMsg_Destroy(m);
	}
	i = (int)(next++ % STREAM_CACHE);
	snprintf(cache[i].subject, sizeof(cache[i].subject), "%s", subject);
	cache[i].takes = takes;
	cache[i].at_ms = now;
	return takes;
}

/*
 * A JetStream publish is a request: this sends each event with a reply
 * subject of its own (<inbox>.<round>.<i>) and then reads the acks of the
 * round as they come, instead of one request and its ack at a time.  An
 * ack of an earlier round (one that timed out) names another round and
 * is dropped.  A subject no stream takes (JetStream is asked, and its
 * answer kept a few seconds) goes as a plain message with the same
 * header, and a flush; so does one answered "no responders".
 */
size_t
event_publish_many(void *bp, size_t n, const char *const *subjects,
    const char *const *data, const size_t *lens, const char *const *msg_ids,
    int *ok, char *err, size_t errlen)
{
	struct bridge *b = bp;
	size_t waiting = 0, good = 0, plain = 0, plen;
	int64_t end;
	natsStatus s, fs = NATS_OK;
	char reply[160];

	err[0] = '\0';
	for (size_t i = 0; i < n; i++)
		ok[i] = 0;
	if (b->nc == NULL ||
	    natsConnection_Status(b->nc) != NATS_CONN_STATUS_CONNECTED) {
		snprintf(err, errlen, "not connected to NATS");
		return 0;
	}
	if (pub_sub(b, err, errlen) < 0)
		return 0;
	b->pub_round++;
	for (size_t i = 0; i < n; i++) {
		int takes = stream_takes(b, subjects[i]);

		if (takes < 0) {
			first_error(err, errlen, "publish on %s: %s",
			    subjects[i], "cannot ask JetStream for its stream");
			continue;
		}
		if (takes == 0) {
			/* No stream: a plain message (a request would be
			 * answered by nobody, or by a subscriber). */
			ok[i] = 2;
			plain++;
			continue;
		}
		snprintf(reply, sizeof(reply), "%s.%llu.%zu", b->pub_inbox,
		    (unsigned long long)b->pub_round, i);
		s = send_one(b, subjects[i], reply, data[i], lens[i],
		    msg_ids[i]);
		if (s != NATS_OK) {
			first_error(err, errlen, "publish on %s: %s",
			    subjects[i], natsStatus_GetText(s));
			continue;
		}
		ok[i] = -1; /* waiting for its ack */
		waiting++;
	}
	if (waiting > 0 && (s = natsConnection_FlushTimeout(b->nc,
	    MANY_WAIT_MS)) != NATS_OK)
		first_error(err, errlen, "flush: %s%s", natsStatus_GetText(s),
		    "");
	plen = strlen(b->pub_inbox);
	end = bridge_now_ns() / 1000000 + MANY_WAIT_MS;
	while (waiting > 0) {
		int64_t left = end - bridge_now_ns() / 1000000;
		unsigned long long round;
		const char *rs, *d;
		natsMsg *m = NULL;
		size_t i;

		if (left <= 0 || natsSubscription_NextMsg(&m, b->pub_sub,
		    left) != NATS_OK)
			break;
		rs = natsMsg_GetSubject(m);
		if (strncmp(rs, b->pub_inbox, plen) != 0 || sscanf(rs + plen,
		    ".%llu.%zu", &round, &i) != 2 ||
		    round != b->pub_round || i >= n || ok[i] != -1) {
			natsMsg_Destroy(m); /* a late ack of an old round */
			continue;
		}
		waiting--;
		d = natsMsg_GetData(m);
		if (natsMsg_IsNoResponders(m)) {
			ok[i] = 2; /* no stream takes it: a plain message */
			plain++;
		} else if (d != NULL && strstr(d, "\"error\"") != NULL) {
			ok[i] = 0;
			first_error(err, errlen, "JetStream publish on %s: %.200s",
			    subjects[i], d);
		} else {
			ok[i] = 1;
			good++;
		}
		natsMsg_Destroy(m);
	}
	for (size_t i = 0; i < n; i++) {
		if (ok[i] == -1) {
			ok[i] = 0;
			first_error(err, errlen, "JetStream publish on %s: %s",
			    subjects[i], "no ack in time");
		} else if (ok[i] == 2) {
			s = send_one(b, subjects[i], NULL, data[i], lens[i],
			    msg_ids[i]);
			ok[i] = s == NATS_OK ? 3 : 0;
			if (s != NATS_OK)
				first_error(err, errlen, "publish on %s: %s",
				    subjects[i], natsStatus_GetText(s));
		}
	}
	if (plain > 0 && (fs = natsConnection_FlushTimeout(b->nc,
	    PUB_WAIT_MS)) != NATS_OK)
		first_error(err, errlen, "flush: %s%s", natsStatus_GetText(fs),
		    "");
	for (size_t i = 0; i < n; i++) {
		if (ok[i] == 3) {
			/* The server has it once the flush came back. */
			ok[i] = fs == NATS_OK;
			good += (size_t)ok[i];
		}
	}
	return good;
}
