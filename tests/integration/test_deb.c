/*
 * test_deb.c - the Debian packages: `make deb` builds cmdhost and
 * cmdhost-dev with dpkg-buildpackage and lintian passes them (with the
 * overrides in debian/); each package's file list has what it must; the
 * Depends that shlibs computed name the libraries the programs link; and
 * the installed layout runs: both packages extracted (dpkg-deb -x) into a
 * throwaway root, the packaged /etc/cmdhost/cmdhost.ini pointed into that
 * root, `cmdhostd -t` and then the extracted daemon on it, called through
 * the extracted CLI (and its NATS module loaded), and stopped.
 *
 * Only without sanitizers (the package is an ordinary build; the
 * sanitized suites would only build it again).  It takes a minute or two:
 * the package build compiles the tree once more.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "harness.h"
#include "version.h"

#ifndef CMDHOST_SANITIZE
#define CMDHOST_SANITIZE "0"
#endif

#define DEB_DIR CMDHOST_SOURCE_DIR "/build/deb"
#define PKG_MAIN DEB_DIR "/cmdhost_" CMDHOST_VERSION "_amd64.deb"
#define PKG_DEV DEB_DIR "/cmdhost-dev_" CMDHOST_VERSION "_all.deb"
/* The package build compiles everything again on a loaded machine. */
#define BUILD_TIMEOUT_MS 480000
#define RUN_TIMEOUT_MS 60000
#define MAX_ARGS 16

/* The test's temp dir, removed by its fini; the extracted daemon. */
static char deb_tmp[64];
static pid_t deb_daemon = -1;

static void
deb_fini(void)
{
	char *argv[] = { (char *)"/bin/rm", (char *)"-rf", deb_tmp, NULL };
	int st;

	if (deb_daemon > 0) {
		kill(deb_daemon, SIGKILL);
		waitpid(deb_daemon, NULL, 0);
		deb_daemon = -1;
	}
	if (deb_tmp[0] != '\0')
		run_command(argv, NULL, 30000, &st, NULL, NULL);
	deb_tmp[0] = '\0';
}

TestSuite(deb, .fini = deb_fini);

/*
 * Run the program a0 with the NULL-terminated arguments after it, wait
 * up to timeout_ms.  Returns its exit status; *out and *err (when not
 * NULL) get new strings (free them).  Fails the test if it cannot run.
 */
