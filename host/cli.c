/*
 * cli.c - cmdhost, the command-line client of cmdhostd: it sends requests
 * over the daemon's Unix socket and prints the replies for a person or a
 * script.  It speaks only wire protocol v1 and links json-c alone; it knows
 * nothing of the daemon's internals.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

/* Exit statuses. */
#define EXIT_REPLY_ERROR 1 /* the daemon answered with an error */
#define EXIT_USAGE       2 /* bad arguments or payload */
#define EXIT_CONN        3 /* could not talk to the daemon */

#define SOCKET_NAME  "cmdhost.sock"
#define PARSE_DEPTH  256             /* deeper than any body we expect */
#define READ_CHUNK   65536
#define SEND_HIGH    (1024 * 1024)   /* stop reading stdin above this */
#define LINE_MAX_LEN (1024u * 1024u * 1024u) /* refuse a reply over 1 GiB */

#define PLAIN_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Options common to every subcommand. */
struct opts {
	const char *socket_path; /* borrowed from argv/environ, or `owned` */
	char *owned;             /* NULL or the default path (freed at exit) */
	const char *id;          /* -i, or NULL for 1; borrowed from argv */
	long long timeout_ms;    /* -t, or 0 for none */
};

/* A growable byte buffer; data is NUL-terminated when not NULL. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

/* Subcommand handlers: argc/argv start at the subcommand's name. */
typedef int (*subcmd_fn)(const struct opts *o, int argc, char **argv);

/* Print usage to `f`.  Never fails. */
static void
usage(FILE *f)
{
	fputs(
"usage: cmdhost [-s SOCKET] [-t TIMEOUT_MS] [-i ID] COMMAND [ARG...]\n"
"\n"
"commands:\n"
"  invoke NAME [PAYLOAD]   call command NAME; PAYLOAD is JSON text, @FILE\n"
"                          or - (stdin), default {}; prints the body\n"
"  ping                    round trip to the daemon\n"
"  health [--json]         daemon health\n"
"  list [--json]           loaded plugins and their commands\n"
"  stats [--json]          per-command counters and latencies\n"
"  reload                  rescan the plugin directory (admin only)\n"
"  send                    pipe JSON request lines from stdin, print replies\n"
"  help                    this text\n"
"\n"
"options:\n"
"  -s SOCKET      socket path (default: $CMDHOST_SOCKET, else cmdhost.sock\n"
"                 next to this executable)\n"
"  -t TIMEOUT_MS  ask the daemon for this deadline (not used by send)\n"
"  -i ID          request id, integer or string (default 1; not used by send)\n"
"\n"
"exit status: 0 ok, 1 error reply, 2 usage or bad payload, 3 connection\n",
	    f);
}

/* Make room for `extra` more bytes plus a NUL.  Returns 0 or -ENOMEM. */
static int
buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if ((p = realloc(b->data, cap)) == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

/* Append n bytes of p (copied).  Returns 0 or -ENOMEM. */
static int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -ENOMEM;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* Drop the first n bytes. */
static void
buf_consume(struct buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

/* Free the buffer's memory; b itself is the caller's. */
static void
buf_fini(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Monotonic time in microseconds. */
static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Set o->socket_path from -s (already there), $CMDHOST_SOCKET, or the
 * directory of /proc/self/exe.  The default path is stored in o->owned
 * (the caller frees it).  Returns 0, or -errno if the executable's path
 * cannot be read.
 */
static int
socket_resolve(struct opts *o)
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
	slash[1] = '\0';
	len = strlen(exe) + sizeof(SOCKET_NAME);
	if ((o->owned = malloc(len)) == NULL)
		return -ENOMEM;
	snprintf(o->owned, len, "%s%s", exe, SOCKET_NAME);
	o->socket_path = o->owned;
	return 0;
}

/*
 * Connect a blocking, close-on-exec stream socket to `path`.  Returns the
 * fd (the caller closes it) or -errno.
 */
static int
sock_open(const char *path)
{
	struct sockaddr_un sun;
	int fd, err;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINTR)
			continue;
		err = -errno;
		close(fd);
		return err;
	}
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
read_line(int fd, struct buf *b)
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
		if (buf_reserve(b, READ_CHUNK) < 0)
			return -ENOMEM;
		r = read(fd, b->data + b->len, READ_CHUNK);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return 0;
		b->len += (size_t)r;
		b->data[b->len] = '\0';
	}
}

