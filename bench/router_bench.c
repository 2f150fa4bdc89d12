/* router-bench: topic matching throughput of the trie against a naive
 * linear scan (router_match over every filter), measured in the same run so
 * that the ratio, not the absolute speed of this machine, is the result.
 *
 *   router-bench [-n SUBSCRIPTIONS] [-p PUBLISHES]
 *
 * Subscriptions mix exact filters with '+' and '#' ones; each belongs to its
 * own owner, so owners reached == subscriptions matched. Both methods
 * publish to the same random existing topics and must agree on every match
 * count (exit 1 otherwise). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "route/message.h"
#include "route/router.h"

#define TOPICS_PER_SITE 1000
#define NAIVE_MAX_PUBLISHES 100

static uint64_t delivered;

static void count_deliver(void *owner, struct message *m, struct router_sub *const *subs,
			  size_t n)
{
	delivered += n;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Subscription i: mostly the exact topic i; every 10th a '+' at the third
 * level, every 10th (offset 5) a '+' at the first; one per thousand a '#'
 * over its whole site. */
static int filter_for(size_t i, char *buf, size_t cap)
{
	size_t site = i / TOPICS_PER_SITE;

	if (i % 1000 == 1)
		return snprintf(buf, cap, "site/%zu/#", site);
	if (i % 10 == 0)
		return snprintf(buf, cap, "site/%zu/+/%zu", site, i);
	if (i % 10 == 5)
		return snprintf(buf, cap, "+/%zu/dev/%zu", site, i);
	return snprintf(buf, cap, "site/%zu/dev/%zu", site, i);
}

static long parse_count(const char *s, const char *what)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v <= 0) {
		fprintf(stderr, "router-bench: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	size_t n = 100000, publishes = 1000000, naive_n, i, j;
	struct message **msgs;
	char **filters, buf[128];
	struct router *r;
	uint64_t trie_matches = 0, naive_matches = 0, *expect;
	double t0, trie_s, naive_s;
	int opt, len, err;

	while ((opt = getopt(argc, argv, "n:p:h")) != -1) {
		switch (opt) {
		case 'n': n = (size_t)parse_count(optarg, "-n"); break;
		case 'p': publishes = (size_t)parse_count(optarg, "-p"); break;
		default:
			fprintf(stderr, "usage: %s [-n SUBSCRIPTIONS] [-p PUBLISHES]\n", argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	naive_n = publishes < NAIVE_MAX_PUBLISHES ? publishes : NAIVE_MAX_PUBLISHES;
	r = router_new(NULL);
	msgs = calloc(n, sizeof(*msgs));
	filters = calloc(n, sizeof(*filters));
	expect = calloc(naive_n, sizeof(*expect));
	if (!r || !msgs || !filters || !expect) {
		fprintf(stderr, "router-bench: out of memory\n");
		return 1;
	}
	/* Owners are distinct addresses inside `filters`. */
	for (i = 0; i < n; i++) {
		len = filter_for(i, buf, sizeof(buf));
		filters[i] = strdup(buf);
		len = snprintf(buf, sizeof(buf), "site/%zu/dev/%zu", i / TOPICS_PER_SITE, i);
		msgs[i] = message_new(buf, (size_t)len, "x", 1);
		if (!filters[i] || !msgs[i] ||
		    !router_subscribe(r, filters[i], strlen(filters[i]), &filters[i],
				      count_deliver, NULL, &err)) {
			fprintf(stderr, "router-bench: setup failed at %zu\n", i);
			return 1;
		}
	}

	t0 = now_s();
	for (j = 0; j < publishes; j++) {
		uint64_t before = delivered;
		struct message *m = msgs[rng() % n];

		router_publish(r, m);
		if (j < naive_n)
			expect[j] = delivered - before;
	}
	trie_s = now_s() - t0;
	trie_matches = delivered;

	/* The same topics again (same generator, same seed), scanned. */
	rng_state = 0x9e3779b97f4a7c15ULL;
	t0 = now_s();
	for (j = 0; j < naive_n; j++) {
		struct message *m = msgs[rng() % n];
		uint64_t hits = 0;

		for (i = 0; i < n; i++)
			hits += (uint64_t)router_match(filters[i], strlen(filters[i]),
						       m->topic, m->topic_len);
		if (hits != expect[j]) {
			fprintf(stderr, "router-bench: mismatch on %s: trie %" PRIu64
				", scan %" PRIu64 "\n", m->topic, expect[j], hits);
			return 1;
		}
		naive_matches += hits;
	}
	naive_s = now_s() - t0;

	double trie_pps = (double)publishes / trie_s, naive_pps = (double)naive_n / naive_s;
	printf("subscriptions:        %zu\n", n);
	printf("trie:   %zu publishes, %" PRIu64 " matches in %.3f s: %.0f publishes/s, %.0f matches/s\n",
	       publishes, trie_matches, trie_s, trie_pps, (double)trie_matches / trie_s);
	printf("linear: %zu publishes, %" PRIu64 " matches in %.3f s: %.0f publishes/s, %.0f matches/s\n",
	       naive_n, naive_matches, naive_s, naive_pps, (double)naive_matches / naive_s);
	printf("ratio (trie / linear publishes per second): %.1f\n", trie_pps / naive_pps);

	for (i = 0; i < n; i++) {
		message_unref(msgs[i]);
		free(filters[i]);
	}
	router_free(r);
	free(msgs);
	free(filters);
	free(expect);
	return 0;
}
