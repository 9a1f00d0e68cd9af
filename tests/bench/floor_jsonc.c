/*
 * floor_jsonc.c - the json-c floor of the benchmark: the shared floor
 * server (floor.h) that parses every request line with json-c, builds
 * {"id":..,"status":200,"body":<payload>} and serializes it.  It is what a
 * plain single-threaded json-c server costs, with no registry, validation,
 * executor or metrics.
 */
#include "floor.h"

#include <json-c/json.h>

static const char bad_reply[] = "{\"id\":null,\"status\":400,\"error\":"
    "{\"code\":\"bad_request\",\"message\":\"not a JSON object\"}}\n";

/* One tokener for every line: the server has one thread. */
static json_tokener *tok;

/* Parse one request line (without its '\n') and append its reply. */
static void
answer(struct floor_conn *c, const char *line, size_t len)
{
	json_object *req, *reply, *id = NULL, *payload = NULL;
	const char *text;
	size_t tlen;

	json_tokener_reset(tok);
	req = json_tokener_parse_ex(tok, line, (int)len);
	if (req == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		floor_append(c, bad_reply, sizeof(bad_reply) - 1);
		return;
	}
	json_object_object_get_ex(req, "id", &id);
	json_object_object_get_ex(req, "payload", &payload);
	reply = json_object_new_object();
	/* The reply takes its own references; req keeps its ones. */
	json_object_object_add(reply, "id", json_object_get(id));
	json_object_object_add(reply, "status", json_object_new_int(200));
	json_object_object_add(reply, "body", payload != NULL ?
	    json_object_get(payload) : json_object_new_object());
	text = json_object_to_json_string_length(reply,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &tlen);
	floor_reserve(c, tlen + 1);
	floor_append(c, text, tlen);
	floor_append(c, "\n", 1);
	json_object_put(reply);
	json_object_put(req);
}

int
main(int argc, char **argv)
{
	int rc;

	if ((tok = json_tokener_new()) == NULL)
		floor_die("json_tokener_new");
	rc = floor_run(argc, argv, answer);
	json_tokener_free(tok);
	return rc;
}