/*
 * Read all of fd into b (appending).  Returns 0 or -errno.
 */
static int
read_all(int fd, struct buf *b)
{
	ssize_t r;

	for (;;) {
		if (buf_reserve(b, READ_CHUNK) < 0)
			return -ENOMEM;
		r = read(fd, b->data + b->len, READ_CHUNK);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return 0;
		b->len += (size_t)r;
		b->data[b->len] = '\0';
	}
}

/* True for the whitespace JSON allows between tokens (not NUL). */
static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Parse text[0..len) as exactly one JSON value, whitespace around it
 * allowed; text[len] must be a NUL (it ends a trailing number).  On
 * success returns 0 and a new object in *out (json_object_put it; NULL for
 * JSON null).  On failure returns -1 and a reason in err.
 */
static int
json_parse_exact(const char *text, size_t len, struct json_object **out,
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

/*
 * Build a request line (with its '\n') for `command` and `payload`
 * (borrowed; a reference is taken for the request).  Returns a new string
 * (free it) or NULL on ENOMEM.
 */
static char *
request_format(const struct opts *o, const char *command,
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
	if ((text = json_object_to_json_string_ext(req, PLAIN_FLAGS)) == NULL)
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

/*
 * Send one request for `command` with `payload` (borrowed) and read one
 * reply.  On success returns 0 with a new object in *reply (put it) and,
 * if rtt_us is not NULL, the round trip in microseconds (connect not
 * counted).  On failure prints a message naming the socket and returns
 * EXIT_CONN.
 */
static int
call(const struct opts *o, const char *command, struct json_object *payload,
    struct json_object **reply, int64_t *rtt_us)
{
	struct buf in = { 0 };
	char *line = NULL, err[128];
	int fd, rc = EXIT_CONN, werr;
	int64_t t0;
	ssize_t n;

	*reply = NULL;
	if ((fd = sock_open(o->socket_path)) < 0) {
		fprintf(stderr, "cmdhost: cannot connect to %s: %s%s\n",
		    o->socket_path, strerror(-fd),
		    fd == -ENOENT || fd == -ECONNREFUSED ?
		    " (is cmdhostd running?)" : "");
		return EXIT_CONN;
	}
	if ((line = request_format(o, command, payload)) == NULL) {
		fprintf(stderr, "cmdhost: out of memory\n");
		goto out;
	}
	t0 = now_us();
	/* A daemon that refuses us (503, then close) may close before
	 * reading; its reply can still be waiting, so read regardless. */
	werr = write_all(fd, line, strlen(line), 1);
	n = read_line(fd, &in);
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
	if (json_parse_exact(in.data, (size_t)n - 1, reply, err,
	    sizeof(err)) < 0 || !json_object_is_type(*reply, json_type_object)) {
		fprintf(stderr, "cmdhost: %s: daemon sent a bad reply: %s\n",
		    o->socket_path, *reply == NULL ? err : "not an object");
		json_object_put(*reply);
		*reply = NULL;
		goto out;
	}
	rc = 0;
out:
	free(line);
	buf_fini(&in);
	close(fd);
	return rc;
}

/*
 * Look at a reply: on 2xx return 0 and its body in *body (borrowed from
 * reply; NULL for JSON null or a missing body).  Otherwise print
 * "cmdhost: <status> <code>: <message>" and return EXIT_REPLY_ERROR.
 */
static int
reply_check(struct json_object *reply, struct json_object **body)
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
	return EXIT_REPLY_ERROR;
}

/* Print obj (borrowed; NULL prints null) as one compact JSON line on
 * stdout.  Returns 0, or EXIT_REPLY_ERROR if stdout cannot be written. */
static int
print_json(struct json_object *obj)
{
	if (puts(json_object_to_json_string_ext(obj, PLAIN_FLAGS)) == EOF)
		return EXIT_REPLY_ERROR;
	return 0;
}

/*
 * Call an admin command without payload and hand its 2xx body to the
 * caller: returns 0 with *reply (put it) and *body (borrowed from it), or
 * an exit status after printing why.
 */
static int
call_admin(const struct opts *o, const char *command,
    struct json_object **reply, struct json_object **body)
{
	struct json_object *payload;
	int rc;

	if ((payload = json_object_new_object()) == NULL) {
		fprintf(stderr, "cmdhost: out of memory\n");
		return EXIT_CONN;
	}
	rc = call(o, command, payload, reply, NULL);
	json_object_put(payload);
	if (rc != 0)
		return rc;
	if ((rc = reply_check(*reply, body)) != 0) {
		json_object_put(*reply);
		*reply = NULL;
	}
	return rc;
}

/*
 * Read a payload argument: JSON text, "@FILE" or "-" (stdin).  Returns 0
 * with the text in b (the caller frees it with buf_fini), or EXIT_USAGE
 * after printing why.
 */
static int
payload_read(const char *arg, struct buf *b)
{
	const char *path = arg + 1;
	int fd, err;

	if (strcmp(arg, "-") == 0) {
		if ((err = read_all(STDIN_FILENO, b)) < 0) {
			fprintf(stderr, "cmdhost: stdin: %s\n",
			    strerror(-err));
			return EXIT_USAGE;
		}
		return 0;
	}
	if (arg[0] != '@')
		return buf_append(b, arg, strlen(arg)) < 0 ? EXIT_USAGE : 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "cmdhost: %s: %s\n", path, strerror(errno));
		return EXIT_USAGE;
	}
	err = read_all(fd, b);
	close(fd);
	if (err < 0) {
		fprintf(stderr, "cmdhost: %s: %s\n", path, strerror(-err));
		return EXIT_USAGE;
	}
	return 0;
}

