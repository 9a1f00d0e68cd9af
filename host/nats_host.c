/*
 * nats_host.c - run commands for the NATS module, and load it.
 *
 * A NATS request becomes a request line and then an invocation exactly as
 * on the socket (request_parse, registry_lookup, field check,
 * executor_submit), so both paths check and answer alike.  Calls that go
 * to the pool are kept in a list that a timer thread watches: at the
 * deadline it answers 504, and the late result is dropped when the pool
 * hands it back.  This file never includes a NATS header.
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

#include "buf.h"
#include "config.h"
#include "executor.h"
#include "log.h"
#include "metrics.h"
#include "nats_api.h"
#include "registry.h"
#include "reply.h"
#include "request.h"

#ifndef CMDHOST_LIBDIR
#define CMDHOST_LIBDIR "/usr/local/lib/cmdhost"
#endif
#define MODULE_FILE "cmdhost-nats.so"

static const char OOM_REPLY[] = "{\"id\":null,\"status\":503,\"error\":"
    "{\"code\":\"unavailable\",\"message\":\"out of memory\"}}";

/* One call from the module. */
struct ncall {
	struct nats_host *h;
	struct invocation *inv;
	nats_reply_fn fn;
	void *arg;
	struct ncall *prev, *next;  /* h->pending, while on the pool */
	int listed;                 /* on h->pending: nobody answered yet */
	int refs;                   /* the pool's, and the timer's while it
	                             * answers; h->lock guards both fields */
};

struct nats_host {
	struct nats_host_api api;
	const struct config *cfg;
	struct registry *reg;
	struct executor *ex;
	struct daemon_stats *stats;
	void *handle;               /* dlopen of the module */
	const struct nats_module *mod;
	void *bridge;
	atomic_int in_flight;
	atomic_uint_fast64_t seq;

