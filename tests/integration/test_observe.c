/*
 * test_observe.c - what an operator sees: log lines with the request
 * context (success, 4xx, 5xx, timeout, a plugin's own log call), a plugin
 * that tries to break the log, cold starts once per generation, request
 * ids in replies, log_level and log_format, host.stats counts per status,
 * percentiles that follow a slower command, and `cmdhost stats
 * --prometheus` checked by a strict parser of the text format (and by
 * promtool when it is installed).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <json-c/json.h>

#include "harness.h"

#define CLI CMDHOST_BUILD_DIR "/cmdhost"
#define PROMTOOL "/usr/bin/promtool"
#define WAIT_MS 10000

TestSuite(observe, .fini = check_free, .timeout = 90);

static const char *const good_plugins[] = { "good.so", "logger.so", NULL };

/* ------------------------------------------------------------ log lines */

/*
 * Every line of the test daemon's log so far, parsed strictly.  Fails the
 * test if a line is not exactly one JSON object.  Returns a new array
 * (json_object_put() it).
 */
static json_object *
log_objects(void)
{
	char *text = daemon_log(check_daemon()), *line, *next;
	json_object *arr = json_object_new_array();

	CHECK(text != NULL, "cannot read the daemon's log");
	for (line = text; *line != '\0'; line = next) {
		struct json_tokener *tok = json_tokener_new();
		json_object *j;
		size_t len;

		next = strchr(line, '\n');
		CHECK(next != NULL, "the log ends inside a line: %s", line);
		*next++ = '\0';
		len = strlen(line);
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
		    JSON_TOKENER_VALIDATE_UTF8);
		j = json_tokener_parse_ex(tok, line, (int)len);
		CHECK(j != NULL && json_tokener_get_error(tok) ==
		    json_tokener_success && (size_t)json_tokener_get_parse_end(
		    tok) == len && json_object_is_type(j, json_type_object),
		    "log line is not one JSON object: %s", line);
		json_tokener_free(tok);
		json_object_array_add(arr, j);
	}
	free(text);
	return arr;
}

/* String member `key` of j equals want (NULL: absent or null). */
static int
str_eq(json_object *j, const char *key, const char *want)
{
	const char *v = json_path_str(j, key);

	if (want == NULL)
		return json_path(j, key) == NULL;
	return v != NULL && strcmp(v, want) == 0;
}

struct line_query {
	const char *key;     /* a string member to match */
	const char *value;
	const char *message; /* and the message, or NULL */
	json_object *found;  /* a new reference, or NULL */
};

/* The first log line whose `key` is `value` (and message, if given). */
static int
find_line(void *arg)
{
	struct line_query *q = arg;
	json_object *arr = log_objects();

	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *j = json_object_array_get_idx(arr, i);

		if (str_eq(j, q->key, q->value) && (q->message == NULL ||
		    str_eq(j, "message", q->message))) {
			q->found = json_object_get(j);
			break;
		}
	}
	json_object_put(arr);
	return q->found != NULL;
}

/* Wait for the line with request_id rid (and message, if given); fails
 * the test if none comes.  Returns it (put it). */
static json_object *
wait_line(const char *rid, const char *message)
{
	struct line_query q = { "request_id", rid, message, NULL };

	CHECK(wait_until(find_line, &q, WAIT_MS), "no log line with "
	    "request_id %s%s%s", rid, message ? " and message " : "",
	    message ? message : "");
	return q.found;
}

/* How many log lines have `key` equal to `value`. */
static int
count_lines(const char *key, const char *value)
{
	json_object *arr = log_objects();
	int n = 0;

	for (size_t i = 0; i < json_object_array_length(arr); i++)
		n += str_eq(json_object_array_get_idx(arr, i), key, value);
	json_object_put(arr);
	return n;
}

/* Integer member, or -1. */
static int64_t
int_of(json_object *j, const char *key)
{
	json_object *v = json_path(j, key);

	return v != NULL && json_object_is_type(v, json_type_int) ?
	    json_object_get_int64(v) : -1;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static int
is_rfc3339_ms(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (s == NULL || strlen(s) != sizeof(shape) - 1)
		return 0;
	for (size_t i = 0; shape[i] != '\0'; i++)
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) :
		    s[i] != shape[i])
			return 0;
	return 1;
}

static int
is_request_id(const char *s)
{
	if (s == NULL || strlen(s) != 20)
		return 0;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s) && (*s < 'a' || *s > 'f'))
			return 0;
	return 1;
}

/* Call line on fd, expect `status`, and return the reply's request_id
 * (a new string: free it). */
static char *
call_rid(int fd, const char *line, int status)
{
	json_object *r = check_call(fd, line, status, NULL);
	const char *rid = json_path_str(r, "request_id");
	char *copy;

	CHECK(is_request_id(rid), "reply has no request_id: %s",
	    reply_text(r));
	copy = strdup(rid);
	json_object_put(r);
	return copy;
}

/* The common fields of a line about one call of `command`
 * (of good.so, unless plugin says otherwise). */
static void
check_call_line(json_object *j, const char *rid, const char *client_id,
    const char *command, int status, const char *level)
{
	const char *text = reply_text(j);

	CHECK(is_rfc3339_ms(json_path_str(j, "timestamp")),
	    "timestamp: %s", text);
	CHECK(str_eq(j, "level", level), "level %s: %s", level, text);
	CHECK(json_path_str(j, "message") != NULL, "message: %s", text);
	CHECK(str_eq(j, "service", "orders-svc"), "service: %s", text);
	CHECK(str_eq(j, "request_id", rid), "request_id: %s", text);
	CHECK(str_eq(j, "id", client_id), "id %s: %s", client_id, text);
	CHECK(str_eq(j, "command", command), "command: %s", text);
	CHECK(str_eq(j, "plugin", "good"), "plugin: %s", text);
	CHECK(str_eq(j, "plugin_version", "1.0.0"), "version: %s", text);
	CHECK(int_of(j, "generation") >= 1, "generation: %s", text);
	CHECK(int_of(j, "status") == status, "status %d: %s", status, text);
	CHECK(json_path(j, "duration_ms") != NULL && json_object_get_double(
	    json_path(j, "duration_ms")) >= 0, "duration_ms: %s", text);
	CHECK(json_path(j, "cold_start") != NULL && json_object_is_type(
	    json_path(j, "cold_start"), json_type_boolean), "cold_start: %s",
	    text);
	CHECK(int_of(j, "pid") == (int64_t)getpid(), "pid %d: %s",
	    (int)getpid(), text);
	CHECK(int_of(j, "uid") == (int64_t)getuid(), "uid: %s", text);
}

