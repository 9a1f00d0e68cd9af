/*
 * config.h - the daemon's configuration: defaults, the ini file, checks.
 *
 * config_load() parses the file with inih and fills a struct config; it
 * never logs and never exits: errors come back as "FILE:LINE: reason".
 */
#ifndef CMDHOST_CONFIG_H
#define CMDHOST_CONFIG_H

#include <stddef.h>
#include <sys/types.h>

#include "config_nats.h"

#define CONFIG_MAX_ADMIN_UIDS 64

/* One key of a [plugin:NAME] section. */
struct plugin_kv {
	char *plugin; /* owned */
	char *key;    /* owned */
	char *value;  /* owned */
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
	int max_connections;
	int default_timeout_ms;
	int shutdown_timeout_ms;
	int watch;           /* inotify on plugin_dir */
	int reload_debounce_ms; /* quiet time before a changed file loads */
	int log_level;       /* enum log_level */
	int log_format;      /* enum log_format */
	char *service;       /* owned: the "service" of every log line */
	int access_log;      /* one log line per request */
	int reply_request_id;/* every reply carries "request_id" */
	uid_t admin_uids[CONFIG_MAX_ADMIN_UIDS];
	int n_admin_uids;
	struct plugin_kv *plugin_kvs; /* owned array */
	size_t n_plugin_kvs;
	struct nats_config nats; /* [nats] and [jetstream] */
};

/* Fill cfg with the defaults (strings are owned copies).  Returns 0 or
 * -ENOMEM.  Release with config_fini(). */
int config_init(struct config *cfg);

/* Parse the ini file at path into cfg (which config_init() prepared).
 * Returns 0, or -1 with "FILE:LINE: reason" (or "FILE: reason") in err. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* Set a [host] key from text, as the file would; used by the parser and by
 * tests.  Returns 0 or -1 with the reason (no file:line) in err. */
int config_set_host(struct config *cfg, const char *key, const char *value,
    char *err, size_t errlen);

/* Replace *field with a copy of value.  Returns 0 or -ENOMEM. */
int config_set_string(char **field, const char *value);

/* The value of `key` in [plugin:plugin], or NULL.  Borrowed from cfg. */
const char *config_plugin_value(const struct config *cfg, const char *plugin,
    const char *key);

/* Free what cfg owns; cfg may be zeroed or NULL. */
void config_fini(struct config *cfg);

#endif /* CMDHOST_CONFIG_H */
