/*
 * users.c - the "users" plugin: user.create and user.delete over SQLite.
 *
 * Each write changes the users table and appends an outbox row (the event a
 * relay would publish) in one transaction.  Publishing the outbox is not this
 * plugin's job.
 */
#include <cmdhost/plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#define USERS_DEFAULT_DB	"users.db"
#define USERS_BUSY_TIMEOUT_MS	5000

static const char users_schema[] =
	"CREATE TABLE IF NOT EXISTS users ("
	" user_id TEXT PRIMARY KEY,"
	" name TEXT NOT NULL,"
	" email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	" created_at TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS outbox ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" topic TEXT NOT NULL,"
	" message TEXT NOT NULL,"
	" created_at TEXT NOT NULL);";

/*
 * The generation's state.  `lock` is held for each whole write transaction:
 * the connection is shared by every thread running a command, and SQLite's
 * own mutex only protects single calls, not a BEGIN..COMMIT sequence.  The
 * statements are used only with `lock` held.
 */
struct users {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3_stmt *insert_user;
	sqlite3_stmt *delete_user;
	sqlite3_stmt *insert_outbox;
};

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
 * Open (creating it and its directory if needed) the database at `path` and
 * create the tables.  Returns the new handle (close with sqlite3_close_v2),
 * or NULL with the reason in err.
 */
static sqlite3 *
db_open(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	if (mkdir_parents(path, err, errlen) == -1)
		return NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, USERS_BUSY_TIMEOUT_MS);
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL,
	    &msg) != SQLITE_OK ||
	    sqlite3_exec(db, users_schema, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		goto fail;
	}
	return db;
fail:
	sqlite3_close_v2(db);
	return NULL;
}

/* The fini: finalize the statements, close the database, free the state
 * (NULL is fine). */
