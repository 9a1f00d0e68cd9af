/*
 * api.c - the host function table every plugin reaches the host through
 * (cmdhost/plugin.h): the registration calls (reg_*) that run inside a
 * plugin's register_fn, and the call context (ctx_*) of validate and
 * execute.  The whole table is here, in the header's order.
 */
#include "api.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body_text.h"
#include "clock.h"
#include "config.h"
#include "event.h"
#include "generation.h"
#include "invocation.h"
#include "log.h"

/* ------------------------------------------------------------ registration */

static void
reg_fail(struct cmdhost_registrar *reg, const char *fmt, const char *arg)
{
	if (reg->failed)
		return; /* keep the first reason */
	reg->failed = 1;
	snprintf(reg->err, sizeof(reg->err), fmt, arg);
	/* Never end in half a UTF-8 sequence: the error shows in JSON. */
	reg->err[body_text_cut(reg->err, CMDHOST_REG_ERROR_MAX)] = '\0';
}

/* Copy message (borrowed; NULL is "") into buf, cut at CMDHOST_LOG_MAX
 * bytes on a UTF-8 boundary.  Returns buf. */
static const char *
log_text(char buf[CMDHOST_LOG_MAX + 1], const char *message)
{
	size_t n;

	if (message == NULL)
		return "";
	n = body_text_cut(message, CMDHOST_LOG_MAX);
	memcpy(buf, message, n);
	buf[n] = '\0';
	return buf;
}

static const char *
api_reg_config(cmdhost_registrar *reg, const char *key)
{
	if (key == NULL)
		return NULL;
	return config_plugin_value(reg->cfg, reg->g->name, key);
}

static void
api_reg_set_state(cmdhost_registrar *reg, void *state, cmdhost_fini_fn fini)
{
	reg->g->state = state;
	reg->g->fini = fini;
}

/* The slot of reg->slots where command `name` is, or the empty one where
 * it would go (borrowed).  There must be slots. */
static size_t *
reg_slot(cmdhost_registrar *reg, const char *name)
{
	size_t i = (size_t)command_name_hash(name) & reg->mask;

	while (reg->slots[i] != 0 &&
	    strcmp(reg->g->commands[reg->slots[i] - 1].name, name) != 0)
		i = (i + 1) & reg->mask;
	return &reg->slots[i];
}

/* Room in reg->slots for one more command: double them (rehashing the
 * commands so far) before they pass half full.  Returns 0 or -1. */
static int
reg_slots_reserve(cmdhost_registrar *reg)
{
	size_t slots = reg->slots != NULL ? reg->mask + 1 : 0;
	size_t *old = reg->slots, old_mask = reg->mask;

	if ((reg->g->n_commands + 1) * 2 <= slots)
		return 0;
	slots = slots != 0 ? slots * 2 : 16;
	if ((reg->slots = calloc(slots, sizeof(*reg->slots))) == NULL) {
		reg->slots = old;
		reg->mask = old_mask;
		return -1;
	}
	reg->mask = slots - 1;
	for (size_t i = 0; i < reg->g->n_commands; i++)
		*reg_slot(reg, reg->g->commands[i].name) = i + 1;
	free(old);
	return 0;
}

void
api_registrar_fini(struct cmdhost_registrar *reg)
{
	free(reg->slots);
	reg->slots = NULL;
	reg->mask = 0;
}

