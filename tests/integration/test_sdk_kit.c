/*
 * test_sdk_kit.c - the plugin authors' kit: `make install` into a
 * temporary DESTDIR, a plugin made by cmdhost-new-plugin and built
 * outside the source tree with only the installed files and pkg-config,
 * `cmdhost check` and `cmdhost exec` on it and on every broken test
 * plugin, the plugin deployed into a live daemon by rename, and the C++
 * example plugin on a live daemon.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmdhost/plugin.h>
#include <json-c/json.h>

#include "harness.h"

#ifndef CMDHOST_SANITIZE
#define CMDHOST_SANITIZE "0"
#endif

#define CLI CMDHOST_BUILD_DIR "/cmdhost"
#define TPLUGINS CMDHOST_BUILD_DIR "/tests/plugins/"
#define RUN_TIMEOUT_MS 120000
#define MAX_ARGS 24

/* The temp dir of the running test, removed by its fini. */
static char kit_dir[64];

static void
kit_fini(void)
{
	char *argv[] = { (char *)"/bin/rm", (char *)"-rf", kit_dir, NULL };
	int st;

	check_free();
	if (kit_dir[0] != '\0')
		run_command(argv, NULL, 30000, &st, NULL, NULL);
	kit_dir[0] = '\0';
}

TestSuite(kit, .fini = kit_fini);

/* Make the test's temp dir (kit_dir) or fail the test. */
static void
kit_mkdtemp(void)
{
	snprintf(kit_dir, sizeof(kit_dir), "/tmp/cmdhost-kit.XXXXXX");
	cr_assert_not_null(mkdtemp(kit_dir), "mkdtemp: %s", strerror(errno));
	/* The loader refuses plugins in a directory others may write, and
	 * mkdtemp's 0700 keeps a daemon of another uid out: 0755. */
	cr_assert_eq(chmod(kit_dir, 0755), 0);
}

/*
 * Run the program a0 with the NULL-terminated arguments after it and
 * `input` on stdin.  Returns its exit status; *out and *err (when not
 * NULL) get new strings (free them).  Fails the test if it cannot run.
 */
static int
run(const char *input, char **out, char **err, const char *a0, ...)
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
	cr_assert_eq(run_command(argv, input, RUN_TIMEOUT_MS, &st, &o, &e),
	    0, "could not run %s", a0);
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

/* Non-zero when path exists as a regular file. */
static int
is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ------------------------------------------------------------ the kit */

struct live_call {
	const char *sock;
	const char *line;
};

/* wait_until() condition: the call answers 200. */
static int
answers_200(void *arg)
{
	struct live_call *lc = arg;
	json_object *r = client_call_once(lc->sock, lc->line);
	int ok = reply_status(r) == 200;

	json_object_put(r);
	return ok;
}

