/* stomp_store: what STOMP asks of the store. Queue messages are written
 * before they enter the router's queue, so that a consumer's ACK (a delete)
 * is always queued after the append; RECEIPTs of frames that wrote go out
 * from the commit's completion (DESIGN.md, "Durability contract"), and a
 * failed commit turns into an ERROR for the sender. Topics keep nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "net/conn.h"
#include "log.h"
#include "route/message.h"
#include "route/router.h"
#include "stomp_session.h"
#include "store.h"
#include "store_acks.h"

bool stomp_waiting(const struct stomp_session *s)
{
	return store_acks_pending(&s->acks);
}

/* store_acks' callback for a frame whose RECEIPT waited: receipt is NULL
 * when it asked for none, st an error only when its own writes failed. */
static void receipt_due(void *owner, const void *receipt, enum store_status st)
{
	struct stomp_session *s = owner;

	if (st != STORE_OK) {
		char d[160];
		snprintf(d, sizeof(d), "the broker could not write to its database (%s); "
			 "the message was not stored, send it again later",
			 store_status_name(st));
		stomp_fail_receipt(s, receipt, "message not stored", d);
	} else if (receipt && !s->closed) {
		stomp_send_receipt(s, receipt);
	}
	if (!stomp_waiting(s) && s->close_when_drained && !conn_closing(s->c))
		conn_close(s->c, CONN_CLOSE_NORMAL, "DISCONNECT");
}

void stomp_acks_init(struct stomp_session *s)
{
	store_acks_init(&s->acks, s->st, receipt_due, s);
}

int stomp_after_frame(struct stomp_session *s, const char *receipt, uint64_t since, bool wrote)
{
	if (!store_acks_must_wait(&s->acks, wrote))
		return receipt ? stomp_send_receipt(s, receipt) : 0;
	if (!wrote && !receipt)
		return 0;
	if (store_acks_after(&s->acks, since, wrote, receipt,
			     receipt ? strlen(receipt) + 1 : 0) < 0)
		return stomp_fail(s, NULL, "out of memory", NULL);
	return 0;
}

void stomp_waiters_detach(struct stomp_session *s)
{
	store_acks_detach(&s->acks);
}

/* ---- queue messages ---- */

int stomp_store_queue_msg(struct stomp_session *s, struct message *m, const char *queue)
{
	size_t plen = message_props_size(m);
	uint8_t small[256], *props = plen <= sizeof(small) ? small : malloc(plen);
	if (!props)
		return STOMP_ENOMEM;
	message_props_encode(m, props);
	struct store_qmsg q = {
		.queue = queue,
		.payload = m->payload,
		.payload_len = m->payload_len,
		.props = plen ? props : NULL,
		.props_len = plen,
		.redelivered = m->redelivered,
		.expiry_ms = m->expiry_ms,
	};
	int r = store_queue_append(s->st, &q, &m->store_seq, NULL, NULL);
	if (props != small)
		free(props);
	return r;
}

/* ---- start-up ---- */

struct restore_ctx {
	struct router *r;
	size_t loaded, refused;
};

static int restore_one(void *arg, const struct store_qmsg *q)
{
	struct restore_ctx *x = arg;
	size_t qlen = strlen(q->queue);
	struct message *m = message_new(q->queue, qlen, q->payload, q->payload_len);
	if (!m)
		return -1;
	if (q->props && message_props_decode(m, q->props, q->props_len) < 0) {
		log_warn(NULL, NULL, "stomp: stored message %llu in queue '%s' has unreadable "
			 "headers; loaded without them", (unsigned long long)q->seq, q->queue);
	}
	m->qos = 1;
	m->redelivered = q->redelivered;
	m->expiry_ms = q->expiry_ms;
	m->store_seq = q->seq;
	int r = router_queue_send(x->r, q->queue, qlen, m);
	message_unref(m);
	if (r == ROUTER_ENOMEM)
		return -1;
	if (r < 0)
		x->refused++;   /* over a lowered queue_max_messages: stays on disk */
	else
		x->loaded++;
	return 0;
}

int stomp_restore(const struct proto_env *env)
{
	struct restore_ctx x = { .r = env->router };
	int r = store_load_queue(env->store, STORE_LOAD_PAYLOADS, restore_one, &x);
	if (r != 0) {
		log_error(NULL, NULL, "stomp: loading the stored queues failed%s",
			  r < 0 ? "" : " (out of memory)");
		return -1;
	}
	if (x.loaded)
		log_info(NULL, NULL, "stomp: %zu queued messages loaded", x.loaded);
	if (x.refused)
		log_warn(NULL, NULL, "stomp: %zu stored messages exceed queue_max_messages and stay "
			 "on disk until there is room at a restart", x.refused);
	return 0;
}
