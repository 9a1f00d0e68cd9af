/*
 * workflow.c - the workflow engine: definitions published as commands,
 * the executor their calls go to, and the executions it advances.
 *
 * An execution is advanced by one engine thread at a time and never
 * waits on a step: a Task is a call of dispatch whose completion (on
 * whichever thread answers it) puts the execution back on the run
 * queue.  Each transition is stored (wf_store.c) before the next one is
 * decided, with a snapshot of where the execution stands, so that after
 * a crash it resumes there: a step scheduled but not recorded runs
 * again under the same idempotency key.  Definitions are read by a
 * polling thread; an execution holds the generation (or, resumed, its
 * own copy of the definition it started with).
 */
#include "workflow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/generation.h"
#include "core/invocation.h"
#include "core/log.h"
#include "core/nats_api.h"
#include "core/request.h"
#include "core/thread.h"
#include "core/wf_def.h"
#include "dispatch.h"
#include "executor.h"
#include "nats_host.h"
#include "registry.h"
#include "wf_kv.h"
#include "wf_store.h"

#define MAX_DEF_BYTES (1 << 20)
#define WF_RID_SOURCE 0xfe

/* What an execution does when a thread takes it next. */
enum todo {
	TODO_ENTER = 0,     /* enter state cur */
	TODO_SCHEDULE,      /* call the Task of cur (attempt) */
	TODO_RESULT,        /* the Task's answer is in res_* */
	TODO_COMP,          /* compensate done[comp_next] */
	TODO_COMP_SCHEDULE, /* call its compensation (comp_attempt) */
	TODO_COMP_RESULT,   /* the compensation's answer is in res_* */
	TODO_PARKED         /* the daemon is stopping: leave it */
};

/* Per-workflow figures for host.stats. */
#define N_BUCKETS 16
static const int64_t bucket_ms[N_BUCKETS] = { 1, 2, 5, 10, 20, 50, 100,
	200, 500, 1000, 2000, 5000, 10000, 30000, 60000, INT64_MAX };

struct wf_metrics {
	SLIST_ENTRY(wf_metrics) link;
	char name[CMDHOST_NAME_MAX + 1];
	uint64_t started, resumed, succeeded, failed, compensated,
	    compensation_failed, steps, retries, running;
	uint64_t buckets[N_BUCKETS];
	uint64_t sum_ms;
};

/* The counters of struct wf_metrics as host.stats names them, in order. */
static const struct {
	const char *name;
	size_t off;
} metric_fields[] = {
	{ "started", offsetof(struct wf_metrics, started) },
	{ "resumed", offsetof(struct wf_metrics, resumed) },
	{ "succeeded", offsetof(struct wf_metrics, succeeded) },
	{ "failed", offsetof(struct wf_metrics, failed) },
	{ "compensated", offsetof(struct wf_metrics, compensated) },
	{ "compensation_failed", offsetof(struct wf_metrics,
	    compensation_failed) },
	{ "running", offsetof(struct wf_metrics, running) },
	{ "steps", offsetof(struct wf_metrics, steps) },
	{ "retries", offsetof(struct wf_metrics, retries) },
	{ "duration_ms_sum", offsetof(struct wf_metrics, sum_ms) },
};

struct wexec {
	TAILQ_ENTRY(wexec) link;     /* run queue or sleepers */
	TAILQ_ENTRY(wexec) live_link; /* e->live, when in_live */
	int in_live;                 /* on e->live (under e->lock) */
	uint64_t kv_rev;             /* the bucket: its record's revision */
	int lost;                    /* the bucket: another daemon took it */
	int kv_failed;               /* the bucket could not record it */
	struct wf_engine *eng;
	char id[48];
	struct generation *gen;      /* held, or NULL (resumed) */
	struct wf_def *own_def;      /* owned when resumed */
	const struct wf_def *def;
	struct wf_metrics *m;
	struct call *call;           /* the waiting caller's, or NULL */
	int depth;
	enum todo todo;
	int phase_comp;              /* compensating */
	int cur;                     /* state index */
	struct json_object *doc;     /* cur's raw input (owned) */
	struct json_object *input;   /* execution input (owned) */
	long visit;                  /* states entered */
	int attempt;                 /* of the Task at cur, 1-based */
	int scheduled;               /* its call went out, unrecorded */
	int retries[64];             /* per retrier of cur */
	struct json_object *done;    /* completed Tasks (owned array) */
	int comp_next;               /* index in done, going down */
	int comp_attempt;
	int comp_retries[64];
	struct json_object *comps;   /* compensations run (owned array) */
	struct json_object *failure; /* why it failed (owned), or NULL */
	struct json_object *sent;    /* the Task's payload (owned) */
	int64_t wake_ms;             /* wall: a retry's time, or 0 */
	int64_t wake_ns;
	int64_t started_ms;
	int64_t start_ns;
	long events;
	int in_flight;               /* a step call is out */
	/* The last step answer. */
	int res_status;
	struct json_object *res_body;
	char *res_code, *res_msg;
	char res_rid[24];               /* as invocation.request_id */
	int res_transport;           /* the answer is NATS's own failure */
	int64_t remote_ns;           /* a step over NATS: when it left */
	char remote_cmd[CMDHOST_NAME_MAX + 1];
};

TAILQ_HEAD(wexec_list, wexec);

/* A file of workflow_dir as last seen. */
struct wfile {
	SLIST_ENTRY(wfile) link;
	char *name;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	uint64_t hash;               /* of what was published, 0: none */
	char cmd[CMDHOST_NAME_MAX + 1]; /* the command it published */
	int seen;
};

struct wf_exec_ex {
	struct executor base;        /* first */
	struct wf_engine *eng;
};

struct wf_engine {
	const struct config *cfg;
	struct registry *reg;
	struct dispatch *disp;
	_Atomic(struct nats_host *) nats; /* steps not served here, or NULL */
	struct wf_store *store;
	struct wf_exec_ex *ex;       /* owned by dispatch once installed */
	struct dispatch_owner owner; /* steps: no post */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_cond_t idle;         /* in_flight fell */
	struct wexec_list runq, sleepers, waiting; /* waiting: step out */
	struct wexec_list live;      /* every execution driven here */
	struct wf_kv *kv;            /* [jetstream] workflow_bucket, or NULL */
	int stopping;
	int stop_now;                /* past the quiesce deadline */
	int n_threads, started;
	pthread_t *threads;
	atomic_int running;          /* unfinished executions */
	int in_flight;               /* step calls out */
	atomic_uint_fast64_t seq;

	pthread_mutex_t mlock;
	SLIST_HEAD(, wf_metrics) metrics;

	/* The poller of workflow_dir. */
	pthread_t poller;
	int poller_started;
	pthread_mutex_t plock;       /* files, and a poll at a time */
	pthread_cond_t pcond;
	int pstop, pnow;
	SLIST_HEAD(, wfile) files;
};

static __thread int tl_reader = -1;
static __thread struct json_tokener *tl_tok;
static __thread int tl_depth;   /* the depth of the execution whose step
                                 * this thread is calling */

/* ------------------------------------------------------------ metrics */

static struct wf_metrics *
metrics_of(struct wf_engine *e, const char *name)
{
	struct wf_metrics *m;

	pthread_mutex_lock(&e->mlock);
	SLIST_FOREACH(m, &e->metrics, link)
		if (strcmp(m->name, name) == 0)
			break;
	if (m == NULL && (m = calloc(1, sizeof(*m))) != NULL) {
		snprintf(m->name, sizeof(m->name), "%s", name);
		SLIST_INSERT_HEAD(&e->metrics, m, link);
	}
	pthread_mutex_unlock(&e->mlock);
	return m;
}

#define COUNT(x, field) do { \
	if ((x)->m != NULL) { \
		pthread_mutex_lock(&(x)->eng->mlock); \
		(x)->m->field++; \
		pthread_mutex_unlock(&(x)->eng->mlock); \
	} \
} while (0)

/* ------------------------------------------------------------ executions */

static void
wexec_free(struct wexec *x)
{
	if (x == NULL)
		return;
	if (x->in_live) {
		pthread_mutex_lock(&x->eng->lock);
		TAILQ_REMOVE(&x->eng->live, x, live_link);
		x->in_live = 0;
		pthread_mutex_unlock(&x->eng->lock);
	}
	json_object_put(x->doc);
	json_object_put(x->input);
	json_object_put(x->done);
	json_object_put(x->comps);
	json_object_put(x->failure);
	json_object_put(x->sent);
	json_object_put(x->res_body);
	free(x->res_code);
	free(x->res_msg);
	wf_def_free(x->own_def);
	generation_release(x->gen);
	free(x);
}

static const struct wf_state *
cur_state(const struct wexec *x)
{
	return &x->def->states[x->cur];
}

static const char *
status_of(const struct wexec *x)
{
	return x->phase_comp ? "compensating" : "running";
}

