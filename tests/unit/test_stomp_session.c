/* Unit tests for the STOMP session (protocols/stomp*.c), driven through the
 * fake connection with a real router and a fake clock. Frames the session
 * sends are read back with the codec, so that a test checks what a client
 * would see. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "auth/auth.h"
#include "clock.h"
#include "config.h"
#include "fake_conn.h"
#include "log.h"
#include "route/message.h"
#include "route/router.h"
#include "stomp.h"
#include "stomp_codec.h"
#include "store.h"

/* ---- environment ---- */

static uint64_t fake_now;
static uint64_t fake_clock(void) { return fake_now; }

static struct cfg cfg;
static struct router *router;
static struct proto_env env;
/* A real store in memory; tests settle it after each input, as a quick
 * disk would, unless they pause its writer to see what waits for it. */
static struct store *store;

/* How input reaches the session: whole, byte by byte, or in odd chunks. */
static size_t feed_chunk;
static bool store_paused;

static void env_up(void)
{
	fake_now = 1000000;
	clock_set_source(fake_clock);
	log_set_level(LOGL_ERROR);
	struct router_limits lim = { cfg.queue_max_messages };
	router = router_new(&lim);
	assert_non_null(router);
	env.router = router;
	env.cfg = &cfg;
	if (!store) {
		char err[200];
		store = store_open(":memory:", STORE_SYNC_FULL, &(struct store_log){.fn = log_sink},
				   err, sizeof(err));
		assert_non_null(store);
	}
	env.store = store;
}

static int setup(void **st)
{
	(void)st;
	cfg_defaults(&cfg);
	/* Refusals answered at once here; the held refusal is test_auth.py's. */
	cfg.login_fail_delay_ms = 0;
	feed_chunk = 0;
	store_paused = false;
	env_up();
	env.state = stomp_protocol.init(&env);
	assert_non_null(env.state);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	stomp_protocol.teardown(&env);
	env.state = NULL;
	router_free(router);
	router = NULL;
	store_close(store);
	store = NULL;
	auth_reset();
	clock_set_source(NULL);
	return 0;
}

/* ---- a client: the fake conn, the session, and a reader of its output ---- */

#define MAXH 32

struct tframe {
	enum stomp_command cmd;
	size_t nh;
	char name[MAXH][64];
	char value[MAXH][256];
	uint8_t body[4096];
	size_t body_len;
};

struct client {
	struct conn *c;
	void *s;
	size_t rd;                 /* how much of c->out was read */
	struct stomp_parser p;
	struct tframe f;           /* the last frame read */
	bool open;
};

/* A session of the protocol instance e (the tests' env unless they make a
 * second one). */
static struct client *client_open(const struct proto_env *e, bool ws, const char *ws_name)
{
	struct client *cl = calloc(1, sizeof(*cl));
	cl->c = fake_conn_new(ws);
	cl->s = stomp_protocol.open(cl->c, e, ws_name);
	assert_non_null(cl->s);
	cl->open = true;
	struct stomp_limits lim = { MAXH, 4096, sizeof(cl->f.body) };
	stomp_parser_init(&cl->p, &lim);
	return cl;
}

static struct client *client_new(bool ws, const char *ws_name)
{
	return client_open(&env, ws, ws_name);
}

static void client_close(struct client *cl)
{
	if (cl->open)
		stomp_protocol.close(cl->s, PROTO_CLOSED_BY_PEER);
	stomp_parser_free(&cl->p);
	fake_conn_free(cl->c);
	free(cl);
}

static void feedn(struct client *cl, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t step = feed_chunk ? feed_chunk : len;
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		stomp_protocol.input(cl->s, p + off, n);
	}
	if (!store_paused)
		store_flush_sync(store);
}

/* A frame written as text; its terminating NUL is added. */
static void feed(struct client *cl, const char *frame)
{
	feedn(cl, frame, strlen(frame) + 1);
}

/* Next frame sent to the client (heart-beat EOLs are skipped); false when
 * nothing more was sent. */
static bool next_frame(struct client *cl)
{
	for (;;) {
		struct stomp_frame f;
		int r = stomp_parse(&cl->p, cl->c->out + cl->rd, cl->c->out_len - cl->rd, &f);
		assert_true(r >= 0);
		if (r == 0)
			return false;
		cl->rd += (size_t)r;
		if (f.cmd == STOMP_HEARTBEAT)
			continue;
		memset(&cl->f, 0, sizeof(cl->f));
		cl->f.cmd = f.cmd;
		cl->f.nh = f.nheaders;
		for (size_t i = 0; i < f.nheaders; i++) {
			snprintf(cl->f.name[i], sizeof(cl->f.name[i]), "%s", f.headers[i].name);
			snprintf(cl->f.value[i], sizeof(cl->f.value[i]), "%s", f.headers[i].value);
		}
		memcpy(cl->f.body, f.body, f.body_len);
		cl->f.body_len = f.body_len;
		if (f.cmd == STOMP_CONNECTED) {
			const char *v = stomp_frame_get(&f, "version");
			stomp_parser_set_version(&cl->p, !v ? STOMP_V10 : strcmp(v, "1.1") == 0 ? STOMP_V11 : STOMP_V12);
		}
		return true;
	}
}

static const char *hdr(const struct tframe *f, const char *name)
{
	for (size_t i = 0; i < f->nh; i++)
		if (strcmp(f->name[i], name) == 0)
			return f->value[i];
	return NULL;
}

static const struct tframe *expect(struct client *cl, enum stomp_command cmd)
{
	if (!next_frame(cl))
		fail_msg("expected %s, nothing was sent (all output: '%s')", stomp_command_name(cmd),
			 fake_conn_text(cl->c));
	if (cl->f.cmd != cmd)
		fail_msg("expected %s, got %s (message: %s)", stomp_command_name(cmd),
			 stomp_command_name(cl->f.cmd), hdr(&cl->f, "message") ? hdr(&cl->f, "message") : "");
	return &cl->f;
}

static void expect_nothing(struct client *cl)
{
	if (next_frame(cl))
		fail_msg("unexpected %s frame", stomp_command_name(cl->f.cmd));
}

static void expect_body(const struct tframe *f, const char *body)
{
	assert_int_equal(f->body_len, strlen(body));
	assert_memory_equal(f->body, body, f->body_len);
}

static void expect_error(struct client *cl, const char *message)
{
	const struct tframe *f = expect(cl, STOMP_ERROR);
	assert_non_null(hdr(f, "message"));
	if (!strstr(hdr(f, "message"), message))
		fail_msg("ERROR message '%s' lacks '%s'", hdr(f, "message"), message);
	assert_true(cl->c->closing);
}

/* A client connected with the given version list. */
static struct client *connected_in(const struct proto_env *e, const char *accept)
{
	struct client *cl = client_open(e, false, NULL);
	char fr[256];
	snprintf(fr, sizeof(fr), "CONNECT\naccept-version:%s\nhost:localhost\n\n", accept);
	feed(cl, fr);
	expect(cl, STOMP_CONNECTED);
	return cl;
}

static struct client *connected(const char *accept)
{
	return connected_in(&env, accept);
}

