/*
 * test_executor.c - unit tests of exec_pool.c through the executor seam
 * (executor.h), with calls the test makes itself: a fake in-memory
 * generation (no dlopen handle: unloading it only frees it) whose commands
 * run this file's execute and validate, and taken/executed callbacks that
 * record what the executor did.
 *
 * What is checked: an inline run stays on the calling thread and never
 * calls back; a BLOCKING call is taken before submit returns and executed
 * once on a pool thread; the SERIAL gate runs one call at a time, in
 * submission order, and hands itself on; the inline budget sends an
 * overrunning command to the pool and FAST_RUNS fast pool runs bring it
 * back; cancel racing the pool; a full queue; stop with calls in flight.
 *
 * No test sleeps to wait: the callbacks signal one condition variable
 * and every wait on it is bounded (WAIT_NS).  Pool-thread callbacks never
 * assert (Criterion asserts on the test's thread only): they record, and
 * the test checks.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "clock.h"
#include "config.h"
#include "executor.h"
#include "generation.h"
#include "invocation.h"
#include "log.h"
#include "thread.h"

/* The longest any wait for the executor may take before the test fails. */
#define WAIT_NS (10 * 1000000000LL)
/* exec_pool.c's FAST_RUNS: fast pool runs that bring a command back. */
#define FAST_RUNS 16
#define MAX_CALLS 4096

/* The fake generation's commands. */
enum {
	CMD_FAST,        /* flags 0 */
	CMD_BLOCKING,    /* CMDHOST_BLOCKING */
	CMD_SERIAL,      /* CMDHOST_SERIAL */
	CMD_SERIAL_POOL, /* CMDHOST_SERIAL | CMDHOST_BLOCKING */
	CMD_ADAPTIVE,    /* flags 0: the budget test's */
	N_CMDS
};

/*
 * A test call: the call the executor sees, first, then what the test
 * told execute to do and what the callbacks saw.  When `own_refs` is set,
 * c.refs counts who still uses it (the executor until executed, a
 * canceller) and the last one frees it, after copying the outcome into
 * results[seq] -- so that the executor touching c after executed is a
 * use after free for ASan.
 */
struct tcall {
	struct call c;              /* first: callbacks get &c */
	int seq;
	int hold;                   /* execute waits for `released` */
	int refuse;                 /* validate refuses */
	int64_t work_us;            /* execute takes this long */
	int own_refs;
	atomic_int taken;
	atomic_int executed;
	atomic_int validated;
	atomic_int ran;             /* execute calls */
	atomic_int taken_at_run;    /* taken as execute saw it */
	atomic_int ran_at_executed; /* ran as executed saw it */
	int cancel_rc;
	pthread_t run_thread;
	pthread_t executed_thread;
};

/* The outcome of a call freed by its last user (own_refs). */
struct result {
	int taken, executed, ran, cancel_rc, cancelled, state;
};

static struct config cfg;
static struct executor *ex;
static struct generation *gen;

/* Guarded by mu; every change is broadcast on cv. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static int n_executed;          /* executed callbacks */
static int n_ran;               /* execute calls */
static int holding;             /* hold calls inside execute */
static int released;            /* hold calls may return */
static int order[MAX_CALLS];    /* seq of each execute, in start order */
static int n_order;
static int n_submitted;         /* the cancel race's published calls */
static struct tcall *published[MAX_CALLS];
static struct result results[MAX_CALLS];

static atomic_int inside;       /* calls inside execute now */
static atomic_int max_inside;   /* the most at once */

static struct tcall *
tcall_of(struct call *c)
{
	return (struct tcall *)(void *)c;
}

