/*
 * nats_host.c - run commands for the NATS module, and load it.
 *
 * A NATS request becomes a request line and then a call of dispatch,
 * exactly as on the socket, so both paths check and answer alike; its
 * reply leaves from whichever thread answers it (a pool thread, or
 * dispatch's deadline timer).  This file never includes a NATS header.
 */
#include "nats_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/module.h"
#include "core/nats_api.h"
#include "core/request.h"
#include "core/thread.h"
#include "dispatch.h"
#include "idem_kv.h"
#include "registry.h"
#include "reply.h"
#include "views.h"

static const char OOM_REPLY[] = "{\"id\":null,\"status\":503,\"error\":"
    "{\"code\":\"unavailable\",\"message\":\"out of memory\"}}";

/* One call from the module: where its reply goes. */
struct ncall {
	struct nats_host *h;
	nats_reply_fn fn;
	void *arg;
};

struct nats_host {
	struct nats_host_api api;
	struct dispatch_owner owner; /* no post: replies leave from the
	                              * thread that answers */
	const struct config *cfg;
	struct registry *reg;
	struct dispatch *disp;
	struct daemon_stats *stats;
	void *handle;               /* dlopen of the module */
	const struct nats_module *mod;
	void *bridge;
	struct idem_kv *kv;         /* the shared bucket's records, or NULL */
	pthread_mutex_t wlock;      /* wkv_ops, wkv_off */
	pthread_cond_t wcond;
	int wkv_ops;                /* workflow bucket operations running */
	int wkv_off;                /* the bridge stops: no more of them */
	atomic_int in_flight;
	atomic_uint_fast64_t seq;
};

/* Per thread: the registry reader slot and the parser (freed by the key's
 * destructor when a libnats thread exits). */
static __thread int tl_reader = -1;
static __thread struct json_tokener *tl_tok;
static pthread_key_t tok_key;
static pthread_once_t tok_once = PTHREAD_ONCE_INIT;

static void
tok_free(void *tok)
{
	json_tokener_free(tok);
}

static void
tok_key_make(void)
{
	pthread_key_create(&tok_key, tok_free);
}

static void
host_logv(int level, const char *fmt, va_list ap)
{
	log_emitv(level, NULL, fmt, ap);
}

/* The reply line in out as a C string: its '\n' becomes the NUL. */
static const char *
reply_text(struct buf *out)
{
	buf_head(out)[buf_size(out) - 1] = '\0';
	return buf_head(out);
}

/* Send the reply in out (rc < 0: it could not be made: send the
 * out-of-memory reply instead) with `status`; one call of the module
 * less in flight. */
static void
send_reply(struct nats_host *h, struct buf *out, int rc, int status,
    nats_reply_fn fn, void *arg)
{
	if (rc < 0)
		fn(arg, OOM_REPLY, sizeof(OOM_REPLY) - 1, 503);
	else
		fn(arg, reply_text(out), buf_size(out) - 1, status);
	atomic_fetch_sub(&h->in_flight, 1);
}

/* A call's completion, on whichever thread answered it: format, send. */
static void
on_call_done(struct call *call)
{
	struct ncall *nc = call->owner_arg;
	struct buf out = BUF_INIT;
	int rc = dispatch_reply(call, &out, 0);

	send_reply(nc->h, &out, rc, dispatch_status(call), nc->fn, nc->arg);
	buf_free(&out);
	free(nc);
}

/* Answer req (or a message that did not make one: req NULL) with an
 * error no plugin made. */
static void
answer_error(struct nats_host *h, const struct request *req, int status,
    const char *code, const char *message, nats_reply_fn fn, void *arg)
{
	struct buf out = BUF_INIT;
	char rid[REQUEST_ID_LEN + 1];
	int rc;

	request_id_make(rid, clock_wall_ms(), 0xff, atomic_fetch_add(&h->seq, 1));
	rc = reply_error(h->cfg, h->stats, &out, req, rid, status, code,
	    message, -1, -1);
	send_reply(h, &out, rc, status, fn, arg);
	buf_free(&out);
}

/* Set up the calling thread on first use: locale, reader slot, parser.
 * Returns 0 or -1. */
