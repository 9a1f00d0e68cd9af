/*
 * outbox.c - events in memory, one queue per subject, written to SQLite.
 *
 * Memory holds every event that is on disk (pending in its subject's
 * queue, oldest first, or on the dead list); an event enters memory only
 * once the transaction that inserted it committed, so whatever is
 * delivered is durable.  One writer thread batches the inserts (someone
 * waits for them: it wakes at once) and the deletes and updates of
 * deliveries (nobody waits: within FLUSH_MS).  A lost delete only means
 * a second delivery after a crash: delivery is at least once.  An event
 * loop defers the wake-up of the inserts of its turn to the turn's end
 * (outbox_defer_flush), so that the calls of one turn share one commit.
 * One delivery thread starts deliveries when they are due.
 */
#include "outbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <sqlite3.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/event.h"
#include "core/thread.h"

#define BATCH_MAX 4096
#define FLUSH_MS 50

struct subject;

/* The outbox's own event: what the deliverer sees, and its place. */
struct ev {
	struct ob_event pub;          /* first: outbox_done() gets it back */
	TAILQ_ENTRY(ev) link;         /* its subject's queue, or dead */
	struct subject *subj;
	int64_t next_ms;              /* wall clock: due then */
	int inflight, dead;
	char *last_error;             /* owned, or NULL */
};

TAILQ_HEAD(ev_list, ev);

struct subject {
	struct subject *next;
	char *name;                   /* owned */
	struct ev_list queue;         /* pending, by seq */
	size_t pending, inflight;
	uint64_t emitted, delivered, retried, dead_lettered;
};

enum op_kind { OP_INSERT, OP_DELETE, OP_UPDATE };

/* One write for the writer; it owns what it writes. */
struct op {
	TAILQ_ENTRY(op) link;
	enum op_kind kind;
	int64_t seq;                  /* DELETE, UPDATE */
	int attempts, dead;           /* UPDATE */
	int64_t next_ms;
	char *error;                  /* UPDATE: owned, or NULL */
	struct ev **evs;              /* INSERT: owned, n of them */
	size_t n;
	int dedup;                    /* INSERT: ids may repeat */
	outbox_durable_fn durable;
	void *arg;
};

struct outbox {
	const struct config *cfg;
	pthread_mutex_t lock;         /* all below but the db */
	pthread_cond_t wcond;         /* ops for the writer, or stop */
	pthread_cond_t dcond;         /* something due for delivery, or stop */
	TAILQ_HEAD(, op) ops;
	int urgent, stop_writer, stop_deliver;
	struct subject *subjects;
	struct ev_list dead;
	size_t n_pending, n_dead, reserved;
	uint64_t emitted, delivered, retried, dead_lettered, duplicates;

	sqlite3 *db;                  /* the writer's */
	sqlite3_stmt *ins, *del, *upd, *begin, *commit;
	pthread_t writer, deliverer;
	int writer_started, deliverer_started;
	outbox_deliver_fn deliver;
	outbox_round_fn round_end;    /* or NULL */
	void *deliver_arg;
};

/* ------------------------------------------------------------ memory */

static void
ev_free(struct ev *e)
{
	if (e == NULL)
		return;
	free(e->pub.id);
	free(e->pub.subject);
	free(e->pub.body);
	free(e->pub.request_id);
	free(e->pub.command);
	free(e->last_error);
	free(e);
}

/* The subject named `name`, made if new; ob->lock is held.  NULL on
 * ENOMEM. */
static struct subject *
subject_get(struct outbox *ob, const char *name)
{
	struct subject *s;

	for (s = ob->subjects; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->name = strdup(name)) == NULL) {
		free(s);
		return NULL;
	}
	TAILQ_INIT(&s->queue);
	s->next = ob->subjects;
	ob->subjects = s;
	return s;
}

/* Insert e into its subject's queue in seq order; ob->lock is held. */
static void
queue_in_order(struct subject *s, struct ev *e)
{
	struct ev *at;

	TAILQ_FOREACH_REVERSE(at, &s->queue, ev_list, link)
		if (at->pub.seq < e->pub.seq)
			break;
	if (at == NULL)
		TAILQ_INSERT_HEAD(&s->queue, e, link);
	else
		TAILQ_INSERT_AFTER(&s->queue, at, e, link);
	s->pending++;
}

