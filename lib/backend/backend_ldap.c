/* SPDX-License-Identifier: MIT */
/*
 * The LDAP / Active Directory backend: a recipient exists when a search
 * under base with the configured filter (RFC 4515-escaped address) finds
 * an entry. Servers are tried in the order of `uri` (failover), and a
 * connection to a later server is moved back to an earlier one once that
 * one's holdoff (`failback`) has passed. This file holds the lookup and
 * the ops table; ldap_conf.c the configuration, ldap_conn.c connecting.
 *
 * It must not cache (cache.c does), must not follow referrals (AD returns
 * them from the domain root; libldap's chasing binds anonymously and can
 * hang), and must never turn a failure into "not found": every error,
 * timeout or odd answer is RG_TEMPFAIL.
 *
 * Locking: a pool of LDAP handles (pool.c, bounded by pool_size). A
 * handle is owned by one thread between acquire and release, and every
 * connect, bind and search runs with no lock held. A caller finding the
 * pool empty and at its cap waits until its deadline. Per-server
 * holdoffs and counters are atomics; per-server up/down state is
 * rg_tstate's (an atomic load when nothing changes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "ldap_filter.h"
#include "ldap_priv.h"
#include "log.h"
#include "rg_time.h"

static const char *const ldap_keys[] = {
	"uri", "base", "scope", "preset", "exclude_disabled", "filter",
	"bind_dn", "bind_password_file", "sasl_mech", "starttls",
	"tls_ca_file", "tls_verify", "timeout", "failback",
	"result_attribute", "pool_size", NULL
};

static int
ldap_open(struct rg_backend *b, const struct rg_section *sec,
    struct rg_error *err)
{
	if (rg_section_check_keys(sec, ldap_keys, err) == -1)
		return -1;
	return (b->priv = rg_ldap_backend_new(b->name, sec, err)) != NULL ?
	    0 : -1;
}

static void
ldap_close(struct rg_backend *b)
{
	rg_ldap_backend_free(b->priv);
	b->priv = NULL;
}

/* ---- lookup ---- */

static bool
conn_is_dead(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR ||
	    rc == LDAP_TIMEOUT || rc == LDAP_UNAVAILABLE ||
	    rc == LDAP_BUSY || rc == LDAP_LOCAL_ERROR ||
	    rc == LDAP_DECODING_ERROR || rc == LDAP_ENCODING_ERROR ||
	    rc == LDAP_PROTOCOL_ERROR || rc == LDAP_OTHER;
}

/* Does the result hold an entry (with result_attr when configured)? */
static bool
has_entry(struct ldap_backend *lb, LDAP *ld, LDAPMessage *res)
{
	LDAPMessage	*e;
	struct berval	**vals;
	bool		 ok;

	for (e = ldap_first_entry(ld, res); e != NULL;
	    e = ldap_next_entry(ld, e)) {
		if (lb->result_attr == NULL)
			return true;
		vals = ldap_get_values_len(ld, e, lb->result_attr);
		ok = vals != NULL && vals[0] != NULL;
		ldap_value_free_len(vals);
		if (ok)
			return true;
	}
	return false;
}

/* The -t -v detail: the filter sent and the server that answered. */
static void
trace_set(const struct rg_query *q, const char *filter, const char *uri)
{
	rg_trace_set(q->trace, q->tracelen, "filter=%s server=%s", filter,
	    uri != NULL ? uri : "none");
}

/*
 * The search filter for q into filter (RG_LDAP_FILTER_MAX bytes). With
 * result_attribute the server filters too, so sizelimit 2 never hides
 * an entry that has it behind two that do not. -1: too long.
 */
