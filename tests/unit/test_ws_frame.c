/* Unit tests for ws_frame.c: RFC 6455 header parsing (whole, every prefix,
 * byte by byte), byte-exact encoding, unmasking in pieces, message rules,
 * close payloads and the handshake key/accept values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bytewise.h"

#include "net/ws_frame.h"

#define B(...) ((const uint8_t[]){ __VA_ARGS__ }), sizeof((const uint8_t[]){ __VA_ARGS__ })

struct ws_feed {
	bool require_mask;
	struct ws_frame *f;
};

static int ws_feed_parse(void *ctx, const uint8_t *buf, size_t n)
{
	struct ws_feed *x = ctx;
	return ws_frame_parse_header(buf, n, x->require_mask, x->f);
}

static int parse_copy(const uint8_t *p, size_t n, bool require_mask, struct ws_frame *f)
{
	struct ws_feed x = {require_mask, f};
	return bytewise_copy(p, n, ws_feed_parse, &x);
}

/* Bytes arriving one per read into a buffer grown to exactly what arrived.
 * Returns the first nonzero result and sets *at to the length it came at. */
static int feed_bytewise(const uint8_t *p, size_t n, bool require_mask, size_t *at,
			 struct ws_frame *f)
{
	struct ws_feed x = {require_mask, f};
	*at = 0;
	return bytewise_feed(p, n, ws_feed_parse, &x, at);
}

/* A complete header of n bytes: 0 for every proper prefix, n whole, n byte by
 * byte, n with payload bytes after it. */
static void header_ok(const uint8_t *p, size_t n, bool require_mask, struct ws_frame *f)
{
	struct ws_frame tmp;
	size_t at;
	uint8_t more[WS_MAX_HEADER + 3];
	for (size_t k = 0; k < n; k++)
		if (parse_copy(p, k, require_mask, &tmp) != 0)
			fail_msg("prefix %zu of %zu not 0", k, n);
	assert_int_equal(feed_bytewise(p, n, require_mask, &at, &tmp), (int)n);
	assert_int_equal(at, n);
	memcpy(more, p, n);
	memset(more + n, 0xAB, 3);
	assert_int_equal(parse_copy(more, n + 3, require_mask, &tmp), (int)n);
	assert_int_equal(ws_frame_parse_header(p, n, require_mask, f), (int)n);
	assert_int_equal(f->header_len, n);
}

/* A bad header: 0 for prefixes shorter than `first`, err from there on,
 * byte by byte stopping at `first`. */
static void header_err(const uint8_t *p, size_t n, bool require_mask, int err, size_t first)
{
	struct ws_frame f;
	size_t at;
	for (size_t k = 0; k <= n; k++) {
		int r = parse_copy(p, k, require_mask, &f);
		int want = k < first ? 0 : err;
		if (r != want)
			fail_msg("prefix %zu of %zu: got %d, want %d", k, n, r, want);
	}
	assert_int_equal(feed_bytewise(p, n, require_mask, &at, &f), err);
	assert_int_equal(at, first);
}

