/* fake_conn: a stand-in for broker/net/conn.c in session unit tests. It records
 * what a session sends and whether it closed, and never touches a socket. */
#ifndef WSB_FAKE_CONN_H
#define WSB_FAKE_CONN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "net/conn.h"

struct conn {
	char peer[64];
	char *client_id;
	bool websocket;
	const char *ws_path;
	uint8_t *out;            /* everything sent, concatenated */
	size_t out_len, out_cap;
	size_t sends;            /* number of conn_send* calls */
	size_t shared_sends;     /* of which conn_send_shared */
	bool last_binary;        /* type of the last conn_send_type / conn_send */
	bool default_binary;     /* what conn_send uses */
	bool closing;
	enum conn_close_reason close_why;
	uint16_t close_code;     /* what a WebSocket peer would get for close_why */
	char close_reason[128];  /* conn_close's text */
	uint64_t timer_ms;       /* last conn_timer delay, 0 = none */
	size_t pending;          /* what conn_pending reports */
	bool congested;          /* what conn_congested reports */
};

struct conn *fake_conn_new(bool websocket);
void fake_conn_free(struct conn *c);
/* Forget what was sent so far. */
void fake_conn_clear(struct conn *c);
/* Take the recorded output as a NUL-terminated string (valid until clear). */
const char *fake_conn_text(struct conn *c);

#endif
