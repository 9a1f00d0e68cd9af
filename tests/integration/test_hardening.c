/*
 * test_hardening.c - clients that never read, connections that idle, and
 * plugin files that others could have written: the daemon stays bounded,
 * closes what idles, and refuses what it cannot trust.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

TestSuite(hardening, .fini = check_free);

static const char *const good_only[] = { "good.so", NULL };

Test(hardening, idle_and_half_line_connections_are_closed, .timeout = 60)
{
	int idle, half, active, idle_gone = 0, half_gone = 0;
	int64_t start, deadline;
	json_object *j;

	check_start_with(good_only, "idle_timeout_ms = 300");
	idle = check_connect();
	half = check_connect();
	active = check_connect();
	CHECK(client_send_raw(half, "{\"command\":\"te", 14) == 0,
	    "cannot send half a line");
	start = now_ms();
	deadline = start + 5000;
	/* The active connection sends a request every ~50 ms and must stay
	 * served while the two others are closed. */
	while ((!idle_gone || !half_gone) && now_ms() < deadline) {
		j = check_call(active, "{\"command\":\"test.echo\","
		    "\"payload\":1}", 200, NULL);
		json_object_put(j);
		if (!idle_gone)
			idle_gone = client_wait_eof(idle, 25);
		if (!half_gone)
			half_gone = client_wait_eof(half, 25);
	}
	CHECK(idle_gone, "an idle connection stayed open past 5 s");
	CHECK(half_gone, "a connection holding half a line stayed open past "
	    "5 s");
	CHECK(now_ms() - start >= 250, "closed after only %lld ms",
	    (long long)(now_ms() - start));
	j = check_call(active, "{\"command\":\"test.echo\",\"payload\":2}",
	    200, NULL);
	json_object_put(j);
	close(idle);
	close(half);
	close(active);
	check_stop_clean();
}

