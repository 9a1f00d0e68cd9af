/*
 * floor_transport.c - the transport floor of the benchmark: the shared
 * floor server (floor.h) answering every request line with a fixed reply
 * carrying the request's id.  It parses no JSON (it copies the text after
 * "id": up to the next ',' or '}'), so it measures what the socket, the
 * framing and the load generator cost and nothing else.
 */
#include "floor.h"

static const char reply_head[] = "{\"id\":";
static const char reply_tail[] = ",\"status\":200,\"body\":{\"msg\":\"hello\"}}\n";

/* Append the reply to one request line (without its '\n'). */
static void
answer(struct floor_conn *c, const char *line, size_t len)
{
	const char *end = line + len, *v, *p;
	size_t vlen;

	if ((p = memmem(line, len, "\"id\":", 5)) != NULL) {
		v = p + 5;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		for (p = v; p < end && *p != ',' && *p != '}'; p++)
			;
		while (p > v && (p[-1] == ' ' || p[-1] == '\t'))
			p--;
		vlen = (size_t)(p - v);
	} else {
		v = "null";
		vlen = 4;
	}
	floor_reserve(c, sizeof(reply_head) + vlen + sizeof(reply_tail));
	floor_append(c, reply_head, sizeof(reply_head) - 1);
	floor_append(c, v, vlen);
	floor_append(c, reply_tail, sizeof(reply_tail) - 1);
}

int
main(int argc, char **argv)
{
	return floor_run(argc, argv, answer);
}
