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

/* Hash a file's bytes (FNV-1a 64).  Opens without blocking and refuses
 * what is not a regular file (-EINVAL).  Returns 0 or a negative errno. */
int loader_hash_file(const char *path, uint64_t *hash);

/*
 * Open plugin file `name` of directory dirfd for reading, so that nothing
 * can block or mislead the reads that follow: refused unless a regular
 * file of at most cfg->max_plugin_bytes (looked at before it is opened,
 * so a device is never opened, and checked again with fstat on the open
 * descriptor), opened O_NONBLOCK (a FIFO swapped in meanwhile cannot
 * block), and unless cfg->allow_insecure_plugins owned by root or the
 * daemon's user and not writable by others (trust_check).  A symbolic
 * link is followed: what is checked is what was opened.  Returns the fd
 * (close it), or -1 with the reason in err.  cfg is borrowed.
 */
int loader_open_at(int dirfd, const char *name, const struct config *cfg,
    char *err, size_t errlen);

/*
 * What `cmdhostd -t` asks of plugin file `name` of dirfd without running
 * any of its code: loader_open_at()'s checks, then the ELF checks a load
 * makes before dlopen (a complete shared object for this machine).
 * Returns 0, or -1 with the reason in err.  cfg is borrowed.
 */
int loader_check_at(int dirfd, const char *name, const struct config *cfg,
    char *err, size_t errlen);

/* Hash what fd (a regular file) holds from offset 0, at most max_bytes
 * (past them -EFBIG).  Returns 0 or a negative errno. */
int loader_hash_fd(int fd, size_t max_bytes, uint64_t *hash);

/*
 * Load the plugin file open as fd (from loader_open_at(), borrowed; read
 * with pread from offset 0, at most cfg->max_plugin_bytes) and named
 * `file` in the plugin directory, from a private copy in copy_dir (made
 * again, 0700, if it went).  Results as loader_load().
 */
int loader_load_fd(const struct config *cfg, int fd, const char *file,
    const char *copy_dir, struct generation **out, char **name_out,
    char *err, size_t errlen);

/*
 * Load the private copy at `path` as it is (no copy is made, nothing is
 * removed): what a worker does with the daemon's sealed copy
 * ("/proc/self/fd/N").  file is the name in the plugin directory.
 * Results as loader_load().
 */
int loader_load_private(const struct config *cfg, const char *path,
    const char *file, struct generation **out, char **name_out, char *err,
    size_t errlen);

/*
 * Load `path` (a file named `file` in the plugin directory; the directory
 * itself must pass trust_check() unless insecure) through
 * loader_open_at() and loader_load_fd(), from a private copy in
 * copy_dir.  On success returns 0 and a new generation in *out with
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

/* loader_unload(), then ask the dynamic linker whether the copy is still
 * mapped (dlopen RTLD_NOLOAD by the name it was opened with).  Returns 1
 * when it is -- dlclose could not unload it: a thread-local variable with
 * a destructor (C++ thread_local, Rust thread_local!) holds it until its
 * threads exit, or it is RTLD_NODELETE (-z nodelete), or it has
 * STB_GNU_UNIQUE symbols -- and counts it in loader_still_mapped(); else
 * 0.  NULL is ok (0). */
int loader_unload_mapped(struct generation *g);

/* How many unloaded copies are still mapped now (each counted one is
 * looked at again, so one whose hold went away is no longer counted).
 * Any thread. */
long loader_still_mapped(void);

#endif /* CMDHOST_LOADER_H */
