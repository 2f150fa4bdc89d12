#include "config.h"
#include "log.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K(k, t, f, d, mn, mx, form, rl, doc) \
	{k, t, offsetof(struct cfg, f), sizeof(((struct cfg *)0)->f), d, mn, mx, form, rl, doc}
static const struct cfg_key keys[] = {
	K("listener", CFG_T_LISTENER, listeners,
	  "127.0.0.1:8080/auto, 127.0.0.1:1883/mqtt, 127.0.0.1:61613/stomp", 0, CFG_MAX_LISTENERS,
	  "[ADDR:]PORT[/KIND]", false,
	  "Where to accept clients, repeatable; KIND is auto, ws, mqtt, stomp, or over TLS wss, mqtts, stomps (auto takes TLS too once tls_cert is set)."),
	K("db", CFG_T_STR, db_path, "wsbroker.db", 0, 0, "PATH", false,
	  "SQLite database file, relative to the working directory; :memory: keeps nothing across restarts."),
	K("sync", CFG_T_CHOICE, sync, "full", 0, 0, "full, normal, off", false,
	  "How commits reach the disk."),
	K("port_file", CFG_T_STR, port_file, "", 0, 0, "PATH", false,
	  "Once every listener is bound, write one line per listener, KIND ADDRESS:PORT, to this file."),
	K("log_level", CFG_T_LEVEL, log_level, "info", 0, 0, "error, warn, info, debug", true,
	  "How much goes to stderr: lines of this level and the more severe ones."),
	K("path", CFG_T_PATH, paths, "/mqtt mqtt, /stomp stomp", 0, CFG_MAX_PATHS,
	  "/PATH PROTOCOL", false,
	  "Which protocol a WebSocket client gets on PATH when it offers no Sec-WebSocket-Protocol; repeatable."),
	K("origin", CFG_T_ORIGIN, origins, "", 0, CFG_MAX_ORIGINS, "ORIGIN", false,
	  "An allowed Origin for WebSocket upgrades, repeatable; with none listed every Origin is allowed."),
	K("max_connections", CFG_T_SIZE, max_connections, "100000", 1, 10000000, NULL, false,
	  "Connections accepted at once; at the limit the broker stops accepting for accept_retry_ms at a time."),
	K("max_connections_per_ip", CFG_T_SIZE, max_connections_per_ip, "0", 0, 10000000, NULL, false,
	  "Connections accepted at once from one IP address; past it a new socket is closed at once; 0 = no limit."),
	K("accept_retry_ms", CFG_T_U32, accept_retry_ms, "100", 1, 60000, NULL, false,
	  "How long a listener stops accepting when accept fails (out of file descriptors) or max_connections is reached."),
	K("http_max_header", CFG_T_SIZE, http_max_header, "8KiB", 256, 1048576, NULL, false,
	  "Bytes of an HTTP request head; a larger one gets 431."),
	K("handshake_timeout_ms", CFG_T_U32, handshake_timeout_ms, "10000", 10, 3600000, NULL, false,
	  "Time a client has to complete the HTTP/WebSocket handshake and its protocol's CONNECT."),
	K("ws_max_message", CFG_T_SIZE, ws_max_message, "1MiB", 64, 268435456, NULL, false,
	  "Largest WebSocket message."),
	K("ws_ping_interval_ms", CFG_T_U32, ws_ping_interval_ms, "30000", 0, 86400000, NULL, false,
	  "After this long without receiving anything, the broker pings the client; 0 turns pings off."),
	K("ws_pong_timeout_ms", CFG_T_U32, ws_pong_timeout_ms, "10000", 10, 3600000, NULL, false,
	  "A client that sends nothing for this long after a ping is dropped as half-open."),
	K("close_timeout_ms", CFG_T_U32, close_timeout_ms, "5000", 10, 600000, NULL, false,
	  "How long the broker waits for a client's close frame, or for its output to drain, before it drops the TCP connection."),
	K("shutdown_timeout_ms", CFG_T_U32, shutdown_timeout_ms, "5000", 10, 600000, NULL, false,
	  "How long SIGTERM/SIGINT waits for clients to go before closing them."),
	K("out_high_water", CFG_T_SIZE, out_high_water, "1MiB", 1024, 1073741824, NULL, false,
	  "Output queued for one client above which it is congested: QoS 0 / topic messages to it are dropped and counted."),
	K("out_hard_limit", CFG_T_SIZE, out_hard_limit, "16MiB", 4096, 4294967296.0, NULL, false,
	  "Output queued for one client past which it is disconnected."),
	K("out_soft_limit", CFG_T_SIZE, out_soft_limit, "0", 0, 4294967296.0, NULL, false,
	  "Output queued for one client that, held for out_soft_seconds without dropping back below it, disconnects it; 0 = off."),
	K("out_soft_seconds", CFG_T_U32, out_soft_seconds, "60", 1, 86400, NULL, false,
	  "How long a client may stay above out_soft_limit."),
	K("publish_rate_limit", CFG_T_U32, publish_rate_limit, "0", 0, 10000000, NULL, false,
	  "Messages per second one client may publish (MQTT PUBLISH, STOMP SEND); a faster client is slowed by reading its socket less, not dropped; 0 = no limit."),
	K("publish_rate_burst", CFG_T_U32, publish_rate_burst, "100", 1, 10000000, NULL, false,
	  "Messages a client may publish at once above publish_rate_limit before it is slowed."),
	K("allow_anonymous", CFG_T_BOOL, allow_anonymous, "true", 0, 0, "true or false", true,
	  "Whether clients without a login (STOMP login, MQTT username) may connect; left unset it is true only while every listener is on loopback, and a broker listening beyond loopback without a users_file refuses to start unless it is set to true."),
	K("users_file", CFG_T_STR, users_file, "", 0, 0, "PATH", true,
	  "A file of accounts, one per line, as wsbroker passwd writes them; when set, a client that gives a login must match an entry."),
	K("acl_file", CFG_T_STR, acl_file, "", 0, 0, "PATH", true,
	  "A Mosquitto-style access control list (topic, pattern and queue rules per user); when unset every client may read and write everything."),
	K("login_fail_delay_ms", CFG_T_U32, login_fail_delay_ms, "250", 0, 60000, NULL, true,
	  "How long the refusal of a failed login waits, for the first failure from an address; each further failure in a row doubles it; 0 answers at once."),
	K("login_fail_delay_max_ms", CFG_T_U32, login_fail_delay_max_ms, "5000", 0, 3600000, NULL, true,
	  "The longest a refusal waits; keep it below handshake_timeout_ms, which still ends a connection that has not been answered."),
	K("login_fail_reset_s", CFG_T_U32, login_fail_reset_s, "60", 1, 86400, NULL, true,
	  "After this many seconds without a failed login an address starts again from login_fail_delay_ms; a successful login resets it at once."),
	K("login_fail_max_addresses", CFG_T_SIZE, login_fail_max_addresses, "10000", 1, 10000000, NULL, true,
	  "Addresses whose failed logins are remembered; when full, the one that failed least recently is forgotten."),
	K("tls_cert", CFG_T_STR, tls_cert, "", 0, 0, "PATH", true,
	  "The server certificate in PEM, followed by its chain; required by a wss, mqtts or stomps listener, and lets auto listeners take TLS; SIGHUP reloads it for new connections."),
	K("tls_key", CFG_T_STR, tls_key, "", 0, 0, "PATH", true,
	  "The private key of tls_cert in PEM (unencrypted); SIGHUP reloads it with the certificate."),
	K("tls_ca", CFG_T_STR, tls_ca, "", 0, 0, "PATH", true,
	  "CA certificates in PEM that client certificates are verified against; when set, clients are asked for a certificate."),
	K("tls_require_cert", CFG_T_BOOL, tls_require_cert, "false", 0, 0, "true or false", true,
	  "Refuse the TLS handshake of a client without a certificate that tls_ca verifies."),
	K("tls_cert_as_username", CFG_T_BOOL, tls_cert_as_username, "false", 0, 0, "true or false", true,
	  "A verified client certificate's common name (CN) is the client's login, without a password."),
	K("tls_min_version", CFG_T_CHOICE, tls_min_version, "1.2", 0, 0, "1.2, 1.3", true,
	  "The oldest TLS version a client may use."),
	K("tls_ciphers", CFG_T_STR, tls_ciphers, "", 0, 0, "CIPHER:CIPHER...", true,
	  "TLS 1.2 cipher list in OpenSSL's syntax; empty keeps OpenSSL's default."),
	K("tls_ciphersuites", CFG_T_STR, tls_ciphersuites, "", 0, 0, "SUITE:SUITE...", true,
	  "TLS 1.3 cipher suites in OpenSSL's syntax; empty keeps OpenSSL's default."),
	K("stomp_max_headers", CFG_T_SIZE, stomp_max_headers, "64", 1, 100000, NULL, false,
	  "Headers per STOMP frame."),
	K("stomp_max_header_size", CFG_T_SIZE, stomp_max_header_size, "8KiB", 64, 1048576, NULL, false,
	  "Bytes of one STOMP header line (and of the command line)."),
	K("stomp_max_body", CFG_T_SIZE, stomp_max_body, "1MiB", 0, 268435456, NULL, false,
	  "Bytes of a STOMP frame body."),
	K("stomp_heartbeat_ms", CFG_T_U32, stomp_heartbeat_ms, "10000", 0, 3600000, NULL, false,
	  "The heart-beat interval the broker offers and asks for (heart-beat in CONNECTED)."),
	K("stomp_heartbeat_grace", CFG_T_DOUBLE, stomp_heartbeat_grace, "2.0", 1.0, 100.0, NULL, false,
	  "A STOMP client is dropped when nothing arrived for grace x its agreed heart-beat interval."),
	K("stomp_max_subscriptions", CFG_T_SIZE, stomp_max_subscriptions, "1000", 1, 1000000, NULL, false,
	  "STOMP subscriptions per connection."),
	K("stomp_max_unacked", CFG_T_SIZE, stomp_max_unacked, "1000", 1, 10000000, NULL, false,
	  "Unacknowledged messages per subscription in client / client-individual mode before the broker waits for ACKs."),
	K("queue_max_messages", CFG_T_SIZE, queue_max_messages, "100000", 1, 100000000, NULL, false,
	  "Messages a queue holds undelivered; past it a SEND gets an ERROR (never a silent drop)."),
	K("stomp_max_transactions", CFG_T_SIZE, stomp_max_transactions, "16", 1, 100000, NULL, false,
	  "Transactions open at once per connection; one more BEGIN gets an ERROR."),
	K("stomp_max_tx_frames", CFG_T_SIZE, stomp_max_tx_frames, "10000", 1, 10000000, NULL, false,
	  "SEND/ACK/NACK frames held by a connection's open transactions."),
	K("mqtt_max_packet", CFG_T_SIZE, mqtt_max_packet, "1MiB", 64, 268435455, NULL, false,
	  "Largest MQTT packet, checked from the fixed header before the body is read."),
	K("mqtt_max_inflight", CFG_T_SIZE, mqtt_max_inflight, "20", 1, 65535, NULL, false,
	  "Unacknowledged outbound QoS 1/2 messages per client; the rest wait in its queue."),
	K("mqtt_max_queued", CFG_T_SIZE, mqtt_max_queued, "1000", 0, 100000000, NULL, false,
	  "Messages queued per client (connected but behind, or absent with a persistent session)."),
	K("mqtt_max_subscriptions", CFG_T_SIZE, mqtt_max_subscriptions, "1000", 1, 1000000, NULL, false,
	  "MQTT subscriptions per client."),
	K("mqtt_max_keepalive", CFG_T_U32, mqtt_max_keepalive, "0", 0, 65535, NULL, false,
	  "Cap on the keepalive a client may ask for, in seconds; 0 = no cap."),
	K("mqtt_max_retained", CFG_T_SIZE, mqtt_max_retained, "100000", 0, 100000000, NULL, false,
	  "Retained messages kept broker-wide."),
	K("mqtt_session_expiry", CFG_T_U32, mqtt_session_expiry, "0", 0, 4294967295.0, NULL, false,
	  "Seconds an absent persistent session is kept; 0 = until the client cleans it."),
	K("mqtt_max_sessions", CFG_T_SIZE, mqtt_max_sessions, "100000", 1, 100000000, NULL, false,
	  "MQTT sessions held at once, connected or persistent and absent."),
};
#undef K
#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= CFG_MAX_KEYS, "raise CFG_MAX_KEYS");

