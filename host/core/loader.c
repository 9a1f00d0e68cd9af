/*
 * loader.c - load one plugin file as a generation, all or nothing.
 *
 * Order of checks: the file is a regular file; its private copy dlopens;
 * the descriptor symbol exists; magic and ABI match (no plugin code has
 * been called yet, apart from ELF constructors, which dlopen runs); the
 * registration function succeeds and every command it adds is valid.
 * This file never logs: reasons go back in the caller's buffer.
 */
#include "loader.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmdhost/plugin.h>

#include "api.h"
#include "buf.h"
#include "clock.h"
#include "config.h"
#include "generation.h"
#include "log.h"
#include "sha256.h"
#include "trust.h"

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL


static void
fnv(uint64_t *h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*h ^= p[i];
		*h *= FNV_PRIME;
	}
}

/* Read at most max bytes of fd from offset 0 into fn's hash; past max
 * is -EFBIG.  Returns 0 or a negative errno. */
static int
hash_fd(int fd, size_t max, uint64_t *hash, int out, char *err,
    size_t errlen)
{
	unsigned char block[65536];
	uint64_t total = 0;
	ssize_t n;

	*hash = FNV_OFFSET;
	for (;;) {
		n = pread(fd, block, sizeof(block), (off_t)total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += (uint64_t)n;
		if (total > max) {
			snprintf(err, errlen, "larger than max_plugin_bytes "
			    "(%zu)", max);
			return -EFBIG;
		}
		fnv(hash, block, (size_t)n);
		for (ssize_t off = 0; out >= 0 && off < n;) {
			ssize_t w = write(out, block + off, (size_t)(n - off));

			if (w < 0) {
				if (errno == EINTR)
					continue;
				snprintf(err, errlen, "cannot write private "
				    "copy: %s", strerror(errno));
				return -errno;
			}
			off += w;
		}
	}
	if (n < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot read: %s", strerror(e));
		return -e;
	}
	return 0;
}

/* What a file that is not a regular one is, for the reason. */
static const char *
file_kind(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

/* Refuse st unless it is a regular file of at most max bytes. */
static int
check_regular(const struct stat *st, size_t max, char *err, size_t errlen)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "not a regular file (%s)",
		    file_kind(st->st_mode));
		return -1;
	}
	if ((uint64_t)st->st_size > (uint64_t)max) {
		snprintf(err, errlen, "larger than max_plugin_bytes (%lld > "
		    "%zu bytes)", (long long)st->st_size, max);
		return -1;
	}
	return 0;
}

int
loader_open_at(int dirfd, const char *name, const struct config *cfg,
    char *err, size_t errlen)
{
	struct stat st;
	int fd;

	/* A look first, so that a device is never even opened (opening
	 * some has effects); then the real check, on what was opened. */
	if (fstatat(dirfd, name, &st, 0) < 0) {
		snprintf(err, errlen, "cannot stat: %s", strerror(errno));
		return -1;
	}
	if (check_regular(&st, cfg->max_plugin_bytes, err, errlen) < 0)
		return -1;
	/* O_NONBLOCK: a FIFO put in its place meanwhile opens at once. */
	if ((fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC |
	    O_NOCTTY)) < 0) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot stat: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (check_regular(&st, cfg->max_plugin_bytes, err, errlen) < 0 ||
	    (!cfg->allow_insecure_plugins &&
	    trust_check(&st, "the file", err, errlen) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

int
loader_hash_fd(int fd, size_t max_bytes, uint64_t *hash)
{
	char err[128];

	return hash_fd(fd, max_bytes, hash, -1, err, sizeof(err));
}

int
loader_hash_file(const char *path, uint64_t *hash)
{
	struct stat st;
	int fd, rc;

	*hash = FNV_OFFSET;
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC |
	    O_NOCTTY)) < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	rc = loader_hash_fd(fd, (size_t)st.st_size, hash);
	close(fd);
	return rc;
}

/* Make the directory of path dst again, and its parent if that went too
 * (a temp cleaner, or someone tidying state_dir): owner-only, as they
 * were.  Returns 0 or -1. */