/* cmdhost invoke NAME [PAYLOAD]: print the body, exit 0/1/2/3. */
static int
cmd_invoke(const struct opts *o, int argc, char **argv)
{
	struct json_object *payload = NULL, *reply = NULL, *body;
	struct buf text = { 0 };
	char err[128];
	int rc;

	if (argc < 2 || argc > 3) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((rc = payload_read(argc == 3 ? argv[2] : "{}", &text)) != 0)
		goto out;
	if (buf_reserve(&text, 0) < 0) {
		rc = EXIT_USAGE;
		goto out;
	}
	if (json_parse_exact(text.data, text.len, &payload, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "cmdhost: payload is not valid JSON: %s\n",
		    err);
		rc = EXIT_USAGE;
		goto out;
	}
	if ((rc = call(o, argv[1], payload, &reply, NULL)) != 0)
		goto out;
	if ((rc = reply_check(reply, &body)) != 0)
		goto out;
	rc = print_json(body);
out:
	json_object_put(reply);
	json_object_put(payload);
	buf_fini(&text);
	return rc;
}

/* cmdhost ping: print the round trip. */
static int
cmd_ping(const struct opts *o, int argc, char **argv)
{
	struct json_object *payload, *reply = NULL, *body;
	int64_t rtt = 0;
	int rc;

	(void)argv;
	if (argc != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((payload = json_object_new_object()) == NULL)
		return EXIT_CONN;
	rc = call(o, "host.ping", payload, &reply, &rtt);
	json_object_put(payload);
	if (rc == 0 && (rc = reply_check(reply, &body)) == 0)
		printf("pong (%" PRId64 " us)\n", rtt);
	json_object_put(reply);
	return rc;
}

/*
 * Parse "[--json]" after a subcommand.  Returns 1 for --json, 0 without,
 * -1 on anything else (usage was printed).
 */
static int
json_flag(int argc, char **argv)
{
	if (argc == 1)
		return 0;
	if (argc == 2 && strcmp(argv[1], "--json") == 0)
		return 1;
	usage(stderr);
	return -1;
}

/* cmdhost health [--json] and cmdhost reload: print the body. */
static int
cmd_body(const struct opts *o, int argc, char **argv)
{
	struct json_object *reply = NULL, *body;
	const char *command;
	int rc;

	if (strcmp(argv[0], "reload") == 0) {
		command = "host.reload";
		if (argc != 1) {
			usage(stderr);
			return EXIT_USAGE;
		}
	} else {
		command = "host.health";
		if (json_flag(argc, argv) < 0)
			return EXIT_USAGE;
	}
	if ((rc = call_admin(o, command, &reply, &body)) == 0)
		rc = print_json(body);
	json_object_put(reply);
	return rc;
}

/* Member `key` of obj as a string, or `dflt` (borrowed from obj). */
static const char *
get_str(struct json_object *obj, const char *key, const char *dflt)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		return dflt;
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return dflt;
}

