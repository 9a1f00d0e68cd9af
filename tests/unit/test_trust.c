/*
 * test_trust.c - which directories code may be loaded from: every
 * directory on the path owned by root or us and not writable by others
 * unless sticky, links followed only when root or we own them, the last
 * directory held to the stricter rule.  Runs as root in /tmp (sticky,
 * root's), like CI.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include "core/trust.h"
#include "fixture.h"

static char tmp[128];

static void
setup(void)
{
	fixture_mkdtemp(tmp, sizeof(tmp), "trust");
}

static void
teardown(void)
{
	fixture_rmtree(tmp);
}

TestSuite(trust, .init = setup, .fini = teardown);

/* Make tmp/rel with mode; returns its path in a static buffer. */
static const char *
dir_at(const char *rel, mode_t mode)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	cr_assert_eq(mkdir(path, 0700), 0, "%s", path);
	cr_assert_eq(chmod(path, mode), 0);
	return path;
}

/* trust_open_dir(tmp/rel); returns 0 or -1 with the reason in err. */
static int
open_rel(const char *rel, int insecure, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat a, b;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	if ((fd = trust_open_dir(path, "plugin_dir", insecure, err,
	    errlen)) < 0)
		return -1;
	/* The descriptor is the directory the path leads to. */
	cr_assert_eq(fstat(fd, &a), 0);
	cr_assert_eq(stat(path, &b), 0);
	cr_assert(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	close(fd);
	return 0;
}

Test(trust, a_safe_path_opens)
{
	char err[512];

	dir_at("p", 0755);
	cr_assert_eq(open_rel("p", 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(open_rel("./p/../p", 0, err, sizeof(err)), 0, "%s", err);
}

Test(trust, a_world_writable_parent_is_refused)
{
	char err[512];

	dir_at("open", 0777);
	dir_at("open/p", 0755);
	cr_assert_eq(open_rel("open/p", 0, err, sizeof(err)), -1);
	cr_assert(strstr(err, "writable by other users and not sticky") &&
	    strstr(err, "/open"), "%s", err);
	/* allow_insecure_plugins: the walk, without the rules. */
	cr_assert_eq(open_rel("open/p", 1, err, sizeof(err)), 0, "%s", err);
}

Test(trust, a_sticky_parent_is_accepted)
{
	char err[512];

	dir_at("sticky", 01777);
	dir_at("sticky/p", 0755);
	cr_assert_eq(open_rel("sticky/p", 0, err, sizeof(err)), 0, "%s", err);
}

Test(trust, the_directory_itself_may_not_be_open_even_if_sticky)
{
	char err[512];

	dir_at("p", 01777);
	cr_assert_eq(open_rel("p", 0, err, sizeof(err)), -1);
	cr_assert(strstr(err, "writable by other users"), "%s", err);
}

Test(trust, a_parent_owned_by_another_user_is_refused)
{
	char err[512];

	cr_assert_eq(chown(dir_at("theirs", 0755), 4242, 4242), 0);
	dir_at("theirs/p", 0755);
	cr_assert_eq(open_rel("theirs/p", 0, err, sizeof(err)), -1);
	cr_assert(strstr(err, "owned by uid 4242"), "%s", err);
}

Test(trust, links_are_followed_only_when_ours)
{
	char link[PATH_MAX], target[PATH_MAX], err[512];

	snprintf(target, sizeof(target), "%s", dir_at("real", 0755));
	snprintf(link, sizeof(link), "%s/link", tmp);
	cr_assert_eq(symlink(target, link), 0);
	cr_assert_eq(open_rel("link", 0, err, sizeof(err)), 0, "%s", err);
	/* A relative link too. */
	snprintf(link, sizeof(link), "%s/rel", tmp);
	cr_assert_eq(symlink("real", link), 0);
	cr_assert_eq(open_rel("rel", 0, err, sizeof(err)), 0, "%s", err);
	/* A link someone else owns (in a sticky /tmp, they could have made
	 * it) is not followed. */
	cr_assert_eq(lchown(link, 4242, 4242), 0);
	cr_assert_eq(open_rel("rel", 0, err, sizeof(err)), -1);
	cr_assert(strstr(err, "symbolic link") && strstr(err, "4242"), "%s",
	    err);
}

Test(trust, a_link_into_an_unsafe_directory_is_refused)
{
	char link[PATH_MAX], target[PATH_MAX], err[512];

	dir_at("open", 0777);
	snprintf(target, sizeof(target), "%s", dir_at("open/p", 0755));
	snprintf(link, sizeof(link), "%s/link", tmp);
	cr_assert_eq(symlink(target, link), 0);
	cr_assert_eq(open_rel("link", 0, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not sticky"), "%s", err);
}

Test(trust, a_file_is_not_a_directory)
{
	char path[PATH_MAX], err[512];
	int fd;

	snprintf(path, sizeof(path), "%s/f", tmp);
	cr_assert((fd = open(path, O_WRONLY | O_CREAT, 0644)) >= 0);
	close(fd);
	cr_assert_eq(open_rel("f", 0, err, sizeof(err)), -1);
	cr_assert_eq(open_rel("missing", 0, err, sizeof(err)), -1);
	cr_assert(strstr(err, "No such file"), "%s", err);
}
