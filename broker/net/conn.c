/* conn: transport state per client. See conn.h for the contract. This
 * file keeps the accessors, the lifecycle (conn_enter and the phases drawn
 * in conn_int.h), timers, input dispatch, accept and the module; sniff.c
 * decides what a new connection is, ws.c reads WebSocket, conn_out.c
 * writes. */
#include "conn_int.h"
#include "conn_module.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "protocol.h"
#include "sniff.h"
#include "tls.h"
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <malloc.h>
#include <string.h>
#include <sys/socket.h>

struct conn_module conn_m;

/* ---- accessors ---- */

const char *conn_peer(const struct conn *c) { return c->peer; }
const char *conn_client_id(const struct conn *c) { return c->client_id; }
bool conn_is_websocket(const struct conn *c) { return c->websocket; }
const char *conn_ws_path(const struct conn *c) { return c->ws_path; }
const char *conn_tls_identity(const struct conn *c)
{
	return conn_m.cfg->tls_cert_as_username ? c->tls_identity : NULL;
}
bool conn_closing(const struct conn *c) { return c->phase >= CONN_CLOSING; }
size_t conn_count(void) { return conn_m.nlive; }

void conn_set_client_id(struct conn *c, const char *id)
{
	free(c->client_id);
	c->client_id = id ? strdup(id) : NULL;
}

size_t conn_pending(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

bool conn_congested(const struct conn *c)
{
	return conn_pending(c) > conn_m.cfg->out_high_water;
}

void conn_set_why(struct conn *c, enum proto_close_reason why)
{
	if (!c->why_set) {
		c->why = why;
		c->why_set = true;
	}
}

/* ---- timers ---- */

void conn_arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	event_add(ev, &tv);
}

static void hs_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	log_info(c->peer, c->client_id, "%shandshake not completed within %u ms; closing",
		 c->phase == CONN_TLS_HANDSHAKE ? "TLS " : "", conn_m.cfg->handshake_timeout_ms);
	conn_set_why(c, PROTO_CLOSED_TIMEOUT);
	if (c->websocket)
		conn_close(c, CONN_CLOSE_POLICY, "handshake timeout");
	else
		conn_enter(c, CONN_DEAD);
}

static void close_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	log_debug(c->peer, c->client_id, "close not completed within %u ms; dropping",
		  conn_m.cfg->close_timeout_ms);
	conn_enter(c, CONN_DEAD);
}

static void sess_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (c->phase == CONN_OPEN && c->session && c->proto->tick)
		c->proto->tick(c->session);
}

void conn_timer(struct conn *c, uint64_t delay_ms)
{
	if (c->phase == CONN_DEAD)
		return;
	if (!c->sess_timer)
		c->sess_timer = evtimer_new(conn_m.base, sess_timer_cb, c);
	if (delay_ms == 0)
		evtimer_del(c->sess_timer);
	else
		conn_arm(c->sess_timer, delay_ms);
}

/* ---- lifecycle ---- */

/* The session has said its last word: close it (will messages, router
 * clean-up) soon, outside the caller's stack, while the transport finishes
 * its goodbye on its own time. */
static void release_session_later(struct conn *c)
{
	if (!c->session || c->release_pending)
		return;
	c->release_pending = true;
	c->release_next = conn_m.release;
	conn_m.release = c;
	event_active(conn_m.reap_ev, EV_TIMEOUT, 0);
}

static void release_sessions(void)
{
	while (conn_m.release) {
		struct conn *c = conn_m.release;
		conn_m.release = c->release_next;
		if (c->session && c->proto->close)
			c->proto->close(c->session, c->why_set ? c->why : PROTO_CLOSED_ERROR);
		c->session = NULL;
	}
}

static void arm_close_timer(struct conn *c)
{
	if (!evtimer_pending(c->close_timer, NULL))
		conn_arm(c->close_timer, conn_m.cfg->close_timeout_ms);
}

/* LINGERING: our last bytes are queued but the peer may still be sending
 * (half a message, a large HTTP head). Closing now would answer its data
 * with a reset that can destroy our last bytes before it reads them, so:
 * flush, shut our side, discard whatever still arrives, and free on its EOF
 * or after close_timeout_ms. */
