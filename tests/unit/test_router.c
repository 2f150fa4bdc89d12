/* Unit tests for router.c / router_queue.c / message.c: name validation,
 * wildcard matching (checked both by router_match and through the trie),
 * grouping per owner, shared subscriptions, retained messages, queues, and
 * the 100,000-subscription sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "route/message.h"
#include "route/router.h"

#define S(x) x, strlen(x)

static struct message *msg(const char *topic, const char *body)
{
	struct message *m = message_new(S(topic), body, strlen(body));
	assert_non_null(m);
	return m;
}

/* ---- topic deliveries ---- */

struct owner {
	unsigned calls;
	size_t last_n;
	uintptr_t last_users[8];
	unsigned seen_pub;       /* the publish number of its last call */
};

#define LOG_MAX 64
static struct owner *call_log[LOG_MAX];
static size_t ncalls;
static unsigned pub_no;

static void deliver(void *owner, struct message *m, struct router_sub *const *subs, size_t n)
{
	struct owner *o = owner;

	assert_true(n >= 1);
	assert_non_null(m);
	/* One call per owner per publish. */
	assert_int_not_equal(o->seen_pub, pub_no);
	o->seen_pub = pub_no;
	o->calls++;
	o->last_n = n;
	for (size_t i = 0; i < n && i < 8; i++)
		o->last_users[i] = (uintptr_t)router_sub_user(subs[i]);
	if (ncalls < LOG_MAX)
		call_log[ncalls] = o;
	ncalls++;
}

static size_t publish(struct router *r, const char *topic)
{
	struct message *m = msg(topic, "x");
	size_t n;

	pub_no++;
	ncalls = 0;
	n = router_publish(r, m);
	assert_int_equal(m->refcnt, 1);   /* the router kept no reference */
	message_unref(m);
	assert_int_equal(n, ncalls);
	return n;
}

static struct router_sub *sub(struct router *r, const char *filter, struct owner *o, uintptr_t user)
{
	int err = 99;
	struct router_sub *s = router_subscribe(r, S(filter), o, deliver, (void *)user, &err);
	assert_non_null(s);
	assert_int_equal(err, ROUTER_OK);
	return s;
}

static bool has_user(const struct owner *o, uintptr_t u)
{
	for (size_t i = 0; i < o->last_n && i < 8; i++)
		if (o->last_users[i] == u)
			return true;
	return false;
}

static void test_message_basics(void **state)
{
	struct message *m = message_new(S("a/b"), "hi", 2), *c;
	struct message *m2 = message_new(S("a/b"), NULL, 0);

	assert_non_null(m);
	assert_non_null(m2);
	assert_true(m2->id > m->id);
	assert_string_equal(m->topic, "a/b");
	assert_int_equal(m->topic_len, 3);
	assert_memory_equal(m->payload, "hi", 2);
	assert_int_equal(m->payload_len, 2);
	assert_int_equal(m->refcnt, 1);
	assert_true(m->created_ms > 1500000000000ULL);
	assert_int_equal(m2->payload_len, 0);
	assert_int_equal(message_set_content_type(m, S("text/plain")), 0);
	assert_int_equal(message_add_prop(m, S("k1"), S("v1")), 0);
	assert_int_equal(message_add_prop(m, S("k2"), S("")), 0);
	m->qos = 1;
	c = message_clone(m);
	assert_non_null(c);
	assert_ptr_not_equal(c, m);
	assert_int_equal(c->refcnt, 1);
	assert_int_equal(c->id, m->id);
	assert_int_equal(c->qos, 1);
	assert_string_equal(c->content_type, "text/plain");
	assert_int_equal(c->nprops, 2);
	assert_string_equal(c->props[0].name, "k1");
	assert_string_equal(c->props[0].value, "v1");
	assert_string_equal(c->props[1].value, "");
	assert_ptr_not_equal(c->payload, m->payload);
	assert_ptr_equal(message_ref(m), m);
	assert_int_equal(m->refcnt, 2);
	message_unref(m);
	message_unref(m);
	message_unref(c);
	message_unref(m2);
	message_unref(NULL);
}

