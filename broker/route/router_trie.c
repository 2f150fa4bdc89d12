/* router_trie: the pieces both tries and the queues are built from: the
 * seeded hash, the intrusive hash table, trie nodes (create, find, prune,
 * free) and the explicit walk stack. Knows nothing of subscriptions or
 * messages: what a node holds is the caller's business. */
#include <stdlib.h>
#include <string.h>
#include "router_int.h"

/* ---- hashing ---- */

uint64_t router_hash_bytes(uint64_t seed, const void *p, size_t n)
{
	const unsigned char *s = p;
	/* FNV-1a from a per-router random state, so that clients cannot
	 * precompute colliding topic names; then a finalizer to spread the
	 * low bits used as the bucket index. */
	uint64_t h = seed ^ 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return router_hash_u64(seed, h);
}

uint64_t router_hash_u64(uint64_t seed, uint64_t v)
{
	v ^= seed;
	v ^= v >> 33;
	v *= 0xff51afd7ed558ccdULL;
	v ^= v >> 33;
	v *= 0xc4ceb9fe1a85ec53ULL;
	v ^= v >> 33;
	return v;
}

#define HT_MIN_BUCKETS 4

static int ht_resize(struct htable *t, size_t ncap)
{
	struct ht_link **nb = calloc(ncap, sizeof(*nb));
	size_t i;

	if (!nb)
		return -1;
	for (i = 0; t->b && i <= t->mask; i++) {
		struct ht_link *l = t->b[i], *next;

		for (; l; l = next) {
			next = l->next;
			l->next = nb[l->hash & (ncap - 1)];
			nb[l->hash & (ncap - 1)] = l;
		}
	}
	free(t->b);
	t->b = nb;
	t->mask = ncap - 1;
	return 0;
}

int router_ht_insert(struct htable *t, struct ht_link *e)
{
	if (!t->b) {
		if (ht_resize(t, HT_MIN_BUCKETS) < 0)
			return -1;
	} else if (t->n >= t->mask + 1) {
		ht_resize(t, (t->mask + 1) * 2);   /* on OOM: longer chains */
	}
	e->next = t->b[e->hash & t->mask];
	t->b[e->hash & t->mask] = e;
	t->n++;
	return 0;
}

void router_ht_remove(struct htable *t, struct ht_link *e)
{
	struct ht_link **pp = &t->b[e->hash & t->mask];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	t->n--;
	/* Give back the memory of a table that once was large (100,000
	 * children, a burst of queue deliveries); the hysteresis between
	 * growing at n == buckets and shrinking at n < buckets / 8 keeps a
	 * table that fills and drains by one from resizing every time. */
	if (t->mask + 1 >= 4 * HT_MIN_BUCKETS && t->n < (t->mask + 1) / 8)
		ht_resize(t, (t->mask + 1) / 4);
}

void router_ht_free(struct htable *t)
{
	free(t->b);
	t->b = NULL;
	t->mask = 0;
	t->n = 0;
}

int router_reserve(void *arr, size_t *cap, size_t need, size_t elem)
{
	void **pa = arr;
	size_t ncap = *cap ? *cap : 16;
	void *p;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*pa, ncap * elem);
	if (!p)
		return -1;
	*pa = p;
	*cap = ncap;
	return 0;
}

/* ---- levels ---- */

/* End of the level that starts at pos; the next one starts after it. */
size_t router_level_end(const char *s, size_t len, size_t pos)
{
	const char *p = pos < len ? memchr(s + pos, '/', len - pos) : NULL;

	return p ? (size_t)(p - s) : len;
}

bool router_is_level(const char *lvl, size_t len, char c)
{
	return len == 1 && lvl[0] == c;
}

/* ---- trie ---- */

struct tnode *router_tnode_new(struct tnode *parent, const char *lvl, size_t len)
{
	struct tnode *n = calloc(1, sizeof(*n) + len + 1);

	if (!n)
		return NULL;
	n->parent = parent;
	n->len = len;
	memcpy(n->level, lvl, len);
	return n;
}

struct tnode *router_tnode_find(const struct tnode *n, const char *lvl, size_t len, uint64_t h)
{
	struct ht_link *l;

