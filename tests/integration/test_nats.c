/*
 * test_nats.c - request-reply over NATS with real daemons and a real
 * nats-server: load balancing across daemons in a queue group, commands
 * only one daemon has, no responders, a daemon killed mid-run, the NATS
 * server restarted under a running daemon, hot reload, headers and
 * timeouts, and discovery checked with nats.js's services client.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "nats_harness.h"

static struct natsd *srv;
static struct daemon *d1, *d2;
static natsConnection *nc;

static void
teardown(void)
{
	if (nc != NULL)
		natsConnection_Destroy(nc);
	nc = NULL;
	daemon_free(d1);
	daemon_free(d2);
	d1 = d2 = NULL;
	natsd_free(srv);
	srv = NULL;
}

static void
setup(void)
{
	srv = natsd_start();
	cr_assert(srv != NULL, "nats-server did not start");
}

/* Start a daemon with `plugins` on srv; wait until it subscribed to
 * `ready_cmd` over NATS. */
static struct daemon *
start_on_nats(const char *const *plugins, const char *extra,
    const char *ready_cmd)
{
	return nats_daemon_start(srv, plugins, NULL, extra, ready_cmd);
}

static void
connect_client(void)
{
	nc = nclient_connect(srv);
	cr_assert(nc != NULL, "cannot connect a NATS client");
}

TestSuite(nats, .init = setup, .fini = teardown, .timeout = 60);

Test(nats, two_daemons_share_requests)
{
	const char *const p1[] = { "good.so", NULL };
	const char *const p2[] = { "good.so", "plugins/echo.so", NULL };
	natsStatus st;
	json_object *r;
	int64_t t0;
	long a, b;
	int ok = 0;

	d1 = start_on_nats(p1, NULL, "test.echo");
	d2 = start_on_nats(p2, NULL, "echo");
	connect_client();
	for (int i = 0; i < 2000; i++) {
		char payload[64];

		snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
		r = nclient_call(nc, "test.echo", payload, NULL, 0, 5000, &st);
		if (r != NULL && reply_status(r) == 200 &&
		    json_object_get_int(json_path(r, "body/n")) == i)
			ok++;
		json_object_put(r);
	}
	cr_assert_eq(ok, 2000, "only %d of 2000 answered", ok);
	a = daemon_calls_of(d1, "test.echo");
	b = daemon_calls_of(d2, "test.echo");
	cr_assert_eq(a + b, 2000, "calls %ld + %ld", a, b);
	cr_assert(a >= 200 && b >= 200, "unfair share: %ld / %ld", a, b);

	/* A command only d2 has is served by d2. */
	for (int i = 0; i < 50; i++) {
		r = nclient_call(nc, "echo", "{\"x\":1}", NULL, 0, 5000, &st);
		cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
		json_object_put(r);
	}
	cr_assert_eq(daemon_calls_of(d2, "echo"), 50);

	/* A command nobody has: "no responders", fast. */
	t0 = now_ms();
	r = nclient_call(nc, "no.such.command", "{}", NULL, 0, 5000, &st);
	cr_assert_null(r);
	cr_assert_eq(st, NATS_NO_RESPONDERS, "status %s",
	    natsStatus_GetText(st));
	cr_assert_lt(now_ms() - t0, 1000);
}

