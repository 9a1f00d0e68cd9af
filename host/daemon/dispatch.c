/*
 * dispatch.c - lookup, field check, the call, its executor, its deadline,
 * and its one completion.
 *
 * Who answers a call first wins, under d->lock for calls that left the
 * submitting thread: the executor's result, the deadline timer (504), the
 * owner going away, or a forced shutdown (503).  A call that runs inline
 * never leaves its thread, takes no lock and is not on the timer's heap.
 * A call holds up to two references: dispatch's (until done ran or the
 * owner abandoned it) and the executor's (from taken to executed).
 */
#include "dispatch.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_table.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/envelope.h"
#include "core/generation.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/request.h"
#include "core/thread.h"
#include "executor.h"
#include "idem.h"
#include "outbox.h"
#include "registry.h"
#include "reply.h"
#include "rollback.h"

#define NO_HEAP ((size_t)-1)

struct dispatch {
	const struct config *cfg;
	struct registry *reg;
	struct daemon_stats *stats;
	struct executor *exec[ISOLATION_KINDS]; /* one per kind */
	struct idem *idem;           /* idempotency records */
	struct idem_backend local;   /* idem as a backend */
	struct outbox *outbox;       /* emitted events (events.db) */

	pthread_mutex_t lock;        /* heap, answers of calls off-thread */
	pthread_cond_t cond;         /* the earliest deadline changed */
	struct call **heap;          /* min-heap by inv.deadline_ns */
	size_t n_heap, cap_heap;
	int stop;
	pthread_t timer;
	int timer_started;
};

/* ------------------------------------------------------------ calls */

/* Each event-loop thread keeps a few freed calls for reuse: most calls
 * are made and freed on that thread. */
#define CALL_CACHE_MAX 64
static __thread struct call *call_cache;
static __thread int call_cached;
static __thread int call_cache_on;

void
dispatch_thread_cache(int on)
{
	struct call *c;

	call_cache_on = on;
	if (on)
		(void)metrics_shard_own(); /* else a shared one: fine */
	else
		metrics_shard_release();
	/* The lookup cache holds a reference: forgotten before the
	 * generation cache gives its spares back. */
	cmd_index_cache(on);
	generation_cache(on);
	clock_pass_on(on);
	if (on)
		return;
	while ((c = call_cache) != NULL) {
		call_cache = c->timer_next;
		free(c);
	}
	call_cached = 0;
}

static struct call *
call_alloc(void)
{
	struct call *c;

	if ((c = call_cache) != NULL) {
		call_cache = c->timer_next;
		call_cached--;
		return c;
	}
	return malloc(sizeof(*c));
}

static void
call_release(struct call *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	invocation_fini(&c->inv);
	free(c->replay.text);
	if (call_cache_on && call_cached < CALL_CACHE_MAX) {
		c->timer_next = call_cache;
		call_cache = c;
		call_cached++;
		return;
	}
	free(c);
}

/* ------------------------------------------------------------ the heap */

static int
earlier(const struct call *a, const struct call *b)
{
	return a->inv.deadline_ns < b->inv.deadline_ns;
}

static void
heap_set(struct dispatch *d, size_t i, struct call *c)
{
	d->heap[i] = c;
	c->heap_idx = i;
}

