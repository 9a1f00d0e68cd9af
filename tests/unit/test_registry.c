/*
 * test_registry.c - unit tests of registry.c on a temporary plugin
 * directory: scans and their reports, lookups, a conflicting plugin, a bad
 * replacement that leaves the old generation serving, a swap, a removal
 * while a call holds the old generation, and host.list's JSON.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "api.h"
#include "clock.h"
#include "invocation.h"
#include "fixture.h"
#include "log.h"
#include "registry.h"
#include "views.h"

#define TPLUGIN(name) CMDHOST_BUILD_DIR "/tests/plugins/" name ".so"
#define GOOD_COMMANDS 9

static char tmpdir[64];
static char plugin_dir[128];
static char copy_dir[128];
static struct config cfg;
static struct registry *r;
static int reader;

/* Per test: empty plugins/ and copies/ in a temporary directory, a
 * default config, a registry over them and a reader slot. */
static void
setup(void)
{
	log_init(LOGL_WARN, LOGF_TEXT, NULL);
	fixture_mkdtemp(tmpdir, sizeof(tmpdir), "registry");
	fixture_subdir(plugin_dir, sizeof(plugin_dir), tmpdir, "plugins");
	fixture_subdir(copy_dir, sizeof(copy_dir), tmpdir, "copies");
	cr_assert_eq(config_init(&cfg), 0);
	r = registry_new(&cfg, plugin_dir, copy_dir);
	cr_assert_not_null(r);
	reader = registry_reader(r);
	cr_assert_geq(reader, 0);
}

/* Free the registry (unloading everything), the config, the files. */
static void
teardown(void)
{
	registry_free(r);
	config_fini(&cfg);
	fixture_rmtree(tmpdir);
}

TestSuite(registry, .init = setup, .fini = teardown);

/*
 * Put a copy of the file src into plugin_dir as `file`, replacing any
 * file of that name at once (written aside, then renamed).  extra bytes
 * are appended, which changes the content but not what dlopen sees.
 */
static void
install(const char *src, const char *file, const char *extra)
{
	char tmp[256], dst[256], block[65536];
	int in, out;
	ssize_t n;

	snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", plugin_dir, file);
	snprintf(dst, sizeof(dst), "%s/%s", plugin_dir, file);
	in = open(src, O_RDONLY);
	cr_assert_geq(in, 0, "open %s: %s", src, strerror(errno));
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(out, 0, "open %s: %s", tmp, strerror(errno));
	while ((n = read(in, block, sizeof(block))) > 0)
		cr_assert_eq(write(out, block, (size_t)n), n);
	cr_assert_eq(n, 0);
	if (extra != NULL)
		cr_assert_eq(write(out, extra, strlen(extra)),
		    (ssize_t)strlen(extra));
	close(in);
	cr_assert_eq(close(out), 0);
	cr_assert_eq(rename(tmp, dst), 0);
}

/* Remove `file` from plugin_dir. */
static void
uninstall(const char *file)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", plugin_dir, file);
	cr_assert_eq(unlink(path), 0, "unlink %s: %s", path, strerror(errno));
}

/* Scan with a report; returns the report (caller puts) and the number of
 * failures in *failures. */
static struct json_object *
scan(int *failures)
{
	struct json_object *report = json_object_new_object();

	*failures = registry_scan(r, report);
	return report;
}

/* The array `key` of report, asserted present. */
static struct json_object *
report_array(struct json_object *report, const char *key)
{
	struct json_object *a = NULL;

	cr_assert(json_object_object_get_ex(report, key, &a), "no \"%s\" in "
	    "%s", key, json_object_to_json_string(report));
	cr_assert(json_object_is_type(a, json_type_array));
	return a;
}

/* Assert that report's array `key` holds exactly the files of want (a
 * NULL-terminated list), in order. */
