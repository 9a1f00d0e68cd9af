/*
 * test_text_reply.c - the ABI 1.1 entries on a live daemon: a body given
 * as JSON text passes byte for byte (whitespace between tokens dropped);
 * invalid JSON, NaN, 1e400, bad UTF-8, control characters and a body over
 * CMDHOST_BODY_TEXT_MAX are 500 bad_reply naming the plugin, and the
 * daemon goes on serving; random texts (a small fuzz) always get one
 * valid reply line.  Also: the client's id as text, the log cut behind
 * the table, the descriptor given by a function, and an ABI 1.0 plugin
 * loading unchanged.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmdhost/plugin.h>
#include <json-c/json.h>

#include "harness.h"

static const char *const plugins[] = { "text_reply.so", "desc_fn.so",
	"old_minor.so", NULL };

TestSuite(text_reply, .fini = check_free);

static void
to_hex(const char *s, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[(unsigned char)s[i] >> 4];
		out[2 * i + 1] = digits[(unsigned char)s[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Send text.reply with `n` bytes of `text` and return the raw reply line
 * (free it), or NULL. */
static char *
reply_line(int fd, const char *text, size_t n, int status)
{
	char *hex = malloc(2 * n + 1), *line = malloc(2 * n + 128), *r;

	cr_assert(hex != NULL && line != NULL);
	to_hex(text, n, hex);
	snprintf(line, 2 * n + 128, "{\"id\":1,\"command\":\"text.reply\","
	    "\"payload\":{\"hex\":\"%s\",\"status\":%d}}", hex, status);
	r = client_send(fd, line) == 0 ? client_recv_line(fd) : NULL;
	free(hex);
	free(line);
	return r;
}

static void
expect_passes(int fd, const char *text, const char *wire, int status)
{
	char want[512], *got = reply_line(fd, text, strlen(text), status);

	snprintf(want, sizeof(want), "{\"id\":1,\"status\":%d,\"body\":%s}",
	    status, wire);
	CHECK(got != NULL && strcmp(got, want) == 0, "text %s: want %s, got "
	    "%s", text, want, got ? got : "(nothing)");
	free(got);
}

/* The reply to n bytes of text must be 500 bad_reply naming the
 * plugin, with `why` in the message; a valid reply line either way. */
static void
expect_refused(int fd, const char *text, size_t n, const char *why)
{
	char *got = reply_line(fd, text, n, 200);
	json_object *j = got ? json_tokener_parse(got) : NULL;
	const char *msg = reply_error_message(j);

	CHECK(j != NULL, "not a JSON reply: %s", got ? got : "(nothing)");
	CHECK(reply_status(j) == 500 && strcmp(reply_error_code(j) ?
	    reply_error_code(j) : "", "bad_reply") == 0, "%.*s: %s",
	    (int)(n < 60 ? n : 60), text, got);
	CHECK(msg != NULL && strstr(msg, "plugin 'text_reply'") != NULL &&
	    strstr(msg, why) != NULL, "message of %.*s: %s (want '%s')",
	    (int)(n < 60 ? n : 60), text, got, why);
	json_object_put(j);
	free(got);
}

Test(text_reply, valid_bodies_pass_byte_for_byte, .timeout = 60)
{
	static const char *const same[] = {
		"{\"a\":1}", "[]", "{}", "\"x\"", "42", "-7", "true", "false",
		"null", "[1,2.50,-0.0,1E+2,1e-7]", "\"\\u00e9\\n\\/\\\"\"",
		"\"h\xc3\xa9llo \xf0\x9f\x98\x80\"", "{\"a\":{\"b\":[[],{}]}}",
		"18446744073709551615", "-9223372036854775808",
		"\"\\ud83d\\ude00\"", "[-0,\"a/b\",\"\\t\"]", NULL
	};
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	for (int i = 0; same[i] != NULL; i++)
		expect_passes(fd, same[i], same[i], 200);
	/* Whitespace between tokens goes, inside strings it stays. */
	expect_passes(fd, " {\n\t\"a b\" : [ 1 , 2 ]\r\n} ", "{\"a b\":[1,2]}",
	    200);
	/* A name given twice keeps its last value. */
	expect_passes(fd, "{\"a\":1,\"a\":2}", "{\"a\":2}", 200);
	/* Another 2xx status. */
	expect_passes(fd, "{\"made\":true}", "{\"made\":true}", 201);
	close(fd);
	check_stop_clean();
}