/* The snapshot: everything needed to go on from here after a crash. */
static char *
snapshot(const struct wexec *x)
{
	struct json_object *o = json_object_new_object(), *r;
	const struct wf_state *s = cur_state(x);
	char *text;
	int nr;

	json_object_object_add(o, "phase", json_object_new_string(
	    x->phase_comp ? "compensate" : "run"));
	json_object_object_add(o, "state", json_object_new_string(s->name));
	json_object_object_add(o, "input", json_object_get(x->doc));
	json_object_object_add(o, "execution_input",
	    json_object_get(x->input));
	json_object_object_add(o, "visit", json_object_new_int64(x->visit));
	json_object_object_add(o, "attempt", json_object_new_int(x->attempt));
	json_object_object_add(o, "todo", json_object_new_int(x->todo));
	json_object_object_add(o, "scheduled",
	    json_object_new_boolean(x->scheduled));
	r = json_object_new_array();
	nr = (int)(x->phase_comp ? 64 : s->n_retry < 64 ? s->n_retry : 64);
	for (int i = 0; i < nr; i++)
		json_object_array_add(r, json_object_new_int(x->phase_comp ?
		    x->comp_retries[i] : x->retries[i]));
	json_object_object_add(o, x->phase_comp ? "comp_retries" : "retries",
	    r);
	json_object_object_add(o, "done", json_object_get(x->done));
	json_object_object_add(o, "comp_next",
	    json_object_new_int(x->comp_next));
	json_object_object_add(o, "comp_attempt",
	    json_object_new_int(x->comp_attempt));
	json_object_object_add(o, "compensations", json_object_get(x->comps));
	json_object_object_add(o, "failure", json_object_get(x->failure));
	json_object_object_add(o, "sent", json_object_get(x->sent));
	json_object_object_add(o, "wake_ms", json_object_new_int64(x->wake_ms));
	text = strdup(json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return text;
}

static const char *
plain(struct json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

/*
 * With the workflow bucket: write x's record as it stands now (snap,
 * borrowed), or delete it when final_status is set, compare-and-set on
 * the revision x last wrote.  Returns 0, or -1 with x->lost (another
 * daemon claimed it: stop driving it) or x->kv_failed (the bucket is
 * unreachable: let it go; whichever daemon claims it, this one
 * included, resumes it from this record's predecessor).  Logged.
 */
static int
kv_write(struct wexec *x, const char *snap, const char *final_status)
{
	struct wf_engine *e = x->eng;
	char err[512], *val;
	size_t len = 0;
	uint64_t rev = 0;
	int rc;

	if (e->kv == NULL)
		return 0;
	if (final_status != NULL) {
		rc = wf_kv_delete(e->kv, x->id, x->kv_rev, err, sizeof(err));
	} else {
		struct wf_kv_rec r = { x->id, x->def->name, x->def->text,
			plain(x->input), snap, status_of(x), x->depth,
			x->started_ms, x->events + 1 };

		if ((val = wf_kv_encode(e->kv, &r, &len)) == NULL) {
			snprintf(err, sizeof(err), "out of memory");
			rc = NATS_KV_UNAVAILABLE;
		} else {
			rc = wf_kv_update(e->kv, x->id, val, len, x->kv_rev,
			    &rev, err, sizeof(err));
			free(val);
		}
		if (rc == NATS_KV_OK)
			x->kv_rev = rev;
	}
	if (rc == NATS_KV_OK)
		return 0;
	if (rc == NATS_KV_CONFLICT) {
		x->lost = 1;
		wf_kv_count_lost(e->kv);
		log_warnx("workflow execution %s: another daemon took it over "
		    "(its record in the workflow bucket changed under this "
		    "one); this daemon stops driving it", x->id);
	} else {
		x->kv_failed = 1;
		log_warnx("workflow execution %s: the workflow bucket cannot "
		    "record its transition (%s); this daemon lets it go, and "
		    "whichever daemon claims its record resumes it", x->id,
		    err);
	}
	/* This daemon's own history says why it stopped here. */
	{
		struct wf_event ev = { x->lost ? "ExecutionTakenOver" :
			"ExecutionReleased", cur_state(x)->name, 0, NULL, NULL };

		wf_store_append(e->store, x->id, &ev, x->lost ? "taken_over" :
		    "released", NULL, snap, NULL, 0);
	}
	return -1;
}

/*
 * Record one transition of x: the event, and the row as x stands now.
 * final_status non-NULL ends it with `result` (borrowed JSON).  Returns
 * 0 or -1 (the store or the bucket failed: logged; the execution is
 * parked, it resumes from its last record at the next start).
 */
static int
record(struct wexec *x, const char *type, const char *state, int attempt,
    const char *rid, struct json_object *detail, const char *final_status,
    struct json_object *result)
{
	struct wf_event ev = { type, state, attempt, rid,
		detail ? plain(detail) : NULL };
	char *snap = snapshot(x);
	int rc;

	if (snap == NULL)
		return -1;
	/* The bucket first: it says who may commit a transition. */
	if (kv_write(x, snap, final_status) < 0) {
		free(snap);
		return -1;
	}
	rc = wf_store_append(x->eng->store, x->id, &ev, final_status ?
	    final_status : status_of(x), cur_state(x)->name, snap,
	    final_status ? plain(result) : NULL, final_status ?
	    clock_wall_ms() : 0);
	free(snap);
	x->events++;
	return rc;
}

/* The context object "$$" of state s. */
static struct json_object *
context(const struct wexec *x, const char *key)
{
	struct json_object *c = json_object_new_object();
	struct json_object *ex = json_object_new_object();
	struct json_object *st = json_object_new_object();
	struct json_object *sm = json_object_new_object();
	char stamp[40];

	json_object_object_add(ex, "Id", json_object_new_string(x->id));
	json_object_object_add(ex, "Name", json_object_new_string(x->id));
	json_object_object_add(ex, "Input", json_object_get(x->input));
	log_timestamp(stamp, sizeof(stamp), x->started_ms);
	json_object_object_add(ex, "StartTime", json_object_new_string(stamp));
	json_object_object_add(c, "Execution", ex);
	json_object_object_add(st, "Name",
	    json_object_new_string(cur_state(x)->name));
	json_object_object_add(st, "RetryCount",
	    json_object_new_int(x->attempt > 0 ? x->attempt - 1 : 0));
	json_object_object_add(c, "State", st);
	json_object_object_add(sm, "Name", json_object_new_string(
	    x->def->name));
	json_object_object_add(c, "StateMachine", sm);
	if (key != NULL) {
		struct json_object *t = json_object_new_object();

		json_object_object_add(t, "IdempotencyKey",
		    json_object_new_string(key));
		json_object_object_add(c, "Task", t);
	}
	return c;
}

static struct json_object *
copy(struct json_object *o)
{
	struct json_object *c = NULL;

	if (o != NULL)
		json_object_deep_copy(o, &c, NULL);
	return c;
}

/* Path p (NULL "$", WF_PATH_NULL: {}) of doc (borrowed) as a new copy, or
 * -1 when it names nothing. */
static int
select_path(const char *p, struct json_object *doc, struct json_object *ctx,
    struct json_object **out)
{
	struct json_object *v;

	if (p == NULL) {
		*out = copy(doc);
		return 0;
	}
	if (p == WF_PATH_NULL) {
		*out = json_object_new_object();
		return 0;
	}
	if (wf_path_get(p, doc, ctx, &v) < 0)
		return -1;
	*out = copy(v);
	return 0;
}

/* ------------------------------------------------------------ the queue */

/* Put x on the run queue.  e->lock is held. */
static void
ready_locked(struct wexec *x)
{
	TAILQ_INSERT_TAIL(&x->eng->runq, x, link);
	pthread_cond_signal(&x->eng->cond);
}

static void
ready(struct wexec *x)
{
	pthread_mutex_lock(&x->eng->lock);
	ready_locked(x);
	pthread_mutex_unlock(&x->eng->lock);
}

/* Sleep x until its wake_ms (a retry's delay). */
static void
sleep_until(struct wexec *x)
{
	int64_t left = x->wake_ms - clock_wall_ms();

	x->wake_ns = clock_mono_ns() + (left > 0 ? left : 0) * 1000000;
	pthread_mutex_lock(&x->eng->lock);
	TAILQ_INSERT_TAIL(&x->eng->sleepers, x, link);
	pthread_cond_broadcast(&x->eng->cond);
	pthread_mutex_unlock(&x->eng->lock);
}

static void park(struct wexec *x);

/* ------------------------------------------------------------ the end */

static void
answer_caller(struct wexec *x, int status, struct json_object *body,
    const char *code, const char *msg)
{
	struct call *c = x->call;

	if (c == NULL)
		return;
	x->call = NULL;
	c->inv.end_ns = clock_mono_ns();
	c->inv.finished = 1;
	if (status < 300) {
		c->inv.status = status;
		c->inv.body = json_object_get(body);
	} else {
		invocation_set_error(&c->inv, status, code, msg);
	}
	c->executed(c);
}

/* x is over (its last record is made): tell the caller, count, free. */
static void
finish(struct wexec *x, const char *status, int code_status,
    struct json_object *body, const char *code, const char *msg)
{
	int64_t ms = clock_wall_ms() - x->started_ms;

	/* Counted before the caller is answered: a client that reads its
	 * reply and then host.stats sees its execution counted. */
	if (x->m != NULL) {
		pthread_mutex_lock(&x->eng->mlock);
		if (strcmp(status, "succeeded") == 0)
			x->m->succeeded++;
		else if (strcmp(status, "compensation_failed") == 0)
			x->m->compensation_failed++;
		else if (json_object_array_length(x->comps) > 0)
			x->m->compensated++;
		else
			x->m->failed++;
		for (int i = 0; i < N_BUCKETS; i++)
			if (ms <= bucket_ms[i]) {
				x->m->buckets[i]++;
				break;
			}
		x->m->sum_ms += (uint64_t)(ms > 0 ? ms : 0);
		x->m->running--;
		pthread_mutex_unlock(&x->eng->mlock);
	}
	answer_caller(x, code_status, body, code, msg);
	atomic_fetch_sub(&x->eng->running, 1);
	wexec_free(x);
}

static void
succeed(struct wexec *x, struct json_object *output)
{
	struct log_ctx lc = LOG_CTX_INIT;

	/* Ended by a Task: its request id goes with the end. */
	if (record(x, "ExecutionSucceeded", cur_state(x)->name, 0,
	    x->res_rid[0] ? x->res_rid : NULL, output, "succeeded",
	    output) < 0) {
		json_object_put(output);
		park(x);
		return;
	}
	lc.id = x->id;
	lc.command = x->def->name;
	log_emit(LOGL_DEBUG, &lc, "workflow execution %s succeeded", x->id);
	finish(x, "succeeded", 200, output, NULL, NULL);
	json_object_put(output);
}

/* A failed execution's reply: its error, failed state and
 * compensations, as one message. */
static void
fail_reply(struct wexec *x, const char *status)
{
	struct json_object *v;
	const char *err = "States.Fail", *cause = "", *state = "?";
	int code = 500;
	struct buf msg = BUF_INIT;
	size_t n = json_object_array_length(x->comps);

	if (json_object_object_get_ex(x->failure, "Error", &v))
		err = json_object_get_string(v);
	if (json_object_object_get_ex(x->failure, "Cause", &v))
		cause = json_object_get_string(v);
	if (json_object_object_get_ex(x->failure, "State", &v))
		state = json_object_get_string(v);
	if (json_object_object_get_ex(x->failure, "Status", &v) &&
	    json_object_get_int(v) >= 400)
		code = json_object_get_int(v);
	if (strcmp(status, "compensation_failed") == 0)
		code = 500;
	buf_printf(&msg, "workflow %s execution %s failed in state %s: %s: "
	    "%s; compensations run: ", x->def->name, x->id, state, err, cause);
	if (n == 0)
		buf_puts(&msg, "none");
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(x->comps, i);
		struct json_object *st, *ok;

		json_object_object_get_ex(c, "state", &st);
		json_object_object_get_ex(c, "status", &ok);
		buf_printf(&msg, "%s%s (%s)", i ? ", " : "",
		    json_object_get_string(st), json_object_get_string(ok));
	}
	buf_printf(&msg, "; see host.executions {\"id\":\"%s\"}", x->id);
	buf_put(&msg, "", 1);
	finish(x, status, code, NULL, strcmp(status, "compensation_failed") ==
	    0 ? "compensation_failed" : err, buf_head(&msg) ? buf_head(&msg) :
	    "workflow failed");
	buf_free(&msg);
}

/* The end of a failed run: compensate what completed, or finish. */
static void
begin_compensation(struct wexec *x, const char *type,
    struct json_object *detail)
{
	const char *rid;
	int any = 0;

	for (size_t i = 0; i < json_object_array_length(x->done); i++) {
		struct json_object *d = json_object_array_get_idx(x->done, i), *s;
		int k;

		json_object_object_get_ex(d, "state", &s);
		k = wf_def_find(x->def, json_object_get_string(s));
		if (k >= 0 && x->def->states[k].comp != NULL)
			any = 1;
	}
	rid = x->res_rid[0] ? x->res_rid : NULL; /* the failed step's */
	if (!any) {
		if (record(x, type, cur_state(x)->name, 0, rid, detail,
		    "failed", x->failure) < 0) {
			park(x);
			return;
		}
		fail_reply(x, "failed");
		return;
	}
	x->phase_comp = 1;
	x->comp_next = (int)json_object_array_length(x->done) - 1;
	x->comp_attempt = 0;
	memset(x->comp_retries, 0, sizeof(x->comp_retries));
	x->todo = TODO_COMP;
	if (record(x, type, cur_state(x)->name, 0, rid, detail, NULL,
	    NULL) < 0) {
		park(x);
		return;
	}
	ready(x);
}

/* Fail the run with error/cause (copied) at the current state. */
static void
fail_run(struct wexec *x, const char *error, const char *cause, int status,
    const char *type)
{
	struct json_object *f = json_object_new_object();

	json_object_object_add(f, "Error", json_object_new_string(error));
	json_object_object_add(f, "Cause", json_object_new_string(cause ?
	    cause : ""));
	json_object_object_add(f, "State",
	    json_object_new_string(cur_state(x)->name));
	if (status > 0)
		json_object_object_add(f, "Status", json_object_new_int(status));
	json_object_put(x->failure);
	x->failure = f;
	begin_compensation(x, type, f);
}

/* ------------------------------------------------------------ steps */

/* The answer of a step call, on whichever thread answered. */
static void
step_done(struct call *c)
{
	struct wexec *x = c->owner_arg;
	struct wf_engine *e = x->eng;
	struct buf out = BUF_INIT;
	struct json_object *line = NULL, *v;
	int rc = dispatch_reply(c, &out, 0);

	x->res_status = 503;
	json_object_put(x->res_body);
	x->res_body = NULL;
	free(x->res_code);
	free(x->res_msg);
	x->res_code = x->res_msg = NULL;
	snprintf(x->res_rid, sizeof(x->res_rid), "%s", c->inv.request_id);
	/* The reply line is not NUL-terminated: end it for the parser. */
	if (rc == 0 && buf_put(&out, "", 1) == 0)
		line = json_tokener_parse(buf_head(&out));
	buf_free(&out);
	if (line != NULL && json_object_object_get_ex(line, "status", &v)) {
		x->res_status = json_object_get_int(v);
		if (json_object_object_get_ex(line, "body", &v))
			x->res_body = json_object_get(v);
		if (json_object_object_get_ex(line, "error", &v)) {
			struct json_object *w;

			if (json_object_object_get_ex(v, "code", &w))
				x->res_code = strdup(json_object_get_string(w));
			if (json_object_object_get_ex(v, "message", &w))
				x->res_msg = strdup(json_object_get_string(w));
		}
	} else {
		x->res_code = strdup("unavailable");
		x->res_msg = strdup("out of memory");
	}
	json_object_put(line);
	pthread_mutex_lock(&e->lock);
	x->in_flight = 0;
	TAILQ_REMOVE(&e->waiting, x, link);
	e->in_flight--;
	pthread_cond_broadcast(&e->idle);
	ready_locked(x);
	pthread_mutex_unlock(&e->lock);
}

/* The answer of a step over NATS (reply, len bytes, borrowed), on the
 * module's request thread: as step_done. */
static void
remote_done(void *arg, const char *reply, size_t len, int status)
{
	struct wexec *x = arg;
	struct wf_engine *e = x->eng;
	struct json_object *line = json_tokener_parse(reply), *v;
	struct log_ctx lc = LOG_CTX_INIT;

	(void)len;
	json_object_put(x->res_body);
	x->res_body = NULL;
	free(x->res_code);
	free(x->res_msg);
	x->res_code = x->res_msg = NULL;
	x->res_status = status;
	x->res_transport = 0;
	if (line != NULL && json_object_object_get_ex(line, "body", &v))
		x->res_body = json_object_get(v);
	if (line != NULL && json_object_object_get_ex(line, "error", &v)) {
		struct json_object *w;

		if (json_object_object_get_ex(v, "code", &w))
			x->res_code = strdup(json_object_get_string(w));
		if (json_object_object_get_ex(v, "message", &w))
			x->res_msg = strdup(json_object_get_string(w));
		/* NATS could not carry it (not the command's answer). */
		x->res_transport = status == 503 && x->res_code != NULL &&
		    strcmp(x->res_code, "unavailable") == 0 &&
		    !json_object_object_get_ex(line, "id", &w);
	}
	json_object_put(line);
	lc.request_id = x->res_rid;
	lc.id = x->id;
	lc.command = x->remote_cmd;
	lc.status = status;
	lc.duration_ms = (double)(clock_mono_ns() - x->remote_ns) / 1e6;
	if (x->res_code != NULL)
		lc.error_code = x->res_code;
	log_emit(status < 400 ? LOGL_INFO : LOGL_WARN, &lc, "workflow step "
	    "finished over NATS");
	pthread_mutex_lock(&e->lock);
	x->in_flight = 0;
	TAILQ_REMOVE(&e->waiting, x, link);
	e->in_flight--;
	pthread_cond_broadcast(&e->idle);
	ready_locked(x);
	pthread_mutex_unlock(&e->lock);
}

/*
 * A step whose command is not served here, over NATS (e->nats): returns
 * 0 when it went out (the answer comes to remote_done), or -1 with
 * status, code and err set.  x is on the waiting list.
 */
static int
call_remote(struct wexec *x, struct nats_host *h, const char *command,
    struct json_object *payload, int timeout_s, const char *key,
    int *status, const char **code, char *err, size_t errlen)
{
	struct buf id = BUF_INIT;
	const char *text = plain(payload);
	int rc;

	request_id_make(x->res_rid, clock_wall_ms(), WF_RID_SOURCE,
	    atomic_fetch_add(&x->eng->seq, 1));
	snprintf(x->remote_cmd, sizeof(x->remote_cmd), "%s", command);
	x->remote_ns = clock_mono_ns();
	if (buf_put_json_string(&id, x->id) < 0 || buf_put(&id, "", 1) < 0) {
		buf_free(&id);
		*status = 503;
		*code = "unavailable";
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = nats_host_request(h, command, text, strlen(text), buf_head(&id),
	    key, (int64_t)timeout_s * 1000, remote_done, x, err, errlen);
	buf_free(&id);
	if (rc < 0) {
		*status = 503;
		*code = "unavailable";
		x->res_transport = 1;
	}
	return rc;
}

/* Call command with payload (borrowed) under key; the answer comes to
 * step_done (or remote_done, for a command that only another daemon
 * serves, over NATS), or, when the call cannot start, is put in res_*
 * now. */
static void
call_step(struct wexec *x, const char *command, struct json_object *payload,
    int timeout_s, const char *key)
{
	struct wf_engine *e = x->eng;
	struct buf line = BUF_INIT;
	struct dispatch_args a;
	struct request req;
	struct call *call;
	struct nats_host *nh;
	const char *code;
	char err[512];
	int status, rc;

	memset(&req, 0, sizeof(req));
	rc = buf_puts(&line, "{\"command\":");
	rc |= buf_put_json_string(&line, command);
	rc |= buf_puts(&line, ",\"id\":");
	rc |= buf_put_json_string(&line, x->id);
	rc |= buf_puts(&line, ",\"idempotency_key\":");
	rc |= buf_put_json_string(&line, key);
	if (timeout_s > 0)
		rc |= buf_printf(&line, ",\"timeout_ms\":%lld",
		    (long long)timeout_s * 1000);
	rc |= buf_puts(&line, ",\"payload\":");
	rc |= buf_puts(&line, plain(payload));
	rc |= buf_puts(&line, "}");
	x->res_rid[0] = '\0';
	if (rc < 0 || request_parse(tl_tok, buf_head(&line), buf_size(&line),
	    &req, err, sizeof(err)) < 0) {
		status = rc < 0 ? 503 : 400;
		code = rc < 0 ? "unavailable" : "bad_request";
		if (rc < 0)
			snprintf(err, sizeof(err), "out of memory");
		goto refused;
	}
	memset(&a, 0, sizeof(a));
	a.reader = tl_reader;
	a.rid_ms = clock_wall_ms();
	a.rid_src = WF_RID_SOURCE;
	a.rid_seq = atomic_fetch_add(&e->seq, 1);
	a.pid = a.uid = -1;
	a.pool_only = 1;
	a.scope = "workflow";
	a.owner = &e->owner;
	a.done = step_done;
	a.owner_arg = x;
	pthread_mutex_lock(&e->lock);
	x->in_flight = 1;
	e->in_flight++;
	TAILQ_INSERT_TAIL(&e->waiting, x, link);
	pthread_mutex_unlock(&e->lock);
	tl_depth = x->depth + 1;
	x->res_transport = 0;
	rc = dispatch_call(e->disp, &a, &req, &call, &status, &code, err,
	    sizeof(err));
	tl_depth = 0;
	if (rc < 0 && status == 404 && strcmp(code, "unknown_command") == 0 &&
	    (nh = atomic_load(&e->nats)) != NULL)
		rc = call_remote(x, nh, command, payload, timeout_s, key,
		    &status, &code, err, sizeof(err));
	if (rc >= 0) {
		/* x may be another thread's now. */
		request_fini(&req);
		buf_free(&line);
		return;
	}
	pthread_mutex_lock(&e->lock);
	x->in_flight = 0;
	e->in_flight--;
	TAILQ_REMOVE(&e->waiting, x, link);
	pthread_mutex_unlock(&e->lock);
refused:
	request_fini(&req);
	buf_free(&line);
	json_object_put(x->res_body);
	x->res_body = NULL;
	free(x->res_code);
	free(x->res_msg);
	x->res_status = status;
	x->res_code = strdup(code);
	x->res_msg = strdup(err);
	ready(x);
}

/* The error name of the answer in res_*, and whether it is a timeout. */
static const char *
res_error(const struct wexec *x, int *timeout)
{
	*timeout = x->res_status == 504;
	if (*timeout)
		return "States.Timeout";
	return x->res_code ? x->res_code : "States.TaskFailed";
}

/* The step key: stable across a crash (execution, visit, state, attempt). */
static void
step_key(const struct wexec *x, char *key, size_t n)
{
	snprintf(key, n, "wf:%s:%ld:%.128s:%d", x->id, x->visit,
	    cur_state(x)->name, x->attempt);
}

static void
comp_key(const struct wexec *x, char *key, size_t n)
{
	snprintf(key, n, "wf:%s:comp:%d:%d", x->id, x->comp_next,
	    x->comp_attempt);
}

/* ------------------------------------------------------------ states */

static void go_next(struct wexec *x, int next, struct json_object *output,
    const char *type, struct json_object *detail);

/* Output of a state from its raw input, its result (taken) and its
 * ResultPath/OutputPath; NULL with *error set on failure. */
static struct json_object *
apply_result(struct wexec *x, const char *result_path,
    struct json_object *result, struct json_object *ctx, const char **error,
    char *cause, size_t causelen)
{
	const struct wf_state *s = cur_state(x);
	struct json_object *out, *sel;

	if (result_path == WF_PATH_NULL) {
		json_object_put(result);
		out = copy(x->doc);
	} else if (result_path == NULL) {
		out = result;
	} else {
		out = copy(x->doc);
		if (out == NULL)
			out = json_object_new_object();
		if (wf_path_set(&out, result_path, result) < 0) {
			json_object_put(out);
			*error = "States.ResultPathMatchFailure";
			snprintf(cause, causelen, "ResultPath %s cannot be set: "
			    "a step on its way is not an object", result_path);
			return NULL;
		}
	}
	if (select_path(s->output_path, out, ctx, &sel) < 0) {
		json_object_put(out);
		*error = "States.Runtime";
		snprintf(cause, causelen, "OutputPath %s names nothing in the "
		    "state's output", s->output_path);
		return NULL;
	}
	json_object_put(out);
	return sel;
}

/* Enter state cur with raw input doc. */
static void
enter(struct wexec *x)
{
	const struct wf_state *s = cur_state(x);
	struct json_object *ctx, *in = NULL, *out;
	const char *error = NULL;
	char cause[512];

	if (x->eng->stopping) {
		park(x);
		return;
	}
	x->visit++;
	x->attempt = 0;
	memset(x->retries, 0, sizeof(x->retries));
	COUNT(x, steps);
	if (x->visit > x->eng->cfg->workflow_max_steps) {
		snprintf(cause, sizeof(cause), "the execution entered %ld states "
		    "(workflow_max_steps)", x->visit - 1);
		fail_run(x, "States.StepLimitExceeded", cause, 500,
		    "ExecutionLimitReached");
		return;
	}
	if (x->events + 16 > x->eng->cfg->workflow_max_history) {
		snprintf(cause, sizeof(cause), "the execution's history has %ld "
		    "events (workflow_max_history)", x->events);
		fail_run(x, "States.HistoryLimitExceeded", cause, 500,
		    "ExecutionLimitReached");
		return;
	}
	ctx = context(x, NULL);
	if (select_path(s->input_path, x->doc, ctx, &in) < 0) {
		json_object_put(ctx);
		snprintf(cause, sizeof(cause), "InputPath %s names nothing in "
		    "the state's input", s->input_path);
		fail_run(x, "States.Runtime", cause, 500, "StateFailed");
		return;
	}
	switch (s->type) {
	case WF_TASK:
		json_object_put(ctx);
		json_object_put(in);
		x->attempt = 1;
		x->todo = TODO_SCHEDULE;
		ready(x);
		return;
	case WF_PASS: {
		struct json_object *res;

		if (s->result != NULL) {
			res = copy(s->result);
		} else if (s->params != NULL) {
			res = wf_params_apply(s->params, in, ctx, cause,
			    sizeof(cause));
			if (res == NULL && cause[0] != '\0') {
				json_object_put(ctx);
				json_object_put(in);
				fail_run(x, "States.Runtime", cause, 500,
				    "StateFailed");
				return;
			}
		} else {
			res = json_object_get(in);
		}
		out = apply_result(x, s->result_path, res, ctx, &error, cause,
		    sizeof(cause));
		json_object_put(ctx);
		json_object_put(in);
		if (out == NULL && error != NULL) {
			fail_run(x, error, cause, 500, "StateFailed");
			return;
		}
		if (s->next_idx < 0) {
			succeed(x, out);
			return;
		}
		go_next(x, s->next_idx, out, "PassStateExited", NULL);
		return;
	}
	case WF_CHOICE: {
		int next = s->default_idx;
		size_t n = json_object_array_length(s->choices);

		for (size_t i = 0; i < n; i++)
			if (wf_choice_eval(json_object_array_get_idx(s->choices,
			    i), in, ctx)) {
				next = s->choice_next[i];
				break;
			}
		if (next < 0) {
			json_object_put(ctx);
			json_object_put(in);
			fail_run(x, "States.NoChoiceMatched", "no choice rule "
			    "matched and there is no Default", 500,
			    "StateFailed");
			return;
		}
		if (select_path(s->output_path, in, ctx, &out) < 0) {
			json_object_put(ctx);
			json_object_put(in);
			snprintf(cause, sizeof(cause), "OutputPath %s names "
			    "nothing", s->output_path);
			fail_run(x, "States.Runtime", cause, 500, "StateFailed");
			return;
		}
		json_object_put(ctx);
		json_object_put(in);
		go_next(x, next, out, "ChoiceStateExited", NULL);
		return;
	}
	case WF_SUCCEED:
		if (select_path(s->output_path, in, ctx, &out) < 0) {
			json_object_put(ctx);
			json_object_put(in);
			snprintf(cause, sizeof(cause), "OutputPath %s names "
			    "nothing", s->output_path);
			fail_run(x, "States.Runtime", cause, 500, "StateFailed");
			return;
		}
		json_object_put(ctx);
		json_object_put(in);
		succeed(x, out);
		return;
	case WF_FAIL:
		json_object_put(ctx);
		json_object_put(in);
		fail_run(x, s->error ? s->error : "States.Fail", s->cause, 0,
		    "FailStateEntered");
		return;
	}
}

/*
 * Send a Task's or a compensation's call: payload (taken) becomes
 * x->sent; the first time (not x->scheduled) `type` is recorded for
 * `state` and `attempt` with the resource, key and payload -- parked when
 * the record fails -- then the call goes out and its answer comes back
 * as `todo`.  resource, state and key are borrowed.
 */
static void
send_step(struct wexec *x, struct json_object *payload, enum todo todo,
    const char *type, const char *state, int attempt, const char *resource,
    int timeout_s, const char *key)
{
	json_object_put(x->sent);
	x->sent = payload;
	x->wake_ms = 0;
	if (!x->scheduled) {
		struct json_object *d = json_object_new_object();

		x->scheduled = 1;
		x->todo = todo;
		json_object_object_add(d, "resource",
		    json_object_new_string(resource));
		json_object_object_add(d, "idempotency_key",
		    json_object_new_string(key));
		json_object_object_add(d, "payload", json_object_get(payload));
		if (record(x, type, state, attempt, NULL, d, NULL, NULL) < 0) {
			json_object_put(d);
			park(x);
			return;
		}
		json_object_put(d);
	}
	x->todo = todo;
	call_step(x, resource, payload, timeout_s, key);
}

/* Move to state next with input output (taken), recording type. */
static void
go_next(struct wexec *x, int next, struct json_object *output,
    const char *type, struct json_object *detail)
{
	const char *from = cur_state(x)->name;
	char name[WF_NAME_MAX + 1];

	snprintf(name, sizeof(name), "%s", from);
	json_object_put(x->doc);
	x->doc = output;
	x->cur = next;
	x->attempt = 0;
	x->scheduled = 0;
	x->todo = TODO_ENTER;
	if (record(x, type, name, 0, x->res_rid[0] ? x->res_rid : NULL,
	    detail, NULL, NULL) < 0) {
		park(x);
		return;
	}
	x->res_rid[0] = '\0';
	ready(x);
}

/* Call the Task of cur: record that it is scheduled first. */
static void
schedule(struct wexec *x)
{
	const struct wf_state *s = cur_state(x);
	struct json_object *ctx, *in = NULL, *payload;
	char key[512], cause[512];

	if (x->eng->stopping) {
		park(x);
		return;
	}
	step_key(x, key, sizeof(key));
	ctx = context(x, key);
	if (select_path(s->input_path, x->doc, ctx, &in) < 0) {
		json_object_put(ctx);
		snprintf(cause, sizeof(cause), "InputPath %s names nothing",
		    s->input_path);
		fail_run(x, "States.Runtime", cause, 500, "StateFailed");
		return;
	}
	if (s->params != NULL) {
		payload = wf_params_apply(s->params, in, ctx, cause,
		    sizeof(cause));
		json_object_put(in);
		if (payload == NULL && cause[0] != '\0') {
			json_object_put(ctx);
			fail_run(x, "States.Runtime", cause, 500,
			    "TaskFailed");
			return;
		}
	} else {
		payload = in;
	}
	json_object_put(ctx);
	send_step(x, payload, TODO_RESULT, "TaskScheduled", s->name,
	    x->attempt, s->resource, s->timeout_s, key);
}

/* Look for a retrier of cur that matches; 1 and x sleeping if one does. */
static int
maybe_retry(struct wexec *x, const struct wf_retry *retry, size_t n_retry,
    int *counts, int *attempt, const char *name, int timeout,
    enum todo todo, const char *type, const char *state)
{
	for (size_t i = 0; i < n_retry && i < 64; i++) {
		const struct wf_retry *r = &retry[i];
		struct json_object *d;
		double delay;

		if (!wf_errors_match(&r->errors, name, timeout, 1))
			continue;
		if (counts[i] >= r->max_attempts)
			return 0; /* the first match decides */
		counts[i]++;
		delay = wf_retry_delay(r, counts[i]);
		(*attempt)++;
		x->wake_ms = clock_wall_ms() + (int64_t)(delay * 1000.0);
		x->todo = todo;
		x->scheduled = 0;
		d = json_object_new_object();
		json_object_object_add(d, "error", json_object_new_string(name));
		json_object_object_add(d, "status",
		    json_object_new_int(x->res_status));
		json_object_object_add(d, "delay_ms",
		    json_object_new_int64((int64_t)(delay * 1000.0)));
		if (record(x, type, state, *attempt - 1, x->res_rid, d, NULL,
		    NULL) < 0) {
			json_object_put(d);
			park(x);
			return 1;
		}
		json_object_put(d);
		x->res_rid[0] = '\0';
		COUNT(x, retries);
		sleep_until(x);
		return 1;
	}
	return 0;
}

/* The Task's answer is in res_*. */
static void
task_result(struct wexec *x)
{
	const struct wf_state *s = cur_state(x);
	struct json_object *ctx, *res, *out, *d;
	const char *error = NULL, *name;
	char cause[512], key[512];
	int timeout;

	x->scheduled = 0;
	if (x->res_status >= 200 && x->res_status < 300) {
		step_key(x, key, sizeof(key));
		ctx = context(x, key);
		res = x->res_body ? copy(x->res_body) : NULL;
		if (s->selector != NULL) {
			struct json_object *sel = wf_params_apply(s->selector,
			    res, ctx, cause, sizeof(cause));

			json_object_put(res);
			if (sel == NULL && cause[0] != '\0') {
				json_object_put(ctx);
				fail_run(x, "States.Runtime", cause, 500,
				    "TaskFailed");
				return;
			}
			res = sel;
		}
		d = json_object_new_object();
		json_object_object_add(d, "state", json_object_new_string(
		    s->name));
		json_object_object_add(d, "input", json_object_get(x->sent));
		json_object_object_add(d, "result", copy(x->res_body));
		json_object_object_add(d, "visit", json_object_new_int64(
		    x->visit));
		out = apply_result(x, s->result_path, res, ctx, &error, cause,
		    sizeof(cause));
		json_object_put(ctx);
		if (out == NULL && error != NULL) {
			json_object_put(d);
			fail_run(x, error, cause, 500, "TaskFailed");
			return;
		}
		json_object_array_add(x->done, d);
		if (s->next_idx < 0) {
			/* The last state: one record ends it. */
			json_object_put(x->doc);
			x->doc = json_object_get(out);
			succeed(x, out);
			return;
		}
		{
			struct json_object *det = json_object_new_object();

			json_object_object_add(det, "status",
			    json_object_new_int(x->res_status));
			json_object_object_add(det, "result",
			    copy(x->res_body));
			go_next(x, s->next_idx, out, "TaskSucceeded", det);
			json_object_put(det);
		}
		return;
	}
	name = res_error(x, &timeout);
	/* The same key is still running (a crash left its record): wait
	 * for it, same attempt. */
	if (x->res_status == 409 && x->res_code != NULL &&
	    strcmp(x->res_code, "idempotency_in_progress") == 0) {
		x->wake_ms = clock_wall_ms() + 200;
		x->todo = TODO_SCHEDULE;
		x->scheduled = 1;
		sleep_until(x);
		return;
	}
	if (maybe_retry(x, s->retry, s->n_retry, x->retries, &x->attempt,
	    name, timeout, TODO_SCHEDULE, "TaskRetryScheduled", s->name))
		return;
	for (size_t i = 0; i < s->n_catch; i++) {
		const struct wf_catch *k = &s->catches[i];
		struct json_object *eo;

		if (!wf_errors_match(&k->errors, name, timeout, 1))
			continue;
		eo = json_object_new_object();
		json_object_object_add(eo, "Error", json_object_new_string(name));
		json_object_object_add(eo, "Cause", json_object_new_string(
		    x->res_msg ? x->res_msg : ""));
		json_object_object_add(eo, "Status",
		    json_object_new_int(x->res_status));
		d = copy(eo);
		if (k->result_path == WF_PATH_NULL) {
			json_object_put(eo);
			out = copy(x->doc);
		} else if (k->result_path == NULL) {
			out = eo;
		} else {
			out = copy(x->doc);
			if (out == NULL)
				out = json_object_new_object();
			if (wf_path_set(&out, k->result_path, eo) < 0) {
				json_object_put(out);
				json_object_put(d);
				fail_run(x, "States.ResultPathMatchFailure",
				    "a Catch ResultPath cannot be set", 500,
				    "TaskFailed");
				return;
			}
		}
		go_next(x, k->next_idx, out, "TaskCaught", d);
		json_object_put(d);
		return;
	}
	snprintf(cause, sizeof(cause), "%s (status %d): %s", s->resource,
	    x->res_status, x->res_msg ? x->res_msg : "");
	fail_run(x, name, cause, x->res_status, "TaskFailed");
}

/* ------------------------------------------------------------ compensation */

/* The completed Task done[comp_next] and its state, or NULL. */
static const struct wf_state *
comp_state(const struct wexec *x, struct json_object **entry)
{
	struct json_object *s;
	int k;

	*entry = json_object_array_get_idx(x->done, (size_t)x->comp_next);
	if (!json_object_object_get_ex(*entry, "state", &s))
		return NULL;
	k = wf_def_find(x->def, json_object_get_string(s));
	return k >= 0 ? &x->def->states[k] : NULL;
}

static void
comp_end(struct wexec *x)
{
	int failed = 0;

	for (size_t i = 0; i < json_object_array_length(x->comps); i++) {
		struct json_object *st;

		json_object_object_get_ex(json_object_array_get_idx(x->comps,
		    i), "status", &st);
		failed |= strcmp(json_object_get_string(st), "succeeded") != 0;
	}
	if (record(x, failed ? "ExecutionCompensationFailed" :
	    "ExecutionFailed", cur_state(x)->name, 0, NULL, x->comps,
	    failed ? "compensation_failed" : "failed", x->failure) < 0) {
		park(x);
		return;
	}
	fail_reply(x, failed ? "compensation_failed" : "failed");
}

/* Compensate done[comp_next], or the next one down that has one. */
static void
comp_step(struct wexec *x)
{
	struct json_object *entry, *doc, *payload, *ctx, *v;
	const struct wf_state *s = NULL;
	char key[512], cause[512];

	if (x->eng->stopping) {
		park(x);
		return;
	}
	for (; x->comp_next >= 0; x->comp_next--) {
		s = comp_state(x, &entry);
		if (s != NULL && s->comp != NULL)
			break;
		x->comp_attempt = 0;
	}
	if (x->comp_next < 0) {
		comp_end(x);
		return;
	}
	if (x->comp_attempt == 0) {
		x->comp_attempt = 1;
		memset(x->comp_retries, 0, sizeof(x->comp_retries));
	}
	doc = json_object_new_object();
	json_object_object_get_ex(entry, "input", &v);
	json_object_object_add(doc, "input", copy(v));
	json_object_object_get_ex(entry, "result", &v);
	json_object_object_add(doc, "result", copy(v));
	json_object_object_add(doc, "error", copy(x->failure));
	comp_key(x, key, sizeof(key));
	ctx = context(x, key);
	if (s->comp->params != NULL) {
		payload = wf_params_apply(s->comp->params, doc, ctx, cause,
		    sizeof(cause));
		if (payload == NULL && cause[0] != '\0') {
			struct json_object *c = json_object_new_object();

			json_object_put(doc);
			json_object_put(ctx);
			json_object_object_add(c, "state",
			    json_object_new_string(s->name));
			json_object_object_add(c, "command",
			    json_object_new_string(s->comp->resource));
			json_object_object_add(c, "status",
			    json_object_new_string("failed"));
			json_object_object_add(c, "error",
			    json_object_new_string(cause));
			json_object_array_add(x->comps, c);
			x->comp_next--;
			x->comp_attempt = 0;
			x->todo = TODO_COMP;
			if (record(x, "CompensationFailed", s->name, 0, NULL, c,
			    NULL, NULL) < 0) {
				park(x);
				return;
			}
			ready(x);
			return;
		}
		json_object_put(doc);
	} else {
		payload = doc;
	}
	json_object_put(ctx);
	send_step(x, payload, TODO_COMP_RESULT, "CompensationScheduled",
	    s->name, x->comp_attempt, s->comp->resource, s->comp->timeout_s,
	    key);
}

static void
comp_result(struct wexec *x)
{
	struct json_object *entry, *c;
	const struct wf_state *s = comp_state(x, &entry);
	const char *name;
	int timeout, ok = x->res_status >= 200 && x->res_status < 300;

	x->scheduled = 0;
	if (s == NULL || s->comp == NULL) {
		x->comp_next--;
		x->todo = TODO_COMP;
		ready(x);
		return;
	}
	if (!ok) {
		name = res_error(x, &timeout);
		if (x->res_status == 409 && x->res_code != NULL &&
		    strcmp(x->res_code, "idempotency_in_progress") == 0) {
			x->wake_ms = clock_wall_ms() + 200;
			x->todo = TODO_COMP_SCHEDULE;
			x->scheduled = 1;
			sleep_until(x);
			return;
		}
		if (maybe_retry(x, s->comp->retry, s->comp->n_retry,
		    x->comp_retries, &x->comp_attempt, name, timeout,
		    TODO_COMP_SCHEDULE, "CompensationRetryScheduled", s->name))
			return;
	}
	c = json_object_new_object();
	json_object_object_add(c, "state", json_object_new_string(s->name));
	json_object_object_add(c, "command",
	    json_object_new_string(s->comp->resource));
	json_object_object_add(c, "status", json_object_new_string(ok ?
	    "succeeded" : "failed"));
	json_object_object_add(c, "attempts",
	    json_object_new_int(x->comp_attempt));
	json_object_object_add(c, "request_id",
	    json_object_new_string(x->res_rid));
	if (!ok) {
		char cause[512];

		snprintf(cause, sizeof(cause), "%d %s: %s", x->res_status,
		    x->res_code ? x->res_code : "", x->res_msg ? x->res_msg :
		    "");
		json_object_object_add(c, "error", json_object_new_string(
		    cause));
	}
	json_object_array_add(x->comps, c);
	x->comp_next--;
	x->comp_attempt = 0;
	x->todo = TODO_COMP;
	if (record(x, ok ? "CompensationSucceeded" : "CompensationFailed",
	    s->name, 0, x->res_rid, c, NULL, NULL) < 0) {
		park(x);
		return;
	}
	ready(x);
}

/* ------------------------------------------------------------ threads */

static void
advance(struct wexec *x)
{
	switch (x->todo) {
	case TODO_ENTER:
		enter(x);
		break;
	case TODO_SCHEDULE:
		schedule(x);
		break;
	case TODO_RESULT:
		task_result(x);
		break;
	case TODO_COMP:
	case TODO_COMP_SCHEDULE:
		comp_step(x);
		break;
	case TODO_COMP_RESULT:
		comp_result(x);
		break;
	case TODO_PARKED:
		break;
	}
}

/* Park x (the daemon stops): its caller is told where it stands. */
static void
park(struct wexec *x)
{
	char msg[256];

	if (x->lost)
		snprintf(msg, sizeof(msg), "workflow execution %s was taken "
		    "over by another daemon sharing the workflow bucket; its "
		    "host.executions tells how it ends", x->id);
	else if (x->kv_failed)
		snprintf(msg, sizeof(msg), "workflow execution %s stopped in "
		    "state %s: the workflow bucket cannot record it; the daemon "
		    "that claims it next resumes it", x->id,
		    cur_state(x)->name);
	else if (x->eng->stopping)
		snprintf(msg, sizeof(msg), "the daemon is shutting down; "
		    "workflow execution %s stopped in state %s and resumes at "
		    "the next start", x->id, cur_state(x)->name);
	else
		snprintf(msg, sizeof(msg), "the workflow store failed; workflow "
		    "execution %s stopped in state %s and resumes at the next "
		    "start", x->id, cur_state(x)->name);
	answer_caller(x, 503, NULL, "unavailable", msg);
	if (x->m != NULL) {
		pthread_mutex_lock(&x->eng->mlock);
		x->m->running--;
		pthread_mutex_unlock(&x->eng->mlock);
	}
	atomic_fetch_sub(&x->eng->running, 1);
	wexec_free(x);
}

static void *
engine_main(void *arg)
{
	struct wf_engine *e = arg;

	thread_use_c_locale();
	tl_reader = registry_reader(e->reg);
	tl_tok = request_tokener_new();
	pthread_mutex_lock(&e->lock);
	for (;;) {
		struct wexec *x, *nx;
		int64_t now = clock_mono_ns(), wake = 0;

		/* Due sleepers join the run queue. */
		for (x = TAILQ_FIRST(&e->sleepers); x != NULL; x = nx) {
			nx = TAILQ_NEXT(x, link);
			if (x->wake_ns <= now || e->stopping) {
				TAILQ_REMOVE(&e->sleepers, x, link);
				TAILQ_INSERT_TAIL(&e->runq, x, link);
			} else if (wake == 0 || x->wake_ns < wake) {
				wake = x->wake_ns;
			}
		}
		if ((x = TAILQ_FIRST(&e->runq)) == NULL) {
			if (e->stopping && (e->in_flight == 0 || e->stop_now))
				break;
			if (wake > 0) {
				struct timespec ts = { (time_t)(wake /
				    1000000000LL), (long)(wake % 1000000000LL) };

				pthread_cond_timedwait(&e->cond, &e->lock, &ts);
			} else {
				pthread_cond_wait(&e->cond, &e->lock);
			}
			continue;
		}
		TAILQ_REMOVE(&e->runq, x, link);
		pthread_mutex_unlock(&e->lock);
		/* Stopping: an answer that came is recorded; nothing new
		 * starts.  advance() may free x or hand it on. */
		if ((e->stopping && ((x->todo != TODO_RESULT &&
		    x->todo != TODO_COMP_RESULT) || x->res_transport)) ||
		    tl_reader < 0 || tl_tok == NULL)
			park(x);
		else
			advance(x);
		pthread_mutex_lock(&e->lock);
	}
	pthread_mutex_unlock(&e->lock);
	json_tokener_free(tl_tok);
	tl_tok = NULL;
	return NULL;
}

/* ------------------------------------------------------------ starting */

static struct wexec *
wexec_new(struct wf_engine *e)
{
	struct wexec *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	x->eng = e;
	x->done = json_object_new_array();
	x->comps = json_object_new_array();
	x->start_ns = clock_mono_ns();
	return x;
}

/* Refuse call c now with status, code and message. */
static int
refuse_call(struct call *c, int status, const char *code, const char *msg)
{
	c->inv.end_ns = clock_mono_ns();
	c->inv.finished = 1;
	invocation_set_error(&c->inv, status, code, msg);
	return EXEC_DONE;
}

/* Put x on e->live. */
static void
go_live(struct wexec *x)
{
	pthread_mutex_lock(&x->eng->lock);
	TAILQ_INSERT_TAIL(&x->eng->live, x, live_link);
	x->in_live = 1;
	pthread_mutex_unlock(&x->eng->lock);
}

/* With the workflow bucket: create new x's record (snap borrowed), owned
 * by this daemon.  Returns 0, or -1 with why in msg. */
static int
kv_create(struct wexec *x, const char *snap, char *msg, size_t msglen)
{
	struct wf_engine *e = x->eng;
	struct wf_kv_rec r = { x->id, x->def->name, x->def->text,
		plain(x->input), snap, "running", x->depth, x->started_ms, 1 };
	char err[160], *val;
	size_t len = 0;
	int rc;

	if (!wf_kv_ready(e->kv)) {
		snprintf(msg, msglen, "the workflow bucket %s is not reachable "
		    "yet (this daemon's heartbeat is not written); retry later",
		    e->cfg->nats.js_wf_bucket);
		return -1;
	}
	/* Live before its record exists: the sweeper never claims it. */
	go_live(x);
	if ((val = wf_kv_encode(e->kv, &r, &len)) == NULL) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	rc = wf_kv_create(e->kv, x->id, val, len, &x->kv_rev, err,
	    sizeof(err));
	free(val);
	if (rc == NATS_KV_OK)
		return 0;
	snprintf(msg, msglen, "the workflow bucket cannot record a new "
	    "execution: %.160s; retry later", err);
	return -1;
}

static int
wx_submit(struct executor *ex, struct call *c)
{
	struct wf_engine *e = ((struct wf_exec_ex *)ex)->eng;
	struct generation *g = c->inv.cmd->gen;
	const struct wf_def *def = g->state;
	struct json_object *d;
	struct wf_event ev;
	struct wexec *x;
	char msg[256], *snap;
	int async = 0;

	if (e->stopping)
		return EXEC_REJECTED;
	if (tl_depth >= e->cfg->workflow_max_depth) {
		snprintf(msg, sizeof(msg), "workflows call workflows %d deep "
		    "here (workflow_max_depth); %s was not started", tl_depth,
		    def->name);
		return refuse_call(c, 400, "workflow_depth_exceeded", msg);
	}
	if (atomic_load(&e->running) >= e->cfg->workflow_max_running) {
		snprintf(msg, sizeof(msg), "%d workflow executions are "
		    "unfinished (workflow_max_running); retry later",
		    atomic_load(&e->running));
		return refuse_call(c, 503, "unavailable", msg);
	}
	async = c->inv.async;
	if ((x = wexec_new(e)) == NULL)
		return refuse_call(c, 503, "unavailable", "out of memory");
	snprintf(x->id, sizeof(x->id), "%s", c->inv.request_id);
	x->input = copy(invocation_payload(&c->inv));
	x->doc = copy(invocation_payload(&c->inv));
	x->gen = g;
	generation_hold(g);
	x->def = def;
	x->depth = tl_depth;
	x->m = metrics_of(e, def->name);
	x->started_ms = clock_wall_ms();
	x->cur = def->start_idx;
	x->todo = TODO_ENTER;
	d = json_object_new_object();
	json_object_object_add(d, "input", json_object_get(x->input));
	json_object_object_add(d, "async", json_object_new_boolean(async));
	json_object_object_add(d, "definition_hash", json_object_new_uint64(
	    def->hash));
	ev.type = "ExecutionStarted";
	ev.state = def->states[def->start_idx].name;
	ev.attempt = 0;
	ev.request_id = c->inv.request_id;
	ev.detail = plain(d);
	snap = snapshot(x);
	if (snap != NULL && e->kv != NULL && kv_create(x, snap, msg,
	    sizeof(msg)) < 0) {
		free(snap);
		json_object_put(d);
		wexec_free(x);
		return refuse_call(c, 503, "unavailable", msg);
	}
	if (snap == NULL || wf_store_create(e->store, x->id, def->name,
	    def->text, plain(x->input), x->depth, x->started_ms, snap, &ev) <
	    0) {
		char err[256];

		if (snap != NULL && e->kv != NULL)
			wf_kv_delete(e->kv, x->id, x->kv_rev, err, sizeof(err));
		free(snap);
		json_object_put(d);
		wexec_free(x);
		return refuse_call(c, 503, "unavailable", "the workflow store "
		    "cannot record a new execution; see the daemon's log");
	}
	free(snap);
	json_object_put(d);
	x->events = 1;
	atomic_fetch_add(&e->running, 1);
	if (x->m != NULL) {
		pthread_mutex_lock(&e->mlock);
		x->m->started++;
		x->m->running++;
		pthread_mutex_unlock(&e->mlock);
	}
	if (async) {
		struct json_object *body = json_object_new_object();

		json_object_object_add(body, "execution_id",
		    json_object_new_string(x->id));
		json_object_object_add(body, "workflow",
		    json_object_new_string(def->name));
		json_object_object_add(body, "status",
		    json_object_new_string("running"));
		c->inv.status = 202;
		c->inv.body = body;
		c->inv.finished = 1;
		c->inv.end_ns = clock_mono_ns();
		ready(x);
		return EXEC_DONE;
	}
	c->taken(c);
	invocation_start(&c->inv);
	x->call = c;
	ready(x);
	return EXEC_QUEUED;
}

static int
wx_cancel(struct executor *ex, struct call *c)
{
	(void)ex;
	(void)c;
	/* The execution goes on (its history says how it ends); only
	 * this answer is dropped. */
	return 0;
}

static int
wx_stop(struct executor *ex, int64_t deadline_ns)
{
	(void)ex;
	(void)deadline_ns;
	return 0; /* wf_engine_quiesce() did it */
}

static void
wx_free(struct executor *ex)
{
	free(ex);
}

static void
wx_stats(struct executor *ex, struct json_object *into)
{
	struct wf_engine *e = ((struct wf_exec_ex *)ex)->eng;
	struct json_object *all = json_object_new_object();
	struct wf_metrics *m;

	pthread_mutex_lock(&e->mlock);
	SLIST_FOREACH(m, &e->metrics, link) {
		struct json_object *o = json_object_new_object();
		struct json_object *h = json_object_new_array();

		for (size_t i = 0; i < sizeof(metric_fields) /
		    sizeof(metric_fields[0]); i++)
			json_object_object_add(o, metric_fields[i].name,
			    json_object_new_uint64(*(const uint64_t *)
			    ((const char *)m + metric_fields[i].off)));
		for (int i = 0; i < N_BUCKETS; i++) {
			struct json_object *b;

			if (m->buckets[i] == 0)
				continue;
			b = json_object_new_array();
			json_object_array_add(b, i == N_BUCKETS - 1 ? NULL :
			    json_object_new_int64(bucket_ms[i]));
			json_object_array_add(b,
			    json_object_new_uint64(m->buckets[i]));
			json_object_array_add(h, b);
		}
		json_object_object_add(o, "histogram_ms", h);
		json_object_object_add(all, m->name, o);
	}
	pthread_mutex_unlock(&e->mlock);
	json_object_object_add(into, "workflows", all);
	json_object_object_add(into, "workflow_executions_running",
	    json_object_new_int(atomic_load(&e->running)));
	if (e->kv != NULL)
		json_object_object_add(into, "workflow_bucket",
		    wf_kv_stats(e->kv));
}

static const struct executor_ops wx_ops = {
	.name = "workflow",
	.submit = wx_submit,
	.cancel = wx_cancel,
	.stop = wx_stop,
	.free = wx_free,
	.stats = wx_stats,
};

/* ------------------------------------------------------------ resuming */

static int
int_of(struct json_object *o, const char *key, int def)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int(v) :
	    def;
}

static struct json_object *
take(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get(v) :
	    NULL;
}

/*
 * Resume execution id from its record (strings borrowed).  With the
 * workflow bucket, kv_rev is the revision of its record this daemon
 * wrote when it claimed it.  Returns 0, or -1 (logged) when it cannot.
 */
static int
resume_exec(struct wf_engine *e, const char *id, const char *workflow,
    const char *def_text, const char *snap_text, int depth,
    int64_t started_ms, long events, uint64_t kv_rev)
{
	struct json_object *snap = snap_text ? json_tokener_parse(snap_text) :
	    NULL, *v;
	struct wexec *x = wexec_new(e);
	char err[512];
	int k;

	if (x == NULL || snap == NULL || (x->own_def = wf_def_parse(def_text,
	    strlen(def_text), workflow, err, sizeof(err))) == NULL) {
		log_errorx("workflow execution %s cannot be resumed: %s", id,
		    snap == NULL ? "its snapshot is not JSON" : x == NULL ?
		    "out of memory" : err);
		json_object_put(snap);
		wexec_free(x);
		return -1;
	}
	x->def = x->own_def;
	snprintf(x->id, sizeof(x->id), "%s", id);
	x->kv_rev = kv_rev;
	if (e->kv != NULL)
		go_live(x);
	x->depth = depth;
	x->started_ms = started_ms;
	x->events = events;
	x->m = metrics_of(e, workflow);
	json_object_object_get_ex(snap, "state", &v);
	if ((k = wf_def_find(x->def, json_object_get_string(v))) < 0) {
		log_errorx("workflow execution %s cannot be resumed: no state "
		    "'%s'", id, json_object_get_string(v));
		json_object_put(snap);
		wexec_free(x);
		return -1;
	}
	x->cur = k;
	json_object_object_get_ex(snap, "phase", &v);
	x->phase_comp = strcmp(json_object_get_string(v), "compensate") == 0;
	x->doc = take(snap, "input");
	x->input = take(snap, "execution_input");
	json_object_object_get_ex(snap, "visit", &v);
	x->visit = (long)json_object_get_int64(v);
	x->attempt = int_of(snap, "attempt", 0);
	x->todo = (enum todo)int_of(snap, "todo", TODO_ENTER);
	x->scheduled = int_of(snap, "scheduled", 0);
	if (json_object_object_get_ex(snap, "retries", &v))
		for (size_t i = 0; i < json_object_array_length(v) && i < 64;
		    i++)
			x->retries[i] = json_object_get_int(
			    json_object_array_get_idx(v, i));
	if (json_object_object_get_ex(snap, "comp_retries", &v))
		for (size_t i = 0; i < json_object_array_length(v) && i < 64;
		    i++)
			x->comp_retries[i] = json_object_get_int(
			    json_object_array_get_idx(v, i));
	json_object_put(x->done);
	x->done = take(snap, "done");
	if (x->done == NULL)
		x->done = json_object_new_array();
	json_object_put(x->comps);
	x->comps = take(snap, "compensations");
	if (x->comps == NULL)
		x->comps = json_object_new_array();
	x->failure = take(snap, "failure");
	x->sent = take(snap, "sent");
	x->comp_next = int_of(snap, "comp_next", -1);
	x->comp_attempt = int_of(snap, "comp_attempt", 0);
	json_object_object_get_ex(snap, "wake_ms", &v);
	x->wake_ms = json_object_get_int64(v);
	json_object_put(snap);
	/* A call that went out and was not recorded goes out again, with
	 * the same key. */
	if (x->todo == TODO_RESULT)
		x->todo = TODO_SCHEDULE;
	else if (x->todo == TODO_COMP_RESULT)
		x->todo = TODO_COMP_SCHEDULE;
	else if (x->todo == TODO_PARKED)
		x->todo = TODO_ENTER;
	{
		struct json_object *d = json_object_new_object();

		json_object_object_add(d, "rerun_step",
		    json_object_new_boolean(x->scheduled));
		if (record(x, "ExecutionResumed", cur_state(x)->name,
		    x->phase_comp ? x->comp_attempt : x->attempt, NULL, d, NULL,
		    NULL) < 0) {
			/* Not a bad record: the store or the bucket failed
			 * (logged); it is claimed again later. */
			json_object_put(d);
			wexec_free(x);
			return 0;
		}
		json_object_put(d);
	}
	atomic_fetch_add(&e->running, 1);
	if (x->m != NULL) {
		pthread_mutex_lock(&e->mlock);
		x->m->resumed++;
		x->m->running++;
		pthread_mutex_unlock(&e->mlock);
	}
	log_info("workflow execution %s (%s) resumed in state %s%s", id,
	    workflow, cur_state(x)->name, x->scheduled ? ": its step runs "
	    "again with the same idempotency key" : "");
	if (x->wake_ms > 0 && (x->todo == TODO_SCHEDULE ||
	    x->todo == TODO_COMP_SCHEDULE))
		sleep_until(x);
	else
		ready(x);
	return 0;
}

/* wf_store_each_unfinished()'s callback, without the bucket. */
static void
resume_one(void *arg, const char *id, const char *workflow,
    const char *def_text, const char *snap_text, int depth,
    int64_t started_ms, long events)
{
	(void)resume_exec(arg, id, workflow, def_text, snap_text, depth,
	    started_ms, events, 0);
}

/* With the bucket, at start-up: the bucket, not this store, says who
 * resumes an unfinished execution; the row says it was let go. */
static void
release_one(void *arg, const char *id, const char *workflow,
    const char *def_text, const char *snap_text, int depth,
    int64_t started_ms, long events)
{
	struct wf_engine *e = arg;
	struct wf_event ev = { "ExecutionReleased", NULL, 0, NULL,
		"{\"reason\":\"the daemon started again: whichever daemon "
		"claims its record in the workflow bucket resumes it\"}" };

	(void)workflow;
	(void)def_text;
	(void)depth;
	(void)started_ms;
	(void)events;
	wf_store_append(e->store, id, &ev, "released", NULL, snap_text, NULL,
	    0);
}

/* wf_kv's hooks (on its thread). */
static int
kv_is_live(void *arg, const char *id)
{
	struct wf_engine *e = arg;
	struct wexec *x;
	int live = 0;

	pthread_mutex_lock(&e->lock);
	TAILQ_FOREACH(x, &e->live, live_link)
		if (strcmp(x->id, id) == 0) {
			live = 1;
			break;
		}
	pthread_mutex_unlock(&e->lock);
	return live;
}

static int
kv_has_room(void *arg)
{
	struct wf_engine *e = arg;
	int stopping;

	pthread_mutex_lock(&e->lock);
	stopping = e->stopping;
	pthread_mutex_unlock(&e->lock);
	return !stopping && atomic_load(&e->running) <
	    e->cfg->workflow_max_running;
}

static const char *
str_in(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string) ?
	    json_object_get_string(v) : NULL;
}

