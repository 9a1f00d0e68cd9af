/*
 * deliver.c - deliver the outbox's events (routes, NATS, dead letters)
 * and relay the plugins' own outboxes into it.
 *
 * A route's delivery is a call of dispatch like any client's, made on the
 * outbox's delivery thread and run on the pool; its completion comes on
 * whichever thread answered and ends in outbox_done().  NATS deliveries
 * are gathered per round of due events and published together (their
 * acks awaited together) on the delivery thread itself.  The relay
 * has a thread of its own: plugin code never runs on the delivery thread.
 */
#include "deliver.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/api.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/envelope.h"
#include "core/event.h"
#include "core/generation.h"
#include "core/log.h"
#include "core/request.h"
#include "core/thread.h"
#include "dispatch.h"
#include "nats_host.h"
#include "outbox.h"
#include "registry.h"

/* NATS deliveries published in one round at most. */
#define NQ_MAX 256

struct deliverer {
	const struct config *cfg;
	struct registry *reg;
	struct dispatch *disp;
	struct nats_host *nats;
	struct outbox *ob;
	struct dispatch_owner owner;  /* no post: completions run where
	                               * they are answered */
	int reader;                   /* the delivery thread's slot */
	struct json_tokener *tok;     /* the delivery thread's */
	atomic_uint_fast64_t seq;

	pthread_mutex_t lock;         /* stop, and the relay's wait */
	pthread_cond_t cond;
	int stop;
	pthread_t relay;
	int relay_started;
	int stopped;               /* deliver_stop() ran: the outbox may be
	                            * gone (dispatch_stop closes it) */
	/* The NATS deliveries of the delivery thread's current round,
	 * borrowed until their outbox_done(). */
	struct ob_event *nq[NQ_MAX];
	size_t n_nq;
};

/* One route delivery in flight. */
struct dcall {
	struct deliverer *dv;
	struct ob_event *ev;
	const struct config_route *route;
};

/* The wait before retry number `attempt` (1 = the first retry). */
static int64_t
backoff(int base, int max, int attempt)
{
	int64_t w = base;

	for (int i = 1; i < attempt && w < max; i++)
		w *= 2;
	return w < max ? w : max;
}

/* Log one delivery attempt of ev with its outcome. */
static void
log_attempt(const struct ob_event *ev, const char *to, int status,
    const char *code, int level, const char *msg)
{
	struct log_ctx lc = LOG_CTX_INIT;

	if (!log_enabled(level))
		return;
	lc.request_id = ev->request_id;
	lc.event_id = ev->id;
	lc.subject = ev->subject;
	lc.attempt = ev->attempts + 1;
	lc.command = to;
	lc.status = status;
	lc.error_code = code;
	log_emit_str(level, &lc, msg);
}

/* ------------------------------------------------------------ routes */

/* How a route's answer `status` ends the delivery of ev. */
static void
route_outcome(struct deliverer *dv, struct ob_event *ev,
    const struct config_route *r, int status, const char *code,
    const char *why)
{
	char msg[400];
	int retry = status == 404 || status == 409 || status == 429 ||
	    status >= 500;
	int last = ev->attempts + 1 >= r->max_attempts;

	if (status >= 200 && status < 300) {
		log_attempt(ev, r->command, status, NULL, dv->cfg->access_log ?
		    LOGL_INFO : LOGL_DEBUG, "event delivered");
		outbox_done(dv->ob, ev, OB_DELIVERED, 0, NULL);
		return;
	}
	snprintf(msg, sizeof(msg), "%d %s: %s", status, code ? code : "-",
	    why ? why : "");
	if (retry && !last) {
		int64_t w = backoff(r->backoff_ms, r->backoff_max_ms,
		    ev->attempts + 1);

		log_attempt(ev, r->command, status, code, LOGL_WARN,
		    "event delivery failed; it will be retried");
		outbox_done(dv->ob, ev, OB_RETRY, w, msg);
		return;
	}
	log_attempt(ev, r->command, status, code, LOGL_ERROR, retry ?
	    "event delivery failed for the last time; it is dead-lettered" :
	    "the route's command refused the event; it is dead-lettered");
	outbox_done(dv->ob, ev, OB_DEAD, 0, msg);
}

/* The route's call answered (on whichever thread). */
static void
on_route_done(struct call *c)
{
	struct dcall *dc = c->owner_arg;
	struct buf out = BUF_INIT;
	const char *code = NULL, *why = NULL;
	int status = dispatch_status(c);

	/* Counted and logged as the consumer's own call. */
	(void)dispatch_reply(c, &out, 0);
	if (status >= 300 && atomic_load(&c->answer) == CALL_RESULT) {
		code = c->inv.code;
		why = c->inv.message;
	} else if (status >= 300) {
		code = status == 504 ? "timeout" : "unavailable";
		why = c->answer_msg;
	}
	route_outcome(dc->dv, dc->ev, dc->route, status, code, why);
	buf_free(&out);
	free(dc);
}