static void test_topic_valid(void **state)
{
	static const struct { const char *s; int ok; } t[] = {
		{ "a", 1 }, { "a/b", 1 }, { "/", 1 }, { "a//b", 1 }, { "/a", 1 },
		{ "a/", 1 }, { "$SYS/x", 1 }, { "a b/c", 1 },
		{ "", 0 }, { "+", 0 }, { "#", 0 }, { "a/+", 0 }, { "a/#", 0 },
		{ "a+", 0 }, { "a/b#", 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (router_topic_valid(S(t[i].s)) != t[i].ok)
			fail_msg("topic \"%s\": expected %d", t[i].s, t[i].ok);
	assert_int_equal(router_topic_valid("a\0b", 3), 0);
	assert_int_equal(router_topic_valid(NULL, 0), 0);
}

static void test_filter_valid(void **state)
{
	static const struct { const char *s; int ok; } t[] = {
		{ "a", 1 }, { "#", 1 }, { "+", 1 }, { "a/#", 1 }, { "a/+/b", 1 },
		{ "+/+", 1 }, { "/+", 1 }, { "+/", 1 }, { "a//#", 1 }, { "/", 1 },
		{ "$SYS/#", 1 }, { "+/#", 1 },
		{ "", 0 }, { "a#", 0 }, { "a/#/b", 0 }, { "#/", 0 }, { "a+", 0 },
		{ "a/+b", 0 }, { "++", 0 }, { "##", 0 }, { "a/b+/c", 0 }, { "#/#", 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (router_filter_valid(S(t[i].s)) != t[i].ok)
			fail_msg("filter \"%s\": expected %d", t[i].s, t[i].ok);
	assert_int_equal(router_filter_valid("a/\0", 3), 0);
}

static void test_invalid_subscribe(void **state)
{
	struct router *r = router_new(NULL);
	struct owner o = { 0 };
	int err = 0;

	assert_null(router_subscribe(r, S("a/#/b"), &o, deliver, NULL, &err));
	assert_int_equal(err, ROUTER_EINVAL);
	err = 0;
	assert_null(router_subscribe(r, S(""), &o, deliver, NULL, &err));
	assert_int_equal(err, ROUTER_EINVAL);
	err = 0;
	assert_null(router_subscribe_shared(r, S("g/x"), S("a"), &o, deliver, NULL, &err));
	assert_int_equal(err, ROUTER_EINVAL);
	err = 0;
	assert_null(router_subscribe_shared(r, S(""), S("a"), &o, deliver, NULL, &err));
	assert_int_equal(err, ROUTER_EINVAL);
	err = 0;
	assert_null(router_subscribe_shared(r, S("g"), S("a+"), &o, deliver, NULL, &err));
	assert_int_equal(err, ROUTER_EINVAL);
	/* A publish to a filter-looking topic reaches nobody. */
	sub(r, "#", &o, 1);
	assert_int_equal(publish(r, "a/+"), 0);
	router_free(r);
}

static const struct { const char *f, *t; int want; } match_table[] = {
	{ "a/b", "a/b", 1 }, { "a/b", "a/c", 0 }, { "a/b", "a", 0 },
	{ "a", "a/b", 0 }, { "a/b", "a/b/c", 0 },
	{ "+", "a", 1 }, { "+", "a/b", 0 }, { "+", "/", 0 }, { "+/+", "/", 1 },
	{ "+/+", "a/b", 1 }, { "+/+", "a", 0 }, { "+/+", "a/b/c", 0 },
	{ "a/+", "a/b", 1 }, { "a/+", "a", 0 }, { "a/+", "a/", 1 },
	{ "a/+/c", "a/b/c", 1 }, { "a/+/c", "a//c", 1 }, { "a/+/c", "a/b/d", 0 },
	{ "#", "a", 1 }, { "#", "a/b/c", 1 }, { "#", "/", 1 }, { "#", "/a", 1 },
	{ "a/#", "a", 1 }, { "a/#", "a/b", 1 }, { "a/#", "a/b/c", 1 },
	{ "a/#", "ab", 0 }, { "a/#", "b/a", 0 }, { "a/#", "a/", 1 },
	{ "a/b/#", "a", 0 }, { "+/#", "a", 1 }, { "+/#", "a/b/c", 1 },
	{ "a//b", "a//b", 1 }, { "a//b", "a/b", 0 }, { "a/+/b", "a//b", 1 },
	{ "/a", "/a", 1 }, { "/a", "a", 0 }, { "+/a", "/a", 1 }, { "/#", "/a/b", 1 },
	{ "/#", "a", 0 }, { "a/", "a/", 1 }, { "a/", "a", 0 }, { "a/+", "a//", 0 },
	{ "#", "$SYS/x", 0 }, { "+/x", "$SYS/x", 0 }, { "+", "$SYS", 0 },
	{ "+/#", "$SYS/x", 0 },
	{ "$SYS/#", "$SYS/x", 1 }, { "$SYS/+", "$SYS/x", 1 }, { "$SYS/#", "$SYS", 1 },
	{ "a/$x", "a/$x", 1 }, { "a/+", "a/$x", 1 }, { "a/#", "a/$x", 1 },
	{ "$x", "$x", 1 },
};

static void test_match_table(void **state)
{
	for (size_t i = 0; i < sizeof(match_table) / sizeof(match_table[0]); i++) {
		const char *f = match_table[i].f, *t = match_table[i].t;
		int want = match_table[i].want;
		struct router *r = router_new(NULL);
		struct owner o = { 0 };

		if (router_match(S(f), S(t)) != want)
			fail_msg("router_match(\"%s\", \"%s\") != %d", f, t, want);
		sub(r, f, &o, 1);
		if ((int)publish(r, t) != want)
			fail_msg("trie: filter \"%s\" topic \"%s\" expected %d", f, t, want);
		router_free(r);
	}
	assert_int_equal(router_match(S("a#"), S("a#")), 0);
}

/* All filters of the table in one router: each topic reaches exactly the
 * filters the table (and router_match) says. */
static void test_match_table_combined(void **state)
{
	enum { N = sizeof(match_table) / sizeof(match_table[0]) };
	struct router *r = router_new(NULL);
	struct owner o[N];

	memset(o, 0, sizeof(o));
	for (size_t i = 0; i < N; i++)
		sub(r, match_table[i].f, &o[i], i);
	for (size_t j = 0; j < N; j++) {
		const char *t = match_table[j].t;
		size_t want = 0;

		for (size_t i = 0; i < N; i++)
			o[i].calls = 0;
		size_t got = publish(r, t);
		for (size_t i = 0; i < N; i++) {
			int m = router_match(S(match_table[i].f), S(t));
			want += (size_t)m;
			if ((int)o[i].calls != m)
				fail_msg("topic \"%s\" filter \"%s\": %u calls", t,
					 match_table[i].f, o[i].calls);
		}
		assert_int_equal(got, want);
	}
	router_free(r);
}

static void test_one_call_per_owner(void **state)
{
	struct router *r = router_new(NULL);
	struct owner a = { 0 }, b = { 0 }, c = { 0 };
	struct router_stats st;

	sub(r, "a/b", &a, 1);
	sub(r, "a/+", &a, 2);
	sub(r, "#", &a, 3);
	sub(r, "x", &a, 4);
	sub(r, "a/b", &a, 5);   /* the same filter twice */
	sub(r, "a/b", &b, 6);
	sub(r, "a/c", &c, 7);
	assert_int_equal(publish(r, "a/b"), 2);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.last_n, 4);
	assert_true(has_user(&a, 1) && has_user(&a, 2) && has_user(&a, 3) && has_user(&a, 5));
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.last_n, 1);
	assert_true(has_user(&b, 6));
	assert_int_equal(c.calls, 0);
	assert_int_equal(publish(r, "x"), 1);
	assert_int_equal(a.calls, 2);
	assert_int_equal(a.last_n, 2);
	assert_true(has_user(&a, 3) && has_user(&a, 4));
	router_get_stats(r, &st);
	assert_int_equal(st.published, 2);
	assert_int_equal(st.delivered, 3);
	assert_int_equal(st.subscriptions, 7);
	router_free(r);
}

static void test_unsubscribe(void **state)
{
	struct router *r = router_new(NULL);
	struct owner a = { 0 }, b = { 0 };
	struct router_stats st;
	struct router_sub *s1 = sub(r, "a/b/c", &a, 1);
	struct router_sub *s2 = sub(r, "a/+/c", &a, 2);
	struct router_sub *s3 = sub(r, "a/b/c", &b, 3);

	assert_string_equal(router_sub_filter(s2), "a/+/c");
	assert_ptr_equal(router_sub_user(s3), (void *)3);
	router_unsubscribe(r, s1);
	assert_int_equal(publish(r, "a/b/c"), 2);
	assert_int_equal(a.last_n, 1);
	assert_true(has_user(&a, 2));
	router_unsubscribe(r, s2);
	assert_int_equal(publish(r, "a/b/c"), 1);
	assert_int_equal(a.calls, 1);
	router_unsubscribe(r, s3);
	assert_int_equal(publish(r, "a/b/c"), 0);
	router_get_stats(r, &st);
	assert_int_equal(st.subscriptions, 0);
	/* The pruned path can be used again. */
	sub(r, "a/b/c", &b, 4);
	assert_int_equal(publish(r, "a/b/c"), 1);
	router_unsubscribe(r, NULL);
	router_free(r);
}

/* Siblings coming and going: the children's table grows and shrinks and
 * every remaining child stays reachable. */
static void test_many_siblings_unsubscribe(void **state)
{
	enum { K = 5000 };
	struct router *r = router_new(NULL);
	struct owner *o = calloc(K, sizeof(*o));
	struct router_sub **subs = calloc(K, sizeof(*subs));
	struct router_stats st;
	char t[32];

	assert_non_null(o);
	assert_non_null(subs);
	for (int i = 0; i < K; i++) {
		snprintf(t, sizeof(t), "k/%d", i);
		subs[i] = sub(r, t, &o[i], (uintptr_t)i);
	}
	for (int i = 0; i < K; i++)
		if (i % 100)
			router_unsubscribe(r, subs[i]);
	router_get_stats(r, &st);
	assert_int_equal(st.subscriptions, K / 100);
	for (int i = 0; i < K; i += 7) {
		snprintf(t, sizeof(t), "k/%d", i);
		assert_int_equal(publish(r, t), i % 100 == 0);
	}
	for (int i = 0; i < K; i += 100) {
		snprintf(t, sizeof(t), "k/%d", i);
		assert_int_equal(publish(r, t), 1);
		assert_ptr_equal(call_log[0], &o[i]);
	}
	router_free(r);
	free(subs);
	free(o);
}

/* ---- shared subscriptions ---- */

static struct router_sub *share(struct router *r, const char *group, const char *filter,
				struct owner *o, uintptr_t user)
{
	int err = 99;
	struct router_sub *s = router_subscribe_shared(r, S(group), S(filter), o, deliver,
						       (void *)user, &err);
	assert_non_null(s);
	assert_int_equal(err, ROUTER_OK);
	return s;
}

static void test_shared_round_robin(void **state)
{
	struct router *r = router_new(NULL);
	struct owner m[3], h = { 0 }, plain = { 0 };
	struct router_sub *ms[3];

	memset(m, 0, sizeof(m));
	for (int i = 0; i < 3; i++)
		ms[i] = share(r, "g", "s/+", &m[i], 10 + i);
	share(r, "h", "s/+", &h, 20);
	sub(r, "s/+", &plain, 30);
	assert_string_equal(router_sub_filter(ms[0]), "$share/g/s/+");
	/* Each publish reaches one g member, the h member and the plain one. */
	for (int k = 0; k < 6; k++) {
		assert_int_equal(publish(r, "s/x"), 3);
		for (int i = 0; i < 3; i++)
			assert_int_equal(m[i].calls, (unsigned)(k / 3 + (i <= k % 3)));
	}
	assert_int_equal(h.calls, 6);
	assert_int_equal(plain.calls, 6);
	/* A member leaving: the others keep taking turns. */
	router_unsubscribe(r, ms[1]);
	for (int i = 0; i < 3; i++)
		m[i].calls = 0;
	for (int k = 0; k < 4; k++)
		assert_int_equal(publish(r, "s/y"), 3);
	assert_int_equal(m[0].calls, 2);
	assert_int_equal(m[1].calls, 0);
	assert_int_equal(m[2].calls, 2);
	/* Not matched: nobody in the group is charged a turn. */
	assert_int_equal(publish(r, "t/y"), 0);
	router_unsubscribe(r, ms[0]);
	router_unsubscribe(r, ms[2]);
	m[2].calls = 0;
	assert_int_equal(publish(r, "s/z"), 2);
	assert_int_equal(m[2].calls, 0);
	router_free(r);
}

static void test_shared_and_plain_same_owner(void **state)
{
	struct router *r = router_new(NULL);
	struct owner a = { 0 };

	share(r, "g", "q/#", &a, 1);
	sub(r, "q/1", &a, 2);
	assert_int_equal(publish(r, "q/1"), 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.last_n, 2);
	assert_true(has_user(&a, 1) && has_user(&a, 2));
	router_free(r);
}

/* ---- retained ---- */

#define RET_MAX 16
struct seen {
	size_t n;
	char topics[RET_MAX][32];
	char bodies[RET_MAX][32];
};

static void on_retained(void *arg, struct message *m)
{
	struct seen *s = arg;

	assert_true(s->n < RET_MAX);
	snprintf(s->topics[s->n], 32, "%s", m->topic);
	snprintf(s->bodies[s->n], 32, "%.*s", (int)m->payload_len, (const char *)m->payload);
	s->n++;
}

static bool seen_has(const struct seen *s, const char *topic, const char *body)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->topics[i], topic) && (!body || !strcmp(s->bodies[i], body)))
			return true;
	return false;
}

