/*
 * test_metrics.c - unit tests of metrics.c: status and timeout counters,
 * the latency histogram's quantiles (upper bounds, within ~25% of the true
 * value), the exact maximum, concurrent updates, and the JSON shapes.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fixture.h"
#include "metrics.h"

static struct cmd_stats *s;

/* A fresh, empty cmd_stats per test. */
static void
setup(void)
{
	s = metrics_cmd_new("test.echo");
	cr_assert_not_null(s);
}

/* Free it. */
static void
teardown(void)
{
	metrics_cmd_free(s);
}

TestSuite(metrics, .init = setup, .fini = teardown);

/* qsort() comparison of uint64_t. */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Record the n values of v (sorted in place afterwards) and check every
 * quantile the daemon reports: it must be at least the true value (the
 * value of rank ceil(q * n)) and at most 25% above it, and never above the
 * maximum.
 */
static void
record_and_check(uint64_t *v, size_t n)
{
	static const double qs[] = { 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0 };
	uint64_t max = 0;

	for (size_t i = 0; i < n; i++) {
		metrics_cmd_record(s, 200, v[i]);
		if (v[i] > max)
			max = v[i];
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	cr_assert_eq(metrics_cmd_max(s), max);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		size_t rank = (size_t)(qs[k] * (double)n);
		uint64_t truth, got = metrics_cmd_quantile(s, qs[k]);

		if ((double)rank < qs[k] * (double)n)
			rank++;
		if (rank == 0)
			rank = 1;
		truth = v[rank - 1];
		cr_assert_geq(got, truth, "q=%g: %llu is below the true value "
		    "%llu", qs[k], (unsigned long long)got,
		    (unsigned long long)truth);
		cr_assert_leq((double)got, (double)truth * 1.25 + 1.0,
		    "q=%g: %llu is more than 25%% above the true value %llu",
		    qs[k], (unsigned long long)got, (unsigned long long)truth);
		cr_assert_leq(got, max);
	}
}

Test(metrics, new_is_empty)
{
	cr_assert_str_eq(s->name, "test.echo");
	cr_assert_eq(metrics_cmd_calls(s), 0);
	cr_assert_eq(metrics_cmd_max(s), 0);
	cr_assert_eq(metrics_cmd_quantile(s, 0.5), 0);
	cr_assert_eq(metrics_cmd_quantile(s, 1.0), 0);
	metrics_cmd_free(NULL);
}

Test(metrics, name_is_copied)
{
	char name[] = "x.cmd";
	struct cmd_stats *t = metrics_cmd_new(name);

	cr_assert_not_null(t);
	name[0] = 'y';
	cr_assert_str_eq(t->name, "x.cmd");
	metrics_cmd_free(t);
}

Test(metrics, statuses_and_timeouts)
{
	metrics_cmd_record(s, 200, 10);
	metrics_cmd_record(s, 200, 20);
	metrics_cmd_record(s, 200, 30);
	metrics_cmd_record(s, 404, 5);
	metrics_cmd_record(s, 504, 1000);
	metrics_cmd_record(s, 504, 2000);
	metrics_cmd_record(s, 599, 1);
	cr_assert_eq(metrics_cmd_calls(s), 7);
	cr_assert_eq(metrics_cmd_status(s, 200), 3);
	cr_assert_eq(metrics_cmd_status(s, 404), 1);
	cr_assert_eq(metrics_cmd_status(s, 504), 2);
	cr_assert_eq(metrics_cmd_status(s, 599), 1);
	cr_assert_eq(metrics_cmd_status(s, 500), 0);
	cr_assert_eq(metrics_cmd_timeouts(s), 2);
	cr_assert_eq(metrics_cmd_max(s), 2000);
}

Test(metrics, out_of_range_status_is_only_counted_as_a_call)
{
	metrics_cmd_record(s, 0, 1);
	metrics_cmd_record(s, -1, 1);
	metrics_cmd_record(s, 600, 1);
	metrics_cmd_record(s, 99999, 1);
	cr_assert_eq(metrics_cmd_calls(s), 4);
	for (int i = 0; i < 700; i++)
		cr_assert_eq(metrics_cmd_status(s, i), 0, "status %d", i);
}

/* A shard keeps METRICS_STATUS_SLOTS distinct codes exactly; more distinct
 * codes than that are still counted as calls, under "other". */
