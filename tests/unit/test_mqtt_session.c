/* Unit tests for the MQTT session (mqtt.c, mqtt_session.c), driven through
 * struct protocol with fake connections, a real router and a fake clock.
 * Each client is a fake conn: bytes go in through mqtt_protocol.input and
 * what the broker sent is parsed back with mqtt_codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auth/acl.h"
#include "auth/auth.h"
#include "clock.h"
#include "config.h"
#include "fake_conn.h"
#include "log.h"
#include "route/message.h"
#include "mqtt.h"
#include "mqtt_codec.h"
#include "route/router.h"
#include "store.h"

#define STR(lit) ((struct mqtt_str){(const uint8_t *)(lit), strlen(lit)})

static struct cfg cfg;
static struct router *router;
static struct proto_env penv;
/* A real store in memory, settled after each input as a quick disk would
 * be, unless a test pauses it to see what waits for the commit. */
static struct store *store;
static bool store_paused;
static uint64_t now_ms;

static uint64_t fake_now(void)
{
	return now_ms;
}

/* The protocol instance for penv, as the broker's start-up makes it. */
static void mqtt_instance_new(void)
{
	penv.state = mqtt_protocol.init(&penv);
	assert_non_null(penv.state);
}

static int setup(void **st)
{
	log_set_level(LOGL_WARN);
	cfg_defaults(&cfg);
	/* Refusals answered at once here; the held refusal is test_auth.py's. */
	cfg.login_fail_delay_ms = 0;
	router = router_new(NULL);
	assert_non_null(router);
	penv.router = router;
	penv.cfg = &cfg;
	char err[200];
	store = store_open(":memory:", STORE_SYNC_FULL, &(struct store_log){.fn = log_sink},
			   err, sizeof(err));
	assert_non_null(store);
	penv.store = store;
	mqtt_instance_new();
	store_paused = false;
	now_ms = 1000000;
	clock_set_source(fake_now);
	return 0;
}

static int teardown(void **st)
{
	mqtt_protocol.teardown(&penv);
	penv.state = NULL;
	router_free(router);
	store_close(store);
	store = NULL;
	auth_reset();
	clock_set_source(NULL);
	return 0;
}

/* ---- a test client ---- */

struct client {
	struct conn *c;
	void *s;
	size_t rd;          /* how much of c->out has been read */
	uint8_t level;
};

/* A client of the protocol instance in env. */
static struct client *cl_open_in(const struct proto_env *env)
{
	struct client *k = calloc(1, sizeof(*k));

	assert_non_null(k);
	k->c = fake_conn_new(false);
	k->c->default_binary = true;
	k->s = mqtt_protocol.open(k->c, env, NULL);
	assert_non_null(k->s);
	k->level = MQTT_LEVEL_311;
	return k;
}

static struct client *cl_open(void)
{
	return cl_open_in(&penv);
}

static void cl_free(struct client *k, enum proto_close_reason why)
{
	mqtt_protocol.close(k->s, why);
	fake_conn_free(k->c);
	free(k);
}

static void settle(void)
{
	if (!store_paused)
		store_flush_sync(store);
}

static int cl_send(struct client *k, const uint8_t *p, size_t n)
{
	int r = mqtt_protocol.input(k->s, p, n);

	settle();
	return r;
}

/* One byte per input call. */
static int cl_send_bytewise(struct client *k, const uint8_t *p, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++)
		r = cl_send(k, p + i, 1);
	return r;
}

/* The next packet the broker sent, or false when it sent nothing more. */
static bool cl_next(struct client *k, struct mqtt_packet *pk)
{
	struct mqtt_parse_opts o = {k->level, 0};
	int r;

	if (k->rd == k->c->out_len)
		return false;
	r = mqtt_parse(&o, k->c->out + k->rd, k->c->out_len - k->rd, pk);
	if (r <= 0)
		fail_msg("broker sent an unparsable packet (%d)", r);
	k->rd += (size_t)r;
	return true;
}

static void expect_nothing(struct client *k)
{
	struct mqtt_packet pk;

	if (cl_next(k, &pk))
		fail_msg("unexpected %s", mqtt_type_name(pk.type));
}

static void expect_type(struct client *k, uint8_t type, struct mqtt_packet *pk)
{
	if (!cl_next(k, pk))
		fail_msg("expected %s, got nothing", mqtt_type_name(type));
	if (pk->type != type)
		fail_msg("expected %s, got %s", mqtt_type_name(type), mqtt_type_name(pk->type));
}

static void expect_ack(struct client *k, uint8_t type, uint16_t id)
{
	struct mqtt_packet pk;

	expect_type(k, type, &pk);
	assert_int_equal(pk.id, id);
}

/* The next PUBLISH, checked; returns its packet id. */
static uint16_t expect_publish(struct client *k, const char *topic, const char *payload,
			       uint8_t qos, bool retain)
{
	struct mqtt_packet pk;

	expect_type(k, MQTT_PUBLISH, &pk);
	assert_int_equal(pk.u.publish.topic.len, strlen(topic));
	assert_memory_equal(pk.u.publish.topic.p, topic, strlen(topic));
	assert_int_equal(pk.u.publish.payload.len, strlen(payload));
	assert_memory_equal(pk.u.publish.payload.p, payload, strlen(payload));
	assert_int_equal(pk.u.publish.qos, qos);
	assert_int_equal(pk.u.publish.retain, retain);
	return pk.u.publish.id;
}

static void send_connect(struct client *k, const struct mqtt_connect *c)
{
	uint8_t buf[512];
	size_t n = mqtt_encode_connect(buf, sizeof(buf), c);

	assert_true(n > 0);
	k->level = c->level;
	cl_send(k, buf, n);
}

/* Connect and check the CONNACK; returns session present. */
static bool cl_connect_full(struct client *k, const struct mqtt_connect *c)
{
	struct mqtt_packet pk;

	send_connect(k, c);
	expect_type(k, MQTT_CONNACK, &pk);
	assert_int_equal(pk.u.connack.code, 0);
	assert_false(k->c->closing);
	return pk.u.connack.session_present;
}

static struct client *cl_connected_in(const struct proto_env *env, const char *id, bool clean)
{
	struct client *k = cl_open_in(env);

	cl_connect_full(k, &(struct mqtt_connect){.level = 4, .clean = clean, .keepalive = 60,
						   .client_id = STR(id)});
	return k;
}

static struct client *cl_connected(const char *id, bool clean)
{
	return cl_connected_in(&penv, id, clean);
}

static void cl_publish(struct client *k, const char *topic, const char *payload,
		       uint8_t qos, uint16_t id, bool retain, bool dup)
{
	struct mqtt_publish p = {.topic = STR(topic), .payload = STR(payload), .qos = qos,
				 .id = id, .retain = retain, .dup = dup};
	size_t n = mqtt_publish_size(k->level, p.topic.len, p.payload.len, qos);
	uint8_t *buf = malloc(n);

	assert_non_null(buf);
	assert_int_equal(mqtt_encode_publish(buf, n, k->level, &p), n);
	cl_send(k, buf, n);
	free(buf);
}

static void cl_ack(struct client *k, uint8_t type, uint16_t id)
{
	uint8_t b[4];

	assert_int_equal(mqtt_encode_ack(b, sizeof(b), k->level, type, id), 4);
	cl_send(k, b, 4);
}

static void cl_simple(struct client *k, uint8_t type)
{
	uint8_t b[2];

	assert_int_equal(mqtt_encode_empty(b, sizeof(b), k->level, type), 2);
	cl_send(k, b, 2);
}

/* SUBSCRIBE to one filter and return the SUBACK code. */
static uint8_t cl_subscribe(struct client *k, const char *filter, uint8_t qos)
{
	uint8_t buf[256];
	struct mqtt_str f = STR(filter);
	struct mqtt_packet pk;
	size_t n = mqtt_encode_subscribe(buf, sizeof(buf), k->level, 99, &f, &qos, 1);

	assert_true(n > 0);
	cl_send(k, buf, n);
	expect_type(k, MQTT_SUBACK, &pk);
	assert_int_equal(pk.id, 99);
	assert_int_equal(pk.u.suback_codes.len, 1);
	return pk.u.suback_codes.p[0];
}

