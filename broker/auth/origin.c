#include "origin.h"
#include <string.h>
#include <strings.h>

static bool equal_ci(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

bool origin_match(const char *pattern, const char *origin, size_t len)
{
	const char *star = strstr(pattern, "*.");
	if (!star)
		return equal_ci(pattern, strlen(pattern), origin, len);
	/* Split the origin into "SCHEME://" and the rest (host[:port]). */
	const char *sep = memchr(origin, '/', len);
	size_t scheme_len = 0;
	if (sep && sep > origin && sep[-1] == ':' && (size_t)(sep - origin) + 1 < len &&
	    sep[1] == '/')
		scheme_len = (size_t)(sep - origin) + 2;
	size_t plen = (size_t)(star - pattern);
	if (plen) {   /* the pattern names a scheme: the same one */
		if (plen < 4 || strncmp(star - 3, "://", 3) != 0 ||
		    !equal_ci(pattern, plen, origin, scheme_len))
			return false;
	} else if (!scheme_len) {
		return false;   /* an Origin always has a scheme */
	}
	const char *host = origin + scheme_len;
	size_t hlen = len - scheme_len;
	const char *suffix = star + 1;          /* ".example.com[:port]" */
	size_t slen = strlen(suffix);
	if (hlen <= slen || !equal_ci(host + hlen - slen, slen, suffix, slen))
		return false;
	/* At least one label before the suffix, and no port or path in it. */
	for (size_t i = 0; i < hlen - slen; i++) {
		char ch = host[i];
		if (ch == ':' || ch == '/' || ch == '@' || ch == '*')
			return false;
	}
	return host[0] != '.';
}