Test(kit, install_template_check_exec_deploy, .timeout = 300)
{
	char root[256], path[1024], proj[256], pc[512], cli[512], newp[512];
	char *out, *err, *flags;
	void *bytes;
	size_t len;
	struct daemon *d;
	struct live_call lc;
	json_object *r;
	int st, fd;

	kit_mkdtemp();
	snprintf(root, sizeof(root), "%s/root", kit_dir);
	snprintf(proj, sizeof(proj), "%s/kit_hello", kit_dir);

	/* Install from what the build made (nothing to rebuild), as a
	 * packager would: PREFIX=/usr under a DESTDIR.  The make we run
	 * must not take over the outer make's jobserver. */
	unsetenv("MAKEFLAGS");
	unsetenv("MFLAGS");
	unsetenv("MAKELEVEL");
	snprintf(path, sizeof(path), "DESTDIR=%s", root);
	st = run(NULL, &out, &err, "/usr/bin/make", "-s", "-C",
	    CMDHOST_SOURCE_DIR, "install", path, "PREFIX=/usr",
	    "SANITIZE=" CMDHOST_SANITIZE, NULL);
	cr_assert_eq(st, 0, "make install: exit %d\n%s\n%s", st, out, err);
	free(out);
	free(err);
	{
		static const char *const files[] = {
			"usr/sbin/cmdhostd", "usr/bin/cmdhost",
			"usr/bin/cmdhost-new-plugin",
			"usr/include/cmdhost/plugin.h",
			"usr/lib/pkgconfig/cmdhost-plugin.pc",
			"usr/lib/cmdhost/plugins/echo.so",
			"usr/lib/cmdhost/plugins/cxx_kv.so",
			"usr/lib/cmdhost/cmdhost-nats.so",
			"usr/share/cmdhost/plugin.map",
			"usr/share/doc/cmdhost/plugin-guide.md",
			"usr/share/doc/cmdhost/observability.md",
			"usr/share/doc/cmdhost/examples/cmdhost.ini",
			"usr/share/man/man1/cmdhost.1",
			"usr/share/man/man5/cmdhost.ini.5",
			"usr/share/man/man7/cmdhost-plugin.7",
			"usr/share/man/man8/cmdhostd.8",
		};

		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", root, files[i]);
			cr_expect(is_file(path), "not installed: %s", path);
		}
	}
	snprintf(cli, sizeof(cli), "%s/usr/bin/cmdhost", root);
	snprintf(newp, sizeof(newp), "%s/usr/bin/cmdhost-new-plugin", root);

	/* pkg-config finds the installed SDK; the .pc says prefix=/usr, so
	 * --define-prefix points it at where the files really are. */
	snprintf(pc, sizeof(pc), "%s/usr/lib/pkgconfig", root);
	cr_assert_eq(setenv("PKG_CONFIG_PATH", pc, 1), 0);
	unsetenv("PKG_CONFIG_LIBDIR"); /* json-c's .pc stays reachable */
	st = run(NULL, &flags, &err, "/usr/bin/pkg-config", "--define-prefix",
	    "--cflags", "--libs", "cmdhost-plugin", NULL);
	cr_assert_eq(st, 0, "pkg-config: %s", err);
	snprintf(path, sizeof(path), "-I%s/usr/include", root);
	cr_expect(strstr(flags, path) != NULL, "flags: %s", flags);
	cr_expect(strstr(flags, "-ljson-c") != NULL, "flags: %s", flags);
	cr_expect(strstr(flags, "-shared") != NULL, "flags: %s", flags);
	free(flags);
	free(err);
	/* The .pc's version is the header's ABI. */
	st = run(NULL, &flags, &err, "/usr/bin/pkg-config", "--modversion",
	    "cmdhost-plugin", NULL);
	cr_assert_eq(st, 0, "pkg-config --modversion: %s", err);
	{
		char abi[32];

		snprintf(abi, sizeof(abi), "%d.%d\n", CMDHOST_ABI_MAJOR,
		    CMDHOST_ABI_MINOR);
		cr_expect_str_eq(flags, abi, "modversion %s, the header's "
		    "ABI %s", flags, abi);
	}
	free(flags);
	free(err);

	/* The template, outside the source tree, built and tested with the
	 * installed files alone. */
	st = run(NULL, &out, &err, newp, "kit_hello", proj, NULL);
	cr_assert_eq(st, 0, "new-plugin: %s%s", out, err);
	free(out);
	free(err);
	snprintf(path, sizeof(path), "CMDHOST=%s", cli);
	st = run(NULL, &out, &err, "/usr/bin/make", "-C", proj,
	    "PKG_CONFIG=pkg-config --define-prefix", path, "all", "test",
	    NULL);
	cr_assert_eq(st, 0, "make all test: exit %d\n%s\n%s", st, out, err);
	cr_expect(strstr(out, "all tests passed") != NULL, "%s", out);
	snprintf(path, sizeof(path), "-I%s/usr/include", root);
	cr_expect(strstr(out, path) != NULL, "not built against the "
	    "installed header: %s", out);
	cr_expect(strstr(out, CMDHOST_SOURCE_DIR) == NULL, "built against "
	    "the source tree: %s", out);
	free(out);
	free(err);

	/* check and exec with the installed cmdhost. */
	snprintf(path, sizeof(path), "%s/kit_hello.so", proj);
	st = run(NULL, &out, &err, cli, "check", path, NULL);
	cr_expect_eq(st, 0, "check: exit %d\n%s\n%s", st, out, err);
	cr_expect(strstr(out, ": ok\n") != NULL, "%s", out);
	cr_expect(strstr(out, "abi: 1.2") != NULL, "%s", out);
	cr_expect(strstr(out, "plugin: kit_hello\n") != NULL, "%s", out);
	cr_expect(strstr(out, "version: 0.1.0\n") != NULL, "%s", out);
	cr_expect(strstr(out, "kit_hello.greet  Greet someone by name") !=
	    NULL, "%s", out);
	cr_expect(strstr(out, "fields: name:string!") != NULL, "%s", out);
	free(out);
	free(err);
	st = run(NULL, &out, &err, cli, "-i", "req-7", "exec", path,
	    "kit_hello.greet", "{\"name\":\"kit\"}", NULL);
	cr_expect_eq(st, 0, "exec: exit %d\n%s", st, err);
	cr_expect_str_eq(out, "{\"id\":\"req-7\",\"status\":200,\"body\":"
	    "{\"greeting\":\"hello, kit\"}}\n");
	free(out);
	free(err);

	/* Deploy into a live daemon by rename, and call it there. */
	fd = check_start_ready(NULL, 10000);
	close(fd);
	d = check_daemon();
	bytes = harness_read_bytes(path, &len);
	cr_assert_not_null(bytes);
	cr_assert_eq(daemon_write_plugin(d, "kit_hello.so", bytes, len,
	    PLUGIN_RENAME), 0);
	free(bytes);
	lc.sock = daemon_socket_path(d);
	lc.line = "{\"id\":1,\"command\":\"kit_hello.greet\","
	    "\"payload\":{\"name\":\"live\"}}";
	CHECK(wait_until(answers_200, &lc, 10000),
	    "kit_hello.greet never answered 200");
	r = client_call_once(lc.sock, lc.line);
	CHECK(r != NULL && strcmp(json_path_str(r, "body/greeting") ?
	    json_path_str(r, "body/greeting") : "", "hello, live") == 0,
	    "reply: %s", reply_text(r));
	json_object_put(r);
	st = run(NULL, &out, &err, cli, "-s", lc.sock, "invoke",
	    "kit_hello.greet", "{\"name\":\"cli\"}", NULL);
	CHECK(st == 0, "invoke: exit %d: %s", st, err);
	cr_expect_str_eq(out, "{\"greeting\":\"hello, cli\"}\n");
	free(out);
	free(err);
	check_stop_clean();

	/* And uninstall takes it all away again. */
	snprintf(path, sizeof(path), "DESTDIR=%s", root);
	st = run(NULL, &out, &err, "/usr/bin/make", "-s", "-C",
	    CMDHOST_SOURCE_DIR, "uninstall", path, "PREFIX=/usr",
	    "SANITIZE=" CMDHOST_SANITIZE, NULL);
	cr_expect_eq(st, 0, "make uninstall: %s%s", out, err);
	free(out);
	free(err);
	cr_expect(!is_file(cli), "%s is still there", cli);
	snprintf(path, sizeof(path), "%s/usr/include/cmdhost/plugin.h", root);
	cr_expect(!is_file(path), "%s is still there", path);
}

