/*
 * test_seed.c - the seed's own events, sent verbatim in its
 * {"commandType", "payload"} shape, against the shipped orders and users
 * plugins backed by SQLite files in the daemon's temp dir.
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct daemon *d;

TestSuite(seed, .fini = check_free);

static const char *const seed_plugins[] = { "plugins/orders.so",
    "plugins/users.so", NULL };

static void
start(void)
{
	d = check_start_with(seed_plugins,
	    "[plugin:orders]\ndatabase = orders.db\n\n"
	    "[plugin:users]\ndatabase = users.db\n");
}

static void
expect_body(int fd, const char *line, int status, const char *body)
{
	json_object *j = check_call(fd, line, status, NULL);
	json_object *want = json_tokener_parse(body);

	cr_assert_not_null(want);
	CHECK(json_object_equal(reply_body(j), want), "%s\n -> %s\n want "
	    "body %s", line, reply_text(j), body);
	json_object_put(want);
	json_object_put(j);
}

static void
expect_names(int fd, const char *line, const char *field)
{
	json_object *j = check_call(fd, line, 400, "invalid_payload");

	CHECK(reply_error_message(j) != NULL &&
	    strstr(reply_error_message(j), field) != NULL,
	    "%s\n -> %s\n message does not name %s", line, reply_text(j),
	    field);
	json_object_put(j);
}

Test(seed, orders, .timeout = 60)
{
	static const char process[] = "{\"commandType\":\"PROCESS_ORDER\","
	    "\"payload\":{\"orderId\":\"o-1\",\"userId\":\"u-1\","
	    "\"amount\":12.5}}";
	char db[PATH_MAX];
	int fd;

	start();
	fd = check_connect();
	expect_body(fd, process, 200,
	    "{\"orderId\":\"o-1\",\"status\":\"PROCESSING\"}");
	json_object_put(check_call(fd, process, 409, NULL));
	json_object_put(check_call(fd, "{\"commandType\":\"REFUND_ORDER\","
	    "\"payload\":{\"orderId\":\"o-1\",\"refundAmount\":100}}", 422,
	    "refund_exceeds_amount"));
	json_object_put(check_call(fd, "{\"commandType\":\"REFUND_ORDER\","
	    "\"payload\":{\"orderId\":\"o-404\",\"refundAmount\":1}}", 404,
	    "order_not_found"));
	expect_body(fd, "{\"commandType\":\"REFUND_ORDER\",\"payload\":"
	    "{\"orderId\":\"o-1\",\"refundAmount\":12.5}}", 200,
	    "{\"orderId\":\"o-1\",\"status\":\"REFUNDED\"}");
	expect_names(fd, "{\"commandType\":\"PROCESS_ORDER\",\"payload\":"
	    "{\"orderId\":\"o-2\",\"userId\":\"u-1\"}}", "amount");
	close(fd);

	/* The relative database path is relative to the config's dir. */
	snprintf(db, sizeof(db), "%s/orders.db", daemon_dir(d));
	CHECK(access(db, F_OK) == 0, "%s was not created", db);
	check_stop_clean();
}

Test(seed, users, .timeout = 60)
{
	json_object *j, *id;
	char line[512], db[PATH_MAX];
	int fd;

	start();
	fd = check_connect();
	j = check_call(fd, "{\"commandType\":\"user.create\",\"payload\":"
	    "{\"name\":\"Ada\",\"email\":\"ada@example.com\"}}", 201, NULL);
	id = json_path(j, "body/userId");
	CHECK(json_object_is_type(id, json_type_string) &&
	    json_object_get_string_len(id) > 0, "no userId: %s",
	    reply_text(j));
	snprintf(line, sizeof(line), "{\"commandType\":\"user.delete\","
	    "\"payload\":{\"user_id\":\"%s\"}}", json_object_get_string(id));
	json_object_put(j);

	expect_names(fd, "{\"commandType\":\"user.create\",\"payload\":"
	    "{\"name\":\"Bob\"}}", "email");
	json_object_put(check_call(fd, "{\"commandType\":\"user.delete\","
	    "\"payload\":{\"user_id\":\"no-such-user\"}}", 404, NULL));

	/* The created user can be deleted, once. */
	json_object_put(check_call(fd, line, 200, NULL));
	json_object_put(check_call(fd, line, 404, NULL));
	close(fd);

	snprintf(db, sizeof(db), "%s/users.db", daemon_dir(d));
	CHECK(access(db, F_OK) == 0, "%s was not created", db);
	check_stop_clean();
}
