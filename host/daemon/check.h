/*
 * check.h - `cmdhostd -t`: does this configuration have what a start
 * needs?  The file parsed (config_load did that), and then the socket's
 * directory, the plugin and state directories (their ownership and
 * modes) and the plugin files with the loader's checks: each problem on stderr as "FILE:LINE: key: reason" (the line
 * of the key that set it, or the file alone for a default).
 */
#ifndef CMDHOST_CHECK_H
#define CMDHOST_CHECK_H

struct config;

/*
 * Run every check on cfg (loaded from config_path, both borrowed; the
 * working directory becomes the file's, as for a start), print each
 * problem and warning to stderr and "FILE: ok" to stdout when there is
 * no problem.  Runs no plugin code and binds nothing.  Returns the exit
 * status: 0 ok (warnings allowed), 1 a problem.
 */
int check_run(const struct config *cfg, const char *config_path);

#endif /* CMDHOST_CHECK_H */
