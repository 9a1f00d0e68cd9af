/*
 * test_jam.c - nothing in the plugin directory can jam a reload or a
 * stop, and the directory itself is reached only the way it is meant.
 *
 * Numbered like the items of the hardening issue they prove:
 *   1.1 a FIFO named x.so            1.2 a link to /dev/zero named z.so
 *   1.3 a registration that never returns
 *   2.1 a fini that never returns (swapped out)   2.2 (at a stop)
 *   1.4 a registration and a fini that return late: cleaned up
 *   6   the private copy directory, removed, then a deploy
 *   8.1 a world-writable parent      8.2 a plugin_dir swapped for a link
 * Each case fails on a daemon without the fix: it hangs (the harness
 * times out) or loads what it must not.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* Under ThreadSanitizer a process sleeps a second at exit by default
 * (atexit_sleep_ms), which the shutdown bounds here would count. */
static void
suite_init(void)
{
	char opts[1024];
	const char *old = getenv("TSAN_OPTIONS");

	if (strcmp(CMDHOST_SANITIZE, "thread") != 0)
		return;
	snprintf(opts, sizeof(opts), "%s%satexit_sleep_ms=0", old ? old : "",
	    old && *old ? " " : "");
	setenv("TSAN_OPTIONS", opts, 1);
}

TestSuite(jam, .init = suite_init, .fini = check_free);

static const char *const good_only[] = { "good.so", NULL };

/* ------------------------------------------------------------ helpers */

/* host.list's entry for `file` on a new connection: its state and error
 * copied into state/err (empty when absent).  Returns 1 if listed. */
static int
list_entry(const char *file, char *state, size_t slen, char *err,
    size_t elen)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.list\"}");
	json_object *plugins = json_path(j, "body/plugins");
	int found = 0;

	state[0] = err[0] = '\0';
	for (size_t i = 0; plugins && i < json_object_array_length(plugins);
	    i++) {
		json_object *p = json_object_array_get_idx(plugins, i);
		const char *f = json_path_str(p, "file");

		if (f == NULL || strcmp(f, file) != 0)
			continue;
		snprintf(state, slen, "%s", json_path_str(p, "state") ?
		    json_path_str(p, "state") : "");
		snprintf(err, elen, "%s", json_path_str(p, "error") ?
		    json_path_str(p, "error") : "");
		found = 1;
	}
	json_object_put(j);
	return found;
}

/* Require host.list to show `file` in `state` with an error containing
 * `text` (NULL: any). */
static void
check_listed(const char *file, const char *want, const char *text)
{
	char state[64], err[1024];

	CHECK(list_entry(file, state, sizeof(state), err, sizeof(err)),
	    "%s is not in host.list", file);
	CHECK(strcmp(state, want) == 0, "%s is %s, not %s (error: %s)", file,
	    state, want, err);
	CHECK(text == NULL || strstr(err, text) != NULL, "%s: error \"%s\" "
	    "does not say \"%s\"", file, err, text);
}

/* host.reload on fd; *ms gets how long the reply took.  Returns the
 * reply (put it). */
static json_object *
reload_timed(int fd, int64_t *ms)
{
	int64_t t0 = now_ms();
	json_object *j = check_call(fd, "{\"command\":\"host.reload\"}", 200,
	    NULL);

	*ms = now_ms() - t0;
	return j;
}

/* The error of `file` in a reload report's "failed", or NULL. */
static const char *
report_failed(json_object *reply, const char *file)
{
	json_object *arr = json_path(reply, "body/failed");

	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		const char *f = json_path_str(o, "file");

		if (f != NULL && strcmp(f, file) == 0)
			return json_path_str(o, "error");
	}
	return NULL;
}

/* SIGTERM the test's daemon; returns its exit status and in *ms how long
 * it took to exit. */
static int
stop_timed(int64_t *ms)
{
	int64_t t0 = now_ms();
	int status;

	cr_assert_eq(daemon_signal(check_daemon(), SIGTERM), 0);
	status = daemon_wait(check_daemon(), 20000);
	*ms = now_ms() - t0;
	return status;
}

/* Copy built plugin `name` to path `dst` (mode 0644). */
static void
copy_plugin(const char *name, const char *dst)
{
	char src[4096];
	size_t len;
	void *buf;
	int fd;

	cr_assert(harness_plugin_path(name, src, sizeof(src)) == 0);
	cr_assert_not_null(buf = harness_read_bytes(src, &len));
	fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert(fd >= 0, "%s: %s", dst, strerror(errno));
	cr_assert(write(fd, buf, len) == (ssize_t)len);
	close(fd);
	free(buf);
}

