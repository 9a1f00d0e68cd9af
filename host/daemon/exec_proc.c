/*
 * exec_proc.c - the process executor: an isolated generation's calls run
 * in its pool of cmdhost-worker processes.
 *
 * Each worker process has one thread here that owns it whole: it forks
 * it (so the process dies with that thread's pool, PR_SET_PDEATHSIG),
 * sends it calls from the pool's queue (up to worker_inflight at once),
 * reads its replies, kills its process group when a call passes its
 * deadline, sees it die, answers what it held and starts the next one
 * (at once after a timeout, a recycle or a memory limit; with a growing
 * backoff after crashes).  Calls never wait for a spawn unless every
 * process of the pool is being replaced.  Dispatch still owns deadlines'
 * answers; this file answers only with results and with the 500s of
 * calls whose worker died.
 */
#include "proc.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/generation.h"
#include "core/invocation.h"
#include "core/ipc.h"
#include "core/loader.h"
#include "core/log.h"
#include "core/thread.h"
#include "executor.h"

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 2000
#define CRASH_RING 4                   /* this many crashes...      */
#define CRASH_WINDOW_NS 10000000000LL  /* ...within this: crashing */

enum reason { R_CRASH, R_TIMEOUT, R_RECYCLE, R_MEMORY, R_IDLE, R_KINDS };
static const char *const reason_names[R_KINDS] = {
	"crash", "timeout", "recycle", "memory", "idle"
};

/* Per plugin name, for host.stats: outlives generations (a few bytes per
 * name ever isolated, never freed). */
struct wstats {
	struct wstats *next;
	char name[CMDHOST_NAME_MAX + 1];
	atomic_ulong restarts[R_KINDS];
	atomic_int live;
};
static pthread_mutex_t ws_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wstats *ws_list;

/* Calls taken and not yet executed, across pools: what stop waits for. */
static pthread_mutex_t flight_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flight_cond = PTHREAD_COND_INITIALIZER;
static long in_flight;

struct slot {
	struct call *c;
	int64_t seq;
};

struct worker {
	struct proc_pool *pool;
	int idx;
	pthread_t thread;
	int thread_started;
	int wake;               /* eventfd: a call is queued, or stop */
	int idle;               /* under pool lock: waiting, may take calls */
	struct proc_child ch;   /* pid 0: none; the worker thread's own */
	atomic_int shown_pid;   /* ch.pid for views (any thread) */
	long served;            /* calls sent to this process */
	int quit_asked;         /* a recycle asked it to go */
	int backoff_ms;         /* waited before the next spawn */
	int crashes;            /* in a row, with no call answered < 500 */
	struct slot *slots;     /* lim.depth of them, in the order sent */
	int n_inflight;
	char *rbuf;
	size_t rcap;
};

struct proc_pool {
	const struct config *cfg;
	struct generation *g;   /* borrowed: the owner */
	int copy_fd;            /* owned: the sealed private copy */
	struct proc_limits lim;
	struct wstats *ws;
	pthread_mutex_t lock;
	pthread_cond_t cond;    /* readiness, and stop */
	struct call_queue queue;
	int queued;
	int stopping;
	int n_ready, n_failed;
	char first_err[600];
	int64_t crashes[CRASH_RING];
	unsigned crash_i;
	int64_t seq;
	struct worker *w;
	int n_w;
};

struct exec_proc {
	struct executor base;   /* first */
	const struct config *cfg;
	atomic_int stopping;
};

/* ------------------------------------------------------------ helpers */

static struct wstats *
wstats_of(const char *name)
{
	struct wstats *s;

	pthread_mutex_lock(&ws_lock);
	for (s = ws_list; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			break;
	if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
		snprintf(s->name, sizeof(s->name), "%s", name);
		s->next = ws_list;
		ws_list = s;
	}
	pthread_mutex_unlock(&ws_lock);
	return s;
}

static void
flight_add(long n)
{
	pthread_mutex_lock(&flight_lock);
	in_flight += n;
	if (in_flight == 0)
		pthread_cond_broadcast(&flight_cond);
	pthread_mutex_unlock(&flight_lock);
}

static void
wake(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->wake, &one, sizeof(one)) < 0) {
		/* Full counter: it is awake anyway. */
	}
}

