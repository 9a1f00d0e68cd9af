/*
 * nats_api.h - the seam between cmdhostd, cmdhost and their NATS module.
 *
 * Neither program links libnats.  When the configuration has a [nats]
 * section the daemon dlopens cmdhost-nats.so (built from host/nats/,
 * linked with -lnats) and talks to it through two tables of function
 * pointers: the host's (run a command, list commands, be told when the
 * command table changes, log) and the module's (start, stop).  The
 * client's --nats verbs load the same module (core/module.c finds it for
 * both) and call a third table, the module's struct nats_cli.  Every
 * table begins with its size and a version, as the plugin ABI does, so a
 * stale module is refused rather than called.  The [nats] configuration
 * the module reads crosses the same way: struct nats_config is defined
 * here, not in a daemon header, and carries its own size and version.
 *
 * Everything the module sees of the host is in this file: the module
 * includes no other host header (its log levels are below too).
 */
#ifndef CMDHOST_NATS_API_H
#define CMDHOST_NATS_API_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Version 2: struct nats_config crosses with a size and a version, and
 * the module exports the client's table too. */
#define NATS_API_VERSION 2
/* The module's table for cmdhostd (struct nats_module). */
#define NATS_MODULE_SYMBOL "cmdhost_nats_module"
/* The module's table for cmdhost --nats (struct nats_cli). */
#define NATS_CLI_SYMBOL "cmdhost_nats_cli"
/* The module's file name (core/module.c says where it is looked for). */
#define NATS_MODULE_FILE "cmdhost-nats.so"

/*
 * The levels of nats_host_api.logv.  They equal core/log.h's enum
 * log_level (nats_host_start() asserts it at compile time), so the host
 * passes them on as they are; the module uses these, never log.h.
 */
#define NLOG_DEBUG 0
#define NLOG_INFO  1
#define NLOG_WARN  2
#define NLOG_ERROR 3

/*
 * The layout version of struct nats_config.  Bump it when a field changes
 * type, meaning or place; a field appended at the end only grows `size`
 * (a module reads a config of at least NATS_CONFIG_MIN bytes, and the
 * fields appended after it only when NATS_CONFIG_HAS says they are
 * there).
 */
#define NATS_CONFIG_VERSION 1

/*
 * The [nats] and [jetstream] sections of cmdhost.ini.  core/config.c's
 * key table fills it by field offsets (config_init() sets size and
 * version; see core/config_nats.h for the rules of its keys); the strings
 * are owned by the configuration, and the module borrows the whole struct
 * through nats_host_api.cfg for as long as the host lives.
 */
struct nats_config {
	size_t size;             /* sizeof(struct nats_config) */
	int version;             /* NATS_CONFIG_VERSION */
	int enabled;             /* a [nats] section was seen */
	char *url;               /* owned: one or several, comma-separated */
	char *subject_prefix;    /* owned: "cmdhost.cmd." */
	char *queue_group;       /* owned: "cmdhost" */
	char *service_name;      /* owned: "cmdhost" ($SRV discovery) */
	char *credentials;       /* owned or NULL: a .creds file */
	char *user;              /* owned or NULL */
	char *password;          /* owned or NULL */
	char *token;             /* owned or NULL */
	char *tls_ca;            /* owned or NULL: CA file, turns TLS on */
	char *module;            /* owned or NULL: path of cmdhost-nats.so */
	int reconnect_wait_ms;
	int max_reconnect;       /* -1: forever */
	int delivery_threads;    /* cnats message delivery threads */
	int send_asap;           /* replies leave at once (no 1 ms batch) */

	int js_enabled;          /* a [jetstream] section was seen */
	char *js_stream;         /* owned: "CMDHOST_EVENTS" */
	char *js_subjects;       /* owned: "cmdhost.events.>" (comma list) */
	char *js_durable;        /* owned: "cmdhost" */
	char *js_dead_letter;    /* owned: prefix, "cmdhost.dead." */
	int js_ack_wait_ms;      /* 0: default_timeout_ms + 5000 */
	int js_max_deliver;
	int js_nak_delay_ms;
	int js_fetch_batch;
	int js_max_inflight;     /* events held at once by this daemon */