/* Lock, bump *counter, broadcast, unlock. */
static void
signal_add(int *counter, int n)
{
	pthread_mutex_lock(&mu);
	*counter += n;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* Wait until `expr` (read under mu) holds, WAIT_NS at most; the test
 * fails if it does not. */
#define WAIT_UNTIL(expr) do {						\
	int64_t dl_ = clock_mono_ns() + WAIT_NS;			\
	int ok_;							\
									\
	pthread_mutex_lock(&mu);					\
	while (!(expr)) {						\
		struct timespec ts_ = clock_mono_ts(dl_);		\
									\
		if (pthread_cond_timedwait(&cv, &mu, &ts_) == ETIMEDOUT) \
			break;						\
	}								\
	ok_ = (expr);							\
	pthread_mutex_unlock(&mu);					\
	cr_assert(ok_, "timed out waiting for " #expr);			\
} while (0)

/* Let hold calls return. */
static void
release_holds(void)
{
	signal_add(&released, 1);
}

static int
test_validate(cmdhost_ctx *ctx)
{
	struct tcall *t = tcall_of((struct call *)(void *)invocation_of(ctx));

	atomic_fetch_add(&t->validated, 1);
	if (t->refuse) {
		cmdhost_fail(ctx, 400, "invalid_payload", "refused");
		return -1;
	}
	return 0;
}

static int
test_execute(cmdhost_ctx *ctx)
{
	struct tcall *t = tcall_of((struct call *)(void *)invocation_of(ctx));
	int now = atomic_fetch_add(&inside, 1) + 1;
	int max = atomic_load(&max_inside);

	while (now > max && !atomic_compare_exchange_weak(&max_inside, &max,
	    now))
		;
	t->run_thread = pthread_self();
	atomic_store(&t->taken_at_run, atomic_load(&t->taken));
	pthread_mutex_lock(&mu);
	if (n_order < MAX_CALLS)
		order[n_order++] = t->seq;
	if (t->hold) {
		int64_t dl = clock_mono_ns() + WAIT_NS;

		holding++;
		pthread_cond_broadcast(&cv);
		while (!released) {
			struct timespec ts = clock_mono_ts(dl);

			if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT)
				break;
		}
		holding--;
	}
	pthread_mutex_unlock(&mu);
	if (t->work_us > 0) {
		/* The command's own work, not a wait for the test. */
		struct timespec ts = { (time_t)(t->work_us / 1000000),
		    (long)(t->work_us % 1000000) * 1000L };

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	atomic_fetch_sub(&inside, 1);
	atomic_fetch_add(&t->ran, 1);
	signal_add(&n_ran, 1);
	return cmdhost_ok(ctx, NULL);
}

/* Free t: its invocation drops its reference on the generation. */
static void
tcall_free(struct tcall *t)
{
	invocation_fini(&t->c.inv);
	free(t);
}

/* Drop one user of an own_refs call; the last copies the outcome into
 * results[] and frees it. */
static void
tcall_put(struct tcall *t)
{
	struct result *r = &results[t->seq];

	if (atomic_fetch_sub(&t->c.refs, 1) != 1)
		return;
	r->taken = atomic_load(&t->taken);
	r->executed = atomic_load(&t->executed);
	r->ran = atomic_load(&t->ran);
	r->cancel_rc = t->cancel_rc;
	r->state = atomic_load(&t->c.inv.state);
	tcall_free(t);
}

static void
on_taken(struct call *c)
{
	atomic_fetch_add(&tcall_of(c)->taken, 1);
}

static void
on_executed(struct call *c)
{
	struct tcall *t = tcall_of(c);

	t->executed_thread = pthread_self();
	atomic_store(&t->ran_at_executed, atomic_load(&t->ran));
	atomic_fetch_add(&t->executed, 1);
	if (t->own_refs)
		tcall_put(t); /* t may be gone now */
	signal_add(&n_executed, 1);
}

/* A new call of command `which` with sequence number seq, holding its
 * own reference on the generation, with a deadline a minute away.  Any
 * thread: it aborts rather than asserts when out of memory. */
static struct tcall *
tcall_new(int which, int seq)
{
	struct command *cmd = &gen->commands[which];
	struct tcall *t = calloc(1, sizeof(*t));

	if (t == NULL || seq >= MAX_CALLS)
		abort();
	generation_hold(gen);
	if (invocation_init(&t->c.inv, cmd, NULL, NULL, NULL, 0, 0,
	    (uint64_t)seq) < 0)
		abort();
	t->c.inv.start_ns = clock_mono_ns();
	t->c.inv.deadline_ns = t->c.inv.start_ns + 60 * 1000000000LL;
	t->c.ex = ex;
	t->c.heap_idx = (size_t)-1;
	t->c.taken = on_taken;
	t->c.executed = on_executed;
	atomic_init(&t->c.refs, 1);
	atomic_init(&t->c.answer, CALL_OPEN);
	t->seq = seq;
	return t;
}

/* Submit t as dispatch would: its start is now. */
static int
submit(struct tcall *t)
{
	t->c.inv.start_ns = clock_mono_ns();
	return ex->ops->submit(ex, &t->c);
}

/* The executor's "queue_depth" figure. */
static int
stats_queue_depth(void)
{
	struct json_object *o = json_object_new_object();
	struct json_object *v = NULL;
	int n;

	ex->ops->stats(ex, o);
	cr_assert(json_object_object_get_ex(o, "queue_depth", &v));
	n = json_object_get_int(v);
	json_object_put(o);
	return n;
}

static const char *const cmd_names[N_CMDS] = {
	"fake.fast", "fake.blocking", "fake.serial", "fake.serial_pool",
	"fake.adaptive"
};
static const unsigned cmd_flags[N_CMDS] = {
	0, CMDHOST_BLOCKING, CMDHOST_SERIAL,
	CMDHOST_SERIAL | CMDHOST_BLOCKING, 0
};

/* The fake generation: heap memory as the loader makes it (names and the
 * commands array owned, no handle), one reference: the test's. */
static void
make_gen(void)
{
	cr_assert_not_null(gen = calloc(1, sizeof(*gen)));
	atomic_init(&gen->refs, 1);
	gen->number = 1;
	cr_assert_not_null(gen->name = strdup("fake"));
	cr_assert_not_null(gen->version = strdup("1.0.0"));
	cr_assert_not_null(gen->commands = calloc(N_CMDS,
	    sizeof(*gen->commands)));
	gen->n_commands = N_CMDS;
	for (int i = 0; i < N_CMDS; i++) {
		struct command *cmd = &gen->commands[i];

		snprintf(cmd->name, sizeof(cmd->name), "%s", cmd_names[i]);
		cmd->summary = "";
		cmd->validate = test_validate;
		cmd->execute = test_execute;
		cmd->flags = cmd_flags[i];
		cmd->gen = gen;
		cr_assert_not_null(cmd->sched = executor_sched_new());
	}
}

static void
setup(void)
{
	log_init(LOGL_ERROR, LOGF_TEXT, NULL);
	thread_cond_init(&cv);
	cr_assert_eq(config_init(&cfg), 0);
	cfg.pool_threads = 4;
	make_gen();
	ex = NULL;
}

static void
teardown(void)
{
	release_holds(); /* a failed test may have left some */
	if (ex != NULL && ex->ops->stop(ex, clock_mono_ns() + WAIT_NS) == 0)
		ex->ops->free(ex);
	for (size_t i = 0; i < gen->n_commands; i++)
		executor_sched_free(gen->commands[i].sched);
	generation_release(gen); /* unloaded: only freed */
	config_fini(&cfg);
}

TestSuite(executor, .init = setup, .fini = teardown);

/* Start the executor on cfg as the test set it. */
static void
start(void)
{
	cr_assert_not_null(ex = exec_pool_new(&cfg), "exec_pool_new: %s",
	    strerror(errno));
	cr_assert_str_eq(ex->ops->name, "in-process");
}

/* Stop the executor (it must stop in time) and free it. */
static void
finish(void)
{
	cr_assert_eq(ex->ops->stop(ex, clock_mono_ns() + WAIT_NS), 0);
	ex->ops->free(ex);
	ex = NULL;
}

/* Every call was freed: only the test's reference on the generation is
 * left. */
static void
expect_freed(void)
{
	cr_assert_eq(atomic_load(&gen->refs), 1, "%ld references left on "
	    "the generation: a call was not freed",
	    (long)atomic_load(&gen->refs));
}

/* ------------------------------------------------------------ inline */

Test(executor, fast_command_runs_inline)
{
	struct tcall *t, *r;

	/* Not a test of the adaptive budget: a loaded machine that
	 * preempts a call past the default 2 ms must not offload it. */
	cfg.inline_budget_us = 60000000;
	start();
	t = tcall_new(CMD_FAST, 0);
	cr_assert_eq(submit(t), EXEC_DONE);
	/* Ran here, before submit returned, and nobody was called back. */
	cr_assert_eq(atomic_load(&t->ran), 1);
	cr_assert_eq(atomic_load(&t->validated), 1);
	cr_assert(pthread_equal(t->run_thread, pthread_self()));
	cr_assert_eq(atomic_load(&t->taken), 0);
	cr_assert_eq(atomic_load(&t->executed), 0);
	cr_assert(t->c.inv.finished);
	cr_assert_eq(t->c.inv.status, 200);
	cr_assert_geq(t->c.inv.end_ns, t->c.inv.start_ns);

	/* validate refusing stops the run before execute, still inline. */
	r = tcall_new(CMD_FAST, 1);
	r->refuse = 1;
	cr_assert_eq(submit(r), EXEC_DONE);
	cr_assert_eq(atomic_load(&r->validated), 1);
	cr_assert_eq(atomic_load(&r->ran), 0);
	cr_assert_eq(r->c.inv.status, 400);
	cr_assert_str_eq(r->c.inv.code, "invalid_payload");
	cr_assert_eq(atomic_load(&r->taken), 0);
	cr_assert_eq(atomic_load(&r->executed), 0);

	cr_assert_eq(stats_queue_depth(), 0);
	cr_assert_eq(atomic_load(&gen->commands[CMD_FAST].sched->offloaded),
	    0);
	tcall_free(t);
	tcall_free(r);
	finish();
	/* The pool never saw either call. */
	cr_assert_eq(n_executed, 0);
	expect_freed();
}

Test(executor, pool_only_call_of_a_fast_command_goes_to_the_pool)
{
	struct tcall *t;

	start();
	t = tcall_new(CMD_FAST, 0);
	t->c.pool_only = 1;
	cr_assert_eq(submit(t), EXEC_QUEUED);
	cr_assert_eq(atomic_load(&t->taken), 1);
	WAIT_UNTIL(n_executed == 1);
	cr_assert_eq(atomic_load(&t->ran), 1);
	cr_assert_not(pthread_equal(t->run_thread, pthread_self()));
	tcall_free(t);
	finish();
	expect_freed();
}

/* ------------------------------------------------------------ blocking */

Test(executor, blocking_command_goes_to_the_pool)
{
	struct tcall *t[8];

	start();
	for (int i = 0; i < 8; i++) {
		t[i] = tcall_new(CMD_BLOCKING, i);
		cr_assert_eq(submit(t[i]), EXEC_QUEUED);
		/* taken before submit returned, once. */
		cr_assert_eq(atomic_load(&t[i]->taken), 1);
	}
	WAIT_UNTIL(n_executed == 8);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(atomic_load(&t[i]->taken), 1);
		cr_assert_eq(atomic_load(&t[i]->executed), 1);
		cr_assert_eq(atomic_load(&t[i]->ran), 1);
		/* taken came before it could run; executed after it ran. */
		cr_assert_eq(atomic_load(&t[i]->taken_at_run), 1);
		cr_assert_eq(atomic_load(&t[i]->ran_at_executed), 1);
		cr_assert_not(pthread_equal(t[i]->run_thread, pthread_self()));
		cr_assert_not(pthread_equal(t[i]->executed_thread,
		    pthread_self()));
		cr_assert_eq(t[i]->c.inv.status, 200);
		cr_assert_eq(atomic_load(&t[i]->c.inv.state), INV_RUNNING);
	}
	finish();
	/* Nothing more after stop. */
	cr_assert_eq(n_executed, 8);
	for (int i = 0; i < 8; i++)
		tcall_free(t[i]);
	expect_freed();
}

