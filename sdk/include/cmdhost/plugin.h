/*
 * cmdhost/plugin.h - the one header a cmdhost command plugin is built against.
 *
 * A plugin is a shared object that exports one const descriptor, made by
 * CMDHOST_PLUGIN(), and reaches the daemon only through a table of function
 * pointers that the daemon hands over inside the opaque registrar and context
 * objects.  A plugin never links against the daemon.  This header needs only
 * the C standard headers and json-c, and compiles as C11 and as C++.
 *
 * ABI policy: CMDHOST_ABI_MAJOR changes when anything here changes
 * incompatibly; the daemon refuses a plugin of another major.  A minor
 * version only appends members at the end of struct cmdhost_api; the daemon
 * refuses a plugin whose minor is newer than its own.  The table starts with
 * its own size, so CMDHOST_API_HAS() tells whether an entry exists.
 *
 * ABI 1.1 added ctx_respond_text and ctx_client_id_text (a plugin need not
 * link json-c), moved the log and error-message limits behind the table,
 * and let the loader take the descriptor from a function.  ABI 1.2 added
 * events: ctx_emit_text and ctx_emit (a call's events are published only
 * when it finishes 2xx), and the relay of a plugin's own outbox
 * (reg_set_relay, relay_put).  The table's
 * entries are the contract, for C and for any other language; the layout
 * of every struct here is in cmdhost/plugin-layout.txt.
 */
#ifndef CMDHOST_PLUGIN_H
#define CMDHOST_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CMDHOST_MAGIC 0x434d4448u /* "CMDH" */
#define CMDHOST_ABI_MAJOR 1
#define CMDHOST_ABI_MINOR 2

/* Limits the daemon applies behind the table (struct cmdhost_api): */
/* log text (reg_log, ctx_log) and error messages (ctx_fail) are cut at
 * this many bytes, on a UTF-8 boundary; */
#define CMDHOST_LOG_MAX 1024
/* a registration error (reg_error) at this many; */
#define CMDHOST_REG_ERROR_MAX 511
/* a JSON text body (ctx_respond_text, ABI 1.1) longer than this is
 * refused with 500. */
#define CMDHOST_BODY_TEXT_MAX (16u * 1024u * 1024u)

/* Events (ABI 1.2): a call emits at most CMDHOST_EVENTS_MAX events, each
 * body at most CMDHOST_EVENT_MAX bytes of JSON text; a subject is at most
 * CMDHOST_SUBJECT_MAX bytes of dot-separated tokens of [A-Za-z0-9_:-];
 * a relayed event's id at most CMDHOST_EVENT_ID_MAX bytes. */
#define CMDHOST_EVENTS_MAX 64
#define CMDHOST_EVENT_MAX (256u * 1024u)
#define CMDHOST_SUBJECT_MAX 128
#define CMDHOST_EVENT_ID_MAX 128

/* The longest command name, in bytes; names match [A-Za-z0-9_.:-]{1,128}. */
#define CMDHOST_NAME_MAX 128

typedef struct cmdhost_registrar cmdhost_registrar;
typedef struct cmdhost_ctx cmdhost_ctx;
typedef struct cmdhost_relay cmdhost_relay;

/* Types a declared payload field may have.  INTEGER accepts only JSON
 * numbers without fraction or exponent; NUMBER accepts any JSON number. */
enum cmdhost_type {
	CMDHOST_ANY = 0,
	CMDHOST_STRING,
	CMDHOST_NUMBER,
	CMDHOST_INTEGER,
	CMDHOST_BOOLEAN,
	CMDHOST_OBJECT,
	CMDHOST_ARRAY
};

/* One declared member of the payload object.  The daemon checks every
 * declared field before validate or execute runs and answers 400
 * invalid_payload naming the field.  A member whose value is null counts as
 * absent.  Arrays of fields end with an entry whose name is NULL ({0}). */
typedef struct cmdhost_field {
	const char *name;
	int type;     /* enum cmdhost_type */
	int required; /* non-zero: the member must be present */
} cmdhost_field;

