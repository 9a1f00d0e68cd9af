/*
 * nats_bridge.c - the NATS module's core: connect, keep one queue-group
 * subscription per command in step with the registry, turn each request
 * into a host call and publish its one reply.
 *
 * This file and nats_srv.c / nats_js.c build cmdhost-nats.so, the only
 * code linked with libnats; the daemon loads it through nats_api.h.
 * cnats reconnects by itself; we only log its state changes.
 */
#include "nats_bridge.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


/* One request waiting for its reply. */
struct pending {
	struct bridge *b;
	struct endpoint *ep;
	int64_t start_ns;
	char reply[];               /* the reply subject */
};

int64_t
bridge_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void
bridge_log(const struct bridge *b, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	b->api->logv(level, fmt, ap);
	va_end(ap);
}

void
bridge_count(struct bridge *b, struct endpoint *ep, int status, int64_t ns,
    const char *reply, size_t len)
{
	atomic_fetch_add_explicit(&ep->num_requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ep->processing_ns, (uint64_t)ns,
	    memory_order_relaxed);
	if (status < 400)
		return;
	atomic_fetch_add_explicit(&ep->num_errors, 1, memory_order_relaxed);
	/* As the micro protocol has it: "<code>:<description>", here the
	 * status and the reply's error.message. */
	{
		struct json_object *r = json_tokener_parse(reply), *m = NULL;
		const char *msg = "";

		if (r != NULL && json_object_object_get_ex(r, "error", &m) &&
		    json_object_object_get_ex(m, "message", &m))
			msg = json_object_get_string(m);
		pthread_mutex_lock(&b->lock);
		snprintf(ep->last_error, sizeof(ep->last_error), "%d:%s",
		    status, msg);
		pthread_mutex_unlock(&b->lock);
		json_object_put(r);
	}
	(void)len;
}

/* The host's reply for one request: publish it (with the micro error
 * headers for statuses >= 400, as NATS service clients expect). */
static void
on_reply(void *arg, const char *reply, size_t len, int status)
{
	struct pending *p = arg;
	struct bridge *b = p->b;
	natsMsg *m = NULL;
	natsStatus s;

	bridge_count(b, p->ep, status, bridge_now_ns() - p->start_ns, reply,
	    len);
	if (p->reply[0] == '\0') {
		free(p);
		return; /* a plain publish: nobody waits */
	}
	s = natsMsg_Create(&m, p->reply, NULL, reply, (int)len);
	if (s == NATS_OK && status >= 400) {
		char code[16];

		snprintf(code, sizeof(code), "%d", status);
		natsMsgHeader_Set(m, "Nats-Service-Error-Code", code);
		natsMsgHeader_Set(m, "Nats-Service-Error", status == 404 ?
		    "unknown command" : "request failed");
	}
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(b->nc, m);
	if (s != NATS_OK)
		bridge_log(b, NLOG_DEBUG, "nats: reply to %s not sent: %s",
		    p->reply, natsStatus_GetText(s));
	natsMsg_Destroy(m);
	free(p);
}

/* A request on <prefix><command> (a libnats delivery thread). */
static void
on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
    void *closure)
{
	struct endpoint *ep = closure;
	struct bridge *b = ep->b;
	const char *reply = natsMsg_GetReply(msg), *id = NULL, *tmo = NULL;
	const char *key = NULL;
	size_t rlen = reply ? strlen(reply) : 0;
	struct pending *p;
	int64_t timeout_ms = 0;

	(void)nc;
	(void)sub;
	if ((p = malloc(sizeof(*p) + rlen + 1)) == NULL) {
		natsMsg_Destroy(msg);
		return; /* the client times out */
	}
	p->b = b;
	p->ep = ep;
	p->start_ns = bridge_now_ns();
	memcpy(p->reply, reply ? reply : "", rlen + 1);
	if (natsMsgHeader_Get(msg, HDR_ID, &id) != NATS_OK)
		id = NULL;
	if (natsMsgHeader_Get(msg, HDR_TIMEOUT, &tmo) == NATS_OK &&
	    tmo != NULL)
		timeout_ms = strtoll(tmo, NULL, 10);
	if (natsMsgHeader_Get(msg, HDR_IDEM, &key) != NATS_OK)
		key = NULL;
	if (key != NULL && NATS_HOST_HAS(b->api, call_keyed))
		b->api->call_keyed(b->api->host, ep->name,
		    natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
		    id, timeout_ms, key, on_reply, p);
	else
		b->api->call(b->api->host, ep->name, natsMsg_GetData(msg),
		    (size_t)natsMsg_GetDataLength(msg), id, timeout_ms,
		    on_reply, p);
	natsMsg_Destroy(msg);
}

