/* notify: tells a supervisor (systemd's Type=notify) where the daemon is in
 * its life: ready to serve, reloading, stopping. Speaks sd_notify through
 * libsystemd when configure found it (HAVE_SYSTEMD); without it every call
 * compiles to nothing, so callers never test for it. Outside a service
 * (no NOTIFY_SOCKET) the calls do nothing either. Not here: when to call
 * them (server.c knows when the broker is ready). */
#ifndef WSB_NOTIFY_H
#define WSB_NOTIFY_H
#include <stdbool.h>

#ifdef HAVE_SYSTEMD
/* READY=1: every listener bound, the port file written, the store loaded.
 * Also sent after a reload, which systemd waits for after RELOADING=1. */
void notify_ready(void);
/* RELOADING=1: a SIGHUP reload begins; notify_ready() ends it. */
void notify_reloading(void);
/* STOPPING=1: SIGTERM/SIGINT, a graceful stop has begun. */
void notify_stopping(void);
#else
static inline void notify_ready(void) {}
static inline void notify_reloading(void) {}
static inline void notify_stopping(void) {}
#endif

/* Whether this build can notify a supervisor (--version says so). */
static inline bool notify_supported(void)
{
#ifdef HAVE_SYSTEMD
	return true;
#else
	return false;
#endif
}

#endif