/* Command flags. */
#define CMDHOST_SERIAL   (1u << 0) /* never run two calls of it at once */
#define CMDHOST_BLOCKING (1u << 1) /* may block: always run it on the pool */

/*
 * validate: optional.  Return 0 to accept.  To refuse, call cmdhost_fail()
 * (usually 400 "invalid_payload" with a message naming the field) and return
 * non-zero; a non-zero return without a cmdhost_fail() is answered
 * 400 invalid_payload "rejected by validate".
 *
 * execute: required.  Finish with exactly one of cmdhost_ok(),
 * cmdhost_respond() or cmdhost_fail() and return 0.  Returning non-zero, or
 * returning without finishing, is answered 500 command_failed unless
 * cmdhost_fail() gave a status.  A second finishing call is ignored and
 * returns -1.
 *
 * Both run on a daemon thread; execute may run on several threads at once
 * unless the command has CMDHOST_SERIAL.  Neither may keep the ctx, or any
 * pointer obtained from it, after it returns.
 */
typedef int (*cmdhost_validate_fn)(cmdhost_ctx *ctx);
typedef int (*cmdhost_execute_fn)(cmdhost_ctx *ctx);

/* A command: describe it in a const (usually static) struct.  The daemon
 * copies what it needs when cmdhost_add_command() is called, except the
 * strings and the fields array, which must live as long as the plugin is
 * loaded (string literals and static arrays do). */
typedef struct cmdhost_command {
	const char *name;             /* required, see CMDHOST_NAME_MAX */
	const char *summary;          /* one line, or NULL */
	const cmdhost_field *fields;  /* {0}-terminated, or NULL */
	cmdhost_validate_fn validate; /* or NULL */
	cmdhost_execute_fn execute;   /* required */
	unsigned flags;               /* CMDHOST_SERIAL | CMDHOST_BLOCKING */
} cmdhost_command;

/* Log levels for cmdhost_log() and cmdhost_reg_log(). */
enum cmdhost_log_level {
	CMDHOST_LOG_DEBUG = 0,
	CMDHOST_LOG_INFO,
	CMDHOST_LOG_WARN,
	CMDHOST_LOG_ERROR
};

/* The registration function: runs once per loaded generation, before any of
 * its commands can be called.  Return 0 on success; on failure call
 * cmdhost_reg_error() and return non-zero: nothing of this generation is
 * published and its fini (if already set) runs. */
typedef int (*cmdhost_register_fn)(cmdhost_registrar *reg);

/* Called once when a generation is unloaded, after its last call returned. */
typedef void (*cmdhost_fini_fn)(void *state);

/*
 * The relay of a plugin's own transactional outbox (ABI 1.2, see
 * reg_set_relay).  fetch: hand the daemon up to `max` pending rows, oldest
 * first, each with relay_put(sink, ...); return 0, or non-zero when the
 * outbox cannot be read now (the daemon tries again later).  ack: the
 * events of these ids (borrowed, n of them) are now in the daemon's own
 * durable outbox: mark them sent (or delete them); return 0, or non-zero
 * (they will be fetched again, and the daemon drops the duplicates by id).
 * Both run on a daemon thread of their own, never two at once for one
 * generation, possibly while calls of the generation run, never after
 * its fini.
 */
typedef int (*cmdhost_relay_fetch_fn)(void *state, cmdhost_relay *sink,
    size_t max);
typedef int (*cmdhost_relay_ack_fn)(void *state, const char *const *ids,
    size_t n);

