/*
 * exec_pool.c - the in-process executor: run a call on the submitting
 * thread, or on a pool of threads.
 *
 * The fast path runs a command on the event-loop thread that read it, so a
 * fast command costs no hand-off.  A command that may block is kept off
 * that thread: declared CMDHOST_BLOCKING, or observed to overrun the inline
 * budget SLOW_RUNS times in a row (then its calls go to the pool until
 * FAST_RUNS of them in a row finish within the budget there).  One overrun
 * alone is not enough: a loop preempted on a loaded machine makes a fast
 * call look slow now and then, and a call that really spins is adopted by
 * the stuck-loop monitor whatever this counts.  A SERIAL command's calls pass a
 * gate one at a time; calls that find it closed wait in a list, holding no
 * thread, and the call that leaves the gate hands it to the next.  This
 * file knows nothing of connections or deadlines' answers: dispatch owns
 * those.
 */
#include "executor.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_table.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/generation.h"
#include "core/log.h"
#include "core/thread.h"

#define FAST_RUNS 16
#define SLOW_RUNS 2

struct pool {
	struct executor base;    /* first */
	const struct config *cfg;
	pthread_mutex_t lock;
	pthread_cond_t work;     /* signalled when the queue gains an item */
	pthread_cond_t idle;     /* signalled when a thread exits */
	struct call_queue queue;
	int queued;
	int gated;               /* taken SERIAL calls waiting at a gate */
	int running;             /* threads alive */
	atomic_int stopping;     /* written under lock */
	int n_threads;
	pthread_t *threads;
	int64_t budget_ns;
};

