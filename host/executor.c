/*
 * executor.c - run commands inline or on a pool of threads.
 *
 * The fast path runs a command on the event-loop thread that read it, so a
 * fast command costs no hand-off.  A command that may block is kept off
 * that thread: declared CMDHOST_BLOCKING, or observed to overrun the inline
 * budget once (then its calls go to the pool until FAST_RUNS of them in a
 * row finish within the budget there).  A SERIAL command's calls pass a
 * gate one at a time; calls that find it closed wait in a list, holding no
 * thread, and the call that leaves the gate hands it to the next.
 */
#include "executor.h"

#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "request.h"

#define FAST_RUNS 16

struct executor {
	const struct config *cfg;
	pthread_mutex_t lock;
	pthread_cond_t work;     /* signalled when the queue gains an item */
	pthread_cond_t idle;     /* signalled when a thread exits */
	struct invocation *head, *tail;
	int queued;
	int running;             /* threads alive */
	int stopping;
	int n_threads;
	pthread_t *threads;
	int64_t budget_ns;
};

int64_t
executor_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void
executor_thread_locale(void)
{
	/*
	 * json-c's parser switches to a "C" numeric locale around every call
	 * with duplocale() and newlocale(), which take glibc's global locale
	 * lock -- unless the thread already uses the static C locale object,
	 * which duplocale() returns as it is.  The daemon never leaves the C
	 * locale, so this changes nothing but the lock: parsing on several
	 * threads no longer serializes.
	 */
	locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);

	if (c != (locale_t)0)
		uselocale(c);
}

void
executor_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

static struct invocation *
inv_of(cmdhost_ctx *ctx)
{
	return (struct invocation *)(void *)ctx;
}

/*
 * Each event-loop thread keeps a few freed invocations for reuse: they are
 * made and freed on that thread (pool completions come back to it).
 */
#define INV_CACHE_MAX 64
static __thread struct invocation *inv_cache;
static __thread int inv_cached;

void
executor_thread_cache_free(void)
{
	struct invocation *inv;

	while ((inv = inv_cache) != NULL) {
		inv_cache = inv->next;
		free(inv);
	}
	inv_cached = 0;
}

struct invocation *
invocation_new(struct command *cmd, struct json_object *root,
    struct json_object *id, struct json_object *payload, int64_t rid_ms,
    unsigned rid_loop, uint64_t rid_seq)
{
	struct invocation *inv;

	if ((inv = inv_cache) != NULL) {
		inv_cache = inv->next;
		inv_cached--;
		memset(inv, 0, sizeof(*inv));
	} else if ((inv = calloc(1, sizeof(*inv))) == NULL) {
		return NULL;
	}
	inv->ctx.api = loader_api();
	inv->cmd = cmd;
	inv->root = root;
	inv->id = id;
	inv->payload = payload;
	atomic_init(&inv->state, INV_QUEUED);
	inv->peer_pid = -1;
	inv->peer_uid = -1;
	request_id_make(inv->request_id, rid_ms, rid_loop, rid_seq);
	if (id != NULL && (inv->id_text = request_id_format(id, inv->id_buf,
	    sizeof(inv->id_buf))) == NULL) {
		/* Too long for the buffer: a copy of json-c's text. */
		if ((inv->id_text = strdup(request_id_text(id))) == NULL) {
			free(inv);
			return NULL;
		}
	}
	return inv;
}

