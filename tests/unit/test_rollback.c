/*
 * test_rollback.c - the window arithmetic of rollback.c (rollback_judge)
 * and its per-plugin policy: when a generation on probation fails, when
 * it has proven itself, and when the judgement still waits.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "rollback.h"

/* The defaults: 60 s, 20 calls, 10 %, 3 crashes. */
static const struct rollback_policy dflt = { 1, 60, 20, 10, 3 };

Test(rollback_judge, waits_for_min_calls_before_judging_the_share)
{
	char why[256];

	/* 19 calls, all failed: not judged yet. */
	cr_assert_eq(rollback_judge(&dflt, 1000, 19, 19, 0, why,
	    sizeof(why)), ROLLBACK_WATCH);
	/* The 20th call: 19 of 20 fail, far over 10 %. */
	cr_assert_eq(rollback_judge(&dflt, 1000, 20, 19, 0, why,
	    sizeof(why)), ROLLBACK_NOW);
	cr_assert(strstr(why, "5xx share 95% (19 of 20 calls)") != NULL,
	    "%s", why);
}

Test(rollback_judge, share_must_be_over_the_threshold_not_at_it)
{
	/* 2 of 20 is exactly 10 %: not over. */
	cr_assert_eq(rollback_judge(&dflt, 1000, 20, 2, 0, NULL, 0),
	    ROLLBACK_WATCH);
	/* 3 of 20 is 15 %. */
	cr_assert_eq(rollback_judge(&dflt, 1000, 20, 3, 0, NULL, 0),
	    ROLLBACK_NOW);
	/* 1 in 5 fails (the integration test's bad version): 20 %. */
	cr_assert_eq(rollback_judge(&dflt, 1000, 25, 5, 0, NULL, 0),
	    ROLLBACK_NOW);
	/* Large counts do not overflow the comparison. */
	cr_assert_eq(rollback_judge(&dflt, 1000, 4000000000ULL,
	    400000000ULL, 0, NULL, 0), ROLLBACK_WATCH);
	cr_assert_eq(rollback_judge(&dflt, 1000, 4000000000ULL,
	    400000001ULL, 0, NULL, 0), ROLLBACK_NOW);
}

Test(rollback_judge, proven_needs_both_the_seconds_and_the_calls)
{
	/* The window passed, but with too few calls to say. */
	cr_assert_eq(rollback_judge(&dflt, 61000, 5, 0, 0, NULL, 0),
	    ROLLBACK_WATCH);
	/* Enough calls, window not over. */
	cr_assert_eq(rollback_judge(&dflt, 59999, 500, 0, 0, NULL, 0),
	    ROLLBACK_WATCH);
	/* Both, and a share under the threshold. */
	cr_assert_eq(rollback_judge(&dflt, 60000, 20, 2, 0, NULL, 0),
	    ROLLBACK_PROVEN);
	/* Both, but failing: failing wins. */
	cr_assert_eq(rollback_judge(&dflt, 60000, 20, 3, 0, NULL, 0),
	    ROLLBACK_NOW);
}

Test(rollback_judge, worker_crashes_need_no_min_calls)
{
	char why[256];

	cr_assert_eq(rollback_judge(&dflt, 10, 0, 0, 2, NULL, 0),
	    ROLLBACK_WATCH);
	cr_assert_eq(rollback_judge(&dflt, 10, 0, 0, 3, why, sizeof(why)),
	    ROLLBACK_NOW);
	cr_assert(strstr(why, "3 worker crashes") != NULL, "%s", why);
}

Test(rollback_judge, zero_crashes_and_100_percent_turn_them_off)
{
	struct rollback_policy p = { 1, 1, 1, 100, 0 };

	cr_assert_eq(rollback_judge(&p, 0, 10, 10, 1000, NULL, 0),
	    ROLLBACK_WATCH);
	cr_assert_eq(rollback_judge(&p, 1000, 10, 10, 1000, NULL, 0),
	    ROLLBACK_PROVEN);
}

Test(rollback_judge, min_calls_zero_counts_as_one)
{
	struct rollback_policy p = { 1, 0, 0, 10, 3 };

	/* No call yet: nothing to judge, not proven by time alone. */
	cr_assert_eq(rollback_judge(&p, 5000, 0, 0, 0, NULL, 0),
	    ROLLBACK_WATCH);
	cr_assert_eq(rollback_judge(&p, 0, 1, 0, 0, NULL, 0),
	    ROLLBACK_PROVEN);
	cr_assert_eq(rollback_judge(&p, 0, 1, 1, 0, NULL, 0),
	    ROLLBACK_NOW);
}

/* [plugin:NAME] keys override [host]; a bad value keeps [host]'s. */
Test(rollback_policy, plugin_section_overrides_host)
{
	struct config cfg;
	struct rollback_policy p;
	char err[256], bad[256];

	cr_assert_eq(config_init(&cfg), 0);
	cr_assert_eq(config_set_host(&cfg, "rollback_window_s", "7", err,
	    sizeof(err)), 0, "%s", err);
	cfg.plugin_kvs = calloc(3, sizeof(*cfg.plugin_kvs));
	cfg.plugin_kvs[0] = (struct plugin_kv){ strdup("flaky"),
	    strdup("rollback_min_calls"), strdup("5") };
	cfg.plugin_kvs[1] = (struct plugin_kv){ strdup("flaky"),
	    strdup("rollback_5xx_percent"), strdup("200") };
	cfg.plugin_kvs[2] = (struct plugin_kv){ strdup("quiet"),
	    strdup("rollback"), strdup("off") };
	cfg.n_plugin_kvs = 3;

	rollback_policy_of(&cfg, "flaky", &p, bad, sizeof(bad));
	cr_assert_eq(p.on, 1);
	cr_assert_eq(p.window_s, 7);
	cr_assert_eq(p.min_calls, 5);
	cr_assert_eq(p.pct_5xx, 10, "200 %% is out of range: [host]'s");
	cr_assert(strstr(bad, "rollback_5xx_percent") != NULL, "%s", bad);

	rollback_policy_of(&cfg, "quiet", &p, bad, sizeof(bad));
	cr_assert_eq(p.on, 0);
	cr_assert_eq(p.min_calls, 20);
	cr_assert_eq(bad[0], '\0', "%s", bad);
	config_fini(&cfg);
}
