/* mqtt_codec: MQTT control packets, bytes to structs and back (MQTT 3.1 and
 * 3.1.1; the protocol level travels with every call so that 5.0 properties
 * and reason codes can join without changing these signatures). Pure: no
 * sockets, no allocation, no globals, no logging.
 *
 * mqtt_parse() looks at the start of a buffer holding the byte stream and
 * returns >0 (one whole packet, that many bytes consumed), 0 (need more
 * bytes) or an enum mqtt_err (<0). A parsed packet points into the caller's
 * buffer: copy what outlives it. The size limit and the first byte are judged
 * from the fixed header alone, so an oversize or bogus packet is refused
 * before its body is buffered.
 *
 * The encoders write one packet into the caller's buffer and return its
 * length, or 0 when the buffer is too small or a field cannot be encoded.
 * Session rules (which packets a server accepts when, topic filter syntax,
 * client id policy) belong to the session, not here. */
#ifndef WSB_MQTT_CODEC_H
#define WSB_MQTT_CODEC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQTT_LEVEL_31 3     /* "MQIsdp" */
#define MQTT_LEVEL_311 4    /* "MQTT" */
#define MQTT_LEVEL_5 5      /* recognised in CONNECT, not spoken yet */

/* Largest remaining length the four-byte encoding can carry. */
#define MQTT_MAX_REMLEN 268435455u
/* Largest fixed header: type byte and four length bytes. */
#define MQTT_MAX_FIXED_HEADER 5

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
	MQTT_AUTH = 15          /* 5.0 only; reserved (malformed) before */
};

enum mqtt_err {
	MQTT_ERR_MALFORMED = -1,     /* lengths that do not add up, trailing bytes */
	MQTT_ERR_REMLEN = -2,        /* remaining length needs a fifth byte */
	MQTT_ERR_TYPE = -3,          /* packet type 0 (or 15 before 5.0) */
	MQTT_ERR_FLAGS = -4,         /* reserved bits of the fixed header wrong */
	MQTT_ERR_TOO_LARGE = -5,     /* over the maximum packet size */
	MQTT_ERR_UTF8 = -6,          /* ill-formed UTF-8, surrogate or U+0000 */
	MQTT_ERR_PACKET_ID = -7,     /* packet identifier 0 where one is required */
	MQTT_ERR_TOPIC = -8,         /* empty topic name, or a wildcard in one */
	MQTT_ERR_QOS = -9,           /* QoS 3, or QoS bits where none may be */
	MQTT_ERR_PROTOCOL_NAME = -10,/* CONNECT: neither "MQTT" nor "MQIsdp" */
	MQTT_ERR_LEVEL = -11,        /* CONNECT: level not spoken: CONNACK 0x01 */
	MQTT_ERR_CONNECT_FLAGS = -12,/* CONNECT: reserved bit, will or password flags */
	MQTT_ERR_NO_TOPICS = -13,    /* SUBSCRIBE/UNSUBSCRIBE without a filter */
	MQTT_ERR_RESERVED = -14      /* reserved bits in a payload byte set */
};

/* CONNACK return codes (3.1 and 3.1.1). */
enum mqtt_connack_code {
	MQTT_CONNACK_ACCEPTED = 0x00,
	MQTT_CONNACK_BAD_VERSION = 0x01,
	MQTT_CONNACK_ID_REJECTED = 0x02,
	MQTT_CONNACK_UNAVAILABLE = 0x03,
	MQTT_CONNACK_BAD_LOGIN = 0x04,
	MQTT_CONNACK_NOT_AUTHORIZED = 0x05
};

#define MQTT_SUBACK_FAILURE 0x80

/* Bytes inside the caller's buffer; not NUL-terminated. */
struct mqtt_str {
	const uint8_t *p;
	size_t len;
};

struct mqtt_connect {
	struct mqtt_str protocol_name;
	uint8_t level;
	bool clean;
	uint16_t keepalive;          /* seconds, 0 = none */
	struct mqtt_str client_id;
	bool will;
	uint8_t will_qos;
	bool will_retain;
	struct mqtt_str will_topic;
	struct mqtt_str will_payload;
	bool has_username;
	struct mqtt_str username;
	bool has_password;
	struct mqtt_str password;    /* binary */
};

struct mqtt_connack {
	bool session_present;
	uint8_t code;
};

