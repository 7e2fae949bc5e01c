/* SPDX-License-Identifier: MIT */
/*
 * The decision for one recipient: exemptions, harvest block, address
 * syntax, domain policy, always_accept, then the cache and the backends
 * in order, and the reply for the outcome (README's reply table).
 * Runtimes (a configuration with its opened backends) are in runtime.c.
 *
 * Must not: know libmilter, sleep for a tarpit (the caller does), cache
 * a failure, or turn a backend failure into a reject.
 *
 * Locking: the engine's mutex guards only its current-runtime pointer;
 * a decision runs on a runtime reference the caller holds, so the
 * per-recipient path takes no global lock (the cache and the harvest
 * limiter lock their own shards).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "backend_stats.h"
#include "log.h"
#include "policy.h"
#include "rg_time.h"

struct rg_engine {
	pthread_mutex_t		 lock;		/* guards current */
	struct rg_runtime	*current;
	struct rg_cache		*cache;
	struct rg_harvest	*harvest;	/* NULL with RG_ENGINE_NO_HARVEST */
	_Atomic uint64_t	 generation;	/* rg_engine_swap calls */

	_Atomic uint64_t	 accepted, rejected, tempfailed, blocked,
				 unchecked, syntax, backend_failures,
				 stale_accepts;
};

/* ---- engine ---- */

static void
cache_conf_from(const struct rg_conf *c, struct rg_cache_conf *cc)
{
	cc->size = c->cache_size;
	cc->positive_ttl_ms = c->positive_ttl_ms;
	cc->negative_ttl_ms = c->negative_ttl_ms;
	cc->stale_ttl_ms = c->stale_ttl_ms;
}

struct rg_engine *
rg_engine_new(struct rg_runtime *rt, int flags, struct rg_error *err)
{
	struct rg_engine	*e;
	struct rg_cache_conf	 cc;

	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		rg_error_set(err, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&e->lock, NULL);
	cache_conf_from(rt->conf, &cc);
	e->cache = rg_cache_new(&cc);
	if (e->cache == NULL) {
		rg_error_set(err, "cannot allocate the cache");
		goto fail;
	}
	if (!(flags & RG_ENGINE_NO_HARVEST)) {
		e->harvest = rg_harvest_new(rt->conf, err);
		if (e->harvest == NULL)
			goto fail;
	}
	e->current = rg_runtime_ref(rt);
	return e;
fail:
	rg_cache_free(e->cache);
	pthread_mutex_destroy(&e->lock);
	free(e);
	return NULL;
}

