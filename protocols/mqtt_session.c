/* mqtt_session: MQTT Session state, the table of sessions by client id, and
 * the protocol instance that owns the table. */
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "grow.h"
#include "config.h"
#include "log.h"
#include "mqtt.h"
#include "mqtt_codec.h"
#include "mqtt_session.h"
#include "mqtt_store.h"
#include "protocol.h"
#include "route/router.h"

/* ---- the instance ---- */

struct mqtt_broker *mqtt_broker_new(const struct proto_env *env)
{
	struct mqtt_broker *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->router = env->router;
	b->cfg = env->cfg;
	b->store = env->store;
	b->acl = env->acl ? env->acl : &b->no_acl;
	return b;
}

/* ---- table ---- */

/* FNV-1a. Client ids are chosen by clients; the table only ever holds one
 * session per id, so a flood of colliding ids costs its sender. */
static size_t hash_id(const char *id)
{
	uint64_t h = 1469598103934665603ull;

	while (*id) {
		h ^= (uint8_t)*id++;
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 32));
}

static int table_grow(struct mqtt_broker *b)
{
	size_t cap = b->table_cap ? b->table_cap * 2 : 64, i;
	struct mqtt_sess **t = calloc(cap, sizeof(*t));

	if (!t)
		return -1;
	for (i = 0; i < b->table_cap; i++) {
		struct mqtt_sess *s = b->table[i], *next;

		for (; s; s = next) {
			size_t k = hash_id(s->client_id) & (cap - 1);

			next = s->hnext;
			s->hnext = t[k];
			t[k] = s;
		}
	}
	free(b->table);
	b->table = t;
	b->table_cap = cap;
	return 0;
}

struct mqtt_sess *mqtt_sess_find(struct mqtt_broker *b, const char *client_id)
{
	struct mqtt_sess *s;

	if (!b->table_cap)
		return NULL;
	for (s = b->table[hash_id(client_id) & (b->table_cap - 1)]; s; s = s->hnext)
		if (!strcmp(s->client_id, client_id))
			return s;
	return NULL;
}

static void table_remove(struct mqtt_sess *s)
{
	struct mqtt_broker *b = s->b;
	struct mqtt_sess **pp = &b->table[hash_id(s->client_id) & (b->table_cap - 1)];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			b->table_count--;
			return;
		}
}

static void away_remove(struct mqtt_sess *s)
{
	struct mqtt_broker *b = s->b;

	if (!s->aprev && b->away_head != s)
		return;
	if (s->aprev)
		s->aprev->anext = s->anext;
	else
		b->away_head = s->anext;
	if (s->anext)
		s->anext->aprev = s->aprev;
	else
		b->away_tail = s->aprev;
	s->aprev = s->anext = NULL;
}

static void away_append(struct mqtt_sess *s)
{
	struct mqtt_broker *b = s->b;

	s->aprev = b->away_tail;
	s->anext = NULL;
	if (b->away_tail)
		b->away_tail->anext = s;
	else
		b->away_head = s;
	b->away_tail = s;
}

size_t mqtt_sess_count(const struct mqtt_broker *b)
{
	return b->table_count;
}

struct mqtt_sess *mqtt_sess_new(struct mqtt_broker *b, const char *client_id, bool clean)
{
	struct mqtt_sess *s;
	size_t k;

	if (b->table_count >= b->table_cap && table_grow(b) < 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->client_id = strdup(client_id))) {
		free(s);
		return NULL;
	}
	s->clean = clean;
	s->persist = !clean && b->store;
	s->b = b;
	s->level = MQTT_LEVEL_311;
	mqtt_outq_init(&s->out);
	k = hash_id(client_id) & (b->table_cap - 1);
	s->hnext = b->table[k];
	b->table[k] = s;
	b->table_count++;
	return s;
}

