/* stomp_sub: SUBSCRIBE and UNSUBSCRIBE, MESSAGE delivery from the router,
 * and ACK/NACK. Each MESSAGE carries message-id "<session>-<sub>-<seq>"
 * (also its 1.2 ack header), so an ACK names its subscription and delivery
 * without a lookup table; a subscription keeps its unacknowledged
 * deliveries in seq order, which makes a cumulative ACK a prefix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "grow.h"
#include "config.h"
#include "net/conn.h"
#include "log.h"
#include "route/message.h"
#include "route/router.h"
#include "stomp_session.h"
#include "store.h"
#include "utf8.h"

/* ---- the subscription table ---- */

static struct stomp_sub *sub_by_id(struct stomp_session *s, const char *id)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (strcmp(s->subs[i]->id, id) == 0)
			return s->subs[i];
	return NULL;
}

static struct stomp_sub *sub_by_num(struct stomp_session *s, uint32_t num)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (s->subs[i]->num == num)
			return s->subs[i];
	return NULL;
}

static void sub_remove(struct stomp_session *s, struct stomp_sub *sub)
{
	for (size_t i = 0; i < s->nsubs; i++) {
		if (s->subs[i] == sub) {
			s->subs[i] = s->subs[--s->nsubs];
			return;
		}
	}
}

/* Leave the router (a queue takes back what was not acknowledged), then
 * free. The sub must already be out of the table. */
static void sub_release(struct stomp_session *s, struct stomp_sub *sub)
{
	if (sub->rsub)
		router_unsubscribe(s->r, sub->rsub);
	if (sub->cons)
		router_queue_cancel(s->r, sub->cons);
	free(sub->id);
	free(sub->dest);
	free(sub->queue);
	free(sub->pend);
	free(sub);
}

void stomp_subs_free(struct stomp_session *s)
{
	while (s->nsubs) {
		struct stomp_sub *sub = s->subs[s->nsubs - 1];
		s->nsubs--;
		sub_release(s, sub);
	}
	free(s->subs);
	s->subs = NULL;
	s->subcap = 0;
}

/* ---- pending deliveries ---- */

static int pend_push(struct stomp_sub *sub, uint64_t seq, uint64_t tag, uint64_t store_seq)
{
	if (grow(&sub->pend, &sub->pcap, sub->npend, sizeof(*sub->pend), 16) < 0)
		return STOMP_ENOMEM;
	sub->pend[sub->npend++] = (struct stomp_pending){ seq, tag, store_seq };
	return 0;
}

static long pend_find(const struct stomp_sub *sub, uint64_t seq)
{
	size_t lo = 0, hi = sub->npend;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sub->pend[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < sub->npend && sub->pend[lo].seq == seq) ? (long)lo : -1;
}

/* ---- MESSAGE ---- */

/* Headers the broker writes itself; a property with one of these names
 * (an MQTT user property, say) would only confuse the reader. */
static bool reserved_name(const char *n)
{
	static const char *const names[] = { "destination", "message-id", "subscription", "ack",
					      "content-type", "content-length", "redelivered",
					      "receipt", "transaction", NULL };
	for (size_t i = 0; names[i]; i++)
		if (strcmp(n, names[i]) == 0)
			return true;
	return false;
}

/* ---- MESSAGE for topic subscribers, encoded once per message ----
 * For every subscriber of one protocol version a topic MESSAGE is the same
 * bytes except the headers that name the delivery (message-id, subscription,
 * ack), which sit together after the destination. So the part before them
 * (head) and after them (tail, with the body) are encoded once per message
 * and version and copied; only the middle is written per subscriber. The
 * fan-out is synchronous, so the cache holds the message being fanned out;
 * a message is named by pointer, id and redelivered flag together, so that a
 * reused address (or a redelivered clone) is no match. Each piece begins
 * after a '\n' (or at the frame's start) and ends with an ASCII byte, so the
 * frame is valid UTF-8 exactly when each piece is. The cache is the
 * broker's (struct stomp_broker), shared by its sessions. */

void stomp_held_frames_free(struct stomp_broker *b)
{
	for (size_t i = 0; i < sizeof(b->held) / sizeof(b->held[0]); i++) {
		stomp_buf_free(&b->held[i].head);
		stomp_buf_free(&b->held[i].tail);
		b->held[i].m = NULL;
	}
}

