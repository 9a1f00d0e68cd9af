/*
 * floor_jsonc.c - the json-c floor of the benchmark: a one-thread epoll
 * server on a Unix socket that parses every request line with json-c,
 * builds {"id":..,"status":200,"body":<payload>} and serializes it.  It is
 * what a plain single-threaded json-c server costs, with no registry,
 * validation, executor or metrics.
 */
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

#include <json-c/json.h>

#define IN_CAP		(64 * 1024)
#define OUT_HIGH	(4 * 1024 * 1024)	/* stop reading above this */

static const char bad_reply[] = "{\"id\":null,\"status\":400,\"error\":"
    "{\"code\":\"bad_request\",\"message\":\"not a JSON object\"}}\n";

/* One tokener for every line: the server has one thread. */
static json_tokener *tok;

/* One client.  `in` holds bytes not yet split into lines, `out` reply bytes
 * not yet written; both owned, freed by conn_free. */
struct conn {
	int fd;
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_off, out_len, out_cap;
	unsigned events;	/* what epoll watches now */
};

static void
die(const char *what)
{
	fprintf(stderr, "floor_jsonc: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Make room for n more bytes in c->out; exits on ENOMEM (a benchmark
 * tool has nothing better to do). */
static void
out_reserve(struct conn *c, size_t n)
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
		die("realloc");
}

/* Parse one request line (without its '\n') and append its reply. */
static void
answer(struct conn *c, const char *line, size_t len)
{
	json_object *req, *reply, *id = NULL, *payload = NULL;
	const char *text;
	size_t tlen;

	json_tokener_reset(tok);
	req = json_tokener_parse_ex(tok, line, (int)len);
	if (req == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		out_reserve(c, sizeof(bad_reply));
		memcpy(c->out + c->out_len, bad_reply, sizeof(bad_reply) - 1);
		c->out_len += sizeof(bad_reply) - 1;
		return;
	}
	json_object_object_get_ex(req, "id", &id);
	json_object_object_get_ex(req, "payload", &payload);
	reply = json_object_new_object();
	/* The reply takes its own references; req keeps its ones. */
	json_object_object_add(reply, "id", json_object_get(id));
	json_object_object_add(reply, "status", json_object_new_int(200));
	json_object_object_add(reply, "body", payload != NULL ?
	    json_object_get(payload) : json_object_new_object());
	text = json_object_to_json_string_length(reply,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &tlen);
	out_reserve(c, tlen + 1);
	memcpy(c->out + c->out_len, text, tlen);
	c->out_len += tlen;
	c->out[c->out_len++] = '\n';
	json_object_put(reply);
	json_object_put(req);
}

static void
conn_free(struct conn *c, int ep)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* Write pending replies and choose what to wait for.  Returns -1 when the
 * connection failed. */
static int
conn_flush(struct conn *c, int ep)
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
	want = c->out_len - c->out_off > OUT_HIGH ? 0 : EPOLLIN;
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

/* Read what is there and answer every complete line.  Returns -1 on EOF
 * or error. */
static int
conn_read(struct conn *c)
{
	char *line, *nl, *end;
	size_t room;
	ssize_t n;

	for (;;) {
		if (c->in_len == c->in_cap) {
			c->in_cap *= 2;
			if ((c->in = realloc(c->in, c->in_cap)) == NULL)
				die("realloc");
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
				answer(c, line, len);
			line = nl + 1;
		}
		c->in_len = (size_t)(end - line);
		if (c->in_len > 0 && line != c->in)
			memmove(c->in, line, c->in_len);
		if ((size_t)n < room)
			return 0;
	}
}

/* Bind and listen on path (replacing a stale file).  Returns the fd. */
static int
listen_on(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		die(path);
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, 4096) < 0)
		die(path);
	return fd;
}

int
main(int argc, char **argv)
{
	struct epoll_event ev, evs[256];
	struct rlimit rl;
	const char *path = NULL;
	sigset_t mask;
	int ch, ep, lfd, sfd, n, fd, running = 1;

	while ((ch = getopt(argc, argv, "s:")) != -1) {
		if (ch != 's') {
			fputs("usage: floor_jsonc -s SOCKET\n", stderr);
			return 2;
		}
		path = optarg;
	}
	if (path == NULL) {
		fputs("usage: floor_jsonc -s SOCKET\n", stderr);
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
		die("signalfd");
	if ((tok = json_tokener_new()) == NULL)
		die("json_tokener_new");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	lfd = listen_on(path);
	ev.events = EPOLLIN;
	ev.data.ptr = &lfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll_ctl");
	ev.data.ptr = &sfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) < 0)
		die("epoll_ctl");

	while (running) {
		if ((n = epoll_wait(ep, evs, 256, -1)) < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			struct conn *c;

			if (evs[i].data.ptr == &sfd) {
				running = 0;
				continue;
			}
			if (evs[i].data.ptr == &lfd) {
				while ((fd = accept4(lfd, NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if ((c = calloc(1, sizeof(*c))) == NULL ||
					    (c->in = malloc(IN_CAP)) == NULL)
						die("malloc");
					c->fd = fd;
					c->in_cap = IN_CAP;
					c->events = EPOLLIN;
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd,
					    &ev) < 0)
						die("epoll_ctl");
				}
				continue;
			}
			c = evs[i].data.ptr;
			if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
			    conn_read(c) < 0) {
				/* EOF after a half-close: send what is ready. */
				(void)conn_flush(c, ep);
				conn_free(c, ep);
				continue;
			}
			if (conn_flush(c, ep) < 0)
				conn_free(c, ep);
		}
	}
	unlink(path);
	json_tokener_free(tok);
	return 0;
}
