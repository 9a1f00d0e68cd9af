/*
 * cli_nats.c - cmdhost --nats URL: invoke a command, list every daemon
 * (through $SRV discovery) and publish events to the JetStream stream,
 * over NATS instead of the Unix socket.  Each function prints its own
 * "cmdhost: ..." message on failure.
 *
 * cmdhost links no libnats: the NATS side of these verbs lives in the
 * NATS module, cmdhost-nats.so (host/nats/nats_cli.c, the table
 * cmdhost_nats_cli of core/nats_api.h), which is dlopened here only when
 * --nats is given, found where cmdhostd finds it (core/module.c;
 * $CMDHOST_NATS_MODULE plays the part of [nats] module).  This file keeps
 * the rest: the arguments, the environment, the output, the exit status.
 * See docs/scale-out.md for why the module is the verbs' home.
 */
#include "cli.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/module.h"
#include "core/nats_api.h"

#define MODULE_ENV "CMDHOST_NATS_MODULE"
#define CMD_PREFIX_ENV "CMDHOST_NATS_PREFIX"
#define EVENT_PREFIX_ENV "CMDHOST_NATS_EVENTS"
#define SERVICE_ENV "CMDHOST_NATS_SERVICE"
#define DEFAULT_CMD_PREFIX "cmdhost.cmd."
#define DEFAULT_EVENT_PREFIX "cmdhost.events."
#define LIST_WAIT_MS 1000

static const char *
env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : def;
}

/*
 * Load the NATS module and its client table (kept mapped until exit, as
 * the daemon keeps it).  Returns the table, or NULL after printing every
 * path tried.
 */
static const struct nats_cli *
module_load(void)
{
	const char *path = env_or(MODULE_ENV, NULL);
	const struct nats_cli *t;
	char tried[8192];
	void *handle;

	if ((handle = module_open(path, NATS_MODULE_FILE, tried,
	    sizeof(tried))) == NULL) {
		fprintf(stderr, "cmdhost: --nats needs the NATS module, which "
		    "cannot be loaded (%s)%s\n", tried, path != NULL ? "" :
		    "; set " MODULE_ENV " to the path of " NATS_MODULE_FILE);
		return NULL;
	}
	t = dlsym(handle, NATS_CLI_SYMBOL);
	if (t == NULL || t->size < NATS_CLI_MIN ||
	    t->version != NATS_API_VERSION) {
		fprintf(stderr, "cmdhost: the NATS module has no %s of "
		    "version %d (is it older than this cmdhost?)\n",
		    NATS_CLI_SYMBOL, NATS_API_VERSION);
		return NULL;
	}
	return t;
}

/* The -i id as JSON text into buf: an integer as it is, else a string. */
static const char *
id_json(const struct cli_opts *o, char *buf, size_t size)
{
	struct json_object *s;
	char *end;

	if (o->id == NULL)
		return "1";
	strtoll(o->id, &end, 10);
	if (*o->id != '\0' && *end == '\0' && strlen(o->id) < size) {
		snprintf(buf, size, "%s", o->id);
		return buf;
	}
	s = json_object_new_string(o->id);
	snprintf(buf, size, "%s", json_object_to_json_string_ext(s,
	    CLI_PLAIN_FLAGS));
	json_object_put(s);
	return buf;
}

/* A module that predates the keyed entries: say so.  Returns 0 when
 * key is NULL or t has them, else CLI_EXIT_CONN after printing why. */
static int
keyed_ok(const struct nats_cli *t, const char *key)
{
	if (key == NULL || (NATS_CLI_HAS(t, request_keyed) &&
	    NATS_CLI_HAS(t, publish_keyed)))
		return 0;
	fprintf(stderr, "cmdhost: -k needs a NATS module that sends the "
	    "key; this %s is older than cmdhost\n", NATS_MODULE_FILE);
	return CLI_EXIT_CONN;
}

static int
nats_invoke(const struct cli_opts *o, const char *command,
    const char *payload, size_t len, const char *key)
{
	const struct nats_cli *t;
	struct json_object *reply = NULL, *body;
	char subject[512], idbuf[256], err[1024];
	int64_t wait = o->timeout_ms > 0 ? o->timeout_ms + 1000 : 35000;
	int rc;

	if ((t = module_load()) == NULL)
		return CLI_EXIT_CONN;
	if ((rc = keyed_ok(t, key)) != 0)
		return rc;
	snprintf(subject, sizeof(subject), "%s%s",
	    env_or(CMD_PREFIX_ENV, DEFAULT_CMD_PREFIX), command);
	if (key != NULL)
		rc = t->request_keyed(o->nats_url, subject, payload, len,
		    id_json(o, idbuf, sizeof(idbuf)), o->timeout_ms, wait, key,
		    &reply, err, sizeof(err));
	else
		rc = t->request(o->nats_url, subject, payload, len,
		    id_json(o, idbuf, sizeof(idbuf)), o->timeout_ms, wait,
		    &reply, err, sizeof(err));
	if (rc == NATS_CLI_NO_RESPONDERS) {
		/* No daemon subscribes the command: as the socket says it. */
		fprintf(stderr, "cmdhost: 404 unknown_command: no daemon on "
		    "NATS serves '%s' (%s)\n", command, err);
		return CLI_EXIT_REPLY_ERROR;
	}
	if (rc != NATS_CLI_OK) {
		fprintf(stderr, "cmdhost: %s\n", err);
		return CLI_EXIT_CONN;
	}
	if ((rc = cli_conn_reply_check(reply, &body)) == 0)
		rc = cli_print_json(body);
	json_object_put(reply);
	return rc;
}