/* ------------------------------------------------------------ check */

/* One refused test plugin and words its reason must hold. */
static const struct refusal {
	const char *file;
	const char *words[2];
} refusals[] = {
	{ "no_descriptor.so", { "no 'cmdhost_plugin' descriptor",
	    "no 'cmdhost_plugin_descriptor' function" } },
	{ "desc_fn_null.so", { "cmdhost_plugin_descriptor() returned NULL",
	    NULL } },
	{ "bad_magic.so", { "bad descriptor magic", "0xdeadbeef" } },
	{ "bad_abi.so", { "incompatible", "99." } },
	{ "newer_minor.so", { "newer than the daemon", "1.999" } },
	{ "reg_fails.so", { "registration failed", "database unreachable" } },
	{ "bad_name.so", { "invalid command name", "bad name!" } },
	{ "reserved_name.so", { "reserved", "host.evil" } },
	{ "null_execute.so", { "no execute function", "nx.cmd" } },
};

Test(kit, check_names_each_refusal)
{
	char path[512], *out, *err;
	int st;

	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refusal *k = &refusals[i];

		snprintf(path, sizeof(path), TPLUGINS "%s", k->file);
		st = run(NULL, &out, &err, CLI, "check", path, NULL);
		cr_expect_eq(st, 4, "%s: exit %d\n%s%s", k->file, st, out,
		    err);
		cr_expect(strstr(out, ": refused: ") != NULL, "%s: %s",
		    k->file, out);
		for (int w = 0; w < 2 && k->words[w] != NULL; w++)
			cr_expect(strstr(out, k->words[w]) != NULL,
			    "%s: no '%s' in: %s", k->file, k->words[w], out);
		free(out);
		free(err);
	}
}

