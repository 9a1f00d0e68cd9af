/*
 * test_config.c - unit tests of config.c: the defaults, config_load() of
 * real files in a temporary directory, every [host] key's checks, [nats]
 * and [jetstream], the "FILE:LINE: reason" errors, and the key table
 * against man/cmdhost.ini.5.  Files are written without leading blanks,
 * since inih reads an indented line as the continuation of the last value.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fixture.h"
#include "log.h"

static char tmpdir[64];
static char path[256];   /* the ini file of the current test */
static struct config cfg;
static char err[1024];

/* A fresh temporary directory and a default config per test. */
static void
setup(void)
{
	fixture_mkdtemp(tmpdir, sizeof(tmpdir), "config");
	snprintf(path, sizeof(path), "%s/cmdhost.ini", tmpdir);
	cr_assert_eq(config_init(&cfg), 0);
	err[0] = '\0';
}

/* Free the config; remove the directory and all in it. */
static void
teardown(void)
{
	config_fini(&cfg);
	fixture_rmtree(tmpdir);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Write text to the test's ini file (replacing it). */
static void
write_ini(const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
}

/* Write text and load it into cfg (re-initialized first).  Returns
 * config_load()'s result; the reason is in err. */
static int
load(const char *text)
{
	config_fini(&cfg);
	cr_assert_eq(config_init(&cfg), 0);
	write_ini(text);
	err[0] = '\0';
	return config_load(&cfg, path, err, sizeof(err));
}

/* Assert that text fails to load with "PATH:LINE:" at the start of the
 * reason and `what` somewhere in it. */
static void
expect_error_at(const char *text, int line, const char *what)
{
	char prefix[300];

	cr_assert_eq(load(text), -1, "accepted: %s", text);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	cr_assert_eq(strncmp(err, prefix, strlen(prefix)), 0, "error \"%s\" "
	    "does not start with \"%s\" (file: %s)", err, prefix, text);
	cr_assert_not_null(strstr(err, what), "error \"%s\" does not mention "
	    "\"%s\"", err, what);
}

/* Assert that `key = value` in [host] (on line 3) is refused, naming the
 * key. */
static void
expect_bad_value(const char *key, const char *value)
{
	char text[512];

	snprintf(text, sizeof(text), "[host]\n; a comment\n%s = %s\n", key,
	    value);
	expect_error_at(text, 3, key);
}

/* Assert that `key = value` in [host] loads. */
static void
expect_good_value(const char *key, const char *value)
{
	char text[512];

	snprintf(text, sizeof(text), "[host]\n%s = %s\n", key, value);
	cr_assert_eq(load(text), 0, "%s = %s refused: %s", key, value, err);
}

Test(config, defaults)
{
	cr_assert_eq(cfg.socket_mode, 0660);
	cr_assert_eq(cfg.max_request_bytes, 1048576);
	cr_assert_eq(cfg.workers, 0);
	cr_assert_eq(cfg.pool_threads, 8);
	cr_assert_eq(cfg.queue_depth, 1024);
	cr_assert_eq(cfg.max_connections, 1024);
	cr_assert_eq(cfg.default_timeout_ms, 30000);
	cr_assert_eq(cfg.shutdown_timeout_ms, 10000);
	cr_assert_eq(cfg.log_level, LOGL_INFO);
	cr_assert_eq(cfg.log_format, LOGF_JSON);
	cr_assert_eq(cfg.n_admin_uids, 0);
	cr_assert_eq(cfg.n_plugin_kvs, 0);
	cr_assert_not_null(cfg.socket);
	cr_assert_not_null(cfg.plugin_dir);
	cr_assert_neq(cfg.socket[0], '\0');
	cr_assert_neq(cfg.plugin_dir[0], '\0');
	cr_assert_null(config_plugin_value(&cfg, "good", "greeting"));
}

/* Every default, pinned: the values config_init() gave before the keys
 * became a table. */
Test(config, every_default)
{
	cr_assert_eq(cfg.socket_mode, 0660);
	cr_assert_str_eq(cfg.socket, "cmdhost.sock");
	cr_assert_str_eq(cfg.plugin_dir, "plugins");
	cr_assert_eq(cfg.workers, 0);
	cr_assert_eq(cfg.pool_threads, 8);
	cr_assert_eq(cfg.queue_depth, 1024);
	cr_assert_eq(cfg.inline_budget_us, 2000);
	cr_assert_eq(cfg.max_request_bytes, 1048576);
	cr_assert_eq(cfg.max_pending_bytes, 1048576);
	cr_assert_eq(cfg.idle_timeout_ms, 300000);
	cr_assert_eq(cfg.allow_insecure_plugins, 0);
	cr_assert_eq(cfg.max_connections, 1024);
	cr_assert_eq(cfg.default_timeout_ms, 30000);
	cr_assert_eq(cfg.shutdown_timeout_ms, 10000);
	cr_assert_eq(cfg.watch, 1);
	cr_assert_eq(cfg.reload_debounce_ms, 20);
	cr_assert_eq(cfg.log_level, LOGL_INFO);
	cr_assert_eq(cfg.log_format, LOGF_JSON);
	cr_assert_str_eq(cfg.service, "cmdhostd");
	cr_assert_eq(cfg.access_log, 0);
	cr_assert_eq(cfg.reply_request_id, 0);
	cr_assert_eq(cfg.n_admin_uids, 0);
	cr_assert_null(cfg.path);

	cr_assert_eq(cfg.nats.enabled, 0);
	cr_assert_str_eq(cfg.nats.url, "nats://127.0.0.1:4222");
	cr_assert_str_eq(cfg.nats.subject_prefix, "cmdhost.cmd.");
	cr_assert_str_eq(cfg.nats.queue_group, "cmdhost");
	cr_assert_str_eq(cfg.nats.service_name, "cmdhost");
	cr_assert_null(cfg.nats.credentials);
	cr_assert_null(cfg.nats.user);
	cr_assert_null(cfg.nats.password);
	cr_assert_null(cfg.nats.token);
	cr_assert_null(cfg.nats.tls_ca);
	cr_assert_null(cfg.nats.module);
	cr_assert_eq(cfg.nats.reconnect_wait_ms, 250);
	cr_assert_eq(cfg.nats.max_reconnect, -1);
	cr_assert_eq(cfg.nats.delivery_threads, 2);
	cr_assert_eq(cfg.nats.send_asap, 1);
	cr_assert_eq(cfg.nats.js_enabled, 0);
	cr_assert_str_eq(cfg.nats.js_stream, "CMDHOST_EVENTS");
	cr_assert_str_eq(cfg.nats.js_subjects, "cmdhost.events.>");
	cr_assert_str_eq(cfg.nats.js_durable, "cmdhost");
	cr_assert_str_eq(cfg.nats.js_dead_letter, "cmdhost.dead.");
	cr_assert_eq(cfg.nats.js_ack_wait_ms, 0);
	cr_assert_eq(cfg.nats.js_max_deliver, 5);
	cr_assert_eq(cfg.nats.js_nak_delay_ms, 1000);
	cr_assert_eq(cfg.nats.js_fetch_batch, 32);
	cr_assert_eq(cfg.nats.js_max_inflight, 64);
}

/* Assert that text fails to load with exactly "PATH:LINE: reason". */
static void
expect_exact_error(const char *text, int line, const char *reason)
{
	char want[1024];

	cr_assert_eq(load(text), -1, "accepted: %s", text);
	snprintf(want, sizeof(want), "%s:%d: %s", path, line, reason);
	cr_assert_str_eq(err, want, "file: %s", text);
}

/* The exact reasons, one per kind of check, pinned. */
Test(config, error_texts)
{
	static const struct {
		const char *text;
		int line;
		const char *reason;
	} cases[] = {
		{ "[host]\nworkers = x\n", 2,
		  "workers: 'x' is not an integer in 0..256" },
		{ "[host]\nworkers = \n", 2,
		  "workers: '' is not an integer in 0..256" },
		{ "[host]\nmax_request_bytes = 63\n", 2,
		  "max_request_bytes: '63' is not an integer in 64..1073741824" },
		{ "[host]\nmax_pending_bytes = 1M\n", 2,
		  "max_pending_bytes: '1M' is not an integer in "
		  "4096..1073741824" },
		{ "[host]\nsocket_mode = 0778\n", 2,
		  "socket_mode: '0778' is not an octal mode from 0 to 0777" },
		{ "[host]\nsocket_mode = +7\n", 2,
		  "socket_mode: '+7' is not an octal mode from 0 to 0777" },
		{ "[host]\nwatch = maybe\n", 2,
		  "watch: 'maybe' is not true or false" },
		{ "[host]\naccess_log = 2\n", 2,
		  "access_log: '2' is not true or false" },
		{ "[host]\nlog_level = loud\n", 2,
		  "log_level: 'loud' is not one of debug, info, warn, error" },
		{ "[host]\nlog_format = xml\n", 2,
		  "log_format: 'xml' is not json or text" },
		{ "[host]\nplugin_dir =\n", 2, "plugin_dir: must not be empty" },
		{ "[host]\nsocket =\n", 2, "socket: must not be empty" },
		{ "[host]\nservice =\n", 2, "service: must be 1..64 characters" },
		{ "[host]\nservice = a\"b\n", 2, "service: 'a\"b' may hold only "
		  "printable ASCII without spaces, quotes or backslashes" },
		{ "[host]\nadmin_uids = 0, nosuchuserxyz\n", 2, "admin_uids: "
		  "'nosuchuserxyz' is neither a uid nor a known user" },
		{ "[host]\nnope = 1\n", 2, "unknown key 'nope' in [host]" },
		{ "workers = 1\n", 1,
		  "key 'workers' outside any section; put it under [host]" },
		{ "[hots]\nworkers = 1\n", 2, "unknown section [hots] (expected "
		  "[host], [nats], [jetstream], [events], [route:SUBJECT] or "
		  "[plugin:NAME])" },
		{ "[host]\nworkers 1\n", 2,
		  "syntax error (expected [section] or key = value)" },
		{ "[nats]\nreconnect_wait_ms = 9\n", 2,
		  "reconnect_wait_ms: '9' is not an integer in 10..600000" },
		{ "[nats]\nmax_reconnect = -2\n", 2,
		  "max_reconnect: '-2' is not an integer in -1..1000000" },
		{ "[nats]\nsubject_prefix =\n", 2,
		  "subject_prefix: must not be empty" },
		{ "[nats]\nsubject_prefix = a b\n", 2,
		  "subject_prefix: 'a b' is not a valid NATS name" },
		{ "[nats]\nservice_name = a.b\n", 2,
		  "service_name: 'a.b' is not a valid NATS name" },
		{ "[nats]\nsend_asap = yes\n", 2,
		  "send_asap: 'yes' is not true or false" },
		{ "[nats]\nnope = 1\n", 2, "unknown key 'nope' in [nats]" },
		{ "[nats]\n[jetstream]\nsubjects =\n", 3,
		  "subjects: must not be empty" },
		{ "[nats]\n[jetstream]\ndurable = a>\n", 3,
		  "durable: 'a>' is not a valid NATS name" },
		{ "[nats]\n[jetstream]\nfetch_batch = 1025\n", 3,
		  "fetch_batch: '1025' is not an integer in 1..1024" },
		{ "[nats]\n[jetstream]\nnope = 1\n", 3,
		  "unknown key 'nope' in [jetstream]" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_exact_error(cases[i].text, cases[i].line,
		    cases[i].reason);
}

/* The reasons of the checks after the file is read: "FILE: reason". */
Test(config, cross_key_error_texts)
{
	char want[1024];

	cr_assert_eq(load("[jetstream]\nstream = EV\n"), -1);
	snprintf(want, sizeof(want), "%s: [jetstream] needs a [nats] section",
	    path);
	cr_assert_str_eq(err, want);
	cr_assert_eq(load("[host]\ndefault_timeout_ms = 5000\n[nats]\nurl = x\n"
	    "[jetstream]\nack_wait_ms = 5000\n"), -1);
	snprintf(want, sizeof(want), "%s: [jetstream] ack_wait_ms (5000) must "
	    "be above [host] default_timeout_ms (5000), or events would be "
	    "redelivered while they still run", path);
	cr_assert_str_eq(err, want);
}

/* The lenient words of [host] booleans; [nats] send_asap takes only
 * true or false. */
Test(config, boolean_words)
{
	static const char *const yes[] = { "true", "YES", "On", "1" };
	static const char *const no[] = { "false", "No", "OFF", "0" };

	for (size_t i = 0; i < 4; i++) {
		expect_good_value("access_log", yes[i]);
		cr_assert_eq(cfg.access_log, 1, "%s", yes[i]);
		expect_good_value("watch", no[i]);
		cr_assert_eq(cfg.watch, 0, "%s", no[i]);
	}
	cr_assert_eq(load("[nats]\nsend_asap = false\n"), 0, "%s", err);
	cr_assert_eq(cfg.nats.send_asap, 0);
	cr_assert_eq(load("[nats]\nsend_asap = on\n"), -1);
	cr_assert_eq(load("[nats]\nsend_asap = True\n"), -1);
}

/* A section header alone turns its section on when a key follows. */
Test(config, sections_seen)
{
	cr_assert_eq(load("[nats]\nuser = u\n[jetstream]\nmax_deliver = 2\n"),
	    0, "%s", err);
	cr_assert_eq(cfg.nats.enabled, 1);
	cr_assert_eq(cfg.nats.js_enabled, 1);
	cr_assert_str_eq(cfg.nats.user, "u");
	cr_assert_eq(cfg.nats.js_ack_wait_ms, 35000);
	/* Free-form strings take the empty string. */
	cr_assert_eq(load("[nats]\npassword =\n"), 0, "%s", err);
	cr_assert_str_eq(cfg.nats.password, "");
}

Test(config, fini_accepts_null_and_zeroed)
{
	struct config z;

	memset(&z, 0, sizeof(z));
	config_fini(NULL);
	config_fini(&z);
	config_fini(&z);
	cr_assert_null(z.socket);
}

Test(config, empty_file_keeps_defaults)
{
	cr_assert_eq(load(""), 0, "%s", err);
	cr_assert_eq(cfg.socket_mode, 0660);
	cr_assert_eq(cfg.max_request_bytes, 1048576);
	cr_assert_not_null(cfg.path);
	cr_assert_str_eq(cfg.path, path);
}

Test(config, full_valid_file)
{
	struct passwd *nobody = getpwnam("nobody");

	cr_assert_not_null(nobody, "this test needs a 'nobody' user");
	cr_assert_eq(load(
	    "; cmdhost test configuration\n"
	    "[host]\n"
	    "socket = run/cmdhost.sock\n"
	    "socket_mode = 0600\n"
	    "plugin_dir = my-plugins\n"
	    "workers = 3\n"
	    "pool_threads = 16\n"
	    "queue_depth = 99\n"
	    "inline_budget_us = 500\n"
	    "max_request_bytes = 4096\n"
	    "max_connections = 7\n"
	    "default_timeout_ms = 1500\n"
	    "shutdown_timeout_ms = 0\n"
	    "log_level = debug\n"
	    "log_format = text\n"
	    "admin_uids = 0, 1000 ,nobody\n"
	    "\n"
	    "[plugin:good]\n"
	    "greeting = hello there\n"
	    "db = data/good.db\n"
	    "[plugin:users]\n"
	    "db = users.db\n"), 0, "%s", err);
	cr_assert_str_eq(cfg.socket, "run/cmdhost.sock");
	cr_assert_eq(cfg.socket_mode, 0600);
	cr_assert_str_eq(cfg.plugin_dir, "my-plugins");
	cr_assert_eq(cfg.workers, 3);
	cr_assert_eq(cfg.pool_threads, 16);
	cr_assert_eq(cfg.queue_depth, 99);
	cr_assert_eq(cfg.inline_budget_us, 500);
	cr_assert_eq(cfg.max_request_bytes, 4096);
	cr_assert_eq(cfg.max_connections, 7);
	cr_assert_eq(cfg.default_timeout_ms, 1500);
	cr_assert_eq(cfg.shutdown_timeout_ms, 0);
	cr_assert_eq(cfg.log_level, LOGL_DEBUG);
	cr_assert_eq(cfg.log_format, LOGF_TEXT);
	cr_assert_eq(cfg.n_admin_uids, 3);
	cr_assert_eq(cfg.admin_uids[0], 0);
	cr_assert_eq(cfg.admin_uids[1], 1000);
	cr_assert_eq(cfg.admin_uids[2], nobody->pw_uid);
	cr_assert_str_eq(config_plugin_value(&cfg, "good", "greeting"),
	    "hello there");
	cr_assert_str_eq(config_plugin_value(&cfg, "good", "db"),
	    "data/good.db");
	cr_assert_str_eq(config_plugin_value(&cfg, "users", "db"), "users.db");
	cr_assert_null(config_plugin_value(&cfg, "users", "greeting"));
	cr_assert_null(config_plugin_value(&cfg, "orders", "db"));
	cr_assert_str_eq(cfg.path, path);
}

Test(config, unknown_key_names_file_line_and_key)
{
	expect_error_at("[host]\nsocket = a.sock\n\n; comment\n"
	    "sokcet_mode = 0600\n", 5, "sokcet_mode");
}

Test(config, first_error_is_reported)
{
	expect_error_at("[host]\nworkers = 2\nbogus_one = 1\nbogus_two = 2\n",
	    3, "bogus_one");
	cr_assert_null(strstr(err, "bogus_two"), "%s", err);
}

Test(config, bad_integer_values)
{
	static const char *const bad[][2] = {
		{ "workers", "-1" },
		{ "workers", "257" },
		{ "workers", "abc" },
		{ "workers", "" },
		{ "workers", "1.5" },
		{ "workers", "0x10" },
		{ "workers", "3 threads" },
		{ "pool_threads", "0" },
		{ "pool_threads", "1025" },
		{ "pool_threads", "many" },
		{ "queue_depth", "0" },
		{ "queue_depth", "1048577" },
		{ "queue_depth", "-4" },
		{ "inline_budget_us", "-1" },
		{ "inline_budget_us", "60000001" },
		{ "max_request_bytes", "63" },
		{ "max_request_bytes", "1073741825" },
		{ "max_request_bytes", "99999999999999999999" },
		{ "max_request_bytes", "1M" },
		{ "max_connections", "0" },
		{ "max_connections", "1000001" },
		{ "default_timeout_ms", "0" },
		{ "default_timeout_ms", "86400001" },
		{ "default_timeout_ms", "soon" },
		{ "shutdown_timeout_ms", "-1" },
		{ "shutdown_timeout_ms", "86400001" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_bad_value(bad[i][0], bad[i][1]);
}

Test(config, integer_bounds_accepted)
{
	expect_good_value("workers", "0");
	expect_good_value("workers", "256");
	cr_assert_eq(cfg.workers, 256);
	expect_good_value("pool_threads", "1");
	expect_good_value("pool_threads", "1024");
	expect_good_value("queue_depth", "1");
	expect_good_value("queue_depth", "1048576");
	expect_good_value("max_request_bytes", "64");
	cr_assert_eq(cfg.max_request_bytes, 64);
	expect_good_value("max_request_bytes", "1073741824");
	cr_assert_eq(cfg.max_request_bytes, 1073741824);
	expect_good_value("max_connections", "1");
	expect_good_value("default_timeout_ms", "1");
	expect_good_value("shutdown_timeout_ms", "86400000");
	cr_assert_eq(cfg.shutdown_timeout_ms, 86400000);
}

Test(config, socket_mode)
{
	expect_bad_value("socket_mode", "999");
	expect_bad_value("socket_mode", "abc");
	expect_bad_value("socket_mode", "0778");
	expect_bad_value("socket_mode", "1777");
	expect_bad_value("socket_mode", "-1");
	expect_bad_value("socket_mode", "");
	expect_good_value("socket_mode", "0600");
	cr_assert_eq(cfg.socket_mode, 0600);
	expect_good_value("socket_mode", "777");
	cr_assert_eq(cfg.socket_mode, 0777);
	expect_good_value("socket_mode", "0");
	cr_assert_eq(cfg.socket_mode, 0);
}

Test(config, log_level_and_format)
{
	expect_bad_value("log_level", "loud");
	expect_bad_value("log_level", "");
	expect_bad_value("log_format", "xml");
	expect_good_value("log_level", "warn");
	cr_assert_eq(cfg.log_level, LOGL_WARN);
	expect_good_value("log_level", "error");
	cr_assert_eq(cfg.log_level, LOGL_ERROR);
	expect_good_value("log_format", "json");
	cr_assert_eq(cfg.log_format, LOGF_JSON);
}

Test(config, strings_must_not_be_empty)
{
	expect_bad_value("socket", "");
	expect_bad_value("plugin_dir", "");
}

Test(config, socket_path_length)
{
	char text[512], long_path[200];

	memset(long_path, 'a', 108);
	long_path[108] = '\0';
	snprintf(text, sizeof(text), "[host]\nsocket = %s\n", long_path);
	expect_error_at(text, 2, "socket");
	long_path[107] = '\0';
	expect_good_value("socket", long_path);
	cr_assert_str_eq(cfg.socket, long_path);
}

Test(config, admin_uids_numbers_and_names)
{
	struct passwd *nobody = getpwnam("nobody");

	cr_assert_not_null(nobody, "this test needs a 'nobody' user");
	expect_good_value("admin_uids", "0, 1000 ,nobody");
	cr_assert_eq(cfg.n_admin_uids, 3);
	cr_assert_eq(cfg.admin_uids[0], 0);
	cr_assert_eq(cfg.admin_uids[1], 1000);
	cr_assert_eq(cfg.admin_uids[2], nobody->pw_uid);
	/* A later line replaces the list. */
	cr_assert_eq(load("[host]\nadmin_uids = 1,2,3\nadmin_uids = 7\n"), 0,
	    "%s", err);
	cr_assert_eq(cfg.n_admin_uids, 1);
	cr_assert_eq(cfg.admin_uids[0], 7);
}

Test(config, admin_uids_unknown_user)
{
	expect_bad_value("admin_uids", "nosuchuserxyz");
	cr_assert_not_null(strstr(err, "nosuchuserxyz"), "%s", err);
	expect_bad_value("admin_uids", "0, nosuchuserxyz");
	/* (uid_t)-1 is not a uid. */
	expect_bad_value("admin_uids", "4294967295");
	expect_bad_value("admin_uids", "-5");
}

Test(config, admin_uids_too_many)
{
	char text[1024];
	int n = snprintf(text, sizeof(text), "[host]\nadmin_uids = 0");

	for (int i = 1; i <= CONFIG_MAX_ADMIN_UIDS; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, ",%d", i);
	snprintf(text + n, sizeof(text) - (size_t)n, "\n");
	expect_error_at(text, 2, "admin_uids");
	/* Exactly the maximum is fine. */
	n = snprintf(text, sizeof(text), "[host]\nadmin_uids = 0");
	for (int i = 1; i < CONFIG_MAX_ADMIN_UIDS; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, ",%d", i);
	snprintf(text + n, sizeof(text) - (size_t)n, "\n");
	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert_eq(cfg.n_admin_uids, CONFIG_MAX_ADMIN_UIDS);
}

Test(config, unknown_section)
{
	expect_error_at("[host]\nworkers = 1\n[hots]\nworkers = 2\n", 4,
	    "hots");
	expect_error_at("[Host]\nworkers = 1\n", 2, "Host");
	expect_error_at("[plugin:]\nkey = v\n", 2, "plugin:");
}

Test(config, key_outside_a_section)
{
	expect_error_at("workers = 1\n[host]\n", 1, "workers");
	cr_assert_not_null(strstr(err, "section"), "%s", err);
}

Test(config, syntax_error)
{
	expect_error_at("[host]\nworkers 4\n", 2, "syntax");
}

Test(config, missing_file)
{
	char missing[300], want[400];

	snprintf(missing, sizeof(missing), "%s/nope.ini", tmpdir);
	snprintf(want, sizeof(want), "%s: No such file or directory", missing);
	cr_assert_eq(config_load(&cfg, missing, err, sizeof(err)), -1);
	cr_assert_str_eq(err, want);
}

/* A directory is not a config file; loading it must not succeed quietly
 * with the defaults. */
Test(config, directory_is_not_a_file)
{
	cr_assert_eq(config_load(&cfg, tmpdir, err, sizeof(err)), -1,
	    "config_load(\"%s\") of a directory succeeded", tmpdir);
	cr_assert_not_null(strstr(err, tmpdir), "%s", err);
}

Test(config, plugin_values_last_duplicate_wins)
{
	cr_assert_eq(load(
	    "[plugin:good]\n"
	    "greeting = one\n"
	    "color = red\n"
	    "greeting = two\n"
	    "[plugin:other]\n"
	    "greeting = other's\n"
	    "[plugin:good]\n"
	    "color = blue\n"), 0, "%s", err);
	cr_assert_str_eq(config_plugin_value(&cfg, "good", "greeting"), "two");
	cr_assert_str_eq(config_plugin_value(&cfg, "good", "color"), "blue");
	cr_assert_str_eq(config_plugin_value(&cfg, "other", "greeting"),
	    "other's");
	cr_assert_null(config_plugin_value(&cfg, "good", "missing"));
	cr_assert_null(config_plugin_value(&cfg, "nobody", "greeting"));
	/* Keys are stored once, whatever the number of lines. */
	cr_assert_eq(cfg.n_plugin_kvs, 3);
}

Test(config, plugin_keys_are_free_form)
{
	/* Keys unknown to [host] are fine in a plugin section. */
	cr_assert_eq(load("[plugin:users]\nworkers = not a number\n"
	    "anything_goes = \n"), 0, "%s", err);
	cr_assert_str_eq(config_plugin_value(&cfg, "users", "workers"),
	    "not a number");
	cr_assert_str_eq(config_plugin_value(&cfg, "users", "anything_goes"),
	    "");
}

Test(config, later_host_line_wins)
{
	cr_assert_eq(load("[host]\nsocket = a.sock\nsocket = b.sock\n"), 0,
	    "%s", err);
	cr_assert_str_eq(cfg.socket, "b.sock");
}

Test(config, set_host_without_a_file)
{
	char reason[256];

	cr_assert_eq(config_set_host(&cfg, "workers", "5", reason,
	    sizeof(reason)), 0);
	cr_assert_eq(cfg.workers, 5);
	cr_assert_eq(config_set_host(&cfg, "workers", "x", reason,
	    sizeof(reason)), -1);
	cr_assert_not_null(strstr(reason, "workers"), "%s", reason);
	/* No file:line here. */
	cr_assert_null(strstr(reason, ".ini"), "%s", reason);
	cr_assert_eq(config_set_host(&cfg, "nope", "1", reason,
	    sizeof(reason)), -1);
	cr_assert_not_null(strstr(reason, "nope"), "%s", reason);
}

Test(config, set_string_replaces)
{
	char *s = NULL;

	cr_assert_eq(config_set_string(&s, "first"), 0);
	cr_assert_str_eq(s, "first");
	cr_assert_eq(config_set_string(&s, "second"), 0);
	cr_assert_str_eq(s, "second");
	free(s);
}

Test(config, watcher_and_connection_keys)
{
	cr_assert_eq(cfg.watch, 1);
	cr_assert_eq(cfg.reload_debounce_ms, 20);
	cr_assert_eq(cfg.max_pending_bytes, 1048576);
	cr_assert_eq(cfg.idle_timeout_ms, 300000);
	cr_assert_eq(cfg.allow_insecure_plugins, 0);
	cr_assert_eq(load("[host]\nwatch = false\nreload_debounce_ms = 0\n"
	    "max_pending_bytes = 4096\nidle_timeout_ms = 0\n"
	    "allow_insecure_plugins = yes\n"), 0, "%s", err);
	cr_assert_eq(cfg.watch, 0);
	cr_assert_eq(cfg.reload_debounce_ms, 0);
	cr_assert_eq(cfg.max_pending_bytes, 4096);
	cr_assert_eq(cfg.idle_timeout_ms, 0);
	cr_assert_eq(cfg.allow_insecure_plugins, 1);
}

Test(config, watcher_and_connection_bad_values)
{
	expect_error_at("[host]\nwatch = maybe\n", 2, "watch");
	expect_error_at("[host]\nallow_insecure_plugins = 2\n", 2,
	    "allow_insecure_plugins");
	expect_error_at("[host]\nmax_pending_bytes = 100\n", 2,
	    "max_pending_bytes");
	expect_error_at("[host]\nidle_timeout_ms = -1\n", 2,
	    "idle_timeout_ms");
	expect_error_at("[host]\nreload_debounce_ms = 60001\n", 2,
	    "reload_debounce_ms");
}

/* ---------------------------------------------------------------- [nats]
 * config_nats.c through config_load(): no [nats] means NATS off, the
 * defaults, every key's checks, the cross-key checks ([jetstream] needs
 * [nats]; ack_wait above the command timeout) and "FILE:LINE: reason". */

TestSuite(config_nats, .init = setup, .fini = teardown);

Test(config_nats, no_section_no_nats)
{
	cr_assert_eq(load("[host]\nworkers = 1\n"), 0, "%s", err);
	cr_assert_eq(cfg.nats.enabled, 0);
	cr_assert_eq(cfg.nats.js_enabled, 0);
}

Test(config_nats, defaults)
{
	cr_assert_eq(load("[nats]\nurl = 127.0.0.1:4222\n"), 0, "%s", err);
	cr_assert_eq(cfg.nats.enabled, 1);
	cr_assert_str_eq(cfg.nats.url, "127.0.0.1:4222");
	cr_assert_str_eq(cfg.nats.subject_prefix, "cmdhost.cmd.");
	cr_assert_str_eq(cfg.nats.queue_group, "cmdhost");
	cr_assert_str_eq(cfg.nats.service_name, "cmdhost");
	cr_assert_eq(cfg.nats.max_reconnect, -1);
	cr_assert_eq(cfg.nats.send_asap, 1);
	cr_assert_null(cfg.nats.credentials);
	cr_assert_eq(cfg.nats.js_enabled, 0);
}

Test(config_nats, jetstream_keys_and_default_ack_wait)
{
	cr_assert_eq(load("[host]\ndefault_timeout_ms = 2000\n"
	    "[nats]\nurl = a:1, b:2\nqueue_group = workers\n"
	    "credentials = /etc/x.creds\n"
	    "[jetstream]\nstream = EV\nsubjects = ev.>, more.>\n"
	    "max_deliver = 3\nnak_delay_ms = 0\n"), 0, "%s", err);
	cr_assert_str_eq(cfg.nats.url, "a:1, b:2");
	cr_assert_str_eq(cfg.nats.queue_group, "workers");
	cr_assert_str_eq(cfg.nats.credentials, "/etc/x.creds");
	cr_assert_eq(cfg.nats.js_enabled, 1);
	cr_assert_str_eq(cfg.nats.js_stream, "EV");
	cr_assert_str_eq(cfg.nats.js_subjects, "ev.>, more.>");
	cr_assert_eq(cfg.nats.js_max_deliver, 3);
	cr_assert_eq(cfg.nats.js_nak_delay_ms, 0);
	cr_assert_eq(cfg.nats.js_ack_wait_ms, 7000);
}

Test(config_nats, unknown_key_names_file_and_line)
{
	cr_assert_eq(load("[nats]\nurl = x\nbogus = 1\n"), -1);
	cr_assert(strstr(err, "cmdhost.ini:3: unknown key 'bogus' in [nats]")
	    != NULL, "%s", err);
	cr_assert_eq(load("[nats]\n[jetstream]\nmax_deliver = 0\n"), -1);
	cr_assert(strstr(err, ":3: max_deliver: '0' is not an integer in "
	    "1..1000") != NULL, "%s", err);
}

Test(config_nats, bad_names)
{
	cr_assert_eq(load("[nats]\nqueue_group = a b\n"), -1);
	cr_assert(strstr(err, "not a valid NATS name") != NULL, "%s", err);
	cr_assert_eq(load("[nats]\n[jetstream]\nstream = A.B\n"), -1);
	cr_assert(strstr(err, "not a valid NATS name") != NULL, "%s", err);
	cr_assert_eq(load("[nats]\nsend_asap = maybe\n"), -1);
	cr_assert(strstr(err, "send_asap") != NULL, "%s", err);
	cr_assert_eq(load("[nats]\nurl =\n"), -1);
	cr_assert(strstr(err, "url: must not be empty") != NULL, "%s", err);
}

Test(config_nats, idempotency_bucket)
{
	cr_assert_eq(load("[host]\nidempotency_ttl_s = 600\n[nats]\nurl = x\n"
	    "[jetstream]\nidempotency_bucket = CMDHOST_IDEM-2\n"), 0, "%s",
	    err);
	cr_assert_eq(cfg.nats.js_enabled, 1);
	cr_assert_str_eq(cfg.nats.js_idem_bucket, "CMDHOST_IDEM-2");
	cr_assert_eq(cfg.nats.js_idem_ttl_s, 600);
	/* Off by default, and when empty. */
	cr_assert_eq(load("[nats]\nurl = x\n[jetstream]\nstream = EV\n"), 0,
	    "%s", err);
	cr_assert_null(cfg.nats.js_idem_bucket);
	cr_assert_eq(cfg.nats.js_idem_ttl_s, 3600);
	cr_assert_eq(load("[nats]\nurl = x\n[jetstream]\n"
	    "idempotency_bucket =\n"), 0, "%s", err);
	cr_assert_str_eq(cfg.nats.js_idem_bucket, "");
	cr_assert_eq(load("[nats]\nurl = x\n[jetstream]\n"
	    "idempotency_bucket = a.b\n"), -1);
	cr_assert(strstr(err, ":4: idempotency_bucket: 'a.b' is not a bucket "
	    "name") != NULL, "%s", err);
}

Test(config_nats, jetstream_needs_nats)
{
	cr_assert_eq(load("[jetstream]\nstream = EV\n"), -1);
	cr_assert(strstr(err, "[jetstream] needs a [nats] section") != NULL,
	    "%s", err);
}

Test(config_nats, ack_wait_must_exceed_the_command_timeout)
{
	cr_assert_eq(load("[host]\ndefault_timeout_ms = 5000\n[nats]\nurl = x\n"
	    "[jetstream]\nack_wait_ms = 5000\n"), -1);
	cr_assert(strstr(err, "ack_wait_ms (5000) must be above") != NULL,
	    "%s", err);
}

/* ------------------------------------------------------------ the table
 * config_keys(): the rows themselves, config_set() through them, and the
 * man page naming each of them. */

TestSuite(config_keys, .init = setup, .fini = teardown);

/* Non-zero if the table has a row for [section] name. */
static int
is_key(const char *section, const char *name)
{
	size_t n;
	const struct config_key *k = config_keys(&n);

	for (size_t i = 0; i < n; i++)
		if (strcmp(k[i].section, section) == 0 &&
		    strcmp(k[i].name, name) == 0)
			return 1;
	return 0;
}

Test(config_keys, rows_are_whole_and_unique)
{
	size_t n;
	const struct config_key *k = config_keys(&n);

	cr_assert_gt(n, 0);
	for (size_t i = 0; i < n; i++) {
		cr_assert(strcmp(k[i].section, "host") == 0 ||
		    strcmp(k[i].section, "nats") == 0 ||
		    strcmp(k[i].section, "jetstream") == 0 ||
		    strcmp(k[i].section, "events") == 0 ||
		    strcmp(k[i].section, "route:SUBJECT") == 0, "[%s] %s",
		    k[i].section, k[i].name);
		cr_assert_neq(k[i].name[0], '\0');
		cr_assert_not_null(k[i].doc, "[%s] %s has no doc line",
		    k[i].section, k[i].name);
		cr_assert(k[i].doc[0] != '\0' && strchr(k[i].doc, '\n') ==
		    NULL, "[%s] %s: the doc is not one line", k[i].section,
		    k[i].name);
		/* A string's max of 0 is no bound on its length. */
		cr_assert(k[i].min <= k[i].max || (k[i].type == CONFIG_STRING
		    && k[i].max == 0), "[%s] %s: range %lld..%lld",
		    k[i].section, k[i].name, k[i].min, k[i].max);
		cr_assert(k[i].type != CONFIG_ENUM || (k[i].parse != NULL &&
		    k[i].words != NULL), "[%s] %s", k[i].section, k[i].name);
		for (size_t j = 0; j < i; j++)
			cr_assert(strcmp(k[i].section, k[j].section) != 0 ||
			    strcmp(k[i].name, k[j].name) != 0,
			    "[%s] %s has two rows", k[i].section, k[i].name);
	}
}

/* Each row's default passes the row's own checks (ack_wait_ms's 0 stands
 * for "default_timeout_ms + 5000", outside its range on purpose). */
Test(config_keys, defaults_pass_their_checks)
{
	size_t n;
	const struct config_key *k = config_keys(&n);
	char text[64], reason[256];

	for (size_t i = 0; i < n; i++) {
		const char *v = text;

		switch (k[i].type) {
		case CONFIG_STRING:
			if (k[i].def_str == NULL)
				continue;
			v = k[i].def_str;
			break;
		case CONFIG_INT:
		case CONFIG_SIZE:
			if (strcmp(k[i].name, "ack_wait_ms") == 0)
				continue;
			snprintf(text, sizeof(text), "%lld", k[i].def);
			break;
		case CONFIG_BOOL:
			v = k[i].def ? "true" : "false";
			break;
		case CONFIG_MODE:
			snprintf(text, sizeof(text), "%llo", k[i].def);
			break;
		case CONFIG_ENUM:
			cr_assert_geq(k[i].def, 0);
			continue;
		case CONFIG_UIDS:
			v = "";
			break;
		}
		cr_assert_eq(config_set(&cfg, k[i].section, k[i].name, v,
		    reason, sizeof(reason)), 0, "[%s] %s = %s: %s",
		    k[i].section, k[i].name, v, reason);
	}
}

Test(config_keys, set_by_section)
{
	char reason[256];

	cr_assert_eq(config_set(&cfg, "nats", "url", "nats://x:1", reason,
	    sizeof(reason)), 0, "%s", reason);
	cr_assert_str_eq(cfg.nats.url, "nats://x:1");
	cr_assert_eq(cfg.nats.enabled, 1);
	cr_assert_eq(cfg.nats.js_enabled, 0);
	cr_assert_eq(config_set(&cfg, "jetstream", "max_inflight", "9",
	    reason, sizeof(reason)), 0, "%s", reason);
	cr_assert_eq(cfg.nats.js_max_inflight, 9);
	cr_assert_eq(cfg.nats.js_enabled, 1);
	/* A key of another section is unknown here. */
	cr_assert_eq(config_set(&cfg, "host", "url", "x", reason,
	    sizeof(reason)), -1);
	cr_assert_str_eq(reason, "unknown key 'url' in [host]");
	cr_assert_eq(config_set(&cfg, "plugin:good", "k", "v", reason,
	    sizeof(reason)), -1);
	cr_assert_str_eq(reason, "unknown section [plugin:good] (expected "
	    "[host], [nats], [jetstream], [events], [route:SUBJECT] or "
	    "[plugin:NAME])");
}

#define MAN_PAGE CMDHOST_SOURCE_DIR "/man/cmdhost.ini.5"
#define MAX_MAN_KEYS 256

struct man_key {
	char section[64];
	char name[64];
	int line;
};

/* The keys man/cmdhost.ini.5 names, into keys[] (at most MAX_MAN_KEYS):
 * the ".B key" line that follows a ".TP" under ".SS [section]", but
 * [plugin:NAME], whose keys are free-form.  Any other line after such a
 * ".TP" fails the test: the key would go unchecked.  Returns the count. */
static size_t
read_man_keys(struct man_key *keys)
{
	FILE *f = fopen(MAN_PAGE, "r");
	char line[512], section[64] = "";
	int lineno = 0, after_tp = 0;
	size_t n = 0, len;

	cr_assert_not_null(f, "%s: %s", MAN_PAGE, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		len = strlen(line);
		if (strncmp(line, ".SH", 3) == 0 || strncmp(line, ".SS", 3) == 0) {
			section[0] = '\0';
			if (strncmp(line, ".SS [", 5) == 0 && line[len - 1] == ']'
			    && strncmp(line + 5, "plugin:", 7) != 0 &&
			    len - 6 < sizeof(section))
				snprintf(section, sizeof(section), "%.*s",
				    (int)(len - 6), line + 5);
			after_tp = 0;
			continue;
		}
		if (after_tp) {
			after_tp = 0;
			cr_assert(strncmp(line, ".B ", 3) == 0 &&
			    strchr(line + 3, ' ') == NULL, "%s:%d: a .TP in "
			    "[%s] is not followed by \".B key\": %s", MAN_PAGE,
			    lineno, section, line);
			cr_assert_lt(n, MAX_MAN_KEYS);
			cr_assert_lt(strlen(line + 3), sizeof(keys[n].name),
			    "%s:%d: %s", MAN_PAGE, lineno, line);
			memcpy(keys[n].section, section, sizeof(section));
			memcpy(keys[n].name, line + 3, strlen(line + 3) + 1);
			keys[n].line = lineno;
			n++;
			continue;
		}
		if (section[0] != '\0' && strcmp(line, ".TP") == 0)
			after_tp = 1;
	}
	fclose(f);
	return n;
}

/* The man page names every key of the table once, in its section, and
 * no key that the table has not. */
Test(config_keys, man_page_names_every_key)
{
	static struct man_key man[MAX_MAN_KEYS];
	size_t n_man = read_man_keys(man), n;
	const struct config_key *k = config_keys(&n);

	for (size_t i = 0; i < n_man; i++)
		cr_expect(is_key(man[i].section, man[i].name), "%s:%d: [%s] %s "
		    "is not a key of the table in config.c", MAN_PAGE,
		    man[i].line, man[i].section, man[i].name);
	for (size_t i = 0; i < n; i++) {
		int times = 0;

		for (size_t j = 0; j < n_man; j++)
			if (strcmp(man[j].section, k[i].section) == 0 &&
			    strcmp(man[j].name, k[i].name) == 0)
				times++;
		cr_expect_eq(times, 1, "%s names [%s] %s %d times, want once "
		    "(\".TP\", then \".B %s\", under \".SS [%s]\")", MAN_PAGE,
		    k[i].section, k[i].name, times, k[i].name, k[i].section);
	}
}

/* "[plugin:good]\nvalue = " and x's up to a line of `n` bytes (without
 * its '\n'), then "\nafter = 1\n": a new string (free it). */
static char *
long_value_ini(size_t n)
{
	static const char head[] = "[plugin:good]\n", key[] = "value = ";
	char *s = malloc(sizeof(head) + n + 16);

	cr_assert_not_null(s);
	strcpy(s, head);
	strcat(s, key);
	memset(s + strlen(s), 'x', n - strlen(key));
	s[sizeof(head) - 1 + n] = '\0';
	strcat(s, "\nafter = 1\n");
	return s;
}

/* Debian's inih reads lines of at most 198 bytes (INI_MAX_LINE 200, less
 * the '\n' and the NUL) and cut longer ones in two without a word: a line
 * at the limit is read whole, one byte past it is an error with its
 * line number. */
Test(config, long_line_at_the_limit_is_read_whole)
{
	char *s = long_value_ini(198);
	const char *v;

	cr_assert_eq(load(s), 0, "%s", err);
	v = config_plugin_value(&cfg, "good", "value");
	cr_assert_not_null(v);
	cr_assert_eq(strlen(v), 198 - strlen("value = "), "%zu", strlen(v));
	cr_assert_str_eq(config_plugin_value(&cfg, "good", "after"), "1");
	free(s);
}

Test(config, long_line_past_the_limit_is_an_error)
{
	char want[300];
	char *s = long_value_ini(199);

	cr_assert_eq(load(s), -1, "a 199-byte line was accepted");
	snprintf(want, sizeof(want), "%s:2: line longer than 198 bytes", path);
	cr_assert_eq(strncmp(err, want, strlen(want)), 0, "%s", err);
	free(s);
	/* The case: a 250-byte value. */
	s = long_value_ini(250 + strlen("value = "));
	cr_assert_eq(load(s), -1, "a 250-byte value was accepted");
	cr_assert_eq(strncmp(err, want, strlen(want)), 0, "%s", err);
	free(s);
	/* The last line, without a '\n', has the same limit. */
	cr_assert_eq(load("[host]\n; 0123456789012345678901234567890123456789"
	    "012345678901234567890123456789012345678901234567890123456789"
	    "012345678901234567890123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789"), -1);
	cr_assert_not_null(strstr(err, ":2: line longer than"), "%s", err);
}

Test(config, nul_byte_is_an_error)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite("[host]\nworkers = 2\0x\n", 1, 21, f), 21);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(config_load(&cfg, path, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, ":2: a NUL byte"), "%s", err);
}

/* A FIFO (with no writer) would block open() and read() for ever: it is
 * refused at once, as anything that is not a regular file. */
Test(config, fifo_is_refused_at_once, .timeout = 10)
{
	cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo: %s", strerror(errno));
	cr_assert_eq(config_load(&cfg, path, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
	cr_assert_eq(config_load(&cfg, "/dev/null", err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
}
