/*
 * test_protocol.c - wire protocol v1 against a real daemon: every row of
 * the status table, ids, framing, pipelining, many connections, the admin
 * commands, and that slow commands do not hold up fast ones.
 */
#include <criterion/criterion.h>

#include <sys/socket.h>

#include <ctype.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct daemon *d;

TestSuite(protocol, .fini = check_free);

static void
start_with(const char *const *plugins, const char *config,
    int world_accessible)
{
	struct daemon_opts o = { .plugins = plugins, .config = config,
	    .world_accessible = world_accessible };

	d = check_start(&o);
}

static void
start(const char *config)
{
	static const char *const good[] = { "good.so", NULL };

	start_with(good, config, 0);
}

/* check_call(), and for a 2xx status also require a body.  Returns the
 * reply (put it). */
static json_object *
expect(int fd, const char *line, int status, const char *code)
{
	json_object *j = check_call(fd, line, status, code);

	if (status >= 200 && status < 300)
		CHECK(reply_body(j) != NULL || json_object_object_get_ex(j,
		    "body", NULL), "%s -> %s: no body", line, reply_text(j));
	return j;
}

/* Read one reply without sending; require it.  Returns it (put it). */
static json_object *
recv_reply(int fd)
{
	char *line = client_recv_line(fd);
	json_object *j;

	CHECK(line != NULL, "no reply line (EOF or timeout)");
	j = json_tokener_parse(line);
	CHECK(j != NULL, "reply is not JSON: %s", line);
	free(line);
	return j;
}

static void
expect_put(int fd, const char *line, int status, const char *code)
{
	json_object_put(expect(fd, line, status, code));
}

/* Non-zero if `field` occurs in msg as a whole word (not inside another
 * identifier), so one-letter field names are checked honestly. */
static int
names_field(const char *msg, const char *field)
{
	size_t n = strlen(field);
	const char *p = msg;

	if (msg == NULL)
		return 0;
	while ((p = strstr(p, field)) != NULL) {
		int before = p == msg ? ' ' : (unsigned char)p[-1];
		int after = (unsigned char)p[n];

		if (!isalnum(before) && before != '_' && !isalnum(after) &&
		    after != '_')
			return 1;
		p++;
	}
	return 0;
}

static int64_t
int_at(json_object *j, const char *path)
{
	json_object *v = json_path(j, path);

	CHECK(v != NULL && json_object_is_type(v, json_type_int),
	    "%s is not an integer in %s", path, reply_text(j));
	return json_object_get_int64(v);
}

static const char *
str_at(json_object *j, const char *path)
{
	json_object *v = json_path(j, path);

	CHECK(v != NULL && json_object_is_type(v, json_type_string),
	    "%s is not a string in %s", path, reply_text(j));
	return json_object_get_string(v);
}

static int
has_data(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return poll(&p, 1, 0) > 0;
}

/* ------------------------------------------------------------ 2xx */

