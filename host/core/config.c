/*
 * config.c - read cmdhost.ini with inih into struct config.
 *
 * Every [host] key is checked here, with its range; [plugin:NAME] sections
 * are kept as free-form strings for the plugin to read.  Nothing here logs.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <ini.h>

#include "log.h"

#define PLUGIN_PREFIX "plugin:"

int
config_set_string(char **field, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

int
config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_mode = 0660;
	cfg->workers = 0;
	cfg->pool_threads = 8;
	cfg->queue_depth = 1024;
	cfg->inline_budget_us = 2000;
	cfg->max_request_bytes = 1048576;
	cfg->max_pending_bytes = 1048576;
	cfg->idle_timeout_ms = 300000;
	cfg->allow_insecure_plugins = 0;
	cfg->max_connections = 1024;
	cfg->default_timeout_ms = 30000;
	cfg->shutdown_timeout_ms = 10000;
	cfg->watch = 1;
	cfg->reload_debounce_ms = 20;
	cfg->log_level = LOGL_INFO;
	cfg->log_format = LOGF_JSON;
	if (config_nats_init(&cfg->nats) < 0 ||
	    config_set_string(&cfg->socket, "cmdhost.sock") < 0 ||
	    config_set_string(&cfg->service, "cmdhostd") < 0 ||
	    config_set_string(&cfg->plugin_dir, "plugins") < 0) {
		config_fini(cfg);
		return -ENOMEM;
	}
	return 0;
}

/* Parse a decimal integer in [min, max]; whole string, no sign tricks. */
static int
parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* true/yes/on/1 -> 1, false/no/off/0 -> 0, else -1. */
static int
parse_bool(const char *s)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

static int
bool_key(const char *value, int *field, char *err, size_t errlen,
    const char *key)
{
	int v = parse_bool(value);

	if (v < 0) {
		snprintf(err, errlen, "%s: '%s' is not true or false", key,
		    value);
		return -1;
	}
	*field = v;
	return 0;
}

/* service: 1..64 printable ASCII bytes, no quotes or backslashes, so that
 * every log line can carry it verbatim. */
