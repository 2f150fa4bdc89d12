/* mqtt_session: MQTT Session state and the table of sessions by client id.
 *
 * Outbound flow: a delivery is sent at once while the queue is empty and
 * the inflight window has room (QoS 0 needs no window); otherwise it joins a
 * bounded FIFO that drains as PUBACK / PUBCOMP free the window. Past the
 * bound QoS 0 goes first, then the newcomer: nothing grows without limit
 * because a client stopped acknowledging. */
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "config.h"
#include "net/conn.h"
#include "log.h"
#include "route/message.h"
#include "mqtt.h"
#include "mqtt_codec.h"
#include "mqtt_session.h"
#include "route/router.h"

/* ---- module state (one event-loop thread) ---- */

static struct mqtt_sess **table;
static size_t table_cap, table_count;
/* Absent persistent sessions that expire, oldest deadline first. */
static struct mqtt_sess *away_head, *away_tail;
static uint64_t dropped_total;
static struct store *store;
static uint8_t *scratch;
static size_t scratch_cap;
/* A QoS 0 PUBLISH is the same bytes for every subscriber (3.1 and 3.1.1
 * alike): while scratch still holds the last one encoded, the next
 * subscriber of that message gets it without another encode. A message is
 * named by pointer and id together, so a reused address is no match. */
static struct {
	const struct message *m;
	uint64_t id;
	bool retain;
	size_t len;
	/* A large one is also kept as shared bytes, which every subscriber's
	 * output refers to instead of copying. */
	struct conn_shared *sh;
} held_qos0;

static void held_qos0_forget(void)
{
	held_qos0.m = NULL;
	conn_shared_unref(held_qos0.sh);
	held_qos0.sh = NULL;
}

void mqtt_sess_set_store(struct store *st)
{
	store = st;
}

struct store *mqtt_sess_get_store(void)
{
	return store;
}

uint8_t *mqtt_scratch(size_t need)
{
	held_qos0_forget();
	if (need > scratch_cap) {
		uint8_t *p = realloc(scratch, need);

		if (!p)
			return NULL;
		scratch = p;
		scratch_cap = need;
	}
	return scratch;
}

static void count_drop(struct mqtt_sess *s)
{
	s->dropped++;
	dropped_total++;
}

/* ---- table ---- */

/* FNV-1a. Client ids are chosen by clients; the table only ever holds one
 * session per id, so a flood of colliding ids costs its sender. */
static size_t hash_id(const char *id)
{
	uint64_t h = 1469598103934665603ull;

	while (*id) {
		h ^= (uint8_t)*id++;
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 32));
}

static int table_grow(void)
{
	size_t cap = table_cap ? table_cap * 2 : 64, i;
	struct mqtt_sess **t = calloc(cap, sizeof(*t));

	if (!t)
		return -1;
	for (i = 0; i < table_cap; i++) {
		struct mqtt_sess *s = table[i], *next;

		for (; s; s = next) {
			size_t b = hash_id(s->client_id) & (cap - 1);

			next = s->hnext;
			s->hnext = t[b];
			t[b] = s;
		}
	}
	free(table);
	table = t;
	table_cap = cap;
	return 0;
}

struct mqtt_sess *mqtt_sess_find(const char *client_id)
{
	struct mqtt_sess *s;

	if (!table_cap)
		return NULL;
	for (s = table[hash_id(client_id) & (table_cap - 1)]; s; s = s->hnext)
		if (!strcmp(s->client_id, client_id))
			return s;
	return NULL;
}

static void table_remove(struct mqtt_sess *s)
{
	struct mqtt_sess **pp = &table[hash_id(s->client_id) & (table_cap - 1)];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			table_count--;
			return;
		}
}

static void away_remove(struct mqtt_sess *s)
{
	if (!s->aprev && away_head != s)
		return;
	if (s->aprev)
		s->aprev->anext = s->anext;
	else
		away_head = s->anext;
	if (s->anext)
		s->anext->aprev = s->aprev;
	else
		away_tail = s->aprev;
	s->aprev = s->anext = NULL;
}

