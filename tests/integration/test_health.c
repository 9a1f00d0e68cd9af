/*
 * test_health.c - health that tells the truth: `cmdhost health` exits 0
 * with "ok" only when every plugin is loaded and no loop is stuck, and 5
 * with "degraded" and a reason for each bad state (1.1 a failed file,
 * 1.2 a degraded plugin, 1.3 a loop stuck inline); the Prometheus text
 * has cmdhost_plugin_state and cmdhost_build_info and passes promtool;
 * host.list shows the daemon's version and each file's SHA-256.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(health, .fini = check_free);

/* Run `cmdhost -s SOCK ARGS...` (up to 3 args); *out gets its stdout. */
static int
cli(const char *a1, const char *a2, char **out)
{
	char *argv[7];
	int status = -1, n = 0;

	argv[n++] = (char *)CMDHOST_BUILD_DIR "/cmdhost";
	argv[n++] = (char *)"-s";
	argv[n++] = (char *)daemon_socket_path(check_daemon());
	argv[n++] = (char *)a1;
	if (a2 != NULL)
		argv[n++] = (char *)a2;
	argv[n] = NULL;
	*out = NULL;
	if (run_command(argv, NULL, 30000, &status, out, NULL) < 0)
		return -1;
	return status;
}

/* `cmdhost health` must exit `want` with status word `word`, and its
 * reasons must mention `reason` (NULL: no reasons at all). */
static void
expect_health(int want, const char *word, const char *reason)
{
	char *out;
	int rc = cli("health", "--json", &out);
	json_object *j = out ? json_tokener_parse(out) : NULL;
	json_object *reasons = json_path(j, "reasons");

	CHECK(rc == want, "cmdhost health exited %d, not %d: %s", rc, want,
	    out ? out : "");
	CHECK(json_path_str(j, "status") != NULL &&
	    strcmp(json_path_str(j, "status"), word) == 0, "status: %s", out);
	CHECK(reasons != NULL && json_object_is_type(reasons,
	    json_type_array), "no reasons array: %s", out);
	if (reason == NULL)
		CHECK(json_object_array_length(reasons) == 0, "reasons: %s",
		    out);
	else
		CHECK(strstr(json_object_to_json_string(reasons), reason) !=
		    NULL, "reasons do not say %s: %s", reason, out);
	CHECK(json_path_str(j, "version") != NULL, "no version: %s", out);
	json_object_put(j);
	free(out);
}

Test(health, ok_when_all_loaded)
{
	static const char *const plugins[] = { "good.so", NULL };

	check_start_with(plugins, NULL);
	expect_health(0, "ok", NULL);
	check_stop_clean();
}

/* 1.1 A file that never loaded. */
Test(health, failed_plugin)
{
	static const char *const plugins[] = { "good.so", "bad_abi.so", NULL };

	check_start_with(plugins, NULL);
	expect_health(5, "degraded", "(file bad_abi.so) is failed");
	check_stop_clean();
}

static int
list_has(void *arg)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.list\"}");
	int yes = j != NULL && strstr(json_object_to_json_string(j), arg) !=
	    NULL;

	json_object_put(j);
	return yes;
}

/* 1.2 A plugin whose new file was refused: the old generation serves,
 * the plugin is degraded; once the good file is back, ok again. */
Test(health, degraded_plugin)
{
	static const char *const plugins[] = { "good.so", NULL };
	struct daemon *d;

	d = check_start_with(plugins, "watch = false\n");
	expect_health(0, "ok", NULL);
	CHECK(daemon_install_plugin(d, "bad_abi.so", "good.so") == 0, "swap");
	CHECK(daemon_signal(d, SIGHUP) == 0, "SIGHUP");
	CHECK(wait_until(list_has, "\"degraded\"", 10000), "never degraded");
	expect_health(5, "degraded", "(file good.so) is degraded");
	CHECK(daemon_install_plugin(d, "good.so", "good.so") == 0, "back");
	CHECK(daemon_signal(d, SIGHUP) == 0, "SIGHUP");
	CHECK(wait_until(list_has, "\"loaded\"", 10000), "never loaded");
	expect_health(0, "ok", NULL);
	check_stop_clean();
}

