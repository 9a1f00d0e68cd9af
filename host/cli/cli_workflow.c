/*
 * cli_workflow.c - cmdhost workflow list | show | check: where the
 * daemon's workflow executions stand (host.executions, as tables), and
 * definition files checked offline with the parser the daemon uses
 * (core/wf_def.c).  It prints only; the wire lives in cli_conn.c.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/wf_def.h"

/* The daemon refuses a definition larger than this (workflow.c). */
#define WF_CHECK_MAX_BYTES (1 << 20)

/* Member key of o as text: a string as is, another value as JSON, "-"
 * when missing or null.  Borrowed from o. */
static const char *
text_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return "-";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, CLI_PLAIN_FLAGS);
}

/* Call host.executions with payload (borrowed); 0 with *reply (put it)
 * and *body (borrowed from it), or an exit status after printing why. */
static int
executions(const struct cli_opts *o, struct json_object *payload,
    struct json_object **reply, struct json_object **body)
{
	int rc = cli_conn_call(o, "host.executions", payload, reply, NULL);

	if (rc == 0 && (rc = cli_conn_reply_check(*reply, body)) != 0) {
		json_object_put(*reply);
		*reply = NULL;
	}
	return rc;
}

/* cmdhost workflow list [--status S] [--workflow W] [--limit N] [--json] */
static int
wf_list(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *payload = json_object_new_object(), *reply = NULL;
	struct json_object *body, *list, *counts;
	int rc, raw = 0;

	if (payload == NULL)
		return CLI_EXIT_CONN;
	for (int i = 1; i < argc; i++) {
		const char *key = NULL;

		if (strcmp(argv[i], "--json") == 0) {
			raw = 1;
			continue;
		}
		if (strcmp(argv[i], "--status") == 0)
			key = "status";
		else if (strcmp(argv[i], "--workflow") == 0)
			key = "workflow";
		else if (strcmp(argv[i], "--limit") == 0)
			key = "limit";
		if (key == NULL || i + 1 >= argc) {
			json_object_put(payload);
			cli_usage(stderr);
			return CLI_EXIT_USAGE;
		}
		i++;
		if (strcmp(key, "limit") == 0) {
			char *end;
			long n = strtol(argv[i], &end, 10);

			if (*argv[i] == '\0' || *end != '\0' || n < 1 ||
			    n > 100000) {
				fprintf(stderr, "cmdhost: --limit wants 1 to "
				    "100000, not '%s'\n", argv[i]);
				json_object_put(payload);
				return CLI_EXIT_USAGE;
			}
			json_object_object_add(payload, key,
			    json_object_new_int((int)n));
		} else {
			json_object_object_add(payload, key,
			    json_object_new_string(argv[i]));
		}
	}
	rc = executions(o, payload, &reply, &body);
	json_object_put(payload);
	if (rc != 0)
		return rc;
	if (raw) {
		rc = cli_print_json(body);
		json_object_put(reply);
		return rc;
	}
	printf("%-24s %-20s %-20s %-16s %-24s %9s %6s\n", "ID", "WORKFLOW",
	    "STATUS", "CURRENT", "STARTED", "DURATION", "EVENTS");
	if (json_object_object_get_ex(body, "executions", &list) &&
	    json_object_is_type(list, json_type_array))
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *x = json_object_array_get_idx(list,
			    i), *d;
			char dur[32] = "-";

			if (json_object_object_get_ex(x, "duration_ms", &d) &&
			    d != NULL)
				snprintf(dur, sizeof(dur), "%" PRId64 "ms",
				    json_object_get_int64(d));
			printf("%-24s %-20s %-20s %-16s %-24s %9s %6s\n",
			    text_of(x, "id"), text_of(x, "workflow"),
			    text_of(x, "status"), text_of(x, "current"),
			    text_of(x, "started"), dur, text_of(x, "events"));
		}
	fputs("counts:", stdout);
	if (json_object_object_get_ex(body, "counts", &counts) &&
	    json_object_is_type(counts, json_type_object)) {
		int n = 0;

		json_object_object_foreach(counts, status, c)
			printf("%s %s %" PRId64, n++ ? "," : "", status,
			    json_object_get_int64(c));
		if (n == 0)
			fputs(" none", stdout);
	}
	fputs("\n", stdout);
	json_object_put(reply);
	return 0;
}

/* The part of an event's detail worth a column: its error, else its
 * resource. */
static const char *
event_note(struct json_object *e, char *out, size_t len)
{
	struct json_object *d, *v;

	out[0] = '\0';
	if (!json_object_object_get_ex(e, "detail", &d) ||
	    !json_object_is_type(d, json_type_object))
		return out;
	if (json_object_object_get_ex(d, "Error", &v) ||
	    json_object_object_get_ex(d, "error", &v))
		snprintf(out, len, "error %s", json_object_get_string(v));
	else if (json_object_object_get_ex(d, "resource", &v))
		snprintf(out, len, "%s", json_object_get_string(v));
	else if (json_object_object_get_ex(d, "status", &v))
		snprintf(out, len, "status %s", json_object_get_string(v));
	return out;
}

