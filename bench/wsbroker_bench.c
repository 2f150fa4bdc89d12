/* wsbroker-bench: a load generator for MQTT 3.1.1 and STOMP 1.2 brokers,
 * over TCP or WebSocket, many connections on one libevent loop. See
 * bench/README.md and --help. This file holds the scenarios, the pacing of
 * publishers, the phases of a run and the report; bench_conn.c speaks the
 * protocols and bench_stats.c does the arithmetic. */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include "bench.h"

#define PUB_OUT_CAP (1024 * 1024)   /* stop writing a publisher above this */
#define STALL_NS 250000000ull       /* no delivery for this long: window reset */
#define DRAIN_QUIET_NS 1000000000ull
#define DRAIN_MAX_NS 10000000000ull
#define SETTLE_NS 1000000000ull     /* idle: wait before reading the RSS */

/* PH_SLOWREAD: --slow subscribers read out what the broker kept for them. */
enum phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_SLOWREAD, PH_HOLD, PH_DONE };

struct bench_run {
	struct bench_opts o;
	struct event_base *base;
	struct event *tick;
	struct sockaddr_storage addr;
	int addrlen;
	uint64_t clock_base;
	enum phase phase;
	int exit_code;

	struct bench_conn **pubs, **subs;   /* subs also holds idle sessions */
	size_t npub, nsub;
	size_t nplanned, nopened, nready, nsetup;
	struct bench_conn **trash;          /* closed probes, freed by the tick */
	size_t ntrash, captrash;
	struct bench_slow slow;             /* fanout --slow: outside every figure */

	uint64_t t_start, t_meas0, t_meas1, t_last_delivery;
	struct rusage ru0, ru1;
	struct bench_hist hist;
	struct bench_counts counts;
	uint64_t delivered, delivered_meas, sent_meas0, sent_meas1;
	uint64_t bad, disconnects, stalls;

	/* queue: which sequence numbers of each publisher arrived anywhere */
	uint64_t **qseen;
	size_t *qwords;
	uint64_t *qdistinct;

	/* broker RSS: idle, before connecting and once up; the others, when
	 * publishing starts and when the measured seconds end */
	uint64_t rss0, rss1;
	bool settled;
	uint64_t connects_meas;
	struct bench_conn **slots;          /* connect: live probes, by slot */
	char first_error[200];
};

static struct bench_run *g_run;

const struct bench_opts *bench_opts_of(const struct bench_run *run) { return &run->o; }
struct event_base *bench_base_of(const struct bench_run *run) { return run->base; }
uint64_t bench_clock_base(const struct bench_run *run) { return run->clock_base; }

const struct sockaddr *bench_addr_of(const struct bench_run *run, int *len)
{
	*len = run->addrlen;
	return (const struct sockaddr *)&run->addr;
}

static const char *scenario_names[] = { "fanout", "fanin", "pairs", "queue", "idle", "connect" };
static const char *proto_names[] = { "mqtt", "stomp", "mixed" };

static bool topic_scenario(const struct bench_run *r)
{
	return r->o.scenario <= BS_PAIRS;
}

/* Connections on topic t when n of them are spread round-robin over T. */
static uint32_t on_topic(size_t n, size_t T, size_t t)
{
	return n > t ? (uint32_t)((n - t + T - 1) / T) : 0;
}

static void stop_run(struct bench_run *r, int code)
{
	r->exit_code = code;
	r->phase = PH_DONE;
	event_base_loopexit(r->base, NULL);
}

/* ---- setup: open connections, a bounded number of handshakes at once ---- */

static enum bench_proto conn_proto(const struct bench_run *r, size_t k)
{
	if (r->o.proto != BP_MIXED)
		return r->o.proto;
	return k % 2 ? BP_STOMP : BP_MQTT;
}

