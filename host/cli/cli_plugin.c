/*
 * cli_plugin.c - `cmdhost check` and `cmdhost exec`: a plugin file loaded
 * and run in-process, without a daemon, through the daemon's own code
 * (loader.c for loading, request.c for the request line, the field checks
 * and the reply line, executor_run_call() for validate and execute).  It
 * adds no rule of its own except the cross-file checks of `check` with
 * several files, which the daemon's registry makes in the same words.
 */
#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <cmdhost/plugin.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/event.h"
#include "core/generation.h"
#include "core/invocation.h"
#include "core/loader.h"
#include "core/log.h"
#include "core/request.h"

#define MAX_FILES 64

/* What check and exec share: the configuration and the directory the
 * loader puts private copies in. */
struct plugin_env {
	struct config cfg;
	char copy_dir[PATH_MAX];
};

/* Positional arguments and --config of check or exec (borrowed from
 * argv). */
struct plugin_args {
	const char *config;
	char *pos[MAX_FILES];
	int n;
};

/*
 * Split argv (after the subcommand's name) into --config FILE and
 * positional arguments; a borrows from argv.  Returns 0, or -1 after
 * printing usage.
 */
static int
args_parse(int argc, char **argv, struct plugin_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			a->config = argv[++i];
		} else if (strncmp(argv[i], "--", 2) == 0 ||
		    a->n == MAX_FILES) {
			cli_usage(stderr);
			return -1;
		} else {
			a->pos[a->n++] = argv[i];
		}
	}
	return 0;
}

/*
 * Make path (borrowed) absolute against the current directory, into out
 * (the caller's, size bytes), before anything changes directory.
 * Returns 0, or -1 when it does not fit.
 */
static int
absolutize(const char *path, char *out, size_t size)
{
	char cwd[PATH_MAX];

	if (path[0] == '/')
		return snprintf(out, size, "%s", path) < (int)size ? 0 : -1;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	return snprintf(out, size, "%s/%s", cwd, path) < (int)size ? 0 : -1;
}

/*
 * Set up env as the daemon sets itself up: defaults, or the file at
 * `config` (then its directory becomes the working directory, so relative
 * paths in [plugin:NAME] sections mean what they mean to the daemon),
 * logging to stderr, and a private directory for copies.  Returns 0, or
 * CLI_EXIT_USAGE after printing why (env is then released).
 */
static int
env_open(struct plugin_env *env, const char *config)
{
	char err[1024], *dir;
	const char *tmp;

	memset(env, 0, sizeof(*env));
	if (config_init(&env->cfg) < 0) {
		fprintf(stderr, "cmdhost: out of memory\n");
		return CLI_EXIT_USAGE;
	}
	if (config != NULL && config_load(&env->cfg, config, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "cmdhost: %s\n", err);
		config_fini(&env->cfg);
		return CLI_EXIT_USAGE;
	}
	log_init(env->cfg.log_level, env->cfg.log_format, env->cfg.service);
	tmp = getenv("TMPDIR");
	snprintf(env->copy_dir, sizeof(env->copy_dir), "%s/cmdhost.XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(env->copy_dir) == NULL) {
		fprintf(stderr, "cmdhost: cannot create %s: %s\n",
		    env->copy_dir, strerror(errno));
		config_fini(&env->cfg);
		return CLI_EXIT_USAGE;
	}
	if (config == NULL)
		return 0;
	if ((dir = strdup(config)) == NULL || chdir(dirname(dir)) < 0) {
		fprintf(stderr, "cmdhost: cannot enter the directory of %s: "
		    "%s\n", config, strerror(errno));
		free(dir);
		rmdir(env->copy_dir);
		config_fini(&env->cfg);
		return CLI_EXIT_USAGE;
	}
	free(dir);
	return 0;
}

/* Release what env_open() set up.  The directory is empty by then: the
 * loader removes each copy right after dlopen. */
