/* mqtt: one MQTT 3.1 / 3.1.1 connection (OASIS MQTT 3.1.1 sections 3 and
 * 4). It buffers at most one packet (never more than mqtt_max_packet, which
 * is judged from the fixed header), judges CONNECT, and turns packets into
 * router calls and mqtt_session state changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/acl.h"
#include "auth/auth.h"
#include "clock.h"
#include "config.h"
#include "net/conn.h"
#include "log.h"
#include "route/message.h"
#include "mqtt.h"
#include "mqtt_codec.h"
#include "mqtt_session.h"
#include "mqtt_store.h"
#include "route/router.h"
#include "store.h"
#include "store_acks.h"

/* A buffer grown for one large packet is given back afterwards. */
#define KEEP_BUF 65536

struct mqtt_conn {
	struct conn *c;
	struct mqtt_broker *b;       /* the protocol instance (env->state) */
	struct mqtt_sess *sess;      /* NULL before CONNECT and after takeover */
	uint8_t level;               /* 0 until CONNECT */
	bool connected;
	bool closed;                 /* we called conn_close */
	bool disconnected;           /* DISCONNECT received: no will */
	bool refusing;               /* a failed login's CONNACK waits on the timer */
	uint64_t keepalive_ms;       /* 1.5 x the client's keepalive, 0 = none */
	uint64_t last_rx_ms;
	char *login;                 /* the CONNECT's username; NULL: anonymous */
	struct message *will;
	uint8_t will_qos;
	bool will_retain;
	uint8_t *buf;                /* a packet split across reads */
	size_t len, cap;
	/* Acknowledgements waiting for a commit, oldest first; every later
	 * one waits behind them so that acks keep publish order. */
	struct store_acks acks;
};

/* One PUBACK / PUBREC / PUBCOMP owed once the store has committed. */
struct mqtt_owed {
	uint8_t type;
	uint16_t id;
};

/* ---- helpers ---- */

static int fail(struct mqtt_conn *mc, enum conn_close_reason reason, const char *why)
{
	log_info(conn_peer(mc->c), conn_client_id(mc->c), "mqtt: closing: %s", why);
	mc->closed = true;
	conn_close(mc->c, reason, why);
	return -1;
}

static uint8_t out_level(const struct mqtt_conn *mc)
{
	return mc->level == MQTT_LEVEL_31 ? MQTT_LEVEL_31 : MQTT_LEVEL_311;
}

static void send_ack(struct mqtt_conn *mc, uint8_t type, uint16_t id)
{
	uint8_t b[4];
	size_t n = mqtt_encode_ack(b, sizeof(b), out_level(mc), type, id);

	if (n)
		conn_send(mc->c, b, n);
}

/* store_acks' callback: st is an error only when this packet's own
 * writes failed. */
static void acked(void *owner, const void *payload, enum store_status st)
{
	struct mqtt_conn *mc = owner;
	struct mqtt_owed o;

	memcpy(&o, payload, sizeof(o));
	if (st != STORE_OK && !mc->closed) {
		/* 3.1.1 has no negative acknowledgement: no ack and a
		 * closed connection make the client publish it again. */
		log_error(conn_peer(mc->c), conn_client_id(mc->c),
			  "mqtt: message %u not stored (%s); closing so that the client "
			  "sends it again", o.id, store_status_name(st));
		fail(mc, CONN_CLOSE_INTERNAL_ERROR, "message not stored");
	} else if (!mc->closed) {
		send_ack(mc, o.type, o.id);
	}
}

/* An acknowledgement of a client's packet: now, or after the commit of the
 * writes its packet made (those queued after the mark `since`) or of
 * earlier packets' writes. */
static int reply(struct mqtt_conn *mc, uint8_t type, uint16_t id, uint64_t since)
{
	bool wrote = store_submitted(mc->b->store) != since;
	struct mqtt_owed o = {.type = type, .id = id};

	if (!store_acks_must_wait(&mc->acks, wrote)) {
		send_ack(mc, type, id);
		return 0;
	}
	if (store_acks_after(&mc->acks, since, wrote, &o, sizeof(o)) < 0)
		return fail(mc, CONN_CLOSE_NORMAL, "out of memory");
	return 0;
}

