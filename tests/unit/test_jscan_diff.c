/*
 * test_jscan_diff.c - the differential fuzzer's kept corpus replayed in
 * make test without libFuzzer: every file in tests/fuzz/corpus/jscan_diff/
 * is one request line that the strict scanner (envelope_scan) and json-c
 * (request_parse) must read alike, with the documented exceptions going
 * the documented way (tests/fuzz/jscan_diff.h holds the comparison, the
 * same code the fuzzer runs).  A disagreement on a kept input fails here.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/jscan_diff.h"

#define CORPUS CMDHOST_SOURCE_DIR "/tests/fuzz/corpus/jscan_diff"

/* The whole file at path: new (free), its size in *n; NULL on error. */
static char *
slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	long len;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)len + 1)) !=
	    NULL) {
		*n = fread(p, 1, (size_t)len, f);
		if (*n != (size_t)len) {
			free(p);
			p = NULL;
		}
	}
	fclose(f);
	return p;
}

Test(jscan_diff, corpus_agrees)
{
	struct json_tokener *tok1 = request_tokener_new();
	struct json_tokener *tok2 = request_tokener_new();
	struct jdiff_stats st;
	struct dirent *de;
	DIR *d = opendir(CORPUS);
	unsigned files = 0;

	cr_assert(tok1 != NULL && tok2 != NULL);
	cr_assert_not_null(d, "%s", CORPUS);
	memset(&st, 0, sizeof(st));
	while ((de = readdir(d)) != NULL) {
		char path[4096], why[1024];
		size_t n = 0;
		char *line;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", CORPUS, de->d_name);
		cr_assert_not_null(line = slurp(path, &n), "%s", path);
		/* As the fuzzer does: each input on clean tokeners (json-c
		 * keeps a pending high surrogate across a reset). */
		tok1->high_surrogate = tok2->high_surrogate = 0;
		cr_expect_eq(jdiff_line(tok1, tok2, line, n, &st, why,
		    sizeof(why)), 0, "%s: %s", de->d_name, why);
		free(line);
		files++;
	}
	closedir(d);
	json_tokener_free(tok1);
	json_tokener_free(tok2);
	cr_log_info("jscan_diff: %u files: %lu accepted, %lu refused alike; "
	    "exceptions: %lu integer, %lu non-finite, %lu depth, %lu lenient, "
	    "%lu NUL in a name", files, st.accepted, st.refused,
	    st.exc_integer, st.exc_nonfinite, st.exc_depth, st.exc_lenient,
	    st.exc_key_nul);
	/* The kept corpus covers both verdicts and every exception. */
	cr_assert_geq(files, 24);
	cr_assert_gt(st.accepted, 0);
	cr_assert_gt(st.refused, 0);
	cr_assert_gt(st.exc_integer, 0);
	cr_assert_gt(st.exc_nonfinite, 0);
	cr_assert_gt(st.exc_depth, 0);
	cr_assert_gt(st.exc_lenient, 0);
	cr_assert_gt(st.exc_key_nul, 0);
}

/* The comparison itself catches a wrong reader: members that differ. */
Test(jscan_diff, detects_a_difference)
{
	struct jdiff_stats st;
	char why[1024];

	memset(&st, 0, sizeof(st));
	cr_assert_eq(jdiff_lenient_at("1.", 2, 2), 1);
	cr_assert_eq(jdiff_lenient_at("-01", 3, 2), 1);
	cr_assert_eq(jdiff_lenient_at("-.5", 3, 1), 1);
	cr_assert_eq(jdiff_lenient_at("10", 2, 1), 0);
	cr_assert_eq(jdiff_lenient_at("1e01", 4, 3), 0);
	cr_assert_eq(jdiff_nonfinite_replaced("{\"x\":NaN,\"x\":1}", 15), 1);
	cr_assert_eq(jdiff_nonfinite_replaced("{\"x\":NaN,\"y\":1}", 15), 0);
	cr_assert_eq(jdiff_nonfinite_replaced("{\"\\u0000\":1e400,\"\":1}",
	    22), 1);
	cr_assert_eq(jdiff_fail(why, sizeof(why), "x %d", 1), -1);
	cr_assert_str_eq(why, "x 1");
}
