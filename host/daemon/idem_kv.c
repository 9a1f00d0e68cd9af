/*
 * idem_kv.c - idempotency records in the shared JetStream bucket.
 *
 * The key of a record is the digest of (scope, command, key) (the
 * bucket's key names allow only a few characters); its value says what
 * idem.c keeps in a row: the payload's fingerprint, in progress or done,
 * when it expires (wall clock) and the stored status and member text.
 *
 * begin: create the record in progress (expiring at the call's
 * deadline).  If one is there: past its expiry it is taken over with an
 * update on its revision; else another fingerprint is 422, in progress
 * is 409, done replays.  finish: a result to keep replaces the record
 * (update on the revision begin got); any other deletes it (on that
 * revision too).  A revision that moved means another daemon took the
 * record over after it expired: the late result goes nowhere, as in the
 * local store.  Both run on the calling thread (a delivery thread for
 * begin, the pool thread that finished the call for finish), one or a
 * few round trips each.
 */
#include "idem_kv.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/nats_api.h"
#include "core/request.h"

#define MAGIC "cmdhost-idem 1 "
#define BEGIN_TRIES 4
#define DOWN_LOG_EVERY_MS 5000

struct idem_kv {
	struct idem_backend be;
	const struct nats_module *mod;
	const char *bucket;
	int64_t ttl_ms;
	pthread_mutex_t lock;       /* bridge, detached, users */
	pthread_cond_t cond;        /* users reached 0 */
	void *bridge;
	int detached;
	int users;                  /* operations running on the bridge */
	atomic_int pending;
	atomic_int down;            /* the last operation failed */
	atomic_llong down_logged_ms;
};

/* One record begun by this daemon. */
struct kv_rec {
	char name[REQUEST_KEY_DIGEST_LEN + 1];
	uint64_t rev;
	uint64_t fp[2];
};

/* ------------------------------------------------------------ values */

char *
idem_kv_encode(int done, const uint64_t fp[2], int64_t expires_ms,
    int status, const char *text, size_t tlen, size_t *len)
{
	char head[160];
	int n = snprintf(head, sizeof(head), MAGIC "%c %016" PRIx64 "%016"
	    PRIx64 " %" PRId64 " %d\n", done ? 'D' : 'R', fp[0], fp[1],
	    expires_ms, status);
	char *v;

	if (text == NULL)
		tlen = 0;
	if ((v = malloc((size_t)n + tlen + 1)) == NULL)
		return NULL;
	memcpy(v, head, (size_t)n);
	if (tlen > 0)
		memcpy(v + n, text, tlen);
	v[(size_t)n + tlen] = '\0';
	*len = (size_t)n + tlen;
	return v;
}