static int
service_key(struct config *cfg, const char *value, char *err, size_t errlen)
{
	size_t n = strlen(value);

	if (n == 0 || n > 64) {
		snprintf(err, errlen, "service: must be 1..64 characters");
		return -1;
	}
	for (const char *p = value; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\') {
			snprintf(err, errlen, "service: '%s' may hold only "
			    "printable ASCII without spaces, quotes or "
			    "backslashes", value);
			return -1;
		}
	if (config_set_string(&cfg->service, value) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int
int_key(const char *value, long long min, long long max, int *field,
    char *err, size_t errlen, const char *key)
{
	long long v;

	if (parse_int(value, min, max, &v) < 0) {
		snprintf(err, errlen, "%s: '%s' is not an integer in %lld..%lld",
		    key, value, min, max);
		return -1;
	}
	*field = (int)v;
	return 0;
}

static int
parse_uids(struct config *cfg, const char *value, char *err, size_t errlen)
{
	char *copy = strdup(value), *tok, *save = NULL;
	int rc = 0;

	if (copy == NULL) {
		snprintf(err, errlen, "admin_uids: out of memory");
		return -1;
	}
	cfg->n_admin_uids = 0;
	for (tok = strtok_r(copy, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		long long v;
		uid_t uid;

		if (parse_int(tok, 0, UINT_MAX - 1, &v) == 0) {
			uid = (uid_t)v;
		} else {
			struct passwd *pw = getpwnam(tok);

			if (pw == NULL) {
				snprintf(err, errlen,
				    "admin_uids: '%s' is neither a uid nor a "
				    "known user", tok);
				rc = -1;
				break;
			}
			uid = pw->pw_uid;
		}
		if (cfg->n_admin_uids == CONFIG_MAX_ADMIN_UIDS) {
			snprintf(err, errlen, "admin_uids: more than %d entries",
			    CONFIG_MAX_ADMIN_UIDS);
			rc = -1;
			break;
		}
		cfg->admin_uids[cfg->n_admin_uids++] = uid;
	}
	free(copy);
	return rc;
}

int
config_set_host(struct config *cfg, const char *key, const char *value,
    char *err, size_t errlen)
{
	long long v;
	int lv;

	if (strcmp(key, "socket") == 0 || strcmp(key, "plugin_dir") == 0) {
		if (*value == '\0') {
			snprintf(err, errlen, "%s: must not be empty", key);
			return -1;
		}
		if (strcmp(key, "socket") == 0 && strlen(value) >= 108) {
			snprintf(err, errlen, "socket: path longer than 107 bytes");
			return -1;
		}
		if (config_set_string(strcmp(key, "socket") == 0 ?
		    &cfg->socket : &cfg->plugin_dir, value) < 0) {
			snprintf(err, errlen, "%s: out of memory", key);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "socket_mode") == 0) {
		char *end;
		unsigned long m;

		errno = 0;
		m = strtoul(value, &end, 8);
		if (*value == '\0' || *end != '\0' || errno != 0 || m > 0777 ||
		    strspn(value, "01234567") != strlen(value)) {
			snprintf(err, errlen, "socket_mode: '%s' is not an octal "
			    "mode from 0 to 0777", value);
			return -1;
		}
		cfg->socket_mode = (mode_t)m;
		return 0;
	}
	if (strcmp(key, "workers") == 0)
		return int_key(value, 0, 256, &cfg->workers, err, errlen, key);
	if (strcmp(key, "pool_threads") == 0)
		return int_key(value, 1, 1024, &cfg->pool_threads, err, errlen,
		    key);
	if (strcmp(key, "queue_depth") == 0)
		return int_key(value, 1, 1 << 20, &cfg->queue_depth, err, errlen,
		    key);
	if (strcmp(key, "inline_budget_us") == 0)
		return int_key(value, 0, 60000000, &cfg->inline_budget_us, err,
		    errlen, key);
	if (strcmp(key, "max_connections") == 0)
		return int_key(value, 1, 1000000, &cfg->max_connections, err,
		    errlen, key);
	if (strcmp(key, "default_timeout_ms") == 0)
		return int_key(value, 1, 86400000, &cfg->default_timeout_ms,
		    err, errlen, key);
	if (strcmp(key, "shutdown_timeout_ms") == 0)
		return int_key(value, 0, 86400000, &cfg->shutdown_timeout_ms,
		    err, errlen, key);
	if (strcmp(key, "max_request_bytes") == 0) {
		if (parse_int(value, 64, 1LL << 30, &v) < 0) {
			snprintf(err, errlen, "max_request_bytes: '%s' is not an "
			    "integer in 64..%lld", value, 1LL << 30);
			return -1;
		}
		cfg->max_request_bytes = (size_t)v;
		return 0;
	}
	if (strcmp(key, "max_pending_bytes") == 0) {
		if (parse_int(value, 4096, 1LL << 30, &v) < 0) {
			snprintf(err, errlen, "max_pending_bytes: '%s' is not an "
			    "integer in 4096..%lld", value, 1LL << 30);
			return -1;
		}
		cfg->max_pending_bytes = (size_t)v;
		return 0;
	}
	if (strcmp(key, "idle_timeout_ms") == 0)
		return int_key(value, 0, 86400000, &cfg->idle_timeout_ms, err,
		    errlen, key);
	if (strcmp(key, "allow_insecure_plugins") == 0) {
		if ((lv = parse_bool(value)) < 0) {
			snprintf(err, errlen, "allow_insecure_plugins: '%s' is "
			    "not true or false", value);
			return -1;
		}
		cfg->allow_insecure_plugins = lv;
		return 0;
	}
	if (strcmp(key, "log_level") == 0) {
		if ((lv = log_level_parse(value)) < 0) {
			snprintf(err, errlen, "log_level: '%s' is not one of "
			    "debug, info, warn, error", value);
			return -1;
		}
		cfg->log_level = lv;
		return 0;
	}
	if (strcmp(key, "log_format") == 0) {
		if ((lv = log_format_parse(value)) < 0) {
			snprintf(err, errlen, "log_format: '%s' is not json or "
			    "text", value);
			return -1;
		}
		cfg->log_format = lv;
		return 0;
	}
	if (strcmp(key, "admin_uids") == 0)
		return parse_uids(cfg, value, err, errlen);
	if (strcmp(key, "watch") == 0) {
		if ((lv = parse_bool(value)) < 0) {
			snprintf(err, errlen, "watch: '%s' is not true or false",
			    value);
			return -1;
		}
		cfg->watch = lv;
		return 0;
	}
	if (strcmp(key, "access_log") == 0)
		return bool_key(value, &cfg->access_log, err, errlen, key);
	if (strcmp(key, "reply_request_id") == 0)
		return bool_key(value, &cfg->reply_request_id, err, errlen, key);
	if (strcmp(key, "service") == 0)
		return service_key(cfg, value, err, errlen);
	if (strcmp(key, "reload_debounce_ms") == 0)
		return int_key(value, 0, 60000, &cfg->reload_debounce_ms, err,
		    errlen, key);
	snprintf(err, errlen, "unknown key '%s' in [host]", key);
	return -1;
}

static int
add_plugin_kv(struct config *cfg, const char *plugin, const char *key,
    const char *value)
{
	struct plugin_kv *kvs, *kv;

	for (size_t i = 0; i < cfg->n_plugin_kvs; i++) {
		kv = &cfg->plugin_kvs[i];
		if (strcmp(kv->plugin, plugin) == 0 &&
		    strcmp(kv->key, key) == 0)
			return config_set_string(&kv->value, value);
	}
	kvs = realloc(cfg->plugin_kvs, (cfg->n_plugin_kvs + 1) * sizeof(*kvs));
	if (kvs == NULL)
		return -ENOMEM;
	cfg->plugin_kvs = kvs;
	kv = &kvs[cfg->n_plugin_kvs];
	kv->plugin = strdup(plugin);
	kv->key = strdup(key);
	kv->value = strdup(value);
	if (kv->plugin == NULL || kv->key == NULL || kv->value == NULL) {
		free(kv->plugin);
		free(kv->key);
		free(kv->value);
		return -ENOMEM;
	}
	cfg->n_plugin_kvs++;
	return 0;
}

const char *
config_plugin_value(const struct config *cfg, const char *plugin,
    const char *key)
{
	for (size_t i = 0; i < cfg->n_plugin_kvs; i++) {
		const struct plugin_kv *kv = &cfg->plugin_kvs[i];

		if (strcmp(kv->plugin, plugin) == 0 &&
		    strcmp(kv->key, key) == 0)
			return kv->value;
	}
	return NULL;
}

struct parse_state {
	struct config *cfg;
	char err[512]; /* the first error, without file:line */
	int failed;
};

/* inih calls this per key; returning 0 makes ini_parse() report the line. */
static int
on_key(void *user, const char *section, const char *key, const char *value)
{
	struct parse_state *ps = user;
	char err[512];

	if (strcmp(section, "nats") == 0 || strcmp(section, "jetstream") == 0) {
		if (config_nats_set(&ps->cfg->nats, section, key,
		    value ? value : "", err, sizeof(err)) == 0)
			return 1;
		goto fail;
	}
	if (key == NULL)
		return 1; /* section header alone (INI_CALL_HANDLER_ON_NEW_SECTION) */
	if (value == NULL)
		value = "";
	if (strcmp(section, "host") == 0) {
		if (config_set_host(ps->cfg, key, value, err, sizeof(err)) == 0)
			return 1;
	} else if (strncmp(section, PLUGIN_PREFIX, strlen(PLUGIN_PREFIX)) == 0 &&
	    section[strlen(PLUGIN_PREFIX)] != '\0') {
		if (add_plugin_kv(ps->cfg, section + strlen(PLUGIN_PREFIX), key,
		    value) == 0)
			return 1;
		snprintf(err, sizeof(err), "out of memory");
	} else if (section[0] == '\0') {
		snprintf(err, sizeof(err), "key '%s' outside any section; put "
		    "it under [host]", key);
	} else {
		snprintf(err, sizeof(err), "unknown section [%s] (expected "
		    "[host], [nats], [jetstream] or [plugin:NAME])", section);
	}
fail:
	if (!ps->failed) {
		snprintf(ps->err, sizeof(ps->err), "%s", err);
		ps->failed = 1;
	}
	return 0;
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct parse_state ps;
	struct stat st;
	int line;

	memset(&ps, 0, sizeof(ps));
	ps.cfg = cfg;
	/* An indented line is an error, not a silent continuation. */
	ini_allow_multiline = false;
	if (config_set_string(&cfg->path, path) < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
		return -1;
	}
	line = ini_parse(path, on_key, &ps);
	if (line == 0) {
		if (config_nats_check(&cfg->nats, cfg->default_timeout_ms,
		    ps.err, sizeof(ps.err)) < 0) {
			snprintf(err, errlen, "%s: %s", path, ps.err);
			return -1;
		}
		return 0;
	}
	if (line == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno :
		    ENOENT));
		return -1;
	}
	if (line == -2) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (ps.failed)
		snprintf(err, errlen, "%s:%d: %s", path, line, ps.err);
	else
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] "
		    "or key = value)", path, line);
	return -1;
}

void
config_fini(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->socket);
	free(cfg->plugin_dir);
	free(cfg->service);
	for (size_t i = 0; i < cfg->n_plugin_kvs; i++) {
		free(cfg->plugin_kvs[i].plugin);
		free(cfg->plugin_kvs[i].key);
		free(cfg->plugin_kvs[i].value);
	}
	free(cfg->plugin_kvs);
	config_nats_fini(&cfg->nats);
	memset(cfg, 0, sizeof(*cfg));
}
