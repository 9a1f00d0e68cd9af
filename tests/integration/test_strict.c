/*
 * test_strict.c - every reply line is valid JSON whatever a plugin
 * returns, request lines are strict, config lines are never cut, and a
 * client's error lines are rate-limited: issue 14's items 5, 7 and 9 (in
 * part), one numbered case each, against a real daemon.
 *
 *   1  NaN, Infinity, -Infinity, bad UTF-8 (string, key) and a double's
 *      stray text in a body: 500 bad_reply naming the plugin, valid JSON
 *   2  an error code and message with bad UTF-8 and controls: valid JSON
 *   3  ids beyond 64 bits: 400 with a null id, never a clamped one
 *   4  a NUL in the id, the command or a member name: 400
 *      ("echo\u0000x" runs nothing)
 *   5  1e400 and friends: 400
 *   6  a raw tab inside a string: 400
 *   7  the payload nests 64 levels, not 65
 *   8  a 250-byte [plugin:NAME] value: -t fails with file:line
 *   9  a config file that is a FIFO: -t and start-up refuse it at once
 *  10  a flood of bad requests from one connection: a bounded number of
 *      warn lines, then one "suppressed N" line
 *  11  a lone surrogate escape in the id, command or payload: 400 with a
 *      null id (the id was echoed as U+FFFD, the payload reached the
 *      plugin as bytes that are not UTF-8 and its echo was a 500)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define CMDHOSTD CMDHOST_BUILD_DIR "/cmdhostd"

TestSuite(strict, .fini = check_free);

static const char *const plugins[] = { "good.so", "badbody.so", NULL };

/* ------------------------------------------------------------ checker */

/*
 * An RFC 8259 checker of our own for reply lines (json-c takes NaN and
 * a raw tab): each function takes *p at a value and leaves it after it,
 * returning 0, or -1 when the text is not strict JSON.  UTF-8 is decoded
 * here too, rejecting overlong forms, surrogates and values past
 * U+10FFFF.
 */
static int value(const unsigned char **p, int depth);

