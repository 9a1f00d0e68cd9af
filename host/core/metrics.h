/*
 * metrics.h - counters per command and per daemon, with no lock and no
 * shared cache line in the hot path.
 *
 * Every counter is split into METRICS_SHARDS shards, each on cache lines
 * of its own.  The first METRICS_SHARED are shared: a thread updates the
 * one it was given on its first update (threads are numbered as they
 * come, modulo METRICS_SHARED) with relaxed atomic adds, which no other
 * thread contends for unless there are more threads than shards.  The
 * rest are owned: a thread that updates very often (an event loop)
 * claims one for itself alone (metrics_shard_own) and updates it with a
 * plain load and store, no locked instruction.  Readers (host.stats) add
 * the shards up: a consistent-enough snapshot without stopping anyone.
 *
 * Built with -DCMDHOST_NO_METRICS every update compiles to nothing (the
 * benchmark's baseline); the read side then reports zeros.
 */
#ifndef CMDHOST_METRICS_H
#define CMDHOST_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include <json-c/json.h>

#define METRICS_SHARDS 8
#define METRICS_SHARED 4        /* shards 0..3; 4..7 are owned */
#define METRICS_BUCKETS 168     /* 4 per power of two, up to ~2^42 us */
#define METRICS_STATUS_SLOTS 16 /* distinct status codes kept per shard */

/* One status code's count; code 0 marks a free slot. */
struct status_slot {
	atomic_int code;
	atomic_uint_fast64_t n;
};

struct cmd_shard {
	atomic_uint_fast64_t calls;
	atomic_uint_fast64_t timeouts;
	atomic_uint_fast64_t max_us;
	atomic_uint_fast64_t sum_us;
	atomic_int_fast64_t in_flight;
	atomic_uint_fast64_t other_status; /* codes that found no slot */
	struct status_slot status[METRICS_STATUS_SLOTS];
	atomic_uint_fast64_t buckets[METRICS_BUCKETS];
} __attribute__((aligned(64)));

struct cmd_stats {
	char *name;                  /* owned */
	struct cmd_shard shard[METRICS_SHARDS];
};

/* The daemon's counters; the gauges (CONNS_OPEN) are sums of +1 and -1. */
enum daemon_counter {
	DM_CONNS_OPEN = 0,
	DM_CONNS_TOTAL,
	DM_CONNS_REFUSED,
	DM_REQUESTS,
	DM_BYTES_IN,
	DM_BYTES_OUT,
	DM_UNAVAILABLE,      /* 503 replies of every kind */
	DM_REFUSED_UID,      /* connections over max_connections_per_uid */
	DM_WRITE_TIMEOUTS,   /* closed: replies unread for write_timeout_ms */
	DM_LINE_TIMEOUTS,    /* closed: a partial line past line_timeout_ms */
	DM_SHED,             /* closed: the memory budget was passed */
	DM_BUFFERED,         /* gauge: input and output bytes held */
	DM_STUCK_THREADS,    /* gauge: loop threads stuck in an inline call */
	DM_COUNT
};

struct daemon_shard {
	atomic_int_fast64_t v[DM_COUNT];
} __attribute__((aligned(64)));

struct daemon_stats {
	int64_t started_ms;
	struct daemon_shard shard[METRICS_SHARDS];
};

/* The calling thread's shard index (assigned on first call): inline,
 * as every counter update asks for it. */
extern _Thread_local int metrics_my_shard;
int metrics_shard_assign(void);

static inline int
metrics_shard(void)
{
	if (__builtin_expect(metrics_my_shard < 0, 0))
		return metrics_shard_assign();
	return metrics_my_shard;
}

/* Claim a shard for the calling thread alone (0), or keep a shared one
 * when all are owned (-1); metrics_shard_release() gives it back before
 * the thread ends.  The thread's counts stay in the sums either way. */
int metrics_shard_own(void);
void metrics_shard_release(void);

/* 1 on a thread that owns its shard. */
extern _Thread_local int metrics_owned;

/* Add n to *p, a counter of the calling thread's shard: no other thread
 * writes an owned shard, so its owner needs no locked add. */
#define METRICS_ADD(p, n) do {                                           \
	if (metrics_owned)                                               \
		atomic_store_explicit((p), atomic_load_explicit((p),     \
		    memory_order_relaxed) + (n), memory_order_relaxed);  \
	else                                                             \
		atomic_fetch_add_explicit((p), (n), memory_order_relaxed); \
} while (0)

/* Returns new (metrics_cmd_free), or NULL.  name is copied. */
struct cmd_stats *metrics_cmd_new(const char *name);
void metrics_cmd_free(struct cmd_stats *s);

#ifdef CMDHOST_NO_METRICS
static inline void metrics_cmd_record(struct cmd_stats *s, int status,
    uint64_t micros) { (void)s; (void)status; (void)micros; }
static inline void metrics_cmd_enter(struct cmd_stats *s) { (void)s; }
static inline void metrics_cmd_leave(struct cmd_stats *s) { (void)s; }
static inline void metrics_add(struct daemon_stats *d,
    enum daemon_counter k, int64_t n) { (void)d; (void)k; (void)n; }
#else
/* Count one finished call: its status and how long it took. */
void metrics_cmd_record(struct cmd_stats *s, int status, uint64_t micros);

/* A call of s started / ended (the in-flight gauge). */
static inline void
metrics_cmd_enter(struct cmd_stats *s)
{
	METRICS_ADD(&s->shard[metrics_shard()].in_flight, 1);
}

static inline void
metrics_cmd_leave(struct cmd_stats *s)
{
	METRICS_ADD(&s->shard[metrics_shard()].in_flight, -1);
}

/* Add n (may be negative) to daemon counter k. */
static inline void
metrics_add(struct daemon_stats *d, enum daemon_counter k, int64_t n)
{
	METRICS_ADD(&d->shard[metrics_shard()].v[k], n);
}
#endif

/* Sums over the shards. */
uint64_t metrics_cmd_calls(const struct cmd_stats *s);
uint64_t metrics_cmd_status(const struct cmd_stats *s, int status);
uint64_t metrics_cmd_max(const struct cmd_stats *s);
uint64_t metrics_cmd_timeouts(const struct cmd_stats *s);
int64_t metrics_cmd_in_flight(const struct cmd_stats *s);

/* The upper bound, in microseconds, of the q-quantile (0 < q <= 1), or 0
 * when nothing was recorded. */
uint64_t metrics_cmd_quantile(const struct cmd_stats *s, double q);

/* The histogram: the count of bucket i (summed). */
uint64_t metrics_bucket_count(const struct cmd_stats *s, unsigned i);

/* Returns a new JSON object (one reference, caller puts) describing s:
 * calls, status {code: n}, timeouts, in_flight, latency_us {p50, p90,
 * p99, max, sum}, and histogram_us [[upper_us, count], ...] of the
 * non-empty buckets (the last bucket's upper bound is 2^64-1). */
struct json_object *metrics_cmd_json(const struct cmd_stats *s);

/* Returns a new JSON object with the daemon counters. */
struct json_object *metrics_daemon_json(const struct daemon_stats *d,
    int64_t now_ms);

#endif /* CMDHOST_METRICS_H */
