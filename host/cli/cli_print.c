/*
 * cli_print.c - turns the daemon's reply bodies into what a person reads:
 * compact JSON lines and the tables of `list` and `stats`.  It writes only
 * to stdout (and "out of memory" to stderr) and never talks to the socket.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/buf.h"
#include "core/prom.h"

int
cli_print_json(struct json_object *obj)
{
	if (puts(json_object_to_json_string_ext(obj, CLI_PLAIN_FLAGS)) == EOF)
		return CLI_EXIT_REPLY_ERROR;
	return 0;
}

/* Member `key` of obj as a string, or `dflt` (borrowed from obj). */
static const char *
get_str(struct json_object *obj, const char *key, const char *dflt)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		return dflt;
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return dflt;
}

/*
 * Format member `key` of obj (a number) into out: an integer, a rounded
 * double, or "-" when missing or of another type.
 */
static void
fmt_num(struct json_object *obj, const char *key, char *out, size_t len)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		snprintf(out, len, "-");
	else if (json_object_is_type(v, json_type_int))
		snprintf(out, len, "%" PRId64, json_object_get_int64(v));
	else if (json_object_is_type(v, json_type_double))
		snprintf(out, len, "%.0f", json_object_get_double(v));
	else
		snprintf(out, len, "-");
}

/* Array member `key` of obj, or NULL (borrowed). */
static struct json_object *
get_array(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}

/* Raise widths[i] to the length of cell i, for n cells. */
static void
widen(int *widths, const char **cells, size_t n)
{
	size_t i, len;

	for (i = 0; i < n; i++) {
		len = strlen(cells[i]);
		if (len > (size_t)widths[i])
			widths[i] = len > INT_MAX ? INT_MAX : (int)len;
	}
}

/*
 * Print one table row with two spaces between columns: cells whose bit is
 * set in right_mask are right-aligned.  The last column is not padded.
 */
static void
print_row(const char **cells, const int *widths, size_t n,
    unsigned right_mask)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i > 0)
			fputs("  ", stdout);
		if (right_mask & (1u << i))
			printf("%*s", widths[i], cells[i]);
		else if (i + 1 == n)
			fputs(cells[i], stdout);
		else
			printf("%-*s", widths[i], cells[i]);
	}
	putchar('\n');
}

/*
 * Append "name:type[!]" for each field of `fields` (array) to b,
 * separated by ", ".  Returns 0 or -ENOMEM.
 */
static int
fields_format(struct json_object *fields, struct cli_buf *b)
{
	struct json_object *f, *req;
	size_t i, n = fields ? json_object_array_length(fields) : 0;
	const char *name, *type;
	int required;

	for (i = 0; i < n; i++) {
		f = json_object_array_get_idx(fields, i);
		name = get_str(f, "name", "?");
		type = get_str(f, "type", "any");
		required = json_object_object_get_ex(f, "required", &req) &&
		    json_object_get_boolean(req);
		if ((i > 0 && cli_buf_append(b, ", ", 2) < 0) ||
		    cli_buf_append(b, name, strlen(name)) < 0 ||
		    cli_buf_append(b, ":", 1) < 0 ||
		    cli_buf_append(b, type, strlen(type)) < 0 ||
		    (required && cli_buf_append(b, "!", 1) < 0))
			return -ENOMEM;
	}
	return 0;
}

/*
 * Print one command of a plugin, indented: "name  [flags]  summary
 * (fields)", name padded to name_w.  Returns 0 or -ENOMEM.
 */