struct mqtt_publish {
	struct mqtt_str topic;
	struct mqtt_str payload;
	uint8_t qos;
	bool dup;
	bool retain;
	uint16_t id;                 /* 0 for QoS 0 */
};

/* SUBSCRIBE, UNSUBSCRIBE, SUBACK: the list is validated by mqtt_parse and
 * walked with mqtt_topics_next / read from codes. */
struct mqtt_topic_list {
	const uint8_t *p;
	size_t len;
	size_t count;
};

struct mqtt_packet {
	uint8_t type;                /* enum mqtt_type */
	uint8_t flags;               /* low nibble of the first byte */
	uint8_t level;               /* protocol level the packet was read with */
	size_t remlen;
	size_t len;                  /* whole packet, fixed header included */
	uint16_t id;                 /* PUBACK..PUBCOMP, (UN)SUBSCRIBE, (UN)SUBACK; also publish.id */
	union {
		struct mqtt_connect connect;
		struct mqtt_connack connack;
		struct mqtt_publish publish;
		struct mqtt_topic_list topics;   /* SUBSCRIBE, UNSUBSCRIBE */
		struct mqtt_str suback_codes;    /* SUBACK: one byte per filter */
	} u;
};

/* What the parser needs to know about the stream. */
struct mqtt_parse_opts {
	uint8_t level;               /* negotiated level, 0 before CONNECT */
	size_t max_packet;           /* whole packet bytes; 0 = the protocol's maximum */
};

/* The fixed header only: >0 its length with *total (whole packet bytes) set,
 * 0 need more, <0 MQTT_ERR_TYPE / FLAGS / REMLEN / TOO_LARGE. The first
 * byte is judged as soon as it is there. */
int mqtt_parse_header(const struct mqtt_parse_opts *o, const uint8_t *p, size_t n,
		      size_t *total);
/* One packet from the start of p (see the top of this file). */
int mqtt_parse(const struct mqtt_parse_opts *o, const uint8_t *p, size_t n,
	       struct mqtt_packet *out);

/* Walk a SUBSCRIBE (with_qos true: *qos gets the requested QoS) or an
 * UNSUBSCRIBE list that mqtt_parse accepted. Returns false at the end. */
struct mqtt_topic_iter {
	const uint8_t *p;
	size_t left;
	bool with_qos;
};
void mqtt_topics_begin(const struct mqtt_packet *pk, struct mqtt_topic_iter *it);
bool mqtt_topics_next(struct mqtt_topic_iter *it, struct mqtt_str *filter, uint8_t *qos);

/* A short name for logs: "malformed remaining length" ... */
const char *mqtt_strerror(int err);
const char *mqtt_type_name(uint8_t type);

/* ---- encoders: return bytes written, 0 on failure ---- */

/* Length of the PUBLISH mqtt_encode_publish would write, 0 when it cannot
 * be encoded (topic over 65535 bytes, packet over the protocol maximum). */
size_t mqtt_publish_size(uint8_t level, size_t topic_len, size_t payload_len, uint8_t qos);
size_t mqtt_encode_publish(uint8_t *out, size_t cap, uint8_t level,
			   const struct mqtt_publish *pub);
/* Server side. Level 3 has no session-present flag: it is written as 0. */
size_t mqtt_encode_connack(uint8_t *out, size_t cap, uint8_t level,
			   bool session_present, uint8_t code);
/* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: type and packet id. */
size_t mqtt_encode_ack(uint8_t *out, size_t cap, uint8_t level, uint8_t type, uint16_t id);
size_t mqtt_encode_suback(uint8_t *out, size_t cap, uint8_t level, uint16_t id,
			  const uint8_t *codes, size_t n);
/* PINGREQ, PINGRESP, DISCONNECT. */
size_t mqtt_encode_empty(uint8_t *out, size_t cap, uint8_t level, uint8_t type);

/* Client side (tests, the benchmark client). The level is c->level; the
 * protocol name is chosen from it; will and login fields are written when
 * their flags say so. */
size_t mqtt_encode_connect(uint8_t *out, size_t cap, const struct mqtt_connect *c);
size_t mqtt_encode_subscribe(uint8_t *out, size_t cap, uint8_t level, uint16_t id,
			     const struct mqtt_str *filters, const uint8_t *qos, size_t n);
size_t mqtt_encode_unsubscribe(uint8_t *out, size_t cap, uint8_t level, uint16_t id,
			       const struct mqtt_str *filters, size_t n);

#endif