static int
thread_setup(struct nats_host *h)
{
	if (tl_tok != NULL)
		return 0;
	thread_use_c_locale();
	if (tl_reader < 0 && (tl_reader = registry_reader(h->reg)) < 0)
		return -1;
	if ((tl_tok = request_tokener_new()) == NULL)
		return -1;
	pthread_once(&tok_once, tok_key_make);
	pthread_setspecific(tok_key, tl_tok);
	return 0;
}

/* Build the request line the socket would have received. */
static int
make_line(struct buf *line, const char *command, const char *payload,
    size_t len, const char *id_text, int64_t timeout_ms,
    const char *idem_key)
{
	int rc = buf_puts(line, "{\"command\":");

	rc |= buf_put_json_string(line, command);
	if (idem_key != NULL) {
		rc |= buf_puts(line, ",\"idempotency_key\":");
		rc |= buf_put_json_string(line, idem_key);
	}
	if (id_text != NULL && *id_text != '\0') {
		rc |= buf_puts(line, ",\"id\":");
		rc |= buf_puts(line, id_text);
	}
	if (timeout_ms > 0)
		rc |= buf_printf(line, ",\"timeout_ms\":%lld",
		    (long long)timeout_ms);
	if (len > 0) {
		rc |= buf_puts(line, ",\"payload\":");
		rc |= buf_put(line, payload, len);
	}
	rc |= buf_puts(line, "}");
	return rc < 0 ? -1 : 0;
}

/* Does payload[0..len) parse alone as one JSON value? */
static int
payload_is_json(const char *payload, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(REQUEST_MAX_DEPTH);
	struct json_object *o;
	int ok;

	if (tok == NULL)
		return 1;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, payload, (int)len);
	ok = o != NULL && json_tokener_get_error(tok) == json_tokener_success;
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

static void
host_call_keyed(void *hp, const char *command, const char *payload,
    size_t len, const char *id_text, int64_t timeout_ms, const char *idem_key,
    nats_reply_fn fn, void *arg)
{
	struct nats_host *h = hp;
	struct buf line = BUF_INIT;
	struct dispatch_args a;
	struct request req;
	struct call *call;
	struct ncall *nc;
	const char *code;
	char err[512];
	int rc, status;

	atomic_fetch_add(&h->in_flight, 1);
	metrics_add(h->stats, DM_REQUESTS, 1);
	memset(&req, 0, sizeof(req));
	if (thread_setup(h) < 0) {
		answer_error(h, NULL, 503, "unavailable", "no reader slot left "
		    "for this thread", fn, arg);
		return;
	}
	if (make_line(&line, command, payload, len, id_text, timeout_ms,
	    idem_key) < 0) {
		buf_free(&line);
		answer_error(h, NULL, 503, "unavailable", "out of memory", fn,
		    arg);
		return;
	}
	rc = request_parse(tl_tok, buf_head(&line), buf_size(&line), &req,
	    err, sizeof(err));
	buf_free(&line);
	if (rc < 0) {
		/* The line is ours; say which part of the message was bad. */
		if (len > 0 && !payload_is_json(payload, len))
			snprintf(err, sizeof(err), "the payload (the message "
			    "data) is not valid JSON");
		else if (id_text != NULL && *id_text != '\0' &&
		    (strncmp(err, "\"id\"", 4) == 0 ||
		    strncmp(err, "invalid JSON", 12) == 0))
			snprintf(err, sizeof(err), "the Cmdhost-Id header must "
			    "be JSON: a string in quotes or an integer");
		answer_error(h, &req, 400, "bad_request", err, fn, arg);
		goto out;
	}
	if ((nc = malloc(sizeof(*nc))) == NULL) {
		answer_error(h, &req, 503, "unavailable", "out of memory", fn,
		    arg);
		goto out;
	}
	nc->h = h;
	nc->fn = fn;
	nc->arg = arg;
	memset(&a, 0, sizeof(a));
	a.reader = tl_reader;
	a.rid_ms = clock_wall_ms();
	a.rid_src = 0xff;
	a.rid_seq = atomic_fetch_add(&h->seq, 1);
	a.pid = a.uid = -1;
	/* NATS callers authenticate to the NATS server, not to cmdhost:
	 * they share one scope of keys, which with [jetstream]
	 * idempotency_bucket every daemon of the queue group shares. */
	a.scope = "nats";
	a.idem = h->kv != NULL ? idem_kv_backend(h->kv) : NULL;
	/* Never run on a libnats delivery thread: a slow command would
	 * stall every subscription that thread serves. */
	a.pool_only = 1;
	a.owner = &h->owner;
	a.done = on_call_done;
	a.owner_arg = nc;
	if (dispatch_call(h->disp, &a, &req, &call, &status, &code, err,
	    sizeof(err)) < 0) {
		free(nc);
		answer_error(h, &req, status, code, err, fn, arg);
	}
out:
	request_fini(&req);
}