static int
api_reg_add_command(cmdhost_registrar *reg, const cmdhost_command *in,
    size_t size)
{
	struct generation *g = reg->g;
	cmdhost_command cmd;
	struct command *c;
	size_t *slot;

	memset(&cmd, 0, sizeof(cmd));
	if (in == NULL || size < offsetof(cmdhost_command, flags) +
	    sizeof(in->flags)) {
		reg_fail(reg, "%s", "cmdhost_add_command: command struct too "
		    "small");
		return -1;
	}
	memcpy(&cmd, in, size < sizeof(cmd) ? size : sizeof(cmd));
	if (!generation_valid_name(cmd.name)) {
		reg_fail(reg, "invalid command name '%s' (must match "
		    "[A-Za-z0-9_.:-]{1,128})", cmd.name ? cmd.name : "(null)");
		return -1;
	}
	if (strncmp(cmd.name, "host.", 5) == 0) {
		reg_fail(reg, "command name '%s' uses the reserved prefix "
		    "'host.'", cmd.name);
		return -1;
	}
	if (cmd.execute == NULL) {
		reg_fail(reg, "command '%s' has no execute function", cmd.name);
		return -1;
	}
	if (cmd.fields != NULL) {
		for (const cmdhost_field *f = cmd.fields; f->name != NULL; f++) {
			if (f->type < CMDHOST_ANY || f->type > CMDHOST_ARRAY) {
				reg_fail(reg, "command '%s': field of unknown "
				    "type", cmd.name);
				return -1;
			}
		}
	}
	/* One hash probe, not a pass over the commands so far: adding N
	 * commands costs O(N). */
	if (reg_slots_reserve(reg) < 0) {
		reg_fail(reg, "%s", "out of memory");
		return -1;
	}
	if (*(slot = reg_slot(reg, cmd.name)) != 0) {
		reg_fail(reg, "command '%s' added twice", cmd.name);
		return -1;
	}
	if (g->n_commands == reg->cap) {
		size_t cap = reg->cap ? reg->cap * 2 : 4;
		struct command *cs = realloc(g->commands, cap * sizeof(*cs));

		if (cs == NULL) {
			reg_fail(reg, "%s", "out of memory");
			return -1;
		}
		g->commands = cs;
		reg->cap = cap;
	}
	c = &g->commands[g->n_commands];
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", cmd.name);
	c->summary = cmd.summary;
	c->fields = cmd.fields;
	c->validate = cmd.validate;
	c->execute = cmd.execute;
	c->flags = cmd.flags;
	c->gen = g;
	*slot = ++g->n_commands;
	return 0;
}

static void
api_reg_error(cmdhost_registrar *reg, const char *message)
{
	reg_fail(reg, "%s", message ? message : "(no message)");
}

static void
api_reg_log(cmdhost_registrar *reg, int level, const char *message)
{
	struct log_ctx lc = LOG_CTX_INIT;
	char buf[CMDHOST_LOG_MAX + 1];

	if (level < LOGL_DEBUG || level > LOGL_ERROR)
		level = LOGL_INFO;
	if (!log_enabled(level))
		return;
	lc.plugin = reg->g->name;
	lc.version = reg->g->version;
	lc.file = reg->g->file;
	log_emit_str(level, &lc, log_text(buf, message));
}

static const char *
api_reg_plugin_name(cmdhost_registrar *reg)
{
	return reg->g->name;
}

/* ------------------------------------------------------------ call context */

static void *
api_ctx_state(cmdhost_ctx *ctx)
{
	return invocation_of(ctx)->cmd->gen->state;
}

static struct json_object *
api_ctx_payload(cmdhost_ctx *ctx)
{
	return invocation_payload(invocation_of(ctx));
}

static const char *
api_ctx_payload_text(cmdhost_ctx *ctx, size_t *len)
{
	struct invocation *inv = invocation_of(ctx);

	/* A scanned request's text is there already (the client's bytes). */
	if (inv->payload_text == NULL && inv->payload != NULL) {
		size_t n = 0;
		const char *s = json_object_to_json_string_length(inv->payload,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);

		inv->payload_text = strdup(s ? s : "null");
		inv->payload_len = inv->payload_text ? strlen(inv->payload_text) :
		    0;
	}
	/* Out of memory: "null", with its own length. */
	if (len != NULL)
		*len = inv->payload_text ? inv->payload_len : 4;
	return inv->payload_text ? inv->payload_text : "null";
}

static const char *
api_ctx_request_id(cmdhost_ctx *ctx)
{
	return invocation_of(ctx)->request_id;
}

static const char *
api_ctx_command(cmdhost_ctx *ctx)
{
	return invocation_of(ctx)->cmd->name;
}

static int64_t
api_ctx_time_left_ms(cmdhost_ctx *ctx)
{
	int64_t left = invocation_of(ctx)->deadline_ns - clock_mono_ns();

	return left > 0 ? left / 1000000 : 0;
}

static void
api_ctx_log(cmdhost_ctx *ctx, int level, const char *message)
{
	struct invocation *inv = invocation_of(ctx);
	struct log_ctx lc = LOG_CTX_INIT;
	char buf[CMDHOST_LOG_MAX + 1];

	if (level < LOGL_DEBUG || level > LOGL_ERROR)
		level = LOGL_INFO;
	if (!log_enabled(level))
		return;
	invocation_log_ctx(inv, &lc);
	log_emit_str(level, &lc, log_text(buf, message));
}

