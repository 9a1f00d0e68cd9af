/*
 * harness_check.c - the asserting helpers: start, connect to and stop the
 * test's one daemon, and call it, failing the running Criterion test
 * (after printing the daemon's log) when something is off.
 */
#include "harness.h"
#include "harness_priv.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

/* The test's daemon: NULL or owned (check_free() frees it). */
static struct daemon *test_daemon;

struct daemon *
check_daemon(void)
{
	return test_daemon;
}

struct daemon *
check_start(const struct daemon_opts *opts)
{
	test_daemon = daemon_start(opts);
	cr_assert_not_null(test_daemon,
	    "daemon did not start (its log is above)");
	return test_daemon;
}

struct daemon *
check_start_prepared(const struct daemon_opts *opts,
    int (*prepare)(const char *dir, void *arg), void *arg)
{
	test_daemon = daemon_start_prepared(opts, prepare, arg);
	cr_assert_not_null(test_daemon,
	    "daemon did not start (its log is above)");
	return test_daemon;
}

struct daemon *
check_start_with(const char *const *plugins, const char *config)
{
	struct daemon_opts o = { .plugins = plugins, .config = config };

	return check_start(&o);
}

int
check_start_ready(const char *config, int timeout_ms)
{
	int fd;

	check_start_with(NULL, config);
	fd = check_connect();
	CHECK(daemon_log_wait(test_daemon, "ready on", timeout_ms),
	    "no \"ready\" log line");
	return fd;
}

void
check_free(void)
{
	daemon_free(test_daemon);
	test_daemon = NULL;
}

void
check_stop_clean(void)
{
	int st = daemon_stop(test_daemon);

	CHECK(st == 0, "daemon exit status %d, want 0", st);
}

int
check_connect(void)
{
	int fd = client_connect(daemon_socket_path(test_daemon));

	CHECK(fd != -1, "connect %s failed", daemon_socket_path(test_daemon));
	return fd;
}

void
check_write_file(const char *dir, const char *name, const char *text)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	CHECK(harness_write_text(path, text) == 0, "cannot write %s", path);
}

void
check_tmp_dir(char *dir, size_t size, const char *tag, const char *sub)
{
	char path[512];

	snprintf(dir, size, "/tmp/cmdhost-%s.XXXXXX", tag);
	CHECK(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir, strerror(errno));
	if (sub == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	CHECK(mkdir(path, 0755) == 0, "mkdir %s: %s", path, strerror(errno));
}

json_object *
check_call(int fd, const char *line, int status, const char *code)
{
	json_object *j = client_call(fd, line);

	CHECK(j != NULL, "no reply (or not JSON) to %s", line);
	CHECK(reply_status(j) == status, "%s\n -> %s\n want status %d", line,
	    reply_text(j), status);
	if (code != NULL)
		CHECK(reply_error_code(j) != NULL &&
		    strcmp(reply_error_code(j), code) == 0,
		    "%s\n -> %s\n want code %s", line, reply_text(j), code);
	return j;
}
