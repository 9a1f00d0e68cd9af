/*
 * harness_daemon.c - run a cmdhostd of the test's own: make its temp dir
 * and config, start it and wait for its socket, signal, stop, wait for and
 * free it, and read its log; or run one on a config expected to fail.
 * Nothing asserts; nothing sleeps but in a loop with a deadline.
 */
#include "harness_priv.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CMDHOST_BUILD_DIR
#error "CMDHOST_BUILD_DIR must be defined (the Makefile does it)"
#endif

#define DAEMON_BIN CMDHOST_BUILD_DIR "/cmdhostd"
#define SANITIZER_OPTS "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0"
#define STOP_TIMEOUT_MS 20000
#define FAIL_TIMEOUT_MS 10000
#define MAX_LIVE 16

extern char **environ;

struct daemon {
	pid_t pid;
	int status;		/* -2 while running */
	char dir[PATH_MAX];
	char sock[PATH_MAX];
	char config[PATH_MAX];
	char log[PATH_MAX];
};

/* Daemons of this process that still run, killed at exit so a test that
 * failed half-way does not leave one behind. */
static struct daemon *live[MAX_LIVE];
static int atexit_done;

static void
kill_live(void)
{
	int i;

	for (i = 0; i < MAX_LIVE; i++) {
		if (live[i] != NULL && live[i]->status == -2) {
			kill(live[i]->pid, SIGKILL);
			waitpid(live[i]->pid, NULL, 0);
			live[i]->status = 128 + SIGKILL;
		}
		live[i] = NULL;
	}
}

static void
live_add(struct daemon *d)
{
	int i;

	if (!atexit_done) {
		atexit(kill_live);
		atexit_done = 1;
	}
	for (i = 0; i < MAX_LIVE; i++) {
		if (live[i] == NULL) {
			live[i] = d;
			return;
		}
	}
}

static void
live_del(struct daemon *d)
{
	int i;

	for (i = 0; i < MAX_LIVE; i++)
		if (live[i] == d)
			live[i] = NULL;
}

static int
keep_dirs(void)
{
	const char *k = getenv("CMDHOST_KEEP_TEST_DIRS");

	return k != NULL && k[0] != '\0' && strcmp(k, "0") != 0;
}

/* Make the temp dir and its plugins/ subdir into d->dir; fill the paths. */
static int
make_dir(struct daemon *d)
{
	char sub[PATH_MAX];

	snprintf(d->dir, sizeof(d->dir), "/tmp/cmdhost-test.XXXXXX");
	if (mkdtemp(d->dir) == NULL) {
		d->dir[0] = '\0';
		return -1;
	}
	if (harness_path_join(sub, sizeof(sub), d->dir, "plugins") == -1 ||
	    mkdir(sub, 0755) == -1)
		return -1;
	if (harness_path_join(d->config, sizeof(d->config), d->dir,
	    "cmdhost.ini") == -1 || harness_path_join(d->log, sizeof(d->log),
	    d->dir, "stderr.log") == -1 || harness_path_join(d->sock,
	    sizeof(d->sock), d->dir, "cmdhost.sock") == -1)
		return -1;
	return 0;
}

/* The environment for the daemon: ours with ASAN_OPTIONS replaced.  Returns
 * a new array (free it; the strings are borrowed). */
static char **
daemon_env(void)
{
	char **env;
	size_t n = 0, i, j = 0;

	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + 2, sizeof(*env))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0)
			env[j++] = environ[i];
	env[j++] = (char *)SANITIZER_OPTS;
	env[j] = NULL;
	return env;
}

/* Start cmdhostd -c d->config with output to d->log.  Returns 0 or -1. */
static int
spawn_daemon(struct daemon *d)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	char *argv[] = { (char *)DAEMON_BIN, (char *)"-c", d->config, NULL };
	char **env;
	int rc;

	if ((env = daemon_env()) == NULL)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, d->log,
	    O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 2, 1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
	/* Criterion may block or catch signals; the daemon starts clean. */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr,
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&d->pid, DAEMON_BIN, &fa, &attr, argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	d->status = -2;
	live_add(d);
	return 0;
}

