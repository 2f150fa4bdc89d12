/* Unit tests for broker/auth: users-file entries (PBKDF2 and plain),
 * the failed-login backoff table, and Origin patterns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "auth/backoff.h"
#include "auth/origin.h"
#include "auth/passwd.h"

static void test_make_and_verify(void **st)
{
	(void)st;
	char line[PASSWD_MAX_LINE], line2[PASSWD_MAX_LINE];
	assert_int_equal(passwd_make_line("alice", "s3cret", 6, 1000, line, sizeof(line)), 0);
	assert_memory_equal(line, "alice:$pbkdf2-sha512$1000$", 26);
	struct passwd_entry e;
	const char *why = NULL;
	assert_int_equal(passwd_parse_line(line, &e, &why), 1);
	assert_string_equal(e.user, "alice");
	assert_false(e.plain);
	assert_int_equal(e.iter, 1000);
	assert_int_equal(e.salt_len, PASSWD_SALT_LEN);
	assert_true(passwd_verify(&e, "s3cret", 6));
	assert_false(passwd_verify(&e, "s3cre", 5));
	assert_false(passwd_verify(&e, "s3cret!", 7));
	assert_false(passwd_verify(&e, "S3cret", 6));
	assert_false(passwd_verify(&e, NULL, 0));
	passwd_entry_clear(&e);
	/* A random salt: the same password never gives the same entry. */
	assert_int_equal(passwd_make_line("alice", "s3cret", 6, 1000, line2, sizeof(line2)), 0);
	assert_string_not_equal(line, line2);
	/* Trailing newline and spaces are not part of the entry. */
	strcat(line2, " \r\n");
	assert_int_equal(passwd_parse_line(line2, &e, &why), 1);
	assert_true(passwd_verify(&e, "s3cret", 6));
	passwd_entry_clear(&e);
}

/* An entry made outside wsbroker, so that the format is not only read
 * back by its own writer: PBKDF2-HMAC-SHA512("password", salt "saltsalt",
 * 1000 iterations) from Python's hashlib. */
#define KNOWN_HASH "Q6v4xwJ8a9nWPp2BeEoAYYhHSo2xRmPWART17vTpSxt2q6iNp7BOozW557qqa95eNjUO4gKs0CyvJbYGGku1tA=="
static void test_known_vector(void **st)
{
	(void)st;
	/* /usr/bin/python3 -c "import hashlib,base64;print(base64.b64encode(hashlib.pbkdf2_hmac(
	 * 'sha512',b'password',b'saltsalt',1000)).decode())" */
	const char *line = "bob:$pbkdf2-sha512$1000$c2FsdHNhbHQ=$"
			   KNOWN_HASH;
	struct passwd_entry e;
	const char *why = NULL;
	assert_int_equal(passwd_parse_line(line, &e, &why), 1);
	assert_int_equal(e.salt_len, 8);
	assert_true(passwd_verify(&e, "password", 8));
	assert_false(passwd_verify(&e, "passwore", 8));
	passwd_entry_clear(&e);
}

static void test_plain_and_comments(void **st)
{
	(void)st;
	struct passwd_entry e;
	const char *why = NULL;
	assert_int_equal(passwd_parse_line("# a comment", &e, &why), 0);
	assert_int_equal(passwd_parse_line("   \t", &e, &why), 0);
	assert_int_equal(passwd_parse_line("", &e, &why), 0);
	assert_int_equal(passwd_parse_line("carol two words\n", &e, &why), 1);
	assert_true(e.plain);
	assert_string_equal(e.user, "carol");
	assert_true(passwd_verify(&e, "two words", 9));
	assert_false(passwd_verify(&e, "two word", 8));
	passwd_entry_clear(&e);
}

