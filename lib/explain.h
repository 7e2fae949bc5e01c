/* SPDX-License-Identifier: MIT */
/*
 * `rcptgate-ctl explain` and the other operator views of the engine.
 *
 * rg_explain decides one recipient the way rg_decide would and says
 * why, but counts nothing toward the harvest limits or the counters,
 * writes nothing to the cache and never asks for a tarpit: it reads the
 * cache (without counting a hit), checks the client's block, and asks
 * every backend of the policy for each candidate key so the operator
 * sees what each one answers now.
 */
#ifndef RG_EXPLAIN_H
#define RG_EXPLAIN_H

#include "policy.h"

#define RG_EXPLAIN_MAX_ANSWERS	24

struct rg_explain_answer {
	char		backend[RG_NAME_MAX];
	char		key[RG_PATH_MAX + 2];
	char		result[16];	/* rg_result_str */
	char		detail[200];	/* why it failed, log-escaped */
	uint64_t	ms;
};

struct rg_explain {
	char		address[RG_PATH_MAX + 1];	/* normalised or escaped raw */
	const char	*verdict;	/* "accept", "reject", "tempfail" */
	char		decided_by[RG_NAME_MAX];
	char		reason[64];
	const char	*harvest;	/* "blocked", "not blocked", "not checked" */
	const char	*cache;		/* "none", "found", "notfound", "stale",
					 * "expired", "off" */
	char		cache_backend[RG_NAME_MAX];
	uint64_t	cache_age_ms;
	size_t		nanswers;
	struct rg_explain_answer answer[RG_EXPLAIN_MAX_ANSWERS];
};

/*
 * Explain raw (an address) for client (NULL: no client, harvest not
 * checked). Blocks while the backends answer, up to the policy deadline.
 */
void	rg_explain(struct rg_engine *, struct rg_runtime *, const char *raw,
	    const struct sockaddr *client, struct rg_explain *x);

#endif
