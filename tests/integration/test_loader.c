/*
 * test_loader.c - a daemon started with one good plugin and every kind of
 * broken one: the good one serves, each broken file is refused as a whole,
 * shown as failed by host.list with its reason, and logged.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct daemon *d;

TestSuite(loader, .fini = check_free);

/* dup_command.so is not here: it is installed once good.so is loaded,
 * since which of two files claiming one command loads first is up to the
 * daemon's scan order. */
static const char *const all_plugins[] = {
	"good.so", "bad_magic.so", "bad_abi.so", "newer_minor.so",
	"no_descriptor.so", "reg_fails.so", "bad_name.so",
	"reserved_name.so", "null_execute.so", NULL
};

/* Each broken file: its name in host.list, and words its error must hold
 * (compared without case). */
static const struct refusal {
	const char *file;
	const char *name;
	const char *words[3];
} refusals[] = {
	{ "bad_magic.so", "bad_magic", { "magic" } },
	{ "bad_abi.so", "bad_abi", { "abi", "99" } },
	{ "newer_minor.so", "newer_minor", { "abi", "999" } },
	{ "no_descriptor.so", "no_descriptor", { "cmdhost_plugin" } },
	{ "reg_fails.so", "reg_fails", { "database unreachable" } },
	{ "dup_command.so", "dup", { "test.echo", "good" } },
	{ "bad_name.so", "bad_name", { "bad name!" } },
	{ "reserved_name.so", "reserved_name", { "host.evil", "reserved" } },
	{ "null_execute.so", "null_execute", { "execute" } },
};

#define NREFUSALS (sizeof(refusals) / sizeof(refusals[0]))

/* The element of plugins[] in host.list whose "file" is `file`. */
static json_object *
find_file(json_object *plugins, const char *file)
{
	size_t i, n = json_object_array_length(plugins);
	json_object *p, *f;

	for (i = 0; i < n; i++) {
		p = json_object_array_get_idx(plugins, i);
		if (json_object_object_get_ex(p, "file", &f) &&
		    json_object_is_type(f, json_type_string) &&
		    strcmp(json_object_get_string(f), file) == 0)
			return p;
	}
	return NULL;
}

/* Non-zero if the log has a warn or error line mentioning `a` or `b`. */
static int
log_has_refusal(const char *log, const char *a, const char *b)
{
	const char *p = log, *nl;
	char *line;
	json_object *j;
	const char *level;
	int found = 0;

	while (!found && *p != '\0') {
		nl = strchr(p, '\n');
		line = strndup(p, nl != NULL ? (size_t)(nl - p) : strlen(p));
		cr_assert_not_null(line);
		if ((strstr(line, a) != NULL ||
		    (b != NULL && strstr(line, b) != NULL)) &&
		    (j = json_tokener_parse(line)) != NULL) {
			level = json_path_str(j, "level");
			found = level != NULL && (strcmp(level, "warn") == 0 ||
			    strcmp(level, "error") == 0);
			json_object_put(j);
		}
		free(line);
		p = nl != NULL ? nl + 1 : p + strlen(p);
	}
	return found;
}

Test(loader, broken_plugins_are_refused, .timeout = 60)
{
	static const char *const unpublished[] = { "regfail.cmd", "dup.only",
	    "bad name!", "host.evil", "nx.cmd" };
	char line[256], stem[64], quoted[64];
	json_object *j, *plugins, *p, *err;
	const char *state, *e;
	char *log;
	size_t i, k;
	int fd;

	d = check_start_with(all_plugins, NULL);
	fd = check_connect();
	CHECK(daemon_install_plugin(d, "dup_command.so", NULL) == 0,
	    "cannot install dup_command.so");
	json_object_put(check_call(fd, "{\"command\":\"host.reload\"}",
	    200, NULL));

	/* The good plugin serves, including the command "dup" wanted. */
	j = check_call(fd, "{\"command\":\"test.echo\",\"payload\":"
	    "{\"v\":1}}", 200, NULL);
	CHECK(json_object_get_int(json_path(j, "body/v")) == 1,
	    "test.echo answered by the wrong plugin: %s", reply_text(j));
	json_object_put(j);
	json_object_put(check_call(fd, "{\"command\":\"test.created\"}",
	    201, NULL));

	/* Nothing of a refused plugin is published. */
	for (i = 0; i < sizeof(unpublished) / sizeof(unpublished[0]); i++) {
		snprintf(line, sizeof(line), "{\"command\":\"%s\"}",
		    unpublished[i]);
		json_object_put(check_call(fd, line, 404, NULL));
	}

	j = check_call(fd, "{\"command\":\"host.health\"}", 200, NULL);
	CHECK(json_object_get_int(json_path(j, "body/plugins")) == 1 &&
	    json_object_get_int(json_path(j, "body/failed")) ==
	    (int)NREFUSALS, "health: %s", reply_text(j));
	json_object_put(j);

	j = check_call(fd, "{\"command\":\"host.list\"}", 200, NULL);
	plugins = json_path(j, "body/plugins");
	CHECK(json_object_is_type(plugins, json_type_array) &&
	    json_object_array_length(plugins) == NREFUSALS + 1,
	    "want %zu entries: %s", NREFUSALS + 1, reply_text(j));
	p = find_file(plugins, "good.so");
	CHECK(p != NULL && strcmp(json_path_str(p, "state"), "loaded") == 0,
	    "good.so: %s", reply_text(p));

	log = daemon_log(d);
	cr_assert_not_null(log);
	for (i = 0; i < NREFUSALS; i++) {
		const struct refusal *r = &refusals[i];

		p = find_file(plugins, r->file);
		CHECK(p != NULL, "%s missing from host.list: %s", r->file,
		    reply_text(j));
		state = json_path_str(p, "state");
		CHECK(state != NULL && strcmp(state, "failed") == 0,
		    "%s: %s", r->file, reply_text(p));
		CHECK(json_path_str(p, "name") != NULL &&
		    strcmp(json_path_str(p, "name"), r->name) == 0,
		    "%s: want name %s: %s", r->file, r->name, reply_text(p));
		CHECK(json_object_object_get_ex(p, "error", &err) &&
		    json_object_is_type(err, json_type_string),
		    "%s: no error: %s", r->file, reply_text(p));
		e = json_object_get_string(err);
		for (k = 0; k < 3 && r->words[k] != NULL; k++)
			CHECK(strcasestr(e, r->words[k]) != NULL,
			    "%s: error \"%s\" does not mention \"%s\"",
			    r->file, e, r->words[k]);

		/* A warn/error log line names the file or the plugin. */
		snprintf(stem, sizeof(stem), "%.*s",
		    (int)(strlen(r->file) - 3), r->file);
		snprintf(quoted, sizeof(quoted), "\"%s\"", r->name);
		CHECK(log_has_refusal(log, stem, quoted),
		    "no warn/error log line for %s", r->file);
	}
	free(log);
	json_object_put(j);
	close(fd);
	check_stop_clean();
}

Test(loader, plugin_config_section_absent, .timeout = 60)
{
	static const char *const good[] = { "good.so", NULL };
	json_object *j, *body;
	int fd;

	/* Without [plugin:good] greeting, test.config replies null. */
	d = check_start_with(good, NULL);
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

	d = check_start_with(good, "[plugin:good]\ngreeting = hi\n\n"
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
	d = check_start_with(bad, NULL);
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
