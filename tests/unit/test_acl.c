/* acl: the acl_file parser (every error path, with FILE:LINE), the filter
 * algebra behind SUBSCRIBE and delivery, patterns with %u and %c, deny
 * winning over allows, queue rules and sections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "auth/acl.h"

static struct acl *parse(const char *text)
{
	char err[300] = "";
	int code = 99;
	struct acl *a = acl_parse(text, strlen(text), "t.acl", &code, err, sizeof(err));

	if (!a)
		fail_msg("unexpected parse error: %s", err);
	assert_int_equal(code, ACL_OK);
	return a;
}

static void expect_error(const char *text, const char *want)
{
	char err[300] = "";
	int code = 0;
	struct acl *a = acl_parse(text, strlen(text), "t.acl", &code, err, sizeof(err));

	assert_null(a);
	assert_int_equal(code, ACL_ESYNTAX);
	if (strcmp(err, want) != 0)
		fail_msg("error '%s', expected '%s'", err, want);
}

static bool can(const struct acl *a, const char *login, const char *cid, const char *topic,
		enum acl_access acc)
{
	return acl_check(a, login, cid, ACL_TOPIC, topic, strlen(topic), acc);
}

static bool q(const struct acl *a, const char *login, const char *queue, enum acl_access acc)
{
	char key[256];
	int n = acl_queue_key(queue, strlen(queue), key, sizeof(key));

	assert_true(n >= 0);
	return acl_check(a, login, NULL, ACL_QUEUE, key, (size_t)n, acc);
}

static enum acl_sub sub(const struct acl *a, const char *login, const char *cid, const char *f)
{
	return acl_check_sub(a, login, cid, f, strlen(f));
}

static void test_errors(void **st)
{
	(void)st;
	expect_error("topic read a\nbogus a/b\n", "t.acl:2: unknown keyword 'bogus'");
	expect_error("# c\n\nuser\n", "t.acl:3: user without a name");
	expect_error("user  \t \n", "t.acl:1: user without a name");
	expect_error("topic\n", "t.acl:1: missing filter");
	expect_error("topic   \n", "t.acl:1: missing filter");
	expect_error("topic read\n", "t.acl:1: access without a filter after it 'read'");
	expect_error("pattern deny   \n", "t.acl:1: access without a filter after it 'deny'");
	expect_error("topic read a/#/b\n", "t.acl:1: invalid topic filter 'a/#/b'");
	expect_error("topic write a+/b\n", "t.acl:1: invalid topic filter 'a+/b'");
	expect_error("topic write a/b#\n", "t.acl:1: invalid topic filter 'a/b#'");
	expect_error("queue read orders.#.x\n", "t.acl:1: invalid queue name 'orders.#.x'");
	expect_error("queue read a*\n", "t.acl:1: invalid queue name 'a*'");
	const char nul[] = "topic a\n\0topic b\n";
	char err[200];
	int code;

	assert_null(acl_parse(nul, sizeof(nul) - 1, "t.acl", &code, err, sizeof(err)));
	assert_int_equal(code, ACL_ESYNTAX);
	assert_string_equal(err, "t.acl:2: NUL byte in line");
}

static void test_load(void **st)
{
	(void)st;
	char path[] = "/tmp/wsb-acl-XXXXXX", err[300];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	const char text[] = "topic read a/#\nuser bob\ntopic b\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	struct acl *a = acl_load(path, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(acl_rule_count(a), 2);
	acl_free(a);
	FILE *f = fopen(path, "a");
	fputs("topic read x/+y\n", f);
	fclose(f);
	assert_null(acl_load(path, err, sizeof(err)));
	char want[400];
	snprintf(want, sizeof(want), "%s:4: invalid topic filter 'x/+y'", path);
	assert_string_equal(err, want);
	unlink(path);
	assert_null(acl_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file"));
	assert_null(acl_load("/tmp", err, sizeof(err)));
	assert_string_equal(err, "/tmp: not a regular file");
}

static void test_syntax_accepted(void **st)
{
	(void)st;
	struct acl *a = parse("# comment\n   \n\t# indented comment\r\n"
			      "topic a/b\r\n"
			      "  topic   read   c d/e  \n"     /* the rest of the line is the filter */
			      "user alice smith\n"
			      "topic readwrite x\n"
			      "pattern write %u/%c/#\n"
			      "queue deny q\n"
			      "topic read last");            /* no final newline */
	assert_int_equal(acl_rule_count(a), 6);
	assert_true(can(a, NULL, NULL, "a/b", ACL_READ));
	assert_true(can(a, NULL, NULL, "a/b", ACL_WRITE));   /* omitted access = readwrite */
	assert_true(can(a, NULL, NULL, "c d/e", ACL_READ));
	assert_false(can(a, NULL, NULL, "c d/e", ACL_WRITE));
	assert_true(can(a, "alice smith", NULL, "x", ACL_WRITE));
	assert_true(can(a, "alice smith", NULL, "last", ACL_READ));
	acl_free(a);
	a = parse("");
	assert_int_equal(acl_rule_count(a), 0);
	assert_false(can(a, NULL, NULL, "a", ACL_READ));   /* an empty file allows nothing */
	acl_free(a);
}

