/* router_int: what the router's files share: router_trie.c (hashing, trie
 * nodes), router.c (subscriptions, publish, retained messages) and
 * router_queue.c (queues). Not for use outside the router. */
#ifndef WSB_ROUTER_INT_H
#define WSB_ROUTER_INT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "router.h"

/* An intrusive chained hash table: entries embed a struct ht_link, so
 * insertion never allocates beyond the bucket array and removal is O(1)
 * in the bucket's length. Keys are compared by the caller. */
struct ht_link {
	struct ht_link *next;
	uint64_t hash;
};

struct htable {
	struct ht_link **b;   /* NULL while empty */
	size_t mask;
	size_t n;
};

#define ROUTER_CONTAINER(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

uint64_t router_hash_bytes(uint64_t seed, const void *p, size_t n);
uint64_t router_hash_u64(uint64_t seed, uint64_t v);
/* -1 only when the table has no buckets and none can be allocated; a
 * failed growth keeps the old (longer) chains. */
int router_ht_insert(struct htable *t, struct ht_link *e);
void router_ht_remove(struct htable *t, struct ht_link *e);
void router_ht_free(struct htable *t);

static inline struct ht_link *router_ht_first(const struct htable *t, uint64_t h)
{
	return t->b ? t->b[h & t->mask] : NULL;
}

/* A trie level. The subscription trie uses subs/groups and the wildcard
 * children; the retained trie uses only `retained`. */
struct tnode {
	struct ht_link link;          /* in the parent's kids (exact levels) */
	struct tnode *parent;
	struct htable kids;
	struct tnode *plus, *hash;    /* the '+' and '#' children */
	struct router_sub *subs;      /* plain subscriptions, doubly linked */
	struct share_group *groups;
	struct message *retained;
	size_t len;
	char level[];
};

struct router {
	uint64_t seed;
	size_t queue_max;

	struct tnode *subroot;
	struct tnode *retroot;
	size_t nretained;
	struct htable owners;         /* struct owner_rec by (owner, fn) */

	struct htable queues;         /* struct rqueue by name */
	struct htable tags;           /* struct qdelivery by tag */
	uint64_t next_tag;
	size_t nqueues;

	uint64_t published, delivered;
	size_t nsubs;

	/* Publish scratch, reused so a publish does not allocate. */
	bool publishing;
	struct router_sub *dead;      /* unsubscribed during this publish */
	uint64_t gen;
	struct router_sub **hits, **grouped;
	size_t hits_cap, grouped_cap;
	struct owner_rec **orecs;
	size_t orecs_cap;
	struct walk_item *stack;
	size_t stack_cap;
};

/* Grow *arr to hold at least need elements of size elem. 0 or -1 (OOM). */
int router_reserve(void *arr, size_t *cap, size_t need, size_t elem);

/* Levels of a router-form name: the level starting at pos ends at the
 * returned offset; the next level starts one past it. */
size_t router_level_end(const char *s, size_t len, size_t pos);
bool router_is_level(const char *lvl, size_t len, char c);

struct tnode *router_tnode_new(struct tnode *parent, const char *lvl, size_t len);
/* The exact child named lvl, whose hash (router_hash_bytes) is h. */
struct tnode *router_tnode_find(const struct tnode *n, const char *lvl, size_t len,
				uint64_t h);
/* The child for one level ('+' and '#' are the wildcard children), created
 * when create is set. NULL when absent or on OOM. */
struct tnode *router_tnode_child(struct router *r, struct tnode *n,
				 const char *lvl, size_t len, bool create);
/* Frees n and every ancestor left holding nothing (never the root). */
void router_tnode_prune(struct tnode *n);
/* The node for a whole name, created when create is set. */
struct tnode *router_trie_path(struct router *r, struct tnode *root,
			       const char *s, size_t len, bool create);
/* Frees every node; contents(n) releases what a node holds first. */
void router_trie_free(struct tnode *root, void (*contents)(struct tnode *));

/* An explicit DFS stack: names may have tens of thousands of levels. */
struct walk_item {
	struct tnode *n;
	size_t pos;   /* offset of the next level to match */
};
int router_walk_push(struct walk_item **st, size_t *cap, size_t *sp,
		     struct tnode *n, size_t pos);
/* Pushes n's exact children; skip_dollar leaves out '$' levels. */
void router_walk_push_kids(struct walk_item **st, size_t *cap, size_t *sp,
			   struct tnode *n, bool skip_dollar, size_t pos);

/* router_queue.c */
void router_queues_free(struct router *r);

#endif
