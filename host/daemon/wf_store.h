/*
 * wf_store.h - the durable record of workflow executions: one row per
 * execution (its definition's text, status, where it stands as a
 * snapshot) and an append-only history of its transitions, in SQLite
 * (state_dir/workflows.db, WAL).
 *
 * Every call is one transaction, committed before it returns, under one
 * lock: what the engine does next is decided only after the transition
 * that led to it is stored.  It knows nothing of definitions.
 */
#ifndef CMDHOST_WF_STORE_H
#define CMDHOST_WF_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

struct wf_store;

/* One history event.  Strings are borrowed for the call; NULL is ok for
 * all but type. */
struct wf_event {
	const char *type;        /* "ExecutionStarted", "TaskSucceeded", ... */
	const char *state;       /* the state it concerns */
	int attempt;             /* 0: none */
	const char *request_id;  /* the step's call */
	const char *detail;      /* JSON text */
};

/*
 * Open (creating) the store at path (borrowed) with SQLite's
 * `synchronous` level (0 OFF, 1 NORMAL, 2 FULL) in WAL mode.  Returns
 * new (wf_store_close), or NULL with the path and the reason in err.
 */
struct wf_store *wf_store_open(const char *path, int synchronous, char *err,
    size_t errlen);

/* Close; NULL is ok. */
void wf_store_close(struct wf_store *s);

/* A new execution and its first event, in one transaction.  All strings
 * borrowed.  Returns 0 or -1 (the reason is logged). */
int wf_store_create(struct wf_store *s, const char *id, const char *workflow,
    const char *def_text, const char *input, int depth, int64_t now_ms,
    const char *snapshot, const struct wf_event *ev);

/*
 * Append ev to id's history and set its row: status, current state (NULL
 * keeps it), snapshot; when ended_ms > 0 also its output or error (JSON
 * text, borrowed) and end time.  One transaction.  *seq (may be NULL)
 * gets the event's number.  Returns 0 or -1.
 */
int wf_store_append(struct wf_store *s, const char *id,
    const struct wf_event *ev, const char *status, const char *current,
    const char *snapshot, const char *result, int64_t ended_ms);

/* 1 if execution id (borrowed) has a row here, else 0. */
int wf_store_has(struct wf_store *s, const char *id);

/* Called for every unfinished execution (status running or
 * compensating), oldest first; strings borrowed for the call. */
typedef void (*wf_store_fn)(void *arg, const char *id, const char *workflow,
    const char *def_text, const char *snapshot, int depth, int64_t started_ms,
    long events);
int wf_store_each_unfinished(struct wf_store *s, wf_store_fn fn, void *arg);

/* Executions, newest first, at most limit, only those of status (NULL:
 * any) and workflow (NULL: any): a new array (one reference). */
struct json_object *wf_store_list(struct wf_store *s, const char *status,
    const char *workflow, int limit);

/* One execution with its history: a new object, or NULL if none. */
struct json_object *wf_store_show(struct wf_store *s, const char *id);

/* How many executions have each status: a new object. */
struct json_object *wf_store_counts(struct wf_store *s);

#endif /* CMDHOST_WF_STORE_H */
