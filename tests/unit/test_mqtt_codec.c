/* Unit tests for mqtt_codec.c. Every packet is parsed whole (from an
 * exact-size heap copy, so ASan sees any read past the end), at every
 * prefix, grown one byte at a time, and as part of a stream cut into chunks
 * of every size; every encoder is checked byte for byte against packets
 * written out by hand from the 3.1.1 specification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bytewise.h"

#include "mqtt_codec.h"

#define S(lit) ((struct mqtt_str){(const uint8_t *)(lit), sizeof(lit) - 1})
#define ARR(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

/* Storage for the packet under test: parsed packets point into it. */
static uint8_t *held;

static void teardown_held(void)
{
	free(held);
	held = NULL;
}

struct mqtt_feed {
	struct mqtt_parse_opts o;
	struct mqtt_packet *pk;
};

static int mqtt_feed_parse(void *ctx, const uint8_t *buf, size_t n)
{
	struct mqtt_feed *f = ctx;
	return mqtt_parse(&f->o, buf, n, f->pk);
}

static int parse_copy(uint8_t level, size_t max, const uint8_t *p, size_t n,
		      struct mqtt_packet *pk)
{
	struct mqtt_feed f = {{level, max}, pk};
	return bytewise_copy(p, n, mqtt_feed_parse, &f);
}

/* One byte appended per read, the buffer exactly what has arrived; returns
 * the first nonzero result and where it came. */
static int feed_bytewise(uint8_t level, size_t max, const uint8_t *p, size_t n, size_t *at)
{
	struct mqtt_packet pk;
	struct mqtt_feed f = {{level, max}, &pk};
	return bytewise_feed(p, n, mqtt_feed_parse, &f, at);
}

/* A whole, valid packet: every prefix needs more, byte-wise completes at the
 * last byte, and pk gets the parse of a held copy (valid until the next
 * call). */
static void parse_ok(uint8_t level, const uint8_t *p, size_t n, struct mqtt_packet *pk)
{
	struct mqtt_parse_opts o = {level, 0};
	size_t at = 0;

	for (size_t k = 0; k < n; k++) {
		int r = parse_copy(level, 0, p, k, pk);

		if (r != 0)
			fail_msg("prefix %zu of %zu: got %d, want 0", k, n, r);
	}
	assert_int_equal(feed_bytewise(level, 0, p, n, &at), (int)n);
	assert_int_equal(at, n);
	teardown_held();
	held = malloc(n + 3);
	assert_non_null(held);
	memcpy(held, p, n);
	/* Trailing bytes of the next packet are not consumed. */
	memcpy(held + n, "\xC0\x00\xE0", 3);
	assert_int_equal(mqtt_parse(&o, held, n + 3, pk), (int)n);
	assert_int_equal(pk->len, n);
	assert_int_equal(mqtt_parse(&o, held, n, pk), (int)n);
}

/* A bad packet: prefixes give 0 up to some length and err from there on;
 * byte-wise stops at that length. Returns it (how early err was seen). */
static size_t parse_err_max(uint8_t level, size_t max, const uint8_t *p, size_t n, int err)
{
	struct mqtt_packet pk;
	size_t first = 0, at = 0;

	for (size_t k = 0; k <= n; k++) {
		int r = parse_copy(level, max, p, k, &pk);

		if (r == 0 && !first)
			continue;
		if (!first)
			first = k;
		if (r != err)
			fail_msg("prefix %zu of %zu: got %d (%s), want %d (%s)", k, n, r,
				 mqtt_strerror(r), err, mqtt_strerror(err));
	}
	if (!first)
		fail_msg("no error for the whole input, want %d", err);
	assert_int_equal(feed_bytewise(level, max, p, n, &at), err);
	assert_int_equal(at, first);
	return first;
}

static size_t parse_err(uint8_t level, const uint8_t *p, size_t n, int err)
{
	return parse_err_max(level, 0, p, n, err);
}

static void assert_str(struct mqtt_str s, const char *want)
{
	assert_int_equal(s.len, strlen(want));
	assert_memory_equal(s.p, want, s.len);
}

static void assert_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t n)
{
	assert_int_equal(got_len, n);
	assert_memory_equal(got, want, n);
}

/* ---- CONNECT / CONNACK ---- */

static const uint8_t connect_min[] = {
	0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C,
	0x00, 0x02, 'c', '1'};

static void test_connect_minimal(void **st)
{
	struct mqtt_packet pk;
	struct mqtt_connect c = {.level = 4, .clean = true, .keepalive = 60,
				 .client_id = S("c1")};
	uint8_t out[64];

	parse_ok(0, connect_min, sizeof(connect_min), &pk);
	assert_int_equal(pk.type, MQTT_CONNECT);
	assert_int_equal(pk.level, 4);
	assert_int_equal(pk.u.connect.level, 4);
	assert_true(pk.u.connect.clean);
	assert_int_equal(pk.u.connect.keepalive, 60);
	assert_str(pk.u.connect.client_id, "c1");
	assert_false(pk.u.connect.will);
	assert_false(pk.u.connect.has_username);
	assert_false(pk.u.connect.has_password);
	assert_bytes(out, mqtt_encode_connect(out, sizeof(out), &c), connect_min,
		     sizeof(connect_min));
	assert_int_equal(mqtt_encode_connect(out, sizeof(connect_min) - 1, &c), 0);
	teardown_held();
}