Test(nats, headers_statuses_and_timeout)
{
	const char *const p[] = { "good.so", NULL };
	natsStatus st;
	json_object *r;
	int64_t t0;

	d1 = start_on_nats(p, NULL, "test.sleep");
	connect_client();
	r = nclient_call(nc, "test.echo", "{\"a\":[1,2]}", "\"req-7\"", 0,
	    5000, &st);
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_assert_str_eq(json_object_get_string(reply_id(r)), "req-7");
	json_object_put(r);
	/* Empty data is the payload {}. */
	r = nclient_call(nc, "test.echo", NULL, "42", 0, 5000, &st);
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	cr_assert_eq(json_object_get_int(reply_id(r)), 42);
	json_object_put(r);
	r = nclient_call(nc, "test.echo", "{not json", NULL, 0, 5000, &st);
	cr_assert_eq(reply_status(r), 400, "%s", reply_text(r));
	cr_assert_str_eq(reply_error_code(r), "bad_request");
	cr_assert(strstr(reply_error_message(r), "payload") != NULL, "%s",
	    reply_text(r));
	json_object_put(r);
	r = nclient_call(nc, "test.echo", "{}", "not-json", 0, 5000, &st);
	cr_assert_eq(reply_status(r), 400, "%s", reply_text(r));
	cr_assert(strstr(reply_error_message(r), "Cmdhost-Id") != NULL, "%s",
	    reply_text(r));
	json_object_put(r);
	r = nclient_call(nc, "test.fields", "{\"s\":1}", NULL, 0, 5000, &st);
	cr_assert_eq(reply_status(r), 400, "%s", reply_text(r));
	cr_assert_str_eq(reply_error_code(r), "invalid_payload");
	json_object_put(r);
	r = nclient_call(nc, "test.fail", "{}", NULL, 0, 5000, &st);
	cr_assert_eq(reply_status(r), 409, "%s", reply_text(r));
	json_object_put(r);
	/* The header timeout: 504 well before the command ends. */
	t0 = now_ms();
	r = nclient_call(nc, "test.sleep", "{\"ms\":1500}", "\"slow\"", 150,
	    5000, &st);
	cr_assert_eq(reply_status(r), 504, "%s", reply_text(r));
	cr_assert_str_eq(reply_error_code(r), "timeout");
	cr_assert_str_eq(json_object_get_string(reply_id(r)), "slow");
	cr_assert_lt(now_ms() - t0, 1200);
	json_object_put(r);
	cr_assert_eq(daemon_stop(d1), 0, "daemon did not stop cleanly");
}

/* A command without CMDHOST_BLOCKING that overruns the request's timeout:
 * NATS calls never run on a libnats delivery thread, so the 504 comes in
 * time, exactly once, the daemon lives on, and a fast command is answered
 * while the slow one still runs. */
Test(nats, slow_inline_command_times_out_once)
{
	const char *const p[] = { "good.so", "slow_inline.so", NULL };
	natsStatus st;
	json_object *r;
	int64_t t0;

	d1 = start_on_nats(p, NULL, "slow.inline");
	connect_client();
	t0 = now_ms();
	r = nclient_call(nc, "slow.inline", "{\"ms\":700}", "\"late\"", 100,
	    5000, &st);
	cr_assert_eq(reply_status(r), 504, "%s", reply_text(r));
	cr_assert_lt(now_ms() - t0, 650, "the 504 waited for the command");
	json_object_put(r);
	r = nclient_call(nc, "test.echo", "{}", NULL, 0, 5000, &st);
	cr_assert_eq(reply_status(r), 200, "a fast call waited: %s",
	    reply_text(r));
	json_object_put(r);
	/* After the slow call ended: still alive, one reply line logged. */
	cr_assert(daemon_log_wait(d1, "\"command\":\"slow.inline\"", 5000));
	r = client_call_once(daemon_socket_path(d1),
	    "{\"command\":\"host.stats\"}");
	cr_assert_eq(reply_status(r), 200, "the daemon died: %s",
	    reply_text(r));
	json_object_put(r);
	cr_assert_eq(daemon_calls_of(d1, "slow.inline"), 1);
	cr_assert_eq(daemon_stop(d1), 0, "daemon did not stop cleanly");
}

