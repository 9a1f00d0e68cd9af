/*
 * server.c - the event loops: accept, epoll, the answers other threads
 * post back, idle sweeps, and starting and stopping the loops.
 *
 * Each of `workers` threads runs its own epoll loop over the shared
 * listening socket (EPOLLEXCLUSIVE) and the connections it accepted;
 * what happens on one connection is conn.c's.  The data path reads
 * straight through: read -> frame -> parse -> dispatch -> executor ->
 * dispatch -> reply.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd_table.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/generation.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/request.h"
#include "core/thread.h"
#include "outbox.h"
#include "registry.h"
#include "server_priv.h"

static void loops_json(void *arg, struct json_object *arr);

struct server *
server_new(const struct config *cfg, struct registry *reg,
    struct dispatch *disp, struct daemon_stats *stats, struct listener *lst,
    char *err, size_t errlen)
{
	struct server *srv = calloc(1, sizeof(*srv));
	long ncpu;

	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		listener_close(lst);
		return NULL;
	}
	/* Ours from now on, whatever happens below. */
	srv->lst = *lst;
	lst->fd = -1;
	srv->cfg = cfg;
	srv->reg = reg;
	srv->disp = disp;
	srv->stats = stats;
	srv->listen_fd = srv->lst.fd;
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pthread_mutex_init(&srv->spare_lock, NULL);
	srv->admin.cfg = cfg;
	srv->admin.reg = reg;
	srv->admin.stats = stats;
	srv->admin.disp = disp;
	srv->admin.loops_fn = loops_json;
	srv->admin.loops_arg = srv;
	srv->admin.self_uid = geteuid();
	pthread_mutex_init(&srv->exit_lock, NULL);
	pthread_mutex_init(&srv->uid_lock, NULL);
	stuck_init(srv);
	thread_cond_init(&srv->exit_cond);
	snprintf(srv->max_conn_msg, sizeof(srv->max_conn_msg), "too many "
	    "connections (max_connections=%d)", cfg->max_connections);
	/* The reserve is at most half of all places: a small max_connections
	 * still leaves room for everyone. */
	srv->reserve = cfg->admin_connections < cfg->max_connections / 2 ?
	    cfg->admin_connections : cfg->max_connections / 2;
	snprintf(srv->reserve_msg, sizeof(srv->reserve_msg), "too many "
	    "connections (max_connections=%d, of which %d are kept for "
	    "admins)", cfg->max_connections, srv->reserve);
	srv->n_loops = cfg->workers;
	if (srv->n_loops == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		srv->n_loops = ncpu > 0 ? (int)ncpu : 1;
	}
	/* Each loop on cache lines of its own (struct loop is aligned): one
	 * loop's per-request writes never touch a line the next one uses. */
	srv->loops = aligned_alloc(_Alignof(struct loop),
	    (size_t)srv->n_loops * sizeof(*srv->loops));
	if (srv->loops != NULL)
		memset(srv->loops, 0, (size_t)srv->n_loops *
		    sizeof(*srv->loops));
	if (srv->loops == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < srv->n_loops; i++) {
		struct loop *l = &srv->loops[i];

		l->owner.post = conn_post;
		l->owner.finished_msg = "call finished";
		l->srv = srv;
		l->index = i;
		l->epfd = l->evfd = -1;
		l->now_ms = clock_mono_ms();
		pthread_mutex_init(&l->cq_lock, NULL);
		STAILQ_INIT(&l->cq);
		STAILQ_INIT(&l->jobs);
		STAILQ_INIT(&l->taking);
		STAILQ_INIT(&l->jobs_taking);
		LIST_INIT(&l->conns);
		LIST_INIT(&l->graveyard);
		LIST_INIT(&l->inbox);
		atomic_init(&l->n_open, 0);
		atomic_init(&l->inbox_closed, 0);
		LIST_INIT(&l->pending);
		if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
		    (l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
			snprintf(err, errlen, "epoll/eventfd: %s",
			    strerror(errno));
			goto fail;
		}
		if ((l->tok = request_tokener_new()) == NULL ||
		    (l->reader = registry_reader(reg)) < 0) {
			snprintf(err, errlen, "cannot set up loop %d", i);
			goto fail;
		}
	}
	return srv;
