/* ws: WebSocket input, control frames, keepalive and the close handshake of
 * one connection. See ws.h; the phases it moves a connection through are
 * drawn in conn_int.h. */
#include "ws.h"
#include "clock.h"
#include "conn_int.h"
#include "log.h"
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

static void send_close(struct conn *c, uint16_t code, const char *text)
{
	uint8_t payload[WS_MAX_CONTROL];
	size_t n = ws_close_payload_encode(payload, code, text);
	conn_ws_send_frame(c, WS_OP_CLOSE, payload, n);
	c->ws.close_sent = true;
}

/* The stream broke (bad frame, bad UTF-8, a limit): log it, tell the peer
 * why, and stop reading, since the rest of the stream cannot be parsed. */
static void ws_fail(struct conn *c, uint16_t code, const char *what)
{
	log_warn(c->peer, c->client_id, "%s; closing with %u", what, code);
	conn_set_why(c, PROTO_CLOSED_ERROR);
	if (!c->ws.close_sent)
		send_close(c, code, what);
	conn_enter(c, CONN_LINGERING);
}

void ws_close(struct conn *c, enum conn_close_reason reason, const char *text)
{
	if (!c->ws.close_sent)
		send_close(c, ws_close_code_for(reason), text);
	conn_enter(c, CONN_CLOSING);
	if (c->ws.close_rcvd)
		conn_enter(c, CONN_FLUSHING);
}

/* Keepalive: ping a connection idle for ws_ping_interval_ms, and drop it if
 * nothing at all arrives within ws_pong_timeout_ms (any input counts). */
static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (c->phase != CONN_OPEN)
		return;
	uint64_t now = clock_now_ms();
	uint32_t interval = conn_m.cfg->ws_ping_interval_ms;
	if (c->ws.ping_out) {
		if (now - c->ws.ping_sent_ms >= conn_m.cfg->ws_pong_timeout_ms) {
			log_info(c->peer, c->client_id, "no pong within %u ms; dropping half-open connection",
				 conn_m.cfg->ws_pong_timeout_ms);
			conn_set_why(c, PROTO_CLOSED_TIMEOUT);
			conn_enter(c, CONN_DEAD);
			return;
		}
		conn_arm(c->ws.ping_timer, conn_m.cfg->ws_pong_timeout_ms - (now - c->ws.ping_sent_ms));
		return;
	}
	uint64_t idle = now - c->last_rx_ms;
	if (idle >= interval) {
		conn_ws_send_frame(c, WS_OP_PING, "wsb", 3);
		c->ws.ping_out = true;
		c->ws.ping_sent_ms = now;
		conn_arm(c->ws.ping_timer, conn_m.cfg->ws_pong_timeout_ms);
	} else {
		conn_arm(c->ws.ping_timer, interval - idle);
	}
}

void ws_start(struct conn *c)
{
	c->last_rx_ms = clock_now_ms();
	ws_msg_init(&c->ws.msg);
	if (conn_m.cfg->ws_ping_interval_ms) {
		c->ws.ping_timer = evtimer_new(conn_m.base, ping_cb, c);
		conn_arm(c->ws.ping_timer, conn_m.cfg->ws_ping_interval_ms);
	}
}

void ws_free(struct conn *c)
{
	if (c->ws.ping_timer)
		event_free(c->ws.ping_timer);
	c->ws.ping_timer = NULL;
}

static void handle_control(struct conn *c, uint8_t opcode, uint8_t *p, size_t n)
{
	if (opcode == WS_OP_PING) {
		if (!c->ws.close_sent)
			conn_ws_send_frame(c, WS_OP_PONG, p, n);
		return;
	}
	if (opcode == WS_OP_PONG)
		return; /* liveness is noted on every read */
	uint16_t code;
	int e = ws_close_payload_check(p, n, &code);
	c->ws.close_rcvd = true;
	if (e < 0) {
		ws_fail(c, (uint16_t)-e, e == -WS_CLOSE_BAD_DATA ?
			"close reason is not valid UTF-8" : "invalid close frame");
		return;
	}
	conn_set_why(c, PROTO_CLOSED_BY_PEER);
	log_debug(c->peer, c->client_id, "peer closed with %u", code);
	if (!c->ws.close_sent)
		send_close(c, code, NULL);
	conn_enter(c, CONN_FLUSHING);
}

/* Feed one data frame's payload, streamed to the session as it arrives. */
static int ws_payload(struct conn *c, struct evbuffer *in)
{
	struct ws_state *ws = &c->ws;
	for (;;) {
		uint64_t left = ws->cur.payload_len - ws->cur_done;
		size_t avail = evbuffer_get_length(in);
		if (left && !avail)
			return 0;
		size_t take = left < avail ? (size_t)left : avail;
		if (take > sizeof(conn_m.scratch))
			take = sizeof(conn_m.scratch);
		take = conn_lim_piece(take);
		uint8_t *p = conn_m.scratch;
		if (take) {
			evbuffer_remove(in, p, take);
			ws_unmask(p, take, ws->cur.mask, ws->cur_done);
		}
		ws->cur_done += take;
		bool last = ws->cur_done == ws->cur.payload_len;
		int e = ws_msg_payload(&ws->msg, &ws->cur, p, take, last);
		if (e < 0) {
			ws_fail(c, (uint16_t)-e, "text message is not valid UTF-8");
			return -1;
		}
		if (last)
			ws->in_frame = false;
		/* While CLOSING the payload is parsed but the session hears no more. */
		if (take && c->phase == CONN_OPEN && c->session &&
		    c->proto->input(c->session, p, take) < 0)
			return -1;
		if (last)
			return 1;
		if (conn_input_paused(c))
			return 0;          /* publish_rate_limit: the rest waits */
	}
}

void ws_input(struct conn *c)
{
	struct ws_state *ws = &c->ws;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	while ((c->phase == CONN_OPEN || c->phase == CONN_CLOSING) && !conn_input_paused(c)) {
		if (ws->in_frame) {
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
		int r = ws_frame_parse_header(hdr, n, true, &ws->cur);
		if (r == 0)
			return;
		if (r < 0) {
			ws_fail(c, (uint16_t)-r, "invalid WebSocket frame");
			return;
		}
		if (ws->cur.opcode >= WS_OP_CLOSE) {
			if (avail < (size_t)r + ws->cur.payload_len)
				return;
			uint8_t p[WS_MAX_CONTROL];
			size_t plen = (size_t)ws->cur.payload_len;
			evbuffer_drain(in, (size_t)r);
			evbuffer_remove(in, p, plen);
			ws_unmask(p, plen, ws->cur.mask, 0);
			handle_control(c, ws->cur.opcode, p, plen);
			continue;
		}
		int e = ws_msg_begin_frame(&ws->msg, &ws->cur, conn_m.cfg->ws_max_message);
		if (e < 0) {
			ws_fail(c, (uint16_t)-e, e == -WS_CLOSE_TOO_BIG ?
				"message larger than ws_max_message" :
				"WebSocket fragmentation rules broken");
			return;
		}
		if (ws->msg.opcode == WS_OP_TEXT && c->proto->ws_binary_only) {
			ws_fail(c, WS_CLOSE_UNSUPPORTED, "text frames are not accepted; send binary frames");
			return;
		}
		evbuffer_drain(in, (size_t)r);
		ws->in_frame = true;
		ws->cur_done = 0;
	}
}
