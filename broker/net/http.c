#include "http.h"
#include "auth/origin.h"
#include "config.h"
#include "protocol.h"
#include "ws_frame.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

static const char *status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/* Fill head (status line + extra headers + framing headers) around body. */
static void finish(struct http_reply *r, const char *ctype, const char *extra)
{
	int n;
	if (r->status == 101) {
		n = snprintf(r->head, sizeof(r->head), "HTTP/1.1 101 Switching Protocols\r\n%s\r\n",
			     extra ? extra : "");
	} else {
		n = snprintf(r->head, sizeof(r->head),
			     "HTTP/1.1 %d %s\r\nServer: wsbroker/%s\r\nContent-Type: %s\r\n"
			     "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
			     r->status, status_text(r->status), PACKAGE_VERSION, ctype, r->body_len,
			     extra ? extra : "");
	}
	r->head_len = n < 0 ? 0 : ((size_t)n < sizeof(r->head) ? (size_t)n : sizeof(r->head) - 1);
}

static void body_printf(struct http_reply *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(r->body, sizeof(r->body), fmt, ap);
	va_end(ap);
	r->body_len = n < 0 ? 0 : ((size_t)n < sizeof(r->body) ? (size_t)n : sizeof(r->body) - 1);
}

static void fail(struct http_reply *r, int status, const char *extra, const char *fmt, ...)
{
	r->status = status;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->log, sizeof(r->log), fmt, ap);
	va_end(ap);
	body_printf(r, "%s\n", r->log);
	finish(r, "text/plain; charset=utf-8", extra);
}

void http_error_reply(int status, const char *why, struct http_reply *out)
{
	memset(out, 0, sizeof(*out));
	fail(out, status, NULL, "%s", why);
}

static const struct http_header *header(const struct http_request *req, const char *name)
{
	int i = http_header_find(req, name, 0);
	return i < 0 ? NULL : &req->headers[i];
}

static int header_has(const struct http_request *req, const char *name, const char *token)
{
	for (int i = http_header_find(req, name, 0); i >= 0;
	     i = http_header_find(req, name, (size_t)i + 1)) {
		if (http_list_has(req->headers[i].value, req->headers[i].value_len, token))
			return 1;
	}
	return 0;
}

/* A header value as a log line may carry it: bytes outside printable
 * ASCII become '?', and a long one is cut. */
static void http_printable(char *out, size_t cap, const char *v, size_t len)
{
	size_t n = 0;
	for (; n < len && n + 1 < cap; n++)
		out[n] = (v[n] >= 0x20 && v[n] < 0x7f) ? v[n] : '?';
	out[n] = 0;
}

static int origin_allowed(const struct http_request *req, const struct cfg *cfg)
{
	if (cfg->norigins == 0)
		return 1;
	const struct http_header *h = header(req, "Origin");
	if (!h)
		return 1; /* non-browser clients send no Origin */
	for (size_t i = 0; i < cfg->norigins; i++)
		if (origin_match(cfg->origins[i], h->value, h->value_len))
			return 1;
	return 0;
}

/* Pick the first offered subprotocol that a protocol answers to.
 * Returns 1 chosen, 0 none offered, -1 only unknown ones offered. */
static int pick_subprotocol(const struct http_request *req, struct http_reply *r)
{
	int offered = 0;
	for (int i = http_header_find(req, "Sec-WebSocket-Protocol", 0); i >= 0;
	     i = http_header_find(req, "Sec-WebSocket-Protocol", (size_t)i + 1)) {
		const char *p = req->headers[i].value, *end = p + req->headers[i].value_len;
		const char *tok;
		size_t len;
		while (http_list_next(&p, end, &tok, &len)) {
			offered = 1;
			const char *canon;
			const struct protocol *pr = protocol_find_ws(tok, len, &canon);
			if (pr) {
				r->proto = pr;
				r->ws_name = canon;
				return 1;
			}
		}
	}
	return offered ? -1 : 0;
}

static const struct protocol *protocol_for_path(const struct cfg *cfg, const char *path)
{
	for (size_t i = 0; i < cfg->npaths; i++)
		if (strcmp(cfg->paths[i].path, path) == 0)
			return protocol_find(cfg->paths[i].protocol);
	return NULL;
}

