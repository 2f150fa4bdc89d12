/* utf8: incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF). Pure: no allocation, no I/O. Used by the WebSocket
 * decoder (text frames, close reasons, code points split across fragments) and
 * by the protocol codecs. It does not judge U+0000; callers that forbid it
 * (MQTT) check that themselves. */
#ifndef WSB_UTF8_H
#define WSB_UTF8_H
#include <stddef.h>
#include <stdint.h>

struct utf8_state {
	uint32_t need;   /* continuation bytes still expected */
	uint32_t cp;     /* code point being assembled */
	uint32_t min;    /* smallest code point allowed for this length */
};

void utf8_init(struct utf8_state *st);
/* Feed more bytes. Returns 0 while the input is a valid prefix, -1 once it
 * cannot be valid UTF-8 whatever follows. */
int utf8_feed(struct utf8_state *st, const uint8_t *p, size_t n);
/* 1 when the bytes fed so far end on a code point boundary. */
int utf8_complete(const struct utf8_state *st);
/* Whole-buffer check: 1 valid, 0 not. */
int utf8_valid(const void *p, size_t n);

#endif
