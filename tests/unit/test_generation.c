/*
 * test_generation.c - unit tests of generation.c's references: plain
 * holds and releases, the per-thread cache an event loop turns on
 * (references taken in batches, spares given back at a flush, the last
 * reference dropped exactly once whichever thread drops it), and the
 * watched counts summed over the threads' shares.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "generation.h"

static struct generation gen, gen2;
static atomic_int released;   /* how many times the hook ran */
static struct generation *released_g;

static void
on_release(struct generation *g, void *arg)
{
	(void)arg;
	released_g = g;
	atomic_fetch_add(&released, 1);
}

/* A published generation with the registry's one reference. */
static void
fake(struct generation *g, const char *name)
{
	memset(g, 0, sizeof(*g));
	atomic_init(&g->refs, 1);
	g->name = (char *)name;
	g->release = on_release;
}

static void
setup(void)
{
	fake(&gen, "one");
	fake(&gen2, "two");
	atomic_store(&released, 0);
	released_g = NULL;
}

static void
teardown(void)
{
	generation_cache(0);
}

TestSuite(generation, .init = setup, .fini = teardown);

static long
refs(const struct generation *g)
{
	return atomic_load(&g->refs);
}

Test(generation, without_the_cache_each_hold_is_one_reference)
{
	generation_hold(&gen);
	generation_hold(&gen);
	cr_assert_eq(refs(&gen), 3);
	generation_release(&gen);
	generation_release(&gen);
	cr_assert_eq(refs(&gen), 1);
	cr_assert_eq(atomic_load(&released), 0);
	generation_release(&gen);
	cr_assert_eq(atomic_load(&released), 1);
	cr_assert_eq(released_g, &gen);
	generation_release(NULL);
}

Test(generation, the_cache_takes_a_batch_and_gives_the_spares_back)
{
	generation_cache(1);
	generation_hold(&gen);
	cr_assert_eq(refs(&gen), 1 + GEN_REF_BATCH,
	    "the first hold takes a batch: %ld", refs(&gen));
	for (int i = 1; i < GEN_REF_BATCH; i++)
		generation_hold(&gen);
	cr_assert_eq(refs(&gen), 1 + GEN_REF_BATCH,
	    "holds inside the batch touch no shared count: %ld", refs(&gen));
	generation_hold(&gen);
	cr_assert_eq(refs(&gen), 1 + 2 * GEN_REF_BATCH, "the next batch");
	for (int i = 0; i <= GEN_REF_BATCH; i++)
		generation_release(&gen);
	cr_assert_eq(atomic_load(&released), 0);
	generation_cache_flush();
	cr_assert_eq(refs(&gen), 1, "the flush gives every spare back: %ld",
	    refs(&gen));
	cr_assert_eq(atomic_load(&released), 0);
	/* The registry's reference is the last one now. */
	generation_release(&gen);
	cr_assert_eq(atomic_load(&released), 1);
}

Test(generation, an_unpublished_generation_goes_at_the_flush)
{
	generation_cache(1);
	generation_hold(&gen);
	/* The registry unpublishes it: its reference goes. */
	generation_release(&gen);
	generation_release(&gen);
	cr_assert_eq(atomic_load(&released), 0, "the spares still hold it");
	generation_cache_flush();
	cr_assert_eq(atomic_load(&released), 1, "released at the flush");
	cr_assert_eq(released_g, &gen);
	generation_cache_flush();
	cr_assert_eq(atomic_load(&released), 1, "exactly once");
}

static void *
release_elsewhere(void *arg)
{
	struct generation *g = arg;

	for (int i = 0; i < 10; i++)
		generation_release(g);
	return NULL;
}

Test(generation, references_held_here_may_be_dropped_on_another_thread)
{
	pthread_t t;

	generation_cache(1);
	for (int i = 0; i < 10; i++)
		generation_hold(&gen);
	cr_assert_eq(pthread_create(&t, NULL, release_elsewhere, &gen), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	generation_release(&gen); /* the registry's */
	cr_assert_eq(atomic_load(&released), 0);
	generation_cache(0);
	cr_assert_eq(atomic_load(&released), 1,
	    "turning the cache off flushes it");
	cr_assert_eq(refs(&gen), 0);
}

Test(generation, dropped_here_after_a_hold_elsewhere_and_spares_bounded)
{
	/* Held on a thread without the cache, dropped on one with it: the
	 * spares grow, and past two batches one batch goes back. */
	for (int i = 0; i < 3 * GEN_REF_BATCH; i++)
		generation_hold(&gen);
	generation_cache(1);
	generation_hold(&gen);
	generation_release(&gen);
	for (int i = 0; i < 3 * GEN_REF_BATCH; i++)
		generation_release(&gen);
	cr_assert_lt(refs(&gen), 1 + 2 * GEN_REF_BATCH,
	    "spares are bounded: %ld", refs(&gen));
	generation_cache_flush();
	cr_assert_eq(refs(&gen), 1, "%ld", refs(&gen));
	cr_assert_eq(atomic_load(&released), 0);
}

Test(generation, two_generations_are_cached_apart)
{
	generation_cache(1);
	generation_hold(&gen);
	generation_hold(&gen2);
	generation_release(&gen2);
	generation_release(&gen2); /* unpublished */
	generation_release(&gen);
	generation_cache_flush();
	cr_assert_eq(atomic_load(&released), 1);
	cr_assert_eq(released_g, &gen2);
	cr_assert_eq(refs(&gen), 1);
}

Test(generation, keeping_one_generation_gives_the_others_back)
{
	generation_cache(1);
	generation_hold(&gen);
	generation_hold(&gen2);
	generation_release(&gen2);
	generation_release(&gen2); /* unpublished: only spares hold it */
	cr_assert_eq(atomic_load(&released), 0);
	generation_cache_keep(&gen);
	cr_assert_eq(atomic_load(&released), 1, "gen2's spares went back");
	cr_assert_eq(released_g, &gen2);
	cr_assert_eq(refs(&gen), 1 + GEN_REF_BATCH, "gen's stay cached");
	generation_release(&gen);
	generation_cache_flush();
	cr_assert_eq(refs(&gen), 1);
}

Test(generation, watched_counts_sum_over_the_shares)
{
	uint64_t calls, fails;

	for (int i = 0; i < GEN_WATCH_SHARES; i++) {
		atomic_store(&gen.watch[i].calls, (unsigned long)i + 1);
		atomic_store(&gen.watch[i].fails, 1);
	}
	generation_watch_counts(&gen, &calls, &fails);
	cr_assert_eq(calls, GEN_WATCH_SHARES * (GEN_WATCH_SHARES + 1) / 2);
	cr_assert_eq(fails, GEN_WATCH_SHARES);
	generation_watch_reset(&gen);
	generation_watch_counts(&gen, &calls, &fails);
	cr_assert_eq(calls, 0);
	cr_assert_eq(fails, 0);
	/* Two shares never meet on a cache line, however the generation
	 * is aligned: their counters are more than a line apart. */
	cr_assert_geq((char *)&gen.watch[1] - (char *)&gen.watch[0] -
	    (long)(2 * sizeof(atomic_ulong)), 64);
}