static void test_rfc_examples(void **state)
{
	struct ws_frame f;
	/* 5.7: a single-frame unmasked text message */
	header_ok(B(0x81, 0x05), false, &f);
	assert_true(f.fin);
	assert_int_equal(f.opcode, WS_OP_TEXT);
	assert_false(f.masked);
	assert_int_equal(f.payload_len, 5);
	assert_int_equal(ws_frame_parse_header(B(0x81, 0x05), true, &f), -1002);

	/* a single-frame masked text message */
	uint8_t masked[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	header_ok(masked, 6, true, &f);
	assert_true(f.masked);
	assert_memory_equal(f.mask, masked + 2, 4);
	assert_int_equal(f.payload_len, 5);
	ws_unmask(masked + 6, 5, f.mask, 0);
	assert_memory_equal(masked + 6, "Hello", 5);

	/* a fragmented unmasked text message */
	header_ok(B(0x01, 0x03), false, &f);
	assert_false(f.fin);
	assert_int_equal(f.opcode, WS_OP_TEXT);
	header_ok(B(0x80, 0x02), false, &f);
	assert_true(f.fin);
	assert_int_equal(f.opcode, WS_OP_CONT);

	/* unmasked ping, masked pong */
	header_ok(B(0x89, 0x05), false, &f);
	assert_int_equal(f.opcode, WS_OP_PING);
	header_ok(B(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d), true, &f);
	assert_int_equal(f.opcode, WS_OP_PONG);
	assert_int_equal(f.payload_len, 5);

	/* 256 bytes and 64 KiB in one unmasked binary message */
	header_ok(B(0x82, 0x7E, 0x01, 0x00), false, &f);
	assert_int_equal(f.payload_len, 256);
	header_ok(B(0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0), false, &f);
	assert_int_equal(f.payload_len, 65536);
	assert_int_equal(f.opcode, WS_OP_BINARY);
}

static void test_lengths(void **state)
{
	struct ws_frame f;
	header_ok(B(0x82, 0x80, 1, 2, 3, 4), true, &f);
	assert_int_equal(f.payload_len, 0);
	header_ok(B(0x82, 0xFD, 1, 2, 3, 4), true, &f);
	assert_int_equal(f.payload_len, 125);
	header_ok(B(0x82, 0xFE, 0x00, 0x7E, 1, 2, 3, 4), true, &f);
	assert_int_equal(f.payload_len, 126);
	assert_memory_equal(f.mask, ((uint8_t[]){ 1, 2, 3, 4 }), 4);
	header_ok(B(0x82, 0xFE, 0xFF, 0xFF, 1, 2, 3, 4), true, &f);
	assert_int_equal(f.payload_len, 65535);
	header_ok(B(0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 8, 7, 6), true, &f);
	assert_int_equal(f.payload_len, 65536);
	assert_int_equal(f.header_len, WS_MAX_HEADER);
	assert_memory_equal(f.mask, ((uint8_t[]){ 9, 8, 7, 6 }), 4);
	header_ok(B(0x02, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4), true, &f);
	assert_int_equal(f.payload_len, UINT64_C(0x7FFFFFFFFFFFFFFF));
	assert_false(f.fin);
	/* control frames may carry up to 125 bytes */
	header_ok(B(0x88, 0xFD, 1, 2, 3, 4), true, &f);
	assert_int_equal(f.opcode, WS_OP_CLOSE);
	assert_int_equal(f.payload_len, 125);
}

static void test_header_errors(void **state)
{
	/* RSV1, RSV2, RSV3: no extension negotiated */
	header_err(B(0xC1, 0x80, 1, 2, 3, 4), true, -1002, 1);
	header_err(B(0xA1, 0x80, 1, 2, 3, 4), true, -1002, 1);
	header_err(B(0x91, 0x80, 1, 2, 3, 4), true, -1002, 1);
	/* every reserved opcode */
	static const uint8_t reserved[] = { 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF };
	for (size_t i = 0; i < sizeof reserved; i++) {
		uint8_t h[6] = { (uint8_t)(0x80 | reserved[i]), 0x80, 1, 2, 3, 4 };
		header_err(h, sizeof h, true, -1002, 1);
	}
	/* fragmented control frames */
	header_err(B(0x08, 0x80, 1, 2, 3, 4), true, -1002, 1);
	header_err(B(0x09, 0x80, 1, 2, 3, 4), true, -1002, 1);
	header_err(B(0x0A, 0x80, 1, 2, 3, 4), true, -1002, 1);
	/* control frames longer than 125, in any length form */
	header_err(B(0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4), true, -1002, 2);
	header_err(B(0x88, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4), true, -1002, 2);
	/* unmasked from a client */
	header_err(B(0x81, 0x05), true, -1002, 2);
	header_err(B(0x82, 0x7E, 0x01, 0x00), true, -1002, 2);
	/* 64-bit length with the top bit set: seen at its first byte */
	header_err(B(0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4), true, -1002, 3);
	header_err(B(0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4), true, -1002, 3);
	/* lengths not in their shortest form */
	header_err(B(0x82, 0xFE, 0x00, 0x7D, 1, 2, 3, 4), true, -1002, 4);
	header_err(B(0x82, 0xFE, 0x00, 0x00, 1, 2, 3, 4), true, -1002, 4);
	header_err(B(0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4), true, -1002, 10);
	header_err(B(0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0x7D, 1, 2, 3, 4), true, -1002, 10);
}

static void test_encode_exact(void **state)
{
	uint8_t out[WS_MAX_HEADER];
	static const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	struct ws_frame f;

	assert_int_equal(ws_frame_encode_header(out, WS_OP_TEXT, true, 5, NULL), 2);
	assert_memory_equal(out, ((uint8_t[]){ 0x81, 0x05 }), 2);
	assert_int_equal(ws_frame_encode_header(out, WS_OP_TEXT, true, 5, mask), 6);
	assert_memory_equal(out, ((uint8_t[]){ 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d }), 6);
	assert_int_equal(ws_frame_encode_header(out, WS_OP_BINARY, false, 0, NULL), 2);
	assert_memory_equal(out, ((uint8_t[]){ 0x02, 0x00 }), 2);
	assert_int_equal(ws_frame_encode_header(out, WS_OP_CLOSE, true, 125, NULL), 2);
	assert_memory_equal(out, ((uint8_t[]){ 0x88, 0x7D }), 2);
	assert_int_equal(ws_frame_encode_header(out, WS_OP_BINARY, true, 126, NULL), 4);
	assert_memory_equal(out, ((uint8_t[]){ 0x82, 0x7E, 0x00, 0x7E }), 4);
	assert_int_equal(ws_frame_encode_header(out, WS_OP_BINARY, true, 65535, NULL), 4);
	assert_memory_equal(out, ((uint8_t[]){ 0x82, 0x7E, 0xFF, 0xFF }), 4);
	assert_int_equal(ws_frame_encode_header(out, WS_OP_CONT, true, 65536, NULL), 10);
	assert_memory_equal(out, ((uint8_t[]){ 0x80, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0 }), 10);
	assert_int_equal(ws_frame_encode_header(out, WS_OP_TEXT, false, UINT64_C(0x0123456789ABCDEF), mask), 14);
	assert_memory_equal(out, ((uint8_t[]){ 0x01, 0xFF, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB,
					      0xCD, 0xEF, 0x37, 0xfa, 0x21, 0x3d }), 14);

	/* round trip through the parser at every length boundary */
	static const uint64_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536,
		UINT64_C(0xFFFFFFFF), UINT64_C(0x100000000), UINT64_C(0x7FFFFFFFFFFFFFFF) };
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		for (int m = 0; m < 2; m++) {
			size_t n = ws_frame_encode_header(out, WS_OP_BINARY, true, lens[i], m ? mask : NULL);
			header_ok(out, n, m, &f);
			assert_int_equal(f.payload_len, lens[i]);
			assert_int_equal(f.masked, m);
			assert_true(f.fin);
			assert_int_equal(f.rsv, 0);
			assert_int_equal(f.opcode, WS_OP_BINARY);
		}
	}
}

