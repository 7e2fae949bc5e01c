/* SPDX-License-Identifier: MIT */
/*
 * Per-backend lookup counters, a latency histogram and up/down state,
 * for the metrics endpoint and `rcptgate-ctl status`.
 *
 * Kept per backend name for the life of the process (a reload that
 * reopens the backends keeps counting in the same slot), so the
 * Prometheus counters never go back. Writers (rg_backend_lookup) and
 * readers (a scrape) use atomics only: a scrape never waits on a lookup.
 */
#ifndef RG_BACKEND_STATS_H
#define RG_BACKEND_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conf.h"

#define RG_BSTAT_SLOTS		64	/* distinct backend names tracked */
#define RG_BSTAT_NBUCKETS	13	/* + the +Inf bucket */

/* Upper bounds of the latency buckets, in microseconds. */
extern const uint64_t rg_bstat_bounds_us[RG_BSTAT_NBUCKETS];

struct rg_bstat {
	_Atomic bool	 used;		/* set (release) once name/type are */
	char		 name[RG_NAME_MAX];
	char		 type[16];
	_Atomic uint64_t found, notfound, failures;
	_Atomic uint64_t bucket[RG_BSTAT_NBUCKETS + 1];	/* not cumulative */
	_Atomic uint64_t sum_us;
	_Atomic int	 up;		/* 1 until a lookup fails; -1 unknown */
	_Atomic int64_t	 since;		/* wall clock s of the last change */
};

/* CLOCK_MONOTONIC in microseconds, for the histogram. */
static inline uint64_t
rg_bstat_now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

/* Record one lookup of backend name (type) that gave r in us. */
void	rg_bstat_note(const char *name, const char *type, int result,
	    uint64_t us);

/* Slot i (0..RG_BSTAT_SLOTS-1), or NULL if unused. Never blocks. */
const struct rg_bstat *rg_bstat_slot(unsigned i);

/* Slot of name, or NULL. Never blocks. */
const struct rg_bstat *rg_bstat_find(const char *name);

#endif
