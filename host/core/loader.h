/*
 * loader.h - turn one plugin file into a checked, registered generation.
 *
 * The loader copies the file, dlopens the copy, checks the descriptor's
 * magic and ABI before calling any plugin function, runs registration and
 * checks every command.  It publishes nothing: the registry does that.
 */
#ifndef CMDHOST_LOADER_H
#define CMDHOST_LOADER_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct generation;

/* Hash a file's bytes (FNV-1a 64).  Returns 0 or a negative errno. */
int loader_hash_file(const char *path, uint64_t *hash);

/*
 * Load `path` (a file named `file` in the plugin directory) from a private
 * copy in copy_dir.  On success returns 0 and a new generation in *out with
 * one reference (the caller's), state and commands registered; its number is
 * 0 until the registry publishes it.  On failure returns -1 and a reason in
 * err, and nothing is left loaded or on disk.  cfg is borrowed (plugin
 * sections).  If name_out is not NULL it gets a malloc'd copy of the
 * descriptor's name whenever it could be read (caller frees), even on
 * failure.
 */
int loader_load(const struct config *cfg, const char *path, const char *file,
    const char *copy_dir, struct generation **out, char **name_out,
    char *err, size_t errlen);

/* Finalize and unload a generation nobody references any more: fini, then
 * dlclose, then remove the private copy, then free.  NULL is ok. */
void loader_unload(struct generation *g);

#endif /* CMDHOST_LOADER_H */
