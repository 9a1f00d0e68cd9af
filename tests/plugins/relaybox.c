/*
 * relaybox.c - a test plugin with a transactional outbox of its own
 * (SQLite, [plugin:relaybox] database) handed to the daemon's relay
 * (ABI 1.2), that can stop right after its commit.
 *
 * relay.put commits one outbox row, subject payload "subject" (default
 * "t.relay"), body {"k": payload "k"}, in its own transaction and answers
 * {"row": id}.  With payload "hold": true it then creates
 * <[plugin:relaybox] gate>/committed and waits (at most two minutes) for
 * <gate>/release before answering; while it waits, fetch says the outbox
 * cannot be read, so a test that kills the daemon once `committed`
 * appears kills it after the plugin's commit and before the daemon has
 * the row -- no sleep decides where the kill lands.
 */
#include <cmdhost/plugin.h>

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define HOLD_MAX_MS 120000

/* The state: the outbox's connection (one, behind lock) and the gate
 * directory (owned, or NULL). */
struct box {
	sqlite3 *db;
	pthread_mutex_t lock;
	char *gate;
	atomic_int holding;           /* calls waiting for the release */
};

static void
box_fini(void *state)
{
	struct box *b = state;

	if (b == NULL)
		return;
	sqlite3_close(b->db);
	pthread_mutex_destroy(&b->lock);
	free(b->gate);
	free(b);
}

/* Commit one row in its own transaction; its id in *row.  0 or -1. */
static int
box_insert(struct box *b, const char *subject, const char *body,
    long long *row)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&b->lock);
	rc = sqlite3_exec(b->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(b->db, "INSERT INTO outbox (subject, "
		    "body) VALUES (?1, ?2)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, subject, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, body, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK :
		    SQLITE_ERROR;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK) {
		*row = (long long)sqlite3_last_insert_rowid(b->db);
		rc = sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK)
		sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&b->lock);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Create <gate>/committed, then wait for <gate>/release (bounded). */
static void
hold(struct box *b)
{
	char path[PATH_MAX];
	struct timespec nap = { 0, 5 * 1000000 };
	int fd;

	snprintf(path, sizeof(path), "%s/committed", b->gate);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/release", b->gate);
	for (int waited = 0; waited < HOLD_MAX_MS && access(path, F_OK) != 0;
	    waited += 5)
		nanosleep(&nap, NULL);
}

static int
put_execute(cmdhost_ctx *ctx)
{
	struct box *b = cmdhost_state(ctx);
	json_object *p = cmdhost_payload(ctx), *v, *body, *k = NULL;
	const char *subject = "t.relay";
	long long row = 0;
	int held = 0, rc;

	if (json_object_object_get_ex(p, "subject", &v))
		subject = json_object_get_string(v);
	if (json_object_object_get_ex(p, "hold", &v))
		held = json_object_get_boolean(v) && b->gate != NULL;
	json_object_object_get_ex(p, "k", &k);
	body = json_object_new_object();
	json_object_object_add(body, "k", json_object_get(k));
	if (held)
		atomic_fetch_add(&b->holding, 1);
	rc = box_insert(b, subject, json_object_to_json_string_ext(body,
	    JSON_C_TO_STRING_PLAIN), &row);
	json_object_put(body);
	if (held) {
		hold(b);
		atomic_fetch_sub(&b->holding, 1);
	}
	if (rc < 0)
		return cmdhost_fail(ctx, 500, "store_failed",
		    "the outbox row was not committed");
	v = json_object_new_object();
	json_object_object_add(v, "row", json_object_new_int64(row));
	return cmdhost_ok(ctx, v);
}

static int
box_fetch(void *state, cmdhost_relay *sink, size_t max)
{
	struct box *b = state;
	sqlite3_stmt *st;
	int rc;

	if (atomic_load(&b->holding) > 0)
		return -1; /* "cannot be read now": the daemon comes back */
	pthread_mutex_lock(&b->lock);
	rc = sqlite3_prepare_v2(b->db, "SELECT id, subject, body FROM outbox "
	    "ORDER BY id LIMIT ?1", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			char id[24];

			snprintf(id, sizeof(id), "%lld",
			    (long long)sqlite3_column_int64(st, 0));
			(void)cmdhost_relay_put(sink, id,
			    (const char *)sqlite3_column_text(st, 1),
			    (const char *)sqlite3_column_text(st, 2));
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&b->lock);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
box_ack(void *state, const char *const *ids, size_t n)
{
	struct box *b = state;
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&b->lock);
	rc = sqlite3_exec(b->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(b->db, "DELETE FROM outbox WHERE id = "
		    "?1", -1, &st, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		sqlite3_bind_int64(st, 1, atoll(ids[i]));
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK :
		    SQLITE_ERROR;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL);
	else
		sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&b->lock);
	return rc == SQLITE_OK ? 0 : -1;
}

static const cmdhost_command put_cmd = {
	"relay.put", "commit one outbox row (and maybe hold)", NULL, NULL,
	put_execute, CMDHOST_BLOCKING
};

static int
box_register(cmdhost_registrar *reg)
{
	const char *path = cmdhost_config(reg, "database");
	const char *gate = cmdhost_config(reg, "gate");
	struct box *b = calloc(1, sizeof(*b));

	if (b == NULL || path == NULL) {
		free(b);
		cmdhost_reg_error(reg, "[plugin:relaybox] database is required");
		return -1;
	}
	pthread_mutex_init(&b->lock, NULL);
	b->gate = gate != NULL ? strdup(gate) : NULL;
	cmdhost_set_state(reg, b, box_fini);
	if (sqlite3_open(path, &b->db) != SQLITE_OK ||
	    sqlite3_exec(b->db, "PRAGMA journal_mode=WAL;"
	    "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY "
	    "AUTOINCREMENT, subject TEXT NOT NULL, body TEXT NOT NULL);",
	    NULL, NULL, NULL) != SQLITE_OK) {
		cmdhost_reg_error(reg, "relaybox: %s", sqlite3_errmsg(b->db));
		return -1;
	}
	if (cmdhost_set_relay(reg, box_fetch, box_ack) != 0 ||
	    cmdhost_add_command(reg, &put_cmd) != 0)
		return -1;
	return 0;
}

CMDHOST_PLUGIN("relaybox", "1.0", box_register);