size_t cfg_key_count(void)
{
	return NKEYS;
}

const struct cfg_key *cfg_key_at(size_t i)
{
	return i < NKEYS ? &keys[i] : NULL;
}

const struct cfg_key *cfg_key_find(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* Copy at most what fits: the protocol is looked up by name later, and a
 * name longer than any protocol's finds none either way. */
static void copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%.*s", (int)size - 1, src);
}

/* A path already listed gets the new protocol; 0, or -1 when full. */
static int add_path(struct cfg *c, const char *path, const char *proto)
{
	for (size_t i = 0; i < c->npaths; i++) {
		if (strcmp(c->paths[i].path, path) == 0) {
			copy_str(c->paths[i].protocol, sizeof(c->paths[i].protocol), proto);
			return 0;
		}
	}
	if (c->npaths >= CFG_MAX_PATHS)
		return -1;
	copy_str(c->paths[c->npaths].path, sizeof(c->paths[0].path), path);
	copy_str(c->paths[c->npaths].protocol, sizeof(c->paths[0].protocol), proto);
	c->npaths++;
	return 0;
}

static const char *const kind_names[LISTEN_KINDS] = {
	"auto", "ws", "mqtt", "stomp", "wss", "mqtts", "stomps"};

const char *cfg_listener_kind_name(enum listener_kind k)
{
	return (unsigned)k < LISTEN_KINDS ? kind_names[k] : "?";
}

