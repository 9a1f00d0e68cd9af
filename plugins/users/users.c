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
#include <string.h>
#include <sys/random.h>

#include <sqlite3.h>

#include "../lib/payload.h"
#include "../lib/store.h"

#define USERS_DEFAULT_DB	"users.db"

static const char users_schema[] =
	"CREATE TABLE IF NOT EXISTS users ("
	" user_id TEXT PRIMARY KEY,"
	" name TEXT NOT NULL,"
	" email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	" created_at TEXT NOT NULL);";

/* The plugin's statements, by their index in the store's stmt[]. */
enum { INSERT_USER, DELETE_USER, USERS_NSTMT };

static const char *const users_sql[USERS_NSTMT] = {
	[INSERT_USER] = "INSERT INTO users (user_id, name, email, created_at) "
	    "VALUES (?1, ?2, ?3, ?4)",
	[DELETE_USER] = "DELETE FROM users WHERE user_id = ?1",
};

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
 * store_step(); SQLITE_CONSTRAINT_UNIQUE means the email is taken.
 */
static int
create_tx(struct store *s, const char *id, const char *name,
    const char *email, const char *now, struct json_object *msg, char *err,
    size_t errlen)
{
	sqlite3_stmt *st = s->stmt[INSERT_USER];
	int rc;

	if ((rc = store_begin(s, err, errlen)) != SQLITE_OK)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, email, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
	return store_write(s, st, "user.created", msg, now, err, errlen);
}

/*
 * user.create: insert the user and a "user.created" outbox row in one
 * transaction; 201 {userId, name, email}, or 409 email_taken.
 */
static int
user_create_execute(cmdhost_ctx *ctx)
{
	struct store *s = cmdhost_state(ctx);
	struct json_object *p = cmdhost_payload(ctx);
	const char *name = payload_string(p, "name");
	const char *email = payload_string(p, "email");
	struct json_object *msg, *body;
	char id[32], now[STORE_TIME_LEN], err[512];
	int rc;

	if (new_user_id(id) == -1) {
		cmdhost_failf(ctx, 500, "internal_error", "getrandom: %s",
		    strerror(errno));
		return 0;
	}
	store_format_now(now, sizeof(now));
	msg = json_object_new_object();
	json_object_object_add(msg, "userId", json_object_new_string(id));
	json_object_object_add(msg, "name", json_object_new_string(name));
	json_object_object_add(msg, "email", json_object_new_string(email));
	json_object_object_add(msg, "createdAt", json_object_new_string(now));

	pthread_mutex_lock(&s->lock);
	rc = create_tx(s, id, name, email, now, msg, err, sizeof(err));
	pthread_mutex_unlock(&s->lock);
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
 * store_step(); *found tells whether the user existed (nothing is written
 * when it did not).
 */
static int
delete_tx(struct store *s, const char *id, const char *now,
    struct json_object *msg, int *found, char *err, size_t errlen)
{
	sqlite3_stmt *st = s->stmt[DELETE_USER];
	int rc;

	*found = 0;
	if ((rc = store_begin(s, err, errlen)) != SQLITE_OK)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	if ((rc = store_step(s, st, err, errlen)) != SQLITE_OK) {
		store_rollback(s);
		return rc;
	}
	if (sqlite3_changes(s->db) == 0)
		return store_exec(s, "ROLLBACK", err, errlen);
	*found = 1;
	return store_write(s, NULL, "user.deleted", msg, now, err, errlen);
}

/*
 * user.delete: delete the user and write a "user.deleted" outbox row in one
 * transaction; 200 {userId, deleted: true}, or 404 user_not_found.
 */
static int
user_delete_execute(cmdhost_ctx *ctx)
{
	struct store *s = cmdhost_state(ctx);
	const char *id = payload_string(cmdhost_payload(ctx), "user_id");
	struct json_object *msg, *body;
	char now[STORE_TIME_LEN], err[512];
	int rc, found;

	if (id == NULL)	/* validate already refused it; stay safe */
		return -1;
	store_format_now(now, sizeof(now));
	msg = json_object_new_object();
	json_object_object_add(msg, "userId", json_object_new_string(id));
	json_object_object_add(msg, "deletedAt", json_object_new_string(now));

	pthread_mutex_lock(&s->lock);
	rc = delete_tx(s, id, now, msg, &found, err, sizeof(err));
	pthread_mutex_unlock(&s->lock);
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
 * Registration: open the database named by [plugin:users] database as the
 * generation's state (the daemon frees it), add the commands.
 */
static int
users_register(cmdhost_registrar *reg)
{
	struct store *s;
	size_t i;

	if ((s = store_attach(reg, USERS_DEFAULT_DB, users_schema, users_sql,
	    USERS_NSTMT)) == NULL)
		return -1;
	for (i = 0; i < sizeof(users_commands) / sizeof(users_commands[0]); i++)
		if (cmdhost_add_command(reg, &users_commands[i]) != 0)
			return -1;
	cmdhost_reg_log(reg, CMDHOST_LOG_INFO, "database %s", s->path);
	return 0;
}

CMDHOST_PLUGIN("users", "1.0.0", users_register);
