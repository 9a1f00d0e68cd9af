/*
 * test_rollback.c - automatic rollback of a failing generation under
 * load, rollback by hand, the crash record of an in-process plugin that
 * kills the daemon, and unloaded copies that stay mapped.
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 10000
#define CONNS 4

static void
teardown(void)
{
	check_free();
}

TestSuite(rollback, .fini = teardown);

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

/* The host.list entry of plugin file `file` (a new reference), or NULL. */
static json_object *
plugin_entry(const char *file)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.list\"}"), *arr, *out = NULL;

	if (j == NULL)
		return NULL;
	arr = json_path(reply_body(j), "plugins");
	for (size_t i = 0; arr != NULL && i < json_object_array_length(arr);
	    i++) {
		json_object *p = json_object_array_get_idx(arr, i);
		const char *f = json_path_str(p, "file");

		if (f != NULL && strcmp(f, file) == 0)
			out = json_object_get(p);
	}
	json_object_put(j);
	return out;
}

/* host.list's `path` of flaky.so is the string want. */
struct want { const char *path, *value; };

static int
entry_is(void *arg)
{
	struct want *w = arg;
	json_object *p = plugin_entry("flaky.so");
	const char *v = json_path_str(p, w->path);
	int ok = v != NULL && strcmp(v, w->value) == 0;

	json_object_put(p);
	return ok;
}

static void
wait_entry(const char *path, const char *value)
{
	struct want w = { path, value };

	CHECK(wait_until(entry_is, &w, WAIT_MS), "host.list flaky.so %s never "
	    "became '%s'", path, value);
}

/* FNV-1a 64 of a built plugin's bytes, as host.list writes it. */
static void
hash_of(const char *plugin, char hex[17])
{
	char path[PATH_MAX];
	unsigned char *b;
	size_t n;
	uint64_t h = 1469598103934665603ULL;

	CHECK(harness_plugin_path(plugin, path, sizeof(path)) == 0, "%s",
	    plugin);
	CHECK((b = harness_read_bytes(path, &n)) != NULL, "read %s", path);
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	free(b);
	snprintf(hex, 17, "%016llx", (unsigned long long)h);
}

/* The version flaky.call answers now (static), or "" for a non-200. */
static const char *
flaky_version(int fd)
{
	static char v[32];
	json_object *j = client_call(fd, "{\"command\":\"flaky.call\"}");
	const char *s = json_path_str(reply_body(j), "version");

	snprintf(v, sizeof(v), "%s", reply_status(j) == 200 && s ? s : "");
	json_object_put(j);
	return v;
}

/* ------------------------------------------------- 1. under load */

struct loader {
	pthread_t thread;
	int fd;
	long long sent, received, ok, failed, other;
	char error[256];
};

static atomic_int stop_load;

static void *
loader_main(void *arg)
{
	struct loader *l = arg;

	while (!atomic_load(&stop_load)) {
		json_object *j;
		int st;

		l->sent++;
		if ((j = client_call(l->fd, "{\"command\":\"flaky.call\"}")) ==
		    NULL) {
			snprintf(l->error, sizeof(l->error), "no reply to "
			    "call %lld", l->sent);
			return NULL;
		}
		l->received++;
		st = reply_status(j);
		if (st == 200)
			l->ok++;
		else if (st == 500 && reply_error_code(j) != NULL &&
		    strcmp(reply_error_code(j), "flaky") == 0)
			l->failed++;
		else
			l->other++;
		json_object_put(j);
	}
	return NULL;
}

