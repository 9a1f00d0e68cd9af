/*
 * proc.h - process isolation on the daemon's side: starting
 * cmdhost-worker processes (proc_spawn.c) and the pools of them that run
 * an isolated generation's calls (exec_proc.c, behind executor.h).
 *
 * A pool belongs to its generation (g->pool) and goes with it: unloading
 * the generation stops its workers, which run fini themselves.
 */
#ifndef CMDHOST_PROC_H
#define CMDHOST_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include <cmdhost/plugin.h>

struct config;
struct generation;
struct proc_pool;

/* A plugin's isolation settings: [plugin:NAME] keys over [host] ones. */
struct proc_limits {
	int isolation;          /* enum isolation */
	int workers;            /* processes per generation */
	int inflight;           /* calls at once per process */
	int depth;              /* calls sent ahead: inflight, or with
	                         * inflight 1 worker_pipeline (in order) */
	long max_requests;      /* calls before a process is recycled; 0 never */
	size_t memory_bytes;    /* resident limit per process; 0 none */
	long nofile;            /* RLIMIT_NOFILE per process */
};

/* Fill lim for plugin `name` (borrowed) from cfg.  Returns 0, or -1 with
 * "[plugin:NAME] KEY: reason" in err (then refuse the load). */
int proc_settings(const struct config *cfg, const char *name,
    struct proc_limits *lim, char *err, size_t errlen);

/* A started worker process, as proc_spawn() leaves it. */
struct proc_child {
	pid_t pid;              /* also its process group */
	int pidfd;              /* owned, or -1 (no pidfd_open) */
	int sock;               /* owned: the daemon's end, CLOEXEC */
};

/*
 * Start cmdhost-worker (--probe if `probe`) on copy_fd (borrowed; the
 * sealed private copy of `file`) with lim (NULL: one serving thread, no
 * limits), send it its setup and wait until deadline_ns for its READY.
 * On success returns 0, the child in *child and, if out is not NULL, a
 * new code-less generation with its command table in *out (one
 * reference, the caller's).  On failure returns -1 with the reason
 * (the worker's own, or how it died or hung) in err, and nothing is left
 * running.  Must be called on a thread that outlives the child
 * (PR_SET_PDEATHSIG follows the thread that forked).
 */
int proc_spawn(const struct config *cfg, int copy_fd, const char *file,
    const struct proc_limits *lim, int probe, int64_t deadline_ns,
    struct proc_child *child, struct generation **out, char *err,
    size_t errlen);

/*
 * End child: if `quit`, ask it to finish (fini runs in it) and wait for
 * it until deadline_ns (without quit, a deadline_ns that is not 0 still
 * lets a process that is ending by itself exit with its own status);
 * then kill its whole process group, reap it and
 * close what child holds.  Returns the wait status (waitpid's), or -1
 * if it could not be reaped.
 */
int proc_end(struct proc_child *child, int quit, int64_t deadline_ns);

/* "killed by signal 11 (SIGSEGV)" or "exited with status 3", into buf. */
const char *proc_status_text(int status, char *buf, size_t len);

/*
 * Probe the sealed copy copy_fd (borrowed) of `file` in a throwaway
 * worker: constructors, descriptor, ABI and registration, until
 * deadline_ns.  Returns 0 and the code-less generation it registered in
 * *out (one reference, the caller's), or -1 with why in err.
 */
int proc_probe(const struct config *cfg, int copy_fd, const char *file,
    int64_t deadline_ns, struct generation **out, char *err, size_t errlen);

/*
 * The registry's load of plugin file fd (borrowed) named `file`, in place
 * of loader_load_fd() (same arguments and results): when [host] probe is
 * on, or the plugin may be isolated, the file is probed first; then an
 * in-process plugin is loaded by loader_load_fd(), an isolated one gets
 * a code-less generation whose pool of workers is started and ready.
 * Everything ends by deadline_ns.
 */
int proc_load(const struct config *cfg, int fd, const char *file,
    const char *copy_dir, int64_t deadline_ns, struct generation **out,
    char **name_out, char *err, size_t errlen);

/* True when a worker program was found (probing is possible). */
int proc_worker_found(const struct config *cfg);

/*
 * Start the pool of g (a code-less generation from proc_spawn(), borrowed;
 * the pool becomes g->pool, g->isolation ISOLATION_PROCESS) on copy_fd
 * (taken over): lim->workers processes, each on a thread of its own
 * (which forks it, so that it dies with that thread's pool), and wait
 * until deadline_ns for them all to be ready.  Returns 0, or -1 with the
 * reason in err (then nothing is left running and copy_fd is closed).
 */
int proc_pool_start(const struct config *cfg, struct generation *g,
    int copy_fd, const struct proc_limits *lim, int64_t deadline_ns,
    char *err, size_t errlen);

/* The execute function of a code-less generation's commands: never run
 * in the daemon; answers 503 if a call reaches the in-process executor. */
int proc_stub_execute(cmdhost_ctx *ctx);

/* host.list: the pool's isolation, worker count and pids, into `into`
 * (borrowed).  p may be NULL (an in-process generation). */
void proc_pool_describe(const struct proc_pool *p, struct json_object *into);

/* True when the pool's workers keep dying (state "crashing"). */
int proc_pool_crashing(const struct proc_pool *p);

#endif /* CMDHOST_PROC_H */