Test(nats, killed_daemon_loses_only_its_in_flight)
{
	const char *const p[] = { "good.so", NULL };
	natsStatus st;
	int ok = 0, timeouts = 0, other = 0;

	d1 = start_on_nats(p, NULL, "test.echo");
	d2 = start_on_nats(p, NULL, "test.echo");
	connect_client();
	for (int i = 0; i < 1500; i++) {
		json_object *r;

		if (i == 300)
			daemon_signal(d1, SIGKILL);
		r = nclient_call(nc, "test.echo", "{}", NULL, 0, 500, &st);
		if (r != NULL && reply_status(r) == 200)
			ok++;
		else if (st == NATS_TIMEOUT)
			timeouts++;
		else
			other++;
		json_object_put(r);
	}
	/* One request at a time: at most the one in flight is lost. */
	cr_assert_leq(timeouts, 1, "%d timeouts", timeouts);
	cr_assert_eq(other, 0, "%d other failures", other);
	cr_assert_geq(ok, 1499);
	cr_assert_geq(daemon_calls_of(d2, "test.echo"), 1200);
}

Test(nats, server_restart_socket_keeps_serving)
{
	const char *const p[] = { "good.so", NULL };
	natsStatus st;
	json_object *r;
	int64_t deadline;
	int back = 0;

	d1 = start_on_nats(p, NULL, "test.echo");
	connect_client();
	r = nclient_call(nc, "test.echo", "{}", NULL, 0, 5000, &st);
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(natsd_stop(srv), 0);
	cr_assert(daemon_log_wait(d1, "nats: disconnected", 5000));
	/* The socket serves while NATS is down. */
	for (int i = 0; i < 20; i++) {
		r = client_call_once(daemon_socket_path(d1),
		    "{\"command\":\"test.echo\",\"payload\":{}}");
		cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
		json_object_put(r);
	}
	cr_assert_eq(natsd_restart(srv), 0, "nats-server did not restart");
	cr_assert(daemon_log_wait(d1, "nats: reconnected", 10000));
	deadline = now_ms() + 10000;
	while (!back && now_ms() < deadline) {
		r = nclient_call(nc, "test.echo", "{}", NULL, 0, 500, &st);
		back = reply_status(r) == 200;
		json_object_put(r);
		if (!back)
			nap_ms(20);
	}
	cr_assert(back, "NATS requests did not come back after the restart");
	r = client_call_once(daemon_socket_path(d1),
	    "{\"command\":\"test.echo\",\"payload\":{}}");
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(daemon_stop(d1), 0);
}

Test(nats, hot_reload_subscribes_and_unsubscribes)
{
	const char *const p[] = { "plugins/echo.so", NULL };
	natsStatus st;
	json_object *r;
	int64_t t0, took = -1;

	d1 = start_on_nats(p, NULL, "echo");
	connect_client();
	r = nclient_call(nc, "test.echo", "{}", NULL, 0, 1000, &st);
	cr_assert_eq(st, NATS_NO_RESPONDERS);
	t0 = now_ms();
	cr_assert_eq(daemon_install_plugin(d1, "good.so", NULL), 0);
	while (now_ms() - t0 < 3000) {
		r = nclient_call(nc, "test.echo", "{}", NULL, 0, 500, &st);
		if (reply_status(r) == 200) {
			took = now_ms() - t0;
			json_object_put(r);
			break;
		}
		json_object_put(r);
		nap_ms(10);
	}
	cr_assert(took >= 0 && took < 1000, "reachable after %lld ms",
	    (long long)took);
	cr_assert_eq(daemon_remove_plugin(d1, "good.so"), 0);
	t0 = now_ms();
	for (;;) {
		r = nclient_call(nc, "test.echo", "{}", NULL, 0, 500, &st);
		json_object_put(r);
		if (st == NATS_NO_RESPONDERS)
			break;
		cr_assert_lt(now_ms() - t0, 3000, "still subscribed");
		nap_ms(10);
	}
	cr_assert(daemon_log_contains(d1, "nats: unsubscribed "
	    "cmdhost.cmd.test.echo"));
	r = nclient_call(nc, "echo", "{}", NULL, 0, 1000, &st);
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(daemon_stop(d1), 0);
}

