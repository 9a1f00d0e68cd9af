/*
 * trust.h - may the daemon load code from this file or directory?
 *
 * The rules sshd's StrictModes and sudo apply to a path: whatever code is
 * loaded from must be owned by root or the daemon's user and writable by
 * nobody else, and so must every directory above it, except that a
 * sticky directory owned by root or the daemon's user (/tmp) may be
 * writable by all.  Nothing here logs: reasons go back in the caller's
 * buffer.
 */
#ifndef CMDHOST_TRUST_H
#define CMDHOST_TRUST_H

#include <stddef.h>
#include <sys/stat.h>

/*
 * Check st, the fstat of an open plugin file or plugin directory (`what`
 * names it in the reason): owned by root or the effective uid, not
 * writable by others, writable by its group only if that is root's or
 * the effective gid.  Returns 0, or -1 with the reason in err.
 */
int trust_check(const struct stat *st, const char *what, char *err,
    size_t errlen);

/*
 * Open directory `path` (absolute, or relative to the working directory)
 * the way it is meant: walk it one component at a time from "/" with
 * O_NOFOLLOW, following a symbolic link only by hand (at most 40) and
 * only when root or the effective uid owns it, and check every directory
 * on the way with the ancestor rule above and the last one with
 * trust_check().  With `insecure` the ownership rules are skipped but
 * the walk is the same.  Returns a new O_RDONLY|O_DIRECTORY|O_CLOEXEC
 * descriptor of the directory (close it), or -1 with the reason (`what`,
 * "the plugin directory", then the directory at fault) in err.
 */
int trust_open_dir(const char *path, const char *what, int insecure,
    char *err, size_t errlen);

#endif /* CMDHOST_TRUST_H */