static int
build_filter(struct ldap_backend *lb, const struct rg_query *q,
    char *filter, struct rg_error *err)
{
	char	tmp[RG_LDAP_FILTER_MAX];
	int	n;

	if (rg_ldap_filter_expand(lb->filter, q->key, q->local, q->domain,
	    filter, RG_LDAP_FILTER_MAX, err) == -1) {
		/* the address is over the limits addr.c enforces: refuse
		 * to guess, as for any other failure */
		trace_set(q, "(too long)", NULL);
		return -1;
	}
	if (lb->result_attr == NULL)
		return 0;
	n = snprintf(tmp, sizeof(tmp), "(&%s(%s=*))", filter,
	    lb->result_attr);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		rg_error_set(err, "LDAP filter would exceed %zu bytes",
		    sizeof(tmp) - 1);
		return -1;
	}
	memcpy(filter, tmp, (size_t)n + 1);
	return 0;
}

/*
 * Search with c (connecting it first if need be, to server probe when
 * failing back). A handle found dead (idle drop, server restart) is
 * rebuilt and the search retried once; a timeout is not retried: the
 * time is spent.
 */
static enum rg_result
search(struct ldap_backend *lb, struct ldap_conn *c, size_t probe,
    const struct rg_query *q, const char *filter, struct rg_error *err)
{
	struct timeval	 tv;
	LDAPMessage	*res = NULL;
	char		*attrs[2], diag[512];
	enum rg_result	 r = RG_TEMPFAIL;
	uint64_t	 ms;
	int		 rc;

	attrs[0] = lb->result_attr != NULL ? lb->result_attr :
	    (char *)LDAP_NO_ATTRS;
	attrs[1] = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (c->ld == NULL && rg_ldap_conn_connect(lb, c, probe,
		    q->deadline_ms, err) == -1)
			break;
		probe = lb->nuris;
		if ((ms = rg_ldap_budget(lb, q->deadline_ms)) == 0) {
			rg_error_set(err, "%s: deadline reached",
			    lb->uris[c->uri_idx]);
			break;
		}
		rg_ldap_set_timeouts(c->ld, ms);
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
		rc = ldap_search_ext_s(c->ld, lb->base, lb->scope, filter,
		    attrs, 0, NULL, NULL, &tv, lb->result_attr ? 2 : 1, &res);
		if (rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED) {
			rg_tstate_up(&lb->ts[c->uri_idx]);
			if (has_entry(lb, c->ld, res))
				r = RG_FOUND;
			else if (rc == LDAP_SUCCESS)
				r = RG_NOTFOUND;
			else
				rg_error_set(err, "%s: size limit exceeded "
				    "with no entry", lb->uris[c->uri_idx]);
			break;
		}
		rg_ldap_diag(c->ld, diag, sizeof(diag));
		rg_error_set(err, "%s: search failed: %s (%d)%s%s%s%s",
		    lb->uris[c->uri_idx], ldap_err2string(rc), rc,
		    diag[0] != '\0' ? ": " : "", diag,
		    rc == LDAP_NO_SUCH_OBJECT ? "; base does not exist: " : "",
		    rc == LDAP_NO_SUCH_OBJECT ? lb->base : "");
		if (!conn_is_dead(rc))
			break;
		/* A handle dropped while idle is no news (the reconnect
		 * says); a timeout or a second failure is the server's. */
		if (rc == LDAP_TIMEOUT || attempt == 1)
			rg_tstate_down(&lb->ts[c->uri_idx],
			    lb->uris[c->uri_idx], err->msg);
		ldap_msgfree(res);
		res = NULL;
		rg_ldap_conn_drop(c);
		if (rc == LDAP_TIMEOUT)
			break;
		atomic_fetch_add(&lb->n_reconnects, 1);
	}
	ldap_msgfree(res);
	return r;
}

static enum rg_result
ldap_lookup(struct rg_backend *b, const struct rg_query *q,
    struct rg_error *err)
{
	struct ldap_backend	*lb = b->priv;
	struct ldap_conn	*c;
	char			 filter[RG_LDAP_FILTER_MAX];
	enum rg_result		 r;
	size_t			 probe;
	void			*v;

