/* bench_conn: one client connection of the load generator. Transport (TCP,
 * or WebSocket with masked client frames after an HTTP upgrade) and the
 * client side of MQTT 3.1.1 and STOMP 1.2, using the broker's own pure
 * codecs. It knows nothing of scenarios: it reports to bench_on_*. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <openssl/evp.h>
#include "bench.h"
#include "mqtt_codec.h"
#include "net/ws_frame.h"

#define HTTP_MAX_HEAD 8192
#define PUB_LOW_WATER (64 * 1024)
#define SUB_ID 1
/* A publisher's receipt ids: "r" and 8 hex digits of its sequence number,
 * fixed width so each SEND patches them in place. */
#define RECEIPT_TMPL "r00000000"

static uint32_t conn_rand(struct bench_conn *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 17;
	c->rng ^= c->rng << 5;
	return c->rng;
}

static bool is_ws(const struct bench_conn *c)
{
	return bench_opts_of(c->run)->ws;
}

static void conn_fail(struct bench_conn *c, const char *why)
{
	if (c->state == BC_DEAD)
		return;
	bool asked = c->state == BC_CLOSING;

	c->state = BC_DEAD;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bench_on_closed(c, asked ? NULL : why);
}

/* One protocol unit out: as is over TCP, as one masked frame over WS. */
static int send_unit(struct bench_conn *c, const void *p, size_t n, uint8_t opcode)
{
	if (!is_ws(c))
		return bufferevent_write(c->bev, p, n);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer_iovec v;

	if (evbuffer_reserve_space(out, (ev_ssize_t)(n + WS_MAX_HEADER), &v, 1) < 1)
		return -1;
	uint32_t r = conn_rand(c);
	uint8_t mask[4] = { (uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24) };
	uint8_t *dst = v.iov_base;
	const uint8_t *src = p;
	size_t h = ws_frame_encode_header(dst, opcode, true, n, mask);

	for (size_t i = 0; i < n; i++)
		dst[h + i] = src[i] ^ mask[i & 3];
	v.iov_len = h + n;
	return evbuffer_commit_space(out, &v, 1);
}

static int send_stomp(struct bench_conn *c, struct stomp_buf *b)
{
	int r = b->data ? send_unit(c, b->data, b->len, WS_OP_TEXT) : -1;

	stomp_buf_free(b);
	return r;
}

/* ---- login and subscribe ---- */

static int mqtt_login(struct bench_conn *c)
{
	const struct bench_opts *o = bench_opts_of(c->run);
	char id[64];
	uint8_t buf[1024];
	/* A persistent subscriber keeps its id from run to run, so that the
	 * broker finds its session again. */
	bool persistent = c->role == ROLE_SUB && !o->clean;
	struct mqtt_connect cc = { .level = MQTT_LEVEL_311, .clean = !persistent, .keepalive = 0 };
	int idn = persistent ? snprintf(id, sizeof(id), "wsb-%.40s-s%u", o->prefix, c->idx)
			     : snprintf(id, sizeof(id), "wsb-%d-%c%u", (int)getpid(), "psicw"[c->role],
					c->idx);
	cc.client_id = (struct mqtt_str){ (const uint8_t *)id, (size_t)idn };
	if (o->user) {
		cc.has_username = true;
		cc.username = (struct mqtt_str){ (const uint8_t *)o->user, strlen(o->user) };
	}
	if (o->user && o->pass) {
		cc.has_password = true;
		cc.password = (struct mqtt_str){ (const uint8_t *)o->pass, strlen(o->pass) };
	}
	size_t n = mqtt_encode_connect(buf, sizeof(buf), &cc);

	return n ? send_unit(c, buf, n, WS_OP_BINARY) : -1;
}

static int stomp_login(struct bench_conn *c)
{
	const struct bench_opts *o = bench_opts_of(c->run);
	const enum stomp_command C = STOMP_CONNECT;
	struct stomp_buf b = { 0 };
	int r = stomp_encode_command(&b, C);

	r |= stomp_encode_header_str(&b, STOMP_V12, C, "accept-version", "1.2");
	r |= stomp_encode_header_str(&b, STOMP_V12, C, "host", "/");
	r |= stomp_encode_header_str(&b, STOMP_V12, C, "heart-beat", "0,0");
	if (o->user)
		r |= stomp_encode_header_str(&b, STOMP_V12, C, "login", o->user);
	if (o->pass)
		r |= stomp_encode_header_str(&b, STOMP_V12, C, "passcode", o->pass);
	r |= stomp_encode_body(&b, NULL, 0);
	if (r) {
		stomp_buf_free(&b);
		return -1;
	}
	return send_stomp(c, &b);
}

