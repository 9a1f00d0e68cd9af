/*
 * cli.c - cmdhost, the command-line client of cmdhostd: main, the global
 * options and one small handler per subcommand.  The wire lives in
 * cli_conn.c and the tables in cli_print.c; the socket commands speak only
 * wire protocol v1.  check and exec, which run a plugin file without a
 * daemon, live in cli_plugin.c.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

/* Subcommand handlers: argc/argv start at the subcommand's name. */
typedef int (*subcmd_fn)(const struct cli_opts *o, int argc, char **argv);

void
cli_usage(FILE *f)
{
	fputs(
"usage: cmdhost [--nats URL] [-s SOCKET] [-t TIMEOUT_MS] [-i ID] [-k KEY]\n"
"               COMMAND [ARG...]\n"
"\n"
"commands:\n"
"  invoke NAME [PAYLOAD]   call command NAME; PAYLOAD is JSON text, @FILE\n"
"                          or - (stdin), default {}; prints the body\n"
"  ping                    round trip to the daemon\n"
"  health [--json]         daemon health\n"
"  list [--json]           loaded plugins and their commands\n"
"  stats [--json | --prometheus]\n"
"                          counters and latencies per command and plugin\n"
"  reload                  rescan the plugin directory (admin only)\n"
"  rollback NAME           put back plugin NAME's previous copy, kept since\n"
"                          its last swap; refuse the bad bytes (admin only)\n"
"  events [--dead] [--json] pending (or dead-lettered) events (admin only)\n"
"  events requeue ID       put dead event ID back in its queue (admin only)\n"
"  send                    pipe JSON request lines from stdin, print replies\n"
"  check [--config FILE] PLUGIN.so [PLUGIN.so...]\n"
"                          load plugin files as the daemon would, no daemon\n"
"                          needed; print descriptor, ABI and commands\n"
"  exec [--config FILE] PLUGIN.so COMMAND [PAYLOAD]\n"
"                          run one command of a plugin file in-process;\n"
"                          print the reply line the daemon would send\n"
"  workflow list [--status S] [--workflow W] [--limit N] [--json]\n"
"                          workflow executions, newest first, and counts\n"
"  workflow show ID [--json]\n"
"                          one execution: status, current state, history\n"
"                          with times and each step's request id\n"
"  workflow check FILE...  check definition files offline with the\n"
"                          daemon's parser; exit 1 if one is refused\n"
"  publish NAME [PAYLOAD]  (--nats only) put an event for NAME on the\n"
"                          JetStream stream; prints its stream and seq\n"
"  help                    this text\n"
"\n"
"options:\n"
"  -s SOCKET      socket path (default: $CMDHOST_SOCKET, else cmdhost.sock\n"
"                 next to this executable if cmdhostd is there too, else\n"
"                 " CLI_INSTALLED_SOCKET ")\n"
"  -t TIMEOUT_MS  deadline of the call (not used by send); cmdhost waits\n"
"                 that and 1 s for the reply (60 s without -t), then exits 3\n"
"  -i ID          request id, integer or string (default 1; not used by send)\n"
"  -k KEY         idempotency key of invoke: a retry with the same KEY and\n"
"                 payload gets the first call's result, not a second run\n"
"  --nats URL     talk to the daemons through NATS instead of the socket:\n"
"                 invoke, list (every daemon, by discovery) and publish\n"
"  --nats URL invoke|publish -k KEY NAME [PAYLOAD]  (or --idempotency-key)\n"
"                 invoke sends KEY as the Idempotency-Key header (a retry\n"
"                 on any daemon replays the first result); publish as the\n"
"                 Nats-Msg-Id (the stream drops a repeat of the event)\n"
"\n"
"exit status: 0 ok, 1 error reply, 2 usage or bad payload, 3 connection,\n"
"4 plugin file refused (check, exec); workflow check: 1 when a file is\n"
"refused\n",
	    f);
}

/*
 * Read a payload argument: JSON text, "@FILE" or "-" (stdin).  Returns 0
 * with the text in b (the caller frees it with cli_buf_fini), or
 * CLI_EXIT_USAGE after printing why.
 */
