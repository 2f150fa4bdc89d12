/* router: name validation, plain and shared subscriptions, publish fan-out
 * and retained messages. Trie nodes and hashing live in router_trie.c,
 * queues in router_queue.c.
 *
 * Both tries (subscriptions, retained messages) have one node per level;
 * exact children sit in a per-node hash table, '+' and '#' children in their
 * own pointers, so matching a topic visits only the nodes on the paths the
 * topic can take and never looks at unrelated subscriptions. Walks use an
 * explicit stack: a topic may have tens of thousands of levels ("////...")
 * and recursion that deep would overflow the C stack. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "clock.h"
#include "router_int.h"

#define ROUTER_DEFAULT_QUEUE_MAX 100000
/* A walk position past every level means "the whole subtree" (retained '#'). */
#define WALK_SUBTREE SIZE_MAX

/* Deliveries of one (owner, fn): the unit router_publish groups by. */
struct owner_rec {
	struct ht_link link;
	void *owner;
	router_deliver_fn fn;
	size_t nsubs;
	uint64_t gen;          /* publish that last counted this owner */
	size_t count, start;   /* its slice of the grouped scratch array */
};

/* One $share group on one filter: its members form a ring and `cursor` is
 * the member whose turn is next. */
struct share_group {
	struct share_group *prev, *next;
	struct router_sub *cursor;
	size_t len;
	char name[];
};

struct router_sub {
	struct router_sub *prev, *next;   /* node's plain list, or group ring */
	struct tnode *node;
	struct share_group *group;        /* NULL for a plain subscription */
	struct owner_rec *orec;
	void *user;
	char *filter;
	bool dead;    /* unsubscribed during a publish, freed at its end */
};

/* ---- names ---- */

int router_topic_valid(const char *topic, size_t len)
{
	size_t i;

	if (!topic || len == 0)
		return 0;
	for (i = 0; i < len; i++)
		if (topic[i] == '+' || topic[i] == '#' || topic[i] == '\0')
			return 0;
	return 1;
}

int router_filter_valid(const char *f, size_t len)
{
	size_t pos = 0, end, i;

	if (!f || len == 0)
		return 0;
	for (;;) {
		end = router_level_end(f, len, pos);
		for (i = pos; i < end; i++) {
			if (f[i] == '\0')
				return 0;
			if ((f[i] == '+' || f[i] == '#') && end - pos != 1)
				return 0;
			if (f[i] == '#' && end != len)
				return 0;
		}
		if (end >= len)
			return 1;
		pos = end + 1;
	}
}

int router_match(const char *f, size_t flen, const char *t, size_t tlen)
{
	size_t fp = 0, tp = 0, fe, te;

	if (!router_filter_valid(f, flen) || !router_topic_valid(t, tlen))
		return 0;
	if (t[0] == '$' && (f[0] == '+' || f[0] == '#'))
		return 0;
	for (;;) {
		fe = router_level_end(f, flen, fp);
		if (router_is_level(f + fp, fe - fp, '#'))
			return 1;
		if (tp > tlen)
			return 0;
		te = router_level_end(t, tlen, tp);
		if (!router_is_level(f + fp, fe - fp, '+') &&
		    (fe - fp != te - tp || memcmp(f + fp, t + tp, fe - fp) != 0))
			return 0;
		fp = fe + 1;
		tp = te + 1;
		if (fp > flen)
			return tp > tlen;
	}
}

/* ---- router ---- */

static void free_group(struct share_group *g)
{
	struct router_sub *s = g->cursor, *next;

	while (s) {
		next = s->next == g->cursor ? NULL : s->next;
		free(s->filter);
		free(s);
		s = next;
	}
	free(g);
}

static void free_node_contents(struct tnode *n)
{
	struct router_sub *s, *snext;
	struct share_group *g, *gnext;

	for (s = n->subs; s; s = snext) {
		snext = s->next;
		free(s->filter);
		free(s);
	}
	for (g = n->groups; g; g = gnext) {
		gnext = g->next;
		free_group(g);
	}
	message_unref(n->retained);
}

