/* Unit tests for http_parse.c. Every input is parsed whole, at every prefix
 * (each in an exact-size heap copy, so ASan sees any read past the end) and
 * grown one byte at a time as a socket would deliver it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bytewise.h"

#include "net/http_parse.h"

#define BIG 65536

struct http_feed {
	size_t max_head;
	struct http_request *req;
};

static int http_feed_parse(void *ctx, const uint8_t *buf, size_t n)
{
	struct http_feed *f = ctx;
	return http_parse_request((const char *)buf, n, f->max_head, f->req);
}

static int parse_copy(const char *s, size_t len, size_t max_head, struct http_request *req)
{
	struct http_feed f = {max_head, req};
	return bytewise_copy(s, len, http_feed_parse, &f);
}

/* Every proper prefix of a complete head needs more; the whole gives n. */
static void expect_prefixes_need_more(const char *s, size_t n, size_t max_head)
{
	struct http_request req;
	for (size_t k = 0; k < n; k++) {
		int r = parse_copy(s, k, max_head, &req);
		if (r != 0)
			fail_msg("prefix %zu of %zu: got %d, want 0", k, n, r);
	}
}

/* As a socket delivers it: one byte appended per read, the buffer grown to
 * exactly what has arrived. Returns the first nonzero result and the length
 * at which it came. */
static int feed_bytewise(const char *s, size_t n, size_t max_head, size_t *at,
			 struct http_request *req)
{
	struct http_feed f = {max_head, req};
	return bytewise_feed(s, n, http_feed_parse, &f, at);
}

/* Parses a complete head in all three ways; req gets the whole-buffer
 * result (pointing into s). */
static void parse_ok(const char *s, size_t max_head, struct http_request *req)
{
	size_t n = strlen(s), at = 0;
	struct http_request tmp;
	expect_prefixes_need_more(s, n, max_head);
	assert_int_equal(feed_bytewise(s, n, max_head, &at, &tmp), (int)n);
	assert_int_equal(at, n);
	assert_int_equal(http_parse_request(s, n, max_head, req), (int)n);
}

/* A bad input: prefixes give 0 up to some length, then `err` for every longer
 * prefix; the whole gives err; byte-wise stops at that same length. Returns
 * that length so callers can check how early the error was seen. */
static size_t parse_err(const char *s, size_t n, size_t max_head, int err)
{
	struct http_request req;
	size_t first = 0, at = 0;
	for (size_t k = 0; k <= n; k++) {
		int r = parse_copy(s, k, max_head, &req);
		if (r == 0 && first == 0)
			continue;
		if (r != err)
			fail_msg("prefix %zu of %zu of \"%.*s\": got %d, want %d",
				 k, n, (int)n, s, r, err);
		if (first == 0)
			first = k;
	}
	assert_int_not_equal(first, 0);
	assert_int_equal(feed_bytewise(s, n, max_head, &at, &req), err);
	assert_int_equal(at, first);
	return first;
}

static void expect_hdr(const struct http_request *req, size_t i, const char *name,
		       const char *value)
{
	assert_true(i < req->num_headers);
	assert_int_equal(req->headers[i].name_len, strlen(name));
	assert_memory_equal(req->headers[i].name, name, strlen(name));
	assert_int_equal(req->headers[i].value_len, strlen(value));
	if (*value)
		assert_memory_equal(req->headers[i].value, value, strlen(value));
}

static const char chrome_upgrade[] =
	"GET /stomp?x=1 HTTP/1.1\r\n"
	"Host: 127.0.0.1:8080\r\n"
	"Connection: Upgrade\r\n"
	"Pragma: no-cache\r\n"
	"Upgrade: websocket\r\n"
	"Origin: http://127.0.0.1:8080\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
	"Sec-WebSocket-Protocol: v12.stomp, v11.stomp\r\n"
	"\r\n";

