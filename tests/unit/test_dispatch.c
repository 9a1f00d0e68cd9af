/*
 * test_dispatch.c - unit tests of dispatch.c: the one call path, with a
 * real registry over a temporary plugin directory (tests/plugins good.so
 * and hold.so), the in-process executor, and a fake owner.
 *
 * The owner's post() queues a call on a list that the test drains on its
 * own thread -- "the owner's thread" -- with dispatch_complete(), as an
 * event loop does.  Every done() is counted per call, so each case checks
 * the completion rule of dispatch.h: exactly one done per accepted call,
 * none for a call the owner abandoned first, and the status and reply
 * text of whoever answered first (the result, 503 or 504).
 *
 * hold.wait blocks a pool thread until the test writes a byte to the
 * plugin's release pipe, and says on another pipe that it started: so a
 * call can be kept pending, or a deadline made to pass before its result,
 * without timing guesses.  No test sleeps to wait: every wait is bounded
 * (WAIT_NS).  dispatch_stop() is the barrier after which no executor
 * callback can come; after it, each case checks that no late answer was
 * posted and that every call was freed (the generations' references are
 * back to the registry's).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "buf.h"
#include "clock.h"
#include "config.h"
#include "dispatch.h"
#include "fixture.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "request.h"
#include "thread.h"

#define TPLUGIN(name) CMDHOST_BUILD_DIR "/tests/plugins/" name ".so"
#define WAIT_NS (10 * 1000000000LL)
#define REPLY_MAX 1024

static char tmpdir[64];
static char plugin_dir[128];
static char copy_dir[128];
static struct config cfg;
static struct registry *reg;
static struct daemon_stats stats;
static struct dispatch *d;
static int reader;
static int release_pipe[2] = { -1, -1 };  /* test -> hold.wait */
static int started_pipe[2] = { -1, -1 };  /* hold.wait -> test */

/* Guards the records of calls completed off the test's thread (an owner
 * without post); changes are broadcast on done_cv. */
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv;

/* What the test knows of one call. */
struct rec {
	int id;
	struct call *c;        /* while pending, for abandon/force */
	atomic_int done;       /* done() runs */
	int status;            /* dispatch_status() inside done */
	char reply[REPLY_MAX]; /* dispatch_reply()'s line */
	pthread_t done_thread;
	int peer_gone;         /* abandon returned 0: done drops it */
	int abandon_won;       /* abandon returned 1: done never runs */
	int forced;            /* force was called */
	int closing;           /* abandon or force called: hands off */
	const char *command;
	int *outstanding;      /* the stress thread's count, or NULL */
	int64_t done_ns;       /* when done ran */
};

/* A fake owner: post() appends to a list the owner's thread drains. */
struct towner {
	struct dispatch_owner base;  /* first: dispatch posts &base */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct call_queue q;
	int n_posted;
	int bad_post;                /* post() came twice for a call */
};

static void
owner_post(struct dispatch_owner *o, struct call *c)
{
	struct towner *w = (struct towner *)(void *)o;

	pthread_mutex_lock(&w->lock);
	if (c->owner_slot != NULL)
		w->bad_post++; /* already on the list */
	c->owner_slot = w;
	STAILQ_INSERT_TAIL(&w->q, c, owner_link);
	w->n_posted++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void
owner_init(struct towner *w, int with_post)
{
	memset(w, 0, sizeof(*w));
	w->base.post = with_post ? owner_post : NULL;
	w->base.finished_msg = "test call finished";
	pthread_mutex_init(&w->lock, NULL);
	thread_cond_init(&w->cond);
	STAILQ_INIT(&w->q);
}

static void
owner_fini(struct towner *w)
{
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
}

/* Take every call posted to w and complete it here; with wait_ns > 0,
 * first wait up to that long for one.  Returns how many were completed. */
static int
drain(struct towner *w, int64_t wait_ns)
{
	struct call_queue q;
	struct call *c;
	int n = 0;

	pthread_mutex_lock(&w->lock);
	if (wait_ns > 0) {
		int64_t dl = clock_mono_ns() + wait_ns;

		while (STAILQ_EMPTY(&w->q)) {
			struct timespec ts = clock_mono_ts(dl);

			if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) ==
			    ETIMEDOUT)
				break;
		}
	}
	STAILQ_INIT(&q);
	STAILQ_CONCAT(&q, &w->q);
	pthread_mutex_unlock(&w->lock);
	while ((c = STAILQ_FIRST(&q)) != NULL) {
		STAILQ_REMOVE_HEAD(&q, owner_link);
		dispatch_complete(c);
		n++;
	}
	return n;
}

/* Drain w until r's done ran, WAIT_NS at most. */
static void
drain_until_done(struct towner *w, struct rec *r)
{
	int64_t dl = clock_mono_ns() + WAIT_NS;

	while (atomic_load(&r->done) == 0 && clock_mono_ns() < dl)
		drain(w, dl - clock_mono_ns());
	cr_assert_eq(atomic_load(&r->done), 1, "call %d: done ran %d times",
	    r->id, atomic_load(&r->done));
}

/* Wait until something is posted to w (not taken), WAIT_NS at most. */
static void
wait_posted(struct towner *w, int n)
{
	int64_t dl = clock_mono_ns() + WAIT_NS;
	int ok;

	pthread_mutex_lock(&w->lock);
	while (w->n_posted < n) {
		struct timespec ts = clock_mono_ts(dl);

		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) ==
		    ETIMEDOUT)
			break;
	}
	ok = w->n_posted >= n;
	pthread_mutex_unlock(&w->lock);
	cr_assert(ok, "nothing was posted in time");
}

/* The owner's completion: count, take the status and the reply (or drop
 * it when the peer is gone), note the thread. */
static void
on_done(struct call *c)
{
	struct rec *r = c->owner_arg;
	struct buf b = { 0 };

	pthread_mutex_lock(&done_mu);
	r->status = dispatch_status(c);
	if (r->peer_gone) {
		dispatch_drop(c);
		snprintf(r->reply, sizeof(r->reply), "(dropped)");
	} else if (dispatch_reply(c, &b, 0) == 0) {
		snprintf(r->reply, sizeof(r->reply), "%.*s", (int)buf_size(&b),
		    buf_head(&b));
	} else {
		snprintf(r->reply, sizeof(r->reply), "(out of memory)");
	}
	buf_free(&b);
	r->done_thread = pthread_self();
	r->done_ns = clock_mono_ns();
	r->c = NULL;
	if (r->outstanding != NULL)
		(*r->outstanding)--; /* on the owner's thread */
	atomic_fetch_add(&r->done, 1);
	pthread_cond_broadcast(&done_cv);
	pthread_mutex_unlock(&done_mu);
}