static int encode_head(struct stomp_buf *b, enum stomp_version v, const struct stomp_buf *dest)
{
	return stomp_encode_command(b, STOMP_MESSAGE) < 0 ||
	       stomp_encode_header(b, v, STOMP_MESSAGE, "destination", 11,
				   (const char *)dest->data, dest->len) < 0 ? STOMP_ENOMEM : 0;
}

static int encode_tail(struct stomp_buf *b, enum stomp_version v, const struct message *m)
{
	const enum stomp_command C = STOMP_MESSAGE;
	char cl[24];
	snprintf(cl, sizeof(cl), "%zu", m->payload_len);
	if ((m->content_type && stomp_encode_header_str(b, v, C, "content-type", m->content_type) < 0) ||
	    stomp_encode_header_str(b, v, C, "content-length", cl) < 0 ||
	    (m->redelivered && stomp_encode_header_str(b, v, C, "redelivered", "true") < 0))
		return STOMP_ENOMEM;
	for (size_t i = 0; i < m->nprops; i++) {
		if (reserved_name(m->props[i].name))
			continue;
		if (stomp_encode_header_str(b, v, C, m->props[i].name, m->props[i].value) < 0)
			return STOMP_ENOMEM;
	}
	return stomp_encode_body(b, m->payload, m->payload_len);
}

/* A queue MESSAGE: head, this delivery's headers, tail, into s->out. The
 * destination is the one the consumer subscribed to. */
static int encode_message(struct stomp_session *s, const struct stomp_sub *sub,
			  const struct message *m, uint64_t seq)
{
	const enum stomp_command C = STOMP_MESSAGE;
	const enum stomp_version v = s->v;
	struct stomp_buf *b = &s->out;
	char mid[96];
	snprintf(mid, sizeof(mid), "%s-%u-%llu", s->id, (unsigned)sub->num, (unsigned long long)seq);
	b->len = 0;
	s->tmp.len = 0;
	if (stomp_buf_append(&s->tmp, sub->dest, strlen(sub->dest)) < 0 ||
	    encode_head(b, v, &s->tmp) < 0 ||
	    stomp_encode_header_str(b, v, C, "message-id", mid) < 0 ||
	    (sub->has_id && stomp_encode_header_str(b, v, C, "subscription", sub->id) < 0) ||
	    (v >= STOMP_V12 && sub->ack != STOMP_ACK_AUTO &&
	     stomp_encode_header_str(b, v, C, "ack", mid) < 0))
		return STOMP_ENOMEM;
	return encode_tail(b, v, m);
}

/* The head and tail of m for version v, encoded now unless held already. */
static struct stomp_held_frame *held_for(struct stomp_session *s, const struct message *m)
{
	struct stomp_held_frame *h = &s->b->held[s->v];
	if (h->m == m && h->id == m->id && h->redelivered == m->redelivered)
		return h;
	h->m = NULL;
	h->head.len = h->tail.len = 0;
	if (stomp_dest_of_topic(&s->tmp, m->topic, m->topic_len) < 0 ||
	    encode_head(&h->head, s->v, &s->tmp) < 0 || encode_tail(&h->tail, s->v, m) < 0)
		return NULL;
	h->m = m;
	h->id = m->id;
	h->redelivered = m->redelivered;
	h->utf8 = utf8_valid(h->head.data, h->head.len) && utf8_valid(h->tail.data, h->tail.len);
	h->now_ms = clock_now_ms();
	return h;
}

static char *put_u64(char *p, uint64_t x)
{
	char d[20];
	size_t n = 0;
	do {
		d[n++] = (char)('0' + x % 10);
		x /= 10;
	} while (x);
	while (n)
		*p++ = d[--n];
	return p;
}

/* "<session>-<sub>-<seq>": the session id is ours ("wsb-N") and the rest
 * digits, so the value needs no escaping in any version. */
static size_t format_mid(char *out, const struct stomp_session *s, uint32_t num, uint64_t seq)
{
	size_t n = strlen(s->id);
	memcpy(out, s->id, n);
	char *p = out + n;
	*p++ = '-';
	p = put_u64(p, num);
	*p++ = '-';
	p = put_u64(p, seq);
	return (size_t)(p - out);
}

