/*
 * harness_priv.h - what the parts of the harness (harness_*.c) share with
 * each other and not with the tests: tests include harness.h alone.
 */
#ifndef CMDHOST_HARNESS_PRIV_H
#define CMDHOST_HARNESS_PRIV_H

#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

/* harness_files.c */

/* buf = a "/" b.  Returns 0, or -1 if it does not fit. */
int harness_path_join(char *buf, size_t size, const char *a, const char *b);

/* The whole of file `path` as a new string (free it), or NULL. */
char *harness_read_text(const char *path);

/* Write `text` to `path` (created or truncated).  Returns 0 or -1. */
int harness_write_text(const char *path, const char *text);

/* Copy file `from` to `to` (created or truncated, mode 0755).  Returns 0
 * or -1. */
int harness_copy_file(const char *from, const char *to);

/* harness_proc.c */

/* A wait() status as daemon_stop() gives it: the exit status, 128+N for
 * signal N, else -1. */
int harness_decode_status(int ws);

/* Wait up to timeout_ms for child pid to exit.  Returns its status as
 * harness_decode_status() gives it, or -1 if it still runs. */
int harness_wait_pid(pid_t pid, int timeout_ms);

/* Append up to what one read() gives from fd to *buf (kept
 * NUL-terminated).  Returns bytes read, 0 on EOF, -1 on error. */
ssize_t harness_slurp(int fd, char **buf, size_t *len);

/* harness_client.c */

/* connect() to the Unix socket at `sock`, no timeouts set.  Returns the fd
 * or -1 (errno set). */
int harness_try_connect(const char *sock);

#endif /* CMDHOST_HARNESS_PRIV_H */
