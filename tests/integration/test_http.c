/*
 * test_http.c - the HTTP monitoring endpoint ([host] http_listen): the
 * daemon binds 127.0.0.1:0 and logs the port the kernel picked, which
 * these tests read from its log.  1.1 /metrics passes promtool and has
 * cmdhost_build_info; 1.2 /healthz is 200, then 503 with the reason once
 * a plugin fails; 1.3 /readyz, 404, 405 and HEAD, and 503 "stopping"
 * from SIGTERM through the drain; 1.4 every string on
 * the status page is escaped; 1.5 headless Chromium shows the plugins
 * table (DOM and screenshot); 1.6 1,000 bad requests (garbage, huge
 * headers, slow clients, connections past the limit) while a client
 * keeps calling on the Unix socket: every call is answered, the daemon
 * stays up, /healthz still answers.  2.1 a port in use stops start-up;
 * 2.2 `cmdhostd -t` checks the address parses.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(http, .fini = check_free);

#define HTTP_CONFIG "http_listen = 127.0.0.1:0\n"

static char *http_request(int port, const char *method, const char *path,
    int *status);

static int
readyz_200(void *arg)
{
	int status;

	free(http_request(*(int *)arg, "GET", "/readyz", &status));
	return status == 200;
}

/* The port of the test daemon's endpoint, from its "http: serving" log
 * line, once /readyz says 200 (the command socket accepts a moment
 * before: READY comes after NATS and event delivery start); fails the
 * test when there is none. */
static int
http_port(void)
{
	const char *tag = "http://127.0.0.1:";
	char *log, *p;
	int port = -1;

	CHECK(daemon_log_wait(check_daemon(), "http: serving", 10000),
	    "no 'http: serving' line");
	log = daemon_log(check_daemon());
	if (log != NULL && (p = strstr(log, tag)) != NULL)
		port = atoi(p + strlen(tag));
	free(log);
	CHECK(port > 0 && port < 65536, "no port in the log");
	CHECK(wait_until(readyz_200, &port, 20000), "/readyz never said 200");
	return port;
}

/* A TCP connection to 127.0.0.1:port with 10 s send and receive
 * timeouts, or -1. */
