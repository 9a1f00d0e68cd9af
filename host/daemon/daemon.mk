# host/daemon: cmdhostd.  Links core; loads host/nats's module only when
# the configuration has a [nats] section.
DAEMON_SRCS := \
	host/daemon/admin.c \
	host/daemon/bounded.c \
	host/daemon/check.c \
	host/daemon/cmd_table.c \
	host/daemon/conn.c \
	host/daemon/crash.c \
	host/daemon/deliver.c \
	host/daemon/dispatch.c \
	host/daemon/exec_pool.c \
	host/daemon/exec_proc.c \
	host/daemon/fair.c \
	host/daemon/http.c \
	host/daemon/idem.c \
	host/daemon/idem_kv.c \
	host/daemon/listener.c \
	host/daemon/main.c \
	host/daemon/proc_spawn.c \
	host/daemon/nats_host.c \
	host/daemon/outbox.c \
	host/daemon/registry.c \
	host/daemon/sdnotify.c \
	host/daemon/reply.c \
	host/daemon/rollback.c \
	host/daemon/server.c \
	host/daemon/stuck.c \
	host/daemon/views.c \
	host/daemon/watcher.c \
	host/daemon/wf_kv.c \
	host/daemon/wf_store.c \
	host/daemon/workflow.c