Test(observe, log_lines_carry_the_request_context)
{
	struct {
		const char *id, *line, *command, *code, *level;
		int status;
	} calls[] = {
		{ "ok-1", "{\"id\":\"ok-1\",\"command\":\"test.echo\","
		    "\"payload\":{\"a\":1},\"want_request_id\":true}",
		    "test.echo", NULL, "info", 200 },
		{ "bad-1", "{\"id\":\"bad-1\",\"command\":\"test.validate\","
		    "\"payload\":{\"bad\":true},\"want_request_id\":true}",
		    "test.validate", "invalid_payload", "warn", 400 },
		{ "fail-1", "{\"id\":\"fail-1\",\"command\":\"test.fail\","
		    "\"want_request_id\":true}", "test.fail", "conflict",
		    "warn", 409 },
		{ "boom-1", "{\"id\":\"boom-1\",\"command\":\"test.fail500\","
		    "\"want_request_id\":true}", "test.fail500",
		    "command_failed", "error", 500 },
		{ "slow-1", "{\"id\":\"slow-1\",\"command\":\"test.sleep\","
		    "\"payload\":{\"ms\":400},\"timeout_ms\":50,"
		    "\"want_request_id\":true}", "test.sleep", "timeout",
		    "error", 504 },
	};
	char *rid, quoted[64];
	json_object *j;
	int fd;

	check_start_with(good_plugins, "access_log = true\n"
	    "service = orders-svc");
	fd = check_connect();
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		rid = call_rid(fd, calls[i].line, calls[i].status);
		j = wait_line(rid, NULL);
		snprintf(quoted, sizeof(quoted), "%s", calls[i].id);
		check_call_line(j, rid, quoted, calls[i].command,
		    calls[i].status, calls[i].level);
		CHECK(str_eq(j, "error_code", calls[i].code),
		    "error_code %s: %s", calls[i].code ? calls[i].code :
		    "absent", reply_text(j));
		if (calls[i].status == 504)
			CHECK(json_object_get_double(json_path(j,
			    "duration_ms")) >= 50.0, "a 504 after 50 ms took "
			    "less: %s", reply_text(j));
		json_object_put(j);
		free(rid);
	}

	/* A plugin's own log line carries the same context. */
	rid = call_rid(fd, "{\"id\":7,\"command\":\"test.log\",\"payload\":"
	    "{\"msg\":\"from the plugin\",\"level\":2},"
	    "\"want_request_id\":true}", 200);
	j = wait_line(rid, "from the plugin");
	CHECK(str_eq(j, "level", "warn"), "plugin line level: %s",
	    reply_text(j));
	CHECK(int_of(j, "id") == 7 && str_eq(j, "command", "test.log") &&
	    str_eq(j, "plugin", "logger") && str_eq(j, "plugin_version",
	    "1.0.0") && int_of(j, "generation") >= 1 &&
	    str_eq(j, "service", "orders-svc") &&
	    int_of(j, "pid") == (int64_t)getpid(), "plugin line context: %s",
	    reply_text(j));
	json_object_put(j);
	free(rid);

	/* Errors no plugin made are logged too. */
	rid = call_rid(fd, "{\"id\":\"nope-1\",\"command\":\"no.such\","
	    "\"want_request_id\":true}", 404);
	j = wait_line(rid, NULL);
	CHECK(str_eq(j, "level", "warn") && str_eq(j, "command", "no.such") &&
	    int_of(j, "status") == 404 &&
	    str_eq(j, "error_code", "unknown_command") &&
	    str_eq(j, "id", "nope-1"), "404 line: %s", reply_text(j));
	json_object_put(j);
	free(rid);
	close(fd);
	check_stop_clean();
}

/* The message logger.so's test.log writes with "hostile": true, as a JSON
 * reader must see it: bytes that are not UTF-8 became U+FFFD. */
static const char hostile_decoded[] = "say \"hi\"\\ \n{\"level\":\"fake\"}\r\n"
    "\x01\x02\x1b[31m\x1f\x7f tab\t bad utf-8: \xef\xbf\xbd\xef\xbf\xbd "
    "\xef\xbf\xbd( \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd cut "
    "\xef\xbf\xbd\xef\xbf\xbd ok: \xc3\xa9\xe2\x82\xac";

Test(observe, a_hostile_plugin_message_cannot_break_the_log)
{
	json_object *j;
	char *rid, *text;
	int fd;

	check_start_with(good_plugins, NULL);
	fd = check_connect();
	rid = call_rid(fd, "{\"command\":\"test.log\",\"payload\":"
	    "{\"hostile\":true},\"want_request_id\":true}", 200);
	j = wait_line(rid, NULL); /* log_objects() parsed every line */
	CHECK(str_eq(j, "message", hostile_decoded), "the message did not "
	    "survive as text: %s", reply_text(j));
	CHECK(str_eq(j, "level", "info") && json_path(j, "fake") == NULL,
	    "the message leaked into the line's fields: %s", reply_text(j));
	/* The plugin's line and the cold start's access line, no more: the
	 * message's newlines did not start lines of their own. */
	CHECK(count_lines("request_id", rid) == 2, "one call, two lines");
	json_object_put(j);

	/* Raw bytes: no control byte or DEL anywhere but the newlines. */
	text = daemon_log(check_daemon());
	for (const char *p = text; *p != '\0'; p++)
		CHECK(*p == '\n' || ((unsigned char)*p >= 0x20 && *p != 0x7f),
		    "raw byte 0x%02x in the log", (unsigned char)*p);
	free(text);
	free(rid);
	close(fd);
	check_stop_clean();
}

