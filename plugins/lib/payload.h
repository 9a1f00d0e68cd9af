/*
 * payload.h - reading members of a command's JSON payload, for the example
 * plugins.  It only reads; the plugins' validate functions say what is
 * acceptable and answer the client.
 */
#ifndef CMDHOST_PAYLOAD_H
#define CMDHOST_PAYLOAD_H

#include <json-c/json.h>

/*
 * The string member `key` (borrowed) of the object `payload` (borrowed), or
 * NULL if it is absent, not a string or holds a NUL byte.  Borrowed from
 * the payload: valid while the payload is.
 */
const char *payload_string(struct json_object *payload, const char *key);

/*
 * The number member `key` (borrowed) of the object `payload` (borrowed), in
 * *out.  Returns 0, or -1 if it is absent or not a number (*out untouched).
 */
int payload_number(struct json_object *payload, const char *key,
    double *out);

#endif /* CMDHOST_PAYLOAD_H */
