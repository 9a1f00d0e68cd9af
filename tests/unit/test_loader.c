/*
 * test_loader.c - unit tests of loader.c with the test plugins of
 * tests/plugins: a good plugin loads with all its commands and unloads, each
 * misbehaving plugin and each non-plugin file is refused with a specific
 * reason, and no private copy is ever left behind.  Commands of the loaded
 * generation are run through invocation_run() to see the API table work.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "api.h"
#include "clock.h"
#include "invocation.h"
#include "fixture.h"
#include "loader.h"
#include "registry.h"

#define TPLUGIN(name) CMDHOST_BUILD_DIR "/tests/plugins/" name ".so"

static char tmpdir[64];     /* holds copies/ and odd files */
static char copy_dir[128];
static struct config cfg;
static char err[1024];

/* Per test: a temporary directory with copies/ inside, and a default
 * config. */
static void
setup(void)
{
	fixture_mkdtemp(tmpdir, sizeof(tmpdir), "loader");
	fixture_subdir(copy_dir, sizeof(copy_dir), tmpdir, "copies");
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

TestSuite(loader, .init = setup, .fini = teardown);

/* Write len bytes of data to tmpdir/name; returns the path in out. */
static void
write_file(const char *name, const void *data, size_t len, char *out,
    size_t outlen)
{
	int fd;

	snprintf(out, outlen, "%s/%s", tmpdir, name);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0, "open %s: %s", out, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(close(fd), 0);
}

/* Load a test plugin; returns loader_load()'s result. */
static int
load(const char *path, const char *file, struct generation **g,
    char **name)
{
	err[0] = '\0';
	return loader_load(&cfg, path, file, copy_dir, g, name, err,
	    sizeof(err));
}

/*
 * Assert that loading path fails with `why` in the reason, that nothing is
 * returned, that the descriptor name reported is want_name (NULL: none),
 * and that no private copy is left.
 */
static void
expect_refused(const char *path, const char *file, const char *why,
    const char *want_name)
{
	struct generation *g = (struct generation *)&g; /* not NULL */
	char *name = (char *)&name;

	cr_assert_eq(load(path, file, &g, &name), -1, "%s loaded", file);
	cr_assert_null(g, "%s: a generation came back on failure", file);
	cr_assert_not_null(strstr(err, why), "%s: reason \"%s\" does not "
	    "contain \"%s\"", file, err, why);
	if (want_name == NULL)
		cr_assert_null(name, "%s: name \"%s\"", file, name);
	else {
		cr_assert_not_null(name, "%s: no name", file);
		cr_assert_str_eq(name, want_name);
	}
	free(name);
	cr_assert_eq(fixture_count_entries(copy_dir), 0,
	    "%s: private copy left in %s", file, copy_dir);
}

/* The command `name` of g, asserted present. */
static struct command *
command_of(struct generation *g, const char *name)
{
	for (size_t i = 0; i < g->n_commands; i++)
		if (strcmp(g->commands[i].name, name) == 0)
			return &g->commands[i];
	cr_assert_fail("generation %s has no command %s", g->name, name);
	return NULL;
}

/*
 * Run command `name` of g in-process on the JSON text payload, with
 * `budget_ns` before its deadline (negative: already past).  Returns the
 * finished invocation (invocation_free; it holds its own reference on g).
 */
static struct invocation *
run(struct generation *g, const char *name, const char *payload,
    int64_t budget_ns)
{
	struct command *cmd = command_of(g, name);
	struct json_object *root = json_object_new_object();
	struct json_object *p = json_tokener_parse(payload);
	struct invocation *inv;

	cr_assert_not_null(p, "bad test payload %s", payload);
	json_object_object_add(root, "command", json_object_new_string(name));
	json_object_object_add(root, "payload", p); /* root owns p */
	generation_hold(g);
	inv = invocation_new(cmd, root, NULL, p, 0, 0, 1);
	cr_assert_not_null(inv);
	inv->start_ns = clock_mono_ns();
	inv->deadline_ns = inv->start_ns + budget_ns;
	invocation_run(inv);
	cr_assert(inv->finished, "%s did not finish", name);
	return inv;
}

Test(loader, api_table)
{
	const struct cmdhost_api *api = api_table();

	cr_assert_not_null(api);
	cr_assert_eq(api->size, sizeof(struct cmdhost_api));
	cr_assert_eq(api->abi_major, CMDHOST_ABI_MAJOR);
	cr_assert_eq(api->abi_minor, CMDHOST_ABI_MINOR);
	cr_assert(CMDHOST_API_HAS(api, ctx_client_id));
	cr_assert_not_null(api->reg_config);
	cr_assert_not_null(api->reg_set_state);
	cr_assert_not_null(api->reg_add_command);
	cr_assert_not_null(api->reg_error);
	cr_assert_not_null(api->reg_log);
	cr_assert_not_null(api->reg_plugin_name);
	cr_assert_not_null(api->ctx_state);
	cr_assert_not_null(api->ctx_payload);
	cr_assert_not_null(api->ctx_payload_text);
	cr_assert_not_null(api->ctx_request_id);
	cr_assert_not_null(api->ctx_command);
	cr_assert_not_null(api->ctx_time_left_ms);
	cr_assert_not_null(api->ctx_log);
	cr_assert_not_null(api->ctx_respond);
	cr_assert_not_null(api->ctx_fail);
	cr_assert_not_null(api->ctx_client_id);
}

Test(loader, good_plugin_loads_with_its_commands)
{
	static const char *const names[] = {
		"test.echo", "test.fields", "test.validate", "test.fail",
		"test.fail500", "test.noreply", "test.created", "test.sleep",
		"test.config"
	};
	struct generation *g = NULL;
	struct command *c;
	char *name = NULL;
	uint64_t hash;
	time_t now = time(NULL);

	cr_assert_eq(load(TPLUGIN("good"), "good.so", &g, &name), 0, "%s",
	    err);
	cr_assert_not_null(g);
	cr_assert_str_eq(name, "good");
	free(name);
	cr_assert_str_eq(g->name, "good");
	cr_assert_str_eq(g->version, "1.0.0");
	cr_assert_str_eq(g->file, "good.so");
	cr_assert_eq(g->number, 0, "unpublished generations have number 0");
	cr_assert_eq(atomic_load(&g->refs), 1);
	cr_assert_not_null(g->handle);
	cr_assert_not_null(g->state, "good sets a state");
	cr_assert_not_null(g->fini);
	cr_assert_geq(g->loaded_at_ms / 1000, (int64_t)now - 60);
	cr_assert_leq(g->loaded_at_ms / 1000, (int64_t)now + 60);
	cr_assert_eq(loader_hash_file(TPLUGIN("good"), &hash), 0);
	cr_assert_eq(g->content_hash, hash);

	cr_assert_eq(g->n_commands, sizeof(names) / sizeof(names[0]));
	for (size_t i = 0; i < g->n_commands; i++) {
		cr_assert_str_eq(g->commands[i].name, names[i]);
		cr_assert_eq(g->commands[i].gen, g);
		cr_assert_not_null(g->commands[i].execute);
	}
	c = command_of(g, "test.echo");
	cr_assert_str_eq(c->summary, "Reply the payload");
	cr_assert_null(c->fields);
	cr_assert_null(c->validate);
	cr_assert_eq(c->flags, 0);
	cr_assert_eq(command_of(g, "test.sleep")->flags, CMDHOST_BLOCKING);
	cr_assert_not_null(command_of(g, "test.validate")->validate);

	c = command_of(g, "test.fields");
	cr_assert_not_null(c->fields);
	cr_assert_str_eq(c->fields[0].name, "s");
	cr_assert_eq(c->fields[0].type, CMDHOST_STRING);
	cr_assert_eq(c->fields[0].required, 1);
	cr_assert_str_eq(c->fields[2].name, "i");
	cr_assert_eq(c->fields[2].type, CMDHOST_INTEGER);
	cr_assert_str_eq(c->fields[4].name, "o");
	cr_assert_eq(c->fields[4].type, CMDHOST_OBJECT);
	cr_assert_eq(c->fields[4].required, 0);
	cr_assert_eq(c->fields[6].type, CMDHOST_ANY);
	cr_assert_null(c->fields[7].name);

	/* The private copy is unlinked as soon as it is mapped. */
	cr_assert_eq(fixture_count_entries(copy_dir), 0);
	loader_unload(g);
	cr_assert_eq(fixture_count_entries(copy_dir), 0);
}

Test(loader, unload_accepts_null)
{
	loader_unload(NULL);
}

Test(loader, name_out_may_be_null)
{
	struct generation *g = NULL;

	cr_assert_eq(load(TPLUGIN("good"), "good.so", &g, NULL), 0, "%s", err);
	loader_unload(g);
	cr_assert_eq(load(TPLUGIN("bad_magic"), "bad_magic.so", &g, NULL), -1);
	cr_assert_null(g);
}

Test(loader, each_load_is_a_fresh_copy)
{
	struct generation *a = NULL, *b = NULL;

	cr_assert_eq(load(TPLUGIN("good"), "good.so", &a, NULL), 0, "%s", err);
	cr_assert_eq(load(TPLUGIN("good"), "good.so", &b, NULL), 0, "%s", err);
	/* Two handles, two images, two states: no cached old handle. */
	cr_assert_neq(a->handle, b->handle);
	cr_assert_neq(a->state, b->state);
	cr_assert_neq((void *)a->commands[0].execute,
	    (void *)b->commands[0].execute);
	cr_assert_eq(fixture_count_entries(copy_dir), 0);
	loader_unload(a);
	loader_unload(b);
}

Test(loader, symlink_to_a_plugin_loads)
{
	struct generation *g = NULL;
	char link[256];

	snprintf(link, sizeof(link), "%s/link.so", tmpdir);
	cr_assert_eq(symlink(TPLUGIN("good"), link), 0);
	cr_assert_eq(load(link, "link.so", &g, NULL), 0, "%s", err);
	cr_assert_str_eq(g->name, "good");
	cr_assert_str_eq(g->file, "link.so");
	loader_unload(g);
	cr_assert_eq(fixture_count_entries(copy_dir), 0);
}

Test(loader, duplicate_command_alone_loads)
{
	struct generation *g = NULL;

	/* Conflicts are between plugins: the registry checks those. */
	cr_assert_eq(load(TPLUGIN("dup_command"), "dup_command.so", &g, NULL),
	    0, "%s", err);
	cr_assert_str_eq(g->name, "dup");
	cr_assert_eq(g->n_commands, 2);
	cr_assert_str_eq(g->commands[0].name, "dup.only");
	cr_assert_str_eq(g->commands[1].name, "test.echo");
	cr_assert_null(g->state);
	loader_unload(g);
}

Test(loader, bad_magic)
{
	expect_refused(TPLUGIN("bad_magic"), "bad_magic.so", "magic", NULL);
}

Test(loader, bad_abi_names_both_majors)
{
	expect_refused(TPLUGIN("bad_abi"), "bad_abi.so", "99.0", NULL);
	{
		char ours[16];

		snprintf(ours, sizeof(ours), "%d.%d", CMDHOST_ABI_MAJOR,
		    CMDHOST_ABI_MINOR);
		cr_assert_not_null(strstr(err, ours), "%s", err);
	}
}

Test(loader, newer_minor)
{
	expect_refused(TPLUGIN("newer_minor"), "newer_minor.so", "1.999", NULL);
	{
		char ours[16];

		snprintf(ours, sizeof(ours), "%d.%d", CMDHOST_ABI_MAJOR,
		    CMDHOST_ABI_MINOR);
		cr_assert_not_null(strstr(err, ours), "%s", err);
	}
}

Test(loader, no_descriptor)
{
	expect_refused(TPLUGIN("no_descriptor"), "no_descriptor.so",
	    "cmdhost_plugin", NULL);
}

Test(loader, registration_fails)
{
	expect_refused(TPLUGIN("reg_fails"), "reg_fails.so",
	    "database unreachable", "reg_fails");
}

Test(loader, bad_command_name)
{
	expect_refused(TPLUGIN("bad_name"), "bad_name.so", "bad name!",
	    "bad_name");
}

Test(loader, version_with_control_or_bad_utf8)
{
	expect_refused(TPLUGIN("bad_version"), "bad_version.so",
	    "invalid plugin version", NULL);
}

Test(loader, reserved_command_name)
{
	expect_refused(TPLUGIN("reserved_name"), "reserved_name.so", "reserved",
	    "reserved_name");
	cr_assert_not_null(strstr(err, "host.evil"), "%s", err);
}

Test(loader, null_execute)
{
	expect_refused(TPLUGIN("null_execute"), "null_execute.so", "no execute",
	    "null_execute");
	cr_assert_not_null(strstr(err, "nx.cmd"), "%s", err);
}

Test(loader, text_file)
{
	static const char text[] = "this is not a shared object\n";
	char path[256];

	write_file("x.so", text, sizeof(text) - 1, path, sizeof(path));
	expect_refused(path, "x.so", "not an ELF", NULL);
}

Test(loader, empty_file)
{
	char path[256];

	write_file("empty.so", "", 0, path, sizeof(path));
	expect_refused(path, "empty.so", "empty file", NULL);
}

/* Read a built test plugin whole; returns malloc'd bytes (caller frees). */
static char *
read_plugin(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* A copy cut short (a file caught half-written) must be refused, not
 * mapped: mapping segments past the end of a file faults (SIGBUS). */
Test(loader, truncated_elf)
{
	char path[256], *buf;
	size_t len;

	buf = read_plugin(TPLUGIN("good"), &len);
	cr_assert_gt(len, 4096);
	write_file("cut.so", buf, 2048, path, sizeof(path));
	expect_refused(path, "cut.so", "truncated", NULL);
	write_file("head.so", buf, 64, path, sizeof(path)); /* header only */
	expect_refused(path, "head.so", "truncated", NULL);
	free(buf);
}

/* An ELF shared object for another machine is refused by its header. */
Test(loader, elf_for_another_machine)
{
	char path[256], *buf;
	size_t len;
	uint16_t machine = 183; /* EM_AARCH64, or x86-64 when we are arm */

	buf = read_plugin(TPLUGIN("good"), &len);
	if (memcmp(buf + 18, &machine, 2) == 0)
		machine = 62; /* EM_X86_64 */
	memcpy(buf + 18, &machine, 2); /* e_machine */
	write_file("arm.so", buf, len, path, sizeof(path));
	expect_refused(path, "arm.so", "another machine", NULL);
	free(buf);
}

Test(loader, directory)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/dir.so", tmpdir);
	cr_assert_eq(mkdir(path, 0700), 0);
	expect_refused(path, "dir.so", "not a regular file", NULL);
}

Test(loader, dangling_symlink)
{
	char path[256], target[256];

	snprintf(path, sizeof(path), "%s/dangling.so", tmpdir);
	snprintf(target, sizeof(target), "%s/gone.so", tmpdir);
	cr_assert_eq(symlink(target, path), 0);
	expect_refused(path, "dangling.so", "No such file", NULL);
}

Test(loader, missing_file)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/missing.so", tmpdir);
	expect_refused(path, "missing.so", "No such file", NULL);
}

