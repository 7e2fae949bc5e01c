/* SPDX-License-Identifier: MIT */
/*
 * Decision and connection counters (see opstats.h). A (verdict, by)
 * pair claims a slot once under claim_mu; counting is one atomic add.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "opstats.h"
#include "policy.h"

_Atomic uint64_t rg_opstats_milter_connections;
_Atomic int64_t	 rg_opstats_milter_active;
_Atomic uint64_t rg_opstats_reloads;
_Atomic uint64_t rg_opstats_policy_connections;
_Atomic int64_t	 rg_opstats_policy_active;
_Atomic uint64_t rg_opstats_policy_requests;
_Atomic uint64_t rg_opstats_policy_protocol_errors;

static struct rg_decision_stat	slots[RG_OPSTATS_SLOTS];
static pthread_mutex_t		claim_mu = PTHREAD_MUTEX_INITIALIZER; /* guards
						 * claiming a slot */

const struct rg_decision_stat *
rg_opstats_decision_slot(unsigned i)
{
	if (i >= RG_OPSTATS_SLOTS || !atomic_load_explicit(&slots[i].used,
	    memory_order_acquire))
		return NULL;
	return &slots[i];
}

void
rg_opstats_decision(const char *verdict, const char *by)
{
	struct rg_decision_stat	*s = NULL;
	unsigned		 i;

	if (by == NULL || by[0] == '\0')
		by = "none";

	for (i = 0; i < RG_OPSTATS_SLOTS && rg_opstats_decision_slot(i); i++)
		if (strcmp(slots[i].verdict, verdict) == 0 &&
		    strcmp(slots[i].by, by) == 0) {
			s = &slots[i];
			break;
		}
	if (s == NULL) {
		pthread_mutex_lock(&claim_mu);
		for (i = 0; i < RG_OPSTATS_SLOTS; i++) {
			if (!atomic_load(&slots[i].used)) {
				s = &slots[i];
				(void)snprintf(s->verdict, sizeof(s->verdict),
				    "%s", verdict);
				(void)snprintf(s->by, sizeof(s->by), "%s", by);
				atomic_store_explicit(&s->used, 1,
				    memory_order_release);
				break;
			}
			if (strcmp(slots[i].verdict, verdict) == 0 &&
			    strcmp(slots[i].by, by) == 0) {
				s = &slots[i];
				break;
			}
		}
		pthread_mutex_unlock(&claim_mu);
	}
	if (s != NULL)
		atomic_fetch_add_explicit(&s->n, 1, memory_order_relaxed);
}

const char *
rg_action_word(int action)
{
	switch (action) {
	case RG_ACT_CONTINUE:
		return "accept";
	case RG_ACT_REJECT:
		return "reject";
	case RG_ACT_SHUTDOWN:
		return "shutdown";
	default:
		return "tempfail";
	}
}