static struct mqtt_stats stats_of(const struct proto_env *env)
{
	struct mqtt_stats s;

	mqtt_get_stats(env, &s);
	return s;
}

static struct mqtt_stats stats(void)
{
	return stats_of(&penv);
}

/* ---- CONNECT ---- */

static void test_connect_accepted(void **st)
{
	struct client *k = cl_open();
	const uint8_t connack[] = {0x20, 2, 0, 0};

	assert_int_equal(k->c->timer_ms, cfg.handshake_timeout_ms);
	send_connect(k, &(struct mqtt_connect){.level = 4, .clean = true, .keepalive = 10,
					       .client_id = STR("dev-1")});
	assert_int_equal(k->c->out_len, 4);
	assert_memory_equal(k->c->out, connack, 4);
	assert_string_equal(k->c->client_id, "dev-1");
	assert_int_equal(k->c->timer_ms, 15000);   /* 1.5 x keepalive */
	assert_true(k->c->last_binary);
	assert_int_equal(stats().sessions, 1);
	cl_free(k, PROTO_CLOSED_BY_PEER);
	assert_int_equal(stats().sessions, 0);
}

/* A CONNECT, SUBSCRIBE and PINGREQ fed one byte per read, then all three in
 * one read: the same answers either way. */
static void test_split_and_batched_packets(void **st)
{
	uint8_t buf[128];
	size_t n = 0;
	const struct mqtt_str f = STR("a/b");
	const uint8_t q = 1;

	n += mqtt_encode_connect(buf, sizeof(buf), &(struct mqtt_connect){
		.level = 4, .clean = true, .client_id = STR("x")});
	n += mqtt_encode_subscribe(buf + n, sizeof(buf) - n, 4, 3, &f, &q, 1);
	n += mqtt_encode_empty(buf + n, sizeof(buf) - n, 4, MQTT_PINGREQ);

	for (int way = 0; way < 2; way++) {
		struct client *k = cl_open();
		struct mqtt_packet pk;

		if (way == 0)
			assert_int_equal(cl_send_bytewise(k, buf, n), 0);
		else
			assert_int_equal(cl_send(k, buf, n), 0);
		expect_type(k, MQTT_CONNACK, &pk);
		expect_type(k, MQTT_SUBACK, &pk);
		assert_int_equal(pk.id, 3);
		assert_int_equal(pk.u.suback_codes.p[0], 1);
		expect_type(k, MQTT_PINGRESP, &pk);
		expect_nothing(k);
		cl_free(k, PROTO_CLOSED_BY_PEER);
	}
}

static uint8_t refused_code(const struct mqtt_connect *c)
{
	struct client *k = cl_open();
	struct mqtt_packet pk;
	uint8_t code;

	send_connect(k, c);
	k->level = 4;
	expect_type(k, MQTT_CONNACK, &pk);
	code = pk.u.connack.code;
	assert_false(pk.u.connack.session_present);
	expect_nothing(k);
	assert_true(k->c->closing);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	return code;
}

/* mqtt_max_sessions bounds the table: connected and absent persistent
 * sessions both count; a client id that already has a session may still
 * resume it, and a new one gets 0x03. */
static void test_session_count_bound(void **st)
{
	cfg.mqtt_max_sessions = 2;
	struct client *a = cl_connected("bound-a", false);
	struct client *b = cl_connected("bound-b", true);
	assert_int_equal(refused_code(&(struct mqtt_connect){.level = 4, .clean = true,
		.keepalive = 60, .client_id = STR("bound-c")}), MQTT_CONNACK_UNAVAILABLE);
	cl_free(a, PROTO_CLOSED_BY_PEER);          /* "bound-a" stays, absent */
	assert_int_equal(refused_code(&(struct mqtt_connect){.level = 4, .clean = true,
		.keepalive = 60, .client_id = STR("bound-c")}), MQTT_CONNACK_UNAVAILABLE);
	struct client *a2 = cl_open();
	assert_true(cl_connect_full(a2, &(struct mqtt_connect){.level = 4, .clean = false,
		.keepalive = 60, .client_id = STR("bound-a")}));
	cl_free(b, PROTO_CLOSED_BY_PEER);          /* clean: its session goes */
	struct client *c = cl_connected("bound-c", true);
	cl_free(c, PROTO_CLOSED_BY_PEER);
	cl_free(a2, PROTO_CLOSED_BY_PEER);
}

static void test_connect_refusals(void **st)
{
	const uint8_t v5[] = {0x10, 0x10, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 0,
			      0, 3, 'a', 'b', 'c'};
	const uint8_t v3name4[] = {0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 3, 2, 0, 60, 0, 1, 'a'};
	const uint8_t badname[] = {0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 1, 'a'};
	struct client *k;
	struct mqtt_packet pk;

	/* Protocol levels we do not speak: CONNACK 0x01 (5.0 included). */
	k = cl_open();
	cl_send(k, v5, sizeof(v5));
	assert_int_equal(k->c->out_len, 4);
	assert_memory_equal(k->c->out, ((const uint8_t[]){0x20, 2, 0, 1}), 4);
	assert_true(k->c->closing);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	k = cl_open();
	cl_send(k, v3name4, sizeof(v3name4));
	expect_type(k, MQTT_CONNACK, &pk);
	assert_int_equal(pk.u.connack.code, 1);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	/* Not MQTT at all: closed without an answer. */
	k = cl_open();
	assert_int_equal(cl_send(k, badname, sizeof(badname)), -1);
	assert_int_equal(k->c->out_len, 0);
	assert_true(k->c->closing);
	cl_free(k, PROTO_CLOSED_BY_SESSION);

	/* Client ids. */
	assert_int_equal(refused_code(&(struct mqtt_connect){.level = 4, .clean = false}), 2);
	assert_int_equal(refused_code(&(struct mqtt_connect){.level = 3, .clean = true}), 2);
	assert_int_equal(refused_code(&(struct mqtt_connect){
		.level = 3, .clean = true, .client_id = STR("123456789012345678901234")}), 2);
	/* Keepalive above the configured cap (and "none" with a cap). */
	cfg.mqtt_max_keepalive = 60;
	assert_int_equal(refused_code(&(struct mqtt_connect){
		.level = 4, .clean = true, .keepalive = 61, .client_id = STR("k")}), 2);
	assert_int_equal(refused_code(&(struct mqtt_connect){
		.level = 4, .clean = true, .keepalive = 0, .client_id = STR("k")}), 2);
	cfg.mqtt_max_keepalive = 0;
	/* auth_check says no. */
	char err[128];
	cfg.allow_anonymous = false;
	assert_int_equal(auth_configure(&cfg, err, sizeof(err)), 0);
	assert_int_equal(refused_code(&(struct mqtt_connect){
		.level = 4, .clean = true, .client_id = STR("anon")}), 5);
	assert_int_equal(stats().sessions, 0);
}

/* A failed login's CONNACK waits on the session timer for auth's delay;
 * what the client sends meanwhile is ignored. */
static void test_refusal_held_on_timer(void **st)
{
	char err[128];
	uint8_t ping[2] = {0xc0, 0x00};
	struct mqtt_packet pk;

	cfg.allow_anonymous = false;
	cfg.login_fail_delay_ms = 300;
	cfg.login_fail_delay_max_ms = 1000;
	assert_int_equal(auth_configure(&cfg, err, sizeof(err)), 0);
	struct client *k = cl_open();
	send_connect(k, &(struct mqtt_connect){.level = 4, .clean = true, .client_id = STR("h")});
	expect_nothing(k);
	assert_false(k->c->closing);
	assert_int_equal(k->c->timer_ms, 300);
	cl_send(k, ping, sizeof(ping));
	expect_nothing(k);
	now_ms += 300;
	mqtt_protocol.tick(k->s);
	expect_type(k, MQTT_CONNACK, &pk);
	assert_int_equal(pk.u.connack.code, 5);
	expect_nothing(k);
	assert_true(k->c->closing);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	/* The same address again: twice as long. */
	k = cl_open();
	send_connect(k, &(struct mqtt_connect){.level = 4, .clean = true, .client_id = STR("h")});
	assert_int_equal(k->c->timer_ms, 600);
	cl_free(k, PROTO_CLOSED_BY_PEER);
	assert_int_equal(stats().sessions, 0);
}

