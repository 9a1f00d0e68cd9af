/*
 * prom.c - the host.stats body in the Prometheus text exposition format
 * (version 0.0.4): what `cmdhost stats --prometheus` prints (for a
 * textfile collector or a cron job) and what the daemon's HTTP endpoint
 * serves at /metrics, the same text from the same code.
 *
 * Every family has HELP and TYPE lines, counters end in _total, times are
 * in seconds, and each command's latency histogram is given with
 * cumulative buckets at powers of two microseconds (the daemon's own
 * buckets are finer and line up with these bounds, so the counts are
 * exact).  Workflows (host.stats "workflows") get their executions'
 * counters and a duration histogram per workflow.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "prom.h"

#include "buf.h"

/* The histogram's bounds: 2^k - 1 microseconds for k in [FIRST, LAST]. */
#define PROM_FIRST_POW 3   /* 7 us */
#define PROM_LAST_POW  25  /* 33.5 s */

/* A number member of obj, or 0. */
static int64_t
num(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (obj == NULL || !json_object_object_get_ex(obj, key, &v) ||
	    v == NULL)
		return 0;
	return json_object_get_int64(v);
}

static void
family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Print s as a label value: backslash, quote and newline escaped, bytes
 * that are not UTF-8 (a file name may hold any) replaced by U+FFFD. */
static void
label_value(struct buf *b, const char *s)
{
	size_t left = strlen(s), len;

	buf_puts(b, "\"");
	while (left > 0) {
		if (*s == '\\' || *s == '"')
			buf_printf(b, "\\%c", *s);
		else if (*s == '\n')
			buf_puts(b, "\\n");
		else if ((len = buf_utf8_seq((const unsigned char *)s,
		    left)) > 1) {
			buf_put(b, s, len);
			s += len;
			left -= len;
			continue;
		} else if (len == 0)
			buf_puts(b, "\xef\xbf\xbd");
		else
			buf_put(b, s, 1);
		s++;
		left--;
	}
	buf_puts(b, "\"");
}

/* One sample: NAME{LABEL="VALUE"[,EXTRA]} V, where extra is preformatted
 * label text (may be NULL). */
static void
sample(struct buf *b, const char *name, const char *label, const char *value,
    const char *extra, const char *v)
{
	buf_puts(b, name);
	if (label != NULL) {
		buf_printf(b, "{%s=", label);
		label_value(b, value);
		if (extra != NULL)
			buf_printf(b, ",%s", extra);
		buf_puts(b, "}");
	}
	buf_printf(b, " %s\n", v);
}

static void
sample_i(struct buf *b, const char *name, const char *label, const char *value,
    const char *extra, int64_t v)
{
	char text[32];

	snprintf(text, sizeof(text), "%" PRId64, v);
	sample(b, name, label, value, extra, text);
}

static void
sample_s(struct buf *b, const char *name, const char *label, const char *value,
    const char *extra, double seconds)
{
	char text[40];

	snprintf(text, sizeof(text), "%.9g", seconds);
	sample(b, name, label, value, extra, text);
}

/* The daemon's own families: one unlabelled sample each, from member
 * `key` of the body, or of its object `obj` when not NULL. */