/* Put e (on disk now) where it belongs; ob->lock is held.  -ENOMEM. */
static int
place(struct outbox *ob, struct ev *e)
{
	if ((e->subj = subject_get(ob, e->pub.subject)) == NULL)
		return -ENOMEM;
	if (e->dead) {
		TAILQ_INSERT_TAIL(&ob->dead, e, link);
		ob->n_dead++;
	} else {
		queue_in_order(e->subj, e);
		ob->n_pending++;
	}
	return 0;
}

/* ------------------------------------------------------------ writes */

/* A thread that defers (outbox_defer): the outbox whose writer it owes
 * a wake-up, or NULL. */
static _Thread_local int defer_on;
static _Thread_local struct outbox *defer_ob;

/* Queue o for the writer; ob->lock is held.  An insert someone waits for
 * wakes the writer at once, unless this thread defers: then its
 * outbox_defer_flush() does, for every insert of the turn together. */
static void
queue_op(struct outbox *ob, struct op *o)
{
	int defer = o->durable != NULL && defer_on && defer_ob == ob;

	/* A deferred insert too: the writer then waits FLUSH_MS at most,
	 * should the flush never come (a loop thread lost in a call). */
	if (TAILQ_EMPTY(&ob->ops))
		pthread_cond_signal(&ob->wcond);
	TAILQ_INSERT_TAIL(&ob->ops, o, link);
	if (o->durable != NULL && !ob->urgent && !defer) {
		ob->urgent = 1;
		pthread_cond_signal(&ob->wcond);
	}
}

void
outbox_defer(int on)
{
	if (!on)
		outbox_defer_flush();
	defer_on = on;
}

void
outbox_defer_flush(void)
{
	struct outbox *ob = defer_ob;

	if (ob == NULL)
		return;
	defer_ob = NULL;
	pthread_mutex_lock(&ob->lock);
	if (!ob->urgent) {
		ob->urgent = 1;
		pthread_cond_signal(&ob->wcond);
	}
	pthread_mutex_unlock(&ob->lock);
}

/* Write one op inside the open transaction.  For an insert, evs[i]->dead
 * is set to -1 for a duplicate row.  Returns 0 or -1. */
static int
write_op(struct outbox *ob, struct op *o)
{
	sqlite3_stmt *st;
	int rc = SQLITE_DONE;

	switch (o->kind) {
	case OP_INSERT:
		for (size_t i = 0; i < o->n && rc == SQLITE_DONE; i++) {
			struct ob_event *p = &o->evs[i]->pub;

			st = ob->ins;
			sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, p->subject, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, p->body, (int)p->len,
			    SQLITE_STATIC);
			if (p->request_id != NULL)
				sqlite3_bind_text(st, 4, p->request_id, -1,
				    SQLITE_STATIC);
			sqlite3_bind_text(st, 5, p->command, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 6, p->created_ms);
			rc = sqlite3_step(st);
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			if (rc == SQLITE_DONE && sqlite3_changes(ob->db) == 0)
				o->evs[i]->dead = -1; /* a duplicate id */
			else
				p->seq = sqlite3_last_insert_rowid(ob->db);
		}
		break;
	case OP_DELETE:
		sqlite3_bind_int64(ob->del, 1, o->seq);
		rc = sqlite3_step(ob->del);
		sqlite3_reset(ob->del);
		break;
	case OP_UPDATE:
		st = ob->upd;
		sqlite3_bind_int(st, 1, o->attempts);
		sqlite3_bind_int64(st, 2, o->next_ms);
		sqlite3_bind_int(st, 3, o->dead);
		if (o->error != NULL)
			sqlite3_bind_text(st, 4, o->error, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, o->seq);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		break;
	}
	return rc == SQLITE_DONE ? 0 : -1;
}

/* After the commit (ok) or its failure: the inserted events join memory
 * and their callers hear of it; the op is freed. */
static void
settle_op(struct outbox *ob, struct op *o, int ok)
{
	if (o->kind == OP_INSERT) {
		pthread_mutex_lock(&ob->lock);
		ob->reserved -= o->n;
		for (size_t i = 0; i < o->n; i++) {
			struct ev *e = o->evs[i];

			if (!ok || e->dead < 0) {
				if (ok)
					ob->duplicates++;
				ev_free(e);
				continue;
			}
			e->dead = 0;
			if (place(ob, e) < 0) {
				/* On disk: the next start delivers it. */
				ev_free(e);
				continue;
			}
			e->subj->emitted++;
			ob->emitted++;
		}
		pthread_cond_signal(&ob->dcond);
		pthread_mutex_unlock(&ob->lock);
		if (o->durable != NULL)
			o->durable(o->arg, ok);
		free(o->evs);
	}
	free(o->error);
	free(o);
}