/*
 * The host function table: the whole contract between a plugin and the
 * daemon.  A plugin in any language with a C FFI may call these entries
 * directly; the static inline functions further down are C conveniences
 * that add nothing the entries do not do themselves (printf formatting
 * aside).  Every limit lives behind the table.
 *
 * Reaching it: the first member of the opaque objects, cmdhost_registrar,
 * cmdhost_ctx and (ABI 1.2) cmdhost_relay, is a `const struct cmdhost_api *` (see CMDHOST__API).
 * The table is static: the pointer stays valid as long as the plugin is
 * loaded, on every thread.
 *
 * Versions: members are only ever appended.  `size` is
 * sizeof(struct cmdhost_api) as the daemon was built; an entry exists when
 * its offset plus its size is at most `size` (CMDHOST_API_HAS).  The
 * offsets and sizes of every member, for LP64 targets, are in
 * cmdhost/plugin-layout.txt (generated from this header, checked by the
 * tests); a binding should check itself against that file.
 *
 * Common rules of every entry:
 * - Strings passed in are NUL-terminated UTF-8 and borrowed: the daemon
 *   copies what it keeps before the entry returns.  NULL where a string
 *   is expected is accepted and treated as documented on the entry.
 * - Strings returned are borrowed from the daemon: never free or modify
 *   them; each entry says how long they stay valid.
 * - A cmdhost_registrar is valid only on the thread running the
 *   registration function, until it returns; a cmdhost_ctx only on the
 *   thread running validate or execute, until it returns.  Neither may be
 *   kept.  No entry blocks, and none calls back into the plugin.
 * - No entry may be called from a destructor, an atexit handler or a
 *   thread the plugin started itself with a registrar or ctx it kept.
 */
struct cmdhost_api {
	/* sizeof(struct cmdhost_api) in the daemon: which entries exist. */
	size_t size;
	/* The daemon's ABI: CMDHOST_ABI_MAJOR and its CMDHOST_ABI_MINOR. */
	unsigned abi_major;
	unsigned abi_minor;

	/* ---- registrar: only inside the registration function (ABI 1.0) */

	/* The value of `key` in the plugin's [plugin:NAME] section of the
	 * daemon's config, or NULL when the key is absent (or key is NULL).
	 * Borrowed: valid until the registration function returns; copy
	 * what you keep. */
	const char *(*reg_config)(cmdhost_registrar *reg, const char *key);

	/* Set the generation's state pointer and the function that frees it
	 * (fini may be NULL).  The daemon never looks inside `state` and
	 * does not own it: it calls fini(state) exactly once, when the
	 * generation is unloaded after its last call returned, or at once
	 * when registration fails after this call.  A second call replaces
	 * the first (the first fini is not called). */
	void (*reg_set_state)(cmdhost_registrar *reg, void *state,
	    cmdhost_fini_fn fini);

	/* Add a command.  `cmd_size` is sizeof(cmdhost_command) as the
	 * plugin was built (at least up to and including `flags`), so the
	 * struct may grow.  The struct is copied; its strings and its fields
	 * array are not and must live as long as the plugin is loaded.
	 * Returns 0, or -1 with the reason recorded as the registration
	 * error (bad or reserved name, duplicate, NULL execute, unknown
	 * field type); registration should then return non-zero. */
	int (*reg_add_command)(cmdhost_registrar *reg,
	    const cmdhost_command *cmd, size_t cmd_size);

	/* Record why registration fails.  The message is copied and cut at
	 * CMDHOST_REG_ERROR_MAX bytes (on a UTF-8 boundary); NULL becomes
	 * "(no message)".  The first recorded reason wins. */
	void (*reg_error)(cmdhost_registrar *reg, const char *message);

	/* Log one line, tagged with the plugin's name, version and file.
	 * `level` is an enum cmdhost_log_level (others count as INFO).  The
	 * message is copied, JSON-escaped and cut at CMDHOST_LOG_MAX bytes
	 * (on a UTF-8 boundary); invalid UTF-8 is replaced.  NULL logs "". */
	void (*reg_log)(cmdhost_registrar *reg, int level, const char *message);

	/* The plugin's name, as its descriptor gives it.  Borrowed: valid
	 * until the registration function returns. */
	const char *(*reg_plugin_name)(cmdhost_registrar *reg);

	/* ---- context: only inside validate and execute (ABI 1.0) */