fail:
	server_free(srv);
	return NULL;
}

const struct admin *
server_admin(const struct server *srv)
{
	return &srv->admin;
}

void
server_wake(struct loop *l)
{
	uint64_t one = 1;

	if (write(l->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("eventfd write");
}

static void
bury(struct loop *l)
{
	struct conn *c;

	while ((c = LIST_FIRST(&l->graveyard)) != NULL) {
		LIST_REMOVE(c, link);
		free(c);
	}
}

/* Send one 503 line with `why` to a connection we will not serve, and
 * close it. */
static void
refuse(struct server *srv, int fd, const char *why)
{
	char line[256];
	int n;

	n = snprintf(line, sizeof(line), "{\"id\":null,\"status\":503,"
	    "\"error\":{\"code\":\"unavailable\",\"message\":\"%s\"}}\n",
	    why);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("could not tell a refused peer why");
	close(fd);
	metrics_add(srv->stats, DM_CONNS_REFUSED, 1);
	metrics_add(srv->stats, DM_UNAVAILABLE, 1);
}

/*
 * accept() failed for want of descriptors: the pending connection would
 * keep the listening socket readable and the loop spinning.  Give up the
 * spare descriptor, take the connection, tell it 503 and close it, and
 * take the spare back.  Warn at most once a second.
 */
static void
out_of_fds(struct loop *l)
{
	struct server *srv = l->srv;
	int64_t now = l->now_ms;
	int fd;

	if (now - l->emfile_logged_ms >= 1000) {
		log_warn("accept: refusing new connections");
		l->emfile_logged_ms = now;
	}
	pthread_mutex_lock(&srv->spare_lock);
	if (srv->spare_fd >= 0) {
		close(srv->spare_fd);
		fd = accept4(srv->listen_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			refuse(srv, fd, "the daemon is out of file descriptors");
		srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	pthread_mutex_unlock(&srv->spare_lock);
}


/* Give up c (owned), accepted for loop `to` but never served: the
 * places it took (the daemon's, its uid's, its count on `to`) go back,
 * the peer is told why, and c is freed. */
static void
conn_unaccept(struct loop *to, struct conn *c, const char *why)
{
	atomic_fetch_sub(&to->srv->n_conns, 1);
	atomic_fetch_sub(&to->n_open, 1);
	fair_uid_put(to->srv, c);
	refuse(to->srv, c->fd, why);
	free(c);
}

/* Start serving c (owned; accepted by any loop for l) on l, the loop
 * that owns it from now on; or give it up if epoll refuses. */
static void
conn_attach(struct loop *l, struct conn *c)
{
	struct server *srv = l->srv;
	struct epoll_event ev;

	c->loop = l;
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		conn_unaccept(l, c, "the daemon could not watch the "
		    "connection");
		return;
	}
	c->events = EPOLLIN;
	/* Not l->now_ms: attached at the top of a turn, that is the last
	 * wake's (0 before the first), and the idle sweep would close it. */
	c->active_ms = clock_mono_ms();
	frame_init(&c->framer, srv->cfg->max_request_bytes);
	STAILQ_INIT(&c->slots);
	LIST_INSERT_HEAD(&l->conns, c, link);
	metrics_add(srv->stats, DM_CONNS_OPEN, 1);
	metrics_add(srv->stats, DM_CONNS_TOTAL, 1);
}

/* A loop whose turn has run this long is in a slow inline call: it is
 * not given new connections, which would wait for it. */
#define BUSY_TURN_MS 10

/* The loop that serves the fewest connections (l itself on a tie) among
 * those that are there to serve them: not one that has left, nor one
 * busy in a long turn.  Whichever loop wakes to accept, new connections
 * spread over all. */
static struct loop *
least_loaded(struct loop *l)
{
	struct server *srv = l->srv;
	struct loop *best = l;
	int n = atomic_load_explicit(&l->n_open, memory_order_relaxed);

	for (int i = 0; i < srv->n_loops; i++) {
		struct loop *o = &srv->loops[i];
		int m = atomic_load_explicit(&o->n_open, memory_order_relaxed);
		int64_t beat;

		if (m >= n || o == l ||
		    atomic_load_explicit(&o->inbox_closed, memory_order_relaxed))
			continue;
		beat = atomic_load_explicit(&o->beat_ms, memory_order_relaxed);
		if (beat != 0 && l->now_ms - beat > BUSY_TURN_MS)
			continue;
		best = o;
		n = m;
	}
	return best;
}

/* Hand c (owned) to the loop `to`; it attaches it at its next turn.
 * c is theirs, or given up here if that loop has left. */
static void
loop_post_conn(struct loop *to, struct conn *c)
{
	pthread_mutex_lock(&to->cq_lock);
	if (atomic_load_explicit(&to->inbox_closed, memory_order_relaxed)) {
		pthread_mutex_unlock(&to->cq_lock);
		conn_unaccept(to, c, "the daemon is shutting down");
		return;
	}
	LIST_INSERT_HEAD(&to->inbox, c, link);
	pthread_mutex_unlock(&to->cq_lock);
	server_wake(to);
}

/* Attach what other loops accepted for l; refuse it when stopping (as
 * stop_listening refuses what waits in the backlog).  With `close_it`
 * the inbox closes for good: the loop is leaving. */
static void
take_inbox(struct loop *l, int close_it)
{
	LIST_HEAD(, conn) got = LIST_HEAD_INITIALIZER(got);
	struct conn *c;

	pthread_mutex_lock(&l->cq_lock);
	if (LIST_EMPTY(&l->inbox) && !close_it) {
		pthread_mutex_unlock(&l->cq_lock);
		return;
	}
	while ((c = LIST_FIRST(&l->inbox)) != NULL) {
		LIST_REMOVE(c, link);
		LIST_INSERT_HEAD(&got, c, link);
	}
	if (close_it)
		atomic_store_explicit(&l->inbox_closed, 1,
		    memory_order_relaxed);
	pthread_mutex_unlock(&l->cq_lock);
	while ((c = LIST_FIRST(&got)) != NULL) {
		LIST_REMOVE(c, link);
		if (close_it || atomic_load(&l->srv->stopping))
			conn_unaccept(l, c, "the daemon is shutting down");
		else
			conn_attach(l, c);
	}
}

static void
accept_some(struct loop *l)
{
	struct server *srv = l->srv;

	for (int i = 0; i < 64; i++) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		struct uid_use *use;
		struct conn *c;
		struct loop *to;
		char msg[128];
		int fd, admin, limit;

		fd = accept4(srv->listen_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				out_of_fds(l);
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			cred.pid = 0;
			cred.uid = (uid_t)-1;
			cred.gid = (gid_t)-1;
		}
		/* The last admin_connections places are an operator's. */
		admin = admin_allowed(&srv->admin, cred.uid);
		limit = srv->cfg->max_connections;
		if (!admin)
			limit -= srv->reserve;
		if (atomic_fetch_add(&srv->n_conns, 1) >= limit) {
			atomic_fetch_sub(&srv->n_conns, 1);
			refuse(srv, fd, admin ? srv->max_conn_msg :
			    srv->reserve_msg);
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			atomic_fetch_sub(&srv->n_conns, 1);
			refuse(srv, fd, "out of memory");
			continue;
		}
		if ((use = fair_uid_get(srv, cred.uid, admin)) == NULL) {
			atomic_fetch_sub(&srv->n_conns, 1);
			free(c);
			snprintf(msg, sizeof(msg), "too many connections of uid "
			    "%ld (max_connections_per_uid=%d)", (long)cred.uid,
			    srv->cfg->max_connections_per_uid);
			metrics_add(srv->stats, DM_REFUSED_UID, 1);
			refuse(srv, fd, msg);
			continue;
		}
		c->fd = fd;
		c->pid = cred.pid;
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->use = use;
		if (cred.uid != (uid_t)-1)
			snprintf(c->scope, sizeof(c->scope), "uid:%lu",
			    (unsigned long)cred.uid);
		to = least_loaded(l);
		atomic_fetch_add(&to->n_open, 1);
		if (to == l)
			conn_attach(l, c);
		else
			loop_post_conn(to, c);
	}
}

/* admin's loops_fn: each loop's connections, served or handed to it,
 * and how long its current turn has run (0 while it waits). */
static void
loops_json(void *arg, struct json_object *arr)
{
	struct server *srv = arg;
	int64_t now = clock_mono_ms();

	for (int i = 0; i < srv->n_loops; i++) {
		struct json_object *o = json_object_new_object();
		int64_t beat = atomic_load_explicit(&srv->loops[i].beat_ms,
		    memory_order_relaxed);

		json_object_object_add(o, "loop", json_object_new_int(i));
		json_object_object_add(o, "connections", json_object_new_int(
		    atomic_load(&srv->loops[i].n_open)));
		json_object_object_add(o, "turn_ms", json_object_new_int64(
		    beat != 0 && now > beat ? now - beat : 0));
		json_object_array_add(arr, o);
	}
}

/* ------------------------------------------------------------ the loop */

#define TOUCHED_MAX 256

/* After replies were put in place: read the lines that waited, write. */
static void
conn_after_replies(struct conn *c)
{
	conn_process(c);
	conn_flush(c);
	conn_maybe_close(c);
}

/* Take the calls answered elsewhere and put their replies in place;
 * then each connection that got some reads and writes once, so that a
 * batch of answers (a group commit's) costs one send per connection,
 * not one per answer.  A closed connection stays allocated until the
 * next turn's bury(), so the pointers kept here stay valid. */
static void
take_completions(struct loop *l)
{
	struct conn *touched[TOUCHED_MAX];
	size_t n = 0;
	struct call *call;

	pthread_mutex_lock(&l->cq_lock);
	STAILQ_CONCAT(&l->taking, &l->cq);
	pthread_mutex_unlock(&l->cq_lock);
	while ((call = STAILQ_FIRST(&l->taking)) != NULL) {
		struct slot *s = call->owner_slot;
		struct conn *c = s != NULL ? s->conn : NULL;

		STAILQ_REMOVE_HEAD(&l->taking, owner_link);
		if (s == NULL)
			l->n_pool--; /* its connection closed meanwhile */
		dispatch_complete(call);
		if (c == NULL || c->touched)
			continue;
		if (n == TOUCHED_MAX) {
			conn_after_replies(c);
			continue;
		}
		c->touched = 1;
		touched[n++] = c;
	}
	for (size_t i = 0; i < n; i++) {
		touched[i]->touched = 0;
		conn_after_replies(touched[i]);
	}
}

/* At a forced stop: answer every call of this loop still pending 503. */
static void
force_pending(struct loop *l)
{
	struct slot *s, *next;

	for (s = LIST_FIRST(&l->pending); s != NULL; s = next) {
		next = LIST_NEXT(s, plink);
		dispatch_force(s->call); /* may unlink s */
	}
}


/* The shortest of the positive timeouts a, b, c, or -1. */
static int
shortest(int a, int b, int c)
{
	int m = -1;

	if (a > 0)
		m = a;
	if (b > 0 && (m < 0 || b < m))
		m = b;
	if (c > 0 && (m < 0 || c < m))
		m = c;
	return m;
}

/*
 * Close connections that have had nothing to do for idle_timeout_ms: no
 * call running, no reply waiting to be sent, and no complete request line
 * for that long (a half line that never ends counts as idle); those whose
 * replies are not read for write_timeout_ms; and those whose partial line
 * outlives line_timeout_ms.  Returns the ms until the next sweep, or -1
 * when nothing ever closes.
 */
static int
sweep_idle(struct loop *l)
{
	const struct config *cfg = l->srv->cfg;
	int limit = cfg->idle_timeout_ms;
	int every = shortest(limit, cfg->write_timeout_ms,
	    cfg->line_timeout_ms);

	if (every <= 0)
		return -1;
	if (l->now_ms < l->idle_check_ms)
		return (int)(l->idle_check_ms - l->now_ms);
	for (struct conn *c = LIST_FIRST(&l->conns), *next; c != NULL;
	    c = next) {
		next = LIST_NEXT(c, link);
		if (fair_timeouts(l, c))
			continue;
		if (limit > 0 && STAILQ_EMPTY(&c->slots) &&
		    buf_size(&c->wbuf) == 0 &&
		    l->now_ms - c->active_ms >= limit) {
			int unread = 0;

			/* After a stall (a slow inline call, SIGSTOP) this
			 * sweep runs before the loop reads: what waits in the
			 * socket is a request, not idleness. */
			if (ioctl(c->fd, FIONREAD, &unread) == 0 && unread > 0) {
				c->active_ms = l->now_ms;
				continue;
			}
			log_debug("closing a connection idle for %d ms", limit);
			conn_close(c);
		}
	}
	/* Sweep a few times per timeout: a connection lives at most about
	 * 1.25 times idle_timeout_ms without a request. */
	l->idle_check_ms = l->now_ms + (every >= 4 ? every / 4 : 1);
	return (int)(l->idle_check_ms - l->now_ms);
}


static void
stop_listening(struct loop *l)
{
	int fd;

	if (!l->listening)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->srv->listen_fd, NULL);
	l->listening = 0;
	while ((fd = accept4(l->srv->listen_fd, NULL, NULL,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		refuse(l->srv, fd, "the daemon is shutting down");
}

void *
server_loop_main(void *arg)
{
	struct loop_thread *t = arg;
	struct loop *l = t->loop;
	struct server *srv = l->srv;
	struct epoll_event events[MAX_EVENTS];
	char name[16];

	snprintf(name, sizeof(name), "cmdhostd-loop%d", l->index);
	pthread_setname_np(pthread_self(), name);
	thread_use_c_locale();
	log_thread_buffer(1);
	outbox_defer(1);
	dispatch_thread_cache(1);
	dispatch_thread_watch(&t->watch);
	if (t->adopt != NULL) {
		/* This loop's last thread is stuck in that call. */
		conn_adopt(l, t->adopt);
		t->adopt = NULL;
	}
	for (;;) {
		int stopping = atomic_load(&srv->stopping);
		int timeout, n;

		/* Answers that came back are taken before a forced stop
		 * gives up on the rest. */
		take_completions(l);
		conn_take_jobs(l);
		take_inbox(l, 0);
		if (stopping == 2)
			force_pending(l);
		l->now_ms = clock_mono_ms();
		if (atomic_load_explicit(&srv->shed_wanted,
		    memory_order_relaxed))
			fair_shed(l);
		timeout = sweep_idle(l);
		if (l->n_paused > 0) {
			fair_resume(l);
			if (l->n_paused > 0 && (timeout < 0 || timeout > 20))
				timeout = 20;
		}
		bury(l);

		if (stopping) {
			stop_listening(l);
			for (struct conn *c = LIST_FIRST(&l->conns), *next;
			    c != NULL; c = next) {
				next = LIST_NEXT(c, link);
				if (stopping == 2) {
					conn_flush(c);
					conn_close(c);
				} else if (!l->stop_seen) {
					/* Lines already sent get their 503. */
					conn_readable(c);
				} else {
					conn_maybe_close(c);
				}
			}
			l->stop_seen = 1;
			bury(l);
			/* A rescan posts back here: wait for it even when
			 * forced. */
			if (LIST_EMPTY(&l->conns) && l->n_jobs == 0 &&
			    (l->n_pool == 0 || stopping == 2))
				break;
		}
		/* This turn's log lines, in one write; if another thread
		 * is writing, they go with the next turn, in 1 ms at most. */
		if (log_flush_some() && (timeout < 0 || timeout > 1))
			timeout = 1;
		/* The events of this turn's calls, in one commit; their
		 * replies come back after it. */
		outbox_defer_flush();
		/* Unpublished generations are not kept past a turn. */
		cmd_index_forget();
		generation_cache_flush();
		atomic_store_explicit(&l->beat_ms, 0, memory_order_relaxed);
		n = epoll_wait(l->epfd, events, MAX_EVENTS, timeout);
		if (n < 0 && errno != EINTR) {
			log_error("epoll_wait");
			break;
		}
		l->now_ms = clock_mono_ms();
		/* Never 0 (the clock starts near boot, not at 0 ms). */
		atomic_store_explicit(&l->beat_ms, l->now_ms | 1,
		    memory_order_relaxed);
		l->wall_ms = clock_wall_ms();
		for (int i = 0; i < n; i++) {
			void *p = events[i].data.ptr;

			if (p == l) {
				uint64_t junk;

				if (read(l->evfd, &junk, sizeof(junk)) < 0 &&
				    errno != EAGAIN)
					log_warn("eventfd read");
				take_completions(l);
				conn_take_jobs(l);
				take_inbox(l, 0);
			} else if (p == srv) {
				accept_some(l);
			} else {
				struct conn *c = p;

				if (c->closed)
					continue;
				/* A peer that hung up while we are not reading
				 * (a call on the pool, or after EOF) is gone:
				 * its replies cannot be delivered. */
				if ((events[i].events & (EPOLLHUP | EPOLLERR)) &&
				    (c->busy || c->eof)) {
					conn_close(c);
					continue;
				}
				if (events[i].events & (EPOLLIN | EPOLLHUP |
				    EPOLLERR))
					conn_readable(c);
				else if (events[i].events & EPOLLOUT) {
					conn_flush(c);
					conn_maybe_close(c);
				}
			}
		}
	}
	take_inbox(l, 1);
	dispatch_thread_watch(NULL);
	dispatch_thread_cache(0);
	outbox_defer(0);
	log_thread_buffer(0);
	pthread_mutex_lock(&srv->exit_lock);
	srv->loops_exited++;
	pthread_cond_broadcast(&srv->exit_cond);
	pthread_mutex_unlock(&srv->exit_lock);
	return NULL;
}


int
server_start(struct server *srv)
{
	char why[256];
	int err;

	if (listener_listen(&srv->lst, why, sizeof(why)) < 0) {
		log_errorx("%s", why);
		return -EADDRNOTAVAIL;
	}
	for (int i = 0; i < srv->n_loops; i++) {
		struct loop *l = &srv->loops[i];
		struct epoll_event ev;

		ev.events = EPOLLIN;
		ev.data.ptr = l;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) < 0)
			return -errno;
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.ptr = srv;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev) < 0)
			return -errno;
		l->listening = 1;
		if ((l->cur = stuck_thread_new(l, NULL)) == NULL)
			return -ENOMEM;
		if ((err = pthread_create(&l->thread, NULL, server_loop_main,
		    l->cur)) != 0)
			return -err;
		l->started = 1;
	}
	return stuck_start(srv);
}