/* ------------------------------------------------------------ sync */

/* The endpoint of command `name`, borrowed from b (b->lock held), or
 * NULL. */
static struct endpoint *
endpoint_find(struct bridge *b, const char *name)
{
	for (struct endpoint *ep = b->endpoints; ep != NULL; ep = ep->next)
		if (strcmp(ep->name, name) == 0)
			return ep;
	return NULL;
}

/* Returns a new endpoint linked into b (b->lock held), or NULL. */
static struct endpoint *
endpoint_add(struct bridge *b, const char *name)
{
	struct endpoint *ep = calloc(1, sizeof(*ep));
	size_t n = strlen(b->cfg->subject_prefix) + strlen(name) + 1;

	if (ep == NULL || (ep->name = strdup(name)) == NULL ||
	    (ep->subject = malloc(n)) == NULL) {
		if (ep != NULL)
			free(ep->name);
		free(ep);
		return NULL;
	}
	snprintf(ep->subject, n, "%s%s", b->cfg->subject_prefix, name);
	ep->b = b;
	ep->next = b->endpoints;
	b->endpoints = ep;
	return ep;
}

/* Bring the subscriptions in step with the commands now published: new
 * ones subscribed, removed ones unsubscribed (after the table swap, so a
 * request that still arrives gets 404 from us, never silence). */
static void
sync_subscriptions(struct bridge *b)
{
	struct json_object *cmds = b->api->commands(b->api->host);
	size_t n = json_object_array_length(cmds);
	struct endpoint *ep;

	pthread_mutex_lock(&b->lock);
	/* Subscriptions drained since an earlier sync are freed once done. */
	for (ep = b->endpoints; ep != NULL; ep = ep->next)
		if (ep->old_sub != NULL && natsSubscription_WaitForDrainCompletion(
		    ep->old_sub, 1) == NATS_OK) {
			natsSubscription_Destroy(ep->old_sub);
			ep->old_sub = NULL;
		}
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(cmds, i), *v;
		const char *name, *summary = NULL;
		natsStatus s;

		if (!json_object_object_get_ex(c, "name", &v))
			continue;
		name = json_object_get_string(v);
		if (json_object_object_get_ex(c, "summary", &v) && v != NULL)
			summary = json_object_get_string(v);
		if ((ep = endpoint_find(b, name)) == NULL &&
		    (ep = endpoint_add(b, name)) == NULL)
			continue;
		free(ep->summary);
		ep->summary = summary ? strdup(summary) : NULL;
		if (ep->sub != NULL)
			continue;
		s = natsConnection_QueueSubscribe(&ep->sub, b->nc, ep->subject,
		    b->cfg->queue_group, on_request, ep);
		if (s != NATS_OK) {
			ep->sub = NULL;
			bridge_log(b, NLOG_WARN, "nats: cannot subscribe %s: %s",
			    ep->subject, natsStatus_GetText(s));
			continue;
		}
		natsSubscription_SetPendingLimits(ep->sub, -1, -1);
		bridge_log(b, NLOG_INFO, "nats: subscribed %s (queue group %s)",
		    ep->subject, b->cfg->queue_group);
	}
	for (ep = b->endpoints; ep != NULL; ep = ep->next) {
		int present = 0;

		if (ep->sub == NULL)
			continue;
		for (size_t i = 0; i < n && !present; i++) {
			struct json_object *v;

			present = json_object_object_get_ex(
			    json_object_array_get_idx(cmds, i), "name", &v) &&
			    strcmp(json_object_get_string(v), ep->name) == 0;
		}
		if (present)
			continue;
		/* Drain, not unsubscribe: the requests it already holds are
		 * still handed over (and answered 404); freed once done. */
		if (ep->old_sub != NULL) {
			natsSubscription_Destroy(ep->old_sub);
			ep->old_sub = NULL;
		}
		if (natsSubscription_Drain(ep->sub) == NATS_OK) {
			ep->old_sub = ep->sub;
		} else {
			natsSubscription_Unsubscribe(ep->sub);
			natsSubscription_Destroy(ep->sub);
		}
		ep->sub = NULL;
		bridge_log(b, NLOG_INFO, "nats: unsubscribed %s (the command is "
		    "gone)", ep->subject);
	}
	pthread_mutex_unlock(&b->lock);
	json_object_put(cmds);
}

