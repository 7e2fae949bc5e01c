/* SPDX-License-Identifier: MIT */
/*
 * The monotonic millisecond clock. Stateless, thread-safe.
 */
#include <errno.h>
#include <time.h>

#include "rg_time.h"

static uint64_t
clock_ms(clockid_t id)
{
	struct timespec	ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
rg_now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

uint64_t
rg_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

uint64_t
rg_ms_left(uint64_t deadline_ms)
{
	uint64_t	now = rg_now_ms();

	return deadline_ms > now ? deadline_ms - now : 0;
}

void
rg_mono_timespec(uint64_t deadline_ms, struct timespec *ts)
{
	/* exact: rg_now_ms is this clock in whole milliseconds */
	ts->tv_sec = (time_t)(deadline_ms / 1000);
	ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

void
rg_sleep_ms(uint64_t ms)
{
	struct timespec	ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}
