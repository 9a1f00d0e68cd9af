/*
 * module.h - find and dlopen one of cmdhost's own modules (today only
 * cmdhost-nats.so), the same way in every program that loads one:
 * cmdhostd for [nats], cmdhost for --nats.
 */
#ifndef CMDHOST_MODULE_H
#define CMDHOST_MODULE_H

#include <stddef.h>

/*
 * Open the module named `file` (a base name, "cmdhost-nats.so").  When
 * `path` is not NULL it is the one place tried (the [nats] module key, or
 * the client's $CMDHOST_NATS_MODULE); else the first of
 *
 *   <dir of /proc/self/exe>/lib/<file>             a build tree
 *   <dir of /proc/self/exe>/../lib/cmdhost/<file>  an installed program
 *                                                  (PREFIX/bin, PREFIX/sbin)
 *   CMDHOST_LIBDIR/<file>                          the PREFIX built for
 *
 * that dlopen(RTLD_NOW | RTLD_LOCAL) loads.  path and file are borrowed.
 * Returns the handle (the caller's; the programs keep it open until they
 * exit), or NULL with every path tried and why it failed, "; "-separated,
 * in the caller's err buffer.
 */
void *module_open(const char *path, const char *file, char *err,
    size_t errlen);

#endif /* CMDHOST_MODULE_H */
