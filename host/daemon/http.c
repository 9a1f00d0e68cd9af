/*
 * http.c - the HTTP monitoring endpoint on libmicrohttpd: /metrics (the
 * Prometheus text of core/prom.c), /healthz and /readyz, and / (a status
 * page in HTML).
 *
 * libmicrohttpd does the HTTP (parsing, limits, timeouts) on its own
 * internal polling thread; each answer is built there from the same
 * locked views host.stats and host.health use, so a slow or hostile HTTP
 * client costs that thread and never an event loop or a command.  Nothing
 * here parses HTTP by hand.
 */
#include "http.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/prom.h"
#include "core/version.h"
#include "admin.h"
#include "listener.h"
#include "views.h"

#define PROM_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_TYPE "text/plain; charset=utf-8"
#define HTML_TYPE "text/html; charset=utf-8"

struct http {
	struct MHD_Daemon *mhd;
	struct listener unix_lst;   /* a Unix socket's file (fd -1: none) */
	int tcp_fd;                 /* or a TCP socket (-1: none) */
	_Atomic(const struct admin *) admin; /* borrowed, NULL: starting */
	atomic_int state;           /* enum http_state */
	char service[72];           /* the title of the status page */
	char address[160];
};

/* libmicrohttpd's own complaints (a client that sent garbage, a closed
 * connection): one debug line each, so that hostile clients cannot fill
 * the log. */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	if (!log_enabled(LOGL_DEBUG))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_debug("http: %s", line);
}

/*
 * Queue a response of `status` with `len` bytes at data: with `owned`
 * the bytes were malloc'd and are taken over (freed here on failure too),
 * else they are static.  HEAD gets the headers only (libmicrohttpd drops
 * the body).
 */
static enum MHD_Result
respond(struct MHD_Connection *c, unsigned status, const char *type,
    void *data, size_t len, int owned)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer(len, data, owned ?
	    MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (r == NULL) {
		if (owned)
			free(data);
		return MHD_NO;
	}
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
	    "no-store");
	(void)MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (strcmp(type, HTML_TYPE) == 0)
		(void)MHD_add_response_header(r, "Content-Security-Policy",
		    "default-src 'none'; style-src 'unsafe-inline'");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		(void)MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
		    "GET, HEAD");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	return respond(c, status, TEXT_TYPE, (void *)text, strlen(text), 0);
}

/* Queue b's bytes (taken: b is left empty) as the body. */
static enum MHD_Result
respond_buf(struct MHD_Connection *c, unsigned status, const char *type,
    struct buf *b)
{
	void *data;
	size_t len = buf_size(b);

	if (b->data == NULL)
		return respond(c, status, type, (void *)"", 0, 0);
	if (b->start > 0)
		memmove(b->data, b->data + b->start, len);
	data = b->data;
	*b = (struct buf)BUF_INIT;
	return respond(c, status, type, data, len, 1);
}

/* ---------------------------------------------------------- routes */

static enum MHD_Result
route_metrics(struct MHD_Connection *c, const struct admin *a)
{
	struct json_object *stats = admin_stats(a);
	struct buf b = BUF_INIT;
	int rc = prom_format(&b, stats);

	json_object_put(stats);
	if (rc < 0) {
		buf_free(&b);
		return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "out of memory\n");
	}
	return respond_buf(c, MHD_HTTP_OK, PROM_TYPE, &b);
}

/* 200 "ok", or 503 "degraded" and one reason a line. */
static enum MHD_Result
route_healthz(struct MHD_Connection *c, const struct admin *a)
{
	struct json_object *h = admin_health(a), *reasons;
	const char *status = json_object_get_string(json_object_object_get(h,
	    "status"));
	int ok = status != NULL && strcmp(status, "ok") == 0;
	struct buf b = BUF_INIT;
	int rc;

	rc = buf_printf(&b, "%s\n", ok ? "ok" : "degraded");
	reasons = json_object_object_get(h, "reasons");
	for (size_t i = 0; rc == 0 && i < json_object_array_length(reasons);
	    i++)
		rc = buf_printf(&b, "%s\n", json_object_get_string(
		    json_object_array_get_idx(reasons, i)));
	json_object_put(h);
	if (rc < 0) {
		buf_free(&b);
		return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "out of memory\n");
	}
	return respond_buf(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
	    TEXT_TYPE, &b);
}

