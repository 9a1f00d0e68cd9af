/*
 * cli_conn.c - the client's wire layer: finding the daemon's socket,
 * connecting, writing request lines and reading reply lines, and the
 * `send` loop that pipelines stdin to the socket.  It prints failures but
 * never formats a reply for a person; that is cli_print.c's job.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define SOCKET_NAME  "cmdhost.sock"
#define DAEMON_NAME  "cmdhostd"
#define PARSE_DEPTH  256             /* deeper than any body we expect */
#define SEND_HIGH    (1024 * 1024)   /* stop reading stdin above this */
#define LINE_MAX_LEN (1024u * 1024u * 1024u) /* refuse a reply over 1 GiB */

/* Monotonic time in microseconds. */
static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
cli_conn_resolve(struct cli_opts *o)
{
	char exe[PATH_MAX];
	const char *env;
	char *slash;
	ssize_t n;
	size_t len;

	if (o->socket_path != NULL)
		return 0;
	env = getenv("CMDHOST_SOCKET");
	if (env != NULL && *env != '\0') {
		o->socket_path = env;
		return 0;
	}
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) < 0)
		return -errno;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return -ENOENT;
	/* An installed cmdhost has no daemon beside it (cmdhostd goes to
	 * sbin/); a build tree has both. */
	if ((size_t)(slash - exe) + sizeof(DAEMON_NAME) + 1 > sizeof(exe))
		return -ENAMETOOLONG;
	memcpy(slash + 1, DAEMON_NAME, sizeof(DAEMON_NAME));
	if (access(exe, X_OK) < 0) {
		o->socket_path = CLI_INSTALLED_SOCKET;
		return 0;
	}
	slash[1] = '\0';
	len = strlen(exe) + sizeof(SOCKET_NAME);
	if ((o->owned = malloc(len)) == NULL)
		return -ENOMEM;
	snprintf(o->owned, len, "%s%s", exe, SOCKET_NAME);
	o->socket_path = o->owned;
	return 0;
}

/*
 * Connect a blocking, close-on-exec stream socket to `path` (borrowed),
 * waiting at most wait_ms for the daemon to take it: connect() blocks
 * while the daemon's listen backlog is full (a stopped or stuck daemon
 * that others keep connecting to), and SO_SNDTIMEO is what bounds it on
 * a Unix socket; it stays set, so a send is bounded too.  Returns the fd
 * (the caller closes it) or -errno (-EAGAIN when the wait ran out).
 */
static int
sock_open(const char *path, int64_t wait_ms)
{
	struct sockaddr_un sun;
	struct timeval tv = { (time_t)(wait_ms / 1000),
	    (suseconds_t)(wait_ms % 1000) * 1000 };
	int fd, err;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINTR)
			continue;
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* How long a call waits for the daemon: its deadline and a second, or
 * CLI_WAIT_MS without -t. */
static int64_t
wait_ms(const struct cli_opts *o)
{
	return o->timeout_ms > 0 ? o->timeout_ms + 1000 : CLI_WAIT_MS;
}

/*
 * Connect to the daemon at o->socket_path, waiting at most wait_ms(o),
 * saying why not (naming the socket) on failure.  Returns the fd (the
 * caller closes it) or -errno.
 */
static int
conn_open(const struct cli_opts *o)
{
	const char *path = o->socket_path;
	int fd;

	if ((fd = sock_open(path, wait_ms(o))) == -EAGAIN)
		fprintf(stderr, "cmdhost: %s: connection not taken within "
		    "%lld ms (is cmdhostd stopped or stuck?)\n", path,
		    (long long)wait_ms(o));
	else if (fd < 0)
		fprintf(stderr, "cmdhost: cannot connect to %s: %s%s\n",
		    path, strerror(-fd), fd == -ENOENT || fd == -ECONNREFUSED ?
		    " (is cmdhostd running?)" : "");
	return fd;
}

/*
 * Write all n bytes of p to fd, waiting with poll() if fd is non-blocking.
 * Sockets are written with MSG_NOSIGNAL, so a closed peer gives -EPIPE
 * rather than SIGPIPE.  Returns 0 or -errno.
 */
