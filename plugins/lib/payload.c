/*
 * payload.c - reading members of a command's JSON payload, for the example
 * plugins.  It does not validate or answer: that is the plugin's job.
 */
#include "payload.h"

#include <string.h>

const char *
payload_string(struct json_object *payload, const char *key)
{
	struct json_object *v;
	const char *s;

	if (!json_object_object_get_ex(payload, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return NULL;
	return s;
}

int
payload_number(struct json_object *payload, const char *key, double *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(payload, key, &v) ||
	    !(json_object_is_type(v, json_type_double) ||
	    json_object_is_type(v, json_type_int)))
		return -1;
	*out = json_object_get_double(v);
	return 0;
}
