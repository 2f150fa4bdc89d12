/* bench.h: private header of wsbroker-bench, the load generator. Not part
 * of the broker: it is a client of it, speaking MQTT 3.1.1 and STOMP 1.2
 * over TCP or WebSocket on one libevent loop. Split in:
 *   bench_opts.c      the command line and --help
 *   bench_stats.c     payload stamps, sequence tracking, latency histogram
 *   bench_conn.c      one client connection: TCP/WS transport, the client
 *                     side of MQTT and STOMP (login, subscribe, publish)
 *   bench_slow.c      fanout --slow: subscribers that stop reading, and
 *                     what the broker did with them
 *   wsbroker_bench.c  options, scenarios, pacing, the report
 * The connection layer calls back into the scenario layer through the
 * bench_on_* functions. */
#ifndef WSB_BENCH_H
#define WSB_BENCH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include "stomp_codec.h"

enum bench_scenario { BS_FANOUT, BS_FANIN, BS_PAIRS, BS_QUEUE, BS_IDLE, BS_CONNECT };
enum bench_proto { BP_MQTT, BP_STOMP, BP_MIXED };
/* ROLE_SLOW: a subscriber that stops reading once subscribed (--slow). */
enum bench_role { ROLE_PUB, ROLE_SUB, ROLE_IDLE, ROLE_PROBE, ROLE_SLOW };

struct bench_opts {
	enum bench_scenario scenario;
	enum bench_proto proto;     /* BP_MIXED: alternate (idle, connect) */
	bool ws;
	const char *host;
	const char *port;
	const char *path;           /* NULL: "/mqtt" or "/stomp" */
	const char *user, *pass;
	const char *prefix;         /* topic / queue name prefix */
	long subscribers, publishers, topics, connections;
	long slow;                  /* fanout: extra subscribers that stop reading */
	int qos;
	size_t size;
	double rate;                /* msgs/s per publisher, 0 = window-bound */
	long window;
	double duration, warmup;
	long parallel;              /* handshakes in progress at once */
	int broker_pid;             /* its RSS is read before and after */
	bool json;
	bool clean;                 /* MQTT subscribers' clean-session flag; a
				     * persistent one (false) uses a stable id */
	bool receipts;              /* STOMP SENDs ask for a RECEIPT, which the
				     * window waits for like a PUBACK */
};

/* ---- bench_opts.c ---- */

/* 0 run, 1 --help printed (exit 0), -1 bad options (message printed). */
int bench_opts_parse(struct bench_opts *o, int argc, char **argv);

/* ---- bench_stats.c ---- */

uint64_t bench_now_ns(void);

/* A payload starts with 16 printable bytes (6 bits each, so a STOMP body is
 * valid UTF-8 and may travel in a WebSocket text frame): 48 bits of send
 * time (ns since the run's clock base), 16 bits of publisher, 32 of seq. */
#define BENCH_STAMP_LEN 16
#define BENCH_MAX_PUBLISHERS 65536
void bench_stamp_write(uint8_t *p, uint64_t ts, uint32_t pub, uint32_t seq);
/* 0, or -1 when the bytes are not a stamp. */
int bench_stamp_read(const uint8_t *p, size_t n, uint64_t *ts, uint32_t *pub, uint32_t *seq);

struct bench_counts {
	uint64_t lost, dup, ooo;
};
/* One (publisher, subscriber) stream: the next sequence number expected and
 * which of the 64 before it arrived, to tell a duplicate from a late one. */
struct bench_seq {
	uint32_t next;
	uint64_t seen;
};
void bench_seq_note(struct bench_seq *s, uint32_t seq, struct bench_counts *c);

/* Log-linear histogram of nanoseconds: 32 linear buckets per power of two
 * (about 3% resolution), exact below 64. */
#define BENCH_HIST_SUB 32
#define BENCH_HIST_BUCKETS (60 * BENCH_HIST_SUB)
struct bench_hist {
	uint64_t count, max, sum;
	uint64_t b[BENCH_HIST_BUCKETS];
};
void bench_hist_add(struct bench_hist *h, uint64_t v);
/* Value at quantile q (0..1]; a bucket's midpoint, never above max. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);

/* Resident set of a process from /proc/PID/status, bytes; 0 if unknown. */
uint64_t bench_rss_bytes(int pid);

/* ---- bench_conn.c ---- */

enum bench_conn_state {
	BC_TCP, BC_HTTP, BC_LOGIN, BC_SUBSCRIBE, BC_READY, BC_CLOSING, BC_DEAD
};

struct bench_run;

