/* Config: defaults, file parsing and its error messages, command-line
 * overrides, listener specs, the SIGHUP reload rules, --help,
 * --print-config / --check-config, the man pages, and
 * docs/configuration.md against the key table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config.h"
#include "log.h"

#ifndef WSB_DOCS_DIR
#error "Makefile.am passes WSB_DOCS_DIR, the source tree's docs/"
#endif

static char tmpfile_path[64];

static const char *write_tmp(const char *text)
{
	strcpy(tmpfile_path, "/tmp/wsb-cfg-XXXXXX");
	int fd = mkstemp(tmpfile_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return tmpfile_path;
}

static void test_defaults(void **st)
{
	struct cfg c;
	cfg_defaults(&c);
	assert_int_equal(c.nlisteners, 3);
	assert_string_equal(c.listeners[0].addr, "127.0.0.1");
	assert_int_equal(c.listeners[0].port, 8080);
	assert_int_equal(c.listeners[0].kind, LISTEN_AUTO);
	assert_int_equal(c.listeners[1].port, 1883);
	assert_int_equal(c.listeners[1].kind, LISTEN_MQTT);
	assert_int_equal(c.listeners[2].port, 61613);
	assert_int_equal(c.listeners[2].kind, LISTEN_STOMP);
	assert_string_equal(c.db_path, "wsbroker.db");
	assert_int_equal(c.http_max_header, 8192);
	assert_int_equal(c.handshake_timeout_ms, 10000);
	assert_int_equal(c.ws_max_message, 1048576);
	assert_int_equal(c.ws_ping_interval_ms, 30000);
	assert_int_equal(c.npaths, 2);
	assert_string_equal(c.paths[0].path, "/mqtt");
	assert_string_equal(c.paths[1].protocol, "stomp");
	assert_true(c.allow_anonymous);
}

static void test_listener_specs(void **st)
{
	struct cfg_listener l;
	assert_int_equal(cfg_parse_listener("9000", &l), 0);
	assert_string_equal(l.addr, "127.0.0.1");
	assert_int_equal(l.port, 9000);
	assert_int_equal(l.kind, LISTEN_AUTO);
	assert_int_equal(cfg_parse_listener("0.0.0.0:1883/mqtt", &l), 0);
	assert_string_equal(l.addr, "0.0.0.0");
	assert_int_equal(l.kind, LISTEN_MQTT);
	assert_int_equal(cfg_parse_listener("[::1]:0/ws", &l), 0);
	assert_string_equal(l.addr, "::1");
	assert_int_equal(l.port, 0);
	assert_int_equal(l.kind, LISTEN_WS);
	assert_int_equal(cfg_parse_listener("127.0.0.1:61613/stomp", &l), 0);
	assert_int_equal(l.kind, LISTEN_STOMP);
	/* the TLS kinds are their plain kind inside TLS */
	const char *tls[] = {"443/wss", "8883/mqtts", "61614/stomps"};
	const enum listener_kind tk[] = {LISTEN_WSS, LISTEN_MQTTS, LISTEN_STOMPS};
	const enum listener_kind pk[] = {LISTEN_WS, LISTEN_MQTT, LISTEN_STOMP};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(cfg_parse_listener(tls[i], &l), 0);
		assert_int_equal(l.kind, tk[i]);
		assert_true(cfg_listener_is_tls(l.kind));
		assert_int_equal(cfg_listener_plain_kind(l.kind), pk[i]);
		assert_string_equal(cfg_listener_kind_name(l.kind), strchr(tls[i], '/') + 1);
	}
	assert_false(cfg_listener_is_tls(LISTEN_AUTO));
	assert_int_equal(cfg_listener_plain_kind(LISTEN_AUTO), LISTEN_AUTO);
	const char *bad[] = {"", "abc", "70000", "1.2.3:80", "80/tls", "host.example:80",
			     "127.0.0.1:", "127.0.0.1:-1", "80/", " 80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cfg_parse_listener(bad[i], &l), -1);
}