Test(metrics, more_distinct_statuses_than_slots_go_to_other)
{
	struct json_object *o, *st;
	int n = METRICS_STATUS_SLOTS + 4;

	for (int i = 0; i < n; i++)
		metrics_cmd_record(s, 400 + i, 1);
	metrics_cmd_record(s, 400, 1);
	cr_assert_eq(metrics_cmd_calls(s), (uint64_t)n + 1);
	cr_assert_eq(metrics_cmd_status(s, 400), 2);
	o = metrics_cmd_json(s);
	st = fixture_member(o, "status", json_type_object);
	cr_assert_eq(json_object_object_length(st), METRICS_STATUS_SLOTS + 1,
	    "%s", json_object_to_json_string(st));
	cr_assert_eq(fixture_int(st, "other"), 4);
	json_object_put(o);
}

Test(metrics, uniform_1_to_1000)
{
	uint64_t v[1000];

	for (size_t i = 0; i < 1000; i++)
		v[i] = i + 1;
	record_and_check(v, 1000);
	cr_assert_geq(metrics_cmd_quantile(s, 0.5), 500);
	cr_assert_leq(metrics_cmd_quantile(s, 0.5), 650);
	cr_assert_geq(metrics_cmd_quantile(s, 0.9), 900);
	cr_assert_leq(metrics_cmd_quantile(s, 0.9), 1000);
	cr_assert_geq(metrics_cmd_quantile(s, 0.99), 990);
	cr_assert_leq(metrics_cmd_quantile(s, 0.99), 1000);
	cr_assert_eq(metrics_cmd_quantile(s, 1.0), 1000);
	cr_assert_eq(metrics_cmd_max(s), 1000);
}

Test(metrics, constant_value_is_exact)
{
	uint64_t v[100];

	for (size_t i = 0; i < 100; i++)
		v[i] = 100;
	record_and_check(v, 100);
	cr_assert_eq(metrics_cmd_quantile(s, 0.5), 100);
	cr_assert_eq(metrics_cmd_quantile(s, 0.99), 100);
}

Test(metrics, small_values_are_exact)
{
	uint64_t v[] = { 0, 1, 1, 2, 2, 2, 3, 3, 3, 3 };

	record_and_check(v, sizeof(v) / sizeof(v[0]));
	cr_assert_eq(metrics_cmd_quantile(s, 0.1), 0);
	cr_assert_eq(metrics_cmd_quantile(s, 0.3), 1);
	cr_assert_eq(metrics_cmd_quantile(s, 0.6), 2);
	cr_assert_eq(metrics_cmd_quantile(s, 1.0), 3);
}

Test(metrics, bimodal)
{
	uint64_t v[1000];

	for (size_t i = 0; i < 1000; i++)
		v[i] = i < 900 ? 10 : 10000;
	record_and_check(v, 1000);
	cr_assert_leq(metrics_cmd_quantile(s, 0.5), 12);
	cr_assert_leq(metrics_cmd_quantile(s, 0.9), 12);
	cr_assert_eq(metrics_cmd_quantile(s, 0.99), 10000);
}

Test(metrics, powers_of_two_and_neighbours)
{
	uint64_t v[3 * 36];
	size_t n = 0;

	for (int e = 2; e < 38; e++) {
		v[n++] = (1ULL << e) - 1;
		v[n++] = 1ULL << e;
		v[n++] = (1ULL << e) + 1;
	}
	record_and_check(v, n);
	cr_assert_eq(metrics_cmd_max(s), (1ULL << 37) + 1);
}

Test(metrics, pseudo_random_wide_range)
{
	static uint64_t v[20000];
	uint64_t x = 88172645463325252ULL;

	for (size_t i = 0; i < 20000; i++) {
		/* xorshift64; log-uniform from 1 us to ~17 minutes */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v[i] = (x >> 34) >> (x % 30);
		if (v[i] == 0)
			v[i] = 1;
	}
	record_and_check(v, 20000);
}

Test(metrics, max_is_exact)
{
	metrics_cmd_record(s, 200, 123457);
	metrics_cmd_record(s, 200, 99);
	metrics_cmd_record(s, 200, 123456);
	cr_assert_eq(metrics_cmd_max(s), 123457);
	cr_assert_eq(metrics_cmd_quantile(s, 1.0), 123457);
	/* 1 << 40 us is about 12.7 days: still counted. */
	metrics_cmd_record(s, 504, 1ULL << 40);
	cr_assert_eq(metrics_cmd_max(s), 1ULL << 40);
	cr_assert_eq(metrics_cmd_quantile(s, 1.0), 1ULL << 40);
}