static void
report_failure(struct daemon *d, const char *why)
{
	char *log = harness_read_text(d->log);

	fprintf(stderr, "harness: daemon in %s: %s\n--- stderr.log ---\n%s"
	    "--- end ---\n", d->dir, why, log != NULL ? log : "(none)\n");
	free(log);
}

static int
write_config(struct daemon *d, const struct daemon_opts *opts)
{
	const char *extra = opts->config != NULL ? opts->config : "";
	size_t n = strlen(extra);
	char *text;
	int rc;

	if (opts->socket != NULL) {
		if (opts->socket[0] == '/' && strlen(opts->socket) <
		    sizeof(d->sock))
			strcpy(d->sock, opts->socket);
		else if (harness_path_join(d->sock, sizeof(d->sock), d->dir,
		    opts->socket) == -1)
			return -1;
	}
	if (asprintf(&text, "[host]\nsocket = %s\nplugin_dir = plugins\n"
	    "workers = 2\n%s%s", opts->socket != NULL ? opts->socket :
	    "cmdhost.sock", extra, n > 0 && extra[n - 1] != '\n' ? "\n" : "")
	    == -1)
		return -1;
	rc = harness_write_text(d->config, text);
	free(text);
	return rc;
}

struct daemon *
daemon_start(const struct daemon_opts *opts)
{
	return daemon_start_prepared(opts, NULL, NULL);
}

struct daemon *
daemon_start_prepared(const struct daemon_opts *opts,
    int (*prepare)(const char *dir, void *arg), void *arg)
{
	static const struct daemon_opts none;
	struct daemon *d;
	char from[PATH_MAX], dir[PATH_MAX], to[PATH_MAX];
	const char *base;
	int64_t deadline;
	int i, fd, st;

	if (opts == NULL)
		opts = &none;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->status = -1;
	if (make_dir(d) == -1) {
		fprintf(stderr, "harness: temp dir: %s\n", strerror(errno));
		goto fail;
	}
	if (opts->world_accessible && chmod(d->dir, 0755) == -1)
		goto fail;
	for (i = 0; opts->plugins != NULL && opts->plugins[i] != NULL; i++) {
		if (harness_plugin_path(opts->plugins[i], from, sizeof(from))
		    == -1) {
			fprintf(stderr, "harness: plugin %s not found under "
			    "%s\n", opts->plugins[i], CMDHOST_BUILD_DIR);
			goto fail;
		}
		base = strrchr(from, '/') + 1;
		if (harness_path_join(dir, sizeof(dir), d->dir, "plugins") ==
		    -1 || harness_path_join(to, sizeof(to), dir, base) == -1 ||
		    harness_copy_file(from, to) == -1) {
			fprintf(stderr, "harness: copy %s: %s\n", from,
			    strerror(errno));
			goto fail;
		}
	}
	if (write_config(d, opts) == -1) {
		fprintf(stderr, "harness: config: %s\n", strerror(errno));
		goto fail;
	}
	if (prepare != NULL && prepare(d->dir, arg) == -1) {
		fprintf(stderr, "harness: prepare %s failed\n", d->dir);
		goto fail;
	}
	if (spawn_daemon(d) == -1) {
		fprintf(stderr, "harness: spawn %s: %s\n", DAEMON_BIN,
		    strerror(errno));
		goto fail;
	}
	deadline = now_ms() + (opts->start_timeout_ms > 0 ?
	    opts->start_timeout_ms : 10000);
	for (;;) {
		if ((fd = harness_try_connect(d->sock)) != -1) {
			close(fd);
			return d;
		}
		if ((st = daemon_wait(d, 0)) != -1) {
			char why[64];

			snprintf(why, sizeof(why), "exited with status %d "
			    "before its socket accepted", st);
			report_failure(d, why);
			break;
		}
		if (now_ms() >= deadline) {
			report_failure(d, "socket did not accept in time");
			kill(d->pid, SIGKILL);
			daemon_wait(d, STOP_TIMEOUT_MS);
			break;
		}
		nap_ms(10);
	}
	/* Keep the dir so the log can be read after the failure. */
	live_del(d);
	free(d);
	return NULL;
fail:
	harness_rm_tree(d->dir);
	free(d);
	return NULL;
}

