/*
 * wf_kv.c - the heartbeat, the sweeper and the records of workflow
 * executions in the shared JetStream bucket (wf_kv.h says the rules).
 *
 * One thread: every tick (lease / 4) it rewrites this daemon's
 * heartbeat; every other tick it lists the bucket, notes when each
 * peer's heartbeat last changed, and claims the records of the dead.
 * The peers table is the thread's alone; the counters are atomics.
 */
#include "wf_kv.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/nats_api.h"
#include "core/thread.h"
#include "nats_host.h"

#define OWNER_MAX 96

/* A peer's heartbeat as this daemon saw it. */
struct peer {
	struct peer *next;
	char owner[OWNER_MAX];
	uint64_t rev;               /* its heartbeat's last revision */
	int64_t changed_ns;         /* when this daemon saw it change */
	int seen;                   /* listed in this sweep */
	int owns;                   /* records of it seen in this sweep */
};

/* A record this daemon claimed and could not resume: left alone. */
struct broken {
	struct broken *next;
	char id[64];
};

struct wf_kv {
	struct nats_host *h;
	struct wf_kv_hooks hooks;
	int lease_ms;
	char owner[OWNER_MAX];
	char hb_key[OWNER_MAX + 4];
	uint64_t hb_rev;            /* thread's: 0 until written */
	atomic_int ready;
	atomic_uint_fast64_t claimed, lost, sweeps;
	atomic_int n_peers;
	struct peer *peers;         /* thread's */
	struct broken *broken;      /* thread's */

	pthread_t thread;
	int started;
	pthread_mutex_t lock;       /* stop */
	pthread_cond_t cond;
	int stop;
	int stopped;                /* wf_kv_stop() ran */
};

/* Keep only [A-Za-z0-9_-] of s in place (others become '_'). */
static void
key_safe(char *s)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			*s = '_';
}

struct wf_kv *
wf_kv_new(struct nats_host *h, int lease_ms, const struct wf_kv_hooks *hooks)
{
	struct wf_kv *k = calloc(1, sizeof(*k));
	char host[64];

	if (k == NULL)
		return NULL;
	k->h = h;
	k->hooks = *hooks;
	k->lease_ms = lease_ms;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "host");
	host[sizeof(host) - 1] = '\0';
	snprintf(k->owner, sizeof(k->owner), "%.60s-%ld-%llx", host,
	    (long)getpid(), (unsigned long long)clock_wall_ms());
	key_safe(k->owner);
	snprintf(k->hb_key, sizeof(k->hb_key), "n.%s", k->owner);
	atomic_init(&k->ready, 0);
	atomic_init(&k->claimed, 0);
	atomic_init(&k->lost, 0);
	atomic_init(&k->sweeps, 0);
	atomic_init(&k->n_peers, 0);
	pthread_mutex_init(&k->lock, NULL);
	thread_cond_init(&k->cond);
	return k;
}

const char *
wf_kv_owner(const struct wf_kv *k)
{
	return k->owner;
}

int
wf_kv_ready(struct wf_kv *k)
{
	return atomic_load(&k->ready);
}

/* ------------------------------------------------------------ records */

static void
rec_key(char *key, size_t n, const char *id)
{
	snprintf(key, n, "x.%s", id);
}

char *
wf_kv_encode(const struct wf_kv *k, const struct wf_kv_rec *r, size_t *len)
{
	struct json_object *o = json_object_new_object();
	struct json_object *in = r->input ? json_tokener_parse(r->input) : NULL;
	const char *t;
	char *text;

	json_object_object_add(o, "v", json_object_new_int(1));
	json_object_object_add(o, "id", json_object_new_string(r->id));
	json_object_object_add(o, "workflow",
	    json_object_new_string(r->workflow));
	json_object_object_add(o, "owner", json_object_new_string(k->owner));
	json_object_object_add(o, "status", json_object_new_string(r->status));
	json_object_object_add(o, "depth", json_object_new_int(r->depth));
	json_object_object_add(o, "started_ms",
	    json_object_new_int64(r->started_ms));
	json_object_object_add(o, "events", json_object_new_int64(r->events));
	json_object_object_add(o, "input", in);
	json_object_object_add(o, "snapshot", r->snapshot ?
	    json_object_new_string(r->snapshot) : NULL);
	json_object_object_add(o, "definition",
	    json_object_new_string(r->definition));
	t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	text = t != NULL ? strdup(t) : NULL;
	if (text != NULL)
		*len = strlen(text);
	json_object_put(o);
	return text;
}

