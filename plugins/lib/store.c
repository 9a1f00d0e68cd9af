/*
 * store.c - the SQLite plumbing the example plugins share: open a database
 * (with its directory) in WAL mode as a plugin's state, the outbox table,
 * statement and transaction helpers, RFC 3339 timestamps.
 *
 * It knows nothing of users or orders: each plugin brings its own schema and
 * statements.  It never logs: errors go back to the caller in `err`, or
 * from store_attach() to the registrar.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define STORE_BUSY_TIMEOUT_MS	5000

static const char outbox_schema[] =
	"CREATE TABLE IF NOT EXISTS outbox ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" topic TEXT NOT NULL,"
	" message TEXT NOT NULL,"
	" created_at TEXT NOT NULL);";

/*
 * Create every missing parent directory of the file `path` (mkdir -p of its
 * dirname).  Returns 0, or -1 with "mkdir DIR: reason" in err.
 */
static int
mkdir_parents(const char *path, char *err, size_t errlen)
{
	struct stat st;
	char *dir, *p;
	int rc = 0, saved;

	if ((dir = strdup(path)) == NULL) {
		snprintf(err, errlen, "strdup: %s", strerror(errno));
		return -1;
	}
	for (p = strchr(dir + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		/* An existing directory may still fail (EROFS, EACCES). */
		if (mkdir(dir, 0777) == -1 && errno != EEXIST) {
			saved = errno;
			if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
				snprintf(err, errlen, "mkdir %s: %s", dir,
				    strerror(saved));
				rc = -1;
				break;
			}
		}
		*p = '/';
	}
	free(dir);
	return rc;
}

/*
 * Open (creating it and its directory if needed) the database at `path`,
 * switch it to WAL and create the plugin's tables and the outbox.  Returns
 * SQLITE_OK with the new handle in *dbp (close with sqlite3_close_v2), or an
 * error code with the reason in err.
 */
static int
db_open(const char *path, const char *schema, sqlite3 **dbp, char *err,
    size_t errlen)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc;

	*dbp = NULL;
	if (mkdir_parents(path, err, errlen) == -1)
		return SQLITE_CANTOPEN;
	if ((rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL)) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	if ((rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL,
	    &msg)) != SQLITE_OK ||
	    (rc = sqlite3_exec(db, schema, NULL, NULL, &msg)) != SQLITE_OK ||
	    (rc = sqlite3_exec(db, outbox_schema, NULL, NULL,
	    &msg)) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		goto fail;
	}
	*dbp = db;
	return SQLITE_OK;
fail:
	sqlite3_close_v2(db);
	return rc;
}

/* Free a store (a cmdhost_fini_fn): finalize its statements, close the
 * database.  NULL is fine. */
static void
free_store(void *arg)
{
	struct store *s = arg;
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nstmt; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_finalize(s->insert_outbox);
	sqlite3_close_v2(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s->stmt);
	free(s->path);
	free(s);
}

/* Prepare `sql` into *stmt.  Returns SQLITE_OK, or the error code with
 * "PATH: reason" in err. */
static int
prepare(struct store *s, const char *sql, sqlite3_stmt **stmt, char *err,
    size_t errlen)
{
	int rc;

	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, stmt, NULL)) != SQLITE_OK)
		snprintf(err, errlen, "%s: %s", s->path, sqlite3_errmsg(s->db));
	return rc;
}

/*
 * Open the database at `path`, create the tables and prepare the
 * statements (see store_attach).  Returns a new store (free with
 * free_store), or NULL with the reason in err.
 */
