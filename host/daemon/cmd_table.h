/*
 * cmd_table.h - the published command table: an immutable hash table of
 * command pointers behind one atomic pointer, read without locks.
 *
 * Readers never lock: a hazard pointer per reader thread keeps a table
 * alive while it is searched, and a reference on the generation keeps a
 * command alive after.  A writer builds a complete new table and swaps
 * it in; the old one is freed once no reader's hazard names it.  Writers
 * must be serialized by the caller (the registry's lock).
 */
#ifndef CMDHOST_CMD_TABLE_H
#define CMDHOST_CMD_TABLE_H

#include <stdatomic.h>
#include <stddef.h>

struct command;
struct generation;
struct cmd_table;

/* At most this many reader threads (event loops, NATS threads). */
#define CMD_TABLE_MAX_READERS 256

/* A hazard slot on a cache line of its own: readers on different threads
 * never write to a line that another reader or the table pointer uses. */
struct cmd_hazard {
	_Atomic(struct cmd_table *) table;
	char pad[64 - sizeof(void *)];
};

/* What is published: embed it (64-byte aligned) in its owner. */
struct cmd_index {
	_Alignas(64) _Atomic(struct cmd_table *) table;
	atomic_uint_fast64_t version; /* one more at each publish */
	char pad[64 - sizeof(void *) - sizeof(atomic_uint_fast64_t)];
	struct cmd_hazard hazards[CMD_TABLE_MAX_READERS];
	atomic_int n_readers;
};

/* Returns a new empty table with room for `count` commands
 * (cmd_table_free), or NULL on ENOMEM. */
struct cmd_table *cmd_table_new(size_t count);

/* Free a table that was never published (or was swapped out by
 * cmd_index_publish(), which does it).  The commands are not touched.
 * NULL is ok. */
void cmd_table_free(struct cmd_table *t);

/* Add c (borrowed: it must outlive the table) to a table that is not
 * published yet and has room.  Returns 0, or -1 with the command of that
 * name already there in *other. */
int cmd_table_add(struct cmd_table *t, struct command *c,
    struct command **other);

/* The command named `name` in t (borrowed), or NULL. */
struct command *cmd_table_find(const struct cmd_table *t, const char *name);

/* How many commands t holds. */
size_t cmd_table_count(const struct cmd_table *t);

/* Set up ix with an empty table published.  Returns 0 or -ENOMEM. */
int cmd_index_init(struct cmd_index *ix);

/* Free what ix holds (the table, not the commands).  No reader may be
 * inside cmd_index_lookup(). */
void cmd_index_fini(struct cmd_index *ix);

/* Claim a reader slot for the calling thread.  Returns it, or -1 when
 * all CMD_TABLE_MAX_READERS are taken. */
int cmd_index_reader(struct cmd_index *ix);

/* Find `name` with the caller's reader slot; the command's generation
 * gets a reference (generation_release(c->gen) it).  NULL if absent.
 * Lock-free. */
struct command *cmd_index_lookup(struct cmd_index *ix, int reader,
    const char *name);

/*
 * A thread that looks up many names (an event loop) turns on its cache
 * of the last command it found: while nothing was published since, a
 * lookup of the same name is that command again, with no hash, no probe
 * and no hazard store.  The cache holds a reference on the command's
 * generation: the thread gives it back with cmd_index_forget() before it
 * blocks (a loop: each turn), so an unpublished generation is not kept.
 * cmd_index_cache(0) forgets and turns it off.
 */
void cmd_index_cache(int on);
void cmd_index_forget(void);

/* cmd_index_forget() unless the cached command is of generation g
 * (borrowed): before a call of g runs inline (see
 * generation_cache_keep). */
void cmd_index_forget_unless(const struct generation *g);

/* Publish t (ix takes it over), wait until no reader holds the table it
 * replaces, and free that one.  Writers only, one at a time. */
void cmd_index_publish(struct cmd_index *ix, struct cmd_table *t);

#endif /* CMDHOST_CMD_TABLE_H */