static void test_connect_generated_id_and_31(void **st)
{
	struct client *k = cl_open(), *k2 = cl_open();

	cl_connect_full(k, &(struct mqtt_connect){.level = 4, .clean = true});
	assert_non_null(k->c->client_id);
	assert_true(strlen(k->c->client_id) > 4);
	cl_connect_full(k2, &(struct mqtt_connect){.level = 4, .clean = true});
	assert_string_not_equal(k->c->client_id, k2->c->client_id);
	cl_free(k2, PROTO_CLOSED_BY_PEER);

	/* 3.1: MQIsdp, 23-byte id, no session present bit even on resume. */
	k2 = cl_open();
	cl_connect_full(k2, &(struct mqtt_connect){
		.level = 3, .clean = false, .client_id = STR("12345678901234567890123")});
	assert_int_equal(cl_subscribe(k2, "t", 1), 1);
	cl_free(k2, PROTO_CLOSED_BY_PEER);
	k2 = cl_open();
	send_connect(k2, &(struct mqtt_connect){
		.level = 3, .clean = false, .client_id = STR("12345678901234567890123")});
	assert_memory_equal(k2->c->out, ((const uint8_t[]){0x20, 2, 0, 0}), 4);
	/* 3.1 has no SUBACK failure code: a bad filter closes. */
	uint8_t buf[16];
	struct mqtt_str f = STR("a/#/b");
	uint8_t q = 0;
	size_t n = mqtt_encode_subscribe(buf, sizeof(buf), 3, 1, &f, &q, 1);
	k2->rd = k2->c->out_len;
	assert_int_equal(cl_send(k2, buf, n), -1);
	assert_true(k2->c->closing);
	cl_free(k2, PROTO_CLOSED_BY_SESSION);
	cl_free(k, PROTO_CLOSED_BY_PEER);
}

static void test_protocol_violations(void **st)
{
	struct client *k;
	const uint8_t ping[] = {0xC0, 0};
	const uint8_t connack[] = {0x20, 2, 0, 0};
	const uint8_t wild[] = {0x30, 5, 0, 3, 'a', '/', '#'};

	/* The first packet must be CONNECT. */
	k = cl_open();
	assert_int_equal(cl_send(k, ping, 2), -1);
	assert_true(k->c->closing);
	assert_int_equal(k->c->close_code, 1002);
	assert_int_equal(k->c->out_len, 0);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	/* A second CONNECT. */
	k = cl_connected("v", true);
	send_connect(k, &(struct mqtt_connect){.level = 4, .clean = true, .client_id = STR("v")});
	assert_true(k->c->closing);
	expect_nothing(k);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	/* A packet only a server sends; a wildcard in a PUBLISH topic. */
	k = cl_connected("v", true);
	assert_int_equal(cl_send(k, connack, 4), -1);
	assert_true(k->c->closing);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	k = cl_connected("v", true);
	assert_int_equal(cl_send(k, wild, sizeof(wild)), -1);
	assert_int_equal(k->c->close_code, 1002);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	/* Oversize: refused from its fixed header, before the body. */
	cfg.mqtt_max_packet = 100;
	k = cl_connected("v", true);
	assert_int_equal(cl_send(k, (const uint8_t[]){0x30, 0xC8}, 2), 0);
	assert_int_equal(cl_send(k, (const uint8_t[]){0x01}, 1), -1);
	assert_true(k->c->closing);
	assert_int_equal(k->c->close_code, 1009);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	/* Nothing is read after a close. */
	k = cl_connected("v", true);
	uint8_t two[4] = {0xE0, 0, 0xC0, 0};
	assert_int_equal(cl_send(k, two, 4), -1);
	expect_nothing(k);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
}

/* ---- QoS ---- */

static void test_qos0_roundtrip_and_min_qos(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);
	uint16_t id;

	assert_int_equal(cl_subscribe(a, "s/+", 0), 0);
	assert_int_equal(cl_subscribe(a, "t/+", 1), 1);
	assert_int_equal(cl_subscribe(a, "u/+", 2), 2);
	cl_publish(b, "s/1", "zero", 0, 0, false, false);
	expect_publish(a, "s/1", "zero", 0, false);
	expect_nothing(b);
	/* Outbound QoS is min(publish, subscription). */
	cl_publish(b, "s/2", "two-on-zero", 2, 1, false, false);
	expect_ack(b, MQTT_PUBREC, 1);
	expect_publish(a, "s/2", "two-on-zero", 0, false);
	cl_publish(b, "t/1", "two-on-one", 2, 2, false, false);
	expect_ack(b, MQTT_PUBREC, 2);
	id = expect_publish(a, "t/1", "two-on-one", 1, false);
	assert_int_not_equal(id, 0);
	cl_publish(b, "u/1", "one-on-two", 1, 3, false, false);
	expect_ack(b, MQTT_PUBACK, 3);
	expect_publish(a, "u/1", "one-on-two", 1, false);
	expect_nothing(a);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

/* Fan-out: QoS 0 subscribers share one encoding; a QoS 1 subscriber in
 * between gets its own, and the next message is not mistaken for the last. */
static void test_fan_out(void **st)
{
	struct client *k[4], *b = cl_connected("b", true);
	char id[8];

	for (int i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "f%d", i);
		k[i] = cl_connected(id, true);
		assert_int_equal(cl_subscribe(k[i], "fan", i == 2 ? 1 : 0), i == 2 ? 1 : 0);
	}
	cl_publish(b, "fan", "first", 1, 1, false, false);
	cl_publish(b, "fan", "second", 1, 2, false, false);
	for (int i = 0; i < 4; i++) {
		expect_publish(k[i], "fan", "first", i == 2 ? 1 : 0, false);
		expect_publish(k[i], "fan", "second", i == 2 ? 1 : 0, false);
		expect_nothing(k[i]);
		cl_free(k[i], PROTO_CLOSED_BY_PEER);
	}
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_overlapping_subscriptions_deliver_once(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);

	assert_int_equal(cl_subscribe(a, "o/#", 0), 0);
	assert_int_equal(cl_subscribe(a, "o/x", 2), 2);
	assert_int_equal(cl_subscribe(a, "+/x", 1), 1);
	cl_publish(b, "o/x", "m", 2, 9, false, false);
	expect_publish(a, "o/x", "m", 2, false);
	expect_nothing(a);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_qos1_both_directions(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);
	uint16_t id1, id2;

	assert_int_equal(cl_subscribe(a, "q", 1), 1);
	cl_publish(b, "q", "one", 1, 7, false, false);
	expect_ack(b, MQTT_PUBACK, 7);
	id1 = expect_publish(a, "q", "one", 1, false);
	cl_publish(b, "q", "two", 1, 8, false, false);
	id2 = expect_publish(a, "q", "two", 1, false);
	assert_int_not_equal(id1, id2);
	assert_int_equal(stats().inflight, 2);
	cl_ack(a, MQTT_PUBREC, id1);        /* a QoS 2 answer to QoS 1: no PUBREL */
	expect_nothing(a);
	cl_ack(a, MQTT_PUBACK, id2);
	cl_ack(a, MQTT_PUBACK, id1);
	cl_ack(a, MQTT_PUBACK, id1);        /* a stray duplicate is ignored */
	assert_int_equal(stats().inflight, 0);
	/* QoS 1 is at least once: a DUP resend is delivered again. */
	cl_publish(b, "q", "again", 1, 8, false, true);
	expect_ack(b, MQTT_PUBACK, 8);
	expect_publish(a, "q", "again", 1, false);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_qos2_inbound_exactly_once(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);

	assert_int_equal(cl_subscribe(a, "e", 0), 0);
	cl_publish(b, "e", "once", 2, 5, false, false);
	expect_ack(b, MQTT_PUBREC, 5);
	expect_publish(a, "e", "once", 0, false);
	/* The client did not see PUBREC and sends again: acknowledged, not
	 * delivered twice. */
	cl_publish(b, "e", "once", 2, 5, false, true);
	expect_ack(b, MQTT_PUBREC, 5);
	expect_nothing(a);
	cl_ack(b, MQTT_PUBREL, 5);
	expect_ack(b, MQTT_PUBCOMP, 5);
	/* A PUBREL repeated gets its PUBCOMP too. */
	cl_ack(b, MQTT_PUBREL, 5);
	expect_ack(b, MQTT_PUBCOMP, 5);
	/* After PUBREL the id is free: the same id is a new message. */
	cl_publish(b, "e", "next", 2, 5, false, false);
	expect_ack(b, MQTT_PUBREC, 5);
	expect_publish(a, "e", "next", 0, false);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_qos2_outbound(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);
	uint16_t id;

	assert_int_equal(cl_subscribe(a, "x", 2), 2);
	cl_publish(b, "x", "two", 2, 1, false, false);
	id = expect_publish(a, "x", "two", 2, false);
	cl_ack(a, MQTT_PUBREC, id);
	expect_ack(a, MQTT_PUBREL, id);
	cl_ack(a, MQTT_PUBREC, id);          /* a repeated PUBREC: PUBREL again */
	expect_ack(a, MQTT_PUBREL, id);
	assert_int_equal(stats().inflight, 1);
	cl_ack(a, MQTT_PUBACK, id);          /* wrong ack for this state: ignored */
	assert_int_equal(stats().inflight, 1);
	cl_ack(a, MQTT_PUBCOMP, id);
	assert_int_equal(stats().inflight, 0);
	expect_nothing(a);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void publish_n(struct client *b, const char *topic, int from, int to, uint8_t qos)
{
	char payload[16];

	for (int i = from; i < to; i++) {
		snprintf(payload, sizeof(payload), "m%d", i);
		cl_publish(b, topic, payload, qos, (uint16_t)(i + 1), false, false);
	}
}

