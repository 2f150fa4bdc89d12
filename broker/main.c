/* wsbroker: the daemon. The protocols it speaks are registered here; the
 * rest is server_run. `wsbroker passwd` is the users-file tool. */
#include "auth/passwd.h"
#include "mqtt.h"
#include "protocol.h"
#include "server.h"
#include "stomp.h"
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	/* `wsbroker passwd FILE USER` edits a users file and starts nothing. */
	if (argc >= 2 && strcmp(argv[1], "passwd") == 0)
		return passwd_command(argc - 1, argv + 1, stdin, stdout, stderr);
	protocol_register(&stomp_protocol);
	protocol_register(&mqtt_protocol);
	return server_run(argc, argv, NULL);
}