static const uint8_t connect_full_31[] = {
	0x10, 0x2B, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03,
	0xF4,                         /* user, password, will retain, will QoS 2, will */
	0x01, 0x00,                   /* keepalive 256 */
	0x00, 0x03, 'd', 'e', 'v',
	0x00, 0x06, 's', 't', 'a', 't', 'u', 's',
	0x00, 0x04, 'g', 'o', 'n', 'e',
	0x00, 0x05, 'a', 'l', 'i', 'c', 'e',
	0x00, 0x03, 's', 0x00, 0xFF}; /* binary password */

static void test_connect_full_31(void **st)
{
	struct mqtt_packet pk;
	struct mqtt_connect c = {.level = 3, .keepalive = 256, .client_id = S("dev"),
				 .will = true, .will_qos = 2, .will_retain = true,
				 .will_topic = S("status"), .will_payload = S("gone"),
				 .has_username = true, .username = S("alice"),
				 .has_password = true, .password = S("s\0\xFF")};
	uint8_t out[128];

	parse_ok(0, connect_full_31, sizeof(connect_full_31), &pk);
	assert_int_equal(pk.u.connect.level, 3);
	assert_str(pk.u.connect.protocol_name, "MQIsdp");
	assert_false(pk.u.connect.clean);
	assert_int_equal(pk.u.connect.keepalive, 256);
	assert_str(pk.u.connect.client_id, "dev");
	assert_true(pk.u.connect.will);
	assert_int_equal(pk.u.connect.will_qos, 2);
	assert_true(pk.u.connect.will_retain);
	assert_str(pk.u.connect.will_topic, "status");
	assert_str(pk.u.connect.will_payload, "gone");
	assert_str(pk.u.connect.username, "alice");
	assert_int_equal(pk.u.connect.password.len, 3);
	assert_memory_equal(pk.u.connect.password.p, "s\0\xFF", 3);
	assert_bytes(out, mqtt_encode_connect(out, sizeof(out), &c), connect_full_31,
		     sizeof(connect_full_31));
	teardown_held();
}

static void test_connect_empty_id_and_will_payload(void **st)
{
	struct mqtt_packet pk;

	parse_ok(0, ARR(0x10, 0x11, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 0,
			0, 0, 0, 1, 't', 0, 0), &pk);
	assert_int_equal(pk.u.connect.client_id.len, 0);
	assert_true(pk.u.connect.will);
	assert_int_equal(pk.u.connect.will_qos, 0);
	assert_str(pk.u.connect.will_topic, "t");
	assert_int_equal(pk.u.connect.will_payload.len, 0);
	teardown_held();
}

static void test_connect_errors(void **st)
{
	/* Unknown protocol name: not MQTT at all. */
	parse_err(0, ARR(0x10, 0x0C, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 0, 0, 0),
		  MQTT_ERR_PROTOCOL_NAME);
	/* A 5.0 CONNECT and mismatched name/level: CONNACK 0x01 territory. */
	parse_err(0, ARR(0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 0, 0, 0),
		  MQTT_ERR_LEVEL);
	parse_err(0, ARR(0x10, 0x0C, 0, 4, 'M', 'Q', 'T', 'T', 3, 2, 0, 0, 0, 0),
		  MQTT_ERR_LEVEL);
	parse_err(0, ARR(0x10, 0x0E, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 2, 0, 0, 0, 0),
		  MQTT_ERR_LEVEL);
	/* Reserved connect flag, will QoS without will, will QoS 3, password
	 * without user name. */
	parse_err(0, ARR(0x10, 0x0C, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 0, 0, 0),
		  MQTT_ERR_CONNECT_FLAGS);
	parse_err(0, ARR(0x10, 0x0C, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x0A, 0, 0, 0, 0),
		  MQTT_ERR_CONNECT_FLAGS);
	parse_err(0, ARR(0x10, 0x0C, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x22, 0, 0, 0, 0),
		  MQTT_ERR_CONNECT_FLAGS);
	parse_err(0, ARR(0x10, 0x0C, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x1E, 0, 0, 0, 0),
		  MQTT_ERR_QOS);
	parse_err(0, ARR(0x10, 0x0E, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x42, 0, 0, 0, 0, 0, 0),
		  MQTT_ERR_CONNECT_FLAGS);
	/* Client id: ill-formed UTF-8, U+0000, a surrogate, overlong. */
	parse_err(0, ARR(0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 1, 0xFF),
		  MQTT_ERR_UTF8);
	parse_err(0, ARR(0x10, 0x0E, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 2, 'a', 0),
		  MQTT_ERR_UTF8);
	parse_err(0, ARR(0x10, 0x0F, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 3, 0xED, 0xA0, 0x80),
		  MQTT_ERR_UTF8);
	parse_err(0, ARR(0x10, 0x0E, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 2, 0xC0, 0x80),
		  MQTT_ERR_UTF8);
	/* Will topic with a wildcard, and an empty one. */
	parse_err(0, ARR(0x10, 0x11, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 0, 0, 0,
			 0, 1, '#', 0, 0), MQTT_ERR_TOPIC);
	parse_err(0, ARR(0x10, 0x10, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 0, 0, 0,
			 0, 0, 0, 0), MQTT_ERR_TOPIC);
	/* User name with U+0000. */
	parse_err(0, ARR(0x10, 0x0F, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x82, 0, 0, 0, 0,
			 0, 1, 0), MQTT_ERR_UTF8);
	/* Fields that run past the remaining length; bytes after the last one. */
	parse_err(0, ARR(0x10, 0x0C, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 5),
		  MQTT_ERR_MALFORMED);
	parse_err(0, ARR(0x10, 0x08, 0, 4, 'M', 'Q', 'T', 'T', 4, 2), MQTT_ERR_MALFORMED);
	parse_err(0, ARR(0x10, 0x0E, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x82, 0, 0, 0, 0, 0, 5),
		  MQTT_ERR_MALFORMED);
	parse_err(0, ARR(0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 0, 'x'),
		  MQTT_ERR_MALFORMED);
	/* CONNECT flags nibble must be 0. */
	assert_int_equal(parse_err(0, ARR(0x11, 0x0C, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 0),
				   MQTT_ERR_FLAGS), 1);
}