static int
list_print_command(struct json_object *cmd, int name_w)
{
	struct json_object *flags, *fields;
	struct cli_buf line = { 0 };
	const char *s;
	size_t i, n;
	int rc = -ENOMEM;

	flags = get_array(cmd, "flags");
	fields = get_array(cmd, "fields");
	if (cli_buf_append(&line, "", 0) < 0)
		goto out;
	n = flags ? json_object_array_length(flags) : 0;
	for (i = 0; i < n; i++) {
		s = json_object_get_string(json_object_array_get_idx(flags, i));
		if (s == NULL)
			continue;
		if (cli_buf_append(&line, line.len ? "," : "  [",
		    line.len ? 1 : 3) < 0 ||
		    cli_buf_append(&line, s, strlen(s)) < 0)
			goto out;
	}
	if (line.len > 0 && cli_buf_append(&line, "]", 1) < 0)
		goto out;
	if ((s = get_str(cmd, "summary", NULL)) != NULL && *s != '\0' &&
	    (cli_buf_append(&line, "  ", 2) < 0 ||
	    cli_buf_append(&line, s, strlen(s)) < 0))
		goto out;
	if (fields != NULL && json_object_array_length(fields) > 0 &&
	    (cli_buf_append(&line, "  (", 3) < 0 ||
	    fields_format(fields, &line) < 0 ||
	    cli_buf_append(&line, ")", 1) < 0))
		goto out;
	printf("    %-*s%s\n", name_w, get_str(cmd, "name", "?"), line.data);
	rc = 0;
out:
	cli_buf_fini(&line);
	return rc;
}

#define LIST_COLS 6

/* Fill the LIST_COLS cells of a plugin row; gen is scratch for the
 * generation (the cells borrow from p and gen). */
static void
list_cells(struct json_object *p, const char **cells, char *gen,
    size_t genlen)
{
	fmt_num(p, "generation", gen, genlen);
	cells[0] = get_str(p, "name", "?");
	cells[1] = get_str(p, "version", "-");
	cells[2] = gen;
	cells[3] = get_str(p, "state", "-");
	cells[4] = get_str(p, "file", "-");
	cells[5] = get_str(p, "loaded_at", "-");
}

int
cli_print_list(struct json_object *body)
{
	static const char *head[LIST_COLS] = {
		"PLUGIN", "VERSION", "GEN", "STATE", "FILE", "LOADED_AT"
	};
	struct json_object *plugins, *p, *cmds, *c;
	const char *cells[LIST_COLS];
	int widths[LIST_COLS] = { 0 }, name_w = 0;
	size_t i, j, n, m, len;
	char gen[32];
	const char *s;

	plugins = get_array(body, "plugins");
	n = plugins ? json_object_array_length(plugins) : 0;
	if (n == 0) {
		puts("no plugins");
		return 0;
	}
	widen(widths, head, LIST_COLS);
	for (i = 0; i < n; i++) {
		p = json_object_array_get_idx(plugins, i);
		list_cells(p, cells, gen, sizeof(gen));
		widen(widths, cells, LIST_COLS);
		cmds = get_array(p, "commands");
		m = cmds ? json_object_array_length(cmds) : 0;
		for (j = 0; j < m; j++) {
			c = json_object_array_get_idx(cmds, j);
			len = strlen(get_str(c, "name", "?"));
			if (len > (size_t)name_w && len < 1024)
				name_w = (int)len;
		}
	}
	print_row(head, widths, LIST_COLS, 1u << 2);
	for (i = 0; i < n; i++) {
		p = json_object_array_get_idx(plugins, i);
		list_cells(p, cells, gen, sizeof(gen));
		print_row(cells, widths, LIST_COLS, 1u << 2);
		if ((s = get_str(p, "error", NULL)) != NULL)
			printf("    error: %s\n", s);
		cmds = get_array(p, "commands");
		m = cmds ? json_object_array_length(cmds) : 0;
		for (j = 0; j < m; j++) {
			c = json_object_array_get_idx(cmds, j);
			if (list_print_command(c, name_w) < 0) {
				fprintf(stderr, "cmdhost: out of memory\n");
				return CLI_EXIT_REPLY_ERROR;
			}
		}
	}
	return 0;
}

#define STATS_COLS 10
#define STATS_CELL 32

/* One row of the stats table: the command name borrowed from the body,
 * the numbers formatted into cells. */
struct stats_row {
	const char *name;
	char cells[STATS_COLS][STATS_CELL];
};

/* qsort comparator: rows by command name. */
static int
stats_row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct stats_row *)a)->name,
	    ((const struct stats_row *)b)->name);
}

