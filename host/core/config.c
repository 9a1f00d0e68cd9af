/*
 * config.c - read cmdhost.ini with inih into struct config.
 *
 * One table, keys[], has a row per [host], [nats] and [jetstream] key (its
 * type, range, default and field); config_init(), config_set() and
 * config_fini() run through it.  [plugin:NAME] sections are kept as
 * free-form strings for the plugin to read, and nothing here logs.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ini.h>

#include <cmdhost/plugin.h>

#include "event.h"
#include "log.h"
#include "netaddr.h"

#define PLUGIN_PREFIX "plugin:"
#define ROUTE_PREFIX "route:"
#define ROUTE_SECTION "route:SUBJECT"

static int check_sun_path(const char *, const char *, char *, size_t);
static int check_service(const char *, const char *, char *, size_t);
static int check_true_false(const char *, const char *, char *, size_t);
static int check_http_listen(const char *, const char *, char *, size_t);

/* The offset of field f of struct config, which must be of type T (else
 * the _Generic has no match and the table does not compile). */
#define FIELD(f, T) _Generic(((struct config *)0)->f, \
	T: offsetof(struct config, f))

/* One row of keys[] per kind of value; `dflt` is the default. */
/* workflow_synchronous: SQLite's levels this daemon offers. */
static int
wf_sync_parse(const char *w)
{
	return strcmp(w, "off") == 0 ? 0 : strcmp(w, "normal") == 0 ? 1 :
	    strcmp(w, "full") == 0 ? 2 : -1;
}

#define K_STR(sec, key, f, lo, hi, dflt, chk, text) { .section = sec, \
	.name = key, .type = CONFIG_STRING, .min = lo, .max = hi, \
	.def_str = dflt, .offset = FIELD(f, char *), .check = chk, \
	.doc = text }
#define K_INT(sec, key, f, lo, hi, dflt, text) { .section = sec, \
	.name = key, .type = CONFIG_INT, .min = lo, .max = hi, .def = dflt, \
	.offset = FIELD(f, int), .doc = text }
#define K_SIZE(sec, key, f, lo, hi, dflt, text) { .section = sec, \
	.name = key, .type = CONFIG_SIZE, .min = lo, .max = hi, \
	.def = dflt, .offset = FIELD(f, size_t), .doc = text }
#define K_BOOL(sec, key, f, dflt, chk, text) { .section = sec, \
	.name = key, .type = CONFIG_BOOL, .min = 0, .max = 1, .def = dflt, \
	.offset = FIELD(f, int), .check = chk, .doc = text }
#define K_MODE(sec, key, f, hi, dflt, text) { .section = sec, \
	.name = key, .type = CONFIG_MODE, .min = 0, .max = hi, .def = dflt, \
	.offset = FIELD(f, mode_t), .doc = text }
#define K_ENUM(sec, key, f, fn, w, dflt, text) { .section = sec, \
	.name = key, .type = CONFIG_ENUM, .def = dflt, \
	.offset = FIELD(f, int), .parse = fn, .words = w, .doc = text }
#define K_UIDS(sec, key, f, text) { .section = sec, .name = key, \
	.type = CONFIG_UIDS, .min = 0, .max = CONFIG_MAX_ADMIN_UIDS, \
	.offset = FIELD(f, uid_t *), .doc = text }

#define MIB 1048576
#define GIB (1LL << 30)
#define DAY_MS 86400000

/* Every key of the file but [plugin:NAME] ones; keep man/cmdhost.ini.5 in
 * step (test_config checks it names each row, and no other key). */