static void send_connack(struct mqtt_conn *mc, bool present, uint8_t code)
{
	uint8_t b[4];
	size_t n = mqtt_encode_connack(b, sizeof(b), out_level(mc), present, code);

	if (n)
		conn_send(mc->c, b, n);
}

static int refuse(struct mqtt_conn *mc, uint8_t code, const char *why)
{
	send_connack(mc, false, code);
	return fail(mc, code == MQTT_CONNACK_NOT_AUTHORIZED ? CONN_CLOSE_POLICY : CONN_CLOSE_NORMAL, why);
}

static bool is_sys_topic(const struct message *m)
{
	return m->topic_len >= 4 && !memcmp(m->topic, "$SYS", 4) &&
	       (m->topic_len == 4 || m->topic[4] == '/');
}

static void note_retained(void *arg, struct message *m)
{
	*(bool *)arg = true;
}

/* Retained store bound: a new topic is refused when the store is full; a
 * topic already held may always be replaced or cleared. */
static void retain(struct mqtt_conn *mc, struct message *m)
{
	bool held = false;

	if (m->payload_len &&
	    router_retained_count(mc->b->router) >= mc->b->cfg->mqtt_max_retained) {
		router_retained_foreach(mc->b->router, m->topic, m->topic_len, note_retained, &held);
		if (!held) {
			log_warn(conn_peer(mc->c), conn_client_id(mc->c),
				 "mqtt: retained store full, '%s' not retained", m->topic);
			return;
		}
	}
	router_retain(mc->b->router, m);
	mqtt_persist_retained(mc->b, m);
}

/* A client PUBLISH or a will, into the router. $SYS belongs to the broker:
 * clients may not write there (acknowledged, not routed). A topic the ACL
 * does not let this client write is dropped as 3.1.1 allows (section 3.3.5),
 * and still acknowledged so that the client does not send it forever. */
static void route(struct mqtt_conn *mc, struct message *m)
{
	const struct acl *acl = mc->b->acl->acl;

	if (acl && !acl_check(acl, mc->login, conn_client_id(mc->c), ACL_TOPIC, m->topic,
			      m->topic_len, ACL_WRITE)) {
		mc->b->acl_denied++;
		log_info(conn_peer(mc->c), conn_client_id(mc->c),
			 "mqtt: publish to '%.*s' dropped: the ACL does not allow it",
			 (int)(m->topic_len > 200 ? 200 : m->topic_len), m->topic);
		return;
	}
	if (is_sys_topic(m)) {
		log_debug(conn_peer(mc->c), conn_client_id(mc->c),
			  "mqtt: publish to '%s' ignored", m->topic);
		return;
	}
	if (m->retain)
		retain(mc, m);
	router_publish(mc->b->router, m);
}

static void publish_will(struct mqtt_conn *mc)
{
	struct message *w = mc->will;

	if (!w)
		return;
	mc->will = NULL;
	log_debug(conn_peer(mc->c), conn_client_id(mc->c), "mqtt: will to '%s'", w->topic);
	route(mc, w);
	message_unref(w);
}

/* ---- CONNECT ---- */

/* Client ids of our own making (empty id with clean session). */
static void generate_id(struct mqtt_broker *b, char *out, size_t cap)
{
	do {
		b->generated_ids++;
		snprintf(out, cap, "wsb-%llx-%llx", (unsigned long long)clock_wall_ms(),
			 (unsigned long long)b->generated_ids);
	} while (mqtt_sess_find(b, out));
}

static char *str_dup(struct mqtt_str s)
{
	char *p = malloc(s.len + 1);

	if (p) {
		memcpy(p, s.p, s.len);
		p[s.len] = '\0';
	}
	return p;
}