Test(rollback, failing_swap_rolls_back_under_load_and_stays_refused)
{
	struct loader ls[CONNS];
	json_object *p;
	char bad[17];
	int fd;

	fd = check_start_ready("rollback_window_s = 60\n"
	    "rollback_min_calls = 20\nrollback_5xx_percent = 10\n", WAIT_MS);
	CHECK(daemon_install_plugin(check_daemon(), "flaky_v1", "flaky.so") ==
	    0, "install v1");
	wait_entry("version", "1");
	memset(ls, 0, sizeof(ls));
	atomic_store(&stop_load, 0);
	for (int i = 0; i < CONNS; i++) {
		ls[i].fd = check_connect();
		CHECK(pthread_create(&ls[i].thread, NULL, loader_main, &ls[i]) ==
		    0, "pthread_create");
	}
	/* Every fifth call of version 2 fails 500: 20 % > 10 %. */
	CHECK(daemon_install_plugin(check_daemon(), "flaky_v2", "flaky.so") ==
	    0, "install v2");
	wait_entry("state", "rolled_back");
	nap_ms(200); /* load on the restored generation too */
	atomic_store(&stop_load, 1);
	for (int i = 0; i < CONNS; i++) {
		pthread_join(ls[i].thread, NULL);
		close(ls[i].fd);
		CHECK(ls[i].error[0] == '\0', "connection %d: %s", i,
		    ls[i].error);
		CHECK(ls[i].sent == ls[i].received, "connection %d lost calls",
		    i);
		CHECK(ls[i].other == 0, "connection %d: %lld answers neither 200 "
		    "nor the plugin's 500", i, ls[i].other);
	}
	hash_of("flaky_v2", bad);
	p = plugin_entry("flaky.so");
	CHECK(strcmp(json_path_str(p, "version"), "1") == 0, "%s",
	    reply_text(p));
	CHECK(strcmp(json_path_str(p, "rolled_back/version"), "2") == 0 &&
	    strcmp(json_path_str(p, "rolled_back/hash"), bad) == 0 &&
	    strstr(json_path_str(p, "rolled_back/reason"), "5xx share") !=
	    NULL, "%s", reply_text(p));
	json_object_put(p);
	CHECK(daemon_log_contains(check_daemon(), "plugin rolled back: "
	    "version 2"), "no rolled back line");
	CHECK(strcmp(flaky_version(fd), "1") == 0, "v1 does not serve");

	/* The same bytes again: nothing changes. */
	CHECK(daemon_install_plugin(check_daemon(), "flaky_v2", "flaky.so") ==
	    0, "install v2 again");
	CHECK(daemon_log_wait(check_daemon(), "its bytes are refused",
	    WAIT_MS), "the bad bytes were not seen again");
	CHECK(strcmp(flaky_version(fd), "1") == 0, "v2 came back");
	wait_entry("state", "rolled_back");

	/* A fixed file loads. */
	CHECK(daemon_install_plugin(check_daemon(), "flaky_v3", "flaky.so") ==
	    0, "install v3");
	wait_entry("version", "3");
	wait_entry("state", "loaded");
	CHECK(strcmp(flaky_version(fd), "3") == 0, "v3 does not serve");
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------- 2. by hand */

static int
run_cli(const char *arg, char **out, char **err)
{
	char *argv[] = { CMDHOST_BUILD_DIR "/cmdhost", "-s",
	    (char *)daemon_socket_path(check_daemon()), "rollback",
	    (char *)arg, NULL };
	int status = -1;

	CHECK(run_command(argv, NULL, WAIT_MS, &status, out, err) == 0,
	    "cmdhost rollback did not run");
	return status;
}

Test(rollback, by_hand_while_the_previous_copy_is_kept)
{
	char *out = NULL, *err = NULL;
	json_object *j;
	int fd;

	fd = check_start_ready(NULL, WAIT_MS);
	CHECK(daemon_install_plugin(check_daemon(), "flaky_v1", "flaky.so") ==
	    0, "install v1");
	wait_entry("version", "1");
	/* Nothing came before: refused. */
	j = check_call(fd, "{\"command\":\"host.rollback\",\"payload\":"
	    "{\"plugin\":\"flaky\"}}", 409, "no_previous_copy");
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"host.rollback\"}", 400,
	    "invalid_payload");
	json_object_put(j);

	CHECK(daemon_install_plugin(check_daemon(), "flaky_v3", "flaky.so") ==
	    0, "install v3");
	wait_entry("version", "3");
	CHECK(run_cli("flaky", &out, &err) == 0, "exit: %s", err);
	CHECK(strstr(out, "\"rolled_back\"") != NULL, "%s", out);
	free(out);
	free(err);
	CHECK(strcmp(flaky_version(fd), "1") == 0, "v1 is not back");
	wait_entry("state", "rolled_back");
	wait_entry("rolled_back/version", "3");
	/* Used up: the restored copy has no previous one. */
	CHECK(run_cli("flaky", &out, &err) != 0, "a second rollback worked");
	CHECK(strstr(err, "no_previous_copy") != NULL, "%s", err);
	free(out);
	free(err);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------- 3. crash record */

static char state_root[PATH_MAX];

static int
put_flaky(const char *dir, void *arg)
{
	char src[PATH_MAX], dst[PATH_MAX + 32], cmd[3 * PATH_MAX];

	if (harness_plugin_path(arg, src, sizeof(src)) < 0)
		return -1;
	snprintf(dst, sizeof(dst), "%s/plugins/flaky.so", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, dst);
	return system(cmd) == 0 ? 0 : -1;
}

static void
start_flaky(const char *plugin)
{
	static char config[PATH_MAX + 128];
	struct daemon_opts o = { 0 };

	snprintf(config, sizeof(config), "state_dir = %s\n"
	    "rollback_window_s = 0\nrollback_min_calls = 1\n", state_root);
	o.config = config;
	check_start_prepared(&o, put_flaky, (void *)plugin);
}

Test(rollback, crash_record_refuses_the_bytes_and_loads_the_good_copy)
{
	json_object *p;
	int fd;

	SKIP_UNDER_SANITIZER();
	snprintf(state_root, sizeof(state_root), "/tmp/cmdhost-rb.XXXXXX");
	CHECK(mkdtemp(state_root) != NULL, "mkdtemp");
	start_flaky("flaky_v1");
	fd = check_connect();
	CHECK(strcmp(flaky_version(fd), "1") == 0, "v1");
	/* It served cleanly: kept as the good copy. */
	wait_entry("rollback/good_copy/version", "1");
	CHECK(daemon_install_plugin(check_daemon(), "flaky_segv", "flaky.so")
	    == 0, "install the crasher");
	wait_entry("version", "crash");
	CHECK(client_call(fd, "{\"command\":\"flaky.call\"}") == NULL,
	    "the crasher answered");
	CHECK(daemon_wait(check_daemon(), WAIT_MS) == 128 + SIGSEGV,
	    "the daemon did not die of SIGSEGV");
	CHECK(daemon_log_contains(check_daemon(), "fatal SIGSEGV in plugin "
	    "flaky version crash"), "no fatal line");
	/* It is a JSON line stamped with the time it was written. */
	{
		char *log = daemon_log(check_daemon()), *at, *eol;
		json_object *j = NULL, *t;
		struct tm tm;
		const char *ts, *rest;
		long long ago = -1;

		at = log != NULL ? strstr(log, "fatal SIGSEGV") : NULL;
		while (at != NULL && at > log && at[-1] != '\n')
			at--;
		if (at != NULL && (eol = strchr(at, '\n')) != NULL)
			*eol = '\0';
		if (at != NULL)
			j = json_tokener_parse(at);
		memset(&tm, 0, sizeof(tm));
		if (j != NULL && json_object_object_get_ex(j, "timestamp", &t) &&
		    (ts = json_object_get_string(t)) != NULL &&
		    (rest = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm)) != NULL &&
		    strlen(rest) == 5 && rest[0] == '.' && rest[4] == 'Z')
			ago = (long long)(time(NULL) - timegm(&tm));
		CHECK(ago >= 0 && ago < 120, "fatal line without a timestamp "
		    "of now (%lld s ago): %s", ago, at != NULL ? at : "(none)");
		json_object_put(j);
		free(log);
	}
	/* The line the loop had buffered was flushed before the end. */
	CHECK(daemon_log_contains(check_daemon(), "flaky: about to crash"),
	    "the plugin's last line was lost with the crash");
	close(fd);
	check_free();

	/* Started again on the same state, the crasher still in place. */
	start_flaky("flaky_segv");
	fd = check_connect();
	CHECK(strcmp(flaky_version(fd), "1") == 0, "the good copy does not "
	    "serve");
	p = plugin_entry("flaky.so");
	CHECK(strcmp(json_path_str(p, "state"), "rolled_back") == 0 &&
	    strcmp(json_path_str(p, "rolled_back/version"), "crash") == 0 &&
	    strstr(json_path_str(p, "rolled_back/reason"), "SIGSEGV") != NULL,
	    "%s", reply_text(p));
	json_object_put(p);
	CHECK(daemon_log_contains(check_daemon(), "crash record: the daemon "
	    "died of SIGSEGV"), "no crash record line");
	CHECK(daemon_log_contains(check_daemon(), "its kept good copy is "
	    "loaded instead"), "no good copy line");
	close(fd);
	check_stop_clean();
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_root);
		(void)!system(cmd);
	}
}