/* ------------------------------------------------- the status page */

/*
 * Append s (borrowed; NULL is "") to b with every character HTML gives a
 * meaning escaped, control bytes dropped and bytes that are not strict
 * UTF-8 replaced by U+FFFD: plugin names, versions and errors are the
 * plugins' text, never markup.
 */
static void
html_put(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p);

	while (n > 0) {
		size_t k = buf_utf8_seq(p, n);

		switch (*p) {
		case '&': buf_puts(b, "&amp;"); break;
		case '<': buf_puts(b, "&lt;"); break;
		case '>': buf_puts(b, "&gt;"); break;
		case '"': buf_puts(b, "&quot;"); break;
		case '\'': buf_puts(b, "&#39;"); break;
		default:
			if (k == 0)
				buf_puts(b, "\xef\xbf\xbd");
			else if (*p >= 0x20 && *p != 0x7f)
				buf_put(b, p, k);
			else if (*p == '\n' || *p == '\t')
				buf_put(b, " ", 1);
		}
		if (k == 0)
			k = 1;
		p += k;
		n -= k;
	}
}

/* A member of o as text for the page ("" when absent or null). */
static const char *
member(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return "";
	return json_object_get_string(v);
}

/* A cell holding a json value's text, escaped. */
static void
cell(struct buf *b, const char *text)
{
	buf_puts(b, "<td>");
	html_put(b, text);
	buf_puts(b, "</td>");
}

static void
cell_u64(struct buf *b, uint64_t v)
{
	buf_printf(b, "<td class=\"n\">%llu</td>", (unsigned long long)v);
}

static uint64_t
u64_at(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && v != NULL ?
	    (uint64_t)json_object_get_int64(v) : 0;
}

static void
page_plugins(struct buf *b, struct json_object *plugins)
{
	buf_puts(b, "<h2>Plugins</h2>\n<table id=\"plugins\">\n<thead><tr>"
	    "<th>Plugin</th><th>Version</th><th>State</th><th>File</th>"
	    "<th>Generation</th><th>Loaded at</th><th>Commands</th>"
	    "<th>SHA-256</th><th>Error</th></tr></thead>\n<tbody>\n");
	for (size_t i = 0; i < json_object_array_length(plugins); i++) {
		struct json_object *p = json_object_array_get_idx(plugins, i);
		struct json_object *cmds = json_object_object_get(p,
		    "commands");
		const char *state = member(p, "state");

		buf_puts(b, "<tr class=\"plugin\">");
		cell(b, member(p, "name"));
		cell(b, member(p, "version"));
		buf_printf(b, "<td class=\"%s\">", strcmp(state, "loaded") ==
		    0 ? "ok" : "bad");
		html_put(b, state);
		buf_puts(b, "</td>");
		cell(b, member(p, "file"));
		cell(b, member(p, "generation"));
		cell(b, member(p, "loaded_at"));
		buf_puts(b, "<td>");
		for (size_t k = 0; k < json_object_array_length(cmds); k++) {
			if (k > 0)
				buf_puts(b, ", ");
			html_put(b, member(json_object_array_get_idx(cmds, k),
			    "name"));
		}
		buf_puts(b, "</td><td class=\"hash\">");
		html_put(b, member(p, "sha256"));
		buf_puts(b, "</td>");
		cell(b, member(p, "error"));
		buf_puts(b, "</tr>\n");
	}
	buf_puts(b, "</tbody>\n</table>\n");
}

/* Calls of each status class (2, 4 or 5) in a command's "status". */
static uint64_t
class_calls(struct json_object *status, char cls)
{
	uint64_t n = 0;

	json_object_object_foreach(status, code, v)
		if (code[0] == cls && strlen(code) == 3)
			n += (uint64_t)json_object_get_int64(v);
	return n;
}