/* 0 accepted, -1 refused; *delay_ms: how long the refusal is held. */
static int check_login(struct mqtt_conn *mc, const struct mqtt_connect *c, uint64_t *delay_ms)
{
	char *user = NULL;
	enum auth_result r;

	*delay_ms = 0;
	const char *cert = conn_tls_identity(mc->c);
	if (cert) { /* tls_cert_as_username: the certificate is the login */
		char *login = strdup(cert);

		if (!login)
			return -1;
		log_info(conn_peer(mc->c), NULL, "login %s by client certificate", cert);
		free(mc->login);
		mc->login = login;   /* what the ACL is checked with */
		return 0;
	}
	if (c->has_username && !(user = str_dup(c->username)))
		return -1;
	r = auth_check(user, c->has_password ? (const char *)c->password.p : NULL,
		       c->has_password ? c->password.len : 0, conn_peer(mc->c), delay_ms);
	if (r != AUTH_OK) {
		free(user);
		return -1;
	}
	free(mc->login);
	mc->login = user;   /* what the ACL is checked with */
	return 0;
}

static int make_will(struct mqtt_conn *mc, const struct mqtt_connect *c)
{
	if (!c->will)
		return 0;
	mc->will = message_new((const char *)c->will_topic.p, c->will_topic.len,
			       c->will_payload.p, c->will_payload.len);
	if (!mc->will)
		return -1;
	mc->will->qos = c->will_qos;
	mc->will->retain = c->will_retain;
	return 0;
}

/* A new connection with the same client id: the old one goes, and its will
 * with it (it did not DISCONNECT). */
static void take_over(struct mqtt_conn *old)
{
	struct mqtt_sess *s = old->sess;

	old->sess = NULL;
	mqtt_sess_detach(s);
	publish_will(old);
	log_info(conn_peer(old->c), conn_client_id(old->c), "mqtt: session taken over");
	old->closed = true;
	conn_close(old->c, CONN_CLOSE_NORMAL, "session taken over");
}

/* The session this CONNECT gets; *present when an old one resumes. */
static struct mqtt_sess *claim_session(struct mqtt_conn *mc, const char *id, bool clean,
				       bool *present)
{
	struct mqtt_sess *s;

	mqtt_sess_expire(mc->b);
	s = mqtt_sess_find(mc->b, id);
	if (s && s->owner)
		take_over(s->owner);
	/* MQTT-3.1.2-6: a clean start discards the old session; a clean
	 * session also ends with the connection that made it. */
	if (s && (clean || s->clean)) {
		mqtt_sess_free(s);
		s = NULL;
	}
	*present = s != NULL;
	return s ? s : mqtt_sess_new(mc->b, id, clean);
}

static int handle_connect(struct mqtt_conn *mc, const struct mqtt_packet *pk)
{
	const struct mqtt_connect *c = &pk->u.connect;
	uint32_t max_ka = mc->b->cfg->mqtt_max_keepalive;
	char gen[64], *id;
	bool present;

	mc->level = c->level;
	if (c->client_id.len == 0) {
		/* MQTT-3.1.3-7/-8; 3.1 needs 1 to 23 characters. */
		if (!c->clean || c->level == MQTT_LEVEL_31)
			return refuse(mc, MQTT_CONNACK_ID_REJECTED, "empty client id");
		generate_id(mc->b, gen, sizeof(gen));
	} else if (c->level == MQTT_LEVEL_31 && c->client_id.len > 23) {
		return refuse(mc, MQTT_CONNACK_ID_REJECTED, "client id over 23 bytes (3.1)");
	}
	/* 3.1.1 cannot tell a client to use a shorter keepalive: refuse. */
	if (max_ka && (c->keepalive == 0 || c->keepalive > max_ka))
		return refuse(mc, MQTT_CONNACK_ID_REJECTED, "keepalive above the maximum");
	uint64_t delay;
	if (check_login(mc, c, &delay) < 0) {
		if (!delay)
			return refuse(mc, MQTT_CONNACK_NOT_AUTHORIZED, "not authorized");
		/* Guessing is slowed down without stopping the loop: the CONNACK
		 * goes out from the tick, and input is ignored until then. */
		mc->refusing = true;
		conn_timer(mc->c, delay);
		return 0;
	}
	id = c->client_id.len ? str_dup(c->client_id) : strdup(gen);
	if (!id || make_will(mc, c) < 0) {
		free(id);
		return refuse(mc, MQTT_CONNACK_UNAVAILABLE, "out of memory");
	}
	conn_set_client_id(mc->c, id);
	mqtt_sess_expire(mc->b);
	if (!mqtt_sess_find(mc->b, id) &&
	    mqtt_sess_count(mc->b) >= mc->b->cfg->mqtt_max_sessions) {
		free(id);
		return refuse(mc, MQTT_CONNACK_UNAVAILABLE, "mqtt_max_sessions reached");
	}
	mc->sess = claim_session(mc, id, c->clean, &present);
	free(id);
	if (!mc->sess)
		return refuse(mc, MQTT_CONNACK_UNAVAILABLE, "out of memory");
	mc->sess->level = out_level(mc);
	if (mqtt_sess_set_login(mc->sess, mc->login) < 0)
		return refuse(mc, MQTT_CONNACK_UNAVAILABLE, "out of memory");
	if (!present)
		mqtt_persist_session(mc->sess);
	send_connack(mc, present, MQTT_CONNACK_ACCEPTED);
	mc->connected = true;
	mc->keepalive_ms = (uint64_t)c->keepalive * 1500;
	conn_timer(mc->c, mc->keepalive_ms);
	log_info(conn_peer(mc->c), conn_client_id(mc->c),
		 "mqtt: connected (level %u, clean %d, keepalive %u, session present %d)",
		 c->level, c->clean, c->keepalive, present);
	mqtt_sess_attach(mc->sess, mc->c, mc, out_level(mc));
	return 0;
}

