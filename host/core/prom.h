/*
 * prom.h - the Prometheus text format (0.0.4) of a host.stats body,
 * shared by `cmdhost stats --prometheus` and the daemon's /metrics.
 */
#ifndef CMDHOST_PROM_H
#define CMDHOST_PROM_H

#include <json-c/json.h>

struct buf;

/*
 * Append the metrics of body (a host.stats body, borrowed; families an
 * older daemon does not report are left out) to out: every family with
 * HELP and TYPE, cmdhost_build_info{version}, each command's counters
 * and latency histogram, each plugin file's info, generation, loads and
 * cmdhost_plugin_state{file,plugin,state}, and each workflow's execution
 * counters and duration histogram (cmdhost_workflow_*{workflow}).  Returns 0, or -ENOMEM when
 * out could not grow at the end (a failed append before it leaves the
 * text short).
 */
int prom_format(struct buf *out, struct json_object *body);

#endif /* CMDHOST_PROM_H */
