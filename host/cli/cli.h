/*
 * cli.h - internal interface of cmdhost, the command-line client.  It is
 * shared by host/cli*.c only; the daemon never includes it.  The socket
 * commands speak only the wire protocol; `check` and `exec`
 * (cli_plugin.c) link the daemon's loader, executor and request code to
 * run a plugin file in-process.  The --nats verbs (cli_nats.c) dlopen the
 * NATS module: cmdhost itself links no libnats.
 */
#ifndef CMDHOST_CLI_H
#define CMDHOST_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <json-c/json.h>

/* Exit statuses. */
#define CLI_EXIT_REPLY_ERROR 1 /* the daemon answered with an error */
#define CLI_EXIT_USAGE       2 /* bad arguments or payload */
#define CLI_EXIT_CONN        3 /* could not talk to the daemon */
#define CLI_EXIT_REFUSED     4 /* check, exec: the plugin file is refused */
#define CLI_EXIT_DEGRADED    5 /* health: the daemon answered "degraded" */

/* The socket of an installed daemon (its example config says so), used
 * when no cmdhostd sits next to the cmdhost executable. */
#define CLI_INSTALLED_SOCKET "/run/cmdhost/cmdhost.sock"

#define CLI_READ_CHUNK  65536 /* bytes asked of each read() */
/* How long a call waits for its reply without -t (with -t: its deadline
 * and a second); then exit 3. */
#define CLI_WAIT_MS     60000
#define CLI_PLAIN_FLAGS \
	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Options common to every subcommand. */
struct cli_opts {
	const char *socket_path; /* borrowed from argv/environ, or `owned` */
	char *owned;             /* NULL or the default path (freed at exit) */
	const char *id;          /* -i, or NULL for 1; borrowed from argv */
	long long timeout_ms;    /* -t, or 0 for none */
	const char *nats_url;    /* --nats URL, or NULL: the socket */
	const char *idem_key;    /* -k, or NULL; borrowed from argv */
};

/* A growable byte buffer; data is NUL-terminated when not NULL.  The
 * struct is the caller's (zero it to start); data is owned by it. */
struct cli_buf {
	char *data;
	size_t len;
	size_t cap;
};

/* cli.c */

/* Print usage to f.  Never fails. */
void cli_usage(FILE *f);

/*
 * Read a payload argument: JSON text, "@FILE" or "-" (stdin), parsed as
 * exactly one JSON value.  Returns 0 with a new object in *out
 * (json_object_put it; NULL for JSON null), or CLI_EXIT_USAGE after
 * printing why.
 */
int cli_payload_parse(const char *arg, struct json_object **out);

/* cli_buf.c */

/* Make room for `extra` more bytes plus a NUL.  Returns 0 or -ENOMEM
 * (then b is unchanged). */
int cli_buf_reserve(struct cli_buf *b, size_t extra);

/* Append n bytes of p (copied).  Returns 0 or -ENOMEM. */
int cli_buf_append(struct cli_buf *b, const void *p, size_t n);

/* Drop the first n bytes (n <= b->len, and b->data not NULL). */
void cli_buf_consume(struct cli_buf *b, size_t n);

/* Free the buffer's memory and reset it; b itself is the caller's.
 * Accepts a buffer that never allocated. */
void cli_buf_fini(struct cli_buf *b);

/* Read all of fd (borrowed, not closed) into b, appending.  Returns 0 or
 * -errno; bytes read before an error stay in b. */
int cli_buf_read_all(int fd, struct cli_buf *b);

/* One read(2) of up to CLI_READ_CHUNK bytes from fd appended to b (kept
 * NUL-terminated), retried on EINTR.  Returns the bytes read, 0 at EOF, or
 * -errno. */
ssize_t cli_buf_read_some(int fd, struct cli_buf *b);

/* cli_conn.c - the wire: each function here prints its own "cmdhost: ..."
 * message on failure, so callers only pass the exit status on. */

/*
 * Set o->socket_path from -s (already there), $CMDHOST_SOCKET, else
 * cmdhost.sock in the directory of /proc/self/exe when a cmdhostd sits
 * there too (a build tree), else CLI_INSTALLED_SOCKET.  A default path
 * built from the executable's is stored in o->owned (the caller frees
 * it).  Returns 0, or -errno if the executable's path cannot be read;
 * prints nothing.
 */
int cli_conn_resolve(struct cli_opts *o);

/*
 * Parse text[0..len) as exactly one JSON value, whitespace around it
 * allowed; text[len] must be a NUL (it ends a trailing number).  On
 * success returns 0 and a new object in *out (json_object_put it; NULL for
 * JSON null).  On failure returns -1 and a reason in the caller's err
 * buffer; prints nothing.
 */
int cli_conn_parse_json(const char *text, size_t len,
    struct json_object **out, char *err, size_t errlen);

/*
 * Build the request line (with its '\n') that invoke sends for `command`
 * (borrowed) and `payload` (borrowed; the request takes its own
 * reference), with o's id and timeout.  Returns a new string (free it) or
 * NULL on ENOMEM.
 */
char *cli_conn_request_line(const struct cli_opts *o, const char *command,
    struct json_object *payload);