/* Run a statement without results once.  Returns sqlite3_step's code. */
static int
step_reset(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc;
}

static void *
writer_main(void *arg)
{
	struct outbox *ob = arg;
	int64_t flush_at = clock_mono_ms() + FLUSH_MS;

	thread_use_c_locale();
	pthread_mutex_lock(&ob->lock);
	for (;;) {
		TAILQ_HEAD(, op) batch;
		struct op *o;
		int n = 0, ok = 1;

		while (!ob->urgent && !ob->stop_writer) {
			int64_t now = clock_mono_ms();
			struct timespec ts;

			if (!TAILQ_EMPTY(&ob->ops) && now >= flush_at)
				break;
			if (TAILQ_EMPTY(&ob->ops)) {
				pthread_cond_wait(&ob->wcond, &ob->lock);
				flush_at = clock_mono_ms() + FLUSH_MS;
				continue;
			}
			ts = clock_mono_ts(flush_at * 1000000);
			pthread_cond_timedwait(&ob->wcond, &ob->lock, &ts);
		}
		ob->urgent = 0;
		if (TAILQ_EMPTY(&ob->ops) && ob->stop_writer)
			break;
		TAILQ_INIT(&batch);
		while (n < BATCH_MAX && (o = TAILQ_FIRST(&ob->ops)) != NULL) {
			TAILQ_REMOVE(&ob->ops, o, link);
			TAILQ_INSERT_TAIL(&batch, o, link);
			n++;
		}
		pthread_mutex_unlock(&ob->lock);

		if (n > 0) {
			int failed = 0;

			if (step_reset(ob->begin) != SQLITE_DONE)
				failed++;
			TAILQ_FOREACH(o, &batch, link)
				if (failed == 0 && write_op(ob, o) < 0)
					failed++;
			if (failed > 0 || step_reset(ob->commit) !=
			    SQLITE_DONE) {
				fprintf(stderr, "cmdhostd: event outbox: a "
				    "batch of %d writes failed: %s\n", n,
				    sqlite3_errmsg(ob->db));
				sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL,
				    NULL);
				ok = 0;
			}
		}
		while ((o = TAILQ_FIRST(&batch)) != NULL) {
			TAILQ_REMOVE(&batch, o, link);
			settle_op(ob, o, ok);
		}
		flush_at = clock_mono_ms() + FLUSH_MS;
		pthread_mutex_lock(&ob->lock);
	}
	pthread_mutex_unlock(&ob->lock);
	return NULL;
}

/* ------------------------------------------------------------ adding */

int
outbox_add(struct outbox *ob, struct event *evs, size_t n,
    const char *const *ids, const char *request_id, const char *command,
    outbox_durable_fn durable, void *arg)
{
	struct op *o = calloc(1, sizeof(*o));
	int64_t now = clock_wall_ms();
	size_t i;

	if (o == NULL || (o->evs = calloc(n, sizeof(*o->evs))) == NULL) {
		free(o);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		struct ev *e = calloc(1, sizeof(*e));
		char id[160];

		if (ids != NULL)
			snprintf(id, sizeof(id), "%s", ids[i]);
		else
			snprintf(id, sizeof(id), "%s.%zu", request_id ?
			    request_id : "-", i);
		if (e == NULL || (e->pub.id = strdup(id)) == NULL ||
		    (e->pub.command = strdup(command ? command : "-")) ==
		    NULL || (request_id != NULL && (e->pub.request_id =
		    strdup(request_id)) == NULL)) {
			ev_free(e);
			goto nomem;
		}
		e->pub.created_ms = now;
		o->evs[i] = e;
	}
	pthread_mutex_lock(&ob->lock);
	if (ob->n_pending + ob->n_dead + ob->reserved + n >
	    (size_t)ob->cfg->events_max_pending) {
		pthread_mutex_unlock(&ob->lock);
		for (i = 0; i < n; i++)
			ev_free(o->evs[i]);
		free(o->evs);
		free(o);
		return -ENOSPC;
	}
	ob->reserved += n;
	/* Taken: from here on nothing fails. */
	for (i = 0; i < n; i++) {
		o->evs[i]->pub.subject = evs[i].subject;
		o->evs[i]->pub.body = evs[i].body;
		o->evs[i]->pub.len = evs[i].len;
		evs[i].subject = evs[i].body = NULL;
		evs[i].len = 0;
	}
	o->kind = OP_INSERT;
	o->n = n;
	o->dedup = ids != NULL;
	o->durable = durable;
	o->arg = arg;
	if (defer_on && defer_ob != ob) {
		if (defer_ob != NULL) {
			/* One outbox owed at a time (the daemon has one). */
			pthread_mutex_unlock(&ob->lock);
			outbox_defer_flush();
			pthread_mutex_lock(&ob->lock);
		}
		defer_ob = ob;
	}
	queue_op(ob, o);
	pthread_mutex_unlock(&ob->lock);
	return 0;
nomem:
	while (i-- > 0)
		ev_free(o->evs[i]);
	free(o->evs);
	free(o);
	return -ENOMEM;
}

