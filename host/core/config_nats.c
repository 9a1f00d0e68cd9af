/*
 * config_nats.c - the [nats] and [jetstream] sections of cmdhost.ini.
 *
 * Only parsing and checks; nothing here links or loads NATS.
 */
#include "config_nats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int
config_nats_init(struct nats_config *nc)
{
	memset(nc, 0, sizeof(*nc));
	nc->reconnect_wait_ms = 250;
	nc->max_reconnect = -1;
	nc->delivery_threads = 2;
	nc->send_asap = 1;
	nc->js_max_deliver = 5;
	nc->js_nak_delay_ms = 1000;
	nc->js_fetch_batch = 32;
	nc->js_max_inflight = 64;
	if (config_set_string(&nc->url, "nats://127.0.0.1:4222") < 0 ||
	    config_set_string(&nc->subject_prefix, "cmdhost.cmd.") < 0 ||
	    config_set_string(&nc->queue_group, "cmdhost") < 0 ||
	    config_set_string(&nc->service_name, "cmdhost") < 0 ||
	    config_set_string(&nc->js_stream, "CMDHOST_EVENTS") < 0 ||
	    config_set_string(&nc->js_subjects, "cmdhost.events.>") < 0 ||
	    config_set_string(&nc->js_durable, "cmdhost") < 0 ||
	    config_set_string(&nc->js_dead_letter, "cmdhost.dead.") < 0) {
		config_nats_fini(nc);
		return -ENOMEM;
	}
	return 0;
}

static int
int_val(const char *key, const char *value, long min, long max, int *out,
    char *err, size_t errlen)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (*value == '\0' || *end != '\0' || errno != 0 || v < min ||
	    v > max) {
		snprintf(err, errlen, "%s: '%s' is not an integer in %ld..%ld",
		    key, value, min, max);
		return -1;
	}
	*out = (int)v;
	return 0;
}

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

static int
str_key(char **field, const char *key, const char *value, char *err,
    size_t errlen)
{
	if (config_set_string(field, value) < 0) {
		snprintf(err, errlen, "%s: out of memory", key);
		return -1;
	}
	return 0;
}

static int
set_nats(struct nats_config *nc, const char *key, const char *value,
    char *err, size_t errlen)
{
	if (strcmp(key, "url") == 0) {
		if (*value == '\0') {
			snprintf(err, errlen, "url: must not be empty");
			return -1;
		}
		return str_key(&nc->url, key, value, err, errlen);
	}
	if (strcmp(key, "subject_prefix") == 0) {
		if (check_token(key, value, 0, err, errlen) < 0)
			return -1;
		return str_key(&nc->subject_prefix, key, value, err, errlen);
	}
	if (strcmp(key, "queue_group") == 0 || strcmp(key, "service_name") == 0) {
		if (check_token(key, value, 1, err, errlen) < 0)
			return -1;
		return str_key(key[0] == 'q' ? &nc->queue_group :
		    &nc->service_name, key, value, err, errlen);
	}
	if (strcmp(key, "credentials") == 0)
		return str_key(&nc->credentials, key, value, err, errlen);
	if (strcmp(key, "user") == 0)
		return str_key(&nc->user, key, value, err, errlen);
	if (strcmp(key, "password") == 0)
		return str_key(&nc->password, key, value, err, errlen);
	if (strcmp(key, "token") == 0)
		return str_key(&nc->token, key, value, err, errlen);
	if (strcmp(key, "tls_ca") == 0)
		return str_key(&nc->tls_ca, key, value, err, errlen);
	if (strcmp(key, "module") == 0)
		return str_key(&nc->module, key, value, err, errlen);
	if (strcmp(key, "reconnect_wait_ms") == 0)
		return int_val(key, value, 10, 600000, &nc->reconnect_wait_ms,
		    err, errlen);
	if (strcmp(key, "max_reconnect") == 0)
		return int_val(key, value, -1, 1000000, &nc->max_reconnect,
		    err, errlen);
	if (strcmp(key, "send_asap") == 0) {
		if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0) {
			nc->send_asap = value[0] == 't';
			return 0;
		}
		snprintf(err, errlen, "send_asap: '%s' is not true or false",
		    value);
		return -1;
	}
	if (strcmp(key, "delivery_threads") == 0)
		return int_val(key, value, 1, 64, &nc->delivery_threads, err,
		    errlen);
	snprintf(err, errlen, "unknown key '%s' in [nats]", key);
	return -1;
}

static int
set_js(struct nats_config *nc, const char *key, const char *value,
    char *err, size_t errlen)
{
	if (strcmp(key, "stream") == 0 || strcmp(key, "durable") == 0) {
		if (check_token(key, value, 1, err, errlen) < 0)
			return -1;
		return str_key(key[0] == 's' ? &nc->js_stream :
		    &nc->js_durable, key, value, err, errlen);
	}
	if (strcmp(key, "subjects") == 0) {
		if (*value == '\0') {
			snprintf(err, errlen, "subjects: must not be empty");
			return -1;
		}
		return str_key(&nc->js_subjects, key, value, err, errlen);
	}
	if (strcmp(key, "dead_letter_prefix") == 0) {
		if (check_token(key, value, 0, err, errlen) < 0)
			return -1;
		return str_key(&nc->js_dead_letter, key, value, err, errlen);
	}
	if (strcmp(key, "ack_wait_ms") == 0)
		return int_val(key, value, 1000, 86400000, &nc->js_ack_wait_ms,
		    err, errlen);
	if (strcmp(key, "max_deliver") == 0)
		return int_val(key, value, 1, 1000, &nc->js_max_deliver, err,
		    errlen);
	if (strcmp(key, "nak_delay_ms") == 0)
		return int_val(key, value, 0, 3600000, &nc->js_nak_delay_ms,
		    err, errlen);
	if (strcmp(key, "fetch_batch") == 0)
		return int_val(key, value, 1, 1024, &nc->js_fetch_batch, err,
		    errlen);
	if (strcmp(key, "max_inflight") == 0)
		return int_val(key, value, 1, 65536, &nc->js_max_inflight, err,
		    errlen);
	snprintf(err, errlen, "unknown key '%s' in [jetstream]", key);
	return -1;
}

int
config_nats_set(struct nats_config *nc, const char *section, const char *key,
    const char *value, char *err, size_t errlen)
{
	if (strcmp(section, "nats") == 0) {
		nc->enabled = 1;
		return key == NULL ? 0 : set_nats(nc, key, value, err, errlen);
	}
	nc->js_enabled = 1;
	return key == NULL ? 0 : set_js(nc, key, value, err, errlen);
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
	return 0;
}

void
config_nats_fini(struct nats_config *nc)
{
	if (nc == NULL)
		return;
	free(nc->url);
	free(nc->subject_prefix);
	free(nc->queue_group);
	free(nc->service_name);
	free(nc->credentials);
	free(nc->user);
	free(nc->password);
	free(nc->token);
	free(nc->tls_ca);
	free(nc->module);
	free(nc->js_stream);
	free(nc->js_subjects);
	free(nc->js_durable);
	free(nc->js_dead_letter);
	memset(nc, 0, sizeof(*nc));
}