static struct store *
new_store(const char *path, const char *schema, const char *const *sql,
    size_t nsql, char *err, size_t errlen)
{
	struct store *s;
	size_t i;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "calloc: %s", strerror(errno));
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	if ((s->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "strdup: %s", strerror(errno));
		goto fail;
	}
	if ((s->stmt = calloc(nsql ? nsql : 1, sizeof(*s->stmt))) == NULL) {
		snprintf(err, errlen, "calloc: %s", strerror(errno));
		goto fail;
	}
	s->nstmt = nsql;
	if (db_open(path, schema, &s->db, err, errlen) != SQLITE_OK)
		goto fail;
	for (i = 0; i < nsql; i++)
		if (prepare(s, sql[i], &s->stmt[i], err, errlen) != SQLITE_OK)
			goto fail;
	if (prepare(s, "INSERT INTO outbox (topic, message, created_at) "
	    "VALUES (?1, ?2, ?3)", &s->insert_outbox, err,
	    errlen) != SQLITE_OK)
		goto fail;
	return s;
fail:
	free_store(s);
	return NULL;
}

struct store *
store_attach(cmdhost_registrar *reg, const char *fallback,
    const char *schema, const char *const *sql, size_t nsql)
{
	const char *path = cmdhost_config(reg, "database");
	struct store *s;
	char err[512];

	if (path == NULL || *path == '\0')
		path = fallback;
	if ((s = new_store(path, schema, sql, nsql, err,
	    sizeof(err))) == NULL) {
		cmdhost_reg_error(reg, "cannot open database: %s", err);
		return NULL;
	}
	cmdhost_set_state(reg, s, free_store);
	/* The daemon publishes the outbox (ABI 1.2): it fetches rows, stores
	 * them in its own durable outbox, then has them deleted here. */
	if (CMDHOST_API_HAS(cmdhost_api(reg), reg_set_relay) &&
	    cmdhost_set_relay(reg, store_relay_fetch, store_relay_ack) != 0)
		return NULL;
	return s;
}

int
store_step(struct store *s, sqlite3_stmt *st, char *err, size_t errlen)
{
	int rc;

	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		rc = SQLITE_OK;
	else
		snprintf(err, errlen, "%s", sqlite3_errmsg(s->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int
store_exec(struct store *s, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc;

	if ((rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg)) != SQLITE_OK)
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(s->db));
	sqlite3_free(msg);
	return rc;
}

int
store_begin(struct store *s, char *err, size_t errlen)
{
	return store_exec(s, "BEGIN IMMEDIATE", err, errlen);
}

void
store_rollback(struct store *s)
{
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int
store_relay_fetch(void *state, cmdhost_relay *sink, size_t max)
{
	struct store *s = state;
	sqlite3_stmt *st;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = sqlite3_prepare_v2(s->db, "SELECT id, topic, message FROM outbox "
	    "ORDER BY id LIMIT ?1", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			char id[24];

			snprintf(id, sizeof(id), "%lld",
			    (long long)sqlite3_column_int64(st, 0));
			/* A refused row is acked all the same (logged by the
			 * daemon): go on with the next. */
			(void)cmdhost_relay_put(sink, id,
			    (const char *)sqlite3_column_text(st, 1),
			    (const char *)sqlite3_column_text(st, 2));
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_relay_ack(void *state, const char *const *ids, size_t n)
{
	struct store *s = state;
	sqlite3_stmt *st;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = sqlite3_prepare_v2(s->db, "DELETE FROM outbox WHERE id = ?1", -1,
	    &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		sqlite3_bind_int64(st, 1, atoll(ids[i]));
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sqlite3_reset(st);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	else
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return rc == SQLITE_OK ? 0 : -1;
}

int
store_write(struct store *s, sqlite3_stmt *st, const char *topic,
    struct json_object *message, const char *now, char *err, size_t errlen)
{
	int rc;

	if (st != NULL && (rc = store_step(s, st, err, errlen)) != SQLITE_OK)
		goto rollback;
	sqlite3_bind_text(s->insert_outbox, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->insert_outbox, 2, json_object_to_json_string_ext(
	    message, JSON_C_TO_STRING_PLAIN), -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s->insert_outbox, 3, now, -1, SQLITE_TRANSIENT);
	if ((rc = store_step(s, s->insert_outbox, err, errlen)) == SQLITE_OK &&
	    (rc = store_exec(s, "COMMIT", err, errlen)) == SQLITE_OK)
		return SQLITE_OK;
rollback:
	store_rollback(s);
	return rc;
}

void
store_format_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}
