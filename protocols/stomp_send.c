/* stomp_send: SEND (a frame becomes a struct message for the router, and a
 * queue message a row in the store) and COMMIT, which applies what a
 * transaction held (stomp_tx.c keeps it) all or nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "route/message.h"
#include "route/router.h"
#include "stomp_session.h"
#include "net/conn.h"

/* ---- SEND ---- */

/* Headers that describe the frame rather than the message. */
static bool frame_header(const char *n)
{
	static const char *const names[] = { "destination", "transaction", "receipt",
					      "content-length", "content-type", "message-id",
					      "subscription", "ack", "redelivered", NULL };
	for (size_t i = 0; names[i]; i++)
		if (strcmp(n, names[i]) == 0)
			return true;
	return false;
}

/* The sender's own headers travel as message properties; of a repeated
 * header only the first counts. */
static int copy_props(struct message *m, const struct stomp_frame *f)
{
	for (size_t i = 0; i < f->nheaders; i++) {
		const struct stomp_header *h = &f->headers[i];
		if (frame_header(h->name) || stomp_frame_header(f, h->name) != h)
			continue;
		if (message_add_prop(m, h->name, h->name_len, h->value, h->value_len) < 0)
			return STOMP_ENOMEM;
	}
	return 0;
}

static struct message *message_of(const struct stomp_frame *f, const char *topic, size_t tlen)
{
	struct message *m = message_new(topic, tlen, f->body, f->body_len);
	if (!m)
		return NULL;
	const struct stomp_header *ct = stomp_frame_header(f, "content-type");
	const char *persistent = stomp_frame_get(f, "persistent");
	if (persistent && strcmp(persistent, "true") == 0)
		m->qos = 1;   /* the store keeps what is sent with persistent:true */
	if ((ct && message_set_content_type(m, ct->value, ct->value_len) < 0) ||
	    copy_props(m, f) < 0) {
		message_unref(m);
		return NULL;
	}
	return m;
}

static int queue_full(struct stomp_session *s, const struct stomp_frame *f, const char *queue)
{
	char d[200];
	snprintf(d, sizeof(d), "queue '%.100s' holds its limit of %zu messages", queue,
		 s->cfg->queue_max_messages);
	return stomp_fail(s, f, "queue full", d);
}

/* The router refused a queue SEND (or the COMMIT holding it). */
static int queue_refused(struct stomp_session *s, const struct stomp_frame *f, int err)
{
	return stomp_fail(s, f, err == ROUTER_ENOMEM ? "out of memory" : "invalid destination", NULL);
}

/* queue NULL: publish on m->topic. A queue message is written to the store
 * before the router sees it (stomp_store.c says why), and the router is
 * asked first whether it will take it, so that the store only gets writes
 * that stand. */
static int deliver_send(struct stomp_session *s, const struct stomp_frame *f, struct message *m,
			const char *queue, size_t qlen)
{
	if (!queue) {
		router_publish(s->r, m);
		return 0;
	}
	int r = router_queue_reserve(s->r, queue, qlen, 1);
	if (r == ROUTER_EFULL)
		return queue_full(s, f, queue);
	if (r < 0)
		return queue_refused(s, f, r);
	if (stomp_store_queue_msg(s, m, queue) < 0)
		return stomp_fail(s, f, "out of memory", NULL);
	r = router_queue_send(s->r, queue, qlen, m);
	return r < 0 ? queue_refused(s, f, r) : 0;   /* not after the reservation */
}

int stomp_on_send(struct stomp_session *s, const struct stomp_frame *f)
{
	conn_count_publish(s->c);
	const char *dest = stomp_frame_get(f, "destination");
	if (!dest || !*dest)
		return stomp_fail(s, f, "missing destination header", NULL);
	struct stomp_dest d;
	if (stomp_dest_take(s, f, dest, false, &d) < 0)
		return STOMP_CLOSED;
	struct message *m = message_of(f, d.name, d.len);
	if (!m) {
		free(d.name);
		return stomp_fail(s, f, "out of memory", NULL);
	}
	bool is_queue = d.kind == STOMP_DEST_QUEUE;
	bool absent;
	struct stomp_tx *tx = stomp_tx_of(s, f, &absent);
	if (!tx && !absent) {
		free(d.name);
		message_unref(m);
		return STOMP_CLOSED;
	}
	if (tx) {
		struct stomp_op op = { .kind = STOMP_OP_SEND, .m = m,
				       .queue = is_queue ? d.name : NULL, .qlen = d.len };
		if (!is_queue)
			free(d.name);
		return stomp_tx_add(s, tx, f, &op, f->body_len + d.len);
	}
	int r = deliver_send(s, f, m, is_queue ? d.name : NULL, d.len);
	free(d.name);
	message_unref(m);
	return r;
}

/* A COMMIT applies all its frames or none: the router must take all its
 * SENDs to each queue first. 0, or the router's error with *queue set to
 * the queue that refused. Distinct queues in one transaction are few; the
 * scan is O(ops x distinct queues). */
static int tx_reserve(struct stomp_session *s, const struct stomp_tx *t, const char **queue)
{
	for (size_t i = 0; i < t->nops; i++) {
		const struct stomp_op *op = &t->ops[i];
		if (op->kind != STOMP_OP_SEND || !op->queue)
			continue;
		bool seen = false;
		size_t n = 0;
		for (size_t j = 0; j < t->nops && !seen; j++) {
			const struct stomp_op *o = &t->ops[j];
			if (o->kind != STOMP_OP_SEND || !o->queue || strcmp(o->queue, op->queue) != 0)
				continue;
			if (j < i)
				seen = true;   /* counted at its first SEND already */
			else
				n++;
		}
		int r = seen ? 0 : router_queue_reserve(s->r, op->queue, op->qlen, n);
		if (r < 0) {
			*queue = op->queue;
			return r;
		}
	}
	return 0;
}

int stomp_on_commit(struct stomp_session *s, const struct stomp_frame *f)
{
	struct stomp_tx t;
	if (stomp_tx_end(s, f, &t) < 0)
		return STOMP_CLOSED;
	const char *queue;
	int r = tx_reserve(s, &t, &queue);
	if (r == ROUTER_EFULL) {
		char d[240];
		snprintf(d, sizeof(d), "queue '%.100s' has no room for this transaction's messages "
			 "(limit %zu); nothing of the transaction was applied", queue,
			 s->cfg->queue_max_messages);
		r = stomp_fail(s, f, "queue full", d);
	} else if (r < 0) {
		r = queue_refused(s, f, r);
	}
	if (r < 0) {
		stomp_tx_release(&t);
		return r;
	}
	for (size_t i = 0; i < t.nops && r == 0; i++) {
		struct stomp_op *op = &t.ops[i];
		if (op->kind == STOMP_OP_SEND)
			r = deliver_send(s, f, op->m, op->queue, op->qlen);
		else
			stomp_apply_ack(s, op->subnum, op->seq, op->kind == STOMP_OP_NACK);
	}
	stomp_tx_release(&t);
	return r;
}