	/* The state given to reg_set_state, or NULL.  Shared by every call
	 * of the generation, on any number of threads at once. */
	void *(*ctx_state)(cmdhost_ctx *ctx);

	/* The payload as a json-c object (an object when the command
	 * declares fields).  Borrowed: do not put it; take
	 * json_object_get() to keep a part of it in a body you return.
	 * Never NULL: a missing payload is an empty object.  Plugins that do
	 * not link json-c use ctx_payload_text instead. */
	struct json_object *(*ctx_payload)(cmdhost_ctx *ctx);

	/* The payload as compact JSON text, valid UTF-8, NUL-terminated;
	 * *len gets its length in bytes when len is not NULL.  Since the
	 * envelope scanner (issue 19) these are the client's own bytes less
	 * the whitespace between tokens (escapes, number spellings and a
	 * name given twice stay as sent), and no json-c tree is made unless
	 * ctx_payload is called.  Borrowed:
	 * valid until validate/execute returns (the same pointer for both
	 * of one call). */
	const char *(*ctx_payload_text)(cmdhost_ctx *ctx, size_t *len);

	/* The daemon's id of this request, as its logs show it (ASCII).
	 * Borrowed: valid until validate/execute returns. */
	const char *(*ctx_request_id)(cmdhost_ctx *ctx);

	/* The command name this call was made for.  Borrowed: valid as long
	 * as the plugin is loaded. */
	const char *(*ctx_command)(cmdhost_ctx *ctx);

	/* Milliseconds left before the call's deadline, 0 when it has
	 * passed.  A result given after the deadline is dropped: the client
	 * already got 504. */
	int64_t (*ctx_time_left_ms)(cmdhost_ctx *ctx);

	/* Log one line with the request's context added by the daemon
	 * (request_id, the client's id, command, plugin, plugin_version,
	 * generation, cold_start, the client's pid and uid).  Level, copy,
	 * escaping and the CMDHOST_LOG_MAX cut as reg_log. */
	void (*ctx_log)(cmdhost_ctx *ctx, int level, const char *message);

	/* Finish with a 2xx status and a json-c body.  Takes ownership of
	 * `body` (one reference), also on failure; NULL means JSON null.
	 * Returns 0, or -1 if the call already finished (nothing changes)
	 * or status is not 2xx (then the reply is 500 command_failed).  A
	 * body that cannot be written as strict JSON (a NaN or infinite
	 * double, a string that is not UTF-8) is answered 500 bad_reply
	 * naming the plugin when the reply is written. */
	int (*ctx_respond)(cmdhost_ctx *ctx, int status,
	    struct json_object *body);

	/* Finish with an error: status 400..599 (others become 500), a short
	 * snake_case code (NULL or "" becomes "command_failed") and a
	 * message (NULL becomes "command failed"), both copied; the message
	 * is cut at CMDHOST_LOG_MAX bytes on a UTF-8 boundary.  Returns 0,
	 * or -1 if the call already finished. */
	int (*ctx_fail)(cmdhost_ctx *ctx, int status, const char *code,
	    const char *message);

	/* The client's "id" (a json-c string or integer), or NULL when the
	 * request had none.  Borrowed: valid until validate/execute
	 * returns.  ctx_client_id_text gives it without json-c. */
	struct json_object *(*ctx_client_id)(cmdhost_ctx *ctx);

	/* ---- ABI 1.1: JSON text, so a plugin need not link json-c */

	/* Finish with a 2xx status and a body given as JSON text: `len`
	 * bytes at `json` (borrowed, need not be NUL-terminated; copied).
	 * The daemon checks it strictly before anything is sent: one JSON
	 * value, valid UTF-8, no NaN or Infinity, no number out of range
	 * (1e400, integers beyond 64 bits), nesting at most 64 deep, at
	 * most CMDHOST_BODY_TEXT_MAX bytes.  Whitespace between tokens is
	 * dropped; strings and numbers reach the client byte for byte;
	 * member names are written as json-c writes them (escapes undone),
	 * and a name given twice keeps its last value.
	 * Returns 0; -1 if the call already finished (nothing changes);
	 * -1 if the status is not 2xx (the reply is then 500
	 * command_failed) or the text is refused (500 bad_reply), each with
	 * a message naming the plugin and the reason; -1 when the daemon
	 * is out of memory (503 unavailable).  json NULL with len 0 means
	 * JSON null. */
	int (*ctx_respond_text)(cmdhost_ctx *ctx, int status,
	    const char *json, size_t len);

