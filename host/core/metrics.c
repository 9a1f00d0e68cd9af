/*
 * metrics.c - sharded counters and a log-scale latency histogram.
 *
 * A value v (microseconds) falls in bucket 4*(e-1)+m, where e is the
 * position of v's highest bit and m the next two bits: about 19% wide
 * buckets at every scale, with no lock and no allocation per sample.
 */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int next_shard;
static atomic_uint owned_mask;   /* bit i: shard METRICS_SHARED + i */
_Thread_local int metrics_my_shard = -1;
_Thread_local int metrics_owned;

int
metrics_shard_assign(void)
{
	metrics_my_shard = (int)((unsigned)atomic_fetch_add_explicit(
	    &next_shard, 1, memory_order_relaxed) % METRICS_SHARED);
	return metrics_my_shard;
}

int
metrics_shard_own(void)
{
	unsigned mask = atomic_load(&owned_mask);

	if (metrics_owned)
		return 0;
	for (;;) {
		int i;

		for (i = 0; i < METRICS_SHARDS - METRICS_SHARED; i++)
			if (!(mask & (1u << i)))
				break;
		if (i == METRICS_SHARDS - METRICS_SHARED)
			return -1;
		if (atomic_compare_exchange_weak(&owned_mask, &mask,
		    mask | (1u << i))) {
			metrics_my_shard = METRICS_SHARED + i;
			metrics_owned = 1;
			return 0;
		}
	}
}

void
metrics_shard_release(void)
{
	if (!metrics_owned)
		return;
	/* Its counts stay; the next owner adds to them. */
	atomic_fetch_and(&owned_mask, ~(1u << (metrics_my_shard -
	    METRICS_SHARED)));
	metrics_owned = 0;
	metrics_my_shard = -1;
}

struct cmd_stats *
metrics_cmd_new(const char *name)
{
	struct cmd_stats *s = aligned_alloc(64, sizeof(*s));

	if (s == NULL)
		return NULL;
	memset(s, 0, sizeof(*s));
	if ((s->name = strdup(name)) == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void
metrics_cmd_free(struct cmd_stats *s)
{
	if (s == NULL)
		return;
	free(s->name);
	free(s);
}

static uint64_t
bucket_upper(unsigned idx)
{
	unsigned e, m;

	if (idx < 4)
		return idx;
	if (idx >= METRICS_BUCKETS - 1)
		return UINT64_MAX;
	e = idx / 4 + 1;
	m = idx % 4;
	return ((uint64_t)(4 + m + 1) << (e - 2)) - 1;
}

#ifndef CMDHOST_NO_METRICS
static unsigned
bucket_of(uint64_t v)
{
	unsigned e, idx;

	if (v < 4)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	idx = 4 * (e - 1) + (unsigned)((v >> (e - 2)) & 3);
	return idx < METRICS_BUCKETS ? idx : METRICS_BUCKETS - 1;
}

/* Count one reply of `status` in shard sh: its slot, claimed on first use
 * (open addressing); a shard that has seen more distinct codes than slots
 * counts the rest as "other". */
static void
count_status(struct cmd_shard *sh, int status)
{
	unsigned h = (unsigned)status % METRICS_STATUS_SLOTS;

	for (unsigned i = 0; i < METRICS_STATUS_SLOTS; i++) {
		struct status_slot *sl = &sh->status[(h + i) %
		    METRICS_STATUS_SLOTS];
		int code = atomic_load_explicit(&sl->code,
		    memory_order_acquire);

		if (code == 0) {
			int zero = 0;

			if (atomic_compare_exchange_strong_explicit(&sl->code,
			    &zero, status, memory_order_acq_rel,
			    memory_order_acquire))
				code = status;
			else
				code = zero;
		}
		if (code == status) {
			METRICS_ADD(&sl->n, 1);
			return;
		}
	}
	METRICS_ADD(&sh->other_status, 1);
}

void
metrics_cmd_record(struct cmd_stats *s, int status, uint64_t micros)
{
	struct cmd_shard *sh = &s->shard[metrics_shard()];
	uint64_t max;

	METRICS_ADD(&sh->calls, 1);
	if (status >= 100 && status < 600)
		count_status(sh, status);
	else
		METRICS_ADD(&sh->other_status, 1);
	if (status == 504)
		METRICS_ADD(&sh->timeouts, 1);
	METRICS_ADD(&sh->buckets[bucket_of(micros)], 1);
	METRICS_ADD(&sh->sum_us, micros);
	max = atomic_load_explicit(&sh->max_us, memory_order_relaxed);
	if (metrics_owned) {
		if (micros > max)
			atomic_store_explicit(&sh->max_us, micros,
			    memory_order_relaxed);
		return;
	}
	while (micros > max && !atomic_compare_exchange_weak_explicit(
	    &sh->max_us, &max, micros, memory_order_relaxed,
	    memory_order_relaxed))
		;
}
#endif

#define SUM(s, field) ({                                                 \
	uint64_t sum_ = 0;                                               \
	for (int i_ = 0; i_ < METRICS_SHARDS; i_++)                      \
		sum_ += (uint64_t)atomic_load_explicit(                  \
		    &(s)->shard[i_].field, memory_order_relaxed);        \
	sum_; })

