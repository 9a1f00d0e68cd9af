# host/nats: cmdhost-nats.so, the only code linked with libnats.  It
# includes the seam (core/nats_api.h) and no daemon header.
NATS_MOD_SRCS := \
	host/nats/nats_bridge.c \
	host/nats/nats_js.c \
	host/nats/nats_srv.c
