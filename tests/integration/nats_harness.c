/*
 * nats_harness.c - run nats-server for a test and talk to it with cnats.
 * Waits are bounded loops on a condition (a TCP connect), never bare
 * sleeps.
 */
#include "nats_harness.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define START_TRIES 5
#define START_TIMEOUT_MS 10000

extern char **environ;

struct natsd {
	pid_t pid;              /* 0 when not running */
	int port;
	char dir[PATH_MAX];
	char store[PATH_MAX + 8];
	char log[PATH_MAX + 8];
	char url[64];
	int no_js;              /* started without -js */
};

static struct natsd *live_natsd[8];

static void
kill_all(void)
{
	for (int i = 0; i < 8; i++) {
		if (live_natsd[i] != NULL && live_natsd[i]->pid > 0) {
			kill(live_natsd[i]->pid, SIGKILL);
			waitpid(live_natsd[i]->pid, NULL, 0);
			live_natsd[i]->pid = 0;
		}
	}
}

static void
track(struct natsd *n, int add)
{
	static int registered;

	if (!registered) {
		atexit(kill_all);
		registered = 1;
	}
	for (int i = 0; i < 8; i++) {
		if (add && live_natsd[i] == NULL) {
			live_natsd[i] = n;
			return;
		}
		if (!add && live_natsd[i] == n)
			live_natsd[i] = NULL;
	}
}

/* A loopback port nobody listens on now (bind port 0, read, close). */
static int
free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static int
port_open(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc == 0;
}

/* Spawn the server on n->port.  Returns 0 once it accepts, -1 if it
 * exited (a port clash) or did not come up in time. */
static int
spawn(struct natsd *n)
{
	posix_spawn_file_actions_t fa;
	char port[16];
	char *argv[] = { (char *)"nats-server", (char *)"-a",
	    (char *)"127.0.0.1", (char *)"-p", port, (char *)"-js",
	    (char *)"-sd", n->store, NULL };
	if (n->no_js)
		argv[5] = NULL;
	int64_t deadline = now_ms() + START_TIMEOUT_MS;
	int rc;

	snprintf(port, sizeof(port), "%d", n->port);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, n->log,
	    O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	rc = posix_spawnp(&n->pid, "nats-server", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		fprintf(stderr, "nats-server: %s\n", strerror(rc));
		n->pid = 0;
		return -1;
	}
	track(n, 1);
	while (now_ms() < deadline) {
		int ws;

		if (port_open(n->port))
			return 0;
		if (waitpid(n->pid, &ws, WNOHANG) == n->pid) {
			n->pid = 0;
			return -1;
		}
		nap_ms(10);
	}
	kill(n->pid, SIGKILL);
	waitpid(n->pid, NULL, 0);
	n->pid = 0;
	return -1;
}

static struct natsd *
start(int no_js)
{
	struct natsd *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return NULL;
	n->no_js = no_js;
	snprintf(n->dir, sizeof(n->dir), "/tmp/cmdhost-natsd.XXXXXX");
	if (mkdtemp(n->dir) == NULL) {
		free(n);
		return NULL;
	}
	snprintf(n->store, sizeof(n->store), "%s/js", n->dir);
	snprintf(n->log, sizeof(n->log), "%s/log", n->dir);
	for (int i = 0; i < START_TRIES; i++) {
		if ((n->port = free_port()) < 0)
			continue;
		if (spawn(n) == 0) {
			snprintf(n->url, sizeof(n->url), "nats://127.0.0.1:%d",
			    n->port);
			return n;
		}
	}
	fprintf(stderr, "nats-server did not start\n");
	natsd_dump_log(n);
	natsd_free(n);
	return NULL;
}

struct natsd *
natsd_start(void)
{
	return start(0);
}

struct natsd *
natsd_start_without_js(void)
{
	return start(1);
}

int
natsd_stop(struct natsd *n)
{
	int64_t deadline = now_ms() + 10000;

	if (n == NULL || n->pid <= 0)
		return -1;
	kill(n->pid, SIGTERM);
	while (now_ms() < deadline) {
		if (waitpid(n->pid, NULL, WNOHANG) == n->pid) {
			n->pid = 0;
			return 0;
		}
		nap_ms(10);
	}
	kill(n->pid, SIGKILL);
	waitpid(n->pid, NULL, 0);
	n->pid = 0;
	return -1;
}

