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
 * The check of body_text_parse() without the tree: `len` bytes at `text`
 * (borrowed) checked by the strict scanner and written to out (the
 * caller's, at least len + 1 bytes) without the whitespace between
 * tokens, NUL-terminated, length in *out_len.  *needs_tree is 1 when
 * that text is not yet what the reply must carry: a member name with an
 * escape (json-c writes names its own way), a name given twice (the last
 * value wins), a lone surrogate escape (refused when the reply is
 * checked); then make the tree with body_text_tree().  Returns 0,
 * -EINVAL with the reason in err, or -ENOMEM.  text NULL is refused here
 * (body_text_parse() takes it with len 0 as JSON null).
 */
int body_text_check(const char *text, size_t len, size_t max, char *out,
    size_t *out_len, int *needs_tree, char *err, size_t errlen);

/*
 * The tree of the n bytes at t (borrowed, NUL-terminated, a text
 * body_text_check() passed and wrote), as body_text_parse() gives it:
 * 0 and a new value in *out (NULL for JSON null), or -ENOMEM (or -EINVAL
 * with err, which the scanner's check leaves to json-c's limits).
 */
int body_text_tree(const char *t, size_t n, struct json_object **out,
    char *err, size_t errlen);

/*
 * The length of the longest prefix of the NUL-terminated string s that is
 * at most max bytes and does not end inside a UTF-8 sequence (it never
 * cuts between a lead byte and its continuation bytes).
 */
size_t body_text_cut(const char *s, size_t max);

#endif /* CMDHOST_BODY_TEXT_H */
