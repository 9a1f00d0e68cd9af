/*
 * crash.c - the fatal-signal handler and its record.
 *
 * The handler formats the record in a buffer on its stack with hand-made
 * number formatting (no stdio, no malloc), writes it with pwrite at
 * offset 0 of a descriptor opened at start-up, writes one JSON line to
 * stderr, then re-raises with the default action.  Reading the record
 * back happens at the next start, with ordinary calls.
 */
#include "crash.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/generation.h"

#define MAGIC "cmdhost-crash-record 1\n"

static int record_fd = -1;

static const int fatal[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };

const char *
crash_signame(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGILL: return "SIGILL";
	case SIGFPE: return "SIGFPE";
	case SIGABRT: return "SIGABRT";
	default: return "signal";
	}
}

/* An append-only buffer the handler fills. */
struct sbuf {
	char *p;
	size_t n, cap;
};

/* Append text as it is. */
static void
put(struct sbuf *b, const char *s)
{
	for (size_t i = 0; s[i] != '\0' && b->n < b->cap; i++)
		b->p[b->n++] = s[i];
}

/* Append a value (at most max bytes): one field per line of the record,
 * and nothing that needs escaping in the stderr line. */
static void
put_val(struct sbuf *b, const char *s, size_t max)
{
	for (size_t i = 0; s != NULL && s[i] != '\0' && i < max &&
	    b->n < b->cap; i++) {
		char ch = s[i];

		if (ch == '\n' || ch == '\r' || ch == '"' || ch == '\\' ||
		    (unsigned char)ch < 0x20)
			ch = '?';
		b->p[b->n++] = ch;
	}
}

static void
put_u(struct sbuf *b, unsigned long long v, unsigned base)
{
	char d[24];
	int i = 0;

	do {
		d[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0 && i < (int)sizeof(d));
	if (base == 16)
		while (i < 16)
			d[i++] = '0';
	while (i > 0 && b->n < b->cap)
		b->p[b->n++] = d[--i];
}

/* Append the "timestamp" member of a log line for ts, as log.c writes
 * it. */
static void
put_timestamp(struct sbuf *b, const struct timespec *ts)
{
	char stamp[32];

	log_timestamp(stamp, sizeof(stamp), (long long)ts->tv_sec * 1000 +
	    ts->tv_nsec / 1000000);
	put(b, "\"timestamp\":\"");
	put(b, stamp);
	put(b, "\",");
}

static void
on_fatal(int sig, siginfo_t *si, void *uc)
{
	const struct generation *g = generation_running.g;
	const char *what = generation_running.command;
	char text[2048], line[1024];
	struct sbuf b = { text, 0, sizeof(text) };
	struct sbuf l = { line, 0, sizeof(line) };
	struct timespec ts;
	int saved = errno;

	(void)si;
	(void)uc;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* The line carries the time it is written, like every other. */
	put(&l, "{");
	put_timestamp(&l, &ts);
	if (g != NULL) {
		put(&b, MAGIC);
		put(&b, "signal ");
		put_u(&b, (unsigned)sig, 10);
		put(&b, "\nfile ");
		put_val(&b, g->file, 255);
		put(&b, "\nhash ");
		put_u(&b, g->content_hash, 16);
		put(&b, "\nplugin ");
		put_val(&b, g->name ? g->name : "", CMDHOST_NAME_MAX);
		put(&b, "\nversion ");
		put_val(&b, g->version ? g->version : "", CMDHOST_NAME_MAX);
		put(&b, "\ngeneration ");
		put_u(&b, g->number, 10);
		put(&b, "\ncommand ");
		put_val(&b, what, CMDHOST_NAME_MAX);
		put(&b, "\nat_ms ");
		put_u(&b, (unsigned long long)ts.tv_sec * 1000 +
		    (unsigned long long)ts.tv_nsec / 1000000, 10);
		put(&b, "\nend\n");
		if (record_fd >= 0 && b.n < b.cap) {
			(void)!pwrite(record_fd, text, b.n, 0);
			(void)!ftruncate(record_fd, (off_t)b.n);
		}
		put(&l, "\"level\":\"fatal\",\"message\":\"fatal ");
		put(&l, crash_signame(sig));
		put(&l, " in plugin ");
		put_val(&l, g->name ? g->name : g->file, 128);
		put(&l, " version ");
		put_val(&l, g->version, 128);
		put(&l, " generation ");
		put_u(&l, g->number, 10);
		put(&l, ", command ");
		put_val(&l, what, 128);
		put(&l, "; crash recorded: the next start refuses these bytes "
		    "and loads the kept good copy if there is one\"}\n");
	} else {
		put(&l, "\"level\":\"fatal\",\"message\":\"fatal ");
		put(&l, crash_signame(sig));
		put(&l, " outside plugin code; no crash record\"}\n");
	}
	/* What this loop had buffered first: the plugin's last lines. */
	log_flush_fatal();
	(void)!write(STDERR_FILENO, line, l.n);
	errno = saved;
	/* SA_RESETHAND put the default action back; SA_NODEFER lets it
	 * through now. */
	raise(sig);
}

/* Parse one "key value" line of a record into r. */
static void
parse_line(struct crash_record *r, const char *key, const char *val)
{
	if (strcmp(key, "signal") == 0)
		r->sig = atoi(val);
	else if (strcmp(key, "file") == 0)
		snprintf(r->file, sizeof(r->file), "%s", val);
	else if (strcmp(key, "hash") == 0)
		r->hash = strtoull(val, NULL, 16);
	else if (strcmp(key, "plugin") == 0)
		snprintf(r->plugin, sizeof(r->plugin), "%s", val);
	else if (strcmp(key, "version") == 0)
		snprintf(r->version, sizeof(r->version), "%s", val);
	else if (strcmp(key, "generation") == 0)
		r->generation = atoll(val);
	else if (strcmp(key, "command") == 0)
		snprintf(r->command, sizeof(r->command), "%s", val);
	else if (strcmp(key, "at_ms") == 0)
		r->at_ms = atoll(val);
}

/* Read a record from fd.  Returns 1 if it is whole, else 0. */
static int
read_record(int fd, struct crash_record *r)
{
	char text[4096], *line, *save = NULL;
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	int ended = 0;

	memset(r, 0, sizeof(*r));
	if (n <= (ssize_t)strlen(MAGIC) || memcmp(text, MAGIC,
	    strlen(MAGIC)) != 0)
		return 0;
	text[n] = '\0';
	for (line = strtok_r(text + strlen(MAGIC), "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		if (strcmp(line, "end") == 0) {
			ended = 1;
			break;
		}
		if (sp == NULL)
			continue;
		*sp = '\0';
		parse_line(r, line, sp + 1);
	}
	return ended && r->file[0] != '\0' && r->sig > 0;
}

int
crash_open(const char *state_dir, struct crash_record *prev, char *err,
    size_t errlen)
{
	char path[PATH_MAX];
	struct sigaction sa;
	int fd, had;

	snprintf(path, sizeof(path), "%s/crash.record", state_dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0) {
		snprintf(err, errlen, "cannot open the crash record %s: %s",
		    path, strerror(errno));
		return -1;
	}
	had = read_record(fd, prev);
	if (ftruncate(fd, 0) < 0) {
		snprintf(err, errlen, "cannot empty the crash record %s: %s",
		    path, strerror(errno));
		close(fd);
		return -1;
	}
	record_fd = fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		(void)sigaction(fatal[i], &sa, NULL);
	return had;
}
