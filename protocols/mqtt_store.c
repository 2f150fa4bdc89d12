/* mqtt_store: what MQTT keeps in the store, and loading it at start-up.
 *
 * A session that persists (clean session 0) writes its row, subscriptions,
 * QoS 1/2 messages held for it and the QoS 2 packet ids it received, as
 * each changes; retained messages are written for every session. Nothing
 * here waits for a commit: mqtt.c holds a publisher's PUBACK / PUBREC until
 * the writes that PUBLISH caused are durable. A QoS 1 message moving from
 * the queue into the window is not rewritten (after a restart it is sent
 * again with a fresh id, which QoS 1 allows); a QoS 2 one is, because its
 * packet id must survive for exactly-once. */
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "config.h"
#include "log.h"
#include "route/message.h"
#include "mqtt_session.h"
#include "mqtt_store.h"
#include "protocol.h"
#include "route/router.h"
#include "store.h"

/* Loading replays state through the session code, which must not write
 * it back (b->restoring). */
static struct store *store_of(const struct mqtt_broker *b)
{
	return b->restoring ? NULL : b->store;
}

static struct store *st_of(const struct mqtt_sess *s)
{
	return s->persist ? store_of(s->b) : NULL;
}

void mqtt_persist_session(const struct mqtt_sess *s)
{
	struct store *st = st_of(s);

	if (!st)
		return;
	struct store_session row = {
		.client_id = s->client_id,
		.proto_level = s->level,
		.expiry_s = s->b->cfg->mqtt_session_expiry,
		.updated_ms = clock_wall_ms(),
	};
	store_session_put(st, &row, NULL, NULL);
}

void mqtt_persist_forget(const struct mqtt_sess *s)
{
	struct store *st = st_of(s);

	if (st)
		store_session_del(st, s->client_id, NULL, NULL);
}

void mqtt_persist_sub(const struct mqtt_sess *s, const struct mqtt_sub *sub)
{
	struct store *st = st_of(s);

	if (st)
		store_session_sub_put(st, s->client_id, sub->filter, sub->qos, NULL, NULL);
}

void mqtt_persist_unsub(const struct mqtt_sess *s, const char *filter)
{
	struct store *st = st_of(s);

	if (st)
		store_session_sub_del(st, s->client_id, filter, NULL, NULL);
}

static enum store_msg_state store_state(enum mqtt_out_state st)
{
	switch (st) {
	case MQTT_OUT_WAIT_ACK:
	case MQTT_OUT_WAIT_REC:
		return STORE_MSG_SENT;
	case MQTT_OUT_WAIT_COMP:
		return STORE_MSG_RELEASED;
	default:
		return STORE_MSG_QUEUED;
	}
}

void mqtt_persist_msg(const struct mqtt_sess *s, struct mqtt_out *o, enum mqtt_out_state state)
{
	struct store *st = st_of(s);

	if (!st || o->qos == 0)
		return;
	if (o->store_seq) {
		if (o->qos == 2)
			store_session_msg_update(st, o->store_seq, o->id, store_state(state), NULL, NULL);
		return;
	}
	if (!o->m)
		return;
	const struct message *m = o->m;
	struct store_msg row = {
		.client_id = s->client_id,
		.topic = m->topic,
		.payload = m->payload,
		.payload_len = m->payload_len,
		.qos = o->qos,
		.retain = o->retain,
		.packet_id = state == MQTT_OUT_QUEUED ? 0 : o->id,
		.state = store_state(state),
		.expiry_ms = m->expiry_ms,
	};
	store_session_msg_add(st, &row, &o->store_seq, NULL, NULL);
}

void mqtt_persist_msg_done(const struct mqtt_sess *s, struct mqtt_out *o)
{
	struct store *st = st_of(s);

	if (st && o->store_seq)
		store_session_msg_del(st, o->store_seq, NULL, NULL);
	o->store_seq = 0;
}

void mqtt_persist_qos2(const struct mqtt_sess *s, uint16_t id, bool held)
{
	struct store *st = st_of(s);

	if (!st)
		return;
	if (held)
		store_session_qos2_put(st, s->client_id, id, NULL, NULL);
	else
		store_session_qos2_del(st, s->client_id, id, NULL, NULL);
}

void mqtt_persist_retained(const struct mqtt_broker *b, const struct message *m)
{
	struct store *st = store_of(b);

	if (!st)
		return;
	if (!m->payload_len) {
		store_del_retained(st, m->topic, NULL, NULL);
		return;
	}
	struct store_retained row = {
		.topic = m->topic,
		.payload = m->payload,
		.payload_len = m->payload_len,
		.qos = m->qos,
		.expiry_ms = m->expiry_ms,
	};
	store_put_retained(st, &row, NULL, NULL);
}

