/*
 * config_nats.h - the [nats] and [jetstream] sections of cmdhost.ini.
 *
 * config.c's key table fills struct nats_config (defined in nats_api.h,
 * the versioned seam the NATS module cmdhost-nats.so reads it through) and
 * points its rows at the NATS rules below.  Without a [nats] section,
 * `enabled` stays 0 and the daemon never loads NATS.
 */
#ifndef CMDHOST_CONFIG_NATS_H
#define CMDHOST_CONFIG_NATS_H

#include <stddef.h>

/* struct nats_config: the module reads it, so the seam defines it. */
#include "nats_api.h"

/* The text of `key` as a NATS name (queue group, service, stream or
 * durable name): not empty, no blanks, no '*', '>' or '.'.  key and value
 * are borrowed.  Returns 0 or -1 with "KEY: reason" in err. */
int config_nats_name(const char *key, const char *value, char *err,
    size_t errlen);

/* The text of `key` as a subject prefix: not empty, no blanks (wildcards
 * and dots are fine).  Borrowed arguments; 0 or -1 with "KEY: reason". */
int config_nats_subject(const char *key, const char *value, char *err,
    size_t errlen);

/* The text of `key` as a JetStream key-value bucket name: empty (off),
 * or only letters, digits, '_' and '-'.  Borrowed arguments; 0 or -1
 * with "KEY: reason". */
int config_nats_bucket(const char *key, const char *value, char *err,
    size_t errlen);

/* Checks across keys, after the whole file is read (default_timeout_ms is
 * the [host] one); sets js_ack_wait_ms when it was left at 0.  Returns 0
 * or -1 with the reason in err. */
int config_nats_check(struct nats_config *nc, int default_timeout_ms,
    char *err, size_t errlen);

#endif /* CMDHOST_CONFIG_NATS_H */
