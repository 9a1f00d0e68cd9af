/*
 * main.c - cmdhostd: flags, start-up, signals, shutdown.
 *
 * main() reads the flags and the configuration, then start() brings the
 * daemon up (logging, working directory, the socket claimed -- bound or
 * taken from systemd -- before any plugin runs, plugins, dispatch and its
 * pool, listening and the event loops, NATS: the socket listens only when
 * plugins are loaded, so a client that can connect can be served; then
 * systemd hears READY=1), serve() waits for signals (SIGHUP rescans
 * plugins, SIGTERM/SIGINT end it), and stop() takes it down in the
 * reverse order.  check.c is `cmdhostd -t`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmdhost/plugin.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/thread.h"
#include "core/trust.h"
#include "core/version.h"
#include "check.h"
#include "crash.h"
#include "deliver.h"
#include "dispatch.h"
#include "http.h"
#include "listener.h"
#include "nats_host.h"
#include "registry.h"
#include "sdnotify.h"
#include "rollback.h"
#include "server.h"
#include "watcher.h"
#include "workflow.h"

#define CMDHOSTD_VERSION CMDHOST_VERSION
#define DEFAULT_CONFIG "conf/cmdhost.ini"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cmdhostd [-t] [-c FILE] [-s SOCKET] [-p PLUGIN_DIR]\n"
	    "  -c FILE        configuration file (default %s)\n"
	    "  -s SOCKET      listen on SOCKET instead of [host] socket\n"
	    "  -p PLUGIN_DIR  load plugins from PLUGIN_DIR instead of "
	    "[host] plugin_dir\n"
	    "  -t             check the configuration and exit\n"
	    "  -V             print the version and exit\n", DEFAULT_CONFIG);
}

/* Make a path given on the command line absolute (relative to the
 * directory cmdhostd was started in).  Returns 0 or -1. */
static int
absolutize(const char *arg, char **out)
{
	char cwd[PATH_MAX], buf[PATH_MAX * 2];

	if (arg[0] == '/')
		return config_set_string(out, arg) < 0 ? -1 : 0;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	snprintf(buf, sizeof(buf), "%s/%s", cwd, arg);
	return config_set_string(out, buf) < 0 ? -1 : 0;
}

/* What start() brings up and stop() takes down. */
struct daemon {
	struct config cfg;
	struct daemon_stats stats;
	struct registry *reg;
	struct dispatch *disp;
	struct server *srv;
	struct watcher *watcher;
	struct nats_host *nats;
	struct listener lst;      /* until server_new takes it over */
	struct rollback *rb;
	struct deliverer *dlv;       /* events out: routes, NATS, relay */
	struct wf_engine *wf;      /* NULL without workflow_dir */
	struct http *http;         /* NULL without http_listen */
	sigset_t sigs;
	char copy_dir[PATH_MAX];
	char state_dir[PATH_MAX];  /* absolute */
};

/*
 * Make the private copy directory <state_dir>/copies (and state_dir) if
 * missing, owner-only, checked like plugin_dir (core/trust.h: a copy is
 * what dlopen maps), and empty it of what an earlier run left.  Returns
 * 0, or -1 with the reason in err.
 */
static int
make_copy_dir(struct daemon *dm, char *err, size_t errlen)
{
	const struct config *cfg = &dm->cfg;
	char cwd[PATH_MAX];
	struct stat st;
	struct dirent *e;
	DIR *d;
	int fd;

	char path[PATH_MAX * 2 + 16];

	if (cfg->state_dir[0] == '/')
		snprintf(path, sizeof(path), "%s/copies", cfg->state_dir);
	else if (getcwd(cwd, sizeof(cwd)) != NULL)
		snprintf(path, sizeof(path), "%s/%s/copies", cwd,
		    cfg->state_dir);
	else
		goto sys;
	if (strlen(path) >= sizeof(dm->copy_dir)) {
		errno = ENAMETOOLONG;
		goto sys;
	}
	memcpy(dm->copy_dir, path, strlen(path) + 1);
	memcpy(dm->state_dir, path, strlen(path) - strlen("/copies"));
	dm->state_dir[strlen(path) - strlen("/copies")] = '\0';
	if ((mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(dm->copy_dir, 0700) < 0 && errno != EEXIST))
		goto sys;
	/* Ours but too open (made by hand): owner-only again. */
	if (lstat(dm->copy_dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	    st.st_uid == geteuid() && (st.st_mode & 07777) != 0700)
		(void)chmod(dm->copy_dir, 0700);
	if ((fd = trust_open_dir(dm->copy_dir, "the private copy directory",
	    cfg->allow_insecure_plugins, err, errlen)) < 0)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		goto sys;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, e->d_name, 0) < 0 && errno == EISDIR)
			(void)unlinkat(fd, e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
	return 0;
sys:
	snprintf(err, errlen, "cannot make the private copy directory "
	    "%.900s: %s", dm->copy_dir[0] ? dm->copy_dir : cfg->state_dir,
	    strerror(errno));
	return -1;
}