int
proc_stub_execute(cmdhost_ctx *ctx)
{
	return cmdhost_fail(ctx, 503, "unavailable", "an isolated command "
	    "reached the in-process executor (its plugin's isolation changed "
	    "while the call waited); retry");
}

static int enqueue(struct proc_pool *p, struct call *c, int force);

/* A SERIAL call is done: hand its gate to the next waiting call. */
static void
gate_leave(struct cmd_sched *sc)
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
	if (next == NULL)
		return;
	if (next->inv.cmd->gen->pool != NULL) {
		enqueue(next->inv.cmd->gen->pool, next, 1);
		return;
	}
	/* Its generation runs in-process now: answer, and pass the gate. */
	next->inv.end_ns = clock_mono_ns();
	invocation_set_error(&next->inv, 503, "unavailable", "the command's "
	    "isolation changed while the call waited; retry");
	gate_leave(sc);
	next->executed(next);
	flight_add(-1);
}

/* c is done (its result is set, or it never started): let it go. */
static void
finish(struct call *c)
{
	struct command *cmd = c->inv.cmd;

	if (c->inv.end_ns == 0)
		c->inv.end_ns = clock_mono_ns();
	if (cmd->flags & CMDHOST_SERIAL)
		gate_leave(cmd->sched);
	c->executed(c); /* c may be gone now */
	flight_add(-1);
}

/* Queue c (taken already when force) and wake one idle worker.  Returns
 * EXEC_QUEUED or EXEC_REJECTED (queue full, stopping; never when force). */
