/* conn_limit: per-address connection counts, the publish rate bucket, the
 * timed soft output limit and the refusal counters. See conn_limit.h. */
#include "conn_limit.h"
#include "conn_int.h"
#include "conn_module.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- counters ---- */

/* The module's state, in one place: counters, flood limiters and the
 * per-address table (below). */
static struct {
	uint64_t counts[CONN_REFUSAL_KINDS];
	struct log_flood flood_max, flood_ip;
	struct ip_slot **buckets;
	size_t nbuckets, nslots;
} lim_m;

uint64_t conn_refusals(enum conn_refusal why)
{
	return (unsigned)why < CONN_REFUSAL_KINDS ? lim_m.counts[why] : 0;
}

void conn_refusal_count(enum conn_refusal why)
{
	if ((unsigned)why < CONN_REFUSAL_KINDS)
		lim_m.counts[why]++;
}

void conn_lim_count_hard(void)
{
	lim_m.counts[CONN_DROPPED_HARD_LIMIT]++;
}

void conn_lim_refused_max(const char *peer)
{
	uint64_t held;
	lim_m.counts[CONN_REFUSED_MAX_CONNECTIONS]++;
	if (log_flood_ok(&lim_m.flood_max, clock_now_ms(), &held))
		log_warn(peer, NULL, "refusing connection: max_connections %zu reached; accepts paused "
			 "for %u ms at a time (%llu more refused in the last second, %llu in all)",
			 conn_m.cfg->max_connections, conn_m.cfg->accept_retry_ms,
			 (unsigned long long)held,
			 (unsigned long long)lim_m.counts[CONN_REFUSED_MAX_CONNECTIONS]);
}

/* ---- connections per address ----
 * A chained hash of the addresses that have connections, each with its
 * count; a slot goes when its last connection does. Only kept while
 * max_connections_per_ip is set. */

struct ip_slot {
	struct ip_slot *next;
	uint32_t count;
	uint8_t len;               /* 4 or 16 */
	uint8_t addr[16];
};


static size_t ip_hash(const uint8_t *a, size_t len)
{
	uint64_t h = 1469598103934665603ull;   /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ a[i]) * 1099511628211ull;
	return (size_t)(h ^ (h >> 29));
}

static void ip_grow(void)
{
	size_t n = lim_m.nbuckets ? lim_m.nbuckets * 2 : 1024;
	struct ip_slot **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;                /* keep the old table, only longer chains */
	for (size_t i = 0; i < lim_m.nbuckets; i++) {
		struct ip_slot *s, *next;
		for (s = lim_m.buckets[i]; s; s = next) {
			next = s->next;
			size_t h = ip_hash(s->addr, s->len) & (n - 1);
			s->next = nb[h];
			nb[h] = s;
		}
	}
	free(lim_m.buckets);
	lim_m.buckets = nb;
	lim_m.nbuckets = n;
}

/* The address's bytes; an IPv4-mapped IPv6 address counts as its IPv4
 * address, so a dual-stack listener cannot be used to double the limit. */
static size_t ip_key(const struct sockaddr *sa, uint8_t out[16], char *text, size_t tlen)
{
	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		inet_ntop(AF_INET, out, text, (socklen_t)tlen);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			memcpy(out, a->s6_addr + 12, 4);
			inet_ntop(AF_INET, out, text, (socklen_t)tlen);
			return 4;
		}
		memcpy(out, a->s6_addr, 16);
		inet_ntop(AF_INET6, out, text, (socklen_t)tlen);
		return 16;
	}
	return 0;
}

int conn_lim_accept(struct conn *c, const struct sockaddr *sa)
{
	size_t limit = conn_m.cfg->max_connections_per_ip;
	uint8_t key[16];
	char text[INET6_ADDRSTRLEN] = "?";
	size_t len;
	if (!limit || !(len = ip_key(sa, key, text, sizeof(text))))
		return 0;
	if (lim_m.nslots >= lim_m.nbuckets * 2)
		ip_grow();
	if (!lim_m.nbuckets)
		return 0;              /* out of memory: no limit rather than no service */
	size_t h = ip_hash(key, len) & (lim_m.nbuckets - 1);
	struct ip_slot *s;
	for (s = lim_m.buckets[h]; s; s = s->next)
		if (s->len == len && memcmp(s->addr, key, len) == 0)
			break;
	if (s && s->count >= limit) {
		uint64_t held;
		lim_m.counts[CONN_REFUSED_PER_IP]++;
		if (log_flood_ok(&lim_m.flood_ip, clock_now_ms(), &held))
			log_warn(c->peer, NULL, "refusing connection: %s has max_connections_per_ip %zu "
				 "open (%llu more refused in the last second, %llu in all)", text, limit,
				 (unsigned long long)held, (unsigned long long)lim_m.counts[CONN_REFUSED_PER_IP]);
		return -1;
	}
	if (!s) {
		if (!(s = calloc(1, sizeof(*s))))
			return 0;
		s->len = (uint8_t)len;
		memcpy(s->addr, key, len);
		s->next = lim_m.buckets[h];
		lim_m.buckets[h] = s;
		lim_m.nslots++;
	}
	s->count++;
	c->lim.ip = s;
	return 0;
}

