/*
 * sdnotify.h - tell systemd how the daemon is doing (sd_notify(3)'s
 * datagram protocol to $NOTIFY_SOCKET, without linking libsystemd), and
 * the watchdog thread that pings it only while the daemon is alive.
 *
 * Every function is a no-op when the daemon was not started with
 * $NOTIFY_SOCKET: a daemon run by hand behaves as before.
 */
#ifndef CMDHOST_SDNOTIFY_H
#define CMDHOST_SDNOTIFY_H

#include <stddef.h>
#include <stdint.h>

/*
 * Read $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace),
 * $WATCHDOG_USEC and $WATCHDOG_PID, then remove them (and systemd's
 * LISTEN_* are left to listener.c) from the environment so that plugins
 * and the processes they start never notify in the daemon's name.  Call
 * once, before any thread starts (it changes the environment).  Returns
 * 1 when notifications go somewhere, 0 when $NOTIFY_SOCKET is not set,
 * -1 with the reason in err when it is set but unusable.
 */
int sdnotify_open(char *err, size_t errlen);

/* Send one notification, e.g. "READY=1\nSTATUS=...".  text is borrowed.
 * Returns 0 (also when notifications are off) or a negative errno.
 * Thread-safe (one sendto). */
int sdnotify_send(const char *text);

/* sdnotify_send() of a formatted text (at most 1 KiB). */
int sdnotify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "RELOADING=1" with MONOTONIC_USEC=now (systemd 253 wants it; 252
 * ignores it). */
int sdnotify_reloading(void);

/* The watchdog interval systemd asked for ($WATCHDOG_USEC, for this
 * process), in microseconds, or 0 when there is none. */
int64_t sdnotify_watchdog_usec(void);

/*
 * Start the thread that sends WATCHDOG=1 every half of the watchdog
 * interval, but only when alive(arg) returns non-zero at that moment
 * (otherwise the ping is withheld and, past WatchdogSec, systemd acts).
 * why (a static or borrowed buffer of alive's) is logged once when pings
 * stop and again when they resume.  A no-op returning 0 when there is no
 * watchdog.  arg is borrowed and must outlive sdnotify_watchdog_stop().
 * Returns 0 or a negative errno.
 */
typedef int (*sdnotify_alive_fn)(void *arg, char *why, size_t whylen);
int sdnotify_watchdog_start(sdnotify_alive_fn alive, void *arg);

/* Stop the watchdog thread (waits for it); fine if never started. */
void sdnotify_watchdog_stop(void);

/* Close the notification socket (after STOPPING=1); fine to call twice. */
void sdnotify_close(void);

#endif /* CMDHOST_SDNOTIFY_H */