static const struct {
	const char *name, *type, *help, *key, *obj;
} daemon_families[] = {
	{ "cmdhost_uptime_seconds", "gauge",
	    "Seconds since the daemon started.", "uptime_s", NULL },
	{ "cmdhost_connections_open", "gauge",
	    "Client connections open now.", "open", "connections" },
	{ "cmdhost_connections_total", "counter",
	    "Client connections accepted.", "total", "connections" },
	{ "cmdhost_connections_refused_total", "counter",
	    "Connections refused (max_connections, out of fds, stopping).",
	    "refused", "connections" },
	{ "cmdhost_connections_refused_per_uid_total", "counter",
	    "Connections refused by max_connections_per_uid.",
	    "refused_per_uid", "connections" },
	{ "cmdhost_write_timeouts_total", "counter",
	    "Connections closed: their replies were not read for "
	    "write_timeout_ms.", "write_timeouts", "connections" },
	{ "cmdhost_line_timeouts_total", "counter",
	    "Connections closed: a partial request line outlived "
	    "line_timeout_ms.", "line_timeouts", "connections" },
	{ "cmdhost_connections_shed_total", "counter",
	    "Connections closed to keep memory_budget_bytes.", "shed",
	    "connections" },
	{ "cmdhost_buffered_bytes", "gauge",
	    "Unread input and unsent output held for clients.",
	    "buffered_bytes", NULL },
	{ "cmdhost_stuck_threads", "gauge",
	    "Event-loop threads stuck in an inline call (replaced).",
	    "stuck_threads", NULL },
	{ "cmdhost_requests_total", "counter",
	    "Request lines read, host commands and bad lines included.",
	    "requests", NULL },
	{ "cmdhost_received_bytes_total", "counter",
	    "Bytes read from clients.", "bytes_in", NULL },
	{ "cmdhost_sent_bytes_total", "counter", "Bytes sent to clients.",
	    "bytes_out", NULL },
	{ "cmdhost_unavailable_total", "counter",
	    "Replies and refusals with status 503.", "unavailable", NULL },
	{ "cmdhost_queue_depth", "gauge",
	    "Calls waiting in the pool's queue.", "queue_depth", NULL },
	{ "cmdhost_idempotency_replays_total", "counter",
	    "Keyed calls answered with a stored result.", "replays",
	    "idempotency" },
	{ "cmdhost_idempotency_conflicts_total", "counter",
	    "Keyed calls answered 409: the first call was still running.",
	    "conflicts", "idempotency" },
	{ "cmdhost_idempotency_mismatches_total", "counter",
	    "Keyed calls answered 422: the key came with another payload.",
	    "mismatches", "idempotency" },
	{ "cmdhost_idempotency_stored_total", "counter",
	    "Results stored for idempotency keys.", "stored", "idempotency" },
	{ "cmdhost_idempotency_records", "gauge",
	    "Idempotency records held in memory.", "records", "idempotency" },
	{ "cmdhost_abandoned_loads", "gauge",
	    "Plugin loads given up on past load_timeout_ms whose thread "
	    "still runs.", "loads", "abandoned" },
	{ "cmdhost_abandoned_finis", "gauge",
	    "Plugin generations whose fini passed fini_timeout_ms and "
	    "still runs.", "finis", "abandoned" },
	{ "cmdhost_plugins_still_mapped", "gauge",
	    "Unloaded plugin generations whose code dlclose left mapped "
	    "(thread-local destructors, RTLD_NODELETE, unique symbols).",
	    "plugins_still_mapped", NULL },
	{ "cmdhost_rollbacks_total", "counter",
	    "Plugin generations rolled back (automatically, by hand, or "
	    "refused after a crash of the daemon).", "rollbacks", NULL },
};

static void
daemon_metrics(struct buf *out, struct json_object *b)
{
	for (size_t i = 0; i < sizeof(daemon_families) /
	    sizeof(daemon_families[0]); i++) {
		struct json_object *o = b;

		if (daemon_families[i].obj != NULL &&
		    !json_object_object_get_ex(b, daemon_families[i].obj, &o))
			continue; /* an older daemon: no such family */
		family(out, daemon_families[i].name, daemon_families[i].type,
		    daemon_families[i].help);
		sample_i(out, daemon_families[i].name, NULL, NULL, NULL,
		    num(o, daemon_families[i].key));
	}
}

/* The events' families (host.stats "events"), per subject. */
static const struct {
	const char *name, *type, *help, *key;
} event_families[] = {
	{ "cmdhost_events_emitted_total", "counter",
	    "Events stored in the outbox (emitted by 2xx calls, relayed).",
	    "emitted" },
	{ "cmdhost_events_delivered_total", "counter",
	    "Events delivered to their route or to NATS.", "delivered" },
	{ "cmdhost_events_retried_total", "counter",
	    "Event deliveries that failed and were scheduled again.",
	    "retried" },
	{ "cmdhost_events_dead_lettered_total", "counter",
	    "Events dead-lettered.", "dead_lettered" },
	{ "cmdhost_events_pending", "gauge",
	    "Events waiting for delivery.", "pending" },
	{ "cmdhost_events_dead", "gauge",
	    "Dead-lettered events kept.", "dead" },
	{ "cmdhost_events_oldest_pending_age_seconds", "gauge",
	    "Age of the oldest event waiting for delivery.",
	    "oldest_pending_age_ms" },
};