static int put_raw_header(struct stomp_buf *b, const char *name, size_t nlen, const char *v,
			  size_t vlen)
{
	if (stomp_buf_reserve(b, nlen + vlen + 2) < 0)
		return STOMP_ENOMEM;
	memcpy(b->data + b->len, name, nlen);
	b->data[b->len + nlen] = ':';
	memcpy(b->data + b->len + nlen + 1, v, vlen);
	b->data[b->len + nlen + 1 + vlen] = '\n';
	b->len += nlen + vlen + 2;
	return 0;
}

/* head, this delivery's headers, tail: into s->out. */
static int encode_topic_message(struct stomp_session *s, const struct stomp_sub *sub,
				const struct stomp_held_frame *h, uint64_t seq, bool *utf8)
{
	struct stomp_buf *b = &s->out;
	char mid[sizeof(s->id) + 32];
	size_t midlen = format_mid(mid, s, sub->num, seq);
	b->len = 0;
	if (stomp_buf_append(b, h->head.data, h->head.len) < 0)
		return STOMP_ENOMEM;
	size_t mstart = b->len;
	if (put_raw_header(b, "message-id", 10, mid, midlen) < 0 ||
	    (sub->has_id && stomp_encode_header(b, s->v, STOMP_MESSAGE, "subscription", 12,
						sub->id, strlen(sub->id)) < 0) ||
	    (s->v >= STOMP_V12 && sub->ack != STOMP_ACK_AUTO &&
	     put_raw_header(b, "ack", 3, mid, midlen) < 0))
		return STOMP_ENOMEM;
	*utf8 = h->utf8 && utf8_valid(b->data + mstart, b->len - mstart);
	return stomp_buf_append(b, h->tail.data, h->tail.len);
}

/* stomp_flush_out, with the fan-out's clock reading. */
static int flush_at(struct stomp_session *s, bool binary, uint64_t now_ms)
{
	int r = conn_send_type(s->c, s->out.data, s->out.len, binary);
	s->out.len = 0;
	if (r == 0)
		s->last_tx = now_ms;
	return r;
}

/* Over WebSocket a frame that is not valid UTF-8 (a binary body, usually)
 * must travel as a binary message. */
static int send_message(struct stomp_session *s, const struct stomp_sub *sub,
			const struct message *m, uint64_t seq)
{
	if (!sub->queue) {
		const struct stomp_held_frame *h = held_for(s, m);
		bool utf8;
		if (!h || encode_topic_message(s, sub, h, seq, &utf8) < 0) {
			s->out.len = 0;
			return STOMP_ENOMEM;
		}
		return flush_at(s, conn_is_websocket(s->c) && !utf8, h->now_ms);
	}
	if (encode_message(s, sub, m, seq) < 0) {
		s->out.len = 0;
		return STOMP_ENOMEM;
	}
	bool binary = conn_is_websocket(s->c) && !utf8_valid(s->out.data, s->out.len);
	return stomp_flush_out(s, binary);
}

static bool cannot_send(struct stomp_session *s)
{
	return s->closed || s->done || conn_closing(s->c);
}

/* Topic messages are at most once: a slow reader or a full ack window
 * loses them, and we count that. */
/* Whether the ACL lets sub's every message through unchecked. */
static bool sub_reads_all(struct stomp_session *s, struct stomp_sub *sub)
{
	const struct acl_holder *h = s->acl;

	if (sub->acl_gen != h->generation) {
		const char *f = router_sub_filter(sub->rsub);

		sub->acl_sub = (uint8_t)acl_check_sub(h->acl, s->login, conn_client_id(s->c), f,
						      strlen(f));
		sub->acl_gen = h->generation;
	}
	return sub->acl_sub == ACL_SUB_ALL;
}

/* With no acl_file, one pointer test. Otherwise a subscription wholly
 * inside a read rule costs nothing per message; the others check the
 * message's topic once (readable is 0 unknown, 1 yes, 2 no). */
static bool may_read(struct stomp_session *s, struct stomp_sub *sub, const struct message *m,
		     int *readable)
{
	if (!s->acl->acl || sub_reads_all(s, sub))
		return true;
	if (!*readable)
		*readable = acl_check(s->acl->acl, s->login, conn_client_id(s->c), ACL_TOPIC,
				      m->topic, m->topic_len, ACL_READ) ? 1 : 2;
	return *readable == 1;
}