/* ------------------------------------------------------------ delivery */

void
outbox_done(struct outbox *ob, struct ob_event *pub, int outcome,
    int64_t retry_ms, const char *why)
{
	struct ev *e = (struct ev *)(void *)pub;
	struct subject *s = e->subj;
	struct op *o = calloc(1, sizeof(*o));

	pthread_mutex_lock(&ob->lock);
	e->inflight = 0;
	s->inflight--;
	e->pub.attempts++;
	if (outcome == OB_DELIVERED) {
		TAILQ_REMOVE(&s->queue, e, link);
		s->pending--;
		ob->n_pending--;
		s->delivered++;
		ob->delivered++;
		if (o != NULL) {
			o->kind = OP_DELETE;
			o->seq = e->pub.seq;
		}
		ev_free(e);
	} else {
		free(e->last_error);
		e->last_error = why != NULL ? strdup(why) : NULL;
		if (outcome == OB_DEAD) {
			TAILQ_REMOVE(&s->queue, e, link);
			s->pending--;
			ob->n_pending--;
			e->dead = 1;
			TAILQ_INSERT_TAIL(&ob->dead, e, link);
			ob->n_dead++;
			s->dead_lettered++;
			ob->dead_lettered++;
		} else {
			e->next_ms = clock_wall_ms() + (retry_ms > 0 ?
			    retry_ms : 0);
			s->retried++;
			ob->retried++;
		}
		if (o != NULL) {
			o->kind = OP_UPDATE;
			o->seq = e->pub.seq;
			o->attempts = e->pub.attempts;
			o->next_ms = e->next_ms;
			o->dead = e->dead;
			o->error = e->last_error ? strdup(e->last_error) : NULL;
		}
	}
	/* Out of memory for the write: memory is right, the disk catches up
	 * with the next change of this event (or delivers it once more). */
	if (o != NULL)
		queue_op(ob, o);
	pthread_cond_signal(&ob->dcond);
	pthread_mutex_unlock(&ob->lock);
}

/* Mark up to `max` due events in flight into due[]; ob->lock is held.
 * *wait_ms gets how long until the next one is due (-1: none). */
static size_t
collect_due(struct outbox *ob, struct ev **due, size_t max, int64_t *wait_ms)
{
	int64_t now = clock_wall_ms(), next = -1;
	size_t n = 0, window = (size_t)ob->cfg->events_window;

	for (struct subject *s = ob->subjects; s != NULL; s = s->next) {
		size_t seen = 0;
		struct ev *e;

		TAILQ_FOREACH(e, &s->queue, link) {
			if (seen++ >= window || n == max)
				break;
			if (e->inflight)
				continue;
			if (e->next_ms > now) {
				if (next < 0 || e->next_ms - now < next)
					next = e->next_ms - now;
				continue;
			}
			e->inflight = 1;
			s->inflight++;
			due[n++] = e;
		}
	}
	*wait_ms = next;
	return n;
}

#define DUE_MAX 256