static void test_file_ok(void **st)
{
	struct cfg c;
	cfg_defaults(&c);
	char err[256];
	const char *p = write_tmp("# comment\n\n  listener 127.0.0.1:0/ws   # trailing\n"
				  "listener 0/mqtt\nws_max_message 4M\nlog_level debug\n"
				  "origin https://app.example\npath /live stomp\n"
				  "stomp_heartbeat_grace 3.5\nallow_anonymous no\n");
	assert_int_equal(cfg_load_file(&c, p, err, sizeof(err)), 0);
	unlink(p);
	/* the file's first listener replaced the three defaults */
	assert_int_equal(c.nlisteners, 2);
	assert_int_equal(c.listeners[0].kind, LISTEN_WS);
	assert_int_equal(c.listeners[1].kind, LISTEN_MQTT);
	assert_int_equal(c.ws_max_message, 4u * 1048576);
	assert_int_equal(c.log_level, LOGL_DEBUG);
	assert_int_equal(c.norigins, 1);
	assert_string_equal(c.origins[0], "https://app.example");
	assert_int_equal(c.npaths, 3);
	assert_true(c.stomp_heartbeat_grace > 3.4 && c.stomp_heartbeat_grace < 3.6);
	assert_false(c.allow_anonymous);
}

static void expect_file_error(const char *text, const char *want)
{
	struct cfg c;
	cfg_defaults(&c);
	char err[512];
	const char *p = write_tmp(text);
	assert_int_equal(cfg_load_file(&c, p, err, sizeof(err)), -1);
	char expect[600];
	snprintf(expect, sizeof(expect), "%s:%s", p, want);
	unlink(p);
	if (strncmp(err, expect, strlen(expect)) != 0)
		fail_msg("got '%s', want prefix '%s'", err, expect);
}

