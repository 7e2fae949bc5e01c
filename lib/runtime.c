/* SPDX-License-Identifier: MIT */
/*
 * A runtime: one loaded configuration with its opened backends,
 * refcounted and replaced whole on reload, and the `-n` checks made on
 * it (deadlines against the backends' worst case and the MTA's timeout,
 * a live check of each backend).
 *
 * Must not: decide recipients (policy.c) or keep process state.
 *
 * Locking: none; the reference count is atomic, and a runtime is
 * immutable once made.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy.h"

/* Serials of runtimes, never reused in the process (policy.c: part of the cache generation). */
static _Atomic uint64_t runtime_serials;

struct rg_runtime *
rg_runtime_new(struct rg_conf *conf, struct rg_error *err)
{
	struct rg_runtime	*rt;
	struct rg_error		 one;
	size_t			 i;
	int			 failed = 0;

	rt = calloc(1, sizeof(*rt));
	if (rt == NULL) {
		rg_error_set(err, "out of memory");
		return NULL;
	}
	rt->backends = calloc(conf->nbackends ? conf->nbackends : 1,
	    sizeof(*rt->backends));
	if (rt->backends == NULL) {
		free(rt);
		rg_error_set(err, "out of memory");
		return NULL;
	}
	rt->conf = rg_conf_ref(conf);
	rt->nbackends = conf->nbackends;
	rt->serial = atomic_fetch_add(&runtime_serials, 1) + 1;
	rt->refs = 1;
	rg_error_clear(err);
	for (i = 0; i < conf->nbackends; i++) {
		rg_error_clear(&one);
		rt->backends[i] = rg_backend_open(&conf->backends[i], &one);
		if (rt->backends[i] == NULL) {
			rg_error_append(err, "%s", one.msg);
			failed = 1;
		}
	}
	if (failed) {
		rg_runtime_unref(rt);
		return NULL;
	}
	return rt;
}

struct rg_runtime *
rg_runtime_ref(struct rg_runtime *rt)
{
	__atomic_add_fetch(&rt->refs, 1, __ATOMIC_RELAXED);
	return rt;
}

void
rg_runtime_unref(struct rg_runtime *rt)
{
	size_t	i;

	if (rt == NULL || __atomic_sub_fetch(&rt->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (i = 0; i < rt->nbackends; i++)
		rg_backend_free(rt->backends[i]);
	free(rt->backends);
	rg_conf_unref(rt->conf);
	free(rt);
}

/* Warn when one policy's backends can take longer than its deadline. */
static void
check_deadline(const struct rg_runtime *rt, const struct rg_policy *p,
    const char *where, struct rg_error *warn)
{
	uint64_t	total = 0;
	size_t		i;

	for (i = 0; i < p->backends.n; i++)
		total += rg_backend_worst_case_ms(rg_runtime_backend(rt, p, i));
	if (total > p->deadline_ms)
		rg_error_append(warn, "%s: %s deadline %llums is shorter than "
		    "its backends' worst case %llums (timeouts times hosts): "
		    "slow lookups will tempfail", rt->conf->path, where,
		    (unsigned long long)p->deadline_ms,
		    (unsigned long long)total);
}

/*
 * A driver's check says what is wrong, one finding a line; the backend it
 * is about is named here, once on each line, so that no driver repeats
 * it and no second line of a finding loses it.
 */
static void
append_named(struct rg_error *dst, const char *name, const char *lines)
{
	const char	*nl;
	int		 len;

	while (*lines != '\0') {
		nl = strchr(lines, '\n');
		len = nl != NULL ? (int)(nl - lines) : (int)strlen(lines);
		rg_error_append(dst, "[backend %s]: %.*s", name, len, lines);
		lines += len + (nl != NULL);
	}
}

/*
 * Warn when one RCPT can take longer than the MTA waits for the milter's
 * answer: the whole deadline, then (tarpit on) up to tarpit_max of delay.
 * The MTA's timeout is not known here; RG_MTA_TIMEOUT_MS assumes the
 * strictest common one, Sendmail's default T=R:10s (Postfix's
 * milter_command_timeout is 30s). Past it the MTA applies its default
 * action to the whole session (tempfail, or accept without checking).
 */
static void
check_mta_timeout(const struct rg_conf *c, const struct rg_policy *p,
    const char *where, struct rg_error *warn)
{
	uint64_t	tarpit, total;
	char		plus[64] = "";

	tarpit = c->harvest_tarpit_ms > 0 ? c->harvest_tarpit_max_ms : 0;
	total = p->deadline_ms + tarpit;
	if (total < RG_MTA_TIMEOUT_MS)
		return;
	if (tarpit > 0)
		snprintf(plus, sizeof(plus), " + [harvest] tarpit_max %llums",
		    (unsigned long long)tarpit);
	rg_error_append(warn, "%s: %s deadline %llums%s = %llums is not "
	    "below the MTA's milter timeout (assumed %llums, Sendmail's "
	    "default T=R:10s): the MTA may give up waiting and apply its "
	    "default action to the session", c->path, where,
	    (unsigned long long)p->deadline_ms, plus,
	    (unsigned long long)total, (unsigned long long)RG_MTA_TIMEOUT_MS);
}

int
rg_runtime_check(struct rg_runtime *rt, bool live, struct rg_error *err,
    struct rg_error *warn)
{
	const struct rg_conf	*c = rt->conf;
	struct rg_error		 one, onewarn;
	char			 where[RG_NAME_MAX + 32];
	size_t			 i;
	int			 rc = 0;

	if (!c->all_domains && c->domains.n == 0 && c->ndomains == 0)
		rg_error_append(warn, "%s: [policy] domains is empty: no "
		    "recipient is checked", c->path);
	check_deadline(rt, &c->policy, "[policy]", warn);
	check_mta_timeout(c, &c->policy, "[policy]", warn);
	/* Postfix keeps an idle policy connection up to 300s and then
	 * finds it closed under it: harmless, but each costs a retry. */
	if (c->policy_socket[0] != '\0' &&
	    c->policy_idle_timeout_ms < RG_POSTFIX_POLICY_MAX_IDLE_MS)
		rg_error_append(warn, "%s: [postfix_policy] idle_timeout %llus "
		    "is shorter than Postfix's smtpd_policy_service_max_idle "
		    "(300s by default)", c->path,
		    (unsigned long long)c->policy_idle_timeout_ms / 1000);
	for (i = 0; i < c->ndomains; i++) {
		snprintf(where, sizeof(where), "[domain %s]", c->domain[i].name);
		check_deadline(rt, &c->domain[i].policy, where, warn);
		check_mta_timeout(c, &c->domain[i].policy, where, warn);
	}
	if (!live)
		return 0;
	for (i = 0; i < rt->nbackends; i++) {
		struct rg_backend *b = rt->backends[i];

		rg_error_clear(&one);
		rg_error_clear(&onewarn);
		if (b->surrogate_reason != NULL) {
			rg_error_append(err, "[backend %s]: %s", b->name,
			    b->surrogate_reason);
			rc = -1;
			continue;
		}
		if (rg_backend_check(b, &one, &onewarn) != 0) {
			append_named(err, b->name, one.msg);
			rc = -1;
		}
		append_named(warn, b->name, onewarn.msg);
	}
	return rc;
}