Test(observe, text_format_keeps_one_line_per_event)
{
	char *text, *rid;
	int fd, n = 0;

	check_start_with(good_plugins, "log_format = text\naccess_log = true");
	fd = check_connect();
	rid = call_rid(fd, "{\"command\":\"test.log\",\"payload\":"
	    "{\"hostile\":true},\"want_request_id\":true}", 200);
	CHECK(daemon_log_wait(check_daemon(), "\"call finished\"", WAIT_MS),
	    "no access line");
	text = daemon_log(check_daemon());
	/* Two lines name the request: the plugin's and the access line. */
	for (const char *at = strstr(text, rid); at != NULL;
	    at = strstr(at + 1, rid))
		n++;
	CHECK(n == 2, "request id %s in %d lines, want 2:\n%s", rid, n, text);
	CHECK(strstr(text, " info \"call finished\" service=cmdhostd "
	    "request_id=")
	    != NULL && strstr(text, " command=test.log plugin=logger "
	    "plugin_version=1.0.0 generation=") != NULL &&
	    strstr(text, " status=200 duration_ms=") != NULL,
	    "text access line shape:\n%s", text);
	for (const char *p = text; *p != '\0'; p++)
		CHECK(*p == '\n' || ((unsigned char)*p >= 0x20 && *p != 0x7f),
		    "raw byte 0x%02x in the text log", (unsigned char)*p);
	free(text);
	free(rid);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ cold start */

/* Lines of command `cmd` with generation gen: how many, and how many
 * with cold_start true; *first_cold: the cold one was the earliest. */
static void
cold_counts(const char *cmd, int64_t gen, int *lines, int *cold,
    int *first_cold)
{
	json_object *arr = log_objects();
	const char *first_rid = NULL, *cold_rid = NULL;

	*lines = *cold = 0;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *j = json_object_array_get_idx(arr, i);
		const char *rid = json_path_str(j, "request_id");

		if (!str_eq(j, "command", cmd) || int_of(j, "generation") !=
		    gen || json_path(j, "status") == NULL)
			continue;
		(*lines)++;
		if (first_rid == NULL || strcmp(rid, first_rid) < 0)
			first_rid = rid;
		if (json_object_get_boolean(json_path(j, "cold_start"))) {
			(*cold)++;
			cold_rid = rid;
		}
	}
	*first_cold = cold_rid != NULL && first_rid != NULL &&
	    strcmp(cold_rid, first_rid) == 0;
	json_object_put(arr);
}

static int
answers_v2(void *arg)
{
	json_object *r = client_call(*(int *)arg,
	    "{\"command\":\"swap.version\"}");
	const char *v = json_path_str(reply_body(r), "version");
	int ok = v != NULL && strcmp(v, "2") == 0;

	json_object_put(r);
	return ok;
}

struct gen_lines {
	int64_t gen;
	int want;
};

static int
has_gen_lines(void *arg)
{
	struct gen_lines *g = arg;
	int lines, cold, first;

	cold_counts("swap.version", g->gen, &lines, &cold, &first);
	return lines >= g->want;
}

Test(observe, cold_start_is_true_once_per_generation)
{
	struct daemon *d;
	struct gen_lines g;
	int fd, lines, cold, first;
	json_object *r;
	int64_t gen1, gen2;

	d = check_start_prepared(&(struct daemon_opts){ .plugins = NULL,
	    .config = "access_log = true" }, NULL, NULL);
	CHECK(daemon_install_plugin(d, "swap_v1.so", "swap.so") == 0,
	    "install swap_v1");
	fd = check_connect();
	r = check_call(fd, "{\"command\":\"host.reload\"}", 200, NULL);
	json_object_put(r);
	for (int i = 0; i < 5; i++)
		json_object_put(check_call(fd, "{\"command\":\"swap.version\"}",
		    200, NULL));
	r = check_call(fd, "{\"command\":\"host.stats\"}", 200, NULL);
	gen1 = int_of(reply_body(r), "plugins/swap.so/generation");
	json_object_put(r);
	CHECK(gen1 >= 1, "generation of swap.so");

	CHECK(daemon_install_plugin(d, "swap_v2.so", "swap.so") == 0,
	    "install swap_v2");
	CHECK(wait_until(answers_v2, &fd, WAIT_MS), "version 2 never served");
	for (int i = 0; i < 5; i++)
		json_object_put(check_call(fd, "{\"command\":\"swap.version\"}",
		    200, NULL));
	r = check_call(fd, "{\"command\":\"host.stats\"}", 200, NULL);
	gen2 = int_of(reply_body(r), "plugins/swap.so/generation");
	json_object_put(r);
	CHECK(gen2 > gen1, "a new generation after the swap");

	g.gen = gen1;
	g.want = 5;
	CHECK(wait_until(has_gen_lines, &g, WAIT_MS), "access lines of gen 1");
	cold_counts("swap.version", gen1, &lines, &cold, &first);
	CHECK(cold == 1 && first, "generation %lld: %d lines, %d cold (want "
	    "1, the first)", (long long)gen1, lines, cold);
	g.gen = gen2;
	g.want = 6;
	CHECK(wait_until(has_gen_lines, &g, WAIT_MS), "access lines of gen 2");
	cold_counts("swap.version", gen2, &lines, &cold, &first);
	CHECK(cold == 1 && first, "generation %lld: %d lines, %d cold (want "
	    "1, the first)", (long long)gen2, lines, cold);
	close(fd);
	check_stop_clean();
}

Test(observe, without_access_log_only_the_cold_start_and_errors_are_logged)
{
	char *rid1, *rid2, *rid3;
	json_object *j;
	int fd;

	check_start_with(good_plugins, NULL);
	fd = check_connect();
	rid1 = call_rid(fd, "{\"command\":\"test.echo\","
	    "\"want_request_id\":true}", 200);
	rid2 = call_rid(fd, "{\"command\":\"test.echo\","
	    "\"want_request_id\":true}", 200);
	rid3 = call_rid(fd, "{\"command\":\"test.fail\","
	    "\"want_request_id\":true}", 409);
	j = wait_line(rid3, NULL);
	json_object_put(j);
	j = wait_line(rid1, NULL);
	CHECK(json_object_get_boolean(json_path(j, "cold_start")) &&
	    str_eq(j, "level", "info"), "first call: %s", reply_text(j));
	json_object_put(j);
	/* rid3's line came after rid2's call was answered and logged. */
	CHECK(count_lines("request_id", rid2) == 0, "a warm 200 was logged "
	    "with access_log off");
	free(rid1);
	free(rid2);
	free(rid3);
	close(fd);
	check_stop_clean();
}