struct router *router_new(const struct router_limits *lim)
{
	struct router *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (getrandom(&r->seed, sizeof(r->seed), GRND_NONBLOCK) != sizeof(r->seed))
		r->seed = clock_now_ms() ^ (uint64_t)(uintptr_t)r;
	r->queue_max = lim && lim->queue_max_messages ? lim->queue_max_messages
						       : ROUTER_DEFAULT_QUEUE_MAX;
	r->subroot = router_tnode_new(NULL, "", 0);
	r->retroot = router_tnode_new(NULL, "", 0);
	if (!r->subroot || !r->retroot) {
		free(r->subroot);
		free(r->retroot);
		free(r);
		return NULL;
	}
	return r;
}

void router_free(struct router *r)
{
	size_t i;
	struct ht_link *l, *next;

	if (!r)
		return;
	router_queues_free(r);
	router_trie_free(r->subroot, free_node_contents);
	router_trie_free(r->retroot, free_node_contents);
	for (i = 0; r->owners.b && i <= r->owners.mask; i++) {
		for (l = r->owners.b[i]; l; l = next) {
			next = l->next;
			free(ROUTER_CONTAINER(l, struct owner_rec, link));
		}
	}
	router_ht_free(&r->owners);
	free(r->hits);
	free(r->grouped);
	free(r->orecs);
	free(r->stack);
	free(r);
}

void router_get_stats(const struct router *r, struct router_stats *out)
{
	out->published = r->published;
	out->delivered = r->delivered;
	out->subscriptions = r->nsubs;
	out->queues = r->nqueues;
}

/* ---- subscriptions ---- */

static struct owner_rec *owner_get(struct router *r, void *owner, router_deliver_fn fn)
{
	uint64_t h = router_hash_u64(r->seed, (uint64_t)(uintptr_t)owner);
	struct ht_link *l;
	struct owner_rec *o;

	for (l = router_ht_first(&r->owners, h); l; l = l->next) {
		o = ROUTER_CONTAINER(l, struct owner_rec, link);
		if (o->owner == owner && o->fn == fn) {
			o->nsubs++;
			return o;
		}
	}
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->owner = owner;
	o->fn = fn;
	o->nsubs = 1;
	o->gen = r->gen;
	o->link.hash = h;
	if (router_ht_insert(&r->owners, &o->link) < 0) {
		free(o);
		return NULL;
	}
	return o;
}

static void owner_put(struct router *r, struct owner_rec *o)
{
	if (--o->nsubs > 0)
		return;
	router_ht_remove(&r->owners, &o->link);
	free(o);
}

static char *name_dup(const char *a, size_t alen, const char *b, size_t blen)
{
	char *p = malloc(alen + blen + 1);

	if (!p)
		return NULL;
	memcpy(p, a, alen);
	if (blen)
		memcpy(p + alen, b, blen);
	p[alen + blen] = '\0';
	return p;
}

/* A subscription with its filter string and owner record, not yet linked
 * into the trie. */
static struct router_sub *sub_new(struct router *r, char *filter, void *owner,
				  router_deliver_fn fn, void *user)
{
	struct router_sub *s = filter ? calloc(1, sizeof(*s)) : NULL;

	if (!s || !(s->orec = owner_get(r, owner, fn))) {
		free(s);
		free(filter);
		return NULL;
	}
	s->filter = filter;
	s->user = user;
	return s;
}

static void sub_free(struct router *r, struct router_sub *s)
{
	owner_put(r, s->orec);
	free(s->filter);
	free(s);
}

static struct router_sub *fail(int *err, int code)
{
	if (err)
		*err = code;
	return NULL;
}

struct router_sub *router_subscribe(struct router *r, const char *filter, size_t flen,
				    void *owner, router_deliver_fn fn, void *user,
				    int *err)
{
	struct router_sub *s;
	struct tnode *n;

	if (!fn || !router_filter_valid(filter, flen))
		return fail(err, ROUTER_EINVAL);
	s = sub_new(r, name_dup(filter, flen, NULL, 0), owner, fn, user);
	if (!s)
		return fail(err, ROUTER_ENOMEM);
	n = router_trie_path(r, r->subroot, filter, flen, true);
	if (!n) {
		sub_free(r, s);
		return fail(err, ROUTER_ENOMEM);
	}
	s->node = n;
	s->next = n->subs;
	if (n->subs)
		n->subs->prev = s;
	n->subs = s;
	r->nsubs++;
	if (err)
		*err = ROUTER_OK;
	return s;
}

