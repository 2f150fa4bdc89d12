/* stomp: a STOMP connection's life: sniffing, CONNECT negotiation,
 * heart-beats, frame dispatch, ERROR and RECEIPT, shutdown and close.
 * Subscriptions live in stomp_sub.c, SEND and transactions in
 * stomp_send.c. */
#include "stomp.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "auth/auth.h"
#include "clock.h"
#include "config.h"
#include "net/conn.h"
#include "log.h"
#include "route/router.h"
#include "stomp_session.h"
#include "store.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif
#define SERVER_NAME "wsbroker/" PACKAGE_VERSION

/* A client that sends nothing but EOLs before its CONNECT is not STOMP. */
#define SNIFF_MAX_EOLS 256

static uint64_t session_counter;

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
	return -1;
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
		return -1;
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

static void stomp_tick(void *sp)
{
	struct stomp_session *s = sp;
	if (s->done || s->closed || conn_closing(s->c))
		return;
	uint64_t now = clock_now_ms();
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
	if (s->auto_held)
		stomp_release_auto_held(s);
	stomp_arm_timer(s);
}

/* ---- CONNECT ---- */

/* "cx,cy": two decimal numbers of milliseconds. */
static int parse_heartbeat(const char *v, uint32_t *cx, uint32_t *cy)
{
	uint64_t x[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		while (*v == ' ')
			v++;
		if (*v < '0' || *v > '9')
			return -1;
		while (*v >= '0' && *v <= '9') {
			x[k] = x[k] * 10 + (uint64_t)(*v++ - '0');
			if (x[k] > UINT32_MAX)
				return -1;
		}
		while (*v == ' ')
			v++;
		if (k == 0 && *v++ != ',')
			return -1;
	}
	if (*v)
		return -1;
	*cx = (uint32_t)x[0];
	*cy = (uint32_t)x[1];
	return 0;
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

static int on_connect(struct stomp_session *s, const struct stomp_frame *f)
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
	if (s->v >= STOMP_V11 && hb && parse_heartbeat(hb, &cx, &cy) < 0)
		return stomp_fail(s, f, "invalid heart-beat header", "expected heart-beat:<cx>,<cy>");

	const char *login = stomp_frame_get(f, "login");
	const struct stomp_header *pass = stomp_frame_header(f, "passcode");
	if (auth_check(login, pass ? pass->value : NULL, pass ? pass->value_len : 0,
		       conn_peer(s->c)) != AUTH_OK)
		return fail_ex(s, stomp_frame_get(f, "receipt"), "access refused", "login or passcode not accepted", NULL, NULL,
			       CONN_CLOSE_POLICY);

	const char *cid = stomp_frame_get(f, "client-id");
	conn_set_client_id(s->c, cid && *cid ? cid : login && *login ? login : s->id);
	negotiate_heartbeat(s, cx, cy);
	s->out.len = 0;
	if (stomp_encode_connected(&s->out, s->v, s->id, SERVER_NAME, s->hb_out_ms, s->hb_in_ms) < 0)
		return stomp_fail(s, f, "out of memory", NULL);
	if (stomp_flush_out(s, false) < 0)
		return -1;
	s->connected = true;
	stomp_parser_set_version(&s->parser, s->v);
	log_debug(conn_peer(s->c), conn_client_id(s->c),
		  "stomp: connected, version %s, heart-beat out %u in %u", stomp_version_name(s->v),
		  (unsigned)s->hb_out_ms, (unsigned)s->hb_in_ms);
	s->last_rx = s->last_tx = clock_now_ms();
	stomp_arm_timer(s);
	return 0;
}

static int on_disconnect(struct stomp_session *s, const struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	s->done = true;
	if (stomp_waiting(s)) {
		/* Earlier frames' receipts still wait for the disk: this one
		 * follows them, and the connection closes after it. */
		s->close_when_drained = true;
		stomp_after_frame(s, receipt, store_submitted(s->st), false);
		return -1;
	}
	if (receipt)
		stomp_send_receipt(s, receipt);
	conn_close(s->c, CONN_CLOSE_NORMAL, "DISCONNECT");
	return -1;
}

/* ---- frames ---- */

static int dispatch(struct stomp_session *s, const struct stomp_frame *f)
{
	switch (f->cmd) {
	case STOMP_CONNECT:
	case STOMP_STOMP:
		return on_connect(s, f);
	default:
		break;
	}
	if (!s->connected)
		return stomp_fail(s, f, "expected a CONNECT or STOMP frame", NULL);
	switch (f->cmd) {
	case STOMP_SEND: return stomp_on_send(s, f);
	case STOMP_SUBSCRIBE: return stomp_on_subscribe(s, f);
	case STOMP_UNSUBSCRIBE: return stomp_on_unsubscribe(s, f);
	case STOMP_ACK: return stomp_on_ack(s, f, false);
	case STOMP_NACK:
		if (s->v == STOMP_V10)
			return stomp_fail(s, f, "NACK is not part of STOMP 1.0", NULL);
		return stomp_on_ack(s, f, true);
	case STOMP_BEGIN: return stomp_on_begin(s, f);
	case STOMP_COMMIT: return stomp_on_commit(s, f);
	case STOMP_ABORT: return stomp_on_abort(s, f);
	case STOMP_DISCONNECT: return on_disconnect(s, f);
	default: {
		char d[64];
		snprintf(d, sizeof(d), "a client does not send %s frames", stomp_command_name(f->cmd));
		return stomp_fail(s, f, "unexpected frame", d);
	}
	}
}

