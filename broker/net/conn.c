/* conn: transport state per client. See conn.h for the contract; the
 * output side (sending, shared output, output scheduling) is in conn_out.c. */
#include "conn_int.h"
#include "conn_module.h"
#include "clock.h"
#include "config.h"
#include "http.h"
#include "http_parse.h"
#include "log.h"
#include "protocol.h"
#include "ws_frame.h"
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
bool conn_closing(const struct conn *c) { return c->closing || c->dead; }
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

static void arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	event_add(ev, &tv);
}

static void hs_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	log_info(c->peer, c->client_id, "handshake not completed within %u ms; closing",
		 conn_m.cfg->handshake_timeout_ms);
	conn_set_why(c, PROTO_CLOSED_TIMEOUT);
	if (c->state == CS_WS)
		conn_close(c, CONN_CLOSE_POLICY, "handshake timeout");
	else
		conn_reap_later(c);
}

static void close_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	log_debug(c->peer, c->client_id, "close not completed within %u ms; dropping",
		  conn_m.cfg->close_timeout_ms);
	conn_reap_later(c);
}

static void sess_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (!c->dead && !c->closing && c->session && c->proto->tick)
		c->proto->tick(c->session);
}

void conn_timer(struct conn *c, uint64_t delay_ms)
{
	if (c->dead)
		return;
	if (!c->sess_timer)
		c->sess_timer = evtimer_new(conn_m.base, sess_timer_cb, c);
	if (delay_ms == 0)
		evtimer_del(c->sess_timer);
	else
		arm(c->sess_timer, delay_ms);
}

/* ---- close ---- */

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

static void free_when_flushed(struct conn *c)
{
	release_session_later(c);
	c->closing = true;
	c->flush_then_free = true;
	if (conn_pending(c) == 0)
		conn_reap_later(c);
	else if (!evtimer_pending(c->close_timer, NULL))
		arm(c->close_timer, conn_m.cfg->close_timeout_ms);
}

/* Our last bytes are queued but the peer may still be sending (half a
 * message, a large HTTP head). Closing now would answer its data with a
 * reset that can destroy our last bytes before it reads them, so: flush,
 * shut our side, discard whatever still arrives, and free on its EOF or
 * after close_timeout_ms. */
static void linger_then_free(struct conn *c)
{
	release_session_later(c);
	c->closing = true;
	c->lingering = true;
	if (!evtimer_pending(c->close_timer, NULL))
		arm(c->close_timer, conn_m.cfg->close_timeout_ms);
	if (conn_pending(c) == 0 && !c->shut_wr) {
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
		c->shut_wr = true;
	}
}

void conn_close(struct conn *c, enum conn_close_reason reason, const char *text)
{
	if (c->closing || c->dead)
		return;
	c->closing = true;
	conn_set_why(c, PROTO_CLOSED_BY_SESSION);
	release_session_later(c);
	arm(c->close_timer, conn_m.cfg->close_timeout_ms);
	if (c->state == CS_WS) {
		if (!c->close_sent)
			conn_ws_send_close(c, ws_close_code_for(reason), text);
		if (c->close_rcvd)
			free_when_flushed(c);
		/* else: wait for the peer's close frame, bounded by close_timer */
	} else {
		linger_then_free(c);
	}
}

/* A transport-level error: log it, tell a WebSocket peer why, close. */
static void transport_error(struct conn *c, uint16_t code, const char *what)
{
	log_warn(c->peer, c->client_id, "%s; closing with %u", what, code);
	conn_set_why(c, PROTO_CLOSED_ERROR);
	if (c->state == CS_WS && !c->close_sent)
		conn_ws_send_close(c, code, what);
	/* The rest of the stream can no longer be parsed: stop reading it. */
	linger_then_free(c);
}

/* ---- lifecycle ---- */

