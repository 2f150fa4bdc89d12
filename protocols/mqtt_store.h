/* mqtt_store: what the MQTT protocol writes to the store as session state
 * changes, and its start-up restore. The hooks are no-ops for a session that
 * does not persist and while the instance is restoring; they never wait for
 * a commit (mqtt.c holds acknowledgements until one). Internal to the MQTT
 * protocol. */
#ifndef WSB_MQTT_STORE_H
#define WSB_MQTT_STORE_H
#include <stdbool.h>
#include <stdint.h>
#include "mqtt_outq.h"

struct message;
struct mqtt_broker;
struct mqtt_sess;
struct mqtt_sub;
struct proto_env;

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
void mqtt_persist_retained(const struct mqtt_broker *b, const struct message *m);
/* struct protocol's restore: retained messages and sessions into env->state. */
int mqtt_restore(const struct proto_env *env);

#endif