static void shut_write_when_flushed(struct conn *c)
{
	if (conn_pending(c) == 0 && !c->shut_wr) {
		if (c->ssl)
			tls_close_notify(c);
		else
			shutdown(c->fd, SHUT_WR);
		c->shut_wr = true;
	}
}

void conn_output_drained(struct conn *c)
{
	if (c->phase == CONN_FLUSHING)
		conn_enter(c, CONN_DEAD);
	else if (c->phase == CONN_LINGERING)
		shut_write_when_flushed(c);
}

/* Off the live list and onto the reap list; freed once the stack unwinds. */
static void reap_later(struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		conn_m.live = c->next;
	if (c->next)
		c->next->prev = c->prev;
	conn_m.nlive--;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	c->reap_next = conn_m.reap;
	conn_m.reap = c;
	event_active(conn_m.reap_ev, EV_TIMEOUT, 0);
}

#define TO(p) (1u << (p))
/* The table drawn in conn_int.h: legal[from] has a bit for each `to`. */
static const unsigned legal[] = {
	[CONN_TLS_HANDSHAKE] = TO(CONN_SNIFFING) | TO(CONN_FLUSHING) | TO(CONN_DEAD),
	[CONN_SNIFFING] = TO(CONN_TLS_HANDSHAKE) | TO(CONN_HTTP) | TO(CONN_OPEN) | TO(CONN_FLUSHING) |
			  TO(CONN_DEAD),
	[CONN_HTTP] = TO(CONN_OPEN) | TO(CONN_FLUSHING) | TO(CONN_LINGERING) | TO(CONN_DEAD),
	[CONN_OPEN] = TO(CONN_CLOSING) | TO(CONN_FLUSHING) | TO(CONN_LINGERING) | TO(CONN_DEAD),
	[CONN_CLOSING] = TO(CONN_FLUSHING) | TO(CONN_LINGERING) | TO(CONN_DEAD),
	[CONN_FLUSHING] = TO(CONN_DEAD),
	[CONN_LINGERING] = TO(CONN_FLUSHING) | TO(CONN_DEAD),
	[CONN_DEAD] = 0,
};

static const char *const phase_names[] = {
	"tls handshake", "sniffing", "http", "open", "closing", "flushing", "lingering", "dead",
};

void conn_enter(struct conn *c, enum conn_phase to)
{
	if (c->phase == to)
		return;
	if (!(legal[c->phase] & TO(to))) {
		/* A bug: the test builds (WSB_STRICT) stop on it; a production
		 * daemon keeps serving everyone else and logs it. */
		log_error(c->peer, c->client_id, "bug: connection phase %s -> %s refused",
			  phase_names[c->phase], phase_names[to]);
#ifdef WSB_STRICT
		abort();
#endif
		return;
	}
	c->phase = to;
	switch (to) {
	case CONN_TLS_HANDSHAKE:
	case CONN_SNIFFING:
	case CONN_HTTP:
	case CONN_OPEN:
		break;
	case CONN_CLOSING:
		release_session_later(c);
		arm_close_timer(c);
		break;
	case CONN_FLUSHING:
		release_session_later(c);
		if (conn_pending(c) == 0)
			conn_enter(c, CONN_DEAD);
		else
			arm_close_timer(c);
		break;
	case CONN_LINGERING:
		release_session_later(c);
		arm_close_timer(c);
		shut_write_when_flushed(c);
		break;
	case CONN_DEAD:
		reap_later(c);
		break;
	}
}

void conn_close(struct conn *c, enum conn_close_reason reason, const char *text)
{
	if (conn_closing(c))
		return;
	conn_set_why(c, PROTO_CLOSED_BY_SESSION);
	if (c->websocket)
		ws_close(c, reason, text);
	else
		conn_enter(c, CONN_LINGERING);
}

/* ---- freeing, once the stack has unwound ---- */

