/* SPDX-License-Identifier: MIT */
/*
 * Per-backend counters (see backend_stats.h). Slots are claimed once per
 * name under a mutex and never freed; everything else is atomics, so
 * lookups and scrapes never wait on each other beyond the first lookup
 * of a new name.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "backend_stats.h"

const uint64_t rg_bstat_bounds_us[RG_BSTAT_NBUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000,
};

static struct rg_bstat	slots[RG_BSTAT_SLOTS];
static pthread_mutex_t	claim_mu = PTHREAD_MUTEX_INITIALIZER;	/* guards
							 * claiming a slot */

const struct rg_bstat *
rg_bstat_slot(unsigned i)
{
	if (i >= RG_BSTAT_SLOTS || !atomic_load_explicit(&slots[i].used,
	    memory_order_acquire))
		return NULL;
	return &slots[i];
}

const struct rg_bstat *
rg_bstat_find(const char *name)
{
	const struct rg_bstat	*s;
	unsigned		 i;

	for (i = 0; i < RG_BSTAT_SLOTS && (s = rg_bstat_slot(i)) != NULL; i++)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static struct rg_bstat *
claim(const char *name, const char *type)
{
	struct rg_bstat	*s = NULL;
	unsigned	 i;

	pthread_mutex_lock(&claim_mu);
	for (i = 0; i < RG_BSTAT_SLOTS; i++) {
		if (!atomic_load(&slots[i].used)) {
			s = &slots[i];
			(void)snprintf(s->name, sizeof(s->name), "%s", name);
			(void)snprintf(s->type, sizeof(s->type), "%s",
			    type ? type : "");
			atomic_store(&s->up, -1);
			atomic_store(&s->since, (int64_t)time(NULL));
			atomic_store_explicit(&s->used, true,
			    memory_order_release);
			break;
		}
		if (strcmp(slots[i].name, name) == 0) {
			s = &slots[i];
			break;
		}
	}
	pthread_mutex_unlock(&claim_mu);
	return s;
}

void
rg_bstat_note(const char *name, const char *type, int result, uint64_t us)
{
	struct rg_bstat	*s = (struct rg_bstat *)rg_bstat_find(name);
	unsigned	 i;
	int		 up;

	if (s == NULL && (s = claim(name, type)) == NULL)
		return;		/* more names than slots: not counted */
	switch (result) {
	case RG_FOUND:
		atomic_fetch_add_explicit(&s->found, 1, memory_order_relaxed);
		break;
	case RG_NOTFOUND:
		atomic_fetch_add_explicit(&s->notfound, 1,
		    memory_order_relaxed);
		break;
	default:
		atomic_fetch_add_explicit(&s->failures, 1,
		    memory_order_relaxed);
		break;
	}
	for (i = 0; i < RG_BSTAT_NBUCKETS && us > rg_bstat_bounds_us[i]; i++)
		;
	atomic_fetch_add_explicit(&s->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->sum_us, us, memory_order_relaxed);
	up = result == RG_FOUND || result == RG_NOTFOUND;
	if (atomic_exchange(&s->up, up) != up)
		atomic_store(&s->since, (int64_t)time(NULL));
}
