# host/cli: cmdhost, the client.  Links core for check and exec, and
# core's module search for --nats (which dlopens cmdhost-nats.so).
CLI_SRCS := \
	host/cli/cli.c \
	host/cli/cli_buf.c \
	host/cli/cli_conn.c \
	host/cli/cli_nats.c \
	host/cli/cli_plugin.c \
	host/cli/cli_print.c \
	host/cli/cli_workflow.c