static int open_one(struct bench_run *r, size_t slot)
{
	size_t k = r->nopened;
	struct bench_conn *c;
	size_t T = (size_t)r->o.topics;

	if (r->o.scenario == BS_CONNECT) {
		/* The slot rides in topic: a probe has none. */
		c = bench_conn_open(r, conn_proto(r, k), ROLE_PROBE, (uint32_t)k, (uint32_t)slot);
		if (c)
			r->slots[slot] = c;
	} else if (k < r->nsub) {
		enum bench_role role = r->o.scenario == BS_IDLE ? ROLE_IDLE : ROLE_SUB;
		c = bench_conn_open(r, conn_proto(r, k), role, (uint32_t)k, (uint32_t)(k % T));
		if (c && role == ROLE_SUB) {
			c->ntrack = on_topic(r->npub, T, k % T);
			c->track = c->ntrack ? calloc(c->ntrack, sizeof(*c->track)) : NULL;
			if (c->ntrack && !c->track) {
				bench_conn_free(c);
				c = NULL;
			}
		}
		if (c)
			r->subs[k] = c;
	} else if (k < r->nsub + r->slow.n) {
		size_t i = k - r->nsub;
		c = bench_conn_open(r, r->o.proto, ROLE_SLOW, (uint32_t)i, (uint32_t)(i % T));
		if (c)
			r->slow.conns[i] = c;
	} else {
		size_t i = k - r->nsub - r->slow.n;
		c = bench_conn_open(r, r->o.proto, ROLE_PUB, (uint32_t)i, (uint32_t)(i % T));
		if (c) {
			c->nsubs = on_topic(r->nsub, T, i % T);
			if (r->o.scenario == BS_QUEUE && c->nsubs)
				c->nsubs = 1;
			c->ring = calloc((size_t)r->o.window, sizeof(*c->ring));
			if (!c->ring) {
				bench_conn_free(c);
				c = NULL;
			} else {
				r->pubs[i] = c;
			}
		}
	}
	if (!c) {
		fprintf(stderr, "wsbroker-bench: cannot open connection %zu\n", k);
		return -1;
	}
	r->nopened++;
	r->nsetup++;
	return 0;
}

static void open_more(struct bench_run *r)
{
	while (r->nsetup < (size_t)r->o.parallel && r->nopened < r->nplanned)
		if (open_one(r, 0) < 0) {
			stop_run(r, 1);
			return;
		}
}

static void start_phases(struct bench_run *r, uint64_t now)
{
	r->t_start = now;
	r->t_meas0 = now + (uint64_t)(r->o.warmup * 1e9);
	r->t_meas1 = r->t_meas0 + (uint64_t)(r->o.duration * 1e9);
	r->phase = PH_WARMUP;
	if (r->o.broker_pid && r->o.scenario != BS_CONNECT)
		r->rss0 = bench_rss_bytes(r->o.broker_pid);
	if (!r->o.json && r->o.scenario != BS_CONNECT)
		fprintf(stderr, "wsbroker-bench: %zu connections ready in %.2f s, running\n",
			r->nready, (double)(now - r->clock_base) / 1e9);
}

/* ---- publishers ---- */

/* Sent and not yet delivered to all its subscribers (or not PUBACKed). */
static uint64_t pub_inflight(const struct bench_conn *p)
{
	uint64_t f = p->nsubs ? p->seq - p->low : 0;

	return p->unacked > f ? p->unacked : f;
}

/* One subscriber has seq: slide the window past what all of them have. */
static void pub_delivered(struct bench_run *r, struct bench_conn *p, uint32_t seq)
{
	uint32_t W = (uint32_t)r->o.window;

	if (seq < p->low || seq >= p->seq || seq - p->low >= W)
		return;   /* given up on (a stall), or not from this run's window */
	p->ring[seq % W]++;
	while (p->low < p->seq && p->ring[p->low % W] >= p->nsubs) {
		p->ring[p->low % W] = 0;
		p->low++;
	}
}

/* Nothing more will come for the oldest messages: forget them. */
static void pub_forgive(struct bench_run *r, struct bench_conn *p)
{
	memset(p->ring, 0, (size_t)r->o.window * sizeof(*p->ring));
	p->low = p->seq;
}

static void pub_pump(struct bench_run *r, struct bench_conn *p, uint64_t now)
{
	if ((r->phase != PH_WARMUP && r->phase != PH_MEASURE) || p->state != BC_READY)
		return;
	uint64_t inflight = pub_inflight(p), window = (uint64_t)r->o.window;

	if (inflight >= window)
		return;
	uint64_t budget = window - inflight;

	if (r->o.rate > 0) {
		uint64_t due = (uint64_t)(r->o.rate * (double)(now - r->t_start) / 1e9) + 1;
		if (p->seq >= due)
			return;
		if (due - p->seq < budget)
			budget = due - p->seq;
	}
	while (budget-- && bench_conn_pending(p) < PUB_OUT_CAP && p->seq < UINT32_MAX)
		if (bench_conn_publish(p) < 0)
			break;
}