static void test_connack(void **st)
{
	struct mqtt_packet pk;
	uint8_t out[8];

	assert_bytes(out, mqtt_encode_connack(out, sizeof(out), 4, false, 0), ARR(0x20, 2, 0, 0));
	assert_bytes(out, mqtt_encode_connack(out, sizeof(out), 4, true, 0), ARR(0x20, 2, 1, 0));
	assert_bytes(out, mqtt_encode_connack(out, sizeof(out), 4, false, 5), ARR(0x20, 2, 0, 5));
	/* 3.1 has no session-present flag. */
	assert_bytes(out, mqtt_encode_connack(out, sizeof(out), 3, true, 0), ARR(0x20, 2, 0, 0));
	assert_int_equal(mqtt_encode_connack(out, 3, 4, false, 0), 0);
	assert_int_equal(mqtt_encode_connack(out, sizeof(out), 5, false, 0), 0);

	parse_ok(4, ARR(0x20, 2, 1, 0x02), &pk);
	assert_int_equal(pk.type, MQTT_CONNACK);
	assert_true(pk.u.connack.session_present);
	assert_int_equal(pk.u.connack.code, 2);
	parse_err(4, ARR(0x20, 2, 0x02, 0), MQTT_ERR_RESERVED);
	parse_err(4, ARR(0x20, 3, 0, 0, 0), MQTT_ERR_MALFORMED);
	parse_err(4, ARR(0x21, 2, 0, 0), MQTT_ERR_FLAGS);
	teardown_held();
}

/* ---- PUBLISH ---- */

static void check_publish(uint8_t level, const uint8_t *want, size_t n,
			  const struct mqtt_publish *pub)
{
	struct mqtt_packet pk;
	uint8_t out[64];

	assert_int_equal(mqtt_publish_size(level, pub->topic.len, pub->payload.len, pub->qos), n);
	assert_bytes(out, mqtt_encode_publish(out, sizeof(out), level, pub), want, n);
	assert_int_equal(mqtt_encode_publish(out, n - 1, level, pub), 0);
	parse_ok(level, want, n, &pk);
	assert_int_equal(pk.type, MQTT_PUBLISH);
	assert_int_equal(pk.u.publish.qos, pub->qos);
	assert_int_equal(pk.u.publish.dup, pub->dup);
	assert_int_equal(pk.u.publish.retain, pub->retain);
	assert_int_equal(pk.u.publish.id, pub->id);
	assert_int_equal(pk.id, pub->id);
	assert_int_equal(pk.u.publish.topic.len, pub->topic.len);
	assert_memory_equal(pk.u.publish.topic.p, pub->topic.p, pub->topic.len);
	assert_int_equal(pk.u.publish.payload.len, pub->payload.len);
	if (pub->payload.len)
		assert_memory_equal(pk.u.publish.payload.p, pub->payload.p, pub->payload.len);
	teardown_held();
}

