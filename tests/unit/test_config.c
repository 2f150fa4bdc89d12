/* Config: defaults, file parsing and its error messages, command-line
 * overrides, listener specs. */
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
