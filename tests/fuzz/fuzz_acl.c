/* Fuzz target for auth/acl.c. The input is an acl_file: besides "does not
 * crash", a file that parses is queried, and the filter algebra's promises
 * are checked on pairs of lines: intersection is symmetric, a valid filter
 * lies within itself, and a filter within another intersects it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "auth/acl.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

/* The same rules as the parser's: '+' and '#' fill a level, '#' is last. */
static int valid_filter(const char *f, size_t n)
{
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (f[i] != '+' && f[i] != '#')
			continue;
		if ((i && f[i - 1] != '/') || (i + 1 < n && f[i + 1] != '/'))
			return 0;
		if (f[i] == '#' && i + 1 != n)
			return 0;
	}
	return 1;
}

static void check_pair(const char *a, size_t an, const char *b, size_t bn)
{
	int ab = acl_filters_intersect(a, an, b, bn);

	CHECK(ab == acl_filters_intersect(b, bn, a, an));
	if (!valid_filter(a, an) || !valid_filter(b, bn))
		return;
	CHECK(acl_filter_within(a, an, a, an));
	if (acl_filter_within(a, an, b, bn))
		CHECK(ab);
}

FUZZ_ENTRY(fuzz_acl)
{
	const char *text = (const char *)data;
	char err[256];
	int code;
	struct acl *a = acl_parse(text, size, "fuzz", &code, err, sizeof(err));

	CHECK(a ? code == ACL_OK : code < 0);
	if (a) {
		static const char *const names[] = {"a/b", "$SYS/x", "devices/c1/t", "#", "a/+"};
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			size_t n = strlen(names[i]);
			(void)acl_check(a, "u", "c1", ACL_TOPIC, names[i], n, ACL_READ);
			(void)acl_check(a, NULL, NULL, ACL_QUEUE, names[i], n, ACL_WRITE);
			(void)acl_check_sub(a, "u", NULL, names[i], n);
		}
		acl_free(a);
	}
	/* the first two lines as filters */
	const char *nl = memchr(text, '\n', size);
	if (nl) {
		size_t an = (size_t)(nl - text), rest = size - an - 1;
		const char *b = nl + 1, *nl2 = memchr(b, '\n', rest);
		check_pair(text, an, b, nl2 ? (size_t)(nl2 - b) : rest);
	}
	return 0;
}
