/* stomp: what a STOMP connection does on its own account: sniffing, its
 * output, ERROR and RECEIPT, heart-beats and the CONNECT deadline, CONNECT
 * negotiation and DISCONNECT. The bottom of the STOMP files: it calls none
 * of the others (stomp_session.h draws the graph); frames reach it through
 * stomp_proto.c. */
#include "stomp.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/auth.h"
#include "clock.h"
#include "config.h"
#include "net/conn.h"
#include "log.h"
#include "stomp_session.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif
#define SERVER_NAME "wsbroker/" PACKAGE_VERSION

/* A client that sends nothing but EOLs before its CONNECT is not STOMP. */
#define SNIFF_MAX_EOLS 256

/* ---- sniffing ---- */

static int sniff_word(const uint8_t *p, size_t n, const char *w)
{
	size_t wl = strlen(w);
	size_t k = n < wl ? n : wl;
	if (memcmp(p, w, k) != 0)
		return -1;
	if (n <= wl)
		return 0;
	if (p[wl] == '\n')
		return 1;
	if (p[wl] != '\r')
		return -1;
	if (n == wl + 1)
		return 0;
	return p[wl + 1] == '\n' ? 1 : -1;
}

int stomp_sniff(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n && (p[i] == '\n' || p[i] == '\r')) {
		if (p[i] == '\r' && i + 1 < n && p[i + 1] != '\n')
			return -1;
		if (++i > SNIFF_MAX_EOLS)
			return -1;
	}
	if (i == n)
		return 0;
	int a = sniff_word(p + i, n - i, "CONNECT");
	int b = sniff_word(p + i, n - i, "STOMP");
	if (a == 1 || b == 1)
		return 1;
	return (a == 0 || b == 0) ? 0 : -1;
}

/* ---- output ---- */

int stomp_flush_out(struct stomp_session *s, bool binary)
{
	int r = conn_send_type(s->c, s->out.data, s->out.len, binary);
	s->out.len = 0;
	if (r == 0)
		s->last_tx = clock_now_ms();
	return r;
}

/* 0, STOMP_ENOMEM, or what conn_send refused with. */
static int send_error(struct stomp_session *s, const char *receipt, const char *msg,
		      const char *detail, const char *xname, const char *xvalue)
{
	s->out.len = 0;
	if (stomp_encode_command(&s->out, STOMP_ERROR) < 0 ||
	    stomp_encode_header_str(&s->out, s->v, STOMP_ERROR, "message", msg) < 0 ||
	    (receipt && stomp_encode_header_str(&s->out, s->v, STOMP_ERROR, "receipt-id", receipt) < 0) ||
	    (xname && stomp_encode_header_str(&s->out, s->v, STOMP_ERROR, xname, xvalue) < 0))
		goto oom;
	size_t dlen = detail ? strlen(detail) : 0;
	if (dlen) {
		char cl[24];
		snprintf(cl, sizeof(cl), "%zu", dlen);
		if (stomp_encode_header_str(&s->out, s->v, STOMP_ERROR, "content-type", "text/plain") < 0 ||
		    stomp_encode_header_str(&s->out, s->v, STOMP_ERROR, "content-length", cl) < 0)
			goto oom;
	}
	if (stomp_encode_body(&s->out, detail, dlen) < 0)
		goto oom;
	return stomp_flush_out(s, false);
oom:
	s->out.len = 0;
	return STOMP_ENOMEM;
}

static int fail_ex(struct stomp_session *s, const char *receipt, const char *msg,
		   const char *detail, const char *xname, const char *xvalue,
		   enum conn_close_reason code)
{
	if (s->done)
		return -1;
	s->done = true;
	log_warn(conn_peer(s->c), conn_client_id(s->c), "stomp: %s%s%s", msg,
		 detail ? ": " : "", detail ? detail : "");
	send_error(s, receipt, msg, detail, xname, xvalue);
	conn_close(s->c, code, msg);
	return -1;
}

static int refuse_login(struct stomp_session *s, const char *receipt)
{
	return fail_ex(s, receipt, "access refused", "login or passcode not accepted", NULL, NULL,
		       CONN_CLOSE_POLICY);
}

int stomp_fail(struct stomp_session *s, const struct stomp_frame *f, const char *msg,
	       const char *detail)
{
	return fail_ex(s, f ? stomp_frame_get(f, "receipt") : NULL, msg, detail, NULL, NULL,
		       CONN_CLOSE_PROTOCOL_ERROR);
}

