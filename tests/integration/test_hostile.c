/*
 * test_hostile.c - bad request lines, slow, vanishing and crowding clients
 * and the socket's mode, against a real daemon: every line that was read
 * gets exactly one reply, and the daemon keeps serving everyone else.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

TestSuite(hostile, .fini = check_free);

static const char *const good_only[] = { "good.so", NULL };

/* ------------------------------------------------------------ strict JSON */

/*
 * A strict RFC 8259 checker for reply lines: json-c itself accepts NaN and
 * Infinity, so it cannot tell whether the daemon wrote valid JSON.  Each
 * json_* function takes *p at the start of a value and leaves it after
 * it; it returns 0, or -1 if the text is not JSON.
 */
static int json_value(const char **p, int depth);

static void
json_ws(const char **p)
{
	while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')
		(*p)++;
}

static int
json_string(const char **p)
{
	const unsigned char *s = (const unsigned char *)*p + 1;
	int i;

	for (;;) {
		if (*s == '"')
			break;
		if (*s < 0x20)
			return -1;	/* control character or end of text */
		if (*s == '\\') {
			s++;
			if (*s == 'u') {
				for (i = 1; i <= 4; i++)
					if (!((s[i] >= '0' && s[i] <= '9') ||
					    (s[i] >= 'a' && s[i] <= 'f') ||
					    (s[i] >= 'A' && s[i] <= 'F')))
						return -1;
				s += 4;
			} else if (strchr("\"\\/bfnrt", *s) == NULL ||
			    *s == '\0') {
				return -1;
			}
		}
		s++;
	}
	*p = (const char *)s + 1;
	return 0;
}

static int
json_digits(const char **p)
{
	const char *s = *p;

	while (**p >= '0' && **p <= '9')
		(*p)++;
	return *p == s ? -1 : 0;
}

static int
json_number(const char **p)
{
	if (**p == '-')
		(*p)++;
	if (**p == '0')
		(*p)++;
	else if (json_digits(p) == -1)
		return -1;
	if (**p == '.') {
		(*p)++;
		if (json_digits(p) == -1)
			return -1;
	}
	if (**p == 'e' || **p == 'E') {
		(*p)++;
		if (**p == '+' || **p == '-')
			(*p)++;
		if (json_digits(p) == -1)
			return -1;
	}
	return 0;
}

static int
json_word(const char **p, const char *w)
{
	size_t n = strlen(w);

	if (strncmp(*p, w, n) != 0)
		return -1;
	*p += n;
	return 0;
}

static int
json_value(const char **p, int depth)
{
	char close;

	if (depth > 1000)
		return -1;
	json_ws(p);
	switch (**p) {
	case '"':
		return json_string(p);
	case 't':
		return json_word(p, "true");
	case 'f':
		return json_word(p, "false");
	case 'n':
		return json_word(p, "null");
	case '[':
	case '{':
		close = **p == '[' ? ']' : '}';
		(*p)++;
		json_ws(p);
		if (**p == close) {
			(*p)++;
			return 0;
		}
		for (;;) {
			if (close == '}') {
				json_ws(p);
				if (**p != '"' || json_string(p) == -1)
					return -1;
				json_ws(p);
				if (*(*p)++ != ':')
					return -1;
			}
			if (json_value(p, depth + 1) == -1)
				return -1;
			json_ws(p);
			if (**p == ',') {
				(*p)++;
				continue;
			}
			if (**p != close)
				return -1;
			(*p)++;
			return 0;
		}
	default:
		return json_number(p);
	}
}

/* Non-zero if `text` is one strict JSON value (and nothing else). */
static int
strict_json(const char *text)
{
	const char *p = text;

	if (json_value(&p, 0) == -1)
		return 0;
	json_ws(&p);
	return *p == '\0';
}

/* ------------------------------------------------------------ helpers */

/* Read one reply line, require it to be strict JSON, and parse it.
 * Returns the reply (put it). */