enum listener_kind cfg_listener_plain_kind(enum listener_kind k)
{
	switch (k) {
	case LISTEN_WSS: return LISTEN_WS;
	case LISTEN_MQTTS: return LISTEN_MQTT;
	case LISTEN_STOMPS: return LISTEN_STOMP;
	default: return k;
	}
}

bool cfg_listener_is_tls(enum listener_kind k)
{
	return k == LISTEN_WSS || k == LISTEN_MQTTS || k == LISTEN_STOMPS;
}

int cfg_parse_listener(const char *spec, struct cfg_listener *out)
{
	char buf[128];
	if (strlen(spec) >= sizeof(buf) || !*spec)
		return -1;
	strcpy(buf, spec);
	struct cfg_listener l = {"127.0.0.1", 0, LISTEN_AUTO};
	char *slash = strrchr(buf, '/');
	if (slash) {
		*slash = 0;
		int found = 0;
		for (int i = 0; i < LISTEN_KINDS; i++) {
			if (strcmp(slash + 1, kind_names[i]) == 0) {
				l.kind = (enum listener_kind)i;
				found = 1;
			}
		}
		if (!found)
			return -1;
	}
	char *port = buf;
	char *colon = strrchr(buf, ':');
	if (colon) {
		*colon = 0;
		char *addr = buf;
		size_t alen = strlen(addr);
		if (alen >= 2 && addr[0] == '[' && addr[alen - 1] == ']') {
			addr[alen - 1] = 0;
			addr++;
		}
		unsigned char tmp[16];
		if (inet_pton(AF_INET, addr, tmp) != 1 && inet_pton(AF_INET6, addr, tmp) != 1) {
			if (strcmp(addr, "localhost") == 0)
				addr = "127.0.0.1";
			else
				return -1;
		}
		if (strlen(addr) >= sizeof(l.addr))
			return -1;
		strcpy(l.addr, addr);
		port = colon + 1;
	}
	if (!*port)
		return -1;
	char *end;
	errno = 0;
	unsigned long p = strtoul(port, &end, 10);
	if (*end || errno || p > 65535 || !isdigit((unsigned char)port[0]))
		return -1;
	l.port = (uint16_t)p;
	*out = l;
	return 0;
}

