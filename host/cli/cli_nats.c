/*
 * cli_nats.c - cmdhost --nats URL: invoke a command, list every daemon
 * (through $SRV discovery) and publish events to the JetStream stream,
 * speaking NATS with cnats instead of the Unix socket.  Each function
 * prints its own "cmdhost: ..." message on failure.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#define CMD_PREFIX_ENV "CMDHOST_NATS_PREFIX"
#define EVENT_PREFIX_ENV "CMDHOST_NATS_EVENTS"
#define SERVICE_ENV "CMDHOST_NATS_SERVICE"
#define DEFAULT_CMD_PREFIX "cmdhost.cmd."
#define DEFAULT_EVENT_PREFIX "cmdhost.events."
#define LIST_WAIT_MS 1000

static const char *
env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : def;
}

/* Connect to o->nats_url.  Returns the connection or NULL (printed). */
static natsConnection *
nats_open(const struct cli_opts *o)
{
	natsConnection *nc = NULL;
	natsOptions *opts = NULL;
	natsStatus s;

	s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = natsOptions_SetURL(opts, o->nats_url);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, opts);
	natsOptions_Destroy(opts);
	if (s != NATS_OK) {
		fprintf(stderr, "cmdhost: cannot connect to NATS at %s: %s\n",
		    o->nats_url, natsStatus_GetText(s));
		return NULL;
	}
	return nc;
}

static void
nats_close(natsConnection *nc)
{
	natsConnection_Destroy(nc);
	nats_Close();
}

/* The -i id as JSON text into buf: an integer as it is, else a string. */
static const char *
id_json(const struct cli_opts *o, char *buf, size_t size)
{
	struct json_object *s;
	char *end;

	if (o->id == NULL)
		return "1";
	strtoll(o->id, &end, 10);
	if (*o->id != '\0' && *end == '\0' && strlen(o->id) < size) {
		snprintf(buf, size, "%s", o->id);
		return buf;
	}
	s = json_object_new_string(o->id);
	snprintf(buf, size, "%s", json_object_to_json_string_ext(s,
	    CLI_PLAIN_FLAGS));
	json_object_put(s);
	return buf;
}

