/*
 * body_text.h - a reply body given by a plugin as JSON text
 * (ctx_respond_text, ABI 1.1): checked strictly, then kept as a json-c
 * tree whose strings and numbers serialize to the plugin's own bytes.
 *
 * It knows nothing of invocations or plugins: the API table names the
 * plugin in the error it makes of a refusal.
 */
#ifndef CMDHOST_BODY_TEXT_H
#define CMDHOST_BODY_TEXT_H

#include <stddef.h>

#include <json-c/json.h>

/* How deep a text body may nest (arrays and objects). */
#define BODY_TEXT_MAX_DEPTH 64

/*
 * Check `len` bytes at `text` (borrowed; need not be NUL-terminated) as
 * one strict JSON value: valid UTF-8 (RFC 3629), no control character in a
 * string, no NaN or Infinity, no number json-c cannot hold (1e400,
 * integers beyond 64 bits), nesting at most BODY_TEXT_MAX_DEPTH, at most
 * `max` bytes.  On success returns 0 and in *out a new json-c value (one
 * reference, the caller's; NULL for JSON null) whose serialization is the
 * text without the whitespace between tokens, byte for byte, except that
 * member names are written as json-c writes them (escapes undone) and a
 * name given twice keeps its last value only.  Strings and numbers keep
 * their own text even through json_object_deep_copy().  On refusal
 * returns -EINVAL and a reason in err (errlen bytes, the caller's); on
 * allocation failure -ENOMEM.  *out is NULL on every failure.
 */
int body_text_parse(const char *text, size_t len, size_t max,
    struct json_object **out, char *err, size_t errlen);

/*
 * The length of the longest prefix of the NUL-terminated string s that is
 * at most max bytes and does not end inside a UTF-8 sequence (it never
 * cuts between a lead byte and its continuation bytes).
 */
size_t body_text_cut(const char *s, size_t max);

#endif /* CMDHOST_BODY_TEXT_H */
