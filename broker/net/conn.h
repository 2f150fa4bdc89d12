/* conn: one client connection and its transport (raw TCP or WebSocket over
 * it, each possibly inside TLS). It owns the bufferevent, the WebSocket state, the
 * handshake deadline, WebSocket keepalive pings, the session's timer and the
 * output bounds. It knows protocols only through struct protocol: sessions
 * send bytes with conn_send*, and conn frames them for the transport.
 *
 * This header is what sessions see; the daemon's side (accept, shutdown)
 * is conn_module.h, and the lifecycle's phases are private to net/.
 *
 * A conn is never freed inside its own callback chain: conn_close marks it
 * closing, and it is freed once the stack has unwound. */
#ifndef WSB_CONN_H
#define WSB_CONN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

/* Peer address as "ip:port" (always set). */
const char *conn_peer(const struct conn *c);
/* Client id for log lines, NULL until the session names one. */
const char *conn_client_id(const struct conn *c);
void conn_set_client_id(struct conn *c, const char *id);
bool conn_is_websocket(const struct conn *c);
/* The login a verified TLS client certificate stands for (its CN) when
 * tls_cert_as_username is on; NULL otherwise (plain TCP, no certificate,
 * or the setting off). A session takes it as the login without a
 * password. */
const char *conn_tls_identity(const struct conn *c);
/* The negotiated WebSocket path ("/mqtt"), NULL over raw TCP. */
const char *conn_ws_path(const struct conn *c);

/* Queue bytes for the client. Over WebSocket they become one message of the
 * protocol's default type (struct protocol.ws_binary_out). Returns 0, or -1
 * when the connection is closing or past its hard output limit (it is then
 * being closed). */
int conn_send(struct conn *c, const void *data, size_t len);
/* Same, choosing the WebSocket message type (ignored over raw TCP). */
int conn_send_type(struct conn *c, const void *data, size_t len, bool binary);
/* Bytes written to many connections without a copy each: a large message
 * fanned out is encoded once into one of these and every subscriber's
 * output refers to it. Reference-counted: freed once the creator has
 * dropped its reference and every connection has written (or discarded)
 * the bytes. Below CONN_SHARE_MIN bytes a copy is cheaper than a reference
 * and conn_send_shared copies. NULL on OOM. */
#define CONN_SHARE_MIN 2048
struct conn_shared;
struct conn_shared *conn_shared_new(const void *data, size_t len);
void conn_shared_unref(struct conn_shared *sh);
const void *conn_shared_data(const struct conn_shared *sh);
/* conn_send with shared bytes: same result, same return values. */
int conn_send_shared(struct conn *c, struct conn_shared *sh);
/* Bytes queued for the socket and not yet written: a session compares it
 * with the soft limit (cfg out_high_water) to drop QoS 0 for slow readers. */
size_t conn_pending(const struct conn *c);
/* 1 when the output is above the configured high-water mark. */
bool conn_congested(const struct conn *c);

/* Why a session ends its connection, in terms of no transport. Over
 * WebSocket each becomes an RFC 6455 close code (1000, 1001, 1002, 1008,
 * 1009, 1011 in this order); raw TCP has no way to say it and ignores it. */
enum conn_close_reason {
	CONN_CLOSE_NORMAL = 0,          /* done, or nothing more specific to say */
	CONN_CLOSE_GOING_AWAY,          /* the server is stopping */
	CONN_CLOSE_PROTOCOL_ERROR,      /* the peer broke the protocol's rules */
	CONN_CLOSE_POLICY,              /* refused: not authorised, too slow to log in */
	CONN_CLOSE_TOO_BIG,             /* a message over a configured limit */
	CONN_CLOSE_INTERNAL_ERROR       /* the broker could not do its part */
};

/* Flush what is queued, then close. Over WebSocket a close frame carrying
 * the reason's close code and `text` is sent first; the TCP connection ends
 * after the peer's close or a bounded wait. Safe to call from anywhere,
 * several times; the session's close() is called later, outside the
 * caller's stack. */
void conn_close(struct conn *c, enum conn_close_reason reason, const char *text);
bool conn_closing(const struct conn *c);

/* A session calls this once per message its client publishes (MQTT
 * PUBLISH, STOMP SEND). With publish_rate_limit set, a client past its
 * burst is slowed: conn stops reading its socket until the bucket has
 * refilled. Nothing is dropped and the connection stays. */
void conn_count_publish(struct conn *c);

/* Call the protocol's tick after delay_ms (replaces a pending one);
 * 0 cancels. */
void conn_timer(struct conn *c, uint64_t delay_ms);

#endif