/*
 * Send one request for `command` (borrowed) with `payload` (borrowed; the
 * request takes its own reference) and read one reply.  On success returns
 * 0 with a new object in *reply (json_object_put it) and, if rtt_us is not
 * NULL, the round trip in microseconds (connect not counted).  On failure
 * prints a message naming the socket, leaves *reply NULL and returns
 * CLI_EXIT_CONN.
 */
int cli_conn_call(const struct cli_opts *o, const char *command,
    struct json_object *payload, struct json_object **reply,
    int64_t *rtt_us);

/*
 * Look at a reply (borrowed): on 2xx return 0 and its body in *body
 * (borrowed from reply; NULL for JSON null or a missing body).  Otherwise
 * print "cmdhost: <status> <code>: <message>" and return
 * CLI_EXIT_REPLY_ERROR.
 */
int cli_conn_reply_check(struct json_object *reply, struct json_object **body);

/*
 * Call an admin command without payload and hand its 2xx body to the
 * caller: returns 0 with *reply (json_object_put it) and *body (borrowed
 * from *reply), or an exit status after printing why (then *reply is NULL).
 */
int cli_conn_call_admin(const struct cli_opts *o, const char *command,
    struct json_object **reply, struct json_object **body);

/*
 * cmdhost send: pipe request lines from stdin to the daemon at
 * o->socket_path and its replies to stdout.  Returns 0 when the daemon
 * answered everything and closed; CLI_EXIT_CONN when it could not be
 * reached or hung up early (the replies it sent before are still printed).
 */
int cli_conn_send(const struct cli_opts *o);

/* cli_print.c - stdout only; the body objects are always borrowed. */

/* Print obj (NULL prints null) as one compact JSON line on stdout.
 * Returns 0, or CLI_EXIT_REPLY_ERROR if stdout cannot be written. */
int cli_print_json(struct json_object *obj);

/* Print the host.list body as a table: one row per plugin, its commands
 * below it.  Returns 0, or CLI_EXIT_REPLY_ERROR on ENOMEM (printed). */
int cli_print_list(struct json_object *body);

/* Print the host.stats body: a summary line, then one row per command,
 * sorted by name.  Returns 0, or CLI_EXIT_REPLY_ERROR on ENOMEM
 * (printed). */
int cli_print_stats(struct json_object *body);

/* cli_print.c: print the host.stats body in the Prometheus text format
 * (core/prom.c writes it).
 * Returns 0, or CLI_EXIT_REPLY_ERROR if stdout failed. */
int cli_print_prometheus(struct json_object *body);

/* cli_plugin.c - a plugin file run in-process, without a daemon. */

/*
 * cmdhost check [--config FILE] PLUGIN.so [PLUGIN.so...]: load each file
 * as the daemon would (one directory, in the order given) and print what
 * it registers.  argv starts at "check".  Returns 0 when every file
 * loads, CLI_EXIT_REFUSED when one is refused (the reason is printed),
 * CLI_EXIT_USAGE on bad arguments.
 */
int cli_plugin_check(const struct cli_opts *o, int argc, char **argv);

/*
 * cmdhost exec [--config FILE] PLUGIN.so COMMAND [PAYLOAD]: run one call
 * through the daemon's field checks, validate and execute, and print the
 * reply line the daemon would send.  argv starts at "exec".  Returns 0 on
 * a 2xx reply, CLI_EXIT_REPLY_ERROR on another, CLI_EXIT_USAGE on bad
 * arguments or payload, CLI_EXIT_REFUSED when the file is refused.
 */
int cli_plugin_exec(const struct cli_opts *o, int argc, char **argv);

/* cli_nats.c - the same over NATS (--nats URL), through the NATS module
 * (dlopened on first use; it cannot be loaded: CLI_EXIT_CONN, with every
 * path tried printed); each prints its own message on failure and returns
 * an exit status. */

/*
 * invoke or publish (argv[0]) over NATS, with argv their arguments:
 * [-k KEY | --idempotency-key KEY] NAME [PAYLOAD].  invoke requests NAME
 * with the payload and prints the body ("no responders" is reported as
 * 404); KEY goes in the Idempotency-Key header.  publish puts
 * {"command", "payload"[, "id"]} on the JetStream subject
 * cmdhost.events.<command> ($CMDHOST_NATS_EVENTS overrides the prefix)
 * and prints {"stream", "seq"[, "duplicate"]}; KEY goes in the
 * Nats-Msg-Id header, so the stream drops a repeat within its duplicate
 * window.  argv is borrowed.
 */
int cli_nats_verb(const struct cli_opts *o, int argc, char **argv);

/* List every daemon answering $SRV.INFO.cmdhost and its commands (raw:
 * the info replies as one JSON array). */
int cli_nats_list(const struct cli_opts *o, int raw);

/* cli_workflow.c */

/*
 * cmdhost workflow list|show|check (argv starts at "workflow"): list and
 * show print host.executions as tables (or --json), check parses
 * definition files with the daemon's parser and prints each one's
 * verdict.  Returns 0; CLI_EXIT_REPLY_ERROR on an error reply or a
 * refused file; CLI_EXIT_USAGE or CLI_EXIT_CONN as the others.  argv is
 * borrowed.
 */
int cli_workflow(const struct cli_opts *o, int argc, char **argv);

#endif /* CMDHOST_CLI_H */