/* Every bucket of s's histogram, summed. */
static uint64_t
bucket_total(const struct cmd_stats *st)
{
	uint64_t sum = 0;

	for (int i = 0; i < METRICS_BUCKETS; i++)
		sum += metrics_bucket_count(st, (unsigned)i);
	return sum;
}

struct hammer {
	struct cmd_stats *s;
	uint64_t base;
};

/* Record 25000 calls (half 200, half 500) from one thread. */
static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;

	for (uint64_t i = 0; i < 25000; i++)
		metrics_cmd_record(h->s, i % 2 ? 200 : 500, h->base + i % 1000);
	return NULL;
}

Test(metrics, concurrent_records_are_not_lost)
{
	pthread_t t[4];
	struct hammer h[4];

	for (int i = 0; i < 4; i++) {
		h[i].s = s;
		h[i].base = (uint64_t)i * 1000;
		cr_assert_eq(pthread_create(&t[i], NULL, hammer_main, &h[i]),
		    0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(metrics_cmd_calls(s), 100000);
	cr_assert_eq(metrics_cmd_status(s, 200), 50000);
	cr_assert_eq(metrics_cmd_status(s, 500), 50000);
	cr_assert_eq(metrics_cmd_max(s), 3999);
	cr_assert_eq(bucket_total(s), 100000);
}

static pthread_barrier_t all_set;

/* hammer_main() once every thread is set: an owner (`own`) first claims
 * a shard for itself (`owned` says whether it got one) and gives it back
 * after. */
struct own_hammer {
	struct hammer h;
	int own;
	int owned;
};

static void *
own_hammer_main(void *arg)
{
	struct own_hammer *o = arg;

	o->owned = o->own && metrics_shard_own() == 0;
	pthread_barrier_wait(&all_set);
	hammer_main(&o->h);
	metrics_shard_release();
	return NULL;
}

/* Four threads that own their shards (plain stores) and two that share
 * (atomic adds) record at the same time: nothing is lost. */
Test(metrics, owned_shards_lose_nothing_beside_shared_ones)
{
	pthread_t t[6];
	struct own_hammer o[6];
	int owned = 0;

	pthread_barrier_init(&all_set, NULL, 6);
	for (int i = 0; i < 6; i++) {
		o[i].h.s = s;
		o[i].h.base = (uint64_t)i * 1000;
		o[i].own = i < METRICS_SHARDS - METRICS_SHARED;
		cr_assert_eq(pthread_create(&t[i], NULL, own_hammer_main,
		    &o[i]), 0);
	}
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&all_set);
	for (int i = 0; i < 6; i++)
		owned += o[i].owned;
	cr_assert_eq(owned, 4, "four shards to own, four owners");
	cr_assert_eq(metrics_cmd_calls(s), 150000);
	cr_assert_eq(metrics_cmd_status(s, 200), 75000);
	cr_assert_eq(metrics_cmd_status(s, 500), 75000);
	cr_assert_eq(metrics_cmd_max(s), 5999);
	cr_assert_eq(bucket_total(s), 150000);
	cr_assert_eq(metrics_cmd_in_flight(s), 0);
	/* Given back: the test's thread can own one now. */
	cr_assert_eq(metrics_shard_own(), 0);
	cr_assert_geq(metrics_shard(), METRICS_SHARED);
	metrics_shard_release();
	cr_assert_lt(metrics_shard(), METRICS_SHARED, "shared again");
}

static pthread_barrier_t owners_in, owners_out;

/* Own a shard, wait until all owners and the test are there, and hold
 * it until the test has tried for one more. */
static void *
hold_main(void *arg)
{
	int *got = arg;

	*got = metrics_shard_own();
	pthread_barrier_wait(&owners_in);
	pthread_barrier_wait(&owners_out);
	metrics_shard_release();
	return NULL;
}

Test(metrics, a_thread_past_the_owned_shards_shares)
{
	enum { OWNERS = METRICS_SHARDS - METRICS_SHARED };
	pthread_t t[OWNERS];
	int got[OWNERS];

	pthread_barrier_init(&owners_in, NULL, OWNERS + 1);
	pthread_barrier_init(&owners_out, NULL, OWNERS + 1);
	for (int i = 0; i < OWNERS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hold_main, &got[i]),
		    0);
	pthread_barrier_wait(&owners_in);
	for (int i = 0; i < OWNERS; i++)
		cr_assert_eq(got[i], 0, "owner %d", i);
	cr_assert_eq(metrics_shard_own(), -1, "none left");
	cr_assert_eq(metrics_owned, 0);
	metrics_cmd_record(s, 200, 1); /* counted in a shared shard */
	cr_assert_lt(metrics_shard(), METRICS_SHARED);
	pthread_barrier_wait(&owners_out);
	for (int i = 0; i < OWNERS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(metrics_shard_own(), 0, "given back: one is free");
	metrics_shard_release();
	metrics_shard_release(); /* twice is harmless */
	cr_assert_eq(metrics_cmd_calls(s), 1);
	pthread_barrier_destroy(&owners_in);
	pthread_barrier_destroy(&owners_out);
}

Test(metrics, command_json_shape)
{
	struct json_object *o, *st, *lat;

	for (uint64_t i = 1; i <= 100; i++)
		metrics_cmd_record(s, 200, i * 10);
	metrics_cmd_record(s, 404, 3);
	metrics_cmd_record(s, 504, 5000);
	metrics_cmd_enter(s);
	metrics_cmd_enter(s);
	o = metrics_cmd_json(s);
	cr_assert_not_null(o);
	cr_assert_eq(fixture_int(o, "calls"), 102);
	cr_assert_eq(fixture_int(o, "in_flight"), 2);
	cr_assert_eq(fixture_int(o, "timeouts"), 1);
	st = fixture_member(o, "status", json_type_object);
	cr_assert_eq(json_object_object_length(st), 3, "%s",
	    json_object_to_json_string(st));
	cr_assert_eq(fixture_int(st, "200"), 100);
	cr_assert_eq(fixture_int(st, "404"), 1);
	cr_assert_eq(fixture_int(st, "504"), 1);
	lat = fixture_member(o, "latency_us", json_type_object);
	cr_assert_eq(fixture_int(lat, "max"), 5000);
	cr_assert_eq((uint64_t)fixture_int(lat, "p50"),
	    metrics_cmd_quantile(s, 0.5));
	cr_assert_eq((uint64_t)fixture_int(lat, "p90"),
	    metrics_cmd_quantile(s, 0.9));
	cr_assert_eq((uint64_t)fixture_int(lat, "p99"),
	    metrics_cmd_quantile(s, 0.99));
	cr_assert_leq(fixture_int(lat, "p50"), fixture_int(lat, "p90"));
	cr_assert_leq(fixture_int(lat, "p90"), fixture_int(lat, "p99"));
	json_object_put(o);
}

Test(metrics, command_json_when_empty)
{
	struct json_object *o = metrics_cmd_json(s), *lat;

	cr_assert_eq(fixture_int(o, "calls"), 0);
	cr_assert_eq(json_object_object_length(fixture_member(o, "status",
	    json_type_object)), 0);
	lat = fixture_member(o, "latency_us", json_type_object);
	cr_assert_eq(fixture_int(lat, "p50"), 0);
	cr_assert_eq(fixture_int(lat, "max"), 0);
	json_object_put(o);
}

Test(metrics, daemon_json_shape)
{
	struct daemon_stats d;
	struct json_object *o, *c;

	memset(&d, 0, sizeof(d));
	d.started_ms = 1000;
	metrics_add(&d, DM_CONNS_OPEN, 4);
	metrics_add(&d, DM_CONNS_OPEN, -1);
	metrics_add(&d, DM_CONNS_TOTAL, 10);
	metrics_add(&d, DM_CONNS_REFUSED, 1);
	metrics_add(&d, DM_REQUESTS, 77);
	metrics_add(&d, DM_BYTES_IN, 4096);
	metrics_add(&d, DM_BYTES_OUT, 8192);
	metrics_add(&d, DM_UNAVAILABLE, 2);
	o = metrics_daemon_json(&d, 6500);
	cr_assert_not_null(o);
	cr_assert_eq(fixture_int(o, "uptime_s"), 5);
	c = fixture_member(o, "connections", json_type_object);
	cr_assert_eq(fixture_int(c, "open"), 3);
	cr_assert_eq(fixture_int(c, "total"), 10);
	cr_assert_eq(fixture_int(o, "requests"), 77);
	cr_assert_eq(fixture_int(o, "bytes_in"), 4096);
	cr_assert_eq(fixture_int(o, "bytes_out"), 8192);
	json_object_put(o);
}