/* The registry published a new table (runs under its lock: only note). */
static void
on_change(void *arg)
{
	struct bridge *b = arg;

	pthread_mutex_lock(&b->lock);
	b->dirty = 1;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

static void *
sync_main(void *arg)
{
	struct bridge *b = arg;

	b->api->thread_init();
	pthread_mutex_lock(&b->lock);
	for (;;) {
		while (!b->dirty && !b->stopping)
			pthread_cond_wait(&b->cond, &b->lock);
		if (b->stopping)
			break;
		b->dirty = 0;
		pthread_mutex_unlock(&b->lock);
		sync_subscriptions(b);
		pthread_mutex_lock(&b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

/* ------------------------------------------------------------ connection */

static void
on_connected(natsConnection *nc, void *closure)
{
	char url[256];

	if (natsConnection_GetConnectedUrl(nc, url, sizeof(url)) != NATS_OK)
		snprintf(url, sizeof(url), "?");
	bridge_log(closure, NLOG_INFO, "nats: connected to %s", url);
}

static void
on_disconnected(natsConnection *nc, void *closure)
{
	struct bridge *b = closure;
	int stopping;

	(void)nc;
	pthread_mutex_lock(&b->lock);
	stopping = b->stopping;
	pthread_mutex_unlock(&b->lock);
	if (stopping)
		return;
	bridge_log(b, NLOG_WARN, "nats: disconnected; reconnecting in "
	    "the background (the socket keeps serving)");
}

static void
on_reconnected(natsConnection *nc, void *closure)
{
	char url[256];

	if (natsConnection_GetConnectedUrl(nc, url, sizeof(url)) != NATS_OK)
		snprintf(url, sizeof(url), "?");
	bridge_log(closure, NLOG_INFO, "nats: reconnected to %s", url);
}

/* The last callback libnats makes for a connection: bridge_stop waits
 * for it before freeing the bridge. */
static void
on_closed(natsConnection *nc, void *closure)
{
	struct bridge *b = closure;

	(void)nc;
	bridge_log(b, NLOG_INFO, "nats: connection closed");
	pthread_mutex_lock(&b->lock);
	b->closed = 1;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

/* Close the connection and wait (bounded) for its closed callback. */
static void
close_connection(struct bridge *b)
{
	struct timespec ts;

	natsConnection_Close(b->nc);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&b->lock);
	while (!b->closed)
		if (pthread_cond_timedwait(&b->cond, &b->lock, &ts) != 0)
			break;
	pthread_mutex_unlock(&b->lock);
}

static void
on_error(natsConnection *nc, natsSubscription *sub, natsStatus err,
    void *closure)
{
	(void)nc;
	(void)sub;
	bridge_log(closure, NLOG_WARN, "nats: %s", natsStatus_GetText(err));
}

/* A 22-character instance id from /dev/urandom (like a NUID). */
static void
make_id(char *out, size_t size)
{
	static const char abc[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz";
	unsigned char r[22];
	size_t n = size - 1 < sizeof(r) ? size - 1 : sizeof(r);
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, r, n) != (ssize_t)n) {
		for (size_t i = 0; i < n; i++)
			r[i] = (unsigned char)(bridge_now_ns() >> (i % 8) * 3) ^
			    (unsigned char)getpid();
	}
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < n; i++)
		out[i] = abc[r[i] % 62];
	out[n] = '\0';
}

static natsStatus
make_options(struct bridge *b)
{
	const struct nats_config *c = b->cfg;
	natsOptions *o;
	natsStatus s;
	char name[96];

	if ((s = natsOptions_Create(&b->opts)) != NATS_OK)
		return s;
	o = b->opts;
	snprintf(name, sizeof(name), "cmdhostd %s", b->id);
	s = natsOptions_SetURL(o, c->url);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, name);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, c->max_reconnect);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, c->reconnect_wait_ms);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected,
		    b);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(o, on_closed, b);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(o, on_error, b);
	/* A fixed pool of delivery threads: each of them needs a registry
	 * reader slot, so their number must not grow with the commands. */
	if (s == NATS_OK)
		s = natsOptions_UseGlobalMessageDelivery(o, true);
	/* A reply goes out at once, not after libnats' 1 ms flush batch:
	 * someone is waiting for it (send_asap = false trades that for
	 * fewer writes under heavy load). */
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(o, c->send_asap != 0);
	if (s == NATS_OK && c->credentials != NULL)
		s = natsOptions_SetUserCredentialsFromFiles(o, c->credentials,
		    NULL);
	if (s == NATS_OK && c->user != NULL)
		s = natsOptions_SetUserInfo(o, c->user, c->password);
	if (s == NATS_OK && c->token != NULL)
		s = natsOptions_SetToken(o, c->token);
	if (s == NATS_OK && c->tls_ca != NULL) {
		s = natsOptions_SetSecure(o, true);
		if (s == NATS_OK)
			s = natsOptions_LoadCATrustedCertificates(o, c->tls_ca);
	}
	return s;
}