static int
write_all(int fd, const char *p, size_t n, int is_socket)
{
	struct pollfd pfd;
	ssize_t w;

	while (n > 0) {
		if (is_socket)
			w = send(fd, p, n, MSG_NOSIGNAL);
		else
			w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Read from fd into b until b holds a '\n'.  Returns the length of the
 * line including its '\n' (the line stays in b; the caller consumes it),
 * 0 on EOF before a full line, or -errno (-EMSGSIZE past LINE_MAX_LEN).
 */
static ssize_t
read_line(int fd, struct cli_buf *b)
{
	size_t scanned = 0;
	char *nl;
	ssize_t r;

	for (;;) {
		if (b->len > scanned &&
		    (nl = memchr(b->data + scanned, '\n',
		    b->len - scanned)) != NULL)
			return nl - b->data + 1;
		scanned = b->len;
		if (b->len > LINE_MAX_LEN)
			return -EMSGSIZE;
		if ((r = cli_buf_read_some(fd, b)) <= 0)
			return r;
	}
}

/* True for the whitespace JSON allows between tokens (not NUL). */
static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
cli_conn_parse_json(const char *text, size_t len, struct json_object **out,
    char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end, i;

	*out = NULL;
	if (len >= INT_MAX) {
		snprintf(err, errlen, "too large");
		return -1;
	}
	if ((tok = json_tokener_new_ex(PARSE_DEPTH)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < len && is_space(text[i]); i++)
		;
	if (i == len) {
		json_tokener_free(tok);
		snprintf(err, errlen, "empty input");
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (jerr != json_tokener_success) {
		snprintf(err, errlen, "%s at offset %zu",
		    json_tokener_error_desc(jerr), end);
		return -1;
	}
	for (i = end; i < len; i++) {
		if (!is_space(text[i])) {
			json_object_put(obj);
			snprintf(err, errlen, "unexpected text at offset %zu",
			    i);
			return -1;
		}
	}
	*out = obj;
	return 0;
}

char *
cli_conn_request_line(const struct cli_opts *o, const char *command,
    struct json_object *payload)
{
	struct json_object *req, *id;
	const char *text;
	char *line = NULL, *end;
	long long n;
	size_t len;

	if ((req = json_object_new_object()) == NULL)
		return NULL;
	if (o->id == NULL) {
		id = json_object_new_int(1);
	} else {
		errno = 0;
		n = strtoll(o->id, &end, 10);
		if (*o->id != '\0' && *end == '\0' && errno == 0)
			id = json_object_new_int64(n);
		else
			id = json_object_new_string(o->id);
	}
	if (id == NULL)
		goto out;
	json_object_object_add(req, "id", id);
	json_object_object_add(req, "command",
	    json_object_new_string(command));
	json_object_object_add(req, "payload", json_object_get(payload));
	if (o->timeout_ms > 0)
		json_object_object_add(req, "timeout_ms",
		    json_object_new_int64(o->timeout_ms));
	if (o->idem_key != NULL)
		json_object_object_add(req, "idempotency_key",
		    json_object_new_string(o->idem_key));
	text = json_object_to_json_string_ext(req, CLI_PLAIN_FLAGS);
	if (text == NULL)
		goto out;
	len = strlen(text);
	if ((line = malloc(len + 2)) == NULL)
		goto out;
	memcpy(line, text, len);
	line[len] = '\n';
	line[len + 1] = '\0';
out:
	json_object_put(req);
	return line;
}

int
cli_conn_call(const struct cli_opts *o, const char *command,
    struct json_object *payload, struct json_object **reply, int64_t *rtt_us)
{
	struct cli_buf in = { 0 };
	char *line = NULL, err[128];
	int fd, rc = CLI_EXIT_CONN, werr;
	int64_t t0;
	ssize_t n;

	*reply = NULL;
	if ((fd = conn_open(o)) < 0)
		return CLI_EXIT_CONN;
	if ((line = cli_conn_request_line(o, command, payload)) == NULL) {
		fprintf(stderr, "cmdhost: out of memory\n");
		goto out;
	}
	t0 = now_us();
	/* A stuck daemon must not hang us: wait for the reply the call's
	 * deadline and a second, or CLI_WAIT_MS without -t. */
	{
		int64_t ms = wait_ms(o);
		struct timeval tv = { (time_t)(ms / 1000),
		    (suseconds_t)(ms % 1000) * 1000 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	/* A daemon that refuses us (503, then close) may close before
	 * reading; its reply can still be waiting, so read regardless. */
	werr = write_all(fd, line, strlen(line), 1);
	n = read_line(fd, &in);
	if (n == -EAGAIN || n == -EWOULDBLOCK) {
		fprintf(stderr, "cmdhost: %s: no reply within %lld ms\n",
		    o->socket_path, (long long)wait_ms(o));
		goto out;
	}
	if (n < 0) {
		fprintf(stderr, "cmdhost: %s: %s\n", o->socket_path,
		    strerror((int)-n));
		goto out;
	}
	if (n == 0) {
		if (werr < 0)
			fprintf(stderr, "cmdhost: %s: %s\n", o->socket_path,
			    strerror(-werr));
		else
			fprintf(stderr, "cmdhost: %s: daemon closed the "
			    "connection without a reply\n", o->socket_path);
		goto out;
	}
	if (rtt_us != NULL)
		*rtt_us = now_us() - t0;
	in.data[n - 1] = '\0';
	if (cli_conn_parse_json(in.data, (size_t)n - 1, reply, err,
	    sizeof(err)) < 0 ||
	    !json_object_is_type(*reply, json_type_object)) {
		fprintf(stderr, "cmdhost: %s: daemon sent a bad reply: %s\n",
		    o->socket_path, *reply == NULL ? err : "not an object");
		json_object_put(*reply);
		*reply = NULL;
		goto out;
	}
	rc = 0;
out:
	free(line);
	cli_buf_fini(&in);
	close(fd);
	return rc;
}

int
cli_conn_reply_check(struct json_object *reply, struct json_object **body)
{
	struct json_object *v, *err;
	const char *code = "unknown", *msg = "";
	int status = 0;

	*body = NULL;
	if (json_object_object_get_ex(reply, "status", &v) &&
	    json_object_is_type(v, json_type_int))
		status = json_object_get_int(v);
	if (status >= 200 && status < 300) {
		json_object_object_get_ex(reply, "body", body);
		return 0;
	}
	if (json_object_object_get_ex(reply, "error", &err)) {
		if (json_object_object_get_ex(err, "code", &v) &&
		    json_object_is_type(v, json_type_string))
			code = json_object_get_string(v);
		if (json_object_object_get_ex(err, "message", &v) &&
		    json_object_is_type(v, json_type_string))
			msg = json_object_get_string(v);
	}
	fprintf(stderr, "cmdhost: %d %s: %s\n", status, code, msg);
	return CLI_EXIT_REPLY_ERROR;
}

int
cli_conn_call_admin(const struct cli_opts *o, const char *command,
    struct json_object **reply, struct json_object **body)
{
	struct json_object *payload;
	int rc;

	if ((payload = json_object_new_object()) == NULL) {
		fprintf(stderr, "cmdhost: out of memory\n");
		return CLI_EXIT_CONN;
	}
	rc = cli_conn_call(o, command, payload, reply, NULL);
	json_object_put(payload);
	if (rc != 0)
		return rc;
	if ((rc = cli_conn_reply_check(*reply, body)) != 0) {
		json_object_put(*reply);
		*reply = NULL;
	}
	return rc;
}

/* The state of one `cmdhost send` run. */
struct pipe_state {
	int fd;             /* the connection, non-blocking */
	const char *path;   /* socket path for messages; borrowed */
	struct cli_buf out; /* stdin bytes not yet sent, from `off` */
	size_t off;
	char *chunk;        /* CLI_READ_CHUNK bytes of scratch, owned */
	int stdin_open;     /* stdin not at EOF yet */
	int wr_open;        /* write side not shut down yet */
	int stdin_nl;       /* the last stdin byte was '\n' (or none yet) */
	int stdout_nl;      /* the last stdout byte was '\n' (or none yet) */
};

/* Copy one chunk of replies from the socket to stdout.  Returns 1 while
 * the connection is open, 0 on EOF (or a reset while requests remain to be
 * sent), -1 on error (printed). */
static int
pipe_replies(struct pipe_state *ps)
{
	ssize_t r;
	int err;

	r = read(ps->fd, ps->chunk, CLI_READ_CHUNK);
	if (r == 0)
		return 0;
	if (r < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 1;
		/* A reset while we still send: the daemon hung up early. */
		if (errno == ECONNRESET && ps->wr_open)
			return 0;
		fprintf(stderr, "cmdhost: %s: %s\n", ps->path, strerror(errno));
		return -1;
	}
	if ((err = write_all(STDOUT_FILENO, ps->chunk, (size_t)r, 0)) < 0) {
		fprintf(stderr, "cmdhost: stdout: %s\n", strerror(-err));
		return -1;
	}
	ps->stdout_nl = ps->chunk[r - 1] == '\n';
	return 1;
}

/* Send what the socket takes of ps->out.  Returns 0, or -1 when the
 * daemon no longer reads (EPIPE, ECONNRESET). */
static int
pipe_requests(struct pipe_state *ps)
{
	ssize_t r;

	r = send(ps->fd, ps->out.data + ps->off, ps->out.len - ps->off,
	    MSG_NOSIGNAL);
	if (r < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	ps->off += (size_t)r;
	if (ps->off == ps->out.len) {
		ps->out.len = ps->off = 0;
	} else if (ps->off > SEND_HIGH) {
		cli_buf_consume(&ps->out, ps->off);
		ps->off = 0;
	}
	return 0;
}

/* Append one chunk of stdin to ps->out.  Returns 0, or -1 on error
 * (printed). */
static int
pipe_stdin(struct pipe_state *ps)
{
	ssize_t r;

	r = read(STDIN_FILENO, ps->chunk, CLI_READ_CHUNK);
	if (r < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		fprintf(stderr, "cmdhost: stdin: %s\n", strerror(errno));
		return -1;
	}
	if (r == 0) {
		ps->stdin_open = 0;
		/* The daemon only answers whole lines. */
		if (!ps->stdin_nl && cli_buf_append(&ps->out, "\n", 1) < 0)
			goto nomem;
		return 0;
	}
	if (cli_buf_append(&ps->out, ps->chunk, (size_t)r) < 0)
		goto nomem;
	ps->stdin_nl = ps->chunk[r - 1] == '\n';
	return 0;
nomem:
	fprintf(stderr, "cmdhost: out of memory\n");
	return -1;
}

/*
 * Move stdin to the socket and replies to stdout at once, so that neither
 * side's buffers can fill up and stall the other; stdin is not read while
 * SEND_HIGH bytes wait to be sent.  After stdin's EOF and the last byte
 * sent, the write side is shut down.  Returns 0 when the daemon closed
 * after that, 1 when it hung up before all was sent, -1 on error (printed).
 */
static int
pipe_run(struct pipe_state *ps)
{
	struct pollfd pfd[2];
	int nfds, r;

	for (;;) {
		if (ps->wr_open && !ps->stdin_open && ps->off == ps->out.len) {
			shutdown(ps->fd, SHUT_WR);
			ps->wr_open = 0;
		}
		pfd[0].fd = ps->fd;
		pfd[0].events = POLLIN;
		if (ps->wr_open && ps->off < ps->out.len)
			pfd[0].events |= POLLOUT;
		pfd[0].revents = 0;
		nfds = 1;
		if (ps->stdin_open && ps->out.len - ps->off < SEND_HIGH) {
			pfd[1].fd = STDIN_FILENO;
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			nfds = 2;
		}
		if (poll(pfd, nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "cmdhost: poll: %s\n", strerror(errno));
			return -1;
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			if ((r = pipe_replies(ps)) <= 0)
				return r < 0 ? -1 : ps->wr_open;
		}
		if ((pfd[0].revents & POLLOUT) && pipe_requests(ps) < 0)
			return 1;
		if (nfds == 2 && (pfd[1].revents & (POLLIN | POLLHUP |
		    POLLERR)) && pipe_stdin(ps) < 0)
			return -1;
	}
}

int
cli_conn_send(const struct cli_opts *o)
{
	struct pipe_state ps = { .fd = -1, .stdin_open = 1, .wr_open = 1,
	    .stdin_nl = 1, .stdout_nl = 1, .path = o->socket_path };
	int rc = CLI_EXIT_CONN, fl, r;

	if ((ps.fd = conn_open(o)) < 0)
		return CLI_EXIT_CONN;
	if ((fl = fcntl(ps.fd, F_GETFL)) < 0 ||
	    fcntl(ps.fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    (ps.chunk = malloc(CLI_READ_CHUNK)) == NULL) {
		fprintf(stderr, "cmdhost: %s\n", strerror(errno));
		goto out;
	}
	if ((r = pipe_run(&ps)) < 0)
		goto out;
	if (r == 1) {
		/* Print what the daemon said before it hung up (it may be
		 * a 503), then say so. */
		fcntl(ps.fd, F_SETFL, fl);
		while (pipe_replies(&ps) > 0)
			;
		fprintf(stderr, "cmdhost: %s: daemon closed the connection "
		    "before all requests were sent\n", o->socket_path);
	} else {
		rc = 0;
	}
	if (!ps.stdout_nl)
		write_all(STDOUT_FILENO, "\n", 1, 0);
out:
	free(ps.chunk);
	cli_buf_fini(&ps.out);
	close(ps.fd);
	return rc;
}
