/*
 * nats_bridge.h - inside the NATS module (cmdhost-nats.so): what its
 * files share.  nats_bridge.c owns the connection and the per-command
 * subscriptions, nats_srv.c answers $SRV discovery, nats_js.c consumes
 * the JetStream work queue, nats_kv.c keeps the idempotency bucket;
 * nats_cli.c is the client side, for cmdhost --nats.  Nothing outside
 * the module includes this.
 */
#ifndef CMDHOST_NATS_BRIDGE_H
#define CMDHOST_NATS_BRIDGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <nats/nats.h>

#include "core/nats_api.h"

/* The request headers: the client's id (JSON text) and its deadline. */
#define HDR_ID "Cmdhost-Id"
#define HDR_TIMEOUT "Cmdhost-Timeout-Ms"
#define HDR_IDEM "Idempotency-Key"

/* One command as a NATS endpoint.  Kept (with its counters) until the
 * bridge stops, even while its command is gone; sub is NULL then. */
struct endpoint {
	struct endpoint *next;
	struct bridge *b;
	char *name;                 /* owned: the command */
	char *subject;              /* owned: prefix + name */
	char *summary;              /* owned or NULL */
	natsSubscription *sub;      /* owned, or NULL: not subscribed */
	natsSubscription *old_sub;  /* owned: drained after its command went
	                             * (requests it holds get their 404) */
	atomic_uint_fast64_t num_requests;
	atomic_uint_fast64_t num_errors;
	atomic_uint_fast64_t processing_ns;
	char last_error[160];       /* under bridge lock */
};

struct nats_js;
struct nats_kv;

struct bridge {
	const struct nats_host_api *api;  /* borrowed */
	const struct nats_config *cfg;    /* borrowed */
	natsOptions *opts;
	natsConnection *nc;
	char id[24];                /* this daemon's service instance id */
	char started[40];           /* RFC 3339, for $SRV.STATS */
	pthread_mutex_t lock;       /* endpoints, dirty, stopping */
	pthread_cond_t cond;
	struct endpoint *endpoints;
	int dirty;                  /* the command table changed */
	int stopping;
	int closed;                 /* libnats called the closed callback */
	pthread_t sync_thread;
	int sync_started;
	natsSubscription *srv_subs[9];
	struct nats_js *js;
	struct nats_kv *kv;         /* the idempotency bucket, or NULL */
	struct nats_kv *wkv;        /* the workflow bucket, or NULL */
	jsCtx *pub_js;              /* event_publish()'s, made on first use */
	atomic_int requests;        /* nats_request()s not answered yet */
	natsSubscription *pub_sub;  /* event_publish_many()'s acks, on
	                             * pub_inbox.*, made on first use */
	char pub_inbox[64];
	uint64_t pub_round;         /* its rounds: a late ack of an old
	                             * round is told apart */
};

/* nats_bridge.c */
void bridge_log(const struct bridge *b, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Count one finished request of ep (status, elapsed ns). */
void bridge_count(struct bridge *b, struct endpoint *ep, int status,
    int64_t ns, const char *reply, size_t len);
int64_t bridge_now_ns(void);

/* nats_srv.c: subscribe/unsubscribe the $SRV subjects.  Returns 0 or -1
 * (logged). */
int srv_start(struct bridge *b);
void srv_stop(struct bridge *b);

/* nats_js.c: start the consumer thread (it creates or binds the stream
 * and the durable consumer, retrying while NATS is down).  Returns new
 * (js_stop frees) or NULL (logged). */
struct nats_js *js_start(struct bridge *b);
/* Stop fetching, wait (until deadline_ns) for the events held to finish
 * and be acked, then free.  NULL is ok. */
void js_stop(struct nats_js *js, int64_t deadline_ns);

/* nats_kv.c: start the thread that binds bucket (borrowed from the
 * config; created if absent with TTL ttl_s, 0: none; retrying while NATS
 * is down); `what` (static) names it in the log.  Returns new (kv_stop
 * frees) or NULL (logged). */
struct nats_kv *kv_start(struct bridge *b, const char *bucket, int ttl_s,
    const char *what);
/* Stop binding and free; no operation may run any more.  NULL is ok. */
void kv_stop(struct nats_kv *k);
/* The module table's kv_begin, kv_update and kv_delete (nats_api.h);
 * bp is the bridge. */
int kv_begin(void *bp, const char *key, const void *val, size_t len,
    uint64_t *rev, void **old, size_t *oldlen, char *err, size_t errlen);
int kv_update(void *bp, const char *key, const void *val, size_t len,
    uint64_t last, uint64_t *rev, char *err, size_t errlen);
int kv_delete(void *bp, const char *key, uint64_t last, char *err,
    size_t errlen);
/* The module table's kvb_* entries (nats_api.h): the same on the bucket
 * `which` (NATS_BUCKET_*), and a read and a listing. */
int kvb_begin(void *bp, int which, const char *key, const void *val,
    size_t len, uint64_t *rev, void **old, size_t *oldlen, char *err,
    size_t errlen);
int kvb_update(void *bp, int which, const char *key, const void *val,
    size_t len, uint64_t last, uint64_t *rev, char *err, size_t errlen);
int kvb_delete(void *bp, int which, const char *key, uint64_t last,
    char *err, size_t errlen);
int kvb_get(void *bp, int which, const char *key, void **val, size_t *len,
    uint64_t *rev, char *err, size_t errlen);
int kvb_keys(void *bp, int which, char ***keys, size_t *n, char *err,
    size_t errlen);

/* nats_pub.c: the module table's event_publish (nats_api.h). */
int event_publish(void *bp, const char *subject, const char *data,
    size_t len, const char *msg_id, char *err, size_t errlen);
/* nats_pub.c: the module table's event_publish_many (nats_api.h). */
size_t event_publish_many(void *bp, size_t n, const char *const *subjects,
    const char *const *data, const size_t *lens, const char *const *msg_ids,
    int *ok, char *err, size_t errlen);

/* nats_req.c: the module table's request (nats_api.h). */
int nats_request(void *bp, const char *command, const char *payload,
    size_t len, const char *id_text, const char *idem_key,
    int64_t timeout_ms, nats_reply_fn fn, void *arg, char *err,
    size_t errlen);

#endif /* CMDHOST_NATS_BRIDGE_H */
