/*
 * test_rust.c - the Rust SDK on a live daemon: the example plugin
 * plugins/rust_greet (built by make when cargo is there), dropped in
 * under Cargo's own name librust_greet.so: declared fields (400s from
 * the daemon), validate, execute, config, logging with the request
 * context, state across calls, a panic answered 500 plugin_panicked
 * with the daemon serving on, hot swaps to its v2 build under load with
 * nothing lost, fini (the state's Drop) on unload, and its panic =
 * "abort" build ending only its worker under isolation = process, and
 * its build with the crate's json-c feature.  Also the crate's own
 * tests (the repr(C) types against plugin-layout.txt) and a build with
 * its json-c feature.  Without cargo
 * every test skips, saying why.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "harness.h"

#define RUST_SO CMDHOST_BUILD_DIR "/plugins/rust_greet.so"
#define RUST_V2 CMDHOST_BUILD_DIR "/tests/plugins/rust_greet_v2.so"
#define RUST_ABORT CMDHOST_BUILD_DIR "/tests/plugins/rust_greet_abort.so"
#define RUST_JSONC CMDHOST_BUILD_DIR "/tests/plugins/rust_greet_jsonc.so"

static char tmp_dir[64];

static void
rust_fini(void)
{
	char *argv[] = { (char *)"/bin/rm", (char *)"-rf", tmp_dir, NULL };
	int st;

	check_free();
	if (tmp_dir[0] != '\0')
		run_command(argv, NULL, 30000, &st, NULL, NULL);
	tmp_dir[0] = '\0';
}

TestSuite(rust, .fini = rust_fini);

static void
need_rust(void)
{
	if (access(RUST_SO, R_OK) != 0 || access(RUST_V2, R_OK) != 0 ||
	    access(RUST_ABORT, R_OK) != 0 || access(RUST_JSONC, R_OK) != 0)
		cr_skip_test("no cargo when this was built: the Rust plugin "
		    "was not built (scripts/install-deps.sh installs "
		    "Debian's cargo)");
}

/* Start a daemon with the plugin as librust_greet.so and a fini file in
 * tmp_dir; returns a connected fd. */
static int
start_rust(char *fini_path, size_t size)
{
	char config[512];
	json_object *j;
	int fd;

	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/cmdhost-rust.XXXXXX");
	cr_assert_not_null(mkdtemp(tmp_dir), "mkdtemp: %s", strerror(errno));
	snprintf(fini_path, size, "%s/fini.log", tmp_dir);
	snprintf(config, sizeof(config), "[plugin:rust_greet]\ngreeting = "
	    "hi\nfini_file = %s\n", fini_path);
	fd = check_start_ready(config, 10000);
	/* Cargo's file name as it is: the name comes from the descriptor. */
	CHECK(daemon_install_plugin(check_daemon(), "plugins/rust_greet.so",
	    "librust_greet.so") == 0, "install");
	j = check_call(fd, "{\"command\":\"host.reload\"}", 200, NULL);
	json_object_put(j);
	return fd;
}

static char *
read_file(const char *path)
{
	size_t len;
	char *s = harness_read_bytes(path, &len), *t;

	if (s == NULL)
		return strdup("");
	t = realloc(s, len + 1);
	if (t == NULL) {
		free(s);
		return strdup("");
	}
	t[len] = '\0';
	return t;
}

/* The first log line holding `text`, parsed, or NULL. */
static json_object *
log_line_with(const char *text)
{
	char *log = daemon_log(check_daemon()), *at, *start, *end;
	json_object *j = NULL;

	if (log != NULL && (at = strstr(log, text)) != NULL) {
		for (start = at; start > log && start[-1] != '\n'; start--)
			;
		if ((end = strchr(at, '\n')) != NULL)
			*end = '\0';
		j = json_tokener_parse(start);
	}
	free(log);
	return j;
}

/* The daemon's log so far: lines written by the crate's panic hook for
 * rust.panic (the daemon's own line for each failed call carries the
 * message too, without the hook's "(at FILE:LINE)"), and lines that are
 * not JSON, with the first of them. */
struct log_count {
	int panics, bad;
	char first_bad[256];
};