static void subscribe(struct client *cl, const char *id, const char *dest, const char *ack)
{
	char fr[256];
	snprintf(fr, sizeof(fr), "SUBSCRIBE\nid:%s\ndestination:%s\nack:%s\n\n", id, dest, ack);
	feed(cl, fr);
	/* no receipt asked: messages already queued are the next frames */
	assert_false(cl->c->closing);
}

static void send_to(struct client *cl, const char *dest, const char *body)
{
	char fr[512];
	snprintf(fr, sizeof(fr), "SEND\ndestination:%s\n\n%s", dest, body);
	feed(cl, fr);
}

/* ---- sniffing ---- */

static void test_sniff(void **st)
{
	(void)st;
	const struct { const char *in; int want; } cases[] = {
		{ "CONNECT\n", 1 }, { "STOMP\r\n", 1 }, { "\n\r\nCONNECT\naccept", 1 },
		{ "CONN", 0 }, { "", 0 }, { "\n\n", 0 }, { "STOMP\r", 0 }, { "CONNECT", 0 },
		{ "CONNECTED\n", -1 }, { "GET / HTTP/1.1\r\n", -1 }, { "\x10\x0c", -1 },
		{ "STOMP\rX", -1 }, { "\rX", -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(stomp_sniff((const uint8_t *)cases[i].in, strlen(cases[i].in)),
				 cases[i].want);
	assert_string_equal(stomp_protocol.name, "stomp");
	assert_string_equal(stomp_protocol.ws_names[0], "v12.stomp");
	assert_false(stomp_protocol.ws_binary_out);
}

/* ---- CONNECT ---- */

static void test_connect_versions(void **st)
{
	(void)st;
	const struct { const char *hdrs; const char *want; } cases[] = {
		{ "accept-version:1.0,1.1,1.2\n", "1.2" }, { "accept-version:1.1,1.0\n", "1.1" },
		{ "accept-version:1.0\n", NULL }, { "", NULL }, { "accept-version:1.2, 3.0\n", "1.2" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int cmd = 0; cmd < 2; cmd++) {
			struct client *cl = client_new(false, NULL);
			char fr[256];
			snprintf(fr, sizeof(fr), "%s\n%shost:h\n\n", cmd ? "STOMP" : "CONNECT", cases[i].hdrs);
			feed(cl, fr);
			const struct tframe *f = expect(cl, STOMP_CONNECTED);
			if (cases[i].want) {
				assert_string_equal(hdr(f, "version"), cases[i].want);
				assert_non_null(hdr(f, "heart-beat"));
			} else {
				assert_null(hdr(f, "version"));   /* a 1.0 CONNECTED has none */
				assert_null(hdr(f, "heart-beat"));
			}
			assert_non_null(strstr(hdr(f, "server"), "wsbroker/"));
			assert_non_null(hdr(f, "session"));
			assert_false(cl->c->closing);
			client_close(cl);
		}
	}
}

static void test_connect_unsupported_version(void **st)
{
	(void)st;
	struct client *cl = client_new(false, NULL);
	feed(cl, "CONNECT\naccept-version:2.0,3.1\n\n");
	const struct tframe *f = expect(cl, STOMP_ERROR);
	assert_string_equal(hdr(f, "version"), "1.0,1.1,1.2");
	assert_true(cl->c->closing);
	client_close(cl);
}

static void test_connect_ws_subprotocol_version(void **st)
{
	(void)st;
	struct client *cl = client_new(true, "v11.stomp");
	feed(cl, "CONNECT\nhost:h\n\n");
	assert_string_equal(hdr(expect(cl, STOMP_CONNECTED), "version"), "1.1");
	client_close(cl);
}

static void test_session_ids_differ(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	assert_string_not_equal(hdr(&a->f, "session"), hdr(&b->f, "session"));
	client_close(a);
	client_close(b);
}

/* Two instances of the protocol share nothing: each numbers its own
 * sessions and keeps its own cache of topic MESSAGEs, and the teardown of
 * one leaves the other working. */
static void test_two_instances_are_independent(void **st)
{
	(void)st;
	struct proto_env env2 = env;
	env2.state = stomp_protocol.init(&env2);
	assert_non_null(env2.state);
	assert_ptr_not_equal(env2.state, env.state);
	struct client *a = connected("1.2"), *b = connected("1.2");
	struct client *c = connected_in(&env2, "1.2");
	assert_string_equal(hdr(&a->f, "session"), "wsb-1");
	assert_string_equal(hdr(&b->f, "session"), "wsb-2");
	assert_string_equal(hdr(&c->f, "session"), "wsb-1");
	/* one message fans out to sessions of both */
	subscribe(a, "s", "/topic/t", "auto");
	subscribe(c, "s", "/topic/t", "auto");
	send_to(b, "/topic/t", "one");
	expect_body(expect(a, STOMP_MESSAGE), "one");
	expect_body(expect(c, STOMP_MESSAGE), "one");
	client_close(c);
	stomp_protocol.teardown(&env2);
	send_to(b, "/topic/t", "two");
	const struct tframe *f = expect(a, STOMP_MESSAGE);
	expect_body(f, "two");
	assert_string_equal(hdr(f, "destination"), "/topic/t");
	struct client *d = connected("1.2");
	assert_string_equal(hdr(&d->f, "session"), "wsb-3");
	client_close(a);
	client_close(b);
	client_close(d);
}

static void test_heartbeat_negotiation(void **st)
{
	(void)st;
	const struct { const char *hb; const char *want; } cases[] = {
		{ "0,0", "0,0" }, { "5000,20000", "20000,10000" }, { "30000,1", "10000,30000" },
		{ "10000,0", "0,10000" }, { NULL, "0,0" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct client *cl = client_new(false, NULL);
		char fr[128];
		snprintf(fr, sizeof(fr), "CONNECT\naccept-version:1.2\n%s%s%s\n", cases[i].hb ? "heart-beat:" : "",
			 cases[i].hb ? cases[i].hb : "", cases[i].hb ? "\n" : "");
		feed(cl, fr);
		assert_string_equal(hdr(expect(cl, STOMP_CONNECTED), "heart-beat"), cases[i].want);
		client_close(cl);
	}
	struct client *cl = client_new(false, NULL);
	feed(cl, "CONNECT\naccept-version:1.2\nheart-beat:soon\n\n");
	expect_error(cl, "heart-beat");
	client_close(cl);
}

static void test_frame_before_connect(void **st)
{
	(void)st;
	struct client *cl = client_new(false, NULL);
	feed(cl, "SEND\ndestination:/queue/a\nreceipt:r9\n\nx");
	expect_error(cl, "CONNECT");
	assert_string_equal(hdr(&cl->f, "receipt-id"), "r9");
	/* input after the ERROR is ignored */
	assert_int_equal(stomp_protocol.input(cl->s, (const uint8_t *)"CONNECT\n\n", 10), -1);
	expect_nothing(cl);
	client_close(cl);
}

static void test_auth(void **st)
{
	(void)st;
	char path[] = "/tmp/wsb-stomp-users-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "alice secret\n", 13), 13);
	close(fd);
	struct cfg c2 = cfg;
	snprintf(c2.users_file, sizeof(c2.users_file), "%s", path);
	c2.allow_anonymous = false;
	char err[256];
	assert_int_equal(auth_configure(&c2, err, sizeof(err)), 0);
	unlink(path);

	struct client *cl = client_new(false, NULL);
	feed(cl, "CONNECT\naccept-version:1.2\nlogin:alice\npasscode:wrong\n\n");
	expect_error(cl, "access refused");
	client_close(cl);
	cl = client_new(false, NULL);
	feed(cl, "CONNECT\naccept-version:1.2\n\n");
	expect_error(cl, "access refused");
	client_close(cl);
	cl = client_new(false, NULL);
	feed(cl, "CONNECT\naccept-version:1.2\nlogin:alice\npasscode:secret\n\n");
	expect(cl, STOMP_CONNECTED);
	assert_string_equal(conn_client_id(cl->c), "alice");
	client_close(cl);
}

/* With a delay, the ERROR waits for the session timer; frames sent
 * meanwhile are ignored; a correct login is answered at once. */
static void test_auth_refusal_held(void **st)
{
	(void)st;
	char path[] = "/tmp/wsb-stomp-users-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "alice secret\n", 13), 13);
	close(fd);
	struct cfg c2 = cfg;
	snprintf(c2.users_file, sizeof(c2.users_file), "%s", path);
	c2.login_fail_delay_ms = 500;
	char err[256];
	assert_int_equal(auth_configure(&c2, err, sizeof(err)), 0);
	unlink(path);

	struct client *cl = client_new(false, NULL);
	feed(cl, "CONNECT\naccept-version:1.2\nlogin:alice\npasscode:wrong\nreceipt:r9\n\n");
	expect_nothing(cl);
	assert_int_equal(cl->c->timer_ms, 500);
	feed(cl, "SEND\ndestination:/topic/x\n\nignored");
	expect_nothing(cl);
	fake_now += 499;
	stomp_protocol.tick(cl->s);
	expect_nothing(cl);
	fake_now += 1;
	stomp_protocol.tick(cl->s);
	expect_error(cl, "access refused");
	assert_true(cl->c->closing);
	client_close(cl);

	cl = client_new(false, NULL);
	feed(cl, "CONNECT\naccept-version:1.2\nlogin:alice\npasscode:secret\n\n");
	expect(cl, STOMP_CONNECTED);
	client_close(cl);
}

/* ---- SEND / SUBSCRIBE / MESSAGE ---- */

static void round_trip(void)
{
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "sub-0", "/topic/chat.room1", "auto");
	feed(b, "SEND\ndestination:/topic/chat.room1\ncontent-type:text/plain\nx-app:v1\n"
		"x-app:v2\nreceipt:r1\n\nhello world");
	assert_string_equal(hdr(expect(b, STOMP_RECEIPT), "receipt-id"), "r1");
	const struct tframe *f = expect(a, STOMP_MESSAGE);
	assert_string_equal(hdr(f, "destination"), "/topic/chat.room1");
	assert_string_equal(hdr(f, "subscription"), "sub-0");
	assert_non_null(hdr(f, "message-id"));
	assert_null(hdr(f, "ack"));   /* auto: nothing to acknowledge */
	assert_string_equal(hdr(f, "content-type"), "text/plain");
	assert_string_equal(hdr(f, "content-length"), "11");
	assert_string_equal(hdr(f, "x-app"), "v1");
	assert_null(hdr(f, "receipt"));
	expect_body(f, "hello world");
	expect_nothing(a);
	expect_nothing(b);   /* b is not subscribed */
	client_close(a);
	client_close(b);
}

static void test_round_trip(void **st)
{
	(void)st;
	round_trip();
}

/* The same exchange with input cut into every small size. */
static void test_round_trip_split_input(void **st)
{
	(void)st;
	for (feed_chunk = 1; feed_chunk <= 7; feed_chunk++)
		round_trip();
	feed_chunk = 0;
}

static void test_many_frames_in_one_input(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "0", "/queue/q", "auto");
	const char in[] = "SEND\ndestination:/queue/q\n\none\0\n\nSEND\ndestination:/queue/q\n"
			  "content-length:3\n\nt\0o\0\r\nSEND\ndestination:/queue/q\nreceipt:x\n\nthree\0"
			  "SEND\ndestination:/queue/q\n\nfo";
	stomp_protocol.input(b->s, (const uint8_t *)in, sizeof(in) - 1);
	expect_body(expect(a, STOMP_MESSAGE), "one");
	const struct tframe *f = expect(a, STOMP_MESSAGE);
	assert_int_equal(f->body_len, 3);
	assert_memory_equal(f->body, "t\0o", 3);
	expect_body(expect(a, STOMP_MESSAGE), "three");
	expect_nothing(a);
	/* delivered at once; the RECEIPT waits for the commit */
	expect_nothing(b);
	store_flush_sync(store);
	expect(b, STOMP_RECEIPT);
	stomp_protocol.input(b->s, (const uint8_t *)"ur\0", 3);
	expect_body(expect(a, STOMP_MESSAGE), "four");
	client_close(a);
	client_close(b);
}

static void test_wildcards(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "star", "/topic/a.*", "auto");
	subscribe(a, "hash", "/topic/a.#", "auto");
	send_to(b, "/topic/a.b", "1");
	/* one MESSAGE per matching subscription */
	const struct tframe *f = expect(a, STOMP_MESSAGE);
	char first[64];
	snprintf(first, sizeof(first), "%s", hdr(f, "subscription"));
	f = expect(a, STOMP_MESSAGE);
	assert_string_not_equal(first, hdr(f, "subscription"));
	assert_string_equal(hdr(f, "destination"), "/topic/a.b");
	send_to(b, "/topic/a.b.c", "2");
	f = expect(a, STOMP_MESSAGE);
	assert_string_equal(hdr(f, "subscription"), "hash");
	assert_string_equal(hdr(f, "destination"), "/topic/a.b.c");
	expect_nothing(a);
	client_close(a);
	client_close(b);
}

