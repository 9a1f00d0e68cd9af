/*
 * event.c - the subject rule of emitted events, and their release.
 */
#include "event.h"

#include <stdlib.h>
#include <string.h>

#include <cmdhost/plugin.h>

int
event_subject_valid(const char *s)
{
	size_t n = 0, tok = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (n >= CMDHOST_SUBJECT_MAX)
			return 0;
		if (c == '.') {
			if (tok == 0)
				return 0;
			tok = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '-'))
			return 0;
		tok++;
	}
	return tok > 0;
}

void
event_fini(struct event *ev)
{
	if (ev == NULL)
		return;
	free(ev->subject);
	free(ev->body);
	ev->subject = ev->body = NULL;
	ev->len = 0;
}