/*
 * The echo plugin hands its payload text back as its text body.  When no
 * name in the request is escaped or given twice that text goes out as it
 * is, unscanned; otherwise it is checked as any body is, and the reply is
 * what a checked body makes of it (a name given twice keeps its last
 * value, an escaped name is written as json-c writes it), exactly as the
 * same text from text_reply.so.
 */
Test(text_reply, echoed_payloads_are_what_a_checked_body_makes, .timeout = 60)
{
	static const char *const cases[][2] = {
		{ "{\"msg\":\"hello\"}", "{\"msg\":\"hello\"}" },
		{ " { \"a\" : [ 1 , 2 ] } ", "{\"a\":[1,2]}" },
		{ "{\"a\":1,\"a\":2}", "{\"a\":2}" },
		{ "{\"b\":{\"a\":1,\"a\":[3]}}", "{\"b\":{\"a\":[3]}}" },
		{ "{\"\\u0061\":1}", "{\"a\":1}" },
		{ "[{\"a\":1},{\"a\":1}]", "[{\"a\":1},{\"a\":1}]" },
		{ "\"\\u00e9\\/\"", "\"\\u00e9\\/\"" },
	};
	static const char *const with_echo[] = { "text_reply.so",
		"plugins/echo.so", NULL };
	char line[256], want[256], *got;
	int fd;

	check_start_with(with_echo, NULL);
	fd = check_connect();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(line, sizeof(line), "{\"id\":1,\"command\":\"echo\","
		    "\"payload\":%s}", cases[i][0]);
		snprintf(want, sizeof(want), "{\"id\":1,\"status\":200,"
		    "\"body\":%s}", cases[i][1]);
		got = client_send(fd, line) == 0 ? client_recv_line(fd) : NULL;
		CHECK(got != NULL && strcmp(got, want) == 0, "payload %s: want "
		    "%s, got %s", cases[i][0], want, got ? got : "(nothing)");
		free(got);
		/* The same text as a body from another plugin. */
		expect_passes(fd, cases[i][0], cases[i][1], 200);
	}
	/* A name given twice at the top: the envelope's rule picks the
	 * payload, and the body is checked. */
	got = client_send(fd, "{\"id\":1,\"command\":\"echo\",\"payload\":"
	    "{\"x\":1},\"payload\":{\"y\":2,\"y\":3}}") == 0 ?
	    client_recv_line(fd) : NULL;
	CHECK(got != NULL && strstr(got, "\"status\":200") != NULL &&
	    strstr(got, "\"y\":3") != NULL && strstr(got, "\"y\":2") == NULL,
	    "duplicate payload: %s", got ? got : "(nothing)");
	free(got);
	close(fd);
	check_stop_clean();
}