void
rg_engine_free(struct rg_engine *e)
{
	if (e == NULL)
		return;
	rg_harvest_free(e->harvest);
	rg_cache_free(e->cache);
	rg_runtime_unref(e->current);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

struct rg_runtime *
rg_engine_acquire(struct rg_engine *e)
{
	struct rg_runtime	*rt;

	pthread_mutex_lock(&e->lock);
	rt = rg_runtime_ref(e->current);
	pthread_mutex_unlock(&e->lock);
	return rt;
}

void
rg_engine_swap(struct rg_engine *e, struct rg_runtime *rt)
{
	struct rg_runtime	*old;
	struct rg_cache_conf	 cc;

	cache_conf_from(rt->conf, &cc);
	rg_cache_configure(e->cache, &cc);
	rg_cache_drop_negatives(e->cache);
	if (e->harvest != NULL)
		rg_harvest_configure(e->harvest, rt->conf);
	pthread_mutex_lock(&e->lock);
	old = e->current;
	e->current = rg_runtime_ref(rt);
	pthread_mutex_unlock(&e->lock);
	atomic_fetch_add(&e->generation, 1);
	rg_runtime_unref(old);
}

uint64_t
rg_engine_generation(struct rg_engine *e)
{
	return atomic_load(&e->generation);
}

/* ---- the decision ---- */

static void
set_reply(struct rg_verdict *v, enum rg_action action, const char *rcode,
    const char *xcode, const char *text)
{
	v->action = action;
	rg_reply_build_form(&v->reply, v->reply_form, rcode, xcode, text);
}

static void
set_by(struct rg_verdict *v, const char *by, const char *reason)
{
	snprintf(v->decided_by, sizeof(v->decided_by), "%s", by);
	snprintf(v->reason, sizeof(v->reason), "%s", reason);
}

/*
 * The reply echoes the address as the client sent it, as Postfix's own
 * rejects do; rg_reply_build sanitises it. v->address is the log form
 * (\xNN escapes), which would show the client bytes it never sent.
 */
static void
verdict_unknown(struct rg_verdict *v, const char *raw)
{
	char		 text[RG_REPLY_LINE_MAX + 64];
	const char	*sent;
	size_t		 len;

	/* Postfix puts "<ADDRESS>: Recipient address rejected:" before a
	 * policy server's text itself. */
	if (v->reply_form == RG_REPLY_POLICY) {
		set_reply(v, RG_ACT_REJECT, "550", "5.1.1", "User unknown");
		return;
	}
	len = rg_addr_as_sent(raw, &sent);
	if (len > RG_REPLY_LINE_MAX)
		len = RG_REPLY_LINE_MAX;	/* the builder cuts it anyway */
	snprintf(text, sizeof(text),
	    "<%.*s>: Recipient address rejected: User unknown", (int)len, sent);
	set_reply(v, RG_ACT_REJECT, "550", "5.1.1", text);
}

static void
verdict_block(const struct rg_conf *c, struct rg_verdict *v)
{
	if (c->harvest_action == RG_HARVEST_REJECT)
		set_reply(v, RG_ACT_REJECT, "550", "5.7.1",
		    "Too many unknown recipients");
	else
		set_reply(v, RG_ACT_SHUTDOWN, "421", "4.7.0",
		    "Too many unknown recipients, try again later");
	set_by(v, "harvest", "blocked");
}

static bool
client_in(const struct rg_client *cl, const struct rg_netlist *nets)
{
	return cl->have_addr && nets->n > 0 &&
	    rg_netlist_match(nets, (const struct sockaddr *)&cl->addr);
}

/* Is the client exempt from checks under this policy? */
static const char *
exemption(const struct rg_client *cl, const struct rg_policy *p)
{
	if (client_in(cl, &p->trusted_networks))
		return "trusted";
	if (cl->authenticated && p->skip_authenticated)
		return "auth";
	return NULL;
}

/*
 * A lookup that failed or was never made: who and why into the verdict,
 * for its one log line (rg_backend_lookup warns once a minute per
 * backend besides). The error may quote a server's reply: escaped.
 */
static void
set_failure(struct rg_verdict *v, const char *by, const char *reason,
    const char *key, const char *verb, const char *why)
{
	char	k[256], w[256];

	set_by(v, by, reason);
	rg_log_escape(k, sizeof(k), key);
	rg_log_escape(w, sizeof(w), why);
	snprintf(v->detail, sizeof(v->detail), "lookup of <%s> %s: %s", k,
	    verb, w);
}

/* One key to ask a backend for, and what finding it means. */
struct candidate {
	const char	*key;
	const char	*local;
	const char	*why;
};

/*
 * Ask the policy's backends, in order; in each, the address, the address
 * without subaddress, then the catch-all. A recipient exists if any
 * backend finds it; it is unknown only if every backend answered that it
 * is not there; otherwise (a backend failed and none found it) tempfail.
 */
static enum rg_result
lookup_backends(struct rg_runtime *rt, const struct rg_policy *p,
    const struct rg_addr *a, uint64_t deadline, struct rg_verdict *v,
    bool want_trace)
{
	char			 nosub[RG_PATH_MAX + 1], catchall[RG_DOMAIN_MAX + 2];
	char			 nosub_local[RG_PATH_MAX + 1];
	char			 tr[256];
	struct candidate	 cand[3];
	struct rg_error		 err;
	size_t			 n = 0, i, k;
	bool			 failed = false;

	cand[n++] = (struct candidate){ a->address, a->local, "found" };
	if (p->subaddress_delimiter[0] != '\0' &&
	    rg_addr_strip_subaddress(a, p->subaddress_delimiter, nosub,
	    sizeof(nosub))) {
		char *at = strrchr(nosub, '@');

		snprintf(nosub_local, sizeof(nosub_local), "%.*s",
		    (int)(at ? at - nosub : 0), nosub);
		cand[n++] = (struct candidate){ nosub, nosub_local, "subaddress" };
	}
	snprintf(catchall, sizeof(catchall), "@%s", a->domain);
	cand[n++] = (struct candidate){ catchall, "", "catch-all" };

	for (i = 0; i < p->backends.n; i++) {
		struct rg_backend *b = rg_runtime_backend(rt, p, i);

		for (k = 0; k < n; k++) {
			struct rg_query	q = { cand[k].key, cand[k].local,
					    a->domain, deadline, NULL, 0 };
			enum rg_result	r;

			/* Out of time: no backend is worth asking now. */
			if (rg_now_ms() >= deadline) {
				failed = true;
				set_failure(v, b->name, "deadline", cand[k].key,
				    "not made", "deadline passed");
				goto out;
			}
			tr[0] = '\0';
			if (want_trace) {
				q.trace = tr;
				q.tracelen = sizeof(tr);
			}
			rg_error_clear(&err);
			r = rg_backend_lookup(b, &q, &err);
			if (want_trace) {
				rg_trace_add(v->trace, sizeof(v->trace),
				    "%s%s: %s -> %s%s%s", v->trace[0] ? "; " : "",
				    b->name, cand[k].key, rg_result_str(r),
				    tr[0] ? " " : "", tr);
			}
			if (r == RG_FOUND) {
				set_by(v, b->name, cand[k].why);
				return RG_FOUND;
			}
			if (r == RG_NOTFOUND)
				continue;
			failed = true;
			set_failure(v, b->name, "backend failure", cand[k].key,
			    "failed", err.msg[0] ? err.msg : rg_result_str(r));
			break;
		}
	}
out:
	if (failed)
		return RG_TEMPFAIL;
	set_by(v, p->backends.n ? rg_runtime_backend(rt, p, p->backends.n - 1)->name
	    : "policy", "unknown");
	return RG_NOTFOUND;
}

static uint64_t
policy_generation(struct rg_runtime *rt, const struct rg_policy *p)
{
	uint64_t	g = rt->serial;	/* see cached_or_looked_up */
	size_t		i;

	for (i = 0; i < p->backends.n; i++)
		g = g * 1000003u ^ rg_backend_generation(rg_runtime_backend(rt, p, i));
	return g;
}

static bool
always_accepted(const struct rg_policy *p, const struct rg_addr *a)
{
	char	nosub[RG_PATH_MAX + 1];
	char	*at;

	if (rg_list_contains_ci(&p->always_accept, a->local))
		return true;
	if (p->subaddress_delimiter[0] != '\0' &&
	    rg_addr_strip_subaddress(a, p->subaddress_delimiter, nosub,
	    sizeof(nosub)) && (at = strrchr(nosub, '@')) != NULL) {
		*at = '\0';
		return rg_list_contains_ci(&p->always_accept, nosub);
	}
	return false;
}

/* Backend outcome -> verdict, with outage mode and on_backend_failure. */
static void
failure_verdict(struct rg_engine *e, const struct rg_policy *p,
    const struct rg_cache_answer *ans, struct rg_verdict *v)
{
	atomic_fetch_add(&e->backend_failures, 1);
	if (ans != NULL && ans->stale_found) {
		atomic_fetch_add(&e->stale_accepts, 1);
		rg_cache_note_stale_used(e->cache);
		set_by(v, ans->stale_backend[0] ? ans->stale_backend : "cache",
		    "stale");
		v->action = RG_ACT_CONTINUE;
		v->checked = true;
		return;
	}
	if (p->on_backend_failure == RG_FAILURE_ACCEPT) {
		snprintf(v->reason, sizeof(v->reason), "backend failure, accepted");
		v->action = RG_ACT_CONTINUE;
		return;
	}
	set_reply(v, RG_ACT_TEMPFAIL, "451", "4.4.3",
	    "Directory lookup failed, try again later");
}

/*
 * The cache, else the backends (storing what they said). The cache
 * generation includes the runtime's serial: a connection that began
 * before a reload still decides on the old runtime, and a negative it
 * stores, even under the cache epoch of the reload, never matches the
 * generation of a newer runtime. Nothing global is locked for that.
 */
static enum rg_result
cached_or_looked_up(struct rg_engine *e, struct rg_runtime *rt,
    const struct rg_policy *p, const struct rg_addr *a, uint64_t now,
    uint64_t deadline, bool want_trace, struct rg_verdict *v,
    struct rg_cache_answer *ans)
{
	enum rg_result	r;
	uint64_t	gen;

	gen = policy_generation(rt, p);
	switch (rg_cache_begin(e->cache, a->address, gen, now, deadline, ans)) {
	case RG_CACHE_HIT:
		r = ans->result;
		if (r == RG_NOTFOUND && ans->shared && ans->generation != gen) {
			/* another runtime's (or data's) lookup: not ours */
			return lookup_backends(rt, p, a, deadline, v,
			    want_trace);
		}
		set_by(v, "cache", r == RG_FOUND ? "found" : "unknown");
		if (r == RG_FOUND || r == RG_NOTFOUND)
			rg_trace_add(v->trace, sizeof(v->trace),
			    "cache: %s -> %s (from %s)", a->address,
			    rg_result_str(r), ans->backend);
		return r;
	case RG_CACHE_TIMEOUT:
		set_by(v, "cache", "deadline");
		snprintf(v->detail, sizeof(v->detail), "waited for another "
		    "lookup of the same address until the deadline");
		return RG_TEMPFAIL;
	case RG_CACHE_MISS:
	default:
		r = lookup_backends(rt, p, a, deadline, v, want_trace);
		rg_cache_finish(e->cache, a->address, r, v->decided_by, gen,
		    rg_now_ms());
		return r;
	}
}

/* A checked recipient from a client that is not exempt. */
static void
decide_checked(struct rg_engine *e, struct rg_runtime *rt,
    struct rg_client *cl, const struct rg_policy *p, const struct rg_addr *a,
    const char *raw, bool harvest_on, bool want_trace, struct rg_verdict *v)
{
	struct rg_cache_answer	ans;
	enum rg_result		r;
	uint64_t		now = rg_now_ms();

	memset(&ans, 0, sizeof(ans));
	v->checked = true;
	/* Known and seen recently: no generation check (stat) needed. */
	if (rg_cache_peek_found(e->cache, a->address, now, &ans)) {
		set_by(v, "cache", "found");
		rg_trace_add(v->trace, sizeof(v->trace),
		    "cache: %s -> found (from %s)", a->address, ans.backend);
		atomic_fetch_add(&e->accepted, 1);
		return;
	}
	r = cached_or_looked_up(e, rt, p, a, now, now + p->deadline_ms,
	    want_trace, v, &ans);
	switch (r) {
	case RG_FOUND:
		atomic_fetch_add(&e->accepted, 1);
		return;
	case RG_NOTFOUND:
		verdict_unknown(v, raw);
		snprintf(v->reason, sizeof(v->reason), "unknown");
		atomic_fetch_add(&e->rejected, 1);
		if (harvest_on)
			rg_harvest_note_unknown(e->harvest,
			    (const struct sockaddr *)&cl->addr, &cl->harvest,
			    a->address, rg_now_ms(), &v->delay_ms);
		return;
	default:
		failure_verdict(e, p, &ans, v);
		if (v->action == RG_ACT_TEMPFAIL)
			atomic_fetch_add(&e->tempfailed, 1);
		else
			atomic_fetch_add(&e->accepted, 1);
		return;
	}
}

/* Is the client blocked for harvesting (postmaster may be let through)? */
static bool
harvest_blocked(struct rg_engine *e, const struct rg_conf *c,
    struct rg_client *cl, enum rg_addr_status st, const struct rg_addr *a)
{
	if (rg_harvest_check(e->harvest, (const struct sockaddr *)&cl->addr,
	    &cl->harvest, rg_now_ms()) != RG_HARVEST_BLOCKED)
		return false;
	return !(c->harvest_block_allows_postmaster && st == RG_ADDR_OK &&
	    strcmp(a->local, "postmaster") == 0);
}

void
rg_decide(struct rg_engine *e, struct rg_runtime *rt, struct rg_client *cl,
    const char *raw, bool want_trace, struct rg_verdict *v)
{
	const struct rg_conf	*c = rt->conf;
	const struct rg_policy	*p;
	struct rg_addr		 a;
	enum rg_addr_status	 st;
	const char		*why, *domain;
	char			 lenient[RG_DOMAIN_MAX + 1];
	bool			 harvest_on;

	memset(v, 0, sizeof(*v));
	v->action = RG_ACT_CONTINUE;
	v->reply_form = cl->reply_form;
	st = rg_addr_parse(raw, &a);
	rg_log_escape(v->address, sizeof(v->address),
	    st == RG_ADDR_OK ? a.address : raw != NULL ? raw : "");
	/* A malformed address still names its domain, if it has one. */
	domain = a.domain;
	if (st != RG_ADDR_OK) {
		(void)rg_addr_domain_of(raw, lenient);
		domain = lenient;
	}

	/* Clients exempt under [policy] are never counted nor blocked. */
	harvest_on = e->harvest != NULL && cl->have_addr &&
	    exemption(cl, &c->policy) == NULL;
	if (harvest_on && harvest_blocked(e, c, cl, st, &a)) {
		verdict_block(c, v);
		atomic_fetch_add(&e->blocked, 1);
		return;
	}
	p = domain[0] != '\0' ? rg_conf_policy_for(c, domain) : NULL;
	if (p == NULL) {
		set_by(v, "domain", domain[0] ? "not checked" : "unqualified");
		atomic_fetch_add(&e->unchecked, 1);
		return;
	}
	if ((why = exemption(cl, p)) != NULL) {
		set_by(v, why, "client not checked");
		atomic_fetch_add(&e->unchecked, 1);
		return;
	}
	/* Syntax matters only where rcptgate decides, for whom it checks. */
	if (st != RG_ADDR_OK) {
		set_reply(v, RG_ACT_REJECT, "550", "5.1.3",
		    "Bad recipient address syntax");
		set_by(v, "syntax", rg_addr_status_str(st));
		atomic_fetch_add(&e->syntax, 1);
		return;
	}
	if (always_accepted(p, &a)) {
		set_by(v, "always_accept", "found");
		atomic_fetch_add(&e->accepted, 1);
		return;
	}
	decide_checked(e, rt, cl, p, &a, raw, harvest_on, want_trace, v);
}

void
rg_note_mta_reject(struct rg_engine *e, struct rg_runtime *rt,
    struct rg_client *cl, const char *raw, const char *status)
{
	struct rg_addr	a;
	char		r[128], st[16];
	bool		counts = rg_harvest_mta_status_counts(status);

	rg_log_escape(r, sizeof(r), raw != NULL ? raw : "");
	rg_log_escape(st, sizeof(st), status != NULL ? status : "");
	rg_debug("mta-reject rcpt=%s status=%s counted=%s", r, st,
	    counts ? "yes" : "no");
	if (!counts || e->harvest == NULL || !cl->have_addr ||
	    exemption(cl, &rt->conf->policy) != NULL)
		return;
	rg_harvest_note_unknown(e->harvest, (const struct sockaddr *)&cl->addr,
	    &cl->harvest, raw != NULL && rg_addr_parse(raw, &a) == RG_ADDR_OK ?
	    a.address : raw, rg_now_ms(), NULL);
}

void
rg_tarpit_done(struct rg_engine *e)
{
	if (e->harvest != NULL)
		rg_harvest_tarpit_done(e->harvest);
}

static void
client_str(const struct rg_client *cl, char *buf, size_t len)
{
	const struct sockaddr_storage *ss = &cl->addr;

	if (!cl->have_addr)
		snprintf(buf, len, "unknown");
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr,
		    buf, (socklen_t)len);
	else if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr,
		    buf, (socklen_t)len);
	else
		snprintf(buf, len, "unknown");
}

