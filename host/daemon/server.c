/*
 * server.c - epoll loops, connections, framing and ordered replies.
 *
 * The data path reads straight through: read -> split lines -> parse ->
 * registry lookup -> field check -> executor -> reply.  A reply that is
 * ready while nothing is pending on its connection goes straight into the
 * write buffer; otherwise it waits in the connection's queue of slots so
 * that replies leave in request order.  Pool completions come back to the
 * loop that owns the connection through a queue and an eventfd, so that
 * every connection is only ever touched by its own loop thread.
 *
 * The calls of one connection run one after another, in the order they
 * were sent: while one is on the pool, later lines of that connection wait
 * unread (a 504 releases them).  Calls of different connections run in
 * parallel.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/frame.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/request.h"
#include "core/thread.h"
#include "dispatch.h"
#include "registry.h"
#include "reply.h"

#define READ_CHUNK 65536
#define READS_PER_WAKE 4
#define MAX_EVENTS 256
/* An empty write buffer larger than this is freed; smaller ones are kept,
 * since a busy connection would only allocate them again. */
#define WBUF_KEEP (256 * 1024)

struct conn;

struct reload_job;

/* A reply place in a connection's queue. */
struct slot {
	STAILQ_ENTRY(slot) link;  /* the connection's queue */
	LIST_ENTRY(slot) plink;   /* the loop's pending calls */
	struct conn *conn;
	int waiting;              /* the reply is not ready yet */
	struct call *call;        /* a pending call, or NULL */
	struct reload_job *job;   /* a pending host.reload, or NULL */
	struct buf out;           /* the reply line once ready */
};

/* A host.reload running on the registry's scan thread. */
struct reload_job {
	STAILQ_ENTRY(reload_job) link; /* the loop's queue, once done */
	struct loop *loop;
	struct slot *slot;        /* NULL once its connection closed */
	char id_buf[48];
	char *id_text;            /* id_buf, owned, or NULL */
	int want_request_id;
	long long pid, uid;
	int64_t t0;
	struct json_object *report; /* owned, once done */
};