static int errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int parse_number(const char *v, double *out, int allow_suffix)
{
	char *end;
	errno = 0;
	if (!*v || isspace((unsigned char)*v) || *v == '-')
		return -1;
	double d = strtod(v, &end);
	if (errno || end == v)
		return -1;
	if (allow_suffix && *end) {
		double mul = 0;
		if (!strcmp(end, "k") || !strcmp(end, "K") || !strcmp(end, "KiB"))
			mul = 1024.0;
		else if (!strcmp(end, "m") || !strcmp(end, "M") || !strcmp(end, "MiB"))
			mul = 1048576.0;
		else if (!strcmp(end, "g") || !strcmp(end, "G") || !strcmp(end, "GiB"))
			mul = 1073741824.0;
		if (mul == 0)
			return -1;
		d *= mul;
		end += strlen(end);
	}
	if (*end)
		return -1;
	*out = d;
	return 0;
}

/* Index of value in a ", " separated list of choices, or -1. */
static int choice_index(const char *form, const char *value)
{
	size_t vlen = strlen(value);
	int i = 0;
	for (const char *p = form; *p; i++) {
		size_t n = strcspn(p, ",");
		if (n == vlen && strncmp(p, value, n) == 0)
			return i;
		p += n;
		p += strspn(p, ", ");
	}
	return -1;
}