static int
payload_read(const char *arg, struct cli_buf *b)
{
	const char *path = arg + 1;
	int fd, err;

	if (strcmp(arg, "-") == 0) {
		if ((err = cli_buf_read_all(STDIN_FILENO, b)) < 0) {
			fprintf(stderr, "cmdhost: stdin: %s\n",
			    strerror(-err));
			return CLI_EXIT_USAGE;
		}
		return 0;
	}
	if (arg[0] != '@')
		return cli_buf_append(b, arg, strlen(arg)) < 0 ?
		    CLI_EXIT_USAGE : 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "cmdhost: %s: %s\n", path, strerror(errno));
		return CLI_EXIT_USAGE;
	}
	err = cli_buf_read_all(fd, b);
	close(fd);
	if (err < 0) {
		fprintf(stderr, "cmdhost: %s: %s\n", path, strerror(-err));
		return CLI_EXIT_USAGE;
	}
	return 0;
}

int
cli_payload_parse(const char *arg, struct json_object **out)
{
	struct cli_buf text = { 0 };
	char err[128];
	int rc;

	*out = NULL;
	if ((rc = payload_read(arg, &text)) != 0)
		goto out;
	if (cli_buf_reserve(&text, 0) < 0) {
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	if (cli_conn_parse_json(text.data, text.len, out, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "cmdhost: payload is not valid JSON: %s\n",
		    err);
		rc = CLI_EXIT_USAGE;
	}
out:
	cli_buf_fini(&text);
	return rc;
}

/* cmdhost invoke NAME [PAYLOAD] (and publish, over NATS): print the body,
 * exit 0/1/2/3. */
static int
cmd_invoke(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *payload = NULL, *reply = NULL, *body;
	int rc;

	/* Over NATS, cli_nats.c reads the arguments (and its -k). */
	if (o->nats_url != NULL)
		return cli_nats_verb(o, argc, argv);
	if (argc < 2 || argc > 3) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if ((rc = cli_payload_parse(argc == 3 ? argv[2] : "{}", &payload))
	    != 0)
		goto out;
	if ((rc = cli_conn_call(o, argv[1], payload, &reply, NULL)) != 0)
		goto out;
	{
		struct json_object *r;

		/* A replay is the first call's answer: say so, aside. */
		if (json_object_object_get_ex(reply, "replayed", &r) &&
		    json_object_get_boolean(r))
			fprintf(stderr, "cmdhost: replayed: the result stored "
			    "for this idempotency key (the command did not run "
			    "again)\n");
	}
	if ((rc = cli_conn_reply_check(reply, &body)) != 0)
		goto out;
	rc = cli_print_json(body);
out:
	json_object_put(reply);
	json_object_put(payload);
	return rc;
}

/* cmdhost ping: print the round trip. */
static int
cmd_ping(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *payload, *reply = NULL, *body;
	int64_t rtt = 0;
	int rc;

	(void)argv;
	if (argc != 1) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if ((payload = json_object_new_object()) == NULL)
		return CLI_EXIT_CONN;
	rc = cli_conn_call(o, "host.ping", payload, &reply, &rtt);
	json_object_put(payload);
	if (rc == 0 && (rc = cli_conn_reply_check(reply, &body)) == 0)
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
	cli_usage(stderr);
	return -1;
}

/* cmdhost health [--json] and cmdhost reload: print the body; health
 * exits CLI_EXIT_DEGRADED unless its status is "ok". */
static int
cmd_body(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *reply = NULL, *body;
	const char *command;
	int rc;

	if (strcmp(argv[0], "reload") == 0) {
		command = "host.reload";
		if (argc != 1) {
			cli_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	} else {
		command = "host.health";
		if (json_flag(argc, argv) < 0)
			return CLI_EXIT_USAGE;
	}
	if ((rc = cli_conn_call_admin(o, command, &reply, &body)) == 0)
		rc = cli_print_json(body);
	if (rc == 0 && strcmp(command, "host.health") == 0) {
		struct json_object *st;

		if (!json_object_object_get_ex(body, "status", &st) ||
		    st == NULL || strcmp(json_object_get_string(st), "ok") != 0)
			rc = CLI_EXIT_DEGRADED;
	}
	json_object_put(reply);
	return rc;
}

/* cmdhost rollback NAME: host.rollback with {"plugin": NAME}; print the
 * body (what was put back). */
static int
cmd_rollback(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *reply = NULL, *body, *payload;
	int rc;

	if (argc != 2) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if ((payload = json_object_new_object()) == NULL) {
		fprintf(stderr, "cmdhost: out of memory\n");
		return CLI_EXIT_CONN;
	}
	json_object_object_add(payload, "plugin",
	    json_object_new_string(argv[1]));
	rc = cli_conn_call(o, "host.rollback", payload, &reply, NULL);
	json_object_put(payload);
	if (rc != 0)
		return rc;
	if ((rc = cli_conn_reply_check(reply, &body)) == 0)
		rc = cli_print_json(body);
	json_object_put(reply);
	return rc;
}

/* cmdhost list [--json]: one row per plugin, its commands below it. */
static int
cmd_list(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *reply = NULL, *body;
	int rc, raw;

	if ((raw = json_flag(argc, argv)) < 0)
		return CLI_EXIT_USAGE;
	if (o->nats_url != NULL)
		return cli_nats_list(o, raw);
	if ((rc = cli_conn_call_admin(o, "host.list", &reply, &body)) != 0)
		return rc;
	rc = raw ? cli_print_json(body) : cli_print_list(body);
	json_object_put(reply);
	return rc;
}

/* cmdhost stats [--json | --prometheus]: a summary, then one row per
 * command and per plugin; or the body as JSON or as Prometheus text. */
static int
cmd_stats(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *reply = NULL, *body;
	int rc, raw = 0;

	if (argc == 2 && strcmp(argv[1], "--prometheus") == 0)
		raw = 2;
	else if ((raw = json_flag(argc, argv)) < 0)
		return CLI_EXIT_USAGE;
	if ((rc = cli_conn_call_admin(o, "host.stats", &reply, &body)) != 0)
		return rc;
	rc = raw == 2 ? cli_print_prometheus(body) :
	    raw ? cli_print_json(body) : cli_print_stats(body);
	json_object_put(reply);
	return rc;
}

/* Print one event of host.events as a line: id, subject, attempts, age,
 * the emitting request, the last error. */
static void
print_event(struct json_object *e, long long now_ms)
{
	struct json_object *v;
	long long created = 0;
	const char *err = NULL, *rid = NULL;

	if (json_object_object_get_ex(e, "created_ms", &v))
		created = json_object_get_int64(v);
	if (json_object_object_get_ex(e, "last_error", &v) && v != NULL)
		err = json_object_get_string(v);
	if (json_object_object_get_ex(e, "request_id", &v) && v != NULL)
		rid = json_object_get_string(v);
	printf("%-32s %-24s %3d %8.1fs  %-20s %s\n",
	    json_object_get_string(json_object_object_get(e, "id")),
	    json_object_get_string(json_object_object_get(e, "subject")),
	    json_object_get_int(json_object_object_get(e, "attempts")),
	    (double)(now_ms - created) / 1000.0, rid ? rid : "-",
	    err ? err : "");
}

/* cmdhost events [--dead] [--json] | events requeue ID. */
static int
cmd_events(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *payload = json_object_new_object(), *reply = NULL;
	struct json_object *body, *list;
	int rc, dead = 0, raw = 0;
	struct timespec ts;

	if (payload == NULL)
		return CLI_EXIT_CONN;
	if (argc == 3 && strcmp(argv[1], "requeue") == 0) {
		json_object_object_add(payload, "requeue",
		    json_object_new_string(argv[2]));
	} else {
		for (int i = 1; i < argc; i++) {
			if (strcmp(argv[i], "--dead") == 0) {
				dead = 1;
			} else if (strcmp(argv[i], "--json") == 0) {
				raw = 1;
			} else {
				json_object_put(payload);
				cli_usage(stderr);
				return CLI_EXIT_USAGE;
			}
		}
		json_object_object_add(payload, "dead",
		    json_object_new_boolean(dead));
		json_object_object_add(payload, "limit",
		    json_object_new_int(1000));
	}
	rc = cli_conn_call(o, "host.events", payload, &reply, NULL);
	json_object_put(payload);
	if (rc == 0)
		rc = cli_conn_reply_check(reply, &body);
	if (rc != 0) {
		json_object_put(reply);
		return rc;
	}
	if (raw || argc == 3) {
		rc = cli_print_json(body);
		json_object_put(reply);
		return rc;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	printf("pending %s, dead %s\n",
	    json_object_get_string(json_object_object_get(body, "pending")),
	    json_object_get_string(json_object_object_get(body, "dead")));
	list = json_object_object_get(body, dead ? "dead_events" : "events");
	for (size_t i = 0; list != NULL && i < json_object_array_length(list);
	    i++)
		print_event(json_object_array_get_idx(list, i),
		    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	json_object_put(reply);
	return 0;
}

/* cmdhost send: see cli_conn_send. */
static int
cmd_send(const struct cli_opts *o, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	return cli_conn_send(o);
}

/* cmdhost help: usage on stdout. */
static int
cmd_help(const struct cli_opts *o, int argc, char **argv)
{
	(void)o;
	(void)argc;
	(void)argv;
	cli_usage(stdout);
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
	{ "rollback", cmd_rollback, 1 },
	{ "events", cmd_events, 1 },
	{ "send", cmd_send, 1 },
	{ "workflow", cli_workflow, 1 },
	{ "check", cli_plugin_check, 0 },
	{ "exec", cli_plugin_exec, 0 },
	{ "help", cmd_help, 0 },
	{ "publish", cmd_invoke, 0 },
};

/* The subcommands that work over NATS. */
static int
nats_capable(const char *name)
{
	return strcmp(name, "invoke") == 0 || strcmp(name, "list") == 0 ||
	    strcmp(name, "publish") == 0 || strcmp(name, "help") == 0;
}

/*
 * Parse the global options, find the subcommand and run it.  The exit
 * status is the subcommand's.
 */
int
main(int argc, char **argv)
{
	struct cli_opts o = { 0 };
	char *end;
	size_t i;
	int ch, rc = CLI_EXIT_USAGE, err;

	/* --nats URL (or --nats=URL) comes first, before the short options. */
	if (argc >= 2 && strncmp(argv[1], "--nats=", 7) == 0) {
		o.nats_url = argv[1] + 7;
		argv[1] = argv[0];
		argc--;
		argv++;
	} else if (argc >= 3 && strcmp(argv[1], "--nats") == 0) {
		o.nats_url = argv[2];
		argv[2] = argv[0];
		argc -= 2;
		argv += 2;
	}
	while ((ch = getopt(argc, argv, "+s:t:i:k:h")) != -1) {
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
				return CLI_EXIT_USAGE;
			}
			break;
		case 'i':
			o.id = optarg;
			break;
		case 'k':
			if (*optarg == '\0' || strlen(optarg) > 255) {
				fprintf(stderr, "cmdhost: -k wants a key of 1 to "
				    "255 bytes\n");
				return CLI_EXIT_USAGE;
			}
			o.idem_key = optarg;
			break;
		case 'h':
			cli_usage(stdout);
			return 0;
		default:
			cli_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	for (i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++) {
		if (strcmp(argv[0], subcmds[i].name) != 0)
			continue;
		if ((o.nats_url != NULL) != (strcmp(argv[0], "publish") == 0) &&
		    (o.nats_url == NULL || !nats_capable(argv[0]))) {
			fprintf(stderr, "cmdhost: %s %s\n", argv[0],
			    o.nats_url ? "works over the socket only (drop "
			    "--nats)" : "needs --nats URL");
			return CLI_EXIT_USAGE;
		}
		/* workflow check reads files only. */
		if (subcmds[i].needs_socket && o.nats_url == NULL &&
		    !(strcmp(argv[0], "workflow") == 0 && argc >= 2 &&
		    strcmp(argv[1], "check") == 0) &&
		    (err = cli_conn_resolve(&o)) < 0) {
			fprintf(stderr, "cmdhost: cannot find the default "
			    "socket (use -s or CMDHOST_SOCKET): %s\n",
			    strerror(-err));
			return CLI_EXIT_CONN;
		}
		rc = subcmds[i].fn(&o, argc, argv);
		free(o.owned);
		if (fflush(stdout) == EOF && rc == 0)
			rc = CLI_EXIT_REPLY_ERROR;
		return rc;
	}
	fprintf(stderr, "cmdhost: unknown command '%s'\n", argv[0]);
	cli_usage(stderr);
	return CLI_EXIT_USAGE;
}