static json_object *
recv_strict(int fd, const char *what)
{
	json_object *j;
	char *line = client_recv_line(fd);

	CHECK(line != NULL, "%s: no reply line", what);
	CHECK(strict_json(line), "%s: reply is not valid JSON: %s", what,
	    line);
	j = json_tokener_parse(line);
	CHECK(j != NULL, "%s: json-c cannot parse the reply: %s", what, line);
	free(line);
	return j;
}

/* Send len bytes of `line` plus '\n', read the reply, require `status`
 * (and error.code `code` unless NULL).  Returns the reply (put it). */
static json_object *
raw_call(int fd, const char *line, size_t len, int status, const char *code,
    const char *what)
{
	json_object *j;

	CHECK(client_send_raw(fd, line, len) == 0 &&
	    client_send_raw(fd, "\n", 1) == 0, "%s: send failed", what);
	j = recv_strict(fd, what);
	CHECK(reply_status(j) == status, "%s: got %s, want status %d", what,
	    reply_text(j), status);
	if (code != NULL)
		CHECK(reply_error_code(j) != NULL &&
		    strcmp(reply_error_code(j), code) == 0,
		    "%s: got %s, want code %s", what, reply_text(j), code);
	return j;
}

/* The reply to a good request with id "ok-<n>" must come next: proves the
 * line before it got exactly one reply and the connection still works. */
static void
expect_still_usable(int fd, int n, const char *after)
{
	char line[128], want[32];
	json_object *j, *id;

	snprintf(want, sizeof(want), "ok-%d", n);
	snprintf(line, sizeof(line), "{\"id\":\"%s\",\"command\":"
	    "\"test.echo\",\"payload\":%d}", want, n);
	j = raw_call(fd, line, strlen(line), 200, NULL, after);
	id = reply_id(j);
	CHECK(id != NULL && json_object_is_type(id, json_type_string) &&
	    strcmp(json_object_get_string(id), want) == 0 &&
	    json_object_get_int(reply_body(j)) == n,
	    "after %s: got %s, want the reply to %s", after, reply_text(j),
	    want);
	json_object_put(j);
}

/* Require that nothing more arrives on fd for a while: no extra reply. */
static void
expect_no_more(int fd, const char *what)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	char *extra;

	if (poll(&pfd, 1, 300) > 0) {
		extra = client_recv_line(fd);
		CHECK(0, "%s: an extra line arrived: %s", what,
		    extra != NULL ? extra : "(EOF)");
	}
}

/* Require that the string member `id` of reply j is `want`. */
static void
expect_id(json_object *j, const char *want, const char *what)
{
	json_object *id = reply_id(j);

	CHECK(id != NULL && json_object_is_type(id, json_type_string) &&
	    strcmp(json_object_get_string(id), want) == 0,
	    "%s: got %s, want id \"%s\"", what, reply_text(j), want);
}

/* ------------------------------------------------------------ bad lines */

/* A bad line (len bytes, may hold NUL) and the status it must get. */
struct bad_line {
	const char *what;
	const char *text;
	size_t len;		/* 0: strlen(text) */
	int status;
	const char *code;
};

#define LIT(s) s, sizeof(s) - 1