static const struct config_key keys[] = {
	K_STR("host", "socket", socket, 1, 0, "cmdhost.sock", check_sun_path,
	    "path of the Unix socket"),
	K_MODE("host", "socket_mode", socket_mode, 0777, 0660,
	    "octal mode of the socket file"),
	K_STR("host", "plugin_dir", plugin_dir, 1, 0, "plugins", NULL,
	    "where *.so plugins are loaded from"),
	K_INT("host", "workers", workers, 0, 256, 0,
	    "event-loop threads; 0 is one per CPU"),
	K_INT("host", "pool_threads", pool_threads, 1, 1024, 8,
	    "threads that run blocking and slow commands"),
	K_INT("host", "queue_depth", queue_depth, 1, 1 << 20, 1024,
	    "calls that may wait for a pool thread; past it, 503"),
	K_INT("host", "inline_budget_us", inline_budget_us, 0, 60000000, 2000,
	    "an inline call slower than this moves its command to the pool"),
	K_SIZE("host", "max_request_bytes", max_request_bytes, 64, GIB, MIB,
	    "longest request line; longer lines get 413"),
	K_SIZE("host", "max_pending_bytes", max_pending_bytes, 4096, GIB, MIB,
	    "unsent replies past which a connection is not read"),
	K_INT("host", "idle_timeout_ms", idle_timeout_ms, 0, DAY_MS, 300000,
	    "close a connection idle this long; 0 never"),
	K_INT("host", "max_connections", max_connections, 1, 1000000, 1024,
	    "past it a new connection gets one 503 line"),
	K_INT("host", "admin_connections", admin_connections, 0, 1000000, 16,
	    "of max_connections, kept for admin uids (root, the daemon's, "
	    "admin_uids)"),
	K_INT("host", "max_connections_per_uid", max_connections_per_uid, 1,
	    1000000, 128, "connections one uid that is not an admin may hold"),
	K_SIZE("host", "max_buffered_bytes_per_uid", max_buffered_bytes_per_uid,
	    4096, 1LL << 40, 64 * MIB, "unread input and unsent output one "
	    "non-admin uid may hold before its connections are not read"),
	K_SIZE("host", "memory_budget_bytes", memory_budget_bytes, 65536,
	    1LL << 40, 512 * MIB, "input and output all connections may hold; "
	    "past it the heaviest uid's largest connection is closed"),
	K_INT("host", "write_timeout_ms", write_timeout_ms, 0, DAY_MS, 30000,
	    "close a connection whose unsent replies moved for none of this "
	    "long; 0 never"),
	K_INT("host", "line_timeout_ms", line_timeout_ms, 0, DAY_MS, 10000,
	    "close a connection whose partial request line is not complete "
	    "this long after it began; 0 never"),
	K_INT("host", "inline_stuck_ms", inline_stuck_ms, 10, DAY_MS, 1000,
	    "an inline call running this long is stuck: a new thread takes "
	    "over its event loop"),
	K_INT("host", "default_timeout_ms", default_timeout_ms, 1, DAY_MS,
	    30000, "deadline of a call without timeout_ms"),
	K_INT("host", "shutdown_timeout_ms", shutdown_timeout_ms, 0, DAY_MS,
	    10000, "how long shutdown waits for calls in flight"),
	K_BOOL("host", "watch", watch, 1, NULL,
	    "reload changed plugin files by themselves (inotify)"),
	K_INT("host", "reload_debounce_ms", reload_debounce_ms, 0, 60000, 20,
	    "how long a file must be left alone before it is loaded"),
	K_BOOL("host", "allow_insecure_plugins", allow_insecure_plugins, 0,
	    NULL, "load plugin files others may write (development only)"),
	K_INT("host", "load_timeout_ms", load_timeout_ms, 100, 600000, 5000,
	    "a plugin load (copy, dlopen, registration) past this is "
	    "abandoned"),
	K_INT("host", "fini_timeout_ms", fini_timeout_ms, 100, 600000, 5000,
	    "a plugin fini (and dlclose) past this is abandoned"),
	K_SIZE("host", "max_plugin_bytes", max_plugin_bytes, 4096, 4 * GIB,
	    256 * MIB, "largest plugin file read; larger ones are refused"),
	K_ENUM("host", "log_level", log_level, log_level_parse,
	    "one of debug, info, warn, error", LOGL_INFO,
	    "the least severe level logged"),
	K_ENUM("host", "log_format", log_format, log_format_parse,
	    "json or text", LOGF_JSON, "json or text log lines"),
	K_STR("host", "service", service, 1, 64, "cmdhostd", check_service,
	    "the service field of every log line"),
	K_BOOL("host", "access_log", access_log, 0, NULL,
	    "one info log line per request"),
	K_INT("host", "client_log_rate", client_log_rate, 0, 1000000, 20,
	    "error log lines a second one client uid may cause; 0 no limit"),
	K_INT("host", "client_log_burst", client_log_burst, 1, 1000000, 100,
	    "error log lines one client uid may cause at once"),
	K_BOOL("host", "reply_request_id", reply_request_id, 0, NULL,
	    "every reply carries the daemon's request_id"),
	K_UIDS("host", "admin_uids", admin_uids,
	    "uids or user names that may run host.reload, besides root"),
	K_STR("host", "state_dir", state_dir, 1, 0, "state", NULL,
	    "where state that outlives a restart is kept (created 0700)"),
	K_INT("host", "idempotency_ttl_s", idempotency_ttl_s, 1, 31 * 86400,
	    3600, "how long a stored result replays"),
	K_INT("host", "idempotency_memory", idempotency_memory, 1, 100000000,
	    100000, "stored results kept in memory; older ones are read "
	    "from disk"),
	K_BOOL("host", "idempotency_shared", idempotency_shared, 0, NULL,
	    "one key scope for every caller, not one per uid"),
	K_BOOL("host", "rollback", rollback, 1, NULL,
	    "keep the previous copy after a swap and put it back when the "
	    "new generation fails inside its window"),
	K_INT("host", "rollback_window_s", rollback_window_s, 0, 31 * 86400,
	    60, "seconds a new generation is on probation after a swap"),
	K_INT("host", "rollback_min_calls", rollback_min_calls, 0, 100000000,
	    20, "calls a new generation must answer before its 5xx share is "
	    "judged, and before it has proven itself"),
	K_INT("host", "rollback_5xx_percent", rollback_5xx_percent, 0, 100, 10,
	    "a 5xx share over this inside the window rolls back"),
	K_INT("host", "rollback_crashes", rollback_crashes, 0, 1000000, 3,
	    "worker crashes inside the window that roll back; 0 never"),

	K_INT("events", "max_pending", events_max_pending, 1, 100000000,
	    100000, "events the outbox holds (pending and dead); past it a "
	    "call that emits gets 503"),
	K_INT("events", "max_attempts", events_max_attempts, 1, 1000000, 8,
	    "deliveries of an event to a route before it is dead-lettered"),
	K_INT("events", "backoff_ms", events_backoff_ms, 1, 3600000, 200,
	    "wait before the first retry of a delivery; it doubles"),
	K_INT("events", "backoff_max_ms", events_backoff_max_ms, 1, DAY_MS,
	    30000, "the longest wait between retries"),
	K_INT("events", "window", events_window, 1, 1024, 1,
	    "deliveries of one subject in flight at once (1 keeps order)"),
	K_INT("events", "relay_interval_ms", events_relay_ms, 10, 600000, 200,
	    "how often plugins' own outboxes are read"),
	{ .section = ROUTE_SECTION, .name = "command", .type = CONFIG_STRING,
	  .min = 1, .max = CMDHOST_NAME_MAX,
	  .offset = offsetof(struct config_route, command),
	  .doc = "the local command each event of SUBJECT is delivered to" },
	{ .section = ROUTE_SECTION, .name = "max_attempts", .type = CONFIG_INT,
	  .min = 0, .max = 1000000,
	  .offset = offsetof(struct config_route, max_attempts),
	  .doc = "deliveries before a dead letter; 0 the [events] value" },
	{ .section = ROUTE_SECTION, .name = "backoff_ms", .type = CONFIG_INT,
	  .min = 0, .max = 3600000,
	  .offset = offsetof(struct config_route, backoff_ms),
	  .doc = "first retry wait; 0 the [events] value" },
	{ .section = ROUTE_SECTION, .name = "backoff_max_ms",
	  .type = CONFIG_INT, .min = 0, .max = DAY_MS,
	  .offset = offsetof(struct config_route, backoff_max_ms),
	  .doc = "longest retry wait; 0 the [events] value" },
	K_STR("host", "workflow_dir", workflow_dir, 0, 0, "", NULL,
	    "where workflow definitions (*.json) are read from; empty: none"),
	K_INT("host", "workflow_threads", workflow_threads, 1, 64, 2,
	    "threads that advance workflow executions"),
	K_INT("host", "workflow_max_running", workflow_max_running, 1,
	    10000000, 10000, "unfinished workflow executions; past it 503"),
	K_INT("host", "workflow_max_steps", workflow_max_steps, 1, 10000000,
	    1000, "states one execution may enter before it fails"),
	K_INT("host", "workflow_max_history", workflow_max_history, 10,
	    100000000, 10000, "history events one execution may record"),
	K_INT("host", "workflow_max_depth", workflow_max_depth, 1, 64, 8,
	    "how deep workflows may call workflows"),
	K_ENUM("host", "workflow_synchronous", workflow_synchronous,
	    wf_sync_parse, "one of off, normal, full", 1,
	    "SQLite synchronous level of the workflow history"),
	K_INT("host", "workflow_poll_ms", workflow_poll_ms, 50, 3600000, 500,
	    "how often workflow_dir is looked at for changed definitions"),
	K_ENUM("host", "isolation", isolation, config_isolation_parse,
	    "inprocess or process", 0, "where plugins run unless their "
	    "[plugin:NAME] isolation says: the daemon or worker processes"),
	K_INT("host", "plugin_workers", plugin_workers, 1, 256, 2,
	    "worker processes per isolated plugin ([plugin:NAME] workers)"),
	K_INT("host", "worker_inflight", worker_inflight, 1, 64, 1,
	    "calls one worker process runs at once"),
	K_INT("host", "worker_pipeline", worker_pipeline, 1, 64, 8,
	    "calls sent ahead to a worker that runs one at a time"),
	K_INT("host", "max_requests", max_requests, 0, 1000000000, 0,
	    "calls after which a worker process is recycled; 0 never"),
	K_SIZE("host", "worker_memory_bytes", worker_memory_bytes, 0,
	    1LL << 40, 0, "resident memory past which a worker process is "
	    "recycled; 0 no limit"),
	K_INT("host", "worker_nofile", worker_nofile, 16, 1048576, 1024,
	    "open files a worker process may hold (RLIMIT_NOFILE)"),
	K_BOOL("host", "probe", probe, 1, NULL,
	    "load a new plugin file in a throwaway worker before the daemon "
	    "maps it"),
	K_STR("host", "worker_path", worker_path, 0, 0, NULL, NULL,
	    "the cmdhost-worker program; default: next to cmdhostd"),
	K_STR("host", "http_listen", http_listen, 0, 0, "", check_http_listen,
	    "the HTTP monitoring endpoint: IPv4:PORT, [IPv6]:PORT or a Unix "
	    "socket path; empty: off"),
	K_INT("host", "http_max_connections", http_max_connections, 1, 10000,
	    64, "HTTP connections open at once; past it one is closed at "
	    "once"),
	K_INT("host", "http_max_connections_per_ip", http_max_connections_per_ip,
	    0, 10000, 16, "HTTP connections one client address may hold; 0 "
	    "no limit"),
	K_INT("host", "http_timeout_s", http_timeout_s, 1, 3600, 10,
	    "close an HTTP connection that sends nothing for this long"),
	K_SIZE("host", "http_memory_bytes", http_memory_bytes, 4096, MIB,
	    32768, "memory per HTTP connection; a request line and headers "
	    "larger than it are refused"),

	K_STR("nats", "url", nats.url, 1, 0, "nats://127.0.0.1:4222", NULL,
	    "the NATS servers, comma-separated"),
	K_STR("nats", "subject_prefix", nats.subject_prefix, 1, 0,
	    "cmdhost.cmd.", config_nats_subject,
	    "requests come on <prefix><command>"),
	K_STR("nats", "queue_group", nats.queue_group, 1, 0, "cmdhost",
	    config_nats_name, "the queue group all daemons share"),
	K_STR("nats", "service_name", nats.service_name, 1, 0, "cmdhost",
	    config_nats_name, "the service name in $SRV discovery"),
	K_STR("nats", "credentials", nats.credentials, 0, 0, NULL, NULL,
	    "a .creds file (JWT and nkey)"),
	K_STR("nats", "user", nats.user, 0, 0, NULL, NULL,
	    "user name, with password"),
	K_STR("nats", "password", nats.password, 0, 0, NULL, NULL,
	    "password of user"),
	K_STR("nats", "token", nats.token, 0, 0, NULL, NULL,
	    "an authentication token"),
	K_STR("nats", "tls_ca", nats.tls_ca, 0, 0, NULL, NULL,
	    "a CA file; turns TLS on"),
	K_INT("nats", "reconnect_wait_ms", nats.reconnect_wait_ms, 10, 600000,
	    250, "wait between reconnect attempts"),
	K_INT("nats", "max_reconnect", nats.max_reconnect, -1, 1000000, -1,
	    "reconnect attempts; -1 forever"),
	K_INT("nats", "delivery_threads", nats.delivery_threads, 1, 64, 2,
	    "libnats threads that deliver requests"),
	K_BOOL("nats", "send_asap", nats.send_asap, 1, check_true_false,
	    "replies leave at once (false: batched for up to 1 ms)"),
	K_STR("nats", "module", nats.module, 0, 0, NULL, NULL,
	    "path of cmdhost-nats.so"),

	K_STR("jetstream", "stream", nats.js_stream, 1, 0, "CMDHOST_EVENTS",
	    config_nats_name, "the work-queue stream, created if missing"),
	K_STR("jetstream", "subjects", nats.js_subjects, 1, 0,
	    "cmdhost.events.>", NULL,
	    "subjects of the stream, comma-separated"),
	K_STR("jetstream", "durable", nats.js_durable, 1, 0, "cmdhost",
	    config_nats_name, "the pull consumer all daemons share"),
	/* 0: [host] default_timeout_ms + 5000, set by config_nats_check() */
	K_INT("jetstream", "ack_wait_ms", nats.js_ack_wait_ms, 1000, DAY_MS, 0,
	    "how long an event may run before it is redelivered"),
	K_INT("jetstream", "max_deliver", nats.js_max_deliver, 1, 1000, 5,
	    "deliveries of an event before it is a dead letter"),
	K_INT("jetstream", "nak_delay_ms", nats.js_nak_delay_ms, 0, 3600000,
	    1000, "wait before a failed event is retried"),
	K_STR("jetstream", "dead_letter_prefix", nats.js_dead_letter, 1, 0,
	    "cmdhost.dead.", config_nats_subject,
	    "dead letters go to <prefix><command>"),
	K_INT("jetstream", "fetch_batch", nats.js_fetch_batch, 1, 1024, 32,
	    "events fetched at once"),
	K_INT("jetstream", "max_inflight", nats.js_max_inflight, 1, 65536, 64,
	    "events one daemon holds at once"),
	K_STR("jetstream", "idempotency_bucket", nats.js_idem_bucket, 0, 64,
	    NULL, config_nats_bucket,
	    "KV bucket sharing NATS callers' idempotency keys; empty: off"),
	K_STR("jetstream", "workflow_bucket", nats.js_wf_bucket, 0, 64, NULL,
	    config_nats_bucket, "KV bucket holding unfinished workflow "
	    "executions, so that another daemon takes over those of a dead "
	    "one; empty: off"),
	K_INT("jetstream", "workflow_lease_ms", nats.js_wf_lease_ms, 500,
	    3600000, 5000, "a daemon whose heartbeat in workflow_bucket did "
	    "not change for this long has its executions taken over"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
#define NO_FLAG ((size_t)-1)

static int finish_jetstream(struct config *, char *, size_t);
static int finish_routes(struct config *, char *, size_t);
static int set_route(struct config *, const char *, const char *,
    const char *, char *, size_t);

/* The sections of keys[]: `seen` is the offset of the int that any line
 * of the section sets to 1 (NO_FLAG: none); `finish` runs the checks
 * across keys once the whole file is read. */
static const struct section {
	const char *name;
	size_t seen;
	int (*finish)(struct config *cfg, char *err, size_t errlen);
} sections[] = {
	{ "host", NO_FLAG, NULL },
	{ "nats", FIELD(nats.enabled, int), NULL },
	{ "jetstream", FIELD(nats.js_enabled, int), finish_jetstream },
	{ "events", NO_FLAG, finish_routes },
};

#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

const struct config_key *
config_keys(size_t *n)
{
	*n = NKEYS;
	return keys;
}

/* The field of row k in base (a struct config, or for route rows a
 * struct config_route). */
static void *
field_of(void *base, const struct config_key *k)
{
	return (char *)base + k->offset;
}

/* Is k a row of [route:SUBJECT]? */
static int
route_row(const struct config_key *k)
{
	return strcmp(k->section, ROUTE_SECTION) == 0;
}

static const struct section *
find_section(const char *name)
{
	for (size_t i = 0; i < NSECTIONS; i++)
		if (strcmp(sections[i].name, name) == 0)
			return &sections[i];
	return NULL;
}

static void
unknown_section(const char *name, char *err, size_t errlen)
{
	snprintf(err, errlen, "unknown section [%s] (expected [host], [nats], "
	    "[jetstream], [events], [route:SUBJECT] or [plugin:NAME])", name);
}

/* A line of section s was read: turn its flag on. */
static void
section_seen(struct config *cfg, const struct section *s)
{
	if (s->seen != NO_FLAG)
		*(int *)(void *)((char *)cfg + s->seen) = 1;
}

static int
finish_jetstream(struct config *cfg, char *err, size_t errlen)
{
	/* The bucket keeps a record as long as the local store does. */
	cfg->nats.js_idem_ttl_s = cfg->idempotency_ttl_s;
	if (cfg->nats.js_wf_bucket != NULL && cfg->nats.js_wf_bucket[0] !=
	    '\0' && (cfg->workflow_dir == NULL || cfg->workflow_dir[0] ==
	    '\0')) {
		snprintf(err, errlen, "[jetstream] workflow_bucket %s needs "
		    "[host] workflow_dir: executions run where workflows are "
		    "served", cfg->nats.js_wf_bucket);
		return -1;
	}
	return config_nats_check(&cfg->nats, cfg->default_timeout_ms, err,
	    errlen);
}

int
config_set_string(char **field, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

/* The one integer parser: the whole of s in base (10 or 8), within
 * [min, max]; leading blanks are skipped, trailing text is an error. */
static int
parse_int(const char *s, int base, long long min, long long max,
    long long *out)
{
	char *end;
	long long v;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, base);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* true/yes/on/1 -> 1, false/no/off/0 -> 0, else -1. */
static int
parse_bool(const char *s)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* socket: it must fit sun_path with its NUL. */
static int
check_sun_path(const char *key, const char *value, char *err, size_t errlen)
{
	struct sockaddr_un sun;

	if (strlen(value) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: path longer than %zu bytes", key,
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	return 0;
}

/* service: printable ASCII, no quotes or backslashes, so that every log
 * line can carry it verbatim (its length is the row's range). */
static int
check_service(const char *key, const char *value, char *err, size_t errlen)
{
	for (const char *p = value; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\') {
			snprintf(err, errlen, "%s: '%s' may hold only "
			    "printable ASCII without spaces, quotes or "
			    "backslashes", key, value);
			return -1;
		}
	return 0;
}

/* http_listen: empty (off) or an address netaddr_parse() takes. */
static int
check_http_listen(const char *key, const char *value, char *err,
    size_t errlen)
{
	struct netaddr a;
	char why[400];

	if (value[0] == '\0')
		return 0;
	if (netaddr_parse(value, &a, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", key, why);
		return -1;
	}
	return 0;
}

/* send_asap has always taken only the words true and false. */
static int
check_true_false(const char *key, const char *value, char *err,
    size_t errlen)
{
	if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0)
		return 0;
	snprintf(err, errlen, "%s: '%s' is not true or false", key, value);
	return -1;
}

/* A string's length against the row's range. */
static int
check_length(const struct config_key *k, const char *value, char *err,
    size_t errlen)
{
	long long n = (long long)strlen(value);

	if (k->max > 0 && (n < k->min || n > k->max)) {
		snprintf(err, errlen, "%s: must be %lld..%lld characters",
		    k->name, k->min, k->max);
		return -1;
	}
	if (n < k->min) {
		snprintf(err, errlen, "%s: must not be empty", k->name);
		return -1;
	}
	return 0;
}

/* admin_uids: a comma- or blank-separated list of uids or user names; it
 * replaces the list before. */
static int
set_uids(struct config *cfg, const struct config_key *k, const char *value,
    char *err, size_t errlen)
{
	char *copy = strdup(value), *tok, *save = NULL;
	uid_t *uids = field_of(cfg, k);
	int rc = 0;

	if (copy == NULL) {
		snprintf(err, errlen, "%s: out of memory", k->name);
		return -1;
	}
	cfg->n_admin_uids = 0;
	for (tok = strtok_r(copy, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		long long v;
		uid_t uid;

		if (parse_int(tok, 10, 0, UINT_MAX - 1, &v) == 0) {
			uid = (uid_t)v;
		} else {
			struct passwd *pw = getpwnam(tok);

			if (pw == NULL) {
				snprintf(err, errlen, "%s: '%s' is neither a "
				    "uid nor a known user", k->name, tok);
				rc = -1;
				break;
			}
			uid = pw->pw_uid;
		}
		if (cfg->n_admin_uids == k->max) {
			snprintf(err, errlen, "%s: more than %lld entries",
			    k->name, k->max);
			rc = -1;
			break;
		}
		uids[cfg->n_admin_uids++] = uid;
	}
	free(copy);
	return rc;
}

/* Read value as row k says and store it in cfg.  Returns 0 or -1 with
 * "KEY: reason" in err. */
static int
set_value(struct config *cfg, void *base, const struct config_key *k,
    const char *value, char *err, size_t errlen)
{
	void *field = field_of(base, k);
	long long v;
	int w;

	if (k->type == CONFIG_STRING &&
	    check_length(k, value, err, errlen) < 0)
		return -1;
	if (k->check != NULL && k->check(k->name, value, err, errlen) < 0)
		return -1;
	switch (k->type) {
	case CONFIG_STRING:
		if (config_set_string(field, value) < 0) {
			snprintf(err, errlen, "%s: out of memory", k->name);
			return -1;
		}
		return 0;
	case CONFIG_INT:
	case CONFIG_SIZE:
		if (parse_int(value, 10, k->min, k->max, &v) < 0) {
			snprintf(err, errlen, "%s: '%s' is not an integer in "
			    "%lld..%lld", k->name, value, k->min, k->max);
			return -1;
		}
		if (k->type == CONFIG_INT)
			*(int *)field = (int)v;
		else
			*(size_t *)field = (size_t)v;
		return 0;
	case CONFIG_MODE:
		/* Octal digits only: no blank, sign or 0x. */
		if (strspn(value, "01234567") != strlen(value) ||
		    parse_int(value, 8, k->min, k->max, &v) < 0) {
			snprintf(err, errlen, "%s: '%s' is not an octal mode "
			    "from %llo to 0%llo", k->name, value,
			    (unsigned long long)k->min,
			    (unsigned long long)k->max);
			return -1;
		}
		*(mode_t *)field = (mode_t)v;
		return 0;
	case CONFIG_BOOL:
		if ((w = parse_bool(value)) < 0) {
			snprintf(err, errlen, "%s: '%s' is not true or false",
			    k->name, value);
			return -1;
		}
		*(int *)field = w;
		return 0;
	case CONFIG_ENUM:
		if ((w = k->parse(value)) < 0) {
			snprintf(err, errlen, "%s: '%s' is not %s", k->name,
			    value, k->words);
			return -1;
		}
		*(int *)field = w;
		return 0;
	case CONFIG_UIDS:
		return set_uids(cfg, k, value, err, errlen);
	}
	snprintf(err, errlen, "%s: no reader for its type", k->name);
	return -1;
}

int
config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	/* The NATS module checks these before it reads the rest. */
	cfg->nats.size = sizeof(cfg->nats);
	cfg->nats.version = NATS_CONFIG_VERSION;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &keys[i];
		void *field = field_of(cfg, k);

		if (route_row(k))
			continue; /* set when a route is made */
		switch (k->type) {
		case CONFIG_STRING:
			if (k->def_str != NULL &&
			    config_set_string(field, k->def_str) < 0) {
				config_fini(cfg);
				return -ENOMEM;
			}
			break;
		case CONFIG_INT:
		case CONFIG_BOOL:
		case CONFIG_ENUM:
			*(int *)field = (int)k->def;
			break;
		case CONFIG_SIZE:
			*(size_t *)field = (size_t)k->def;
			break;
		case CONFIG_MODE:
			*(mode_t *)field = (mode_t)k->def;
			break;
		case CONFIG_UIDS:
			break; /* no uid */
		}
	}
	cfg->nats.js_idem_ttl_s = cfg->idempotency_ttl_s;
	return 0;
}

int
config_set(struct config *cfg, const char *section, const char *key,
    const char *value, char *err, size_t errlen)
{
	const struct section *s = find_section(section);

	if (strncmp(section, ROUTE_PREFIX, strlen(ROUTE_PREFIX)) == 0)
		return set_route(cfg, section + strlen(ROUTE_PREFIX), key,
		    value, err, errlen);
	if (s == NULL) {
		unknown_section(section, err, errlen);
		return -1;
	}
	section_seen(cfg, s);
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, key) == 0)
			return set_value(cfg, cfg, &keys[i], value, err,
			    errlen);
	snprintf(err, errlen, "unknown key '%s' in [%s]", key, section);
	return -1;
}

int
config_set_host(struct config *cfg, const char *key, const char *value,
    char *err, size_t errlen)
{
	return config_set(cfg, "host", key, value, err, errlen);
}

static int
add_plugin_kv(struct config *cfg, const char *plugin, const char *key,
    const char *value)
{
	struct plugin_kv *kvs, *kv;

	for (size_t i = 0; i < cfg->n_plugin_kvs; i++) {
		kv = &cfg->plugin_kvs[i];
		if (strcmp(kv->plugin, plugin) == 0 &&
		    strcmp(kv->key, key) == 0)
			return config_set_string(&kv->value, value);
	}
	kvs = realloc(cfg->plugin_kvs, (cfg->n_plugin_kvs + 1) * sizeof(*kvs));
	if (kvs == NULL)
		return -ENOMEM;
	cfg->plugin_kvs = kvs;
	kv = &kvs[cfg->n_plugin_kvs];
	kv->plugin = strdup(plugin);
	kv->key = strdup(key);
	kv->value = strdup(value);
	if (kv->plugin == NULL || kv->key == NULL || kv->value == NULL) {
		free(kv->plugin);
		free(kv->key);
		free(kv->value);
		return -ENOMEM;
	}
	cfg->n_plugin_kvs++;
	return 0;
}

int
config_isolation_parse(const char *s)
{
	if (strcmp(s, "inprocess") == 0)
		return 0; /* ISOLATION_NONE */
	if (strcmp(s, "process") == 0)
		return 1; /* ISOLATION_PROCESS */
	return -1;
}

const char *
config_plugin_value(const struct config *cfg, const char *plugin,
    const char *key)
{
	for (size_t i = 0; i < cfg->n_plugin_kvs; i++) {
		const struct plugin_kv *kv = &cfg->plugin_kvs[i];

		if (strcmp(kv->plugin, plugin) == 0 &&
		    strcmp(kv->key, key) == 0)
			return kv->value;
	}
	return NULL;
}

const struct config_route *
config_route_of(const struct config *cfg, const char *subject)
{
	for (size_t i = 0; i < cfg->n_routes; i++)
		if (strcmp(cfg->routes[i].subject, subject) == 0)
			return &cfg->routes[i];
	return NULL;
}

/* A key of [route:SUBJECT]: the route is made by its first key.
 * Returns 0 or -1 with the reason in err. */
static int
set_route(struct config *cfg, const char *subject, const char *key,
    const char *value, char *err, size_t errlen)
{
	struct config_route *r = (struct config_route *)config_route_of(cfg,
	    subject);

	if (r == NULL) {
		struct config_route *rs;

		if (!event_subject_valid(subject)) {
			snprintf(err, errlen, "[route:%s]: not a subject "
			    "(dot-separated tokens of [A-Za-z0-9_:-], at most "
			    "%d bytes)", subject, CMDHOST_SUBJECT_MAX);
			return -1;
		}
		rs = realloc(cfg->routes, (cfg->n_routes + 1) * sizeof(*rs));
		if (rs == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		cfg->routes = rs;
		r = &rs[cfg->n_routes];
		memset(r, 0, sizeof(*r));
		if ((r->subject = strdup(subject)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		cfg->n_routes++;
	}
	for (size_t i = 0; i < NKEYS; i++)
		if (route_row(&keys[i]) && strcmp(keys[i].name, key) == 0)
			return set_value(cfg, r, &keys[i], value, err, errlen);
	snprintf(err, errlen, "unknown key '%s' in [route:%s]", key, subject);
	return -1;
}

/* Every route names its command; its zeros take the [events] values. */
static int
finish_routes(struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->n_routes; i++) {
		struct config_route *r = &cfg->routes[i];

		if (r->command == NULL) {
			snprintf(err, errlen, "[route:%s] has no command",
			    r->subject);
			return -1;
		}
		if (r->max_attempts == 0)
			r->max_attempts = cfg->events_max_attempts;
		if (r->backoff_ms == 0)
			r->backoff_ms = cfg->events_backoff_ms;
		if (r->backoff_max_ms == 0)
			r->backoff_max_ms = cfg->events_backoff_max_ms;
	}
	return 0;
}

struct line_reader;

struct parse_state {
	struct config *cfg;
	const struct line_reader *lr; /* the line being read */
	char err[512]; /* the first error, without file:line */
	int failed;
};

static void note_line(struct parse_state *ps, const char *section,
    const char *key);

/* inih calls this per key; returning 0 makes ini_parse() report the line. */
static int
on_key(void *user, const char *section, const char *key, const char *value)
{
	struct parse_state *ps = user;
	const struct section *s = find_section(section);
	char err[512];

	if (key == NULL) {
		/* A section header alone (INI_CALL_HANDLER_ON_NEW_SECTION). */
		if (s != NULL)
			section_seen(ps->cfg, s);
		return 1;
	}
	if (value == NULL)
		value = "";
	if (s != NULL) {
		if (config_set(ps->cfg, section, key, value, err,
		    sizeof(err)) == 0) {
			note_line(ps, section, key);
			return 1;
		}
	} else if (strncmp(section, ROUTE_PREFIX, strlen(ROUTE_PREFIX)) == 0) {
		if (set_route(ps->cfg, section + strlen(ROUTE_PREFIX), key,
		    value, err, sizeof(err)) == 0)
			return 1;
	} else if (strncmp(section, PLUGIN_PREFIX, strlen(PLUGIN_PREFIX)) == 0 &&
	    section[strlen(PLUGIN_PREFIX)] != '\0') {
		if (add_plugin_kv(ps->cfg, section + strlen(PLUGIN_PREFIX), key,
		    value) == 0)
			return 1;
		snprintf(err, sizeof(err), "out of memory");
	} else if (section[0] == '\0') {
		snprintf(err, sizeof(err), "key '%s' outside any section; put "
		    "it under [host]", key);
	} else {
		unknown_section(section, err, sizeof(err));
	}
	if (!ps->failed) {
		snprintf(ps->err, sizeof(ps->err), "%s", err);
		ps->failed = 1;
	}
	return 0;
}

/* The largest config file read. */
#define CONFIG_MAX_BYTES (1 << 20)

/*
 * Read the config file into a new buffer (free it) with a NUL after its
 * *len bytes.  The file is opened without blocking (a FIFO would wait for
 * a writer forever) and must be a regular file on the descriptor opened,
 * of at most CONFIG_MAX_BYTES.  NULL with the reason in err.
 */
static char *
read_config_file(const char *path, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *data = NULL;
	size_t n = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)) <
	    0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file (a config file "
		    "must be one; FIFOs, devices and sockets are refused)",
		    path);
		goto fail;
	}
	if (st.st_size > CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "%s: larger than %d bytes", path,
		    CONFIG_MAX_BYTES);
		goto fail;
	}
	/* One byte more than allowed tells a file that grew meanwhile. */
	if ((data = malloc(CONFIG_MAX_BYTES + 2)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	for (;;) {
		ssize_t r = read(fd, data + n, CONFIG_MAX_BYTES + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CONFIG_MAX_BYTES) {
			snprintf(err, errlen, "%s: larger than %d bytes", path,
			    CONFIG_MAX_BYTES);
			goto fail;
		}
	}
	close(fd);
	data[n] = '\0';
	*len = n;
	return data;
fail:
	free(data);
	close(fd);
	return NULL;
}

/* What ini_parse_stream() reads lines from: the file's bytes, and the
 * first line it could not take whole. */
struct line_reader {
	const char *p, *end;
	int line;        /* lines handed out so far */
	int long_line;   /* the first line too long for inih, or 0 */
	int nul_line;    /* the first line with a NUL byte, or 0 */
	int max;         /* the longest line inih takes, without '\n' */
};

/*
 * inih's reader: copy the next line (with its '\n') into str, of num
 * bytes.  inih's buffer is fixed (INI_MAX_LINE as Debian built it) and it
 * would cut a longer line in two silently; such a line, or one with a
 * NUL, ends the parse here instead, and config_load() reports it.
 */
static char *
read_line(char *str, int num, void *stream)
{
	struct line_reader *lr = stream;
	const char *nl;
	size_t n, body;

	if (lr->p >= lr->end || lr->long_line || lr->nul_line)
		return NULL;
	nl = memchr(lr->p, '\n', (size_t)(lr->end - lr->p));
	n = nl != NULL ? (size_t)(nl - lr->p) + 1 : (size_t)(lr->end - lr->p);
	body = nl != NULL ? n - 1 : n;
	lr->line++;
	/* The line and its '\n' must fit with the NUL, and the last line
	 * (no '\n') gets no more room than the others. */
	lr->max = num > 2 ? num - 2 : 0;
	if (body > (size_t)lr->max) {
		lr->long_line = lr->line;
		return NULL;
	}
	if (memchr(lr->p, '\0', body) != NULL) {
		lr->nul_line = lr->line;
		return NULL;
	}
	memcpy(str, lr->p, n);
	str[n] = '\0';
	lr->p += n;
	return str;
}

_Static_assert(NKEYS <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");

/* inih has just read the line lr->line and handed over its key. */
static void
note_line(struct parse_state *ps, const char *section, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, key) == 0)
			ps->cfg->key_lines[i] = ps->lr->line;
}

