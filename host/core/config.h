/*
 * config.h - the daemon's configuration: defaults, the ini file, checks.
 *
 * One table of keys (config_keys()) drives the defaults, the parsing and
 * the range checks; config_load() never logs and never exits: errors come
 * back as "FILE:LINE: reason".
 */
#ifndef CMDHOST_CONFIG_H
#define CMDHOST_CONFIG_H

#include <stddef.h>
#include <sys/types.h>

#include "config_nats.h"

#define CONFIG_MAX_ADMIN_UIDS 64
/* At least the rows of config_keys() (config.c checks it). */
#define CONFIG_MAX_KEYS 160

/* One key of a [plugin:NAME] section. */
struct plugin_kv {
	char *plugin; /* owned */
	char *key;    /* owned */
	char *value;  /* owned */
};

/* One [route:SUBJECT] section: events of SUBJECT are delivered to the
 * local command `command`.  0 in a number: the [events] value. */
struct config_route {
	char *subject;       /* owned */
	char *command;       /* owned; required */
	int max_attempts;    /* deliveries before it is dead-lettered */
	int backoff_ms;      /* the first retry's wait; it doubles */
	int backoff_max_ms;  /* and stops doubling here */
};

struct config {
	char *path;          /* owned: the file as given */
	char *socket;        /* owned */
	char *plugin_dir;    /* owned */
	mode_t socket_mode;
	int workers;         /* event-loop threads; 0 = one per CPU */
	int pool_threads;    /* threads for blocking and slow commands */
	int queue_depth;     /* pool queue; full -> 503 */
	int inline_budget_us;/* slower inline calls move their command to the pool */
	size_t max_request_bytes;
	size_t max_pending_bytes; /* unsent replies before a peer is not read */
	int idle_timeout_ms;  /* close a connection idle this long; 0: never */
	int allow_insecure_plugins; /* load files others may write (dev only) */
	int load_timeout_ms; /* a load past it is abandoned */
	int fini_timeout_ms; /* a fini past it is abandoned */
	size_t max_plugin_bytes; /* larger plugin files are refused */
	int max_connections;
	int admin_connections;     /* of max_connections, kept for admins */
	int max_connections_per_uid; /* per non-admin uid */
	size_t max_buffered_bytes_per_uid; /* input + output, non-admin uid */
	size_t memory_budget_bytes; /* input + output of every connection */
	int write_timeout_ms;      /* unsent replies that do not move; 0 never */
	int line_timeout_ms;       /* a partial line that does not end; 0 never */
	int inline_stuck_ms;       /* an inline call this long is stuck */
	int default_timeout_ms;
	int shutdown_timeout_ms;
	int watch;           /* inotify on plugin_dir */
	int reload_debounce_ms; /* quiet time before a changed file loads */
	int log_level;       /* enum log_level */
	int log_format;      /* enum log_format */
	char *service;       /* owned: the "service" of every log line */
	int access_log;      /* one log line per request */
	int client_log_rate; /* error lines a second per client uid; 0: off */
	int client_log_burst;/* and at once */
	int reply_request_id;/* every reply carries "request_id" */
	char *state_dir;     /* owned: the idempotency store's home */
	int idempotency_ttl_s;  /* how long a stored result replays */
	int idempotency_memory; /* stored results kept in memory */
	int idempotency_shared; /* one key scope for every caller */
	int rollback;           /* probation windows and rollback */
	int rollback_window_s;  /* probation after a swap */
	int rollback_min_calls; /* calls before the 5xx share is judged */
	int rollback_5xx_percent; /* 5xx share that rolls back */
	int rollback_crashes;   /* worker crashes that roll back; 0 never */
	char *workflow_dir;  /* owned: workflow definitions; "" = none */
	int workflow_threads;   /* engine threads */
	int workflow_max_running; /* unfinished executions; past it 503 */
	int workflow_max_steps;   /* states entered per execution */
	int workflow_max_history; /* history rows per execution */
	int workflow_max_depth;   /* workflows calling workflows */
	int workflow_synchronous; /* SQLite synchronous: 0 off, 1 normal,
	                           * 2 full */
	int workflow_poll_ms;     /* how often workflow_dir is looked at */
	uid_t admin_uids[CONFIG_MAX_ADMIN_UIDS];
	int n_admin_uids;
	int isolation;       /* enum isolation: where plugins run by default */
	int plugin_workers;  /* worker processes per isolated generation */
	int worker_inflight; /* calls at once per worker process */
	int worker_pipeline; /* calls sent ahead to a one-call worker */
	int max_requests;    /* calls before a worker is recycled; 0 never */
	size_t worker_memory_bytes; /* resident limit per worker; 0 none */
	int worker_nofile;   /* RLIMIT_NOFILE of each worker */
	int probe;           /* load new files in a throwaway worker first */
	char *worker_path;   /* owned: cmdhost-worker, or NULL: next to us */
	char *http_listen;   /* owned: the HTTP endpoint's address; "" off */
	int http_max_connections;  /* HTTP connections at once */
	int http_max_connections_per_ip; /* per client address; 0 none */
	int http_timeout_s;  /* an HTTP connection idle this long is closed */
	size_t http_memory_bytes; /* per HTTP connection (request headers) */
	struct plugin_kv *plugin_kvs; /* owned array */
	size_t n_plugin_kvs;
	int events_max_pending;   /* [events]: outbox bound (pending + dead) */
	int events_max_attempts;  /* route deliveries before a dead letter */
	int events_backoff_ms;    /* first retry wait, doubling */
	int events_backoff_max_ms;
	int events_window;        /* deliveries in flight per subject */
	int events_relay_ms;      /* how often plugin outboxes are fetched */
	struct config_route *routes; /* owned array: [route:SUBJECT] */
	size_t n_routes;
	struct nats_config nats; /* [nats] and [jetstream] */
	/* Per row of config_keys(): the file's line that set it, 0 if none
	 * did (a default): where `cmdhostd -t` points at. */
	int key_lines[CONFIG_MAX_KEYS];
};