Test(hostile, bad_lines_get_400_and_the_connection_stays, .timeout = 60)
{
	static const struct bad_line bad[] = {
		{ "not JSON", "{\"command\":\"test.echo\",", 0, 400,
		    "bad_request" },
		{ "not JSON at all", "hello world", 0, 400, "bad_request" },
		{ "invalid UTF-8 \\xff",
		    "{\"id\":\"u\",\"command\":\"test.echo\",\"payload\":"
		    "\"a\xff\"}", 0, 400, "bad_request" },
		{ "overlong UTF-8 \\xc0\\xaf",
		    "{\"command\":\"test.echo\",\"payload\":\"\xc0\xaf\"}", 0,
		    400, "bad_request" },
		{ "UTF-8 surrogate \\xed\\xa0\\x80",
		    "{\"command\":\"test.echo\",\"payload\":\"\xed\xa0\x80\"}",
		    0, 400, "bad_request" },
		{ "invalid UTF-8 in a key",
		    "{\"command\":\"test.echo\",\"\xfe\":1}", 0, 400,
		    "bad_request" },
		{ "NUL between members",
		    LIT("{\"command\":\"test.echo\",\0\"payload\":1}"), 400,
		    "bad_request" },
		{ "NUL inside a string",
		    LIT("{\"command\":\"test.echo\",\"payload\":\"a\0b\"}"),
		    400, "bad_request" },
		{ "NUL after the object",
		    LIT("{\"command\":\"test.echo\"}\0"), 400, "bad_request" },
		{ "NUL alone", LIT("\0"), 400, "bad_request" },
		{ "NaN", "{\"command\":\"test.echo\",\"payload\":NaN}", 0,
		    400, "bad_request" },
		{ "Infinity", "{\"command\":\"test.echo\",\"payload\":"
		    "{\"a\":Infinity}}", 0, 400, "bad_request" },
		{ "-Infinity", "{\"command\":\"test.echo\",\"payload\":"
		    "[1,-Infinity]}", 0, 400, "bad_request" },
		{ "nan lower case", "{\"command\":\"test.echo\",\"payload\":"
		    "[nan]}", 0, 400, "bad_request" },
		{ "a scalar", "12", 0, 400, "bad_request" },
		{ "an array", "[{\"command\":\"test.echo\"}]", 0, 400,
		    "bad_request" },
	};
	size_t i;
	json_object *j;
	int fd, n = 0;

	check_start_with(good_only, NULL);
	fd = check_connect();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_object_put(raw_call(fd, bad[i].text, bad[i].len != 0 ?
		    bad[i].len : strlen(bad[i].text), bad[i].status,
		    bad[i].code, bad[i].what));
		expect_still_usable(fd, n++, bad[i].what);
	}
	/* The words NaN and Infinity inside strings are fine. */
	j = raw_call(fd, LIT("{\"id\":\"s\",\"command\":\"test.echo\","
	    "\"payload\":{\"NaN\":\"Infinity -Infinity nan\"}}"), 200, NULL,
	    "NaN in strings");
	CHECK(strcmp(json_path_str(j, "body/NaN"), "Infinity -Infinity nan")
	    == 0, "NaN in strings: %s", reply_text(j));
	json_object_put(j);
	/* Valid multi-byte UTF-8 (2, 3, 4 bytes) goes through unchanged. */
	j = raw_call(fd, LIT("{\"id\":\"utf8\",\"command\":\"test.echo\","
	    "\"payload\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}"), 200,
	    NULL, "valid UTF-8");
	CHECK(strcmp(json_object_get_string(reply_body(j)),
	    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == 0,
	    "valid UTF-8 changed: %s", reply_text(j));
	json_object_put(j);
	expect_no_more(fd, "bad lines");
	close(fd);
	check_stop_clean();
}

