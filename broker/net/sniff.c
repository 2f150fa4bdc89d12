/* sniff: what a new connection is. A listener of one protocol opens its
 * session at once; a WebSocket listener reads an HTTP request; the auto
 * listener looks at the first bytes (an HTTP request line, or something a
 * protocol's sniff recognises). HTTP requests get their reply here, and an
 * upgrade hands the connection to ws.c with the session opened. */
#include "sniff.h"
#include "clock.h"
#include "conn_int.h"
#include "http.h"
#include "http_parse.h"
#include "log.h"
#include "tls.h"
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>

/* How far the first bytes are read before giving up on recognising them. */
#define SNIFF_MAX 64

static void open_session(struct conn *c, const struct protocol *p, const char *ws_name)
{
	conn_enter(c, CONN_OPEN);
	c->proto = p;
	c->session = p->open(c, protocol_env(p), ws_name);
	if (!c->session) {
		log_error(c->peer, NULL, "%s session could not be created", p->name);
		conn_set_why(c, PROTO_CLOSED_ERROR);
		conn_enter(c, CONN_DEAD);
	}
}

static const char *kind_protocol(enum listener_kind k)
{
	return k == LISTEN_MQTT ? "mqtt" : k == LISTEN_STOMP ? "stomp" : NULL;
}

void sniff_start(struct conn *c)
{
	enum listener_kind k = cfg_listener_plain_kind(c->kind);
	if (k == LISTEN_WS) {
		conn_enter(c, CONN_HTTP);
	} else if (k != LISTEN_AUTO) {
		const struct protocol *p = protocol_find(kind_protocol(k));
		if (!p) {
			log_error(c->peer, NULL, "no %s protocol in this build; closing",
				  kind_protocol(k));
			conn_enter(c, CONN_DEAD);
			return;
		}
		open_session(c, p, NULL);
	}
}

/* The reply is queued; an upgrade opens the session over WebSocket, any
 * other reply is the connection's last word. */
static void http_answered(struct conn *c, struct http_reply *rep, size_t head_len)
{
	if (rep->status != 101) {
		if (rep->status >= 400)
			log_info(c->peer, NULL, "HTTP %d: %s", rep->status, rep->log);
		else
			log_debug(c->peer, NULL, "HTTP %d %s", rep->status, rep->path);
		conn_enter(c, CONN_LINGERING);
		return;
	}
	evbuffer_drain(bufferevent_get_input(c->bev), head_len);
	c->websocket = true;
	c->ws_path = strdup(rep->path);
	log_info(c->peer, NULL, "WebSocket %s on %s (%s), Origin %s", rep->ws_name ? rep->ws_name : "-",
		 rep->path, rep->proto->name, rep->origin[0] ? rep->origin : "-");
	ws_start(c);
	open_session(c, rep->proto, rep->ws_name);
}

void sniff_http_input(struct conn *c)
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
		conn_enter(c, CONN_DEAD);
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
	http_answered(c, rep, r > 0 ? (size_t)r : 0);
	free(rep);
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

void sniff_input(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n = evbuffer_get_length(in);
	if (n > SNIFF_MAX)
		n = SNIFF_MAX;
	const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
	if (n && p[0] == 0x16) {
		/* A ClientHello's record type. Inside a tunnel it can only be
		 * nonsense; on an auto listener it starts TLS. */
		if (c->ssl || c->kind != LISTEN_AUTO || tls_start_sniffed(c) < 0) {
			log_info(c->peer, NULL, "TLS handshake %s; closing",
				 c->ssl ? "inside TLS" : "on a listener without tls_cert");
			conn_enter(c, CONN_DEAD);
		}
		return;
	}
	int http = looks_http(p, n);
	if (http > 0) {
		conn_enter(c, CONN_HTTP);
		return;
	}
	int more;
	const struct protocol *pr = protocol_sniff(p, n, &more);
	if (pr) {
		open_session(c, pr, NULL);
		return;
	}
	if ((http == 0 || more) && n < SNIFF_MAX)
		return;
	log_info(c->peer, NULL, "unrecognised protocol in the first %zu bytes; closing", n);
	conn_enter(c, CONN_DEAD);
}