/*
 * Format member `key` of obj (a number) into out: an integer, a rounded
 * double, or "-" when missing or of another type.
 */
static void
fmt_num(struct json_object *obj, const char *key, char *out, size_t len)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		snprintf(out, len, "-");
	else if (json_object_is_type(v, json_type_int))
		snprintf(out, len, "%" PRId64, json_object_get_int64(v));
	else if (json_object_is_type(v, json_type_double))
		snprintf(out, len, "%.0f", json_object_get_double(v));
	else
		snprintf(out, len, "-");
}

/* Array member `key` of obj, or NULL (borrowed). */
static struct json_object *
get_array(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

/* Raise widths[i] to the length of cell i, for n cells. */
static void
widen(int *widths, const char **cells, size_t n)
{
	size_t i, len;

	for (i = 0; i < n; i++) {
		len = strlen(cells[i]);
		if (len > (size_t)widths[i])
			widths[i] = len > INT_MAX ? INT_MAX : (int)len;
	}
}

/*
 * Print one table row with two spaces between columns: cells whose bit is
 * set in right_mask are right-aligned.  The last column is not padded.
 */
static void
print_row(const char **cells, const int *widths, size_t n,
    unsigned right_mask)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i > 0)
			fputs("  ", stdout);
		if (right_mask & (1u << i))
			printf("%*s", widths[i], cells[i]);
		else if (i + 1 == n)
			fputs(cells[i], stdout);
		else
			printf("%-*s", widths[i], cells[i]);
	}
	putchar('\n');
}

/*
 * Append "name:type[!]" for each field of `fields` (array) to b,
 * separated by ", ".  Returns 0 or -ENOMEM.
 */
static int
fields_format(struct json_object *fields, struct buf *b)
{
	struct json_object *f, *req;
	size_t i, n = fields ? json_object_array_length(fields) : 0;
	const char *name, *type;
	int required;

	for (i = 0; i < n; i++) {
		f = json_object_array_get_idx(fields, i);
		name = get_str(f, "name", "?");
		type = get_str(f, "type", "any");
		required = json_object_object_get_ex(f, "required", &req) &&
		    json_object_get_boolean(req);
		if ((i > 0 && buf_append(b, ", ", 2) < 0) ||
		    buf_append(b, name, strlen(name)) < 0 ||
		    buf_append(b, ":", 1) < 0 ||
		    buf_append(b, type, strlen(type)) < 0 ||
		    (required && buf_append(b, "!", 1) < 0))
			return -ENOMEM;
	}
	return 0;
}

/*
 * Print one command of a plugin, indented: "name  [flags]  summary
 * (fields)", name padded to name_w.  Returns 0 or -ENOMEM.
 */
static int
list_print_command(struct json_object *cmd, int name_w)
{
	struct json_object *flags, *fields;
	struct buf line = { 0 };
	const char *s;
	size_t i, n;
	int rc = -ENOMEM;

	flags = get_array(cmd, "flags");
	fields = get_array(cmd, "fields");
	if (buf_append(&line, "", 0) < 0)
		goto out;
	n = flags ? json_object_array_length(flags) : 0;
	for (i = 0; i < n; i++) {
		s = json_object_get_string(json_object_array_get_idx(flags, i));
		if (s == NULL)
			continue;
		if (buf_append(&line, line.len ? "," : "  [", line.len ? 1 : 3)
		    < 0 || buf_append(&line, s, strlen(s)) < 0)
			goto out;
	}
	if (line.len > 0 && buf_append(&line, "]", 1) < 0)
		goto out;
	if ((s = get_str(cmd, "summary", NULL)) != NULL && *s != '\0' &&
	    (buf_append(&line, "  ", 2) < 0 ||
	    buf_append(&line, s, strlen(s)) < 0))
		goto out;
	if (fields != NULL && json_object_array_length(fields) > 0 &&
	    (buf_append(&line, "  (", 3) < 0 ||
	    fields_format(fields, &line) < 0 ||
	    buf_append(&line, ")", 1) < 0))
		goto out;
	printf("    %-*s%s\n", name_w, get_str(cmd, "name", "?"), line.data);
	rc = 0;
out:
	buf_fini(&line);
	return rc;
}