static void retain(struct router *r, const char *topic, const char *body)
{
	struct message *m = msg(topic, body);

	router_retain(r, m);
	message_unref(m);
}

static struct seen retained(struct router *r, const char *filter)
{
	struct seen s;

	memset(&s, 0, sizeof(s));
	router_retained_foreach(r, S(filter), on_retained, &s);
	return s;
}

static void test_retained(void **state)
{
	struct router *r = router_new(NULL);
	struct seen s;

	retain(r, "a", "1");
	retain(r, "a/b", "2");
	retain(r, "a/b/c", "3");
	retain(r, "a/c", "4");
	retain(r, "x//y", "5");
	retain(r, "$SYS/up", "6");
	retain(r, "/", "7");
	assert_int_equal(router_retained_count(r), 7);

	s = retained(r, "a/b");
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, "a/b", "2"));
	s = retained(r, "a/+");
	assert_int_equal(s.n, 2);
	assert_true(seen_has(&s, "a/b", NULL) && seen_has(&s, "a/c", NULL));
	s = retained(r, "a/#");
	assert_int_equal(s.n, 4);
	assert_true(seen_has(&s, "a", "1") && seen_has(&s, "a/b/c", "3"));
	s = retained(r, "#");
	assert_int_equal(s.n, 6);
	assert_false(seen_has(&s, "$SYS/up", NULL));
	s = retained(r, "+");
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, "a", NULL));
	s = retained(r, "+/+");
	assert_int_equal(s.n, 3);
	assert_true(seen_has(&s, "/", "7"));
	s = retained(r, "$SYS/#");
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, "$SYS/up", "6"));
	s = retained(r, "x/+/y");
	assert_int_equal(s.n, 1);
	s = retained(r, "+/+/c");
	assert_int_equal(s.n, 1);
	assert_true(seen_has(&s, "a/b/c", NULL));
	s = retained(r, "nothing/#");
	assert_int_equal(s.n, 0);
	s = retained(r, "a/#/b");   /* invalid filter */
	assert_int_equal(s.n, 0);

	/* Replace, then clear with an empty payload. */
	retain(r, "a/b", "22");
	assert_int_equal(router_retained_count(r), 7);
	s = retained(r, "a/b");
	assert_true(seen_has(&s, "a/b", "22"));
	retain(r, "a/b", "");
	assert_int_equal(router_retained_count(r), 6);
	s = retained(r, "a/b");
	assert_int_equal(s.n, 0);
	s = retained(r, "a/#");
	assert_int_equal(s.n, 3);
	retain(r, "never/set", "");
	assert_int_equal(router_retained_count(r), 6);
	retain(r, "a/b/c", "");
	s = retained(r, "a/#");
	assert_int_equal(s.n, 2);
	router_free(r);
}


