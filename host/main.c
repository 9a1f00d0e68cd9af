/*
 * main.c - cmdhostd: flags, start-up, signals, shutdown.
 *
 * Start-up order: config, logging, working directory, plugins, pool,
 * socket, event loops; the socket appears only when plugins are loaded, so
 * a client that can connect can be served.  The main thread then only
 * waits for signals: SIGHUP rescans plugins, SIGTERM/SIGINT shut down.
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

#include "config.h"
#include "executor.h"
#include "log.h"
#include "metrics.h"
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

int
main(int argc, char **argv)
{
	const char *config_path = DEFAULT_CONFIG;
	char *socket_arg = NULL, *plugin_arg = NULL, *dir_copy;
	struct config cfg;
	struct daemon_stats stats;
	struct registry *reg = NULL;
	struct executor *ex = NULL;
	struct server *srv = NULL;
	struct watcher *watcher = NULL;
	struct nats_host *nats = NULL;
	sigset_t sigs;
	char err[1024], copy_dir[PATH_MAX];
	const char *tmp;
	int ch, check_only = 0, failures, rc;
	int64_t deadline;

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

	if (config_init(&cfg) < 0) {
		fprintf(stderr, "cmdhostd: out of memory\n");
		return 1;
	}
	if (config_load(&cfg, config_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "cmdhostd: %s\n", err);
		config_fini(&cfg);
		return 1;
	}
	if ((socket_arg && absolutize(socket_arg, &cfg.socket) < 0) ||
	    (plugin_arg && absolutize(plugin_arg, &cfg.plugin_dir) < 0)) {
		fprintf(stderr, "cmdhostd: cannot resolve paths: %s\n",
		    strerror(errno));
		config_fini(&cfg);
		return 1;
	}
	if (check_only) {
		printf("%s: ok\n", config_path);
		config_fini(&cfg);
		return 0;
	}
	log_init(cfg.log_level, cfg.log_format, cfg.service);

	/* Relative paths in the file are relative to the file's directory. */
	if ((dir_copy = strdup(config_path)) == NULL ||
	    chdir(dirname(dir_copy)) < 0) {
		fprintf(stderr, "cmdhostd: cannot enter the directory of %s: "
		    "%s\n", config_path, strerror(errno));
		free(dir_copy);
		config_fini(&cfg);
		return 1;
	}
	free(dir_copy);

	/* Signals are taken by the main thread alone, with sigwaitinfo. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&stats, 0, sizeof(stats));
	stats.started_ms = log_now_ms();

	tmp = getenv("TMPDIR");
	snprintf(copy_dir, sizeof(copy_dir), "%s/cmdhostd.XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(copy_dir) == NULL) {
		log_error("cannot create a private directory %s", copy_dir);
		config_fini(&cfg);
		return 1;
	}
	if ((reg = registry_new(&cfg, cfg.plugin_dir, copy_dir)) == NULL) {
		log_error("registry");
		rc = 1;
		goto out;
	}
	/* Watch before the first scan: a file that arrives meanwhile is seen
	 * by one or the other (a second look at an unchanged file is free). */
	if (cfg.watch && (watcher = watcher_start(cfg.plugin_dir,
	    cfg.reload_debounce_ms, reg, err, sizeof(err))) == NULL) {
		log_errorx("%s", err);
		rc = 1;
		goto out;
	}
	failures = registry_scan(reg, NULL);
	if (failures > 0)
		log_warnx("%d plugin file(s) refused; see the errors above and "
		    "host.list", failures);
	if ((ex = executor_new(&cfg)) == NULL) {
		log_error("cannot start the pool");
		rc = 1;
		goto out;
	}
	if ((srv = server_new(&cfg, reg, ex, &stats, err, sizeof(err))) ==
	    NULL) {
		log_errorx("%s", err);
		rc = 1;
		goto out;
	}
	if ((rc = server_start(srv)) < 0) {
		errno = -rc;
		log_error("cannot start the event loops");
		rc = 1;
		goto out;
	}
	/* NATS only when configured: then the module is loaded, else
	 * libnats is never mapped. */
	if (cfg.nats.enabled && (nats = nats_host_start(&cfg, reg, ex, &stats,
	    CMDHOSTD_VERSION, err, sizeof(err))) == NULL) {
		log_errorx("%s", err);
		rc = 1;
		goto out;
	}
	{
		int plugins, commands, failed;

		registry_counts(reg, &plugins, &commands, &failed);
		log_info("cmdhostd %s ready on %s: %d plugins, %d commands, "
		    "%d refused; %s %s", CMDHOSTD_VERSION, cfg.socket, plugins,
		    commands, failed, cfg.watch ? "watching" : "not watching",
		    cfg.plugin_dir);
	}

	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&sigs, &si);

		if (sig < 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP: rescanning %s", cfg.plugin_dir);
			registry_scan(reg, NULL);
			continue;
		}
		log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" :
		    "SIGINT");
		break;
	}

	watcher_stop(watcher);
	watcher = NULL;
	deadline = executor_now_ns() + (int64_t)cfg.shutdown_timeout_ms *
	    1000000;
	/* NATS first: stop fetching events, finish and ack what is held,
	 * drain the subscriptions, close the connection; in at most half
	 * of the time, so that the socket's calls keep the rest. */
	nats_host_stop(nats, executor_now_ns() +
	    (int64_t)cfg.shutdown_timeout_ms * 500000);
	rc = server_stop(srv, deadline);
	server_close(srv);
	/* Give the pool a moment past the deadline for calls now dropped. */
	if (rc < 0 || executor_stop(ex, deadline + 1000000000LL) < 0) {
		/* A command is stuck in plugin code: it cannot be unloaded
		 * safely, so leave without finalizing. */
		log_errorx("a command is still running past "
		    "shutdown_timeout_ms; exiting without finalizing plugins");
		rmdir(copy_dir);
		_exit(1);
	}
	rc = 0;
	log_info("stopped");
out:
	watcher_stop(watcher);
	nats_host_stop(nats, executor_now_ns());
	if (srv != NULL) {
		server_stop(srv, executor_now_ns());
		server_close(srv);
	}
	server_free(srv);
	executor_thread_cache_free(); /* server_free freed invocations here */
	/* Idempotent after a clean stop; needed when start-up failed. */
	if (ex != NULL &&
	    executor_stop(ex, executor_now_ns() + 1000000000LL) == 0)
		executor_free(ex);
	nats_host_free(nats);
	registry_free(reg);
	rmdir(copy_dir);
	config_fini(&cfg);
	return rc;
}