static void bridge_stop(void *bp, int64_t deadline_ns);

static void *
bridge_start(const struct nats_host_api *api, char *err, size_t errlen)
{
	struct bridge *b;
	natsStatus s;
	time_t now = time(NULL);
	struct tm tm;

	/* Members appended after the minimum are looked for with
	 * NATS_HOST_HAS / NATS_CONFIG_HAS before use. */
	if (api->size < NATS_HOST_API_MIN || api->version != NATS_API_VERSION) {
		snprintf(err, errlen, "NATS module: host API version mismatch");
		return NULL;
	}
	/* A layout we were not built for is refused, never read. */
	if (api->cfg == NULL || api->cfg->size < NATS_CONFIG_MIN ||
	    api->cfg->version != NATS_CONFIG_VERSION) {
		snprintf(err, errlen, "NATS module: [nats] configuration "
		    "layout mismatch (version %d, %zu bytes; this module "
		    "reads version %d, at least %zu bytes)", api->cfg ?
		    api->cfg->version : 0, api->cfg ? api->cfg->size : 0,
		    NATS_CONFIG_VERSION, (size_t)NATS_CONFIG_MIN);
		return NULL;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	b->api = api;
	b->cfg = api->cfg;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	make_id(b->id, sizeof(b->id));
	gmtime_r(&now, &tm);
	strftime(b->started, sizeof(b->started), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if ((s = nats_Open(-1)) != NATS_OK ||
	    (s = nats_SetMessageDeliveryPoolSize(b->cfg->delivery_threads)) !=
	    NATS_OK || (s = make_options(b)) != NATS_OK) {
		snprintf(err, errlen, "nats: %s: %s", natsStatus_GetText(s),
		    nats_GetLastError(NULL));
		goto fail;
	}
	s = natsConnection_Connect(&b->nc, b->opts);
	if (s == NATS_NOT_YET_CONNECTED) {
		bridge_log(b, NLOG_WARN, "nats: no server reachable at %s yet; "
		    "retrying in the background (the socket serves meanwhile)",
		    b->cfg->url);
	} else if (s != NATS_OK) {
		snprintf(err, errlen, "nats: cannot connect to %s: %s",
		    b->cfg->url, natsStatus_GetText(s));
		goto fail;
	} else {
		on_connected(b->nc, b);
	}
	if (srv_start(b) < 0) {
		snprintf(err, errlen, "nats: cannot subscribe the $SRV subjects");
		goto fail;
	}
	b->dirty = 1;
	if (pthread_create(&b->sync_thread, NULL, sync_main, b) != 0) {
		snprintf(err, errlen, "cannot start the NATS sync thread");
		goto fail;
	}
	b->sync_started = 1;
	api->on_change(api->host, on_change, b);
	if (b->cfg->js_enabled && (b->js = js_start(b)) == NULL) {
		snprintf(err, errlen, "nats: cannot start the JetStream "
		    "consumer");
		goto fail;
	}
	if (b->cfg->js_enabled && NATS_CONFIG_HAS(b->cfg, js_idem_ttl_s) &&
	    b->cfg->js_idem_bucket != NULL && *b->cfg->js_idem_bucket != '\0' &&
	    (b->kv = kv_start(b, b->cfg->js_idem_bucket,
	    b->cfg->js_idem_ttl_s, "idempotency")) == NULL) {
		snprintf(err, errlen, "nats: cannot start the idempotency "
		    "bucket");
		goto fail;
	}
	if (b->cfg->js_enabled && NATS_CONFIG_HAS(b->cfg, js_wf_lease_ms) &&
	    b->cfg->js_wf_bucket != NULL && *b->cfg->js_wf_bucket != '\0' &&
	    (b->wkv = kv_start(b, b->cfg->js_wf_bucket, 0, "workflow")) ==
	    NULL) {
		snprintf(err, errlen, "nats: cannot start the workflow bucket");
		goto fail;
	}
	bridge_log(b, NLOG_INFO, "nats: service %s instance %s, subjects "
	    "%s<command>, queue group %s", b->cfg->service_name, b->id,
	    b->cfg->subject_prefix, b->cfg->queue_group);
	return b;
fail:
	bridge_stop(b, bridge_now_ns());
	return NULL;
}

/* Wait (until deadline_ns, at least 1 ms) for a draining sub, and
 * destroy it. */
static void
sub_finish(natsSubscription *sub, int64_t deadline_ns)
{
	int64_t left = (deadline_ns - bridge_now_ns()) / 1000000;

	if (sub == NULL)
		return;
	natsSubscription_WaitForDrainCompletion(sub, left > 1 ? left : 1);
	natsSubscription_Destroy(sub);
}

static void
bridge_stop(void *bp, int64_t deadline_ns)
{
	struct bridge *b = bp;
	struct endpoint *ep, *next;
	int left;

	if (b == NULL)
		return;
	/* Events first: stop fetching, finish and ack what we hold. */
	js_stop(b->js, deadline_ns);
	b->js = NULL;
	b->api->on_change(b->api->host, NULL, NULL);
	pthread_mutex_lock(&b->lock);
	b->stopping = 1;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	if (b->sync_started)
		pthread_join(b->sync_thread, NULL);
	/* No new requests; those already delivered are handed over.  All
	 * subscriptions start draining at once, then share one deadline
	 * (not under the lock: callbacks being drained take it). */
	for (ep = b->endpoints; ep != NULL; ep = ep->next) {
		pthread_mutex_lock(&b->lock);
		if (ep->sub != NULL && natsSubscription_Drain(ep->sub) !=
		    NATS_OK)
			natsSubscription_Unsubscribe(ep->sub);
		pthread_mutex_unlock(&b->lock);
	}
	for (ep = b->endpoints; ep != NULL; ep = ep->next) {
		natsSubscription *sub, *old;

		pthread_mutex_lock(&b->lock);
		sub = ep->sub;
		old = ep->old_sub;
		ep->sub = ep->old_sub = NULL;
		pthread_mutex_unlock(&b->lock);
		sub_finish(sub, deadline_ns);
		sub_finish(old, deadline_ns);
	}
	srv_stop(b);
	/* Replies of calls still running go out before we close, and our
	 * own requests (workflow steps) get theirs. */
	while ((left = b->api->in_flight(b->api->host) +
	    atomic_load(&b->requests)) > 0 && bridge_now_ns() < deadline_ns)
		usleep(2000);
	if (left > 0) {
		/* Their replies will find the connection closed; the bridge
		 * stays allocated for them. */
		bridge_log(b, NLOG_WARN, "nats: %d call(s) still running at "
		    "shutdown; their replies are dropped", left);
		if (b->nc != NULL)
			natsConnection_Close(b->nc);
		return;
	}
	/* No call is left to use the bucket (in_flight counts the keyed
	 * calls until their record is settled). */
	kv_stop(b->kv);
	b->kv = NULL;
	kv_stop(b->wkv);
	b->wkv = NULL;
	jsCtx_Destroy(b->pub_js);
	b->pub_js = NULL;
	if (b->pub_sub != NULL) {
		natsSubscription_Unsubscribe(b->pub_sub);
		natsSubscription_Destroy(b->pub_sub);
		b->pub_sub = NULL;
	}
	if (b->nc != NULL) {
		natsConnection_FlushTimeout(b->nc, 1000);
		close_connection(b);
		natsConnection_Destroy(b->nc);
	}
	natsOptions_Destroy(b->opts);
	for (ep = b->endpoints; ep != NULL; ep = next) {
		next = ep->next;
		free(ep->name);
		free(ep->subject);
		free(ep->summary);
		free(ep);
	}
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b);
	/* Let libnats end its own threads and free its globals. */
	nats_CloseAndWait(2000);
}

__attribute__((visibility("default")))
const struct nats_module cmdhost_nats_module = {
	sizeof(struct nats_module),
	NATS_API_VERSION,
	bridge_start,
	bridge_stop,
	kv_begin,
	kv_update,
	kv_delete,
	event_publish,
	nats_request,
	event_publish_many,
	kvb_begin,
	kvb_update,
	kvb_delete,
	kvb_get,
	kvb_keys,
};