/*
 * The crash record and the rollback stores, before the first scan: the
 * bytes an earlier run died in are refused from the start.  Returns 0,
 * or -1 after logging why.
 */
static int
start_rollback(struct daemon *dm)
{
	struct crash_record cr;
	char err[1024];
	int rc;

	if ((dm->rb = rollback_new(&dm->cfg, dm->state_dir, err,
	    sizeof(err))) == NULL) {
		log_errorx("%s", err);
		return -1;
	}
	registry_set_rollback(dm->reg, dm->rb);
	if ((rc = crash_open(dm->state_dir, &cr, err, sizeof(err))) < 0) {
		log_warnx("%s; a crash in a plugin will not be recorded", err);
	} else if (rc == 1) {
		struct log_ctx lc = LOG_CTX_INIT;
		char why[700], stamp[40], hex[17];

		log_timestamp(stamp, sizeof(stamp), cr.at_ms);
		snprintf(why, sizeof(why), "the daemon died of %s (signal %d) "
		    "in %s of plugin %s version %s generation %lld (hash %s) "
		    "at %s", crash_signame(cr.sig), cr.sig, cr.command,
		    cr.plugin[0] ? cr.plugin : cr.file, cr.version,
		    cr.generation, rollback_hash_text(cr.hash, hex), stamp);
		rollback_refuse(dm->rb, cr.file, cr.hash, cr.version,
		    cr.generation, why);
		lc.file = cr.file;
		lc.plugin = cr.plugin[0] ? cr.plugin : NULL;
		lc.version = cr.version;
		lc.generation = cr.generation > 0 ? cr.generation : -1;
		lc.command = cr.command;
		lc.reason = why;
		log_emit(LOGL_ERROR, &lc, "crash record: %s; the bytes of %s "
		    "are refused until they change, and its kept good copy is "
		    "loaded instead if there is one", why, cr.file);
	}
	return 0;
}

/* Set at SIGTERM: a rescan that ends after it says no READY=1. */
static atomic_int stopping;

/* Tell systemd the counts (with READY=1 when ready is set). */
static void
notify_status(struct registry *reg, int ready)
{
	int plugins, commands, failed;

	registry_counts(reg, &plugins, &commands, &failed);
	(void)sdnotify_sendf("%sSTATUS=%d plugins, %d commands, %d refused",
	    ready ? "READY=1\n" : "", plugins, commands, failed);
}

/* A SIGHUP's rescan is done (on the registry's scan thread). */
static void
hup_done(void *arg, struct json_object *report, int failures)
{
	struct daemon *dm = arg;

	if (failures > 0)
		log_warnx("SIGHUP rescan: %d plugin file(s) refused; see the "
		    "errors above and host.list", failures);
	json_object_put(report);
	if (!atomic_load(&stopping))
		notify_status(dm->reg, 1);
}

/* The systemd watchdog's question (sdnotify.h). */
static int
daemon_alive(void *arg, char *why, size_t whylen)
{
	return server_alive(arg, why, whylen);
}

/*
 * The last word on shutdown time: armed at SIGTERM, it ends the process
 * with status 1 when shutdown_timeout_ms plus (a little under) a second
 * have passed, whatever is still stuck.  Every wait of the shutdown has
 * a limit of its own; this is for the one nobody thought of.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	int64_t deadline_ns;
	int done, started;
} watchdog = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *
watchdog_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&watchdog.lock);
	while (!watchdog.done && clock_mono_ns() < watchdog.deadline_ns) {
		struct timespec ts = clock_mono_ts(watchdog.deadline_ns);

		pthread_cond_timedwait(&watchdog.cond, &watchdog.lock, &ts);
	}
	if (!watchdog.done) {
		log_errorx("shutdown is still not done shutdown_timeout_ms "
		    "plus a second after SIGTERM: something is stuck; exiting "
		    "with status 1");
		_exit(1);
	}
	pthread_mutex_unlock(&watchdog.lock);
	return NULL;
}

static void
watchdog_start(int64_t deadline_ns)
{
	thread_cond_init(&watchdog.cond);
	watchdog.deadline_ns = deadline_ns;
	watchdog.started = pthread_create(&watchdog.thread, NULL,
	    watchdog_main, NULL) == 0;
}

static void
watchdog_stop(void)
{
	if (!watchdog.started)
		return;
	pthread_mutex_lock(&watchdog.lock);
	watchdog.done = 1;
	pthread_cond_signal(&watchdog.cond);
	pthread_mutex_unlock(&watchdog.lock);
	pthread_join(watchdog.thread, NULL);
	watchdog.started = 0;
}

/* Descriptors kept for what is not a connection: the listener, loops'
 * epoll and event fds, the log, the watcher, plugin_dir, databases,
 * worker sockets. */