uint64_t
metrics_cmd_calls(const struct cmd_stats *s)
{
	return SUM(s, calls);
}

uint64_t
metrics_cmd_status(const struct cmd_stats *s, int status)
{
	uint64_t n = 0;

	for (int i = 0; i < METRICS_SHARDS; i++)
		for (int k = 0; k < METRICS_STATUS_SLOTS; k++) {
			const struct status_slot *sl = &s->shard[i].status[k];

			if (atomic_load_explicit(&sl->code,
			    memory_order_acquire) == status)
				n += atomic_load_explicit(&sl->n,
				    memory_order_relaxed);
		}
	return n;
}

uint64_t
metrics_cmd_max(const struct cmd_stats *s)
{
	uint64_t max = 0;

	for (int i = 0; i < METRICS_SHARDS; i++) {
		uint64_t m = atomic_load_explicit(&s->shard[i].max_us,
		    memory_order_relaxed);

		if (m > max)
			max = m;
	}
	return max;
}

uint64_t
metrics_cmd_timeouts(const struct cmd_stats *s)
{
	return SUM(s, timeouts);
}

static uint64_t
cmd_sum_us(const struct cmd_stats *s)
{
	return SUM(s, sum_us);
}

int64_t
metrics_cmd_in_flight(const struct cmd_stats *s)
{
	return (int64_t)SUM(s, in_flight);
}

static int64_t
daemon_get(const struct daemon_stats *d, enum daemon_counter k)
{
	return (int64_t)SUM(d, v[k]);
}

uint64_t
metrics_bucket_count(const struct cmd_stats *s, unsigned i)
{
	return SUM(s, buckets[i]);
}

uint64_t
metrics_cmd_quantile(const struct cmd_stats *s, double q)
{
	uint64_t total = 0, seen = 0, rank, max;
	uint64_t counts[METRICS_BUCKETS];

	for (unsigned i = 0; i < METRICS_BUCKETS; i++) {
		counts[i] = metrics_bucket_count(s, i);
		total += counts[i];
	}
	if (total == 0)
		return 0;
	max = metrics_cmd_max(s);
	rank = (uint64_t)(q * (double)total + 0.999999);
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < METRICS_BUCKETS; i++) {
		seen += counts[i];
		if (seen >= rank) {
			uint64_t up = bucket_upper(i);

			return up < max ? up : max;
		}
	}
	return max;
}

/* Add {"code": n} for every status code seen, summed over the shards. */
static void
add_statuses(const struct cmd_stats *s, struct json_object *st)
{
	char key[16];

	for (int i = 0; i < METRICS_SHARDS; i++)
		for (int k = 0; k < METRICS_STATUS_SLOTS; k++) {
			int code = atomic_load_explicit(
			    &s->shard[i].status[k].code, memory_order_acquire);

			if (code == 0)
				continue;
			snprintf(key, sizeof(key), "%d", code);
			if (json_object_object_get_ex(st, key, NULL))
				continue; /* summed when first seen */
			json_object_object_add(st, key, json_object_new_uint64(
			    metrics_cmd_status(s, code)));
		}
	if (SUM(s, other_status) > 0)
		json_object_object_add(st, "other",
		    json_object_new_uint64(SUM(s, other_status)));
}

