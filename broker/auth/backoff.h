/* backoff: failed logins per client address, and how long the next
 * refusal to that address waits. The first failure waits `initial` ms,
 * each further one twice the one before, never more than `max`; a success
 * from the address forgets it, and so do `reset_ms` without a failure.
 * The table holds at most `cap` addresses: a new one then takes the place
 * of the one that failed least recently. A success is never delayed.
 * Pure: the caller passes the time; nothing here logs. */
#ifndef WSB_AUTH_BACKOFF_H
#define WSB_AUTH_BACKOFF_H
#include <stddef.h>
#include <stdint.h>

struct auth_backoff;

struct auth_backoff *auth_backoff_new(uint64_t initial_ms, uint64_t max_ms, uint64_t reset_ms,
				      size_t cap);
void auth_backoff_free(struct auth_backoff *b);
/* New bounds for later failures; the addresses known so far stay (the
 * oldest go if cap shrank). */
void auth_backoff_set(struct auth_backoff *b, uint64_t initial_ms, uint64_t max_ms,
		      uint64_t reset_ms, size_t cap);
/* A failure from addr at now: the delay before its refusal, and *count
 * (may be NULL) the failures in a row from addr including this one. */
uint64_t auth_backoff_fail(struct auth_backoff *b, const char *addr, uint64_t now_ms,
			   uint32_t *count);
void auth_backoff_success(struct auth_backoff *b, const char *addr);
size_t auth_backoff_size(const struct auth_backoff *b);

#endif
