/*
 * payments.c - the seed saga's payment step: payment.charge charges an
 * order (declined, 402 "payment_declined", when the payload says
 * "decline": true or the amount is over [plugin:payments] limit), and
 * payment.refund gives a charge back.  Charges are kept in memory only:
 * an example for workflows, not a ledger.
 */
#include <cmdhost/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cmdhost_field charge_fields[] = {
	{ "orderId", CMDHOST_STRING, 1 },
	{ "amount", CMDHOST_NUMBER, 1 },
	{ 0 }
};

static const cmdhost_field refund_fields[] = {
	{ "orderId", CMDHOST_STRING, 1 },
	{ 0 }
};

/* The state: the charge limit (owned), freed by fini. */
static void
payments_fini(void *state)
{
	free(state);
}

static int
charge_execute(cmdhost_ctx *ctx)
{
	json_object *p = cmdhost_payload(ctx), *v, *body;
	const double *limit = cmdhost_state(ctx);
	double amount = 0;

	if (json_object_object_get_ex(p, "amount", &v))
		amount = json_object_get_double(v);
	if ((json_object_object_get_ex(p, "decline", &v) &&
	    json_object_get_boolean(v)) || amount > *limit)
		return cmdhost_fail(ctx, 402, "payment_declined", "the charge "
		    "was declined");
	json_object_object_get_ex(p, "orderId", &v);
	body = json_object_new_object();
	json_object_object_add(body, "orderId", json_object_get(v));
	json_object_object_add(body, "charged", json_object_new_double(amount));
	json_object_object_add(body, "status", json_object_new_string(
	    "CHARGED"));
	return cmdhost_ok(ctx, body);
}

static int
refund_execute(cmdhost_ctx *ctx)
{
	json_object *p = cmdhost_payload(ctx), *v, *body;

	json_object_object_get_ex(p, "orderId", &v);
	body = json_object_new_object();
	json_object_object_add(body, "orderId", json_object_get(v));
	json_object_object_add(body, "status", json_object_new_string(
	    "REFUNDED"));
	return cmdhost_ok(ctx, body);
}

static const cmdhost_command commands[] = {
	{ .name = "payment.charge", .summary = "Charge an order (402 "
	  "payment_declined over the limit or with \"decline\": true)",
	  .fields = charge_fields, .execute = charge_execute },
	{ .name = "payment.refund", .summary = "Refund an order's charge",
	  .fields = refund_fields, .execute = refund_execute },
	{ 0 }
};

static int
payments_register(cmdhost_registrar *reg)
{
	const char *l = cmdhost_config(reg, "limit");
	double *limit = malloc(sizeof(*limit));

	if (limit == NULL) {
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	*limit = l != NULL ? strtod(l, NULL) : 1000.0;
	cmdhost_set_state(reg, limit, payments_fini);
	for (size_t i = 0; commands[i].name != NULL; i++)
		if (cmdhost_add_command(reg, &commands[i]) != 0)
			return -1;
	return 0;
}

CMDHOST_PLUGIN("payments", "1.0.0", payments_register);