static void
env_close(struct plugin_env *env)
{
	rmdir(env->copy_dir);
	config_fini(&env->cfg);
}

/*
 * Load the plugin file at abs (an absolute path) as loader_load() does
 * for the daemon.  Returns 0 with a generation in *g (one reference, the
 * caller's: generation_release() unloads it), or -1 with the reason in
 * err and, when the descriptor could be read, the plugin's name in *name
 * (malloc'd, or NULL; the caller frees it either way).
 */
static int
load(struct plugin_env *env, const char *abs, struct generation **g,
    char **name, char *err, size_t errlen)
{
	const char *slash = strrchr(abs, '/');

	return loader_load(&env->cfg, abs, slash ? slash + 1 : abs,
	    env->copy_dir, g, name, err, errlen);
}

/* ------------------------------------------------------------ check */

/* Print one command (borrowed) of a loaded generation: name, flags,
 * summary, then its fields as name:type ("!" = required), as `cmdhost
 * list` does. */
static void
print_command(const struct command *c)
{
	printf("  %s", c->name);
	if (c->flags & CMDHOST_SERIAL)
		printf(" [serial]");
	if (c->flags & CMDHOST_BLOCKING)
		printf(" [blocking]");
	printf("  %s\n", c->summary ? c->summary : "");
	printf("    fields:");
	if (c->fields == NULL || c->fields->name == NULL)
		printf(" (none declared)");
	for (const cmdhost_field *f = c->fields; f && f->name; f++)
		printf(" %s:%s%s", f->name, request_type_name(f->type),
		    f->required ? "!" : "");
	printf("\n");
	printf("    validate: %s\n", c->validate ? "yes" : "no");
}

/* Print what the daemon would list for a loaded generation g of `file`
 * (both borrowed). */
static void
print_generation(const char *file, const struct generation *g)
{
	printf("%s: ok\n", file);
	printf("descriptor: %s, magic 0x%08x (\"CMDH\")\n", g->desc_by_fn ?
	    CMDHOST_DESCRIPTOR_FN_SYMBOL "()" : CMDHOST_DESCRIPTOR_SYMBOL,
	    CMDHOST_MAGIC);
	printf("abi: %u.%u (this cmdhost: %d.%d)\n", g->abi_major,
	    g->abi_minor, CMDHOST_ABI_MAJOR, CMDHOST_ABI_MINOR);
	printf("plugin: %s\n", g->name);
	printf("version: %s\n", g->version);
	printf("commands: %zu\n", g->n_commands);
	for (size_t i = 0; i < g->n_commands; i++)
		print_command(&g->commands[i]);
}

/*
 * What the registry refuses when several files load side by side: the
 * daemon's own rule (generation_conflict) against every earlier file
 * (loaded[0..n), borrowed; NULL entries were refused).  Returns 0, or -1
 * with the reason in err.
 */
static int
conflicts(struct generation *const *loaded, int n,
    const struct generation *g, char *err, size_t errlen)
{
	for (int k = 0; k < n; k++)
		if (loaded[k] != NULL && generation_conflict(g, loaded[k], err,
		    errlen) < 0)
			return -1;
	return 0;
}

