/*
 * log.h - structured logging to stderr, one line per event.
 *
 * JSON objects by default, or `time level "message" key=value` text for
 * people (values quoted when they need it).  A line is built in a buffer
 * (the thread's batch buffer, or the stack) with no lock; a batch or a
 * lone line is then written whole under one lock, so lines never mix,
 * even on a pipe.
 */
#ifndef CMDHOST_LOG_H
#define CMDHOST_LOG_H

#include <stdarg.h>

enum log_level { LOGL_DEBUG = 0, LOGL_INFO, LOGL_WARN, LOGL_ERROR };
enum log_format { LOGF_JSON = 0, LOGF_TEXT };

/* Context fields a line may carry; NULL strings and negative numbers are
 * left out.  All pointers are borrowed for the call.  Strings are escaped
 * (bad UTF-8 becomes U+FFFD) and cut at a bound, so no field can break a
 * line; `id` is the client's id as JSON text, written as it is when short
 * enough and left out otherwise. */
struct log_ctx {
	const char *request_id;
	const char *id;
	const char *frag;           /* fields made by log_fragment(), as is */
	const char *command;
	const char *plugin;
	const char *version;        /* written as "plugin_version" */
	const char *file;
	const char *error_code;
	const char *old_version;    /* written as "old_plugin_version" */
	const char *reason;
	const char *event_id;       /* an event's delivery: its id, */
	const char *subject;        /* subject, */
	long long attempt;          /* and attempt (-1: none) */
	long long generation;
	long long old_generation;
	int status;
	double duration_ms;
	int cold_start;             /* -1 unknown, 0, 1 */
	long long pid;              /* the peer's */
	long long uid;
	long long unix_ms;          /* ignored: every line carries the
	                             * time it is written */
};

#define LOG_CTX_INIT { .generation = -1, .old_generation = -1, .attempt = -1, \
	.status = -1, .duration_ms = -1.0, .cold_start = -1, .pid = -1, \
	.uid = -1 }

/* Returns the fields of ctx formatted as log lines write them (in the
 * format log_init() set), as a new string (free it) to put in a later
 * ctx's `frag`: context that many lines share is formatted once.  NULL on
 * ENOMEM. */
char *log_fragment(const struct log_ctx *ctx);

/* Set the threshold, the format and the service name every line carries
 * (copied; at most 64 bytes, NULL for none); before threads start. */
void log_init(int level, int format, const char *service);

/*
 * Per-thread buffering, for the event loops: after log_thread_buffer(1),
 * the calling thread's lines collect in a buffer of its own that is
 * written with one write(2) by log_flush() (call it before the thread
 * sleeps) or when it fills up.  log_thread_buffer(0) flushes and frees it.
 * Other threads write each line at once.  Returns 0, or -1 (ENOMEM: lines
 * are then written at once).
 */
int log_thread_buffer(int on);
void log_flush(void);

/* log_flush() for an event loop's turn: when another thread is writing,
 * returns 1 and keeps the lines for the next call instead of waiting
 * (unless the buffer is half full); then the caller should call again
 * within a millisecond or so.  Returns 0 when nothing is left. */
int log_flush_some(void);

/* For a fatal-signal handler: write the calling thread's buffered lines
 * with write(2) alone -- no lock, no allocation (async-signal-safe) -- so
 * the lines a crashing event loop had kept reach the log before its
 * fatal line.  Other threads' buffers are not touched. */
void log_flush_fatal(void);

/* Parse "debug|info|warn|error" / "json|text"; -1 when unknown. */
int log_level_parse(const char *s);
int log_format_parse(const char *s);

/* True when a line of `level` would be written. */
int log_enabled(int level);

/* Write one line of `level` with the fields of `ctx` (may be NULL). */
void log_emit(int level, const struct log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_emitv(int level, const struct log_ctx *ctx, const char *fmt,
    va_list ap);
/* The same with the message as it is (borrowed): no formatting. */
void log_emit_str(int level, const struct log_ctx *ctx, const char *msg);

/*
 * Lines a client causes (its bad requests, unknown commands, oversize
 * lines, errors of its calls): rate-limited per source, the peer uid in
 * ctx->uid (-1, as for NATS, is one source of its own), by a token bucket
 * of `burst` lines refilled at `rate` lines a second.  Lines past it are
 * counted, not written; the next line the bucket lets through is preceded
 * by one warn line "suppressed N ..." for that source.  rate 0 turns the
 * limit off.  Set before threads start; log_client_str() is thread-safe.
 */
void log_limit_init(int rate, int burst);
void log_client_str(int level, const struct log_ctx *ctx, const char *msg);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn and log_error append ": strerror(errno)"; the x forms do not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Format unix_ms as UTC RFC 3339 with milliseconds into buf (at least
 * 32 bytes; borrowed).  Async-signal-safe: it calls nothing (crash.c
 * stamps its fatal line with it). */
void log_timestamp(char *buf, unsigned long size, long long unix_ms);

#endif /* CMDHOST_LOG_H */
