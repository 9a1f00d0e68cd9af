/*
 * test_systemd.c - the daemon under systemd's protocols, without systemd:
 * a datagram socket the test binds stands in for $NOTIFY_SOCKET and hears
 * READY=1 only once the socket answers (a slow plugin load delays it),
 * RELOADING=1 with MONOTONIC_USEC then READY=1 around SIGHUP, STOPPING=1
 * at SIGTERM, and WATCHDOG=1 pings that stop while a loop is stuck in an
 * inline call; systemd-socket-activate hands the daemon its socket, which
 * it serves and leaves in place.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(systemd, .fini = check_free);

#define MAX_MSGS 4096

/* What the fake systemd heard: each datagram and when (ms). */
static struct {
	int fd;
	pthread_t thread;
	pthread_mutex_t lock;
	char *msg[MAX_MSGS];
	int64_t at[MAX_MSGS];
	int n;
	int stop;
	/* Connect to this socket the moment READY=1 arrives, and keep what
	 * host.list answered then (or NULL). */
	char ready_sock[256];
	json_object *at_ready;
	int ready_tried;
} ns = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

static void *
listen_main(void *arg)
{
	char buf[4096];

	(void)arg;
	while (!ns.stop) {
		ssize_t n = recv(ns.fd, buf, sizeof(buf) - 1, 0);

		if (n < 0)
			continue; /* SO_RCVTIMEO: look at stop again */
		buf[n] = '\0';
		if (strstr(buf, "READY=1") != NULL && ns.ready_sock[0] &&
		    !ns.ready_tried) {
			/* No retry: it must answer now. */
			ns.ready_tried = 1;
			ns.at_ready = client_call_once(ns.ready_sock,
			    "{\"command\":\"host.list\"}");
		}
		pthread_mutex_lock(&ns.lock);
		if (ns.n < MAX_MSGS) {
			ns.msg[ns.n] = strdup(buf);
			ns.at[ns.n++] = now_ms();
		}
		pthread_mutex_unlock(&ns.lock);
	}
	return NULL;
}

/* Bind an abstract datagram socket and point NOTIFY_SOCKET at it (the
 * daemon inherits our environment); watchdog_usec 0: none. */
static void
fake_systemd(long watchdog_usec)
{
	struct sockaddr_un sa;
	struct timeval tv = { 0, 50000 };
	char name[64], usec[32];
	socklen_t len;

	snprintf(name, sizeof(name), "@cmdhost-test-notify-%d", (int)getpid());
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(name));
	ns.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(ns.fd >= 0);
	cr_assert(bind(ns.fd, (struct sockaddr *)&sa, len) == 0, "bind: %s",
	    strerror(errno));
	setsockopt(ns.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert(pthread_create(&ns.thread, NULL, listen_main, NULL) == 0);
	setenv("NOTIFY_SOCKET", name, 1);
	if (watchdog_usec > 0) {
		snprintf(usec, sizeof(usec), "%ld", watchdog_usec);
		setenv("WATCHDOG_USEC", usec, 1);
	}
}

/* Index of the first message from `from` on that contains text, or -1. */
static int
find_msg(int from, const char *text)
{
	int found = -1;

	pthread_mutex_lock(&ns.lock);
	for (int i = from; i < ns.n && found < 0; i++)
		if (strstr(ns.msg[i], text) != NULL)
			found = i;
	pthread_mutex_unlock(&ns.lock);
	return found;
}

struct want {
	int from;
	const char *text;
};

static int
has_msg(void *arg)
{
	struct want *w = arg;

	return find_msg(w->from, w->text) >= 0;
}

/* Wait up to timeout_ms for a message with text from index `from`;
 * returns its index or -1. */
static int
wait_msg(int from, const char *text, int timeout_ms)
{
	struct want w = { from, text };

	if (!wait_until(has_msg, &w, timeout_ms))
		return -1;
	return find_msg(from, text);
}

