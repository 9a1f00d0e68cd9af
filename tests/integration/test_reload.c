/*
 * test_reload.c - hot reload of one plugin file at a time: the watcher
 * swaps generations, a broken replacement leaves the old one serving, calls
 * finish on the generation they started on, removals and drop-ins take
 * effect, each step is logged, and a loop thread stuck in another
 * plugin's call keeps no replaced generation alive.  The load and
 * resource tests are in test_reload_load.c.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* Upper bound of every wait for the daemon to notice a change. */
#define WAIT_MS 10000

static struct daemon *d;
static int fd = -1;	/* the test's own connection */

static void
teardown(void)
{
	if (fd != -1)
		close(fd);
	fd = -1;
	check_free();
	d = NULL;
}

TestSuite(reload, .fini = teardown);

/*
 * Start a daemon with an empty plugin dir and `config` (borrowed, may be
 * NULL), connect to it and wait until it is ready (see
 * drop_in_right_after_start for why).
 */
static void
start(const char *config)
{
	fd = check_start_ready(config, WAIT_MS);
	d = check_daemon();
}

/* Send {"command": cmd}.  Returns the reply (put it); a lost connection
 * fails the test. */
static json_object *
call(const char *cmd)
{
	char line[256];
	json_object *j;

	snprintf(line, sizeof(line), "{\"command\":\"%s\"}", cmd);
	j = client_call(fd, line);
	CHECK(j != NULL, "%s: no reply; daemon status %d (-1: running, "
	    "128+N: killed by signal N)", line, daemon_wait(d, 1000));
	return j;
}

static int
call_status(const char *cmd)
{
	json_object *j = call(cmd);
	int st = reply_status(j);

	json_object_put(j);
	return st;
}

