# host/nats: cmdhost-nats.so, the only code linked with libnats, loaded
# by cmdhostd for [nats] and by cmdhost for --nats.  It includes the seam
# (core/nats_api.h) and no other host header.
NATS_MOD_SRCS := \
	host/nats/nats_bridge.c \
	host/nats/nats_cli.c \
	host/nats/nats_js.c \
	host/nats/nats_kv.c \
	host/nats/nats_pub.c \
	host/nats/nats_req.c \
	host/nats/nats_srv.c