int
wf_kv_create(struct wf_kv *k, const char *id, const char *val, size_t len,
    uint64_t *rev, char *err, size_t errlen)
{
	char key[128];

	rec_key(key, sizeof(key), id);
	return nats_host_wkv_create(k->h, key, val, len, rev, err, errlen);
}

int
wf_kv_update(struct wf_kv *k, const char *id, const char *val, size_t len,
    uint64_t last, uint64_t *rev, char *err, size_t errlen)
{
	char key[128];

	rec_key(key, sizeof(key), id);
	return nats_host_wkv_update(k->h, key, val, len, last, rev, err,
	    errlen);
}

int
wf_kv_delete(struct wf_kv *k, const char *id, uint64_t last, char *err,
    size_t errlen)
{
	char key[128];

	rec_key(key, sizeof(key), id);
	return nats_host_wkv_delete(k->h, key, last, err, errlen);
}

void
wf_kv_count_lost(struct wf_kv *k)
{
	atomic_fetch_add(&k->lost, 1);
}

struct json_object *
wf_kv_stats(struct wf_kv *k)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "owner", json_object_new_string(k->owner));
	json_object_object_add(o, "ready",
	    json_object_new_boolean(atomic_load(&k->ready)));
	json_object_object_add(o, "claimed",
	    json_object_new_uint64(atomic_load(&k->claimed)));
	json_object_object_add(o, "lost",
	    json_object_new_uint64(atomic_load(&k->lost)));
	json_object_object_add(o, "sweeps",
	    json_object_new_uint64(atomic_load(&k->sweeps)));
	json_object_object_add(o, "peers",
	    json_object_new_int(atomic_load(&k->n_peers)));
	return o;
}

/* ------------------------------------------------------------ the thread */

/* Write this daemon's heartbeat (a new revision each time). */
static void
heartbeat(struct wf_kv *k)
{
	char val[160], err[512];
	int n, rc;

	n = snprintf(val, sizeof(val), "{\"owner\":\"%s\",\"ms\":%lld,"
	    "\"lease_ms\":%d}", k->owner, (long long)clock_wall_ms(),
	    k->lease_ms);
	if (k->hb_rev == 0) {
		rc = nats_host_wkv_create(k->h, k->hb_key, val, (size_t)n,
		    &k->hb_rev, err, sizeof(err));
	} else {
		rc = nats_host_wkv_update(k->h, k->hb_key, val, (size_t)n,
		    k->hb_rev, &k->hb_rev, err, sizeof(err));
		if (rc == NATS_KV_CONFLICT) {
			/* A peer took this daemon for dead and removed the
			 * heartbeat: its records may be claimed already (the
			 * next write of each tells).  Begin again. */
			log_warnx("workflow bucket: this daemon's heartbeat %s "
			    "was removed by a peer (were we cut off for more "
			    "than workflow_lease_ms?); writing it again",
			    k->hb_key);
			k->hb_rev = 0;
			return;
		}
	}
	if (rc == NATS_KV_OK) {
		if (!atomic_exchange(&k->ready, 1))
			log_info("workflow bucket: heartbeat %s written; this "
			    "daemon owns and takes over executions (lease %d ms)",
			    k->hb_key, k->lease_ms);
		return;
	}
	if (rc == NATS_KV_EXISTS) {
		/* Our own from an earlier write whose ack was lost. */
		char *old = NULL;
		size_t len = 0;

		if (nats_host_wkv_get(k->h, k->hb_key, &old, &len, &k->hb_rev,
		    err, sizeof(err)) != NATS_KV_OK)
			k->hb_rev = 0;
		free(old);
	}
}

static struct peer *
peer_of(struct wf_kv *k, const char *owner)
{
	struct peer *p;

	for (p = k->peers; p != NULL; p = p->next)
		if (strcmp(p->owner, owner) == 0)
			return p;
	return NULL;
}

/* A peer's heartbeat key ("n.<owner>") was listed: note its revision.
 * Returns 0, or -1 when the bucket cannot be read (judge nobody now). */
