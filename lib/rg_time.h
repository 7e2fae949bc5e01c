/* SPDX-License-Identifier: MIT */
/*
 * Monotonic milliseconds, the one clock used for deadlines and TTLs.
 */
#ifndef RG_TIME_H
#define RG_TIME_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in milliseconds. Never blocks. */
uint64_t	rg_now_ms(void);

/* CLOCK_REALTIME in milliseconds: for state that outlives the process
 * (harvest blocks stored on disk or in Redis). */
uint64_t	rg_wall_ms(void);

/* Milliseconds left until deadline (0 if passed). */
uint64_t	rg_ms_left(uint64_t deadline_ms);

/*
 * deadline_ms (an rg_now_ms time) as a CLOCK_MONOTONIC timespec, for
 * pthread_cond_timedwait on a condition variable set to that clock.
 */
void		rg_mono_timespec(uint64_t deadline_ms, struct timespec *ts);

/* Sleep up to ms milliseconds (restarted on EINTR). */
void		rg_sleep_ms(uint64_t ms);

#endif
