/*
 * stuck.c - loops whose thread is stuck in an inline call.
 *
 * Each loop thread publishes its inline call on a watch (dispatch.h).  A
 * monitor thread looks every MONITOR_EVERY_NS; a call that has run
 * inline_stuck_ms, or is past its deadline, is adopted by dispatch (it
 * becomes pending, answered 504 at its deadline) and the loop gets a new
 * thread that takes the call and the loop's connections on.  The old
 * thread is left to its call; if that returns, the watch's lost hook
 * makes it leave without touching the loop.  Nothing here can stop a
 * thread: it only stops one from holding everything else.
 */
#include "server_priv.h"
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/generation.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/thread.h"

/* How often the monitor looks for a loop stuck in an inline call. */
#define MONITOR_EVERY_NS 10000000LL

static void thread_lost(struct dispatch_watch *w);
static int stuck_json(void *arg, struct json_object *arr);

void
stuck_init(struct server *srv)
{
	pthread_mutex_init(&srv->mon_lock, NULL);
	thread_cond_init(&srv->mon_cond);
	LIST_INIT(&srv->stuck);
	srv->admin.stuck_fn = stuck_json;
	srv->admin.stuck_arg = srv;
}

void
stuck_fini(struct server *srv)
{
	pthread_mutex_destroy(&srv->mon_lock);
	pthread_cond_destroy(&srv->mon_cond);
}

struct loop_thread *
stuck_thread_new(struct loop *l, struct call *adopt)
{
	struct loop_thread *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->loop = l;
	t->adopt = adopt;
	t->watch.owner = &l->owner;
	t->watch.lost = thread_lost;
	return t;
}

/*
 * The watch's lost hook, on a loop thread whose stuck call returned at
 * last: another thread serves the loop now.  Leave without touching it.
 */
static void
thread_lost(struct dispatch_watch *w)
{
	struct loop_thread *t = (struct loop_thread *)(void *)w;
	struct server *srv = t->loop->srv;

	log_warnx("the stuck call of %s (plugin %s) returned after %lld ms; "
	    "its old loop thread leaves", t->command, t->plugin,
	    (long long)((clock_mono_ns() - t->since_ns) / 1000000));
	metrics_add(srv->stats, DM_STUCK_THREADS, -1);
	dispatch_thread_watch(NULL);
	dispatch_thread_cache(0);
	log_thread_buffer(0);
	pthread_mutex_lock(&srv->mon_lock);
	LIST_REMOVE(t, link);
	srv->n_stuck--;
	pthread_cond_broadcast(&srv->mon_cond);
	pthread_mutex_unlock(&srv->mon_lock);
	free(t);
	pthread_exit(NULL);
}

/* Start a thread that takes stuck loop l over with its adopted call c;
 * mon_lock is held.  On failure c waits in l->orphan for the next try
 * (it still gets its 504 meanwhile). */
static void
start_successor(struct loop *l, struct call *c)
{
	struct loop_thread *t;
	pthread_t th;

	if ((t = stuck_thread_new(l, c)) == NULL ||
	    pthread_create(&th, NULL, server_loop_main, t) != 0) {
		if (l->orphan == NULL)
			log_errorx("cannot start a thread to take over loop %d; "
			    "trying again", l->index);
		free(t);
		l->orphan = c;
		return;
	}
	l->orphan = NULL;
	l->thread = th;
	l->cur = t;
}

/*
 * Loop l's thread is stuck in inline call c (adopted, pending now): give
 * the loop a new thread that takes c and the loop's connections on; the
 * old thread is left to its call, and leaves by thread_lost() if it ever
 * returns.  mon_lock is held (thread_lost waits for it).
 */
static void
take_over(struct loop *l, struct call *c)
{
	struct server *srv = l->srv;
	struct loop_thread *old = l->cur;
	const struct invocation *inv = &c->inv;

	snprintf(old->command, sizeof(old->command), "%s", inv->cmd->name);
	snprintf(old->plugin, sizeof(old->plugin), "%s", inv->cmd->gen->name);
	old->since_ns = inv->start_ns;
	LIST_INSERT_HEAD(&srv->stuck, old, link);
	srv->n_stuck++;
	metrics_add(srv->stats, DM_STUCK_THREADS, 1);
	pthread_detach(l->thread);
	l->cur = NULL;
	log_warnx("command %s (plugin %s) has run inline for %lld ms on loop "
	    "%d: that thread is stuck; a new thread serves the loop's "
	    "connections, the call gets its 504 at its deadline, and the "
	    "command's calls run on the pool", old->command, old->plugin,
	    (long long)((clock_mono_ns() - old->since_ns) / 1000000), l->index);
	start_successor(l, c);
}

