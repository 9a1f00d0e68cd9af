/*
 * test_badplugins.c - one numbered table of bad plugin files (cases[]
 * below), each driven three ways: present at start-up, dropped in (by
 * rename) for the watcher, and dropped in for an explicit host.reload with
 * the watcher off.  Each is refused with a specific message, shown as
 * failed by host.list, logged, publishes nothing, and good.so keeps
 * serving throughout.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

TestSuite(badplugins, .fini = check_free);

/* How a bad file is made. */
enum make {
	MAKE_BYTES,	/* write `src` (a string) as the file */
	MAKE_DIR,	/* a directory */
	MAKE_DANGLING,	/* a symlink to a path that does not exist */
	MAKE_MACHINE,	/* good.so with e_machine patched to another machine's */
	MAKE_COPY	/* a copy of built test plugin `src` */
};

/*
 * The cases, numbered in the order the loader checks a file.  Each row:
 * its number, what it is, how it is made (and from what), its file name at
 * start-up and when dropped in later (they differ only where scan order
 * matters), its name in host.list, words its error must hold (compared
 * without case), and a command it asks for that must never be published
 * (or NULL).  A failing check names the case by number and what.
 *
 * 1.x  the file itself, refused before dlopen()
 * 2.x  the descriptor, refused before any plugin code is called
 * 3.x  registration, refused as a whole: nothing of it is published
 */
static const struct bad_case {
	const char *num;
	const char *what;
	enum make make;
	const char *src;
	const char *file;
	const char *reload_file;
	const char *name;
	const char *words[3];
	const char *unpublished;
} cases[] = {
	{ "1.1", "dangling symlink", MAKE_DANGLING, NULL,
	    "dangling.so", NULL, "dangling",
	    { "cannot stat", "no such file" }, NULL },
	{ "1.2", "directory", MAKE_DIR, NULL,
	    "x.so", NULL, "x",
	    { "not a regular file" }, NULL },
	{ "1.3", "empty file", MAKE_BYTES, "",
	    "empty.so", NULL, "empty",
	    { "empty file" }, NULL },
	{ "1.4", "text file", MAKE_BYTES, "#!/bin/sh\necho not a plugin\n",
	    "text.so", NULL, "text",
	    { "not an ELF" }, NULL },
	{ "1.5", "ELF for another machine", MAKE_MACHINE, NULL,
	    "machine.so", NULL, "machine",
	    { "another machine", "e_machine" }, NULL },

	{ "2.1", "no descriptor", MAKE_COPY, "no_descriptor.so",
	    "no_descriptor.so", NULL, "no_descriptor",
	    { "no 'cmdhost_plugin' descriptor" }, NULL },
	{ "2.2", "wrong magic", MAKE_COPY, "bad_magic.so",
	    "bad_magic.so", NULL, "bad_magic",
	    { "bad descriptor magic", "0xdeadbeef" }, NULL },
	{ "2.3", "ABI major 99", MAKE_COPY, "bad_abi.so",
	    "bad_abi.so", NULL, "bad_abi",
	    { "incompatible", "99.", "abi" }, NULL },
	{ "2.4", "ABI minor newer", MAKE_COPY, "newer_minor.so",
	    "newer_minor.so", NULL, "newer_minor",
	    { "newer than the daemon", "1.999", "abi" }, NULL },

	{ "3.1", "registration error", MAKE_COPY, "reg_fails.so",
	    "reg_fails.so", NULL, "reg_fails",
	    { "registration failed", "database unreachable" },
	    "regfail.cmd" },
	{ "3.2", "invalid command name", MAKE_COPY, "bad_name.so",
	    "bad_name.so", NULL, "bad_name",
	    { "invalid command name", "bad name!" }, "bad name!" },
	{ "3.3", "reserved command name", MAKE_COPY, "reserved_name.so",
	    "reserved_name.so", NULL, "reserved_name",
	    { "reserved", "host.evil" }, "host.evil" },
	/* At start-up the scan is in name order: "zz_" sorts after good.so,
	 * so good owns test.echo before dup asks for it.  Dropped in later,
	 * good already owns it. */
	{ "3.4", "duplicate command", MAKE_COPY, "dup_command.so",
	    "zz_dup_command.so", "dup_command.so", "dup",
	    { "'test.echo' is already registered", "'good'" }, "dup.only" },
	{ "3.5", "NULL execute", MAKE_COPY, "null_execute.so",
	    "null_execute.so", NULL, "null_execute",
	    { "no execute function", "nx.cmd" }, "nx.cmd" },
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* An e_machine other than the daemon's: aarch64 (183), or x86-64 (62)
 * when the daemon itself runs on aarch64. */
static unsigned
other_machine(void)
{
#if defined(__aarch64__)
	return 62;
#else
	return 183;
#endif
}

/* Write len bytes of buf to a new file `path` (mode 0755).  Returns 0 or
 * -1. */
static int
write_new(const char *path, const void *buf, size_t len)
{
	int fd, rc = 0;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755))
	    == -1)
		return -1;
	if (len > 0 && write(fd, buf, len) != (ssize_t)len)
		rc = -1;
	if (close(fd) == -1)
		rc = -1;
	return rc;
}