Test(hostile, nesting_bomb_is_400, .timeout = 60)
{
	static const char head[] = "{\"command\":\"test.echo\",\"payload\":";
	size_t depth = 50000, i;
	char *line;
	json_object *j;
	int fd, n = 0;

	check_start_with(good_only, NULL);
	fd = check_connect();
	line = malloc(sizeof(head) + 2 * depth + 2);
	cr_assert_not_null(line);

	/* 50,000 '[' as the whole line. */
	memset(line, '[', depth);
	j = raw_call(fd, line, depth, 400, "bad_request", "50000 '['");
	json_object_put(j);
	expect_still_usable(fd, n++, "50000 '['");

	/* ... as the payload, unclosed. */
	memcpy(line, head, sizeof(head) - 1);
	memset(line + sizeof(head) - 1, '[', depth);
	json_object_put(raw_call(fd, line, sizeof(head) - 1 + depth, 400,
	    "bad_request", "payload of 50000 '['"));
	expect_still_usable(fd, n++, "payload of 50000 '['");

	/* ... closed, so it is well-formed JSON, only too deep. */
	memset(line + sizeof(head) - 1 + depth, ']', depth);
	line[sizeof(head) - 1 + 2 * depth] = '}';
	json_object_put(raw_call(fd, line, sizeof(head) + 2 * depth, 400,
	    "bad_request", "balanced 50000-deep payload"));
	expect_still_usable(fd, n++, "balanced 50000-deep payload");

	/* 50,000 '{"a":' nested objects. */
	for (i = 0; i + 5 <= 2 * depth; i += 5)
		memcpy(line + i, "{\"a\":", 5);
	json_object_put(raw_call(fd, line, i, 400, "bad_request",
	    "50000-deep objects"));
	expect_still_usable(fd, n++, "50000-deep objects");

	/* A modest depth (20) is fine. */
	j = raw_call(fd, LIT("{\"command\":\"test.echo\",\"payload\":"
	    "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}"), 200, NULL,
	    "depth 20");
	json_object_put(j);
	free(line);
	expect_no_more(fd, "nesting");
	close(fd);
	check_stop_clean();
}

Test(hostile, huge_numbers_echo_as_valid_json, .timeout = 60)
{
	static const char *const numbers[] = {
		"1e999999", "-1e999999", "1e-999999", "123456789e999999999",
		"0.0000000000000000000000000000000000000001e-400",
		"18446744073709551616", "-9223372036854775809",
		"9223372036854775807", "-9223372036854775808",
	};
	char line[1024], want[1024], big[512], what[64], *raw;
	char changed[4096] = "";
	size_t i;
	json_object *j;
	int fd, n = 0, st;

	check_start_with(good_only, NULL);
	fd = check_connect();
	/* A 400-digit integer. */
	big[0] = '9';
	for (i = 1; i < 400; i++)
		big[i] = (char)('0' + i % 10);
	big[400] = '\0';
	for (i = 0; i <= sizeof(numbers) / sizeof(numbers[0]); i++) {
		const char *num = i < sizeof(numbers) / sizeof(numbers[0]) ?
		    numbers[i] : big;

		snprintf(what, sizeof(what), "payload %.40s", num);
		snprintf(line, sizeof(line), "{\"id\":\"num\",\"command\":"
		    "\"test.echo\",\"payload\":{\"v\":%s,\"w\":[%s]}}", num,
		    num);
		CHECK(client_send(fd, line) == 0, "send");
		/*
		 * Valid JSON either way, and then: a 200 echoes the number
		 * exactly as sent (a changed number is data lost without a
		 * word), or the line gets a clean 400.
		 */
		raw = client_recv_line(fd);
		CHECK(raw != NULL, "%s: no reply", what);
		CHECK(strict_json(raw), "%s: reply is not valid JSON: %s",
		    what, raw);
		j = json_tokener_parse(raw);
		st = reply_status(j);
		CHECK(st == 200 || st == 400, "%s: got %s", what, raw);
		snprintf(want, sizeof(want), "\"body\":{\"v\":%s,\"w\":[%s]}",
		    num, num);
		if (st == 200 && strstr(raw, want) == NULL) {
			/* Go on, to list every changed number at the end. */
			snprintf(changed + strlen(changed), sizeof(changed) -
			    strlen(changed), "\n  sent %.40s%s, got %.200s",
			    num, strlen(num) > 40 ? "..." : "", raw);
		} else if (st != 200)
			CHECK(strcmp(reply_error_code(j), "bad_request") == 0,
			    "%s: got %s", what, raw);
		expect_id(j, "num", what);
		json_object_put(j);
		free(raw);
		expect_still_usable(fd, n++, what);
	}
	expect_no_more(fd, "huge numbers");
	CHECK(changed[0] == '\0', "test.echo changed numbers instead of "
	    "echoing them or answering 400:%s", changed);
	close(fd);
	check_stop_clean();
}