static void test_unmask_pieces(void **state)
{
	static const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	uint8_t plain[41], ref[41], buf[41];
	for (size_t i = 0; i < sizeof plain; i++)
		plain[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < sizeof plain; i++)
		ref[i] = plain[i] ^ mask[i % 4];
	/* every two-piece split, and byte by byte */
	for (size_t cut = 0; cut <= sizeof plain; cut++) {
		memcpy(buf, ref, sizeof buf);
		ws_unmask(buf, cut, mask, 0);
		ws_unmask(buf + cut, sizeof buf - cut, mask, cut);
		assert_memory_equal(buf, plain, sizeof plain);
	}
	memcpy(buf, ref, sizeof buf);
	for (size_t i = 0; i < sizeof buf; i++)
		ws_unmask(buf + i, 1, mask, i);
	assert_memory_equal(buf, plain, sizeof plain);
	/* offsets beyond 32 bits keep the phase */
	memcpy(buf, ref + 1, 8);
	ws_unmask(buf, 8, mask, UINT64_C(0x100000001));
	assert_memory_equal(buf, plain + 1, 8);
	ws_unmask(buf, 0, mask, 3);
}

/* ---- message state ---- */

static struct ws_frame data_frame(uint8_t opcode, bool fin, uint64_t len)
{
	struct ws_frame f = { .fin = fin, .opcode = opcode, .masked = true, .payload_len = len };
	return f;
}