Test(text_reply, invalid_bodies_are_500_naming_the_plugin, .timeout = 120)
{
	static const struct { const char *text; const char *why; } bad[] = {
		{ "{\"a\":}", "not JSON" },
		{ "{\"a\":1", "not JSON" },
		{ "[1,2]]", "not JSON" },
		{ "{\"a\":1} {}", "not JSON" },
		{ "NaN", "NaN" },
		{ "[Infinity]", "NaN" },
		{ "{\"x\":-Infinity}", "NaN" },
		{ "[1e400]", "out of range" },
		{ "18446744073709551616", "out of range" },
		{ "-9223372036854775809", "out of range" },
		{ "\"\xff\"", "UTF-8" },
		{ "\"\xc3\"", "UTF-8" },
		{ "\"\xed\xa0\x80\"", "UTF-8" }, /* a surrogate */
		{ "\"\xc0\xaf\"", "UTF-8" },     /* overlong */
		{ "\"a\x01\"", "control character" },
		{ "\"a\nb\"", "control character" },
		{ "\"abc", "unterminated" },
		{ "", "empty" },
		{ "   ", "empty" },
		{ "'a'", "not JSON" },
		{ "[nan]", "not JSON" },
		{ "\xef\xbb\xbf{}", "unexpected byte" }, /* a BOM */
	};
	char deep[200], *got;
	json_object *j;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_refused(fd, bad[i].text, strlen(bad[i].text),
		    bad[i].why);
		/* And the same connection still serves. */
		expect_passes(fd, "[1]", "[1]", 200);
	}
	/* A NUL byte inside the text. */
	expect_refused(fd, "\"a\0b\"", 5, "control character");
	/* Too deep: 65 arrays. */
	memset(deep, '[', 65);
	memset(deep + 65, ']', 65);
	expect_refused(fd, deep, 130, "not JSON");
	/* A status that is not 2xx is refused too, naming the plugin. */
	j = check_call(fd, "{\"command\":\"text.reply\",\"payload\":{\"hex\":"
	    "\"7b7d\",\"status\":404}}", 500, "command_failed");
	CHECK(strstr(reply_error_message(j), "plugin 'text_reply'") != NULL,
	    "%s", reply_text(j));
	json_object_put(j);
	/* Over CMDHOST_BODY_TEXT_MAX: one byte too many. */
	{
		char line[160];

		snprintf(line, sizeof(line), "{\"command\":\"text.reply\","
		    "\"payload\":{\"huge\":%u}}", CMDHOST_BODY_TEXT_MAX + 1);
		j = check_call(fd, line, 500, "bad_reply");
		CHECK(strstr(reply_error_message(j), "over the limit") != NULL,
		    "%s", reply_text(j));
		json_object_put(j);
		/* At the limit it passes. */
		snprintf(line, sizeof(line), "{\"command\":\"text.reply\","
		    "\"payload\":{\"huge\":%u}}", CMDHOST_BODY_TEXT_MAX);
		CHECK(client_send(fd, line) == 0, "send");
		got = client_recv_line(fd);
		CHECK(got != NULL && strncmp(got, "{\"id\":null,\"status\":200,"
		    "\"body\":\"aaa", 35) == 0 && strlen(got) ==
		    CMDHOST_BODY_TEXT_MAX + 32,
		    "%.80s", got ? got : "(nothing)");
		free(got);
	}
	close(fd);
	check_stop_clean();
}

/* The fuzz's generator of valid JSON: the value goes to `c` compact
 * and to `w` with random whitespace between tokens. */
struct gen {
	unsigned seed;
	char c[2048], w[4096];
	size_t cn, wn;
};

static unsigned
gen_rand(struct gen *g, unsigned n)
{
	g->seed = g->seed * 1103515245u + 12345u;
	return (g->seed >> 16) % n;
}

static void
gen_put(struct gen *g, const char *tok)
{
	static const char *const ws[] = { "", "", " ", "\n", "\t", "\r\n " };
	const char *sp = ws[gen_rand(g, 6)];
	size_t n = strlen(tok);

	if (g->cn + n + 1 >= sizeof(g->c) || g->wn + n + 8 >= sizeof(g->w))
		return;
	memcpy(g->c + g->cn, tok, n);
	g->cn += n;
	memcpy(g->w + g->wn, sp, strlen(sp));
	g->wn += strlen(sp);
	memcpy(g->w + g->wn, tok, n);
	g->wn += n;
}