/* A bound as a reader writes it: sizes in the largest unit that divides
 * them exactly (the suffixes the parser accepts), a double with its point. */
void cfg_key_number_text(const struct cfg_key *k, double v, char *buf, size_t len)
{
	static const struct {
		double mul;
		const char *unit;
	} units[] = {{1073741824.0, "GiB"}, {1048576.0, "MiB"}, {1024.0, "KiB"}};
	if (k->type == CFG_T_DOUBLE) {
		snprintf(buf, len, v == (double)(long long)v ? "%.1f" : "%g", v);
		return;
	}
	if (k->type == CFG_T_SIZE) {
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (v >= units[i].mul && v / units[i].mul == (double)(uint64_t)(v / units[i].mul)) {
				snprintf(buf, len, "%.0f%s", v / units[i].mul, units[i].unit);
				return;
			}
		}
	}
	snprintf(buf, len, "%.0f", v);
}

bool cfg_key_is_set(const struct cfg *c, const char *name)
{
	const struct cfg_key *k = cfg_key_find(name);
	return k && c->key_set[k - keys];
}

const char *cfg_key_default_text(const struct cfg_key *k)
{
	return k->def[0] ? k->def : "none";
}

void cfg_key_range_text(const struct cfg_key *k, char *buf, size_t len)
{
	char lo[32], hi[32];
	switch (k->type) {
	case CFG_T_SIZE:
	case CFG_T_U32:
	case CFG_T_DOUBLE:
		cfg_key_number_text(k, k->min, lo, sizeof(lo));
		cfg_key_number_text(k, k->max, hi, sizeof(hi));
		snprintf(buf, len, "%s to %s", lo, hi);
		return;
	case CFG_T_STR:
		snprintf(buf, len, "%s, at most %zu bytes", k->form, k->len - 1);
		return;
	case CFG_T_LISTENER:
	case CFG_T_PATH:
	case CFG_T_ORIGIN:
		snprintf(buf, len, "%s, at most %.0f", k->form, k->max);
		return;
	case CFG_T_BOOL:
	case CFG_T_CHOICE:
	case CFG_T_LEVEL:
		snprintf(buf, len, "%s", k->form);
		return;
	}
	snprintf(buf, len, "?");
}

static int out_of_range(const struct cfg_key *k, const char *value, char *err, size_t errlen)
{
	char range[64];
	cfg_key_range_text(k, range, sizeof(range));
	return errf(err, errlen, "%s: %s is out of range (%s)", k->name, value, range);
}

static int set_listener(struct cfg *c, const char *value, int origin, char *err, size_t errlen)
{
	struct cfg_listener l;
	if (cfg_parse_listener(value, &l) < 0)
		return errf(err, errlen, "bad listener '%s' (expected [ADDR:]PORT[/auto|ws|mqtt|stomp|wss|mqtts|stomps])", value);
	if (c->listeners_origin != origin) {
		c->nlisteners = 0;
		c->listeners_origin = origin;
	}
	if (c->nlisteners >= CFG_MAX_LISTENERS)
		return errf(err, errlen, "too many listeners (at most %d)", CFG_MAX_LISTENERS);
	c->listeners[c->nlisteners++] = l;
	return 0;
}

