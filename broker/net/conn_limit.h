/* conn_limit: the limits conn enforces for the whole broker, beside the
 * lifecycle in conn.c: connections per IP address, the publish rate of one
 * client (a token bucket whose debt pauses reading the socket, so a fast
 * publisher is slowed, never dropped), the timed soft output limit, the
 * refusal counters, and log lines for refusals that can come in floods
 * (at most one a second per reason, with a count). Private to net/; the
 * counters are read through conn_module.h. Not here: max_connections and
 * the listener's pause (server.c), out_hard_limit (conn_out.c). */
#ifndef WSB_CONN_LIMIT_H
#define WSB_CONN_LIMIT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct sockaddr;
struct event;
struct ip_slot;

/* One connection's part; embedded in struct conn as `lim`. */
struct conn_lim {
	struct ip_slot *ip;        /* its address's count, when max_connections_per_ip is on */
	double tokens;             /* publish_rate_limit's bucket */
	uint64_t tokens_ms;        /* when it was last refilled */
	bool paused;               /* reading stopped until the bucket refills */
	bool pause_logged;         /* its first pause was logged */
	bool soft_armed;           /* above out_soft_limit since soft_since_ms */
	struct event *pause_timer, *soft_timer;
};

/* A new connection from sa: 0 when its address is under
 * max_connections_per_ip (it is then counted), -1 refused (logged). */
int conn_lim_accept(struct conn *c, const struct sockaddr *sa);
/* The connection is being freed: uncount it, drop its timers. */
void conn_lim_free(struct conn *c);
/* Input bytes to hand the session in one piece: small while a rate limit
 * is on, so that a pause lands between few messages. */
size_t conn_lim_piece(size_t want);
/* Its output is about to hold `pending` bytes, or has just shrunk to it
 * (after a write): starts or stops the out_soft_seconds clock. */
void conn_lim_output(struct conn *c, size_t pending);
/* The module's counters and rate-limited log, for conn.c, conn_out.c. */
void conn_lim_refused_max(const char *peer);
void conn_lim_count_hard(void);

#endif
