#include "fake_conn.h"
#include "net/ws_frame.h"
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

struct conn *fake_conn_new(bool websocket)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	strcpy(c->peer, "127.0.0.1:40000");
	c->websocket = websocket;
	return c;
}

void fake_conn_free(struct conn *c)
{
	if (!c)
		return;
	free(c->client_id);
	free(c->out);
	free(c);
}

void fake_conn_clear(struct conn *c)
{
	c->out_len = 0;
	c->sends = 0;
}

const char *fake_conn_text(struct conn *c)
{
	if (c->out_len + 1 > c->out_cap) {
		c->out_cap = c->out_len + 1;
		c->out = realloc(c->out, c->out_cap);
		if (!c->out)
			abort();
	}
	c->out[c->out_len] = 0;
	return (const char *)c->out;
}

const char *conn_peer(const struct conn *c) { return c->peer; }
const char *conn_client_id(const struct conn *c) { return c->client_id; }
bool conn_is_websocket(const struct conn *c) { return c->websocket; }
const char *conn_ws_path(const struct conn *c) { return c->ws_path; }
const char *conn_tls_identity(const struct conn *c) { (void)c; return NULL; }

void conn_set_client_id(struct conn *c, const char *id)
{
	free(c->client_id);
	c->client_id = id ? strdup(id) : NULL;
}

int conn_send_type(struct conn *c, const void *data, size_t len, bool binary)
{
	if (c->closing)
		return -1;
	if (c->out_len + len + 1 > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 256;
		while (cap < c->out_len + len + 1)
			cap *= 2;
		c->out = realloc(c->out, cap);
		if (!c->out)
			abort();
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	c->sends++;
	c->last_binary = binary;
	return 0;
}

int conn_send(struct conn *c, const void *data, size_t len)
{
	return conn_send_type(c, data, len, c->default_binary);
}

/* Shared bytes are recorded like any other send. */
struct conn_shared {
	size_t len;
	unsigned refs;
	uint8_t data[];
};

struct conn_shared *conn_shared_new(const void *data, size_t len)
{
	struct conn_shared *sh = malloc(sizeof(*sh) + len);
	if (!sh)
		return NULL;
	sh->len = len;
	sh->refs = 1;
	memcpy(sh->data, data, len);
	return sh;
}

void conn_shared_unref(struct conn_shared *sh)
{
	if (sh && --sh->refs == 0)
		free(sh);
}

const void *conn_shared_data(const struct conn_shared *sh) { return sh->data; }

int conn_send_shared(struct conn *c, struct conn_shared *sh)
{
	c->shared_sends++;
	return conn_send(c, sh->data, sh->len);
}

size_t conn_pending(const struct conn *c) { return c->pending; }
bool conn_congested(const struct conn *c) { return c->congested; }
void conn_count_publish(struct conn *c) { (void)c; }

void conn_close(struct conn *c, enum conn_close_reason reason, const char *text)
{
	if (c->closing)
		return;
	c->closing = true;
	c->close_why = reason;
	c->close_code = ws_close_code_for(reason);
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", text ? text : "");
}

bool conn_closing(const struct conn *c) { return c->closing; }
void conn_timer(struct conn *c, uint64_t delay_ms) { c->timer_ms = delay_ms; }