static int set_typed(struct cfg *c, const struct cfg_key *o, const char *value, int origin,
		     char *err, size_t errlen)
{
	char *field = (char *)c + o->off;
	double d;
	switch (o->type) {
	case CFG_T_STR:
		if (strlen(value) >= o->len)
			return errf(err, errlen, "%s: value too long (at most %zu bytes)", o->name, o->len - 1);
		strcpy(field, value);
		return 0;
	case CFG_T_SIZE:
	case CFG_T_U32:
		if (parse_number(value, &d, o->type == CFG_T_SIZE) < 0 || d != (double)(uint64_t)d)
			return errf(err, errlen, "%s: '%s' is not a whole number", o->name, value);
		if (d < o->min || d > o->max)
			return out_of_range(o, value, err, errlen);
		if (o->type == CFG_T_SIZE)
			*(size_t *)field = (size_t)d;
		else
			*(uint32_t *)field = (uint32_t)d;
		return 0;
	case CFG_T_DOUBLE:
		if (parse_number(value, &d, 0) < 0)
			return errf(err, errlen, "%s: '%s' is not a number", o->name, value);
		if (d < o->min || d > o->max)
			return out_of_range(o, value, err, errlen);
		*(double *)field = d;
		return 0;
	case CFG_T_BOOL:
		if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on") || !strcmp(value, "1"))
			*(bool *)field = true;
		else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off") || !strcmp(value, "0"))
			*(bool *)field = false;
		else
			return errf(err, errlen, "%s: '%s' is not true or false", o->name, value);
		return 0;
	case CFG_T_LEVEL: {
		enum log_level lvl;
		if (log_parse_level(value, &lvl) < 0)
			return errf(err, errlen, "%s: '%s' is not one of %s", o->name, value, o->form);
		*(int *)field = (int)lvl;
		return 0;
	}
	case CFG_T_CHOICE: {
		int i = choice_index(o->form, value);
		if (i < 0)
			return errf(err, errlen, "%s: '%s' is not one of %s", o->name, value, o->form);
		*(int *)field = i;
		return 0;
	}
	case CFG_T_LISTENER:
		return set_listener(c, value, origin, err, errlen);
	case CFG_T_PATH: {
		char path[128], proto[32];
		int n = 0;
		if (sscanf(value, "%127s %31s %n", path, proto, &n) != 2 || value[n] || path[0] != '/')
			return errf(err, errlen, "path: expected '/PATH PROTOCOL', got '%s'", value);
		if (add_path(c, path, proto) < 0)
			return errf(err, errlen, "path: at most %d paths", CFG_MAX_PATHS);
		return 0;
	}
	case CFG_T_ORIGIN:
		if (c->norigins >= CFG_MAX_ORIGINS)
			return errf(err, errlen, "origin: at most %d origins", CFG_MAX_ORIGINS);
		if (strlen(value) >= sizeof(c->origins[0]))
			return errf(err, errlen, "origin: value too long");
		strcpy(c->origins[c->norigins++], value);
		return 0;
	}
	return errf(err, errlen, "%s: internal error", o->name);
}

static int cfg_set_from(struct cfg *c, const char *key, const char *value, int origin,
			char *err, size_t errlen)
{
	const struct cfg_key *k = cfg_key_find(key);
	if (!k)
		return errf(err, errlen, "unknown option '%s'", key);
	if (set_typed(c, k, value, origin, err, errlen) < 0)
		return -1;
	c->key_set[k - keys] = true;
	return 0;
}

void cfg_defaults(struct cfg *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NKEYS; i++) {
		char buf[256], err[256];
		const char *p = keys[i].def;
		while (*p) { /* repeatable keys list their values separated by ", " */
			size_t n = strcspn(p, ",");
			snprintf(buf, sizeof(buf), "%.*s", (int)n, p);
			/* A default the parser refuses is a bug in the table above;
			 * test_config catches it on the first run. */
			if (set_typed(c, &keys[i], buf, 0, err, sizeof(err)) < 0) {
				fprintf(stderr, "wsbroker: bad built-in default: %s\n", err);
				abort();
			}
			p += n;
			p += strspn(p, ", ");
		}
	}
}