static struct log_count
count_log_lines(void)
{
	struct log_count c = { 0, 0, "" };
	char *log = daemon_log(check_daemon()), *l, *save = NULL;

	for (l = log ? strtok_r(log, "\n", &save) : NULL; l != NULL;
	    l = strtok_r(NULL, "\n", &save)) {
		json_object *o = json_tokener_parse(l);

		if (o == NULL && c.bad++ == 0)
			snprintf(c.first_bad, sizeof(c.first_bad), "%s", l);
		json_object_put(o);
		if (strstr(l, "the plugin panicked: rust.panic") != NULL &&
		    strstr(l, "(at src/lib.rs:") != NULL)
			c.panics++;
	}
	free(log);
	return c;
}

/* wait_until() condition: at least (intptr_t)arg panic lines. */
static int
panic_lines_at_least(void *arg)
{
	return count_log_lines().panics >= (int)(intptr_t)arg;
}

Test(rust, crate_tests_check_the_layout, .timeout = 300)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)
	    "cd " CMDHOST_SOURCE_DIR "/sdk/rust && CARGO_TARGET_DIR="
	    CMDHOST_BUILD_DIR "/cargo/sdk ${CARGO:-cargo} test --offline "
	    "2>&1 && CARGO_TARGET_DIR=" CMDHOST_BUILD_DIR "/cargo/sdk "
	    "${CARGO:-cargo} check --offline --features json-c 2>&1", NULL };
	char *out = NULL;
	int st;

	need_rust();
	cr_assert_eq(run_command(argv, NULL, 280000, &st, &out, NULL), 0);
	cr_expect_eq(st, 0, "cargo test: exit %d\n%s", st, out);
	cr_expect(strstr(out, "repr_c_types_match_the_c_layout ... ok") !=
	    NULL, "%s", out);
	cr_expect(strstr(out, "parses_and_writes ... ok") != NULL, "%s", out);
	free(out);
}

/* The crate promises Debian 12's own rustc 1.63 and cargo 1.65 as well
 * as current toolchains, and cargo does not hold a newer rustc to
 * rust-version.  Where Debian's toolchain is installed beside another
 * one first in PATH (rustup), build the crate, its tests and the
 * example with Debian's too, offline. */
Test(rust, crate_builds_with_debian_toolchain, .timeout = 300)
{
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)
	    "[ \"$(command -v ${CARGO:-cargo})\" = /usr/bin/cargo ] && "
	    "{ echo SAME; exit 0; }; "
	    "export PATH=/usr/bin:/bin RUSTC=/usr/bin/rustc "
	    "CARGO_TARGET_DIR=" CMDHOST_BUILD_DIR "/cargo/debian; "
	    "/usr/bin/rustc --version && "
	    "cd " CMDHOST_SOURCE_DIR "/sdk/rust && "
	    "/usr/bin/cargo test --offline 2>&1 && "
	    "cd " CMDHOST_SOURCE_DIR "/plugins/rust_greet && "
	    "/usr/bin/cargo build --release --offline 2>&1", NULL };
	char *out = NULL;
	int st;

	need_rust();
	if (access("/usr/bin/cargo", X_OK) != 0 ||
	    access("/usr/bin/rustc", X_OK) != 0)
		cr_skip_test("no Debian toolchain in /usr/bin (apt install "
		    "cargo): the cargo in PATH built the crate");
	cr_assert_eq(run_command(argv, NULL, 280000, &st, &out, NULL), 0);
	if (strncmp(out, "SAME", 4) == 0) {
		free(out);
		cr_skip_test("the cargo in PATH is Debian's: "
		    "crate_tests_check_the_layout built with it");
	}
	cr_log_info("debian toolchain: %.40s", out);
	cr_expect_eq(st, 0, "Debian's cargo: exit %d\n%s", st, out);
	cr_expect(strstr(out, "repr_c_types_match_the_c_layout ... ok") !=
	    NULL, "%s", out);
	free(out);
}

