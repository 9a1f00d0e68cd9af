/*
 * test_sha256.c - the SHA-256 of host.list against FIPS 180-4's examples
 * and against sha256sum(1) on a file, fed in odd-sized pieces.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/sha256.h"

static void
check(const char *msg, size_t len, size_t piece, const char *want)
{
	struct sha256 s;
	char hex[65];

	sha256_init(&s);
	for (size_t off = 0; off < len; off += piece)
		sha256_update(&s, msg + off, len - off < piece ? len - off :
		    piece);
	sha256_hex(&s, hex);
	cr_assert_str_eq(hex, want, "len %zu piece %zu", len, piece);
}

Test(sha256, fips_examples)
{
	static const char *abc = "abc";
	static const char *two =
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char *million = malloc(1000000);

	check("", 0, 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495"
	    "991b7852b855");
	check(abc, 3, 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410"
	    "ff61f20015ad");
	for (size_t piece = 1; piece <= 64; piece++)
		check(two, strlen(two), piece, "248d6a61d20638b8e5c026930c3e60"
		    "39a33ce45964ff2167f6ecedd419db06c1");
	cr_assert(million != NULL);
	memset(million, 'a', 1000000);
	check(million, 1000000, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f18"
	    "09a48a497200e046d39ccc7112cd0");
	check(million, 1000000, 4097, "cdc76e5c9914fb9281a1c7e284d73e67f1809a"
	    "48a497200e046d39ccc7112cd0");
	free(million);
}

Test(sha256, file_matches_sha256sum)
{
	char path[] = "/tmp/cmdhost-sha.XXXXXX", cmd[128], want[65] = "";
	char hex[65];
	FILE *p;
	int fd = mkstemp(path);

	cr_assert(fd >= 0);
	for (int i = 0; i < 200000; i++) {
		unsigned char c = (unsigned char)(i * 7 + i / 251);

		cr_assert(write(fd, &c, 1) == 1);
	}
	cr_assert(sha256_fd(fd, hex) == 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "sha256sum %s", path);
	p = popen(cmd, "r");
	cr_assert(p != NULL && fscanf(p, "%64s", want) == 1);
	pclose(p);
	unlink(path);
	cr_assert_str_eq(hex, want);
}