static void *
deliver_main(void *arg)
{
	struct outbox *ob = arg;
	struct ev *due[DUE_MAX];

	thread_use_c_locale();
	pthread_mutex_lock(&ob->lock);
	while (!ob->stop_deliver) {
		int64_t wait_ms;
		size_t n = collect_due(ob, due, DUE_MAX, &wait_ms);

		if (n > 0) {
			pthread_mutex_unlock(&ob->lock);
			for (size_t i = 0; i < n; i++)
				ob->deliver(ob->deliver_arg, &due[i]->pub);
			if (ob->round_end != NULL)
				ob->round_end(ob->deliver_arg);
			pthread_mutex_lock(&ob->lock);
			continue;
		}
		if (wait_ms < 0) {
			pthread_cond_wait(&ob->dcond, &ob->lock);
		} else {
			struct timespec ts = clock_mono_ts((clock_mono_ms() +
			    wait_ms + 1) * 1000000);

			pthread_cond_timedwait(&ob->dcond, &ob->lock, &ts);
		}
	}
	pthread_mutex_unlock(&ob->lock);
	return NULL;
}

int
outbox_start(struct outbox *ob, outbox_deliver_fn fn,
    outbox_round_fn round_end, void *arg)
{
	ob->deliver = fn;
	ob->round_end = round_end;
	ob->deliver_arg = arg;
	if ((errno = pthread_create(&ob->deliverer, NULL, deliver_main, ob)) !=
	    0)
		return -errno;
	ob->deliverer_started = 1;
	return 0;
}

void
outbox_stop(struct outbox *ob)
{
	if (ob == NULL || !ob->deliverer_started)
		return;
	pthread_mutex_lock(&ob->lock);
	ob->stop_deliver = 1;
	pthread_cond_signal(&ob->dcond);
	pthread_mutex_unlock(&ob->lock);
	pthread_join(ob->deliverer, NULL);
	ob->deliverer_started = 0;
}

int
outbox_requeue(struct outbox *ob, const char *id)
{
	struct op *o = calloc(1, sizeof(*o));
	struct ev *e;

	if (o == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&ob->lock);
	TAILQ_FOREACH(e, &ob->dead, link)
		if (strcmp(e->pub.id, id) == 0)
			break;
	if (e == NULL) {
		pthread_mutex_unlock(&ob->lock);
		free(o);
		return -ENOENT;
	}
	TAILQ_REMOVE(&ob->dead, e, link);
	ob->n_dead--;
	e->dead = 0;
	e->pub.attempts = 0;
	e->next_ms = 0;
	queue_in_order(e->subj, e);
	ob->n_pending++;
	o->kind = OP_UPDATE;
	o->seq = e->pub.seq;
	o->error = e->last_error ? strdup(e->last_error) : NULL;
	queue_op(ob, o);
	pthread_cond_signal(&ob->dcond);
	pthread_mutex_unlock(&ob->lock);
	return 0;
}

/* ------------------------------------------------------------ views */

static struct json_object *
ev_json(const struct ev *e)
{
	struct json_object *o = json_object_new_object();
	struct json_object *body = json_tokener_parse(e->pub.body);

	json_object_object_add(o, "id", json_object_new_string(e->pub.id));
	json_object_object_add(o, "subject",
	    json_object_new_string(e->pub.subject));
	json_object_object_add(o, "request_id", e->pub.request_id ?
	    json_object_new_string(e->pub.request_id) : NULL);
	json_object_object_add(o, "command",
	    json_object_new_string(e->pub.command));
	json_object_object_add(o, "created_ms",
	    json_object_new_int64(e->pub.created_ms));
	json_object_object_add(o, "attempts",
	    json_object_new_int(e->pub.attempts));
	if (!e->dead && e->next_ms > 0)
		json_object_object_add(o, "next_ms",
		    json_object_new_int64(e->next_ms));
	json_object_object_add(o, "last_error", e->last_error ?
	    json_object_new_string(e->last_error) : NULL);
	json_object_object_add(o, "body", body);
	return o;
}

struct json_object *
outbox_list(struct outbox *ob, int dead, size_t limit)
{
	struct json_object *a = json_object_new_array();
	const struct ev *e;

	if (a == NULL)
		return NULL;
	pthread_mutex_lock(&ob->lock);
	if (dead) {
		TAILQ_FOREACH(e, &ob->dead, link) {
			if (json_object_array_length(a) >= limit)
				break;
			json_object_array_add(a, ev_json(e));
		}
	} else {
		for (struct subject *s = ob->subjects; s != NULL; s = s->next)
			TAILQ_FOREACH(e, &s->queue, link) {
				if (json_object_array_length(a) >= limit)
					break;
				json_object_array_add(a, ev_json(e));
			}
	}
	pthread_mutex_unlock(&ob->lock);
	return a;
}

