/*
 * idem.c - idempotency records in memory, written behind to SQLite.
 *
 * Memory holds every in-progress record and the most recent done ones
 * (a hash table, and the done ones in age order); SQLite holds them all
 * until they expire.  A done record is evicted from memory only once its
 * write is committed; after the first eviction, a key that memory does
 * not know is looked up on disk.  The writer thread takes what is queued,
 * writes it in one transaction, commits, and only then tells the callers
 * waiting for it.  Expired rows are purged by the same thread, a batch
 * at a time, between writes.
 */
#include "idem.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <sqlite3.h>

#include "core/clock.h"
#include "core/thread.h"

#define BATCH_MAX 4096
#define PURGE_EVERY_MS 10000
#define PURGE_BATCH 1000
#define FLUSH_MS 100             /* writes nobody waits for, at the latest */

struct idem_rec {
	struct idem_rec *hnext;       /* hash chain */
	TAILQ_ENTRY(idem_rec) age;    /* done records, oldest first */
	uint64_t hash;
	char *scope, *command, *key;  /* in the same block as the record */
	size_t keylen;
	uint64_t fp[2];
	int done;
	int linked;                   /* in the hash table */
	int held;                     /* in progress, and its call holds it:
	                               * idem_finish() frees it */
	struct idem_result res;       /* done: owned */
	int64_t expires_ms;           /* wall clock */
	uint64_t seq;                 /* its last write */
	struct op *queued;            /* its write not yet taken, or NULL */
};

/* One write for the writer thread; it owns copies of what it writes. */
struct op {
	TAILQ_ENTRY(op) link;
	int del;
	char *scope, *command, *key;  /* in the same block as the op */
	size_t keylen;
	uint64_t fp[2];
	int done, status;
	char *text;                   /* owned, or NULL */
	size_t len;
	int64_t expires_ms;
	uint64_t seq;
	struct idem_rec *rec;         /* whose write it is, until taken */
	idem_durable_fn durable;
	void *arg;
};

struct idem {
	pthread_mutex_t lock;         /* everything below but the db */
	pthread_cond_t cond;          /* ops queued, or stop */
	struct idem_rec **buckets;
	size_t mask, count;
	TAILQ_HEAD(, idem_rec) done_age;
	size_t n_done, max_memory;
	int spilled;                  /* memory no longer knows every key */
	int64_t ttl_ms;
	TAILQ_HEAD(, op) ops;
	uint64_t next_seq, committed_seq;
	int urgent;                   /* a queued op has a caller waiting */
	int stop;
	struct idem_stats st;

	sqlite3 *db;                  /* the writer's */
	sqlite3 *rdb;                 /* lookups after a spill, under lock */
	sqlite3_stmt *put, *del, *purge, *get;
	pthread_t writer;
	int started;
};

static uint64_t
hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static uint64_t
hash_of(const char *scope, const char *command, const char *key,
    size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	h = hash_bytes(h, scope, strlen(scope) + 1);
	h = hash_bytes(h, command, strlen(command) + 1);
	return hash_bytes(h, key, len);
}

int
idem_storable(int status)
{
	return status >= 200 && status < 500;
}

/* ------------------------------------------------------------ memory */

static struct idem_rec *
rec_new(const char *scope, const char *command, const char *key,
    size_t len)
{
	size_t ls = strlen(scope) + 1, lc = strlen(command) + 1;
	struct idem_rec *r = calloc(1, sizeof(*r) + ls + lc + len + 1);

	if (r == NULL)
		return NULL;
	r->scope = (char *)(r + 1);
	r->command = r->scope + ls;
	r->key = r->command + lc;
	memcpy(r->scope, scope, ls);
	memcpy(r->command, command, lc);
	memcpy(r->key, key, len);
	r->keylen = len;
	r->hash = hash_of(scope, command, key, len);
	return r;
}

static void
rec_free(struct idem_rec *r)
{
	if (r == NULL)
		return;
	if (r->queued != NULL)
		r->queued->rec = NULL; /* the op owns copies of all it writes */
	free(r->res.text);
	free(r);
}

static struct idem_rec **
slot_of(struct idem *s, const char *scope, const char *command,
    const char *key, size_t len, uint64_t h)
{
	struct idem_rec **pp = &s->buckets[h & s->mask];

	for (; *pp != NULL; pp = &(*pp)->hnext) {
		struct idem_rec *r = *pp;

		if (r->hash == h && r->keylen == len &&
		    memcmp(r->key, key, len) == 0 &&
		    strcmp(r->command, command) == 0 &&
		    strcmp(r->scope, scope) == 0)
			break;
	}
	return pp;
}