/* ------------------------------------------------------------ serial */

#define SERIAL_THREADS 4
#define SERIAL_PER_THREAD 100

static atomic_int serial_rejected;
static atomic_int serial_queued;

/* One submitter of the SERIAL test: SERIAL_PER_THREAD calls, every third
 * one pool_only; the executor frees them (own_refs). */
static void *
serial_submitter(void *arg)
{
	int base = (int)(intptr_t)arg * SERIAL_PER_THREAD;

	for (int i = 0; i < SERIAL_PER_THREAD; i++) {
		struct tcall *t = tcall_new(CMD_SERIAL, base + i);
		int rc;

		t->work_us = 100;
		t->own_refs = 1;
		t->c.pool_only = i % 3 == 0;
		switch ((rc = submit(t))) {
		case EXEC_QUEUED:
			atomic_fetch_add(&serial_queued, 1);
			break;
		case EXEC_DONE:
			tcall_put(t);
			break;
		default:
			atomic_fetch_add(&serial_rejected, 1);
			tcall_put(t);
			break;
		}
	}
	return NULL;
}

Test(executor, serial_calls_from_threads_never_overlap)
{
	pthread_t th[SERIAL_THREADS];
	int total = SERIAL_THREADS * SERIAL_PER_THREAD;

	start();
	for (int i = 0; i < SERIAL_THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, serial_submitter,
		    (void *)(intptr_t)i), 0);
	for (int i = 0; i < SERIAL_THREADS; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&serial_rejected), 0);
	/* Some waited at the gate or were pool_only. */
	cr_assert_gt(atomic_load(&serial_queued), 0);
	WAIT_UNTIL(n_executed == atomic_load(&serial_queued));
	cr_assert_eq(n_ran, total);
	cr_assert_eq(atomic_load(&max_inside), 1, "%d SERIAL calls ran at "
	    "once", atomic_load(&max_inside));
	for (int i = 0; i < total; i++) {
		cr_assert_eq(results[i].ran, 1, "call %d ran %d times", i,
		    results[i].ran);
		cr_assert_eq(results[i].executed, results[i].taken);
		cr_assert_leq(results[i].taken, 1);
	}
	/* The gate is open again. */
	cr_assert_eq(gen->commands[CMD_SERIAL].sched->busy, 0);
	cr_assert_eq(gen->commands[CMD_SERIAL].sched->waiting, 0);
	finish();
	cr_assert_eq(n_executed, atomic_load(&serial_queued));
	expect_freed();
}

