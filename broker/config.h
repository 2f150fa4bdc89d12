/* config: the broker's settings. Defaults, a `key value` config file with
 * '#' comments, and command-line options that override the file. Every
 * client-controlled bound lives here. Errors come back as "file:line: what
 * is wrong" text for the caller to print; nothing here exits or logs.
 * docs/configuration.md documents every key; keep the two in step. */
#ifndef WSB_CONFIG_H
#define WSB_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_MAX_LISTENERS 16
#define CFG_MAX_PATHS 16
#define CFG_MAX_ORIGINS 32

enum listener_kind { LISTEN_AUTO = 0, LISTEN_WS, LISTEN_MQTT, LISTEN_STOMP };

struct cfg_listener {
	char addr[64];           /* numeric IPv4/IPv6 address */
	uint16_t port;           /* 0 = any free port */
	enum listener_kind kind;
};

struct cfg_path {
	char path[128];          /* "/mqtt" */
	char protocol[16];       /* "mqtt" | "stomp" */
};

/* How hard the store pushes commits to disk (storage/store.h says what each
 * risks); same order as enum store_sync. */
enum cfg_sync { CFG_SYNC_FULL = 0, CFG_SYNC_NORMAL, CFG_SYNC_OFF };

struct cfg {
	char config_file[512];
	char db_path[512];       /* ":memory:" keeps nothing */
	int sync;                /* enum cfg_sync, full */
	char port_file[512];
	int log_level;           /* enum log_level */

	struct cfg_listener listeners[CFG_MAX_LISTENERS];
	size_t nlisteners;
	int listeners_origin;    /* internal: 0 defaults, 1 file, 2 command line */
	struct cfg_path paths[CFG_MAX_PATHS];
	size_t npaths;
	char origins[CFG_MAX_ORIGINS][128];
	size_t norigins;         /* 0 = every Origin allowed */

	/* transport */
	size_t max_connections;
	size_t http_max_header;        /* bytes of request head, 8 KiB */
	uint32_t handshake_timeout_ms; /* 10 s */
	size_t ws_max_message;         /* 1 MiB */
	uint32_t ws_ping_interval_ms;  /* 30 s, 0 = off */
	uint32_t ws_pong_timeout_ms;   /* 10 s */
	uint32_t close_timeout_ms;     /* wait for the peer after a close, 5 s */
	uint32_t shutdown_timeout_ms;  /* bound on SIGTERM drain, 5 s */
	size_t out_high_water;         /* soft output limit per client, 1 MiB */
	size_t out_hard_limit;         /* disconnect past this, 16 MiB */

	/* auth */
	bool allow_anonymous;
	char users_file[512];

	/* STOMP */
	size_t stomp_max_headers;      /* 64 */
	size_t stomp_max_header_size;  /* 8 KiB per header line */
	size_t stomp_max_body;         /* 1 MiB */
	uint32_t stomp_heartbeat_ms;   /* what the broker offers/asks, 10 s */
	double stomp_heartbeat_grace;  /* 2.0 */
	size_t stomp_max_subscriptions;/* per connection, 1000 */
	size_t stomp_max_unacked;      /* per subscription, 1000 */
	size_t queue_max_messages;     /* per queue, 100000 */
	size_t stomp_max_transactions; /* open at once per connection, 16 */
	size_t stomp_max_tx_frames;    /* SEND/ACK/NACK held by open transactions, 10000 */

	/* MQTT */
	size_t mqtt_max_packet;        /* 1 MiB */
	size_t mqtt_max_inflight;      /* 20 */
	size_t mqtt_max_queued;        /* 1000 per client */
	size_t mqtt_max_subscriptions; /* per client, 1000 */
	uint32_t mqtt_max_keepalive;   /* seconds, 0 = no cap */
	size_t mqtt_max_retained;      /* 100000 */
	uint32_t mqtt_session_expiry;  /* seconds an absent persistent session is kept, 0 = forever */
	size_t mqtt_max_sessions;      /* sessions held at once, 100000 */
};

/* Fill with the built-in defaults (three loopback listeners, /mqtt and
 * /stomp paths, ./wsbroker.db). */
void cfg_defaults(struct cfg *c);

/* Apply one `key value` setting. Returns 0, or -1 with a message (no file or
 * line prefix) in err. A `listener` key in a file or --listen replaces the
 * default listeners on first use. */
int cfg_set(struct cfg *c, const char *key, const char *value, char *err, size_t errlen);

/* Read a config file. Returns 0, or -1 with "file:line: what" in err. */
int cfg_load_file(struct cfg *c, const char *path, char *err, size_t errlen);

/* Parse argv: -c FILE, --listen SPEC, --db PATH, --log-level L, --port-file P,
 * --set KEY=VALUE, --version, --help. The file named by -c is read first and
 * the other options override it, whatever their order. Returns 0 to run,
 * 1 when --help/--version printed and the program should exit 0, -1 with a
 * message in err. */
int cfg_parse_args(struct cfg *c, int argc, char **argv, char *err, size_t errlen);

/* "[ADDR:]PORT[/KIND]" -> listener. 0 or -1. */
int cfg_parse_listener(const char *spec, struct cfg_listener *out);
const char *cfg_listener_kind_name(enum listener_kind k);

/* Write docs-style usage text. */
const char *cfg_usage(void);

#endif
