/*
 * outbox.h - the daemon's durable outbox of events (state_dir/events.db).
 *
 * The events of a call that finished 2xx are written here, in one SQLite
 * (WAL) transaction with the other calls' of the same batch, before the
 * call's reply is released; so is every row relayed from a plugin's own
 * outbox.  A delivery thread then hands each pending event to the
 * deliverer (deliver.h) and is told once how it went: delivered (the row
 * goes), retry later, or dead (kept and listed until re-queued).  Per
 * subject, at most [events] window deliveries are in flight, oldest
 * first: with 1, events of a subject go out in order.
 *
 * It does not know where events go; deliver.c does.
 */
#ifndef CMDHOST_OUTBOX_H
#define CMDHOST_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

struct config;
struct event;
struct outbox;

/* One event in the outbox, as the deliverer sees it.  Owned by the
 * outbox; while a delivery of it is in flight every field is stable. */
struct ob_event {
	int64_t seq;            /* its row: the outbox's order */
	char *id;               /* stable: "<request id>.<n>" or
	                         * "<plugin>:<row id>" (relayed) */
	char *subject;
	char *body;             /* compact JSON text, len bytes + NUL */
	size_t len;
	char *request_id;       /* of the call that emitted it, or NULL */
	char *command;          /* that call's command, or the plugin */
	int64_t created_ms;     /* wall clock */
	int attempts;           /* deliveries tried before this one */
};

/* How a delivery ended (outbox_done). */
enum ob_outcome {
	OB_DELIVERED = 0,       /* gone from the outbox */
	OB_RETRY,               /* try again after retry_ms */
	OB_DEAD                 /* dead-lettered: kept and listed */
};

/* Start one delivery of ev (borrowed until outbox_done(ev)); called on
 * the delivery thread; it must end, on any thread, in exactly one
 * outbox_done() for ev. */
typedef void (*outbox_deliver_fn)(void *arg, struct ob_event *ev);

/* The events of outbox_add() are on disk (ok 1), or could not be written
 * (ok 0: none of them will be delivered).  On the writer thread. */
typedef void (*outbox_durable_fn)(void *arg, int ok);

/*
 * Open (or create) the outbox at path (borrowed) and load what a previous
 * run left (pending events, dead letters).  cfg is borrowed and must
 * outlive it.  Returns new (outbox_close), or NULL with the reason in err.
 */
struct outbox *outbox_open(const char *path, const struct config *cfg,
    char *err, size_t errlen);

/* After each round of deliveries started on the delivery thread (the
 * events due at one wake-up): a deliverer that gathers them (NATS
 * publishes a round at once) sends them now. */
typedef void (*outbox_round_fn)(void *arg);

/* Start delivering with fn(arg, ev), and round_end(arg) (NULL: none)
 * after each round.  Returns 0 or -errno. */
int outbox_start(struct outbox *ob, outbox_deliver_fn fn,
    outbox_round_fn round_end, void *arg);

/* Stop starting deliveries (those in flight still end in outbox_done).
 * NULL is ok. */
void outbox_stop(struct outbox *ob);

/* Write what is queued, stop the writer and free; after outbox_stop()
 * and after every delivery ended.  NULL is ok. */
void outbox_close(struct outbox *ob);

/*
 * Store n events (evs, n of them): on success the outbox takes what each
 * event owns (the array itself stays the caller's, its members zeroed)
 * and durable(arg, ok) runs exactly once on the writer thread.  ids NULL:
 * each event's id is "<request_id>.<i>"; else ids[i] (borrowed) and a row
 * of an id already stored is dropped as a duplicate (ok all the same).
 * request_id and command are borrowed (request_id may be NULL).  Returns
 * 0; -ENOSPC when [events] max_pending would be passed, -ENOMEM: then
 * nothing is taken and durable is never called.  Any thread.
 */
int outbox_add(struct outbox *ob, struct event *evs, size_t n,
    const char *const *ids, const char *request_id, const char *command,
    outbox_durable_fn durable, void *arg);

/*
 * Group commit for an event loop: with on non-zero, the inserts this
 * thread makes (outbox_add) do not wake the writer one by one; the
 * thread calls outbox_defer_flush() at the end of each turn, before it
 * waits, and the writer then commits every insert of the turn in one
 * transaction.  Their durable callbacks (and so the replies) come after
 * that commit, as always.  outbox_defer(0) flushes and stops deferring.
 * Per thread.
 */
void outbox_defer(int on);

/* Wake the writer for what this thread deferred (none: nothing). */
void outbox_defer_flush(void);

/*
 * A delivery of ev ended.  OB_RETRY: it is tried again retry_ms from now
 * (counted as a retry); OB_DEAD: dead-lettered with the reason `why`
 * (borrowed; also kept as the last error of a retry).  ev may be gone
 * after.  Any thread.
 */
void outbox_done(struct outbox *ob, struct ob_event *ev, int outcome,
    int64_t retry_ms, const char *why);

/* Put dead event `id` (borrowed) back in its subject's queue, first
 * attempt again.  Returns 0, or -ENOENT when no dead event has that id. */
int outbox_requeue(struct outbox *ob, const char *id);

/* A new JSON array (put it) of up to `limit` events, oldest first: the
 * pending ones, or the dead ones (dead non-zero).  NULL on ENOMEM. */
struct json_object *outbox_list(struct outbox *ob, int dead, size_t limit);

/* Add "events" (counters, pending, dead, oldest pending age, per subject)
 * to `into` (borrowed).  Any thread. */
void outbox_stats(struct outbox *ob, struct json_object *into);

/* Events pending and dead now. */
void outbox_counts(struct outbox *ob, size_t *pending, size_t *dead);

#endif /* CMDHOST_OUTBOX_H */