static void
expect_files(struct json_object *report, const char *key,
    const char *const *want)
{
	struct json_object *a = report_array(report, key);
	size_t n = 0;

	for (; want[n] != NULL; n++) {
		struct json_object *item;
		const char *file;

		cr_assert_lt(n, json_object_array_length(a), "\"%s\" lacks %s: "
		    "%s", key, want[n], json_object_to_json_string(report));
		item = json_object_array_get_idx(a, n);
		if (json_object_is_type(item, json_type_object))
			item = json_object_object_get(item, "file");
		file = json_object_get_string(item);
		cr_assert_str_eq(file, want[n], "\"%s\"[%zu] in %s", key, n,
		    json_object_to_json_string(report));
	}
	cr_assert_eq(json_object_array_length(a), n, "\"%s\" has extra "
	    "entries: %s", key, json_object_to_json_string(report));
}

static const char *const none[] = { NULL };
static const char *const just_good[] = { "good.so", NULL };

/* Look up name, assert the generation's plugin name and number, and drop
 * the reference. */
static void
expect_served_by(const char *name, const char *plugin, uint64_t number)
{
	struct command *c = registry_lookup(r, reader, name);

	cr_assert_not_null(c, "%s is not served", name);
	cr_assert_str_eq(c->name, name);
	cr_assert_str_eq(c->gen->name, plugin);
	cr_assert_eq(c->gen->number, number, "%s: generation %llu, want %llu",
	    name, (unsigned long long)c->gen->number,
	    (unsigned long long)number);
	generation_release(c->gen);
}

/* Assert that name is not served. */
static void
expect_absent(const char *name)
{
	struct command *c = registry_lookup(r, reader, name);

	if (c != NULL)
		generation_release(c->gen);
	cr_assert_null(c, "%s is served", name);
}

/* Assert registry_counts(). */
static void
expect_counts(int plugins, int commands, int failed)
{
	int p, c, f;

	registry_counts(r, &p, &c, &f);
	cr_assert_eq(p, plugins, "plugins %d, want %d", p, plugins);
	cr_assert_eq(c, commands, "commands %d, want %d", c, commands);
	cr_assert_eq(f, failed, "failed %d, want %d", f, failed);
}

Test(registry, empty_directory)
{
	struct json_object *report, *list;
	int failures;

	report = scan(&failures);
	cr_assert_eq(failures, 0);
	expect_files(report, "loaded", none);
	expect_files(report, "unloaded", none);
	expect_files(report, "failed", none);
	expect_files(report, "unchanged", none);
	json_object_put(report);
	expect_absent("test.echo");
	expect_counts(0, 0, 0);
	list = view_plugins(r);
	cr_assert_eq(json_object_array_length(list), 0);
	json_object_put(list);
}

Test(registry, scan_loads_good)
{
	struct json_object *report;
	struct command *c;
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	report = scan(&failures);
	cr_assert_eq(failures, 0);
	expect_files(report, "loaded", just_good);
	expect_files(report, "unloaded", none);
	expect_files(report, "failed", none);
	expect_files(report, "unchanged", none);
	json_object_put(report);

	c = registry_lookup(r, reader, "test.echo");
	cr_assert_not_null(c);
	cr_assert_str_eq(c->name, "test.echo");
	cr_assert_str_eq(c->gen->name, "good");
	cr_assert_str_eq(c->gen->file, "good.so");
	cr_assert_eq(c->gen->number, 1);
	/* The registry's reference and ours. */
	cr_assert_eq(atomic_load(&c->gen->refs), 2);
	cr_assert_not_null(c->stats);
	cr_assert_str_eq(c->stats->name, "test.echo");
	generation_release(c->gen);

	expect_served_by("test.config", "good", 1);
	expect_absent("nope");
	expect_absent("");
	expect_absent("host.ping");
	expect_absent("test.ech");
	expect_counts(1, GOOD_COMMANDS, 0);
	/* Nothing is left in the private copy directory. */
	cr_assert_eq(fixture_count_entries(copy_dir), 0);
}

