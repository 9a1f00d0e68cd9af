/*
 * test_configtest.c - `cmdhostd -t` finds what a start would trip over,
 * with the file:line of the key at fault: 1.1 a good setup is ok, 1.2 the
 * socket's directory is missing, 1.3 a file that is not a socket sits at
 * the socket's path, 1.4 plugin_dir is missing, 1.5 plugin_dir is
 * writable by everyone, 1.6 a plugin file is not a shared object, 1.7
 * state_dir is writable by others, 1.8 state_dir belongs to another uid,
 * 1.9 state_dir cannot be made; and it never creates or binds anything.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static char dir[64];

static void
setup(void)
{
	char path[128];

	snprintf(dir, sizeof(dir), "/tmp/cmdhost-t.XXXXXX");
	cr_assert(mkdtemp(dir) != NULL);
	chmod(dir, 0755);
	snprintf(path, sizeof(path), "%s/plugins", dir);
	cr_assert(mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/state", dir);
	cr_assert(mkdir(path, 0700) == 0);
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)system(cmd);
}

TestSuite(configtest, .init = setup, .fini = teardown);

/* Put the good plugin in plugins/. */
static void
add_good_plugin(void)
{
	char src[512], dst[128];
	size_t len;
	void *bytes;
	FILE *f;

	cr_assert(harness_plugin_path("good.so", src, sizeof(src)) == 0);
	cr_assert((bytes = harness_read_bytes(src, &len)) != NULL);
	snprintf(dst, sizeof(dst), "%s/plugins/good.so", dir);
	cr_assert((f = fopen(dst, "wb")) != NULL);
	cr_assert(fwrite(bytes, 1, len, f) == len);
	fclose(f);
	chmod(dst, 0755);
	free(bytes);
}

/* Write cmdhost.ini: the [host] lines given (socket and plugin_dir
 * default to ones that work), run cmdhostd -t on it; *err its stderr. */
static int
run_t(const char *host_lines, char **err)
{
	char cfg[128], *argv[5], *out = NULL;
	int status = -1;
	FILE *f;

	snprintf(cfg, sizeof(cfg), "%s/cmdhost.ini", dir);
	cr_assert((f = fopen(cfg, "w")) != NULL);
	/* Line 1 [host], the test's lines from line 2 on. */
	fprintf(f, "[host]\n%s", host_lines);
	if (strstr(host_lines, "socket =") == NULL)
		fprintf(f, "socket = cmdhost.sock\n");
	if (strstr(host_lines, "plugin_dir =") == NULL)
		fprintf(f, "plugin_dir = plugins\n");
	if (strstr(host_lines, "state_dir =") == NULL)
		fprintf(f, "state_dir = state\n");
	fclose(f);
	argv[0] = (char *)CMDHOST_BUILD_DIR "/cmdhostd";
	argv[1] = (char *)"-t";
	argv[2] = (char *)"-c";
	argv[3] = cfg;
	argv[4] = NULL;
	cr_assert(run_command(argv, NULL, 20000, &status, &out, err) == 0);
	free(out);
	return status;
}

/* -t must exit 1 and say `text` on the line `line` of the file. */
static void
expect_problem(const char *host_lines, int line, const char *text)
{
	char *err = NULL, where[160];
	int rc = run_t(host_lines, &err);

	snprintf(where, sizeof(where), "%s/cmdhost.ini:%d: ", dir, line);
	cr_assert(rc == 1, "exit %d; stderr: %s", rc, err ? err : "");
	cr_assert(err != NULL && strstr(err, where) != NULL, "no %s in: %s",
	    where, err ? err : "");
	cr_assert(strstr(err, text) != NULL, "no '%s' in: %s", text, err);
	free(err);
}

/* 1.1 */
Test(configtest, good_setup_is_ok)
{
	char *err = NULL, path[128];
	struct stat st;

	add_good_plugin();
	cr_assert(run_t("", &err) == 0, "stderr: %s", err ? err : "");
	free(err);
	snprintf(path, sizeof(path), "%s/cmdhost.sock", dir);
	cr_assert(lstat(path, &st) < 0, "-t bound the socket");
}

/* 1.2 */
Test(configtest, socket_dir_missing)
{
	add_good_plugin();
	expect_problem("socket = nodir/cmdhost.sock\n", 2,
	    "socket: the socket's directory nodir: No such file or "
	    "directory");
}

/* 1.3 */
Test(configtest, socket_path_not_a_socket)
{
	char path[128];
	FILE *f;

	add_good_plugin();
	snprintf(path, sizeof(path), "%s/taken", dir);
	cr_assert((f = fopen(path, "w")) != NULL);
	fclose(f);
	expect_problem("socket = taken\n", 2, "exists and is not a socket");
}

/* 1.4 */
Test(configtest, plugin_dir_missing)
{
	expect_problem("workers = 1\nplugin_dir = noplugins\n", 3,
	    "plugin_dir: ");
}

/* 1.5 */
Test(configtest, plugin_dir_world_writable)
{
	char path[128];

	add_good_plugin();
	snprintf(path, sizeof(path), "%s/plugins", dir);
	chmod(path, 0777);
	expect_problem("plugin_dir = plugins\n", 2, "writable");
}

/* 1.6 */
Test(configtest, plugin_file_not_elf)
{
	char path[128];
	FILE *f;

	add_good_plugin();
	snprintf(path, sizeof(path), "%s/plugins/text.so", dir);
	cr_assert((f = fopen(path, "w")) != NULL);
	fputs("not a library\n", f);
	fclose(f);
	expect_problem("plugin_dir = plugins\n", 2,
	    "plugin file plugins/text.so: not an ELF shared object");
}

/* 1.7 */
Test(configtest, state_dir_open_to_others)
{
	char path[128];

	add_good_plugin();
	snprintf(path, sizeof(path), "%s/state", dir);
	chmod(path, 0777);
	expect_problem("state_dir = state\n", 2, "writable by everyone");
}

/* 1.8 */
Test(configtest, state_dir_of_another_uid)
{
	char path[128];

	if (geteuid() != 0)
		cr_skip_test("needs root to give the directory away");
	add_good_plugin();
	snprintf(path, sizeof(path), "%s/state", dir);
	cr_assert(chown(path, 65534, 65534) == 0);
	expect_problem("state_dir = state\n", 2, "owned by uid 65534");
}

/* 1.9 */
Test(configtest, state_dir_cannot_be_made)
{
	add_good_plugin();
	expect_problem("\nstate_dir = nowhere/state\n", 3,
	    "does not exist and cannot be made in nowhere");
}