/* Wait until r's done ran (on some other thread), WAIT_NS at most. */
static void
wait_done(struct rec *r)
{
	int64_t dl = clock_mono_ns() + WAIT_NS;

	pthread_mutex_lock(&done_mu);
	while (atomic_load(&r->done) == 0) {
		struct timespec ts = clock_mono_ts(dl);

		if (pthread_cond_timedwait(&done_cv, &done_mu, &ts) ==
		    ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&done_mu);
	cr_assert_eq(atomic_load(&r->done), 1, "call %d: done ran %d times",
	    r->id, atomic_load(&r->done));
}

/*
 * Dispatch one request line for r through owner w (NULL: no owner) from
 * reader slot rd.  Returns dispatch_call()'s result; r->c is the pending
 * call when post gave one.  On -1, *status and *code say why (the test's
 * own when NULL) and err the message.  No assertion: any thread.
 */
static int
call_line(int rd, struct towner *w, struct rec *r, const char *line,
    int *status, const char **code, char *err, size_t errlen)
{
	struct json_tokener *tok = request_tokener_new();
	struct dispatch_args a;
	struct request req;
	struct call *c = NULL;
	int rc, st = 0;
	const char *cd = NULL;
	char e[256];

	if (tok == NULL)
		abort();
	memset(&req, 0, sizeof(req));
	if (request_parse(tok, line, strlen(line), &req, e, sizeof(e)) < 0)
		abort(); /* the test's lines are well-formed */
	memset(&a, 0, sizeof(a));
	a.reader = rd;
	a.rid_ms = clock_wall_ms();
	a.rid_src = 1;
	a.rid_seq = (uint64_t)r->id;
	a.pid = -1;
	a.uid = -1;
	a.owner = w != NULL ? &w->base : NULL;
	a.done = on_done;
	a.owner_arg = r;
	rc = dispatch_call(d, &a, &req, &c, &st, &cd, err ? err : e,
	    err ? errlen : sizeof(e));
	if (rc == DISPATCH_PENDING && c != NULL)
		r->c = c;
	if (status != NULL)
		*status = st;
	if (code != NULL)
		*code = cd;
	/* On success req.root was taken; on -1 it is still ours. */
	request_fini(&req);
	json_tokener_free(tok);
	return rc;
}

/* call_line() that must be accepted with result `want`. */
static void
call_ok(struct towner *w, struct rec *r, int id, const char *line, int want)
{
	int rc, st;
	const char *code;
	char err[256];

	r->id = id;
	rc = call_line(reader, w, r, line, &st, &code, err, sizeof(err));
	cr_assert_eq(rc, want, "%s: dispatch_call %d, want %d (%d %s: %s)",
	    line, rc, want, st, code ? code : "", rc < 0 ? err : "");
}

/* Let n hold.wait calls return. */
static void
release_holds(int n)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(write(release_pipe[1], "r", 1), 1);
}

/* Wait until n more hold.wait calls started. */
static void
wait_started(int n)
{
	int64_t dl = clock_mono_ns() + WAIT_NS;
	char byte;

	while (n > 0) {
		struct pollfd pfd = { started_pipe[0], POLLIN, 0 };
		int64_t left = (dl - clock_mono_ns()) / 1000000;

		cr_assert_gt(left, 0, "a hold.wait call did not start");
		if (read(started_pipe[0], &byte, 1) == 1) {
			n--;
			continue;
		}
		cr_assert(errno == EAGAIN || errno == EINTR);
		poll(&pfd, 1, (int)left);
	}
}

/* How many hold.wait calls started that wait_started() did not see. */
static int
unseen_starts(void)
{
	char buf[64];
	ssize_t n;
	int total = 0;

	while ((n = read(started_pipe[0], buf, sizeof(buf))) > 0)
		total += (int)n;
	return total;
}

/* The generation's references of command name: the registry's and the
 * look-up's are 2; more means a call still holds one. */
static long
refs_of(const char *name)
{
	struct command *cmd = registry_lookup(reg, reader, name);
	long n;

	cr_assert_not_null(cmd, "%s is not served", name);
	n = (long)atomic_load(&cmd->gen->refs);
	generation_release(cmd->gen);
	return n;
}

/* Install the file src in plugin_dir as `file`. */
static void
install(const char *src, const char *file)
{
	char dst[256], block[65536];
	int in, out;
	ssize_t n;

	snprintf(dst, sizeof(dst), "%s/%s", plugin_dir, file);
	in = open(src, O_RDONLY);
	cr_assert_geq(in, 0, "open %s: %s", src, strerror(errno));
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(out, 0, "open %s: %s", dst, strerror(errno));
	while ((n = read(in, block, sizeof(block))) > 0)
		cr_assert_eq(write(out, block, (size_t)n), n);
	cr_assert_eq(n, 0);
	close(in);
	cr_assert_eq(close(out), 0);
}

