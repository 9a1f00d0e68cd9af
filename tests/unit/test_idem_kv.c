/*
 * test_idem_kv.c - unit tests of idem_kv.c, the idempotency records kept
 * in the shared JetStream bucket, over a fake module table that keeps
 * the bucket in memory (revisions, delete markers, compare-and-set):
 * the key digest, the value layout, and every verdict and finish of the
 * backend, including an expired record taken over and the late result
 * of its first owner, and a bucket that cannot be reached.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/nats_api.h"
#include "core/request.h"
#include "idem_kv.h"

/* ------------------------------------------------------------ the fake */

#define SLOTS 8

/* One key of the fake bucket; deleted: its last op was a delete. */
struct slot {
	char key[64];
	char *val;
	size_t len;
	uint64_t rev;
	int deleted;
};

static struct slot slots[SLOTS];
static uint64_t last_rev;
static int down;              /* every operation answers UNAVAILABLE */
static int creates, updates, deletes;

static struct slot *
find(const char *key, int make)
{
	for (int i = 0; i < SLOTS; i++)
		if (strcmp(slots[i].key, key) == 0)
			return &slots[i];
	for (int i = 0; make && i < SLOTS; i++)
		if (slots[i].key[0] == '\0') {
			snprintf(slots[i].key, sizeof(slots[i].key), "%s", key);
			slots[i].deleted = 1;
			return &slots[i];
		}
	return NULL;
}

static void
put(struct slot *s, const void *val, size_t len, uint64_t *rev)
{
	free(s->val);
	s->val = malloc(len + 1);
	cr_assert_not_null(s->val);
	memcpy(s->val, val, len);
	s->val[len] = '\0';
	s->len = len;
	s->deleted = 0;
	s->rev = ++last_rev;
	if (rev != NULL)
		*rev = s->rev;
}

static int
fake_begin(void *bridge, const char *key, const void *val, size_t len,
    uint64_t *rev, void **old, size_t *oldlen, char *err, size_t errlen)
{
	struct slot *s = find(key, 1);

	(void)bridge;
	*old = NULL;
	if (down) {
		snprintf(err, errlen, "down");
		return NATS_KV_UNAVAILABLE;
	}
	cr_assert_eq(strlen(key), REQUEST_KEY_DIGEST_LEN);
	creates++;
	if (s->deleted) {
		put(s, val, len, rev);
		return NATS_KV_OK;
	}
	*old = malloc(s->len + 1);
	memcpy(*old, s->val, s->len + 1);
	*oldlen = s->len;
	*rev = s->rev;
	return NATS_KV_EXISTS;
}

static int
fake_update(void *bridge, const char *key, const void *val, size_t len,
    uint64_t last, uint64_t *rev, char *err, size_t errlen)
{
	struct slot *s = find(key, 0);

	(void)bridge;
	if (down) {
		snprintf(err, errlen, "down");
		return NATS_KV_UNAVAILABLE;
	}
	updates++;
	if (s == NULL || s->rev != last)
		return NATS_KV_CONFLICT;
	put(s, val, len, rev);
	return NATS_KV_OK;
}

static int
fake_delete(void *bridge, const char *key, uint64_t last, char *err,
    size_t errlen)
{
	struct slot *s = find(key, 0);

	(void)bridge;
	if (down) {
		snprintf(err, errlen, "down");
		return NATS_KV_UNAVAILABLE;
	}
	deletes++;
	if (s == NULL || s->rev != last)
		return NATS_KV_CONFLICT;
	s->deleted = 1;
	s->rev = ++last_rev;
	return NATS_KV_OK;
}

static const struct nats_module fake = {
	.size = sizeof(struct nats_module),
	.version = NATS_API_VERSION,
	.kv_begin = fake_begin,
	.kv_update = fake_update,
	.kv_delete = fake_delete,
};

static struct idem_kv *kv;
static const struct idem_backend *be;
static int bridge_token;
static int durable_calls;

