/*
 * swapbench.c - the hot-swap benchmark: rename alternating versions of a
 * plugin into a live daemon's plugin_dir and measure how long it takes
 * until a reply comes from the new version (-n), or keep swapping at a
 * fixed interval while scripts/bench.sh runs load next to it (-e).  It
 * writes each version under a dot name first, so the watcher only ever
 * sees the rename.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct version {
	const char *path;	/* borrowed from argv */
	const char *name;	/* what swap.version replies */
	char *bytes;		/* owned: the file */
	size_t len;
};

struct opts {
	const char *socket, *dir, *file, *command;
	struct version v[2];
	int swaps, gap_ms, interval_ms;
	double seconds;
};

static uint64_t next_id = 1;
static uint64_t errors;

static void
die(const char *what)
{
	fprintf(stderr, "swapbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
usage(void)
{
	fputs("usage: swapbench -s SOCKET -d PLUGIN_DIR -a V1.so -b V2.so\n"
	    "           [-A 1] [-B 2] [-f swap.so] [-m swap.version]\n"
	    "           [-n SWAPS] [-g GAP_MS]          latency of each swap\n"
	    "           [-e INTERVAL_MS -D SECONDS]     swap periodically\n",
	    stderr);
	exit(2);
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Read all of path into v->bytes; exits on failure. */
static void
version_load(struct version *v)
{
	struct stat sb;
	ssize_t n;
	size_t off = 0;
	int fd;

	if ((fd = open(v->path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &sb) < 0)
		die(v->path);
	v->len = (size_t)sb.st_size;
	if ((v->bytes = malloc(v->len)) == NULL)
		die("malloc");
	while (off < v->len) {
		if ((n = read(fd, v->bytes + off, v->len - off)) <= 0)
			die(v->path);
		off += (size_t)n;
	}
	close(fd);
}

/* Write v under a dot name in the plugin dir; returns nothing, exits on
 * failure.  The caller renames tmp into place. */
static void
version_stage(const struct version *v, const char *tmp)
{
	size_t off = 0;
	ssize_t n;
	int fd;

	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) < 0)
		die(tmp);
	while (off < v->len) {
		if ((n = write(fd, v->bytes + off, v->len - off)) < 0)
			die(tmp);
		off += (size_t)n;
	}
	if (close(fd) < 0)
		die(tmp);
}

/* Connect to the daemon (blocking, 5 s receive timeout); exits on
 * failure. */
static int
dial(const char *path)
{
	struct sockaddr_un sun;
	struct timeval tv = { 5, 0 };
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		die(path);
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		die(path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/*
 * One round trip of the version command on fd.  Returns 0 with the
 * version text in ver (NUL-terminated), or -1 for a non-200 reply (counted
 * in errors and printed once).  Exits if the connection fails.
 */
static int
ask_version(int fd, const char *command, char *ver, size_t cap)
{
	static char buf[65536];
	static int printed;
	char req[256];
	size_t off = 0;
	ssize_t n;
	char *nl, *p, *q;
	int len;

	len = snprintf(req, sizeof(req), "{\"id\":%" PRIu64
	    ",\"command\":\"%s\"}\n", next_id++, command);
	if (write(fd, req, (size_t)len) != len)
		die("write");
	for (;;) {
		if (off + 1 >= sizeof(buf)) {
			errno = EMSGSIZE;
			die("read");
		}
		if ((n = read(fd, buf + off, sizeof(buf) - off - 1)) <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			die("read");
		}
		off += (size_t)n;
		buf[off] = '\0';
		if ((nl = strchr(buf, '\n')) != NULL)
			break;
	}
	*nl = '\0';
	if (strstr(buf, "\"status\":200") == NULL ||
	    (p = strstr(buf, "\"version\":\"")) == NULL ||
	    (q = strchr(p + 11, '"')) == NULL || (size_t)(q - p - 11) >= cap) {
		errors++;
		if (!printed++)
			fprintf(stderr, "swapbench: bad reply: %s\n", buf);
		return -1;
	}
	memcpy(ver, p + 11, (size_t)(q - p - 11));
	ver[q - p - 11] = '\0';
	return 0;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static double
quantile_ms(const int64_t *sorted, int n, double q)
{
	int i = (int)(q * n + 0.999999) - 1;

	if (n == 0)
		return 0;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return (double)sorted[i] / 1e6;
}

/* Which of the two versions is live now; -1 if neither answers within
 * timeout_ms. */
static int
live_version(const struct opts *o, int fd, int timeout_ms)
{
	int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
	char ver[64];

	do {
		if (ask_version(fd, o->command, ver, sizeof(ver)) == 0) {
			if (strcmp(ver, o->v[0].name) == 0)
				return 0;
			if (strcmp(ver, o->v[1].name) == 0)
				return 1;
		}
		sleep_ms(1);
	} while (now_ns() < deadline);
	return -1;
}

/* -n: swap o->swaps times; after each rename, poll as fast as one
 * connection allows until the new version answers. */
static int
run_latency(const struct opts *o, const char *tmp, const char *dst)
{
	int64_t *lat, t0, t1, deadline;
	int fd = dial(o->socket), cur, want, n = 0, timeouts = 0;
	char ver[64];
	double sum = 0;

	if ((lat = calloc((size_t)o->swaps, sizeof(*lat))) == NULL)
		die("calloc");
	if ((cur = live_version(o, fd, 5000)) < 0) {
		fprintf(stderr, "swapbench: neither version answers\n");
		return 1;
	}
	for (int i = 0; i < o->swaps; i++) {
		want = 1 - cur;
		version_stage(&o->v[want], tmp);
		t0 = now_ns();
		if (rename(tmp, dst) < 0)
			die(dst);
		deadline = t0 + 5 * (int64_t)1000000000;
		for (;;) {
			if (ask_version(fd, o->command, ver, sizeof(ver)) == 0 &&
			    strcmp(ver, o->v[want].name) == 0) {
				t1 = now_ns();
				lat[n++] = t1 - t0;
				sum += (double)(t1 - t0);
				cur = want;
				break;
			}
			if (now_ns() > deadline) {
				timeouts++;
				fprintf(stderr, "swapbench: swap %d: version %s "
				    "not live after 5 s\n", i, o->v[want].name);
				cur = live_version(o, fd, 5000);
				if (cur < 0)
					return 1;
				break;
			}
		}
		sleep_ms(o->gap_ms);
	}
	close(fd);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
	printf("{\"swaps\":%d,\"ok\":%d,\"timeouts\":%d,\"errors\":%" PRIu64
	    ",\"min_ms\":%.2f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f"
	    ",\"mean_ms\":%.2f}\n", o->swaps, n, timeouts, errors,
	    n ? (double)lat[0] / 1e6 : 0.0, quantile_ms(lat, n, 0.50),
	    quantile_ms(lat, n, 0.99), n ? (double)lat[n - 1] / 1e6 : 0.0,
	    n ? sum / n / 1e6 : 0.0);
	free(lat);
	return timeouts == 0 && errors == 0 ? 0 : 1;
}

/* -e/-D: swap every interval_ms for `seconds`; before each swap, one
 * request checks that the previous one went live (a cheap check, so the
 * measured load is not disturbed). */
static int
run_periodic(const struct opts *o, const char *tmp, const char *dst)
{
	int64_t end, next;
	int fd = dial(o->socket), cur, want = -1, swaps = 0, confirmed = 0;
	struct timespec ts;

	if ((cur = live_version(o, fd, 5000)) < 0) {
		fprintf(stderr, "swapbench: neither version answers\n");
		return 1;
	}
	next = now_ns();
	end = next + (int64_t)(o->seconds * 1e9);
	while (next < end) {
		if (want >= 0 && live_version(o, fd, 0) == want)
			confirmed++;
		want = 1 - cur;
		version_stage(&o->v[want], tmp);
		if (rename(tmp, dst) < 0)
			die(dst);
		swaps++;
		cur = want;
		next += (int64_t)o->interval_ms * 1000000;
		ts.tv_sec = (time_t)(next / 1000000000);
		ts.tv_nsec = (long)(next % 1000000000);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
		    NULL) == EINTR)
			;
	}
	if (want >= 0 && live_version(o, fd, 2000) == want)
		confirmed++;
	close(fd);
	printf("{\"swaps\":%d,\"confirmed\":%d,\"errors\":%" PRIu64
	    ",\"interval_ms\":%d}\n", swaps, confirmed, errors,
	    o->interval_ms);
	return errors == 0 && confirmed == swaps ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct opts o;
	char tmp[4096], dst[4096];
	int ch;

	memset(&o, 0, sizeof(o));
	o.file = "swap.so";
	o.command = "swap.version";
	o.v[0].name = "1";
	o.v[1].name = "2";
	o.swaps = 100;
	o.gap_ms = 20;
	while ((ch = getopt(argc, argv, "s:d:a:b:A:B:f:m:n:g:e:D:")) != -1) {
		switch (ch) {
		case 's': o.socket = optarg; break;
		case 'd': o.dir = optarg; break;
		case 'a': o.v[0].path = optarg; break;
		case 'b': o.v[1].path = optarg; break;
		case 'A': o.v[0].name = optarg; break;
		case 'B': o.v[1].name = optarg; break;
		case 'f': o.file = optarg; break;
		case 'm': o.command = optarg; break;
		case 'n': o.swaps = atoi(optarg); break;
		case 'g': o.gap_ms = atoi(optarg); break;
		case 'e': o.interval_ms = atoi(optarg); break;
		case 'D': o.seconds = atof(optarg); break;
		default: usage();
		}
	}
	if (o.socket == NULL || o.dir == NULL || o.v[0].path == NULL ||
	    o.v[1].path == NULL || o.swaps < 1 || o.gap_ms < 0 ||
	    o.interval_ms < 0 || (o.interval_ms > 0 && o.seconds <= 0))
		usage();
	version_load(&o.v[0]);
	version_load(&o.v[1]);
	snprintf(tmp, sizeof(tmp), "%s/.%s.swapbench", o.dir, o.file);
	snprintf(dst, sizeof(dst), "%s/%s", o.dir, o.file);
	if (o.interval_ms > 0)
		return run_periodic(&o, tmp, dst);
	return run_latency(&o, tmp, dst);
}
