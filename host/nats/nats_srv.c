/*
 * nats_srv.c - NATS service discovery ($SRV.PING, $SRV.INFO, $SRV.STATS)
 * for the NATS module, on plain subscriptions.
 *
 * Debian's cnats predates the micro API, so the replies are built here in
 * the io.nats.micro.v1 JSON shapes (ADR-32): each daemon is one instance
 * of the service `service_name`, its commands are the endpoints.  Every
 * daemon answers (no queue group), so a client sees all of them.
 */
#include "nats_bridge.h"

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>


enum srv_kind { SRV_PING = 0, SRV_INFO, SRV_STATS };

static const char *const kind_verb[] = { "PING", "INFO", "STATS" };
static const char *const kind_type[] = {
	"io.nats.micro.v1.ping_response",
	"io.nats.micro.v1.info_response",
	"io.nats.micro.v1.stats_response",
};

/* The closure of each $SRV subscription: the bridge and the kind. */
struct srv_sub {
	struct bridge *b;
	enum srv_kind kind;
};
static struct srv_sub srv_closures[3];

/* Returns a new object (put it) describing ep for `kind`; b->lock held. */
static struct json_object *
endpoint_json(struct endpoint *ep, const struct nats_config *cfg,
    enum srv_kind kind)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(ep->name));
	json_object_object_add(o, "subject",
	    json_object_new_string(ep->subject));
	json_object_object_add(o, "queue_group",
	    json_object_new_string(cfg->queue_group));
	if (kind == SRV_INFO) {
		struct json_object *md = json_object_new_object();

		if (ep->summary != NULL)
			json_object_object_add(md, "summary",
			    json_object_new_string(ep->summary));
		json_object_object_add(o, "metadata", md);
	} else {
		uint64_t n = atomic_load(&ep->num_requests);
		uint64_t ns = atomic_load(&ep->processing_ns);

		json_object_object_add(o, "num_requests",
		    json_object_new_uint64(n));
		json_object_object_add(o, "num_errors",
		    json_object_new_uint64(atomic_load(&ep->num_errors)));
		json_object_object_add(o, "last_error",
		    json_object_new_string(ep->last_error));
		json_object_object_add(o, "processing_time",
		    json_object_new_uint64(ns));
		json_object_object_add(o, "average_processing_time",
		    json_object_new_uint64(n ? ns / n : 0));
	}
	return o;
}

/* Returns a new reply object of `kind` for b. */
static struct json_object *
srv_reply(struct bridge *b, enum srv_kind kind)
{
	struct json_object *o = json_object_new_object(), *eps;

	json_object_object_add(o, "type",
	    json_object_new_string(kind_type[kind]));
	json_object_object_add(o, "name",
	    json_object_new_string(b->cfg->service_name));
	json_object_object_add(o, "id", json_object_new_string(b->id));
	json_object_object_add(o, "version",
	    json_object_new_string(b->api->daemon_version));
	json_object_object_add(o, "metadata", json_object_new_object());
	if (kind == SRV_PING)
		return o;
	if (kind == SRV_INFO)
		json_object_object_add(o, "description", json_object_new_string(
		    "cmdhost daemon: one endpoint per command"));
	else
		json_object_object_add(o, "started",
		    json_object_new_string(b->started));
	eps = json_object_new_array();
	pthread_mutex_lock(&b->lock);
	for (struct endpoint *ep = b->endpoints; ep != NULL; ep = ep->next)
		if (ep->sub != NULL)
			json_object_array_add(eps, endpoint_json(ep, b->cfg,
			    kind));
	pthread_mutex_unlock(&b->lock);
	json_object_object_add(o, "endpoints", eps);
	return o;
}

static void
on_srv(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
    void *closure)
{
	struct srv_sub *ss = closure;
	const char *reply = natsMsg_GetReply(msg);
	struct json_object *o;
	const char *text;

	(void)sub;
	if (reply != NULL) {
		o = srv_reply(ss->b, ss->kind);
		text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
		    JSON_C_TO_STRING_NOSLASHESCAPE);
		natsConnection_PublishString(nc, reply, text);
		json_object_put(o);
	}
	natsMsg_Destroy(msg);
}

int
srv_start(struct bridge *b)
{
	char subject[256];
	int n = 0;

	for (int k = 0; k < 3; k++) {
		srv_closures[k].b = b;
		srv_closures[k].kind = (enum srv_kind)k;
		for (int form = 0; form < 3; form++) {
			natsStatus s;

			if (form == 0)
				snprintf(subject, sizeof(subject), "$SRV.%s",
				    kind_verb[k]);
			else if (form == 1)
				snprintf(subject, sizeof(subject), "$SRV.%s.%s",
				    kind_verb[k], b->cfg->service_name);
			else
				snprintf(subject, sizeof(subject),
				    "$SRV.%s.%s.%s", kind_verb[k],
				    b->cfg->service_name, b->id);
			s = natsConnection_Subscribe(&b->srv_subs[n], b->nc,
			    subject, on_srv, &srv_closures[k]);
			if (s != NATS_OK) {
				b->srv_subs[n] = NULL;
				bridge_log(b, NLOG_ERROR, "nats: cannot subscribe "
				    "%s: %s", subject, natsStatus_GetText(s));
				return -1;
			}
			n++;
		}
	}
	return 0;
}

void
srv_stop(struct bridge *b)
{
	for (int i = 0; i < 9; i++) {
		if (b->srv_subs[i] == NULL)
			continue;
		natsSubscription_Unsubscribe(b->srv_subs[i]);
		natsSubscription_Destroy(b->srv_subs[i]);
		b->srv_subs[i] = NULL;
	}
}
