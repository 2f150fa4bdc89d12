/* ws_frame: RFC 6455 framing rules as pure functions. Parses a frame header,
 * checks the message-level rules (fragmentation, size, UTF-8 of text across
 * fragments), validates close payloads, encodes frame headers, and computes
 * the handshake's Sec-WebSocket-Accept value. No sockets, no buffers of its
 * own, no logging: ws.c feeds it bytes. Errors are negative
 * WebSocket close codes, so the caller closes with -err. */
#ifndef WSB_WS_FRAME_H
#define WSB_WS_FRAME_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "conn.h"
#include "utf8.h"

enum ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA
};

enum ws_close_code {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003,
	WS_CLOSE_NO_STATUS = 1005,     /* never sent on the wire */
	WS_CLOSE_ABNORMAL = 1006,      /* never sent on the wire */
	WS_CLOSE_BAD_DATA = 1007,
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_INTERNAL = 1011
};

#define WS_MAX_HEADER 14
#define WS_MAX_CONTROL 125

struct ws_frame {
	bool fin;
	uint8_t rsv;            /* RSV1..3 as bits 0x4,0x2,0x1 */
	uint8_t opcode;
	bool masked;
	uint8_t mask[4];
	uint64_t payload_len;
	size_t header_len;
};

/* Parse a frame header at buf[0..len). Returns the header length (2..14),
 * 0 when more bytes are needed, or -close_code:
 *  -1002 for RSV bits set (no extension is negotiated), reserved opcodes,
 *        control frames longer than 125 bytes or fragmented, an unmasked
 *        frame when require_mask, a 64-bit length with the top bit set,
 *        or a length not in its shortest form. */
int ws_frame_parse_header(const uint8_t *buf, size_t len, bool require_mask,
			  struct ws_frame *f);

/* XOR payload bytes with the mask; `offset` is the position of p[0] within
 * the frame payload, so a payload can be unmasked in pieces. */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* Write a frame header into out (at least WS_MAX_HEADER bytes); mask may be
 * NULL (server frames are not masked). Returns the header length. */
size_t ws_frame_encode_header(uint8_t *out, uint8_t opcode, bool fin,
			      uint64_t payload_len, const uint8_t *mask);

/* Message assembly state for one connection's incoming data frames. */
struct ws_msg_state {
	uint8_t opcode;          /* opcode of the message in progress, 0 if none */
	uint64_t len;            /* bytes of it received so far */
	struct utf8_state utf8;
};

void ws_msg_init(struct ws_msg_state *st);
/* Check a data frame's header (TEXT, BINARY, CONT) against the message in
 * progress before its payload is buffered: continuation rules (-1002) and
 * the message size limit (-1009). On success the state expects the payload;
 * a frame with fin set ends the message once ws_msg_payload has seen it. */
int ws_msg_begin_frame(struct ws_msg_state *st, const struct ws_frame *f, uint64_t max_msg);
/* Feed the unmasked payload of the current data frame (in any pieces). For
 * text messages checks UTF-8 incrementally (-1007). `last` marks the end of
 * the frame's payload; for a final frame it also checks that the text ends on
 * a code point boundary and resets the state. */
int ws_msg_payload(struct ws_msg_state *st, const struct ws_frame *f,
		   const uint8_t *p, size_t n, bool last);

/* 1 when a close code may appear on the wire (RFC 6455 7.4 and the IANA
 * registry: 1000-1003, 1007-1014,
 * 3000-4999). */
int ws_close_code_valid(unsigned code);
/* The close code that says `reason` on the wire. */
uint16_t ws_close_code_for(enum conn_close_reason reason);
/* Validate a received close payload. Returns 0 and sets *code (1005 when the
 * payload is empty), -1002 for a 1-byte payload or an invalid code, -1007
 * when the reason is not UTF-8. */
int ws_close_payload_check(const uint8_t *p, size_t n, uint16_t *code);
/* Encode a close payload (code + reason truncated to fit 125 bytes).
 * Returns its length. code 1005 gives an empty payload. */
size_t ws_close_payload_encode(uint8_t *out, uint16_t code, const char *reason);

/* Sec-WebSocket-Key must be base64 of exactly 16 bytes. 1 valid, 0 not. */
int ws_key_valid(const char *key, size_t len);
/* base64(SHA-1(key + GUID)) into out (29 bytes incl. NUL). */
void ws_accept_compute(const char *key, size_t len, char out[29]);

#endif