	/* Appended (check NATS_CONFIG_HAS): the idempotency bucket. */
	char *js_idem_bucket;    /* owned or NULL: JetStream KV bucket that
	                          * holds keyed NATS calls' records; NULL or
	                          * "": off */
	int js_idem_ttl_s;       /* the bucket's TTL: [host] idempotency_ttl_s */

	/* Appended (check NATS_CONFIG_HAS): the workflow bucket. */
	char *js_wf_bucket;      /* owned or NULL: JetStream KV bucket that
	                          * holds unfinished workflow executions and
	                          * their owners; NULL or "": off */
	int js_wf_lease_ms;      /* a daemon whose heartbeat in it did not
	                          * change for this long is dead */
};

/* Does the config c (a struct nats_config *) have member m? */
#define NATS_CONFIG_HAS(c, m) \
	((c)->size >= offsetof(struct nats_config, m) + sizeof((c)->m))
/* The smallest config a module reads: the one before js_idem_bucket. */
#define NATS_CONFIG_MIN offsetof(struct nats_config, js_idem_bucket)

/*
 * Called exactly once per nats_host_api.call, on any thread (maybe before
 * call returns): `reply` is the reply object's JSON text, as the socket
 * sends it but without the '\n', `len` bytes and NUL-terminated, borrowed
 * for the call;
 * `status` is its status.
 */
typedef void (*nats_reply_fn)(void *arg, const char *reply, size_t len,
    int status);

struct nats_host_api {
	size_t size;                    /* sizeof(struct nats_host_api) */
	int version;                    /* NATS_API_VERSION */
	void *host;                     /* first argument of the calls below */
	const struct nats_config *cfg;  /* borrowed, lives as long as the host */
	int default_timeout_ms;
	int shutdown_timeout_ms;
	const char *daemon_version;     /* "0.1.0" */

	/* Log one line at `level` (an NLOG_* level). */
	void (*logv)(int level, const char *fmt, va_list ap);

	/*
	 * Run `command` with the payload text (len bytes, borrowed; empty
	 * means {}), the client's id as JSON text (NULL: none) and a timeout
	 * (<= 0: the default).  fn(arg, ...) is called exactly once with the
	 * reply: 404 for an unknown command, 400 for a payload that is not
	 * JSON or fails the declared fields, 503 when the pool is full or the
	 * daemon is stopping, 504 when the deadline passes first, else the
	 * command's own.  Any thread; the host gives each thread its own
	 * registry reader slot.
	 */
	void (*call)(void *host, const char *command, const char *payload,
	    size_t len, const char *id_text, int64_t timeout_ms,
	    nats_reply_fn fn, void *arg);

	/* Returns a new JSON array of {"name", "summary", "plugin",
	 * "version"}, one per command now published (put it). */
	struct json_object *(*commands)(void *host);

	/* Have fn(arg) called after every change of the command table (fn
	 * NULL: stop).  fn runs under the registry's lock: it must only take
	 * note and return. */
	void (*on_change)(void *host, void (*fn)(void *arg), void *arg);

	/* Calls started by `call` that have not replied yet. */
	int (*in_flight)(void *host);

	/* Set up the calling thread the way the host's threads are (C
	 * locale object); call first thing in threads the module creates. */
	void (*thread_init)(void);

	/* Appended (check size): call() with the request's idempotency key
	 * (NUL-terminated, borrowed; NULL: none), as the NATS header
	 * Idempotency-Key carries it. */
	void (*call_keyed)(void *host, const char *command,
	    const char *payload, size_t len, const char *id_text,
	    int64_t timeout_ms, const char *idem_key, nats_reply_fn fn,
	    void *arg);
};

/* Does the host table t have member m? */
#define NATS_HOST_HAS(t, m) \
	((t)->size >= offsetof(struct nats_host_api, m) + sizeof((t)->m))
