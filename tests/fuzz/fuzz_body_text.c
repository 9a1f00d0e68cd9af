/*
 * fuzz_body_text.c - libFuzzer harness for body_text.c: whatever text a
 * plugin replies, either it is refused with a reason, or what the daemon
 * prints is one strict JSON value without a raw control byte that reads
 * back as the same value, and a deep copy prints the same.  abort()
 * otherwise.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "body_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *v, *again;
	struct json_tokener *tok;
	const char *out;
	char err[256];

	err[0] = '\0';
	if (body_text_parse((const char *)data, size, 1 << 20, &v, err,
	    sizeof(err)) != 0) {
		if (err[0] == '\0')
			abort();
		return 0;
	}
	out = v == NULL ? "null" : json_object_to_json_string_ext(v,
	    JSON_C_TO_STRING_PLAIN);
	for (const char *s = out; *s; s++)
		if ((unsigned char)*s < 0x20)
			abort();
	tok = json_tokener_new_ex(BODY_TEXT_MAX_DEPTH);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	again = json_tokener_parse_ex(tok, out, (int)strlen(out) + 1);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_equal(v, again))
		abort();
	json_tokener_free(tok);
	json_object_put(again);
	/* A deep copy prints the same bytes. */
	if (v != NULL) {
		struct json_object *copy = NULL;

		if (json_object_deep_copy(v, &copy, NULL) != 0 ||
		    strcmp(json_object_to_json_string_ext(copy,
		    JSON_C_TO_STRING_PLAIN), out) != 0)
			abort();
		json_object_put(copy);
	}
	json_object_put(v);
	return 0;
}
