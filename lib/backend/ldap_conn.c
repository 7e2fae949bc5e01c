/* SPDX-License-Identifier: MIT */
/*
 * The LDAP backend's connections: the pool's hooks (a handle is made
 * unconnected and connects on first use), connect and bind to one
 * server, failover across the servers of `uri` in order, and failback
 * to an earlier server once its holdoff has passed.
 *
 * It must not follow referrals, must not set a libldap global option
 * (ld == NULL), and must not block past the caller's deadline.
 *
 * Locking: none of its own. A handle belongs to the thread that took
 * it from the pool; per-server holdoffs and counters are atomics, and
 * each connect's outcome goes into the server's rg_tstate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "ldap_priv.h"
#include "rg_time.h"

static void *
pool_open(void *ctx, uint64_t deadline_ms, struct rg_error *err)
{
	struct ldap_conn	*c;

	(void)ctx;
	(void)deadline_ms;
	/* Connected by the lookup, which knows the failover order. */
	if ((c = calloc(1, sizeof(*c))) == NULL)
		rg_error_set(err, "out of memory");
	return c;
}

static void
pool_close(void *ctx, void *conn, bool graceful)
{
	(void)ctx;
	(void)graceful;
	rg_ldap_conn_drop(conn);
	free(conn);
}

const struct rg_pool_hooks rg_ldap_pool_hooks = {
	.open = pool_open,
	.close = pool_close,
};

void
rg_ldap_conn_drop(struct ldap_conn *c)
{
	if (c->ld != NULL)
		ldap_unbind_ext_s(c->ld, NULL, NULL);
	c->ld = NULL;
}

void
rg_ldap_set_timeouts(LDAP *ld, uint64_t ms)
{
	struct timeval	tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	/* never ld == NULL here: that would set libldap's global default */
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
}

uint64_t
rg_ldap_budget(const struct ldap_backend *lb, uint64_t deadline_ms)
{
	uint64_t	left = rg_ms_left(deadline_ms);

	return left < lb->timeout_ms ? left : lb->timeout_ms;
}

/*
 * Connect and bind to one server within min(timeout, time left). Returns
 * an LDAP result code; on success *out is the bound handle. why gets a
 * human reason on failure.
 */