/* The smallest host table a module accepts: the one before call_keyed. */
#define NATS_HOST_API_MIN offsetof(struct nats_host_api, call_keyed)

/*
 * What the module's idempotency-bucket entries return.  Every one of them
 * is a few round trips to the JetStream server at most, bounded by the
 * module's JetStream timeout.
 */
#define NATS_KV_OK          0  /* created, updated or deleted */
#define NATS_KV_EXISTS      1  /* kv_begin: the key has a live value */
#define NATS_KV_CONFLICT    2  /* the revision is no longer the last one
                                * (someone else wrote), or the key changed
                                * under kv_begin: read it again */
#define NATS_KV_UNAVAILABLE 3  /* no bucket bound yet, NATS or JetStream
                                * down or failing: err says why */
#define NATS_KV_ABSENT      4  /* kvb_get: the key has no live value */

/* The buckets the kvb_* entries of struct nats_module name. */
#define NATS_BUCKET_IDEM     0 /* [jetstream] idempotency_bucket */
#define NATS_BUCKET_WORKFLOW 1 /* [jetstream] workflow_bucket */

struct nats_module {
	size_t size;                    /* sizeof(struct nats_module) */
	int version;                    /* NATS_API_VERSION */
	/* Connect (or keep trying in the background), subscribe and start
	 * consuming.  api is borrowed and must outlive the bridge.  Returns
	 * the bridge (stop frees it), or NULL with the reason in err. */
	void *(*start)(const struct nats_host_api *api, char *err,
	    size_t errlen);
	/* Stop fetching events, finish and ack the ones held, drain the
	 * subscriptions, wait (until deadline_ns, CLOCK_MONOTONIC) for calls
	 * to reply, close the connection and free the bridge. */
	void (*stop)(void *bridge, int64_t deadline_ns);

	/*
	 * Appended (check NATS_MODULE_HAS): the records of keyed NATS calls
	 * in the JetStream key-value bucket [jetstream] idempotency_bucket,
	 * which the module creates if absent once connected (history 1, TTL
	 * js_idem_ttl_s).  `key` is a KV key name ([-_=.A-Za-z0-9]) and the
	 * values are opaque bytes; all arguments are borrowed for the call;
	 * err gets the reason of NATS_KV_UNAVAILABLE.  Any thread, the
	 * module's delivery threads included.
	 *
	 * kv_begin: create key with val[0..len) unless it holds a value:
	 * NATS_KV_OK and *rev its revision; or NATS_KV_EXISTS and the live
	 * value in *old (malloc(3)ed: free(3) it), *oldlen and *rev; or
	 * NATS_KV_CONFLICT (it vanished between the two looks: begin again)
	 * or NATS_KV_UNAVAILABLE, with *old NULL.
	 */
	int (*kv_begin)(void *bridge, const char *key, const void *val,
	    size_t len, uint64_t *rev, void **old, size_t *oldlen, char *err,
	    size_t errlen);
	/* Replace key's value with val[0..len) if its last revision is
	 * `last`: NATS_KV_OK and *rev the new one, NATS_KV_CONFLICT, or
	 * NATS_KV_UNAVAILABLE. */
	int (*kv_update)(void *bridge, const char *key, const void *val,
	    size_t len, uint64_t last, uint64_t *rev, char *err, size_t errlen);
	/* Delete key (a delete marker, as kvStore_Delete puts) if its last
	 * revision is `last`: NATS_KV_OK, NATS_KV_CONFLICT or
	 * NATS_KV_UNAVAILABLE. */
	int (*kv_delete)(void *bridge, const char *key, uint64_t last,
	    char *err, size_t errlen);

	/*
	 * Appended (check NATS_MODULE_HAS): publish one of the daemon's
	 * events, data[0..len) on `subject`, and return only once the server
	 * has it: to JetStream with the header Nats-Msg-Id `msg_id` when a
	 * stream takes the subject (waiting for the stream's ack), else a
	 * plain message (with the same header) and a flush.  Nothing is
	 * buffered while disconnected.  Returns NATS_PUB_OK, or
	 * NATS_PUB_UNAVAILABLE with the reason in err (the caller keeps the
	 * event and retries).  All arguments borrowed.  One thread at a
	 * time, never after stop began.
	 */
	int (*event_publish)(void *bridge, const char *subject,
	    const char *data, size_t len, const char *msg_id, char *err,
	    size_t errlen);

