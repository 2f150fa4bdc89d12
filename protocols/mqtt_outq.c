/* mqtt_outq: a session's outbound flow.
 *
 * A delivery is sent at once while the queue is empty and the inflight
 * window has room (QoS 0 needs no window); otherwise it joins a bounded FIFO
 * that drains as PUBACK / PUBCOMP free the window. Past the bound QoS 0 goes
 * first, then the newcomer: nothing grows without limit because a client
 * stopped acknowledging. */
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "grow.h"
#include "net/conn.h"
#include "log.h"
#include "route/message.h"
#include "mqtt_codec.h"
#include "mqtt_outq.h"
#include "mqtt_session.h"
#include "mqtt_store.h"

/* ---- the encode buffer ---- */

static void scratch_forget(struct mqtt_scratch *sc)
{
	sc->m = NULL;
	conn_shared_unref(sc->sh);
	sc->sh = NULL;
}

uint8_t *mqtt_scratch_get(struct mqtt_scratch *sc, size_t need)
{
	scratch_forget(sc);
	if (need > sc->cap) {
		uint8_t *p = realloc(sc->buf, need);

		if (!p)
			return NULL;
		sc->buf = p;
		sc->cap = need;
	}
	return sc->buf;
}

void mqtt_scratch_free(struct mqtt_scratch *sc)
{
	scratch_forget(sc);
	free(sc->buf);
	sc->buf = NULL;
	sc->cap = 0;
}

/* ---- memory ---- */

static void out_release(struct mqtt_out *o)
{
	if (o->m)
		message_unref(o->m);
	o->m = NULL;
}

static struct mqtt_out *queue_at(struct mqtt_outq *q, size_t i)
{
	return &q->ring[(q->head + i) % q->cap];
}

void mqtt_outq_init(struct mqtt_outq *q)
{
	memset(q, 0, sizeof(*q));
	q->next_id = 1;
}

void mqtt_outq_clear(struct mqtt_outq *q)
{
	size_t i;

	for (i = 0; i < q->ninflight; i++)
		out_release(&q->inflight[i]);
	for (i = 0; i < q->len; i++)
		out_release(queue_at(q, i));
	free(q->inflight);
	free(q->ring);
	mqtt_outq_init(q);
}

/* A delivery dropped: slow reader, full queue, QoS 0 while away, OOM. */
static void count_drop(struct mqtt_sess *s)
{
	s->dropped++;
	s->b->dropped++;
}

/* ---- sending ---- */

static void send_publish(struct mqtt_sess *s, const struct mqtt_out *o, bool dup)
{
	struct mqtt_scratch *sc = &s->b->scratch;
	const struct message *m = o->m;
	struct mqtt_publish pub = {
		.topic = {(const uint8_t *)m->topic, m->topic_len},
		.payload = {m->payload, m->payload_len},
		.qos = o->qos, .dup = dup, .retain = o->retain, .id = o->id};
	size_t need, len;
	uint8_t *buf;

	if (o->qos == 0 && sc->m == m && sc->id == m->id && sc->retain == o->retain) {
		if (sc->sh)
			conn_send_shared(s->conn, sc->sh);
		else
			conn_send(s->conn, sc->buf, sc->len);
		return;
	}
	need = mqtt_publish_size(s->level, m->topic_len, m->payload_len, o->qos);
	buf = mqtt_scratch_get(sc, need);
	len = buf ? mqtt_encode_publish(buf, need, s->level, &pub) : 0;
	if (!len) {
		count_drop(s);
		return;
	}
	if (o->qos == 0) {
		sc->m = m;
		sc->id = m->id;
		sc->retain = o->retain;
		sc->len = len;
		if (len >= CONN_SHARE_MIN && (sc->sh = conn_shared_new(buf, len))) {
			conn_send_shared(s->conn, sc->sh);
			return;
		}
	}
	conn_send(s->conn, buf, len);
}

static void send_pubrel(struct mqtt_sess *s, uint16_t id)
{
	uint8_t b[4];
	size_t len = mqtt_encode_ack(b, sizeof(b), s->level, MQTT_PUBREL, id);

	if (len)
		conn_send(s->conn, b, len);
}

/* ---- the window ---- */

static struct mqtt_out *find_inflight(struct mqtt_outq *q, uint16_t id, size_t *idx)
{
	for (size_t i = 0; i < q->ninflight; i++)
		if (q->inflight[i].id == id) {
			if (idx)
				*idx = i;
			return &q->inflight[i];
		}
	return NULL;
}

static uint16_t next_free_id(struct mqtt_outq *q)
{
	uint16_t id;

	do {
		id = q->next_id;
		q->next_id = q->next_id == 0xFFFF ? 1 : q->next_id + 1;
	} while (find_inflight(q, id, NULL));
	return id;
}

