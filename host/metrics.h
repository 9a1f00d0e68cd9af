/*
 * metrics.h - lock-free counters: per command and per daemon.
 *
 * Hot-path updates are relaxed atomic adds; readers (host.stats) see a
 * consistent-enough snapshot without stopping anyone.
 */
#ifndef CMDHOST_METRICS_H
#define CMDHOST_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include <json-c/json.h>

#define METRICS_BUCKETS 168 /* 4 per power of two, up to ~2^42 us */

struct cmd_stats {
	char *name;                  /* owned */
	struct cmd_stats *next;      /* registry's list */
	atomic_uint_fast64_t calls;
	atomic_uint_fast64_t by_status[600];
	atomic_uint_fast64_t timeouts;
	atomic_int_fast64_t in_flight;
	atomic_uint_fast64_t max_us;
	atomic_uint_fast64_t buckets[METRICS_BUCKETS];
};

struct daemon_stats {
	int64_t started_ms;
	atomic_int_fast64_t conns_open;
	atomic_uint_fast64_t conns_total;
	atomic_uint_fast64_t conns_refused;
	atomic_uint_fast64_t requests;
	atomic_uint_fast64_t bytes_in;
	atomic_uint_fast64_t bytes_out;
	atomic_uint_fast64_t unavailable;
};

/* Returns new (metrics_cmd_free), or NULL.  name is copied. */
struct cmd_stats *metrics_cmd_new(const char *name);
void metrics_cmd_free(struct cmd_stats *s);

/* Count one finished call: its status and how long it took. */
void metrics_cmd_record(struct cmd_stats *s, int status, uint64_t micros);

/* The upper bound, in microseconds, of the q-quantile (0 < q <= 1), or 0
 * when nothing was recorded. */
uint64_t metrics_cmd_quantile(const struct cmd_stats *s, double q);

/* Returns a new JSON object (one reference, caller puts) describing s. */
struct json_object *metrics_cmd_json(const struct cmd_stats *s);

/* Returns a new JSON object with the daemon counters. */
struct json_object *metrics_daemon_json(const struct daemon_stats *d,
    int64_t now_ms);

#endif /* CMDHOST_METRICS_H */