Test(observe, log_level_filters_access_lines)
{
	char *rid_ok, *rid_fail;
	json_object *j;
	int fd;

	check_start_with(good_plugins, "access_log = true\nlog_level = warn");
	fd = check_connect();
	rid_ok = call_rid(fd, "{\"command\":\"test.echo\","
	    "\"want_request_id\":true}", 200);
	rid_fail = call_rid(fd, "{\"command\":\"test.fail\","
	    "\"want_request_id\":true}", 409);
	j = wait_line(rid_fail, NULL);
	json_object_put(j);
	CHECK(count_lines("request_id", rid_ok) == 0, "an info line passed "
	    "log_level = warn");
	CHECK(count_lines("level", "info") == 0, "info lines at warn");
	free(rid_ok);
	free(rid_fail);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ request ids */

Test(observe, request_ids_in_replies)
{
	char *prev = NULL, *rid;
	json_object *r;
	int fd, fd2;

	check_start_with(good_plugins, NULL);
	fd = check_connect();
	fd2 = check_connect();
	r = check_call(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	CHECK(json_path(r, "request_id") == NULL, "request_id not asked for: "
	    "%s", reply_text(r));
	json_object_put(r);
	r = check_call(fd, "{\"command\":\"test.echo\",\"want_request_id\":"
	    "false}", 200, NULL);
	CHECK(json_path(r, "request_id") == NULL, "want_request_id false: %s",
	    reply_text(r));
	json_object_put(r);
	json_object_put(check_call(fd, "{\"command\":\"test.echo\","
	    "\"want_request_id\":1}", 400, "bad_request"));

	/* Unique and sorted by time, across two connections. */
	for (int i = 0; i < 200; i++) {
		rid = call_rid(i % 2 ? fd : fd2, "{\"command\":\"test.echo\","
		    "\"want_request_id\":true}", 200);
		if (prev != NULL)
			CHECK(strcmp(prev, rid) != 0, "request id repeated: %s",
			    rid);
		if (prev != NULL && strncmp(prev, rid, 11) > 0)
			CHECK(0, "request ids go back in time: %s then %s",
			    prev, rid);
		free(prev);
		prev = rid;
	}
	free(prev);

	/* The plugin sees the same id (cmdhost_request_id in its log). */
	rid = call_rid(fd, "{\"command\":\"test.log\",\"payload\":{\"msg\":"
	    "\"same id\"},\"want_request_id\":true}", 200);
	json_object_put(wait_line(rid, "same id"));
	free(rid);
	close(fd);
	close(fd2);
	check_stop_clean();
}

Test(observe, reply_request_id_config_switch)
{
	json_object *r;
	int fd;

	check_start_with(good_plugins, "reply_request_id = true");
	fd = check_connect();
	r = check_call(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	CHECK(is_request_id(json_path_str(r, "request_id")), "%s",
	    reply_text(r));
	json_object_put(r);
	r = check_call(fd, "{\"command\":\"no.such\"}", 404, NULL);
	CHECK(is_request_id(json_path_str(r, "request_id")), "%s",
	    reply_text(r));
	json_object_put(r);
	r = check_call(fd, "{\"command\":\"host.ping\"}", 200, NULL);
	CHECK(is_request_id(json_path_str(r, "request_id")), "%s",
	    reply_text(r));
	json_object_put(r);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ stats */

static json_object *
stats(int fd)
{
	json_object *r = check_call(fd, "{\"command\":\"host.stats\"}", 200,
	    NULL);
	json_object *body = json_object_get(reply_body(r));

	json_object_put(r);
	return body;
}

static void
send_n(int fd, int n, const char *line, int status)
{
	for (int i = 0; i < n; i++)
		json_object_put(check_call(fd, line, status, NULL));
}

Test(observe, stats_count_what_was_sent_per_status)
{
	json_object *s, *st;
	int fd;

	check_start_with(good_plugins, NULL);
	fd = check_connect();
	send_n(fd, 7, "{\"command\":\"test.echo\"}", 200);
	send_n(fd, 3, "{\"command\":\"test.created\"}", 201);
	send_n(fd, 4, "{\"command\":\"test.validate\",\"payload\":"
	    "{\"bad\":true}}", 400);
	send_n(fd, 2, "{\"command\":\"test.validate\"}", 200);
	send_n(fd, 2, "{\"command\":\"test.fields\"}", 400);
	send_n(fd, 5, "{\"command\":\"test.fail\"}", 409);
	send_n(fd, 2, "{\"command\":\"test.fail500\"}", 500);
	send_n(fd, 1, "{\"command\":\"test.noreply\"}", 500);
	send_n(fd, 3, "{\"command\":\"no.such\"}", 404);
	send_n(fd, 1, "not json", 400);

	s = stats(fd);
	st = json_path(s, "commands");
	CHECK(int_of(st, "test.echo/calls") == 7 &&
	    int_of(st, "test.echo/status/200") == 7, "test.echo: %s",
	    reply_text(json_path(st, "test.echo")));
	CHECK(int_of(st, "test.created/status/201") == 3, "test.created");
	CHECK(int_of(st, "test.validate/calls") == 6 &&
	    int_of(st, "test.validate/status/400") == 4 &&
	    int_of(st, "test.validate/status/200") == 2, "test.validate: %s",
	    reply_text(json_path(st, "test.validate")));
	CHECK(int_of(st, "test.fields/status/400") == 2, "test.fields: %s",
	    reply_text(json_path(st, "test.fields")));
	CHECK(int_of(st, "test.fail/calls") == 5 &&
	    int_of(st, "test.fail/status/409") == 5 &&
	    json_object_object_length(json_path(st, "test.fail/status")) == 1,
	    "test.fail: %s", reply_text(json_path(st, "test.fail")));
	CHECK(int_of(st, "test.fail500/status/500") == 2 &&
	    int_of(st, "test.noreply/status/500") == 1, "500s");
	CHECK(int_of(st, "test.sleep/calls") == -1 ||
	    int_of(st, "test.sleep/calls") == 0, "test.sleep was not called");
	CHECK(int_of(st, "test.echo/in_flight") == 0, "in flight");
	/* 30 lines before this host.stats, which counts itself. */
	CHECK(int_of(s, "requests") == 31, "requests: %s", reply_text(s));
	CHECK(int_of(s, "connections/open") >= 1 &&
	    int_of(s, "connections/total") >= int_of(s, "connections/open"),
	    "connections: %s",
	    reply_text(json_path(s, "connections")));
	CHECK(int_of(s, "bytes_in") > 0 && int_of(s, "bytes_out") > 0 &&
	    int_of(s, "queue_depth") == 0 && int_of(s, "unavailable") == 0,
	    "daemon counters: %s", reply_text(s));
	CHECK(int_of(s, "plugins/good.so/loads") == 1 &&
	    int_of(s, "plugins/good.so/load_failures") == 0 &&
	    int_of(s, "plugins/good.so/generation") >= 1 &&
	    is_rfc3339_ms(json_path_str(s, "plugins/good.so/last_swap")),
	    "plugins: %s", reply_text(json_path(s, "plugins")));
	json_object_put(s);
	close(fd);
	check_stop_clean();
}

/*
 * Connections opened one after another spread over the event loops
 * (workers = 2): host.stats "loops" shows each loop's share, and no loop
 * has more than one over another, whichever loop woke to accept.  Those
 * closed leave their loop's count.
 */
Test(observe, connections_spread_over_the_loops)
{
	enum { N = 16 };
	json_object *s, *loops;
	int fds[N], fd, total = 0, lo = 1 << 30, hi = -1;

	check_start_with(good_plugins, NULL);
	for (int i = 0; i < N; i++) {
		fds[i] = check_connect();
		json_object_put(check_call(fds[i],
		    "{\"command\":\"test.echo\"}", 200, NULL));
	}
	fd = check_connect();
	s = stats(fd);
	loops = json_path(s, "loops");
	CHECK(loops != NULL && json_object_array_length(loops) == 2,
	    "loops: %s", reply_text(s));
	for (size_t i = 0; i < json_object_array_length(loops); i++) {
		json_object *o = json_object_array_get_idx(loops, i);
		int n = (int)int_of(o, "connections");

		CHECK(int_of(o, "loop") == (long long)i, "loop %zu: %s", i,
		    reply_text(o));
		total += n;
		lo = n < lo ? n : lo;
		hi = n > hi ? n : hi;
	}
	CHECK(total == N + 1 && hi - lo <= 1, "%d connections, %d..%d a "
	    "loop: %s", total, lo, hi, reply_text(loops));
	json_object_put(s);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	s = NULL;
	for (int64_t end = now_ms() + WAIT_MS; now_ms() < end; nap_ms(10)) {
		json_object_put(s);
		s = stats(fd);
		if (int_of(s, "connections/open") == 1)
			break;
	}
	total = 0;
	loops = json_path(s, "loops");
	for (size_t i = 0; loops != NULL && i < json_object_array_length(loops);
	    i++)
		total += (int)int_of(json_object_array_get_idx(loops, i),
		    "connections");
	CHECK(total == 1, "after the close: %s", reply_text(s));
	json_object_put(s);
	close(fd);
	check_stop_clean();
}

/*
 * A loop hands the end reading of one inline call to the start of the
 * next in the same read, to read the clock once per call: a call that
 * comes in a later read, after a pause, must still be timed from its own
 * read, not from the last call's end.
 */
Test(observe, a_call_is_timed_from_its_own_read)
{
	json_object *s;
	long long max;
	int fd;

	check_start_with(good_plugins, NULL);
	fd = check_connect();
	/* Two in one write: the second starts where the first ended. */
	CHECK(client_send(fd, "{\"command\":\"test.echo\"}\n"
	    "{\"command\":\"test.echo\"}") == 0, "send");
	free(client_recv_line(fd));
	free(client_recv_line(fd));
	nap_ms(300); /* the pause the next call must not be charged */
	json_object_put(check_call(fd, "{\"command\":\"test.echo\"}", 200,
	    NULL));
	s = stats(fd);
	max = int_of(s, "commands/test.echo/latency_us/max");
	CHECK(int_of(s, "commands/test.echo/calls") == 3 && max >= 0 &&
	    max < 250000, "max latency %lld us: %s", max,
	    reply_text(json_path(s, "commands/test.echo")));
	json_object_put(s);
	close(fd);
	check_stop_clean();
}

/* 30 calls of 2 ms, then 10 of 40 ms: p90 and above are the slow ones,
 * and p50 (the 20th of 40) stays a fast one even when a loaded machine
 * makes a few 2 ms calls slow (the 20/20 split this had sat on the edge). */
Test(observe, percentiles_follow_a_slower_command)
{
	json_object *s;
	int64_t p50, p90, p99, max;
	int fd;

	check_start_with(good_plugins, NULL);
	fd = check_connect();
	send_n(fd, 30, "{\"command\":\"test.sleep\",\"payload\":{\"ms\":2}}",
	    200);
	s = stats(fd);
	p50 = int_of(s, "commands/test.sleep/latency_us/p50");
	p99 = int_of(s, "commands/test.sleep/latency_us/p99");
	CHECK(p50 >= 2000 && p50 < 40000, "after 30 x 2 ms: p50 %lld, p99 "
	    "%lld", (long long)p50, (long long)p99);
	json_object_put(s);

	send_n(fd, 10, "{\"command\":\"test.sleep\",\"payload\":{\"ms\":40}}",
	    200);
	s = stats(fd);
	p90 = int_of(s, "commands/test.sleep/latency_us/p90");
	p99 = int_of(s, "commands/test.sleep/latency_us/p99");
	max = int_of(s, "commands/test.sleep/latency_us/max");
	CHECK(p90 >= 40000 && p99 >= 40000 && max >= 40000, "after 10 more "
	    "x 40 ms: p90 %lld, p99 %lld, max %lld", (long long)p90,
	    (long long)p99, (long long)max);
	CHECK(int_of(s, "commands/test.sleep/latency_us/p50") < 40000,
	    "p50 is still a 2 ms call: %s", reply_text(s));
	CHECK(int_of(s, "commands/test.sleep/latency_us/sum") >= 30 * 2000 +
	    10 * 40000, "sum: %s", reply_text(s));
	json_object_put(s);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ Prometheus */

/* A strict reader of the Prometheus text format (0.0.4), enough to
 * refuse what a scraper or promtool would. */
struct prom {
	char families[64][96];   /* names with a TYPE line, in order */
	char types[64][16];
	int n;
	int closed[64];          /* its samples ended: it may not reappear */
	char err[256];
};

static int
prom_name_ok(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' ||
	    s[0] == ':'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' ||
		    s[i] == ':'))
			return 0;
	return 1;
}

static int
prom_family(struct prom *p, const char *name)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->families[i], name) == 0)
			return i;
	return -1;
}