/*
 * Make case c as <dir>/plugins/<as>: built under a dot name first and then
 * renamed into place, so a watcher sees it appear whole.  Returns 0 or -1.
 */
static int
make_case(const char *dir, const struct bad_case *c, const char *as)
{
	char tmp[4096], to[4096], from[4096];
	unsigned char *buf = NULL;
	size_t len = 0;
	unsigned m;
	int rc = -1;

	snprintf(tmp, sizeof(tmp), "%s/plugins/.%s.tmp", dir, as);
	snprintf(to, sizeof(to), "%s/plugins/%s", dir, as);
	switch (c->make) {
	case MAKE_BYTES:
		rc = write_new(tmp, c->src, strlen(c->src));
		break;
	case MAKE_DIR:
		rc = mkdir(tmp, 0755);
		break;
	case MAKE_DANGLING:
		rc = symlink("/nonexistent/cmdhost-test/plugin.so", tmp);
		break;
	case MAKE_MACHINE:
	case MAKE_COPY:
		if (harness_plugin_path(c->make == MAKE_COPY ? c->src :
		    "good.so", from, sizeof(from)) == -1 ||
		    (buf = harness_read_bytes(from, &len)) == NULL)
			break;
		if (c->make == MAKE_MACHINE) {
			/* e_machine: 2 bytes at offset 18, little-endian
			 * (ELFDATA2LSB on the hosts we run on). */
			if (len < 20)
				break;
			m = other_machine();
			buf[18] = (unsigned char)(m & 0xff);
			buf[19] = (unsigned char)(m >> 8);
		}
		rc = write_new(tmp, buf, len);
		break;
	}
	free(buf);
	if (rc == 0 && rename(tmp, to) == -1)
		rc = -1;
	return rc;
}

/* Case c's file name at start-up (reload 0) or when dropped in later. */
static const char *
case_file(const struct bad_case *c, int reload)
{
	return reload && c->reload_file != NULL ? c->reload_file : c->file;
}

/* "case 2.3 (ABI major 99), <when>" into buf, for a failure message. */
static const char *
case_tag(const struct bad_case *c, const char *when, char *buf, size_t size)
{
	snprintf(buf, size, "case %s (%s), %s", c->num, c->what, when);
	return buf;
}

/* prepare() for daemon_start_prepared(): every case in plugins/. */
static int
make_all(const char *dir, void *arg)
{
	size_t i;

	(void)arg;
	for (i = 0; i < NCASES; i++)
		if (make_case(dir, &cases[i], case_file(&cases[i], 0)) == -1) {
			fprintf(stderr, "case %s (%s): cannot make %s: %s\n",
			    cases[i].num, cases[i].what,
			    case_file(&cases[i], 0), strerror(errno));
			return -1;
		}
	return 0;
}

/* The element of array `plugins` (host.list's plugins[], host.reload's
 * failed[]) whose "file" is `file`, or NULL. */
static json_object *
find_file(json_object *plugins, const char *file)
{
	size_t i, n;
	const char *f;

	if (!json_object_is_type(plugins, json_type_array))
		return NULL;
	n = json_object_array_length(plugins);
	for (i = 0; i < n; i++) {
		f = json_path_str(json_object_array_get_idx(plugins, i),
		    "file");
		if (f != NULL && strcmp(f, file) == 0)
			return json_object_array_get_idx(plugins, i);
	}
	return NULL;
}

/*
 * Non-zero if the log has an error (or warn) line about `file` whose
 * message or reason holds `word`.
 */
static int
log_has_refusal(const char *log, const char *file, const char *word)
{
	const char *p = log, *nl, *level, *f, *msg, *reason;
	char *line;
	json_object *j;
	int found = 0;

	while (!found && *p != '\0') {
		nl = strchr(p, '\n');
		line = strndup(p, nl != NULL ? (size_t)(nl - p) : strlen(p));
		cr_assert_not_null(line);
		if (strstr(line, file) != NULL &&
		    (j = json_tokener_parse(line)) != NULL) {
			level = json_path_str(j, "level");
			f = json_path_str(j, "file");
			msg = json_path_str(j, "message");
			reason = json_path_str(j, "reason");
			found = level != NULL && (strcmp(level, "error") == 0 ||
			    strcmp(level, "warn") == 0) && f != NULL &&
			    strcmp(f, file) == 0 &&
			    ((msg != NULL && strcasestr(msg, word) != NULL) ||
			    (reason != NULL && strcasestr(reason, word) !=
			    NULL));
			json_object_put(j);
		}
		free(line);
		p = nl != NULL ? nl + 1 : p + strlen(p);
	}
	return found;
}