static bool group_name_valid(const char *g, size_t len)
{
	size_t i;

	if (!g || len == 0)
		return false;
	for (i = 0; i < len; i++)
		if (g[i] == '/' || g[i] == '+' || g[i] == '#' || g[i] == '\0')
			return false;
	return true;
}

static struct share_group *group_get(struct tnode *n, const char *name, size_t len)
{
	struct share_group *g;

	for (g = n->groups; g; g = g->next)
		if (g->len == len && memcmp(g->name, name, len) == 0)
			return g;
	g = calloc(1, sizeof(*g) + len + 1);
	if (!g)
		return NULL;
	g->len = len;
	memcpy(g->name, name, len);
	g->next = n->groups;
	if (n->groups)
		n->groups->prev = g;
	n->groups = g;
	return g;
}

/* router_sub_filter of a shared subscription is the whole
 * "$share/group/filter": the name a client uses to unsubscribe. */
static char *share_name(const char *g, size_t glen, const char *f, size_t flen)
{
	static const char prefix[] = "$share/";
	size_t plen = sizeof(prefix) - 1;
	char *p = malloc(plen + glen + 1 + flen + 1);

	if (!p)
		return NULL;
	memcpy(p, prefix, plen);
	memcpy(p + plen, g, glen);
	p[plen + glen] = '/';
	memcpy(p + plen + glen + 1, f, flen);
	p[plen + glen + 1 + flen] = '\0';
	return p;
}

/* The new member takes its turn after every current member. */
static void group_add(struct share_group *g, struct router_sub *s)
{
	struct router_sub *c = g->cursor;

	s->group = g;
	if (!c) {
		s->prev = s->next = s;
		g->cursor = s;
		return;
	}
	s->next = c;
	s->prev = c->prev;
	c->prev->next = s;
	c->prev = s;
}

struct router_sub *router_subscribe_shared(struct router *r, const char *group, size_t glen,
					   const char *filter, size_t flen,
					   void *owner, router_deliver_fn fn, void *user,
					   int *err)
{
	struct router_sub *s;
	struct share_group *g;
	struct tnode *n;

	if (!fn || !group_name_valid(group, glen) || !router_filter_valid(filter, flen))
		return fail(err, ROUTER_EINVAL);
	s = sub_new(r, share_name(group, glen, filter, flen), owner, fn, user);
	if (!s)
		return fail(err, ROUTER_ENOMEM);
	n = router_trie_path(r, r->subroot, filter, flen, true);
	g = n ? group_get(n, group, glen) : NULL;
	if (!g) {
		sub_free(r, s);
		if (n)
			router_tnode_prune(n);
		return fail(err, ROUTER_ENOMEM);
	}
	s->node = n;
	group_add(g, s);
	r->nsubs++;
	if (err)
		*err = ROUTER_OK;
	return s;
}

static void group_remove(struct tnode *n, struct router_sub *s)
{
	struct share_group *g = s->group;

	if (s->next == s) {
		if (g->prev)
			g->prev->next = g->next;
		else
			n->groups = g->next;
		if (g->next)
			g->next->prev = g->prev;
		free(g);
		return;
	}
	if (g->cursor == s)
		g->cursor = s->next;
	s->prev->next = s->next;
	s->next->prev = s->prev;
}

void router_unsubscribe(struct router *r, struct router_sub *s)
{
	struct tnode *n;

	if (!s)
		return;
	n = s->node;
	if (s->group) {
		group_remove(n, s);
	} else {
		if (s->prev)
			s->prev->next = s->next;
		else
			n->subs = s->next;
		if (s->next)
			s->next->prev = s->prev;
	}
	r->nsubs--;
	router_tnode_prune(n);
	/* A deliver function closing its session: the publish in progress
	 * still holds this subscription (and its owner record) in its scratch
	 * arrays, so it is only marked, skipped, and freed when the publish
	 * ends. */
	if (r->publishing) {
		s->dead = true;
		s->next = r->dead;
		r->dead = s;
		return;
	}
	sub_free(r, s);
}

