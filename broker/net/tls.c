/* tls: the server's TLS context and a connection's TLS steps. See tls.h. */
#include "tls.h"
#include "conn_int.h"
#include "config.h"
#include "log.h"
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Encrypted bytes an auto listener's TLS connection holds below the filter
 * (what the socket has not taken yet); the rest waits unencrypted in the
 * output that conn_pending counts. */
#define TLS_FILTER_HIGH (64 * 1024)
#define TLS_FILTER_LOW (16 * 1024)

struct tls_ctx {
	SSL_CTX *ctx;
};

/* ---- the context ---- */

/* OpenSSL's words for what just failed, and an empty error queue after. */
static void openssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_get_error(), last;
	while ((last = ERR_get_error()) != 0)
		; /* the first is the cause; the rest say where it surfaced */
	if (e) {
		const char *r = ERR_reason_error_string(e);
#ifdef ERR_SYSTEM_ERROR
		if (ERR_SYSTEM_ERROR(e)) /* a file that cannot be opened: errno */
			r = strerror(ERR_GET_REASON(e));
#endif
		if (r)
			snprintf(buf, len, "%s", r);
		else
			ERR_error_string_n(e, buf, len);
	} else {
		snprintf(buf, len, "unknown OpenSSL error");
	}
}

static int fail(char *err, size_t errlen, const char *what, const char *file)
{
	char why[256];
	openssl_reason(why, sizeof(why));
	if (file)
		snprintf(err, errlen, "%s %s: %s", what, file, why);
	else
		snprintf(err, errlen, "%s: %s", what, why);
	return -1;
}

/* The first TLS listener, for the message when certificate or key is
 * missing; NULL when there is none. */
static const struct cfg_listener *tls_listener(const struct cfg *c)
{
	for (size_t i = 0; i < c->nlisteners; i++)
		if (cfg_listener_is_tls(c->listeners[i].kind))
			return &c->listeners[i];
	return NULL;
}

static int configure(SSL_CTX *ctx, const struct cfg *c, char *err, size_t errlen)
{
	static const unsigned char sid[] = "wsbroker";
	SSL_CTX_set_min_proto_version(ctx, c->tls_min_version == CFG_TLS_13 ? TLS1_3_VERSION :
				      TLS1_2_VERSION);
	/* Renegotiation is an old way to make a server work for nothing. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* No TLS 1.3 session tickets: they arrive after the handshake, and a
	 * client that reads and writes one TLS socket from two threads
	 * (stomp.py) went unanswered about once in 40 connections with
	 * them, never without; a broker's
	 * connections live long, so resumption saves little. */
	SSL_CTX_set_num_tickets(ctx, 0);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* A client that closes without close_notify has ended, not failed
	 * (OpenSSL 3 would report an error libevent does not see as EOF). */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	/* Resumed sessions check the client certificate's context. */
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1)
		return fail(err, errlen, "tls_cert", c->tls_cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1)
		return fail(err, errlen, "tls_key", c->tls_key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return fail(err, errlen, "tls_key does not match tls_cert", NULL);
	if (c->tls_ciphers[0] && SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1)
		return fail(err, errlen, "tls_ciphers", c->tls_ciphers);
	if (c->tls_ciphersuites[0] && SSL_CTX_set_ciphersuites(ctx, c->tls_ciphersuites) != 1)
		return fail(err, errlen, "tls_ciphersuites", c->tls_ciphersuites);
	if (!c->tls_ca[0]) {
		if (c->tls_require_cert || c->tls_cert_as_username) {
			snprintf(err, errlen, "%s needs tls_ca (the CA that signs client certificates)",
				 c->tls_require_cert ? "tls_require_cert" : "tls_cert_as_username");
			return -1;
		}
		return 0;
	}
	if (SSL_CTX_load_verify_locations(ctx, c->tls_ca, NULL) != 1)
		return fail(err, errlen, "tls_ca", c->tls_ca);
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->tls_ca);
	if (!names)
		return fail(err, errlen, "tls_ca", c->tls_ca);
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
			   (c->tls_require_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	return 0;
}

int tls_ctx_for(const struct cfg *c, struct tls_ctx **out, char *err, size_t errlen)
{
	*out = NULL;
	const struct cfg_listener *l = tls_listener(c);
	if (!l && !c->tls_cert[0])
		return 0;
	if (!c->tls_cert[0] || !c->tls_key[0]) {
		if (l)
			snprintf(err, errlen, "the %s listener on %s:%u needs tls_cert and tls_key",
				 cfg_listener_kind_name(l->kind), l->addr, l->port);
		else
			snprintf(err, errlen, "tls_cert is set but tls_key is not");
		return -1;
	}
	struct tls_ctx *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ERR_clear_error();
	t->ctx = SSL_CTX_new(TLS_server_method());
	if (!t->ctx) {
		free(t);
		return fail(err, errlen, "TLS context", NULL);
	}
	if (configure(t->ctx, c, err, errlen) < 0) {
		tls_ctx_free(t);
		return -1;
	}
	*out = t;
	return 0;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx); /* connections that use it hold their own reference */
	free(t);
}