Test(hostile, duplicate_keys_last_wins_and_every_payload_type,
    .timeout = 60)
{
	static const struct {
		const char *payload;
		const char *body;	/* the body, compact */
	} types[] = {
		/* "payload": null counts as absent: {} (request.c). */
		{ "null", "{}" },
		{ "true", "true" },
		{ "false", "false" },
		{ "1", "1" },
		{ "-0", "-0" },
		{ "1.5", "1.5" },
		{ "\"s\"", "\"s\"" },
		{ "\"\"", "\"\"" },
		{ "[]", "[]" },
		{ "{}", "{}" },
		{ "[null,true,1,1.5,\"s\",[],{}]",
		    "[null,true,1,1.5,\"s\",[],{}]" },
	};
	char line[256];
	size_t i;
	json_object *j, *want;
	int fd;

	check_start_with(good_only, NULL);
	fd = check_connect();

	/*
	 * Duplicate keys: json-c keeps the last one, and so does the daemon
	 * (documented behaviour, not an error): in the payload, for
	 * "command" and for "id".
	 */
	j = check_call(fd, "{\"id\":\"d\",\"command\":\"test.echo\","
	    "\"payload\":{\"a\":1,\"a\":2}}", 200, NULL);
	CHECK(json_object_get_int(json_path(j, "body/a")) == 2 &&
	    json_object_object_length(reply_body(j)) == 1,
	    "duplicate payload key: %s, want body {\"a\":2}", reply_text(j));
	json_object_put(j);
	j = check_call(fd, "{\"id\":\"d\",\"command\":\"nope\",\"command\":"
	    "\"test.echo\",\"payload\":3}", 200, NULL);
	json_object_put(j);
	j = check_call(fd, "{\"id\":\"first\",\"id\":\"last\",\"command\":"
	    "\"test.echo\"}", 200, NULL);
	expect_id(j, "last", "duplicate id");
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"test.echo\",\"payload\":1,"
	    "\"payload\":[2]}", 200, NULL);
	CHECK(json_object_is_type(reply_body(j), json_type_array),
	    "duplicate payload: %s, want body [2]", reply_text(j));
	json_object_put(j);

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		snprintf(line, sizeof(line), "{\"id\":\"t\",\"command\":"
		    "\"test.echo\",\"payload\":%s}", types[i].payload);
		CHECK(client_send(fd, line) == 0, "send");
		j = recv_strict(fd, types[i].payload);
		CHECK(reply_status(j) == 200, "payload %s: %s",
		    types[i].payload, reply_text(j));
		want = json_tokener_parse(types[i].body);
		CHECK(want != NULL && json_object_equal(reply_body(j), want),
		    "payload %s: got %s, want body %s", types[i].payload,
		    reply_text(j), types[i].body);
		json_object_put(want);
		json_object_put(j);
	}
	expect_no_more(fd, "payload types");
	close(fd);
	check_stop_clean();
}