struct cmd_sched *
executor_sched_new(void)
{
	struct cmd_sched *sc = calloc(1, sizeof(*sc));

	if (sc == NULL)
		return NULL;
	pthread_mutex_init(&sc->lock, NULL);
	STAILQ_INIT(&sc->waiters);
	atomic_init(&sc->offloaded, 0);
	atomic_init(&sc->fast_runs, 0);
	atomic_init(&sc->slow_runs, 0);
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

static void push(struct pool *p, struct call *c);

/* Run inv on the calling loop thread.  What the thread caches of other
 * generations goes back first: if this call never returns, the thread
 * pins only its own generation, as the call does. */
static void
run_inline(struct invocation *inv)
{
	const struct generation *g = inv->cmd->gen;

	cmd_index_forget_unless(g);
	generation_cache_keep(g);
	invocation_run(inv);
}

/* The log line of adapt()'s decisions, with the command's context
 * (kept out of adapt: it runs on every inline call). */
static void __attribute__((format(printf, 3, 4)))
adapt_log(const struct command *cmd, int64_t took, const char *fmt, ...)
{
	struct log_ctx lc = LOG_CTX_INIT;
	va_list ap;

	lc.command = cmd->name;
	lc.plugin = cmd->gen->name;
	lc.duration_ms = (double)took / 1e6;
	va_start(ap, fmt);
	log_emitv(LOGL_INFO, &lc, fmt, ap);
	va_end(ap);
}

/* Learn from one run of cmd that took `took` ns: SLOW_RUNS inline runs
 * past the budget in a row send the command to the pool; FAST_RUNS fast
 * pool runs in a row bring it back inline.  Blocking commands always stay
 * on the pool. */
static void
adapt(struct pool *p, struct command *cmd, int64_t took, int on_pool)
{
	struct cmd_sched *sc = cmd->sched;

	if (p->budget_ns <= 0 || (cmd->flags & CMDHOST_BLOCKING))
		return;
	if (took > p->budget_ns && !on_pool &&
	    atomic_fetch_add(&sc->slow_runs, 1) + 1 < SLOW_RUNS)
		return;
	if (took > p->budget_ns) {
		atomic_store_explicit(&sc->fast_runs, 0, memory_order_relaxed);
		atomic_store_explicit(&sc->slow_runs, 0, memory_order_relaxed);
		if (atomic_exchange(&sc->offloaded, 1) == 0)
			adapt_log(cmd, took, "command overran the inline "
			    "budget of %d us %d times in a row; its calls run on "
			    "the pool until %d in a row are fast",
			    p->cfg->inline_budget_us, SLOW_RUNS, FAST_RUNS);
	} else if (!on_pool) {
		/* Written only when there is something to clear: this runs
		 * on every inline call, on every loop. */
		if (atomic_load_explicit(&sc->slow_runs,
		    memory_order_relaxed) != 0)
			atomic_store_explicit(&sc->slow_runs, 0,
			    memory_order_relaxed);
	} else if (atomic_load_explicit(&sc->offloaded,
	    memory_order_relaxed) &&
	    atomic_fetch_add(&sc->fast_runs, 1) + 1 >= FAST_RUNS) {
		atomic_store(&sc->fast_runs, 0);
		if (atomic_exchange(&sc->offloaded, 0) == 1)
			adapt_log(cmd, took, "command is fast again; its "
			    "calls run inline");
	}
}

/* A SERIAL call finished (or was skipped): open the gate for the next
 * waiting call, which goes to the pool, or close it. */
static void
gate_leave(struct pool *p, struct cmd_sched *sc)
{
	struct call *next;

	pthread_mutex_lock(&sc->lock);
	if ((next = STAILQ_FIRST(&sc->waiters)) != NULL) {
		STAILQ_REMOVE_HEAD(&sc->waiters, exec_link);
		sc->waiting--;
	} else {
		sc->busy = 0;
	}
	pthread_mutex_unlock(&sc->lock);
	if (next != NULL)
		push(p, next); /* it holds the gate now */
}

static void *
pool_main(void *arg)
{
	struct pool *p = arg;
	struct call *c;

	thread_use_c_locale();
	/* Pool work is the slow kind: it must not preempt the event loops
	 * when it wakes up (SCHED_BATCH turns off wakeup preemption). */
	{
		struct sched_param sp = { 0 };

		pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
	}
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct invocation *inv;
		struct command *cmd;
		int64_t start;

		/* A call waiting at a gate comes to the queue later: the
		 * threads wait for it even when stopping. */
		while (STAILQ_EMPTY(&p->queue) && !(p->stopping &&
		    p->gated == 0))
			pthread_cond_wait(&p->work, &p->lock);
		if ((c = STAILQ_FIRST(&p->queue)) == NULL)
			break; /* stopping, and nothing left */
		STAILQ_REMOVE_HEAD(&p->queue, exec_link);
		p->queued--;
		pthread_mutex_unlock(&p->lock);

		inv = &c->inv;
		cmd = inv->cmd;
		start = clock_mono_ns();
		if (!invocation_start(inv)) {
			/* Answered already (timeout, shutdown, peer gone). */
			inv->end_ns = start;
		} else if (start >= inv->deadline_ns) {
			inv->end_ns = start;
			invocation_set_error(inv, 504, "timeout", "the command "
			    "waited in the queue past its deadline");
		} else {
			invocation_run(inv);
			adapt(p, cmd, inv->end_ns - start, 1);
		}
		if (cmd->flags & CMDHOST_SERIAL)
			gate_leave(p, cmd->sched);
		c->executed(c); /* c may be gone after this */
		pthread_mutex_lock(&p->lock);
	}
	p->running--;
	pthread_cond_broadcast(&p->idle);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Append c to the queue; p->lock is held. */
static void
push_locked(struct pool *p, struct call *c)
{
	STAILQ_INSERT_TAIL(&p->queue, c, exec_link);
	p->queued++;
	pthread_cond_signal(&p->work);
}

/* Append c to the pool's queue, whatever its length: for calls that were
 * already accepted (a SERIAL call handed the gate). */
static void
push(struct pool *p, struct call *c)
{
	pthread_mutex_lock(&p->lock);
	push_locked(p, c);
	if (--p->gated == 0 && p->stopping)
		pthread_cond_broadcast(&p->work); /* idle threads may go */
	pthread_mutex_unlock(&p->lock);
}

/* Count a SERIAL call about to wait at its gate, unless stopping (then it
 * is refused: no thread may be left to take it).  Returns 1 if counted. */
static int
gate_wait(struct pool *p)
{
	int ok;

	pthread_mutex_lock(&p->lock);
	if ((ok = !p->stopping))
		p->gated++;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/* Queue c unless the queue is full or the pool is stopping. */
static int
queue(struct pool *p, struct call *c)
{
	int rc = EXEC_QUEUED;

	pthread_mutex_lock(&p->lock);
	if (p->stopping || p->queued >= p->cfg->queue_depth) {
		rc = EXEC_REJECTED;
	} else {
		c->taken(c);
		push_locked(p, c);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

static int
pool_submit(struct executor *ex, struct call *c)
{
	struct pool *p = (struct pool *)ex;
	struct invocation *inv = &c->inv;
	struct command *cmd = inv->cmd;
	struct cmd_sched *sc = cmd->sched;
	int on_pool = c->pool_only || (cmd->flags & CMDHOST_BLOCKING) ||
	    atomic_load_explicit(&sc->offloaded, memory_order_relaxed);
	int rc;

	if (atomic_load_explicit(&p->stopping, memory_order_relaxed))
		return EXEC_REJECTED;
	if (cmd->flags & CMDHOST_SERIAL) {
		pthread_mutex_lock(&sc->lock);
		if (sc->busy) {
			if (sc->waiting >= p->cfg->queue_depth ||
			    !gate_wait(p)) {
				pthread_mutex_unlock(&sc->lock);
				return EXEC_REJECTED;
			}
			c->taken(c);
			STAILQ_INSERT_TAIL(&sc->waiters, c, exec_link);
			sc->waiting++;
			pthread_mutex_unlock(&sc->lock);
			return EXEC_QUEUED;
		}
		sc->busy = 1;
		pthread_mutex_unlock(&sc->lock);
		if (on_pool) {
			if ((rc = queue(p, c)) == EXEC_REJECTED)
				gate_leave(p, sc);
			return rc;
		}
		run_inline(inv);
		gate_leave(p, sc);
	} else {
		if (on_pool)
			return queue(p, c);
		run_inline(inv);
	}
	adapt(p, cmd, inv->end_ns - inv->start_ns, 0);
	return EXEC_DONE;
}

static int
pool_cancel(struct executor *ex, struct call *c)
{
	(void)ex;
	return invocation_cancel(&c->inv);
}

static void
pool_stats(struct executor *ex, struct json_object *into)
{
	struct pool *p = (struct pool *)ex;
	int n;

	pthread_mutex_lock(&p->lock);
	n = p->queued;
	pthread_mutex_unlock(&p->lock);
	json_object_object_add(into, "queue_depth", json_object_new_int(n));
}

static int
pool_stop(struct executor *ex, int64_t deadline_ns)
{
	struct pool *p = (struct pool *)ex;

	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->work);
	while (p->running > 0) {
		struct timespec ts = clock_mono_ts(deadline_ns);

		if (pthread_cond_timedwait(&p->idle, &p->lock, &ts) ==
		    ETIMEDOUT)
			break;
	}
	if (p->running > 0) {
		pthread_mutex_unlock(&p->lock);
		return -1;
	}
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	p->n_threads = 0;
	return 0;
}

static void
pool_free(struct executor *ex)
{
	struct pool *p = (struct pool *)ex;

	if (p == NULL)
		return;
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->idle);
	free(p->threads);
	free(p);
}

static const struct executor_ops pool_ops = {
	.name = "in-process",
	.submit = pool_submit,
	.cancel = pool_cancel,
	.stop = pool_stop,
	.free = pool_free,
	.stats = pool_stats,
};

struct executor *
exec_pool_new(const struct config *cfg)
{
	struct pool *p = calloc(1, sizeof(*p));
	int err = 0;

	if (p == NULL)
		return NULL;
	p->base.ops = &pool_ops;
	p->cfg = cfg;
	p->budget_ns = (int64_t)cfg->inline_budget_us * 1000;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	thread_cond_init(&p->idle);
	STAILQ_INIT(&p->queue);
	if ((p->threads = calloc((size_t)cfg->pool_threads,
	    sizeof(pthread_t))) == NULL) {
		pool_free(&p->base);
		errno = ENOMEM;
		return NULL;
	}
	for (int i = 0; i < cfg->pool_threads; i++) {
		if ((err = pthread_create(&p->threads[i], NULL, pool_main,
		    p)) != 0)
			break;
		pthread_mutex_lock(&p->lock);
		p->running++;
		p->n_threads++;
		pthread_mutex_unlock(&p->lock);
	}
	if (err != 0) {
		pool_stop(&p->base, clock_mono_ns() + 1000000000LL);
		pool_free(&p->base);
		errno = err;
		return NULL;
	}
	return &p->base;
}
