/*
 * tls_dtor.c - a plugin with a thread-local variable that has a
 * destructor, as C++ thread_local and Rust thread_local! make one: the
 * first call on a thread registers the destructor with
 * __cxa_thread_atexit_impl() against this object's __dso_handle, so glibc
 * keeps the object mapped after dlclose until that thread exits.
 * `tls.touch` replies {"version": "1"}.  The still-mapped test swaps it.
 */
#include <cmdhost/plugin.h>

#include <stdlib.h>

/* glibc's: what g++ calls for a thread_local with a destructor. */
extern int __cxa_thread_atexit_impl(void (*dtor)(void *), void *obj,
    void *dso_symbol);
extern void *__dso_handle;

static __thread int tls_registered;
static __thread int tls_value;

static void
tls_destroy(void *obj)
{
	(void)obj;
	tls_registered = 0;
}

static int
tls_touch(cmdhost_ctx *ctx)
{
	struct json_object *body = json_object_new_object();

	if (!tls_registered) {
		tls_registered = 1;
		(void)__cxa_thread_atexit_impl(tls_destroy, &tls_value,
		    &__dso_handle);
	}
	tls_value++;
	json_object_object_add(body, "version", json_object_new_string("1"));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_command tls_command = {
	"tls.touch", "Touch a thread-local that has a destructor", NULL, NULL,
	tls_touch, 0
};

static int
tls_register(cmdhost_registrar *reg)
{
	return cmdhost_add_command(reg, &tls_command) != 0 ? -1 : 0;
}

CMDHOST_PLUGIN("tls_dtor", "1", tls_register);