#define LIST_COLS 6

/* Fill the LIST_COLS cells of a plugin row; gen is scratch for the
 * generation (the cells borrow from p and gen). */
static void
list_cells(struct json_object *p, const char **cells, char *gen,
    size_t genlen)
{
	fmt_num(p, "generation", gen, genlen);
	cells[0] = get_str(p, "name", "?");
	cells[1] = get_str(p, "version", "-");
	cells[2] = gen;
	cells[3] = get_str(p, "state", "-");
	cells[4] = get_str(p, "file", "-");
	cells[5] = get_str(p, "loaded_at", "-");
}

/* cmdhost list [--json]: one row per plugin, its commands below it. */
static int
cmd_list(const struct opts *o, int argc, char **argv)
{
	static const char *head[LIST_COLS] = {
		"PLUGIN", "VERSION", "GEN", "STATE", "FILE", "LOADED_AT"
	};
	struct json_object *reply = NULL, *body, *plugins, *p, *cmds, *c;
	const char *cells[LIST_COLS];
	int widths[LIST_COLS] = { 0 }, name_w = 0, rc, raw;
	size_t i, j, n, m, len;
	char gen[32];
	const char *s;

	if ((raw = json_flag(argc, argv)) < 0)
		return EXIT_USAGE;
	if ((rc = call_admin(o, "host.list", &reply, &body)) != 0)
		return rc;
	if (raw) {
		rc = print_json(body);
		goto out;
	}
	plugins = get_array(body, "plugins");
	n = plugins ? json_object_array_length(plugins) : 0;
	if (n == 0) {
		puts("no plugins");
		goto out;
	}
	widen(widths, head, LIST_COLS);
	for (i = 0; i < n; i++) {
		p = json_object_array_get_idx(plugins, i);
		list_cells(p, cells, gen, sizeof(gen));
		widen(widths, cells, LIST_COLS);
		cmds = get_array(p, "commands");
		m = cmds ? json_object_array_length(cmds) : 0;
		for (j = 0; j < m; j++) {
			c = json_object_array_get_idx(cmds, j);
			len = strlen(get_str(c, "name", "?"));
			if (len > (size_t)name_w && len < 1024)
				name_w = (int)len;
		}
	}
	print_row(head, widths, LIST_COLS, 1u << 2);
	for (i = 0; i < n; i++) {
		p = json_object_array_get_idx(plugins, i);
		list_cells(p, cells, gen, sizeof(gen));
		print_row(cells, widths, LIST_COLS, 1u << 2);
		if ((s = get_str(p, "error", NULL)) != NULL)
			printf("    error: %s\n", s);
		cmds = get_array(p, "commands");
		m = cmds ? json_object_array_length(cmds) : 0;
		for (j = 0; j < m; j++) {
			c = json_object_array_get_idx(cmds, j);
			if (list_print_command(c, name_w) < 0) {
				fprintf(stderr, "cmdhost: out of memory\n");
				rc = EXIT_REPLY_ERROR;
				goto out;
			}
		}
	}
out:
	json_object_put(reply);
	return rc;
}

#define STATS_COLS 8
#define STATS_CELL 32

/* One row of the stats table: the command name borrowed from the body,
 * the numbers formatted into cells. */
struct stats_row {
	const char *name;
	char cells[STATS_COLS][STATS_CELL];
};

/* qsort comparator: rows by command name. */
static int
stats_row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct stats_row *)a)->name,
	    ((const struct stats_row *)b)->name);
}

/*
 * Fill row r from one command's stats object `c` (borrowed): calls, 2xx,
 * 4xx, 5xx (summed from "status"), in flight, p50, p99, max.
 */