/* ---- start-up ---- */

struct restore_ctx {
	struct mqtt_broker *b;
	uint64_t wall_now, mono_now;
	size_t retained, sessions, expired, msgs;
};

static int load_retained(void *arg, const struct store_retained *r)
{
	struct restore_ctx *x = arg;
	struct message *m;

	if (r->expiry_ms && r->expiry_ms <= x->wall_now)
		return 0;
	m = message_new(r->topic, strlen(r->topic), r->payload, r->payload_len);
	if (!m)
		return 1;
	m->qos = r->qos;
	m->retain = true;
	m->expiry_ms = r->expiry_ms;
	router_retain(x->b->router, m);
	message_unref(m);
	x->retained++;
	return 0;
}

static int load_session(void *arg, const struct store_session *ss)
{
	struct restore_ctx *x = arg;
	uint64_t expiry_ms = (uint64_t)ss->expiry_s * 1000, gone;
	struct mqtt_sess *s;

	if (ss->expiry_s) {
		gone = x->wall_now > ss->updated_ms ? x->wall_now - ss->updated_ms : 0;
		if (gone >= expiry_ms) {
			/* Expired while the broker was down. */
			store_session_del(x->b->store, ss->client_id, NULL, NULL);
			x->expired++;
			return 0;
		}
		expiry_ms -= gone;
	}
	s = mqtt_sess_new(x->b, ss->client_id, false);
	if (!s)
		return 1;
	s->level = ss->proto_level == 3 ? 3 : 4;
	s->expires_ms = ss->expiry_s ? x->mono_now + expiry_ms : 0;
	x->sessions++;
	return 0;
}

static int load_sub(void *arg, const char *client_id, const char *filter, uint8_t options)
{
	struct restore_ctx *x = arg;
	struct mqtt_sess *s = mqtt_sess_find(x->b, client_id);

	if (s && mqtt_sess_subscribe(s, (const uint8_t *)filter, strlen(filter),
				     options & 3) > 2)
		log_warn(NULL, client_id, "mqtt: stored subscription '%s' could not be restored",
			 filter);
	return 0;
}

static enum mqtt_out_state out_state(const struct store_msg *m)
{
	if (m->state == STORE_MSG_RELEASED)
		return MQTT_OUT_WAIT_COMP;
	if (m->state == STORE_MSG_SENT)
		return m->qos == 1 ? MQTT_OUT_WAIT_ACK : MQTT_OUT_WAIT_REC;
	return MQTT_OUT_QUEUED;
}

static int load_msg(void *arg, const struct store_msg *sm)
{
	struct restore_ctx *x = arg;
	struct mqtt_sess *s = mqtt_sess_find(x->b, sm->client_id);
	struct mqtt_out o = {.qos = sm->qos, .retain = sm->retain, .id = sm->packet_id,
			     .store_seq = sm->seq};

	if (!s)
		return 0;
	if (sm->state != STORE_MSG_RELEASED) {
		o.m = message_new(sm->topic, strlen(sm->topic), sm->payload, sm->payload_len);
		if (!o.m)
			return 1;
		o.m->qos = sm->qos;
		o.m->expiry_ms = sm->expiry_ms;
	}
	mqtt_outq_restore(s, &o, out_state(sm));
	if (o.m)
		message_unref(o.m);
	x->msgs++;
	return 0;
}

static int load_qos2(void *arg, const char *client_id, uint16_t packet_id)
{
	struct restore_ctx *x = arg;
	struct mqtt_sess *s = mqtt_sess_find(x->b, client_id);

	if (s && mqtt_sess_qos2_hold(s, packet_id) < 0)
		return 1;
	return 0;
}

int mqtt_restore(const struct proto_env *env)
{
	struct mqtt_broker *b = env->state;
	struct restore_ctx x = {.b = b, .wall_now = clock_wall_ms(), .mono_now = clock_now_ms()};
	static const struct store_session_loader loader = {
		.session = load_session, .sub = load_sub, .msg = load_msg, .qos2 = load_qos2,
	};
	int r;

	b->restoring = true;
	r = store_load_retained(b->store, load_retained, &x);
	if (r == 0)
		r = store_load_sessions(b->store, &loader, &x);
	b->restoring = false;
	mqtt_sess_restore_done(b);
	if (r != 0) {
		log_error(NULL, NULL, "mqtt: loading stored state failed%s",
			  r > 0 ? " (out of memory)" : "");
		return -1;
	}
	if (x.retained || x.sessions || x.expired)
		log_info(NULL, NULL, "mqtt: loaded %zu retained messages, %zu sessions holding %zu "
			 "messages (%zu expired while the broker was down)",
			 x.retained, x.sessions, x.msgs, x.expired);
	return 0;
}
