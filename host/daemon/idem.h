/*
 * idem.h - the idempotency store: one record per (scope, command, key).
 *
 * A record is in progress while its first call runs and done once that
 * call's final result is stored.  Every decision (run, replay, 409, 422)
 * is taken in memory under one lock, so the hot path never waits for the
 * disk; records are written to SQLite (WAL) in state_dir by a writer
 * thread that commits in batches, and a done record's reply is released
 * only once its batch is committed: a reply a client saw is replayed
 * after a crash, a kill or a restart.  In-progress records are written
 * too, but nothing waits for them.
 */
#ifndef CMDHOST_IDEM_H
#define CMDHOST_IDEM_H

#include <stddef.h>
#include <stdint.h>

struct idem;
struct idem_rec;

/* What a keyed call should do. */
enum idem_verdict {
	IDEM_RUN = 0,     /* no record: run it (*rec is its new record) */
	IDEM_REPLAY,      /* a done record: answer with its result */
	IDEM_BUSY,        /* the first call is still running: 409 */
	IDEM_MISMATCH,    /* same key, another payload: 422 */
	IDEM_UNAVAILABLE  /* the store cannot be reached: 503, not run */
};

/* A stored result: status and the reply member's JSON text ("body" for
 * 2xx, "error" for 4xx), owned by whoever holds it. */
struct idem_result {
	int status;
	char *text;
	size_t len;
};

/* Counters for host.stats. */
struct idem_stats {
	uint64_t replays, conflicts, mismatches, stored, records;
};

/*
 * Open (or create) the store at path (borrowed) with the given TTL of
 * done records and the most records kept in memory, load its live
 * records and start the writer thread.  Returns new (idem_close), or
 * NULL with the path and the reason in err.
 */
struct idem *idem_open(const char *path, int64_t ttl_ms, size_t max_memory,
    char *err, size_t errlen);

/* Write what is queued, stop the writer and free.  NULL is ok. */
void idem_close(struct idem *s);

/*
 * Decide what a call of `command` with `key` (len bytes, may hold any
 * byte) from `scope` does; fp is its payload's fingerprint.  For
 * IDEM_RUN, *rec is its new in-progress record (expiring at
 * deadline_ms, wall clock), to be finished with idem_finish(); for
 * IDEM_REPLAY, *res gets an owned copy of the stored result (free
 * res->text).  All strings are borrowed.  Any thread.
 */
enum idem_verdict idem_begin(struct idem *s, const char *scope,
    const char *command, const char *key, size_t len, const uint64_t fp[2],
    int64_t deadline_ms, struct idem_rec **rec, struct idem_result *res);

/* Called on the writer thread once a finished record's result is
 * committed (or at once, on the caller's thread, when nothing had to be
 * written). */
typedef void (*idem_durable_fn)(void *arg);

/*
 * The first call of rec is over with `status` and its reply member's
 * text (borrowed; NULL when there is none).  A result the command chose
 * (2xx, 4xx) is stored until the TTL; any other (5xx, 503, 504, a call
 * that never ran: status 0) removes the record, so that a retry runs.
 * rec is gone after.  durable(arg), if not NULL, is called exactly once
 * when the outcome is on disk.  Any thread.
 */
void idem_finish(struct idem *s, struct idem_rec *rec, int status,
    const char *text, size_t len, idem_durable_fn durable, void *arg);

/* True for the statuses idem_finish() stores. */
int idem_storable(int status);

/* Count a replay, a 409 and a 422 answered by the caller (whichever
 * backend decided). */
void idem_count_replay(struct idem *s);
void idem_count_conflict(struct idem *s);
void idem_count_mismatch(struct idem *s);

/*
 * A store of records behind dispatch, as two operations: this local
 * store (idem_backend_local()) or the JetStream bucket that the daemons
 * of a queue group share (idem_kv.h).  The transport picks one per call
 * (dispatch_args.idem); a record is the backend's own, opaque to
 * dispatch, and goes back to the backend that made it.
 */
struct idem_backend {
	void *store;                  /* the first argument of both */
	/* As idem_begin(); may also answer IDEM_UNAVAILABLE. */
	enum idem_verdict (*begin)(void *store, const char *scope,
	    const char *command, const char *key, size_t len,
	    const uint64_t fp[2], int64_t deadline_ms, void **rec,
	    struct idem_result *res);
	/* As idem_finish(): rec is gone after, durable runs exactly once
	 * (maybe before this returns). */
	void (*finish)(void *store, void *rec, int status, const char *text,
	    size_t len, idem_durable_fn durable, void *arg);
};

/* Fill be (the caller's) with the operations of store s (borrowed: it
 * must outlive be's use). */
void idem_backend_local(struct idem *s, struct idem_backend *be);

/* Fill st.  Any thread. */
void idem_get_stats(struct idem *s, struct idem_stats *st);

#endif /* CMDHOST_IDEM_H */
