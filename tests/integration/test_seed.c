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

static void
teardown(void)
{
	daemon_free(d);
	d = NULL;
}

TestSuite(seed, .fini = teardown);

#define CHECK(cond, ...) do {                                             \
	if (!(cond)) {                                                    \
		daemon_dump_log(d);                                       \
		cr_assert_fail(__VA_ARGS__);                              \
	}                                                                 \
} while (0)

static const char *const seed_plugins[] = { "plugins/orders.so",
    "plugins/users.so", NULL };

static void
start(void)
{
	struct daemon_opts o = {
		.plugins = seed_plugins,
		.config = "[plugin:orders]\ndatabase = orders.db\n\n"
		    "[plugin:users]\ndatabase = users.db\n",
	};

	d = daemon_start(&o);
	cr_assert_not_null(d, "daemon did not start (its log is above)");
}

static void
stop_clean(void)
{
	int st = daemon_stop(d);

	CHECK(st == 0, "daemon exit status %d, want 0", st);
}

static json_object *
expect(int fd, const char *line, int status, const char *code)
{
	json_object *j = client_call(fd, line);

	CHECK(reply_status(j) == status, "%s\n -> %s\n want status %d", line,
	    reply_text(j), status);
	if (code != NULL)
		CHECK(reply_error_code(j) != NULL &&
		    strcmp(reply_error_code(j), code) == 0,
		    "%s\n -> %s\n want code %s", line, reply_text(j), code);
	return j;
}

static void
expect_body(int fd, const char *line, int status, const char *body)
{
	json_object *j = expect(fd, line, status, NULL);
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
	json_object *j = expect(fd, line, 400, "invalid_payload");

	CHECK(reply_error_message(j) != NULL &&
	    strstr(reply_error_message(j), field) != NULL,
	    "%s\n -> %s\n message does not name %s", line, reply_text(j),
	    field);
	json_object_put(j);
}

static int
connect_ok(void)
{
	int fd = client_connect(daemon_socket_path(d));

	CHECK(fd != -1, "connect %s failed", daemon_socket_path(d));
	return fd;
}

Test(seed, orders, .timeout = 60)
{
	static const char process[] = "{\"commandType\":\"PROCESS_ORDER\","
	    "\"payload\":{\"orderId\":\"o-1\",\"userId\":\"u-1\","
	    "\"amount\":12.5}}";
	char db[PATH_MAX];
	int fd;

	start();
	fd = connect_ok();
	expect_body(fd, process, 200,
	    "{\"orderId\":\"o-1\",\"status\":\"PROCESSING\"}");
	json_object_put(expect(fd, process, 409, NULL));
	json_object_put(expect(fd, "{\"commandType\":\"REFUND_ORDER\","
	    "\"payload\":{\"orderId\":\"o-1\",\"refundAmount\":100}}", 422,
	    "refund_exceeds_amount"));
	json_object_put(expect(fd, "{\"commandType\":\"REFUND_ORDER\","
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
	stop_clean();
}

Test(seed, users, .timeout = 60)
{
	json_object *j, *id;
	char line[512], db[PATH_MAX];
	int fd;

	start();
	fd = connect_ok();
	j = expect(fd, "{\"commandType\":\"user.create\",\"payload\":"
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
	json_object_put(expect(fd, "{\"commandType\":\"user.delete\","
	    "\"payload\":{\"user_id\":\"no-such-user\"}}", 404, NULL));

	/* The created user can be deleted, once. */
	json_object_put(expect(fd, line, 200, NULL));
	json_object_put(expect(fd, line, 404, NULL));
	close(fd);

	snprintf(db, sizeof(db), "%s/users.db", daemon_dir(d));
	CHECK(access(db, F_OK) == 0, "%s was not created", db);
	stop_clean();
}
