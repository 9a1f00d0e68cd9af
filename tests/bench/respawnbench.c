/*
 * respawnbench.c - how long an isolated plugin is away after its worker
 * dies: against a daemon serving tests/plugins/crashy.so with isolation =
 * process and workers = 1, send crashy.segv, read its 500, then send
 * crashy.ok and time until its 200 (the kill, the reap, the fork and exec
 * of a new worker, its load and registration, and one call). The same
 * call with no crash before it is the floor. A success between crashes
 * resets the daemon's back-off, so each respawn is immediate.
 * Prints one JSON line: respawn and floor p50/p99/max in microseconds.
 *
 * usage: respawnbench -s SOCKET [-n ROUNDS]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void
die(const char *what)
{
	fprintf(stderr, "respawnbench: %s: %s\n", what,
	    errno ? strerror(errno) : "failed");
	exit(1);
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		die("socket");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die(path);
	return fd;
}

/* Send line (borrowed) and read one reply line into buf (caller's, of
 * size n); return the reply's status, or -1. */
static int
call(int fd, const char *line, char *buf, size_t n)
{
	size_t len = strlen(line), got = 0;
	const char *st;

	if (write(fd, line, len) != (ssize_t)len)
		die("write");
	while (got == 0 || buf[got - 1] != '\n') {
		ssize_t r = read(fd, buf + got, n - 1 - got);

		if (r <= 0)
			die("read");
		got += (size_t)r;
		if (got >= n - 1)
			die("reply too long");
	}
	buf[got] = '\0';
	if ((st = strstr(buf, "\"status\":")) == NULL)
		return -1;
	return atoi(st + 9);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* p-th percentile of v[0..n) (sorted in place), in microseconds. */
static double
pct(int64_t *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);

	qsort(v, (size_t)n, sizeof(*v), cmp_i64);
	return (double)v[i] / 1000.0;
}

int
main(int argc, char **argv)
{
	const char *sock = NULL;
	int rounds = 200, opt, fd;
	int64_t *respawn, *floor_ns;
	char buf[4096];

	while ((opt = getopt(argc, argv, "s:n:")) != -1) {
		if (opt == 's')
			sock = optarg;
		else if (opt == 'n')
			rounds = atoi(optarg);
		else
			sock = NULL, rounds = 0;
	}
	if (sock == NULL || rounds < 1) {
		fputs("usage: respawnbench -s SOCKET [-n ROUNDS]\n", stderr);
		return 2;
	}
	respawn = calloc((size_t)rounds, sizeof(*respawn));
	floor_ns = calloc((size_t)rounds, sizeof(*floor_ns));
	if (respawn == NULL || floor_ns == NULL)
		die("calloc");
	fd = connect_to(sock);
	/* A worker is up and warm before the first figure. */
	if (call(fd, "{\"command\":\"crashy.ok\"}\n", buf, sizeof(buf)) != 200)
		die("crashy.ok before the first round");
	for (int i = 0; i < rounds; i++) {
		int64_t t0 = now_ns();

		if (call(fd, "{\"command\":\"crashy.ok\"}\n", buf,
		    sizeof(buf)) != 200)
			die("crashy.ok (floor)");
		floor_ns[i] = now_ns() - t0;
		if (call(fd, "{\"command\":\"crashy.segv\"}\n", buf,
		    sizeof(buf)) != 500 || strstr(buf, "plugin_crashed") == NULL)
			die("crashy.segv did not answer 500 plugin_crashed");
		t0 = now_ns();
		if (call(fd, "{\"command\":\"crashy.ok\"}\n", buf,
		    sizeof(buf)) != 200)
			die("crashy.ok after a crash");
		respawn[i] = now_ns() - t0;
	}
	printf("{\"rounds\":%d,\"respawn_p50_us\":%.1f,\"respawn_p99_us\":%.1f,"
	    "\"respawn_max_us\":%.1f,\"floor_p50_us\":%.1f,"
	    "\"floor_p99_us\":%.1f}\n", rounds, pct(respawn, rounds, 0.5),
	    pct(respawn, rounds, 0.99), pct(respawn, rounds, 1.0),
	    pct(floor_ns, rounds, 0.5), pct(floor_ns, rounds, 0.99));
	free(respawn);
	free(floor_ns);
	close(fd);
	return 0;
}