static void
heap_up(struct dispatch *d, size_t i)
{
	struct call *c = d->heap[i];

	while (i > 0 && earlier(c, d->heap[(i - 1) / 2])) {
		heap_set(d, i, d->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(d, i, c);
}

static void
heap_down(struct dispatch *d, size_t i)
{
	struct call *c = d->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, m = i;

		if (l < d->n_heap && earlier(d->heap[l], c))
			m = l;
		if (l + 1 < d->n_heap && earlier(d->heap[l + 1],
		    m == i ? c : d->heap[m]))
			m = l + 1;
		if (m == i)
			break;
		heap_set(d, i, d->heap[m]);
		i = m;
	}
	heap_set(d, i, c);
}

/* Add c; d->lock is held.  Returns 0 or -ENOMEM. */
static int
heap_add(struct dispatch *d, struct call *c)
{
	if (d->n_heap == d->cap_heap) {
		size_t cap = d->cap_heap ? d->cap_heap * 2 : 64;
		struct call **h = realloc(d->heap, cap * sizeof(*h));

		if (h == NULL)
			return -ENOMEM;
		d->heap = h;
		d->cap_heap = cap;
	}
	heap_set(d, d->n_heap++, c);
	heap_up(d, c->heap_idx);
	if (c->heap_idx == 0)
		pthread_cond_signal(&d->cond); /* a new earliest deadline */
	return 0;
}

/* Take c off the heap if it is on it; d->lock is held. */
static void
heap_del(struct dispatch *d, struct call *c)
{
	size_t i = c->heap_idx;

	if (i == NO_HEAP)
		return;
	c->heap_idx = NO_HEAP;
	if (--d->n_heap == i)
		return;
	c = d->heap[d->n_heap]; /* the last one fills the hole */
	heap_set(d, i, c);
	heap_down(d, i);
	heap_up(d, c->heap_idx);
}

/* ------------------------------------------------------------ answers */

/* Run c's completion on this thread and drop dispatch's reference. */
static void
complete(struct call *c)
{
	c->done(c);
	call_release(c);
}

void
dispatch_complete(struct call *c)
{
	complete(c);
}

/* c was answered off its owner's thread: hand it over. */
static void
deliver(struct call *c)
{
	if (c->owner != NULL && c->owner->post != NULL)
		c->owner->post(c->owner, c);
	else
		complete(c);
}

/* Answer c with `how` unless someone answered first; d->lock is held.
 * Returns 1 if this answer won. */
static int
answer_locked(struct dispatch *d, struct call *c, int how, const char *msg)
{
	if (atomic_load_explicit(&c->answer, memory_order_relaxed) !=
	    CALL_OPEN)
		return 0;
	atomic_store_explicit(&c->answer, how, memory_order_release);
	c->answer_msg = msg;
	c->answer_ns = clock_mono_ns();
	heap_del(d, c);
	return 1;
}

/* finish_key()'s durable callback: the result is on disk. */
static void
key_durable(void *arg)
{
	struct call *c = arg;

	if (c->key_reply) {
		c->key_reply = 0;
		deliver(c); /* dispatch's reference goes with it */
	}
	call_release(c); /* finish_key's */
}

/*
 * c has its result (its first call under its key): store it, or drop
 * the record, and -- when `reply`, the answer being the result -- hand
 * the reply over once that is durable.  The caller took one reference
 * for this; dispatch's own goes with the delivery.
 */
static void
finish_key(struct call *c, int reply)
{
	struct invocation *inv = &c->inv;
	void *rec = c->idem;
	struct buf text = BUF_INIT;
	struct json_object *body = inv->body;
	const char *code = inv->code, *message = inv->message;
	const char *btext = inv->body_text;
	size_t blen = inv->body_len;
	int status = inv->status;

	c->idem = NULL;
	if (status == 504 && inv->late_status != 0) {
		/* It overran its deadline inline: store what it answered. */
		status = inv->late_status;
		body = inv->late_body;
		code = inv->late_code;
		message = inv->late_message;
		btext = inv->late_text;
		blen = inv->late_len;
	}
	/* Only the member's text is kept: the id is the retry's own. */
	if (idem_storable(status) && (btext != NULL && status < 300 ?
	    buf_put(&text, btext, blen) : request_format_member(&text, status,
	    body, code ? code : "internal_error", message ? message :
	    "out of memory")) < 0)
		status = 500; /* cannot store it: do not pretend to */
	c->key_reply = reply;
	c->idem_be->finish(c->idem_be->store, rec, status, buf_size(&text) ?
	    buf_head(&text) : NULL, buf_size(&text), key_durable, c);
	buf_free(&text);
}

/* ------------------------------------------------------------ events */

/* Do c's events go out?  When its result is the answer (won) and 2xx,
 * or when its key stores a success (a late one too: a retry replays it
 * as a success, so its events must exist). */
static int
publishable(const struct call *c, int won)
{
	const struct invocation *inv = &c->inv;
	int st = inv->status == 504 && inv->late_status != 0 ?
	    inv->late_status : inv->status;

	if (inv->n_events == 0)
		return 0;
	if (won && inv->status >= 200 && inv->status < 300)
		return 1;
	return c->idem != NULL && st >= 200 && st < 300;
}

/* c ran, but its events cannot be kept: it answers 503, and its key
 * (a 5xx) is not stored, so that a retry runs it again. */
static void
events_lost(struct call *c, const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "the command ran, but its events could not "
	    "be stored (%s); none of them will be delivered", why);
	c->inv.late_status = 0;
	invocation_set_error(&c->inv, 503, "unavailable", msg);
}

/* What follows c's stored events: its key's record, then its reply. */
static void
settle_rest(struct call *c, int won)
{
	if (c->idem != NULL) {
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
		finish_key(c, won);
	} else if (won) {
		deliver(c); /* dispatch's reference goes with it */
	}
}

