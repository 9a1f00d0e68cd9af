/*
 * nats_req.c - requests from this daemon to a command another daemon
 * serves: the module table's `request` (nats_api.h), used by workflow
 * steps whose command is not served here.
 *
 * Each request runs on a thread of its own, so the caller never waits:
 * one NATS request on <subject_prefix><command> with the same headers
 * cmdhost --nats sends (Cmdhost-Id, Cmdhost-Timeout-Ms, Idempotency-Key),
 * and its reply -- the other daemon's reply object -- handed to the
 * caller's function.  It does not retry: that is the workflow's Retry.
 */
#include "nats_bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How much longer than the remote deadline we wait for its 504. */
#define REQ_SLACK_MS 1000

struct req_job {
	struct bridge *b;
	natsMsg *msg;                /* owned */
	char subject[512];
	int64_t wait_ms;
	nats_reply_fn fn;
	void *arg;
};

/* Answer job with an error reply of our own. */
static void
answer_error(struct req_job *j, int status, const char *code,
    const char *msg)
{
	struct json_object *o = json_object_new_object(), *e =
	    json_object_new_object();
	const char *text;

	json_object_object_add(o, "status", json_object_new_int(status));
	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_object_add(o, "error", e);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	j->fn(j->arg, text, strlen(text), status);
	json_object_put(o);
}

static void *
req_main(void *arg)
{
	struct req_job *j = arg;
	struct bridge *b = j->b;
	natsMsg *rep = NULL;
	natsStatus s;
	char why[768];

	if (b->api->thread_init != NULL)
		b->api->thread_init();
	s = natsConnection_RequestMsg(&rep, b->nc, j->msg, j->wait_ms);
	if (s == NATS_NO_RESPONDERS) {
		snprintf(why, sizeof(why), "no daemon serves %s over NATS (no "
		    "responders)", j->subject);
		answer_error(j, 404, "unknown_command", why);
	} else if (s == NATS_TIMEOUT) {
		snprintf(why, sizeof(why), "no reply on %s within %lld ms",
		    j->subject, (long long)j->wait_ms);
		answer_error(j, 504, "timeout", why);
	} else if (s != NATS_OK) {
		snprintf(why, sizeof(why), "NATS request on %s: %s", j->subject,
		    natsStatus_GetText(s));
		answer_error(j, 503, "unavailable", why);
	} else {
		const char *data = natsMsg_GetData(rep);
		struct json_object *r = data ? json_tokener_parse(data) : NULL,
		    *v;

		if (r != NULL && json_object_object_get_ex(r, "status", &v))
			j->fn(j->arg, data, (size_t)natsMsg_GetDataLength(rep),
			    json_object_get_int(v));
		else
			answer_error(j, 502, "bad_gateway", "the reply over "
			    "NATS is not a cmdhost reply object");
		json_object_put(r);
	}
	natsMsg_Destroy(rep);
	natsMsg_Destroy(j->msg);
	free(j);
	atomic_fetch_sub(&b->requests, 1);
	return NULL;
}

int
nats_request(void *bp, const char *command, const char *payload, size_t len,
    const char *id_text, const char *idem_key, int64_t timeout_ms,
    nats_reply_fn fn, void *arg, char *err, size_t errlen)
{
	struct bridge *b = bp;
	struct req_job *j;
	pthread_attr_t attr;
	pthread_t t;
	char tmo[24];
	natsStatus s;
	int rc;

	if (b->nc == NULL || b->stopping) {
		snprintf(err, errlen, "NATS is %s", b->stopping ? "stopping" :
		    "not connected");
		return -1;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	j->b = b;
	j->fn = fn;
	j->arg = arg;
	if (timeout_ms <= 0)
		timeout_ms = b->api->default_timeout_ms;
	j->wait_ms = timeout_ms + REQ_SLACK_MS;
	snprintf(j->subject, sizeof(j->subject), "%s%s",
	    b->cfg->subject_prefix, command);
	s = natsMsg_Create(&j->msg, j->subject, NULL, payload, (int)len);
	if (s == NATS_OK && id_text != NULL)
		s = natsMsgHeader_Set(j->msg, HDR_ID, id_text);
	snprintf(tmo, sizeof(tmo), "%lld", (long long)timeout_ms);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(j->msg, HDR_TIMEOUT, tmo);
	if (s == NATS_OK && idem_key != NULL)
		s = natsMsgHeader_Set(j->msg, HDR_IDEM, idem_key);
	if (s != NATS_OK) {
		snprintf(err, errlen, "NATS message: %s", natsStatus_GetText(s));
		natsMsg_Destroy(j->msg);
		free(j);
		return -1;
	}
	atomic_fetch_add(&b->requests, 1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, req_main, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		atomic_fetch_sub(&b->requests, 1);
		snprintf(err, errlen, "cannot start a NATS request thread");
		natsMsg_Destroy(j->msg);
		free(j);
		return -1;
	}
	return 0;
}