struct invocation *
invocation_for_request(struct registry *reg, int reader, struct request *req,
    int64_t default_timeout_ms, int64_t rid_ms, unsigned rid_src,
    uint64_t rid_seq, int *status, const char **code, char *err,
    size_t errlen)
{
	struct command *cmd;
	struct invocation *inv;

	if ((cmd = registry_lookup(reg, reader, req->command)) == NULL) {
		*status = 404;
		*code = "unknown_command";
		snprintf(err, errlen, "no plugin registers the command "
		    "'%.200s'", req->command);
		return NULL;
	}
	if (request_check_fields(cmd->fields, req->payload, err, errlen) < 0) {
		metrics_cmd_record(cmd->stats, 400, 0);
		generation_release(cmd->gen);
		*status = 400;
		*code = "invalid_payload";
		return NULL;
	}
	if ((inv = invocation_new(cmd, req->root, req->id, req->payload,
	    rid_ms, rid_src, rid_seq)) == NULL) {
		generation_release(cmd->gen);
		*status = 503;
		*code = "unavailable";
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	req->root = NULL; /* inv owns it now */
	inv->want_request_id = req->want_request_id;
	inv->start_ns = executor_now_ns();
	inv->deadline_ns = inv->start_ns + (req->timeout_ms ? req->timeout_ms :
	    default_timeout_ms) * 1000000;
	return inv;
}

int
executor_cancel(struct invocation *inv)
{
	int expected = INV_QUEUED;

	return atomic_compare_exchange_strong(&inv->state, &expected,
	    INV_CANCELLED) || expected == INV_CANCELLED;
}

struct cmd_sched *
executor_sched_new(void)
{
	struct cmd_sched *sc = calloc(1, sizeof(*sc));

	if (sc == NULL)
		return NULL;
	pthread_mutex_init(&sc->lock, NULL);
	atomic_init(&sc->offloaded, 0);
	atomic_init(&sc->fast_runs, 0);
	return sc;
}

void
executor_sched_free(struct cmd_sched *sc)
{
	if (sc == NULL)
		return;
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

void
invocation_free(struct invocation *inv)
{
	if (inv == NULL)
		return;
	if (inv->root != NULL)
		json_object_put(inv->root);
	if (inv->body != NULL)
		json_object_put(inv->body);
	free(inv->payload_text);
	if (inv->id_text != NULL && inv->id_text != inv->id_buf)
		free((char *)inv->id_text);
	free(inv->code);
	free(inv->message);
	if (inv->cmd != NULL)
		generation_release(inv->cmd->gen);
	if (inv_cached < INV_CACHE_MAX) {
		inv->next = inv_cache;
		inv_cache = inv;
		inv_cached++;
		return;
	}
	free(inv);
}

const char *
invocation_request_id(struct invocation *inv)
{
	return inv->request_id;
}

void
invocation_log_ctx(const struct invocation *inv, struct log_ctx *lc)
{
	const struct generation *g = inv->cmd->gen;

	lc->request_id = inv->request_id;
	lc->id = inv->id_text;
	if (inv->cmd->log_frag != NULL) {
		lc->frag = inv->cmd->log_frag;
	} else {
		lc->command = inv->cmd->name;
		lc->plugin = g->name;
		lc->version = g->version;
		lc->generation = (long long)g->number;
	}
	lc->cold_start = atomic_load_explicit(&inv->cold_start,
	    memory_order_relaxed);
	lc->pid = inv->peer_pid;
	lc->uid = inv->peer_uid;
}

void
invocation_set_error(struct invocation *inv, int status, const char *code,
    const char *message)
{
	if (inv->body != NULL) {
		json_object_put(inv->body);
		inv->body = NULL;
	}
	free(inv->code);
	free(inv->message);
	inv->code = strdup(code ? code : "command_failed");
	inv->message = strdup(message ? message : "");
	if (inv->code == NULL || inv->message == NULL) {
		/* Static strings are never freed (see invocation_free). */
		free(inv->code);
		free(inv->message);
		inv->code = NULL;
		inv->message = NULL;
		inv->oom = 1;
	}
	inv->status = status;
	inv->finished = 1;
}

/* ------------------------------------------------------------ SDK calls */

void *
executor_ctx_state(cmdhost_ctx *ctx)
{
	return inv_of(ctx)->cmd->gen->state;
}

struct json_object *
executor_ctx_payload(cmdhost_ctx *ctx)
{
	return inv_of(ctx)->payload;
}

const char *
executor_ctx_payload_text(cmdhost_ctx *ctx, size_t *len)
{
	struct invocation *inv = inv_of(ctx);

	if (inv->payload_text == NULL) {
		size_t n = 0;
		const char *s = json_object_to_json_string_length(inv->payload,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);

		inv->payload_text = strdup(s ? s : "null");
		inv->payload_len = inv->payload_text ? strlen(inv->payload_text) :
		    0;
	}
	if (len != NULL)
		*len = inv->payload_len;
	return inv->payload_text ? inv->payload_text : "null";
}

const char *
executor_ctx_request_id(cmdhost_ctx *ctx)
{
	return invocation_request_id(inv_of(ctx));
}

const char *
executor_ctx_command(cmdhost_ctx *ctx)
{
	return inv_of(ctx)->cmd->name;
}

int64_t
executor_ctx_time_left_ms(cmdhost_ctx *ctx)
{
	int64_t left = inv_of(ctx)->deadline_ns - executor_now_ns();

	return left > 0 ? left / 1000000 : 0;
}

void
executor_ctx_log(cmdhost_ctx *ctx, int level, const char *message)
{
	struct invocation *inv = inv_of(ctx);
	struct log_ctx lc = LOG_CTX_INIT;

	if (level < LOGL_DEBUG || level > LOGL_ERROR)
		level = LOGL_INFO;
	if (!log_enabled(level))
		return;
	invocation_log_ctx(inv, &lc);
	log_emit_str(level, &lc, message ? message : "");
}

int
executor_ctx_respond(cmdhost_ctx *ctx, int status, struct json_object *body)
{
	struct invocation *inv = inv_of(ctx);

	if (inv->finished) {
		if (body != NULL)
			json_object_put(body);
		return -1;
	}
	if (status < 200 || status > 299) {
		char msg[96];

		if (body != NULL)
			json_object_put(body);
		snprintf(msg, sizeof(msg), "command replied with status %d, "
		    "which is not 2xx", status);
		invocation_set_error(inv, 500, "command_failed", msg);
		return -1;
	}
	inv->status = status;
	inv->body = body;
	inv->finished = 1;
	return 0;
}

int
executor_ctx_fail(cmdhost_ctx *ctx, int status, const char *code,
    const char *message)
{
	struct invocation *inv = inv_of(ctx);

	if (inv->finished)
		return -1;
	if (status < 400 || status > 599)
		status = 500;
	if (code == NULL || *code == '\0')
		code = "command_failed";
	invocation_set_error(inv, status, code,
	    message ? message : "command failed");
	return 0;
}

struct json_object *
executor_ctx_client_id(cmdhost_ctx *ctx)
{
	return inv_of(ctx)->id;
}

/* ------------------------------------------------------------ running */

void
executor_run_call(struct invocation *inv)
{
	struct command *cmd = inv->cmd;
	int rc;

	/* The first call a generation runs is its cold start (a call refused
	 * or expired before it ran is not); after it, a plain load of a flag
	 * that no longer changes. */
	if (!atomic_load_explicit(&cmd->gen->served, memory_order_relaxed) &&
	    !atomic_exchange_explicit(&cmd->gen->served, 1,
	    memory_order_relaxed))
		atomic_store_explicit(&inv->cold_start, 1,
		    memory_order_relaxed);

	if (cmd->validate != NULL) {
		rc = cmd->validate(&inv->ctx);
		if (!inv->finished && rc != 0)
			invocation_set_error(inv, 400, "invalid_payload",
			    "payload rejected by validate");
	}
	if (!inv->finished) {
		rc = cmd->execute(&inv->ctx);
		if (!inv->finished) {
			char msg[80];

			if (rc != 0)
				snprintf(msg, sizeof(msg), "command failed "
				    "(execute returned %d)", rc);
			else
				snprintf(msg, sizeof(msg), "command returned "
				    "without a reply");
			invocation_set_error(inv, 500, "command_failed", msg);
		}
	}
	inv->end_ns = executor_now_ns();
	if (inv->end_ns > inv->deadline_ns)
		invocation_set_error(inv, 504, "timeout",
		    "the command did not finish before its deadline");
}

static void push(struct executor *ex, struct invocation *inv);

/* Learn from one run of cmd that took `took` ns: a run past the budget
 * sends the command to the pool; FAST_RUNS fast pool runs in a row bring
 * it back inline.  Blocking commands always stay on the pool. */
static void
adapt(struct executor *ex, struct command *cmd, int64_t took, int on_pool)
{
	struct cmd_sched *sc = cmd->sched;
	struct log_ctx lc = LOG_CTX_INIT;

	if (ex->budget_ns <= 0 || (cmd->flags & CMDHOST_BLOCKING))
		return;
	lc.command = cmd->name;
	lc.plugin = cmd->gen->name;
	lc.duration_ms = (double)took / 1e6;
	if (took > ex->budget_ns) {
		atomic_store_explicit(&sc->fast_runs, 0, memory_order_relaxed);
		if (atomic_exchange(&sc->offloaded, 1) == 0)
			log_emit(LOGL_INFO, &lc, "command overran the inline "
			    "budget of %d us; its calls run on the pool until "
			    "%d in a row are fast", ex->cfg->inline_budget_us,
			    FAST_RUNS);
	} else if (on_pool && atomic_load_explicit(&sc->offloaded,
	    memory_order_relaxed) &&
	    atomic_fetch_add(&sc->fast_runs, 1) + 1 >= FAST_RUNS) {
		atomic_store(&sc->fast_runs, 0);
		if (atomic_exchange(&sc->offloaded, 0) == 1)
			log_emit(LOGL_INFO, &lc, "command is fast again; its "
			    "calls run inline");
	}
}

/* A SERIAL call finished (or was skipped): open the gate for the next
 * waiting call, which goes to the pool, or close it. */
static void
gate_leave(struct executor *ex, struct cmd_sched *sc)
{
	struct invocation *next;

	pthread_mutex_lock(&sc->lock);
	if ((next = sc->head) != NULL) {
		sc->head = next->next;
		if (sc->head == NULL)
			sc->tail = NULL;
		sc->waiting--;
	} else {
		sc->busy = 0;
	}
	pthread_mutex_unlock(&sc->lock);
	if (next != NULL)
		push(ex, next); /* it holds the gate now */
}

static void *
pool_main(void *arg)
{
	struct executor *ex = arg;
	struct invocation *inv;

	executor_thread_locale();
	/* Pool work is the slow kind: it must not preempt the event loops
	 * when it wakes up (SCHED_BATCH turns off wakeup preemption). */
	{
		struct sched_param sp = { 0 };

		pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	}
	pthread_mutex_lock(&ex->lock);
	for (;;) {
		int expected = INV_QUEUED;
		struct command *cmd;
		int64_t start;

		while (ex->head == NULL && !ex->stopping)
			pthread_cond_wait(&ex->work, &ex->lock);
		if (ex->head == NULL)
			break; /* stopping, and nothing left */
		inv = ex->head;
		ex->head = inv->next;
		if (ex->head == NULL)
			ex->tail = NULL;
		ex->queued--;
		pthread_mutex_unlock(&ex->lock);

		inv->next = NULL;
		cmd = inv->cmd;
		start = executor_now_ns();
		if (!atomic_compare_exchange_strong(&inv->state, &expected,
		    INV_RUNNING)) {
			/* Answered already (timeout, shutdown, peer gone). */
			inv->end_ns = start;
		} else if (start >= inv->deadline_ns) {
			inv->end_ns = start;
			invocation_set_error(inv, 504, "timeout", "the command "
			    "waited in the queue past its deadline");
		} else {
			executor_run_call(inv);
			adapt(ex, cmd, inv->end_ns - start, 1);
		}
		if (cmd->flags & CMDHOST_SERIAL)
			gate_leave(ex, cmd->sched);
		inv->done(inv);
		pthread_mutex_lock(&ex->lock);
	}
	ex->running--;
	pthread_cond_broadcast(&ex->idle);
	pthread_mutex_unlock(&ex->lock);
	return NULL;
}

struct executor *
executor_new(const struct config *cfg)
{
	struct executor *ex = calloc(1, sizeof(*ex));
	pthread_attr_t attr;
	int err = 0;

	if (ex == NULL)
		return NULL;
	ex->cfg = cfg;
	ex->budget_ns = (int64_t)cfg->inline_budget_us * 1000;
	pthread_mutex_init(&ex->lock, NULL);
	pthread_cond_init(&ex->work, NULL);
	executor_cond_init(&ex->idle);
	ex->threads = calloc((size_t)cfg->pool_threads, sizeof(pthread_t));
	if (ex->threads == NULL) {
		executor_free(ex);
		errno = ENOMEM;
		return NULL;
	}
	pthread_attr_init(&attr);
	for (int i = 0; i < cfg->pool_threads; i++) {
		if ((err = pthread_create(&ex->threads[i], &attr, pool_main,
		    ex)) != 0)
			break;
		pthread_mutex_lock(&ex->lock);
		ex->running++;
		ex->n_threads++;
		pthread_mutex_unlock(&ex->lock);
	}
	pthread_attr_destroy(&attr);
	if (err != 0) {
		executor_stop(ex, executor_now_ns() + 1000000000LL);
		executor_free(ex);
		errno = err;
		return NULL;
	}
	return ex;
}

/* Append inv to the queue; ex->lock is held. */
static void
push_locked(struct executor *ex, struct invocation *inv)
{
	inv->next = NULL;
	if (ex->tail != NULL)
		ex->tail->next = inv;
	else
		ex->head = inv;
	ex->tail = inv;
	ex->queued++;
	pthread_cond_signal(&ex->work);
}

/* Append inv to the pool's queue, whatever its length: for calls that were
 * already accepted (a SERIAL call handed the gate). */
static void
push(struct executor *ex, struct invocation *inv)
{
	pthread_mutex_lock(&ex->lock);
	push_locked(ex, inv);
	pthread_mutex_unlock(&ex->lock);
}

/* Queue inv unless the queue is full or the pool is stopping. */
static int
queue(struct executor *ex, struct invocation *inv)
{
	int rc = EXEC_QUEUED;

	pthread_mutex_lock(&ex->lock);
	if (ex->stopping || ex->queued >= ex->cfg->queue_depth)
		rc = EXEC_REJECTED;
	else
		push_locked(ex, inv);
	pthread_mutex_unlock(&ex->lock);
	return rc;
}

int
executor_submit(struct executor *ex, struct invocation *inv)
{
	struct command *cmd = inv->cmd;
	struct cmd_sched *sc = cmd->sched;
	int on_pool = inv->pool_only || (cmd->flags & CMDHOST_BLOCKING) ||
	    atomic_load_explicit(&sc->offloaded, memory_order_relaxed);
	int rc;

	if (cmd->flags & CMDHOST_SERIAL) {
		pthread_mutex_lock(&sc->lock);
		if (sc->busy) {
			if (sc->waiting >= ex->cfg->queue_depth) {
				pthread_mutex_unlock(&sc->lock);
				return EXEC_REJECTED;
			}
			inv->next = NULL;
			if (sc->tail != NULL)
				sc->tail->next = inv;
			else
				sc->head = inv;
			sc->tail = inv;
			sc->waiting++;
			pthread_mutex_unlock(&sc->lock);
			return EXEC_QUEUED;
		}
		sc->busy = 1;
		pthread_mutex_unlock(&sc->lock);
		if (on_pool) {
			if ((rc = queue(ex, inv)) == EXEC_REJECTED)
				gate_leave(ex, sc);
			return rc;
		}
		executor_run_call(inv);
		gate_leave(ex, sc);
	} else {
		if (on_pool)
			return queue(ex, inv);
		executor_run_call(inv);
	}
	adapt(ex, cmd, inv->end_ns - inv->start_ns, 0);
	return EXEC_DONE;
}

int
executor_queue_depth(struct executor *ex)
{
	int n;

	pthread_mutex_lock(&ex->lock);
	n = ex->queued;
	pthread_mutex_unlock(&ex->lock);
	return n;
}

int
executor_stop(struct executor *ex, int64_t deadline_ns)
{
	pthread_mutex_lock(&ex->lock);
	ex->stopping = 1;
	pthread_cond_broadcast(&ex->work);
	while (ex->running > 0) {
		struct timespec ts;

		ts.tv_sec = (time_t)(deadline_ns / 1000000000LL);
		ts.tv_nsec = (long)(deadline_ns % 1000000000LL);
		if (pthread_cond_timedwait(&ex->idle, &ex->lock, &ts) ==
		    ETIMEDOUT)
			break;
	}
	if (ex->running > 0) {
		pthread_mutex_unlock(&ex->lock);
		return -1;
	}
	pthread_mutex_unlock(&ex->lock);
	for (int i = 0; i < ex->n_threads; i++)
		pthread_join(ex->threads[i], NULL);
	ex->n_threads = 0;
	return 0;
}

void
executor_free(struct executor *ex)
{
	if (ex == NULL)
		return;
	pthread_mutex_destroy(&ex->lock);
	pthread_cond_destroy(&ex->work);
	pthread_cond_destroy(&ex->idle);
	free(ex->threads);
	free(ex);
}