Test(rust, example_plugin_on_a_live_daemon, .timeout = 120)
{
	char fini[128];
	json_object *j, *line;
	int fd;

	need_rust();
	fd = start_rust(fini, sizeof(fini));

	/* Declared fields: the daemon refuses before any Rust runs. */
	j = check_call(fd, "{\"command\":\"rust.greet\",\"payload\":{}}", 400,
	    "invalid_payload");
	CHECK(strstr(reply_error_message(j), "name") != NULL, "%s",
	    reply_text(j));
	json_object_put(j);
	json_object_put(check_call(fd, "{\"command\":\"rust.greet\","
	    "\"payload\":{\"name\":5}}", 400, "invalid_payload"));
	json_object_put(check_call(fd, "{\"command\":\"rust.greet\","
	    "\"payload\":{\"name\":\"a\",\"times\":1.5}}", 400,
	    "invalid_payload"));
	/* validate, in Rust. */
	j = check_call(fd, "{\"command\":\"rust.greet\",\"payload\":"
	    "{\"name\":\"\"}}", 400, "invalid_payload");
	CHECK(strcmp(reply_error_message(j), "field 'name' must not be "
	    "empty") == 0, "%s", reply_text(j));
	json_object_put(j);
	json_object_put(check_call(fd, "{\"command\":\"rust.greet\","
	    "\"payload\":{\"name\":\"a\",\"times\":9}}", 400,
	    "invalid_payload"));

	/* execute, the config value, state across calls. */
	j = check_call(fd, "{\"id\":1,\"command\":\"rust.greet\",\"payload\":"
	    "{\"name\":\"ann\",\"times\":2}}", 200, NULL);
	CHECK(strcmp(json_path_str(j, "body/greeting"), "hi, ann hi, ann") ==
	    0 && json_object_get_int(json_path(j, "body/calls")) == 1 &&
	    strcmp(json_path_str(j, "body/variant"), "v1") == 0, "%s",
	    reply_text(j));
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"rust.greet\",\"payload\":"
	    "{\"name\":\"bo\"}}", 200, NULL);
	CHECK(json_object_get_int(json_path(j, "body/calls")) == 2, "%s",
	    reply_text(j));
	json_object_put(j);

	/* plugin!() without a version takes Cargo's. */
	j = check_call(fd, "{\"command\":\"host.list\"}", 200, NULL);
	CHECK(strcmp(json_object_get_string(json_object_object_get(
	    json_object_array_get_idx(json_path(j, "body/plugins"), 0),
	    "version")), "0.1.0") == 0, "%s", reply_text(j));
	json_object_put(j);

	/* Logging: one JSON line with the request context. */
	CHECK(daemon_log_wait(check_daemon(), "\"greeted ann\"", 10000),
	    "no log line");
	line = log_line_with("\"greeted ann\"");
	CHECK(line != NULL, "log line is not JSON");
	CHECK(strcmp(json_path_str(line, "command"), "rust.greet") == 0 &&
	    strcmp(json_path_str(line, "plugin"), "rust_greet") == 0 &&
	    json_path_str(line, "request_id") != NULL &&
	    json_object_get_int(json_path(line, "id")) == 1, "%s",
	    reply_text(line));
	json_object_put(line);

	/* The request's context, as text. */
	j = check_call(fd, "{\"id\":\"x7\",\"command\":\"rust.whoami\","
	    "\"payload\":{\"k\":[1,\"\\u00e9\"]}}", 200, NULL);
	CHECK(strcmp(json_path_str(j, "body/client_id"), "x7") == 0 &&
	    strcmp(json_path_str(j, "body/command"), "rust.whoami") == 0 &&
	    strlen(json_path_str(j, "body/request_id")) > 8 &&
	    json_object_get_boolean(json_path(j, "body/has_time")) &&
	    strcmp(json_object_to_json_string_ext(json_path(j,
	    "body/payload"), JSON_C_TO_STRING_PLAIN), "{\"k\":[1,\"\xc3\xa9\"]}")
	    == 0, "%s", reply_text(j));
	json_object_put(j);

	/* Reply text from Rust: passed byte for byte with the status
	 * chosen; text that is not JSON is 500 bad_reply naming the plugin,
	 * a status that is not 2xx 500 command_failed. */
	{
		char *raw;

		CHECK(client_send(fd, "{\"id\":3,\"command\":\"rust.reply\","
		    "\"payload\":{\"text\":\"{\\\"a\\\": [1.50, \\\"\\\\u00e9\\\"]}\","
		    "\"status\":201}}") == 0, "send");
		raw = client_recv_line(fd);
		CHECK(raw != NULL && strcmp(raw, "{\"id\":3,\"status\":201,"
		    "\"body\":{\"a\":[1.50,\"\\u00e9\"]}}") == 0, "reply: %s",
		    raw ? raw : "(none)");
		free(raw);
	}
	{
		static const char *const bad[] = { "{bad", "[NaN]", "1e400",
			"{\\\"a\\\":1} 2" };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char req[256];

			snprintf(req, sizeof(req), "{\"command\":\"rust.reply\","
			    "\"payload\":{\"text\":\"%s\"}}", bad[i]);
			j = check_call(fd, req, 500, "bad_reply");
			CHECK(strstr(reply_error_message(j), "plugin 'rust_greet'")
			    != NULL, "%s: %s", bad[i], reply_text(j));
			json_object_put(j);
		}
	}
	j = check_call(fd, "{\"command\":\"rust.reply\",\"payload\":"
	    "{\"text\":\"1\",\"status\":404}}", 500, "command_failed");
	CHECK(strstr(reply_error_message(j), "plugin 'rust_greet'") != NULL &&
	    strstr(reply_error_message(j), "404") != NULL, "%s",
	    reply_text(j));
	json_object_put(j);

	/* A panic: 500 plugin_panicked, one log line, the daemon serves. */
	for (int i = 0; i < 20; i++) {
		j = check_call(fd, "{\"command\":\"rust.panic\",\"payload\":"
		    "{\"message\":\"kaboom \\\"quoted\\\"\\n\"}}", 500,
		    "plugin_panicked");
		CHECK(strstr(reply_error_message(j), "rust.panic: kaboom "
		    "\"quoted\"") != NULL, "%s", reply_text(j));
		json_object_put(j);
	}
	line = log_line_with("the plugin panicked: rust.panic: kaboom");
	CHECK(line != NULL, "the panic's log line is missing or not JSON");
	/* One line per panic, and nothing of the standard library's own
	 * hook (plain text) anywhere in the log.  The log reaches the test
	 * through a pipe: wait for the 20th line before counting. */
	(void)wait_until(panic_lines_at_least, (void *)20, 10000);
	{
		struct log_count c = count_log_lines();

		CHECK(c.panics == 20, "%d log lines for 20 panics", c.panics);
		CHECK(c.bad == 0, "%d log lines are not JSON, the first: %s",
		    c.bad, c.first_bad);
	}
	CHECK(strcmp(json_path_str(line, "level"), "error") == 0 &&
	    strcmp(json_path_str(line, "command"), "rust.panic") == 0 &&
	    strstr(json_path_str(line, "message"), "src/lib.rs") != NULL,
	    "%s", reply_text(line));
	json_object_put(line);
	j = check_call(fd, "{\"command\":\"rust.greet\",\"payload\":"
	    "{\"name\":\"after\"}}", 200, NULL);
	CHECK(json_object_get_int(json_path(j, "body/calls")) == 3, "%s",
	    reply_text(j));
	json_object_put(j);

	/* fini on unload: the state's Drop runs once the file is gone. */
	CHECK(daemon_remove_plugin(check_daemon(), "librust_greet.so") == 0,
	    "remove");
	json_object_put(check_call(fd, "{\"command\":\"host.reload\"}", 200,
	    NULL));
	for (int64_t end = now_ms() + 10000; now_ms() < end; nap_ms(20)) {
		char *text = read_file(fini);
		int seen = strstr(text, "fini v1 after 3 calls") != NULL;

		free(text);
		if (seen)
			break;
	}
	{
		char *text = read_file(fini);

		CHECK(strcmp(text, "fini v1 after 3 calls\n") == 0, "fini file: "
		    "'%s'", text);
		free(text);
	}
	json_object_put(check_call(fd, "{\"command\":\"rust.greet\","
	    "\"payload\":{\"name\":\"x\"}}", 404, "unknown_command"));
	close(fd);
	check_stop_clean();
}