/* Build the call of r's command for ev: the event is the payload, its id
 * the idempotency key (a redelivery after a crash replays, within the
 * key's TTL, instead of running twice). */
static int
route_line(struct buf *line, const struct config_route *r,
    const struct ob_event *ev)
{
	int rc = buf_puts(line, "{\"command\":");

	rc |= buf_put_json_string(line, r->command);
	rc |= buf_puts(line, ",\"id\":");
	rc |= buf_put_json_string(line, ev->id);
	rc |= buf_puts(line, ",\"idempotency_key\":");
	rc |= buf_put_json_string(line, ev->id);
	rc |= buf_puts(line, ",\"payload\":");
	rc |= buf_put(line, ev->body, ev->len);
	rc |= buf_puts(line, "}");
	return rc < 0 ? -1 : 0;
}

static void
deliver_route(struct deliverer *dv, struct ob_event *ev,
    const struct config_route *r)
{
	struct buf line = BUF_INIT;
	struct dispatch_args a;
	struct request req;
	struct call *call;
	struct dcall *dc;
	const char *code;
	char err[512];
	int status;

	memset(&req, 0, sizeof(req));
	if (dv->tok == NULL || route_line(&line, r, ev) < 0 ||
	    (dc = malloc(sizeof(*dc))) == NULL) {
		buf_free(&line);
		route_outcome(dv, ev, r, 503, "unavailable", "out of memory");
		return;
	}
	/* Scanned, as a client's line is: no tree for the payload.  req
	 * points into line until request_fini(). */
	if (envelope_scan(dv->tok, buf_head(&line), buf_size(&line), &req,
	    err, sizeof(err)) < 0) {
		/* The body was checked when it was stored: not reached. */
		request_fini(&req);
		buf_free(&line);
		free(dc);
		route_outcome(dv, ev, r, 400, "bad_request", err);
		return;
	}
	dc->dv = dv;
	dc->ev = ev;
	dc->route = r;
	memset(&a, 0, sizeof(a));
	a.reader = dv->reader;
	a.rid_ms = clock_wall_ms();
	a.rid_src = 0xfe;
	a.rid_seq = atomic_fetch_add(&dv->seq, 1);
	a.pid = a.uid = -1;
	a.scope = "events";
	/* Never on the delivery thread: a slow consumer would hold up
	 * every subject. */
	a.pool_only = 1;
	a.owner = &dv->owner;
	a.done = on_route_done;
	a.owner_arg = dc;
	if (dispatch_call(dv->disp, &a, &req, &call, &status, &code, err,
	    sizeof(err)) < 0) {
		free(dc);
		route_outcome(dv, ev, r, status, code, err);
	}
	request_fini(&req);
	buf_free(&line);
}

/* ------------------------------------------------------------ NATS */

/* Publish the round gathered in dv->nq at once (one round trip for
 * all, not one each), and end each delivery. */
static void
flush_nats(void *arg)
{
	struct deliverer *dv = arg;
	const char *subjects[NQ_MAX], *data[NQ_MAX], *ids[NQ_MAX];
	size_t lens[NQ_MAX], n = dv->n_nq;
	int ok[NQ_MAX];
	char err[256], msg[320];

	if (n == 0)
		return;
	dv->n_nq = 0;
	for (size_t i = 0; i < n; i++) {
		subjects[i] = dv->nq[i]->subject;
		data[i] = dv->nq[i]->body;
		lens[i] = dv->nq[i]->len;
		ids[i] = dv->nq[i]->id;
	}
	nats_host_publish_many(dv->nats, n, subjects, data, lens, ids, ok, err,
	    sizeof(err));
	snprintf(msg, sizeof(msg), "NATS: %s", err);
	for (size_t i = 0; i < n; i++) {
		struct ob_event *ev = dv->nq[i];

		if (ok[i]) {
			log_attempt(ev, NULL, -1, NULL, dv->cfg->access_log ?
			    LOGL_INFO : LOGL_DEBUG, "event published to NATS");
			outbox_done(dv->ob, ev, OB_DELIVERED, 0, NULL);
			continue;
		}
		/* NATS away or failing: kept and retried for as long as it
		 * takes, in order (the subject's next events wait behind
		 * it). */
		log_attempt(ev, NULL, -1, "nats_unavailable", ev->attempts == 0 ?
		    LOGL_WARN : LOGL_DEBUG, msg);
		outbox_done(dv->ob, ev, OB_RETRY, backoff(
		    dv->cfg->events_backoff_ms, dv->cfg->events_backoff_max_ms,
		    ev->attempts + 1), msg);
	}
}