static void test_publish(void **st)
{
	check_publish(4, ARR(0x30, 0x07, 0, 3, 'a', '/', 'b', 'h', 'i'),
		      &(struct mqtt_publish){.topic = S("a/b"), .payload = S("hi")});
	check_publish(4, ARR(0x31, 0x05, 0, 3, 'a', '/', 'b'),
		      &(struct mqtt_publish){.topic = S("a/b"), .retain = true});
	check_publish(4, ARR(0x32, 0x07, 0, 1, 't', 0x12, 0x34, 'x', 0),
		      &(struct mqtt_publish){.topic = S("t"), .payload = S("x\0"), .qos = 1,
					     .id = 0x1234});
	check_publish(4, ARR(0x3D, 0x06, 0, 1, 't', 0xFF, 0xFF, 'z'),
		      &(struct mqtt_publish){.topic = S("t"), .payload = S("z"), .qos = 2,
					     .id = 0xFFFF, .dup = true, .retain = true});
	/* $-topics, spaces and multi-byte UTF-8 are plain topic names. */
	check_publish(3, ARR(0x30, 0x0A, 0, 8, '$', 'S', 'Y', 'S', '/', 0xC3, 0xA9, ' '),
		      &(struct mqtt_publish){.topic = S("$SYS/\xC3\xA9 ")});
}

static void test_publish_errors(void **st)
{
	/* QoS 3, DUP at QoS 0: judged from the first byte alone. */
	assert_int_equal(parse_err(4, ARR(0x36, 3, 0, 1, 't'), MQTT_ERR_QOS), 1);
	assert_int_equal(parse_err(4, ARR(0x38, 3, 0, 1, 't'), MQTT_ERR_FLAGS), 1);
	/* Zero-length topic, wildcards in a topic name. */
	parse_err(4, ARR(0x30, 3, 0, 0, 'x'), MQTT_ERR_TOPIC);
	parse_err(4, ARR(0x30, 5, 0, 3, 'a', '/', '+'), MQTT_ERR_TOPIC);
	parse_err(4, ARR(0x30, 3, 0, 1, '#'), MQTT_ERR_TOPIC);
	parse_err(4, ARR(0x30, 5, 0, 3, 'a', '#', 'b'), MQTT_ERR_TOPIC);
	/* Bad UTF-8 and U+0000 in the topic; the payload is binary. */
	parse_err(4, ARR(0x30, 4, 0, 2, 'a', 0x80), MQTT_ERR_UTF8);
	parse_err(4, ARR(0x30, 4, 0, 2, 'a', 0), MQTT_ERR_UTF8);
	parse_err(4, ARR(0x30, 6, 0, 4, 0xF4, 0x90, 0x80, 0x80), MQTT_ERR_UTF8);
	/* Packet identifier 0 at QoS 1 and 2, and missing. */
	parse_err(4, ARR(0x32, 5, 0, 1, 't', 0, 0), MQTT_ERR_PACKET_ID);
	parse_err(4, ARR(0x34, 5, 0, 1, 't', 0, 0), MQTT_ERR_PACKET_ID);
	parse_err(4, ARR(0x32, 4, 0, 1, 't', 1), MQTT_ERR_MALFORMED);
	/* Topic length past the packet. */
	parse_err(4, ARR(0x30, 3, 0, 5, 't'), MQTT_ERR_MALFORMED);
	parse_err(4, ARR(0x30, 1, 0), MQTT_ERR_MALFORMED);
	parse_err(4, ARR(0x30, 0), MQTT_ERR_MALFORMED);
}

static void test_publish_encode_refuses(void **st)
{
	uint8_t out[64];
	static char big[70000];

	assert_int_equal(mqtt_encode_publish(out, sizeof(out), 4,
		&(struct mqtt_publish){.topic = S("t"), .qos = 1, .id = 0}), 0);
	assert_int_equal(mqtt_encode_publish(out, sizeof(out), 4,
		&(struct mqtt_publish){.topic = S("t"), .dup = true}), 0);
	assert_int_equal(mqtt_encode_publish(out, sizeof(out), 4,
		&(struct mqtt_publish){.topic = S("t"), .qos = 3, .id = 1}), 0);
	assert_int_equal(mqtt_publish_size(4, sizeof(big), 1, 0), 0);
	assert_int_equal(mqtt_publish_size(4, 65535, 1, 0), 1 + 3 + 2 + 65535 + 1);
	assert_int_equal(mqtt_publish_size(4, 1, MQTT_MAX_REMLEN, 0), 0);
	assert_int_equal(mqtt_publish_size(4, 1, MQTT_MAX_REMLEN - 3, 0), 1 + 4 + MQTT_MAX_REMLEN);
	assert_int_equal(mqtt_publish_size(5, 1, 1, 0), 0);
}

/* ---- remaining length and limits ---- */

