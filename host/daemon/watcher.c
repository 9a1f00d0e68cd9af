/*
 * watcher.c - inotify on plugin_dir with a per-file debounce.
 *
 * `cp` produces create, several modify and close-write events; `mv`
 * produces one moved-to.  Every event for a plugin file name pushes that
 * name's deadline to now + debounce, so one copy is one reload.  A queue
 * overflow, which loses events, turns into a full rescan.
 */
#include "watcher.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "registry.h"

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | \
	IN_MOVED_FROM | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

/* A file name waiting for its writes to settle. */
struct pending {
	char *name;       /* owned */
	int64_t due_ms;   /* CLOCK_MONOTONIC */
};

struct watcher {
	struct registry *reg;
	char *dir;        /* owned */
	int debounce_ms;
	int ifd;          /* inotify */
	int stop_fd;      /* eventfd: written by watcher_stop */
	pthread_t thread;
	struct pending *pending; /* owned array */
	size_t n_pending, cap_pending;
	int64_t rescan_due_ms; /* -1: none */
};

/* (Re)arm the deadline of name.  On ENOMEM the change is lost until the
 * next event or rescan; that is logged. */
static void
touch(struct watcher *w, const char *name)
{
	int64_t due = clock_mono_ms() + w->debounce_ms;
	struct pending *p;

	for (size_t i = 0; i < w->n_pending; i++) {
		if (strcmp(w->pending[i].name, name) == 0) {
			w->pending[i].due_ms = due;
			return;
		}
	}
	if (w->n_pending == w->cap_pending) {
		size_t cap = w->cap_pending ? w->cap_pending * 2 : 8;

		if ((p = realloc(w->pending, cap * sizeof(*p))) == NULL) {
			log_errorx("watcher: out of memory; %s not reloaded",
			    name);
			return;
		}
		w->pending = p;
		w->cap_pending = cap;
	}
	if ((w->pending[w->n_pending].name = strdup(name)) == NULL) {
		log_errorx("watcher: out of memory; %s not reloaded", name);
		return;
	}
	w->pending[w->n_pending].due_ms = due;
	w->n_pending++;
}

/* Read what inotify has; returns -1 when the watch is gone. */
static int
read_events(struct watcher *w)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				log_warnx("watcher: inotify queue overflowed; "
				    "rescanning %s", w->dir);
				w->rescan_due_ms = clock_mono_ms() + w->debounce_ms;
				continue;
			}
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF |
			    IN_IGNORED)) {
				log_errorx("watcher: %s was removed or moved; "
				    "changes are no longer noticed (restart "
				    "cmdhostd, or use cmdhost reload)", w->dir);
				return -1;
			}
			if (ev->len > 0 && registry_is_plugin_file(ev->name))
				touch(w, ev->name);
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		log_error("watcher: read inotify");
		return -1;
	}
	return 0;
}

/* Sync every file whose deadline passed; returns the ms until the next
 * deadline, or -1 when nothing waits. */
static int
fire_due(struct watcher *w)
{
	int64_t now = clock_mono_ms(), next = -1;

	if (w->rescan_due_ms >= 0) {
		if (w->rescan_due_ms <= now) {
			w->rescan_due_ms = -1;
			registry_scan(w->reg, NULL);
		} else {
			next = w->rescan_due_ms - now;
		}
	}
	for (size_t i = 0; i < w->n_pending;) {
		struct pending *p = &w->pending[i];

		if (p->due_ms > now) {
			if (next < 0 || p->due_ms - now < next)
				next = p->due_ms - now;
			i++;
			continue;
		}
		registry_sync_file(w->reg, p->name, NULL);
		free(p->name);
		w->pending[i] = w->pending[--w->n_pending];
		/* The sync took time: look at the clock again. */
		now = clock_mono_ms();
	}
	return next < 0 ? -1 : (int)(next > INT_MAX ? INT_MAX : next);
}

static void *
watcher_main(void *arg)
{
	struct watcher *w = arg;
	int alive = 1;

	for (;;) {
		struct pollfd fds[2];
		int timeout = fire_due(w);

		fds[0].fd = w->stop_fd;
		fds[0].events = POLLIN;
		fds[1].fd = alive ? w->ifd : -1;
		fds[1].events = POLLIN;
		if (poll(fds, 2, timeout) < 0 && errno != EINTR) {
			log_error("watcher: poll");
			break;
		}
		if (fds[0].revents & POLLIN)
			break;
		if (alive && (fds[1].revents & POLLIN) && read_events(w) < 0)
			alive = 0;
	}
	return NULL;
}

struct watcher *
watcher_start(const char *dir, int debounce_ms, struct registry *reg,
    char *err, size_t errlen)
{
	struct watcher *w = calloc(1, sizeof(*w));

	if (w == NULL || (w->dir = strdup(dir)) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(w);
		return NULL;
	}
	w->reg = reg;
	w->debounce_ms = debounce_ms;
	w->rescan_due_ms = -1;
	w->stop_fd = -1;
	if ((w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		snprintf(err, errlen, "inotify_init1: %s", strerror(errno));
		goto fail;
	}
	if (inotify_add_watch(w->ifd, dir, WATCH_MASK | IN_ONLYDIR) < 0) {
		snprintf(err, errlen, "cannot watch %s: %s", dir,
		    strerror(errno));
		goto fail;
	}
	if ((w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if ((errno = pthread_create(&w->thread, NULL, watcher_main, w)) != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(errno));
		goto fail;
	}
	return w;
fail:
	if (w->ifd >= 0)
		close(w->ifd);
	if (w->stop_fd >= 0)
		close(w->stop_fd);
	free(w->dir);
	free(w);
	return NULL;
}

int
watcher_stop_until(struct watcher *w, int64_t deadline_ns)
{
	uint64_t one = 1;

	if (w == NULL)
		return 0;
	if (write(w->stop_fd, &one, sizeof(one)) < 0)
		log_warn("watcher: eventfd write");
	if (deadline_ns <= 0) {
		pthread_join(w->thread, NULL);
	} else {
		struct timespec ts = clock_wall_ts(deadline_ns);

		/* Its loads are bounded, so this is a second line of
		 * defence: left running, w is leaked on purpose. */
		if (pthread_timedjoin_np(w->thread, NULL, &ts) != 0) {
			log_errorx("watcher: its thread did not end in time; "
			    "left running");
			return -1;
		}
	}
	for (size_t i = 0; i < w->n_pending; i++)
		free(w->pending[i].name);
	free(w->pending);
	close(w->ifd);
	close(w->stop_fd);
	free(w->dir);
	free(w);
	return 0;
}

void
watcher_stop(struct watcher *w)
{
	(void)watcher_stop_until(w, 0);
}
