/*
 * orders.c - the "orders" plugin: PROCESS_ORDER and REFUND_ORDER over SQLite.
 *
 * It reproduces the seed's order service: each write changes the orders
 * table and appends to an outbox table, in one transaction, the message the
 * seed sent to its queue.  Publishing the outbox is not this plugin's job.
 */
#include <cmdhost/plugin.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#define ORDERS_DEFAULT_DB	"orders.db"
#define ORDERS_BUSY_TIMEOUT_MS	5000

static const char orders_schema[] =
	"CREATE TABLE IF NOT EXISTS orders ("
	" order_id TEXT PRIMARY KEY,"
	" user_id TEXT NOT NULL,"
	" amount REAL NOT NULL,"
	" status TEXT NOT NULL,"
	" created_at TEXT NOT NULL,"
	" refund_amount REAL,"
	" refunded_at TEXT);"
	"CREATE TABLE IF NOT EXISTS outbox ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" topic TEXT NOT NULL,"
	" message TEXT NOT NULL,"
	" created_at TEXT NOT NULL);";

/*
 * The generation's state.  `lock` is held for each whole transaction: the
 * connection is shared by every thread running a command, and SQLite's own
 * mutex only protects single calls, not a BEGIN..COMMIT sequence.  The
 * statements are used only with `lock` held.
 */