static void check_remlen(size_t payload, const uint8_t *hdr, size_t hlen)
{
	size_t total = 1 + hlen - 1 + 2 + 1 + payload;
	uint8_t *buf = malloc(total);
	uint8_t *p = calloc(1, payload ? payload : 1);
	struct mqtt_parse_opts o = {4, 0};
	struct mqtt_packet pk;
	size_t got_total = 0;

	assert_non_null(buf);
	assert_non_null(p);
	assert_int_equal(mqtt_encode_publish(buf, total, 4, &(struct mqtt_publish){
		.topic = S("t"), .payload = {p, payload}}), total);
	assert_memory_equal(buf, hdr, hlen);
	assert_int_equal(mqtt_parse_header(&o, buf, total, &got_total), (int)hlen);
	assert_int_equal(got_total, total);
	/* Every cut of the header needs more; every cut of the body too. */
	for (size_t k = 0; k < hlen; k++)
		assert_int_equal(mqtt_parse_header(&o, buf, k, &got_total), 0);
	assert_int_equal(mqtt_parse(&o, buf, total - 1, &pk), 0);
	assert_int_equal(mqtt_parse(&o, buf, total, &pk), (int)total);
	assert_int_equal(pk.u.publish.payload.len, payload);
	free(buf);
	free(p);
}

static void test_remaining_length(void **st)
{
	/* Remaining length = 3 + payload: 127, 128, 16383, 16384, 2097151,
	 * 2097152 are the boundaries of the 1..4 byte encodings. */
	check_remlen(0, ARR(0x30, 0x03));
	check_remlen(124, ARR(0x30, 0x7F));
	check_remlen(125, ARR(0x30, 0x80, 0x01));
	check_remlen(16380, ARR(0x30, 0xFF, 0x7F));
	check_remlen(16381, ARR(0x30, 0x80, 0x80, 0x01));
	check_remlen(2097148, ARR(0x30, 0xFF, 0xFF, 0x7F));
	check_remlen(2097149, ARR(0x30, 0x80, 0x80, 0x80, 0x01));
}

static void test_remaining_length_errors(void **st)
{
	struct mqtt_parse_opts o = {4, 0};
	size_t total = 0;

	/* The largest four-byte value is fine as a header. */
	assert_int_equal(mqtt_parse_header(&o, ARR(0x30, 0xFF, 0xFF, 0xFF, 0x7F), &total), 5);
	assert_int_equal(total, 5 + MQTT_MAX_REMLEN);
	/* A fifth length byte is malformed, seen at the fourth length byte. */
	assert_int_equal(parse_err(4, ARR(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), MQTT_ERR_REMLEN), 5);
	assert_int_equal(parse_err(4, ARR(0x30, 0x80, 0x80, 0x80, 0x80, 0x00), MQTT_ERR_REMLEN), 5);
	assert_int_equal(parse_err(0, ARR(0x10, 0x80, 0x80, 0x80, 0x80), MQTT_ERR_REMLEN), 5);
}

