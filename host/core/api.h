/*
 * api.h - the host side of the plugin ABI: the function table handed to
 * plugins, and the registrar a plugin's register_fn fills.
 */
#ifndef CMDHOST_API_H
#define CMDHOST_API_H

#include <stddef.h>

#include <cmdhost/plugin.h>

struct config;
struct generation;

/* The opaque registrar of cmdhost/plugin.h: what register_fn adds to. */
struct cmdhost_registrar {
	const struct cmdhost_api *api; /* first, as the SDK requires */
	const struct config *cfg;      /* borrowed: [plugin:NAME] values */
	struct generation *g;          /* borrowed: the one being loaded */
	size_t cap;                    /* of g->commands */
	int failed;
	char err[512];                 /* the first failure's reason */
};

/* The host function table handed to plugins.  Borrowed, static. */
const struct cmdhost_api *api_table(void);

#endif /* CMDHOST_API_H */