static void
host_call(void *hp, const char *command, const char *payload, size_t len,
    const char *id_text, int64_t timeout_ms, nats_reply_fn fn, void *arg)
{
	host_call_keyed(hp, command, payload, len, id_text, timeout_ms, NULL,
	    fn, arg);
}

static struct json_object *
host_commands(void *hp)
{
	struct nats_host *h = hp;

	return view_commands(h->reg);
}

static void
host_on_change(void *hp, void (*fn)(void *arg), void *arg)
{
	struct nats_host *h = hp;

	registry_set_publish_hook(h->reg, fn, arg);
}

static int
host_in_flight(void *hp)
{
	struct nats_host *h = hp;

	/* Keyed calls count until their record in the bucket is settled,
	 * so that the module keeps the bucket until then. */
	return atomic_load(&h->in_flight) + idem_kv_pending(h->kv);
}

/* Find and open the module (core/module.c has the one search, shared
 * with cmdhost --nats).  Returns the dlopen handle or NULL (err). */
static void *
open_module(const struct config *cfg, char *err, size_t errlen)
{
	char tried[4 * PATH_MAX];
	void *handle;

	handle = module_open(cfg->nats.module, NATS_MODULE_FILE, tried,
	    sizeof(tried));
	if (handle == NULL)
		snprintf(err, errlen, "[nats] is configured but the NATS "
		    "module cannot be loaded (%s)", tried);
	return handle;
}

/* With [jetstream] idempotency_bucket: the store of keyed NATS calls'
 * records in the bucket.  Returns 0 (h->kv NULL when there is no bucket)
 * or -1 (err). */
