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

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

enum opt_type { T_SYNC, T_STR, T_SIZE, T_U32, T_BOOL, T_DOUBLE, T_LEVEL, T_LISTENER, T_PATH, T_ORIGIN };

struct opt {
	const char *key;
	enum opt_type type;
	size_t off;
	size_t len;              /* T_STR: buffer size */
	double min, max;
};

#define O(k, t, f, mn, mx) {k, t, offsetof(struct cfg, f), sizeof(((struct cfg *)0)->f), mn, mx}
static const struct opt opts[] = {
	O("listener", T_LISTENER, listeners, 0, 0),
	O("db", T_STR, db_path, 0, 0),
	O("sync", T_SYNC, sync, 0, 0),
	O("port_file", T_STR, port_file, 0, 0),
	O("log_level", T_LEVEL, log_level, 0, 0),
	O("path", T_PATH, paths, 0, 0),
	O("origin", T_ORIGIN, origins, 0, 0),
	O("max_connections", T_SIZE, max_connections, 1, 10000000),
	O("http_max_header", T_SIZE, http_max_header, 256, 1048576),
	O("handshake_timeout_ms", T_U32, handshake_timeout_ms, 10, 3600000),
	O("ws_max_message", T_SIZE, ws_max_message, 64, 268435456),
	O("ws_ping_interval_ms", T_U32, ws_ping_interval_ms, 0, 86400000),
	O("ws_pong_timeout_ms", T_U32, ws_pong_timeout_ms, 10, 3600000),
	O("close_timeout_ms", T_U32, close_timeout_ms, 10, 600000),
	O("shutdown_timeout_ms", T_U32, shutdown_timeout_ms, 10, 600000),
	O("out_high_water", T_SIZE, out_high_water, 1024, 1073741824),
	O("out_hard_limit", T_SIZE, out_hard_limit, 4096, 4294967296.0),
	O("allow_anonymous", T_BOOL, allow_anonymous, 0, 0),
	O("users_file", T_STR, users_file, 0, 0),
	O("stomp_max_headers", T_SIZE, stomp_max_headers, 1, 100000),
	O("stomp_max_header_size", T_SIZE, stomp_max_header_size, 64, 1048576),
	O("stomp_max_body", T_SIZE, stomp_max_body, 0, 268435456),
	O("stomp_heartbeat_ms", T_U32, stomp_heartbeat_ms, 0, 3600000),
	O("stomp_heartbeat_grace", T_DOUBLE, stomp_heartbeat_grace, 1.0, 100.0),
	O("stomp_max_subscriptions", T_SIZE, stomp_max_subscriptions, 1, 1000000),
	O("stomp_max_unacked", T_SIZE, stomp_max_unacked, 1, 10000000),
	O("queue_max_messages", T_SIZE, queue_max_messages, 1, 100000000),
	O("stomp_max_transactions", T_SIZE, stomp_max_transactions, 1, 100000),
	O("stomp_max_tx_frames", T_SIZE, stomp_max_tx_frames, 1, 10000000),
	O("mqtt_max_packet", T_SIZE, mqtt_max_packet, 64, 268435455),
	O("mqtt_max_inflight", T_SIZE, mqtt_max_inflight, 1, 65535),
	O("mqtt_max_queued", T_SIZE, mqtt_max_queued, 0, 100000000),
	O("mqtt_max_subscriptions", T_SIZE, mqtt_max_subscriptions, 1, 1000000),
	O("mqtt_max_keepalive", T_U32, mqtt_max_keepalive, 0, 65535),
	O("mqtt_max_retained", T_SIZE, mqtt_max_retained, 0, 100000000),
	O("mqtt_session_expiry", T_U32, mqtt_session_expiry, 0, 4294967295.0),
	O("mqtt_max_sessions", T_SIZE, mqtt_max_sessions, 1, 100000000),
};
#undef O

static void add_path(struct cfg *c, const char *path, const char *proto)
{
	for (size_t i = 0; i < c->npaths; i++) {
		if (strcmp(c->paths[i].path, path) == 0) {
			snprintf(c->paths[i].protocol, sizeof(c->paths[i].protocol), "%s", proto);
			return;
		}
	}
	if (c->npaths < CFG_MAX_PATHS) {
		snprintf(c->paths[c->npaths].path, sizeof(c->paths[0].path), "%s", path);
		snprintf(c->paths[c->npaths].protocol, sizeof(c->paths[0].protocol), "%s", proto);
		c->npaths++;
	}
}