static void
gen_value(struct gen *g, int depth)
{
	static const char *const scalars[] = { "0", "-1", "3.25", "1e-3",
		"-2.5E+8", "9223372036854775807", "true", "false", "null",
		"\"\"", "\"a b\"", "\"\\u0041\\n\\\"\"",
		"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
		"\" \\t \"" };
	unsigned kind = depth > 4 ? 0 : gen_rand(g, 4);
	unsigned n;

	if (kind < 2) {
		gen_put(g, scalars[gen_rand(g, sizeof(scalars) /
		    sizeof(scalars[0]))]);
		return;
	}
	n = gen_rand(g, 4);
	gen_put(g, kind == 2 ? "[" : "{");
	for (unsigned i = 0; i < n; i++) {
		if (i > 0)
			gen_put(g, ",");
		if (kind == 3) {
			char key[16];

			snprintf(key, sizeof(key), "\"k%u\"", i);
			gen_put(g, key);
			gen_put(g, ":");
		}
		gen_value(g, depth + 1);
	}
	gen_put(g, kind == 2 ? "]" : "}");
}

/* Random valid JSON with random whitespace passes compact, byte for
 * byte. */
Test(text_reply, fuzz_valid_texts_pass_exactly, .timeout = 180)
{
	struct gen g;
	int fd;

	g.seed = 777;
	check_start_with(plugins, NULL);
	fd = check_connect();
	for (int round = 0; round < 300; round++) {
		char want[2200], *got;

		g.cn = g.wn = 0;
		gen_value(&g, 0);
		g.c[g.cn] = g.w[g.wn] = '\0';
		got = reply_line(fd, g.w, g.wn, 200);
		snprintf(want, sizeof(want), "{\"id\":1,\"status\":200,"
		    "\"body\":%s}", g.c);
		CHECK(got != NULL && strcmp(got, want) == 0, "round %d: sent "
		    "%s\nwant %s\ngot  %s", round, g.w, want, got ? got : "-");
		free(got);
	}
	close(fd);
	check_stop_clean();
}

/* A tiny fuzz through the daemon: random texts made of JSON pieces and
 * odd bytes.  Every reply is one valid JSON line; a 200 body is what
 * json-c makes of the text. */
Test(text_reply, fuzz_every_reply_is_valid, .timeout = 180)
{
	static const char *const pieces[] = { "{", "}", "[", "]", ",", ":",
		"\"k\"", "1", "-", "0", ".5", "e9", "true", "null", "\"",
		"\\", "\\u00", "\xc3", "\xa9", "\xff", " ", "\n", "NaN", "1e999",
		"\"\xc3\xa9\"", "9999999999999999999999", "\x01", "x" };
	unsigned seed = 12345;
	int fd, ok = 0, refused = 0;

	check_start_with(plugins, NULL);
	fd = check_connect();
	for (int round = 0; round < 400; round++) {
		char text[256];
		size_t n = 0;
		int k;
		char *got;
		json_object *j;

		seed = seed * 1103515245u + 12345u;
		k = 1 + (int)((seed >> 16) % 12);
		for (int i = 0; i < k; i++) {
			const char *p;

			seed = seed * 1103515245u + 12345u;
			p = pieces[(seed >> 16) % (sizeof(pieces) /
			    sizeof(pieces[0]))];
			if (n + strlen(p) >= sizeof(text))
				break;
			memcpy(text + n, p, strlen(p));
			n += strlen(p);
		}
		got = reply_line(fd, text, n, 200);
		CHECK(got != NULL, "no reply to round %d", round);
		j = json_tokener_parse(got);
		CHECK(j != NULL, "round %d: reply is not JSON: %s", round, got);
		if (reply_status(j) == 200) {
			ok++;
			/* The body holds no raw control byte or newline. */
			for (const char *s = got; *s; s++)
				CHECK((unsigned char)*s >= 0x20, "round %d: %s",
				    round, got);
		} else {
			CHECK(reply_status(j) == 500, "round %d: %s", round,
			    got);
			refused++;
		}
		json_object_put(j);
		free(got);
	}
	cr_log_info("fuzz: %d passed, %d refused", ok, refused);
	CHECK(ok > 0 && refused > 100, "ok %d refused %d", ok, refused);
	close(fd);
	check_stop_clean();
}