static int
remake_dir_of(const char *dst)
{
	char dir[4096], *slash;

	snprintf(dir, sizeof(dir), "%s", dst);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return -1;
	*slash = '\0';
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT || (slash = strrchr(dir, '/')) == NULL ||
	    slash == dir)
		return -1;
	*slash = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -1;
	*slash = '/';
	return mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* Copy the open file in (from its start, at most max bytes) to a new
 * file dst (mode 0600) and hash the bytes copied.  Returns 0 or -1 with
 * the reason in err. */
static int
copy_fd(int in, const char *dst, size_t max, uint64_t *hash, char *err,
    size_t errlen)
{
	int out, rc = -1;

	if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0 && errno == ENOENT &&
	    remake_dir_of(dst) == 0)
		out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
	if (out < 0) {
		snprintf(err, errlen, "cannot create private copy %s: %s", dst,
		    strerror(errno));
		return -1;
	}
	if (hash_fd(in, max, hash, out, err, errlen) == 0)
		rc = 0;
	if (close(out) < 0 && rc == 0) {
		snprintf(err, errlen, "cannot write private copy: %s",
		    strerror(errno));
		rc = -1;
	}
	if (rc < 0)
		unlink(dst);
	return rc;
}

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#elif defined(__i386__)
#define HOST_MACHINE EM_386
#elif defined(__arm__)
#define HOST_MACHINE EM_ARM
#elif defined(__riscv)
#define HOST_MACHINE EM_RISCV
#endif

#if UINTPTR_MAX == 0xffffffffffffffffu
typedef Elf64_Ehdr Ehdr;
typedef Elf64_Phdr Phdr;
#define HOST_CLASS ELFCLASS64
#else
typedef Elf32_Ehdr Ehdr;
typedef Elf32_Phdr Phdr;
#define HOST_CLASS ELFCLASS32
#endif

/*
 * Check that the file at path is a complete shared object for this
 * machine before dlopen maps it: a truncated file whose segments reach
 * past its end would make the mapping fault (SIGBUS) instead of failing.
 * Returns 0 or -1 with the reason in err.
 */
static int
elf_check_fd(int fd, char *err, size_t errlen)
{
	struct stat st;
	Ehdr eh;
	Phdr ph;
	int rc = -1;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot read: %s", strerror(errno));
		goto out;
	}
	if (st.st_size == 0) {
		snprintf(err, errlen, "empty file");
		goto out;
	}
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
		snprintf(err, errlen, "not an ELF shared object");
		goto out;
	}
	if (eh.e_ident[EI_CLASS] != HOST_CLASS) {
		snprintf(err, errlen, "ELF class %d does not match this "
		    "daemon's (%d-bit)", eh.e_ident[EI_CLASS],
		    HOST_CLASS == ELFCLASS64 ? 64 : 32);
		goto out;
	}
#ifdef HOST_MACHINE
	if (eh.e_machine != HOST_MACHINE) {
		snprintf(err, errlen, "ELF for another machine (e_machine %u, "
		    "this daemon runs on %u)", (unsigned)eh.e_machine,
		    (unsigned)HOST_MACHINE);
		goto out;
	}
#endif
	if (eh.e_type != ET_DYN) {
		snprintf(err, errlen, "not a shared object (ELF type %u)",
		    (unsigned)eh.e_type);
		goto out;
	}
	if (eh.e_phentsize != sizeof(Phdr) || eh.e_phnum == 0 ||
	    (uint64_t)eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Phdr) >
	    (uint64_t)st.st_size) {
		snprintf(err, errlen, "truncated ELF file (program headers "
		    "past its end)");
		goto out;
	}
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff +
		    (uint64_t)i * sizeof(ph))) != (ssize_t)sizeof(ph)) {
			snprintf(err, errlen, "cannot read program header %u", i);
			goto out;
		}
		if ((ph.p_type == PT_LOAD || ph.p_type == PT_DYNAMIC) &&
		    (uint64_t)ph.p_offset + (uint64_t)ph.p_filesz >
		    (uint64_t)st.st_size) {
			snprintf(err, errlen, "truncated ELF file (%lld of at "
			    "least %llu bytes; still being written?)",
			    (long long)st.st_size, (unsigned long long)
			    (ph.p_offset + ph.p_filesz));
			goto out;
		}
	}
	rc = 0;
