/*
 * nats_kv.c - the key-value buckets of the NATS module: JetStream
 * key-value buckets shared by every daemon of the queue group.  In
 * [jetstream] idempotency_bucket the host keeps the records of keyed
 * NATS calls (host/daemon/idem_kv.c decides what they hold), in
 * [jetstream] workflow_bucket its unfinished workflow executions and
 * their owners (host/daemon/wf_kv.c); here values are opaque bytes under
 * a key name.
 *
 * A thread per bucket binds it once connected, creating it if absent
 * (history 1, file storage; the idempotency bucket with the TTL [host]
 * idempotency_ttl_s, the workflow bucket without one), and retries
 * while NATS is down, as nats_js.c does for its stream.  The operations
 * are compare-and-set on the revision: create-if-absent (kvStore_Create),
 * update (kvStore_Update) and delete, which publishes the delete marker
 * kvStore_Delete would, but with the expected last revision, so that a
 * daemon whose record was taken over never deletes the new owner's.
 */
#include "nats_bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long one JetStream request (or publish ack) of these operations
 * may take: they run on delivery and pool threads. */
#define KV_WAIT_MS 2000
#define KV_RETRY_MS 500

struct nats_kv {
	struct bridge *b;
	const char *bucket;         /* borrowed from the config */
	const char *what;           /* static: "idempotency", "workflow" */
	int ttl_s;                  /* 0: none */
	char *pre;                  /* owned: "$KV.<bucket>." */
	jsCtx *ctx;
	_Atomic(kvStore *) kv;      /* NULL until bound, then fixed */
	pthread_t thread;
	int started;
	pthread_mutex_t lock;       /* stop */
	pthread_cond_t cond;
	int stop;
};

/* "what: status (last error)" into err. */
static void
kv_err(char *err, size_t errlen, const char *what, natsStatus s)
{
	const char *last = nats_GetLastError(NULL);

	snprintf(err, errlen, "%s: %s%s%s%s", what, natsStatus_GetText(s),
	    last != NULL && *last != '\0' ? " (" : "", last != NULL ? last :
	    "", last != NULL && *last != '\0' ? ")" : "");
}

/* Bind the bucket, creating it if absent.  Returns 0, or -1 to retry. */
static int
kv_bind(struct nats_kv *k)
{
	struct bridge *b = k->b;
	kvStore *kv = NULL;
	kvStatus *st = NULL;
	jsOptions jo;
	kvConfig kc;
	natsStatus s;

	if (k->ctx == NULL) {
		jsOptions_Init(&jo);
		jo.Wait = KV_WAIT_MS;
		if (natsConnection_JetStream(&k->ctx, b->nc, &jo) != NATS_OK) {
			k->ctx = NULL;
			return -1;
		}
	}
	s = js_KeyValue(&kv, k->ctx, k->bucket);
	if (s == NATS_NOT_FOUND) {
		kvConfig_Init(&kc);
		kc.Bucket = k->bucket;
		kc.Description = k->ttl_s > 0 ? "cmdhost idempotency records" :
		    "cmdhost workflow executions";
		kc.History = 1;
		kc.TTL = (int64_t)k->ttl_s * 1000000000LL;
		kc.StorageType = js_FileStorage;
		if ((s = js_CreateKeyValue(&kv, k->ctx, &kc)) != NATS_OK) {
			bridge_log(b, NLOG_WARN, "nats: cannot create the %s "
			    "bucket %s: %s; retrying", k->what, k->bucket,
			    natsStatus_GetText(s));
			return -1;
		}
		if (k->ttl_s > 0)
			bridge_log(b, NLOG_INFO, "nats: created %s bucket %s "
			    "(TTL %d s)", k->what, k->bucket, k->ttl_s);
		else
			bridge_log(b, NLOG_INFO, "nats: created %s bucket %s",
			    k->what, k->bucket);
	} else if (s != NATS_OK) {
		return -1; /* not connected yet, most likely */
	}
	if (kvStore_Status(&st, kv) == NATS_OK) {
		int64_t ttl = kvStatus_TTL(st);

		if (ttl != (int64_t)k->ttl_s * 1000000000LL)
			bridge_log(b, NLOG_WARN, "nats: %s bucket %s has a TTL "
			    "of %lld s, not %d; using it as it is", k->what,
			    k->bucket, (long long)(ttl / 1000000000LL),
			    k->ttl_s);
		kvStatus_Destroy(st);
	}
	atomic_store(&k->kv, kv);
	bridge_log(b, NLOG_INFO, "nats: %s bucket %s ready", k->what,
	    k->bucket);
	return 0;
}