/* Double the buckets when the table is full; on ENOMEM it stays as it
 * is (chains get longer). */
static void
grow(struct idem *s)
{
	size_t n = (s->mask + 1) * 2;
	struct idem_rec **b;

	if (s->count < s->mask + 1 || (b = calloc(n, sizeof(*b))) == NULL)
		return;
	for (size_t i = 0; i <= s->mask; i++) {
		struct idem_rec *r, *next;

		for (r = s->buckets[i]; r != NULL; r = next) {
			next = r->hnext;
			r->hnext = b[r->hash & (n - 1)];
			b[r->hash & (n - 1)] = r;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->mask = n - 1;
}

static void
link_rec(struct idem *s, struct idem_rec *r)
{
	struct idem_rec **pp = &s->buckets[r->hash & s->mask];

	r->hnext = *pp;
	*pp = r;
	r->linked = 1;
	s->count++;
	grow(s);
}

/* Take r out of memory; s->lock is held. */
static void
unlink_rec(struct idem *s, struct idem_rec *r)
{
	struct idem_rec **pp = slot_of(s, r->scope, r->command, r->key,
	    r->keylen, r->hash);

	if (*pp == r) {
		*pp = r->hnext;
		s->count--;
	}
	r->linked = 0;
	if (r->done) {
		TAILQ_REMOVE(&s->done_age, r, age);
		s->n_done--;
	}
}

/* Keep at most max_memory done records in memory: the oldest whose
 * write is committed go (they stay on disk). */
static void
evict(struct idem *s)
{
	struct idem_rec *r;

	while (s->n_done > s->max_memory &&
	    (r = TAILQ_FIRST(&s->done_age)) != NULL &&
	    r->seq <= s->committed_seq) {
		unlink_rec(s, r);
		rec_free(r);
		s->spilled = 1;
	}
}

/* ------------------------------------------------------------ writes */

/* Queue the write of r's state (del: its removal); s->lock is held.
 * Returns 0 or -ENOMEM (then durable is not called). */
static int
queue_op(struct idem *s, const struct idem_rec *r, int del,
    idem_durable_fn durable, void *arg)
{
	size_t ls = strlen(r->scope) + 1, lc = strlen(r->command) + 1;
	struct op *o = calloc(1, sizeof(*o) + ls + lc + r->keylen + 1);

	if (o == NULL)
		return -ENOMEM;
	o->scope = (char *)(o + 1);
	o->command = o->scope + ls;
	o->key = o->command + lc;
	memcpy(o->scope, r->scope, ls);
	memcpy(o->command, r->command, lc);
	memcpy(o->key, r->key, r->keylen);
	o->keylen = r->keylen;
	o->del = del;
	o->fp[0] = r->fp[0];
	o->fp[1] = r->fp[1];
	o->done = r->done;
	o->status = r->res.status;
	o->expires_ms = r->expires_ms;
	if (!del && r->res.text != NULL) {
		if ((o->text = malloc(r->res.len + 1)) == NULL) {
			free(o);
			return -ENOMEM;
		}
		memcpy(o->text, r->res.text, r->res.len + 1);
		o->len = r->res.len;
	}
	o->durable = durable;
	o->arg = arg;
	o->seq = ++s->next_seq;
	o->rec = (struct idem_rec *)r;
	((struct idem_rec *)r)->queued = o;
	/* A waiting reply wakes the writer at once; other writes go with
	 * the next batch, within FLUSH_MS (the first of them wakes it to
	 * set that alarm). */
	if (TAILQ_EMPTY(&s->ops))
		pthread_cond_signal(&s->cond);
	TAILQ_INSERT_TAIL(&s->ops, o, link);
	if (durable != NULL && !s->urgent) {
		s->urgent = 1;
		pthread_cond_signal(&s->cond);
	}
	return 0;
}

/*
 * Queue r's new state, or -- when r's in-progress write is still waiting
 * for the writer, as it mostly is under load -- turn that write into this
 * one: one row written per call instead of two.  s->lock is held.
 * Returns 0 or -ENOMEM (then durable is not called).
 */
static int
rewrite(struct idem *s, struct idem_rec *r, int del, idem_durable_fn durable,
    void *arg)
{
	struct op *o = r->queued;

	if (o == NULL || o->durable != NULL)
		return queue_op(s, r, del, durable, arg);
	free(o->text);
	o->text = NULL;
	o->len = 0;
	if (!del && r->res.text != NULL) {
		if ((o->text = malloc(r->res.len + 1)) == NULL)
			return queue_op(s, r, del, durable, arg);
		memcpy(o->text, r->res.text, r->res.len + 1);
		o->len = r->res.len;
	}
	o->del = del;
	o->done = r->done;
	o->status = r->res.status;
	o->expires_ms = r->expires_ms;
	o->durable = durable;
	o->arg = arg;
	/* To the tail, so that the queue stays in seq order. */
	o->seq = ++s->next_seq;
	TAILQ_REMOVE(&s->ops, o, link);
	TAILQ_INSERT_TAIL(&s->ops, o, link);
	if (durable != NULL && !s->urgent) {
		s->urgent = 1;
		pthread_cond_signal(&s->cond);
	}
	return 0;
}

static void
bind_key(sqlite3_stmt *st, const struct op *o)
{
	sqlite3_bind_text(st, 1, o->scope, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, o->command, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, o->key, (int)o->keylen, SQLITE_STATIC);
}

/* Write one op inside the open transaction.  Returns 0 or -1. */
static int
write_op(struct idem *s, const struct op *o)
{
	sqlite3_stmt *st = o->del ? s->del : s->put;
	int rc;

	bind_key(st, o);
	if (!o->del) {
		sqlite3_bind_blob(st, 4, o->fp, sizeof(o->fp), SQLITE_STATIC);
		sqlite3_bind_int(st, 5, o->done);
		sqlite3_bind_int(st, 6, o->status);
		if (o->text != NULL)
			sqlite3_bind_text(st, 7, o->text, (int)o->len,
			    SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 7);
		sqlite3_bind_int64(st, 8, o->expires_ms);
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Remove up to PURGE_BATCH expired rows.  Returns how many went. */
static int
purge(struct idem *s)
{
	int n;

	sqlite3_bind_int64(s->purge, 1, clock_wall_ms());
	sqlite3_bind_int(s->purge, 2, PURGE_BATCH);
	if (sqlite3_step(s->purge) != SQLITE_DONE)
		fprintf(stderr, "cmdhostd: idempotency store: purge: %s\n",
		    sqlite3_errmsg(s->db));
	sqlite3_reset(s->purge);
	n = sqlite3_changes(s->db);
	return n;
}

static void *
writer_main(void *arg)
{
	struct idem *s = arg;
	int64_t next_purge = clock_mono_ms() + PURGE_EVERY_MS;
	int64_t flush_at = clock_mono_ms() + FLUSH_MS;

	thread_use_c_locale();
	pthread_mutex_lock(&s->lock);
	for (;;) {
		TAILQ_HEAD(, op) batch;
		struct op *o;
		uint64_t last = 0;
		int n = 0, failed = 0;

		for (;;) {
			int64_t now = clock_mono_ms(), until = next_purge;
			struct timespec ts;

			if (s->urgent || s->stop || now >= next_purge)
				break;
			if (!TAILQ_EMPTY(&s->ops)) {
				if (now >= flush_at)
					break;
				if (flush_at < until)
					until = flush_at;
			}
			ts = clock_mono_ts(until * 1000000);
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		}
		s->urgent = 0;
		flush_at = clock_mono_ms() + FLUSH_MS;
		if (TAILQ_EMPTY(&s->ops) && s->stop)
			break;
		TAILQ_INIT(&batch);
		while (n < BATCH_MAX && (o = TAILQ_FIRST(&s->ops)) != NULL) {
			TAILQ_REMOVE(&s->ops, o, link);
			if (o->rec != NULL) {
				o->rec->queued = NULL;
				o->rec = NULL;
			}
			TAILQ_INSERT_TAIL(&batch, o, link);
			last = o->seq;
			n++;
		}
		pthread_mutex_unlock(&s->lock);

		if (n > 0) {
			sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
			TAILQ_FOREACH(o, &batch, link)
				if (write_op(s, o) < 0)
					failed++;
			if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) !=
			    SQLITE_OK)
				failed = n;
			if (failed > 0)
				fprintf(stderr, "cmdhostd: idempotency store: "
				    "%d of %d writes failed: %s\n", failed, n,
				    sqlite3_errmsg(s->db));
		}
		if (clock_mono_ms() >= next_purge) {
			while (purge(s) == PURGE_BATCH)
				;
			next_purge = clock_mono_ms() + PURGE_EVERY_MS;
		}
		/* Committed: replays may show it, and the replies may leave. */
		pthread_mutex_lock(&s->lock);
		if (last > s->committed_seq)
			s->committed_seq = last;
		pthread_mutex_unlock(&s->lock);
		while ((o = TAILQ_FIRST(&batch)) != NULL) {
			TAILQ_REMOVE(&batch, o, link);
			if (o->durable != NULL)
				o->durable(o->arg);
			free(o->text);
			free(o);
		}
		pthread_mutex_lock(&s->lock);
		if (last > s->committed_seq)
			s->committed_seq = last;
		evict(s);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ------------------------------------------------------------ disk */

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS idem ("
    " scope TEXT NOT NULL, command TEXT NOT NULL, key BLOB NOT NULL,"
    " fp BLOB NOT NULL, done INTEGER NOT NULL, status INTEGER NOT NULL,"
    " result TEXT, expires_ms INTEGER NOT NULL,"
    " PRIMARY KEY (scope, command, key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS idem_expires ON idem (expires_ms);";

static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err,
    size_t errlen, const char *path)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "idempotency store %s: %s", path,
	    sqlite3_errmsg(db));
	return -1;
}

/* Open path with WAL and a busy timeout.  Returns 0 or -1 (err). */
static int
open_db(const char *path, sqlite3 **db, char *err, size_t errlen)
{
	int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "idempotency store %s: %s", path,
		    *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		return -1;
	}
	sqlite3_busy_timeout(*db, 5000);
	/* WAL with synchronous=NORMAL: a commit survives the daemon's
	 * crash or kill; only the machine's can roll back the last ones. */
	if (sqlite3_exec(*db, "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "idempotency store %s: %s", path,
		    sqlite3_errmsg(*db));
		return -1;
	}
	return 0;
}

/* Load live records, newest first, until memory is full. */
static int
load(struct idem *s, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (prepare(s->db, "SELECT scope, command, key, fp, done, status, "
	    "result, expires_ms FROM idem WHERE expires_ms > ? ORDER BY "
	    "expires_ms DESC", &st, err, errlen, path) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, clock_wall_ms());
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *text = (const char *)sqlite3_column_text(st, 6);
		struct idem_rec *r;

		if (s->n_done >= s->max_memory) {
			s->spilled = 1;
			break;
		}
		if (sqlite3_column_bytes(st, 3) != sizeof(r->fp) ||
		    (r = rec_new((const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    sqlite3_column_blob(st, 2),
		    (size_t)sqlite3_column_bytes(st, 2))) == NULL)
			continue;
		memcpy(r->fp, sqlite3_column_blob(st, 3), sizeof(r->fp));
		r->done = sqlite3_column_int(st, 4);
		r->res.status = sqlite3_column_int(st, 5);
		r->expires_ms = sqlite3_column_int64(st, 7);
		if (text != NULL) {
			r->res.len = (size_t)sqlite3_column_bytes(st, 6);
			if ((r->res.text = strdup(text)) == NULL) {
				rec_free(r);
				continue;
			}
		}
		link_rec(s, r);
		if (r->done) {
			/* Newest first: the oldest end up at the head. */
			TAILQ_INSERT_HEAD(&s->done_age, r, age);
			s->n_done++;
		}
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		snprintf(err, errlen, "idempotency store %s is unreadable "
		    "(%s); move it away to start with an empty one", path,
		    sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

struct idem *
idem_open(const char *path, int64_t ttl_ms, size_t max_memory, char *err,
    size_t errlen)
{
	struct idem *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->buckets = calloc(1024, sizeof(*s->buckets))) ==
	    NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->mask = 1023;
	s->ttl_ms = ttl_ms;
	s->max_memory = max_memory;
	TAILQ_INIT(&s->done_age);
	TAILQ_INIT(&s->ops);
	pthread_mutex_init(&s->lock, NULL);
	thread_cond_init(&s->cond);
	if (open_db(path, &s->db, err, errlen) < 0)
		goto fail;
	if (sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "idempotency store %s: %s (is it a "
		    "cmdhost store?)", path, sqlite3_errmsg(s->db));
		goto fail;
	}
	if (prepare(s->db, "INSERT OR REPLACE INTO idem (scope, command, "
	    "key, fp, done, status, result, expires_ms) VALUES "
	    "(?, ?, ?, ?, ?, ?, ?, ?)", &s->put, err, errlen, path) < 0 ||
	    prepare(s->db, "DELETE FROM idem WHERE scope = ? AND command = ? "
	    "AND key = ?", &s->del, err, errlen, path) < 0 ||
	    prepare(s->db, "DELETE FROM idem WHERE (scope, command, key) IN "
	    "(SELECT scope, command, key FROM idem WHERE expires_ms <= ? "
	    "LIMIT ?)", &s->purge, err, errlen, path) < 0)
		goto fail;
	if (load(s, path, err, errlen) < 0)
		goto fail;
	if (open_db(path, &s->rdb, err, errlen) < 0 || prepare(s->rdb,
	    "SELECT fp, done, status, result, expires_ms FROM idem WHERE "
	    "scope = ? AND command = ? AND key = ?", &s->get, err, errlen,
	    path) < 0)
		goto fail;
	if ((errno = pthread_create(&s->writer, NULL, writer_main, s)) != 0) {
		snprintf(err, errlen, "idempotency store: cannot start its "
		    "writer: %s", strerror(errno));
		goto fail;
	}
	s->started = 1;
	return s;
fail:
	idem_close(s);
	return NULL;
}

void
idem_close(struct idem *s)
{
	if (s == NULL)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = 1;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->writer, NULL);
	}
	sqlite3_finalize(s->put);
	sqlite3_finalize(s->del);
	sqlite3_finalize(s->purge);
	sqlite3_finalize(s->get);
	sqlite3_close(s->db);
	sqlite3_close(s->rdb);
	for (size_t i = 0; s->buckets != NULL && i <= s->mask; i++) {
		struct idem_rec *r, *next;

		for (r = s->buckets[i]; r != NULL; r = next) {
			next = r->hnext;
			rec_free(r);
		}
	}
	free(s->buckets);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

/* A key memory does not know, after a spill: look on disk, and bring a
 * live record back into memory.  s->lock is held.  NULL: none. */
static struct idem_rec *
from_disk(struct idem *s, const char *scope, const char *command,
    const char *key, size_t len)
{
	struct idem_rec *r = NULL;
	const char *text;

	sqlite3_bind_text(s->get, 1, scope, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->get, 2, command, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s->get, 3, key, (int)len, SQLITE_STATIC);
	if (sqlite3_step(s->get) == SQLITE_ROW &&
	    sqlite3_column_int64(s->get, 4) > clock_wall_ms() &&
	    sqlite3_column_bytes(s->get, 0) == (int)sizeof(r->fp) &&
	    (r = rec_new(scope, command, key, len)) != NULL) {
		memcpy(r->fp, sqlite3_column_blob(s->get, 0), sizeof(r->fp));
		r->done = sqlite3_column_int(s->get, 1);
		r->res.status = sqlite3_column_int(s->get, 2);
		r->expires_ms = sqlite3_column_int64(s->get, 4);
		if ((text = (const char *)sqlite3_column_text(s->get, 3)) !=
		    NULL) {
			r->res.len = (size_t)sqlite3_column_bytes(s->get, 3);
			r->res.text = strdup(text);
		}
		link_rec(s, r);
		if (r->done) {
			TAILQ_INSERT_TAIL(&s->done_age, r, age);
			s->n_done++;
		}
	}
	sqlite3_reset(s->get);
	sqlite3_clear_bindings(s->get);
	return r;
}

enum idem_verdict
idem_begin(struct idem *s, const char *scope, const char *command,
    const char *key, size_t len, const uint64_t fp[2], int64_t deadline_ms,
    struct idem_rec **rec, struct idem_result *res)
{
	uint64_t h = hash_of(scope, command, key, len);
	int64_t now = clock_wall_ms();
	struct idem_rec *r;
	enum idem_verdict v = IDEM_RUN;

	*rec = NULL;
	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&s->lock);
	r = *slot_of(s, scope, command, key, len, h);
	if (r == NULL && s->spilled)
		r = from_disk(s, scope, command, key, len);
	if (r != NULL && r->expires_ms <= now) {
		/* Expired: a done record past its TTL, or an in-progress one
		 * past its call's deadline (a crash, or a call that overran:
		 * its late result then finds its record gone, and frees it). */
		unlink_rec(s, r);
		if (!r->held)
			rec_free(r);
		r = NULL;
	}
	if (r != NULL) {
		if (r->fp[0] != fp[0] || r->fp[1] != fp[1]) {
			v = IDEM_MISMATCH;
		} else if (!r->done || r->seq > s->committed_seq) {
			/* Running, or done but not on disk yet: a replay must
			 * not show what a crash could still take back. */
			v = IDEM_BUSY;
		} else {
			v = IDEM_REPLAY;
			res->status = r->res.status;
			res->len = r->res.len;
			if (r->res.text != NULL && (res->text = malloc(
			    r->res.len + 1)) != NULL)
				memcpy(res->text, r->res.text, r->res.len + 1);
			/* Recently used: keep it in memory longest. */
			TAILQ_REMOVE(&s->done_age, r, age);
			TAILQ_INSERT_TAIL(&s->done_age, r, age);
		}
		pthread_mutex_unlock(&s->lock);
		return v;
	}
	if ((r = rec_new(scope, command, key, len)) == NULL) {
		pthread_mutex_unlock(&s->lock);
		return IDEM_RUN; /* run it unguarded rather than fail it */
	}
	r->fp[0] = fp[0];
	r->fp[1] = fp[1];
	r->expires_ms = deadline_ms;
	r->held = 1;
	link_rec(s, r);
	/* Nobody waits for this write: it only keeps a crash from freeing
	 * the key before the call's deadline. */
	if (queue_op(s, r, 0, NULL, NULL) == 0)
		r->seq = s->next_seq;
	*rec = r;
	pthread_mutex_unlock(&s->lock);
	return IDEM_RUN;
}