/* One UTF-8 character at *p, decoded: 0 or -1. */
static int
utf8_char(const unsigned char **p)
{
	const unsigned char *s = *p;
	unsigned long cp;
	int n, i;

	if (s[0] < 0x80) {
		*p += 1;
		return 0;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return -1;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*p += n;
	return 0;
}

static int
string(const unsigned char **p)
{
	(*p)++;
	while (**p != '"') {
		if (**p < 0x20)
			return -1;
		if (**p == '\\') {
			(*p)++;
			if (**p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (strchr("0123456789abcdefABCDEF",
					    (*p)[i]) == NULL || (*p)[i] == 0)
						return -1;
				*p += 5;
			} else if (**p == 0 || strchr("\"\\/bfnrt", **p) ==
			    NULL) {
				return -1;
			} else {
				(*p)++;
			}
			continue;
		}
		if (utf8_char(p) < 0)
			return -1;
	}
	(*p)++;
	return 0;
}

static int
number(const unsigned char **p)
{
	const unsigned char *s;

	if (**p == '-')
		(*p)++;
	s = *p;
	while (**p >= '0' && **p <= '9')
		(*p)++;
	if (*p == s || (*s == '0' && *p - s > 1))
		return -1;
	if (**p == '.') {
		s = ++*p;
		while (**p >= '0' && **p <= '9')
			(*p)++;
		if (*p == s)
			return -1;
	}
	if (**p == 'e' || **p == 'E') {
		(*p)++;
		if (**p == '+' || **p == '-')
			(*p)++;
		s = *p;
		while (**p >= '0' && **p <= '9')
			(*p)++;
		if (*p == s)
			return -1;
	}
	return 0;
}

static int
value(const unsigned char **p, int depth)
{
	if (depth > 200)
		return -1;
	switch (**p) {
	case '"':
		return string(p);
	case '{':
	case '[': {
		unsigned char close = **p == '{' ? '}' : ']';
		int obj = **p == '{';

		(*p)++;
		if (**p == close) {
			(*p)++;
			return 0;
		}
		for (;;) {
			if (obj) {
				if (**p != '"' || string(p) < 0 || **p != ':')
					return -1;
				(*p)++;
			}
			if (value(p, depth + 1) < 0)
				return -1;
			if (**p == ',') {
				(*p)++;
				continue;
			}
			if (**p != close)
				return -1;
			(*p)++;
			return 0;
		}
	}
	case 't':
		return strncmp((const char *)*p, "true", 4) == 0 ?
		    (*p += 4, 0) : -1;
	case 'f':
		return strncmp((const char *)*p, "false", 5) == 0 ?
		    (*p += 5, 0) : -1;
	case 'n':
		return strncmp((const char *)*p, "null", 4) == 0 ?
		    (*p += 4, 0) : -1;
	default:
		return number(p);
	}
}

/* Non-zero if line (a reply line without its '\n', as the daemon writes
 * them: no whitespace) is one strict JSON value and nothing else. */
static int
strict_line(const char *line)
{
	const unsigned char *p = (const unsigned char *)line;

	return value(&p, 0) == 0 && *p == '\0';
}

/* ------------------------------------------------------------ helpers */

/* Send line, read one reply line, require it strict, parse it.  *raw
 * gets the line (free it) when raw is not NULL. */
static json_object *
call_strict(int fd, const char *line, size_t len, char **raw)
{
	struct json_tokener *tok;
	char *text;
	json_object *j;

	CHECK(client_send_raw(fd, line, len) == 0 &&
	    client_send_raw(fd, "\n", 1) == 0, "send %s", line);
	text = client_recv_line(fd);
	CHECK(text != NULL, "no reply to %s", line);
	CHECK(strict_line(text), "reply to %s is not strict JSON: %s", line,
	    text);
	/* json_tokener_parse() stops at 32 levels; a reply may hold 66. */
	tok = json_tokener_new_ex(100);
	CHECK(tok != NULL, "json_tokener_new_ex");
	j = json_tokener_parse_ex(tok, text, (int)strlen(text));
	json_tokener_free(tok);
	CHECK(j != NULL, "json-c cannot parse %s", text);
	if (raw != NULL)
		*raw = text;
	else
		free(text);
	return j;
}

#define LIT(s) s, sizeof(s) - 1

/* call_strict() and require status and (unless NULL) error code. */
static json_object *
expect(int fd, const char *line, size_t len, int status, const char *code,
    char **raw)
{
	json_object *j = call_strict(fd, line, len, raw);

	CHECK(reply_status(j) == status, "%s: got %s, want %d", line,
	    reply_text(j), status);
	if (code != NULL)
		CHECK(reply_error_code(j) != NULL &&
		    strcmp(reply_error_code(j), code) == 0,
		    "%s: got %s, want code %s", line, reply_text(j), code);
	return j;
}

/* The connection still answers, in order: proves one reply per line. */
static void
still_usable(int fd, int n)
{
	char line[96];
	json_object *j;

	snprintf(line, sizeof(line), "{\"id\":\"ok-%d\",\"command\":"
	    "\"test.echo\",\"payload\":%d}", n, n);
	j = expect(fd, line, strlen(line), 200, NULL, NULL);
	CHECK(json_object_get_int(reply_body(j)) == n, "after: %s",
	    reply_text(j));
	json_object_put(j);
}

/* ------------------------------------------------------------ cases */

/* 1: bodies json-c would write as NaN, Infinity, raw bad bytes or a
 * stray second line are answered 500 bad_reply naming the plugin. */
Test(strict, n01_bad_bodies_are_500_bad_reply, .timeout = 60)
{
	static const char *const cmds[] = { "bad.nan", "bad.inf", "bad.ninf",
	    "bad.utf8", "bad.utf8key", "bad.text", NULL };
	char line[128];
	json_object *j;
	int fd, i;

	check_start_with(plugins, NULL);
	fd = check_connect();
	j = expect(fd, LIT("{\"id\":1,\"command\":\"bad.ok\"}"), 200, NULL,
	    NULL);
	json_object_put(j);
	for (i = 0; cmds[i] != NULL; i++) {
		snprintf(line, sizeof(line), "{\"id\":\"%s\",\"command\":"
		    "\"%s\"}", cmds[i], cmds[i]);
		j = expect(fd, line, strlen(line), 500, "bad_reply", NULL);
		CHECK(strcmp(json_object_get_string(reply_id(j)), cmds[i]) ==
		    0, "%s: id %s", cmds[i], reply_text(j));
		CHECK(strstr(reply_error_message(j), "plugin 'badbody' 1.0.0")
		    != NULL, "%s: message does not name the plugin: %s",
		    cmds[i], reply_text(j));
		json_object_put(j);
		/* Nothing more came: "bad.text"'s forged line is not sent. */
		still_usable(fd, i);
	}
	CHECK(daemon_log_wait(check_daemon(), "\"error_code\":\"bad_reply\"",
	    5000), "no log line for a bad reply");
	close(fd);
	check_stop_clean();
}

/* 2: an error code and message with bad UTF-8, quotes and controls go
 * out escaped, bad bytes as U+FFFD, the status kept. */
Test(strict, n02_error_code_and_message_are_escaped, .timeout = 60)
{
	json_object *j;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	j = expect(fd, LIT("{\"id\":2,\"command\":\"bad.error\"}"), 422, NULL,
	    NULL);
	CHECK(strcmp(reply_error_code(j), "bad\xef\xbf\xbd\"code\n") == 0,
	    "code: %s", reply_text(j));
	CHECK(strstr(reply_error_message(j), "\xef\xbf\xbd\xef\xbf\xbd with "
	    "\x01 control") != NULL, "message: %s", reply_text(j));
	json_object_put(j);
	still_usable(fd, 0);
	close(fd);
	check_stop_clean();
}

/* 3: json-c clamps an id beyond 64 bits to its limit, which another
 * client may use: 400, and the id is null, never the clamped value. */
Test(strict, n03_ids_beyond_64_bits_echo_null, .timeout = 60)
{
	static const char *const huge[] = { "99999999999999999999",
	    "18446744073709551616", "-9223372036854775809",
	    "-99999999999999999999999999", NULL };
	static const char *const limits[] = { "18446744073709551615",
	    "-9223372036854775808", "0", NULL };
	char line[160], want[64], *raw;
	json_object *j;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	for (int i = 0; huge[i] != NULL; i++) {
		snprintf(line, sizeof(line), "{\"id\":%s,\"command\":"
		    "\"test.echo\"}", huge[i]);
		j = expect(fd, line, strlen(line), 400, "bad_request", &raw);
		CHECK(strncmp(raw, "{\"id\":null,", 11) == 0, "%s: echoed %s",
		    huge[i], raw);
		free(raw);
		json_object_put(j);
	}
	for (int i = 0; limits[i] != NULL; i++) {
		snprintf(line, sizeof(line), "{\"id\":%s,\"command\":"
		    "\"test.echo\",\"payload\":1}", limits[i]);
		j = expect(fd, line, strlen(line), 200, NULL, &raw);
		snprintf(want, sizeof(want), "{\"id\":%s,", limits[i]);
		CHECK(strncmp(raw, want, strlen(want)) == 0, "%s: echoed %s",
		    limits[i], raw);
		free(raw);
		json_object_put(j);
	}
	/* A good id and a huge number in the payload: the id comes back. */
	j = expect(fd, LIT("{\"id\":7,\"command\":\"test.echo\",\"payload\":"
	    "[99999999999999999999]}"), 400, "bad_request", &raw);
	CHECK(strncmp(raw, "{\"id\":7,", 8) == 0, "echoed %s", raw);
	free(raw);
	json_object_put(j);
	still_usable(fd, 0);
	close(fd);
	check_stop_clean();
}

/* 4: json-c keeps "\u0000" inside a string; the command was cut at it
 * ("test.echo\u0000x" ran test.echo).  Both are 400; the id is echoed
 * whole. */
Test(strict, n04_nul_in_id_or_command_is_400, .timeout = 60)
{
	json_object *j;
	char *raw;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	j = expect(fd, LIT("{\"id\":\"c\",\"command\":\"test.echo\\u0000x\","
	    "\"payload\":1}"), 400, "bad_request", NULL);
	CHECK(strstr(reply_error_message(j), "NUL") != NULL, "%s",
	    reply_text(j));
	json_object_put(j);
	j = expect(fd, LIT("{\"id\":\"a\\u0000b\",\"command\":\"test.echo\","
	    "\"payload\":1}"), 400, "bad_request", &raw);
	CHECK(strncmp(raw, "{\"id\":\"a\\u0000b\",", 17) == 0, "echoed %s",
	    raw);
	free(raw);
	json_object_put(j);
	/* In a payload a NUL is data, and comes back. */
	j = expect(fd, LIT("{\"id\":\"p\",\"command\":\"test.echo\","
	    "\"payload\":\"a\\u0000b\"}"), 200, NULL, &raw);
	CHECK(strstr(raw, "\"body\":\"a\\u0000b\"") != NULL, "%s", raw);
	free(raw);
	json_object_put(j);
	/* In a member name it is not data: json-c cut "k\u0000x" to "k",
	 * and "\u0000x" to "", which a later "" then replaced. */
	j = expect(fd, LIT("{\"id\":\"k\",\"command\":\"test.echo\","
	    "\"payload\":{\"a\":[{\"k\\u0000x\":1}]}}"), 400, "bad_request",
	    &raw);
	CHECK(strstr(reply_error_message(j), "member name") != NULL, "%s",
	    raw);
	free(raw);
	json_object_put(j);
	still_usable(fd, 0);
	close(fd);
	check_stop_clean();
}

/* 5: a number past a double's range reached plugins as infinity. */
Test(strict, n05_numbers_beyond_a_double_are_400, .timeout = 60)
{
	static const char *const bad[] = { "1e400", "-1e400", "1E+400",
	    "{\"a\":[2.5e99999]}", NULL };
	char line[160], *raw;
	json_object *j;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	for (int i = 0; bad[i] != NULL; i++) {
		snprintf(line, sizeof(line), "{\"id\":\"n%d\",\"command\":"
		    "\"test.echo\",\"payload\":%s}", i, bad[i]);
		j = expect(fd, line, strlen(line), 400, "bad_request", &raw);
		CHECK(strncmp(raw, "{\"id\":\"n", 8) == 0, "%s: echoed %s",
		    bad[i], raw);
		free(raw);
		json_object_put(j);
	}
	/* The largest double and an underflow to 0 are fine. */
	j = expect(fd, LIT("{\"id\":\"f\",\"command\":\"test.echo\",\"payload\":"
	    "[1.7976931348623157e308,1e-400]}"), 200, NULL, NULL);
	json_object_put(j);
	still_usable(fd, 0);
	close(fd);
	check_stop_clean();
}

/* 11: json-c decodes a lone surrogate escape to U+FFFD (an id: echoed
 * as another id than the one sent, "\ud800" and "\udbff" as the same
 * one) or to bytes that are not UTF-8 (a payload: the plugin got them,
 * and its echo was refused as its own bad reply).  Each is 400 with a
 * null id; a pair is a character like any other. */
Test(strict, n11_lone_surrogate_escape_is_400, .timeout = 60)
{
	static const char *const bad[] = {
		"{\"id\":\"\\ud800\",\"command\":\"test.echo\"}",
		"{\"id\":\"a\\udbff\",\"command\":\"test.echo\"}",
		"{\"id\":1,\"command\":\"test.echo\\udc00\"}",
		"{\"id\":2,\"command\":\"test.echo\",\"payload\":\"\\ud800\"}",
		"{\"id\":3,\"command\":\"test.echo\",\"payload\":"
		    "{\"\\udfff\":1}}",
		"{\"id\":4,\"command\":\"test.echo\",\"payload\":"
		    "[\"\\ud800\\u0041\"]}",
		"{\"id\":5,\"command\":\"test.echo\",\"idempotency_key\":"
		    "\"k\\ud800\"}",
		NULL };
	json_object *j;
	char *raw;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	for (int i = 0; bad[i] != NULL; i++) {
		j = expect(fd, bad[i], strlen(bad[i]), 400, "bad_request",
		    &raw);
		CHECK(strncmp(raw, "{\"id\":null,", 11) == 0, "%s: echoed %s",
		    bad[i], raw);
		CHECK(strstr(reply_error_message(j), "surrogate") != NULL,
		    "%s: %s", bad[i], raw);
		free(raw);
		json_object_put(j);
	}
	/* A pair is U+1F600, in the id and in the payload. */
	j = expect(fd, LIT("{\"id\":\"\\ud83d\\ude00\",\"command\":"
	    "\"test.echo\",\"payload\":\"\\uD83D\\uDE00\"}"), 200, NULL,
	    &raw);
	CHECK(strstr(raw, "\"body\":\"\xf0\x9f\x98\x80\"") != NULL, "%s",
	    raw);
	free(raw);
	json_object_put(j);
	still_usable(fd, 0);
	close(fd);
	check_stop_clean();
}

/* 6: strict JSON strings: a raw tab (or any control byte) inside one is
 * 400; escaped, or between tokens, it is fine. */
Test(strict, n06_raw_tab_in_a_string_is_400, .timeout = 60)
{
	json_object *j;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	json_object_put(expect(fd, LIT("{\"id\":\"t\",\"command\":\"test.echo\","
	    "\"payload\":\"a\tb\"}"), 400, "bad_request", NULL));
	json_object_put(expect(fd, LIT("{\"id\":\"t\",\"command\":\"test.echo\","
	    "\"payload\":{\"k\x01\":1}}"), 400, "bad_request", NULL));
	j = expect(fd, LIT("{\"id\":\"t\",\t\"command\":\"test.echo\","
	    "\"payload\":\"a\\tb\"}"), 200, NULL, NULL);
	CHECK(strcmp(json_object_get_string(reply_body(j)), "a\tb") == 0,
	    "%s", reply_text(j));
	json_object_put(j);
	still_usable(fd, 0);
	close(fd);
	check_stop_clean();
}

/* A request whose payload nests `depth` arrays: a new string (free). */
static char *
nested(int depth, size_t *len)
{
	static const char head[] = "{\"id\":\"deep\",\"command\":\"test.echo\","
	    "\"payload\":";
	size_t n = sizeof(head) - 1;
	char *s = malloc(n + 2 * (size_t)depth + 2);

	cr_assert_not_null(s);
	memcpy(s, head, n);
	memset(s + n, '[', (size_t)depth);
	memset(s + n + depth, ']', (size_t)depth);
	n += 2 * (size_t)depth;
	s[n++] = '}';
	s[n] = '\0';
	*len = n;
	return s;
}

/* 7: the docs say 64 levels; the code gave 63. */
Test(strict, n07_payload_nests_64_levels_not_65, .timeout = 60)
{
	size_t len;
	char *s;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	s = nested(64, &len);
	json_object_put(expect(fd, s, len, 200, NULL, NULL));
	free(s);
	s = nested(65, &len);
	json_object_put(expect(fd, s, len, 400, "bad_request", NULL));
	free(s);
	still_usable(fd, 0);
	close(fd);
	check_stop_clean();
}

/* A config with a [plugin:good] line of `n` bytes (without '\n') on
 * line 3, for daemon_run_expect_fail_path(). */
static char *
config_with_line(size_t n)
{
	static const char head[] = "[host]\n[plugin:good]\n", key[] =
	    "greeting = ";
	char *s = malloc(sizeof(head) + n + 2);

	cr_assert_not_null(s);
	strcpy(s, head);
	strcat(s, key);
	memset(s + strlen(s), 'g', n - strlen(key));
	strcpy(s + sizeof(head) - 1 + n, "\n");
	return s;
}

/* Run cmdhostd -t -c path: its exit status, and stderr (free it). */
static int
check_only(const char *path, char **err, int timeout_ms)
{
	char *const argv[] = { CMDHOSTD, "-t", "-c", (char *)path, NULL };
	int st = -1;

	CHECK(run_command(argv, NULL, timeout_ms, &st, NULL, err) == 0,
	    "cmdhostd -t -c %s did not finish in %d ms", path, timeout_ms);
	return st;
}

/* 8: Debian's inih cut a line past 198 bytes in two and -t said ok. */
Test(strict, n08_long_config_line_is_an_error, .timeout = 60)
{
	char dir[] = "/tmp/cmdhost-strict.XXXXXX", path[64], want[96];
	char *text, *err = NULL;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	/* -t also checks the (default) plugin_dir a start would open. */
	snprintf(path, sizeof(path), "%s/plugins", dir);
	CHECK(mkdir(path, 0700) == 0, "mkdir %s", path);
	snprintf(path, sizeof(path), "%s/cmdhost.ini", dir);
	/* At the limit: read whole. */
	text = config_with_line(198);
	CHECK((f = fopen(path, "w")) != NULL && fputs(text, f) >= 0 &&
	    fclose(f) == 0, "write %s", path);
	free(text);
	CHECK(check_only(path, &err, 10000) == 0, "-t of a 198-byte line: %s",
	    err);
	free(err);
	/* The 250-byte value. */
	text = config_with_line(strlen("greeting = ") + 250);
	CHECK((f = fopen(path, "w")) != NULL && fputs(text, f) >= 0 &&
	    fclose(f) == 0, "write %s", path);
	free(text);
	CHECK(check_only(path, &err, 10000) != 0, "-t of a 250-byte value "
	    "said ok: %s", err);
	snprintf(want, sizeof(want), "%s:3: line longer than 198 bytes", path);
	CHECK(strstr(err, want) != NULL, "-t said: %s", err);
	free(err);
	unlink(path);
	snprintf(path, sizeof(path), "%s/plugins", dir);
	rmdir(path);
	rmdir(dir);
}

/* 9: open() of a FIFO with no writer blocked -t and start-up for ever. */
Test(strict, n09_config_fifo_is_refused_at_once, .timeout = 60)
{
	char dir[] = "/tmp/cmdhost-strict.XXXXXX", path[64];
	char *const run[] = { CMDHOSTD, "-c", path, NULL };
	char *err = NULL;
	int64_t t0;
	int st = -1;

	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof(path), "%s/cmdhost.ini", dir);
	CHECK(mkfifo(path, 0600) == 0, "mkfifo: %s", strerror(errno));
	t0 = now_ms();
	CHECK(check_only(path, &err, 5000) != 0, "-t of a FIFO said ok");
	CHECK(strstr(err, "not a regular file") != NULL, "-t said: %s", err);
	free(err);
	err = NULL;
	CHECK(run_command(run, NULL, 5000, &st, NULL, &err) == 0,
	    "cmdhostd -c FIFO did not exit within 5 s");
	CHECK(st != 0 && strstr(err, "not a regular file") != NULL,
	    "start-up with a FIFO: status %d, %s", st, err);
	free(err);
	CHECK(now_ms() - t0 < 5000, "took %lld ms", (long long)(now_ms() -
	    t0));
	unlink(path);
	rmdir(dir);
}