/* The family of a sample name: the name itself, or without _bucket,
 * _sum or _count for histograms and summaries. */
static int
prom_sample_family(struct prom *p, const char *name)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	char base[96];
	int f;

	if ((f = prom_family(p, name)) >= 0)
		return f;
	for (int k = 0; k < 3; k++) {
		size_t n = strlen(name), s = strlen(sfx[k]);

		if (n > s && strcmp(name + n - s, sfx[k]) == 0 && n - s <
		    sizeof(base)) {
			memcpy(base, name, n - s);
			base[n - s] = '\0';
			f = prom_family(p, base);
			if (f >= 0 && (strcmp(p->types[f], "histogram") == 0 ||
			    (k > 0 && strcmp(p->types[f], "summary") == 0)))
				return f;
		}
	}
	return -1;
}

/* Parse one sample line; *le gets the "le" label's value (or "").
 * Returns 0 or -1 with p->err. */
static int
prom_sample(struct prom *p, const char *line, char *name, size_t nsize,
    char *le, size_t lesize, char *labels, size_t lsize, double *value)
{
	const char *s = line, *start;
	char *end;
	size_t n, lat = 0;

	le[0] = labels[0] = '\0';
	for (start = s; *s != '\0' && *s != '{' && *s != ' '; s++)
		;
	n = (size_t)(s - start);
	if (!prom_name_ok(start, n) || n >= nsize)
		return snprintf(p->err, sizeof(p->err), "bad name: %s", line),
		    -1;
	memcpy(name, start, n);
	name[n] = '\0';
	if (*s == '{') {
		s++;
		while (*s != '}') {
			const char *ln = s;
			char val[256];
			size_t vn = 0;

			while (isalnum((unsigned char)*s) || *s == '_')
				s++;
			if (s == ln || isdigit((unsigned char)*ln) ||
			    s[0] != '=' || s[1] != '"')
				return snprintf(p->err, sizeof(p->err),
				    "bad label: %s", line), -1;
			n = (size_t)(s - ln);
			s += 2;
			while (*s != '"') {
				char c = *s++;

				if (c == '\0' || c == '\n')
					return snprintf(p->err, sizeof(p->err),
					    "open label value: %s", line), -1;
				if (c == '\\') {
					c = *s++;
					if (c == 'n')
						c = '\n';
					else if (c != '\\' && c != '"')
						return snprintf(p->err,
						    sizeof(p->err), "bad escape: "
						    "%s", line), -1;
				}
				if (vn + 1 < sizeof(val))
					val[vn++] = c;
			}
			val[vn] = '\0';
			s++;
			if (n == 2 && strncmp(ln, "le", 2) == 0)
				snprintf(le, lesize, "%s", val);
			else
				lat += (size_t)snprintf(labels + lat,
				    lat < lsize ? lsize - lat : 0, "%.*s=%s,",
				    (int)n, ln, val);
			if (*s == ',')
				s++;
			else if (*s != '}')
				return snprintf(p->err, sizeof(p->err),
				    "bad label list: %s", line), -1;
		}
		s++;
	}
	if (*s != ' ')
		return snprintf(p->err, sizeof(p->err), "no value: %s", line),
		    -1;
	s++;
	if (strcmp(s, "+Inf") == 0)
		*value = INFINITY;
	else if (strcmp(s, "-Inf") == 0)
		*value = -INFINITY;
	else if (strcmp(s, "NaN") == 0)
		*value = NAN;
	else {
		errno = 0;
		*value = strtod(s, &end);
		if (end == s || *end != '\0' || errno != 0)
			return snprintf(p->err, sizeof(p->err), "bad value: %s",
			    line), -1;
	}
	return 0;
}

