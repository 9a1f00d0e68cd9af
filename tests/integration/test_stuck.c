/*
 * test_stuck.c - an inline call that spins is contained as far as a
 * thread can be: its client gets 504 at its deadline, the other
 * connections of its event loop keep being answered (a new thread takes
 * the loop over), host.health is degraded naming the command, the
 * stuck-thread gauge is 1, new calls of the command run on the pool, and
 * when the call returns at last everything is as before.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(stuck, .fini = check_free);

#define N_OTHERS 50
#define SPIN_MS 4000

static const char *const plugins[] = { "good.so", "spin.so", NULL };

/* host.stats number at path, or -1. */
static long long
stat_num(const char *path)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.stats\"}");
	json_object *v = json_path(j, path);
	long long n = v ? json_object_get_int64(v) : -1;

	json_object_put(j);
	return n;
}

/* The thread spin.run {"ms":0} ran on, a new string (free it). */
static char *
spin_thread(int fd)
{
	json_object *j = check_call(fd, "{\"command\":\"spin.run\","
	    "\"payload\":{\"ms\":0}}", 200, NULL);
	char *name = strdup(json_path_str(j, "body/thread") ?
	    json_path_str(j, "body/thread") : "?");

	json_object_put(j);
	return name;
}

/* Non-zero if `cmdhost stats [flag]` prints text. */
static int
stats_has(const char *flag, const char *text)
{
	char *argv[6], *out = NULL;
	int status, found;

	argv[0] = (char *)CMDHOST_BUILD_DIR "/cmdhost";
	argv[1] = (char *)"-s";
	argv[2] = (char *)daemon_socket_path(check_daemon());
	argv[3] = (char *)"stats";
	argv[4] = (char *)flag;
	argv[5] = NULL;
	found = run_command(argv, NULL, 30000, &status, &out, NULL) == 0 &&
	    status == 0 && out != NULL && strstr(out, text) != NULL;
	free(out);
	return found;
}

static int
health_is_ok(void *arg)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.health\"}");
	const char *st = json_path_str(j, "body/status");
	int ok = st != NULL && strcmp(st, "ok") == 0;

	(void)arg;
	json_object_put(j);
	return ok && stat_num("body/stuck_threads") == 0;
}

Test(stuck, spinning_inline_call_is_contained, .timeout = 90)
{
	int spinner, probe, others[N_OTHERS];
	int64_t t0, took, worst = 0;
	json_object *j, *stuck;
	char *line, *name;

	/* One loop: every connection below is on the loop that will
	 * stick. */
	check_start_with(plugins, "workers = 1\ninline_stuck_ms = 200\n");
	spinner = check_connect();
	probe = check_connect();
	for (int i = 0; i < N_OTHERS; i++) {
		others[i] = check_connect();
		json_object_put(check_call(others[i], "{\"command\":"
		    "\"test.echo\",\"payload\":0}", 200, NULL));
	}
	/* The control: a fast spin.run runs inline, on the loop. */
	name = spin_thread(probe);
	CHECK(strcmp(name, "cmdhostd-loop0") == 0, "ran on %s", name);
	free(name);

	t0 = now_ms();
	cr_assert_eq(client_send(spinner, "{\"id\":\"s\",\"command\":"
	    "\"spin.run\",\"timeout_ms\":500,\"payload\":{\"ms\":4000}}"), 0);
	nap_ms(50);
	/* The loop's other connections are answered meanwhile. */
	for (int i = 0; i < N_OTHERS; i++)
		cr_assert_eq(client_send(others[i], "{\"id\":1,\"command\":"
		    "\"test.echo\",\"payload\":1}"), 0);
	for (int i = 0; i < N_OTHERS; i++) {
		line = client_recv_line(others[i]);
		CHECK(line != NULL && strstr(line, "\"status\":200"),
		    "connection %d: %s", i, line ? line : "no reply");
		free(line);
	}
	took = now_ms() - t0;
	CHECK(took < 2000, "the loop's other connections waited %lld ms",
	    (long long)took);

	/* The spinner's 504, at its deadline. */
	line = client_recv_line(spinner);
	took = now_ms() - t0;
	CHECK(line != NULL && strstr(line, "\"status\":504") &&
	    strstr(line, "\"id\":\"s\""), "spinner: %s",
	    line ? line : "no reply");
	CHECK(took >= 450 && took < 1000, "504 after %lld ms (deadline 500)",
	    (long long)took);
	free(line);

	/* Health names it; the gauge counts one stuck thread. */
	j = check_call(probe, "{\"command\":\"host.health\"}", 200, NULL);
	stuck = json_path(j, "body/stuck");
	CHECK(strcmp(json_path_str(j, "body/status"), "degraded") == 0 &&
	    stuck != NULL && json_object_array_length(stuck) == 1 &&
	    strcmp(json_path_str(json_object_array_get_idx(stuck, 0),
	    "command"), "spin.run") == 0, "health: %s", reply_text(j));
	json_object_put(j);
	CHECK(stat_num("body/stuck_threads") == 1, "stuck_threads is not 1");
	CHECK(stats_has("--prometheus", "\ncmdhost_stuck_threads 1\n"),
	    "cmdhost stats --prometheus does not count the stuck thread");
	CHECK(stats_has(NULL, "stuck threads 1,"),
	    "cmdhost stats does not show the stuck thread");
	CHECK(daemon_log_contains(check_daemon(), "command spin.run (plugin "
	    "spin) has run inline"), "no log line for the stuck call");

	/* New calls of it run on the pool, not on a loop. */
	name = spin_thread(probe);
	CHECK(strncmp(name, "cmdhostd-loop", 13) != 0, "ran on %s", name);
	free(name);
	for (int i = 0; i < N_OTHERS; i++) {
		json_object_put(check_call(others[i], "{\"command\":"
		    "\"test.echo\",\"payload\":2}", 200, NULL));
		took = now_ms() - t0;
		worst = took > worst ? took : worst;
	}

	/* When the spin ends its old thread leaves: all well again. */
	CHECK(wait_until(health_is_ok, NULL, SPIN_MS + 10000),
	    "health not ok after the stuck call returned");
	CHECK(daemon_log_wait(check_daemon(), "its old loop thread leaves",
	    5000), "no log line for the old thread");
	json_object_put(check_call(spinner, "{\"command\":\"test.echo\"}", 200,
	    NULL));
	close(spinner);
	close(probe);
	for (int i = 0; i < N_OTHERS; i++)
		close(others[i]);
	check_stop_clean();
}