Test(hostile, random_garbage_lines_get_one_400_each, .timeout = 60)
{
	enum { LINES = 300 };
	unsigned seed = 20240501u;
	char line[512], good[128];
	size_t len, i;
	json_object *j;
	int fd, k;

	check_start_with(good_only, NULL);
	fd = check_connect();
	srand(seed);
	/*
	 * Pipelined: each garbage line is followed by a good request with a
	 * unique id, all in flight at once; the replies must alternate 400,
	 * 200 <id> exactly.  A garbage line has no '\n' and starts with a
	 * byte that is neither whitespace (a blank line gets no reply) nor
	 * '{'.
	 */
	for (k = 0; k < LINES; k++) {
		len = 1 + (size_t)(rand() % 400);
		for (i = 0; i < len; i++) {
			do
				line[i] = (char)(rand() & 0xff);
			while (line[i] == '\n' || (i == 0 &&
			    strchr(" \t\r{", line[0]) != NULL));
		}
		CHECK(client_send_raw(fd, line, len) == 0 &&
		    client_send_raw(fd, "\n", 1) == 0, "send garbage %d", k);
		snprintf(good, sizeof(good), "{\"id\":%d,\"command\":"
		    "\"test.echo\",\"payload\":%d}", k, k);
		CHECK(client_send(fd, good) == 0, "send good %d", k);
	}
	for (k = 0; k < LINES; k++) {
		snprintf(good, sizeof(good), "garbage line %d", k);
		j = recv_strict(fd, good);
		CHECK(reply_status(j) == 400 && reply_error_code(j) != NULL &&
		    strcmp(reply_error_code(j), "bad_request") == 0,
		    "garbage line %d: got %s, want 400 bad_request", k,
		    reply_text(j));
		json_object_put(j);
		snprintf(good, sizeof(good), "good line after garbage %d", k);
		j = recv_strict(fd, good);
		CHECK(reply_status(j) == 200 && reply_id(j) != NULL &&
		    json_object_get_int(reply_id(j)) == k,
		    "after garbage line %d: got %s, want 200 id %d", k,
		    reply_text(j), k);
		json_object_put(j);
	}
	expect_no_more(fd, "garbage");
	/* Other connections never noticed. */
	j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.ping\"}");
	CHECK(reply_status(j) == 200, "ping: %s", reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ framing */

Test(hostile, last_line_without_newline_then_eof, .timeout = 60)
{
	static const char two[] =
	    "{\"id\":\"a\",\"command\":\"test.sleep\",\"payload\":{\"ms\":100}}"
	    "\n{\"id\":\"last\",\"command\":\"test.echo\",\"payload\":7}";
	json_object *j;
	int fd;

	check_start_with(good_only, NULL);

	/* One line, no '\n', then EOF. */
	fd = check_connect();
	CHECK(client_send_raw(fd, LIT("{\"id\":\"only\",\"command\":"
	    "\"test.echo\",\"payload\":1}")) == 0, "send");
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
	j = recv_strict(fd, "unterminated line");
	CHECK(reply_status(j) == 200, "unterminated: %s", reply_text(j));
	expect_id(j, "only", "unterminated line");
	json_object_put(j);
	CHECK(client_wait_eof(fd, 5000), "no EOF after the last reply");
	close(fd);

	/* A slow call first, then the unterminated line: both answered, in
	 * order, then EOF. */
	fd = check_connect();
	CHECK(client_send_raw(fd, two, sizeof(two) - 1) == 0, "send");
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
	j = recv_strict(fd, "sleep before the last line");
	CHECK(reply_status(j) == 200, "sleep: %s", reply_text(j));
	expect_id(j, "a", "sleep before the last line");
	json_object_put(j);
	j = recv_strict(fd, "last line");
	CHECK(reply_status(j) == 200, "last: %s", reply_text(j));
	expect_id(j, "last", "last line");
	json_object_put(j);
	CHECK(client_wait_eof(fd, 5000), "no EOF after the last reply");
	close(fd);

	/* A bad unterminated line gets its 400 too. */
	fd = check_connect();
	CHECK(client_send_raw(fd, LIT("{\"command\":")) == 0, "send");
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
	j = recv_strict(fd, "bad unterminated line");
	CHECK(reply_status(j) == 400, "bad unterminated: %s", reply_text(j));
	json_object_put(j);
	CHECK(client_wait_eof(fd, 5000), "no EOF after the last reply");
	close(fd);
	check_stop_clean();
}

Test(hostile, oversized_line_sent_slowly_gets_one_413, .timeout = 60)
{
	char chunk[64];
	size_t sent, total = 5000, n;
	json_object *j;
	int fd;

	check_start_with(good_only, "max_request_bytes = 1024\n");
	fd = check_connect();
	CHECK(client_send_raw(fd, LIT("{\"id\":\"big\",\"command\":"
	    "\"test.echo\",\"payload\":\"")) == 0, "send");
	memset(chunk, 'a', sizeof(chunk));
	/* 5000 bytes in 64-byte pieces, ~1 ms apart. */
	for (sent = 0; sent < total; sent += n) {
		n = total - sent < sizeof(chunk) ? total - sent :
		    sizeof(chunk);
		CHECK(client_send_raw(fd, chunk, n) == 0,
		    "send at %zu: the daemon closed the connection", sent);
		nap_ms(1);
	}
	CHECK(client_send_raw(fd, LIT("\"}\n")) == 0, "send end");
	j = recv_strict(fd, "slow oversized line");
	CHECK(reply_status(j) == 413 && reply_error_code(j) != NULL &&
	    strcmp(reply_error_code(j), "request_too_large") == 0,
	    "slow oversized line: %s, want 413 request_too_large",
	    reply_text(j));
	json_object_put(j);
	/* Exactly one reply, and the connection still works. */
	expect_still_usable(fd, 1, "slow oversized line");
	expect_no_more(fd, "413");
	close(fd);
	check_stop_clean();
}

/* ------------------------------------------------------------ clients */

static int
sleeps_done(void *arg)
{
	json_object *j;
	json_object *v;
	int done;

	(void)arg;
	j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.stats\"}");
	v = json_path(j, "body/commands/test.sleep/in_flight");
	done = reply_status(j) == 200 && (v == NULL ||
	    json_object_get_int(v) == 0);
	json_object_put(j);
	return done;
}