void conn_reap_later(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	c->closing = true;
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
	struct event *evs[] = {c->hs_timer, c->ping_timer, c->sess_timer, c->close_timer};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	bufferevent_free(c->bev);
	free(c->client_id);
	free(c->ws_path);
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

/* ---- WebSocket input ---- */

static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (c->dead || c->closing)
		return;
	uint64_t now = clock_now_ms();
	uint32_t interval = conn_m.cfg->ws_ping_interval_ms;
	if (c->ping_out) {
		if (now - c->ping_sent_ms >= conn_m.cfg->ws_pong_timeout_ms) {
			log_info(c->peer, c->client_id, "no pong within %u ms; dropping half-open connection",
				 conn_m.cfg->ws_pong_timeout_ms);
			conn_set_why(c, PROTO_CLOSED_TIMEOUT);
			conn_reap_later(c);
			return;
		}
		arm(c->ping_timer, conn_m.cfg->ws_pong_timeout_ms - (now - c->ping_sent_ms));
		return;
	}
	uint64_t idle = now - c->last_rx_ms;
	if (idle >= interval) {
		conn_ws_send_frame(c, WS_OP_PING, "wsb", 3);
		c->ping_out = true;
		c->ping_sent_ms = now;
		arm(c->ping_timer, conn_m.cfg->ws_pong_timeout_ms);
	} else {
		arm(c->ping_timer, interval - idle);
	}
}

static void handle_control(struct conn *c, uint8_t opcode, uint8_t *p, size_t n)
{
	if (opcode == WS_OP_PING) {
		if (!c->close_sent)
			conn_ws_send_frame(c, WS_OP_PONG, p, n);
		return;
	}
	if (opcode == WS_OP_PONG)
		return; /* liveness is noted on every read */
	uint16_t code;
	int e = ws_close_payload_check(p, n, &code);
	if (e < 0) {
		c->close_rcvd = true;
		transport_error(c, (uint16_t)-e, e == -WS_CLOSE_BAD_DATA ?
				"close reason is not valid UTF-8" : "invalid close frame");
		return;
	}
	c->close_rcvd = true;
	conn_set_why(c, PROTO_CLOSED_BY_PEER);
	log_debug(c->peer, c->client_id, "peer closed with %u", code);
	if (!c->close_sent)
		conn_ws_send_close(c, code, NULL);
	free_when_flushed(c);
}

/* Feed one data frame's payload, streamed to the session as it arrives. */
static int ws_payload(struct conn *c, struct evbuffer *in)
{
	for (;;) {
		uint64_t left = c->cur.payload_len - c->cur_done;
		size_t avail = evbuffer_get_length(in);
		if (left && !avail)
			return 0;
		size_t take = left < avail ? (size_t)left : avail;
		if (take > sizeof(conn_m.scratch))
			take = sizeof(conn_m.scratch);
		uint8_t *p = conn_m.scratch;
		if (take) {
			evbuffer_remove(in, p, take);
			ws_unmask(p, take, c->cur.mask, c->cur_done);
		}
		c->cur_done += take;
		bool last = c->cur_done == c->cur.payload_len;
		int e = ws_msg_payload(&c->wsm, &c->cur, p, take, last);
		if (e < 0) {
			transport_error(c, (uint16_t)-e, "text message is not valid UTF-8");
			return -1;
		}
		if (last)
			c->in_frame = false;
		if (take && !c->closing && c->session && c->proto->input(c->session, p, take) < 0)
			return -1;
		if (last)
			return 1;
	}
}

static void ws_input(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	while (!c->dead && !(c->closing && c->flush_then_free)) {
		if (c->in_frame) {
			if (ws_payload(c, in) <= 0)
				return;
			continue;
		}
		size_t avail = evbuffer_get_length(in);
		uint8_t hdr[WS_MAX_HEADER];
		size_t n = avail < sizeof(hdr) ? avail : sizeof(hdr);
		if (n < 2)
			return;
		evbuffer_copyout(in, hdr, n);
		int r = ws_frame_parse_header(hdr, n, true, &c->cur);
		if (r == 0)
			return;
		if (r < 0) {
			transport_error(c, (uint16_t)-r, "invalid WebSocket frame");
			return;
		}
		if (c->cur.opcode >= WS_OP_CLOSE) {
			if (avail < (size_t)r + c->cur.payload_len)
				return;
			uint8_t p[WS_MAX_CONTROL];
			size_t plen = (size_t)c->cur.payload_len;
			evbuffer_drain(in, (size_t)r);
			evbuffer_remove(in, p, plen);
			ws_unmask(p, plen, c->cur.mask, 0);
			handle_control(c, c->cur.opcode, p, plen);
			continue;
		}
		int e = ws_msg_begin_frame(&c->wsm, &c->cur, conn_m.cfg->ws_max_message);
		if (e < 0) {
			transport_error(c, (uint16_t)-e, e == -WS_CLOSE_TOO_BIG ?
					"message larger than ws_max_message" :
					"WebSocket fragmentation rules broken");
			return;
		}
		if (c->wsm.opcode == WS_OP_TEXT && c->proto->ws_binary_only) {
			transport_error(c, WS_CLOSE_UNSUPPORTED, "text frames are not accepted; send binary frames");
			return;
		}
		evbuffer_drain(in, (size_t)r);
		c->in_frame = true;
		c->cur_done = 0;
	}
}

