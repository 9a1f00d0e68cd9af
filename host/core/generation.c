/*
 * generation.c - references on generations, and the conflict rule.
 */
#include "generation.h"

#include <stdio.h>
#include <string.h>

#include "loader.h"

__thread struct generation_running generation_running;

void
generation_hold(struct generation *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void
generation_release(struct generation *g)
{
	if (g == NULL)
		return;
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (g->release != NULL)
		g->release(g, g->release_arg);
	else
		loader_unload(g); /* never published */
}

struct command *
generation_command(struct generation *g, const char *name)
{
	for (size_t i = 0; i < g->n_commands; i++)
		if (strcmp(g->commands[i].name, name) == 0)
			return &g->commands[i];
	return NULL;
}

int
generation_conflict(const struct generation *g,
    const struct generation *other, char *err, size_t errlen)
{
	if (strcmp(other->name, g->name) == 0) {
		snprintf(err, errlen, "plugin '%s' is already loaded from %s",
		    g->name, other->file);
		return -1;
	}
	for (size_t i = 0; i < g->n_commands; i++) {
		for (size_t j = 0; j < other->n_commands; j++) {
			if (strcmp(g->commands[i].name,
			    other->commands[j].name) != 0)
				continue;
			snprintf(err, errlen, "command '%s' is already "
			    "registered by plugin '%s' (%s)",
			    g->commands[i].name, other->name, other->file);
			return -1;
		}
	}
	return 0;
}

/* A valid command or plugin name: [A-Za-z0-9_.:-]{1,128}. */
int
generation_valid_name(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (n >= CMDHOST_NAME_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		    c == ':' || c == '-'))
			return 0;
	}
	return n > 0;
}

uint64_t
command_name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}