Test(executor, serial_pool_calls_run_in_submission_order)
{
	enum { N = 64 };
	struct tcall *t[N];

	start();
	for (int i = 0; i < N; i++) {
		t[i] = tcall_new(CMD_SERIAL_POOL, i);
		t[i]->work_us = 50;
		cr_assert_eq(submit(t[i]), EXEC_QUEUED);
	}
	WAIT_UNTIL(n_executed == N);
	cr_assert_eq(n_order, N);
	for (int i = 0; i < N; i++)
		cr_assert_eq(order[i], i, "call %d ran in place %d", order[i],
		    i);
	cr_assert_eq(atomic_load(&max_inside), 1);
	finish();
	for (int i = 0; i < N; i++) {
		cr_assert_eq(atomic_load(&t[i]->executed), 1);
		tcall_free(t[i]);
	}
	expect_freed();
}

/* A SERIAL command that would run inline waits at a closed gate instead
 * (queued, holding no thread), and the gate passes to the waiters in
 * order, on the pool. */
Test(executor, serial_gate_hands_off_to_waiters_in_order)
{
	enum { N = 16 };
	struct tcall *t[N];

	/* Not a test of the adaptive budget: a loaded machine that
	 * preempts a call past the default 2 ms must not offload it. */
	cfg.inline_budget_us = 60000000;
	start();
	t[0] = tcall_new(CMD_SERIAL, 0);
	t[0]->c.pool_only = 1;
	t[0]->hold = 1;
	cr_assert_eq(submit(t[0]), EXEC_QUEUED);
	WAIT_UNTIL(holding == 1);
	for (int i = 1; i < N; i++) {
		t[i] = tcall_new(CMD_SERIAL, i);
		cr_assert_eq(submit(t[i]), EXEC_QUEUED, "call %d did not wait "
		    "at the closed gate", i);
		cr_assert_eq(atomic_load(&t[i]->taken), 1);
	}
	cr_assert_eq(gen->commands[CMD_SERIAL].sched->waiting, N - 1);
	/* The waiters are not on the pool's queue: they hold no thread. */
	cr_assert_eq(stats_queue_depth(), 0);
	pthread_mutex_lock(&mu);
	cr_assert_eq(n_ran, 0);
	pthread_mutex_unlock(&mu);
	release_holds();
	WAIT_UNTIL(n_executed == N);
	cr_assert_eq(n_order, N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(order[i], i);
		cr_assert_eq(atomic_load(&t[i]->ran), 1);
		cr_assert_eq(atomic_load(&t[i]->executed), 1);
		cr_assert_not(pthread_equal(t[i]->run_thread, pthread_self()));
	}
	cr_assert_eq(atomic_load(&max_inside), 1);
	cr_assert_eq(gen->commands[CMD_SERIAL].sched->busy, 0);
	/* Free again: the next call runs inline at once. */
	{
		struct tcall *u = tcall_new(CMD_SERIAL, N);

		cr_assert_eq(submit(u), EXEC_DONE);
		cr_assert(pthread_equal(u->run_thread, pthread_self()));
		tcall_free(u);
	}
	finish();
	for (int i = 0; i < N; i++)
		tcall_free(t[i]);
	expect_freed();
}

