/* tls: TLS for net/. The server context (an SSL_CTX made from the tls_*
 * keys: certificate chain, key, client CA, versions, ciphers) and what a
 * connection does with it: a TLS listener's handshake from accept, an auto
 * listener's switch to TLS when its first byte is a ClientHello (0x16), the
 * handshake's end (the client certificate's identity), a failed
 * handshake's one log line, and close_notify on the way out.
 *
 * The conn module owns the current context (conn_set_tls); a SIGHUP builds
 * a new one and swaps it in: connections made before keep the context they
 * started with (SSL_CTX is reference counted). Not here: sockets,
 * bufferevent callbacks (conn.c), what is spoken inside the tunnel
 * (sniff.c). */
#ifndef WSB_TLS_H
#define WSB_TLS_H
#include <stddef.h>

struct cfg;
struct conn;
struct tls_ctx;

/* The context the settings ask for: 0 with *out NULL when nothing needs
 * TLS (no TLS listener, no tls_cert), 0 with *out set, or -1 with the
 * reason (which key, which file, OpenSSL's words) in err. */
int tls_ctx_for(const struct cfg *c, struct tls_ctx **out, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *t);
/* A refused reload keeps the running context; its settings stay too, so
 * that the reported configuration is the one in use. */
void tls_keep_settings(struct cfg *dst, const struct cfg *running);

/* net/ only (conn.c, sniff.c). */
/* Wrap an accepted socket: the handshake runs before anything else. */
struct bufferevent *tls_accept_bev(struct conn *c, int fd);
/* An auto listener saw a ClientHello: continue over TLS on the same
 * connection (the bytes already read are the handshake's first). 0, or
 * -1 when there is no context (no tls_cert) and the caller closes. */
int tls_start_sniffed(struct conn *c);
/* The bufferevent said CONNECTED: note the client certificate's identity. */
void tls_handshake_done(struct conn *c);
/* BEV_EVENT_ERROR or EOF on a TLS connection: one log line with OpenSSL's
 * reason (and the certificate check's) when it happened in the handshake. */
void tls_log_failure(struct conn *c, short what);
/* Our last word is flushed: send close_notify. */
void tls_close_notify(struct conn *c);

#endif
