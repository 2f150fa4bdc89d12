/* Fuzz target for mqtt_codec.c. The first byte picks the protocol level and
 * a packet size limit; the rest is a byte stream cut into packets as the
 * session would. Every packet that parses must parse the same from an exact
 * copy, need more at any shorter prefix, and survive an encode / parse round
 * trip with the same fields; anything else traps. */
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "mqtt_codec.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static bool str_eq(struct mqtt_str a, struct mqtt_str b)
{
	return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

static void roundtrip_publish(uint8_t level, const struct mqtt_packet *pk)
{
	const struct mqtt_publish *pub = &pk->u.publish;
	size_t n = mqtt_publish_size(level, pub->topic.len, pub->payload.len, pub->qos);
	struct mqtt_parse_opts o = {level, 0};
	struct mqtt_packet back;
	uint8_t *buf;

	CHECK(n && n <= pk->len);              /* ours is the minimal encoding */
	buf = malloc(n);
	CHECK(buf);
	CHECK(mqtt_encode_publish(buf, n, level, pub) == n);
	CHECK(mqtt_parse(&o, buf, n, &back) == (int)n);
	CHECK(back.u.publish.qos == pub->qos && back.u.publish.dup == pub->dup);
	CHECK(back.u.publish.retain == pub->retain && back.u.publish.id == pub->id);
	CHECK(str_eq(back.u.publish.topic, pub->topic));
	CHECK(str_eq(back.u.publish.payload, pub->payload));
	free(buf);
}

static void roundtrip_connect(const struct mqtt_packet *pk)
{
	const struct mqtt_connect *c = &pk->u.connect;
	struct mqtt_parse_opts o = {0, 0};
	struct mqtt_packet back;
	uint8_t *buf = malloc(pk->len);
	size_t n;

	CHECK(buf);
	n = mqtt_encode_connect(buf, pk->len, c);
	CHECK(n && n <= pk->len);
	CHECK(mqtt_parse(&o, buf, n, &back) == (int)n);
	CHECK(back.u.connect.level == c->level && back.u.connect.clean == c->clean);
	CHECK(back.u.connect.keepalive == c->keepalive);
	CHECK(str_eq(back.u.connect.client_id, c->client_id));
	CHECK(back.u.connect.will == c->will && back.u.connect.will_qos == c->will_qos);
	CHECK(str_eq(back.u.connect.will_topic, c->will_topic));
	CHECK(str_eq(back.u.connect.will_payload, c->will_payload));
	CHECK(back.u.connect.has_username == c->has_username);
	CHECK(str_eq(back.u.connect.username, c->username));
	CHECK(back.u.connect.has_password == c->has_password);
	CHECK(str_eq(back.u.connect.password, c->password));
	free(buf);
}

static void check_topics(const struct mqtt_packet *pk)
{
	struct mqtt_topic_iter it;
	struct mqtt_str f;
	uint8_t q;
	size_t count = 0;

	mqtt_topics_begin(pk, &it);
	while (mqtt_topics_next(&it, &f, &q)) {
		CHECK(q <= 2);
		count++;
	}
	CHECK(count == pk->u.topics.count && it.left == 0);
}

static void check_packet(uint8_t level, const uint8_t *p, const struct mqtt_packet *pk)
{
	struct mqtt_parse_opts o = {level, 0};
	struct mqtt_packet again;
	uint8_t *copy = malloc(pk->len);

	CHECK(copy);
	memcpy(copy, p, pk->len);
	CHECK(mqtt_parse(&o, copy, pk->len, &again) == (int)pk->len);
	if (pk->len < 64)
		for (size_t k = 0; k < pk->len; k++)
			CHECK(mqtt_parse(&o, copy, k, &again) == 0);
	free(copy);
	if (pk->type == MQTT_PUBLISH)
		roundtrip_publish(level ? level : MQTT_LEVEL_311, pk);
	else if (pk->type == MQTT_CONNECT)
		roundtrip_connect(pk);
	else if (pk->type == MQTT_SUBSCRIBE || pk->type == MQTT_UNSUBSCRIBE)
		check_topics(pk);
}

FUZZ_ENTRY(fuzz_mqtt_codec)
{
	static const uint8_t levels[4] = {0, MQTT_LEVEL_31, MQTT_LEVEL_311, MQTT_LEVEL_5};
	struct mqtt_parse_opts o;
	struct mqtt_packet pk;
	size_t off = 1;

	if (size < 1)
		return 0;
	o.level = levels[data[0] & 3];
	o.max_packet = (data[0] & 4) ? 0 : 256;
	while (off < size) {
		int r = mqtt_parse(&o, data + off, size - off, &pk);

		if (r <= 0)
			break;
		CHECK((size_t)r == pk.len && pk.len <= size - off);
		check_packet(o.level, data + off, &pk);
		if (pk.type == MQTT_CONNECT && o.level == 0)
			o.level = pk.u.connect.level;
		off += (size_t)r;
	}
	return 0;
}