static int
api_ctx_respond(cmdhost_ctx *ctx, int status, struct json_object *body)
{
	struct invocation *inv = invocation_of(ctx);

	if (inv->finished) {
		if (body != NULL)
			json_object_put(body);
		return -1;
	}
	if (status < 200 || status > 299) {
		char msg[96];

		if (body != NULL)
			json_object_put(body);
		snprintf(msg, sizeof(msg), "command replied with status %d, "
		    "which is not 2xx", status);
		invocation_set_error(inv, 500, "command_failed", msg);
		return -1;
	}
	inv->status = status;
	inv->body = body;
	inv->finished = 1;
	return 0;
}

static int
api_ctx_fail(cmdhost_ctx *ctx, int status, const char *code,
    const char *message)
{
	struct invocation *inv = invocation_of(ctx);
	char buf[CMDHOST_LOG_MAX + 1];

	if (inv->finished)
		return -1;
	if (status < 400 || status > 599)
		status = 500;
	if (code == NULL || *code == '\0')
		code = "command_failed";
	invocation_set_error(inv, status, code,
	    message ? log_text(buf, message) : "command failed");
	return 0;
}

static struct json_object *
api_ctx_client_id(cmdhost_ctx *ctx)
{
	return invocation_client_id(invocation_of(ctx));
}

/* ------------------------------------------------------------ ABI 1.1 */

/*
 * Check the plugin's text json[0..len) (borrowed) into inv's body
 * buffer.  Returns 1 when the checked text is the body (inv->body_text
 * holds it), 0 with a tree in *body when names needed rewriting, or what
 * body_text_check() refused with (reason in why).
 */
static int
respond_checked(struct invocation *inv, const char *json, size_t len,
    struct json_object **body, char *why, size_t whylen)
{
	char *t = NULL;
	size_t n;
	int rc, needs_tree;

	*body = NULL;
	if (json != NULL && len <= CMDHOST_BODY_TEXT_MAX) {
		t = len < sizeof(inv->body_buf) ? inv->body_buf :
		    malloc(len + 1);
		if (t == NULL)
			return -ENOMEM;
	}
	/* The payload's own text handed back (an echo): the request's scan
	 * checked it with the same rules, and it is compact already. */
	if (t != NULL && json == inv->payload_text && len == inv->payload_len &&
	    inv->payload_plain) {
		memcpy(t, json, len);
		t[len] = '\0';
		inv->body_text = t;
		inv->body_len = len;
		return 1;
	}
	/* t is NULL only for text body_text_check() refuses unread. */
	rc = body_text_check(json, len, CMDHOST_BODY_TEXT_MAX, t, &n,
	    &needs_tree, why, whylen);
	if (rc == 0 && !needs_tree) {
		inv->body_text = t;
		inv->body_len = n;
		return 1;
	}
	if (rc == 0)
		rc = body_text_tree(t, n, body, why, whylen);
	if (t != inv->body_buf)
		free(t);
	return rc;
}

static int
api_ctx_respond_text(cmdhost_ctx *ctx, int status, const char *json,
    size_t len)
{
	struct invocation *inv = invocation_of(ctx);
	const char *plugin = inv->cmd->gen->name;
	struct json_object *body;
	char why[160], msg[400];
	int rc;

	if (inv->finished)
		return -1;
	if (status < 200 || status > 299) {
		snprintf(msg, sizeof(msg), "plugin '%s' replied with status "
		    "%d, which is not 2xx", plugin, status);
		invocation_set_error(inv, 500, "command_failed", msg);
		return -1;
	}
	if (json == NULL && len == 0) {
		body = NULL; /* JSON null */
		rc = 0;
	} else {
		rc = respond_checked(inv, json, len, &body, why, sizeof(why));
		if (rc == 1) {
			inv->status = status; /* text kept: no tree */
			inv->finished = 1;
			return 0;
		}
	}
	if (rc == -ENOMEM) {
		invocation_set_error(inv, 503, "unavailable", "out of memory");
		return -1;
	}
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "plugin '%s' replied with an invalid "
		    "JSON text body: %s", plugin, why);
		invocation_set_error(inv, 500, "bad_reply", msg);
		return -1;
	}
	inv->status = status;
	inv->body = body;
	inv->finished = 1;
	return 0;
}

