/*
 * test_isolation.c - process isolation and the load probe, against a real
 * daemon: a plugin whose calls crash in every way costs those calls one
 * 500 plugin_crashed each and nothing else; a call past its deadline is
 * answered 504 on time and its worker, and what it forked, are gone; a
 * file whose constructor crashes or spins, or whose registration hangs,
 * is refused by the probe at start and on reload; SIGKILL of the daemon
 * leaves no worker behind.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(isolation, .fini = check_free);

#ifdef CMDHOST_DAEMON_SANITIZED
/* A sanitizer's runtime takes the fatal signals (it reports and exits 1,
 * or UBSan reports and goes on) and keeps its own shadow memory: the
 * death and memory figures this test asserts are the plain build's. It
 * runs in `make test`. */
#define SKIP_UNDER_SANITIZER() cr_skip_test("a sanitizer takes the " \
    "fatal signals and the memory figures; this runs in the plain build")
#else
#define SKIP_UNDER_SANITIZER() ((void)0)
#endif

#ifdef CMDHOST_DAEMON_SANITIZED
#define SLACK_MS 250
#else
#define SLACK_MS 100
#endif

static const char *const iso_plugins[] = { "crashy.so", "hangs.so",
	"plugins/echo.so", NULL };
static const char iso_config[] =
	"load_timeout_ms = 3000\n"
	"[plugin:crashy]\nisolation = process\nworkers = 2\n"
	"[plugin:hangs]\nisolation = process\nworkers = 1\n";

/* The process group of pid, or -1 when it is gone (or a zombie). */
static long
pgid_of(long pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	char state;
	long ppid, pgid;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		return -1;
	}
	fclose(f);
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %c %ld %ld", &state, &ppid, &pgid) != 3 ||
	    state == 'Z')
		return -1;
	return pgid;
}

/* How many live processes are in process group pgid, or whose parent is
 * ppid (either may be 0: not asked). */
static int
count_procs(long pgid, long ppid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char path[64], buf[512], *p, state;
		long pid = atol(e->d_name), pp, pg;
		FILE *f;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) != NULL &&
		    (p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 1, " %c %ld %ld", &state, &pp, &pg) == 3 &&
		    state != 'Z' && ((pgid > 0 && pg == pgid) ||
		    (ppid > 0 && pp == ppid)))
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

struct gone {
	long pgid;
};

static int
group_gone(void *arg)
{
	return count_procs(((struct gone *)arg)->pgid, 0) == 0;
}

/* 1.1 Every way of dying costs exactly its call; the rest are 200:
 * 16 connections, each pipelining its share of a mixed load of 3,000
 * calls, 1,000 of which crash their worker. */
