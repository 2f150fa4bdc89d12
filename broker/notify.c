/* Built only when configure found libsystemd (Makefile.am). */
#include "notify.h"
#include "log.h"
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

/* A failed notification is logged, never fatal: the broker serves clients
 * whether or not its supervisor hears about it, and systemd itself reports
 * a unit that never became ready. */
static void send_state(const char *state)
{
	int rc = sd_notify(0, state);
	if (rc < 0)
		log_warn(NULL, NULL, "sd_notify(%s): %s", state, strerror(-rc));
}

void notify_ready(void)
{
	char msg[64];
	/* MAINPID too: then systemd knows the main process even when a wrapper
	 * started it. */
	snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%ld", (long)getpid());
	send_state(msg);
}

void notify_reloading(void)
{
	send_state("RELOADING=1");
}

void notify_stopping(void)
{
	send_state("STOPPING=1");
}