bool cfg_key_repeatable(const struct cfg_key *k)
{
	return k->type == CFG_T_LISTENER || k->type == CFG_T_PATH || k->type == CFG_T_ORIGIN;
}

size_t cfg_key_items(const struct cfg_key *k, const struct cfg *c)
{
	if (k->type == CFG_T_LISTENER)
		return c->nlisteners;
	return k->type == CFG_T_PATH ? c->npaths : c->norigins;
}

/* Item i of a repeatable key, compared by meaning rather than bytes: a
 * listener has padding, and a replaced path protocol leaves old bytes
 * after its NUL. */
static bool item_equal(const struct cfg_key *k, const struct cfg *a, const struct cfg *b, size_t i)
{
	if (k->type == CFG_T_LISTENER)
		return !strcmp(a->listeners[i].addr, b->listeners[i].addr) &&
		       a->listeners[i].port == b->listeners[i].port &&
		       a->listeners[i].kind == b->listeners[i].kind;
	if (k->type == CFG_T_PATH)
		return !strcmp(a->paths[i].path, b->paths[i].path) &&
		       !strcmp(a->paths[i].protocol, b->paths[i].protocol);
	return !strcmp(a->origins[i], b->origins[i]);
}

bool cfg_key_equal(const struct cfg_key *k, const struct cfg *a, const struct cfg *b)
{
	const char *fa = (const char *)a + k->off, *fb = (const char *)b + k->off;
	if (cfg_key_repeatable(k)) {
		size_t n = cfg_key_items(k, a);
		if (n != cfg_key_items(k, b))
			return false;
		for (size_t i = 0; i < n; i++)
			if (!item_equal(k, a, b, i))
				return false;
		return true;
	}
	if (k->type == CFG_T_STR)
		return strcmp(fa, fb) == 0;
	return memcmp(fa, fb, k->len) == 0; /* scalars: no padding inside */
}

size_t cfg_apply_reloadable(struct cfg *dst, const struct cfg *src, char *ignored, size_t len)
{
	size_t n = 0, used = 0;
	if (len)
		ignored[0] = 0;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cfg_key *k = &keys[i];
		if (cfg_key_equal(k, dst, src))
			continue;
		/* A repeatable key would need its count copied too; none reloads. */
		if (k->reload && !cfg_key_repeatable(k)) {
			memcpy((char *)dst + k->off, (const char *)src + k->off, k->len);
			continue;
		}
		n++;
		if (used < len) {
			int w = snprintf(ignored + used, len - used, "%s%s", n > 1 ? ", " : "", k->name);
			used += w > 0 ? (size_t)w : 0;
		}
	}
	return n;
}

int cfg_set(struct cfg *c, const char *key, const char *value, char *err, size_t errlen)
{
	return cfg_set_from(c, key, value, 2, err, errlen);
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

int cfg_load_file(struct cfg *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
	char line[4096];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = errf(err, errlen, "%s:%d: line too long", path, lineno);
			break;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *s = trim(line);
		if (!*s)
			continue;
		char *sp = s;
		while (*sp && !isspace((unsigned char)*sp))
			sp++;
		char *value = "";
		if (*sp) {
			*sp = 0;
			value = trim(sp + 1);
		}
		if (!*value) {
			rc = errf(err, errlen, "%s:%d: '%s' needs a value", path, lineno, s);
			break;
		}
		char msg[512];
		if (cfg_set_from(c, s, value, 1, msg, sizeof(msg)) < 0) {
			rc = errf(err, errlen, "%s:%d: %s", path, lineno, msg);
			break;
		}
	}
	fclose(f);
	return rc;
}

/* Options that take a value: the long name, its config key (NULL: special). */
static const struct {
	const char *flag;
	const char *key;
} value_flags[] = {
	{"-c", NULL}, {"--config", NULL}, {"--listen", "listener"}, {"--db", "db"},
	{"--log-level", "log_level"}, {"--port-file", "port_file"}, {"--set", NULL},
	{"--print-man", NULL},
};