int
cli_plugin_check(const struct cli_opts *o, int argc, char **argv)
{
	struct generation *loaded[MAX_FILES] = { 0 };
	char *files[MAX_FILES] = { 0 };
	struct plugin_args a;
	struct plugin_env env;
	char err[1024], abs[PATH_MAX], *name;
	int rc;

	(void)o;
	if (args_parse(argc, argv, &a) < 0)
		return CLI_EXIT_USAGE;
	if (a.n < 1) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	for (int i = 0; i < a.n; i++) {
		if (absolutize(a.pos[i], abs, sizeof(abs)) < 0 ||
		    (files[i] = strdup(abs)) == NULL) {
			fprintf(stderr, "cmdhost: %s: cannot resolve the "
			    "path\n", a.pos[i]);
			rc = CLI_EXIT_USAGE;
			goto out_files;
		}
	}
	if ((rc = env_open(&env, a.config)) != 0)
		goto out_files;
	for (int i = 0; i < a.n; i++) {
		name = NULL;
		if (i > 0)
			printf("\n");
		if (load(&env, files[i], &loaded[i], &name, err,
		    sizeof(err)) == 0 && conflicts(loaded, i, loaded[i], err,
		    sizeof(err)) < 0) {
			generation_release(loaded[i]);
			loaded[i] = NULL;
		}
		if (loaded[i] == NULL) {
			/* The report is the output: the reason goes to
			 * stdout, in the daemon's words. */
			printf("%s: refused: %s\n", a.pos[i], err);
			if (name != NULL)
				printf("plugin: %s\n", name);
			rc = CLI_EXIT_REFUSED;
		} else {
			print_generation(a.pos[i], loaded[i]);
		}
		free(name);
	}
	/* Unloading runs each plugin's fini, as the daemon would. */
	for (int i = 0; i < a.n; i++)
		generation_release(loaded[i]);
	env_close(&env);
out_files:
	for (int i = 0; i < a.n; i++)
		free(files[i]);
	return rc;
}

/* ------------------------------------------------------------ exec */

/* Print the reply line in out (borrowed) on stdout.  Returns 0 or
 * CLI_EXIT_REPLY_ERROR if stdout cannot be written. */
static int
print_line(const struct buf *out)
{
	if (fwrite(buf_head(out), 1, buf_size(out), stdout) != buf_size(out))
		return CLI_EXIT_REPLY_ERROR;
	return 0;
}

/*
 * Show the events inv emitted on standard error, one line each: exec has
 * no outbox and delivers nothing, but the author must see what the call
 * would have published.  The line's JSON is what the daemon stores: the
 * event's id, subject and body.  status is the call's final answer: only
 * a 2xx one would publish them; otherwise they are shown as dropped.
 */
static void
print_events(const struct invocation *inv, int status)
{
	int published = status >= 200 && status < 300;

	for (size_t i = 0; i < inv->n_events; i++) {
		const struct event *e = &inv->events[i];

		/* The id and subject need no escaping: the request id is the
		 * daemon's own and subjects are [A-Za-z0-9_:.-]. */
		fprintf(stderr, "cmdhost: event %s: {\"id\":\"%s.%zu\","
		    "\"subject\":\"%s\",\"body\":%s}\n", published ?
		    "emitted (not delivered: exec has no outbox)" :
		    "dropped (the call did not answer 2xx)", inv->request_id,
		    i, e->subject, e->body);
	}
}

/*
 * Run the request line `line` (borrowed) against generation g (borrowed;
 * the call takes a reference of its own while it runs) as the daemon's
 * dispatch does, and append the reply line to out (the caller's).
 * Returns the reply's status, or -1 on ENOMEM.
 */
static int
run_line(const struct config *cfg, struct generation *g, const char *line,
    struct buf *out)
{
	struct json_tokener *tok;
	struct request req;
	struct invocation call, *inv = &call;
	struct command *cmd;
	char err[512];
	int64_t timeout_ms;
	int status = -1;

