/*
 * harness.h - run a real cmdhostd in a temp dir and talk to it over its
 * socket, for the Criterion integration tests.  The one header the tests
 * include; its parts are grouped by the file that implements them:
 *
 *   harness_daemon.c  a daemon of the test's own: start, stop, wait, log
 *   harness_files.c   plugins and other files in its dir
 *   harness_proc.c    other commands (run_command), the clock, wait_until
 *   harness_client.c  the client side of its socket
 *   harness_reply.c   reading its JSON replies
 *   harness_check.c   the check_* helpers, which assert
 *
 * Everything but the check_* helpers never asserts: it returns an error
 * value and the test decides.
 */
#ifndef CMDHOST_HARNESS_H
#define CMDHOST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

/* ------------------------------------------- harness_daemon.c */

struct daemon;

struct daemon_opts {
	/*
	 * NULL-terminated list of plugin files to copy into <dir>/plugins/,
	 * or NULL for none.  A bare name ("good.so" or "good") is looked up
	 * in CMDHOST_BUILD_DIR "/tests/plugins/" and then "/plugins/"; a name
	 * with a '/' is relative to CMDHOST_BUILD_DIR ("plugins/echo.so").
	 */
	const char *const *plugins;
	/*
	 * Extra config text, written right after the harness's own [host]
	 * lines (socket, plugin_dir, workers = 2), so it may add [host] keys
	 * and then [plugin:NAME] sections.  NULL for none.  A trailing newline
	 * is added if missing.
	 */
	const char *config;
	/* Socket path to put in the config instead of "cmdhost.sock"
	 * (relative paths are relative to the temp dir), or NULL. */
	const char *socket;
	/* Non-zero: chmod the temp dir 0755 so a client of another uid can
	 * reach the socket (also set socket_mode = 0666 in `config`). */
	int world_accessible;
	/* How long to wait for connect() to succeed; 0 means 10000 ms. */
	int start_timeout_ms;
};

/*
 * Make a temp dir (/tmp/cmdhost-test.XXXXXX) with plugins/ and cmdhost.ini,
 * start CMDHOST_BUILD_DIR "/cmdhostd -c <dir>/cmdhost.ini" with stderr (and
 * stdout) going to <dir>/stderr.log, and wait until connect() to the socket
 * succeeds.  Returns a new daemon (stop it with daemon_stop(), free it with
 * daemon_free()), or NULL on failure: then the reason and the daemon's log
 * are printed to the test's stderr, the process is killed and the dir is
 * kept for inspection.
 */
struct daemon *daemon_start(const struct daemon_opts *opts);

/*
 * daemon_start(), but once the temp dir, its plugins/ dir (with the
 * plugins of opts copied in) and the config exist, and before the daemon
 * is spawned, call prepare(dir, arg) with the temp dir (borrowed) so the
 * test can put files of its own there.  prepare returns 0, or -1 to give
 * up (daemon_start_prepared() then returns NULL).  prepare may be NULL.
 */
struct daemon *daemon_start_prepared(const struct daemon_opts *opts,
    int (*prepare)(const char *dir, void *arg), void *arg);

/*
 * Send SIGTERM and wait (up to 20 s) for the daemon to exit.  Returns its
 * exit status (0..255), 128+N if signal N killed it, or -1 if it did not
 * exit in time (it is then SIGKILLed and reaped).  Calling it again returns
 * the same value.  d may be NULL (returns -1).
 */
int daemon_stop(struct daemon *d);

/*
 * Wait up to timeout_ms for the daemon to exit on its own.  Returns the
 * status as daemon_stop() does, or -1 if it is still running.
 */
int daemon_wait(struct daemon *d, int timeout_ms);

/* Stop the daemon if it still runs (SIGKILL), remove its temp dir and free
 * it.  d may be NULL. */
void daemon_free(struct daemon *d);

/* Send signal `sig` to the daemon.  Returns 0 or -1 (errno set). */
int daemon_signal(struct daemon *d, int sig);

/* The daemon's pid, its temp dir, the absolute path of its socket and of
 * its config file.  Borrowed: valid until daemon_free(). */
pid_t daemon_pid(const struct daemon *d);
const char *daemon_dir(const struct daemon *d);
const char *daemon_socket_path(const struct daemon *d);
const char *daemon_config_path(const struct daemon *d);

/* The daemon's stderr so far: new string (free it), "" if empty, NULL on
 * error. */
char *daemon_log(const struct daemon *d);

/* Non-zero if the daemon's stderr so far contains `text`. */
int daemon_log_contains(const struct daemon *d, const char *text);

/* Print the tail (last 16 KiB) of the daemon's stderr to our stderr, for a
 * failing test.  d may be NULL. */
void daemon_dump_log(const struct daemon *d);

/*
 * Wait up to timeout_ms until the daemon's stderr contains `text`.  Returns
 * non-zero if it does.
 */
int daemon_log_wait(const struct daemon *d, const char *text, int timeout_ms);

