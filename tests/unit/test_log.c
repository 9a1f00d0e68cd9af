/*
 * test_log.c - unit tests of log.c: every line is one JSON object whatever
 * its fields hold (bounds, cuts between characters, bad UTF-8, an id too
 * long to copy), text lines stay one line, and a thread's buffered lines
 * reach stderr only when it flushes.  stderr is pointed at a temp file for
 * each test.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "fixture.h"
#include "log.h"

static char path[64];
static int saved_stderr = -1;

/* stderr goes to a fresh temp file. */
static void
setup(void)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/cmdhost-test-log-XXXXXX");
	cr_assert((fd = mkstemp(path)) >= 0);
	saved_stderr = dup(STDERR_FILENO);
	cr_assert(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
	log_init(LOGL_DEBUG, LOGF_JSON, "svc");
}

static void
teardown(void)
{
	log_thread_buffer(0);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	unlink(path);
}

TestSuite(log, .init = setup, .fini = teardown);

/* What was written so far: a new string (free it). */
static char *
written(void)
{
	FILE *f = fopen(path, "r");
	char *text;
	long n;

	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return text;
}

/* The one line written, parsed strictly as one JSON object (put it). */
static json_object *
only_line(void)
{
	char *text = written();
	size_t len = strlen(text);
	struct json_tokener *tok = json_tokener_new();
	json_object *j;

	cr_assert(len > 0 && text[len - 1] == '\n', "no line: %s", text);
	cr_assert_null(strchr(text, '\n') == text + len - 1 ? NULL : text,
	    "more than one line: %s", text);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	j = json_tokener_parse_ex(tok, text, (int)len - 1);
	cr_assert(j != NULL && json_tokener_get_error(tok) ==
	    json_tokener_success && (size_t)json_tokener_get_parse_end(tok) ==
	    len - 1, "not one JSON object: %.300s", text);
	json_tokener_free(tok);
	free(text);
	return j;
}

static const char *
member(json_object *j, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(j, key, &v) ?
	    json_object_get_string(v) : NULL;
}

Test(log, a_huge_message_and_fields_still_make_one_valid_line)
{
	size_t n = 100000;
	char *msg = malloc(n + 1), *field = malloc(n + 1), *id = malloc(400);
	struct log_ctx lc = LOG_CTX_INIT;
	json_object *j;
	const char *m;

	/* Quotes double when escaped; a multibyte character sits where the
	 * cut could fall inside it. */
	for (size_t i = 0; i < n; i++)
		msg[i] = i % 3 == 0 ? '"' : i % 3 == 1 ? '\xc3' : '\xa9';
	msg[n] = '\0';
	memset(field, 'f', n);
	field[n] = '\0';
	memset(id, '7', 399);
	id[399] = '\0';
	lc.command = field;
	lc.plugin = field;
	lc.reason = field;
	lc.id = id; /* too long to copy verbatim: left out */
	lc.status = 200;
	log_emit_str(LOGL_INFO, &lc, msg);
	j = only_line();
	m = member(j, "message");
	cr_assert(m != NULL && strlen(m) > 1000 && strlen(m) < 9000,
	    "message cut to its bound");
	cr_assert_eq(strcmp(m + strlen(m) - 3, "..."), 0, "a cut is marked");
	cr_assert(strlen(member(j, "command")) <= 512, "field bound");
	cr_assert_null(member(j, "id"));
	cr_assert_str_eq(member(j, "service"), "svc");
	cr_assert_str_eq(member(j, "status"), "200");
	json_object_put(j);
	free(msg);
	free(field);
	free(id);
}

Test(log, bad_utf8_and_controls_are_replaced_or_escaped)
{
	struct log_ctx lc = LOG_CTX_INIT;
	json_object *j;

	lc.error_code = "x\xff\x01y";
	log_emit_str(LOGL_WARN, &lc, "a\xc0\xafz\nq");
	j = only_line();
	cr_assert_str_eq(member(j, "message"),
	    "a\xef\xbf\xbd\xef\xbf\xbdz\nq");
	cr_assert_str_eq(member(j, "error_code"), "x\xef\xbf\xbd\x01y");
	cr_assert_str_eq(member(j, "level"), "warn");
	json_object_put(j);
}

Test(log, numbers_and_booleans)
{
	struct log_ctx lc = LOG_CTX_INIT;
	json_object *j, *v;

	lc.duration_ms = 12.3456;
	lc.cold_start = 1;
	lc.pid = 42;
	lc.uid = 0;
	lc.generation = 3;
	lc.id = "\"a\\\"b\"";
	log_emit_str(LOGL_INFO, &lc, "m");
	j = only_line();
	cr_assert(json_object_object_get_ex(j, "duration_ms", &v) &&
	    json_object_is_type(v, json_type_double));
	cr_assert_float_eq(json_object_get_double(v), 12.346, 1e-9);
	cr_assert(json_object_object_get_ex(j, "cold_start", &v) &&
	    json_object_get_boolean(v));
	cr_assert_str_eq(member(j, "pid"), "42");
	cr_assert_str_eq(member(j, "uid"), "0");
	cr_assert_str_eq(member(j, "generation"), "3");
	cr_assert_str_eq(member(j, "id"), "a\"b");
	cr_assert_null(member(j, "status"), "unset numbers are left out");
	json_object_put(j);
}