/* One more slot at the end of the window, or NULL on OOM. */
static struct mqtt_out *inflight_slot(struct mqtt_outq *q)
{
	if (grow(&q->inflight, &q->inflight_cap, q->ninflight, sizeof(*q->inflight), 8) < 0)
		return NULL;
	return &q->inflight[q->ninflight++];
}

/* Memory only: the caller has dealt with the store. */
static void inflight_remove(struct mqtt_outq *q, size_t i)
{
	out_release(&q->inflight[i]);
	memmove(&q->inflight[i], &q->inflight[i + 1],
		(q->ninflight - i - 1) * sizeof(*q->inflight));
	q->ninflight--;
}

static bool window_open(const struct mqtt_sess *s)
{
	return s->out.ninflight < s->b->cfg->mqtt_max_inflight;
}

/* Put a QoS 1/2 message in the window (the caller checked there is room)
 * and send it. */
static void start_inflight(struct mqtt_sess *s, struct mqtt_out *o)
{
	struct mqtt_out *e = inflight_slot(&s->out);

	if (!e) {
		mqtt_persist_msg_done(s, o);
		out_release(o);
		count_drop(s);
		return;
	}
	*e = *o;
	e->id = next_free_id(&s->out);
	e->state = e->qos == 1 ? MQTT_OUT_WAIT_ACK : MQTT_OUT_WAIT_REC;
	mqtt_persist_msg(s, e, e->state);
	send_publish(s, e, false);
}

/* QoS 0 goes out now unless the reader is slow. Consumes o's reference. */
static void send_qos0(struct mqtt_sess *s, struct mqtt_out *o)
{
	if (conn_congested(s->conn))
		count_drop(s);
	else
		send_publish(s, o, false);
	out_release(o);
}

/* ---- the queue ---- */

static void queue_remove_at(struct mqtt_outq *q, size_t i)
{
	struct mqtt_out *o = queue_at(q, i);

	if (o->qos == 0)
		q->nqos0--;
	out_release(o);
	for (; i + 1 < q->len; i++)
		*queue_at(q, i) = *queue_at(q, i + 1);
	q->len--;
}

/* Make room for one more. Returns false when the newcomer must go. */
static bool queue_make_room(struct mqtt_sess *s)
{
	struct mqtt_outq *q = &s->out;
	size_t i;

	if (q->len < s->b->cfg->mqtt_max_queued)
		return true;
	if (q->nqos0 == 0 || q->len == 0)
		return false;
	for (i = 0; i < q->len; i++)
		if (queue_at(q, i)->qos == 0) {
			queue_remove_at(q, i);
			count_drop(s);
			return true;
		}
	return false;
}

/* Room at the tail, growing the ring when full. -1 on OOM. */
static int queue_reserve(struct mqtt_outq *q)
{
	size_t cap, i;
	struct mqtt_out *v;

	if (q->len < q->cap)
		return 0;
	cap = q->cap ? q->cap * 2 : 16;
	if (!(v = malloc(cap * sizeof(*v))))
		return -1;
	for (i = 0; i < q->len; i++)
		v[i] = *queue_at(q, i);
	free(q->ring);
	q->ring = v;
	q->cap = cap;
	q->head = 0;
	return 0;
}

static struct mqtt_out *queue_append(struct mqtt_outq *q, const struct mqtt_out *o)
{
	struct mqtt_out *e = queue_at(q, q->len++);

	*e = *o;
	if (o->qos == 0)
		q->nqos0++;
	return e;
}

/* Consumes o's reference. */
static void queue_push(struct mqtt_sess *s, struct mqtt_out *o)
{
	if (!queue_make_room(s) || queue_reserve(&s->out) < 0) {
		/* Never silent: the first QoS 1/2 loss of a session and every
		 * 1000th after it reach the log. */
		if (o->qos && s->dropped % 1000 == 0)
			log_warn(NULL, s->client_id, "mqtt: queue full (mqtt_max_queued %zu): QoS %u "
				 "message on '%.100s' dropped (%llu dropped so far)",
				 s->b->cfg->mqtt_max_queued, o->qos, o->m->topic,
				 (unsigned long long)s->dropped + 1);
		out_release(o);
		count_drop(s);
		return;
	}
	o = queue_append(&s->out, o);
	if (o->qos)
		mqtt_persist_msg(s, o, MQTT_OUT_QUEUED);
}

static void queue_pop(struct mqtt_outq *q, struct mqtt_out *o)
{
	*o = *queue_at(q, 0);
	q->head = (q->head + 1) % q->cap;
	q->len--;
	if (o->qos == 0)
		q->nqos0--;
}

