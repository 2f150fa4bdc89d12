/* conn_module: the daemon's side of conn: set the module up, hand it
 * accepted sockets, count them, stop them gracefully, free what is left.
 * server.c uses it; sessions never do (they see conn.h only). */
#ifndef WSB_CONN_MODULE_H
#define WSB_CONN_MODULE_H
#include "config.h"
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct sockaddr;

/* cfg must outlive every connection; a reload (SIGHUP) changes it in
 * place. A session opens with its protocol's env (protocol_env). */
void conn_module_init(struct event_base *base, const struct cfg *cfg);
/* Take over an accepted socket from a listener of the given kind.
 * CONN_ACCEPTED, or the socket was closed at once: CONN_ACCEPT_REFUSED
 * (its address is at max_connections_per_ip, or shutting down),
 * CONN_ACCEPT_FULL (max_connections: the caller pauses its listener). */
enum conn_accept_result { CONN_ACCEPTED = 0, CONN_ACCEPT_REFUSED = -1, CONN_ACCEPT_FULL = -2 };
int conn_accept(int fd, const struct sockaddr *sa, int socklen, enum listener_kind kind);

/* Refusals and disconnections by limit, counted since start (metrics
 * will read them). */
enum conn_refusal {
	CONN_REFUSED_MAX_CONNECTIONS, /* accepted at max_connections, closed at once */
	CONN_REFUSED_PER_IP,          /* max_connections_per_ip */
	CONN_REFUSED_ACCEPT_FAILED,   /* accept() failed: out of descriptors, memory */
	CONN_PAUSED_PUBLISH_RATE,     /* reading paused by publish_rate_limit */
	CONN_DROPPED_SOFT_LIMIT,      /* out_soft_limit for out_soft_seconds */
	CONN_DROPPED_HARD_LIMIT,      /* out_hard_limit */
	CONN_REFUSAL_KINDS
};
uint64_t conn_refusals(enum conn_refusal why);
/* For refusals conn does not see (server.c's failed accepts). */
void conn_refusal_count(enum conn_refusal why);
size_t conn_count(void);
/* The TLS context for connections accepted from now on (NULL: none); the
 * module owns it and frees the one it replaces (connections using that one
 * keep it until they end). */
struct tls_ctx;
void conn_set_tls(struct tls_ctx *t);
/* Graceful stop: goodbye + close on every connection; all_gone runs once
 * the last one is freed. */
void conn_shutdown_all(void (*all_gone)(void *arg), void *arg);
/* Free whatever is left right now (after the loop has stopped). */
void conn_free_all(void);

#endif
