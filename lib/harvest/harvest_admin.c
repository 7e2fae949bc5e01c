/* SPDX-License-Identifier: MIT */
/*
 * Directory harvest limits, the operator's view: list and unblock work
 * on the state store named in the configuration (the SQLite file or
 * Redis) without a running daemon, which notices an unblock within
 * about two seconds; describe prints the settings for `rcptgate -n`.
 *
 * Must not: touch a running limiter's table (it may be in another
 * process).
 * Locking: none; each call opens and closes its own store handle.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "harvest.h"
#include "harvest_int.h"
#include "harvest_store.h"

int
rg_hv_state_kind(const char *state, enum hv_state *kind, struct rg_error *err)
{
	if (state == NULL || state[0] == '\0')
		*kind = HV_STATE_MEMORY;
	else if (strncmp(state, "redis://", 8) == 0) {
#ifndef RG_HAVE_HIREDIS
		rg_error_set(err, "harvest state '%s': built without hiredis",
		    state);
		return -1;
#endif
		*kind = HV_STATE_REDIS;
	} else
		*kind = HV_STATE_FILE;
	(void)err;
	return 0;
}

/*
 * The store an operator command works on: 0 with *kind a file or Redis,
 * or -1 with err (memory only: why_not says what to do instead).
 */
static int
admin_store(const char *state, const char *why_not, enum hv_state *kind,
    struct rg_error *err)
{
	if (rg_hv_state_kind(state, kind, err) == -1)
		return -1;
	if (*kind == HV_STATE_MEMORY) {
		rg_error_set(err, "harvest: state is memory only (state = ): "
		    "%s", why_not);
		return -1;
	}
	return 0;
}

int
rg_harvest_list(const struct rg_conf *conf, FILE *out, struct rg_error *err)
{
	const char	*state = conf->harvest_state;
	enum hv_state	 kind;

	if (admin_store(state, "nothing to list outside the daemon", &kind,
	    err) == -1)
		return -1;
#ifdef RG_HAVE_HIREDIS
	if (kind == HV_STATE_REDIS)
		return rg_hv_redis_list(state, out, err);
#endif
	return rg_hv_store_list(state, out, err);
}

int
rg_harvest_unblock(const struct rg_conf *conf, const char *what,
    struct rg_error *err)
{
	const char		*state = conf->harvest_state;
	struct rg_hv_key	 key;
	char			 p[RG_HV_KEYSTR];
	enum hv_state		 kind;

	if (rg_hv_key_parse(what, conf->harvest_ipv4_prefix,
	    conf->harvest_ipv6_prefix, &key) == -1 ||
	    rg_hv_key_format(&key, p, sizeof(p)) == -1) {
		rg_error_set(err, "harvest unblock: '%s' is not an IP address "
		    "or ADDRESS/LENGTH", what);
		return -1;
	}
	if (admin_store(state, "restart the daemon to lift blocks", &kind,
	    err) == -1)
		return -1;
#ifdef RG_HAVE_HIREDIS
	if (kind == HV_STATE_REDIS)
		return rg_hv_redis_unblock(state, p, err);
#endif
	return rg_hv_store_unblock(state, &key, err);
}

void
rg_harvest_describe(const struct rg_conf *conf, FILE *out)
{
	const char	*state = conf->harvest_state;

	fprintf(out, "harvest: max_unknown=%" PRIu64 " window=%" PRIu64
	    "s block_time=%" PRIu64 "s max_unknown_per_session=%" PRIu64
	    " ipv4_prefix=%d ipv6_prefix=%d action=%s\n",
	    conf->harvest_max_unknown, conf->harvest_window_ms / 1000,
	    conf->harvest_block_time_ms / 1000,
	    conf->harvest_max_unknown_per_session, conf->harvest_ipv4_prefix,
	    conf->harvest_ipv6_prefix,
	    conf->harvest_action == RG_HARVEST_REJECT ? "reject" : "tempfail");
	fprintf(out, "harvest: state=%s tarpit=%" PRIu64 "ms tarpit_max=%"
	    PRIu64 "ms tarpit_sessions=%" PRIu64 " exempt=%zu networks"
	    " block_allows_postmaster=%s max_clients=%" PRIu64 "\n",
	    state == NULL || state[0] == '\0' ? "(memory only)" : state,
	    conf->harvest_tarpit_ms, conf->harvest_tarpit_max_ms,
	    conf->harvest_tarpit_sessions, conf->harvest_exempt.n,
	    conf->harvest_block_allows_postmaster ? "yes" : "no",
	    conf->harvest_max_clients);
}
