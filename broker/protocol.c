#include "protocol.h"
#include <stdio.h>
#include <string.h>

#define MAX_PROTOCOLS 8

static const struct protocol *registry[MAX_PROTOCOLS];
static struct proto_env envs[MAX_PROTOCOLS];
static size_t nregistered;

void protocol_register(const struct protocol *p)
{
	for (size_t i = 0; i < nregistered; i++)
		if (registry[i] == p)
			return;
	if (nregistered < MAX_PROTOCOLS) {
		envs[nregistered] = (struct proto_env){0};
		registry[nregistered++] = p;
	}
}

void protocol_registry_clear(void) { nregistered = 0; }

int protocol_init_all(const struct proto_env *base, char *err, size_t errlen)
{
	for (size_t i = 0; i < nregistered; i++) {
		envs[i] = *base;
		envs[i].state = NULL;
		if (registry[i]->init && !(envs[i].state = registry[i]->init(&envs[i]))) {
			snprintf(err, errlen, "%s: could not set up its state", registry[i]->name);
			return -1;
		}
	}
	return 0;
}

const struct proto_env *protocol_env(const struct protocol *p)
{
	for (size_t i = 0; i < nregistered; i++)
		if (registry[i] == p)
			return &envs[i];
	return NULL;
}

void protocol_teardown_all(void)
{
	for (size_t i = nregistered; i-- > 0;) {
		if (registry[i]->teardown && (envs[i].state || !registry[i]->init))
			registry[i]->teardown(&envs[i]);
		envs[i].state = NULL;
	}
}
size_t protocol_count(void) { return nregistered; }
const struct protocol *protocol_at(size_t i) { return i < nregistered ? registry[i] : NULL; }

const struct protocol *protocol_find(const char *name)
{
	for (size_t i = 0; i < nregistered; i++)
		if (strcmp(registry[i]->name, name) == 0)
			return registry[i];
	return NULL;
}

const struct protocol *protocol_find_ws(const char *tok, size_t len, const char **canonical)
{
	for (size_t i = 0; i < nregistered; i++) {
		for (const char *const *w = registry[i]->ws_names; w && *w; w++) {
			if (strlen(*w) == len && memcmp(*w, tok, len) == 0) {
				if (canonical)
					*canonical = *w;
				return registry[i];
			}
		}
	}
	return NULL;
}

const struct protocol *protocol_sniff(const uint8_t *p, size_t n, int *need_more)
{
	int more = 0;
	for (size_t i = 0; i < nregistered; i++) {
		if (!registry[i]->sniff)
			continue;
		int r = registry[i]->sniff(p, n);
		if (r > 0) {
			*need_more = 0;
			return registry[i];
		}
		if (r == 0)
			more = 1;
	}
	*need_more = more;
	return NULL;
}

size_t protocol_ws_names_list(char *out, size_t cap)
{
	size_t n = 0;
	if (cap)
		out[0] = 0;
	for (size_t i = 0; i < nregistered; i++) {
		for (const char *const *w = registry[i]->ws_names; w && *w; w++) {
			int k = snprintf(out + n, cap > n ? cap - n : 0, "%s%s", n ? ", " : "", *w);
			if (k < 0 || (size_t)k >= (cap > n ? cap - n : 0)) {
				if (n < cap)
					out[n] = 0; /* drop the partial name */
				return n;
			}
			n += (size_t)k;
		}
	}
	return n;
}
