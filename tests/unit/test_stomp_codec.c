/* Unit tests for protocols/stomp_codec: every input is fed whole, split at
 * every offset, and one byte at a time, through a caller that keeps the
 * unconsumed bytes the way the session does; all three must see the same
 * frames and the same error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "stomp_codec.h"

static const struct stomp_limits LIM = { 16, 256, 4096 };

/* ---- a stream driver that records what it saw as text ---- */

struct out {
	char *s;
	size_t len, cap;
};

static void out_add(struct out *o, const char *p, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->s = realloc(o->s, o->cap);
		assert_non_null(o->s);
	}
	memcpy(o->s + o->len, p, n);
	o->len += n;
	o->s[o->len] = 0;
}

static void out_str(struct out *o, const char *s) { out_add(o, s, strlen(s)); }

/* Bytes outside printable ASCII become \xNN so that bodies compare as text. */
static void out_bytes(struct out *o, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char t[8];
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			out_add(o, (const char *)&p[i], 1);
		else {
			snprintf(t, sizeof(t), "\\x%02x", p[i]);
			out_str(o, t);
		}
	}
}

static void record(struct out *o, const struct stomp_frame *f)
{
	if (f->cmd == STOMP_HEARTBEAT) {
		/* a run of EOLs may arrive in several pieces: one token per run */
		if (o->len < 3 || strcmp(o->s + o->len - 3, "HB;") != 0)
			out_str(o, "HB;");
		return;
	}
	out_str(o, stomp_command_name(f->cmd));
	for (size_t i = 0; i < f->nheaders; i++) {
		const struct stomp_header *h = &f->headers[i];
		assert_int_equal(strlen(h->name), h->name_len);
		assert_int_equal(strlen(h->value), h->value_len);
		out_str(o, "|");
		out_bytes(o, (const uint8_t *)h->name, h->name_len);
		out_str(o, "=");
		out_bytes(o, (const uint8_t *)h->value, h->value_len);
	}
	out_str(o, "|body=");
	out_bytes(o, f->body, f->body_len);
	out_str(o, ";");
}

/* Feed `in` in chunks of `chunk` bytes (0 = whole). A split point `split`
 * (when nonzero) cuts the input in two instead. Returns the record. */
static char *run(const void *in, size_t len, enum stomp_version v, const struct stomp_limits *lim,
		 size_t chunk, size_t split)
{
	struct stomp_parser p;
	stomp_parser_init(&p, lim);
	stomp_parser_set_version(&p, v);
	struct out o = { 0 };
	out_str(&o, "");
	uint8_t *acc = malloc(len + 1);
	size_t acc_len = 0, fed = 0;
	bool failed = false;
	while (fed < len && !failed) {
		size_t n = split ? (fed == 0 ? split : len - fed) : (chunk ? chunk : len);
		if (n > len - fed)
			n = len - fed;
		memcpy(acc + acc_len, (const uint8_t *)in + fed, n);
		acc_len += n;
		fed += n;
		size_t off = 0;
		for (;;) {
			struct stomp_frame f;
			int r = stomp_parse(&p, acc + off, acc_len - off, &f);
			if (r > 0) {
				assert_true((size_t)r <= acc_len - off);
				record(&o, &f);
				off += (size_t)r;
				continue;
			}
			if (r < 0) {
				char t[32];
				snprintf(t, sizeof(t), "ERR%d;", r);
				out_str(&o, t);
				/* the error is sticky */
				assert_int_equal(stomp_parse(&p, acc + off, acc_len - off, &f), r);
				failed = true;
			}
			break;
		}
		memmove(acc, acc + off, acc_len - off);
		acc_len -= off;
	}
	if (!failed && acc_len) {
		char t[32];
		snprintf(t, sizeof(t), "PARTIAL%zu;", acc_len);
		out_str(&o, t);
	}
	free(acc);
	stomp_parser_free(&p);
	return o.s;
}

/* Whole, every two-piece split, and byte by byte all agree with expect. */
static void check_lim(const void *in, size_t len, enum stomp_version v,
		      const struct stomp_limits *lim, const char *expect)
{
	char *whole = run(in, len, v, lim, 0, 0);
	assert_string_equal(whole, expect);
	free(whole);
	char *bytes = run(in, len, v, lim, 1, 0);
	assert_string_equal(bytes, expect);
	free(bytes);
	for (size_t k = 1; k < len; k++) {
		char *s = run(in, len, v, lim, 0, k);
		if (strcmp(s, expect) != 0)
			fail_msg("split at %zu: got '%s' want '%s'", k, s, expect);
		free(s);
	}
}

