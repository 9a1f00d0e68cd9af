/*
 * log.c - structured log lines on stderr.
 *
 * Each line is formatted, with no lock, into a buffer whose size every
 * field's bound respects: the thread's own batch buffer
 * (log_thread_buffer), written with the rest of its batch, or the stack,
 * written at once.  Writes take one lock and finish, so lines never mix.
 * This file does not decide what is worth logging; callers do.
 */
#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"

static int log_threshold = LOGL_INFO;
static int log_fmt = LOGF_JSON;
/* The service field as each format writes it, and its length. */
static char service_field[96];
static size_t service_len;
static int log_epoch;        /* bumped by log_init: cached prefixes expire */

static const char *const level_names[] = { "debug", "info", "warn", "error" };
static const size_t level_lens[] = { 5, 4, 4, 5 };

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
#define STAMP_LEN 24

/* Bounds that keep every line inside struct line: the message's escaped
 * form, each other string field's, and the raw id. */
#define MSG_MAX   8192
#define FIELD_MAX 512
#define ID_MAX    256
#define LINE_MAX_ 16384

/* A thread's buffered lines (log_thread_buffer). */
struct tbuf {
	char *data;
	size_t len, cap;
};
static _Thread_local struct tbuf *tl_buf;

/* The start of the calling thread's last line (timestamp to service), for
 * the next line of the same millisecond, level and message. */
static _Thread_local struct {
	long long ms;
	int level, epoch;
	size_t mlen, len;
	char msg[96];
	char text[256];
} tl_prefix = { .ms = -1 };

void
log_init(int level, int format, const char *service)
{
	log_threshold = level;
	log_fmt = format;
	service_field[0] = '\0';
	if (service != NULL && service[0] != '\0')
		snprintf(service_field, sizeof(service_field), format ==
		    LOGF_JSON ? ",\"service\":\"%.64s\"" : " service=%.64s",
		    service); /* checked by the config */
	service_len = strlen(service_field);
	log_epoch++;
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

/* n decimal digits of v, zero-padded, at p. */
static void
put_digits(char *p, long long v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
}

void
log_timestamp(char *buf, unsigned long size, long long unix_ms)
{
	long long secs = unix_ms / 1000, ms = unix_ms % 1000, days, rem;
	long long z, era, doe, yoe, doy, mp, y, m, d;

	if (ms < 0) {
		ms += 1000;
		secs--;
	}
	days = secs / 86400;
	rem = secs % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	/* The civil date of a day count without gmtime_r, which is not
	 * async-signal-safe (H. Hinnant's civil_from_days). */
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	if (m <= 2)
		y++;
	if (size < 25) {
		if (size > 0)
			buf[0] = '\0'; /* the header asks for 32 bytes */
		return;
	}
	/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
	put_digits(buf, y < 0 ? 0 : y, 4);
	buf[4] = '-';
	put_digits(buf + 5, m, 2);
	buf[7] = '-';
	put_digits(buf + 8, d, 2);
	buf[10] = 'T';
	put_digits(buf + 11, rem / 3600, 2);
	buf[13] = ':';
	put_digits(buf + 14, rem / 60 % 60, 2);
	buf[16] = ':';
	put_digits(buf + 17, rem % 60, 2);
	buf[19] = '.';
	put_digits(buf + 20, ms, 3);
	buf[23] = 'Z';
	buf[24] = '\0';
}

int
log_thread_buffer(int on)
{
	if (!on) {
		log_flush();
		if (tl_buf != NULL)
			free(tl_buf->data);
		free(tl_buf);
		tl_buf = NULL;
		return 0;
	}
	if (tl_buf != NULL)
		return 0;
	if ((tl_buf = calloc(1, sizeof(*tl_buf))) == NULL)
		return -1;
	tl_buf->cap = 4 * LINE_MAX_;
	if ((tl_buf->data = malloc(tl_buf->cap)) == NULL) {
		free(tl_buf);
		tl_buf = NULL;
		return -1;
	}
	return 0;
}

/*
 * Write n bytes to stderr, all of them, under one lock: a pipe or a socket
 * (systemd, docker, "| tee") only keeps writes of up to PIPE_BUF bytes
 * whole, and a batch is longer.  The lock is taken once per batch (once
 * per loop turn), not per line.  A write that fails for good drops the
 * rest.
 */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

/* Write all of p[0..n) to stderr; write_lock is held. */
static void
write_locked(const char *p, size_t n)
{
	int saved = errno;

	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		n -= (size_t)w;
	}
	errno = saved;
}

static void
write_out(const char *p, size_t n)
{
	pthread_mutex_lock(&write_lock);
	write_locked(p, n);
	pthread_mutex_unlock(&write_lock);
}