static int subscribe(struct bench_conn *c)
{
	const struct bench_opts *o = bench_opts_of(c->run);

	if (c->proto == BP_MQTT) {
		uint8_t buf[512];
		struct mqtt_str f = { (const uint8_t *)c->dest, strlen(c->dest) };
		uint8_t qos = (uint8_t)o->qos;
		size_t n = mqtt_encode_subscribe(buf, sizeof(buf), MQTT_LEVEL_311, SUB_ID, &f, &qos, 1);

		return n ? send_unit(c, buf, n, WS_OP_BINARY) : -1;
	}
	const enum stomp_command C = STOMP_SUBSCRIBE;
	struct stomp_buf b = { 0 };
	int r = stomp_encode_command(&b, C);

	r |= stomp_encode_header_str(&b, STOMP_V12, C, "destination", c->dest);
	r |= stomp_encode_header_str(&b, STOMP_V12, C, "id", "0");
	r |= stomp_encode_header_str(&b, STOMP_V12, C, "ack", "auto");
	r |= stomp_encode_header_str(&b, STOMP_V12, C, "receipt", "sub-0");
	r |= stomp_encode_body(&b, NULL, 0);
	if (r) {
		stomp_buf_free(&b);
		return -1;
	}
	return send_stomp(c, &b);
}

/* The message a publisher sends, encoded once; each send patches the stamp
 * (and the QoS 1 packet id) in place. */
static int build_template(struct bench_conn *c)
{
	const struct bench_opts *o = bench_opts_of(c->run);
	uint8_t *payload = malloc(o->size);

	if (!payload)
		return -1;
	memset(payload, 'x', o->size);
	bench_stamp_write(payload, 0, c->idx, 0);
	if (c->proto == BP_MQTT) {
		struct mqtt_publish pub = {
			.topic = { (const uint8_t *)c->dest, strlen(c->dest) },
			.payload = { payload, o->size },
			.qos = (uint8_t)o->qos,
			.id = o->qos ? 1 : 0,
		};
		size_t n = mqtt_publish_size(MQTT_LEVEL_311, pub.topic.len, o->size, pub.qos);

		c->tmpl = n ? malloc(n) : NULL;
		if (c->tmpl && mqtt_encode_publish(c->tmpl, n, MQTT_LEVEL_311, &pub) == n) {
			c->tmpl_len = n;
			c->stamp_off = n - o->size;
			c->id_off = o->qos ? c->stamp_off - 2 : 0;
		}
	} else {
		const enum stomp_command C = STOMP_SEND;
		struct stomp_buf b = { 0 };
		char len[32];
		int r = stomp_encode_command(&b, C);

		snprintf(len, sizeof(len), "%zu", o->size);
		r |= stomp_encode_header_str(&b, STOMP_V12, C, "destination", c->dest);
		r |= stomp_encode_header_str(&b, STOMP_V12, C, "content-length", len);
		if (o->receipts)
			r |= stomp_encode_header_str(&b, STOMP_V12, C, "receipt", RECEIPT_TMPL);
		r |= stomp_encode_body(&b, payload, o->size);
		const char *rid = r || !o->receipts ? NULL
				: memmem(b.data, b.len, "\nreceipt:" RECEIPT_TMPL "\n",
					 sizeof(RECEIPT_TMPL) + 9);
		if (!r && (rid || !o->receipts)) {
			c->tmpl = b.data;
			c->tmpl_len = b.len;
			c->stamp_off = b.len - 1 - o->size;
			c->receipt_off = rid ? (size_t)(rid - (const char *)b.data) + 10 : 0;
		} else {
			stomp_buf_free(&b);
		}
	}
	free(payload);
	return c->tmpl_len ? 0 : -1;
}

static void become_ready(struct bench_conn *c)
{
	if (c->role == ROLE_PUB && build_template(c) < 0) {
		conn_fail(c, "cannot encode the message");
		return;
	}
	c->state = BC_READY;
	if (c->role == ROLE_PUB)
		bufferevent_setwatermark(c->bev, EV_WRITE, PUB_LOW_WATER, 0);
	bench_on_ready(c);
}

static void logged_in(struct bench_conn *c)
{
	if (c->role == ROLE_SUB || c->role == ROLE_IDLE || c->role == ROLE_SLOW) {
		c->state = BC_SUBSCRIBE;
		if (subscribe(c) < 0)
			conn_fail(c, "cannot send SUBSCRIBE");
		return;
	}
	become_ready(c);
}