void
outbox_counts(struct outbox *ob, size_t *pending, size_t *dead)
{
	pthread_mutex_lock(&ob->lock);
	*pending = ob->n_pending;
	*dead = ob->n_dead;
	pthread_mutex_unlock(&ob->lock);
}

static void
add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

void
outbox_stats(struct outbox *ob, struct json_object *into)
{
	struct json_object *o = json_object_new_object();
	struct json_object *subs = json_object_new_object();
	int64_t now = clock_wall_ms(), oldest = -1;
	size_t dead_of;

	pthread_mutex_lock(&ob->lock);
	add_u64(o, "emitted", ob->emitted);
	add_u64(o, "delivered", ob->delivered);
	add_u64(o, "retried", ob->retried);
	add_u64(o, "dead_lettered", ob->dead_lettered);
	add_u64(o, "duplicates", ob->duplicates);
	add_u64(o, "pending", ob->n_pending);
	add_u64(o, "dead", ob->n_dead);
	for (struct subject *s = ob->subjects; s != NULL; s = s->next) {
		struct json_object *so = json_object_new_object();
		struct ev *head = TAILQ_FIRST(&s->queue), *e;
		int64_t age = head ? now - head->pub.created_ms : 0;

		dead_of = 0;
		TAILQ_FOREACH(e, &ob->dead, link)
			if (e->subj == s)
				dead_of++;
		if (head != NULL && (oldest < 0 || age > oldest))
			oldest = age;
		add_u64(so, "emitted", s->emitted);
		add_u64(so, "delivered", s->delivered);
		add_u64(so, "retried", s->retried);
		add_u64(so, "dead_lettered", s->dead_lettered);
		add_u64(so, "pending", s->pending);
		add_u64(so, "dead", dead_of);
		json_object_object_add(so, "oldest_pending_age_ms",
		    json_object_new_int64(age > 0 ? age : 0));
		json_object_object_add(subs, s->name, so);
	}
	pthread_mutex_unlock(&ob->lock);
	json_object_object_add(o, "oldest_pending_age_ms",
	    json_object_new_int64(oldest > 0 ? oldest : 0));
	json_object_object_add(o, "subjects", subs);
	json_object_object_add(into, "events", o);
}

/* ------------------------------------------------------------ disk */

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS events ("
    " seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
    " subject TEXT NOT NULL, body TEXT NOT NULL, request_id TEXT,"
    " command TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_ms INTEGER NOT NULL DEFAULT 0,"
    " dead INTEGER NOT NULL DEFAULT 0, last_error TEXT);";

static int
prepare(struct outbox *ob, const char *sql, sqlite3_stmt **st,
    const char *path, char *err, size_t errlen)
{
	if (sqlite3_prepare_v2(ob->db, sql, -1, st, NULL) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "event outbox %s: %s", path,
	    sqlite3_errmsg(ob->db));
	return -1;
}

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t != NULL ? strdup((const char *)t) : NULL;
}