/* ---- HTTP and sniffing ---- */

static void open_session(struct conn *c, const struct protocol *p, const char *ws_name)
{
	c->proto = p;
	c->session = p->open(c, protocol_env(p), ws_name);
	if (!c->session) {
		log_error(c->peer, NULL, "%s session could not be created", p->name);
		conn_set_why(c, PROTO_CLOSED_ERROR);
		conn_reap_later(c);
	}
}

static void http_input(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(in);
	size_t look = avail < conn_m.cfg->http_max_header + 1 ? avail : conn_m.cfg->http_max_header + 1;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
	struct http_request req;
	int r = http_parse_request(buf, look, conn_m.cfg->http_max_header, &req);
	if (r == 0)
		return;
	struct http_reply *rep = malloc(sizeof(*rep));
	if (!rep) {
		conn_reap_later(c);
		return;
	}
	if (r < 0) {
		int status = r == HTTP_PARSE_MALFORMED ? 400 : 431;
		http_error_reply(status, status == 400 ? "malformed HTTP request" :
				 "request header fields too large", rep);
	} else {
		struct http_stats st = {.connections = conn_m.nlive,
					.uptime_s = (clock_now_ms() - conn_m.started_ms) / 1000};
		http_respond(&req, conn_m.cfg, &st, rep);
	}
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add(out, rep->head, rep->head_len);
	evbuffer_add(out, rep->body, rep->body_len);
	conn_mark_dirty(c);
	if (rep->status != 101) {
		if (rep->status >= 400)
			log_info(c->peer, NULL, "HTTP %d: %s", rep->status, rep->log);
		else
			log_debug(c->peer, NULL, "HTTP %d %s", rep->status, rep->path);
		free(rep);
		linger_then_free(c);
		return;
	}
	evbuffer_drain(in, (size_t)r);
	c->websocket = true;
	c->ws_path = strdup(rep->path);
	c->state = CS_WS;
	c->last_rx_ms = clock_now_ms();
	ws_msg_init(&c->wsm);
	log_info(c->peer, NULL, "WebSocket %s on %s (%s)", rep->ws_name ? rep->ws_name : "-",
		 rep->path, rep->proto->name);
	const struct protocol *p = rep->proto;
	const char *ws_name = rep->ws_name;
	free(rep);
	if (conn_m.cfg->ws_ping_interval_ms) {
		c->ping_timer = evtimer_new(conn_m.base, ping_cb, c);
		arm(c->ping_timer, conn_m.cfg->ws_ping_interval_ms);
	}
	open_session(c, p, ws_name);
}

/* 1: an HTTP request line is starting, 0: can't tell yet, -1: not HTTP. */
static int looks_http(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n && i < 8; i++) {
		if (p[i] == ' ')
			return i > 0 ? 1 : -1;
		if (p[i] < 'A' || p[i] > 'Z')
			return -1;
	}
	return n < 8 ? 0 : -1;
}

static void sniff_input(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n = evbuffer_get_length(in);
	if (n > 64)
		n = 64;
	const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
	if (n && p[0] == 0x16) {
		log_info(c->peer, NULL, "TLS handshake on a plain listener; closing");
		conn_reap_later(c);
		return;
	}
	int http = looks_http(p, n);
	if (http > 0) {
		c->state = CS_HTTP;
		return;
	}
	int more;
	const struct protocol *pr = protocol_sniff(p, n, &more);
	if (pr) {
		c->state = CS_RAW;
		open_session(c, pr, NULL);
		return;
	}
	if ((http == 0 || more) && n < 64)
		return;
	log_info(c->peer, NULL, "unrecognised protocol in the first %zu bytes; closing", n);
	conn_reap_later(c);
}

