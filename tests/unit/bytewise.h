/* bytewise: feed a parser a prefix, or one byte at a time, as DESIGN.md asks
 * of every parser test. Each call gets a heap copy of exactly the bytes, so
 * AddressSanitizer catches a parser that reads past what it was given.
 * Include after cmocka.h. */
#ifndef WSB_TEST_BYTEWISE_H
#define WSB_TEST_BYTEWISE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The parser under test: >0 consumed, 0 need more, <0 error. */
typedef int (*bytewise_parse_fn)(void *ctx, const uint8_t *buf, size_t n);

/* parse over an exact-size heap copy of p[0..n) (n may be 0). */
static inline int bytewise_copy(const void *p, size_t n, bytewise_parse_fn parse, void *ctx)
{
	uint8_t *copy = malloc(n ? n : 1);

	assert_non_null(copy);
	memcpy(copy, p, n);
	int r = parse(ctx, copy, n);
	free(copy);
	return r;
}

/* The first nonzero result of parse over the growing prefixes of p[0..n),
 * with *at set to the prefix length that gave it (left as it was if every
 * prefix needs more; then 0 is returned). */
static inline int bytewise_feed(const void *p, size_t n, bytewise_parse_fn parse, void *ctx,
				size_t *at)
{
	uint8_t *buf = NULL;
	int r = 0;

	for (size_t k = 1; k <= n; k++) {
		uint8_t *nb = realloc(buf, k);

		assert_non_null(nb);
		buf = nb;
		buf[k - 1] = ((const uint8_t *)p)[k - 1];
		r = parse(ctx, buf, k);
		if (r != 0) {
			*at = k;
			break;
		}
	}
	free(buf);
	return r;
}

#endif
