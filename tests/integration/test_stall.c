/*
 * test_stall.c - nothing read is dropped after a loop stalls: requests
 * that arrive while the daemon is stopped (SIGSTOP), or while its one
 * loop is inside a slow inline call, for longer than idle_timeout_ms are
 * all answered once it runs again; the idle sweep does not take requests
 * waiting in a socket for idleness.  And cmdhost gives up on a stopped
 * daemon in time, even when its listen backlog is full.
 */
#include <criterion/criterion.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>

#include "harness.h"

/* 1 when every thread of pid is stopped (state T in its task's stat):
 * kill(SIGSTOP) returns before the threads have stopped, and one still
 * running on the other CPU would answer. */
static int
all_stopped(void *arg)
{
	pid_t pid = *(pid_t *)arg;
	char path[64];
	DIR *d;
	struct dirent *de;
	int n = 0, stopped = 0;

	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char stat[320], buf[512], *p;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(stat, sizeof(stat), "/proc/%ld/task/%s/stat",
		    (long)pid, de->d_name);
		if ((f = fopen(stat, "r")) == NULL)
			continue;
		n++;
		/* The state follows the ")" that ends the thread's name. */
		if (fgets(buf, sizeof(buf), f) != NULL &&
		    (p = strrchr(buf, ')')) != NULL && p[1] == ' ' &&
		    (p[2] == 'T' || p[2] == 't'))
			stopped++;
		fclose(f);
	}
	closedir(d);
	return n > 0 && stopped == n;
}

/* SIGSTOP the test's daemon and wait until all of it has stopped. */
static void
stop_daemon(void)
{
	pid_t pid = daemon_pid(check_daemon());

	cr_assert_eq(daemon_signal(check_daemon(), SIGSTOP), 0);
	cr_assert(wait_until(all_stopped, &pid, 5000), "the daemon did not "
	    "stop");
}

TestSuite(stall, .fini = check_free);

#define N_CONNS 8

Test(stall, requests_sent_during_a_stop_are_all_answered, .timeout = 60)
{
	static const char *const plugins[] = { "good.so", NULL };
	int fds[N_CONNS];
	int64_t t0;

	check_start_with(plugins, "idle_timeout_ms = 200\n");
	for (int i = 0; i < N_CONNS; i++)
		fds[i] = check_connect();
	stop_daemon();
	for (int i = 0; i < N_CONNS; i++)
		cr_assert_eq(client_send(fds[i], "{\"id\":7,\"command\":"
		    "\"test.echo\",\"payload\":{\"n\":1}}"), 0);
	/* The stall itself is the case: three idle timeouts long. */
	t0 = now_ms();
	while (now_ms() - t0 < 600)
		nap_ms(20);
	cr_assert_eq(daemon_signal(check_daemon(), SIGCONT), 0);
	for (int i = 0; i < N_CONNS; i++) {
		char *line = client_recv_line(fds[i]);

		cr_assert(line != NULL && strstr(line, "\"status\":200") != NULL,
		    "connection %d: %s", i, line ? line : "no reply (dropped)");
		free(line);
		close(fds[i]);
	}
	check_stop_clean();
}

Test(stall, requests_sent_during_a_slow_inline_call_are_all_answered,
    .timeout = 60)
{
	static const char *const plugins[] = { "good.so", "slow_inline.so",
	    NULL };
	int slow, fds[N_CONNS];
	int64_t t0;
	char *line;

	/* One loop, and a budget the slow call stays inline under. */
	check_start_with(plugins, "workers = 1\nidle_timeout_ms = 200\n"
	    "inline_budget_us = 10000000\n");
	slow = check_connect();
	for (int i = 0; i < N_CONNS; i++)
		fds[i] = check_connect();
	cr_assert_eq(client_send(slow, "{\"command\":\"slow.inline\","
	    "\"payload\":{\"ms\":800}}"), 0);
	/* The loop's log lines wait for the end of its turn, so the call's
	 * start cannot be seen from here: give it 100 ms of its 800 (if it
	 * has not started by then, the echo calls run first and the case
	 * passes without a stall). */
	t0 = now_ms();
	while (now_ms() - t0 < 100)
		nap_ms(10);
	for (int i = 0; i < N_CONNS; i++)
		cr_assert_eq(client_send(fds[i], "{\"id\":7,\"command\":"
		    "\"test.echo\",\"payload\":{\"n\":1}}"), 0);
	line = client_recv_line(slow);
	cr_assert(line != NULL && strstr(line, "\"status\":200") != NULL,
	    "slow: %s", line ? line : "no reply");
	free(line);
	for (int i = 0; i < N_CONNS; i++) {
		line = client_recv_line(fds[i]);
		cr_assert(line != NULL && strstr(line, "\"status\":200") != NULL,
		    "connection %d: %s", i, line ? line : "no reply (dropped)");
		free(line);
		close(fds[i]);
	}
	close(slow);
	check_stop_clean();
}

