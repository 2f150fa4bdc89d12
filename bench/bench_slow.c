/* bench_slow: fanout --slow, subscribers that stop reading. They subscribe
 * like the normal ones, then never read their socket while the publishers
 * run: the broker's output to them backs up, and it has to drop for them or
 * drop them (DESIGN.md: output high-water mark and hard limit) without
 * slowing the others. Their count is kept apart from every other figure.
 *
 * Whether the broker closed one can only be seen by reading: the FIN (or the
 * last bytes before it) waits behind the data the slow reader did not take,
 * and a socket that is not read reports nothing. So after the run, once the
 * publishers stopped, each slow subscriber reads what was left for it; the
 * stamped messages count as received, and a connection that ends in EOF or
 * an error was closed by the broker. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

/* The read-out ends when every slow connection ended, when nothing arrived
 * for SLOW_QUIET_NS, or after SLOW_MAX_NS. */
#define SLOW_QUIET_NS 500000000ull
#define SLOW_MAX_NS 5000000000ull

int bench_slow_alloc(struct bench_slow *s, size_t n)
{
	*s = (struct bench_slow){ .n = n };
	s->conns = calloc(n + 1, sizeof(*s->conns));
	return s->conns ? 0 : -1;
}

void bench_slow_free(struct bench_slow *s)
{
	for (size_t i = 0; s->conns && i < s->n; i++)
		bench_conn_free(s->conns[i]);
	free(s->conns);
	s->conns = NULL;
}

void bench_slow_ready(struct bench_conn *c)
{
	bench_conn_reading(c, false);
}

void bench_slow_message(struct bench_slow *s, const uint8_t *payload, size_t len, uint64_t now)
{
	uint64_t ts;
	uint32_t pub, seq;

	if (bench_stamp_read(payload, len, &ts, &pub, &seq) == 0)
		s->received++;
	s->t_last = now;
}

void bench_slow_closed(struct bench_slow *s, struct bench_conn *c, const char *why)
{
	(void)c;
	if (!why)
		return;
	s->closed++;
	if (!s->first_error[0])
		snprintf(s->first_error, sizeof(s->first_error), "%s", why);
}

void bench_slow_readout_start(struct bench_slow *s, uint64_t now)
{
	s->t_read0 = s->t_last = now;
	for (size_t i = 0; i < s->n; i++)
		if (s->conns[i])
			bench_conn_reading(s->conns[i], true);
}

bool bench_slow_readout_done(const struct bench_slow *s, uint64_t now)
{
	bool live = false;

	for (size_t i = 0; i < s->n && !live; i++)
		live = s->conns[i] && s->conns[i]->state != BC_DEAD;
	return !live || now - s->t_last > SLOW_QUIET_NS || now - s->t_read0 > SLOW_MAX_NS;
}

void bench_slow_report_json(const struct bench_slow *s, FILE *f)
{
	fprintf(f, ",\"slow\":%zu,\"slow_closed\":%" PRIu64 ",\"slow_received\":%" PRIu64,
		s->n, s->closed, s->received);
}

void bench_slow_report_human(const struct bench_slow *s, uint64_t sent_total, FILE *f)
{
	if (!s->n)
		return;
	uint64_t all = sent_total * s->n;

	fprintf(f, "  slow subscribers %zu: received %" PRIu64 " of the %" PRIu64
		" messages sent to them (%.1f%%), %" PRIu64 " closed by the broker%s%s\n",
		s->n, s->received, all, all ? 100.0 * (double)s->received / (double)all : 0.0,
		s->closed, s->first_error[0] ? ": " : "", s->first_error);
}