static void
setup(void)
{
	char ini[256], text[256], err[256];
	FILE *f;
	int failures;

	/* Quiet: the stress case answers thousands of 503s and 504s. */
	log_init(LOGL_ERROR + 1, LOGF_TEXT, NULL);
	thread_cond_init(&done_cv);
	memset(&stats, 0, sizeof(stats));
	fixture_mkdtemp(tmpdir, sizeof(tmpdir), "dispatch");
	fixture_subdir(plugin_dir, sizeof(plugin_dir), tmpdir, "plugins");
	fixture_subdir(copy_dir, sizeof(copy_dir), tmpdir, "copies");
	cr_assert_eq(pipe(release_pipe), 0);
	cr_assert_eq(pipe(started_pipe), 0);
	cr_assert_eq(fcntl(release_pipe[0], F_SETFL, O_NONBLOCK), 0);
	cr_assert_eq(fcntl(started_pipe[0], F_SETFL, O_NONBLOCK), 0);
	snprintf(text, sizeof(text), "[plugin:hold]\nrelease = %d\n"
	    "started = %d\n", release_pipe[0], started_pipe[1]);
	snprintf(ini, sizeof(ini), "%s/cmdhost.ini", tmpdir);
	cr_assert_not_null(f = fopen(ini, "w"));
	cr_assert_geq(fputs(text, f), 0);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(config_init(&cfg), 0);
	cr_assert_eq(config_load(&cfg, ini, err, sizeof(err)), 0, "%s", err);
	cfg.pool_threads = 4;
	/* The idempotency store goes in the test's own directory. */
	cr_assert_eq(config_set_string(&cfg.state_dir, tmpdir), 0);
	install(TPLUGIN("good"), "good.so");
	install(TPLUGIN("hold"), "hold.so");
	cr_assert_not_null(reg = registry_new(&cfg, plugin_dir, copy_dir));
	failures = registry_scan(reg, NULL);
	cr_assert_eq(failures, 0, "a test plugin was refused");
	reader = registry_reader(reg);
	cr_assert_geq(reader, 0);
	d = NULL;
}

static void
teardown(void)
{
	/* Let any hold.wait a failed test left go, then stop. */
	if (release_pipe[1] >= 0) {
		char many[64];

		memset(many, 'r', sizeof(many));
		(void)!write(release_pipe[1], many, sizeof(many));
	}
	if (d != NULL && dispatch_stop(d, clock_mono_ns() + WAIT_NS) == 0)
		dispatch_free(d);
	registry_free(reg);
	config_fini(&cfg);
	for (int i = 0; i < 2; i++) {
		close(release_pipe[i]);
		close(started_pipe[i]);
	}
	fixture_rmtree(tmpdir);
}

TestSuite(dispatch, .init = setup, .fini = teardown);

/* Start the dispatcher on cfg as the test set it. */
static void
start(void)
{
	char err[256];

	d = dispatch_new(&cfg, reg, &stats, err, sizeof(err));
	cr_assert_not_null(d, "dispatch_new: %s", err);
}

/*
 * The end of a case: stop dispatch (no executor callback can come after
 * it), then nothing may be posted to any of the owners (NULL-terminated)
 * any more, and every call must have been freed.
 */
static void
finish(struct towner *const *owners)
{
	cr_assert_eq(dispatch_stop(d, clock_mono_ns() + WAIT_NS), 0);
	for (size_t i = 0; owners[i] != NULL; i++) {
		cr_assert_eq(drain(owners[i], 0), 0, "a call was posted after "
		    "it was answered");
		cr_assert_eq(owners[i]->bad_post, 0);
	}
	dispatch_free(d);
	d = NULL;
	cr_assert_eq(refs_of("test.echo"), 2, "a call of good.so was not "
	    "freed");
	cr_assert_eq(refs_of("hold.wait"), 2, "a call of hold.so was not "
	    "freed");
}

/* Assert that r's reply line holds s. */
static void
expect_reply(const struct rec *r, const char *s)
{
	cr_assert_not_null(strstr(r->reply, s), "call %d: no %s in %s",
	    r->id, s, r->reply);
}

/* ------------------------------------------------------------ results */

Test(dispatch, inline_result_completes_inside_the_call)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec r = { 0 };

	owner_init(&w, 1);
	start();
	call_ok(&w, &r, 1, "{\"id\":1,\"command\":\"test.echo\","
	    "\"payload\":{\"x\":42}}", DISPATCH_DONE);
	cr_assert_eq(atomic_load(&r.done), 1);
	cr_assert_null(r.c);
	cr_assert(pthread_equal(r.done_thread, pthread_self()));
	cr_assert_eq(r.status, 200);
	expect_reply(&r, "\"id\":1");
	expect_reply(&r, "\"status\":200");
	expect_reply(&r, "\"x\":42");
	cr_assert_eq(w.n_posted, 0);

	/* A plugin's error result is the reply too. */
	{
		struct rec f = { 0 };

		call_ok(&w, &f, 2, "{\"id\":2,\"command\":\"test.fail\"}",
		    DISPATCH_DONE);
		cr_assert_eq(atomic_load(&f.done), 1);
		cr_assert_eq(f.status, 409);
		expect_reply(&f, "\"conflict\"");
	}
	finish(owners);
	cr_assert_eq(atomic_load(&r.done), 1);
	owner_fini(&w);
}

Test(dispatch, pool_result_before_deadline_is_200)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec r = { 0 };

	owner_init(&w, 1);
	start();
	call_ok(&w, &r, 7, "{\"id\":7,\"command\":\"test.sleep\","
	    "\"payload\":{\"ms\":1},\"timeout_ms\":10000}", DISPATCH_PENDING);
	cr_assert_not_null(r.c, "an owner with post gets the call");
	/* done runs on the owner's thread only, when it drains. */
	cr_assert_eq(atomic_load(&r.done), 0);
	drain_until_done(&w, &r);
	cr_assert(pthread_equal(r.done_thread, pthread_self()));
	cr_assert_eq(r.status, 200);
	expect_reply(&r, "\"id\":7");
	expect_reply(&r, "\"slept\":1");
	finish(owners);
	cr_assert_eq(atomic_load(&r.done), 1);
	cr_assert_eq(w.n_posted, 1);
	owner_fini(&w);
}

/* ------------------------------------------------------------ deadlines */

Test(dispatch, deadline_before_result_is_504_once)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec r = { 0 };

	owner_init(&w, 1);
	start();
	call_ok(&w, &r, 1, "{\"id\":1,\"command\":\"hold.wait\","
	    "\"timeout_ms\":30}", DISPATCH_PENDING);
	wait_started(1);
	/* Held: only the deadline can answer. */
	drain_until_done(&w, &r);
	cr_assert_eq(r.status, 504);
	expect_reply(&r, "\"status\":504");
	expect_reply(&r, "\"timeout\"");
	expect_reply(&r, "did not finish before its deadline");
	/* Now the late result. */
	release_holds(1);
	finish(owners);
	cr_assert_eq(atomic_load(&r.done), 1, "the late result was delivered");
	cr_assert_eq(w.n_posted, 1);
	{
		struct command *cmd = registry_lookup(reg, reader,
		    "hold.wait");

		/* The executor's end of it was counted too. */
		cr_assert_eq(metrics_cmd_in_flight(cmd->stats), 0);
		generation_release(cmd->gen);
	}
	owner_fini(&w);
}