/* Every few ms: is a loop stuck in an inline call? */
static void *
monitor_main(void *arg)
{
	struct server *srv = arg;
	int64_t stuck_ns = (int64_t)srv->cfg->inline_stuck_ms * 1000000;

	pthread_setname_np(pthread_self(), "cmdhostd-watch");
	pthread_mutex_lock(&srv->mon_lock);
	while (!srv->mon_stop) {
		struct timespec ts = clock_mono_ts(clock_mono_ns() +
		    MONITOR_EVERY_NS);

		pthread_cond_timedwait(&srv->mon_cond, &srv->mon_lock, &ts);
		if (srv->mon_stop)
			break;
		for (int i = 0; i < srv->n_loops; i++) {
			struct loop *l = &srv->loops[i];
			struct call *c;

			if (l->orphan != NULL) {
				start_successor(l, l->orphan);
				continue;
			}
			if (l->cur == NULL)
				continue;
			c = dispatch_adopt(srv->disp, &l->cur->watch,
			    clock_mono_ns(), stuck_ns);
			if (c != NULL)
				take_over(l, c);
		}
	}
	pthread_mutex_unlock(&srv->mon_lock);
	return NULL;
}

/* admin's stuck_fn: add the stuck calls to arr; returns how many. */
static int
stuck_json(void *arg, struct json_object *arr)
{
	struct server *srv = arg;
	struct loop_thread *t;
	int n = 0;

	pthread_mutex_lock(&srv->mon_lock);
	LIST_FOREACH(t, &srv->stuck, link) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "command",
		    json_object_new_string(t->command));
		json_object_object_add(o, "plugin",
		    json_object_new_string(t->plugin));
		json_object_object_add(o, "loop",
		    json_object_new_int(t->loop->index));
		json_object_object_add(o, "running_ms", json_object_new_int64(
		    (clock_mono_ns() - t->since_ns) / 1000000));
		json_object_array_add(arr, o);
		n++;
	}
	pthread_mutex_unlock(&srv->mon_lock);
	return n;
}

void
stuck_stop(struct server *srv)
{
	if (!srv->monitor_started)
		return;
	pthread_mutex_lock(&srv->mon_lock);
	srv->mon_stop = 1;
	pthread_cond_broadcast(&srv->mon_cond);
	pthread_mutex_unlock(&srv->mon_lock);
	pthread_join(srv->monitor, NULL);
	srv->monitor_started = 0;
}

int
stuck_start(struct server *srv)
{
	int err;

	if ((err = pthread_create(&srv->monitor, NULL, monitor_main, srv)) != 0)
		return -err;
	srv->monitor_started = 1;
	return 0;
}

int
stuck_wait(struct server *srv, int64_t deadline_ns)
{
	int n;

	pthread_mutex_lock(&srv->mon_lock);
	while (srv->n_stuck > 0) {
		struct timespec ts = clock_mono_ts(deadline_ns);

		if (pthread_cond_timedwait(&srv->mon_cond, &srv->mon_lock,
		    &ts) == ETIMEDOUT)
			break;
	}
	if ((n = srv->n_stuck) > 0)
		log_errorx("%d loop thread(s) still stuck in an inline call",
		    n);
	pthread_mutex_unlock(&srv->mon_lock);
	return n;
}

int
server_alive(struct server *srv, char *why, size_t whylen)
{
	int64_t now = clock_mono_ms(), limit = srv->cfg->inline_stuck_ms;
	int alive = 1;

	pthread_mutex_lock(&srv->mon_lock);
	if (srv->n_stuck > 0) {
		struct loop_thread *t = LIST_FIRST(&srv->stuck);

		snprintf(why, whylen, "%d thread(s) stuck in an inline call "
		    "(command %s of plugin %s on loop %d, for %lld ms)",
		    srv->n_stuck, t->command, t->plugin, t->loop->index,
		    (long long)((clock_mono_ns() - t->since_ns) / 1000000));
		alive = 0;
	}
	pthread_mutex_unlock(&srv->mon_lock);
	for (int i = 0; alive && i < srv->n_loops; i++) {
		int64_t beat = atomic_load_explicit(&srv->loops[i].beat_ms,
		    memory_order_relaxed);

		if (beat != 0 && now - beat >= limit) {
			snprintf(why, whylen, "event loop %d has not finished "
			    "a turn for %lld ms", i, (long long)(now - beat));
			alive = 0;
		}
	}
	return alive;
}
