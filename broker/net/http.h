/* http: what the broker answers to an HTTP request head: /healthz, the
 * WebSocket upgrade (RFC 6455 section 4.2) with subprotocol and path
 * selection and the Origin allow-list, and the error statuses. It decides
 * and formats; it does not read or write sockets (sniff.c does). */
#ifndef WSB_HTTP_H
#define WSB_HTTP_H
#include <stddef.h>
#include "http_parse.h"

struct cfg;
struct protocol;

struct http_stats {
	unsigned long connections;
	unsigned long long uptime_s;
};

struct http_reply {
	int status;                    /* 101 on a successful upgrade */
	const struct protocol *proto;  /* set when status == 101 */
	const char *ws_name;           /* negotiated token, NULL when chosen by path */
	char path[128];                /* request path without the query */
	char origin[128];              /* an upgrade's Origin for the log, "-" if none */
	char log[160];                 /* why it was refused, for the log line */
	char head[1024];               /* the formatted status line + headers */
	size_t head_len;
	char body[512];
	size_t body_len;
};

/* Decide the reply to req. Never fails: every outcome is a status. */
void http_respond(const struct http_request *req, const struct cfg *cfg,
		  const struct http_stats *st, struct http_reply *out);
/* A bare error reply (for parse errors: 400, 431). */
void http_error_reply(int status, const char *why, struct http_reply *out);

#endif