static void start_login(struct bench_conn *c)
{
	c->state = BC_LOGIN;
	if ((c->proto == BP_MQTT ? mqtt_login(c) : stomp_login(c)) < 0)
		conn_fail(c, "cannot send the login");
}

/* ---- WebSocket upgrade ---- */

static const char *ws_subprotocol(const struct bench_conn *c)
{
	return c->proto == BP_MQTT ? "mqtt" : "v12.stomp";
}

static int send_upgrade(struct bench_conn *c)
{
	const struct bench_opts *o = bench_opts_of(c->run);
	uint8_t nonce[16];

	for (int i = 0; i < 16; i += 4) {
		uint32_t r = conn_rand(c);
		memcpy(nonce + i, &r, 4);
	}
	EVP_EncodeBlock((unsigned char *)c->ws_key, nonce, 16);
	const char *path = o->path ? o->path : c->proto == BP_MQTT ? "/mqtt" : "/stomp";

	return evbuffer_add_printf(bufferevent_get_output(c->bev),
				   "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
				   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
				   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
				   path, o->host, o->port, c->ws_key, ws_subprotocol(c)) < 0 ? -1 : 0;
}

/* >0 upgraded, 0 need more, <0 failed (the connection is dead). */
static int read_upgrade(struct bench_conn *c, struct evbuffer *in)
{
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	char head[HTTP_MAX_HEAD + 1], accept[29];

	if (end.pos < 0) {
		if (evbuffer_get_length(in) <= HTTP_MAX_HEAD)
			return 0;
		conn_fail(c, "HTTP response head too long");
		return -1;
	}
	size_t n = (size_t)end.pos + 4;
	if (n > HTTP_MAX_HEAD) {
		conn_fail(c, "HTTP response head too long");
		return -1;
	}
	evbuffer_remove(in, head, n);
	head[n] = 0;
	ws_accept_compute(c->ws_key, strlen(c->ws_key), accept);
	if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
		head[strcspn(head, "\r\n")] = 0;
		conn_fail(c, head[0] ? head : "no HTTP status line");
		return -1;
	}
	if (!strstr(head, accept)) {
		conn_fail(c, "wrong or missing Sec-WebSocket-Accept");
		return -1;
	}
	if (!strcasestr(head, ws_subprotocol(c))) {
		conn_fail(c, "broker did not accept the WebSocket subprotocol");
		return -1;
	}
	start_login(c);
	return c->state == BC_DEAD ? -1 : 1;
}

/* Move whole frames' payloads from the socket into c->stream. 0, or -1 when
 * the connection ended. */
static int read_ws(struct bench_conn *c, struct evbuffer *in)
{
	for (;;) {
		size_t n = evbuffer_get_length(in), hn = n < WS_MAX_HEADER ? n : WS_MAX_HEADER;
		uint8_t h[WS_MAX_HEADER], ctl[WS_MAX_CONTROL];
		struct ws_frame f;

		if (n < 2)
			return 0;
		evbuffer_copyout(in, h, hn);
		int r = ws_frame_parse_header(h, hn, false, &f);
		if (r == 0)
			return 0;
		if (r < 0 || f.masked) {
			conn_fail(c, "bad WebSocket frame from broker");
			return -1;
		}
		if (n - (size_t)r < f.payload_len)
			return 0;
		evbuffer_drain(in, (size_t)r);
		switch (f.opcode) {
		case WS_OP_CLOSE:
			conn_fail(c, "WebSocket close from broker");
			return -1;
		case WS_OP_PING:
			evbuffer_remove(in, ctl, (size_t)f.payload_len);
			send_unit(c, ctl, (size_t)f.payload_len, WS_OP_PONG);
			break;
		case WS_OP_PONG:
			evbuffer_drain(in, (size_t)f.payload_len);
			break;
		default:
			evbuffer_remove_buffer(in, c->stream, (size_t)f.payload_len);
		}
	}
}

/* ---- incoming protocol units ---- */

