/* SPDX-License-Identifier: MIT */
/*
 * rg_explain: the live decision for one recipient, side-effect free (see
 * explain.h). Mirrors rg_decide's order; a change there belongs here
 * too (test/integration/t_control.sh compares the two on real answers).
 * No lock of its own; the cache's shard lock is held only for a peek.
 */
#include <stdio.h>
#include <string.h>

#include "explain.h"
#include "log.h"
#include "rg_time.h"

static void
set(struct rg_explain *x, const char *verdict, const char *by,
    const char *reason)
{
	x->verdict = verdict;
	(void)snprintf(x->decided_by, sizeof(x->decided_by), "%s", by);
	(void)snprintf(x->reason, sizeof(x->reason), "%s", reason);
}

static const char *
cache_word(enum rg_cache_view v)
{
	static const char *const w[] = { "none", "found", "notfound", "stale",
		"expired" };

	return w[v];
}

/* Ask every backend for every candidate key; found if any found. */
static enum rg_result
ask_all(struct rg_runtime *rt, const struct rg_policy *p,
    const struct rg_addr *a, struct rg_explain *x, char *first_found,
    size_t fflen)
{
	char		 nosub[RG_PATH_MAX + 1], catchall[RG_DOMAIN_MAX + 2];
	char		 locals[3][RG_PATH_MAX + 1];
	const char	*keys[3];
	size_t		 n = 0, i, k;
	bool		 found = false, failed = false;
	uint64_t	 deadline = rg_now_ms() + p->deadline_ms;

	keys[n] = a->address;
	(void)snprintf(locals[n++], sizeof(locals[0]), "%s", a->local);
	if (p->subaddress_delimiter[0] != '\0' && rg_addr_strip_subaddress(a,
	    p->subaddress_delimiter, nosub, sizeof(nosub))) {
		char	*at = strrchr(nosub, '@');

		keys[n] = nosub;
		(void)snprintf(locals[n++], sizeof(locals[0]), "%.*s",
		    (int)(at ? at - nosub : 0), nosub);
	}
	(void)snprintf(catchall, sizeof(catchall), "@%s", a->domain);
	keys[n] = catchall;
	locals[n++][0] = '\0';

	for (i = 0; i < p->backends.n; i++) {
		struct rg_backend *b = rg_runtime_backend(rt, p, i);

		for (k = 0; k < n && x->nanswers < RG_EXPLAIN_MAX_ANSWERS;
		    k++) {
			struct rg_explain_answer *an = &x->answer[x->nanswers++];
			struct rg_query	q = { keys[k], locals[k], a->domain,
					    deadline, NULL, 0 };
			struct rg_error	err;
			enum rg_result	r;
			uint64_t	t0 = rg_now_ms();

			rg_error_clear(&err);
			r = rg_backend_lookup(b, &q, &err);
			(void)snprintf(an->backend, sizeof(an->backend), "%s",
			    b->name);
			rg_log_escape(an->key, sizeof(an->key), keys[k]);
			(void)snprintf(an->result, sizeof(an->result), "%s",
			    rg_result_str(r));
			rg_log_escape(an->detail, sizeof(an->detail), err.msg);
			an->ms = rg_now_ms() - t0;
			if (r == RG_FOUND && !found) {
				found = true;
				(void)snprintf(first_found, fflen, "%s",
				    b->name);
			} else if (r != RG_FOUND && r != RG_NOTFOUND)
				failed = true;
		}
	}
	return found ? RG_FOUND : failed ? RG_TEMPFAIL : RG_NOTFOUND;
}