int
cli_nats_list(const struct cli_opts *o, int raw)
{
	const struct nats_cli *t;
	struct json_object *all;
	char subject[256], err[1024];
	size_t n;
	int rc = 0;

	if ((t = module_load()) == NULL)
		return CLI_EXIT_CONN;
	/* The daemons' [nats] service_name (default cmdhost). */
	snprintf(subject, sizeof(subject), "$SRV.INFO.%s",
	    env_or(SERVICE_ENV, "cmdhost"));
	if (t->discover(o->nats_url, subject, LIST_WAIT_MS, &all, err,
	    sizeof(err)) != NATS_CLI_OK) {
		fprintf(stderr, "cmdhost: %s\n", err);
		return CLI_EXIT_CONN;
	}
	n = json_object_array_length(all);
	if (raw) {
		rc = cli_print_json(all);
	} else {
		printf("%zu daemon%s on %s\n", n, n == 1 ? "" : "s",
		    o->nats_url);
		for (size_t i = 0; i < n; i++) {
			struct json_object *d = json_object_array_get_idx(all,
			    i), *v, *eps = NULL;
			size_t m;

			printf("%s", json_object_object_get_ex(d, "id", &v) ?
			    json_object_get_string(v) : "?");
			printf("  cmdhostd %s\n",
			    json_object_object_get_ex(d, "version", &v) ?
			    json_object_get_string(v) : "?");
			json_object_object_get_ex(d, "endpoints", &eps);
			m = eps ? json_object_array_length(eps) : 0;
			for (size_t j = 0; j < m; j++) {
				struct json_object *e =
				    json_object_array_get_idx(eps, j), *name,
				    *subj;

				if (json_object_object_get_ex(e, "name", &name) &&
				    json_object_object_get_ex(e, "subject",
				    &subj))
					printf("  %-32s %s\n",
					    json_object_get_string(name),
					    json_object_get_string(subj));
			}
		}
	}
	json_object_put(all);
	return rc;
}

static int
nats_publish(const struct cli_opts *o, const char *command,
    struct json_object *payload, const char *key)
{
	const struct nats_cli *t;
	struct json_object *ev, *ack = NULL;
	char subject[512], idbuf[256], err[1024];
	const char *text;
	int rc = CLI_EXIT_CONN;

	if ((t = module_load()) == NULL)
		return CLI_EXIT_CONN;
	if ((rc = keyed_ok(t, key)) != 0)
		return rc;
	rc = CLI_EXIT_CONN;
	ev = json_object_new_object();
	json_object_object_add(ev, "command", json_object_new_string(command));
	json_object_object_add(ev, "payload", json_object_get(payload));
	if (o->id != NULL)
		json_object_object_add(ev, "id", json_tokener_parse(
		    id_json(o, idbuf, sizeof(idbuf))));
	text = json_object_to_json_string_ext(ev, CLI_PLAIN_FLAGS);
	snprintf(subject, sizeof(subject), "%s%s",
	    env_or(EVENT_PREFIX_ENV, DEFAULT_EVENT_PREFIX), command);
	if ((key != NULL ? t->publish_keyed(o->nats_url, subject, text,
	    strlen(text), key, &ack, err, sizeof(err)) : t->publish(
	    o->nats_url, subject, text, strlen(text), &ack, err,
	    sizeof(err))) != NATS_CLI_OK)
		fprintf(stderr, "cmdhost: %s\n", err);
	else
		rc = cli_print_json(ack);
	json_object_put(ack);
	json_object_put(ev);
	return rc;
}

int
cli_nats_verb(const struct cli_opts *o, int argc, char **argv)
{
	struct json_object *payload = NULL;
	const char *key = NULL, *verb = argv[0];
	size_t len;
	const char *text;
	int i, rc;

	/* The verb's own options: -k KEY, --idempotency-key[=]KEY. */
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strncmp(argv[i], "--idempotency-key=", 18) == 0) {
			key = argv[i] + 18;
		} else if ((strcmp(argv[i], "-k") == 0 ||
		    strcmp(argv[i], "--idempotency-key") == 0) && i + 1 < argc) {
			key = argv[++i];
		} else {
			fprintf(stderr, "cmdhost: %s: unknown option '%s'\n",
			    verb, argv[i]);
			cli_usage(stderr);
			return CLI_EXIT_USAGE;
		}
		if (*key == '\0' || strlen(key) > 255) {
			fprintf(stderr, "cmdhost: -k wants a key of 1 to 255 "
			    "bytes\n");
			return CLI_EXIT_USAGE;
		}
	}
	argc -= i - 1;
	argv += i - 1;
	if (argc < 2 || argc > 3) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if ((rc = cli_payload_parse(argc == 3 ? argv[2] : "{}", &payload)) !=
	    0)
		return rc;
	if (strcmp(verb, "publish") == 0) {
		rc = nats_publish(o, argv[1], payload, key);
	} else {
		text = json_object_to_json_string_length(payload,
		    CLI_PLAIN_FLAGS, &len);
		rc = nats_invoke(o, argv[1], text, len, key);
	}
	json_object_put(payload);
	return rc;
}