static int
enqueue(struct proc_pool *p, struct call *c, int force)
{
	struct worker *idle = NULL;

	pthread_mutex_lock(&p->lock);
	if (!force && (p->stopping || p->queued >= p->cfg->queue_depth)) {
		pthread_mutex_unlock(&p->lock);
		return EXEC_REJECTED;
	}
	if (!force) {
		c->taken(c);
		flight_add(1);
	}
	STAILQ_INSERT_TAIL(&p->queue, c, exec_link);
	p->queued++;
	for (int i = 0; i < p->n_w; i++) {
		if (p->w[i].idle) {
			idle = &p->w[i];
			idle->idle = 0;
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (idle != NULL)
		wake(idle);
	return EXEC_QUEUED;
}

/* Wake every idle worker of p: calls went back to the queue. */
static void
wake_idle(struct proc_pool *p)
{
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < p->n_w; i++) {
		if (p->w[i].idle) {
			p->w[i].idle = 0;
			wake(&p->w[i]);
		}
	}
	pthread_mutex_unlock(&p->lock);
}

/* ------------------------------------------------------------ one worker */

static void
wlog(struct worker *w, int level, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
wlog(struct worker *w, int level, const char *reason, const char *fmt, ...)
{
	struct generation *g = w->pool->g;
	struct log_ctx lc = LOG_CTX_INIT;
	va_list ap;

	lc.plugin = g->name;
	lc.version = g->version;
	lc.file = g->file;
	lc.generation = (long long)g->number;
	lc.reason = reason;
	va_start(ap, fmt);
	log_emitv(level, &lc, fmt, ap);
	va_end(ap);
}

/* Send c to the worker's process.  Returns 0, -EAGAIN (not sent: the
 * socket is full) or another negative errno (the process is gone). */
static int
send_call(struct worker *w, struct call *c, int64_t seq)
{
	struct invocation *inv = &c->inv;
	struct command *cmd = inv->cmd;
	struct ipc_msg m;
	size_t plen;
	const char *ptext = cmdhost_payload_text(&inv->ctx, &plen);
	int rc;

	ipc_msg_init(&m, IPC_CALL);
	ipc_put_i64(&m, seq);
	ipc_put_u32(&m, (uint32_t)(cmd - cmd->gen->commands));
	ipc_put_i64(&m, inv->deadline_ns);
	ipc_put_i64(&m, inv->start_ns);
	ipc_put_i64(&m, inv->peer_pid);
	ipc_put_i64(&m, inv->peer_uid);
	ipc_put_cstr(&m, inv->request_id);
	ipc_put_cstr(&m, inv->id_text);
	ipc_put_str(&m, ptext, plen);
	rc = ipc_send(w->ch.sock, &m, MSG_DONTWAIT);
	ipc_msg_fini(&m);
	return rc;
}

/* Set c's result from a REPLY's fields. */
static void
set_result(struct call *c, int status, const char *body, const char *code,
    const char *msg)
{
	struct invocation *inv = &c->inv;

	inv->end_ns = clock_mono_ns();
	if (status >= 200 && status <= 299) {
		struct json_object *o = NULL;

		if (body != NULL && strcmp(body, "null") != 0 &&
		    (o = json_tokener_parse(body)) == NULL) {
			invocation_set_error(inv, 500, "bad_reply", "the "
			    "worker's reply body is not JSON");
			return;
		}
		inv->status = status;
		inv->body = o;
		inv->finished = 1;
		return;
	}
	invocation_set_error(inv, status, code ? code : "command_failed",
	    msg ? msg : "");
}

/* Read every reply waiting on the socket.  Returns 1 if the process is
 * still there, 0 if its socket ended (or broke). */
static int
read_replies(struct worker *w)
{
	for (;;) {
		struct ipc_rd rd;
		size_t len;
		int rc = ipc_recv(w->ch.sock, MSG_DONTWAIT, &w->rbuf, &w->rcap,
		    &len);
		int64_t seq;
		int status;
		const char *body, *code, *msg;

		if (rc == -EAGAIN)
			return 1;
		if (rc <= 0)
			return 0;
		if (ipc_rd_init(&rd, w->rbuf, len) != IPC_REPLY)
			continue;
		seq = ipc_get_i64(&rd);
		status = (int)ipc_get_u32(&rd);
		body = ipc_get_str(&rd, NULL);
		code = ipc_get_str(&rd, NULL);
		msg = ipc_get_str(&rd, NULL);
		if (rd.bad)
			continue;
		for (int i = 0; i < w->n_inflight; i++) {
			struct call *c = w->slots[i].c;

			if (w->slots[i].seq != seq)
				continue;
			/* Kept in the order sent: slots[0] is the oldest. */
			memmove(&w->slots[i], &w->slots[i + 1],
			    (size_t)(--w->n_inflight - i) * sizeof(w->slots[0]));
			set_result(c, status, body, code, msg);
			if (status < 500) /* it works again */
				w->backoff_ms = w->crashes = 0;
			finish(c);
			break;
		}
	}
}

/* Note a crash for "crashing".  Pool lock held. */
static void
note_crash(struct proc_pool *p)
{
	p->crashes[p->crash_i++ % CRASH_RING] = clock_mono_ns();
	atomic_fetch_add(&p->g->worker_crashes, 1);
}

/* The earliest deadline of the calls w is running, or 0.  A worker that
 * runs one call at a time runs its oldest; the calls sent behind it are
 * waiting, and one whose deadline passes there is answered by dispatch
 * and skipped by the worker, with no need to kill it. */
static int64_t
earliest(const struct worker *w)
{
	int64_t e = 0;

	if (w->pool->lim.inflight == 1)
		return w->n_inflight > 0 ? w->slots[0].c->inv.deadline_ns : 0;
	for (int i = 0; i < w->n_inflight; i++)
		if (e == 0 || w->slots[i].c->inv.deadline_ns < e)
			e = w->slots[i].c->inv.deadline_ns;
	return e;
}

/* Put w's calls from slots[from] on, which a one-call worker never
 * started, back at the head of the queue in the order they were sent:
 * the plugin never saw them, so another worker or the respawned one runs
 * them.  One already answered (its deadline) is finished instead. */
static void
requeue_unstarted(struct worker *w, int from)
{
	struct proc_pool *p = w->pool;

	while (w->n_inflight > from) {
		struct call *c = w->slots[--w->n_inflight].c;
		int expected = INV_RUNNING;

		if (!atomic_compare_exchange_strong(&c->inv.state, &expected,
		    INV_QUEUED)) {
			finish(c);
			continue;
		}
		pthread_mutex_lock(&p->lock);
		STAILQ_INSERT_HEAD(&p->queue, c, exec_link);
		p->queued++;
		pthread_mutex_unlock(&p->lock);
	}
}

/* The worker's process ended (status from proc_end) for `why`: answer
 * every call it held, count and log it.  `expired`: the deadline that
 * made us kill it (0: none). */
static void
ended(struct worker *w, pid_t pid, int status, enum reason why,
    int64_t expired)
{
	struct proc_pool *p = w->pool;
	char st[96], msg[400];
	int held;

	atomic_store(&w->shown_pid, 0);
	proc_status_text(status, st, sizeof(st));
	if (why == R_CRASH && WIFEXITED(status) &&
	    WEXITSTATUS(status) == IPC_EXIT_MEMORY)
		why = R_MEMORY;
	/* Counted before any call is answered: a client that saw its 500
	 * sees the restart in host.stats. */
	if (p->ws != NULL) {
		atomic_fetch_add(&p->ws->restarts[why], 1);
		atomic_fetch_sub(&p->ws->live, 1);
	}
	/* A worker that runs one call at a time was running its oldest; the
	 * calls sent behind it never started.  After a memory recycle it had
	 * answered the call that grew and started none after it. */
	if (p->lim.inflight == 1) {
		int before = w->n_inflight;

		requeue_unstarted(w, why == R_MEMORY ? 0 : 1);
		if (w->n_inflight < before)
			wake_idle(p);
	}
	held = w->n_inflight;
	for (int i = 0; i < w->n_inflight; i++) {
		struct call *c = w->slots[i].c;

		if (why == R_TIMEOUT && c->inv.deadline_ns <= expired) {
			snprintf(msg, sizeof(msg), "the command did not finish "
			    "before its deadline; its worker (pid %d) was "
			    "killed", (int)pid);
			c->inv.end_ns = clock_mono_ns();
			invocation_set_error(&c->inv, 504, "timeout", msg);
		} else {
			if (why == R_TIMEOUT)
				snprintf(msg, sizeof(msg), "the plugin's worker "
				    "(pid %d) was killed during this call: "
				    "another call in it passed its deadline",
				    (int)pid);
			else if (why == R_MEMORY)
				snprintf(msg, sizeof(msg), "the plugin's worker "
				    "(pid %d) went past worker_memory_bytes "
				    "during this call and was recycled",
				    (int)pid);
			else
				snprintf(msg, sizeof(msg), "the plugin's worker "
				    "(pid %d) %s during this call", (int)pid,
				    st);
			c->inv.end_ns = clock_mono_ns();
			invocation_set_error(&c->inv, 500, why == R_MEMORY ?
			    "worker_memory" : "plugin_crashed", msg);
		}
		finish(c);
	}
	w->n_inflight = 0;
	pthread_mutex_lock(&p->lock);
	if (why == R_CRASH)
		note_crash(p);
	pthread_mutex_unlock(&p->lock);
	/* A crash after good calls is respawned at once (a call waits for
	 * no back-off there); the second in a row waits BACKOFF_MIN_MS, and
	 * each further one twice as long, up to BACKOFF_MAX_MS. */
	if (why == R_CRASH && ++w->crashes > 1)
		w->backoff_ms = w->backoff_ms == 0 ? BACKOFF_MIN_MS :
		    w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
		    w->backoff_ms * 2;
	else if (why != R_CRASH)
		w->backoff_ms = w->crashes = 0;
	wlog(w, why == R_CRASH ? LOGL_ERROR : why == R_RECYCLE ? LOGL_INFO :
	    LOGL_WARN, reason_names[why], "worker %d (pid %d) of plugin %s %s "
	    "(%s), %d call%s in it answered; %s", w->idx, (int)pid,
	    p->g->name, why == R_TIMEOUT ? "killed: a call passed its "
	    "deadline" : why == R_MEMORY ? "went past worker_memory_bytes" :
	    why == R_RECYCLE ? "recycled after max_requests" : "died", st,
	    held, held == 1 ? " was" : "s were", p->stopping ? "not "
	    "replaced (stopping)" : w->backoff_ms ? "respawning after a "
	    "backoff" : "respawning");
}

/* Start a process for w until deadline_ns.  Returns 0 or -1 (err). */
static int
spawn(struct worker *w, int64_t deadline_ns, char *err, size_t errlen)
{
	struct proc_pool *p = w->pool;
	struct generation *ng = NULL;

	if (proc_spawn(p->cfg, p->copy_fd, p->g->file, &p->lim, 0,
	    deadline_ns, &w->ch, &ng, err, errlen) < 0)
		return -1;
	if (ng->n_commands != p->g->n_commands) {
		snprintf(err, errlen, "the worker registered %zu commands, "
		    "not %zu as before", ng->n_commands, p->g->n_commands);
		loader_unload(ng);
		proc_end(&w->ch, 0, 0);
		return -1;
	}
	loader_unload(ng);
	atomic_store(&w->shown_pid, (int)w->ch.pid);
	w->served = 0;
	w->quit_asked = 0;
	if (p->ws != NULL)
		atomic_fetch_add(&p->ws->live, 1);
	return 0;
}

/* Take calls from the queue and send them while w has room.  A call
 * answered already is let go unstarted; one the socket cannot take now
 * goes back to the head of the queue.  Returns 0, or -1 if sending found
 * the process gone. */
static int
fill(struct worker *w)
{
	struct proc_pool *p = w->pool;
	long max_req = p->lim.max_requests;

	while (w->n_inflight < p->lim.depth &&
	    (max_req == 0 || w->served < max_req)) {
		struct call *c;
		int64_t seq;
		int rc;

		pthread_mutex_lock(&p->lock);
		if ((c = STAILQ_FIRST(&p->queue)) != NULL) {
			STAILQ_REMOVE_HEAD(&p->queue, exec_link);
			p->queued--;
		}
		seq = ++p->seq;
		pthread_mutex_unlock(&p->lock);
		if (c == NULL)
			return 0;
		if (!invocation_start(&c->inv)) {
			finish(c); /* answered already: never started */
			continue;
		}
		if (clock_mono_ns() >= c->inv.deadline_ns) {
			c->inv.end_ns = clock_mono_ns();
			invocation_set_error(&c->inv, 504, "timeout", "the "
			    "command waited in the queue past its deadline");
			finish(c);
			continue;
		}
		rc = send_call(w, c, seq);
		if (rc == 0) {
			w->slots[w->n_inflight].c = c;
			w->slots[w->n_inflight].seq = seq;
			w->n_inflight++;
			w->served++;
			continue;
		}
		/* Not sent: it never started; put it back first in line.
		 * (Its state is RUNNING now, which only changes what cancel
		 * says: "did not finish".) */
		pthread_mutex_lock(&p->lock);
		STAILQ_INSERT_HEAD(&p->queue, c, exec_link);
		p->queued++;
		pthread_mutex_unlock(&p->lock);
		atomic_store(&c->inv.state, INV_QUEUED);
		return rc == -EAGAIN || rc == -ENOMEM ? 0 : -1;
	}
	return 0;
}


/* Wait, with the pool's stop in view, for `ms`. */
static void
backoff_wait(struct proc_pool *p, int ms)
{
	struct timespec ts = clock_mono_ts(clock_mono_ns() +
	    (int64_t)ms * 1000000);

	pthread_mutex_lock(&p->lock);
	if (!p->stopping)
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	pthread_mutex_unlock(&p->lock);
}

/* Replace w's process after max_requests: the successor first, so that
 * calls wait for no spawn, then the old one finishes (fini) and goes. */
static void
recycle(struct worker *w)
{
	struct proc_pool *p = w->pool;
	struct proc_child old = w->ch;
	char err[600];
	int st;

	if (spawn(w, clock_mono_ns() + (int64_t)p->cfg->load_timeout_ms *
	    1000000, err, sizeof(err)) < 0) {
		w->ch = old;
		atomic_store(&w->shown_pid, (int)old.pid);
		w->served = 0; /* keep the old one; try again later */
		wlog(w, LOGL_WARN, "recycle", "worker %d of plugin %s cannot be "
		    "recycled: %s; the old process keeps serving", w->idx,
		    p->g->name, err);
		return;
	}
	st = proc_end(&old, 1, clock_mono_ns() +
	    (int64_t)p->cfg->fini_timeout_ms * 1000000);
	if (p->ws != NULL) {
		atomic_fetch_add(&p->ws->restarts[R_RECYCLE], 1);
		atomic_fetch_sub(&p->ws->live, 1);
	}
	{
		char s[96];

		wlog(w, LOGL_INFO, "recycle", "worker %d (pid %d) of plugin %s "
		    "recycled after %ld calls (%s); pid %d serves now", w->idx,
		    (int)old.pid, p->g->name, p->lim.max_requests,
		    proc_status_text(st, s, sizeof(s)), (int)w->ch.pid);
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct proc_pool *p = w->pool;
	char err[600];
	int ok;

	thread_use_c_locale();
	ok = spawn(w, clock_mono_ns() + (int64_t)p->cfg->load_timeout_ms *
	    1000000, err, sizeof(err)) == 0;
	pthread_mutex_lock(&p->lock);
	if (ok) {
		p->n_ready++;
	} else {
		if (p->n_failed++ == 0)
			snprintf(p->first_err, sizeof(p->first_err), "%s", err);
	}
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (!ok)
		return NULL; /* the pool is refused as a whole */

	for (;;) {
		struct pollfd pf[3];
		int64_t dl, now;
		int n = 0, timeout = -1, alive = 1, can_take, rc;

		pthread_mutex_lock(&p->lock);
		if (p->stopping && w->n_inflight == 0) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		pthread_mutex_unlock(&p->lock);
		if (w->ch.pid == 0) {
			if (w->backoff_ms > 0)
				backoff_wait(p, w->backoff_ms);
			pthread_mutex_lock(&p->lock);
			ok = p->stopping;
			pthread_mutex_unlock(&p->lock);
			if (ok)
				break;
			if (spawn(w, clock_mono_ns() +
			    (int64_t)p->cfg->load_timeout_ms * 1000000, err,
			    sizeof(err)) < 0) {
				w->backoff_ms = w->backoff_ms == 0 ?
				    BACKOFF_MIN_MS : w->backoff_ms * 2 >
				    BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
				    w->backoff_ms * 2;
				wlog(w, LOGL_ERROR, "crash", "worker %d of "
				    "plugin %s cannot be started again: %s",
				    w->idx, p->g->name, err);
			}
			continue;
		}
		if (p->lim.max_requests > 0 && w->served >=
		    p->lim.max_requests && w->n_inflight == 0) {
			recycle(w);
			continue;
		}
		if (fill(w) < 0)
			alive = 0;
		pthread_mutex_lock(&p->lock);
		can_take = w->n_inflight < p->lim.depth &&
		    (p->lim.max_requests == 0 || w->served <
		    p->lim.max_requests);
		if (alive && can_take && !STAILQ_EMPTY(&p->queue)) {
			pthread_mutex_unlock(&p->lock);
			continue;
		}
		w->idle = can_take && !p->stopping;
		pthread_mutex_unlock(&p->lock);

		if (alive) {
			pf[n].fd = w->ch.sock;
			pf[n++].events = POLLIN;
			pf[n].fd = w->wake;
			pf[n++].events = POLLIN;
			if (w->ch.pidfd >= 0) {
				pf[n].fd = w->ch.pidfd;
				pf[n++].events = POLLIN;
			}
			if ((dl = earliest(w)) != 0) {
				now = clock_mono_ns();
				timeout = dl <= now ? 0 :
				    (int)((dl - now + 999999) / 1000000);
			}
			rc = poll(pf, (nfds_t)n, timeout);
			if (rc < 0 && errno != EINTR)
				alive = 0;
		}
		pthread_mutex_lock(&p->lock);
		w->idle = 0;
		pthread_mutex_unlock(&p->lock);
		if (alive && (pf[1].revents & POLLIN)) {
			uint64_t v;

			if (read(w->wake, &v, sizeof(v)) < 0) {
				/* EAGAIN: nothing to drain */
			}
		}
		if (alive && (pf[0].revents || (n > 2 && pf[2].revents)))
			alive = read_replies(w);
		if (alive && n > 2 && pf[2].revents)
			alive = 0; /* it exited; its replies are read */
		if (!alive) {
			pid_t pid = w->ch.pid;
			int st;

			/* What it answered before it died (a send that found
			 * it gone skipped the read): those calls are done, and
			 * the oldest left is the one it died in. */
			read_replies(w);
			/* Its socket ended: let it finish exiting, so that its
			 * own status (a memory recycle's) is the one seen. */
			st = proc_end(&w->ch, 0, clock_mono_ns() + 200000000LL);

			ended(w, pid, st, R_CRASH, 0);
			continue;
		}
		now = clock_mono_ns();
		if ((dl = earliest(w)) != 0 && dl <= now) {
			/* A call passed its deadline: dispatch answered 504;
			 * nothing it started may go on. */
			pid_t pid = w->ch.pid;
			int st = proc_end(&w->ch, 0, 0);

			ended(w, pid, st, R_TIMEOUT, now);
		}
	}
	atomic_store(&w->shown_pid, 0);
	if (w->ch.pid != 0) {
		proc_end(&w->ch, 1, clock_mono_ns() +
		    (int64_t)p->cfg->fini_timeout_ms * 1000000 / 2);
		if (p->ws != NULL)
			atomic_fetch_sub(&p->ws->live, 1);
	}
	return NULL;
}

/* ------------------------------------------------------------ the pool */

static void
pool_free(struct proc_pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n_w; i++)
		if (p->w[i].thread_started)
			wake(&p->w[i]);
	for (int i = 0; i < p->n_w; i++) {
		struct worker *w = &p->w[i];

		if (w->thread_started)
			pthread_join(w->thread, NULL);
		if (w->wake >= 0)
			close(w->wake);
		free(w->slots);
		free(w->rbuf);
	}
	if (p->copy_fd >= 0)
		close(p->copy_fd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->w);
	free(p);
}

int
proc_pool_start(const struct config *cfg, struct generation *g,
    int copy_fd, const struct proc_limits *lim, int64_t deadline_ns,
    char *err, size_t errlen)
{
	struct proc_pool *p = calloc(1, sizeof(*p));
	int started = 0;

	if (p == NULL || (p->w = calloc((size_t)lim->workers,
	    sizeof(*p->w))) == NULL) {
		free(p);
		close(copy_fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->cfg = cfg;
	p->g = g;
	p->copy_fd = copy_fd;
	p->lim = *lim;
	p->ws = wstats_of(g->name);
	pthread_mutex_init(&p->lock, NULL);
	thread_cond_init(&p->cond);
	STAILQ_INIT(&p->queue);
	p->n_w = lim->workers;
	for (int i = 0; i < p->n_w; i++) {
		struct worker *w = &p->w[i];

		w->pool = p;
		w->idx = i;
		w->ch.pidfd = w->ch.sock = -1;
		w->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		w->slots = calloc((size_t)lim->depth, sizeof(*w->slots));
		if (w->wake < 0 || w->slots == NULL ||
		    pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			snprintf(err, errlen, "cannot start worker %d: %s", i,
			    strerror(errno ? errno : ENOMEM));
			pool_free(p);
			return -1;
		}
		w->thread_started = 1;
		started++;
	}
	pthread_mutex_lock(&p->lock);
	while (p->n_ready + p->n_failed < started) {
		struct timespec ts = clock_mono_ts(deadline_ns);

		if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) ==
		    ETIMEDOUT)
			break;
	}
	if (p->n_failed > 0 || p->n_ready < started) {
		if (p->n_failed > 0)
			snprintf(err, errlen, "%s", p->first_err);
		else
			snprintf(err, errlen, "its %d workers were not ready in "
			    "time (load_timeout_ms %d)", started,
			    cfg->load_timeout_ms);
		pthread_mutex_unlock(&p->lock);
		pool_free(p);
		return -1;
	}
	pthread_mutex_unlock(&p->lock);
	g->pool = p;
	g->pool_free = pool_free;
	g->isolation = ISOLATION_PROCESS;
	return 0;
}

void
proc_pool_describe(const struct proc_pool *p, struct json_object *into)
{
	struct json_object *pids;
	struct proc_pool *mp = (struct proc_pool *)p;

	json_object_object_add(into, "isolation", json_object_new_string(
	    p != NULL ? "process" : "inprocess"));
	if (p == NULL)
		return;
	pids = json_object_new_array();
	for (int i = 0; i < p->n_w; i++) {
		int pid = atomic_load(&mp->w[i].shown_pid);

		if (pid > 0)
			json_object_array_add(pids, json_object_new_int(pid));
	}
	json_object_object_add(into, "workers",
	    json_object_new_int(p->n_w));
	json_object_object_add(into, "worker_pids", pids);
	json_object_object_add(into, "worker_inflight",
	    json_object_new_int(p->lim.inflight));
	json_object_object_add(into, "worker_crashes", json_object_new_int64(
	    (int64_t)atomic_load(&p->g->worker_crashes)));
}

int
proc_pool_crashing(const struct proc_pool *p)
{
	struct proc_pool *mp = (struct proc_pool *)p;
	int64_t now = clock_mono_ns(), oldest;
	int crashing;

	if (p == NULL)
		return 0;
	pthread_mutex_lock(&mp->lock);
	/* CRASH_RING crashes, the oldest of them within the window. */
	oldest = p->crash_i >= CRASH_RING ? p->crashes[p->crash_i %
	    CRASH_RING] : 0;
	crashing = oldest != 0 && now - oldest < CRASH_WINDOW_NS;
	pthread_mutex_unlock(&mp->lock);
	return crashing;
}

/* ------------------------------------------------------------ executor */

static int
proc_submit(struct executor *ex, struct call *c)
{
	struct exec_proc *e = (struct exec_proc *)ex;
	struct command *cmd = c->inv.cmd;
	struct proc_pool *p = cmd->gen->pool;
	struct cmd_sched *sc = cmd->sched;
	int rc;

	if (p == NULL || atomic_load_explicit(&e->stopping,
	    memory_order_relaxed))
		return EXEC_REJECTED;
	if (!(cmd->flags & CMDHOST_SERIAL))
		return enqueue(p, c, 0);
	/* SERIAL across every worker (and generation): one gate per name. */
	pthread_mutex_lock(&sc->lock);
	if (sc->busy) {
		if (sc->waiting >= e->cfg->queue_depth) {
			pthread_mutex_unlock(&sc->lock);
			return EXEC_REJECTED;
		}
		c->taken(c);
		flight_add(1);
		STAILQ_INSERT_TAIL(&sc->waiters, c, exec_link);
		sc->waiting++;
		pthread_mutex_unlock(&sc->lock);
		return EXEC_QUEUED;
	}
	sc->busy = 1;
	pthread_mutex_unlock(&sc->lock);
	if ((rc = enqueue(p, c, 0)) == EXEC_REJECTED)
		gate_leave(sc);
	return rc;
}

static int
proc_cancel(struct executor *ex, struct call *c)
{
	(void)ex;
	return invocation_cancel(&c->inv);
}

static int
proc_stop(struct executor *ex, int64_t deadline_ns)
{
	struct exec_proc *e = (struct exec_proc *)ex;
	int rc = 0;

	atomic_store(&e->stopping, 1);
	pthread_mutex_lock(&flight_lock);
	while (in_flight > 0) {
		struct timespec ts = clock_mono_ts(deadline_ns);

		if (pthread_cond_timedwait(&flight_cond, &flight_lock, &ts) ==
		    ETIMEDOUT) {
			rc = in_flight > 0 ? -1 : 0;
			break;
		}
	}
	pthread_mutex_unlock(&flight_lock);
	return rc;
}

static void
proc_free(struct executor *ex)
{
	free(ex);
}

static void
proc_stats(struct executor *ex, struct json_object *into)
{
	struct json_object *all = json_object_new_object();
	struct wstats *s;

	(void)ex;
	pthread_mutex_lock(&ws_lock);
	for (s = ws_list; s != NULL; s = s->next) {
		struct json_object *o = json_object_new_object();
		struct json_object *r = json_object_new_object();

		for (int k = 0; k < R_KINDS; k++)
			json_object_object_add(r, reason_names[k],
			    json_object_new_uint64(atomic_load(
			    &s->restarts[k])));
		json_object_object_add(o, "live",
		    json_object_new_int(atomic_load(&s->live)));
		json_object_object_add(o, "restarts", r);
		json_object_object_add(all, s->name, o);
	}
	pthread_mutex_unlock(&ws_lock);
	json_object_object_add(into, "workers", all);
}

static const struct executor_ops proc_ops = {
	.name = "process",
	.submit = proc_submit,
	.cancel = proc_cancel,
	.stop = proc_stop,
	.free = proc_free,
	.stats = proc_stats,
};

struct executor *
exec_proc_new(const struct config *cfg)
{
	struct exec_proc *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->base.ops = &proc_ops;
	e->cfg = cfg;
	atomic_init(&e->stopping, 0);
	return &e->base;
}