/* good.so still serves: test.echo (also claimed by case 3.4) answered by
 * good itself, and test.created with its 201. */
static void
good_serves(int fd, const char *when)
{
	json_object *j = check_call(fd, "{\"command\":\"test.echo\","
	    "\"payload\":{\"v\":42}}", 200, NULL);

	CHECK(json_object_get_int(json_path(j, "body/v")) == 42,
	    "%s: test.echo answered %s", when, reply_text(j));
	json_object_put(j);
	json_object_put(check_call(fd, "{\"command\":\"test.created\"}", 201,
	    NULL));
}

/* Require the host.list entry for case c's `file` to be failed with c's
 * words in its error, and a log line for it. */
static void
check_refused(json_object *list, const struct bad_case *c, const char *file,
    const char *when)
{
	json_object *p = find_file(json_path(list, "body/plugins"), file);
	const char *state, *name, *err;
	char tag[256];
	char *log;
	size_t w;

	case_tag(c, when, tag, sizeof(tag));
	CHECK(p != NULL, "%s: %s not in host.list: %s", tag, file,
	    reply_text(list));
	state = json_path_str(p, "state");
	name = json_path_str(p, "name");
	err = json_path_str(p, "error");
	CHECK(state != NULL && strcmp(state, "failed") == 0,
	    "%s: want state failed: %s", tag, reply_text(p));
	CHECK(name != NULL && strcmp(name, c->name) == 0,
	    "%s: want name %s: %s", tag, c->name, reply_text(p));
	CHECK(err != NULL, "%s: no error: %s", tag, reply_text(p));
	for (w = 0; w < 3 && c->words[w] != NULL; w++)
		CHECK(strcasestr(err, c->words[w]) != NULL,
		    "%s: error \"%s\" does not say \"%s\"", tag, err,
		    c->words[w]);
	log = daemon_log(check_daemon());
	cr_assert_not_null(log);
	CHECK(log_has_refusal(log, file, c->words[0]),
	    "%s: no error log line with file \"%s\" saying \"%s\"", tag,
	    file, c->words[0]);
	free(log);
}

/* Require case c's command, if it has one, to answer 404. */
static void
check_unpublished(int fd, const struct bad_case *c, const char *when)
{
	json_object *j;
	char line[256], tag[256];

	if (c->unpublished == NULL)
		return;
	case_tag(c, when, tag, sizeof(tag));
	snprintf(line, sizeof(line), "{\"command\":\"%s\"}", c->unpublished);
	j = client_call(fd, line);
	CHECK(reply_status(j) == 404, "%s: %s was published: %s", tag,
	    c->unpublished, reply_text(j));
	json_object_put(j);
}

/*
 * Once every case is in plugins/ and has been seen (as file name
 * case_file(c, reload)): host.list shows good.so loaded and every case
 * refused, host.health counts 1 plugin and a failure per case, nothing of
 * a case is published, and good.so serves.
 */
static void
check_all_refused(int fd, int reload, const char *when)
{
	json_object *j, *good;
	const char *state;
	size_t i;

	j = check_call(fd, "{\"command\":\"host.list\"}", 200, NULL);
	CHECK(json_object_array_length(json_path(j, "body/plugins")) ==
	    NCASES + 1, "%s: host.list: %s, want %zu entries", when,
	    reply_text(j), NCASES + 1);
	good = find_file(json_path(j, "body/plugins"), "good.so");
	state = json_path_str(good, "state");
	CHECK(state != NULL && strcmp(state, "loaded") == 0,
	    "%s: good.so: %s, want state loaded", when, reply_text(good));
	for (i = 0; i < NCASES; i++)
		check_refused(j, &cases[i], case_file(&cases[i], reload),
		    when);
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"host.health\"}", 200, NULL);
	CHECK(json_object_get_int(json_path(j, "body/plugins")) == 1 &&
	    json_object_get_int(json_path(j, "body/failed")) == (int)NCASES,
	    "%s: health: %s, want 1 plugin and %zu failed", when,
	    reply_text(j), NCASES);
	json_object_put(j);
	for (i = 0; i < NCASES; i++)
		check_unpublished(fd, &cases[i], when);
	good_serves(fd, when);
}