void
log_flush(void)
{
	if (tl_buf == NULL || tl_buf->len == 0)
		return;
	write_out(tl_buf->data, tl_buf->len);
	tl_buf->len = 0;
}

void
log_flush_fatal(void)
{
	struct tbuf *b = tl_buf;
	const char *p;
	size_t n;

	if (b == NULL || b->len == 0 || b->len > b->cap)
		return;
	p = b->data;
	n = b->len;
	b->len = 0;
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		n -= (size_t)w;
	}
}

int
log_flush_some(void)
{
	if (tl_buf == NULL || tl_buf->len == 0)
		return 0;
	/* While another thread writes, keep the lines for the next turn
	 * rather than sleep on the lock; a buffer half full waits. */
	if (tl_buf->len < tl_buf->cap / 2 &&
	    pthread_mutex_trylock(&write_lock) != 0)
		return 1;
	if (tl_buf->len >= tl_buf->cap / 2)
		pthread_mutex_lock(&write_lock);
	write_locked(tl_buf->data, tl_buf->len);
	pthread_mutex_unlock(&write_lock);
	tl_buf->len = 0;
	return 0;
}

/* One line being built, in the thread's buffer or on the stack, with
 * LINE_MAX_ bytes of room: the bounds above keep it from filling up. */
struct line {
	char *buf;
	size_t len;
};

static inline void
put(struct line *l, const char *s, size_t n)
{
	size_t room = LINE_MAX_ - 2 - l->len; /* keep room for "}\n" */

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

/* Append a string literal, its length known at compile time. */
#define PUT_LIT(l, lit) put((l), (lit), sizeof(lit) - 1)

/*
 * Append s as the inside of a JSON string, at most `max` bytes of it:
 * quotes, backslashes and every control byte are escaped and bytes that
 * are not UTF-8 become U+FFFD, so no plugin text can break the line.  A
 * cut falls between characters and is marked with "...".
 */
static void
put_escaped(struct line *l, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s), used = 0;

	while (left > 0) {
		char e[6];
		const char *out = e;
		size_t n, adv, run = 0;

		/* A run of printable ASCII that needs no escape goes at once. */
		while (run < left && p[run] >= 0x20 && p[run] < 0x7f &&
		    p[run] != '"' && p[run] != '\\')
			run++;
		if (run > 0) {
			if (used + run > max - 3)
				run = max - 3 > used ? max - 3 - used : 0;
			put(l, (const char *)p, run);
			used += run;
			p += run;
			left -= run;
			if (left == 0)
				return;
			if (used >= max - 3) {
				puts_(l, "...");
				return;
			}
		}
		adv = 1;
		if ((n = buf_json_escape(*p, e)) == 0) {
			if ((adv = buf_utf8_seq(p, left)) == 0) {
				out = "\\ufffd";
				n = 6;
				adv = 1;
			} else {
				out = (const char *)p;
				n = adv;
			}
		}
		if (used + n > max - 3) {
			puts_(l, "...");
			return;
		}
		put(l, out, n);
		used += n;
		p += adv;
		left -= adv;
	}
}

/* Append v in decimal. */
static void
put_u64(struct line *l, unsigned long long v)
{
	char num[24];
	int at = sizeof(num);

	do {
		num[--at] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	put(l, num + at, sizeof(num) - (size_t)at);
}

/* Start field `key`: ,"key": in JSON, " key=" in text.  The KEY macro
 * makes both forms of a literal key at compile time. */
static inline void
put_key2(struct line *l, const char *json, size_t jlen, const char *text,
    size_t tlen)
{
	if (log_fmt == LOGF_JSON)
		put(l, json, jlen);
	else
		put(l, text, tlen);
}

#define KEY(k) ",\"" k "\":", sizeof(",\"" k "\":") - 1, " " k "=", \
	sizeof(" " k "=") - 1
#define put_key(l, k) put_key2((l), KEY(k))

/* In text lines a value is quoted (JSON-style) when it is empty or holds
 * anything but plain printable ASCII, so that no value can pass for a
 * field of its own. */
static int
text_needs_quotes(const char *val)
{
	if (*val == '\0')
		return 1;
	for (; *val != '\0'; val++)
		if (*val <= ' ' || *val >= 0x7f || *val == '"' || *val == '=' ||
		    *val == '\\')
			return 1;
	return 0;
}

static void
put_str_value(struct line *l, const char *val)
{
	int quote = log_fmt == LOGF_JSON || text_needs_quotes(val);

	if (quote)
		PUT_LIT(l, "\"");
	put_escaped(l, val, FIELD_MAX);
	if (quote)
		PUT_LIT(l, "\"");
}

#define put_field_str(l, k, val) do {                                    \
	if ((val) != NULL) {                                            \
		put_key((l), k);                                        \
		put_str_value((l), (val));                              \
	}                                                               \
} while (0)

