/* clock: the one source of time. Everything that measures deadlines
 * (keepalive, heart-beats, handshake timeouts) asks clock_now_ms(), so tests
 * can replace the source and step time by hand. */
#ifndef WSB_CLOCK_H
#define WSB_CLOCK_H
#include <stdint.h>

/* Monotonic milliseconds. */
uint64_t clock_now_ms(void);
/* Wall-clock milliseconds since the epoch (timestamps in logs and frames). */
uint64_t clock_wall_ms(void);
/* Replace the monotonic source (NULL restores the real clock). */
void clock_set_source(uint64_t (*fn)(void));

#endif
