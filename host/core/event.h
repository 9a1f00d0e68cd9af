/*
 * event.h - an event a call emitted (ABI 1.2): a subject and a JSON body,
 * kept on the invocation until the daemon decides whether it goes out.
 *
 * Only the shape and the subject rule live here; the daemon's outbox
 * (daemon/outbox.h) stores, delivers and counts them.
 */
#ifndef CMDHOST_EVENT_H
#define CMDHOST_EVENT_H

#include <stddef.h>

/* One emitted event; both strings owned (free with event_fini). */
struct event {
	char *subject;   /* NUL-terminated, event_subject_valid() */
	char *body;      /* compact JSON text, NUL-terminated */
	size_t len;      /* of body */
};

/* True when s (NULL is false) is a subject: at most CMDHOST_SUBJECT_MAX
 * bytes of dot-separated, non-empty tokens of [A-Za-z0-9_:-]. */
int event_subject_valid(const char *s);

/* Free what ev owns; ev itself is the caller's.  NULL is ok. */
void event_fini(struct event *ev);

#endif /* CMDHOST_EVENT_H */