/* Non-zero if one line of the daemon's log contains both a and b. */
static int
log_line_with(const char *a, const char *b)
{
	char *log = daemon_log(check_daemon()), *line, *save = NULL;
	int found = 0;

	if (log == NULL)
		return 0;
	for (line = strtok_r(log, "\n", &save); line != NULL && !found;
	    line = strtok_r(NULL, "\n", &save))
		found = strstr(line, a) != NULL && strstr(line, b) != NULL;
	free(log);
	return found;
}

struct two { const char *a, *b; };

static int
log_has_both(void *arg)
{
	struct two *t = arg;

	return log_line_with(t->a, t->b);
}

/* host.stats' body/abandoned/<what>, or -1. */
static long
abandoned(const char *what)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.stats\"}");
	char path[64];
	json_object *n;
	long v = -1;

	snprintf(path, sizeof(path), "body/abandoned/%s", what);
	if ((n = json_path(j, path)) != NULL)
		v = (long)json_object_get_int64(n);
	json_object_put(j);
	return v;
}

/* A deploy after the jam still loads, by reload and by SIGHUP. */
static void
check_later_deploys(struct daemon *d, int fd)
{
	json_object *j;
	int64_t ms;
	struct two t = { "plugin swapped", "\"plugin\":\"swap\"" };

	cr_assert(daemon_install_plugin(d, "swap_v1.so", "s.so") == 0);
	j = reload_timed(fd, &ms);
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"swap.version\"}", 200, NULL);
	json_object_put(j);
	cr_assert(daemon_install_plugin(d, "swap_v2.so", "s.so") == 0);
	cr_assert_eq(daemon_signal(d, SIGHUP), 0);
	CHECK(wait_until(log_has_both, &t, 10000), "SIGHUP did not swap s.so "
	    "to v2");
	j = check_call(fd, "{\"command\":\"swap.version\"}", 200, NULL);
	CHECK(strstr(reply_text(j), "\"version\":\"2\"") != NULL,
	    "after SIGHUP: %s", reply_text(j));
	json_object_put(j);
}

/* ------------------------------------------------------------ 1 */

/* Makes the odd file of a case in <dir>/plugins/. */
typedef int (*make_fn)(const char *plugins_dir);

static int
make_fifo(const char *plugins_dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/x.so", plugins_dir);
	return mkfifo(path, 0644);
}

static int
make_zero_link(const char *plugins_dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/z.so", plugins_dir);
	return symlink("/dev/zero", path);
}

static int
prepare_odd(const char *dir, void *arg)
{
	char plugins[4096];

	snprintf(plugins, sizeof(plugins), "%s/plugins", dir);
	return ((make_fn)arg)(plugins);
}

/* 1.1, 1.2: a file that would block a reader (FIFO) or never end (a link
 * to /dev/zero) is refused at once, by what it is, at start-up and on a
 * reload, and nothing waits. */