/* The endpoint names of one info/stats entry, as a ","-joined string. */
static void
endpoint_names(json_object *svc, char *out, size_t size)
{
	json_object *eps = json_path(svc, "endpoints");
	size_t n = eps ? json_object_array_length(eps) : 0;

	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *name = json_path_str(
		    json_object_array_get_idx(eps, i), "name");

		snprintf(out + strlen(out), size - strlen(out), ",%s",
		    name ? name : "?");
	}
	snprintf(out + strlen(out), size - strlen(out), ",");
}

Test(nats, discovery_with_nats_js_services_client)
{
	const char *const p1[] = { "good.so", NULL };
	const char *const p2[] = { "plugins/echo.so", NULL };
	natsStatus st;
	json_object *out, *r;
	int saw_echo = 0, saw_good = 0;

	d1 = start_on_nats(p1, NULL, "test.echo");
	d2 = start_on_nats(p2, NULL, "echo");
	connect_client();
	r = nclient_call(nc, "echo", "{}", NULL, 0, 5000, &st);
	json_object_put(r);
	out = node_run("discover.js", natsd_url(srv), "cmdhost", 20000);
	cr_assert(out != NULL, "node discover.js failed");
	cr_assert_eq(json_object_array_length(json_path(out, "ping")), 2,
	    "%s", reply_text(out));
	cr_assert_eq(json_object_array_length(json_path(out, "info")), 2);
	cr_assert_eq(json_object_array_length(json_path(out, "stats")), 2);
	cr_assert_str_neq(json_path_str(json_object_array_get_idx(
	    json_path(out, "ping"), 0), "id"), json_path_str(
	    json_object_array_get_idx(json_path(out, "ping"), 1), "id"));
	for (int i = 0; i < 2; i++) {
		json_object *info = json_object_array_get_idx(
		    json_path(out, "info"), (size_t)i);
		char names[2048];

		cr_assert_str_eq(json_path_str(info, "name"), "cmdhost");
		cr_assert_str_eq(json_path_str(info, "type"),
		    "io.nats.micro.v1.info_response");
		endpoint_names(info, names, sizeof(names));
		if (strstr(names, ",echo,") != NULL)
			saw_echo = 1;
		if (strstr(names, ",test.echo,") != NULL &&
		    strstr(names, ",test.sleep,") != NULL)
			saw_good = 1;
	}
	cr_assert(saw_echo && saw_good, "%s", reply_text(out));
	/* Stats count the request above on the daemon that has echo. */
	for (int i = 0; i < 2; i++) {
		json_object *s = json_object_array_get_idx(
		    json_path(out, "stats"), (size_t)i);
		json_object *eps = json_path(s, "endpoints");

		cr_assert_str_eq(json_path_str(s, "type"),
		    "io.nats.micro.v1.stats_response");
		for (size_t j = 0; j < json_object_array_length(eps); j++) {
			json_object *e = json_object_array_get_idx(eps, j);

			if (strcmp(json_path_str(e, "name"), "echo") == 0)
				cr_assert_eq(json_object_get_int(json_path(e,
				    "num_requests")), 1, "%s", reply_text(s));
			cr_assert_str_eq(json_path_str(e, "queue_group"),
			    "cmdhost");
		}
	}
	json_object_put(out);
}

/* Run build/cmdhost --nats URL args...; returns the exit status, stdout
 * and stderr in *out / *err (free them). */
static int
cli(char **out, char **err, const char *a1, const char *a2, const char *a3)
{
	char *argv[] = { (char *)CMDHOST_BUILD_DIR "/cmdhost",
	    (char *)"--nats", (char *)natsd_url(srv), (char *)a1, (char *)a2,
	    (char *)a3, NULL };
	int status = -1;

	cr_assert_eq(run_command(argv, NULL, 20000, &status, out, err), 0);
	return status;
}

