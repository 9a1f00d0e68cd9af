/*
 * listener.c - the listening Unix socket: take the one systemd passed,
 * or bind one: never steal a live daemon's, replace a stale one, create
 * it with exactly its mode.  Nothing here logs but the stale socket.
 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"

/* sd_listen_fds(3): passed descriptors start here. */
#define LISTEN_FDS_START 3

/* Is a daemon accepting on path?  1 yes, 0 no (stale or absent). */
static int
socket_is_live(const char *path)
{
	struct sockaddr_un sa;
	int fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc == 0 || errno == EAGAIN;
}

/* Is fd a listening Unix stream socket?  Fills path with its name. */
static int
is_unix_listener(int fd, char *path, size_t pathlen)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int type = 0, acc = 0;
	socklen_t tl = sizeof(type), al = sizeof(acc);

	memset(&sa, 0, sizeof(sa));
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
	    type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 ||
	    !acc || getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
	    sa.sun_family != AF_UNIX)
		return 0;
	if (len > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0])
		snprintf(path, pathlen, "%.*s", (int)sizeof(sa.sun_path),
		    sa.sun_path);
	else
		path[0] = '\0';
	return 1;
}

/* The n-th (0-based) name of LISTEN_FDNAMES (borrowed names, ':'
 * separated) into out; "" when there is none. */
static void
fd_name(const char *names, int n, char *out, size_t outlen)
{
	const char *p = names, *end;

	out[0] = '\0';
	for (int i = 0; p != NULL && i < n; i++)
		p = (p = strchr(p, ':')) != NULL ? p + 1 : NULL;
	if (p == NULL)
		return;
	end = strchr(p, ':');
	snprintf(out, outlen, "%.*s", (int)(end ? (size_t)(end - p) :
	    strlen(p)), p);
}

/* Socket activation: 1 taken, 0 none passed, -1 error (in err). */
static int
take_passed(struct listener *l, char *err, size_t errlen)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	char name[64], path[sizeof(l->path)];
	int n, pick = -1, named = -1;

	if (pid == NULL || fds == NULL ||
	    strtoll(pid, NULL, 10) != (long long)getpid())
		return 0;
	n = atoi(fds);
	for (int i = 0; i < n; i++) {
		int fd = LISTEN_FDS_START + i;

		fd_name(names, i, name, sizeof(name));
		if (!is_unix_listener(fd, path, sizeof(path)))
			continue;
		if (pick < 0)
			pick = fd;
		if (named < 0 && strcmp(name, "cmdhost") == 0)
			named = fd;
	}
	if (named >= 0)
		pick = named;
	/* The others would only hold a port open: close them. */
	for (int i = 0; i < n; i++)
		if (LISTEN_FDS_START + i != pick)
			close(LISTEN_FDS_START + i);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (pick < 0) {
		snprintf(err, errlen, "socket activation: none of the %d "
		    "socket(s) systemd passed (LISTEN_FDS) is a listening Unix "
		    "stream socket", n);
		return -1;
	}
	if (fcntl(pick, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(pick, F_SETFL, fcntl(pick, F_GETFL) | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "socket activation: fcntl: %s",
		    strerror(errno));
		close(pick);
		return -1;
	}
	is_unix_listener(pick, l->path, sizeof(l->path));
	l->fd = pick;
	l->activated = 1;
	l->listening = 1;
	return 1;
}

int
listener_open(struct listener *l, const char *path, mode_t mode,
    char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct stat st;
	mode_t old_mask;
	int fd, rc;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	if ((rc = take_passed(l, err, errlen)) != 0)
		return rc < 0 ? -1 : 0;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket; "
			    "not touching it", path);
			return -1;
		}
		if (socket_is_live(path)) {
			snprintf(err, errlen, "another daemon is serving on %s",
			    path);
			return -1;
		}
		if (unlink(path) < 0) {
			snprintf(err, errlen, "cannot remove stale socket %s: %s",
			    path, strerror(errno));
			return -1;
		}
		log_info("removed stale socket %s", path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	/* The file is created with exactly socket_mode: never wider. */
	old_mask = umask(~mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (rc < 0) {
		snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(path, mode) < 0 || stat(path, &st) < 0) {
		snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	l->fd = fd;
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	snprintf(l->path, sizeof(l->path), "%s", path);
	return 0;
}

int
listener_listen(struct listener *l, char *err, size_t errlen)
{
	if (l->listening)
		return 0;
	if (listen(l->fd, 4096) < 0) {
		snprintf(err, errlen, "listen %s: %s", l->path,
		    strerror(errno));
		return -1;
	}
	l->listening = 1;
	return 0;
}

void
listener_close(struct listener *l)
{
	struct stat st;

	if (l->fd < 0)
		return;
	close(l->fd);
	l->fd = -1;
	if (l->activated)
		return;
	/* Remove the file only if it is still the one we bound. */
	if (stat(l->path, &st) == 0 && st.st_dev == l->dev &&
	    st.st_ino == l->ino)
		unlink(l->path);
}