struct orders {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3_stmt *insert_order;
	sqlite3_stmt *select_order;
	sqlite3_stmt *refund_order;
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
	sqlite3_busy_timeout(db, ORDERS_BUSY_TIMEOUT_MS);
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL,
	    &msg) != SQLITE_OK ||
	    sqlite3_exec(db, orders_schema, NULL, NULL, &msg) != SQLITE_OK) {
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
orders_free(void *arg)
{
	struct orders *o = arg;

	if (o == NULL)
		return;
	sqlite3_finalize(o->insert_order);
	sqlite3_finalize(o->select_order);
	sqlite3_finalize(o->refund_order);
	sqlite3_finalize(o->insert_outbox);
	sqlite3_close_v2(o->db);
	pthread_mutex_destroy(&o->lock);
	free(o);
}

/*
 * Open the database and prepare the statements.  Returns new state (free
 * with orders_free), or NULL with the reason in err.
 */
static struct orders *
orders_new(const char *path, char *err, size_t errlen)
{
	struct orders *o;

	if ((o = calloc(1, sizeof(*o))) == NULL) {
		snprintf(err, errlen, "calloc: %s", strerror(errno));
		return NULL;
	}
	pthread_mutex_init(&o->lock, NULL);
	if ((o->db = db_open(path, err, errlen)) == NULL)
		goto fail;
	if (sqlite3_prepare_v2(o->db, "INSERT INTO orders (order_id, user_id, "
	    "amount, status, created_at) VALUES (?1, ?2, ?3, 'PROCESSING', ?4)",
	    -1, &o->insert_order, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(o->db, "SELECT amount, status FROM orders "
	    "WHERE order_id = ?1", -1, &o->select_order, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(o->db, "UPDATE orders SET status = 'REFUNDED', "
	    "refund_amount = ?2, refunded_at = ?3 WHERE order_id = ?1", -1,
	    &o->refund_order, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(o->db, "INSERT INTO outbox (topic, message, "
	    "created_at) VALUES (?1, ?2, ?3)", -1,
	    &o->insert_outbox, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(o->db));
		goto fail;
	}
	return o;
fail:
	orders_free(o);
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
outbox_add(struct orders *o, const char *topic, struct json_object *message,
    const char *now, char *err, size_t errlen)
{
	sqlite3_bind_text(o->insert_outbox, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(o->insert_outbox, 2, json_object_to_json_string_ext(
	    message, JSON_C_TO_STRING_PLAIN), -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(o->insert_outbox, 3, now, -1, SQLITE_TRANSIENT);
	return stmt_exec(o->db, o->insert_outbox, err, errlen);
}

/*
 * The number member `key` of the payload, in *out.  Returns 0, or -1 if it
 * is absent or not a number.
 */
static int
payload_number(struct json_object *payload, const char *key, double *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(payload, key, &v) ||
	    !(json_object_is_type(v, json_type_double) ||
	    json_object_is_type(v, json_type_int)))
		return -1;
	*out = json_object_get_double(v);
	return 0;
}

/* PROCESS_ORDER validate: non-empty ids, a finite amount above zero. */
static int
process_validate(cmdhost_ctx *ctx)
{
	struct json_object *p = cmdhost_payload(ctx);
	const char *order_id = payload_string(p, "orderId");
	const char *user_id = payload_string(p, "userId");
	double amount;

	if (order_id == NULL || *order_id == '\0') {
		cmdhost_fail(ctx, 400, "invalid_payload",
		    "field 'orderId' must be a non-empty string");
		return -1;
	}
	if (user_id == NULL || *user_id == '\0') {
		cmdhost_fail(ctx, 400, "invalid_payload",
		    "field 'userId' must be a non-empty string");
		return -1;
	}
	if (payload_number(p, "amount", &amount) == -1 || !isfinite(amount) ||
	    amount <= 0) {
		cmdhost_fail(ctx, 400, "invalid_payload",
		    "field 'amount' must be a finite number greater than 0");
		return -1;
	}
	return 0;
}

/*
 * In one transaction, insert order `order_id` as PROCESSING and the
 * "payment" outbox row carrying `msg` (borrowed).  Caller holds the lock.
 * Returns as stmt_exec(); SQLITE_CONSTRAINT_PRIMARYKEY means the order
 * exists.
 */
static int
process_tx(struct orders *o, const char *order_id, const char *user_id,
    double amount, const char *now, struct json_object *msg, char *err,
    size_t errlen)
{
	int rc;

	if ((rc = sql_exec(o->db, "BEGIN IMMEDIATE", err, errlen)) != SQLITE_OK)
		return rc;
	sqlite3_bind_text(o->insert_order, 1, order_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(o->insert_order, 2, user_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(o->insert_order, 3, amount);
	sqlite3_bind_text(o->insert_order, 4, now, -1, SQLITE_TRANSIENT);
	if ((rc = stmt_exec(o->db, o->insert_order, err, errlen)) ==
	    SQLITE_OK &&
	    (rc = outbox_add(o, "payment", msg, now, err, errlen)) ==
	    SQLITE_OK &&
	    (rc = sql_exec(o->db, "COMMIT", err, errlen)) == SQLITE_OK)
		return SQLITE_OK;
	sqlite3_exec(o->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* A reply body {"orderId": order_id, "status": status}.  Returns new. */
static struct json_object *
order_body(const char *order_id, const char *status)
{
	struct json_object *body = json_object_new_object();

	json_object_object_add(body, "orderId",
	    json_object_new_string(order_id));
	json_object_object_add(body, "status", json_object_new_string(status));
	return body;
}

/*
 * PROCESS_ORDER: record the order as PROCESSING and queue the payment
 * request; 200 {orderId, status}, or 409 order_exists.
 */
static int
process_execute(cmdhost_ctx *ctx)
{
	struct orders *o = cmdhost_state(ctx);
	struct json_object *p = cmdhost_payload(ctx);
	const char *order_id = payload_string(p, "orderId");
	const char *user_id = payload_string(p, "userId");
	struct json_object *amount_obj, *msg;
	char now[40], err[512];
	double amount;
	int rc;

	if (order_id == NULL || user_id == NULL ||
	    !json_object_object_get_ex(p, "amount", &amount_obj) ||
	    payload_number(p, "amount", &amount) == -1)
		return -1;	/* validate already refused it */
	format_now(now, sizeof(now));

	/* The client's amount object keeps its own spelling (12.50 stays). */
	msg = json_object_new_object();
	json_object_object_add(msg, "orderId",
	    json_object_new_string(order_id));
	json_object_object_add(msg, "userId", json_object_new_string(user_id));
	json_object_object_add(msg, "amount", json_object_get(amount_obj));
	json_object_object_add(msg, "action",
	    json_object_new_string("PROCESS_PAYMENT"));

	pthread_mutex_lock(&o->lock);
	rc = process_tx(o, order_id, user_id, amount, now, msg, err,
	    sizeof(err));
	pthread_mutex_unlock(&o->lock);
	json_object_put(msg);

	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		cmdhost_failf(ctx, 409, "order_exists",
		    "order %s already exists", order_id);
		return 0;
	}
	if (rc != SQLITE_OK) {
		cmdhost_fail(ctx, 500, "database_error", err);
		return 0;
	}
	cmdhost_log(ctx, CMDHOST_LOG_INFO, "order %s processing, amount %.15g",
	    order_id, amount);
	cmdhost_ok(ctx, order_body(order_id, "PROCESSING"));
	return 0;
}

/* REFUND_ORDER validate: a non-empty orderId, a finite refund above 0. */
static int
refund_validate(cmdhost_ctx *ctx)
{
	struct json_object *p = cmdhost_payload(ctx);
	const char *order_id = payload_string(p, "orderId");
	double refund;

	if (order_id == NULL || *order_id == '\0') {
		cmdhost_fail(ctx, 400, "invalid_payload",
		    "field 'orderId' must be a non-empty string");
		return -1;
	}
	if (payload_number(p, "refundAmount", &refund) == -1 ||
	    !isfinite(refund) || refund <= 0) {
		cmdhost_fail(ctx, 400, "invalid_payload",
		    "field 'refundAmount' must be a finite number greater "
		    "than 0");
		return -1;
	}
	return 0;
}

/* Why refund_tx() did not refund (besides a database error). */
enum refund_result {
	REFUND_DONE = 0,
	REFUND_NOT_FOUND,
	REFUND_EXCEEDS,
	REFUND_ALREADY
};

/*
 * In one transaction, check order `order_id` and, if it may be refunded,
 * mark it REFUNDED and write the "notification" outbox row carrying `msg`
 * (borrowed).  Caller holds the lock.  Returns as stmt_exec(); on
 * SQLITE_OK, *result says what happened and *amount holds the order's
 * amount when it was found.
 */
static int
refund_tx(struct orders *o, const char *order_id, double refund,
    const char *now, struct json_object *msg, enum refund_result *result,
    double *amount, char *err, size_t errlen)
{
	const unsigned char *status;
	int rc, refunded = 0;

	*result = REFUND_NOT_FOUND;
	if ((rc = sql_exec(o->db, "BEGIN IMMEDIATE", err, errlen)) != SQLITE_OK)
		return rc;
	sqlite3_bind_text(o->select_order, 1, order_id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(o->select_order);
	if (rc == SQLITE_ROW) {
		*amount = sqlite3_column_double(o->select_order, 0);
		status = sqlite3_column_text(o->select_order, 1);
		refunded = status != NULL &&
		    strcmp((const char *)status, "REFUNDED") == 0;
		rc = SQLITE_OK;
		if (refund > *amount)
			*result = REFUND_EXCEEDS;
		else if (refunded)
			*result = REFUND_ALREADY;
		else
			*result = REFUND_DONE;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	} else {
		snprintf(err, errlen, "%s", sqlite3_errmsg(o->db));
	}
	sqlite3_reset(o->select_order);
	sqlite3_clear_bindings(o->select_order);
	if (rc != SQLITE_OK)
		goto rollback;
	if (*result != REFUND_DONE)
		return sql_exec(o->db, "ROLLBACK", err, errlen);

	sqlite3_bind_text(o->refund_order, 1, order_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(o->refund_order, 2, refund);
	sqlite3_bind_text(o->refund_order, 3, now, -1, SQLITE_TRANSIENT);
	if ((rc = stmt_exec(o->db, o->refund_order, err, errlen)) ==
	    SQLITE_OK &&
	    (rc = outbox_add(o, "notification", msg, now, err, errlen)) ==
	    SQLITE_OK &&
	    (rc = sql_exec(o->db, "COMMIT", err, errlen)) == SQLITE_OK)
		return SQLITE_OK;
rollback:
	sqlite3_exec(o->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/*
 * REFUND_ORDER: mark the order REFUNDED and queue the notification;
 * 200 {orderId, status}, or 404 order_not_found, 422 refund_exceeds_amount,
 * 409 already_refunded.
 */
static int
refund_execute(cmdhost_ctx *ctx)
{
	struct orders *o = cmdhost_state(ctx);
	struct json_object *p = cmdhost_payload(ctx);
	const char *order_id = payload_string(p, "orderId");
	struct json_object *refund_obj, *msg;
	enum refund_result result;
	char now[40], err[512];
	double refund, amount = 0;
	int rc;

	if (order_id == NULL ||
	    !json_object_object_get_ex(p, "refundAmount", &refund_obj) ||
	    payload_number(p, "refundAmount", &refund) == -1)
		return -1;	/* validate already refused it */
	format_now(now, sizeof(now));

	msg = json_object_new_object();
	json_object_object_add(msg, "orderId",
	    json_object_new_string(order_id));
	json_object_object_add(msg, "type",
	    json_object_new_string("ORDER_REFUNDED"));
	json_object_object_add(msg, "refundAmount",
	    json_object_get(refund_obj));

	pthread_mutex_lock(&o->lock);
	rc = refund_tx(o, order_id, refund, now, msg, &result, &amount, err,
	    sizeof(err));
	pthread_mutex_unlock(&o->lock);
	json_object_put(msg);

	if (rc != SQLITE_OK) {
		cmdhost_fail(ctx, 500, "database_error", err);
		return 0;
	}
	switch (result) {
	case REFUND_NOT_FOUND:
		cmdhost_failf(ctx, 404, "order_not_found", "no order %s",
		    order_id);
		return 0;
	case REFUND_EXCEEDS:
		cmdhost_failf(ctx, 422, "refund_exceeds_amount",
		    "refund amount %.15g exceeds order amount %.15g", refund,
		    amount);
		return 0;
	case REFUND_ALREADY:
		cmdhost_failf(ctx, 409, "already_refunded",
		    "order %s is already refunded", order_id);
		return 0;
	case REFUND_DONE:
		break;
	}
	cmdhost_log(ctx, CMDHOST_LOG_INFO, "order %s refunded, amount %.15g",
	    order_id, refund);
	cmdhost_ok(ctx, order_body(order_id, "REFUNDED"));
	return 0;
}

static const cmdhost_field process_fields[] = {
	{ "orderId", CMDHOST_STRING, 1 },
	{ "userId", CMDHOST_STRING, 1 },
	{ "amount", CMDHOST_NUMBER, 1 },
	{ 0 }
};

static const cmdhost_field refund_fields[] = {
	{ "orderId", CMDHOST_STRING, 1 },
	{ "refundAmount", CMDHOST_NUMBER, 1 },
	{ 0 }
};

/* Both write to disk (and may wait on the lock): keep them off the loop. */
static const cmdhost_command orders_commands[] = {
	{ "PROCESS_ORDER", "Record an order and request its payment",
	    process_fields, process_validate, process_execute,
	    CMDHOST_BLOCKING },
	{ "REFUND_ORDER", "Refund an order and notify the customer",
	    refund_fields, refund_validate, refund_execute, CMDHOST_BLOCKING },
};

/*
 * Registration: open the database named by [plugin:orders] database, hand
 * the state to the daemon (freed by orders_free), add the commands.
 */
static int
orders_register(cmdhost_registrar *reg)
{
	const char *path = cmdhost_config(reg, "database");
	struct orders *o;
	char err[512];
	size_t i;

	if (path == NULL || *path == '\0')
		path = ORDERS_DEFAULT_DB;
	if ((o = orders_new(path, err, sizeof(err))) == NULL) {
		cmdhost_reg_error(reg, "cannot open database: %s", err);
		return -1;
	}
	cmdhost_set_state(reg, o, orders_free);
	for (i = 0; i < sizeof(orders_commands) / sizeof(orders_commands[0]);
	    i++)
		if (cmdhost_add_command(reg, &orders_commands[i]) != 0)
			return -1;
	cmdhost_reg_log(reg, CMDHOST_LOG_INFO, "database %s", path);
	return 0;
}

CMDHOST_PLUGIN("orders", "1.0.0", orders_register);
