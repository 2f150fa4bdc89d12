/* conn_int: what conn's two files share: conn.c (accessors, timers, close
 * and lifecycle, WebSocket and HTTP input, accept, the module) and
 * conn_out.c (output, shared output, output scheduling). Not for use
 * outside conn. */
#ifndef WSB_CONN_INT_H
#define WSB_CONN_INT_H
#include "conn.h"
#include "config.h"
#include "protocol.h"
#include "ws_frame.h"
#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conn_state { CS_SNIFF, CS_HTTP, CS_WS, CS_RAW };

struct conn {
	struct conn *prev, *next;       /* live list */
	struct conn *reap_next;         /* pending free */
	struct conn *release_next;      /* session to be closed */
	struct conn *dirty_prev, *dirty_next; /* output to write this pass */
	bool dirty;
	bool wwait;                     /* socket was full: bufferevent writes */
	bool release_pending;
	struct bufferevent *bev;
	enum conn_state state;
	enum listener_kind kind;
	char peer[64];
	char *client_id;
	char *ws_path;
	const struct protocol *proto;
	void *session;
	bool websocket;
	bool closing;                   /* no more session input; flushing */
	bool dead;                      /* on the reap list */
	bool close_sent, close_rcvd;    /* WebSocket close handshake */
	bool flush_then_free;
	bool lingering;                 /* after our last word: discard input until EOF */
	bool shut_wr;
	bool answered;                  /* the session has sent something */
	bool ping_out;
	enum proto_close_reason why;
	bool why_set;
	struct ws_msg_state wsm;
	struct ws_frame cur;            /* data frame whose payload is streaming */
	bool in_frame;
	uint64_t cur_done;
	uint64_t last_rx_ms, ping_sent_ms;
	struct event *hs_timer, *ping_timer, *sess_timer, *close_timer;
};

/* The module's state; defined in conn.c. */
struct conn_module {
	struct event_base *base;
	const struct cfg *cfg;
	struct conn *live;
	size_t nlive;
	struct conn *reap;
	struct conn *release;
	struct event *reap_ev;
	struct conn *dirty;             /* flush list, see conn_out.c */
	struct event *flush_ev;
	bool flush_scheduled;
	bool shutting_down;
	uint64_t started_ms;
	void (*all_gone)(void *);
	void *all_gone_arg;
	uint8_t scratch[65536];
};
extern struct conn_module conn_m;

/* conn.c */
void conn_set_why(struct conn *c, enum proto_close_reason why);
void conn_reap_later(struct conn *c);

/* conn_out.c */
void conn_ws_send_frame(struct conn *c, uint8_t opcode, const void *data, size_t len);
void conn_ws_send_close(struct conn *c, uint16_t code, const char *reason);
void conn_output_drained(struct conn *c);
void conn_mark_dirty(struct conn *c);
void conn_unmark_dirty(struct conn *c);
void conn_flush_cb(evutil_socket_t fd, short what, void *arg);

#endif
