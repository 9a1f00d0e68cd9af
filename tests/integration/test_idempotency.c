/*
 * test_idempotency.c - idempotency keys against a real daemon: a storm of
 * concurrent calls with one key runs the command once; the fingerprint of
 * the payload (422 for another payload, a replay for reordered members);
 * which results are stored (2xx and a chosen 4xx, not 500 nor 504, a late
 * success after a 504); records across SIGTERM and SIGKILL; the TTL; the
 * scope of a key (per peer uid, or shared); bad keys; the host.stats
 * counters; and that a reply carries its own request's id.
 *
 * The counter plugin (tests/plugins/counter.c) counts the runs of its
 * commands, so every test tells a call that ran from a replay by the run
 * count and not only by the reply's "replayed" member.
 */
#include <criterion/criterion.h>

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"

#define WAIT_MS 10000
#define OTHER_UID 65534

static const char *const counter[] = { "counter.so", NULL };

/* A temp dir of the test's own, which outlives its daemons: the restart
 * test keeps its state_dir and the counter file there.  "" when none. */
static char state_root[PATH_MAX];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
fini(void)
{
	check_free();
	if (state_root[0] != '\0')
		nftw(state_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	state_root[0] = '\0';
}

TestSuite(idempotency, .fini = fini, .timeout = 90);

/* ------------------------------------------------------------ helpers */

/* Send the formatted line on fd and require a JSON reply.  Returns it
 * (put it). */
static json_object *
callf(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_object *
callf(int fd, const char *fmt, ...)
{
	char line[4096];
	json_object *j;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	j = client_call(fd, line);
	CHECK(j != NULL, "no reply (or not JSON) to %s", line);
	return j;
}

/* client_call_as(OTHER_UID) with the formatted line; requires a reply. */
static json_object *
call_other(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_object *
call_other(const char *fmt, ...)
{
	char line[4096];
	json_object *j;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	j = client_call_as(OTHER_UID, daemon_socket_path(check_daemon()),
	    line);
	CHECK(j != NULL, "no reply as uid %d to %s", OTHER_UID, line);
	return j;
}

/* Non-zero if the reply says it was replayed ("replayed": true). */
static int
replayed(json_object *j)
{
	json_object *v = json_path(j, "replayed");

	return v != NULL && json_object_is_type(v, json_type_boolean) &&
	    json_object_get_boolean(v);
}

/* Integer at path in j, or -1. */
static long long
int_at(json_object *j, const char *path)
{
	json_object *v = json_path(j, path);

	return v != NULL && json_object_is_type(v, json_type_int) ?
	    (long long)json_object_get_int64(v) : -1;
}

/* body.run of a counter reply, or -1. */
static long long
run_of(json_object *j)
{
	return int_at(j, "body/run");
}

/* The error code is `code`. */
static int
code_is(json_object *j, const char *code)
{
	const char *c = reply_error_code(j);

	return c != NULL && strcmp(c, code) == 0;
}

/* Require that j is a call that ran: `status`, no "replayed", and for a
 * 2xx the run number `run` (-1: any).  Puts j. */
static void
expect_ran(json_object *j, int status, long long run, const char *what)
{
	CHECK(reply_status(j) == status && !replayed(j) &&
	    json_path(j, "replayed") == NULL, "%s: %s, want %d that ran "
	    "(no \"replayed\")", what, reply_text(j), status);
	if (status < 300 && run >= 0)
		CHECK(run_of(j) == run, "%s: %s, want run %lld", what,
		    reply_text(j), run);
	json_object_put(j);
}

/* Require that j replays `first`: same status, "replayed": true and the
 * same body (2xx) or error (4xx).  Puts j, not first. */
static void
expect_replay(json_object *j, json_object *first, const char *what)
{
	const char *member = reply_status(first) < 300 ? "body" : "error";

	CHECK(reply_status(j) == reply_status(first) && replayed(j),
	    "%s: %s, want a replay of %s", what, reply_text(j),
	    reply_text(first));
	CHECK(json_object_equal(json_path(j, member), json_path(first,
	    member)), "%s: %s %s, want %s", what, member, reply_text(j),
	    reply_text(first));
	json_object_put(j);
}

/* How many runs the counter plugin has counted (started). */
static long long
runs(int fd)
{
	json_object *j = callf(fd, "{\"command\":\"counter.runs\"}");
	long long n = int_at(j, "body/runs");

	CHECK(reply_status(j) == 200 && n >= 0, "counter.runs: %s",
	    reply_text(j));
	json_object_put(j);
	return n;
}

/* host.stats body.idempotency.<name>, or -1 (fails the test). */
static long long
idem_stat(int fd, const char *name)
{
	json_object *j = callf(fd, "{\"command\":\"host.stats\"}");
	char path[64];
	long long n;

	snprintf(path, sizeof(path), "body/idempotency/%s", name);
	n = int_at(j, path);
	CHECK(reply_status(j) == 200 && n >= 0, "host.stats has no %s: %s",
	    path, reply_text(j));
	json_object_put(j);
	return n;
}

/* Require the five idempotency counters of host.stats. */
static void
expect_stats(int fd, long long replays, long long conflicts,
    long long mismatches, long long stored, long long records,
    const char *what)
{
	json_object *j = callf(fd, "{\"command\":\"host.stats\"}");

	CHECK(int_at(j, "body/idempotency/replays") == replays &&
	    int_at(j, "body/idempotency/conflicts") == conflicts &&
	    int_at(j, "body/idempotency/mismatches") == mismatches &&
	    int_at(j, "body/idempotency/stored") == stored &&
	    int_at(j, "body/idempotency/records") == records,
	    "%s: idempotency stats %s, want replays %lld conflicts %lld "
	    "mismatches %lld stored %lld records %lld", what,
	    json_object_to_json_string(json_path(j, "body/idempotency")),
	    replays, conflicts, mismatches, stored, records);
	json_object_put(j);
}

/* For wait_until(): a stat reaching a value, or runs reaching one. */
struct count_wait {
	int fd;
	const char *stat;    /* host.stats idempotency member, or NULL: */
	const char *runs;    /* counter.runs body member */
	long long want;      /* at least */
	long long seen;
};

static int
count_reached(void *arg)
{
	struct count_wait *w = arg;
	json_object *j = client_call(w->fd, w->stat != NULL ?
	    "{\"command\":\"host.stats\"}" : "{\"command\":\"counter.runs\"}");
	char path[64];

	snprintf(path, sizeof(path), w->stat != NULL ?
	    "body/idempotency/%s" : "body/%s", w->stat != NULL ? w->stat :
	    w->runs);
	w->seen = int_at(j, path);
	json_object_put(j);
	return w->seen >= w->want;
}

/* Wait until host.stats idempotency.<stat> (or counter.runs' <runs>) is
 * at least want; fails the test if it is not within WAIT_MS. */
static void
wait_count(int fd, const char *stat, const char *runs_member, long long want)
{
	struct count_wait w = { fd, stat, runs_member, want, -1 };

	CHECK(wait_until(count_reached, &w, WAIT_MS), "%s stayed %lld, want "
	    "%lld", stat != NULL ? stat : runs_member, w.seen, want);
}

/* ------------------------------------------------------------ 1. storm */

#define STORM_CONNS 20
#define STORM_DEPTH 5

struct storm {
	const char *sock;
	pthread_barrier_t *go;
	int index;
	int sent;                          /* all lines were written */
	json_object *replies[STORM_DEPTH]; /* NULL: none or not JSON */
};

/* One connection of the storm: connect, wait for the others, pipeline
 * STORM_DEPTH calls with the one key and read their replies.  Asserts
 * nothing (not the test's thread). */
static void *
storm_main(void *arg)
{
	struct storm *s = arg;
	char lines[STORM_DEPTH * 160];
	size_t len = 0;
	int fd = client_connect(s->sock);

	pthread_barrier_wait(s->go);
	if (fd == -1)
		return NULL;
	for (int i = 0; i < STORM_DEPTH; i++)
		len += (size_t)snprintf(lines + len, sizeof(lines) - len,
		    "{\"id\":\"c%d-%d\",\"command\":\"counter.hit\","
		    "\"idempotency_key\":\"storm\",\"payload\":{\"ms\":300}}\n",
		    s->index, i);
	s->sent = client_send_raw(fd, lines, len) == 0;
	for (int i = 0; s->sent && i < STORM_DEPTH; i++) {
		char *line = client_recv_line(fd);

		if (line == NULL)
			break;
		s->replies[i] = json_tokener_parse(line);
		free(line);
	}
	close(fd);
	return NULL;
}

Test(idempotency, concurrent_calls_with_one_key_run_once)
{
	static struct storm st[STORM_CONNS];
	pthread_t th[STORM_CONNS];
	pthread_barrier_t go;
	json_object *first = NULL;
	int fd, ran = 0, busy = 0, replays = 0;

	check_start_with(counter, NULL);
	fd = check_connect();
	CHECK(pthread_barrier_init(&go, NULL, STORM_CONNS) == 0, "barrier");
	for (int i = 0; i < STORM_CONNS; i++) {
		st[i] = (struct storm){ daemon_socket_path(check_daemon()), &go,
		    i, 0, { NULL } };
		CHECK(pthread_create(&th[i], NULL, storm_main, &st[i]) == 0,
		    "pthread_create");
	}
	for (int i = 0; i < STORM_CONNS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);

	/* Every call got its own reply, in order, under its own id. */
	for (int i = 0; i < STORM_CONNS; i++) {
		CHECK(st[i].sent, "connection %d could not send", i);
		for (int k = 0; k < STORM_DEPTH; k++) {
			json_object *j = st[i].replies[k];
			char id[32];

			snprintf(id, sizeof(id), "c%d-%d", i, k);
			CHECK(j != NULL, "connection %d: no reply %d", i, k);
			CHECK(json_path_str(j, "id") != NULL &&
			    strcmp(json_path_str(j, "id"), id) == 0,
			    "reply %s, want id %s", reply_text(j), id);
			if (reply_status(j) == 200 && !replayed(j)) {
				ran++;
				first = j;
			}
		}
	}
	CHECK(ran == 1 && first != NULL, "%d calls ran, want exactly 1", ran);
	CHECK(run_of(first) == 1, "the run: %s, want run 1",
	    reply_text(first));
	/* The others: still running (409), or the replay of that run. */
	for (int i = 0; i < STORM_CONNS; i++) {
		for (int k = 0; k < STORM_DEPTH; k++) {
			json_object *j = st[i].replies[k];

			if (j == first)
				continue;
			if (reply_status(j) == 409) {
				CHECK(code_is(j, "idempotency_in_progress"),
				    "409 %s, want idempotency_in_progress",
				    reply_text(j));
				busy++;
				continue;
			}
			CHECK(reply_status(j) == 200 && replayed(j) &&
			    json_object_equal(reply_body(j),
			    reply_body(first)), "%s, want 409 or a replay "
			    "of %s", reply_text(j), reply_text(first));
			replays++;
		}
	}
	CHECK(busy > 0, "no call saw the first one running (%d replays): "
	    "the calls did not overlap", replays);
	CHECK(runs(fd) == 1, "the command ran %lld times, want 1", runs(fd));

	/* Afterwards every retry is the replay. */
	for (int i = 0; i < 10; i++)
		expect_replay(callf(fd, "{\"id\":%d,\"command\":"
		    "\"counter.hit\",\"idempotency_key\":\"storm\","
		    "\"payload\":{\"ms\":300}}",
		    i), first, "a retry after the storm");
	CHECK(runs(fd) == 1, "retries ran the command: %lld runs", runs(fd));
	for (int i = 0; i < STORM_CONNS; i++)
		for (int k = 0; k < STORM_DEPTH; k++)
			json_object_put(st[i].replies[k]);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 2. payload */

Test(idempotency, payload_fingerprint_and_command_scope)
{
	json_object *first, *j;
	int fd;

	check_start_with(counter, NULL);
	fd = check_connect();
	first = callf(fd, "{\"command\":\"counter.status\",\"idempotency_key\":"
	    "\"k2\",\"payload\":{\"a\":1,\"b\":[1,2],\"c\":{\"x\":\"y\","
	    "\"z\":2.5}}}");
	CHECK(reply_status(first) == 200 && !replayed(first) &&
	    run_of(first) == 1, "first call: %s", reply_text(first));

	/* Another value, an array in another order, a member more: 422. */
	static const char *const others[] = {
		"{\"a\":2,\"b\":[1,2],\"c\":{\"x\":\"y\",\"z\":2.5}}",
		"{\"a\":1,\"b\":[2,1],\"c\":{\"x\":\"y\",\"z\":2.5}}",
		"{\"a\":1,\"b\":[1,2],\"c\":{\"x\":\"y\",\"z\":2.5},"
		    "\"d\":null}",
		"{\"a\":\"1\",\"b\":[1,2],\"c\":{\"x\":\"y\",\"z\":2.5}}",
		"{}",
	};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		j = callf(fd, "{\"command\":\"counter.status\","
		    "\"idempotency_key\":\"k2\",\"payload\":%s}", others[i]);
		CHECK(reply_status(j) == 422 && code_is(j,
		    "idempotency_key_reused") && !replayed(j), "payload %s: "
		    "%s, want 422 idempotency_key_reused", others[i],
		    reply_text(j));
		json_object_put(j);
	}

	/* The same payload, members reordered and spaced: the replay. */
	expect_replay(callf(fd, "{ \"payload\" : { \"c\" : { \"z\" : 2.5 , "
	    "\"x\" : \"y\" } , \"b\" : [ 1 , 2 ] , \"a\" : 1 } , "
	    "\"idempotency_key\" : \"k2\" , "
	    "\"command\" : \"counter.status\" }"),
	    first, "reordered payload");
	CHECK(daemon_log_wait(check_daemon(), "replayed the stored result of "
	    "this idempotency_key; the command did not run", WAIT_MS),
	    "no log line for the replay");
	CHECK(runs(fd) == 1, "422s or the replay ran the command: %lld runs",
	    runs(fd));

	/* Another command, the same key: its own record. */
	j = callf(fd, "{\"command\":\"counter.hit\",\"idempotency_key\":\"k2\","
	    "\"payload\":{\"a\":1,\"b\":[1,2],\"c\":{\"x\":\"y\",\"z\":2.5}}}");
	CHECK(reply_status(j) == 200 && !replayed(j) && run_of(j) == 2,
	    "another command with the key: %s, want run 2", reply_text(j));
	expect_replay(callf(fd, "{\"command\":\"counter.hit\","
	    "\"idempotency_key\":\"k2\",\"payload\":{\"a\":1,\"b\":[1,2],"
	    "\"c\":{\"x\":\"y\",\"z\":2.5}}}"), j, "the other command's retry");
	json_object_put(j);
	/* ... and a payload of its own under it, also independent. */
	j = callf(fd, "{\"command\":\"counter.hit\",\"idempotency_key\":\"k3\","
	    "\"payload\":{}}");
	expect_ran(j, 200, 3, "a new key");
	expect_replay(callf(fd, "{\"command\":\"counter.status\","
	    "\"idempotency_key\":\"k2\",\"payload\":{\"a\":1,\"b\":[1,2],"
	    "\"c\":{\"x\":\"y\",\"z\":2.5}}}"), first, "the first command");
	CHECK(runs(fd) == 3, "%lld runs, want 3", runs(fd));
	json_object_put(first);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 3. results */

Test(idempotency, which_results_are_stored)
{
	json_object *first, *j;
	long long stored, n;
	int fd;

	check_start_with(counter, NULL);
	fd = check_connect();

	/* 500: not stored, every retry runs. */
	for (int i = 1; i <= 3; i++) {
		j = callf(fd, "{\"command\":\"counter.status\","
		    "\"idempotency_key\":\"k500\","
		    "\"payload\":{\"status\":500}}");
		CHECK(code_is(j, "chosen"), "500: %s", reply_text(j));
		expect_ran(j, 500, -1, "a 500 and its retries");
		CHECK(runs(fd) == i, "after %d calls that got 500: %lld runs",
		    i, runs(fd));
	}
	/* 503 is the daemon's own too: not stored. */
	j = callf(fd, "{\"command\":\"counter.status\",\"idempotency_key\":"
	    "\"k503\",\"payload\":{\"status\":503}}");
	expect_ran(j, 503, -1, "a 503");
	j = callf(fd, "{\"command\":\"counter.status\",\"idempotency_key\":"
	    "\"k503\",\"payload\":{\"status\":503}}");
	expect_ran(j, 503, -1, "a 503's retry");
	CHECK(runs(fd) == 5, "a 503 was stored: %lld runs, want 5", runs(fd));

	/* A 4xx the command chose: stored, replayed with its message. */
	first = callf(fd, "{\"command\":\"counter.status\",\"idempotency_key\":"
	    "\"k409\",\"payload\":{\"status\":409}}");
	CHECK(reply_status(first) == 409 && code_is(first, "chosen") &&
	    !replayed(first) && reply_error_message(first) != NULL &&
	    strstr(reply_error_message(first), "run 6") != NULL,
	    "409: %s", reply_text(first));
	expect_replay(callf(fd, "{\"command\":\"counter.status\","
	    "\"idempotency_key\":\"k409\",\"payload\":{\"status\":409}}"),
	    first, "a chosen 409");
	json_object_put(first);
	CHECK(runs(fd) == 6, "the 409 replay ran: %lld runs", runs(fd));

	/* 504: not stored at reply time; the late 200 is. */
	stored = idem_stat(fd, "stored");
	j = callf(fd, "{\"command\":\"counter.hit\",\"idempotency_key\":"
	    "\"k504\",\"timeout_ms\":200,\"payload\":{\"ms\":1000}}");
	CHECK(reply_status(j) == 504 && code_is(j, "timeout"), "504: %s",
	    reply_text(j));
	json_object_put(j);
	CHECK(idem_stat(fd, "stored") == stored, "a 504 was stored");
	wait_count(fd, "stored", NULL, stored + 1);
	CHECK(runs(fd) == 7, "%lld runs, want 7", runs(fd));
	j = callf(fd, "{\"command\":\"counter.hit\",\"idempotency_key\":"
	    "\"k504\",\"payload\":{\"ms\":1000}}");
	CHECK(reply_status(j) == 200 && replayed(j) && run_of(j) == 7,
	    "the late result: %s, want the replay of run 7", reply_text(j));
	json_object_put(j);
	CHECK(runs(fd) == 7, "the replay of a late result ran: %lld runs",
	    runs(fd));

	/* A retry after a 504, while the first call still runs: it runs
	 * (the record went with the deadline), and it is its result, not
	 * the first call's late one, that is stored. */
	j = callf(fd, "{\"command\":\"counter.hit\",\"idempotency_key\":"
	    "\"k504b\",\"timeout_ms\":150,\"payload\":{\"ms\":700}}");
	CHECK(reply_status(j) == 504, "504: %s", reply_text(j));
	json_object_put(j);
	first = callf(fd, "{\"command\":\"counter.hit\",\"idempotency_key\":"
	    "\"k504b\",\"timeout_ms\":5000,\"payload\":{\"ms\":700}}");
	CHECK(reply_status(first) == 200 && !replayed(first) &&
	    run_of(first) == 9, "a retry after a 504: %s, want run 9",
	    reply_text(first));
	n = runs(fd);
	wait_count(fd, NULL, "finished", n);
	expect_replay(callf(fd, "{\"command\":\"counter.hit\","
	    "\"idempotency_key\":\"k504b\",\"payload\":{\"ms\":700}}"), first,
	    "after both finished");
	json_object_put(first);
	CHECK(runs(fd) == 9, "%lld runs, want 9", runs(fd));
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 4. restart */

/* Rows of the store at db with key `key`, or -1 if it cannot be read.
 * Knows the store's table (host/daemon/idem.c): the only way to see
 * that an in-progress record, which no reply waits for, is on disk. */
static int
rows_with_key(const char *db, const char *key)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st;
	int n = -1;

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(h);
		return -1;
	}
	sqlite3_busy_timeout(h, 1000);
	if (sqlite3_prepare_v2(h, "SELECT count(*) FROM idem WHERE key = ?",
	    -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, key, (int)strlen(key), SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(h);
	return n;
}

struct row_wait {
	const char *db, *key;
};

static int
row_written(void *arg)
{
	struct row_wait *w = arg;

	return rows_with_key(w->db, w->key) == 1;
}

/* Start a daemon on the shared state dir and counter file. */
static int
start_on_state(void)
{
	char config[2 * PATH_MAX + 64];

	snprintf(config, sizeof(config), "state_dir = %s/state\n"
	    "[plugin:counter]\nfile = %s/runs\n", state_root, state_root);
	check_start_with(counter, config);
	return check_connect();
}

Test(idempotency, records_survive_sigterm_and_sigkill)
{
	static const char kill_line[] = "{\"command\":\"counter.hit\","
	    "\"idempotency_key\":\"kkill\",\"timeout_ms\":5000,"
	    "\"payload\":{\"ms\":2000}}";
	char db[PATH_MAX + 32];
	struct row_wait rw;
	json_object *done, *seen, *j;
	int64_t sent, deadline, at;
	int fd, slow;

	snprintf(state_root, sizeof(state_root), "/tmp/cmdhost-idem.XXXXXX");
	CHECK(mkdtemp(state_root) != NULL, "mkdtemp");
	snprintf(db, sizeof(db), "%s/state/idempotency.db", state_root);

	/* A done record survives SIGTERM. */
	fd = start_on_state();
	done = callf(fd, "{\"command\":\"counter.hit\",\"idempotency_key\":"
	    "\"kdone\",\"payload\":{}}");
	CHECK(reply_status(done) == 200 && run_of(done) == 1, "first run: %s",
	    reply_text(done));
	close(fd);
	check_stop_clean();
	check_free();

	fd = start_on_state();
	expect_replay(callf(fd, "{\"command\":\"counter.hit\","
	    "\"idempotency_key\":\"kdone\",\"payload\":{}}"), done,
	    "after SIGTERM and a restart");
	CHECK(runs(fd) == 1, "%lld runs, want 1", runs(fd));

	/* A reply the client saw survives SIGKILL right after it. */
	seen = callf(fd, "{\"command\":\"counter.hit\",\"idempotency_key\":"
	    "\"kseen\",\"payload\":{}}");
	CHECK(reply_status(seen) == 200 && run_of(seen) == 2, "kseen: %s",
	    reply_text(seen));
	/* And a keyed call that is running when SIGKILL comes. */
	slow = check_connect();
	sent = now_ms();
	CHECK(client_send(slow, kill_line) == 0, "send");
	wait_count(fd, NULL, "runs", 3);
	rw = (struct row_wait){ db, "kkill" };
	CHECK(wait_until(row_written, &rw, WAIT_MS), "the in-progress record "
	    "of kkill never reached %s", db);
	CHECK(daemon_signal(check_daemon(), SIGKILL) == 0, "SIGKILL");
	CHECK(daemon_wait(check_daemon(), WAIT_MS) == 128 + SIGKILL,
	    "the daemon did not die of SIGKILL");
	close(slow);
	close(fd);
	check_free();

	fd = start_on_state();
	expect_replay(callf(fd, "{\"command\":\"counter.hit\","
	    "\"idempotency_key\":\"kseen\",\"payload\":{}}"), seen,
	    "a reply seen just before SIGKILL");
	/* The killed call's key stays locked until its deadline... */
	j = callf(fd, "%s", kill_line);
	/* 5 s of deadline leave a loaded machine room to restart. */
	CHECK(now_ms() - sent < 5000, "the restart took %lld ms: too slow "
	    "to see the key locked before its deadline",
	    (long long)(now_ms() - sent));
	CHECK(reply_status(j) == 409 && code_is(j, "idempotency_in_progress"),
	    "a retry before the killed call's deadline: %s, want 409",
	    reply_text(j));
	json_object_put(j);
	CHECK(runs(fd) == 3, "%lld runs, want 3", runs(fd));
	/* ... and then a retry runs (with room to finish this time). */
	deadline = now_ms() + WAIT_MS;
	for (;;) {
		at = now_ms();
		j = callf(fd, "{\"command\":\"counter.hit\","
		    "\"idempotency_key\":\"kkill\",\"timeout_ms\":5000,"
		    "\"payload\":{\"ms\":2000}}");
		if (reply_status(j) != 409 || now_ms() >= deadline)
			break;
		json_object_put(j);
		nap_ms(50);
	}
	/* The deadline is on the wall clock, the test's on the monotonic
	 * one: a little slack. */
	CHECK(at - sent >= 4950, "a retry ran %lld ms after the killed call, "
	    "before its deadline of 5000 ms", (long long)(at - sent));
	CHECK(reply_status(j) == 200 && !replayed(j) && run_of(j) == 4,
	    "a retry after the deadline: %s, want run 4", reply_text(j));
	expect_replay(callf(fd, "{\"command\":\"counter.hit\","
	    "\"idempotency_key\":\"kkill\",\"payload\":{\"ms\":2000}}"), j,
	    "the run after the deadline");
	json_object_put(j);
	CHECK(runs(fd) == 4, "%lld runs, want 4", runs(fd));
	json_object_put(done);
	json_object_put(seen);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 5. TTL */

Test(idempotency, done_records_expire_after_the_ttl)
{
	static const char line[] = "{\"command\":\"counter.status\","
	    "\"idempotency_key\":\"kttl\",\"payload\":{}}";
	json_object *first, *j;
	int64_t sent, deadline, at;
	int fd, replays = 0;

	check_start_with(counter, "idempotency_ttl_s = 1\n");
	fd = check_connect();
	sent = now_ms();
	first = callf(fd, "%s", line);
	CHECK(reply_status(first) == 200 && run_of(first) == 1, "first: %s",
	    reply_text(first));
	j = callf(fd, "%s", line);
	CHECK(now_ms() - sent < 1000, "too slow to retry within the TTL");
	expect_replay(j, first, "a retry within the TTL");
	/* Retries replay until the TTL is over; then one runs. */
	deadline = now_ms() + 5000;
	for (;;) {
		at = now_ms();
		j = callf(fd, "%s", line);
		if (!replayed(j) || now_ms() >= deadline)
			break;
		CHECK(json_object_equal(reply_body(j), reply_body(first)),
		    "a replay: %s", reply_text(j));
		json_object_put(j);
		replays++;
		nap_ms(50);
	}
	/* Expiry is on the wall clock, the test's on the monotonic one. */
	CHECK(at - sent >= 950, "the record expired %lld ms after the call, "
	    "before its TTL of 1 s", (long long)(at - sent));
	CHECK(reply_status(j) == 200 && !replayed(j) && run_of(j) == 2,
	    "a retry after the TTL (%d replays before it): %s, want run 2",
	    replays, reply_text(j));
	expect_replay(callf(fd, "%s", line), j, "the run after the TTL");
	json_object_put(j);
	json_object_put(first);
	CHECK(runs(fd) == 2, "%lld runs, want 2", runs(fd));
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 6. scope */

Test(idempotency, keys_are_scoped_by_peer_uid)
{
	static const char line[] = "{\"command\":\"counter.status\","
	    "\"idempotency_key\":\"kuid\",\"payload\":{}}";
	static const char line2[] = "{\"command\":\"counter.status\","
	    "\"idempotency_key\":\"kuid2\",\"payload\":{}}";
	struct daemon_opts o = { .plugins = counter, .config =
	    "socket_mode = 0666\n", .world_accessible = 1 };
	json_object *root, *other;
	int fd;

	check_start(&o);
	fd = check_connect();
	root = callf(fd, "%s", line);
	CHECK(reply_status(root) == 200 && run_of(root) == 1, "root: %s",
	    reply_text(root));
	/* Another uid cannot replay root's key: its call runs. */
	other = call_other("%s", line);
	CHECK(reply_status(other) == 200 && !replayed(other) &&
	    run_of(other) == 2, "uid %d with root's key: %s, want run 2",
	    OTHER_UID, reply_text(other));
	CHECK(runs(fd) == 2, "%lld runs, want 2", runs(fd));
	/* Each has its own record now. */
	expect_replay(call_other("%s", line), other, "the other uid's retry");
	expect_replay(callf(fd, "%s", line), root, "root's retry");
	CHECK(runs(fd) == 2, "%lld runs, want 2", runs(fd));
	CHECK(idem_stat(fd, "records") == 2, "%lld records, want 2",
	    idem_stat(fd, "records"));
	json_object_put(root);
	json_object_put(other);
	close(fd);
	check_stop_clean();
	check_free();

	/* idempotency_shared: one scope for everyone. */
	o.config = "socket_mode = 0666\nidempotency_shared = true\n";
	check_start(&o);
	fd = check_connect();
	root = callf(fd, "%s", line);
	CHECK(reply_status(root) == 200 && run_of(root) == 1, "root: %s",
	    reply_text(root));
	expect_replay(call_other("%s", line), root, "a shared key, other uid");
	other = call_other("%s", line2);
	CHECK(reply_status(other) == 200 && !replayed(other) &&
	    run_of(other) == 2, "a new key as uid %d: %s", OTHER_UID,
	    reply_text(other));
	expect_replay(callf(fd, "%s", line2), other, "a shared key, root");
	CHECK(runs(fd) == 2, "%lld runs, want 2", runs(fd));
	json_object_put(root);
	json_object_put(other);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 7. bad keys */

/* A string of n copies of unit, as JSON string text (with quotes). */
static char *
repeat(const char *unit, int n)
{
	size_t u = strlen(unit);
	char *s = malloc(u * (size_t)n + 3), *p = s;

	cr_assert(s != NULL);
	*p++ = '"';
	for (int i = 0; i < n; i++, p += u)
		memcpy(p, unit, u);
	*p++ = '"';
	*p = '\0';
	return s;
}

Test(idempotency, bad_keys_are_refused)
{
	char *a256 = repeat("a", 256), *e256 = repeat("\xc3\xa9", 128);
	char *a255 = repeat("a", 255), *e254 = repeat("\xc3\xa9", 127);
	const char *bad[] = { "\"\"", a256, e256, "42", "4.5", "true", "{}",
	    "{\"k\":\"v\"}", "[\"k\"]" };
	json_object *first, *j;
	int fd;

	check_start_with(counter, NULL);
	fd = check_connect();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = callf(fd, "{\"id\":%zu,\"command\":\"counter.status\","
		    "\"idempotency_key\":%s,\"payload\":{}}", i, bad[i]);
		CHECK(reply_status(j) == 400 && code_is(j, "bad_request") &&
		    reply_error_message(j) != NULL && strstr(
		    reply_error_message(j), "idempotency_key") != NULL &&
		    int_at(j, "id") == (long long)i, "key %.40s: %s, want 400 "
		    "bad_request naming idempotency_key", bad[i],
		    reply_text(j));
		json_object_put(j);
	}
	CHECK(runs(fd) == 0, "a bad key ran the command: %lld runs", runs(fd));

	/* null is no key, like every other null member: each call runs. */
	for (int i = 1; i <= 2; i++)
		expect_ran(callf(fd, "{\"command\":\"counter.status\","
		    "\"idempotency_key\":null,\"payload\":{}}"), 200, i,
		    "a null key");

	/* 255 bytes (and 254 of two-byte characters) are keys. */
	first = callf(fd, "{\"command\":\"counter.status\",\"idempotency_key\":"
	    "%s,\"payload\":{}}", a255);
	CHECK(reply_status(first) == 200 && !replayed(first) &&
	    run_of(first) == 3, "a 255-byte key: %s", reply_text(first));
	expect_replay(callf(fd, "{\"command\":\"counter.status\","
	    "\"idempotency_key\":%s,\"payload\":{}}", a255), first,
	    "a 255-byte key");
	json_object_put(first);
	first = callf(fd, "{\"command\":\"counter.status\",\"idempotency_key\":"
	    "%s,\"payload\":{}}", e254);
	CHECK(reply_status(first) == 200 && !replayed(first) &&
	    run_of(first) == 4, "a 254-byte key: %s", reply_text(first));
	expect_replay(callf(fd, "{\"command\":\"counter.status\","
	    "\"idempotency_key\":%s,\"payload\":{}}", e254), first,
	    "a 254-byte key");
	json_object_put(first);

	/* Any byte: keys that differ after a NUL are two keys. */
	first = callf(fd, "{\"command\":\"counter.status\",\"idempotency_key\":"
	    "\"x\\u0000y\",\"payload\":{}}");
	CHECK(reply_status(first) == 200 && run_of(first) == 5,
	    "key x\\0y: %s", reply_text(first));
	expect_ran(callf(fd, "{\"command\":\"counter.status\","
	    "\"idempotency_key\":\"x\\u0000z\",\"payload\":{}}"), 200, 6,
	    "key x\\0z after x\\0y");
	expect_ran(callf(fd, "{\"command\":\"counter.status\","
	    "\"idempotency_key\":\"x\",\"payload\":{}}"), 200, 7,
	    "key x after x\\0y");
	expect_replay(callf(fd, "{\"command\":\"counter.status\","
	    "\"idempotency_key\":\"x\\u0000y\",\"payload\":{}}"), first,
	    "key x\\0y again");
	json_object_put(first);
	CHECK(runs(fd) == 7, "%lld runs, want 7", runs(fd));
	free(a256);
	free(e256);
	free(a255);
	free(e254);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 8. stats */

Test(idempotency, stats_count_replays_conflicts_mismatches_stored)
{
	static const char slow_line[] = "{\"command\":\"counter.hit\","
	    "\"idempotency_key\":\"kA\",\"payload\":{\"ms\":500}}";
	json_object *j;
	char *line;
	int fd, slow;

	check_start_with(counter, NULL);
	fd = check_connect();
	slow = check_connect();
	expect_stats(fd, 0, 0, 0, 0, 0, "at start");

	CHECK(client_send(slow, slow_line) == 0, "send");
	wait_count(fd, NULL, "runs", 1);
	expect_stats(fd, 0, 0, 0, 0, 1, "while kA runs");
	j = callf(fd, "%s", slow_line);
	CHECK(reply_status(j) == 409, "kA while it runs: %s", reply_text(j));
	json_object_put(j);
	expect_stats(fd, 0, 1, 0, 0, 1, "after a 409");
	CHECK((line = client_recv_line(slow)) != NULL, "no reply to kA");
	j = json_tokener_parse(line);
	free(line);
	CHECK(reply_status(j) == 200 && !replayed(j), "kA: %s", reply_text(j));
	expect_stats(fd, 0, 1, 0, 1, 1, "after kA finished");

	expect_replay(callf(fd, "%s", slow_line), j, "kA's retry");
	json_object_put(j);
	expect_stats(fd, 1, 1, 0, 1, 1, "after a replay");
	j = callf(fd, "{\"command\":\"counter.hit\",\"idempotency_key\":"
	    "\"kA\",\"payload\":{\"ms\":501}}");
	CHECK(reply_status(j) == 422, "kA, another payload: %s", reply_text(j));
	json_object_put(j);
	expect_stats(fd, 1, 1, 1, 1, 1, "after a 422");

	/* A 500 is not stored and leaves no record; a chosen 409 is. */
	expect_ran(callf(fd, "{\"command\":\"counter.status\","
	    "\"idempotency_key\":\"kB\",\"payload\":{\"status\":500}}"), 500,
	    -1, "kB");
	expect_stats(fd, 1, 1, 1, 1, 1, "after a 500");
	j = callf(fd, "{\"command\":\"counter.status\",\"idempotency_key\":"
	    "\"kC\",\"payload\":{\"status\":409}}");
	CHECK(reply_status(j) == 409 && !replayed(j), "kC: %s", reply_text(j));
	expect_stats(fd, 1, 1, 1, 2, 2, "after a chosen 409");
	expect_replay(callf(fd, "{\"command\":\"counter.status\","
	    "\"idempotency_key\":\"kC\",\"payload\":{\"status\":409}}"), j,
	    "kC's retry");
	json_object_put(j);
	expect_stats(fd, 2, 1, 1, 2, 2, "after a replay of a 409");
	/* Calls without a key count nothing. */
	expect_ran(callf(fd, "{\"command\":\"counter.status\",\"payload\":{}}"),
	    200, -1, "no key");
	expect_stats(fd, 2, 1, 1, 2, 2, "after a call without a key");
	close(slow);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 9. ids */

/* Require reply j to carry the id `want` (JSON text; "null": none) and
 * no other request's. */
static void
expect_id(json_object *j, const char *want, const char *what)
{
	json_object *id = json_path(j, "id");
	const char *have = id != NULL ? json_object_to_json_string_ext(id,
	    JSON_C_TO_STRING_PLAIN) : "null";

	CHECK(strcmp(have, want) == 0, "%s: %s, want id %s", what,
	    reply_text(j), want);
}

Test(idempotency, replies_carry_their_own_request_id)
{
	static const char busy_line[] = "{\"id\":\"slow\",\"command\":"
	    "\"counter.hit\",\"idempotency_key\":\"k9b\",\"payload\":"
	    "{\"ms\":400}}";
	json_object *first, *j;
	const char *rid1;
	char *line;
	int fd, slow;

	check_start_with(counter, NULL);
	fd = check_connect();
	first = callf(fd, "{\"id\":\"first\",\"command\":\"counter.status\","
	    "\"idempotency_key\":\"k9\",\"want_request_id\":true,"
	    "\"payload\":{}}");
	CHECK(reply_status(first) == 200, "first: %s", reply_text(first));
	expect_id(first, "\"first\"", "the first call");
	rid1 = json_path_str(first, "request_id");
	CHECK(rid1 != NULL, "no request_id: %s", reply_text(first));

	j = callf(fd, "{\"id\":\"second\",\"command\":\"counter.status\","
	    "\"idempotency_key\":\"k9\",\"want_request_id\":true,"
	    "\"payload\":{}}");
	expect_id(j, "\"second\"", "a replay");
	CHECK(strstr(reply_text(j), "first") == NULL, "a replay carries the "
	    "first call's id: %s", reply_text(j));
	CHECK(json_path_str(j, "request_id") != NULL && strcmp(json_path_str(
	    j, "request_id"), rid1) != 0, "a replay's request_id: %s, the "
	    "first's was %s", reply_text(j), rid1);
	expect_replay(j, first, "id second");
	j = callf(fd, "{\"id\":42,\"command\":\"counter.status\","
	    "\"idempotency_key\":\"k9\",\"payload\":{}}");
	expect_id(j, "42", "a replay with an integer id");
	expect_replay(j, first, "id 42");
	j = callf(fd, "{\"command\":\"counter.status\",\"idempotency_key\":"
	    "\"k9\",\"payload\":{}}");
	expect_id(j, "null", "a replay without an id");
	expect_replay(j, first, "no id");

	/* 409 and 422 carry theirs too. */
	slow = check_connect();
	CHECK(client_send(slow, busy_line) == 0, "send");
	wait_count(fd, NULL, "runs", 2);
	j = callf(fd, "{\"id\":\"busy\",\"command\":\"counter.hit\","
	    "\"idempotency_key\":\"k9b\",\"payload\":{\"ms\":400}}");
	CHECK(reply_status(j) == 409, "k9b while it runs: %s", reply_text(j));
	expect_id(j, "\"busy\"", "a 409");
	json_object_put(j);
	CHECK((line = client_recv_line(slow)) != NULL, "no reply to k9b");
	j = json_tokener_parse(line);
	free(line);
	CHECK(reply_status(j) == 200, "k9b: %s", reply_text(j));
	expect_id(j, "\"slow\"", "the call that ran");
	json_object_put(j);
	j = callf(fd, "{\"id\":\"other\",\"command\":\"counter.hit\","
	    "\"idempotency_key\":\"k9b\",\"payload\":{\"ms\":1}}");
	CHECK(reply_status(j) == 422, "k9b, another payload: %s",
	    reply_text(j));
	expect_id(j, "\"other\"", "a 422");
	json_object_put(j);
	j = callf(fd, "{\"id\":\"late\",\"command\":\"counter.hit\","
	    "\"idempotency_key\":\"k9b\",\"payload\":{\"ms\":400}}");
	expect_id(j, "\"late\"", "a replay of a pool call");
	CHECK(reply_status(j) == 200 && replayed(j), "k9b retry: %s",
	    reply_text(j));
	json_object_put(j);
	json_object_put(first);
	close(slow);
	close(fd);
	check_stop_clean();
}