Test(nats, cli_invoke_list_publish)
{
	const char *const p[] = { "good.so", "record.so", NULL };
	char rec[128], extra[512], *out = NULL, *err = NULL;
	int64_t deadline;
	int counts[4], st;

	snprintf(rec, sizeof(rec), "/tmp/cmdhost-cli-record.%d",
	    (int)getpid());
	unlink(rec);
	snprintf(extra, sizeof(extra), "[jetstream]\nack_wait_ms = 40000\n"
	    "[plugin:record]\nfile = %s\n", rec);
	d1 = start_on_nats(p, extra, "record.event");
	cr_assert(daemon_log_wait(d1, "nats: consuming stream", 10000));

	st = cli(&out, &err, "invoke", "test.echo", "{\"k\":\"v\"}");
	cr_assert_eq(st, 0, "%s", err);
	cr_assert_str_eq(out, "{\"k\":\"v\"}\n");
	free(out);
	free(err);
	st = cli(&out, &err, "invoke", "no.such", "{}");
	cr_assert_eq(st, 1);
	cr_assert(strstr(err, "404 unknown_command") != NULL, "%s", err);
	free(out);
	free(err);
	st = cli(&out, &err, "list", NULL, NULL);
	cr_assert_eq(st, 0, "%s", err);
	cr_assert(strstr(out, "1 daemon on") != NULL, "%s", out);
	cr_assert(strstr(out, "cmdhost.cmd.test.echo") != NULL, "%s", out);
	free(out);
	free(err);
	st = cli(&out, &err, "publish", "record.event", "{\"id\":2}");
	cr_assert_eq(st, 0, "%s", err);
	cr_assert(strstr(out, "\"seq\":1") != NULL, "%s", out);
	free(out);
	free(err);
	deadline = now_ms() + 5000;
	while (count_ids(rec, counts, 4) < 1 && now_ms() < deadline)
		nap_ms(10);
	cr_assert_eq(counts[2], 1, "the event was not consumed");
	unlink(rec);
	cr_assert_eq(daemon_stop(d1), 0);
}

Test(nats, server_down_at_start_then_up)
{
	const char *const p[] = { "good.so", NULL };
	struct daemon_opts o = { 0 };
	char *cfg = natsd_config(srv, NULL);
	natsStatus st;
	json_object *r;
	int64_t deadline;
	int back = 0;

	cr_assert_eq(natsd_stop(srv), 0);
	o.plugins = p;
	o.config = cfg;
	d1 = daemon_start(&o);
	free(cfg);
	cr_assert(d1 != NULL, "the daemon must start without NATS");
	cr_assert(daemon_log_wait(d1, "no server reachable", 5000));
	r = client_call_once(daemon_socket_path(d1),
	    "{\"command\":\"test.echo\",\"payload\":{}}");
	cr_assert_eq(reply_status(r), 200, "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(natsd_restart(srv), 0);
	cr_assert(daemon_log_wait(d1, "nats: connected to", 10000));
	connect_client();
	deadline = now_ms() + 10000;
	while (!back && now_ms() < deadline) {
		r = nclient_call(nc, "test.echo", "{}", NULL, 0, 500, &st);
		back = reply_status(r) == 200;
		json_object_put(r);
		if (!back)
			nap_ms(20);
	}
	cr_assert(back, "no NATS service after the server came up");
	cr_assert_eq(daemon_stop(d1), 0);
}

/* Does /proc/PID/maps mention libnats? */
static int
maps_libnats(pid_t pid)
{
	char path[64], line[512];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "libnats") != NULL)
			found = 1;
	fclose(f);
	return found;
}

Test(nats, no_section_no_libnats)
{
	const char *const p[] = { "good.so", NULL };
	struct daemon_opts o = { 0 };

	o.plugins = p;
	d1 = daemon_start(&o);
	cr_assert(d1 != NULL);
	cr_assert_eq(maps_libnats(daemon_pid(d1)), 0,
	    "libnats is mapped without [nats]");
	d2 = start_on_nats(p, NULL, "test.echo");
	cr_assert_eq(maps_libnats(daemon_pid(d2)), 1,
	    "libnats is not mapped with [nats]");
}

/* NATS replies go through the socket's encoder: a body that is not
 * strict JSON (NaN, invalid UTF-8) is 500 bad_reply naming the plugin,
 * and the raw reply holds only printable ASCII here (the message is
 * ASCII; a NaN token or a raw bad byte would show). */