static void test_fragmented_text(void **state)
{
	struct ws_msg_state st;
	struct ws_frame a = data_frame(WS_OP_TEXT, false, 3), b = data_frame(WS_OP_CONT, true, 2);
	ws_msg_init(&st);
	assert_int_equal(ws_msg_begin_frame(&st, &a, 100), 0);
	assert_int_equal(ws_msg_payload(&st, &a, (const uint8_t *)"Hel", 3, true), 0);
	assert_int_equal(st.opcode, WS_OP_TEXT);
	assert_int_equal(st.len, 3);
	assert_int_equal(ws_msg_begin_frame(&st, &b, 100), 0);
	assert_int_equal(ws_msg_payload(&st, &b, (const uint8_t *)"l", 1, false), 0);
	assert_int_equal(st.opcode, WS_OP_TEXT);
	assert_int_equal(ws_msg_payload(&st, &b, (const uint8_t *)"o", 1, true), 0);
	assert_int_equal(st.opcode, 0);      /* message over */
	assert_int_equal(st.len, 0);
	/* an empty final text frame is a whole message */
	struct ws_frame e = data_frame(WS_OP_TEXT, true, 0);
	assert_int_equal(ws_msg_begin_frame(&st, &e, 100), 0);
	assert_int_equal(ws_msg_payload(&st, &e, NULL, 0, true), 0);
	assert_int_equal(st.opcode, 0);
}

static void test_continuation_rules(void **state)
{
	struct ws_msg_state st;
	struct ws_frame cont = data_frame(WS_OP_CONT, true, 1);
	struct ws_frame t1 = data_frame(WS_OP_TEXT, false, 1);
	struct ws_frame b1 = data_frame(WS_OP_BINARY, false, 1);
	struct ws_frame ping = data_frame(WS_OP_PING, true, 0);
	ws_msg_init(&st);
	/* nothing to continue */
	assert_int_equal(ws_msg_begin_frame(&st, &cont, 100), -1002);
	/* a new message while one is unfinished */
	assert_int_equal(ws_msg_begin_frame(&st, &t1, 100), 0);
	assert_int_equal(ws_msg_payload(&st, &t1, (const uint8_t *)"a", 1, true), 0);
	assert_int_equal(ws_msg_begin_frame(&st, &t1, 100), -1002);
	assert_int_equal(ws_msg_begin_frame(&st, &b1, 100), -1002);
	/* control frames are not message frames */
	assert_int_equal(ws_msg_begin_frame(&st, &ping, 100), -1002);
	/* the message in progress survives the refusals and can be finished */
	assert_int_equal(ws_msg_begin_frame(&st, &cont, 100), 0);
	assert_int_equal(ws_msg_payload(&st, &cont, (const uint8_t *)"b", 1, true), 0);
	assert_int_equal(st.opcode, 0);
	assert_int_equal(ws_msg_begin_frame(&st, &cont, 100), -1002);
	/* payload with no frame begun */
	assert_int_equal(ws_msg_payload(&st, &cont, (const uint8_t *)"b", 1, true), -1002);
	/* binary message of several fragments keeps its opcode */
	assert_int_equal(ws_msg_begin_frame(&st, &b1, 100), 0);
	struct ws_frame c2 = data_frame(WS_OP_CONT, false, 1);
	assert_int_equal(ws_msg_begin_frame(&st, &c2, 100), 0);
	assert_int_equal(st.opcode, WS_OP_BINARY);
}

static void test_size_limit_from_header(void **state)
{
	struct ws_msg_state st;
	ws_msg_init(&st);
	struct ws_frame big = data_frame(WS_OP_BINARY, true, 11);
	struct ws_frame fits = data_frame(WS_OP_TEXT, true, 10);
	/* refused before any payload byte is fed */
	assert_int_equal(ws_msg_begin_frame(&st, &big, 10), -1009);
	assert_int_equal(ws_msg_begin_frame(&st, &fits, 10), 0);
	assert_int_equal(ws_msg_payload(&st, &fits, (const uint8_t *)"0123456789", 10, true), 0);
	/* across fragments: 6 + 4 fits, 6 + 5 does not */
	struct ws_frame f6 = data_frame(WS_OP_BINARY, false, 6);
	struct ws_frame c4 = data_frame(WS_OP_CONT, true, 4), c5 = data_frame(WS_OP_CONT, true, 5);
	assert_int_equal(ws_msg_begin_frame(&st, &f6, 10), 0);
	assert_int_equal(ws_msg_payload(&st, &f6, (const uint8_t *)"abcdef", 6, true), 0);
	assert_int_equal(ws_msg_begin_frame(&st, &c5, 10), -1009);
	assert_int_equal(ws_msg_begin_frame(&st, &c4, 10), 0);
	assert_int_equal(ws_msg_payload(&st, &c4, (const uint8_t *)"ghij", 4, true), 0);
	/* no overflow with a huge announced length after some bytes */
	struct ws_frame huge = data_frame(WS_OP_CONT, true, UINT64_MAX >> 1);
	assert_int_equal(ws_msg_begin_frame(&st, &f6, UINT64_MAX), 0);
	assert_int_equal(ws_msg_payload(&st, &f6, (const uint8_t *)"abcdef", 6, true), 0);
	assert_int_equal(ws_msg_begin_frame(&st, &huge, UINT64_MAX >> 1), -1009);
	assert_int_equal(ws_msg_begin_frame(&st, &huge, UINT64_MAX), 0);
}

