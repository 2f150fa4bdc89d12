/* mqtt: the MQTT 3.1 / 3.1.1 protocol for wsbroker (struct protocol): one
 * session per connection that cuts the byte stream into packets with
 * mqtt_codec and applies the protocol's rules (CONNECT, keepalive, will,
 * QoS 0/1/2 both ways, subscriptions, retained messages, takeover and
 * persistent sessions, which live in mqtt_session). MQTT 5.0 CONNECTs are
 * answered with CONNACK 0x01 until 5.0 is written. */
#ifndef WSB_MQTT_H
#define WSB_MQTT_H
#include <stddef.h>
#include <stdint.h>
#include "protocol.h"

extern const struct protocol mqtt_protocol;

struct mqtt_stats {
	uint64_t dropped;        /* deliveries dropped: slow reader, full queue, QoS 0 while away */
	uint64_t acl_denied;     /* PUBLISHes (and wills) dropped because the ACL refused them */
	size_t sessions;         /* in the table: connected and away */
	size_t away;             /* persistent sessions without a connection */
	size_t queued;           /* messages waiting in queues */
	size_t inflight;         /* QoS 1/2 messages sent and not yet acknowledged */
};
/* env: the one mqtt_protocol's init was given (its state is read). */
void mqtt_get_stats(const struct proto_env *env, struct mqtt_stats *out);

#endif