static void *
kv_main(void *arg)
{
	struct nats_kv *k = arg;
	struct timespec ts;

	k->b->api->thread_init();
	pthread_mutex_lock(&k->lock);
	while (!k->stop) {
		pthread_mutex_unlock(&k->lock);
		if (kv_bind(k) == 0) {
			pthread_mutex_lock(&k->lock);
			break;
		}
		pthread_mutex_lock(&k->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += KV_RETRY_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!k->stop)
			pthread_cond_timedwait(&k->cond, &k->lock, &ts);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

struct nats_kv *
kv_start(struct bridge *b, const char *bucket, int ttl_s, const char *what)
{
	struct nats_kv *k = calloc(1, sizeof(*k));
	size_t n;

	if (k == NULL)
		return NULL;
	k->b = b;
	k->bucket = bucket;
	k->what = what;
	k->ttl_s = ttl_s;
	n = strlen(k->bucket) + 6;
	if ((k->pre = malloc(n)) == NULL) {
		free(k);
		return NULL;
	}
	snprintf(k->pre, n, "$KV.%s.", k->bucket);
	atomic_init(&k->kv, NULL);
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->cond, NULL);
	if (pthread_create(&k->thread, NULL, kv_main, k) != 0) {
		bridge_log(b, NLOG_ERROR, "nats: cannot start the %s bucket's "
		    "thread", what);
		kv_stop(k);
		return NULL;
	}
	k->started = 1;
	return k;
}

void
kv_stop(struct nats_kv *k)
{
	if (k == NULL)
		return;
	pthread_mutex_lock(&k->lock);
	k->stop = 1;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
	if (k->started)
		pthread_join(k->thread, NULL);
	kvStore_Destroy(atomic_load(&k->kv));
	jsCtx_Destroy(k->ctx);
	pthread_mutex_destroy(&k->lock);
	pthread_cond_destroy(&k->cond);
	free(k->pre);
	free(k);
}

/* The bucket `which` (NATS_BUCKET_*) of bridge bp (borrowed), or NULL
 * when it is not configured. */
static struct nats_kv *
bucket_of(void *bp, int which)
{
	struct bridge *b = bp;

	return which == NATS_BUCKET_IDEM ? b->kv : which ==
	    NATS_BUCKET_WORKFLOW ? b->wkv : NULL;
}

/* The bound store of k (NULL: not configured), or NULL with the reason
 * in err. */
static kvStore *
bound(struct nats_kv *k, char *err, size_t errlen)
{
	kvStore *kv = k != NULL ? atomic_load(&k->kv) : NULL;

	if (k == NULL)
		snprintf(err, errlen, "no such bucket is configured");
	else if (kv == NULL)
		snprintf(err, errlen, "the %s bucket %s is not bound yet (is "
		    "NATS with JetStream reachable?)", k->what, k->bucket);
	return kv;
}

/* The live value of key: NATS_KV_OK with a copy, NATS_KV_CONFLICT when
 * there is none (absent or deleted), else NATS_KV_UNAVAILABLE. */
static int
get_copy(kvStore *kv, const char *key, uint64_t *rev, void **val,
    size_t *len, char *err, size_t errlen)
{
	kvEntry *e = NULL;
	natsStatus s = kvStore_Get(&e, kv, key);
	int n;

	if (s == NATS_NOT_FOUND)
		return NATS_KV_CONFLICT;
	if (s != NATS_OK) {
		kv_err(err, errlen, "bucket get", s);
		return NATS_KV_UNAVAILABLE;
	}
	n = kvEntry_ValueLen(e);
	*len = n > 0 ? (size_t)n : 0;
	if ((*val = malloc(*len + 1)) == NULL) {
		kvEntry_Destroy(e);
		snprintf(err, errlen, "out of memory");
		return NATS_KV_UNAVAILABLE;
	}
	if (*len > 0)
		memcpy(*val, kvEntry_Value(e), *len);
	((char *)*val)[*len] = '\0';
	*rev = kvEntry_Revision(e);
	kvEntry_Destroy(e);
	return NATS_KV_OK;
}

int
kvb_begin(void *bp, int which, const char *key, const void *val, size_t len,
    uint64_t *rev, void **old, size_t *oldlen, char *err, size_t errlen)
{
	kvStore *kv = bound(bucket_of(bp, which), err, errlen);
	natsStatus s;
	int rc;

	*old = NULL;
	*oldlen = 0;
	*rev = 0;
	if (kv == NULL)
		return NATS_KV_UNAVAILABLE;
	if ((s = kvStore_Create(rev, kv, key, val, (int)len)) == NATS_OK)
		return NATS_KV_OK;
	/* Taken (or not reachable): look at what is there. */
	rc = get_copy(kv, key, rev, old, oldlen, err, errlen);
	if (rc == NATS_KV_OK)
		return NATS_KV_EXISTS;
	if (rc == NATS_KV_UNAVAILABLE)
		kv_err(err, errlen, "bucket create", s);
	return rc;
}

int
kvb_update(void *bp, int which, const char *key, const void *val,
    size_t len, uint64_t last, uint64_t *rev, char *err, size_t errlen)
{
	kvStore *kv = bound(bucket_of(bp, which), err, errlen);
	natsStatus s;
	uint64_t now_rev = 0;
	void *cur = NULL;
	size_t curlen = 0;
	int rc;

	*rev = 0;
	if (kv == NULL)
		return NATS_KV_UNAVAILABLE;
	if ((s = kvStore_Update(rev, kv, key, val, (int)len, last)) ==
	    NATS_OK)
		return NATS_KV_OK;
	/* A wrong revision, or a failure: the value there tells which. */
	kv_err(err, errlen, "bucket update", s);
	rc = get_copy(kv, key, &now_rev, &cur, &curlen, err + strlen(err),
	    errlen - strlen(err));
	if (rc == NATS_KV_OK) {
		if (now_rev == last) {
			rc = NATS_KV_UNAVAILABLE; /* still ours: it failed */
		} else if (curlen == len && memcmp(cur, val, len) == 0) {
			*rev = now_rev; /* it was written, its ack was lost */
			rc = NATS_KV_OK;
		} else {
			rc = NATS_KV_CONFLICT;
		}
	}
	free(cur);
	return rc;
}

int
kvb_delete(void *bp, int which, const char *key, uint64_t last, char *err,
    size_t errlen)
{
	struct nats_kv *k = bucket_of(bp, which);
	kvStore *kv = bound(k, err, errlen);
	char subject[512];
	jsPubOptions po;
	jsErrCode jerr = 0;
	natsMsg *m = NULL;
	natsStatus s;

	if (kv == NULL)
		return NATS_KV_UNAVAILABLE;
	if (last == 0) {
		if ((s = kvStore_Delete(kv, key)) == NATS_OK)
			return NATS_KV_OK;
		kv_err(err, errlen, "bucket delete", s);
		return NATS_KV_UNAVAILABLE;
	}
	/* kvStore_Delete's marker, with the revision expected. */
	snprintf(subject, sizeof(subject), "%s%s", k->pre, key);
	jsPubOptions_Init(&po);
	po.ExpectLastSubjectSeq = last;
	s = natsMsg_Create(&m, subject, NULL, NULL, 0);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "KV-Operation", "DEL");
	if (s == NATS_OK)
		s = js_PublishMsg(NULL, k->ctx, m, &po, &jerr);
	natsMsg_Destroy(m);
	if (s == NATS_OK)
		return NATS_KV_OK;
	if (jerr == JSStreamWrongLastSequenceErr)
		return NATS_KV_CONFLICT;
	kv_err(err, errlen, "bucket delete", s);
	return NATS_KV_UNAVAILABLE;
}

