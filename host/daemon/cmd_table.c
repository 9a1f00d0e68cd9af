/*
 * cmd_table.c - open addressing over a power-of-two array, hazard
 * pointers around it.
 */
#include "cmd_table.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/generation.h"

struct cmd_table {
	size_t mask;              /* slots - 1 (slots is a power of two) */
	size_t count;
	struct command *slots[];
};

struct cmd_table *
cmd_table_new(size_t count)
{
	size_t slots = 8;
	struct cmd_table *t;

	while (slots < count * 2)
		slots *= 2;
	t = calloc(1, sizeof(*t) + slots * sizeof(struct command *));
	if (t == NULL)
		return NULL;
	t->mask = slots - 1;
	return t;
}

void
cmd_table_free(struct cmd_table *t)
{
	free(t);
}

struct command *
cmd_table_find(const struct cmd_table *t, const char *name)
{
	size_t i = (size_t)command_name_hash(name) & t->mask;

	for (;;) {
		struct command *c = t->slots[i];

		if (c == NULL)
			return NULL;
		if (strcmp(c->name, name) == 0)
			return c;
		i = (i + 1) & t->mask;
	}
}

int
cmd_table_add(struct cmd_table *t, struct command *c, struct command **other)
{
	size_t i = (size_t)command_name_hash(c->name) & t->mask;

	for (; t->slots[i] != NULL; i = (i + 1) & t->mask) {
		if (strcmp(t->slots[i]->name, c->name) == 0) {
			*other = t->slots[i];
			return -1;
		}
	}
	t->slots[i] = c;
	t->count++;
	return 0;
}

size_t
cmd_table_count(const struct cmd_table *t)
{
	return t->count;
}

int
cmd_index_init(struct cmd_index *ix)
{
	struct cmd_table *t = cmd_table_new(0);

	memset(ix, 0, sizeof(*ix));
	if (t == NULL)
		return -ENOMEM;
	atomic_init(&ix->table, t);
	atomic_init(&ix->version, 0);
	atomic_init(&ix->n_readers, 0);
	return 0;
}

void
cmd_index_fini(struct cmd_index *ix)
{
	free(atomic_load(&ix->table));
	atomic_store(&ix->table, NULL);
}

int
cmd_index_reader(struct cmd_index *ix)
{
	int slot = atomic_fetch_add(&ix->n_readers, 1);

	return slot < CMD_TABLE_MAX_READERS ? slot : -1;
}

/* The calling thread's cache (cmd_index_cache): the last command it
 * found in ix while ix was at `version`; it holds a reference on
 * last->gen. */
static __thread struct {
	int on;
	const struct cmd_index *ix;
	uint64_t version;
	struct command *last;
} lookup_cache;

void
cmd_index_forget(void)
{
	struct command *c = lookup_cache.last;

	lookup_cache.last = NULL;
	lookup_cache.ix = NULL;
	if (c != NULL)
		generation_release(c->gen);
}

void
cmd_index_forget_unless(const struct generation *g)
{
	if (lookup_cache.last != NULL && lookup_cache.last->gen != g)
		cmd_index_forget();
}

void
cmd_index_cache(int on)
{
	if (!on)
		cmd_index_forget();
	lookup_cache.on = on;
}

struct command *
cmd_index_lookup(struct cmd_index *ix, int reader, const char *name)
{
	struct cmd_table *t;
	struct command *c;
	uint64_t version;

	/* Read before the table: a publish between the two makes the
	 * cached entry look older than it is, never newer. */
	version = atomic_load_explicit(&ix->version, memory_order_acquire);
	if (lookup_cache.last != NULL && lookup_cache.ix == ix &&
	    lookup_cache.version == version &&
	    strcmp(lookup_cache.last->name, name) == 0) {
		c = lookup_cache.last;
		generation_hold(c->gen);
		return c;
	}
	/* Publish the table we are about to read, then check that it is
	 * still current: a writer that swapped after our store will see our
	 * hazard and wait for us. */
	do {
		t = atomic_load(&ix->table);
		atomic_store(&ix->hazards[reader].table, t);
	} while (t != atomic_load(&ix->table));
	c = cmd_table_find(t, name);
	if (c != NULL)
		generation_hold(c->gen);
	if (c != NULL && lookup_cache.on) {
		/* The cache's own reference, taken inside the hazard. */
		generation_hold(c->gen);
		cmd_index_forget();
		lookup_cache.ix = ix;
		lookup_cache.version = version;
		lookup_cache.last = c;
	}
	atomic_store_explicit(&ix->hazards[reader].table, NULL,
	    memory_order_release);
	return c;
}

void
cmd_index_publish(struct cmd_index *ix, struct cmd_table *t)
{
	struct cmd_table *old = atomic_exchange(&ix->table, t);
	int n;

	atomic_fetch_add_explicit(&ix->version, 1, memory_order_release);
	n = atomic_load(&ix->n_readers);

	if (n > CMD_TABLE_MAX_READERS)
		n = CMD_TABLE_MAX_READERS;
	for (int i = 0; i < n; i++)
		while (atomic_load(&ix->hazards[i].table) == old)
			sched_yield();
	free(old);
}