static void test_cross_protocol_topic_names(void **st)
{
	(void)st;
	struct client *a = connected("1.2");
	subscribe(a, "s", "/topic/chat.room1", "auto");
	/* what an MQTT client publishing on chat/room1 hands the router */
	struct message *m = message_new("chat/room1", 10, "from mqtt", 9);
	assert_int_equal(router_publish(router, m), 1);
	message_unref(m);
	const struct tframe *f = expect(a, STOMP_MESSAGE);
	assert_string_equal(hdr(f, "destination"), "/topic/chat.room1");
	expect_body(f, "from mqtt");
	client_close(a);
}

static struct message *captured;
static void capture(void *owner, struct message *m, struct router_sub *const *subs, size_t n)
{
	(void)owner; (void)subs; (void)n;
	if (captured)
		message_unref(captured);
	captured = message_ref(m);
}

static void test_send_builds_router_message(void **st)
{
	(void)st;
	int err;
	struct router_sub *rs = router_subscribe(router, "x/y", 3, NULL, capture, NULL, &err);
	assert_non_null(rs);
	struct client *b = connected("1.2");
	feed(b, "SEND\ndestination:/topic/x.y\npersistent:true\nprio:9\ncontent-type:a/b\n\nP");
	assert_non_null(captured);
	assert_int_equal(captured->topic_len, 3);
	assert_string_equal(captured->topic, "x/y");
	assert_int_equal(captured->qos, 1);
	assert_string_equal(captured->content_type, "a/b");
	bool prio = false;
	for (size_t i = 0; i < captured->nprops; i++) {
		assert_string_not_equal(captured->props[i].name, "destination");
		assert_string_not_equal(captured->props[i].name, "content-type");
		if (strcmp(captured->props[i].name, "prio") == 0)
			prio = strcmp(captured->props[i].value, "9") == 0;
	}
	assert_true(prio);
	message_unref(captured);
	captured = NULL;
	router_unsubscribe(router, rs);
	client_close(b);
}