static void mqtt_packet_in(struct bench_conn *c, const struct mqtt_packet *pk, uint64_t now)
{
	switch (pk->type) {
	case MQTT_CONNACK:
		if (pk->u.connack.code != MQTT_CONNACK_ACCEPTED)
			conn_fail(c, "CONNACK refused the login");
		else if (c->state == BC_LOGIN)
			logged_in(c);
		break;
	case MQTT_SUBACK:
		if (pk->u.suback_codes.len < 1 || pk->u.suback_codes.p[0] == MQTT_SUBACK_FAILURE)
			conn_fail(c, "SUBACK refused the subscription");
		else if (c->state == BC_SUBSCRIBE)
			become_ready(c);
		break;
	case MQTT_PUBLISH:
		if (pk->u.publish.qos == 1) {
			uint8_t ack[4];
			size_t n = mqtt_encode_ack(ack, sizeof(ack), MQTT_LEVEL_311, MQTT_PUBACK, pk->id);
			send_unit(c, ack, n, WS_OP_BINARY);
		}
		bench_on_message(c, pk->u.publish.payload.p, pk->u.publish.payload.len, now);
		break;
	case MQTT_PUBACK:
		if (c->unacked)
			c->unacked--;
		bench_on_ack(c);
		break;
	default:
		break;
	}
}

static void read_mqtt(struct bench_conn *c, struct evbuffer *src, uint64_t now)
{
	size_t n = evbuffer_get_length(src), off = 0;
	const uint8_t *p = n ? evbuffer_pullup(src, (ev_ssize_t)n) : NULL;
	const struct mqtt_parse_opts po = { .level = MQTT_LEVEL_311, .max_packet = 0 };

	while (off < n && c->state != BC_DEAD) {
		struct mqtt_packet pk;
		int r = mqtt_parse(&po, p + off, n - off, &pk);

		if (r == 0)
			break;
		if (r < 0) {
			conn_fail(c, mqtt_strerror(r));
			return;
		}
		off += (size_t)r;
		mqtt_packet_in(c, &pk, now);
	}
	evbuffer_drain(src, off);
}

static void stomp_frame_in(struct bench_conn *c, const struct stomp_frame *f, uint64_t now)
{
	static char why[160];

	switch (f->cmd) {
	case STOMP_CONNECTED:
		stomp_parser_set_version(&c->sp, STOMP_V12);
		if (c->state == BC_LOGIN)
			logged_in(c);
		break;
	case STOMP_RECEIPT:
		if (c->state == BC_SUBSCRIBE) {
			become_ready(c);
		} else if (c->role == ROLE_PUB && c->receipt_off) {
			if (c->unacked)
				c->unacked--;
			bench_on_ack(c);
		}
		break;
	case STOMP_MESSAGE:
		bench_on_message(c, f->body, f->body_len, now);
		break;
	case STOMP_ERROR: {
		const char *m = stomp_frame_get(f, "message");
		snprintf(why, sizeof(why), "STOMP ERROR: %s", m ? m : "(no message)");
		conn_fail(c, why);
		break;
	}
	default:
		break;
	}
}

static void read_stomp(struct bench_conn *c, struct evbuffer *src, uint64_t now)
{
	size_t n = evbuffer_get_length(src), off = 0;
	const uint8_t *p = n ? evbuffer_pullup(src, (ev_ssize_t)n) : NULL;

	while (off < n && c->state != BC_DEAD) {
		struct stomp_frame f;
		int r = stomp_parse(&c->sp, p + off, n - off, &f);

		if (r == 0)
			break;
		if (r < 0) {
			conn_fail(c, stomp_strerror(r));
			return;
		}
		off += (size_t)r;
		stomp_frame_in(c, &f, now);
	}
	evbuffer_drain(src, off);
}

/* ---- libevent callbacks ---- */

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct bench_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint64_t now = bench_now_ns();

	if (c->state == BC_HTTP && read_upgrade(c, in) <= 0)
		return;
	if (is_ws(c) && read_ws(c, in) < 0)
		return;
	struct evbuffer *src = is_ws(c) ? c->stream : in;

	if (c->proto == BP_MQTT)
		read_mqtt(c, src, now);
	else
		read_stomp(c, src, now);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct bench_conn *c = arg;

	if (c->role == ROLE_PUB && c->state == BC_READY)
		bench_on_writable(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct bench_conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (is_ws(c)) {
			c->state = BC_HTTP;
			if (send_upgrade(c) < 0)
				conn_fail(c, "cannot send the upgrade request");
		} else {
			start_login(c);
		}
		return;
	}
	if (what & BEV_EVENT_EOF)
		conn_fail(c, "connection closed by broker");
	else if (what & BEV_EVENT_ERROR)
		conn_fail(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* A slow subscriber's socket gets a small receive buffer before it connects
 * (the window is settled in the handshake), so that its side fills at once
 * and the backlog piles up in the broker, where it has to be bounded. */
static evutil_socket_t slow_socket(const struct sockaddr *addr)
{
	int rcv = BENCH_SLOW_RCVBUF;
	evutil_socket_t fd = socket(addr->sa_family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) < 0 ||
	    evutil_make_socket_nonblocking(fd) < 0) {
		evutil_closesocket(fd);
		return -1;
	}
	return fd;
}