void *router_sub_user(const struct router_sub *s)
{
	return s->user;
}

const char *router_sub_filter(const struct router_sub *s)
{
	return s->filter;
}

/* ---- publish ---- */

/* Keeps the three per-hit scratch arrays the same size, so grouping after
 * the walk cannot fail. */
static int scratch_reserve(struct router *r, size_t need)
{
	if (router_reserve(&r->hits, &r->hits_cap, need, sizeof(*r->hits)) < 0 ||
	    router_reserve(&r->grouped, &r->grouped_cap, need, sizeof(*r->grouped)) < 0 ||
	    router_reserve(&r->orecs, &r->orecs_cap, need, sizeof(*r->orecs)) < 0)
		return -1;
	return 0;
}

static int hit_add(struct router *r, size_t *n, struct router_sub *s)
{
	if (scratch_reserve(r, *n + 1) < 0)
		return -1;
	r->hits[(*n)++] = s;
	return 0;
}

/* Every plain subscription of n, and the next member of each group. */
static void collect_node(struct router *r, struct tnode *n, size_t *nhits)
{
	struct router_sub *s;
	struct share_group *g;

	for (s = n->subs; s; s = s->next)
		if (hit_add(r, nhits, s) < 0)
			return;
	for (g = n->groups; g; g = g->next) {
		if (hit_add(r, nhits, g->cursor) < 0)
			return;
		g->cursor = g->cursor->next;
	}
}

static size_t match_topic(struct router *r, const char *t, size_t len)
{
	/* A '$' topic is not matched by a wildcard at the first level. */
	bool dollar = t[0] == '$';
	size_t nhits = 0, sp = 0, pos, end;
	struct tnode *n, *k;
	bool first;

	if (router_walk_push(&r->stack, &r->stack_cap, &sp, r->subroot, 0) < 0)
		return 0;
	while (sp) {
		sp--;
		n = r->stack[sp].n;
		pos = r->stack[sp].pos;
		first = n == r->subroot;
		/* '#' also matches the parent level: "a/#" matches "a". */
		if (n->hash && !(first && dollar))
			collect_node(r, n->hash, &nhits);
		if (pos > len) {
			collect_node(r, n, &nhits);
			continue;
		}
		end = router_level_end(t, len, pos);
		if (n->plus && !(first && dollar))
			router_walk_push(&r->stack, &r->stack_cap, &sp, n->plus, end + 1);
		k = router_tnode_find(n, t + pos, end - pos,
			     router_hash_bytes(r->seed, t + pos, end - pos));
		if (k)
			router_walk_push(&r->stack, &r->stack_cap, &sp, k, end + 1);
	}
	return nhits;
}

/* Orders hits by owner (in order of first appearance) into r->grouped
 * without sorting: two counting passes over the hits. */
static size_t group_by_owner(struct router *r, size_t nhits)
{
	uint64_t gen = ++r->gen;
	size_t i, no = 0, start = 0;
	struct owner_rec *o;

	for (i = 0; i < nhits; i++) {
		o = r->hits[i]->orec;
		if (o->gen != gen) {
			o->gen = gen;
			o->count = 0;
			r->orecs[no++] = o;
		}
		o->count++;
	}
	for (i = 0; i < no; i++) {
		o = r->orecs[i];
		o->start = start;
		start += o->count;
		o->count = 0;
	}
	for (i = 0; i < nhits; i++) {
		o = r->hits[i]->orec;
		r->grouped[o->start + o->count++] = r->hits[i];
	}
	return no;
}

/* Removes subscriptions unsubscribed by an earlier deliver function of this
 * publish from an owner's slice; returns how many are left. */
static size_t drop_dead(struct router_sub **subs, size_t *n)
{
	size_t i, k = 0;

	for (i = 0; i < *n; i++)
		if (!subs[i]->dead)
			subs[k++] = subs[i];
	*n = k;
	return k;
}

