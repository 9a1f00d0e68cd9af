/*
 * wf_kv.h - who drives which workflow execution, when the daemons of a
 * queue group share a JetStream key-value bucket ([jetstream]
 * workflow_bucket): the bucket holds one record per unfinished execution
 * (everything needed to resume it, and its owner) and one heartbeat per
 * daemon.  See docs/workflows.md, "Executions in a JetStream bucket".
 *
 * Ownership is fenced by compare-and-set on the record's revision: the
 * engine (workflow.c) writes every transition of an execution it owns
 * with the revision it last wrote, so once another daemon has claimed
 * the record (a write of its own), the old owner's next write fails and
 * it stops driving the execution.  Liveness is the heartbeat: a thread
 * here rewrites this daemon's heartbeat every workflow_lease_ms / 4 and,
 * every other time, looks at the bucket: a daemon whose heartbeat's
 * revision has not changed for workflow_lease_ms (as this daemon's
 * monotonic clock measures it, so that the machines' clocks need not
 * agree), or whose heartbeat is gone, is dead, and its records are
 * claimed, one compare-and-set each, and handed to the engine to resume.
 *
 * Keys: "x.<execution id>" for records, "n.<owner id>" for heartbeats;
 * the owner id is <hostname>-<pid>-<start time, ms, hex>.  Records are
 * JSON objects (wf_kv_encode()).  This file never includes a NATS header.
 */
#ifndef CMDHOST_WF_KV_H
#define CMDHOST_WF_KV_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

struct nats_host;
struct wf_kv;

/* What the engine tells and is told; every call comes from wf_kv's
 * thread, never under a lock of wf_kv's. */
struct wf_kv_hooks {
	void *arg;
	/* 1 if this daemon drives execution id (borrowed) now. */
	int (*is_live)(void *arg, const char *id);
	/* 1 if this daemon may take one more execution. */
	int (*has_room)(void *arg);
	/* Resume execution id: rec is its record (borrowed for the call, its
	 * owner this daemon now), rev the revision this daemon wrote.
	 * Returns 0, or -1 when it cannot be resumed (a bad record): then it
	 * is never claimed again by this daemon (it stays in the bucket for
	 * an operator; the log says why). */
	int (*claimed)(void *arg, const char *id, struct json_object *rec,
	    uint64_t rev);
};

/* The fields of a record.  All borrowed; input, snapshot: JSON text. */
struct wf_kv_rec {
	const char *id;
	const char *workflow;
	const char *definition;   /* the definition's text */
	const char *input;
	const char *snapshot;     /* workflow.c's snapshot */
	const char *status;       /* "running" or "compensating" */
	int depth;
	int64_t started_ms;
	long events;
};

/*
 * A new owner for the bucket reached through h (borrowed, must outlive
 * it), lease_ms as configured; hooks copied (their arg borrowed).
 * Returns new (wf_kv_free) or NULL (ENOMEM).  Nothing runs before
 * wf_kv_start().
 */
struct wf_kv *wf_kv_new(struct nats_host *h, int lease_ms,
    const struct wf_kv_hooks *hooks);

/* Start the heartbeat and sweeper thread.  Returns 0 or -1 (err). */
int wf_kv_start(struct wf_kv *k, char *err, size_t errlen);

/* Stop the thread (no more claims) and delete this daemon's heartbeat,
 * so that the others take its unfinished executions over at once.  Any
 * thread; again is a no-op.  NULL is ok. */
void wf_kv_stop(struct wf_kv *k);

/* Free, after wf_kv_stop().  NULL is ok. */
void wf_kv_free(struct wf_kv *k);

/* This daemon's owner id (borrowed from k). */
const char *wf_kv_owner(const struct wf_kv *k);

/* 1 once this daemon's heartbeat is in the bucket (before that, no
 * execution may start: nobody could tell whether its owner lives). */
int wf_kv_ready(struct wf_kv *k);

/* r with this daemon as owner, as a record's text: new (free it), its
 * length in *len; NULL on ENOMEM. */
char *wf_kv_encode(const struct wf_kv *k, const struct wf_kv_rec *r,
    size_t *len);

/*
 * The record of execution id: create it (NATS_KV_OK and *rev,
 * NATS_KV_EXISTS, NATS_KV_UNAVAILABLE), replace it if its revision is
 * still `last` (NATS_KV_OK and *rev, NATS_KV_CONFLICT: another daemon
 * took it over, NATS_KV_UNAVAILABLE), delete it if its revision is
 * still `last` (NATS_KV_OK, NATS_KV_CONFLICT, NATS_KV_UNAVAILABLE).
 * Borrowed arguments; err gets the reason.  Any thread.
 */
int wf_kv_create(struct wf_kv *k, const char *id, const char *val,
    size_t len, uint64_t *rev, char *err, size_t errlen);
int wf_kv_update(struct wf_kv *k, const char *id, const char *val,
    size_t len, uint64_t last, uint64_t *rev, char *err, size_t errlen);
int wf_kv_delete(struct wf_kv *k, const char *id, uint64_t last, char *err,
    size_t errlen);

/* Counters for host.stats: a new object {"owner", "ready", "claimed",
 * "lost", "sweeps" (looks at the bucket done), "peers" (live or not yet
 * judged)}. */
struct json_object *wf_kv_stats(struct wf_kv *k);

/* Count an execution this daemon lost to another (its write failed). */
void wf_kv_count_lost(struct wf_kv *k);

#endif /* CMDHOST_WF_KV_H */