static void test_malformed(void **st)
{
	(void)st;
	static const char *const bad[] = {
		"lonely",
		"u:$md5$1000$c2FsdHNhbHQ=$AAAA",
		"u:$pbkdf2-sha512$abc$c2FsdHNhbHQ=$AAAA",
		"u:$pbkdf2-sha512$999$c2FsdHNhbHQ=$" KNOWN_HASH,          /* too few iterations */
		"u:$pbkdf2-sha512$99999999999$c2FsdHNhbHQ=$" KNOWN_HASH,
		"u:$pbkdf2-sha512$1000$c2FsdA==$" KNOWN_HASH,              /* 4-byte salt */
		"u:$pbkdf2-sha512$1000$c2FsdHNhbHQ=$AAAA",                 /* short hash */
		"u:$pbkdf2-sha512$1000$c2FsdHNhbHQ=",
		"u:$pbkdf2-sha512$1000$!!!!$" KNOWN_HASH,
		":$pbkdf2-sha512$1000$c2FsdHNhbHQ=$" KNOWN_HASH,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct passwd_entry e;
		const char *why = NULL;
		if (passwd_parse_line(bad[i], &e, &why) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(why);
	}
	assert_false(passwd_user_valid(""));
	assert_false(passwd_user_valid("a:b"));
	assert_false(passwd_user_valid("a b"));
	assert_false(passwd_user_valid("#a"));
	assert_true(passwd_user_valid("device-17@fleet"));
}

static void test_backoff_doubles_to_max(void **st)
{
	(void)st;
	struct auth_backoff *b = auth_backoff_new(100, 1000, 60000, 8);
	uint32_t n;
	uint64_t t = 5000;
	assert_int_equal(auth_backoff_fail(b, "10.0.0.1", t, &n), 100);
	assert_int_equal(n, 1);
	assert_int_equal(auth_backoff_fail(b, "10.0.0.1", t + 1, &n), 200);
	assert_int_equal(auth_backoff_fail(b, "10.0.0.1", t + 2, &n), 400);
	assert_int_equal(auth_backoff_fail(b, "10.0.0.1", t + 3, &n), 800);
	assert_int_equal(auth_backoff_fail(b, "10.0.0.1", t + 4, &n), 1000);
	for (int i = 0; i < 100; i++)   /* no overflow however many */
		assert_int_equal(auth_backoff_fail(b, "10.0.0.1", t + 5, NULL), 1000);
	/* Another address has its own count. */
	assert_int_equal(auth_backoff_fail(b, "10.0.0.2", t + 6, &n), 100);
	/* A success forgets the address; the next failure starts again. */
	auth_backoff_success(b, "10.0.0.1");
	assert_int_equal(auth_backoff_size(b), 1);
	assert_int_equal(auth_backoff_fail(b, "10.0.0.1", t + 7, &n), 100);
	assert_int_equal(n, 1);
	auth_backoff_free(b);
}

static void test_backoff_quiet_reset(void **st)
{
	(void)st;
	struct auth_backoff *b = auth_backoff_new(100, 10000, 60000, 8);
	assert_int_equal(auth_backoff_fail(b, "a", 0, NULL), 100);
	assert_int_equal(auth_backoff_fail(b, "a", 59999, NULL), 200);
	/* 60 s after the last failure: from the start. */
	assert_int_equal(auth_backoff_fail(b, "a", 59999 + 60000, NULL), 100);
	auth_backoff_free(b);
}

static void test_backoff_bounded(void **st)
{
	(void)st;
	struct auth_backoff *b = auth_backoff_new(100, 10000, 60000, 3);
	char addr[16];
	for (int i = 0; i < 200; i++) {
		snprintf(addr, sizeof(addr), "10.0.0.%d", i);
		auth_backoff_fail(b, addr, (uint64_t)i, NULL);
		assert_true(auth_backoff_size(b) <= 3);
	}
	/* The newest stayed, the oldest went. */
	assert_int_equal(auth_backoff_fail(b, "10.0.0.199", 300, NULL), 200);
	assert_int_equal(auth_backoff_fail(b, "10.0.0.0", 300, NULL), 100);
	/* Shrinking the bound drops the oldest. */
	auth_backoff_set(b, 100, 10000, 60000, 1);
	assert_int_equal(auth_backoff_size(b), 1);
	/* 0 turns the delay off. */
	auth_backoff_set(b, 0, 0, 60000, 1);
	assert_int_equal(auth_backoff_fail(b, "x", 400, NULL), 0);
	assert_int_equal(auth_backoff_fail(b, "x", 401, NULL), 0);
	auth_backoff_free(b);
}

#define M(p, o) origin_match(p, o, strlen(o))
static void test_origin(void **st)
{
	(void)st;
	/* Exact entries, case-insensitive, as before. */
	assert_true(M("https://app.example.com", "https://app.example.com"));
	assert_true(M("https://app.example.com", "HTTPS://APP.EXAMPLE.COM"));
	assert_false(M("https://app.example.com", "https://app.example.com:8443"));
	assert_false(M("https://app.example.com", "http://app.example.com"));
	/* Patterns: one label or more, never the domain itself. */
	assert_true(M("https://*.example.com", "https://a.example.com"));
	assert_true(M("https://*.example.com", "https://a.b.example.com"));
	assert_false(M("https://*.example.com", "https://example.com"));
	assert_false(M("https://*.example.com", "https://.example.com"));
	assert_false(M("https://*.example.com", "https://evil-example.com"));
	assert_false(M("https://*.example.com", "https://a.example.com.evil.org"));
	assert_false(M("https://*.example.com", "http://a.example.com"));
	assert_false(M("https://*.example.com", "https://a.example.com:8443"));
	assert_false(M("https://*.example.com", "https://user@a.example.com"));
	assert_true(M("https://*.example.com:8443", "https://a.example.com:8443"));
	assert_false(M("https://*.example.com:8443", "https://a.example.com"));
	/* Without a scheme: any scheme, the port as written. */
	assert_true(M("*.example.com", "http://a.example.com"));
	assert_true(M("*.example.com", "https://x.y.example.com"));
	assert_false(M("*.example.com", "https://example.com"));
	assert_false(M("*.example.com", "a.example.com"));
	assert_false(M("*.example.com", "null"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_make_and_verify),
		cmocka_unit_test(test_known_vector),
		cmocka_unit_test(test_plain_and_comments),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_backoff_doubles_to_max),
		cmocka_unit_test(test_backoff_quiet_reset),
		cmocka_unit_test(test_backoff_bounded),
		cmocka_unit_test(test_origin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