static void test_inflight_window_and_queue_bound(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);
	uint64_t dropped0 = stats().dropped;
	uint16_t ids[3];
	char want[16];
	int next = 0;

	cfg.mqtt_max_inflight = 3;
	cfg.mqtt_max_queued = 5;
	assert_int_equal(cl_subscribe(a, "w", 1), 1);
	publish_n(b, "w", 0, 10, 1);
	for (int i = 0; i < 3; i++) {
		snprintf(want, sizeof(want), "m%d", next++);
		ids[i] = expect_publish(a, "w", want, 1, false);
	}
	expect_nothing(a);
	assert_int_equal(stats().inflight, 3);
	assert_int_equal(stats().queued, 5);
	assert_int_equal(stats().dropped - dropped0, 2);
	/* Each acknowledgement lets exactly one queued message in, in order. */
	for (int round = 0; round < 5; round++) {
		cl_ack(a, MQTT_PUBACK, ids[round % 3]);
		snprintf(want, sizeof(want), "m%d", next++);
		ids[round % 3] = expect_publish(a, "w", want, 1, false);
		expect_nothing(a);
	}
	for (int i = 0; i < 3; i++)
		cl_ack(a, MQTT_PUBACK, ids[i]);
	expect_nothing(a);
	assert_int_equal(stats().queued, 0);
	assert_int_equal(stats().inflight, 0);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_queue_full_drops_qos0_first(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);
	uint64_t dropped0 = stats().dropped;
	uint16_t id;

	cfg.mqtt_max_inflight = 1;
	cfg.mqtt_max_queued = 3;
	assert_int_equal(cl_subscribe(a, "one", 1), 1);
	assert_int_equal(cl_subscribe(a, "zero", 0), 0);
	cl_publish(b, "one", "m1", 1, 1, false, false);   /* in flight */
	cl_publish(b, "one", "m2", 1, 2, false, false);   /* queued */
	cl_publish(b, "zero", "z1", 0, 0, false, false);  /* queued behind m2 */
	cl_publish(b, "one", "m3", 1, 3, false, false);   /* queue full */
	cl_publish(b, "one", "m4", 1, 4, false, false);   /* z1 makes room */
	cl_publish(b, "one", "m5", 1, 5, false, false);   /* no QoS 0 left: m5 goes */
	assert_int_equal(stats().dropped - dropped0, 2);
	id = expect_publish(a, "one", "m1", 1, false);
	expect_nothing(a);
	cl_ack(a, MQTT_PUBACK, id);
	id = expect_publish(a, "one", "m2", 1, false);
	cl_ack(a, MQTT_PUBACK, id);
	id = expect_publish(a, "one", "m3", 1, false);
	cl_ack(a, MQTT_PUBACK, id);
	id = expect_publish(a, "one", "m4", 1, false);
	cl_ack(a, MQTT_PUBACK, id);
	expect_nothing(a);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_slow_reader_drops_qos0(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);
	uint64_t dropped0 = stats().dropped;

	assert_int_equal(cl_subscribe(a, "s", 1), 1);
	a->c->congested = true;
	cl_publish(b, "s", "lost", 0, 0, false, false);
	expect_nothing(a);
	assert_int_equal(stats().dropped - dropped0, 1);
	cl_publish(b, "s", "kept", 1, 1, false, false);
	expect_publish(a, "s", "kept", 1, false);
	a->c->congested = false;
	cl_publish(b, "s", "fine", 0, 0, false, false);
	expect_publish(a, "s", "fine", 0, false);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

/* ---- subscriptions ---- */

static void test_subscribe_rules(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);
	uint8_t buf[128];
	const struct mqtt_str f[] = {STR("ok/+"), STR("a/#/b"), STR("a+"), STR(""), STR("#")};
	const uint8_t q[] = {1, 0, 0, 0, 2};
	const uint8_t want[] = {1, 0x80, 0x80, 0x80, 2};
	struct mqtt_packet pk;
	size_t n = mqtt_encode_subscribe(buf, sizeof(buf), 4, 4, f, q, 5);

	cl_send(a, buf, n);
	expect_type(a, MQTT_SUBACK, &pk);
	assert_int_equal(pk.u.suback_codes.len, 5);
	assert_memory_equal(pk.u.suback_codes.p, want, 5);
	/* The same filter again replaces the subscription (new QoS). */
	assert_int_equal(cl_subscribe(a, "ok/+", 0), 0);
	assert_int_equal(cl_subscribe(a, "#", 0), 0);
	cl_publish(b, "ok/1", "x", 1, 1, false, false);
	expect_publish(a, "ok/1", "x", 0, false);
	expect_nothing(a);
	/* UNSUBSCRIBE: UNSUBACK, also for filters never subscribed. */
	n = mqtt_encode_unsubscribe(buf, sizeof(buf), 4, 77, f, 2);
	cl_send(a, buf, n);
	expect_ack(a, MQTT_UNSUBACK, 77);
	cl_publish(b, "ok/1", "y", 0, 0, false, false);
	expect_publish(a, "ok/1", "y", 0, false);        /* still matched by "#" */
	n = mqtt_encode_unsubscribe(buf, sizeof(buf), 4, 78, &f[4], 1);
	cl_send(a, buf, n);
	expect_ack(a, MQTT_UNSUBACK, 78);
	cl_publish(b, "ok/1", "z", 0, 0, false, false);
	expect_nothing(a);
	/* The per-client bound on subscriptions. */
	cfg.mqtt_max_subscriptions = 2;
	assert_int_equal(cl_subscribe(a, "l/1", 0), 0);
	assert_int_equal(cl_subscribe(a, "l/2", 0), 0);
	assert_int_equal(cl_subscribe(a, "l/3", 0), 0x80);
	assert_int_equal(cl_subscribe(a, "l/2", 1), 1);   /* a replacement is fine */
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_dollar_topics(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);

	assert_int_equal(cl_subscribe(a, "#", 0), 0);
	assert_int_equal(cl_subscribe(a, "+/x", 0), 0);
	cl_publish(b, "$foo/x", "hidden", 0, 0, false, false);
	expect_nothing(a);
	assert_int_equal(cl_subscribe(a, "$foo/#", 0), 0);
	cl_publish(b, "$foo/x", "seen", 0, 0, false, false);
	expect_publish(a, "$foo/x", "seen", 0, false);
	/* Clients do not write to $SYS. */
	assert_int_equal(cl_subscribe(a, "$SYS/#", 0), 0);
	cl_publish(b, "$SYS/broker/uptime", "forged", 1, 1, false, false);
	expect_ack(b, MQTT_PUBACK, 1);
	expect_nothing(a);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_shared_subscription(void **st)
{
	struct client *a = cl_connected("a", true), *c = cl_connected("c", true);
	struct client *b = cl_connected("b", true);
	struct mqtt_packet pk;
	int got_a = 0, got_c = 0;

	assert_int_equal(cl_subscribe(a, "$share/g/job/#", 0), 0);
	assert_int_equal(cl_subscribe(c, "$share/g/job/#", 0), 0);
	assert_int_equal(cl_subscribe(c, "$share/bad", 0), 0x80);
	publish_n(b, "job/1", 0, 4, 0);
	while (cl_next(a, &pk))
		got_a++;
	while (cl_next(c, &pk))
		got_c++;
	assert_int_equal(got_a, 2);
	assert_int_equal(got_c, 2);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
	cl_free(c, PROTO_CLOSED_BY_PEER);
}