static void conn_destroy(struct conn *c)
{
	conn_unmark_dirty(c);
	if (c->release_pending) /* closed below instead */
		for (struct conn **pp = &conn_m.release; *pp; pp = &(*pp)->release_next)
			if (*pp == c) {
				*pp = c->release_next;
				break;
			}
	if (c->session && c->proto->close)
		c->proto->close(c->session, c->why_set ? c->why : PROTO_CLOSED_ERROR);
	c->session = NULL;
	ws_free(c);
	conn_lim_free(c);
	struct event *evs[] = {c->hs_timer, c->sess_timer, c->close_timer};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	if (c->bev)
		bufferevent_free(c->bev);
	free(c->client_id);
	free(c->ws_path);
	free(c->tls_identity);
	free(c);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	release_sessions();
	while (conn_m.reap) {
		struct conn *c = conn_m.reap;
		conn_m.reap = c->reap_next;
		conn_destroy(c);
	}
	if (conn_m.shutting_down && conn_m.nlive == 0 && conn_m.all_gone) {
		void (*fn)(void *) = conn_m.all_gone;
		conn_m.all_gone = NULL;
		fn(conn_m.all_gone_arg);
	}
}

/* ---- input and socket events ---- */

static void raw_input(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	while (c->phase == CONN_OPEN && evbuffer_get_length(in) && !c->lim.paused) {
		size_t n = evbuffer_remove(in, conn_m.scratch, conn_lim_piece(sizeof(conn_m.scratch)));
		if (c->proto->input(c->session, conn_m.scratch, n) < 0)
			return;
	}
}

/* Hand input to whoever reads it in the current phase, again whenever the
 * phase changed (an upgrade leaves frames behind the HTTP head). */
void conn_process_input(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	for (;;) {
		enum conn_phase before = c->phase;
		switch (c->phase) {
		case CONN_TLS_HANDSHAKE: return; /* nothing decrypted yet */
		case CONN_SNIFFING: sniff_input(c); break;
		case CONN_HTTP: sniff_http_input(c); break;
		case CONN_OPEN:
		case CONN_CLOSING:
			if (c->websocket)
				ws_input(c);
			else
				raw_input(c);
			break;
		case CONN_FLUSHING:
		case CONN_LINGERING:
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		case CONN_DEAD:
			return;
		}
		if (c->phase == before)
			return;
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	c->last_rx_ms = clock_now_ms();
	c->ws.ping_out = false;
	conn_process_input(c);
}

/* bufferevent's write event, armed only while the socket is full. */
static void write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	conn_lim_output(c, conn_pending(c));
	if (conn_pending(c) != 0)
		return;
	c->wwait = false;
	bufferevent_disable(c->bev, EV_WRITE);
	conn_output_drained(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->phase == CONN_TLS_HANDSHAKE)
			conn_tls_ready(c);
		return;
	}
	if (c->ssl) {
		tls_log_failure(c, what);
	} else if (what & BEV_EVENT_EOF) {
		log_debug(c->peer, c->client_id, "peer closed the connection");
		conn_set_why(c, PROTO_CLOSED_BY_PEER);
	} else if (what & BEV_EVENT_ERROR) {
		log_info(c->peer, c->client_id, "socket error: %s",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		conn_set_why(c, PROTO_CLOSED_ERROR);
	}
	conn_enter(c, CONN_DEAD);
}

void conn_setcb(struct conn *c)
{
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(c->bev, EV_READ);   /* writes: see conn_out.c */
}

void conn_tls_ready(struct conn *c)
{
	tls_handshake_done(c);
	conn_enter(c, CONN_SNIFFING);
	sniff_start(c);
	conn_process_input(c);
}

/* ---- accept ---- */

static void format_peer(char *out, size_t cap, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(s4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		snprintf(out, cap, "unknown");
	}
}