	/* The client's "id" as JSON text ("\"abc\"" or "42"), or NULL when
	 * the request had none.  Borrowed: valid until validate/execute
	 * returns. */
	const char *(*ctx_client_id_text)(cmdhost_ctx *ctx);

	/* ---- ABI 1.2: events */

	/* Emit an event from execute: a subject (NUL-terminated, at most
	 * CMDHOST_SUBJECT_MAX bytes, dot-separated tokens of
	 * [A-Za-z0-9_:-]) and a body given as JSON text, `len` bytes at
	 * `json` (borrowed, copied; checked as ctx_respond_text checks a
	 * body, at most CMDHOST_EVENT_MAX bytes; json NULL with len 0 is
	 * JSON null).  The event is kept on the call and published only if
	 * the call finishes with 2xx; the daemon makes it durable before the
	 * reply is sent, gives it a stable id and delivers it at least once
	 * (docs/events.md).  Returns 0; -1 when the subject or the text is
	 * refused or the call would pass CMDHOST_EVENTS_MAX events: then the
	 * call fails with 500 event_refused (whatever it answers) and none of
	 * its events is published.  Only inside execute, before it returns;
	 * ignored (-1) in validate. */
	int (*ctx_emit_text)(cmdhost_ctx *ctx, const char *subject,
	    const char *json, size_t len);

	/* ctx_emit_text() with a json-c body.  Borrows `body` (the caller
	 * keeps its reference; the daemon writes it as text at once); NULL
	 * is JSON null.  Same returns and limits. */
	int (*ctx_emit)(cmdhost_ctx *ctx, const char *subject,
	    struct json_object *body);

	/* In the registration function: the daemon relays this
	 * generation's own outbox (rows the plugin committed with its own
	 * data, in its own store): it calls fetch(state, sink, max) now and
	 * then, stores each event relay_put gave it durably, then calls
	 * ack(state, ids, n).  A crash anywhere in between loses nothing:
	 * unacked rows are fetched again and duplicates (same id) dropped.
	 * `state` is the one reg_set_state set.  Returns 0, or -1 (NULL
	 * fetch or ack: a registration error is recorded). */
	int (*reg_set_relay)(cmdhost_registrar *reg,
	    cmdhost_relay_fetch_fn fetch, cmdhost_relay_ack_fn ack);

	/* Inside fetch: one pending row of the outbox.  `id` (at most
	 * CMDHOST_EVENT_ID_MAX bytes of printable ASCII, unique in the
	 * plugin's outbox for ever: its row id will do), subject and body as
	 * ctx_emit_text; all borrowed and copied.  The event's id is
	 * "<plugin>:<id>".  Returns 0, or -1 when the row is refused
	 * (logged; it is still acked so that it does not come back) or
	 * `max` rows were put already. */
	int (*relay_put)(cmdhost_relay *sink, const char *id,
	    const char *subject, const char *json, size_t len);
};

/* True when the daemon's table has member `m` (every 1.0 member is always
 * there; test the 1.1 members before calling them). */
#define CMDHOST_API_HAS(api, m) \
	(offsetof(struct cmdhost_api, m) + sizeof((api)->m) <= (api)->size)

/* The first member of every opaque object is the table. */
#define CMDHOST__API(p) (*(const struct cmdhost_api *const *)(const void *)(p))

/* The exported descriptor.  The daemon reads magic and ABI before it calls
 * any function of the plugin. */