struct bench_conn {
	struct bench_run *run;
	struct bufferevent *bev;
	enum bench_proto proto;     /* BP_MQTT or BP_STOMP */
	enum bench_role role;
	enum bench_conn_state state;
	uint32_t idx;               /* within its role */
	uint32_t topic;
	char dest[128];             /* MQTT topic or STOMP destination */
	char ws_key[32];
	struct evbuffer *stream;    /* WebSocket payload bytes, not yet parsed */
	struct stomp_parser sp;
	uint32_t rng;               /* masks */
	uint16_t next_id;
	uint64_t t_open;

	/* publisher: a pre-encoded message patched per send */
	uint8_t *tmpl;
	size_t tmpl_len, stamp_off, id_off;
	size_t receipt_off;         /* STOMP receipt id digits to patch, 0 = none */
	uint32_t seq;               /* messages sent */
	uint32_t unacked;           /* QoS 1 PUBLISH without PUBACK, or SEND
				     * without RECEIPT */
	uint64_t delivered;         /* deliveries of its messages, all subscribers */
	/* The window: ring[seq % window] counts the subscribers that have seq;
	 * low is the oldest message not yet delivered to all of them. */
	uint32_t *ring;
	uint32_t low;
	uint64_t last_progress;
	uint32_t nsubs;             /* subscribers that get each message */

	/* subscriber: one stream per publisher on its topic (pub / topics) */
	struct bench_seq *track;
	uint32_t ntrack;
};

/* Allocate and start connecting (asynchronous). NULL on failure. */
struct bench_conn *bench_conn_open(struct bench_run *run, enum bench_proto proto,
				   enum bench_role role, uint32_t idx, uint32_t topic);
/* Send one message (publisher in BC_READY). 0, or -1. */
int bench_conn_publish(struct bench_conn *c);
/* Stop (false) or resume (true) reading the socket. */
void bench_conn_reading(struct bench_conn *c, bool on);
/* Bytes waiting in the socket's output buffer. */
size_t bench_conn_pending(const struct bench_conn *c);
/* Protocol goodbye (DISCONNECT), then wait for the broker to close. */
void bench_conn_goodbye(struct bench_conn *c);
void bench_conn_free(struct bench_conn *c);

/* ---- bench_slow.c ---- */

/* The --slow subscribers: they subscribe like the others, then stop reading
 * (a 4 KiB receive buffer, so the broker's side fills at once), so that the
 * broker has to bound what it holds for them. After the run they read out
 * what was left for them; a connection that then ends was closed by the
 * broker. Nothing of theirs enters the figures of the normal subscribers. */
#define BENCH_SLOW_RCVBUF 4096
struct bench_slow {
	struct bench_conn **conns;
	size_t n;
	uint64_t received;          /* stamped messages, during the run and the read-out */
	uint64_t closed;            /* connections the broker ended */
	uint64_t t_read0, t_last;   /* the read-out's start, its last message */
	char first_error[120];
};
int bench_slow_alloc(struct bench_slow *s, size_t n);
void bench_slow_free(struct bench_slow *s);
/* Subscribed: stop reading. */
void bench_slow_ready(struct bench_conn *c);
void bench_slow_message(struct bench_slow *s, const uint8_t *payload, size_t len, uint64_t now);
/* why is NULL after a requested goodbye. */
void bench_slow_closed(struct bench_slow *s, struct bench_conn *c, const char *why);
/* The publishers are done: read out every slow subscriber. */
void bench_slow_readout_start(struct bench_slow *s, uint64_t now);
/* Every slow connection ended, or nothing came for a while. */
bool bench_slow_readout_done(const struct bench_slow *s, uint64_t now);
/* The JSON fields (leading comma) and the human line (empty when n is 0). */
void bench_slow_report_json(const struct bench_slow *s, FILE *f);
void bench_slow_report_human(const struct bench_slow *s, uint64_t sent_total, FILE *f);

/* ---- wsbroker_bench.c: what the connection layer reports ---- */

const struct bench_opts *bench_opts_of(const struct bench_run *run);
struct event_base *bench_base_of(const struct bench_run *run);
struct sockaddr;
/* The broker's address, resolved once. */
const struct sockaddr *bench_addr_of(const struct bench_run *run, int *len);
/* Stamps carry send times relative to this (CLOCK_MONOTONIC ns). */
uint64_t bench_clock_base(const struct bench_run *run);
/* Logged in and (subscribers) subscribed. */
void bench_on_ready(struct bench_conn *c);
/* A message for a subscriber; now is the read's arrival time. */
void bench_on_message(struct bench_conn *c, const uint8_t *payload, size_t len, uint64_t now);
/* PUBACK for a QoS 1 publisher, RECEIPT for a --receipts one. */
void bench_on_ack(struct bench_conn *c);
/* The output buffer fell below its low-water mark. */
void bench_on_writable(struct bench_conn *c);
/* The connection is gone; why is NULL after a requested goodbye. The
 * callee frees it (not inside this callback chain). */
void bench_on_closed(struct bench_conn *c, const char *why);

#endif