/* ------------------------------------------------------------ budget */

/* Submit one call of the adaptive command taking work_us; expect rc, and
 * for a pool run wait for it.  Returns whether it ran on this thread. */
static int
adaptive_run(int seq, int64_t work_us, int expect)
{
	struct tcall *t = tcall_new(CMD_ADAPTIVE, seq);
	int rc, here;

	t->work_us = work_us;
	rc = submit(t);
	cr_assert_eq(rc, expect, "call %d: submit %d, want %d", seq, rc,
	    expect);
	if (rc == EXEC_QUEUED)
		WAIT_UNTIL(atomic_load(&t->executed) == 1);
	cr_assert_eq(atomic_load(&t->ran), 1);
	here = pthread_equal(t->run_thread, pthread_self());
	cr_assert_eq(here, rc == EXEC_DONE);
	tcall_free(t);
	return here;
}

Test(executor, budget_offloads_and_brings_back)
{
	/* Generous for a shared machine: a fast run takes microseconds. */
	const int64_t budget_us = 50000, slow_us = 80000;
	struct cmd_sched *sc = gen->commands[CMD_ADAPTIVE].sched;
	int seq = 0;

	cfg.inline_budget_us = (int)budget_us;
	start();
	adaptive_run(seq++, 0, EXEC_DONE);
	cr_assert_eq(atomic_load(&sc->offloaded), 0);
	/* One inline overrun alone (a preempted loop) stays inline, and a
	 * fast run clears it. */
	adaptive_run(seq++, slow_us, EXEC_DONE);
	cr_assert_eq(atomic_load(&sc->offloaded), 0);
	adaptive_run(seq++, 0, EXEC_DONE);
	adaptive_run(seq++, slow_us, EXEC_DONE);
	cr_assert_eq(atomic_load(&sc->offloaded), 0, "two overruns, not in "
	    "a row, offloaded");
	/* The second overrun in a row: to the pool. */
	adaptive_run(seq++, slow_us, EXEC_DONE);
	cr_assert_eq(atomic_load(&sc->offloaded), 1);
	for (int i = 0; i < FAST_RUNS / 2; i++)
		adaptive_run(seq++, 0, EXEC_QUEUED);
	/* An overrun on the pool starts the count again. */
	adaptive_run(seq++, slow_us, EXEC_QUEUED);
	cr_assert_eq(atomic_load(&sc->fast_runs), 0);
	for (int i = 0; i < FAST_RUNS - 1; i++) {
		adaptive_run(seq++, 0, EXEC_QUEUED);
		cr_assert_eq(atomic_load(&sc->offloaded), 1, "back inline "
		    "after %d fast runs", i + 1);
	}
	/* The FAST_RUNS-th fast pool run in a row brings it back. */
	adaptive_run(seq++, 0, EXEC_QUEUED);
	cr_assert_eq(atomic_load(&sc->offloaded), 0);
	adaptive_run(seq++, 0, EXEC_DONE);
	adaptive_run(seq++, 0, EXEC_DONE);
	/* Other commands were never offloaded. */
	cr_assert_eq(atomic_load(&gen->commands[CMD_FAST].sched->offloaded),
	    0);
	finish();
	expect_freed();
}