int
rg_ldap_connect_one(struct ldap_backend *lb, const char *uri,
    uint64_t deadline_ms, LDAP **out, int *stage, struct rg_error *why)
{
	LDAP		*ld = NULL;
	struct berval	 cred;
	const char	*what = "connect";
	char		 diag[512];
	uint64_t	 ms;
	int		 rc, v, st = RG_LDAP_STAGE_CONNECT;

	*out = NULL;
	if (stage == NULL)
		stage = &st;
	*stage = RG_LDAP_STAGE_CONNECT;
	if ((ms = rg_ldap_budget(lb, deadline_ms)) == 0) {
		rg_error_set(why, "%s: no time left", uri);
		return LDAP_TIMEOUT;
	}
	if ((rc = ldap_initialize(&ld, uri)) != LDAP_SUCCESS) {
		rg_error_set(why, "%s: %s", uri, ldap_err2string(rc));
		return rc;
	}
	v = LDAP_VERSION3;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON);
	rg_ldap_set_timeouts(ld, ms);
	if (strncasecmp(uri, "ldaps://", 8) == 0 || lb->starttls) {
		v = lb->tls_verify ? LDAP_OPT_X_TLS_DEMAND :
		    LDAP_OPT_X_TLS_NEVER;
		ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &v);
		if (lb->tls_ca_file != NULL)
			ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE,
			    lb->tls_ca_file);
		/* a context of this handle's own, with the options above */
		v = 0;
		ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &v);
	}
	if (lb->starttls) {
		what = "StartTLS";
		*stage = RG_LDAP_STAGE_TLS;
		if ((rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS)
			goto fail;
	}
	if ((ms = rg_ldap_budget(lb, deadline_ms)) == 0) {
		rc = LDAP_TIMEOUT;
		goto fail;
	}
	rg_ldap_set_timeouts(ld, ms);
	*stage = RG_LDAP_STAGE_BIND;
	if (lb->sasl_external) {
		/* an empty initial response (no authzid): one round trip,
		 * no libsasl2 interaction */
		what = "SASL EXTERNAL bind";
		cred.bv_val = (char *)"";
		cred.bv_len = 0;
		rc = ldap_sasl_bind_s(ld, NULL, "EXTERNAL", &cred, NULL, NULL,
		    NULL);
	} else {
		/* An anonymous bind too: it makes the connection now, so a
		 * dead server is found here, not in the search. */
		what = lb->bind_dn != NULL ? "bind" : "anonymous bind";
		cred.bv_val = lb->password;
		cred.bv_len = lb->password != NULL ? strlen(lb->password) : 0;
		rc = ldap_sasl_bind_s(ld, lb->bind_dn != NULL ? lb->bind_dn :
		    "", LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	}
	if (rc != LDAP_SUCCESS)
		goto fail;
	*out = ld;
	return LDAP_SUCCESS;
fail:
	/* the server's text (or the TLS library's reason) says what the
	 * result code does not: "Transport encryption required" */
	rg_ldap_diag(ld, diag, sizeof(diag));
	rg_error_set(why, "%s: %s%s%s failed: %s (%d)%s%s", uri, what,
	    lb->bind_dn != NULL && strcmp(what, "bind") == 0 ? " as " : "",
	    lb->bind_dn != NULL && strcmp(what, "bind") == 0 ? lb->bind_dn :
	    "", ldap_err2string(rc), rc, diag[0] != '\0' ? ": " : "", diag);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return rc;
}

/*
 * Connect c, trying servers in order: those not held off first, then
 * the held-off ones; probe (if < nuris) before all. Returns 0 or -1 with
 * err holding every server's reason.
 */
int
rg_ldap_conn_connect(struct ldap_backend *lb, struct ldap_conn *c,
    size_t probe, uint64_t deadline_ms, struct rg_error *err)
{
	size_t		 order[LDAP_URIS_MAX], n = 0;
	uint64_t	 now = rg_now_ms();
	struct rg_error	 why;
	LDAP		*ld;

	if (probe < lb->nuris)
		order[n++] = probe;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < lb->nuris; i++) {
			bool	held = atomic_load(&lb->down_until[i]) > now;

			if (i != probe && held == (pass == 1))
				order[n++] = i;
		}
	rg_error_clear(err);
	for (size_t k = 0; k < n; k++) {
		size_t	i = order[k];

		if (rg_ms_left(deadline_ms) == 0) {
			rg_error_append(err, "deadline reached before %s",
			    lb->uris[i]);
			break;
		}
		rg_error_clear(&why);
		atomic_fetch_add(&lb->n_connects, 1);
		if (rg_ldap_connect_one(lb, lb->uris[i], deadline_ms, &ld,
		    NULL, &why) == LDAP_SUCCESS) {
			atomic_store(&lb->down_until[i], 0);
			rg_tstate_up(&lb->ts[i]);
			c->ld = ld;
			c->uri_idx = i;
			rg_error_clear(err);
			return 0;
		}
		atomic_store(&lb->down_until[i], rg_now_ms() + lb->failback_ms);
		rg_tstate_down(&lb->ts[i], lb->uris[i], why.msg);
		/* "; " rather than a new line: this goes into one log line */
		if (err->msg[0] == '\0') {
			rg_error_set(err, "%s", why.msg);
		} else {
			size_t	used = strlen(err->msg);

			snprintf(err->msg + used, sizeof(err->msg) - used,
			    "; %s", why.msg);
		}
	}
	return -1;
}

/*
 * A handle on a later server goes back to an earlier one whose holdoff
 * has passed. One caller claims the probe (compare-and-swap renews the
 * holdoff) so a dead first server costs one connect per holdoff, not one
 * per lookup. Returns the server to probe, or nuris for none.
 */
size_t
rg_ldap_failback_probe(struct ldap_backend *lb,
    const struct ldap_conn *c)
{
	uint64_t	now = rg_now_ms(), d;

	for (size_t j = 0; j < c->uri_idx; j++) {
		d = atomic_load(&lb->down_until[j]);
		if (d <= now && atomic_compare_exchange_strong(
		    &lb->down_until[j], &d, now + lb->failback_ms))
			return j;
	}
	return lb->nuris;
}