/* outbox_add()'s callback: c's events are on disk (or lost). */
static void
events_durable(void *arg, int ok)
{
	struct call *c = arg;

	if (!ok)
		events_lost(c, "the outbox could not be written");
	settle_rest(c, c->ev_won);
	call_release(c); /* the store's */
}

/*
 * c's result is final (won: it is the answer): store its events before
 * anything else leaves, then its key, then the reply (settle_rest).  An
 * outbox that is full or out of memory makes the answer 503.
 */
static void
settle(struct call *c, int won)
{
	struct invocation *inv = &c->inv;
	int rc;

	if (!publishable(c, won)) {
		invocation_drop_events(inv);
		settle_rest(c, won);
		return;
	}
	c->ev_won = won;
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	rc = outbox_add(c->d->outbox, inv->events, inv->n_events, NULL,
	    inv->request_id, inv->cmd->name, events_durable, c);
	invocation_drop_events(inv); /* taken, or to be dropped */
	if (rc < 0) {
		atomic_fetch_sub_explicit(&c->refs, 1, memory_order_relaxed);
		events_lost(c, rc == -ENOSPC ? "the outbox is full: [events] "
		    "max_pending" : "out of memory");
		settle_rest(c, won);
	}
}

struct outbox *
dispatch_outbox(struct dispatch *d)
{
	return d->outbox;
}

/* The executor took c: its reference, and its deadline on the heap. */
static void
on_taken(struct call *c)
{
	struct dispatch *d = c->d;

	pthread_mutex_lock(&d->lock);
	if (c->adopted) {
		/* dispatch_adopt() took it for the executor already. */
		pthread_mutex_unlock(&d->lock);
		return;
	}
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	if (heap_add(d, c) < 0)
		log_errorx("out of memory: a call's deadline is not watched");
	pthread_mutex_unlock(&d->lock);
}

/* The executor is done with c (ran it, or found it cancelled). */
static void
on_executed(struct call *c)
{
	struct dispatch *d = c->d;
	int won, was;

	metrics_cmd_leave(c->inv.cmd->stats);
	pthread_mutex_lock(&d->lock);
	was = atomic_load_explicit(&c->answer, memory_order_relaxed);
	won = answer_locked(d, c, CALL_RESULT, NULL);
	pthread_mutex_unlock(&d->lock);
	if (won && c->inv.keep_late)
		invocation_check_deadline(&c->inv); /* it is the answer */
	/* Its events, then its key's result, are stored before its reply
	 * leaves; a keyed late one (after a 504, a forced stop, a hang-up)
	 * is stored too. */
	settle(c, won);
	if (!won && was == CALL_ABANDONED)
		dispatch_drop(c);
	call_release(c); /* the executor's */
}