Test(executor, blocking_command_is_not_adapted)
{
	struct cmd_sched *sc = gen->commands[CMD_BLOCKING].sched;
	struct tcall *t;

	cfg.inline_budget_us = 1000;
	start();
	t = tcall_new(CMD_BLOCKING, 0);
	t->work_us = 5000;
	cr_assert_eq(submit(t), EXEC_QUEUED);
	WAIT_UNTIL(n_executed == 1);
	cr_assert_eq(atomic_load(&sc->offloaded), 0);
	cr_assert_eq(atomic_load(&sc->fast_runs), 0);
	tcall_free(t);
	finish();
	expect_freed();
}

/* ------------------------------------------------------------ cancel */

Test(executor, cancelled_before_start_never_runs)
{
	enum { HOLDS = 2, N = 20 };
	struct tcall *h[HOLDS], *t[N];

	cfg.pool_threads = HOLDS;
	start();
	for (int i = 0; i < HOLDS; i++) {
		h[i] = tcall_new(CMD_BLOCKING, i);
		h[i]->hold = 1;
		cr_assert_eq(submit(h[i]), EXEC_QUEUED);
	}
	WAIT_UNTIL(holding == HOLDS); /* every pool thread is busy */
	for (int i = 0; i < N; i++) {
		t[i] = tcall_new(CMD_BLOCKING, HOLDS + i);
		cr_assert_eq(submit(t[i]), EXEC_QUEUED);
	}
	cr_assert_eq(stats_queue_depth(), N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(ex->ops->cancel(ex, &t[i]->c), 1);
		cr_assert_eq(ex->ops->cancel(ex, &t[i]->c), 1, "a second "
		    "cancel must say the same");
	}
	/* Running calls cannot be cancelled: they finish. */
	for (int i = 0; i < HOLDS; i++)
		cr_assert_eq(ex->ops->cancel(ex, &h[i]->c), 0);
	release_holds();
	WAIT_UNTIL(n_executed == HOLDS + N);
	for (int i = 0; i < HOLDS; i++) {
		cr_assert_eq(atomic_load(&h[i]->ran), 1);
		cr_assert_eq(atomic_load(&h[i]->executed), 1);
		cr_assert_eq(h[i]->c.inv.status, 200);
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(atomic_load(&t[i]->ran), 0, "cancelled call %d "
		    "ran", i);
		cr_assert_eq(atomic_load(&t[i]->validated), 0);
		cr_assert_eq(atomic_load(&t[i]->executed), 1);
		cr_assert_eq(atomic_load(&t[i]->c.inv.state), INV_CANCELLED);
		cr_assert_eq(invocation_start(&t[i]->c.inv), 0);
		cr_assert_eq(t[i]->c.inv.status, 0, "no result was made");
	}
	finish();
	cr_assert_eq(n_ran, HOLDS);
	for (int i = 0; i < HOLDS; i++)
		tcall_free(h[i]);
	for (int i = 0; i < N; i++)
		tcall_free(t[i]);
	expect_freed();
}

