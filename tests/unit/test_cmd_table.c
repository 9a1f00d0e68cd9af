/*
 * test_cmd_table.c - unit tests of cmd_table.c: the immutable command
 * table (add, find, conflicts, growth) and the published index (lookups
 * take a generation reference, reader slots run out, and readers that
 * look up while a writer publishes table after table always find a
 * complete table that is not freed under them).
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cmd_table.h"
#include "generation.h"

#define N_CMDS 300

static struct generation gen;
static struct command cmds[N_CMDS];

/* N_CMDS commands of one fake generation (never unloaded: the test holds
 * its reference throughout). */
static void
setup(void)
{
	memset(&gen, 0, sizeof(gen));
	atomic_init(&gen.refs, 1);
	gen.name = "fake";
	gen.file = "fake.so";
	for (int i = 0; i < N_CMDS; i++) {
		memset(&cmds[i], 0, sizeof(cmds[i]));
		snprintf(cmds[i].name, sizeof(cmds[i].name), "cmd.%d", i);
		cmds[i].gen = &gen;
	}
}

TestSuite(cmd_table, .init = setup);

Test(cmd_table, empty_table_finds_nothing)
{
	struct cmd_table *t = cmd_table_new(0);

	cr_assert_not_null(t);
	cr_assert_eq(cmd_table_count(t), 0);
	cr_assert_null(cmd_table_find(t, "cmd.0"));
	cr_assert_null(cmd_table_find(t, ""));
	cmd_table_free(t);
	cmd_table_free(NULL);
}

Test(cmd_table, every_command_added_is_found)
{
	struct cmd_table *t = cmd_table_new(N_CMDS);
	struct command *other = NULL;

	for (int i = 0; i < N_CMDS; i++)
		cr_assert_eq(cmd_table_add(t, &cmds[i], &other), 0, "%d", i);
	cr_assert_eq(cmd_table_count(t), N_CMDS);
	for (int i = 0; i < N_CMDS; i++)
		cr_assert_eq(cmd_table_find(t, cmds[i].name), &cmds[i],
		    "%s", cmds[i].name);
	/* Names that differ in case or by a prefix are other names. */
	cr_assert_null(cmd_table_find(t, "CMD.1"));
	cr_assert_null(cmd_table_find(t, "cmd."));
	cr_assert_null(cmd_table_find(t, "cmd.3000"));
	cmd_table_free(t);
}

Test(cmd_table, a_second_command_of_one_name_is_refused)
{
	struct cmd_table *t = cmd_table_new(2);
	struct command twin, *other = NULL;

	memset(&twin, 0, sizeof(twin));
	snprintf(twin.name, sizeof(twin.name), "%s", cmds[7].name);
	twin.gen = &gen;
	cr_assert_eq(cmd_table_add(t, &cmds[7], &other), 0);
	cr_assert_eq(cmd_table_add(t, &twin, &other), -1);
	cr_assert_eq(other, &cmds[7], "the conflict names the first one");
	cr_assert_eq(cmd_table_count(t), 1);
	cr_assert_eq(cmd_table_find(t, twin.name), &cmds[7]);
	cmd_table_free(t);
}

Test(cmd_table, lookup_takes_a_generation_reference)
{
	struct cmd_index *ix = aligned_alloc(64, sizeof(*ix));
	struct cmd_table *t = cmd_table_new(1);
	struct command *c, *other;
	int r;

	cr_assert_eq(cmd_index_init(ix), 0);
	r = cmd_index_reader(ix);
	cr_assert_geq(r, 0);
	cr_assert_null(cmd_index_lookup(ix, r, "cmd.0"), "empty at first");
	cr_assert_eq(cmd_table_add(t, &cmds[0], &other), 0);
	cmd_index_publish(ix, t);
	c = cmd_index_lookup(ix, r, "cmd.0");
	cr_assert_eq(c, &cmds[0]);
	cr_assert_eq(atomic_load(&gen.refs), 2);
	generation_release(c->gen);
	cr_assert_eq(atomic_load(&gen.refs), 1);
	cr_assert_null(cmd_index_lookup(ix, r, "cmd.1"));
	cr_assert_eq(atomic_load(&gen.refs), 1, "a miss takes nothing");
	cmd_index_fini(ix);
	free(ix);
}

/*
 * With the lookup cache on (an event loop), a second lookup of the same
 * name is the cached command while nothing was published; a publish that
 * gives the name another command is seen at the next lookup, and the
 * cache's own reference goes at cmd_index_forget().
 */