/* Load: clients calling rust.greet without a pause while the file is
 * swapped between its v1 and v2 builds. */
struct load {
	const char *sock;
	atomic_int stop;
	atomic_int calls, failures, v2_seen;
	char last_error[256];
};

static void *
load_loop(void *arg)
{
	struct load *l = arg;
	int fd = client_connect(l->sock);

	if (fd < 0) {
		atomic_fetch_add(&l->failures, 1);
		return NULL;
	}
	while (!atomic_load(&l->stop)) {
		json_object *j = client_call(fd, "{\"command\":\"rust.greet\","
		    "\"payload\":{\"name\":\"load\"}}");
		const char *v = json_path_str(j, "body/variant");

		if (reply_status(j) != 200) {
			if (atomic_fetch_add(&l->failures, 1) == 0)
				snprintf(l->last_error, sizeof(l->last_error),
				    "%s", reply_text(j));
		} else if (v != NULL && strcmp(v, "v2") == 0) {
			atomic_store(&l->v2_seen, 1);
		}
		atomic_fetch_add(&l->calls, 1);
		json_object_put(j);
		if (j == NULL) {
			close(fd);
			if ((fd = client_connect(l->sock)) < 0)
				return NULL;
		}
	}
	close(fd);
	return NULL;
}

static int
variant_is(void *arg)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"rust.greet\",\"payload\":{\"name\":\"w\"}}");
	const char *v = json_path_str(j, "body/variant");
	int ok = v != NULL && strcmp(v, arg) == 0;

	json_object_put(j);
	return ok;
}