static void
event_metrics(struct buf *out, struct json_object *b)
{
	struct json_object *ev, *subs;

	if (!json_object_object_get_ex(b, "events", &ev) ||
	    !json_object_object_get_ex(ev, "subjects", &subs))
		return;
	for (size_t i = 0; i < sizeof(event_families) /
	    sizeof(event_families[0]); i++) {
		family(out, event_families[i].name, event_families[i].type,
		    event_families[i].help);
		json_object_object_foreach(subs, subject, so) {
			int64_t v = num(so, event_families[i].key);

			if (strstr(event_families[i].name, "seconds") != NULL)
				sample_s(out, event_families[i].name, "subject",
				    subject, NULL, (double)v / 1000.0);
			else
				sample_i(out, event_families[i].name, "subject",
				    subject, NULL, v);
		}
	}
}

/* Every command's samples of one family, by fn. */
typedef void (*cmd_fn)(struct buf *b, const char *name,
    struct json_object *c);

static void
each_command(struct buf *b, struct json_object *cmds, cmd_fn fn)
{
	json_object_object_foreach(cmds, name, c)
		fn(b, name, c);
}

static void
cmd_calls(struct buf *b, const char *name, struct json_object *c)
{
	sample_i(b, "cmdhost_command_calls_total", "command", name, NULL,
	    num(c, "calls"));
}

static void
cmd_replies(struct buf *b, const char *name, struct json_object *c)
{
	struct json_object *st;
	char extra[48];

	if (!json_object_object_get_ex(c, "status", &st) ||
	    !json_object_is_type(st, json_type_object))
		return;
	json_object_object_foreach(st, code, n) {
		snprintf(extra, sizeof(extra), "status=\"%.16s\"", code);
		sample_i(b, "cmdhost_command_replies_total", "command", name,
		    extra, json_object_get_int64(n));
	}
}

static void
cmd_timeouts(struct buf *b, const char *name, struct json_object *c)
{
	sample_i(b, "cmdhost_command_timeouts_total", "command", name, NULL,
	    num(c, "timeouts"));
}

static void
cmd_in_flight(struct buf *b, const char *name, struct json_object *c)
{
	sample_i(b, "cmdhost_command_in_flight", "command", name, NULL,
	    num(c, "in_flight"));
}