#define NOFILE_MARGIN 128

/*
 * Make room for max_connections connections in the open-file limit
 * (cfg is the daemon's, and may be changed).  The admin reserve is
 * counted against max_connections: were the descriptors to run out
 * first, every new connection (root's too) would get the out-of-files
 * 503 while one uid held all it may.  So the soft limit is raised as far
 * as the hard one allows; if that is still short, max_connections is
 * lowered to what fits, and said.
 */
static void
fit_nofile(struct config *cfg)
{
	rlim_t need = (rlim_t)cfg->max_connections + NOFILE_MARGIN, fit;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ?
	    need : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || getrlimit(RLIMIT_NOFILE,
	    &rl) < 0 || rl.rlim_cur >= need)
		return;
	fit = rl.rlim_cur > 2 * NOFILE_MARGIN ? rl.rlim_cur - NOFILE_MARGIN :
	    rl.rlim_cur / 2;
	if (fit < 1)
		fit = 1;
	log_warnx("the open-file limit (RLIMIT_NOFILE) is %llu, short of "
	    "max_connections (%d) + %d: max_connections is %llu instead, so "
	    "that its last admin_connections places stay free for admins "
	    "(raise LimitNOFILE= or ulimit -Hn)",
	    (unsigned long long)rl.rlim_cur, cfg->max_connections,
	    NOFILE_MARGIN, (unsigned long long)fit);
	cfg->max_connections = (int)fit;
}

/*
 * Bring the daemon up from its loaded configuration.  Returns 0, or -1
 * after logging why (what was started is left for stop_failed()).
 */