/* Gather ev into this round's publish (flush_nats at the round's end). */
static void
deliver_nats(struct deliverer *dv, struct ob_event *ev)
{
	if (dv->n_nq == NQ_MAX)
		flush_nats(dv);
	dv->nq[dv->n_nq++] = ev;
}

/* outbox_deliver_fn, on the outbox's delivery thread. */
static void
deliver_event(void *arg, struct ob_event *ev)
{
	struct deliverer *dv = arg;
	const struct config_route *r = config_route_of(dv->cfg, ev->subject);

	if (dv->reader < 0) {
		thread_use_c_locale();
		dv->reader = registry_reader(dv->reg);
		dv->tok = request_tokener_new();
	}
	if (r != NULL) {
		deliver_route(dv, ev, r);
		return;
	}
	if (dv->nats != NULL) {
		deliver_nats(dv, ev);
		return;
	}
	log_attempt(ev, NULL, -1, "no_route", LOGL_ERROR, "no [route:SUBJECT] "
	    "for this event's subject and no [nats]: it is dead-lettered");
	outbox_done(dv->ob, ev, OB_DEAD, 0, "no route for its subject and no "
	    "[nats] to publish it to");
}

/* ------------------------------------------------------------ relay */

#define RELAY_MAX 256

/* What one fetch handed over. */
struct relay_batch {
	struct event evs[RELAY_MAX];
	char *ids[RELAY_MAX];         /* the events' ids ("<plugin>:<row>") */
	char *rows[RELAY_MAX];        /* every row's own id, to ack */
	size_t n_evs, n_rows;
	int done, ok;                 /* outbox_add's answer */
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
};

static int
relay_collect(void *arg, const char *row_id, const char *id,
    const char *subject, const char *body, size_t len)
{
	struct relay_batch *b = arg;
	char *row = strdup(row_id);

	if (row == NULL || b->n_rows == RELAY_MAX)
		goto fail;
	if (body != NULL) {
		struct event *e = &b->evs[b->n_evs];

		e->subject = strdup(subject);
		e->body = malloc(len + 1);
		b->ids[b->n_evs] = strdup(id);
		if (e->subject == NULL || e->body == NULL ||
		    b->ids[b->n_evs] == NULL) {
			event_fini(e);
			free(b->ids[b->n_evs]);
			goto fail;
		}
		memcpy(e->body, body, len);
		e->body[len] = '\0';
		e->len = len;
		b->n_evs++;
	}
	b->rows[b->n_rows++] = row;
	return 0;
fail:
	free(row);
	return -1;
}

static void
relay_durable(void *arg, int ok)
{
	struct relay_batch *b = arg;

	pthread_mutex_lock(b->lock);
	b->done = 1;
	b->ok = ok;
	pthread_cond_broadcast(b->cond);
	pthread_mutex_unlock(b->lock);
}

static void
batch_free(struct relay_batch *b)
{
	for (size_t i = 0; i < b->n_evs; i++) {
		event_fini(&b->evs[i]);
		free(b->ids[i]);
	}
	for (size_t i = 0; i < b->n_rows; i++)
		free(b->rows[i]);
	b->n_evs = b->n_rows = 0;
}

/*
 * Drain one generation's outbox: fetch, store durably, ack; again while
 * full fetches come.  Returns how many rows went.
 */
static size_t
relay_one(struct deliverer *dv, struct generation *g)
{
	static struct relay_batch b;  /* the relay thread's only */
	cmdhost_relay sink;
	size_t total = 0;

	for (;;) {
		int rc;

		memset(&b, 0, sizeof(b));
		b.lock = &dv->lock;
		b.cond = &dv->cond;
		memset(&sink, 0, sizeof(sink));
		sink.api = api_table();
		sink.plugin = g->name;
		sink.max = RELAY_MAX;
		sink.put = relay_collect;
		sink.arg = &b;
		rc = g->relay_fetch(g->state, &sink, RELAY_MAX);
		if (sink.why[0] != '\0')
			log_warnx("plugin '%s': its outbox relay refused a row: "
			    "%s", g->name, sink.why);
		if (rc != 0 || b.n_rows == 0)
			break;
		if (b.n_evs > 0) {
			rc = outbox_add(dv->ob, b.evs, b.n_evs,
			    (const char *const *)b.ids, NULL, g->name,
			    relay_durable, &b);
			if (rc < 0) {
				log_warnx("plugin '%s': %zu relayed events wait "
				    "in its outbox: %s", g->name, b.n_evs,
				    rc == -ENOSPC ? "the daemon's outbox is "
				    "full ([events] max_pending)" :
				    "out of memory");
				break;
			}
			pthread_mutex_lock(&dv->lock);
			while (!b.done)
				pthread_cond_wait(&dv->cond, &dv->lock);
			pthread_mutex_unlock(&dv->lock);
			if (!b.ok)
				break; /* fetched again next time */
		}
		/* Durable here: the plugin may forget them. */
		if (g->relay_ack(g->state, (const char *const *)b.rows,
		    b.n_rows) != 0)
			log_warnx("plugin '%s': its outbox relay could not mark "
			    "%zu rows sent; they will be fetched again (and "
			    "dropped as duplicates)", g->name, b.n_rows);
		total += b.n_rows;
		if (b.n_rows < RELAY_MAX)
			break;
		batch_free(&b);
	}
	batch_free(&b);
	return total;
}

