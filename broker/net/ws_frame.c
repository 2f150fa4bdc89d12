/* ws_frame: RFC 6455 framing rules (sections 4.2.2, 5.2-5.5, 7.4).
 *
 * The header parser judges each byte as soon as it arrives, so a bad first
 * byte fails without waiting for the rest of the header: a frame header split
 * across reads is the normal case for browsers behind proxies. */
#include "ws_frame.h"

#include <string.h>
#include <openssl/evp.h>

#define WS_ERR_PROTOCOL (-WS_CLOSE_PROTOCOL)
#define WS_ERR_BAD_DATA (-WS_CLOSE_BAD_DATA)
#define WS_ERR_TOO_BIG (-WS_CLOSE_TOO_BIG)

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static bool is_control(uint8_t opcode)
{
	return (opcode & 0x8) != 0;
}

static bool is_known_opcode(uint8_t opcode)
{
	switch (opcode) {
	case WS_OP_CONT: case WS_OP_TEXT: case WS_OP_BINARY:
	case WS_OP_CLOSE: case WS_OP_PING: case WS_OP_PONG:
		return true;
	default:
		return false;
	}
}

/* Byte 0: FIN, RSV1-3, opcode. */
static int parse_byte0(uint8_t b, struct ws_frame *f)
{
	f->fin = (b & 0x80) != 0;
	f->rsv = (b >> 4) & 0x7;
	f->opcode = b & 0x0F;
	if (f->rsv != 0 || !is_known_opcode(f->opcode))
		return WS_ERR_PROTOCOL;
	if (is_control(f->opcode) && !f->fin)
		return WS_ERR_PROTOCOL;       /* 5.5: control frames are not fragmented */
	return 0;
}

/* Byte 1: MASK, 7-bit length. */
static int parse_byte1(uint8_t b, bool require_mask, struct ws_frame *f)
{
	f->masked = (b & 0x80) != 0;
	f->payload_len = b & 0x7F;
	if (require_mask && !f->masked)
		return WS_ERR_PROTOCOL;       /* 5.1: a client MUST mask */
	if (is_control(f->opcode) && f->payload_len > WS_MAX_CONTROL)
		return WS_ERR_PROTOCOL;
	return 0;
}

/* The extended length (2 or 8 bytes, big-endian) in shortest form (5.2:
 * "the minimal number of bytes MUST be used"). */
static int parse_ext_len(const uint8_t *p, size_t have, size_t ext, struct ws_frame *f)
{
	uint64_t v = 0;

	/* The top bit of a 64-bit length is refused before the rest arrives. */
	if (ext == 8 && have >= 1 && (p[0] & 0x80))
		return WS_ERR_PROTOCOL;
	if (have < ext)
		return 0;
	for (size_t i = 0; i < ext; i++)
		v = (v << 8) | p[i];
	if ((ext == 2 && v < 126) || (ext == 8 && v <= 0xFFFF))
		return WS_ERR_PROTOCOL;
	f->payload_len = v;
	return 1;
}

int ws_frame_parse_header(const uint8_t *buf, size_t len, bool require_mask,
			  struct ws_frame *f)
{
	size_t ext, need;
	int r;

	if (len < 1)
		return 0;
	if ((r = parse_byte0(buf[0], f)) < 0)
		return r;
	if (len < 2)
		return 0;
	if ((r = parse_byte1(buf[1], require_mask, f)) < 0)
		return r;
	ext = f->payload_len == 126 ? 2 : f->payload_len == 127 ? 8 : 0;
	if (ext) {
		r = parse_ext_len(buf + 2, len - 2, ext, f);
		if (r <= 0)
			return r;
	}
	need = 2 + ext + (f->masked ? 4 : 0);
	if (len < need)
		return 0;
	if (f->masked)
		memcpy(f->mask, buf + 2 + ext, 4);
	else
		memset(f->mask, 0, 4);
	f->header_len = need;
	return (int)need;
}

void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
	uint8_t rot[8];
	size_t i = 0;

	/* The mask rotated to this offset, twice, so 8 bytes go per step. */
	for (size_t k = 0; k < 8; k++)
		rot[k] = mask[(offset + k) & 3];
	for (; i + 8 <= n; i += 8) {
		uint64_t w, m;
		memcpy(&w, p + i, 8);
		memcpy(&m, rot, 8);
		w ^= m;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++)
		p[i] ^= rot[i & 7];
}