/* A deliver function that closes a session: unsubscribing, its own and
 * others' subscriptions, from inside the publish. */
struct killer {
	struct owner o;
	struct router *r;
	struct router_sub *victims[4];
	size_t nvictims;
	struct owner *b;
	unsigned b_calls_before;
};

static void killer_deliver(void *owner, struct message *m, struct router_sub *const *subs,
			   size_t n)
{
	struct killer *k = owner;

	k->b_calls_before = k->b->calls;
	deliver(&k->o, m, subs, n);
	for (size_t i = 0; i < k->nvictims; i++)
		router_unsubscribe(k->r, k->victims[i]);
	k->nvictims = 0;
}

static void test_unsubscribe_inside_deliver(void **state)
{
	struct router *r = router_new(NULL);
	struct owner b = { 0 }, c = { 0 };
	struct killer k = { .r = r, .b = &b };
	struct router_stats st;
	int err;

	struct router_sub *ks = router_subscribe(r, S("#"), &k, killer_deliver, (void *)9, &err);
	assert_non_null(ks);
	struct router_sub *b1 = sub(r, "t", &b, 1);
	sub(r, "+", &b, 2);
	struct router_sub *c1 = sub(r, "t", &c, 3);
	k.victims[0] = b1;
	k.victims[1] = c1;
	k.victims[2] = ks;
	k.nvictims = 3;
	size_t got = publish(r, "t");
	assert_int_equal(k.o.calls, 1);
	assert_int_equal(b.calls, 1);
	if (k.b_calls_before == 1) {
		/* b came first and had both subscriptions. */
		assert_int_equal(b.last_n, 2);
	} else {
		/* b came after: only the subscription still alive. */
		assert_int_equal(b.last_n, 1);
		assert_true(has_user(&b, 2));
	}
	assert_true(c.calls <= 1);
	assert_int_equal(got, 2 + c.calls);
	router_get_stats(r, &st);
	assert_int_equal(st.subscriptions, 1);
	assert_int_equal(publish(r, "t"), 1);
	assert_int_equal(b.last_n, 1);
	assert_true(has_user(&b, 2));
	router_free(r);
}

/* Tens of thousands of levels: every walk is iterative. */
static void test_deep_levels(void **state)
{
	enum { LEVELS = 20000 };
	struct router *r = router_new(NULL);
	struct owner a = { 0 }, b = { 0 }, c = { 0 };
	char *t = malloc(2 * LEVELS);
	struct message *m;
	struct seen s;

	assert_non_null(t);
	for (size_t i = 0; i < LEVELS; i++) {
		t[2 * i] = 'a';
		t[2 * i + 1] = '/';
	}
	t[2 * LEVELS - 1] = '\0';
	int err;
	assert_non_null(router_subscribe(r, t, 2 * LEVELS - 1, &a, deliver, NULL, &err));
	sub(r, "#", &b, 0);
	sub(r, "a/+/#", &c, 0);
	assert_int_equal(router_match(t, 2 * LEVELS - 1, t, 2 * LEVELS - 1), 1);
	assert_int_equal(publish(r, t), 3);
	m = message_new(t, 2 * LEVELS - 1, "v", 1);
	router_retain(r, m);
	message_unref(m);
	memset(&s, 0, sizeof(s));
	router_retained_foreach(r, S("#"), on_retained, &s);
	assert_int_equal(s.n, 1);
	memset(&s, 0, sizeof(s));
	router_retained_foreach(r, t, 2 * LEVELS - 1, on_retained, &s);
	assert_int_equal(s.n, 1);
	router_free(r);
	free(t);
}