static int
open_bucket(struct nats_host *h, char *err, size_t errlen)
{
	const struct nats_config *nc = &h->cfg->nats;

	if (!nc->js_enabled || nc->js_idem_bucket == NULL ||
	    *nc->js_idem_bucket == '\0')
		return 0;
	if (!NATS_MODULE_HAS(h->mod, kv_delete)) {
		snprintf(err, errlen, "[jetstream] idempotency_bucket needs a "
		    "NATS module with the bucket's entries; this %s is older "
		    "than cmdhostd", NATS_MODULE_FILE);
		return -1;
	}
	if ((h->kv = idem_kv_new(h->mod, nc->js_idem_bucket,
	    (int64_t)h->cfg->idempotency_ttl_s * 1000)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

struct nats_host *
nats_host_start(const struct config *cfg, struct registry *reg,
    struct dispatch *disp, struct daemon_stats *stats,
    const char *daemon_version, char *err, size_t errlen)
{
	struct nats_host *h = calloc(1, sizeof(*h));

	/* host_logv passes the module's levels to log.h as they are. */
	_Static_assert(NLOG_DEBUG == LOGL_DEBUG && NLOG_INFO == LOGL_INFO &&
	    NLOG_WARN == LOGL_WARN && NLOG_ERROR == LOGL_ERROR,
	    "the seam's log levels must be log.h's");
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->cfg = cfg;
	h->reg = reg;
	h->disp = disp;
	h->stats = stats;
	h->owner.post = NULL;
	h->owner.finished_msg = "call finished (NATS)";
	pthread_mutex_init(&h->wlock, NULL);
	thread_cond_init(&h->wcond);
	if ((h->handle = open_module(cfg, err, errlen)) == NULL)
		goto fail;
	h->mod = dlsym(h->handle, NATS_MODULE_SYMBOL);
	if (h->mod == NULL || h->mod->size < NATS_MODULE_MIN ||
	    h->mod->version != NATS_API_VERSION) {
		snprintf(err, errlen, "the NATS module has no %s of version %d",
		    NATS_MODULE_SYMBOL, NATS_API_VERSION);
		goto fail;
	}
	h->api.size = sizeof(h->api);
	h->api.version = NATS_API_VERSION;
	h->api.host = h;
	h->api.cfg = &cfg->nats;
	h->api.default_timeout_ms = cfg->default_timeout_ms;
	h->api.shutdown_timeout_ms = cfg->shutdown_timeout_ms;
	h->api.daemon_version = daemon_version;
	h->api.logv = host_logv;
	h->api.call = host_call;
	h->api.commands = host_commands;
	h->api.on_change = host_on_change;
	h->api.in_flight = host_in_flight;
	h->api.thread_init = thread_use_c_locale;
	h->api.call_keyed = host_call_keyed;
	if (open_bucket(h, err, errlen) < 0)
		goto fail;
	if ((h->bridge = h->mod->start(&h->api, err, errlen)) == NULL)
		goto fail;
	if (h->kv != NULL)
		idem_kv_attach(h->kv, h->bridge);
	return h;
fail:
	nats_host_free(h);
	return NULL;
}

void
nats_host_stop(struct nats_host *h, int64_t deadline_ns)
{
	if (h == NULL || h->bridge == NULL)
		return;
	/* The workflow bucket first: the operations running end, no new
	 * one starts (they answer NATS_KV_UNAVAILABLE). */
	pthread_mutex_lock(&h->wlock);
	h->wkv_off = 1;
	while (h->wkv_ops > 0)
		pthread_cond_wait(&h->wcond, &h->wlock);
	pthread_mutex_unlock(&h->wlock);
	h->mod->stop(h->bridge, deadline_ns);
	/* Records still pending (calls the module gave up waiting for)
	 * stay in progress in the bucket until their deadlines. */
	idem_kv_detach(h->kv);
	h->bridge = NULL;
	registry_set_publish_hook(h->reg, NULL, NULL);
}

int
nats_host_publish(struct nats_host *h, const char *subject, const char *data,
    size_t len, const char *msg_id, char *err, size_t errlen)
{
	if (h->bridge == NULL) {
		snprintf(err, errlen, "the NATS bridge is stopped");
		return -1;
	}
	if (!NATS_MODULE_HAS(h->mod, event_publish)) {
		snprintf(err, errlen, "this %s is older than cmdhostd and "
		    "cannot publish events", NATS_MODULE_FILE);
		return -1;
	}
	return h->mod->event_publish(h->bridge, subject, data, len, msg_id,
	    err, errlen) == NATS_PUB_OK ? 0 : -1;
}

int
nats_host_request(struct nats_host *h, const char *command,
    const char *payload, size_t len, const char *id_text,
    const char *idem_key, int64_t timeout_ms,
    void (*fn)(void *arg, const char *reply, size_t len, int status),
    void *arg, char *err, size_t errlen)
{
	if (h == NULL || h->bridge == NULL) {
		snprintf(err, errlen, "the NATS bridge is stopped");
		return -1;
	}
	if (!NATS_MODULE_HAS(h->mod, request)) {
		snprintf(err, errlen, "this %s is older than cmdhostd and "
		    "cannot send requests", NATS_MODULE_FILE);
		return -1;
	}
	return h->mod->request(h->bridge, command, payload, len, id_text,
	    idem_key, timeout_ms, fn, arg, err, errlen);
}

int
nats_host_publish_many(struct nats_host *h, size_t n,
    const char *const *subjects, const char *const *data, const size_t *lens,
    const char *const *msg_ids, int *ok, char *err, size_t errlen)
{
	if (h->bridge != NULL && NATS_MODULE_HAS(h->mod, event_publish_many)) {
		h->mod->event_publish_many(h->bridge, n, subjects, data, lens,
		    msg_ids, ok, err, errlen);
		return 0;
	}
	/* An older module: one at a time. */
	err[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char e[256];

		ok[i] = nats_host_publish(h, subjects[i], data[i], lens[i],
		    msg_ids[i], e, sizeof(e)) == 0;
		if (!ok[i] && err[0] == '\0')
			snprintf(err, errlen, "%s", e);
	}
	return 0;
}

void
nats_host_free(struct nats_host *h)
{
	if (h == NULL)
		return;
	nats_host_stop(h, clock_mono_ns());
	/* Dispatch has stopped: no record is left to settle. */
	idem_kv_free(h->kv);
	pthread_mutex_destroy(&h->wlock);
	pthread_cond_destroy(&h->wcond);
	/* The module stays mapped: libnats may keep threads of its own
	 * until the process exits. */
	free(h);
}

/* ------------------------------------------------------------ workflows */

int
nats_host_has_wf_bucket(const struct nats_host *h)
{
	const struct nats_config *nc;

	if (h == NULL)
		return 0;
	nc = &h->cfg->nats;
	return nc->js_enabled && nc->js_wf_bucket != NULL &&
	    *nc->js_wf_bucket != '\0' && NATS_MODULE_HAS(h->mod, kvb_keys);
}

/* Start one workflow bucket operation: 0, or -1 (stopping, or an older
 * module) with the reason in err. */
static int
wkv_enter(struct nats_host *h, char *err, size_t errlen)
{
	int ok;

	if (h == NULL || !NATS_MODULE_HAS(h->mod, kvb_keys)) {
		snprintf(err, errlen, "no NATS module with the workflow "
		    "bucket's entries");
		return -1;
	}
	pthread_mutex_lock(&h->wlock);
	ok = !h->wkv_off && h->bridge != NULL;
	if (ok)
		h->wkv_ops++;
	pthread_mutex_unlock(&h->wlock);
	if (!ok)
		snprintf(err, errlen, "the NATS bridge is stopping");
	return ok ? 0 : -1;
}

static void
wkv_leave(struct nats_host *h)
{
	pthread_mutex_lock(&h->wlock);
	if (--h->wkv_ops == 0)
		pthread_cond_broadcast(&h->wcond);
	pthread_mutex_unlock(&h->wlock);
}

int
nats_host_wkv_create(struct nats_host *h, const char *key, const char *val,
    size_t len, uint64_t *rev, char *err, size_t errlen)
{
	void *old = NULL;
	size_t oldlen = 0;
	int rc;

	*rev = 0;
	if (wkv_enter(h, err, errlen) < 0)
		return NATS_KV_UNAVAILABLE;
	rc = h->mod->kvb_begin(h->bridge, NATS_BUCKET_WORKFLOW, key, val, len,
	    rev, &old, &oldlen, err, errlen);
	wkv_leave(h);
	free(old);
	if (rc == NATS_KV_EXISTS)
		snprintf(err, errlen, "the key %s is taken", key);
	return rc;
}

int
nats_host_wkv_update(struct nats_host *h, const char *key, const char *val,
    size_t len, uint64_t last, uint64_t *rev, char *err, size_t errlen)
{
	int rc;

	*rev = 0;
	if (wkv_enter(h, err, errlen) < 0)
		return NATS_KV_UNAVAILABLE;
	rc = h->mod->kvb_update(h->bridge, NATS_BUCKET_WORKFLOW, key, val, len,
	    last, rev, err, errlen);
	wkv_leave(h);
	return rc;
}

int
nats_host_wkv_delete(struct nats_host *h, const char *key, uint64_t last,
    char *err, size_t errlen)
{
	int rc;

	if (wkv_enter(h, err, errlen) < 0)
		return NATS_KV_UNAVAILABLE;
	rc = h->mod->kvb_delete(h->bridge, NATS_BUCKET_WORKFLOW, key, last,
	    err, errlen);
	wkv_leave(h);
	return rc;
}

int
nats_host_wkv_get(struct nats_host *h, const char *key, char **val,
    size_t *len, uint64_t *rev, char *err, size_t errlen)
{
	void *v = NULL;
	int rc;

	*val = NULL;
	*len = 0;
	*rev = 0;
	if (wkv_enter(h, err, errlen) < 0)
		return NATS_KV_UNAVAILABLE;
	rc = h->mod->kvb_get(h->bridge, NATS_BUCKET_WORKFLOW, key, &v, len,
	    rev, err, errlen);
	wkv_leave(h);
	*val = v;
	return rc;
}

int
nats_host_wkv_keys(struct nats_host *h, char ***keys, size_t *n, char *err,
    size_t errlen)
{
	int rc;

	*keys = NULL;
	*n = 0;
	if (wkv_enter(h, err, errlen) < 0)
		return NATS_KV_UNAVAILABLE;
	rc = h->mod->kvb_keys(h->bridge, NATS_BUCKET_WORKFLOW, keys, n, err,
	    errlen);
	wkv_leave(h);
	return rc;
}
