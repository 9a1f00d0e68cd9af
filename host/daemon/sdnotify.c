/*
 * sdnotify.c - systemd's notification protocol: one datagram of
 * "KEY=VALUE\n" lines to the Unix socket in $NOTIFY_SOCKET (a path, or
 * "@name" in the abstract namespace), as sd_notify(3) documents it, so
 * the daemon does not link libsystemd.  Also the watchdog thread, which
 * pings only while its alive() hook says the daemon makes progress.
 * It never decides what "alive" means: main.c asks the server.
 */
#include "sdnotify.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/thread.h"

static struct {
	int fd;                   /* the datagram socket, or -1 */
	struct sockaddr_un addr;
	socklen_t addrlen;
	int64_t watchdog_usec;    /* 0: no watchdog */
	pthread_t thread;
	int started;
	pthread_mutex_t lock;     /* stop and cond */
	pthread_cond_t cond;
	int stop;
	sdnotify_alive_fn alive;
	void *arg;
} sd = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

int
sdnotify_open(char *err, size_t errlen)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *usec = getenv("WATCHDOG_USEC");
	const char *wpid = getenv("WATCHDOG_PID");
	size_t len;

	/* Only this process was meant (systemd sets WATCHDOG_PID to the
	 * main pid); a child started with our environment is not. */
	if (usec != NULL && (wpid == NULL ||
	    strtoll(wpid, NULL, 10) == (long long)getpid())) {
		char *end;
		long long v = strtoll(usec, &end, 10);

		if (*end == '\0' && v > 0)
			sd.watchdog_usec = v;
	}
	if (path == NULL || path[0] == '\0') {
		sd.watchdog_usec = 0;
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		return 0;
	}
	len = strlen(path);
	memset(&sd.addr, 0, sizeof(sd.addr));
	sd.addr.sun_family = AF_UNIX;
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof(sd.addr.sun_path)) {
		snprintf(err, errlen, "NOTIFY_SOCKET=%.200s: not an absolute "
		    "path or an @abstract name that fits a Unix socket "
		    "address", path);
		return -1;
	}
	memcpy(sd.addr.sun_path, path, len);
	if (path[0] == '@') {
		/* The abstract namespace: a NUL first, no NUL at the end. */
		sd.addr.sun_path[0] = '\0';
		sd.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		    len);
	} else {
		sd.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		    len + 1);
	}
	if ((sd.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "NOTIFY_SOCKET: socket: %s",
		    strerror(errno));
		return -1;
	}
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return 1;
}

int
sdnotify_send(const char *text)
{
	ssize_t n;

	if (sd.fd < 0)
		return 0;
	do
		n = sendto(sd.fd, text, strlen(text), MSG_NOSIGNAL,
		    (struct sockaddr *)&sd.addr, sd.addrlen);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

int
sdnotify_sendf(const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (sd.fd < 0)
		return 0;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return sdnotify_send(text);
}

int
sdnotify_reloading(void)
{
	return sdnotify_sendf("RELOADING=1\nMONOTONIC_USEC=%lld",
	    (long long)(clock_mono_ns() / 1000));
}

int64_t
sdnotify_watchdog_usec(void)
{
	return sd.fd >= 0 ? sd.watchdog_usec : 0;
}

/* Every half interval: ping if alive, else say once why not. */
static void *
watchdog_main(void *arg)
{
	int64_t every_ns = sd.watchdog_usec * 500, next;
	int withheld = 0;

	(void)arg;
	pthread_setname_np(pthread_self(), "cmdhostd-sdwd");
	pthread_mutex_lock(&sd.lock);
	next = clock_mono_ns();
	while (!sd.stop) {
		char why[256] = "";

		pthread_mutex_unlock(&sd.lock);
		if (sd.alive(sd.arg, why, sizeof(why))) {
			if (withheld)
				log_info("systemd watchdog: every event loop "
				    "makes progress again; pings resume");
			withheld = 0;
			(void)sdnotify_send("WATCHDOG=1");
		} else if (!withheld) {
			log_warnx("systemd watchdog: pings withheld: %s", why);
			withheld = 1;
		}
		pthread_mutex_lock(&sd.lock);
		next += every_ns;
		while (!sd.stop && clock_mono_ns() < next) {
			struct timespec ts = clock_mono_ts(next);

			pthread_cond_timedwait(&sd.cond, &sd.lock, &ts);
		}
	}
	pthread_mutex_unlock(&sd.lock);
	return NULL;
}

int
sdnotify_watchdog_start(sdnotify_alive_fn alive, void *arg)
{
	int e;

	if (sdnotify_watchdog_usec() <= 0 || sd.started)
		return 0;
	sd.alive = alive;
	sd.arg = arg;
	sd.stop = 0;
	thread_cond_init(&sd.cond);
	if ((e = pthread_create(&sd.thread, NULL, watchdog_main, NULL)) != 0) {
		pthread_cond_destroy(&sd.cond);
		return -e;
	}
	sd.started = 1;
	return 0;
}

void
sdnotify_watchdog_stop(void)
{
	if (!sd.started)
		return;
	pthread_mutex_lock(&sd.lock);
	sd.stop = 1;
	pthread_cond_broadcast(&sd.cond);
	pthread_mutex_unlock(&sd.lock);
	pthread_join(sd.thread, NULL);
	pthread_cond_destroy(&sd.cond);
	sd.started = 0;
}

void
sdnotify_close(void)
{
	if (sd.fd >= 0)
		close(sd.fd);
	sd.fd = -1;
}