static int flag_index(const char *arg, const char **inline_value)
{
	*inline_value = NULL;
	for (size_t i = 0; i < sizeof(value_flags) / sizeof(value_flags[0]); i++) {
		size_t n = strlen(value_flags[i].flag);
		if (strncmp(arg, value_flags[i].flag, n) != 0)
			continue;
		if (arg[n] == 0)
			return (int)i;
		if (arg[n] == '=' && arg[1] == '-') {
			*inline_value = arg + n + 1;
			return (int)i;
		}
	}
	return -1;
}

int cfg_parse_args(struct cfg *c, int argc, char **argv, char *err, size_t errlen)
{
	/* Pass 1: --help, --version, the config file; pass 2: overrides. */
	for (int pass = 1; pass <= 2; pass++) {
		for (int i = 1; i < argc; i++) {
			const char *arg = argv[i];
			if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
				if (pass == 1) {
					cfg_print_usage(stdout);
					return 1;
				}
				continue;
			}
			if (!strcmp(arg, "--version") || !strcmp(arg, "-V")) {
				if (pass == 1) {
					cfg_print_version(stdout);
					return 1;
				}
				continue;
			}
			if (!strcmp(arg, "--print-config") || !strcmp(arg, "--check-config")) {
				/* Remembered, not done here: the caller prints once every
				 * override is applied, and --check-config checks more. */
				c->action = arg[2] == 'p' ? CFG_ACTION_PRINT : CFG_ACTION_CHECK;
				continue;
			}
			const char *value;
			int fi = flag_index(arg, &value);
			if (fi < 0)
				return errf(err, errlen, "command line: unknown option '%s' (see --help)", arg);
			if (!value) {
				if (i + 1 >= argc)
					return errf(err, errlen, "command line: %s needs a value", arg);
				value = argv[++i];
			}
			const char *key = value_flags[fi].key;
			char msg[512];
			if (!strcmp(value_flags[fi].flag, "-c") || !strcmp(value_flags[fi].flag, "--config")) {
				if (pass == 1) {
					if (strlen(value) >= sizeof(c->config_file))
						return errf(err, errlen, "command line: config path too long");
					strcpy(c->config_file, value);
					if (cfg_load_file(c, value, err, errlen) < 0)
						return -1;
				}
				continue;
			}
			if (!strcmp(value_flags[fi].flag, "--print-man")) {
				/* Like --help: printed at once, whatever else is given. */
				if (pass == 2)
					continue;
				int section = !strcmp(value, "5") ? 5 : !strcmp(value, "8") ? 8 : 0;
				if (!section)
					return errf(err, errlen, "command line: --print-man takes 5 or 8, not '%s'", value);
				cfg_print_man(stdout, section);
				return 1;
			}
			if (pass == 1)
				continue;
			if (!key) { /* --set KEY=VALUE */
				const char *eq = strchr(value, '=');
				if (!eq || eq == value)
					return errf(err, errlen, "command line: --set expects KEY=VALUE, got '%s'", value);
				char k[64];
				size_t kl = (size_t)(eq - value);
				if (kl >= sizeof(k))
					return errf(err, errlen, "command line: unknown option '%.*s'", (int)kl, value);
				memcpy(k, value, kl);
				k[kl] = 0;
				if (cfg_set_from(c, k, eq + 1, 2, msg, sizeof(msg)) < 0)
					return errf(err, errlen, "command line: %s", msg);
				continue;
			}
			if (cfg_set_from(c, key, value, 2, msg, sizeof(msg)) < 0)
				return errf(err, errlen, "command line: %s %s: %s", arg, value, msg);
		}
	}
	return 0;
}

int cfg_command_line(struct cfg *c, int argc, char **argv, FILE *errf)
{
	char err[600];
	int rc = cfg_parse_args(c, argc, argv, err, sizeof(err));
	if (rc < 0) {
		fprintf(errf, "wsbroker: %s\n", err);
		return 2;
	}
	return rc == 1 ? 0 : CFG_GO;
}