static void
stats_row_fill(struct stats_row *r, struct json_object *c)
{
	struct json_object *status, *lat = NULL;
	static const int classes[3] = { 2, 4, 5 };
	int64_t by_class[6] = { 0 };
	int have_status, k;

	fmt_num(c, "calls", r->cells[0], STATS_CELL);
	have_status = json_object_object_get_ex(c, "status", &status) &&
	    json_object_is_type(status, json_type_object);
	if (have_status) {
		json_object_object_foreach(status, key, val) {
			if (key[0] >= '1' && key[0] <= '5')
				by_class[key[0] - '0'] +=
				    json_object_get_int64(val);
		}
	}
	for (k = 0; k < 3; k++) {
		if (have_status)
			snprintf(r->cells[1 + k], STATS_CELL, "%" PRId64,
			    by_class[classes[k]]);
		else
			snprintf(r->cells[1 + k], STATS_CELL, "-");
	}
	fmt_num(c, "in_flight", r->cells[4], STATS_CELL);
	json_object_object_get_ex(c, "latency_us", &lat);
	fmt_num(lat, "p50", r->cells[5], STATS_CELL);
	fmt_num(lat, "p99", r->cells[6], STATS_CELL);
	fmt_num(lat, "max", r->cells[7], STATS_CELL);
}

/* cmdhost stats [--json]: a summary line, then one row per command. */
static int
cmd_stats(const struct opts *o, int argc, char **argv)
{
	static const char *head[STATS_COLS + 1] = {
		"COMMAND", "CALLS", "2XX", "4XX", "5XX", "IN_FLIGHT",
		"P50_US", "P99_US", "MAX_US"
	};
	struct json_object *reply = NULL, *body, *conns = NULL, *cmds;
	struct stats_row *rows = NULL;
	const char *cells[STATS_COLS + 1];
	char up[STATS_CELL], open_c[STATS_CELL], total[STATS_CELL];
	char reqs[STATS_CELL];
	int widths[STATS_COLS + 1] = { 0 }, rc, raw;
	size_t n = 0, i, k;

	if ((raw = json_flag(argc, argv)) < 0)
		return EXIT_USAGE;
	if ((rc = call_admin(o, "host.stats", &reply, &body)) != 0)
		return rc;
	if (raw) {
		rc = print_json(body);
		goto out;
	}
	fmt_num(body, "uptime_s", up, sizeof(up));
	json_object_object_get_ex(body, "connections", &conns);
	fmt_num(conns, "open", open_c, sizeof(open_c));
	fmt_num(conns, "total", total, sizeof(total));
	fmt_num(body, "requests", reqs, sizeof(reqs));
	printf("uptime %s s, connections %s open / %s total, requests %s\n",
	    up, open_c, total, reqs);
	if (!json_object_object_get_ex(body, "commands", &cmds) ||
	    !json_object_is_type(cmds, json_type_object) ||
	    json_object_object_length(cmds) == 0)
		goto out;
	rows = calloc((size_t)json_object_object_length(cmds), sizeof(*rows));
	if (rows == NULL) {
		fprintf(stderr, "cmdhost: out of memory\n");
		rc = EXIT_REPLY_ERROR;
		goto out;
	}
	json_object_object_foreach(cmds, name, c) {
		rows[n].name = name;
		stats_row_fill(&rows[n], c);
		n++;
	}
	qsort(rows, n, sizeof(*rows), stats_row_cmp);
	widen(widths, head, STATS_COLS + 1);
	for (i = 0; i < n; i++) {
		cells[0] = rows[i].name;
		for (k = 1; k <= STATS_COLS; k++)
			cells[k] = rows[i].cells[k - 1];
		widen(widths, cells, STATS_COLS + 1);
	}
	putchar('\n');
	print_row(head, widths, STATS_COLS + 1, ~1u);
	for (i = 0; i < n; i++) {
		cells[0] = rows[i].name;
		for (k = 1; k <= STATS_COLS; k++)
			cells[k] = rows[i].cells[k - 1];
		print_row(cells, widths, STATS_COLS + 1, ~1u);
	}
out:
	free(rows);
	json_object_put(reply);
	return rc;
}

/* The state of one `cmdhost send` run. */
struct pipe_state {
	int fd;             /* the connection, non-blocking */
	const char *path;   /* socket path for messages; borrowed */
	struct buf out;     /* stdin bytes not yet sent, from `off` */
	size_t off;
	char *chunk;        /* READ_CHUNK bytes of scratch */
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

