/* mqtt_session: the MQTT "Session" of one client id (3.1.1 section 4.1),
 * apart from any connection: its subscriptions, outbound QoS 1/2 messages in
 * flight and queued, and the inbound QoS 2 packet ids awaiting PUBREL. A
 * clean session lives as long as its connection; a persistent one (clean
 * session 0) stays in the table while its client is away, collecting QoS 1/2
 * messages, until the client returns, cleans it, or it expires.
 *
 * The router delivers to the session, not to the connection, so messages
 * keep arriving while nobody is attached. Also the protocol instance that
 * holds the table. Internal to the MQTT protocol (mqtt.c); nothing here
 * parses packets or judges CONNECT, and the outbound flow is mqtt_outq's. */
#ifndef WSB_MQTT_SESSION_H
#define WSB_MQTT_SESSION_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mqtt_outq.h"
#include "auth/acl.h"

struct conn;
struct router;
struct router_sub;
struct cfg;
struct message;
struct store;
struct proto_env;

/* The MQTT protocol instance: everything broker-wide, made by
 * mqtt_protocol.init and reached through env->state (open() hands it to
 * each connection, each session keeps a pointer back). Two instances share
 * nothing. */
struct mqtt_broker {
	struct router *router;
	const struct cfg *cfg;
	struct store *store;         /* the only way to the store; NULL: nothing persists */
	bool restoring;              /* start-up replay: write nothing back */

	struct mqtt_sess **table;    /* sessions by client id */
	size_t table_cap, table_count;
	/* Absent persistent sessions that expire, oldest deadline first. */
	struct mqtt_sess *away_head, *away_tail;
	uint64_t dropped;            /* every session's drops, for stats */
	uint64_t acl_denied;         /* PUBLISHes dropped because the ACL refused them */
	/* The server's ACL (env->acl), or `no_acl` when env had none. */
	const struct acl_holder *acl;
	struct acl_holder no_acl;
	uint64_t generated_ids;      /* client ids of our own making so far */
	struct mqtt_scratch scratch;
};

struct mqtt_broker *mqtt_broker_new(const struct proto_env *env);
/* At broker exit: frees every session but keeps them in the store. */
void mqtt_broker_free(struct mqtt_broker *b);

struct mqtt_sub {
	char *filter;                /* as the client wrote it, "$share/g/f" too */
	size_t len;
	uint8_t qos;                 /* granted; read at every delivery */
	bool shared;
	struct router_sub *rsub;
	/* What the ACL of generation acl_gen says of this filter (enum
	 * acl_sub): ACL_SUB_ALL lets every message through unchecked. */
	uint64_t acl_gen;
	uint8_t acl_sub;
};

struct mqtt_sess {
	char *client_id;
	char *login;                 /* of the last CONNECT; NULL: anonymous */
	bool login_known;            /* false for a restored session not yet reattached */
	bool clean;
	bool persist;                /* kept in the store: not clean, store open */
	struct mqtt_broker *b;

	struct conn *conn;           /* attached connection, NULL while away */
	void *owner;                 /* mqtt.c's per-connection state */
	uint8_t level;               /* protocol level of the attached client */

	struct mqtt_sub **subs;
	size_t nsubs, subs_cap;

	struct mqtt_outq out;

	uint8_t *qos2_in;            /* 65536-bit map, only while ids are held */
	size_t nqos2_in;

	uint64_t dropped;
	uint64_t expires_ms;         /* while away, 0 = never */
	struct mqtt_sess *hnext;     /* table chain */
	struct mqtt_sess *aprev, *anext;   /* away list, oldest first */
};

/* ---- the table of sessions by client id ---- */
struct mqtt_sess *mqtt_sess_find(struct mqtt_broker *b, const char *client_id);
/* A new session in the table, or NULL on OOM. It persists unless clean or
 * the instance has no store. */
struct mqtt_sess *mqtt_sess_new(struct mqtt_broker *b, const char *client_id, bool clean);
/* Unsubscribe, drop everything held, remove from the table, and forget it
 * in the store. */
void mqtt_sess_free(struct mqtt_sess *s);
/* A connection takes the session (mqtt_outq_resume). The caller has sent
 * CONNACK already. */
void mqtt_sess_attach(struct mqtt_sess *s, struct conn *c, void *owner, uint8_t level);
/* The connection is gone or taken over. A persistent session starts its
 * absence (and expiry clock); the caller frees a clean one. */
void mqtt_sess_detach(struct mqtt_sess *s);
/* Free absent persistent sessions whose expiry has passed. */
void mqtt_sess_expire(struct mqtt_broker *b);
/* Sessions held now, connected or absent. */
size_t mqtt_sess_count(const struct mqtt_broker *b);

/* The login of the client that (re)attached: the ACL is checked with it.
 * Returns 0, or -1 on OOM. */
int mqtt_sess_set_login(struct mqtt_sess *s, const char *login);

/* ---- subscriptions ---- */
/* The filter a subscription's ACL check sees: "$share/g/f" -> "f". */
const char *mqtt_sub_acl_filter(const char *filter, size_t len, size_t *out_len);
/* Returns the granted QoS, or MQTT_SUBACK_FAILURE (bad filter, too many). An
 * identical filter replaces the existing subscription (MQTT-3.8.4-3). */
uint8_t mqtt_sess_subscribe(struct mqtt_sess *s, const uint8_t *filter, size_t len,
			    uint8_t qos);
/* Send the retained messages that match a filter just subscribed to. */
void mqtt_sess_send_retained(struct mqtt_sess *s, const uint8_t *filter, size_t len);
bool mqtt_sess_unsubscribe(struct mqtt_sess *s, const uint8_t *filter, size_t len);

/* ---- inbound QoS 2 (exactly once) ---- */
bool mqtt_sess_qos2_held(const struct mqtt_sess *s, uint16_t id);
/* Returns 0, or -1 on OOM. */
int mqtt_sess_qos2_hold(struct mqtt_sess *s, uint16_t id);
void mqtt_sess_qos2_release(struct mqtt_sess *s, uint16_t id);

/* ---- start-up (mqtt_store.c) ----
 * Absent sessions' deadlines, after all are loaded (restore order is not
 * deadline order). */
void mqtt_sess_restore_done(struct mqtt_broker *b);

#endif