void
rg_verdict_log(const struct rg_client *cl, const struct rg_verdict *v)
{
	char		 client[INET6_ADDRSTRLEN + 1], qid[64];
	const char	*what;

	switch (v->action) {
	case RG_ACT_REJECT:
		what = strcmp(v->decided_by, "harvest") == 0 ? "block" : "reject";
		break;
	case RG_ACT_TEMPFAIL:
		what = "tempfail";
		break;
	case RG_ACT_SHUTDOWN:
		what = "block";
		break;
	default:
		/* A plain accept is not logged; an accept on failure is. */
		if (strcmp(v->reason, "stale") != 0 &&
		    strncmp(v->reason, "backend failure", 15) != 0) {
			if (rg_log_get_level() >= RG_LOG_DEBUG) {
				client_str(cl, client, sizeof(client));
				rg_debug("accept rcpt=<%s> client=[%s] backend=%s "
				    "reason=%s", v->address, client,
				    v->decided_by, v->reason);
			}
			return;
		}
		what = "accept";
		break;
	}
	client_str(cl, client, sizeof(client));
	rg_log_escape(qid, sizeof(qid),
	    cl->queue_id && cl->queue_id[0] ? cl->queue_id : "NOQUEUE");
	/* one line per decision: a failure's cause rides along */
	rg_info("%s: %s rcpt=<%s> client=[%s] backend=%s reason=%s%s%s", qid,
	    what, v->address, client, v->decided_by, v->reason,
	    v->detail[0] ? " detail=" : "", v->detail);
}

