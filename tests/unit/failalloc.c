/*
 * failalloc.c - the allocator wrappers of failalloc.h (linked with
 * -Wl,--wrap=...; see there for what they can and cannot fail).
 */
#include "failalloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

/* The real allocators, as the linker names them under --wrap. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t nmemb, size_t n);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t nmemb, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);

/* Allocations left before the one that fails; 0: disarmed. */
static atomic_long countdown;
static atomic_int fired;

void
failalloc_arm(long n)
{
	atomic_store(&countdown, 0);
	atomic_store(&fired, 0);
	atomic_store(&countdown, n > 0 ? n : 0);
}

int
failalloc_disarm(void)
{
	atomic_store(&countdown, 0);
	return failalloc_hit();
}

int
failalloc_hit(void)
{
	return atomic_load(&fired);
}

/* Count one allocation: 1 if it is the one to fail. */
static int
fail_now(void)
{
	long c = atomic_load(&countdown);

	while (c > 0) {
		if (atomic_compare_exchange_weak(&countdown, &c, c - 1)) {
			if (c != 1)
				return 0;
			atomic_store(&fired, 1);
			return 1;
		}
	}
	return 0;
}

void *
__wrap_malloc(size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(n);
}

void *
__wrap_calloc(size_t nmemb, size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(nmemb, n);
}

/* A failed realloc leaves p as it was, as the real one does. */
void *
__wrap_realloc(void *p, size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, n);
}

char *
__wrap_strdup(const char *s)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strndup(s, n);
}

void *
__wrap_aligned_alloc(size_t align, size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_aligned_alloc(align, n);
}

int
__wrap_posix_memalign(void **p, size_t align, size_t n)
{
	if (fail_now())
		return ENOMEM;
	return __real_posix_memalign(p, align, n);
}