Test(isolation, crashes_cost_one_call_each, .timeout = 120)
{
	static const char *const kinds[] = { "crashy.segv", "crashy.abort",
	    "crashy.exit", "crashy._exit", "crashy.kill" };
	static const char *const words[] = { "SIGSEGV", "SIGABRT",
	    "status 3", "status 4", "SIGKILL" };
	enum { ROUNDS = 200, CONNS = 16, N = ROUNDS * 15 };
	int fds[CONNS], crashed = 0, ok = 0, fd;
	char line[160];

	SKIP_UNDER_SANITIZER();
	check_start_with(iso_plugins, iso_config);
	for (int f = 0; f < CONNS; f++)
		fds[f] = check_connect();
	/* Call i: a crash when i % 3 == 0, else crashy.ok or echo; on
	 * connection i % CONNS, whose replies come back in its order. */
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0)
			snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
			    "\"%s\"}", i, kinds[(i / 3) % 5]);
		else if (i % 3 == 1)
			snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
			    "\"crashy.ok\"}", i);
		else
			snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
			    "\"echo\",\"payload\":{\"n\":%d}}", i, i);
		CHECK(client_send(fds[i % CONNS], line) == 0, "send %d", i);
	}
	for (int f = 0; f < CONNS; f++) {
		for (int i = f; i < N; i += CONNS) {
			char *s = client_recv_line(fds[f]);
			json_object *j = s ? json_tokener_parse(s) : NULL;
			int id = j ? json_object_get_int(reply_id(j)) : -1;

			CHECK(j != NULL, "reply %d missing (lost)", i);
			CHECK(id == i, "reply for %d has id %d (order)", i, id);
			if (i % 3 == 0) {
				const char *msg = reply_error_message(j);

				CHECK(reply_status(j) == 500 &&
				    strcmp(reply_error_code(j),
				    "plugin_crashed") == 0, "call %d: %s", i, s);
				CHECK(msg && strstr(msg, words[(i / 3) % 5]),
				    "call %d: message names how: %s", i, s);
				crashed++;
			} else {
				CHECK(reply_status(j) == 200, "call %d: %s", i,
				    s);
				ok++;
			}
			json_object_put(j);
			free(s);
		}
	}
	cr_expect_eq(crashed, N / 3);
	cr_expect_eq(ok, N - N / 3);
	fd = fds[0];
	{
		json_object *j = check_call(fd, "{\"command\":\"host.stats\"}",
		    200, NULL);
		json_object *c = json_path(j, "body/workers/crashy/restarts/"
		    "crash");

		CHECK(c && json_object_get_int(c) == N / 3,
		    "crash restarts counted: %s", reply_text(j));
		json_object_put(j);
		j = check_call(fd, "{\"command\":\"host.list\"}", 200, NULL);
		CHECK(strstr(reply_text(j), "\"isolation\":\"process\"") &&
		    strstr(reply_text(j), "\"worker_pids\""), "host.list: %s",
		    reply_text(j));
		json_object_put(j);
	}
	for (int f = 0; f < CONNS; f++)
		close(fds[f]);
	cr_expect_eq(daemon_stop(check_daemon()), 0);
}

/* host.stats says hangs.spin is in flight. */
static int
spin_in_flight(void *arg)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.stats\"}");
	json_object *v = json_path(j, "body/commands/hangs.spin/in_flight");
	int yes = v != NULL && json_object_get_int(v) == 1;

	(void)arg;
	json_object_put(j);
	return yes;
}

/* 1.2b Calls sent ahead (worker_pipeline) behind one that passes its
 * deadline never started: the spinning call gets its 504 and its worker
 * is killed, and the calls queued behind it in that worker go back to
 * the queue and are answered 200 by the new worker -- not the 500 of
 * "another call in it passed its deadline". One worker, so the calls
 * that came after the spin (each on a connection of its own) were all
 * sent to the worker that is killed. */
Test(isolation, calls_behind_a_killed_call_run_on_the_next_worker)
{
	static const char *const one[] = { "hangs.so", NULL };
	enum { BEHIND = 5 };
	int fds[BEHIND + 1];
	long first;

	check_start_with(one, "[plugin:hangs]\nisolation = process\n"
	    "workers = 1\nworker_pipeline = 8\n");
	for (int i = 0; i <= BEHIND; i++)
		fds[i] = check_connect();
	{
		json_object *j = check_call(fds[0],
		    "{\"command\":\"hangs.pid\"}", 200, NULL);

		first = json_object_get_int(json_path(j, "body/pid"));
		json_object_put(j);
	}
	CHECK(client_send(fds[0], "{\"id\":0,\"command\":\"hangs.spin\","
	    "\"timeout_ms\":1500}") == 0, "send");
	/* Queued first: what comes after goes behind it. */
	CHECK(wait_until(spin_in_flight, NULL, 10000), "the spin never "
	    "went in flight");
	for (int i = 1; i <= BEHIND; i++) {
		char line[96];

		snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
		    "\"hangs.pid\",\"timeout_ms\":30000}", i);
		CHECK(client_send(fds[i], line) == 0, "send %d", i);
	}
	for (int i = 0; i <= BEHIND; i++) {
		char *r = client_recv_line(fds[i]);
		json_object *j = r ? json_tokener_parse(r) : NULL;

		CHECK(j != NULL, "reply %d missing", i);
		if (i == 0) {
			CHECK(reply_status(j) == 504, "the spin: %s", r);
		} else {
			CHECK(reply_status(j) == 200, "call %d behind the spin: "
			    "%s", i, r);
			CHECK(json_object_get_int(json_path(j, "body/pid")) !=
			    first, "call %d ran on the killed worker: %s", i,
			    r);
		}
		json_object_put(j);
		free(r);
	}
	for (int i = 0; i <= BEHIND; i++)
		close(fds[i]);
	cr_expect_eq(daemon_stop(check_daemon()), 0);
}