/* The number of calls in c's histogram. */
static int64_t
hist_total(struct json_object *c)
{
	struct json_object *hist;
	int64_t total = 0;

	if (!json_object_object_get_ex(c, "histogram_us", &hist) ||
	    !json_object_is_type(hist, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(hist); i++)
		total += json_object_get_int64(json_object_array_get_idx(
		    json_object_array_get_idx(hist, i), 1));
	return total;
}

static void
cmd_quantiles(struct buf *b, const char *name, struct json_object *c)
{
	static const char *const keys[] = { "p50", "p90", "p99" };
	static const char *const qs[] = { "0.5", "0.9", "0.99" };
	struct json_object *lat = NULL;
	char extra[32];

	json_object_object_get_ex(c, "latency_us", &lat);
	for (int i = 0; i < 3; i++) {
		snprintf(extra, sizeof(extra), "quantile=\"%s\"", qs[i]);
		sample_s(b, "cmdhost_command_latency_seconds", "command",
		    name, extra, (double)num(lat, keys[i]) / 1e6);
	}
	sample_s(b, "cmdhost_command_latency_seconds_sum", "command", name, NULL,
	    (double)num(lat, "sum") / 1e6);
	sample_i(b, "cmdhost_command_latency_seconds_count", "command", name,
	    NULL, hist_total(c));
}

static void
cmd_max(struct buf *b, const char *name, struct json_object *c)
{
	struct json_object *lat = NULL;

	json_object_object_get_ex(c, "latency_us", &lat);
	sample_s(b, "cmdhost_command_latency_max_seconds", "command", name, NULL,
	    (double)num(lat, "max") / 1e6);
}

/* The histogram family: cumulative counts at each bound, +Inf, sum and
 * count.  histogram_us is [[upper_us, count], ...], ascending. */
static void
cmd_histogram(struct buf *b, const char *name, struct json_object *c)
{
	struct json_object *hist = NULL, *lat = NULL;
	size_t n = 0, at = 0;
	int64_t cum = 0, total = 0;
	char extra[48];

	if (json_object_object_get_ex(c, "histogram_us", &hist) &&
	    json_object_is_type(hist, json_type_array))
		n = json_object_array_length(hist);
	total = hist_total(c);
	for (int k = PROM_FIRST_POW; k <= PROM_LAST_POW; k++) {
		uint64_t bound = ((uint64_t)1 << k) - 1;

		for (; at < n; at++) {
			struct json_object *pair = json_object_array_get_idx(
			    hist, at);
			uint64_t up = (uint64_t)json_object_get_uint64(
			    json_object_array_get_idx(pair, 0));

			if (up > bound)
				break;
			cum += json_object_get_int64(
			    json_object_array_get_idx(pair, 1));
		}
		snprintf(extra, sizeof(extra), "le=\"%.9g\"",
		    (double)bound / 1e6);
		sample_i(b, "cmdhost_command_duration_seconds_bucket", "command",
		    name, extra, cum);
	}
	sample_i(b, "cmdhost_command_duration_seconds_bucket", "command", name,
	    "le=\"+Inf\"", total);
	json_object_object_get_ex(c, "latency_us", &lat);
	sample_s(b, "cmdhost_command_duration_seconds_sum", "command", name, NULL,
	    (double)num(lat, "sum") / 1e6);
	sample_i(b, "cmdhost_command_duration_seconds_count", "command", name,
	    NULL, total);
}

static void
command_metrics(struct buf *b, struct json_object *cmds)
{
	family(b, "cmdhost_command_calls_total", "counter",
	    "Calls of each command that reached its plugin or its field "
	    "checks.");
	each_command(b, cmds, cmd_calls);
	family(b, "cmdhost_command_replies_total", "counter",
	    "Replies of each command, by status code.");
	each_command(b, cmds, cmd_replies);
	family(b, "cmdhost_command_timeouts_total", "counter",
	    "Calls of each command answered 504.");
	each_command(b, cmds, cmd_timeouts);
	family(b, "cmdhost_command_in_flight", "gauge",
	    "Calls of each command running or queued now.");
	each_command(b, cmds, cmd_in_flight);
	family(b, "cmdhost_command_latency_seconds", "summary",
	    "Latency quantiles of each command since start (upper bounds of "
	    "~19% wide buckets).");
	each_command(b, cmds, cmd_quantiles);
	family(b, "cmdhost_command_latency_max_seconds", "gauge",
	    "The slowest call of each command since start.");
	each_command(b, cmds, cmd_max);
	family(b, "cmdhost_command_duration_seconds", "histogram",
	    "How long calls of each command took, from dispatch to reply.");
	each_command(b, cmds, cmd_histogram);
}

/* Per plugin file: a family with its samples; a key ending in "_ms" is
 * a Unix time in milliseconds, given in seconds. */
static void
plugin_family(struct buf *b, struct json_object *plugins, const char *name,
    const char *type, const char *help, const char *key)
{
	size_t klen = strlen(key);
	int ms = klen > 3 && strcmp(key + klen - 3, "_ms") == 0;

	family(b, name, type, help);
	json_object_object_foreach(plugins, file, p) {
		struct json_object *v;
		int64_t n;
		char text[40];

		if (!json_object_object_get_ex(p, key, &v) || v == NULL)
			continue; /* never loaded */
		n = json_object_get_int64(v);
		if (ms)
			snprintf(text, sizeof(text), "%" PRId64 ".%03d",
			    n / 1000, (int)(n % 1000));
		else
			snprintf(text, sizeof(text), "%" PRId64, n);
		sample(b, name, "file", file, NULL, text);
	}
}

static void
plugin_metrics(struct buf *b, struct json_object *plugins)
{
	family(b, "cmdhost_plugin_info", "gauge",
	    "1 per plugin file that serves, labelled with its name and "
	    "version.");
	json_object_object_foreach(plugins, file, p) {
		struct json_object *v;

		if (!json_object_object_get_ex(p, "version", &v) || v == NULL)
			continue; /* never loaded */
		buf_puts(b, "cmdhost_plugin_info{file=");
		label_value(b, file);
		buf_puts(b, ",plugin=");
		label_value(b, json_object_get_string(json_object_object_get(p,
		    "name")));
		buf_puts(b, ",version=");
		label_value(b, json_object_get_string(v));
		buf_puts(b, "} 1\n");
	}
	plugin_family(b, plugins, "cmdhost_plugin_generation", "gauge",
	    "The generation number serving for each plugin file.",
	    "generation");
	plugin_family(b, plugins, "cmdhost_plugin_loads_total", "counter",
	    "Successful loads of each plugin file.", "loads");
	plugin_family(b, plugins, "cmdhost_plugin_load_failures_total", "counter",
	    "Refused loads of each plugin file.", "load_failures");
	plugin_family(b, plugins, "cmdhost_plugin_last_swap_timestamp_seconds",
	    "gauge", "When the serving generation of each plugin file was "
	    "published (Unix time).", "last_swap_ms");
}

/* The states a plugin file may be in (registry.h, and the isolation and
 * rollback work's); each file gets a sample for every one, 1 for its
 * own, so that a state it left reads 0 rather than going stale. */
static const char *const plugin_states[] = {
	"loaded", "degraded", "failed", "loading", "stuck", "crashing",
	"rolled_back"
};
#define N_STATES (sizeof(plugin_states) / sizeof(plugin_states[0]))

/* host.stats "workers": per isolated plugin, restarts by reason and
 * live worker processes. */
static void
worker_metrics(struct buf *b, struct json_object *workers)
{
	struct json_object *r;

	family(b, "cmdhost_worker_restarts_total", "counter",
	    "Worker processes replaced, by plugin and reason (crash, "
	    "timeout, recycle, memory, idle).");
	json_object_object_foreach(workers, plugin, w) {
		if (!json_object_object_get_ex(w, "restarts", &r))
			continue;
		json_object_object_foreach(r, reason, n) {
			char extra[64];

			snprintf(extra, sizeof(extra), "reason=\"%s\"", reason);
			sample_i(b, "cmdhost_worker_restarts_total", "plugin",
			    plugin, extra, json_object_get_int64(n));
		}
	}
	family(b, "cmdhost_workers_live", "gauge",
	    "Worker processes running now, by plugin.");
	json_object_object_foreach(workers, plugin2, w2)
		sample_i(b, "cmdhost_workers_live", "plugin", plugin2, NULL,
		    num(w2, "live"));
}


/* host.stats "workflows": per workflow, its executions' counters; the
 * bounds of their duration histogram in ms (workflow.c's, the last is
 * +Inf there and here). */
static const struct {
	const char *name, *type, *help, *key;
} workflow_families[] = {
	{ "cmdhost_workflow_executions_started_total", "counter",
	    "Executions of each workflow started.", "started" },
	{ "cmdhost_workflow_executions_resumed_total", "counter",
	    "Unfinished executions of each workflow resumed at start-up.",
	    "resumed" },
	{ "cmdhost_workflow_executions_succeeded_total", "counter",
	    "Executions of each workflow that succeeded.", "succeeded" },
	{ "cmdhost_workflow_executions_failed_total", "counter",
	    "Executions of each workflow that failed with nothing to "
	    "compensate.", "failed" },
	{ "cmdhost_workflow_executions_compensated_total", "counter",
	    "Executions of each workflow that failed and whose "
	    "compensations all succeeded.", "compensated" },
	{ "cmdhost_workflow_executions_compensation_failed_total", "counter",
	    "Executions of each workflow that ended compensation_failed.",
	    "compensation_failed" },
	{ "cmdhost_workflow_executions_running", "gauge",
	    "Unfinished executions of each workflow in this daemon now.",
	    "running" },
	{ "cmdhost_workflow_steps_total", "counter",
	    "States entered by executions of each workflow.", "steps" },
	{ "cmdhost_workflow_retries_total", "counter",
	    "Task and compensation retries scheduled, per workflow.",
	    "retries" },
};
static const int64_t workflow_bounds_ms[] = { 1, 2, 5, 10, 20, 50, 100,
	200, 500, 1000, 2000, 5000, 10000, 30000, 60000 };

/* The duration histogram of one workflow: histogram_ms is [[upper_ms
 * or null (+Inf), count], ...] with only the buckets that have some. */
static void
workflow_histogram(struct buf *b, const char *name, struct json_object *w)
{
	struct json_object *hist = NULL;
	size_t n = 0;
	int64_t total = 0;
	char extra[48];

	if (json_object_object_get_ex(w, "histogram_ms", &hist) &&
	    json_object_is_type(hist, json_type_array))
		n = json_object_array_length(hist);
	for (size_t i = 0; i < n; i++)
		total += json_object_get_int64(json_object_array_get_idx(
		    json_object_array_get_idx(hist, i), 1));
	for (size_t k = 0; k < sizeof(workflow_bounds_ms) /
	    sizeof(workflow_bounds_ms[0]); k++) {
		int64_t cum = 0;

		for (size_t i = 0; i < n; i++) {
			struct json_object *pair = json_object_array_get_idx(
			    hist, i), *up = json_object_array_get_idx(pair, 0);

			if (up != NULL && json_object_get_int64(up) <=
			    workflow_bounds_ms[k])
				cum += json_object_get_int64(
				    json_object_array_get_idx(pair, 1));
		}
		snprintf(extra, sizeof(extra), "le=\"%.9g\"",
		    (double)workflow_bounds_ms[k] / 1e3);
		sample_i(b, "cmdhost_workflow_duration_seconds_bucket",
		    "workflow", name, extra, cum);
	}
	sample_i(b, "cmdhost_workflow_duration_seconds_bucket", "workflow",
	    name, "le=\"+Inf\"", total);
	sample_s(b, "cmdhost_workflow_duration_seconds_sum", "workflow", name,
	    NULL, (double)num(w, "duration_ms_sum") / 1e3);
	sample_i(b, "cmdhost_workflow_duration_seconds_count", "workflow", name,
	    NULL, total);
}

static void
workflow_metrics(struct buf *b, struct json_object *body)
{
	struct json_object *wfs;

	if (!json_object_object_get_ex(body, "workflows", &wfs) ||
	    !json_object_is_type(wfs, json_type_object))
		return; /* no workflow_dir, or an older daemon */
	for (size_t i = 0; i < sizeof(workflow_families) /
	    sizeof(workflow_families[0]); i++) {
		family(b, workflow_families[i].name, workflow_families[i].type,
		    workflow_families[i].help);
		json_object_object_foreach(wfs, name, w)
			sample_i(b, workflow_families[i].name, "workflow", name,
			    NULL, num(w, workflow_families[i].key));
	}
	family(b, "cmdhost_workflow_duration_seconds", "histogram",
	    "How long finished executions of each workflow took, from start "
	    "to end (a resumed one: from its first start).");
	json_object_object_foreach(wfs, name2, w2)
		workflow_histogram(b, name2, w2);
	family(b, "cmdhost_workflow_executions_unfinished", "gauge",
	    "Unfinished executions of all workflows in this daemon now "
	    "(bounded by workflow_max_running).");
	sample_i(b, "cmdhost_workflow_executions_unfinished", NULL, NULL, NULL,
	    num(body, "workflow_executions_running"));
}

static void
state_metrics(struct buf *b, struct json_object *plugins)
{
	family(b, "cmdhost_plugin_state", "gauge",
	    "1 for the state each plugin file is in now, 0 for the others "
	    "(anything but loaded is not healthy).");
	json_object_object_foreach(plugins, file, p) {
		const char *state = json_object_get_string(
		    json_object_object_get(p, "state"));
		const char *name = json_object_get_string(
		    json_object_object_get(p, "name"));
		int known = 0;

		if (state == NULL)
			continue; /* an older daemon */
		for (size_t i = 0; i <= N_STATES; i++) {
			const char *s = i < N_STATES ? plugin_states[i] : state;

			if (i == N_STATES && known)
				break;
			if (i < N_STATES && strcmp(s, state) == 0)
				known = 1;
			buf_puts(b, "cmdhost_plugin_state{file=");
			label_value(b, file);
			buf_puts(b, ",plugin=");
			label_value(b, name ? name : file);
			buf_puts(b, ",state=");
			label_value(b, s);
			buf_printf(b, "} %d\n", strcmp(s, state) == 0);
		}
	}
}

int
prom_format(struct buf *b, struct json_object *body)
{
	struct json_object *cmds, *plugins, *workers, *v;

	family(b, "cmdhost_build_info", "gauge",
	    "Always 1, labelled with the daemon's version.");
	buf_puts(b, "cmdhost_build_info{version=");
	label_value(b, json_object_object_get_ex(body, "version", &v) &&
	    v != NULL ? json_object_get_string(v) : "unknown");
	buf_puts(b, "} 1\n");
	daemon_metrics(b, body);
	event_metrics(b, body);
	if (json_object_object_get_ex(body, "commands", &cmds) &&
	    json_object_is_type(cmds, json_type_object))
		command_metrics(b, cmds);
	if (json_object_object_get_ex(body, "plugins", &plugins) &&
	    json_object_is_type(plugins, json_type_object)) {
		plugin_metrics(b, plugins);
		state_metrics(b, plugins);
	}
	if (json_object_object_get_ex(body, "workers", &workers) &&
	    json_object_is_type(workers, json_type_object))
		worker_metrics(b, workers);
	workflow_metrics(b, body);
	return buf_reserve(b, 1) < 0 ? -ENOMEM : 0;
}
