/* router_queue: named queues, each message handed to exactly one consumer.
 *
 * A queue holds its undelivered messages in a ring (a deque: nack and
 * cancel put messages back at the front). Consumers with room for another
 * delivery form the `ready` ring, served round-robin; a consumer that
 * reaches max_unacked leaves it and rejoins at the back when an ack or nack
 * frees room. Unacknowledged deliveries are found by tag through one
 * router-wide hash table.
 *
 * Delivery callbacks may call back into the queue (ack, nack, send,
 * consume, cancel) from inside the callback: dispatch() is not re-entered;
 * a nested call only changes the queue's state, and the outer dispatch
 * loop, which re-reads that state after every callback, picks it up. */
#include <stdlib.h>
#include <string.h>
#include "router_int.h"

struct qdelivery {
	struct ht_link link;                /* in r->tags */
	struct qdelivery *prev, *next;      /* consumer's unacked, oldest first */
	struct message *m;
	struct router_consumer *c;
	uint64_t tag;
};

struct router_consumer {
	struct router_consumer *prev, *next;     /* queue's consumers */
	struct router_consumer *rprev, *rnext;   /* ready ring */
	bool in_ready;
	bool auto_ack;
	unsigned max_unacked;
	struct rqueue *q;
	void *owner;
	router_queue_fn fn;
	void *user;
	struct qdelivery *uhead, *utail;
	size_t nunacked;
};

struct rqueue {
	struct ht_link link;                     /* in r->queues */
	struct message **ring;
	size_t cap, head, count;                 /* cap is 0 or a power of two */
	struct router_consumer *consumers;
	struct router_consumer *ready;           /* whose turn is next */
	size_t nconsumers;
	bool dispatching;
	size_t len;
	char name[];
};

/* ---- the message ring ---- */

static int ring_reserve(struct rqueue *q, size_t extra)
{
	size_t ncap = q->cap ? q->cap : 16, i;
	struct message **nr;

	if (q->count + extra <= q->cap)
		return 0;
	while (ncap < q->count + extra)
		ncap *= 2;
	nr = malloc(ncap * sizeof(*nr));
	if (!nr)
		return -1;
	for (i = 0; i < q->count; i++)
		nr[i] = q->ring[(q->head + i) & (q->cap - 1)];
	free(q->ring);
	q->ring = nr;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

/* Both pushes need room reserved beforehand. */
static void ring_push_back(struct rqueue *q, struct message *m)
{
	q->ring[(q->head + q->count) & (q->cap - 1)] = m;
	q->count++;
}

static void ring_push_front(struct rqueue *q, struct message *m)
{
	q->head = (q->head - 1) & (q->cap - 1);
	q->ring[q->head] = m;
	q->count++;
}

static struct message *ring_pop_front(struct rqueue *q)
{
	struct message *m = q->ring[q->head];

	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	return m;
}

/* ---- queues by name ---- */

static struct rqueue *queue_find(const struct router *r, const char *name, size_t len,
				 uint64_t h)
{
	struct ht_link *l;

	for (l = router_ht_first(&r->queues, h); l; l = l->next) {
		struct rqueue *q = ROUTER_CONTAINER(l, struct rqueue, link);

		if (l->hash == h && q->len == len && memcmp(q->name, name, len) == 0)
			return q;
	}
	return NULL;
}

static struct rqueue *queue_get(struct router *r, const char *name, size_t len)
{
	uint64_t h = router_hash_bytes(r->seed, name, len);
	struct rqueue *q = queue_find(r, name, len, h);

	if (q)
		return q;
	q = calloc(1, sizeof(*q) + len + 1);
	if (!q)
		return NULL;
	q->len = len;
	memcpy(q->name, name, len);
	q->link.hash = h;
	if (router_ht_insert(&r->queues, &q->link) < 0) {
		free(q);
		return NULL;
	}
	r->nqueues++;
	return q;
}

/* A queue nobody uses and that holds nothing is forgotten, so names a
 * client invents do not accumulate. Never while its dispatch loop runs. */
static void queue_maybe_free(struct router *r, struct rqueue *q)
{
	if (q->dispatching || q->count || q->nconsumers)
		return;
	router_ht_remove(&r->queues, &q->link);
	free(q->ring);
	free(q);
	r->nqueues--;
}

/* ---- consumers ---- */

static bool has_room(const struct router_consumer *c)
{
	return c->auto_ack || c->max_unacked == 0 || c->nunacked < c->max_unacked;
}

/* Joins the ready ring at the back: its turn comes after the others'. */
static void ready_add(struct rqueue *q, struct router_consumer *c)
{
	struct router_consumer *h = q->ready;

	if (c->in_ready)
		return;
	c->in_ready = true;
	if (!h) {
		c->rnext = c->rprev = c;
		q->ready = c;
		return;
	}
	c->rnext = h;
	c->rprev = h->rprev;
	h->rprev->rnext = c;
	h->rprev = c;
}

static void ready_del(struct rqueue *q, struct router_consumer *c)
{
	if (!c->in_ready)
		return;
	c->in_ready = false;
	if (c->rnext == c) {
		q->ready = NULL;
		return;
	}
	if (q->ready == c)
		q->ready = c->rnext;
	c->rprev->rnext = c->rnext;
	c->rnext->rprev = c->rprev;
}

static void unacked_unlink(struct router *r, struct qdelivery *d)
{
	struct router_consumer *c = d->c;

	if (d->prev)
		d->prev->next = d->next;
	else
		c->uhead = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		c->utail = d->prev;
	c->nunacked--;
	router_ht_remove(&r->tags, &d->link);
}

/* ---- dispatch ---- */

/* Hands the front message to the consumer whose turn it is. All
 * bookkeeping is done before the callback, which may ack, nack or even
 * cancel this consumer. */
static int hand_out(struct router *r, struct rqueue *q)
{
	struct router_consumer *c = q->ready;
	struct message *m = q->ring[q->head];
	uint64_t tag = ++r->next_tag;
	struct qdelivery *d;

	if (!c->auto_ack) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return -1;
		d->m = m;
		d->c = c;
		d->tag = tag;
		d->link.hash = router_hash_u64(r->seed, tag);
		if (router_ht_insert(&r->tags, &d->link) < 0) {
			free(d);
			return -1;
		}
		d->prev = c->utail;
		if (c->utail)
			c->utail->next = d;
		else
			c->uhead = d;
		c->utail = d;
		c->nunacked++;
		/* The delivery owns the queue's reference; this one keeps m
		 * alive through the callback even if it acks at once. */
		message_ref(m);
	}
	ring_pop_front(q);
	q->ready = c->rnext;
	if (!has_room(c))
		ready_del(q, c);
	r->delivered++;
	c->fn(c->owner, c, m, tag);
	message_unref(m);
	return 0;
}

