/*
 * test_alloc.c - out-of-memory paths under an allocation-failure countdown
 * (failalloc.h), after sqlite's do_malloc_test: each case runs one
 * operation with the nth allocation failing, for n = 1, 2, ... until a run
 * completes without reaching the failure, and checks every time that the
 * operation returned the error its header promises, that it did not crash,
 * that it leaked nothing and that its objects can still be used and freed;
 * then that the run that completed gave the normal result.
 *
 * Only the allocations of the host code and of this file can fail (see
 * failalloc.h): json-c objects, libc's and plugins' allocations cannot.
 * Functions whose only allocations are json-c's (request_parse) or that
 * allocate nothing (frame_next, ...) are checked to make none of ours.
 *
 * Leaks: in the ASan build each step ends with an explicit LeakSanitizer
 * check, since a leak reported when a Criterion worker exits fails no
 * test.  And tests/lsan.supp suppresses every leak whose allocation stack
 * goes through libcriterion.so, which is every allocation a test makes on
 * Criterion's thread: so each case runs on a thread of its own, whose
 * allocations the suppression does not match, and its checks (check(),
 * not cr_assert, which must not run off the test's thread) jump back to
 * that thread's start; the test then reports them.  Case c00 proves that a
 * leak made that way is caught.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "api.h"
#include "buf.h"
#include "clock.h"
#include "config.h"
#include "dispatch.h"
#include "failalloc.h"
#include "fixture.h"
#include "frame.h"
#include "generation.h"
#include "invocation.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "envelope.h"
#include "request.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define GOOD_SO CMDHOST_BUILD_DIR "/tests/plugins/good.so"
#define GOOD_COMMANDS 9
/* A countdown that has not completed by then never will. */
#define MAX_STEPS 1000

static const char *const good_commands[GOOD_COMMANDS] = {
	"test.echo", "test.fields", "test.validate", "test.fail",
	"test.fail500", "test.noreply", "test.created", "test.sleep",
	"test.config"
};

static char tmpdir[64];
static char plugin_dir[128]; /* good.so for the registry cases */
static char copy_dir[128];

/* Per test (on Criterion's thread): the temporary directories; no log
 * line at all (the level is above every level), since each failing step
 * logs what it refused. */
static void
setup(void)
{
	log_init(LOGL_ERROR + 1, LOGF_TEXT, NULL);
	fixture_mkdtemp(tmpdir, sizeof(tmpdir), "alloc");
	fixture_subdir(plugin_dir, sizeof(plugin_dir), tmpdir, "plugins");
	fixture_subdir(copy_dir, sizeof(copy_dir), tmpdir, "copies");
}

static void
teardown(void)
{
	failalloc_disarm();
	fixture_rmtree(tmpdir);
}

TestSuite(alloc, .init = setup, .fini = teardown);

/* ------------------------------------------------------------ the driver */

/* The case running, the step (its n; 0 outside the countdown), and the
 * first check that failed, with where to jump back to. */
static const char *cur_what;
static int cur_n;
static char check_why[1024];
static jmp_buf check_jmp;

static void check_failed(int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));

/* Record why, disarm, and leave the case (its thread's start). */
static void
check_failed(int line, const char *fmt, ...)
{
	va_list ap;
	int at;

	failalloc_disarm();
	at = snprintf(check_why, sizeof(check_why), "test_alloc.c:%d: %s, "
	    "step n=%d: ", line, cur_what, cur_n);
	if (at < 0 || (size_t)at >= sizeof(check_why))
		at = 0;
	va_start(ap, fmt);
	vsnprintf(check_why + at, sizeof(check_why) - (size_t)at, fmt, ap);
	va_end(ap);
	longjmp(check_jmp, 1);
}

/* The asserts of case threads. */
#define check(cond) ((cond) ? (void)0 : check_failed(__LINE__, "%s", #cond))
#define checkf(cond, ...) \
	((cond) ? (void)0 : check_failed(__LINE__, __VA_ARGS__))

/* In the ASan build: nothing allocated on a case thread is unreachable. */
static void
leak_check(void)
{
#ifdef HAVE_LSAN
	checkf(__lsan_do_recoverable_leak_check() == 0, "memory leaked (see "
	    "LeakSanitizer's report above)");
#endif
}

/*
 * One case: setup() once, then step(n) for n = 1, 2, ... until a step in
 * which the failure did not fire.  A step sets up what it needs, calls
 * failalloc_arm(n), runs the operation, failalloc_disarm()s, checks the
 * outcome either way and frees everything.
 */
struct alloc_case {
	const char *what;
	void (*setup)(void);    /* NULL: none */
	void (*step)(int n);
	void (*teardown)(void); /* NULL: none */
	int completed;          /* out: the n of the step that completed */
};

static void *
case_main(void *arg)
{
	struct alloc_case *c = arg;

	if (setjmp(check_jmp) != 0)
		return NULL; /* check_why says what failed */
	cur_n = 0;
	if (c->setup != NULL)
		c->setup();
	for (int n = 1; c->completed == 0; n++) {
		checkf(n <= MAX_STEPS, "still failing after %d steps",
		    MAX_STEPS);
		cur_n = n;
		c->step(n);
		failalloc_disarm(); /* in case the step did not */
		leak_check();
		if (!failalloc_hit())
			c->completed = n;
	}
	cur_n = 0;
	if (c->teardown != NULL)
		c->teardown();
	leak_check();
	return NULL;
}

/* Run case c on a thread of its own; fail the test if one of its checks
 * failed, or if no allocation failed at all (then the countdown tested
 * nothing: is failalloc's --wrap in the link?). */
