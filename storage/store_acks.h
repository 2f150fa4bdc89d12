/* store_acks: a session's answers that wait for the store's commit (MQTT's
 * PUBACK / PUBREC / PUBCOMP, STOMP's RECEIPT), kept in request order.
 *
 * After handling a request the session asks whether its answer must wait:
 * it must when the request wrote (writes queued after the store_submitted()
 * mark taken before it) or when earlier answers still wait, so that answers
 * never overtake each other. A waiting answer sits behind a store_barrier;
 * when that completes, the owner's callback gets the entry's payload and
 * STORE_OK, or the failed commit's status if this entry's own request wrote.
 *
 * It knows no protocol: what an answer is, is the owner's callback and a
 * few payload bytes per entry. It does not answer at once itself (the
 * session does, as it would anyway). Loop thread only. */
#ifndef WSB_STORE_ACKS_H
#define WSB_STORE_ACKS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store.h"

struct store_ack;

/* Answers one request after the commit. payload: the bytes given to
 * store_acks_after (NULL when none were). st: STORE_OK, or the commit's
 * error when this request's own writes failed. The entry is already off the
 * list, so store_acks_pending tells whether later answers still wait. */
typedef void (*store_ack_fn)(void *owner, const void *payload,
			     enum store_status st);

/* Owned by a session, at a stable address; store_acks_detach before it
 * goes. */
struct store_acks {
	struct store *st;
	store_ack_fn fn;
	void *owner;
	struct store_ack *head, *tail;  /* waiting, oldest first */
};

void store_acks_init(struct store_acks *a, struct store *st, store_ack_fn fn,
		     void *owner);
/* True when an answer cannot go out now: the request wrote, or earlier
 * answers still wait. */
bool store_acks_must_wait(const struct store_acks *a, bool wrote);
/* Queues an answer behind the writes made since the mark `since` and
 * behind every answer already waiting; payload (len bytes, may be NULL) is
 * copied. 0, or STORE_ERR_NOMEM with nothing queued. */
int store_acks_after(struct store_acks *a, uint64_t since, bool wrote,
		     const void *payload, size_t len);
bool store_acks_pending(const struct store_acks *a);
/* The session is going: completions still owed find no owner and only free
 * their entry. */
void store_acks_detach(struct store_acks *a);

#endif
