/* mqtt_session: the MQTT "Session" of one client id (3.1.1 section 4.1),
 * apart from any connection: its subscriptions, outbound QoS 1/2 messages in
 * flight and queued, and the inbound QoS 2 packet ids awaiting PUBREL. A
 * clean session lives as long as its connection; a persistent one (clean
 * session 0) stays in the table while its client is away, collecting QoS 1/2
 * messages, until the client returns, cleans it, or it expires.
 *
 * The router delivers to the session, not to the connection, so messages
 * keep arriving while nobody is attached. Internal to the MQTT protocol
 * (mqtt.c); nothing here parses packets or judges CONNECT. */
#ifndef WSB_MQTT_SESSION_H
#define WSB_MQTT_SESSION_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct router;
struct router_sub;
struct cfg;
struct message;
struct store;
struct proto_env;

struct mqtt_sub {
	char *filter;                /* as the client wrote it, "$share/g/f" too */
	size_t len;
	uint8_t qos;                 /* granted; read at every delivery */
	bool shared;
	struct router_sub *rsub;
};

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

struct mqtt_sess {
	char *client_id;
	bool clean;
	bool persist;                /* kept in the store: not clean, store open */
	struct router *router;
	const struct cfg *cfg;

	struct conn *conn;           /* attached connection, NULL while away */
	void *owner;                 /* mqtt.c's per-connection state */
	uint8_t level;               /* protocol level of the attached client */

	struct mqtt_sub **subs;
	size_t nsubs, subs_cap;

	struct mqtt_out *inflight;   /* in send order: resent in that order */
	size_t ninflight, inflight_cap;
	struct mqtt_out *queue;      /* ring */
	size_t qhead, qlen, qcap, q_qos0;
	uint16_t next_id;

	uint8_t *qos2_in;            /* 65536-bit map, only while ids are held */
	size_t nqos2_in;

	uint64_t dropped;
	uint64_t expires_ms;         /* while away, 0 = never */
	struct mqtt_sess *hnext;     /* table chain */
	struct mqtt_sess *aprev, *anext;   /* away list, oldest first */
};

/* ---- the store ----
 * Sessions made after this call persist unless clean. NULL: none do. */
void mqtt_sess_set_store(struct store *st);
struct store *mqtt_sess_get_store(void);

/* ---- the table of sessions by client id ---- */
struct mqtt_sess *mqtt_sess_find(const char *client_id);
/* A new session in the table, or NULL on OOM. */
struct mqtt_sess *mqtt_sess_new(const char *client_id, bool clean, struct router *r,
				const struct cfg *cfg);
/* Unsubscribe, drop everything held, remove from the table, and forget it
 * in the store. */
void mqtt_sess_free(struct mqtt_sess *s);
/* A connection takes the session: unacknowledged PUBLISH (DUP set) and
 * PUBREL are resent, then the queue drains into the window. The caller has
 * sent CONNACK already. */
void mqtt_sess_attach(struct mqtt_sess *s, struct conn *c, void *owner, uint8_t level);
/* The connection is gone or taken over. A persistent session starts its
 * absence (and expiry clock); the caller frees a clean one. */
void mqtt_sess_detach(struct mqtt_sess *s);
/* Free absent persistent sessions whose expiry has passed. */
void mqtt_sess_expire(void);
/* Sessions held now, connected or absent. */
size_t mqtt_sess_count(void);
/* At broker exit: frees every session but keeps them in the store. */
void mqtt_sess_free_all(void);

/* ---- subscriptions ---- */
/* Returns the granted QoS, or MQTT_SUBACK_FAILURE (bad filter, too many). An
 * identical filter replaces the existing subscription (MQTT-3.8.4-3). */
uint8_t mqtt_sess_subscribe(struct mqtt_sess *s, const uint8_t *filter, size_t len,
			    uint8_t qos);
/* Send the retained messages that match a filter just subscribed to. */
void mqtt_sess_send_retained(struct mqtt_sess *s, const uint8_t *filter, size_t len);
bool mqtt_sess_unsubscribe(struct mqtt_sess *s, const uint8_t *filter, size_t len);

/* ---- outbound flow ---- */
void mqtt_sess_on_puback(struct mqtt_sess *s, uint16_t id);
void mqtt_sess_on_pubrec(struct mqtt_sess *s, uint16_t id);
void mqtt_sess_on_pubcomp(struct mqtt_sess *s, uint16_t id);

/* ---- inbound QoS 2 (exactly once) ---- */
bool mqtt_sess_qos2_held(const struct mqtt_sess *s, uint16_t id);
/* Returns 0, or -1 on OOM. */
int mqtt_sess_qos2_hold(struct mqtt_sess *s, uint16_t id);
void mqtt_sess_qos2_release(struct mqtt_sess *s, uint16_t id);

/* ---- start-up (mqtt_store.c): a stored session back in the table ----
 * These change memory only, never the store. */
/* A held message, in seq order: inflight when it has a packet id, else
 * queued, whatever the bounds. Takes a reference to o->m. */
void mqtt_sess_restore_msg(struct mqtt_sess *s, const struct mqtt_out *o,
			   enum mqtt_out_state state);
/* Absent sessions' deadlines, after all are loaded (restore order is not
 * deadline order). */
void mqtt_sess_restore_done(void);

/* ---- persistence hooks (mqtt_store.c), no-ops for a session that does
 * not persist ---- */
void mqtt_persist_session(const struct mqtt_sess *s);
void mqtt_persist_forget(const struct mqtt_sess *s);
void mqtt_persist_sub(const struct mqtt_sess *s, const struct mqtt_sub *sub);
void mqtt_persist_unsub(const struct mqtt_sess *s, const char *filter);
/* Writes o (QoS 1/2) as it now stands: added the first time, updated
 * after (state, packet id), deleted by mqtt_persist_msg_done. */
void mqtt_persist_msg(const struct mqtt_sess *s, struct mqtt_out *o, enum mqtt_out_state st);
void mqtt_persist_msg_done(const struct mqtt_sess *s, struct mqtt_out *o);
void mqtt_persist_qos2(const struct mqtt_sess *s, uint16_t id, bool held);
/* The retained message of m's topic (cleared when m has no payload). */
void mqtt_persist_retained(const struct message *m);
int mqtt_restore(const struct proto_env *env);

/* A buffer of at least need bytes for encoding, shared by the module (one
 * event-loop thread); valid until the next call. NULL on OOM. */
uint8_t *mqtt_scratch(size_t need);

#endif
