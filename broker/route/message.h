/* message: the protocol-neutral unit the router moves. Reference-counted and
 * immutable once published: the payload is stored once and every subscriber
 * shares it. Protocols translate their frames to and from it; the router
 * never looks inside the payload. */
#ifndef WSB_MESSAGE_H
#define WSB_MESSAGE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A name/value pair carried with the message: STOMP custom headers, MQTT 5
 * user properties. */
struct msg_prop {
	char *name;
	char *value;
};

struct message {
	unsigned refcnt;
	uint64_t id;             /* broker-wide sequence number, set at creation */
	char *topic;             /* router form: levels split by '/', e.g. "chat/room1" */
	size_t topic_len;
	uint8_t *payload;
	size_t payload_len;
	uint8_t qos;             /* 0..2; STOMP SENDs are 1 when persistent:true */
	bool retain;
	bool redelivered;        /* set on a queue message handed out again */
	char *content_type;      /* NULL when unknown */
	struct msg_prop *props;
	size_t nprops;
	uint64_t created_ms;     /* wall clock */
	uint64_t expiry_ms;      /* wall clock deadline, 0 = none */
	uint64_t store_seq;      /* its row in the store (a queue message), 0 = none */
};

/* A new message with refcnt 1; topic and payload are copied. NULL on OOM. */
struct message *message_new(const char *topic, size_t topic_len,
			    const void *payload, size_t payload_len);
/* Only before the message is shared. Return 0 or -1 (OOM). */
int message_set_content_type(struct message *m, const char *ct, size_t len);
int message_add_prop(struct message *m, const char *name, size_t name_len,
		     const char *value, size_t value_len);
/* A copy with its own refcount (used when a queue must flag redelivery). */
struct message *message_clone(const struct message *m);
/* Content type and properties as opaque bytes for the store, and back.
 * encode writes exactly message_props_size() bytes and returns that; decode
 * adds to m what the bytes hold: 0, or -1 (malformed or OOM). */
size_t message_props_size(const struct message *m);
size_t message_props_encode(const struct message *m, uint8_t *out);
int message_props_decode(struct message *m, const uint8_t *p, size_t n);
struct message *message_ref(struct message *m);
void message_unref(struct message *m);

#endif