Test(loader, unwritable_copy_dir)
{
	char file[256], bad_dir[300];
	struct generation *g = NULL;
	FILE *f;

	/* Under a regular file: no directory can be made there (tests run
	 * as root, so modes would not stop it). */
	snprintf(file, sizeof(file), "%s/a-file", tmpdir);
	cr_assert_not_null(f = fopen(file, "w"));
	fclose(f);
	snprintf(bad_dir, sizeof(bad_dir), "%s/copies", file);
	cr_assert_eq(loader_load(&cfg, TPLUGIN("good"), "good.so", bad_dir, &g,
	    NULL, err, sizeof(err)), -1);
	cr_assert_null(g);
	cr_assert_not_null(strstr(err, "private copy"), "%s", err);
}

/* A private directory that went (a temp cleaner) is made again. */
Test(loader, removed_copy_dir_is_made_again)
{
	char gone[256];
	struct generation *g = NULL;
	struct stat st;

	snprintf(gone, sizeof(gone), "%s/removed", tmpdir);
	cr_assert_eq(loader_load(&cfg, TPLUGIN("good"), "good.so", gone, &g,
	    NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(g);
	cr_assert_eq(stat(gone, &st), 0);
	cr_assert(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700,
	    "mode %o", (unsigned)(st.st_mode & 0777));
	generation_release(g);
}

Test(loader, hash_file)
{
	char a[256], b[256];
	uint64_t ha, hb, hmissing = 0;

	write_file("a.bin", "same bytes", 10, a, sizeof(a));
	write_file("b.bin", "same bytes", 10, b, sizeof(b));
	cr_assert_eq(loader_hash_file(a, &ha), 0);
	cr_assert_eq(loader_hash_file(b, &hb), 0);
	cr_assert_eq(ha, hb);
	write_file("b.bin", "same bytez", 10, b, sizeof(b));
	cr_assert_eq(loader_hash_file(b, &hb), 0);
	cr_assert_neq(ha, hb);
	snprintf(b, sizeof(b), "%s/none", tmpdir);
	cr_assert_eq(loader_hash_file(b, &hmissing), -ENOENT);
}

Test(loader, config_greeting_reaches_the_plugin)
{
	struct generation *g = NULL;
	struct invocation *inv;
	char ini[256];
	static const char text[] = "[plugin:good]\ngreeting = hello there\n"
	    "[plugin:other]\ngreeting = not mine\n";

	write_file("cmdhost.ini", text, sizeof(text) - 1, ini, sizeof(ini));
	cr_assert_eq(config_load(&cfg, ini, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(load(TPLUGIN("good"), "good.so", &g, NULL), 0, "%s", err);
	inv = run(g, "test.config", "{}", 1000000000);
	cr_assert_eq(inv->status, 200, "status %d: %s", inv->status,
	    inv->message ? inv->message : "");
	cr_assert_not_null(inv->body);
	cr_assert_str_eq(json_object_get_string(inv->body), "hello there");
	invocation_free(inv);
	cr_assert_eq(atomic_load(&g->refs), 1);
	loader_unload(g);
}

Test(loader, no_greeting_gives_null)
{
	struct generation *g = NULL;
	struct invocation *inv;

	cr_assert_eq(load(TPLUGIN("good"), "good.so", &g, NULL), 0, "%s", err);
	inv = run(g, "test.config", "{}", 1000000000);
	cr_assert_eq(inv->status, 200);
	cr_assert_null(inv->body);
	invocation_free(inv);
	loader_unload(g);
}

Test(loader, calls_through_the_api_table)
{
	struct generation *g = NULL;
	struct invocation *inv;
	struct json_object *v;

	cr_assert_eq(load(TPLUGIN("good"), "good.so", &g, NULL), 0, "%s", err);

	inv = run(g, "test.echo", "{\"k\":[1,2]}", 1000000000);
	cr_assert_eq(inv->status, 200);
	cr_assert(json_object_object_get_ex(inv->body, "k", &v));
	cr_assert_eq(json_object_array_length(v), 2);
	invocation_free(inv);

	inv = run(g, "test.created", "{}", 1000000000);
	cr_assert_eq(inv->status, 201);
	invocation_free(inv);

	inv = run(g, "test.fail", "{}", 1000000000);
	cr_assert_eq(inv->status, 409);
	cr_assert_str_eq(inv->code, "conflict");
	cr_assert_null(inv->body);
	invocation_free(inv);

	inv = run(g, "test.fail500", "{}", 1000000000);
	cr_assert_eq(inv->status, 500);
	cr_assert_str_eq(inv->code, "command_failed");
	invocation_free(inv);

	inv = run(g, "test.noreply", "{}", 1000000000);
	cr_assert_eq(inv->status, 500);
	cr_assert_str_eq(inv->code, "command_failed");
	invocation_free(inv);

	inv = run(g, "test.validate", "{\"bad\":true}", 1000000000);
	cr_assert_eq(inv->status, 400);
	cr_assert_str_eq(inv->code, "invalid_payload");
	cr_assert_not_null(strstr(inv->message, "bad"), "%s", inv->message);
	invocation_free(inv);

	inv = run(g, "test.validate", "{\"bad\":false}", 1000000000);
	cr_assert_eq(inv->status, 200);
	invocation_free(inv);

	/* A deadline already past: 504, whatever the command said. */
	inv = run(g, "test.echo", "{}", -1);
	cr_assert_eq(inv->status, 504);
	cr_assert_str_eq(inv->code, "timeout");
	cr_assert_null(inv->body);
	invocation_free(inv);

	cr_assert_eq(atomic_load(&g->refs), 1);
	loader_unload(g);
}

/* Files that would block a reader or never end are refused by what they
 * are, without being read; so is a file past max_plugin_bytes. */
Test(loader, fifo_device_and_huge_files_are_refused_unread)
{
	char path[256];
	uint64_t hash;

	snprintf(path, sizeof(path), "%s/x.so", tmpdir);
	cr_assert_eq(mkfifo(path, 0644), 0);
	expect_refused(path, "x.so", "not a regular file (a FIFO)", NULL);
	cr_assert_eq(loader_hash_file(path, &hash), -EINVAL);
	snprintf(path, sizeof(path), "%s/z.so", tmpdir);
	cr_assert_eq(symlink("/dev/zero", path), 0);
	expect_refused(path, "z.so", "a character device", NULL);
	cfg.max_plugin_bytes = 4096;
	expect_refused(TPLUGIN("good"), "good.so", "larger than "
	    "max_plugin_bytes", NULL);
}