static void check(const char *in, enum stomp_version v, const char *expect)
{
	check_lim(in, strlen(in) + 1 /* include the final NUL */, v, &LIM, expect);
}

/* Input given with explicit length (NULs inside). */
static void checkn(const char *in, size_t len, enum stomp_version v, const char *expect)
{
	check_lim(in, len, v, &LIM, expect);
}

/* ---- parsing ---- */

static void test_simple_send(void **st)
{
	(void)st;
	check("SEND\ndestination:/queue/a\nreceipt:r1\n\nhello", STOMP_V12,
	      "SEND|destination=/queue/a|receipt=r1|body=hello;");
	check("DISCONNECT\n\n", STOMP_V10, "DISCONNECT|body=;");
}

static void test_every_command(void **st)
{
	(void)st;
	const char *names[] = { "CONNECT", "STOMP", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK",
				"NACK", "BEGIN", "COMMIT", "ABORT", "DISCONNECT", "CONNECTED",
				"MESSAGE", "RECEIPT", "ERROR" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char in[64], want[64];
		snprintf(in, sizeof(in), "%s\r\n\r\n", names[i]);
		snprintf(want, sizeof(want), "%s|body=;", names[i]);
		check(in, STOMP_V12, want);
	}
}

static void test_crlf_and_lf(void **st)
{
	(void)st;
	check("SEND\r\ndestination:/topic/x\r\nk:v\r\n\r\nbody", STOMP_V12,
	      "SEND|destination=/topic/x|k=v|body=body;");
	/* mixed EOLs; a CR that is not before LF belongs to the value */
	check("SEND\ndestination:/topic/x\r\nk:a\rb\n\n", STOMP_V10,
	      "SEND|destination=/topic/x|k=a\\x0db|body=;");
}

static void test_content_length_with_nuls(void **st)
{
	(void)st;
	const char in[] = "SEND\ndestination:/queue/b\ncontent-length:5\n\na\0b\0c";
	checkn(in, sizeof(in), STOMP_V12,
	       "SEND|destination=/queue/b|content-length=5|body=a\\x00b\\x00c;");
	/* zero length */
	check("SEND\ncontent-length:0\n\n", STOMP_V12, "SEND|content-length=0|body=;");
}

static void test_content_length_first_wins(void **st)
{
	(void)st;
	const char in[] = "SEND\ncontent-length:2\ncontent-length:zz\n\nab";
	checkn(in, sizeof(in), STOMP_V12, "SEND|content-length=2|content-length=zz|body=ab;");
}

static void test_several_frames_and_heartbeats(void **st)
{
	(void)st;
	const char in[] = "\n\r\nSEND\ndestination:/a\n\nx\0\n\nBEGIN\ntransaction:t\n\n\0"
			  "\r\n\nCOMMIT\ntransaction:t\n\n\0\n";
	checkn(in, sizeof(in) - 1, STOMP_V12,
	       "HB;SEND|destination=/a|body=x;HB;BEGIN|transaction=t|body=;HB;"
	       "COMMIT|transaction=t|body=;HB;");
	/* heart-beats alone */
	checkn("\n\n\r\n\n", 5, STOMP_V11, "HB;");
	/* half a CRLF waits */
	checkn("\n\r", 2, STOMP_V11, "HB;PARTIAL1;");
}

static void test_partial_frames_wait(void **st)
{
	(void)st;
	checkn("SEND\ndest", 9, STOMP_V12, "PARTIAL9;");
	checkn("SEND\ndest:x\n\nbody", 17, STOMP_V12, "PARTIAL17;");
	checkn("SEND\ncontent-length:4\n\nab", 26, STOMP_V12, "PARTIAL26;");
}

static void test_colon_in_value(void **st)
{
	(void)st;
	check("SEND\nurl:http://x:1/\n\n", STOMP_V10, "SEND|url=http://x:1/|body=;");
	check("SEND\nurl:a:b\n\n", STOMP_V12, "SEND|url=a:b|body=;");
	check("SEND\nempty:\n\n", STOMP_V12, "SEND|empty=|body=;");
}