/* The kind of value of a key, which says how its text is read. */
enum config_type {
	CONFIG_STRING,	/* char *, an owned copy; min..max bound the length
			 * (max 0: no bound) */
	CONFIG_INT,	/* int, decimal in min..max */
	CONFIG_SIZE,	/* size_t, decimal in min..max */
	CONFIG_BOOL,	/* int, true/yes/on/1 or false/no/off/0 */
	CONFIG_MODE,	/* mode_t, octal digits in min..max */
	CONFIG_ENUM,	/* int, a word that parse() knows */
	CONFIG_UIDS	/* admin_uids[] and n_admin_uids: uids or user names */
};

/* One key of cmdhost.ini: a row of the table that config_init(),
 * config_set() and config_fini() run through.  All strings are static. */
struct config_key {
	const char *section;	/* "host", "nats", "jetstream", "events",
				 * or "route:SUBJECT" (the field is then in
				 * struct config_route) */
	const char *name;
	enum config_type type;
	long long min, max;	/* the range (see enum config_type) */
	long long def;		/* the default, unless a string */
	const char *def_str;	/* CONFIG_STRING default; NULL: none */
	size_t offset;		/* of the field in struct config */
	int (*parse)(const char *word);	/* CONFIG_ENUM: value or -1 */
	const char *words;	/* CONFIG_ENUM: the words, for errors */
	/* More rules on the text, before it is read: 0, or -1 with "KEY:
	 * reason" in err.  NULL: none. */
	int (*check)(const char *key, const char *value, char *err,
	    size_t errlen);
	const char *doc;	/* one line */
};

/* The table of keys, *n rows.  Borrowed: static and read-only. */
const struct config_key *config_keys(size_t *n);

/* Fill cfg with the defaults (strings are owned copies; nats.size and
 * nats.version say the layout to the NATS module).  Returns 0 or
 * -ENOMEM.  Release with config_fini(). */
int config_init(struct config *cfg);

/* Parse the ini file at path (borrowed; cfg->path keeps an owned copy)
 * into cfg, which config_init() prepared, then run the checks across keys.
 * Returns 0, or -1 with "FILE:LINE: reason" (or "FILE: reason") in err. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* Set `key` of [section] ("host", "nats" or "jetstream") from text, as
 * the file would (the section counts as seen); strings are stored as owned
 * copies, the arguments are borrowed.  Returns 0 or -1 with the reason (no
 * file:line) in err. */
int config_set(struct config *cfg, const char *section, const char *key,
    const char *value, char *err, size_t errlen);

/* config_set() of a [host] key. */
int config_set_host(struct config *cfg, const char *key, const char *value,
    char *err, size_t errlen);

/* Replace *field with an owned copy of value (borrowed); the old string is
 * freed.  Returns 0 or -ENOMEM (then *field is unchanged). */
int config_set_string(char **field, const char *value);

/* "inprocess" -> ISOLATION_NONE, "process" -> ISOLATION_PROCESS, else
 * -1. */
int config_isolation_parse(const char *s);

/* The value of `key` in [plugin:plugin], or NULL.  Borrowed from cfg. */
const char *config_plugin_value(const struct config *cfg, const char *plugin,
    const char *key);

/* The route of `subject`, or NULL.  Borrowed from cfg. */
const struct config_route *config_route_of(const struct config *cfg,
    const char *subject);

/* The line of cfg->path that set `key` of [section], or 0 when it was
 * not in the file. */
int config_key_line(const struct config *cfg, const char *section,
    const char *key);

/* Free what cfg owns; cfg may be zeroed or NULL. */
void config_fini(struct config *cfg);

#endif /* CMDHOST_CONFIG_H */