/* 1.3 A loop thread stuck in an inline call. */
Test(health, stuck_loop)
{
	static const char *const plugins[] = { "spin.so", NULL };
	char *out;
	int fd;

	check_start_with(plugins, "inline_stuck_ms = 200\n");
	fd = check_connect();
	CHECK(client_send(fd, "{\"command\":\"spin.run\",\"payload\":"
	    "{\"ms\":2500}}") == 0, "send");
	CHECK(daemon_log_wait(check_daemon(), "that thread is stuck", 5000),
	    "not seen as stuck");
	expect_health(5, "degraded", "command spin.run (plugin spin) is stuck");
	free(client_recv_line(fd));
	close(fd);
	CHECK(daemon_log_wait(check_daemon(), "its old loop thread leaves",
	    10000), "the stuck thread never left");
	CHECK(cli("health", NULL, &out) == 0, "ok again: %s", out ? out : "");
	free(out);
	check_stop_clean();
}

/* Prometheus: the state of each file as a state set, the build info,
 * and the whole text valid for promtool. */
Test(health, prometheus_state)
{
	static const char *const plugins[] = { "good.so", "bad_abi.so", NULL };
	char path[512], *out, *argv[4], *perr = NULL;
	int status;
	FILE *f;

	check_start_with(plugins, NULL);
	CHECK(cli("stats", "--prometheus", &out) == 0, "stats");
	CHECK(strstr(out, "cmdhost_build_info{version=\"") != NULL, "%s", out);
	CHECK(strstr(out, "cmdhost_plugin_state{file=\"good.so\",plugin="
	    "\"good\",state=\"loaded\"} 1") != NULL, "good loaded: %s", out);
	CHECK(strstr(out, "cmdhost_plugin_state{file=\"good.so\",plugin="
	    "\"good\",state=\"failed\"} 0") != NULL, "good not failed: %s",
	    out);
	CHECK(strstr(out, "cmdhost_plugin_state{file=\"bad_abi.so\",plugin=") !=
	    NULL && strstr(out, "state=\"failed\"} 1") != NULL,
	    "bad_abi failed: %s", out);
	snprintf(path, sizeof(path), "%s/metrics.txt",
	    daemon_dir(check_daemon()));
	f = fopen(path, "w");
	cr_assert(f != NULL);
	fputs(out, f);
	fclose(f);
	free(out);
	if (access("/usr/bin/promtool", X_OK) == 0) {
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < "
		    "'%s'", path);
		argv[0] = (char *)"/bin/sh";
		argv[1] = (char *)"-c";
		argv[2] = cmd;
		argv[3] = NULL;
		CHECK(run_command(argv, NULL, 30000, &status, NULL, &perr) ==
		    0 && status == 0, "promtool: %s", perr ? perr : "");
		free(perr);
	}
	check_stop_clean();
}

/* host.list: the daemon's version and each file's SHA-256, the same as
 * sha256sum of the file. */
Test(health, list_sha256)
{
	static const char *const plugins[] = { "good.so", NULL };
	char cmd[600], want[65] = "";
	json_object *j, *p;
	FILE *f;

	check_start_with(plugins, NULL);
	j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.list\"}");
	CHECK(json_path_str(j, "body/version") != NULL, "no version");
	p = json_object_array_get_idx(json_path(j, "body/plugins"), 0);
	snprintf(cmd, sizeof(cmd), "sha256sum '%s/plugins/good.so'",
	    daemon_dir(check_daemon()));
	f = popen(cmd, "r");
	cr_assert(f != NULL && fscanf(f, "%64s", want) == 1);
	pclose(f);
	CHECK(json_path_str(p, "sha256") != NULL &&
	    strcmp(json_path_str(p, "sha256"), want) == 0, "sha256 %s, "
	    "sha256sum %s", json_path_str(p, "sha256"), want);
	json_object_put(j);
	check_stop_clean();
}
