# host/core: the static library libcmdhost-core.a, linked by every program
# that parses the wire or runs plugin code (cmdhostd, cmdhost).  Nothing
# here includes from the folders above it.
CORE_SRCS := \
	host/core/api.c \
	host/core/body_text.c \
	host/core/buf.c \
	host/core/clock.c \
	host/core/config.c \
	host/core/config_nats.c \
	host/core/event.c \
	host/core/envelope.c \
	host/core/frame.c \
	host/core/generation.c \
	host/core/invocation.c \
	host/core/jscan.c \
	host/core/ipc.c \
	host/core/jsoncheck.c \
	host/core/loader.c \
	host/core/log.c \
	host/core/metrics.c \
	host/core/module.c \
	host/core/netaddr.c \
	host/core/prom.c \
	host/core/request.c \
	host/core/sha256.c \
	host/core/thread.c \
	host/core/trust.c \
	host/core/wf_def.c \
	host/core/wf_path.c
