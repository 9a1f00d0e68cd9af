/*
 * test_lifecycle.c - start-up and shutdown of a real daemon: graceful
 * SIGTERM/SIGINT with calls in flight, a live socket is never stolen, a
 * stale one is replaced, and config errors stop start-up with file:line.
 */
#include <criterion/criterion.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct daemon *d;
static char scratch[64];	/* a temp dir of the test's own, or "" */

static void
teardown(void)
{
	char path[128];

	check_free();
	d = NULL;
	if (scratch[0] != '\0') {
		snprintf(path, sizeof(path), "%s/stale.sock", scratch);
		unlink(path);
		rmdir(scratch);
		scratch[0] = '\0';
	}
}

TestSuite(lifecycle, .fini = teardown);

static const char *const good[] = { "good.so", NULL };

/* The last daemon stderr a test looked at, for its assert messages. */
static char seen[8192];

/* Copy `s` (may be NULL) into seen[] and free it, so a failing assert
 * leaks nothing. */
static void
keep_text(char *s)
{
	snprintf(seen, sizeof(seen), "%s", s != NULL ? s : "(none)");
	free(s);
}

static void
start(const char *socket)
{
	struct daemon_opts o = { .plugins = good, .socket = socket };

	d = check_start(&o);
}

static void
expect_ping(void)
{
	json_object *j = client_call_once(daemon_socket_path(d),
	    "{\"command\":\"host.ping\"}");

	CHECK(reply_status(j) == 200, "ping: %s", reply_text(j));
	json_object_put(j);
}

static int
path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Condition for wait_until(): host.stats shows 5 test.sleep in flight. */
static int
five_sleeps_in_flight(void *arg)
{
	json_object *j;
	int got;

	(void)arg;
	j = client_call_once(daemon_socket_path(d),
	    "{\"command\":\"host.stats\"}");
	got = json_object_get_int(json_path(j,
	    "body/commands/test.sleep/in_flight"));
	json_object_put(j);
	return got == 5;
}

static void
drain_on_signal(int sig)
{
	enum { N = 5 };
	json_object *j;
	char sock[4096];
	int fds[N], idle, i, st;

	start(NULL);
	snprintf(sock, sizeof(sock), "%s", daemon_socket_path(d));
	for (i = 0; i < N; i++) {
		char line[128];

		fds[i] = check_connect();
		snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
		    "\"test.sleep\",\"payload\":{\"ms\":300}}", i);
		CHECK(client_send(fds[i], line) == 0, "send %d", i);
	}
	/* An idle connection must not hold shutdown up. */
	idle = check_connect();
	CHECK(wait_until(five_sleeps_in_flight, NULL, 5000),
	    "the %d calls never were in flight together", N);

	CHECK(daemon_signal(d, sig) == 0, "kill");
	for (i = 0; i < N; i++) {
		char *line = client_recv_line(fds[i]);

		CHECK(line != NULL, "call %d got no reply after signal %d", i,
		    sig);
		j = json_tokener_parse(line);
		CHECK(reply_status(j) == 200 &&
		    json_object_get_int(reply_id(j)) == i &&
		    json_object_get_int(json_path(j, "body/slept")) == 300,
		    "call %d: %s", i, line);
		json_object_put(j);
		free(line);
		close(fds[i]);
	}
	st = daemon_wait(d, 15000);
	CHECK(st == 0, "exit status %d after signal %d, want 0", st, sig);
	CHECK(!path_exists(sock), "socket %s still exists", sock);
	CHECK(client_wait_eof(idle, 5000), "idle connection not closed");
	close(idle);
}

Test(lifecycle, sigterm_answers_calls_in_flight, .timeout = 60)
{
	drain_on_signal(SIGTERM);
}

Test(lifecycle, sigint_answers_calls_in_flight, .timeout = 60)
{
	drain_on_signal(SIGINT);
}

Test(lifecycle, live_socket_is_not_stolen, .timeout = 60)
{
	char *config, *err = NULL;
	int rc, st;

	start(NULL);
	cr_assert(asprintf(&config, "[host]\nsocket = %s\n"
	    "plugin_dir = plugins\nworkers = 2\n",
	    daemon_socket_path(d)) != -1);
	rc = daemon_run_expect_fail(config, &st, &err);
	free(config);
	keep_text(err);
	CHECK(rc == 0, "a second daemon on %s kept running; its stderr:\n%s",
	    daemon_socket_path(d), seen);
	CHECK(st != 0, "a second daemon exited 0; stderr: %s", seen);

	CHECK(path_exists(daemon_socket_path(d)), "socket file was removed");
	expect_ping();
	st = daemon_stop(d);
	CHECK(st == 0, "exit status %d", st);
}

/*
 * Issue 14, item 9: start-up claims the socket before any plugin code
 * runs.  A second daemon on a live socket whose plugin_dir holds a
 * plugin with a crashing ELF constructor (and no probe to load it
 * elsewhere first) must stop with its "in use" error, exit 1: had it
 * loaded plugins first it would die of SIGSEGV.
 */
