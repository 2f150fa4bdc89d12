/* mqtt_outq: one MQTT session's outbound flow. QoS 1/2 messages in flight
 * (the window, at most mqtt_max_inflight, resent in send order when a client
 * returns) and a bounded FIFO of messages waiting for the window; packet id
 * allocation; the PUBACK / PUBREC / PUBCOMP that move messages along; and the
 * accounting of what is dropped (QoS 0 first when the queue is full, QoS 0
 * for a slow reader or an absent client).
 *
 * Also the encode buffer shared by the protocol instance, which remembers
 * the last QoS 0 PUBLISH it encoded so that a fan-out encodes once.
 *
 * Nothing here parses packets, keeps sessions by client id or decides when
 * a session ends (mqtt_session does); what is stored goes through the
 * mqtt_store hooks. */
#ifndef WSB_MQTT_OUTQ_H
#define WSB_MQTT_OUTQ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct message;
struct conn_shared;
struct mqtt_sess;

enum mqtt_out_state {
	MQTT_OUT_QUEUED = 0,         /* not sent yet */
	MQTT_OUT_WAIT_ACK = 1,       /* QoS 1 sent, PUBACK due */
	MQTT_OUT_WAIT_REC,           /* QoS 2 sent, PUBREC due */
	MQTT_OUT_WAIT_COMP           /* PUBREL sent, PUBCOMP due */
};

/* One outbound message, queued or in flight. */
struct mqtt_out {
	struct message *m;           /* a reference; NULL once PUBREC came */
	uint16_t id;                 /* 0 while queued */
	uint8_t qos;                 /* min(publish, subscription) */
	uint8_t state;               /* enum mqtt_out_state, in flight only */
	bool retain;                 /* a retained message sent on subscribe */
	uint64_t store_seq;          /* its row in the store, 0 = not stored */
};

struct mqtt_outq {
	struct mqtt_out *inflight;   /* in send order: resent in that order */
	size_t ninflight, inflight_cap;
	struct mqtt_out *ring;       /* the queue */
	size_t head, len, cap, nqos0;
	uint16_t next_id;
};

/* The protocol instance's encode buffer (one event-loop thread). While it
 * still holds the last QoS 0 PUBLISH encoded, the next subscriber of that
 * message gets the same bytes (3.1 and 3.1.1 alike). A message is named by
 * pointer and id together, so a reused address is no match. */
struct mqtt_scratch {
	uint8_t *buf;
	size_t cap;
	const struct message *m;
	uint64_t id;
	bool retain;
	size_t len;
	/* A large one is also kept as shared bytes, which every subscriber's
	 * output refers to instead of copying. */
	struct conn_shared *sh;
};

/* A buffer of at least need bytes, valid until the next call; forgets the
 * held QoS 0 PUBLISH. NULL on OOM. */
uint8_t *mqtt_scratch_get(struct mqtt_scratch *sc, size_t need);
void mqtt_scratch_free(struct mqtt_scratch *sc);

void mqtt_outq_init(struct mqtt_outq *q);
/* Drops every message held (memory only: the store keeps them). */
void mqtt_outq_clear(struct mqtt_outq *q);

/* Every delivery comes through here: sent now, queued, or dropped and
 * counted. Takes its own reference to m. */
void mqtt_outq_offer(struct mqtt_sess *s, struct message *m, uint8_t qos, bool retain);
/* A connection took the session: unacknowledged PUBLISH (DUP set) and
 * PUBREL again, in their order, then the queue drains into the window. */
void mqtt_outq_resume(struct mqtt_sess *s);

/* The client's acknowledgements of what we sent. */
void mqtt_outq_on_puback(struct mqtt_sess *s, uint16_t id);
void mqtt_outq_on_pubrec(struct mqtt_sess *s, uint16_t id);
void mqtt_outq_on_pubcomp(struct mqtt_sess *s, uint16_t id);

/* Start-up: a stored message back, in seq order: inflight when it has a
 * packet id, else queued, whatever the bounds. Memory only. Takes a
 * reference to o->m. */
void mqtt_outq_restore(struct mqtt_sess *s, const struct mqtt_out *o,
		       enum mqtt_out_state state);

#endif
