/*
 * sha256.h - SHA-256 (FIPS 180-4), small and dependency-free: the hash
 * host.list shows for each plugin file, so an operator can tell which
 * bytes run (`sha256sum FILE` gives the same hex).
 */
#ifndef CMDHOST_SHA256_H
#define CMDHOST_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
	uint32_t h[8];
	uint64_t bytes;           /* hashed so far */
	unsigned char block[64];
	size_t used;              /* of block */
};

void sha256_init(struct sha256 *s);
/* Hash n more bytes of p (borrowed). */
void sha256_update(struct sha256 *s, const void *p, size_t n);
/* Finish: the digest as 64 lowercase hex digits and a NUL into hex. */
void sha256_hex(struct sha256 *s, char hex[65]);

/* The SHA-256 of what fd (a regular file) holds from offset 0, read with
 * pread, as hex.  Returns 0 or a negative errno. */
int sha256_fd(int fd, char hex[65]);

#endif /* CMDHOST_SHA256_H */