static void sess_destroy(struct mqtt_sess *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->nsubs; i++) {
		router_unsubscribe(s->b->router, s->subs[i]->rsub);
		free(s->subs[i]->filter);
		free(s->subs[i]);
	}
	mqtt_outq_clear(&s->out);
	away_remove(s);
	table_remove(s);
	free(s->subs);
	free(s->qos2_in);
	free(s->client_id);
	free(s->login);
	free(s);
}

void mqtt_sess_free(struct mqtt_sess *s)
{
	if (!s)
		return;
	mqtt_persist_forget(s);
	sess_destroy(s);
}

void mqtt_sess_expire(struct mqtt_broker *b)
{
	uint64_t now = clock_now_ms();

	while (b->away_head && b->away_head->expires_ms && b->away_head->expires_ms <= now) {
		log_info(NULL, b->away_head->client_id, "persistent session expired");
		mqtt_sess_free(b->away_head);
	}
}

void mqtt_broker_free(struct mqtt_broker *b)
{
	size_t i;

	if (!b)
		return;
	for (i = 0; i < b->table_cap; i++)
		while (b->table[i])
			sess_destroy(b->table[i]);
	free(b->table);
	mqtt_scratch_free(&b->scratch);
	free(b);
}

void mqtt_get_stats(const struct proto_env *env, struct mqtt_stats *out)
{
	const struct mqtt_broker *b = env->state;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->dropped = b->dropped;
	out->acl_denied = b->acl_denied;
	out->sessions = b->table_count;
	for (i = 0; i < b->table_cap; i++)
		for (struct mqtt_sess *s = b->table[i]; s; s = s->hnext) {
			out->away += !s->conn;
			out->queued += s->out.len;
			out->inflight += s->out.ninflight;
		}
}

/* ---- attach / detach ---- */

void mqtt_sess_attach(struct mqtt_sess *s, struct conn *c, void *owner, uint8_t level)
{
	away_remove(s);
	s->expires_ms = 0;
	s->conn = c;
	s->owner = owner;
	s->level = level;
	mqtt_outq_resume(s);
}

void mqtt_sess_detach(struct mqtt_sess *s)
{
	uint32_t expiry = s->b->cfg->mqtt_session_expiry;

	s->conn = NULL;
	s->owner = NULL;
	if (s->clean)
		return;
	s->expires_ms = expiry ? clock_now_ms() + (uint64_t)expiry * 1000 : 0;
	mqtt_persist_session(s);   /* its absence (and expiry) starts now */
	/* Expiring sessions stay in order of their deadline only if every
	 * one has one; a session kept forever goes nowhere near the head. */
	if (s->expires_ms)
		away_append(s);
}

/* ---- subscriptions ---- */

static uint8_t max_granted(struct router_sub *const *subs, size_t n)
{
	uint8_t q = 0;

	for (size_t i = 0; i < n; i++) {
		const struct mqtt_sub *sub = router_sub_user(subs[i]);

		if (sub->qos > q)
			q = sub->qos;
	}
	return q;
}

/* Router callback: one call per message with every matching subscription
 * of this session; MQTT-3.3.5-1 lets us deliver once at the highest QoS.
 * A live delivery carries RETAIN 0 (MQTT-3.3.1-9). */
const char *mqtt_sub_acl_filter(const char *filter, size_t len, size_t *out_len)
{
	static const char share[] = "$share/";
	const size_t sl = sizeof(share) - 1;
	const char *slash;

	*out_len = len;
	if (len <= sl || memcmp(filter, share, sl) != 0 ||
	    !(slash = memchr(filter + sl, '/', len - sl)))
		return filter;
	*out_len = len - (size_t)(slash + 1 - filter);
	return slash + 1;
}

int mqtt_sess_set_login(struct mqtt_sess *s, const char *login)
{
	char *l = login ? strdup(login) : NULL;

	if (login && !l)
		return -1;
	free(s->login);
	s->login = l;
	s->login_known = true;
	for (size_t i = 0; i < s->nsubs; i++)
		s->subs[i]->acl_gen = 0;
	return 0;
}

