# host/worker: cmdhost-worker, one isolated plugin generation in a process
# of its own (docs/isolation.md).  Links core only.
WORKER_SRCS := \
	host/worker/worker.c
