/*
 * proc_spawn.c - start, set up, probe and end cmdhost-worker processes.
 *
 * A worker is started with posix_spawn in a process group of its own,
 * with its socket on fd 3 and the sealed private copy on fd 4; it is ready
 * when its READY message comes.  Ending one always kills its whole
 * process group (what the plugin forked goes too) before it is reaped.
 * This file never logs: reasons go back in the caller's buffer.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/generation.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/loader.h"

extern char **environ;

/* ------------------------------------------------------------ settings */

static int
int_key(const struct config *cfg, const char *name, const char *key,
    long lo, long hi, long *v, char *err, size_t errlen)
{
	const char *s = config_plugin_value(cfg, name, key);
	char *end;
	long n;

	if (s == NULL)
		return 0;
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || n < lo || n > hi) {
		snprintf(err, errlen, "[plugin:%s] %s: '%s' is not an integer "
		    "from %ld to %ld", name, key, s, lo, hi);
		return -1;
	}
	*v = n;
	return 0;
}

int
proc_settings(const struct config *cfg, const char *name,
    struct proc_limits *lim, char *err, size_t errlen)
{
	const char *iso = config_plugin_value(cfg, name, "isolation");
	long workers = cfg->plugin_workers, inflight = cfg->worker_inflight;
	long pipeline = cfg->worker_pipeline;
	long maxreq = cfg->max_requests, nofile = cfg->worker_nofile;
	long mem = (long)cfg->worker_memory_bytes;

	lim->isolation = cfg->isolation;
	if (iso != NULL && (lim->isolation = config_isolation_parse(iso)) < 0) {
		snprintf(err, errlen, "[plugin:%s] isolation: '%s' is not "
		    "inprocess or process", name, iso);
		return -1;
	}
	if (int_key(cfg, name, "workers", 1, 256, &workers, err, errlen) < 0 ||
	    int_key(cfg, name, "worker_inflight", 1, 64, &inflight, err,
	    errlen) < 0 ||
	    int_key(cfg, name, "worker_pipeline", 1, 64, &pipeline, err,
	    errlen) < 0 ||
	    int_key(cfg, name, "max_requests", 0, 1000000000, &maxreq, err,
	    errlen) < 0 ||
	    int_key(cfg, name, "worker_memory_bytes", 0, LONG_MAX, &mem, err,
	    errlen) < 0 ||
	    int_key(cfg, name, "worker_nofile", 16, 1048576, &nofile, err,
	    errlen) < 0)
		return -1;
	lim->workers = (int)workers;
	lim->inflight = (int)inflight;
	lim->depth = inflight == 1 ? (int)pipeline : (int)inflight;
	lim->max_requests = maxreq;
	lim->memory_bytes = (size_t)mem;
	lim->nofile = nofile;
	return 0;
}

/* ------------------------------------------------------------ the program */

static pthread_once_t path_once = PTHREAD_ONCE_INIT;
static char found_path[PATH_MAX];

static void
find_worker(void)
{
	char self[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *tries[] = { "%s/cmdhost-worker",
	    "%s/../lib/cmdhost/cmdhost-worker" };

	if (n <= 0)
		return;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return;
	*slash = '\0';
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		char p[PATH_MAX + 64];

		snprintf(p, sizeof(p), tries[i], self);
		if (access(p, X_OK) == 0 && strlen(p) < sizeof(found_path)) {
			snprintf(found_path, sizeof(found_path), "%s", p);
			return;
		}
	}
}

static const char *
worker_path(const struct config *cfg)
{
	if (cfg->worker_path != NULL && cfg->worker_path[0] != '\0')
		return cfg->worker_path;
	pthread_once(&path_once, find_worker);
	return found_path[0] ? found_path : NULL;
}

int
proc_worker_found(const struct config *cfg)
{
	const char *p = worker_path(cfg);

	return p != NULL && access(p, X_OK) == 0;
}

/* ------------------------------------------------------------ status */

