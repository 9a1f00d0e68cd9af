/*
 * test_module.c - unit tests of module.c, the one search for cmdhost's
 * modules that cmdhostd and cmdhost share: a given path is the only one
 * tried, without one the build-tree, installed and CMDHOST_LIBDIR places
 * are tried in that order, and every path tried is named in err.
 */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "module.h"

#define NO_FILE "cmdhost-no-such-module.so"

/* The directory of this test's executable, as module.c sees it. */
static void
exe_dir(char *dir, size_t size)
{
	ssize_t len = readlink("/proc/self/exe", dir, size - 1);
	char *slash;

	cr_assert_gt(len, 0);
	dir[len] = '\0';
	cr_assert((slash = strrchr(dir, '/')) != NULL);
	*slash = '\0';
}

Test(module, given_path_is_the_only_one_tried)
{
	char err[1024];

	cr_assert_null(module_open("/nonexistent/x.so", NO_FILE, err,
	    sizeof(err)));
	cr_assert(strstr(err, "/nonexistent/x.so: ") == err, "%s", err);
	cr_assert_null(strstr(err, ";"), "%s", err);
	cr_assert_null(strstr(err, NO_FILE), "%s", err);
}

Test(module, search_order_names_every_path)
{
	char dir[PATH_MAX], want[PATH_MAX + 64], err[8192];
	const char *a, *b, *c;

	exe_dir(dir, sizeof(dir));
	cr_assert_null(module_open(NULL, NO_FILE, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s/lib/" NO_FILE ": ", dir);
	a = strstr(err, want);
	cr_assert(a == err, "want %s first in: %s", want, err);
	snprintf(want, sizeof(want), "; %s/../lib/cmdhost/" NO_FILE ": ", dir);
	b = strstr(err, want);
	cr_assert(b != NULL, "want %s in: %s", want, err);
	/* Third and last: the PREFIX the build is for. */
	c = strstr(b + 2, "; ");
	cr_assert(c != NULL && strncmp(c, "; " CMDHOST_LIBDIR "/" NO_FILE
	    ": ", strlen(CMDHOST_LIBDIR) + sizeof(NO_FILE) + 4) == 0,
	    "want " CMDHOST_LIBDIR " third in: %s", err);
	cr_assert_null(strstr(c + 2, "; "), "more than three in: %s", err);
}

Test(module, loads_and_names_a_bad_file)
{
	char err[1024];
	void *h;

	h = module_open(CMDHOST_BUILD_DIR "/tests/plugins/good.so", NO_FILE,
	    err, sizeof(err));
	cr_assert_not_null(h, "%s", err);
	dlclose(h);
	/* Not a shared object: dlopen's reason, still with the path. */
	cr_assert_null(module_open(CMDHOST_SOURCE_DIR "/Makefile", NO_FILE,
	    err, sizeof(err)));
	cr_assert(strstr(err, CMDHOST_SOURCE_DIR "/Makefile: ") == err, "%s",
	    err);
}

Test(module, small_err_buffer_is_cut_not_overrun)
{
	char err[16 + 1];

	memset(err, 'x', sizeof(err));
	cr_assert_null(module_open(NULL, NO_FILE, err, sizeof(err) - 1));
	cr_assert_eq(strlen(err), sizeof(err) - 2);
	cr_assert_eq(err[sizeof(err) - 1], 'x');
}