/* Require a host.reload reply to list every case (as file name
 * case_file(c, 1)) as failed, and nothing else. */
static void
check_reload_failed(json_object *reply, const char *when)
{
	json_object *failed = json_path(reply, "body/failed");
	char tag[256];
	size_t i;

	CHECK(json_object_is_type(failed, json_type_array) &&
	    json_object_array_length(failed) == NCASES,
	    "%s: host.reload: %s, want %zu failed", when, reply_text(reply),
	    NCASES);
	for (i = 0; i < NCASES; i++)
		CHECK(find_file(failed, case_file(&cases[i], 1)) != NULL,
		    "%s: not in failed[]: %s", case_tag(&cases[i], when, tag,
		    sizeof(tag)), reply_text(reply));
}

Test(badplugins, refused_at_start_up, .timeout = 60)
{
	static const char *const good[] = { "good.so", NULL };
	struct daemon_opts o = { .plugins = good };
	int fd;

	check_start_prepared(&o, make_all, NULL);
	fd = check_connect();
	check_all_refused(fd, 0, "start-up");
	close(fd);
	check_stop_clean();
}

struct listed {
	int fd;
	const char *file;
	json_object *list;	/* the last host.list reply, owned */
};

/* Condition for wait_until(): host.list shows l->file, done loading (a
 * file being loaded shows as state "loading" for a moment). */
static int
file_listed(void *arg)
{
	struct listed *l = arg;
	json_object *p;
	const char *state;

	json_object_put(l->list);
	l->list = client_call(l->fd, "{\"command\":\"host.list\"}");
	p = find_file(json_path(l->list, "body/plugins"), l->file);
	state = json_path_str(p, "state");
	return state != NULL && strcmp(state, "loading") != 0;
}

Test(badplugins, refused_on_hot_reload, .timeout = 90)
{
	static const char *const good[] = { "good.so", NULL };
	static const char when[] = "hot reload (watcher)";
	struct listed l = { -1, NULL, NULL };
	json_object *j;
	const char *file;
	char tag[256];
	size_t i;
	int fd;

	check_start_with(good, NULL);
	fd = check_connect();
	CHECK(daemon_log_wait(check_daemon(), "ready on", 10000),
	    "no \"ready on\" log line");
	l.fd = fd;
	for (i = 0; i < NCASES; i++) {
		file = case_file(&cases[i], 1);
		case_tag(&cases[i], when, tag, sizeof(tag));
		CHECK(make_case(daemon_dir(check_daemon()), &cases[i], file)
		    == 0, "%s: cannot make %s: %s", tag, file,
		    strerror(errno));
		/* The watcher picks it up by itself. */
		l.file = file;
		CHECK(wait_until(file_listed, &l, 10000), "%s: %s never "
		    "showed in host.list: %s", tag, file, reply_text(l.list));
		check_refused(l.list, &cases[i], file, when);
		check_unpublished(fd, &cases[i], when);
		good_serves(fd, tag);
	}
	json_object_put(l.list);
	check_all_refused(fd, 1, when);

	/* An explicit rescan refuses them all again, by file. */
	j = check_call(fd, "{\"command\":\"host.reload\"}", 200, NULL);
	check_reload_failed(j, "host.reload after the watcher");
	json_object_put(j);
	check_all_refused(fd, 1, "host.reload after the watcher");
	close(fd);
	check_stop_clean();
}

Test(badplugins, refused_by_host_reload, .timeout = 60)
{
	static const char *const good[] = { "good.so", NULL };
	static const char when[] = "host.reload (no watcher)";
	json_object *j;
	const char *file;
	char tag[256];
	size_t i;
	int fd;

	/* watch = false: the files are first seen by host.reload itself. */
	check_start_with(good, "watch = false\n");
	fd = check_connect();
	for (i = 0; i < NCASES; i++) {
		file = case_file(&cases[i], 1);
		CHECK(make_case(daemon_dir(check_daemon()), &cases[i], file)
		    == 0, "%s: cannot make %s: %s", case_tag(&cases[i], when,
		    tag, sizeof(tag)), file, strerror(errno));
	}
	j = check_call(fd, "{\"command\":\"host.list\"}", 200, NULL);
	CHECK(json_object_array_length(json_path(j, "body/plugins")) == 1,
	    "%s: seen before host.reload: %s", when, reply_text(j));
	json_object_put(j);
	j = check_call(fd, "{\"command\":\"host.reload\"}", 200, NULL);
	check_reload_failed(j, when);
	json_object_put(j);
	check_all_refused(fd, 1, when);
	close(fd);
	check_stop_clean();
}