int
cli_nats_invoke(const struct cli_opts *o, const char *command,
    const char *payload, size_t len)
{
	natsConnection *nc;
	natsMsg *req = NULL, *rep = NULL;
	struct json_object *reply = NULL, *body;
	char subject[512], idbuf[256], tmo[24];
	int64_t wait = o->timeout_ms > 0 ? o->timeout_ms + 1000 : 35000;
	natsStatus s;
	int rc = CLI_EXIT_CONN;

	if ((nc = nats_open(o)) == NULL)
		return CLI_EXIT_CONN;
	snprintf(subject, sizeof(subject), "%s%s",
	    env_or(CMD_PREFIX_ENV, DEFAULT_CMD_PREFIX), command);
	s = natsMsg_Create(&req, subject, NULL, payload, (int)len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(req, "Cmdhost-Id",
		    id_json(o, idbuf, sizeof(idbuf)));
	if (s == NATS_OK && o->timeout_ms > 0) {
		snprintf(tmo, sizeof(tmo), "%lld", o->timeout_ms);
		s = natsMsgHeader_Set(req, "Cmdhost-Timeout-Ms", tmo);
	}
	if (s == NATS_OK)
		s = natsConnection_RequestMsg(&rep, nc, req, wait);
	if (s == NATS_NO_RESPONDERS) {
		/* No daemon subscribes the command: as the socket says it. */
		fprintf(stderr, "cmdhost: 404 unknown_command: no daemon on "
		    "NATS serves '%s' (no responders on %s)\n", command,
		    subject);
		rc = CLI_EXIT_REPLY_ERROR;
	} else if (s != NATS_OK) {
		fprintf(stderr, "cmdhost: NATS request on %s: %s\n", subject,
		    natsStatus_GetText(s));
	} else if ((reply = json_tokener_parse(natsMsg_GetData(rep))) ==
	    NULL) {
		fprintf(stderr, "cmdhost: the reply is not JSON\n");
	} else if ((rc = cli_conn_reply_check(reply, &body)) == 0) {
		rc = cli_print_json(body);
	}
	json_object_put(reply);
	natsMsg_Destroy(req);
	natsMsg_Destroy(rep);
	nats_close(nc);
	return rc;
}

/* Collect every $SRV.INFO.cmdhost reply for LIST_WAIT_MS into a new array
 * (put it), or NULL (printed). */
static struct json_object *
discover(natsConnection *nc)
{
	natsSubscription *sub = NULL;
	struct json_object *all = json_object_new_array();
	char inbox[128];
	natsInbox *ib = NULL;
	natsStatus s;

	s = natsInbox_Create(&ib);
	if (s == NATS_OK) {
		snprintf(inbox, sizeof(inbox), "%s", (const char *)ib);
		s = natsConnection_SubscribeSync(&sub, nc, inbox);
	}
	if (s == NATS_OK) {
		char subject[256];

		/* The daemons' [nats] service_name (default cmdhost). */
		snprintf(subject, sizeof(subject), "$SRV.INFO.%s",
		    env_or(SERVICE_ENV, "cmdhost"));
		s = natsConnection_PublishRequestString(nc, subject, inbox, "");
	}
	natsInbox_Destroy(ib);
	if (s != NATS_OK) {
		fprintf(stderr, "cmdhost: discovery: %s\n",
		    natsStatus_GetText(s));
		natsSubscription_Destroy(sub);
		json_object_put(all);
		return NULL;
	}
	for (;;) {
		natsMsg *m = NULL;
		struct json_object *j;

		if (natsSubscription_NextMsg(&m, sub, LIST_WAIT_MS) != NATS_OK)
			break;
		if ((j = json_tokener_parse(natsMsg_GetData(m))) != NULL)
			json_object_array_add(all, j);
		natsMsg_Destroy(m);
	}
	natsSubscription_Destroy(sub);
	return all;
}

int
cli_nats_list(const struct cli_opts *o, int raw)
{
	natsConnection *nc;
	struct json_object *all;
	size_t n;
	int rc = 0;

	if ((nc = nats_open(o)) == NULL)
		return CLI_EXIT_CONN;
	if ((all = discover(nc)) == NULL) {
		nats_close(nc);
		return CLI_EXIT_CONN;
	}
	n = json_object_array_length(all);
	if (raw) {
		rc = cli_print_json(all);
	} else {
		printf("%zu daemon%s on %s\n", n, n == 1 ? "" : "s",
		    o->nats_url);
		for (size_t i = 0; i < n; i++) {
			struct json_object *d = json_object_array_get_idx(all,
			    i), *v, *eps = NULL;
			size_t m;

			printf("%s", json_object_object_get_ex(d, "id", &v) ?
			    json_object_get_string(v) : "?");
			printf("  cmdhostd %s\n",
			    json_object_object_get_ex(d, "version", &v) ?
			    json_object_get_string(v) : "?");
			json_object_object_get_ex(d, "endpoints", &eps);
			m = eps ? json_object_array_length(eps) : 0;
			for (size_t j = 0; j < m; j++) {
				struct json_object *e =
				    json_object_array_get_idx(eps, j), *name,
				    *subj;

				if (json_object_object_get_ex(e, "name", &name) &&
				    json_object_object_get_ex(e, "subject",
				    &subj))
					printf("  %-32s %s\n",
					    json_object_get_string(name),
					    json_object_get_string(subj));
			}
		}
	}
	json_object_put(all);
	nats_close(nc);
	return rc;
}

int
cli_nats_publish(const struct cli_opts *o, const char *command,
    struct json_object *payload)
{
	natsConnection *nc;
	jsCtx *js = NULL;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	struct json_object *ev = json_object_new_object(), *out;
	char subject[512], idbuf[256];
	const char *text;
	natsStatus s;
	int rc = CLI_EXIT_CONN;

	if ((nc = nats_open(o)) == NULL) {
		json_object_put(ev);
		return CLI_EXIT_CONN;
	}
	json_object_object_add(ev, "command", json_object_new_string(command));
	json_object_object_add(ev, "payload", json_object_get(payload));
	if (o->id != NULL)
		json_object_object_add(ev, "id", json_tokener_parse(
		    id_json(o, idbuf, sizeof(idbuf))));
	text = json_object_to_json_string_ext(ev, CLI_PLAIN_FLAGS);
	snprintf(subject, sizeof(subject), "%s%s",
	    env_or(EVENT_PREFIX_ENV, DEFAULT_EVENT_PREFIX), command);
	s = natsConnection_JetStream(&js, nc, NULL);
	if (s == NATS_OK)
		s = js_Publish(&pa, js, subject, text, (int)strlen(text), NULL,
		    &jerr);
	if (s != NATS_OK) {
		fprintf(stderr, "cmdhost: publish on %s: %s%s\n", subject,
		    natsStatus_GetText(s), s == NATS_NO_RESPONDERS ?
		    " (no stream takes this subject: is a daemon with "
		    "[jetstream] running?)" : "");
	} else {
		out = json_object_new_object();
		json_object_object_add(out, "stream",
		    json_object_new_string(pa->Stream));
		json_object_object_add(out, "seq",
		    json_object_new_uint64(pa->Sequence));
		rc = cli_print_json(out);
		json_object_put(out);
	}
	jsPubAck_Destroy(pa);
	jsCtx_Destroy(js);
	json_object_put(ev);
	nats_close(nc);
	return rc;
}