int
kvb_get(void *bp, int which, const char *key, void **val, size_t *len,
    uint64_t *rev, char *err, size_t errlen)
{
	kvStore *kv = bound(bucket_of(bp, which), err, errlen);
	int rc;

	*val = NULL;
	*len = 0;
	*rev = 0;
	if (kv == NULL)
		return NATS_KV_UNAVAILABLE;
	rc = get_copy(kv, key, rev, val, len, err, errlen);
	return rc == NATS_KV_CONFLICT ? NATS_KV_ABSENT : rc;
}

int
kvb_keys(void *bp, int which, char ***keys, size_t *n, char *err,
    size_t errlen)
{
	kvStore *kv = bound(bucket_of(bp, which), err, errlen);
	kvKeysList l = { NULL, 0 };
	kvWatchOptions wo;
	natsStatus s;

	*keys = NULL;
	*n = 0;
	if (kv == NULL)
		return NATS_KV_UNAVAILABLE;
	kvWatchOptions_Init(&wo);
	wo.Timeout = KV_WAIT_MS;
	s = kvStore_Keys(&l, kv, &wo);
	if (s == NATS_NOT_FOUND)
		return NATS_KV_OK; /* an empty bucket */
	if (s != NATS_OK) {
		kv_err(err, errlen, "bucket keys", s);
		return NATS_KV_UNAVAILABLE;
	}
	/* Handed over as they are: malloc(3)ed by libnats. */
	*keys = l.Keys;
	*n = l.Count > 0 ? (size_t)l.Count : 0;
	return NATS_KV_OK;
}

/* The idempotency bucket's entries of the first module tables. */
int
kv_begin(void *bp, const char *key, const void *val, size_t len,
    uint64_t *rev, void **old, size_t *oldlen, char *err, size_t errlen)
{
	return kvb_begin(bp, NATS_BUCKET_IDEM, key, val, len, rev, old,
	    oldlen, err, errlen);
}

int
kv_update(void *bp, const char *key, const void *val, size_t len,
    uint64_t last, uint64_t *rev, char *err, size_t errlen)
{
	return kvb_update(bp, NATS_BUCKET_IDEM, key, val, len, last, rev, err,
	    errlen);
}

int
kv_delete(void *bp, const char *key, uint64_t last, char *err,
    size_t errlen)
{
	return kvb_delete(bp, NATS_BUCKET_IDEM, key, last, err, errlen);
}