/*
 * Run cmdhostd on a config of our own and expect it to exit by itself:
 * makes a temp dir with an empty plugins/ dir, writes `config_text`
 * verbatim to <dir>/cmdhost.ini (not at all if config_text is NULL, to test
 * a missing file), runs cmdhostd -c <dir>/cmdhost.ini and waits up to 10 s.
 * On return *exit_status holds the status as daemon_stop() gives it and
 * *stderr_text (if stderr_text is not NULL) a new string with its stderr
 * (free it); if config_path is not NULL, *config_path gets a new string
 * with the config file's path (free it; the dir itself is removed).
 * Returns 0 if the daemon exited on its own, -1 if it did not (it is then
 * killed; *exit_status is -1) or could not be run.
 */
int daemon_run_expect_fail(const char *config_text, int *exit_status,
    char **stderr_text);
int daemon_run_expect_fail_path(const char *config_text, int *exit_status,
    char **stderr_text, char **config_path);

/* -------------------------------------------- harness_files.c */

/*
 * Copy plugin `name` (found as daemon_opts.plugins says) into the running
 * daemon's plugins/ dir as `as` (NULL: its own base name).  The copy is
 * written under a dot name and renamed into place, so a watcher never sees
 * a half-written file.  Returns 0 or -1.  Nothing is rescanned: send
 * host.reload or SIGHUP, or let the watcher see it.
 */
int daemon_install_plugin(struct daemon *d, const char *name,
    const char *as);

/*
 * Where plugin `name` is found, by the rules of daemon_opts.plugins, into
 * path (size bytes).  Returns 0, or -1 if there is no such file.
 */
int harness_plugin_path(const char *name, char *path, size_t size);

/* The bytes of file `path`: a new buffer (free it) and *len, or NULL. */
void *harness_read_bytes(const char *path, size_t *len);

/* The text of dir/name (both borrowed): a new string (free it), "" when
 * there is no such file, or NULL only when out of memory. */
char *harness_file_text(const char *dir, const char *name);

/* How many times needle occurs in hay (both borrowed; overlaps count). */
int harness_count(const char *hay, const char *needle);

/* Remove dir (borrowed) and all below it, links not followed; "" does
 * nothing. */
void harness_rm_tree(const char *dir);

/* How daemon_write_plugin() puts bytes in place. */
enum plugin_write {
	/* Write a dot-name temp file in plugins/, then rename() it onto the
	 * target: the watcher sees one complete file appear. */
	PLUGIN_RENAME,
	/* open(O_WRONLY | O_CREAT | O_TRUNC) the target itself and write
	 * the bytes with one write(): "cp" over the file in place. */
	PLUGIN_IN_PLACE
};

/*
 * Put `len` bytes of `buf` (borrowed) into the daemon's plugins/ dir as
 * `as`, the way `how` says.  Returns 0 or -1.  Nothing is rescanned.
 */
int daemon_write_plugin(struct daemon *d, const char *as, const void *buf,
    size_t len, enum plugin_write how);

/* Copy built plugin `name` over plugins/`as` in place (PLUGIN_IN_PLACE).
 * Returns 0 or -1. */
int daemon_overwrite_plugin(struct daemon *d, const char *name,
    const char *as);

/* Remove plugins/`as`.  Returns 0 or -1 (errno set). */
int daemon_remove_plugin(struct daemon *d, const char *as);

/* --------------------------------------------- harness_proc.c */

/*
 * Run argv (argv[0] is a path) with `input` (or nothing) on stdin, wait up
 * to timeout_ms, and collect its stdout and stderr as new strings (free
 * them; pass NULL to drop one).  Returns 0 and *exit_status as
 * daemon_stop() gives it, or -1 if it could not run or timed out (it is
 * then killed).
 */
int run_command(char *const argv[], const char *input, int timeout_ms,
    int *exit_status, char **out_text, char **err_text);

/* Monotonic clock, milliseconds. */
int64_t now_ms(void);

/* Sleep ms milliseconds (resuming after signals).  Only for a polling loop
 * that has a deadline; otherwise use wait_until(). */
void nap_ms(int ms);

/*
 * Call cond(arg) every few milliseconds until it returns non-zero or
 * timeout_ms have passed.  Returns non-zero if the condition came true.
 */
int wait_until(int (*cond)(void *arg), void *arg, int timeout_ms);

/* The resident set (VmRSS) of process pid in KiB, or -1. */
long proc_rss_kib(pid_t pid);

/* ------------------------------------------- harness_client.c */

/* How long a client read waits before it gives up (SO_RCVTIMEO). */
#define HARNESS_RECV_TIMEOUT_MS 10000

/*
 * Connect to the Unix socket at `sock`.  Returns a blocking fd with
 * SO_RCVTIMEO/SO_SNDTIMEO of HARNESS_RECV_TIMEOUT_MS (close it), or -1.
 */
int client_connect(const char *sock);

/* Send `line`, adding '\n' if it does not end with one.  No SIGPIPE.
 * Returns 0, or -1 if not all of it could be sent. */
int client_send(int fd, const char *line);

