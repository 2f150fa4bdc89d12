/* stomp: the STOMP 1.0/1.1/1.2 session. It reads a byte stream (raw TCP, or
 * WebSocket messages cut anywhere), cuts frames with stomp_codec, and maps
 * them onto the router: /topic/a.b is router topic a/b (wildcards * and #),
 * /queue/name a router queue. It knows no socket: it answers through conn.h.
 * Files: stomp_proto.c (this protocol object: frames in, dispatch),
 * stomp_send.c (SEND, COMMIT), stomp_sub.c (SUBSCRIBE, MESSAGE, ACK/NACK),
 * stomp_tx.c (open transactions), stomp_dest.c (destination names),
 * stomp_store.c (store writes, receipts after the commit), stomp.c (the
 * connection: CONNECT, heart-beats, ERROR, receipts); stomp_session.h is
 * their shared state and draws which calls which. */
#ifndef WSB_STOMP_H
#define WSB_STOMP_H
#include <stddef.h>
#include <stdint.h>
#include "protocol.h"

extern const struct protocol stomp_protocol;

/* Optional EOLs, then "CONNECT" or "STOMP" and an EOL: 1 mine, 0 need more,
 * -1 not mine. */
int stomp_sniff(const uint8_t *p, size_t n);

#endif