static void test_escapes_per_version(void **st)
{
	(void)st;
	const char *in = "SEND\na\\cb:1\\n2\\r3\\\\4\\c5\n\n";
	check(in, STOMP_V12, "SEND|a:b=1\\x0a2\\x0d3\\x5c4:5|body=;");
	check(in, STOMP_V11, "SEND|a:b=1\\x0a2\\x0d3\\x5c4:5|body=;");
	/* 1.0 knows no escapes: the backslashes stay */
	check(in, STOMP_V10, "SEND|a\\x5ccb=1\\x5cn2\\x5cr3\\x5c\\x5c4\\x5cc5|body=;");
	/* CONNECT, STOMP and CONNECTED are never unescaped */
	check("CONNECT\nlogin:a\\tb\n\n", STOMP_V12, "CONNECT|login=a\\x5ctb|body=;");
	check("STOMP\npasscode:x\\c\n\n", STOMP_V12, "STOMP|passcode=x\\x5cc|body=;");
	check("CONNECTED\nserver:a\\n\n\n", STOMP_V12, "CONNECTED|server=a\\x5cn|body=;");
}

static void test_undefined_escape(void **st)
{
	(void)st;
	char want[32];
	snprintf(want, sizeof(want), "ERR%d;", STOMP_E_BAD_ESCAPE);
	check("SEND\nk:a\\tb\n\n", STOMP_V12, want);
	check("SEND\nk:a\\tb\n\n", STOMP_V11, want);
	check("SEND\nk:trailing\\\n\n", STOMP_V12, want);
	check("SEND\nk\\x:v\n\n", STOMP_V12, want);
	check("SEND\nk:a\\tb\n\n", STOMP_V10, "SEND|k=a\\x5ctb|body=;");
}

static void test_repeated_header_first_wins(void **st)
{
	(void)st;
	check("SEND\nfoo:1\nfoo:2\n\n", STOMP_V12, "SEND|foo=1|foo=2|body=;");
	struct stomp_parser p;
	stomp_parser_init(&p, &LIM);
	const char in[] = "SEND\nfoo:first\nbar:x\nfoo:second\n\n";
	struct stomp_frame f;
	assert_int_equal(stomp_parse(&p, (const uint8_t *)in, sizeof(in), &f), sizeof(in));
	assert_string_equal(stomp_frame_get(&f, "foo"), "first");
	assert_string_equal(stomp_frame_get(&f, "bar"), "x");
	assert_null(stomp_frame_get(&f, "baz"));
	assert_null(stomp_frame_header(&f, "fo"));
	stomp_parser_free(&p);
}

static void expect_err(const char *in, size_t len, enum stomp_version v,
		       const struct stomp_limits *lim, int err)
{
	char want[32];
	snprintf(want, sizeof(want), "ERR%d;", err);
	check_lim(in, len, v, lim, want);
}

static void test_bad_command(void **st)
{
	(void)st;
	expect_err("FOO\n\n", 6, STOMP_V12, &LIM, STOMP_E_BAD_COMMAND);
	expect_err("send\n\n", 7, STOMP_V12, &LIM, STOMP_E_BAD_COMMAND);
	expect_err("SEND \n\n", 8, STOMP_V12, &LIM, STOMP_E_BAD_COMMAND);
	/* an HTTP request line is refused without waiting for its end */
	expect_err("GET /index.html HTTP/1.1", 24, STOMP_V12, &LIM, STOMP_E_BAD_COMMAND);
	expect_err("SEN\0D\n\n", 8, STOMP_V12, &LIM, STOMP_E_BAD_COMMAND);
	expect_err("\rSEND\n\n", 8, STOMP_V12, &LIM, STOMP_E_BAD_COMMAND);
	/* a frame after a good one */
	char want[64];
	snprintf(want, sizeof(want), "ACK|id=1|body=;ERR%d;", STOMP_E_BAD_COMMAND);
	checkn("ACK\nid:1\n\n\0BOGUS\n\n\0", 19, STOMP_V12, want);
}