	r = read(ps->fd, ps->chunk, READ_CHUNK);
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
		buf_consume(&ps->out, ps->off);
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

	r = read(STDIN_FILENO, ps->chunk, READ_CHUNK);
	if (r < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		fprintf(stderr, "cmdhost: stdin: %s\n", strerror(errno));
		return -1;
	}
	if (r == 0) {
		ps->stdin_open = 0;
		/* The daemon only answers whole lines. */
		if (!ps->stdin_nl && buf_append(&ps->out, "\n", 1) < 0)
			goto nomem;
		return 0;
	}
	if (buf_append(&ps->out, ps->chunk, (size_t)r) < 0)
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

/*
 * cmdhost send: pipe request lines from stdin to the daemon and its
 * replies to stdout.  Exit 0 when the daemon answered everything and
 * closed; EXIT_CONN when it could not be reached or hung up early (the
 * replies it sent before are still printed).
 */
static int
cmd_send(const struct opts *o, int argc, char **argv)
{
	struct pipe_state ps = { .fd = -1, .stdin_open = 1, .wr_open = 1,
	    .stdin_nl = 1, .stdout_nl = 1, .path = o->socket_path };
	int rc = EXIT_CONN, fl, r;

	(void)argv;
	if (argc != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((ps.fd = sock_open(o->socket_path)) < 0) {
		fprintf(stderr, "cmdhost: cannot connect to %s: %s%s\n",
		    o->socket_path, strerror(-ps.fd),
		    ps.fd == -ENOENT || ps.fd == -ECONNREFUSED ?
		    " (is cmdhostd running?)" : "");
		return EXIT_CONN;
	}
	if ((fl = fcntl(ps.fd, F_GETFL)) < 0 ||
	    fcntl(ps.fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    (ps.chunk = malloc(READ_CHUNK)) == NULL) {
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
	buf_fini(&ps.out);
	close(ps.fd);
	return rc;
}

/* cmdhost help: usage on stdout. */
static int
cmd_help(const struct opts *o, int argc, char **argv)
{
	(void)o;
	(void)argc;
	(void)argv;
	usage(stdout);
	return 0;
}

/* The subcommands; needs_socket: resolve the socket path before running. */
static const struct {
	const char *name;
	subcmd_fn fn;
	int needs_socket;
} subcmds[] = {
	{ "invoke", cmd_invoke, 1 },
	{ "ping", cmd_ping, 1 },
	{ "health", cmd_body, 1 },
	{ "list", cmd_list, 1 },
	{ "stats", cmd_stats, 1 },
	{ "reload", cmd_body, 1 },
	{ "send", cmd_send, 1 },
	{ "help", cmd_help, 0 },
};

/*
 * Parse the global options, find the subcommand and run it.  The exit
 * status is the subcommand's.
 */
int
main(int argc, char **argv)
{
	struct opts o = { 0 };
	char *end;
	size_t i;
	int ch, rc = EXIT_USAGE, err;

	while ((ch = getopt(argc, argv, "+s:t:i:h")) != -1) {
		switch (ch) {
		case 's':
			o.socket_path = optarg;
			break;
		case 't':
			errno = 0;
			o.timeout_ms = strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || errno != 0 ||
			    o.timeout_ms <= 0) {
				fprintf(stderr, "cmdhost: -t wants a positive "
				    "number of milliseconds, not '%s'\n",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		case 'i':
			o.id = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++) {
		if (strcmp(argv[0], subcmds[i].name) != 0)
			continue;
		if (subcmds[i].needs_socket && (err = socket_resolve(&o)) < 0) {
			fprintf(stderr, "cmdhost: cannot find the default "
			    "socket (use -s or CMDHOST_SOCKET): %s\n",
			    strerror(-err));
			return EXIT_CONN;
		}
		rc = subcmds[i].fn(&o, argc, argv);
		free(o.owned);
		if (fflush(stdout) == EOF && rc == 0)
			rc = EXIT_REPLY_ERROR;
		return rc;
	}
	fprintf(stderr, "cmdhost: unknown command '%s'\n", argv[0]);
	usage(stderr);
	return EXIT_USAGE;
}