/* Non-zero if a is not NULL and equals b. */
static int
str_is(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

/* Non-zero if swap.version answers 200 with version `want`. */
static int
answers_version(void *want)
{
	json_object *j = call("swap.version");
	const char *v = json_path_str(reply_body(j), "version");
	int ok;

	ok = reply_status(j) == 200 && v != NULL && strcmp(v, want) == 0;
	json_object_put(j);
	return ok;
}

static void
wait_version(const char *want)
{
	json_object *j;

	if (wait_until(answers_version, (void *)want, WAIT_MS))
		return;
	j = call("swap.version");
	CHECK(0, "swap.version did not answer version %s within %d ms; "
	    "last: %s", want, WAIT_MS, reply_text(j));
}

struct want_status {
	const char *cmd;
	int status;
};

static int
answers_status(void *arg)
{
	struct want_status *w = arg;

	return call_status(w->cmd) == w->status;
}

static void
wait_status(const char *cmd, int status)
{
	struct want_status w = { cmd, status };
	json_object *j;

	if (wait_until(answers_status, &w, WAIT_MS))
		return;
	j = call(cmd);
	CHECK(0, "%s did not answer %d within %d ms; last: %s", cmd, status,
	    WAIT_MS, reply_text(j));
}

/* Start a daemon (with `config`) whose plugins/swap.so is swap_v1.so,
 * put there while it runs, and wait until the watcher loaded it. */
static void
start_swap(const char *config)
{
	start(config);
	CHECK(daemon_install_plugin(d, "swap_v1.so", "swap.so") == 0,
	    "cannot install swap_v1.so");
	wait_version("1");
}

static void
swap_to(const char *built)
{
	CHECK(daemon_install_plugin(d, built, "swap.so") == 0,
	    "cannot install %s as swap.so", built);
}

/* The host.list entry whose "file" is `file`: a new reference (put it), or
 * NULL if there is none. */
static json_object *
list_entry(const char *file)
{
	json_object *j = call("host.list"), *plugins, *p, *found = NULL;
	const char *f;
	size_t i, n;

	plugins = json_path(j, "body/plugins");
	CHECK(reply_status(j) == 200 &&
	    json_object_is_type(plugins, json_type_array),
	    "host.list: %s", reply_text(j));
	n = json_object_array_length(plugins);
	for (i = 0; i < n && found == NULL; i++) {
		p = json_object_array_get_idx(plugins, i);
		f = json_path_str(p, "file");
		if (f != NULL && strcmp(f, file) == 0)
			found = json_object_get(p);
	}
	json_object_put(j);
	return found;
}

/* The number of host.list entries. */
static size_t
list_count(void)
{
	json_object *j = call("host.list");
	json_object *plugins = json_path(j, "body/plugins");
	size_t n;

	CHECK(json_object_is_type(plugins, json_type_array), "host.list: %s",
	    reply_text(j));
	n = json_object_array_length(plugins);
	json_object_put(j);
	return n;
}

/* Non-zero if host.list shows an error for file `arg`. */
static int
shows_error(void *arg)
{
	json_object *p = list_entry(arg);
	int ok = json_path_str(p, "error") != NULL;

	json_object_put(p);
	return ok;
}

static void
wait_error(const char *file)
{
	json_object *p;

	if (wait_until(shows_error, (void *)file, WAIT_MS))
		return;
	p = list_entry(file);
	CHECK(0, "host.list shows no error for %s within %d ms: %s", file,
	    WAIT_MS, reply_text(p));
}

static int64_t
member_int(json_object *j, const char *key)
{
	json_object *v;

	if (j == NULL || !json_object_object_get_ex(j, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

/* Non-zero if `text` holds `word` not as part of a longer name: "swap" in
 * "plugin 'swap'" but not in "swap.version" or "swap_v1". */
static int
has_word(const char *text, const char *word)
{
	size_t n = strlen(word);
	const char *p;

	for (p = text; (p = strstr(p, word)) != NULL; p++) {
		char before = p == text ? ' ' : p[-1];
		char after = p[n];

		if (!(before == '_' || before == '.' || (before >= 'a' &&
		    before <= 'z') || (before >= '0' && before <= '9')) &&
		    !(after == '_' || after == '.' || (after >= 'a' &&
		    after <= 'z') || (after >= '0' && after <= '9')))
			return 1;
	}
	return 0;
}

static char *
marker_text(const char *path)
{
	size_t len;
	char *buf = harness_read_bytes(path, &len), *s;

	if (buf == NULL)
		return strdup("");
	s = strndup(buf, len);
	free(buf);
	return s;
}

static int
marker_has_fini1(void *path)
{
	char *s = marker_text(path);
	int found = s != NULL && strstr(s, "fini 1\n") != NULL;

	free(s);
	return found;
}

static int
slow_in_flight(void *arg)
{
	json_object *j = call("host.stats");
	int64_t n = -1;
	json_object *v = json_path(j, "body/commands/swap.slow/in_flight");

	(void)arg;
	if (v != NULL && json_object_is_type(v, json_type_int))
		n = json_object_get_int64(v);
	json_object_put(j);
	return n == 1;
}

/*
 * A client that can connect may drop a plugin in at once: it must be
 * loaded.  The window in which a daemon could miss it is short, so this
 * tries a few daemons.
 */
Test(reload, drop_in_right_after_start, .timeout = 120)
{
	struct daemon_opts o = { NULL };
	int i;

	for (i = 0; i < 20; i++) {
		d = check_start(&o);
		CHECK(daemon_install_plugin(d, "swap_v1.so", "swap.so") == 0,
		    "cannot install swap_v1.so");
		fd = client_connect(daemon_socket_path(d));
		CHECK(fd != -1, "connect failed");
		if (!wait_until(answers_version, (void *)"1", WAIT_MS))
			CHECK(0, "daemon %d: swap.so, dropped in as soon as "
			    "connect() succeeded, was never loaded", i + 1);
		CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
		close(fd);
		fd = -1;
		check_free();
		d = NULL;
	}
}

Test(reload, slow_call_finishes_on_old, .timeout = 60)
{
	char marker[4096], *text, *line;
	int slow_fd;
	json_object *j;
	const char *v, *id;

	start_swap("[plugin:swap]\nfini_marker = fini.txt\n");
	snprintf(marker, sizeof(marker), "%s/fini.txt", daemon_dir(d));

	slow_fd = client_connect(daemon_socket_path(d));
	CHECK(slow_fd != -1, "second connection failed");
	CHECK(client_send(slow_fd, "{\"id\":\"slow\",\"command\":\"swap.slow\","
	    "\"payload\":{\"ms\":800}}") == 0, "send swap.slow");
	CHECK(wait_until(slow_in_flight, NULL, WAIT_MS),
	    "host.stats never showed swap.slow in_flight 1");

	swap_to("swap_v2.so");
	wait_version("2");
	text = marker_text(marker);
	CHECK(text != NULL && strstr(text, "fini 1") == NULL,
	    "generation 1 was finalized while swap.slow still ran on it: "
	    "marker says \"%s\"", text);
	free(text);

	/* The slow call started on version 1 and finishes there. */
	line = client_recv_line(slow_fd);
	close(slow_fd);
	j = line != NULL ? json_tokener_parse(line) : NULL;
	free(line);
	v = json_path_str(reply_body(j), "version");
	id = json_path_str(j, "id");
	CHECK(reply_status(j) == 200 && v != NULL && strcmp(v, "1") == 0 &&
	    id != NULL && strcmp(id, "slow") == 0,
	    "swap.slow reply %s, want status 200, id \"slow\", version \"1\"",
	    reply_text(j));
	json_object_put(j);

	CHECK(wait_until(marker_has_fini1, marker, WAIT_MS),
	    "fini of version 1 did not run after its last call returned");
	text = marker_text(marker);
	CHECK(strstr(text, "fini 2") == NULL, "version 2 was finalized while "
	    "it serves: marker says \"%s\"", text);
	free(text);
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

/*
 * Replace swap.so (serving version 1) with `len` bytes of `buf` by rename:
 * version 1 keeps serving, host.list says "degraded" with an error that
 * holds each of `words` (compared without case); then swap_v2.so in place
 * loads and clears the error.
 */
static void
broken_replacement(const char *what, const void *buf, size_t len,
    const char *const *words)
{
	json_object *p;
	const char *state, *err;

	start_swap(NULL);
	CHECK(daemon_write_plugin(d, "swap.so", buf, len, PLUGIN_RENAME) == 0,
	    "cannot write %s as swap.so", what);
	wait_error("swap.so");

	CHECK(answers_version((void *)"1"), "%s: swap.version no longer "
	    "answers version 1 (daemon alive: %d)", what,
	    daemon_wait(d, 0) == -1);
	p = list_entry("swap.so");
	state = json_path_str(p, "state");
	err = json_path_str(p, "error");
	CHECK(state != NULL && strcmp(state, "degraded") == 0 &&
	    err != NULL && err[0] != '\0', "%s: want state degraded with an "
	    "error: %s", what, reply_text(p));
	CHECK(json_path_str(p, "version") != NULL &&
	    strcmp(json_path_str(p, "version"), "1") == 0,
	    "%s: host.list should still show version 1: %s", what,
	    reply_text(p));
	for (; *words != NULL; words++)
		CHECK(strcasestr(err, *words) != NULL, "%s: error \"%s\" does "
		    "not mention \"%s\"", what, err, *words);
	json_object_put(p);

	swap_to("swap_v2.so");
	wait_version("2");
	p = list_entry("swap.so");
	state = json_path_str(p, "state");
	CHECK(state != NULL && strcmp(state, "loaded") == 0 &&
	    json_object_object_get_ex(p, "error", NULL) &&
	    json_path_str(p, "error") == NULL, "%s: after swap_v2.so want "
	    "state loaded and error null: %s", what, reply_text(p));
	json_object_put(p);
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

/* The bytes of built plugin `name` (new buffer). */
static void *
plugin_bytes(const char *name, size_t *len)
{
	char path[4096];
	void *buf;

	cr_assert(harness_plugin_path(name, path, sizeof(path)) == 0,
	    "%s not built", name);
	buf = harness_read_bytes(path, len);
	cr_assert_not_null(buf, "cannot read %s", path);
	return buf;
}

Test(reload, broken_replacement_truncated, .timeout = 60)
{
	static const char *const words[] = { "truncated", NULL };
	size_t len;
	void *buf = plugin_bytes("swap_v2.so", &len);

	cr_assert(len > 1024);
	broken_replacement("the first 1 KiB of swap_v2.so", buf, 1024, words);
	free(buf);
}

Test(reload, broken_replacement_garbage, .timeout = 60)
{
	static const char *const words[] = { "ELF", NULL };
	char buf[8192];
	size_t i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (char)("not a shared object\n"[i % 20]);
	broken_replacement("garbage bytes", buf, sizeof(buf), words);
}

Test(reload, broken_replacement_bad_abi, .timeout = 60)
{
	static const char *const words[] = { "ABI", "99", NULL };
	size_t len;
	void *buf = plugin_bytes("bad_abi.so", &len);

	broken_replacement("bad_abi.so", buf, len, words);
	free(buf);
}

Test(reload, broken_replacement_reg_fails, .timeout = 60)
{
	static const char *const words[] = { "database unreachable", NULL };
	size_t len;
	void *buf = plugin_bytes("reg_fails.so", &len);

	broken_replacement("reg_fails.so", buf, len, words);
	free(buf);
}

/* Loads plus refused loads of `file` so far (host.list), or -1. */
static int64_t
load_attempts(const char *file)
{
	json_object *p = list_entry(file);
	int64_t n = -1;

	if (p != NULL && member_int(p, "loads") >= 0 &&
	    member_int(p, "load_failures") >= 0)
		n = member_int(p, "loads") + member_int(p, "load_failures");
	json_object_put(p);
	return n;
}

struct attempts {
	const char *file;
	int64_t more_than;
};

/* Non-zero once `file` was synced: more load attempts than a->more_than. */
static int
attempted(void *arg)
{
	struct attempts *a = arg;

	return load_attempts(a->file) > a->more_than;
}

/* Non-zero once a load of swap.so after a->more_than attempts published
 * version 2 and no error is left. */
static int
complete_loaded(void *arg)
{
	struct attempts *a = arg;
	json_object *p;
	int ok;

	if (load_attempts(a->file) <= a->more_than)
		return 0;
	p = list_entry(a->file);
	ok = str_is(json_path_str(p, "state"), "loaded") &&
	    str_is(json_path_str(p, "version"), "2") &&
	    json_path_str(p, "error") == NULL;
	json_object_put(p);
	return ok;
}

Test(reload, half_written_file_loads_when_complete, .timeout = 60)
{
	struct attempts a = { "swap.so", 0 };
	char path[4096];
	size_t len, half;
	char *buf = plugin_bytes("swap_v2.so", &len);
	json_object *p;
	int wfd;

	start_swap(NULL);
	a.more_than = load_attempts("swap.so");
	snprintf(path, sizeof(path), "%s/plugins/swap.so", daemon_dir(d));
	half = len / 2;
	wfd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(wfd != -1, "open %s: %s", path, strerror(errno));
	CHECK(write(wfd, buf, half) == (ssize_t)half, "write first half");
	/*
	 * The daemon may refuse the half file, or load it if its loadable
	 * segments happen to be complete, or wait for the writer: any is
	 * fine as long as it serves.  Give it 300 ms to do one of them.
	 */
	wait_until(attempted, &a, 300);
	CHECK(call_status("swap.version") == 200, "swap.version does not "
	    "answer while swap.so is half written");
	a.more_than = load_attempts("swap.so");
	CHECK(write(wfd, buf + half, len - half) == (ssize_t)(len - half),
	    "write second half");
	CHECK(close(wfd) == 0, "close");
	free(buf);

	/* The complete file is loaded: a later attempt, version 2, no
	 * error left. */
	if (!wait_until(complete_loaded, &a, WAIT_MS)) {
		p = list_entry("swap.so");
		CHECK(0, "the complete file was not loaded after %lld attempts "
		    "at the half one: %s", (long long)a.more_than,
		    reply_text(p));
	}
	wait_version("2");
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

Test(reload, claim_of_other_plugins_command_is_refused, .timeout = 60)
{
	json_object *p;
	const char *err, *state, *name;

	start_swap(NULL);
	CHECK(daemon_install_plugin(d, "other_claims_swap.so", NULL) == 0,
	    "cannot install other_claims_swap.so");
	wait_error("other_claims_swap.so");
	p = list_entry("other_claims_swap.so");
	err = json_path_str(p, "error");
	state = json_path_str(p, "state");
	name = json_path_str(p, "name");
	CHECK(state != NULL && strcmp(state, "failed") == 0 && name != NULL &&
	    strcmp(name, "claimer") == 0, "want claimer failed: %s",
	    reply_text(p));
	CHECK(err != NULL && strstr(err, "swap.version") != NULL &&
	    has_word(err, "swap"),
	    "error \"%s\" should name swap.version and plugin swap", err);
	json_object_put(p);
	CHECK(call_status("claimer.own") == 404,
	    "claimer.own of a refused plugin is published");
	CHECK(answers_version((void *)"1"), "swap.version lost its owner");
	p = list_entry("swap.so");
	CHECK(str_is(json_path_str(p, "state"), "loaded"),
	    "swap.so: %s", reply_text(p));
	json_object_put(p);
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

Test(reload, removal_and_drop_in, .timeout = 60)
{
	json_object *p;

	start_swap(NULL);
	CHECK(daemon_remove_plugin(d, "swap.so") == 0, "rm swap.so: %s",
	    strerror(errno));
	wait_status("swap.version", 404);
	CHECK(call_status("swap.slow") == 404, "swap.slow still published");
	p = list_entry("swap.so");
	CHECK(p == NULL, "host.list still lists swap.so: %s", reply_text(p));
	CHECK(list_count() == 0, "host.list not empty");

	CHECK(daemon_install_plugin(d, "good.so", NULL) == 0,
	    "cannot install good.so");
	wait_status("test.echo", 200);
	p = list_entry("good.so");
	CHECK(p != NULL && str_is(json_path_str(p, "state"), "loaded"),
	    "good.so: %s", reply_text(p));
	json_object_put(p);
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

Test(reload, version_only_commands_follow_the_swap, .timeout = 60)
{
	start_swap(NULL);
	CHECK(call_status("swap.v1.only") == 200, "swap.v1.only on v1");
	CHECK(call_status("swap.v2.only") == 404, "swap.v2.only on v1");
	swap_to("swap_v2.so");
	wait_version("2");
	CHECK(call_status("swap.v1.only") == 404, "swap.v1.only on v2");
	CHECK(call_status("swap.v2.only") == 200, "swap.v2.only on v2");
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

/*
 * Make sure the watcher has handled every event before this call: drop in
 * plugins/echo.so as `as`, wait until "echo" answers, remove it, wait
 * until "echo" is gone.  The watcher works one file at a time, so once the
 * removal is seen, the earlier changes have been synced.
 */
static void
sync_point(const char *as)
{
	CHECK(daemon_install_plugin(d, "plugins/echo.so", as) == 0,
	    "cannot install echo.so as %s", as);
	wait_status("echo", 200);
	CHECK(daemon_remove_plugin(d, as) == 0, "rm %s", as);
	wait_status("echo", 404);
}

Test(reload, identical_bytes_make_no_generation, .timeout = 60)
{
	json_object *p;
	int64_t gen, loads;
	char *log;

	start_swap(NULL);
	p = list_entry("swap.so");
	gen = member_int(p, "generation");
	loads = member_int(p, "loads");
	CHECK(gen > 0, "no generation: %s", reply_text(p));
	json_object_put(p);

	CHECK(daemon_overwrite_plugin(d, "swap_v1.so", "swap.so") == 0,
	    "cp swap_v1.so over swap.so");
	swap_to("swap_v1.so");
	sync_point("sync.so");

	p = list_entry("swap.so");
	CHECK(member_int(p, "generation") == gen && member_int(p, "loads") ==
	    loads && str_is(json_path_str(p, "state"), "loaded"),
	    "identical bytes made a new generation (was %lld, loads %lld): %s",
	    (long long)gen, (long long)loads, reply_text(p));
	json_object_put(p);
	CHECK(answers_version((void *)"1"), "swap.version");
	log = daemon_log(d);
	CHECK(log != NULL && strstr(log, "swapped") == NULL,
	    "identical bytes were logged as a swap");
	free(log);
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

Test(reload, ignored_names, .timeout = 60)
{
	static const char *const names[] = { ".hidden.so", "x.so.tmp",
	    "notes.txt" };
	json_object *p;
	size_t i, len;
	void *good = plugin_bytes("good.so", &len);

	start_swap(NULL);
	/* Real plugin bytes under names that must be ignored: loading any
	 * would publish test.echo. */
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK(daemon_write_plugin(d, names[i], good, len,
		    PLUGIN_IN_PLACE) == 0, "write %s", names[i]);
	free(good);
	sync_point("sync.so");

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		p = list_entry(names[i]);
		CHECK(p == NULL, "%s is in host.list: %s", names[i],
		    reply_text(p));
	}
	CHECK(list_count() == 1, "host.list should hold swap.so alone");
	CHECK(call_status("test.echo") == 404, "an ignored file was loaded");
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

/* Non-zero if `cmd` answers anything but `status`.  For a bounded watch
 * that nothing changes: wait_until(changed, ..) must time out. */
static int
status_changed(void *arg)
{
	struct want_status *w = arg;

	return call_status(w->cmd) != w->status;
}

static int
report_has(json_object *reply, const char *key, const char *file)
{
	json_object *arr = json_path(reply, "body"), *v;
	size_t i, n;

	if (!json_object_object_get_ex(arr, key, &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return 0;
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		v = json_object_array_get_idx(arr, i);
		if (json_object_is_type(v, json_type_string) &&
		    strcmp(json_object_get_string(v), file) == 0)
			return 1;
	}
	return 0;
}

Test(reload, watch_false_needs_reload, .timeout = 60)
{
	static const char *const plugins[] = { "swap_v1.so", NULL };
	struct daemon_opts o = { .plugins = plugins,
	    .config = "watch = false\n" };
	struct want_status still404 = { "test.echo", 404 };
	struct want_status echo404 = { "echo", 404 };
	json_object *j, *p;

	d = check_start(&o);
	fd = check_connect();
	CHECK(answers_version((void *)"1"), "swap_v1.so not loaded at start");

	CHECK(daemon_install_plugin(d, "good.so", NULL) == 0,
	    "cannot install good.so");
	CHECK(!wait_until(status_changed, &still404, 300),
	    "good.so was loaded with watch = false");
	p = list_entry("good.so");
	CHECK(p == NULL, "good.so listed with watch = false: %s",
	    reply_text(p));

	j = call("host.reload");
	CHECK(reply_status(j) == 200 && report_has(j, "loaded", "good.so"),
	    "host.reload should list good.so in loaded: %s", reply_text(j));
	json_object_put(j);
	CHECK(call_status("test.echo") == 200, "test.echo after host.reload");

	CHECK(daemon_install_plugin(d, "plugins/echo.so", NULL) == 0,
	    "cannot install echo.so");
	CHECK(!wait_until(status_changed, &echo404, 300),
	    "echo.so was loaded with watch = false");
	CHECK(daemon_signal(d, SIGHUP) == 0, "kill -HUP");
	wait_status("echo", 200);
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

/* The first line of the daemon's log that is a JSON object for which
 * match(line) is non-zero: a new reference (put it), or NULL. */
static json_object *
log_find(int (*match)(json_object *))
{
	char *log = daemon_log(d), *p, *nl;
	json_object *j, *found = NULL;

	for (p = log; p != NULL && *p != '\0' && found == NULL; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			break; /* a line still being written */
		*nl = '\0';
		if ((j = json_tokener_parse(p)) == NULL)
			continue;
		if (json_object_is_type(j, json_type_object) && match(j))
			found = j;
		else
			json_object_put(j);
	}
	free(log);
	return found;
}

static int
is_swap_line(json_object *j)
{
	const char *m = json_path_str(j, "message");
	const char *pl = json_path_str(j, "plugin");

	return m != NULL && strstr(m, "swapped") != NULL && pl != NULL &&
	    strcmp(pl, "swap") == 0;
}

static int
is_refusal_line(json_object *j)
{
	const char *lv = json_path_str(j, "level");
	const char *f = json_path_str(j, "file");

	return lv != NULL && strcmp(lv, "error") == 0 && f != NULL &&
	    strcmp(f, "swap.so") == 0;
}

struct log_wait {
	int (*match)(json_object *);
	json_object *found;
};

static int
log_has(void *arg)
{
	struct log_wait *w = arg;

	return (w->found = log_find(w->match)) != NULL;
}

Test(reload, log_lines, .timeout = 60)
{
	struct log_wait w = { is_swap_line, NULL };
	const char *v, *ov, *reason;
	json_object *j;

	start_swap(NULL);
	swap_to("swap_v2.so");
	wait_version("2");
	CHECK(wait_until(log_has, &w, WAIT_MS), "no \"swapped\" log line "
	    "for plugin swap");
	j = w.found;
	v = json_path_str(j, "plugin_version");
	ov = json_path_str(j, "old_plugin_version");
	reason = json_path_str(j, "reason");
	CHECK(v != NULL && strcmp(v, "2") == 0 && ov != NULL &&
	    strcmp(ov, "1") == 0 && member_int(j, "generation") > 0 &&
	    reason != NULL && reason[0] != '\0', "swap log line: %s, want "
	    "plugin_version 2, old_plugin_version 1, generation, reason", reply_text(j));
	json_object_put(j);

	CHECK(daemon_write_plugin(d, "swap.so", "garbage\n", 8,
	    PLUGIN_RENAME) == 0, "write garbage");
	w.match = is_refusal_line;
	CHECK(wait_until(log_has, &w, WAIT_MS), "no level error log line "
	    "for file swap.so after garbage replaced it");
	j = w.found;
	reason = json_path_str(j, "reason");
	CHECK(reason != NULL && reason[0] != '\0' &&
	    json_path_str(j, "plugin") != NULL &&
	    strcmp(json_path_str(j, "plugin"), "swap") == 0,
	    "refusal log line: %s, want plugin swap and a reason",
	    reply_text(j));
	json_object_put(j);
	CHECK(answers_version((void *)"2"), "version 2 should keep serving");
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

static int
one_stuck_thread(void *arg)
{
	json_object *j = call("host.stats");
	json_object *v = json_path(j, "body/stuck_threads");
	int one = v != NULL && json_object_get_int64(v) == 1;

	(void)arg;
	json_object_put(j);
	return one;
}

/*
 * An event loop keeps references to the generations its calls used (in
 * batches) and its last command, and gives them back each turn.  A loop
 * thread stuck in an inline call never ends its turn: what it kept of
 * another plugin must not keep that plugin's replaced generation alive
 * (before the fix version 1 was finalized only when the spin ended).
 */
Test(reload, a_stuck_loop_thread_pins_no_other_plugin, .timeout = 60)
{
	static const char burst[] = "{\"command\":\"swap.version\"}\n"
	    "{\"id\":\"s\",\"command\":\"spin.run\",\"timeout_ms\":500,"
	    "\"payload\":{\"ms\":6000}}\n";
	char marker[4096];
	int s2;

	start("workers = 1\ninline_stuck_ms = 200\n"
	    "[plugin:swap]\nfini_marker = fini.txt\n");
	snprintf(marker, sizeof(marker), "%s/fini.txt", daemon_dir(d));
	CHECK(daemon_install_plugin(d, "swap_v1.so", "swap.so") == 0,
	    "install swap_v1.so");
	wait_version("1");
	CHECK(daemon_install_plugin(d, "spin.so", "spin.so") == 0,
	    "install spin.so");
	wait_status("spin.run", 200);
	/* One read: swap.version, then a spin the loop gets stuck in. */
	s2 = check_connect();
	CHECK(client_send_raw(s2, burst, strlen(burst)) == 0, "send");
	CHECK(wait_until(one_stuck_thread, NULL, WAIT_MS), "the loop was not "
	    "taken over");
	CHECK(daemon_install_plugin(d, "swap_v2.so", "swap.so") == 0,
	    "install swap_v2.so");
	wait_version("2");
	/* No call runs on version 1 any more: it is finalized now, well
	 * before the spin ends (6 s after it began). */
	CHECK(wait_until(marker_has_fini1, marker, 2500), "version 1 not "
	    "finalized while a loop thread is stuck in another plugin");
	close(s2);
	CHECK(daemon_stop(d) == 0, "daemon did not exit cleanly");
}