	/*
	 * Appended (check NATS_MODULE_HAS): request `command` of whichever
	 * daemon serves it (on <subject_prefix><command>, its queue group)
	 * with the payload text (len bytes), the headers Cmdhost-Id
	 * (id_text, JSON text, NULL: none), Cmdhost-Timeout-Ms (timeout_ms,
	 * <= 0: the default) and Idempotency-Key (idem_key, NULL: none).
	 * Returns 0 and fn(arg, reply, len, status) is called exactly once,
	 * on another thread, with the other daemon's reply object, or one of
	 * the module's: 404 unknown_command (no responders), 504 timeout,
	 * 503 unavailable, 502 bad_gateway (not a reply object).  Returns -1
	 * with the reason in err when the request cannot start (not
	 * connected, stopping): then fn is never called.  All arguments are
	 * borrowed for the call.  Any thread, before stop.
	 */
	int (*request)(void *bridge, const char *command, const char *payload,
	    size_t len, const char *id_text, const char *idem_key,
	    int64_t timeout_ms, nats_reply_fn fn, void *arg, char *err,
	    size_t errlen);

	/*
	 * Appended (check NATS_MODULE_HAS): event_publish() for n events at
	 * once: all are sent, then their acks are awaited together (one
	 * round trip for the round, not one per event).  ok[i] is set to 1
	 * for each event the server has, 0 for the others (the caller keeps
	 * and retries them); err gets the first failure's reason.  Arrays
	 * borrowed, n entries each.  Returns how many are ok.  One thread at
	 * a time, never after stop began.
	 */
	size_t (*event_publish_many)(void *bridge, size_t n,
	    const char *const *subjects, const char *const *data,
	    const size_t *lens, const char *const *msg_ids, int *ok,
	    char *err, size_t errlen);

	/*
	 * Appended (check NATS_MODULE_HAS): kv_begin, kv_update and
	 * kv_delete on the bucket `bucket` names (a NATS_BUCKET_*), plus a
	 * read and a listing.  The workflow bucket ([jetstream]
	 * workflow_bucket) is created if absent once connected (history 1,
	 * file storage, no TTL).  A bucket that is not configured answers
	 * NATS_KV_UNAVAILABLE.  Same rules as kv_begin: borrowed arguments,
	 * any thread, until stop.
	 */
	int (*kvb_begin)(void *bridge, int bucket, const char *key,
	    const void *val, size_t len, uint64_t *rev, void **old,
	    size_t *oldlen, char *err, size_t errlen);
	int (*kvb_update)(void *bridge, int bucket, const char *key,
	    const void *val, size_t len, uint64_t last, uint64_t *rev,
	    char *err, size_t errlen);
	int (*kvb_delete)(void *bridge, int bucket, const char *key,
	    uint64_t last, char *err, size_t errlen);
	/* key's live value: NATS_KV_OK with a malloc(3)ed copy in *val
	 * (NUL-terminated; free(3) it), its length and revision; or
	 * NATS_KV_ABSENT (none, or deleted) or NATS_KV_UNAVAILABLE, *val
	 * NULL. */
	int (*kvb_get)(void *bridge, int bucket, const char *key, void **val,
	    size_t *len, uint64_t *rev, char *err, size_t errlen);
	/* The keys with a live value: NATS_KV_OK with *keys a malloc(3)ed
	 * array of *n malloc(3)ed strings (free each, then the array; NULL
	 * when there are none), or NATS_KV_UNAVAILABLE. */
	int (*kvb_keys)(void *bridge, int bucket, char ***keys, size_t *n,
	    char *err, size_t errlen);
};

/* What event_publish returns. */
#define NATS_PUB_OK          0
#define NATS_PUB_UNAVAILABLE 1