/* Lines of text holding `what`. */
static int
count(const char *text, const char *what)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, what)) != NULL; p++)
		n++;
	return n;
}

/* The test's daemon's log once it stopped growing for 300 ms (a loop
 * writes its lines when it goes idle), within 5 s: a new string. */
static char *
settled_log(void)
{
	char *log = daemon_log(check_daemon()), *again;

	for (int64_t t0 = now_ms(); now_ms() - t0 < 5000; log = again) {
		nap_ms(300);
		again = daemon_log(check_daemon());
		if (again != NULL && log != NULL && strlen(again) ==
		    strlen(log)) {
			free(again);
			break;
		}
		free(log);
	}
	CHECK(log != NULL, "no log");
	return log;
}

/* 10: one connection could write ~170 MB/s of warn lines. */
Test(strict, n10_client_warnings_are_rate_limited, .timeout = 120)
{
	enum { FLOOD = 2000, BATCH = 100 };
	char batch[BATCH * 32];
	int64_t t0, secs;
	char *log, *sup;
	int fd, warned, held = 0, got = 0, trickle = 0, before;

	/* The defaults: bursts of 100, then 20 lines a second. */
	check_start_with(plugins, NULL);
	fd = check_connect();
	t0 = now_ms();
	/* Pipelined in batches, every reply read: each line got one. */
	for (int b = 0; b < FLOOD / BATCH; b++) {
		size_t n = 0;

		for (int i = 0; i < BATCH; i++)
			n += (size_t)snprintf(batch + n, sizeof(batch) - n,
			    "{\"command\":\"no.such\"}\n");
		CHECK(client_send_raw(fd, batch, n) == 0, "send");
		for (int i = 0; i < BATCH; i++) {
			char *line = client_recv_line(fd);

			CHECK(line != NULL && strstr(line, "\"status\":404") !=
			    NULL, "reply %d: %s", got, line);
			free(line);
			got++;
		}
	}
	/* Lines held back are reported before the next line let through.
	 * Once the log settles, send one bad line every 50 ms until one is
	 * written: what the flood held back is then reported. */
	log = settled_log();
	before = count(log, "\"error_code\":\"unknown_command\"");
	free(log);
	for (;;) {
		CHECK(now_ms() - t0 < 30000, "no line let through after the "
		    "flood");
		json_object_put(expect(fd, LIT("{\"command\":\"no.such\"}"),
		    404, "unknown_command", NULL));
		trickle++;
		log = settled_log();
		if (count(log, "\"error_code\":\"unknown_command\"") > before)
			break;
		free(log);
		nap_ms(50);
	}
	CHECK(count(log, "\"message\":\"suppressed ") >= 1, "no report");
	secs = (now_ms() - t0) / 1000 + 1;
	CHECK(log != NULL, "no log");
	warned = count(log, "\"error_code\":\"unknown_command\"");
	CHECK(warned >= 100 && warned <= 100 + 20 * secs + 5, "%d warn lines "
	    "for %d bad requests in %lld s", warned, FLOOD + trickle,
	    (long long)secs);
	/* Every line not written is counted in a report. */
	for (sup = log; (sup = strstr(sup, "\"message\":\"suppressed ")) !=
	    NULL; sup++) {
		int n = 0;

		CHECK(sscanf(sup, "\"message\":\"suppressed %d", &n) == 1 &&
		    n > 0, "report: %.200s", sup);
		held += n;
	}
	CHECK(held + warned >= FLOOD && held + warned <= FLOOD + trickle,
	    "%d held and %d written of %d + %d", held, warned, FLOOD,
	    trickle);
	free(log);
	close(fd);
	check_stop_clean();
}
