/* sniff: what a new connection is, decided from its listener or its first
 * bytes: HTTP (answered here; an upgrade opens the session over WebSocket)
 * or a protocol spoken straight over TCP. It reads no frames (ws.c does)
 * and writes nothing but HTTP replies. Internal to net/. */
#ifndef WSB_SNIFF_H
#define WSB_SNIFF_H

struct conn;

/* Pick the first phase for a fresh connection from its listener's kind. */
void sniff_start(struct conn *c);
/* Input in phase SNIFFING: the first bytes. */
void sniff_input(struct conn *c);
/* Input in phase HTTP: a request head. */
void sniff_http_input(struct conn *c);

#endif