Test(log, buffered_lines_wait_for_the_flush)
{
	char *text;

	cr_assert_eq(log_thread_buffer(1), 0);
	for (int i = 0; i < 3; i++)
		log_emit(LOGL_INFO, NULL, "line %d", i);
	text = written();
	cr_assert_str_eq(text, "", "written before the flush: %s", text);
	free(text);
	log_flush();
	text = written();
	cr_assert(strstr(text, "line 0") && strstr(text, "line 2") &&
	    strchr(strchr(strchr(text, '\n') + 1, '\n') + 1, '\n') != NULL);
	free(text);
	/* A full buffer flushes by itself. */
	for (int i = 0; i < 2000; i++)
		log_emit(LOGL_INFO, NULL, "filler %d", i);
	text = written();
	cr_assert(strstr(text, "filler 0") != NULL, "a full buffer was not "
	    "written");
	free(text);
	log_thread_buffer(0);
	text = written();
	cr_assert(strstr(text, "filler 1999") != NULL, "off flushes");
	free(text);
}

Test(log, level_threshold_and_text_format)
{
	struct log_ctx lc = LOG_CTX_INIT;
	char *text;

	log_init(LOGL_WARN, LOGF_TEXT, NULL);
	log_emit_str(LOGL_INFO, NULL, "hidden");
	lc.command = "c md";
	lc.status = 404;
	log_emit_str(LOGL_ERROR, &lc, "two\nlines");
	text = written();
	cr_assert_null(strstr(text, "hidden"));
	cr_assert(strstr(text, " error \"two\\nlines\" command=\"c md\" "
	    "status=404\n") != NULL, "text line: %s", text);
	cr_assert_eq(strchr(text, '\n'), text + strlen(text) - 1);
	free(text);
}

/* A text value that looks like more fields is quoted, so it stays one. */
Test(log, text_values_cannot_pass_for_fields)
{
	struct log_ctx lc = LOG_CTX_INIT;
	char *text;

	log_init(LOGL_INFO, LOGF_TEXT, "svc");
	lc.command = "ok status=500";
	lc.plugin = "plain";
	log_emit_str(LOGL_INFO, &lc, "hi request_id=0");
	text = written();
	cr_assert(strstr(text, " info \"hi request_id=0\" service=svc "
	    "command=\"ok status=500\" plugin=plain\n") != NULL,
	    "text line: %s", text);
	free(text);
}

/* ---------------------------------------------------------------- pipe */

#define PIPE_THREADS 4
#define PIPE_BATCHES 60
#define PIPE_LINES 30

/* One writer: batches of long buffered lines, flushed per batch, as an
 * event loop does. */
static void *
pipe_writer(void *arg)
{
	char pad[1200];
	int t = (int)(intptr_t)arg;

	memset(pad, 'a' + t, sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	log_thread_buffer(1);
	for (int b = 0; b < PIPE_BATCHES; b++) {
		for (int i = 0; i < PIPE_LINES; i++)
			log_emit(LOGL_INFO, NULL, "t%d b%d i%d %s", t, b, i, pad);
		log_flush();
	}
	log_thread_buffer(0);
	return NULL;
}

struct pipe_reader {
	int fd;
	char *text;
	size_t len, cap;
};

/* Read the pipe in small pieces until EOF, so that writers find it full. */
static void *
pipe_reader_main(void *arg)
{
	struct pipe_reader *r = arg;
	ssize_t n;

	for (;;) {
		if (r->len + 512 > r->cap) {
			r->cap = r->cap ? 2 * r->cap : 1 << 20;
			r->text = realloc(r->text, r->cap);
		}
		if ((n = read(r->fd, r->text + r->len, 256)) <= 0)
			break;
		r->len += (size_t)n;
	}
	r->text[r->len] = '\0';
	return NULL;
}

/* Batches of several threads written to a pipe that is often full: every
 * line arrives whole (a pipe keeps only writes of PIPE_BUF bytes whole). */
Test(log, lines_of_many_threads_stay_whole_on_a_pipe, .timeout = 60)
{
	pthread_t w[PIPE_THREADS], rt;
	struct pipe_reader r = { -1, NULL, 0, 0 };
	int fds[2], lines = 0;
	char *line, *next;

	cr_assert_eq(pipe(fds), 0);
	cr_assert(dup2(fds[1], STDERR_FILENO) >= 0);
	close(fds[1]);
	r.fd = fds[0];
	cr_assert_eq(pthread_create(&rt, NULL, pipe_reader_main, &r), 0);
	for (int t = 0; t < PIPE_THREADS; t++)
		cr_assert_eq(pthread_create(&w[t], NULL, pipe_writer,
		    (void *)(intptr_t)t), 0);
	for (int t = 0; t < PIPE_THREADS; t++)
		pthread_join(w[t], NULL);
	/* EOF for the reader: the pipe's last write end is stderr. */
	dup2(saved_stderr, STDERR_FILENO);
	pthread_join(rt, NULL);
	close(fds[0]);

	for (line = r.text; *line != '\0'; line = next) {
		struct json_tokener *tok = json_tokener_new();
		json_object *j;
		size_t len;

		next = strchr(line, '\n');
		cr_assert_not_null(next, "a line without its end");
		*next++ = '\0';
		len = strlen(line);
		j = json_tokener_parse_ex(tok, line, (int)len);
		cr_assert(j != NULL && (size_t)json_tokener_get_parse_end(tok) ==
		    len, "line %d mixed up: %.120s", lines, line);
		json_object_put(j);
		json_tokener_free(tok);
		lines++;
	}
	cr_assert_eq(lines, PIPE_THREADS * PIPE_BATCHES * PIPE_LINES);
	free(r.text);
	/* teardown() restores stderr again and unlinks the unused file. */
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Count the lines of text holding `what`. */
static int
count_lines(const char *text, const char *what)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, what)) != NULL; p++)
		n++;
	return n;
}