static int
see_peer(struct wf_kv *k, const char *key, int64_t now)
{
	const char *owner = key + 2;
	struct peer *p = peer_of(k, owner);
	char *val = NULL, err[512];
	size_t len;
	uint64_t rev;
	int rc = nats_host_wkv_get(k->h, key, &val, &len, &rev, err,
	    sizeof(err));

	free(val);
	if (rc == NATS_KV_ABSENT)
		return 0; /* gone meanwhile: not seen */
	if (rc != NATS_KV_OK)
		return -1;
	if (p == NULL) {
		if ((p = calloc(1, sizeof(*p))) == NULL)
			return -1;
		snprintf(p->owner, sizeof(p->owner), "%s", owner);
		p->rev = rev;
		p->changed_ns = now;
		p->next = k->peers;
		k->peers = p;
	} else if (p->rev != rev) {
		p->rev = rev;
		p->changed_ns = now;
	}
	p->seen = 1;
	return 0;
}

static int
peer_dead(const struct wf_kv *k, const struct peer *p, int64_t now)
{
	return p == NULL || !p->seen ||
	    now - p->changed_ns >= (int64_t)k->lease_ms * 1000000;
}

/* Claim the record key (its value val, revision rev) for this daemon. */
static void
claim(struct wf_kv *k, const char *id, struct json_object *rec, uint64_t rev,
    const char *from)
{
	const char *text;
	char err[512];
	uint64_t nrev = 0;
	int rc;

	json_object_object_add(rec, "owner", json_object_new_string(k->owner));
	json_object_object_add(rec, "claimed_from", json_object_new_string(from));
	text = json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN);
	rc = wf_kv_update(k, id, text, strlen(text), rev, &nrev, err,
	    sizeof(err));
	if (rc == NATS_KV_CONFLICT)
		return; /* another daemon was quicker, or it ended */
	if (rc != NATS_KV_OK) {
		log_warnx("workflow bucket: cannot claim execution %s: %s", id,
		    err);
		return;
	}
	atomic_fetch_add(&k->claimed, 1);
	log_info("workflow bucket: execution %s claimed from %s%s", id, from,
	    strcmp(from, k->owner) == 0 ? " (this daemon, which had let it "
	    "go)" : " (its heartbeat stopped)");
	if (k->hooks.claimed(k->hooks.arg, id, rec, nrev) < 0) {
		struct broken *b = calloc(1, sizeof(*b));

		log_errorx("workflow bucket: execution %s cannot be resumed "
		    "here; its record x.%s is left in the bucket, owned by this "
		    "daemon, and not claimed again", id, id);
		if (b != NULL) {
			snprintf(b->id, sizeof(b->id), "%s", id);
			b->next = k->broken;
			k->broken = b;
		}
	}
}

static int
is_broken(const struct wf_kv *k, const char *id)
{
	for (const struct broken *b = k->broken; b != NULL; b = b->next)
		if (strcmp(b->id, id) == 0)
			return 1;
	return 0;
}

/* Look at one record ("x.<id>"): claim it if its owner is dead, or is
 * this daemon and does not drive it. */
static void
sweep_record(struct wf_kv *k, const char *key, int64_t now)
{
	const char *id = key + 2;
	struct json_object *rec, *v;
	char *val = NULL, err[512], owner[OWNER_MAX];
	struct peer *p;
	size_t len;
	uint64_t rev;

	if (nats_host_wkv_get(k->h, key, &val, &len, &rev, err,
	    sizeof(err)) != NATS_KV_OK) {
		free(val);
		return;
	}
	rec = json_tokener_parse(val);
	free(val);
	if (rec == NULL || !json_object_object_get_ex(rec, "owner", &v)) {
		log_warnx("workflow bucket: record x.%s is not a cmdhost "
		    "record; left alone", id);
		json_object_put(rec);
		return;
	}
	snprintf(owner, sizeof(owner), "%s", json_object_get_string(v));
	if (strcmp(owner, k->owner) == 0) {
		if (!is_broken(k, id) && !k->hooks.is_live(k->hooks.arg, id) &&
		    k->hooks.has_room(k->hooks.arg))
			claim(k, id, rec, rev, owner);
		json_object_put(rec);
		return;
	}
	p = peer_of(k, owner);
	if (p != NULL && p->seen)
		p->owns++;
	if (peer_dead(k, p, now) && k->hooks.has_room(k->hooks.arg)) {
		claim(k, id, rec, rev, owner);
		if (p != NULL)
			p->owns--;
	}
	json_object_put(rec);
}