static void
on_durable(void *arg)
{
	(void)arg;
	durable_calls++;
}

static void
setup(void)
{
	memset(slots, 0, sizeof(slots));
	last_rev = 0;
	down = creates = updates = deletes = durable_calls = 0;
	kv = idem_kv_new(&fake, "TEST", 60000);
	cr_assert_not_null(kv);
	idem_kv_attach(kv, &bridge_token);
	be = idem_kv_backend(kv);
}

static void
teardown(void)
{
	idem_kv_detach(kv);
	idem_kv_free(kv);
	for (int i = 0; i < SLOTS; i++)
		free(slots[i].val);
}

static const uint64_t FP[2] = { 0x0123456789abcdefULL, 42 };
static const uint64_t OTHER[2] = { 7, 42 };

/* begin "k" of cmd with fp, deadline in a minute. */
static enum idem_verdict
begin(const uint64_t fp[2], void **rec, struct idem_result *res)
{
	return be->begin(be->store, "nats", "cmd", "k", 1, fp,
	    clock_wall_ms() + 60000, rec, res);
}

/* The one slot in use. */
static struct slot *
the_slot(void)
{
	cr_assert_neq(slots[0].key[0], '\0');
	return &slots[0];
}

/* ------------------------------------------------------------ values */

TestSuite(idem_kv_value);

Test(idem_kv_value, digest_is_32_hex_and_separates_its_parts)
{
	char a[REQUEST_KEY_DIGEST_LEN + 1], b[REQUEST_KEY_DIGEST_LEN + 1];

	request_key_digest("nats", "cmd", "k\0\n", 3, a);
	cr_assert_eq(strlen(a), 32);
	cr_assert_eq(strspn(a, "0123456789abcdef"), 32, "%s", a);
	request_key_digest("nats", "cmd", "k\0\n", 3, b);
	cr_assert_str_eq(a, b);
	request_key_digest("nats", "cmd", "k\0", 2, b);
	cr_assert_str_neq(a, b);
	request_key_digest("uid:0", "cmd", "k\0\n", 3, b);
	cr_assert_str_neq(a, b);
	/* "ab"+"c" is not "a"+"bc". */
	request_key_digest("s", "ab", "c", 1, a);
	request_key_digest("s", "a", "bc", 2, b);
	cr_assert_str_neq(a, b);
}

Test(idem_kv_value, encode_decode_round_trip)
{
	static const char text[] = "{\"a\":\"x\\ny\"}\n\x01";
	uint64_t fp[2];
	int64_t exp;
	const char *t;
	size_t len, tlen;
	int done, status;
	char *v = idem_kv_encode(1, FP, 1700000000123LL, 201, text,
	    sizeof(text) - 1, &len);

	cr_assert_not_null(v);
	cr_assert_eq(strncmp(v, "cmdhost-idem 1 D 0123456789abcdef"
	    "000000000000002a 1700000000123 201\n", len - (sizeof(text) - 1)),
	    0, "%s", v);
	cr_assert_eq(idem_kv_decode(v, len, &done, fp, &exp, &status, &t,
	    &tlen), 0);
	cr_assert_eq(done, 1);
	cr_assert_eq(fp[0], FP[0]);
	cr_assert_eq(fp[1], FP[1]);
	cr_assert_eq(exp, 1700000000123LL);
	cr_assert_eq(status, 201);
	cr_assert_eq(tlen, sizeof(text) - 1);
	cr_assert_eq(memcmp(t, text, tlen), 0);
	free(v);

	v = idem_kv_encode(0, FP, 5, 0, NULL, 0, &len);
	cr_assert_eq(idem_kv_decode(v, len, &done, fp, &exp, &status, &t,
	    &tlen), 0);
	cr_assert_eq(done, 0);
	cr_assert_eq(tlen, 0);
	free(v);
}

