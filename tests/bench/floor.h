/*
 * floor.h - the server shared by the benchmark floors: a one-thread epoll
 * server on a Unix socket that splits its input into lines and hands each
 * line to the floor's reply function.  It has no registry, validation,
 * executor or metrics; what a floor costs beyond this is its reply.  It is
 * header-only (static functions) because each bench program is built from
 * its one source file.
 */
#ifndef CMDHOST_BENCH_FLOOR_H
#define CMDHOST_BENCH_FLOOR_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FLOOR_IN_CAP	(64 * 1024)
#define FLOOR_OUT_HIGH	(4 * 1024 * 1024)	/* stop reading above this */

/* One client.  `in` holds bytes not yet split into lines, `out` reply bytes
 * not yet written; both owned, freed by floor_conn_free. */
struct floor_conn {
	int fd;
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_off, out_len, out_cap;
	unsigned events;	/* what epoll watches now */
};

/* Append the reply to one request line (len > 0 bytes, without its '\n'
 * or '\r'; borrowed for this call) to c with floor_append. */
typedef void floor_reply_fn(struct floor_conn *c, const char *line,
    size_t len);

/* The program name for messages, set by floor_run from argv[0]. */
static const char *floor_name = "floor";

/* Print "name: what: strerror(errno)" and exit(1).  A benchmark tool has
 * nothing better to do on failure. */
static void
floor_die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", floor_name, what, strerror(errno));
	exit(1);
}

/* Make room for n more bytes in c->out; exits on ENOMEM. */
static void
floor_reserve(struct floor_conn *c, size_t n)
{
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n <= c->out_cap)
		return;
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	while (c->out_len + n > c->out_cap)
		c->out_cap = c->out_cap ? c->out_cap * 2 : 64 * 1024;
	if ((c->out = realloc(c->out, c->out_cap)) == NULL)
		floor_die("realloc");
}

/* Append n bytes at p (copied) to c's pending replies; exits on ENOMEM. */
static void
floor_append(struct floor_conn *c, const void *p, size_t n)
{
	floor_reserve(c, n);
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

/* Stop watching c, close its fd and free it. */
static void
floor_conn_free(struct floor_conn *c, int ep)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* Write pending replies and choose what to wait for.  Returns -1 when the
 * connection failed (the caller frees it). */
static int
floor_conn_flush(struct floor_conn *c, int ep)
{
	struct epoll_event ev;
	ssize_t n;
	unsigned want;

	while (c->out_off < c->out_len) {
		n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			return -1;
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	want = c->out_len - c->out_off > FLOOR_OUT_HIGH ? 0 : EPOLLIN;
	if (c->out_len > c->out_off)
		want |= EPOLLOUT;
	if (want != c->events) {
		ev.events = want;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			return -1;
		c->events = want;
	}
	return 0;
}

/* Read what is there and pass every complete non-empty line to reply.
 * Returns -1 on EOF or error (the caller flushes and frees c). */
static int
floor_conn_read(struct floor_conn *c, floor_reply_fn *reply)
{
	char *line, *nl, *end;
	size_t room;
	ssize_t n;

	for (;;) {
		if (c->in_len == c->in_cap) {
			c->in_cap *= 2;
			if ((c->in = realloc(c->in, c->in_cap)) == NULL)
				floor_die("realloc");
		}
		room = c->in_cap - c->in_len;
		n = read(c->fd, c->in + c->in_len, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		c->in_len += (size_t)n;
		line = c->in;
		end = c->in + c->in_len;
		while ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
			size_t len = (size_t)(nl - line);

			if (len > 0 && line[len - 1] == '\r')
				len--;
			if (len > 0)
				reply(c, line, len);
			line = nl + 1;
		}
		c->in_len = (size_t)(end - line);
		if (c->in_len > 0 && line != c->in)
			memmove(c->in, line, c->in_len);
		if ((size_t)n < room)
			return 0;
	}
}

/* Bind and listen on path (replacing a stale file).  Returns the fd;
 * exits on failure. */
static int
floor_listen(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		floor_die(path);
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		floor_die("socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, 4096) < 0)
		floor_die(path);
	return fd;
}

/* Accept every pending client on lfd and watch it for input; exits on
 * failure. */
static void
floor_accept(int lfd, int ep)
{
	struct epoll_event ev;
	struct floor_conn *c;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if ((c = calloc(1, sizeof(*c))) == NULL ||
		    (c->in = malloc(FLOOR_IN_CAP)) == NULL)
			floor_die("malloc");
		c->fd = fd;
		c->in_cap = FLOOR_IN_CAP;
		c->events = EPOLLIN;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			floor_die("epoll_ctl");
	}
}

/* Parse "-s SOCKET" from argv, serve the socket, answering each request
 * line with reply, until SIGTERM or SIGINT; then remove the socket file.
 * Returns the exit status (2 on a usage error); exits on any other
 * failure. */
static int
floor_run(int argc, char **argv, floor_reply_fn *reply)
{
	struct epoll_event ev, evs[256];
	struct rlimit rl;
	const char *path = NULL, *slash;
	sigset_t mask;
	int ch, ep, lfd, sfd, n, running = 1;

	if (argc > 0) {
		slash = strrchr(argv[0], '/');
		floor_name = slash != NULL ? slash + 1 : argv[0];
	}
	while ((ch = getopt(argc, argv, "s:")) != -1) {
		if (ch != 's')
			break;
		path = optarg;
	}
	if (ch != -1 || path == NULL) {
		fprintf(stderr, "usage: %s -s SOCKET\n", floor_name);
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		floor_die("signalfd");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		floor_die("epoll_create1");
	lfd = floor_listen(path);
	ev.events = EPOLLIN;
	ev.data.ptr = &lfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		floor_die("epoll_ctl");
	ev.data.ptr = &sfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) < 0)
		floor_die("epoll_ctl");

	while (running) {
		if ((n = epoll_wait(ep, evs, 256, -1)) < 0) {
			if (errno == EINTR)
				continue;
			floor_die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			struct floor_conn *c;

			if (evs[i].data.ptr == &sfd) {
				running = 0;
				continue;
			}
			if (evs[i].data.ptr == &lfd) {
				floor_accept(lfd, ep);
				continue;
			}
			c = evs[i].data.ptr;
			if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
			    floor_conn_read(c, reply) < 0) {
				/* EOF after a half-close: send what is ready. */
				(void)floor_conn_flush(c, ep);
				floor_conn_free(c, ep);
				continue;
			}
			if (floor_conn_flush(c, ep) < 0)
				floor_conn_free(c, ep);
		}
	}
	unlink(path);
	return 0;
}

#endif /* CMDHOST_BENCH_FLOOR_H */
