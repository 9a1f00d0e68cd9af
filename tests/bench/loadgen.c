/*
 * loadgen.c - the benchmark's load generator: one thread, epoll, a sliding
 * window of requests in flight on each of several Unix-socket connections,
 * every reply's id and status checked, latencies in a log-linear histogram,
 * one JSON line of results on stdout.  It also holds idle connections (-i)
 * and sends single requests (-q) for scripts/bench.sh; it is not a client
 * library and does no JSON parsing beyond finding "id" and "status".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Histogram: 1 µs buckets below 1024 µs, then 512 buckets per power of
 * two (relative error under 0.2 %), up to 2^40 µs. */
#define HIST_LINEAR	1024
#define HIST_SUB_BITS	9
#define HIST_SUB	(1u << HIST_SUB_BITS)
#define HIST_MAX_MSB	40
#define HIST_SIZE	(HIST_LINEAR + (HIST_MAX_MSB - 9) * HIST_SUB)

#define IN_CAP_MIN	(256 * 1024)
#define ID_MAX_DIGITS	20

/* One client connection.  Every buffer is allocated once at start-up;
 * only an oversized reply line grows `in`. */
struct conn {
	int fd;		/* -1 once closed */
	char *in;	/* owned: received bytes not yet split into lines */
	size_t in_len, in_cap;
	char *out;	/* owned: request bytes not yet written */
	size_t out_off, out_len, out_cap;
	int want_out;	/* EPOLLOUT is armed */
	uint64_t *ring_id;	/* owned, p entries: ids in flight, in order */
	int64_t *ring_t;	/* owned, p entries: their send times (ns) */
	unsigned head, count;
};

/* Templates a run cycles through, one per request in turn. */
#define MAX_TPL 8

struct opts {
	const char *socket;
	int conns, pipeline;
	double seconds, warmup, drain;
	const char *tpl[MAX_TPL];     /* -r, given 1..MAX_TPL times */
	int n_tpl;
	long idle;
	int idle_wait_open;
	const char *query;
};

/* Results of the measured window (requests sent after the warm-up). */
struct stats {
	uint64_t requests, ok, non_ok, lost, bad_id, warmup_non_ok;
	uint64_t max_us;
	uint64_t hist[HIST_SIZE];
	char first_bad[256];
};

static volatile sig_atomic_t got_signal;
static struct stats st;
/* Each template after its '{', with ',' added; the longest's length. */
static const char *tpl_tail[MAX_TPL];
static size_t tpl_tail_len[MAX_TPL];
static int n_tpl;
static size_t tpl_max_len;
static uint64_t next_id = 1;
/* -K: every request carries an idempotency key of its own, made of this
 * run's prefix and its id (a first call each time, never a replay). */
static int keyed;
static char key_prefix[40];
#define KEY_ROOM (22 + sizeof(key_prefix) + ID_MAX_DIGITS)

