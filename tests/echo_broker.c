/* echo-broker: the real daemon shell with one test-only protocol, "echo",
 * so the transport (HTTP, WebSocket, raw TCP, shutdown) can be tested
 * without STOMP or MQTT. Never installed, never part of broker/wsbroker.
 *
 * The echo session sends every chunk it receives back as one message (text
 * when it is valid UTF-8, else binary); the chunk "close" makes it close
 * normally (1000 over WebSocket) with "bye"; its goodbye on shutdown is the text "goodbye". */
#include "config.h"
#include "net/conn.h"
#include "protocol.h"
#include "server.h"
#include "utf8.h"
#include <stdlib.h>
#include <string.h>

struct echo {
	struct conn *c;
};

static int echo_sniff(const uint8_t *p, size_t n)
{
	static const char magic[] = "ECHO\n";
	size_t m = n < 5 ? n : 5;
	if (memcmp(p, magic, m) != 0)
		return -1;
	return n >= 5 ? 1 : 0;
}

static void *echo_open(struct conn *c, const struct proto_env *env, const char *ws_name)
{
	struct echo *e = calloc(1, sizeof(*e));
	if (e)
		e->c = c;
	return e;
}

static int echo_input(void *s, const uint8_t *p, size_t n)
{
	struct echo *e = s;
	if (n == 5 && memcmp(p, "close", 5) == 0) {
		conn_close(e->c, CONN_CLOSE_NORMAL, "bye");
		return -1;
	}
	conn_send_type(e->c, p, n, !utf8_valid(p, n));
	return 0;
}

static void echo_shutdown(void *s)
{
	struct echo *e = s;
	conn_send_type(e->c, "goodbye", 7, false);
}

static void echo_close(void *s, enum proto_close_reason why)
{
	free(s);
}

static const char *const echo_names[] = {"echo", NULL};

static const struct protocol echo_protocol = {
	.name = "echo",
	.ws_names = echo_names,
	.sniff = echo_sniff,
	.open = echo_open,
	.input = echo_input,
	.shutdown = echo_shutdown,
	.close = echo_close,
};

static void prepare(struct cfg *c)
{
	char err[128];
	cfg_set(c, "path", "/echo echo", err, sizeof(err));
}

int main(int argc, char **argv)
{
	protocol_register(&echo_protocol);
	return server_run(argc, argv, prepare);
}