#define put_field_ll(l, k, v) do {                                       \
	if ((v) >= 0) {                                                 \
		put_key((l), k);                                        \
		put_u64((l), (unsigned long long)(v));                  \
	}                                                               \
} while (0)

static void
put_ctx(struct line *l, const struct log_ctx *ctx)
{
	if (ctx->request_id != NULL) {
		/* Made by the daemon (request_id_make): hex digits only. */
		put_key(l, "request_id");
		if (log_fmt == LOGF_JSON)
			PUT_LIT(l, "\"");
		puts_(l, ctx->request_id);
		if (log_fmt == LOGF_JSON)
			PUT_LIT(l, "\"");
	}
	if (ctx->id != NULL && strlen(ctx->id) <= ID_MAX) {
		put_key(l, "id");
		/* JSON text made by the daemon (json-c leaves DEL as it is;
		 * it can only stand inside a string). */
		for (const char *p = ctx->id; *p != '\0'; p++)
			if (*p == 0x7f)
				PUT_LIT(l, "\\u007f");
			else
				put(l, p, 1);
	}
	if (ctx->frag != NULL)
		puts_(l, ctx->frag);
	put_field_str(l, "command", ctx->command);
	put_field_str(l, "plugin", ctx->plugin);
	put_field_str(l, "plugin_version", ctx->version);
	put_field_ll(l, "generation", ctx->generation);
	put_field_str(l, "file", ctx->file);
	put_field_str(l, "old_plugin_version", ctx->old_version);
	put_field_ll(l, "old_generation", ctx->old_generation);
	put_field_str(l, "reason", ctx->reason);
	put_field_str(l, "event_id", ctx->event_id);
	put_field_str(l, "subject", ctx->subject);
	put_field_ll(l, "attempt", ctx->attempt);
	put_field_ll(l, "status", ctx->status);
	put_field_str(l, "error_code", ctx->error_code);
	if (ctx->duration_ms >= 0) {
		/* Milliseconds with three decimals, without printf. */
		unsigned long long us = (unsigned long long)(ctx->duration_ms *
		    1000.0 + 0.5);
		char frac[4] = { (char)('0' + us / 100 % 10),
		    (char)('0' + us / 10 % 10), (char)('0' + us % 10), '\0' };

		put_key(l, "duration_ms");
		put_u64(l, us / 1000);
		PUT_LIT(l, ".");
		put(l, frac, 3);
	}
	if (ctx->cold_start >= 0) {
		put_key(l, "cold_start");
		if (ctx->cold_start)
			PUT_LIT(l, "true");
		else
			PUT_LIT(l, "false");
	}
	put_field_ll(l, "pid", ctx->pid);
	put_field_ll(l, "uid", ctx->uid);
}

void
log_emitv(int level, const struct log_ctx *ctx, const char *fmt, va_list ap)
{
	char msg[MSG_MAX];

	if (level < log_threshold)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_emit_str(level, ctx, msg);
}