static void *
timer_main(void *arg)
{
	struct dispatch *d = arg;

	thread_use_c_locale();
	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		int64_t now = clock_mono_ns();
		struct call *due = NULL, *c;
		struct timespec ts;

		while (d->n_heap > 0 && d->heap[0]->inv.deadline_ns <= now) {
			c = d->heap[0];
			answer_locked(d, c, CALL_TIMEOUT, NULL);
			c->timer_next = due;
			due = c;
		}
		if (due != NULL) {
			pthread_mutex_unlock(&d->lock);
			while ((c = due) != NULL) {
				due = c->timer_next;
				/* Only the id text of c is read from now on: a
				 * running call may be writing its result. */
				c->answer_msg = c->ex->ops->cancel(c->ex, c) ?
				    "the command did not start before its "
				    "deadline" : "the command did not finish "
				    "before its deadline; its late result will "
				    "be dropped";
				deliver(c);
			}
			pthread_mutex_lock(&d->lock);
			continue;
		}
		if (d->n_heap > 0) {
			ts = clock_mono_ts(d->heap[0]->inv.deadline_ns);
			pthread_cond_timedwait(&d->cond, &d->lock, &ts);
		} else {
			pthread_cond_wait(&d->cond, &d->lock);
		}
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int
dispatch_abandon(struct call *c)
{
	struct dispatch *d = c->d;
	int won;

	pthread_mutex_lock(&d->lock);
	won = answer_locked(d, c, CALL_ABANDONED, NULL);
	pthread_mutex_unlock(&d->lock);
	if (!won)
		return 0; /* an answer is on its way to post: done(c) runs */
	c->ex->ops->cancel(c->ex, c);
	call_release(c); /* dispatch's: done(c) will never run */
	return 1;
}

void
dispatch_force(struct call *c)
{
	struct dispatch *d = c->d;
	int won;

	pthread_mutex_lock(&d->lock);
	won = answer_locked(d, c, CALL_FORCED, NULL);
	pthread_mutex_unlock(&d->lock);
	if (!won)
		return;
	c->answer_msg = c->ex->ops->cancel(c->ex, c) ? "the daemon is "
	    "shutting down; the call was not started" : "the daemon is "
	    "shutting down; the call did not finish in time and its result "
	    "will be dropped";
	complete(c);
}

/* ------------------------------------------------------------ replies */

int
dispatch_status(const struct call *c)
{
	switch (atomic_load_explicit(&c->answer, memory_order_acquire)) {
	case CALL_RESULT:
		return c->inv.status;
	case CALL_TIMEOUT:
		return 504;
	case CALL_REPLAY:
		return c->replay.status;
	default:
		return 503;
	}
}

/* Status, code, message and duration of c's answer. */
static void
answer_of(const struct call *c, int *status, const char **code,
    const char **msg, int64_t *dur)
{
	const struct invocation *inv = &c->inv;

	*status = dispatch_status(c);
	if (atomic_load_explicit(&c->answer, memory_order_acquire) ==
	    CALL_RESULT) {
		*code = inv->status < 300 ? NULL : inv->code ? inv->code :
		    "internal_error";
		*msg = inv->status < 300 ? NULL : inv->message ?
		    inv->message : "out of memory";
		*dur = inv->end_ns - inv->start_ns;
		return;
	}
	*code = *status == 504 ? "timeout" : "unavailable";
	*msg = c->answer_msg;
	*dur = c->answer_ns - inv->start_ns;
}

/* dispatch_reply() of a replayed result: counted as a call of its
 * command, and always logged. */
static int
reply_replay(struct call *c, struct buf *out, long long unix_ms)
{
	struct invocation *inv = &c->inv;
	struct log_ctx lc = LOG_CTX_INIT;
	static const char msg[] = "replayed the stored result of this "
	    "idempotency_key; the command did not run";
	static const char bad[] = "the stored result of this idempotency_key "
	    "is not valid JSON; it was not replayed";
	int status = c->replay.status, rc;
	const char *what = msg;

	rc = request_format_stored(out, inv->id_text, status, c->replay.text,
	    c->replay.len);
	if (rc == -EILSEQ) {
		/* A record someone else wrote (a shared bucket) that this
		 * daemon would never have stored: it does not go out. */
		status = c->replay.status = 500;
		what = bad;
		rc = request_format_error_text(out, inv->id_text, status,
		    "bad_reply", bad);
	}
	if (rc < 0)
		return -ENOMEM;
	metrics_cmd_record(inv->cmd->stats, status, 0);
	invocation_log_ctx(inv, &lc);
	lc.status = status;
	lc.duration_ms = (double)(clock_mono_ns() - inv->start_ns) / 1e6;
	lc.unix_ms = unix_ms;
	if (what == bad)
		lc.error_code = "bad_reply";
	rc = reply_finish(c->d->cfg, c->d->stats, out, inv->want_request_id,
	    &lc, what);
	if (!c->d->cfg->access_log && status < 400)
		log_emit_str(LOGL_INFO, &lc, msg);
	return rc;
}

int
dispatch_reply(struct call *c, struct buf *out, long long unix_ms)
{
	struct invocation *inv = &c->inv;
	struct log_ctx lc;
	const char *code, *msg;
	int64_t dur;
	int status, rc;

	if (atomic_load_explicit(&c->answer, memory_order_acquire) ==
	    CALL_REPLAY)
		return reply_replay(c, out, unix_ms);
	answer_of(c, &status, &code, &msg, &dur);
	if (code == NULL && inv->body_text != NULL) {
		rc = request_format_checked(out, inv->id_text, status,
		    inv->body_text, inv->body_len);
	} else if (code == NULL) {
		char why[160];

		rc = request_format_body(out, inv->id_text, status, inv->body,
		    why, sizeof(why));
		if (rc == -EILSEQ) {
			/* The executor is done with inv: its result. */
			invocation_refuse_body(inv, why);
			answer_of(c, &status, &code, &msg, &dur);
		}
	}
	if (code != NULL)
		rc = request_format_error_text(out, inv->id_text, status, code,
		    msg);
	if (rc < 0)
		return -ENOMEM;
	metrics_cmd_record(inv->cmd->stats, status, (uint64_t)dur / 1000);
	/* A 503 of dispatch's own (shutdown) is not the plugin's doing. */
	rollback_note(inv->cmd->gen, status >= 500 && (status == 504 ||
	    atomic_load_explicit(&c->answer, memory_order_acquire) ==
	    CALL_RESULT));
	/* The common answer needs no log context: done. */
	if (!reply_finish_needed(c->d->cfg, inv->want_request_id, status,
	    atomic_load_explicit(&inv->cold_start, memory_order_relaxed)))
		return 0;
	lc = (struct log_ctx)LOG_CTX_INIT;
	invocation_log_ctx(inv, &lc);
	lc.status = status;
	lc.error_code = code;
	lc.duration_ms = (double)dur / 1e6;
	lc.unix_ms = unix_ms;
	return reply_finish(c->d->cfg, c->d->stats, out, inv->want_request_id,
	    &lc, code == NULL ? (c->owner && c->owner->finished_msg ?
	    c->owner->finished_msg : "call finished") : msg);
}

void
dispatch_drop(struct call *c)
{
	struct invocation *inv = &c->inv;
	struct log_ctx lc = LOG_CTX_INIT;
	const char *code, *msg;
	int64_t dur;
	int status;

	invocation_log_ctx(inv, &lc);
	if (atomic_load_explicit(&c->answer, memory_order_acquire) ==
	    CALL_ABANDONED) {
		/* The executor's own word on it: ran, or never started. */
		if (inv->status == 0) {
			log_client_str(LOGL_WARN, &lc, "the client closed the "
			    "connection before the call ran; it was not run");
			return;
		}
		status = inv->status;
		code = inv->code;
		dur = inv->end_ns - inv->start_ns;
	} else {
		answer_of(c, &status, &code, &msg, &dur);
		if (atomic_load_explicit(&c->answer, memory_order_acquire) !=
		    CALL_RESULT)
			return; /* dispatch's own answer: nobody waited */
	}
	metrics_cmd_record(inv->cmd->stats, status, (uint64_t)dur / 1000);
	rollback_note(inv->cmd->gen, status >= 500);
	lc.status = status;
	lc.error_code = code;
	lc.duration_ms = (double)dur / 1e6;
	log_client_str(status >= 500 ? LOGL_ERROR : LOGL_WARN, &lc,
	    "the client closed the connection before the reply; the result "
	    "was dropped");
}

/* ------------------------------------------------------------ watches */

static __thread struct dispatch_watch *cur_watch;

/* An inline call past its deadline is adopted only once it has run this
 * long: a call a few ms late is cheaper to let finish. */
#define ADOPT_MIN_NS 20000000LL

void
dispatch_thread_watch(struct dispatch_watch *w)
{
	cur_watch = w;
}

/* Publish c on this thread's watch, if it has one.  Returns the sequence
 * number of this call there, or 0. */
static uint64_t
watch_enter(struct call *c)
{
	struct dispatch_watch *w = cur_watch;
	uint64_t seq;

	if (w == NULL || w->owner != c->owner)
		return 0; /* another owner's call made on this thread */
	seq = (atomic_load_explicit(&w->state, memory_order_relaxed) >> 2) + 1;
	atomic_store_explicit(&w->call, c, memory_order_relaxed);
	atomic_store_explicit(&w->start_ns, c->inv.start_ns,
	    memory_order_relaxed);
	atomic_store_explicit(&w->deadline_ns, c->inv.deadline_ns,
	    memory_order_relaxed);
	atomic_store_explicit(&w->state, seq << 2 | WATCH_RUNNING,
	    memory_order_release);
	return seq;
}

/* The call of seq returned: 1 if it is still ours, 0 if it was adopted. */
static int
watch_leave(uint64_t seq)
{
	struct dispatch_watch *w = cur_watch;
	uint_fast64_t want = seq << 2 | WATCH_RUNNING;

	while (!atomic_compare_exchange_strong_explicit(&w->state, &want,
	    seq << 2 | WATCH_IDLE, memory_order_acq_rel,
	    memory_order_acquire)) {
		if ((want & 3) == WATCH_ADOPTED)
			return 0;
		/* CLAIMING: the adopter decides in a moment. */
		sched_yield();
		want = seq << 2 | WATCH_RUNNING;
	}
	return 1;
}

struct call *
dispatch_adopt(struct dispatch *d, struct dispatch_watch *w, int64_t now_ns,
    int64_t stuck_ns)
{
	uint_fast64_t s = atomic_load_explicit(&w->state, memory_order_acquire);
	struct call *c;
	int64_t run;
	int ok;

	if ((s & 3) != WATCH_RUNNING)
		return NULL;
	c = atomic_load_explicit(&w->call, memory_order_relaxed);
	run = now_ns - atomic_load_explicit(&w->start_ns, memory_order_relaxed);
	/* Stuck, or past its deadline -- but a call only a little slow
	 * is left alone: adopting costs its thread. */
	if (run < stuck_ns && (run < ADOPT_MIN_NS || now_ns <
	    atomic_load_explicit(&w->deadline_ns, memory_order_relaxed)))
		return NULL;
	/* Once CLAIMING, the watched thread cannot leave its call: c is
	 * alive (the values read above were of this very call, or the
	 * sequence number would differ). */
	if (!atomic_compare_exchange_strong(&w->state, &s,
	    (s & ~(uint_fast64_t)3) | WATCH_CLAIMING))
		return NULL;
	pthread_mutex_lock(&d->lock);
	/* Not taken by an executor, not answered, and the owner's. */
	ok = c->owner == w->owner && atomic_load(&c->refs) == 1 &&
	    atomic_load(&c->answer) == CALL_OPEN && c->heap_idx == NO_HEAP;
	if (ok && heap_add(d, c) < 0)
		ok = 0;
	if (ok) {
		/* Running: a 504 says it did not finish, not that it did
		 * not start. */
		invocation_start(&c->inv);
		c->adopted = 1;
		atomic_fetch_add(&c->refs, 1); /* the executor's */
	}
	pthread_mutex_unlock(&d->lock);
	if (!ok) {
		atomic_store(&w->state, (s & ~(uint_fast64_t)3) | WATCH_RUNNING);
		return NULL;
	}
	if (c->inv.cmd->sched != NULL)
		atomic_store(&c->inv.cmd->sched->offloaded, 1);
	atomic_store_explicit(&w->state, (s & ~(uint_fast64_t)3) |
	    WATCH_ADOPTED, memory_order_release);
	return c;
}

/* ------------------------------------------------------------ the path */

int
dispatch_call(struct dispatch *d, const struct dispatch_args *a,
    struct request *req, struct call **callp, int *status, const char **code,
    char *err, size_t errlen)
{
	const struct idem_backend *be = a->idem ? a->idem : &d->local;
	void *rec = NULL;
	struct idem_result res = { 0, NULL, 0 };
	enum idem_verdict v = IDEM_RUN;
	struct command *cmd;
	struct call *c;
	uint64_t seq;
	int rc;

	*callp = NULL;
	if ((cmd = registry_lookup(d->reg, a->reader, req->command)) == NULL) {
		*status = 404;
		*code = "unknown_command";
		snprintf(err, errlen, "no plugin registers the command "
		    "'%.200s'", req->command);
		return -1;
	}
	if ((rc = envelope_check_fields(req, cmd->fields, err, errlen)) < 0 ||
	    (req->idem_key != NULL && envelope_payload(req) == NULL)) {
		int oom = rc != -1;

		metrics_cmd_record(cmd->stats, oom ? 503 : 400, 0);
		generation_release(cmd->gen);
		*status = oom ? 503 : 400;
		*code = oom ? "unavailable" : "invalid_payload";
		if (oom)
			snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (req->idem_key != NULL) {
		uint64_t fp[2];
		int64_t timeout = req->timeout_ms ? req->timeout_ms :
		    d->cfg->default_timeout_ms;

		request_fingerprint(cmd->name, envelope_payload(req), fp);
		v = be->begin(be->store, a->idem == NULL &&
		    d->cfg->idempotency_shared ? "*" : a->scope ? a->scope :
		    "-", cmd->name, req->idem_key, req->idem_key_len, fp,
		    a->rid_ms + timeout, &rec, &res);
		if (v == IDEM_REPLAY)
			idem_count_replay(d->idem);
		if (v == IDEM_UNAVAILABLE) {
			*status = 503;
			*code = "unavailable";
			snprintf(err, errlen, "the shared idempotency store (the "
			    "JetStream bucket) cannot be reached; the call was "
			    "not run: retry later");
			metrics_cmd_record(cmd->stats, *status, 0);
			generation_release(cmd->gen);
			return -1;
		}
		if (v == IDEM_BUSY || v == IDEM_MISMATCH) {
			*status = v == IDEM_BUSY ? 409 : 422;
			*code = v == IDEM_BUSY ? "idempotency_in_progress" :
			    "idempotency_key_reused";
			snprintf(err, errlen, v == IDEM_BUSY ? "a call with "
			    "this idempotency_key is still running; retry "
			    "later" : "this idempotency_key was used with "
			    "another payload");
			if (v == IDEM_BUSY)
				idem_count_conflict(d->idem);
			else
				idem_count_mismatch(d->idem);
			metrics_cmd_record(cmd->stats, *status, 0);
			generation_release(cmd->gen);
			return -1;
		}
	}
	if ((c = call_alloc()) == NULL || invocation_init_req(&c->inv, cmd,
	    req, a->rid_ms, a->rid_src, a->rid_seq) < 0) {
		if (rec != NULL)
			be->finish(be->store, rec, 503, NULL, 0, NULL, NULL);
		free(res.text);
		free(c);
		generation_release(cmd->gen);
		*status = 503;
		*code = "unavailable";
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->inv.want_request_id = req->want_request_id;
	c->inv.async = req->async;
	c->inv.peer_pid = a->pid;
	c->inv.peer_uid = a->uid;
	/* Inline on a loop, where the last call ended (clock_pass). */
	c->inv.start_ns = clock_mono_ns_passed();
	c->inv.deadline_ns = c->inv.start_ns + (req->timeout_ms ?
	    req->timeout_ms : d->cfg->default_timeout_ms) * 1000000;
	/* A keyed call's result after its 504 is stored: keep it real, and
	 * make it 504 here only when it is the answer. */
	c->inv.keep_late = rec != NULL;
	c->d = d;
	c->ex = d->exec[cmd->gen->isolation];
	atomic_init(&c->refs, 1);
	atomic_init(&c->answer, CALL_OPEN);
	c->answer_msg = NULL;
	c->answer_ns = 0;
	c->pool_only = a->pool_only;
	c->heap_idx = NO_HEAP;
	c->owner = a->owner;
	c->done = a->done;
	c->owner_arg = a->owner_arg;
	c->owner_slot = NULL;
	c->taken = on_taken;
	c->executed = on_executed;
	c->timer_next = NULL;
	c->idem = rec;
	c->idem_be = be;
	c->replay = res;
	c->key_reply = 0;
	if (v == IDEM_REPLAY) {
		atomic_store_explicit(&c->answer, CALL_REPLAY,
		    memory_order_relaxed);
		complete(c);
		return DISPATCH_DONE;
	}
	metrics_cmd_enter(cmd->stats);

	c->adopted = 0;
	seq = watch_enter(c);
	rc = c->ex->ops->submit(c->ex, c);
	if (seq != 0 && !watch_leave(seq)) {
		/* Adopted while it ran: it is pending, its owner's state is
		 * another thread's now.  Finish as an executor would. */
		if (rc == EXEC_REJECTED) {
			c->inv.end_ns = clock_mono_ns();
			invocation_set_error(&c->inv, 503, "unavailable",
			    "the command queue is full; retry later");
		}
		if (rc != EXEC_QUEUED)
			c->executed(c);
		cur_watch->lost(cur_watch); /* does not return */
	}
	if (rc == EXEC_QUEUED) {
		if (a->owner != NULL && a->owner->post != NULL)
			*callp = c;
		return DISPATCH_PENDING;
	}
	/* Nobody else has seen c: no lock needed. */
	metrics_cmd_leave(cmd->stats);
	if (rc == EXEC_DONE) {
		atomic_store_explicit(&c->answer, CALL_RESULT,
		    memory_order_relaxed);
		if (c->inv.keep_late)
			invocation_check_deadline(&c->inv);
		if (publishable(c, 1)) {
			/* Its reply waits for its stored events. */
			if (a->owner != NULL && a->owner->post != NULL)
				*callp = c;
			settle(c, 1);
			return DISPATCH_PENDING;
		}
		invocation_drop_events(&c->inv);
		if (c->idem != NULL) {
			/* Its reply waits for its stored result. */
			if (a->owner != NULL && a->owner->post != NULL)
				*callp = c;
			atomic_fetch_add_explicit(&c->refs, 1,
			    memory_order_relaxed);
			finish_key(c, 1);
			return DISPATCH_PENDING;
		}
	} else {
		c->inv.end_ns = clock_mono_ns();
		atomic_store_explicit(&c->answer, CALL_REFUSED,
		    memory_order_relaxed);
		c->answer_ns = c->inv.end_ns;
		c->answer_msg = "the command queue is full; retry later";
		if (c->idem != NULL) {
			be->finish(be->store, c->idem, 503, NULL, 0, NULL,
			    NULL);
			c->idem = NULL;
		}
	}
	complete(c);
	return DISPATCH_DONE;
}

/* ------------------------------------------------------------ life */

/* Open the idempotency store in state_dir (made 0700 if missing).
 * Returns 0, or -1 with the path and the reason in err. */
static int
open_store(struct dispatch *d, char *err, size_t errlen)
{
	const char *dir = d->cfg->state_dir;
	char path[4096];
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "state_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state_dir %s: %s", dir, errno ?
		    strerror(errno) : "not a directory");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/events.db", dir);
	if ((d->outbox = outbox_open(path, d->cfg, err, errlen)) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/idempotency.db", dir);
	d->idem = idem_open(path, (int64_t)d->cfg->idempotency_ttl_s * 1000,
	    (size_t)d->cfg->idempotency_memory, err, errlen);
	if (d->idem == NULL)
		return -1;
	idem_backend_local(d->idem, &d->local);
	return 0;
}

struct dispatch *
dispatch_new(const struct config *cfg, struct registry *reg,
    struct daemon_stats *stats, char *err, size_t errlen)
{
	struct dispatch *d = calloc(1, sizeof(*d));

	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->cfg = cfg;
	d->reg = reg;
	d->stats = stats;
	pthread_mutex_init(&d->lock, NULL);
	thread_cond_init(&d->cond);
	if (open_store(d, err, errlen) < 0) {
		dispatch_free(d);
		return NULL;
	}
	if ((d->exec[ISOLATION_NONE] = exec_pool_new(cfg)) == NULL) {
		snprintf(err, errlen, "cannot start the pool: %s",
		    strerror(errno));
		dispatch_free(d);
		return NULL;
	}
	if ((d->exec[ISOLATION_PROCESS] = exec_proc_new(cfg)) == NULL) {
		snprintf(err, errlen, "cannot make the process executor: %s",
		    strerror(errno));
		if (dispatch_stop(d, clock_mono_ns() + 1000000000LL) == 0)
			dispatch_free(d);
		return NULL;
	}
	if ((errno = pthread_create(&d->timer, NULL, timer_main, d)) != 0) {
		snprintf(err, errlen, "cannot start the deadline timer: %s",
		    strerror(errno));
		/* No call was taken: the pool's threads leave at once. */
		if (dispatch_stop(d, clock_mono_ns() + 1000000000LL) == 0)
			dispatch_free(d);
		return NULL;
	}
	d->timer_started = 1;
	return d;
}

int
dispatch_set_executor(struct dispatch *d, int kind, struct executor *ex)
{
	if (kind < 0 || kind >= ISOLATION_KINDS || d->exec[kind] != NULL)
		return -EEXIST;
	d->exec[kind] = ex;
	return 0;
}

void
dispatch_stats(struct dispatch *d, struct json_object *into)
{
	struct json_object *o;
	struct idem_stats st;

	for (int k = 0; k < ISOLATION_KINDS; k++)
		if (d->exec[k] != NULL)
			d->exec[k]->ops->stats(d->exec[k], into);
	if (d->outbox != NULL)
		outbox_stats(d->outbox, into);
	if (d->idem == NULL)
		return;
	idem_get_stats(d->idem, &st);
	o = json_object_new_object();
	json_object_object_add(o, "replays", json_object_new_uint64(st.replays));
	json_object_object_add(o, "conflicts",
	    json_object_new_uint64(st.conflicts));
	json_object_object_add(o, "mismatches",
	    json_object_new_uint64(st.mismatches));
	json_object_object_add(o, "stored", json_object_new_uint64(st.stored));
	json_object_object_add(o, "records", json_object_new_uint64(st.records));
	json_object_object_add(into, "idempotency", o);
}

int
dispatch_stop(struct dispatch *d, int64_t deadline_ns)
{
	/* No new deliveries; those in flight end with the executors. */
	outbox_stop(d->outbox);
	for (int k = 0; k < ISOLATION_KINDS; k++)
		if (d->exec[k] != NULL &&
		    d->exec[k]->ops->stop(d->exec[k], deadline_ns) < 0)
			return -1;
	if (d->timer_started) {
		pthread_mutex_lock(&d->lock);
		d->stop = 1;
		pthread_cond_signal(&d->cond);
		pthread_mutex_unlock(&d->lock);
		pthread_join(d->timer, NULL);
		d->timer_started = 0;
	}
	/* Last: stored results release the replies that waited for them. */
	idem_close(d->idem);
	d->idem = NULL;
	outbox_close(d->outbox);
	d->outbox = NULL;
	return 0;
}

void
dispatch_free(struct dispatch *d)
{
	if (d == NULL)
		return;
	for (int k = 0; k < ISOLATION_KINDS; k++)
		if (d->exec[k] != NULL)
			d->exec[k]->ops->free(d->exec[k]);
	idem_close(d->idem);
	outbox_close(d->outbox);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d->heap);
	free(d);
}