/* cmdhost gives up on a daemon that does not answer: with -t 500, after
 * the deadline and a second, exit 3 (a connection error). */
Test(stall, cmdhost_gives_up_on_a_stopped_daemon, .timeout = 60)
{
	static const char *const plugins[] = { "good.so", NULL };
	char cli[4096], *err = NULL;
	char *argv[] = { cli, (char *)"-s", NULL, (char *)"-t",
	    (char *)"500", (char *)"ping", NULL };
	int64_t t0, took;
	int st = -1;

	check_start_with(plugins, NULL);
	snprintf(cli, sizeof(cli), "%s/cmdhost", CMDHOST_BUILD_DIR);
	argv[2] = (char *)daemon_socket_path(check_daemon());
	stop_daemon();
	t0 = now_ms();
	cr_assert_eq(run_command(argv, NULL, 20000, &st, NULL, &err), 0,
	    "cmdhost did not return on its own");
	took = now_ms() - t0;
	cr_assert_eq(daemon_signal(check_daemon(), SIGCONT), 0);
	cr_assert_eq(st, 3, "exit %d: %s", st, err ? err : "");
	cr_assert(err != NULL && strstr(err, "no reply within 1500 ms") != NULL,
	    "stderr: %s", err ? err : "");
	cr_assert(took >= 1400 && took < 5000, "it took %lld ms",
	    (long long)took);
	free(err);
	check_stop_clean();
}

/* The daemon's listen() backlog (listener.c), and one more to fill it. */
#define BACKLOG 4096

/*
 * Connect without blocking until the socket at path takes no more (the
 * backlog of a stopped daemon is full).  The fds go to fds[0..max).
 * Returns how many were queued, or -1 on an unexpected error.
 */
static int
fill_backlog(const char *path, int *fds, int max)
{
	struct sockaddr_un sun;
	int n = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	while (n < max) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			int e = errno;

			close(fd);
			return e == EAGAIN ? n : -1;
		}
		fds[n++] = fd;
	}
	return n;
}

/* connect() itself blocked while the backlog was full: cmdhost hung
 * there, before its reply timeout was even set. */
Test(stall, cmdhost_gives_up_when_the_backlog_is_full, .timeout = 90)
{
	static const char *const plugins[] = { "good.so", NULL };
	enum { MAX = BACKLOG + 64 };
	char cli[4096], *err = NULL;
	char *argv[] = { cli, (char *)"-s", NULL, (char *)"-t",
	    (char *)"500", (char *)"ping", NULL };
	struct rlimit rl;
	int64_t t0, took;
	int *fds, n, st = -1, rc;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < MAX + 256) {
		if (rl.rlim_max < MAX + 256)
			cr_skip_test("RLIMIT_NOFILE %llu is too low to fill a "
			    "backlog of %d", (unsigned long long)rl.rlim_max,
			    BACKLOG);
		rl.rlim_cur = MAX + 256;
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	cr_assert_not_null(fds = calloc(MAX, sizeof(*fds)));
	check_start_with(plugins, NULL);
	snprintf(cli, sizeof(cli), "%s/cmdhost", CMDHOST_BUILD_DIR);
	argv[2] = (char *)daemon_socket_path(check_daemon());
	stop_daemon();
	n = fill_backlog(daemon_socket_path(check_daemon()), fds, MAX);
	if (n < 0 || n >= MAX) {
		daemon_signal(check_daemon(), SIGCONT);
		cr_assert_fail("the backlog did not fill: %d queued (%s)", n,
		    strerror(errno));
	}
	t0 = now_ms();
	rc = run_command(argv, NULL, 20000, &st, NULL, &err);
	took = now_ms() - t0;
	cr_assert_eq(daemon_signal(check_daemon(), SIGCONT), 0);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	cr_assert_eq(rc, 0, "cmdhost did not return on its own (%d queued "
	    "connections)", n);
	cr_assert_eq(st, 3, "exit %d: %s", st, err ? err : "");
	cr_assert(err != NULL && strstr(err, "not taken within 1500 ms") !=
	    NULL, "stderr: %s", err ? err : "");
	cr_assert(took >= 1400 && took < 10000, "it took %lld ms",
	    (long long)took);
	free(err);
	/* Once it runs again it serves: the queued ones were closed. */
	{
		int fd = check_connect();

		json_object_put(check_call(fd, "{\"id\":1,\"command\":"
		    "\"host.ping\"}", 200, NULL));
		close(fd);
	}
	check_stop_clean();
}
