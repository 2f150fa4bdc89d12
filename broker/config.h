/* config: the broker's settings. Defaults, a `key value` config file with
 * '#' comments, and command-line options that override the file. Every
 * client-controlled bound lives here. Errors come back as "file:line: what
 * is wrong" text for the caller to print; nothing here logs. One table
 * row per key carries its default, bound, reload rule and sentence; a unit
 * test holds docs/configuration.md to that table. Not here: applying a
 * setting (each module reads struct cfg). */
#ifndef WSB_CONFIG_H
#define WSB_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_MAX_LISTENERS 16
#define CFG_MAX_PATHS 16
#define CFG_MAX_ORIGINS 32
#define CFG_MAX_KEYS 128         /* rows the key table may have */

/* The TLS kinds are their plain kind inside a TLS tunnel; auto also takes
 * TLS (a ClientHello) when a certificate is configured. */
enum listener_kind {
	LISTEN_AUTO = 0, LISTEN_WS, LISTEN_MQTT, LISTEN_STOMP,
	LISTEN_WSS, LISTEN_MQTTS, LISTEN_STOMPS
};
#define LISTEN_KINDS 7
/* wss -> ws, mqtts -> mqtt, stomps -> stomp; the others are themselves. */
enum listener_kind cfg_listener_plain_kind(enum listener_kind k);
bool cfg_listener_is_tls(enum listener_kind k);

/* enum tls_min_version's order, as tls_min_version reads it. */
enum cfg_tls_version { CFG_TLS_12 = 0, CFG_TLS_13 };

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

/* The settings. What each key means, its default and its bound are in the
 * key table in config.c (and, from it, in --help and docs/configuration.md),
 * not in comments here. */
/* What the command line asks for besides running: --print-config and
 * --check-config print the effective settings and exit. */
enum cfg_action { CFG_ACTION_RUN = 0, CFG_ACTION_PRINT, CFG_ACTION_CHECK };

struct cfg {
	int action;              /* enum cfg_action; not a key */
	char config_file[512];
	char db_path[512];
	int sync;                /* enum cfg_sync */
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
	size_t http_max_header;
	uint32_t handshake_timeout_ms;
	size_t ws_max_message;
	uint32_t ws_ping_interval_ms;
	uint32_t ws_pong_timeout_ms;
	uint32_t close_timeout_ms;
	uint32_t shutdown_timeout_ms;
	size_t out_high_water;
	size_t out_hard_limit;
	size_t out_soft_limit;
	uint32_t out_soft_seconds;

	/* limits (net/conn_limit.c, server.c) */
	uint32_t accept_retry_ms;
	size_t max_connections_per_ip;
	uint32_t publish_rate_limit;
	uint32_t publish_rate_burst;

	/* auth */
	bool allow_anonymous;
	char users_file[512];
	char acl_file[512];
	uint32_t login_fail_delay_ms;
	uint32_t login_fail_delay_max_ms;
	uint32_t login_fail_reset_s;
	size_t login_fail_max_addresses;

	/* not keys: which rows a file or the command line set (by table
	 * index), so that a rule can tell "set to its default" from "left
	 * at its default" */
	bool key_set[CFG_MAX_KEYS];

	/* TLS */
	char tls_cert[512];
	char tls_key[512];
	char tls_ca[512];
	bool tls_require_cert;
	bool tls_cert_as_username;
	int tls_min_version;     /* enum cfg_tls_version */
	char tls_ciphers[512];
	char tls_ciphersuites[512];

	/* STOMP */
	size_t stomp_max_headers;
	size_t stomp_max_header_size;
	size_t stomp_max_body;
	uint32_t stomp_heartbeat_ms;
	double stomp_heartbeat_grace;
	size_t stomp_max_subscriptions;
	size_t stomp_max_unacked;
	size_t queue_max_messages;
	size_t stomp_max_transactions;
	size_t stomp_max_tx_frames;

	/* MQTT */
	size_t mqtt_max_packet;
	size_t mqtt_max_inflight;
	size_t mqtt_max_queued;
	size_t mqtt_max_subscriptions;
	uint32_t mqtt_max_keepalive;
	size_t mqtt_max_retained;
	uint32_t mqtt_session_expiry;
	size_t mqtt_max_sessions;
};

