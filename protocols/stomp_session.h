/* stomp_session: the state one STOMP connection keeps, the broker-wide
 * state of the protocol, and what the STOMP files call of each other.
 * Internal to the STOMP session; nothing outside protocols/stomp*.c
 * includes it.
 *
 * The files call one way: each only files in rows below its own.
 *
 *   stomp_proto.c   the protocol object: init/teardown (struct stomp_broker),
 *        |          open/close, input cut into frames, dispatch, tick
 *   stomp_send.c    SEND, COMMIT (applies held SENDs and ACKs)
 *        |
 *   stomp_sub.c     SUBSCRIBE, UNSUBSCRIBE, MESSAGE, ACK/NACK
 *        |
 *   stomp_tx.c      open transactions: BEGIN, ABORT, frames held
 *   stomp_dest.c    destination names, the ERROR for a refused one
 *   stomp_store.c   store writes, RECEIPT after the commit, restore
 *        |
 *   stomp.c         the connection: sniff, output, ERROR, RECEIPT,
 *                   heart-beats, CONNECT, DISCONNECT
 *
 * stomp_tx.c, stomp_dest.c and stomp_store.c share a row: none calls
 * another. */
#ifndef WSB_STOMP_SESSION_H
#define WSB_STOMP_SESSION_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "stomp_codec.h"
#include "stomp_dest.h"
#include "protocol.h"
#include "store_acks.h"
#include "auth/acl.h"

struct conn;
struct router;
struct router_sub;
struct router_consumer;
struct cfg;
struct message;
struct store;

enum stomp_ack_mode { STOMP_ACK_AUTO = 0, STOMP_ACK_CLIENT, STOMP_ACK_INDIVIDUAL };

/* A MESSAGE sent and not yet acknowledged. seq is the session-wide delivery
 * number written into message-id/ack; tag is the router's queue tag (0 on a
 * topic subscription). */
struct stomp_pending {
	uint64_t seq;
	uint64_t tag;
	uint64_t store_seq;           /* the queue message's row, 0 = none */
};

/* What the frame handlers and the helpers that send ERROR return. */
enum stomp_status {
	STOMP_OK = 0,
	STOMP_CLOSED = -1,            /* ERROR sent (or DISCONNECT done) and the
				       * connection is closing: stop reading */
	STOMP_ENOMEM = -2             /* out of memory; nothing was sent */
};

/* ---- broker-wide: one per protocol instance (stomp_protocol.init) ---- */

/* The head and tail of a topic MESSAGE for one protocol version, kept while
 * one message fans out (stomp_sub.c says how it is used). */
struct stomp_held_frame {
	const struct message *m;
	uint64_t id;
	bool redelivered;
	bool utf8;                    /* head and tail are valid UTF-8 */
	uint64_t now_ms;              /* when the fan-out began */
	struct stomp_buf head, tail;
};

struct stomp_broker {
	uint64_t sessions;            /* opened so far; names the next one */
	struct acl_holder no_acl;     /* what sessions read when env had no ACL */
	struct stomp_held_frame held[STOMP_V12 + 1];
};

/* ---- one connection ---- */

struct stomp_session;

struct stomp_sub {
	struct stomp_session *s;
	uint32_t num;                 /* session-unique, part of message-id */
	char *id;                     /* the client's id (1.0: may be the destination) */
	bool has_id;                  /* the client gave an id header */
	char *dest;                   /* destination as the client wrote it */
	char *queue;                  /* router queue name, NULL on a topic */
	size_t qlen;
	enum stomp_ack_mode ack;
	struct router_sub *rsub;
	struct router_consumer *cons;
	/* What the ACL of generation acl_gen says of a topic filter (enum
	 * acl_sub): ACL_SUB_ALL lets every message through unchecked. */
	uint64_t acl_gen;
	uint8_t acl_sub;
	struct stomp_pending *pend;   /* ascending seq */
	size_t npend, pcap;
};

enum stomp_op_kind { STOMP_OP_SEND, STOMP_OP_ACK, STOMP_OP_NACK };

/* One frame held by a transaction until COMMIT. */
struct stomp_op {
	enum stomp_op_kind kind;
	struct message *m;            /* SEND */
	char *queue;                  /* SEND to a queue; NULL: publish to m->topic */
	size_t qlen;
	uint32_t subnum;              /* ACK/NACK */
	uint64_t seq;
};

struct stomp_tx {
	char *id;
	struct stomp_op *ops;
	size_t nops, cap;
};

struct stomp_session {
	struct conn *c;
	struct stomp_broker *b;
	struct router *r;
	const struct cfg *cfg;
	struct store *st;
	const struct acl_holder *acl; /* the server's (env->acl) or b->no_acl */
	char *login;                  /* CONNECT's login; NULL: anonymous */
	char ws_name[16];             /* negotiated subprotocol, "" over TCP */
	enum stomp_version v;
	bool connected;
	bool done;                    /* ERROR sent or DISCONNECT: ignore input */
	bool closed;                  /* inside close(): hold deliveries */
	char id[32];                  /* session header, message-id prefix */
	struct stomp_parser parser;
	struct stomp_buf in;          /* bytes of a frame not yet complete */
	struct stomp_buf out;         /* encoding scratch */
	struct stomp_buf tmp;         /* a destination being built */

	struct stomp_sub **subs;
	size_t nsubs, subcap;
	uint32_t next_subnum;
	uint64_t next_seq;

	struct stomp_tx *txs;
	size_t ntx;
	size_t tx_bytes, tx_ops;      /* held by all open transactions */