Test(kit, check_dup_command_against_its_owner)
{
	char *out, *err;
	int st;

	/* Alone, dup_command.so is a fine plugin... */
	st = run(NULL, &out, &err, CLI, "check", TPLUGINS "dup_command.so",
	    NULL);
	cr_expect_eq(st, 0, "exit %d\n%s%s", st, out, err);
	free(out);
	free(err);
	/* ...next to good.so, which owns test.echo, it is refused. */
	st = run(NULL, &out, &err, CLI, "check", TPLUGINS "good.so",
	    TPLUGINS "dup_command.so", NULL);
	cr_expect_eq(st, 4, "exit %d\n%s%s", st, out, err);
	cr_expect(strstr(out, "good.so: ok") != NULL, "%s", out);
	cr_expect(strstr(out, "dup_command.so: refused: command 'test.echo' "
	    "is already registered by plugin 'good' (good.so)") != NULL,
	    "%s", out);
	free(out);
	free(err);
}

Test(kit, check_not_a_plugin)
{
	char path[512], *out, *err;
	FILE *f;
	int st;

	kit_mkdtemp();
	snprintf(path, sizeof(path), "%s/text.so", kit_dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("#!/bin/sh\necho not a plugin\n", f);
	fclose(f);
	st = run(NULL, &out, &err, CLI, "check", path, NULL);
	cr_expect_eq(st, 4, "exit %d", st);
	cr_expect(strstr(out, "not an ELF") != NULL, "%s", out);
	free(out);
	free(err);
	snprintf(path, sizeof(path), "%s/missing.so", kit_dir);
	st = run(NULL, &out, &err, CLI, "check", path, NULL);
	cr_expect_eq(st, 4, "exit %d", st);
	cr_expect(strstr(out, "No such file") != NULL, "%s", out);
	free(out);
	free(err);
	st = run(NULL, &out, &err, CLI, "check", NULL);
	cr_expect_eq(st, 2, "no file: exit %d", st);
	free(out);
	free(err);
}

/* A descriptor given by a function is named so. */
Test(kit, check_names_the_descriptor_function)
{
	char *out, *err;
	int st;

	st = run(NULL, &out, &err, CLI, "check", TPLUGINS "desc_fn.so", NULL);
	cr_expect_eq(st, 0, "exit %d\n%s", st, err);
	cr_expect(strstr(out, "descriptor: cmdhost_plugin_descriptor(), "
	    "magic 0x434d4448") != NULL, "%s", out);
	cr_expect(strstr(out, "plugin: desc_fn\n") != NULL, "%s", out);
	free(out);
	free(err);
}

Test(kit, check_good_lists_commands)
{
	char *out, *err;
	int st;

	st = run(NULL, &out, &err, CLI, "check", TPLUGINS "good.so", NULL);
	cr_expect_eq(st, 0, "exit %d\n%s", st, err);
	cr_expect(strstr(out, "descriptor: cmdhost_plugin, magic 0x434d4448")
	    != NULL, "%s", out);
	cr_expect(strstr(out, "abi: 1.2 (this cmdhost: 1.2)") != NULL, "%s",
	    out);
	cr_expect(strstr(out, "plugin: good\nversion: 1.0.0\ncommands: 9\n")
	    != NULL, "%s", out);
	cr_expect(strstr(out, "fields: s:string! n:number! i:integer! "
	    "b:boolean! o:object a:array x:any") != NULL, "%s", out);
	cr_expect(strstr(out, "test.sleep [blocking]") != NULL, "%s", out);
	free(out);
	free(err);
}

/* ------------------------------------------------------------ exec */

/* cmdhost exec good.so with up to three more arguments; *out gets
 * stdout (free it).  Returns the exit status. */
static int
exec_good(char **out, const char *a0, const char *a1, const char *a2)
{
	char *err;
	int st;

	st = run(NULL, out, &err, CLI, "exec", TPLUGINS "good.so", a0, a1, a2,
	    NULL);
	free(err);
	return st;
}

Test(kit, exec_replies_as_the_daemon)
{
	char *out;
	int st;

	st = exec_good(&out, "test.echo", "{\"a\":[1,2]}", NULL);
	cr_expect_eq(st, 0);
	cr_expect_str_eq(out, "{\"id\":1,\"status\":200,\"body\":{\"a\":[1,2]}}\n");
	free(out);

	st = exec_good(&out, "test.created", NULL, NULL);
	cr_expect_eq(st, 0);
	cr_expect_str_eq(out, "{\"id\":1,\"status\":201,\"body\":"
	    "{\"created\":true}}\n");
	free(out);

	/* A declared field missing: 400 before the plugin runs. */
	st = exec_good(&out, "test.fields", "{\"s\":\"x\",\"n\":1,\"i\":2}",
	    NULL);
	cr_expect_eq(st, 1);
	cr_expect_str_eq(out, "{\"id\":1,\"status\":400,\"error\":{\"code\":"
	    "\"invalid_payload\",\"message\":\"field 'b' is required\"}}\n");
	free(out);
	st = exec_good(&out, "test.fields", "{\"s\":1}", NULL);
	cr_expect_eq(st, 1);
	cr_expect(strstr(out, "\"message\":\"field 's' must be a string, got "
	    "an integer\"") != NULL, "%s", out);
	free(out);

	/* validate refuses. */
	st = exec_good(&out, "test.validate", "{\"bad\":true}", NULL);
	cr_expect_eq(st, 1);
	cr_expect_str_eq(out, "{\"id\":1,\"status\":400,\"error\":{\"code\":"
	    "\"invalid_payload\",\"message\":\"field \\\"bad\\\" must not be "
	    "true\"}}\n");
	free(out);

	/* execute fails on purpose, and without saying why. */
	st = exec_good(&out, "test.fail", NULL, NULL);
	cr_expect_eq(st, 1);
	cr_expect_str_eq(out, "{\"id\":1,\"status\":409,\"error\":{\"code\":"
	    "\"conflict\",\"message\":\"test.fail always conflicts\"}}\n");
	free(out);
	st = exec_good(&out, "test.fail500", NULL, NULL);
	cr_expect_eq(st, 1);
	cr_expect(strstr(out, "\"status\":500,\"error\":{\"code\":"
	    "\"command_failed\"") != NULL, "%s", out);
	free(out);

	/* A command the file does not register. */
	st = exec_good(&out, "no.such", NULL, NULL);
	cr_expect_eq(st, 1);
	cr_expect(strstr(out, "\"status\":404,\"error\":{\"code\":"
	    "\"unknown_command\"") != NULL, "%s", out);
	free(out);
}

Test(kit, exec_deadline_and_ids)
{
	char *out, *err;
	int st;

	/* -t is the deadline, -i the id, as for invoke. */
	st = run(NULL, &out, &err, CLI, "-t", "20", "-i", "42", "exec",
	    TPLUGINS "good.so", "test.sleep", "{\"ms\":100}", NULL);
	cr_expect_eq(st, 1, "exit %d: %s", st, err);
	cr_expect(strncmp(out, "{\"id\":42,\"status\":504,\"error\":{\"code\":"
	    "\"timeout\"", 40) == 0, "%s", out);
	free(out);
	free(err);
}

Test(kit, exec_config_reaches_the_plugin)
{
	char ini[512], *out, *err;
	FILE *f;
	int st;

	kit_mkdtemp();
	snprintf(ini, sizeof(ini), "%s/kit.ini", kit_dir);
	f = fopen(ini, "w");
	cr_assert_not_null(f);
	fputs("[host]\nlog_level = warn\n[plugin:good]\ngreeting = "
	    "hello from kit.ini\n", f);
	fclose(f);
	st = run(NULL, &out, &err, CLI, "exec", "--config", ini,
	    TPLUGINS "good.so", "test.config", NULL);
	cr_expect_eq(st, 0, "exit %d: %s", st, err);
	cr_expect_str_eq(out, "{\"id\":1,\"status\":200,\"body\":"
	    "\"hello from kit.ini\"}\n");
	free(out);
	free(err);

	/* Config errors are reported as the daemon reports them. */
	f = fopen(ini, "w");
	cr_assert_not_null(f);
	fputs("[host]\nno_such_key = 1\n", f);
	fclose(f);
	st = run(NULL, &out, &err, CLI, "exec", "--config", ini,
	    TPLUGINS "good.so", "test.config", NULL);
	cr_expect_eq(st, 2, "exit %d", st);
	cr_expect(strstr(err, "kit.ini:2") != NULL, "%s", err);
	free(out);
	free(err);
}

Test(kit, exec_exit_statuses)
{
	char *out, *err;
	int st;

	/* 2: usage, or a payload that is not JSON. */
	st = run(NULL, &out, &err, CLI, "exec", TPLUGINS "good.so", NULL);
	cr_expect_eq(st, 2, "exit %d", st);
	free(out);
	free(err);
	st = run(NULL, &out, &err, CLI, "exec", TPLUGINS "good.so",
	    "test.echo", "{\"a\":", NULL);
	cr_expect_eq(st, 2, "exit %d", st);
	cr_expect(strstr(err, "not valid JSON") != NULL, "%s", err);
	free(out);
	free(err);
	/* Payload from stdin. */
	st = run("[1, 2]", &out, &err, CLI, "exec", TPLUGINS "good.so",
	    "test.echo", "-", NULL);
	cr_expect_eq(st, 0, "exit %d: %s", st, err);
	cr_expect_str_eq(out, "{\"id\":1,\"status\":200,\"body\":[1,2]}\n");
	free(out);
	free(err);
	/* 4: the file is refused; nothing on stdout. */
	st = run(NULL, &out, &err, CLI, "exec", TPLUGINS "bad_abi.so",
	    "x", NULL);
	cr_expect_eq(st, 4, "exit %d", st);
	cr_expect_str_eq(out, "");
	cr_expect(strstr(err, "bad_abi.so: refused: plugin ABI 99.") != NULL,
	    "%s", err);
	free(out);
	free(err);
}

/* exec has no outbox: what a call emitted is shown on stderr, said to be
 * undelivered, and said to be dropped when the call did not answer 2xx;
 * stdout keeps only the reply line. */
Test(kit, exec_shows_emitted_events)
{
	char *out, *err, *line;
	int st;

	st = run(NULL, &out, &err, CLI, "exec", TPLUGINS "emitter.so",
	    "emit.some", "{\"n\":2,\"subject\":\"order.made\","
	    "\"data\":\"o-1\"}", NULL);
	cr_expect_eq(st, 0, "exit %d: %s", st, err);
	cr_expect_str_eq(out, "{\"id\":1,\"status\":200,\"body\":"
	    "{\"emitted\":2}}\n");
	line = strstr(err, "cmdhost: event emitted (not delivered: exec has "
	    "no outbox): {\"id\":\"");
	cr_assert_not_null(line, "%s", err);
	cr_expect(strstr(line, ".0\",\"subject\":\"order.made\",\"body\":"
	    "{\"i\":0,\"data\":\"o-1\"}}\n") != NULL, "%s", err);
	cr_expect(strstr(line, ".1\",\"subject\":\"order.made\",\"body\":"
	    "{\"i\":1,\"data\":\"o-1\"}}\n") != NULL, "%s", err);
	cr_expect_null(strstr(err, "dropped"), "%s", err);
	free(out);
	free(err);

	/* Emitted, then failed: shown as dropped, never as emitted. */
	st = run(NULL, &out, &err, CLI, "exec", TPLUGINS "emitter.so",
	    "emit.some", "{\"fail\":409}", NULL);
	cr_expect_eq(st, 1, "exit %d: %s", st, err);
	cr_expect(strstr(out, "\"status\":409") != NULL, "%s", out);
	cr_expect(strstr(err, "cmdhost: event dropped (the call did not "
	    "answer 2xx): {\"id\":\"") != NULL, "%s", err);
	cr_expect_null(strstr(err, "event emitted"), "%s", err);
	free(out);
	free(err);

	/* A refused emit fails the call and shows nothing. */
	st = run(NULL, &out, &err, CLI, "exec", TPLUGINS "emitter.so",
	    "emit.some", "{\"bad\":true}", NULL);
	cr_expect_eq(st, 1, "exit %d: %s", st, err);
	cr_expect(strstr(out, "\"event_refused\"") != NULL, "%s", out);
	cr_expect_null(strstr(err, "cmdhost: event"), "%s", err);
	free(out);
	free(err);
}

/* ------------------------------------------------------------ C++ */

Test(kit, cxx_plugin_on_a_live_daemon)
{
	static const char *const plugins[] = { "plugins/cxx_kv.so", NULL };
	json_object *r;
	int fd;

	check_start_with(plugins, "[plugin:cxx_kv]\nmax_keys = 2\n");
	fd = check_connect();
	r = check_call(fd, "{\"command\":\"kv.put\",\"payload\":{\"key\":\"a\","
	    "\"value\":{\"n\":[1,2]}}}", 201, NULL);
	json_object_put(r);
	r = check_call(fd, "{\"command\":\"kv.put\",\"payload\":{\"key\":\"a\","
	    "\"value\":\"second\"}}", 200, NULL);
	json_object_put(r);
	r = check_call(fd, "{\"command\":\"kv.get\",\"payload\":{\"key\":\"a\"}}",
	    200, NULL);
	CHECK(strcmp(json_path_str(r, "body/value") ?
	    json_path_str(r, "body/value") : "", "second") == 0, "%s",
	    reply_text(r));
	json_object_put(r);
	r = check_call(fd, "{\"command\":\"kv.put\",\"payload\":{\"key\":\"b\","
	    "\"value\":1}}", 201, NULL);
	json_object_put(r);
	r = check_call(fd, "{\"command\":\"kv.put\",\"payload\":{\"key\":\"c\","
	    "\"value\":1}}", 507, "store_full");
	json_object_put(r);
	r = check_call(fd, "{\"command\":\"kv.del\",\"payload\":{\"key\":\"a\"}}",
	    200, NULL);
	json_object_put(r);
	r = check_call(fd, "{\"command\":\"kv.get\",\"payload\":{\"key\":\"a\"}}",
	    404, "key_not_found");
	json_object_put(r);
	r = check_call(fd, "{\"command\":\"kv.get\",\"payload\":{}}", 400,
	    "invalid_payload");
	json_object_put(r);
	close(fd);
	check_stop_clean();
}

Test(kit, cxx_plugin_refuses_bad_config)
{
	char ini[512], *out, *err;
	FILE *f;
	int st;

	kit_mkdtemp();
	snprintf(ini, sizeof(ini), "%s/kv.ini", kit_dir);
	f = fopen(ini, "w");
	cr_assert_not_null(f);
	fputs("[plugin:cxx_kv]\nmax_keys = lots\n", f);
	fclose(f);
	st = run(NULL, &out, &err, CLI, "check", "--config", ini,
	    CMDHOST_BUILD_DIR "/plugins/cxx_kv.so", NULL);
	cr_expect_eq(st, 4, "exit %d", st);
	cr_expect(strstr(out, "max_keys must be a positive integer, not "
	    "'lots'") != NULL, "%s", out);
	free(out);
	free(err);
}

/* ------------------------------------------------------------ Rust */

/* cmdhost-new-plugin --help prints help; names like options are refused
 * and write nothing. */
Test(kit, new_plugin_help_and_option_names)
{
	char *out, *err, dir[128];
	int st;

	kit_mkdtemp();
	st = run(NULL, &out, &err, CMDHOST_SOURCE_DIR "/scripts/new-plugin",
	    "--help", NULL);
	cr_expect_eq(st, 0, "--help: exit %d", st);
	cr_expect(strstr(out, "usage: new-plugin [--lang c|rust] NAME [DIR]")
	    != NULL && strstr(out, "--lang rust") != NULL, "%s", out);
	free(out);
	free(err);
	snprintf(dir, sizeof(dir), "%s/p", kit_dir);
	st = run(NULL, &out, &err, CMDHOST_SOURCE_DIR "/scripts/new-plugin",
	    "-x", dir, NULL);
	cr_expect_eq(st, 2, "-x: exit %d", st);
	cr_expect(strstr(err, "unknown option '-x'") != NULL, "%s", err);
	free(out);
	free(err);
	st = run(NULL, &out, &err, CMDHOST_SOURCE_DIR "/scripts/new-plugin",
	    "--", "--help", dir, NULL);
	cr_expect_eq(st, 2, "-- --help: exit %d", st);
	cr_expect(strstr(err, "NAME must be a letter") != NULL, "%s", err);
	free(out);
	free(err);
	st = run(NULL, &out, &err, CMDHOST_SOURCE_DIR "/scripts/new-plugin",
	    "--lang", "go", "x", dir, NULL);
	cr_expect_eq(st, 2, "--lang go: exit %d", st);
	free(out);
	free(err);
	cr_expect(access(dir, F_OK) != 0, "%s was written", dir);
}

/* From an empty directory to a live daemon with the installed files
 * alone: make install, cmdhost-new-plugin --lang rust, make all test
 * (cargo against the installed crate), make deploy into a daemon. */
Test(kit, rust_template_to_a_live_daemon, .timeout = 300)
{
	char root[256], path[1024], proj[256], cli[512], newp[512], pd[512];
	char sock[512];
	char *out, *err;
	struct live_call lc;
	json_object *r;
	int st, fd;

	if (access(CMDHOST_BUILD_DIR "/plugins/rust_greet.so", R_OK) != 0)
		cr_skip_test("no cargo when this was built: the Rust template "
		    "is not tested (scripts/install-deps.sh installs "
		    "Debian's cargo)");
	kit_mkdtemp();
	snprintf(root, sizeof(root), "%s/root", kit_dir);
	snprintf(proj, sizeof(proj), "%s/empty/kit_rust", kit_dir);
	unsetenv("MAKEFLAGS");
	unsetenv("MFLAGS");
	unsetenv("MAKELEVEL");
	snprintf(path, sizeof(path), "DESTDIR=%s", root);
	st = run(NULL, &out, &err, "/usr/bin/make", "-s", "-C",
	    CMDHOST_SOURCE_DIR, "install", path, "PREFIX=/usr",
	    "SANITIZE=" CMDHOST_SANITIZE, NULL);
	cr_assert_eq(st, 0, "make install: exit %d\n%s\n%s", st, out, err);
	free(out);
	free(err);
	snprintf(path, sizeof(path), "%s/usr/share/cmdhost/rust/src/lib.rs",
	    root);
	cr_assert(is_file(path), "crate not installed: %s", path);
	snprintf(path, sizeof(path), "%s/usr/lib/cmdhost/plugins/"
	    "rust_greet.so", root);
	cr_expect(is_file(path), "rust_greet.so not installed");
	snprintf(path, sizeof(path), "%s/usr/include/cmdhost/"
	    "plugin-layout.txt", root);
	cr_expect(is_file(path), "layout not installed");
	snprintf(cli, sizeof(cli), "%s/usr/bin/cmdhost", root);
	snprintf(newp, sizeof(newp), "%s/usr/bin/cmdhost-new-plugin", root);

	st = run(NULL, &out, &err, newp, "--lang", "rust", "kit_rust", proj,
	    NULL);
	cr_assert_eq(st, 0, "new-plugin: %s%s", out, err);
	snprintf(path, sizeof(path), "%s/usr/share/cmdhost/rust", root);
	cr_expect(strstr(out, path) != NULL, "not the installed crate: %s",
	    out);
	free(out);
	free(err);
	snprintf(path, sizeof(path), "CMDHOST=%s", cli);
	/* An author's own CARGO_TARGET_DIR must not lose the file. */
	snprintf(pd, sizeof(pd), "%s/elsewhere", kit_dir);
	cr_assert_eq(setenv("CARGO_TARGET_DIR", pd, 1), 0);
	st = run(NULL, &out, &err, "/usr/bin/make", "-C", proj, path, "all",
	    "test", NULL);
	unsetenv("CARGO_TARGET_DIR");
	cr_assert_eq(st, 0, "make all test: exit %d\n%s\n%s", st, out, err);
	cr_expect(strstr(out, "all tests passed") != NULL, "%s", out);
	free(out);
	free(err);
	{
		size_t len;
		char *toml;

		snprintf(path, sizeof(path), "%s/Cargo.toml", proj);
		toml = harness_read_bytes(path, &len);
		cr_assert_not_null(toml);
		cr_expect(memmem(toml, len, CMDHOST_SOURCE_DIR,
		    strlen(CMDHOST_SOURCE_DIR)) == NULL, "uses the source "
		    "tree: %.*s", (int)len, toml);
		free(toml);
	}

	fd = check_start_ready(NULL, 10000);
	close(fd);
	snprintf(pd, sizeof(pd), "PLUGIN_DIR=%s/plugins",
	    daemon_dir(check_daemon()));
	snprintf(sock, sizeof(sock), "SOCKET=%s",
	    daemon_socket_path(check_daemon()));
	snprintf(path, sizeof(path), "CMDHOST=%s", cli);
	st = run(NULL, &out, &err, "/usr/bin/make", "-C", proj, path, pd,
	    sock, "deploy", NULL);
	CHECK(st == 0, "make deploy: exit %d\n%s\n%s", st, out, err);
	free(out);
	free(err);
	lc.sock = daemon_socket_path(check_daemon());
	lc.line = "{\"command\":\"kit_rust.greet\",\"payload\":{\"name\":"
	    "\"live\"}}";
	CHECK(wait_until(answers_200, &lc, 10000), "kit_rust.greet never "
	    "answered 200");
	r = client_call_once(lc.sock, lc.line);
	CHECK(strcmp(json_path_str(r, "body/greeting") ?
	    json_path_str(r, "body/greeting") : "", "hello, live") == 0,
	    "reply: %s", reply_text(r));
	json_object_put(r);
	r = client_call_once(lc.sock, "{\"command\":\"kit_rust.greet\","
	    "\"payload\":{}}");
	CHECK(reply_status(r) == 400, "reply: %s", reply_text(r));
	json_object_put(r);
	check_stop_clean();
}
