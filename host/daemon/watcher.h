/*
 * watcher.h - notice plugin files that appear, change or go, and tell the
 * registry once their writes have settled.
 *
 * One thread reads inotify events for plugin_dir, keeps a deadline per
 * file name (pushed back by every event: the debounce) and calls
 * registry_sync_file() when a deadline passes.  It loads nothing itself.
 */
#ifndef CMDHOST_WATCHER_H
#define CMDHOST_WATCHER_H

#include <stddef.h>
#include <stdint.h>

struct registry;
struct watcher;

/* Watch dir (borrowed string, copied) for reg (borrowed, must outlive the
 * watcher).  Returns a new running watcher (watcher_stop), or NULL with
 * the reason in err. */
struct watcher *watcher_start(const char *dir, int debounce_ms,
    struct registry *reg, char *err, size_t errlen);

/* Stop the thread and free the watcher; changes still waiting for their
 * debounce are dropped.  NULL is ok. */
void watcher_stop(struct watcher *w);

/* watcher_stop(), waiting for the thread until deadline_ns
 * (CLOCK_MONOTONIC; 0: as long as it takes).  Returns 0, or -1 if it did
 * not end in time: then it is left running and w is not freed (nor may
 * reg be). */
int watcher_stop_until(struct watcher *w, int64_t deadline_ns);

#endif /* CMDHOST_WATCHER_H */
