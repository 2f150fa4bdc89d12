/* Fuzz target for protocols/stomp_codec: the input is a byte stream parsed
 * under each version, whole and in chunks whose sizes come from the data,
 * and both cuts must agree. Every frame parsed under 1.1/1.2 is encoded
 * again (as a MESSAGE, escaped) and must parse back to the same headers and
 * body. Small limits so that the bounds are reached often. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "stomp_codec.h"

static const struct stomp_limits FUZZ_LIM = { 8, 64, 256 };

#define MAX_EVENTS 512

struct event {
	int kind;       /* command, or the error code */
	size_t nheaders;
	size_t body_len;
};

static void check_round_trip(const struct stomp_frame *f, enum stomp_version v)
{
	struct stomp_buf b = { 0 };
	if (stomp_encode_command(&b, STOMP_MESSAGE) < 0)
		abort();
	for (size_t i = 0; i < f->nheaders; i++) {
		const struct stomp_header *h = &f->headers[i];
		if (stomp_encode_header(&b, v, STOMP_MESSAGE, h->name, h->name_len, h->value,
					h->value_len) < 0)
			abort();
	}
	if (stomp_encode_body(&b, f->body, f->body_len) < 0)
		abort();
	/* the escaped form may be longer than the input's lines: lift the bound */
	struct stomp_limits lim = { f->nheaders, 4 * FUZZ_LIM.max_header_size + 8, FUZZ_LIM.max_body };
	struct stomp_parser p;
	stomp_parser_init(&p, &lim);
	stomp_parser_set_version(&p, v);
	struct stomp_frame g;
	int r = stomp_parse(&p, b.data, b.len, &g);
	/* a body holding NUL (it had content-length) ends early without one: the
	 * headers must still come back */
	if (r <= 0 || g.nheaders != f->nheaders)
		abort();
	for (size_t i = 0; i < g.nheaders; i++) {
		const struct stomp_header *x = &f->headers[i], *y = &g.headers[i];
		/* a CR that ended a value is read as part of the EOL */
		if (v == STOMP_V11 && x->value_len && x->value[x->value_len - 1] == '\r')
			continue;
		if (x->name_len != y->name_len || memcmp(x->name, y->name, x->name_len) ||
		    x->value_len != y->value_len || memcmp(x->value, y->value, x->value_len))
			abort();
	}
	if (!memchr(f->body, 0, f->body_len) &&
	    (g.body_len != f->body_len || memcmp(g.body, f->body, f->body_len)))
		abort();
	stomp_parser_free(&p);
	stomp_buf_free(&b);
}

/* Parse data fed in pieces of `chunk` bytes (0 = whole); record events. */
static size_t run(const uint8_t *data, size_t size, enum stomp_version v, size_t chunk,
		  struct event *ev, bool round_trip)
{
	struct stomp_parser p;
	stomp_parser_init(&p, &FUZZ_LIM);
	stomp_parser_set_version(&p, v);
	size_t start = 0, avail = 0, nev = 0;
	while (avail < size && nev < MAX_EVENTS) {
		size_t step = chunk ? chunk : size;
		avail = avail + step > size ? size : avail + step;
		for (;;) {
			struct stomp_frame f;
			int r = stomp_parse(&p, data + start, avail - start, &f);
			if (r == 0)
				break;
			if (r < 0) {
				ev[nev++] = (struct event){ r, 0, 0 };
				stomp_parser_free(&p);
				return nev;
			}
			if ((size_t)r > avail - start)
				abort();
			start += (size_t)r;
			if (f.cmd == STOMP_HEARTBEAT)
				continue; /* runs of EOLs may be cut differently */
			if (f.body_len > FUZZ_LIM.max_body || f.nheaders > FUZZ_LIM.max_headers)
				abort();
			ev[nev++] = (struct event){ (int)f.cmd, f.nheaders, f.body_len };
			if (round_trip && v != STOMP_V10)
				check_round_trip(&f, v);
			if (nev == MAX_EVENTS)
				break;
		}
	}
	stomp_parser_free(&p);
	return nev;
}

FUZZ_ENTRY(fuzz_stomp_codec)
{
	static struct event a[MAX_EVENTS], b[MAX_EVENTS];
	size_t chunk = size ? (size_t)(data[0] % 17) + 1 : 1;
	for (int v = STOMP_V10; v <= STOMP_V12; v++) {
		size_t na = run(data, size, (enum stomp_version)v, 0, a, true);
		size_t nb = run(data, size, (enum stomp_version)v, chunk, b, false);
		if (na != nb)
			abort();
		for (size_t i = 0; i < na; i++)
			if (a[i].kind != b[i].kind || a[i].nheaders != b[i].nheaders ||
			    a[i].body_len != b[i].body_len)
				abort();
	}
	return 0;
}