Test(dispatch, sleep_past_its_timeout_is_504_and_the_late_result_dropped)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec r = { 0 };

	owner_init(&w, 1);
	start();
	call_ok(&w, &r, 3, "{\"id\":3,\"command\":\"test.sleep\","
	    "\"payload\":{\"ms\":200},\"timeout_ms\":20}", DISPATCH_PENDING);
	drain_until_done(&w, &r);
	cr_assert_eq(r.status, 504);
	expect_reply(&r, "\"id\":3");
	expect_reply(&r, "\"timeout\"");
	finish(owners); /* waits for the sleep to end */
	cr_assert_eq(atomic_load(&r.done), 1);
	cr_assert_eq(w.n_posted, 1);
	owner_fini(&w);
}

Test(dispatch, deadline_before_start_is_504_and_it_never_runs)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec h = { 0 }, r = { 0 };

	cfg.pool_threads = 1;
	owner_init(&w, 1);
	start();
	call_ok(&w, &h, 1, "{\"id\":1,\"command\":\"hold.wait\"}",
	    DISPATCH_PENDING);
	wait_started(1); /* the one pool thread is busy */
	call_ok(&w, &r, 2, "{\"id\":2,\"command\":\"hold.wait\","
	    "\"timeout_ms\":20}", DISPATCH_PENDING);
	drain_until_done(&w, &r);
	cr_assert_eq(r.status, 504);
	expect_reply(&r, "did not start before its deadline");
	cr_assert_eq(atomic_load(&h.done), 0);
	release_holds(1);
	drain_until_done(&w, &h);
	cr_assert_eq(h.status, 200);
	expect_reply(&h, "\"released\":true");
	finish(owners);
	cr_assert_eq(unseen_starts(), 0, "the expired call was started");
	cr_assert_eq(atomic_load(&r.done), 1);
	cr_assert_eq(atomic_load(&h.done), 1);
	owner_fini(&w);
}

/* Many deadlines on the heap, some taken off from the middle: each of
 * the others fires close to its own time, not behind a later one. */
Test(dispatch, deadlines_fire_on_time_after_removals)
{
	enum { N = 24 };
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec r[N + 1];
	int64_t due[N + 1];
	char line[128];

	memset(r, 0, sizeof(r));
	cfg.pool_threads = 1;
	owner_init(&w, 1);
	start();
	/* r[0] holds the one pool thread: the others wait in the queue,
	 * each with its deadline watched. */
	call_ok(&w, &r[0], 0, "{\"id\":0,\"command\":\"hold.wait\"}",
	    DISPATCH_PENDING);
	wait_started(1);
	for (int i = 1; i <= N; i++) {
		/* 40..960 ms, shuffled; the last one far later. */
		int ms = i == N ? 8000 : 40 * (1 + (i * 7) % (N - 1));

		snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
		    "\"hold.wait\",\"timeout_ms\":%d}", i, ms);
		due[i] = clock_mono_ns() + (int64_t)ms * 1000000;
		call_ok(&w, &r[i], i, line, DISPATCH_PENDING);
	}
	/* Take some off the heap, from anywhere in it. */
	for (int i = 3; i < N; i += 5)
		cr_assert_eq(dispatch_abandon(r[i].c), 1);
	for (int i = 1; i < N; i++) {
		if (i % 5 == 3)
			continue;
		drain_until_done(&w, &r[i]);
		cr_assert_eq(r[i].status, 504);
		cr_assert_geq(r[i].done_ns, due[i], "call %d answered before "
		    "its deadline", i);
		cr_assert_lt(r[i].done_ns - due[i], 1000000000LL, "call %d "
		    "answered %lld ms after its deadline", i, (long long)
		    ((r[i].done_ns - due[i]) / 1000000));
	}
	cr_assert_eq(atomic_load(&r[N].done), 0);
	dispatch_force(r[N].c);
	cr_assert_eq(r[N].status, 503);
	release_holds(1);
	drain_until_done(&w, &r[0]);
	finish(owners);
	cr_assert_eq(unseen_starts(), 0, "an expired call was started");
	owner_fini(&w);
}

/*
 * The same where a removal must move a deadline up the heap: these
 * timeouts, inserted in this order, with calls 3 and 7 taken off, leave
 * the 500 ms deadline of call 12 under a 3000 ms one unless the hole is
 * sifted up as well as down (worked out on a model of the heap).
 */
Test(dispatch, deadline_moved_up_by_a_removal_fires_on_time)
{
	static const int ms[] = { 300, 3200, 450, 3100, 3900, 400, 3000, 500,
	    3000, 4000, 3900, 3500, 500 };
	enum { N = sizeof(ms) / sizeof(ms[0]) };
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec r[N];
	int64_t due[N];
	char line[128];

	memset(r, 0, sizeof(r));
	cfg.pool_threads = N; /* all run: only these are on the heap */
	owner_init(&w, 1);
	start();
	for (int i = 0; i < N; i++) {
		snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
		    "\"hold.wait\",\"timeout_ms\":%d}", i, ms[i]);
		due[i] = clock_mono_ns() + (int64_t)ms[i] * 1000000;
		call_ok(&w, &r[i], i, line, DISPATCH_PENDING);
	}
	cr_assert_eq(dispatch_abandon(r[3].c), 1);
	cr_assert_eq(dispatch_abandon(r[7].c), 1);
	for (int i = 0; i < N; i++) {
		if (ms[i] > 500 || i == 7)
			continue;
		drain_until_done(&w, &r[i]);
		cr_assert_eq(r[i].status, 504);
		cr_assert_lt(r[i].done_ns - due[i], 1000000000LL, "call %d "
		    "answered %lld ms after its deadline", i, (long long)
		    ((r[i].done_ns - due[i]) / 1000000));
	}
	for (int i = 0; i < N; i++)
		if (ms[i] > 500 && i != 3 && atomic_load(&r[i].done) == 0)
			dispatch_force(r[i].c);
	release_holds(N);
	finish(owners);
	for (int i = 0; i < N; i++)
		cr_assert_eq(atomic_load(&r[i].done), i == 3 || i == 7 ? 0 :
		    1);
	owner_fini(&w);
}

