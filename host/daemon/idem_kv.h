/*
 * idem_kv.h - idempotency records in the JetStream key-value bucket that
 * every daemon of a queue group shares ([jetstream] idempotency_bucket),
 * behind the same two operations as the local store (struct
 * idem_backend in idem.h), for the keyed calls that arrive over NATS.
 *
 * The bucket is reached through the NATS module's kv_* entries (core/
 * nats_api.h): a record is created if absent, and every later change is
 * a compare-and-set on its revision.  When the bucket cannot be reached,
 * begin answers IDEM_UNAVAILABLE (the call is refused with 503, never run
 * unguarded).  This file never includes a NATS header.
 */
#ifndef CMDHOST_IDEM_KV_H
#define CMDHOST_IDEM_KV_H

#include <stdint.h>

#include "idem.h"

struct idem_kv;
struct nats_module;

/*
 * Returns a new store (idem_kv_free) that reaches bucket `bucket` through
 * module table mod (both borrowed, must outlive it) once a bridge is
 * attached; done records are kept ttl_ms.  NULL: out of memory.
 */
struct idem_kv *idem_kv_new(const struct nats_module *mod,
    const char *bucket, int64_t ttl_ms);

/* The backend of kv (borrowed from it). */
const struct idem_backend *idem_kv_backend(struct idem_kv *kv);

/* From now on, reach the bucket through `bridge` (the module's, from its
 * start; borrowed until idem_kv_detach()). */
void idem_kv_attach(struct idem_kv *kv, void *bridge);

/*
 * The module is stopping or stopped: wait for the operations running
 * now, then never use the bridge again (begin answers IDEM_UNAVAILABLE,
 * finish leaves the record to expire at its call's deadline).
 */
void idem_kv_detach(struct idem_kv *kv);

/* Records begun and not yet finished (their calls, or late results
 * after a 504, still have to write to the bucket).  Any thread. */
int idem_kv_pending(struct idem_kv *kv);

/* Free, after idem_kv_detach() and once no record is pending (after
 * dispatch stopped).  NULL is ok. */
void idem_kv_free(struct idem_kv *kv);

/*
 * The value of a record, exposed for tests: "cmdhost-idem 1 S FP
 * EXPIRES STATUS\n" then the stored member text (S is R, in progress, or
 * D, done; FP the fingerprint as 32 hex digits; EXPIRES wall-clock ms).
 * idem_kv_encode() returns a new string (free it) and its length in
 * *len, or NULL (ENOMEM); text may be NULL.  idem_kv_decode() reads
 * val[0..len) (NUL-terminated) into the out arguments (*text borrowed
 * from val) and returns 0, or -1 if it is not such a record.
 */
char *idem_kv_encode(int done, const uint64_t fp[2], int64_t expires_ms,
    int status, const char *text, size_t tlen, size_t *len);
int idem_kv_decode(const char *val, size_t len, int *done, uint64_t fp[2],
    int64_t *expires_ms, int *status, const char **text, size_t *tlen);

#endif /* CMDHOST_IDEM_KV_H */
