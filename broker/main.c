/* wsbroker: the daemon. The protocols it speaks are registered here; the
 * rest is server_run. */
#include "mqtt.h"
#include "protocol.h"
#include "server.h"
#include "stomp.h"

int main(int argc, char **argv)
{
	protocol_register(&stomp_protocol);
	protocol_register(&mqtt_protocol);
	return server_run(argc, argv, NULL);
}