/* ------------------------------------------------------------ abandon */

Test(dispatch, abandon_before_any_answer_means_no_done)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec run = { 0 }, queued = { 0 }, other = { 0 };

	cfg.pool_threads = 1;
	owner_init(&w, 1);
	start();
	call_ok(&w, &run, 1, "{\"id\":1,\"command\":\"hold.wait\"}",
	    DISPATCH_PENDING);
	wait_started(1);
	call_ok(&w, &queued, 2, "{\"id\":2,\"command\":\"hold.wait\"}",
	    DISPATCH_PENDING);
	call_ok(&w, &other, 3, "{\"id\":3,\"command\":\"test.sleep\","
	    "\"payload\":{\"ms\":0}}", DISPATCH_PENDING);
	/* Running, and queued: nobody answered either yet. */
	cr_assert_eq(dispatch_abandon(run.c), 1);
	cr_assert_eq(dispatch_abandon(queued.c), 1);
	release_holds(1);
	drain_until_done(&w, &other);
	cr_assert_eq(other.status, 200);
	finish(owners);
	cr_assert_eq(atomic_load(&run.done), 0);
	cr_assert_eq(atomic_load(&queued.done), 0);
	cr_assert_eq(atomic_load(&other.done), 1);
	cr_assert_eq(w.n_posted, 1);
	/* The queued call never started. */
	cr_assert_eq(unseen_starts(), 0);
	owner_fini(&w);
}

Test(dispatch, abandon_after_the_answer_was_posted_still_completes)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec r = { 0 }, t = { 0 };

	owner_init(&w, 1);
	start();
	/* A result on its way. */
	call_ok(&w, &r, 1, "{\"id\":1,\"command\":\"test.sleep\","
	    "\"payload\":{\"ms\":0}}", DISPATCH_PENDING);
	wait_posted(&w, 1);
	cr_assert_eq(dispatch_abandon(r.c), 0);
	r.peer_gone = 1;
	/* A 504 on its way. */
	call_ok(&w, &t, 2, "{\"id\":2,\"command\":\"hold.wait\","
	    "\"timeout_ms\":20}", DISPATCH_PENDING);
	wait_posted(&w, 2);
	cr_assert_eq(dispatch_abandon(t.c), 0);
	t.peer_gone = 1;
	cr_assert_eq(atomic_load(&r.done), 0);
	cr_assert_eq(atomic_load(&t.done), 0);
	cr_assert_eq(drain(&w, 0), 2);
	cr_assert_eq(atomic_load(&r.done), 1);
	cr_assert_eq(atomic_load(&t.done), 1);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(t.status, 504);
	release_holds(1);
	finish(owners);
	cr_assert_eq(atomic_load(&r.done), 1);
	cr_assert_eq(atomic_load(&t.done), 1);
	owner_fini(&w);
}

/* ------------------------------------------------------------ force */

Test(dispatch, force_answers_pending_calls_503_once)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec run = { 0 }, queued = { 0 }, posted = { 0 };

	cfg.pool_threads = 1;
	owner_init(&w, 1);
	start();
	call_ok(&w, &run, 1, "{\"id\":1,\"command\":\"hold.wait\"}",
	    DISPATCH_PENDING);
	wait_started(1);
	call_ok(&w, &queued, 2, "{\"id\":2,\"command\":\"hold.wait\"}",
	    DISPATCH_PENDING);

	dispatch_force(run.c);
	cr_assert_eq(atomic_load(&run.done), 1, "force runs done before it "
	    "returns");
	cr_assert(pthread_equal(run.done_thread, pthread_self()));
	cr_assert_eq(run.status, 503);
	expect_reply(&run, "\"unavailable\"");
	expect_reply(&run, "did not finish in time");

	dispatch_force(queued.c);
	cr_assert_eq(atomic_load(&queued.done), 1);
	cr_assert_eq(queued.status, 503);
	expect_reply(&queued, "the call was not started");

	/* The running call's result comes later, and goes nowhere. */
	release_holds(1);

	/* An answer already posted: force leaves it to the owner. */
	call_ok(&w, &posted, 3, "{\"id\":3,\"command\":\"test.sleep\","
	    "\"payload\":{\"ms\":0}}", DISPATCH_PENDING);
	wait_posted(&w, 1);
	dispatch_force(posted.c);
	cr_assert_eq(atomic_load(&posted.done), 0);
	cr_assert_eq(drain(&w, 0), 1);
	cr_assert_eq(atomic_load(&posted.done), 1);
	cr_assert_eq(posted.status, 200);

	finish(owners);
	cr_assert_eq(atomic_load(&run.done), 1);
	cr_assert_eq(atomic_load(&queued.done), 1);
	cr_assert_eq(atomic_load(&posted.done), 1);
	cr_assert_eq(w.n_posted, 1);
	cr_assert_eq(unseen_starts(), 0, "the forced queued call started");
	owner_fini(&w);
}

/* ------------------------------------------------------------ refusals */

Test(dispatch, unknown_command_is_404_without_a_call)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec r = { .id = 1 };
	const char *code = NULL;
	char err[256] = "";
	int st = 0;

	owner_init(&w, 1);
	start();
	cr_assert_eq(call_line(reader, &w, &r, "{\"id\":1,\"command\":"
	    "\"no.such\",\"payload\":{}}", &st, &code, err, sizeof(err)), -1);
	cr_assert_eq(st, 404);
	cr_assert_str_eq(code, "unknown_command");
	cr_assert_not_null(strstr(err, "'no.such'"), "%s", err);
	cr_assert_null(r.c);
	cr_assert_eq(atomic_load(&r.done), 0);
	finish(owners);
	cr_assert_eq(atomic_load(&r.done), 0);
	owner_fini(&w);
}

