/* router: topics, subscriptions, queues and retained messages, for any
 * protocol. It deals in struct message and filters in router form (levels
 * split by '/', wildcards '+' one level and '#' the rest, MQTT rules) and
 * knows no wire format: STOMP maps "/topic/a.b" to "a/b" before calling in.
 * Topic matching walks a trie, never a scan of all subscriptions. A topic
 * whose first level starts with '$' is not matched by a filter whose first
 * level is a wildcard.
 *
 * Delivery is synchronous: router_publish calls each matching owner's
 * deliver function before it returns. A deliver function must not
 * subscribe, unsubscribe or publish re-entrantly on the same router; a
 * session that needs to defer work queues it itself. */
#ifndef WSB_ROUTER_H
#define WSB_ROUTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "message.h"

struct router;
struct router_sub;
struct router_consumer;

enum router_err {
	ROUTER_OK = 0,
	ROUTER_ENOMEM = -1,
	ROUTER_EINVAL = -2,   /* bad filter or topic */
	ROUTER_EFULL = -3     /* queue at its bound */
};

struct router_limits {
	size_t queue_max_messages;   /* per queue, default 100000 */
};

struct router *router_new(const struct router_limits *lim);
void router_free(struct router *r);

/* Validation of router-form names (MQTT rules): a topic has no wildcards
 * and is not empty; in a filter '+' and '#' fill a whole level and '#' is
 * last. 1 valid, 0 not. */
int router_topic_valid(const char *topic, size_t len);
int router_filter_valid(const char *filter, size_t len);
/* 1 when topic matches filter (same rules as the trie). */
int router_match(const char *filter, size_t flen, const char *topic, size_t tlen);

/* ---- topics ---- */

/* Called once per owner per published message, with every subscription of
 * that owner that matched (n >= 1), so that a protocol can deliver once per
 * client (MQTT: highest QoS) or once per subscription (its choice). */
typedef void (*router_deliver_fn)(void *owner, struct message *m,
				  struct router_sub *const *subs, size_t n);

/* Subscribe owner to filter. `user` is the session's own handle for this
 * subscription (STOMP subscription id, MQTT granted QoS ...), returned by
 * router_sub_user. Returns NULL with *err set on failure. */
struct router_sub *router_subscribe(struct router *r, const char *filter, size_t flen,
				    void *owner, router_deliver_fn fn, void *user,
				    int *err);
void router_unsubscribe(struct router *r, struct router_sub *s);
void *router_sub_user(const struct router_sub *s);
const char *router_sub_filter(const struct router_sub *s);
/* $share/group/filter: members of a group take turns (round-robin). */
struct router_sub *router_subscribe_shared(struct router *r, const char *group, size_t glen,
					   const char *filter, size_t flen,
					   void *owner, router_deliver_fn fn, void *user,
					   int *err);

/* Fan m out to every matching subscription. Returns the number of owners
 * reached. The router takes its own references; the caller keeps its own. */
size_t router_publish(struct router *r, struct message *m);

/* ---- retained messages ---- */

/* Store m as the retained message of its topic (replacing the previous one),
 * or clear it when m->payload_len == 0. */
void router_retain(struct router *r, struct message *m);
/* Call fn for every retained message whose topic matches filter. */
void router_retained_foreach(struct router *r, const char *filter, size_t flen,
			     void (*fn)(void *arg, struct message *m), void *arg);
size_t router_retained_count(const struct router *r);

/* ---- queues: each message to exactly one consumer ---- */

/* Hands a queue message to a consumer. `tag` identifies this delivery for
 * ack/nack; m->redelivered tells whether it was handed out before. */
typedef void (*router_queue_fn)(void *owner, struct router_consumer *c,
				struct message *m, uint64_t tag);

/* Append m to the named queue (created on first use) and hand it to a
 * consumer with room, round-robin. ROUTER_EFULL when the queue already holds
 * its bound of undelivered messages: nothing is dropped silently. */
int router_queue_send(struct router *r, const char *queue, size_t qlen, struct message *m);
/* Before a send whose side effects cannot be taken back (a store write):
 * make sure the queue (created if need be) takes n more messages, under its
 * bound and with the memory for them. ROUTER_OK: the next n
 * router_queue_send calls on it succeed, if no other call on this queue
 * comes in between. ROUTER_EFULL, ROUTER_ENOMEM or ROUTER_EINVAL otherwise,
 * and nothing changed. A queue made here and never used is forgotten at
 * its next use, as an emptied one is. */
int router_queue_reserve(struct router *r, const char *queue, size_t qlen, size_t n);
/* Register a consumer. max_unacked 0 means unlimited; auto_ack means a
 * message counts as acknowledged as soon as it is handed over. Messages
 * waiting in the queue are handed out before this returns. */
struct router_consumer *router_queue_consume(struct router *r, const char *queue, size_t qlen,
					     void *owner, router_queue_fn fn, void *user,
					     unsigned max_unacked, bool auto_ack, int *err);
void *router_consumer_user(const struct router_consumer *c);
/* Acknowledge one delivery: the message is gone for good. Returns 0, or
 * ROUTER_EINVAL when the tag is unknown for this consumer. */
int router_queue_ack(struct router *r, struct router_consumer *c, uint64_t tag);
/* Return one delivery to the front of its queue, flagged redelivered, and
 * hand it to a consumer again (round-robin, possibly the same). */
int router_queue_nack(struct router *r, struct router_consumer *c, uint64_t tag);
/* Remove the consumer; its unacknowledged messages return to the front of
 * the queue in their original order, flagged redelivered. */
void router_queue_cancel(struct router *r, struct router_consumer *c);
/* Messages waiting (not handed out) in a queue; 0 for an unknown queue. */
size_t router_queue_depth(const struct router *r, const char *queue, size_t qlen);

/* ---- statistics ---- */
struct router_stats {
	uint64_t published;
	uint64_t delivered;       /* owner deliveries */
	size_t subscriptions;
	size_t queues;
};
void router_get_stats(const struct router *r, struct router_stats *out);

#endif