/* A message that arrives as a STOMP SEND to /topic/chat.room1 would: topic
 * in router form, payload bytes as they came. */
static void test_message_from_another_protocol(void **st)
{
	struct client *a = cl_connected("a", true);
	const char body[] = "{\"t\":\"hi\"}\0\xFF";
	struct message *m = message_new("chat/room1", 10, body, sizeof(body));
	struct mqtt_packet pk;

	assert_int_equal(cl_subscribe(a, "chat/+", 1), 1);
	m->qos = 1;
	assert_int_equal(router_publish(router, m), 1);
	message_unref(m);
	expect_type(a, MQTT_PUBLISH, &pk);
	assert_int_equal(pk.u.publish.qos, 1);
	assert_int_equal(pk.u.publish.payload.len, sizeof(body));
	assert_memory_equal(pk.u.publish.payload.p, body, sizeof(body));
	cl_free(a, PROTO_CLOSED_BY_PEER);
}

/* ---- retained ---- */

static void test_retained(void **st)
{
	struct client *a, *b = cl_connected("b", true);

	cl_publish(b, "r/1", "hello", 1, 1, true, false);
	expect_ack(b, MQTT_PUBACK, 1);
	cl_publish(b, "r/2", "zero", 0, 0, true, false);
	assert_int_equal(router_retained_count(router), 2);
	/* A late subscriber gets them after SUBACK, RETAIN set, QoS min. */
	a = cl_connected("a", true);
	assert_int_equal(cl_subscribe(a, "r/1", 2), 2);
	expect_publish(a, "r/1", "hello", 1, true);
	expect_nothing(a);
	assert_int_equal(cl_subscribe(a, "r/+", 0), 0);
	struct mqtt_packet pk;
	int seen = 0;
	while (cl_next(a, &pk)) {
		assert_int_equal(pk.type, MQTT_PUBLISH);
		assert_true(pk.u.publish.retain);
		assert_int_equal(pk.u.publish.qos, 0);
		seen++;
	}
	assert_int_equal(seen, 2);
	/* A live retained publish reaches current subscribers with RETAIN 0. */
	cl_publish(b, "r/1", "new", 0, 0, true, false);
	expect_publish(a, "r/1", "new", 0, false);
	/* An empty retained payload clears, and is delivered as it is. */
	cl_publish(b, "r/1", "", 0, 0, true, false);
	expect_publish(a, "r/1", "", 0, false);
	assert_int_equal(router_retained_count(router), 1);
	struct client *c = cl_connected("c", true);
	assert_int_equal(cl_subscribe(c, "r/1", 1), 1);
	expect_nothing(c);
	/* The store's bound: new topics are refused, held ones replaced. */
	cfg.mqtt_max_retained = 1;
	cl_publish(b, "r/3", "no room", 0, 0, true, false);
	assert_int_equal(router_retained_count(router), 1);
	cl_publish(b, "r/2", "replaced", 0, 0, true, false);
	assert_int_equal(router_retained_count(router), 1);
	assert_int_equal(cl_subscribe(c, "r/2", 0), 0);
	expect_publish(c, "r/2", "replaced", 0, true);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
	cl_free(c, PROTO_CLOSED_BY_PEER);
}

/* ---- will ---- */

static struct client *connect_with_will(const char *id, bool retain)
{
	struct client *k = cl_open();

	cl_connect_full(k, &(struct mqtt_connect){
		.level = 4, .clean = true, .keepalive = 10, .client_id = STR(id), .will = true,
		.will_qos = 1, .will_retain = retain, .will_topic = STR("will/x"),
		.will_payload = STR("gone")});
	return k;
}

static void test_will(void **st)
{
	struct client *w = cl_connected("watcher", true), *k;
	const uint8_t junk[] = {0x00, 0x00};

	assert_int_equal(cl_subscribe(w, "will/#", 1), 1);
	/* Socket closed by the peer without DISCONNECT. */
	k = connect_with_will("d1", false);
	cl_free(k, PROTO_CLOSED_BY_PEER);
	expect_publish(w, "will/x", "gone", 1, false);
	/* Protocol error. */
	k = connect_with_will("d2", true);
	cl_send(k, junk, sizeof(junk));
	assert_true(k->c->closing);
	expect_nothing(w);                   /* not before the connection ends */
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	expect_publish(w, "will/x", "gone", 1, false);
	assert_int_equal(router_retained_count(router), 1);
	/* DISCONNECT: no will. */
	k = connect_with_will("d3", false);
	cl_simple(k, MQTT_DISCONNECT);
	assert_true(k->c->closing);
	cl_free(k, PROTO_CLOSED_BY_PEER);
	expect_nothing(w);
	/* A refused CONNECT has no will either. */
	char err[64];
	cfg.allow_anonymous = false;
	assert_int_equal(auth_configure(&cfg, err, sizeof(err)), 0);
	k = cl_open();
	send_connect(k, &(struct mqtt_connect){
		.level = 4, .clean = true, .client_id = STR("d4"), .will = true,
		.will_topic = STR("will/x"), .will_payload = STR("refused")});
	assert_true(k->c->closing);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	expect_nothing(w);
	cl_free(w, PROTO_CLOSED_BY_PEER);
}

static void test_keepalive(void **st)
{
	struct client *w = cl_connected("watcher", true);
	struct client *k = connect_with_will("ka", false);

	assert_int_equal(cl_subscribe(w, "will/#", 0), 0);
	assert_int_equal(k->c->timer_ms, 15000);
	now_ms += 14000;
	cl_simple(k, MQTT_PINGREQ);
	expect_ack(k, MQTT_PINGRESP, 0);
	now_ms += 1000;
	mqtt_protocol.tick(k->s);            /* the old deadline: not yet */
	assert_false(k->c->closing);
	assert_int_equal(k->c->timer_ms, 14000);
	now_ms += 13000;
	mqtt_protocol.tick(k->s);
	assert_false(k->c->closing);
	assert_int_equal(k->c->timer_ms, 1000);
	now_ms += 1000;                      /* 1.5 x 10 s of silence */
	mqtt_protocol.tick(k->s);
	assert_true(k->c->closing);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
	expect_publish(w, "will/x", "gone", 0, false);

	/* Keepalive 0: no timer at all. */
	k = cl_open();
	cl_connect_full(k, &(struct mqtt_connect){.level = 4, .clean = true,
						   .client_id = STR("nok")});
	assert_int_equal(k->c->timer_ms, 0);
	cl_free(k, PROTO_CLOSED_BY_PEER);
	cl_free(w, PROTO_CLOSED_BY_PEER);
}

static void test_connect_deadline(void **st)
{
	struct client *k = cl_open();

	assert_int_equal(k->c->timer_ms, cfg.handshake_timeout_ms);
	now_ms += cfg.handshake_timeout_ms;
	mqtt_protocol.tick(k->s);
	assert_true(k->c->closing);
	assert_int_equal(k->c->out_len, 0);
	cl_free(k, PROTO_CLOSED_BY_SESSION);
}

/* ---- sessions ---- */