typedef struct cmdhost_plugin_desc {
	uint32_t magic;
	uint16_t abi_major;
	uint16_t abi_minor;
	const char *name;    /* the plugin's name: its [plugin:NAME] section */
	const char *version; /* free text, shown by host.list: at most 128
	                      * bytes of UTF-8, no control characters */
	cmdhost_register_fn register_fn;
} cmdhost_plugin_desc;

#ifdef __cplusplus
#define CMDHOST__EXTERN extern "C"
#else
#define CMDHOST__EXTERN
#endif

/*
 * Where the loader finds the descriptor: the data symbol `cmdhost_plugin`
 * (what CMDHOST_PLUGIN() defines), read before any plugin code runs.  For a
 * language or linker that cannot export a data symbol (a C shim linked
 * into a Rust cdylib becomes local, for one), the loader also accepts a
 * function `const cmdhost_plugin_desc *cmdhost_plugin_descriptor(void)`
 * when there is no data symbol: it calls it once per load, before
 * registration, and reads the descriptor it returns, which must be static
 * (it is read again while the plugin is loaded).  The function must do
 * nothing but return that pointer.  NULL is a load error.
 */
#define CMDHOST_DESCRIPTOR_SYMBOL "cmdhost_plugin"
#define CMDHOST_DESCRIPTOR_FN_SYMBOL "cmdhost_plugin_descriptor"
typedef const cmdhost_plugin_desc *(*cmdhost_descriptor_fn)(void);

/* Define the plugin's descriptor; use once, at file scope, in one file. */
#define CMDHOST_PLUGIN(name, version, register_fn)                         \
	CMDHOST__EXTERN __attribute__((visibility("default")))             \
	const cmdhost_plugin_desc cmdhost_plugin = {                       \
		CMDHOST_MAGIC, CMDHOST_ABI_MAJOR, CMDHOST_ABI_MINOR,       \
		(name), (version), (register_fn)                           \
	}

/* The printf-style conveniences below format into a buffer one byte
 * longer than the daemon's limit (and the NUL), so that the cut that
 * counts is the daemon's, on a UTF-8 boundary, never one of their own
 * inside a character. */
#define CMDHOST__CUT_BUF(limit) ((limit) + 2)

/* ------------------------------------------------------------------ */
/* Registration calls                                                 */
/* ------------------------------------------------------------------ */

/* The value of `key` in this plugin's [plugin:NAME] section, or NULL.
 * Borrowed: valid until the registration function returns; copy it. */
static inline const char *
cmdhost_config(cmdhost_registrar *reg, const char *key)
{
	return CMDHOST__API(reg)->reg_config(reg, key);
}

/* Set the generation's state pointer and the function that frees it.  The
 * daemon does not own `state`; it calls fini(state) once when the generation
 * is unloaded, or when registration fails after this call. */
static inline void
cmdhost_set_state(cmdhost_registrar *reg, void *state, cmdhost_fini_fn fini)
{
	CMDHOST__API(reg)->reg_set_state(reg, state, fini);
}

/* Add a command.  Returns 0, or -1 with a message recorded (bad or reserved
 * name, duplicate, NULL execute); registration should then return non-zero.
 * Copies the struct; see cmdhost_command for what must stay alive. */
static inline int
cmdhost_add_command(cmdhost_registrar *reg, const cmdhost_command *cmd)
{
	return CMDHOST__API(reg)->reg_add_command(reg, cmd, sizeof(*cmd));
}

/* The host function table of a registrar or a context, for
 * CMDHOST_API_HAS(cmdhost_api(reg), member) checks.  Borrowed, static.
 * (In C++ the function's name hides the struct's, which -Wshadow would
 * report in every plugin: write `struct cmdhost_api` for the type.) */
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#endif
static inline const struct cmdhost_api *
cmdhost_api(const void *reg_or_ctx)
{
	return CMDHOST__API(reg_or_ctx);
}
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* The plugin's name as the descriptor gives it.  Borrowed. */
static inline const char *
cmdhost_plugin_name(cmdhost_registrar *reg)
{
	return CMDHOST__API(reg)->reg_plugin_name(reg);
}

