/*
 * failalloc.h - an allocation-failure countdown for unit tests, after
 * sqlite's do_malloc_test: failalloc_arm(n) makes the nth allocation from
 * now fail (once), so that a test can run an operation for n = 1, 2, ...
 * until it completes without reaching the failure, and check each out-of-
 * memory path on the way.
 *
 * It works by the linker's --wrap: a test binary linked with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,
 *   --wrap=strndup,--wrap=aligned_alloc,--wrap=posix_memalign
 * and failalloc.o has every call to these functions that an object linked
 * statically into it makes (the host code, the core archive, the test)
 * go through the wrappers below.  Calls from inside shared libraries do
 * not: json-c's, inih's, libc's and Criterion's own allocations, and a
 * plugin's, never fail.  So a json-c object that host code creates
 * through json-c's API cannot be failed here, nor can libc functions that
 * allocate inside (scandir, getpwnam).  strdup is wrapped itself because
 * libc's strdup calls malloc inside libc, where --wrap does not reach.
 * free() is not wrapped: nothing needs it.
 *
 * A failing call returns NULL with errno ENOMEM (posix_memalign returns
 * ENOMEM), like a real allocator out of memory.  The countdown is atomic,
 * so threads the code under test starts count too.  Unarmed, the wrappers
 * only pass the calls on.
 */
#ifndef CMDHOST_TEST_FAILALLOC_H
#define CMDHOST_TEST_FAILALLOC_H

/* Make the nth allocation from now fail, that one only (n >= 1), and
 * forget whether an earlier one fired; n = 0 disarms. */
void failalloc_arm(long n);

/* Stop counting; returns failalloc_hit(). */
int failalloc_disarm(void);

/* True if the failure armed last has happened. */
int failalloc_hit(void);

#endif /* CMDHOST_TEST_FAILALLOC_H */