/* Whether the ACL lets every message of sub through unchecked. */
static bool sub_reads_all(struct mqtt_sess *s, struct mqtt_sub *sub)
{
	const struct acl_holder *h = s->b->acl;

	if (sub->acl_gen != h->generation) {
		size_t fl;
		const char *f = mqtt_sub_acl_filter(sub->filter, sub->len, &fl);

		sub->acl_sub = (uint8_t)acl_check_sub(h->acl, s->login, s->client_id, f, fl);
		sub->acl_gen = h->generation;
	}
	return sub->acl_sub == ACL_SUB_ALL;
}

/* May this session read m, which reached it through subs? With no
 * acl_file this is one pointer test. A restored session whose client has
 * not come back yet has no known login: it gets nothing the ACL would
 * have to judge. */
static bool may_read(struct mqtt_sess *s, const struct message *m, struct mqtt_sub *const *subs,
		     struct router_sub *const *rsubs, size_t n)
{
	const struct acl_holder *h = s->b->acl;

	if (!h->acl)
		return true;
	if (!s->login_known)
		return false;
	for (size_t i = 0; i < n; i++)
		if (sub_reads_all(s, subs ? subs[i] : router_sub_user(rsubs[i])))
			return true;
	return acl_check(h->acl, s->login, s->client_id, ACL_TOPIC, m->topic, m->topic_len,
			 ACL_READ);
}

static void sess_deliver(void *owner, struct message *m, struct router_sub *const *subs,
			 size_t n)
{
	struct mqtt_sess *s = owner;
	uint8_t granted;

	if (!may_read(s, m, NULL, subs, n))
		return;
	granted = max_granted(subs, n);

	mqtt_outq_offer(s, m, m->qos < granted ? m->qos : granted, false);
}

static struct mqtt_sub *find_sub(struct mqtt_sess *s, const uint8_t *f, size_t len,
				 size_t *idx)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (s->subs[i]->len == len && !memcmp(s->subs[i]->filter, f, len)) {
			if (idx)
				*idx = i;
			return s->subs[i];
		}
	return NULL;
}

/* "$share/group/filter" -> router_subscribe_shared. */
static struct router_sub *subscribe_router(struct mqtt_sess *s, struct mqtt_sub *sub)
{
	static const char share[] = "$share/";
	const size_t sl = sizeof(share) - 1;
	const char *g, *slash;
	int err;

	if (sub->len > sl && !memcmp(sub->filter, share, sl)) {
		g = sub->filter + sl;
		slash = memchr(g, '/', sub->len - sl);
		if (!slash)
			return NULL;
		sub->shared = true;
		return router_subscribe_shared(s->b->router, g, (size_t)(slash - g), slash + 1,
					       sub->len - (size_t)(slash + 1 - sub->filter),
					       s, sess_deliver, sub, &err);
	}
	return router_subscribe(s->b->router, sub->filter, sub->len, s, sess_deliver, sub, &err);
}

static int subs_reserve(struct mqtt_sess *s)
{
	return grow(&s->subs, &s->subs_cap, s->nsubs, sizeof(*s->subs), 8);
}

uint8_t mqtt_sess_subscribe(struct mqtt_sess *s, const uint8_t *filter, size_t len,
			    uint8_t qos)
{
	struct mqtt_sub *sub = find_sub(s, filter, len, NULL);

	if (qos > 2)
		return MQTT_SUBACK_FAILURE;
	if (sub) {
		sub->qos = qos;
		mqtt_persist_sub(s, sub);
		return qos;
	}
	if (s->nsubs >= s->b->cfg->mqtt_max_subscriptions || subs_reserve(s) < 0)
		return MQTT_SUBACK_FAILURE;
	sub = calloc(1, sizeof(*sub));
	if (!sub || !(sub->filter = malloc(len + 1))) {
		free(sub);
		return MQTT_SUBACK_FAILURE;
	}
	memcpy(sub->filter, filter, len);
	sub->filter[len] = '\0';
	sub->len = len;
	sub->qos = qos;
	sub->rsub = subscribe_router(s, sub);
	if (!sub->rsub) {
		free(sub->filter);
		free(sub);
		return MQTT_SUBACK_FAILURE;
	}
	s->subs[s->nsubs++] = sub;
	mqtt_persist_sub(s, sub);
	return qos;
}