/* 1.2 spin and sleep(30) past their deadline: 504 on time, the worker
 * and the child it forked gone, the next call served by a new worker. */
Test(isolation, deadline_kills_the_worker_group)
{
	static const char *const cmds[] = { "hangs.spin", "hangs.sleep" };
	int fd;

	check_start_with(iso_plugins, iso_config);
	fd = check_connect();
	for (int i = 0; i < 2; i++) {
		json_object *j = check_call(fd, "{\"command\":\"hangs.pid\"}",
		    200, NULL);
		long pid = json_object_get_int(json_path(j, "body/pid"));
		struct gone g = { pid };
		char line[128];
		int64_t t0, took;

		json_object_put(j);
		CHECK(pgid_of(pid) == pid, "worker %ld leads its group", pid);
		snprintf(line, sizeof(line), "{\"command\":\"%s\","
		    "\"timeout_ms\":300}", cmds[i]);
		t0 = now_ms();
		j = check_call(fd, line, 504, "timeout");
		took = now_ms() - t0;
		json_object_put(j);
		CHECK(took >= 290 && took <= 300 + 50 + SLACK_MS,
		    "%s: 504 after %lld ms", cmds[i], (long long)took);
		CHECK(wait_until(group_gone, &g, 3000), "%s: process group "
		    "%ld still has processes", cmds[i], pid);
		j = check_call(fd, "{\"command\":\"hangs.pid\"}", 200, NULL);
		CHECK(json_object_get_int(json_path(j, "body/pid")) != pid,
		    "a new worker serves");
		json_object_put(j);
	}
	CHECK(daemon_log_contains(check_daemon(), "\"reason\":\"timeout\""),
	    "the respawn is logged with its reason");
	close(fd);
	cr_expect_eq(daemon_stop(check_daemon()), 0);
}

/* Non-zero if host.list shows plugin file `file` refused with `why`. */
static int
refused_with(const char *file, const char *why)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.list\"}");
	json_object *arr = json_path(j, "body/plugins");
	int found = 0;

	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		json_object *p = json_object_array_get_idx(arr, i);
		const char *f = json_path_str(p, "file");
		const char *e = json_path_str(p, "error");

		if (f && strcmp(f, file) == 0 && e && strstr(e, why))
			found = 1;
	}
	json_object_put(j);
	return found;
}

/* 1.3 Constructors that crash or spin, a registration that hangs: refused
 * by the probe with the reason, at start and on reload; same daemon. */
