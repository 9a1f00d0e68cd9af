/*
 * fixture.h - fixtures shared by the unit tests: a temporary directory per
 * test (removed with all in it), counting a directory's entries, and an
 * asserting JSON member look-up.  Header-only (static inline functions)
 * because each unit test is built from its one source file; the helpers
 * fail the running test (cr_assert) instead of returning an error.
 */
#ifndef CMDHOST_TEST_FIXTURE_H
#define CMDHOST_TEST_FIXTURE_H

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <json-c/json.h>

/* nftw() callback: remove one entry of a temporary tree. */
static inline int
fixture_rm_entry(const char *p, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* Make a new directory "/tmp/cmdhost-test-NAME-XXXXXX" and put its path in
 * dir (size bytes).  Fails the test if it cannot. */
static inline void
fixture_mkdtemp(char *dir, size_t size, const char *name)
{
	snprintf(dir, size, "/tmp/cmdhost-test-%s-XXXXXX", name);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

/* Make the directory dir/sub (mode 0700) and put its path in out (size
 * bytes).  Fails the test if it cannot. */
static inline void
fixture_subdir(char *out, size_t size, const char *dir, const char *sub)
{
	snprintf(out, size, "%s/%s", dir, sub);
	cr_assert_eq(mkdir(out, 0700), 0);
}

/* Remove dir and everything in it.  Errors are ignored (it runs in a
 * suite's .fini, after the verdict). */
static inline void
fixture_rmtree(const char *dir)
{
	nftw(dir, fixture_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* The number of entries of dir, without "." and "..".  Fails the test if
 * dir cannot be opened. */
static inline int
fixture_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* The member `key` of o, asserted present and of type t.  Borrowed from o
 * (no reference taken). */
static inline struct json_object *
fixture_member(struct json_object *o, const char *key, enum json_type t)
{
	struct json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, key, &v), "no \"%s\" in %s",
	    key, json_object_to_json_string(o));
	cr_assert(json_object_is_type(v, t), "\"%s\" has the wrong type in %s",
	    key, json_object_to_json_string(o));
	return v;
}

/* The integer member `key` of o (fixture_member() with json_type_int). */
static inline int64_t
fixture_int(struct json_object *o, const char *key)
{
	return json_object_get_int64(fixture_member(o, key, json_type_int));
}

#endif /* CMDHOST_TEST_FIXTURE_H */