static void raw_input(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	while (!c->closing && !c->dead && evbuffer_get_length(in)) {
		size_t n = evbuffer_remove(in, conn_m.scratch, sizeof(conn_m.scratch));
		if (c->proto->input(c->session, conn_m.scratch, n) < 0)
			return;
	}
}

static void process_input(struct conn *c)
{
	if (c->lingering) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	for (;;) {
		if (c->dead)
			return;
		enum conn_state before = c->state;
		switch (c->state) {
		case CS_SNIFF: sniff_input(c); break;
		case CS_HTTP: http_input(c); break;
		case CS_WS: ws_input(c); break;
		case CS_RAW: raw_input(c); break;
		}
		if (c->state == before || c->dead || c->closing)
			break;
	}
	if (c->closing && !c->dead) /* discard what arrives while closing */
		if (c->state != CS_WS || c->close_rcvd)
			evbuffer_drain(bufferevent_get_input(c->bev),
				       evbuffer_get_length(bufferevent_get_input(c->bev)));
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	c->last_rx_ms = clock_now_ms();
	c->ping_out = false;
	process_input(c);
}

/* bufferevent's write event, armed only while the socket is full. */
static void write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (conn_pending(c) != 0)
		return;
	c->wwait = false;
	bufferevent_disable(c->bev, EV_WRITE);
	conn_output_drained(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if (what & BEV_EVENT_EOF) {
		log_debug(c->peer, c->client_id, "peer closed the connection");
		conn_set_why(c, PROTO_CLOSED_BY_PEER);
	} else if (what & BEV_EVENT_ERROR) {
		log_info(c->peer, c->client_id, "socket error: %s",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		conn_set_why(c, PROTO_CLOSED_ERROR);
	}
	conn_reap_later(c);
}

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

static const char *kind_protocol(enum listener_kind k)
{
	return k == LISTEN_MQTT ? "mqtt" : k == LISTEN_STOMP ? "stomp" : NULL;
}

void conn_accept(int fd, const struct sockaddr *sa, int socklen, enum listener_kind kind)
{
	char peer[64];
	format_peer(peer, sizeof(peer), sa);
	if (conn_m.shutting_down || conn_m.nlive >= conn_m.cfg->max_connections) {
		log_warn(peer, NULL, "refusing connection: %s", conn_m.shutting_down ?
			 "shutting down" : "max_connections reached");
		evutil_closesocket(fd);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	memcpy(c->peer, peer, sizeof(peer));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	c->bev = bufferevent_socket_new(conn_m.base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->hs_timer = evtimer_new(conn_m.base, hs_timeout_cb, c);
	c->close_timer = evtimer_new(conn_m.base, close_timeout_cb, c);
	if (!c->bev || !c->hs_timer || !c->close_timer) {
		if (c->bev)
			bufferevent_free(c->bev);
		else
			evutil_closesocket(fd);
		if (c->hs_timer)
			event_free(c->hs_timer);
		if (c->close_timer)
			event_free(c->close_timer);
		free(c);
		return;
	}
	c->kind = kind;
	c->last_rx_ms = clock_now_ms();
	c->next = conn_m.live;
	if (conn_m.live)
		conn_m.live->prev = c;
	conn_m.live = c;
	conn_m.nlive++;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(c->bev, EV_READ);   /* writes: see conn_out.c */
	arm(c->hs_timer, conn_m.cfg->handshake_timeout_ms);
	log_debug(peer, NULL, "accepted on a %s listener", cfg_listener_kind_name(kind));
	if (kind == LISTEN_WS) {
		c->state = CS_HTTP;
	} else if (kind == LISTEN_AUTO) {
		c->state = CS_SNIFF;
	} else {
		const struct protocol *p = protocol_find(kind_protocol(kind));
		c->state = CS_RAW;
		if (!p) {
			log_error(peer, NULL, "no %s protocol in this build; closing", kind_protocol(kind));
			conn_reap_later(c);
			return;
		}
		open_session(c, p, NULL);
	}
	(void)socklen;
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
		if (c->state == CS_SNIFF || c->state == CS_HTTP) {
			free_when_flushed(c);
			continue;
		}
		if (c->session && !c->closing && c->proto->shutdown)
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
		conn_reap_later(conn_m.live);
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
}