/* ---- queues ---- */

#define QLOG_MAX 64
struct qowner {
	struct router *r;
	struct router_consumer *c;
	int ack_in_cb;          /* ack every delivery from inside the callback */
	int nack_once_in_cb;    /* nack the first non-redelivered message */
	int cancel_after;       /* cancel itself from the callback after n */
	unsigned got;
	uint64_t tags[QLOG_MAX];
};

struct qlog {
	struct qowner *o;
	char body[16];
	bool redelivered;
	uint64_t tag;
};
static struct qlog qlog[QLOG_MAX];
static size_t nq;

static void on_queue(void *owner, struct router_consumer *c, struct message *m, uint64_t tag)
{
	struct qowner *o = owner;

	assert_ptr_equal(router_consumer_user(c), o);
	assert_true(nq < QLOG_MAX);
	qlog[nq].o = o;
	snprintf(qlog[nq].body, sizeof(qlog[nq].body), "%.*s", (int)m->payload_len,
		 (const char *)m->payload);
	qlog[nq].redelivered = m->redelivered;
	qlog[nq].tag = tag;
	nq++;
	o->tags[o->got++ % QLOG_MAX] = tag;
	if (o->nack_once_in_cb && !m->redelivered) {
		o->nack_once_in_cb = 0;
		assert_int_equal(router_queue_nack(o->r, c, tag), ROUTER_OK);
		return;
	}
	if (o->ack_in_cb)
		assert_int_equal(router_queue_ack(o->r, c, tag), ROUTER_OK);
	if (o->cancel_after && o->got == (unsigned)o->cancel_after) {
		o->c = NULL;
		router_queue_cancel(o->r, c);
	}
}

static struct router_consumer *consume(struct router *r, const char *q, struct qowner *o,
				       unsigned max_unacked, bool auto_ack)
{
	int err = 99;

	o->r = r;
	o->c = router_queue_consume(r, S(q), o, on_queue, o, max_unacked, auto_ack, &err);
	assert_non_null(o->c);
	assert_int_equal(err, ROUTER_OK);
	return o->c;
}

static int qsend(struct router *r, const char *q, const char *body)
{
	struct message *m = msg("ignored", body);
	int rc = router_queue_send(r, S(q), m);

	message_unref(m);
	return rc;
}

static void expect(size_t i, struct qowner *o, const char *body, bool redelivered)
{
	assert_true(i < nq);
	if (qlog[i].o != o || strcmp(qlog[i].body, body) || qlog[i].redelivered != redelivered)
		fail_msg("delivery %zu: got \"%s\" redelivered=%d, expected \"%s\" %d (owner %s)",
			 i, qlog[i].body, qlog[i].redelivered, body, redelivered,
			 qlog[i].o == o ? "same" : "differs");
}

static void test_queue_fifo(void **state)
{
	struct router *r = router_new(NULL);
	struct qowner a = { 0 };
	struct router_stats st;

	nq = 0;
	assert_int_equal(router_queue_depth(r, S("q")), 0);
	assert_int_equal(qsend(r, "q", "m0"), ROUTER_OK);
	assert_int_equal(qsend(r, "q", "m1"), ROUTER_OK);
	assert_int_equal(qsend(r, "q", "m2"), ROUTER_OK);
	assert_int_equal(router_queue_depth(r, S("q")), 3);
	assert_int_equal(router_queue_depth(r, S("other")), 0);
	consume(r, "q", &a, 0, false);
	/* Waiting messages are handed out before consume returns. */
	assert_int_equal(nq, 3);
	expect(0, &a, "m0", false);
	expect(1, &a, "m1", false);
	expect(2, &a, "m2", false);
	assert_int_equal(router_queue_depth(r, S("q")), 0);
	assert_true(qlog[0].tag != qlog[1].tag && qlog[1].tag != qlog[2].tag);
	qsend(r, "q", "m3");
	expect(3, &a, "m3", false);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(router_queue_ack(r, a.c, qlog[i].tag), ROUTER_OK);
	/* Acked for good: a second ack of the same tag is unknown. */
	assert_int_equal(router_queue_ack(r, a.c, qlog[0].tag), ROUTER_EINVAL);
	assert_int_equal(router_queue_ack(r, a.c, 987654), ROUTER_EINVAL);
	router_get_stats(r, &st);
	assert_int_equal(st.queues, 1);
	router_queue_cancel(r, a.c);
	assert_int_equal(qsend(r, "", "x"), ROUTER_EINVAL);
	router_free(r);
}

static void test_queue_round_robin(void **state)
{
	struct router *r = router_new(NULL);
	struct qowner a = { 0 }, b = { 0 }, c = { 0 };
	char body[8];

	nq = 0;
	consume(r, "q", &a, 0, true);
	consume(r, "q", &b, 0, true);
	consume(r, "q", &c, 0, true);
	for (int i = 0; i < 9; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		assert_int_equal(qsend(r, "q", body), ROUTER_OK);
	}
	assert_int_equal(nq, 9);
	struct qowner *order[3] = { &a, &b, &c };
	for (int i = 0; i < 9; i++) {
		snprintf(body, sizeof(body), "m%d", i);
		expect((size_t)i, order[i % 3], body, false);
	}
	/* Auto-ack: nothing to acknowledge. */
	assert_int_equal(router_queue_ack(r, a.c, qlog[0].tag), ROUTER_EINVAL);
	router_queue_cancel(r, b.c);
	qsend(r, "q", "x0");
	qsend(r, "q", "x1");
	qsend(r, "q", "x2");
	assert_int_equal(nq, 12);
	assert_true(qlog[9].o != &b && qlog[10].o != &b && qlog[11].o != &b);
	assert_true(qlog[9].o != qlog[10].o && qlog[10].o != qlog[11].o);
	router_free(r);
}