void
idem_finish(struct idem *s, struct idem_rec *r, int status,
    const char *text, size_t len, idem_durable_fn durable, void *arg)
{
	int queued = -1;

	pthread_mutex_lock(&s->lock);
	if (!r->linked) {
		/* Expired and replaced meanwhile: its result goes nowhere. */
		pthread_mutex_unlock(&s->lock);
		rec_free(r);
		if (durable != NULL)
			durable(arg);
		return;
	}
	r->held = 0;
	if (idem_storable(status)) {
		r->done = 1;
		r->res.status = status;
		if (text != NULL && (r->res.text = malloc(len + 1)) != NULL) {
			memcpy(r->res.text, text, len);
			r->res.text[len] = '\0';
			r->res.len = len;
		}
		r->expires_ms = clock_wall_ms() + s->ttl_ms;
		TAILQ_INSERT_TAIL(&s->done_age, r, age);
		s->n_done++;
		s->st.stored++;
		queued = rewrite(s, r, 0, durable, arg);
		r->seq = s->next_seq;
		evict(s);
	} else {
		queued = rewrite(s, r, 1, durable, arg);
		unlink_rec(s, r);
		rec_free(r);
	}
	pthread_mutex_unlock(&s->lock);
	if (queued < 0 && durable != NULL)
		durable(arg); /* out of memory: reply without waiting */
}

