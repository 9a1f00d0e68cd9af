/*
 * listener.h - the daemon's listening Unix socket: bound by the daemon,
 * or handed over by systemd (socket activation, sd_listen_fds(3)'s
 * LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES).
 */
#ifndef CMDHOST_LISTENER_H
#define CMDHOST_LISTENER_H

#include <stddef.h>
#include <sys/types.h>

/* The listening socket and what closing it must do. */
struct listener {
	int fd;                   /* NONBLOCK|CLOEXEC, or -1 */
	int activated;            /* passed by systemd: never unlinked */
	int listening;            /* listen() was called (or systemd did) */
	dev_t dev;                /* the file bound, so only ours is removed */
	ino_t ino;
	char path[108];           /* the file's path ("" if abstract) */
};

/*
 * Claim the daemon's socket, before any plugin is loaded (so that a bad
 * socket directory stops start-up before plugins touch anything):
 *  - started by systemd with sockets (LISTEN_PID is this process and
 *    LISTEN_FDS >= 1): take the passed Unix stream socket, the one named
 *    "cmdhost" in LISTEN_FDNAMES if several are (then the others are
 *    closed), made NONBLOCK; the LISTEN_* variables are removed from the
 *    environment.  `path` is not bound.
 *  - otherwise bind a new socket at path (borrowed) with exactly `mode`
 *    (the umask is set around bind: there is no moment when it is more
 *    open), after checking that no live daemon answers there (a stale
 *    socket file is removed; anything else there is left alone).  It is
 *    not listening yet: listener_listen() does that once plugins are
 *    loaded, so a client that can connect can be served.
 * Returns 0 with *l filled, or -1 with the reason in err (*l holds
 * nothing to close then).
 */
int listener_open(struct listener *l, const char *path, mode_t mode,
    char *err, size_t errlen);

/* listen() on a socket the daemon bound (a no-op for a passed one).
 * Returns 0, or -1 with the reason in err. */
int listener_listen(struct listener *l, char *err, size_t errlen);

/* Close the socket (fd -1: nothing) and remove its file if the daemon
 * bound it and it is still the same file; a passed socket's file stays
 * for systemd (and the next start) to use. */
void listener_close(struct listener *l);

#endif /* CMDHOST_LISTENER_H */
