/*
 * harness_client.c - the client side of the daemon's socket: connect,
 * send a line or raw bytes, read one reply line, call (send and parse the
 * reply), and call as another uid from a forked child.  Nothing asserts.
 */
#include "harness_priv.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
harness_try_connect(const char *sock)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
client_connect(const char *sock)
{
	struct timeval tv = { HARNESS_RECV_TIMEOUT_MS / 1000,
	    (HARNESS_RECV_TIMEOUT_MS % 1000) * 1000 };
	int fd;

	if ((fd = harness_try_connect(sock)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

int
client_send_raw(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
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
client_send(int fd, const char *line)
{
	size_t n = strlen(line);

	if (client_send_raw(fd, line, n) == -1)
		return -1;
	if (n == 0 || line[n - 1] != '\n')
		return client_send_raw(fd, "\n", 1);
	return 0;
}

char *
client_recv_line(int fd)
{
	char peek[8192], *line = NULL, *nl, *nb;
	size_t len = 0, take;
	ssize_t n;

	for (;;) {
		n = recv(fd, peek, sizeof(peek), MSG_PEEK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* Consume up to the newline only, so the next line stays in
		 * the socket for the next call. */
		nl = memchr(peek, '\n', (size_t)n);
		take = nl != NULL ? (size_t)(nl - peek) + 1 : (size_t)n;
		if ((nb = realloc(line, len + take + 1)) == NULL)
			break;
		line = nb;
		n = recv(fd, line + len, take, 0);
		if (n != (ssize_t)take)
			break;
		len += take;
		line[len] = '\0';
		if (nl != NULL) {
			line[len - 1] = '\0';
			return line;
		}
	}
	free(line);
	return NULL;
}

int
client_wait_eof(int fd, int timeout_ms)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	char c;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

json_object *
client_call(int fd, const char *line)
{
	json_object *j;
	char *reply;

	if (client_send(fd, line) == -1)
		return NULL;
	if ((reply = client_recv_line(fd)) == NULL)
		return NULL;
	j = json_tokener_parse(reply);
	free(reply);
	return j;
}

json_object *
client_call_once(const char *sock, const char *line)
{
	json_object *j;
	int fd;

	if ((fd = client_connect(sock)) == -1)
		return NULL;
	j = client_call(fd, line);
	close(fd);
	return j;
}

json_object *
client_call_as(uid_t uid, const char *sock, const char *line)
{
	int p[2], ws;
	char *buf = NULL;
	size_t len = 0;
	json_object *j = NULL;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		return NULL;
	if ((pid = fork()) == -1) {
		close(p[0]);
		close(p[1]);
		return NULL;
	}
	if (pid == 0) {
		char *reply;
		int fd;

		close(p[0]);
		if (setgroups(0, NULL) == -1 || setgid((gid_t)uid) == -1 ||
		    setuid(uid) == -1)
			_exit(2);
		if ((fd = client_connect(sock)) == -1)
			_exit(3);
		if (client_send(fd, line) == -1 ||
		    (reply = client_recv_line(fd)) == NULL)
			_exit(4);
		if (write(p[1], reply, strlen(reply)) !=
		    (ssize_t)strlen(reply))
			_exit(5);
		_exit(0);
	}
	close(p[1]);
	while (harness_slurp(p[0], &buf, &len) > 0)
		;
	close(p[0]);
	while (waitpid(pid, &ws, 0) == -1 && errno == EINTR)
		;
	if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && buf != NULL)
		j = json_tokener_parse(buf);
	else
		fprintf(stderr, "harness: client as uid %u failed (status "
		    "%d)\n", (unsigned)uid, harness_decode_status(ws));
	free(buf);
	return j;
}
