/*
 * nats_api.h - the seam between cmdhostd and its NATS module.
 *
 * The daemon never links libnats.  When the configuration has a [nats]
 * section it dlopens cmdhost-nats.so (built from host/nats_bridge.c,
 * nats_srv.c and nats_js.c, linked with -lnats) and talks to it through
 * two tables of function pointers: the host's (run a command, list
 * commands, be told when the command table changes, log) and the
 * module's (start, stop).  Both begin with their size and a version, as
 * the plugin ABI does, so a stale module is refused rather than called.
 */
#ifndef CMDHOST_NATS_API_H
#define CMDHOST_NATS_API_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define NATS_API_VERSION 1
/* The module's one exported symbol. */
#define NATS_MODULE_SYMBOL "cmdhost_nats_module"

struct nats_config;

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

	/* Log one line at `level` (enum log_level). */
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
};

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
};

#endif /* CMDHOST_NATS_API_H */
