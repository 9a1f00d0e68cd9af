/*
 * conn.c - one connection: read, frame lines, parse, dispatch, and write
 * the replies in request order.
 *
 * A reply that is ready while nothing is pending on its connection goes
 * straight into the write buffer; otherwise it waits in the connection's
 * queue of slots so that replies leave in request order.  Calls answered
 * on other threads come back to the loop that owns the connection
 * (conn_post), so that every connection is only ever touched by its own
 * loop thread.  The calls of one connection run one after another, in
 * the order they were sent: while one is pending, later lines of that
 * connection wait unread (its answer, a 504 included, releases them).
 */
#include "server_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/envelope.h"
#include "core/request.h"
#include "registry.h"
#include "reply.h"

/* ------------------------------------------------------------ output */

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
void
conn_post(struct dispatch_owner *o, struct call *c)
{
	struct loop *l = (struct loop *)(void *)o;
	int was_empty;

	pthread_mutex_lock(&l->cq_lock);
	was_empty = STAILQ_EMPTY(&l->cq);
	STAILQ_INSERT_TAIL(&l->cq, c, owner_link);
	pthread_mutex_unlock(&l->cq_lock);
	if (was_empty)
		server_wake(l);
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
	/* Idempotency keys are the peer uid's own (idem_begin copies it);
	 * a peer of unknown uid gets the default scope. */
	if (c->scope[0] != '\0')
		a.scope = c->scope;
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

void
conn_adopt(struct loop *l, struct call *call)
{
	struct conn *c = call->owner_arg;
	struct slot *s;

	/* The stuck thread was inside frame_lines() on c: what followed
	 * the stuck line is a request too.  Read straight into scratch, it
	 * goes to rbuf (then empty); read into rbuf, the lines handled are
	 * consumed. */
	if (l->fr_conn == c && l->fr_p == l->scratch) {
		if (l->fr_used < l->fr_n && buf_put(&c->rbuf, l->fr_p +
		    l->fr_used, l->fr_n - l->fr_used) < 0)
			c->dead = 1;
	} else if (l->fr_conn == c && l->fr_p == buf_head(&c->rbuf)) {
		buf_consume(&c->rbuf, l->fr_used);
	}
	l->fr_conn = NULL;
	/* As dispatch() does for a call that went to the pool. */
	call->owner_arg = NULL;
	l->n_pool++;
	c->busy = 1;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		c->dead = 1;
		if (dispatch_abandon(call))
			l->n_pool--;
	} else {
		s->conn = c;
		s->call = call;
		s->waiting = 1;
		call->owner_slot = s;
		STAILQ_INSERT_TAIL(&c->slots, s, link);
		LIST_INSERT_HEAD(&l->pending, s, plink);
	}
	conn_flush(c);
	conn_maybe_close(c);
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
		server_wake(l);
}

void
conn_job_free(struct reload_job *job)
{
	if (job->id_text != job->id_buf)
		free(job->id_text);
	json_object_put(job->report);
	free(job);
}

/* host.reload and host.rollback load plugin code: never on this thread.
 * They run on the registry's scan thread; later lines of c wait for the
 * reply. */
