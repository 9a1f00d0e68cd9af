/*
 * deliver.h - where the outbox's events go: to the local command of the
 * subject's [route:SUBJECT] (through dispatch, as a client's call, with
 * the event id as its idempotency key), else to NATS when [nats] is set
 * (JetStream when a stream takes the subject, Nats-Msg-Id = the event
 * id), else straight to the dead letters.  Also the relay that drains the
 * outboxes plugins keep themselves (cmdhost_set_relay) into the daemon's.
 *
 * It decides retries and dead letters; the outbox (outbox.h) keeps them.
 */
#ifndef CMDHOST_DELIVER_H
#define CMDHOST_DELIVER_H

#include <stddef.h>

struct config;
struct deliverer;
struct dispatch;
struct nats_host;
struct registry;

/*
 * Start delivering the events of dispatch's outbox, and relaying the
 * plugins' outboxes.  All pointers are borrowed and must outlive the
 * deliverer (nats may be NULL: no [nats]).  Returns new (deliver_stop,
 * then deliver_free), or NULL with the reason in err.
 */
struct deliverer *deliver_start(const struct config *cfg,
    struct registry *reg, struct dispatch *disp, struct nats_host *nats,
    char *err, size_t errlen);

/* Start no more deliveries or relays (those in flight through dispatch
 * end with it).  Before nats_host_stop().  NULL is ok. */
void deliver_stop(struct deliverer *dv);

/* Free, after dispatch_stop() returned 0.  NULL is ok. */
void deliver_free(struct deliverer *dv);

#endif /* CMDHOST_DELIVER_H */