static void test_persistent_session(void **st)
{
	struct client *a = cl_connected("p", false), *b = cl_connected("b", true);
	uint64_t dropped0;
	uint16_t id;

	assert_int_equal(cl_subscribe(a, "p/#", 2), 2);
	/* A QoS 1 message sent and not acknowledged, a QoS 2 one whose
	 * PUBCOMP is missing. */
	cl_publish(b, "p/1", "unacked", 1, 1, false, false);
	expect_publish(a, "p/1", "unacked", 1, false);
	cl_publish(b, "p/2", "half", 2, 2, false, false);
	id = expect_publish(a, "p/2", "half", 2, false);
	cl_ack(a, MQTT_PUBREC, id);
	expect_ack(a, MQTT_PUBREL, id);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	assert_int_equal(stats().away, 1);

	/* While away: QoS 1/2 kept, QoS 0 not. */
	dropped0 = stats().dropped;
	cl_publish(b, "p/3", "while away 1", 1, 3, false, false);
	cl_publish(b, "p/4", "while away 0", 0, 0, false, false);
	cl_publish(b, "p/5", "while away 2", 2, 4, false, false);
	assert_int_equal(stats().dropped - dropped0, 1);
	assert_int_equal(stats().queued, 2);

	a = cl_open();
	assert_true(cl_connect_full(a, &(struct mqtt_connect){
		.level = 4, .clean = false, .keepalive = 60, .client_id = STR("p")}));
	struct mqtt_packet pk;
	expect_type(a, MQTT_PUBLISH, &pk);  /* resent with DUP, same QoS */
	assert_true(pk.u.publish.dup);
	assert_int_equal(pk.u.publish.qos, 1);
	assert_int_equal(pk.u.publish.payload.len, 7);
	cl_ack(a, MQTT_PUBACK, pk.id);
	expect_ack(a, MQTT_PUBREL, id);
	cl_ack(a, MQTT_PUBCOMP, id);
	expect_type(a, MQTT_PUBLISH, &pk);
	assert_false(pk.u.publish.dup);
	assert_int_equal(pk.u.publish.payload.len, strlen("while away 1"));
	cl_ack(a, MQTT_PUBACK, pk.id);
	id = expect_publish(a, "p/5", "while away 2", 2, false);
	cl_ack(a, MQTT_PUBREC, id);
	expect_ack(a, MQTT_PUBREL, id);
	cl_ack(a, MQTT_PUBCOMP, id);
	expect_nothing(a);
	/* The subscription came back with the session. */
	cl_publish(b, "p/6", "live", 0, 0, false, false);
	expect_publish(a, "p/6", "live", 0, false);
	cl_free(a, PROTO_CLOSED_BY_PEER);

	/* A clean start throws the old session away. */
	a = cl_open();
	assert_false(cl_connect_full(a, &(struct mqtt_connect){
		.level = 4, .clean = true, .client_id = STR("p")}));
	cl_publish(b, "p/7", "gone", 1, 5, false, false);
	expect_nothing(a);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	/* ... and the clean session ended with its connection. */
	a = cl_open();
	assert_false(cl_connect_full(a, &(struct mqtt_connect){
		.level = 4, .clean = false, .client_id = STR("p")}));
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_inbound_qos2_survives_reconnect(void **st)
{
	struct client *w = cl_connected("w", true), *a = cl_connected("p2", false);

	assert_int_equal(cl_subscribe(w, "d", 0), 0);
	cl_publish(a, "d", "x", 2, 11, false, false);
	expect_ack(a, MQTT_PUBREC, 11);
	expect_publish(w, "d", "x", 0, false);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	a = cl_open();
	assert_true(cl_connect_full(a, &(struct mqtt_connect){
		.level = 4, .clean = false, .client_id = STR("p2")}));
	cl_publish(a, "d", "x", 2, 11, false, true);
	expect_ack(a, MQTT_PUBREC, 11);
	expect_nothing(w);
	cl_ack(a, MQTT_PUBREL, 11);
	expect_ack(a, MQTT_PUBCOMP, 11);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(w, PROTO_CLOSED_BY_PEER);
}

static void test_session_expiry(void **st)
{
	struct client *a = cl_connected("exp", false), *b;

	cfg.mqtt_session_expiry = 10;
	assert_int_equal(cl_subscribe(a, "e", 1), 1);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	now_ms += 9000;
	b = cl_connected("other", true);
	assert_int_equal(stats().sessions, 2);
	now_ms += 2000;
	cl_free(b, PROTO_CLOSED_BY_PEER);
	a = cl_open();
	assert_false(cl_connect_full(a, &(struct mqtt_connect){
		.level = 4, .clean = false, .client_id = STR("exp")}));
	cl_free(a, PROTO_CLOSED_BY_PEER);
}

static void test_takeover(void **st)
{
	struct client *w = cl_connected("w", true), *old, *new, *b = cl_connected("b", true);

	assert_int_equal(cl_subscribe(w, "will/#", 1), 1);
	old = connect_with_will("t", false);
	new = cl_open();
	cl_connect_full(new, &(struct mqtt_connect){.level = 4, .clean = true,
						     .client_id = STR("t")});
	assert_true(old->c->closing);
	assert_string_equal(old->c->close_reason, "session taken over");
	expect_publish(w, "will/x", "gone", 1, false);
	cl_free(old, PROTO_CLOSED_BY_SESSION);
	expect_nothing(w);                   /* the will went once */
	assert_int_equal(cl_subscribe(new, "n", 0), 0);
	cl_publish(b, "n", "to new", 0, 0, false, false);
	expect_publish(new, "n", "to new", 0, false);
	cl_free(new, PROTO_CLOSED_BY_PEER);

	/* A persistent session moves to the new connection intact, even
	 * before the old connection's close() has run. */
	old = cl_connected("tp", false);
	assert_int_equal(cl_subscribe(old, "tp", 1), 1);
	new = cl_open();
	assert_true(cl_connect_full(new, &(struct mqtt_connect){
		.level = 4, .clean = false, .client_id = STR("tp")}));
	assert_true(old->c->closing);
	cl_publish(b, "tp", "moved", 1, 1, false, false);
	expect_publish(new, "tp", "moved", 1, false);
	cl_free(old, PROTO_CLOSED_ERROR);
	cl_publish(b, "tp", "still", 0, 0, false, false);
	expect_publish(new, "tp", "still", 0, false);
	assert_int_equal(stats().away, 0);
	cl_free(new, PROTO_CLOSED_BY_PEER);

	/* Taking over a clean session does not resume it. */
	old = cl_connected("tc", true);
	assert_int_equal(cl_subscribe(old, "tc", 1), 1);
	new = cl_open();
	assert_false(cl_connect_full(new, &(struct mqtt_connect){
		.level = 4, .clean = false, .client_id = STR("tc")}));
	cl_publish(b, "tc", "nobody", 1, 2, false, false);
	expect_nothing(new);
	cl_free(old, PROTO_CLOSED_BY_SESSION);
	cl_free(new, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
	cl_free(w, PROTO_CLOSED_BY_PEER);
}

static void test_large_publish_in_pieces(void **st)
{
	struct client *a = cl_connected("a", true), *b = cl_connected("b", true);
	size_t plen = 256 * 1024, n, i;
	uint8_t *payload = malloc(plen), *buf;
	struct mqtt_packet pk;

	assert_non_null(payload);
	for (i = 0; i < plen; i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(cl_subscribe(a, "big", 1), 1);
	n = mqtt_publish_size(4, 3, plen, 1);
	buf = malloc(n);
	assert_non_null(buf);
	assert_int_equal(mqtt_encode_publish(buf, n, 4, &(struct mqtt_publish){
		.topic = STR("big"), .payload = {payload, plen}, .qos = 1, .id = 1}), n);
	for (i = 0; i < n; i += 1000)
		assert_int_equal(cl_send(b, buf + i, n - i < 1000 ? n - i : 1000), 0);
	expect_ack(b, MQTT_PUBACK, 1);
	expect_type(a, MQTT_PUBLISH, &pk);
	assert_int_equal(pk.u.publish.payload.len, plen);
	assert_memory_equal(pk.u.publish.payload.p, payload, plen);
	free(buf);
	free(payload);
	cl_free(a, PROTO_CLOSED_BY_PEER);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_sniff(void **st)
{
	const uint8_t v4[] = {0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4};
	const uint8_t v3[] = {0x10, 0x0F, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3};
	const uint8_t big[] = {0x10, 0x80, 0x01, 0, 4, 'M', 'Q', 'T', 'T'};

	for (size_t k = 0; k < 8; k++)
		assert_int_equal(mqtt_protocol.sniff(v4, k), 0);
	assert_int_equal(mqtt_protocol.sniff(v4, 8), 1);
	for (size_t k = 0; k < 10; k++)
		assert_int_equal(mqtt_protocol.sniff(v3, k), 0);
	assert_int_equal(mqtt_protocol.sniff(v3, 10), 1);
	assert_int_equal(mqtt_protocol.sniff(big, sizeof(big)), 1);
	assert_int_equal(mqtt_protocol.sniff((const uint8_t *)"CONNECT\n", 8), -1);
	assert_int_equal(mqtt_protocol.sniff((const uint8_t *)"GET / HTTP/1.1", 14), -1);
	assert_int_equal(mqtt_protocol.sniff((const uint8_t[]){0x16, 3, 1}, 3), -1);
	assert_int_equal(mqtt_protocol.sniff((const uint8_t[]){0x10, 0x05, 0, 4}, 4), -1);
	assert_int_equal(mqtt_protocol.sniff((const uint8_t[]){0x10, 0x0D, 0, 4, 'M', 'Q', 'X'}, 7), -1);
	assert_int_equal(mqtt_protocol.sniff((const uint8_t[]){0x10, 0x80, 0x80, 0x80, 0x80}, 5), -1);
	assert_string_equal(mqtt_protocol.name, "mqtt");
	assert_true(mqtt_protocol.ws_binary_only);
	assert_true(mqtt_protocol.ws_binary_out);
	assert_string_equal(mqtt_protocol.ws_names[0], "mqtt");
	assert_string_equal(mqtt_protocol.ws_names[1], "mqttv3.1");
}

/* A large QoS 0 message is encoded once and its bytes shared by every
 * subscriber's output; a small one is copied. Both arrive whole. */
static void test_large_fan_out_shares_bytes(void **st)
{
	struct client *k[3], *b = cl_connected("b", true);
	char *big = malloc(5000);

	assert_non_null(big);
	memset(big, 'z', 4999);
	big[4999] = '\0';
	for (int i = 0; i < 3; i++) {
		char id[8];

		snprintf(id, sizeof(id), "s%d", i);
		k[i] = cl_connected(id, true);
		assert_int_equal(cl_subscribe(k[i], "big", 0), 0);
	}
	cl_publish(b, "big", big, 0, 0, false, false);
	cl_publish(b, "big", "small", 0, 0, false, false);
	for (int i = 0; i < 3; i++) {
		expect_publish(k[i], "big", big, 0, false);
		expect_publish(k[i], "big", "small", 0, false);
		assert_int_equal(k[i]->c->shared_sends, 1);
		cl_free(k[i], PROTO_CLOSED_BY_PEER);
	}
	free(big);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

/* ---- durability: acknowledgements after the commit, and a restart ---- */

/* A persistent session subscribed to filter at qos, then gone away. */
static void absent_subscriber(const char *id, const char *filter, uint8_t qos)
{
	struct client *p = cl_connected(id, false);

	assert_int_equal(cl_subscribe(p, filter, qos), qos);
	cl_free(p, PROTO_CLOSED_BY_PEER);
}

static void pause_store(bool paused)
{
	store_paused = paused;
	store_test_pause(store, paused);
}

static void test_puback_waits_for_commit(void **st)
{
	struct client *b;

	absent_subscriber("keeper", "d/#", 1);
	b = cl_connected("pub", true);
	pause_store(true);
	cl_publish(b, "d/x", "kept", 1, 1, false, false);
	/* the message must be on disk before its PUBACK */
	expect_nothing(b);
	/* a message nobody keeps would be acknowledged at once, but acks keep
	 * publish order: it waits behind the first */
	cl_publish(b, "nobody/here", "free", 1, 2, false, false);
	expect_nothing(b);
	cl_publish(b, "d/y", "exactly", 2, 3, false, false);
	expect_nothing(b);
	pause_store(false);
	settle();
	expect_ack(b, MQTT_PUBACK, 1);
	expect_ack(b, MQTT_PUBACK, 2);
	expect_ack(b, MQTT_PUBREC, 3);
	/* nothing waits any more: the next one goes straight out */
	pause_store(true);
	cl_publish(b, "nobody/here", "free", 1, 4, false, false);
	expect_ack(b, MQTT_PUBACK, 4);
	pause_store(false);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_retained_publish_waits_for_commit(void **st)
{
	struct client *b = cl_connected("pub", true);

	pause_store(true);
	cl_publish(b, "r/t", "kept", 1, 5, true, false);
	expect_nothing(b);
	pause_store(false);
	settle();
	expect_ack(b, MQTT_PUBACK, 5);
	cl_free(b, PROTO_CLOSED_BY_PEER);
}

static void test_failed_commit_withholds_ack(void **st)
{
	struct client *b;

	absent_subscriber("keeper", "d/#", 1);
	b = cl_connected("pub", true);
	store_test_fail_next_commit(store, STORE_ERR_FULL);
	cl_publish(b, "d/x", "lost?", 1, 1, false, false);
	/* no PUBACK: the client still owns the message and sends it again */
	expect_nothing(b);
	assert_true(b->c->closing);
	cl_free(b, PROTO_CLOSED_BY_SESSION);
}

/* Everything a persistent session holds comes back after the broker's state
 * is thrown away and loaded from the store. */
static void test_restart_restores_sessions(void **st)
{
	struct client *p = cl_connected("keeper", false), *b;
	uint16_t id2;

	assert_int_equal(cl_subscribe(p, "s/#", 2), 2);
	assert_int_equal(cl_subscribe(p, "t/+", 1), 1);
	/* inbound QoS 2 between PUBREC and PUBREL */
	cl_publish(p, "elsewhere", "in-flight-in", 2, 40, false, false);
	expect_ack(p, MQTT_PUBREC, 40);
	b = cl_connected("pub", true);
	/* outbound QoS 2 sent, not yet PUBRECed */
	cl_publish(b, "s/1", "two", 2, 1, false, false);
	expect_ack(b, MQTT_PUBREC, 1);
	id2 = expect_publish(p, "s/1", "two", 2, false);
	cl_free(p, PROTO_CLOSED_BY_PEER);
	/* queued while away */
	cl_publish(b, "t/1", "one", 1, 2, false, false);
	expect_ack(b, MQTT_PUBACK, 2);
	cl_publish(b, "r", "retained", 1, 3, true, false);
	expect_ack(b, MQTT_PUBACK, 3);
	cl_free(b, PROTO_CLOSED_BY_PEER);

	/* the restart: memory gone, the store kept */
	mqtt_protocol.teardown(&penv);
	penv.state = NULL;
	router_free(router);
	router = router_new(NULL);
	assert_non_null(router);
	penv.router = router;
	mqtt_instance_new();
	assert_int_equal(mqtt_protocol.restore(&penv), 0);

	p = cl_open();
	assert_true(cl_connect_full(p, &(struct mqtt_connect){.level = 4, .clean = false,
				    .keepalive = 60, .client_id = STR("keeper")}));
	/* the unacknowledged QoS 2 again, DUP, same id; then the queue */
	struct mqtt_packet pk;
	expect_type(p, MQTT_PUBLISH, &pk);
	assert_true(pk.u.publish.dup);
	assert_int_equal(pk.id, id2);
	expect_publish(p, "t/1", "one", 1, false);
	expect_nothing(p);
	/* the inbound QoS 2 id is still held: a resend is not delivered twice */
	b = cl_connected("watch", true);
	assert_int_equal(cl_subscribe(b, "elsewhere", 2), 2);
	cl_publish(p, "elsewhere", "in-flight-in", 2, 40, false, true);
	expect_ack(p, MQTT_PUBREC, 40);
	expect_nothing(b);
	cl_ack(p, MQTT_PUBREL, 40);
	expect_ack(p, MQTT_PUBCOMP, 40);
	/* subscriptions came back: a new message arrives without SUBSCRIBE */
	cl_publish(b, "s/2", "after", 0, 0, false, false);
	expect_publish(p, "s/2", "after", 0, false);
	/* and the retained message */
	assert_int_equal(cl_subscribe(b, "r", 1), 1);
	expect_publish(b, "r", "retained", 1, true);
	cl_free(b, PROTO_CLOSED_BY_PEER);
	cl_free(p, PROTO_CLOSED_BY_PEER);
}

/* A clean start forgets the stored session too. */
static void test_clean_start_forgets_stored_session(void **st)
{
	struct client *p;

	absent_subscriber("keeper", "d/#", 1);
	p = cl_connected("keeper", true);
	cl_free(p, PROTO_CLOSED_BY_PEER);
	mqtt_protocol.teardown(&penv);
	penv.state = NULL;
	router_free(router);
	router = router_new(NULL);
	penv.router = router;
	mqtt_instance_new();
	assert_int_equal(mqtt_protocol.restore(&penv), 0);
	assert_int_equal(stats().sessions, 0);
}

/* Two protocol instances in one process share nothing: a persistent session,
 * its subscription and the message queued for it live only in the instance
 * (router, store) that made them. */
static void test_two_instances_are_independent(void **st)
{
	char err[200];
	struct router *router2 = router_new(NULL);
	struct store *store2 = store_open(":memory:", STORE_SYNC_FULL, &(struct store_log){.fn = log_sink},
					  err, sizeof(err));
	struct proto_env env2 = {.router = router2, .cfg = &cfg, .store = store2};
	struct client *pub, *twin, *pub2, *twin2;

	assert_non_null(router2);
	assert_non_null(store2);
	env2.state = mqtt_protocol.init(&env2);
	assert_non_null(env2.state);
	assert_ptr_not_equal(env2.state, penv.state);

	absent_subscriber("twin", "t/#", 1);
	pub = cl_connected("pub", true);
	cl_publish(pub, "t/x", "kept", 1, 1, false, false);
	expect_ack(pub, MQTT_PUBACK, 1);
	assert_int_equal(stats().sessions, 2);
	assert_int_equal(stats().away, 1);
	assert_int_equal(stats().queued, 1);
	assert_int_equal(stats_of(&env2).sessions, 0);

	/* the second instance has never heard of "twin" */
	twin2 = cl_open_in(&env2);
	assert_false(cl_connect_full(twin2, &(struct mqtt_connect){
		.level = 4, .clean = false, .keepalive = 60, .client_id = STR("twin")}));
	assert_int_equal(cl_subscribe(twin2, "t/#", 0), 0);
	pub2 = cl_connected_in(&env2, "pub", true);
	cl_publish(pub2, "t/y", "second", 0, 0, false, false);
	expect_publish(twin2, "t/y", "second", 0, false);
	cl_publish(pub, "t/z", "first", 0, 0, false, false);
	expect_nothing(twin2);
	assert_int_equal(stats_of(&env2).sessions, 2);
	assert_int_equal(stats_of(&env2).away, 0);
	assert_int_equal(stats().queued, 1);

	/* and the first still holds its own */
	twin = cl_open();
	assert_true(cl_connect_full(twin, &(struct mqtt_connect){
		.level = 4, .clean = false, .keepalive = 60, .client_id = STR("twin")}));
	expect_publish(twin, "t/x", "kept", 1, false);
	expect_nothing(twin);

	cl_free(twin, PROTO_CLOSED_BY_PEER);
	cl_free(pub, PROTO_CLOSED_BY_PEER);
	cl_free(twin2, PROTO_CLOSED_BY_PEER);
	cl_free(pub2, PROTO_CLOSED_BY_PEER);
	mqtt_protocol.teardown(&env2);
	router_free(router2);
	store_close(store2);
}

/* The ACL through env->acl: SUBACK 0x80 for a filter with nothing
 * readable, a refused PUBLISH acknowledged and counted but not routed,
 * deliveries judged per topic, and a swap of the rules (a new generation)
 * taking effect on a subscription whose verdict was cached. */
static struct acl *acl_of(const char *text)
{
	char err[200];
	struct acl *a = acl_parse(text, strlen(text), "t.acl", NULL, err, sizeof(err));

	assert_non_null(a);
	return a;
}

static void test_acl_checks(void **st)
{
	struct acl_holder h = {acl_of("topic readwrite a/#\ntopic deny a/secret\n"
				      "topic write w/#\n"), 1};
	struct proto_env env2 = penv;
	struct client *sub, *pub;

	env2.acl = &h;
	env2.state = mqtt_protocol.init(&env2);
	assert_non_null(env2.state);
	sub = cl_connected_in(&env2, "sub", true);
	pub = cl_connected_in(&env2, "pub", true);
	assert_int_equal(cl_subscribe(sub, "x/#", 0), MQTT_SUBACK_FAILURE);
	assert_int_equal(cl_subscribe(sub, "a/secret", 0), MQTT_SUBACK_FAILURE);
	assert_int_equal(cl_subscribe(sub, "w/#", 0), MQTT_SUBACK_FAILURE);
	assert_int_equal(cl_subscribe(sub, "#", 1), 1);
	assert_int_equal(cl_subscribe(sub, "a/open/#", 0), 0);

	cl_publish(pub, "a/secret", "no", 1, 1, false, false);
	expect_ack(pub, MQTT_PUBACK, 1);
	cl_publish(pub, "x/y", "no", 2, 2, false, false);
	expect_ack(pub, MQTT_PUBREC, 2);
	assert_false(pub->c->closing);
	assert_int_equal(stats_of(&env2).acl_denied, 2);
	cl_publish(pub, "w/1", "written, not readable", 0, 0, false, false);
	cl_publish(pub, "a/open/1", "yes", 1, 3, false, false);
	expect_ack(pub, MQTT_PUBACK, 3);
	expect_publish(sub, "a/open/1", "yes", 1, false);
	expect_nothing(sub);

	/* new rules: a/open/# (cached as wholly readable) is read-denied now */
	acl_free(h.acl);
	h.acl = acl_of("topic readwrite a/#\ntopic deny a/open/#\n");
	h.generation++;
	cl_publish(pub, "a/open/2", "no longer", 0, 0, false, false);
	cl_publish(pub, "a/b", "still", 0, 0, false, false);
	expect_publish(sub, "a/b", "still", 0, false);
	expect_nothing(sub);

	cl_free(sub, PROTO_CLOSED_BY_PEER);
	cl_free(pub, PROTO_CLOSED_BY_PEER);
	mqtt_protocol.teardown(&env2);
	acl_free(h.acl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_connect_accepted),
		T(test_split_and_batched_packets),
		T(test_connect_refusals),
		T(test_refusal_held_on_timer),
		T(test_session_count_bound),
		T(test_connect_generated_id_and_31),
		T(test_protocol_violations),
		T(test_qos0_roundtrip_and_min_qos),
		T(test_fan_out),
		T(test_overlapping_subscriptions_deliver_once),
		T(test_qos1_both_directions),
		T(test_qos2_inbound_exactly_once),
		T(test_qos2_outbound),
		T(test_inflight_window_and_queue_bound),
		T(test_queue_full_drops_qos0_first),
		T(test_slow_reader_drops_qos0),
		T(test_subscribe_rules),
		T(test_dollar_topics),
		T(test_shared_subscription),
		T(test_message_from_another_protocol),
		T(test_retained),
		T(test_will),
		T(test_keepalive),
		T(test_connect_deadline),
		T(test_persistent_session),
		T(test_inbound_qos2_survives_reconnect),
		T(test_session_expiry),
		T(test_takeover),
		T(test_large_publish_in_pieces),
		T(test_sniff),
		T(test_large_fan_out_shares_bytes),
		T(test_puback_waits_for_commit),
		T(test_retained_publish_waits_for_commit),
		T(test_failed_commit_withholds_ack),
		T(test_restart_restores_sessions),
		T(test_clean_start_forgets_stored_session),
		T(test_two_instances_are_independent),
		T(test_acl_checks),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