void cfg_defaults(struct cfg *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->db_path, "wsbroker.db");
	c->log_level = LOGL_INFO;
	static const struct cfg_listener defs[] = {
		{"127.0.0.1", 8080, LISTEN_AUTO},
		{"127.0.0.1", 1883, LISTEN_MQTT},
		{"127.0.0.1", 61613, LISTEN_STOMP},
	};
	memcpy(c->listeners, defs, sizeof(defs));
	c->nlisteners = 3;
	add_path(c, "/mqtt", "mqtt");
	add_path(c, "/stomp", "stomp");
	c->max_connections = 100000;
	c->http_max_header = 8192;
	c->handshake_timeout_ms = 10000;
	c->ws_max_message = 1048576;
	c->ws_ping_interval_ms = 30000;
	c->ws_pong_timeout_ms = 10000;
	c->close_timeout_ms = 5000;
	c->shutdown_timeout_ms = 5000;
	c->out_high_water = 1048576;
	c->out_hard_limit = 16u * 1048576;
	c->allow_anonymous = true;
	c->stomp_max_headers = 64;
	c->stomp_max_header_size = 8192;
	c->stomp_max_body = 1048576;
	c->stomp_heartbeat_ms = 10000;
	c->stomp_heartbeat_grace = 2.0;
	c->stomp_max_subscriptions = 1000;
	c->stomp_max_unacked = 1000;
	c->queue_max_messages = 100000;
	c->stomp_max_transactions = 16;
	c->stomp_max_tx_frames = 10000;
	c->mqtt_max_packet = 1048576;
	c->mqtt_max_inflight = 20;
	c->mqtt_max_queued = 1000;
	c->mqtt_max_subscriptions = 1000;
	c->mqtt_max_keepalive = 0;
	c->mqtt_max_retained = 100000;
	c->mqtt_session_expiry = 0;
	c->mqtt_max_sessions = 100000;
}

static const char *const kind_names[] = {"auto", "ws", "mqtt", "stomp"};