Test(cmd_table, the_lookup_cache_follows_every_publish)
{
	struct cmd_index *ix = aligned_alloc(64, sizeof(*ix));
	struct cmd_table *t = cmd_table_new(1), *t2 = cmd_table_new(1);
	struct command twin, *c, *other;
	struct generation gen2;
	int r;

	memset(&gen2, 0, sizeof(gen2));
	atomic_init(&gen2.refs, 1);
	memset(&twin, 0, sizeof(twin));
	snprintf(twin.name, sizeof(twin.name), "%s", cmds[0].name);
	twin.gen = &gen2;
	cr_assert_eq(cmd_index_init(ix), 0);
	r = cmd_index_reader(ix);
	cr_assert_eq(cmd_table_add(t, &cmds[0], &other), 0);
	cmd_index_publish(ix, t);
	cmd_index_cache(1);
	c = cmd_index_lookup(ix, r, "cmd.0");
	cr_assert_eq(c, &cmds[0]);
	cr_assert_eq(atomic_load(&gen.refs), 3, "the caller's and the cache's");
	generation_release(c->gen);
	c = cmd_index_lookup(ix, r, "cmd.0");
	cr_assert_eq(c, &cmds[0], "the cached command");
	generation_release(c->gen);
	cr_assert_null(cmd_index_lookup(ix, r, "cmd.1"), "another name");
	/* The name moves to another generation. */
	cr_assert_eq(cmd_table_add(t2, &twin, &other), 0);
	cmd_index_publish(ix, t2);
	c = cmd_index_lookup(ix, r, "cmd.0");
	cr_assert_eq(c, &twin, "a publish is seen at the next lookup");
	cr_assert_eq(atomic_load(&gen.refs), 1, "the old entry let go");
	cr_assert_eq(atomic_load(&gen2.refs), 3);
	generation_release(c->gen);
	cmd_index_forget();
	cr_assert_eq(atomic_load(&gen2.refs), 1, "forget gives it back");
	cmd_index_cache(0);
	c = cmd_index_lookup(ix, r, "cmd.0");
	cr_assert_eq(atomic_load(&gen2.refs), 2, "off: nothing cached");
	generation_release(c->gen);
	cmd_index_fini(ix);
	free(ix);
}

Test(cmd_table, reader_slots_run_out)
{
	struct cmd_index *ix = aligned_alloc(64, sizeof(*ix));

	cr_assert_eq(cmd_index_init(ix), 0);
	for (int i = 0; i < CMD_TABLE_MAX_READERS; i++)
		cr_assert_eq(cmd_index_reader(ix), i);
	cr_assert_eq(cmd_index_reader(ix), -1);
	cmd_index_fini(ix);
	free(ix);
}

/* Readers look up cmd.0 (in every table) and cmd.<n> (in every other
 * one) while the writer publishes tables. */
struct race {
	struct cmd_index *ix;
	atomic_int started;   /* readers that made their first lookup */
	atomic_int stop;
	atomic_long lookups;
	atomic_int missing;   /* cmd.0 not found: a table seen half made */
};

static void *
reader_main(void *arg)
{
	struct race *rc = arg;
	int r = cmd_index_reader(rc->ix), first = 0;

	while (!atomic_load(&rc->stop)) {
		struct command *c = cmd_index_lookup(rc->ix, r, "cmd.0");

		if (c == NULL || strcmp(c->name, "cmd.0") != 0)
			atomic_fetch_add(&rc->missing, 1);
		else
			generation_release(c->gen);
		if ((c = cmd_index_lookup(rc->ix, r, "cmd.1")) != NULL)
			generation_release(c->gen);
		if (atomic_fetch_add(&rc->lookups, 1) >= 0 && !first) {
			first = 1;
			atomic_fetch_add(&rc->started, 1);
		}
	}
	return NULL;
}

Test(cmd_table, readers_never_see_a_freed_or_partial_table, .timeout = 60)
{
	struct race rc;
	pthread_t th[3];
	struct command *other;

	memset(&rc, 0, sizeof(rc));
	rc.ix = aligned_alloc(64, sizeof(*rc.ix));
	cr_assert_eq(cmd_index_init(rc.ix), 0);
	{
		struct cmd_table *t = cmd_table_new(1);

		cmd_table_add(t, &cmds[0], &other);
		cmd_index_publish(rc.ix, t);
	}
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, reader_main, &rc), 0);
	/* The writer starts once every reader is reading (bounded wait). */
	for (int spins = 0; atomic_load(&rc.started) < 3; spins++) {
		cr_assert_lt(spins, 10000000, "the readers never started");
		sched_yield();
	}
	/* Each publish frees the table before it once no reader holds it:
	 * under ASan a reader inside a freed table is a failure. */
	for (int round = 0; round < 2000; round++) {
		int n = 1 + round % 50;
		struct cmd_table *t = cmd_table_new((size_t)n);

		for (int i = 0; i < n; i++)
			cr_assert_eq(cmd_table_add(t, &cmds[i], &other), 0);
		cmd_index_publish(rc.ix, t);
	}
	atomic_store(&rc.stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&rc.missing), 0, "%d lookups missed cmd.0",
	    atomic_load(&rc.missing));
	cr_assert_gt(atomic_load(&rc.lookups), 0);
	cr_assert_eq(atomic_load(&gen.refs), 1, "every reference returned");
	cmd_index_fini(rc.ix);
	free(rc.ix);
}
