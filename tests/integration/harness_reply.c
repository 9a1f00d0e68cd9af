/*
 * harness_reply.c - read a daemon's JSON reply: its status, error code and
 * message, body and id, a member by path, and the reply as text for an
 * assert message.  Nothing here asserts.
 */
#include "harness.h"

#include <string.h>

int
reply_status(json_object *j)
{
	json_object *s;

	if (j == NULL || !json_object_object_get_ex(j, "status", &s) ||
	    !json_object_is_type(s, json_type_int))
		return -1;
	return json_object_get_int(s);
}

static const char *
error_member(json_object *j, const char *key)
{
	json_object *e, *v;

	if (j == NULL || !json_object_object_get_ex(j, "error", &e) ||
	    !json_object_object_get_ex(e, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

const char *
reply_error_code(json_object *j)
{
	return error_member(j, "code");
}

const char *
reply_error_message(json_object *j)
{
	return error_member(j, "message");
}

json_object *
reply_body(json_object *j)
{
	json_object *b;

	if (j == NULL || !json_object_object_get_ex(j, "body", &b))
		return NULL;
	return b;
}

json_object *
reply_id(json_object *j)
{
	json_object *v;

	if (j == NULL || !json_object_object_get_ex(j, "id", &v))
		return NULL;
	return v;
}

json_object *
json_path(json_object *j, const char *path)
{
	char key[256];
	const char *p = path, *slash;
	size_t n;

	while (j != NULL && *p != '\0') {
		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (n >= sizeof(key) ||
		    !json_object_is_type(j, json_type_object))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		if (!json_object_object_get_ex(j, key, &j))
			return NULL;
		p += n;
		if (*p == '/')
			p++;
	}
	return j;
}

const char *
json_path_str(json_object *j, const char *path)
{
	json_object *v = json_path(j, path);

	if (v == NULL || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

const char *
reply_text(json_object *j)
{
	if (j == NULL)
		return "(null)";
	return json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
}
