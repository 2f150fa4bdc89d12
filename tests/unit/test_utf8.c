/* Unit tests for utf8.c: RFC 3629 validity, earliest detection, and feeding
 * in pieces. The exhaustive cases compare against an oracle built from the
 * definition (the set of encodings of U+0000..U+10FFFF minus surrogates). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "utf8.h"

/* Reference encoder in a given number of bytes (1..4), overlong allowed, so
 * the tests can build overlong and out-of-range sequences too. */
static size_t enc_len(uint32_t cp, size_t len, uint8_t *out)
{
	static const uint8_t lead[5] = { 0, 0x00, 0xC0, 0xE0, 0xF0 };
	for (size_t i = len - 1; i > 0; i--) {
		out[i] = 0x80 | (cp & 0x3F);
		cp >>= 6;
	}
	out[0] = lead[len] | (uint8_t)cp;
	return len;
}

static size_t enc(uint32_t cp, uint8_t *out)
{
	size_t len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	return enc_len(cp, len, out);
}

/* Feeds one byte at a time; returns the index of the byte that made the
 * stream invalid, or n when every byte was accepted. */
static size_t first_bad(const uint8_t *p, size_t n)
{
	struct utf8_state st;
	utf8_init(&st);
	for (size_t i = 0; i < n; i++)
		if (utf8_feed(&st, p + i, 1) < 0)
			return i;
	return n;
}

static void test_init_is_complete(void **state)
{
	struct utf8_state st;
	utf8_init(&st);
	assert_int_equal(utf8_complete(&st), 1);
	assert_int_equal(utf8_feed(&st, NULL, 0), 0);
	assert_int_equal(utf8_valid("", 0), 1);
}

static void test_valid_boundaries(void **state)
{
	static const uint32_t cps[] = { 0x0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF,
		0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF };
	for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
		uint8_t b[4];
		size_t n = enc(cps[i], b);
		assert_int_equal(utf8_valid(b, n), 1);
		assert_int_equal(first_bad(b, n), n);
	}
	assert_int_equal(utf8_valid("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", 15), 1);
}

struct bad_case {
	const char *bytes;
	size_t len;
	size_t bad_at;      /* index of the first byte that proves invalidity */
};

static void test_invalid_detected_early(void **state)
{
	static const struct bad_case cases[] = {
		{ "\x80", 1, 0 },                 /* stray continuation */
		{ "\xBF", 1, 0 },
		{ "a\x80", 2, 1 },
		{ "\xC0\x80", 2, 0 },             /* C0, C1 can only be overlong */
		{ "\xC1\xBF", 2, 0 },
		{ "\xF5\x80\x80\x80", 4, 0 },     /* leads above U+10FFFF */
		{ "\xF7\xBF\xBF\xBF", 4, 0 },
		{ "\xF8\x88\x80\x80\x80", 5, 0 }, /* 5- and 6-byte forms */
		{ "\xFC\x84\x80\x80\x80\x80", 6, 0 },
		{ "\xFE", 1, 0 },
		{ "\xFF", 1, 0 },
		{ "\xE0\x80\x80", 3, 1 },         /* overlong 3-byte */
		{ "\xE0\x9F\xBF", 3, 1 },
		{ "\xF0\x80\x80\x80", 4, 1 },     /* overlong 4-byte */
		{ "\xF0\x8F\xBF\xBF", 4, 1 },
		{ "\xED\xA0\x80", 3, 1 },         /* surrogates */
		{ "\xED\xBF\xBF", 3, 1 },
		{ "\xED\xA0\x80\xED\xB0\x80", 6, 1 },
		{ "\xF4\x90\x80\x80", 4, 1 },     /* U+110000 */
		{ "\xF4\xBF\xBF\xBF", 4, 1 },
		{ "\xC3" "a", 2, 1 },             /* lead then ASCII */
		{ "\xE2\x82" "a", 3, 2 },
		{ "\xF0\x9F\x98" "a", 4, 3 },
		{ "\xE2\x82\xAC\x80", 4, 3 },     /* one continuation too many */
		{ "\xC3\xC3", 2, 1 },             /* lead after lead */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct bad_case *c = &cases[i];
		assert_int_equal(first_bad((const uint8_t *)c->bytes, c->len), c->bad_at);
		assert_int_equal(utf8_valid(c->bytes, c->len), 0);
		struct utf8_state st;
		utf8_init(&st);
		assert_int_equal(utf8_feed(&st, (const uint8_t *)c->bytes, c->len), -1);
	}
}

static void test_truncated_is_prefix_not_complete(void **state)
{
	static const char *seqs[] = { "\xC3", "\xE2", "\xE2\x82", "\xF0",
		"\xF0\x9F", "\xF0\x9F\x98", "\xF4\x8F\xBF" };
	for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
		struct utf8_state st;
		size_t n = strlen(seqs[i]);
		utf8_init(&st);
		assert_int_equal(utf8_feed(&st, (const uint8_t *)seqs[i], n), 0);
		assert_int_equal(utf8_complete(&st), 0);
		assert_int_equal(utf8_valid(seqs[i], n), 0);
	}
}