/* Load every row into memory, oldest first. */
static int
load(struct outbox *ob, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (prepare(ob, "SELECT seq, id, subject, body, request_id, command, "
	    "created_ms, attempts, next_ms, dead, last_error FROM events "
	    "ORDER BY seq", &st, path, err, errlen) < 0)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct ev *e = calloc(1, sizeof(*e));

		if (e == NULL)
			break;
		e->pub.seq = sqlite3_column_int64(st, 0);
		e->pub.id = col_dup(st, 1);
		e->pub.subject = col_dup(st, 2);
		e->pub.body = col_dup(st, 3);
		e->pub.len = (size_t)sqlite3_column_bytes(st, 3);
		e->pub.request_id = col_dup(st, 4);
		e->pub.command = col_dup(st, 5);
		e->pub.created_ms = sqlite3_column_int64(st, 6);
		e->pub.attempts = sqlite3_column_int(st, 7);
		/* A restart retries at once what waited for a retry. */
		e->next_ms = 0;
		e->dead = sqlite3_column_int(st, 9) != 0;
		e->last_error = col_dup(st, 10);
		if (e->pub.id == NULL || e->pub.subject == NULL ||
		    e->pub.body == NULL || e->pub.command == NULL ||
		    place(ob, e) < 0) {
			ev_free(e);
			sqlite3_finalize(st);
			snprintf(err, errlen, "event outbox %s: out of memory",
			    path);
			return -1;
		}
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "event outbox %s is unreadable (%s)",
		    path, sqlite3_errmsg(ob->db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

struct outbox *
outbox_open(const char *path, const struct config *cfg, char *err,
    size_t errlen)
{
	struct outbox *ob = calloc(1, sizeof(*ob));
	int rc;

	if (ob == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ob->cfg = cfg;
	pthread_mutex_init(&ob->lock, NULL);
	thread_cond_init(&ob->wcond);
	thread_cond_init(&ob->dcond);
	TAILQ_INIT(&ob->ops);
	TAILQ_INIT(&ob->dead);
	rc = sqlite3_open_v2(path, &ob->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "event outbox %s: %s", path, ob->db ?
		    sqlite3_errmsg(ob->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(ob->db, 5000);
	/* WAL, synchronous=NORMAL: a commit survives the daemon's kill;
	 * only the machine's crash can take the last ones back. */
	/* Only this daemon opens it (a live daemon's socket is never
	 * taken): an exclusive lock, held from the first write on, spares
	 * each transaction its file locking, and set before WAL is used,
	 * the shared-memory index too. */
	if (sqlite3_exec(ob->db, "PRAGMA locking_mode=EXCLUSIVE;"
	    "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;", NULL, NULL,
	    NULL) != SQLITE_OK ||
	    sqlite3_exec(ob->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "event outbox %s: %s (is it a cmdhost "
		    "outbox?)", path, sqlite3_errmsg(ob->db));
		goto fail;
	}
	if (prepare(ob, "INSERT OR IGNORE INTO events (id, subject, body, "
	    "request_id, command, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
	    &ob->ins, path, err, errlen) < 0 ||
	    prepare(ob, "DELETE FROM events WHERE seq = ?", &ob->del, path,
	    err, errlen) < 0 ||
	    prepare(ob, "UPDATE events SET attempts = ?, next_ms = ?, "
	    "dead = ?, last_error = ? WHERE seq = ?", &ob->upd, path, err,
	    errlen) < 0 ||
	    prepare(ob, "BEGIN", &ob->begin, path, err, errlen) < 0 ||
	    prepare(ob, "COMMIT", &ob->commit, path, err, errlen) < 0)
		goto fail;
	if (load(ob, path, err, errlen) < 0)
		goto fail;
	if ((errno = pthread_create(&ob->writer, NULL, writer_main, ob)) !=
	    0) {
		snprintf(err, errlen, "event outbox: cannot start its writer: "
		    "%s", strerror(errno));
		goto fail;
	}
	ob->writer_started = 1;
	return ob;
fail:
	outbox_close(ob);
	return NULL;
}

void
outbox_close(struct outbox *ob)
{
	struct subject *s;
	struct ev *e;

	if (ob == NULL)
		return;
	outbox_stop(ob);
	if (ob->writer_started) {
		pthread_mutex_lock(&ob->lock);
		ob->stop_writer = 1;
		pthread_cond_signal(&ob->wcond);
		pthread_mutex_unlock(&ob->lock);
		pthread_join(ob->writer, NULL);
	}
	sqlite3_finalize(ob->ins);
	sqlite3_finalize(ob->del);
	sqlite3_finalize(ob->upd);
	sqlite3_finalize(ob->begin);
	sqlite3_finalize(ob->commit);
	sqlite3_close(ob->db);
	while ((s = ob->subjects) != NULL) {
		ob->subjects = s->next;
		while ((e = TAILQ_FIRST(&s->queue)) != NULL) {
			TAILQ_REMOVE(&s->queue, e, link);
			ev_free(e);
		}
		free(s->name);
		free(s);
	}
	while ((e = TAILQ_FIRST(&ob->dead)) != NULL) {
		TAILQ_REMOVE(&ob->dead, e, link);
		ev_free(e);
	}
	pthread_mutex_destroy(&ob->lock);
	pthread_cond_destroy(&ob->wcond);
	pthread_cond_destroy(&ob->dcond);
	free(ob);
}