/* ---- other packets ---- */

/* The PUBACK / PUBREC waits for the commit of whatever this PUBLISH made
 * the store write: a retained message, or copies held for persistent
 * sessions. A PUBLISH that wrote nothing is acknowledged at once (unless
 * earlier acks still wait), so live delivery never waits for the disk. */
static int handle_publish(struct mqtt_conn *mc, const struct mqtt_packet *pk)
{
	const struct mqtt_publish *p = &pk->u.publish;
	uint64_t before = store_submitted(mc->b->store);
	struct message *m;

	conn_count_publish(mc->c);

	/* MQTT-4.3.3-2: the first copy is delivered, later ones before PUBREL
	 * only acknowledged again. */
	if (p->qos == 2 && mqtt_sess_qos2_held(mc->sess, p->id))
		return reply(mc, MQTT_PUBREC, p->id, before);
	m = message_new((const char *)p->topic.p, p->topic.len, p->payload.p, p->payload.len);
	if (!m || (p->qos == 2 && mqtt_sess_qos2_hold(mc->sess, p->id) < 0)) {
		if (m)
			message_unref(m);
		return fail(mc, CONN_CLOSE_NORMAL, "out of memory");
	}
	m->qos = p->qos;
	m->retain = p->retain;
	route(mc, m);
	message_unref(m);
	if (p->qos == 0)
		return 0;
	return reply(mc, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->id, before);
}

/* SUBSCRIBE is allowed when the filter can match some topic the client may
 * read (docs/security.md); each message is judged again on delivery. */
static bool acl_may_subscribe(struct mqtt_conn *mc, struct mqtt_str f)
{
	const struct acl *acl = mc->b->acl->acl;
	size_t fl;
	const char *fp;

	if (!acl)
		return true;
	fp = mqtt_sub_acl_filter((const char *)f.p, f.len, &fl);
	if (acl_check_sub(acl, mc->login, conn_client_id(mc->c), fp, fl) != ACL_SUB_DENIED)
		return true;
	log_info(conn_peer(mc->c), conn_client_id(mc->c),
		 "mqtt: subscription to '%.*s' refused: the ACL allows reading none of it",
		 (int)(f.len > 200 ? 200 : f.len), (const char *)f.p);
	return false;
}