enum cfg_type {
	CFG_T_STR, CFG_T_SIZE, CFG_T_U32, CFG_T_DOUBLE, CFG_T_BOOL,
	CFG_T_CHOICE,            /* an int: the value's index in `form` */
	CFG_T_LEVEL,             /* enum log_level, as log_parse_level reads it */
	CFG_T_LISTENER, CFG_T_PATH, CFG_T_ORIGIN, /* repeatable */
};

/* One row per key: the only place a key's default, bound, reload rule and
 * description are written. */
struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t off, len;         /* the field in struct cfg */
	const char *def;         /* config-file text; repeatable keys separate
				  * values with ", "; "" = none */
	double min, max;         /* numbers: the range; repeatable keys: max = how many */
	const char *form;        /* CHOICE/LEVEL: the allowed values; others: the syntax */
	bool reload;             /* SIGHUP applies it; the rest wait for a restart */
	const char *doc;         /* one sentence, opening its row in docs/configuration.md */
};

size_t cfg_key_count(void);
const struct cfg_key *cfg_key_at(size_t i);
const struct cfg_key *cfg_key_find(const char *name);
/* The default and the bound as --help and docs/configuration.md show them. */
/* Whether the file or the command line set key (even to its default). */
bool cfg_key_is_set(const struct cfg *c, const char *name);
const char *cfg_key_default_text(const struct cfg_key *k);
void cfg_key_range_text(const struct cfg_key *k, char *buf, size_t len);

/* SIGHUP: copy into dst every key whose row says reload. Keys that differ
 * between dst and src but do not reload are named in ignored (", "
 * separated, truncated to fit); returns how many there are. */
size_t cfg_apply_reloadable(struct cfg *dst, const struct cfg *src, char *ignored, size_t len);

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
 * --set KEY=VALUE, --print-config, --check-config, --print-man 5|8,
 * --version, --help. The file named by -c is read first and the other
 * options override it, whatever their order. Returns 0 to go on (c->action
 * says whether to run or print), 1 when --help/--version/--print-man printed
 * and the program should exit 0, -1 with a message in err. */
int cfg_parse_args(struct cfg *c, int argc, char **argv, char *err, size_t errlen);

/* main's view of cfg_parse_args: CFG_GO to go on (c->action says to run
 * or to print), else the process's exit status: 0 once --help, --version
 * or --print-man printed, 2 once the error is on errf ("wsbroker: ..."). */
#define CFG_GO (-1)
int cfg_command_line(struct cfg *c, int argc, char **argv, FILE *errf);

/* "[ADDR:]PORT[/KIND]" -> listener. 0 or -1. */
int cfg_parse_listener(const char *spec, struct cfg_listener *out);
const char *cfg_listener_kind_name(enum listener_kind k);

/* What the documentation generators (config_doc.c) and the reload rules
 * share: a repeatable key's items, equality by meaning, a number as the
 * parser reads it back (sizes in KiB/MiB/GiB when exact). */
bool cfg_key_repeatable(const struct cfg_key *k);
size_t cfg_key_items(const struct cfg_key *k, const struct cfg *c);
bool cfg_key_equal(const struct cfg_key *k, const struct cfg *a, const struct cfg *b);
void cfg_key_number_text(const struct cfg_key *k, double v, char *buf, size_t len);

/* ---- config_doc.c: everything written from the key table ---- */

/* --help: the options, then every key with its default, range and sentence. */
void cfg_print_usage(FILE *out);
/* --version: the version and whether sd_notify is built in. */
void cfg_print_version(FILE *out);
/* One item of a key's value as config-file text ("127.0.0.1:8080/auto",
 * "4MiB", "true"). Returns 0, or -1 when a config file line cannot carry it
 * (empty, or with '#', a line break or spaces at either end). */
int cfg_key_value_text(const struct cfg_key *k, const struct cfg *c, size_t item, char *buf,
		       size_t len);
/* --print-config / --check-config: c as a config file that reads back to
 * the same settings. Every key gets its sentence as a comment; a key at its
 * default is commented out, any other is active. Returns 0, or -1 with the
 * key that no config file line can carry named in err. */
int cfg_print_config(FILE *out, const struct cfg *c, char *err, size_t errlen);
/* --print-config / --check-config once the settings are valid: the
 * config file on out, all or nothing. Returns the exit status: 0, 2 with
 * the reason on errf when a value cannot be written, 1 when out fails. */
int cfg_print_settings(const struct cfg *c, FILE *out, FILE *errf);
/* --print-man 8 (wsbroker(8)) or 5 (wsbroker.conf(5)), in roff. */
void cfg_print_man(FILE *out, int section);

#endif
