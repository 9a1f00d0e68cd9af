/*
 * harness_files.c - files in and around a daemon's temp dir: find a built
 * plugin, install, overwrite or remove one in its plugins/ dir, and read,
 * write, copy and remove files and trees.  Nothing asserts.
 */
#include "harness_priv.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CMDHOST_BUILD_DIR
#error "CMDHOST_BUILD_DIR must be defined (the Makefile does it)"
#endif

/* buf = a "/" b.  Returns 0, or -1 if it does not fit. */
int
harness_path_join(char *buf, size_t size, const char *a, const char *b)
{
	int n = snprintf(buf, size, "%s/%s", a, b);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void
harness_rm_tree(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Read a whole file.  Returns a new string (free it) or NULL. */
char *
harness_read_text(const char *path)
{
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	if (buf == NULL && (buf = malloc(1)) == NULL)
		return NULL;
	buf[len] = '\0';
	return buf;
}

void *
harness_read_bytes(const char *path, size_t *len)
{
	char *buf = NULL, *nb;
	size_t cap = 0;
	ssize_t n;
	int fd;

	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	for (;;) {
		if (cap - *len < 4096) {
			if ((nb = realloc(buf, cap + 65536)) == NULL)
				goto fail;
			buf = nb;
			cap += 65536;
		}
		n = read(fd, buf + *len, cap - *len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	close(fd);
	return buf;
fail:
	close(fd);
	free(buf);
	*len = 0;
	return NULL;
}

char *
harness_file_text(const char *dir, const char *name)
{
	char path[512], *t;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((t = harness_read_text(path)) == NULL)
		return strdup("");
	return t;
}

int
harness_count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

int
harness_write_text(const char *path, const char *text)
{
	FILE *f;
	int rc = 0;

	if ((f = fopen(path, "w")) == NULL)
		return -1;
	if (fputs(text, f) == EOF)
		rc = -1;
	if (fclose(f) == EOF)
		rc = -1;
	return rc;
}

/* Write all of buf to fd.  Returns 0 or -1. */
static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
harness_copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in, out, rc = -1;
	ssize_t n;

	if ((in = open(from, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (out == -1)
		goto done;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			goto done;
	if (n == 0)
		rc = 0;
done:
	if (out != -1 && close(out) == -1)
		rc = -1;
	close(in);
	return rc;
}

/* Find a plugin file by the rules of daemon_opts.plugins. */
int
harness_plugin_path(const char *name, char *path, size_t size)
{
	static const char *const dirs[] = { "tests/plugins", "plugins" };
	const char *ext;
	size_t i;
	int n;

	ext = strlen(name) > 3 && strcmp(name + strlen(name) - 3, ".so") == 0
	    ? "" : ".so";
	if (strchr(name, '/') != NULL) {
		n = snprintf(path, size, "%s/%s%s", CMDHOST_BUILD_DIR, name,
		    ext);
		return n < 0 || (size_t)n >= size ? -1 : access(path, R_OK);
	}
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		n = snprintf(path, size, "%s/%s/%s%s", CMDHOST_BUILD_DIR,
		    dirs[i], name, ext);
		if (n >= 0 && (size_t)n < size && access(path, R_OK) == 0)
			return 0;
	}
	return -1;
}

int
daemon_install_plugin(struct daemon *d, const char *name, const char *as)
{
	char from[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX], to[PATH_MAX];
	const char *base;
	int n;

	if (harness_plugin_path(name, from, sizeof(from)) == -1)
		return -1;
	base = as != NULL ? as : strrchr(from, '/') + 1;
	if (harness_path_join(dir, sizeof(dir), daemon_dir(d), "plugins")
	    == -1 ||
	    harness_path_join(to, sizeof(to), dir, base) == -1)
		return -1;
	n = snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, base);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	if (harness_copy_file(from, tmp) == -1 || rename(tmp, to) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
daemon_write_plugin(struct daemon *d, const char *as, const void *buf,
    size_t len, enum plugin_write how)
{
	char dir[PATH_MAX], tmp[PATH_MAX], to[PATH_MAX];
	int fd, rc, n;

	if (harness_path_join(dir, sizeof(dir), daemon_dir(d), "plugins")
	    == -1 ||
	    harness_path_join(to, sizeof(to), dir, as) == -1)
		return -1;
	if (how == PLUGIN_IN_PLACE) {
		fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
		if (fd == -1)
			return -1;
		rc = write_all(fd, buf, len);
		if (close(fd) == -1)
			rc = -1;
		return rc;
	}
	n = snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, as);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (fd == -1)
		return -1;
	rc = write_all(fd, buf, len);
	if (close(fd) == -1)
		rc = -1;
	if (rc == -1 || rename(tmp, to) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
daemon_overwrite_plugin(struct daemon *d, const char *name, const char *as)
{
	char from[PATH_MAX];
	void *buf;
	size_t len;
	int rc;

	if (harness_plugin_path(name, from, sizeof(from)) == -1 ||
	    (buf = harness_read_bytes(from, &len)) == NULL)
		return -1;
	rc = daemon_write_plugin(d, as, buf, len, PLUGIN_IN_PLACE);
	free(buf);
	return rc;
}

int
daemon_remove_plugin(struct daemon *d, const char *as)
{
	char dir[PATH_MAX], path[PATH_MAX];

	if (harness_path_join(dir, sizeof(dir), daemon_dir(d), "plugins")
	    == -1 ||
	    harness_path_join(path, sizeof(path), dir, as) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return unlink(path);
}