Test(hostile, client_gone_with_calls_in_flight, .timeout = 60)
{
	char line[128];
	json_object *j;
	int gone, other, i, round;
	int64_t t0, worst = 0;

	check_start_with(good_only, NULL);
	other = check_connect();
	for (round = 0; round < 3; round++) {
		gone = check_connect();
		for (i = 0; i < 6; i++) {
			snprintf(line, sizeof(line), "{\"id\":%d,\"command\":"
			    "\"test.sleep\",\"payload\":{\"ms\":300}}", i);
			CHECK(client_send(gone, line) == 0, "send sleep");
		}
		/* Let the first call start, then vanish (round 0 at once). */
		if (round > 0)
			nap_ms(50 * round);
		close(gone);
		/* The other client is served meanwhile, promptly. */
		for (i = 0; i < 10; i++) {
			t0 = now_ms();
			j = check_call(other, "{\"command\":\"test.echo\","
			    "\"payload\":1}", 200, NULL);
			json_object_put(j);
			if (now_ms() - t0 > worst)
				worst = now_ms() - t0;
			nap_ms(20);
		}
	}
	CHECK(worst < 250, "an echo took %lld ms while a gone client's "
	    "calls ran", (long long)worst);
	/* The calls finish (their replies are dropped). */
	CHECK(wait_until(sleeps_done, NULL, 15000),
	    "test.sleep still in flight long after its client left");
	j = check_call(other, "{\"command\":\"host.ping\"}", 200, NULL);
	json_object_put(j);
	close(other);
	/* Exit 0; under ASan also: nothing leaked. */
	check_stop_clean();
}

/* Raise RLIMIT_NOFILE to its hard limit.  Returns the new soft limit. */
static rlim_t
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 0;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 0;
	return rl.rlim_cur;
}

enum { CROWD = 5000 };

/*
 * Open CROWD connections at once to a daemon started with `config`, send a
 * ping on each, and count the pings answered and the connections that got
 * one 503 unavailable line and then were closed.  Anything else fails.
 */