static void
page_commands(struct buf *b, struct json_object *commands)
{
	buf_puts(b, "<h2>Commands</h2>\n<table id=\"commands\">\n<thead><tr>"
	    "<th>Command</th><th>Calls</th><th>2xx</th><th>4xx</th>"
	    "<th>5xx</th><th>Timeouts</th><th>In flight</th>"
	    "<th>p50 µs</th><th>p90 µs</th><th>p99 µs</th><th>max µs</th>"
	    "</tr></thead>\n<tbody>\n");
	json_object_object_foreach(commands, name, s) {
		struct json_object *st = json_object_object_get(s, "status");
		struct json_object *lat = json_object_object_get(s,
		    "latency_us");

		buf_puts(b, "<tr class=\"command\">");
		cell(b, name);
		cell_u64(b, u64_at(s, "calls"));
		cell_u64(b, class_calls(st, '2'));
		cell_u64(b, class_calls(st, '4'));
		cell_u64(b, class_calls(st, '5'));
		cell_u64(b, u64_at(s, "timeouts"));
		cell_u64(b, u64_at(s, "in_flight"));
		cell_u64(b, u64_at(lat, "p50"));
		cell_u64(b, u64_at(lat, "p90"));
		cell_u64(b, u64_at(lat, "p99"));
		cell_u64(b, u64_at(lat, "max"));
		buf_puts(b, "</tr>\n");
	}
	buf_puts(b, "</tbody>\n</table>\n");
}

static enum MHD_Result
route_page(struct MHD_Connection *c, const struct http *h,
    const struct admin *a)
{
	struct json_object *health = admin_health(a);
	struct json_object *stats = admin_stats(a);
	struct json_object *plugins = view_plugins(a->reg);
	struct json_object *reasons = json_object_object_get(health,
	    "reasons");
	const char *status = member(health, "status");
	struct buf b = BUF_INIT;

	buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
	    "<meta charset=\"utf-8\">\n<title>");
	html_put(&b, h->service);
	buf_puts(&b, " — cmdhostd</title>\n<style>\n"
	    "body{font-family:sans-serif;margin:1.5em;color:#222}\n"
	    "table{border-collapse:collapse;margin-bottom:1.5em}\n"
	    "th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left}\n"
	    "th{background:#eee}\ntd.n{text-align:right}\n"
	    "td{vertical-align:top}\ntd.hash{font-family:monospace;font-size:.8em;"
	    "word-break:break-all;max-width:20em}\n"
	    ".ok{color:#070}\n.bad{color:#b00;font-weight:bold}\n"
	    "</style>\n</head>\n<body>\n<h1>");
	html_put(&b, h->service);
	buf_puts(&b, "</h1>\n<p>cmdhostd ");
	html_put(&b, CMDHOST_VERSION);
	buf_printf(&b, ", up %llu s; health: <span id=\"health\" class=\"%s\">",
	    (unsigned long long)u64_at(health, "uptime_s"),
	    strcmp(status, "ok") == 0 ? "ok" : "bad");
	html_put(&b, status);
	buf_puts(&b, "</span>; <a href=\"/metrics\">metrics</a></p>\n");
	if (json_object_array_length(reasons) > 0) {
		buf_puts(&b, "<ul id=\"reasons\">\n");
		for (size_t i = 0; i < json_object_array_length(reasons); i++) {
			buf_puts(&b, "<li>");
			html_put(&b, json_object_get_string(
			    json_object_array_get_idx(reasons, i)));
			buf_puts(&b, "</li>\n");
		}
		buf_puts(&b, "</ul>\n");
	}
	page_plugins(&b, plugins);
	page_commands(&b, json_object_object_get(stats, "commands"));
	/* Short of memory an append may leave a piece out (buf leaves
	 * itself as it was); when the last one fails, answer 500. */
	if (buf_puts(&b, "</body>\n</html>\n") < 0) {
		buf_free(&b);
		b = (struct buf)BUF_INIT;
	}
	json_object_put(plugins);
	json_object_put(stats);
	json_object_put(health);
	if (b.data == NULL)
		return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "out of memory\n");
	return respond_buf(c, MHD_HTTP_OK, HTML_TYPE, &b);
}

/* ---------------------------------------------------------- the handler */

/*
 * libmicrohttpd's access handler: one answer per request, on the first
 * call (GET and HEAD have no body to wait for; a request that sends one
 * is answered 405 and libmicrohttpd closes it).
 */
