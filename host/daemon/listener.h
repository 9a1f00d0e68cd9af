/*
 * listener.h - open and close the daemon's listening Unix socket.
 */
#ifndef CMDHOST_LISTENER_H
#define CMDHOST_LISTENER_H

#include <stddef.h>
#include <sys/types.h>

/* Which file the socket was bound to, so that only ours is removed. */
struct listener_id {
	dev_t dev;
	ino_t ino;
};

/*
 * Listen on a new socket at path (borrowed), created with exactly `mode`
 * (the umask is set around bind: there is no moment when it is more
 * open), after checking that no live daemon answers there (a stale
 * socket file is removed; anything else there is left alone).  Returns
 * the descriptor (NONBLOCK|CLOEXEC) with the file's identity in *id, or
 * -1 with the reason in err.
 */
int listener_open(const char *path, mode_t mode, struct listener_id *id,
    char *err, size_t errlen);

/* Close fd (-1: nothing) and remove path if it is still the file id
 * names. */
void listener_close(int fd, const char *path, const struct listener_id *id);

#endif /* CMDHOST_LISTENER_H */
