/*
 * ipc.c - encode, decode, send and receive the daemon <-> worker
 * messages of ipc.h.
 *
 * A message is its type (u32) and then fields in an order both sides
 * know: u32, i64 (little-endian host order: both ends are one machine)
 * and strings (u32 length, 0xffffffff for NULL, the bytes, a NUL).
 */
#include "ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "generation.h"
#include "loader.h"

#define NULL_LEN 0xffffffffu
#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

/* ------------------------------------------------------------ writing */

static void
put(struct ipc_msg *msg, const void *p, size_t n)
{
	if (msg->oom)
		return;
	if (msg->len + n > msg->cap) {
		size_t cap = msg->cap ? msg->cap : 256;
		char *b;

		while (cap < msg->len + n)
			cap *= 2;
		if ((b = realloc(msg->buf, cap)) == NULL) {
			msg->oom = 1;
			return;
		}
		msg->buf = b;
		msg->cap = cap;
	}
	memcpy(msg->buf + msg->len, p, n);
	msg->len += n;
}

void
ipc_msg_init(struct ipc_msg *msg, uint32_t type)
{
	memset(msg, 0, sizeof(*msg));
	ipc_put_u32(msg, type);
}

void
ipc_msg_fini(struct ipc_msg *msg)
{
	if (msg == NULL)
		return;
	free(msg->buf);
	memset(msg, 0, sizeof(*msg));
}

void
ipc_put_u32(struct ipc_msg *msg, uint32_t v)
{
	put(msg, &v, sizeof(v));
}

void
ipc_put_i64(struct ipc_msg *msg, int64_t v)
{
	put(msg, &v, sizeof(v));
}

void
ipc_put_str(struct ipc_msg *msg, const char *s, size_t len)
{
	if (s == NULL) {
		ipc_put_u32(msg, NULL_LEN);
		return;
	}
	if (len >= NULL_LEN) {
		msg->oom = 1;
		return;
	}
	ipc_put_u32(msg, (uint32_t)len);
	put(msg, s, len);
	put(msg, "", 1);
}

void
ipc_put_cstr(struct ipc_msg *msg, const char *s)
{
	ipc_put_str(msg, s, s ? strlen(s) : 0);
}

/* ------------------------------------------------------------ reading */

static const void *
get(struct ipc_rd *rd, size_t n)
{
	const void *p;

	if (rd->bad || rd->len - rd->off < n) {
		rd->bad = 1;
		return NULL;
	}
	p = rd->p + rd->off;
	rd->off += n;
	return p;
}

uint32_t
ipc_rd_init(struct ipc_rd *rd, const char *buf, size_t len)
{
	rd->p = buf;
	rd->len = len;
	rd->off = 0;
	rd->bad = 0;
	return ipc_get_u32(rd);
}

uint32_t
ipc_get_u32(struct ipc_rd *rd)
{
	const void *p = get(rd, sizeof(uint32_t));
	uint32_t v = 0;

	if (p != NULL)
		memcpy(&v, p, sizeof(v));
	return v;
}

int64_t
ipc_get_i64(struct ipc_rd *rd)
{
	const void *p = get(rd, sizeof(int64_t));
	int64_t v = 0;

	if (p != NULL)
		memcpy(&v, p, sizeof(v));
	return v;
}

const char *
ipc_get_str(struct ipc_rd *rd, size_t *len)
{
	uint32_t n = ipc_get_u32(rd);
	const char *s;

	if (len != NULL)
		*len = 0;
	if (rd->bad || n == NULL_LEN)
		return NULL;
	if ((s = get(rd, (size_t)n + 1)) == NULL || s[n] != '\0') {
		rd->bad = 1;
		return NULL;
	}
	if (len != NULL)
		*len = n;
	return s;
}

/* ------------------------------------------------------------ moving */

/* A memfd holding len bytes of p, sealed; or a negative errno. */
static int
big_fd(const char *p, size_t len)
{
	int fd = memfd_create("cmdhost-ipc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t off = 0;

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;

			close(fd);
			return -e;
		}
		off += (size_t)w;
	}
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
	    F_SEAL_SEAL);
	return fd;
}