#define RELAY_GENS 64

struct gens {
	struct generation *g[RELAY_GENS];
	size_t n;
};

/* Under the view lock: hold every serving generation with a relay. */
static int
hold_relays(const struct registry_plugin *p, void *arg)
{
	struct gens *gs = arg;
	struct generation *g = (struct generation *)p->g;

	if (g != NULL && g->relay_fetch != NULL && gs->n < RELAY_GENS) {
		generation_hold(g);
		gs->g[gs->n++] = g;
	}
	return 0;
}

static void *
relay_main(void *arg)
{
	struct deliverer *dv = arg;

	thread_use_c_locale();
	pthread_mutex_lock(&dv->lock);
	while (!dv->stop) {
		struct gens gs = { .n = 0 };
		struct timespec ts;

		pthread_mutex_unlock(&dv->lock);
		registry_each_plugin(dv->reg, hold_relays, &gs);
		for (size_t i = 0; i < gs.n; i++) {
			relay_one(dv, gs.g[i]);
			generation_release(gs.g[i]);
		}
		pthread_mutex_lock(&dv->lock);
		ts = clock_mono_ts((clock_mono_ms() +
		    dv->cfg->events_relay_ms) * 1000000);
		if (!dv->stop)
			pthread_cond_timedwait(&dv->cond, &dv->lock, &ts);
	}
	pthread_mutex_unlock(&dv->lock);
	return NULL;
}

/* ------------------------------------------------------------ life */

struct deliverer *
deliver_start(const struct config *cfg, struct registry *reg,
    struct dispatch *disp, struct nats_host *nats, char *err, size_t errlen)
{
	struct deliverer *dv = calloc(1, sizeof(*dv));
	int rc;

	if (dv == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	dv->cfg = cfg;
	dv->reg = reg;
	dv->disp = disp;
	dv->nats = nats;
	dv->ob = dispatch_outbox(disp);
	dv->owner.post = NULL;
	dv->owner.finished_msg = "event delivered to its route";
	dv->reader = -1;
	pthread_mutex_init(&dv->lock, NULL);
	thread_cond_init(&dv->cond);
	if ((errno = pthread_create(&dv->relay, NULL, relay_main, dv)) != 0) {
		snprintf(err, errlen, "cannot start the outbox relay: %s",
		    strerror(errno));
		deliver_free(dv);
		return NULL;
	}
	dv->relay_started = 1;
	if ((rc = outbox_start(dv->ob, deliver_event, flush_nats, dv)) < 0) {
		snprintf(err, errlen, "cannot start event delivery: %s",
		    strerror(-rc));
		deliver_stop(dv);
		deliver_free(dv);
		return NULL;
	}
	return dv;
}

void
deliver_stop(struct deliverer *dv)
{
	/* Once: stop() calls it before dispatch_stop(), which closes the
	 * outbox, and release() again after. */
	if (dv == NULL || dv->stopped)
		return;
	dv->stopped = 1;
	outbox_stop(dv->ob);
	if (dv->relay_started) {
		pthread_mutex_lock(&dv->lock);
		dv->stop = 1;
		pthread_cond_broadcast(&dv->cond);
		pthread_mutex_unlock(&dv->lock);
		pthread_join(dv->relay, NULL);
		dv->relay_started = 0;
	}
}

void
deliver_free(struct deliverer *dv)
{
	if (dv == NULL)
		return;
	deliver_stop(dv);
	if (dv->tok != NULL)
		json_tokener_free(dv->tok);
	pthread_mutex_destroy(&dv->lock);
	pthread_cond_destroy(&dv->cond);
	free(dv);
}
