/*
 * server_priv.h - what server.c (the loops, accept, start and stop) and
 * conn.c (one connection: read, frame, dispatch, ordered replies) share.
 * Nothing outside these two files includes it.
 */
#ifndef CMDHOST_SERVER_PRIV_H
#define CMDHOST_SERVER_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "admin.h"
#include "call.h"
#include "core/buf.h"
#include "core/frame.h"
#include "dispatch.h"
#include "listener.h"

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

/* A host.reload or host.rollback running on the registry's scan
 * thread. */
struct reload_job {
	STAILQ_ENTRY(reload_job) link; /* the loop's queue, once done */
	struct loop *loop;
	struct slot *slot;        /* NULL once its connection closed */
	char id_buf[48];
	char *id_text;            /* id_buf, owned, or NULL */
	int want_request_id;
	long long pid, uid;
	int64_t t0;
	const char *command;      /* static: "host.reload", "host.rollback" */
	struct json_object *report; /* owned, once done */
};

/* What one peer uid holds now: one entry per uid with a connection open
 * (server.c's table, freed with its last connection). */
struct uid_use {
	struct uid_use *next;     /* the hash chain, under srv->uid_lock */
	uid_t uid;
	int admin;                /* exempt from the per-uid limits */
	int conns;                /* under srv->uid_lock */
	atomic_llong bytes;       /* input and output its connections hold */
};

#define UID_HASH 256