Test(lifecycle, socket_is_claimed_before_plugin_code_runs, .timeout = 60)
{
	char *config, *err = NULL, from[512], dir[128], so[192];
	size_t len;
	void *bytes;
	FILE *f;
	int rc, st;

	start(NULL);
	snprintf(scratch, sizeof(scratch), "/tmp/cmdhost-claim.XXXXXX");
	cr_assert_not_null(mkdtemp(scratch));
	cr_assert(chmod(scratch, 0755) == 0);
	snprintf(dir, sizeof(dir), "%s/plugins", scratch);
	cr_assert(mkdir(dir, 0755) == 0);
	snprintf(so, sizeof(so), "%s/ctor_segv.so", dir);
	cr_assert(harness_plugin_path("ctor_segv.so", from, sizeof(from)) == 0);
	cr_assert_not_null(bytes = harness_read_bytes(from, &len));
	cr_assert_not_null(f = fopen(so, "wb"));
	cr_assert(fwrite(bytes, 1, len, f) == len);
	cr_assert(fclose(f) == 0);
	free(bytes);
	cr_assert(asprintf(&config, "[host]\nsocket = %s\n"
	    "plugin_dir = %s\nworkers = 2\nprobe = false\n",
	    daemon_socket_path(d), dir) != -1);
	rc = daemon_run_expect_fail(config, &st, &err);
	free(config);
	keep_text(err);
	unlink(so);
	rmdir(dir);
	CHECK(rc == 0, "a second daemon on %s kept running; its stderr:\n%s",
	    daemon_socket_path(d), seen);
	CHECK(st == 1, "a second daemon exited %d (a plugin ran before the "
	    "socket was claimed?); stderr: %s", st, seen);
	CHECK(strstr(seen, "ctor_segv") == NULL, "the plugin was looked at:"
	    "\n%s", seen);
	expect_ping();
	st = daemon_stop(d);
	CHECK(st == 0, "exit status %d", st);
}

Test(lifecycle, stale_socket_is_replaced, .timeout = 60)
{
	struct sockaddr_un sun;
	char path[128];
	int fd, st;

	snprintf(scratch, sizeof(scratch), "/tmp/cmdhost-stale.XXXXXX");
	cr_assert_not_null(mkdtemp(scratch));
	snprintf(path, sizeof(path), "%s/stale.sock", scratch);

	/* Bind and close without unlinking: the file stays, nobody listens. */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	cr_assert(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert(fd != -1);
	cr_assert(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	close(fd);
	cr_assert(path_exists(path));
	cr_assert_eq(client_connect(path), -1, "the stale socket accepts");

	start(path);
	expect_ping();
	st = daemon_stop(d);
	CHECK(st == 0, "exit status %d", st);
	CHECK(!path_exists(path), "socket not removed at exit");
}

/* Non-zero if text contains "cmdhost.ini:<line>" not followed by a digit. */
static int
has_file_line(const char *text, int line)
{
	char want[64];
	const char *p = text;
	size_t n;

	n = (size_t)snprintf(want, sizeof(want), "cmdhost.ini:%d", line);
	while ((p = strstr(p, want)) != NULL) {
		if (!isdigit((unsigned char)p[n]))
			return 1;
		p++;
	}
	return 0;
}

Test(lifecycle, config_errors_stop_startup, .timeout = 60)
{
	static const struct {
		const char *text;
		int line;
		const char *key;
	} cases[] = {
		{ "; test config\n[host]\nsocket = cmdhost.sock\n"
		  "plugin_dir = plugins\nbogus = 1\n", 5, "bogus" },
		{ "[host]\nsocket = cmdhost.sock\n\n; a comment\n"
		  "plugin_dir = plugins\nworkers = -3\n", 6, "workers" },
		{ "[host]\nsocket_mode = 999\nsocket = cmdhost.sock\n"
		  "plugin_dir = plugins\n", 2, "socket_mode" },
		{ "; c\n[host]\nsocket = cmdhost.sock\nlog_level = loud\n"
		  "plugin_dir = plugins\n", 4, "log_level" },
		{ "[plugin:good]\ngreeting = hi\n\n[host]\n"
		  "socket = cmdhost.sock\nplugin_dir = plugins\n"
		  "max_connections = lots\n", 7, "max_connections" },
	};
	char *err;
	size_t i;
	int rc, st;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = daemon_run_expect_fail(cases[i].text, &st, &err);
		keep_text(err);
		cr_assert(rc == 0, "case %zu: the daemon kept running:\n%s", i,
		    cases[i].text);
		cr_assert(st == 1, "case %zu: exit status %d, want 1; stderr:"
		    "\n%s", i, st, seen);
		cr_assert(has_file_line(seen, cases[i].line),
		    "case %zu: stderr lacks cmdhost.ini:%d:\n%s", i,
		    cases[i].line, seen);
		cr_assert(strstr(seen, cases[i].key) != NULL,
		    "case %zu: stderr does not name %s:\n%s", i,
		    cases[i].key, seen);
	}
}

Test(lifecycle, missing_config_file, .timeout = 60)
{
	char *err, *path, want[512];
	int rc, st;

	rc = daemon_run_expect_fail_path(NULL, &st, &err, &path);
	keep_text(err);
	cr_assert_not_null(path);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	free(path);
	cr_assert(rc == 0, "the daemon kept running without a config");
	cr_assert(st == 1, "exit status %d, want 1; stderr:\n%s", st, seen);
	cr_assert(strstr(seen, want) != NULL, "stderr lacks \"%s\":\n%s",
	    want, seen);
}
