/*
 * test_cli.c - the cmdhost client against a real daemon: exit statuses,
 * printed bodies and errors, payload sources, pipelined send, list.  The
 * CLI is run as a separate process, as a user would run it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <json-c/json.h>

#include "harness.h"

#define CLI CMDHOST_BUILD_DIR "/cmdhost"
#define RUN_TIMEOUT_MS 30000

/* check_free() frees the test's daemon even when an assertion ended the
 * test early. */
TestSuite(cli, .fini = check_free);

/* Start a daemon with the echo plugin; fails the test if it cannot.
 * Borrowed: check_free() frees it. */
static struct daemon *
start_echo(void)
{
	static const char *const plugins[] = { "plugins/echo.so", NULL };

	return check_start_with(plugins, NULL);
}

/*
 * Run the CLI with -s sock (unless sock is NULL) and the given arguments
 * (NULL-terminated, at most 8), `input` on stdin.  Returns the exit status;
 * *out and *err get new strings (free them).
 */
static int
cli(const char *sock, const char *input, char **out, char **err,
    const char *a0, const char *a1, const char *a2, const char *a3)
{
	char *argv[12];
	int n = 0, status = -1;

	argv[n++] = (char *)CLI;
	if (sock != NULL) {
		argv[n++] = (char *)"-s";
		argv[n++] = (char *)sock;
	}
	if (a0 != NULL)
		argv[n++] = (char *)a0;
	if (a0 != NULL && a1 != NULL)
		argv[n++] = (char *)a1;
	if (a0 != NULL && a1 != NULL && a2 != NULL)
		argv[n++] = (char *)a2;
	if (a0 != NULL && a1 != NULL && a2 != NULL && a3 != NULL)
		argv[n++] = (char *)a3;
	argv[n] = NULL;
	cr_assert_eq(run_command(argv, input, RUN_TIMEOUT_MS, &status, out,
	    err), 0, "could not run %s", CLI);
	cr_assert_not_null(*out);
	cr_assert_not_null(*err);
	return status;
}

