/*
 * fuzz_jscan_diff.c - libFuzzer harness: each input is one request line,
 * read by envelope_scan() (the strict scanner, jscan.c) and by
 * request_parse() (json-c, strict), and abort() when they disagree on
 * accept/refuse or on a member read, beyond the documented exceptions
 * (jscan_diff.h says which and how).  The corpus it keeps is replayed in
 * make test by tests/unit/test_jscan_diff.c.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "jscan_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fuzzer entry point: data is borrowed; the tokeners are kept for the
 * whole run, everything else is freed here. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct json_tokener *tok1, *tok2;
	static struct jdiff_stats st;
	char why[1024];

	if (tok1 == NULL && ((tok1 = request_tokener_new()) == NULL ||
	    (tok2 = request_tokener_new()) == NULL))
		abort();
	/* Lines the daemon reads are at most max_line_bytes; past 64 KiB
	 * the fuzzer only spends its time copying. */
	if (size > 65536)
		return 0;
	/* json-c 0.16 keeps a high surrogate escape that a parse stopped
	 * after across json_tokener_reset(): the next "\\u0000" or other
	 * non-low escape on that tokener gets a U+FFFD in front (found by
	 * this harness; a daemon-side bug reported, not a scanner one).
	 * Each input starts clean so that findings replay alone. */
	tok1->high_surrogate = tok2->high_surrogate = 0;
	if (jdiff_line(tok1, tok2, (const char *)data, size, &st, why,
	    sizeof(why)) != 0) {
		fprintf(stderr, "jscan_diff: %s\nline: %.*s\n", why, (int)size,
		    (const char *)data);
		abort();
	}
	return 0;
}
