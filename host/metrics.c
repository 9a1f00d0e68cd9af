/*
 * metrics.c - counters and a log-scale latency histogram.
 *
 * A value v (microseconds) falls in bucket 4*(e-1)+m, where e is the
 * position of v's highest bit and m the next two bits: about 19% wide
 * buckets at every scale, with no lock and no allocation per sample.
 */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cmd_stats *
metrics_cmd_new(const char *name)
{
	struct cmd_stats *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
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

/* The largest value that falls in bucket idx. */
static uint64_t
bucket_upper(unsigned idx)
{
	unsigned e, m;

	if (idx < 4)
		return idx;
	e = idx / 4 + 1;
	m = idx % 4;
	return ((uint64_t)(4 + m + 1) << (e - 2)) - 1;
}

void
metrics_cmd_record(struct cmd_stats *s, int status, uint64_t micros)
{
	uint64_t max;

	atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
	if (status >= 100 && status < 600)
		atomic_fetch_add_explicit(&s->by_status[status], 1,
		    memory_order_relaxed);
	if (status == 504)
		atomic_fetch_add_explicit(&s->timeouts, 1,
		    memory_order_relaxed);
	atomic_fetch_add_explicit(&s->buckets[bucket_of(micros)], 1,
	    memory_order_relaxed);
	max = atomic_load_explicit(&s->max_us, memory_order_relaxed);
	while (micros > max && !atomic_compare_exchange_weak_explicit(
	    &s->max_us, &max, micros, memory_order_relaxed,
	    memory_order_relaxed))
		;
}

uint64_t
metrics_cmd_quantile(const struct cmd_stats *s, double q)
{
	uint64_t total = 0, seen = 0, rank;
	uint64_t counts[METRICS_BUCKETS];

	for (unsigned i = 0; i < METRICS_BUCKETS; i++) {
		counts[i] = atomic_load_explicit(&s->buckets[i],
		    memory_order_relaxed);
		total += counts[i];
	}
	if (total == 0)
		return 0;
	rank = (uint64_t)(q * (double)total + 0.999999);
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < METRICS_BUCKETS; i++) {
		seen += counts[i];
		if (seen >= rank) {
			uint64_t up = bucket_upper(i), max;

			max = atomic_load_explicit(&s->max_us,
			    memory_order_relaxed);
			return up < max ? up : max;
		}
	}
	return atomic_load_explicit(&s->max_us, memory_order_relaxed);
}

struct json_object *
metrics_cmd_json(const struct cmd_stats *s)
{
	struct json_object *o = json_object_new_object();
	struct json_object *st = json_object_new_object();
	struct json_object *lat = json_object_new_object();
	char key[8];

	for (int i = 100; i < 600; i++) {
		uint64_t n = atomic_load_explicit(&s->by_status[i],
		    memory_order_relaxed);

		if (n == 0)
			continue;
		snprintf(key, sizeof(key), "%d", i);
		json_object_object_add(st, key, json_object_new_uint64(n));
	}
	json_object_object_add(o, "calls", json_object_new_uint64(
	    atomic_load_explicit(&s->calls, memory_order_relaxed)));
	json_object_object_add(o, "status", st);
	json_object_object_add(o, "timeouts", json_object_new_uint64(
	    atomic_load_explicit(&s->timeouts, memory_order_relaxed)));
	json_object_object_add(o, "in_flight", json_object_new_int64(
	    atomic_load_explicit(&s->in_flight, memory_order_relaxed)));
	json_object_object_add(lat, "p50", json_object_new_uint64(
	    metrics_cmd_quantile(s, 0.50)));
	json_object_object_add(lat, "p90", json_object_new_uint64(
	    metrics_cmd_quantile(s, 0.90)));
	json_object_object_add(lat, "p99", json_object_new_uint64(
	    metrics_cmd_quantile(s, 0.99)));
	json_object_object_add(lat, "max", json_object_new_uint64(
	    atomic_load_explicit(&s->max_us, memory_order_relaxed)));
	json_object_object_add(o, "latency_us", lat);
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
	    atomic_load_explicit(&d->conns_open, memory_order_relaxed)));
	json_object_object_add(c, "total", json_object_new_uint64(
	    atomic_load_explicit(&d->conns_total, memory_order_relaxed)));
	json_object_object_add(c, "refused", json_object_new_uint64(
	    atomic_load_explicit(&d->conns_refused, memory_order_relaxed)));
	json_object_object_add(o, "connections", c);
	json_object_object_add(o, "requests", json_object_new_uint64(
	    atomic_load_explicit(&d->requests, memory_order_relaxed)));
	json_object_object_add(o, "bytes_in", json_object_new_uint64(
	    atomic_load_explicit(&d->bytes_in, memory_order_relaxed)));
	json_object_object_add(o, "bytes_out", json_object_new_uint64(
	    atomic_load_explicit(&d->bytes_out, memory_order_relaxed)));
	json_object_object_add(o, "unavailable", json_object_new_uint64(
	    atomic_load_explicit(&d->unavailable, memory_order_relaxed)));
	return o;
}