static char mapped_copies[4096];

/* wait_until() condition: the daemon maps one copy of librust_greet.so
 * (the current generation's), no more. */
static int
one_copy_mapped(void *arg)
{
	char path[64], *maps, *line, *save = NULL;
	int n = 0;

	(void)arg;
	snprintf(path, sizeof(path), "/proc/%d/maps",
	    (int)daemon_pid(check_daemon()));
	maps = read_file(path);
	mapped_copies[0] = '\0';
	for (line = strtok_r(maps, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		const char *file = strchr(line, '/');

		if (file == NULL || strstr(file, "librust_greet") == NULL ||
		    strstr(mapped_copies, file) != NULL)
			continue;
		n++;
		if (strlen(mapped_copies) + strlen(file) + 2 <
		    sizeof(mapped_copies)) {
			strcat(mapped_copies, file);
			strcat(mapped_copies, "\n");
		}
	}
	free(maps);
	return n == 1;
}

Test(rust, hot_swap_under_load_loses_nothing, .timeout = 180)
{
	struct load l;
	pthread_t th[3];
	char fini[128], *text;
	int fd, swaps = 6, before;

	need_rust();
	fd = start_rust(fini, sizeof(fini));
	memset(&l, 0, sizeof(l));
	l.sock = daemon_socket_path(check_daemon());
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, load_loop, &l), 0);
	for (int s = 0; s < swaps; s++) {
		const char *want = s % 2 == 0 ? "v2" : "v1";

		before = atomic_load(&l.calls);
		CHECK(daemon_install_plugin(check_daemon(), s % 2 == 0 ?
		    "tests/plugins/rust_greet_v2.so" : "plugins/rust_greet.so",
		    "librust_greet.so") == 0, "install");
		CHECK(wait_until(variant_is, (void *)want, 20000),
		    "swap %d: %s never answered", s, want);
		/* Some calls ran across each swap. */
		for (int64_t end = now_ms() + 10000; now_ms() < end &&
		    atomic_load(&l.calls) < before + 50; nap_ms(5))
			;
	}
	atomic_store(&l.stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	cr_log_info("rust hot swap: %d calls over %d swaps, %d failed",
	    atomic_load(&l.calls), swaps, atomic_load(&l.failures));
	CHECK(atomic_load(&l.failures) == 0, "%d of %d calls failed, e.g. %s",
	    atomic_load(&l.failures), atomic_load(&l.calls), l.last_error);
	CHECK(atomic_load(&l.v2_seen), "the load never saw v2");
	CHECK(atomic_load(&l.calls) > 100, "only %d calls",
	    atomic_load(&l.calls));
	/* Each replaced generation ran its fini (its state's Drop). */
	for (int64_t end = now_ms() + 10000; now_ms() < end; nap_ms(20)) {
		int n = 0;

		text = read_file(fini);
		for (char *p = text; (p = strstr(p, "fini ")) != NULL; p++)
			n++;
		free(text);
		if (n >= swaps)
			break;
	}
	text = read_file(fini);
	CHECK(strstr(text, "fini v1") != NULL && strstr(text, "fini v2") !=
	    NULL, "fini file: '%s'", text);
	free(text);
	/* And each was unmapped: the crate leaves no thread-local
	 * destructor behind that would pin an old generation. */
	CHECK(wait_until(one_copy_mapped, NULL, 10000), "old generations of "
	    "the Rust plugin are still mapped:\n%s", mapped_copies);
	close(fd);
	check_stop_clean();
}

/* A panic in registration fails the load with its message, logged as
 * one JSON line through the daemon; the daemon serves on. */