static int handle_subscribe(struct mqtt_conn *mc, const struct mqtt_packet *pk)
{
	size_t n = pk->u.topics.count, i = 0, len;
	uint8_t *codes = malloc(n), qos, *out;
	struct mqtt_topic_iter it;
	struct mqtt_str f;
	bool failed = false;

	if (!codes)
		return fail(mc, CONN_CLOSE_NORMAL, "out of memory");
	mqtt_topics_begin(pk, &it);
	while (mqtt_topics_next(&it, &f, &qos)) {
		if (!acl_may_subscribe(mc, f)) {
			codes[i++] = MQTT_SUBACK_FAILURE;
			failed = true;
			continue;
		}
		codes[i] = mqtt_sess_subscribe(mc->sess, f.p, f.len, qos);
		if (codes[i] == MQTT_SUBACK_FAILURE) {
			failed = true;
			log_info(conn_peer(mc->c), conn_client_id(mc->c),
				 "mqtt: subscription to '%.*s' refused", (int)(f.len > 200 ? 200 : f.len),
				 (const char *)f.p);
		}
		i++;
	}
	/* 3.1 has no failure code in SUBACK. */
	if (failed && mc->level == MQTT_LEVEL_31) {
		free(codes);
		return fail(mc, CONN_CLOSE_PROTOCOL_ERROR, "invalid topic filter");
	}
	out = mqtt_scratch_get(&mc->b->scratch, n + MQTT_MAX_FIXED_HEADER + 2);
	len = out ? mqtt_encode_suback(out, n + MQTT_MAX_FIXED_HEADER + 2, out_level(mc), pk->id,
				       codes, n) : 0;
	if (len)
		conn_send(mc->c, out, len);
	/* Retained messages follow the SUBACK (MQTT-3.3.1-6). */
	mqtt_topics_begin(pk, &it);
	for (i = 0; mqtt_topics_next(&it, &f, &qos); i++)
		if (codes[i] != MQTT_SUBACK_FAILURE)
			mqtt_sess_send_retained(mc->sess, f.p, f.len);
	free(codes);
	return 0;
}

static int handle_unsubscribe(struct mqtt_conn *mc, const struct mqtt_packet *pk)
{
	struct mqtt_topic_iter it;
	struct mqtt_str f;

	mqtt_topics_begin(pk, &it);
	while (mqtt_topics_next(&it, &f, NULL))
		mqtt_sess_unsubscribe(mc->sess, f.p, f.len);
	send_ack(mc, MQTT_UNSUBACK, pk->id);
	return 0;
}

static int handle_disconnect(struct mqtt_conn *mc)
{
	/* MQTT-3.14.4-3: the will is discarded. */
	mc->disconnected = true;
	if (mc->will) {
		message_unref(mc->will);
		mc->will = NULL;
	}
	mc->closed = true;
	conn_close(mc->c, CONN_CLOSE_NORMAL, "disconnect");
	return -1;
}

static int handle(struct mqtt_conn *mc, const struct mqtt_packet *pk)
{
	uint8_t b[2];

	if (!mc->connected) {
		if (pk->type != MQTT_CONNECT)
			return fail(mc, CONN_CLOSE_PROTOCOL_ERROR, "first packet is not CONNECT");
		return handle_connect(mc, pk);
	}
	switch (pk->type) {
	case MQTT_PUBLISH:
		return handle_publish(mc, pk);
	case MQTT_PUBACK:
		mqtt_outq_on_puback(mc->sess, pk->id);
		return 0;
	case MQTT_PUBREC:
		mqtt_outq_on_pubrec(mc->sess, pk->id);
		return 0;
	case MQTT_PUBREL:
		/* The release is a delete nobody waits for: not "wrote". */
		mqtt_sess_qos2_release(mc->sess, pk->id);
		return reply(mc, MQTT_PUBCOMP, pk->id, store_submitted(mc->b->store));
	case MQTT_PUBCOMP:
		mqtt_outq_on_pubcomp(mc->sess, pk->id);
		return 0;
	case MQTT_SUBSCRIBE:
		return handle_subscribe(mc, pk);
	case MQTT_UNSUBSCRIBE:
		return handle_unsubscribe(mc, pk);
	case MQTT_PINGREQ:
		conn_send(mc->c, b, mqtt_encode_empty(b, sizeof(b), out_level(mc), MQTT_PINGRESP));
		return 0;
	case MQTT_DISCONNECT:
		return handle_disconnect(mc);
	case MQTT_CONNECT:
		return fail(mc, CONN_CLOSE_PROTOCOL_ERROR, "second CONNECT");
	default:
		return fail(mc, CONN_CLOSE_PROTOCOL_ERROR, "packet a client may not send");
	}
}

/* ---- the byte stream ---- */