int
ipc_send(int sock, const struct ipc_msg *msg, int flags)
{
	struct msghdr mh;
	struct iovec iov;
	char cbuf[CMSG_SPACE(sizeof(int))];
	char hdr[sizeof(uint32_t) + sizeof(int64_t)];
	int fd = -1, rc = 0;

	if (msg->oom)
		return -ENOMEM;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (msg->len <= IPC_INLINE_MAX) {
		iov.iov_base = msg->buf;
		iov.iov_len = msg->len;
	} else {
		uint32_t t = IPC_BIG;
		int64_t n = (int64_t)msg->len;
		struct cmsghdr *cm;

		if ((fd = big_fd(msg->buf, msg->len)) < 0)
			return fd;
		memcpy(hdr, &t, sizeof(t));
		memcpy(hdr + sizeof(t), &n, sizeof(n));
		iov.iov_base = hdr;
		iov.iov_len = sizeof(hdr);
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	for (;;) {
		if (sendmsg(sock, &mh, flags | MSG_NOSIGNAL) >= 0)
			break;
		if (errno == EINTR)
			continue;
		rc = -errno;
		break;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Make *buf hold at least n bytes.  Returns 0 or -ENOMEM. */
static int
reserve(char **buf, size_t *cap, size_t n)
{
	char *b;

	if (*cap >= n)
		return 0;
	if ((b = realloc(*buf, n)) == NULL)
		return -ENOMEM;
	*buf = b;
	*cap = n;
	return 0;
}

int
ipc_recv(int sock, int flags, char **buf, size_t *cap, size_t *len)
{
	struct msghdr mh;
	struct iovec iov;
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct cmsghdr *cm;
	int fd = -1, rc;
	ssize_t n;

	if ((rc = reserve(buf, cap, IPC_INLINE_MAX)) < 0)
		return rc;
	for (;;) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = *buf;
		iov.iov_len = *cap;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		if ((n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC)) >= 0)
			break;
		if (errno != EINTR)
			return -errno;
	}
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type ==
		    SCM_RIGHTS) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int f;

				memcpy(&f, CMSG_DATA(cm) + i * sizeof(int),
				    sizeof(int));
				if (fd < 0)
					fd = f;
				else
					close(f);
			}
		}
	}
	if (n == 0 && fd < 0)
		return 0;
	if ((size_t)n >= sizeof(uint32_t) && fd >= 0) {
		uint32_t t;
		int64_t big = 0;
		size_t off = 0;

		memcpy(&t, *buf, sizeof(t));
		if (t != IPC_BIG || (size_t)n < sizeof(t) + sizeof(big)) {
			close(fd);
			return -EPROTO;
		}
		memcpy(&big, *buf + sizeof(t), sizeof(big));
		if (big <= 0 || big > (int64_t)1 << 32 ||
		    reserve(buf, cap, (size_t)big) < 0) {
			close(fd);
			return big <= 0 ? -EPROTO : -ENOMEM;
		}
		while (off < (size_t)big) {
			ssize_t r = pread(fd, *buf + off, (size_t)big - off,
			    (off_t)off);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				close(fd);
				return -EPROTO;
			}
			off += (size_t)r;
		}
		close(fd);
		*len = (size_t)big;
		return 1;
	}
	if (fd >= 0)
		close(fd);
	*len = (size_t)n;
	return 1;
}

int
ipc_copy_fd(int fd, size_t max, uint64_t *hash, char *err, size_t errlen)
{
	char block[65536];
	uint64_t h = FNV_OFFSET, total = 0;
	int out = memfd_create("cmdhost-plugin", MFD_CLOEXEC |
	    MFD_ALLOW_SEALING);

	if (out < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot make a private copy (memfd): %s",
		    strerror(e));
		return -e;
	}
	for (;;) {
		ssize_t n = pread(fd, block, sizeof(block), (off_t)total);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			snprintf(err, errlen, "cannot read: %s", strerror(e));
			close(out);
			return -e;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > max) {
			snprintf(err, errlen, "larger than max_plugin_bytes "
			    "(%zu)", max);
			close(out);
			return -EFBIG;
		}
		for (ssize_t i = 0; i < n; i++) {
			h ^= (unsigned char)block[i];
			h *= FNV_PRIME;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, block + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				int e = w < 0 ? errno : EIO;

				snprintf(err, errlen, "cannot write the private "
				    "copy: %s", strerror(e));
				close(out);
				return -e;
			}
			off += w;
		}
	}
	/* Nothing can change the bytes the workers map from now on. */
	fcntl(out, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
	    F_SEAL_SEAL);
	*hash = h;
	return out;
}

/* ------------------------------------------------------------ READY */

