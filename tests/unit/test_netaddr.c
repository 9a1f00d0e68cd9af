/*
 * test_netaddr.c - http_listen's addresses: 1.1 IPv4, 1.2 IPv6 in
 * brackets, 1.3 a Unix path, 2.x what is refused (no port, a port out of
 * range, a host name, IPv6 without brackets, a relative or too long
 * path), 3.1 config_load() says file:line for a bad value.
 */
#include <criterion/criterion.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/netaddr.h"

static void
good(const char *text, int family, const char *shown)
{
	struct netaddr a;
	char err[512] = "", out[160];

	cr_assert_eq(netaddr_parse(text, &a, err, sizeof(err)), 0, "%s: %s",
	    text, err);
	cr_assert_eq(a.family, family, "%s", text);
	cr_assert_str_eq(netaddr_format(&a, out, sizeof(out)), shown);
}

static void
bad(const char *text, const char *why)
{
	struct netaddr a;
	char err[512] = "";

	cr_assert_eq(netaddr_parse(text, &a, err, sizeof(err)), -1, "%s",
	    text);
	cr_assert(strstr(err, why) != NULL, "%s: %s", text, err);
}

/* 1.1 - 1.3 */
Test(netaddr, good_addresses)
{
	good("127.0.0.1:9464", AF_INET, "127.0.0.1:9464");
	good("0.0.0.0:0", AF_INET, "0.0.0.0:0");
	good("[::1]:9464", AF_INET6, "[::1]:9464");
	good("[fe80::1]:65535", AF_INET6, "[fe80::1]:65535");
	good("/run/cmdhost/http.sock", AF_UNIX, "/run/cmdhost/http.sock");
}

/* 2.x */
Test(netaddr, refused)
{
	char longpath[200];

	bad("127.0.0.1", "is not IPv4:PORT");
	bad("127.0.0.1:", "the port must be");
	bad("127.0.0.1:65536", "the port must be");
	bad("127.0.0.1:-1", "the port must be");
	bad("127.0.0.1:80x", "the port must be");
	bad("localhost:9464", "no host names");
	bad("::1:9464", "is not IPv4:PORT");
	bad("[::1]9464", "is not IPv4:PORT");
	bad("[]:9464", "is not IPv4:PORT");
	bad("http.sock", "is not IPv4:PORT");
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	bad(longpath, "must be shorter than");
}

/* 3.1 */
Test(netaddr, config_names_the_line)
{
	char path[] = "/tmp/test_netaddr.XXXXXX", err[1024] = "";
	struct config cfg;
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	cr_assert(f != NULL);
	fputs("[host]\nsocket = x.sock\nhttp_listen = 127.0.0.1:99999\n", f);
	fclose(f);
	cr_assert_eq(config_init(&cfg), 0);
	cr_assert_eq(cfg.http_listen[0], '\0', "off by default");
	cr_assert_eq(config_load(&cfg, path, err, sizeof(err)), -1);
	cr_assert(strstr(err, ":3: http_listen: '127.0.0.1:99999'") != NULL,
	    "%s", err);
	config_fini(&cfg);
	unlink(path);
}
