/*
 * module.c - find and dlopen a cmdhost module: one search for the daemon
 * and the client, so that both find cmdhost-nats.so in a build tree, in
 * an installed tree and in the PREFIX they were built for alike.
 */
#include "module.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef CMDHOST_LIBDIR
#define CMDHOST_LIBDIR "/usr/local/lib/cmdhost"
#endif

/* Append "; " (unless first) and why `path` did not load to err. */
static void
tried_add(char *err, size_t errlen, int first, const char *path)
{
	const char *why = dlerror();
	size_t used = strlen(err);
	int named;

	if (why == NULL)
		why = "cannot be loaded";
	/* dlerror() names the file as a rule; make sure of it. */
	named = strncmp(why, path, strlen(path)) == 0;
	snprintf(err + used, errlen - used, "%s%s%s%s", first ? "" : "; ",
	    named ? "" : path, named ? "" : ": ", why);
}

void *
module_open(const char *path, const char *file, char *err, size_t errlen)
{
	char exe[PATH_MAX], local[PATH_MAX + 64], installed[PATH_MAX + 64];
	char libdir[sizeof(CMDHOST_LIBDIR) + NAME_MAX + 1];
	const char *cands[3];
	ssize_t len;
	void *handle;
	int n = 0;

	if (errlen > 0)
		err[0] = '\0';
	if (path != NULL) {
		cands[n++] = path;
	} else {
		len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (len > 0) {
			char *slash;

			exe[len] = '\0';
			if ((slash = strrchr(exe, '/')) != NULL)
				*slash = '\0';
			snprintf(local, sizeof(local), "%s/lib/%s", exe, file);
			cands[n++] = local;
			snprintf(installed, sizeof(installed),
			    "%s/../lib/cmdhost/%s", exe, file);
			cands[n++] = installed;
		}
		snprintf(libdir, sizeof(libdir), "%s/%s", CMDHOST_LIBDIR, file);
		cands[n++] = libdir;
	}
	for (int i = 0; i < n; i++) {
		if ((handle = dlopen(cands[i], RTLD_NOW | RTLD_LOCAL)) != NULL)
			return handle;
		if (errlen > 0)
			tried_add(err, errlen, i == 0, cands[i]);
	}
	return NULL;
}