static void test_file_errors(void **st)
{
	expect_file_error("log_level info\nbogus_key 1\n", "2: unknown option 'bogus_key'");
	expect_file_error("ws_max_message lots\n", "1: ws_max_message: 'lots' is not a whole number");
	expect_file_error("\n\nhttp_max_header 10\n", "3: http_max_header: 10 is out of range");
	expect_file_error("listener 1.2.3.4.5:80\n", "1: bad listener");
	expect_file_error("log_level loud\n", "1: log_level: 'loud' is not one of");
	expect_file_error("db\n", "1: 'db' needs a value");
	expect_file_error("allow_anonymous maybe\n", "1: allow_anonymous: 'maybe' is not true or false");
	expect_file_error("path mqtt mqtt\n", "1: path: expected '/PATH PROTOCOL'");
	expect_file_error("ws_ping_interval_ms -5\n", "1: ws_ping_interval_ms: '-5' is not a whole number");

	struct cfg c;
	cfg_defaults(&c);
	char err[512];
	assert_int_equal(cfg_load_file(&c, "/nonexistent/wsb.conf", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/wsb.conf: cannot open"));
}

static void test_args_override_file(void **st)
{
	const char *p = write_tmp("log_level error\nlistener 127.0.0.1:7000\nws_max_message 2048\n");
	char path[64];
	strcpy(path, p);
	/* -c comes last, yet the command line still wins over the file */
	char *argv[] = {"wsbroker", "--log-level", "debug", "--listen", "0/stomp",
			"--set", "ws_max_message=4096", "--port-file=/tmp/x.ports", "-c", path, NULL};
	struct cfg c;
	cfg_defaults(&c);
	char err[512];
	assert_int_equal(cfg_parse_args(&c, 10, argv, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(c.log_level, LOGL_DEBUG);
	assert_int_equal(c.nlisteners, 1);
	assert_int_equal(c.listeners[0].kind, LISTEN_STOMP);
	assert_int_equal(c.ws_max_message, 4096);
	assert_string_equal(c.port_file, "/tmp/x.ports");
	assert_string_equal(c.config_file, path);
}

static void test_args_errors(void **st)
{
	struct {
		int argc;
		char *argv[4];
		const char *want;
	} cases[] = {
		{2, {"wsbroker", "--frobnicate"}, "command line: unknown option '--frobnicate'"},
		{2, {"wsbroker", "--listen"}, "command line: --listen needs a value"},
		{3, {"wsbroker", "--listen", "x:y"}, "command line: --listen x:y: bad listener"},
		{3, {"wsbroker", "--set", "novalue"}, "command line: --set expects KEY=VALUE"},
		{3, {"wsbroker", "--set", "nokey=1"}, "command line: unknown option 'nokey'"},
		{3, {"wsbroker", "-c", "/nonexistent.conf"}, "/nonexistent.conf: cannot open"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cfg c;
		cfg_defaults(&c);
		char err[512];
		assert_int_equal(cfg_parse_args(&c, cases[i].argc, cases[i].argv, err, sizeof(err)), -1);
		if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("case %zu: got '%s', want prefix '%s'", i, err, cases[i].want);
	}
}

static void test_sizes_and_limits(void **st)
{
	struct cfg c;
	cfg_defaults(&c);
	char err[256];
	assert_int_equal(cfg_set(&c, "out_hard_limit", "64KiB", err, sizeof(err)), 0);
	assert_int_equal(c.out_hard_limit, 65536);
	assert_int_equal(cfg_set(&c, "mqtt_max_packet", "1k", err, sizeof(err)), 0);
	assert_int_equal(c.mqtt_max_packet, 1024);
	assert_int_equal(cfg_set(&c, "mqtt_max_inflight", "0", err, sizeof(err)), -1);
	assert_int_equal(cfg_set(&c, "mqtt_max_inflight", "1.5", err, sizeof(err)), -1);
	assert_int_equal(cfg_set(&c, "queue_max_messages", "7", err, sizeof(err)), 0);
	assert_int_equal(c.queue_max_messages, 7);
	assert_int_equal(cfg_set(&c, "handshake_timeout_ms", "5M", err, sizeof(err)), -1);
	assert_int_equal(cfg_set(&c, "path", "/mqtt stomp", err, sizeof(err)), 0);
	assert_int_equal(c.npaths, 2); /* replaced, not added */
	assert_string_equal(c.paths[0].protocol, "stomp");
	assert_int_equal(c.sync, CFG_SYNC_FULL);   /* the safe default */
	assert_int_equal(cfg_set(&c, "sync", "normal", err, sizeof(err)), 0);
	assert_int_equal(c.sync, CFG_SYNC_NORMAL);
	assert_int_equal(cfg_set(&c, "sync", "off", err, sizeof(err)), 0);
	assert_int_equal(c.sync, CFG_SYNC_OFF);
	assert_int_equal(cfg_set(&c, "sync", "fast", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "full, normal, off"));
}

static void test_range_errors_name_key_and_range(void **st)
{
	struct cfg c;
	cfg_defaults(&c);
	char err[256];
	assert_int_equal(cfg_set(&c, "http_max_header", "10", err, sizeof(err)), -1);
	assert_string_equal(err, "http_max_header: 10 is out of range (256 to 1MiB)");
	assert_int_equal(cfg_set(&c, "stomp_heartbeat_grace", "0.5", err, sizeof(err)), -1);
	assert_string_equal(err, "stomp_heartbeat_grace: 0.5 is out of range (1.0 to 100.0)");
	assert_int_equal(cfg_set(&c, "mqtt_max_keepalive", "65536", err, sizeof(err)), -1);
	assert_string_equal(err, "mqtt_max_keepalive: 65536 is out of range (0 to 65535)");
	for (int i = 0; i < CFG_MAX_PATHS - 2; i++) {
		char path[32];
		snprintf(path, sizeof(path), "/p%d echo", i);
		assert_int_equal(cfg_set(&c, "path", path, err, sizeof(err)), 0);
	}
	assert_int_equal(cfg_set(&c, "path", "/one-too-many echo", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "at most 16"));
}

static void test_reload_takes_only_reloadable_keys(void **st)
{
	struct cfg cur, next;
	char err[256], ignored[256];
	cfg_defaults(&cur);
	cfg_defaults(&next);
	assert_int_equal(cfg_apply_reloadable(&cur, &next, ignored, sizeof(ignored)), 0);
	assert_string_equal(ignored, "");

	assert_int_equal(cfg_set(&next, "log_level", "debug", err, sizeof(err)), 0);
	assert_int_equal(cfg_set(&next, "allow_anonymous", "no", err, sizeof(err)), 0);
	assert_int_equal(cfg_set(&next, "users_file", "/etc/wsb.users", err, sizeof(err)), 0);
	assert_int_equal(cfg_set(&next, "acl_file", "/etc/wsb.acl", err, sizeof(err)), 0);
	assert_int_equal(cfg_set(&next, "ws_max_message", "2M", err, sizeof(err)), 0);
	assert_int_equal(cfg_set(&next, "listener", "0/ws", err, sizeof(err)), 0);
	assert_int_equal(cfg_set(&next, "path", "/mqtt stomp", err, sizeof(err)), 0);
	assert_int_equal(cfg_set(&next, "origin", "https://a.example", err, sizeof(err)), 0);
	assert_int_equal(cfg_apply_reloadable(&cur, &next, ignored, sizeof(ignored)), 4);
	assert_string_equal(ignored, "listener, path, origin, ws_max_message");
	assert_int_equal(cur.log_level, LOGL_DEBUG);
	assert_false(cur.allow_anonymous);
	assert_string_equal(cur.users_file, "/etc/wsb.users");
	assert_string_equal(cur.acl_file, "/etc/wsb.acl");
	assert_int_equal(cur.ws_max_message, 1048576);
	assert_int_equal(cur.nlisteners, 3);
	assert_int_equal(cur.norigins, 0);

	/* the same settings reached another way are no change */
	struct cfg again;
	cfg_defaults(&again);
	assert_int_equal(cfg_set(&again, "path", "/mqtt stomp", err, sizeof(err)), 0);
	assert_int_equal(cfg_set(&again, "path", "/mqtt mqtt", err, sizeof(err)), 0);
	cfg_defaults(&cur);
	assert_int_equal(cfg_apply_reloadable(&cur, &again, ignored, sizeof(ignored)), 0);

	/* exactly these: log_level, allow_anonymous, users_file, acl_file,
	 * the four login_fail_* keys and the eight tls_* keys (a new TLS
	 * context) */
	size_t nreload = 0;
	for (size_t i = 0; i < cfg_key_count(); i++)
		nreload += cfg_key_at(i)->reload;
	assert_int_equal(nreload, 16);
	assert_true(cfg_key_find("login_fail_delay_ms")->reload);
	assert_true(cfg_key_find("login_fail_max_addresses")->reload);
}

/* allow_anonymous's rule needs "set to true" apart from "true by default". */
static void test_key_set_explicitly(void **st)
{
	struct cfg c;
	char err[256];
	(void)st;
	cfg_defaults(&c);
	assert_false(cfg_key_is_set(&c, "allow_anonymous"));
	assert_false(cfg_key_is_set(&c, "no_such_key"));
	assert_int_equal(cfg_set(&c, "allow_anonymous", "true", err, sizeof(err)), 0);
	assert_true(cfg_key_is_set(&c, "allow_anonymous"));
	assert_false(cfg_key_is_set(&c, "users_file"));
	/* a refused value sets nothing */
	assert_int_equal(cfg_set(&c, "login_fail_delay_ms", "-1", err, sizeof(err)), -1);
	assert_false(cfg_key_is_set(&c, "login_fail_delay_ms"));
	/* from a file too, and --print-config keeps it active */
	struct cfg f;
	cfg_defaults(&f);
	char path[] = "/tmp/wsb-cfg-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "allow_anonymous true\n", 21), 21);
	close(fd);
	assert_int_equal(cfg_load_file(&f, path, err, sizeof(err)), 0);
	unlink(path);
	assert_true(cfg_key_is_set(&f, "allow_anonymous"));
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_int_equal(cfg_print_config(out, &f, err, sizeof(err)), 0);
	fclose(out);
	assert_non_null(strstr(text, "\nallow_anonymous true\n"));
	free(text);
}

static void test_help_lists_every_key(void **st)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	cfg_print_usage(f);
	fclose(f);
	assert_non_null(strstr(text, "--listen"));
	assert_non_null(strstr(text, "\n  --print-config      Print the effective settings"));
	assert_non_null(strstr(text, "\n  --check-config      Check the settings"));
	assert_non_null(strstr(text, "\n  --print-man 5|8     Print the man page"));
	for (size_t i = 0; i < cfg_key_count(); i++) {
		const struct cfg_key *k = cfg_key_at(i);
		char want[400], range[160];
		cfg_key_range_text(k, range, sizeof(range));
		snprintf(want, sizeof(want), "\n  %s%s\n      default: %s\n      range: %s\n", k->name,
			 k->reload ? "  (SIGHUP reloads it)" : "", cfg_key_default_text(k), range);
		if (!strstr(text, want))
			fail_msg("--help lacks %s as:%s", k->name, want);
	}
	free(text);
}

/* ---- --print-config, --check-config, --print-man ---- */

static char *capture(void (*fn)(FILE *, void *), void *arg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	fn(f, arg);
	fclose(f);
	return text;
}

static int print_rc;
static char print_err[512];
static void print_config_fn(FILE *f, void *arg)
{
	print_rc = cfg_print_config(f, arg, print_err, sizeof(print_err));
}

static void man_fn(FILE *f, void *arg)
{
	cfg_print_man(f, *(int *)arg);
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
			return true;
	return false;
}

/* Every key of b equals a's, by meaning; names the first that does not. */
static void assert_same_settings(const struct cfg *a, const struct cfg *b)
{
	for (size_t i = 0; i < cfg_key_count(); i++)
		if (!cfg_key_equal(cfg_key_at(i), a, b))
			fail_msg("%s differs after the round trip", cfg_key_at(i)->name);
}

static void test_print_config_reads_back(void **st)
{
	struct cfg c, back;
	char err[256];
	cfg_defaults(&c);
	const char *set[][2] = {
		{"listener", "0.0.0.0:8080/ws"}, {"listener", "[::1]:1883/mqtt"},
		{"listener", "127.0.0.1:0/auto"}, {"path", "/live stomp"}, {"path", "/mqtt stomp"},
		{"origin", "https://a.example"}, {"origin", "http://b.example:8080"},
		{"db", "/var/lib/wsbroker/wsbroker.db"}, {"sync", "normal"}, {"log_level", "debug"},
		{"ws_max_message", "3M"}, {"out_hard_limit", "4GiB"}, {"http_max_header", "1000"},
		{"stomp_heartbeat_grace", "1.23456789"}, {"allow_anonymous", "off"},
		{"mqtt_session_expiry", "4294967295"}, {"port_file", "/run/wsb.ports"},
	};
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		assert_int_equal(cfg_set(&c, set[i][0], set[i][1], err, sizeof(err)), 0);

	char *text = capture(print_config_fn, &c);
	assert_int_equal(print_rc, 0);
	/* changed keys are active, one line per item; defaults commented out */
	const char *active[] = {"listener 0.0.0.0:8080/ws", "listener [::1]:1883/mqtt",
				"listener 127.0.0.1:0/auto", "path /mqtt stomp", "path /stomp stomp",
				"path /live stomp", "origin https://a.example", "sync normal",
				"log_level debug", "ws_max_message 3MiB", "out_hard_limit 4GiB",
				"http_max_header 1000", "stomp_heartbeat_grace 1.23456789",
				"allow_anonymous false", "mqtt_session_expiry 4294967295"};
	for (size_t i = 0; i < sizeof(active) / sizeof(active[0]); i++)
		if (!has_line(text, active[i]))
			fail_msg("no active line '%s' in:\n%s", active[i], text);
	assert_true(has_line(text, "# mqtt_max_inflight 20"));
	assert_true(has_line(text, "# http_max_header 8KiB") == false);
	assert_true(has_line(text, "# users_file PATH"));
	/* each key's sentence is there as a comment */
	for (size_t i = 0; i < cfg_key_count(); i++) {
		char want[64];
		snprintf(want, sizeof(want), "# %.40s", cfg_key_at(i)->doc);
		if (!strstr(text, want))
			fail_msg("no comment opening with '%s'", want);
	}

	cfg_defaults(&back);
	const char *p = write_tmp(text);
	assert_int_equal(cfg_load_file(&back, p, err, sizeof(err)), 0);
	unlink(p);
	assert_same_settings(&c, &back);
	free(text);
}

static void test_print_config_of_defaults_sets_nothing(void **st)
{
	struct cfg c, back;
	char err[256];
	cfg_defaults(&c);
	char *text = capture(print_config_fn, &c);
	assert_int_equal(print_rc, 0);
	for (const char *line = text; *line; line += strcspn(line, "\n") + 1) {
		if (*line != '#' && *line != '\n')
			fail_msg("active line in the defaults: %.*s", (int)strcspn(line, "\n"), line);
		if (!line[strcspn(line, "\n")])
			break;
	}
	/* ...and still names every key, commented, with its default value */
	assert_true(has_line(text, "# listener 127.0.0.1:8080/auto"));
	assert_true(has_line(text, "# listener 127.0.0.1:61613/stomp"));
	assert_true(has_line(text, "# ws_max_message 1MiB"));
	assert_true(has_line(text, "# stomp_heartbeat_grace 2.0"));
	for (size_t i = 0; i < cfg_key_count(); i++) {
		char want[80];
		snprintf(want, sizeof(want), "\n# %s ", cfg_key_at(i)->name);
		if (!strstr(text, want))
			fail_msg("no line for %s", cfg_key_at(i)->name);
	}
	cfg_defaults(&back);
	const char *p = write_tmp(text);
	assert_int_equal(cfg_load_file(&back, p, err, sizeof(err)), 0);
	unlink(p);
	assert_same_settings(&c, &back);
	free(text);
}

/* A value no config line can carry is refused, not printed wrong: exit
 * status 2 and nothing on stdout. */
static void test_print_config_refuses_unwritable_value(void **st)
{
	struct cfg c;
	char err[256];
	cfg_defaults(&c);
	assert_int_equal(cfg_set(&c, "db", "", err, sizeof(err)), 0);
	char *text = capture(print_config_fn, &c);
	assert_int_equal(print_rc, -1);
	assert_non_null(strstr(print_err, "db:"));
	free(text);

	char *out = NULL, *errs = NULL;
	size_t outlen = 0, errlen = 0;
	FILE *fo = open_memstream(&out, &outlen), *fe = open_memstream(&errs, &errlen);
	assert_int_equal(cfg_print_settings(&c, fo, fe), 2);
	fclose(fo);
	fclose(fe);
	assert_int_equal(outlen, 0);
	assert_non_null(strstr(errs, "wsbroker: db: the value '' cannot be written"));
	free(out);
	free(errs);

	cfg_defaults(&c);
	assert_int_equal(cfg_set(&c, "origin", "https://x.example/#frag", err, sizeof(err)), 0);
	text = capture(print_config_fn, &c);
	assert_int_equal(print_rc, -1);
	assert_non_null(strstr(print_err, "origin:"));
	free(text);
}

/* cfg_command_line as main sees it: what it says on errf and the exit status. */
static int command_line(struct cfg *c, int argc, char **argv, char **errs)
{
	size_t len = 0;
	FILE *fe = open_memstream(errs, &len);
	assert_non_null(fe);
	cfg_defaults(c);
	int rc = cfg_command_line(c, argc, argv, fe);
	fclose(fe);
	return rc;
}

static void test_check_config_options(void **st)
{
	struct cfg c;
	char *errs = NULL;
	const char *p = write_tmp("log_level warn\nws_max_message 2M\n");
	char good[64];
	strcpy(good, p);
	char *argv[] = {"wsbroker", "--check-config", "-c", good, "--set", "sync=off", NULL};
	assert_int_equal(command_line(&c, 6, argv, &errs), CFG_GO);
	assert_string_equal(errs, "");
	free(errs);
	assert_int_equal(c.action, CFG_ACTION_CHECK);
	assert_int_equal(c.sync, CFG_SYNC_OFF);
	assert_int_equal(c.ws_max_message, 2 * 1048576);
	unlink(good);

	char *argv2[] = {"wsbroker", "--print-config", NULL};
	assert_int_equal(command_line(&c, 2, argv2, &errs), CFG_GO);
	free(errs);
	assert_int_equal(c.action, CFG_ACTION_PRINT);

	/* a bad file: exit status 2, the file, line and key on stderr */
	p = write_tmp("log_level warn\nmqtt_max_inflight 0\n");
	char bad[64], want[128];
	strcpy(bad, p);
	char *argv3[] = {"wsbroker", "--check-config", "-c", bad, NULL};
	assert_int_equal(command_line(&c, 4, argv3, &errs), 2);
	unlink(bad);
	snprintf(want, sizeof(want), "wsbroker: %s:2: mqtt_max_inflight: 0 is out of range", bad);
	if (strncmp(errs, want, strlen(want)) != 0)
		fail_msg("got '%s', want prefix '%s'", errs, want);
	free(errs);

	char *argv4[] = {"wsbroker", "--print-man", "3", NULL};
	assert_int_equal(command_line(&c, 3, argv4, &errs), 2);
	assert_non_null(strstr(errs, "--print-man takes 5 or 8"));
	free(errs);
}

static void test_man_pages_list_every_key(void **st)
{
	int sections[] = {5, 8};
	for (size_t s = 0; s < 2; s++) {
		char *text = capture(man_fn, &sections[s]);
		char th[32];
		snprintf(th, sizeof(th), "\n.TH %s %d ", sections[s] == 5 ? "WSBROKER.CONF" : "WSBROKER",
			 sections[s]);
		assert_non_null(strstr(text, th));
		for (size_t i = 0; i < cfg_key_count(); i++) {
			const struct cfg_key *k = cfg_key_at(i);
			char want[400], range[160];
			/* defaults and ranges hold no '-' or '\' that roff would change */
			cfg_key_range_text(k, range, sizeof(range));
			snprintf(want, sizeof(want), ".B %s\n%s\n.br\nDefault: %s\n.br\nRange: %s\n.br\n%s\n",
				 k->name, k->doc, cfg_key_default_text(k), range,
				 k->reload ? "SIGHUP reloads it." : "A change needs a restart.");
			if (!strstr(text, want))
				fail_msg("man page %d lacks %s as:\n%s", sections[s], k->name, want);
		}
		if (sections[s] == 8) /* the options too, roff's \- for each dash */
			for (const char *o = "\\fB\\-\\-check\\-config\\fR\0\\fB\\-\\-print\\-config\\fR\0"
					     "\\fB\\-\\-listen\\fR \\fISPEC\\fR\0";
			     *o; o += strlen(o) + 1)
				if (!strstr(text, o))
					fail_msg("wsbroker(8) lacks %s", o);
		free(text);
	}
}

/* ---- docs/configuration.md against the table ----
 * A key's row there: | `key` | default | range | reload | meaning |, where
 * backticks are markup, the reload cell is yes or no, and the meaning opens
 * with the table's sentence. */

struct doc_row {
	char cell[5][1024];
};

static void strip_cell(char *dst, size_t size, const char *src, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < size; i++)
		if (src[i] != '`')
			dst[o++] = src[i];
	dst[o] = 0;
	while (o && dst[o - 1] == ' ')
		dst[--o] = 0;
	size_t lead = strspn(dst, " ");
	memmove(dst, dst + lead, strlen(dst + lead) + 1);
}

/* Split a line "| a | b | c | d | e |" into rows[0..4]; 0, or -1 if it is
 * not a key row. */
static int parse_row(const char *line, struct doc_row *r)
{
	if (strncmp(line, "| `", 3) != 0)
		return -1;
	const char *p = line + 1;
	for (int i = 0; i < 5; i++) {
		const char *bar = strchr(p, '|');
		if (!bar)
			return -1;
		strip_cell(r->cell[i], sizeof(r->cell[i]), p, (size_t)(bar - p));
		p = bar + 1;
	}
	return 0;
}

static void report(char *out, size_t outlen, int *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void report(char *out, size_t outlen, int *n, const char *fmt, ...)
{
	size_t used = strlen(out);
	va_list ap;
	va_start(ap, fmt);
	if (used < outlen)
		vsnprintf(out + used, outlen - used, fmt, ap);
	va_end(ap);
	(*n)++;
}

/* How many ways doc disagrees with the key table; each is described in out. */
static int doc_mismatches(const char *doc, char *out, size_t outlen)
{
	int n = 0;
	size_t nkeys = cfg_key_count();
	int *seen = calloc(nkeys, sizeof(*seen));
	assert_non_null(seen);
	out[0] = 0;
	static struct doc_row r;
	for (const char *line = doc; *line;) {
		size_t len = strcspn(line, "\n");
		char buf[4096];
		snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
		line += len + (line[len] == '\n');
		if (parse_row(buf, &r) < 0)
			continue;
		const struct cfg_key *k = cfg_key_find(r.cell[0]);
		if (!k) {
			report(out, outlen, &n, "doc: %s is not a key\n", r.cell[0]);
			continue;
		}
		seen[k - cfg_key_at(0)]++;
		char range[160];
		cfg_key_range_text(k, range, sizeof(range));
		if (strcmp(r.cell[1], cfg_key_default_text(k)) != 0)
			report(out, outlen, &n, "%s: doc default '%s', table '%s'\n", k->name, r.cell[1],
			       cfg_key_default_text(k));
		if (strcmp(r.cell[2], range) != 0)
			report(out, outlen, &n, "%s: doc range '%s', table '%s'\n", k->name, r.cell[2], range);
		if (strcmp(r.cell[3], k->reload ? "yes" : "no") != 0)
			report(out, outlen, &n, "%s: doc reload '%s', table '%s'\n", k->name, r.cell[3],
			       k->reload ? "yes" : "no");
		if (strncmp(r.cell[4], k->doc, strlen(k->doc)) != 0)
			report(out, outlen, &n, "%s: doc meaning '%s' does not open with '%s'\n", k->name,
			       r.cell[4], k->doc);
	}
	for (size_t i = 0; i < nkeys; i++)
		if (seen[i] != 1)
			report(out, outlen, &n, "%s: %s rows in the doc, want 1\n", cfg_key_at(i)->name,
			       seen[i] ? "several" : "no");
	free(seen);
	return n;
}

static char *read_doc(void)
{
	const char *path = WSB_DOCS_DIR "/configuration.md";
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	char *text = calloc(1, 1 << 20);
	assert_non_null(text);
	size_t n = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	assert_true(n > 0 && n < (1 << 20) - 1);
	return text;
}

static void test_doc_matches_table(void **st)
{
	char *doc = read_doc();
	static char out[16384];
	if (doc_mismatches(doc, out, sizeof(out)) != 0)
		fail_msg("docs/configuration.md and broker/config.c disagree:\n%s", out);
	free(doc);
}

/* The comparison itself notices each kind of disagreement. */
static void test_doc_check_catches_drift(void **st)
{
	char *doc = read_doc();
	static char out[16384];
	size_t len = strlen(doc);
	char *copy = malloc(len + 200);
	assert_non_null(copy);

	/* a changed default */
	strcpy(copy, doc);
	char *p = strstr(copy, "| `mqtt_max_inflight` | 20 |");
	assert_non_null(p);
	memcpy(p + strlen("| `mqtt_max_inflight` | "), "21", 2);
	assert_int_equal(doc_mismatches(copy, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "mqtt_max_inflight: doc default '21'"));

	/* a changed bound */
	strcpy(copy, doc);
	p = strstr(copy, "| 1 to 65535 |");
	assert_non_null(p);
	p[8] = '7'; /* 65535 -> 67535 */
	assert_int_equal(doc_mismatches(copy, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "doc range '1 to 67535'"));

	/* a row missing, and a key the table lacks */
	strcpy(copy, doc);
	p = strstr(copy, "| `mqtt_max_retained` |");
	assert_non_null(p);
	memcpy(p + 3, "mqtt_max_retainer", 17);
	assert_int_equal(doc_mismatches(copy, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "doc: mqtt_max_retainer is not a key"));
	assert_non_null(strstr(out, "mqtt_max_retained: no rows"));

	/* reload says otherwise */
	strcpy(copy, doc);
	p = strstr(copy, "| `log_level` |");
	assert_non_null(p);
	p = strstr(p, "| yes |");
	assert_non_null(p);
	memcpy(p + 2, "no ", 3);
	assert_int_equal(doc_mismatches(copy, out, sizeof(out)), 1);
	free(copy);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_listener_specs),
		cmocka_unit_test(test_file_ok),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_args_override_file),
		cmocka_unit_test(test_args_errors),
		cmocka_unit_test(test_sizes_and_limits),
		cmocka_unit_test(test_range_errors_name_key_and_range),
		cmocka_unit_test(test_reload_takes_only_reloadable_keys),
		cmocka_unit_test(test_key_set_explicitly),
		cmocka_unit_test(test_help_lists_every_key),
		cmocka_unit_test(test_print_config_reads_back),
		cmocka_unit_test(test_print_config_of_defaults_sets_nothing),
		cmocka_unit_test(test_print_config_refuses_unwritable_value),
		cmocka_unit_test(test_check_config_options),
		cmocka_unit_test(test_man_pages_list_every_key),
		cmocka_unit_test(test_doc_matches_table),
		cmocka_unit_test(test_doc_check_catches_drift),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
