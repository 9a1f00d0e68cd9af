/*
 * ipc.h - the messages between cmdhostd and its plugin workers
 * (cmdhost-worker), and how they travel: one message per SOCK_SEQPACKET
 * record; a message too big for one record travels in a sealed memfd
 * whose descriptor the record carries (docs/isolation.md says why).
 *
 * This file only encodes and moves bytes: it never logs, and it knows
 * nothing of calls, pools or processes.
 */
#ifndef CMDHOST_IPC_H
#define CMDHOST_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmdhost/plugin.h>

struct config;
struct generation;

/* The worker's descriptors, set up by whoever spawns it. */
#define IPC_FD_SOCK 3    /* the SEQPACKET socket to the daemon */
#define IPC_FD_PLUGIN 4  /* the generation's private copy (read only) */

/* Exit statuses of a worker that are not crashes. */
#define IPC_EXIT_OK 0
#define IPC_EXIT_SETUP 70   /* bad descriptors or setup message */
#define IPC_EXIT_MEMORY 75  /* went past worker_memory_bytes */

/* Records larger than this travel in a memfd. */
#define IPC_INLINE_MAX 65536

enum ipc_type {
	IPC_SETUP = 1,   /* daemon -> worker: its config and limits */
	IPC_READY,       /* worker -> daemon: loaded (or why not) */
	IPC_CALL,        /* daemon -> worker: run one call */
	IPC_REPLY,       /* worker -> daemon: one call's result */
	IPC_QUIT,        /* daemon -> worker: finish calls, fini, exit */
	IPC_BIG          /* a record whose message is in the memfd it carries */
};

/* A message being written: grows as needed; a failed growth is
 * remembered (oom) and makes ipc_send() fail. */
struct ipc_msg {
	char *buf;      /* owned */
	size_t len, cap;
	int oom;
};

/* A message being read: borrows the bytes; a read past the end sets bad
 * and returns zeros / NULL from then on. */
struct ipc_rd {
	const char *p;
	size_t len, off;
	int bad;
};

/* Start msg (the caller's memory) as a message of type `type`. */
void ipc_msg_init(struct ipc_msg *msg, uint32_t type);
void ipc_msg_fini(struct ipc_msg *msg);
void ipc_put_u32(struct ipc_msg *msg, uint32_t v);
void ipc_put_i64(struct ipc_msg *msg, int64_t v);
/* s may be NULL (read back as NULL); len bytes of s are copied. */
void ipc_put_str(struct ipc_msg *msg, const char *s, size_t len);
void ipc_put_cstr(struct ipc_msg *msg, const char *s);

/* Read msg (borrowed bytes) from its start: returns its type, or 0 when
 * it is too short. */
uint32_t ipc_rd_init(struct ipc_rd *rd, const char *buf, size_t len);
uint32_t ipc_get_u32(struct ipc_rd *rd);
int64_t ipc_get_i64(struct ipc_rd *rd);
/* A string: a NUL-terminated pointer into the message (the writer put a
 * NUL after it), or NULL; *len (if not NULL) gets its length. */
const char *ipc_get_str(struct ipc_rd *rd, size_t *len);

/* Send msg on sock (flags: MSG_DONTWAIT or 0).  Returns 0, or a negative
 * errno (-EAGAIN: nothing was sent). */
int ipc_send(int sock, const struct ipc_msg *msg, int flags);

/* Receive one message from sock into *buf (grown as needed; owned by the
 * caller, free it) and *len.  Returns 1, 0 at end of file (the peer
 * closed or died), or a negative errno (-EAGAIN with MSG_DONTWAIT). */
int ipc_recv(int sock, int flags, char **buf, size_t *cap, size_t *len);

/* Make a sealed, read-only-from-now copy of what fd holds from offset 0
 * (at most max bytes) in a new memfd, and hash it like loader_hash_fd().
 * Returns the memfd (close it) or a negative errno, with the reason in
 * err. */
int ipc_copy_fd(int fd, size_t max, uint64_t *hash, char *err,
    size_t errlen);

/*
 * The worker's READY: encode what the loaded generation g (borrowed)
 * registered, or on failure (g NULL) the reason err.
 */
void ipc_put_ready(struct ipc_msg *msg, const struct generation *g,
    const char *err);

/*
 * Decode a READY message into a new generation that has the descriptor
 * and the command table (names, summaries, fields and flags owned by it:
 * g->meta_owned) but no code: handle NULL, every command's validate NULL
 * and execute `stub`.  file is copied.  Returns 0 and the generation
 * (one reference, the caller's) in *out; or -1 with the worker's reason
 * (or a decoding one) in err.
 */
int ipc_get_ready(struct ipc_rd *rd, const char *file,
    cmdhost_execute_fn stub, struct generation **out, char *err,
    size_t errlen);

#endif /* CMDHOST_IPC_H */