/* Move queued messages into the window while it has room. */
static void drain(struct mqtt_sess *s)
{
	struct mqtt_outq *q = &s->out;
	struct mqtt_out o;

	while (s->conn && q->len) {
		if (queue_at(q, 0)->qos && !window_open(s))
			return;
		queue_pop(q, &o);
		if (o.qos == 0)
			send_qos0(s, &o);
		else
			start_inflight(s, &o);
	}
}

/* ---- in ---- */

void mqtt_outq_offer(struct mqtt_sess *s, struct message *m, uint8_t qos, bool retain)
{
	struct mqtt_out o = {.m = message_ref(m), .qos = qos, .retain = retain};

	if (!mqtt_publish_size(MQTT_LEVEL_311, m->topic_len, m->payload_len, qos)) {
		/* A STOMP destination longer than an MQTT topic can be. */
		log_warn(NULL, s->client_id, "message on '%.64s...' cannot be sent over MQTT",
			 m->topic);
		out_release(&o);
		count_drop(s);
		return;
	}
	if (!s->conn && qos == 0) {
		/* QoS 0 is not kept for an absent client (MQTT-3.1.2-5 makes
		 * it optional). */
		out_release(&o);
		count_drop(s);
		return;
	}
	if (s->conn && s->out.len == 0) {
		if (qos == 0) {
			send_qos0(s, &o);
			return;
		}
		if (window_open(s)) {
			start_inflight(s, &o);
			return;
		}
	}
	queue_push(s, &o);
}

void mqtt_outq_resume(struct mqtt_sess *s)
{
	/* MQTT-4.4.0-1: unacknowledged PUBLISH and PUBREL again, with their
	 * original packet identifiers. */
	for (size_t i = 0; i < s->out.ninflight; i++) {
		struct mqtt_out *o = &s->out.inflight[i];

		if (o->state == MQTT_OUT_WAIT_COMP)
			send_pubrel(s, o->id);
		else
			send_publish(s, o, true);
	}
	drain(s);
}

/* ---- acknowledgements ----
 * Each reads top to bottom: find the message, change what the store holds
 * for it, then memory, then let the queue move up. */

/* The last acknowledgement of a message in flight (PUBACK for QoS 1,
 * PUBCOMP for QoS 2): its row goes, its slot and packet id are free. */
static void finish(struct mqtt_sess *s, uint16_t id, uint8_t state, const char *what)
{
	size_t i;
	struct mqtt_out *o = find_inflight(&s->out, id, &i);

	if (!o || o->state != state) {
		log_debug(conn_peer(s->conn), s->client_id, "%s for unknown id %u", what, id);
		return;
	}
	mqtt_persist_msg_done(s, o);
	inflight_remove(&s->out, i);
	drain(s);
}

void mqtt_outq_on_puback(struct mqtt_sess *s, uint16_t id)
{
	finish(s, id, MQTT_OUT_WAIT_ACK, "PUBACK");
}

/* QoS 2 half-way: the payload is no longer needed once the client has it;
 * only the id waits for PUBCOMP. A PUBREC we know nothing of still gets its
 * PUBREL, so that the client can finish its side. */
void mqtt_outq_on_pubrec(struct mqtt_sess *s, uint16_t id)
{
	struct mqtt_out *o = find_inflight(&s->out, id, NULL);

	if (o && o->state == MQTT_OUT_WAIT_ACK)
		return;                 /* a QoS 1 id: not ours to release */
	if (o && o->state == MQTT_OUT_WAIT_REC) {
		o->state = MQTT_OUT_WAIT_COMP;
		out_release(o);
		mqtt_persist_msg(s, o, MQTT_OUT_WAIT_COMP);
	}
	send_pubrel(s, id);
}

void mqtt_outq_on_pubcomp(struct mqtt_sess *s, uint16_t id)
{
	finish(s, id, MQTT_OUT_WAIT_COMP, "PUBCOMP");
}

/* ---- start-up ---- */

void mqtt_outq_restore(struct mqtt_sess *s, const struct mqtt_out *o,
		       enum mqtt_out_state state)
{
	struct mqtt_outq *q = &s->out;
	struct mqtt_out c = *o, *e;

	c.m = c.m ? message_ref(c.m) : NULL;
	if (state != MQTT_OUT_QUEUED && c.id && !find_inflight(q, c.id, NULL)) {
		if (!(e = inflight_slot(q)))
			goto oom;
		c.state = (uint8_t)state;
		if (state == MQTT_OUT_WAIT_COMP)
			out_release(&c);
		*e = c;
		return;
	}
	/* Queued, whatever mqtt_max_queued says now: it was accepted. */
	if (!c.m)
		return;      /* a release with no id cannot be finished */
	c.id = 0;
	c.state = 0;
	if (queue_reserve(q) < 0)
		goto oom;
	queue_append(q, &c);
	return;
oom:
	out_release(&c);
	count_drop(s);
}