static void
wake_all(struct server *srv)
{
	for (int i = 0; i < srv->n_loops; i++)
		if (srv->loops[i].started)
			server_wake(&srv->loops[i]);
}

int
server_stop(struct server *srv, int64_t deadline_ns)
{
	int started = 0, exited, stuck = 0;

	stuck_stop(srv);
	for (int i = 0; i < srv->n_loops; i++)
		started += srv->loops[i].started;
	atomic_store(&srv->stopping, 1);
	wake_all(srv);
	pthread_mutex_lock(&srv->exit_lock);
	while (srv->loops_exited < started) {
		struct timespec ts = clock_mono_ts(deadline_ns);

		if (pthread_cond_timedwait(&srv->exit_cond, &srv->exit_lock,
		    &ts) == ETIMEDOUT)
			break;
	}
	exited = srv->loops_exited;
	pthread_mutex_unlock(&srv->exit_lock);
	if (exited < started) {
		log_warnx("shutdown_timeout_ms passed with calls in flight; "
		    "answering them 503");
		atomic_store(&srv->stopping, 2);
		wake_all(srv);
	}
	/* A loop stuck inside an inline call cannot be waited for forever:
	 * 700 ms more, then give up on it -- inside the second the stop
	 * promises, and before main.c's watchdog (at 950 ms) ends it all,
	 * so that what is stuck is named in the log first. */
	deadline_ns += 700000000LL;
	for (int i = 0; i < srv->n_loops; i++) {
		struct timespec ts;

		if (!srv->loops[i].started)
			continue;
		ts = clock_wall_ts(deadline_ns);
		if (pthread_timedjoin_np(srv->loops[i].thread, NULL, &ts) != 0) {
			stuck = 1;
			continue;
		}
		srv->loops[i].started = 0;
	}
	/* A thread left in a stuck call still holds a call and its plugin:
	 * wait for it as for a loop, then give up on it. */
	if (stuck_wait(srv, deadline_ns) > 0)
		stuck = 1;
	return stuck ? -1 : 0;
}