static const char *
msg_at(int i)
{
	const char *m;

	pthread_mutex_lock(&ns.lock);
	m = i < ns.n ? ns.msg[i] : "";
	pthread_mutex_unlock(&ns.lock);
	return m;
}

/* 1. READY=1 comes once, after a slow plugin load, when the socket
 * answers at once with the plugin loaded; STATUS= has the counts. */
Test(systemd, ready_only_when_serving)
{
	static const char *const plugins[] = { "slow_hooks.so", "good.so",
		NULL };
	struct daemon_opts o = { 0 };
	char dir[] = "/tmp/cmdhost-sd.XXXXXX";
	json_object *p;
	int i;

	cr_assert(mkdtemp(dir) != NULL);
	snprintf(ns.ready_sock, sizeof(ns.ready_sock), "%s/d.sock", dir);
	fake_systemd(0);
	o.plugins = plugins;
	o.socket = ns.ready_sock;
	o.config = "[plugin:slow_hooks]\nreg_ms = 700\n";
	check_start(&o);
	i = wait_msg(0, "READY=1", 10000);
	CHECK(i >= 0, "no READY=1");
	CHECK(i == 0, "READY=1 was not the first message: %s", msg_at(0));
	CHECK(strstr(msg_at(i), "STATUS=2 plugins, 10 commands, 0 refused") !=
	    NULL, "STATUS: %s", msg_at(i));
	CHECK(ns.ready_tried && ns.at_ready != NULL, "the socket did not "
	    "answer host.list at READY=1");
	p = json_path(ns.at_ready, "body/plugins");
	CHECK(p != NULL && json_object_array_length(p) == 2,
	    "host.list at READY=1: %s", json_object_to_json_string(
	    ns.at_ready));
	CHECK(strstr(json_object_to_json_string(ns.at_ready),
	    "\"slow.ping\"") != NULL, "slow_hooks not serving at READY=1");
	check_stop_clean();
	CHECK(wait_msg(0, "STOPPING=1", 5000) >= 0, "no STOPPING=1");
	CHECK(find_msg(i + 1, "READY=1") < 0, "a second READY=1");
	unlink(ns.ready_sock);
	rmdir(dir);
}

/* 2. SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 with the new
 * counts; SIGTERM: STOPPING=1. */
Test(systemd, reload_and_stop)
{
	static const char *const plugins[] = { "good.so", NULL };
	struct daemon *d;
	int r, i, s;
	long long usec;
	const char *m;

	fake_systemd(0);
	d = check_start_with(plugins, NULL);
	r = wait_msg(0, "READY=1", 10000);
	CHECK(r >= 0, "no READY=1");
	CHECK(daemon_install_plugin(d, "counter.so", NULL) == 0, "install");
	CHECK(daemon_signal(d, SIGHUP) == 0, "SIGHUP");
	i = wait_msg(r + 1, "RELOADING=1", 10000);
	CHECK(i >= 0, "no RELOADING=1 after SIGHUP");
	m = strstr(msg_at(i), "MONOTONIC_USEC=");
	CHECK(m != NULL, "RELOADING=1 without MONOTONIC_USEC: %s", msg_at(i));
	usec = atoll(m + strlen("MONOTONIC_USEC="));
	{
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		CHECK(usec > 0 && usec <= (long long)ts.tv_sec * 1000000 +
		    ts.tv_nsec / 1000, "MONOTONIC_USEC %lld is not a "
		    "CLOCK_MONOTONIC time of the past", usec);
	}
	r = wait_msg(i + 1, "READY=1", 10000);
	CHECK(r >= 0, "no READY=1 after the rescan");
	CHECK(strstr(msg_at(r), "STATUS=2 plugins") != NULL, "STATUS after "
	    "the rescan: %s", msg_at(r));
	CHECK(daemon_signal(d, SIGTERM) == 0, "SIGTERM");
	s = wait_msg(r + 1, "STOPPING=1", 10000);
	CHECK(s >= 0, "no STOPPING=1 at SIGTERM");
	CHECK(daemon_stop(d) == 0, "exit status");
	CHECK(find_msg(s + 1, "READY=1") < 0, "READY=1 after STOPPING=1");
}