static void test_escaping_between_versions(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *old = connected("1.0"), *b = connected("1.2");
	subscribe(a, "s", "/topic/e", "auto");
	feed(old, "SUBSCRIBE\ndestination:/topic/e\n\n");
	feed(b, "SEND\ndestination:/topic/e\nk\\cey:a\\nb\\\\c\\cd\n\n.");
	const struct tframe *f = expect(a, STOMP_MESSAGE);
	assert_string_equal(hdr(f, "k:ey"), "a\nb\\c:d");
	/* a 1.0 reader gets no escapes and no EOL inside a header */
	f = expect(old, STOMP_MESSAGE);
	assert_null(hdr(f, "subscription"));   /* it gave no id */
	assert_string_equal(hdr(f, "k_ey"), "a b\\c:d");
	/* an undefined escape from a 1.2 client is an error */
	feed(b, "SEND\ndestination:/topic/e\nk:\\t\n\n.");
	expect_error(b, "escape");
	client_close(a);
	client_close(old);
	client_close(b);
}

static void test_binary_body_over_websocket(void **st)
{
	(void)st;
	struct client *a = client_new(true, "v12.stomp");
	feed(a, "CONNECT\naccept-version:1.2\n\n");
	expect(a, STOMP_CONNECTED);
	assert_false(a->c->last_binary);
	subscribe(a, "s", "/queue/bin", "auto");
	struct client *b = connected("1.2");
	const char bin[] = "SEND\ndestination:/queue/bin\ncontent-length:4\n\n\xff\x00\xfe\x01";
	feedn(b, bin, sizeof(bin));
	const struct tframe *f = expect(a, STOMP_MESSAGE);
	assert_int_equal(f->body_len, 4);
	assert_memory_equal(f->body, "\xff\x00\xfe\x01", 4);
	assert_true(a->c->last_binary);
	send_to(b, "/queue/bin", "caf\xc3\xa9");
	expect_body(expect(a, STOMP_MESSAGE), "caf\xc3\xa9");
	assert_false(a->c->last_binary);
	client_close(a);
	client_close(b);
}

static void test_unsubscribe(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/topic/u", "auto");
	feed(a, "UNSUBSCRIBE\nid:s\nreceipt:u1\n\n");
	expect(a, STOMP_RECEIPT);
	send_to(b, "/topic/u", "x");
	expect_nothing(a);
	/* 1.1/1.2 need the id */
	feed(a, "UNSUBSCRIBE\ndestination:/topic/u\n\n");
	expect_error(a, "id");
	client_close(a);
	/* 1.0: by destination */
	struct client *old = connected("1.0");
	feed(old, "SUBSCRIBE\ndestination:/topic/u\n\n");
	feed(old, "UNSUBSCRIBE\ndestination:/topic/u\n\n");
	send_to(b, "/topic/u", "y");
	expect_nothing(old);
	client_close(old);
	client_close(b);
}

static void test_slow_reader_drops_topic_not_queue(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "t", "/topic/slow", "auto");
	subscribe(a, "q", "/queue/slow", "auto");
	a->c->congested = true;
	send_to(b, "/topic/slow", "dropped");
	expect_nothing(a);
	send_to(b, "/queue/slow", "kept");
	expect_body(expect(a, STOMP_MESSAGE), "kept");
	a->c->congested = false;
	send_to(b, "/topic/slow", "sent");
	expect_body(expect(a, STOMP_MESSAGE), "sent");
	client_close(a);
	client_close(b);
}

/* ---- acknowledgements ---- */

static void queue_fill(struct client *b, const char *q, int n)
{
	for (int i = 1; i <= n; i++) {
		char body[16];
		snprintf(body, sizeof(body), "m%d", i);
		send_to(b, q, body);
	}
}

/* Receive one MESSAGE and remember the id an ACK must name. */
static void take(struct client *cl, const char *body, char *ack_id, size_t cap)
{
	const struct tframe *f = expect(cl, STOMP_MESSAGE);
	expect_body(f, body);
	const char *id = hdr(f, "ack") ? hdr(f, "ack") : hdr(f, "message-id");
	snprintf(ack_id, cap, "%s", id);
}

static void ack(struct client *cl, const char *cmd, const char *idh, const char *id)
{
	char fr[256];
	snprintf(fr, sizeof(fr), "%s\n%s:%s\nreceipt:a\n\n", cmd, idh, id);
	feed(cl, fr);
	expect(cl, STOMP_RECEIPT);
}

static void test_ack_auto_queue(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/queue/auto", "auto");
	queue_fill(b, "/queue/auto", 2);
	expect_body(expect(a, STOMP_MESSAGE), "m1");
	expect_body(expect(a, STOMP_MESSAGE), "m2");
	client_close(a);
	/* auto-acknowledged: nothing comes back when the consumer leaves */
	assert_int_equal(router_queue_depth(router, "auto", 4), 0);
	client_close(b);
}

/* An auto-mode queue consumer that stops reading does not swallow the
 * queue: past the high-water mark its deliveries wait unacknowledged, at
 * most stomp_max_unacked of them, and are acked once it drains. If it dies
 * meanwhile they go to another consumer, not lost. */
static void test_slow_auto_queue_consumer_is_bounded(void **st)
{
	(void)st;
	router_free(router);
	cfg.stomp_max_unacked = 3;
	env_up();
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "q", "/queue/slow", "auto");
	a->c->congested = true;
	queue_fill(b, "/queue/slow", 10);
	char body[8];
	for (int i = 1; i <= 3; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		expect_body(expect(a, STOMP_MESSAGE), body);
	}
	expect_nothing(a);
	assert_int_equal(router_queue_depth(router, "slow", 4), 7);
	/* it drains: the held three are acked and the rest flows */
	a->c->congested = false;
	stomp_protocol.tick(a->s);
	for (int i = 4; i <= 10; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		expect_body(expect(a, STOMP_MESSAGE), body);
	}
	expect_nothing(a);
	assert_int_equal(router_queue_depth(router, "slow", 4), 0);
	/* congested again, then gone: what it held goes to the next consumer */
	a->c->congested = true;
	queue_fill(b, "/queue/slow", 2);
	expect_body(expect(a, STOMP_MESSAGE), "m1");
	expect_body(expect(a, STOMP_MESSAGE), "m2");
	client_close(a);
	struct client *c = connected("1.2");
	subscribe(c, "q", "/queue/slow", "auto");
	for (int i = 1; i <= 2; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		const struct tframe *f = expect(c, STOMP_MESSAGE);
		expect_body(f, body);
		assert_string_equal(hdr(f, "redelivered"), "true");
	}
	expect_nothing(c);
	client_close(c);
	client_close(b);
}

