/*
 * invocation.c - set up, run and release one call of one command.
 *
 * Running is validate, then execute, then the deadline check; the result
 * stays in the invocation for whoever formats the reply.
 */
#include "invocation.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "generation.h"
#include "log.h"
#include "request.h"

int
invocation_init(struct invocation *inv, struct command *cmd,
    struct json_object *root, struct json_object *id,
    struct json_object *payload, int64_t rid_ms, unsigned rid_src,
    uint64_t rid_seq)
{
	memset(inv, 0, sizeof(*inv));
	inv->ctx.api = api_table();
	inv->cmd = cmd;
	inv->root = root;
	inv->id = id;
	inv->payload = payload;
	atomic_init(&inv->state, INV_QUEUED);
	inv->peer_pid = -1;
	inv->peer_uid = -1;
	request_id_make(inv->request_id, rid_ms, rid_src, rid_seq);
	if (id != NULL && (inv->id_text = request_id_format(id, inv->id_buf,
	    sizeof(inv->id_buf))) == NULL) {
		/* Too long for the buffer: a copy of json-c's text. */
		if ((inv->id_text = strdup(request_id_text(id))) == NULL) {
			memset(inv, 0, sizeof(*inv));
			return -ENOMEM;
		}
	}
	return 0;
}

void
invocation_fini(struct invocation *inv)
{
	if (inv == NULL)
		return;
	if (inv->root != NULL)
		json_object_put(inv->root);
	if (inv->body != NULL)
		json_object_put(inv->body);
	free(inv->payload_text);
	if (inv->id_text != NULL && inv->id_text != inv->id_buf)
		free((char *)inv->id_text);
	free(inv->code);
	free(inv->message);
	if (inv->late_body != NULL)
		json_object_put(inv->late_body);
	free(inv->late_code);
	free(inv->late_message);
	if (inv->cmd != NULL)
		generation_release(inv->cmd->gen);
	memset(inv, 0, sizeof(*inv));
}

struct invocation *
invocation_new(struct command *cmd, struct json_object *root,
    struct json_object *id, struct json_object *payload, int64_t rid_ms,
    unsigned rid_src, uint64_t rid_seq)
{
	struct invocation *inv = malloc(sizeof(*inv));

	if (inv == NULL)
		return NULL;
	if (invocation_init(inv, cmd, root, id, payload, rid_ms, rid_src,
	    rid_seq) < 0) {
		free(inv);
		return NULL;
	}
	return inv;
}

void
invocation_free(struct invocation *inv)
{
	invocation_fini(inv);
	free(inv);
}

int
invocation_cancel(struct invocation *inv)
{
	int expected = INV_QUEUED;

	return atomic_compare_exchange_strong(&inv->state, &expected,
	    INV_CANCELLED) || expected == INV_CANCELLED;
}

int
invocation_start(struct invocation *inv)
{
	int expected = INV_QUEUED;

	return atomic_compare_exchange_strong(&inv->state, &expected,
	    INV_RUNNING);
}

void
invocation_log_ctx(const struct invocation *inv, struct log_ctx *lc)
{
	const struct generation *g = inv->cmd->gen;

	lc->request_id = inv->request_id;
	lc->id = inv->id_text;
	if (inv->cmd->log_frag != NULL) {
		lc->frag = inv->cmd->log_frag;
	} else {
		lc->command = inv->cmd->name;
		lc->plugin = g->name;
		lc->version = g->version;
		lc->generation = (long long)g->number;
	}
	lc->cold_start = atomic_load_explicit(&inv->cold_start,
	    memory_order_relaxed);
	lc->pid = inv->peer_pid;
	lc->uid = inv->peer_uid;
}

void
invocation_set_error(struct invocation *inv, int status, const char *code,
    const char *message)
{
	if (inv->body != NULL) {
		json_object_put(inv->body);
		inv->body = NULL;
	}
	free(inv->code);
	free(inv->message);
	inv->code = strdup(code ? code : "command_failed");
	inv->message = strdup(message ? message : "");
	if (inv->code == NULL || inv->message == NULL) {
		/* Formatters fall back to static text (see reply code). */
		free(inv->code);
		free(inv->message);
		inv->code = NULL;
		inv->message = NULL;
		inv->oom = 1;
	}
	inv->status = status;
	inv->finished = 1;
}

void
invocation_refuse_body(struct invocation *inv, const char *why)
{
	const struct generation *g = inv->cmd->gen;
	char msg[512];

	snprintf(msg, sizeof(msg), "plugin '%s' %s (generation %llu) replied "
	    "with a body that is not valid JSON: %s", g->name, g->version,
	    (unsigned long long)g->number, why);
	invocation_set_error(inv, 500, "bad_reply", msg);
}

void
invocation_run(struct invocation *inv)
{
	struct command *cmd = inv->cmd;
	int rc;

	/* The first call a generation runs is its cold start (a call refused
	 * or expired before it ran is not); after it, a plain load of a flag
	 * that no longer changes. */
	if (!atomic_load_explicit(&cmd->gen->served, memory_order_relaxed) &&
	    !atomic_exchange_explicit(&cmd->gen->served, 1,
	    memory_order_relaxed))
		atomic_store_explicit(&inv->cold_start, 1,
		    memory_order_relaxed);

	/* For the crash record; a call nests in no other on a thread. */
	generation_running.command = cmd->name;
	generation_running.g = cmd->gen;
	if (cmd->validate != NULL) {
		rc = cmd->validate(&inv->ctx);
		if (!inv->finished && rc != 0)
			invocation_set_error(inv, 400, "invalid_payload",
			    "payload rejected by validate");
	}
	if (!inv->finished) {
		rc = cmd->execute(&inv->ctx);
		if (!inv->finished) {
			char msg[80];

			if (rc != 0)
				snprintf(msg, sizeof(msg), "command failed "
				    "(execute returned %d)", rc);
			else
				snprintf(msg, sizeof(msg), "command returned "
				    "without a reply");
			invocation_set_error(inv, 500, "command_failed", msg);
		}
	}
	generation_running.g = NULL;
	inv->end_ns = clock_mono_ns();
	if (!inv->keep_late)
		invocation_check_deadline(inv);
}

void
invocation_check_deadline(struct invocation *inv)
{
	if (inv->end_ns > inv->deadline_ns) {
		/* Keep what the command said: the reply is 504 all the same,
		 * and an idempotency key stores what it answered. */
		inv->late_status = inv->status;
		inv->late_body = inv->body;
		inv->body = NULL;
		inv->late_code = inv->code;
		inv->late_message = inv->message;
		inv->code = inv->message = NULL;
		invocation_set_error(inv, 504, "timeout",
		    "the command did not finish before its deadline");
	}
}