Test(nats, bad_bodies_are_500_bad_reply)
{
	const char *const p[] = { "good.so", "badbody.so", NULL };
	const char *const cmds[] = { "bad.nan", "bad.inf", "bad.utf8",
	    "bad.text", NULL };

	d1 = start_on_nats(p, NULL, "bad.text");
	connect_client();
	for (int i = 0; cmds[i] != NULL; i++) {
		char subject[64];
		natsMsg *msg = NULL;
		const char *data;
		json_object *r;
		int len;

		snprintf(subject, sizeof(subject), "cmdhost.cmd.%s", cmds[i]);
		cr_assert_eq(natsConnection_RequestString(&msg, nc, subject,
		    "{}", 5000), NATS_OK, "%s: no reply", cmds[i]);
		data = natsMsg_GetData(msg);
		len = natsMsg_GetDataLength(msg);
		for (int k = 0; k < len; k++)
			cr_assert(data[k] >= 0x20 && data[k] < 0x7f, "%s: byte "
			    "%d of %.*s", cmds[i], k, len, data);
		cr_assert_null(strstr(data, "NaN,"), "%.*s", len, data);
		r = json_tokener_parse(data);
		cr_assert_eq(reply_status(r), 500, "%s: %.*s", cmds[i], len,
		    data);
		cr_assert_str_eq(reply_error_code(r), "bad_reply");
		cr_assert(strstr(reply_error_message(r), "plugin 'badbody'") !=
		    NULL, "%s", reply_text(r));
		json_object_put(r);
		natsMsg_Destroy(msg);
	}
	cr_assert_eq(daemon_stop(d1), 0, "daemon did not stop cleanly");
}

/* An isolated plugin serves over NATS as over the socket: its calls run in
 * worker processes, a crash costs that one request a 500 plugin_crashed,
 * the next is served by the respawned worker, and the in-process plugin
 * next to it is never disturbed. */
Test(nats, isolated_plugin_over_nats_crash_costs_one_request)
{
	const char *const p[] = { "crashy.so", "plugins/echo.so", NULL };
	natsStatus st;
	json_object *r;
	int ok = 0, crashed = 0, echoed = 0;

#ifdef CMDHOST_DAEMON_SANITIZED
	cr_skip_test("a sanitizer takes the fatal signals; this runs in the "
	    "plain build");
#endif
	d1 = start_on_nats(p, "[plugin:crashy]\nisolation = process\n"
	    "workers = 2\n", "crashy.ok");
	connect_client();
	for (int i = 0; i < 60; i++) {
		const char *cmd = i % 3 == 0 ? "crashy.segv" : i % 3 == 1 ?
		    "crashy.ok" : "echo";

		r = nclient_call(nc, cmd, "{\"n\":1}", NULL, 0, 10000, &st);
		cr_assert_not_null(r, "%s: no reply (%s)", cmd,
		    natsStatus_GetText(st));
		if (i % 3 == 0) {
			cr_expect(reply_status(r) == 500 &&
			    strcmp(reply_error_code(r), "plugin_crashed") == 0,
			    "%s", reply_text(r));
			crashed += reply_status(r) == 500;
		} else if (i % 3 == 1) {
			cr_expect_eq(reply_status(r), 200, "%s", reply_text(r));
			ok += reply_status(r) == 200;
		} else {
			cr_expect_eq(reply_status(r), 200, "%s", reply_text(r));
			echoed += reply_status(r) == 200;
		}
		json_object_put(r);
	}
	cr_assert_eq(crashed, 20);
	cr_assert_eq(ok, 20);
	cr_assert_eq(echoed, 20);
	r = client_call_once(daemon_socket_path(d1),
	    "{\"command\":\"host.stats\"}");
	cr_assert_eq(json_object_get_int(json_path(r, "body/workers/crashy/"
	    "restarts/crash")), 20, "%s", reply_text(r));
	json_object_put(r);
	cr_assert_eq(daemon_stop(d1), 0);
}