/*
 * Fill row r from one command's stats object `c` (borrowed): calls, 2xx,
 * 4xx, 5xx (summed from "status"), timeouts, in flight, p50, p90, p99,
 * max.
 */
static void
stats_row_fill(struct stats_row *r, struct json_object *c)
{
	struct json_object *status, *lat = NULL;
	static const int classes[3] = { 2, 4, 5 };
	int64_t by_class[6] = { 0 };
	int have_status, k;

	fmt_num(c, "calls", r->cells[0], STATS_CELL);
	have_status = json_object_object_get_ex(c, "status", &status) &&
	    json_object_is_type(status, json_type_object);
	if (have_status) {
		json_object_object_foreach(status, key, val) {
			if (key[0] >= '1' && key[0] <= '5')
				by_class[key[0] - '0'] +=
				    json_object_get_int64(val);
		}
	}
	for (k = 0; k < 3; k++) {
		if (have_status)
			snprintf(r->cells[1 + k], STATS_CELL, "%" PRId64,
			    by_class[classes[k]]);
		else
			snprintf(r->cells[1 + k], STATS_CELL, "-");
	}
	fmt_num(c, "timeouts", r->cells[4], STATS_CELL);
	fmt_num(c, "in_flight", r->cells[5], STATS_CELL);
	json_object_object_get_ex(c, "latency_us", &lat);
	fmt_num(lat, "p50", r->cells[6], STATS_CELL);
	fmt_num(lat, "p90", r->cells[7], STATS_CELL);
	fmt_num(lat, "p99", r->cells[8], STATS_CELL);
	fmt_num(lat, "max", r->cells[9], STATS_CELL);
}

#define PSTATS_COLS 6

/* The per-uid limits' and stuck loops' figures of a host.stats body, one
 * line, only when one of them is not zero (older daemons have none). */
static void
print_fairness(struct json_object *body, struct json_object *conns)
{
	static const char *const keys[] = { "refused_per_uid",
	    "write_timeouts", "line_timeouts", "shed" };
	struct json_object *v;
	long long held = 0, stuck = 0, n[4] = { 0 }, any;

	if (json_object_object_get_ex(body, "buffered_bytes", &v))
		held = json_object_get_int64(v);
	if (json_object_object_get_ex(body, "stuck_threads", &v))
		stuck = json_object_get_int64(v);
	any = stuck;
	for (int i = 0; i < 4; i++) {
		if (conns != NULL && json_object_object_get_ex(conns, keys[i],
		    &v))
			n[i] = json_object_get_int64(v);
		any |= n[i];
	}
	if (any == 0)
		return;
	printf("held %lld bytes, stuck threads %lld, refused per uid %lld, "
	    "write timeouts %lld, line timeouts %lld, shed %lld\n", held,
	    stuck, n[0], n[1], n[2], n[3]);
}