	for (l = router_ht_first(&n->kids, h); l; l = l->next) {
		struct tnode *k = ROUTER_CONTAINER(l, struct tnode, link);

		if (l->hash == h && k->len == len && memcmp(k->level, lvl, len) == 0)
			return k;
	}
	return NULL;
}

struct tnode *router_tnode_child(struct router *r, struct tnode *n,
				 const char *lvl, size_t len, bool create)
{
	struct tnode **slot = NULL, *k;
	uint64_t h = 0;

	if (router_is_level(lvl, len, '+'))
		slot = &n->plus;
	else if (router_is_level(lvl, len, '#'))
		slot = &n->hash;
	if (slot) {
		if (*slot || !create)
			return *slot;
	} else {
		h = router_hash_bytes(r->seed, lvl, len);
		k = router_tnode_find(n, lvl, len, h);
		if (k || !create)
			return k;
	}
	k = router_tnode_new(n, lvl, len);
	if (!k)
		return NULL;
	if (slot) {
		*slot = k;
	} else {
		k->link.hash = h;
		if (router_ht_insert(&n->kids, &k->link) < 0) {
			free(k);
			return NULL;
		}
	}
	return k;
}

static bool tnode_empty(const struct tnode *n)
{
	return !n->subs && !n->groups && !n->retained && n->kids.n == 0 &&
	       !n->plus && !n->hash;
}

/* Free n and every ancestor left empty, so that a client cycling through
 * unique topic names does not grow the trie for ever. */
void router_tnode_prune(struct tnode *n)
{
	while (n->parent && tnode_empty(n)) {
		struct tnode *p = n->parent;

		if (p->plus == n)
			p->plus = NULL;
		else if (p->hash == n)
			p->hash = NULL;
		else
			router_ht_remove(&p->kids, &n->link);
		router_ht_free(&n->kids);
		free(n);
		n = p;
	}
}

/* The node for name s (topic or filter), created when create is set. */
struct tnode *router_trie_path(struct router *r, struct tnode *root,
			       const char *s, size_t len, bool create)
{
	struct tnode *n = root, *k;
	size_t pos = 0, end;

	for (;;) {
		end = router_level_end(s, len, pos);
		k = router_tnode_child(r, n, s + pos, end - pos, create);
		if (!k) {
			if (create)
				router_tnode_prune(n);
			return NULL;
		}
		n = k;
		if (end >= len)
			return n;
		pos = end + 1;
	}
}

/* Frees a whole trie without allocating: nodes still to visit are chained
 * through their (no longer needed) hash links. */
void router_trie_free(struct tnode *root, void (*contents)(struct tnode *))
{
	struct ht_link *todo = &root->link, *l, *next;
	size_t i;

	root->link.next = NULL;
	while (todo) {
		struct tnode *n = ROUTER_CONTAINER(todo, struct tnode, link);

		todo = todo->next;
		for (i = 0; n->kids.b && i <= n->kids.mask; i++) {
			for (l = n->kids.b[i]; l; l = next) {
				next = l->next;
				l->next = todo;
				todo = l;
			}
		}
		if (n->plus) {
			n->plus->link.next = todo;
			todo = &n->plus->link;
		}
		if (n->hash) {
			n->hash->link.next = todo;
			todo = &n->hash->link;
		}
		contents(n);
		router_ht_free(&n->kids);
		free(n);
	}
}

/* ---- walks ---- */

int router_walk_push(struct walk_item **st, size_t *cap, size_t *sp,
		     struct tnode *n, size_t pos)
{
	if (router_reserve(st, cap, *sp + 1, sizeof(**st)) < 0)
		return -1;
	(*st)[*sp].n = n;
	(*st)[*sp].pos = pos;
	(*sp)++;
	return 0;
}

/* Pushes every exact child of n; at the root, '$' children are left out
 * because a first-level wildcard does not reach them. */
void router_walk_push_kids(struct walk_item **st, size_t *cap, size_t *sp,
			   struct tnode *n, bool skip_dollar, size_t pos)
{
	struct ht_link *l;
	size_t i;

	for (i = 0; n->kids.b && i <= n->kids.mask; i++) {
		for (l = n->kids.b[i]; l; l = l->next) {
			struct tnode *k = ROUTER_CONTAINER(l, struct tnode, link);

			if (skip_dollar && k->len && k->level[0] == '$')
				continue;
			router_walk_push(st, cap, sp, k, pos);
		}
	}
}