static void
run_case(struct alloc_case *c)
{
	pthread_t t;

	cur_what = c->what;
	check_why[0] = '\0';
	c->completed = 0;
	cr_assert_eq(pthread_create(&t, NULL, case_main, c), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	failalloc_disarm();
	cr_assert(check_why[0] == '\0', "%s", check_why);
	cr_assert_gt(c->completed, 1, "%s: no allocation was failed (is the "
	    "test linked with failalloc's -Wl,--wrap?)", c->what);
	fprintf(stderr, "alloc: %s: allocations 1..%d failed cleanly, n=%d "
	    "completed\n", c->what, c->completed - 1, c->completed);
}

#define RUN(what, ...) do {                                              \
	struct alloc_case c_ = { what, __VA_ARGS__, 0 };                \
	run_case(&c_);                                                  \
} while (0)

/* Run fn with its first allocation armed to fail: it must make none of
 * its own (on Criterion's thread: cr_assert is fine here). */
static void
expect_no_allocation(const char *what, void (*fn)(void))
{
	failalloc_arm(1);
	fn();
	cr_assert_not(failalloc_disarm(), "%s made an allocation of its own: "
	    "give it a countdown case", what);
}

/* ------------------------------------------------------------ helpers */

/* Entries of dir (not . and ..), or -1. */
static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* dl_iterate_phdr(): count the objects mapped from copy_dir in *arg. */
static int
count_copy(struct dl_phdr_info *info, size_t size, void *arg)
{
	size_t n = strlen(copy_dir);

	(void)size;
	if (info->dlpi_name != NULL && strncmp(info->dlpi_name, copy_dir,
	    n) == 0 && info->dlpi_name[n] == '/')
		(*(int *)arg)++;
	return 0;
}

/* How many private copies of plugins are still mapped: each one is a
 * generation that was never unloaded. */
static int
loaded_copies(void)
{
	int n = 0;

	dl_iterate_phdr(count_copy, &n);
	return n;
}

/* Nothing a load made is left: no private copy on disk or mapped. */
static void
check_nothing_loaded(void)
{
	checkf(count_entries(copy_dir) == 0, "a private copy is left in %s",
	    copy_dir);
	checkf(loaded_copies() == 0, "a generation is still loaded");
}

/* The bytes fill() writes, over and over. */
static const char pattern[] = "abcdefghijklmnopqrstuvwxyz";

/* b gets len bytes of the pattern, then the first `consumed` are
 * consumed. */
static void
fill(struct buf *b, size_t len, size_t consumed)
{
	for (size_t i = 0; i < len; i++)
		check(buf_put(b, &pattern[i % 26], 1) == 0);
	buf_consume(b, consumed);
}

/* b holds exactly the bytes fill(len, consumed) left. */
static int
filled(const struct buf *b, size_t len, size_t consumed)
{
	if (buf_size(b) != len - consumed)
		return 0;
	for (size_t i = consumed; i < len; i++)
		if (buf_head(b)[i - consumed] != pattern[i % 26])
			return 0;
	return 1;
}

/* A new string of n bytes: c repeated. */
static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	check(s != NULL);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* The line at the end of b, from byte `from` of its content, parsed. */
static struct json_object *
parse_reply(const struct buf *b, size_t from)
{
	size_t n = buf_size(b) - from;
	char *line = malloc(n + 1);
	struct json_object *o;

	check(line != NULL);
	check(n > 0 && buf_head(b)[from + n - 1] == '\n');
	memcpy(line, buf_head(b) + from, n);
	line[n] = '\0';
	o = json_tokener_parse(line);
	checkf(o != NULL, "not JSON: %s", line);
	free(line);
	return o;
}

/* Member key of o (must be there). */
static struct json_object *
member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	checkf(json_object_object_get_ex(o, key, &v), "no \"%s\" in %s", key,
	    json_object_to_json_string(o));
	return v;
}

/* ------------------------------------------------------------ c00 */

#ifdef HAVE_LSAN
/* The address of c00's leak, hidden from LSan (a pointer it cannot
 * recognize), so that the test can free it once LSan has seen it. */
static uintptr_t hidden_leak;

static void *
leak_main(void *arg)
{
	char *p = malloc(64);

	(void)arg;
	if (p != NULL) {
		memset(p, 'x', 64);
		hidden_leak = ~(uintptr_t)p;
	}
	return NULL;
}

/* The leak check works on case threads, whatever tests/lsan.supp
 * suppresses and however run-tests.sh runs the binary: else every case
 * below would pass with its leaks. */
Test(alloc, c00_leaks_of_case_threads_are_caught)
{
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, leak_main, NULL), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_neq(hidden_leak, 0);
	fprintf(stderr, "alloc: c00: LeakSanitizer must report the 64 bytes "
	    "of leak_main() now; the leak is on purpose\n");
	cr_assert_neq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer "
	    "missed a leak: detect_leaks off, or suppressed?");
	free((void *)~hidden_leak);
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0);
}
#endif

/* ------------------------------------------------------------ buf */

/* buf_reserve: -ENOMEM, content kept, b still usable. */
static void
step_buf_reserve(int n)
{
	struct buf b = BUF_INIT;
	int rc;

	fill(&b, 500, 100);
	failalloc_arm(n);
	rc = buf_reserve(&b, 1000);
	if (failalloc_disarm()) {
		check(rc == -ENOMEM);
	} else {
		check(rc == 0);
		check(b.cap - b.len >= 1000);
	}
	check(filled(&b, 500, 100));
	check(buf_put(&b, "z", 1) == 0);
	buf_free(&b);
}

Test(alloc, c01_buf_reserve)
{
	RUN("buf_reserve", NULL, step_buf_reserve, NULL);
}

/* buf_put: -ENOMEM and b unchanged. */
static void
step_buf_put(int n)
{
	struct buf b = BUF_INIT;
	char *s = repeat('q', 600);
	int rc;

	fill(&b, 300, 10);
	failalloc_arm(n);
	rc = buf_put(&b, s, 600);
	if (failalloc_disarm()) {
		check(rc == -ENOMEM);
		check(filled(&b, 300, 10));
	} else {
		check(rc == 0);
		check(buf_size(&b) == 890);
		check(memcmp(buf_head(&b) + 290, s, 600) == 0);
	}
	free(s);
	buf_free(&b);
}