int stomp_fail_receipt(struct stomp_session *s, const char *receipt, const char *msg,
		       const char *detail)
{
	return fail_ex(s, receipt, msg, detail, NULL, NULL, CONN_CLOSE_INTERNAL_ERROR);
}

int stomp_send_receipt(struct stomp_session *s, const char *id)
{
	s->out.len = 0;
	if (stomp_encode_receipt(&s->out, s->v, id) < 0) {
		s->out.len = 0;
		return STOMP_ENOMEM;
	}
	return stomp_flush_out(s, false);
}

/* ---- timers: heart-beats and the CONNECT deadline ---- */

static uint64_t in_deadline(const struct stomp_session *s)
{
	return s->last_rx + (uint64_t)((double)s->hb_in_ms * s->cfg->stomp_heartbeat_grace);
}

/* How often a session holding auto-mode acks for a slow reader looks at
 * its output again. */
#define HELD_POLL_MS 10

void stomp_arm_timer(struct stomp_session *s)
{
	uint64_t next = UINT64_MAX, now = clock_now_ms();
	if (s->refuse_at) {
		conn_timer(s->c, s->refuse_at > now ? s->refuse_at - now : 1);
		return;
	}
	if (s->auto_held)
		next = now + HELD_POLL_MS;
	if (!s->connected && s->connect_deadline)
		next = s->connect_deadline;
	if (s->connected && s->hb_out_ms && s->last_tx + s->hb_out_ms < next)
		next = s->last_tx + s->hb_out_ms;
	if (s->connected && s->hb_in_ms && in_deadline(s) < next)
		next = in_deadline(s);
	if (next == UINT64_MAX)
		conn_timer(s->c, 0);
	else
		conn_timer(s->c, next > now ? next - now : 1);
}

void stomp_tick(struct stomp_session *s)
{
	if (s->done || s->closed || conn_closing(s->c))
		return;
	uint64_t now = clock_now_ms();
	if (s->refuse_at) {
		if (now < s->refuse_at) {
			stomp_arm_timer(s);
			return;
		}
		char *receipt = s->refuse_receipt;
		s->refuse_receipt = NULL;
		refuse_login(s, receipt);
		free(receipt);
		return;
	}
	if (!s->connected) {
		if (s->connect_deadline && now >= s->connect_deadline) {
			s->done = true;
			log_warn(conn_peer(s->c), conn_client_id(s->c), "stomp: no CONNECT frame in time");
			conn_close(s->c, CONN_CLOSE_POLICY, "no CONNECT frame");
			return;
		}
		stomp_arm_timer(s);
		return;
	}
	if (s->hb_in_ms && now >= in_deadline(s)) {
		s->done = true;
		log_warn(conn_peer(s->c), conn_client_id(s->c),
			 "stomp: no heart-beat for %llu ms (interval %u ms), closing",
			 (unsigned long long)(now - s->last_rx), (unsigned)s->hb_in_ms);
		conn_close(s->c, CONN_CLOSE_NORMAL, "heart-beat timeout");
		return;
	}
	if (s->hb_out_ms && now - s->last_tx >= s->hb_out_ms) {
		if (conn_send(s->c, "\n", 1) < 0)
			return;
		s->last_tx = now;
	}
	stomp_arm_timer(s);
}

/* ---- CONNECT ---- */

/* "cx,cy": two decimal numbers of milliseconds. */
static bool parse_heartbeat(const char *v, uint32_t *cx, uint32_t *cy)
{
	uint64_t x[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		while (*v == ' ')
			v++;
		if (*v < '0' || *v > '9')
			return false;
		while (*v >= '0' && *v <= '9') {
			x[k] = x[k] * 10 + (uint64_t)(*v++ - '0');
			if (x[k] > UINT32_MAX)
				return false;
		}
		while (*v == ' ')
			v++;
		if (k == 0 && *v++ != ',')
			return false;
	}
	if (*v)
		return false;
	*cx = (uint32_t)x[0];
	*cy = (uint32_t)x[1];
	return true;
}

/* Highest version both sides speak; -1 when none. */
static int negotiate_version(const char *accept, const char *ws_name)
{
	if (!accept) {
		/* a client that picked a versioned subprotocol meant that version */
		if (strcmp(ws_name, "v12.stomp") == 0)
			return STOMP_V12;
		if (strcmp(ws_name, "v11.stomp") == 0)
			return STOMP_V11;
		return STOMP_V10;
	}
	int best = -1;
	const char *p = accept;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',' && *e != ' ')
			e++;
		size_t n = (size_t)(e - p);
		if (n == 3 && memcmp(p, "1.0", 3) == 0 && best < STOMP_V10)
			best = STOMP_V10;
		else if (n == 3 && memcmp(p, "1.1", 3) == 0 && best < STOMP_V11)
			best = STOMP_V11;
		else if (n == 3 && memcmp(p, "1.2", 3) == 0)
			best = STOMP_V12;
		p = e;
	}
	return best;
}