int conn_accept(int fd, const struct sockaddr *sa, int socklen, enum listener_kind kind)
{
	char peer[64];
	format_peer(peer, sizeof(peer), sa);
	if (conn_m.shutting_down) {
		log_info(peer, NULL, "refusing connection: shutting down");
		evutil_closesocket(fd);
		return CONN_ACCEPT_REFUSED;
	}
	if (conn_m.nlive >= conn_m.cfg->max_connections) {
		conn_lim_refused_max(peer);
		evutil_closesocket(fd);
		return CONN_ACCEPT_FULL;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return CONN_ACCEPT_REFUSED;
	}
	memcpy(c->peer, peer, sizeof(peer));
	if (conn_lim_accept(c, sa) < 0) {
		free(c);
		evutil_closesocket(fd);
		return CONN_ACCEPT_REFUSED;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	c->fd = fd;
	c->kind = kind;
	if (cfg_listener_is_tls(kind)) {
		c->phase = CONN_TLS_HANDSHAKE;
		c->bev = tls_accept_bev(c, fd);
	} else {
		c->phase = CONN_SNIFFING;
		c->bev = bufferevent_socket_new(conn_m.base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	c->hs_timer = evtimer_new(conn_m.base, hs_timeout_cb, c);
	c->close_timer = evtimer_new(conn_m.base, close_timeout_cb, c);
	if (!c->bev || !c->hs_timer || !c->close_timer) {
		if (!c->bev)
			evutil_closesocket(fd);
		conn_destroy(c);
		return CONN_ACCEPT_REFUSED;
	}
	/* With a soft output limit, bufferevent's writes call write_cb as soon
	 * as the output is back at the limit: that stops its clock. */
	if (conn_m.cfg->out_soft_limit)
		bufferevent_setwatermark(c->bev, EV_WRITE, conn_m.cfg->out_soft_limit, 0);
	c->last_rx_ms = clock_now_ms();
	c->next = conn_m.live;
	if (conn_m.live)
		conn_m.live->prev = c;
	conn_m.live = c;
	conn_m.nlive++;
	conn_setcb(c);
	/* The deadline covers the TLS handshake too. */
	conn_arm(c->hs_timer, conn_m.cfg->handshake_timeout_ms);
	log_debug(peer, NULL, "accepted on a %s listener", cfg_listener_kind_name(kind));
	if (c->phase == CONN_SNIFFING)
		sniff_start(c);
	(void)socklen;
	return CONN_ACCEPTED;
}

/* ---- module ---- */

void conn_module_init(struct event_base *base, const struct cfg *cfg)
{
	/* Every flush drains output buffers whose chains were allocated in
	 * the same pass; with glibc's default 128 KiB trim threshold a fan-out
	 * to many subscribers frees enough at the heap's top to shrink it with
	 * brk, only to grow it (and fault in fresh zeroed pages) on the next
	 * message: a third of the broker's time at full fan-out rate. Keep up
	 * to 32 MiB of freed heap for reuse instead. */
	mallopt(M_TRIM_THRESHOLD, 32 << 20);
	mallopt(M_TOP_PAD, 1 << 20);
	conn_m.base = base;
	conn_m.cfg = cfg;
	conn_m.reap_ev = event_new(base, -1, 0, reap_cb, NULL);
	conn_m.flush_ev = event_new(base, -1, 0, conn_flush_cb, NULL);
	conn_m.started_ms = clock_now_ms();
}


void conn_shutdown_all(void (*all_gone)(void *arg), void *arg)
{
	conn_m.shutting_down = true;
	conn_m.all_gone = all_gone;
	conn_m.all_gone_arg = arg;
	struct conn *next;
	for (struct conn *c = conn_m.live; c; c = next) {
		next = c->next;
		conn_set_why(c, PROTO_CLOSED_SHUTDOWN);
		if (!c->proto) { /* TLS, sniffing, HTTP, or lingering after an HTTP reply */
			conn_enter(c, CONN_FLUSHING);
			continue;
		}
		if (c->session && c->phase == CONN_OPEN && c->proto->shutdown)
			c->proto->shutdown(c->session);
		conn_close(c, CONN_CLOSE_GOING_AWAY, "server shutting down");
	}
	event_active(conn_m.reap_ev, EV_TIMEOUT, 0);
}

void conn_free_all(void)
{
	release_sessions();
	while (conn_m.live) {
		conn_set_why(conn_m.live, PROTO_CLOSED_SHUTDOWN);
		conn_enter(conn_m.live, CONN_DEAD);
	}
	while (conn_m.reap) {
		struct conn *c = conn_m.reap;
		conn_m.reap = c->reap_next;
		conn_destroy(c);
	}
	if (conn_m.reap_ev) {
		event_free(conn_m.reap_ev);
		conn_m.reap_ev = NULL;
	}
	if (conn_m.flush_ev) {
		event_free(conn_m.flush_ev);
		conn_m.flush_ev = NULL;
	}
	conn_set_tls(NULL);
}

void conn_set_tls(struct tls_ctx *t)
{
	if (conn_m.tls)
		tls_ctx_free(conn_m.tls);
	conn_m.tls = t;
}