static const char *
api_ctx_client_id_text(cmdhost_ctx *ctx)
{
	return invocation_of(ctx)->id_text;
}

/* ------------------------------------------------------------ ABI 1.2 */

/* Check an event's subject and text; on success *body is the compact
 * text (new, free it) of *blen bytes.  Returns 0 or -1 with why. */
static int
event_check(const char *subject, const char *json, size_t len, char **body,
    size_t *blen, char *why, size_t whylen)
{
	struct json_object *o;
	const char *t;
	char r[160];
	int rc;

	*body = NULL;
	if (!event_subject_valid(subject)) {
		snprintf(why, whylen, "invalid event subject '%.64s' (want "
		    "dot-separated tokens of [A-Za-z0-9_:-], at most %d "
		    "bytes)", subject ? subject : "(null)",
		    CMDHOST_SUBJECT_MAX);
		return -1;
	}
	if (json != NULL) {
		int needs_tree = 0;

		/* The strict scanner alone, no tree: its compact text is the
		 * body, unless a member name needs json-c's own writing. */
		if ((*body = malloc(len + 1)) == NULL) {
			snprintf(why, whylen, "event '%s': out of memory",
			    subject);
			return -1;
		}
		rc = body_text_check(json, len, CMDHOST_EVENT_MAX, *body, blen,
		    &needs_tree, r, sizeof(r));
		if (rc == 0 && !needs_tree)
			return 0;
		free(*body);
		*body = NULL;
		if (rc < 0) {
			snprintf(why, whylen, "event '%s': %s", subject,
			    rc == -ENOMEM ? "out of memory" : r);
			return -1;
		}
	}
	rc = body_text_parse(json, len, CMDHOST_EVENT_MAX, &o, r, sizeof(r));
	if (rc < 0) {
		snprintf(why, whylen, "event '%s': %s", subject, rc == -ENOMEM ?
		    "out of memory" : r);
		return -1;
	}
	t = o == NULL ? "null" : json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	*body = strdup(t ? t : "null");
	json_object_put(o);
	if (*body == NULL) {
		snprintf(why, whylen, "event '%s': out of memory", subject);
		return -1;
	}
	*blen = strlen(*body);
	return 0;
}

/* Refuse an emit of inv: the call will fail, nothing it emitted goes. */
static int
emit_refuse(struct invocation *inv, const char *why)
{
	char msg[400];

	if (inv->emit_refused != NULL)
		return -1; /* keep the first reason */
	snprintf(msg, sizeof(msg), "plugin '%s': %s; the call emits nothing",
	    inv->cmd->gen->name, why);
	inv->emit_refused = strdup(msg);
	if (inv->emit_refused == NULL)
		inv->emit_refused = strdup("event refused");
	return -1;
}

static int
api_ctx_emit_text(cmdhost_ctx *ctx, const char *subject, const char *json,
    size_t len)
{
	struct invocation *inv = invocation_of(ctx);
	struct event *evs;
	char why[240], *body;
	size_t blen;

	if (!inv->in_execute)
		return -1; /* validate, or after execute returned */
	if (inv->emit_refused != NULL)
		return -1;
	if (inv->n_events >= CMDHOST_EVENTS_MAX) {
		snprintf(why, sizeof(why), "more than %d events in one call",
		    CMDHOST_EVENTS_MAX);
		return emit_refuse(inv, why);
	}
	if (json != NULL && len > CMDHOST_EVENT_MAX) {
		snprintf(why, sizeof(why), "event '%.64s' is longer than %u "
		    "bytes", subject ? subject : "(null)", CMDHOST_EVENT_MAX);
		return emit_refuse(inv, why);
	}
	if (event_check(subject, json, len, &body, &blen, why,
	    sizeof(why)) < 0)
		return emit_refuse(inv, why);
	evs = realloc(inv->events, (inv->n_events + 1) * sizeof(*evs));
	if (evs == NULL || (evs[inv->n_events].subject = strdup(subject)) ==
	    NULL) {
		if (evs != NULL)
			inv->events = evs;
		free(body);
		return emit_refuse(inv, "out of memory");
	}
	inv->events = evs;
	evs[inv->n_events].body = body;
	evs[inv->n_events].len = blen;
	inv->n_events++;
	return 0;
}

