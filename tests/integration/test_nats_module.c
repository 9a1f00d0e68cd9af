/*
 * test_nats_module.c - libnats is linked into cmdhost-nats.so alone: the
 * built cmdhost and cmdhostd carry no NEEDED entry for it (readelf -d),
 * the module does and exports both versioned tables, and cmdhost --nats
 * finds the module where core/module.c says -- or, when it is absent,
 * names every path it tried and exits 3.
 */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "nats_api.h"
#include "nats_harness.h"

#define CLI CMDHOST_BUILD_DIR "/cmdhost"
#define MODULE CMDHOST_BUILD_DIR "/lib/" NATS_MODULE_FILE
#define RUN_TIMEOUT_MS 30000
/* Nothing listens there: a loaded module fails to connect, fast. */
#define DEAD_URL "nats://127.0.0.1:1"
/* Does string s start with the literal lit? */
#define STARTS(s, lit) (strncmp((s), (lit), sizeof(lit) - 1) == 0)

static char tmp[64];            /* the test's scratch dir, or "" */
static struct natsd *srv;

static void
fini(void)
{
	char *argv[] = { (char *)"/bin/rm", (char *)"-rf", tmp, NULL };
	int st;

	if (tmp[0] != '\0')
		run_command(argv, NULL, RUN_TIMEOUT_MS, &st, NULL, NULL);
	tmp[0] = '\0';
	natsd_free(srv);
	srv = NULL;
}

TestSuite(nats_module, .fini = fini);

/* Make tmp, a fresh 0755 scratch dir, or fail the test. */
static void
make_tmp(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/cmdhost-natsmod.XXXXXX");
	cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
	cr_assert_eq(chmod(tmp, 0755), 0);
}

/* Copy file `from` to `to` with mode 0755 (mkdir -p its dir), or fail
 * the test. */
static void
install_file(const char *from, const char *to)
{
	char dir[512], *slash;
	char *mk[] = { (char *)"/bin/mkdir", (char *)"-p", dir, NULL };
	char *cp[] = { (char *)"/bin/cp", (char *)from, (char *)to, NULL };
	int st = -1;

	snprintf(dir, sizeof(dir), "%s", to);
	cr_assert_not_null(slash = strrchr(dir, '/'));
	*slash = '\0';
	cr_assert_eq(run_command(mk, NULL, RUN_TIMEOUT_MS, &st, NULL, NULL),
	    0);
	cr_assert_eq(st, 0, "mkdir -p %s", dir);
	cr_assert_eq(run_command(cp, NULL, RUN_TIMEOUT_MS, &st, NULL, NULL),
	    0);
	cr_assert_eq(st, 0, "cp %s %s", from, to);
	cr_assert_eq(chmod(to, 0755), 0);
}

/*
 * readelf -d `file`: returns 1 if a NEEDED entry names libnats, 0 if none
 * does; fails the test if readelf does not run or lists no NEEDED at all
 * (then the output could not be read as we expect).
 */
static int
needs_libnats(const char *file)
{
	char *argv[] = { (char *)"/usr/bin/readelf", (char *)"-d",
	    (char *)file, NULL };
	char *out = NULL, *line, *save = NULL;
	int st = -1, needed = 0, nats = 0;

	cr_assert_eq(run_command(argv, NULL, RUN_TIMEOUT_MS, &st, &out, NULL),
	    0, "cannot run readelf");
	cr_assert_eq(st, 0, "readelf -d %s failed", file);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, "(NEEDED)") == NULL)
			continue;
		needed++;
		if (strstr(line, "[libnats") != NULL)
			nats = 1;
	}
	free(out);
	cr_assert_gt(needed, 0, "readelf -d %s shows no NEEDED entry", file);
	return nats;
}

Test(nats_module, only_the_module_links_libnats)
{
	cr_assert_eq(needs_libnats(CLI), 0, CLI " links libnats");
	cr_assert_eq(needs_libnats(CMDHOST_BUILD_DIR "/cmdhostd"), 0,
	    "cmdhostd links libnats");
	cr_assert_eq(needs_libnats(MODULE), 1, MODULE " does not link "
	    "libnats");
}