static void test_queue_max_unacked(void **state)
{
	struct router *r = router_new(NULL);
	struct qowner a = { 0 }, b = { 0 };

	nq = 0;
	consume(r, "q", &a, 2, false);
	consume(r, "q", &b, 1, false);
	for (int i = 0; i < 6; i++) {
		char body[8];
		snprintf(body, sizeof(body), "m%d", i);
		qsend(r, "q", body);
	}
	/* a takes 2, b takes 1; the rest waits. */
	assert_int_equal(nq, 3);
	assert_int_equal(a.got, 2);
	assert_int_equal(b.got, 1);
	assert_int_equal(router_queue_depth(r, S("q")), 3);
	/* A tag acked by the wrong consumer is refused. */
	assert_int_equal(router_queue_ack(r, b.c, a.tags[0]), ROUTER_EINVAL);
	assert_int_equal(router_queue_ack(r, b.c, b.tags[0]), ROUTER_OK);
	assert_int_equal(nq, 4);
	expect(3, &b, "m3", false);
	assert_int_equal(router_queue_ack(r, a.c, a.tags[1]), ROUTER_OK);
	assert_int_equal(nq, 5);
	expect(4, &a, "m4", false);
	assert_int_equal(router_queue_depth(r, S("q")), 1);
	assert_int_equal(router_queue_ack(r, a.c, a.tags[0]), ROUTER_OK);
	expect(5, &a, "m5", false);
	assert_int_equal(router_queue_depth(r, S("q")), 0);
	router_free(r);   /* with unacked deliveries outstanding */
}

static void test_queue_nack(void **state)
{
	struct router *r = router_new(NULL);
	struct qowner a = { 0 }, b = { 0 };
	struct message *m0 = msg("t", "m0");

	nq = 0;
	assert_int_equal(router_queue_send(r, S("q"), m0), ROUTER_OK);
	qsend(r, "q", "m1");
	qsend(r, "q", "m2");
	consume(r, "q", &a, 1, false);
	expect(0, &a, "m0", false);
	/* Nack: back at the front, ahead of m1, flagged; round-robin with a
	 * single consumer gives it to a again. */
	assert_int_equal(router_queue_nack(r, a.c, a.tags[0]), ROUTER_OK);
	expect(1, &a, "m0", true);
	/* The sender's own message was not changed under it. */
	assert_false(m0->redelivered);
	assert_int_equal(router_queue_nack(r, a.c, a.tags[0]), ROUTER_EINVAL);
	consume(r, "q", &b, 1, false);
	expect(2, &b, "m1", false);
	assert_int_equal(router_queue_nack(r, b.c, b.tags[0]), ROUTER_OK);
	/* b has room again, but a has none: m1 goes to b, still first. */
	expect(3, &b, "m1", true);
	assert_int_equal(router_queue_ack(r, a.c, a.tags[1]), ROUTER_OK);
	expect(4, &a, "m2", false);
	assert_int_equal(nq, 5);
	message_unref(m0);
	router_free(r);
}

static void test_queue_cancel_returns_in_order(void **state)
{
	struct router *r = router_new(NULL);
	struct qowner a = { 0 }, b = { 0 };

	nq = 0;
	consume(r, "q", &a, 3, false);
	for (int i = 0; i < 5; i++) {
		char body[8];
		snprintf(body, sizeof(body), "m%d", i);
		qsend(r, "q", body);
	}
	assert_int_equal(a.got, 3);
	assert_int_equal(router_queue_ack(r, a.c, a.tags[1]), ROUTER_OK);   /* m1 done */
	expect(3, &a, "m3", false);
	/* a holds m0, m2, m3 unacked; m4 waits. */
	assert_int_equal(router_queue_depth(r, S("q")), 1);
	router_queue_cancel(r, a.c);
	assert_int_equal(router_queue_depth(r, S("q")), 4);
	consume(r, "q", &b, 0, false);
	assert_int_equal(nq, 8);
	expect(4, &b, "m0", true);
	expect(5, &b, "m2", true);
	expect(6, &b, "m3", true);
	expect(7, &b, "m4", false);
	router_free(r);
}

static void test_queue_cancel_redistributes(void **state)
{
	struct router *r = router_new(NULL);
	struct qowner a = { 0 }, b = { 0 };

	nq = 0;
	consume(r, "q", &a, 0, false);
	consume(r, "q", &b, 0, false);
	qsend(r, "q", "m0");
	qsend(r, "q", "m1");
	qsend(r, "q", "m2");
	expect(0, &a, "m0", false);
	expect(1, &b, "m1", false);
	expect(2, &a, "m2", false);
	router_queue_cancel(r, a.c);
	assert_int_equal(nq, 5);
	expect(3, &b, "m0", true);
	expect(4, &b, "m2", true);
	router_free(r);
}

static void test_queue_bound(void **state)
{
	struct router_limits lim = { .queue_max_messages = 3 };
	struct router *r = router_new(&lim);
	struct qowner a = { 0 };

	nq = 0;
	assert_int_equal(qsend(r, "q", "m0"), ROUTER_OK);
	assert_int_equal(qsend(r, "q", "m1"), ROUTER_OK);
	assert_int_equal(qsend(r, "q", "m2"), ROUTER_OK);
	assert_int_equal(qsend(r, "q", "m3"), ROUTER_EFULL);
	assert_int_equal(router_queue_depth(r, S("q")), 3);
	/* Another queue has its own bound. */
	assert_int_equal(qsend(r, "q2", "z"), ROUTER_OK);
	consume(r, "q", &a, 2, false);
	assert_int_equal(nq, 2);
	/* Handed-out messages no longer count against the bound. */
	assert_int_equal(qsend(r, "q", "m4"), ROUTER_OK);
	assert_int_equal(qsend(r, "q", "m5"), ROUTER_OK);
	assert_int_equal(qsend(r, "q", "m6"), ROUTER_EFULL);
	/* Nothing lost: every accepted message arrives, in order. */
	a.ack_in_cb = 1;
	assert_int_equal(router_queue_ack(r, a.c, a.tags[0]), ROUTER_OK);
	assert_int_equal(router_queue_ack(r, a.c, a.tags[1]), ROUTER_OK);
	const char *want[] = { "m0", "m1", "m2", "m4", "m5" };
	assert_int_equal(nq, 5);
	for (size_t i = 0; i < 5; i++)
		expect(i, &a, want[i], false);
	assert_int_equal(router_queue_depth(r, S("q")), 0);
	router_free(r);
}

