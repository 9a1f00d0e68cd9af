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
 */
#ifndef CMDHOST_PLUGIN_H
#define CMDHOST_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CMDHOST_MAGIC 0x434d4448u /* "CMDH" */
#define CMDHOST_ABI_MAJOR 1
#define CMDHOST_ABI_MINOR 0

/* The longest command name, in bytes; names match [A-Za-z0-9_.:-]{1,128}. */
#define CMDHOST_NAME_MAX 128

typedef struct cmdhost_registrar cmdhost_registrar;
typedef struct cmdhost_ctx cmdhost_ctx;

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
 * The host function table.  Members are only ever appended; `size` is
 * sizeof(struct cmdhost_api) as the daemon was built.  Plugins call these
 * through the inline wrappers below, never directly.
 */
struct cmdhost_api {
	size_t size;
	unsigned abi_major;
	unsigned abi_minor;

	/* registrar (valid only inside the registration function) */
	const char *(*reg_config)(cmdhost_registrar *reg, const char *key);
	void (*reg_set_state)(cmdhost_registrar *reg, void *state,
	    cmdhost_fini_fn fini);
	int (*reg_add_command)(cmdhost_registrar *reg,
	    const cmdhost_command *cmd, size_t cmd_size);
	void (*reg_error)(cmdhost_registrar *reg, const char *message);
	void (*reg_log)(cmdhost_registrar *reg, int level, const char *message);
	const char *(*reg_plugin_name)(cmdhost_registrar *reg);

	/* context (valid only inside validate and execute) */
	void *(*ctx_state)(cmdhost_ctx *ctx);
	struct json_object *(*ctx_payload)(cmdhost_ctx *ctx);
	const char *(*ctx_payload_text)(cmdhost_ctx *ctx, size_t *len);
	const char *(*ctx_request_id)(cmdhost_ctx *ctx);
	const char *(*ctx_command)(cmdhost_ctx *ctx);
	int64_t (*ctx_time_left_ms)(cmdhost_ctx *ctx);
	void (*ctx_log)(cmdhost_ctx *ctx, int level, const char *message);
	int (*ctx_respond)(cmdhost_ctx *ctx, int status,
	    struct json_object *body);
	int (*ctx_fail)(cmdhost_ctx *ctx, int status, const char *code,
	    const char *message);
	struct json_object *(*ctx_client_id)(cmdhost_ctx *ctx);
};

/* True when the daemon's table has member `m` (always, for ABI 1.0). */
#define CMDHOST_API_HAS(api, m) \
	(offsetof(struct cmdhost_api, m) + sizeof((api)->m) <= (api)->size)

/* The first member of both opaque objects is the table. */
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

/* Define the plugin's descriptor; use once, at file scope, in one file. */
#define CMDHOST_PLUGIN(name, version, register_fn)                         \
	CMDHOST__EXTERN __attribute__((visibility("default")))             \
	const cmdhost_plugin_desc cmdhost_plugin = {                       \
		CMDHOST_MAGIC, CMDHOST_ABI_MAJOR, CMDHOST_ABI_MINOR,       \
		(name), (version), (register_fn)                           \
	}

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

/* Record why registration fails (printf-style; copied). */
static inline void
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
cmdhost_reg_error(cmdhost_registrar *reg, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	CMDHOST__API(reg)->reg_error(reg, buf);
}

/* Log during registration, tagged with the plugin's name (copied). */
static inline void
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
cmdhost_reg_log(cmdhost_registrar *reg, int level, const char *fmt, ...)
{
	char buf[1024];
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
 * text is copied, escaped and cut at 1 KiB. */
static inline void
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
cmdhost_log(cmdhost_ctx *ctx, int level, const char *fmt, ...)
{
	char buf[1024];
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
	char buf[1024];
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