static void pubs_pump_all(struct bench_run *r, uint64_t now)
{
	for (size_t i = 0; i < r->npub; i++) {
		struct bench_conn *p = r->pubs[i];

		if (!p)
			continue;
		/* A window that stays full with nothing arriving: messages were
		 * dropped somewhere; count it and let the publisher go on. */
		if (!p->unacked && pub_inflight(p) >= (uint64_t)r->o.window &&
		    now - p->last_progress > STALL_NS && p->nsubs) {
			pub_forgive(r, p);
			p->last_progress = now;
			r->stalls++;
		}
		pub_pump(r, p, now);
	}
}

static uint64_t total_sent(const struct bench_run *r)
{
	uint64_t n = 0;

	for (size_t i = 0; i < r->npub; i++)
		n += r->pubs[i] ? r->pubs[i]->seq : 0;
	return n;
}

static uint64_t total_expected(const struct bench_run *r)
{
	uint64_t n = 0;

	for (size_t i = 0; i < r->npub; i++)
		n += r->pubs[i] ? (uint64_t)r->pubs[i]->seq * r->pubs[i]->nsubs : 0;
	return n;
}

/* ---- callbacks from bench_conn ---- */

void bench_on_ready(struct bench_conn *c)
{
	struct bench_run *r = c->run;
	uint64_t now = bench_now_ns();

	r->nsetup--;
	if (c->role == ROLE_PROBE) {
		if (now >= r->t_meas0 && now < r->t_meas1) {
			r->connects_meas++;
			bench_hist_add(&r->hist, now - c->t_open);
		}
		bench_conn_goodbye(c);
		return;
	}
	if (c->role == ROLE_SLOW)
		bench_slow_ready(c);
	c->last_progress = now;
	r->nready++;
	open_more(r);
	if (r->nready == r->nplanned && r->phase == PH_SETUP) {
		if (r->o.scenario == BS_IDLE) {
			r->phase = PH_HOLD;
			r->t_start = now;
			if (!r->o.json)
				fprintf(stderr, "wsbroker-bench: %zu sessions up in %.2f s, holding\n",
					r->nready, (double)(now - r->clock_base) / 1e9);
		} else {
			start_phases(r, now);
			pubs_pump_all(r, now);
		}
	}
}

static void queue_note(struct bench_run *r, uint32_t pub, uint32_t seq)
{
	size_t w = seq / 64;

	if (w >= r->qwords[pub]) {
		size_t n = r->qwords[pub] ? r->qwords[pub] : 1024;
		while (n <= w)
			n *= 2;
		uint64_t *b = realloc(r->qseen[pub], n * sizeof(*b));
		if (!b) {
			r->bad++;
			return;
		}
		memset(b + r->qwords[pub], 0, (n - r->qwords[pub]) * sizeof(*b));
		r->qseen[pub] = b;
		r->qwords[pub] = n;
	}
	uint64_t bit = (uint64_t)1 << (seq % 64);

	if (r->qseen[pub][w] & bit) {
		r->counts.dup++;
		return;
	}
	r->qseen[pub][w] |= bit;
	r->qdistinct[pub]++;
}

static void track(struct bench_run *r, struct bench_conn *c, uint32_t pub, uint32_t seq)
{
	size_t T = (size_t)r->o.topics;
	uint32_t local = (uint32_t)(pub / T);

	if (pub % T != c->topic || local >= c->ntrack) {
		r->bad++;
		return;
	}
	struct bench_seq *s = &c->track[local];

	if (r->o.scenario != BS_QUEUE) {
		bench_seq_note(s, seq, &r->counts);
		return;
	}
	/* Competing consumers: gaps are normal, order per consumer is not. */
	queue_note(r, pub, seq);
	if (seq < s->next)
		r->counts.ooo++;
	else
		s->next = seq + 1;
}