	atomic_fetch_add(&lb->n_lookups, 1);
	if (build_filter(lb, q, filter, err) == -1) {
		atomic_fetch_add(&lb->n_tempfail, 1);
		return RG_TEMPFAIL;
	}
	if (rg_pool_acquire(lb->pool, q->deadline_ms, &v, NULL, err) !=
	    RG_POOL_OK) {
		rg_error_set(err, "all %zu LDAP connections busy until the "
		    "deadline", lb->pool_size);
		trace_set(q, filter, NULL);
		atomic_fetch_add(&lb->n_tempfail, 1);
		return RG_TEMPFAIL;
	}
	c = v;
	probe = lb->nuris;
	if (c->ld != NULL && c->uri_idx > 0 &&
	    (probe = rg_ldap_failback_probe(lb, c)) < lb->nuris)
		rg_ldap_conn_drop(c);
	r = search(lb, c, probe, q, filter, err);
	trace_set(q, filter, c->ld != NULL ? lb->uris[c->uri_idx] : NULL);
	rg_pool_release(lb->pool, c, RG_POOL_KEEP);
	atomic_fetch_add(r == RG_FOUND ? &lb->n_found : r == RG_NOTFOUND ?
	    &lb->n_notfound : &lb->n_tempfail, 1);
	return r;
}

/* ---- -n, -V and counters ---- */

/*
 * Connect and bind to every server in turn and read the base entry.
 * What the servers answer (unreachable, timed out, bind refused, base
 * missing) is a warning, loud when none works, never an error: a
 * directory down at boot must not keep rcptgate from starting (under
 * ExecStartPre=rcptgate -n the MTA would then tempfail all mail, other
 * domains included), while a running rcptgate tempfails only the
 * recipients it cannot decide and picks the directory up when it is
 * back. Errors are for the configuration, found by open().
 */
/* -n: TLS settings that take no effect, for a server given as ldap:// */
static void
check_tls_unused(const struct ldap_backend *lb, struct rg_error *warn)
{
	for (size_t i = 0; i < lb->nuris; i++)
		if (!lb->starttls && lb->tls_ca_file != NULL &&
		    strncasecmp(lb->uris[i], "ldaps://", 8) != 0)
			rg_error_append(warn, "%s: tls_ca_file is set but this "
			    "connection is not encrypted: set starttls = yes "
			    "(or use an ldaps:// uri)", lb->uris[i]);
}

/*
 * One server for -n: connect, bind, read the base entry. 0 when it
 * works, else -1 with the failure and the fix appended to warn and the
 * failure, short, in bad.
 */