struct json_object *
metrics_cmd_json(const struct cmd_stats *s)
{
	struct json_object *o = json_object_new_object();
	struct json_object *st = json_object_new_object();
	struct json_object *lat = json_object_new_object();
	struct json_object *hist = json_object_new_array();

	add_statuses(s, st);
	json_object_object_add(o, "calls",
	    json_object_new_uint64(metrics_cmd_calls(s)));
	json_object_object_add(o, "status", st);
	json_object_object_add(o, "timeouts",
	    json_object_new_uint64(metrics_cmd_timeouts(s)));
	json_object_object_add(o, "in_flight",
	    json_object_new_int64(metrics_cmd_in_flight(s)));
	json_object_object_add(lat, "p50", json_object_new_uint64(
	    metrics_cmd_quantile(s, 0.50)));
	json_object_object_add(lat, "p90", json_object_new_uint64(
	    metrics_cmd_quantile(s, 0.90)));
	json_object_object_add(lat, "p99", json_object_new_uint64(
	    metrics_cmd_quantile(s, 0.99)));
	json_object_object_add(lat, "max",
	    json_object_new_uint64(metrics_cmd_max(s)));
	json_object_object_add(lat, "sum",
	    json_object_new_uint64(cmd_sum_us(s)));
	json_object_object_add(o, "latency_us", lat);
	for (unsigned i = 0; i < METRICS_BUCKETS; i++) {
		uint64_t n = metrics_bucket_count(s, i);
		struct json_object *pair;

		if (n == 0)
			continue;
		pair = json_object_new_array();
		json_object_array_add(pair,
		    json_object_new_uint64(bucket_upper(i)));
		json_object_array_add(pair, json_object_new_uint64(n));
		json_object_array_add(hist, pair);
	}
	json_object_object_add(o, "histogram_us", hist);
	return o;
}

struct json_object *
metrics_daemon_json(const struct daemon_stats *d, int64_t now_ms)
{
	struct json_object *o = json_object_new_object();
	struct json_object *c = json_object_new_object();

	json_object_object_add(o, "uptime_s", json_object_new_int64(
	    (now_ms - d->started_ms) / 1000));
	json_object_object_add(c, "open", json_object_new_int64(
	    daemon_get(d, DM_CONNS_OPEN)));
	json_object_object_add(c, "total", json_object_new_int64(
	    daemon_get(d, DM_CONNS_TOTAL)));
	json_object_object_add(c, "refused", json_object_new_int64(
	    daemon_get(d, DM_CONNS_REFUSED)));
	json_object_object_add(c, "refused_per_uid", json_object_new_int64(
	    daemon_get(d, DM_REFUSED_UID)));
	json_object_object_add(c, "write_timeouts", json_object_new_int64(
	    daemon_get(d, DM_WRITE_TIMEOUTS)));
	json_object_object_add(c, "line_timeouts", json_object_new_int64(
	    daemon_get(d, DM_LINE_TIMEOUTS)));
	json_object_object_add(c, "shed", json_object_new_int64(
	    daemon_get(d, DM_SHED)));
	json_object_object_add(o, "connections", c);
	json_object_object_add(o, "buffered_bytes", json_object_new_int64(
	    daemon_get(d, DM_BUFFERED)));
	json_object_object_add(o, "stuck_threads", json_object_new_int64(
	    daemon_get(d, DM_STUCK_THREADS)));
	json_object_object_add(o, "requests", json_object_new_int64(
	    daemon_get(d, DM_REQUESTS)));
	json_object_object_add(o, "bytes_in", json_object_new_int64(
	    daemon_get(d, DM_BYTES_IN)));
	json_object_object_add(o, "bytes_out", json_object_new_int64(
	    daemon_get(d, DM_BYTES_OUT)));
	json_object_object_add(o, "unavailable", json_object_new_int64(
	    daemon_get(d, DM_UNAVAILABLE)));
	return o;
}
