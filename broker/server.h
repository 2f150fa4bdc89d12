/* server: the daemon's outer shell. Parses options, binds the listeners,
 * writes the port file, runs the event loop, handles signals (SIGTERM/SIGINT
 * graceful stop, SIGHUP reload) and tears everything down. Protocols are
 * registered by the caller before server_run, so the same shell runs the
 * real broker (broker/main.c) and test brokers (tests/echo_broker.c). */
#ifndef WSB_SERVER_H
#define WSB_SERVER_H

struct cfg;

/* prepare (may be NULL) adjusts the defaults before the config file and the
 * command line are applied. Returns the process exit code. */
int server_run(int argc, char **argv, void (*prepare)(struct cfg *c));

#endif
