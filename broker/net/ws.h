/* ws: the stateful half of WebSocket for one connection: reading frames and
 * streaming data payloads to the session, answering control frames, ping
 * keepalive, and the close handshake. The pure rules (frame headers,
 * fragmentation, UTF-8, close payloads, close codes) are ws_frame.c's;
 * framing what sessions send is conn_out.c's; the upgrade is sniff.c's.
 * Internal to net/. */
#ifndef WSB_WS_H
#define WSB_WS_H
#include "conn.h"
#include "ws_frame.h"
#include <stdbool.h>
#include <stdint.h>

struct event;

struct ws_state {
	struct ws_msg_state msg;
	struct ws_frame cur;            /* data frame whose payload is streaming */
	bool in_frame;
	uint64_t cur_done;
	bool close_sent, close_rcvd;    /* the close handshake so far */
	bool ping_out;                  /* a keepalive ping awaits any input */
	uint64_t ping_sent_ms;
	struct event *ping_timer;
};

/* The upgrade is done: expect frames, start keepalive pings. */
void ws_start(struct conn *c);
/* Parse what has arrived (phases OPEN and CLOSING). */
void ws_input(struct conn *c);
/* conn_close over WebSocket: send our close frame and await the peer's. */
void ws_close(struct conn *c, enum conn_close_reason reason, const char *text);
/* Free what ws_start allocated. */
void ws_free(struct conn *c);

#endif