struct retained_ctx {
	struct mqtt_sess *s;
	struct mqtt_sub *sub;
	uint8_t granted;
};

static void retained_one(void *arg, struct message *m)
{
	struct retained_ctx *x = arg;

	if (!may_read(x->s, m, &x->sub, NULL, 1))
		return;
	mqtt_outq_offer(x->s, m, m->qos < x->granted ? m->qos : x->granted, true);
}

void mqtt_sess_send_retained(struct mqtt_sess *s, const uint8_t *filter, size_t len)
{
	struct mqtt_sub *sub = find_sub(s, filter, len, NULL);
	struct retained_ctx x = {s, sub, 0};

	/* Shared subscriptions get no retained messages (as in MQTT 5). */
	if (!sub || sub->shared)
		return;
	x.granted = sub->qos;
	router_retained_foreach(s->b->router, sub->filter, sub->len, retained_one, &x);
}

bool mqtt_sess_unsubscribe(struct mqtt_sess *s, const uint8_t *filter, size_t len)
{
	size_t i;
	struct mqtt_sub *sub = find_sub(s, filter, len, &i);

	if (!sub)
		return false;
	router_unsubscribe(s->b->router, sub->rsub);
	mqtt_persist_unsub(s, sub->filter);
	free(sub->filter);
	free(sub);
	s->subs[i] = s->subs[--s->nsubs];
	return true;
}

/* ---- inbound QoS 2 ---- */

bool mqtt_sess_qos2_held(const struct mqtt_sess *s, uint16_t id)
{
	return s->qos2_in && (s->qos2_in[id >> 3] & (1u << (id & 7)));
}

int mqtt_sess_qos2_hold(struct mqtt_sess *s, uint16_t id)
{
	if (!s->qos2_in && !(s->qos2_in = calloc(65536 / 8, 1)))
		return -1;
	if (!mqtt_sess_qos2_held(s, id)) {
		s->qos2_in[id >> 3] |= (uint8_t)(1u << (id & 7));
		s->nqos2_in++;
		mqtt_persist_qos2(s, id, true);
	}
	return 0;
}

void mqtt_sess_qos2_release(struct mqtt_sess *s, uint16_t id)
{
	if (!mqtt_sess_qos2_held(s, id))
		return;
	mqtt_persist_qos2(s, id, false);
	s->qos2_in[id >> 3] &= (uint8_t)~(1u << (id & 7));
	/* The 8 KiB map exists only while some id is held. */
	if (--s->nqos2_in == 0) {
		free(s->qos2_in);
		s->qos2_in = NULL;
	}
}

/* ---- start-up ---- */

static int by_deadline(const void *a, const void *b)
{
	const struct mqtt_sess *x = *(struct mqtt_sess *const *)a;
	const struct mqtt_sess *y = *(struct mqtt_sess *const *)b;

	return x->expires_ms < y->expires_ms ? -1 : x->expires_ms > y->expires_ms;
}

void mqtt_sess_restore_done(struct mqtt_broker *b)
{
	struct mqtt_sess **v;
	size_t n = 0, i;

	v = malloc((b->table_count ? b->table_count : 1) * sizeof(*v));
	for (i = 0; i < b->table_cap; i++)
		for (struct mqtt_sess *s = b->table[i]; s; s = s->hnext)
			if (!s->conn && s->expires_ms) {
				away_remove(s);
				if (v)
					v[n++] = s;
				else
					away_append(s);
			}
	if (!v)
		return;
	qsort(v, n, sizeof(*v), by_deadline);
	for (i = 0; i < n; i++)
		away_append(v[i]);
	free(v);
}
