/*
 * config_nats.h - the [nats] and [jetstream] sections of cmdhost.ini.
 *
 * config.c's key table fills the struct and points its rows at the NATS
 * rules below; the NATS module (cmdhost-nats.so) reads it.  Without a
 * [nats] section, `enabled` stays 0 and the daemon never loads NATS.
 */
#ifndef CMDHOST_CONFIG_NATS_H
#define CMDHOST_CONFIG_NATS_H

#include <stddef.h>

struct nats_config {
	int enabled;             /* a [nats] section was seen */
	char *url;               /* owned: one or several, comma-separated */
	char *subject_prefix;    /* owned: "cmdhost.cmd." */
	char *queue_group;       /* owned: "cmdhost" */
	char *service_name;      /* owned: "cmdhost" ($SRV discovery) */
	char *credentials;       /* owned or NULL: a .creds file */
	char *user;              /* owned or NULL */
	char *password;          /* owned or NULL */
	char *token;             /* owned or NULL */
	char *tls_ca;            /* owned or NULL: CA file, turns TLS on */
	char *module;            /* owned or NULL: path of cmdhost-nats.so */
	int reconnect_wait_ms;
	int max_reconnect;       /* -1: forever */
	int delivery_threads;    /* cnats message delivery threads */
	int send_asap;           /* replies leave at once (no 1 ms batch) */

	int js_enabled;          /* a [jetstream] section was seen */
	char *js_stream;         /* owned: "CMDHOST_EVENTS" */
	char *js_subjects;       /* owned: "cmdhost.events.>" (comma list) */
	char *js_durable;        /* owned: "cmdhost" */
	char *js_dead_letter;    /* owned: prefix, "cmdhost.dead." */
	int js_ack_wait_ms;      /* 0: default_timeout_ms + 5000 */
	int js_max_deliver;
	int js_nak_delay_ms;
	int js_fetch_batch;
	int js_max_inflight;     /* events held at once by this daemon */
};

/* The text of `key` as a NATS name (queue group, service, stream or
 * durable name): not empty, no blanks, no '*', '>' or '.'.  key and value
 * are borrowed.  Returns 0 or -1 with "KEY: reason" in err. */
int config_nats_name(const char *key, const char *value, char *err,
    size_t errlen);

/* The text of `key` as a subject prefix: not empty, no blanks (wildcards
 * and dots are fine).  Borrowed arguments; 0 or -1 with "KEY: reason". */
int config_nats_subject(const char *key, const char *value, char *err,
    size_t errlen);

/* Checks across keys, after the whole file is read (default_timeout_ms is
 * the [host] one); sets js_ack_wait_ms when it was left at 0.  Returns 0
 * or -1 with the reason in err. */
int config_nats_check(struct nats_config *nc, int default_timeout_ms,
    char *err, size_t errlen);

#endif /* CMDHOST_CONFIG_NATS_H */