Test(dispatch, missing_field_is_400_without_a_call)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec r = { .id = 1 };
	const char *code = NULL;
	char err[256] = "";
	int st = 0;

	owner_init(&w, 1);
	start();
	/* test.fields requires s, n, i and b. */
	cr_assert_eq(call_line(reader, &w, &r, "{\"id\":1,\"command\":"
	    "\"test.fields\",\"payload\":{\"s\":\"x\",\"n\":1.5,\"i\":2}}",
	    &st, &code, err, sizeof(err)), -1);
	cr_assert_eq(st, 400);
	cr_assert_str_eq(code, "invalid_payload");
	cr_assert_not_null(strstr(err, "'b'"), "%s", err);
	cr_assert_eq(atomic_load(&r.done), 0);
	/* A wrong type too. */
	cr_assert_eq(call_line(reader, &w, &r, "{\"id\":1,\"command\":"
	    "\"test.fields\",\"payload\":{\"s\":1,\"n\":1.5,\"i\":2,"
	    "\"b\":true}}", &st, &code, err, sizeof(err)), -1);
	cr_assert_eq(st, 400);
	cr_assert_str_eq(code, "invalid_payload");
	cr_assert_not_null(strstr(err, "'s'"), "%s", err);
	/* All fields: accepted. */
	call_ok(&w, &r, 1, "{\"id\":1,\"command\":\"test.fields\","
	    "\"payload\":{\"s\":\"x\",\"n\":1.5,\"i\":2,\"b\":true}}",
	    DISPATCH_DONE);
	cr_assert_eq(r.status, 200);
	finish(owners); /* the refused calls released the generation */
	cr_assert_eq(atomic_load(&r.done), 1);
	owner_fini(&w);
}

Test(dispatch, full_queue_is_503_inside_the_call)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec h = { 0 }, q = { 0 }, r = { 0 };

	cfg.pool_threads = 1;
	cfg.queue_depth = 1;
	owner_init(&w, 1);
	start();
	call_ok(&w, &h, 1, "{\"id\":1,\"command\":\"hold.wait\"}",
	    DISPATCH_PENDING);
	wait_started(1);
	call_ok(&w, &q, 2, "{\"id\":2,\"command\":\"test.sleep\"}",
	    DISPATCH_PENDING);
	/* Refused: answered at once, on this thread, never posted. */
	call_ok(&w, &r, 3, "{\"id\":3,\"command\":\"test.sleep\"}",
	    DISPATCH_DONE);
	cr_assert_null(r.c);
	cr_assert_eq(atomic_load(&r.done), 1);
	cr_assert(pthread_equal(r.done_thread, pthread_self()));
	cr_assert_eq(r.status, 503);
	expect_reply(&r, "\"unavailable\"");
	expect_reply(&r, "queue is full");
	release_holds(1);
	drain_until_done(&w, &h);
	drain_until_done(&w, &q);
	cr_assert_eq(h.status, 200);
	cr_assert_eq(q.status, 200);
	finish(owners);
	cr_assert_eq(atomic_load(&r.done), 1);
	cr_assert_eq(w.n_posted, 2);
	owner_fini(&w);
}

/* ------------------------------------------------------------ no post */

Test(dispatch, owner_without_post_completes_on_the_answering_thread)
{
	struct towner w;
	struct towner *owners[] = { &w, NULL };
	struct rec r = { 0 }, t = { 0 }, n = { 0 }, e = { 0 };

	owner_init(&w, 0);
	start();
	/* The pool thread's result. */
	call_ok(&w, &r, 1, "{\"id\":1,\"command\":\"test.sleep\","
	    "\"payload\":{\"ms\":0}}", DISPATCH_PENDING);
	cr_assert_null(r.c, "an owner without post gets no call");
	wait_done(&r);
	cr_assert_not(pthread_equal(r.done_thread, pthread_self()));
	cr_assert_eq(r.status, 200);
	expect_reply(&r, "\"slept\":0");
	/* The deadline timer's 504. */
	call_ok(&w, &t, 2, "{\"id\":2,\"command\":\"hold.wait\","
	    "\"timeout_ms\":20}", DISPATCH_PENDING);
	wait_done(&t);
	cr_assert_not(pthread_equal(t.done_thread, pthread_self()));
	cr_assert_eq(t.status, 504);
	release_holds(1);
	/* No owner at all. */
	call_ok(NULL, &n, 3, "{\"id\":3,\"command\":\"test.sleep\","
	    "\"payload\":{\"ms\":0}}", DISPATCH_PENDING);
	wait_done(&n);
	cr_assert_not(pthread_equal(n.done_thread, pthread_self()));
	cr_assert_eq(n.status, 200);
	/* Inline still completes inside the call. */
	call_ok(&w, &e, 4, "{\"id\":4,\"command\":\"test.echo\"}",
	    DISPATCH_DONE);
	cr_assert_eq(atomic_load(&e.done), 1);
	cr_assert(pthread_equal(e.done_thread, pthread_self()));
	finish(owners);
	cr_assert_eq(w.n_posted, 0);
	cr_assert_eq(atomic_load(&r.done), 1);
	cr_assert_eq(atomic_load(&t.done), 1);
	cr_assert_eq(atomic_load(&n.done), 1);
	owner_fini(&w);
}

/* ------------------------------------------------------------ stress */

#define STRESS_THREADS 3
#define STRESS_CALLS 1000

/* One stress thread: its own owner, reader slot and records. */
struct stress {
	struct towner w;
	int reader;
	unsigned seed;
	struct rec recs[STRESS_CALLS];
	int pending[STRESS_CALLS];  /* indices of recs with r->c set */
	int n_pending;
	int refused;                /* dispatch_call returned -1 */
	int bad_thread;             /* done ran off this thread */
	int unfinished;             /* still pending at the end */
	int outstanding;            /* accepted, neither done nor abandoned */
	pthread_t self;
};

static struct stress stress[STRESS_THREADS];

/* Forget the pending calls that were completed. */
static void
stress_compact(struct stress *s)
{
	int n = 0;

	for (int i = 0; i < s->n_pending; i++) {
		struct rec *r = &s->recs[s->pending[i]];

		if (atomic_load(&r->done) == 0 && !r->abandon_won &&
		    !r->closing)
			s->pending[n++] = s->pending[i];
	}
	s->n_pending = n;
}

/* Abandon (peer gone) or force (shutdown) pending call r. */
static void
stress_close(struct rec *r, int how)
{
	r->closing = 1;
	if (how == 0) {
		if (dispatch_abandon(r->c)) {
			r->abandon_won = 1;
			(*r->outstanding)--;
		} else {
			r->peer_gone = 1; /* done runs, and drops it */
		}
	} else {
		r->forced = 1;
		dispatch_force(r->c);
	}
}

