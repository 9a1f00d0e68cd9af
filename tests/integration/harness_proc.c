/*
 * harness_proc.c - running other commands (run_command()) and reaping
 * children with a deadline, on the monotonic clock and the bounded
 * wait_until() loop that every wait in the harness is built on.
 */
#include "harness_priv.h"

#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int
wait_until(int (*cond)(void *arg), void *arg, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		if (cond(arg))
			return 1;
		if (now_ms() >= deadline)
			return 0;
		nap_ms(5);
	}
}

int
harness_decode_status(int ws)
{
	if (WIFEXITED(ws))
		return WEXITSTATUS(ws);
	if (WIFSIGNALED(ws))
		return 128 + WTERMSIG(ws);
	return -1;
}

/* Wait up to timeout_ms for pid to exit.  Returns its status as
 * harness_decode_status() gives it, or -1 if it still runs. */
int
harness_wait_pid(pid_t pid, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int ws;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &ws, WNOHANG);
		if (r == pid)
			return harness_decode_status(ws);
		if (r == -1 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline)
			return -1;
		nap_ms(5);
	}
}

/* Append up to what one read() gives from fd to *buf.  Returns bytes read,
 * 0 on EOF, -1 on error. */
ssize_t
harness_slurp(int fd, char **buf, size_t *len)
{
	char tmp[4096], *nb;
	ssize_t n;

	n = read(fd, tmp, sizeof(tmp));
	if (n <= 0)
		return n;
	if ((nb = realloc(*buf, *len + (size_t)n + 1)) == NULL)
		return -1;
	*buf = nb;
	memcpy(*buf + *len, tmp, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
	return n;
}

static void
close_pair(int p[2])
{
	if (p[0] != -1)
		close(p[0]);
	if (p[1] != -1)
		close(p[1]);
}

int
run_command(char *const argv[], const char *input, int timeout_ms,
    int *exit_status, char **out_text, char **err_text)
{
	posix_spawn_file_actions_t fa;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	char *obuf = NULL, *ebuf = NULL;
	size_t olen = 0, elen = 0, ilen, ioff = 0;
	int64_t deadline = now_ms() + timeout_ms;
	struct pollfd pfd[3];
	struct sigaction ign, old_pipe;
	pid_t pid;
	int rc = -1, st;

	*exit_status = -1;
	if (out_text != NULL)
		*out_text = NULL;
	if (err_text != NULL)
		*err_text = NULL;
	ilen = input != NULL ? strlen(input) : 0;
	/* A child that exits without reading its stdin must not kill us. */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old_pipe);
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    pipe2(err, O_CLOEXEC) == -1)
		goto done;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	st = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (st != 0) {
		errno = st;
		goto done;
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	in[0] = out[1] = err[1] = -1;
	if (ilen == 0) {
		close(in[1]);
		in[1] = -1;
	}
	while (out[0] != -1 || err[0] != -1) {
		int64_t left = deadline - now_ms();
		int i;

		if (left <= 0)
			break;
		pfd[0].fd = in[1];
		pfd[0].events = POLLOUT;
		pfd[1].fd = out[0];
		pfd[1].events = POLLIN;
		pfd[2].fd = err[0];
		pfd[2].events = POLLIN;
		if (poll(pfd, 3, (int)left) == -1 && errno != EINTR)
			break;
		if (in[1] != -1 && pfd[0].revents != 0) {
			ssize_t n = write(in[1], input + ioff, ilen - ioff);

			if (n > 0)
				ioff += (size_t)n;
			if (n <= 0 || ioff == ilen) {
				close(in[1]);
				in[1] = -1;
			}
		}
		for (i = 1; i < 3; i++) {
			int *fd = i == 1 ? &out[0] : &err[0];

			if (*fd == -1 || pfd[i].revents == 0)
				continue;
			if (harness_slurp(*fd, i == 1 ? &obuf : &ebuf,
			    i == 1 ? &olen : &elen) <= 0) {
				close(*fd);
				*fd = -1;
			}
		}
	}
	st = harness_wait_pid(pid, (int)(deadline > now_ms() ?
	    deadline - now_ms() : 0));
	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	} else {
		*exit_status = st;
		rc = 0;
	}
done:
	sigaction(SIGPIPE, &old_pipe, NULL);
	close_pair(in);
	close_pair(out);
	close_pair(err);
	if (rc == 0 && out_text != NULL)
		*out_text = obuf != NULL ? obuf : strdup("");
	else
		free(obuf);
	if (rc == 0 && err_text != NULL)
		*err_text = ebuf != NULL ? ebuf : strdup("");
	else
		free(ebuf);
	return rc;
}

long
proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}
