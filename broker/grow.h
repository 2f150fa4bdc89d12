/* grow: room for one more element at the end of a malloc'd array whose
 * capacity doubles. Seven places (ACL rules and names, MQTT subscriptions
 * and the inflight window, STOMP subscriptions, pending acks and
 * transaction frames) keep such an array; this is their one copy of the
 * rule. It does not shrink, and it knows nothing of what the elements are. */
#ifndef WSB_GROW_H
#define WSB_GROW_H
#include <stdlib.h>

/* arrayp is the address of the array pointer (e.g. &s->subs), *cap its
 * capacity in elements, n how many are in use, elem the size of one, first
 * the capacity of the first allocation. 0 when there is room for element
 * n, -1 when out of memory (the array and *cap are left as they were). */
static inline int grow(void *arrayp, size_t *cap, size_t n, size_t elem, size_t first)
{
	void **v = arrayp;

	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : first;
	void *p = realloc(*v, c * elem);
	if (!p)
		return -1;
	*v = p;
	*cap = c;
	return 0;
}

#endif