/* 16 hex digits at p into *out.  Returns 0 or -1. */
static int
hex64(const char *p, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 0; i < 16; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ?
		    c - 'a' + 10 : -1;

		if (d < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 0;
}

int
idem_kv_decode(const char *val, size_t len, int *done, uint64_t fp[2],
    int64_t *expires_ms, int *status, const char **text, size_t *tlen)
{
	const char *p = val, *nl = memchr(val, '\n', len);
	char *end;
	long long e;
	long st;

	if (nl == NULL || len < sizeof(MAGIC) - 1 + 36 ||
	    memcmp(p, MAGIC, sizeof(MAGIC) - 1) != 0)
		return -1;
	p += sizeof(MAGIC) - 1;
	if ((*p != 'R' && *p != 'D') || p[1] != ' ')
		return -1;
	*done = *p == 'D';
	p += 2;
	if (hex64(p, &fp[0]) < 0 || hex64(p + 16, &fp[1]) < 0 || p[32] != ' ')
		return -1;
	p += 33;
	errno = 0;
	e = strtoll(p, &end, 10);
	if (end == p || *end != ' ' || errno != 0 || end > nl)
		return -1;
	p = end + 1;
	st = strtol(p, &end, 10);
	if (end == p || end != nl || st < 0 || st > 999)
		return -1;
	*expires_ms = e;
	*status = (int)st;
	*text = nl + 1;
	*tlen = len - (size_t)(nl + 1 - val);
	return 0;
}

/* ------------------------------------------------------------ the gate */

/* Take the bridge for one operation.  Returns it, or NULL (not attached
 * yet, or detached). */
static void *
enter(struct idem_kv *kv)
{
	void *b;

	pthread_mutex_lock(&kv->lock);
	if ((b = kv->detached ? NULL : kv->bridge) != NULL)
		kv->users++;
	pthread_mutex_unlock(&kv->lock);
	return b;
}

static void
leave(struct idem_kv *kv)
{
	pthread_mutex_lock(&kv->lock);
	if (--kv->users == 0)
		pthread_cond_broadcast(&kv->cond);
	pthread_mutex_unlock(&kv->lock);
}

/* An operation failed for want of the bucket: say so, at most every
 * DOWN_LOG_EVERY_MS. */
static void
note_down(struct idem_kv *kv, const char *why)
{
	int64_t now = clock_mono_ms();
	long long last = atomic_load(&kv->down_logged_ms);

	atomic_store(&kv->down, 1);
	if (last != 0 && now - last < DOWN_LOG_EVERY_MS)
		return;
	if (!atomic_compare_exchange_strong(&kv->down_logged_ms, &last, now))
		return;
	log_warnx("idempotency bucket %s unavailable: %s; keyed NATS calls "
	    "are answered 503 until it is back", kv->bucket, why);
}

static void
note_up(struct idem_kv *kv)
{
	if (atomic_exchange(&kv->down, 0))
		log_info("idempotency bucket %s reachable again", kv->bucket);
}

/* ------------------------------------------------------------ backend */

static enum idem_verdict
kv_begin(void *store, const char *scope, const char *command,
    const char *key, size_t len, const uint64_t fp[2], int64_t deadline_ms,
    void **recp, struct idem_result *res)
{
	struct idem_kv *kv = store;
	struct kv_rec *r;
	enum idem_verdict v = IDEM_UNAVAILABLE;
	char err[512] = "", *val = NULL;
	size_t vlen = 0;
	void *bridge;

	*recp = NULL;
	memset(res, 0, sizeof(*res));
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return IDEM_UNAVAILABLE;
	if ((bridge = enter(kv)) == NULL) {
		free(r);
		note_down(kv, "NATS is not started, or stopping");
		return IDEM_UNAVAILABLE;
	}
	request_key_digest(scope, command, key, len, r->name);
	r->fp[0] = fp[0];
	r->fp[1] = fp[1];
	if ((val = idem_kv_encode(0, fp, deadline_ms, 0, NULL, 0, &vlen)) ==
	    NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	for (int i = 0; i < BEGIN_TRIES; i++) {
		void *old = NULL;
		size_t oldlen = 0, tlen;
		uint64_t rev = 0, ofp[2];
		int64_t exp;
		const char *text;
		int rc, done, status;

		rc = kv->mod->kv_begin(bridge, r->name, val, vlen, &rev, &old,
		    &oldlen, err, sizeof(err));
		if (rc == NATS_KV_OK) {
			r->rev = rev;
			v = IDEM_RUN;
			break;
		}
		if (rc == NATS_KV_CONFLICT)
			continue; /* gone between two looks: again */
		if (rc != NATS_KV_EXISTS)
			break;
		if (idem_kv_decode(old, oldlen, &done, ofp, &exp, &status,
		    &text, &tlen) < 0) {
			/* Not ours to overwrite: maybe a newer daemon's. */
			snprintf(err, sizeof(err), "the record under %s is not "
			    "one this daemon reads", r->name);
			free(old);
			break;
		}
		if (exp <= clock_wall_ms()) {
			/* Expired: a done record past its TTL, or one whose
			 * call overran its deadline (or whose daemon died). */
			free(old);
			rc = kv->mod->kv_update(bridge, r->name, val, vlen, rev,
			    &r->rev, err, sizeof(err));
			if (rc == NATS_KV_OK)
				v = IDEM_RUN;
			if (rc == NATS_KV_CONFLICT)
				continue;
			break;
		}
		if (ofp[0] != fp[0] || ofp[1] != fp[1]) {
			v = IDEM_MISMATCH;
		} else if (!done) {
			v = IDEM_BUSY;
		} else {
			v = IDEM_REPLAY;
			res->status = status;
			if (tlen > 0 && (res->text = malloc(tlen + 1)) != NULL) {
				memcpy(res->text, text, tlen);
				res->text[tlen] = '\0';
				res->len = tlen;
			}
		}
		free(old);
		break;
	}
	if (v == IDEM_UNAVAILABLE && *err == '\0')
		snprintf(err, sizeof(err), "the record of %s kept changing",
		    r->name);
out:
	leave(kv);
	free(val);
	if (v == IDEM_UNAVAILABLE)
		note_down(kv, err);
	else
		note_up(kv);
	if (v == IDEM_RUN) {
		atomic_fetch_add(&kv->pending, 1);
		*recp = r;
	} else {
		free(r);
	}
	return v;
}

static void
kv_finish(void *store, void *recp, int status, const char *text, size_t len,
    idem_durable_fn durable, void *arg)
{
	struct idem_kv *kv = store;
	struct kv_rec *r = recp;
	char err[512] = "", *val = NULL;
	size_t vlen = 0;
	uint64_t rev;
	void *bridge;
	int rc = NATS_KV_UNAVAILABLE;

	if ((bridge = enter(kv)) == NULL) {
		log_warnx("idempotency bucket %s: NATS stopped before the "
		    "record %s was settled; it stays in progress until its "
		    "call's deadline", kv->bucket, r->name);
		goto out;
	}
	if (idem_storable(status)) {
		val = idem_kv_encode(1, r->fp, clock_wall_ms() + kv->ttl_ms,
		    status, text, len, &vlen);
		if (val == NULL)
			snprintf(err, sizeof(err), "out of memory");
		else
			rc = kv->mod->kv_update(bridge, r->name, val, vlen,
			    r->rev, &rev, err, sizeof(err));
		if (rc == NATS_KV_UNAVAILABLE) {
			/* Not stored: free the key rather than keep it busy
			 * until the deadline (a retry runs the call again). */
			log_warnx("idempotency bucket %s: the result of record "
			    "%s was not stored (%s); removing the record",
			    kv->bucket, r->name, err);
			rc = kv->mod->kv_delete(bridge, r->name, r->rev, err,
			    sizeof(err));
		}
	} else {
		rc = kv->mod->kv_delete(bridge, r->name, r->rev, err,
		    sizeof(err));
	}
	leave(kv);
	if (rc == NATS_KV_UNAVAILABLE) {
		note_down(kv, err);
		log_warnx("idempotency bucket %s: record %s not settled (%s); "
		    "it stays in progress until its call's deadline",
		    kv->bucket, r->name, err);
	} else if (rc == NATS_KV_CONFLICT) {
		/* Expired and taken over meanwhile: as in the local store,
		 * the late result goes nowhere. */
		log_info("idempotency bucket %s: record %s expired and was "
		    "taken over by a retry; this call's late result is "
		    "dropped", kv->bucket, r->name);
	}
out:
	free(val);
	free(r);
	atomic_fetch_sub(&kv->pending, 1);
	if (durable != NULL)
		durable(arg);
}

/* ------------------------------------------------------------ life */

struct idem_kv *
idem_kv_new(const struct nats_module *mod, const char *bucket,
    int64_t ttl_ms)
{
	struct idem_kv *kv = calloc(1, sizeof(*kv));

	if (kv == NULL)
		return NULL;
	kv->mod = mod;
	kv->bucket = bucket;
	kv->ttl_ms = ttl_ms;
	kv->be.store = kv;
	kv->be.begin = kv_begin;
	kv->be.finish = kv_finish;
	pthread_mutex_init(&kv->lock, NULL);
	pthread_cond_init(&kv->cond, NULL);
	atomic_init(&kv->pending, 0);
	atomic_init(&kv->down, 0);
	atomic_init(&kv->down_logged_ms, 0);
	return kv;
}

const struct idem_backend *
idem_kv_backend(struct idem_kv *kv)
{
	return &kv->be;
}

void
idem_kv_attach(struct idem_kv *kv, void *bridge)
{
	pthread_mutex_lock(&kv->lock);
	kv->bridge = bridge;
	pthread_mutex_unlock(&kv->lock);
}

void
idem_kv_detach(struct idem_kv *kv)
{
	if (kv == NULL)
		return;
	pthread_mutex_lock(&kv->lock);
	kv->detached = 1;
	while (kv->users > 0)
		pthread_cond_wait(&kv->cond, &kv->lock);
	kv->bridge = NULL;
	pthread_mutex_unlock(&kv->lock);
}

int
idem_kv_pending(struct idem_kv *kv)
{
	return kv != NULL ? atomic_load(&kv->pending) : 0;
}

void
idem_kv_free(struct idem_kv *kv)
{
	if (kv == NULL)
		return;
	pthread_mutex_destroy(&kv->lock);
	pthread_cond_destroy(&kv->cond);
	free(kv);
}