static void test_ack_client_is_cumulative(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/queue/cum", "client");
	queue_fill(b, "/queue/cum", 3);
	char id1[96], id2[96], id3[96];
	take(a, "m1", id1, sizeof(id1));
	take(a, "m2", id2, sizeof(id2));
	take(a, "m3", id3, sizeof(id3));
	assert_string_equal(hdr(&a->f, "ack"), hdr(&a->f, "message-id"));
	ack(a, "ACK", "id", id2);   /* takes m1 with it */
	/* m1 went with m2: acknowledging it again is an error */
	char fr[160];
	snprintf(fr, sizeof(fr), "ACK\nid:%s\n\n", id1);
	feed(a, fr);
	expect_error(a, "unknown message id");
	client_close(a);
	/* only m3 returns to the queue, flagged */
	assert_int_equal(router_queue_depth(router, "cum", 3), 1);
	struct client *c = connected("1.2");
	subscribe(c, "s", "/queue/cum", "client");
	const struct tframe *f = expect(c, STOMP_MESSAGE);
	expect_body(f, "m3");
	assert_string_equal(hdr(f, "redelivered"), "true");
	client_close(c);
	client_close(b);
}

static void test_ack_client_individual(void **st)
{
	(void)st;
	struct client *a = connected("1.1"), *b = connected("1.2");
	subscribe(a, "s", "/queue/ind", "client-individual");
	queue_fill(b, "/queue/ind", 3);
	char id1[96], id2[96], id3[96];
	take(a, "m1", id1, sizeof(id1));
	take(a, "m2", id2, sizeof(id2));
	take(a, "m3", id3, sizeof(id3));
	assert_null(hdr(&a->f, "ack"));   /* 1.1 acks by message-id */
	char fr[256];
	snprintf(fr, sizeof(fr), "ACK\nmessage-id:%s\nsubscription:s\nreceipt:a\n\n", id2);
	feed(a, fr);
	expect(a, STOMP_RECEIPT);
	client_close(a);
	assert_int_equal(router_queue_depth(router, "ind", 3), 2);
	struct client *c = connected("1.2");
	subscribe(c, "s", "/queue/ind", "auto");
	expect_body(expect(c, STOMP_MESSAGE), "m1");
	expect_body(expect(c, STOMP_MESSAGE), "m3");
	client_close(c);
	client_close(b);
}

static void test_ack_unknown_id(void **st)
{
	(void)st;
	const char *bad[] = { "nope", "wsb-999-1-1", "" };
	for (size_t i = 0; i < 3; i++) {
		struct client *a = connected("1.2");
		char fr[128];
		snprintf(fr, sizeof(fr), "ACK\nid:%s\nreceipt:r\n\n", bad[i]);
		feed(a, fr);
		expect_error(a, "unknown message id");
		assert_string_equal(hdr(&a->f, "receipt-id"), "r");
		client_close(a);
	}
	/* an ACK on an auto subscription names nothing pending */
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/topic/t", "auto");
	send_to(b, "/topic/t", "x");
	const struct tframe *f = expect(a, STOMP_MESSAGE);
	char fr[160];
	snprintf(fr, sizeof(fr), "ACK\nid:%s\n\n", hdr(f, "message-id"));
	feed(a, fr);
	expect_error(a, "unknown message id");
	client_close(a);
	client_close(b);
}

static void test_ack_twice_is_an_error(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/topic/t2", "client");
	send_to(b, "/topic/t2", "x");
	char id[96];
	take(a, "x", id, sizeof(id));
	ack(a, "ACK", "id", id);
	char fr[160];
	snprintf(fr, sizeof(fr), "ACK\nid:%s\n\n", id);
	feed(a, fr);
	expect_error(a, "unknown message id");
	client_close(a);
	client_close(b);
}

static void test_nack_redelivers(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/queue/nack", "client-individual");
	queue_fill(b, "/queue/nack", 1);
	char id[96];
	take(a, "m1", id, sizeof(id));
	assert_null(hdr(&a->f, "redelivered"));
	char fr[160];
	snprintf(fr, sizeof(fr), "NACK\nid:%s\nreceipt:n\n\n", id);
	feed(a, fr);
	/* the only consumer gets it again, before the receipt */
	const struct tframe *f = expect(a, STOMP_MESSAGE);
	expect_body(f, "m1");
	assert_string_equal(hdr(f, "redelivered"), "true");
	assert_string_not_equal(hdr(f, "ack"), id);
	char id2[96];
	snprintf(id2, sizeof(id2), "%s", hdr(f, "ack"));
	expect(a, STOMP_RECEIPT);
	ack(a, "ACK", "id", id2);
	client_close(a);
	assert_int_equal(router_queue_depth(router, "nack", 4), 0);
	/* NACK does not exist in 1.0 */
	struct client *old = connected("1.0");
	feed(old, "NACK\nmessage-id:x\n\n");
	expect_error(old, "NACK");
	client_close(old);
	client_close(b);
}

static void test_nack_client_mode_cumulative(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2"), *c = connected("1.2");
	subscribe(a, "s", "/queue/nc", "client");
	queue_fill(b, "/queue/nc", 2);
	char id1[96], id2[96];
	take(a, "m1", id1, sizeof(id1));
	take(a, "m2", id2, sizeof(id2));
	/* a second consumer takes what a gives back, in order */
	subscribe(c, "s", "/queue/nc", "auto");
	char fr[160];
	snprintf(fr, sizeof(fr), "NACK\nid:%s\n\n", id2);
	feed(a, fr);
	const struct tframe *f;
	int got_c = 0, got_a = 0;
	while (next_frame(c)) {
		f = &c->f;
		assert_string_equal(hdr(f, "redelivered"), "true");
		got_c++;
	}
	while (next_frame(a))
		got_a++;
	assert_int_equal(got_a + got_c, 2);
	client_close(a);
	client_close(b);
	client_close(c);
}

static void test_queue_competing_consumers(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *c = connected("1.1"), *b = connected("1.2");
	subscribe(a, "s", "/queue/work", "auto");
	subscribe(c, "s", "/queue/work", "auto");
	queue_fill(b, "/queue/work", 6);
	int na = 0, nc = 0;
	while (next_frame(a))
		na++;
	while (next_frame(c))
		nc++;
	/* each message to exactly one consumer, turn by turn */
	assert_int_equal(na, 3);
	assert_int_equal(nc, 3);
	client_close(a);
	client_close(b);
	client_close(c);
}

static void test_redelivery_after_disconnect(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *c = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/queue/rd", "client");
	queue_fill(b, "/queue/rd", 2);
	char id[96];
	take(a, "m1", id, sizeof(id));
	take(a, "m2", id, sizeof(id));
	subscribe(c, "s", "/queue/rd", "client-individual");
	expect_nothing(c);
	client_close(a);   /* gone without an ACK */
	const struct tframe *f = expect(c, STOMP_MESSAGE);
	expect_body(f, "m1");
	assert_string_equal(hdr(f, "redelivered"), "true");
	expect_body(expect(c, STOMP_MESSAGE), "m2");
	client_close(b);
	client_close(c);
}

static void test_two_consumers_same_session_close(void **st)
{
	(void)st;
	/* one connection consuming a queue twice: on close, what one consumer
	 * held must not be lost to the other (being closed too) */
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "x", "/queue/two", "client");
	subscribe(a, "y", "/queue/two", "auto");
	queue_fill(b, "/queue/two", 4);
	while (next_frame(a))
		;
	client_close(a);
	assert_int_equal(router_queue_depth(router, "two", 3), 2);
	client_close(b);
}