static void
explain_checked(struct rg_engine *e, struct rg_runtime *rt,
    const struct rg_policy *p, const struct rg_addr *a, struct rg_explain *x)
{
	enum rg_cache_view	cv;
	enum rg_result		r;
	char			by[RG_NAME_MAX] = "";

	cv = rg_cache_inspect(rg_engine_cache(e), a->address, rg_now_ms(),
	    x->cache_backend, &x->cache_age_ms);
	x->cache = rt->conf->cache_size == 0 ? "off" : cache_word(cv);
	r = ask_all(rt, p, a, x, by, sizeof(by));
	if (cv == RG_CACHE_VIEW_FOUND)
		set(x, "accept", "cache", "found");
	else if (cv == RG_CACHE_VIEW_NOTFOUND)
		set(x, "reject", "cache", "unknown");
	else if (r == RG_FOUND)
		set(x, "accept", by, "found");
	else if (r == RG_NOTFOUND)
		set(x, "reject", p->backends.n ? rg_runtime_backend(rt, p,
		    p->backends.n - 1)->name : "policy", "unknown");
	else if (cv == RG_CACHE_VIEW_STALE && rt->conf->stale_ttl_ms > 0)
		set(x, "accept", x->cache_backend, "stale");
	else if (p->on_backend_failure == RG_FAILURE_ACCEPT)
		set(x, "accept", "policy", "backend failure, accepted");
	else
		set(x, "tempfail", "policy", "backend failure");
}

static bool
always_accepted(const struct rg_policy *p, const struct rg_addr *a)
{
	char	nosub[RG_PATH_MAX + 1], *at;

	if (rg_list_contains_ci(&p->always_accept, a->local))
		return true;
	if (p->subaddress_delimiter[0] != '\0' && rg_addr_strip_subaddress(a,
	    p->subaddress_delimiter, nosub, sizeof(nosub)) &&
	    (at = strrchr(nosub, '@')) != NULL) {
		*at = '\0';
		return rg_list_contains_ci(&p->always_accept, nosub);
	}
	return false;
}

void
rg_explain(struct rg_engine *e, struct rg_runtime *rt, const char *raw,
    const struct sockaddr *client, struct rg_explain *x)
{
	const struct rg_conf	*c = rt->conf;
	const struct rg_policy	*p;
	struct rg_harvest_session hs;
	struct rg_addr		 a;
	enum rg_addr_status	 st;
	char			 lenient[RG_DOMAIN_MAX + 1];
	const char		*domain;

	memset(x, 0, sizeof(*x));
	x->cache = "not consulted";
	x->harvest = "not checked";
	st = rg_addr_parse(raw, &a);
	rg_log_escape(x->address, sizeof(x->address),
	    st == RG_ADDR_OK ? a.address : raw);
	domain = a.domain;
	if (st != RG_ADDR_OK) {
		(void)rg_addr_domain_of(raw, lenient);
		domain = lenient;
	}
	p = domain[0] != '\0' ? rg_conf_policy_for(c, domain) : NULL;
	if (client != NULL && rg_engine_harvest(e) != NULL &&
	    !(c->policy.trusted_networks.n > 0 &&
	    rg_netlist_match(&c->policy.trusted_networks, client))) {
		/* a throwaway session: checking counts nothing */
		memset(&hs, 0, sizeof(hs));
		x->harvest = rg_harvest_check(rg_engine_harvest(e), client,
		    &hs, rg_now_ms()) == RG_HARVEST_BLOCKED ? "blocked" :
		    "not blocked";
		if (strcmp(x->harvest, "blocked") == 0 &&
		    !(c->harvest_block_allows_postmaster && st == RG_ADDR_OK &&
		    strcmp(a.local, "postmaster") == 0)) {
			set(x, c->harvest_action == RG_HARVEST_REJECT ?
			    "reject" : "tempfail", "harvest", "blocked");
			return;
		}
	}
	if (p == NULL) {
		set(x, "accept", "domain", domain[0] ? "not checked" :
		    "unqualified");
		return;
	}
	if (client != NULL && p->trusted_networks.n > 0 &&
	    rg_netlist_match(&p->trusted_networks, client)) {
		set(x, "accept", "trusted", "client not checked");
		return;
	}
	if (st != RG_ADDR_OK) {
		set(x, "reject", "syntax", rg_addr_status_str(st));
		return;
	}
	if (always_accepted(p, &a)) {
		set(x, "accept", "always_accept", "found");
		return;
	}
	explain_checked(e, rt, p, &a, x);
}