static void dispatch(struct router *r, struct rqueue *q)
{
	if (q->dispatching)
		return;
	q->dispatching = true;
	while (q->count && q->ready)
		if (hand_out(r, q) < 0)
			break;   /* OOM: the message stays queued for a later try */
	q->dispatching = false;
	queue_maybe_free(r, q);
}

/* ---- public ---- */

int router_queue_send(struct router *r, const char *queue, size_t qlen, struct message *m)
{
	struct rqueue *q;

	if (!queue || qlen == 0 || !m)
		return ROUTER_EINVAL;
	q = queue_get(r, queue, qlen);
	if (!q)
		return ROUTER_ENOMEM;
	if (q->count >= r->queue_max)
		return ROUTER_EFULL;
	if (ring_reserve(q, 1) < 0) {
		queue_maybe_free(r, q);
		return ROUTER_ENOMEM;
	}
	ring_push_back(q, message_ref(m));
	r->published++;
	dispatch(r, q);
	return ROUTER_OK;
}

int router_queue_reserve(struct router *r, const char *queue, size_t qlen, size_t n)
{
	struct rqueue *q;

	if (!queue || qlen == 0)
		return ROUTER_EINVAL;
	q = queue_get(r, queue, qlen);
	if (!q)
		return ROUTER_ENOMEM;
	/* nack and cancel may have put a queue above its bound */
	if (q->count > r->queue_max || n > r->queue_max - q->count) {
		queue_maybe_free(r, q);
		return ROUTER_EFULL;
	}
	if (ring_reserve(q, n) < 0) {
		queue_maybe_free(r, q);
		return ROUTER_ENOMEM;
	}
	return ROUTER_OK;
}

struct router_consumer *router_queue_consume(struct router *r, const char *queue, size_t qlen,
					     void *owner, router_queue_fn fn, void *user,
					     unsigned max_unacked, bool auto_ack, int *err)
{
	struct router_consumer *c;
	struct rqueue *q;

	if (!queue || qlen == 0 || !fn) {
		if (err)
			*err = ROUTER_EINVAL;
		return NULL;
	}
	q = queue_get(r, queue, qlen);
	c = q ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		if (q)
			queue_maybe_free(r, q);
		if (err)
			*err = ROUTER_ENOMEM;
		return NULL;
	}
	c->q = q;
	c->owner = owner;
	c->fn = fn;
	c->user = user;
	c->max_unacked = max_unacked;
	c->auto_ack = auto_ack;
	c->next = q->consumers;
	if (q->consumers)
		q->consumers->prev = c;
	q->consumers = c;
	q->nconsumers++;
	ready_add(q, c);
	if (err)
		*err = ROUTER_OK;
	dispatch(r, q);
	return c;
}