static void deliver_topic(void *owner, struct message *m, struct router_sub *const *subs,
			  size_t n)
{
	struct stomp_session *s = owner;
	int readable = 0;
	for (size_t i = 0; i < n && !cannot_send(s); i++) {
		struct stomp_sub *sub = router_sub_user(subs[i]);
		if (!may_read(s, sub, m, &readable))
			continue;
		bool need_ack = sub->ack != STOMP_ACK_AUTO;
		if (conn_congested(s->c) || (need_ack && sub->npend >= s->cfg->stomp_max_unacked)) {
			s->dropped++;
			log_debug(conn_peer(s->c), conn_client_id(s->c),
				  "stomp: dropped a message for %s (slow reader)", sub->dest);
			continue;
		}
		uint64_t seq = ++s->next_seq;
		if (need_ack && pend_push(sub, seq, 0, 0) < 0)
			continue;
		if (send_message(s, sub, m, seq) < 0 && need_ack)
			sub->npend--;
	}
}

/* A queue message the session does not send stays unacknowledged in the
 * router, which hands it to another consumer when this one is cancelled:
 * queue messages are never dropped here. Auto mode acknowledges once the
 * MESSAGE is queued for the socket. The store hears of each hand-out (so
 * that a restart flags it redelivered) and of each acknowledgement (gone). */
static void deliver_queue(void *owner, struct router_consumer *rc, struct message *m,
			  uint64_t tag)
{
	struct stomp_session *s = owner;
	struct stomp_sub *sub = router_consumer_user(rc);
	sub->cons = rc;   /* deliveries can come before router_queue_consume returns */
	if (cannot_send(s))
		return;
	uint64_t seq = ++s->next_seq, store_seq = m->store_seq;
	bool need_ack = sub->ack != STOMP_ACK_AUTO;
	if (need_ack && pend_push(sub, seq, tag, store_seq) < 0)
		return;
	if (send_message(s, sub, m, seq) < 0) {
		if (need_ack)
			sub->npend--;
		return;
	}
	if (need_ack) {
		if (store_seq && !m->redelivered)
			store_queue_mark(s->st, store_seq, true, NULL, NULL);
		return;
	}
	if (conn_congested(s->c)) {
		/* A slow reader in auto mode: acking now would let the router
		 * pour the whole queue into its output. Held, the delivery
		 * counts against stomp_max_unacked, which stops the flow, and
		 * goes back to the queue if the connection dies. */
		if (pend_push(sub, seq, tag, store_seq) == 0) {
			if (s->auto_held++ == 0)
				stomp_arm_timer(s);
			return;
		}
	}
	router_queue_ack(s->r, rc, tag);
	if (store_seq)
		store_queue_delete(s->st, store_seq, NULL, NULL);
}