static void
on_signal(int sig)
{
	got_signal = sig;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
usage(void)
{
	fputs("usage: loadgen -s SOCKET [-c CONNS] [-p PIPELINE] [-d SECONDS]\n"
	    "               [-w WARMUP_S] [-D DRAIN_S] [-K] -r TEMPLATE...\n"
	    "                 (-r again: requests take the templates in turn)\n"
	    "       loadgen -s SOCKET -i N [-W]   hold N idle connections\n"
	    "       loadgen -s SOCKET -q REQUEST  send one line, print reply\n",
	    stderr);
	exit(2);
}

/* Raise the soft fd limit to the hard limit; failure is not fatal. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Connect a blocking stream socket to path.  Returns the fd or -1 with
 * errno set. */
static int
dial(const char *path)
{
	struct sockaddr_un sun;
	int fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINTR)
			continue;
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* ---------------------------------------------------------------- histogram */

static unsigned
hist_index(uint64_t us)
{
	unsigned msb;

	if (us < HIST_LINEAR)
		return (unsigned)us;
	msb = 63u - (unsigned)__builtin_clzll(us);
	if (msb >= HIST_MAX_MSB)
		return HIST_SIZE - 1;
	return HIST_LINEAR + (msb - 10) * HIST_SUB +
	    (unsigned)((us >> (msb - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

/* The middle of bucket i, in µs. */
static uint64_t
hist_value(unsigned i)
{
	unsigned msb, sub;
	uint64_t lo, width;

	if (i < HIST_LINEAR)
		return i;
	msb = (i - HIST_LINEAR) / HIST_SUB + 10;
	sub = (i - HIST_LINEAR) % HIST_SUB;
	width = 1ull << (msb - HIST_SUB_BITS);
	lo = (1ull << msb) + (uint64_t)sub * width;
	return lo + width / 2;
}

/* The smallest bucket value at or above fraction q of the samples;
 * never more than the exact maximum. */
static uint64_t
hist_quantile(double q)
{
	uint64_t total = 0, need, seen = 0, v;

	for (unsigned i = 0; i < HIST_SIZE; i++)
		total += st.hist[i];
	if (total == 0)
		return 0;
	need = (uint64_t)(q * (double)total + 0.999999);
	if (need < 1)
		need = 1;
	for (unsigned i = 0; i < HIST_SIZE; i++) {
		seen += st.hist[i];
		if (seen >= need) {
			v = hist_value(i);
			return v > st.max_us ? st.max_us : v;
		}
	}
	return st.max_us;
}

/* ---------------------------------------------------------------- replies */

/* Parse an unsigned decimal at p (after optional spaces).  Returns 0 and
 * sets *v, or -1 if no digits. */
static int
parse_u64(const char *p, const char *end, uint64_t *v)
{
	uint64_t n = 0;
	const char *s;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (s = p; p < end && *p >= '0' && *p <= '9'; p++)
		n = n * 10 + (uint64_t)(*p - '0');
	if (p == s)
		return -1;
	*v = n;
	return 0;
}

/* Find "id" and "status" in a reply line.  The daemon and the floors put
 * them first, before the body, so the first match is theirs.  Returns 0,
 * or -1 if either is missing or not a number (a null id, for instance). */
static int
reply_scan(const char *line, size_t len, uint64_t *id, uint64_t *status)
{
	const char *end = line + len, *p;

	if ((p = memmem(line, len, "\"id\":", 5)) == NULL ||
	    parse_u64(p + 5, end, id) < 0)
		return -1;
	if ((p = memmem(p, (size_t)(end - p), "\"status\":", 9)) == NULL ||
	    parse_u64(p + 9, end, status) < 0)
		return -1;
	return 0;
}

static void
note_bad(const char *line, size_t len)
{
	if (st.first_bad[0] != '\0')
		return;
	if (len > sizeof(st.first_bad) - 1)
		len = sizeof(st.first_bad) - 1;
	memcpy(st.first_bad, line, len);
	st.first_bad[len] = '\0';
}

/* ---------------------------------------------------------------- load */

/* Connect c and allocate its buffers for `pipeline` requests of at most
 * req_max bytes.  Returns 0, or -1 with errno set (the caller exits). */
static int
conn_init(struct conn *c, const struct opts *o, size_t req_max)
{
	memset(c, 0, sizeof(*c));
	if ((c->fd = dial(o->socket)) < 0)
		return -1;
	if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
		return -1;
	c->in_cap = IN_CAP_MIN;
	c->out_cap = (size_t)o->pipeline * req_max;
	c->in = malloc(c->in_cap);
	c->out = malloc(c->out_cap);
	c->ring_id = calloc((size_t)o->pipeline, sizeof(*c->ring_id));
	c->ring_t = calloc((size_t)o->pipeline, sizeof(*c->ring_t));
	if (c->in == NULL || c->out == NULL || c->ring_id == NULL ||
	    c->ring_t == NULL) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

/* Append one request to c->out and to its ring.  The caller makes sure
 * fewer than `pipeline` requests are in flight, so it always fits. */
static void
conn_queue(struct conn *c, int pipeline, int64_t t)
{
	char *p;
	uint64_t id = next_id++;
	char digits[ID_MAX_DIGITS];
	int n = 0;
	unsigned slot;
	int k = (int)(id % (uint64_t)n_tpl);

	if (c->out_len + 6 + ID_MAX_DIGITS + KEY_ROOM + tpl_max_len >
	    c->out_cap) {
		/* Unsent bytes belong to fewer than `pipeline` requests, so
		 * moving them down always makes room. */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	p = c->out + c->out_len;
	memcpy(p, "{\"id\":", 6);
	p += 6;
	do
		digits[n++] = (char)('0' + id % 10);
	while ((id /= 10) != 0);
	if (keyed) {
		size_t kl = strlen(key_prefix);

		for (int i = n - 1; i >= 0; i--)
			*p++ = digits[i];
		memcpy(p, ",\"idempotency_key\":\"", 20);
		p += 20;
		memcpy(p, key_prefix, kl);
		p += kl;
		for (int i = n - 1; i >= 0; i--)
			*p++ = digits[i];
		*p++ = '"';
		n = 0;
	}
	while (n > 0)
		*p++ = digits[--n];
	memcpy(p, tpl_tail[k], tpl_tail_len[k]);
	p += tpl_tail_len[k];
	c->out_len = (size_t)(p - c->out);
	slot = (c->head + c->count) % (unsigned)pipeline;
	c->ring_id[slot] = next_id - 1;
	c->ring_t[slot] = t;
	c->count++;
}

/* Count the requests of c that were sent inside the measured window. */
static uint64_t
conn_measured_in_flight(const struct conn *c, int pipeline, int64_t w0,
    int64_t w1)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < c->count; i++) {
		int64_t t = c->ring_t[(c->head + i) % (unsigned)pipeline];

		if (t >= w0 && t < w1)
			n++;
	}
	return n;
}

/* Close c after a failure; its measured requests in flight count as
 * lost. */
static void
conn_close(struct conn *c, int ep, int pipeline, int64_t w0, int64_t w1,
    const char *why)
{
	if (c->fd < 0)
		return;
	fprintf(stderr, "loadgen: connection closed: %s\n", why);
	st.lost += conn_measured_in_flight(c, pipeline, w0, w1);
	c->count = 0;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
}

/* Write what c->out holds; arm or disarm EPOLLOUT.  Returns 0 or -1 when
 * the connection failed. */
static int
conn_flush(struct conn *c, int ep)
{
	struct epoll_event ev;
	ssize_t n;
	int want;

	while (c->out_off < c->out_len) {
		n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	want = c->out_len > 0;
	if (want != c->want_out) {
		ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			return -1;
		c->want_out = want;
	}
	return 0;
}

/*
 * Read everything available on c, match each reply line with the oldest
 * request in flight, and record it.  Returns the number of replies, or -1
 * when the connection is finished (EOF or error).
 */
static int
conn_read(struct conn *c, int pipeline, int64_t w0, int64_t w1)
{
	int replies = 0;
	ssize_t n;
	size_t room;
	char *line, *nl, *end;
	int64_t t;
	uint64_t id, status, us;
	int good;
	unsigned slot;

	for (;;) {
		if (c->in_len == c->in_cap) {
			char *bigger = realloc(c->in, c->in_cap * 2);

			if (bigger == NULL)
				return -1;
			c->in = bigger;
			c->in_cap *= 2;
		}
		room = c->in_cap - c->in_len;
		n = read(c->fd, c->in + c->in_len, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return replies;
		if (n <= 0)
			return -1;
		t = now_ns();
		c->in_len += (size_t)n;
		line = c->in;
		end = c->in + c->in_len;
		while (line < end &&
		    (nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
			size_t len = (size_t)(nl - line);

			if (len == 0 || (len == 1 && line[0] == '\r')) {
				line = nl + 1;
				continue;
			}
			replies++;
			if (c->count == 0) {
				/* A reply nobody asked for (a 503 before close). */
				st.non_ok++;
				note_bad(line, len);
				line = nl + 1;
				continue;
			}
			slot = c->head;
			c->head = (c->head + 1) % (unsigned)pipeline;
			c->count--;
			good = reply_scan(line, len, &id, &status) == 0;
			if (good && id != c->ring_id[slot])
				st.bad_id++;
			good = good && id == c->ring_id[slot] && status == 200;
			if (c->ring_t[slot] < w0 || c->ring_t[slot] >= w1) {
				if (!good) {
					st.warmup_non_ok++;
					note_bad(line, len);
				}
				line = nl + 1;
				continue;
			}
			if (good) {
				st.ok++;
			} else {
				st.non_ok++;
				note_bad(line, len);
			}
			us = (uint64_t)(t - c->ring_t[slot]) / 1000;
			st.hist[hist_index(us)]++;
			if (us > st.max_us)
				st.max_us = us;
			line = nl + 1;
		}
		c->in_len = (size_t)(end - line);
		if (c->in_len > 0 && line != c->in)
			memmove(c->in, line, c->in_len);
		/* A short read emptied the socket: skip the EAGAIN read. */
		if ((size_t)n < room)
			return replies;
	}
}

static double
tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Print s as a JSON string body (without quotes). */
static void
json_escape(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
}

/* Add a template to tpl_tail: what follows its '{', preceded by a ','
 * unless the object is empty, and ending in '\n'. */
static void
template_prepare(const char *tpl)
{
	const char *p = tpl;
	size_t len;
	char *tail;
	int empty;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '{') {
		fprintf(stderr, "loadgen: the template must be a JSON object\n");
		exit(2);
	}
	p++;
	len = strlen(p);
	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	empty = len > 0 && strspn(p, " \t") == len - 1 && p[len - 1] == '}';
	if ((tail = malloc(len + 3)) == NULL)
		die("malloc");
	if (empty) {
		memcpy(tail, "}\n", 3);
	} else {
		tail[0] = ',';
		memcpy(tail + 1, p, len);
		tail[len + 1] = '\n';
		tail[len + 2] = '\0';
	}
	tpl_tail[n_tpl] = tail;
	tpl_tail_len[n_tpl] = strlen(tail);
	if (tpl_tail_len[n_tpl] > tpl_max_len)
		tpl_max_len = tpl_tail_len[n_tpl];
	n_tpl++;
}

/*
 * The load run: open the connections, fill every window, then keep each
 * one full until the measured window ends, drain, and print the result
 * line.  Returns the exit status: 0 only if every reply was OK and none
 * was lost.
 */
static int
run_load(const struct opts *o)
{
	struct conn *conns;
	struct epoll_event ev, evs[256];
	struct rusage ru0, ru1;
	int64_t t0, w0, w1, w_end, t, in_flight;
	int ep, got_ru0 = 0, got_ru1 = 0, timeout, n;
	size_t req_max;

	for (int i = 0; i < o->n_tpl; i++)
		template_prepare(o->tpl[i]);
	req_max = 6 + ID_MAX_DIGITS + KEY_ROOM + tpl_max_len;
	if ((conns = calloc((size_t)o->conns, sizeof(*conns))) == NULL)
		die("calloc");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	for (int i = 0; i < o->conns; i++) {
		if (conn_init(&conns[i], o, req_max) < 0)
			die(o->socket);
		ev.events = EPOLLIN;
		ev.data.ptr = &conns[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
			die("epoll_ctl");
	}

	t0 = now_ns();
	w0 = t0 + (int64_t)(o->warmup * 1e9);
	w1 = w0 + (int64_t)(o->seconds * 1e9);
	w_end = w1 + (int64_t)(o->drain * 1e9);
	for (int i = 0; i < o->conns; i++) {
		t = now_ns();
		for (int k = 0; k < o->pipeline; k++)
			conn_queue(&conns[i], o->pipeline, t);
		if (conn_flush(&conns[i], ep) < 0)
			conn_close(&conns[i], ep, o->pipeline, w0, w1,
			    strerror(errno));
	}

	for (;;) {
		t = now_ns();
		if (!got_ru0 && t >= w0) {
			getrusage(RUSAGE_SELF, &ru0);
			got_ru0 = 1;
		}
		if (!got_ru1 && t >= w1) {
			getrusage(RUSAGE_SELF, &ru1);
			got_ru1 = 1;
		}
		if (t >= w_end || got_signal)
			break;
		if (t >= w1) {
			in_flight = 0;
			for (int i = 0; i < o->conns; i++)
				in_flight += conns[i].count;
			if (in_flight == 0)
				break;
		}
		timeout = t < w0 ? (int)((w0 - t) / 1000000) + 1 :
		    t < w1 ? (int)((w1 - t) / 1000000) + 1 :
		    (int)((w_end - t) / 1000000) + 1;
		if (timeout > 100)
			timeout = 100;
		n = epoll_wait(ep, evs, 256, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int r;

			if (c->fd < 0)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				r = conn_read(c, o->pipeline, w0, w1);
				if (r < 0) {
					conn_close(c, ep, o->pipeline, w0, w1,
					    "EOF or error from server");
					continue;
				}
				t = now_ns();
				if (t < w1)
					while (c->count < (unsigned)o->pipeline)
						conn_queue(c, o->pipeline, t);
			}
			if (conn_flush(c, ep) < 0)
				conn_close(c, ep, o->pipeline, w0, w1,
				    strerror(errno));
		}
	}
	if (!got_ru1)
		getrusage(RUSAGE_SELF, &ru1);
	if (!got_ru0)
		ru0 = ru1;
	for (int i = 0; i < o->conns; i++)
		if (conns[i].fd >= 0)
			st.lost += conn_measured_in_flight(&conns[i],
			    o->pipeline, w0, w1);
	st.requests = st.ok + st.non_ok + st.lost;

	printf("{\"requests\":%" PRIu64 ",\"ok\":%" PRIu64
	    ",\"non_ok\":%" PRIu64 ",\"lost\":%" PRIu64
	    ",\"rps\":%.0f,\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
	    ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64
	    ",\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f"
	    ",\"conns\":%d,\"pipeline\":%d,\"seconds\":%.3f"
	    ",\"bad_id\":%" PRIu64 ",\"warmup_non_ok\":%" PRIu64,
	    st.requests, st.ok, st.non_ok, st.lost,
	    (double)(st.ok + st.non_ok) / o->seconds,
	    hist_quantile(0.50), hist_quantile(0.99), hist_quantile(0.999),
	    st.max_us,
	    tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime),
	    tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime),
	    o->conns, o->pipeline, o->seconds, st.bad_id, st.warmup_non_ok);
	if (st.first_bad[0] != '\0') {
		printf(",\"first_bad\":\"");
		json_escape(stdout, st.first_bad);
		printf("\"");
	}
	printf("}\n");
	return st.non_ok + st.lost + st.warmup_non_ok == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- one shot */

/*
 * Send `line` on fd and read one reply line into buf (NUL-terminated,
 * without its '\n').  Returns its length or -1.
 */
static ssize_t
round_trip(int fd, const char *line, char *buf, size_t cap)
{
	size_t len = strlen(line), off = 0;
	ssize_t n;
	char *nl;

	while (off < len) {
		if ((n = write(fd, line + off, len - off)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)n;
	}
	if (len == 0 || line[len - 1] != '\n')
		if (write(fd, "\n", 1) != 1)
			return -1;
	off = 0;
	for (;;) {
		if (off + 1 >= cap) {
			errno = EMSGSIZE;
			return -1;
		}
		n = read(fd, buf + off, cap - off - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			return -1;
		}
		off += (size_t)n;
		buf[off] = '\0';
		if ((nl = strchr(buf, '\n')) != NULL) {
			*nl = '\0';
			return nl - buf;
		}
	}
}

/* -q: one request, its reply on stdout; exit 0 only for status 200. */
static int
run_query(const struct opts *o)
{
	static char buf[1 << 20];
	uint64_t id, status;
	ssize_t n;
	int fd;

	if ((fd = dial(o->socket)) < 0)
		die(o->socket);
	if ((n = round_trip(fd, o->query, buf, sizeof(buf))) < 0)
		die("round trip");
	close(fd);
	puts(buf);
	if (memmem(buf, (size_t)n, "\"status\":200", 12) != NULL)
		return 0;
	return reply_scan(buf, (size_t)n, &id, &status) == 0 &&
	    status == 200 ? 0 : 1;
}

/* ---------------------------------------------------------------- idle */

/* Ask the daemon how many connections it has open (host.stats).  Returns
 * the number or -1. */
static long
daemon_open_conns(int fd)
{
	static char buf[1 << 20];
	const char *p;

	if (round_trip(fd, "{\"id\":1,\"command\":\"host.stats\"}\n", buf,
	    sizeof(buf)) < 0)
		return -1;
	if ((p = strstr(buf, "\"open\":")) == NULL)
		return -1;
	return strtol(p + 7, NULL, 10);
}

/*
 * -i: open N connections that never send, print one JSON line when they
 * are up (with -W: once the daemon reports them accepted), and hold them
 * until stdin closes or SIGTERM/SIGINT.
 */
static int
run_idle(const struct opts *o)
{
	int *fds, ctl = -1;
	long open_conns = -1;
	int64_t t0 = now_ns(), deadline;
	char c;
	ssize_t n;

	if ((fds = calloc((size_t)o->idle, sizeof(*fds))) == NULL)
		die("calloc");
	for (long i = 0; i < o->idle; i++)
		if ((fds[i] = dial(o->socket)) < 0)
			die(o->socket);
	if (o->idle_wait_open) {
		/* A connect() that returned may still sit in the backlog: wait
		 * until the daemon reports them all accepted (plus ours). */
		if ((ctl = dial(o->socket)) < 0)
			die(o->socket);
		deadline = now_ns() + 20 * (int64_t)1000000000;
		while ((open_conns = daemon_open_conns(ctl)) >= 0 &&
		    open_conns < o->idle + 1 && now_ns() < deadline)
			usleep(10000);
		close(ctl);
	}
	printf("{\"idle\":%ld,\"daemon_open\":%ld,\"connect_s\":%.3f}\n",
	    o->idle, open_conns, (double)(now_ns() - t0) / 1e9);
	fflush(stdout);
	while (!got_signal) {
		n = read(0, &c, 1);
		if (n == 0 || (n < 0 && errno != EINTR))
			break;
	}
	for (long i = 0; i < o->idle; i++)
		close(fds[i]);
	free(fds);
	return o->idle_wait_open && open_conns < o->idle + 1 ? 1 : 0;
}

int
main(int argc, char **argv)
{
	struct opts o = { .conns = 1, .pipeline = 1, .seconds = 5.0,
	    .warmup = 0.5, .drain = 2.0 };
	struct sigaction sa;
	int ch;

	while ((ch = getopt(argc, argv, "s:c:p:d:w:D:r:i:Wq:K")) != -1) {
		switch (ch) {
		case 's': o.socket = optarg; break;
		case 'c': o.conns = atoi(optarg); break;
		case 'p': o.pipeline = atoi(optarg); break;
		case 'd': o.seconds = atof(optarg); break;
		case 'w': o.warmup = atof(optarg); break;
		case 'D': o.drain = atof(optarg); break;
		case 'r':
			if (o.n_tpl == MAX_TPL)
				usage();
			o.tpl[o.n_tpl++] = optarg;
			break;
		case 'i': o.idle = atol(optarg); break;
		case 'W': o.idle_wait_open = 1; break;
		case 'q': o.query = optarg; break;
		case 'K':
			keyed = 1;
			snprintf(key_prefix, sizeof(key_prefix), "lg%ld-%ld-",
			    (long)getpid(), (long)time(NULL));
			break;
		default: usage();
		}
	}
	if (o.socket == NULL || o.conns < 1 || o.pipeline < 1 ||
	    o.seconds <= 0 || o.warmup < 0 || o.drain < 0 || o.idle < 0 ||
	    (o.n_tpl == 0 && o.idle == 0 && o.query == NULL))
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: interrupt the wait */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	if (o.query != NULL)
		return run_query(&o);
	if (o.idle > 0)
		return run_idle(&o);
	return run_load(&o);
}