Test(isolation, probe_refuses_bad_loads)
{
	static const char *const bad[] = { "ctor_segv.so", "ctor_spin.so",
	    "reg_hangs.so", "plugins/echo.so", NULL };
	pid_t pid;
	json_object *j;
	int fd;

	SKIP_UNDER_SANITIZER();
	check_start_with(bad, "load_timeout_ms = 1000\n");
	pid = daemon_pid(check_daemon());
	CHECK(refused_with("ctor_segv.so", "SIGSEGV"), "ctor_segv refused");
	CHECK(refused_with("ctor_spin.so", "did not finish loading"),
	    "ctor_spin refused");
	CHECK(refused_with("reg_hangs.so", "did not finish loading"),
	    "reg_hangs refused");
	fd = check_connect();
	j = check_call(fd, "{\"command\":\"echo\"}", 200, NULL);
	json_object_put(j);
	/* Hot reload: the same refusals, under other names. */
	CHECK(daemon_install_plugin(check_daemon(), "ctor_segv.so",
	    "again_segv.so") == 0, "install");
	CHECK(daemon_install_plugin(check_daemon(), "ctor_spin.so",
	    "again_spin.so") == 0, "install");
	j = check_call(fd, "{\"command\":\"host.reload\"}", 200, NULL);
	json_object_put(j);
	CHECK(refused_with("again_segv.so", "SIGSEGV"), "reload: segv");
	CHECK(refused_with("again_spin.so", "did not finish loading"),
	    "reload: spin");
	CHECK(daemon_pid(check_daemon()) == pid && kill(pid, 0) == 0,
	    "the daemon's pid never changed");
	close(fd);
}

/* 1.4 SIGKILL the daemon while its workers are busy: none is left. */
Test(isolation, workers_die_with_the_daemon)
{
	long pids[3];
	pid_t daemon;
	int fds[3];

	check_start_with(iso_plugins, iso_config);
	daemon = daemon_pid(check_daemon());
	for (int i = 0; i < 3; i++) {
		fds[i] = check_connect();
		CHECK(client_send(fds[i], i < 2 ? "{\"command\":\"crashy.ok\"}" :
		    "{\"command\":\"hangs.pid\"}") == 0, "send");
		{
			char *s = client_recv_line(fds[i]);
			json_object *j = s ? json_tokener_parse(s) : NULL;

			pids[i] = j ? json_object_get_int(json_path(j,
			    "body/pid")) : 0;
			json_object_put(j);
			free(s);
		}
	}
	/* Busy: a call that spins in hangs' only worker. */
	CHECK(client_send(fds[2], "{\"command\":\"hangs.spin\","
	    "\"timeout_ms\":60000}") == 0, "send");
	nap_ms(100);
	CHECK(count_procs(0, daemon) >= 3, "the daemon has its workers");
	daemon_signal(check_daemon(), SIGKILL);
	daemon_wait(check_daemon(), 5000);
	for (int i = 0; i < 3; i++) {
		struct gone g = { pids[i] };

		CHECK(pids[i] > 0 && wait_until(group_gone, &g, 3000),
		    "worker %ld's group outlived the daemon", pids[i]);
		close(fds[i]);
	}
}

/* 1.5 A worker that leaks past worker_memory_bytes is recycled: the call
 * that went past gets one 5xx, the next calls succeed in a new worker. */
Test(isolation, leak_past_the_limit_recycles)
{
	static const char *const leaky[] = { "hangs.so", NULL };
	int fd, over = 0, i;
	long first = 0, last = 0;

	SKIP_UNDER_SANITIZER();
	check_start_with(leaky, "[plugin:hangs]\nisolation = process\n"
	    "workers = 1\nworker_memory_bytes = 134217728\n");
	fd = check_connect();
	for (i = 0; i < 12 && over == 0; i++) {
		json_object *j = client_call(fd, "{\"command\":\"hangs.leak\","
		    "\"payload\":{\"mb\":32}}");

		CHECK(j != NULL, "reply");
		if (reply_status(j) == 200) {
			last = json_object_get_int(json_path(j, "body/pid"));
			if (first == 0)
				first = last;
			CHECK(last == first, "same worker until the limit");
		} else {
			CHECK(reply_status(j) == 500 && strcmp(reply_error_code(
			    j), "worker_memory") == 0, "%s", reply_text(j));
			over++;
		}
		json_object_put(j);
	}
	CHECK(over == 1 && i >= 2, "one call went past the limit (%d calls)",
	    i);
	for (int k = 0; k < 2; k++) {
		json_object *j = check_call(fd, "{\"command\":\"hangs.leak\","
		    "\"payload\":{\"mb\":1}}", 200, NULL);

		CHECK(json_object_get_int(json_path(j, "body/pid")) != first,
		    "a new worker serves");
		json_object_put(j);
	}
	{
		json_object *j = check_call(fd, "{\"command\":\"host.stats\"}",
		    200, NULL);
		json_object *m = json_path(j, "body/workers/hangs/restarts/"
		    "memory");

		CHECK(m && json_object_get_int(m) == 1, "%s", reply_text(j));
		json_object_put(j);
	}
	close(fd);
	cr_expect_eq(daemon_stop(check_daemon()), 0);
}