void
server_set_workflows(struct server *srv, struct wf_engine *wf)
{
	srv->admin.wf = wf;
}

void
server_close(struct server *srv)
{
	if (srv == NULL || srv->listen_fd < 0)
		return;
	listener_close(&srv->lst);
	srv->listen_fd = -1;
}

void
server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	server_close(srv);
	for (int i = 0; srv->loops != NULL && i < srv->n_loops; i++) {
		struct loop *l = &srv->loops[i];
		struct reload_job *job;
		struct call *call;
		struct conn *c;

		while (!LIST_EMPTY(&l->conns))
			conn_close(LIST_FIRST(&l->conns));
		bury(l);
		/* Handed to a loop that never ran. */
		while ((c = LIST_FIRST(&l->inbox)) != NULL) {
			LIST_REMOVE(c, link);
			conn_unaccept(l, c, "the daemon is shutting down");
		}
		/* Answers posted after the loop left: nobody waits for them. */
		while ((call = STAILQ_FIRST(&l->cq)) != NULL) {
			STAILQ_REMOVE_HEAD(&l->cq, owner_link);
			dispatch_complete(call);
		}
		while ((job = STAILQ_FIRST(&l->jobs)) != NULL) {
			STAILQ_REMOVE_HEAD(&l->jobs, link);
			conn_job_free(job);
		}
		if (l->tok != NULL)
			json_tokener_free(l->tok);
		free(l->cur);
		if (l->epfd >= 0)
			close(l->epfd);
		if (l->evfd >= 0)
			close(l->evfd);
		pthread_mutex_destroy(&l->cq_lock);
	}
	free(srv->loops);
	if (srv->spare_fd >= 0)
		close(srv->spare_fd);
	pthread_mutex_destroy(&srv->spare_lock);
	pthread_mutex_destroy(&srv->exit_lock);
	pthread_mutex_destroy(&srv->uid_lock);
	stuck_fini(srv);
	pthread_cond_destroy(&srv->exit_cond);
	free(srv);
}