/* A reservation answers as the send would, changes nothing visible, and
 * makes the sends it covers succeed. */
static void test_queue_reserve(void **state)
{
	struct router_limits lim = { .queue_max_messages = 3 };
	struct router *r = router_new(&lim);
	struct qowner a = { .ack_in_cb = 1 };
	struct router_stats st;

	(void)state;
	nq = 0;
	assert_int_equal(router_queue_reserve(r, "", 0, 1), ROUTER_EINVAL);
	/* more than the bound: refused, and no queue is left behind */
	assert_int_equal(router_queue_reserve(r, S("q"), 4), ROUTER_EFULL);
	router_get_stats(r, &st);
	assert_int_equal(st.queues, 0);
	assert_int_equal(router_queue_reserve(r, S("q"), 3), ROUTER_OK);
	assert_int_equal(router_queue_depth(r, S("q")), 0);
	assert_int_equal(qsend(r, "q", "m0"), ROUTER_OK);
	assert_int_equal(qsend(r, "q", "m1"), ROUTER_OK);
	assert_int_equal(router_queue_reserve(r, S("q"), 2), ROUTER_EFULL);
	assert_int_equal(router_queue_depth(r, S("q")), 2);
	assert_int_equal(router_queue_reserve(r, S("q"), 1), ROUTER_OK);
	assert_int_equal(qsend(r, "q", "m2"), ROUTER_OK);
	assert_int_equal(router_queue_reserve(r, S("q"), 1), ROUTER_EFULL);
	assert_int_equal(qsend(r, "q", "m3"), ROUTER_EFULL);
	assert_int_equal(router_queue_reserve(r, S("q"), 0), ROUTER_OK);
	/* what is handed out makes room again */
	consume(r, "q", &a, 0, false);
	assert_int_equal(nq, 3);
	assert_int_equal(router_queue_reserve(r, S("q"), 3), ROUTER_OK);
	router_free(r);
}

static void test_queue_ack_inside_callback(void **state)
{
	struct router *r = router_new(NULL);
	struct qowner a = { .ack_in_cb = 1 }, b = { .ack_in_cb = 1 };

	nq = 0;
	for (int i = 0; i < 5; i++) {
		char body[8];
		snprintf(body, sizeof(body), "m%d", i);
		qsend(r, "q", body);
	}
	/* max_unacked 1 and acks from inside: all flow during consume. */
	consume(r, "q", &a, 1, false);
	assert_int_equal(nq, 5);
	consume(r, "q", &b, 1, false);
	for (int i = 0; i < 4; i++)
		qsend(r, "q", "n");
	assert_int_equal(nq, 9);
	assert_int_equal(a.got, 7);
	assert_int_equal(b.got, 2);
	router_free(r);
}

static void test_queue_nack_and_cancel_inside_callback(void **state)
{
	struct router *r = router_new(NULL);
	struct qowner a = { .nack_once_in_cb = 1, .ack_in_cb = 1 };
	struct qowner b = { .cancel_after = 2 }, c = { 0 };

	nq = 0;
	qsend(r, "q", "m0");
	qsend(r, "q", "m1");
	consume(r, "q", &a, 1, false);
	expect(0, &a, "m0", false);
	expect(1, &a, "m0", true);
	expect(2, &a, "m1", false);
	router_queue_cancel(r, a.c);

	/* b cancels itself inside its second delivery; both its unacked
	 * messages go on to c, in order. */
	nq = 0;
	consume(r, "q", &b, 0, false);
	consume(r, "q", &c, 0, false);
	qsend(r, "q", "x0");
	qsend(r, "q", "x1");
	qsend(r, "q", "x2");
	qsend(r, "q", "x3");
	expect(0, &b, "x0", false);
	expect(1, &c, "x1", false);
	expect(2, &b, "x2", false);
	expect(3, &c, "x0", true);
	expect(4, &c, "x2", true);
	expect(5, &c, "x3", false);
	assert_int_equal(nq, 6);
	router_free(r);
}

static void test_queue_freed_when_unused(void **state)
{
	struct router *r = router_new(NULL);
	struct qowner a = { .ack_in_cb = 1 };
	struct router_stats st;

	qsend(r, "q1", "m");
	qsend(r, "q2", "m");
	router_get_stats(r, &st);
	assert_int_equal(st.queues, 2);
	consume(r, "q1", &a, 0, false);
	router_queue_cancel(r, a.c);
	router_get_stats(r, &st);
	assert_int_equal(st.queues, 1);
	assert_int_equal(router_queue_depth(r, S("q2")), 1);
	router_free(r);
}

static uint64_t big_tags[2000];
static size_t nbig;

static void on_big(void *owner, struct router_consumer *c, struct message *m, uint64_t tag)
{
	char want[16];

	snprintf(want, sizeof(want), "b%zu", nbig);
	assert_int_equal(m->payload_len, strlen(want));
	assert_memory_equal(m->payload, want, m->payload_len);
	big_tags[nbig++] = tag;
}

/* Many outstanding deliveries acked out of order (the tag table grows and
 * shrinks); each tag acks exactly once. */
static void test_queue_many_unacked(void **state)
{
	struct router *r = router_new(NULL);
	struct router_consumer *c;
	char body[16];
	int err;

	nbig = 0;
	c = router_queue_consume(r, S("big"), NULL, on_big, NULL, 0, false, &err);
	assert_non_null(c);
	for (size_t i = 0; i < 2000; i++) {
		snprintf(body, sizeof(body), "b%zu", i);
		assert_int_equal(qsend(r, "big", body), ROUTER_OK);
	}
	assert_int_equal(nbig, 2000);
	for (size_t i = 0; i < 2000; i += 2)
		assert_int_equal(router_queue_ack(r, c, big_tags[1999 - i]), ROUTER_OK);
	for (size_t i = 1; i < 2000; i += 2)
		assert_int_equal(router_queue_ack(r, c, big_tags[1999 - i]), ROUTER_OK);
	for (size_t i = 0; i < 2000; i += 97)
		assert_int_equal(router_queue_ack(r, c, big_tags[i]), ROUTER_EINVAL);
	router_queue_cancel(r, c);
	assert_int_equal(router_queue_depth(r, S("big")), 0);
	router_free(r);
}