static void
crowd(const char *config, int *served, int *refused)
{
	static const char ping[] = "{\"command\":\"host.ping\"}\n";
	struct daemon_opts o = { .config = config };
	rlim_t lim = raise_nofile();
	int *fds, i;
	char *line, c;
	json_object *j;
	ssize_t r;

	*served = *refused = 0;
	if (lim < CROWD + 256) {
		cr_skip_test("RLIMIT_NOFILE hard limit %llu is below %d: "
		    "cannot open %d connections", (unsigned long long)lim,
		    CROWD + 256, CROWD);
	}
	check_start(&o);
	fds = calloc(CROWD, sizeof(*fds));
	cr_assert_not_null(fds);
	for (i = 0; i < CROWD; i++) {
		fds[i] = client_connect(daemon_socket_path(check_daemon()));
		CHECK(fds[i] != -1, "connect %d: %s", i, strerror(errno));
	}
	/* A refused connection may already be closed: send errors are
	 * fine, its 503 line is still there to read. */
	for (i = 0; i < CROWD; i++)
		(void)client_send_raw(fds[i], ping, sizeof(ping) - 1);
	for (i = 0; i < CROWD; i++) {
		line = client_recv_line(fds[i]);
		CHECK(line != NULL, "connection %d: neither a reply nor a 503 "
		    "line", i);
		CHECK(strict_json(line), "connection %d: not JSON: %s", i,
		    line);
		j = json_tokener_parse(line);
		if (reply_status(j) == 200) {
			CHECK(json_object_get_boolean(json_path(j,
			    "body/pong")), "connection %d: %s", i, line);
			(*served)++;
		} else {
			CHECK(reply_status(j) == 503 &&
			    reply_error_code(j) != NULL &&
			    strcmp(reply_error_code(j), "unavailable") == 0,
			    "connection %d: got %s, want the ping reply or "
			    "503 unavailable", i, line);
			/* Then the end: EOF, or ECONNRESET since our ping
			 * was left unread. */
			r = recv(fds[i], &c, 1, 0);
			CHECK(r == 0 || (r == -1 && errno == ECONNRESET),
			    "connection %d: not closed after its 503 (recv "
			    "%zd, %s)", i, r, r == -1 ? strerror(errno) :
			    "data");
			(*refused)++;
		}
		json_object_put(j);
		free(line);
	}
	for (i = 0; i < CROWD; i++)
		close(fds[i]);
	free(fds);
	/* Still serving afterwards. */
	j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.ping\"}");
	CHECK(reply_status(j) == 200, "ping after the crowd: %s",
	    reply_text(j));
	json_object_put(j);
	check_stop_clean();
}

Test(hostile, five_thousand_connections_default_limits, .timeout = 120)
{
	int served, refused;

	crowd(NULL, &served, &refused);
	cr_log_info("5000 connections, max_connections 1024: %d served, "
	    "%d refused with 503", served, refused);
	CHECK(served + refused == CROWD, "lost connections");
	CHECK(served >= 1 && served <= 1024, "%d served with "
	    "max_connections = 1024", served);
}

Test(hostile, five_thousand_connections_all_served, .timeout = 120)
{
	int served, refused;

	crowd("max_connections = 6000\n", &served, &refused);
	CHECK(served == CROWD && refused == 0, "max_connections = 6000: %d "
	    "served, %d refused", served, refused);
}

/* ------------------------------------------------------------ socket */

Test(hostile, socket_file_has_socket_mode, .timeout = 60)
{
	static const struct {
		const char *config;
		mode_t mode;
	} modes[] = {
		{ "socket_mode = 0600\n", 0600 },
		{ "socket_mode = 0660\n", 0660 },
		{ NULL, 0660 },	/* the default */
		{ "socket_mode = 0666\n", 0666 },
	};
	struct stat st;
	size_t i;
	json_object *j;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		check_start_with(good_only, modes[i].config);
		CHECK(stat(daemon_socket_path(check_daemon()), &st) == 0,
		    "stat socket: %s", strerror(errno));
		CHECK(S_ISSOCK(st.st_mode), "not a socket");
		CHECK((st.st_mode & 07777) == modes[i].mode, "%s: socket mode "
		    "%04o, want %04o", modes[i].config ? modes[i].config :
		    "default", (unsigned)(st.st_mode & 07777),
		    (unsigned)modes[i].mode);
		j = client_call_once(daemon_socket_path(check_daemon()),
		    "{\"command\":\"host.ping\"}");
		CHECK(reply_status(j) == 200, "ping: %s", reply_text(j));
		json_object_put(j);
		check_stop_clean();
		check_free();
	}
}