static void test_browser_upgrade(void **state)
{
	struct http_request req;
	parse_ok(chrome_upgrade, 8192, &req);
	assert_int_equal(req.method_len, 3);
	assert_memory_equal(req.method, "GET", 3);
	assert_int_equal(req.target_len, 10);
	assert_memory_equal(req.target, "/stomp?x=1", 10);
	assert_int_equal(req.minor_version, 1);
	assert_int_equal(req.num_headers, 10);
	expect_hdr(&req, 0, "Host", "127.0.0.1:8080");
	expect_hdr(&req, 1, "Connection", "Upgrade");
	expect_hdr(&req, 3, "Upgrade", "websocket");
	expect_hdr(&req, 6, "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0");
	expect_hdr(&req, 7, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
	expect_hdr(&req, 9, "Sec-WebSocket-Protocol", "v12.stomp, v11.stomp");
	/* results point into the caller's buffer */
	assert_ptr_equal(req.target, chrome_upgrade + 4);
}

static void test_bare_lf_and_version(void **state)
{
	struct http_request req;
	parse_ok("GET / HTTP/1.0\nHost: a\n\n", 8192, &req);
	assert_int_equal(req.minor_version, 0);
	assert_int_equal(req.num_headers, 1);
	expect_hdr(&req, 0, "Host", "a");
	parse_ok("OPTIONS * HTTP/1.1\r\nA: 1\nB: 2\r\n\n", 8192, &req);
	assert_int_equal(req.num_headers, 2);
	assert_memory_equal(req.method, "OPTIONS", 7);
	expect_hdr(&req, 1, "B", "2");
	parse_ok("GET / HTTP/1.1\r\n\r\n", 8192, &req);
	assert_int_equal(req.num_headers, 0);
	parse_ok("M-#!~ /a HTTP/1.9\r\n\r\n", 8192, &req);
	assert_int_equal(req.method_len, 5);
	assert_int_equal(req.minor_version, 9);
}

static void test_trailing_bytes_not_consumed(void **state)
{
	static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n\x81\x85garbage";
	struct http_request req;
	assert_int_equal(http_parse_request(s, sizeof s - 1, 8192, &req), 27);
}

static void test_value_trimming(void **state)
{
	struct http_request req;
	parse_ok("GET / HTTP/1.1\r\nA:  \t a b \t \r\nB:\r\nC:   \r\nD:x\r\n"
		 "E: caf\xC3\xA9\r\nF: \"q\" ; x=\t1\r\n\r\n", 8192, &req);
	assert_int_equal(req.num_headers, 6);
	expect_hdr(&req, 0, "A", "a b");
	expect_hdr(&req, 1, "B", "");
	expect_hdr(&req, 2, "C", "");
	expect_hdr(&req, 3, "D", "x");
	expect_hdr(&req, 4, "E", "caf\xC3\xA9");
	expect_hdr(&req, 5, "F", "\"q\" ; x=\t1");
}

struct bad {
	const char *s;
	size_t first;   /* shortest prefix that is already an error */
};

static void test_malformed(void **state)
{
	static const struct bad cases[] = {
		{ "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 1 }, /* TLS hello */
		{ "\x10\x1a\x00\x04MQTT", 1 },                  /* MQTT CONNECT */
		{ "\r\nGET / HTTP/1.1\r\n\r\n", 1 },            /* leading empty line */
		{ " / HTTP/1.1\r\n\r\n", 1 },                   /* empty method */
		{ "GE(T / HTTP/1.1\r\n\r\n", 3 },
		{ "GET\t/ HTTP/1.1\r\n\r\n", 4 },
		{ "GET  / HTTP/1.1\r\n\r\n", 5 },               /* empty target */
		{ "GET /a\x01z HTTP/1.1\r\n\r\n", 7 },
		{ "GET /\xC3\xA9 HTTP/1.1\r\n\r\n", 6 },
		{ "GET /\r\n\r\n", 6 },
		{ "GET / http/1.1\r\n\r\n", 7 },
		{ "GET / HTTP/2.0\r\n\r\n", 12 },
		{ "GET / HTTP/1.x\r\n\r\n", 14 },
		{ "GET / HTTP/1.10\r\n\r\n", 15 },
		{ "GET / HTTP/1.1 \r\n\r\n", 15 },
		{ "GET / HTTP/1.1\r\r\n\r\n", 16 },             /* bare CR */
		{ "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 17 },   /* SP before first field */
		{ "GET / HTTP/1.1\r\nHost: a\r\n  b\r\n\r\n", 26 }, /* obs-fold */
		{ "GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n", 26 },
		{ "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 21 },   /* SP before colon */
		{ "GET / HTTP/1.1\r\n: a\r\n\r\n", 17 },        /* empty name */
		{ "GET / HTTP/1.1\r\nHost a\r\n\r\n", 21 },
		{ "GET / HTTP/1.1\r\nHost\r\n\r\n", 21 },
		{ "GET / HTTP/1.1\r\nHo\"st: a\r\n\r\n", 19 },
		{ "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 21 },  /* controls in value */
		{ "GET / HTTP/1.1\r\nX: a\x1bz\r\n\r\n", 21 },
		{ "GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", 21 },
		{ "GET / HTTP/1.1\r\nX: a\rz\r\n\r\n", 22 },    /* bare CR in value */
		{ "GET / HTTP/1.1\r\nX: a\r\n\r\r\n", 24 },     /* CR CR at the end */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t first = parse_err(cases[i].s, strlen(cases[i].s), 8192,
					 HTTP_PARSE_MALFORMED);
		if (first != cases[i].first)
			fail_msg("case %zu: error seen at %zu, want %zu", i, first,
				 cases[i].first);
	}
	/* NUL bytes are data, not terminators */
	static const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
	assert_int_equal(parse_err(nul, sizeof nul - 1, 8192, HTTP_PARSE_MALFORMED), 21);
	static const char nul_name[] = "GET / HTTP/1.1\r\nX\0: a\r\n\r\n";
	assert_int_equal(parse_err(nul_name, sizeof nul_name - 1, 8192, HTTP_PARSE_MALFORMED), 18);
}

static void test_too_large(void **state)
{
	static const char s[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n"; /* 33 bytes */
	size_t n = sizeof s - 1;
	struct http_request req;

	assert_int_equal(n, 33);
	/* exactly at the limit fits */
	parse_ok(s, n, &req);
	/* one byte short: too large as soon as max_head bytes are in hand */
	assert_int_equal(parse_err(s, n, n - 1, HTTP_PARSE_TOO_LARGE), n - 1);
	assert_int_equal(parse_err(s, n, 10, HTTP_PARSE_TOO_LARGE), 10);
	/* without any end of head, the limit alone decides */
	char *junk = malloc(BIG);
	assert_non_null(junk);
	memcpy(junk, "GET / HTTP/1.1\r\nX: ", 19);
	memset(junk + 19, 'a', BIG - 19);
	assert_int_equal(http_parse_request(junk, 4095, 4096, &req), 0);
	assert_int_equal(http_parse_request(junk, 4096, 4096, &req), HTTP_PARSE_TOO_LARGE);
	assert_int_equal(http_parse_request(junk, BIG, 4096, &req), HTTP_PARSE_TOO_LARGE);
	/* a malformed byte within the limit is reported as malformed */
	junk[100] = '\x01';
	assert_int_equal(http_parse_request(junk, BIG, 4096, &req), HTTP_PARSE_MALFORMED);
	/* ... but one past the limit is never looked at */
	junk[100] = 'a';
	junk[4096] = '\x01';
	assert_int_equal(http_parse_request(junk, BIG, 4096, &req), HTTP_PARSE_TOO_LARGE);
	free(junk);
	assert_int_equal(http_parse_request("G", 1, 0, &req), HTTP_PARSE_TOO_LARGE);
	assert_int_equal(http_parse_request("", 0, 0, &req), HTTP_PARSE_TOO_LARGE);
	assert_int_equal(http_parse_request("", 0, 1, &req), 0);
}

static char *many_headers(size_t count)
{
	char *s = malloc(32 + count * 16);
	assert_non_null(s);
	size_t off = (size_t)sprintf(s, "GET / HTTP/1.1\r\n");
	for (size_t i = 0; i < count; i++)
		off += (size_t)sprintf(s + off, "H%zu: v%zu\r\n", i, i);
	sprintf(s + off, "\r\n");
	return s;
}

static void test_header_count(void **state)
{
	struct http_request req;
	char *s = many_headers(HTTP_MAX_HEADERS);
	parse_ok(s, BIG, &req);
	assert_int_equal(req.num_headers, HTTP_MAX_HEADERS);
	expect_hdr(&req, 0, "H0", "v0");
	expect_hdr(&req, 63, "H63", "v63");
	free(s);

	s = many_headers(HTTP_MAX_HEADERS + 1);
	/* refused at the first byte of header 65 */
	const char *h65 = strstr(s, "\r\nH64:") + 2;
	size_t first = parse_err(s, strlen(s), BIG, HTTP_PARSE_TOO_MANY_HEADERS);
	assert_int_equal(first, (size_t)(h65 - s) + 1);
	free(s);
}

static void test_header_find(void **state)
{
	struct http_request req;
	parse_ok("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: a\r\nhost: h\r\n"
		 "Sec-WebSocket-Key2: x\r\nSEC-WEBSOCKET-PROTOCOL: b\r\n\r\n", 8192, &req);
	assert_int_equal(http_header_find(&req, "Host", 0), 1);
	assert_int_equal(http_header_find(&req, "sec-websocket-protocol", 0), 0);
	assert_int_equal(http_header_find(&req, "Sec-WebSocket-Protocol", 1), 3);
	assert_int_equal(http_header_find(&req, "Sec-WebSocket-Protocol", 4), -1);
	assert_int_equal(http_header_find(&req, "Sec-WebSocket-Key", 0), -1);
	assert_int_equal(http_header_find(&req, "Sec-WebSocket-Key22", 0), -1);
	assert_int_equal(http_header_find(&req, "Hos", 0), -1);
	assert_int_equal(http_header_find(&req, "Host", 100), -1);
}

/* Walks a list and joins its tokens with '|' for comparison. */
static void expect_list(const char *value, const char *joined)
{
	char out[256] = "";
	const char *p = value, *end = value + strlen(value), *tok;
	size_t len, off = 0;
	while (http_list_next(&p, end, &tok, &len)) {
		assert_true(len > 0);
		assert_true(off + len + 1 < sizeof out);
		if (off)
			out[off++] = '|';
		memcpy(out + off, tok, len);
		off += len;
		out[off] = '\0';
	}
	assert_ptr_equal(p, end);
	assert_string_equal(out, joined);
}

static void test_list_next(void **state)
{
	expect_list("", "");
	expect_list(" , ,\t,", "");
	expect_list("Upgrade", "Upgrade");
	expect_list("keep-alive, Upgrade", "keep-alive|Upgrade");
	expect_list("  a , ,b,c  ,,", "a|b|c");
	expect_list("\tv12.stomp,v11.stomp\t", "v12.stomp|v11.stomp");
	expect_list("a b, c", "a b|c");
}

static void test_list_has(void **state)
{
	static const char v[] = "keep-alive, Upgrade";
	assert_int_equal(http_list_has(v, strlen(v), "upgrade"), 1);
	assert_int_equal(http_list_has(v, strlen(v), "KEEP-ALIVE"), 1);
	assert_int_equal(http_list_has(v, strlen(v), "Upgr"), 0);
	assert_int_equal(http_list_has(v, strlen(v), "alive"), 0);
	assert_int_equal(http_list_has(v, strlen(v), ""), 0);
	assert_int_equal(http_list_has("", 0, "upgrade"), 0);
	/* the length bounds the value: "Upgrade" lies past it */
	assert_int_equal(http_list_has(v, 10, "upgrade"), 0);
	assert_int_equal(http_list_has(v, 10, "keep-alive"), 1);
	assert_int_equal(http_list_has("WebSocket", 9, "websocket"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_browser_upgrade),
		cmocka_unit_test(test_bare_lf_and_version),
		cmocka_unit_test(test_trailing_bytes_not_consumed),
		cmocka_unit_test(test_value_trimming),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_header_count),
		cmocka_unit_test(test_header_find),
		cmocka_unit_test(test_list_next),
		cmocka_unit_test(test_list_has),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
