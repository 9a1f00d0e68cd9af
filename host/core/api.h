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
	size_t *slots;                 /* owned: 1 + index into g->commands
	                                * by name hash (0: empty), half full
	                                * at most; api_registrar_fini() */
	size_t mask;                   /* slots - 1; 0 with no slots yet */
	int failed;
	/* The first failure's reason, cut at CMDHOST_REG_ERROR_MAX on a
	 * UTF-8 boundary: one byte more than that is copied, so that the
	 * cut sees whether it would split a character. */
	char err[CMDHOST_REG_ERROR_MAX + 2];
};

/* The opaque sink of a relay fetch (ABI 1.2): relay_put() checks a row
 * and hands it to put(arg, ...): the plugin's own id, the event's id
 * "<plugin>:<id>", the subject, and the body as compact text -- or body
 * NULL for a row it refused (the reason in why), to be acked all the
 * same.  All strings borrowed for that call.  put returns 0 or -1. */
struct cmdhost_relay {
	const struct cmdhost_api *api; /* first, as the SDK requires */
	const char *plugin;            /* borrowed: the generation's name */
	size_t max, n;                 /* rows allowed, and put so far */
	int (*put)(void *arg, const char *row_id, const char *id,
	    const char *subject, const char *body, size_t len);
	void *arg;
	char why[160];                 /* the last refusal's reason */
};

/* The host function table handed to plugins.  Borrowed, static. */
const struct cmdhost_api *api_table(void);

/* Free what reg holds of its own (not g) once register_fn returned. */
void api_registrar_fini(struct cmdhost_registrar *reg);

#endif /* CMDHOST_API_H */