static void *
stress_main(void *arg)
{
	struct stress *s = arg;
	char line[256];

	s->self = pthread_self();
	for (int i = 0; i < STRESS_CALLS; i++) {
		struct rec *r = &s->recs[i];
		int pick = rand_r(&s->seed) % 10, rc;
		int timeout = 1 + rand_r(&s->seed) % 5;

		r->id = i;
		r->outstanding = &s->outstanding;
		if (pick < 2) {
			r->command = "test.echo";
			snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
			    "\"test.echo\",\"payload\":{\"i\":%d}}", i, i);
		} else if (pick < 7) {
			r->command = "test.sleep";
			snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
			    "\"test.sleep\",\"payload\":{\"ms\":%d},"
			    "\"timeout_ms\":%d}", i, rand_r(&s->seed) % 3,
			    timeout);
		} else {
			r->command = "hold.serial";
			snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
			    "\"hold.serial\",\"payload\":{\"us\":%d},"
			    "\"timeout_ms\":%d}", i, rand_r(&s->seed) % 1500,
			    timeout);
		}
		s->outstanding++; /* done decrements it, even inline */
		rc = call_line(s->reader, &s->w, r, line, NULL, NULL, NULL, 0);
		if (rc < 0) {
			s->refused++;
			s->outstanding--;
		} else if (rc == DISPATCH_PENDING) {
			int now = rand_r(&s->seed) % 10;

			if (now < 2)
				stress_close(r, now);
			else
				s->pending[s->n_pending++] = i;
		}
		drain(&s->w, 0);
		/* A few calls in flight at a time: their deadlines race
		 * their runs, not a long queue. */
		while (s->outstanding > 2)
			if (drain(&s->w, WAIT_NS) == 0)
				break;
		if (i % 8 == 7) {
			stress_compact(s);
			if (s->n_pending > 0) {
				int k = rand_r(&s->seed) % s->n_pending;

				stress_close(&s->recs[s->pending[k]],
				    rand_r(&s->seed) % 2);
			}
		}
	}
	/* Everything accepted and not abandoned-won must complete. */
	for (int i = 0; i < STRESS_CALLS; i++) {
		struct rec *r = &s->recs[i];
		int64_t dl = clock_mono_ns() + WAIT_NS;

		while (atomic_load(&r->done) == 0 && !r->abandon_won &&
		    clock_mono_ns() < dl)
			drain(&s->w, dl - clock_mono_ns());
		if (atomic_load(&r->done) == 0 && !r->abandon_won)
			s->unfinished++;
	}
	for (int i = 0; i < STRESS_CALLS; i++)
		if (atomic_load(&s->recs[i].done) > 0 &&
		    !pthread_equal(s->recs[i].done_thread, s->self))
			s->bad_thread++;
	return NULL;
}

Test(dispatch, stress_every_call_completes_once, .timeout = 120)
{
	pthread_t th[STRESS_THREADS];
	struct towner *owners[STRESS_THREADS + 1];
	int counts[6] = { 0 }, timeouts = 0, forced = 0, abandoned = 0;

	cfg.pool_threads = 8;
	start();
	for (int t = 0; t < STRESS_THREADS; t++) {
		struct stress *s = &stress[t];

		owner_init(&s->w, 1);
		s->reader = registry_reader(reg);
		cr_assert_geq(s->reader, 0);
		s->seed = 12345u + (unsigned)t * 7919u;
		owners[t] = &s->w;
	}
	owners[STRESS_THREADS] = NULL;
	for (int t = 0; t < STRESS_THREADS; t++)
		cr_assert_eq(pthread_create(&th[t], NULL, stress_main,
		    &stress[t]), 0);
	for (int t = 0; t < STRESS_THREADS; t++)
		pthread_join(th[t], NULL);
	finish(owners);
	for (int t = 0; t < STRESS_THREADS; t++) {
		struct stress *s = &stress[t];

		cr_assert_eq(s->refused, 0);
		cr_assert_eq(s->unfinished, 0, "thread %d: %d calls never "
		    "completed", t, s->unfinished);
		cr_assert_eq(s->bad_thread, 0, "thread %d: done ran off the "
		    "owner's thread", t);
		for (int i = 0; i < STRESS_CALLS; i++) {
			struct rec *r = &s->recs[i];
			int n = atomic_load(&r->done);

			if (r->abandon_won) {
				cr_assert_eq(n, 0, "abandoned call %d/%d got "
				    "done %d times", t, i, n);
				abandoned++;
				continue;
			}
			cr_assert_eq(n, 1, "call %d/%d (%s): done ran %d "
			    "times", t, i, r->command, n);
			if (r->peer_gone)
				continue;
			cr_assert(r->status == 200 || r->status == 503 ||
			    r->status == 504, "call %d/%d: status %d: %s", t,
			    i, r->status, r->reply);
			if (strcmp(r->command, "test.echo") == 0)
				cr_assert_eq(r->status, 200);
			if (r->status == 200 && strcmp(r->command,
			    "hold.serial") == 0)
				cr_assert_not_null(strstr(r->reply,
				    "\"overlap\":0"), "SERIAL calls "
				    "overlapped: %s", r->reply);
			if (r->status == 504) {
				timeouts++;
				cr_assert_not_null(strstr(r->reply,
				    "\"timeout\""));
			}
			if (r->status == 503) {
				/* Only a force answers 503 here. */
				cr_assert(r->forced, "call %d/%d: 503 without "
				    "force: %s", t, i, r->reply);
				forced++;
			}
			counts[r->status / 100]++;
		}
		owner_fini(&s->w);
	}
	cr_log_info("stress: %d ok, %d timed out, %d forced, %d abandoned",
	    counts[2], timeouts, forced, abandoned);
	/* The mix did race: each kind of answer happened. */
	cr_assert_gt(counts[2], 0);
	cr_assert_gt(timeouts, 0);
	cr_assert_gt(forced, 0);
	cr_assert_gt(abandoned, 0);
}

/* ------------------------------------------------------------ adoption */

/* A thread that runs one call inline under a watch, as an event loop
 * does; the watch's lost hook ends it when the call was adopted. */
struct watched {
	struct dispatch_watch w;    /* first: lost gets &w */
	struct towner *owner;
	struct rec *r;
	const char *line;
	atomic_int lost;            /* the lost hook ran */
	atomic_int returned;        /* dispatch_call() returned (not adopted) */
};

