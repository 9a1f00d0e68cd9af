/*
 * check.c - `cmdhostd -t`: what a start would trip over, found before
 * the start.  It looks at the filesystem the way start-up will (the
 * socket's directory, plugin_dir walked with core/trust.c's rules,
 * state_dir, each plugin file through loader_check_at) but never binds,
 * creates or loads anything: a plugin's code never runs here (`cmdhost
 * check FILE` loads one in full).
 */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/config.h"
#include "core/loader.h"
#include "core/trust.h"
#include "registry.h"

struct checker {
	const struct config *cfg;
	const char *path;         /* the config file, as given */
	int problems;
	int warnings;
};

/* Say what is wrong with [host] key (problem 1) or what to look at
 * (problem 0), where the file set it. */
static void __attribute__((format(printf, 4, 5)))
say(struct checker *c, int problem, const char *key, const char *fmt, ...)
{
	int line = config_key_line(c->cfg, "host", key);
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		fprintf(stderr, "%s:%d: %s%s: %s\n", c->path, line,
		    problem ? "" : "warning: ", key, msg);
	else
		fprintf(stderr, "%s: %s%s (default): %s\n", c->path,
		    problem ? "" : "warning: ", key, msg);
	if (problem)
		c->problems++;
	else
		c->warnings++;
}

/* The directory part of path into dir ("." when there is none). */
static void
dir_of(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(dir, len, ".");
	else if (slash == path)
		snprintf(dir, len, "/");
	else
		snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

/* The socket: its directory must exist and take a new file from us; a
 * file already there must be a socket (a live one is only a warning: a
 * check may run next to the daemon it is for). */
static void
check_socket(struct checker *c)
{
	const char *path = c->cfg->socket;
	char dir[PATH_MAX];
	struct stat st;

	if (getenv("LISTEN_FDS") != NULL)
		return; /* socket activation: systemd binds it */
	dir_of(path, dir, sizeof(dir));
	if (stat(dir, &st) < 0) {
		say(c, 1, "socket", "the socket's directory %s: %s%s", dir,
		    strerror(errno), errno == ENOENT ? " (under systemd, "
		    "RuntimeDirectory=cmdhost makes /run/cmdhost)" : "");
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		say(c, 1, "socket", "%s is not a directory", dir);
		return;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		say(c, 1, "socket", "cannot create the socket in %s (mode %04o, "
		    "owner uid %u; this is uid %u): %s", dir,
		    (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
		    (unsigned)geteuid(), strerror(errno));
		return;
	}
	if ((st.st_mode & 0002) && !(st.st_mode & S_ISVTX))
		say(c, 0, "socket", "%s is writable by everyone without the "
		    "sticky bit: anyone may replace the socket", dir);
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		say(c, 1, "socket", "%s exists and is not a socket; start-up "
		    "will not touch it", path);
	else if (lstat(path, &st) == 0) {
		struct sockaddr_un sa;
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa,
		    sizeof(sa)) == 0)
			say(c, 0, "socket", "a daemon is serving on %s now; "
			    "another start would refuse to take it over", path);
		if (fd >= 0)
			close(fd);
	}
}

/* plugin_dir, as start-up opens it, then each plugin file in it. */
static void
check_plugins(struct checker *c)
{
	const struct config *cfg = c->cfg;
	char err[1024];
	struct dirent *e;
	DIR *d;
	int fd, n = 0;

	if ((fd = trust_open_dir(cfg->plugin_dir, "the plugin directory",
	    cfg->allow_insecure_plugins, err, sizeof(err))) < 0) {
		say(c, 1, "plugin_dir", "%s", err);
		return;
	}
	if ((d = fdopendir(fd)) == NULL) {
		say(c, 1, "plugin_dir", "%s: %s", cfg->plugin_dir,
		    strerror(errno));
		close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (!registry_is_plugin_file(e->d_name))
			continue;
		n++;
		if (loader_check_at(dirfd(d), e->d_name, cfg, err,
		    sizeof(err)) < 0)
			say(c, 1, "plugin_dir", "plugin file %s/%s: %s",
			    cfg->plugin_dir, e->d_name, err);
	}
	closedir(d);
	if (n == 0)
		say(c, 0, "plugin_dir", "no *.so file in %s: the daemon would "
		    "start with no command", cfg->plugin_dir);
}

/* state_dir: made 0700 by start-up when missing, so its parent must take
 * it; when present, ours and closed to others (copies of plugin code and
 * stored results live there). */
static void
check_state(struct checker *c)
{
	const char *path = c->cfg->state_dir;
	char parent[PATH_MAX];
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno != ENOENT) {
			say(c, 1, "state_dir", "%s: %s", path, strerror(errno));
			return;
		}
		dir_of(path, parent, sizeof(parent));
		if (access(parent, W_OK | X_OK) < 0)
			say(c, 1, "state_dir", "%s does not exist and cannot be "
			    "made in %s: %s%s", path, parent, strerror(errno),
			    errno == ENOENT ? " (under systemd, "
			    "StateDirectory=cmdhost makes /var/lib/cmdhost)" :
			    "");
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		say(c, 1, "state_dir", "%s is not a directory", path);
		return;
	}
	if (st.st_uid != geteuid()) {
		say(c, 1, "state_dir", "%s is owned by uid %u, not by this "
		    "daemon's uid %u", path, (unsigned)st.st_uid,
		    (unsigned)geteuid());
		return;
	}
	if (st.st_mode & 0022)
		say(c, 1, "state_dir", "%s is writable by %s (mode %04o): "
		    "private copies of plugin code are loaded from it; chmod "
		    "0700", path, st.st_mode & 0002 ? "everyone" : "its group",
		    (unsigned)(st.st_mode & 07777));
	else if (access(path, W_OK | X_OK) < 0)
		say(c, 1, "state_dir", "%s: %s", path, strerror(errno));
}

int
check_run(const struct config *cfg, const char *config_path)
{
	struct checker c = { cfg, config_path, 0, 0 };
	char *copy = strdup(config_path);

	/* Relative paths are relative to the file's directory, as in a
	 * start. */
	if (copy == NULL || chdir(dirname(copy)) < 0) {
		fprintf(stderr, "%s: cannot enter its directory: %s\n",
		    config_path, strerror(errno));
		free(copy);
		return 1;
	}
	free(copy);
	check_socket(&c);
	check_plugins(&c);
	check_state(&c);
	if (c.problems > 0) {
		fprintf(stderr, "%s: %d problem(s); cmdhostd would not start\n",
		    config_path, c.problems);
		return 1;
	}
	printf("%s: ok%s\n", config_path, c.warnings ? " (with warnings)" :
	    "");
	return 0;
}