#define RACE_CALLS 3000
#define RACE_CANCELLERS 3

static atomic_int next_cancel;

/* A canceller of the race: cancel each published call once the
 * submitter is a few calls past it (0..15: some calls are still queued,
 * some already taken by the pool), then drop its use of it. */
static void *
canceller(void *arg)
{
	(void)arg;
	for (;;) {
		int i = atomic_fetch_add(&next_cancel, 1);
		int64_t dl = clock_mono_ns() + WAIT_NS;
		struct tcall *t;
		int lag;

		if (i >= RACE_CALLS)
			return NULL;
		lag = i % 16;

		pthread_mutex_lock(&mu);
		while (n_submitted <= i + lag && n_submitted < RACE_CALLS) {
			struct timespec ts = clock_mono_ts(dl);

			if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT)
				break;
		}
		t = n_submitted > i ? published[i] : NULL;
		pthread_mutex_unlock(&mu);
		if (t == NULL)
			return NULL; /* the test fails on its counts */
		t->cancel_rc = ex->ops->cancel(ex, &t->c);
		tcall_put(t);
	}
}

Test(executor, cancel_racing_the_pool)
{
	pthread_t th[RACE_CANCELLERS];
	int not_run = 0, ran = 0;

	cfg.queue_depth = RACE_CALLS;
	start();
	for (int i = 0; i < RACE_CANCELLERS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, canceller, NULL), 0);
	for (int i = 0; i < RACE_CALLS; i++) {
		struct tcall *t = tcall_new(CMD_BLOCKING, i);

		t->own_refs = 1;
		atomic_store(&t->c.refs, 2); /* the executor, a canceller */
		t->work_us = i % 7 == 0 ? 20 : 0;
		cr_assert_eq(submit(t), EXEC_QUEUED);
		pthread_mutex_lock(&mu);
		published[i] = t;
		n_submitted = i + 1;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
		/* Now and then let the pool catch up, so that it takes calls
		 * while the cancellers come for them. */
		if (i % 32 == 31)
			WAIT_UNTIL(n_executed >= i - 24);
	}
	for (int i = 0; i < RACE_CANCELLERS; i++)
		pthread_join(th[i], NULL);
	WAIT_UNTIL(n_executed == RACE_CALLS);
	finish();
	cr_assert_eq(n_executed, RACE_CALLS);
	for (int i = 0; i < RACE_CALLS; i++) {
		struct result *r = &results[i];

		cr_assert_eq(r->taken, 1, "call %d taken %d times", i,
		    r->taken);
		cr_assert_eq(r->executed, 1, "call %d executed %d times", i,
		    r->executed);
		if (r->cancel_rc == 1) {
			/* "will not run": it did not. */
			cr_assert_eq(r->ran, 0, "call %d ran after cancel "
			    "said it would not", i);
			cr_assert_eq(r->state, INV_CANCELLED);
			not_run++;
		} else {
			/* "is running": it ran. */
			cr_assert_eq(r->cancel_rc, 0);
			cr_assert_eq(r->ran, 1, "call %d: cancel said running "
			    "but it never ran", i);
			ran++;
		}
	}
	cr_assert_eq(n_ran, ran);
	cr_log_info("cancel race: %d cancelled before start, %d ran", not_run,
	    ran);
	expect_freed();
}

/* ------------------------------------------------------------ queue */

Test(executor, full_queue_rejects)
{
	struct tcall *h, *a, *b, *c, *s;

	cfg.pool_threads = 1;
	cfg.queue_depth = 2;
	start();
	h = tcall_new(CMD_BLOCKING, 0);
	h->hold = 1;
	cr_assert_eq(submit(h), EXEC_QUEUED);
	WAIT_UNTIL(holding == 1); /* off the queue, on the one thread */
	a = tcall_new(CMD_BLOCKING, 1);
	b = tcall_new(CMD_BLOCKING, 2);
	cr_assert_eq(submit(a), EXEC_QUEUED);
	cr_assert_eq(submit(b), EXEC_QUEUED);
	cr_assert_eq(stats_queue_depth(), 2);
	c = tcall_new(CMD_BLOCKING, 3);
	cr_assert_eq(submit(c), EXEC_REJECTED);
	cr_assert_eq(atomic_load(&c->taken), 0);
	/* A SERIAL call refused by the full queue leaves the gate open. */
	s = tcall_new(CMD_SERIAL_POOL, 4);
	cr_assert_eq(submit(s), EXEC_REJECTED);
	cr_assert_eq(atomic_load(&s->taken), 0);
	cr_assert_eq(gen->commands[CMD_SERIAL_POOL].sched->busy, 0);
	cr_assert_eq(stats_queue_depth(), 2);
	release_holds();
	WAIT_UNTIL(n_executed == 3);
	finish();
	cr_assert_eq(n_executed, 3);
	cr_assert_eq(atomic_load(&a->ran), 1);
	cr_assert_eq(atomic_load(&b->ran), 1);
	/* The refused calls were never touched again. */
	cr_assert_eq(atomic_load(&c->executed), 0);
	cr_assert_eq(atomic_load(&c->ran), 0);
	cr_assert_eq(atomic_load(&c->c.inv.state), INV_QUEUED);
	cr_assert_eq(atomic_load(&s->executed), 0);
	cr_assert_eq(atomic_load(&s->ran), 0);
	tcall_free(h);
	tcall_free(a);
	tcall_free(b);
	tcall_free(c);
	tcall_free(s);
	expect_freed();
}