static int parse_failed(struct mqtt_conn *mc, int err)
{
	char why[80];

	snprintf(why, sizeof(why), "%s", mqtt_strerror(err));
	if (err == MQTT_ERR_LEVEL && !mc->connected) {
		/* MQTT-3.1.2-2, also how a 5.0 client learns we speak 3.1.1. */
		mc->level = MQTT_LEVEL_311;
		return refuse(mc, MQTT_CONNACK_BAD_VERSION, why);
	}
	return fail(mc, err == MQTT_ERR_TOO_LARGE ? CONN_CLOSE_TOO_BIG : CONN_CLOSE_PROTOCOL_ERROR, why);
}

static int buf_append(struct mqtt_conn *mc, const uint8_t *p, size_t n)
{
	if (mc->len + n > mc->cap) {
		size_t cap = mc->cap ? mc->cap : 256;
		uint8_t *b;

		while (cap < mc->len + n)
			cap *= 2;
		if (!(b = realloc(mc->buf, cap)))
			return -1;
		mc->buf = b;
		mc->cap = cap;
	}
	memcpy(mc->buf + mc->len, p, n);
	mc->len += n;
	return 0;
}

static int handle_buffered(struct mqtt_conn *mc, const struct mqtt_parse_opts *o)
{
	struct mqtt_packet pk;
	int r = mqtt_parse(o, mc->buf, mc->len, &pk);

	if (r < 0)
		return parse_failed(mc, r);
	r = handle(mc, &pk);
	mc->len = 0;
	if (mc->cap > KEEP_BUF) {
		free(mc->buf);
		mc->buf = NULL;
		mc->cap = 0;
	}
	return r;
}

/* Complete the packet begun in mc->buf with bytes from *p: never takes
 * more than that packet needs. 1 when it is whole, 0 when *n ran out. */
static int fill_buffered(struct mqtt_conn *mc, const struct mqtt_parse_opts *o,
			 const uint8_t **p, size_t *n)
{
	for (;;) {
		size_t total = 0, take;
		int hl = mqtt_parse_header(o, mc->buf, mc->len, &total);

		if (hl < 0)
			return parse_failed(mc, hl);
		if (hl > 0 && mc->len >= total)
			return 1;
		if (*n == 0)
			return 0;
		take = hl == 0 ? 1 : total - mc->len;
		if (take > *n)
			take = *n;
		if (buf_append(mc, *p, take) < 0)
			return fail(mc, CONN_CLOSE_NORMAL, "out of memory");
		*p += take;
		*n -= take;
	}
}