static void test_unacked_window(void **st)
{
	(void)st;
	cfg.stomp_max_unacked = 2;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/queue/win", "client-individual");
	queue_fill(b, "/queue/win", 3);
	char id1[96], id2[96], id3[96];
	take(a, "m1", id1, sizeof(id1));
	take(a, "m2", id2, sizeof(id2));
	expect_nothing(a);   /* the window is full */
	char fr[160];
	snprintf(fr, sizeof(fr), "ACK\nid:%s\nreceipt:a\n\n", id1);
	feed(a, fr);
	/* the freed room brings m3 at once, before the receipt */
	take(a, "m3", id3, sizeof(id3));
	expect(a, STOMP_RECEIPT);
	expect_nothing(a);
	client_close(a);
	client_close(b);
}

/* ---- transactions ---- */

static void test_transaction_commit_and_abort(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/topic/tx", "auto");
	feed(b, "BEGIN\ntransaction:t1\n\n");
	feed(b, "SEND\ndestination:/topic/tx\ntransaction:t1\nreceipt:r\n\none");
	expect(b, STOMP_RECEIPT);
	feed(b, "SEND\ndestination:/topic/tx\ntransaction:t1\n\ntwo");
	expect_nothing(a);
	feed(b, "COMMIT\ntransaction:t1\n\n");
	expect_body(expect(a, STOMP_MESSAGE), "one");
	expect_body(expect(a, STOMP_MESSAGE), "two");
	feed(b, "BEGIN\ntransaction:t2\n\n");
	feed(b, "SEND\ndestination:/topic/tx\ntransaction:t2\n\nthree");
	feed(b, "ABORT\ntransaction:t2\n\n");
	expect_nothing(a);
	/* t2 is gone: committing it is an error */
	feed(b, "COMMIT\ntransaction:t2\nreceipt:c\n\n");
	expect_error(b, "unknown transaction");
	assert_string_equal(hdr(&b->f, "receipt-id"), "c");
	client_close(b);
	expect_nothing(a);
	client_close(a);
}

static void test_transaction_dropped_on_disconnect(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/queue/txd", "auto");
	feed(b, "BEGIN\ntransaction:t\n\n");
	feed(b, "SEND\ndestination:/queue/txd\ntransaction:t\n\nlost");
	client_close(b);
	expect_nothing(a);
	assert_int_equal(router_queue_depth(router, "txd", 3), 0);
	client_close(a);
}

static void test_transaction_ack(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "s", "/queue/txa", "client-individual");
	queue_fill(b, "/queue/txa", 2);
	char id1[96], id2[96];
	take(a, "m1", id1, sizeof(id1));
	take(a, "m2", id2, sizeof(id2));
	char fr[200];
	feed(a, "BEGIN\ntransaction:x\n\n");
	snprintf(fr, sizeof(fr), "ACK\nid:%s\ntransaction:x\n\n", id1);
	feed(a, fr);
	feed(a, "ABORT\ntransaction:x\n\n");   /* the ACK vanishes */
	feed(a, "BEGIN\ntransaction:y\n\n");
	snprintf(fr, sizeof(fr), "ACK\nid:%s\ntransaction:y\n\n", id2);
	feed(a, fr);
	feed(a, "COMMIT\ntransaction:y\nreceipt:c\n\n");
	expect(a, STOMP_RECEIPT);
	client_close(a);
	/* m1 was never acknowledged; m2 was */
	struct client *c = connected("1.2");
	subscribe(c, "s", "/queue/txa", "auto");
	expect_body(expect(c, STOMP_MESSAGE), "m1");
	expect_nothing(c);
	client_close(c);
	client_close(b);
}

static void test_transaction_errors(void **st)
{
	(void)st;
	struct client *a = connected("1.2");
	feed(a, "BEGIN\n\n");
	expect_error(a, "missing transaction");
	client_close(a);
	a = connected("1.2");
	feed(a, "BEGIN\ntransaction:d\n\n");
	feed(a, "BEGIN\ntransaction:d\n\n");
	expect_error(a, "already");
	client_close(a);
	a = connected("1.2");
	feed(a, "SEND\ndestination:/topic/a\ntransaction:nope\n\nx");
	expect_error(a, "unknown transaction");
	client_close(a);
}

/* The configured bounds on open transactions and on frames they hold. */
static void test_transaction_bounds(void **st)
{
	(void)st;
	cfg.stomp_max_transactions = 2;
	cfg.stomp_max_tx_frames = 3;
	struct client *a = connected("1.2");
	feed(a, "BEGIN\ntransaction:t1\n\n");
	feed(a, "BEGIN\ntransaction:t2\n\n");
	expect_nothing(a);
	feed(a, "BEGIN\ntransaction:t3\n\n");
	expect_error(a, "too many open transactions");
	client_close(a);
	a = connected("1.2");
	feed(a, "BEGIN\ntransaction:t\n\n");
	for (int i = 0; i < 3; i++)
		feed(a, "SEND\ndestination:/topic/a\ntransaction:t\n\nx");
	expect_nothing(a);
	feed(a, "SEND\ndestination:/topic/a\ntransaction:t\n\nx");
	expect_error(a, "transaction too large");
	client_close(a);
}

/* ---- heart-beats ---- */

static void test_heartbeat_timer(void **st)
{
	(void)st;
	struct client *a = client_new(false, NULL);
	feed(a, "CONNECT\naccept-version:1.2\nheart-beat:4000,4000\n\n");
	assert_string_equal(hdr(expect(a, STOMP_CONNECTED), "heart-beat"), "10000,10000");
	/* first deadline: our beat after 10 s of silence */
	assert_int_equal(a->c->timer_ms, 10000);
	fake_now += 10000;
	fake_conn_clear(a->c);
	a->rd = 0;
	stomp_protocol.tick(a->s);
	assert_string_equal(fake_conn_text(a->c), "\n");
	assert_false(a->c->closing);
	/* the client's beat keeps it alive past its own 10 s interval */
	fake_now += 9000;
	stomp_protocol.input(a->s, (const uint8_t *)"\n", 1);
	fake_now += 1000;
	stomp_protocol.tick(a->s);
	assert_false(a->c->closing);
	/* silent for interval x grace (2 x 10 s): dropped */
	fake_now += 18999;
	stomp_protocol.tick(a->s);
	assert_false(a->c->closing);
	fake_now += 1;
	stomp_protocol.tick(a->s);
	assert_true(a->c->closing);
	client_close(a);
}

static void test_heartbeat_grace_configurable(void **st)
{
	(void)st;
	cfg.stomp_heartbeat_grace = 3.0;
	struct client *a = client_new(false, NULL);
	feed(a, "CONNECT\naccept-version:1.2\nheart-beat:10000,0\n\n");
	expect(a, STOMP_CONNECTED);
	assert_int_equal(a->c->timer_ms, 30000);   /* nothing to send, only to watch */
	fake_now += 29999;
	stomp_protocol.tick(a->s);
	assert_false(a->c->closing);
	assert_int_equal(a->c->out_len, a->rd);     /* no beats sent: 0 asked */
	fake_now += 1;
	stomp_protocol.tick(a->s);
	assert_true(a->c->closing);
	client_close(a);
}

