/* utf8: incremental UTF-8 validation per RFC 3629.
 *
 * Instead of a table of allowed second bytes, every byte narrows the range of
 * code points the sequence can still become: after k continuation bytes of an
 * n-byte sequence the final value lies in [cp << 6r, (cp << 6r) | (2^6r - 1)]
 * with r bytes remaining. The sequence is dead as soon as that whole range is
 * overlong (below `min`), above U+10FFFF, or inside the surrogates. This gives
 * the earliest possible verdict (0xF4 0x90, 0xED 0xA0, 0xE0 0x80 and the lone
 * lead bytes 0xC0, 0xC1, 0xF5..0xFF all fail at the byte that decides it),
 * which the WebSocket decoder needs: RFC 6455 8.1 wants a connection failed
 * as soon as the text can no longer be valid, not when the message ends. */
#include "utf8.h"

#define UTF8_MAX 0x10FFFFu
#define SURR_LO 0xD800u
#define SURR_HI 0xDFFFu
/* `need` value that marks a stream already found invalid: sticky, so a caller
 * that keeps feeding after -1 keeps getting -1. */
#define UTF8_DEAD 0xFFFFFFFFu

void utf8_init(struct utf8_state *st)
{
	st->need = 0;
	st->cp = 0;
	st->min = 0;
}

/* Can the partial sequence in st still end as an allowed code point? */
static int range_possible(const struct utf8_state *st)
{
	uint32_t shift = 6 * st->need;
	uint32_t lo = st->cp << shift;
	uint32_t hi = lo | ((1u << shift) - 1);

	if (hi < st->min || lo > UTF8_MAX)
		return 0;
	if (lo >= SURR_LO && hi <= SURR_HI)
		return 0;
	return 1;
}

/* Start a sequence at lead byte b. Returns 0 or -1. */
static int start_seq(struct utf8_state *st, uint8_t b)
{
	if (b < 0xC0 || b > 0xF7)
		return -1;      /* stray continuation byte, or no such length */
	if (b < 0xE0) {
		st->need = 1;
		st->cp = b & 0x1F;
		st->min = 0x80;
	} else if (b < 0xF0) {
		st->need = 2;
		st->cp = b & 0x0F;
		st->min = 0x800;
	} else {
		st->need = 3;
		st->cp = b & 0x07;
		st->min = 0x10000;
	}
	return range_possible(st) ? 0 : -1;
}

int utf8_feed(struct utf8_state *st, const uint8_t *p, size_t n)
{
	size_t i = 0;

	if (st->need == UTF8_DEAD)
		return -1;
	while (i < n) {
		uint8_t b = p[i++];

		if (st->need == 0) {
			if (b < 0x80)
				continue;
			if (start_seq(st, b) < 0)
				goto dead;
			continue;
		}
		if ((b & 0xC0) != 0x80)
			goto dead;
		st->cp = (st->cp << 6) | (b & 0x3F);
		st->need--;
		if (!range_possible(st))
			goto dead;
	}
	return 0;
dead:
	st->need = UTF8_DEAD;
	return -1;
}

int utf8_complete(const struct utf8_state *st)
{
	return st->need == 0;
}

int utf8_valid(const void *p, size_t n)
{
	struct utf8_state st;

	utf8_init(&st);
	return utf8_feed(&st, p, n) == 0 && utf8_complete(&st);
}
