/* auth: decides whether a login may connect. Sessions hand it the
 * credentials their protocol carries (STOMP login/passcode, MQTT
 * username/password); it knows no protocol. A users file (cfg users_file,
 * entries as auth/passwd.h describes) lists accounts. Anonymous clients are
 * allowed by default only while every listener is on loopback (the rule is
 * auth_configure's). Failed logins are counted per address (auth/backoff.h)
 * and the caller holds each refusal for the delay auth_check gives. */
#ifndef WSB_AUTH_H
#define WSB_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg;

enum auth_result { AUTH_OK = 0, AUTH_DENIED = -1 };

/* Load settings (and the users file if one is configured, with a warning
 * per plain-text entry). Refuses (-1, the reason in err) a configuration
 * that listens beyond loopback with neither a users_file nor an explicit
 * `allow_anonymous true`. Called at start-up and on SIGHUP; on failure the
 * previous settings stay. */
int auth_configure(const struct cfg *c, char *err, size_t errlen);
/* user may be NULL (anonymous); pass may be NULL. peer ("ip:port") names
 * the address for the failure count and the log line. A refusal is logged
 * once, here, and *delay_ms (may be NULL) says how long the caller should
 * hold it before answering; an acceptance always has 0. */
enum auth_result auth_check(const char *user, const char *pass, size_t pass_len,
			    const char *peer, uint64_t *delay_ms);
/* Whether the address is on loopback (127.0.0.0/8, ::1, ::ffff:127.x). */
bool auth_addr_is_loopback(const char *addr);
void auth_reset(void);

#endif