void stomp_release_auto_held(struct stomp_session *s)
{
	if (cannot_send(s) || conn_congested(s->c))
		return;
	s->auto_held = 0;
	for (size_t i = 0; i < s->nsubs; i++) {
		struct stomp_sub *sub = s->subs[i];
		if (sub->ack != STOMP_ACK_AUTO || !sub->npend || !sub->cons)
			continue;
		/* acking makes room, and the router may deliver (and hold) more
		 * at once: work on a copy */
		size_t n = sub->npend;
		struct stomp_pending *held = malloc(n * sizeof(*held));
		if (!held) {
			s->auto_held = 1;    /* try again at the next tick */
			return;
		}
		memcpy(held, sub->pend, n * sizeof(*held));
		sub->npend = 0;
		for (size_t k = 0; k < n; k++) {
			router_queue_ack(s->r, sub->cons, held[k].tag);
			if (held[k].store_seq)
				store_queue_delete(s->st, held[k].store_seq, NULL, NULL);
		}
		free(held);
	}
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

static bool parse_ack_mode(const char *v, enum stomp_ack_mode *out)
{
	if (!v || strcmp(v, "auto") == 0)
		*out = STOMP_ACK_AUTO;
	else if (strcmp(v, "client") == 0)
		*out = STOMP_ACK_CLIENT;
	else if (strcmp(v, "client-individual") == 0)
		*out = STOMP_ACK_INDIVIDUAL;
	else
		return false;
	return true;
}

static struct stomp_sub *sub_new(struct stomp_session *s, const char *id, bool has_id,
				 const char *dest, enum stomp_ack_mode ack)
{
	if (grow(&s->subs, &s->subcap, s->nsubs, sizeof(*s->subs), 8) < 0)
		return NULL;
	struct stomp_sub *sub = calloc(1, sizeof(*sub));
	if (!sub)
		return NULL;
	sub->s = s;
	sub->num = ++s->next_subnum;
	sub->id = strdup(id);
	sub->dest = strdup(dest);
	sub->has_id = has_id;
	sub->ack = ack;
	if (!sub->id || !sub->dest) {
		free(sub->id);
		free(sub->dest);
		free(sub);
		return NULL;
	}
	s->subs[s->nsubs++] = sub;
	return sub;
}

int stomp_on_subscribe(struct stomp_session *s, const struct stomp_frame *f)
{
	const char *dest = stomp_frame_get(f, "destination");
	if (!dest || !*dest)
		return stomp_fail(s, f, "missing destination header", NULL);
	const char *id = stomp_frame_get(f, "id");
	bool has_id = id != NULL;
	if (!id && s->v >= STOMP_V11)
		return stomp_fail(s, f, "missing id header", "SUBSCRIBE needs an id in STOMP 1.1 and 1.2");
	if (!id)
		id = dest;   /* 1.0: the destination names the subscription */
	if (sub_by_id(s, id))
		return stomp_fail(s, f, "subscription id already in use", NULL);
	if (s->nsubs >= s->cfg->stomp_max_subscriptions) {
		char d[80];
		snprintf(d, sizeof(d), "at most %zu subscriptions per connection",
			 s->cfg->stomp_max_subscriptions);
		return stomp_fail(s, f, "too many subscriptions", d);
	}
	enum stomp_ack_mode ack;
	if (!parse_ack_mode(stomp_frame_get(f, "ack"), &ack))
		return stomp_fail(s, f, "invalid ack mode",
				  "ack must be auto, client or client-individual");
	struct stomp_dest d;
	if (stomp_dest_take(s, f, dest, true, &d) < 0)
		return STOMP_CLOSED;
	int err = 0;          /* the router's answer, if it refuses */
	struct stomp_sub *sub = sub_new(s, id, has_id, dest, ack);
	if (!sub) {
		free(d.name);
		return stomp_fail(s, f, "out of memory", NULL);
	}
	if (d.kind == STOMP_DEST_TOPIC) {
		sub->rsub = router_subscribe(s->r, d.name, d.len, s, deliver_topic, sub, &err);
		free(d.name);
	} else {
		sub->queue = d.name;
		sub->qlen = d.len;
		/* messages waiting in the queue arrive before this returns */
		struct router_consumer *rc =
			router_queue_consume(s->r, d.name, d.len, s, deliver_queue, sub,
					     (unsigned)s->cfg->stomp_max_unacked, false, &err);
		sub->cons = rc;
	}
	if (!sub->rsub && !sub->cons) {
		sub_remove(s, sub);
		sub_release(s, sub);
		return stomp_dest_fail(s, f, dest,
				       err == ROUTER_ENOMEM ? STOMP_DEST_ENOMEM : STOMP_DEST_EINVAL,
				       "to subscribe to");
	}
	return 0;
}

int stomp_on_unsubscribe(struct stomp_session *s, const struct stomp_frame *f)
{
	const char *id = stomp_frame_get(f, "id");
	struct stomp_sub *sub = NULL;
	if (id) {
		sub = sub_by_id(s, id);
	} else {
		/* 1.0 may name the destination instead */
		const char *dest = stomp_frame_get(f, "destination");
		if (s->v >= STOMP_V11 || !dest)
			return stomp_fail(s, f, "missing id header", NULL);
		for (size_t i = 0; i < s->nsubs && !sub; i++)
			if (strcmp(s->subs[i]->dest, dest) == 0)
				sub = s->subs[i];
	}
	/* an unknown id is not worth a disconnect: the goal is already met */
	if (sub) {
		sub_remove(s, sub);
		sub_release(s, sub);
	}
	return 0;
}

/* ---- ACK / NACK ---- */

static bool parse_u64(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t x = 0;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9') {
		if (x > (UINT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(*p++ - '0');
	}
	*pp = p;
	*out = x;
	return true;
}

/* "<session>-<sub>-<seq>" of this session. */
static bool parse_message_id(const struct stomp_session *s, const char *v, uint32_t *num,
			     uint64_t *seq)
{
	size_t n = strlen(s->id);
	uint64_t x;
	if (strncmp(v, s->id, n) != 0 || v[n] != '-')
		return false;
	v += n + 1;
	if (!parse_u64(&v, &x) || x > UINT32_MAX || *v++ != '-' || !parse_u64(&v, seq) || *v)
		return false;
	*num = (uint32_t)x;
	return true;
}

int stomp_on_ack(struct stomp_session *s, const struct stomp_frame *f, bool nack)
{
	/* 1.2 acks by the ack header's value in `id`; 1.0/1.1 by message-id.
	 * Either is accepted in any version: they carry the same text. */
	const char *want = s->v >= STOMP_V12 ? "id" : "message-id";
	const char *v = stomp_frame_get(f, want);
	if (!v)
		v = stomp_frame_get(f, s->v >= STOMP_V12 ? "message-id" : "id");
	if (!v) {
		char m[40];
		snprintf(m, sizeof(m), "missing %s header", want);
		return stomp_fail(s, f, m, NULL);
	}
	uint32_t num;
	uint64_t seq;
	struct stomp_sub *sub = NULL;
	if (parse_message_id(s, v, &num, &seq))
		sub = sub_by_num(s, num);
	const char *sid = stomp_frame_get(f, "subscription");
	if (sub && s->v == STOMP_V11 && sid && strcmp(sid, sub->id) != 0)
		sub = NULL;
	if (!sub || pend_find(sub, seq) < 0) {
		char d[200];
		snprintf(d, sizeof(d), "%s '%.100s' names no message waiting for acknowledgement",
			 nack ? "NACK" : "ACK", v);
		return stomp_fail(s, f, "unknown message id", d);
	}
	bool absent;
	struct stomp_tx *tx = stomp_tx_of(s, f, &absent);
	if (!tx && !absent)
		return STOMP_CLOSED;
	if (tx) {
		struct stomp_op op = { .kind = nack ? STOMP_OP_NACK : STOMP_OP_ACK,
				       .subnum = num, .seq = seq };
		return stomp_tx_add(s, tx, f, &op, 0);
	}
	stomp_apply_ack(s, num, seq, nack);
	return 0;
}

void stomp_apply_ack(struct stomp_session *s, uint32_t subnum, uint64_t seq, bool nack)
{
	struct stomp_sub *sub = sub_by_num(s, subnum);
	long idx = sub ? pend_find(sub, seq) : -1;
	if (idx < 0)
		return;
	/* client mode is cumulative: everything up to this delivery */
	size_t lo = sub->ack == STOMP_ACK_CLIENT ? 0 : (size_t)idx;
	size_t n = (size_t)idx - lo + 1;
	struct stomp_pending one, *done = n == 1 ? &one : malloc(n * sizeof(*done));
	if (done)
		memcpy(done, sub->pend + lo, n * sizeof(*done));
	/* off the list before the router hears of it: a NACK (or the room an
	 * ACK frees) can hand a message to this very subscription at once */
	memmove(sub->pend + lo, sub->pend + idx + 1, (sub->npend - (size_t)idx - 1) * sizeof(*done));
	sub->npend -= n;
	if (!sub->cons || !done) {
		/* topic: nothing to tell; OOM: the router takes them back at cancel */
		if (done != &one)
			free(done);
		return;
	}
	struct router_consumer *rc = sub->cons;
	for (size_t i = 0; i < n; i++) {
		/* NACKs newest first, so that the queue's front keeps their order */
		if (nack)
			router_queue_nack(s->r, rc, done[n - 1 - i].tag);
		else {
			router_queue_ack(s->r, rc, done[i].tag);
			if (done[i].store_seq)
				store_queue_delete(s->st, done[i].store_seq, NULL, NULL);
		}
	}
	if (done != &one)
		free(done);
}