struct conn {
	struct loop *loop;
	LIST_ENTRY(conn) link;    /* the loop's connections, or graveyard */
	int fd;
	uint32_t events;          /* what epoll watches now */
	char scope[24];           /* "uid:N", its idempotency keys' scope, or
	                           * "" when the uid is unknown */
	struct buf rbuf;
	struct buf wbuf;
	STAILQ_HEAD(, slot) slots; /* replies in request order */
	struct framer framer;     /* line framing state */
	int eof;                  /* the peer will send nothing more */
	int dead;                 /* an I/O error: close at once */
	int closed;               /* closed; freed after this batch */
	int busy;                 /* a call of it is on the pool */
	int touched;              /* take_completions() writes it once */
	int64_t active_ms;        /* last time a request line arrived */
	struct uid_use *use;      /* its uid's entry, borrowed from the table */
	long long charge;         /* bytes counted against use and the budget */
	int64_t line_ms;          /* when its partial line began, or 0 */
	int64_t wstall_ms;        /* unsent output last moved then, or 0 */
	int paused;               /* not read: its uid is over its budget */
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/* One thread running a loop.  A loop stuck in an inline call gets a new
 * one (server.c's monitor); the old one leaves when its call returns. */
struct loop_thread {
	struct dispatch_watch watch; /* first: its inline calls */
	struct loop *loop;
	struct call *adopt;       /* a stuck call to take on at start, or NULL */
	LIST_ENTRY(loop_thread) link; /* srv->stuck, once stuck */
	char command[136];        /* the stuck call's command */
	char plugin[136];         /* and plugin */
	int64_t since_ns;         /* when that call started */
};

struct loop {
	struct dispatch_owner owner; /* first: dispatch posts to it */
	struct loop_thread *cur;  /* the thread serving it now (mon_lock) */
	struct call *orphan;      /* adopted, no thread took it yet (mon_lock) */
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
	/* When this turn began (CLOCK_MONOTONIC ms), 0 while the loop waits
	 * in epoll_wait: the systemd watchdog's sign of progress. */
	atomic_llong beat_ms;
	int64_t wall_ms;          /* the wall clock then (request ids) */
	int64_t idle_check_ms;    /* next sweep for idle connections */
	int64_t emfile_logged_ms; /* rate limit for the EMFILE warning */
	int n_paused;             /* connections with paused set */
	struct json_tokener *tok;
	pthread_mutex_t cq_lock;
	struct call_queue cq;     /* answered calls posted to this loop */
	STAILQ_HEAD(, reload_job) jobs; /* host.reloads done, under cq_lock */
	/* Being taken from cq and jobs now: kept here, not on a stack, so a
	 * thread that takes over a stuck loop goes on with them. */
	struct call_queue taking;
	STAILQ_HEAD(, reload_job) jobs_taking;
	/* The bytes frame_lines() is working through, for the same reason:
	 * fr_conn's p[used..n) are not handled yet. */
	struct conn *fr_conn;
	const char *fr_p;
	size_t fr_n, fr_used;
	int n_jobs;               /* host.reloads of this loop not back */
	LIST_HEAD(, conn) conns;
	LIST_HEAD(, conn) graveyard; /* closed, freed after the event batch */
	/* Connections another loop accepted for this one (cq_lock): the
	 * loop with the fewest takes each new connection (accept_some). */
	LIST_HEAD(, conn) inbox;
	atomic_int inbox_closed;  /* the loop left: refuse, do not post
	                           * (set under cq_lock) */
	atomic_int n_open;        /* connections it serves or will */
	LIST_HEAD(, slot) pending;   /* slots of calls not answered here */
	char scratch[READ_CHUNK]; /* reads land here; leftovers go to c->rbuf */
	int n_pool;               /* calls of this loop still pending */
	uint64_t seq;
} __attribute__((aligned(64)));

struct server {
	const struct config *cfg;
	struct registry *reg;
	struct dispatch *disp;
	struct daemon_stats *stats;
	struct admin admin;
	int listen_fd;            /* lst.fd */
	int spare_fd;             /* given up to accept-and-refuse at EMFILE */
	pthread_mutex_t spare_lock;
	struct listener lst;      /* owned: the listening socket */
	struct loop *loops;
	int n_loops;
	char max_conn_msg[64];
	char reserve_msg[128];    /* the same, for a peer that is no admin */
	int reserve;              /* places kept for admins (see server_new) */
	atomic_int n_conns;
	pthread_mutex_t uid_lock; /* uid_hash and every uid_use.conns */
	struct uid_use *uid_hash[UID_HASH];
	atomic_llong buffered;    /* bytes every connection holds */
	atomic_int shed_wanted;   /* over memory_budget_bytes: loops shed */
	pthread_t monitor;        /* finds loops stuck in an inline call */
	int monitor_started;
	pthread_mutex_t mon_lock; /* mon_stop, stuck, loop->cur and thread */
	pthread_cond_t mon_cond;
	int mon_stop;
	LIST_HEAD(, loop_thread) stuck; /* threads left in a stuck call */
	int n_stuck;              /* under mon_lock */
	atomic_int stopping;      /* 0 serving, 1 draining, 2 forced */
	pthread_mutex_t exit_lock;
	pthread_cond_t exit_cond;
	int loops_exited;
};

/* conn.c */

/* Read what c's peer sent and handle its complete lines. */
void conn_readable(struct conn *c);
/* Move ready replies into the write buffer and send what the peer takes;
 * set what epoll watches. */
void conn_flush(struct conn *c);
/* Close c if it is finished (an error, the peer done and every reply
 * written, or the daemon stopping and c idle).  Returns 1 if closed. */
int conn_maybe_close(struct conn *c);
/* True when c's uid is not an admin and holds its
 * max_buffered_bytes_per_uid: c is not read meanwhile. */
int conn_uid_over(const struct conn *c);
/* Close c now: its pending calls are abandoned; c is freed after the
 * event batch (server_bury). */
void conn_close(struct conn *c);
/* Handle the complete lines waiting in c's read buffer. */
void conn_process(struct conn *c);
/* The loops' dispatch_owner.post: hand an answered call to its loop (any
 * thread). */
void conn_post(struct dispatch_owner *o, struct call *c);
/* Put the reports of finished host.reloads of l in place. */
void conn_take_jobs(struct loop *l);
/* On the thread that took over stuck loop l: make the adopted inline
 * call `call` (dispatch_adopt) a pending call of its connection, keep the
 * lines read after it, and flush what the stuck thread left. */
void conn_adopt(struct loop *l, struct call *call);
/* Free a host.reload job (its report too). */
void conn_job_free(struct reload_job *job);

/* server.c */

/* Wake l's epoll_wait (any thread). */
void server_wake(struct loop *l);
/* A loop thread's body; arg is its struct loop_thread (borrowed, freed
 * by whoever replaces it: server_free, or the thread itself when lost). */
void *server_loop_main(void *arg);

/* fair.c */

/* Count one more connection of uid (admin: exempt from the per-uid
 * limit).  Returns its entry (borrowed until fair_uid_put), or NULL when
 * the uid holds max_connections_per_uid already or memory ran out. */
struct uid_use *fair_uid_get(struct server *srv, uid_t uid, int admin);
/* Drop a closed connection's hold on its uid entry (c->use); the entry is
 * freed with its uid's last connection. */
void fair_uid_put(struct server *srv, struct conn *c);
/* The memory budget was just passed: have every loop shed (any thread). */
void fair_over_budget(struct server *srv);
/* Past memory_budget_bytes: close the largest connection on loop l of the
 * uid that holds the most, while the daemon is over (the other loops do
 * the same with theirs); each is logged and counted. */
void fair_shed(struct loop *l);
/* The write and line timeouts of c: returns 1 if c was closed. */
int fair_timeouts(struct loop *l, struct conn *c);
/* Read again the connections of l paused for their uid's budget whose
 * uid fell below it. */
void fair_resume(struct loop *l);

/* stuck.c */

/* Set up, and free, what srv keeps on stuck loops (in server_new/free). */
void stuck_init(struct server *srv);
void stuck_fini(struct server *srv);
/* A new thread record for loop l, to adopt `adopt` (NULL: none) first.
 * Returns new (free() it), or NULL. */
struct loop_thread *stuck_thread_new(struct loop *l, struct call *adopt);
/* Start and stop the monitor; stop it before the loops are joined (it
 * replaces their threads).  start returns 0 or a negative errno. */
int stuck_start(struct server *srv);
void stuck_stop(struct server *srv);
/* Wait until deadline_ns for threads left in stuck calls to leave.
 * Returns how many are still there (logged). */
int stuck_wait(struct server *srv, int64_t deadline_ns);

#endif /* CMDHOST_SERVER_PRIV_H */
