/* SPDX-License-Identifier: MIT */
/*
 * The decision: given a client and a raw RCPT TO argument, accept,
 * reject or tempfail, and the reply to give. Everything `rcptgate -t`
 * and the milter share. Knows nothing of libmilter.
 *
 * Lifetimes: struct rg_engine lives for the process (cache, harvest
 * limiter, counters, the current runtime). struct rg_runtime is one
 * configuration with its opened backends: refcounted, replaced whole on
 * reload. A milter connection takes a runtime reference when it starts
 * and keeps it to the end, so the per-RCPT path takes no global lock.
 */
#ifndef RG_POLICY_H
#define RG_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addr.h"
#include "backend.h"
#include "cache.h"
#include "conf.h"
#include "harvest.h"
#include "reply.h"

struct rg_runtime {
	struct rg_conf		 *conf;
	size_t			  nbackends;	/* == conf->nbackends */
	struct rg_backend	**backends;	/* same order as conf->backends */
	uint64_t		  serial;	/* unique per runtime, part of the
						 * cache generation (see rg_decide) */
	int			  refs;		/* atomic */
};

struct rg_engine;

enum rg_action {
	RG_ACT_CONTINUE = 0,	/* recipient exists, or is not ours to check */
	RG_ACT_REJECT,		/* 5xx */
	RG_ACT_TEMPFAIL,	/* 4xx */
	RG_ACT_SHUTDOWN,	/* 421: reply, then the MTA closes the session */
};

struct rg_client {
	struct sockaddr_storage	addr;
	bool			have_addr;	/* false: unknown (e.g. -t) */
	bool			authenticated;	/* {auth_authen} was set */
	const char		*queue_id;	/* NULL or "" if none yet */
	enum rg_reply_form	reply_form;	/* the door's reply form */
	struct rg_harvest_session harvest;	/* per session, zeroed at start */
};

struct rg_verdict {
	enum rg_action	action;
	struct rg_reply	reply;		/* set unless action == CONTINUE, in
					 * the client's reply_form */
	enum rg_reply_form reply_form;
	char		decided_by[RG_NAME_MAX];	/* backend, "cache", or a rule:
							 * "domain", "trusted",
							 * "auth", "always_accept",
							 * "syntax", "harvest" */
	char		reason[64];	/* "found", "unknown", "catch-all",
					 * "stale", "backend failure", ... */
	char		address[RG_PATH_MAX + 1];	/* normalised, or raw if bad */
	bool		checked;	/* a backend or the cache decided */
	uint64_t	delay_ms;	/* tarpit: wait this long before replying */
	char		trace[512];	/* -t -v: what the backends said */
	char		detail[576];	/* log-escaped: why a lookup failed,
					 * for the verdict's log line */
};

/* ---- runtime (runtime.c) ---- */

/*
 * Open every backend of conf (takes its own reference). NULL with err on
 * a configuration error in any backend section.
 */
struct rg_runtime *rg_runtime_new(struct rg_conf *, struct rg_error *);
struct rg_runtime *rg_runtime_ref(struct rg_runtime *);
void	rg_runtime_unref(struct rg_runtime *);	/* NULL allowed */

/* The i-th backend of policy p, in the policy's order. */
static inline struct rg_backend *
rg_runtime_backend(const struct rg_runtime *rt, const struct rg_policy *p,
    size_t i)
{
	return rt->backends[p->backend_idx[i]];
}

/*
 * The MTA's milter timeout that `rcptgate -n` assumes when it checks that
 * deadline + tarpit_max leaves room: Sendmail's default (T=R:10s), the
 * strictest of the common MTAs (Postfix's milter_command_timeout is 30s).
 */
#define RG_MTA_TIMEOUT_MS	10000

/* Postfix's smtpd_policy_service_max_idle default: how long an smtpd
 * keeps an idle policy connection ([postfix_policy] idle_timeout should
 * not be shorter). */
#define RG_POSTFIX_POLICY_MAX_IDLE_MS	300000

/*
 * The `-n` checks on a runtime: deadline vs. the backends' worst case,
 * live checks of each backend. Problems into err, warnings into warn.
 * Returns 0 if usable.
 */
int	rg_runtime_check(struct rg_runtime *, bool live, struct rg_error *err,
	    struct rg_error *warn);

/* ---- engine ---- */

#define RG_ENGINE_NO_HARVEST	0x1	/* -t: no client, no state file */

/* Takes its own reference to rt. NULL with err on failure. */
struct rg_engine *rg_engine_new(struct rg_runtime *rt, int flags,
	    struct rg_error *err);
void	rg_engine_free(struct rg_engine *);

/* The current runtime, with a reference the caller drops. Brief mutex. */
struct rg_runtime *rg_engine_acquire(struct rg_engine *);

/*
 * How many times rg_engine_swap has run: a door that keeps a runtime
 * across many sessions (a policy connection) compares it, lock-free, to
 * know when to acquire the new one.
 */
uint64_t rg_engine_generation(struct rg_engine *);

/*
 * Make rt current (reload): new connections use it; cache sizes and
 * harvest limits follow it; negative cache entries are dropped.
 */
void	rg_engine_swap(struct rg_engine *, struct rg_runtime *rt);

/*
 * Decide one recipient. raw is the RCPT TO argument as the MTA gave it.
 * Order: harvest block; the domain (found leniently even in a malformed
 * address; unchecked domains pass untouched); exempt clients pass
 * untouched; syntax and length (550 5.1.3); always_accept; the cache and
 * the backends. rt may be a runtime that a reload has replaced (a
 * connection keeps the one it started with): its negative answers never
 * reach the connections that run on a newer one.
 * Blocks for backend lookups, up to the policy deadline; never sleeps
 * for a tarpit (v->delay_ms says how long the caller should).
 */
void	rg_decide(struct rg_engine *, struct rg_runtime *, struct rg_client *,
	    const char *raw, bool want_trace, struct rg_verdict *v);

/* After sleeping v->delay_ms (tarpit), release the slot it held. */
void	rg_tarpit_done(struct rg_engine *);

/*
 * The MTA rejected recipient raw itself (SMFIP_RCPT_REJ) with enhanced
 * code status ({rcpt_host}; may be NULL): count it as an unknown
 * recipient for the harvest limits when status is 5.1.1, nothing else.
 */
void	rg_note_mta_reject(struct rg_engine *, struct rg_runtime *,
	    struct rg_client *, const char *raw, const char *status);

/* Log one line for a verdict that is not a plain accept. */
void	rg_verdict_log(const struct rg_client *, const struct rg_verdict *);

/* Counters, for SIGUSR2 and benchmarks. */
struct rg_counters {
	uint64_t	accepted, rejected, tempfailed, blocked, unchecked,
			syntax, backend_failures, stale_accepts;
};
void	rg_engine_counters(struct rg_engine *, struct rg_counters *);
void	rg_engine_log_counters(struct rg_engine *);

/* The engine's cache and limiter, for the operator views (explain.c,
 * the control socket, metrics). harvest is NULL with NO_HARVEST. */
struct rg_cache *rg_engine_cache(struct rg_engine *);
struct rg_harvest *rg_engine_harvest(struct rg_engine *);

#endif