/* ------------------------------------------------------------ stop */

Test(executor, stop_with_calls_in_flight)
{
	struct tcall *h, *q, *late, *fast;
	int64_t t0;

	cfg.pool_threads = 1;
	start();
	h = tcall_new(CMD_BLOCKING, 0);
	h->hold = 1;
	cr_assert_eq(submit(h), EXEC_QUEUED);
	WAIT_UNTIL(holding == 1);
	q = tcall_new(CMD_BLOCKING, 1);
	cr_assert_eq(submit(q), EXEC_QUEUED);

	/* A deadline before the running call ends: -1, after waiting. */
	t0 = clock_mono_ns();
	cr_assert_eq(ex->ops->stop(ex, t0 + 50000000), -1);
	cr_assert_geq(clock_mono_ns() - t0, 50000000);
	cr_assert_eq(n_executed, 0);

	/* Stopping: new work is refused, inline or not, and not taken. */
	late = tcall_new(CMD_BLOCKING, 2);
	cr_assert_eq(submit(late), EXEC_REJECTED);
	cr_assert_eq(atomic_load(&late->taken), 0);
	fast = tcall_new(CMD_FAST, 3);
	cr_assert_eq(submit(fast), EXEC_REJECTED);
	cr_assert_eq(atomic_load(&fast->ran), 0);

	/* A later deadline: 0, once every taken call was executed. */
	release_holds();
	cr_assert_eq(ex->ops->stop(ex, clock_mono_ns() + WAIT_NS), 0);
	cr_assert_eq(atomic_load(&h->executed), 1);
	cr_assert_eq(atomic_load(&q->executed), 1);
	cr_assert_eq(atomic_load(&h->ran), 1);
	/* q was taken before stop: it still ran. */
	cr_assert_eq(atomic_load(&q->ran), 1);
	cr_assert_eq(atomic_load(&late->executed), 0);
	/* Still refused after stop returned. */
	cr_assert_eq(submit(late), EXEC_REJECTED);
	cr_assert_eq(atomic_load(&late->taken), 0);
	ex->ops->free(ex);
	ex = NULL;
	tcall_free(h);
	tcall_free(q);
	tcall_free(late);
	tcall_free(fast);
	expect_freed();
}

static void *
inline_holder(void *arg)
{
	struct tcall *t = arg;

	return (void *)(intptr_t)submit(t);
}

/* A SERIAL call waiting at a gate that an inline call holds is the
 * executor's: stop must not report done (nor let its threads go) before
 * that waiter was executed. */
Test(executor, stop_waits_for_a_serial_waiter)
{
	struct tcall *h, *w;
	pthread_t th;
	void *rc;

	start();
	h = tcall_new(CMD_SERIAL, 0);
	h->hold = 1;
	cr_assert_eq(pthread_create(&th, NULL, inline_holder, h), 0);
	WAIT_UNTIL(holding == 1); /* inline, on th, holding the gate */
	w = tcall_new(CMD_SERIAL, 1);
	cr_assert_eq(submit(w), EXEC_QUEUED);
	cr_assert_eq(atomic_load(&w->taken), 1);
	cr_assert_eq(ex->ops->stop(ex, clock_mono_ns() + 50000000), -1,
	    "stop returned 0 with a taken call not executed");
	release_holds();
	pthread_join(th, &rc);
	cr_assert_eq((int)(intptr_t)rc, EXEC_DONE);
	cr_assert(pthread_equal(h->run_thread, th));
	WAIT_UNTIL(atomic_load(&w->executed) == 1);
	cr_assert_eq(ex->ops->stop(ex, clock_mono_ns() + WAIT_NS), 0);
	cr_assert_eq(atomic_load(&w->executed), 1);
	ex->ops->free(ex);
	ex = NULL;
	tcall_free(h);
	tcall_free(w);
	expect_freed();
}
