/*
 * server.h - the listening socket and the event loops that serve it.
 *
 * Each of `workers` threads runs its own epoll loop: it accepts connections
 * (EPOLLEXCLUSIVE on the shared listening socket), frames lines, parses
 * requests, dispatches them and writes the replies of each connection in
 * request order.  The server never loads plugins and never exits the
 * process.
 */
#ifndef CMDHOST_SERVER_H
#define CMDHOST_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct admin;
struct config;
struct daemon_stats;
struct listener;
struct dispatch;
struct registry;
struct server;

/*
 * A server on the socket lst (from listener_open(): the server takes it
 * over, even on failure, and sets lst->fd to -1).  Returns a new server
 * (server_free), or NULL with the reason in err.  The other pointers are
 * borrowed and must outlive the server.
 */
struct server *server_new(const struct config *cfg, struct registry *reg,
    struct dispatch *disp, struct daemon_stats *stats, struct listener *lst,
    char *err, size_t errlen);

/* listen() on the socket (listener_listen) and start the loop threads.
 * Returns 0 or a negative errno (a failed listen is logged). */
int server_start(struct server *srv);

/*
 * Does every event loop make progress?  True when each loop is waiting
 * for events or began its current turn less than inline_stuck_ms ago,
 * and no thread is left in a stuck inline call (stuck.c).  Otherwise 0
 * with what is stuck in why.  Any thread; what the systemd watchdog
 * asks before each ping.
 */
int server_alive(struct server *srv, char *why, size_t whylen);

/* The admin context of the loops (borrowed, valid until server_free):
 * the HTTP endpoint answers from the same views. */
const struct admin *server_admin(const struct server *srv);

/* Stop accepting, answer new requests 503, let in-flight calls finish
 * until deadline_ns (CLOCK_MONOTONIC), then answer what is left with 503,
 * close every connection and join the loops.  Returns 0, or -1 when a loop
 * is stuck in an inline call 700 ms past the deadline (then the server
 * must not be freed). */
int server_stop(struct server *srv, int64_t deadline_ns);

/* host.executions answers from wf (borrowed, may be NULL: no workflows);
 * before server_start(). */
struct wf_engine;
void server_set_workflows(struct server *srv, struct wf_engine *wf);

/* Close the listening socket and remove its file if it is still ours. */
void server_close(struct server *srv);

/* Free the server after server_stop(), once dispatch_stop() returned 0
 * (no call runs any more) and before dispatch_free().  NULL is ok. */
void server_free(struct server *srv);

#endif /* CMDHOST_SERVER_H */