void bench_on_message(struct bench_conn *c, const uint8_t *payload, size_t len, uint64_t now)
{
	struct bench_run *r = c->run;
	uint64_t ts;
	uint32_t pub, seq;

	if (c->role == ROLE_SLOW) {
		bench_slow_message(&r->slow, payload, len, now);
		return;
	}
	if (c->role != ROLE_SUB || bench_stamp_read(payload, len, &ts, &pub, &seq) < 0 ||
	    pub >= r->npub || !r->pubs[pub]) {
		r->bad++;
		return;
	}
	struct bench_conn *p = r->pubs[pub];

	p->delivered++;
	p->last_progress = now;
	r->delivered++;
	r->t_last_delivery = now;
	track(r, c, pub, seq);
	pub_delivered(r, p, seq);
	if (now >= r->t_meas0 && now < r->t_meas1) {
		uint64_t sent = r->clock_base + ts;
		r->delivered_meas++;
		bench_hist_add(&r->hist, now > sent ? now - sent : 0);
	}
	if (r->o.rate <= 0 && pub_inflight(p) <= (uint64_t)r->o.window / 2)
		pub_pump(r, p, now);
}

void bench_on_ack(struct bench_conn *c)
{
	uint64_t now = bench_now_ns();

	c->last_progress = now;
	if (c->run->o.rate <= 0 && c->unacked <= (uint64_t)c->run->o.window / 2)
		pub_pump(c->run, c, now);
}

void bench_on_writable(struct bench_conn *c)
{
	pub_pump(c->run, c, bench_now_ns());
}

static void trash_later(struct bench_run *r, struct bench_conn *c)
{
	if (r->ntrash == r->captrash) {
		size_t n = r->captrash ? r->captrash * 2 : 64;
		struct bench_conn **t = realloc(r->trash, n * sizeof(*t));
		if (!t)
			return;   /* leaked until exit; the run goes on */
		r->trash = t;
		r->captrash = n;
	}
	r->trash[r->ntrash++] = c;
}

void bench_on_closed(struct bench_conn *c, const char *why)
{
	struct bench_run *r = c->run;

	if (c->role == ROLE_PROBE) {
		size_t slot = c->topic;

		r->slots[slot] = NULL;
		trash_later(r, c);
		if (why) {
			r->nsetup--;
			r->disconnects++;
			if (!r->first_error[0])
				snprintf(r->first_error, sizeof(r->first_error), "%s", why);
		}
		/* The next probe starts now, not at the next tick. */
		if ((r->phase == PH_WARMUP || r->phase == PH_MEASURE) && open_one(r, slot) < 0)
			stop_run(r, 1);
		return;
	}
	if (!why || r->phase == PH_DONE)
		return;
	if (c->role == ROLE_SLOW && r->phase != PH_SETUP) {
		bench_slow_closed(&r->slow, c, why);
		return;
	}
	if (r->phase == PH_SETUP) {
		fprintf(stderr, "wsbroker-bench: %s connection %u failed during setup: %s\n",
			c->role == ROLE_PUB ? "publisher" : "subscriber", c->idx, why);
		stop_run(r, 1);
		return;
	}
	r->disconnects++;
	if (!r->first_error[0])
		snprintf(r->first_error, sizeof(r->first_error), "%s", why);
}

/* ---- phases ---- */

static void add_tail_losses(struct bench_run *r)
{
	size_t T = (size_t)r->o.topics;

	if (r->o.scenario == BS_QUEUE) {
		for (size_t i = 0; i < r->npub; i++)
			if (r->pubs[i] && r->pubs[i]->nsubs)
				r->counts.lost += r->pubs[i]->seq - r->qdistinct[i];
		return;
	}
	for (size_t j = 0; j < r->nsub; j++) {
		struct bench_conn *c = r->subs[j];

		for (uint32_t l = 0; c && l < c->ntrack; l++) {
			struct bench_conn *p = r->pubs[c->topic + l * T];
			if (p && p->seq > c->track[l].next)
				r->counts.lost += p->seq - c->track[l].next;
		}
	}
}

static void report(struct bench_run *r);

static void finish(struct bench_run *r)
{
	if (topic_scenario(r) || r->o.scenario == BS_QUEUE)
		add_tail_losses(r);
	report(r);
	stop_run(r, 0);
}

static void tick_connect(struct bench_run *r, uint64_t now)
{
	for (size_t i = 0; i < r->ntrash; i++)
		bench_conn_free(r->trash[i]);
	r->ntrash = 0;
	if (r->phase == PH_WARMUP && now >= r->t_meas0) {
		getrusage(RUSAGE_SELF, &r->ru0);
		r->phase = PH_MEASURE;
	}
	if (r->phase == PH_MEASURE && now >= r->t_meas1) {
		getrusage(RUSAGE_SELF, &r->ru1);
		finish(r);
		return;
	}
	for (size_t i = 0; i < (size_t)r->o.connections; i++) {
		if (r->slots[i])
			continue;
		if (open_one(r, i) < 0) {
			stop_run(r, 1);
			return;
		}
	}
}