static void away_append(struct mqtt_sess *s)
{
	s->aprev = away_tail;
	s->anext = NULL;
	if (away_tail)
		away_tail->anext = s;
	else
		away_head = s;
	away_tail = s;
}

size_t mqtt_sess_count(void)
{
	return table_count;
}

struct mqtt_sess *mqtt_sess_new(const char *client_id, bool clean, struct router *r,
				const struct cfg *cfg)
{
	struct mqtt_sess *s;
	size_t b;

	if (table_count >= table_cap && table_grow() < 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->client_id = strdup(client_id))) {
		free(s);
		return NULL;
	}
	s->clean = clean;
	s->persist = !clean && store;
	s->router = r;
	s->cfg = cfg;
	s->level = MQTT_LEVEL_311;
	s->next_id = 1;
	b = hash_id(client_id) & (table_cap - 1);
	s->hnext = table[b];
	table[b] = s;
	table_count++;
	return s;
}

static void out_release(struct mqtt_out *o)
{
	if (o->m)
		message_unref(o->m);
	o->m = NULL;
}

static struct mqtt_out *queue_at(struct mqtt_sess *s, size_t i)
{
	return &s->queue[(s->qhead + i) % s->qcap];
}

static void sess_destroy(struct mqtt_sess *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->nsubs; i++) {
		router_unsubscribe(s->router, s->subs[i]->rsub);
		free(s->subs[i]->filter);
		free(s->subs[i]);
	}
	for (i = 0; i < s->ninflight; i++)
		out_release(&s->inflight[i]);
	for (i = 0; i < s->qlen; i++)
		out_release(queue_at(s, i));
	away_remove(s);
	table_remove(s);
	free(s->subs);
	free(s->inflight);
	free(s->queue);
	free(s->qos2_in);
	free(s->client_id);
	free(s);
}

void mqtt_sess_free(struct mqtt_sess *s)
{
	if (!s)
		return;
	mqtt_persist_forget(s);
	sess_destroy(s);
}

void mqtt_sess_expire(void)
{
	uint64_t now = clock_now_ms();

	while (away_head && away_head->expires_ms && away_head->expires_ms <= now) {
		log_info(NULL, away_head->client_id, "persistent session expired");
		mqtt_sess_free(away_head);
	}
}

void mqtt_sess_free_all(void)
{
	size_t i;

	for (i = 0; i < table_cap; i++)
		while (table[i])
			sess_destroy(table[i]);
	free(table);
	table = NULL;
	table_cap = table_count = 0;
	free(scratch);
	scratch = NULL;
	scratch_cap = 0;
	held_qos0_forget();
}

void mqtt_get_stats(struct mqtt_stats *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	out->dropped = dropped_total;
	out->sessions = table_count;
	for (i = 0; i < table_cap; i++)
		for (struct mqtt_sess *s = table[i]; s; s = s->hnext) {
			out->away += !s->conn;
			out->queued += s->qlen;
			out->inflight += s->ninflight;
		}
}

/* ---- sending ---- */

