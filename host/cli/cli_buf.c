/*
 * cli_buf.c - the client's growable byte buffer, and reading a whole fd
 * into one.  It knows nothing of sockets or JSON.
 */
#include "cli.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
cli_buf_reserve(struct cli_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if ((p = realloc(b->data, cap)) == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int
cli_buf_append(struct cli_buf *b, const void *p, size_t n)
{
	if (cli_buf_reserve(b, n) < 0)
		return -ENOMEM;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

void
cli_buf_consume(struct cli_buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void
cli_buf_fini(struct cli_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

ssize_t
cli_buf_read_some(int fd, struct cli_buf *b)
{
	ssize_t r;

	if (cli_buf_reserve(b, CLI_READ_CHUNK) < 0)
		return -ENOMEM;
	while ((r = read(fd, b->data + b->len, CLI_READ_CHUNK)) < 0)
		if (errno != EINTR)
			return -errno;
	b->len += (size_t)r;
	b->data[b->len] = '\0';
	return r;
}

int
cli_buf_read_all(int fd, struct cli_buf *b)
{
	ssize_t r;

	while ((r = cli_buf_read_some(fd, b)) > 0)
		;
	return (int)r;
}