static void test_bad_header_lines(void **st)
{
	(void)st;
	expect_err("SEND\nnocolon\n\n", 15, STOMP_V12, &LIM, STOMP_E_NO_COLON);
	expect_err("SEND\n:value\n\n", 14, STOMP_V12, &LIM, STOMP_E_EMPTY_NAME);
	expect_err("SEND\nk:v\0\n\n", 11, STOMP_V12, &LIM, STOMP_E_NUL_IN_HEADER);
	/* a frame whose blank line is missing is caught at the NUL */
	expect_err("DISCONNECT\n\0", 12, STOMP_V12, &LIM, STOMP_E_NUL_IN_HEADER);
}

static void test_header_size_limit(void **st)
{
	(void)st;
	struct stomp_limits lim = { 8, 10, 100 };
	/* "k:" + 8 = 10 bytes: exactly the limit */
	check_lim("SEND\nk:12345678\n\n", 18, STOMP_V12, &lim, "SEND|k=12345678|body=;");
	check_lim("SEND\nk:12345678\r\n\r\n", 20, STOMP_V12, &lim, "SEND|k=12345678|body=;");
	expect_err("SEND\nk:123456789\n\n", 19, STOMP_V12, &lim, STOMP_E_HEADER_TOO_LONG);
	/* an endless line fails without waiting for its EOL */
	expect_err("SEND\nk:1234567890123", 20, STOMP_V12, &lim, STOMP_E_HEADER_TOO_LONG);
}

static void test_header_count_limit(void **st)
{
	(void)st;
	struct stomp_limits lim = { 3, 100, 100 };
	check_lim("SEND\na:1\nb:2\nc:3\n\n", 19, STOMP_V12, &lim, "SEND|a=1|b=2|c=3|body=;");
	expect_err("SEND\na:1\nb:2\nc:3\nd:4\n\n", 23, STOMP_V12, &lim, STOMP_E_TOO_MANY_HEADERS);
	/* repeats count too */
	expect_err("SEND\na:1\na:1\na:1\na:1\n\n", 23, STOMP_V12, &lim, STOMP_E_TOO_MANY_HEADERS);
}

static void test_body_size_limit(void **st)
{
	(void)st;
	struct stomp_limits lim = { 8, 100, 4 };
	check_lim("SEND\n\nabcd", 11, STOMP_V12, &lim, "SEND|body=abcd;");
	expect_err("SEND\n\nabcde", 12, STOMP_V12, &lim, STOMP_E_BODY_TOO_LARGE);
	/* max_body + 1 bytes and no NUL: no NUL can make this frame fit */
	expect_err("SEND\n\nabcde", 11, STOMP_V12, &lim, STOMP_E_BODY_TOO_LARGE);
	/* without a NUL in sight the parser gives up at the bound */
	expect_err("SEND\n\nabcdefgh", 14, STOMP_V12, &lim, STOMP_E_BODY_TOO_LARGE);
	check_lim("SEND\ncontent-length:4\n\nab\0d", 28, STOMP_V12, &lim,
		  "SEND|content-length=4|body=ab\\x00d;");
	/* refused as soon as the header says so */
	expect_err("SEND\ncontent-length:5\n\n", 23, STOMP_V12, &lim, STOMP_E_BODY_TOO_LARGE);
	expect_err("SEND\ncontent-length:99999999999999999999999\n\n", 45, STOMP_V12, &lim,
		   STOMP_E_BODY_TOO_LARGE);
}

static void test_bad_content_length(void **st)
{
	(void)st;
	const char *bad[] = { "abc", "", "-1", "1 ", " 1", "0x10", "1.5" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char in[64];
		int n = snprintf(in, sizeof(in), "SEND\ncontent-length:%s\n\nx", bad[i]);
		expect_err(in, (size_t)n + 1, STOMP_V12, &LIM, STOMP_E_BAD_CONTENT_LENGTH);
	}
}

static void test_body_not_terminated(void **st)
{
	(void)st;
	expect_err("SEND\ncontent-length:2\n\nabc\0", 28, STOMP_V12, &LIM,
		   STOMP_E_BODY_NOT_TERMINATED);
	expect_err("SEND\ncontent-length:0\n\nX", 24, STOMP_V12, &LIM,
		   STOMP_E_BODY_NOT_TERMINATED);
}