struct conn {
	struct loop *loop;
	LIST_ENTRY(conn) link;    /* the loop's connections, or graveyard */
	int fd;
	uint32_t events;          /* what epoll watches now */
	struct buf rbuf;
	struct buf wbuf;
	STAILQ_HEAD(, slot) slots; /* replies in request order */
	struct framer framer;     /* line framing state */
	int eof;                  /* the peer will send nothing more */
	int dead;                 /* an I/O error: close at once */
	int closed;               /* closed; freed after this batch */
	int busy;                 /* a call of it is on the pool */
	int64_t active_ms;        /* last time a request line arrived */
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

struct loop {
	struct dispatch_owner owner; /* first: dispatch posts to it */
	struct server *srv;
	int index;
	pthread_t thread;
	int started;
	int epfd;
	int evfd;
	int reader;
	int listening;
	int stop_seen;            /* the stop was acted on once */
	int64_t now_ms;           /* CLOCK_MONOTONIC, once per loop turn */
	int64_t wall_ms;          /* the wall clock then (request ids) */
	int64_t idle_check_ms;    /* next sweep for idle connections */
	int64_t emfile_logged_ms; /* rate limit for the EMFILE warning */
	struct json_tokener *tok;
	pthread_mutex_t cq_lock;
	struct call_queue cq;     /* answered calls posted to this loop */
	STAILQ_HEAD(, reload_job) jobs; /* host.reloads done, under cq_lock */
	int n_jobs;               /* host.reloads of this loop not back */
	LIST_HEAD(, conn) conns;
	LIST_HEAD(, conn) graveyard; /* closed, freed after the event batch */
	LIST_HEAD(, slot) pending;   /* slots of calls not answered here */
	char scratch[READ_CHUNK]; /* reads land here; leftovers go to c->rbuf */
	int n_pool;               /* calls of this loop still pending */
	uint64_t seq;
};

struct server {
	const struct config *cfg;
	struct registry *reg;
	struct dispatch *disp;
	struct daemon_stats *stats;
	struct admin admin;
	int listen_fd;
	int spare_fd;             /* given up to accept-and-refuse at EMFILE */
	pthread_mutex_t spare_lock;
	dev_t sock_dev;
	ino_t sock_ino;
	struct loop *loops;
	int n_loops;
	char max_conn_msg[64];
	atomic_int n_conns;
	atomic_int stopping;      /* 0 serving, 1 draining, 2 forced */
	pthread_mutex_t exit_lock;
	pthread_cond_t exit_cond;
	int loops_exited;
};

static void conn_close(struct conn *c);
static void conn_flush(struct conn *c);
static void loop_post(struct dispatch_owner *o, struct call *c);
static void process_lines(struct conn *c);
static int conn_maybe_close(struct conn *c);

/* ------------------------------------------------------------ socket */

/* Is a daemon accepting on path?  1 yes, 0 no (stale or absent). */
static int
socket_is_live(const char *path)
{
	struct sockaddr_un sa;
	int fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc == 0 || errno == EAGAIN;
}

static int
open_listener(struct server *srv, char *err, size_t errlen)
{
	const char *path = srv->cfg->socket;
	struct sockaddr_un sa;
	struct stat st;
	mode_t old_mask;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket; "
			    "not touching it", path);
			return -1;
		}
		if (socket_is_live(path)) {
			snprintf(err, errlen, "another daemon is serving on %s",
			    path);
			return -1;
		}
		if (unlink(path) < 0) {
			snprintf(err, errlen, "cannot remove stale socket %s: %s",
			    path, strerror(errno));
			return -1;
		}
		log_info("removed stale socket %s", path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	/* The file is created with exactly socket_mode: never wider. */
	old_mask = umask(~srv->cfg->socket_mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (rc < 0) {
		snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(path, srv->cfg->socket_mode) < 0 ||
	    stat(path, &st) < 0 || listen(fd, 4096) < 0) {
		snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	srv->sock_dev = st.st_dev;
	srv->sock_ino = st.st_ino;
	srv->listen_fd = fd;
	return 0;
}

struct server *
server_new(const struct config *cfg, struct registry *reg,
    struct dispatch *disp, struct daemon_stats *stats, char *err,
    size_t errlen)
{
	struct server *srv = calloc(1, sizeof(*srv));
	long ncpu;

	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->cfg = cfg;
	srv->reg = reg;
	srv->disp = disp;
	srv->stats = stats;
	srv->listen_fd = -1;
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pthread_mutex_init(&srv->spare_lock, NULL);
	srv->admin.cfg = cfg;
	srv->admin.reg = reg;
	srv->admin.stats = stats;
	srv->admin.disp = disp;
	srv->admin.self_uid = geteuid();
	pthread_mutex_init(&srv->exit_lock, NULL);
	thread_cond_init(&srv->exit_cond);
	snprintf(srv->max_conn_msg, sizeof(srv->max_conn_msg), "too many "
	    "connections (max_connections=%d)", cfg->max_connections);
	srv->n_loops = cfg->workers;
	if (srv->n_loops == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		srv->n_loops = ncpu > 0 ? (int)ncpu : 1;
	}
	srv->loops = calloc((size_t)srv->n_loops, sizeof(*srv->loops));
	if (srv->loops == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < srv->n_loops; i++) {
		struct loop *l = &srv->loops[i];

		l->owner.post = loop_post;
		l->owner.finished_msg = "call finished";
		l->srv = srv;
		l->index = i;
		l->epfd = l->evfd = -1;
		pthread_mutex_init(&l->cq_lock, NULL);
		STAILQ_INIT(&l->cq);
		STAILQ_INIT(&l->jobs);
		LIST_INIT(&l->conns);
		LIST_INIT(&l->graveyard);
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
	if (open_listener(srv, err, errlen) < 0)
		goto fail;
	return srv;
fail:
	server_free(srv);
	return NULL;
}

/* ------------------------------------------------------------ output */

static void
loop_wake(struct loop *l)
{
	uint64_t one = 1;

	if (write(l->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("eventfd write");
}

static void
set_events(struct conn *c, uint32_t events)
{
	struct epoll_event ev;

	if (c->events == events)
		return;
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		c->dead = 1;
		return;
	}
	c->events = events;
}

/* Where the next reply of c goes: straight into the write buffer when no
 * earlier reply is pending, else into a new ready slot at the tail.
 * Returns NULL on ENOMEM. */
static struct buf *
reply_target(struct conn *c)
{
	struct slot *s;

	if (STAILQ_EMPTY(&c->slots))
		return &c->wbuf;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->conn = c;
	STAILQ_INSERT_TAIL(&c->slots, s, link);
	return &s->out;
}

/* reply_finish() for a reply of c; c is dropped if it fails. */
static void
finish_reply(struct conn *c, struct buf *out, int want,
    const struct log_ctx *lc, const char *message)
{
	struct server *srv = c->loop->srv;

	if (reply_finish(srv->cfg, srv->stats, out, want, lc, message) < 0)
		c->dead = 1;
}

/* A new request id of loop l, into rid. */
static void
next_request_id(struct loop *l, char rid[REQUEST_ID_LEN + 1])
{
	request_id_make(rid, l->wall_ms, (unsigned)l->index, ++l->seq);
}

/* Answer req (NULL when the line could not be read as one) with an error
 * that no plugin made. */
static void
reply_err(struct conn *c, const struct request *req, int status,
    const char *code, const char *message)
{
	struct server *srv = c->loop->srv;
	struct buf *out = reply_target(c);
	char rid[REQUEST_ID_LEN + 1];

	next_request_id(c->loop, rid);
	if (out == NULL || reply_error(srv->cfg, srv->stats, out, req, rid,
	    status, code, message, c->pid, c->uid) < 0)
		c->dead = 1; /* cannot keep the order promise: drop the peer */
}

/* Move ready slots at the head of c's queue into its write buffer. */
static void
drain_slots(struct conn *c)
{
	struct slot *s;

	while ((s = STAILQ_FIRST(&c->slots)) != NULL && !s->waiting) {
		if (buf_put(&c->wbuf, buf_head(&s->out), buf_size(&s->out)) < 0) {
			c->dead = 1;
			return;
		}
		STAILQ_REMOVE_HEAD(&c->slots, link);
		buf_free(&s->out);
		free(s);
	}
}

/* ------------------------------------------------------------ dispatch */

/* Runs on any thread: hand the answered call c to its loop. */
static void
loop_post(struct dispatch_owner *o, struct call *c)
{
	struct loop *l = (struct loop *)(void *)o;
	int was_empty;

	pthread_mutex_lock(&l->cq_lock);
	was_empty = STAILQ_EMPTY(&l->cq);
	STAILQ_INSERT_TAIL(&l->cq, c, owner_link);
	pthread_mutex_unlock(&l->cq_lock);
	if (was_empty)
		loop_wake(l);
}

/*
 * A call's completion, on its loop's thread.  A call that ran inline is
 * answered while dispatch_call() runs: owner_arg is its connection and
 * the reply goes where the next reply goes.  A pending call has its slot
 * in owner_slot, or none when its connection closed before the answer.
 */
static void
on_call_done(struct call *call)
{
	struct slot *s = call->owner_slot;
	struct conn *c;
	struct buf *out;

	if (s == NULL && call->owner_arg == NULL) {
		dispatch_drop(call); /* the peer hung up */
		return;
	}
	if (s != NULL) {
		c = s->conn;
		LIST_REMOVE(s, plink);
		s->call = NULL;
		s->waiting = 0;
		c->busy = 0;
		c->loop->n_pool--;
		out = &s->out;
	} else {
		c = call->owner_arg;
		if ((out = reply_target(c)) == NULL) {
			c->dead = 1;
			return;
		}
	}
	if (dispatch_reply(call, out, c->loop->wall_ms) < 0)
		c->dead = 1;
}

static void
dispatch(struct conn *c, struct request *req)
{
	struct loop *l = c->loop;
	struct server *srv = l->srv;
	struct dispatch_args a;
	struct call *call;
	struct slot *s;
	const char *code;
	char err[512];
	int rc, status;

	memset(&a, 0, sizeof(a));
	a.reader = l->reader;
	a.rid_ms = l->wall_ms;
	a.rid_src = (unsigned)l->index;
	a.rid_seq = ++l->seq;
	a.pid = c->pid;
	a.uid = c->uid;
	a.owner = &l->owner;
	a.done = on_call_done;
	a.owner_arg = c;
	rc = dispatch_call(srv->disp, &a, req, &call, &status, &code, err,
	    sizeof(err));
	if (rc < 0) {
		reply_err(c, req, status, code, err);
		return;
	}
	if (rc == DISPATCH_DONE)
		return;
	/* Pending: its answer comes back through this loop's queue, which
	 * only this thread drains, so the slot can be set up now. */
	call->owner_arg = NULL;
	l->n_pool++;
	c->busy = 1;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		/* Cannot keep the order promise: drop the peer. */
		c->dead = 1;
		if (dispatch_abandon(call))
			l->n_pool--;
		return;
	}
	s->conn = c;
	s->call = call;
	s->waiting = 1;
	call->owner_slot = s;
	STAILQ_INSERT_TAIL(&c->slots, s, link);
	LIST_INSERT_HEAD(&l->pending, s, plink);
}

/* Log line and request id of a host.* reply just formatted into out. */
static void
finish_admin(struct conn *c, struct buf *out, const char *id_text,
    const char *command, int want, int status, int64_t t0)
{
	struct log_ctx lc = LOG_CTX_INIT;
	char rid[REQUEST_ID_LEN + 1];

	next_request_id(c->loop, rid);
	lc.request_id = rid;
	lc.id = id_text;
	lc.command = command;
	lc.plugin = "host";
	lc.status = status;
	lc.error_code = status == 403 ? "forbidden" : status == 404 ?
	    "unknown_command" : status == 503 ? "unavailable" : NULL;
	lc.pid = c->pid;
	lc.uid = c->uid;
	lc.duration_ms = (double)(clock_mono_ns() - t0) / 1e6;
	finish_reply(c, out, want, &lc, status < 300 ? "call finished" :
	    "host command refused");
}

/* Runs on the registry's scan thread: hand the report to the loop. */
static void
reload_done(void *arg, struct json_object *report, int failures)
{
	struct reload_job *job = arg;
	struct loop *l = job->loop;
	int was_empty;

	(void)failures;
	job->report = report;
	pthread_mutex_lock(&l->cq_lock);
	was_empty = STAILQ_EMPTY(&l->jobs) && STAILQ_EMPTY(&l->cq);
	STAILQ_INSERT_TAIL(&l->jobs, job, link);
	pthread_mutex_unlock(&l->cq_lock);
	if (was_empty)
		loop_wake(l);
}

static void
job_free(struct reload_job *job)
{
	if (job->id_text != job->id_buf)
		free(job->id_text);
	json_object_put(job->report);
	free(job);
}

/* host.reload loads plugin code: never on this thread.  The rescan runs
 * on the registry's scan thread; later lines of c wait for its reply. */
static void
reload_call(struct conn *c, const struct request *req)
{
	struct loop *l = c->loop;
	struct reload_job *job;
	struct slot *s;

	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    (s = calloc(1, sizeof(*s))) == NULL) {
		free(job);
		reply_err(c, req, 503, "unavailable", "out of memory");
		return;
	}
	job->loop = l;
	job->slot = s;
	job->want_request_id = req->want_request_id;
	job->pid = c->pid;
	job->uid = c->uid;
	job->t0 = clock_mono_ns();
	if (req->id != NULL && (job->id_text = (char *)request_id_format(
	    req->id, job->id_buf, sizeof(job->id_buf))) == NULL &&
	    (job->id_text = strdup(request_id_text(req->id))) == NULL) {
		free(job);
		free(s);
		reply_err(c, req, 503, "unavailable", "out of memory");
		return;
	}
	if (registry_scan_async(l->srv->reg, reload_done, job) < 0) {
		job_free(job);
		free(s);
		reply_err(c, req, 503, "unavailable", "out of memory");
		return;
	}
	s->conn = c;
	s->job = job;
	s->waiting = 1;
	STAILQ_INSERT_TAIL(&c->slots, s, link);
	c->busy = 1;
	l->n_jobs++;
}

/* Put the reports of finished host.reloads in place. */
static void
take_jobs(struct loop *l)
{
	STAILQ_HEAD(, reload_job) q;
	struct reload_job *job;

	pthread_mutex_lock(&l->cq_lock);
	STAILQ_INIT(&q);
	STAILQ_CONCAT(&q, &l->jobs);
	pthread_mutex_unlock(&l->cq_lock);
	while ((job = STAILQ_FIRST(&q)) != NULL) {
		struct slot *s = job->slot;
		struct conn *c = s != NULL ? s->conn : NULL;

		STAILQ_REMOVE_HEAD(&q, link);
		l->n_jobs--;
		if (c != NULL) {
			s->job = NULL;
			s->waiting = 0;
			c->busy = 0;
			if (request_format_ok_text(&s->out, job->id_text, 200,
			    job->report) < 0)
				c->dead = 1;
			else
				finish_admin(c, &s->out, job->id_text,
				    "host.reload", job->want_request_id, 200,
				    job->t0);
			process_lines(c); /* the lines that waited */
			conn_flush(c);
			conn_maybe_close(c);
		}
		job_free(job);
	}
}

/* Answer a host.* command. */
static void
admin_call(struct conn *c, const struct request *req)
{
	struct buf *out;
	int64_t t0 = clock_mono_ns();
	int status;

	if (admin_is_reload(&c->loop->srv->admin, c->uid, req)) {
		reload_call(c, req);
		return;
	}
	if ((out = reply_target(c)) == NULL || (status = admin_handle(
	    &c->loop->srv->admin, c->uid, req, out)) < 0) {
		c->dead = 1;
		return;
	}
	finish_admin(c, out, req->id ? request_id_text(req->id) : NULL,
	    req->command, req->want_request_id, status, t0);
}

static void
handle_line(struct conn *c, const char *line, size_t len)
{
	struct server *srv = c->loop->srv;
	struct request req;
	char err[256];

	metrics_add(srv->stats, DM_REQUESTS, 1);
	if (request_parse(c->loop->tok, line, len, &req, err,
	    sizeof(err)) < 0) {
		reply_err(c, &req, 400, "bad_request", err);
		goto out;
	}
	if (atomic_load_explicit(&srv->stopping, memory_order_relaxed)) {
		reply_err(c, &req, 503, "unavailable",
		    "the daemon is shutting down");
		goto out;
	}
	if (strncmp(req.command, "host.", 5) == 0) {
		admin_call(c, &req);
		goto out;
	}
	dispatch(c, &req);
out:
	request_fini(&req);
}

/*
 * Handle each complete line in p[0..n) for c, stopping early when a call of
 * c goes to the pool (later lines must wait for it).  A line longer than
 * max_request_bytes is answered 413 (at once, even before its end) and the
 * rest of it is skipped.  Returns how many bytes were used up.
 */
static size_t
frame_lines(struct conn *c, char *p, size_t n)
{
	size_t used = 0;
	char msg[128];

	while (used < n && !c->dead && !c->busy) {
		const char *line;
		size_t len, u;
		int ev = frame_next(&c->framer, p + used, n - used, &line, &len,
		    &u);

		used += u;
		if (ev == FRAME_LINE) {
			c->active_ms = c->loop->now_ms;
			handle_line(c, line, len);
		} else if (ev == FRAME_TOO_LONG) {
			c->active_ms = c->loop->now_ms;
			snprintf(msg, sizeof(msg), "request line longer than "
			    "max_request_bytes (%zu)", c->framer.max);
			reply_err(c, NULL, 413, "request_too_large", msg);
		} else if (u == 0) {
			break; /* a partial line: wait for more */
		}
	}
	return used;
}

/* Handle the complete lines held in c's read buffer; an idle connection
 * keeps no buffer. */
static void
process_lines(struct conn *c)
{
	if (buf_size(&c->rbuf) == 0)
		return;
	buf_consume(&c->rbuf, frame_lines(c, buf_head(&c->rbuf),
	    buf_size(&c->rbuf)));
	if (buf_size(&c->rbuf) == 0)
		buf_free(&c->rbuf);
}

/* ------------------------------------------------------------ connections */

/* A connection whose unsent replies pass max_pending_bytes is not read
 * from until they drain: a client that sends and never reads cannot grow
 * the daemon, and its requests wait in its own socket buffer. */
static int
backlogged(const struct conn *c)
{
	return buf_size(&c->wbuf) >= c->loop->srv->cfg->max_pending_bytes;
}

static void
conn_flush(struct conn *c)
{
	struct server *srv = c->loop->srv;
	uint32_t want;

	drain_slots(c);
	while (buf_size(&c->wbuf) > 0 && !c->dead) {
		ssize_t n = send(c->fd, buf_head(&c->wbuf), buf_size(&c->wbuf),
		    MSG_NOSIGNAL);

		if (n > 0) {
			metrics_add(srv->stats, DM_BYTES_OUT, n);
			buf_consume(&c->wbuf, (size_t)n);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else {
			c->dead = 1;
		}
	}
	if (c->dead)
		return;
	if (buf_size(&c->wbuf) == 0 && c->wbuf.cap > WBUF_KEEP)
		buf_free(&c->wbuf); /* a very big reply went out: give it back */
	/* While a call is on the pool, later lines wait, unread; so do they
	 * while too many replies wait for the peer to read them. */
	want = (c->eof || c->busy || backlogged(c) ? 0 :
	    EPOLLIN) | (buf_size(&c->wbuf) > 0 ? EPOLLOUT : 0);
	set_events(c, want);
}

/* Close c if it is finished: an error, or the peer is done and every
 * reply was written, or the daemon is stopping and c is idle. */
static int
conn_maybe_close(struct conn *c)
{
	int idle;

	if (c->closed)
		return 1;
	idle = STAILQ_EMPTY(&c->slots) && buf_size(&c->wbuf) == 0;
	if (c->dead || (idle && (c->eof ||
	    atomic_load_explicit(&c->loop->srv->stopping,
	    memory_order_relaxed)))) {
		conn_close(c);
		return 1;
	}
	return 0;
}

static void
conn_readable(struct conn *c)
{
	struct loop *l = c->loop;
	struct server *srv = l->srv;

	for (int i = 0; i < READS_PER_WAKE && !c->eof && !c->dead && !c->busy &&
	    !backlogged(c); i++) {
		/* With nothing buffered, read into the loop's scratch space and
		 * frame from there: only a partial line is copied. */
		int direct = buf_size(&c->rbuf) == 0;
		char *dst;
		size_t room;
		ssize_t n;

		if (direct) {
			dst = l->scratch;
			room = sizeof(l->scratch);
		} else {
			if (buf_reserve(&c->rbuf, READ_CHUNK) < 0) {
				c->dead = 1;
				break;
			}
			dst = c->rbuf.data + c->rbuf.len;
			room = c->rbuf.cap - c->rbuf.len;
		}
		n = read(c->fd, dst, room);
		if (n > 0) {
			metrics_add(srv->stats, DM_BYTES_IN, n);
			if (direct) {
				size_t used = frame_lines(c, dst, (size_t)n);

				if (used < (size_t)n && buf_put(&c->rbuf,
				    dst + used, (size_t)n - used) < 0)
					c->dead = 1;
			} else {
				c->rbuf.len += (size_t)n;
				process_lines(c);
			}
			if ((size_t)n < room)
				break; /* drained: spare the EAGAIN read */
			continue;
		}
		if (n == 0) {
			/* A last line without '\n' is still a request. */
			if (buf_size(&c->rbuf) > 0 && !c->framer.discarding &&
			    buf_put(&c->rbuf, "\n", 1) == 0)
				process_lines(c);
			c->eof = 1;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			c->dead = 1;
		break;
	}
	conn_flush(c);
	conn_maybe_close(c);
}

static void
conn_close(struct conn *c)
{
	struct loop *l = c->loop;
	struct slot *s;

	while ((s = STAILQ_FIRST(&c->slots)) != NULL) {
		STAILQ_REMOVE_HEAD(&c->slots, link);
		if (s->job != NULL)
			s->job->slot = NULL; /* its report will be dropped */
		if (s->call != NULL) {
			/* Nobody will be told; if it has not started, it
			 * never will.  An answer already posted here finds
			 * no slot and is dropped. */
			LIST_REMOVE(s, plink);
			s->call->owner_slot = NULL;
			if (dispatch_abandon(s->call))
				l->n_pool--;
		}
		buf_free(&s->out);
		free(s);
	}
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	LIST_REMOVE(c, link);
	buf_free(&c->rbuf);
	buf_free(&c->wbuf);
	atomic_fetch_sub(&l->srv->n_conns, 1);
	metrics_add(l->srv->stats, DM_CONNS_OPEN, -1);
	/* Later events of this batch may still name c: free it after. */
	c->closed = 1;
	c->fd = -1;
	LIST_INSERT_HEAD(&l->graveyard, c, link);
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

static void
accept_some(struct loop *l)
{
	struct server *srv = l->srv;

	for (int i = 0; i < 64; i++) {
		struct epoll_event ev;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		struct conn *c;
		int fd;

		fd = accept4(srv->listen_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				out_of_fds(l);
			return;
		}
		if (atomic_fetch_add(&srv->n_conns, 1) >=
		    srv->cfg->max_connections) {
			atomic_fetch_sub(&srv->n_conns, 1);
			refuse(srv, fd, srv->max_conn_msg);
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			atomic_fetch_sub(&srv->n_conns, 1);
			close(fd);
			continue;
		}
		c->loop = l;
		c->fd = fd;
		c->uid = (uid_t)-1;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
			c->pid = cred.pid;
			c->uid = cred.uid;
			c->gid = cred.gid;
		}
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			atomic_fetch_sub(&srv->n_conns, 1);
			close(fd);
			free(c);
			continue;
		}
		c->events = EPOLLIN;
		c->active_ms = l->now_ms;
		frame_init(&c->framer, srv->cfg->max_request_bytes);
		STAILQ_INIT(&c->slots);
		LIST_INSERT_HEAD(&l->conns, c, link);
		metrics_add(srv->stats, DM_CONNS_OPEN, 1);
		metrics_add(srv->stats, DM_CONNS_TOTAL, 1);
	}
}

/* ------------------------------------------------------------ the loop */

/* Take the calls answered elsewhere and put their replies in place. */
static void
take_completions(struct loop *l)
{
	struct call_queue q;
	struct call *call;

	pthread_mutex_lock(&l->cq_lock);
	STAILQ_INIT(&q);
	STAILQ_CONCAT(&q, &l->cq);
	pthread_mutex_unlock(&l->cq_lock);
	while ((call = STAILQ_FIRST(&q)) != NULL) {
		struct slot *s = call->owner_slot;
		struct conn *c = s != NULL ? s->conn : NULL;

		STAILQ_REMOVE_HEAD(&q, owner_link);
		if (s == NULL)
			l->n_pool--; /* its connection closed meanwhile */
		dispatch_complete(call);
		if (c != NULL) {
			process_lines(c); /* the lines that waited */
			conn_flush(c);
			conn_maybe_close(c);
		}
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

/*
 * Close connections that have had nothing to do for idle_timeout_ms: no
 * call running, no reply waiting to be sent, and no complete request line
 * for that long (a half line that never ends counts as idle).  Returns
 * the ms until the next sweep, or -1 when idle connections never close.
 */
static int
sweep_idle(struct loop *l)
{
	int limit = l->srv->cfg->idle_timeout_ms;

	if (limit <= 0)
		return -1;
	if (l->now_ms < l->idle_check_ms)
		return (int)(l->idle_check_ms - l->now_ms);
	for (struct conn *c = LIST_FIRST(&l->conns), *next; c != NULL;
	    c = next) {
		next = LIST_NEXT(c, link);
		if (STAILQ_EMPTY(&c->slots) && buf_size(&c->wbuf) == 0 &&
		    l->now_ms - c->active_ms >= limit) {
			log_debug("closing a connection idle for %d ms", limit);
			conn_close(c);
		}
	}
	/* Sweep a few times per timeout: a connection lives at most about
	 * 1.25 times idle_timeout_ms without a request. */
	l->idle_check_ms = l->now_ms + (limit >= 4 ? limit / 4 : 1);
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

static void *
loop_main(void *arg)
{
	struct loop *l = arg;
	struct server *srv = l->srv;
	struct epoll_event events[MAX_EVENTS];

	thread_use_c_locale();
	log_thread_buffer(1);
	dispatch_thread_cache(1);
	for (;;) {
		int stopping = atomic_load(&srv->stopping);
		int timeout, n;

		/* Answers that came back are taken before a forced stop
		 * gives up on the rest. */
		take_completions(l);
		take_jobs(l);
		if (stopping == 2)
			force_pending(l);
		l->now_ms = clock_mono_ms();
		timeout = sweep_idle(l);
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
		n = epoll_wait(l->epfd, events, MAX_EVENTS, timeout);
		if (n < 0 && errno != EINTR) {
			log_error("epoll_wait");
			break;
		}
		l->now_ms = clock_mono_ms();
		l->wall_ms = clock_wall_ms();
		for (int i = 0; i < n; i++) {
			void *p = events[i].data.ptr;

			if (p == l) {
				uint64_t junk;

				if (read(l->evfd, &junk, sizeof(junk)) < 0 &&
				    errno != EAGAIN)
					log_warn("eventfd read");
				take_completions(l);
				take_jobs(l);
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
	dispatch_thread_cache(0);
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
	for (int i = 0; i < srv->n_loops; i++) {
		struct loop *l = &srv->loops[i];
		struct epoll_event ev;
		int err;

		ev.events = EPOLLIN;
		ev.data.ptr = l;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) < 0)
			return -errno;
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.ptr = srv;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev) < 0)
			return -errno;
		l->listening = 1;
		if ((err = pthread_create(&l->thread, NULL, loop_main, l)) != 0)
			return -err;
		l->started = 1;
	}
	return 0;
}

static void
wake_all(struct server *srv)
{
	for (int i = 0; i < srv->n_loops; i++)
		if (srv->loops[i].started)
			loop_wake(&srv->loops[i]);
}

int
server_stop(struct server *srv, int64_t deadline_ns)
{
	int started = 0, exited, stuck = 0;

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
	 * one more second, then give up on it. */
	deadline_ns += 1000000000LL;
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
	return stuck ? -1 : 0;
}

void
server_close(struct server *srv)
{
	struct stat st;

	if (srv == NULL || srv->listen_fd < 0)
		return;
	close(srv->listen_fd);
	srv->listen_fd = -1;
	/* Remove the file only if it is still the one we bound. */
	if (stat(srv->cfg->socket, &st) == 0 && st.st_dev == srv->sock_dev &&
	    st.st_ino == srv->sock_ino)
		unlink(srv->cfg->socket);
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

		while (!LIST_EMPTY(&l->conns))
			conn_close(LIST_FIRST(&l->conns));
		bury(l);
		/* Answers posted after the loop left: nobody waits for them. */
		while ((call = STAILQ_FIRST(&l->cq)) != NULL) {
			STAILQ_REMOVE_HEAD(&l->cq, owner_link);
			dispatch_complete(call);
		}
		while ((job = STAILQ_FIRST(&l->jobs)) != NULL) {
			STAILQ_REMOVE_HEAD(&l->jobs, link);
			job_free(job);
		}
		if (l->tok != NULL)
			json_tokener_free(l->tok);
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
	pthread_cond_destroy(&srv->exit_cond);
	free(srv);
}
