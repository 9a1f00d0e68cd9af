/*
 * fair.c - what one peer uid may hold: its connections and its bytes
 * (unread input and unsent output), the daemon-wide memory budget and
 * who is shed first past it, and the write and partial-line timeouts.
 *
 * A uid's entry is shared by the loops that serve its connections: the
 * connection count changes under srv->uid_lock, the bytes are one atomic
 * that conn.c adds each connection's change to.  Admin uids are exempt
 * from the per-uid limits, not from the budget or the timeouts.
 */
#include "server_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"

struct uid_use *
fair_uid_get(struct server *srv, uid_t uid, int admin)
{
	unsigned h = (unsigned)uid % UID_HASH;
	struct uid_use *u;

	pthread_mutex_lock(&srv->uid_lock);
	for (u = srv->uid_hash[h]; u != NULL && u->uid != uid; u = u->next)
		;
	if (u == NULL && (u = calloc(1, sizeof(*u))) != NULL) {
		u->uid = uid;
		u->admin = admin;
		atomic_init(&u->bytes, 0);
		u->next = srv->uid_hash[h];
		srv->uid_hash[h] = u;
	}
	if (u != NULL && !admin && u->conns >= srv->cfg->max_connections_per_uid)
		u = NULL;
	else if (u != NULL)
		u->conns++;
	pthread_mutex_unlock(&srv->uid_lock);
	return u;
}

void
fair_uid_put(struct server *srv, struct conn *c)
{
	struct uid_use *u = c->use, **pp;

	if (u == NULL)
		return;
	c->use = NULL;
	pthread_mutex_lock(&srv->uid_lock);
	if (--u->conns == 0) {
		for (pp = &srv->uid_hash[(unsigned)u->uid % UID_HASH]; *pp != u;
		    pp = &(*pp)->next)
			;
		*pp = u->next;
		free(u);
	}
	pthread_mutex_unlock(&srv->uid_lock);
}

/* The uid holding the most bytes now, or NULL.  Borrowed: compare only
 * (the entry may go away once the lock is dropped). */
static const struct uid_use *
uid_heaviest(struct server *srv, long long *bytes)
{
	const struct uid_use *top = NULL;

	*bytes = 0;
	pthread_mutex_lock(&srv->uid_lock);
	for (int h = 0; h < UID_HASH; h++)
		for (struct uid_use *u = srv->uid_hash[h]; u; u = u->next) {
			long long b = atomic_load_explicit(&u->bytes,
			    memory_order_relaxed);

			if (b > *bytes) {
				*bytes = b;
				top = u;
			}
		}
	pthread_mutex_unlock(&srv->uid_lock);
	return top;
}

void
fair_over_budget(struct server *srv)
{
	if (atomic_exchange(&srv->shed_wanted, 1) == 0)
		for (int i = 0; i < srv->n_loops; i++)
			if (srv->loops[i].started)
				server_wake(&srv->loops[i]);
}

/* What it costs is logged: a request of the connection that was read and
 * not yet answered is lost with it. */
void
fair_shed(struct loop *l)
{
	struct server *srv = l->srv;
	long long budget = (long long)srv->cfg->memory_budget_bytes;

	while (atomic_load(&srv->buffered) > budget) {
		const struct uid_use *top;
		struct conn *victim = NULL, *c;
		long long top_bytes;
		int pending = 0;

		top = uid_heaviest(srv, &top_bytes);
		LIST_FOREACH(c, &l->conns, link)
			if (c->use == top && (victim == NULL ||
			    c->charge > victim->charge))
				victim = c;
		if (victim == NULL || victim->charge == 0)
			return; /* another loop holds it */
		for (struct slot *s = STAILQ_FIRST(&victim->slots); s != NULL;
		    s = STAILQ_NEXT(s, link))
			pending += s->waiting;
		log_warnx("memory_budget_bytes (%lld) passed with %lld bytes "
		    "held: shedding the heaviest consumer, uid %ld (%lld "
		    "bytes): closing its connection of pid %ld holding %lld "
		    "bytes, %d request(s) unanswered", budget,
		    (long long)atomic_load(&srv->buffered),
		    (long)victim->uid, top_bytes, (long)victim->pid,
		    victim->charge, pending);
		metrics_add(srv->stats, DM_SHED, 1);
		conn_close(victim);
	}
	atomic_store(&srv->shed_wanted, 0);
}

/* Bytes waiting unread in c's socket (after a stall they are requests,
 * not idleness), or 0. */
static int
unread_bytes(const struct conn *c)
{
	int unread = 0;

	return ioctl(c->fd, FIONREAD, &unread) == 0 ? unread : 0;
}

/* Neither timeout closes a connection with a call of it still pending
 * (its reply is not due yet: it is what the peer waits for). */
int
fair_timeouts(struct loop *l, struct conn *c)
{
	const struct config *cfg = l->srv->cfg;

	if (c->busy)
		return 0;
	if (cfg->write_timeout_ms > 0 && c->wstall_ms != 0 &&
	    l->now_ms - c->wstall_ms >= cfg->write_timeout_ms) {
		conn_flush(c); /* it may have read meanwhile */
		if (c->dead || c->wstall_ms == 0 ||
		    l->now_ms - c->wstall_ms < cfg->write_timeout_ms)
			return conn_maybe_close(c);
		log_warnx("closing a connection (uid %ld, pid %ld) that read "
		    "none of its %zu bytes of replies for write_timeout_ms "
		    "(%d)", (long)c->uid, (long)c->pid, buf_size(&c->wbuf),
		    cfg->write_timeout_ms);
		metrics_add(l->srv->stats, DM_WRITE_TIMEOUTS, 1);
		conn_close(c);
		return 1;
	}
	/* Replies still to send were asked for: they go first (or the write
	 * timeout closes a peer that does not take them). */
	if (cfg->line_timeout_ms > 0 && c->line_ms != 0 &&
	    buf_size(&c->wbuf) == 0 && STAILQ_EMPTY(&c->slots) &&
	    l->now_ms - c->line_ms >= cfg->line_timeout_ms) {
		if (unread_bytes(c) > 0 && !c->paused)
			return 0; /* the rest may be waiting: read it first */
		log_info("closing a connection (uid %ld, pid %ld) whose "
		    "partial request line (%zu bytes) did not end within "
		    "line_timeout_ms (%d)", (long)c->uid, (long)c->pid,
		    buf_size(&c->rbuf), cfg->line_timeout_ms);
		metrics_add(l->srv->stats, DM_LINE_TIMEOUTS, 1);
		conn_close(c);
		return 1;
	}
	return 0;
}

/* conn_flush() sets what epoll watches. */
void
fair_resume(struct loop *l)
{
	for (struct conn *c = LIST_FIRST(&l->conns), *next; c != NULL &&
	    l->n_paused > 0; c = next) {
		next = LIST_NEXT(c, link);
		if (c->paused && !conn_uid_over(c)) {
			conn_flush(c);
			conn_maybe_close(c);
		}
	}
}