const char *
proc_status_text(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status)) {
		const char *abbr = sigabbrev_np(WTERMSIG(status));

		snprintf(buf, len, "killed by signal %d (SIG%s)",
		    WTERMSIG(status), abbr ? abbr : "?");
	} else if (WIFEXITED(status)) {
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
	} else {
		snprintf(buf, len, "ended (wait status 0x%x)", status);
	}
	return buf;
}

/* ------------------------------------------------------------ start, end */

static int
pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd >= 0)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
#else
	(void)pid;
	return -1;
#endif
}

/* Wait until fd is readable or deadline_ns.  Returns 1, 0 (timeout) or
 * -1. */
static int
wait_readable(int fd, int64_t deadline_ns)
{
	for (;;) {
		int64_t left = deadline_ns - clock_mono_ns();
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int rc;

		if (left <= 0)
			return 0;
		rc = poll(&pf, 1, (int)((left + 999999) / 1000000));
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

int
proc_end(struct proc_child *child, int quit, int64_t deadline_ns)
{
	int status = -1;

	if (child->pid <= 0)
		return -1;
	if (quit && child->sock >= 0) {
		struct ipc_msg m;

		ipc_msg_init(&m, IPC_QUIT);
		ipc_send(child->sock, &m, MSG_DONTWAIT);
		ipc_msg_fini(&m);
		if (child->pidfd >= 0) {
			wait_readable(child->pidfd, deadline_ns);
		} else {
			/* No pidfd: the socket ends when the process does. */
			char b[64];

			while (wait_readable(child->sock, deadline_ns) == 1 &&
			    recv(child->sock, b, sizeof(b), MSG_DONTWAIT) > 0)
				;
		}
	} else if (deadline_ns > 0 && child->pidfd >= 0)
		wait_readable(child->pidfd, deadline_ns); /* ending by itself */
	/* Whatever it forked goes with it; a zombie leader keeps the group's
	 * id from being reused until it is reaped below. */
	kill(-child->pid, SIGKILL);
	while (waitpid(child->pid, &status, 0) < 0 && errno == EINTR)
		;
	if (child->pidfd >= 0)
		close(child->pidfd);
	if (child->sock >= 0)
		close(child->sock);
	child->pid = 0;
	child->pidfd = child->sock = -1;
	return status;
}

/* The setup message of a worker. */
static void
put_setup(struct ipc_msg *m, const struct config *cfg, const char *file,
    const struct proc_limits *lim)
{
	ipc_msg_init(m, IPC_SETUP);
	ipc_put_cstr(m, file);
	ipc_put_u32(m, lim ? (uint32_t)lim->inflight : 1);
	ipc_put_i64(m, lim ? (int64_t)lim->memory_bytes : 0);
	ipc_put_i64(m, lim ? lim->nofile : cfg->worker_nofile);
	ipc_put_i64(m, (int64_t)getpid());
	ipc_put_u32(m, (uint32_t)cfg->log_level);
	ipc_put_u32(m, (uint32_t)cfg->log_format);
	ipc_put_i64(m, (int64_t)cfg->max_plugin_bytes);
	ipc_put_cstr(m, cfg->service);
	ipc_put_u32(m, (uint32_t)cfg->n_plugin_kvs);
	for (size_t i = 0; i < cfg->n_plugin_kvs; i++) {
		ipc_put_cstr(m, cfg->plugin_kvs[i].plugin);
		ipc_put_cstr(m, cfg->plugin_kvs[i].key);
		ipc_put_cstr(m, cfg->plugin_kvs[i].value);
	}
}

/* posix_spawn the worker program with sock and copy_fd as its fds 3 and
 * 4.  Returns the pid, or a negative errno. */
static pid_t
start(const char *path, int probe, int sock, int copy_fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	char *argv[3];
	pid_t pid;
	int rc, hi_sock, hi_copy;

	/* Above 4, so that the dup2s below cannot overwrite each other. */
	if ((hi_sock = fcntl(sock, F_DUPFD_CLOEXEC, 10)) < 0)
		return -errno;
	if ((hi_copy = fcntl(copy_fd, F_DUPFD_CLOEXEC, 10)) < 0) {
		rc = errno;
		close(hi_sock);
		return -rc;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, hi_sock, IPC_FD_SOCK);
	posix_spawn_file_actions_adddup2(&fa, hi_copy, IPC_FD_PLUGIN);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGCHLD);
	sigaddset(&dfl, SIGUSR1);
	sigaddset(&dfl, SIGUSR2);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	argv[0] = (char *)"cmdhost-worker";
	argv[1] = probe ? (char *)"--probe" : NULL;
	argv[2] = NULL;
	rc = posix_spawn(&pid, path, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(hi_sock);
	close(hi_copy);
	return rc != 0 ? -rc : pid;
}

/* "state R", or "state S in do_epoll_wait": what /proc says pid is
 * doing, into buf (never fails: "state ?" when /proc cannot tell). */
static void
task_state(pid_t pid, char *buf, size_t len)
{
	char path[64], stat[512], wchan[64] = "", *p;
	char state = '?';
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		if ((n = read(fd, stat, sizeof(stat) - 1)) > 0) {
			stat[n] = '\0';
			if ((p = strrchr(stat, ')')) != NULL && p[1] == ' ')
				state = p[2];
		}
		close(fd);
	}
	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		if ((n = read(fd, wchan, sizeof(wchan) - 1)) > 0)
			wchan[n] = '\0';
		else
			wchan[0] = '\0';
		close(fd);
	}
	if (wchan[0] != '\0' && strcmp(wchan, "0") != 0)
		snprintf(buf, len, "pid %d, state %c in %s", (int)pid, state,
		    wchan);
	else
		snprintf(buf, len, "pid %d, state %c", (int)pid, state);
}

