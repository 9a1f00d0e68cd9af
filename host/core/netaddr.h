/*
 * netaddr.h - a listening address as text: "IPv4:PORT", "[IPv6]:PORT" or
 * an absolute Unix socket path, for [host] http_listen.  Literal
 * addresses only: nothing here resolves a host name, and nothing logs.
 */
#ifndef CMDHOST_NETADDR_H
#define CMDHOST_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

struct netaddr {
	int family;                  /* AF_INET, AF_INET6 or AF_UNIX */
	struct sockaddr_storage ss;  /* AF_INET/AF_INET6: address and port */
	socklen_t len;               /* of ss */
	char path[108];              /* AF_UNIX: the path */
};

/*
 * Parse text (borrowed) into *a: "127.0.0.1:9464", "[::1]:9464" (port
 * 0..65535; 0 lets the kernel pick one), or a path starting with '/'
 * that fits sun_path.  Returns 0, or -1 with the reason in err.
 */
int netaddr_parse(const char *text, struct netaddr *a, char *err,
    size_t errlen);

/* Write a as text into out ("127.0.0.1:9464", "[::1]:9464", the path):
 * the port is the one in a->ss, so a bound socket's getsockname() shows
 * the port the kernel picked.  Returns out. */
char *netaddr_format(const struct netaddr *a, char *out, size_t outlen);

#endif /* CMDHOST_NETADDR_H */