/* The plugins part of host.stats: one row per plugin file. */
static int
print_plugin_stats(struct json_object *body)
{
	static const char *head[PSTATS_COLS] = {
		"PLUGIN_FILE", "VERSION", "GEN", "LOADS", "FAILURES",
		"LAST_SWAP"
	};
	struct json_object *plugins;
	const char *cells[PSTATS_COLS];
	char gen[STATS_CELL], loads[STATS_CELL], fails[STATS_CELL];
	int widths[PSTATS_COLS] = { 0 }, pass;

	if (!json_object_object_get_ex(body, "plugins", &plugins) ||
	    !json_object_is_type(plugins, json_type_object) ||
	    json_object_object_length(plugins) == 0)
		return 0;
	widen(widths, head, PSTATS_COLS);
	/* Pass 0 measures the columns, pass 1 prints. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			putchar('\n');
			print_row(head, widths, PSTATS_COLS, 0x1cu);
		}
		json_object_object_foreach(plugins, file, p) {
			cells[0] = file;
			cells[1] = get_str(p, "version", "-");
			fmt_num(p, "generation", gen, sizeof(gen));
			cells[2] = gen;
			fmt_num(p, "loads", loads, sizeof(loads));
			cells[3] = loads;
			fmt_num(p, "load_failures", fails, sizeof(fails));
			cells[4] = fails;
			cells[5] = get_str(p, "last_swap", "-");
			if (pass == 0)
				widen(widths, cells, PSTATS_COLS);
			else
				print_row(cells, widths, PSTATS_COLS, 0x1cu);
		}
	}
	return 0;
}

int
cli_print_stats(struct json_object *body)
{
	static const char *head[STATS_COLS + 1] = {
		"COMMAND", "CALLS", "2XX", "4XX", "5XX", "TIMEOUTS",
		"IN_FLIGHT", "P50_US", "P90_US", "P99_US", "MAX_US"
	};
	struct json_object *conns = NULL, *cmds;
	struct stats_row *rows = NULL;
	const char *cells[STATS_COLS + 1];
	char up[STATS_CELL], open_c[STATS_CELL], total[STATS_CELL];
	char reqs[STATS_CELL], bin[STATS_CELL], bout[STATS_CELL];
	char unav[STATS_CELL], queue[STATS_CELL];
	int widths[STATS_COLS + 1] = { 0 };
	size_t n = 0, i, k;

	fmt_num(body, "uptime_s", up, sizeof(up));
	json_object_object_get_ex(body, "connections", &conns);
	fmt_num(conns, "open", open_c, sizeof(open_c));
	fmt_num(conns, "total", total, sizeof(total));
	fmt_num(body, "requests", reqs, sizeof(reqs));
	fmt_num(body, "bytes_in", bin, sizeof(bin));
	fmt_num(body, "bytes_out", bout, sizeof(bout));
	fmt_num(body, "unavailable", unav, sizeof(unav));
	fmt_num(body, "queue_depth", queue, sizeof(queue));
	printf("uptime %s s, connections %s open / %s total, requests %s\n"
	    "bytes %s in / %s out, 503s %s, pool queue %s\n",
	    up, open_c, total, reqs, bin, bout, unav, queue);
	print_fairness(body, conns);
	if (!json_object_object_get_ex(body, "commands", &cmds) ||
	    !json_object_is_type(cmds, json_type_object) ||
	    json_object_object_length(cmds) == 0)
		return print_plugin_stats(body);
	rows = calloc((size_t)json_object_object_length(cmds), sizeof(*rows));
	if (rows == NULL) {
		fprintf(stderr, "cmdhost: out of memory\n");
		return CLI_EXIT_REPLY_ERROR;
	}
	json_object_object_foreach(cmds, name, c) {
		rows[n].name = name;
		stats_row_fill(&rows[n], c);
		n++;
	}
	qsort(rows, n, sizeof(*rows), stats_row_cmp);
	widen(widths, head, STATS_COLS + 1);
	for (i = 0; i < n; i++) {
		cells[0] = rows[i].name;
		for (k = 1; k <= STATS_COLS; k++)
			cells[k] = rows[i].cells[k - 1];
		widen(widths, cells, STATS_COLS + 1);
	}
	putchar('\n');
	print_row(head, widths, STATS_COLS + 1, ~1u);
	for (i = 0; i < n; i++) {
		cells[0] = rows[i].name;
		for (k = 1; k <= STATS_COLS; k++)
			cells[k] = rows[i].cells[k - 1];
		print_row(cells, widths, STATS_COLS + 1, ~1u);
	}
	free(rows);
	return print_plugin_stats(body);
}

int
cli_print_prometheus(struct json_object *body)
{
	struct buf b = { 0 };
	int rc = 0;

	if (prom_format(&b, body) < 0) {
		fprintf(stderr, "cmdhost: out of memory\n");
		rc = CLI_EXIT_REPLY_ERROR;
	} else if ((b.len > b.start && fwrite(b.data + b.start, 1, b.len - b.start, stdout) !=
	    b.len - b.start) ||
	    fflush(stdout) != 0)
		rc = CLI_EXIT_REPLY_ERROR;
	buf_free(&b);
	return rc;
}