/* Record why registration fails (printf-style; copied, cut at
 * CMDHOST_REG_ERROR_MAX bytes by the daemon). */
static inline void
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
cmdhost_reg_error(cmdhost_registrar *reg, const char *fmt, ...)
{
	char buf[CMDHOST__CUT_BUF(CMDHOST_REG_ERROR_MAX)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	CMDHOST__API(reg)->reg_error(reg, buf);
}

/* Log during registration, tagged with the plugin's name (printf-style;
 * copied, cut at CMDHOST_LOG_MAX bytes by the daemon). */
static inline void
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
cmdhost_reg_log(cmdhost_registrar *reg, int level, const char *fmt, ...)
{
	char buf[CMDHOST__CUT_BUF(CMDHOST_LOG_MAX)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	CMDHOST__API(reg)->reg_log(reg, level, buf);
}

/* ------------------------------------------------------------------ */
/* Calls inside validate and execute                                  */
/* ------------------------------------------------------------------ */

/* The state set by cmdhost_set_state(), or NULL. */
static inline void *
cmdhost_state(cmdhost_ctx *ctx)
{
	return CMDHOST__API(ctx)->ctx_state(ctx);
}

/* The request's payload (an object when the command declares fields).
 * Borrowed: do not put it; take json_object_get() to keep a part of it in a
 * body you return.  Never NULL: a missing payload is an empty object. */
static inline struct json_object *
cmdhost_payload(cmdhost_ctx *ctx)
{
	return CMDHOST__API(ctx)->ctx_payload(ctx);
}

/* The payload as compact JSON text (NUL-terminated; *len gets its length if
 * len is not NULL).  Borrowed: valid until validate/execute returns. */
static inline const char *
cmdhost_payload_text(cmdhost_ctx *ctx, size_t *len)
{
	return CMDHOST__API(ctx)->ctx_payload_text(ctx, len);
}

/* The daemon's id of this request, as its logs show it.  Borrowed. */
static inline const char *
cmdhost_request_id(cmdhost_ctx *ctx)
{
	return CMDHOST__API(ctx)->ctx_request_id(ctx);
}

/* The client's "id" (string or integer), or NULL.  Borrowed. */
static inline struct json_object *
cmdhost_client_id(cmdhost_ctx *ctx)
{
	return CMDHOST__API(ctx)->ctx_client_id(ctx);
}

/* The command name this call was made for.  Borrowed. */
static inline const char *
cmdhost_command_name(cmdhost_ctx *ctx)
{
	return CMDHOST__API(ctx)->ctx_command(ctx);
}

/* Milliseconds left before the deadline (0 when it has passed).  A result
 * finished after the deadline is dropped; the client already got 504. */
static inline int64_t
cmdhost_time_left_ms(cmdhost_ctx *ctx)
{
	return CMDHOST__API(ctx)->ctx_time_left_ms(ctx);
}

/* Log a message with the request's context added by the daemon
 * (request_id, the client's id, command, plugin, plugin_version,
 * generation, cold_start, the client's pid and uid).  printf-style; the
 * daemon copies, escapes and cuts the text at CMDHOST_LOG_MAX bytes. */
static inline void
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
cmdhost_log(cmdhost_ctx *ctx, int level, const char *fmt, ...)
{
	char buf[CMDHOST__CUT_BUF(CMDHOST_LOG_MAX)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	CMDHOST__API(ctx)->ctx_log(ctx, level, buf);
}

/* Finish with a 2xx status and a body.  Takes ownership of `body` (one
 * reference), also on failure; NULL means JSON null.  Returns 0, or -1 if
 * the call already finished or status is not 2xx (then 500 is sent). */
static inline int
cmdhost_respond(cmdhost_ctx *ctx, int status, struct json_object *body)
{
	return CMDHOST__API(ctx)->ctx_respond(ctx, status, body);
}

/* Finish with 200 and `body`; ownership as cmdhost_respond(). */
static inline int
cmdhost_ok(cmdhost_ctx *ctx, struct json_object *body)
{
	return CMDHOST__API(ctx)->ctx_respond(ctx, 200, body);
}

/* Finish with a 2xx status and a body given as JSON text of `len` bytes
 * (borrowed, copied; need not be NUL-terminated).  The daemon checks the
 * text strictly (see ctx_respond_text in struct cmdhost_api): refused text
 * is answered 500 naming the plugin.  Returns 0 or -1.  ABI 1.1. */
static inline int
cmdhost_respond_text(cmdhost_ctx *ctx, int status, const char *json,
    size_t len)
{
	return CMDHOST__API(ctx)->ctx_respond_text(ctx, status, json, len);
}

/* Finish with 200 and a NUL-terminated JSON text body.  ABI 1.1. */
static inline int
cmdhost_ok_text(cmdhost_ctx *ctx, const char *json)
{
	return CMDHOST__API(ctx)->ctx_respond_text(ctx, 200, json,
	    json != NULL ? strlen(json) : 0);
}

/* The client's "id" as JSON text, or NULL.  Borrowed.  ABI 1.1. */
static inline const char *
cmdhost_client_id_text(cmdhost_ctx *ctx)
{
	return CMDHOST__API(ctx)->ctx_client_id_text(ctx);
}

/* Emit an event (ABI 1.2): a subject and a NUL-terminated JSON text body
 * (borrowed, copied).  Published only if the call finishes 2xx; a refused
 * event fails the call with 500 and none of its events goes out.  Returns
 * 0 or -1.  Test CMDHOST_API_HAS(cmdhost_api(ctx), ctx_emit_text) on an
 * older daemon. */
static inline int
cmdhost_emit_text(cmdhost_ctx *ctx, const char *subject, const char *json)
{
	return CMDHOST__API(ctx)->ctx_emit_text(ctx, subject, json,
	    json != NULL ? strlen(json) : 0);
}

/* Emit an event with a json-c body (borrowed: still yours).  ABI 1.2. */
static inline int
cmdhost_emit(cmdhost_ctx *ctx, const char *subject, struct json_object *body)
{
	return CMDHOST__API(ctx)->ctx_emit(ctx, subject, body);
}

/* Have the daemon relay this generation's own outbox (ABI 1.2; see
 * reg_set_relay in struct cmdhost_api).  Returns 0 or -1. */
static inline int
cmdhost_set_relay(cmdhost_registrar *reg, cmdhost_relay_fetch_fn fetch,
    cmdhost_relay_ack_fn ack)
{
	return CMDHOST__API(reg)->reg_set_relay(reg, fetch, ack);
}

/* Inside a relay fetch: hand over one pending row (ABI 1.2). */
static inline int
cmdhost_relay_put(cmdhost_relay *sink, const char *id, const char *subject,
    const char *json)
{
	return CMDHOST__API(sink)->relay_put(sink, id, subject, json,
	    json != NULL ? strlen(json) : 0);
}

/* Finish with an error: status 400..599, a short snake_case code and a
 * message (both copied; NULL code becomes "command_failed").  Returns 0, or
 * -1 if the call already finished.  A status outside 400..599 becomes 500. */
static inline int
cmdhost_fail(cmdhost_ctx *ctx, int status, const char *code,
    const char *message)
{
	return CMDHOST__API(ctx)->ctx_fail(ctx, status, code, message);
}

/* cmdhost_fail() with a printf-style message. */
static inline int
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
cmdhost_failf(cmdhost_ctx *ctx, int status, const char *code,
    const char *fmt, ...)
{
	char buf[CMDHOST__CUT_BUF(CMDHOST_LOG_MAX)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return CMDHOST__API(ctx)->ctx_fail(ctx, status, code, buf);
}

#ifdef __cplusplus
}
#endif

#endif /* CMDHOST_PLUGIN_H */