Test(text_reply, client_id_text_and_second_finish, .timeout = 60)
{
	json_object *j;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	j = check_call(fd, "{\"id\":\"a\\\"b\",\"command\":\"text.client_id\"}",
	    200, NULL);
	CHECK(strcmp(json_path_str(j, "body/id_text"), "\"a\\\"b\"") == 0,
	    "%s", reply_text(j));
	json_object_put(j);
	j = check_call(fd, "{\"id\":42,\"command\":\"text.client_id\"}", 200,
	    NULL);
	CHECK(strcmp(json_path_str(j, "body/id_text"), "42") == 0, "%s",
	    reply_text(j));
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"text.client_id\"}", 200, NULL);
	CHECK(json_path(j, "body/id_text") == NULL && json_object_is_type(
	    reply_body(j), json_type_object), "%s", reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

/* The 1 KiB cut of log text is the daemon's, on a UTF-8 boundary. */
Test(text_reply, log_is_cut_behind_the_table, .timeout = 60)
{
	char *log, *line, *end;
	json_object *j, *m;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	json_object_put(check_call(fd, "{\"command\":\"text.log\"}", 200,
	    NULL));
	CHECK(daemon_log_wait(check_daemon(), "\"message\":\"L\xc3\xa9",
	    10000), "no log line");
	log = daemon_log(check_daemon());
	line = strstr(log, "\"message\":\"L\xc3\xa9");
	while (line > log && line[-1] != '\n')
		line--;
	end = strchr(line, '\n');
	*end = '\0';
	j = json_tokener_parse(line);
	CHECK(j != NULL, "log line is not JSON: %s", line);
	m = json_object_object_get(j, "message");
	/* 'L' and 511 'é' fit in 1024 bytes; the 512th would cut one. */
	CHECK(json_object_get_string_len(m) == 1023, "length %d",
	    json_object_get_string_len(m));
	CHECK(strcmp(json_path_str(j, "command"), "text.log") == 0, "%s",
	    line);
	json_object_put(j);
	free(log);
	close(fd);
	check_stop_clean();
}

static const char *const long_plugins[] = { "long_texts.so", NULL };

/* `prefix` (ASCII) and then `chars` times 'é' into out (big enough). */
static const char *
cut_text(char *out, const char *prefix, size_t chars)
{
	size_t n = strlen(prefix);

	memcpy(out, prefix, n);
	for (size_t i = 0; i < chars; i++) {
		out[n++] = (char)0xc3;
		out[n++] = (char)0xa9;
	}
	out[n] = '\0';
	return out;
}

/* The message of the log line that starts with `start`, parsed (put
 * it), or NULL. */
static json_object *
log_message_line(const char *start)
{
	char *log, *line, *end;
	json_object *j = NULL;

	if (!daemon_log_wait(check_daemon(), start, 10000))
		return NULL;
	log = daemon_log(check_daemon());
	if (log != NULL && (line = strstr(log, start)) != NULL) {
		while (line > log && line[-1] != '\n')
			line--;
		if ((end = strchr(line, '\n')) != NULL)
			*end = '\0';
		j = json_tokener_parse(line);
	}
	free(log);
	return j;
}

/*
 * The limits that once lived in the C wrappers are the daemon's: an
 * error message and log text are cut at CMDHOST_LOG_MAX on a UTF-8
 * boundary whether the plugin calls the table's entry, as a binding
 * does, or cmdhost_failf() and cmdhost_log(), which must not cut inside
 * a character of their own first (a half character would come out as
 * U+FFFD).  The texts are 3000 bytes of 'é'.
 */
Test(text_reply, limits_behind_the_table_however_called, .timeout = 60)
{
	static const char *const fails[] = { "long.fail_direct",
		"long.failf" };
	static const char *const logs[][2] = {
		{ "long.log_direct", "DD" }, { "long.log_wrapper", "WW" } };
	char want[2100], line[128], start[64];
	json_object *j;
	int fd;

	check_start_with(long_plugins, NULL);
	fd = check_connect();
	for (size_t i = 0; i < 2; i++) {
		const char *msg;

		snprintf(line, sizeof(line), "{\"command\":\"%s\"}", fails[i]);
		j = check_call(fd, line, 422, "too_long");
		msg = reply_error_message(j);
		/* 512 'é' are exactly 1024 bytes. */
		CHECK(msg != NULL && strcmp(msg, cut_text(want, "", 512)) == 0,
		    "%s: message of %zu bytes: %s", fails[i],
		    msg ? strlen(msg) : 0, msg ? msg : "(none)");
		json_object_put(j);
	}
	for (size_t i = 0; i < 2; i++) {
		const char *msg;

		snprintf(line, sizeof(line), "{\"command\":\"%s\"}",
		    logs[i][0]);
		json_object_put(check_call(fd, line, 200, NULL));
		snprintf(start, sizeof(start), "\"message\":\"%s\xc3\xa9",
		    logs[i][1]);
		j = log_message_line(start);
		CHECK(j != NULL, "%s: no JSON log line", logs[i][0]);
		msg = json_path_str(j, "message");
		/* The prefix and 511 'é': 1024 bytes. */
		CHECK(msg != NULL && strcmp(msg, cut_text(want, logs[i][1],
		    511)) == 0, "%s: message of %zu bytes: %s", logs[i][0],
		    msg ? strlen(msg) : 0, msg ? msg : "(none)");
		json_object_put(j);
	}
	close(fd);
	check_stop_clean();
}

/* A registration error is cut at CMDHOST_REG_ERROR_MAX on a UTF-8
 * boundary, through reg_error or cmdhost_reg_error(): host.list, which
 * shows it, stays a valid 200 reply. */
Test(text_reply, registration_error_cut_on_a_character, .timeout = 60)
{
	static const char *const hows[] = { "direct", "wrapper" };
	char want[600], config[128];
	json_object *j;
	int fd;

	for (size_t i = 0; i < 2; i++) {
		const char *err;

		snprintf(config, sizeof(config), "[plugin:long_texts]\n"
		    "reg_error = %s\n", hows[i]);
		check_start_with(long_plugins, config);
		fd = check_connect();
		j = check_call(fd, "{\"command\":\"host.list\"}", 200, NULL);
		err = json_object_get_string(json_object_object_get(
		    json_object_array_get_idx(json_path(j, "body/plugins"), 0),
		    "error"));
		/* The loader's words, then the plugin's: 255 'é' are 510
		 * bytes, the 256th would pass 511. */
		if (err != NULL && strstr(err, "registration failed: ") != NULL)
			err = strstr(err, "registration failed: ") +
			    strlen("registration failed: ");
		CHECK(err != NULL && strcmp(err, cut_text(want, "", 255)) == 0,
		    "%s: error of %zu bytes: %s", hows[i],
		    err ? strlen(err) : 0, reply_text(j));
		json_object_put(j);
		close(fd);
		check_stop_clean();
		check_free();
	}
}

Test(text_reply, descriptor_function_and_abi_1_0_plugin, .timeout = 60)
{
	json_object *j;
	int fd;

	check_start_with(plugins, NULL);
	fd = check_connect();
	j = check_call(fd, "{\"command\":\"descfn.ping\"}", 200, NULL);
	CHECK(json_object_get_int(json_path(j, "body/pong")) == 1, "%s",
	    reply_text(j));
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"old.ping\"}", 200, NULL);
	CHECK(json_object_get_boolean(json_path(j, "body/pong")) &&
	    json_object_get_boolean(json_path(j, "body/has_text")), "%s",
	    reply_text(j));
	json_object_put(j);
	/* host.list shows each plugin's ABI as it declared it. */
	j = check_call(fd, "{\"command\":\"host.list\"}", 200, NULL);
	CHECK(strstr(reply_text(j), "desc_fn") != NULL, "%s", reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}