static int handle_frame(struct stomp_session *s, const struct stomp_frame *f)
{
	if (f->cmd == STOMP_HEARTBEAT)
		return 0;
	uint64_t before = store_submitted(s->st);
	if (dispatch(s, f) < 0)
		return -1;
	if (f->cmd == STOMP_CONNECT || f->cmd == STOMP_STOMP)
		return 0;
	/* Only what a publisher cares to hear of waits for the disk: a SEND
	 * or COMMIT that wrote. An ACK's delete is not worth an ERROR. */
	bool wrote = (f->cmd == STOMP_SEND || f->cmd == STOMP_COMMIT) &&
		     store_submitted(s->st) != before;
	return stomp_after_frame(s, stomp_frame_get(f, "receipt"), before, wrote);
}

/* Cut and handle frames; returns the bytes consumed. */
static size_t process(struct stomp_session *s, const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (off < n && !s->done && !conn_closing(s->c)) {
		struct stomp_frame f;
		int r = stomp_parse(&s->parser, p + off, n - off, &f);
		if (r == 0)
			break;
		if (r < 0) {
			stomp_fail(s, NULL, stomp_strerror(r), NULL);
			break;
		}
		off += (size_t)r;
		if (handle_frame(s, &f) < 0)
			break;
	}
	return off;
}

static int stomp_input(void *sp, const uint8_t *p, size_t n)
{
	struct stomp_session *s = sp;
	s->last_rx = clock_now_ms();
	if (s->done || conn_closing(s->c))
		return -1;
	if (s->in.len == 0) {
		/* the common case: whole frames, parsed where they lie */
		size_t used = process(s, p, n);
		if (!s->done && used < n && stomp_buf_append(&s->in, p + used, n - used) < 0)
			stomp_fail(s, NULL, "out of memory", NULL);
	} else {
		if (stomp_buf_append(&s->in, p, n) < 0)
			return stomp_fail(s, NULL, "out of memory", NULL);
		size_t used = process(s, s->in.data, s->in.len);
		memmove(s->in.data, s->in.data + used, s->in.len - used);
		s->in.len -= used;
	}
	if (s->in.len == 0 && s->in.cap > 65536)
		stomp_buf_free(&s->in);   /* a big frame passed: give the memory back */
	return (s->done || conn_closing(s->c)) ? -1 : 0;
}

/* ---- life cycle ---- */

static void *stomp_open(struct conn *c, const struct proto_env *env, const char *ws_name)
{
	struct stomp_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->c = c;
	s->r = env->router;
	s->cfg = env->cfg;
	s->st = env->store;
	snprintf(s->ws_name, sizeof(s->ws_name), "%s", ws_name ? ws_name : "");
	s->v = STOMP_V10;
	if (ws_name && strcmp(ws_name, "v12.stomp") == 0)
		s->v = STOMP_V12;   /* how to word an ERROR before CONNECT */
	else if (ws_name && strcmp(ws_name, "v11.stomp") == 0)
		s->v = STOMP_V11;
	snprintf(s->id, sizeof(s->id), "wsb-%llu", (unsigned long long)++session_counter);
	struct stomp_limits lim = {
		.max_headers = env->cfg->stomp_max_headers,
		.max_header_size = env->cfg->stomp_max_header_size,
		.max_body = env->cfg->stomp_max_body,
	};
	stomp_parser_init(&s->parser, &lim);
	s->last_rx = s->last_tx = clock_now_ms();
	if (env->cfg->handshake_timeout_ms)
		s->connect_deadline = s->last_rx + env->cfg->handshake_timeout_ms;
	stomp_arm_timer(s);
	return s;
}

static void stomp_shutdown(void *sp)
{
	struct stomp_session *s = sp;
	if (s->done)
		return;
	s->done = true;
	send_error(s, NULL, "broker shutting down", NULL, NULL, NULL);
}

static void stomp_close(void *sp, enum proto_close_reason why)
{
	struct stomp_session *s = sp;
	(void)why;
	s->closed = true;
	stomp_waiters_detach(s);
	/* conn_* is off limits here: name the session instead of the peer */
	if (s->dropped)
		log_info(NULL, s->id, "stomp: %llu messages were dropped for a slow reader",
			 (unsigned long long)s->dropped);
	stomp_tx_free_all(s);
	stomp_subs_free(s);
	stomp_parser_free(&s->parser);
	stomp_buf_free(&s->in);
	stomp_buf_free(&s->out);
	stomp_buf_free(&s->tmp);
	free(s);
}

static void stomp_teardown(const struct proto_env *env)
{
	stomp_held_frames_free();
}

static const char *const stomp_ws_names[] = { "v12.stomp", "v11.stomp", "v10.stomp", "stomp", NULL };

const struct protocol stomp_protocol = {
	.name = "stomp",
	.ws_names = stomp_ws_names,
	.ws_binary_only = false,
	.ws_binary_out = false,
	.sniff = stomp_sniff,
	.open = stomp_open,
	.input = stomp_input,
	.tick = stomp_tick,
	.shutdown = stomp_shutdown,
	.close = stomp_close,
	.teardown = stomp_teardown,
	.restore = stomp_restore,
};