static void
sweep(struct wf_kv *k)
{
	char **keys = NULL, err[512];
	struct peer *p, **pp;
	int64_t now = clock_mono_ns();
	size_t n = 0;
	int np = 0;

	if (nats_host_wkv_keys(k->h, &keys, &n, err, sizeof(err)) !=
	    NATS_KV_OK)
		return;
	for (p = k->peers; p != NULL; p = p->next) {
		p->seen = 0;
		p->owns = 0;
	}
	/* Heartbeats first, so that records are judged on this look. */
	for (size_t i = 0; i < n; i++)
		if (strncmp(keys[i], "n.", 2) == 0 &&
		    strcmp(keys[i], k->hb_key) != 0 &&
		    see_peer(k, keys[i], now) < 0)
			goto out;
	for (size_t i = 0; i < n; i++)
		if (strncmp(keys[i], "x.", 2) == 0)
			sweep_record(k, keys[i], now);
	/* A heartbeat gone is a peer gone; a dead one that owns nothing
	 * any more has its heartbeat removed (if it did not change). */
	for (pp = &k->peers; (p = *pp) != NULL;) {
		if (p->seen && peer_dead(k, p, now) && p->owns == 0) {
			char key[OWNER_MAX + 4];

			snprintf(key, sizeof(key), "n.%s", p->owner);
			if (nats_host_wkv_delete(k->h, key, p->rev, err,
			    sizeof(err)) == NATS_KV_OK)
				log_info("workflow bucket: removed the "
				    "heartbeat of dead daemon %s", p->owner);
			p->seen = 0;
		}
		if (!p->seen) {
			*pp = p->next;
			free(p);
			continue;
		}
		np++;
		pp = &p->next;
	}
	atomic_store(&k->n_peers, np);
	atomic_fetch_add(&k->sweeps, 1);
out:
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

static void *
kv_main(void *arg)
{
	struct wf_kv *k = arg;
	int64_t tick_ns = (int64_t)(k->lease_ms / 4 > 50 ? k->lease_ms / 4 :
	    50) * 1000000;
	unsigned long round = 0;

	thread_use_c_locale();
	pthread_mutex_lock(&k->lock);
	while (!k->stop) {
		int64_t at;
		struct timespec ts;

		pthread_mutex_unlock(&k->lock);
		heartbeat(k);
		if (atomic_load(&k->ready) && (round++ & 1) == 1)
			sweep(k);
		pthread_mutex_lock(&k->lock);
		at = clock_mono_ns() + tick_ns;
		ts.tv_sec = (time_t)(at / 1000000000LL);
		ts.tv_nsec = (long)(at % 1000000000LL);
		while (!k->stop && pthread_cond_timedwait(&k->cond, &k->lock,
		    &ts) == 0)
			;
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

int
wf_kv_start(struct wf_kv *k, char *err, size_t errlen)
{
	int rc = pthread_create(&k->thread, NULL, kv_main, k);

	if (rc != 0) {
		snprintf(err, errlen, "cannot start the workflow bucket's "
		    "thread: %s", strerror(rc));
		return -1;
	}
	k->started = 1;
	return 0;
}

void
wf_kv_stop(struct wf_kv *k)
{
	char err[512];

	if (k == NULL)
		return;
	pthread_mutex_lock(&k->lock);
	if (k->stopped) {
		pthread_mutex_unlock(&k->lock);
		return;
	}
	k->stopped = 1;
	k->stop = 1;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
	if (k->started)
		pthread_join(k->thread, NULL);
	k->started = 0;
	atomic_store(&k->ready, 0);
	if (k->hb_rev != 0 && nats_host_wkv_delete(k->h, k->hb_key, k->hb_rev,
	    err, sizeof(err)) == NATS_KV_OK)
		log_info("workflow bucket: heartbeat %s removed: the peers take "
		    "over this daemon's unfinished executions", k->hb_key);
	k->hb_rev = 0;
}

void
wf_kv_free(struct wf_kv *k)
{
	struct broken *b;
	struct peer *p;

	if (k == NULL)
		return;
	wf_kv_stop(k);
	while ((p = k->peers) != NULL) {
		k->peers = p->next;
		free(p);
	}
	while ((b = k->broken) != NULL) {
		k->broken = b->next;
		free(b);
	}
	pthread_mutex_destroy(&k->lock);
	pthread_cond_destroy(&k->cond);
	free(k);
}