Test(protocol, ok_200_body_is_reply, .timeout = 60)
{
	const char *payload = "{\"a\":1,\"b\":[true,null,\"x\"],\"c\":{}}";
	char line[256];
	json_object *j, *want;
	int fd;

	start(NULL);
	fd = check_connect();
	snprintf(line, sizeof(line),
	    "{\"id\":1,\"command\":\"test.echo\",\"payload\":%s}", payload);
	j = expect(fd, line, 200, NULL);
	want = json_tokener_parse(payload);
	CHECK(json_object_equal(reply_body(j), want), "body %s, want %s",
	    reply_text(j), payload);
	CHECK(!json_object_object_get_ex(j, "error", NULL),
	    "a 200 reply has an error member: %s", reply_text(j));
	json_object_put(want);
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

Test(protocol, created_201, .timeout = 60)
{
	json_object *j;
	int fd;

	start(NULL);
	fd = check_connect();
	j = expect(fd, "{\"command\":\"test.created\"}", 201, NULL);
	CHECK(json_object_get_boolean(json_path(j, "body/created")),
	    "body %s", reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 400 */

Test(protocol, bad_request_400, .timeout = 60)
{
	static const char *const lines[] = {
		"{nope",
		"not json at all",
		"[1,2,3]",
		"[{\"command\":\"test.echo\"}]",
		"\"test.echo\"",
		"42",
		"null",
		"{}",
		"{\"payload\":{}}",
		"{\"command\":5}",
		"{\"command\":null}",
		"{\"command\":true}",
		"{\"command\":[\"test.echo\"]}",
		"{\"command\":{\"name\":\"test.echo\"}}",
		"{\"command\":\"test.echo\",\"id\":[1]}",
		"{\"command\":\"test.echo\",\"id\":{\"a\":1}}",
		"{\"command\":\"test.echo\",\"id\":true}",
		"{\"command\":\"test.echo\",\"id\":1.5}",
		"{\"command\":\"test.echo\",\"timeout_ms\":\"100\"}",
		"{\"command\":\"test.echo\",\"timeout_ms\":1.5}",
		"{\"command\":\"test.echo\",\"timeout_ms\":0}",
		"{\"command\":\"test.echo\",\"timeout_ms\":-5}",
		"{\"command\":\"test.echo\",\"timeout_ms\":[100]}",
	};
	json_object *j, *id;
	size_t i;
	int fd;

	start(NULL);
	fd = check_connect();
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		expect_put(fd, lines[i], 400, "bad_request");
	/* Not JSON: the reply still has "id": null. */
	j = expect(fd, "{nope", 400, "bad_request");
	CHECK(json_object_object_get_ex(j, "id", &id) && id == NULL,
	    "want \"id\":null in %s", reply_text(j));
	CHECK(reply_error_message(j) != NULL, "no message in %s",
	    reply_text(j));
	json_object_put(j);
	/* The id of a parsed request is echoed even when it is refused. */
	j = expect(fd, "{\"id\":\"r7\",\"command\":5}", 400, "bad_request");
	CHECK(json_object_is_type(reply_id(j), json_type_string) &&
	    strcmp(json_object_get_string(reply_id(j)), "r7") == 0,
	    "id not echoed: %s", reply_text(j));
	json_object_put(j);
	/* Still usable after all that. */
	expect_put(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	close(fd);
	check_stop_clean();
}

#define FIELDS_OK "\"s\":\"x\",\"n\":1.5,\"i\":2,\"b\":true"

/* Send test.fields with payload members `members`, expect 400
 * invalid_payload whose message names `field`. */
static void
expect_field_error(int fd, const char *members, const char *field)
{
	char line[512];
	json_object *j;

	snprintf(line, sizeof(line),
	    "{\"command\":\"test.fields\",\"payload\":{%s}}", members);
	j = expect(fd, line, 400, "invalid_payload");
	CHECK(names_field(reply_error_message(j), field),
	    "%s\n -> %s\n message does not name field \"%s\"", line,
	    reply_text(j), field);
	json_object_put(j);
}

Test(protocol, invalid_payload_400, .timeout = 60)
{
	static const char *const good[] = {
		FIELDS_OK,
		"\"s\":\"\",\"n\":-3,\"i\":-7,\"b\":false",
		"\"s\":\"x\",\"n\":1e3,\"i\":9007199254740993,\"b\":true",
		FIELDS_OK ",\"o\":{},\"a\":[],\"x\":null",
		FIELDS_OK ",\"o\":{\"k\":1},\"a\":[1,\"2\"],\"x\":[1]",
		FIELDS_OK ",\"x\":\"str\"",
		FIELDS_OK ",\"x\":{}",
		FIELDS_OK ",\"x\":7",
		FIELDS_OK ",\"o\":null,\"a\":null",
		FIELDS_OK ",\"unknown\":1",
	};
	static const struct {
		const char *members;
		const char *field;
	} bad[] = {
		/* missing, or null (which counts as absent) */
		{ "\"n\":1,\"i\":2,\"b\":true", "s" },
		{ "\"s\":null,\"n\":1,\"i\":2,\"b\":true", "s" },
		{ "\"s\":\"x\",\"i\":2,\"b\":true", "n" },
		{ "\"s\":\"x\",\"n\":1,\"b\":true", "i" },
		{ "\"s\":\"x\",\"n\":1,\"i\":2", "b" },
		{ "\"s\":\"x\",\"n\":1,\"i\":2,\"b\":null", "b" },
		/* wrong type, for each type */
		{ "\"s\":1,\"n\":1,\"i\":2,\"b\":true", "s" },
		{ "\"s\":true,\"n\":1,\"i\":2,\"b\":true", "s" },
		{ "\"s\":{},\"n\":1,\"i\":2,\"b\":true", "s" },
		{ "\"s\":[\"x\"],\"n\":1,\"i\":2,\"b\":true", "s" },
		{ "\"s\":\"x\",\"n\":\"1\",\"i\":2,\"b\":true", "n" },
		{ "\"s\":\"x\",\"n\":true,\"i\":2,\"b\":true", "n" },
		{ "\"s\":\"x\",\"n\":[1],\"i\":2,\"b\":true", "n" },
		{ "\"s\":\"x\",\"n\":1,\"i\":1.5,\"b\":true", "i" },
		{ "\"s\":\"x\",\"n\":1,\"i\":\"2\",\"b\":true", "i" },
		{ "\"s\":\"x\",\"n\":1,\"i\":true,\"b\":true", "i" },
		{ "\"s\":\"x\",\"n\":1,\"i\":2.0,\"b\":true", "i" },
		{ "\"s\":\"x\",\"n\":1,\"i\":1e2,\"b\":true", "i" },
		{ "\"s\":\"x\",\"n\":1,\"i\":2,\"b\":1", "b" },
		{ "\"s\":\"x\",\"n\":1,\"i\":2,\"b\":\"true\"", "b" },
		{ FIELDS_OK ",\"o\":[]", "o" },
		{ FIELDS_OK ",\"o\":\"x\"", "o" },
		{ FIELDS_OK ",\"o\":1", "o" },
		{ FIELDS_OK ",\"a\":{}", "a" },
		{ FIELDS_OK ",\"a\":\"x\"", "a" },
		{ FIELDS_OK ",\"a\":0", "a" },
	};
	char line[512];
	json_object *j;
	size_t i;
	int fd;

	start(NULL);
	fd = check_connect();
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(line, sizeof(line),
		    "{\"command\":\"test.fields\",\"payload\":{%s}}", good[i]);
		expect_put(fd, line, 200, NULL);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_field_error(fd, bad[i].members, bad[i].field);

	/* validate refuses, naming the field; accepts otherwise. */
	j = expect(fd, "{\"command\":\"test.validate\",\"payload\":"
	    "{\"bad\":true}}", 400, "invalid_payload");
	CHECK(names_field(reply_error_message(j), "bad"),
	    "message does not name \"bad\": %s", reply_text(j));
	json_object_put(j);
	expect_put(fd, "{\"command\":\"test.validate\",\"payload\":"
	    "{\"bad\":false}}", 200, NULL);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ 4xx/5xx */

Test(protocol, unknown_command_404, .timeout = 60)
{
	json_object *j;
	int fd;

	start(NULL);
	fd = check_connect();
	j = expect(fd, "{\"id\":\"u\",\"command\":\"no.such.command\"}", 404,
	    "unknown_command");
	CHECK(reply_error_message(j) != NULL, "no message: %s",
	    reply_text(j));
	CHECK(!json_object_object_get_ex(j, "body", NULL),
	    "an error reply has a body: %s", reply_text(j));
	json_object_put(j);
	/* Names are case-sensitive. */
	expect_put(fd, "{\"command\":\"TEST.ECHO\"}", 404, "unknown_command");
	expect_put(fd, "{\"command\":\"host.nope\"}", 404, "unknown_command");
	close(fd);
	check_stop_clean();
}

/* A request line of exactly `size` bytes (without the newline). */
static char *
padded_line(const char *id, size_t size)
{
	char head[128], *line;
	const char *tail = "\"}}";
	size_t h, pad;

	h = (size_t)snprintf(head, sizeof(head), "{\"id\":\"%s\","
	    "\"command\":\"test.echo\",\"payload\":{\"pad\":\"", id);
	cr_assert(size > h + strlen(tail));
	pad = size - h - strlen(tail);
	line = malloc(size + 1);
	cr_assert_not_null(line);
	memcpy(line, head, h);
	memset(line + h, 'x', pad);
	memcpy(line + h + pad, tail, strlen(tail) + 1);
	return line;
}

Test(protocol, request_too_large_413, .timeout = 60)
{
	char *small, *big, *huge, *both;
	json_object *j;
	int fd;

	start("max_request_bytes = 1024\n");
	fd = check_connect();
	small = padded_line("small", 900);
	big = padded_line("big", 2000);
	huge = padded_line("huge", 100000);

	expect_put(fd, small, 200, NULL);
	expect_put(fd, big, 413, "request_too_large");
	j = expect(fd, "{\"id\":\"after\",\"command\":\"test.echo\"}", 200,
	    NULL);
	CHECK(strcmp(json_object_get_string(reply_id(j)), "after") == 0,
	    "connection not usable after 413: %s", reply_text(j));
	json_object_put(j);
	expect_put(fd, huge, 413, "request_too_large");
	expect_put(fd, small, 200, NULL);

	/* An oversized line and a good one in the same write. */
	cr_assert(asprintf(&both, "%s\n{\"id\":\"next\",\"command\":"
	    "\"test.echo\"}\n", big) != -1);
	CHECK(client_send_raw(fd, both, strlen(both)) == 0, "send");
	j = recv_reply(fd);
	CHECK(reply_status(j) == 413, "want 413 first: %s", reply_text(j));
	json_object_put(j);
	j = recv_reply(fd);
	CHECK(reply_status(j) == 200 && strcmp(json_object_get_string(
	    reply_id(j)), "next") == 0, "want next's 200: %s", reply_text(j));
	json_object_put(j);
	free(both);
	free(small);
	free(big);
	free(huge);
	close(fd);
	check_stop_clean();
}

Test(protocol, plugin_failure_409, .timeout = 60)
{
	json_object *j;
	int fd;

	start(NULL);
	fd = check_connect();
	j = expect(fd, "{\"command\":\"test.fail\"}", 409, "conflict");
	CHECK(reply_error_message(j) != NULL &&
	    strstr(reply_error_message(j), "conflicts") != NULL,
	    "plugin's message lost: %s", reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

Test(protocol, command_failed_500, .timeout = 60)
{
	int fd;

	start(NULL);
	fd = check_connect();
	expect_put(fd, "{\"command\":\"test.fail500\"}", 500,
	    "command_failed");
	expect_put(fd, "{\"command\":\"test.noreply\"}", 500,
	    "command_failed");
	expect_put(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	close(fd);
	check_stop_clean();
}

/*
 * Connect and ping until served.  A connection that was just closed (the
 * harness's own readiness probe, or one the test closed) may still count
 * against max_connections for a moment, so a 503 or EOF means retry.
 */
static int
connect_served(int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	json_object *j;
	int fd;

	for (;;) {
		fd = check_connect();
		j = client_call(fd, "{\"command\":\"host.ping\"}");
		if (reply_status(j) == 200) {
			json_object_put(j);
			return fd;
		}
		CHECK(j == NULL || reply_status(j) == 503,
		    "ping on a new connection: %s", reply_text(j));
		json_object_put(j);
		close(fd);
		CHECK(now_ms() < deadline, "no connection served within %d ms",
		    timeout_ms);
	}
}

Test(protocol, max_connections_503, .timeout = 60)
{
	json_object *j;
	int fd1, fd2, fd3, fd4;
	char *line;

	start("max_connections = 2\n");
	fd1 = connect_served(5000);
	fd2 = connect_served(5000);

	/* The third gets one 503 line without asking, then EOF. */
	fd3 = check_connect();
	line = client_recv_line(fd3);
	CHECK(line != NULL, "third connection got no line");
	j = json_tokener_parse(line);
	CHECK(reply_status(j) == 503 && reply_error_code(j) != NULL &&
	    strcmp(reply_error_code(j), "unavailable") == 0,
	    "third connection got %s, want 503 unavailable", line);
	json_object_put(j);
	free(line);
	CHECK(client_wait_eof(fd3, 5000), "third connection not closed");
	close(fd3);

	/* The first two still work. */
	expect_put(fd1, "{\"command\":\"host.ping\"}", 200, NULL);
	expect_put(fd2, "{\"command\":\"test.echo\"}", 200, NULL);

	/* Once one closes, a new connection is served again. */
	close(fd1);
	fd4 = connect_served(5000);
	close(fd4);
	close(fd2);
	check_stop_clean();
}

Test(protocol, timeout_504, .timeout = 60)
{
	json_object *j;
	int64_t t0, dt;
	int fd, fd2;
	char *line;

	start("default_timeout_ms = 400\n");
	fd = check_connect();
	fd2 = check_connect();

	/* Explicit timeout_ms: 504 well before the sleep would end. */
	t0 = now_ms();
	j = expect(fd, "{\"id\":\"t\",\"command\":\"test.sleep\",\"payload\":"
	    "{\"ms\":2000},\"timeout_ms\":100}", 504, "timeout");
	dt = now_ms() - t0;
	CHECK(dt < 1500, "504 came after %lld ms", (long long)dt);
	CHECK(dt >= 90, "504 came after only %lld ms", (long long)dt);
	CHECK(strcmp(json_object_get_string(reply_id(j)), "t") == 0,
	    "id: %s", reply_text(j));
	json_object_put(j);

	/* The late result is dropped: the next reply is the next request's. */
	j = expect(fd, "{\"id\":\"after\",\"command\":\"test.echo\"}", 200,
	    NULL);
	CHECK(strcmp(json_object_get_string(reply_id(j)), "after") == 0,
	    "got %s, want the reply of \"after\"", reply_text(j));
	json_object_put(j);

	/* default_timeout_ms from the config. */
	t0 = now_ms();
	expect_put(fd2, "{\"command\":\"test.sleep\",\"payload\":"
	    "{\"ms\":1500}}", 504, "timeout");
	dt = now_ms() - t0;
	CHECK(dt < 1300 && dt >= 350, "default-timeout 504 after %lld ms",
	    (long long)dt);

	/* An explicit timeout longer than the default is honoured. */
	j = expect(fd2, "{\"command\":\"test.sleep\",\"payload\":{\"ms\":600},"
	    "\"timeout_ms\":5000}", 200, NULL);
	CHECK(int_at(j, "body/slept") == 600, "body %s", reply_text(j));
	json_object_put(j);

	/* Shutdown waits for the abandoned sleeps; their late results must
	 * never reach the client. */
	check_stop_clean();
	line = client_recv_line(fd);
	CHECK(line == NULL, "late result delivered: %s", line);
	close(fd);
	close(fd2);
}

Test(protocol, slow_inline_leaves_fast_path, .timeout = 60)
{
	static const char *const plugins[] = { "good.so", "slow_inline.so",
	    NULL };
	json_object *j;
	int64_t t0, dt;
	int a, b[4], i, k;

	start_with(plugins, NULL, 0);
	a = check_connect();
	for (i = 0; i < 4; i++)
		b[i] = check_connect();

	/* Two overrunning calls in a row let the daemon learn it is slow
	 * (one alone may be a preempted loop). */
	for (i = 0; i < 2; i++)
		expect_put(a, "{\"command\":\"slow.inline\",\"payload\":"
		    "{\"ms\":300}}", 200, NULL);

	/* Then a slow call must not hold up fast ones elsewhere. */
	CHECK(client_send(a, "{\"id\":\"slow\",\"command\":\"slow.inline\","
	    "\"payload\":{\"ms\":1000}}") == 0, "send");
	for (k = 0; k < 5; k++)
		for (i = 0; i < 4; i++)
			expect_put(b[i], "{\"command\":\"test.echo\"}", 200,
			    NULL);
	CHECK(!has_data(a), "fast calls waited for slow.inline");
	j = recv_reply(a);
	CHECK(reply_status(j) == 200, "slow.inline reply: %s", reply_text(j));
	json_object_put(j);

	/* And its timeout is answered on time. */
	t0 = now_ms();
	expect_put(a, "{\"command\":\"slow.inline\",\"payload\":{\"ms\":1200},"
	    "\"timeout_ms\":150}", 504, "timeout");
	dt = now_ms() - t0;
	CHECK(dt < 900, "504 for slow.inline came after %lld ms",
	    (long long)dt);
	close(a);
	for (i = 0; i < 4; i++)
		close(b[i]);
	check_stop_clean();
}

/* ------------------------------------------------------------ ids */

Test(protocol, id_echo, .timeout = 60)
{
	json_object *j, *id;
	int fd;

	start(NULL);
	fd = check_connect();
	j = expect(fd, "{\"id\":\"abc-1\",\"command\":\"test.echo\"}", 200,
	    NULL);
	CHECK(json_object_is_type(reply_id(j), json_type_string) &&
	    strcmp(json_object_get_string(reply_id(j)), "abc-1") == 0,
	    "string id: %s", reply_text(j));
	json_object_put(j);

	j = expect(fd, "{\"id\":1234567890123456789,\"command\":"
	    "\"test.echo\"}", 200, NULL);
	CHECK(json_object_is_type(reply_id(j), json_type_int) &&
	    json_object_get_int64(reply_id(j)) == 1234567890123456789LL,
	    "integer id: %s", reply_text(j));
	json_object_put(j);

	j = expect(fd, "{\"id\":0,\"command\":\"test.echo\"}", 200, NULL);
	CHECK(json_object_is_type(reply_id(j), json_type_int) &&
	    json_object_get_int64(reply_id(j)) == 0, "zero id: %s",
	    reply_text(j));
	json_object_put(j);

	j = expect(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	CHECK(json_object_object_get_ex(j, "id", &id) && id == NULL,
	    "absent id must be null: %s", reply_text(j));
	json_object_put(j);

	/* Error replies echo the id too. */
	j = expect(fd, "{\"id\":\"e1\",\"command\":\"no.such\"}", 404,
	    "unknown_command");
	CHECK(strcmp(json_object_get_string(reply_id(j)), "e1") == 0,
	    "error id: %s", reply_text(j));
	json_object_put(j);
	j = expect(fd, "{\"id\":99,\"command\":\"test.fail\"}", 409,
	    "conflict");
	CHECK(json_object_get_int64(reply_id(j)) == 99, "error id: %s",
	    reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ framing */

Test(protocol, crlf_and_blank_lines, .timeout = 60)
{
	static const char raw[] = "\n\r\n"
	    "{\"id\":1,\"command\":\"test.echo\"}\r\n"
	    "\n\n\r\n"
	    "{\"id\":2,\"command\":\"test.echo\",\"payload\":{\"k\":\"v\"}}\n";
	json_object *j;
	char *line;
	int fd, i;

	start(NULL);
	fd = check_connect();
	CHECK(client_send_raw(fd, raw, strlen(raw)) == 0, "send");
	for (i = 1; i <= 2; i++) {
		line = client_recv_line(fd);
		CHECK(line != NULL, "reply %d missing", i);
		j = json_tokener_parse(line);
		CHECK(reply_status(j) == 200 &&
		    json_object_get_int(reply_id(j)) == i,
		    "reply %d: %s", i, line);
		json_object_put(j);
		free(line);
	}
	/* Blank lines got no reply: the next line answers the next request. */
	j = expect(fd, "{\"id\":3,\"command\":\"host.ping\"}\r\n", 200, NULL);
	CHECK(json_object_get_int(reply_id(j)) == 3, "got %s", reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

Test(protocol, seed_shape_command_type, .timeout = 60)
{
	json_object *j, *want;
	int fd;

	start(NULL);
	fd = check_connect();
	j = expect(fd, "{\"commandType\":\"test.echo\",\"payload\":{\"x\":1}}",
	    200, NULL);
	want = json_tokener_parse("{\"x\":1}");
	CHECK(json_object_equal(reply_body(j), want), "body %s",
	    reply_text(j));
	json_object_put(want);
	json_object_put(j);
	expect_put(fd, "{\"commandType\":\"no.such\"}", 404,
	    "unknown_command");
	/* Unknown members are ignored. */
	expect_put(fd, "{\"command\":\"test.echo\",\"extra\":[1,2],"
	    "\"more\":{\"a\":null}}", 200, NULL);
	close(fd);
	check_stop_clean();
}

Test(protocol, payload_absent_is_empty_object, .timeout = 60)
{
	json_object *j, *b;
	int fd;

	start(NULL);
	fd = check_connect();
	j = expect(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	b = reply_body(j);
	CHECK(json_object_is_type(b, json_type_object) &&
	    json_object_object_length(b) == 0, "body %s, want {}",
	    reply_text(j));
	json_object_put(j);
	/* A command with required fields gets them reported missing. */
	expect_field_error(fd, "", "s");
	j = client_call(fd, "{\"command\":\"test.fields\"}");
	CHECK(reply_status(j) == 400, "no payload: %s", reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

Test(protocol, malformed_line_keeps_connection, .timeout = 60)
{
	int fd;

	start(NULL);
	fd = check_connect();
	expect_put(fd, "this is not json", 400, "bad_request");
	expect_put(fd, "{\"command\":\"test.echo\"", 400, "bad_request");
	expect_put(fd, "{\"command\":\"test.echo\"} trailing", 400,
	    "bad_request");
	expect_put(fd, "\x01\x02\xff\xfe", 400, "bad_request");
	expect_put(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ pipelining */

struct writer {
	int fd;
	const char *buf;
	size_t len;
	int rc;
};

static void *
write_all(void *arg)
{
	struct writer *w = arg;

	w->rc = client_send_raw(w->fd, w->buf, w->len);
	return NULL;
}

Test(protocol, pipelined_2000_in_order, .timeout = 60)
{
	enum { N = 2000 };
	struct writer w;
	pthread_t t;
	char *buf, *line;
	size_t cap = (size_t)N * 96, len = 0;
	json_object *j;
	int fd, i;

	start(NULL);
	fd = check_connect();
	buf = malloc(cap);
	cr_assert_not_null(buf);
	for (i = 0; i < N; i++)
		len += (size_t)snprintf(buf + len, cap - len,
		    "{\"id\":%d,\"command\":\"test.echo\",\"payload\":"
		    "{\"n\":%d}}\n", i, i);
	/* One write, from another thread so replies can drain meanwhile. */
	w = (struct writer){ fd, buf, len, -1 };
	cr_assert_eq(pthread_create(&t, NULL, write_all, &w), 0);
	for (i = 0; i < N; i++) {
		line = client_recv_line(fd);
		CHECK(line != NULL, "reply %d missing", i);
		j = json_tokener_parse(line);
		CHECK(reply_status(j) == 200 &&
		    json_object_is_type(reply_id(j), json_type_int) &&
		    json_object_get_int(reply_id(j)) == i &&
		    json_object_get_int(json_path(j, "body/n")) == i,
		    "reply %d out of order or wrong: %s", i, line);
		json_object_put(j);
		free(line);
	}
	pthread_join(t, NULL);
	CHECK(w.rc == 0, "write failed");
	free(buf);
	close(fd);
	check_stop_clean();
}

Test(protocol, pipelined_slow_then_fast_in_order, .timeout = 60)
{
	char buf[2048], *line;
	size_t len;
	json_object *j;
	int fd, i;

	start(NULL);
	fd = check_connect();
	len = (size_t)snprintf(buf, sizeof(buf), "{\"id\":0,\"command\":"
	    "\"test.sleep\",\"payload\":{\"ms\":200}}\n");
	for (i = 1; i <= 10; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len,
		    "{\"id\":%d,\"command\":\"%s\"}\n", i,
		    i % 3 == 0 ? "host.ping" : "test.echo");
	CHECK(client_send_raw(fd, buf, len) == 0, "send");
	for (i = 0; i <= 10; i++) {
		line = client_recv_line(fd);
		CHECK(line != NULL, "reply %d missing", i);
		j = json_tokener_parse(line);
		CHECK(reply_status(j) == 200 &&
		    json_object_get_int(reply_id(j)) == i,
		    "reply %d out of order: %s", i, line);
		if (i == 0)
			CHECK(int_at(j, "body/slept") == 200, "%s", line);
		json_object_put(j);
		free(line);
	}
	close(fd);
	check_stop_clean();
}

Test(protocol, three_hundred_connections, .timeout = 60)
{
	enum { N = 300 };
	int fds[N], i;
	char line[128], *r;
	json_object *j;

	start(NULL);
	for (i = 0; i < N; i++)
		fds[i] = check_connect();
	for (i = 0; i < N; i++) {
		snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
		    "\"test.echo\",\"payload\":{\"c\":%d}}", i, i);
		CHECK(client_send(fds[i], line) == 0, "send on conn %d", i);
	}
	for (i = 0; i < N; i++) {
		r = client_recv_line(fds[i]);
		CHECK(r != NULL, "no reply on connection %d", i);
		j = json_tokener_parse(r);
		CHECK(reply_status(j) == 200 &&
		    json_object_get_int(reply_id(j)) == i &&
		    json_object_get_int(json_path(j, "body/c")) == i,
		    "connection %d: %s", i, r);
		json_object_put(j);
		free(r);
	}
	for (i = 0; i < N; i++)
		close(fds[i]);
	check_stop_clean();
}

Test(protocol, slow_command_does_not_block_other_connections,
    .timeout = 60)
{
	json_object *j;
	int64_t t0, dt;
	int a, b[4], i, k;

	start(NULL);
	a = check_connect();
	for (i = 0; i < 4; i++)
		b[i] = check_connect();
	t0 = now_ms();
	CHECK(client_send(a, "{\"id\":\"A\",\"command\":\"test.sleep\","
	    "\"payload\":{\"ms\":1000}}") == 0, "send");
	for (k = 0; k < 5; k++)
		for (i = 0; i < 4; i++)
			expect_put(b[i], "{\"command\":\"test.echo\"}", 200,
			    NULL);
	dt = now_ms() - t0;
	CHECK(!has_data(a) && dt < 1000,
	    "20 fast calls took %lld ms, behind the slow one", (long long)dt);
	j = recv_reply(a);
	CHECK(reply_status(j) == 200, "slow reply %s", reply_text(j));
	json_object_put(j);
	close(a);
	for (i = 0; i < 4; i++)
		close(b[i]);
	check_stop_clean();
}

/* ------------------------------------------------------------ admin */

Test(protocol, admin_ping_and_health, .timeout = 60)
{
	json_object *j, *want;
	int fd;

	start(NULL);
	fd = check_connect();
	j = expect(fd, "{\"id\":\"p\",\"command\":\"host.ping\"}", 200, NULL);
	want = json_tokener_parse("{\"pong\":true}");
	CHECK(json_object_equal(reply_body(j), want), "ping body %s",
	    reply_text(j));
	json_object_put(want);
	json_object_put(j);

	j = expect(fd, "{\"command\":\"host.health\"}", 200, NULL);
	CHECK(strcmp(str_at(j, "body/status"), "ok") == 0, "%s",
	    reply_text(j));
	CHECK(int_at(j, "body/plugins") == 1, "plugins: %s", reply_text(j));
	CHECK(int_at(j, "body/commands") >= 9, "commands: %s",
	    reply_text(j));
	CHECK(int_at(j, "body/failed") == 0, "failed: %s", reply_text(j));
	CHECK(int_at(j, "body/uptime_s") >= 0, "uptime: %s", reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

/* The element of array `arr` whose "name" is `name`, or NULL. */
static json_object *
find_named(json_object *arr, const char *name)
{
	size_t i, n;
	json_object *e, *v;

	if (!json_object_is_type(arr, json_type_array))
		return NULL;
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(arr, i);
		if (json_object_object_get_ex(e, "name", &v) &&
		    json_object_is_type(v, json_type_string) &&
		    strcmp(json_object_get_string(v), name) == 0)
			return e;
	}
	return NULL;
}

Test(protocol, admin_list, .timeout = 60)
{
	static const char *const names[] = { "test.echo", "test.fields",
	    "test.validate", "test.fail", "test.fail500", "test.noreply",
	    "test.created", "test.sleep", "test.config" };
	json_object *j, *plugins, *p, *cmds, *c, *want, *err;
	int y, mo, dd, h, mi, s, fd;
	size_t i;

	start(NULL);
	fd = check_connect();
	j = expect(fd, "{\"command\":\"host.list\"}", 200, NULL);
	plugins = json_path(j, "body/plugins");
	CHECK(json_object_is_type(plugins, json_type_array) &&
	    json_object_array_length(plugins) == 1, "plugins: %s",
	    reply_text(j));
	p = json_object_array_get_idx(plugins, 0);
	CHECK(strcmp(str_at(p, "name"), "good") == 0, "%s", reply_text(p));
	CHECK(strcmp(str_at(p, "version"), "1.0.0") == 0, "%s",
	    reply_text(p));
	CHECK(strcmp(str_at(p, "file"), "good.so") == 0, "%s",
	    reply_text(p));
	CHECK(strcmp(str_at(p, "state"), "loaded") == 0, "%s",
	    reply_text(p));
	CHECK(int_at(p, "generation") >= 1, "%s", reply_text(p));
	CHECK(sscanf(str_at(p, "loaded_at"), "%4d-%2d-%2dT%2d:%2d:%2d", &y,
	    &mo, &dd, &h, &mi, &s) == 6 && y >= 2024 && mo >= 1 && mo <= 12,
	    "loaded_at not RFC 3339: %s", reply_text(p));
	CHECK(json_object_object_get_ex(p, "error", &err) && err == NULL,
	    "error must be null: %s", reply_text(p));

	cmds = json_path(p, "commands");
	CHECK(json_object_is_type(cmds, json_type_array) &&
	    json_object_array_length(cmds) == 9, "commands: %s",
	    reply_text(cmds));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK(find_named(cmds, names[i]) != NULL, "%s missing: %s",
		    names[i], reply_text(cmds));

	c = find_named(cmds, "test.fields");
	CHECK(strcmp(str_at(c, "summary"), "Check every field type") == 0,
	    "%s", reply_text(c));
	want = json_tokener_parse("["
	    "{\"name\":\"s\",\"type\":\"string\",\"required\":true},"
	    "{\"name\":\"n\",\"type\":\"number\",\"required\":true},"
	    "{\"name\":\"i\",\"type\":\"integer\",\"required\":true},"
	    "{\"name\":\"b\",\"type\":\"boolean\",\"required\":true},"
	    "{\"name\":\"o\",\"type\":\"object\",\"required\":false},"
	    "{\"name\":\"a\",\"type\":\"array\",\"required\":false},"
	    "{\"name\":\"x\",\"type\":\"any\",\"required\":false}]");
	CHECK(json_object_equal(json_path(c, "fields"), want),
	    "test.fields fields: %s", reply_text(c));
	json_object_put(want);
	want = json_tokener_parse("[]");
	CHECK(json_object_equal(json_path(c, "flags"), want),
	    "test.fields flags: %s", reply_text(c));
	json_object_put(want);

	c = find_named(cmds, "test.sleep");
	want = json_tokener_parse("[\"blocking\"]");
	CHECK(json_object_equal(json_path(c, "flags"), want),
	    "test.sleep flags: %s", reply_text(c));
	json_object_put(want);
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

Test(protocol, admin_stats_counts, .timeout = 60)
{
	json_object *j, *lat;
	int fd, i;

	start(NULL);
	fd = check_connect();
	for (i = 0; i < 5; i++)
		expect_put(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	expect_put(fd, "{\"command\":\"test.fail\"}", 409, "conflict");
	j = expect(fd, "{\"command\":\"host.stats\"}", 200, NULL);
	CHECK(int_at(j, "body/uptime_s") >= 0, "%s", reply_text(j));
	CHECK(int_at(j, "body/connections/open") >= 1, "%s", reply_text(j));
	CHECK(int_at(j, "body/connections/total") >= 1, "%s", reply_text(j));
	CHECK(int_at(j, "body/requests") >= 6, "%s", reply_text(j));
	CHECK(int_at(j, "body/commands/test.echo/calls") >= 5, "%s",
	    reply_text(j));
	CHECK(int_at(j, "body/commands/test.echo/status/200") >= 5, "%s",
	    reply_text(j));
	CHECK(int_at(j, "body/commands/test.echo/in_flight") == 0, "%s",
	    reply_text(j));
	CHECK(int_at(j, "body/commands/test.fail/status/409") == 1, "%s",
	    reply_text(j));
	lat = json_path(j, "body/commands/test.echo/latency_us");
	CHECK(int_at(lat, "p50") >= 0 && int_at(lat, "p50") <=
	    int_at(lat, "p90") && int_at(lat, "p90") <= int_at(lat, "p99") &&
	    int_at(lat, "p99") <= int_at(lat, "max"), "latency %s",
	    reply_text(lat));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

Test(protocol, admin_reload_needs_admin, .timeout = 60)
{
	static const char *const good[] = { "good.so", NULL };
	const char *sock;
	json_object *j;
	int fd;

	start_with(good, "socket_mode = 0666\n", 1);
	sock = daemon_socket_path(d);

	j = client_call_as(65534, sock, "{\"command\":\"host.reload\"}");
	CHECK(reply_status(j) == 403 && reply_error_code(j) != NULL &&
	    strcmp(reply_error_code(j), "forbidden") == 0,
	    "reload as uid 65534: %s, want 403 forbidden", reply_text(j));
	json_object_put(j);
	/* Other commands are open to everyone who can connect. */
	j = client_call_as(65534, sock, "{\"command\":\"host.ping\"}");
	CHECK(reply_status(j) == 200, "ping as 65534: %s", reply_text(j));
	json_object_put(j);
	j = client_call_as(65534, sock, "{\"command\":\"test.echo\"}");
	CHECK(reply_status(j) == 200, "echo as 65534: %s", reply_text(j));
	json_object_put(j);

	fd = check_connect();
	j = expect(fd, "{\"command\":\"host.reload\"}", 200, NULL);
	CHECK(json_object_is_type(json_path(j, "body/loaded"),
	    json_type_array) && json_object_is_type(json_path(j,
	    "body/unloaded"), json_type_array) && json_object_is_type(
	    json_path(j, "body/failed"), json_type_array),
	    "reload body: %s", reply_text(j));
	json_object_put(j);
	expect_put(fd, "{\"command\":\"test.echo\"}", 200, NULL);
	close(fd);
	check_stop_clean();
}

Test(protocol, admin_uids_grants_reload, .timeout = 60)
{
	static const char *const good[] = { "good.so", NULL };
	json_object *j;

	start_with(good, "socket_mode = 0666\nadmin_uids = 4242,65534\n", 1);
	j = client_call_as(65534, daemon_socket_path(d),
	    "{\"command\":\"host.reload\"}");
	CHECK(reply_status(j) == 200, "reload as admin uid 65534: %s",
	    reply_text(j));
	json_object_put(j);
	check_stop_clean();
}