/* Text cut into two frames at every byte and each frame fed in two pieces at
 * every byte: code points split across fragments and across reads. Returns
 * the first error, 0 when the message was accepted. */
static int text_in_two_frames(const char *s, size_t n, size_t cut, size_t piece)
{
	struct ws_msg_state st;
	struct ws_frame a = data_frame(WS_OP_TEXT, false, cut);
	struct ws_frame b = data_frame(WS_OP_CONT, true, n - cut);
	const uint8_t *p = (const uint8_t *)s;
	int r;
	ws_msg_init(&st);
	if ((r = ws_msg_begin_frame(&st, &a, 1000)) != 0)
		return r;
	size_t pa = piece < cut ? piece : cut;
	if ((r = ws_msg_payload(&st, &a, p, pa, false)) != 0 ||
	    (r = ws_msg_payload(&st, &a, p + pa, cut - pa, true)) != 0)
		return r;
	if ((r = ws_msg_begin_frame(&st, &b, 1000)) != 0)
		return r;
	size_t pb = piece < n - cut ? piece : n - cut;
	if ((r = ws_msg_payload(&st, &b, p + cut, pb, false)) != 0 ||
	    (r = ws_msg_payload(&st, &b, p + cut + pb, n - cut - pb, true)) != 0)
		return r;
	assert_int_equal(st.opcode, 0);
	return 0;
}

static void test_text_utf8_across_fragments(void **state)
{
	static const char good[] = "a\xE2\x82\xAC\xF0\x9F\x98\x80\xC3\xA9z";
	size_t n = sizeof good - 1;
	for (size_t cut = 0; cut <= n; cut++)
		for (size_t piece = 0; piece <= n; piece++)
			assert_int_equal(text_in_two_frames(good, n, cut, piece), 0);
	/* invalid anywhere, or truncated at the end: 1007 */
	static const char *bad[] = { "ab\xF4\x90\x80\x80", "\xED\xA0\x80", "ab\xC0\xAF",
		"ab\xE2\x82", "\xF0\x9F\x98", "\x80" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t m = strlen(bad[i]);
		for (size_t cut = 0; cut <= m; cut++)
			for (size_t piece = 0; piece <= m; piece++)
				assert_int_equal(text_in_two_frames(bad[i], m, cut, piece), -1007);
	}
}

static void test_utf8_error_as_early_as_possible(void **state)
{
	struct ws_msg_state st;
	struct ws_frame a = data_frame(WS_OP_TEXT, false, 4);
	ws_msg_init(&st);
	assert_int_equal(ws_msg_begin_frame(&st, &a, 100), 0);
	/* F4 90 can never be valid: refused in the middle of a non-final frame */
	assert_int_equal(ws_msg_payload(&st, &a, (const uint8_t *)"\xF4", 1, false), 0);
	assert_int_equal(ws_msg_payload(&st, &a, (const uint8_t *)"\x90", 1, false), -1007);
	/* a non-final frame may end inside a code point */
	ws_msg_init(&st);
	assert_int_equal(ws_msg_begin_frame(&st, &a, 100), 0);
	assert_int_equal(ws_msg_payload(&st, &a, (const uint8_t *)"ab\xE2\x82", 4, true), 0);
	/* binary messages are not UTF-8 checked */
	struct ws_frame bin = data_frame(WS_OP_BINARY, true, 2);
	ws_msg_init(&st);
	assert_int_equal(ws_msg_begin_frame(&st, &bin, 100), 0);
	assert_int_equal(ws_msg_payload(&st, &bin, (const uint8_t *)"\xFF\xC0", 2, true), 0);
}

/* ---- close ---- */