/* Does the module table t have member m? */
#define NATS_MODULE_HAS(t, m) \
	((t)->size >= offsetof(struct nats_module, m) + sizeof((t)->m))
/* The smallest module table a host accepts: the one before kv_begin. */
#define NATS_MODULE_MIN offsetof(struct nats_module, kv_begin)

/* What the calls of struct nats_cli return. */
#define NATS_CLI_OK            0
#define NATS_CLI_NO_RESPONDERS 1  /* request: nobody subscribes the subject */
#define NATS_CLI_FAILED        2  /* no connection, no answer, bad answer */

/*
 * cmdhost --nats: the client side, one connection per call (opened to
 * `url`, a comma-separated list as [nats] url takes, and closed before
 * returning, with cnats' globals).  The module speaks NATS; the client
 * keeps the verbs' arguments, output and exit statuses.  Every string
 * argument is borrowed for the call.  On NATS_CLI_FAILED (and
 * NATS_CLI_NO_RESPONDERS) err holds the reason, without a "cmdhost: "
 * prefix; nothing is printed.
 */
struct nats_cli {
	size_t size;                    /* sizeof(struct nats_cli) */
	int version;                    /* NATS_API_VERSION */

	/*
	 * Request `subject` with data[0..len), the Cmdhost-Id header
	 * `id_text` (JSON text; NULL: none) and Cmdhost-Timeout-Ms
	 * `timeout_ms` (<= 0: none), waiting up to wait_ms for the reply.
	 * Returns NATS_CLI_OK with the reply object in *reply (put it), or
	 * *reply NULL and NATS_CLI_NO_RESPONDERS or NATS_CLI_FAILED (also
	 * when the reply is not JSON).
	 */
	int (*request)(const char *url, const char *subject, const char *data,
	    size_t len, const char *id_text, int64_t timeout_ms,
	    int64_t wait_ms, struct json_object **reply, char *err,
	    size_t errlen);

	/*
	 * Publish an empty request on `subject` ("$SRV.INFO.<service>") and
	 * collect every JSON reply until none came for wait_ms.  Returns
	 * NATS_CLI_OK with a new array in *all (put it; maybe empty), or
	 * NATS_CLI_FAILED with *all NULL.
	 */
	int (*discover)(const char *url, const char *subject, int64_t wait_ms,
	    struct json_object **all, char *err, size_t errlen);

	/*
	 * Publish data[0..len) to JetStream on `subject` and wait for the
	 * stream's ack.  Returns NATS_CLI_OK with a new {"stream", "seq"} in
	 * *ack (put it), or NATS_CLI_FAILED with *ack NULL (no stream takes
	 * the subject is a failure too, err says so).
	 */
	int (*publish)(const char *url, const char *subject, const char *data,
	    size_t len, struct json_object **ack, char *err, size_t errlen);

	/* Appended (check NATS_CLI_HAS): request() with the header
	 * Idempotency-Key `idem_key` (NULL: none), as the daemons read it. */
	int (*request_keyed)(const char *url, const char *subject,
	    const char *data, size_t len, const char *id_text,
	    int64_t timeout_ms, int64_t wait_ms, const char *idem_key,
	    struct json_object **reply, char *err, size_t errlen);

	/* publish() with the header Nats-Msg-Id `msg_id` (NULL: none): the
	 * stream drops a message whose id it saw within its duplicate
	 * window, and acks it again; *ack then has "duplicate": true. */
	int (*publish_keyed)(const char *url, const char *subject,
	    const char *data, size_t len, const char *msg_id,
	    struct json_object **ack, char *err, size_t errlen);
};

/* Does the client table t have member m? */
#define NATS_CLI_HAS(t, m) \
	((t)->size >= offsetof(struct nats_cli, m) + sizeof((t)->m))
/* The smallest client table cmdhost accepts: the one before
 * request_keyed. */
#define NATS_CLI_MIN offsetof(struct nats_cli, request_keyed)

#endif /* CMDHOST_NATS_API_H */