int
proc_spawn(const struct config *cfg, int copy_fd, const char *file,
    const struct proc_limits *lim, int probe, int64_t deadline_ns,
    struct proc_child *child, struct generation **out, char *err,
    size_t errlen)
{
	const char *path = worker_path(cfg);
	struct ipc_msg m;
	struct ipc_rd rd;
	char *buf = NULL, why[96];
	size_t cap = 0, len = 0;
	int sv[2], rc, st;
	pid_t pid;

	child->pid = 0;
	child->pidfd = child->sock = -1;
	if (out != NULL)
		*out = NULL;
	if (path == NULL) {
		snprintf(err, errlen, "no cmdhost-worker program next to "
		    "cmdhostd (set [host] worker_path)");
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "cannot make a worker socket: %s",
		    strerror(errno));
		return -1;
	}
	if ((pid = start(path, probe, sv[1], copy_fd)) < 0) {
		snprintf(err, errlen, "cannot start %s: %s", path,
		    strerror((int)-pid));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	close(sv[1]);
	child->pid = pid;
	child->sock = sv[0];
	child->pidfd = pidfd_of(pid);
	put_setup(&m, cfg, file, lim);
	rc = ipc_send(child->sock, &m, 0);
	ipc_msg_fini(&m);
	if (rc < 0) {
		st = proc_end(child, 0, 0);
		snprintf(err, errlen, "the worker %s before its setup", st < 0 ?
		    "went" : proc_status_text(st, why, sizeof(why)));
		return -1;
	}
	rc = wait_readable(child->sock, deadline_ns);
	if (rc == 1)
		rc = ipc_recv(child->sock, MSG_DONTWAIT, &buf, &cap, &len);
	else if (rc == 0)
		rc = -ETIMEDOUT;
	if (rc == -ETIMEDOUT) {
		char where[128];

		/* Where it was, for whoever reads why: the kernel's view. */
		task_state(child->pid, where, sizeof(where));
		proc_end(child, 0, 0);
		snprintf(err, errlen, "did not finish loading in time (load_"
		    "timeout_ms %d): a constructor or the registration spins "
		    "or hangs; its worker (%s) was killed",
		    cfg->load_timeout_ms, where);
		free(buf);
		return -1;
	}
	if (rc <= 0) {
		st = proc_end(child, 0, 0);
		snprintf(err, errlen, "its worker %s while loading it "
		    "(constructors, descriptor or registration)", st < 0 ?
		    "died" : proc_status_text(st, why, sizeof(why)));
		free(buf);
		return -1;
	}
	if (ipc_rd_init(&rd, buf, len) != IPC_READY) {
		proc_end(child, 0, 0);
		snprintf(err, errlen, "the worker sent no READY message");
		free(buf);
		return -1;
	}
	if (out != NULL) {
		rc = ipc_get_ready(&rd, file, NULL, out, err, errlen);
	} else {
		rc = ipc_get_u32(&rd) ? 0 : -1;
		if (rc < 0) {
			const char *s = ipc_get_str(&rd, NULL);

			snprintf(err, errlen, "%s", s ? s : "load failed");
		}
	}
	free(buf);
	if (rc < 0) {
		proc_end(child, 0, 0);
		return -1;
	}
	return 0;
}