static void test_close_code_valid(void **state)
{
	for (unsigned c = 0; c <= 70000; c++) {
		int want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
			   (c >= 3000 && c <= 4999);
		if (ws_close_code_valid(c) != want)
			fail_msg("code %u", c);
	}
	assert_int_equal(ws_close_code_valid(1004), 0);
	assert_int_equal(ws_close_code_valid(1005), 0);
	assert_int_equal(ws_close_code_valid(1006), 0);
	assert_int_equal(ws_close_code_valid(1015), 0);
}

static void test_close_payload_check(void **state)
{
	uint16_t code = 0;
	uint8_t p[126];
	assert_int_equal(ws_close_payload_check(NULL, 0, &code), 0);
	assert_int_equal(code, 1005);
	assert_int_equal(ws_close_payload_check(B(0x03), &code), -1002);
	assert_int_equal(ws_close_payload_check(B(0x03, 0xE8), &code), 0);
	assert_int_equal(code, 1000);
	assert_int_equal(ws_close_payload_check(B(0x0F, 0xA0, 'o', 'k'), &code), 0);
	assert_int_equal(code, 4000);
	/* one code from each class that a peer must not send */
	static const unsigned bad[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 2000,
		2999, 5000, 65535 };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		code = 7;
		uint8_t b[2] = { (uint8_t)(bad[i] >> 8), (uint8_t)bad[i] };
		assert_int_equal(ws_close_payload_check(b, 2, &code), -1002);
		assert_int_equal(code, 7);
	}
	static const unsigned good[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009,
		1010, 1011, 1012, 1013, 1014, 3000, 4999 };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		uint8_t b[2] = { (uint8_t)(good[i] >> 8), (uint8_t)good[i] };
		assert_int_equal(ws_close_payload_check(b, 2, &code), 0);
		assert_int_equal(code, good[i]);
	}
	/* reason must be UTF-8, whole */
	assert_int_equal(ws_close_payload_check(B(0x03, 0xE8, 0xC3, 0xA9), &code), 0);
	assert_int_equal(ws_close_payload_check(B(0x03, 0xE8, 0xC3), &code), -1007);
	assert_int_equal(ws_close_payload_check(B(0x03, 0xE8, 0xFF, 'a'), &code), -1007);
	assert_int_equal(ws_close_payload_check(B(0x03, 0xE8, 0xED, 0xA0, 0x80), &code), -1007);
	/* an invalid code is a protocol error even with a bad reason */
	assert_int_equal(ws_close_payload_check(B(0x03, 0xEC, 0xFF), &code), -1002);
	/* 125 bytes is the most a control frame holds */
	p[0] = 0x03;
	p[1] = 0xE8;
	memset(p + 2, 'x', sizeof p - 2);
	assert_int_equal(ws_close_payload_check(p, 125, &code), 0);
	assert_int_equal(ws_close_payload_check(p, 126, &code), -1002);
}

static void test_close_payload_encode(void **state)
{
	uint8_t out[WS_MAX_CONTROL];
	char reason[200];
	uint16_t code;

	assert_int_equal(ws_close_payload_encode(out, WS_CLOSE_NO_STATUS, "ignored"), 0);
	assert_int_equal(ws_close_payload_encode(out, 1000, NULL), 2);
	assert_memory_equal(out, ((uint8_t[]){ 0x03, 0xE8 }), 2);
	assert_int_equal(ws_close_payload_encode(out, 1009, "too big"), 9);
	assert_memory_equal(out, "\x03\xF1too big", 9);
	/* long ASCII: cut to 123 bytes of reason */
	memset(reason, 'r', sizeof reason - 1);
	reason[sizeof reason - 1] = '\0';
	assert_int_equal(ws_close_payload_encode(out, 1008, reason), 125);
	assert_memory_equal(out + 2, reason, 123);
	assert_int_equal(ws_close_payload_check(out, 125, &code), 0);
	/* a 2-byte character straddling byte 123 is dropped whole */
	memset(reason, 'r', sizeof reason - 1);
	memcpy(reason + 122, "\xC3\xA9", 2);
	assert_int_equal(ws_close_payload_encode(out, 1008, reason), 124);
	assert_int_equal(ws_close_payload_check(out, 124, &code), 0);
	assert_int_equal(code, 1008);
	/* a 4-byte character ending exactly at byte 123 is kept */
	memset(reason, 'r', sizeof reason - 1);
	memcpy(reason + 119, "\xF0\x9F\x98\x80", 4);
	assert_int_equal(ws_close_payload_encode(out, 1000, reason), 125);
	assert_memory_equal(out + 121, "\xF0\x9F\x98\x80", 4);
	/* a reason that is not UTF-8 is left out rather than sent */
	assert_int_equal(ws_close_payload_encode(out, 1011, "bad \xFF"), 2);
	assert_memory_equal(out, ((uint8_t[]){ 0x03, 0xF3 }), 2);
}

