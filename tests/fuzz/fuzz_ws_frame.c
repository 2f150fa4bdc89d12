/* Fuzz target for ws_frame.c: a whole decode loop as conn.c runs it (parse
 * header, message rules, unmask a copy of the payload in two pieces, feed it,
 * check close payloads), so that the message state machine sees fragment
 * sequences, not just single headers. The first input byte picks options:
 * bit 0 require_mask, bits 1-7 the message size limit and the piece split.
 * Checked promises: an accepted header re-encodes to the same bytes, errors
 * are the documented close codes, text accepted as a message is UTF-8, and a
 * valid close payload re-encodes to itself. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/ws_frame.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

struct text_acc {
	uint8_t *buf;      /* the text message so far, for a whole-buffer check */
	size_t len;
};

static void check_header_roundtrip(const uint8_t *p, int r, const struct ws_frame *f)
{
	uint8_t out[WS_MAX_HEADER];
	CHECK(r >= 2 && r <= WS_MAX_HEADER && (size_t)r == f->header_len);
	CHECK(f->rsv == 0);
	size_t n = ws_frame_encode_header(out, f->opcode, f->fin, f->payload_len,
					  f->masked ? f->mask : NULL);
	CHECK(n == (size_t)r && memcmp(out, p, n) == 0);
}

static void check_close(const uint8_t *p, size_t n)
{
	uint16_t code = 0;
	int r = ws_close_payload_check(p, n, &code);
	if (r < 0) {
		CHECK(r == -WS_CLOSE_PROTOCOL || r == -WS_CLOSE_BAD_DATA);
		return;
	}
	CHECK(n != 1);
	if (n == 0) {
		CHECK(code == WS_CLOSE_NO_STATUS);
		return;
	}
	CHECK(ws_close_code_valid(code));
	/* a reason without NUL bytes survives encode unchanged */
	char reason[WS_MAX_CONTROL];
	uint8_t out[WS_MAX_CONTROL];
	if (memchr(p + 2, '\0', n - 2) != NULL)
		return;
	memcpy(reason, p + 2, n - 2);
	reason[n - 2] = '\0';
	CHECK(ws_close_payload_encode(out, code, reason) == n);
	CHECK(memcmp(out, p, n) == 0);
}

/* Feeds one data frame's available payload in two pieces. Returns <0 to stop
 * the loop. */
static int feed_data(struct ws_msg_state *st, const struct ws_frame *f, uint8_t *pl,
		     size_t avail, size_t split, struct text_acc *acc)
{
	bool whole = avail == f->payload_len;
	bool text = st->opcode == WS_OP_TEXT;
	size_t a = split < avail ? split : avail;
	int r = ws_msg_payload(st, f, pl, a, false);
	if (r == 0)
		r = ws_msg_payload(st, f, pl + a, avail - a, whole);
	if (text) {
		memcpy(acc->buf + acc->len, pl, avail);
		acc->len += avail;
	}
	if (r < 0) {
		CHECK(r == -WS_CLOSE_BAD_DATA && text);
		/* the text so far cannot start valid UTF-8 or ended mid-character */
		struct utf8_state u;
		utf8_init(&u);
		CHECK(utf8_feed(&u, acc->buf, acc->len) < 0 || (whole && f->fin));
		CHECK(!utf8_valid(acc->buf, acc->len) || !whole);
		return r;
	}
	if (whole && f->fin) {
		CHECK(st->opcode == 0);
		if (text)
			CHECK(utf8_valid(acc->buf, acc->len));
		acc->len = 0;
	}
	return whole ? 0 : -1;
}

/* Decodes frames from data; returns when input ends or an error closes. */
static void decode(const uint8_t *data, size_t size, bool require_mask, uint64_t max_msg,
		   size_t split, uint8_t *pl, struct text_acc *acc)
{
	struct ws_msg_state st;
	size_t pos = 0;

	ws_msg_init(&st);
	while (pos < size) {
		struct ws_frame f;
		int r = ws_frame_parse_header(data + pos, size - pos, require_mask, &f);
		if (r <= 0) {
			CHECK(r == 0 || r == -WS_CLOSE_PROTOCOL);
			return;
		}
		check_header_roundtrip(data + pos, r, &f);
		CHECK(!require_mask || f.masked);
		pos += (size_t)r;
		size_t avail = size - pos;
		if (f.payload_len < avail)
			avail = (size_t)f.payload_len;
		memcpy(pl, data + pos, avail);
		ws_unmask(pl, avail / 2, f.mask, 0);
		ws_unmask(pl + avail / 2, avail - avail / 2, f.mask, avail / 2);
		pos += avail;
		if (f.opcode & 0x8) {
			CHECK(f.fin && f.payload_len <= WS_MAX_CONTROL);
			if (avail < f.payload_len)
				return;
			if (f.opcode == WS_OP_CLOSE) {
				check_close(pl, avail);
				return;
			}
			continue;
		}
		r = ws_msg_begin_frame(&st, &f, max_msg);
		if (r < 0) {
			CHECK(r == -WS_CLOSE_PROTOCOL || r == -WS_CLOSE_TOO_BIG);
			return;
		}
		CHECK(st.opcode == WS_OP_TEXT || st.opcode == WS_OP_BINARY);
		if (feed_data(&st, &f, pl, avail, split, acc) < 0)
			return;
	}
}

FUZZ_ENTRY(fuzz_ws_frame)
{
	if (size < 1)
		return 0;
	uint8_t cfg = data[0];
	bool require_mask = cfg & 1;
	uint64_t max_msg = (cfg & 2) ? UINT64_MAX : (uint64_t)(cfg >> 2) * 64;
	size_t split = (size_t)(cfg >> 4) * 3;
	data++;
	size--;

	uint8_t *pl = malloc(size + 1);
	struct text_acc acc = { malloc(size + 1), 0 };
	CHECK(pl && acc.buf);
	decode(data, size, require_mask, max_msg, split, pl, &acc);
	free(pl);
	free(acc.buf);

	/* the same bytes as a handshake key */
	if (size >= 24) {
		char accept[29];
		int ok = ws_key_valid((const char *)data, 24);
		CHECK(!ok || (data[22] == '=' && data[23] == '='));
		ws_accept_compute((const char *)data, 24, accept);
		CHECK(strlen(accept) == 28 && accept[27] == '=');
	}
	return 0;
}
