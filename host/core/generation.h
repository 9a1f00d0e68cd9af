/*
 * generation.h - the plugin types every program shares: a generation (one
 * loaded copy of one plugin file) and its commands.
 *
 * The loader makes generations and the registry publishes them; calls hold
 * references.  This header knows nothing of the registry: a published
 * generation carries a hook that takes over its last reference.
 */
#ifndef CMDHOST_GENERATION_H
#define CMDHOST_GENERATION_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <cmdhost/plugin.h>

struct cmd_stats;
struct proc_pool;
struct cmd_sched;
struct generation;

/* One command of one generation.  Strings and fields are borrowed from the
 * plugin's image and live as long as the generation. */
struct command {
	char name[CMDHOST_NAME_MAX + 1];
	const char *summary;
	const cmdhost_field *fields;
	cmdhost_validate_fn validate;
	cmdhost_execute_fn execute;
	unsigned flags;
	struct generation *gen;      /* the owner */
	struct cmd_stats *stats;     /* per name: owned by the registry, or
	                              * NULL outside the daemon */
	struct cmd_sched *sched;     /* per name: owned by the registry */
	char *log_frag;              /* owned: its log context (command,
	                              * plugin, version, generation) made
	                              * once by log_fragment(), or NULL */
};

/* Where a generation's calls run: dispatch keeps one executor of each
 * kind and picks the generation's. */
enum isolation {
	/* The first two are also the values of the isolation key
	 * (config_isolation_parse): keep them first and in this order. */
	ISOLATION_NONE = 0,       /* in the daemon's process (exec_pool.c) */
	ISOLATION_PROCESS = 1,    /* in worker processes (exec_proc.c) */
	ISOLATION_WORKFLOW,       /* a workflow definition (workflow.c) */
	ISOLATION_KINDS
};

/*
 * Called when the last reference to a published generation is dropped,
 * on the thread that dropped it; it takes the generation over (it must
 * end in loader_unload(), maybe on another thread).  arg is the
 * generation's release_arg.
 */
typedef void (*generation_release_fn)(struct generation *g, void *arg);

/* One thread's share of a watched generation's counts; 128 bytes
 * apart, so that two threads' shares never meet on a cache line even in
 * a generation that calloc() aligned to 16 bytes only. */
#define GEN_WATCH_SHARES 8
struct gen_watch_share {
	atomic_ulong calls;
	atomic_ulong fails;
	char pad[128 - 2 * sizeof(atomic_ulong)];
};

/* One loaded copy of a plugin file.  Freed by loader_unload() when its
 * last reference is released (generation_release). */
struct generation {
	atomic_long refs;
	atomic_int served;        /* it has taken its first call */
	uint64_t number;          /* grows with each published load */
	char *name;               /* owned copy of the descriptor's name */
	char *version;            /* owned copy */
	unsigned abi_major;       /* the descriptor's ABI */
	unsigned abi_minor;
	int desc_by_fn;           /* cmdhost_plugin_descriptor() gave it */
	char *file;               /* owned: the file's name in plugin_dir */
	char *copy_path;          /* owned: the private copy dlopen'd */
	void *handle;             /* dlopen handle */
	void *state;              /* the plugin's, freed by fini */
	cmdhost_fini_fn fini;
	cmdhost_relay_fetch_fn relay_fetch; /* its own outbox (ABI 1.2), */
	cmdhost_relay_ack_fn relay_ack;     /* or both NULL */
	struct command *commands; /* owned array */
	size_t n_commands;
	int64_t loaded_at_ms;
	uint64_t content_hash;    /* of the file's bytes */
	char sha256[65];          /* of the private copy's bytes, hex ("" if
	                           * it could not be read) */
	enum isolation isolation; /* which executor runs its calls */
	_Atomic unsigned worker_crashes; /* its worker processes that died
	                           * in a call (the process executor counts;
	                           * rollback.c reads) */
	atomic_int watched;       /* rollback.c counts its answers (watch) */
	char *mapped_as;          /* owned: the name dlopen mapped it by (the
	                           * private copy's path, unlinked since) */
	int meta_owned;           /* names, summaries and fields are owned
	                           * copies (a worker's table, no handle) */
	struct proc_pool *pool;   /* ISOLATION_PROCESS: its workers, owned;
	                           * stopped by pool_free (fini runs in
	                           * them) when the generation is unloaded */
	void (*pool_free)(struct proc_pool *pool);
	generation_release_fn release; /* set when published, else NULL */
	void *release_arg;        /* borrowed: the publisher's */
	SLIST_ENTRY(generation) reap_link; /* the publisher's list */
	/* Answers while watched, and of them 5xx of the plugin's making:
	 * one share per thread (metrics_shard), each on a line of its own
	 * and off the lines above, which every call reads. */
	char pad[64];
	struct gen_watch_share watch[GEN_WATCH_SHARES];
};

/*
 * What plugin code the calling thread runs now, for the fatal-signal
 * handler's crash record (read there, async-signal-safe): g is borrowed
 * for as long as the code runs, `what` a static string (a command's name
 * is g's).  Set by invocation_run() around validate and execute, and by
 * the loader around dlopen and registration; NULL g when none.
 */
struct generation_running {
	const struct generation *g;
	const char *command;      /* the command, or "(load)" */
};
extern __thread struct generation_running generation_running;

/* Take and drop a reference.  Dropping the last one hands the generation
 * to its release hook; a generation that has none (never published) is
 * unloaded on the calling thread.  NULL is ok for release. */
void generation_hold(struct generation *g);
void generation_release(struct generation *g);

/*
 * A thread that takes and drops many references (an event loop: one
 * pair per call) turns on its cache of them: it then takes references
 * GEN_REF_BATCH at a time, keeps those its calls give back, and returns
 * the spares at generation_cache_flush(), which it must call before it
 * blocks (a loop: before epoll_wait) so that an unpublished generation
 * is not kept past one turn.  Its calls then write no line another
 * thread writes.  generation_cache(0) flushes and turns it off (at the
 * thread's end).  References taken on a caching thread may be dropped
 * on any thread.
 */
#define GEN_REF_BATCH 64
void generation_cache(int on);
void generation_cache_flush(void);

/* Give back the spares of every generation but g (borrowed; NULL: all,
 * which is generation_cache_flush()): called before a call of g runs
 * inline, so that a thread stuck in it pins no other plugin's old
 * generation (the call pins g anyway). */
void generation_cache_keep(const struct generation *g);

/* The watched answers and, of them, the 5xx of the plugin's making,
 * summed over the threads' shares; and their reset (rollback.c, when a
 * window opens). */
void generation_watch_counts(const struct generation *g, uint64_t *calls,
    uint64_t *fails);
void generation_watch_reset(struct generation *g);

/* The command of g named `name`, borrowed from g, or NULL. */
struct command *generation_command(struct generation *g, const char *name);

/*
 * The one conflict rule of plugins loaded side by side (the registry and
 * `cmdhost check` both apply it): g may not load next to `other` (both
 * borrowed) if they have the same plugin name or share a command name.
 * Returns 0, or -1 with the reason, in the daemon's words, in err.
 */
int generation_conflict(const struct generation *g,
    const struct generation *other, char *err, size_t errlen);

/* True for a valid command or plugin name: [A-Za-z0-9_.:-]{1,128}. */
int generation_valid_name(const char *s);

/* The hash every index of command names uses (FNV-1a, 64 bits; name
 * borrowed): the daemon's command table, the registry's per-name state
 * and the registrar's duplicate check. */
uint64_t command_name_hash(const char *name);

#endif /* CMDHOST_GENERATION_H */