Test(alloc, c02_buf_put)
{
	RUN("buf_put", NULL, step_buf_put, NULL);
}

/* buf_printf: -ENOMEM and b unchanged. */
static void
step_buf_printf(int n)
{
	struct buf b = BUF_INIT;
	char *s = repeat('p', 700);
	int rc;

	fill(&b, 40, 0);
	failalloc_arm(n);
	rc = buf_printf(&b, "<%s:%d>", s, 42);
	if (failalloc_disarm()) {
		check(rc == -ENOMEM);
		check(filled(&b, 40, 0));
	} else {
		check(rc == 0);
		check(buf_size(&b) == 40 + 705);
		check(memcmp(buf_head(&b) + 40, "<ppp", 4) == 0);
		check(memcmp(buf_head(&b) + 40 + 701, ":42>", 4) == 0);
	}
	free(s);
	buf_free(&b);
}

Test(alloc, c03_buf_printf)
{
	RUN("buf_printf", NULL, step_buf_printf, NULL);
}

/* buf_put_json_string of a long string that grows the buffer several
 * times: -ENOMEM (b then holds a part: reset it), and b works after. */
static void
step_buf_put_json_string(int n)
{
	static const char chars[] = "ab\"c\\d\ne\tf\001g\x7fh i";
	struct buf b = BUF_INIT;
	char *s = repeat('x', 1500);
	int rc;

	for (size_t i = 0; i < 1500; i++)
		s[i] = chars[i % (sizeof(chars) - 1)];
	failalloc_arm(n);
	rc = buf_put_json_string(&b, s);
	if (failalloc_disarm()) {
		check(rc == -ENOMEM);
		buf_reset(&b);
		check(buf_puts(&b, "\"ok\"") == 0);
	} else {
		struct json_object *o;

		check(rc == 0);
		check(buf_put(&b, "", 1) == 0); /* NUL-terminate */
		o = json_tokener_parse(buf_head(&b));
		checkf(o != NULL && json_object_is_type(o, json_type_string),
		    "not a JSON string: %.80s", buf_head(&b));
		check(strcmp(json_object_get_string(o), s) == 0);
		json_object_put(o);
	}
	free(s);
	buf_free(&b);
}

Test(alloc, c04_buf_put_json_string)
{
	RUN("buf_put_json_string", NULL, step_buf_put_json_string, NULL);
}

/* ------------------------------------------------------------ request */

/* request_format_ok after an earlier reply: -ENOMEM leaves the earlier
 * bytes as they were and nothing of the new reply. */
static void
step_request_format_ok(int n)
{
	struct json_object *id = json_object_new_int(7);
	struct json_object *body = json_object_new_object();
	struct buf out = BUF_INIT;
	char *v = repeat('v', 300);
	int rc;

	json_object_object_add(body, "k", json_object_new_string(v));
	fill(&out, 450, 0);
	failalloc_arm(n);
	rc = request_format_ok(&out, id, 200, body);
	if (failalloc_disarm()) {
		check(rc == -ENOMEM);
		check(filled(&out, 450, 0));
	} else {
		struct json_object *o;

		check(rc == 0);
		o = parse_reply(&out, 450);
		check(json_object_get_int(member(o, "id")) == 7);
		check(json_object_get_int(member(o, "status")) == 200);
		check(json_object_equal(member(o, "body"), body));
		json_object_put(o);
	}
	free(v);
	buf_free(&out);
	json_object_put(id);
	json_object_put(body);
}

Test(alloc, c05_request_format_ok)
{
	RUN("request_format_ok", NULL, step_request_format_ok, NULL);
}

/* request_format_error with a message to escape, after an earlier
 * reply. */
static void
step_request_format_error(int n)
{
	struct json_object *id = json_object_new_string("abc");
	struct buf out = BUF_INIT;
	char *msg = repeat('m', 900);
	int rc;

	for (size_t i = 0; i < 900; i += 30)
		msg[i] = i % 60 ? '"' : '\n';
	fill(&out, 200, 50);
	failalloc_arm(n);
	rc = request_format_error(&out, id, 409, "conflict", msg);
	if (failalloc_disarm()) {
		check(rc == -ENOMEM);
		check(filled(&out, 200, 50));
	} else {
		struct json_object *o, *e;

		check(rc == 0);
		o = parse_reply(&out, 150);
		check(strcmp(json_object_get_string(member(o, "id")), "abc") ==
		    0);
		check(json_object_get_int(member(o, "status")) == 409);
		e = member(o, "error");
		check(strcmp(json_object_get_string(member(e, "code")),
		    "conflict") == 0);
		check(strcmp(json_object_get_string(member(e, "message")),
		    msg) == 0);
		json_object_put(o);
	}
	free(msg);
	buf_free(&out);
	json_object_put(id);
}

Test(alloc, c06_request_format_error)
{
	RUN("request_format_error", NULL, step_request_format_error, NULL);
}

/* request_put_request_id on a reply that fills the buffer's first 512
 * bytes, so that the request id makes it grow: -ENOMEM (then the reply is
 * to be dropped), and the buffer can be freed. */
static void
step_request_put_request_id(int n)
{
	struct json_object *id = json_object_new_int(7);
	char *s = repeat('s', 460), rid[REQUEST_ID_LEN + 1];
	struct json_object *body = json_object_new_string(s);
	struct buf out = BUF_INIT;
	int rc;

	request_id_make(rid, 1700000000000LL, 3, 42);
	check(request_format_ok(&out, id, 200, body) == 0);
	checkf(out.cap - out.len < 36, "the reply (%zu bytes, %zu free) no "
	    "longer makes the request id grow the buffer", buf_size(&out),
	    out.cap - out.len);
	failalloc_arm(n);
	rc = request_put_request_id(&out, rid);
	if (failalloc_disarm()) {
		check(rc == -ENOMEM);
	} else {
		struct json_object *o;

		check(rc == 0);
		o = parse_reply(&out, 0);
		check(strcmp(json_object_get_string(member(o, "request_id")),
		    rid) == 0);
		check(strcmp(json_object_get_string(member(o, "body")), s) ==
		    0);
		json_object_put(o);
	}
	free(s);
	buf_free(&out);
	json_object_put(id);
	json_object_put(body);
}

