#include "backoff.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A linear table: empty unless logins failed lately, and bounded by
 * configuration (login_fail_max_addresses). */
struct slot {
	char addr[64];
	uint32_t failures;
	uint64_t last_ms;
};

struct auth_backoff {
	uint64_t initial, max, reset;
	size_t cap, n;
	struct slot *slots;
};

struct auth_backoff *auth_backoff_new(uint64_t initial_ms, uint64_t max_ms, uint64_t reset_ms,
				      size_t cap)
{
	struct auth_backoff *b = calloc(1, sizeof(*b));
	if (b)
		auth_backoff_set(b, initial_ms, max_ms, reset_ms, cap);
	return b;
}

void auth_backoff_free(struct auth_backoff *b)
{
	if (!b)
		return;
	free(b->slots);
	free(b);
}

static size_t oldest(const struct auth_backoff *b)
{
	size_t o = 0;
	for (size_t i = 1; i < b->n; i++)
		if (b->slots[i].last_ms < b->slots[o].last_ms)
			o = i;
	return o;
}

static void drop(struct auth_backoff *b, size_t i)
{
	b->slots[i] = b->slots[--b->n];
}

void auth_backoff_set(struct auth_backoff *b, uint64_t initial_ms, uint64_t max_ms,
		      uint64_t reset_ms, size_t cap)
{
	b->initial = initial_ms;
	b->max = max_ms < initial_ms ? initial_ms : max_ms;
	b->reset = reset_ms;
	b->cap = cap ? cap : 1;
	while (b->n > b->cap)
		drop(b, oldest(b));
}

static long find(const struct auth_backoff *b, const char *addr)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->slots[i].addr, addr) == 0)
			return (long)i;
	return -1;
}

uint64_t auth_backoff_fail(struct auth_backoff *b, const char *addr, uint64_t now_ms,
			   uint32_t *count)
{
	long i = find(b, addr);
	if (i >= 0 && now_ms - b->slots[i].last_ms >= b->reset)
		b->slots[i].failures = 0;   /* quiet long enough: start again */
	if (i < 0) {
		if (b->n == b->cap) {
			i = (long)oldest(b);
		} else {
			if (b->n % 64 == 0) {
				struct slot *s = realloc(b->slots, (b->n + 64) * sizeof(*s));
				if (!s) {   /* no memory: no record, the plain delay */
					if (count)
						*count = 1;
					return b->initial;
				}
				b->slots = s;
			}
			i = (long)b->n++;
		}
		snprintf(b->slots[i].addr, sizeof(b->slots[i].addr), "%s", addr);
		b->slots[i].failures = 0;
	}
	struct slot *s = &b->slots[i];
	if (s->failures < UINT32_MAX)
		s->failures++;
	s->last_ms = now_ms;
	if (count)
		*count = s->failures;
	uint64_t d = b->initial;
	for (uint32_t k = 1; k < s->failures && d < b->max; k++)
		d *= 2;
	return d < b->max ? d : b->max;
}

void auth_backoff_success(struct auth_backoff *b, const char *addr)
{
	long i = find(b, addr);
	if (i >= 0)
		drop(b, (size_t)i);
}

size_t auth_backoff_size(const struct auth_backoff *b)
{
	return b->n;
}