static int
start(struct daemon *dm, const char *config_path)
{
	struct config *cfg = &dm->cfg;
	char err[1024], *dir_copy;
	int failures, rc;

	log_init(cfg->log_level, cfg->log_format, cfg->service);
	log_limit_init(cfg->client_log_rate, cfg->client_log_burst);
	fit_nofile(cfg);

	/* Relative paths in the file are relative to the file's directory. */
	if ((dir_copy = strdup(config_path)) == NULL ||
	    chdir(dirname(dir_copy)) < 0) {
		fprintf(stderr, "cmdhostd: cannot enter the directory of %s: "
		    "%s\n", config_path, strerror(errno));
		free(dir_copy);
		return -1;
	}
	free(dir_copy);

	/* Signals are taken by the main thread alone, with sigwaitinfo. */
	sigemptyset(&dm->sigs);
	sigaddset(&dm->sigs, SIGTERM);
	sigaddset(&dm->sigs, SIGINT);
	sigaddset(&dm->sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &dm->sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	dm->stats.started_ms = clock_wall_ms();

	/* The socket first: a socket directory that is missing or not ours
	 * stops start-up before any plugin runs (and makes its files). */
	if (listener_open(&dm->lst, cfg->socket, cfg->socket_mode, err,
	    sizeof(err)) < 0) {
		log_errorx("%s", err);
		return -1;
	}
	if (dm->lst.activated)
		log_info("socket activation: serving on the socket systemd "
		    "passed (%s)%s", dm->lst.path[0] ? dm->lst.path :
		    "abstract", strcmp(dm->lst.path, cfg->socket) == 0 ? "" :
		    "; it is not [host] socket, which clients look for");

	/* The HTTP endpoint too: a bad address or a port in use stops
	 * start-up before any plugin runs.  It answers 503 until the loops
	 * are up (http_set_admin) and /readyz 200 only once ready. */
	if (cfg->http_listen[0] != '\0') {
		if ((dm->http = http_start(cfg, err, sizeof(err))) == NULL) {
			log_errorx("%s", err);
			return -1;
		}
		log_info("http: serving /metrics, /healthz, /readyz and / on "
		    "%s%s%s", strchr(http_address(dm->http), '/') ? "" :
		    "http://", http_address(dm->http),
		    strchr(http_address(dm->http), '/') ? "" : "/");
	}

	if (make_copy_dir(dm, err, sizeof(err)) < 0) {
		log_errorx("%s", err);
		return -1;
	}
	if ((dm->reg = registry_new(cfg, cfg->plugin_dir, dm->copy_dir)) ==
	    NULL) {
		log_error("registry");
		return -1;
	}
	/* plugin_dir and every directory above it are checked once here,
	 * and opened for good: a refusal stops start-up. */
	if (registry_open(dm->reg, err, sizeof(err)) < 0) {
		log_errorx("%s", err);
		return -1;
	}
	if (start_rollback(dm) < 0)
		return -1;
	/* Watch before the first scan: a file that arrives meanwhile is seen
	 * by one or the other (a second look at an unchanged file is free). */
	if (cfg->watch && (dm->watcher = watcher_start(cfg->plugin_dir,
	    cfg->reload_debounce_ms, dm->reg, err, sizeof(err))) == NULL) {
		log_errorx("%s", err);
		return -1;
	}
	failures = registry_scan(dm->reg, NULL);
	if (failures > 0)
		log_warnx("%d plugin file(s) refused; see the errors above and "
		    "host.list", failures);
	if ((rc = rollback_start(dm->rb, dm->reg)) < 0) {
		errno = -rc;
		log_error("cannot start the rollback thread");
		return -1;
	}
	if ((dm->disp = dispatch_new(cfg, dm->reg, &dm->stats, err,
	    sizeof(err))) == NULL) {
		log_errorx("%s", err);
		return -1;
	}
	/* NATS only when configured: then the module is loaded, else
	 * libnats is never mapped.  Before the workflows, so that a resumed
	 * execution's step that only another daemon serves finds it. */
	if (cfg->nats.enabled && (dm->nats = nats_host_start(cfg, dm->reg,
	    dm->disp, &dm->stats, CMDHOSTD_VERSION, err, sizeof(err))) ==
	    NULL) {
		log_errorx("%s", err);
		return -1;
	}
	/* Workflows: definitions published, unfinished executions resumed
	 * (their steps go through dispatch, which is up, and NATS for the
	 * commands only other daemons serve). */
	if (cfg->workflow_dir != NULL && cfg->workflow_dir[0] != '\0') {
		if ((dm->wf = wf_engine_new(cfg, dm->reg, dm->disp, err,
		    sizeof(err))) == NULL) {
			log_errorx("%s", err);
			return -1;
		}
		wf_engine_set_nats(dm->wf, dm->nats);
		if (wf_engine_start(dm->wf, err, sizeof(err)) < 0) {
			log_errorx("%s", err);
			return -1;
		}
	}
	if ((dm->srv = server_new(cfg, dm->reg, dm->disp, &dm->stats,
	    &dm->lst, err, sizeof(err))) == NULL) {
		log_errorx("%s", err);
		return -1;
	}
	server_set_workflows(dm->srv, dm->wf);
	if ((rc = server_start(dm->srv)) < 0) {
		errno = -rc;
		log_error("cannot start the event loops");
		return -1;
	}
	http_set_admin(dm->http, server_admin(dm->srv));
	if ((dm->dlv = deliver_start(cfg, dm->reg, dm->disp, dm->nats, err,
	    sizeof(err))) == NULL) {
		log_errorx("%s", err);
		return -1;
	}
	{
		int plugins, commands, failed;

		registry_counts(dm->reg, &plugins, &commands, &failed);
		log_info("cmdhostd %s ready on %s: %d plugins, %d commands, "
		    "%d refused; %s %s", CMDHOSTD_VERSION, dm->lst.activated &&
		    dm->lst.path[0] ? dm->lst.path : cfg->socket,
		    plugins, commands, failed, cfg->watch ? "watching" :
		    "not watching", cfg->plugin_dir);
	}
	/* The socket listens and the plugins are loaded. */
	notify_status(dm->reg, 1);
	http_set_state(dm->http, HTTP_READY);
	if ((rc = sdnotify_watchdog_start(daemon_alive, dm->srv)) < 0) {
		errno = -rc;
		log_error("cannot start the systemd watchdog thread");
		return -1;
	}
	return 0;
}

/* Wait for signals until SIGTERM or SIGINT. */
static void
serve(struct daemon *dm)
{
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&dm->sigs, &si);

		if (sig < 0)
			continue;
		if (sig == SIGHUP) {
			/* On the scan thread: this thread stays free for
			 * SIGTERM whatever the rescan meets. */
			log_info("SIGHUP: rescanning %s", dm->cfg.plugin_dir);
			(void)sdnotify_reloading();
			if (registry_scan_async(dm->reg, hup_done, dm) < 0) {
				log_errorx("SIGHUP: out of memory; not "
				    "rescanned");
				notify_status(dm->reg, 1);
			}
			wf_engine_rescan(dm->wf);
			continue;
		}
		atomic_store(&stopping, 1);
		(void)sdnotify_send("STOPPING=1");
		http_set_state(dm->http, HTTP_STOPPING);
		log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" :
		    "SIGINT");
		return;
	}
}