void tls_keep_settings(struct cfg *dst, const struct cfg *running)
{
	memcpy(dst->tls_cert, running->tls_cert, sizeof(dst->tls_cert));
	memcpy(dst->tls_key, running->tls_key, sizeof(dst->tls_key));
	memcpy(dst->tls_ca, running->tls_ca, sizeof(dst->tls_ca));
	dst->tls_require_cert = running->tls_require_cert;
	dst->tls_cert_as_username = running->tls_cert_as_username;
	dst->tls_min_version = running->tls_min_version;
	memcpy(dst->tls_ciphers, running->tls_ciphers, sizeof(dst->tls_ciphers));
	memcpy(dst->tls_ciphersuites, running->tls_ciphersuites, sizeof(dst->tls_ciphersuites));
}

/* ---- a connection ---- */

static SSL *new_ssl(void)
{
	return conn_m.tls ? SSL_new(conn_m.tls->ctx) : NULL;
}

/* A peer that just closes the TCP connection (no close_notify) has ended
 * it, not broken it: most clients do so, and a truncation attack means
 * nothing to a message stream framed by its own protocol. */
static void setup(struct bufferevent *bev)
{
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
}

struct bufferevent *tls_accept_bev(struct conn *c, int fd)
{
	SSL *ssl = new_ssl();
	if (!ssl) {
		log_error(c->peer, NULL, "no TLS context for a %s listener; closing",
			  cfg_listener_kind_name(c->kind));
		return NULL;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(
		conn_m.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	setup(bev);
	c->ssl = ssl;
	return bev;
}

int tls_start_sniffed(struct conn *c)
{
	SSL *ssl = new_ssl();
	if (!ssl)
		return -1;
	struct bufferevent *under = c->bev;
	/* The filter reads the ClientHello from the plain bufferevent's input,
	 * where sniffing left it, and owns (frees) that bufferevent. */
	struct bufferevent *bev = bufferevent_openssl_filter_new(
		conn_m.base, under, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		return -1;
	}
	setup(bev);
	/* The filter encrypts into the plain bufferevent's output; without a
	 * high-water mark there it would move everything queued for a slow
	 * reader out of conn_pending's sight and past out_hard_limit. */
	bufferevent_setwatermark(under, EV_WRITE, TLS_FILTER_LOW, TLS_FILTER_HIGH);
	c->bev = bev;
	c->ssl = ssl;
	log_debug(c->peer, NULL, "TLS ClientHello on an auto listener");
	/* Before the callbacks: enabling the filter may already fail the
	 * handshake, and that failure belongs to the handshake phase. */
	conn_enter(c, CONN_TLS_HANDSHAKE);
	conn_setcb(c);
	/* The ClientHello is already buffered: no new read would wake the
	 * filter, so run its read side once now (deferred: outside our stack). */
	bufferevent_trigger(under, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	return 0;
}

void tls_handshake_done(struct conn *c)
{
	X509 *cert = SSL_get_peer_certificate(c->ssl);
	char cn[256] = "";
	int n = cert && SSL_get_verify_result(c->ssl) == X509_V_OK ?
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
					  sizeof(cn)) : -1;
	/* A CN with a NUL inside would log in as its prefix: no identity. */
	if (n > 0 && (size_t)n == strlen(cn)) {
		free(c->tls_identity);
		c->tls_identity = strdup(cn);
	}
	X509_free(cert);
	log_debug(c->peer, NULL, "TLS handshake done: %s, %s%s%s", SSL_get_version(c->ssl),
		  SSL_get_cipher_name(c->ssl), c->tls_identity ? ", client certificate CN=" : "",
		  c->tls_identity ? c->tls_identity : "");
}

void tls_log_failure(struct conn *c, short what)
{
	char why[300] = "";
	unsigned long e, first = 0;
	while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
		if (!first)
			first = e;
	ERR_clear_error();
	if (first) {
		const char *r = ERR_reason_error_string(first);
		if (r)
			snprintf(why, sizeof(why), "%s", r);
		else if (ERR_GET_LIB(first) == 0) /* libevent's SSL_ERROR_SYSCALL */
			snprintf(why, sizeof(why), "connection reset or I/O error");
		else
			ERR_error_string_n(first, why, sizeof(why));
		long v = SSL_get_verify_result(c->ssl);
		if (v != X509_V_OK) {
			size_t n = strlen(why);
			snprintf(why + n, sizeof(why) - n, " (%s)", X509_verify_cert_error_string(v));
		}
	} else if (what & BEV_EVENT_EOF) {
		snprintf(why, sizeof(why), "the peer closed the connection");
	} else {
		snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	}
	if (c->phase == CONN_TLS_HANDSHAKE) {
		log_info(c->peer, NULL, "TLS handshake failed: %s", why);
		conn_set_why(c, PROTO_CLOSED_ERROR);
	} else if (first) {
		log_info(c->peer, c->client_id, "TLS error: %s", why);
		conn_set_why(c, PROTO_CLOSED_ERROR);
	} else if (what & BEV_EVENT_EOF) {
		log_debug(c->peer, c->client_id, "peer closed the connection");
		conn_set_why(c, PROTO_CLOSED_BY_PEER);
	} else {
		log_info(c->peer, c->client_id, "socket error: %s", why);
		conn_set_why(c, PROTO_CLOSED_ERROR);
	}
}

void tls_close_notify(struct conn *c)
{
	/* Written straight to the socket (or, in an auto listener's filter, to
	 * the plain bufferevent, which writes it); the peer answers with its
	 * own close_notify and EOF, or close_timeout_ms ends it. */
	SSL_shutdown(c->ssl);
	ERR_clear_error();
}