Test(registry, scan_without_report)
{
	install(TPLUGIN("good"), "good.so", NULL);
	cr_assert_eq(registry_scan(r, NULL), 0);
	expect_served_by("test.echo", "good", 1);
}

Test(registry, rescan_without_changes_reports_unchanged)
{
	struct json_object *report;
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));
	report = scan(&failures);
	cr_assert_eq(failures, 0);
	expect_files(report, "loaded", none);
	expect_files(report, "unloaded", none);
	expect_files(report, "failed", none);
	expect_files(report, "unchanged", just_good);
	json_object_put(report);
	/* Still the first generation. */
	expect_served_by("test.echo", "good", 1);
}

Test(registry, conflicting_plugin_is_refused_whole)
{
	static const char *const dup[] = { "zz_dup.so", NULL };
	struct json_object *report, *failed, *item, *e;
	const char *msg;
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));
	cr_assert_eq(failures, 0);

	install(TPLUGIN("dup_command"), "zz_dup.so", NULL);
	report = scan(&failures);
	cr_assert_eq(failures, 1);
	expect_files(report, "loaded", none);
	expect_files(report, "failed", dup);
	expect_files(report, "unchanged", just_good);
	failed = report_array(report, "failed");
	item = json_object_array_get_idx(failed, 0);
	cr_assert(json_object_object_get_ex(item, "error", &e));
	msg = json_object_get_string(e);
	cr_assert_not_null(strstr(msg, "'good'"), "%s", msg);
	cr_assert_not_null(strstr(msg, "test.echo"), "%s", msg);
	json_object_put(report);

	/* good keeps its commands; nothing of dup is published. */
	expect_served_by("test.echo", "good", 1);
	expect_served_by("test.fields", "good", 1);
	expect_absent("dup.only");
	expect_counts(1, GOOD_COMMANDS, 1);
	cr_assert_eq(fixture_count_entries(copy_dir), 0);
}

Test(registry, one_plugin_name_one_file)
{
	static const char *const second[] = { "good2.so", NULL };
	struct json_object *report, *item, *e;
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	install(TPLUGIN("good"), "good2.so", "other bytes");
	report = scan(&failures);
	cr_assert_eq(failures, 1);
	expect_files(report, "loaded", just_good);
	expect_files(report, "failed", second);
	item = json_object_array_get_idx(report_array(report, "failed"), 0);
	cr_assert(json_object_object_get_ex(item, "error", &e));
	cr_assert_not_null(strstr(json_object_get_string(e), "good.so"), "%s",
	    json_object_get_string(e));
	json_object_put(report);
	expect_served_by("test.echo", "good", 1);
	expect_counts(1, GOOD_COMMANDS, 1);
}

/* host.stats describes commands that were published, not the commands of
 * a generation that was refused. */
Test(registry, refused_commands_get_no_stats)
{
	struct json_object *stats;
	int failures, listed, n;

	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));
	install(TPLUGIN("dup_command"), "zz_dup.so", NULL);
	json_object_put(scan(&failures));
	cr_assert_eq(failures, 1);
	expect_absent("dup.only");
	stats = view_command_stats(r);
	listed = json_object_object_get_ex(stats, "dup.only", NULL);
	n = json_object_object_length(stats);
	json_object_put(stats);
	cr_assert_not(listed, "host.stats lists dup.only, which was never "
	    "published");
	cr_assert_eq(n, GOOD_COMMANDS);
}

Test(registry, removing_a_file_unloads_its_commands)
{
	struct json_object *report, *list;
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));
	expect_served_by("test.echo", "good", 1);

	uninstall("good.so");
	report = scan(&failures);
	cr_assert_eq(failures, 0);
	expect_files(report, "unloaded", just_good);
	expect_files(report, "loaded", none);
	expect_files(report, "unchanged", none);
	json_object_put(report);
	expect_absent("test.echo");
	expect_absent("test.config");
	expect_counts(0, 0, 0);
	list = view_plugins(r);
	cr_assert_eq(json_object_array_length(list), 0);
	json_object_put(list);
}