/* The longest gap between WATCHDOG=1 pings that arrived from t0 to t1,
 * and how many arrived after t1. */
static int64_t
ping_gap(int64_t t0, int64_t t1, int *after)
{
	int64_t last = t0, gap = 0;

	*after = 0;
	pthread_mutex_lock(&ns.lock);
	for (int i = 0; i < ns.n; i++) {
		if (strstr(ns.msg[i], "WATCHDOG=1") == NULL || ns.at[i] < t0)
			continue;
		if (ns.at[i] > t1) {
			(*after)++;
			continue;
		}
		if (ns.at[i] - last > gap)
			gap = ns.at[i] - last;
		last = ns.at[i];
	}
	if (t1 - last > gap)
		gap = t1 - last;
	pthread_mutex_unlock(&ns.lock);
	return gap;
}

static int
pings_after(void *arg)
{
	int64_t *t = arg;
	int after;

	(void)ping_gap(t[0], t[1], &after);
	return after >= 3;
}

/* 3. WATCHDOG=1 every half of WATCHDOG_USEC while every loop makes
 * progress; none while an inline call holds a loop thread; again once it
 * returned. */
Test(systemd, watchdog_stops_while_stuck)
{
	static const char *const plugins[] = { "spin.so", NULL };
	struct daemon *d;
	int64_t t[2], gap;
	json_object *j;
	int fd, before, after;

	/* Pings every 100 ms. */
	fake_systemd(200000);
	d = check_start_with(plugins, "inline_stuck_ms = 300\n");
	CHECK(wait_msg(0, "READY=1", 10000) >= 0, "no READY=1");
	CHECK(wait_msg(wait_msg(0, "WATCHDOG=1", 5000) + 1, "WATCHDOG=1",
	    5000) >= 0, "no watchdog pings");
	(void)ping_gap(0, now_ms() - 1, &before);
	fd = check_connect();
	t[0] = now_ms();
	j = check_call(fd, "{\"command\":\"spin.run\",\"payload\":{\"ms\":"
	    "3000}}", 200, NULL);
	t[1] = now_ms();
	json_object_put(j);
	close(fd);
	CHECK(wait_until(pings_after, t, 5000), "pings did not resume after "
	    "the stuck call returned");
	gap = ping_gap(t[0], t[1], &after);
	/* Withheld from inline_stuck_ms (300 ms) into the call to its end
	 * (3 s): a gap far beyond the 100 ms interval. */
	CHECK(gap >= 1800, "the longest gap in pings while the loop was "
	    "stuck is only %lld ms", (long long)gap);
	CHECK(daemon_log_contains(d, "pings withheld"), "no warning");
	CHECK(daemon_log_contains(d, "pings resume"), "no resume line");
	check_stop_clean();
}