Test(idem_kv_value, decode_refuses_what_it_did_not_write)
{
	static const char *const bad[] = {
		"",
		"cmdhost-idem 1 D 0123456789abcdef000000000000002a 5 200",
		"cmdhost-idem 2 D 0123456789abcdef000000000000002a 5 200\n",
		"cmdhost-idem 1 X 0123456789abcdef000000000000002a 5 200\n",
		"cmdhost-idem 1 D 0123456789ABCDEF000000000000002a 5 200\n",
		"cmdhost-idem 1 D 0123456789abcdef00000000000002a 5 200\n",
		"cmdhost-idem 1 D 0123456789abcdef000000000000002a x 200\n",
		"cmdhost-idem 1 D 0123456789abcdef000000000000002a 5 2000\n",
		"cmdhost-idem 1 D 0123456789abcdef000000000000002a 5\n200\n",
		"{\"state\":\"done\"}",
	};
	uint64_t fp[2];
	int64_t exp;
	const char *t;
	size_t tlen;
	int done, status;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(idem_kv_decode(bad[i], strlen(bad[i]), &done, fp,
		    &exp, &status, &t, &tlen), -1, "accepted: %s", bad[i]);
}

/* ------------------------------------------------------------ backend */

TestSuite(idem_kv, .init = setup, .fini = teardown);

Test(idem_kv, run_busy_mismatch_replay)
{
	struct idem_result res;
	void *rec, *rec2;

	cr_assert_eq(begin(FP, &rec, &res), IDEM_RUN);
	cr_assert_not_null(rec);
	cr_assert_eq(idem_kv_pending(kv), 1);
	cr_assert_eq(begin(FP, &rec2, &res), IDEM_BUSY);
	cr_assert_null(rec2);
	cr_assert_eq(begin(OTHER, &rec2, &res), IDEM_MISMATCH);
	be->finish(be->store, rec, 200, "{\"ok\":1}", 8, on_durable, NULL);
	cr_assert_eq(durable_calls, 1);
	cr_assert_eq(idem_kv_pending(kv), 0);
	cr_assert_eq(begin(FP, &rec2, &res), IDEM_REPLAY);
	cr_assert_eq(res.status, 200);
	cr_assert_eq(res.len, 8);
	cr_assert_str_eq(res.text, "{\"ok\":1}");
	free(res.text);
	cr_assert_eq(begin(OTHER, &rec2, &res), IDEM_MISMATCH);
	cr_assert_eq(the_slot()->deleted, 0);
}

Test(idem_kv, a_result_not_kept_deletes_the_record)
{
	struct idem_result res;
	void *rec;

	cr_assert_eq(begin(FP, &rec, &res), IDEM_RUN);
	be->finish(be->store, rec, 503, NULL, 0, on_durable, NULL);
	cr_assert_eq(durable_calls, 1);
	cr_assert_eq(the_slot()->deleted, 1);
	/* A retry runs, over the delete marker. */
	cr_assert_eq(begin(FP, &rec, &res), IDEM_RUN);
	be->finish(be->store, rec, 500, NULL, 0, NULL, NULL);
	cr_assert_eq(deletes, 2);
	/* 4xx are kept, as in the local store. */
	cr_assert_eq(begin(FP, &rec, &res), IDEM_RUN);
	be->finish(be->store, rec, 404, "{\"code\":\"x\"}", 12, NULL, NULL);
	cr_assert_eq(begin(FP, &rec, &res), IDEM_REPLAY);
	cr_assert_eq(res.status, 404);
	free(res.text);
}

/* Time passes for the record in the slot: its expiry is now past, at
 * the same revision (the owner that made it still holds that one). */
static void
expire_in_place(struct slot *s)
{
	uint64_t rev = s->rev;
	size_t len;
	char *v = idem_kv_encode(0, FP, clock_wall_ms() - 1, 0, NULL, 0,
	    &len);

	put(s, v, len, NULL);
	s->rev = rev;
	last_rev--;
	free(v);
}