Test(rust, panic_in_registration_fails_the_load, .timeout = 60)
{
	json_object *j, *line;
	int fd;

	need_rust();
	fd = check_start_ready("[plugin:rust_greet]\npanic_at_register = yes\n",
	    10000);
	CHECK(daemon_install_plugin(check_daemon(), "plugins/rust_greet.so",
	    "librust_greet.so") == 0, "install");
	json_object_put(check_call(fd, "{\"command\":\"host.reload\"}", 200,
	    NULL));
	j = check_call(fd, "{\"command\":\"host.list\"}", 200, NULL);
	CHECK(strstr(reply_text(j), "registration panicked: asked to panic at "
	    "registration") != NULL, "%s", reply_text(j));
	json_object_put(j);
	line = log_line_with("the plugin panicked: asked to panic");
	CHECK(line != NULL, "no JSON log line for the panic");
	CHECK(strcmp(json_path_str(line, "plugin"), "rust_greet") == 0, "%s",
	    reply_text(line));
	json_object_put(line);
	json_object_put(check_call(fd, "{\"command\":\"rust.greet\","
	    "\"payload\":{\"name\":\"x\"}}", 404, "unknown_command"));
	json_object_put(check_call(fd, "{\"command\":\"host.ping\"}", 200,
	    NULL));
	close(fd);
	check_stop_clean();
}

static int
greet_answers_200(void *arg)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"rust.greet\",\"payload\":{\"name\":\"w\"}}");
	int ok = reply_status(j) == 200;

	(void)arg;
	json_object_put(j);
	return ok;
}

/* What the guide says of panic = "abort": the crate warns at
 * registration, and a panic ends the process hosting the plugin -- with
 * isolation = process that is its worker alone: the call is 500
 * plugin_crashed (SIGABRT), the panic is still logged, the worker is
 * respawned and the daemon serves on. */
Test(rust, panic_abort_build_ends_only_its_worker, .timeout = 120)
{
	json_object *j;
	int fd;

	need_rust();
	fd = check_start_ready("[plugin:rust_greet]\nisolation = process\n"
	    "workers = 1\n", 10000);
	CHECK(daemon_install_plugin(check_daemon(),
	    "tests/plugins/rust_greet_abort.so", "librust_greet.so") == 0,
	    "install");
	json_object_put(check_call(fd, "{\"command\":\"host.reload\"}", 200,
	    NULL));
	CHECK(daemon_log_wait(check_daemon(), "built with panic = \\\"abort\\\"",
	    10000), "no warning about panic = abort at registration");
	json_object_put(check_call(fd, "{\"command\":\"rust.greet\","
	    "\"payload\":{\"name\":\"a\"}}", 200, NULL));
	j = check_call(fd, "{\"command\":\"rust.panic\",\"payload\":"
	    "{\"message\":\"abort me\"}}", 500, "plugin_crashed");
	CHECK(strstr(reply_error_message(j), "SIGABRT") != NULL, "%s",
	    reply_text(j));
	json_object_put(j);
	CHECK(daemon_log_wait(check_daemon(), "the plugin panicked: "
	    "rust.panic: abort me", 10000), "the panic was not logged");
	CHECK(wait_until(greet_answers_200, NULL, 20000), "the plugin never "
	    "answered again after its worker aborted");
	json_object_put(check_call(fd, "{\"command\":\"host.ping\"}", 200,
	    NULL));
	close(fd);
	check_stop_clean();
}

/* The crate's json-c feature: the payload read and the reply made as
 * json-c objects, through sys::jsonc, in the daemon's own json-c. */
Test(rust, json_c_feature_objects_both_ways, .timeout = 60)
{
	json_object *j;
	int fd;

	need_rust();
	fd = check_start_ready(NULL, 10000);
	CHECK(daemon_install_plugin(check_daemon(),
	    "tests/plugins/rust_greet_jsonc.so", "librust_greet.so") == 0,
	    "install");
	json_object_put(check_call(fd, "{\"command\":\"host.reload\"}", 200,
	    NULL));
	for (int i = 0; i < 50; i++) {
		j = check_call(fd, "{\"command\":\"rust.jsonc\",\"payload\":"
		    "{\"name\":\"zo\\u00e9\"}}", 200, NULL);
		CHECK(strcmp(json_path_str(j, "body/hello"), "zo\xc3\xa9") == 0 &&
		    strcmp(json_path_str(j, "body/via"), "json-c") == 0, "%s",
		    reply_text(j));
		json_object_put(j);
	}
	json_object_put(check_call(fd, "{\"command\":\"rust.jsonc\","
	    "\"payload\":{}}", 400, "invalid_payload"));
	json_object_put(check_call(fd, "{\"command\":\"rust.greet\","
	    "\"payload\":{\"name\":\"x\"}}", 200, NULL));
	close(fd);
	check_stop_clean();
}