void
ipc_put_ready(struct ipc_msg *msg, const struct generation *g,
    const char *err)
{
	ipc_put_u32(msg, g != NULL);
	if (g == NULL) {
		ipc_put_cstr(msg, err ? err : "load failed");
		return;
	}
	ipc_put_cstr(msg, g->name);
	ipc_put_cstr(msg, g->version);
	ipc_put_u32(msg, g->abi_major);
	ipc_put_u32(msg, g->abi_minor);
	ipc_put_u32(msg, (uint32_t)g->desc_by_fn);
	ipc_put_u32(msg, (uint32_t)g->n_commands);
	for (size_t i = 0; i < g->n_commands; i++) {
		const struct command *c = &g->commands[i];
		uint32_t nf = 0;

		ipc_put_cstr(msg, c->name);
		ipc_put_cstr(msg, c->summary);
		ipc_put_u32(msg, c->flags);
		ipc_put_u32(msg, c->validate != NULL);
		if (c->fields != NULL)
			while (c->fields[nf].name != NULL)
				nf++;
		ipc_put_u32(msg, c->fields != NULL ? nf : NULL_LEN);
		for (uint32_t k = 0; c->fields != NULL && k < nf; k++) {
			ipc_put_cstr(msg, c->fields[k].name);
			ipc_put_u32(msg, (uint32_t)c->fields[k].type);
			ipc_put_u32(msg, (uint32_t)c->fields[k].required);
		}
	}
}

static char *
dup_or_null(const char *s, int *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*oom = 1;
	return d;
}

int
ipc_get_ready(struct ipc_rd *rd, const char *file, cmdhost_execute_fn stub,
    struct generation **out, char *err, size_t errlen)
{
	struct generation *g;
	uint32_t ok = ipc_get_u32(rd), n;
	int oom = 0;

	*out = NULL;
	if (!ok) {
		const char *why = ipc_get_str(rd, NULL);

		snprintf(err, errlen, "%s", why ? why : "the worker sent a bad "
		    "READY message");
		return -1;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	atomic_init(&g->refs, 1);
	g->meta_owned = 1;
	g->name = dup_or_null(ipc_get_str(rd, NULL), &oom);
	g->version = dup_or_null(ipc_get_str(rd, NULL), &oom);
	g->file = dup_or_null(file, &oom);
	g->abi_major = ipc_get_u32(rd);
	g->abi_minor = ipc_get_u32(rd);
	g->desc_by_fn = (int)ipc_get_u32(rd);
	n = ipc_get_u32(rd);
	if (!rd->bad && n > 0 && n < 65536 &&
	    (g->commands = calloc(n, sizeof(*g->commands))) == NULL)
		oom = 1;
	for (uint32_t i = 0; !rd->bad && !oom && i < n && n < 65536; i++) {
		struct command *c = &g->commands[i];
		const char *name = ipc_get_str(rd, NULL);
		uint32_t nf;
		cmdhost_field *fs = NULL;

		g->n_commands++;
		snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
		c->summary = dup_or_null(ipc_get_str(rd, NULL), &oom);
		c->flags = ipc_get_u32(rd);
		(void)ipc_get_u32(rd); /* has validate: it runs in the worker */
		c->execute = stub;
		c->gen = g;
		nf = ipc_get_u32(rd);
		if (nf == NULL_LEN)
			continue;
		if (nf > 4096 || (fs = calloc((size_t)nf + 1,
		    sizeof(*fs))) == NULL) {
			oom = 1;
			break;
		}
		c->fields = fs;
		for (uint32_t k = 0; k < nf && !rd->bad; k++) {
			fs[k].name = dup_or_null(ipc_get_str(rd, NULL), &oom);
			fs[k].type = (int)ipc_get_u32(rd);
			fs[k].required = (int)ipc_get_u32(rd);
			if (fs[k].name == NULL)
				rd->bad = 1;
		}
	}
	if (!rd->bad && !oom && n >= 65536) {
		snprintf(err, errlen, "the plugin registers %lu commands: at "
		    "most 65535 are taken from one plugin", (unsigned long)n);
		loader_unload(g);
		return -1;
	}
	if (rd->bad || oom || g->name == NULL || g->version == NULL ||
	    g->file == NULL || n == 0) {
		snprintf(err, errlen, "%s", oom ? "out of memory" :
		    "the worker sent a bad READY message");
		loader_unload(g);
		return -1;
	}
	g->loaded_at_ms = clock_wall_ms();
	*out = g;
	return 0;
}