int
daemon_wait(struct daemon *d, int timeout_ms)
{
	int st;

	if (d == NULL)
		return -1;
	if (d->status != -2)
		return d->status;
	if ((st = harness_wait_pid(d->pid, timeout_ms)) == -1)
		return -1;
	d->status = st;
	live_del(d);
	return st;
}

int
daemon_stop(struct daemon *d)
{
	int st;

	if (d == NULL)
		return -1;
	if (d->status != -2)
		return d->status;
	kill(d->pid, SIGTERM);
	if ((st = daemon_wait(d, STOP_TIMEOUT_MS)) != -1)
		return st;
	report_failure(d, "did not exit after SIGTERM; killing it");
	kill(d->pid, SIGKILL);
	daemon_wait(d, STOP_TIMEOUT_MS);
	d->status = -1;
	return -1;
}

void
daemon_free(struct daemon *d)
{
	if (d == NULL)
		return;
	if (d->status == -2) {
		kill(d->pid, SIGKILL);
		daemon_wait(d, STOP_TIMEOUT_MS);
	}
	live_del(d);
	if (!keep_dirs())
		harness_rm_tree(d->dir);
	free(d);
}

int
daemon_signal(struct daemon *d, int sig)
{
	if (d == NULL || d->status != -2) {
		errno = ESRCH;
		return -1;
	}
	return kill(d->pid, sig);
}

pid_t
daemon_pid(const struct daemon *d)
{
	return d->pid;
}

const char *
daemon_dir(const struct daemon *d)
{
	return d->dir;
}

const char *
daemon_socket_path(const struct daemon *d)
{
	return d->sock;
}

const char *
daemon_config_path(const struct daemon *d)
{
	return d->config;
}

char *
daemon_log(const struct daemon *d)
{
	return harness_read_text(d->log);
}

int
daemon_log_contains(const struct daemon *d, const char *text)
{
	char *log = harness_read_text(d->log);
	int found;

	found = log != NULL && strstr(log, text) != NULL;
	free(log);
	return found;
}

void
daemon_dump_log(const struct daemon *d)
{
	char *log;
	size_t n;

	if (d == NULL || (log = harness_read_text(d->log)) == NULL)
		return;
	n = strlen(log);
	fprintf(stderr, "--- %s (tail) ---\n%s--- end ---\n", d->log,
	    n > 16384 ? log + n - 16384 : log);
	free(log);
}

int
daemon_log_wait(const struct daemon *d, const char *text, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		if (daemon_log_contains(d, text))
			return 1;
		if (now_ms() >= deadline)
			return 0;
		nap_ms(10);
	}
}

int
daemon_run_expect_fail_path(const char *config_text, int *exit_status,
    char **stderr_text, char **config_path)
{
	struct daemon d;
	int rc = -1;

	memset(&d, 0, sizeof(d));
	*exit_status = -1;
	if (stderr_text != NULL)
		*stderr_text = NULL;
	if (config_path != NULL)
		*config_path = NULL;
	if (make_dir(&d) == -1)
		goto done;
	if (config_text != NULL &&
	    harness_write_text(d.config, config_text) == -1)
		goto done;
	if (spawn_daemon(&d) == -1)
		goto done;
	if ((*exit_status = daemon_wait(&d, FAIL_TIMEOUT_MS)) == -1) {
		kill(d.pid, SIGKILL);
		daemon_wait(&d, STOP_TIMEOUT_MS);
		*exit_status = -1;
	} else {
		rc = 0;
	}
	if (stderr_text != NULL)
		*stderr_text = harness_read_text(d.log);
	if (config_path != NULL)
		*config_path = strdup(d.config);
done:
	live_del(&d);
	harness_rm_tree(d.dir);
	return rc;
}

int
daemon_run_expect_fail(const char *config_text, int *exit_status,
    char **stderr_text)
{
	return daemon_run_expect_fail_path(config_text, exit_status,
	    stderr_text, NULL);
}