/* This daemon claimed execution id (record rec, revision rev): a row
 * here if it has none, then resume it as a restart does. */
static int
kv_claimed(void *arg, const char *id, struct json_object *rec, uint64_t rev)
{
	struct wf_engine *e = arg;
	const char *wf = str_in(rec, "workflow"), *def = str_in(rec,
	    "definition"), *snap = str_in(rec, "snapshot"), *from = str_in(rec,
	    "claimed_from");
	struct json_object *in = NULL, *d;
	struct wf_event ev;
	int depth = 0;
	int64_t started = 0;
	long events = 0;
	struct json_object *v;

	if (wf == NULL || def == NULL || snap == NULL) {
		log_errorx("workflow execution %s: its record in the workflow "
		    "bucket lacks workflow, definition or snapshot; not resumed",
		    id);
		return -1;
	}
	json_object_object_get_ex(rec, "input", &in);
	if (json_object_object_get_ex(rec, "depth", &v))
		depth = json_object_get_int(v);
	if (json_object_object_get_ex(rec, "started_ms", &v))
		started = json_object_get_int64(v);
	if (json_object_object_get_ex(rec, "events", &v))
		events = (long)json_object_get_int64(v);
	d = json_object_new_object();
	json_object_object_add(d, "from", from ? json_object_new_string(from) :
	    NULL);
	json_object_object_add(d, "owner", json_object_new_string(
	    wf_kv_owner(e->kv)));
	ev.type = "ExecutionClaimed";
	ev.state = NULL;
	ev.attempt = 0;
	ev.request_id = NULL;
	ev.detail = plain(d);
	if (!wf_store_has(e->store, id)) {
		struct json_object *sn = json_tokener_parse(snap), *st;

		/* The row starts at the state the record is in. */
		ev.state = json_object_object_get_ex(sn, "state", &st) ?
		    json_object_get_string(st) : NULL;
		if (wf_store_create(e->store, id, wf, def, in ? plain(in) :
		    "null", depth, started, snap, &ev) < 0) {
			json_object_put(sn);
			json_object_put(d);
			log_errorx("workflow execution %s: claimed, but the "
			    "store cannot record it; not resumed", id);
			return -1;
		}
		json_object_put(sn);
	} else {
		wf_store_append(e->store, id, &ev, "running", NULL, snap, NULL,
		    0);
	}
	json_object_put(d);
	return resume_exec(e, id, wf, def, snap, depth, started, events, rev);
}