/* Is path a socket file? */
static int
is_socket(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int
answers(void *arg)
{
	json_object *j = client_call_once(arg, "{\"command\":\"host.ping\"}");
	int ok = reply_status(j) == 200;

	json_object_put(j);
	return ok;
}

/* 4. systemd-socket-activate passes a socket (not [host] socket): the
 * daemon serves on it, and leaves the file in place at stop. */
Test(systemd, socket_activation)
{
	const char *tool = "/usr/bin/systemd-socket-activate";
	char dir[] = "/tmp/cmdhost-act.XXXXXX", path[512], sock[512];
	char cfg[512], plugin[512], *bytes;
	json_object *j;
	size_t len;
	pid_t pid;
	int status;
	FILE *f;

	if (access(tool, X_OK) != 0)
		cr_skip_test("%s is not installed (Debian's systemd package)",
		    tool);
	cr_assert(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/plugins", dir);
	cr_assert(mkdir(path, 0755) == 0);
	cr_assert(harness_plugin_path("echo.so", plugin, sizeof(plugin)) == 0);
	bytes = harness_read_bytes(plugin, &len);
	cr_assert(bytes != NULL);
	snprintf(path, sizeof(path), "%s/plugins/echo.so", dir);
	f = fopen(path, "wb");
	cr_assert(f != NULL && fwrite(bytes, 1, len, f) == len);
	fclose(f);
	free(bytes);
	snprintf(cfg, sizeof(cfg), "%s/cmdhost.ini", dir);
	f = fopen(cfg, "w");
	cr_assert(f != NULL);
	fprintf(f, "[host]\nsocket = configured.sock\nplugin_dir = plugins\n"
	    "workers = 2\n");
	fclose(f);
	snprintf(sock, sizeof(sock), "%s/passed.sock", dir);
	if ((pid = fork()) == 0) {
		char log[600];
		int lfd;

		snprintf(log, sizeof(log), "%s/stderr.log", dir);
		lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(lfd, 2);
		execl(tool, tool, "-l", sock, CMDHOST_BUILD_DIR "/cmdhostd",
		    "-c", cfg, (char *)NULL);
		_exit(127);
	}
	cr_assert(pid > 0);
	cr_assert(wait_until(answers, sock, 10000), "no answer on the passed "
	    "socket");
	j = client_call_once(sock, "{\"command\":\"echo\",\"payload\":"
	    "{\"x\":1}}");
	cr_assert(reply_status(j) == 200 && json_object_get_int(json_path(j,
	    "body/x")) == 1, "echo on the passed socket: %s",
	    j ? json_object_to_json_string(j) : "no reply");
	json_object_put(j);
	snprintf(path, sizeof(path), "%s/configured.sock", dir);
	cr_assert(!is_socket(path), "the daemon bound [host] socket as well");
	kill(pid, SIGTERM);
	cr_assert(waitpid(pid, &status, 0) == pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "exit status %d", status);
	cr_assert(is_socket(sock), "the passed socket's file was removed");
	unlink(sock);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	cr_assert(system(path) == 0);
}

/* 5. Both unit files pass systemd-analyze verify (no PID 1 needed), with
 * the daemon's path pointed at this build (verify wants it to exist);
 * man pages are not looked up (they are not installed here). */
Test(systemd, units_verify)
{
	const char *tool = "/usr/bin/systemd-analyze";
	char dir[] = "/tmp/cmdhost-units.XXXXXX", cmd[2048], *out = NULL;
	char *err = NULL, *argv[4];
	int status = -1;

	if (access(tool, X_OK) != 0)
		cr_skip_test("%s is not installed (Debian's systemd package)",
		    tool);
	cr_assert(mkdtemp(dir) != NULL);
	snprintf(cmd, sizeof(cmd), "sed 's|/usr/sbin/cmdhostd|%s/cmdhostd|g' "
	    "'%s/conf/cmdhostd.service' > '%s/cmdhostd.service' && "
	    "cp '%s/conf/cmdhostd.socket' '%s/' && %s verify --man=no "
	    "'%s/cmdhostd.service' '%s/cmdhostd.socket'", CMDHOST_BUILD_DIR,
	    CMDHOST_SOURCE_DIR, dir, CMDHOST_SOURCE_DIR, dir, tool, dir, dir);
	argv[0] = (char *)"/bin/sh";
	argv[1] = (char *)"-c";
	argv[2] = cmd;
	argv[3] = NULL;
	cr_assert(run_command(argv, NULL, 60000, &status, &out, &err) == 0);
	cr_assert(status == 0, "systemd-analyze verify exited %d: %s%s",
	    status, out ? out : "", err ? err : "");
	cr_assert(err == NULL || strstr(err, "cmdhostd") == NULL,
	    "systemd-analyze verify warned: %s", err);
	free(out);
	free(err);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert(system(cmd) == 0);
}
