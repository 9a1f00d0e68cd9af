/*
 * workflow.h - durable workflows: definitions from workflow_dir published
 * as commands, and the engine that runs their executions.
 *
 * Each definition (core/wf_def.h) becomes a generation of isolation
 * ISOLATION_WORKFLOW with one command; dispatch hands its calls to the
 * workflow executor here, which starts an execution and answers when it
 * ends (or at once, 202, for "async": true).  Steps are calls of
 * dispatch, like any transport's.  Every transition is stored
 * (wf_store.h) before the next is decided; at start-up unfinished
 * executions resume.  See docs/workflows.md.
 */
#ifndef CMDHOST_WORKFLOW_H
#define CMDHOST_WORKFLOW_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

struct config;
struct dispatch;
struct nats_host;
struct registry;
struct wf_engine;

/*
 * Open state_dir/workflows.db, install the workflow executor in d and
 * start the engine's threads.  cfg, reg and d are borrowed and must
 * outlive the engine.  Returns new (wf_engine_free), or NULL with the
 * reason in err.  Definitions are not read yet: wf_engine_start().
 */
struct wf_engine *wf_engine_new(const struct config *cfg,
    struct registry *reg, struct dispatch *d, char *err, size_t errlen);

/* Read workflow_dir (publishing its definitions), resume the unfinished
 * executions, and start watching workflow_dir.  Returns 0 or -1 (err). */
int wf_engine_start(struct wf_engine *e, char *err, size_t errlen);

/* Send the steps whose command is not served here over NATS through h
 * (borrowed; it must outlive the engine's steps: NULL it, or hold and
 * quiesce the engine, before h stops).  Any thread. */
void wf_engine_set_nats(struct wf_engine *e, struct nats_host *h);

/* Shutting down, first part: start no new step or execution (what is
 * out still gets its answer recorded).  wf_engine_quiesce() does the
 * rest.  NULL is ok. */
void wf_engine_hold(struct wf_engine *e);

/* Look at workflow_dir now (SIGHUP). */
void wf_engine_rescan(struct wf_engine *e);

/*
 * Shutting down: start no new execution or step; answer waiting callers
 * 503 (their executions resume at the next start); wait for the steps
 * in flight to be recorded until deadline_ns (CLOCK_MONOTONIC); stop the
 * threads.  Any thread, once.
 */
void wf_engine_quiesce(struct wf_engine *e, int64_t deadline_ns);

/* Free, after wf_engine_quiesce() and after dispatch is stopped and
 * freed (late step answers may still arrive until then).  NULL is ok. */
void wf_engine_free(struct wf_engine *e);

/*
 * host.executions: payload (borrowed) {"id": ID} gives one execution
 * with its history; else {"status": S, "workflow": W, "limit": N}
 * lists them, newest first, with counts by status.  Returns a new body,
 * or NULL with status and message (static) for an error reply.
 */
struct json_object *wf_engine_executions(struct wf_engine *e,
    struct json_object *payload, int *status, const char **message);

#endif /* CMDHOST_WORKFLOW_H */
