/*
 * invocation.c - set up, run and release one call of one command.
 *
 * Running is validate, then execute, then the deadline check; the result
 * stays in the invocation for whoever formats the reply.
 */
#include "invocation.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "event.h"
#include "generation.h"
#include "log.h"
#include "request.h"

int
invocation_init(struct invocation *inv, struct command *cmd,
    struct json_object *root, struct json_object *id,
    struct json_object *payload, int64_t rid_ms, unsigned rid_src,
    uint64_t rid_seq)
{
	memset(inv, 0, offsetof(struct invocation, payload_buf));
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
			memset(inv, 0, offsetof(struct invocation,
			    payload_buf));
			return -ENOMEM;
		}
	}
	return 0;
}

/* Copy the JSON text s[0..n) to out without the whitespace between its
 * tokens; returns the length written. */
static size_t
compact_copy(const char *s, size_t n, char *out)
{
	size_t o = 0;
	int in_str = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (in_str) {
			out[o++] = c;
			if (c == '\\')
				out[o++] = s[++i];
			else if (c == '"')
				in_str = 0;
		} else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			out[o++] = c;
			in_str = c == '"';
		}
	}
	return o;
}

int
invocation_init_req(struct invocation *inv, struct command *cmd,
    struct request *req, int64_t rid_ms, unsigned rid_src,
    uint64_t rid_seq)
{
	size_t n;
	char *text;

	if (!req->scanned) {
		if (invocation_init(inv, cmd, req->root, req->id, req->payload,
		    rid_ms, rid_src, rid_seq) < 0)
			return -ENOMEM;
		req->root = NULL;
		return 0;
	}
	n = req->payload_len - req->payload_ws;
	text = n < sizeof(inv->payload_buf) ? inv->payload_buf :
	    malloc(n + 1);
	if (text == NULL)
		return -ENOMEM;
	/* The id: its text, or (escapes) its object, as invocation_init. */
	if (invocation_init(inv, cmd, NULL, req->id, NULL, rid_ms, rid_src,
	    rid_seq) < 0) {
		if (text != inv->payload_buf)
			free(text);
		return -ENOMEM;
	}
	if (req->id != NULL) {
		inv->own_id = 1;
		req->id = NULL;
	} else if (req->id_text != NULL) {
		size_t idn = strlen(req->id_text);

		/* envelope_scan() keeps only ids that fit id_buf. */
		memcpy(inv->id_buf, req->id_text, idn + 1);
		inv->id_text = inv->id_buf;
	}
	inv->text_mode = 1;
	inv->payload_plain = req->payload_plain;
	if (req->payload_ws == 0)
		memcpy(text, req->payload_text, n);
	else
		n = compact_copy(req->payload_text, req->payload_len, text);
	text[n] = '\0';
	inv->payload_text = text;
	inv->payload_len = n;
	if (req->root != NULL) {
		/* The tree dispatch made (fields, a key's fingerprint). */
		inv->root = req->root;
		inv->payload = req->payload;
		req->root = req->payload = NULL;
	}
	return 0;
}

/* One tokener per thread for payloads asked for as trees. */
static pthread_key_t tok_key;
static pthread_once_t tok_once = PTHREAD_ONCE_INIT;

static void
tok_free(void *tok)
{
	json_tokener_free(tok);
}

static void
tok_init(void)
{
	(void)pthread_key_create(&tok_key, tok_free);
}

/* The calling thread's request tokener, or NULL on ENOMEM.  Borrowed:
 * freed when the thread exits. */
static struct json_tokener *
thread_tokener(void)
{
	struct json_tokener *tok;

	(void)pthread_once(&tok_once, tok_init);
	if ((tok = pthread_getspecific(tok_key)) == NULL &&
	    (tok = request_tokener_new()) != NULL &&
	    pthread_setspecific(tok_key, tok) != 0) {
		json_tokener_free(tok);
		tok = NULL;
	}
	return tok;
}

/* The value of the checked JSON text s (NUL-terminated, n bytes): new,
 * or NULL on ENOMEM. */
static struct json_object *
parse_checked(const char *s, size_t n)
{
	struct json_tokener *tok = thread_tokener();

	if (tok == NULL)
		return NULL;
	request_tokener_reset(tok);
	/* The NUL too: it ends a number at the top level. */
	return json_tokener_parse_ex(tok, s, (int)n + 1);
}

struct json_object *
invocation_payload(struct invocation *inv)
{
	if (inv->payload == NULL && inv->text_mode && inv->root == NULL)
		inv->root = inv->payload = parse_checked(inv->payload_text,
		    inv->payload_len);
	return inv->payload;
}

struct json_object *
invocation_client_id(struct invocation *inv)
{
	if (inv->id == NULL && inv->text_mode && inv->id_text != NULL) {
		inv->id = parse_checked(inv->id_text, strlen(inv->id_text));
		inv->own_id = inv->id != NULL;
	}
	return inv->id;
}

/* Drop a text body (body_buf or owned). */
static void
drop_text(struct invocation *inv, char **text, size_t *len)
{
	if (*text != NULL && *text != inv->body_buf)
		free(*text);
	*text = NULL;
	*len = 0;
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
	if (inv->payload_text != inv->payload_buf)
		free(inv->payload_text);
	if (inv->own_id)
		json_object_put(inv->id);
	drop_text(inv, &inv->body_text, &inv->body_len);
	drop_text(inv, &inv->late_text, &inv->late_len);
	if (inv->id_text != NULL && inv->id_text != inv->id_buf)
		free((char *)inv->id_text);
	/* The rest is there only after an error, a late answer or events:
	 * a call that had none frees nothing. */
	if (inv->code != NULL || inv->message != NULL) {
		free(inv->code);
		free(inv->message);
	}
	if (inv->late_body != NULL)
		json_object_put(inv->late_body);
	if (inv->late_code != NULL || inv->late_message != NULL) {
		free(inv->late_code);
		free(inv->late_message);
	}
	if (inv->events != NULL)
		invocation_drop_events(inv);
	if (inv->emit_refused != NULL)
		free(inv->emit_refused);
	if (inv->cmd != NULL)
		generation_release(inv->cmd->gen);
	memset(inv, 0, offsetof(struct invocation, payload_buf));
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
	drop_text(inv, &inv->body_text, &inv->body_len);
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
		inv->in_execute = 1;
		rc = cmd->execute(&inv->ctx);
		inv->in_execute = 0;
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
	if (inv->emit_refused != NULL) {
		/* All or nothing: one refused event fails the call. */
		invocation_drop_events(inv);
		invocation_set_error(inv, 500, "event_refused",
		    inv->emit_refused);
	}
	inv->end_ns = clock_mono_ns();
	clock_pass(inv->end_ns); /* the next inline call's start */
	if (!inv->keep_late)
		invocation_check_deadline(inv);
}

void
invocation_drop_events(struct invocation *inv)
{
	for (size_t i = 0; i < inv->n_events; i++)
		event_fini(&inv->events[i]);
	free(inv->events);
	inv->events = NULL;
	inv->n_events = 0;
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
		inv->late_text = inv->body_text;
		inv->late_len = inv->body_len;
		inv->body_text = NULL;
		inv->body_len = 0;
		inv->late_code = inv->code;
		inv->late_message = inv->message;
		inv->code = inv->message = NULL;
		invocation_set_error(inv, 504, "timeout",
		    "the command did not finish before its deadline");
	}
}