	uint32_t hb_out_ms;           /* we send a beat after this much silence */
	uint32_t hb_in_ms;            /* the client promised to speak this often */
	uint64_t last_rx, last_tx;
	uint64_t connect_deadline;
	uint64_t refuse_at;           /* a failed login's ERROR waits until then */
	char *refuse_receipt;         /* the refused CONNECT's receipt header */
	uint64_t dropped;             /* MESSAGEs not sent to a slow reader */
	size_t auto_held;             /* auto-mode queue deliveries not yet acked
				       * because the reader is slow */

	/* Frames whose writes the store has not committed yet, oldest first:
	 * their RECEIPTs wait for the commit, and so does every later RECEIPT,
	 * so that receipts keep frame order. */
	struct store_acks acks;
	bool close_when_drained;      /* DISCONNECT came while some waited */
};


/* ---- stomp.c: the connection (calls no other STOMP file) ---- */

/* ERROR frame (with receipt-id when f asked for a receipt), then close.
 * detail may be NULL. Always returns STOMP_CLOSED for the caller to pass
 * up. */
int stomp_fail(struct stomp_session *s, const struct stomp_frame *f, const char *msg,
	       const char *detail);
/* The same for a failure found after the frame is gone (a failed commit):
 * receipt may be NULL. */
int stomp_fail_receipt(struct stomp_session *s, const char *receipt, const char *msg,
		       const char *detail);
/* 0, STOMP_ENOMEM, or what conn_send refused with. */
int stomp_send_receipt(struct stomp_session *s, const char *id);
/* Send what s->out holds; binary picks the WebSocket frame type. 0, or
 * what conn_send refused with. */
int stomp_flush_out(struct stomp_session *s, bool binary);
/* Re-arm the session timer (heart-beats, CONNECT deadline, held acks). */
void stomp_arm_timer(struct stomp_session *s);
/* The session timer fired: the CONNECT deadline, a silent client, our own
 * heart-beat. Re-arms the timer unless it closed the connection. */
void stomp_tick(struct stomp_session *s);
int stomp_on_connect(struct stomp_session *s, const struct stomp_frame *f);
/* DISCONNECT once no earlier RECEIPT waits for the disk: its own RECEIPT
 * (receipt may be NULL), then close. Returns STOMP_CLOSED. */
int stomp_disconnect(struct stomp_session *s, const char *receipt);
/* The broker is stopping: ERROR "broker shutting down". */
void stomp_shutdown(struct stomp_session *s);

/* ---- stomp_store.c ---- */

/* At open, once s->st is set: receipts that wait for the store. */
void stomp_acks_init(struct stomp_session *s);
/* After a frame is handled: its RECEIPT (receipt may be NULL) goes out now,
 * or after the commit of the writes it made (wrote: those queued after the
 * store_submitted() mark `since`) or of earlier frames'. A failed commit of
 * its own writes answers with an ERROR instead. */
int stomp_after_frame(struct stomp_session *s, const char *receipt, uint64_t since, bool wrote);
bool stomp_waiting(const struct stomp_session *s);
/* The connection is going: completions still owed find no session. */
void stomp_waiters_detach(struct stomp_session *s);
/* SEND to a queue: written to the store (m->store_seq set). The caller has
 * made sure the router takes it next. 0, STOMP_ENOMEM, or the store's
 * error. */
int stomp_store_queue_msg(struct stomp_session *s, struct message *m, const char *queue);
/* Start-up: the stored queues back into the router. */
int stomp_restore(const struct proto_env *env);

/* ---- stomp_tx.c: open transactions ---- */

int stomp_on_begin(struct stomp_session *s, const struct stomp_frame *f);
int stomp_on_abort(struct stomp_session *s, const struct stomp_frame *f);
/* The open transaction named by f's transaction header; NULL with an
 * ERROR sent when it names none. *absent is set when f has no header. */
struct stomp_tx *stomp_tx_of(struct stomp_session *s, const struct stomp_frame *f, bool *absent);
/* Hold op (its message and queue name become the transaction's) until
 * COMMIT. 0, or STOMP_CLOSED when the bounds refuse it. */
int stomp_tx_add(struct stomp_session *s, struct stomp_tx *tx, const struct stomp_frame *f,
		 const struct stomp_op *op, size_t bytes);
/* COMMIT: the transaction f names, taken out of the open ones into *out
 * (release it with stomp_tx_release). 0, or STOMP_CLOSED. */
int stomp_tx_end(struct stomp_session *s, const struct stomp_frame *f, struct stomp_tx *out);
void stomp_tx_release(struct stomp_tx *t);
void stomp_tx_free_all(struct stomp_session *s);

/* ---- stomp_sub.c ---- */

int stomp_on_subscribe(struct stomp_session *s, const struct stomp_frame *f);
int stomp_on_unsubscribe(struct stomp_session *s, const struct stomp_frame *f);
int stomp_on_ack(struct stomp_session *s, const struct stomp_frame *f, bool nack);
/* Apply an ACK/NACK (also at COMMIT); a delivery no longer pending is
 * ignored. */
void stomp_apply_ack(struct stomp_session *s, uint32_t subnum, uint64_t seq, bool nack);
void stomp_subs_free(struct stomp_session *s);
/* Auto-mode queue deliveries held while the reader was slow are acked once
 * its output is below the high-water mark again. */
void stomp_release_auto_held(struct stomp_session *s);
/* At teardown: the broker's encoding cache of topic MESSAGEs. */
void stomp_held_frames_free(struct stomp_broker *b);

/* ---- stomp_send.c ---- */

int stomp_on_send(struct stomp_session *s, const struct stomp_frame *f);
int stomp_on_commit(struct stomp_session *s, const struct stomp_frame *f);

#endif
