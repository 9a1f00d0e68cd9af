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

#endif /* CMDHOST_WATCHER_H */