out:
	return rc;
}

/* elf_check_fd() of the file at path. */
static int
elf_check(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0) {
		snprintf(err, errlen, "cannot read: %s", strerror(errno));
		return -1;
	}
	rc = elf_check_fd(fd, err, errlen);
	close(fd);
	return rc;
}

int
loader_check_at(int dirfd, const char *name, const struct config *cfg,
    char *err, size_t errlen)
{
	int fd = loader_open_at(dirfd, name, cfg, err, errlen), rc;

	if (fd < 0)
		return -1;
	rc = elf_check_fd(fd, err, errlen);
	close(fd);
	return rc;
}

/* A valid version: at most 128 bytes of UTF-8 with no control bytes (it
 * goes into logs, JSON and Prometheus labels as it is). */
static int
valid_version(const char *s)
{
	size_t n = strlen(s), i = 0, len;

	if (n > CMDHOST_NAME_MAX)
		return 0;
	while (i < n) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f ||
		    (len = buf_utf8_seq((const unsigned char *)s + i,
		    n - i)) == 0)
			return 0;
		i += len;
	}
	return 1;
}

/* Free a generation whose plugin code may or may not have been called. */
static void
generation_destroy(struct generation *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->n_commands; i++) {
		struct command *c = &g->commands[i];

		free(c->log_frag);
		if (!g->meta_owned)
			continue;
		free((char *)c->summary);
		for (size_t k = 0; c->fields != NULL &&
		    c->fields[k].name != NULL; k++)
			free((char *)c->fields[k].name);
		free((cmdhost_field *)c->fields);
	}
	free(g->commands);
	if (g->handle != NULL)
		dlclose(g->handle);
	if (g->copy_path != NULL)
		unlink(g->copy_path); /* normally gone already */
	free(g->copy_path);
	free(g->mapped_as);
	free(g->name);
	free(g->version);
	free(g->file);
	free(g);
}

/*
 * dlopen `path` (a private copy nobody can change, named `file` in the
 * plugin directory) into g (taken over: freed on failure), check its
 * descriptor and run its registration.  `unlink_copy`: path is a file of
 * ours to remove once mapped.  Results as loader_load().
 */