/* ------------------------------------------------- 4. still mapped */

static int
mapped_at_least_3(void *arg)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.stats\"}");
	json_object *v = json_path(reply_body(j), "plugins_still_mapped");
	int ok = v != NULL && json_object_get_int(v) >= 3;

	(void)arg;
	json_object_put(j);
	return ok;
}

static int want_gen;

/* tls.so serves generation want_gen. */
static int
tls_generation_is(void *arg)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.list\"}"), *arr, *g;
	int ok = 0;

	(void)arg;
	arr = json_path(reply_body(j), "plugins");
	for (size_t i = 0; arr != NULL && i < json_object_array_length(arr);
	    i++)
		if (json_object_object_get_ex(json_object_array_get_idx(arr,
		    i), "generation", &g) && json_object_get_int(g) == want_gen)
			ok = 1;
	json_object_put(j);
	return ok;
}

Test(rollback, unloaded_copy_held_by_a_thread_local_destructor_is_seen)
{
	char path[PATH_MAX];
	unsigned char *b;
	size_t n;
	int fd;

	fd = check_start_ready(NULL, WAIT_MS);
	CHECK(harness_plugin_path("tls_dtor", path, sizeof(path)) == 0, "path");
	CHECK((b = harness_read_bytes(path, &n)) != NULL, "read");
	for (int i = 0; i < 4; i++) {
		unsigned char *c = malloc(n + 1);
		json_object *p;

		memcpy(c, b, n);
		c[n] = (unsigned char)i; /* new bytes, same code */
		CHECK(daemon_write_plugin(check_daemon(), "tls.so", c, n + 1,
		    PLUGIN_RENAME) == 0, "write");
		free(c);
		want_gen = i + 1;
		CHECK(wait_until(tls_generation_is, NULL, WAIT_MS),
		    "generation %d never served", i + 1);
		for (int k = 0; k < 50; k++) {
			p = client_call(fd, "{\"command\":\"tls.touch\"}");
			json_object_put(p);
		}
	}
	free(b);
	CHECK(wait_until(mapped_at_least_3, NULL, WAIT_MS),
	    "plugins_still_mapped did not reach 3");
	CHECK(daemon_log_contains(check_daemon(), "still mapped after "
	    "dlclose"), "no warning");
	close(fd);
	check_stop_clean();
}