static void test_no_acl_allows_all(void **st)
{
	(void)st;
	assert_true(can(NULL, NULL, NULL, "any/thing", ACL_WRITE));
	assert_int_equal(sub(NULL, "u", "c", "#"), ACL_SUB_ALL);
	assert_int_equal(acl_rule_count(NULL), 0);
	acl_free(NULL);
}

static void test_sections(void **st)
{
	(void)st;
	struct acl *a = parse("topic read public/#\n"
			      "user alice\n"
			      "topic readwrite alice/#\n"
			      "topic read public/news\n"
			      "user bob\n"
			      "topic write bob/out\n");
	/* anonymous: only the lines before the first user */
	assert_true(can(a, NULL, NULL, "public/x", ACL_READ));
	assert_false(can(a, NULL, NULL, "public/x", ACL_WRITE));
	assert_false(can(a, NULL, NULL, "alice/x", ACL_READ));
	/* a user gets its own section only, not the anonymous one */
	assert_true(can(a, "alice", NULL, "alice/a/b", ACL_WRITE));
	assert_true(can(a, "alice", NULL, "public/news", ACL_READ));
	assert_false(can(a, "alice", NULL, "public/other", ACL_READ));
	assert_false(can(a, "alice", NULL, "bob/out", ACL_WRITE));
	assert_true(can(a, "bob", NULL, "bob/out", ACL_WRITE));
	assert_false(can(a, "bob", NULL, "bob/out", ACL_READ));
	assert_false(can(a, "carol", NULL, "public/x", ACL_READ));   /* no section: nothing */
	acl_free(a);
}

static void test_deny_wins(void **st)
{
	(void)st;
	struct acl *a = parse("user u\n"
			      "topic read a/#\n"
			      "topic deny a/secret\n"
			      "topic readwrite a/secret\n"   /* after the deny: still denied */
			      "pattern deny +/private/#\n");
	assert_true(can(a, "u", NULL, "a/b", ACL_READ));
	assert_false(can(a, "u", NULL, "a/secret", ACL_READ));
	assert_false(can(a, "u", NULL, "a/secret", ACL_WRITE));
	assert_false(can(a, "u", NULL, "a/private/x", ACL_READ));
	assert_true(can(a, "u", NULL, "a/secret/deeper", ACL_READ));
	acl_free(a);
}