	pthread_mutex_t lock;       /* pending, stop */
	pthread_cond_t cond;
	struct ncall *pending;
	int stop;
	pthread_t timer;
	int timer_started;
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

/* Format the reply of a finished inv, send it, count it. */
static void
answer_inv(struct nats_host *h, struct invocation *inv, nats_reply_fn fn,
    void *arg)
{
	struct buf out = BUF_INIT;
	struct log_ctx lc = LOG_CTX_INIT;
	int64_t dur = inv->end_ns - inv->start_ns;
	int rc;

	if (inv->status >= 200 && inv->status < 300)
		rc = request_format_ok_text(&out, inv->id_text, inv->status,
		    inv->body);
	else
		rc = request_format_error_text(&out, inv->id_text, inv->status,
		    inv->code ? inv->code : "internal_error",
		    inv->message ? inv->message : "out of memory");
	metrics_cmd_record(inv->cmd->stats, inv->status, (uint64_t)dur / 1000);
	metrics_cmd_leave(inv->cmd->stats);
	invocation_log_ctx(inv, &lc);
	lc.status = inv->status;
	lc.error_code = inv->status < 300 ? NULL : inv->code;
	lc.duration_ms = (double)dur / 1e6;
	if (rc == 0)
		rc = reply_finish(h->cfg, h->stats, &out, inv->want_request_id,
		    &lc, inv->status < 300 ? "call finished (NATS)" :
		    inv->message ? inv->message : "out of memory");
	send_reply(h, &out, rc, inv->status, fn, arg);
	buf_free(&out);
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

	request_id_make(rid, log_now_ms(), 0xff, atomic_fetch_add(&h->seq, 1));
	rc = reply_error(h->cfg, h->stats, &out, req, rid, status, code,
	    message, -1, -1);
	send_reply(h, &out, rc, status, fn, arg);
	buf_free(&out);
}

static void
unlist(struct nats_host *h, struct ncall *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->pending = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->listed = 0;
}

/* Drop an invocation on a thread that is not an event loop: nothing is
 * kept in this thread's cache (it may never free it). */
static void
drop_inv(struct invocation *inv)
{
	invocation_free(inv);
	executor_thread_cache_free();
}

/* Drop one reference to c; the last one frees it and its invocation. */
static void
call_release(struct ncall *c)
{
	struct nats_host *h = c->h;
	int last;

	pthread_mutex_lock(&h->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&h->lock);
	if (last) {
		drop_inv(c->inv);
		free(c);
	}
}

/* c->inv is finished (or was refused): answer unless the timer did, then
 * drop the pool's reference. */
static void
call_done(struct ncall *c)
{
	struct nats_host *h = c->h;
	int mine;

	pthread_mutex_lock(&h->lock);
	mine = c->listed;
	if (mine)
		unlist(h, c);
	pthread_mutex_unlock(&h->lock);
	if (mine)
		answer_inv(h, c->inv, c->fn, c->arg);
	call_release(c);
}

/* A pool thread finished inv. */
static void
pool_done(struct invocation *inv)
{
	call_done(inv->owner);
}

/* Answer 504 for c, which the pool still holds: only the id text of its
 * invocation is read (a running call may be writing its result). */
static void
answer_timeout(struct nats_host *h, struct ncall *c, int64_t now)
{
	struct invocation *inv = c->inv;
	struct buf out = BUF_INIT;
	struct log_ctx lc = LOG_CTX_INIT;
	const char *why = executor_cancel(inv) ? "the command did not start "
	    "before its deadline" : "the command did not finish before its "
	    "deadline";

	int rc;

	metrics_cmd_record(inv->cmd->stats, 504,
	    (uint64_t)(now - inv->start_ns) / 1000);
	metrics_cmd_leave(inv->cmd->stats);
	invocation_log_ctx(inv, &lc);
	lc.status = 504;
	lc.error_code = "timeout";
	lc.duration_ms = (double)(now - inv->start_ns) / 1e6;
	rc = request_format_error_text(&out, inv->id_text, 504, "timeout", why);
	if (rc == 0)
		rc = reply_finish(h->cfg, h->stats, &out, inv->want_request_id,
		    &lc, why);
	send_reply(h, &out, rc, 504, c->fn, c->arg);
	buf_free(&out);
}

/* Answer 504 for pool calls past their deadline; sleep until the next. */
static void *
timer_main(void *arg)
{
	struct nats_host *h = arg;

	executor_thread_locale();
	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		int64_t now = executor_now_ns(), next = now + 1000000000LL;
		struct ncall *c, *cnext;
		struct timespec ts;

		for (c = h->pending; c != NULL; c = cnext) {
			struct invocation *inv = c->inv;

			cnext = c->next;
			if (inv->deadline_ns > now) {
				if (inv->deadline_ns < next)
					next = inv->deadline_ns;
				continue;
			}
			unlist(h, c);
			/* The pool still runs inv: a reference of our own keeps
			 * c and inv alive while we answer. */
			c->refs++;
			pthread_mutex_unlock(&h->lock);
			answer_timeout(h, c, now);
			call_release(c);
			pthread_mutex_lock(&h->lock);
			cnext = h->pending; /* the list may have changed */
		}
		ts.tv_sec = (time_t)(next / 1000000000LL);
		ts.tv_nsec = (long)(next % 1000000000LL);
		pthread_cond_timedwait(&h->cond, &h->lock, &ts);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* Set up the calling thread on first use: locale, reader slot, parser.
 * Returns 0 or -1. */
static int
thread_setup(struct nats_host *h)
{
	if (tl_tok != NULL)
		return 0;
	executor_thread_locale();
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
    size_t len, const char *id_text, int64_t timeout_ms)
{
	int rc = buf_puts(line, "{\"command\":");

	rc |= buf_put_json_string(line, command);
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
host_call(void *hp, const char *command, const char *payload, size_t len,
    const char *id_text, int64_t timeout_ms, nats_reply_fn fn, void *arg)
{
	struct nats_host *h = hp;
	struct buf line = BUF_INIT;
	struct request req;
	struct command *cmd;
	struct ncall *c;
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
	if (make_line(&line, command, payload, len, id_text, timeout_ms) < 0) {
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
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		answer_error(h, &req, 503, "unavailable", "out of memory", fn,
		    arg);
		goto out;
	}
	if ((c->inv = invocation_for_request(h->reg, tl_reader, &req,
	    h->cfg->default_timeout_ms, log_now_ms(), 0xff,
	    atomic_fetch_add(&h->seq, 1), &status, &code, err,
	    sizeof(err))) == NULL) {
		free(c);
		answer_error(h, &req, status, code, err, fn, arg);
		goto out;
	}
	cmd = c->inv->cmd;
	c->h = h;
	c->fn = fn;
	c->arg = arg;
	c->inv->done = pool_done;
	c->inv->owner = c;
	/* Never run on a libnats delivery thread: a slow command would
	 * stall every subscription that thread serves. */
	c->inv->pool_only = 1;
	c->refs = 1;
	metrics_cmd_enter(cmd->stats);
	/* Listed before submit: the pool may finish it before we return. */
	pthread_mutex_lock(&h->lock);
	c->listed = 1;
	c->next = h->pending;
	if (h->pending != NULL)
		h->pending->prev = c;
	h->pending = c;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	rc = executor_submit(h->ex, c->inv);
	if (rc == EXEC_QUEUED)
		goto out;
	/* Refused (pool_only calls never run in place): answered here,
	 * unless the timer already did. */
	if (rc == EXEC_REJECTED) {
		c->inv->end_ns = executor_now_ns();
		invocation_set_error(c->inv, 503, "unavailable",
		    "the command queue is full; retry later");
	}
	call_done(c);
out:
	request_fini(&req);
}

static struct json_object *
host_commands(void *hp)
{
	struct nats_host *h = hp;
	struct json_object *list = registry_list_json(h->reg);
	struct json_object *out = json_object_new_array();
	size_t n = json_object_array_length(list);

	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_array_get_idx(list, i);
		struct json_object *cmds, *gen;
		size_t m;

		/* Only generations that serve (a failed file has none). */
		if (!json_object_object_get_ex(p, "generation", &gen) ||
		    gen == NULL ||
		    !json_object_object_get_ex(p, "commands", &cmds))
			continue;
		m = json_object_array_length(cmds);
		for (size_t j = 0; j < m; j++) {
			struct json_object *c = json_object_array_get_idx(cmds,
			    j), *o = json_object_new_object(), *v;

			if (json_object_object_get_ex(c, "name", &v))
				json_object_object_add(o, "name",
				    json_object_get(v));
			if (json_object_object_get_ex(c, "summary", &v))
				json_object_object_add(o, "summary",
				    json_object_get(v));
			if (json_object_object_get_ex(p, "name", &v))
				json_object_object_add(o, "plugin",
				    json_object_get(v));
			if (json_object_object_get_ex(p, "version", &v))
				json_object_object_add(o, "version",
				    json_object_get(v));
			json_object_array_add(out, o);
		}
	}
	json_object_put(list);
	return out;
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

	return atomic_load(&h->in_flight);
}

/* Find and open the module.  Returns the dlopen handle or NULL (err). */
static void *
open_module(const struct config *cfg, char *err, size_t errlen)
{
	char exe[PATH_MAX], path[PATH_MAX + 64], path2[PATH_MAX + 64];
	char tried[4 * PATH_MAX];
	const char *cands[4];
	int n = 0;
	ssize_t len;
	void *handle;

	tried[0] = '\0';
	if (cfg->nats.module != NULL) {
		cands[n++] = cfg->nats.module;
	} else {
		len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (len > 0) {
			char *slash;

			exe[len] = '\0';
			if ((slash = strrchr(exe, '/')) != NULL)
				*slash = '\0';
			snprintf(path, sizeof(path), "%s/lib/%s", exe,
			    MODULE_FILE);
			cands[n++] = path;
			/* An installed daemon: PREFIX/sbin/../lib/cmdhost. */
			snprintf(path2, sizeof(path2), "%s/../lib/cmdhost/%s",
			    exe, MODULE_FILE);
			cands[n++] = path2;
		}
		cands[n++] = CMDHOST_LIBDIR "/" MODULE_FILE;
	}
	for (int i = 0; i < n; i++) {
		if ((handle = dlopen(cands[i], RTLD_NOW | RTLD_LOCAL)) != NULL)
			return handle;
		snprintf(tried + strlen(tried), sizeof(tried) - strlen(tried),
		    "%s%s", i ? "; " : "", dlerror());
	}
	snprintf(err, errlen, "[nats] is configured but the NATS module "
	    "cannot be loaded (%s)", tried);
	return NULL;
}

struct nats_host *
nats_host_start(const struct config *cfg, struct registry *reg,
    struct executor *ex, struct daemon_stats *stats,
    const char *daemon_version, char *err, size_t errlen)
{
	struct nats_host *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->cfg = cfg;
	h->reg = reg;
	h->ex = ex;
	h->stats = stats;
	pthread_mutex_init(&h->lock, NULL);
	executor_cond_init(&h->cond);
	if ((h->handle = open_module(cfg, err, errlen)) == NULL)
		goto fail;
	h->mod = dlsym(h->handle, NATS_MODULE_SYMBOL);
	if (h->mod == NULL || h->mod->size < sizeof(*h->mod) ||
	    h->mod->version != NATS_API_VERSION) {
		snprintf(err, errlen, "the NATS module has no %s of version %d",
		    NATS_MODULE_SYMBOL, NATS_API_VERSION);
		goto fail;
	}
	if (pthread_create(&h->timer, NULL, timer_main, h) != 0) {
		snprintf(err, errlen, "cannot start the NATS timer thread");
		goto fail;
	}
	h->timer_started = 1;
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
	h->api.thread_init = executor_thread_locale;
	if ((h->bridge = h->mod->start(&h->api, err, errlen)) == NULL)
		goto fail;
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
	h->mod->stop(h->bridge, deadline_ns);
	h->bridge = NULL;
	registry_set_publish_hook(h->reg, NULL, NULL);
}

void
nats_host_free(struct nats_host *h)
{
	if (h == NULL)
		return;
	nats_host_stop(h, executor_now_ns());
	if (h->timer_started) {
		pthread_mutex_lock(&h->lock);
		h->stop = 1;
		pthread_cond_signal(&h->cond);
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->timer, NULL);
	}
	/* The module stays mapped: libnats may keep threads of its own
	 * until the process exits. */
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	free(h);
}