static int
api_ctx_emit(cmdhost_ctx *ctx, const char *subject, struct json_object *body)
{
	size_t n = 4;
	const char *t = body == NULL ? "null" :
	    json_object_to_json_string_length(body, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE, &n);

	if (t == NULL)
		return emit_refuse(invocation_of(ctx), "out of memory");
	return api_ctx_emit_text(ctx, subject, t, n);
}

static int
api_reg_set_relay(cmdhost_registrar *reg, cmdhost_relay_fetch_fn fetch,
    cmdhost_relay_ack_fn ack)
{
	if (fetch == NULL || ack == NULL) {
		reg_fail(reg, "%s", "cmdhost_set_relay: fetch and ack are "
		    "both required");
		return -1;
	}
	reg->g->relay_fetch = fetch;
	reg->g->relay_ack = ack;
	return 0;
}

/* A relayed row's id: printable ASCII without blanks or quotes. */
static int
relay_id_valid(const char *id)
{
	size_t n = 0;

	if (id == NULL || *id == '\0')
		return 0;
	for (; id[n] != '\0'; n++)
		if (n >= CMDHOST_EVENT_ID_MAX || id[n] < 0x21 || id[n] > 0x7e ||
		    id[n] == '"' || id[n] == '\\')
			return 0;
	return 1;
}

static int
api_relay_put(cmdhost_relay *sink, const char *id, const char *subject,
    const char *json, size_t len)
{
	char full[CMDHOST_NAME_MAX + CMDHOST_EVENT_ID_MAX + 2], *body;
	size_t blen;
	int rc;

	if (sink->n >= sink->max) {
		snprintf(sink->why, sizeof(sink->why), "more than %zu rows in "
		    "one fetch", sink->max);
		return -1;
	}
	if (!relay_id_valid(id)) {
		snprintf(sink->why, sizeof(sink->why), "invalid relay id (want "
		    "1..%d bytes of printable ASCII, no quotes)",
		    CMDHOST_EVENT_ID_MAX);
		return -1;
	}
	snprintf(full, sizeof(full), "%s:%s", sink->plugin, id);
	if ((json != NULL && len > CMDHOST_EVENT_MAX) || event_check(subject,
	    json, len, &body, &blen, sink->why, sizeof(sink->why)) < 0) {
		if (json != NULL && len > CMDHOST_EVENT_MAX)
			snprintf(sink->why, sizeof(sink->why), "row %s: longer "
			    "than %u bytes", id, CMDHOST_EVENT_MAX);
		/* Refused for good: acked, so that it does not come back. */
		if (sink->put(sink->arg, id, full, subject, NULL, 0) == 0)
			sink->n++;
		return -1;
	}
	rc = sink->put(sink->arg, id, full, subject, body, blen);
	free(body);
	if (rc == 0)
		sink->n++;
	return rc;
}

/* ------------------------------------------------------------ the table */

static const struct cmdhost_api host_api = {
	.size = sizeof(struct cmdhost_api),
	.abi_major = CMDHOST_ABI_MAJOR,
	.abi_minor = CMDHOST_ABI_MINOR,
	.reg_config = api_reg_config,
	.reg_set_state = api_reg_set_state,
	.reg_add_command = api_reg_add_command,
	.reg_error = api_reg_error,
	.reg_log = api_reg_log,
	.reg_plugin_name = api_reg_plugin_name,
	.ctx_state = api_ctx_state,
	.ctx_payload = api_ctx_payload,
	.ctx_payload_text = api_ctx_payload_text,
	.ctx_request_id = api_ctx_request_id,
	.ctx_command = api_ctx_command,
	.ctx_time_left_ms = api_ctx_time_left_ms,
	.ctx_log = api_ctx_log,
	.ctx_respond = api_ctx_respond,
	.ctx_fail = api_ctx_fail,
	.ctx_client_id = api_ctx_client_id,
	.ctx_respond_text = api_ctx_respond_text,
	.ctx_client_id_text = api_ctx_client_id_text,
	.ctx_emit_text = api_ctx_emit_text,
	.ctx_emit = api_ctx_emit,
	.reg_set_relay = api_reg_set_relay,
	.relay_put = api_relay_put,
};

const struct cmdhost_api *
api_table(void)
{
	return &host_api;
}

