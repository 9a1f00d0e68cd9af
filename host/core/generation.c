/*
 * generation.c - references on generations, and the conflict rule.
 */
#include "generation.h"

#include <stdio.h>
#include <string.h>

#include "loader.h"

__thread struct generation_running generation_running;

/* The calling thread's cached references (generation_cache): `spare`
 * references on g that it holds and no call uses. */
#define GEN_CACHE_SLOTS 4
struct gen_cache_slot {
	struct generation *g;
	long spare;
};
static __thread struct gen_cache_slot gen_cache[GEN_CACHE_SLOTS];
static __thread int gen_cache_on;

/* Drop n references on g at once. */
static void
release_n(struct generation *g, long n)
{
	if (atomic_fetch_sub_explicit(&g->refs, n, memory_order_acq_rel) != n)
		return;
	if (g->release != NULL)
		g->release(g, g->release_arg);
	else
		loader_unload(g); /* never published */
}

void
generation_hold(struct generation *g)
{
	struct gen_cache_slot *free_slot = NULL;

	if (gen_cache_on) {
		for (int i = 0; i < GEN_CACHE_SLOTS; i++) {
			struct gen_cache_slot *s = &gen_cache[i];

			if (s->g == g) {
				if (s->spare > 0) {
					s->spare--;
					return;
				}
				free_slot = s;
				break;
			}
			if (s->g == NULL && free_slot == NULL)
				free_slot = s;
		}
		if (free_slot != NULL) {
			atomic_fetch_add_explicit(&g->refs, GEN_REF_BATCH,
			    memory_order_relaxed);
			free_slot->g = g;
			free_slot->spare = GEN_REF_BATCH - 1;
			return;
		}
	}
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void
generation_release(struct generation *g)
{
	if (g == NULL)
		return;
	if (gen_cache_on) {
		for (int i = 0; i < GEN_CACHE_SLOTS; i++) {
			struct gen_cache_slot *s = &gen_cache[i];

			if (s->g != g)
				continue;
			/* Kept: the slot holds it.  Too many spares (calls
			 * taken elsewhere, dropped here) go back. */
			if (++s->spare >= 2 * GEN_REF_BATCH) {
				s->spare -= GEN_REF_BATCH;
				release_n(g, GEN_REF_BATCH);
			}
			return;
		}
	}
	release_n(g, 1);
}

void
generation_cache_flush(void)
{
	generation_cache_keep(NULL);
}

void
generation_cache_keep(const struct generation *g)
{
	for (int i = 0; i < GEN_CACHE_SLOTS; i++) {
		struct gen_cache_slot *s = &gen_cache[i];
		struct generation *o = s->g;
		long n = s->spare;

		if (o == NULL || o == g)
			continue;
		s->g = NULL;
		s->spare = 0;
		if (n > 0)
			release_n(o, n);
	}
}

void
generation_cache(int on)
{
	if (!on)
		generation_cache_flush();
	gen_cache_on = on;
}

void
generation_watch_counts(const struct generation *g, uint64_t *calls,
    uint64_t *fails)
{
	*calls = *fails = 0;
	for (int i = 0; i < GEN_WATCH_SHARES; i++) {
		*calls += atomic_load_explicit(&g->watch[i].calls,
		    memory_order_relaxed);
		*fails += atomic_load_explicit(&g->watch[i].fails,
		    memory_order_relaxed);
	}
}

void
generation_watch_reset(struct generation *g)
{
	for (int i = 0; i < GEN_WATCH_SHARES; i++) {
		atomic_store_explicit(&g->watch[i].calls, 0,
		    memory_order_relaxed);
		atomic_store_explicit(&g->watch[i].fails, 0,
		    memory_order_relaxed);
	}
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