static void
users_free(void *arg)
{
	struct users *u = arg;

	if (u == NULL)
		return;
	sqlite3_finalize(u->insert_user);
	sqlite3_finalize(u->delete_user);
	sqlite3_finalize(u->insert_outbox);
	sqlite3_close_v2(u->db);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/*
 * Open the database and prepare the statements.  Returns new state (free
 * with users_free), or NULL with the reason in err.
 */
static struct users *
users_new(const char *path, char *err, size_t errlen)
{
	struct users *u;

	if ((u = calloc(1, sizeof(*u))) == NULL) {
		snprintf(err, errlen, "calloc: %s", strerror(errno));
		return NULL;
	}
	pthread_mutex_init(&u->lock, NULL);
	if ((u->db = db_open(path, err, errlen)) == NULL)
		goto fail;
	if (sqlite3_prepare_v2(u->db, "INSERT INTO users (user_id, name, "
	    "email, created_at) VALUES (?1, ?2, ?3, ?4)", -1,
	    &u->insert_user, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(u->db, "DELETE FROM users WHERE user_id = ?1",
	    -1, &u->delete_user, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(u->db, "INSERT INTO outbox (topic, message, "
	    "created_at) VALUES (?1, ?2, ?3)", -1,
	    &u->insert_outbox, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(u->db));
		goto fail;
	}
	return u;
fail:
	users_free(u);
	return NULL;
}

/* Write the current UTC time as RFC 3339 with milliseconds into buf. */
static void
format_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/*
 * Write a new user id, "u-" and 16 random hex digits, into buf (at least 19
 * bytes).  Returns 0, or -1 with errno set.
 */
static int
new_user_id(char *buf)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[8];
	ssize_t n;
	size_t i;

	while ((n = getrandom(rnd, sizeof(rnd), 0)) == -1 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(rnd)) {
		if (n >= 0)
			errno = EIO;
		return -1;
	}
	buf[0] = 'u';
	buf[1] = '-';
	for (i = 0; i < sizeof(rnd); i++) {
		buf[2 + 2 * i] = hex[rnd[i] >> 4];
		buf[3 + 2 * i] = hex[rnd[i] & 0xf];
	}
	buf[2 + 2 * sizeof(rnd)] = '\0';
	return 0;
}

/*
 * The string member `key` of the payload, or NULL if it is absent, not a
 * string or holds a NUL byte.  Borrowed from the payload.
 */
static const char *
payload_string(struct json_object *payload, const char *key)
{
	struct json_object *v;
	const char *s;

	if (!json_object_object_get_ex(payload, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return NULL;
	return s;
}

/*
 * Run a statement that returns no row, with its parameters bound, and reset
 * it.  Returns SQLITE_OK, or the (extended) error code with sqlite's message
 * in err.  Caller holds the state's lock.
 */
static int
stmt_exec(sqlite3 *db, sqlite3_stmt *st, char *err, size_t errlen)
{
	int rc;

	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		rc = SQLITE_OK;
	else
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* Run fixed SQL (transaction control).  Returns as stmt_exec(). */
static int
sql_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc;

	if ((rc = sqlite3_exec(db, sql, NULL, NULL, &msg)) != SQLITE_OK)
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return rc;
}

/*
 * Append an outbox row: `message` is the JSON object to publish on `topic`
 * (borrowed).  Caller holds the lock, inside a transaction.  Returns as
 * stmt_exec().
 */
static int
outbox_add(struct users *u, const char *topic, struct json_object *message,
    const char *now, char *err, size_t errlen)
{
	sqlite3_bind_text(u->insert_outbox, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(u->insert_outbox, 2, json_object_to_json_string_ext(
	    message, JSON_C_TO_STRING_PLAIN), -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(u->insert_outbox, 3, now, -1, SQLITE_TRANSIENT);
	return stmt_exec(u->db, u->insert_outbox, err, errlen);
}

/* user.create validate: a non-empty name and an email "x@y". */
static int
user_create_validate(cmdhost_ctx *ctx)
{
	struct json_object *p = cmdhost_payload(ctx);
	const char *name = payload_string(p, "name");
	const char *email = payload_string(p, "email");
	const char *at;

	if (name == NULL || *name == '\0') {
		cmdhost_fail(ctx, 400, "invalid_payload",
		    "field 'name' must be a non-empty string");
		return -1;
	}
	if (email == NULL || (at = strchr(email, '@')) == NULL ||
	    at == email || at[1] == '\0' || strchr(at + 1, '@') != NULL) {
		cmdhost_fail(ctx, 400, "invalid_payload",
		    "field 'email' must contain one '@' with text on both "
		    "sides");
		return -1;
	}
	return 0;
}

/*
 * In one transaction, insert the user and the "user.created" outbox row
 * carrying `msg` (borrowed).  Caller holds the lock.  Returns as
 * stmt_exec(); SQLITE_CONSTRAINT_UNIQUE means the email is taken.
 */
static int
create_tx(struct users *u, const char *id, const char *name,
    const char *email, const char *now, struct json_object *msg, char *err,
    size_t errlen)
{
	int rc;

	if ((rc = sql_exec(u->db, "BEGIN IMMEDIATE", err, errlen)) != SQLITE_OK)
		return rc;
	sqlite3_bind_text(u->insert_user, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(u->insert_user, 2, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(u->insert_user, 3, email, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(u->insert_user, 4, now, -1, SQLITE_TRANSIENT);
	if ((rc = stmt_exec(u->db, u->insert_user, err, errlen)) == SQLITE_OK &&
	    (rc = outbox_add(u, "user.created", msg, now, err,
	    errlen)) == SQLITE_OK &&
	    (rc = sql_exec(u->db, "COMMIT", err, errlen)) == SQLITE_OK)
		return SQLITE_OK;
	sqlite3_exec(u->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/*
 * user.create: insert the user and a "user.created" outbox row in one
 * transaction; 201 {userId, name, email}, or 409 email_taken.
 */
static int
user_create_execute(cmdhost_ctx *ctx)
{
	struct users *u = cmdhost_state(ctx);
	struct json_object *p = cmdhost_payload(ctx);
	const char *name = payload_string(p, "name");
	const char *email = payload_string(p, "email");
	struct json_object *msg, *body;
	char id[32], now[40], err[512];
	int rc;

	if (new_user_id(id) == -1) {
		cmdhost_failf(ctx, 500, "internal_error", "getrandom: %s",
		    strerror(errno));
		return 0;
	}
	format_now(now, sizeof(now));
	msg = json_object_new_object();
	json_object_object_add(msg, "userId", json_object_new_string(id));
	json_object_object_add(msg, "name", json_object_new_string(name));
	json_object_object_add(msg, "email", json_object_new_string(email));
	json_object_object_add(msg, "createdAt", json_object_new_string(now));

	pthread_mutex_lock(&u->lock);
	rc = create_tx(u, id, name, email, now, msg, err, sizeof(err));
	pthread_mutex_unlock(&u->lock);
	json_object_put(msg);

	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		cmdhost_failf(ctx, 409, "email_taken",
		    "a user with email %s already exists", email);
		return 0;
	}
	if (rc != SQLITE_OK) {
		cmdhost_fail(ctx, 500, "database_error", err);
		return 0;
	}
	cmdhost_log(ctx, CMDHOST_LOG_INFO, "user %s created", id);
	body = json_object_new_object();
	json_object_object_add(body, "userId", json_object_new_string(id));
	json_object_object_add(body, "name", json_object_new_string(name));
	json_object_object_add(body, "email", json_object_new_string(email));
	cmdhost_respond(ctx, 201, body);
	return 0;
}

/* user.delete validate: a non-empty user_id. */
static int
user_delete_validate(cmdhost_ctx *ctx)
{
	const char *id = payload_string(cmdhost_payload(ctx), "user_id");

	if (id == NULL || *id == '\0') {
		cmdhost_fail(ctx, 400, "invalid_payload",
		    "field 'user_id' must be a non-empty string");
		return -1;
	}
	return 0;
}

/*
 * In one transaction, delete user `id` and write the "user.deleted" outbox
 * row carrying `msg` (borrowed).  Caller holds the lock.  Returns as
 * stmt_exec(); *found tells whether the user existed (nothing is written
 * when it did not).
 */
static int
delete_tx(struct users *u, const char *id, const char *now,
    struct json_object *msg, int *found, char *err, size_t errlen)
{
	int rc;

	*found = 0;
	if ((rc = sql_exec(u->db, "BEGIN IMMEDIATE", err, errlen)) != SQLITE_OK)
		return rc;
	sqlite3_bind_text(u->delete_user, 1, id, -1, SQLITE_TRANSIENT);
	if ((rc = stmt_exec(u->db, u->delete_user, err, errlen)) != SQLITE_OK)
		goto rollback;
	if (sqlite3_changes(u->db) == 0)
		return sql_exec(u->db, "ROLLBACK", err, errlen);
	*found = 1;
	if ((rc = outbox_add(u, "user.deleted", msg, now, err,
	    errlen)) == SQLITE_OK &&
	    (rc = sql_exec(u->db, "COMMIT", err, errlen)) == SQLITE_OK)
		return SQLITE_OK;
rollback:
	sqlite3_exec(u->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/*
 * user.delete: delete the user and write a "user.deleted" outbox row in one
 * transaction; 200 {userId, deleted: true}, or 404 user_not_found.
 */
static int
user_delete_execute(cmdhost_ctx *ctx)
{
	struct users *u = cmdhost_state(ctx);
	const char *id = payload_string(cmdhost_payload(ctx), "user_id");
	struct json_object *msg, *body;
	char now[40], err[512];
	int rc, found;

	if (id == NULL)	/* validate already refused it; stay safe */
		return -1;
	format_now(now, sizeof(now));
	msg = json_object_new_object();
	json_object_object_add(msg, "userId", json_object_new_string(id));
	json_object_object_add(msg, "deletedAt", json_object_new_string(now));

	pthread_mutex_lock(&u->lock);
	rc = delete_tx(u, id, now, msg, &found, err, sizeof(err));
	pthread_mutex_unlock(&u->lock);
	json_object_put(msg);

	if (rc != SQLITE_OK) {
		cmdhost_fail(ctx, 500, "database_error", err);
		return 0;
	}
	if (!found) {
		cmdhost_failf(ctx, 404, "user_not_found", "no user %s", id);
		return 0;
	}
	cmdhost_log(ctx, CMDHOST_LOG_INFO, "user %s deleted", id);
	body = json_object_new_object();
	json_object_object_add(body, "userId", json_object_new_string(id));
	json_object_object_add(body, "deleted", json_object_new_boolean(1));
	cmdhost_ok(ctx, body);
	return 0;
}

static const cmdhost_field user_create_fields[] = {
	{ "name", CMDHOST_STRING, 1 },
	{ "email", CMDHOST_STRING, 1 },
	{ 0 }
};

static const cmdhost_field user_delete_fields[] = {
	{ "user_id", CMDHOST_STRING, 1 },
	{ 0 }
};

/* Both write to disk (and may wait on the lock): keep them off the loop. */
static const cmdhost_command users_commands[] = {
	{ "user.create", "Create a user and emit user.created",
	    user_create_fields, user_create_validate, user_create_execute,
	    CMDHOST_BLOCKING },
	{ "user.delete", "Delete a user and emit user.deleted",
	    user_delete_fields, user_delete_validate, user_delete_execute,
	    CMDHOST_BLOCKING },
};

/*
 * Registration: open the database named by [plugin:users] database, hand
 * the state to the daemon (freed by users_free), add the commands.
 */
static int
users_register(cmdhost_registrar *reg)
{
	const char *path = cmdhost_config(reg, "database");
	struct users *u;
	char err[512];
	size_t i;

	if (path == NULL || *path == '\0')
		path = USERS_DEFAULT_DB;
	if ((u = users_new(path, err, sizeof(err))) == NULL) {
		cmdhost_reg_error(reg, "cannot open database: %s", err);
		return -1;
	}
	cmdhost_set_state(reg, u, users_free);
	for (i = 0; i < sizeof(users_commands) / sizeof(users_commands[0]); i++)
		if (cmdhost_add_command(reg, &users_commands[i]) != 0)
			return -1;
	cmdhost_reg_log(reg, CMDHOST_LOG_INFO, "database %s", path);
	return 0;
}

CMDHOST_PLUGIN("users", "1.0.0", users_register);
