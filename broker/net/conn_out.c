/* conn_out: conn's output side: framing and queueing what sessions send,
 * shared (reference-counted) output, and writing each connection's output
 * once per event-loop pass. See conn.h for the contract and conn_int.h for
 * what it shares with the rest of net/. */
#include "conn_int.h"
#include "config.h"
#include "log.h"
#include "protocol.h"
#include "ws_frame.h"
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Frames up to this size are copied into the output in one piece. */
#define SMALL_FRAME 4096

/* ---- output ---- */

/* Server frames are unmasked, so the header depends only on opcode and
 * length. Small frames go in as one piece: one evbuffer operation, and the
 * header never sits alone at the end of a chain. */
void conn_ws_send_frame(struct conn *c, uint8_t opcode, const void *data, size_t len)
{
	uint8_t hdr[WS_MAX_HEADER];
	size_t hl = ws_frame_encode_header(hdr, opcode, true, len, NULL);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer_iovec v;
	if (len <= SMALL_FRAME && evbuffer_reserve_space(out, (ev_ssize_t)(hl + len), &v, 1) == 1) {
		memcpy(v.iov_base, hdr, hl);
		if (len)
			memcpy((uint8_t *)v.iov_base + hl, data, len);
		v.iov_len = hl + len;
		evbuffer_commit_space(out, &v, 1);
	} else {
		evbuffer_add(out, hdr, hl);
		if (len)
			evbuffer_add(out, data, len);
	}
	conn_mark_dirty(c);
}

/* 0 when len more bytes may be queued; -1 when closing or past the hard
 * limit (the connection is then being closed). */
static int send_check(struct conn *c, size_t len)
{
	if (conn_closing(c))
		return -1;
	if (conn_pending(c) + len > conn_m.cfg->out_hard_limit) {
		log_warn(c->peer, c->client_id,
			 "slow consumer: %zu bytes queued, past out_hard_limit %zu; disconnecting",
			 conn_pending(c), conn_m.cfg->out_hard_limit);
		conn_lim_count_hard();
		conn_set_why(c, PROTO_CLOSED_ERROR);
		conn_enter(c, CONN_DEAD);
		return -1;
	}
	conn_lim_output(c, conn_pending(c) + len);
	if (!c->answered) {
		c->answered = true;
		if (c->hs_timer)
			evtimer_del(c->hs_timer);
	}
	return 0;
}

int conn_send_type(struct conn *c, const void *data, size_t len, bool binary)
{
	if (send_check(c, len) < 0)
		return -1;
	if (c->websocket) {
		conn_ws_send_frame(c, binary ? WS_OP_BINARY : WS_OP_TEXT, data, len);
	} else {
		evbuffer_add(bufferevent_get_output(c->bev), data, len);
		conn_mark_dirty(c);
	}
	return 0;
}

int conn_send(struct conn *c, const void *data, size_t len)
{
	return conn_send_type(c, data, len, c->proto ? c->proto->ws_binary_out : false);
}

/* ---- shared output ---- */

struct conn_shared {
	unsigned refs;
	size_t len;
	uint8_t data[];
};

struct conn_shared *conn_shared_new(const void *data, size_t len)
{
	struct conn_shared *sh = malloc(sizeof(*sh) + len);
	if (!sh)
		return NULL;
	sh->refs = 1;
	sh->len = len;
	memcpy(sh->data, data, len);
	return sh;
}

void conn_shared_unref(struct conn_shared *sh)
{
	if (sh && --sh->refs == 0)
		free(sh);
}

const void *conn_shared_data(const struct conn_shared *sh) { return sh->data; }

/* evbuffer's cleanup for a reference: runs on the loop thread when the
 * chain is written or its buffer freed. */
static void shared_done(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	conn_shared_unref(arg);
}

