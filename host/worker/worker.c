/*
 * worker.c - cmdhost-worker: load one plugin generation in a process of
 * its own and serve its calls for cmdhostd, or (--probe) only load it and
 * say whether that worked.
 *
 * The daemon starts it with the SEQPACKET socket on fd 3 and the
 * generation's sealed private copy on fd 4 (core/ipc.h).  It dies with
 * the daemon (PR_SET_PDEATHSIG, and so do the processes it forks), lives
 * in a process group of its own so the daemon can kill everything it
 * started, and applies the memory and file limits it is given.  It never
 * decides anything about the daemon's calls: it runs what it is sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/generation.h"
#include "core/invocation.h"
#include "core/ipc.h"
#include "core/loader.h"
#include "core/log.h"
#include "core/thread.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

/* What the setup message said. */
struct setup {
	char file[256];
	int inflight;            /* serving threads */
	size_t memory_bytes;     /* 0: none */
	long nofile;             /* 0: unchanged */
	long long parent;        /* the daemon's pid */
};

static struct config cfg;
static struct generation *gen;
static struct setup su;
static atomic_int quitting;
static atomic_int exit_code;
static int statm_fd = -1;
static long page_size;

/* A process the plugin forks dies with this worker too. */
static void
child_dies_with_parent(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* Bytes resident now, or 0 when unknown. */
static size_t
resident_bytes(void)
{
	char buf[128];
	unsigned long size, res;
	ssize_t n;

	if (statm_fd < 0 || (n = pread(statm_fd, buf, sizeof(buf) - 1, 0)) <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%lu %lu", &size, &res) != 2)
		return 0;
	return (size_t)res * (size_t)page_size;
}

/* Stop taking calls: every serving thread's recv returns 0. */
static void
stop_serving(int code)
{
	int zero = 0;

	atomic_compare_exchange_strong(&exit_code, &zero, code);
	if (!atomic_exchange(&quitting, 1))
		shutdown(IPC_FD_SOCK, SHUT_RD);
}

/* Decode the setup message in buf into su and cfg.  Returns 0 or -1. */
static int
read_setup(const char *buf, size_t len)
{
	struct ipc_rd rd;
	const char *s;
	uint32_t n;

	if (ipc_rd_init(&rd, buf, len) != IPC_SETUP)
		return -1;
	s = ipc_get_str(&rd, NULL);
	snprintf(su.file, sizeof(su.file), "%s", s ? s : "plugin.so");
	su.inflight = (int)ipc_get_u32(&rd);
	su.memory_bytes = (size_t)ipc_get_i64(&rd);
	su.nofile = (long)ipc_get_i64(&rd);
	su.parent = ipc_get_i64(&rd);
	cfg.log_level = (int)ipc_get_u32(&rd);
	cfg.log_format = (int)ipc_get_u32(&rd);
	cfg.max_plugin_bytes = (size_t)ipc_get_i64(&rd);
	if ((s = ipc_get_str(&rd, NULL)) != NULL)
		config_set_string(&cfg.service, s);
	n = ipc_get_u32(&rd);
	if (rd.bad || n > 100000)
		return -1;
	if (n > 0 && (cfg.plugin_kvs = calloc(n, sizeof(*cfg.plugin_kvs))) ==
	    NULL)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const char *p = ipc_get_str(&rd, NULL);
		const char *k = ipc_get_str(&rd, NULL);
		const char *v = ipc_get_str(&rd, NULL);
		struct plugin_kv *kv = &cfg.plugin_kvs[i];

		if (rd.bad || p == NULL || k == NULL || v == NULL)
			return -1;
		kv->plugin = strdup(p);
		kv->key = strdup(k);
		kv->value = strdup(v);
		cfg.n_plugin_kvs++;
		if (kv->plugin == NULL || kv->key == NULL || kv->value == NULL)
			return -1;
	}
	if (su.inflight < 1)
		su.inflight = 1;
	return rd.bad ? -1 : 0;
}

static void
set_limits(void)
{
	struct rlimit rl;

	if (su.nofile > 0) {
		rl.rlim_cur = rl.rlim_max = (rlim_t)su.nofile;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
#ifndef SANITIZED
	/* A backstop past the resident limit checked after each call: an
	 * address space a plugin cannot grow without bound in one call
	 * (sanitizers reserve terabytes of it, so not under them). */
	if (su.memory_bytes > 0) {
		size_t as = su.memory_bytes * 2 + ((size_t)512 << 20);

		rl.rlim_cur = rl.rlim_max = (rlim_t)as;
		setrlimit(RLIMIT_AS, &rl);
	}
#endif
}

/* Run one CALL message and send its REPLY. */
static void
run_call(struct ipc_rd *rd)
{
	struct invocation inv;
	struct json_object *root, *payload = NULL, *id = NULL;
	struct ipc_msg out;
	int64_t seq = ipc_get_i64(rd);
	uint32_t idx = ipc_get_u32(rd);
	int64_t deadline = ipc_get_i64(rd);
	int64_t start = ipc_get_i64(rd);
	long long pid = ipc_get_i64(rd), uid = ipc_get_i64(rd);
	const char *rid = ipc_get_str(rd, NULL);
	const char *idt = ipc_get_str(rd, NULL);
	size_t plen = 0;
	const char *ptext = ipc_get_str(rd, &plen);
	const char *body = NULL;
	size_t mem;

	ipc_msg_init(&out, IPC_REPLY);
	ipc_put_i64(&out, seq);
	if (rd->bad || idx >= gen->n_commands || ptext == NULL) {
		ipc_put_u32(&out, 500);
		ipc_put_str(&out, NULL, 0);
		ipc_put_cstr(&out, "internal_error");
		ipc_put_cstr(&out, "the worker received a bad call message");
		goto send;
	}
	/* Sent ahead behind a slower call (worker_pipeline) and past its
	 * deadline now: dispatch has answered it 504; never start it. */
	if (deadline > 0 && clock_mono_ns() >= deadline) {
		ipc_put_u32(&out, 504);
		ipc_put_str(&out, NULL, 0);
		ipc_put_cstr(&out, "timeout");
		ipc_put_cstr(&out, "the command waited in its worker past its "
		    "deadline and was not started");
		goto send;
	}
	payload = json_tokener_parse(ptext);
	if (idt != NULL)
		id = json_tokener_parse(idt);
	root = json_object_new_object();
	if (root == NULL) {
		json_object_put(payload);
		json_object_put(id);
		ipc_put_u32(&out, 503);
		ipc_put_str(&out, NULL, 0);
		ipc_put_cstr(&out, "unavailable");
		ipc_put_cstr(&out, "out of memory in the worker");
		goto send;
	}
	json_object_object_add(root, "payload", payload);
	if (id != NULL)
		json_object_object_add(root, "id", id);
	generation_hold(gen);
	if (invocation_init(&inv, &gen->commands[idx], root, id, payload, 0, 0,
	    0) < 0) {
		json_object_put(root);
		generation_release(gen);
		ipc_put_u32(&out, 503);
		ipc_put_str(&out, NULL, 0);
		ipc_put_cstr(&out, "unavailable");
		ipc_put_cstr(&out, "out of memory in the worker");
		goto send;
	}
	snprintf(inv.request_id, sizeof(inv.request_id), "%s", rid ? rid : "");
	inv.payload_text = strndup(ptext, plen);
	inv.payload_len = inv.payload_text ? plen : 0;
	inv.deadline_ns = deadline;
	inv.start_ns = start;
	inv.peer_pid = pid;
	inv.peer_uid = uid;
	inv.keep_late = 1; /* the daemon owns the deadline */
	invocation_run(&inv);
	mem = su.memory_bytes > 0 ? resident_bytes() : 0;
	if (mem > su.memory_bytes) {
		char msg[256];

		snprintf(msg, sizeof(msg), "the plugin's worker went past "
		    "worker_memory_bytes (%zu > %zu bytes resident) in this "
		    "call; the worker is recycled", mem, su.memory_bytes);
		invocation_set_error(&inv, 500, "worker_memory", msg);
		stop_serving(IPC_EXIT_MEMORY);
	}
	ipc_put_u32(&out, (uint32_t)inv.status);
	if (inv.status >= 200 && inv.status <= 299) {
		body = inv.body != NULL ? json_object_to_json_string_ext(inv.body,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) :
		    "null";
		ipc_put_cstr(&out, body ? body : "null");
		ipc_put_str(&out, NULL, 0);
		ipc_put_str(&out, NULL, 0);
	} else {
		ipc_put_str(&out, NULL, 0);
		ipc_put_cstr(&out, inv.code ? inv.code : "internal_error");
		ipc_put_cstr(&out, inv.message ? inv.message : "out of memory");
	}
	invocation_fini(&inv);
send:
	if (ipc_send(IPC_FD_SOCK, &out, 0) < 0 && out.oom) {
		/* Too big for memory here: still one answer. */
		struct ipc_msg small;

		ipc_msg_init(&small, IPC_REPLY);
		ipc_put_i64(&small, seq);
		ipc_put_u32(&small, 503);
		ipc_put_str(&small, NULL, 0);
		ipc_put_cstr(&small, "unavailable");
		ipc_put_cstr(&small, "out of memory in the worker");
		ipc_send(IPC_FD_SOCK, &small, 0);
		ipc_msg_fini(&small);
	}
	ipc_msg_fini(&out);
}

static void *
serve_main(void *arg)
{
	char *buf = NULL;
	size_t cap = 0, len;

	(void)arg;
	thread_use_c_locale();
	while (!atomic_load(&quitting)) {
		struct ipc_rd rd;
		int rc = ipc_recv(IPC_FD_SOCK, 0, &buf, &cap, &len);
		uint32_t t;

		if (rc <= 0) {
			stop_serving(0); /* the daemon closed, or said quit */
			break;
		}
		t = ipc_rd_init(&rd, buf, len);
		if (t == IPC_CALL)
			run_call(&rd);
		else if (t == IPC_QUIT)
			stop_serving(0);
	}
	free(buf);
	return NULL;
}

int
main(int argc, char **argv)
{
	int probe = argc > 1 && strcmp(argv[1], "--probe") == 0;
	struct ipc_msg msg;
	char *buf = NULL, err[1024];
	size_t cap = 0, len;
	pthread_t *threads;
	int rc;

	/* Die with the daemon, and never outlive it by a moment. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	pthread_atfork(NULL, NULL, child_dies_with_parent);
	signal(SIGPIPE, SIG_IGN);
	setpgid(0, 0);
	page_size = sysconf(_SC_PAGESIZE);
	statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (config_init(&cfg) < 0)
		return IPC_EXIT_SETUP;
	if (ipc_recv(IPC_FD_SOCK, 0, &buf, &cap, &len) <= 0 ||
	    read_setup(buf, len) < 0)
		return IPC_EXIT_SETUP;
	/* What the plugin execs never holds the daemon's socket. */
	fcntl(IPC_FD_SOCK, F_SETFD, FD_CLOEXEC);
	if (su.parent > 0 && getppid() != (pid_t)su.parent)
		return IPC_EXIT_SETUP; /* the daemon is gone already */
	log_init(cfg.log_level, cfg.log_format, cfg.service);
	set_limits();

	rc = loader_load_private(&cfg, "/proc/self/fd/4", su.file, &gen, NULL,
	    err, sizeof(err));
	close(IPC_FD_PLUGIN);
	ipc_msg_init(&msg, IPC_READY);
	ipc_put_ready(&msg, rc == 0 ? gen : NULL, err);
	if (ipc_send(IPC_FD_SOCK, &msg, 0) < 0 || rc < 0 || probe) {
		/* A probe answers and goes: its registration's state goes
		 * with the process, fini is not run (docs/isolation.md). */
		ipc_msg_fini(&msg);
		if (probe && rc == 0)
			ipc_recv(IPC_FD_SOCK, 0, &buf, &cap, &len);
		_exit(rc == 0 ? IPC_EXIT_OK : IPC_EXIT_SETUP);
	}
	ipc_msg_fini(&msg);
	free(buf);

	if ((threads = calloc((size_t)su.inflight, sizeof(*threads))) == NULL)
		_exit(IPC_EXIT_SETUP);
	for (int i = 0; i < su.inflight; i++)
		if (pthread_create(&threads[i], NULL, serve_main, NULL) != 0)
			_exit(IPC_EXIT_SETUP);
	for (int i = 0; i < su.inflight; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	/* No call runs now: fini never overlaps with one. */
	generation_release(gen);
	log_flush();
	config_fini(&cfg);
	return atomic_load(&exit_code);
}
