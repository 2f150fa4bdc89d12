/* stomp_tx: a session's open transactions (BEGIN ... COMMIT or ABORT).
 * A transaction holds SENDs and ACK/NACKs, within bounds, until COMMIT
 * (stomp_send.c applies them) and drops them at ABORT or disconnect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "grow.h"
#include "route/message.h"
#include "stomp_session.h"

static void op_free(struct stomp_op *op)
{
	if (op->m)
		message_unref(op->m);
	free(op->queue);
	op->m = NULL;
	op->queue = NULL;
}

static struct stomp_tx *tx_find(struct stomp_session *s, const char *id)
{
	for (size_t i = 0; i < s->ntx; i++)
		if (strcmp(s->txs[i].id, id) == 0)
			return &s->txs[i];
	return NULL;
}

/* Takes tx out of the table; the caller frees its contents. */
static struct stomp_tx tx_take(struct stomp_session *s, struct stomp_tx *tx)
{
	struct stomp_tx t = *tx;
	*tx = s->txs[--s->ntx];
	for (size_t i = 0; i < t.nops; i++) {
		s->tx_ops--;
		if (t.ops[i].kind == STOMP_OP_SEND)
			s->tx_bytes -= t.ops[i].m->payload_len + t.ops[i].m->topic_len;
	}
	return t;
}

void stomp_tx_release(struct stomp_tx *t)
{
	for (size_t i = 0; i < t->nops; i++)
		op_free(&t->ops[i]);
	free(t->ops);
	free(t->id);
}

void stomp_tx_free_all(struct stomp_session *s)
{
	for (size_t i = 0; i < s->ntx; i++)
		stomp_tx_release(&s->txs[i]);
	free(s->txs);
	s->txs = NULL;
	s->ntx = 0;
	s->tx_ops = s->tx_bytes = 0;
}

struct stomp_tx *stomp_tx_of(struct stomp_session *s, const struct stomp_frame *f, bool *absent)
{
	const char *id = stomp_frame_get(f, "transaction");
	*absent = id == NULL;
	if (!id)
		return NULL;
	struct stomp_tx *tx = tx_find(s, id);
	if (!tx) {
		char d[160];
		snprintf(d, sizeof(d), "transaction '%.100s' was not begun", id);
		stomp_fail(s, f, "unknown transaction", d);
	}
	return tx;
}

/* What open transactions may hold at once: the output bound is the one a
 * client already agreed to be held to. */
static size_t tx_byte_limit(const struct stomp_session *s)
{
	return s->cfg->out_hard_limit ? s->cfg->out_hard_limit : 16 * s->cfg->stomp_max_body;
}

int stomp_tx_add(struct stomp_session *s, struct stomp_tx *tx, const struct stomp_frame *f,
		 const struct stomp_op *op, size_t bytes)
{
	struct stomp_op o = *op;
	if (s->tx_ops >= s->cfg->stomp_max_tx_frames || bytes > tx_byte_limit(s) - s->tx_bytes) {
		op_free(&o);
		return stomp_fail(s, f, "transaction too large",
				  "COMMIT the transaction before sending more");
	}
	if (grow(&tx->ops, &tx->cap, tx->nops, sizeof(*tx->ops), 8) < 0) {
		op_free(&o);
		return stomp_fail(s, f, "out of memory", NULL);
	}
	tx->ops[tx->nops++] = o;
	s->tx_ops++;
	s->tx_bytes += bytes;
	return 0;
}

static const char *tx_id(struct stomp_session *s, const struct stomp_frame *f)
{
	const char *id = stomp_frame_get(f, "transaction");
	if (!id)
		stomp_fail(s, f, "missing transaction header", NULL);
	return id;
}

int stomp_on_begin(struct stomp_session *s, const struct stomp_frame *f)
{
	const char *id = tx_id(s, f);
	if (!id)
		return STOMP_CLOSED;
	if (tx_find(s, id))
		return stomp_fail(s, f, "transaction already begun", NULL);
	if (s->ntx >= s->cfg->stomp_max_transactions)
		return stomp_fail(s, f, "too many open transactions", NULL);
	struct stomp_tx *a = realloc(s->txs, (s->ntx + 1) * sizeof(*a));
	if (!a)
		return stomp_fail(s, f, "out of memory", NULL);
	s->txs = a;
	char *dup = strdup(id);
	if (!dup)
		return stomp_fail(s, f, "out of memory", NULL);
	s->txs[s->ntx++] = (struct stomp_tx){ .id = dup };
	return 0;
}

int stomp_tx_end(struct stomp_session *s, const struct stomp_frame *f, struct stomp_tx *out)
{
	if (!tx_id(s, f))
		return STOMP_CLOSED;
	bool absent;
	struct stomp_tx *tx = stomp_tx_of(s, f, &absent);
	if (!tx)
		return STOMP_CLOSED;
	*out = tx_take(s, tx);
	return 0;
}

int stomp_on_abort(struct stomp_session *s, const struct stomp_frame *f)
{
	struct stomp_tx t;
	if (stomp_tx_end(s, f, &t) < 0)
		return STOMP_CLOSED;
	stomp_tx_release(&t);
	return 0;
}