Test(registry, a_running_call_keeps_its_generation)
{
	struct command *c;
	struct invocation *inv;
	struct json_object *root, *payload;
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));
	c = registry_lookup(r, reader, "test.echo");
	cr_assert_not_null(c);

	/* The file goes away while we hold the command. */
	uninstall("good.so");
	json_object_put(scan(&failures));
	expect_absent("test.echo");
	cr_assert_eq(atomic_load(&c->gen->refs), 1);
	cr_assert_str_eq(c->gen->name, "good");

	/* The held command still runs; freeing the call unloads it. */
	root = json_tokener_parse("{\"command\":\"test.echo\","
	    "\"payload\":{\"still\":\"here\"}}");
	payload = json_object_object_get(root, "payload");
	inv = invocation_new(c, root, NULL, payload, 0, 0, 1);
	cr_assert_not_null(inv);
	inv->start_ns = clock_mono_ns();
	inv->deadline_ns = inv->start_ns + 1000000000;
	invocation_run(inv);
	cr_assert_eq(inv->status, 200);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(
	    inv->body, "still")), "here");
	invocation_free(inv);
}

Test(registry, bad_replacement_keeps_the_old_generation)
{
	static const char *const good_file[] = { "good.so", NULL };
	struct json_object *report, *list, *o, *v;
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));

	/* A broken build lands under the same name. */
	install(TPLUGIN("reg_fails"), "good.so", NULL);
	report = scan(&failures);
	cr_assert_eq(failures, 1);
	expect_files(report, "failed", good_file);
	expect_files(report, "loaded", none);
	json_object_put(report);
	expect_served_by("test.echo", "good", 1);
	expect_absent("regfail.cmd");
	expect_counts(1, GOOD_COMMANDS, 1);

	list = view_plugins(r);
	cr_assert_eq(json_object_array_length(list), 1);
	o = json_object_array_get_idx(list, 0);
	v = json_object_object_get(o, "error");
	cr_assert_not_null(v);
	cr_assert_not_null(strstr(json_object_get_string(v),
	    "database unreachable"), "%s", json_object_get_string(v));
	/* It still serves: not "failed". */
	cr_assert_str_neq(json_object_get_string(json_object_object_get(o,
	    "state")), "failed");
	cr_assert_eq(json_object_get_int64(json_object_object_get(o,
	    "generation")), 1);
	json_object_put(list);

	/* The same broken bytes again: a rescan retries a failed file (what
	 * made it fail may be gone); it fails again, the old one serves. */
	report = scan(&failures);
	cr_assert_eq(failures, 1);
	expect_files(report, "failed", good_file);
	json_object_put(report);
	expect_served_by("test.echo", "good", 1);

	/* Rolling back to the old file clears the error. */
	install(TPLUGIN("good"), "good.so", NULL);
	report = scan(&failures);
	cr_assert_eq(failures, 0);
	expect_files(report, "unchanged", good_file);
	json_object_put(report);
	expect_counts(1, GOOD_COMMANDS, 0);
	list = view_plugins(r);
	o = json_object_array_get_idx(list, 0);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(o,
	    "state")), "loaded");
	cr_assert_null(json_object_object_get(o, "error"));
	json_object_put(list);
	expect_served_by("test.echo", "good", 1);
}

Test(registry, changed_file_swaps_generations)
{
	struct command *old;
	struct json_object *report;
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));
	old = registry_lookup(r, reader, "test.echo");
	cr_assert_not_null(old);
	cr_assert_eq(old->gen->number, 1);

	/* Same code, different bytes: a new generation. */
	install(TPLUGIN("good"), "good.so", "trailing bytes");
	report = scan(&failures);
	cr_assert_eq(failures, 0);
	expect_files(report, "loaded", just_good);
	json_object_put(report);
	expect_served_by("test.echo", "good", 2);
	expect_counts(1, GOOD_COMMANDS, 0);

	/* The old generation lives on for the call that holds it. */
	cr_assert_eq(atomic_load(&old->gen->refs), 1);
	cr_assert_eq(old->gen->number, 1);
	cr_assert_str_eq(old->name, "test.echo");
	/* Stats belong to the name, not the generation. */
	{
		struct command *cur = registry_lookup(r, reader, "test.echo");

		cr_assert_not_null(cur);
		cr_assert_eq(cur->stats, old->stats);
		cr_assert_neq(cur->gen, old->gen);
		generation_release(cur->gen);
	}
	generation_release(old->gen);
	cr_assert_eq(fixture_count_entries(copy_dir), 0);
}