static int
load_image(const struct config *cfg, struct generation *g, const char *path,
    int unlink_copy, struct generation **out, char **name_out, char *err,
    size_t errlen)
{
	struct cmdhost_registrar reg;
	const cmdhost_plugin_desc *d;
	int rc;

	if (elf_check(path, err, errlen) < 0)
		goto fail; /* generation_destroy removes the copy */
	/* What host.list shows: the hash of the very bytes dlopen maps. */
	{
		int cfd = open(path, O_RDONLY | O_CLOEXEC);

		if (cfd < 0 || sha256_fd(cfd, g->sha256) < 0)
			g->sha256[0] = '\0';
		if (cfd >= 0)
			close(cfd);
	}
	dlerror();
	/* For the crash record: constructors run inside dlopen. */
	generation_running.command = "(load)";
	generation_running.g = g;
	g->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	generation_running.g = NULL;
	/* What loader_unload() asks the dynamic linker about afterwards. */
	if (g->handle != NULL && (g->mapped_as = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail; /* generation_destroy removes the copy */
	}
	/* The mapping stays valid; nothing can overwrite the file now. */
	if (unlink_copy) {
		unlink(path);
		free(g->copy_path);
		g->copy_path = NULL;
	}
	if (g->handle == NULL) {
		const char *e = dlerror();

		snprintf(err, errlen, "cannot load: %s", e ? e : "dlopen failed");
		/* dlerror names the private copy; the file name is logged. */
		goto fail;
	}
	d = dlsym(g->handle, CMDHOST_DESCRIPTOR_SYMBOL);
	if (d == NULL) {
		/* A language that cannot export data gives a function. */
		cmdhost_descriptor_fn fn;
		void *sym = dlsym(g->handle, CMDHOST_DESCRIPTOR_FN_SYMBOL);

		if (sym == NULL) {
			snprintf(err, errlen, "no 'cmdhost_plugin' descriptor "
			    "symbol (was it built with CMDHOST_PLUGIN()?) and "
			    "no 'cmdhost_plugin_descriptor' function");
			goto fail;
		}
		memcpy(&fn, &sym, sizeof(fn)); /* ISO C: no void * cast */
		g->desc_by_fn = 1;
		if ((d = fn()) == NULL) {
			snprintf(err, errlen, "cmdhost_plugin_descriptor() "
			    "returned NULL");
			goto fail;
		}
	}
	if (d->magic != CMDHOST_MAGIC) {
		snprintf(err, errlen, "bad descriptor magic 0x%08x (expected "
		    "0x%08x): not a cmdhost plugin", d->magic, CMDHOST_MAGIC);
		goto fail;
	}
	if (d->abi_major != CMDHOST_ABI_MAJOR) {
		snprintf(err, errlen, "plugin ABI %u.%u is incompatible with the "
		    "daemon's ABI %d.%d (major version differs)",
		    d->abi_major, d->abi_minor, CMDHOST_ABI_MAJOR,
		    CMDHOST_ABI_MINOR);
		goto fail;
	}
	if (d->abi_minor > CMDHOST_ABI_MINOR) {
		snprintf(err, errlen, "plugin ABI %u.%u is newer than the "
		    "daemon's ABI %d.%d (upgrade cmdhostd)", d->abi_major,
		    d->abi_minor, CMDHOST_ABI_MAJOR, CMDHOST_ABI_MINOR);
		goto fail;
	}
	if (!generation_valid_name(d->name)) {
		snprintf(err, errlen, "invalid plugin name (must match "
		    "[A-Za-z0-9_.:-]{1,128})");
		goto fail;
	}
	if (d->version != NULL && !valid_version(d->version)) {
		snprintf(err, errlen, "invalid plugin version (at most 128 "
		    "bytes of UTF-8 without control characters)");
		goto fail;
	}
	if (name_out != NULL)
		*name_out = strdup(d->name);
	g->abi_major = d->abi_major;
	g->abi_minor = d->abi_minor;
	if ((g->name = strdup(d->name)) == NULL ||
	    (g->version = strdup(d->version ? d->version : "")) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (d->register_fn == NULL) {
		snprintf(err, errlen, "descriptor has no registration function");
		goto fail;
	}

	memset(&reg, 0, sizeof(reg));
	reg.api = api_table();
	reg.cfg = cfg;
	reg.g = g;
	generation_running.command = "(load)";
	generation_running.g = g;
	rc = d->register_fn(&reg);
	generation_running.g = NULL;
	api_registrar_fini(&reg);
	if (rc != 0 || reg.failed) {
		if (reg.failed)
			snprintf(err, errlen, "registration failed: %s",
			    reg.err);
		else
			snprintf(err, errlen, "registration failed: returned "
			    "%d", rc);
		goto fail_registered;
	}
	if (g->n_commands == 0) {
		snprintf(err, errlen, "registration added no command");
		goto fail_registered;
	}
	g->loaded_at_ms = clock_wall_ms();
	*out = g;
	return 0;

fail_registered:
	if (g->fini != NULL)
		g->fini(g->state);
fail:
	generation_destroy(g);
	return -1;
}

/* A new, empty generation for file, one reference; or NULL. */
static struct generation *
generation_new_for(const char *file)
{
	struct generation *g = calloc(1, sizeof(*g));

	if (g == NULL || (g->file = strdup(file)) == NULL) {
		free(g);
		return NULL;
	}
	atomic_init(&g->refs, 1);
	return g;
}

int
loader_load_fd(const struct config *cfg, int fd, const char *file,
    const char *copy_dir, struct generation **out, char **name_out,
    char *err, size_t errlen)
{
	static atomic_uint copies;
	struct generation *g;
	char copy[4096];

	*out = NULL;
	if (name_out != NULL)
		*name_out = NULL;
	if ((g = generation_new_for(file)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(copy, sizeof(copy), "%s/%u-%s", copy_dir,
	    atomic_fetch_add(&copies, 1), file);
	if (copy_fd(fd, copy, cfg->max_plugin_bytes, &g->content_hash, err,
	    errlen) < 0) {
		generation_destroy(g);
		return -1;
	}
	if ((g->copy_path = strdup(copy)) == NULL) {
		unlink(copy);
		snprintf(err, errlen, "out of memory");
		generation_destroy(g);
		return -1;
	}
	return load_image(cfg, g, copy, 1, out, name_out, err, errlen);
}

int
loader_load_private(const struct config *cfg, const char *path,
    const char *file, struct generation **out, char **name_out, char *err,
    size_t errlen)
{
	struct generation *g;

	*out = NULL;
	if (name_out != NULL)
		*name_out = NULL;
	if ((g = generation_new_for(file)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return load_image(cfg, g, path, 0, out, name_out, err, errlen);
}

int
loader_load(const struct config *cfg, const char *path, const char *file,
    const char *copy_dir, struct generation **out, char **name_out,
    char *err, size_t errlen)
{
	char dir[4096], *slash;
	const char *base = path;
	struct stat st;
	int dirfd, fd, rc;

	*out = NULL;
	if (name_out != NULL)
		*name_out = NULL;
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		base = path + (slash - dir) + 1;
		*(slash == dir ? slash + 1 : slash) = '\0';
	} else {
		snprintf(dir, sizeof(dir), ".");
	}
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fstat(dirfd, &st) < 0) {
		snprintf(err, errlen, "cannot open the plugin directory: %s",
		    strerror(errno));
		if (dirfd >= 0)
			close(dirfd);
		return -1;
	}
	if (!cfg->allow_insecure_plugins &&
	    trust_check(&st, "the plugin directory", err, errlen) < 0) {
		close(dirfd);
		return -1;
	}
	fd = loader_open_at(dirfd, base, cfg, err, errlen);
	close(dirfd);
	if (fd < 0)
		return -1;
	rc = loader_load_fd(cfg, fd, file, copy_dir, out, name_out, err,
	    errlen);
	close(fd);
	return rc;
}

/* Names of copies that dlclose left mapped, rechecked by
 * loader_still_mapped(): a thread-local destructor's hold ends with its
 * thread.  Global, like the dynamic linker's own list. */
#define STILL_MAPPED_MAX 256
static pthread_mutex_t mapped_lock = PTHREAD_MUTEX_INITIALIZER;
static char *still_mapped[STILL_MAPPED_MAX];
static size_t n_still_mapped;

/* Is the object dlopen'd as `name` still in the process?  RTLD_NOLOAD
 * matches by the name it was opened with, which needs no file (the copy
 * is unlinked); a match takes a reference, given back at once. */
static int
is_mapped(const char *name)
{
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);

	if (h == NULL)
		return 0;
	dlclose(h);
	return 1;
}

int
loader_unload_mapped(struct generation *g)
{
	char *name;
	int mapped = 0;

	if (g == NULL)
		return 0;
	if (g->pool != NULL)
		g->pool_free(g->pool); /* fini runs in the workers */
	g->pool = NULL;
	if (g->fini != NULL)
		g->fini(g->state);
	name = g->mapped_as;
	g->mapped_as = NULL;
	generation_destroy(g);
	if (name != NULL && (mapped = is_mapped(name))) {
		pthread_mutex_lock(&mapped_lock);
		if (n_still_mapped < STILL_MAPPED_MAX) {
			still_mapped[n_still_mapped++] = name;
			name = NULL;
		}
		pthread_mutex_unlock(&mapped_lock);
	}
	free(name);
	return mapped;
}

void
loader_unload(struct generation *g)
{
	(void)loader_unload_mapped(g);
}

long
loader_still_mapped(void)
{
	size_t i = 0;
	long n;

	pthread_mutex_lock(&mapped_lock);
	while (i < n_still_mapped) {
		if (is_mapped(still_mapped[i])) {
			i++;
			continue;
		}
		free(still_mapped[i]);
		still_mapped[i] = still_mapped[--n_still_mapped];
	}
	n = (long)n_still_mapped;
	pthread_mutex_unlock(&mapped_lock);
	return n;
}
