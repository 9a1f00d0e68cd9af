/*
 * crash.h - the crash record: which plugin call took the daemon down.
 *
 * A fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) in a thread
 * that runs plugin code (core/generation.h, generation_running) writes,
 * with async-signal-safe calls only, one record into a file opened at
 * start-up in state_dir, says so on stderr, and re-raises the signal, so
 * the process still dies of it (a core dump, systemd's restart).  The
 * next start reads the record; rollback.c then refuses those bytes.
 * A crash outside plugin code writes no record.  A stack overflow is not
 * caught (no alternate signal stack).
 */
#ifndef CMDHOST_CRASH_H
#define CMDHOST_CRASH_H

#include <stdint.h>

#include <cmdhost/plugin.h>

/* What a record says. */
struct crash_record {
	int sig;
	char file[256];            /* the plugin file's name in plugin_dir */
	uint64_t hash;             /* its bytes' content hash */
	char plugin[CMDHOST_NAME_MAX + 1];
	char version[CMDHOST_NAME_MAX + 1];
	long long generation;      /* 0 during a load */
	char command[CMDHOST_NAME_MAX + 1]; /* or "(load)" */
	long long at_ms;           /* wall clock */
};

/*
 * Read the record an earlier run left in <state_dir>/crash.record (an
 * absolute path; borrowed) into *prev, empty the file, keep it open for
 * this run and install the handlers.  Returns 1 when *prev holds a
 * record, 0 when there was none, -1 with the reason in err (the file
 * cannot be opened: no record will be written; the daemon still runs).
 * Once, at start-up, before threads that run plugin code start.
 */
int crash_open(const char *state_dir, struct crash_record *prev, char *err,
    size_t errlen);

/* The name of signal sig ("SIGSEGV"), or "signal". */
const char *crash_signame(int sig);

#endif /* CMDHOST_CRASH_H */