static void test_large_body_one_byte_at_a_time(void **st)
{
	(void)st;
	struct stomp_limits lim = { 8, 100, 200000 };
	size_t blen = 100000;
	char *in = malloc(blen + 64);
	int h = sprintf(in, "SEND\ncontent-length:%zu\n\n", blen);
	for (size_t i = 0; i < blen; i++)
		in[h + i] = (char)(i * 7);
	in[h + blen] = 0;
	size_t len = (size_t)h + blen + 1;
	for (int nul_terminated = 0; nul_terminated < 2; nul_terminated++) {
		const char *start = in;
		if (nul_terminated) {
			/* same body without NULs and without content-length */
			for (size_t i = 0; i < blen; i++)
				if (in[h + i] == 0)
					in[h + i] = 1;
			start = in + h - 6;
			memcpy((char *)start, "SEND\n\n", 6);
			len = blen + 7;
		}
		for (size_t chunk = 1; chunk <= 4096; chunk *= 4096) {
			struct stomp_parser p;
			stomp_parser_init(&p, &lim);
			size_t fed = 0;
			int r = 0;
			struct stomp_frame f;
			while (fed < len) {
				fed += (len - fed < chunk) ? len - fed : chunk;
				r = stomp_parse(&p, (const uint8_t *)start, fed, &f);
				if (r != 0)
					break;
			}
			assert_int_equal(r, (int)len);
			assert_int_equal(f.body_len, blen);
			assert_memory_equal(f.body, start + len - 1 - blen, blen);
			stomp_parser_free(&p);
		}
	}
	free(in);
}

/* ---- encoding ---- */

static char *take(struct stomp_buf *b, size_t *len)
{
	*len = b->len;
	return (char *)b->data;
}

static void test_encode_message_12(void **st)
{
	(void)st;
	struct stomp_buf b = { 0 };
	assert_int_equal(stomp_encode_command(&b, STOMP_MESSAGE), 0);
	assert_int_equal(stomp_encode_header_str(&b, STOMP_V12, STOMP_MESSAGE, "destination", "/topic/a.b"), 0);
	assert_int_equal(stomp_encode_header_str(&b, STOMP_V12, STOMP_MESSAGE, "we:ird\\", "a\nb\rc:d"), 0);
	assert_int_equal(stomp_encode_body(&b, "x\0y", 3), 0);
	size_t n;
	char *s = take(&b, &n);
	const char want[] = "MESSAGE\ndestination:/topic/a.b\nwe\\cird\\\\:a\\nb\\rc\\cd\n\nx\0y";
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(s, want, n);
	stomp_buf_free(&b);
}

static void test_encode_versions_differ(void **st)
{
	(void)st;
	struct stomp_buf b = { 0 };
	stomp_encode_header_str(&b, STOMP_V11, STOMP_MESSAGE, "k", "a\rb:c\n");
	stomp_encode_header_str(&b, STOMP_V10, STOMP_MESSAGE, "k:x", "a\rb:c\n");
	size_t n;
	char *s = take(&b, &n);
	const char want[] = "k:a\rb\\cc\\n\nk_x:a b:c \n";
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(s, want, n);
	stomp_buf_free(&b);
}

static void test_encode_connected(void **st)
{
	(void)st;
	struct stomp_buf b = { 0 };
	assert_int_equal(stomp_encode_connected(&b, STOMP_V12, "s:1", "wsbroker/0.1", 10000, 20000), 0);
	size_t n;
	char *s = take(&b, &n);
	const char want[] = "CONNECTED\nversion:1.2\nserver:wsbroker/0.1\nsession:s:1\n"
			    "heart-beat:10000,20000\n\n";
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(s, want, n);
	b.len = 0;
	stomp_encode_connected(&b, STOMP_V10, "s1", "wsbroker/0.1", 5, 5);
	const char want10[] = "CONNECTED\nserver:wsbroker/0.1\nsession:s1\n\n";
	s = take(&b, &n);
	assert_int_equal(n, sizeof(want10));
	assert_memory_equal(s, want10, n);
	stomp_buf_free(&b);
}