static void test_patterns(void **st)
{
	(void)st;
	struct acl *a = parse("pattern readwrite devices/%c/#\n"
			      "pattern read users/%u/inbox\n"
			      "pattern write log/%u/%c\n"
			      "user admin\n"
			      "topic read devices/#\n");
	/* patterns apply to everyone, in or out of a user section */
	assert_true(can(a, NULL, "dev1", "devices/dev1/temp", ACL_WRITE));
	assert_false(can(a, NULL, "dev1", "devices/dev2/temp", ACL_READ));
	assert_true(can(a, "bob", "dev2", "devices/dev2/temp", ACL_READ));
	assert_true(can(a, "bob", "x", "users/bob/inbox", ACL_READ));
	assert_false(can(a, "bob", "x", "users/eve/inbox", ACL_READ));
	assert_true(can(a, "bob", "c7", "log/bob/c7", ACL_WRITE));
	assert_false(can(a, "bob", "c7", "log/bob/c8", ACL_WRITE));
	/* %u for an anonymous client, %c without an id: the pattern does not apply */
	assert_false(can(a, NULL, "x", "users//inbox", ACL_READ));
	assert_false(can(a, NULL, NULL, "devices//t", ACL_READ));
	/* a value that would widen the rule does not get substituted */
	assert_false(can(a, NULL, "#", "devices/anything/t", ACL_READ));
	assert_false(can(a, NULL, "+", "devices/+/t", ACL_READ));
	assert_false(can(a, NULL, "a/b", "devices/a/b/t", ACL_READ));
	assert_true(can(a, "admin", "any", "devices/dev2/t", ACL_READ));
	assert_int_equal(sub(a, NULL, "dev1", "devices/dev1/#"), ACL_SUB_ALL);
	assert_int_equal(sub(a, NULL, "dev1", "devices/+/temp"), ACL_SUB_CHECK);
	assert_int_equal(sub(a, NULL, "dev1", "devices/dev2/#"), ACL_SUB_DENIED);
	acl_free(a);
	/* a deny pattern that cannot be substituted safely fails closed */
	a = parse("topic readwrite #\npattern deny secret/%c\n");
	assert_true(can(a, NULL, "ok", "x", ACL_READ));
	assert_false(can(a, NULL, "bad/id", "x", ACL_READ));
	assert_int_equal(sub(a, NULL, "bad+id", "x"), ACL_SUB_DENIED);
	assert_true(can(a, NULL, NULL, "x", ACL_READ));   /* no id: the pattern does not apply */
	acl_free(a);
	/* a substitution that makes the filter too long applies to nothing */
	char id[1100];
	memset(id, 'x', sizeof(id) - 1);
	id[sizeof(id) - 1] = 0;
	a = parse("pattern read d/%c\n");
	assert_false(can(a, NULL, id, "d/x", ACL_READ));
	acl_free(a);
}

static void test_queues(void **st)
{
	(void)st;
	struct acl *a = parse("queue read jobs.*\n"
			      "queue write jobs.in\n"
			      "queue readwrite work.#\n"
			      "queue deny work.secret\n"
			      "topic readwrite jobs/#\n");
	assert_true(q(a, NULL, "jobs.a", ACL_READ));
	assert_false(q(a, NULL, "jobs.a.b", ACL_READ));
	assert_false(q(a, NULL, "jobs.a", ACL_WRITE));
	assert_true(q(a, NULL, "jobs.in", ACL_WRITE));
	assert_true(q(a, NULL, "work", ACL_WRITE));        /* '#' takes the parent too */
	assert_true(q(a, NULL, "work.x.y", ACL_READ));
	assert_false(q(a, NULL, "work.secret", ACL_READ));
	assert_false(q(a, NULL, "other", ACL_READ));
	/* topic and queue rules are apart */
	assert_false(can(a, NULL, NULL, "work/x", ACL_READ));
	assert_false(q(a, NULL, "jobs.x.y", ACL_WRITE));
	char small[4];
	assert_int_equal(acl_queue_key("abcd", 4, small, sizeof(small)), -1);
	char key[16];
	assert_int_equal(acl_queue_key("a.b/c*", 6, key, sizeof(key)), 6);
	assert_string_equal(key, "a/b.c+");
	acl_free(a);
}

static void test_topic_mapping(void **st)
{
	(void)st;
	/* STOMP /topic/a.b is checked as a/b: the callers pass router form */
	struct acl *a = parse("topic read a/b\n");
	assert_true(can(a, NULL, NULL, "a/b", ACL_READ));
	assert_false(can(a, NULL, NULL, "a.b", ACL_READ));
	acl_free(a);
}

static bool inter(const char *x, const char *y)
{
	bool r = acl_filters_intersect(x, strlen(x), y, strlen(y));

	assert_int_equal(r, acl_filters_intersect(y, strlen(y), x, strlen(x)));   /* symmetric */
	return r;
}