/* Leave now with status 1, after logging `why` (NULL: logged already):
 * plugin code that was given up on may still run, so nothing it could
 * touch is freed or finalized. */
static void
abandon_exit(struct daemon *dm, const char *why)
{
	if (why != NULL)
		log_errorx("%s; exiting with status 1", why);
	if (dm->srv != NULL)
		server_close(dm->srv);
	log_flush();
	_exit(1);
}

/* Free what start() made, in reverse order, after a clean stop() or a
 * failed start().  deadline_ns (0: none) bounds the plugins' finis; when
 * something had to be abandoned (a fini or a load that never returned,
 * a thread that did not end), logs it and exits with status 1 without
 * freeing what plugin code may still use. */
static void
release(struct daemon *dm, int64_t deadline_ns)
{
	long loads, finis;

	sdnotify_watchdog_stop();
	/* Before the server it reads from goes. */
	http_stop(dm->http);
	dm->http = NULL;
	listener_close(&dm->lst);
	if (watcher_stop_until(dm->watcher, deadline_ns) < 0)
		abandon_exit(dm, "the watcher's thread did not end");
	dm->watcher = NULL;
	deliver_stop(dm->dlv);
	wf_engine_hold(dm->wf);
	nats_host_stop(dm->nats, clock_mono_ns());
	wf_engine_quiesce(dm->wf, clock_mono_ns());
	if (dm->srv != NULL) {
		/* Idle loops leave at once; a failed start-up has no calls. */
		server_stop(dm->srv, clock_mono_ns() + 1000000000LL);
		server_close(dm->srv);
	}
	if (dm->disp != NULL &&
	    dispatch_stop(dm->disp, clock_mono_ns() + 1000000000LL) < 0) {
		log_errorx("a command is still running; exiting without "
		    "finalizing plugins");
		_exit(1);
	}
	server_free(dm->srv);
	dm->srv = NULL;
	nats_host_free(dm->nats);
	dm->nats = NULL;
	dispatch_free(dm->disp);
	dm->disp = NULL;
	deliver_free(dm->dlv);
	dm->dlv = NULL;
	/* After dispatch: a late step answer may come until it stops. */
	wf_engine_free(dm->wf);
	dm->wf = NULL;
	dispatch_thread_cache(0); /* server_free freed calls here */
	/* It asks the registry for rollbacks: stopped before it. */
	rollback_stop(dm->rb);
	if (dm->reg != NULL && registry_stop(dm->reg, deadline_ns) < 0) {
		registry_abandoned(&loads, &finis);
		log_errorx("%ld plugin load(s) and %ld fini(s) were abandoned "
		    "and still run; exiting with status 1", loads, finis);
		abandon_exit(dm, NULL);
	}
	registry_free(dm->reg);
	rollback_free(dm->rb);
	config_fini(&dm->cfg);
}

/*
 * Shut down: stop loading and watching, NATS, then the socket (in-flight
 * calls get until shutdown_timeout_ms), then dispatch; finalize plugins.
 * Every wait is bounded so that the whole takes at most
 * shutdown_timeout_ms plus a second (a watchdog makes sure of it).
 * Returns the exit status, 0; does not return (exits 1) when something
 * had to be abandoned: a command stuck in plugin code, a load or a fini
 * that never returned (then plugin code cannot be unloaded safely, so
 * the process leaves without finalizing it).
 */
