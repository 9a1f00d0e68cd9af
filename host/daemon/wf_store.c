/*
 * wf_store.c - workflow executions and their history in SQLite.
 *
 * One connection, one lock, prepared statements; every write is its own
 * transaction, committed before the call returns (WAL; synchronous as
 * configured).  Reads for views take the same lock: they are short.
 */
#include "wf_store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

struct wf_store {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3_stmt *ins_exec, *ins_event, *upd_exec, *upd_final, *next_seq;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS executions ("
    " id TEXT PRIMARY KEY, workflow TEXT NOT NULL, definition TEXT NOT NULL,"
    " input TEXT, depth INTEGER NOT NULL DEFAULT 0,"
    " status TEXT NOT NULL, current TEXT, snapshot TEXT,"
    " result TEXT, started_ms INTEGER NOT NULL, ended_ms INTEGER,"
    " events INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS executions_status ON executions(status);"
    "CREATE TABLE IF NOT EXISTS history ("
    " exec_id TEXT NOT NULL, seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL,"
    " type TEXT NOT NULL, state TEXT, attempt INTEGER, request_id TEXT,"
    " detail TEXT, PRIMARY KEY (exec_id, seq)) WITHOUT ROWID;";

static int
prep(struct wf_store *s, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(s->db, sql, -1, st, NULL) == SQLITE_OK ? 0 :
	    -1;
}

struct wf_store *
wf_store_open(const char *path, int synchronous, char *err, size_t errlen)
{
	static const char *const levels[] = { "OFF", "NORMAL", "FULL" };
	struct wf_store *s = calloc(1, sizeof(*s));
	char pragma[128];

	if (s == NULL) {
		snprintf(err, errlen, "workflow store %s: out of memory", path);
		return NULL;
	}
	{
		pthread_mutexattr_t at;

		/* Recursive: wf_store_each_unfinished()'s callback records. */
		pthread_mutexattr_init(&at);
		pthread_mutexattr_settype(&at, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&s->lock, &at);
		pthread_mutexattr_destroy(&at);
	}
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(s->db, 5000);
	snprintf(pragma, sizeof(pragma), "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=%s;", levels[synchronous < 0 ? 0 :
	    synchronous > 2 ? 2 : synchronous]);
	if (sqlite3_exec(s->db, pragma, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (prep(s, "INSERT INTO executions (id, workflow, definition, input, "
	    "depth, status, current, snapshot, started_ms, events) VALUES "
	    "(?,?,?,?,?,'running',?,?,?,0)", &s->ins_exec) < 0 ||
	    prep(s, "INSERT INTO history (exec_id, seq, ts_ms, type, state, "
	    "attempt, request_id, detail) VALUES (?,?,?,?,?,?,?,?)",
	    &s->ins_event) < 0 ||
	    prep(s, "UPDATE executions SET status=?, current=coalesce(?, "
	    "current), snapshot=?, events=? WHERE id=?", &s->upd_exec) < 0 ||
	    prep(s, "UPDATE executions SET result=?, ended_ms=? WHERE id=?",
	    &s->upd_final) < 0 ||
	    prep(s, "SELECT events FROM executions WHERE id=?",
	    &s->next_seq) < 0)
		goto fail;
	return s;
fail:
	snprintf(err, errlen, "workflow store %s: %s", path, s->db ?
	    sqlite3_errmsg(s->db) : "cannot open");
	wf_store_close(s);
	return NULL;
}

void
wf_store_close(struct wf_store *s)
{
	if (s == NULL)
		return;
	sqlite3_finalize(s->ins_exec);
	sqlite3_finalize(s->ins_event);
	sqlite3_finalize(s->upd_exec);
	sqlite3_finalize(s->upd_final);
	sqlite3_finalize(s->next_seq);
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* Run a prepared write; reset it.  Returns 0 or -1. */
static int
run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
add_event(struct wf_store *s, const char *id, long seq, int64_t now,
    const struct wf_event *ev)
{
	sqlite3_stmt *st = s->ins_event;

	bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_int64(st, 3, now);
	bind_text(st, 4, ev->type);
	bind_text(st, 5, ev->state);
	if (ev->attempt > 0)
		sqlite3_bind_int(st, 6, ev->attempt);
	else
		sqlite3_bind_null(st, 6);
	bind_text(st, 7, ev->request_id);
	bind_text(st, 8, ev->detail);
	return run(st);
}

static void
rollback(struct wf_store *s, const char *what)
{
	log_errorx("workflow store: %s: %s", what, sqlite3_errmsg(s->db));
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int
wf_store_create(struct wf_store *s, const char *id, const char *workflow,
    const char *def_text, const char *input, int depth, int64_t now_ms,
    const char *snapshot, const struct wf_event *ev)
{
	sqlite3_stmt *st = s->ins_exec;
	int rc = -1;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		rollback(s, "begin");
		goto out;
	}
	bind_text(st, 1, id);
	bind_text(st, 2, workflow);
	bind_text(st, 3, def_text);
	bind_text(st, 4, input);
	sqlite3_bind_int(st, 5, depth);
	bind_text(st, 6, ev->state);
	bind_text(st, 7, snapshot);
	sqlite3_bind_int64(st, 8, now_ms);
	if (run(st) < 0 || add_event(s, id, 1, now_ms, ev) < 0) {
		rollback(s, "a new execution");
		goto out;
	}
	st = s->upd_exec;
	bind_text(st, 1, "running");
	bind_text(st, 2, NULL);
	bind_text(st, 3, snapshot);
	sqlite3_bind_int64(st, 4, 1);
	bind_text(st, 5, id);
	if (run(st) < 0 || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		rollback(s, "a new execution");
		goto out;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int
wf_store_append(struct wf_store *s, const char *id,
    const struct wf_event *ev, const char *status, const char *current,
    const char *snapshot, const char *result, int64_t ended_ms)
{
	int64_t now = clock_wall_ms();
	sqlite3_stmt *st;
	long seq = 0;
	int rc = -1;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		rollback(s, "begin");
		goto out;
	}
	st = s->next_seq;
	bind_text(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		seq = (long)sqlite3_column_int64(st, 0) + 1;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (seq == 0 || add_event(s, id, seq, now, ev) < 0) {
		rollback(s, "an event");
		goto out;
	}
	st = s->upd_exec;
	bind_text(st, 1, status);
	bind_text(st, 2, current);
	bind_text(st, 3, snapshot);
	sqlite3_bind_int64(st, 4, seq);
	bind_text(st, 5, id);
	if (run(st) < 0) {
		rollback(s, "an execution's row");
		goto out;
	}
	if (ended_ms > 0) {
		st = s->upd_final;
		bind_text(st, 1, result);
		sqlite3_bind_int64(st, 2, ended_ms);
		bind_text(st, 3, id);
		if (run(st) < 0) {
			rollback(s, "an execution's end");
			goto out;
		}
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rollback(s, "commit");
		goto out;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int
wf_store_has(struct wf_store *s, const char *id)
{
	sqlite3_stmt *st;
	int has;

	pthread_mutex_lock(&s->lock);
	st = s->next_seq;
	bind_text(st, 1, id);
	has = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	pthread_mutex_unlock(&s->lock);
	return has;
}

int
wf_store_each_unfinished(struct wf_store *s, wf_store_fn fn, void *arg)
{
	sqlite3_stmt *st;
	int rc, n = 0;

	pthread_mutex_lock(&s->lock);
	if (prep(s, "SELECT id, workflow, definition, snapshot, depth, "
	    "started_ms, events FROM executions WHERE status IN ('running', "
	    "'compensating') ORDER BY started_ms, id", &st) < 0) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fn(arg, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    (const char *)sqlite3_column_text(st, 2),
		    (const char *)sqlite3_column_text(st, 3),
		    sqlite3_column_int(st, 4), sqlite3_column_int64(st, 5),
		    (long)sqlite3_column_int64(st, 6));
		n++;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return n;
}

static struct json_object *
col_str(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);

	return t ? json_object_new_string(t) : NULL;
}

/* A column holding JSON text, as a tree (its text if it does not parse). */
static struct json_object *
col_json(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	struct json_object *o;

	if (t == NULL)
		return NULL;
	o = json_tokener_parse(t);
	return o != NULL || strcmp(t, "null") == 0 ? o :
	    json_object_new_string(t);
}

static struct json_object *
time_of(int64_t ms)
{
	char b[40];

	if (ms <= 0)
		return NULL;
	log_timestamp(b, sizeof(b), ms);
	return json_object_new_string(b);
}

/* The row's common columns: id, workflow, status, current, started,
 * ended, events, result. */
static struct json_object *
row_json(sqlite3_stmt *st)
{
	struct json_object *o = json_object_new_object();
	int64_t started = sqlite3_column_int64(st, 4);
	int64_t ended = sqlite3_column_int64(st, 5);

	json_object_object_add(o, "id", col_str(st, 0));
	json_object_object_add(o, "workflow", col_str(st, 1));
	json_object_object_add(o, "status", col_str(st, 2));
	json_object_object_add(o, "current", col_str(st, 3));
	json_object_object_add(o, "started", time_of(started));
	json_object_object_add(o, "ended", time_of(ended));
	json_object_object_add(o, "duration_ms", ended > 0 ?
	    json_object_new_int64(ended - started) : NULL);
	json_object_object_add(o, "events",
	    json_object_new_int64(sqlite3_column_int64(st, 6)));
	return o;
}

struct json_object *
wf_store_list(struct wf_store *s, const char *status, const char *workflow,
    int limit)
{
	struct json_object *arr = json_object_new_array();
	sqlite3_stmt *st;

	pthread_mutex_lock(&s->lock);
	if (prep(s, "SELECT id, workflow, status, current, started_ms, "
	    "ended_ms, events FROM executions WHERE (?1 IS NULL OR status=?1) "
	    "AND (?2 IS NULL OR workflow=?2) ORDER BY started_ms DESC, id DESC "
	    "LIMIT ?3", &st) == 0) {
		bind_text(st, 1, status);
		bind_text(st, 2, workflow);
		sqlite3_bind_int(st, 3, limit);
		while (sqlite3_step(st) == SQLITE_ROW)
			json_object_array_add(arr, row_json(st));
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return arr;
}

struct json_object *
wf_store_show(struct wf_store *s, const char *id)
{
	struct json_object *o = NULL, *hist;
	sqlite3_stmt *st;

	pthread_mutex_lock(&s->lock);
	if (prep(s, "SELECT id, workflow, status, current, started_ms, "
	    "ended_ms, events, input, result, depth, snapshot FROM executions "
	    "WHERE id=?", &st) < 0)
		goto out;
	bind_text(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		struct json_object *snap = col_json(st, 10), *v;

		o = row_json(st);
		json_object_object_add(o, "input", col_json(st, 7));
		json_object_object_add(o, "result", col_json(st, 8));
		json_object_object_add(o, "depth",
		    json_object_new_int(sqlite3_column_int(st, 9)));
		/* What the snapshot says of compensations. */
		if (json_object_object_get_ex(snap, "compensations", &v))
			json_object_object_add(o, "compensations",
			    json_object_get(v));
		json_object_put(snap);
	}
	sqlite3_finalize(st);
	if (o == NULL)
		goto out;
	hist = json_object_new_array();
	if (prep(s, "SELECT seq, ts_ms, type, state, attempt, request_id, "
	    "detail FROM history WHERE exec_id=? ORDER BY seq", &st) == 0) {
		bind_text(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct json_object *e = json_object_new_object();

			json_object_object_add(e, "seq", json_object_new_int64(
			    sqlite3_column_int64(st, 0)));
			json_object_object_add(e, "time",
			    time_of(sqlite3_column_int64(st, 1)));
			json_object_object_add(e, "type", col_str(st, 2));
			json_object_object_add(e, "state", col_str(st, 3));
			json_object_object_add(e, "attempt",
			    sqlite3_column_type(st, 4) == SQLITE_NULL ? NULL :
			    json_object_new_int(sqlite3_column_int(st, 4)));
			json_object_object_add(e, "request_id", col_str(st, 5));
			json_object_object_add(e, "detail", col_json(st, 6));
			json_object_array_add(hist, e);
		}
		sqlite3_finalize(st);
	}
	json_object_object_add(o, "history", hist);
out:
	pthread_mutex_unlock(&s->lock);
	return o;
}

struct json_object *
wf_store_counts(struct wf_store *s)
{
	struct json_object *o = json_object_new_object();
	sqlite3_stmt *st;

	pthread_mutex_lock(&s->lock);
	if (prep(s, "SELECT status, count(*) FROM executions GROUP BY status",
	    &st) == 0) {
		while (sqlite3_step(st) == SQLITE_ROW)
			json_object_object_add(o,
			    (const char *)sqlite3_column_text(st, 0),
			    json_object_new_int64(sqlite3_column_int64(st, 1)));
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return o;
}