struct lookup_thread {
	pthread_t tid;
	atomic_int *stop;
	long found, missing;
};

/* Look test.echo up until told to stop, counting misses. */
static void *
lookup_main(void *arg)
{
	struct lookup_thread *t = arg;
	int slot = registry_reader(r);

	if (slot < 0)
		return NULL;
	while (!atomic_load(t->stop)) {
		struct command *c = registry_lookup(r, slot, "test.echo");

		if (c == NULL) {
			t->missing++;
			continue;
		}
		if (strcmp(c->name, "test.echo") != 0 ||
		    strcmp(c->gen->name, "good") != 0)
			t->missing++;
		else
			t->found++;
		generation_release(c->gen);
	}
	return NULL;
}

Test(registry, swaps_never_hide_a_command_from_readers)
{
	struct lookup_thread t[3];
	atomic_int stop;
	char extra[32];
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));
	atomic_init(&stop, 0);
	for (int i = 0; i < 3; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].stop = &stop;
		cr_assert_eq(pthread_create(&t[i].tid, NULL, lookup_main,
		    &t[i]), 0);
	}
	for (int i = 0; i < 10; i++) {
		snprintf(extra, sizeof(extra), "swap %d", i);
		install(TPLUGIN("good"), "good.so", extra);
		cr_assert_eq(registry_scan(r, NULL), 0);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i].tid, NULL);
		cr_assert_eq(t[i].missing, 0, "reader %d missed test.echo %ld "
		    "times", i, t[i].missing);
		cr_assert_gt(t[i].found, 0);
	}
	expect_served_by("test.echo", "good", 11);
	cr_assert_eq(fixture_count_entries(copy_dir), 0);
}

Test(registry, other_files_are_ignored)
{
	struct json_object *report, *list;
	int failures;

	install(TPLUGIN("good"), ".hidden.so", NULL);
	install(TPLUGIN("good"), "good.so.tmp", NULL);
	install(TPLUGIN("good"), "README", NULL);
	install(TPLUGIN("good"), ".so", NULL);
	report = scan(&failures);
	cr_assert_eq(failures, 0);
	expect_files(report, "loaded", none);
	expect_files(report, "failed", none);
	expect_files(report, "unchanged", none);
	json_object_put(report);
	expect_absent("test.echo");
	list = view_plugins(r);
	cr_assert_eq(json_object_array_length(list), 0);
	json_object_put(list);
}

Test(registry, missing_plugin_dir_is_a_failure)
{
	struct json_object *report;
	int failures;

	cr_assert_eq(rmdir(plugin_dir), 0);
	report = scan(&failures);
	cr_assert_gt(failures, 0);
	expect_files(report, "loaded", none);
	json_object_put(report);
	cr_assert_eq(mkdir(plugin_dir, 0700), 0);
}

/* The plugin of list whose "file" is file, asserted present. */
static struct json_object *
plugin_entry(struct json_object *list, const char *file)
{
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *o = json_object_array_get_idx(list, i);
		struct json_object *f = json_object_object_get(o, "file");

		if (f != NULL && strcmp(json_object_get_string(f), file) == 0)
			return o;
	}
	cr_assert_fail("no plugin for %s in %s", file,
	    json_object_to_json_string(list));
	return NULL;
}