static int
tcp_connect(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Send len bytes, ignoring a peer that closed early (no SIGPIPE). */
static void
send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* Everything the peer sends until it closes (or 10 s of silence): a new
 * string (free it), "" when nothing came. */
static char *
recv_all(int fd)
{
	size_t len = 0, cap = 4096;
	char *out = malloc(cap);
	ssize_t n;

	cr_assert(out != NULL);
	for (;;) {
		if (cap - len < 2048) {
			cap *= 2;
			cr_assert((out = realloc(out, cap)) != NULL);
		}
		n = recv(fd, out + len, cap - len - 1, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	out[len] = '\0';
	return out;
}

/* One request; *status gets the HTTP status (-1: no status line) and the
 * return value the whole response, headers too (free it), or NULL when
 * no connection could be made. */
static char *
http_request(int port, const char *method, const char *path, int *status)
{
	char req[512], *resp;
	int fd = tcp_connect(port);

	*status = -1;
	if (fd < 0)
		return NULL;
	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    "Connection: close\r\n\r\n", method, path);
	send_all(fd, req, strlen(req));
	resp = recv_all(fd);
	close(fd);
	if (strncmp(resp, "HTTP/1.", 7) == 0 && strlen(resp) > 12)
		*status = atoi(resp + 9);
	return resp;
}

/* The body of a response (borrowed from resp). */
static const char *
body_of(const char *resp)
{
	const char *p = strstr(resp, "\r\n\r\n");

	return p ? p + 4 : "";
}

/* GET path and require status want; returns the response (free it). */
static char *
check_get(int port, const char *path, int want)
{
	int status;
	char *resp = http_request(port, "GET", path, &status);

	CHECK(resp != NULL && status == want, "GET %s: %d, not %d: %s", path,
	    status, want, resp ? resp : "(no connection)");
	return resp;
}

/* 1.1 */
Test(http, metrics_pass_promtool)
{
	static const char *const plugins[] = { "good.so", NULL };
	char path[600], cmd[800], *resp, *perr = NULL, *argv[4];
	int port, status;
	FILE *f;

	check_start_with(plugins, HTTP_CONFIG);
	port = http_port();
	/* A call, so that the command's counters have something. */
	json_object_put(check_call(check_connect(), "{\"command\":"
	    "\"test.echo\",\"payload\":{}}", 200, NULL));
	resp = check_get(port, "/metrics", 200);
	CHECK(strstr(resp, "Content-Type: text/plain; version=0.0.4") != NULL,
	    "content type: %s", resp);
	CHECK(strstr(body_of(resp), "cmdhost_build_info{version=\"") != NULL,
	    "no build info: %s", resp);
	CHECK(strstr(body_of(resp), "cmdhost_plugin_state{file=\"good.so\","
	    "plugin=\"good\",state=\"loaded\"} 1") != NULL, "%s", resp);
	snprintf(path, sizeof(path), "%s/metrics.txt",
	    daemon_dir(check_daemon()));
	cr_assert((f = fopen(path, "w")) != NULL);
	fputs(body_of(resp), f);
	fclose(f);
	free(resp);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", path);
	argv[0] = (char *)"/bin/sh";
	argv[1] = (char *)"-c";
	argv[2] = cmd;
	argv[3] = NULL;
	CHECK(run_command(argv, NULL, 60000, &status, NULL, &perr) == 0 &&
	    status == 0, "promtool: %d %s", status, perr ? perr : "");
	free(perr);
	check_stop_clean();
}

static int healthz_port;

/* /healthz answers 503 "degraded" with a reason that says arg. */
static int
healthz_503_says(void *arg)
{
	int status;
	char *resp = http_request(healthz_port, "GET", "/healthz", &status);
	int yes = resp != NULL && status == 503 &&
	    strncmp(body_of(resp), "degraded\n", 9) == 0 &&
	    strstr(body_of(resp), arg) != NULL;

	free(resp);
	return yes;
}

/* 1.2 */
Test(http, healthz_goes_503_when_a_plugin_fails)
{
	static const char *const plugins[] = { "good.so", NULL };
	struct daemon *d;
	char *resp;

	d = check_start_with(plugins, HTTP_CONFIG "watch = false\n");
	healthz_port = http_port();
	resp = check_get(healthz_port, "/healthz", 200);
	CHECK(strcmp(body_of(resp), "ok\n") == 0, "body: %s", resp);
	free(resp);
	CHECK(daemon_install_plugin(d, "bad_abi.so", NULL) == 0, "install");
	CHECK(daemon_signal(d, SIGHUP) == 0, "SIGHUP");
	CHECK(wait_until(healthz_503_says, "(file bad_abi.so) is failed",
	    20000),
	    "/healthz never said 503 with the failed file");
	check_stop_clean();
}

/* 1.3 */
Test(http, readyz_and_other_routes)
{
	static const char *const plugins[] = { "good.so", NULL };
	char *resp;
	int port, status;

	check_start_with(plugins, HTTP_CONFIG);
	port = http_port();
	resp = check_get(port, "/readyz", 200);
	CHECK(strcmp(body_of(resp), "ready\n") == 0, "%s", resp);
	free(resp);
	free(check_get(port, "/nope", 404));
	free(check_get(port, "/metrics/x", 404));
	resp = http_request(port, "POST", "/metrics", &status);
	CHECK(status == 405 && strstr(resp, "Allow: GET, HEAD") != NULL,
	    "POST: %s", resp ? resp : "");
	free(resp);
	resp = http_request(port, "DELETE", "/", &status);
	CHECK(status == 405, "DELETE: %s", resp ? resp : "");
	free(resp);
	resp = http_request(port, "HEAD", "/metrics", &status);
	CHECK(status == 200 && body_of(resp)[0] == '\0', "HEAD: %s",
	    resp ? resp : "");
	free(resp);
	check_stop_clean();
}

static int
readyz_stopping(void *arg)
{
	int status;
	char *resp = http_request(*(int *)arg, "GET", "/readyz", &status);
	int yes = resp != NULL && status == 503 &&
	    strcmp(body_of(resp), "stopping\n") == 0;

	free(resp);
	return yes;
}

/* /metrics says a test.sleep call is running. */
static int
sleep_in_flight(void *arg)
{
	int status;
	char *resp = http_request(*(int *)arg, "GET", "/metrics", &status);
	int yes = resp != NULL && strstr(resp, "cmdhost_command_in_flight{"
	    "command=\"test.sleep\"} 1") != NULL;

	free(resp);
	return yes;
}

/* 1.3b From SIGTERM on /readyz says 503 "stopping", while the calls in
 * flight drain (a blocking call holds the drain open here). */
Test(http, readyz_503_while_stopping)
{
	static const char *const plugins[] = { "good.so", NULL };
	struct daemon *d;
	json_object *j;
	int port, fd;

	d = check_start_with(plugins, HTTP_CONFIG
	    "shutdown_timeout_ms = 60000\n");
	port = http_port();
	fd = check_connect();
	CHECK(client_send(fd, "{\"command\":\"test.sleep\",\"payload\":"
	    "{\"ms\":8000}}") == 0, "send");
	CHECK(wait_until(sleep_in_flight, &port, 20000), "never in flight");
	CHECK(daemon_signal(d, SIGTERM) == 0, "SIGTERM");
	CHECK(wait_until(readyz_stopping, &port, 8000),
	    "/readyz never said 503 stopping");
	/* The call that held the drain open still gets its reply. */
	{
		char *line = client_recv_line(fd);

		j = line ? json_tokener_parse(line) : NULL;
		free(line);
	}
	CHECK(reply_status(j) == 200, "the sleeping call: %s", reply_text(j));
	json_object_put(j);
	close(fd);
	CHECK(daemon_wait(d, 60000) == 0, "exit status");
}

/* 1.4 A file whose name holds markup: the page shows it as text. */
Test(http, status_page_escapes)
{
	static const char *const plugins[] = { "good.so", NULL };
	struct daemon *d;
	char *resp;
	int port;

	d = check_start_with(plugins, HTTP_CONFIG "watch = false\n");
	port = http_port();
	CHECK(daemon_install_plugin(d, "bad_abi.so", "x<b>&'y.so") == 0,
	    "install");
	CHECK(daemon_signal(d, SIGHUP) == 0, "SIGHUP");
	healthz_port = port;
	CHECK(wait_until(healthz_503_says, "(file x<b>&'y.so) is failed",
	    20000), "the file was never refused");
	resp = check_get(port, "/", 200);
	CHECK(strstr(resp, "Content-Type: text/html") != NULL, "%s", resp);
	CHECK(strstr(resp, "x&lt;b&gt;&amp;&#39;y.so") != NULL,
	    "not escaped: %s", resp);
	CHECK(strstr(resp, "<b>") == NULL, "markup got through: %s", resp);
	free(resp);
	check_stop_clean();
}

/* Run chromium headless on url with extra (one argument); 0 or -1. */
static int
chromium(const char *flag, const char *url, char **out)
{
	char profile[600], *argv[9], *err = NULL;
	int status = -1, rc;

	snprintf(profile, sizeof(profile), "--user-data-dir=%s/chromium",
	    daemon_dir(check_daemon()));
	argv[0] = (char *)"/usr/bin/chromium";
	argv[1] = (char *)"--headless";
	argv[2] = (char *)"--no-sandbox";   /* root in CI has no sandbox */
	argv[3] = (char *)"--disable-gpu";
	argv[4] = profile;
	argv[5] = (char *)"--window-size=1280,900";
	argv[6] = (char *)flag;
	argv[7] = (char *)url;
	argv[8] = NULL;
	rc = run_command(argv, NULL, 120000, &status, out, &err);
	if (rc < 0 || status != 0)
		fprintf(stderr, "chromium %s: rc %d status %d: %s\n", flag, rc,
		    status, err ? err : "");
	free(err);
	return rc == 0 && status == 0 ? 0 : -1;
}

/* 1.5 */
Test(http, chromium_shows_the_plugins_table)
{
	static const char *const plugins[] = { "good.so", "plugins/echo.so",
	    NULL };
	char url[64], shot[600], flag[700], *dom = NULL, *table;
	struct stat st;

	if (access("/usr/bin/chromium", X_OK) != 0)
		cr_skip_test("no /usr/bin/chromium (scripts/install-deps.sh "
		    "installs it)");
	check_start_with(plugins, HTTP_CONFIG);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", http_port());
	CHECK(chromium("--dump-dom", url, &dom) == 0 && dom != NULL,
	    "chromium --dump-dom failed");
	table = strstr(dom, "<table id=\"plugins\">");
	CHECK(table != NULL, "no plugins table in the DOM: %s", dom);
	CHECK(strstr(table, "<td>good</td>") != NULL &&
	    strstr(table, "<td>echo</td>") != NULL, "plugin names missing: %s",
	    table);
	CHECK(strstr(dom, "<table id=\"commands\">") != NULL &&
	    strstr(dom, "<td>test.echo</td>") != NULL, "no commands: %s", dom);
	free(dom);
	snprintf(shot, sizeof(shot), "%s/status.png",
	    daemon_dir(check_daemon()));
	snprintf(flag, sizeof(flag), "--screenshot=%s", shot);
	CHECK(chromium(flag, url, NULL) == 0, "chromium --screenshot failed");
	CHECK(stat(shot, &st) == 0 && st.st_size > 0, "no screenshot at %s",
	    shot);
	check_stop_clean();
}

/* ------------------------------------------------ 1.6 bad requests */

struct caller {
	const char *sock;
	atomic_int stop;
	int sent, answered, bad;
};

/* Call test.echo over and over on one connection until told to stop:
 * count the calls and the replies that are not 200 with the payload. */
static void *
caller_main(void *arg)
{
	struct caller *c = arg;
	int fd = client_connect(c->sock);

	if (fd < 0) {
		c->bad++;
		return NULL;
	}
	while (!atomic_load(&c->stop)) {
		char line[128];
		json_object *j;

		snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
		    "\"test.echo\",\"payload\":{\"n\":%d}}", c->sent, c->sent);
		c->sent++;
		j = client_call(fd, line);
		if (j != NULL && reply_status(j) == 200 &&
		    json_object_get_int(json_path(j, "body/n")) ==
		    c->sent - 1)
			c->answered++;
		else
			c->bad++;
		json_object_put(j);
	}
	close(fd);
	return NULL;
}

/* A reply to a bad request is nothing (closed), a 4xx, or 505 (random
 * bytes may make a request line whose version is not HTTP/1.x). */
static int
refused(const char *resp)
{
	return resp[0] == '\0' || ((strncmp(resp, "HTTP/1.1 ", 9) == 0 ||
	    strncmp(resp, "HTTP/1.0 ", 9) == 0) && (resp[9] == '4' ||
	    strncmp(resp + 9, "505", 3) == 0));
}

/* Connections of a test that the daemon closed. */
struct held {
	int fds[100];
	int closed[100];
	int n;
};

/* How many of h's connections the daemon closed (or never took). */
static int
held_closed(struct held *h)
{
	int n = 0;

	for (int i = 0; i < h->n; i++) {
		char c;

		if (!h->closed[i] && (h->fds[i] < 0 ||
		    recv(h->fds[i], &c, 1, MSG_DONTWAIT) == 0 ||
		    (errno != EAGAIN && errno != EWOULDBLOCK)))
			h->closed[i] = 1;
		n += h->closed[i];
	}
	return n;
}

struct held_want {
	struct held *h;
	int want;
};

static int
held_closed_at_least(void *arg)
{
	struct held_want *w = arg;

	return held_closed(w->h) >= w->want;
}

static void
held_drop(struct held *h)
{
	for (int i = 0; i < h->n; i++)
		if (h->fds[i] >= 0)
			close(h->fds[i]);
	memset(h, 0, sizeof(*h));
}

static int
healthz_ok(void *arg)
{
	int status;
	char *resp = http_request(*(int *)arg, "GET", "/healthz", &status);

	free(resp);
	return status == 200;
}

Test(http, bad_requests_leave_the_command_path_alone, .timeout = 600)
{
	static const char *const plugins[] = { "good.so", NULL };
	struct caller c = { 0 };
	struct held held = { 0 };
	struct held_want hw = { &held, 0 };
	pthread_t th;
	char *big, *resp, garbage[512];
	int port, fds[100], n_bad = 0, not_refused = 0;
	unsigned seed = 17;

	check_start_with(plugins, HTTP_CONFIG "http_max_connections = 32\n"
	    "http_max_connections_per_ip = 24\nhttp_timeout_s = 2\n"
	    "http_memory_bytes = 16384\n");
	port = http_port();
	c.sock = daemon_socket_path(check_daemon());
	CHECK(pthread_create(&th, NULL, caller_main, &c) == 0, "thread");

	/* 400 of garbage: random bytes, then a blank line. */
	for (int i = 0; i < 400; i++, n_bad++) {
		int fd = tcp_connect(port);
		size_t len = 1 + (size_t)(rand_r(&seed) % (sizeof(garbage) -
		    8));

		if (fd < 0)
			continue; /* past a limit: refused is fine too */
		for (size_t k = 0; k < len; k++)
			garbage[k] = (char)(rand_r(&seed) & 0xff);
		memcpy(garbage + len, "\r\n\r\n", 4);
		send_all(fd, garbage, len + 4);
		resp = recv_all(fd);
		not_refused += !refused(resp);
		free(resp);
		close(fd);
	}
	/* 200 with a header far past http_memory_bytes. */
	big = malloc(200000);
	cr_assert(big != NULL);
	memcpy(big, "GET /metrics HTTP/1.1\r\nX-Big: ", 30);
	memset(big + 30, 'a', 200000 - 34);
	memcpy(big + 200000 - 4, "\r\n\r\n", 4);
	for (int i = 0; i < 200; i++, n_bad++) {
		int fd = tcp_connect(port);

		if (fd < 0)
			continue;
		send_all(fd, big, i % 2 ? 200000 : 20000);
		resp = recv_all(fd);
		not_refused += !refused(resp);
		free(resp);
		close(fd);
	}
	free(big);
	/* 290 slow clients, 100 at a time: one byte each, then silence,
	 * held open together, then dropped. */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < (round < 2 ? 100 : 90); i++, n_bad++) {
			fds[i] = tcp_connect(port);
			if (fds[i] >= 0)
				send_all(fds[i], "G", 1);
		}
		for (int i = 0; i < (round < 2 ? 100 : 90); i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	/* 10 slow clients left alone: the daemon closes each after
	 * http_timeout_s. */
	for (held.n = 0; held.n < 10; held.n++, n_bad++) {
		held.fds[held.n] = tcp_connect(port);
		if (held.fds[held.n] >= 0)
			send_all(held.fds[held.n], "G", 1);
	}
	hw.want = 10;
	CHECK(wait_until(held_closed_at_least, &hw, 60000), "only %d of 10 "
	    "slow clients were closed", held_closed(&held));
	held_drop(&held);
	/* 100 connections opened at once and never written to: past the
	 * per-IP limit (24) the daemon closes them at once, the others
	 * after http_timeout_s; none is left holding a place. */
	for (held.n = 0; held.n < 100; held.n++, n_bad++)
		held.fds[held.n] = tcp_connect(port);
	hw.want = 100 - 24;
	CHECK(wait_until(held_closed_at_least, &hw, 60000), "only %d of 100 "
	    "connections past the limit were closed", held_closed(&held));
	held_drop(&held);

	atomic_store(&c.stop, 1);
	pthread_join(th, NULL);
	CHECK(n_bad == 1000, "%d bad requests", n_bad);
	CHECK(not_refused == 0, "%d bad requests got something but a 4xx",
	    not_refused);
	CHECK(c.sent > 0 && c.bad == 0 && c.answered == c.sent,
	    "commands: %d sent, %d answered, %d bad", c.sent, c.answered,
	    c.bad);
	json_object_put(check_call(check_connect(), "{\"command\":"
	    "\"host.ping\"}", 200, NULL));
	CHECK(wait_until(healthz_ok, &port, 30000),
	    "/healthz does not answer 200 after the bad requests");
	check_stop_clean();
}

/* 2.1 A port in use is a start error, before any plugin loads. */
Test(http, port_in_use_stops_start_up)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	char config[512], *err = NULL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0);
	cr_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	cr_assert(listen(fd, 1) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	snprintf(config, sizeof(config), "[host]\nsocket = cmdhost.sock\n"
	    "plugin_dir = plugins\nhttp_listen = 127.0.0.1:%u\n",
	    ntohs(sin.sin_port));
	cr_assert(daemon_run_expect_fail(config, &status, &err) == 0,
	    "the daemon did not exit");
	cr_assert(status == 1, "exit status %d: %s", status, err);
	cr_assert(strstr(err, "bind: Address already in use") != NULL, "%s",
	    err);
	free(err);
	close(fd);
}