Test(nats_module, module_exports_both_versioned_tables)
{
	void *h;
	const struct nats_module *m;
	const struct nats_cli *c;

	/* Under SANITIZE=thread the test itself is not instrumented and
	 * cannot load an instrumented module (libtsan needs static TLS);
	 * the daemon and the CLI that load it are tested beside. */
	if (strcmp(CMDHOST_SANITIZE, "thread") == 0)
		cr_skip_test("an uninstrumented test cannot dlopen the TSan "
		    "build of the module");
	h = dlopen(MODULE, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(h, "%s", dlerror());
	m = dlsym(h, NATS_MODULE_SYMBOL);
	c = dlsym(h, NATS_CLI_SYMBOL);
	cr_assert_not_null(m, "no %s", NATS_MODULE_SYMBOL);
	cr_assert_not_null(c, "no %s", NATS_CLI_SYMBOL);
	cr_assert_eq(m->size, sizeof(*m));
	cr_assert_eq(m->version, NATS_API_VERSION);
	cr_assert_eq(c->size, sizeof(*c));
	cr_assert_eq(c->version, NATS_API_VERSION);
	cr_assert(c->request != NULL && c->discover != NULL &&
	    c->publish != NULL);
	/* Mapped until exit, as cmdhost and cmdhostd keep it: libnats may
	 * hold threads of its own. */
}

/* Run `cli` --nats url list; returns the exit status, *out / *err new
 * strings (free them). */
static int
nats_list(const char *cli, const char *url, char **out, char **err)
{
	char *argv[] = { (char *)cli, (char *)"--nats", (char *)url,
	    (char *)"list", NULL };
	int st = -1;

	cr_assert_eq(run_command(argv, NULL, RUN_TIMEOUT_MS, &st, out, err),
	    0, "could not run %s", cli);
	cr_assert_not_null(*out);
	cr_assert_not_null(*err);
	return st;
}

Test(nats_module, named_module_absent_exits_3)
{
	char path[128], *out = NULL, *err = NULL;

	make_tmp();
	snprintf(path, sizeof(path), "%s/" NATS_MODULE_FILE, tmp);
	cr_assert_eq(setenv("CMDHOST_NATS_MODULE", path, 1), 0);
	cr_assert_eq(nats_list(CLI, DEAD_URL, &out, &err), 3, "%s", err);
	cr_assert_str_eq(out, "");
	cr_assert(STARTS(err, "cmdhost: --nats needs the NATS module, which "
	    "cannot be loaded ("), "%s", err);
	cr_assert_not_null(strstr(err, path), "%s", err);
	/* The one path named is the only one tried. */
	cr_assert_null(strstr(err, "/lib/cmdhost/"), "%s", err);
	free(out);
	free(err);
}

Test(nats_module, copied_cli_without_lib_names_every_path)
{
	char cli[128], want[256], *out = NULL, *err = NULL;

	if (access(CMDHOST_LIBDIR "/" NATS_MODULE_FILE, F_OK) == 0)
		cr_skip_test("a module is installed in " CMDHOST_LIBDIR);
	make_tmp();
	snprintf(cli, sizeof(cli), "%s/bin/cmdhost", tmp);
	install_file(CLI, cli);
	cr_assert_eq(unsetenv("CMDHOST_NATS_MODULE"), 0);
	cr_assert_eq(nats_list(cli, DEAD_URL, &out, &err), 3, "%s", err);
	cr_assert_str_eq(out, "");
	cr_assert_not_null(strstr(err, "--nats needs the NATS module"), "%s",
	    err);
	snprintf(want, sizeof(want), "(%s/bin/lib/" NATS_MODULE_FILE ": ",
	    tmp);
	cr_assert_not_null(strstr(err, want), "want %s in: %s", want, err);
	snprintf(want, sizeof(want), "; %s/bin/../lib/cmdhost/"
	    NATS_MODULE_FILE ": ", tmp);
	cr_assert_not_null(strstr(err, want), "want %s in: %s", want, err);
	cr_assert_not_null(strstr(err, "; " CMDHOST_LIBDIR "/"
	    NATS_MODULE_FILE ": "), "%s", err);
	cr_assert_not_null(strstr(err, "CMDHOST_NATS_MODULE"), "%s", err);
	free(out);
	free(err);
}

/* PREFIX/bin/cmdhost finds PREFIX/lib/cmdhost/cmdhost-nats.so, as make
 * install lays them out, and lists the daemons of a live server. */
Test(nats_module, installed_layout_finds_the_module)
{
	char cli[128], mod[128], *out = NULL, *err = NULL;

	cr_assert_not_null(srv = natsd_start(), "nats-server did not start");
	make_tmp();
	snprintf(cli, sizeof(cli), "%s/bin/cmdhost", tmp);
	snprintf(mod, sizeof(mod), "%s/lib/cmdhost/" NATS_MODULE_FILE, tmp);
	install_file(CLI, cli);
	install_file(MODULE, mod);
	cr_assert_eq(unsetenv("CMDHOST_NATS_MODULE"), 0);
	cr_assert_eq(nats_list(cli, natsd_url(srv), &out, &err), 0, "%s",
	    err);
	cr_assert_not_null(strstr(out, "0 daemons on "), "%s", out);
	free(out);
	free(err);
	/* Loaded and running: with no server it is cnats that fails. */
	cr_assert_eq(nats_list(cli, DEAD_URL, &out, &err), 3, "%s", err);
	cr_assert(STARTS(err, "cmdhost: cannot connect to NATS at " DEAD_URL),
	    "%s", err);
	free(out);
	free(err);
}