void
idem_count_replay(struct idem *s)
{
	pthread_mutex_lock(&s->lock);
	s->st.replays++;
	pthread_mutex_unlock(&s->lock);
}

void
idem_count_conflict(struct idem *s)
{
	pthread_mutex_lock(&s->lock);
	s->st.conflicts++;
	pthread_mutex_unlock(&s->lock);
}

void
idem_count_mismatch(struct idem *s)
{
	pthread_mutex_lock(&s->lock);
	s->st.mismatches++;
	pthread_mutex_unlock(&s->lock);
}

void
idem_get_stats(struct idem *s, struct idem_stats *st)
{
	pthread_mutex_lock(&s->lock);
	*st = s->st;
	st->records = s->count;
	pthread_mutex_unlock(&s->lock);
}

static enum idem_verdict
local_begin(void *store, const char *scope, const char *command,
    const char *key, size_t len, const uint64_t fp[2], int64_t deadline_ms,
    void **rec, struct idem_result *res)
{
	struct idem_rec *r;
	enum idem_verdict v = idem_begin(store, scope, command, key, len, fp,
	    deadline_ms, &r, res);

	*rec = r;
	return v;
}

static void
local_finish(void *store, void *rec, int status, const char *text,
    size_t len, idem_durable_fn durable, void *arg)
{
	idem_finish(store, rec, status, text, len, durable, arg);
}

void
idem_backend_local(struct idem *s, struct idem_backend *be)
{
	be->store = s;
	be->begin = local_begin;
	be->finish = local_finish;
}