/* cmdhost workflow show ID [--json] */
static int
wf_show(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *payload, *reply = NULL, *body, *list;
	int rc, raw = argc == 3 && strcmp(argv[2], "--json") == 0;

	if (argc != 2 && !raw) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if ((payload = json_object_new_object()) == NULL)
		return CLI_EXIT_CONN;
	json_object_object_add(payload, "id", json_object_new_string(argv[1]));
	rc = executions(o, payload, &reply, &body);
	json_object_put(payload);
	if (rc != 0)
		return rc;
	if (raw) {
		rc = cli_print_json(body);
		json_object_put(reply);
		return rc;
	}
	printf("execution  %s\n", text_of(body, "id"));
	printf("workflow   %s\n", text_of(body, "workflow"));
	printf("status     %s\n", text_of(body, "status"));
	printf("current    %s\n", text_of(body, "current"));
	printf("started    %s\n", text_of(body, "started"));
	printf("ended      %s\n", text_of(body, "ended"));
	printf("duration   %s%s\n", text_of(body, "duration_ms"),
	    strcmp(text_of(body, "duration_ms"), "-") ? " ms" : "");
	printf("input      %s\n", text_of(body, "input"));
	printf("result     %s\n", text_of(body, "result"));
	if (json_object_object_get_ex(body, "compensations", &list) &&
	    json_object_is_type(list, json_type_array) &&
	    json_object_array_length(list) > 0) {
		puts("compensations (in the order they ran):");
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *c = json_object_array_get_idx(list,
			    i);

			printf("  %-16s %-20s %-10s attempts %-3s request %s%s%s\n",
			    text_of(c, "state"), text_of(c, "command"),
			    text_of(c, "status"), text_of(c, "attempts"),
			    text_of(c, "request_id"), strcmp(text_of(c,
			    "error"), "-") ? "  " : "", strcmp(text_of(c,
			    "error"), "-") ? text_of(c, "error") : "");
		}
	}
	puts("history:");
	printf("  %4s %-24s %-28s %-16s %7s %-24s %s\n", "SEQ", "TIME",
	    "EVENT", "STATE", "ATTEMPT", "REQUEST_ID", "NOTE");
	if (json_object_object_get_ex(body, "history", &list) &&
	    json_object_is_type(list, json_type_array))
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *e = json_object_array_get_idx(list,
			    i);
			char note[256];

			printf("  %4s %-24s %-28s %-16s %7s %-24s %s\n",
			    text_of(e, "seq"), text_of(e, "time"),
			    text_of(e, "type"), text_of(e, "state"),
			    text_of(e, "attempt"), text_of(e, "request_id"),
			    event_note(e, note, sizeof(note)));
		}
	json_object_put(reply);
	return 0;
}

/* Read path (borrowed) whole: new text (free) with *len, or NULL with
 * the reason in err. */
static char *
read_def(const char *path, size_t *len, char *err, size_t errlen)
{
	struct cli_buf b = { 0 };
	struct stat st;
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > WF_CHECK_MAX_BYTES) {
		snprintf(err, errlen, "%s", !S_ISREG(st.st_mode) ? "not a "
		    "regular file" : "larger than 1 MiB (the daemon refuses "
		    "it)");
		close(fd);
		return NULL;
	}
	rc = cli_buf_read_all(fd, &b);
	close(fd);
	if (rc < 0 || cli_buf_reserve(&b, 0) < 0) {
		snprintf(err, errlen, "cannot read: %s", strerror(rc < 0 ?
		    -rc : ENOMEM));
		cli_buf_fini(&b);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

/* Print what d calls: "a, b (compensation)"; one line. */
static void
print_resources(const struct wf_def *d)
{
	int n = 0;

	for (size_t i = 0; i < d->n_states; i++) {
		if (d->states[i].resource != NULL)
			printf("%s%s", n++ ? ", " : "", d->states[i].resource);
		if (d->states[i].comp != NULL)
			printf("%s%s (compensation)", n++ ? ", " : "",
			    d->states[i].comp->resource);
	}
	if (n == 0)
		fputs("none", stdout);
}

/* cmdhost workflow check FILE...: 0 when all parse, 1 when one does not. */
static int
wf_check(int argc, char **argv)
{
	int bad = 0;

	if (argc < 2) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	for (int i = 1; i < argc; i++) {
		const char *path = argv[i], *slash = strrchr(path, '/');
		const char *base = slash ? slash + 1 : path;
		char err[1024], name[256];
		struct wf_def *d;
		size_t len = 0, bl = strlen(base);
		char *text;

		/* The default command name, as the daemon makes it. */
		if (bl > 5 && strcmp(base + bl - 5, ".json") == 0)
			bl -= 5;
		snprintf(name, sizeof(name), "%.*s", (int)bl, base);
		if ((text = read_def(path, &len, err, sizeof(err))) == NULL) {
			fprintf(stderr, "cmdhost: %s: %s\n", path, err);
			bad = 1;
			continue;
		}
		d = wf_def_parse(text, len, name, err, sizeof(err));
		free(text);
		if (d == NULL) {
			fprintf(stderr, "cmdhost: %s: refused: %s\n", path, err);
			bad = 1;
			continue;
		}
		printf("%s: ok: workflow %s, %zu state%s, starts at %s; calls ",
		    path, d->name, d->n_states, d->n_states == 1 ? "" : "s",
		    d->states[d->start_idx].name);
		print_resources(d);
		fputs("\n", stdout);
		if (strlen(base) <= 5 || strcmp(base + strlen(base) - 5,
		    ".json") != 0 || base[0] == '.')
			fprintf(stderr, "cmdhost: %s: note: the daemon reads only "
			    "*.json files that do not start with a dot\n", path);
		wf_def_free(d);
	}
	return bad ? CLI_EXIT_REPLY_ERROR : 0;
}

int
cli_workflow(const struct cli_opts *o, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return wf_check(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return wf_list(o, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return wf_show(o, argc - 1, argv + 1);
	cli_usage(stderr);
	return CLI_EXIT_USAGE;
}