/* 2.2 `cmdhostd -t` refuses an address that does not parse, with the
 * file and line, and passes a good one. */
Test(http, check_mode_parses_the_address)
{
	char dir[] = "/tmp/cmdhost-http-t.XXXXXX", path[600], plugins[600];
	char *out = NULL, *err = NULL, *argv[5];
	int status = -1;
	FILE *f;

	cr_assert(mkdtemp(dir) != NULL);
	snprintf(plugins, sizeof(plugins), "%s/plugins", dir);
	cr_assert(mkdir(plugins, 0700) == 0);
	snprintf(path, sizeof(path), "%s/cmdhost.ini", dir);
	argv[0] = (char *)CMDHOST_BUILD_DIR "/cmdhostd";
	argv[1] = (char *)"-t";
	argv[2] = (char *)"-c";
	argv[3] = path;
	argv[4] = NULL;
	for (int good = 0; good < 2; good++) {
		cr_assert((f = fopen(path, "w")) != NULL);
		fprintf(f, "[host]\nsocket = cmdhost.sock\nplugin_dir = plugins\n"
		    "state_dir = state\nhttp_listen = %s\n", good ?
		    "[::1]:9464" : "localhost:9464");
		fclose(f);
		cr_assert(run_command(argv, NULL, 30000, &status, &out,
		    &err) == 0);
		if (good)
			cr_assert(status == 0, "-t: %d %s %s", status, out, err);
		else
			cr_assert(status == 1 && strstr(err, "cmdhost.ini:5: "
			    "http_listen: 'localhost:9464'") != NULL,
			    "-t: %d %s", status, err);
		free(out);
		free(err);
		out = err = NULL;
	}
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	argv[0] = (char *)"/bin/sh";
	argv[1] = (char *)"-c";
	argv[2] = path;
	argv[3] = NULL;
	(void)run_command(argv, NULL, 30000, &status, NULL, NULL);
}
