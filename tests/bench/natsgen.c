/*
 * natsgen.c - request-reply load over NATS for `make bench`: keeps N
 * requests in flight (each reply sends the next request from its slot),
 * measures each latency (publish to reply, µs) and prints one JSON line in
 * loadgen's shape: requests, ok, non_ok, lost, rps, p50_us, p99_us,
 * p999_us, max_us, warmup_non_ok.
 *
 *   natsgen [-a] -u URL -c INFLIGHT -d SECONDS [-w WARMUP] -s SUBJECT -m PAYLOAD
 *
 * -a sends each request at once (as natsConnection_Request does); without
 * it libnats batches publishes for up to 1 ms, as a pipelining client
 * would.
 * A reply is ok when it carries "status":200.  Built with -lnats.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#define MAX_SAMPLES (8u << 20)

struct slot {
	int64_t sent_ns;
	int busy;
	char reply[64];
};

static natsConnection *nc;
static struct slot *slots;
static const char *subject, *payload;
static int payload_len;
static atomic_int phase;            /* 0 warm-up, 1 measuring, 2 stop */
static uint32_t *samples;
static atomic_uint n_samples;
static atomic_uint_fast64_t ok, non_ok, warm_non_ok, sent_measured;

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
send_slot(int i)
{
	slots[i].sent_ns = now_ns();
	slots[i].busy = 1;
	if (atomic_load(&phase) == 1)
		atomic_fetch_add(&sent_measured, 1);
	natsConnection_PublishRequest(nc, subject, slots[i].reply, payload,
	    payload_len);
}

/* One reply: its slot is the last token of the reply subject. */
static void
on_reply(natsConnection *c, natsSubscription *sub, natsMsg *msg, void *arg)
{
	const char *subj = natsMsg_GetSubject(msg), *dot = strrchr(subj, '.');
	int i = dot ? atoi(dot + 1) : -1, good;
	int ph = atomic_load(&phase);

	(void)c;
	(void)sub;
	(void)arg;
	good = natsMsg_GetData(msg) != NULL &&
	    strstr(natsMsg_GetData(msg), "\"status\":200") != NULL;
	if (i >= 0) {
		int64_t us = (now_ns() - slots[i].sent_ns) / 1000;

		slots[i].busy = 0;
		if (ph == 1) {
			unsigned k = atomic_fetch_add(&n_samples, 1);

			if (k < MAX_SAMPLES)
				samples[k] = (uint32_t)us;
			atomic_fetch_add(good ? &ok : &non_ok, 1);
		} else if (ph == 0 && !good) {
			atomic_fetch_add(&warm_non_ok, 1);
		}
		if (ph < 2)
			send_slot(i);
	}
	natsMsg_Destroy(msg);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) != 0)
		;
}

int
main(int argc, char **argv)
{
	const char *url = "nats://127.0.0.1:4222";
	double secs = 5, warm = 0.5;
	int inflight = 64, ch, busy = 0, asap = 0;
	natsSubscription *sub = NULL;
	natsOptions *o = NULL;
	unsigned n;
	int64_t t0, t1;
	uint64_t lost;

	subject = "cmdhost.cmd.echo";
	payload = "{\"msg\":\"hello\"}";
	while ((ch = getopt(argc, argv, "au:c:d:w:s:m:")) != -1) {
		switch (ch) {
		case 'a': asap = 1; break;
		case 'u': url = optarg; break;
		case 'c': inflight = atoi(optarg); break;
		case 'd': secs = atof(optarg); break;
		case 'w': warm = atof(optarg); break;
		case 's': subject = optarg; break;
		case 'm': payload = optarg; break;
		default:
			fprintf(stderr, "usage: natsgen -u URL -c N -d S -w S "
			    "-s SUBJECT -m PAYLOAD\n");
			return 2;
		}
	}
	payload_len = (int)strlen(payload);
	slots = calloc((size_t)inflight, sizeof(*slots));
	samples = malloc(MAX_SAMPLES * sizeof(*samples));
	if (slots == NULL || samples == NULL || inflight <= 0)
		return 1;
	if (natsOptions_Create(&o) != NATS_OK ||
	    natsOptions_SetURL(o, url) != NATS_OK ||
	    natsOptions_SetSendAsap(o, asap) != NATS_OK ||
	    natsConnection_Connect(&nc, o) != NATS_OK) {
		fprintf(stderr, "natsgen: cannot connect to %s\n", url);
		return 1;
	}
	if (natsConnection_Subscribe(&sub, nc, "_NATSGEN.>", on_reply,
	    NULL) != NATS_OK)
		return 1;
	natsSubscription_SetPendingLimits(sub, -1, -1);
	natsConnection_Flush(nc);
	for (int i = 0; i < inflight; i++) {
		snprintf(slots[i].reply, sizeof(slots[i].reply),
		    "_NATSGEN.%d.%d", (int)getpid(), i);
		send_slot(i);
	}
	sleep_s(warm);
	atomic_store(&phase, 1);
	t0 = now_ns();
	sleep_s(secs);
	atomic_store(&phase, 2);
	t1 = now_ns();
	/* Let the replies still due come back (up to 2 s). */
	for (int k = 0; k < 200; k++) {
		busy = 0;
		for (int i = 0; i < inflight; i++)
			busy += slots[i].busy;
		if (busy == 0)
			break;
		sleep_s(0.01);
	}
	n = atomic_load(&n_samples);
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	qsort(samples, n, sizeof(*samples), cmp_u32);
	lost = (uint64_t)busy;
	printf("{\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"non_ok\":%"
	    PRIu64 ",\"lost\":%" PRIu64 ",\"rps\":%.0f,\"p50_us\":%u,"
	    "\"p99_us\":%u,\"p999_us\":%u,\"max_us\":%u,\"warmup_non_ok\":%"
	    PRIu64 ",\"inflight\":%d,\"transport\":\"nats\"}\n",
	    (uint64_t)atomic_load(&ok) + atomic_load(&non_ok),
	    (uint64_t)atomic_load(&ok), (uint64_t)atomic_load(&non_ok), lost,
	    (double)(atomic_load(&ok) + atomic_load(&non_ok)) /
	    ((double)(t1 - t0) / 1e9),
	    n ? samples[n / 2] : 0, n ? samples[(size_t)n * 99 / 100] : 0,
	    n ? samples[(size_t)n * 999 / 1000] : 0, n ? samples[n - 1] : 0,
	    (uint64_t)atomic_load(&warm_non_ok), inflight);
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(o);
	nats_CloseAndWait(1000);
	free(slots);
	free(samples);
	return 0;
}
