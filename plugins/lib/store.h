/*
 * store.h - the SQLite store the example plugins share: one connection with
 * its lock and prepared statements, an outbox table, write transactions and
 * timestamps.
 *
 * Each plugin links its own copy (see the Makefile), so nothing here is
 * shared between plugins or exported from them.  The plugin brings its own
 * tables and statements; the store only knows the outbox.  Functions that
 * can fail return SQLITE_OK (0) or an SQLite result code, with the reason in
 * a caller-owned buffer `err` of `errlen` bytes; they never log.
 */
#ifndef CMDHOST_STORE_H
#define CMDHOST_STORE_H

#include <pthread.h>
#include <stddef.h>

#include <cmdhost/plugin.h>
#include <sqlite3.h>

/*
 * A plugin generation's state: an open database.  `lock` is held for each
 * whole transaction: the connection is shared by every thread running a
 * command, and SQLite's own mutex only protects single calls, not a
 * BEGIN..COMMIT sequence.  Every statement is used only with `lock` held.
 */
struct store {
	sqlite3 *db;			/* owned */
	pthread_mutex_t lock;
	sqlite3_stmt **stmt;		/* owned: the plugin's, by its index */
	size_t nstmt;
	sqlite3_stmt *insert_outbox;	/* owned */
	char *path;			/* owned copy of the database path */
};

/*
 * Open the database named by the "database" key of the plugin's
 * [plugin:NAME] section (`fallback` when the key is missing or empty) and
 * make it the generation's state; the daemon frees it when the generation
 * is unloaded.  The database and every missing parent directory are
 * created; the connection is full-mutex, WAL, with extended result codes
 * and a busy timeout.  `schema` (SQL for the plugin's own tables) is run,
 * the outbox table created, and the `nsql` statements of `sql` prepared
 * into stmt[0..nsql-1].  Call only inside the registration function; every
 * argument is borrowed.  Returns the store, which stays owned by the daemon
 * (get it back with cmdhost_state()); or NULL with "cannot open database:
 * reason" recorded by cmdhost_reg_error(), and registration should then
 * return non-zero.
 */
struct store *store_attach(cmdhost_registrar *reg, const char *fallback,
    const char *schema, const char *const *sql, size_t nsql);

/*
 * The relay of the outbox (cmdhost_set_relay, ABI 1.2; store_attach sets
 * it up): fetch hands the daemon the oldest `max` rows (id = the row id,
 * subject = the topic, body = the message); ack deletes the rows of ids,
 * which the daemon has stored durably.  Each takes the lock.  Return 0 or
 * -1.
 */
int store_relay_fetch(void *state, cmdhost_relay *sink, size_t max);
int store_relay_ack(void *state, const char *const *ids, size_t n);

/*
 * Run `st` (borrowed), a statement with its parameters bound, to its first
 * row or to the end; then reset it and clear its bindings.  Returns
 * SQLITE_OK, or the (extended) error code with sqlite's message in err.
 * Caller holds the lock.
 */
int store_step(struct store *s, sqlite3_stmt *st, char *err, size_t errlen);

/*
 * Run fixed SQL (borrowed; transaction control).  Returns SQLITE_OK, or the
 * error code with sqlite's message in err.  Caller holds the lock.
 */
int store_exec(struct store *s, const char *sql, char *err, size_t errlen);

/* Start a write transaction (BEGIN IMMEDIATE).  Returns as store_exec().
 * Caller holds the lock. */
int store_begin(struct store *s, char *err, size_t errlen);

/*
 * Roll back after a failure, best effort: its own error is ignored so that
 * err keeps the reason for the failure.  Caller holds the lock.
 */
void store_rollback(struct store *s);

/*
 * Finish the write transaction opened by store_begin(): run `st` as
 * store_step() (unless it is NULL), append an outbox row that publishes
 * `message` on `topic`, created at `now`, and commit.  On any failure roll
 * back.  All pointers are borrowed (the row gets copies).  Returns as
 * store_step().  Caller holds the lock.
 */
int store_write(struct store *s, sqlite3_stmt *st, const char *topic,
    struct json_object *message, const char *now, char *err, size_t errlen);

/* The size of a buffer for store_format_now(). */
#define STORE_TIME_LEN 40

/*
 * Write the current UTC time as RFC 3339 with milliseconds
 * ("2024-01-31T12:34:56.789Z") into buf, which holds `len` bytes (at least
 * STORE_TIME_LEN).
 */
void store_format_now(char *buf, size_t len);

#endif /* CMDHOST_STORE_H */
