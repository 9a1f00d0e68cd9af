/*
 * orders.c - the "orders" plugin: PROCESS_ORDER and REFUND_ORDER over SQLite.
 *
 * It reproduces the seed's order service: each write changes the orders
 * table and appends to an outbox table, in one transaction, the message the
 * seed sent to its queue.  Publishing the outbox is not this plugin's job.
 */
#include <cmdhost/plugin.h>

#include <math.h>
#include <pthread.h>
#include <string.h>

#include <sqlite3.h>

#include "../lib/payload.h"
#include "../lib/store.h"

#define ORDERS_DEFAULT_DB	"orders.db"

static const char orders_schema[] =
	"CREATE TABLE IF NOT EXISTS orders ("
	" order_id TEXT PRIMARY KEY,"
	" user_id TEXT NOT NULL,"
	" amount REAL NOT NULL,"
	" status TEXT NOT NULL,"
	" created_at TEXT NOT NULL,"
	" refund_amount REAL,"
	" refunded_at TEXT);";

/* The plugin's statements, by their index in the store's stmt[]. */
enum { INSERT_ORDER, SELECT_ORDER, REFUND_ORDER, ORDERS_NSTMT };

static const char *const orders_sql[ORDERS_NSTMT] = {
	[INSERT_ORDER] = "INSERT INTO orders (order_id, user_id, amount, "
	    "status, created_at) VALUES (?1, ?2, ?3, 'PROCESSING', ?4)",
	[SELECT_ORDER] = "SELECT amount, status FROM orders "
	    "WHERE order_id = ?1",
	[REFUND_ORDER] = "UPDATE orders SET status = 'REFUNDED', "
	    "refund_amount = ?2, refunded_at = ?3 WHERE order_id = ?1",
};

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
 * "payment.requested" outbox row carrying `msg` (borrowed).  Caller holds the lock.
 * Returns as store_step(); SQLITE_CONSTRAINT_PRIMARYKEY means the order
 * exists.
 */
static int
process_tx(struct store *s, const char *order_id, const char *user_id,
    double amount, const char *now, struct json_object *msg, char *err,
    size_t errlen)
{
	sqlite3_stmt *st = s->stmt[INSERT_ORDER];
	int rc;

	if ((rc = store_begin(s, err, errlen)) != SQLITE_OK)
		return rc;
	sqlite3_bind_text(st, 1, order_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, user_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(st, 3, amount);
	sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
	return store_write(s, st, "payment.requested", msg, now, err, errlen);
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
	struct store *s = cmdhost_state(ctx);
	struct json_object *p = cmdhost_payload(ctx);
	const char *order_id = payload_string(p, "orderId");
	const char *user_id = payload_string(p, "userId");
	struct json_object *amount_obj, *msg;
	char now[STORE_TIME_LEN], err[512];
	double amount;
	int rc;

	if (order_id == NULL || user_id == NULL ||
	    !json_object_object_get_ex(p, "amount", &amount_obj) ||
	    payload_number(p, "amount", &amount) == -1)
		return -1;	/* validate already refused it */
	store_format_now(now, sizeof(now));

	/* The client's amount object keeps its own spelling (12.50 stays). */
	msg = json_object_new_object();
	json_object_object_add(msg, "orderId",
	    json_object_new_string(order_id));
	json_object_object_add(msg, "userId", json_object_new_string(user_id));
	json_object_object_add(msg, "amount", json_object_get(amount_obj));
	json_object_object_add(msg, "action",
	    json_object_new_string("PROCESS_PAYMENT"));

	pthread_mutex_lock(&s->lock);
	rc = process_tx(s, order_id, user_id, amount, now, msg, err,
	    sizeof(err));
	pthread_mutex_unlock(&s->lock);
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
 * mark it REFUNDED and write the "refund.notification" outbox row carrying `msg`
 * (borrowed).  Caller holds the lock.  Returns as store_step(); on
 * SQLITE_OK, *result says what happened and *amount holds the order's
 * amount when it was found.
 */
static int
refund_tx(struct store *s, const char *order_id, double refund,
    const char *now, struct json_object *msg, enum refund_result *result,
    double *amount, char *err, size_t errlen)
{
	sqlite3_stmt *sel = s->stmt[SELECT_ORDER], *upd = s->stmt[REFUND_ORDER];
	const unsigned char *status;
	int rc, refunded = 0;

	*result = REFUND_NOT_FOUND;
	if ((rc = store_begin(s, err, errlen)) != SQLITE_OK)
		return rc;
	sqlite3_bind_text(sel, 1, order_id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(sel);
	if (rc == SQLITE_ROW) {
		*amount = sqlite3_column_double(sel, 0);
		status = sqlite3_column_text(sel, 1);
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
		snprintf(err, errlen, "%s", sqlite3_errmsg(s->db));
	}
	sqlite3_reset(sel);
	sqlite3_clear_bindings(sel);
	if (rc != SQLITE_OK) {
		store_rollback(s);
		return rc;
	}
	if (*result != REFUND_DONE)
		return store_exec(s, "ROLLBACK", err, errlen);

	sqlite3_bind_text(upd, 1, order_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_double(upd, 2, refund);
	sqlite3_bind_text(upd, 3, now, -1, SQLITE_TRANSIENT);
	return store_write(s, upd, "refund.notification", msg, now, err, errlen);
}

/*
 * REFUND_ORDER: mark the order REFUNDED and queue the notification;
 * 200 {orderId, status}, or 404 order_not_found, 422 refund_exceeds_amount,
 * 409 already_refunded.
 */
static int
refund_execute(cmdhost_ctx *ctx)
{
	struct store *s = cmdhost_state(ctx);
	struct json_object *p = cmdhost_payload(ctx);
	const char *order_id = payload_string(p, "orderId");
	struct json_object *refund_obj, *msg;
	enum refund_result result;
	char now[STORE_TIME_LEN], err[512];
	double refund, amount = 0;
	int rc;

	if (order_id == NULL ||
	    !json_object_object_get_ex(p, "refundAmount", &refund_obj) ||
	    payload_number(p, "refundAmount", &refund) == -1)
		return -1;	/* validate already refused it */
	store_format_now(now, sizeof(now));

	msg = json_object_new_object();
	json_object_object_add(msg, "orderId",
	    json_object_new_string(order_id));
	json_object_object_add(msg, "type",
	    json_object_new_string("ORDER_REFUNDED"));
	json_object_object_add(msg, "refundAmount",
	    json_object_get(refund_obj));

	pthread_mutex_lock(&s->lock);
	rc = refund_tx(s, order_id, refund, now, msg, &result, &amount, err,
	    sizeof(err));
	pthread_mutex_unlock(&s->lock);
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
 * Registration: open the database named by [plugin:orders] database as the
 * generation's state (the daemon frees it), add the commands.
 */
static int
orders_register(cmdhost_registrar *reg)
{
	struct store *s;
	size_t i;

	if ((s = store_attach(reg, ORDERS_DEFAULT_DB, orders_schema,
	    orders_sql, ORDERS_NSTMT)) == NULL)
		return -1;
	for (i = 0; i < sizeof(orders_commands) / sizeof(orders_commands[0]);
	    i++)
		if (cmdhost_add_command(reg, &orders_commands[i]) != 0)
			return -1;
	cmdhost_reg_log(reg, CMDHOST_LOG_INFO, "database %s", s->path);
	return 0;
}

CMDHOST_PLUGIN("orders", "1.0.0", orders_register);
