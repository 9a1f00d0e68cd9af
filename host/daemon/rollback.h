/*
 * rollback.h - a new generation on probation, and putting the previous
 * one back when it fails.
 *
 * After a swap the previous generation's bytes are kept (a copy in
 * <state_dir>/kept) until the new generation has proven itself: enough
 * calls and seconds inside its window without a 5xx share over the
 * threshold or repeated worker crashes.  If it fails, the rollback thread
 * has the registry publish the kept copy again (registry_rollback) and
 * the bad bytes are refused until the file's bytes change (a store in
 * <state_dir>/refused that outlives restarts).  A generation that proved
 * itself is also kept as the plugin's good copy (<state_dir>/good), what
 * a restart loads when the crash record refuses the file's bytes.  This
 * file decides when; the registry does the loading and publishing.
 */
#ifndef CMDHOST_ROLLBACK_H
#define CMDHOST_ROLLBACK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "core/generation.h"
#include "core/metrics.h"

struct config;
struct registry;
struct rollback;

/* When a generation on probation has proven itself, or has failed. */
struct rollback_policy {
	int on;              /* rollback */
	int window_s;        /* rollback_window_s */
	unsigned min_calls;  /* rollback_min_calls */
	unsigned pct_5xx;    /* rollback_5xx_percent: 0..100 */
	unsigned crashes;    /* rollback_crashes: 0 never */
};

enum rollback_verdict {
	ROLLBACK_WATCH = 0,  /* not decided yet */
	ROLLBACK_PROVEN,     /* the window passed with min_calls, clean */
	ROLLBACK_NOW         /* failed: put the previous one back */
};

/*
 * The window arithmetic.  A generation published age_ms ago that answered
 * `calls` calls, `fails` of them 5xx of its making, and whose workers
 * crashed `crashes` times: it fails when crashes reach p->crashes (if not
 * 0), or when calls reach p->min_calls (at least 1) and fails are more
 * than p->pct_5xx percent of calls; it has proven itself once age_ms
 * reaches the window and calls reach min_calls; else the judgement
 * waits.  A failure says why in why (the caller's; may be NULL).
 */
enum rollback_verdict rollback_judge(const struct rollback_policy *p,
    int64_t age_ms, uint64_t calls, uint64_t fails, unsigned crashes,
    char *why, size_t whylen);

/* The policy of plugin `plugin` (borrowed): the [host] keys, overridden
 * by the same keys in [plugin:NAME].  A value there that does not parse
 * keeps the [host] one (and is logged by rollback_published). */
void rollback_policy_of(const struct config *cfg, const char *plugin,
    struct rollback_policy *p, char *bad, size_t badlen);

/*
 * Count one answer of generation g while it is watched (dispatch calls
 * it next to metrics_cmd_record; one relaxed load when it is not).
 * counts_5xx: the answer is a 5xx of the plugin's making (its own 5xx,
 * a crash, a deadline it passed; not a 503 the daemon gave).
 */
static inline void
rollback_note(struct generation *g, int counts_5xx)
{
	struct gen_watch_share *w;

	if (!atomic_load_explicit(&g->watched, memory_order_relaxed))
		return;
	w = &g->watch[metrics_shard() % GEN_WATCH_SHARES];
	atomic_fetch_add_explicit(&w->calls, 1, memory_order_relaxed);
	if (counts_5xx)
		atomic_fetch_add_explicit(&w->fails, 1, memory_order_relaxed);
}

/*
 * Returns new (rollback_free): the stores under state_dir (an absolute
 * path, copied; kept/ and good/ are made 0700, kept/ emptied of what an
 * earlier run left, the refused store read), or NULL with the reason in
 * err.  cfg is borrowed and outlives it.
 */
struct rollback *rollback_new(const struct config *cfg, const char *state_dir,
    char *err, size_t errlen);