int
proc_probe(const struct config *cfg, int copy_fd, const char *file,
    int64_t deadline_ns, struct generation **out, char *err, size_t errlen)
{
	struct proc_child child;
	struct log_ctx lc = LOG_CTX_INIT;
	char reason[900];
	int64_t t0 = clock_mono_ns();

	if (proc_spawn(cfg, copy_fd, file, NULL, 1, deadline_ns, &child, out,
	    reason, sizeof(reason)) < 0) {
		snprintf(err, errlen, "refused by the load probe: %s", reason);
		return -1;
	}
	/* The probe exits without fini: its state goes with the process. */
	proc_end(&child, 1, clock_mono_ns() + 1000000000LL);
	/* What the probe cost this load (scripts/bench-iso.sh reads it). */
	lc.file = file;
	lc.plugin = (*out)->name;
	lc.duration_ms = (double)(clock_mono_ns() - t0) / 1e6;
	log_emit(LOGL_DEBUG, &lc, "plugin file probed");
	return 0;
}

/* True if some plugin may run isolated: [host] isolation, or a
 * [plugin:NAME] isolation = process. */
static int
may_isolate(const struct config *cfg)
{
	if (cfg->isolation == ISOLATION_PROCESS)
		return 1;
	for (size_t i = 0; i < cfg->n_plugin_kvs; i++)
		if (strcmp(cfg->plugin_kvs[i].key, "isolation") == 0 &&
		    strcmp(cfg->plugin_kvs[i].value, "process") == 0)
			return 1;
	return 0;
}

int
proc_load(const struct config *cfg, int fd, const char *file,
    const char *copy_dir, int64_t deadline_ns, struct generation **out,
    char **name_out, char *err, size_t errlen)
{
	struct generation *g = NULL;
	struct proc_limits lim;
	int64_t now = clock_mono_ns();
	uint64_t hash;
	int copy;

	*out = NULL;
	if (name_out != NULL)
		*name_out = NULL;
	if ((!cfg->probe && !may_isolate(cfg)) || (!may_isolate(cfg) &&
	    !proc_worker_found(cfg)))
		return loader_load_fd(cfg, fd, file, copy_dir, out, name_out,
		    err, errlen);
	if ((copy = ipc_copy_fd(fd, cfg->max_plugin_bytes, &hash, err,
	    errlen)) < 0)
		return -1;
	/* Half the time for the probe, the rest for the workers. */
	if (proc_probe(cfg, copy, file, now + (deadline_ns - now) / 2, &g, err,
	    errlen) < 0) {
		close(copy);
		return -1;
	}
	if (name_out != NULL)
		*name_out = strdup(g->name);
	g->content_hash = hash;
	if (proc_settings(cfg, g->name, &lim, err, errlen) < 0) {
		close(copy);
		loader_unload(g);
		return -1;
	}
	if (lim.isolation != ISOLATION_PROCESS) {
		close(copy);
		loader_unload(g);
		return loader_load_fd(cfg, fd, file, copy_dir, out, NULL, err,
		    errlen);
	}
	for (size_t i = 0; i < g->n_commands; i++)
		g->commands[i].execute = proc_stub_execute;
	if (proc_pool_start(cfg, g, copy, &lim, deadline_ns, err, errlen) < 0) {
		loader_unload(g);
		return -1;
	}
	*out = g;
	return 0;
}