static void upgrade(const struct http_request *req, const struct cfg *cfg, struct http_reply *r)
{
	if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
		return fail(r, 405, "Allow: GET\r\n", "WebSocket upgrade needs GET");
	if (req->minor_version < 1)
		return fail(r, 400, NULL, "WebSocket upgrade needs HTTP/1.1");
	if (!header(req, "Host"))
		return fail(r, 400, NULL, "missing Host header");
	if (!header_has(req, "Connection", "upgrade"))
		return fail(r, 400, NULL, "Connection header lacks 'Upgrade'");
	const struct http_header *ver = header(req, "Sec-WebSocket-Version");
	if (!ver || ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0)
		return fail(r, 426, "Sec-WebSocket-Version: 13\r\n",
			    "unsupported Sec-WebSocket-Version (this server speaks 13)");
	const struct http_header *key = header(req, "Sec-WebSocket-Key");
	if (!key || !ws_key_valid(key->value, key->value_len))
		return fail(r, 400, NULL, "Sec-WebSocket-Key must be base64 of 16 bytes");
	const struct http_header *org = header(req, "Origin");
	if (org)
		http_printable(r->origin, sizeof(r->origin), org->value, org->value_len);
	else
		snprintf(r->origin, sizeof(r->origin), "-");
	if (!origin_allowed(req, cfg)) {
		return fail(r, 403, NULL, "origin '%s' is not allowed", r->origin);
	}
	char names[256];
	int picked = pick_subprotocol(req, r);
	if (picked < 0) {
		protocol_ws_names_list(names, sizeof(names));
		return fail(r, 400, NULL, "no supported subprotocol offered; supported: %s", names);
	}
	if (picked == 0) {
		r->proto = protocol_for_path(cfg, r->path);
		if (!r->proto) {
			protocol_ws_names_list(names, sizeof(names));
			return fail(r, 400, NULL,
				    "no subprotocol offered and path %s serves no protocol; "
				    "offer one of: %s", r->path, names);
		}
	}
	char accept[29];
	ws_accept_compute(key->value, key->value_len, accept);
	char extra[256];
	snprintf(extra, sizeof(extra),
		 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s",
		 accept, r->ws_name ? "Sec-WebSocket-Protocol: " : "",
		 r->ws_name ? r->ws_name : "", r->ws_name ? "\r\n" : "");
	r->status = 101;
	finish(r, NULL, extra);
}

void http_respond(const struct http_request *req, const struct cfg *cfg,
		  const struct http_stats *st, struct http_reply *r)
{
	memset(r, 0, sizeof(*r));
	size_t plen = req->target_len;
	for (size_t i = 0; i < req->target_len; i++) {
		if (req->target[i] == '?' || req->target[i] == '#') {
			plen = i;
			break;
		}
	}
	if (plen >= sizeof(r->path))
		return fail(r, 404, NULL, "path too long");
	memcpy(r->path, req->target, plen);
	r->path[plen] = 0;
	if (r->path[0] != '/')
		return fail(r, 400, NULL, "request target must be an absolute path");

	if (header_has(req, "Upgrade", "websocket"))
		return upgrade(req, cfg, r);
	bool is_get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
	if (!is_get)
		return fail(r, 405, "Allow: GET\r\n", "method %.*s not allowed", (int)req->method_len, req->method);
	if (strcmp(r->path, "/healthz") == 0) {
		r->status = 200;
		body_printf(r, "{\"status\":\"ok\",\"version\":\"%s\",\"connections\":%lu,\"uptime_s\":%llu}\n",
			    PACKAGE_VERSION, st ? st->connections : 0, st ? st->uptime_s : 0);
		snprintf(r->log, sizeof(r->log), "healthz");
		return finish(r, "application/json", "Cache-Control: no-store\r\n");
	}
	if (protocol_for_path(cfg, r->path))
		return fail(r, 426, "Upgrade: websocket\r\n", "%s serves WebSocket clients only", r->path);
	return fail(r, 404, NULL, "no such path: %s", r->path);
}