/*
 * A slow inline call that is taken for stuck but ends before its
 * deadline: its own result (200) reaches the client through the new
 * thread, and the lines pipelined after it in the same write are
 * answered after it, in order.
 */
Test(stuck, adopted_call_keeps_its_result_and_the_lines_after_it,
    .timeout = 60)
{
	static const char burst[] = "{\"id\":1,\"command\":\"spin.run\","
	    "\"payload\":{\"ms\":700}}\n"
	    "{\"id\":2,\"command\":\"test.echo\",\"payload\":2}\n"
	    "{\"id\":3,\"command\":\"test.echo\",\"payload\":3}\n";
	int fd, other;

	check_start_with(plugins, "workers = 1\ninline_stuck_ms = 200\n");
	fd = check_connect();
	other = check_connect();
	cr_assert_eq(client_send_raw(fd, burst, strlen(burst)), 0);
	nap_ms(50);
	/* The loop is served while the call runs. */
	json_object_put(check_call(other, "{\"command\":\"test.echo\"}", 200,
	    NULL));
	for (int want = 1; want <= 3; want++) {
		char *line = client_recv_line(fd);
		json_object *j = line ? json_tokener_parse(line) : NULL;

		CHECK(reply_status(j) == 200 &&
		    json_object_get_int(reply_id(j)) == want,
		    "reply %d: %s", want, line ? line : "none");
		if (want == 1)
			CHECK(strcmp(json_path_str(j, "body/thread"),
			    "cmdhostd-loop0") == 0, "the spin ran on %s",
			    json_path_str(j, "body/thread"));
		json_object_put(j);
		free(line);
	}
	CHECK(daemon_log_contains(check_daemon(), "has run inline"),
	    "the call was not taken for stuck");
	CHECK(wait_until(health_is_ok, NULL, 10000), "health not ok again");
	close(fd);
	close(other);
	check_stop_clean();
}

/* SIGTERM with a thread still stuck: the daemon waits for it as for a
 * loop (shutdown_timeout_ms plus a second), then exits 1 without
 * finalizing plugins. */
Test(stuck, stop_with_a_stuck_thread_exits_1_in_time, .timeout = 60)
{
	int fd;
	int64_t t0;
	char *line;

	check_start_with(plugins, "workers = 1\ninline_stuck_ms = 100\n"
	    "shutdown_timeout_ms = 500\n");
	fd = check_connect();
	cr_assert_eq(client_send(fd, "{\"command\":\"spin.run\",\"timeout_ms\":"
	    "300,\"payload\":{\"ms\":30000}}"), 0);
	line = client_recv_line(fd);
	CHECK(line != NULL && strstr(line, "\"status\":504"), "spin: %s",
	    line ? line : "no reply");
	free(line);
	CHECK(stat_num("body/stuck_threads") == 1, "not stuck");
	t0 = now_ms();
	CHECK(daemon_stop(check_daemon()) == 1, "exit status is not 1");
	CHECK(now_ms() - t0 < 500 + 1000 + 1500, "stop took %lld ms",
	    (long long)(now_ms() - t0));
	CHECK(daemon_log_contains(check_daemon(), "still stuck in an inline "
	    "call"), "no log line naming the stuck thread");
	close(fd);
}