Test(hardening, idle_timeout_zero_keeps_connections, .timeout = 60)
{
	int fd;
	json_object *j;

	check_start_with(good_only, "idle_timeout_ms = 0");
	fd = check_connect();
	/* Nothing should close it: wait well past what a timeout would be. */
	CHECK(!client_wait_eof(fd, 500), "closed although idle_timeout_ms = 0");
	j = check_call(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

#define FLOOD 20000

/* Send as much of buf[*off..len) as fits without blocking. */
static void
send_some(int fd, const char *buf, size_t len, size_t *off)
{
	while (*off < len) {
		ssize_t n = send(fd, buf + *off, len - *off,
		    MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			return;
		*off += (size_t)n;
	}
}

/*
 * A client that pipelines 20,000 requests and does not read: once its
 * unsent replies pass max_pending_bytes the daemon stops reading from it,
 * so its memory stays bounded and others are served; when the client reads
 * at last, every reply arrives, in order.
 */
Test(hardening, client_that_never_reads_is_bounded, .timeout = 120)
{
	struct daemon *d;
	char *flood, *line;
	size_t len = 0, off = 0, cap = (size_t)FLOOD * 160;
	long before, during;
	int hog, other, got = 0;
	json_object *j;

	d = check_start_with(good_only, "max_pending_bytes = 65536");
	before = proc_rss_kib(daemon_pid(d));
	hog = check_connect();
	other = check_connect();
	cr_assert_not_null(flood = malloc(cap));
	for (int i = 0; i < FLOOD; i++)
		len += (size_t)snprintf(flood + len, cap - len,
		    "{\"id\":%d,\"command\":\"test.echo\",\"payload\":"
		    "{\"pad\":\"%080d\"}}\n", i, i);
	/* Push until the socket will take no more: the daemon has stopped
	 * reading from us. */
	for (int stalls = 0; off < len && stalls < 20; stalls++) {
		size_t was = off;

		send_some(hog, flood, len, &off);
		if (off == was)
			nap_ms(10);
		else
			stalls = 0;
	}
	CHECK(off < len, "the daemon read all %zu bytes of a client that "
	    "reads nothing", len);

	/* Another client is served at once. */
	j = check_call(other, "{\"id\":\"x\",\"command\":\"host.ping\"}", 200,
	    NULL);
	json_object_put(j);
	during = proc_rss_kib(daemon_pid(d));
	CHECK(before > 0 && during > 0 && during - before < 16 * 1024,
	    "daemon RSS grew from %ld to %ld KiB", before, during);

	/* Now read everything; keep sending the rest meanwhile. */
	while (got < FLOOD) {
		struct pollfd p = { .fd = hog, .events = POLLIN };
		int want;

		send_some(hog, flood, len, &off);
		if (poll(&p, 1, 5000) <= 0)
			break;
		if ((line = client_recv_line(hog)) == NULL)
			break;
		j = json_tokener_parse(line);
		want = got;
		CHECK(j != NULL && reply_status(j) == 200 &&
		    json_object_get_int(reply_id(j)) == want,
		    "reply %d: %s", got, line);
		json_object_put(j);
		free(line);
		got++;
	}
	CHECK(got == FLOOD, "%d of %d replies", got, FLOOD);
	free(flood);
	close(hog);
	close(other);
	check_stop_clean();
}

/* Write plugin `name`'s bytes into the daemon's plugin dir as `as` with
 * `mode`, under a dot name first so the watcher sees it complete. */
static void
drop_with_mode(struct daemon *d, const char *name, const char *as,
    mode_t mode)
{
	char src[4096], tmp[4096], dst[4096];
	size_t len;
	void *buf;
	int fd;

	cr_assert(harness_plugin_path(name, src, sizeof(src)) == 0);
	cr_assert_not_null(buf = harness_read_bytes(src, &len));
	snprintf(tmp, sizeof(tmp), "%s/plugins/.%s.tmp", daemon_dir(d), as);
	snprintf(dst, sizeof(dst), "%s/plugins/%s", daemon_dir(d), as);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	cr_assert(write(fd, buf, len) == (ssize_t)len);
	cr_assert(fchmod(fd, mode) == 0);
	close(fd);
	cr_assert(rename(tmp, dst) == 0);
	free(buf);
}

struct list_wait {
	const char *file;
	const char *state;
	char error[1024];
};

/* wait_until() condition: host.list has `file` in `state`. */
static int
listed_as(void *arg)
{
	struct list_wait *w = arg;
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.list\"}");
	json_object *plugins = json_path(j, "body/plugins");
	int found = 0;

	for (size_t i = 0; plugins && i < json_object_array_length(plugins);
	    i++) {
		json_object *p = json_object_array_get_idx(plugins, i);
		const char *file = json_path_str(p, "file");
		const char *state = json_path_str(p, "state");
		const char *err = json_path_str(p, "error");

		if (file && strcmp(file, w->file) == 0 && state &&
		    strcmp(state, w->state) == 0) {
			snprintf(w->error, sizeof(w->error), "%s",
			    err ? err : "");
			found = 1;
		}
	}
	json_object_put(j);
	return found;
}

Test(hardening, plugin_writable_by_others_is_refused, .timeout = 60)
{
	struct list_wait w = { .file = "ww.so", .state = "failed" };
	struct daemon *d = check_start_with(good_only, NULL);
	int fd = check_connect();
	json_object *j;

	drop_with_mode(d, "swap_v1.so", "ww.so", 0666);
	CHECK(wait_until(listed_as, &w, 5000), "ww.so (mode 0666) was not "
	    "refused");
	CHECK(strstr(w.error, "writable by other users") != NULL, "error: %s",
	    w.error);
	j = check_call(fd, "{\"command\":\"swap.version\"}", 404,
	    "unknown_command");
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	json_object_put(j);

	/* Made safe, the same bytes load. */
	drop_with_mode(d, "swap_v1.so", "ww.so", 0644);
	w.state = "loaded";
	CHECK(wait_until(listed_as, &w, 5000), "ww.so (mode 0644) did not load");
	close(fd);
	check_stop_clean();
}

/* A plugin directory that became writable by others after start-up:
 * rescans are refused as a whole (logged, and said in the reload's
 * report), what is loaded keeps serving, and once it is safe again the
 * file loads. */
Test(hardening, plugin_dir_writable_by_others_is_refused, .timeout = 60)
{
	struct list_wait w = { .file = "late.so", .state = "loaded" };
	struct daemon *d = check_start_with(good_only, NULL);
	int fd = check_connect();
	const char *e;
	char dir[4096];
	json_object *j;

	snprintf(dir, sizeof(dir), "%s/plugins", daemon_dir(d));
	cr_assert(chmod(dir, 0777) == 0);
	drop_with_mode(d, "swap_v1.so", "late.so", 0644);
	j = check_call(fd, "{\"command\":\"host.reload\"}", 200, NULL);
	e = json_path_str(j, "body/error");
	CHECK(e != NULL && strstr(e, "writable by other users") != NULL,
	    "reload under a world-writable plugin_dir: %s", reply_text(j));
	json_object_put(j);
	CHECK(daemon_log_contains(d, "rescan refused"), "no log line");
	j = check_call(fd, "{\"command\":\"swap.version\"}", 404,
	    "unknown_command");
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	json_object_put(j);
	cr_assert(chmod(dir, 0755) == 0);
	j = check_call(fd, "{\"command\":\"host.reload\"}", 200, NULL);
	json_object_put(j);
	CHECK(wait_until(listed_as, &w, 5000), "late.so did not load once "
	    "plugin_dir was safe again");
	close(fd);
	check_stop_clean();
}

Test(hardening, allow_insecure_plugins_is_the_development_switch,
    .timeout = 60)
{
	struct list_wait w = { .file = "ww.so", .state = "loaded" };
	struct daemon *d = check_start_with(good_only,
	    "allow_insecure_plugins = true");
	int fd = check_connect();
	json_object *j;

	drop_with_mode(d, "swap_v1.so", "ww.so", 0666);
	CHECK(wait_until(listed_as, &w, 5000), "ww.so was refused although "
	    "allow_insecure_plugins = true");
	j = check_call(fd, "{\"command\":\"swap.version\"}", 200, NULL);
	json_object_put(j);
	close(fd);
	check_stop_clean();
}