static void
not_regular(const char *file, const char *kind, make_fn make)
{
	struct daemon_opts o = { .plugins = good_only, .config =
	    "watch = false\nshutdown_timeout_ms = 1000" };
	struct daemon *d;
	char path[4096];
	const char *e;
	json_object *j;
	int64_t ms;
	int fd, status;

	/* There at start-up: the first scan did not block either. */
	d = check_start_prepared(&o, prepare_odd, (void *)make);
	check_listed(file, "failed", kind);
	fd = check_connect();
	/* Made again while it runs: the rescan does not block. */
	snprintf(path, sizeof(path), "%s/plugins/%s", daemon_dir(d), file);
	cr_assert(unlink(path) == 0);
	snprintf(path, sizeof(path), "%s/plugins", daemon_dir(d));
	cr_assert(make(path) == 0);
	j = reload_timed(fd, &ms);
	cr_log_info("1: reload with %s: %lld ms", file, (long long)ms);
	CHECK(ms < 3000, "host.reload took %lld ms", (long long)ms);
	e = report_failed(j, file);
	CHECK(e != NULL && strstr(e, kind) != NULL, "%s not refused as %s: "
	    "%s", file, kind, reply_text(j));
	json_object_put(j);
	CHECK(log_line_with(file, kind), "no log line names %s as %s", file,
	    kind);
	check_listed(file, "failed", "not a regular file");
	j = check_call(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	json_object_put(j);
	check_later_deploys(d, fd);
	close(fd);
	status = stop_timed(&ms);
	cr_log_info("1: SIGTERM after %s: exit %d in %lld ms", file, status,
	    (long long)ms);
	CHECK(status == 0, "exit status %d", status);
	CHECK(ms < 2000, "SIGTERM took %lld ms", (long long)ms);
}

Test(jam, c1_1_fifo_named_so, .timeout = 90)
{
	not_regular("x.so", "FIFO", make_fifo);
}

Test(jam, c1_2_link_to_dev_zero, .timeout = 90)
{
	not_regular("z.so", "character device", make_zero_link);
}

/* 1.3: a registration that never returns is given up on after
 * load_timeout_ms, logged, listed stuck and counted; the event loop that
 * read the reload keeps serving meanwhile, the same bytes are not tried
 * again, later deploys load, SIGHUP works, and SIGTERM ends in time with
 * status 1 (the stuck thread still runs). */
Test(jam, c1_3_registration_never_returns, .timeout = 120)
{
	struct daemon *d = check_start_with(good_only, "watch = false\n"
	    "workers = 1\nload_timeout_ms = 1000\nshutdown_timeout_ms = 1000\n"
	    /* The daemon's own load must be the one that hangs: without
	     * the probe (test_isolation covers it refusing this file). */
	    "probe = false");
	int a = check_connect(), b = check_connect();
	char *argv[6], *out = NULL, sock[4096];
	const char *e;
	json_object *j;
	int64_t t0, ms, ping_ms;
	int status;

	cr_assert(daemon_install_plugin(d, "reg_hangs.so", NULL) == 0);
	t0 = now_ms();
	CHECK(client_send(a, "{\"id\":1,\"command\":\"host.reload\"}") == 0,
	    "send");
	/* The one loop that read the reload answers another connection at
	 * once while the load hangs. */
	j = check_call(b, "{\"command\":\"host.ping\"}", 200, NULL);
	ping_ms = now_ms() - t0;
	json_object_put(j);
	{
		char *line = client_recv_line(a);

		ms = now_ms() - t0;
		CHECK(line != NULL, "host.reload never answered");
		j = json_tokener_parse(line);
		free(line);
	}
	cr_log_info("1.3: ping during the stuck load: %lld ms; reload: %lld "
	    "ms", (long long)ping_ms, (long long)ms);
	CHECK(ping_ms < 900, "host.ping waited %lld ms behind the reload",
	    (long long)ping_ms);
	CHECK(ms >= 900 && ms < 5000, "reload answered after %lld ms "
	    "(load_timeout_ms = 1000)", (long long)ms);
	e = report_failed(j, "reg_hangs.so");
	CHECK(e != NULL && strstr(e, "load_timeout_ms") != NULL, "not "
	    "reported stuck: %s", reply_text(j));
	json_object_put(j);
	CHECK(log_line_with("reg_hangs.so", "is stuck"), "no log line names "
	    "the stuck file");
	check_listed("reg_hangs.so", "stuck", "did not return");
	CHECK(abandoned("loads") == 1, "abandoned loads: %ld",
	    abandoned("loads"));
	j = check_call(b, "{\"command\":\"reghang.cmd\"}", 404,
	    "unknown_command");
	json_object_put(j);

	/* Not tried again: the second reload is quick and leaks nothing. */
	j = reload_timed(b, &ms);
	cr_log_info("1.3: second reload: %lld ms", (long long)ms);
	CHECK(ms < 900, "the stuck file was tried again (%lld ms)",
	    (long long)ms);
	CHECK(report_failed(j, "reg_hangs.so") != NULL, "%s", reply_text(j));
	json_object_put(j);
	CHECK(abandoned("loads") == 1, "abandoned loads: %ld",
	    abandoned("loads"));

	/* The gauge reaches Prometheus. */
	snprintf(sock, sizeof(sock), "%s", daemon_socket_path(d));
	argv[0] = CMDHOST_BUILD_DIR "/cmdhost";
	argv[1] = "-s";
	argv[2] = sock;
	argv[3] = "stats";
	argv[4] = "--prometheus";
	argv[5] = NULL;
	CHECK(run_command(argv, NULL, 10000, &status, &out, NULL) == 0 &&
	    status == 0, "cmdhost stats --prometheus failed");
	CHECK(strstr(out, "\ncmdhost_abandoned_loads 1\n") != NULL,
	    "no gauge in:\n%s", out);
	free(out);

	check_later_deploys(d, b);
	close(a);
	close(b);
	status = stop_timed(&ms);
	cr_log_info("1.3: SIGTERM with a stuck load: exit %d in %lld ms",
	    status, (long long)ms);
	CHECK(status == 1, "exit status %d (want 1: a load was abandoned)",
	    status);
	CHECK(ms < 2000, "SIGTERM took %lld ms (shutdown_timeout_ms = 1000)",
	    (long long)ms);
	CHECK(daemon_log_contains(d, "abandoned"), "exit 1 without a reason");
}

/* ------------------------------------------------------------ 2 */

/* 2.1: a generation whose fini never returns is abandoned after
 * fini_timeout_ms, logged with plugin and generation, counted, and the
 * next swap's old generation is still finalized. */
Test(jam, c2_1_fini_never_returns, .timeout = 120)
{
	static const char *const plugins[] = { "good.so", "fini_hangs.so",
	    NULL };
	struct daemon *d = check_start_with(plugins, "watch = false\n"
	    "fini_timeout_ms = 500\nshutdown_timeout_ms = 1000");
	struct two gave_up = { "fini of plugin fini_hangs generation",
	    "did not return within 500 ms" };
	struct two finalized = { "finalized and unloaded",
	    "\"plugin\":\"swap\"" };
	int fd = check_connect();
	json_object *j;
	int64_t ms;
	int status;

	j = check_call(fd, "{\"command\":\"finihang.ping\"}", 200, NULL);
	json_object_put(j);
	cr_assert(daemon_remove_plugin(d, "fini_hangs.so") == 0);
	j = reload_timed(fd, &ms);
	json_object_put(j);
	CHECK(wait_until(log_has_both, &gave_up, 10000), "the stuck fini was "
	    "not logged");
	CHECK(abandoned("finis") == 1, "abandoned finis: %ld",
	    abandoned("finis"));

	/* The reaper carries on: a swap's old generation is finalized. */
	cr_assert(daemon_install_plugin(d, "swap_v1.so", "swap.so") == 0);
	j = reload_timed(fd, &ms);
	json_object_put(j);
	cr_assert(daemon_install_plugin(d, "swap_v2.so", "swap.so") == 0);
	j = reload_timed(fd, &ms);
	json_object_put(j);
	CHECK(wait_until(log_has_both, &finalized, 10000), "the old "
	    "generation of swap was never finalized after a stuck fini");
	j = check_call(fd, "{\"command\":\"swap.version\"}", 200, NULL);
	json_object_put(j);
	close(fd);
	status = stop_timed(&ms);
	cr_log_info("2.1: SIGTERM after an abandoned fini: exit %d in %lld ms",
	    status, (long long)ms);
	CHECK(status == 1, "exit status %d (want 1: a fini was abandoned)",
	    status);
	CHECK(ms < 2000, "SIGTERM took %lld ms", (long long)ms);
}

/* 2.2: a fini that hangs at shutdown: SIGTERM still ends within
 * shutdown_timeout_ms plus a second, with status 1, and says why. */
Test(jam, c2_2_fini_hangs_at_stop, .timeout = 60)
{
	static const char *const plugins[] = { "good.so", "fini_hangs.so",
	    NULL };
	struct two gave_up = { "fini of plugin fini_hangs generation",
	    "did not return" };
	int64_t ms;
	int status;

	check_start_with(plugins, "shutdown_timeout_ms = 1000");
	status = stop_timed(&ms);
	cr_log_info("2.2: SIGTERM with a hanging fini: exit %d in %lld ms",
	    status, (long long)ms);
	CHECK(status == 1, "exit status %d", status);
	CHECK(ms < 2000, "SIGTERM took %lld ms (shutdown_timeout_ms = 1000)",
	    (long long)ms);
	CHECK(log_line_with(gave_up.a, gave_up.b), "the stuck fini was not "
	    "logged");
}

/* ------------------------------------------------------------ 6 */

static int
stale_copy(const char *dir, void *arg)
{
	char path[4096];
	int fd;

	(void)arg;
	snprintf(path, sizeof(path), "%s/state", dir);
	if (mkdir(path, 0700) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/state/copies", dir);
	if (mkdir(path, 0755) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/state/copies/7-stale.so", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT, 0600)) < 0)
		return -1;
	close(fd);
	return 0;
}

/* Lines of /proc/PID/maps naming `text`. */
static int
maps_with(pid_t pid, const char *text)
{
	char path[64], line[4096];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/* 6: the private copies live in <state_dir>/copies (owner-only, emptied
 * at start-up), and a deploy after someone removed it works. */
Test(jam, c6_copy_dir_removed_then_deploy, .timeout = 60)
{
	struct daemon_opts o = { .plugins = good_only, .config =
	    "watch = false" };
	struct daemon *d = check_start_prepared(&o, stale_copy, NULL);
	char dir[4096], cmd[4200], stale[4200];
	struct stat st;
	json_object *j;
	int fd = check_connect();
	int64_t ms;

	snprintf(dir, sizeof(dir), "%s/state/copies", daemon_dir(d));
	snprintf(stale, sizeof(stale), "%s/7-stale.so", dir);
	CHECK(access(stale, F_OK) < 0, "a stale copy was left at start-up");
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700, "%s: "
	    "mode %o", dir, (unsigned)(st.st_mode & 07777));
	CHECK(maps_with(daemon_pid(d), "/state/copies/") > 0, "good.so is "
	    "not mapped from %s", dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert(system(cmd) == 0);
	cr_assert(access(dir, F_OK) < 0);
	cr_assert(daemon_install_plugin(d, "swap_v1.so", "s.so") == 0);
	j = reload_timed(fd, &ms);
	CHECK(report_failed(j, "s.so") == NULL, "refused: %s", reply_text(j));
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"swap.version\"}", 200, NULL);
	json_object_put(j);
	CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_mode & 07777) == 0700, "%s was not made again 0700", dir);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 8 */

/* 8.1: a plugin_dir below a directory anyone may write (and that is not
 * sticky) is refused at start-up, naming that directory; made sticky
 * (like /tmp, where every other test runs) it is accepted. */
Test(jam, c8_1_world_writable_parent_refused, .timeout = 60)
{
	char top[] = "/tmp/cmdhost-jam.XXXXXX", open_dir[4096];
	char plugins[4200], config[8600], cmd[4200], *err = NULL;
	int status;

	cr_assert_not_null(mkdtemp(top));
	snprintf(open_dir, sizeof(open_dir), "%s/open", top);
	snprintf(plugins, sizeof(plugins), "%s/plugins", open_dir);
	cr_assert(mkdir(open_dir, 0755) == 0 && chmod(open_dir, 0777) == 0);
	cr_assert(mkdir(plugins, 0755) == 0);
	snprintf(config, sizeof(config), "[host]\nsocket = cmdhost.sock\n"
	    "plugin_dir = %s\n", plugins);
	cr_assert(daemon_run_expect_fail(config, &status, &err) == 0,
	    "cmdhostd started under a world-writable parent");
	cr_log_info("8.1: exit %d: %s", status, err);
	cr_assert(status == 1, "exit status %d", status);
	cr_assert(strstr(err, "writable by other users and not sticky") !=
	    NULL && strstr(err, open_dir) != NULL, "stderr: %s", err);
	free(err);

	/* Sticky and root's: like /tmp, accepted. */
	cr_assert(chmod(open_dir, 01777) == 0);
	snprintf(config, sizeof(config), "plugin_dir = %s", plugins);
	{
		char dst[4300];

		snprintf(dst, sizeof(dst), "%s/good.so", plugins);
		copy_plugin("good.so", dst);
	}
	check_start_with(NULL, config);
	check_listed("good.so", "loaded", NULL);
	check_stop_clean();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	cr_assert(system(cmd) == 0);
}

/* 8.2: plugin_dir swapped for a symbolic link to another directory while
 * the daemon runs: a rescan does not load from the new target, says why,
 * and what is loaded keeps serving; put back, rescans work again. */
Test(jam, c8_2_swapped_plugin_dir_not_followed, .timeout = 60)
{
	struct daemon *d = check_start_with(good_only, "watch = false");
	char real[4096], aside[4200], evil[4200], so[4300];
	int fd = check_connect();
	const char *e;
	json_object *j;
	int64_t ms;

	snprintf(real, sizeof(real), "%s/plugins", daemon_dir(d));
	snprintf(aside, sizeof(aside), "%s/plugins.real", daemon_dir(d));
	snprintf(evil, sizeof(evil), "%s/elsewhere", daemon_dir(d));
	cr_assert(mkdir(evil, 0755) == 0);
	snprintf(so, sizeof(so), "%s/s.so", evil);
	copy_plugin("swap_v1.so", so);
	cr_assert(rename(real, aside) == 0);
	cr_assert(symlink(evil, real) == 0);

	j = reload_timed(fd, &ms);
	e = json_path_str(j, "body/error");
	CHECK(e != NULL && strstr(e, "another directory") != NULL, "reload "
	    "after the swap: %s", reply_text(j));
	json_object_put(j);
	CHECK(daemon_log_contains(d, "rescan refused"), "not logged");
	j = check_call(fd, "{\"command\":\"swap.version\"}", 404,
	    "unknown_command");
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	json_object_put(j);
	/* Private copies are named <n>-<file>. */
	CHECK(maps_with(daemon_pid(d), "-s.so") == 0, "s.so was mapped");

	/* Put back: the same directory, so rescans go on. */
	cr_assert(unlink(real) == 0 && rename(aside, real) == 0);
	j = reload_timed(fd, &ms);
	CHECK(json_path(j, "body/error") == NULL, "reload once put back: %s",
	    reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 1, 2 */

static int
gauge_is_zero(void *arg)
{
	return abandoned(arg) == 0;
}

/* 1.4, 2.3: a registration and a fini that are only slow: given up on
 * past their limits, and when they return after all the late load is
 * discarded, the generation unloaded and the gauges go back to 0, so a
 * stop then has nothing abandoned (status 0). */
Test(jam, c1_4_late_load_and_fini_are_cleaned_up, .timeout = 90)
{
	struct two late_load = { "abandoned load of slow.so", "discarded" };
	struct two late_fini = { "abandoned fini of plugin slow_hooks",
	    "unloaded now" };
	/* probe = false: the daemon's own load is the slow one. */
	struct daemon *d = check_start_with(good_only, "watch = false\n"
	    "probe = false\n"
	    "load_timeout_ms = 300\nfini_timeout_ms = 300\n"
	    "[plugin:slow_hooks]\nreg_ms = 1500\nfini_ms = 0");
	int fd = check_connect();
	json_object *j;
	int64_t ms;

	cr_assert(daemon_install_plugin(d, "slow_hooks.so", "slow.so") == 0);
	j = reload_timed(fd, &ms);
	CHECK(report_failed(j, "slow.so") != NULL, "a 1.5 s registration "
	    "was not given up on at 300 ms: %s", reply_text(j));
	json_object_put(j);
	CHECK(abandoned("loads") == 1, "abandoned loads: %ld",
	    abandoned("loads"));
	CHECK(wait_until(log_has_both, &late_load, 10000), "the late load "
	    "was not discarded");
	CHECK(wait_until(gauge_is_zero, "loads", 5000), "abandoned loads "
	    "stays %ld", abandoned("loads"));
	j = check_call(fd, "{\"command\":\"slow.ping\"}", 404,
	    "unknown_command");
	json_object_put(j);
	close(fd);
	CHECK(stop_timed(&ms) == 0, "a stop with nothing left abandoned "
	    "did not exit 0");
	check_free();

	/* Now fast to load, slow to finalize. */
	d = check_start_with(good_only, "watch = false\n"
	    "fini_timeout_ms = 300\n"
	    "[plugin:slow_hooks]\nreg_ms = 0\nfini_ms = 1500");
	fd = check_connect();
	cr_assert(daemon_install_plugin(d, "slow_hooks.so", "slow.so") == 0);
	j = reload_timed(fd, &ms);
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"slow.ping\"}", 200, NULL);
	json_object_put(j);
	cr_assert(daemon_remove_plugin(d, "slow.so") == 0);
	j = reload_timed(fd, &ms);
	json_object_put(j);
	CHECK(wait_until(log_has_both, &late_fini, 10000), "the late fini "
	    "was not reported");
	CHECK(wait_until(gauge_is_zero, "finis", 5000), "abandoned finis "
	    "stays %ld", abandoned("finis"));
	close(fd);
	check_stop_clean();
}
