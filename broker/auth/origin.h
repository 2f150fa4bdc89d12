/* origin: does an Origin header value match an `origin` setting.
 *
 * A setting without '*' matches the whole Origin, case-insensitively
 * ("https://app.example.com:8443"). A setting whose host starts with "*."
 * matches every host below that domain, one label or more: with the
 * scheme https, the pattern *.example.com matches the hosts a.example.com
 * and a.b.example.com, not example.com nor evil-example.com. Scheme and
 * port are compared as for a plain setting; a pattern without a scheme
 * matches any scheme. Pure. */
#ifndef WSB_AUTH_ORIGIN_H
#define WSB_AUTH_ORIGIN_H
#include <stdbool.h>
#include <stddef.h>

bool origin_match(const char *pattern, const char *origin, size_t origin_len);

#endif