/* Send `len` bytes exactly as given.  Returns 0 or -1. */
int client_send_raw(int fd, const char *buf, size_t len);

/*
 * Read one line.  Returns a new string without the '\n' (free it), or NULL
 * on EOF, error or timeout.  Reads nothing past the '\n', so it can be
 * mixed with other reads on the same fd.
 */
char *client_recv_line(int fd);

/* Non-zero if the peer closed the connection (EOF within timeout_ms, with
 * no data before it). */
int client_wait_eof(int fd, int timeout_ms);

/*
 * client_send() then client_recv_line(), parsed.  Returns a new json-c
 * object (json_object_put() it), or NULL on any failure (also when the
 * reply is not JSON).
 */
json_object *client_call(int fd, const char *line);

/* Connect to `sock`, client_call() and close. */
json_object *client_call_once(const char *sock, const char *line);

/*
 * Do client_call_once() in a forked child that first drops to gid/uid
 * `uid` (setgroups, setgid, setuid).  Returns the parsed reply (put it) or
 * NULL (also when the child could not drop privileges or connect).
 */
json_object *client_call_as(uid_t uid, const char *sock, const char *line);

/* -------------------------------------------- harness_reply.c */

/* "status" of a reply, or -1 if absent or not an integer; j may be NULL. */
int reply_status(json_object *j);

/* error.code / error.message of a reply, or NULL.  Borrowed from j. */
const char *reply_error_code(json_object *j);
const char *reply_error_message(json_object *j);

/* "body" of a reply, or NULL.  Borrowed from j (no reference taken). */
json_object *reply_body(json_object *j);

/* "id" of a reply, or NULL (also for JSON null).  Borrowed from j. */
json_object *reply_id(json_object *j);

/* Walk a path of object keys separated by '/', "commands/test.echo/calls"
 * (no array indexes).  Returns the member or NULL.  Borrowed from j. */
json_object *json_path(json_object *j, const char *path);

/* A reply as compact text for assert messages.  Borrowed from j; "(null)"
 * when j is NULL. */
const char *reply_text(json_object *j);

/* The string at json_path(j, path), or NULL if there is none or it is not
 * a string.  Borrowed from j. */
const char *json_path_str(json_object *j, const char *path);

/* -------------------------------------------- harness_check.c */

/*
 * Unlike everything above, these helpers fail the running Criterion test
 * (cr_assert) when something is off, after printing the log of the test's
 * daemon.  A test has at most one such daemon at a time: the one
 * check_start() returned last.  CHECK needs <criterion/criterion.h>.
 */

/* Like cr_assert(cond, ...), but print the test's daemon's log first. */
#define CHECK(cond, ...) do {                                             \
	if (!(cond)) {                                                    \
		daemon_dump_log(check_daemon());                          \
		cr_assert_fail(__VA_ARGS__);                              \
	}                                                                 \
} while (0)

/* The test's daemon, or NULL.  Borrowed: valid until check_free(). */
struct daemon *check_daemon(void);

/*
 * daemon_start(opts) and make the new daemon the test's daemon (a former
 * one is left as it is: free it first); fails the test if it does not
 * start.  Returns it, borrowed: check_free() frees it.
 */
struct daemon *check_start(const struct daemon_opts *opts);

/* check_start() through daemon_start_prepared(opts, prepare, arg). */
struct daemon *check_start_prepared(const struct daemon_opts *opts,
    int (*prepare)(const char *dir, void *arg), void *arg);

/* check_start() with only .plugins and .config set (each may be NULL). */
struct daemon *check_start_with(const char *const *plugins,
    const char *config);

/*
 * check_start_with(NULL, config) (an empty plugin dir), connect to it, and
 * wait up to timeout_ms for its "ready on" log line: the daemon accepts on
 * its socket before its watcher runs, so a plugin dropped in right after
 * connect() may never be seen.  Returns the fd (close it).
 */
int check_start_ready(const char *config, int timeout_ms);

/* daemon_free() the test's daemon and forget it.  Does nothing if there is
 * none; fits a TestSuite's .fini. */
void check_free(void);

/* Stop the test's daemon and require exit status 0 (under ASan: no
 * leaks). */
void check_stop_clean(void);

/* Connect to the test's daemon (client_connect()) or fail the test.
 * Returns the fd (close it). */
int check_connect(void);

/*
 * client_call(fd, line) and require a JSON reply with `status` and, if code
 * is not NULL, error.code `code`.  Returns the reply (json_object_put() it).
 */
json_object *check_call(int fd, const char *line, int status,
    const char *code);

/* Write text to dir/name (created or truncated; all borrowed) or fail the
 * test. */
void check_write_file(const char *dir, const char *name, const char *text);

/* Make a new directory /tmp/cmdhost-TAG.XXXXXX, and in it sub (NULL:
 * none), its path into dir (size bytes), or fail the test.  Remove it
 * with harness_rm_tree(). */
void check_tmp_dir(char *dir, size_t size, const char *tag, const char *sub);

#endif /* CMDHOST_HARNESS_H */