/* ------------------------------------------------------------ definitions */

static void
def_fini(void *state)
{
	wf_def_free(state);
}

static int
stub_execute(cmdhost_ctx *ctx)
{
	return cmdhost_fail(ctx, 500, "internal_error", "a workflow runs on "
	    "the workflow executor");
}

/* A generation for def (taken over), listed as key.  NULL on ENOMEM. */
static struct generation *
def_generation(struct wf_def *def, const char *key)
{
	struct generation *g = calloc(1, sizeof(*g));
	char name[CMDHOST_NAME_MAX + 16], version[32];

	if (g == NULL)
		goto fail;
	snprintf(name, sizeof(name), "workflow:%s", def->name);
	snprintf(version, sizeof(version), "h%012llx",
	    (unsigned long long)(def->hash & 0xffffffffffffULL));
	atomic_init(&g->refs, 1);
	if ((g->name = strdup(name)) == NULL ||
	    (g->version = strdup(version)) == NULL ||
	    (g->file = strdup(key)) == NULL ||
	    (g->commands = calloc(1, sizeof(*g->commands))) == NULL) {
		free(g->name);
		free(g->version);
		free(g->file);
		free(g);
		goto fail;
	}
	g->abi_major = CMDHOST_ABI_MAJOR;
	g->abi_minor = CMDHOST_ABI_MINOR;
	snprintf(g->commands[0].name, sizeof(g->commands[0].name), "%s",
	    def->name);
	g->commands[0].summary = def->comment ? def->comment :
	    "a workflow (docs/workflows.md)";
	g->commands[0].execute = stub_execute;
	g->commands[0].gen = g;
	g->n_commands = 1;
	g->state = def;
	g->fini = def_fini;
	g->loaded_at_ms = clock_wall_ms();
	g->content_hash = def->hash;
	g->isolation = ISOLATION_WORKFLOW;
	return g;
fail:
	wf_def_free(def);
	return NULL;
}

