#include "clock.h"
#include <time.h>

static uint64_t real_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t (*now_source)(void) = real_now_ms;

uint64_t clock_now_ms(void)
{
	return now_source();
}

uint64_t clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void clock_set_source(uint64_t (*fn)(void))
{
	now_source = fn ? fn : real_now_ms;
}
