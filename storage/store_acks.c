#include "store_acks.h"

#include <stdlib.h>
#include <string.h>

/* One answer waiting for a commit; acks is NULL once its owner is gone. */
struct store_ack {
	struct store_ack *next;
	struct store_acks *acks;
	bool wrote;               /* a failed commit is this request's error */
	size_t len;
	unsigned char payload[];
};

void store_acks_init(struct store_acks *a, struct store *st, store_ack_fn fn,
		     void *owner)
{
	*a = (struct store_acks){.st = st, .fn = fn, .owner = owner};
}

bool store_acks_must_wait(const struct store_acks *a, bool wrote)
{
	return wrote || a->head != NULL;
}

bool store_acks_pending(const struct store_acks *a)
{
	return a->head != NULL;
}

static void ack_done(void *arg, enum store_status st)
{
	struct store_ack *e = arg;
	struct store_acks *a = e->acks;

	if (a) {
		/* Barriers complete in the order they were queued: e is the
		 * head. */
		a->head = e->next;
		if (!a->head)
			a->tail = NULL;
		a->fn(a->owner, e->len ? e->payload : NULL,
		      e->wrote ? st : STORE_OK);
	}
	free(e);
}

int store_acks_after(struct store_acks *a, uint64_t since, bool wrote,
		     const void *payload, size_t len)
{
	if (!payload)
		len = 0;
	struct store_ack *e = calloc(1, sizeof(*e) + len);
	if (!e)
		return STORE_ERR_NOMEM;
	e->acks = a;
	e->wrote = wrote;
	e->len = len;
	if (len)
		memcpy(e->payload, payload, len);
	int r = store_barrier(a->st, since, ack_done, e);
	if (r < 0) {
		free(e);
		return r;
	}
	if (a->tail)
		a->tail->next = e;
	else
		a->head = e;
	a->tail = e;
	return 0;
}

void store_acks_detach(struct store_acks *a)
{
	for (struct store_ack *e = a->head; e; e = e->next)
		e->acks = NULL;
	a->head = a->tail = NULL;
}
