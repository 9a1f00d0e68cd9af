/*
 * config_nats.c - the NATS rules of the [nats] and [jetstream] keys.
 *
 * Only checks of text and of keys together; the keys themselves are rows
 * of config.c's table, and nothing here links or loads NATS.
 */
#include "config_nats.h"

#include <stdio.h>
#include <string.h>

/* A NATS token (subject part, queue group, stream or durable name): no
 * spaces, no wildcards when `plain`. */
static int
check_token(const char *key, const char *value, int plain, char *err,
    size_t errlen)
{
	if (*value == '\0') {
		snprintf(err, errlen, "%s: must not be empty", key);
		return -1;
	}
	if (strpbrk(value, " \t\r\n") != NULL ||
	    (plain && strpbrk(value, "*>.") != NULL)) {
		snprintf(err, errlen, "%s: '%s' is not a valid NATS name",
		    key, value);
		return -1;
	}
	return 0;
}

int
config_nats_name(const char *key, const char *value, char *err,
    size_t errlen)
{
	return check_token(key, value, 1, err, errlen);
}

int
config_nats_subject(const char *key, const char *value, char *err,
    size_t errlen)
{
	return check_token(key, value, 0, err, errlen);
}

int
config_nats_bucket(const char *key, const char *value, char *err,
    size_t errlen)
{
	size_t n = strspn(value, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");

	if (value[n] != '\0') {
		snprintf(err, errlen, "%s: '%s' is not a bucket name (letters, "
		    "digits, '_' and '-' only)", key, value);
		return -1;
	}
	return 0;
}

int
config_nats_check(struct nats_config *nc, int default_timeout_ms, char *err,
    size_t errlen)
{
	if (nc->js_enabled && !nc->enabled) {
		snprintf(err, errlen, "[jetstream] needs a [nats] section");
		return -1;
	}
	if (!nc->js_enabled)
		return 0;
	if (nc->js_ack_wait_ms == 0)
		nc->js_ack_wait_ms = default_timeout_ms + 5000;
	if (nc->js_ack_wait_ms <= default_timeout_ms) {
		snprintf(err, errlen, "[jetstream] ack_wait_ms (%d) must be "
		    "above [host] default_timeout_ms (%d), or events would be "
		    "redelivered while they still run", nc->js_ack_wait_ms,
		    default_timeout_ms);
		return -1;
	}
	if (nc->js_wf_bucket != NULL && *nc->js_wf_bucket != '\0' &&
	    nc->js_idem_bucket != NULL &&
	    strcmp(nc->js_wf_bucket, nc->js_idem_bucket) == 0) {
		snprintf(err, errlen, "[jetstream] workflow_bucket and "
		    "idempotency_bucket must be two buckets (both are '%s'): "
		    "the idempotency bucket's TTL would expire executions",
		    nc->js_wf_bucket);
		return -1;
	}
	return 0;
}