Test(cli, invoke_echo_prints_body)
{
	struct daemon *d = start_echo();
	char *out, *err;
	int st;

	st = cli(daemon_socket_path(d), NULL, &out, &err, "invoke", "echo",
	    "{\"msg\": \"hello/cli\", \"n\": 7}", NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	cr_expect_str_eq(out, "{\"msg\":\"hello/cli\",\"n\":7}\n");
	free(out);
	free(err);

	/* The default payload is {}. */
	st = cli(daemon_socket_path(d), NULL, &out, &err, "invoke", "echo",
	    NULL, NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	cr_expect_str_eq(out, "{}\n");
	free(out);
	free(err);
}

Test(cli, invoke_payload_from_file_and_stdin)
{
	struct daemon *d = start_echo();
	char path[4096], arg[4100], *out, *err;
	FILE *f;
	int st;

	snprintf(path, sizeof(path), "%s/payload.json", daemon_dir(d));
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("{\n  \"from\": \"file\"\n}\n", f);
	fclose(f);
	snprintf(arg, sizeof(arg), "@%s", path);
	st = cli(daemon_socket_path(d), NULL, &out, &err, "invoke", "echo",
	    arg, NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	cr_expect_str_eq(out, "{\"from\":\"file\"}\n");
	free(out);
	free(err);

	st = cli(daemon_socket_path(d), "[1, 2, 3]\n", &out, &err, "invoke",
	    "echo", "-", NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	cr_expect_str_eq(out, "[1,2,3]\n");
	free(out);
	free(err);
}

Test(cli, invoke_unknown_command_exits_1)
{
	struct daemon *d = start_echo();
	char *out, *err;
	int st;

	st = cli(daemon_socket_path(d), NULL, &out, &err, "invoke",
	    "no.such.command", NULL, NULL);
	cr_expect_eq(st, 1, "exit %d, stderr: %s", st, err);
	cr_expect_str_eq(out, "");
	cr_expect(strstr(err, "404 unknown_command") != NULL, "stderr: %s",
	    err);
	free(out);
	free(err);
}

Test(cli, invoke_bad_payload_exits_2)
{
	char *out, *err;
	int st;

	/* Checked before connecting, so no daemon is needed. */
	st = cli("/nonexistent/cmdhost.sock", NULL, &out, &err, "invoke",
	    "echo", "{\"a\": ", NULL);
	cr_expect_eq(st, 2, "exit %d, stderr: %s", st, err);
	cr_expect(strstr(err, "not valid JSON") != NULL, "stderr: %s", err);
	free(out);
	free(err);
}

Test(cli, bad_socket_exits_3)
{
	char *out, *err;
	int st;

	st = cli("/nonexistent/cmdhost.sock", NULL, &out, &err, "invoke",
	    "echo", NULL, NULL);
	cr_expect_eq(st, 3, "exit %d, stderr: %s", st, err);
	cr_expect(strstr(err, "/nonexistent/cmdhost.sock") != NULL,
	    "stderr: %s", err);
	free(out);
	free(err);

	st = cli("/nonexistent/cmdhost.sock", "", &out, &err, "send", NULL,
	    NULL, NULL);
	cr_expect_eq(st, 3, "exit %d, stderr: %s", st, err);
	free(out);
	free(err);
}

Test(cli, socket_from_environment)
{
	struct daemon *d = start_echo();
	char *out, *err;
	int st;

	cr_assert_eq(setenv("CMDHOST_SOCKET", daemon_socket_path(d), 1), 0);
	st = cli(NULL, NULL, &out, &err, "ping", NULL, NULL, NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	cr_expect(strncmp(out, "pong (", 6) == 0, "stdout: %s", out);
	free(out);
	free(err);
}

Test(cli, usage_errors_exit_2)
{
	char *out, *err;
	int st;

	st = cli(NULL, NULL, &out, &err, "frobnicate", NULL, NULL, NULL);
	cr_expect_eq(st, 2);
	cr_expect(strstr(err, "usage:") != NULL, "stderr: %s", err);
	free(out);
	free(err);
	st = cli(NULL, NULL, &out, &err, "invoke", NULL, NULL, NULL);
	cr_expect_eq(st, 2);
	free(out);
	free(err);
	st = cli(NULL, NULL, &out, &err, "help", NULL, NULL, NULL);
	cr_expect_eq(st, 0);
	cr_expect(strstr(out, "usage:") != NULL, "stdout: %s", out);
	free(out);
	free(err);
}

Test(cli, send_2000_lines_in_order)
{
	struct daemon *d = start_echo();
	const int lines = 2000;
	char *in, *out, *err, *line, *save = NULL;
	size_t cap = (size_t)lines * 80, len = 0;
	int st, i;

	in = malloc(cap);
	cr_assert_not_null(in);
	for (i = 0; i < lines; i++)
		len += (size_t)snprintf(in + len, cap - len,
		    "{\"id\":%d,\"command\":\"echo\",\"payload\":{\"i\":%d}}\n",
		    i, i);
	st = cli(daemon_socket_path(d), in, &out, &err, "send", NULL, NULL,
	    NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	i = 0;
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save), i++) {
		json_object *r = json_tokener_parse(line);

		cr_assert_not_null(r, "line %d is not JSON: %s", i, line);
		cr_assert_eq(reply_status(r), 200, "line %d: %s", i, line);
		cr_assert_not_null(reply_id(r), "line %d: %s", i, line);
		cr_assert_eq(json_object_get_int(reply_id(r)), i,
		    "line %d: %s", i, line);
		json_object_put(r);
	}
	cr_expect_eq(i, lines, "got %d replies", i);
	free(in);
	free(out);
	free(err);
}

Test(cli, list_shows_echo)
{
	struct daemon *d = start_echo();
	json_object *j, *plugins;
	char *out, *err;
	int st;

	st = cli(daemon_socket_path(d), NULL, &out, &err, "list", NULL, NULL,
	    NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	cr_expect(strstr(out, "echo") != NULL, "stdout: %s", out);
	cr_expect(strstr(out, "1.0.0") != NULL, "stdout: %s", out);
	cr_expect(strstr(out, "loaded") != NULL, "stdout: %s", out);
	free(out);
	free(err);

	st = cli(daemon_socket_path(d), NULL, &out, &err, "list", "--json",
	    NULL, NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	j = json_tokener_parse(out);
	cr_assert_not_null(j, "stdout: %s", out);
	cr_expect(json_object_object_get_ex(j, "plugins", &plugins) &&
	    json_object_is_type(plugins, json_type_array), "stdout: %s", out);
	json_object_put(j);
	free(out);
	free(err);
}

Test(cli, health_and_stats)
{
	struct daemon *d = start_echo();
	json_object *j;
	char *out, *err;
	int st;

	st = cli(daemon_socket_path(d), NULL, &out, &err, "health", NULL,
	    NULL, NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	j = json_tokener_parse(out);
	cr_expect_not_null(j, "stdout: %s", out);
	cr_expect(strstr(out, "\"status\":\"ok\"") != NULL, "stdout: %s",
	    out);
	json_object_put(j);
	free(out);
	free(err);

	st = cli(daemon_socket_path(d), NULL, &out, &err, "invoke", "echo",
	    NULL, NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	free(out);
	free(err);
	st = cli(daemon_socket_path(d), NULL, &out, &err, "stats", NULL,
	    NULL, NULL);
	cr_expect_eq(st, 0, "exit %d, stderr: %s", st, err);
	cr_expect(strstr(out, "uptime") != NULL, "stdout: %s", out);
	cr_expect(strstr(out, "echo") != NULL, "stdout: %s", out);
	free(out);
	free(err);
}