/* Two stuck calls one after the other on the same loop: its second
 * thread is taken over too; both are named, the gauge says 2, the loop
 * is served throughout, and both threads leave when their calls end. */
Test(stuck, a_loop_taken_over_twice, .timeout = 60)
{
	static const char *const two[] = { "good.so", "spin.so",
	    "slow_inline.so", NULL };
	int a, b, probe;
	json_object *j;
	char *line;

	check_start_with(two, "workers = 1\ninline_stuck_ms = 150\n"
	    "inline_budget_us = 60000000\n");
	a = check_connect();
	b = check_connect();
	probe = check_connect();
	cr_assert_eq(client_send(a, "{\"command\":\"spin.run\",\"payload\":"
	    "{\"ms\":2500}}"), 0);
	CHECK(daemon_log_wait(check_daemon(), "command spin.run (plugin spin) "
	    "has run inline", 5000), "the first call was not taken for stuck");
	cr_assert_eq(client_send(b, "{\"command\":\"slow.inline\",\"payload\":"
	    "{\"ms\":2500}}"), 0);
	CHECK(daemon_log_wait(check_daemon(), "command slow.inline (plugin "
	    "slowinline) has run inline", 5000),
	    "the second call was not taken for stuck");
	j = check_call(probe, "{\"command\":\"host.health\"}", 200, NULL);
	CHECK(json_object_array_length(json_path(j, "body/stuck")) == 2,
	    "health: %s", reply_text(j));
	json_object_put(j);
	CHECK(stat_num("body/stuck_threads") == 2, "stuck_threads is not 2");
	json_object_put(check_call(probe, "{\"command\":\"test.echo\"}", 200,
	    NULL));
	line = client_recv_line(a);
	CHECK(line != NULL && strstr(line, "\"status\":200"), "a: %s", line);
	free(line);
	line = client_recv_line(b);
	CHECK(line != NULL && strstr(line, "\"status\":200"), "b: %s", line);
	free(line);
	CHECK(wait_until(health_is_ok, NULL, 10000), "health not ok again");
	close(a);
	close(b);
	close(probe);
	check_stop_clean();
}

/* ------------------------------------------- where new connections go */

/* A loop has been in one turn (the spin) for 50 ms or more. */
static int
a_long_turn(void *arg)
{
	json_object *j = client_call_once(daemon_socket_path(check_daemon()),
	    "{\"command\":\"host.stats\"}");
	json_object *loops = json_path(j, "body/loops");
	int found = 0;

	(void)arg;
	for (size_t i = 0; loops != NULL &&
	    i < json_object_array_length(loops); i++) {
		json_object *t = json_path(json_object_array_get_idx(loops, i),
		    "turn_ms");

		if (t != NULL && json_object_get_int64(t) >= 50)
			found = 1;
	}
	json_object_put(j);
	return found;
}

/*
 * New connections go to the loop serving the fewest, but not to one
 * busy in a long inline call: they would wait for it while another loop
 * is idle (before the fix the worst of six waited ~2.9 s of a 3 s spin).
 * A loop counts as busy once its turn has run 10 ms (BUSY_TURN_MS); the
 * test waits until host.stats shows a turn of 50 ms.  (A call that has
 * just begun cannot be told from a short one: a connection handed over
 * then waits for it, as the loop's own connections do, until the call
 * ends or inline_stuck_ms hands the loop to a new thread.)
 */
Test(stuck, a_new_connection_is_not_handed_to_a_busy_loop, .timeout = 60)
{
	int spinner, fds[6];
	int64_t worst = 0;

	check_start_with(plugins, "workers = 2\ninline_stuck_ms = 60000\n");
	spinner = check_connect();
	json_object_put(check_call(spinner, "{\"command\":\"test.echo\"}",
	    200, NULL));
	CHECK(client_send(spinner, "{\"id\":\"s\",\"command\":\"spin.run\","
	    "\"timeout_ms\":20000,\"payload\":{\"ms\":3000}}") == 0, "send");
	CHECK(wait_until(a_long_turn, NULL, 10000), "the spin did not "
	    "start");
	for (int i = 0; i < 6; i++) {
		int64_t t0 = now_ms(), took;

		fds[i] = check_connect();
		json_object_put(check_call(fds[i], "{\"command\":"
		    "\"test.echo\"}", 200, NULL));
		took = now_ms() - t0;
		worst = took > worst ? took : worst;
	}
	CHECK(worst < 1000, "a new connection waited %lld ms for a loop busy "
	    "in an inline call", (long long)worst);
	for (int i = 0; i < 6; i++)
		close(fds[i]);
	free(client_recv_line(spinner));
	close(spinner);
	check_stop_clean();
}