/* The command of a host.list plugin entry named name. */
static struct json_object *
command_entry(struct json_object *plugin, const char *name)
{
	struct json_object *cmds = fixture_member(plugin, "commands",
	    json_type_array);

	for (size_t i = 0; i < json_object_array_length(cmds); i++) {
		struct json_object *c = json_object_array_get_idx(cmds, i);

		if (strcmp(json_object_get_string(fixture_member(c, "name",
		    json_type_string)), name) == 0)
			return c;
	}
	cr_assert_fail("no command %s", name);
	return NULL;
}

Test(registry, list_json_shape)
{
	struct json_object *list, *p, *c, *a, *f;
	const char *stamp;
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	install(TPLUGIN("bad_magic"), "bm.so", NULL);
	json_object_put(scan(&failures));
	cr_assert_eq(failures, 1);
	install(TPLUGIN("dup_command"), "zz_dup.so", NULL);
	json_object_put(scan(&failures));
	cr_assert_eq(failures, 2);

	list = view_plugins(r);
	cr_assert(json_object_is_type(list, json_type_array));
	cr_assert_eq(json_object_array_length(list), 3, "%s",
	    json_object_to_json_string(list));

	p = plugin_entry(list, "good.so");
	cr_assert_str_eq(json_object_get_string(fixture_member(p, "name",
	    json_type_string)), "good");
	cr_assert_str_eq(json_object_get_string(fixture_member(p, "version",
	    json_type_string)), "1.0.0");
	cr_assert_eq(fixture_int(p, "generation"), 1);
	cr_assert_str_eq(json_object_get_string(fixture_member(p, "state",
	    json_type_string)), "loaded");
	cr_assert(json_object_object_get_ex(p, "error", NULL));
	cr_assert_null(json_object_object_get(p, "error"));
	stamp = json_object_get_string(fixture_member(p, "loaded_at",
	    json_type_string));
	/* RFC 3339 in UTC: 2024-01-02T03:04:05.678Z */
	cr_assert_geq(strlen(stamp), 20, "%s", stamp);
	cr_assert(stamp[4] == '-' && stamp[7] == '-' && stamp[10] == 'T' &&
	    stamp[13] == ':' && stamp[16] == ':', "%s", stamp);
	cr_assert_eq(stamp[strlen(stamp) - 1], 'Z', "%s", stamp);
	cr_assert_eq(json_object_array_length(fixture_member(p, "commands",
	    json_type_array)), GOOD_COMMANDS);

	c = command_entry(p, "test.echo");
	cr_assert_str_eq(json_object_get_string(fixture_member(c, "summary",
	    json_type_string)), "Reply the payload");
	cr_assert_eq(json_object_array_length(fixture_member(c, "flags",
	    json_type_array)), 0);
	cr_assert_eq(json_object_array_length(fixture_member(c, "fields",
	    json_type_array)), 0);

	c = command_entry(p, "test.sleep");
	a = fixture_member(c, "flags", json_type_array);
	cr_assert_eq(json_object_array_length(a), 1);
	cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(a,
	    0)), "blocking");

	c = command_entry(p, "test.fields");
	a = fixture_member(c, "fields", json_type_array);
	cr_assert_eq(json_object_array_length(a), 7);
	f = json_object_array_get_idx(a, 0);
	cr_assert_str_eq(json_object_get_string(fixture_member(f, "name",
	    json_type_string)), "s");
	cr_assert_str_eq(json_object_get_string(fixture_member(f, "type",
	    json_type_string)), "string");
	cr_assert_eq(json_object_get_boolean(fixture_member(f, "required",
	    json_type_boolean)), 1);
	f = json_object_array_get_idx(a, 2);
	cr_assert_str_eq(json_object_get_string(fixture_member(f, "type",
	    json_type_string)), "integer");
	f = json_object_array_get_idx(a, 5);
	cr_assert_str_eq(json_object_get_string(fixture_member(f, "name",
	    json_type_string)), "a");
	cr_assert_str_eq(json_object_get_string(fixture_member(f, "type",
	    json_type_string)), "array");
	cr_assert_eq(json_object_get_boolean(fixture_member(f, "required",
	    json_type_boolean)), 0);
	f = json_object_array_get_idx(a, 6);
	cr_assert_str_eq(json_object_get_string(fixture_member(f, "type",
	    json_type_string)), "any");

	/* The descriptor could not be trusted: the file name stands in. */
	p = plugin_entry(list, "bm.so");
	cr_assert_str_eq(json_object_get_string(fixture_member(p, "name",
	    json_type_string)), "bm");
	cr_assert_str_eq(json_object_get_string(fixture_member(p, "state",
	    json_type_string)), "failed");
	cr_assert_not_null(strstr(json_object_get_string(fixture_member(p,
	    "error", json_type_string)), "magic"));
	cr_assert_eq(json_object_array_length(fixture_member(p, "commands",
	    json_type_array)), 0);
	cr_assert(json_object_object_get_ex(p, "generation", NULL));
	cr_assert_null(json_object_object_get(p, "generation"));

	/* The descriptor was read: its name is shown. */
	p = plugin_entry(list, "zz_dup.so");
	cr_assert_str_eq(json_object_get_string(fixture_member(p, "name",
	    json_type_string)), "dup");
	cr_assert_str_eq(json_object_get_string(fixture_member(p, "state",
	    json_type_string)), "failed");
	cr_assert_not_null(strstr(json_object_get_string(fixture_member(p,
	    "error", json_type_string)), "good"));
	cr_assert_eq(json_object_array_length(fixture_member(p, "commands",
	    json_type_array)), 0);

	json_object_put(list);
	expect_counts(1, GOOD_COMMANDS, 2);
}