/* ---- sizes ---- */

#define BIG 100000

static void test_100k_distinct_topics(void **state)
{
	struct router *r = router_new(NULL);
	struct owner *o = calloc(BIG, sizeof(*o));
	struct owner w_plus = { 0 }, w_hash = { 0 }, w_five = { 0 }, w_three = { 0 };
	struct owner w_sys = { 0 };
	struct router_stats st;
	char t[64];

	assert_non_null(o);
	for (int i = 0; i < BIG; i++) {
		snprintf(t, sizeof(t), "dev/%d/temp", i);
		sub(r, t, &o[i], (uintptr_t)i);
	}
	sub(r, "dev/+/temp", &w_plus, 1);
	sub(r, "dev/#", &w_hash, 2);
	sub(r, "dev/5/#", &w_five, 3);
	sub(r, "+/+/+", &w_three, 4);
	sub(r, "$SYS/#", &w_sys, 5);
	router_get_stats(r, &st);
	assert_int_equal(st.subscriptions, BIG + 5);

	unsigned seed = 12345;
	for (int k = 0; k < 2000; k++) {
		seed = seed * 1103515245u + 12345u;
		int i = (int)((seed >> 8) % BIG);
		if (k == 0)
			i = 5;
		snprintf(t, sizeof(t), "dev/%d/temp", i);
		unsigned before = o[i].calls;
		size_t want = 4 + (i == 5);
		assert_int_equal(publish(r, t), want);
		assert_int_equal(o[i].calls, before + 1);
		/* Exactly the expected owners: the log holds each call. */
		for (size_t c = 0; c < ncalls; c++) {
			struct owner *p = call_log[c];
			if (p != &o[i] && p != &w_plus && p != &w_hash && p != &w_three &&
			    !(i == 5 && p == &w_five))
				fail_msg("topic %s reached an unexpected owner", t);
		}
	}
	assert_int_equal(w_plus.calls, 2000);
	assert_int_equal(w_hash.calls, 2000);
	assert_int_equal(w_three.calls, 2000);
	assert_int_equal(w_sys.calls, 0);
	/* Topics with no exact subscription reach the wildcards only. */
	assert_int_equal(publish(r, "dev/100000/temp"), 3);
	assert_int_equal(publish(r, "dev/7/humidity"), 2);
	assert_int_equal(publish(r, "dev/7"), 1);
	assert_true(call_log[0] == &w_hash);
	assert_int_equal(publish(r, "$SYS/dev/7"), 1);
	assert_true(call_log[0] == &w_sys);
	size_t total = 0;
	for (int i = 0; i < BIG; i++)
		total += o[i].calls;
	assert_int_equal(total, 2000);
	router_free(r);
	free(o);
}

static void test_100k_subscriptions_one_topic(void **state)
{
	struct router *r = router_new(NULL);
	struct owner *o = calloc(BIG, sizeof(*o));
	struct router_sub **subs = calloc(BIG, sizeof(*subs));
	struct owner many = { 0 };
	struct router_stats st;

	assert_non_null(o);
	assert_non_null(subs);
	for (int i = 0; i < BIG; i++)
		subs[i] = sub(r, (i % 2) ? "news/today" : "news/+", &o[i], (uintptr_t)i);
	for (int i = 0; i < 1000; i++)
		sub(r, "news/#", &many, (uintptr_t)i);
	assert_int_equal(publish(r, "news/today"), BIG + 1);
	for (int i = 0; i < BIG; i++)
		if (o[i].calls != 1 || o[i].last_n != 1 || o[i].last_users[0] != (uintptr_t)i)
			fail_msg("owner %d: %u calls", i, o[i].calls);
	assert_int_equal(many.calls, 1);
	assert_int_equal(many.last_n, 1000);
	/* Only the "news/+" half for another topic. */
	assert_int_equal(publish(r, "news/other"), BIG / 2 + 1);
	for (int i = 0; i < BIG; i++)
		assert_int_equal(o[i].calls, (i % 2) ? 1u : 2u);
	for (int i = 0; i < BIG; i += 2)
		router_unsubscribe(r, subs[i]);
	router_get_stats(r, &st);
	assert_int_equal(st.subscriptions, BIG / 2 + 1000);
	assert_int_equal(publish(r, "news/other"), 1);
	router_free(r);
	free(subs);
	free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_basics),
		cmocka_unit_test(test_topic_valid),
		cmocka_unit_test(test_filter_valid),
		cmocka_unit_test(test_invalid_subscribe),
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_match_table_combined),
		cmocka_unit_test(test_one_call_per_owner),
		cmocka_unit_test(test_unsubscribe),
		cmocka_unit_test(test_many_siblings_unsubscribe),
		cmocka_unit_test(test_shared_round_robin),
		cmocka_unit_test(test_shared_and_plain_same_owner),
		cmocka_unit_test(test_retained),
		cmocka_unit_test(test_unsubscribe_inside_deliver),
		cmocka_unit_test(test_deep_levels),
		cmocka_unit_test(test_queue_fifo),
		cmocka_unit_test(test_queue_round_robin),
		cmocka_unit_test(test_queue_max_unacked),
		cmocka_unit_test(test_queue_nack),
		cmocka_unit_test(test_queue_cancel_returns_in_order),
		cmocka_unit_test(test_queue_cancel_redistributes),
		cmocka_unit_test(test_queue_bound),
		cmocka_unit_test(test_queue_reserve),
		cmocka_unit_test(test_queue_ack_inside_callback),
		cmocka_unit_test(test_queue_nack_and_cancel_inside_callback),
		cmocka_unit_test(test_queue_freed_when_unused),
		cmocka_unit_test(test_queue_many_unacked),
		cmocka_unit_test(test_100k_distinct_topics),
		cmocka_unit_test(test_100k_subscriptions_one_topic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
