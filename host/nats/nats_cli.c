/*
 * nats_cli.c - the client side of the NATS module: what cmdhost --nats
 * URL invoke | list | publish sends and receives, exported as the table
 * cmdhost_nats_cli (struct nats_cli in core/nats_api.h).
 *
 * Why here: cmdhost used to link libnats for these three verbs, so every
 * use of the client (the socket verbs, check, exec) mapped libnats, and
 * the NATS code lived in two program files.  The module is already the
 * one file linked with libnats, versioned and found by core/module.c, so
 * the client now dlopens it as the daemon does, only when --nats is
 * given; a separate cmdhost-nats program would have been a second
 * libnats-linked artifact to build, install and keep in step.  The split
 * is by concern: this file speaks NATS (connect, headers, discovery,
 * JetStream) and returns JSON objects and reasons; host/cli/cli_nats.c
 * keeps the arguments, the environment, the output and the exit statuses.
 */
#include "nats_bridge.h"

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

/* Connect to url.  Returns the connection or NULL (err). */
static natsConnection *
cli_open(const char *url, char *err, size_t errlen)
{
	natsConnection *nc = NULL;
	natsOptions *opts = NULL;
	natsStatus s;

	s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = natsOptions_SetURL(opts, url);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, opts);
	natsOptions_Destroy(opts);
	if (s != NATS_OK) {
		snprintf(err, errlen, "cannot connect to NATS at %s: %s", url,
		    natsStatus_GetText(s));
		return NULL;
	}
	return nc;
}

/* Close nc and let cnats free its globals (one call per process run). */
static void
cli_close(natsConnection *nc)
{
	natsConnection_Destroy(nc);
	nats_Close();
}

static int
cli_request_keyed(const char *url, const char *subject, const char *data,
    size_t len, const char *id_text, int64_t timeout_ms, int64_t wait_ms,
    const char *idem_key, struct json_object **reply, char *err,
    size_t errlen)
{
	natsConnection *nc;
	natsMsg *req = NULL, *rep = NULL;
	char tmo[24];
	natsStatus s;
	int rc = NATS_CLI_FAILED;

	*reply = NULL;
	if ((nc = cli_open(url, err, errlen)) == NULL)
		return NATS_CLI_FAILED;
	s = natsMsg_Create(&req, subject, NULL, data, (int)len);
	if (s == NATS_OK && id_text != NULL)
		s = natsMsgHeader_Set(req, HDR_ID, id_text);
	if (s == NATS_OK && timeout_ms > 0) {
		snprintf(tmo, sizeof(tmo), "%lld", (long long)timeout_ms);
		s = natsMsgHeader_Set(req, HDR_TIMEOUT, tmo);
	}
	if (s == NATS_OK && idem_key != NULL)
		s = natsMsgHeader_Set(req, HDR_IDEM, idem_key);
	if (s == NATS_OK)
		s = natsConnection_RequestMsg(&rep, nc, req, wait_ms);
	if (s == NATS_NO_RESPONDERS) {
		snprintf(err, errlen, "no responders on %s", subject);
		rc = NATS_CLI_NO_RESPONDERS;
	} else if (s != NATS_OK) {
		snprintf(err, errlen, "NATS request on %s: %s", subject,
		    natsStatus_GetText(s));
	} else if ((*reply = json_tokener_parse(natsMsg_GetData(rep))) ==
	    NULL) {
		snprintf(err, errlen, "the reply is not JSON");
	} else {
		rc = NATS_CLI_OK;
	}
	natsMsg_Destroy(req);
	natsMsg_Destroy(rep);
	cli_close(nc);
	return rc;
}

static int
cli_request(const char *url, const char *subject, const char *data,
    size_t len, const char *id_text, int64_t timeout_ms, int64_t wait_ms,
    struct json_object **reply, char *err, size_t errlen)
{
	return cli_request_keyed(url, subject, data, len, id_text, timeout_ms,
	    wait_ms, NULL, reply, err, errlen);
}

static int
cli_discover(const char *url, const char *subject, int64_t wait_ms,
    struct json_object **all, char *err, size_t errlen)
{
	natsConnection *nc;
	natsSubscription *sub = NULL;
	natsInbox *ib = NULL;
	char inbox[128];
	natsStatus s;

	*all = NULL;
	if ((nc = cli_open(url, err, errlen)) == NULL)
		return NATS_CLI_FAILED;
	s = natsInbox_Create(&ib);
	if (s == NATS_OK) {
		snprintf(inbox, sizeof(inbox), "%s", (const char *)ib);
		s = natsConnection_SubscribeSync(&sub, nc, inbox);
	}
	if (s == NATS_OK)
		s = natsConnection_PublishRequestString(nc, subject, inbox, "");
	natsInbox_Destroy(ib);
	if (s != NATS_OK) {
		snprintf(err, errlen, "discovery: %s", natsStatus_GetText(s));
		natsSubscription_Destroy(sub);
		cli_close(nc);
		return NATS_CLI_FAILED;
	}
	*all = json_object_new_array();
	for (;;) {
		natsMsg *m = NULL;
		struct json_object *j;

		if (natsSubscription_NextMsg(&m, sub, wait_ms) != NATS_OK)
			break;
		if ((j = json_tokener_parse(natsMsg_GetData(m))) != NULL)
			json_object_array_add(*all, j);
		natsMsg_Destroy(m);
	}
	natsSubscription_Destroy(sub);
	cli_close(nc);
	return NATS_CLI_OK;
}

static int
cli_publish_keyed(const char *url, const char *subject, const char *data,
    size_t len, const char *msg_id, struct json_object **ack, char *err,
    size_t errlen)
{
	natsConnection *nc;
	jsCtx *js = NULL;
	jsPubAck *pa = NULL;
	jsPubOptions po;
	jsErrCode jerr = 0;
	natsStatus s;
	int rc = NATS_CLI_FAILED;

	*ack = NULL;
	if ((nc = cli_open(url, err, errlen)) == NULL)
		return NATS_CLI_FAILED;
	jsPubOptions_Init(&po);
	/* Deduplicated by the stream within its duplicate window. */
	po.MsgId = msg_id;
	s = natsConnection_JetStream(&js, nc, NULL);
	if (s == NATS_OK)
		s = js_Publish(&pa, js, subject, data, (int)len, &po, &jerr);
	if (s != NATS_OK) {
		snprintf(err, errlen, "publish on %s: %s%s", subject,
		    natsStatus_GetText(s), s == NATS_NO_RESPONDERS ?
		    " (no stream takes this subject: is a daemon with "
		    "[jetstream] running?)" : "");
	} else {
		*ack = json_object_new_object();
		json_object_object_add(*ack, "stream",
		    json_object_new_string(pa->Stream));
		json_object_object_add(*ack, "seq",
		    json_object_new_uint64(pa->Sequence));
		if (pa->Duplicate)
			json_object_object_add(*ack, "duplicate",
			    json_object_new_boolean(1));
		rc = NATS_CLI_OK;
	}
	jsPubAck_Destroy(pa);
	jsCtx_Destroy(js);
	cli_close(nc);
	return rc;
}

static int
cli_publish(const char *url, const char *subject, const char *data,
    size_t len, struct json_object **ack, char *err, size_t errlen)
{
	return cli_publish_keyed(url, subject, data, len, NULL, ack, err,
	    errlen);
}

__attribute__((visibility("default")))
const struct nats_cli cmdhost_nats_cli = {
	sizeof(struct nats_cli),
	NATS_API_VERSION,
	cli_request,
	cli_discover,
	cli_publish,
	cli_request_keyed,
	cli_publish_keyed,
};