size_t ws_frame_encode_header(uint8_t *out, uint8_t opcode, bool fin,
			      uint64_t payload_len, const uint8_t *mask)
{
	size_t n = 2;

	out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
	out[1] = mask ? 0x80 : 0;
	if (payload_len < 126) {
		out[1] |= (uint8_t)payload_len;
	} else if (payload_len <= 0xFFFF) {
		out[1] |= 126;
		out[2] = (uint8_t)(payload_len >> 8);
		out[3] = (uint8_t)payload_len;
		n = 4;
	} else {
		out[1] |= 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
		n = 10;
	}
	if (mask) {
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

void ws_msg_init(struct ws_msg_state *st)
{
	st->opcode = 0;
	st->len = 0;
	utf8_init(&st->utf8);
}

int ws_msg_begin_frame(struct ws_msg_state *st, const struct ws_frame *f, uint64_t max_msg)
{
	/* Control frames are not part of a message; a caller passing one here
	 * has lost track of the stream, which is a protocol error either way. */
	if (is_control(f->opcode))
		return WS_ERR_PROTOCOL;
	if (f->opcode == WS_OP_CONT) {
		if (st->opcode == 0)
			return WS_ERR_PROTOCOL;   /* 5.4: nothing to continue */
	} else {
		if (st->opcode != 0)
			return WS_ERR_PROTOCOL;   /* 5.4: previous message unfinished */
	}
	/* Refused from the header, before any payload is buffered; written
	 * so that no sum can overflow. */
	uint64_t so_far = f->opcode == WS_OP_CONT ? st->len : 0;
	if (so_far > max_msg || f->payload_len > max_msg - so_far)
		return WS_ERR_TOO_BIG;
	if (f->opcode != WS_OP_CONT) {
		st->opcode = f->opcode;
		st->len = 0;
		utf8_init(&st->utf8);
	}
	return 0;
}

int ws_msg_payload(struct ws_msg_state *st, const struct ws_frame *f,
		   const uint8_t *p, size_t n, bool last)
{
	if (st->opcode == 0)
		return WS_ERR_PROTOCOL;           /* no ws_msg_begin_frame */
	if (st->opcode == WS_OP_TEXT && n > 0 && utf8_feed(&st->utf8, p, n) < 0)
		return WS_ERR_BAD_DATA;
	st->len += n;
	if (last && f->fin) {
		if (st->opcode == WS_OP_TEXT && !utf8_complete(&st->utf8))
			return WS_ERR_BAD_DATA;   /* text ends inside a code point */
		ws_msg_init(st);
	}
	return 0;
}

/* 1012-1014 are not in RFC 6455's list but are IANA-registered (service
 * restart, try again later, bad gateway) and sent by real servers/proxies. */
int ws_close_code_valid(unsigned code)
{
	if (code >= 1000 && code <= 1003)
		return 1;
	if (code >= 1007 && code <= 1014)
		return 1;
	return code >= 3000 && code <= 4999;
}

uint16_t ws_close_code_for(enum conn_close_reason reason)
{
	switch (reason) {
	case CONN_CLOSE_NORMAL: return WS_CLOSE_NORMAL;
	case CONN_CLOSE_GOING_AWAY: return WS_CLOSE_GOING_AWAY;
	case CONN_CLOSE_PROTOCOL_ERROR: return WS_CLOSE_PROTOCOL;
	case CONN_CLOSE_POLICY: return WS_CLOSE_POLICY;
	case CONN_CLOSE_TOO_BIG: return WS_CLOSE_TOO_BIG;
	case CONN_CLOSE_INTERNAL_ERROR: return WS_CLOSE_INTERNAL;
	}
	return WS_CLOSE_NORMAL;
}

int ws_close_payload_check(const uint8_t *p, size_t n, uint16_t *code)
{
	uint16_t c;

	if (n == 0) {
		*code = WS_CLOSE_NO_STATUS;
		return 0;
	}
	if (n == 1 || n > WS_MAX_CONTROL)
		return WS_ERR_PROTOCOL;
	c = (uint16_t)((p[0] << 8) | p[1]);
	if (!ws_close_code_valid(c))
		return WS_ERR_PROTOCOL;
	if (!utf8_valid(p + 2, n - 2))
		return WS_ERR_BAD_DATA;
	*code = c;
	return 0;
}

size_t ws_close_payload_encode(uint8_t *out, uint16_t code, const char *reason)
{
	const size_t max_reason = WS_MAX_CONTROL - 2;
	size_t len;

	if (code == WS_CLOSE_NO_STATUS)
		return 0;
	out[0] = (uint8_t)(code >> 8);
	out[1] = (uint8_t)code;
	len = reason ? strnlen(reason, max_reason + 1) : 0;
	if (len > max_reason) {
		/* Cut at a code point start: a split character would make the
		 * peer fail our close with 1007. */
		len = max_reason;
		while (len > 0 && ((uint8_t)reason[len] & 0xC0) == 0x80)
			len--;
	}
	/* A reason that is not UTF-8 would be refused too: send the code alone. */
	if (!utf8_valid(reason, len))
		len = 0;
	if (len)
		memcpy(out + 2, reason, len);
	return 2 + len;
}

static bool is_b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* 16 bytes in base64 are 22 symbols and "==". The unused low bits of the last
 * symbol are not required to be zero: the decoded value is still 16 bytes and
 * the key is only ever echoed through SHA-1. */
int ws_key_valid(const char *key, size_t len)
{
	unsigned char out[18];

	if (len != 24 || key[22] != '=' || key[23] != '=')
		return 0;
	for (size_t i = 0; i < 22; i++)
		if (!is_b64_char(key[i]))
			return 0;
	/* EVP_DecodeBlock counts the padding as zero bytes: 24 chars -> 18. */
	return EVP_DecodeBlock(out, (const unsigned char *)key, 24) == 18;
}

void ws_accept_compute(const char *key, size_t len, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx != NULL &&
		 EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
		 EVP_DigestUpdate(ctx, key, len) == 1 &&
		 EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1) == 1 &&
		 EVP_DigestFinal_ex(ctx, md, &md_len) == 1 &&
		 md_len == 20;

	EVP_MD_CTX_free(ctx);
	/* Out of memory: an empty value never matches what the client expects,
	 * so the handshake fails instead of passing with garbage. */
	out[0] = '\0';
	if (ok)
		EVP_EncodeBlock((unsigned char *)out, md, 20);
}