/*
 * Check text as a whole: HELP and TYPE before a family's samples, one
 * TYPE per family, families contiguous, counters named *_total, and each
 * histogram series with ascending buckets, cumulative counts, a +Inf
 * bucket equal to _count.  Returns 0 or -1 with p->err.
 */
static int
prom_check(struct prom *p, char *text, int *samples)
{
	char *line, *next, name[128], le[256], labels[512];
	char hist_series[512] = "";
	double value, last_le = -INFINITY, last_count = -1, inf_count = -1;
	int cur = -1, helped = 0;

	*samples = 0;
	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next == NULL)
			return snprintf(p->err, sizeof(p->err), "no final "
			    "newline"), -1;
		*next++ = '\0';
		if (strncmp(line, "# HELP ", 7) == 0) {
			helped = 1;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char *sp = strchr(line + 7, ' ');

			if (sp == NULL || p->n == 64)
				return snprintf(p->err, sizeof(p->err),
				    "bad TYPE: %s", line), -1;
			*sp = '\0';
			if (!prom_name_ok(line + 7, strlen(line + 7)) ||
			    prom_family(p, line + 7) >= 0)
				return snprintf(p->err, sizeof(p->err),
				    "bad or repeated TYPE: %s", line + 7), -1;
			if (strcmp(sp + 1, "counter") != 0 &&
			    strcmp(sp + 1, "gauge") != 0 &&
			    strcmp(sp + 1, "histogram") != 0 &&
			    strcmp(sp + 1, "summary") != 0)
				return snprintf(p->err, sizeof(p->err),
				    "bad type: %s", sp + 1), -1;
			if (!helped)
				return snprintf(p->err, sizeof(p->err),
				    "no HELP for %s", line + 7), -1;
			if (strcmp(sp + 1, "counter") == 0 && (strlen(line + 7)
			    < 6 || strcmp(line + 7 + strlen(line + 7) - 6,
			    "_total") != 0))
				return snprintf(p->err, sizeof(p->err),
				    "counter not named _total: %s", line + 7),
				    -1;
			if (cur >= 0)
				p->closed[cur] = 1;
			snprintf(p->families[p->n], sizeof(p->families[0]),
			    "%s", line + 7);
			snprintf(p->types[p->n], sizeof(p->types[0]), "%s",
			    sp + 1);
			cur = p->n++;
			helped = 0;
			continue;
		}
		if (line[0] == '#' || line[0] == '\0')
			return snprintf(p->err, sizeof(p->err), "stray line: "
			    "'%s'", line), -1;
		if (prom_sample(p, line, name, sizeof(name), le, sizeof(le),
		    labels, sizeof(labels), &value) < 0)
			return -1;
		(*samples)++;
		{
			int f = prom_sample_family(p, name);

			if (f < 0 || f != cur || p->closed[f])
				return snprintf(p->err, sizeof(p->err),
				    "sample outside its family: %s", line), -1;
			if (strcmp(p->types[f], "histogram") != 0)
				continue;
		}
		/* Histogram series: buckets, then _sum, then _count. */
		if (strstr(name, "_bucket") != NULL) {
			double bound;

			if (le[0] == '\0')
				return snprintf(p->err, sizeof(p->err),
				    "bucket without le: %s", line), -1;
			bound = strcmp(le, "+Inf") == 0 ? INFINITY :
			    strtod(le, NULL);
			if (strcmp(hist_series, labels) != 0) {
				snprintf(hist_series, sizeof(hist_series), "%s",
				    labels);
				last_le = -INFINITY;
				last_count = -1;
				inf_count = -1;
			}
			if (bound <= last_le || value < last_count)
				return snprintf(p->err, sizeof(p->err),
				    "buckets not ascending and cumulative: %s",
				    line), -1;
			last_le = bound;
			last_count = value;
			if (isinf(bound))
				inf_count = value;
		} else if (strstr(name, "_count") != NULL) {
			if (inf_count < 0 || value != inf_count)
				return snprintf(p->err, sizeof(p->err),
				    "_count %g is not the +Inf bucket %g: %s",
				    value, inf_count, line), -1;
		}
	}
	return 0;
}