static void free_dead(struct router *r)
{
	struct router_sub *s;

	while ((s = r->dead)) {
		r->dead = s->next;
		sub_free(r, s);
	}
}

size_t router_publish(struct router *r, struct message *m)
{
	size_t nhits, no, i, reached = 0;
	struct owner_rec *o;

	assert(!r->publishing);
	if (r->publishing || !m || !router_topic_valid(m->topic, m->topic_len))
		return 0;
	r->published++;
	nhits = match_topic(r, m->topic, m->topic_len);
	if (nhits == 0)
		return 0;
	no = group_by_owner(r, nhits);
	message_ref(m);
	r->publishing = true;
	for (i = 0; i < no; i++) {
		o = r->orecs[i];
		if (r->dead && drop_dead(r->grouped + o->start, &o->count) == 0)
			continue;
		o->fn(o->owner, m, r->grouped + o->start, o->count);
		reached++;
	}
	r->publishing = false;
	free_dead(r);
	message_unref(m);
	r->delivered += reached;
	return reached;
}

/* ---- retained messages ---- */

void router_retain(struct router *r, struct message *m)
{
	struct tnode *n;

	if (!m || !router_topic_valid(m->topic, m->topic_len))
		return;
	if (m->payload_len == 0) {
		n = router_trie_path(r, r->retroot, m->topic, m->topic_len, false);
		if (n && n->retained) {
			message_unref(n->retained);
			n->retained = NULL;
			r->nretained--;
			router_tnode_prune(n);
		}
		return;
	}
	n = router_trie_path(r, r->retroot, m->topic, m->topic_len, true);
	if (!n)
		return;
	if (n->retained)
		message_unref(n->retained);
	else
		r->nretained++;
	n->retained = message_ref(m);
}

struct msg_list {
	struct message **v;
	size_t n, cap;
};

static void emit(struct msg_list *out, struct tnode *n)
{
	if (n->retained &&
	    router_reserve(&out->v, &out->cap, out->n + 1, sizeof(*out->v)) == 0)
		out->v[out->n++] = message_ref(n->retained);
}

static void retained_walk(struct router *r, const char *f, size_t flen,
			  struct msg_list *out)
{
	struct walk_item *st = NULL;
	size_t cap = 0, sp = 0, pos, end;
	struct tnode *n, *k;
	bool first;

	router_walk_push(&st, &cap, &sp, r->retroot, 0);
	while (sp) {
		sp--;
		n = st[sp].n;
		pos = st[sp].pos;
		first = n == r->retroot;
		if (pos == WALK_SUBTREE) {
			emit(out, n);
			router_walk_push_kids(&st, &cap, &sp, n, false, WALK_SUBTREE);
			continue;
		}
		if (pos > flen) {
			emit(out, n);
			continue;
		}
		end = router_level_end(f, flen, pos);
		if (router_is_level(f + pos, end - pos, '#')) {
			emit(out, n);
			router_walk_push_kids(&st, &cap, &sp, n, first, WALK_SUBTREE);
		} else if (router_is_level(f + pos, end - pos, '+')) {
			router_walk_push_kids(&st, &cap, &sp, n, first, end + 1);
		} else {
			k = router_tnode_find(n, f + pos, end - pos,
				     router_hash_bytes(r->seed, f + pos, end - pos));
			if (k)
				router_walk_push(&st, &cap, &sp, k, end + 1);
		}
	}
	free(st);
}

void router_retained_foreach(struct router *r, const char *filter, size_t flen,
			     void (*fn)(void *arg, struct message *m), void *arg)
{
	struct msg_list out = { NULL, 0, 0 };
	size_t i;

	if (!fn || !router_filter_valid(filter, flen))
		return;
	/* Collect first, call after: fn may then retain or clear messages
	 * without invalidating the walk. */
	retained_walk(r, filter, flen, &out);
	for (i = 0; i < out.n; i++)
		fn(arg, out.v[i]);
	for (i = 0; i < out.n; i++)
		message_unref(out.v[i]);
	free(out.v);
}

size_t router_retained_count(const struct router *r)
{
	return r->nretained;
}