static int
check_one(struct ldap_backend *lb, const char *uri, struct rg_error *warn,
    char *bad, size_t badlen)
{
	struct rg_error	 why;
	struct timeval	 tv;
	LDAPMessage	*res = NULL;
	LDAP		*ld;
	char		*attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	char		 diag[512];
	int		 rc, stage;

	rg_error_clear(&why);
	if ((rc = rg_ldap_connect_one(lb, uri, rg_now_ms() + lb->timeout_ms,
	    &ld, &stage, &why)) != LDAP_SUCCESS) {
		rg_error_append(warn, "%s", why.msg);
		snprintf(bad, badlen, "%s", why.msg);
		rg_ldap_hint(lb, uri, stage, rc, why.msg, warn);
		return -1;
	}
	tv.tv_sec = (time_t)(lb->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(lb->timeout_ms % 1000) * 1000;
	rc = ldap_search_ext_s(ld, lb->base, LDAP_SCOPE_BASE,
	    "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 1, &res);
	rg_ldap_diag(ld, diag, sizeof(diag));
	ldap_msgfree(res);
	ldap_unbind_ext_s(ld, NULL, NULL);
	if (rc == LDAP_SUCCESS)
		return 0;
	rg_error_append(warn, "%s: base '%s': %s (%d)%s%s", uri, lb->base,
	    ldap_err2string(rc), rc, diag[0] != '\0' ? ": " : "", diag);
	snprintf(bad, badlen, "%s: base '%s': %s", uri, lb->base,
	    ldap_err2string(rc));
	rg_ldap_hint(lb, uri, RG_LDAP_STAGE_SEARCH, rc, diag, warn);
	return -1;
}

/*
 * Connect and bind to every server in turn and read the base entry.
 * What the servers answer (unreachable, timed out, bind refused, base
 * missing) is a warning naming the fix where one is known, loud when
 * none works, never an error: a directory down at boot must not keep
 * rcptgate from starting (under ExecStartPre=rcptgate -n the MTA would
 * then tempfail all mail, other domains included), while a running
 * rcptgate tempfails only the recipients it cannot decide and picks the
 * directory up when it is back. Errors are for the configuration, found
 * by open().
 */
static int
ldap_check(struct rg_backend *b, struct rg_error *err, struct rg_error *warn)
{
	struct ldap_backend	*lb = b->priv;
	char			 bad[RG_ERROR_MAX];
	size_t			 ok = 0;

	bad[0] = '\0';
	check_tls_unused(lb, warn);
	for (size_t i = 0; i < lb->nuris; i++)
		if (check_one(lb, lb->uris[i], warn, bad, sizeof(bad)) == 0)
			ok++;
	if (ok == 0)
		rg_error_append(warn, "DIRECTORY UNUSABLE NOW: no LDAP server "
		    "answered as configured (last: %s). rcptgate starts "
		    "anyway: recipients it checks with this backend get 451 "
		    "4.4.3 (cached positives still pass) until a server "
		    "answers", bad);
	(void)err;
	return 0;
}

static uint64_t
ldap_worst_case_ms(struct rg_backend *b)
{
	struct ldap_backend	*lb = b->priv;

	/* timeouts times hosts, as `-n` documents it: each server can
	 * cost one timeout (a hung connect, bind or search is not retried;
	 * the retry after a dead handle starts with an instant error) */
	return lb->timeout_ms * lb->nuris;
}

static void
ldap_stats(struct rg_backend *b, char *buf, size_t len)
{
	struct ldap_backend	*lb = b->priv;
	struct rg_pool_stats	 ps;
	int			 n;

	rg_pool_stats(lb->pool, &ps);
	n = snprintf(buf, len, "lookups=%llu found=%llu notfound=%llu "
	    "tempfail=%llu connects=%llu reconnects=%llu pool_waits=%llu "
	    "connections=%zu/%zu",
	    (unsigned long long)atomic_load(&lb->n_lookups),
	    (unsigned long long)atomic_load(&lb->n_found),
	    (unsigned long long)atomic_load(&lb->n_notfound),
	    (unsigned long long)atomic_load(&lb->n_tempfail),
	    (unsigned long long)atomic_load(&lb->n_connects),
	    (unsigned long long)atomic_load(&lb->n_reconnects),
	    (unsigned long long)ps.waits, ps.size, lb->pool_size);
	if (n >= 0 && (size_t)n >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
}

/* Each server of `uri`, as the connects and searches last found it. */
static size_t
ldap_targets(struct rg_backend *b, struct rg_target_state *out, size_t max)
{
	struct ldap_backend	*lb = b->priv;
	size_t			 i;

	for (i = 0; i < lb->nuris && i < max; i++)
		rg_tstate_read(&lb->ts[i], lb->uris[i], &out[i]);
	return i;
}

const struct rg_backend_ops rg_backend_ldap_ops = {
	.type = "ldap",
	.open = ldap_open,
	.lookup = ldap_lookup,
	.close = ldap_close,
	.check = ldap_check,
	.worst_case_ms = ldap_worst_case_ms,
	.stats = ldap_stats,
	.targets = ldap_targets,
};
