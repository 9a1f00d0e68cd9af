/*
 * trust.c - ownership and mode rules for what code is loaded from, and a
 * directory walk that cannot be led astray by a swapped symbolic link.
 *
 * It answers "may we", never "can we": reading a file is loader.c's.
 */
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Like the kernel's limit on symbolic links in one lookup. */
#define MAX_LINKS 40

static int
owner_ok(const struct stat *st)
{
	return st->st_uid == 0 || st->st_uid == geteuid();
}

/* Writable by someone who is neither root nor the daemon's user. */
static int
others_write(const struct stat *st)
{
	return (st->st_mode & S_IWOTH) || ((st->st_mode & S_IWGRP) &&
	    st->st_gid != 0 && st->st_gid != getegid());
}

int
trust_check(const struct stat *st, const char *what, char *err,
    size_t errlen)
{
	if (!owner_ok(st)) {
		snprintf(err, errlen, "%s is owned by uid %u, neither "
		    "root nor the daemon's user (allow_insecure_plugins = true "
		    "to load it anyway, for development only)", what,
		    (unsigned)st->st_uid);
		return -1;
	}
	if (others_write(st)) {
		snprintf(err, errlen, "%s is writable by other users "
		    "(mode %04o; allow_insecure_plugins = true to load it "
		    "anyway, for development only)", what,
		    (unsigned)(st->st_mode & 07777));
		return -1;
	}
	return 0;
}

/* The rule for each directory on the way: owned by root or us, and not
 * writable by others unless sticky (then others cannot rename or remove
 * what they do not own). */
static int
check_ancestor(const struct stat *st, const char *dir, const char *what,
    char *err, size_t errlen)
{
	if (!S_ISDIR(st->st_mode)) {
		snprintf(err, errlen, "%s: %s is not a directory", what, dir);
		return -1;
	}
	if (!owner_ok(st)) {
		snprintf(err, errlen, "%s: directory %s on its path is owned "
		    "by uid %u, neither root nor the daemon's user (who could "
		    "replace what is below it)", what, dir,
		    (unsigned)st->st_uid);
		return -1;
	}
	if (others_write(st) && !(st->st_mode & S_ISVTX)) {
		snprintf(err, errlen, "%s: directory %s on its path is "
		    "writable by other users and not sticky (mode %04o): they "
		    "could replace what is below it", what, dir,
		    (unsigned)(st->st_mode & 07777));
		return -1;
	}
	return 0;
}

/* Open and check `name` in dirfd (or "/" when dirfd < 0) as the next
 * directory of the walk; `shown` is its path for messages.  Returns an
 * O_PATH descriptor or -1. */
static int
step(int dirfd, const char *name, const char *shown, int insecure,
    const char *what, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	if (dirfd < 0)
		fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	else
		fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0) {
		/* ELOOP: it became a symbolic link since we looked. */
		snprintf(err, errlen, "%s: cannot open %s: %s", what, shown,
		    errno == ELOOP ? "it changed while being checked" :
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: cannot stat %s: %s", what, shown,
		    strerror(errno));
		close(fd);
		return -1;
	}
	/* O_DIRECTORY made sure it is one. */
	if (!insecure && check_ancestor(&st, shown, what, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Drop the last component of the absolute path `shown`. */
static void
shown_up(char *shown)
{
	char *slash = strrchr(shown, '/');

	if (slash != NULL && slash != shown)
		*slash = '\0';
	else
		snprintf(shown, 2, "/");
}

int
trust_open_dir(const char *path, const char *what, int insecure, char *err,
    size_t errlen)
{
	char rest[PATH_MAX * 2], tmp[PATH_MAX * 2], shown[PATH_MAX * 2];
	char comp[NAME_MAX + 1], target[PATH_MAX];
	struct stat st;
	const char *p;
	int fd, nfd, links = 0;

	if (path[0] == '/') {
		snprintf(rest, sizeof(rest), "%s", path);
	} else {
		char cwd[PATH_MAX];

		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			snprintf(err, errlen, "%s: getcwd: %s", what,
			    strerror(errno));
			return -1;
		}
		snprintf(rest, sizeof(rest), "%s/%s", cwd, path);
	}
	snprintf(shown, sizeof(shown), "/");
	if ((fd = step(-1, "/", "/", insecure, what, err, errlen)) < 0)
		return -1;
	p = rest;
	for (;;) {
		size_t n;
		ssize_t len;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		n = strcspn(p, "/");
		if (n > NAME_MAX) {
			snprintf(err, errlen, "%s: a component of %s is too "
			    "long", what, path);
			goto fail;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n;
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			shown_up(shown);
			if ((nfd = step(fd, "..", shown, insecure, what, err,
			    errlen)) < 0)
				goto fail;
			close(fd);
			fd = nfd;
			continue;
		}
		if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			snprintf(err, errlen, "%s: %s%s%s: %s", what, shown,
			    strcmp(shown, "/") ? "/" : "", comp,
			    strerror(errno));
			goto fail;
		}
		if (S_ISLNK(st.st_mode)) {
			/* Followed by hand, so that the directory holding the
			 * link has been checked and its owner can be. */
			if (++links > MAX_LINKS) {
				snprintf(err, errlen, "%s: too many symbolic "
				    "links in %s", what, path);
				goto fail;
			}
			if (!insecure && !owner_ok(&st)) {
				snprintf(err, errlen, "%s: symbolic link %s/%s "
				    "is owned by uid %u, neither root nor the "
				    "daemon's user", what, strcmp(shown, "/") ?
				    shown : "", comp, (unsigned)st.st_uid);
				goto fail;
			}
			if ((len = readlinkat(fd, comp, target,
			    sizeof(target) - 1)) < 0) {
				snprintf(err, errlen, "%s: readlink %s/%s: %s",
				    what, shown, comp, strerror(errno));
				goto fail;
			}
			target[len] = '\0';
			snprintf(tmp, sizeof(tmp), "%s/%s", target, p);
			snprintf(rest, sizeof(rest), "%s", tmp);
			p = rest;
			if (target[0] == '/') {
				close(fd);
				snprintf(shown, sizeof(shown), "/");
				if ((fd = step(-1, "/", "/", insecure, what,
				    err, errlen)) < 0)
					return -1;
			}
			continue;
		}
		if (strcmp(shown, "/") != 0)
			strncat(shown, "/", sizeof(shown) - strlen(shown) - 1);
		strncat(shown, comp, sizeof(shown) - strlen(shown) - 1);
		if ((nfd = step(fd, comp, shown, insecure, what, err,
		    errlen)) < 0)
			goto fail;
		close(fd);
		fd = nfd;
	}
	if (!insecure) {
		char who[PATH_MAX * 2 + 64];

		snprintf(who, sizeof(who), "%s %s", what, shown);
		if (fstat(fd, &st) < 0 || trust_check(&st, who, err,
		    errlen) < 0)
			goto fail;
	}
	if ((nfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "%s: cannot open %s: %s", what, shown,
		    strerror(errno));
		goto fail;
	}
	close(fd);
	return nfd;
fail:
	close(fd);
	return -1;
}