static void ip_release(struct ip_slot *s)
{
	if (--s->count)
		return;
	size_t h = ip_hash(s->addr, s->len) & (lim_m.nbuckets - 1);
	for (struct ip_slot **pp = &lim_m.buckets[h]; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	free(s);
	if (--lim_m.nslots == 0) {       /* nothing left: give the table back */
		free(lim_m.buckets);
		lim_m.buckets = NULL;
		lim_m.nbuckets = 0;
	}
}

/* ---- the publish rate ----
 * A token bucket of publish_rate_burst messages refilled at
 * publish_rate_limit a second. A message may take it into debt (the
 * session has already parsed it); reading then stops until the debt is
 * paid. Input reaches the session in small pieces meanwhile, so the debt
 * stays a few messages deep and the client's keepalive is never at risk. */

#define RATE_PIECE 256

size_t conn_lim_piece(size_t want)
{
	return conn_m.cfg->publish_rate_limit && want > RATE_PIECE ? RATE_PIECE : want;
}

static void refill(struct conn *c, uint64_t now)
{
	const struct cfg *cfg = conn_m.cfg;
	if (!c->lim.tokens_ms) {
		c->lim.tokens = cfg->publish_rate_burst;
	} else {
		c->lim.tokens += (double)(now - c->lim.tokens_ms) * cfg->publish_rate_limit / 1000.0;
		if (c->lim.tokens > cfg->publish_rate_burst)
			c->lim.tokens = cfg->publish_rate_burst;
	}
	c->lim.tokens_ms = now;
}

/* Milliseconds until the bucket is out of debt. */
static uint64_t debt_ms(const struct conn *c)
{
	double ms = -c->lim.tokens * 1000.0 / conn_m.cfg->publish_rate_limit;
	return ms < 1 ? 1 : (uint64_t)ms + 1;
}

static void pause_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	refill(c, clock_now_ms());
	if (c->lim.tokens < 0) {
		conn_arm(c->lim.pause_timer, debt_ms(c));
		return;
	}
	c->lim.paused = false;
	if (c->phase == CONN_DEAD)
		return;
	bufferevent_enable(c->bev, EV_READ);
	/* What was read before the pause is still in the input buffer; no
	 * read event comes for it. */
	conn_process_input(c);
}

void conn_count_publish(struct conn *c)
{
	if (!conn_m.cfg->publish_rate_limit || c->phase == CONN_DEAD)
		return;
	refill(c, clock_now_ms());
	c->lim.tokens -= 1;
	if (c->lim.tokens >= 0 || c->lim.paused)
		return;
	if (!c->lim.pause_timer && !(c->lim.pause_timer = evtimer_new(conn_m.base, pause_done_cb, c)))
		return;
	c->lim.paused = true;
	lim_m.counts[CONN_PAUSED_PUBLISH_RATE]++;
	if (!c->lim.pause_logged) {
		/* One line per connection: a flat-out publisher pauses many
		 * times a second. */
		c->lim.pause_logged = true;
		log_info(c->peer, c->client_id, "publishing faster than publish_rate_limit %u/s "
			 "(burst %u): reading from it is slowed to that rate",
			 conn_m.cfg->publish_rate_limit, conn_m.cfg->publish_rate_burst);
	}
	bufferevent_disable(c->bev, EV_READ);
	conn_arm(c->lim.pause_timer, debt_ms(c));
}

bool conn_input_paused(const struct conn *c)
{
	return c->lim.paused;
}

/* ---- the timed soft output limit ----
 * Redis's client-output-buffer-limit soft/seconds: the clock starts when
 * the output first goes above out_soft_limit and stops whenever a write
 * brings it back to the limit or below (write_cb sees that through the
 * write low-water mark set at accept, flush_one after its own writes). */

static void soft_expired_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	c->lim.soft_armed = false;
	if (conn_closing(c) || conn_pending(c) <= conn_m.cfg->out_soft_limit)
		return;
	lim_m.counts[CONN_DROPPED_SOFT_LIMIT]++;
	log_warn(c->peer, c->client_id, "slow consumer: %zu bytes queued, above out_soft_limit %zu "
		 "for out_soft_seconds %u; disconnecting", conn_pending(c),
		 conn_m.cfg->out_soft_limit, conn_m.cfg->out_soft_seconds);
	conn_set_why(c, PROTO_CLOSED_ERROR);
	conn_close(c, CONN_CLOSE_POLICY, "slow consumer");
}

void conn_lim_output(struct conn *c, size_t pending)
{
	size_t soft = conn_m.cfg->out_soft_limit;
	if (!soft)
		return;
	if (pending > soft && !c->lim.soft_armed && !conn_closing(c)) {
		if (!c->lim.soft_timer &&
		    !(c->lim.soft_timer = evtimer_new(conn_m.base, soft_expired_cb, c)))
			return;
		c->lim.soft_armed = true;
		conn_arm(c->lim.soft_timer, (uint64_t)conn_m.cfg->out_soft_seconds * 1000);
		log_debug(c->peer, c->client_id, "output above out_soft_limit %zu; disconnecting in "
			  "%u s unless it drains", soft, conn_m.cfg->out_soft_seconds);
	} else if (pending <= soft && c->lim.soft_armed) {
		c->lim.soft_armed = false;
		evtimer_del(c->lim.soft_timer);
		log_debug(c->peer, c->client_id, "output back under out_soft_limit");
	}
}

/* ---- freeing ---- */

void conn_lim_free(struct conn *c)
{
	if (c->lim.ip)
		ip_release(c->lim.ip);
	c->lim.ip = NULL;
	if (c->lim.pause_timer)
		event_free(c->lim.pause_timer);
	if (c->lim.soft_timer)
		event_free(c->lim.soft_timer);
	c->lim.pause_timer = c->lim.soft_timer = NULL;
}