static int
run(int timeout_ms, char **out, char **err, const char *a0, ...)
{
	char *argv[MAX_ARGS], *o = NULL, *e = NULL;
	va_list ap;
	int n = 0, st = -1;

	argv[n++] = (char *)a0;
	va_start(ap, a0);
	while (n < MAX_ARGS - 1 &&
	    (argv[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	cr_assert_eq(run_command(argv, NULL, timeout_ms, &st, &o, &e), 0,
	    "could not run %s (or it timed out)", a0);
	cr_assert_not_null(o);
	cr_assert_not_null(e);
	if (out != NULL)
		*out = o;
	else
		free(o);
	if (err != NULL)
		*err = e;
	else
		free(e);
	return st;
}

/*
 * Non-zero when `listing` (dpkg-deb -c output, borrowed) has the entry
 * `path` ("./usr/sbin/cmdhostd") as a whole name at the end of a line.
 */
static int
lists(const char *listing, const char *path)
{
	size_t len = strlen(path);

	for (const char *p = listing; (p = strstr(p, path)) != NULL; p++) {
		if (p > listing && p[-1] == ' ' &&
		    (p[len] == '\n' || p[len] == '\0'))
			return 1;
	}
	return 0;
}

/* Check that the package file `deb` lists each of the NULL-terminated
 * paths. */
static void
check_lists(const char *deb, const char *const *paths)
{
	char *out;
	int st = run(RUN_TIMEOUT_MS, &out, NULL, "/usr/bin/dpkg-deb", "-c",
	    deb, NULL);

	cr_assert_eq(st, 0, "dpkg-deb -c %s: exit %d", deb, st);
	for (size_t i = 0; paths[i] != NULL; i++)
		cr_expect(lists(out, paths[i]), "%s lacks %s; it has:\n%s",
		    deb, paths[i], out);
	free(out);
}

/*
 * Copy the packaged configuration `in` to `out` with every path it names
 * (socket, plugin_dir, state_dir, workflow_dir, database: absolute
 * paths of an installed system) moved under `root`.  Returns 0 or -1.
 */
static int
rebase_config(const char *in, const char *out, const char *root)
{
	static const char *const keys[] = { "socket = ", "plugin_dir = ",
		"state_dir = ", "workflow_dir = ", "database = " };
	char line[1024];
	FILE *fi = fopen(in, "r"), *fo = fopen(out, "w");
	int moved = 0, rc = 0;

	if (fi == NULL || fo == NULL)
		rc = -1;
	while (rc == 0 && fgets(line, sizeof(line), fi) != NULL) {
		size_t i;

		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			size_t kl = strlen(keys[i]);

			if (strncmp(line, keys[i], kl) == 0 &&
			    line[kl] == '/') {
				fprintf(fo, "%s%s%s", keys[i], root,
				    line + kl);
				moved++;
				break;
			}
		}
		if (i == sizeof(keys) / sizeof(keys[0]))
			fputs(line, fo);
	}
	if (fi != NULL)
		fclose(fi);
	if (fo != NULL && fclose(fo) != 0)
		rc = -1;
	/* socket, plugin_dir, state_dir, workflow_dir at least. */
	return rc == 0 && moved >= 4 ? 0 : -1;
}

/* The text of file `path`: a new NUL-terminated string (free it), or
 * NULL. */
static char *
read_text(const char *path)
{
	size_t len;
	char *buf = harness_read_bytes(path, &len), *s;

	if (buf == NULL || (s = realloc(buf, len + 1)) == NULL) {
		free(buf);
		return NULL;
	}
	s[len] = '\0';
	return s;
}

/* wait_until() condition: the socket at arg accepts a connection. */
static int
accepts(void *arg)
{
	int fd = client_connect(arg);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* wait_until() condition: the extracted daemon has exited (reaped into
 * deb_exit). */
static int deb_exit = -1;
static int
exited(void *arg)
{
	int st;

	(void)arg;
	if (waitpid(deb_daemon, &st, WNOHANG) != deb_daemon)
		return 0;
	deb_exit = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	deb_daemon = -1;
	return 1;
}

Test(deb, build_lint_list_extract_run, .timeout = 900)
{
	char root[128], path[512], cfg[512], sock[512], daemon[512], cli[512];
	char logp[512];
	char *out, *err;
	json_object *r;
	int st;

	if (strcmp(CMDHOST_SANITIZE, "0") != 0)
		cr_skip_test("the package is built and checked by the suite "
		    "without sanitizers (SANITIZE=0) only");

	/* make deb: dpkg-buildpackage in a copy under build/deb/, then
	 * lintian (its exit status is make deb's).  The make we run must
	 * not take over the outer make's jobserver. */
	unsetenv("MAKEFLAGS");
	unsetenv("MFLAGS");
	unsetenv("MAKELEVEL");
	st = run(BUILD_TIMEOUT_MS, &out, &err, "/usr/bin/make", "-s", "-C",
	    CMDHOST_SOURCE_DIR, "deb", NULL);
	cr_assert_eq(st, 0, "make deb: exit %d\n%s\n%s", st, out, err);
	cr_expect(strstr(out, "(lintian clean)") != NULL, "make deb:\n%s",
	    out);
	free(out);
	free(err);
	{
		char *status = read_text(DEB_DIR "/lintian.status");

		cr_assert_not_null(status, "no " DEB_DIR "/lintian.status");
		cr_expect_eq(atoi(status), 0, "lintian exit %s", status);
		free(status);
	}

	{
		static const char *const main_files[] = {
			"./usr/sbin/cmdhostd", "./usr/bin/cmdhost",
			"./usr/lib/cmdhost/cmdhost-worker",
			"./usr/lib/cmdhost/cmdhost-nats.so",
			"./usr/lib/cmdhost/plugins/echo.so",
			"./usr/lib/cmdhost/plugins/users.so",
			"./usr/lib/cmdhost/plugins/orders.so",
			"./usr/lib/cmdhost/plugins/payments.so",
			"./usr/lib/cmdhost/plugins/cxx_kv.so",
			"./lib/systemd/system/cmdhostd.service",
			"./lib/systemd/system/cmdhostd.socket",
			"./etc/cmdhost/cmdhost.ini",
			"./etc/cmdhost/workflows/saga.json",
			"./usr/share/man/man1/cmdhost.1.gz",
			"./usr/share/man/man5/cmdhost.ini.5.gz",
			"./usr/share/man/man8/cmdhostd.8.gz",
			"./usr/share/doc/cmdhost/copyright",
			NULL
		};
		static const char *const dev_files[] = {
			"./usr/include/cmdhost/plugin.h",
			"./usr/include/cmdhost/plugin-layout.txt",
			"./usr/share/pkgconfig/cmdhost-plugin.pc",
			"./usr/bin/cmdhost-new-plugin",
			"./usr/share/cmdhost/plugin.map",
			"./usr/share/cmdhost/rust/Cargo.toml",
			"./usr/share/doc/cmdhost-dev/plugin-guide.md.gz",
			"./usr/share/man/man1/cmdhost-new-plugin.1.gz",
			"./usr/share/man/man7/cmdhost-plugin.7.gz",
			NULL
		};

		check_lists(PKG_MAIN, main_files);
		check_lists(PKG_DEV, dev_files);
	}

	/* What the package says about itself: the daemon's version, the
	 * libraries shlibs found, /etc as conffiles. */
	st = run(RUN_TIMEOUT_MS, &out, NULL, "/usr/bin/dpkg-deb", "-f",
	    PKG_MAIN, "Version", "Depends", NULL);
	cr_assert_eq(st, 0);
	cr_expect(strstr(out, "Version: " CMDHOST_VERSION "\n") != NULL,
	    "%s", out);
	{
		static const char *const libs[] = { "libjson-c5", "libinih1",
			"libsqlite3-0", "libnats3.", "libc6", "adduser" };

		for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++)
			cr_expect(strstr(out, libs[i]) != NULL,
			    "Depends lacks %s: %s", libs[i], out);
	}
	free(out);
	st = run(RUN_TIMEOUT_MS, &out, NULL, "/usr/bin/dpkg-deb", "-I",
	    PKG_MAIN, "conffiles", NULL);
	cr_assert_eq(st, 0);
	cr_expect(strstr(out, "/etc/cmdhost/cmdhost.ini\n") != NULL, "%s",
	    out);
	free(out);

	/* Both packages into a throwaway root. */
	snprintf(deb_tmp, sizeof(deb_tmp), "/tmp/cmdhost-deb.XXXXXX");
	cr_assert_not_null(mkdtemp(deb_tmp), "mkdtemp: %s", strerror(errno));
	/* The loader refuses plugins under a directory others may write,
	 * and wants the path there walkable. */
	cr_assert_eq(chmod(deb_tmp, 0755), 0);
	snprintf(root, sizeof(root), "%s/root", deb_tmp);
	st = run(RUN_TIMEOUT_MS, NULL, &err, "/usr/bin/dpkg-deb", "-x",
	    PKG_MAIN, root, NULL);
	cr_assert_eq(st, 0, "dpkg-deb -x: %s", err);
	free(err);
	st = run(RUN_TIMEOUT_MS, NULL, &err, "/usr/bin/dpkg-deb", "-x",
	    PKG_DEV, root, NULL);
	cr_assert_eq(st, 0, "dpkg-deb -x: %s", err);
	free(err);

	/* What postinst and systemd would make: the socket's and the state
	 * directory. */
	{
		static const char *const dirs[] = { "run", "run/cmdhost",
			"var", "var/lib", "var/lib/cmdhost" };

		for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", root, dirs[i]);
			cr_assert(mkdir(path, i == 4 ? 0700 : 0755) == 0 ||
			    errno == EEXIST, "mkdir %s: %s", path,
			    strerror(errno));
		}
	}

	/* The packaged configuration, its paths moved into the root (the
	 * built-in ones are /usr/..., /run/..., /var/lib/...). */
	snprintf(path, sizeof(path), "%s/etc/cmdhost/cmdhost.ini", root);
	snprintf(cfg, sizeof(cfg), "%s/cmdhost.ini", deb_tmp);
	cr_assert_eq(rebase_config(path, cfg, root), 0,
	    "could not rewrite %s", path);
	snprintf(sock, sizeof(sock), "%s/run/cmdhost/cmdhost.sock", root);
	snprintf(daemon, sizeof(daemon), "%s/usr/sbin/cmdhostd", root);
	snprintf(cli, sizeof(cli), "%s/usr/bin/cmdhost", root);

	/* -t: everything a start needs is where the package put it. */
	st = run(RUN_TIMEOUT_MS, &out, &err, daemon, "-t", "-c", cfg, NULL);
	cr_expect_eq(st, 0, "cmdhostd -t: exit %d\n%s%s", st, out, err);
	free(out);
	free(err);

	/* The extracted daemon; its cmdhost-worker (the load probe) and
	 * the NATS module are found next to it, in ../lib/cmdhost. */
	snprintf(logp, sizeof(logp), "%s/stderr.log", deb_tmp);
	deb_daemon = fork();
	cr_assert_neq(deb_daemon, -1);
	if (deb_daemon == 0) {
		FILE *f = freopen(logp, "w", stderr);

		if (f == NULL || dup2(fileno(f), 1) < 0)
			_exit(126);
		execl(daemon, "cmdhostd", "-c", cfg, (char *)NULL);
		_exit(127);
	}
	if (!wait_until(accepts, sock, 30000)) {
		char *log = read_text(logp);

		cr_assert_fail("the extracted daemon does not answer on %s; "
		    "its log:\n%s", sock, log != NULL ? log : "(none)");
	}

	/* Through the extracted CLI: ping, the echo plugin, health. */
	st = run(RUN_TIMEOUT_MS, &out, &err, cli, "-s", sock, "ping", NULL);
	cr_expect_eq(st, 0, "cmdhost ping: exit %d\n%s%s", st, out, err);
	free(out);
	free(err);
	st = run(RUN_TIMEOUT_MS, &out, &err, cli, "-s", sock, "invoke",
	    "echo", "{\"from\":\"the package\"}", NULL);
	cr_expect_eq(st, 0, "cmdhost invoke echo: exit %d\n%s%s", st, out,
	    err);
	cr_expect(strstr(out, "the package") != NULL, "echo: %s", out);
	free(out);
	free(err);
	/* ok only when every packaged plugin loaded (health tells). */
	st = run(RUN_TIMEOUT_MS, &out, &err, cli, "-s", sock, "health", NULL);
	cr_expect_eq(st, 0, "cmdhost health: exit %d\n%s%s", st, out, err);
	free(out);
	free(err);
	/* The packaged NATS module loads from beside the extracted CLI:
	 * the call then fails at connecting (nothing listens on port 9),
	 * not at loading the module. */
	unsetenv("CMDHOST_NATS_MODULE");
	st = run(RUN_TIMEOUT_MS, &out, &err, cli, "--nats",
	    "nats://127.0.0.1:9", "invoke", "echo", "{}", NULL);
	cr_expect_neq(st, 0);
	cr_expect(strstr(err, "cannot connect to NATS") != NULL &&
	    strstr(err, "cannot be loaded") == NULL,
	    "cmdhost --nats: exit %d\n%s%s", st, out, err);
	free(out);
	free(err);
	r = client_call_once(sock, "{\"command\":\"host.list\"}");
	cr_expect_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_expect_str_eq(json_path_str(r, "body/version") ?
	    json_path_str(r, "body/version") : "", CMDHOST_VERSION, "%s",
	    reply_text(r));
	json_object_put(r);

	cr_assert_eq(kill(deb_daemon, SIGTERM), 0);
	cr_assert(wait_until(exited, NULL, 30000),
	    "the extracted daemon did not stop on SIGTERM");
	cr_expect_eq(deb_exit, 0, "the extracted daemon exited %d", deb_exit);
	cr_expect_eq(access(sock, F_OK), -1, "%s left behind", sock);
}