static void test_max_packet(void **st)
{
	/* Judged from the fixed header: two bytes are enough to refuse a
	 * 102-byte packet when the limit is 101. */
	assert_int_equal(parse_err_max(4, 101, ARR(0x30, 100), MQTT_ERR_TOO_LARGE), 2);
	assert_int_equal(parse_err_max(4, 1000, ARR(0x30, 0xE6, 0x07), MQTT_ERR_TOO_LARGE), 3);
	assert_int_equal(parse_err_max(0, 100, ARR(0x10, 0xFF, 0xFF, 0xFF, 0x7F), MQTT_ERR_TOO_LARGE), 5);

	/* Exactly at the limit is allowed. */
	struct mqtt_parse_opts o = {4, 9};
	struct mqtt_packet pk;
	assert_int_equal(mqtt_parse(&o, ARR(0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i'), &pk), 9);
	o.max_packet = 8;
	assert_int_equal(mqtt_parse(&o, ARR(0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i'), &pk),
			 MQTT_ERR_TOO_LARGE);
}

static void test_reserved_types(void **st)
{
	assert_int_equal(parse_err(4, ARR(0x00, 0x00), MQTT_ERR_TYPE), 1);
	assert_int_equal(parse_err(4, ARR(0xF0, 0x00), MQTT_ERR_TYPE), 1);
	assert_int_equal(parse_err(0, ARR(0xF0, 0x00), MQTT_ERR_TYPE), 1);
	/* A 5.0 stream past CONNECT is not spoken yet. */
	parse_err(5, ARR(0xF0, 0x00), MQTT_ERR_LEVEL);
	parse_err(5, ARR(0xC0, 0x00), MQTT_ERR_LEVEL);
}

/* ---- acknowledgements and empty packets ---- */

static void check_ack(uint8_t type, uint8_t first)
{
	struct mqtt_packet pk;
	uint8_t out[8], want[4] = {first, 2, 0xAB, 0xCD};

	assert_bytes(out, mqtt_encode_ack(out, sizeof(out), 4, type, 0xABCD), want, 4);
	assert_int_equal(mqtt_encode_ack(out, 3, 4, type, 1), 0);
	assert_int_equal(mqtt_encode_ack(out, sizeof(out), 4, type, 0), 0);
	parse_ok(4, want, 4, &pk);
	assert_int_equal(pk.type, type);
	assert_int_equal(pk.id, 0xABCD);
	parse_err(4, (uint8_t[]){first, 2, 0, 0}, 4, MQTT_ERR_PACKET_ID);
	parse_err(4, (uint8_t[]){first, 3, 0, 1, 0}, 5, MQTT_ERR_MALFORMED);
	parse_err(4, (uint8_t[]){first, 1, 1}, 3, MQTT_ERR_MALFORMED);
	parse_err(4, (uint8_t[]){first, 0}, 2, MQTT_ERR_MALFORMED);
	assert_int_equal(parse_err(4, (uint8_t[]){first ^ 0x02, 2, 0, 1}, 4, MQTT_ERR_FLAGS), 1);
	assert_int_equal(parse_err(4, (uint8_t[]){first | 0x01, 2, 0, 1}, 4, MQTT_ERR_FLAGS), 1);
	teardown_held();
}

static void test_acks(void **st)
{
	struct mqtt_packet pk;
	uint8_t out[8];

	check_ack(MQTT_PUBACK, 0x40);
	check_ack(MQTT_PUBREC, 0x50);
	check_ack(MQTT_PUBREL, 0x62);
	check_ack(MQTT_PUBCOMP, 0x70);
	check_ack(MQTT_UNSUBACK, 0xB0);
	assert_int_equal(mqtt_encode_ack(out, sizeof(out), 4, MQTT_PUBLISH, 1), 0);
	assert_int_equal(mqtt_encode_ack(out, sizeof(out), 4, MQTT_SUBACK, 1), 0);
	/* 3.1 clients may flag a retried PUBREL as DUP; 3.1.1 may not. */
	parse_ok(3, ARR(0x6A, 2, 0, 7), &pk);
	assert_int_equal(pk.type, MQTT_PUBREL);
	assert_int_equal(pk.id, 7);
	parse_err(4, ARR(0x6A, 2, 0, 7), MQTT_ERR_FLAGS);
	teardown_held();
}

static void check_empty(uint8_t type, uint8_t first)
{
	struct mqtt_packet pk;
	uint8_t out[4];

	assert_bytes(out, mqtt_encode_empty(out, sizeof(out), 4, type), (uint8_t[]){first, 0}, 2);
	assert_int_equal(mqtt_encode_empty(out, 1, 4, type), 0);
	parse_ok(4, (uint8_t[]){first, 0}, 2, &pk);
	assert_int_equal(pk.type, type);
	parse_err(4, (uint8_t[]){first, 1, 0}, 3, MQTT_ERR_MALFORMED);
	parse_err(4, (uint8_t[]){first | 0x02, 0}, 2, MQTT_ERR_FLAGS);
	teardown_held();
}

static void test_empty_packets(void **st)
{
	uint8_t out[4];

	check_empty(MQTT_PINGREQ, 0xC0);
	check_empty(MQTT_PINGRESP, 0xD0);
	check_empty(MQTT_DISCONNECT, 0xE0);
	assert_int_equal(mqtt_encode_empty(out, sizeof(out), 4, MQTT_PUBACK), 0);
}

/* ---- SUBSCRIBE / SUBACK / UNSUBSCRIBE ---- */

static const uint8_t subscribe_3[] = {
	0x82, 0x16, 0x00, 0x0A,
	0x00, 0x03, 'a', '/', '+', 0x01,
	0x00, 0x01, '#', 0x02,
	0x00, 0x00, 0x00,             /* empty filter: SUBACK 0x80, not malformed */
	0x00, 0x04, 'x', '/', '#', 'y', 0x00};

static void test_subscribe(void **st)
{
	struct mqtt_packet pk;
	struct mqtt_topic_iter it;
	struct mqtt_str f;
	uint8_t q, out[64];
	const struct mqtt_str filters[] = {S("a/+"), S("#"), S(""), S("x/#y")};
	const uint8_t qos[] = {1, 2, 0, 0};
	const char *want[] = {"a/+", "#", "", "x/#y"};
	size_t i = 0;

	assert_bytes(out, mqtt_encode_subscribe(out, sizeof(out), 4, 10, filters, qos, 4),
		     subscribe_3, sizeof(subscribe_3));
	parse_ok(4, subscribe_3, sizeof(subscribe_3), &pk);
	assert_int_equal(pk.type, MQTT_SUBSCRIBE);
	assert_int_equal(pk.id, 10);
	assert_int_equal(pk.u.topics.count, 4);
	mqtt_topics_begin(&pk, &it);
	while (mqtt_topics_next(&it, &f, &q)) {
		assert_true(i < 4);
		assert_str(f, want[i]);
		assert_int_equal(q, qos[i]);
		i++;
	}
	assert_int_equal(i, 4);
	assert_int_equal(mqtt_encode_subscribe(out, sizeof(out), 4, 0, filters, qos, 4), 0);
	assert_int_equal(mqtt_encode_subscribe(out, sizeof(out), 4, 1, filters, qos, 0), 0);
	assert_int_equal(mqtt_encode_subscribe(out, sizeof(subscribe_3) - 1, 4, 10, filters, qos, 4), 0);
	assert_int_equal(mqtt_encode_subscribe(out, sizeof(out), 4, 1, filters,
					       (const uint8_t[]){3}, 1), 0);
	teardown_held();
}

static void test_subscribe_errors(void **st)
{
	assert_int_equal(parse_err(4, ARR(0x80, 6, 0, 1, 0, 1, 'a', 0), MQTT_ERR_FLAGS), 1);
	assert_int_equal(parse_err(4, ARR(0x83, 6, 0, 1, 0, 1, 'a', 0), MQTT_ERR_FLAGS), 1);
	parse_err(4, ARR(0x82, 2, 0, 1), MQTT_ERR_NO_TOPICS);
	parse_err(4, ARR(0x82, 6, 0, 0, 0, 1, 'a', 0), MQTT_ERR_PACKET_ID);
	parse_err(4, ARR(0x82, 6, 0, 1, 0, 1, 'a', 3), MQTT_ERR_QOS);
	parse_err(4, ARR(0x82, 6, 0, 1, 0, 1, 'a', 0x04), MQTT_ERR_RESERVED);
	parse_err(4, ARR(0x82, 6, 0, 1, 0, 1, 'a', 0x80), MQTT_ERR_RESERVED);
	parse_err(4, ARR(0x82, 6, 0, 1, 0, 1, 0xFE, 0), MQTT_ERR_UTF8);
	parse_err(4, ARR(0x82, 6, 0, 1, 0, 1, 0x00, 0), MQTT_ERR_UTF8);
	parse_err(4, ARR(0x82, 5, 0, 1, 0, 1, 'a'), MQTT_ERR_MALFORMED);
	parse_err(4, ARR(0x82, 6, 0, 1, 0, 3, 'a', 'b'), MQTT_ERR_MALFORMED);
	parse_err(4, ARR(0x82, 7, 0, 1, 0, 1, 'a', 0, 0), MQTT_ERR_MALFORMED);
	parse_err(4, ARR(0x82, 1, 0), MQTT_ERR_MALFORMED);
}

static void test_unsubscribe(void **st)
{
	struct mqtt_packet pk;
	struct mqtt_topic_iter it;
	struct mqtt_str f;
	uint8_t out[32], q = 9;
	const struct mqtt_str filters[] = {S("a/b"), S("+")};
	const uint8_t want[] = {0xA2, 0x0A, 0x12, 0x34, 0, 3, 'a', '/', 'b', 0, 1, '+'};

	assert_bytes(out, mqtt_encode_unsubscribe(out, sizeof(out), 4, 0x1234, filters, 2),
		     want, sizeof(want));
	parse_ok(4, want, sizeof(want), &pk);
	assert_int_equal(pk.type, MQTT_UNSUBSCRIBE);
	assert_int_equal(pk.id, 0x1234);
	assert_int_equal(pk.u.topics.count, 2);
	mqtt_topics_begin(&pk, &it);
	assert_true(mqtt_topics_next(&it, &f, &q));
	assert_str(f, "a/b");
	assert_int_equal(q, 0);
	assert_true(mqtt_topics_next(&it, &f, NULL));
	assert_str(f, "+");
	assert_false(mqtt_topics_next(&it, &f, NULL));
	teardown_held();

	parse_err(4, ARR(0xA2, 2, 0, 1), MQTT_ERR_NO_TOPICS);
	parse_err(4, ARR(0xA2, 5, 0, 0, 0, 1, 'a'), MQTT_ERR_PACKET_ID);
	parse_err(4, ARR(0xA2, 5, 0, 1, 0, 1, 0xC3), MQTT_ERR_UTF8);
	parse_err(4, ARR(0xA2, 5, 0, 1, 0, 2, 'a'), MQTT_ERR_MALFORMED);
	assert_int_equal(parse_err(4, ARR(0xA0, 5, 0, 1, 0, 1, 'a'), MQTT_ERR_FLAGS), 1);
}

static void test_suback(void **st)
{
	struct mqtt_packet pk;
	uint8_t out[16];
	const uint8_t codes[] = {0, 1, 2, 0x80};
	const uint8_t want[] = {0x90, 6, 0, 5, 0, 1, 2, 0x80};

	assert_bytes(out, mqtt_encode_suback(out, sizeof(out), 4, 5, codes, 4), want, sizeof(want));
	assert_int_equal(mqtt_encode_suback(out, sizeof(want) - 1, 4, 5, codes, 4), 0);
	assert_int_equal(mqtt_encode_suback(out, sizeof(out), 4, 5, (const uint8_t[]){3}, 1), 0);
	assert_int_equal(mqtt_encode_suback(out, sizeof(out), 4, 0, codes, 1), 0);
	assert_int_equal(mqtt_encode_suback(out, sizeof(out), 4, 5, codes, 0), 0);
	parse_ok(4, want, sizeof(want), &pk);
	assert_int_equal(pk.type, MQTT_SUBACK);
	assert_int_equal(pk.id, 5);
	assert_int_equal(pk.u.suback_codes.len, 4);
	assert_memory_equal(pk.u.suback_codes.p, codes, 4);
	teardown_held();
	parse_err(4, ARR(0x90, 3, 0, 5, 0x03), MQTT_ERR_RESERVED);
	parse_err(4, ARR(0x90, 2, 0, 5), MQTT_ERR_NO_TOPICS);
	parse_err(4, ARR(0x90, 3, 0, 0, 0), MQTT_ERR_PACKET_ID);
}

/* ---- a stream of packets, cut every way ---- */

static void test_stream_chunks(void **st)
{
	uint8_t stream[256];
	size_t n = 0;
	const uint8_t want_types[] = {MQTT_CONNECT, MQTT_SUBSCRIBE, MQTT_PUBLISH,
				      MQTT_PUBLISH, MQTT_PUBREL, MQTT_PINGREQ,
				      MQTT_UNSUBSCRIBE, MQTT_DISCONNECT};
	const struct mqtt_str f[] = {S("a/#")};
	struct mqtt_connect c = {.level = 4, .clean = true, .client_id = S("abc")};

	n += mqtt_encode_connect(stream + n, sizeof(stream) - n, &c);
	n += mqtt_encode_subscribe(stream + n, sizeof(stream) - n, 4, 1, f, (const uint8_t[]){2}, 1);
	n += mqtt_encode_publish(stream + n, sizeof(stream) - n, 4, &(struct mqtt_publish){
		.topic = S("a/b"), .payload = S("one"), .qos = 1, .id = 2});
	n += mqtt_encode_publish(stream + n, sizeof(stream) - n, 4, &(struct mqtt_publish){
		.topic = S("a/c"), .payload = S("two"), .qos = 2, .id = 3});
	n += mqtt_encode_ack(stream + n, sizeof(stream) - n, 4, MQTT_PUBREL, 3);
	n += mqtt_encode_empty(stream + n, sizeof(stream) - n, 4, MQTT_PINGREQ);
	n += mqtt_encode_unsubscribe(stream + n, sizeof(stream) - n, 4, 4, f, 1);
	n += mqtt_encode_empty(stream + n, sizeof(stream) - n, 4, MQTT_DISCONNECT);
	assert_int_equal(n, 17 + 10 + 12 + 12 + 4 + 2 + 9 + 2);

	/* As a session would: append each chunk, cut whole packets off the
	 * front, keep the rest. */
	for (size_t chunk = 1; chunk <= n; chunk++) {
		uint8_t *buf = malloc(n);
		size_t have = 0, off = 0, got = 0;
		struct mqtt_parse_opts o = {4, 1024};

		assert_non_null(buf);
		while (off < n || have) {
			size_t take = n - off < chunk ? n - off : chunk;
			struct mqtt_packet pk;
			int r;

			memcpy(buf + have, stream + off, take);
			have += take;
			off += take;
			while ((r = mqtt_parse(&o, buf, have, &pk)) > 0) {
				assert_true(got < sizeof(want_types));
				assert_int_equal(pk.type, want_types[got]);
				if (got == 3) {
					assert_str(pk.u.publish.payload, "two");
					assert_int_equal(pk.id, 3);
				}
				got++;
				memmove(buf, buf + r, have - (size_t)r);
				have -= (size_t)r;
			}
			assert_int_equal(r, 0);
			if (off == n && have)
				fail_msg("chunk %zu: %zu bytes left over", chunk, have);
		}
		assert_int_equal(got, sizeof(want_types));
		free(buf);
	}
}

static void test_strerror(void **st)
{
	for (int e = MQTT_ERR_RESERVED; e <= MQTT_ERR_MALFORMED; e++)
		assert_string_not_equal(mqtt_strerror(e), "unknown error");
	assert_string_equal(mqtt_strerror(0), "unknown error");
	assert_string_equal(mqtt_type_name(MQTT_PUBREL), "PUBREL");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_minimal),
		cmocka_unit_test(test_connect_full_31),
		cmocka_unit_test(test_connect_empty_id_and_will_payload),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_connack),
		cmocka_unit_test(test_publish),
		cmocka_unit_test(test_publish_errors),
		cmocka_unit_test(test_publish_encode_refuses),
		cmocka_unit_test(test_remaining_length),
		cmocka_unit_test(test_remaining_length_errors),
		cmocka_unit_test(test_max_packet),
		cmocka_unit_test(test_reserved_types),
		cmocka_unit_test(test_acks),
		cmocka_unit_test(test_empty_packets),
		cmocka_unit_test(test_subscribe),
		cmocka_unit_test(test_subscribe_errors),
		cmocka_unit_test(test_unsubscribe),
		cmocka_unit_test(test_suback),
		cmocka_unit_test(test_stream_chunks),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
