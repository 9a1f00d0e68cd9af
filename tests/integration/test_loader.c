/*
 * test_loader.c - what a plugin gets from its [plugin:NAME] config
 * section, and a daemon whose every plugin is refused.  Each kind of bad
 * plugin file is in test_badplugins.c's numbered table.
 */
#include <criterion/criterion.h>

#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(loader, .fini = check_free);

Test(loader, plugin_config_section_absent, .timeout = 60)
{
	static const char *const good[] = { "good.so", NULL };
	json_object *j, *body;
	int fd;

	/* Without [plugin:good] greeting, test.config replies null. */
	check_start_with(good, NULL);
	fd = check_connect();
	j = check_call(fd, "{\"command\":\"test.config\"}", 200, NULL);
	CHECK(json_object_object_get_ex(j, "body", &body) && body == NULL,
	    "test.config without config: %s", reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

Test(loader, plugin_config_section, .timeout = 60)
{
	static const char *const good[] = { "good.so", NULL };
	json_object *j;
	int fd;

	check_start_with(good, "[plugin:good]\ngreeting = hi\n\n"
	    "[plugin:other]\ngreeting = not mine\n");
	fd = check_connect();
	j = check_call(fd, "{\"command\":\"test.config\"}", 200, NULL);
	CHECK(json_object_is_type(reply_body(j), json_type_string) &&
	    strcmp(json_object_get_string(reply_body(j)), "hi") == 0,
	    "test.config: %s, want body \"hi\"", reply_text(j));
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

Test(loader, refused_plugins_alone_still_start, .timeout = 60)
{
	static const char *const bad[] = { "bad_magic.so", "reg_fails.so",
	    NULL };
	json_object *j;
	int fd;

	/* A daemon whose every plugin fails still starts and answers. */
	check_start_with(bad, NULL);
	fd = check_connect();
	j = check_call(fd, "{\"command\":\"host.health\"}", 200, NULL);
	CHECK(json_object_get_int(json_path(j, "body/plugins")) == 0 &&
	    json_object_get_int(json_path(j, "body/failed")) == 2,
	    "health: %s", reply_text(j));
	json_object_put(j);
	json_object_put(check_call(fd, "{\"command\":\"regfail.cmd\"}",
	    404, NULL));
	close(fd);
	check_stop_clean();
}