/* ---- handshake ---- */

static void test_accept(void **state)
{
	char out[29];
	memset(out, 'X', sizeof out);
	ws_accept_compute("dGhlIHNhbXBsZSBub25jZQ==", 24, out);   /* RFC 6455 1.3 */
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	ws_accept_compute("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
	assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
	/* the length bounds the key: bytes after it do not count */
	ws_accept_compute("dGhlIHNhbXBsZSBub25jZQ==garbage", 24, out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_key_valid(void **state)
{
	assert_int_equal(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24), 1);
	assert_int_equal(ws_key_valid("x3JJHMbDL1EzLkh9GBhXDw==", 24), 1);
	assert_int_equal(ws_key_valid("++//++//++//++//++//+w==", 24), 1);
	assert_int_equal(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 23), 0);
	assert_int_equal(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ== ", 25), 0);
	assert_int_equal(ws_key_valid(" dGhlIHNhbXBsZSBub25jZQ==", 25), 0);
	assert_int_equal(ws_key_valid(" GhlIHNhbXBsZSBub25jZQ==", 24), 0);
	assert_int_equal(ws_key_valid("", 0), 0);
	/* 17 and 18 bytes */
	assert_int_equal(ws_key_valid("dGhlIHNhbXBsZSBub25jZQA=", 24), 0);
	assert_int_equal(ws_key_valid("dGhlIHNhbXBsZSBub25jZQAA", 24), 0);
	/* padding in the wrong place, URL-safe alphabet, NUL, whitespace */
	assert_int_equal(ws_key_valid("dGhlIHNhbXBsZSBu=25jZQ==", 24), 0);
	assert_int_equal(ws_key_valid("dGhlIHNhbXBsZSBub25jZ===", 24), 0);
	assert_int_equal(ws_key_valid("dGhlIHNhbXBsZSBub25j-_==", 24), 0);
	assert_int_equal(ws_key_valid("dGhlIHNhbXBsZSBu\0" "25jZQ==", 24), 0);
	assert_int_equal(ws_key_valid("dGhlIHNhbXBs ZSBub25jZ==", 24), 0);
	assert_int_equal(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ\r\n", 24), 0);
	/* 16 bytes of every value each position can take, as a client sends */
	for (unsigned v = 0; v < 256; v++) {
		uint8_t raw[16];
		char key[25];
		for (int i = 0; i < 16; i++)
			raw[i] = (uint8_t)(v + i * 17);
		static const char alpha[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		/* independent encoder: 5 full groups then 1 byte + "==" */
		int o = 0;
		for (int i = 0; i < 15; i += 3) {
			uint32_t w = (uint32_t)raw[i] << 16 | raw[i + 1] << 8 | raw[i + 2];
			for (int s = 18; s >= 0; s -= 6)
				key[o++] = alpha[(w >> s) & 63];
		}
		key[o++] = alpha[raw[15] >> 2];
		key[o++] = alpha[(raw[15] & 3) << 4];
		key[o++] = '=';
		key[o++] = '=';
		key[o] = '\0';
		assert_int_equal(ws_key_valid(key, 24), 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_examples),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_header_errors),
		cmocka_unit_test(test_encode_exact),
		cmocka_unit_test(test_unmask_pieces),
		cmocka_unit_test(test_fragmented_text),
		cmocka_unit_test(test_continuation_rules),
		cmocka_unit_test(test_size_limit_from_header),
		cmocka_unit_test(test_text_utf8_across_fragments),
		cmocka_unit_test(test_utf8_error_as_early_as_possible),
		cmocka_unit_test(test_close_code_valid),
		cmocka_unit_test(test_close_payload_check),
		cmocka_unit_test(test_close_payload_encode),
		cmocka_unit_test(test_accept),
		cmocka_unit_test(test_key_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
