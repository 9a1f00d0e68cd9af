/*
 * test_config_nats.c - unit tests of config_nats.c through config_load():
 * no [nats] means NATS off, the defaults, every key's checks, the
 * cross-key checks ([jetstream] needs [nats]; ack_wait above the command
 * timeout) and "FILE:LINE: reason" errors.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "fixture.h"

static char tmpdir[64];
static char path[256];
static struct config cfg;
static char err[1024];

static void
setup(void)
{
	fixture_mkdtemp(tmpdir, sizeof(tmpdir), "config-nats");
	snprintf(path, sizeof(path), "%s/cmdhost.ini", tmpdir);
	cr_assert_eq(config_init(&cfg), 0);
	err[0] = '\0';
}

static void
teardown(void)
{
	config_fini(&cfg);
	fixture_rmtree(tmpdir);
}

TestSuite(config_nats, .init = setup, .fini = teardown);

/* Write text as the ini file and load it into a fresh cfg. */
static int
load(const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert(fputs(text, f) >= 0);
	cr_assert_eq(fclose(f), 0);
	config_fini(&cfg);
	cr_assert_eq(config_init(&cfg), 0);
	return config_load(&cfg, path, err, sizeof(err));
}

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