static void tick_idle(struct bench_run *r, uint64_t now)
{
	if (r->phase != PH_HOLD)
		return;
	if (!r->settled && now - r->t_start >= SETTLE_NS) {
		r->settled = true;
		r->rss1 = r->o.broker_pid ? bench_rss_bytes(r->o.broker_pid) : 0;
		getrusage(RUSAGE_SELF, &r->ru0);
	}
	if (now - r->t_start >= SETTLE_NS + (uint64_t)(r->o.duration * 1e9)) {
		getrusage(RUSAGE_SELF, &r->ru1);
		finish(r);
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bench_run *r = arg;
	uint64_t now = bench_now_ns();

	if (r->o.scenario == BS_CONNECT) {
		tick_connect(r, now);
		return;
	}
	if (r->o.scenario == BS_IDLE) {
		tick_idle(r, now);
		return;
	}
	if (r->phase == PH_WARMUP && now >= r->t_meas0) {
		getrusage(RUSAGE_SELF, &r->ru0);
		r->sent_meas0 = total_sent(r);
		r->phase = PH_MEASURE;
	}
	if (r->phase == PH_MEASURE && now >= r->t_meas1) {
		getrusage(RUSAGE_SELF, &r->ru1);
		r->sent_meas1 = total_sent(r);
		if (r->o.broker_pid)
			r->rss1 = bench_rss_bytes(r->o.broker_pid);
		r->phase = PH_DRAIN;
		r->t_last_delivery = now;
	}
	if (r->phase == PH_WARMUP || r->phase == PH_MEASURE)
		pubs_pump_all(r, now);
	if (r->phase == PH_DRAIN &&
	    (r->delivered >= total_expected(r) || now - r->t_last_delivery > DRAIN_QUIET_NS ||
	     now - r->t_meas1 > DRAIN_MAX_NS)) {
		if (!r->slow.n) {
			finish(r);
			return;
		}
		r->phase = PH_SLOWREAD;
		bench_slow_readout_start(&r->slow, now);
	}
	if (r->phase == PH_SLOWREAD && bench_slow_readout_done(&r->slow, now))
		finish(r);
}

/* ---- the report ---- */

static double cpu_seconds(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void report_lat(const struct bench_run *r, double *p50, double *p99, double *p999,
		       double *max, double *mean)
{
	const struct bench_hist *h = &r->hist;

	*p50 = (double)bench_hist_quantile(h, 0.50) / 1e6;
	*p99 = (double)bench_hist_quantile(h, 0.99) / 1e6;
	*p999 = (double)bench_hist_quantile(h, 0.999) / 1e6;
	*max = (double)h->max / 1e6;
	*mean = h->count ? (double)h->sum / (double)h->count / 1e6 : 0;
}

/* Messages published on the slow subscribers' topics, once per subscriber. */
static uint64_t slow_expected(const struct bench_run *r)
{
	uint64_t n = 0;
	size_t T = (size_t)r->o.topics;

	for (size_t k = 0; k < r->slow.n; k++)
		for (size_t i = k % T; i < r->npub; i += T)
			n += r->pubs[i] ? r->pubs[i]->seq : 0;
	return n;
}

static void report(struct bench_run *r)
{
	const struct bench_opts *o = &r->o;
	double secs = o->duration;
	double user = cpu_seconds(&r->ru1.ru_utime) - cpu_seconds(&r->ru0.ru_utime);
	double sys = cpu_seconds(&r->ru1.ru_stime) - cpu_seconds(&r->ru0.ru_stime);
	double cpu = secs > 0 ? 100.0 * (user + sys) / secs : 0;
	double p50, p99, p999, max, mean;
	uint64_t sent = r->sent_meas1 - r->sent_meas0;
	uint64_t per_conn = 0;

	report_lat(r, &p50, &p99, &p999, &max, &mean);
	if (r->o.scenario == BS_IDLE && r->nsub && r->rss1 > r->rss0)
		per_conn = (r->rss1 - r->rss0) / r->nsub;
	if (o->json) {
		printf("{\"scenario\":\"%s\",\"proto\":\"%s\",\"transport\":\"%s\","
		       "\"publishers\":%zu,\"subscribers\":%zu,\"topics\":%ld,\"qos\":%d,"
		       "\"size\":%zu,\"rate\":%g,\"window\":%ld,\"duration\":%g,\"warmup\":%g,"
		       "\"sent\":%" PRIu64 ",\"sent_per_s\":%.1f,\"delivered\":%" PRIu64
		       ",\"delivered_per_s\":%.1f,\"sent_total\":%" PRIu64
		       ",\"delivered_total\":%" PRIu64 ",\"latency_ms\":{\"p50\":%.4f,\"p99\":%.4f,"
		       "\"p999\":%.4f,\"max\":%.4f,\"mean\":%.4f},\"lost\":%" PRIu64
		       ",\"dup\":%" PRIu64 ",\"ooo\":%" PRIu64 ",\"bad\":%" PRIu64
		       ",\"disconnects\":%" PRIu64 ",\"stalls\":%" PRIu64 ",\"connects_per_s\":%.1f,"
		       "\"broker_rss_before\":%" PRIu64 ",\"broker_rss_after\":%" PRIu64
		       ",\"broker_rss_per_conn\":%" PRIu64 ",\"cpu_pct\":%.1f,\"cpu_user_pct\":%.1f,"
		       "\"cpu_sys_pct\":%.1f",
		       scenario_names[o->scenario], proto_names[o->proto], o->ws ? "ws" : "tcp",
		       r->npub, r->nsub, o->topics, o->qos, o->size, o->rate, o->window,
		       o->duration, o->warmup, sent, (double)sent / secs, r->delivered_meas,
		       (double)r->delivered_meas / secs, total_sent(r), r->delivered, p50, p99, p999,
		       max, mean, r->counts.lost,
		       r->counts.dup, r->counts.ooo, r->bad, r->disconnects, r->stalls,
		       (double)r->connects_meas / secs, r->rss0, r->rss1, per_conn, cpu,
		       100 * user / secs, 100 * sys / secs);
		bench_slow_report_json(&r->slow, stdout);
		printf("}\n");
		fflush(stdout);
		return;
	}
	printf("%s %s/%s: %zu pub -> %zu sub, %ld topic(s), qos %d, %zu B, rate %s, window %ld, "
	       "%g s after %g s warm-up\n",
	       scenario_names[o->scenario], proto_names[o->proto], o->ws ? "ws" : "tcp", r->npub,
	       r->nsub, o->topics, o->qos, o->size, o->rate > 0 ? "fixed" : "max", o->window,
	       o->duration, o->warmup);
	if (o->scenario == BS_IDLE)
		printf("  %zu sessions; broker RSS %.1f MiB -> %.1f MiB: %" PRIu64 " B per connection%s\n",
		       r->nsub, (double)r->rss0 / 1048576, (double)r->rss1 / 1048576, per_conn,
		       o->broker_pid ? "" : " (no --broker-pid)");
	else if (o->scenario == BS_CONNECT)
		printf("  %.1f connects/s (%ld in parallel); handshake p50 %.3f ms p99 %.3f ms "
		       "p99.9 %.3f ms max %.3f ms\n",
		       (double)r->connects_meas / secs, o->connections, p50, p99, p999, max);
	else
		printf("  sent %.0f msgs/s, delivered %.0f msgs/s; latency p50 %.3f ms p99 %.3f ms "
		       "p99.9 %.3f ms max %.3f ms\n",
		       (double)sent / secs, (double)r->delivered_meas / secs, p50, p99, p999, max);
	printf("  lost %" PRIu64 " dup %" PRIu64 " ooo %" PRIu64 " bad %" PRIu64
	       " disconnects %" PRIu64 " stalls %" PRIu64 "; bench CPU %.0f%% of a core "
	       "(user %.0f%%, sys %.0f%%)%s\n",
	       r->counts.lost, r->counts.dup, r->counts.ooo, r->bad, r->disconnects, r->stalls, cpu,
	       100 * user / secs, 100 * sys / secs,
	       cpu > 90 ? ": the load generator is the bottleneck" : "");
	if (r->first_error[0])
		printf("  first error: %s\n", r->first_error);
	bench_slow_report_human(&r->slow, slow_expected(r), stdout);
	if (o->broker_pid && o->scenario != BS_IDLE && o->scenario != BS_CONNECT)
		printf("  broker RSS %.1f MiB when publishing started, %.1f MiB when the measured "
		       "seconds ended\n", (double)r->rss0 / 1048576, (double)r->rss1 / 1048576);
	fflush(stdout);
}

/* ---- main ---- */

static int resolve(struct bench_run *r)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int e = getaddrinfo(r->o.host, r->o.port, &hints, &ai);

	if (e) {
		fprintf(stderr, "wsbroker-bench: %s:%s: %s\n", r->o.host, r->o.port, gai_strerror(e));
		return -1;
	}
	memcpy(&r->addr, ai->ai_addr, ai->ai_addrlen);
	r->addrlen = (int)ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* Thousands of sockets: take the hard limit of open files. */
static void raise_nofile(size_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need + 32)
		fprintf(stderr, "wsbroker-bench: warning: open files limit %lu is below the %zu "
				"connections planned\n", (unsigned long)rl.rlim_cur, need);
}

static int run_alloc(struct bench_run *r)
{
	r->npub = (size_t)r->o.publishers;
	r->nsub = (size_t)r->o.subscribers;
	r->nplanned = r->o.scenario == BS_CONNECT ? 0 : r->npub + r->nsub + (size_t)r->o.slow;
	if (bench_slow_alloc(&r->slow, (size_t)r->o.slow) < 0)
		return -1;
	r->pubs = calloc(r->npub + 1, sizeof(*r->pubs));
	r->subs = calloc(r->nsub + 1, sizeof(*r->subs));
	r->qseen = calloc(r->npub + 1, sizeof(*r->qseen));
	r->qwords = calloc(r->npub + 1, sizeof(*r->qwords));
	r->qdistinct = calloc(r->npub + 1, sizeof(*r->qdistinct));
	r->slots = calloc((size_t)r->o.connections + 1, sizeof(*r->slots));
	r->base = event_base_new();
	return r->pubs && r->subs && r->qseen && r->qwords && r->qdistinct && r->slots && r->base
		? 0 : -1;
}

static void run_free(struct bench_run *r)
{
	for (size_t i = 0; i < r->npub; i++) {
		bench_conn_free(r->pubs ? r->pubs[i] : NULL);
		free(r->qseen ? r->qseen[i] : NULL);
	}
	for (size_t i = 0; i < r->nsub; i++)
		bench_conn_free(r->subs ? r->subs[i] : NULL);
	bench_slow_free(&r->slow);
	for (size_t i = 0; i < r->ntrash; i++)
		bench_conn_free(r->trash[i]);
	for (size_t i = 0; r->slots && i < (size_t)r->o.connections; i++)
		bench_conn_free(r->slots[i]);
	free(r->slots);
	free(r->trash);
	free(r->pubs);
	free(r->subs);
	free(r->qseen);
	free(r->qwords);
	free(r->qdistinct);
	if (r->tick)
		event_free(r->tick);
	if (r->base)
		event_base_free(r->base);
}

static void on_signal(int sig)
{
	(void)sig;
	if (g_run)
		event_base_loopbreak(g_run->base);
}

int main(int argc, char **argv)
{
	static struct bench_run run;
	struct bench_run *r = &run;
	int rc = bench_opts_parse(&r->o, argc, argv);

	if (rc)
		return rc > 0 ? 0 : 2;
	signal(SIGPIPE, SIG_IGN);
	if (resolve(r) < 0 || run_alloc(r) < 0) {
		run_free(r);
		return 1;
	}
	g_run = r;
	signal(SIGINT, on_signal);
	raise_nofile(r->nplanned + (size_t)r->o.connections);
	r->clock_base = bench_now_ns();
	if (r->o.scenario == BS_IDLE && r->o.broker_pid) {
		r->rss0 = bench_rss_bytes(r->o.broker_pid);
		if (!r->rss0)
			fprintf(stderr, "wsbroker-bench: warning: cannot read /proc/%d/status\n",
				r->o.broker_pid);
	}
	struct timeval period = { 0, r->o.rate > 0 ? 1000 : 10000 };

	r->tick = event_new(r->base, -1, EV_PERSIST, tick_cb, r);
	event_add(r->tick, &period);
	r->exit_code = 1;
	if (r->o.scenario == BS_CONNECT)
		start_phases(r, r->clock_base);
	else
		open_more(r);
	event_base_dispatch(r->base);
	if (r->phase != PH_DONE)
		fprintf(stderr, "wsbroker-bench: interrupted\n");
	rc = r->phase == PH_DONE ? r->exit_code : 1;
	run_free(r);
	return rc;
}
