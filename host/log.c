/*
 * log.c - structured log lines on stderr.
 *
 * Each line is formatted into a stack buffer and written with a single
 * write(2); a line longer than the buffer is cut, never split.  This file
 * does not decide what is worth logging; callers do.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static int log_threshold = LOGL_INFO;
static int log_fmt = LOGF_JSON;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_init(int level, int format)
{
	log_threshold = level;
	log_fmt = format;
}

int
log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return LOGL_WARN;
	return -1;
}

int
log_format_parse(const char *s)
{
	if (strcmp(s, "json") == 0)
		return LOGF_JSON;
	if (strcmp(s, "text") == 0)
		return LOGF_TEXT;
	return -1;
}

int
log_enabled(int level)
{
	return level >= log_threshold;
}

long long
log_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
log_timestamp(char *buf, unsigned long size, long long unix_ms)
{
	time_t secs = (time_t)(unix_ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
}

/* A bounded output buffer; writes past the end are dropped. */
struct line {
	char buf[8192];
	size_t len;
};

static void
put(struct line *l, const char *s, size_t n)
{
	size_t room = sizeof(l->buf) - 2 - l->len; /* keep room for "}\n" */

	if (n > room)
		n = room;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void
puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* Append s as the inside of a JSON string: quotes, backslashes and every
 * control byte are escaped, so no plugin text can break the line. */
static void
put_escaped(struct line *l, const char *s)
{
	for (; *s != '\0'; s++) {
		char e[6];
		size_t elen = buf_json_escape((unsigned char)*s, e);

		if (elen > 0)
			put(l, e, elen);
		else
			put(l, s, 1);
	}
}

static void
put_field_str(struct line *l, const char *key, const char *val)
{
	if (val == NULL)
		return;
	if (log_fmt == LOGF_JSON) {
		puts_(l, ",\"");
		puts_(l, key);
		puts_(l, "\":\"");
		put_escaped(l, val);
		puts_(l, "\"");
	} else {
		puts_(l, " ");
		puts_(l, key);
		puts_(l, "=");
		put_escaped(l, val);
	}
}

static void
put_field_num(struct line *l, const char *key, const char *num)
{
	if (log_fmt == LOGF_JSON) {
		puts_(l, ",\"");
		puts_(l, key);
		puts_(l, "\":");
	} else {
		puts_(l, " ");
		puts_(l, key);
		puts_(l, "=");
	}
	puts_(l, num);
}

void
log_emitv(int level, const struct log_ctx *ctx, const char *fmt, va_list ap)
{
	struct line l;
	char stamp[40], msg[4096], num[32];

	if (level < log_threshold)
		return;
	l.len = 0;
	log_timestamp(stamp, sizeof(stamp), log_now_ms());
	vsnprintf(msg, sizeof(msg), fmt, ap);

	if (log_fmt == LOGF_JSON) {
		puts_(&l, "{\"timestamp\":\"");
		puts_(&l, stamp);
		puts_(&l, "\",\"level\":\"");
		puts_(&l, level_names[level]);
		puts_(&l, "\",\"message\":\"");
		put_escaped(&l, msg);
		puts_(&l, "\"");
	} else {
		puts_(&l, stamp);
		puts_(&l, " ");
		puts_(&l, level_names[level]);
		puts_(&l, " ");
		put_escaped(&l, msg);
	}
	if (ctx != NULL) {
		put_field_str(&l, "request_id", ctx->request_id);
		put_field_str(&l, "command", ctx->command);
		put_field_str(&l, "plugin", ctx->plugin);
		put_field_str(&l, "version", ctx->version);
		put_field_str(&l, "file", ctx->file);
		if (ctx->generation >= 0) {
			snprintf(num, sizeof(num), "%lld", ctx->generation);
			put_field_num(&l, "generation", num);
		}
		put_field_str(&l, "old_version", ctx->old_version);
		if (ctx->old_generation >= 0) {
			snprintf(num, sizeof(num), "%lld", ctx->old_generation);
			put_field_num(&l, "old_generation", num);
		}
		put_field_str(&l, "reason", ctx->reason);
		if (ctx->status >= 0) {
			snprintf(num, sizeof(num), "%d", ctx->status);
			put_field_num(&l, "status", num);
		}
		put_field_str(&l, "error_code", ctx->error_code);
		if (ctx->duration_ms >= 0) {
			snprintf(num, sizeof(num), "%.3f", ctx->duration_ms);
			put_field_num(&l, "duration_ms", num);
		}
	}
	if (log_fmt == LOGF_JSON)
		l.buf[l.len++] = '}';
	l.buf[l.len++] = '\n';
	/* One write per line; a short write to stderr is not retried. */
	if (write(STDERR_FILENO, l.buf, l.len) < 0)
		return;
}

void
log_emit(int level, const struct log_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emitv(level, ctx, fmt, ap);
	va_end(ap);
}

/* Format fmt, optionally followed by ": strerror(saved errno)". */
static void
vlog_errno(int level, int with_errno, const char *fmt, va_list ap)
{
	int saved = errno;
	char msg[4096];

	if (level < log_threshold)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno)
		log_emit(level, NULL, "%s: %s", msg, strerror(saved));
	else
		log_emit(level, NULL, "%s", msg);
	errno = saved;
}

#define LOG_FN(name, level, with_errno)                 \
	void name(const char *fmt, ...)                 \
	{                                               \
		va_list ap;                             \
		va_start(ap, fmt);                      \
		vlog_errno(level, with_errno, fmt, ap); \
		va_end(ap);                             \
	}

LOG_FN(log_debug, LOGL_DEBUG, 0)
LOG_FN(log_info, LOGL_INFO, 0)
LOG_FN(log_warn, LOGL_WARN, 1)
LOG_FN(log_warnx, LOGL_WARN, 0)
LOG_FN(log_error, LOGL_ERROR, 1)
LOG_FN(log_errorx, LOGL_ERROR, 0)

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_errno(LOGL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