void
log_emit_str(int level, const struct log_ctx *ctx, const char *msg)
{
	char stack[LINE_MAX_], stamp[40];
	struct line l;
	long long ms;
	size_t mlen;

	if (level < log_threshold)
		return;
	/* Straight into the thread's buffer when it has room for a line. */
	if (tl_buf != NULL && tl_buf->cap - tl_buf->len < LINE_MAX_)
		log_flush();
	l.buf = tl_buf != NULL ? tl_buf->data + tl_buf->len : stack;
	l.len = 0;
	/* The time of writing, not a time the caller saw earlier (a loop's
	 * turn began before the inline call it now logs). */
	ms = clock_wall_ms();
	/* Lines of one millisecond with the same level and message (access
	 * lines under load) share everything up to the request's fields. */
	mlen = strlen(msg);
	if (ms == tl_prefix.ms && level == tl_prefix.level &&
	    tl_prefix.epoch == log_epoch &&
	    mlen == tl_prefix.mlen && memcmp(msg, tl_prefix.msg, mlen) == 0) {
		put(&l, tl_prefix.text, tl_prefix.len);
		goto context;
	}
	log_timestamp(stamp, sizeof(stamp), ms);

	if (log_fmt == LOGF_JSON) {
		PUT_LIT(&l, "{\"timestamp\":\"");
		put(&l, stamp, STAMP_LEN);
		PUT_LIT(&l, "\",\"level\":\"");
		put(&l, level_names[level], level_lens[level]);
		PUT_LIT(&l, "\",\"message\":\"");
		put_escaped(&l, msg, MSG_MAX);
		PUT_LIT(&l, "\"");
	} else {
		put(&l, stamp, STAMP_LEN);
		PUT_LIT(&l, " ");
		put(&l, level_names[level], level_lens[level]);
		PUT_LIT(&l, " \"");
		put_escaped(&l, msg, MSG_MAX);
		PUT_LIT(&l, "\"");
	}
	put(&l, service_field, service_len);
	if (mlen < sizeof(tl_prefix.msg) && l.len < sizeof(tl_prefix.text)) {
		tl_prefix.ms = ms;
		tl_prefix.level = level;
		tl_prefix.epoch = log_epoch;
		tl_prefix.mlen = mlen;
		memcpy(tl_prefix.msg, msg, mlen);
		tl_prefix.len = l.len;
		memcpy(tl_prefix.text, l.buf, l.len);
	}
context:
	if (ctx != NULL)
		put_ctx(&l, ctx);
	if (log_fmt == LOGF_JSON)
		l.buf[l.len++] = '}';
	l.buf[l.len++] = '\n';
	if (tl_buf != NULL)
		tl_buf->len += l.len;
	else
		write_out(l.buf, l.len); /* one write per line */
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

char *
log_fragment(const struct log_ctx *ctx)
{
	char stack[LINE_MAX_];
	struct line l = { stack, 0 };
	char *out;

	put_ctx(&l, ctx);
	if ((out = malloc(l.len + 1)) == NULL)
		return NULL;
	memcpy(out, stack, l.len);
	out[l.len] = '\0';
	return out;
}

/* ------------------------------------------------------------ client limit */

/* One source's bucket: who, how many tokens (in 1/1000 of a line), when
 * last filled, and how many lines were held back since the last one
 * written. */
struct bucket {
	long long uid;
	int used;
	int64_t milli;
	int64_t last_ns;
	int64_t since_ns;           /* the first line held back */
	unsigned long long held;
};

#define LIMIT_SOURCES 64

static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bucket buckets[LIMIT_SOURCES];
static int limit_rate, limit_burst;

void
log_limit_init(int rate, int burst)
{
	pthread_mutex_lock(&limit_lock);
	limit_rate = rate > 0 ? rate : 0;
	limit_burst = burst > 0 ? burst : 1;
	memset(buckets, 0, sizeof(buckets));
	pthread_mutex_unlock(&limit_lock);
}

/* The bucket of uid, limit_lock held: found, a free one, or the least
 * recently used (whose held count goes to *evicted, to be reported). */
static struct bucket *
bucket_of(long long uid, int64_t now, struct bucket *evicted)
{
	struct bucket *b, *lru = &buckets[0];

	evicted->held = 0;
	for (int i = 0; i < LIMIT_SOURCES; i++) {
		b = &buckets[i];
		if (b->used && b->uid == uid)
			return b;
		if (!b->used || (lru->used && b->last_ns < lru->last_ns))
			lru = b;
	}
	if (lru->used)
		*evicted = *lru;
	memset(lru, 0, sizeof(*lru));
	lru->used = 1;
	lru->uid = uid;
	lru->milli = (int64_t)limit_burst * 1000;
	lru->last_ns = now;
	return lru;
}

static void
report_held(const struct bucket *b, int64_t now)
{
	struct log_ctx lc = LOG_CTX_INIT;

	lc.uid = b->uid;
	log_emit(LOGL_WARN, &lc, "suppressed %llu log lines caused by this "
	    "client in the last %.1f s (the limit is %d lines a second, "
	    "bursts of %d)", b->held, (double)(now - b->since_ns) / 1e9,
	    limit_rate, limit_burst);
}

void
log_client_str(int level, const struct log_ctx *ctx, const char *msg)
{
	struct bucket *b, report, evicted;
	long long uid = ctx != NULL ? ctx->uid : -1;
	int64_t now, ms;
	int pass;

	if (level < log_threshold)
		return;
	if (limit_rate == 0) {
		log_emit_str(level, ctx, msg);
		return;
	}
	now = clock_mono_ns();
	report.held = 0;
	pthread_mutex_lock(&limit_lock);
	b = bucket_of(uid < 0 ? -1 : uid, now, &evicted);
	/* Refill: rate lines a second, in thousandths of a line. */
	if ((ms = (now - b->last_ns) / 1000000) > 0) {
		b->milli += ms * limit_rate;
		if (b->milli > (int64_t)limit_burst * 1000)
			b->milli = (int64_t)limit_burst * 1000;
		b->last_ns += ms * 1000000;
	}
	pass = b->milli >= 1000;
	if (pass) {
		b->milli -= 1000;
		if (b->held > 0) {
			report = *b;
			b->held = 0;
		}
	} else if (b->held++ == 0) {
		b->since_ns = now;
	}
	pthread_mutex_unlock(&limit_lock);
	/* Written outside the lock: stderr may block. */
	if (evicted.held > 0)
		report_held(&evicted, now);
	if (report.held > 0)
		report_held(&report, now);
	if (pass)
		log_emit_str(level, ctx, msg);
}