static void send_publish(struct mqtt_sess *s, const struct mqtt_out *o, bool dup)
{
	const struct message *m = o->m;
	struct mqtt_publish pub = {
		.topic = {(const uint8_t *)m->topic, m->topic_len},
		.payload = {m->payload, m->payload_len},
		.qos = o->qos, .dup = dup, .retain = o->retain, .id = o->id};
	size_t need, len;
	uint8_t *buf;

	if (o->qos == 0 && held_qos0.m == m && held_qos0.id == m->id &&
	    held_qos0.retain == o->retain) {
		if (held_qos0.sh)
			conn_send_shared(s->conn, held_qos0.sh);
		else
			conn_send(s->conn, scratch, held_qos0.len);
		return;
	}
	need = mqtt_publish_size(s->level, m->topic_len, m->payload_len, o->qos);
	buf = mqtt_scratch(need);
	len = buf ? mqtt_encode_publish(buf, need, s->level, &pub) : 0;
	if (!len) {
		count_drop(s);
		return;
	}
	if (o->qos == 0) {
		held_qos0.m = m;
		held_qos0.id = m->id;
		held_qos0.retain = o->retain;
		held_qos0.len = len;
		if (len >= CONN_SHARE_MIN && (held_qos0.sh = conn_shared_new(buf, len))) {
			conn_send_shared(s->conn, held_qos0.sh);
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

static bool id_in_flight(const struct mqtt_sess *s, uint16_t id)
{
	for (size_t i = 0; i < s->ninflight; i++)
		if (s->inflight[i].id == id)
			return true;
	return false;
}

static uint16_t next_free_id(struct mqtt_sess *s)
{
	uint16_t id;

	do {
		id = s->next_id;
		s->next_id = s->next_id == 0xFFFF ? 1 : s->next_id + 1;
	} while (id_in_flight(s, id));
	return id;
}

/* Put a QoS 1/2 message in the window (the caller checked there is room)
 * and send it. */
static void start_inflight(struct mqtt_sess *s, struct mqtt_out *o)
{
	struct mqtt_out *e;

	if (s->ninflight == s->inflight_cap) {
		size_t cap = s->inflight_cap ? s->inflight_cap * 2 : 8;
		struct mqtt_out *v = realloc(s->inflight, cap * sizeof(*v));

		if (!v) {
			mqtt_persist_msg_done(s, o);
			out_release(o);
			count_drop(s);
			return;
		}
		s->inflight = v;
		s->inflight_cap = cap;
	}
	e = &s->inflight[s->ninflight++];
	*e = *o;
	e->id = next_free_id(s);
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

static bool window_open(const struct mqtt_sess *s)
{
	return s->ninflight < s->cfg->mqtt_max_inflight;
}

/* ---- the queue ---- */

static void queue_remove_at(struct mqtt_sess *s, size_t i)
{
	struct mqtt_out *o = queue_at(s, i);

	if (o->qos == 0)
		s->q_qos0--;
	out_release(o);
	for (; i + 1 < s->qlen; i++)
		*queue_at(s, i) = *queue_at(s, i + 1);
	s->qlen--;
}

/* Make room for one more. Returns false when the newcomer must go. */
static bool queue_make_room(struct mqtt_sess *s)
{
	size_t i;

	if (s->qlen < s->cfg->mqtt_max_queued)
		return true;
	if (s->q_qos0 == 0 || s->qlen == 0)
		return false;
	for (i = 0; i < s->qlen; i++)
		if (queue_at(s, i)->qos == 0) {
			queue_remove_at(s, i);
			count_drop(s);
			return true;
		}
	return false;
}

static int queue_grow(struct mqtt_sess *s)
{
	size_t cap = s->qcap ? s->qcap * 2 : 16, i;
	struct mqtt_out *v = malloc(cap * sizeof(*v));

	if (!v)
		return -1;
	for (i = 0; i < s->qlen; i++)
		v[i] = *queue_at(s, i);
	free(s->queue);
	s->queue = v;
	s->qcap = cap;
	s->qhead = 0;
	return 0;
}

/* Consumes o's reference. */
static void queue_push(struct mqtt_sess *s, struct mqtt_out *o)
{
	if (!queue_make_room(s) || (s->qlen == s->qcap && queue_grow(s) < 0)) {
		/* Never silent: the first QoS 1/2 loss of a session and every
		 * 1000th after it reach the log. */
		if (o->qos && s->dropped % 1000 == 0)
			log_warn(NULL, s->client_id, "mqtt: queue full (mqtt_max_queued %zu): QoS %u "
				 "message on '%.100s' dropped (%llu dropped so far)",
				 s->cfg->mqtt_max_queued, o->qos, o->m->topic,
				 (unsigned long long)s->dropped + 1);
		out_release(o);
		count_drop(s);
		return;
	}
	*queue_at(s, s->qlen) = *o;
	s->qlen++;
	if (o->qos == 0)
		s->q_qos0++;
	else
		mqtt_persist_msg(s, queue_at(s, s->qlen - 1), MQTT_OUT_QUEUED);
}

static void queue_pop(struct mqtt_sess *s, struct mqtt_out *o)
{
	*o = *queue_at(s, 0);
	s->qhead = (s->qhead + 1) % s->qcap;
	s->qlen--;
	if (o->qos == 0)
		s->q_qos0--;
}

/* Move queued messages into the window while it has room. */
static void drain(struct mqtt_sess *s)
{
	struct mqtt_out o;

	while (s->conn && s->qlen) {
		if (queue_at(s, 0)->qos && !window_open(s))
			return;
		queue_pop(s, &o);
		if (o.qos == 0)
			send_qos0(s, &o);
		else
			start_inflight(s, &o);
	}
}

/* Every delivery comes through here. Takes its own reference to m. */
static void offer(struct mqtt_sess *s, struct message *m, uint8_t qos, bool retain)
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
	if (s->conn && s->qlen == 0) {
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

/* ---- attach / detach ---- */

void mqtt_sess_attach(struct mqtt_sess *s, struct conn *c, void *owner, uint8_t level)
{
	size_t i;

	away_remove(s);
	s->expires_ms = 0;
	s->conn = c;
	s->owner = owner;
	s->level = level;
	/* MQTT-4.4.0-1: unacknowledged PUBLISH and PUBREL again, with their
	 * original packet identifiers. */
	for (i = 0; i < s->ninflight; i++) {
		struct mqtt_out *o = &s->inflight[i];

		if (o->state == MQTT_OUT_WAIT_COMP)
			send_pubrel(s, o->id);
		else
			send_publish(s, o, true);
	}
	drain(s);
}

void mqtt_sess_detach(struct mqtt_sess *s)
{
	uint32_t expiry = s->cfg->mqtt_session_expiry;

	s->conn = NULL;
	s->owner = NULL;
	if (s->clean)
		return;
	s->expires_ms = expiry ? clock_now_ms() + (uint64_t)expiry * 1000 : 0;
	mqtt_persist_session(s);   /* its absence (and expiry) starts now */
	/* Expiring sessions stay in order of their deadline only if every
	 * one has one; a session kept forever goes nowhere near the head. */
	if (s->expires_ms)
		away_append(s);
}

/* ---- subscriptions ---- */

static uint8_t max_granted(struct router_sub *const *subs, size_t n)
{
	uint8_t q = 0;

	for (size_t i = 0; i < n; i++) {
		const struct mqtt_sub *sub = router_sub_user(subs[i]);

		if (sub->qos > q)
			q = sub->qos;
	}
	return q;
}

/* Router callback: one call per message with every matching subscription
 * of this session; MQTT-3.3.5-1 lets us deliver once at the highest QoS.
 * A live delivery carries RETAIN 0 (MQTT-3.3.1-9). */
static void sess_deliver(void *owner, struct message *m, struct router_sub *const *subs,
			 size_t n)
{
	struct mqtt_sess *s = owner;
	uint8_t granted = max_granted(subs, n);

	offer(s, m, m->qos < granted ? m->qos : granted, false);
}

static struct mqtt_sub *find_sub(struct mqtt_sess *s, const uint8_t *f, size_t len,
				 size_t *idx)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (s->subs[i]->len == len && !memcmp(s->subs[i]->filter, f, len)) {
			if (idx)
				*idx = i;
			return s->subs[i];
		}
	return NULL;
}

/* "$share/group/filter" -> router_subscribe_shared. */
static struct router_sub *subscribe_router(struct mqtt_sess *s, struct mqtt_sub *sub)
{
	static const char share[] = "$share/";
	const size_t sl = sizeof(share) - 1;
	const char *g, *slash;
	int err;

	if (sub->len > sl && !memcmp(sub->filter, share, sl)) {
		g = sub->filter + sl;
		slash = memchr(g, '/', sub->len - sl);
		if (!slash)
			return NULL;
		sub->shared = true;
		return router_subscribe_shared(s->router, g, (size_t)(slash - g), slash + 1,
					       sub->len - (size_t)(slash + 1 - sub->filter),
					       s, sess_deliver, sub, &err);
	}
	return router_subscribe(s->router, sub->filter, sub->len, s, sess_deliver, sub, &err);
}

static int subs_reserve(struct mqtt_sess *s)
{
	if (s->nsubs < s->subs_cap)
		return 0;
	size_t cap = s->subs_cap ? s->subs_cap * 2 : 8;
	struct mqtt_sub **v = realloc(s->subs, cap * sizeof(*v));

	if (!v)
		return -1;
	s->subs = v;
	s->subs_cap = cap;
	return 0;
}

uint8_t mqtt_sess_subscribe(struct mqtt_sess *s, const uint8_t *filter, size_t len,
			    uint8_t qos)
{
	struct mqtt_sub *sub = find_sub(s, filter, len, NULL);

	if (qos > 2)
		return MQTT_SUBACK_FAILURE;
	if (sub) {
		sub->qos = qos;
		mqtt_persist_sub(s, sub);
		return qos;
	}
	if (s->nsubs >= s->cfg->mqtt_max_subscriptions || subs_reserve(s) < 0)
		return MQTT_SUBACK_FAILURE;
	sub = calloc(1, sizeof(*sub));
	if (!sub || !(sub->filter = malloc(len + 1))) {
		free(sub);
		return MQTT_SUBACK_FAILURE;
	}
	memcpy(sub->filter, filter, len);
	sub->filter[len] = '\0';
	sub->len = len;
	sub->qos = qos;
	sub->rsub = subscribe_router(s, sub);
	if (!sub->rsub) {
		free(sub->filter);
		free(sub);
		return MQTT_SUBACK_FAILURE;
	}
	s->subs[s->nsubs++] = sub;
	mqtt_persist_sub(s, sub);
	return qos;
}

struct retained_ctx {
	struct mqtt_sess *s;
	uint8_t granted;
};

static void retained_one(void *arg, struct message *m)
{
	struct retained_ctx *x = arg;

	offer(x->s, m, m->qos < x->granted ? m->qos : x->granted, true);
}

void mqtt_sess_send_retained(struct mqtt_sess *s, const uint8_t *filter, size_t len)
{
	struct mqtt_sub *sub = find_sub(s, filter, len, NULL);
	struct retained_ctx x = {s, 0};

	/* Shared subscriptions get no retained messages (as in MQTT 5). */
	if (!sub || sub->shared)
		return;
	x.granted = sub->qos;
	router_retained_foreach(s->router, sub->filter, sub->len, retained_one, &x);
}

bool mqtt_sess_unsubscribe(struct mqtt_sess *s, const uint8_t *filter, size_t len)
{
	size_t i;
	struct mqtt_sub *sub = find_sub(s, filter, len, &i);

	if (!sub)
		return false;
	router_unsubscribe(s->router, sub->rsub);
	mqtt_persist_unsub(s, sub->filter);
	free(sub->filter);
	free(sub);
	s->subs[i] = s->subs[--s->nsubs];
	return true;
}

/* ---- acknowledgements of outbound messages ---- */

static struct mqtt_out *find_inflight(struct mqtt_sess *s, uint16_t id, size_t *idx)
{
	for (size_t i = 0; i < s->ninflight; i++)
		if (s->inflight[i].id == id) {
			*idx = i;
			return &s->inflight[i];
		}
	return NULL;
}

static void inflight_remove(struct mqtt_sess *s, size_t i)
{
	mqtt_persist_msg_done(s, &s->inflight[i]);
	out_release(&s->inflight[i]);
	memmove(&s->inflight[i], &s->inflight[i + 1],
		(s->ninflight - i - 1) * sizeof(*s->inflight));
	s->ninflight--;
}

void mqtt_sess_on_puback(struct mqtt_sess *s, uint16_t id)
{
	size_t i;
	struct mqtt_out *o = find_inflight(s, id, &i);

	if (!o || o->state != MQTT_OUT_WAIT_ACK) {
		log_debug(conn_peer(s->conn), s->client_id, "PUBACK for unknown id %u", id);
		return;
	}
	inflight_remove(s, i);
	drain(s);
}

void mqtt_sess_on_pubrec(struct mqtt_sess *s, uint16_t id)
{
	size_t i;
	struct mqtt_out *o = find_inflight(s, id, &i);

	/* The payload is no longer needed once the client has it: only the
	 * id waits for PUBCOMP. A PUBREC we know nothing of still gets its
	 * PUBREL, so that the client can finish its side. */
	if (o && o->state == MQTT_OUT_WAIT_ACK)
		return;                 /* a QoS 1 id: not ours to release */
	if (o && o->state == MQTT_OUT_WAIT_REC) {
		o->state = MQTT_OUT_WAIT_COMP;
		out_release(o);
		mqtt_persist_msg(s, o, MQTT_OUT_WAIT_COMP);
	}
	send_pubrel(s, id);
}

void mqtt_sess_on_pubcomp(struct mqtt_sess *s, uint16_t id)
{
	size_t i;
	struct mqtt_out *o = find_inflight(s, id, &i);

	if (!o || o->state != MQTT_OUT_WAIT_COMP) {
		log_debug(conn_peer(s->conn), s->client_id, "PUBCOMP for unknown id %u", id);
		return;
	}
	inflight_remove(s, i);
	drain(s);
}

/* ---- inbound QoS 2 ---- */

bool mqtt_sess_qos2_held(const struct mqtt_sess *s, uint16_t id)
{
	return s->qos2_in && (s->qos2_in[id >> 3] & (1u << (id & 7)));
}

int mqtt_sess_qos2_hold(struct mqtt_sess *s, uint16_t id)
{
	if (!s->qos2_in && !(s->qos2_in = calloc(65536 / 8, 1)))
		return -1;
	if (!mqtt_sess_qos2_held(s, id)) {
		s->qos2_in[id >> 3] |= (uint8_t)(1u << (id & 7));
		s->nqos2_in++;
		mqtt_persist_qos2(s, id, true);
	}
	return 0;
}

void mqtt_sess_qos2_release(struct mqtt_sess *s, uint16_t id)
{
	if (!mqtt_sess_qos2_held(s, id))
		return;
	mqtt_persist_qos2(s, id, false);
	s->qos2_in[id >> 3] &= (uint8_t)~(1u << (id & 7));
	/* The 8 KiB map exists only while some id is held. */
	if (--s->nqos2_in == 0) {
		free(s->qos2_in);
		s->qos2_in = NULL;
	}
}

/* ---- start-up ---- */

void mqtt_sess_restore_msg(struct mqtt_sess *s, const struct mqtt_out *o,
			   enum mqtt_out_state state)
{
	struct mqtt_out c = *o;

	c.m = c.m ? message_ref(c.m) : NULL;
	if (state != MQTT_OUT_QUEUED && c.id && !id_in_flight(s, c.id)) {
		if (s->ninflight == s->inflight_cap) {
			size_t cap = s->inflight_cap ? s->inflight_cap * 2 : 8;
			struct mqtt_out *v = realloc(s->inflight, cap * sizeof(*v));

			if (!v)
				goto oom;
			s->inflight = v;
			s->inflight_cap = cap;
		}
		c.state = (uint8_t)state;
		if (state == MQTT_OUT_WAIT_COMP)
			out_release(&c);
		s->inflight[s->ninflight++] = c;
		return;
	}
	/* Queued, whatever mqtt_max_queued says now: it was accepted. */
	if (!c.m)
		return;      /* a release with no id cannot be finished */
	c.id = 0;
	c.state = 0;
	if (s->qlen == s->qcap && queue_grow(s) < 0)
		goto oom;
	*queue_at(s, s->qlen) = c;
	s->qlen++;
	return;
oom:
	out_release(&c);
	count_drop(s);
}

static int by_deadline(const void *a, const void *b)
{
	const struct mqtt_sess *x = *(struct mqtt_sess *const *)a;
	const struct mqtt_sess *y = *(struct mqtt_sess *const *)b;

	return x->expires_ms < y->expires_ms ? -1 : x->expires_ms > y->expires_ms;
}

void mqtt_sess_restore_done(void)
{
	struct mqtt_sess **v;
	size_t n = 0, i;

	v = malloc((table_count ? table_count : 1) * sizeof(*v));
	for (i = 0; i < table_cap; i++)
		for (struct mqtt_sess *s = table[i]; s; s = s->hnext)
			if (!s->conn && s->expires_ms) {
				away_remove(s);
				if (v)
					v[n++] = s;
				else
					away_append(s);
			}
	if (!v)
		return;
	qsort(v, n, sizeof(*v), by_deadline);
	for (i = 0; i < n; i++)
		away_append(v[i]);
	free(v);
}