static int mqtt_input(void *sp, const uint8_t *p, size_t n)
{
	struct mqtt_conn *mc = sp;
	struct mqtt_parse_opts o;
	struct mqtt_packet pk;
	int r;

	/* Any byte counts as life: a large PUBLISH on a slow link is not
	 * cut off for taking longer than the keepalive. */
	mc->last_rx_ms = clock_now_ms();
	while (!mc->closed && !conn_closing(mc->c)) {
		if (mc->refusing)
			return 0;   /* the rest of the input is ignored */
		o.level = mc->level;
		o.max_packet = mc->b->cfg->mqtt_max_packet;
		if (mc->len) {
			if ((r = fill_buffered(mc, &o, &p, &n)) <= 0)
				return r;
			if (handle_buffered(mc, &o) < 0)
				return -1;
			continue;
		}
		if (n == 0)
			return 0;
		r = mqtt_parse(&o, p, n, &pk);
		if (r < 0)
			return parse_failed(mc, r);
		if (r == 0)   /* less than one packet, and no more than it */
			return buf_append(mc, p, n) < 0 ? fail(mc, CONN_CLOSE_NORMAL, "out of memory") : 0;
		if (handle(mc, &pk) < 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return -1;
}

/* ---- struct protocol ---- */

static void *mqtt_open(struct conn *c, const struct proto_env *env, const char *ws_name)
{
	struct mqtt_conn *mc = calloc(1, sizeof(*mc));

	if (!mc)
		return NULL;
	mc->c = c;
	mc->b = env->state;
	store_acks_init(&mc->acks, mc->b->store, acked, mc);
	/* Absent sessions past their expiry go whenever anyone connects, not
	 * only when their own client id comes back (the check is O(expired)). */
	mqtt_sess_expire(mc->b);
	mc->last_rx_ms = clock_now_ms();
	/* MQTT-3.1.4: a connection that never sends CONNECT is closed. */
	conn_timer(c, mc->b->cfg->handshake_timeout_ms);
	return mc;
}

static void mqtt_tick(void *sp)
{
	struct mqtt_conn *mc = sp;
	uint64_t now = clock_now_ms(), deadline;

	if (mc->closed)
		return;
	if (mc->refusing) {
		refuse(mc, MQTT_CONNACK_NOT_AUTHORIZED, "not authorized");
		return;
	}
	if (!mc->connected) {
		fail(mc, CONN_CLOSE_POLICY, "no CONNECT in time");
		return;
	}
	if (!mc->keepalive_ms)
		return;
	deadline = mc->last_rx_ms + mc->keepalive_ms;
	if (now >= deadline) {
		fail(mc, CONN_CLOSE_NORMAL, "keepalive expired");
		return;
	}
	conn_timer(mc->c, deadline - now);
}

static void mqtt_shutdown(void *sp)
{
	/* 3.1.1 has no server-side goodbye; conn closes with 1001. */
}

static void mqtt_close(void *sp, enum proto_close_reason why)
{
	struct mqtt_conn *mc = sp;
	struct mqtt_sess *s = mc->sess;

	store_acks_detach(&mc->acks);
	if (s) {
		mc->sess = NULL;
		mqtt_sess_detach(s);
		if (s->clean)
			mqtt_sess_free(s);
	}
	/* MQTT-3.1.2-8: every end but DISCONNECT publishes the will; a
	 * refused CONNECT never had one. */
	if (mc->connected && !mc->disconnected)
		publish_will(mc);
	if (mc->will)
		message_unref(mc->will);
	log_debug(conn_peer(mc->c), conn_client_id(mc->c), "mqtt: closed (%d)", (int)why);
	free(mc->buf);
	free(mc->login);
	free(mc);
}

static void *mqtt_init(const struct proto_env *env)
{
	return mqtt_broker_new(env);
}

static void mqtt_teardown(const struct proto_env *env)
{
	mqtt_broker_free(env->state);
}

static void mqtt_housekeeping(const struct proto_env *env)
{
	mqtt_sess_expire(env->state);
}

/* First bytes of a raw TCP stream: a CONNECT (0x10), a plausible remaining
 * length, and the protocol name of 3.1.1/5.0 or 3.1. */
static int mqtt_sniff(const uint8_t *p, size_t n)
{
	static const uint8_t v4[] = {0, 4, 'M', 'Q', 'T', 'T'};
	static const uint8_t v3[] = {0, 6, 'M', 'Q', 'I', 's', 'd', 'p'};
	size_t i, rem = 0, mul = 1, have;
	bool a, b;

	if (n < 1)
		return 0;
	if (p[0] != 0x10)
		return -1;
	for (i = 1;; i++) {
		if (i >= n)
			return 0;
		rem += (size_t)(p[i] & 0x7F) * mul;
		if (!(p[i] & 0x80))
			break;
		if (i == 4)
			return -1;
		mul *= 128;
	}
	if (rem < 12)   /* the smallest CONNECT there is */
		return -1;
	p += i + 1;
	have = n - (i + 1);
	a = !memcmp(p, v4, have < sizeof(v4) ? have : sizeof(v4));
	b = !memcmp(p, v3, have < sizeof(v3) ? have : sizeof(v3));
	if ((a && have >= sizeof(v4)) || (b && have >= sizeof(v3)))
		return 1;
	return a || b ? 0 : -1;
}

static const char *const mqtt_ws_names[] = {"mqtt", "mqttv3.1", "mqtt-v3.1.1", "mqtt-v5",
					    NULL};

const struct protocol mqtt_protocol = {
	.name = "mqtt",
	.ws_names = mqtt_ws_names,
	.ws_binary_only = true,
	.ws_binary_out = true,
	.sniff = mqtt_sniff,
	.init = mqtt_init,
	.open = mqtt_open,
	.input = mqtt_input,
	.tick = mqtt_tick,
	.shutdown = mqtt_shutdown,
	.close = mqtt_close,
	.teardown = mqtt_teardown,
	.restore = mqtt_restore,
	.housekeeping = mqtt_housekeeping,
};