static void
reload_call(struct conn *c, const struct request *req)
{
	struct loop *l = c->loop;
	struct reload_job *job;
	struct slot *s;
	const char *plugin = NULL;
	int rollback = strcmp(req->command, "host.rollback") == 0;

	if (rollback) {
		struct json_object *v;

		if (json_object_object_get_ex(envelope_payload(
		    (struct request *)req), "plugin", &v) &&
		    json_object_is_type(v, json_type_string))
			plugin = json_object_get_string(v);
		if (plugin == NULL || plugin[0] == '\0') {
			reply_err(c, req, 400, "invalid_payload", "host.rollback "
			    "needs payload {\"plugin\": NAME} (a plugin's name "
			    "or its file's)");
			return;
		}
	}

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
	job->command = rollback ? "host.rollback" : "host.reload";
	if (req->id_text != NULL) {
		/* A scanned id's text: request_id_format()'s, and it fits. */
		snprintf(job->id_buf, sizeof(job->id_buf), "%s", req->id_text);
		job->id_text = job->id_buf;
	} else if (req->id != NULL && (job->id_text = (char *)
	    request_id_format(req->id, job->id_buf, sizeof(job->id_buf))) ==
	    NULL && (job->id_text = strdup(request_id_text(req->id))) ==
	    NULL) {
		free(job);
		free(s);
		reply_err(c, req, 503, "unavailable", "out of memory");
		return;
	}
	if ((rollback ? registry_rollback_async(l->srv->reg, plugin,
	    reload_done, job) : registry_scan_async(l->srv->reg, reload_done,
	    job)) < 0) {
		conn_job_free(job);
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
void
conn_take_jobs(struct loop *l)
{
	struct reload_job *job;

	pthread_mutex_lock(&l->cq_lock);
	STAILQ_CONCAT(&l->jobs_taking, &l->jobs);
	pthread_mutex_unlock(&l->cq_lock);
	while ((job = STAILQ_FIRST(&l->jobs_taking)) != NULL) {
		struct slot *s = job->slot;
		struct conn *c = s != NULL ? s->conn : NULL;

		STAILQ_REMOVE_HEAD(&l->jobs_taking, link);
		l->n_jobs--;
		if (c != NULL) {
			struct json_object *st, *code, *msg;
			int status = 200, rc;

			s->job = NULL;
			s->waiting = 0;
			c->busy = 0;
			/* A refused host.rollback says so in its report. */
			if (json_object_object_get_ex(job->report, "status",
			    &st) && json_object_object_get_ex(job->report,
			    "code", &code) && json_object_object_get_ex(
			    job->report, "error", &msg))
				status = json_object_get_int(st);
			if (status >= 300)
				rc = request_format_error_text(&s->out,
				    job->id_text, status,
				    json_object_get_string(code),
				    json_object_get_string(msg));
			else
				rc = request_format_ok_text(&s->out,
				    job->id_text, 200, job->report);
			if (rc < 0)
				c->dead = 1;
			else
				finish_admin(c, &s->out, job->id_text,
				    job->command, job->want_request_id, status,
				    job->t0);
			conn_process(c); /* the lines that waited */
			conn_flush(c);
			conn_maybe_close(c);
		}
		conn_job_free(job);
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
	finish_admin(c, out, request_echo_id(req), req->command,
	    req->want_request_id, status, t0);
}

/* Past this, a line's scan is not "nothing" between two calls (see
 * clock_pass in core/clock.h). */
#define CLOCK_PASS_LINE_MAX 4096

static void
handle_line(struct conn *c, const char *line, size_t len)
{
	struct server *srv = c->loop->srv;
	struct request req;
	char err[256];

	metrics_add(srv->stats, DM_REQUESTS, 1);
	if (envelope_scan(c->loop->tok, line, len, &req, err,
	    sizeof(err)) < 0) {
		reply_err(c, &req, 400, "bad_request", err);
		goto out;
	}
	if (atomic_load_explicit(&srv->stopping, memory_order_relaxed)) {
		reply_err(c, &req, 503, "unavailable",
		    "the daemon is shutting down");
		goto out;
	}
	if (req.command[0] == 'h' && strncmp(req.command, "host.", 5) == 0) {
		admin_call(c, &req);
		clock_pass_clear(); /* it may have taken a while */
		goto out;
	}
	/* A long line took a while to scan: its call reads the clock. */
	if (len > CLOCK_PASS_LINE_MAX)
		clock_pass_clear();
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

	clock_pass_clear(); /* a call's start is never before this read */
	while (used < n && !c->dead && !c->busy) {
		const char *line;
		size_t len, u;
		int ev = frame_next(&c->framer, p + used, n - used, &line, &len,
		    &u);

		used += u;
		if (ev == FRAME_LINE) {
			struct loop *l = c->loop;

			c->active_ms = l->now_ms;
			c->line_ms = 0; /* a line ended: the next one is new */
			/* Where we are, for a thread that may take over if
			 * this line's call gets stuck. */
			l->fr_conn = c;
			l->fr_p = p;
			l->fr_n = n;
			l->fr_used = used;
			handle_line(c, line, len);
			l->fr_conn = NULL;
		} else if (ev == FRAME_TOO_LONG) {
			c->active_ms = c->loop->now_ms;
			c->line_ms = 0;
			snprintf(msg, sizeof(msg), "request line longer than "
			    "max_request_bytes (%zu)", c->framer.max);
			reply_err(c, NULL, 413, "request_too_large", msg);
		} else if (u == 0) {
			break; /* a partial line: wait for more */
		}
	}
	clock_pass_clear();
	return used;
}

/* Handle the complete lines held in c's read buffer; an idle connection
 * keeps no buffer. */
void
conn_process(struct conn *c)
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
 * the daemon, and its requests wait in its own socket buffer.  Nor is
 * one whose uid (not an admin) holds max_buffered_bytes_per_uid over all
 * its connections: the loop looks at it again every few ms (paused). */
static int
backlogged(const struct conn *c)
{
	return buf_size(&c->wbuf) >= c->loop->srv->cfg->max_pending_bytes;
}

int
conn_uid_over(const struct conn *c)
{
	return c->use != NULL && !c->use->admin &&
	    atomic_load_explicit(&c->use->bytes, memory_order_relaxed) >=
	    (long long)c->loop->srv->cfg->max_buffered_bytes_per_uid;
}

/* Bring what c holds (unread input, unsent output) to its uid's count
 * and the daemon's, and note a partial line's and a stalled write's
 * start; `moved`: output left this time. */
static void
account(struct conn *c, int moved)
{
	struct server *srv = c->loop->srv;
	long long now = (long long)buf_size(&c->rbuf) +
	    (long long)buf_size(&c->wbuf), delta = now - c->charge;
	int64_t t = c->loop->now_ms;

	if (delta != 0) {
		c->charge = now;
		if (c->use != NULL)
			atomic_fetch_add_explicit(&c->use->bytes, delta,
			    memory_order_relaxed);
		metrics_add(srv->stats, DM_BUFFERED, delta);
		if (atomic_fetch_add_explicit(&srv->buffered, delta,
		    memory_order_relaxed) + delta >
		    (long long)srv->cfg->memory_budget_bytes && delta > 0)
			fair_over_budget(srv);
	}
	/* While a call of c is pending its later lines wait whole in rbuf:
	 * those are requests, not a half line. */
	if (!c->busy && (buf_size(&c->rbuf) > 0 || c->framer.discarding)) {
		if (c->line_ms == 0)
			c->line_ms = t;
	} else {
		c->line_ms = 0;
	}
	if (buf_size(&c->wbuf) == 0)
		c->wstall_ms = 0;
	else if (moved || c->wstall_ms == 0)
		c->wstall_ms = t;
}

void
conn_flush(struct conn *c)
{
	struct server *srv = c->loop->srv;
	uint32_t want;
	int moved = 0, over;

	drain_slots(c);
	while (buf_size(&c->wbuf) > 0 && !c->dead) {
		ssize_t n = send(c->fd, buf_head(&c->wbuf), buf_size(&c->wbuf),
		    MSG_NOSIGNAL);

		if (n > 0) {
			moved = 1;
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
	account(c, moved);
	/* While a call is on the pool, later lines wait, unread; so do they
	 * while too many replies wait for the peer to read them, or while
	 * its uid holds too much. */
	over = conn_uid_over(c);
	if (over != c->paused) {
		c->paused = over;
		c->loop->n_paused += over ? 1 : -1;
	}
	want = (c->eof || c->busy || backlogged(c) || over ? 0 :
	    EPOLLIN) | (buf_size(&c->wbuf) > 0 ? EPOLLOUT : 0);
	set_events(c, want);
}

/* Close c if it is finished: an error, or the peer is done and every
 * reply was written, or the daemon is stopping and c is idle. */
int
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

void
conn_readable(struct conn *c)
{
	struct loop *l = c->loop;
	struct server *srv = l->srv;

	for (int i = 0; i < READS_PER_WAKE && !c->eof && !c->dead && !c->busy &&
	    !backlogged(c) && !conn_uid_over(c); i++) {
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
				conn_process(c);
			}
			if ((size_t)n < room)
				break; /* drained: spare the EAGAIN read */
			continue;
		}
		if (n == 0) {
			/* A last line without '\n' is still a request. */
			if (buf_size(&c->rbuf) > 0 && !c->framer.discarding &&
			    buf_put(&c->rbuf, "\n", 1) == 0)
				conn_process(c);
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

void
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
	account(c, 0); /* holds nothing now */
	if (c->paused)
		l->n_paused--;
	c->paused = 0;
	fair_uid_put(l->srv, c);
	atomic_fetch_sub(&l->srv->n_conns, 1);
	atomic_fetch_sub(&l->n_open, 1);
	metrics_add(l->srv->stats, DM_CONNS_OPEN, -1);
	/* Later events of this batch may still name c: free it after. */
	c->closed = 1;
	c->fd = -1;
	LIST_INSERT_HEAD(&l->graveyard, c, link);
}