/* The value of the sample line that starts with `prefix` ("name{...} "),
 * or -1. */
static double
prom_value(const char *text, const char *prefix)
{
	const char *at = strstr(text, prefix);

	while (at != NULL && at != text && at[-1] != '\n')
		at = strstr(at + 1, prefix);
	return at != NULL ? strtod(at + strlen(prefix), NULL) : -1;
}

Test(observe, prometheus_text_is_valid_and_agrees_with_stats)
{
	char *argv[6], *out = NULL, *err = NULL, *copy;
	struct prom p;
	int fd, status = -1, samples;

	check_start_with(good_plugins, NULL);
	fd = check_connect();
	send_n(fd, 6, "{\"command\":\"test.echo\"}", 200);
	send_n(fd, 3, "{\"command\":\"test.fail\"}", 409);
	send_n(fd, 4, "{\"command\":\"test.sleep\",\"payload\":{\"ms\":3}}",
	    200);
	close(fd);

	argv[0] = (char *)CLI;
	argv[1] = (char *)"-s";
	argv[2] = (char *)daemon_socket_path(check_daemon());
	argv[3] = (char *)"stats";
	argv[4] = (char *)"--prometheus";
	argv[5] = NULL;
	CHECK(run_command(argv, NULL, 30000, &status, &out, &err) == 0 &&
	    status == 0, "cmdhost stats --prometheus: status %d, %s", status,
	    err ? err : "");

	memset(&p, 0, sizeof(p));
	copy = strdup(out);
	CHECK(prom_check(&p, copy, &samples) == 0, "not valid Prometheus "
	    "text: %s\n%s", p.err, out);
	free(copy);
	CHECK(samples > 40, "only %d samples", samples);
	CHECK(prom_value(out, "cmdhost_command_calls_total{command=\"test.echo\"} ")
	    == 6, "echo calls:\n%s", out);
	CHECK(prom_value(out, "cmdhost_command_replies_total{command=\"test.fail\","
	    "status=\"409\"} ") == 3, "fail 409s:\n%s", out);
	CHECK(prom_value(out, "cmdhost_command_duration_seconds_count{command="
	    "\"test.sleep\"} ") == 4, "sleep count:\n%s", out);
	CHECK(prom_value(out, "cmdhost_command_duration_seconds_bucket{command="
	    "\"test.sleep\",le=\"0.001023\"} ") == 0 &&
	    prom_value(out, "cmdhost_command_duration_seconds_bucket{command="
	    "\"test.sleep\",le=\"0.262143\"} ") == 4, "sleep buckets:\n%s",
	    out);
	CHECK(prom_value(out, "cmdhost_command_duration_seconds_sum{command="
	    "\"test.sleep\"} ") >= 0.012, "sleep sum:\n%s", out);
	CHECK(prom_value(out, "cmdhost_plugin_loads_total{file=\"good.so\"} ")
	    == 1, "plugin loads:\n%s", out);
	CHECK(strstr(out, "cmdhost_plugin_info{file=\"good.so\",plugin="
	    "\"good\",version=\"1.0.0\"} 1\n") != NULL, "plugin info:\n%s",
	    out);

	if (access(PROMTOOL, X_OK) == 0) {
		char *pargv[] = { (char *)PROMTOOL, (char *)"check",
		    (char *)"metrics", NULL };
		char *pout = NULL, *perr = NULL;

		CHECK(run_command(pargv, out, 30000, &status, &pout, &perr) ==
		    0 && status == 0, "promtool check metrics: status %d\n%s%s",
		    status, pout ? pout : "", perr ? perr : "");
		free(pout);
		free(perr);
	} else {
		cr_log_warn("%s is not installed: checked by the strict "
		    "parser only", PROMTOOL);
	}
	free(out);
	free(err);
	check_stop_clean();
}

