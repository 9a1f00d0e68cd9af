/*
 * nats_pub.c - publish the daemon's events for the NATS module.
 *
 * One event, one publish, and an answer only once the server has it: a
 * JetStream publish waits for the stream's ack (Nats-Msg-Id = the event
 * id, so the stream keeps one copy within its duplicate window); a
 * subject no stream takes is published plainly and the connection
 * flushed.  While the connection is down nothing is buffered: the
 * caller keeps the event and tries again.  Called from the daemon's one
 * delivery thread only.
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