/* A client's error lines pass in a burst, then are held back per uid;
 * another uid has its own bucket; the next line let through after a
 * refill is preceded by one "suppressed N" line with the count. */
Test(log, client_lines_are_rate_limited_per_uid)
{
	struct log_ctx a = LOG_CTX_INIT, b = LOG_CTX_INIT;
	char *text;
	int64_t t0;
	int held, tries = 0;

	a.uid = 1000;
	b.uid = 1001;
	log_limit_init(10, 5);
	for (int i = 0; i < 50; i++)
		log_client_str(LOGL_WARN, &a, "flood-a");
	log_client_str(LOGL_WARN, &b, "line-b");
	text = written();
	/* 5 at once, and at most one more if 100 ms passed meanwhile. */
	cr_assert(count_lines(text, "flood-a") >= 5 &&
	    count_lines(text, "flood-a") <= 6, "%s", text);
	cr_assert_eq(count_lines(text, "line-b"), 1, "%s", text);
	cr_assert_eq(count_lines(text, "suppressed"), 0, "%s", text);
	free(text);
	/* 10 a second: one token within 100 ms (wait up to 2 s). */
	t0 = mono_ms();
	do {
		tries++;
		log_client_str(LOGL_WARN, &a, "later-a");
		text = written();
		if (count_lines(text, "later-a") > 0)
			break;
		free(text);
		text = NULL;
		usleep(20000);
	} while (mono_ms() - t0 < 2000);
	cr_assert_not_null(text, "no line let through after 2 s");
	cr_assert_eq(count_lines(text, "suppressed"), 1, "%s", text);
	cr_assert_not_null(strstr(text, "\"uid\":1000"), "%s", text);
	/* 44 or 45 of the flood, and the later lines held before it. */
	cr_assert_eq(sscanf(strstr(text, "suppressed "), "suppressed %d",
	    &held), 1);
	cr_assert(held >= 44 && held <= 45 + tries - 1, "held %d after %d "
	    "tries: %s", held, tries, text);
	free(text);
	log_limit_init(0, 1);
	for (int i = 0; i < 50; i++)
		log_client_str(LOGL_WARN, &a, "unlimited");
	text = written();
	cr_assert_eq(count_lines(text, "unlimited"), 50);
	free(text);
}

/* A line carries the time it is written, whatever time the caller saw
 * (a loop's turn began before the inline call it logs). */
Test(log, line_time_is_the_time_of_writing)
{
	struct log_ctx lc = LOG_CTX_INIT;
	char *text;

	lc.unix_ms = 1000; /* 1970-01-01T00:00:01 */
	log_emit_str(LOGL_INFO, &lc, "when");
	text = written();
	cr_assert_null(strstr(text, "1970-"), "%s", text);
	cr_assert_not_null(strstr(text, "\"timestamp\":\"20"), "%s", text);
	free(text);
}

/* log_timestamp() computes the civil date itself (the fatal-signal line
 * needs it without gmtime_r): it must agree with gmtime_r everywhere,
 * leap days and century years included. */
Test(log, timestamp_agrees_with_gmtime)
{
	static const long long fixed[] = { 0, 999, 951782400123LL,
	    951868799999LL, 4102444799999LL, 4107542400000LL,
	    253402300799999LL };
	char got[32], want[96];
	uint64_t r = 88172645463325252ULL;

	for (int i = 0; i < 200000; i++) {
		long long ms;
		time_t t;
		struct tm tm;

		if (i < (int)(sizeof(fixed) / sizeof(fixed[0]))) {
			ms = fixed[i];
		} else {
			r ^= r << 13;
			r ^= r >> 7;
			r ^= r << 17;
			ms = (long long)(r % 253402300800000ULL);
		}
		t = (time_t)(ms / 1000);
		gmtime_r(&t, &tm);
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
		log_timestamp(got, sizeof(got), ms);
		cr_assert_str_eq(got, want, "%lld ms", ms);
	}
}