static int
stop(struct daemon *dm)
{
	const struct config *cfg = &dm->cfg;
	int64_t t0 = clock_mono_ns(), deadline, last;
	int rc;

	deadline = t0 + (int64_t)cfg->shutdown_timeout_ms * 1000000;
	/* What the waits below may use; the watchdog fires a little after
	 * and still inside the promised second. */
	last = deadline + 850000000LL;
	watchdog_start(deadline + 950000000LL);
	/* Before the loops go: it asks them whether they are alive. */
	sdnotify_watchdog_stop();
	/* A load in progress is given up on now: no writer holds up the
	 * watcher's join or a host.reload's reply. */
	registry_quiesce(dm->reg);
	if (watcher_stop_until(dm->watcher, last) < 0)
		abandon_exit(dm, "the watcher's thread did not end");
	dm->watcher = NULL;
	/* NATS first: stop fetching events, finish and ack what is held,
	 * drain the subscriptions, close the connection; in at most half
	 * of the time, so that the socket's calls keep the rest.  Event
	 * deliveries stop before it (they publish on it). */
	deliver_stop(dm->dlv);
	/* No new workflow step from here: a step out over NATS gets its
	 * answer while the connection drains. */
	wf_engine_hold(dm->wf);
	nats_host_stop(dm->nats, t0 +
	    (int64_t)cfg->shutdown_timeout_ms * 500000);
	/* Workflows next: no new step; waiting callers get 503 (their
	 * executions resume at the next start); steps out get half of
	 * what is left to be recorded. */
	wf_engine_quiesce(dm->wf, clock_mono_ns() + (deadline -
	    clock_mono_ns()) / 2);
	rc = server_stop(dm->srv, deadline);
	/* /readyz has said 503 since SIGTERM, through the drain of the
	 * calls in flight; the views it reads stay until server_free and
	 * dispatch_stop, and it goes before them. */
	http_stop(dm->http);
	dm->http = NULL;
	server_close(dm->srv);
	/* Give the pool a moment past the deadline for calls now dropped. */
	if (rc < 0 || dispatch_stop(dm->disp, last - 300000000LL) < 0) {
		log_errorx("a command is still running past "
		    "shutdown_timeout_ms; exiting without finalizing plugins");
		_exit(1);
	}
	log_info("stopped");
	/* Finis share shutdown_timeout_ms with the calls; what the calls
	 * left of it, or half a second of the spare one if they took it
	 * all. */
	{
		int64_t now = clock_mono_ns(), finis = deadline;

		/* registry_stop() may take 250 ms past it. */
		if (finis < now + 100000000LL)
			finis = now + 500000000LL < last - 250000000LL ?
			    now + 500000000LL : last - 250000000LL;
		release(dm, finis);
	}
	watchdog_stop();
	return 0;
}

int
main(int argc, char **argv)
{
	const char *config_path = DEFAULT_CONFIG;
	char *socket_arg = NULL, *plugin_arg = NULL;
	struct daemon dm;
	char err[1024];
	int ch, check_only = 0;

	while ((ch = getopt(argc, argv, "c:s:p:thV")) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 's':
			socket_arg = optarg;
			break;
		case 'p':
			plugin_arg = optarg;
			break;
		case 't':
			check_only = 1;
			break;
		case 'V':
			printf("cmdhostd %s (plugin ABI %d.%d)\n",
			    CMDHOSTD_VERSION, CMDHOST_ABI_MAJOR,
			    CMDHOST_ABI_MINOR);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	memset(&dm, 0, sizeof(dm));
	if (config_init(&dm.cfg) < 0) {
		fprintf(stderr, "cmdhostd: out of memory\n");
		return 1;
	}
	if (config_load(&dm.cfg, config_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "cmdhostd: %s\n", err);
		config_fini(&dm.cfg);
		return 1;
	}
	if ((socket_arg && absolutize(socket_arg, &dm.cfg.socket) < 0) ||
	    (plugin_arg && absolutize(plugin_arg, &dm.cfg.plugin_dir) < 0)) {
		fprintf(stderr, "cmdhostd: cannot resolve paths: %s\n",
		    strerror(errno));
		config_fini(&dm.cfg);
		return 1;
	}
	if (check_only) {
		int rc = check_run(&dm.cfg, config_path);

		config_fini(&dm.cfg);
		return rc;
	}
	dm.lst.fd = -1;
	if (sdnotify_open(err, sizeof(err)) < 0) {
		fprintf(stderr, "cmdhostd: %s\n", err);
		config_fini(&dm.cfg);
		return 1;
	}
	if (start(&dm, config_path) < 0) {
		release(&dm, 0);
		sdnotify_close();
		return 1;
	}
	serve(&dm);
	ch = stop(&dm);
	sdnotify_close();
	return ch;
}