Test(observe, stats_table_shows_commands_and_plugins)
{
	char *argv[5], *out = NULL, *err = NULL;
	int fd, status = -1;

	check_start_with(good_plugins, NULL);
	fd = check_connect();
	send_n(fd, 2, "{\"command\":\"test.fail\"}", 409);
	close(fd);
	argv[0] = (char *)CLI;
	argv[1] = (char *)"-s";
	argv[2] = (char *)daemon_socket_path(check_daemon());
	argv[3] = (char *)"stats";
	argv[4] = NULL;
	CHECK(run_command(argv, NULL, 30000, &status, &out, &err) == 0 &&
	    status == 0, "cmdhost stats: %d", status);
	CHECK(strstr(out, "COMMAND") && strstr(out, "TIMEOUTS") &&
	    strstr(out, "P90_US") && strstr(out, "PLUGIN_FILE") &&
	    strstr(out, "good.so") && strstr(out, "LAST_SWAP"),
	    "table:\n%s", out);
	/* test.fail: 2 calls, 0 2xx, 2 4xx. */
	CHECK(strstr(out, "test.fail ") != NULL, "row:\n%s", out);
	{
		const char *row = strstr(out, "test.fail ");
		long calls, c2, c4;

		CHECK(sscanf(row, "test.fail %ld %ld %ld", &calls, &c2, &c4) ==
		    3 && calls == 2 && c2 == 0 && c4 == 2, "row: %.80s", row);
	}
	free(out);
	free(err);
	check_stop_clean();
}

/* ------------------------------------------------------------ edge cases */

struct in_flight_wait {
	int fd;
	const char *path;
};

static int
shows_in_flight(void *arg)
{
	struct in_flight_wait *w = arg;
	json_object *r = client_call(w->fd, "{\"command\":\"host.stats\"}");
	int ok = int_of(reply_body(r), w->path) == 1;

	json_object_put(r);
	return ok;
}

/* A call that never ran (expired in the pool's queue) does not use up its
 * generation's cold start: the first call that runs gets it. */
Test(observe, cold_start_goes_to_the_first_call_that_runs)
{
	static const char *const plugins[] = { "good.so", "swap_v1.so", NULL };
	struct in_flight_wait w;
	char *rid_late, *rid_first;
	json_object *j;
	int fd_slow, fd;

	check_start_with(plugins, "pool_threads = 1\naccess_log = true");
	fd_slow = check_connect();
	fd = check_connect();
	CHECK(client_send(fd_slow, "{\"command\":\"swap.slow\",\"payload\":"
	    "{\"ms\":600}}") == 0, "send swap.slow");
	w.fd = fd;
	w.path = "commands/swap.slow/in_flight";
	CHECK(wait_until(shows_in_flight, &w, WAIT_MS), "swap.slow never "
	    "held the pool");
	/* good.so's first call waits behind it and expires unstarted. */
	rid_late = call_rid(fd, "{\"command\":\"test.sleep\",\"payload\":"
	    "{\"ms\":1},\"timeout_ms\":50,\"want_request_id\":true}", 504);
	{
		char *line = client_recv_line(fd_slow);

		CHECK(line != NULL && strstr(line, "\"status\":200") != NULL,
		    "swap.slow: %s", line ? line : "no reply");
		free(line);
	}
	rid_first = call_rid(fd, "{\"command\":\"test.echo\","
	    "\"want_request_id\":true}", 200);

	j = wait_line(rid_late, NULL);
	CHECK(json_path(j, "cold_start") != NULL &&
	    !json_object_get_boolean(json_path(j, "cold_start")),
	    "a call that never ran took the cold start: %s", reply_text(j));
	json_object_put(j);
	j = wait_line(rid_first, NULL);
	CHECK(json_object_get_boolean(json_path(j, "cold_start")),
	    "the first call that ran is not the cold start: %s",
	    reply_text(j));
	json_object_put(j);
	free(rid_late);
	free(rid_first);
	close(fd_slow);
	close(fd);
	check_stop_clean();
}

/* A client that hangs up while its call runs on the pool: the call is
 * still counted and logged, with a message that says the reply was lost. */
Test(observe, a_call_whose_client_hung_up_is_counted_and_logged)
{
	struct line_query q = { "command", "test.sleep",
	    "the client closed the connection before the reply; the result "
	    "was dropped", NULL };
	json_object *s;
	int fd_gone, fd;

	check_start_with(good_plugins, NULL);
	fd_gone = check_connect();
	fd = check_connect();
	CHECK(client_send(fd_gone, "{\"command\":\"test.sleep\",\"payload\":"
	    "{\"ms\":300,\"say\":\"sleep started\"}}") == 0, "send");
	/* Hang up only once the call runs (in_flight counts queued calls
	 * too: a call still queued would never run). */
	CHECK(daemon_log_wait(check_daemon(), "sleep started", WAIT_MS),
	    "the call never started");
	close(fd_gone);
	CHECK(wait_until(find_line, &q, WAIT_MS), "no log line for the call "
	    "whose client hung up");
	CHECK(int_of(q.found, "status") == 200 && str_eq(q.found, "level",
	    "warn"), "%s", reply_text(q.found));
	json_object_put(q.found);
	s = stats(fd);
	CHECK(int_of(s, "commands/test.sleep/calls") == 1 &&
	    int_of(s, "commands/test.sleep/status/200") == 1 &&
	    int_of(s, "commands/test.sleep/in_flight") == 0,
	    "the call was not counted: %s", reply_text(s));
	json_object_put(s);
	close(fd);
	check_stop_clean();
}