int
config_key_line(const struct config *cfg, const char *section,
    const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, key) == 0)
			return cfg->key_lines[i];
	return 0;
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct parse_state ps;
	struct line_reader lr;
	size_t len;
	char *data;
	int line;

	memset(&ps, 0, sizeof(ps));
	ps.cfg = cfg;
	/* An indented line is an error, not a silent continuation. */
	ini_allow_multiline = false;
	if (config_set_string(&cfg->path, path) < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if ((data = read_config_file(path, &len, err, errlen)) == NULL)
		return -1;
	memset(&lr, 0, sizeof(lr));
	ps.lr = &lr;
	lr.p = data;
	lr.end = data + len;
	line = ini_parse_stream(read_line, &lr, on_key, &ps);
	free(data);
	if (line == 0 && lr.long_line) {
		snprintf(err, errlen, "%s:%d: line longer than %d bytes (the "
		    "longest the ini parser reads whole)", path, lr.long_line,
		    lr.max);
		return -1;
	}
	if (line == 0 && lr.nul_line) {
		snprintf(err, errlen, "%s:%d: a NUL byte", path, lr.nul_line);
		return -1;
	}
	if (line == 0) {
		for (size_t i = 0; i < NSECTIONS; i++) {
			const struct section *s = &sections[i];

			if (s->finish != NULL &&
			    s->finish(cfg, ps.err, sizeof(ps.err)) < 0) {
				snprintf(err, errlen, "%s: %s", path, ps.err);
				return -1;
			}
		}
		return 0;
	}
	if (line == -2) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (ps.failed)
		snprintf(err, errlen, "%s:%d: %s", path, line, ps.err);
	else
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] "
		    "or key = value)", path, line);
	return -1;
}

void
config_fini(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].type == CONFIG_STRING && !route_row(&keys[i]))
			free(*(char **)field_of(cfg, &keys[i]));
	for (size_t i = 0; i < cfg->n_routes; i++) {
		free(cfg->routes[i].subject);
		free(cfg->routes[i].command);
	}
	free(cfg->routes);
	for (size_t i = 0; i < cfg->n_plugin_kvs; i++) {
		free(cfg->plugin_kvs[i].plugin);
		free(cfg->plugin_kvs[i].key);
		free(cfg->plugin_kvs[i].value);
	}
	free(cfg->plugin_kvs);
	memset(cfg, 0, sizeof(*cfg));
}
