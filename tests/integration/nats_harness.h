/*
 * nats_harness.h - a real nats-server for the NATS integration tests, and
 * a small cnats client.  Like harness.h, nothing here asserts: helpers
 * return an error value and the test decides.
 */
#ifndef CMDHOST_NATS_HARNESS_H
#define CMDHOST_NATS_HARNESS_H

#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>
#include <nats/nats.h>

struct natsd;

/*
 * Start `nats-server -a 127.0.0.1 -p PORT -js -sd DIR` on a free loopback
 * port (picked by binding port 0; retried on a clash) with a temp store
 * dir, and wait (bounded) until it accepts TCP connections.  Returns new
 * (natsd_free), or NULL with the reason on stderr.
 */
struct natsd *natsd_start(void);

/* natsd_start() without JetStream (no -js): the JetStream API has no
 * responders, for tests of what depends on it being down. */
struct natsd *natsd_start_without_js(void);

/* SIGTERM the server and wait for it.  Returns 0 or -1.  The port and
 * the store dir are kept for natsd_restart(). */
int natsd_stop(struct natsd *n);

/* Start it again on the same port and store.  Returns 0 or -1. */
int natsd_restart(struct natsd *n);

/* Stop it if it runs (SIGKILL), remove its dir, free.  NULL is ok. */
void natsd_free(struct natsd *n);

/* "nats://127.0.0.1:PORT".  Borrowed. */
const char *natsd_url(const struct natsd *n);

/* Dump the server's log tail to stderr (for a failing test). */
void natsd_dump_log(const struct natsd *n);

/*
 * The daemon config text for harness daemon_opts.config: a [nats] section
 * pointing at n, then `extra` (may be NULL).  Returns a new string (free).
 */
char *natsd_config(const struct natsd *n, const char *extra);

/*
 * Start a harness daemon with `plugins` whose config is `head` (may be
 * NULL: [host] keys before the [nats] section), natsd_config(n, extra),
 * and wait until it has subscribed to `ready_cmd` over NATS; a failure
 * fails the test (with the logs).  Returns the daemon (daemon_free).
 */
struct daemon *nats_daemon_start(struct natsd *n, const char *const *plugins,
    const char *head, const char *extra, const char *ready_cmd);

/* Calls of `command` that d counted (host.stats over its socket), 0 if
 * none or no answer. */
long daemon_calls_of(struct daemon *d, const char *command);

/* Connect a client to n.  Returns the connection (natsConnection_Destroy)
 * or NULL. */
natsConnection *nclient_connect(const struct natsd *n);

/*
 * Request `command` (subject cmdhost.cmd.<command>) with `payload` (NULL:
 * empty), optional Cmdhost-Id `id_json` and Cmdhost-Timeout-Ms (0: none),
 * waiting up to wait_ms.  Returns the parsed reply (put it) and
 * *st = NATS_OK, or NULL and *st = the failure (NATS_TIMEOUT,
 * NATS_NO_RESPONDERS, ...).
 */
json_object *nclient_call(natsConnection *nc, const char *command,
    const char *payload, const char *id_json, int timeout_ms, int wait_ms,
    natsStatus *st);

/* nclient_call() with the header Idempotency-Key `idem_key` (NULL:
 * none). */
json_object *nclient_call_keyed(natsConnection *nc, const char *command,
    const char *payload, const char *idem_key, int timeout_ms, int wait_ms,
    natsStatus *st);

/* Count the lines of file `path` that equal each integer 0..n-1, into
 * counts (n ints, zeroed first).  Returns the number of lines read, or -1
 * if the file cannot be read (a missing file counts as empty: 0). */
long count_ids(const char *path, int *counts, int n);

/* Run node with tests/nats/<script> and args; returns its stdout parsed
 * as JSON (put it), or NULL (stderr printed). */
json_object *node_run(const char *script, const char *arg1,
    const char *arg2, int timeout_ms);

#endif /* CMDHOST_NATS_HARNESS_H */