static bool within(const char *x, const char *y)
{
	return acl_filter_within(x, strlen(x), y, strlen(y));
}

static void test_algebra(void **st)
{
	(void)st;
	assert_true(inter("#", "a/b"));
	assert_true(inter("a/#", "a"));
	assert_true(inter("a/+", "+/b"));
	assert_true(inter("a/+/c", "a/b/#"));
	assert_true(inter("+", "a"));
	assert_true(inter("a//b", "a/+/b"));
	assert_false(inter("a/+", "a"));
	assert_false(inter("a/b", "a/c"));
	assert_false(inter("a/b/c", "a/b"));
	assert_false(inter("#", "$SYS/x"));
	assert_false(inter("+/x", "$SYS/x"));
	assert_true(inter("$SYS/#", "$SYS/x"));
	assert_true(inter("#", "+/x"));

	assert_true(within("a/b", "a/#"));
	assert_true(within("a", "a/#"));
	assert_true(within("a/#", "a/#"));
	assert_true(within("a/+/c", "a/#"));
	assert_true(within("a/+", "+/+"));
	assert_true(within("a/b", "a/b"));
	assert_true(within("#", "#"));
	assert_false(within("#", "a/#"));
	assert_false(within("a/#", "a/+"));
	assert_false(within("a/+", "a/b"));
	assert_false(within("a/b/c", "a/b"));
	assert_false(within("a/b", "a/b/c"));
	assert_false(within("a", "a/+"));
	assert_false(within("$SYS/x", "#"));
	assert_false(within("$SYS/x", "+/x"));
	assert_true(within("$SYS/x", "$SYS/#"));
	assert_true(within("+/x", "#"));
}

/* The issue's example: `#` with read on a/# and deny on a/secret. */
static void test_subscribe_verdicts(void **st)
{
	(void)st;
	struct acl *a = parse("user u\n"
			      "topic read a/#\n"
			      "topic deny a/secret\n"
			      "topic write w/#\n"
			      "topic read b/+\n");
	assert_int_equal(sub(a, "u", NULL, "#"), ACL_SUB_CHECK);
	assert_int_equal(sub(a, "u", NULL, "a/#"), ACL_SUB_CHECK);       /* the deny intersects */
	assert_int_equal(sub(a, "u", NULL, "a/public/#"), ACL_SUB_ALL);
	assert_int_equal(sub(a, "u", NULL, "a/+/x"), ACL_SUB_ALL);
	assert_int_equal(sub(a, "u", NULL, "a/secret"), ACL_SUB_DENIED);
	assert_int_equal(sub(a, "u", NULL, "w/#"), ACL_SUB_DENIED);       /* write only */
	assert_int_equal(sub(a, "u", NULL, "c/#"), ACL_SUB_DENIED);
	assert_int_equal(sub(a, "u", NULL, "b/x"), ACL_SUB_ALL);
	assert_int_equal(sub(a, "u", NULL, "b/#"), ACL_SUB_CHECK);
	assert_int_equal(sub(a, NULL, NULL, "#"), ACL_SUB_DENIED);       /* anonymous: nothing */
	assert_int_equal(sub(a, "u", NULL, "$SYS/#"), ACL_SUB_DENIED);
	acl_free(a);
}

/* Every prefix of a valid file parses or fails cleanly, never crashes. */
static void test_prefixes(void **st)
{
	(void)st;
	const char *text = "topic read a/#\nuser bob\npattern write %u/%c\nqueue deny x.*\n";
	size_t n = strlen(text);

	for (size_t i = 0; i <= n; i++) {
		char err[200];
		int code;
		struct acl *a = acl_parse(text, i, "p", &code, err, sizeof(err));

		assert_true(a != NULL || code == ACL_ESYNTAX);
		acl_free(a);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_syntax_accepted),
		cmocka_unit_test(test_no_acl_allows_all),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_deny_wins),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_queues),
		cmocka_unit_test(test_topic_mapping),
		cmocka_unit_test(test_algebra),
		cmocka_unit_test(test_subscribe_verdicts),
		cmocka_unit_test(test_prefixes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
