/* conn_int: what net/'s files share about a connection: conn.c (accessors,
 * the lifecycle, timers, input dispatch, accept, the module), sniff.c (first
 * bytes, HTTP, the upgrade, opening the session), ws.c (WebSocket input,
 * control frames, keepalive, close handshake) and conn_out.c (output).
 * Nothing outside net/ includes it. */
#ifndef WSB_CONN_INT_H
#define WSB_CONN_INT_H
#include "conn.h"
#include "config.h"
#include "conn_limit.h"
#include "protocol.h"
#include "ws.h"
#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A connection's lifecycle. conn_enter is the only writer of c->phase; it
 * refuses a transition not drawn here (logged as a bug; WSB_STRICT test
 * builds abort), and does what entering each phase takes.
 *
 * The usual paths (TLS_HANDSHAKE only over TLS: a wss/mqtts/stomps
 * listener starts there, an auto listener goes there from SNIFFING when
 * the first byte is a ClientHello, and sniffs again inside the tunnel):
 *
 *   accept -> [TLS_HANDSHAKE ->] SNIFFING -> HTTP -> OPEN -> CLOSING -> FLUSHING -> DEAD
 *                                              \          \-> LINGERING -> DEAD
 *                                               \-> LINGERING -> DEAD
 *
 * Every legal transition (x):
 *
 *   from \ to       SNIFFING  TLS  HTTP  OPEN  CLOSING  FLUSHING  LINGERING  DEAD
 *   TLS_HANDSHAKE     x                                  x                    x
 *   SNIFFING                   x    x     x              x                    x
 *   HTTP                                  x              x         x          x
 *   OPEN                                        x        x         x          x
 *   CLOSING                                              x         x          x
 *   FLUSHING                                                                  x
 *   LINGERING                                            x                    x
 *   DEAD
 *
 * Why each is taken:
 *   TLS_HANDSHAKE -> SNIFFING  the handshake completed; what is spoken
 *                           inside is decided as on a plain listener
 *   SNIFFING  -> TLS_HANDSHAKE  auto listener, first byte 0x16, tls_cert set
 *   SNIFFING  -> HTTP       the first bytes are an HTTP request line, or a
 *                           WebSocket listener (accept decides at once)
 *   SNIFFING  -> OPEN       a protocol recognised its first bytes, or a
 *                           listener of one protocol (raw TCP)
 *   HTTP      -> OPEN       WebSocket upgrade: the session is attached
 *   HTTP      -> LINGERING  any other HTTP reply is our last word
 *   OPEN      -> CLOSING    WebSocket conn_close: our close frame is out,
 *                           the peer's is awaited (input still parsed)
 *   OPEN      -> LINGERING  raw conn_close, or a broken WebSocket stream
 *   CLOSING   -> LINGERING  the stream broke while awaiting the peer's close
 *   OPEN, CLOSING -> FLUSHING  the peer's close frame arrived (ours echoed)
 *   TLS_HANDSHAKE, SNIFFING, HTTP, LINGERING -> FLUSHING  graceful stop of a
 *                           connection that has no session
 *   any but DEAD -> DEAD    EOF, socket error, a failed TLS handshake, a
 *                           timeout, output over its hard limit,
 *                           FLUSHING's output written
 *
 * Over TLS, LINGERING sends close_notify once our last bytes are flushed
 * (where plain TCP shuts its write side).
 *
 * "open" says a session is attached; WebSocket or raw TCP is the transport
 * (c->websocket), TLS or not is c->ssl, neither is a phase. Re-entering the
 * current phase does nothing. */
enum conn_phase {
	CONN_TLS_HANDSHAKE, /* TLS handshake under way */
	CONN_SNIFFING,   /* reading the first bytes */
	CONN_HTTP,       /* reading an HTTP request head */
	CONN_OPEN,       /* session attached, input goes to it */
	CONN_CLOSING,    /* WebSocket close handshake: await the peer's close */
	CONN_FLUSHING,   /* write what is queued, then free; input discarded */
	CONN_LINGERING,  /* after our last word: shut our side once flushed,
			  * discard input until EOF or close_timeout_ms */
	CONN_DEAD        /* on the reap list, freed once the stack unwinds */
};

struct conn {
	struct conn *prev, *next;       /* live list */
	struct conn *reap_next;         /* pending free */
	struct conn *release_next;      /* session to be closed */
	struct conn *dirty_prev, *dirty_next; /* output to write this pass */
	bool dirty;
	bool wwait;                     /* socket was full: bufferevent writes */
	bool release_pending;
	struct bufferevent *bev;        /* over TLS: the OpenSSL bufferevent */
	int fd;
	struct ssl_st *ssl;             /* NULL: plain TCP */
	char *tls_identity;             /* verified client certificate's CN */
	enum conn_phase phase;
	enum listener_kind kind;
	char peer[64];
	char *client_id;
	char *ws_path;
	const struct protocol *proto;
	void *session;
	bool websocket;                 /* the transport: WebSocket, else raw */
	bool shut_wr;                   /* our write side is shut (LINGERING) */
	bool answered;                  /* the session has sent something */
	enum proto_close_reason why;
	bool why_set;
	struct ws_state ws;
	uint64_t last_rx_ms;
	struct event *hs_timer, *sess_timer, *close_timer;
	struct conn_lim lim;            /* conn_limit.c */
};

/* The module's state; defined in conn.c. */
struct conn_module {
	struct event_base *base;
	const struct cfg *cfg;
	struct tls_ctx *tls;            /* NULL: no TLS configured */
	struct conn *live;
	size_t nlive;
	struct conn *reap;
	struct conn *release;
	struct event *reap_ev;
	struct conn *dirty;             /* flush list, see conn_out.c */
	struct event *flush_ev;
	bool flush_scheduled;
	bool shutting_down;
	uint64_t started_ms;
	void (*all_gone)(void *);
	void *all_gone_arg;
	uint8_t scratch[65536];
};
extern struct conn_module conn_m;

/* conn.c */
void conn_enter(struct conn *c, enum conn_phase to);
void conn_set_why(struct conn *c, enum proto_close_reason why);
void conn_arm(struct event *ev, uint64_t ms);
/* Point c->bev's callbacks at conn.c (again, after tls.c wrapped it). */
void conn_setcb(struct conn *c);
/* After the TLS handshake: what the connection speaks is decided now. */
void conn_tls_ready(struct conn *c);
/* The output buffer is empty: finish a close waiting for it. */
void conn_output_drained(struct conn *c);
/* Hand buffered input to whoever reads it in the current phase. */
void conn_process_input(struct conn *c);

/* conn_limit.c: reading is paused by publish_rate_limit; input loops stop
 * feeding the session until the pause ends. */
bool conn_input_paused(const struct conn *c);

/* conn_out.c */
void conn_ws_send_frame(struct conn *c, uint8_t opcode, const void *data, size_t len);
void conn_mark_dirty(struct conn *c);
void conn_unmark_dirty(struct conn *c);
void conn_flush_cb(evutil_socket_t fd, short what, void *arg);

#endif