static void test_encode_receipt_and_error(void **st)
{
	(void)st;
	struct stomp_buf b = { 0 };
	size_t n;
	char *s;
	stomp_encode_receipt(&b, STOMP_V12, "r:1");
	const char w1[] = "RECEIPT\nreceipt-id:r\\c1\n\n";
	s = take(&b, &n);
	assert_int_equal(n, sizeof(w1));
	assert_memory_equal(s, w1, n);
	b.len = 0;
	stomp_encode_error(&b, STOMP_V12, "bad thing", "r7", "details here");
	const char w2[] = "ERROR\nmessage:bad thing\nreceipt-id:r7\ncontent-type:text/plain\n"
			  "content-length:12\n\ndetails here";
	s = take(&b, &n);
	assert_int_equal(n, sizeof(w2));
	assert_memory_equal(s, w2, n);
	b.len = 0;
	stomp_encode_error(&b, STOMP_V10, "oops", NULL, NULL);
	const char w3[] = "ERROR\nmessage:oops\n\n";
	s = take(&b, &n);
	assert_int_equal(n, sizeof(w3));
	assert_memory_equal(s, w3, n);
	stomp_buf_free(&b);
}

/* What the encoder writes, the parser reads back unchanged. */
static void test_round_trip(void **st)
{
	(void)st;
	const char *vals[] = { "plain", "a:b", "line\nbreak", "back\\slash", "cr\rcr", "", "\\n" };
	for (int v = STOMP_V11; v <= STOMP_V12; v++) {
		struct stomp_buf b = { 0 };
		stomp_encode_command(&b, STOMP_MESSAGE);
		for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
			char name[32];
			snprintf(name, sizeof(name), "h%zu:", i);
			stomp_encode_header_str(&b, (enum stomp_version)v, STOMP_MESSAGE, name, vals[i]);
		}
		stomp_encode_body(&b, "b\0dy", 4);
		struct stomp_parser p;
		stomp_parser_init(&p, &LIM);
		stomp_parser_set_version(&p, (enum stomp_version)v);
		struct stomp_frame f;
		/* no content-length: the body ends at its first NUL */
		assert_int_equal(stomp_parse(&p, b.data, b.len, &f), (int)b.len - 3);
		assert_int_equal(f.cmd, STOMP_MESSAGE);
		assert_int_equal(f.nheaders, sizeof(vals) / sizeof(vals[0]));
		for (size_t i = 0; i < f.nheaders; i++) {
			char name[32];
			snprintf(name, sizeof(name), "h%zu:", i);
			assert_string_equal(f.headers[i].name, name);
			assert_string_equal(f.headers[i].value, vals[i]);
		}
		assert_int_equal(f.body_len, 1);
		stomp_parser_free(&p);
		stomp_buf_free(&b);
	}
}

static void test_strings(void **st)
{
	(void)st;
	for (int e = STOMP_E_NOMEM; e <= STOMP_E_BAD_COMMAND; e++)
		assert_true(strlen(stomp_strerror(e)) > 5);
	assert_string_equal(stomp_command_name(STOMP_UNSUBSCRIBE), "UNSUBSCRIBE");
	assert_string_equal(stomp_version_name(STOMP_V11), "1.1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_send),
		cmocka_unit_test(test_every_command),
		cmocka_unit_test(test_crlf_and_lf),
		cmocka_unit_test(test_content_length_with_nuls),
		cmocka_unit_test(test_content_length_first_wins),
		cmocka_unit_test(test_several_frames_and_heartbeats),
		cmocka_unit_test(test_partial_frames_wait),
		cmocka_unit_test(test_colon_in_value),
		cmocka_unit_test(test_escapes_per_version),
		cmocka_unit_test(test_undefined_escape),
		cmocka_unit_test(test_repeated_header_first_wins),
		cmocka_unit_test(test_bad_command),
		cmocka_unit_test(test_bad_header_lines),
		cmocka_unit_test(test_header_size_limit),
		cmocka_unit_test(test_header_count_limit),
		cmocka_unit_test(test_body_size_limit),
		cmocka_unit_test(test_bad_content_length),
		cmocka_unit_test(test_body_not_terminated),
		cmocka_unit_test(test_large_body_one_byte_at_a_time),
		cmocka_unit_test(test_encode_message_12),
		cmocka_unit_test(test_encode_versions_differ),
		cmocka_unit_test(test_encode_connected),
		cmocka_unit_test(test_encode_receipt_and_error),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
