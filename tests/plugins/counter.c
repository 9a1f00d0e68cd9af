/*
 * counter.c - a test plugin that counts the runs of its commands, so that
 * the idempotency tests can tell a call that ran from one that was
 * replayed.  counter.hit (blocking: on the pool) counts a run, sleeps the
 * payload "ms" and answers {"run": N}; counter.status counts a run and
 * answers the status the payload picks ({"status": 409} fails with 409,
 * {"status": 500} with 500); counter.runs, not counted, answers
 * {"runs": N, "finished": M}: runs started and runs that returned.
 *
 * Runs are counted in memory, or, with `[plugin:counter] file = PATH`, in
 * that file (one decimal number), so that the count outlives a restart
 * or a SIGKILL of the daemon.  "finished" is always in memory.
 */
#include <cmdhost/plugin.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sleep.h"

struct counter {
	char *file;          /* NULL: count in memory */
	pthread_mutex_t lock;
	long long runs, finished;
};

static void
counter_fini(void *state)
{
	struct counter *k = state;

	if (k == NULL)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k->file);
	free(k);
}

/* The count in k->file (0 when it is missing or empty).  k->lock held. */
static long long
file_runs(const struct counter *k)
{
	char text[32];
	ssize_t n;
	int fd;

	if ((fd = open(k->file, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	return strtoll(text, NULL, 10);
}

/* Write n to k->file.  k->lock held.  Returns 0 or -1. */
static int
file_store(const struct counter *k, long long n)
{
	char text[32];
	int fd, len, rc = 0;

	len = snprintf(text, sizeof(text), "%lld\n", n);
	if ((fd = open(k->file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) < 0)
		return -1;
	if (write(fd, text, (size_t)len) != len)
		rc = -1;
	if (close(fd) < 0)
		rc = -1;
	return rc;
}

/* Count one run.  Returns its number (1 for the first), or -1 if the
 * file cannot be written. */
static long long
count_run(struct counter *k)
{
	long long n;

	pthread_mutex_lock(&k->lock);
	if (k->file == NULL) {
		n = ++k->runs;
	} else {
		n = file_runs(k) + 1;
		if (file_store(k, n) < 0)
			n = -1;
	}
	pthread_mutex_unlock(&k->lock);
	return n;
}

static void
count_finished(struct counter *k)
{
	pthread_mutex_lock(&k->lock);
	k->finished++;
	pthread_mutex_unlock(&k->lock);
}

/* {"run": n} */
static json_object *
run_body(long long n)
{
	json_object *body = json_object_new_object();

	json_object_object_add(body, "run", json_object_new_int64(n));
	return body;
}

static int
hit_execute(cmdhost_ctx *ctx)
{
	struct counter *k = cmdhost_state(ctx);
	long long n = count_run(k);

	if (n < 0) {
		count_finished(k);
		return cmdhost_fail(ctx, 500, "counter_file",
		    "cannot write the counter file");
	}
	sleep_payload_ms(ctx);
	count_finished(k);
	return cmdhost_ok(ctx, run_body(n));
}

static int
status_execute(cmdhost_ctx *ctx)
{
	struct counter *k = cmdhost_state(ctx);
	long long n = count_run(k);
	json_object *st;
	int status = 200;

	if (json_object_object_get_ex(cmdhost_payload(ctx), "status", &st))
		status = json_object_get_int(st);
	count_finished(k);
	if (n < 0)
		return cmdhost_fail(ctx, 500, "counter_file",
		    "cannot write the counter file");
	if (status >= 200 && status < 300)
		return cmdhost_respond(ctx, status, run_body(n));
	return cmdhost_failf(ctx, status, "chosen", "run %lld chose status %d",
	    n, status);
}

static int
runs_execute(cmdhost_ctx *ctx)
{
	struct counter *k = cmdhost_state(ctx);
	json_object *body = json_object_new_object();
	long long runs, finished;

	pthread_mutex_lock(&k->lock);
	runs = k->file != NULL ? file_runs(k) : k->runs;
	finished = k->finished;
	pthread_mutex_unlock(&k->lock);
	json_object_object_add(body, "runs", json_object_new_int64(runs));
	json_object_object_add(body, "finished",
	    json_object_new_int64(finished));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_command commands[] = {
	{ "counter.hit", "Count a run, sleep payload ms, answer the run",
	    NULL, NULL, hit_execute, CMDHOST_BLOCKING },
	{ "counter.status", "Count a run, answer the payload's status",
	    NULL, NULL, status_execute, 0 },
	{ "counter.runs", "Answer the runs counted so far", NULL, NULL,
	    runs_execute, 0 },
};

static int
counter_register(cmdhost_registrar *reg)
{
	struct counter *k;
	const char *file;
	size_t i;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	pthread_mutex_init(&k->lock, NULL);
	file = cmdhost_config(reg, "file");
	if (file != NULL && (k->file = strdup(file)) == NULL) {
		counter_fini(k);
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	cmdhost_set_state(reg, k, counter_fini);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (cmdhost_add_command(reg, &commands[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("counter", "1.0.0", counter_register);
