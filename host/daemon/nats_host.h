/*
 * nats_host.h - the daemon's side of NATS: load cmdhost-nats.so when the
 * configuration has a [nats] section and serve the table it calls.
 *
 * Without [nats] nothing here runs and libnats is never mapped.  The
 * module is looked for at [nats] module, else where core/module.h says
 * (<dir of cmdhostd>/lib/, <dir>/../lib/cmdhost/, CMDHOST_LIBDIR).
 */
#ifndef CMDHOST_NATS_HOST_H
#define CMDHOST_NATS_HOST_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct daemon_stats;
struct dispatch;
struct registry;
struct nats_host;

/*
 * Load the module and start the bridge (it connects in the background; a
 * NATS server that is down is not an error).  All pointers are borrowed
 * and must outlive the host.  Returns new (nats_host_stop, then
 * nats_host_free), or NULL with the reason in err.
 */
struct nats_host *nats_host_start(const struct config *cfg,
    struct registry *reg, struct dispatch *disp, struct daemon_stats *stats,
    const char *daemon_version, char *err, size_t errlen);

/* Stop the bridge: no new NATS work, replies of running calls sent (until
 * deadline_ns, CLOCK_MONOTONIC), connection closed.  NULL is ok. */
void nats_host_stop(struct nats_host *h, int64_t deadline_ns);

/* Publish an event (all borrowed) and return once NATS has it: 0, or
 * -1 with the reason in err (not connected, no ack, a module without
 * event_publish): keep it and retry.  One thread at a time. */
int nats_host_publish(struct nats_host *h, const char *subject,
    const char *data, size_t len, const char *msg_id, char *err,
    size_t errlen);

/*
 * Request command of whichever daemon serves it over NATS (its queue
 * group), with the payload text (len bytes), the caller's id (JSON text,
 * NULL: none), an idempotency key (NULL: none) and a timeout (<= 0: the
 * default); all borrowed for the call.  Returns 0 and fn(arg, reply,
 * len, status) runs once, on another thread, with the reply object's
 * text (borrowed for fn): the other daemon's, or 404 (nobody serves
 * it), 503, 504.  Returns -1 with the reason in err (stopped, not
 * connected, an older module): then fn never runs.
 */
int nats_host_request(struct nats_host *h, const char *command,
    const char *payload, size_t len, const char *id_text,
    const char *idem_key, int64_t timeout_ms,
    void (*fn)(void *arg, const char *reply, size_t len, int status),
    void *arg, char *err, size_t errlen);

/* nats_host_publish() for n events at once (every array borrowed, n
 * entries): one round trip for the round.  ok[i] is set to 1 for each
 * event NATS has, 0 for those to keep and retry; err gets the first
 * failure's reason.  Returns 0.  One thread at a time. */
int nats_host_publish_many(struct nats_host *h, size_t n,
    const char *const *subjects, const char *const *data, const size_t *lens,
    const char *const *msg_ids, int *ok, char *err, size_t errlen);

/*
 * The workflow bucket ([jetstream] workflow_bucket) through the module's
 * kvb_* entries (core/nats_api.h has their rules and the NATS_KV_*
 * results they return).  Every string is borrowed for the call; err gets
 * the reason of NATS_KV_UNAVAILABLE, which is also the answer once
 * nats_host_stop() began (it waits for the operations running).  Any
 * thread.  nats_host_has_wf_bucket(): 1 when the bucket is configured
 * and the module has the entries.
 *
 * create: NATS_KV_OK and *rev, NATS_KV_EXISTS, NATS_KV_UNAVAILABLE.
 * update, delete: compare-and-set on `last`: NATS_KV_OK (*rev the new
 * revision), NATS_KV_CONFLICT, NATS_KV_UNAVAILABLE.
 * get: NATS_KV_OK with *val a new NUL-terminated copy (free it),
 * NATS_KV_ABSENT, NATS_KV_UNAVAILABLE.
 * keys: NATS_KV_OK with *keys a new array of *n new strings (free each,
 * then it; NULL when none), NATS_KV_UNAVAILABLE.
 */
int nats_host_has_wf_bucket(const struct nats_host *h);
int nats_host_wkv_create(struct nats_host *h, const char *key,
    const char *val, size_t len, uint64_t *rev, char *err, size_t errlen);
int nats_host_wkv_update(struct nats_host *h, const char *key,
    const char *val, size_t len, uint64_t last, uint64_t *rev, char *err,
    size_t errlen);
int nats_host_wkv_delete(struct nats_host *h, const char *key, uint64_t last,
    char *err, size_t errlen);
int nats_host_wkv_get(struct nats_host *h, const char *key, char **val,
    size_t *len, uint64_t *rev, char *err, size_t errlen);
int nats_host_wkv_keys(struct nats_host *h, char ***keys, size_t *n,
    char *err, size_t errlen);

/* Free the host; only after dispatch_stop() returned 0 (calls it
 * started report back to it).  NULL is ok. */
void nats_host_free(struct nats_host *h);

#endif /* CMDHOST_NATS_HOST_H */