int
natsd_restart(struct natsd *n)
{
	/* The port may be briefly taken by someone else: retry a few times
	 * (the daemon under test needs this very port). */
	for (int i = 0; i < START_TRIES; i++)
		if (spawn(n) == 0)
			return 0;
	return -1;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
natsd_free(struct natsd *n)
{
	if (n == NULL)
		return;
	if (n->pid > 0) {
		kill(n->pid, SIGKILL);
		waitpid(n->pid, NULL, 0);
	}
	track(n, 0);
	nftw(n->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(n);
}

const char *
natsd_url(const struct natsd *n)
{
	return n->url;
}

void
natsd_dump_log(const struct natsd *n)
{
	char cmd[PATH_MAX + 32];

	if (n == NULL)
		return;
	snprintf(cmd, sizeof(cmd), "tail -n 30 %s >&2", n->log);
	if (system(cmd) != 0)
		fprintf(stderr, "(no nats-server log)\n");
}

char *
natsd_config(const struct natsd *n, const char *extra)
{
	char *text;

	if (asprintf(&text, "[nats]\nurl = %s\nreconnect_wait_ms = 100\n%s",
	    n->url, extra ? extra : "") < 0)
		return NULL;
	return text;
}

natsConnection *
nclient_connect(const struct natsd *n)
{
	natsConnection *nc = NULL;
	natsOptions *o = NULL;

	if (natsOptions_Create(&o) != NATS_OK)
		return NULL;
	natsOptions_SetURL(o, n->url);
	natsOptions_SetMaxReconnect(o, -1);
	natsOptions_SetReconnectWait(o, 100);
	if (natsConnection_Connect(&nc, o) != NATS_OK)
		nc = NULL;
	natsOptions_Destroy(o);
	return nc;
}

static json_object *
call(natsConnection *nc, const char *command, const char *payload,
    const char *id_json, const char *idem_key, int timeout_ms, int wait_ms,
    natsStatus *st)
{
	char subject[512], tmo[24];
	natsMsg *req = NULL, *rep = NULL;
	json_object *j = NULL;

	snprintf(subject, sizeof(subject), "cmdhost.cmd.%s", command);
	*st = natsMsg_Create(&req, subject, NULL, payload,
	    payload ? (int)strlen(payload) : 0);
	if (*st == NATS_OK && id_json != NULL)
		*st = natsMsgHeader_Set(req, "Cmdhost-Id", id_json);
	if (*st == NATS_OK && timeout_ms > 0) {
		snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
		*st = natsMsgHeader_Set(req, "Cmdhost-Timeout-Ms", tmo);
	}
	if (*st == NATS_OK && idem_key != NULL)
		*st = natsMsgHeader_Set(req, "Idempotency-Key", idem_key);
	if (*st == NATS_OK)
		*st = natsConnection_RequestMsg(&rep, nc, req, wait_ms);
	if (*st == NATS_OK) {
		j = json_tokener_parse(natsMsg_GetData(rep) ?
		    natsMsg_GetData(rep) : "");
		if (j == NULL)
			*st = NATS_ERR;
	}
	natsMsg_Destroy(req);
	natsMsg_Destroy(rep);
	return j;
}

json_object *
nclient_call(natsConnection *nc, const char *command, const char *payload,
    const char *id_json, int timeout_ms, int wait_ms, natsStatus *st)
{
	return call(nc, command, payload, id_json, NULL, timeout_ms, wait_ms,
	    st);
}

json_object *
nclient_call_keyed(natsConnection *nc, const char *command,
    const char *payload, const char *idem_key, int timeout_ms, int wait_ms,
    natsStatus *st)
{
	return call(nc, command, payload, NULL, idem_key, timeout_ms, wait_ms,
	    st);
}

long
count_ids(const char *path, int *counts, int n)
{
	FILE *f = fopen(path, "r");
	char line[64];
	long lines = 0;

	memset(counts, 0, sizeof(*counts) * (size_t)n);
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		long v = strtol(line, NULL, 10);

		lines++;
		if (v >= 0 && v < n)
			counts[v]++;
	}
	fclose(f);
	return lines;
}

json_object *
node_run(const char *script, const char *arg1, const char *arg2,
    int timeout_ms)
{
	char path[PATH_MAX];
	char *argv[] = { (char *)"node", path, (char *)arg1, (char *)arg2,
	    NULL };
	char *out = NULL, *err = NULL, node[PATH_MAX];
	json_object *j = NULL;
	int status = -1;
	FILE *p;

	/* run_command wants a path for argv[0]. */
	if ((p = popen("command -v node", "r")) == NULL ||
	    fgets(node, sizeof(node), p) == NULL) {
		if (p != NULL)
			pclose(p);
		fprintf(stderr, "node not found\n");
		return NULL;
	}
	pclose(p);
	node[strcspn(node, "\n")] = '\0';
	argv[0] = node;
	snprintf(path, sizeof(path), "%s/tests/nats/%s", CMDHOST_SOURCE_DIR,
	    script);
	if (run_command(argv, NULL, timeout_ms, &status, &out, &err) == 0 &&
	    status == 0)
		j = json_tokener_parse(out);
	if (j == NULL)
		fprintf(stderr, "node %s: status %d\nstdout: %s\nstderr: %s\n",
		    script, status, out ? out : "", err ? err : "");
	free(out);
	free(err);
	return j;
}

struct daemon *
nats_daemon_start(struct natsd *n, const char *const *plugins,
    const char *head, const char *extra, const char *ready_cmd)
{
	struct daemon_opts o = { 0 };
	char *nats = natsd_config(n, extra), *cfg, text[256];
	struct daemon *d;

	cr_assert(nats != NULL && asprintf(&cfg, "%s%s", head ? head : "",
	    nats) > 0);
	free(nats);
	o.plugins = plugins;
	o.config = cfg;
	d = daemon_start(&o);
	free(cfg);
	if (d == NULL) {
		natsd_dump_log(n);
		cr_assert_fail("daemon did not start");
	}
	snprintf(text, sizeof(text), "nats: subscribed cmdhost.cmd.%s",
	    ready_cmd);
	if (!daemon_log_wait(d, text, 10000)) {
		daemon_dump_log(d);
		cr_assert_fail("daemon never subscribed %s", ready_cmd);
	}
	return d;
}

long
daemon_calls_of(struct daemon *d, const char *command)
{
	json_object *r = client_call_once(daemon_socket_path(d),
	    "{\"command\":\"host.stats\"}"), *v;
	char path[256];
	long calls = -1;

	snprintf(path, sizeof(path), "body/commands/%s/calls", command);
	if ((v = json_path(r, path)) != NULL)
		calls = (long)json_object_get_int64(v);
	json_object_put(r);
	return calls < 0 ? 0 : calls;
}
