/*
 * main.c - cmdhostd: flags, start-up, signals, shutdown.
 *
 * main() reads the flags and the configuration, then start() brings the
 * daemon up (logging, working directory, plugins, dispatch and its pool,
 * socket, event loops, NATS: the socket appears only when plugins are
 * loaded, so a client that can connect can be served), serve() waits for
 * signals (SIGHUP rescans plugins, SIGTERM/SIGINT end it), and stop()
 * takes it down in the reverse order.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmdhost/plugin.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "dispatch.h"
#include "nats_host.h"
#include "registry.h"
#include "server.h"
#include "watcher.h"

#define CMDHOSTD_VERSION "0.1.0"
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
	sigset_t sigs;
	char copy_dir[PATH_MAX];
	int have_copy_dir;
};

/*
 * Bring the daemon up from its loaded configuration.  Returns 0, or -1
 * after logging why (what was started is left for stop_failed()).
 */
static int
start(struct daemon *dm, const char *config_path)
{
	struct config *cfg = &dm->cfg;
	char err[1024], *dir_copy;
	const char *tmp;
	int failures, rc;

	log_init(cfg->log_level, cfg->log_format, cfg->service);
	log_limit_init(cfg->client_log_rate, cfg->client_log_burst);

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

	tmp = getenv("TMPDIR");
	snprintf(dm->copy_dir, sizeof(dm->copy_dir), "%s/cmdhostd.XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dm->copy_dir) == NULL) {
		log_error("cannot create a private directory %s",
		    dm->copy_dir);
		return -1;
	}
	dm->have_copy_dir = 1;
	if ((dm->reg = registry_new(cfg, cfg->plugin_dir, dm->copy_dir)) ==
	    NULL) {
		log_error("registry");
		return -1;
	}
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
	if ((dm->disp = dispatch_new(cfg, dm->reg, &dm->stats, err,
	    sizeof(err))) == NULL) {
		log_errorx("%s", err);
		return -1;
	}
	if ((dm->srv = server_new(cfg, dm->reg, dm->disp, &dm->stats, err,
	    sizeof(err))) == NULL) {
		log_errorx("%s", err);
		return -1;
	}
	if ((rc = server_start(dm->srv)) < 0) {
		errno = -rc;
		log_error("cannot start the event loops");
		return -1;
	}
	/* NATS only when configured: then the module is loaded, else
	 * libnats is never mapped. */
	if (cfg->nats.enabled && (dm->nats = nats_host_start(cfg, dm->reg,
	    dm->disp, &dm->stats, CMDHOSTD_VERSION, err, sizeof(err))) ==
	    NULL) {
		log_errorx("%s", err);
		return -1;
	}
	{
		int plugins, commands, failed;

		registry_counts(dm->reg, &plugins, &commands, &failed);
		log_info("cmdhostd %s ready on %s: %d plugins, %d commands, "
		    "%d refused; %s %s", CMDHOSTD_VERSION, cfg->socket,
		    plugins, commands, failed, cfg->watch ? "watching" :
		    "not watching", cfg->plugin_dir);
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
			log_info("SIGHUP: rescanning %s", dm->cfg.plugin_dir);
			registry_scan(dm->reg, NULL);
			continue;
		}
		log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" :
		    "SIGINT");
		return;
	}
}

/* Free what start() made, in reverse order, after a clean stop() or a
 * failed start(). */
static void
release(struct daemon *dm)
{
	watcher_stop(dm->watcher);
	dm->watcher = NULL;
	nats_host_stop(dm->nats, clock_mono_ns());
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
	nats_host_free(dm->nats);
	dispatch_free(dm->disp);
	dispatch_thread_cache(0); /* server_free freed calls here */
	registry_free(dm->reg);
	if (dm->have_copy_dir)
		rmdir(dm->copy_dir);
	config_fini(&dm->cfg);
}

/*
 * Shut down: stop watching, NATS, then the socket (in-flight calls get
 * until shutdown_timeout_ms), then dispatch; finalize plugins.  Returns
 * the exit status; does not return when a command is stuck in plugin code
 * (then it cannot be unloaded safely, so the process leaves without
 * finalizing).
 */
static int
stop(struct daemon *dm)
{
	const struct config *cfg = &dm->cfg;
	int64_t deadline;
	int rc;

	watcher_stop(dm->watcher);
	dm->watcher = NULL;
	deadline = clock_mono_ns() + (int64_t)cfg->shutdown_timeout_ms *
	    1000000;
	/* NATS first: stop fetching events, finish and ack what is held,
	 * drain the subscriptions, close the connection; in at most half
	 * of the time, so that the socket's calls keep the rest. */
	nats_host_stop(dm->nats, clock_mono_ns() +
	    (int64_t)cfg->shutdown_timeout_ms * 500000);
	rc = server_stop(dm->srv, deadline);
	server_close(dm->srv);
	/* Give the pool a moment past the deadline for calls now dropped. */
	if (rc < 0 || dispatch_stop(dm->disp, deadline + 1000000000LL) < 0) {
		log_errorx("a command is still running past "
		    "shutdown_timeout_ms; exiting without finalizing plugins");
		rmdir(dm->copy_dir);
		_exit(1);
	}
	log_info("stopped");
	release(dm);
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
		printf("%s: ok\n", config_path);
		config_fini(&dm.cfg);
		return 0;
	}
	if (start(&dm, config_path) < 0) {
		release(&dm);
		return 1;
	}
	serve(&dm);
	return stop(&dm);
}
