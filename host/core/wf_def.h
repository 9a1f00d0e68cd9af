/*
 * wf_def.h - workflow definitions: a subset of the Amazon States Language
 * (docs/workflows.md) parsed and checked into a tree the engine walks,
 * and the data paths (JSONPath subset, Parameters, ResultPath, Choice
 * rules) it evaluates.
 *
 * Pure: no threads, no files, no logging.  Errors come back as text
 * naming the JSON position (line:column for syntax, a JSON pointer such
 * as /States/Charge/Retry/0 for meaning).
 */
#ifndef CMDHOST_WF_DEF_H
#define CMDHOST_WF_DEF_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Longest state name, in bytes. */
#define WF_NAME_MAX 128

enum wf_type { WF_TASK, WF_PASS, WF_CHOICE, WF_SUCCEED, WF_FAIL };

/* One Retry (or Catch) entry's error names: copies owned by the def. */
struct wf_errors {
	char **names;
	size_t n;
};

struct wf_retry {
	struct wf_errors errors;
	double interval_s;       /* IntervalSeconds, default 1 */
	int max_attempts;        /* MaxAttempts, default 3 (0: none) */
	double backoff;          /* BackoffRate, default 2.0 */
	double max_delay_s;      /* MaxDelaySeconds, 0: no cap */
};

struct wf_catch {
	struct wf_errors errors;
	char *next;              /* owned */
	int next_idx;
	char *result_path;       /* owned; NULL: "$"; WF_PATH_NULL: null */
};

/* The cmdhost extension: what undoes a completed Task. */
struct wf_comp {
	char *resource;          /* owned: a command name */
	struct json_object *params; /* a reference, or NULL: the step's
	                         * {"input": .., "result": ..} */
	struct wf_retry *retry;  /* owned array */
	size_t n_retry;
	int timeout_s;           /* 0: the daemon's default */
};

/* A path field that was JSON null ("ResultPath": null). */
extern char WF_PATH_NULL[];

struct wf_state {
	char *name;              /* owned */
	enum wf_type type;
	char *comment;           /* owned, or NULL */
	char *next;              /* owned, or NULL (End, Choice, terminal) */
	int next_idx;            /* -1: none */
	char *input_path;        /* owned; NULL "$"; WF_PATH_NULL */
	char *output_path;
	char *result_path;
	struct json_object *params;   /* Parameters, a reference, or NULL */
	struct json_object *selector; /* ResultSelector, or NULL */
	struct json_object *result;   /* Pass: Result, or NULL */
	char *resource;          /* Task: a command name, owned */
	int timeout_s;           /* Task: TimeoutSeconds, 0: default */
	struct wf_retry *retry;  /* owned array */
	size_t n_retry;
	struct wf_catch *catches;/* owned array */
	size_t n_catch;
	struct wf_comp *comp;    /* owned, or NULL */
	struct json_object *choices; /* Choice: the rules array, or NULL */
	int *choice_next;        /* Choice: index of each rule's Next */
	char *deflt;             /* Choice: Default, owned, or NULL */
	int default_idx;
	char *error;             /* Fail: Error, Cause (owned, or NULL) */
	char *cause;
};

/* One parsed definition; immutable once made. */
struct wf_def {
	char *name;              /* the command it registers, owned */
	char *comment;           /* owned, or NULL */
	char *text;              /* the file's bytes, owned (NUL-ended) */
	uint64_t hash;           /* of text */
	int start_idx;
	struct wf_state *states; /* owned array, in file order */
	size_t n_states;
	struct json_object *root;/* the parsed file, one reference */
};

/*
 * Parse text[0..len) (borrowed) as a definition.  default_name (borrowed)
 * is the command name when the file declares no "Name".  Returns new
 * (wf_def_free), or NULL with the reason and its JSON position in err.
 */
struct wf_def *wf_def_parse(const char *text, size_t len,
    const char *default_name, char *err, size_t errlen);

/* Free; NULL is ok. */
void wf_def_free(struct wf_def *d);

/* The index of the state called name in d, or -1. */
int wf_def_find(const struct wf_def *d, const char *name);

/* ---------------------------------------------------------- paths */

/*
 * Check a path's syntax: "$" or "$$" (the context, when allow_ctx),
 * then ".name", "['name']" or "[N]" steps; fields_only refuses "[N]"
 * (ResultPath).  Returns 0, or -1 with the reason in err.
 */
int wf_path_check(const char *path, int allow_ctx, int fields_only,
    char *err, size_t errlen);

/* Resolve path (checked) in doc, or in ctx for "$$..."; both borrowed.
 * Returns 0 with *out borrowed (NULL is JSON null), or -1 when it names
 * nothing. */
int wf_path_get(const char *path, struct json_object *doc,
    struct json_object *ctx, struct json_object **out);

/*
 * ResultPath: put val (one reference taken over) at path (checked,
 * fields only) inside *doc (one reference owned by the caller, may be
 * replaced), making the objects on the way.  Returns 0, or -1 when a
 * step on the way is not an object (val is released).
 */
int wf_path_set(struct json_object **doc, const char *path,
    struct json_object *val);

/*
 * Apply a Parameters / ResultSelector template (borrowed): a copy in which
 * every "key.$": "path" member becomes "key": the path's value in doc or
 * ctx (borrowed).  Returns new (one reference), or NULL with the path and
 * the key that named nothing in err.  tmpl may be any JSON.
 */
struct json_object *wf_params_apply(struct json_object *tmpl,
    struct json_object *doc, struct json_object *ctx, char *err,
    size_t errlen);

/* Evaluate one Choice rule (checked) against doc and ctx.  Returns 1 if
 * it matches, 0 if not. */
int wf_choice_eval(struct json_object *rule, struct json_object *doc,
    struct json_object *ctx);

/* True when errors (a Retry's or Catch's ErrorEquals) match the error
 * `name`; is_timeout says it was a timeout (States.Timeout is then also
 * a name of it; States.TaskFailed matches any other Task error;
 * States.ALL matches everything but States.Runtime). */
int wf_errors_match(const struct wf_errors *errors, const char *name,
    int is_timeout, int is_task);

/* The delay before retry `attempt` (1 for the first retry) under r. */
double wf_retry_delay(const struct wf_retry *r, int attempt);

#endif /* CMDHOST_WF_DEF_H */