/* Open descriptors of process pid, or -1. */
static int
fd_count(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

struct fds {
	pid_t pid;
	int want;     /* fds_back: the count wanted */
	int last, same; /* fds_steady: the count seen, and how often */
};

static int
fds_back(void *arg)
{
	struct fds *f = arg;

	return fd_count(f->pid) == f->want;
}

/* The same count at 20 looks in a row: no recycle under way. */
static int
fds_steady(void *arg)
{
	struct fds *f = arg;
	int n = fd_count(f->pid);

	f->same = n == f->last ? f->same + 1 : 0;
	f->last = n;
	return f->same >= 20;
}

/* 1.6 500 respawns (max_requests = 1 recycles after every call): the
 * daemon's descriptors are back where they were, and its resident set
 * has not grown by what 500 leaked spawns would hold (a leak of 2 KiB a
 * spawn is 1 MiB). 50 respawns first, so that what the allocator keeps
 * for good is in the "before" figure. */
#define RESPAWNS 500
#define RSS_SLACK_KIB 1024

static void
call_pid(int fd, int n)
{
	for (int i = 0; i < n; i++)
		json_object_put(check_call(fd, "{\"command\":\"hangs.pid\"}",
		    200, NULL));
}

Test(isolation, respawns_leak_no_descriptors_nor_memory, .timeout = 90)
{
	static const char *const one[] = { "hangs.so", NULL };
	pid_t pid;
	int fd, before, after;
	long rss_before, rss_after;

	check_start_with(one, "[plugin:hangs]\nisolation = process\n"
	    "workers = 1\nmax_requests = 1\n");
	pid = daemon_pid(check_daemon());
	fd = check_connect();
	call_pid(fd, 50);
	{
		struct fds f = { pid, 0, -1, 0 };

		wait_until(fds_steady, &f, 5000);
	}
	before = fd_count(pid);
	rss_before = proc_rss_kib(pid);
	call_pid(fd, RESPAWNS + 1);
	/* A recycle may be under way (two processes' socket and pidfd). */
	{
		struct fds f = { pid, before, -1, 0 };

		wait_until(fds_back, &f, 3000);
	}
	after = fd_count(pid);
	rss_after = proc_rss_kib(pid);
	CHECK(before > 0 && after == before, "daemon fds %d before, %d after "
	    "%d respawns", before, after, RESPAWNS);
	cr_log_info("daemon RSS %ld KiB before, %ld KiB after %d respawns",
	    rss_before, rss_after, RESPAWNS);
#ifndef CMDHOST_DAEMON_SANITIZED
	/* A sanitizer's allocator quarantines what is freed. */
	CHECK(rss_before > 0 && rss_after - rss_before < RSS_SLACK_KIB,
	    "daemon RSS %ld KiB before, %ld KiB after %d respawns",
	    rss_before, rss_after, RESPAWNS);
#endif
	{
		json_object *j = check_call(fd, "{\"command\":\"host.stats\"}",
		    200, NULL);
		json_object *r = json_path(j, "body/workers/hangs/restarts/"
		    "recycle");

		CHECK(r && json_object_get_int(r) >= RESPAWNS, "%s",
		    reply_text(j));
		json_object_put(j);
	}
	close(fd);
	cr_expect_eq(daemon_stop(check_daemon()), 0);
}