Test(idem_kv, expired_record_is_taken_over_and_the_late_result_dropped)
{
	struct idem_result res;
	void *first, *second;

	cr_assert_eq(begin(FP, &first, &res), IDEM_RUN);
	/* Its call overran its deadline (or its daemon died). */
	expire_in_place(the_slot());
	cr_assert_eq(begin(OTHER, &second, &res), IDEM_RUN,
	    "expired: taken over, whatever its fingerprint");
	cr_assert_eq(idem_kv_pending(kv), 2);
	/* The first call's late result finds the revision moved: dropped,
	 * and the new owner's record is untouched. */
	be->finish(be->store, first, 200, "{}", 2, on_durable, NULL);
	cr_assert_eq(durable_calls, 1);
	cr_assert_eq(begin(OTHER, &first, &res), IDEM_BUSY);
	be->finish(be->store, second, 201, "2", 1, NULL, NULL);
	cr_assert_eq(begin(OTHER, &first, &res), IDEM_REPLAY);
	cr_assert_eq(res.status, 201);
	free(res.text);
	cr_assert_eq(idem_kv_pending(kv), 0);
}

Test(idem_kv, late_failure_of_a_taken_over_record_deletes_nothing)
{
	struct idem_result res;
	void *first, *second;

	cr_assert_eq(begin(FP, &first, &res), IDEM_RUN);
	expire_in_place(the_slot());
	cr_assert_eq(begin(FP, &second, &res), IDEM_RUN);
	be->finish(be->store, first, 504, NULL, 0, NULL, NULL);
	cr_assert_eq(the_slot()->deleted, 0, "the new owner's record went");
	be->finish(be->store, second, 200, "1", 1, NULL, NULL);
	cr_assert_eq(begin(FP, &first, &res), IDEM_REPLAY);
	free(res.text);
}

Test(idem_kv, unavailable_bucket_refuses_and_keeps_nothing)
{
	struct idem_result res;
	void *rec;

	down = 1;
	cr_assert_eq(begin(FP, &rec, &res), IDEM_UNAVAILABLE);
	cr_assert_null(rec);
	cr_assert_eq(idem_kv_pending(kv), 0);
	/* Back: it runs; down again before its result: durable still runs
	 * (the reply is not held forever), the record stays in progress. */
	down = 0;
	cr_assert_eq(begin(FP, &rec, &res), IDEM_RUN);
	down = 1;
	be->finish(be->store, rec, 200, "{}", 2, on_durable, NULL);
	cr_assert_eq(durable_calls, 1);
	cr_assert_eq(idem_kv_pending(kv), 0);
	down = 0;
	cr_assert_eq(begin(FP, &rec, &res), IDEM_BUSY);
}

Test(idem_kv, a_record_it_cannot_read_is_left_alone)
{
	struct idem_result res;
	void *rec;

	cr_assert_eq(begin(FP, &rec, &res), IDEM_RUN);
	be->finish(be->store, rec, 200, "{}", 2, NULL, NULL);
	/* Maybe a newer daemon's layout: refused, not overwritten. */
	put(the_slot(), "cmdhost-idem 2 ...", 18, NULL);
	cr_assert_eq(begin(FP, &rec, &res), IDEM_UNAVAILABLE);
	cr_assert_str_eq(the_slot()->val, "cmdhost-idem 2 ...");
}

Test(idem_kv, detached_answers_unavailable_and_finish_still_releases)
{
	struct idem_result res;
	void *rec, *none;

	cr_assert_eq(begin(FP, &rec, &res), IDEM_RUN);
	idem_kv_detach(kv);
	cr_assert_eq(begin(FP, &none, &res), IDEM_UNAVAILABLE);
	cr_assert_null(none);
	be->finish(be->store, rec, 200, "{}", 2, on_durable, NULL);
	cr_assert_eq(durable_calls, 1);
	cr_assert_eq(updates, 0);
	cr_assert_eq(idem_kv_pending(kv), 0);
}
