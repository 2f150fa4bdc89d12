/* protocol: the interface a wire protocol (STOMP, MQTT) implements, and the
 * registry that the WebSocket handshake and the first-bytes sniffer consult.
 * A session sees a byte stream in (input) and answers through conn.h; it
 * reaches the rest of the broker only through router.h, store.h, auth.h and
 * conn.h. Nothing here knows a transport. */
#ifndef WSB_PROTOCOL_H
#define WSB_PROTOCOL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct router;
struct cfg;
struct store;
struct acl_holder;

/* What a session is handed when it opens. */
struct proto_env {
	struct router *router;
	const struct cfg *cfg;
	struct store *store;         /* never NULL in the broker; ":memory:" at worst */
	/* The server's ACL (auth/acl.h): never NULL; its acl is NULL without an
	 * acl_file, and SIGHUP swaps it, so sessions read it through here. */
	const struct acl_holder *acl;
	void *state;                 /* the protocol's broker-wide state: what its
	                              * init returned (NULL without an init) */
};

/* Why a connection ended, as told to close(). */
enum proto_close_reason {
	PROTO_CLOSED_BY_SESSION = 0, /* the session called conn_close */
	PROTO_CLOSED_BY_PEER,        /* EOF, WebSocket close from the client */
	PROTO_CLOSED_ERROR,          /* socket error, transport protocol error, limit */
	PROTO_CLOSED_TIMEOUT,        /* transport keepalive (WebSocket ping) expired */
	PROTO_CLOSED_SHUTDOWN        /* the broker is stopping */
};

struct protocol {
	const char *name;              /* "stomp", "mqtt": logs, path mapping */
	const char *const *ws_names;   /* subprotocol tokens, NULL-terminated */
	bool ws_binary_only;           /* a text WebSocket frame gets close 1003 */
	bool ws_binary_out;            /* default outbound frame type over WebSocket */
	/* First bytes of a raw TCP stream: 1 mine, 0 need more, -1 not mine. */
	int (*sniff)(const uint8_t *p, size_t n);
	/* Optional, once before restore and before any connection: make the
	 * protocol's broker-wide state (MQTT's session table, STOMP's frame
	 * cache). What it returns is env->state in every later call; NULL is
	 * a failure (logged by the caller). Two inits make two independent
	 * instances: nothing of a protocol lives in file-level statics. */
	void *(*init)(const struct proto_env *env);
	/* Create the session for a new connection. ws_name is the negotiated
	 * subprotocol token, or NULL over raw TCP / path-selected WebSocket.
	 * Returns NULL on failure (the connection is then closed). */
	void *(*open)(struct conn *c, const struct proto_env *env, const char *ws_name);
	/* The next chunk of the byte stream (any cut: half a frame, several
	 * frames). Returns 0, or -1 when the session has called conn_close. */
	int (*input)(void *s, const uint8_t *p, size_t n);
	/* The timer the session set with conn_timer() fired. */
	void (*tick)(void *s);
	/* The broker is stopping: send the protocol's goodbye (STOMP ERROR,
	 * MQTT 5 DISCONNECT; nothing for 3.1.1) before conn closes with 1001. */
	void (*shutdown)(void *s);
	/* The connection is gone; release everything and free the session. No
	 * conn_* call may be made on this connection afterwards. */
	void (*close)(void *s, enum proto_close_reason why);
	/* Optional, at broker exit after every connection is closed: free
	 * env->state (MQTT's table of persistent sessions). Nothing is deleted
	 * from the store: it is what the next start loads. */
	void (*teardown)(const struct proto_env *env);
	/* Optional, once at start-up before any listener opens: load what the
	 * store kept (retained messages, sessions, queues). 0, or -1 after
	 * logging why (the broker then refuses to start). */
	int (*restore)(const struct proto_env *env);
	/* Optional, about once a second while the broker runs: end what has
	 * passed its deadline without any connection's help (absent MQTT
	 * sessions past mqtt_session_expiry). */
	void (*housekeeping)(const struct proto_env *env);
};

/* The registry. Registration order is the sniffing order. */
void protocol_register(const struct protocol *p);
void protocol_registry_clear(void);
/* Give every registered protocol its env: base's router, cfg and store, and
 * its own state from its init. 0, or -1 with the failing protocol in err. */
int protocol_init_all(const struct proto_env *base, char *err, size_t errlen);
/* The env a protocol's calls get (set by protocol_init_all). */
const struct proto_env *protocol_env(const struct protocol *p);
/* Each protocol's teardown, in reverse order of registration. */
void protocol_teardown_all(void);
size_t protocol_count(void);
const struct protocol *protocol_at(size_t i);
const struct protocol *protocol_find(const char *name);
/* The protocol that answers to a subprotocol token (exact, case-sensitive);
 * *canonical is set to the registered spelling. */
const struct protocol *protocol_find_ws(const char *tok, size_t len, const char **canonical);
/* Ask each protocol's sniff. Returns the one that claims the bytes, NULL with
 * *need_more = 1 when one might still claim them, NULL with *need_more = 0
 * when none will. */
const struct protocol *protocol_sniff(const uint8_t *p, size_t n, int *need_more);
/* "v12.stomp, v11.stomp, ..." for error messages; returns the length. */
size_t protocol_ws_names_list(char *out, size_t cap);

#endif