	memset(&req, 0, sizeof(req));
	if ((tok = request_tokener_new()) == NULL)
		return -1;
	if (request_parse(tok, line, strlen(line), &req, err,
	    sizeof(err)) < 0) {
		status = 400;
		if (request_format_error(out, req.id, status, "bad_request",
		    err) < 0)
			status = -1;
		goto out;
	}
	if ((cmd = generation_command(g, req.command)) == NULL) {
		snprintf(err, sizeof(err), "no plugin registers the command "
		    "'%.200s'", req.command);
		status = 404;
		if (request_format_error(out, req.id, status,
		    "unknown_command", err) < 0)
			status = -1;
		goto out;
	}
	if (request_check_fields(cmd->fields, req.payload, err,
	    sizeof(err)) < 0) {
		status = 400;
		if (request_format_error(out, req.id, status,
		    "invalid_payload", err) < 0)
			status = -1;
		goto out;
	}
	/* The invocation holds a reference of its own on g. */
	generation_hold(g);
	if (invocation_init(inv, cmd, req.root, req.id, req.payload,
	    clock_wall_ms(), 0, 1) < 0) {
		generation_release(g);
		goto out;
	}
	req.root = NULL; /* inv owns it now */
	timeout_ms = req.timeout_ms ? req.timeout_ms : cfg->default_timeout_ms;
	inv->start_ns = clock_mono_ns();
	inv->deadline_ns = inv->start_ns + timeout_ms * 1000000;
	invocation_run(inv);
	status = inv->status;
	if (status >= 200 && status < 300) {
		char why[160];
		int rc = inv->body_text != NULL ? request_format_checked(out,
		    inv->id_text, status, inv->body_text, inv->body_len) :
		    request_format_body(out, inv->id_text, status, inv->body,
		    why, sizeof(why));

		if (rc == -EILSEQ) {
			invocation_refuse_body(inv, why);
			status = inv->status;
		} else if (rc < 0) {
			status = -1;
		}
	}
	if (status >= 300 && request_format_error_text(out, inv->id_text,
	    status, inv->code ? inv->code : "internal_error",
	    inv->message ? inv->message : "out of memory") < 0) {
		status = -1;
	}
	if (status > 0 && (req.want_request_id || cfg->reply_request_id) &&
	    request_put_request_id(out, inv->request_id) < 0)
		status = -1;
	print_events(inv, status);
	invocation_fini(inv);
out:
	request_fini(&req);
	json_tokener_free(tok);
	return status;
}

int
cli_plugin_exec(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *payload = NULL;
	struct generation *g = NULL;
	struct buf out = BUF_INIT;
	struct plugin_args a;
	struct plugin_env env;
	char abs[PATH_MAX], err[1024], *line = NULL, *name = NULL;
	int rc, status;

	if (args_parse(argc, argv, &a) < 0)
		return CLI_EXIT_USAGE;
	if (a.n < 2 || a.n > 3) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (absolutize(a.pos[0], abs, sizeof(abs)) < 0) {
		fprintf(stderr, "cmdhost: %s: cannot resolve the path\n",
		    a.pos[0]);
		return CLI_EXIT_USAGE;
	}
	/* The payload and the line first, as invoke does: a bad payload is
	 * a usage error, and @FILE is relative to where we were started. */
	if ((rc = cli_payload_parse(a.n == 3 ? a.pos[2] : "{}", &payload))
	    != 0)
		return rc;
	if ((line = cli_conn_request_line(o, a.pos[1], payload)) == NULL) {
		fprintf(stderr, "cmdhost: out of memory\n");
		rc = CLI_EXIT_USAGE;
		goto out;
	}
	if ((rc = env_open(&env, a.config)) != 0)
		goto out;
	if (load(&env, abs, &g, &name, err, sizeof(err)) < 0) {
		fprintf(stderr, "cmdhost: %s: refused: %s\n",
		    strrchr(abs, '/') + 1, err);
		rc = CLI_EXIT_REFUSED;
		goto out_env;
	}
	status = run_line(&env.cfg, g, line, &out);
	if (status < 0) {
		fprintf(stderr, "cmdhost: out of memory\n");
		rc = CLI_EXIT_REPLY_ERROR;
	} else if ((rc = print_line(&out)) == 0 &&
	    (status < 200 || status > 299)) {
		rc = CLI_EXIT_REPLY_ERROR;
	}
	generation_release(g); /* fini and dlclose, as the daemon would */
out_env:
	env_close(&env);
out:
	free(name);
	free(line);
	buf_free(&out);
	json_object_put(payload);
	return rc;
}