static void test_no_heartbeat_in_10(void **st)
{
	(void)st;
	struct client *a = client_new(false, NULL);
	feed(a, "CONNECT\nheart-beat:1000,1000\n\n");
	expect(a, STOMP_CONNECTED);
	assert_int_equal(a->c->timer_ms, 0);
	fake_now += 3600000;
	stomp_protocol.tick(a->s);
	assert_false(a->c->closing);
	client_close(a);
}

static void test_connect_deadline(void **st)
{
	(void)st;
	struct client *a = client_new(true, "stomp");
	assert_int_equal(a->c->timer_ms, cfg.handshake_timeout_ms);
	fake_now += cfg.handshake_timeout_ms;
	stomp_protocol.tick(a->s);
	assert_true(a->c->closing);
	client_close(a);
}

/* ---- errors ---- */

static void test_malformed_frames(void **st)
{
	(void)st;
	const struct { const char *in; size_t len; const char *msg; } cases[] = {
		{ "BOGUS\n\n", 8, "unknown command" },
		{ "SEND\nno colon\n\n", 17, "colon" },
		{ "SEND\ndestination:/topic/a\ncontent-length:x\n\n", 45, "content-length" },
		{ "SEND\ndestination:/topic/a\ncontent-length:1\n\nab", 48, "NUL" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct client *a = connected("1.2");
		feedn(a, cases[i].in, cases[i].len);
		expect_error(a, cases[i].msg);
		assert_false(hdr(&a->f, "receipt-id"));
		client_close(a);
	}
}

static void test_limits(void **st)
{
	(void)st;
	cfg.stomp_max_body = 8;
	cfg.stomp_max_headers = 4;
	cfg.stomp_max_header_size = 64;
	cfg.stomp_max_subscriptions = 2;
	struct client *a = connected("1.2");
	send_to(a, "/topic/a", "123456789");
	expect_error(a, "body too large");
	client_close(a);
	a = connected("1.2");
	feed(a, "SEND\ndestination:/topic/a\na:1\nb:2\nc:3\nd:4\n\n");
	expect_error(a, "too many headers");
	client_close(a);
	a = connected("1.2");
	char fr[200];
	snprintf(fr, sizeof(fr), "SEND\ndestination:/topic/%080d\n\n", 0);
	feed(a, fr);
	expect_error(a, "too long");
	client_close(a);
	a = connected("1.2");
	subscribe(a, "1", "/topic/a", "auto");
	subscribe(a, "2", "/topic/b", "auto");
	feed(a, "SUBSCRIBE\nid:3\ndestination:/topic/c\n\n");
	expect_error(a, "too many subscriptions");
	client_close(a);
}

/* A fresh router whose queues hold at most n messages. */
static void queues_bounded_at(size_t n)
{
	router_free(router);
	cfg.queue_max_messages = n;
	env_up();
}

static void test_queue_full(void **st)
{
	(void)st;
	queues_bounded_at(2);
	struct client *b = connected("1.2");
	queue_fill(b, "/queue/full", 2);
	expect_nothing(b);
	feed(b, "SEND\ndestination:/queue/full\nreceipt:r3\n\nm3");
	expect_error(b, "queue full");
	assert_string_equal(hdr(&b->f, "receipt-id"), "r3");
	assert_int_equal(router_queue_depth(router, "full", 4), 2);
	client_close(b);
}

/* The router is asked before the store: a SEND it refuses, alone or in a
 * COMMIT, writes nothing. */
static void test_refused_send_writes_nothing(void **st)
{
	(void)st;
	queues_bounded_at(1);
	struct client *b = connected("1.2");
	queue_fill(b, "/queue/one", 1);
	uint64_t before = store_submitted(store);
	feed(b, "SEND\ndestination:/queue/one\n\nover");
	expect_error(b, "queue full");
	assert_int_equal(store_submitted(store), before);
	client_close(b);
	b = connected("1.2");
	feed(b, "BEGIN\ntransaction:t\n\n");
	feed(b, "SEND\ndestination:/queue/one\ntransaction:t\n\nover");
	feed(b, "COMMIT\ntransaction:t\n\n");
	expect_error(b, "queue full");
	assert_int_equal(store_submitted(store), before);
	client_close(b);
}

/* A transaction whose SENDs do not all fit applies none of them. */
static void test_commit_is_all_or_nothing(void **st)
{
	(void)st;
	queues_bounded_at(3);
	struct client *b = connected("1.2");
	queue_fill(b, "/queue/tx", 1);
	feed(b, "BEGIN\ntransaction:t\n\n");
	feed(b, "SEND\ndestination:/queue/other\ntransaction:t\n\nx");
	for (int i = 0; i < 3; i++)
		feed(b, "SEND\ndestination:/queue/tx\ntransaction:t\n\ny");
	expect_nothing(b);
	feed(b, "COMMIT\ntransaction:t\nreceipt:c\n\n");
	expect_error(b, "queue full");
	assert_string_equal(hdr(&b->f, "receipt-id"), "c");
	assert_int_equal(router_queue_depth(router, "tx", 2), 1);
	assert_int_equal(router_queue_depth(router, "other", 5), 0);
	client_close(b);
	/* two of them would have fitted */
	b = connected("1.2");
	feed(b, "BEGIN\ntransaction:t\n\n");
	for (int i = 0; i < 2; i++)
		feed(b, "SEND\ndestination:/queue/tx\ntransaction:t\n\ny");
	feed(b, "COMMIT\ntransaction:t\nreceipt:c\n\n");
	assert_string_equal(hdr(expect(b, STOMP_RECEIPT), "receipt-id"), "c");
	assert_int_equal(router_queue_depth(router, "tx", 2), 3);
	client_close(b);
}

static void test_destination_errors(void **st)
{
	(void)st;
	const struct { const char *frame; const char *msg; } cases[] = {
		{ "SEND\ndestination:/exchange/x\n\n", "unsupported destination" },
		{ "SEND\n\n", "missing destination" },
		{ "SEND\ndestination:/topic/\n\n", "invalid destination" },
		{ "SEND\ndestination:/topic/a.#\n\n", "invalid destination" },
		{ "SEND\ndestination:/queue/\n\n", "invalid destination" },
		{ "SUBSCRIBE\nid:1\ndestination:/amq/queue/x\n\n", "unsupported destination" },
		{ "SUBSCRIBE\nid:1\ndestination:/topic/a.b*\n\n", "invalid destination" },
		{ "SUBSCRIBE\nid:1\ndestination:/topic/a.+\n\n", "invalid destination" },
		{ "SUBSCRIBE\nid:1\ndestination:/topic/#.a\n\n", "invalid destination" },
		{ "SUBSCRIBE\ndestination:/topic/a\n\n", "missing id" },
		{ "SUBSCRIBE\nid:1\n\n", "missing destination" },
		{ "SUBSCRIBE\nid:1\ndestination:/topic/a\nack:sometimes\n\n", "ack mode" },
		{ "MESSAGE\ndestination:/topic/a\n\n", "unexpected frame" },
		{ "CONNECT\naccept-version:1.2\n\n", "already connected" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct client *a = connected("1.2");
		feed(a, cases[i].frame);
		expect_error(a, cases[i].msg);
		if (strstr(cases[i].msg, "unsupported"))
			assert_non_null(strstr((const char *)a->f.body, "/topic/"));
		client_close(a);
	}
	struct client *a = connected("1.2");
	subscribe(a, "1", "/topic/a", "auto");
	feed(a, "SUBSCRIBE\nid:1\ndestination:/topic/b\n\n");
	expect_error(a, "already in use");
	client_close(a);
}

static void test_disconnect_with_receipt(void **st)
{
	(void)st;
	struct client *a = connected("1.2");
	feed(a, "DISCONNECT\nreceipt:bye\n\n");
	assert_string_equal(hdr(expect(a, STOMP_RECEIPT), "receipt-id"), "bye");
	assert_true(a->c->closing);
	assert_int_equal(a->c->close_code, 1000);
	client_close(a);
}

static void test_shutdown(void **st)
{
	(void)st;
	struct client *a = connected("1.2");
	stomp_protocol.shutdown(a->s);
	const struct tframe *f = expect(a, STOMP_ERROR);
	assert_string_equal(hdr(f, "message"), "broker shutting down");
	client_close(a);
}

/* ---- durability: receipts after the commit, and a restart ---- */

static void pause_store(bool paused)
{
	store_paused = paused;
	store_test_pause(store, paused);
}

static void test_queue_receipt_waits_for_commit(void **st)
{
	(void)st;
	struct client *a = connected("1.2"), *b = connected("1.2");
	subscribe(a, "0", "/queue/d", "client-individual");
	pause_store(true);
	feed(b, "SEND\ndestination:/queue/d\nreceipt:q1\n\nkept");
	/* the consumer has it at once; the sender's RECEIPT waits for the disk */
	expect_body(expect(a, STOMP_MESSAGE), "kept");
	expect_nothing(b);
	/* a topic SEND writes nothing, but its receipt keeps frame order */
	feed(b, "SEND\ndestination:/topic/t\nreceipt:t1\n\nfree");
	expect_nothing(b);
	pause_store(false);
	store_flush_sync(store);
	assert_string_equal(hdr(expect(b, STOMP_RECEIPT), "receipt-id"), "q1");
	assert_string_equal(hdr(expect(b, STOMP_RECEIPT), "receipt-id"), "t1");
	/* nothing waits now: a topic receipt is immediate again */
	pause_store(true);
	feed(b, "SEND\ndestination:/topic/t\nreceipt:t2\n\nfree");
	assert_string_equal(hdr(expect(b, STOMP_RECEIPT), "receipt-id"), "t2");
	pause_store(false);
	client_close(a);
	client_close(b);
}

static void test_disconnect_receipt_after_pending(void **st)
{
	(void)st;
	struct client *b = connected("1.2");
	pause_store(true);
	feed(b, "SEND\ndestination:/queue/d\nreceipt:q1\n\nkept");
	feed(b, "DISCONNECT\nreceipt:bye\n\n");
	expect_nothing(b);
	assert_false(b->c->closing);
	pause_store(false);
	store_flush_sync(store);
	assert_string_equal(hdr(expect(b, STOMP_RECEIPT), "receipt-id"), "q1");
	assert_string_equal(hdr(expect(b, STOMP_RECEIPT), "receipt-id"), "bye");
	assert_true(b->c->closing);
	client_close(b);
}

static void test_failed_commit_is_an_error(void **st)
{
	(void)st;
	struct client *b = connected("1.2");
	store_test_fail_next_commit(store, STORE_ERR_IO);
	feed(b, "SEND\ndestination:/queue/d\nreceipt:q1\n\nlost?");
	const struct tframe *f = expect(b, STOMP_ERROR);
	assert_string_equal(hdr(f, "receipt-id"), "q1");
	assert_non_null(strstr(hdr(f, "message"), "not stored"));
	assert_true(b->c->closing);
	client_close(b);
}

/* Queues come back from the store in order; what a consumer had and did
 * not acknowledge comes back flagged redelivered, what it acked does not. */
static void test_restart_restores_queues(void **st)
{
	(void)st;
	struct client *b = connected("1.2");
	char id1[96], id2[96], id3[96];
	queue_fill(b, "/queue/r", 4);
	feed(b, "SEND\ndestination:/queue/r\ncontent-type:text/plain\nx-own:yes\n\nm5");
	client_close(b);
	/* a first restart, with two deliveries at a time: m1 and m2, then m3
	 * once m1 is acknowledged */
	router_free(router);
	cfg.stomp_max_unacked = 2;
	env_up();
	assert_int_equal(stomp_protocol.restore(&env), 0);
	struct client *a = connected("1.2");
	subscribe(a, "s", "/queue/r", "client-individual");
	take(a, "m1", id1, sizeof(id1));
	take(a, "m2", id2, sizeof(id2));
	expect_nothing(a);
	char fr[256];
	snprintf(fr, sizeof(fr), "ACK\nid:%s\n\n", id1);
	feed(a, fr);
	take(a, "m3", id3, sizeof(id3));
	/* the broker dies with m2 and m3 unacked: memory goes, the store
	 * stays (closing the session writes nothing) */
	client_close(a);
	router_free(router);
	router = NULL;
	cfg.stomp_max_unacked = 1000;
	env_up();
	assert_int_equal(stomp_protocol.restore(&env), 0);
	assert_int_equal(router_queue_depth(router, "r", 1), 4);
	struct client *c = connected("1.2");
	subscribe(c, "s", "/queue/r", "auto");
	for (int i = 2; i <= 4; i++) {
		char body[8];
		snprintf(body, sizeof(body), "m%d", i);
		const struct tframe *f = expect(c, STOMP_MESSAGE);
		expect_body(f, body);
		if (i < 4)
			assert_string_equal(hdr(f, "redelivered"), "true");
		else
			assert_null(hdr(f, "redelivered"));
	}
	const struct tframe *f = expect(c, STOMP_MESSAGE);
	expect_body(f, "m5");
	assert_null(hdr(f, "redelivered"));
	assert_string_equal(hdr(f, "content-type"), "text/plain");
	assert_string_equal(hdr(f, "x-own"), "yes");
	expect_nothing(c);
	client_close(c);
	/* auto mode deleted them: a second restart finds the queue empty */
	router_free(router);
	router = NULL;
	env_up();
	assert_int_equal(stomp_protocol.restore(&env), 0);
	assert_int_equal(router_queue_depth(router, "r", 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sniff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_receipt_waits_for_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_receipt_after_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_restores_queues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_unsupported_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_ws_subprotocol_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_ids_differ, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_instances_are_independent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_before_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_refusal_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_split_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_frames_in_one_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wildcards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cross_protocol_topic_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_builds_router_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping_between_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_body_over_websocket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsubscribe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader_drops_topic_not_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_auto_queue_consumer_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_auto_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_client_is_cumulative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_client_individual, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_unknown_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_twice_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nack_redelivers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nack_client_mode_cumulative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_competing_consumers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redelivery_after_disconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_consumers_same_session_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unacked_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_commit_and_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_dropped_on_disconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_grace_configurable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_heartbeat_in_10, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_send_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_is_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destination_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_with_receipt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