static int
is_def_file(const char *n)
{
	size_t l = strlen(n);

	return n[0] != '.' && l > 5 && strcmp(n + l - 5, ".json") == 0;
}

/* Read the file name of dirfd: new text (free), or NULL with err. */
static char *
read_def(int dirfd, const char *name, size_t *len, char *err, size_t errlen)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK);
	struct stat st;
	char *text;
	ssize_t n;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_DEF_BYTES) {
		snprintf(err, errlen, "%s", !S_ISREG(st.st_mode) ? "not a "
		    "regular file" : "larger than 1 MiB");
		close(fd);
		return NULL;
	}
	if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return NULL;
	}
	while (got < (size_t)st.st_size && (n = read(fd, text + got,
	    (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	text[got] = '\0';
	*len = got;
	return text;
}

/* The warning of f's definition: Resources nobody serves.  plock held. */
static void
check_resources(struct wf_engine *e, const char *key, const struct wf_def *d)
{
	struct buf w = BUF_INIT;
	int n = 0;

	for (size_t i = 0; i < d->n_states; i++) {
		const char *res[2] = { d->states[i].resource,
			d->states[i].comp ? d->states[i].comp->resource : NULL };

		for (int k = 0; k < 2; k++) {
			struct command *c;

			if (res[k] == NULL)
				continue;
			if ((c = registry_lookup(e->reg, tl_reader, res[k])) !=
			    NULL) {
				generation_release(c->gen);
				continue;
			}
			buf_printf(&w, "%s'%s' (state %s)", n++ ? ", " : "Resource "
			    "names no command served here: ", res[k],
			    d->states[i].name);
		}
	}
	buf_put(&w, "", 1);
	registry_extra_warning(e->reg, key, n ? buf_head(&w) : NULL);
	buf_free(&w);
}

static void
load_def(struct wf_engine *e, int dirfd, struct wfile *f, const char *key)
{
	char err[1024], base[256];
	struct wf_def *def;
	struct generation *g;
	size_t len = 0;
	char *text;

	snprintf(base, sizeof(base), "%.*s", (int)(strlen(f->name) - 5),
	    f->name);
	if ((text = read_def(dirfd, f->name, &len, err, sizeof(err))) == NULL) {
		log_errorx("workflow definition %s refused: %s", key, err);
		registry_extra_refused(e->reg, key, err);
		return;
	}
	def = wf_def_parse(text, len, base, err, sizeof(err));
	free(text);
	if (def == NULL) {
		struct log_ctx lc = LOG_CTX_INIT;

		lc.file = key;
		lc.reason = err;
		log_emit(LOGL_ERROR, &lc, "workflow definition %s refused: %s%s",
		    key, err, f->hash ? " (the previous version keeps serving)" :
		    "");
		registry_extra_refused(e->reg, key, err);
		return;
	}
	if (def->hash == f->hash) {
		wf_def_free(def);
		return;
	}
	f->hash = def->hash;
	if ((g = def_generation(def, key)) == NULL) {
		registry_extra_refused(e->reg, key, "out of memory");
		f->hash = 0;
		return;
	}
	snprintf(f->cmd, sizeof(f->cmd), "%s", def->name);
	if (registry_put_extra(e->reg, key, g, NULL) < 0)
		f->hash = 0;
}

/* One look at workflow_dir.  Takes plock. */
static void
poll_dir(struct wf_engine *e)
{
	const char *dir = e->cfg->workflow_dir;
	struct wfile *f, *nf;
	struct dirent *de;
	DIR *d;

	if (dir == NULL || dir[0] == '\0')
		return;
	pthread_mutex_lock(&e->plock);
	if ((d = opendir(dir)) == NULL) {
		pthread_mutex_unlock(&e->plock);
		return;
	}
	SLIST_FOREACH(f, &e->files, link)
		f->seen = 0;
	while ((de = readdir(d)) != NULL) {
		char key[4096];
		struct stat st;

		if (!is_def_file(de->d_name) ||
		    fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		SLIST_FOREACH(f, &e->files, link)
			if (strcmp(f->name, de->d_name) == 0)
				break;
		if (f == NULL) {
			if ((f = calloc(1, sizeof(*f))) == NULL ||
			    (f->name = strdup(de->d_name)) == NULL) {
				free(f);
				continue;
			}
			SLIST_INSERT_HEAD(&e->files, f, link);
		} else if (f->dev == st.st_dev && f->ino == st.st_ino &&
		    f->size == st.st_size && f->mtime.tv_sec ==
		    st.st_mtim.tv_sec && f->mtime.tv_nsec ==
		    st.st_mtim.tv_nsec) {
			f->seen = 1;
			continue;
		}
		f->seen = 1;
		f->dev = st.st_dev;
		f->ino = st.st_ino;
		f->size = st.st_size;
		f->mtime = st.st_mtim;
		snprintf(key, sizeof(key), "%s/%s", dir, f->name);
		load_def(e, dirfd(d), f, key);
	}
	closedir(d);
	for (f = SLIST_FIRST(&e->files); f != NULL; f = nf) {
		char key[4096];

		nf = SLIST_NEXT(f, link);
		snprintf(key, sizeof(key), "%s/%s", dir, f->name);
		if (f->seen)
			continue;
		registry_del_extra(e->reg, key, "its definition file was "
		    "removed");
		SLIST_REMOVE(&e->files, f, wfile, link);
		free(f->name);
		free(f);
	}
	/* Resources: the plugins may have changed since. */
	SLIST_FOREACH(f, &e->files, link) {
		char key[4096];
		struct command *c;

		snprintf(key, sizeof(key), "%s/%s", dir, f->name);
		if (f->hash == 0 || tl_reader < 0)
			continue;
		/* The published definition, through its command. */
		if ((c = registry_lookup(e->reg, tl_reader, f->cmd)) == NULL)
			continue;
		if (c->gen->isolation == ISOLATION_WORKFLOW &&
		    strcmp(c->gen->file, key) == 0)
			check_resources(e, key, c->gen->state);
		generation_release(c->gen);
	}
	pthread_mutex_unlock(&e->plock);
}

static void *
poller_main(void *arg)
{
	struct wf_engine *e = arg;

	thread_use_c_locale();
	tl_reader = registry_reader(e->reg);
	pthread_mutex_lock(&e->lock);
	while (!e->pstop) {
		int64_t at = clock_mono_ns() +
		    (int64_t)e->cfg->workflow_poll_ms * 1000000;
		struct timespec ts = { (time_t)(at / 1000000000LL),
			(long)(at % 1000000000LL) };

		while (!e->pstop && !e->pnow &&
		    pthread_cond_timedwait(&e->pcond, &e->lock, &ts) == 0)
			;
		if (e->pstop)
			break;
		e->pnow = 0;
		pthread_mutex_unlock(&e->lock);
		poll_dir(e);
		pthread_mutex_lock(&e->lock);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* ------------------------------------------------------------ life */

struct wf_engine *
wf_engine_new(const struct config *cfg, struct registry *reg,
    struct dispatch *d, char *err, size_t errlen)
{
	struct wf_engine *e = calloc(1, sizeof(*e));
	char path[4096];

	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->cfg = cfg;
	e->reg = reg;
	e->disp = d;
	e->owner.post = NULL;
	e->owner.finished_msg = "workflow step finished";
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->mlock, NULL);
	pthread_mutex_init(&e->plock, NULL);
	thread_cond_init(&e->cond);
	thread_cond_init(&e->idle);
	thread_cond_init(&e->pcond);
	TAILQ_INIT(&e->runq);
	TAILQ_INIT(&e->sleepers);
	TAILQ_INIT(&e->waiting);
	TAILQ_INIT(&e->live);
	SLIST_INIT(&e->metrics);
	SLIST_INIT(&e->files);
	/* dispatch made state_dir (0700) for its own store. */
	snprintf(path, sizeof(path), "%s/workflows.db", cfg->state_dir);
	if ((e->store = wf_store_open(path, cfg->workflow_synchronous, err,
	    errlen)) == NULL) {
		wf_engine_free(e);
		return NULL;
	}
	if ((e->ex = calloc(1, sizeof(*e->ex))) == NULL) {
		snprintf(err, errlen, "out of memory");
		wf_engine_free(e);
		return NULL;
	}
	e->ex->base.ops = &wx_ops;
	e->ex->eng = e;
	if (dispatch_set_executor(d, ISOLATION_WORKFLOW, &e->ex->base) < 0) {
		snprintf(err, errlen, "a workflow executor is installed already");
		free(e->ex);
		e->ex = NULL;
		wf_engine_free(e);
		return NULL;
	}
	e->n_threads = cfg->workflow_threads;
	if ((e->threads = calloc((size_t)e->n_threads,
	    sizeof(pthread_t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		wf_engine_free(e);
		return NULL;
	}
	for (int i = 0; i < e->n_threads; i++) {
		if ((errno = pthread_create(&e->threads[i], NULL, engine_main,
		    e)) != 0) {
			snprintf(err, errlen, "cannot start a workflow thread: "
			    "%s", strerror(errno));
			wf_engine_quiesce(e, clock_mono_ns());
			wf_engine_free(e);
			return NULL;
		}
		e->started++;
	}
	return e;
}

int
wf_engine_start(struct wf_engine *e, char *err, size_t errlen)
{
	const char *dir = e->cfg->workflow_dir;
	int n;

	if (tl_reader < 0)
		tl_reader = registry_reader(e->reg);
	/* The bucket before the definitions: no execution starts without
	 * its record. */
	if (e->cfg->nats.js_wf_bucket != NULL &&
	    e->cfg->nats.js_wf_bucket[0] != '\0') {
		struct nats_host *h = atomic_load(&e->nats);
		struct wf_kv_hooks hooks = { e, kv_is_live, kv_has_room,
			kv_claimed };

		if (!nats_host_has_wf_bucket(h)) {
			snprintf(err, errlen, "[jetstream] workflow_bucket %s "
			    "needs [nats] and a NATS module with the workflow "
			    "bucket's entries (kvb_*); this %s has none",
			    e->cfg->nats.js_wf_bucket, "cmdhost-nats.so");
			return -1;
		}
		if ((e->kv = wf_kv_new(h, e->cfg->nats.js_wf_lease_ms,
		    &hooks)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		/* The bucket decides who resumes what: rows left running
		 * here are let go, and claimed back (or by a peer) once
		 * their owner's lease is over. */
		n = wf_store_each_unfinished(e->store, release_one, e);
		if (n > 0)
			log_info("%d unfinished workflow execution(s) let go to "
			    "the workflow bucket %s", n,
			    e->cfg->nats.js_wf_bucket);
		log_info("workflow bucket %s: this daemon is owner %s",
		    e->cfg->nats.js_wf_bucket, wf_kv_owner(e->kv));
		if (wf_kv_start(e->kv, err, errlen) < 0)
			return -1;
	}
	if (dir != NULL && dir[0] != '\0') {
		struct stat st;

		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "workflow_dir %s: %s", dir,
			    errno ? strerror(errno) : "not a directory");
			return -1;
		}
		poll_dir(e);
	}
	if (e->kv == NULL) {
		n = wf_store_each_unfinished(e->store, resume_one, e);
		if (n > 0)
			log_info("%d unfinished workflow execution(s) resumed",
			    n);
	}
	if (dir != NULL && dir[0] != '\0') {
		if ((errno = pthread_create(&e->poller, NULL, poller_main, e)) !=
		    0) {
			snprintf(err, errlen, "cannot start the workflow_dir "
			    "poller: %s", strerror(errno));
			return -1;
		}
		e->poller_started = 1;
	}
	return 0;
}

void
wf_engine_set_nats(struct wf_engine *e, struct nats_host *h)
{
	if (e != NULL)
		atomic_store(&e->nats, h);
}

void
wf_engine_hold(struct wf_engine *e)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&e->lock);
	e->stopping = 1;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	/* No more claims; the heartbeat goes, so that the peers take over
	 * at once what is left unfinished here. */
	wf_kv_stop(e->kv);
}

void
wf_engine_rescan(struct wf_engine *e)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&e->lock);
	e->pnow = 1;
	pthread_cond_signal(&e->pcond);
	pthread_mutex_unlock(&e->lock);
}

void
wf_engine_quiesce(struct wf_engine *e, int64_t deadline_ns)
{
	struct wexec *x;

	if (e == NULL)
		return;
	pthread_mutex_lock(&e->lock);
	if (e->stopping && e->stop_now) {
		pthread_mutex_unlock(&e->lock);
		return;
	}
	e->stopping = 1;
	e->pstop = 1;
	pthread_cond_broadcast(&e->cond);
	pthread_cond_broadcast(&e->pcond);
	while (e->in_flight > 0) {
		struct timespec ts = { (time_t)(deadline_ns / 1000000000LL),
			(long)(deadline_ns % 1000000000LL) };

		if (clock_mono_ns() >= deadline_ns ||
		    pthread_cond_timedwait(&e->idle, &e->lock, &ts) != 0)
			break;
	}
	e->stop_now = 1;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	for (int i = 0; i < e->started; i++)
		pthread_join(e->threads[i], NULL);
	e->started = 0;
	if (e->poller_started) {
		pthread_join(e->poller, NULL);
		e->poller_started = 0;
	}
	/* What is left: parked now; a step still out keeps its execution
	 * (its answer may come until dispatch stops), its caller is told. */
	pthread_mutex_lock(&e->lock);
	while ((x = TAILQ_FIRST(&e->runq)) != NULL ||
	    (x = TAILQ_FIRST(&e->sleepers)) != NULL) {
		if (x == TAILQ_FIRST(&e->runq))
			TAILQ_REMOVE(&e->runq, x, link);
		else
			TAILQ_REMOVE(&e->sleepers, x, link);
		pthread_mutex_unlock(&e->lock);
		park(x);
		pthread_mutex_lock(&e->lock);
	}
	TAILQ_FOREACH(x, &e->waiting, link)
		answer_caller(x, 503, NULL, "unavailable", "the daemon is "
		    "shutting down; the workflow execution resumes at the next "
		    "start");
	pthread_mutex_unlock(&e->lock);
}

void
wf_engine_free(struct wf_engine *e)
{
	struct wexec *x;
	struct wf_metrics *m;
	struct wfile *f;

	if (e == NULL)
		return;
	wf_engine_quiesce(e, clock_mono_ns());
	while ((x = TAILQ_FIRST(&e->runq)) != NULL) {
		TAILQ_REMOVE(&e->runq, x, link);
		wexec_free(x);
	}
	while ((x = TAILQ_FIRST(&e->waiting)) != NULL) {
		TAILQ_REMOVE(&e->waiting, x, link);
		wexec_free(x);
	}
	while ((m = SLIST_FIRST(&e->metrics)) != NULL) {
		SLIST_REMOVE_HEAD(&e->metrics, link);
		free(m);
	}
	while ((f = SLIST_FIRST(&e->files)) != NULL) {
		SLIST_REMOVE_HEAD(&e->files, link);
		free(f->name);
		free(f);
	}
	wf_kv_free(e->kv);
	wf_store_close(e->store);
	free(e->threads);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->mlock);
	pthread_mutex_destroy(&e->plock);
	pthread_cond_destroy(&e->cond);
	pthread_cond_destroy(&e->idle);
	pthread_cond_destroy(&e->pcond);
	free(e);
}

struct json_object *
wf_engine_executions(struct wf_engine *e, struct json_object *payload,
    int *status, const char **message)
{
	struct json_object *v, *body;
	const char *st = NULL, *wf = NULL;
	int limit = 100;

	if (e == NULL) {
		*status = 404;
		*message = "this daemon runs no workflows (workflow_dir is not "
		    "set)";
		return NULL;
	}
	if (json_object_object_get_ex(payload, "id", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			*status = 400;
			*message = "\"id\" must be a string: an execution id";
			return NULL;
		}
		body = wf_store_show(e->store, json_object_get_string(v));
		if (body == NULL) {
			*status = 404;
			*message = "no workflow execution has that id";
		}
		return body;
	}
	if (json_object_object_get_ex(payload, "status", &v) && v != NULL)
		st = json_object_get_string(v);
	if (json_object_object_get_ex(payload, "workflow", &v) && v != NULL)
		wf = json_object_get_string(v);
	if (json_object_object_get_ex(payload, "limit", &v) &&
	    json_object_is_type(v, json_type_int))
		limit = json_object_get_int(v);
	if (limit < 1 || limit > 100000)
		limit = 100;
	body = json_object_new_object();
	json_object_object_add(body, "executions", wf_store_list(e->store, st,
	    wf, limit));
	json_object_object_add(body, "counts", wf_store_counts(e->store));
	return body;
}