int conn_send_shared(struct conn *c, struct conn_shared *sh)
{
	bool binary = c->proto ? c->proto->ws_binary_out : false;
	if (sh->len < CONN_SHARE_MIN)
		return conn_send_type(c, sh->data, sh->len, binary);
	if (send_check(c, sh->len) < 0)
		return -1;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (c->websocket) {
		uint8_t hdr[WS_MAX_HEADER];
		size_t hl = ws_frame_encode_header(hdr, binary ? WS_OP_BINARY : WS_OP_TEXT, true,
						   sh->len, NULL);
		evbuffer_add(out, hdr, hl);
	}
	sh->refs++;
	if (evbuffer_add_reference(out, sh->data, sh->len, shared_done, sh) < 0) {
		sh->refs--;
		/* A lone frame header would break the stream: give up on it. */
		log_warn(c->peer, c->client_id, "out of memory queueing a message; disconnecting");
		conn_set_why(c, PROTO_CLOSED_ERROR);
		conn_enter(c, CONN_DEAD);
		return -1;
	}
	conn_mark_dirty(c);
	return 0;
}

/* ---- output scheduling ----
 * Sessions append to the bufferevent's output buffer, but conn writes it to
 * the socket itself: each connection given bytes during one pass of the
 * event loop is written once, with one writev, when the pass's callbacks are
 * done (flush_ev). A publish fanned out to 1000 subscribers is then 1000
 * writes in the same pass, without the bufferevent write event's epoll_ctl
 * add/delete and base-lock round trips per connection, and what one
 * subscriber is sent several times within a pass leaves in one write. Only a
 * socket that would block hands over to the bufferevent's write event
 * (wwait) until its buffer drains. Output bounds are unchanged: conn_pending
 * still counts every byte not yet accepted by the kernel. */

void conn_mark_dirty(struct conn *c)
{
	if (c->dirty || c->wwait || c->phase == CONN_DEAD)
		return;
	c->dirty = true;
	c->dirty_prev = NULL;
	c->dirty_next = conn_m.dirty;
	if (conn_m.dirty)
		conn_m.dirty->dirty_prev = c;
	conn_m.dirty = c;
	if (!conn_m.flush_scheduled) {
		conn_m.flush_scheduled = true;
		event_active(conn_m.flush_ev, EV_TIMEOUT, 0);
	}
}

void conn_unmark_dirty(struct conn *c)
{
	if (!c->dirty)
		return;
	if (c->dirty_prev)
		c->dirty_prev->dirty_next = c->dirty_next;
	else
		conn_m.dirty = c->dirty_next;
	if (c->dirty_next)
		c->dirty_next->dirty_prev = c->dirty_prev;
	c->dirty = false;
	c->dirty_prev = c->dirty_next = NULL;
}

static void flush_one(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evutil_socket_t fd = c->fd;
	int n = 1;
	if (c->ssl) {
		/* Encryption is the OpenSSL bufferevent's: it writes, write_cb
		 * sees the output drained. */
		if (evbuffer_get_length(out) == 0) {
			conn_output_drained(c);
			return;
		}
		c->wwait = true;
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	/* bufferevent keeps its output frozen at the front between its own
	 * writes; thaw it for ours. */
	evbuffer_unfreeze(out, 1);
	while (evbuffer_get_length(out) && (n = evbuffer_write(out, fd)) > 0)
		;
	evbuffer_freeze(out, 1);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		log_info(c->peer, c->client_id, "socket error: %s", strerror(errno));
		conn_set_why(c, PROTO_CLOSED_ERROR);
		conn_enter(c, CONN_DEAD);
		return;
	}
	conn_lim_output(c, evbuffer_get_length(out));
	if (evbuffer_get_length(out)) {
		c->wwait = true;
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	conn_output_drained(c);
}

void conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_m.flush_scheduled = false;
	while (conn_m.dirty) {
		struct conn *c = conn_m.dirty;
		conn_unmark_dirty(c);
		if (c->phase != CONN_DEAD)
			flush_one(c);
	}
}