Test(alloc, c07_request_put_request_id)
{
	RUN("request_put_request_id", NULL, step_request_put_request_id, NULL);
}

/* The codec's parser allocates through json-c only; framing, the field
 * check and the id helpers allocate nothing. */
static void
parse_and_frame(void)
{
	static const char input[] = "{\"id\":\"x\",\"command\":\"a.b\","
	    "\"timeout_ms\":5}\r\n";
	static const cmdhost_field fields[] = { { "n", CMDHOST_INTEGER, 0 },
	    { 0 } };
	struct json_tokener *tok = request_tokener_new();
	struct request req;
	struct framer f;
	const char *l, *t;
	size_t len, used;
	char err[256], idb[48], rid[REQUEST_ID_LEN + 1];

	cr_assert_not_null(tok);
	frame_init(&f, 1024);
	cr_assert_eq(frame_next(&f, input, sizeof(input) - 1, &l, &len,
	    &used), FRAME_LINE);
	cr_assert_eq(request_parse(tok, l, len, &req, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(request_check_fields(fields, req.payload, err,
	    sizeof(err)), 0);
	cr_assert_not_null(request_id_format(req.id, idb, sizeof(idb)));
	t = request_id_text(req.id);
	cr_assert_str_eq(t, "\"x\"");
	request_id_make(rid, 1, 2, 3);
	request_fini(&req);
	json_tokener_free(tok);
}

Test(alloc, c08_request_parse_and_frame_make_none_of_ours)
{
	expect_no_allocation("request_parse/frame_next/request_check_fields",
	    parse_and_frame);
}

/* The envelope reader, on an ordinary line: no allocation at all (no
 * json-c either: no tree is made unless asked). */
static void
scan_envelope(void)
{
	static const char line[] = "{\"id\":\"x\",\"command\":\"a.b\","
	    "\"timeout_ms\":5,\"payload\":{\"n\":1,\"s\":\"t\"},"
	    "\"idempotency_key\":\"k\"}";
	static const cmdhost_field fields[] = { { "n", CMDHOST_INTEGER, 1 },
	    { "s", CMDHOST_STRING, 0 }, { 0 } };
	struct json_tokener *tok;
	struct request req;
	char err[256];

	failalloc_disarm();
	tok = request_tokener_new();
	cr_assert_not_null(tok);
	failalloc_arm(1);
	cr_assert_eq(envelope_scan(tok, line, sizeof(line) - 1, &req, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(envelope_check_fields(&req, fields, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_null(req.payload);
	cr_assert_str_eq(request_echo_id(&req), "\"x\"");
	request_fini(&req);
	cr_assert_not(failalloc_disarm(), "envelope_scan allocated");
	failalloc_arm(1);
	json_tokener_free(tok);
}

Test(alloc, c08b_envelope_scan_makes_none)
{
	expect_no_allocation("envelope_scan/envelope_check_fields",
	    scan_envelope);
}

/* ------------------------------------------------------------ log */

/* log_fragment: NULL. */
static void
step_log_fragment(int n)
{
	struct log_ctx lc = LOG_CTX_INIT;
	char *frag;

	lc.command = "test.echo";
	lc.plugin = "good";
	lc.version = "1.0.0";
	lc.generation = 3;
	failalloc_arm(n);
	frag = log_fragment(&lc);
	if (failalloc_disarm()) {
		check(frag == NULL);
	} else {
		check(frag != NULL);
		checkf(strstr(frag, "test.echo") != NULL &&
		    strstr(frag, "1.0.0") != NULL, "fragment \"%s\"", frag);
	}
	free(frag);
}

Test(alloc, c09_log_fragment)
{
	RUN("log_fragment", NULL, step_log_fragment, NULL);
}

/* log_thread_buffer(1): -1, and lines are then written at once; off is
 * fine either way. */
static void
step_log_thread_buffer(int n)
{
	int rc;

	failalloc_arm(n);
	rc = log_thread_buffer(1);
	if (failalloc_disarm())
		check(rc == -1);
	else
		check(rc == 0);
	log_emit_str(LOGL_ERROR, NULL, "not written: below the threshold");
	log_flush();
	check(log_thread_buffer(0) == 0);
}

Test(alloc, c10_log_thread_buffer)
{
	RUN("log_thread_buffer", NULL, step_log_thread_buffer, NULL);
}

/* ------------------------------------------------------------ metrics */

static void
step_metrics_cmd_new(int n)
{
	struct cmd_stats *s;

	failalloc_arm(n);
	s = metrics_cmd_new("test.echo");
	if (failalloc_disarm()) {
		check(s == NULL);
	} else {
		check(s != NULL);
		check(strcmp(s->name, "test.echo") == 0);
		metrics_cmd_record(s, 200, 5);
		check(metrics_cmd_calls(s) == 1);
	}
	metrics_cmd_free(s);
}

Test(alloc, c11_metrics_cmd_new)
{
	RUN("metrics_cmd_new", NULL, step_metrics_cmd_new, NULL);
}

/* ------------------------------------------------------------ config */

/* config_init: -ENOMEM with nothing held (config_fini is still fine). */
static void
step_config_init(int n)
{
	struct config cfg;
	int rc;

	memset(&cfg, 0xa5, sizeof(cfg));
	failalloc_arm(n);
	rc = config_init(&cfg);
	if (failalloc_disarm()) {
		check(rc == -ENOMEM);
		check(cfg.socket == NULL && cfg.plugin_dir == NULL &&
		    cfg.service == NULL && cfg.nats.url == NULL &&
		    cfg.nats.js_stream == NULL);
	} else {
		check(rc == 0);
		check(strcmp(cfg.socket, "cmdhost.sock") == 0);
		check(strcmp(cfg.nats.js_durable, "cmdhost") == 0);
	}
	config_fini(&cfg);
}

Test(alloc, c12_config_init)
{
	RUN("config_init", NULL, step_config_init, NULL);
}

/* config_set_string: -ENOMEM and the field unchanged. */
static void
step_config_set_string(int n)
{
	char *field = strdup("old");
	int rc;

	check(field != NULL);
	failalloc_arm(n);
	rc = config_set_string(&field, "new");
	if (failalloc_disarm()) {
		check(rc == -ENOMEM);
		check(strcmp(field, "old") == 0);
	} else {
		check(rc == 0);
		check(strcmp(field, "new") == 0);
	}
	free(field);
}

Test(alloc, c13_config_set_string)
{
	RUN("config_set_string", NULL, step_config_set_string, NULL);
}

/* config_set of a string, the uid list and a [nats] string: -1 with
 * "KEY: out of memory", and the key keeps its value. */
static void
step_config_set(int n)
{
	static const char *const set[][3] = {
		{ "host", "socket", "/run/alloc-test.sock" },
		{ "host", "admin_uids", "0, 1 2" },
		{ "nats", "url", "nats://10.0.0.1:4222" },
	};
	struct config cfg;
	char err[256] = "";
	size_t i;
	int rc = 0;

	check(config_init(&cfg) == 0);
	failalloc_arm(n);
	for (i = 0; i < 3; i++)
		if ((rc = config_set(&cfg, set[i][0], set[i][1], set[i][2], err,
		    sizeof(err))) != 0)
			break;
	if (failalloc_disarm()) {
		check(rc == -1 && i < 3);
		checkf(strstr(err, set[i][1]) != NULL &&
		    strstr(err, "out of memory") != NULL, "err \"%s\"", err);
		if (i == 0)
			check(strcmp(cfg.socket, "cmdhost.sock") == 0);
		else if (i == 1)
			check(cfg.n_admin_uids == 0);
		else
			check(strcmp(cfg.nats.url, "nats://127.0.0.1:4222") ==
			    0);
	} else {
		checkf(rc == 0, "%s", err);
		check(strcmp(cfg.socket, "/run/alloc-test.sock") == 0);
		check(cfg.n_admin_uids == 3 && cfg.admin_uids[2] == 2);
		check(strcmp(cfg.nats.url, "nats://10.0.0.1:4222") == 0);
	}
	config_fini(&cfg);
}

Test(alloc, c14_config_set)
{
	RUN("config_set", NULL, step_config_set, NULL);
}

static char ini_path[192];

/* A file with every kind of key that allocates. */
static void
write_ini(void)
{
	static const char text[] =
	    "[host]\n"
	    "socket = /run/alloc-test.sock\n"
	    "plugin_dir = /usr/lib/cmdhost/plugins\n"
	    "service = alloc-test\n"
	    "admin_uids = 0, 1\n"
	    "[plugin:good]\n"
	    "greeting = hello\n"
	    "other = x\n"
	    "[plugin:second]\n"
	    "key = value\n"
	    "[nats]\n"
	    "url = nats://127.0.0.1:4333\n"
	    "[jetstream]\n"
	    "stream = EVENTS\n";
	FILE *f;

	snprintf(ini_path, sizeof(ini_path), "%s/cmdhost.ini", tmpdir);
	check((f = fopen(ini_path, "w")) != NULL);
	check(fputs(text, f) >= 0);
	check(fclose(f) == 0);
}

/* config_load: -1 with "FILE...: out of memory"; cfg can be freed. */
static void
step_config_load(int n)
{
	struct config cfg;
	char err[512] = "";
	int rc;

	check(config_init(&cfg) == 0);
	failalloc_arm(n);
	rc = config_load(&cfg, ini_path, err, sizeof(err));
	if (failalloc_disarm()) {
		check(rc == -1);
		checkf(strncmp(err, ini_path, strlen(ini_path)) == 0 &&
		    strstr(err, "out of memory") != NULL, "err \"%s\"", err);
	} else {
		checkf(rc == 0, "%s", err);
		check(strcmp(cfg.service, "alloc-test") == 0);
		check(cfg.n_admin_uids == 2);
		check(strcmp(config_plugin_value(&cfg, "good", "other"),
		    "x") == 0);
		check(strcmp(config_plugin_value(&cfg, "second", "key"),
		    "value") == 0);
		check(cfg.nats.enabled && cfg.nats.js_enabled);
		check(strcmp(cfg.nats.js_stream, "EVENTS") == 0);
	}
	config_fini(&cfg);
}

Test(alloc, c15_config_load)
{
	RUN("config_load", write_ini, step_config_load, NULL);
}

/* ------------------------------------------------------------ invocation */

/* A generation and command of no plugin, for invocations; its release
 * hook must never run (the test keeps a reference). */
static struct generation fake_gen;
static struct command fake_cmd;
static atomic_int fake_released;

static void
fake_release(struct generation *g, void *arg)
{
	(void)g;
	(void)arg;
	atomic_fetch_add(&fake_released, 1);
}

static void
fake_setup(void)
{
	memset(&fake_gen, 0, sizeof(fake_gen));
	memset(&fake_cmd, 0, sizeof(fake_cmd));
	atomic_init(&fake_gen.refs, 1);
	fake_gen.name = (char *)"fake";
	fake_gen.version = (char *)"1";
	fake_gen.release = fake_release;
	snprintf(fake_cmd.name, sizeof(fake_cmd.name), "fake.cmd");
	fake_cmd.gen = &fake_gen;
	atomic_store(&fake_released, 0);
}

/* The test's own reference is the only one left. */
static void
check_fake_refs(void)
{
	check(atomic_load(&fake_gen.refs) == 1);
	check(atomic_load(&fake_released) == 0);
}

/* A request {"id": <60 characters>, "payload": {...}}: longer than an
 * invocation's id_buf, so that its text is copied. */
static struct json_object *
long_id_request(struct json_object **id, struct json_object **payload)
{
	struct json_object *root = json_object_new_object();
	char *s = repeat('i', 60);

	*id = json_object_new_string(s);
	*payload = json_tokener_parse("{\"a\":[1,2,3],\"s\":\"x\"}");
	json_object_object_add(root, "id", *id);
	json_object_object_add(root, "payload", *payload);
	free(s);
	return root;
}

/* invocation_init: -ENOMEM, inv holds nothing, and root and the
 * reference are still the caller's. */
static void
step_invocation_init(int n)
{
	struct json_object *id, *payload, *root = long_id_request(&id,
	    &payload);
	struct invocation inv;
	int rc;

	generation_hold(&fake_gen); /* the caller's, for the call */
	failalloc_arm(n);
	rc = invocation_init(&inv, &fake_cmd, root, id, payload, 1, 2, 3);
	if (failalloc_disarm()) {
		check(rc == -ENOMEM);
		check(inv.root == NULL && inv.cmd == NULL &&
		    inv.id_text == NULL);
		check(atomic_load(&fake_gen.refs) == 2);
		generation_release(&fake_gen);
		json_object_put(root);
	} else {
		check(rc == 0);
		check(inv.id_text != inv.id_buf);
		check(strcmp(inv.id_text, request_id_text(id)) == 0);
		check(strlen(inv.request_id) == REQUEST_ID_LEN);
		invocation_fini(&inv);
	}
	check_fake_refs();
}

Test(alloc, c16_invocation_init)
{
	RUN("invocation_init", fake_setup, step_invocation_init, NULL);
}

/* invocation_new: NULL, the same way. */
static void
step_invocation_new(int n)
{
	struct json_object *id, *payload, *root = long_id_request(&id,
	    &payload);
	struct invocation *inv;

	generation_hold(&fake_gen);
	failalloc_arm(n);
	inv = invocation_new(&fake_cmd, root, id, payload, 1, 2, 3);
	if (failalloc_disarm()) {
		check(inv == NULL);
		check(atomic_load(&fake_gen.refs) == 2);
		generation_release(&fake_gen);
		json_object_put(root);
	} else {
		check(inv != NULL);
		check(strcmp(inv->id_text, request_id_text(id)) == 0);
		invocation_free(inv);
	}
	check_fake_refs();
}

Test(alloc, c17_invocation_new)
{
	RUN("invocation_new", fake_setup, step_invocation_new, NULL);
}

/* invocation_set_error: the result is set with `oom` and no strings
 * (formatters use static text), the earlier body dropped. */
static void
step_invocation_set_error(int n)
{
	struct json_object *root = json_object_new_object();
	struct invocation inv;

	generation_hold(&fake_gen);
	check(invocation_init(&inv, &fake_cmd, root, NULL, root, 1, 2, 3) ==
	    0);
	inv.body = json_object_new_object(); /* an earlier result */
	failalloc_arm(n);
	invocation_set_error(&inv, 409, "conflict", "it conflicts");
	if (failalloc_disarm()) {
		check(inv.oom == 1);
		check(inv.code == NULL && inv.message == NULL);
	} else {
		check(inv.oom == 0);
		check(strcmp(inv.code, "conflict") == 0);
		check(strcmp(inv.message, "it conflicts") == 0);
	}
	check(inv.body == NULL);
	check(inv.status == 409 && inv.finished == 1);
	invocation_fini(&inv);
	check_fake_refs();
}

Test(alloc, c18_invocation_set_error)
{
	RUN("invocation_set_error", fake_setup, step_invocation_set_error,
	    NULL);
}

/* The plugin API's payload text: some text and its length, and the real
 * text on a later call. */
static void
step_api_payload_text(int n)
{
	static const char want[] = "{\"a\":[1,2,3],\"s\":\"x\"}";
	struct json_object *id, *payload, *root = long_id_request(&id,
	    &payload);
	const struct cmdhost_api *api = api_table();
	struct invocation inv;
	const char *text;
	size_t len = 12345;

	generation_hold(&fake_gen);
	check(invocation_init(&inv, &fake_cmd, root, NULL, payload, 1, 2,
	    3) == 0);
	failalloc_arm(n);
	text = api->ctx_payload_text(&inv.ctx, &len);
	if (failalloc_disarm()) {
		check(text != NULL);
		checkf(strlen(text) == len, "text \"%s\" with length %zu",
		    text, len);
		text = api->ctx_payload_text(&inv.ctx, &len);
	}
	checkf(strcmp(text, want) == 0, "text \"%s\"", text);
	check(len == strlen(want));
	invocation_fini(&inv);
	check_fake_refs();
}

Test(alloc, c19_api_payload_text)
{
	RUN("api ctx_payload_text", fake_setup, step_api_payload_text, NULL);
}

/* ------------------------------------------------------------ loader */

static struct config cfg;

static void
cfg_setup(void)
{
	char err[256];

	check(config_init(&cfg) == 0);
	/* Small, and no inline budget: a slow step on a busy machine must
	 * not move a command to the pool half-way through a countdown. */
	checkf(config_set_host(&cfg, "pool_threads", "2", err,
	    sizeof(err)) == 0, "%s", err);
	checkf(config_set_host(&cfg, "inline_budget_us", "0", err,
	    sizeof(err)) == 0, "%s", err);
	/* The idempotency store goes in the test's own directory. */
	checkf(config_set_host(&cfg, "state_dir", tmpdir, err,
	    sizeof(err)) == 0, "%s", err);
}

static void
cfg_teardown(void)
{
	config_fini(&cfg);
}

/* loader_load: -1 with "out of memory", nothing loaded and nothing left
 * on disk; a load survives only its copy of the name for name_out. */
static void
step_loader_load(int n)
{
	struct generation *g = NULL;
	char err[1024] = "", *name = NULL;
	int rc;

	failalloc_arm(n);
	rc = loader_load(&cfg, GOOD_SO, "good.so", copy_dir, &g, &name, err,
	    sizeof(err));
	if (failalloc_disarm() && rc != 0) {
		check(rc == -1);
		check(g == NULL);
		checkf(strstr(err, "out of memory") != NULL, "err \"%s\"", err);
		check_nothing_loaded();
	} else {
		checkf(rc == 0, "%s", err);
		check(g != NULL && g->n_commands == GOOD_COMMANDS);
		check(strcmp(g->name, "good") == 0);
		for (size_t i = 0; i < GOOD_COMMANDS; i++)
			check(generation_command(g, good_commands[i]) != NULL);
		/* The copy of the name for name_out is the one thing a
		 * load does without. */
		if (failalloc_hit())
			check(name == NULL);
		else
			check(name != NULL && strcmp(name, "good") == 0);
		generation_release(g);
	}
	free(name);
	check_nothing_loaded();
}

Test(alloc, c20_loader_load)
{
	cr_assert_eq(access(GOOD_SO, R_OK), 0, "%s is not built", GOOD_SO);
	RUN("loader_load", cfg_setup, step_loader_load, cfg_teardown);
}

/* ------------------------------------------------------------ registry */

/* Put a copy of good.so in plugin_dir (Criterion's thread). */
static void
install_good(void)
{
	char dst[256], block[65536];
	FILE *in, *out;
	size_t n;

	snprintf(dst, sizeof(dst), "%s/good.so", plugin_dir);
	cr_assert_not_null(in = fopen(GOOD_SO, "rb"), "%s is not built",
	    GOOD_SO);
	cr_assert_not_null(out = fopen(dst, "wb"));
	while ((n = fread(block, 1, sizeof(block), in)) > 0)
		cr_assert_eq(fwrite(block, 1, n, out), n);
	fclose(in);
	cr_assert_eq(fclose(out), 0);
}

/* registry_new: NULL with errno ENOMEM. */
static void
step_registry_new(int n)
{
	struct registry *r;
	int e;

	failalloc_arm(n);
	r = registry_new(&cfg, plugin_dir, copy_dir);
	e = errno;
	if (failalloc_disarm()) {
		check(r == NULL);
		check(e == ENOMEM);
	} else {
		check(r != NULL);
		check(registry_reader(r) == 0);
		registry_free(r);
	}
}

Test(alloc, c21_registry_new)
{
	RUN("registry_new", cfg_setup, step_registry_new, cfg_teardown);
}

/* All of good's commands are published in r. */
static int
all_published(struct registry *r, int reader)
{
	for (size_t i = 0; i < GOOD_COMMANDS; i++) {
		struct command *c = registry_lookup(r, reader,
		    good_commands[i]);

		if (c == NULL)
			return 0;
		generation_release(c->gen);
	}
	return 1;
}

/* The length of report's array `key`. */
static size_t
report_len(struct json_object *report, const char *key)
{
	return json_object_array_length(member(report, key));
}

/* The commands of good in r that have no log fragment, or -1 if good is
 * not published. */
static int
missing_fragments(struct registry *r, int reader)
{
	struct command *c = registry_lookup(r, reader, "test.echo");
	int missing = 0;

	if (c == NULL)
		return -1;
	for (size_t i = 0; i < c->gen->n_commands; i++)
		missing += c->gen->commands[i].log_frag == NULL;
	generation_release(c->gen);
	return missing;
}

/* registry_scan of a directory with good.so: the file is refused (one
 * failure, reported with "out of memory", nothing published), or loaded
 * without one log fragment or without keeping its name, which only costs
 * speed (see load_one); and a second scan with memory loads it. */
static void
step_registry_scan(int n)
{
	struct registry *r = registry_new(&cfg, plugin_dir, copy_dir);
	struct json_object *report = json_object_new_object();
	int failures, reader, plugins, commands, failed;

	check(r != NULL);
	reader = registry_reader(r);
	failalloc_arm(n);
	failures = registry_scan(r, report);
	if (failalloc_disarm() && failures != 0) {
		struct json_object *item;

		check(failures == 1);
		check(report_len(report, "failed") == 1);
		check(report_len(report, "loaded") == 0);
		item = json_object_array_get_idx(member(report, "failed"), 0);
		checkf(strstr(json_object_get_string(member(item, "error")),
		    "out of memory") != NULL, "report %s",
		    json_object_to_json_string(report));
		check(missing_fragments(r, reader) == -1);
		/* failed counts the entries that keep an error: none if
		 * even the file's entry could not be made. */
		registry_counts(r, &plugins, &commands, &failed);
		check(plugins == 0 && commands == 0 && failed <= 1);
		/* What failed is tried again, and loads now. */
		json_object_put(report);
		report = json_object_new_object();
		check(registry_scan(r, report) == 0);
		check(missing_fragments(r, reader) == 0);
	} else {
		int missing = missing_fragments(r, reader);

		checkf(failures == 0, "report %s",
		    json_object_to_json_string(report));
		/* A fragment lost, or (none lost) the name. */
		if (failalloc_hit())
			check(missing == 1 || missing == 0);
		else
			check(missing == 0);
	}
	check(report_len(report, "loaded") == 1);
	check(all_published(r, reader));
	registry_counts(r, &plugins, &commands, &failed);
	check(plugins == 1 && commands == GOOD_COMMANDS && failed == 0);
	json_object_put(report);
	registry_free(r);
	check_nothing_loaded();
}

Test(alloc, c22_registry_scan)
{
	install_good();
	RUN("registry_scan", cfg_setup, step_registry_scan, cfg_teardown);
}

/* registry_free with allocations failing: it still unloads everything. */
static void
step_registry_free(int n)
{
	struct registry *r = registry_new(&cfg, plugin_dir, copy_dir);

	check(r != NULL);
	check(registry_scan(r, NULL) == 0);
	check(loaded_copies() == 1);
	failalloc_arm(n);
	registry_free(r);
	failalloc_disarm();
	check_nothing_loaded();
}

Test(alloc, c23_registry_free)
{
	install_good();
	RUN("registry_free", cfg_setup, step_registry_free, cfg_teardown);
}

/* ------------------------------------------------------------ dispatch */

static struct daemon_stats dstats;

/* dispatch_new: NULL with the reason in err. */
static void
step_dispatch_new(int n)
{
	struct registry *r = registry_new(&cfg, plugin_dir, copy_dir);
	struct dispatch *d;
	char err[256] = "";

	check(r != NULL);
	failalloc_arm(n);
	d = dispatch_new(&cfg, r, &dstats, err, sizeof(err));
	if (failalloc_disarm()) {
		check(d == NULL);
		checkf(strstr(err, "out of memory") != NULL ||
		    strstr(err, strerror(ENOMEM)) != NULL, "err \"%s\"", err);
	} else {
		check(d != NULL);
		check(dispatch_stop(d, clock_mono_ns() + 5000000000LL) == 0);
		dispatch_free(d);
	}
	registry_free(r);
}

Test(alloc, c24_dispatch_new)
{
	RUN("dispatch_new", cfg_setup, step_dispatch_new, cfg_teardown);
}

/* What the calls of the dispatch cases share: a registry serving good.so,
 * the request parser, and each call's completion. */
static struct registry *reg;
static int reg_reader;
static struct json_tokener *tok;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done_calls;
static int reply_rc;
static struct buf reply_out = BUF_INIT;

static void
dispatch_setup(void)
{
	cfg_setup();
	check((reg = registry_new(&cfg, plugin_dir, copy_dir)) != NULL);
	reg_reader = registry_reader(reg);
	check(registry_scan(reg, NULL) == 0);
	check((tok = request_tokener_new()) != NULL);
}

static void
dispatch_teardown(void)
{
	json_tokener_free(tok);
	registry_free(reg);
	cfg_teardown();
}

/* done(c): format the reply, as a transport does. */
static void
on_done(struct call *c)
{
	int rc = dispatch_reply(c, &reply_out, 0);

	pthread_mutex_lock(&done_lock);
	reply_rc = rc;
	done_calls++;
	pthread_cond_signal(&done_cond);
	pthread_mutex_unlock(&done_lock);
}

/* Wait until done(c) ran `calls` times in all (10 s at most). */
static void
wait_done(int calls)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&done_lock);
	while (done_calls < calls)
		if (pthread_cond_timedwait(&done_cond, &done_lock, &ts) != 0)
			break;
	pthread_mutex_unlock(&done_lock);
	check(done_calls >= calls);
}

/* A test.echo request with a long id that wants its request id. */
static void
parse_request(struct request *req)
{
	char line[256], err[256] = "";
	char *id = repeat('d', 60);

	snprintf(line, sizeof(line), "{\"id\":\"%s\",\"command\":\"test.echo\","
	    "\"payload\":{\"x\":[1,2,3]},\"want_request_id\":true}", id);
	free(id);
	checkf(request_parse(tok, line, strlen(line), req, err,
	    sizeof(err)) == 0, "%s", err);
}

/* One call of test.echo, its nth allocation failing: either no call
 * (-1, 503 "unavailable", "out of memory", req unchanged), or a reply
 * that could not be formatted (-ENOMEM: dropped), or the echo with its
 * request id; then a call with memory works on the same dispatcher. */
static void
dispatch_step(int n, int pool_only)
{
	struct dispatch *d;
	struct dispatch_args a;
	struct request req;
	struct call *callp = NULL;
	const char *code = NULL;
	char err[256] = "";
	int status = 0, rc, hit;

	check((d = dispatch_new(&cfg, reg, &dstats, err, sizeof(err))) !=
	    NULL);
	memset(&a, 0, sizeof(a));
	a.reader = reg_reader;
	a.rid_ms = 1700000000000LL;
	a.rid_src = 1;
	a.rid_seq = (uint64_t)n;
	a.pid = a.uid = -1;
	a.pool_only = pool_only;
	a.done = on_done;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct json_object *o;

		parse_request(&req);
		buf_reset(&reply_out);
		done_calls = 0;
		reply_rc = 1;
		if (attempt == 0)
			failalloc_arm(n);
		rc = dispatch_call(d, &a, &req, &callp, &status, &code, err,
		    sizeof(err));
		if (rc == DISPATCH_PENDING)
			wait_done(1);
		hit = failalloc_disarm();
		check(callp == NULL);
		if (rc < 0) {
			check(attempt == 0 && hit);
			check(rc == -1 && status == 503);
			check(strcmp(code, "unavailable") == 0);
			check(strcmp(err, "out of memory") == 0);
			check(req.root != NULL && done_calls == 0);
			request_fini(&req);
			continue;
		}
		request_fini(&req);
		check(rc == (pool_only ? DISPATCH_PENDING : DISPATCH_DONE));
		check(done_calls == 1);
		if (reply_rc != 0) {
			check(attempt == 0 && hit);
			check(reply_rc == -ENOMEM);
			continue;
		}
		o = parse_reply(&reply_out, 0);
		check(json_object_get_int(member(o, "status")) == 200);
		check(strlen(json_object_get_string(member(o, "id"))) == 60);
		check(strlen(json_object_get_string(member(o,
		    "request_id"))) == REQUEST_ID_LEN);
		check(json_object_array_length(member(member(o, "body"),
		    "x")) == 3);
		json_object_put(o);
		break; /* the normal result: no second call needed */
	}
	check(dispatch_stop(d, clock_mono_ns() + 5000000000LL) == 0);
	dispatch_free(d);
	buf_free(&reply_out);
}

static void
step_dispatch_call_inline(int n)
{
	dispatch_step(n, 0);
}

Test(alloc, c25_dispatch_call_inline)
{
	install_good();
	RUN("dispatch_call (inline)", dispatch_setup, step_dispatch_call_inline,
	    dispatch_teardown);
}

static void
step_dispatch_call_pool(int n)
{
	dispatch_step(n, 1);
}

Test(alloc, c26_dispatch_call_on_the_pool)
{
	install_good();
	RUN("dispatch_call (pool)", dispatch_setup, step_dispatch_call_pool,
	    dispatch_teardown);
}