/* Each side sends no less often than the other wants, and no more often
 * than we offer (cfg stomp_heartbeat_ms), which also keeps a client from
 * asking for a beat every millisecond. */
static void negotiate_heartbeat(struct stomp_session *s, uint32_t cx, uint32_t cy)
{
	uint32_t ours = s->cfg->stomp_heartbeat_ms;
	s->hb_out_ms = (cy && ours) ? (cy > ours ? cy : ours) : 0;
	s->hb_in_ms = (cx && ours) ? (cx > ours ? cx : ours) : 0;
}

int stomp_on_connect(struct stomp_session *s, const struct stomp_frame *f)
{
	if (s->connected)
		return stomp_fail(s, f, "already connected", NULL);
	int v = negotiate_version(stomp_frame_get(f, "accept-version"), s->ws_name);
	if (v < 0)
		return fail_ex(s, stomp_frame_get(f, "receipt"), "unsupported protocol version",
			       "supported versions are 1.0, 1.1 and 1.2", "version", "1.0,1.1,1.2",
			       CONN_CLOSE_PROTOCOL_ERROR);
	s->v = (enum stomp_version)v;
	uint32_t cx = 0, cy = 0;
	const char *hb = stomp_frame_get(f, "heart-beat");
	if (s->v >= STOMP_V11 && hb && !parse_heartbeat(hb, &cx, &cy))
		return stomp_fail(s, f, "invalid heart-beat header", "expected heart-beat:<cx>,<cy>");

	const char *login = stomp_frame_get(f, "login");
	const struct stomp_header *pass = stomp_frame_header(f, "passcode");
	const char *cert = conn_tls_identity(s->c);
	uint64_t delay;
	if (cert) { /* tls_cert_as_username: the certificate is the login */
		login = cert;
		log_info(conn_peer(s->c), NULL, "login %s by client certificate", cert);
	} else if (auth_check(login, pass ? pass->value : NULL, pass ? pass->value_len : 0,
			      conn_peer(s->c), &delay) != AUTH_OK) {
		const char *receipt = stomp_frame_get(f, "receipt");
		if (!delay)
			return refuse_login(s, receipt);
		/* Held on the timer, not in the loop: stomp_tick sends it, and
		 * input is ignored until then (stomp_input). */
		s->refuse_at = clock_now_ms() + delay;
		s->refuse_receipt = receipt ? strdup(receipt) : NULL;
		stomp_arm_timer(s);
		return 0;
	}

	free(s->login);
	s->login = NULL;
	if (login && *login && !(s->login = strdup(login)))
		return stomp_fail(s, f, "out of memory", NULL);
	const char *cid = stomp_frame_get(f, "client-id");
	conn_set_client_id(s->c, cid && *cid ? cid : login && *login ? login : s->id);
	negotiate_heartbeat(s, cx, cy);
	s->out.len = 0;
	if (stomp_encode_connected(&s->out, s->v, s->id, SERVER_NAME, s->hb_out_ms, s->hb_in_ms) < 0)
		return stomp_fail(s, f, "out of memory", NULL);
	if (stomp_flush_out(s, false) < 0)
		return STOMP_CLOSED;   /* the connection is closing */
	s->connected = true;
	stomp_parser_set_version(&s->parser, s->v);
	log_debug(conn_peer(s->c), conn_client_id(s->c),
		  "stomp: connected, version %s, heart-beat out %u in %u", stomp_version_name(s->v),
		  (unsigned)s->hb_out_ms, (unsigned)s->hb_in_ms);
	s->last_rx = s->last_tx = clock_now_ms();
	stomp_arm_timer(s);
	return 0;
}

int stomp_disconnect(struct stomp_session *s, const char *receipt)
{
	s->done = true;
	if (receipt)
		stomp_send_receipt(s, receipt);
	conn_close(s->c, CONN_CLOSE_NORMAL, "DISCONNECT");
	return -1;
}

/* ---- shutdown ---- */

void stomp_shutdown(struct stomp_session *s)
{
	if (s->done)
		return;
	s->done = true;
	send_error(s, NULL, "broker shutting down", NULL, NULL, NULL);
}
