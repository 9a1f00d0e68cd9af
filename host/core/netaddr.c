/*
 * netaddr.c - parse and format the listening address of [host]
 * http_listen.  inet_pton only: a host name is an error, so a start never
 * waits on a resolver and the address bound is the one written.
 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* The decimal port at s (the whole of it), 0..65535, or -1. */
static int
parse_port(const char *s)
{
	long v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v <= 65535 ? (int)v : -1;
}

int
netaddr_parse(const char *text, struct netaddr *a, char *err, size_t errlen)
{
	char host[64];
	const char *colon;
	size_t hlen;
	int port;

	memset(a, 0, sizeof(*a));
	if (text[0] == '/') {
		struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;

		if (strlen(text) >= sizeof(sun->sun_path) ||
		    strlen(text) >= sizeof(a->path)) {
			snprintf(err, errlen, "'%s': a Unix socket path must "
			    "be shorter than %zu bytes", text,
			    sizeof(sun->sun_path));
			return -1;
		}
		a->family = AF_UNIX;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, text, strlen(text) + 1);
		memcpy(a->path, text, strlen(text) + 1);
		a->len = (socklen_t)sizeof(*sun);
		return 0;
	}
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':')
			goto bad;
		hlen = (size_t)(close - text - 1);
		colon = close + 1;
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad;
		memcpy(host, text + 1, hlen);
	} else {
		if ((colon = strrchr(text, ':')) == NULL)
			goto bad;
		hlen = (size_t)(colon - text);
		if (hlen == 0 || hlen >= sizeof(host) ||
		    memchr(text, ':', hlen) != NULL)
			goto bad;
		memcpy(host, text, hlen);
	}
	host[hlen] = '\0';
	if ((port = parse_port(colon + 1)) < 0) {
		snprintf(err, errlen, "'%s': the port must be a number from 0 "
		    "to 65535", text);
		return -1;
	}
	if (text[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			goto bad;
		a->family = s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		a->len = (socklen_t)sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto bad;
		a->family = s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		a->len = (socklen_t)sizeof(*s4);
	}
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not IPv4:PORT, [IPv6]:PORT or an "
	    "absolute Unix socket path (addresses are literal: no host "
	    "names)", text);
	return -1;
}

char *
netaddr_format(const struct netaddr *a, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (a->family == AF_UNIX) {
		snprintf(out, outlen, "%s", a->path);
	} else if (a->family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&a->ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)&a->ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s:%u", host, ntohs(s4->sin_port));
	}
	return out;
}