void
rg_engine_counters(struct rg_engine *e, struct rg_counters *out)
{
	out->accepted = atomic_load(&e->accepted);
	out->rejected = atomic_load(&e->rejected);
	out->tempfailed = atomic_load(&e->tempfailed);
	out->blocked = atomic_load(&e->blocked);
	out->unchecked = atomic_load(&e->unchecked);
	out->syntax = atomic_load(&e->syntax);
	out->backend_failures = atomic_load(&e->backend_failures);
	out->stale_accepts = atomic_load(&e->stale_accepts);
}

void
rg_engine_log_counters(struct rg_engine *e)
{
	struct rg_counters	 k;
	struct rg_cache_stats	 cs;
	struct rg_runtime	*rt;
	char			 buf[256];
	size_t			 i;

	rg_engine_counters(e, &k);
	rg_cache_stats(e->cache, &cs);
	rg_info("counters: accepted=%llu rejected=%llu tempfailed=%llu "
	    "blocked=%llu unchecked=%llu syntax=%llu backend_failures=%llu "
	    "stale_accepts=%llu cache_hits=%llu cache_misses=%llu "
	    "cache_entries=%llu cache_evictions=%llu",
	    (unsigned long long)k.accepted, (unsigned long long)k.rejected,
	    (unsigned long long)k.tempfailed, (unsigned long long)k.blocked,
	    (unsigned long long)k.unchecked, (unsigned long long)k.syntax,
	    (unsigned long long)k.backend_failures,
	    (unsigned long long)k.stale_accepts, (unsigned long long)cs.hits,
	    (unsigned long long)cs.misses, (unsigned long long)cs.entries,
	    (unsigned long long)cs.evictions);
	/* Through the dispatch helper: a surrogate's priv is not the
	 * driver's, so its driver's stats must never see it. */
	/* The driver's counters start again with each reload, which opens
	 * the backends anew; the per-name ones (backend_stats.c) last as
	 * long as the process, so they come first and the driver's are
	 * labelled for what they are. */
	rt = rg_engine_acquire(e);
	for (i = 0; i < rt->nbackends; i++) {
		struct rg_backend	*b = rt->backends[i];
		const struct rg_bstat	*s = rg_bstat_find(b->name);

		rg_backend_stats(b, buf, sizeof(buf));
		rg_info("backend %s: found=%llu notfound=%llu failed=%llu%s%s",
		    b->name,
		    s ? (unsigned long long)atomic_load(&s->found) : 0ULL,
		    s ? (unsigned long long)atomic_load(&s->notfound) : 0ULL,
		    s ? (unsigned long long)atomic_load(&s->failures) : 0ULL,
		    buf[0] == '\0' ? "" : b->surrogate_reason != NULL ? "; " :
		    "; since the last reload: ", buf);
	}
	rg_runtime_unref(rt);
}

/* ---- operator access (rcptgate-ctl, metrics; explain.c) ---- */

struct rg_cache *
rg_engine_cache(struct rg_engine *e)
{
	return e->cache;
}

struct rg_harvest *
rg_engine_harvest(struct rg_engine *e)
{
	return e->harvest;
}
