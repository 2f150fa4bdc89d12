/* stomp_proto: the STOMP protocol object (struct protocol): the broker-wide
 * state its init makes, sessions opened and closed, the byte stream cut
 * into frames and each frame sent to its handler, then its RECEIPT. The
 * top of the STOMP files (stomp_session.h draws the graph); the rules of
 * each frame live in the files below. */
#include "stomp.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "config.h"
#include "net/conn.h"
#include "log.h"
#include "stomp_session.h"
#include "store.h"

/* ---- frames ---- */

/* Earlier frames' receipts may still wait for the disk: this one follows
 * them, and the connection closes after it. */
static int on_disconnect(struct stomp_session *s, const struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	if (!stomp_waiting(s))
		return stomp_disconnect(s, receipt);
	s->done = true;
	s->close_when_drained = true;
	stomp_after_frame(s, receipt, store_submitted(s->st), false);
	return STOMP_CLOSED;
}

static int dispatch(struct stomp_session *s, const struct stomp_frame *f)
{
	switch (f->cmd) {
	case STOMP_CONNECT:
	case STOMP_STOMP:
		return stomp_on_connect(s, f);
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
		return STOMP_CLOSED;
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
	while (off < n && !s->done && !s->refuse_at && !conn_closing(s->c)) {
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
	if (s->refuse_at)
		return 0;   /* a refused login waits for its ERROR: input is ignored */
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

static void *stomp_init(const struct proto_env *env)
{
	(void)env;
	return calloc(1, sizeof(struct stomp_broker));
}

static void stomp_teardown(const struct proto_env *env)
{
	struct stomp_broker *b = env->state;
	if (!b)
		return;
	stomp_held_frames_free(b);
	free(b);
}

static void *stomp_open(struct conn *c, const struct proto_env *env, const char *ws_name)
{
	struct stomp_broker *b = env->state;
	if (!b)
		return NULL;   /* opened without stomp_protocol.init */
	struct stomp_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->c = c;
	s->b = b;
	s->r = env->router;
	s->cfg = env->cfg;
	s->st = env->store;
	s->acl = env->acl ? env->acl : &b->no_acl;
	stomp_acks_init(s);
	snprintf(s->ws_name, sizeof(s->ws_name), "%s", ws_name ? ws_name : "");
	s->v = STOMP_V10;
	if (ws_name && strcmp(ws_name, "v12.stomp") == 0)
		s->v = STOMP_V12;   /* how to word an ERROR before CONNECT */
	else if (ws_name && strcmp(ws_name, "v11.stomp") == 0)
		s->v = STOMP_V11;
	snprintf(s->id, sizeof(s->id), "wsb-%llu", (unsigned long long)++b->sessions);
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
	free(s->refuse_receipt);
	s->refuse_receipt = NULL;
	stomp_tx_free_all(s);
	stomp_subs_free(s);
	stomp_parser_free(&s->parser);
	stomp_buf_free(&s->in);
	stomp_buf_free(&s->out);
	stomp_buf_free(&s->tmp);
	free(s->login);
	free(s);
}

/* stomp_tick knows the connection's deadlines; the acks held for a slow
 * reader belong to stomp_sub.c, above it, so they are released here. */
static void proto_tick(void *sp)
{
	struct stomp_session *s = sp;
	stomp_tick(s);
	if (s->auto_held && !s->done && !s->closed && !conn_closing(s->c)) {
		stomp_release_auto_held(s);
		stomp_arm_timer(s);
	}
}

static void proto_shutdown(void *sp)
{
	stomp_shutdown(sp);
}

static const char *const stomp_ws_names[] = { "v12.stomp", "v11.stomp", "v10.stomp", "stomp", NULL };

const struct protocol stomp_protocol = {
	.name = "stomp",
	.ws_names = stomp_ws_names,
	.ws_binary_only = false,
	.ws_binary_out = false,
	.sniff = stomp_sniff,
	.init = stomp_init,
	.open = stomp_open,
	.input = stomp_input,
	.tick = proto_tick,
	.shutdown = proto_shutdown,
	.close = stomp_close,
	.teardown = stomp_teardown,
	.restore = stomp_restore,
};