struct bench_conn *bench_conn_open(struct bench_run *run, enum bench_proto proto,
				   enum bench_role role, uint32_t idx, uint32_t topic)
{
	const struct bench_opts *o = bench_opts_of(run);
	struct bench_conn *c = calloc(1, sizeof(*c));
	static const struct stomp_limits lim = { 64, 8192, 64u << 20 };
	int alen;
	const struct sockaddr *addr = bench_addr_of(run, &alen);

	if (!c)
		return NULL;
	c->run = run;
	c->proto = proto;
	c->role = role;
	c->idx = idx;
	c->topic = topic;
	c->rng = (uint32_t)bench_now_ns() ^ (idx * 2654435761u) ^ ((uint32_t)role << 28) ^ 1;
	c->next_id = 1;
	c->t_open = bench_now_ns();
	if (proto == BP_MQTT)
		snprintf(c->dest, sizeof(c->dest), "%s/t%u", o->prefix, topic);
	else if (o->scenario == BS_QUEUE)
		snprintf(c->dest, sizeof(c->dest), "/queue/%s.q%u", o->prefix, topic);
	else
		snprintf(c->dest, sizeof(c->dest), "/topic/%s.t%u", o->prefix, topic);
	stomp_parser_init(&c->sp, &lim);
	c->stream = evbuffer_new();
	evutil_socket_t fd = role == ROLE_SLOW ? slow_socket(addr) : -1;

	if (role == ROLE_SLOW && fd < 0) {
		bench_conn_free(c);
		return NULL;
	}
	c->bev = bufferevent_socket_new(bench_base_of(run), fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev && fd >= 0)
		evutil_closesocket(fd);
	if (!c->stream || !c->bev) {
		bench_conn_free(c);
		return NULL;
	}
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, addr, alen) < 0) {
		bench_conn_free(c);
		return NULL;
	}
	return c;
}

int bench_conn_publish(struct bench_conn *c)
{
	uint8_t *t = c->tmpl;
	uint64_t ts = bench_now_ns() - bench_clock_base(c->run);

	bench_stamp_write(t + c->stamp_off, ts, c->idx, c->seq);
	if (c->id_off) {
		t[c->id_off] = (uint8_t)(c->next_id >> 8);
		t[c->id_off + 1] = (uint8_t)c->next_id;
		if (++c->next_id == 0)
			c->next_id = 1;
	}
	if (c->receipt_off) {
		char hex[9];
		snprintf(hex, sizeof(hex), "%08x", (unsigned)c->seq);
		memcpy(t + c->receipt_off, hex, 8);
	}
	if (send_unit(c, t, c->tmpl_len, c->proto == BP_MQTT ? WS_OP_BINARY : WS_OP_TEXT) < 0)
		return -1;
	c->seq++;
	if (c->id_off || c->receipt_off)
		c->unacked++;
	return 0;
}

void bench_conn_reading(struct bench_conn *c, bool on)
{
	if (c->state == BC_DEAD)
		return;
	if (on)
		bufferevent_enable(c->bev, EV_READ);
	else
		bufferevent_disable(c->bev, EV_READ);
}

size_t bench_conn_pending(const struct bench_conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void bench_conn_goodbye(struct bench_conn *c)
{
	if (c->state == BC_DEAD || c->state == BC_CLOSING)
		return;
	if (c->state != BC_READY) {
		conn_fail(c, NULL);
		return;
	}
	c->state = BC_CLOSING;
	if (c->proto == BP_MQTT) {
		uint8_t d[2];
		size_t n = mqtt_encode_empty(d, sizeof(d), MQTT_LEVEL_311, MQTT_DISCONNECT);
		send_unit(c, d, n, WS_OP_BINARY);
	} else {
		struct stomp_buf b = { 0 };
		if (stomp_encode_command(&b, STOMP_DISCONNECT) == 0 && stomp_encode_body(&b, NULL, 0) == 0)
			send_stomp(c, &b);
		else
			stomp_buf_free(&b);
	}
}

void bench_conn_free(struct bench_conn *c)
{
	if (!c)
		return;
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->stream)
		evbuffer_free(c->stream);
	stomp_parser_free(&c->sp);
	free(c->tmpl);
	free(c->ring);
	free(c->track);
	free(c);
}