Test(registry, stats_json_has_every_command)
{
	struct json_object *stats, *s, *v;
	int failures;

	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));
	stats = view_command_stats(r);
	cr_assert_eq(json_object_object_length(stats), GOOD_COMMANDS, "%s",
	    json_object_to_json_string(stats));
	cr_assert(json_object_object_get_ex(stats, "test.echo", &s));
	cr_assert(json_object_object_get_ex(s, "calls", &v));
	cr_assert_eq(json_object_get_int64(v), 0);
	cr_assert(json_object_object_get_ex(s, "latency_us", &v));
	json_object_put(stats);
}

Test(registry, reader_slots_are_limited)
{
	int last = reader;

	for (int i = 1; i < REGISTRY_MAX_READERS; i++) {
		int slot = registry_reader(r);

		cr_assert_eq(slot, last + 1);
		last = slot;
	}
	cr_assert_eq(registry_reader(r), -1);
}

Test(registry, free_accepts_null)
{
	registry_free(NULL);
}

/* The publish hook: counts calls and checks what a reader sees then. */
static int hook_calls;
static int hook_saw_echo;

static void
count_publish(void *arg)
{
	struct command *c;

	cr_assert_eq(arg, &hook_calls);
	hook_calls++;
	/* The new table is already current when the hook runs. */
	c = registry_lookup(r, reader, "test.echo");
	hook_saw_echo = c != NULL;
	if (c != NULL)
		generation_release(c->gen);
}

Test(registry, publish_hook_runs_after_each_swap)
{
	int failures;

	hook_calls = 0;
	registry_set_publish_hook(r, count_publish, &hook_calls);
	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));
	cr_assert_eq(hook_calls, 1);
	cr_assert_eq(hook_saw_echo, 1);
	json_object_put(scan(&failures)); /* unchanged: nothing published */
	cr_assert_eq(hook_calls, 1);
	uninstall("good.so");
	json_object_put(scan(&failures));
	cr_assert_eq(hook_calls, 2);
	cr_assert_eq(hook_saw_echo, 0);
	registry_set_publish_hook(r, NULL, NULL);
	install(TPLUGIN("good"), "good.so", NULL);
	json_object_put(scan(&failures));
	cr_assert_eq(hook_calls, 2, "a cleared hook ran");
}
