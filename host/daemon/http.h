/*
 * http.h - the optional HTTP monitoring endpoint ([host] http_listen):
 * GET /metrics, /healthz, /readyz and / (an HTML status page), served by
 * libmicrohttpd on a thread of its own.  It only reads the admin views
 * (admin_stats, admin_health, view_plugins) that host.stats and
 * host.health answer from; it never runs a command and never touches an
 * event loop.
 */
#ifndef CMDHOST_HTTP_H
#define CMDHOST_HTTP_H

#include <stddef.h>

struct admin;
struct config;
struct http;

/*
 * Bind cfg->http_listen (borrowed; must not be empty) and start serving:
 * called before any plugin is loaded, so a bind failure stops start-up
 * first.  Until http_set_admin() every route but a 404 answers 503
 * ("starting").  A Unix socket path is bound like [host] socket (mode
 * socket_mode, a stale file replaced, a live one never stolen) and
 * removed by http_stop().  Returns a new endpoint (http_stop), or NULL
 * with the reason in err.
 */
struct http *http_start(const struct config *cfg, char *err, size_t errlen);

/* The address bound, as text ("127.0.0.1:41234" with the port the kernel
 * picked for port 0, "[::1]:9464", or the socket path).  Borrowed: valid
 * until http_stop(). */
const char *http_address(const struct http *h);

/* Answer from admin (borrowed; it must stay valid until http_stop()).
 * Any thread. */
void http_set_admin(struct http *h, const struct admin *a);

/* What /readyz says: HTTP_STARTING (503), HTTP_READY (200; once plugins
 * are loaded and the socket listens), HTTP_STOPPING (503).  Any thread;
 * h may be NULL. */
enum http_state { HTTP_STARTING, HTTP_READY, HTTP_STOPPING };
void http_set_state(struct http *h, enum http_state state);

/* Stop serving (requests being answered finish first), close the socket,
 * remove a Unix socket's file, free h.  NULL is ok. */
void http_stop(struct http *h);

#endif /* CMDHOST_HTTP_H */