/* Start the thread that judges windows and asks reg (borrowed, outlives
 * the thread: stop it first) for rollbacks.  Returns 0 or a negative
 * errno. */
int rollback_start(struct rollback *rb, struct registry *reg);

/* Stop the thread (a rollback it is doing finishes first).  Any number
 * of times. */
void rollback_stop(struct rollback *rb);

/* rollback_stop(), drop every watched generation's reference, free.
 * NULL is ok.  The files on disk stay. */
void rollback_free(struct rollback *rb);

/* ----------------------------------------------------- registry hooks */

/* Are the bytes with `hash` of plugin file `file` refused (rolled back,
 * or they crashed the daemon)?  Returns 1 with the reason in why, or 0.
 * Any thread; rb may be NULL (0). */
int rollback_refused(struct rollback *rb, const char *file, uint64_t hash,
    char *why, size_t whylen);

/* The good copy of `file`, if one is kept whose bytes are not refused:
 * returns 0 with its path and hash, or -1.  Any thread. */
int rollback_good_copy(struct rollback *rb, const char *file, char *path,
    size_t pathlen, uint64_t *hash);

/* Keep the bytes of fd (read with pread from 0), just loaded as a
 * generation of `file` whose content hash is `hash`, as a kept copy:
 * returns 0 with its path in path, or -1 (then none is kept: that
 * generation cannot be rolled back to; the bytes changed meanwhile, or
 * the disk said no).  On a load thread, no lock held. */
int rollback_keep(struct rollback *rb, const char *file, int fd,
    uint64_t hash, char *path, size_t pathlen);

/* How a generation came to be published. */
enum rollback_how {
	ROLLBACK_LOADED = 0, /* from plugin_dir: it goes on probation */
	ROLLBACK_RESTORED,   /* the kept previous copy, put back */
	ROLLBACK_GOOD        /* the good copy, the file's bytes refused */
};

/*
 * Plugin file `file` now serves g (borrowed; a reference is taken while
 * it is on probation) instead of old (NULL: nothing served; borrowed,
 * only compared), loaded from the kept copy `kept` (owned by rb from now
 * on; "" when none).  Under the registry's writer lock.
 */
void rollback_published(struct rollback *rb, const char *file,
    const struct generation *old, struct generation *g, const char *kept,
    enum rollback_how how);

/* Plugin file `file` serves nothing any more (removed): its window and
 * kept copies go; the good copy and the refused bytes stay. */
void rollback_gone(struct rollback *rb, const char *file);

/* The kept previous copy of `file`, to put back: returns 0 with its path
 * and hash, or -1 with the reason in err. */
int rollback_target(struct rollback *rb, const char *file, char *path,
    size_t pathlen, uint64_t *hash, char *err, size_t errlen);

/*
 * Refuse the bytes `hash` of `file` from now on (written to the refused
 * store), and remember it as the file's rollback: `version`, generation
 * `number` (0: not known) and why (all copied), shown by host.list.
 */
void rollback_refuse(struct rollback *rb, const char *file, uint64_t hash,
    const char *version, long long number, const char *why);

/* Add what host.list shows of `file` to plugin object o (borrowed):
 * "rolled_back" (null, or {version, hash, generation, reason, at}) and
 * "rollback" (the window, the previous copy, the good copy).  Returns 1
 * when the plugin's state is "rolled_back", else 0. */
int rollback_view(struct rollback *rb, const char *file, int serving,
    struct json_object *o);

/* Is `file` rolled back now (what host.list's state says)? */
int rollback_is_rolled_back(struct rollback *rb, const char *file);

/* Rollbacks done since start-up, automatic and by hand (host.stats). */
long rollback_count(struct rollback *rb);

/* A hash as host.list and the logs write it: 16 hex digits into buf (at
 * least 17 bytes); returns buf. */
const char *rollback_hash_text(uint64_t hash, char *buf);

#endif /* CMDHOST_ROLLBACK_H */