const char *cfg_listener_kind_name(enum listener_kind k)
{
	return (unsigned)k < 4 ? kind_names[k] : "?";
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
		for (int i = 0; i < 4; i++) {
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

static int set_listener(struct cfg *c, const char *value, int origin, char *err, size_t errlen)
{
	struct cfg_listener l;
	if (cfg_parse_listener(value, &l) < 0)
		return errf(err, errlen, "bad listener '%s' (expected [ADDR:]PORT[/auto|ws|mqtt|stomp])", value);
	if (c->listeners_origin != origin) {
		c->nlisteners = 0;
		c->listeners_origin = origin;
	}
	if (c->nlisteners >= CFG_MAX_LISTENERS)
		return errf(err, errlen, "too many listeners (at most %d)", CFG_MAX_LISTENERS);
	c->listeners[c->nlisteners++] = l;
	return 0;
}

static int set_typed(struct cfg *c, const struct opt *o, const char *value, int origin,
		     char *err, size_t errlen)
{
	char *field = (char *)c + o->off;
	double d;
	switch (o->type) {
	case T_STR:
		if (strlen(value) >= o->len)
			return errf(err, errlen, "%s: value too long", o->key);
		strcpy(field, value);
		return 0;
	case T_SIZE:
	case T_U32:
		if (parse_number(value, &d, o->type == T_SIZE) < 0 || d != (double)(uint64_t)d)
			return errf(err, errlen, "%s: '%s' is not a whole number", o->key, value);
		if (d < o->min || d > o->max)
			return errf(err, errlen, "%s: %s is out of range (%.0f to %.0f)", o->key, value, o->min, o->max);
		if (o->type == T_SIZE)
			*(size_t *)field = (size_t)d;
		else
			*(uint32_t *)field = (uint32_t)d;
		return 0;
	case T_DOUBLE:
		if (parse_number(value, &d, 0) < 0)
			return errf(err, errlen, "%s: '%s' is not a number", o->key, value);
		if (d < o->min || d > o->max)
			return errf(err, errlen, "%s: %s is out of range (%g to %g)", o->key, value, o->min, o->max);
		*(double *)field = d;
		return 0;
	case T_BOOL:
		if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on") || !strcmp(value, "1"))
			*(bool *)field = true;
		else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off") || !strcmp(value, "0"))
			*(bool *)field = false;
		else
			return errf(err, errlen, "%s: '%s' is not true or false", o->key, value);
		return 0;
	case T_LEVEL: {
		enum log_level lvl;
		if (log_parse_level(value, &lvl) < 0)
			return errf(err, errlen, "%s: '%s' is not one of error, warn, info, debug", o->key, value);
		c->log_level = (int)lvl;
		return 0;
	}
	case T_SYNC:
		if (!strcmp(value, "full"))
			c->sync = CFG_SYNC_FULL;
		else if (!strcmp(value, "normal"))
			c->sync = CFG_SYNC_NORMAL;
		else if (!strcmp(value, "off"))
			c->sync = CFG_SYNC_OFF;
		else
			return errf(err, errlen, "sync: '%s' is not one of full, normal, off", value);
		return 0;
	case T_LISTENER:
		return set_listener(c, value, origin, err, errlen);
	case T_PATH: {
		char path[128], proto[32];
		int n = 0;
		if (sscanf(value, "%127s %31s %n", path, proto, &n) != 2 || value[n] || path[0] != '/')
			return errf(err, errlen, "path: expected '/PATH PROTOCOL', got '%s'", value);
		add_path(c, path, proto);
		return 0;
	}
	case T_ORIGIN:
		if (c->norigins >= CFG_MAX_ORIGINS)
			return errf(err, errlen, "origin: at most %d origins", CFG_MAX_ORIGINS);
		if (strlen(value) >= sizeof(c->origins[0]))
			return errf(err, errlen, "origin: value too long");
		strcpy(c->origins[c->norigins++], value);
		return 0;
	}
	return errf(err, errlen, "%s: internal error", o->key);
}

static int cfg_set_from(struct cfg *c, const char *key, const char *value, int origin,
			char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (strcmp(opts[i].key, key) == 0)
			return set_typed(c, &opts[i], value, origin, err, errlen);
	return errf(err, errlen, "unknown option '%s'", key);
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

const char *cfg_usage(void)
{
	return "usage: wsbroker [-c FILE] [--listen [ADDR:]PORT[/KIND]]... [--db PATH]\n"
	       "                [--log-level error|warn|info|debug] [--port-file PATH]\n"
	       "                [--set KEY=VALUE]... [--version] [--help]\n"
	       "\n"
	       "  -c, --config FILE   read settings from FILE (key value lines, # comments)\n"
	       "  --listen SPEC       listen on [ADDR:]PORT with KIND auto (default), ws, mqtt\n"
	       "                      or stomp; repeatable; replaces the default listeners\n"
	       "  --db PATH           SQLite database file (default ./wsbroker.db)\n"
	       "  --log-level LEVEL   error, warn, info (default) or debug\n"
	       "  --port-file PATH    write 'KIND ADDRESS:PORT' per listener once bound\n"
	       "  --set KEY=VALUE     any config-file key, e.g. --set ws_max_message=4M\n"
	       "  --version           print the version and exit\n"
	       "  --help              print this help and exit\n"
	       "\n"
	       "Defaults: 127.0.0.1:8080 auto, 127.0.0.1:1883 mqtt, 127.0.0.1:61613 stomp.\n"
	       "Every key is documented in docs/configuration.md.\n";
}

/* Options that take a value: the long name, its config key (NULL: special). */
static const struct {
	const char *flag;
	const char *key;
} value_flags[] = {
	{"-c", NULL}, {"--config", NULL}, {"--listen", "listener"}, {"--db", "db"},
	{"--log-level", "log_level"}, {"--port-file", "port_file"}, {"--set", NULL},
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
					fputs(cfg_usage(), stdout);
					return 1;
				}
				continue;
			}
			if (!strcmp(arg, "--version") || !strcmp(arg, "-V")) {
				if (pass == 1) {
					printf("wsbroker %s\n", PACKAGE_VERSION);
					return 1;
				}
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
