/* auth: decides whether a login may connect. Sessions hand it the
 * credentials their protocol carries (STOMP login/passcode, MQTT
 * username/password); it knows no protocol. Anonymous clients are allowed
 * by default; a users file (cfg users_file) lists accounts. */
#ifndef WSB_AUTH_H
#define WSB_AUTH_H
#include <stddef.h>

struct cfg;

enum auth_result { AUTH_OK = 0, AUTH_DENIED = -1 };

/* Load settings (and the users file if one is configured). Returns 0, or -1
 * with a message in err. Called at start-up and on SIGHUP. */
int auth_configure(const struct cfg *c, char *err, size_t errlen);
/* user may be NULL (anonymous); pass may be NULL. peer is for the log line. */
enum auth_result auth_check(const char *user, const char *pass, size_t pass_len,
			    const char *peer);
void auth_reset(void);

#endif