static void test_sticky_error(void **state)
{
	struct utf8_state st;
	utf8_init(&st);
	assert_int_equal(utf8_feed(&st, (const uint8_t *)"\xFF", 1), -1);
	assert_int_equal(utf8_feed(&st, (const uint8_t *)"abc", 3), -1);
	assert_int_equal(utf8_feed(&st, NULL, 0), -1);
	assert_int_equal(utf8_complete(&st), 0);
}

/* A text split into two feeds at every position, and byte by byte, gives the
 * same verdict as the whole buffer: code points cut across fragments. */
static void test_split_everywhere(void **state)
{
	static const char text[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBFz";
	size_t n = sizeof text - 1;
	for (size_t cut = 0; cut <= n; cut++) {
		struct utf8_state st;
		utf8_init(&st);
		assert_int_equal(utf8_feed(&st, (const uint8_t *)text, cut), 0);
		/* a cut inside a code point leaves the state incomplete */
		int inside = cut < n && ((uint8_t)text[cut] & 0xC0) == 0x80;
		assert_int_equal(utf8_complete(&st), !inside);
		assert_int_equal(utf8_feed(&st, (const uint8_t *)text + cut, n - cut), 0);
		assert_int_equal(utf8_complete(&st), 1);
	}
	assert_int_equal(first_bad((const uint8_t *)text, n), n);
}

/* Every scalar value is valid in its shortest form; surrogates and values
 * above U+10FFFF in 4-byte form are not; every overlong form is not. */
static void test_all_code_points(void **state)
{
	uint8_t b[4];
	for (uint32_t cp = 0; cp <= 0x1FFFFF; cp++) {
		size_t n = enc(cp, b);
		int want = cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
		assert_int_equal(utf8_valid(b, n), want);
		if (cp < 0x10000)
			assert_int_equal(utf8_valid(b, enc_len(cp, 4, b)), 0);
		if (cp < 0x800)
			assert_int_equal(utf8_valid(b, enc_len(cp, 3, b)), 0);
		if (cp < 0x80)
			assert_int_equal(utf8_valid(b, enc_len(cp, 2, b)), 0);
	}
}

/* Oracle: which 2- and 3-byte strings can begin a valid UTF-8 string. Built
 * from the encodings of every scalar value, then compared with utf8_feed on
 * every pair and on every triple that starts with a 3- or 4-byte lead. */
#define LEAD_BASE 0xE0
#define NLEADS (0xF8 - LEAD_BASE)
static uint8_t ok_lead[256];
static uint8_t ok_pair_seq[256][256];     /* prefix of one encoding */
static uint8_t *ok_triple;                /* [lead-E0][b][c], bits as bytes */

static void build_oracle(void)
{
	uint8_t b[4];
	ok_triple = calloc((size_t)NLEADS << 16, 1);
	assert_non_null(ok_triple);
	for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
		if (cp >= 0xD800 && cp <= 0xDFFF)
			continue;
		size_t n = enc(cp, b);
		ok_lead[b[0]] = 1;
		if (n >= 2)
			ok_pair_seq[b[0]][b[1]] = 1;
		if (n >= 3)
			ok_triple[((size_t)(b[0] - LEAD_BASE) << 16) | (b[1] << 8) | b[2]] = 1;
	}
}

static int oracle_pair(unsigned a, unsigned c)
{
	if (a < 0x80)
		return ok_lead[c];
	return ok_pair_seq[a][c];
}

static void test_exhaustive_prefixes(void **state)
{
	build_oracle();
	for (unsigned a = 0; a < 256; a++) {
		for (unsigned c = 0; c < 256; c++) {
			uint8_t p[2] = { (uint8_t)a, (uint8_t)c };
			struct utf8_state st;
			utf8_init(&st);
			int ok = utf8_feed(&st, p, 2) == 0;
			if (ok != oracle_pair(a, c))
				fail_msg("pair %02x %02x: got %d", a, c, ok);
		}
	}
	for (unsigned a = LEAD_BASE; a < 0xF8; a++) {
		for (unsigned b1 = 0; b1 < 256; b1++) {
			for (unsigned c = 0; c < 256; c++) {
				uint8_t p[3] = { (uint8_t)a, (uint8_t)b1, (uint8_t)c };
				struct utf8_state st;
				utf8_init(&st);
				int ok = utf8_feed(&st, p, 3) == 0;
				int want = ok_triple[((size_t)(a - LEAD_BASE) << 16) | (b1 << 8) | c];
				if (ok != want)
					fail_msg("triple %02x %02x %02x: got %d", a, b1, c, ok);
			}
		}
	}
	free(ok_triple);
	ok_triple = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_is_complete),
		cmocka_unit_test(test_valid_boundaries),
		cmocka_unit_test(test_invalid_detected_early),
		cmocka_unit_test(test_truncated_is_prefix_not_complete),
		cmocka_unit_test(test_sticky_error),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_all_code_points),
		cmocka_unit_test(test_exhaustive_prefixes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