static void
watched_lost(struct dispatch_watch *w)
{
	struct watched *t = (struct watched *)(void *)w;

	atomic_store(&t->lost, 1);
	dispatch_thread_watch(NULL);
	pthread_exit(NULL);
}

/* Like call_line(), but nothing of its own is left on the heap while the
 * call runs: the lost hook leaves this thread inside dispatch_call(). */
static void *
watched_main(void *arg)
{
	struct watched *t = arg;
	struct json_tokener *tok = request_tokener_new();
	struct dispatch_args a;
	struct request req;
	struct call *c = NULL;
	const char *code;
	char err[256];
	int st;

	thread_use_c_locale();
	memset(&req, 0, sizeof(req));
	if (tok == NULL || request_parse(tok, t->line, strlen(t->line), &req,
	    err, sizeof(err)) < 0)
		abort();
	json_tokener_free(tok);
	memset(&a, 0, sizeof(a));
	a.reader = registry_reader(reg);
	a.rid_ms = clock_wall_ms();
	a.rid_src = 1;
	a.rid_seq = (uint64_t)t->r->id;
	a.pid = -1;
	a.uid = -1;
	a.owner = &t->owner->base;
	a.done = on_done;
	a.owner_arg = t->r;
	dispatch_thread_watch(&t->w);
	dispatch_call(d, &a, &req, &c, &st, &code, err, sizeof(err));
	request_fini(&req);
	atomic_store(&t->returned, 1);
	dispatch_thread_watch(NULL);
	return NULL;
}

/* Start t's thread on line and adopt its call once it has run stuck_ms;
 * returns the adopted call (or fails the case). */
static struct call *
adopt_when_stuck(struct watched *t, pthread_t *th, struct towner *w,
    struct rec *r, const char *line, int stuck_ms)
{
	int64_t dl = clock_mono_ns() + WAIT_NS;
	struct call *c = NULL;

	memset(t, 0, sizeof(*t));
	t->w.lost = watched_lost;
	t->w.owner = &w->base;
	t->owner = w;
	t->r = r;
	t->line = line;
	cr_assert_eq(pthread_create(th, NULL, watched_main, t), 0);
	while (c == NULL && clock_mono_ns() < dl && !atomic_load(&t->returned)) {
		struct timespec ts = { 0, 2000000 };

		c = dispatch_adopt(d, &t->w, clock_mono_ns(),
		    (int64_t)stuck_ms * 1000000);
		if (c == NULL)
			nanosleep(&ts, NULL); /* a poll with a deadline */
	}
	cr_assert_not_null(c, "the inline call was never adopted");
	return c;
}

/* An inline call adopted while it runs keeps its result: done runs
 * once, on the owner's thread, with 200; the thread leaves by lost. */
Test(dispatch, adopted_inline_call_keeps_its_result)
{
	struct towner w;
	struct watched t;
	struct rec r = { 0 };
	pthread_t th;

	start();
	owner_init(&w, 1);
	r.id = 1;
	adopt_when_stuck(&t, &th, &w, &r, "{\"id\":1,\"command\":"
	    "\"hold.serial\",\"payload\":{\"us\":300000}}", 50);
	drain_until_done(&w, &r);
	cr_assert_eq(r.status, 200, "status %d: %s", r.status, r.reply);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert(atomic_load(&t.lost) && !atomic_load(&t.returned),
	    "the watched thread did not leave by lost");
	finish((struct towner *const[]){ &w, NULL });
	owner_fini(&w);
}

/* Adopted past its deadline: 504 at the deadline, not when the call
 * returns; the late result is dropped and nothing more is posted. */
Test(dispatch, adopted_inline_call_gets_504_at_its_deadline)
{
	struct towner w;
	struct watched t;
	struct rec r = { 0 };
	pthread_t th;
	int64_t t0 = clock_mono_ns();

	start();
	owner_init(&w, 1);
	r.id = 2;
	adopt_when_stuck(&t, &th, &w, &r, "{\"id\":2,\"command\":"
	    "\"hold.serial\",\"timeout_ms\":100,\"payload\":{\"us\":600000}}",
	    10000);
	drain_until_done(&w, &r);
	cr_assert_eq(r.status, 504, "status %d: %s", r.status, r.reply);
	cr_assert_lt(r.done_ns - t0, 400000000LL, "504 after %lld ms",
	    (long long)((r.done_ns - t0) / 1000000));
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert(atomic_load(&t.lost), "the watched thread did not leave");
	cr_assert_eq(w.n_posted, 1, "posted %d times", w.n_posted);
	finish((struct towner *const[]){ &w, NULL });
	owner_fini(&w);
}

/* A call that returns before anyone adopts it is untouched: a watch that
 * is idle or whose call is young gives nothing to adopt. */
Test(dispatch, a_young_or_finished_call_is_not_adopted)
{
	struct dispatch_watch w;
	struct towner o, o2;
	struct rec r = { 0 }, r2 = { 0 };

	start();
	owner_init(&o, 1);
	owner_init(&o2, 1);
	memset(&w, 0, sizeof(w));
	w.lost = watched_lost;
	w.owner = &o.base;
	cr_assert_null(dispatch_adopt(d, &w, clock_mono_ns(), 0));
	dispatch_thread_watch(&w);
	/* Another owner's call on this thread is not the watch's. */
	call_ok(&o2, &r2, 4, "{\"id\":4,\"command\":\"test.echo\"}",
	    DISPATCH_DONE);
	cr_assert_eq(atomic_load(&w.state), 0, "another owner's call was "
	    "watched");
	call_ok(&o, &r, 3, "{\"id\":3,\"command\":\"test.echo\"}",
	    DISPATCH_DONE);
	dispatch_thread_watch(NULL);
	cr_assert_eq(atomic_load(&w.state), 1 << 2 | WATCH_IDLE,
	    "the call was not watched");
	cr_assert_eq(atomic_load(&r.done), 1);
	cr_assert_null(dispatch_adopt(d, &w, clock_mono_ns(), 0),
	    "an idle watch gave a call");
	finish((struct towner *const[]){ &o, &o2, NULL });
	owner_fini(&o);
	owner_fini(&o2);
}