void *router_consumer_user(const struct router_consumer *c)
{
	return c->user;
}

static struct qdelivery *delivery_find(struct router *r, struct router_consumer *c,
				       uint64_t tag)
{
	uint64_t h = router_hash_u64(r->seed, tag);
	struct ht_link *l;

	for (l = router_ht_first(&r->tags, h); l; l = l->next) {
		struct qdelivery *d = ROUTER_CONTAINER(l, struct qdelivery, link);

		if (d->tag == tag)
			return d->c == c ? d : NULL;
	}
	return NULL;
}

int router_queue_ack(struct router *r, struct router_consumer *c, uint64_t tag)
{
	struct qdelivery *d = c ? delivery_find(r, c, tag) : NULL;

	if (!d)
		return ROUTER_EINVAL;
	unacked_unlink(r, d);
	message_unref(d->m);
	free(d);
	if (has_room(c))
		ready_add(c->q, c);
	dispatch(r, c->q);
	return ROUTER_OK;
}

/* The message to put back, flagged redelivered. A message someone else
 * also holds (a topic subscriber, the callback in progress) is copied
 * rather than changed under them. Without memory for the copy it goes
 * back unflagged: a missing flag is better than a lost message. */
static struct message *flag_redelivered(struct message *m)
{
	struct message *c;

	if (m->redelivered)
		return m;
	if (m->refcnt > 1) {
		c = message_clone(m);
		if (!c)
			return m;
		message_unref(m);
		m = c;
	}
	m->redelivered = true;
	return m;
}

int router_queue_nack(struct router *r, struct router_consumer *c, uint64_t tag)
{
	struct qdelivery *d = c ? delivery_find(r, c, tag) : NULL;
	struct rqueue *q;

	if (!d)
		return ROUTER_EINVAL;
	q = c->q;
	if (ring_reserve(q, 1) < 0)
		return ROUTER_ENOMEM;
	unacked_unlink(r, d);
	ring_push_front(q, flag_redelivered(d->m));
	free(d);
	if (has_room(c))
		ready_add(q, c);
	dispatch(r, q);
	return ROUTER_OK;
}

/* Puts every unacked delivery of c back at the front, oldest first. */
static void return_unacked(struct router *r, struct router_consumer *c)
{
	struct rqueue *q = c->q;
	bool room = ring_reserve(q, c->nunacked) == 0;
	struct qdelivery *d;

	while ((d = c->utail)) {
		unacked_unlink(r, d);
		if (room)
			ring_push_front(q, flag_redelivered(d->m));
		else
			message_unref(d->m);   /* OOM: nowhere to put it */
		free(d);
	}
}

static void consumer_unlink(struct rqueue *q, struct router_consumer *c)
{
	ready_del(q, c);
	if (c->prev)
		c->prev->next = c->next;
	else
		q->consumers = c->next;
	if (c->next)
		c->next->prev = c->prev;
	q->nconsumers--;
}

void router_queue_cancel(struct router *r, struct router_consumer *c)
{
	struct rqueue *q;

	if (!c)
		return;
	q = c->q;
	consumer_unlink(q, c);
	return_unacked(r, c);
	free(c);
	dispatch(r, q);
}

size_t router_queue_depth(const struct router *r, const char *queue, size_t qlen)
{
	struct rqueue *q;

	if (!queue || qlen == 0)
		return 0;
	q = queue_find(r, queue, qlen, router_hash_bytes(r->seed, queue, qlen));
	return q ? q->count : 0;
}

void router_queues_free(struct router *r)
{
	struct ht_link *l, *next;
	struct router_consumer *c, *cnext;
	struct qdelivery *d, *dnext;
	size_t i;

	for (i = 0; r->queues.b && i <= r->queues.mask; i++) {
		for (l = r->queues.b[i]; l; l = next) {
			struct rqueue *q = ROUTER_CONTAINER(l, struct rqueue, link);

			next = l->next;
			for (c = q->consumers; c; c = cnext) {
				cnext = c->next;
				for (d = c->uhead; d; d = dnext) {
					dnext = d->next;
					message_unref(d->m);
					free(d);
				}
				free(c);
			}
			while (q->count)
				message_unref(ring_pop_front(q));
			free(q->ring);
			free(q);
		}
	}
	router_ht_free(&r->queues);
	router_ht_free(&r->tags);
	r->nqueues = 0;
}