static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct http *h = cls;
	const struct admin *a;
	int known;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	known = strcmp(url, "/") == 0 || strcmp(url, "/metrics") == 0 ||
	    strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0;
	if (!known)
		return respond_text(c, MHD_HTTP_NOT_FOUND, "not found: this "
		    "endpoint serves /, /metrics, /healthz and /readyz\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "method not allowed: GET or HEAD\n");
	if (strcmp(url, "/readyz") == 0) {
		int st = atomic_load(&h->state);

		return st == HTTP_READY ? respond_text(c, MHD_HTTP_OK,
		    "ready\n") : respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
		    st == HTTP_STOPPING ? "stopping\n" : "starting\n");
	}
	if ((a = atomic_load(&h->admin)) == NULL)
		return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
		    "starting: plugins are being loaded\n");
	if (strcmp(url, "/metrics") == 0)
		return route_metrics(c, a);
	if (strcmp(url, "/healthz") == 0)
		return route_healthz(c, a);
	return route_page(c, h, a);
}

/* ------------------------------------------------------- the socket */

/* A TCP listening socket on a, NONBLOCK|CLOEXEC; a's port becomes the
 * one bound.  Returns the fd, or -1 with the reason in err. */
static int
tcp_open(struct netaddr *a, const char *text, char *err, size_t errlen)
{
	int fd, one = 1;
	socklen_t len = sizeof(a->ss);

	fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "http_listen %s: socket: %s", text,
		    strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
		    sizeof(one));
	if (bind(fd, (struct sockaddr *)&a->ss, a->len) < 0) {
		snprintf(err, errlen, "http_listen %s: bind: %s", text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a->ss, &len) < 0) {
		snprintf(err, errlen, "http_listen %s: listen: %s", text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct http *
http_start(const struct config *cfg, char *err, size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));
	struct netaddr a;
	/* ITC: http_stop() quiesces it to take the socket back. */
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC |
	    MHD_USE_ERROR_LOG;
	char why[700];
	int fd;

	if (h == NULL) {
		snprintf(err, errlen, "http: out of memory");
		return NULL;
	}
	h->unix_lst.fd = -1;
	h->tcp_fd = -1;
	snprintf(h->service, sizeof(h->service), "%s", cfg->service);
	if (netaddr_parse(cfg->http_listen, &a, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "http_listen: %s", why);
		free(h);
		return NULL;
	}
	if (a.family == AF_UNIX) {
		if (listener_open(&h->unix_lst, a.path, cfg->socket_mode, why,
		    sizeof(why)) < 0 || listener_listen(&h->unix_lst, why,
		    sizeof(why)) < 0) {
			snprintf(err, errlen, "http_listen: %s", why);
			listener_close(&h->unix_lst);
			free(h);
			return NULL;
		}
		fd = h->unix_lst.fd;
	} else if ((fd = tcp_open(&a, cfg->http_listen, err, errlen)) < 0) {
		free(h);
		return NULL;
	}
	if (a.family != AF_UNIX)
		h->tcp_fd = fd;
	if (a.family == AF_INET6)
		flags |= MHD_USE_IPv6;
	netaddr_format(&a, h->address, sizeof(h->address));
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, h,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	    MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)cfg->http_max_connections,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, a.family == AF_UNIX ? 0u :
	    (unsigned int)cfg->http_max_connections_per_ip,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->http_timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->http_memory_bytes,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, (void *)NULL,
	    MHD_OPTION_END);
	if (h->mhd == NULL) {
		snprintf(err, errlen, "http_listen %s: libmicrohttpd did not "
		    "start", cfg->http_listen);
		if (a.family == AF_UNIX)
			listener_close(&h->unix_lst);
		else
			close(fd);
		free(h);
		return NULL;
	}
	return h;
}

const char *
http_address(const struct http *h)
{
	return h->address;
}

void
http_set_admin(struct http *h, const struct admin *a)
{
	if (h != NULL)
		atomic_store(&h->admin, a);
}

void
http_set_state(struct http *h, enum http_state state)
{
	if (h != NULL)
		atomic_store(&h->state, (int)state);
}

void
http_stop(struct http *h)
{
	if (h == NULL)
		return;
	/* Take the listening socket back first (libmicrohttpd leaves a
	 * quiesced one open), then join its thread. */
	(void)MHD_quiesce_daemon(h->mhd);
	MHD_stop_daemon(h->mhd);
	if (h->unix_lst.fd >= 0)
		listener_close(&h->unix_lst); /* and removes its file */
	else if (h->tcp_fd >= 0)
		close(h->tcp_fd);
	free(h);
}
