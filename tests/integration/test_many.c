/*
 * test_many.c - many.so registers 1,000 commands ([plugin:many]
 * commands = 1000): host.list shows all of them and every one answers
 * its own name, pipelined on one connection; a bad count, or one of the
 * 1,000 added twice, refuses the plugin with the reason.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "harness.h"

static const char *const plugins[] = { "many.so", NULL };

TestSuite(many, .fini = check_free);

/* The number of commands host.list shows for plugin many. */
static int
listed(int fd)
{
	json_object *j = check_call(fd, "{\"command\":\"host.list\"}", 200,
	    NULL), *arr = json_path(j, "body/plugins"), *cmds = NULL;
	int n = -1;

	for (size_t i = 0; arr != NULL && i < json_object_array_length(arr);
	    i++) {
		json_object *p = json_object_array_get_idx(arr, i);
		const char *name = json_path_str(p, "name");

		if (name != NULL && strcmp(name, "many") == 0)
			cmds = json_path(p, "commands");
	}
	if (cmds != NULL && json_object_is_type(cmds, json_type_array))
		n = (int)json_object_array_length(cmds);
	json_object_put(j);
	return n;
}

Test(many, thousand_commands_each_answers)
{
	enum { N = 1000 };
	int fd, n;
	char line[128], want[128];
	size_t len = 0;
	char *all = malloc((size_t)N * 64);

	cr_assert(all != NULL);
	check_start_with(plugins, "[plugin:many]\ncommands = 1000\n");
	fd = check_connect();
	n = listed(fd);
	CHECK(n == N, "host.list shows %d commands, want %d", n, N);
	/* All 1,000 sent at once, then the replies read in order. */
	for (int i = 0; i < N; i++)
		len += (size_t)sprintf(all + len, "{\"id\":%d,\"command\":"
		    "\"many.c%05d\"}\n", i, i);
	CHECK(client_send_raw(fd, all, len) == 0, "send");
	for (int i = 0; i < N; i++) {
		char *got = client_recv_line(fd);

		snprintf(want, sizeof(want), "{\"id\":%d,\"status\":200,"
		    "\"body\":\"many.c%05d\"}", i, i);
		CHECK(got != NULL && strcmp(got, want) == 0, "call %d: want "
		    "%s, got %s", i, want, got ? got : "(nothing)");
		free(got);
	}
	snprintf(line, sizeof(line), "{\"id\":1,\"command\":\"many.c%05d\"}",
	    N);
	json_object_put(check_call(fd, line, 404, "unknown_command"));
	free(all);
	close(fd);
	check_stop_clean();
}

/* Start with `config`: many.so must be refused with `reason` in
 * host.list, and none of its commands published. */
static void
expect_refused(const char *config, const char *reason)
{
	int fd;
	json_object *j;
	const char *text;

	check_start_with(plugins, config);
	fd = check_connect();
	j = check_call(fd, "{\"command\":\"host.list\"}", 200, NULL);
	text = reply_text(j);
	CHECK(strstr(text, reason) != NULL, "no \"%s\" in %s", reason, text);
	json_object_put(j);
	json_object_put(check_call(fd, "{\"command\":\"many.c00000\"}", 404,
	    "unknown_command"));
	close(fd);
	check_stop_clean();
}

Test(many, bad_count_is_refused)
{
	expect_refused("[plugin:many]\ncommands = 0\n",
	    "commands must be 1 to 100000");
}

Test(many, name_added_twice_is_refused)
{
	expect_refused("[plugin:many]\ncommands = 1000\nduplicate = 617\n",
	    "command 'many.c00617' added twice");
}

/* The load probe takes at most 65,535 commands from one plugin, and
 * says so (it used to say "the worker sent a bad READY message"). */
Test(many, too_many_commands_are_refused_by_name, .timeout = 180)
{
	expect_refused("load_timeout_ms = 120000\n[plugin:many]\n"
	    "commands = 65536\n", "registers 65536 commands: at most 65535");
}
