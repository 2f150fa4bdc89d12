/* conn_module: the daemon's side of conn: set the module up, hand it
 * accepted sockets, count them, stop them gracefully, free what is left.
 * server.c uses it; sessions never do (they see conn.h only). */
#ifndef WSB_CONN_MODULE_H
#define WSB_CONN_MODULE_H
#include "config.h"
#include <stddef.h>

struct event_base;
struct sockaddr;

/* cfg must outlive every connection; a reload (SIGHUP) changes it in
 * place. A session opens with its protocol's env (protocol_env). */
void conn_module_init(struct event_base *base, const struct cfg *cfg);
/* Take over an accepted socket from a listener of the given kind. */
void conn_accept(int fd, const struct sockaddr *sa, int socklen, enum listener_kind kind);
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
