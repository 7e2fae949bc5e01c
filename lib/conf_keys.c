/* SPDX-License-Identifier: MIT */
/*
 * The declarative key table: every key of [milter], [policy] (also valid
 * in [domain NAME]), [cache] and [harvest], with its type, default (as
 * config text), range and the field it fills, and one setter per type
 * that parses a value into its field. Defaults go through the same
 * setters as the file does, so a default can never be a value the file
 * could not hold.
 *
 * It must not know about lines, files or sections' order: conf.c walks
 * the sections and reports errors with file, line and key; a setter only
 * says why a value is wrong. [backend NAME] keys are not here (the
 * drivers own them). Locking: none, except the one-time list of known
 * keys (pthread_once).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_int.h"
#include "log.h"

#define C(f)	false, offsetof(struct rg_conf, f)
#define P(f)	true, offsetof(struct rg_policy, f)

const struct key rg_conf_keys[] = {
	{ "milter.socket", SK_MILTER, KT_SOCKET, C(socket),
	    "unix:/run/rcptgate/rcptgate.sock", 0, 0, NULL },
	{ "milter.user", SK_MILTER, KT_STRING, C(user), "rcptgate",
	    0, 0, NULL },
	{ "milter.log_level", SK_MILTER, KT_LOGLEVEL, C(log_level), "info",
	    0, 0, NULL },
	{ "milter.socket_mode", SK_MILTER, KT_MODE, C(socket_mode), "0660",
	    0, 0777, "octal, 0 to 0777" },

	{ "policy.domains", SK_POLICY, KT_DOMAINS, C(domains), "",
	    0, 0, NULL },
	{ "policy.backends", SK_POLICY, KT_NAMES, P(backends), "",
	    0, 0, NULL },
	{ "policy.subaddress_delimiter", SK_POLICY, KT_DELIM,
	    P(subaddress_delimiter), "+", 0, 0, NULL },
	{ "policy.always_accept", SK_POLICY, KT_LOCALPARTS,
	    P(always_accept), "postmaster, abuse", 0, 0, NULL },
	{ "policy.on_backend_failure", SK_POLICY, KT_FAILURE,
	    P(on_backend_failure), "tempfail", 0, 0, NULL },
	{ "policy.skip_authenticated", SK_POLICY, KT_BOOL,
	    P(skip_authenticated), "yes", 0, 0, NULL },
	{ "policy.trusted_networks", SK_POLICY, KT_NETLIST,
	    P(trusted_networks), "", 0, 0, NULL },
	{ "policy.deadline", SK_POLICY, KT_DURATION, P(deadline_ms), "8s",
	    1, 10 * MS_M - 1, "must be more than 0 and less than 10m" },

	{ "cache.positive_ttl", SK_CACHE, KT_DURATION, C(positive_ttl_ms),
	    "1h", 0, 30 * MS_D, "0 to 30d" },
	{ "cache.negative_ttl", SK_CACHE, KT_DURATION, C(negative_ttl_ms),
	    "10m", 0, 30 * MS_D, "0 to 30d" },
	{ "cache.size", SK_CACHE, KT_UINT, C(cache_size), "100000",
	    0, 100000000, "0 (no cache) to 100000000" },
	{ "cache.stale_ttl", SK_CACHE, KT_DURATION, C(stale_ttl_ms), "1d",
	    0, 365 * MS_D, "0 (off) to 365d" },

	{ "harvest.max_unknown", SK_HARVEST, KT_UINT, C(harvest_max_unknown),
	    "5", 0, 1000000, "0 (off) to 1000000" },
	{ "harvest.window", SK_HARVEST, KT_DURATION, C(harvest_window_ms),
	    "10m", MS_S, 30 * MS_D, "1s to 30d" },
	{ "harvest.block_time", SK_HARVEST, KT_DURATION,
	    C(harvest_block_time_ms), "1h", MS_S, 365 * MS_D, "1s to 365d" },
	{ "harvest.max_unknown_per_session", SK_HARVEST, KT_UINT,
	    C(harvest_max_unknown_per_session), "3", 0, 100000,
	    "0 (off) to 100000" },
	{ "harvest.ipv4_prefix", SK_HARVEST, KT_PREFIX,
	    C(harvest_ipv4_prefix), "32", 8, 32, "8 to 32" },
	{ "harvest.ipv6_prefix", SK_HARVEST, KT_PREFIX,
	    C(harvest_ipv6_prefix), "64", 16, 128, "16 to 128" },
	{ "harvest.action", SK_HARVEST, KT_HACTION, C(harvest_action),
	    "tempfail", 0, 0, NULL },
	{ "harvest.state", SK_HARVEST, KT_STATE, C(harvest_state),
	    "/var/lib/rcptgate/harvest.db", 0, 0, NULL },
	{ "harvest.tarpit", SK_HARVEST, KT_DURATION, C(harvest_tarpit_ms),
	    "0", 0, 60 * MS_S - 1, "0 (off) to less than 60s" },
	{ "harvest.tarpit_max", SK_HARVEST, KT_DURATION,
	    C(harvest_tarpit_max_ms), "16s", 1, 60 * MS_S - 1,
	    "more than 0 and less than 60s" },
	{ "harvest.tarpit_sessions", SK_HARVEST, KT_UINT,
	    C(harvest_tarpit_sessions), "64", 0, 100000, "0 to 100000" },
	{ "harvest.exempt", SK_HARVEST, KT_NETLIST, C(harvest_exempt),
	    "127.0.0.0/8, ::1", 0, 0, NULL },
	{ "harvest.block_allows_postmaster", SK_HARVEST, KT_BOOL,
	    C(harvest_block_allows_postmaster), "no", 0, 0, NULL },
	{ "harvest.max_clients", SK_HARVEST, KT_UINT, C(harvest_max_clients),
	    "100000", 1, 100000000, "1 to 100000000" },

	{ "postfix_policy.socket", SK_PFPOLICY, KT_SOCKET, C(policy_socket),
	    "", 0, 0, NULL },
	{ "postfix_policy.max_connections", SK_PFPOLICY, KT_UINT,
	    C(policy_max_connections), "1000", 1, 100000, "1 to 100000" },
	{ "postfix_policy.idle_timeout", SK_PFPOLICY, KT_DURATION,
	    C(policy_idle_timeout_ms), "330s", MS_S, MS_D, "1s to 1d" },
	{ "postfix_policy.request_timeout", SK_PFPOLICY, KT_DURATION,
	    C(policy_request_timeout_ms), "10s", MS_S, 10 * MS_M,
	    "1s to 10m" },

	{ "control.socket", SK_CONTROL, KT_OPS, C(control_socket), "",
	    0, 0, NULL },
	{ "control.group", SK_CONTROL, KT_OPS, C(control_group), "",
	    0, 0, NULL },
	{ "metrics.listen", SK_METRICS, KT_OPS, C(metrics_listen), "",
	    0, 0, NULL },
};

#undef C
#undef P

_Static_assert(sizeof(rg_conf_keys) / sizeof(rg_conf_keys[0]) == NKEYS,
    "NKEYS is the size of the key table");

static const char *
key_name(const struct key *k)
{
	return strchr(k->full, '.') + 1;
}

static const char *known[NKEYS + 1];
static pthread_once_t known_once = PTHREAD_ONCE_INIT;

static void
known_init(void)
{
	for (size_t i = 0; i < NKEYS; i++)
		known[i] = rg_conf_keys[i].full;
	known[NKEYS] = NULL;
}

/* Static, NULL-terminated, in table order; safe from any thread. */
const char *const *
rg_conf_known_keys(void)
{
	(void)pthread_once(&known_once, known_init);
	return known;
}

/* ---- per-type value handling ---- */

/* The field k fills: in conf, or in pol for a policy key. */
void *
rg_conf_field(const struct key *k, struct rg_conf *conf, struct rg_policy *pol)
{
	return k->in_policy ? (char *)pol + k->off : (char *)conf + k->off;
}

/* Free what field f of type k owns; it can be set again after. */
void
rg_conf_field_free(const struct key *k, void *f)
{
	switch (k->type) {
	case KT_SOCKET:
	case KT_STRING:
	case KT_DELIM:
	case KT_STATE:
	case KT_OPS:
		free(*(char **)f);
		*(char **)f = NULL;
		break;
	case KT_DOMAINS:
	case KT_NAMES:
	case KT_LOCALPARTS:
		rg_list_free(f);
		break;
	case KT_NETLIST:
		rg_netlist_free(f);
		break;
	default:
		break;
	}
}

/* Deep copy of a policy field (for [domain] inheritance). 0 or -1. */
int
rg_conf_field_copy(const struct key *k, void *dst, const void *src)
{
	const struct rg_list	*sl = src;
	const struct rg_netlist	*sn = src;
	struct rg_list		*dl = dst;
	struct rg_netlist	*dn = dst;

	switch (k->type) {
	case KT_DELIM:
		*(char **)dst = strdup(*(char *const *)src);
		return *(char **)dst == NULL ? -1 : 0;
	case KT_NAMES:
	case KT_LOCALPARTS:
		dl->n = 0;
		if ((dl->v = calloc(sl->n + 1, sizeof(char *))) == NULL)
			return -1;
		for (; dl->n < sl->n; dl->n++)
			if ((dl->v[dl->n] = strdup(sl->v[dl->n])) == NULL)
				return -1;
		return 0;
	case KT_NETLIST:
		dn->n = 0;
		if ((dn->v = calloc(sn->n + 1, sizeof(*dn->v))) == NULL)
			return -1;
		if (sn->n > 0)
			memcpy(dn->v, sn->v, sn->n * sizeof(*dn->v));
		dn->n = sn->n;
		return 0;
	case KT_FAILURE:
		*(enum rg_failure_action *)dst =
		    *(const enum rg_failure_action *)src;
		return 0;
	case KT_BOOL:
		*(bool *)dst = *(const bool *)src;
		return 0;
	case KT_DURATION:
		*(uint64_t *)dst = *(const uint64_t *)src;
		return 0;
	default:
		return -1;	/* not a policy type */
	}
}

/* The key called name in a section of kind sk ([domain] takes [policy]'s). */
const struct key *
rg_conf_key_find(enum sec_kind sk, const char *name)
{
	enum sec_kind want = sk == SK_DOMAIN ? SK_POLICY : sk;

	for (size_t i = 0; i < NKEYS; i++)
		if (rg_conf_keys[i].sec == want &&
		    strcmp(key_name(&rg_conf_keys[i]), name) == 0)
			return &rg_conf_keys[i];
	return NULL;
}

/* The key "section.key"; NULL if there is none. */
const struct key *
rg_conf_key_by_full(const char *full)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(rg_conf_keys[i].full, full) == 0)
			return &rg_conf_keys[i];
	return NULL;
}

/* ---- the setters: parse v into f, or say why not and leave f alone ---- */

#define WHY(...)	((void)snprintf(why, wlen, __VA_ARGS__), -1)

/* A socket, or "" / "none": that door is off (stored as ""). */
static int
set_socket(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	char	*s;

	if (v[0] == '\0' || strcmp(v, "none") == 0)
		s = strdup("");
	else if (rg_conf_check_socket(v, &s, why, wlen) == -1)
		return -1;
	if (s == NULL)
		return WHY("out of memory");
	rg_conf_field_free(k, f);
	*(char **)f = s;
	return 0;
}

/*
 * KT_STRING (a user name), KT_DELIM (subaddress), KT_STATE and KT_OPS
 * (the [control] and [metrics] values, checked by conf_ops.c).
 */
static int
set_string(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	bool	 free_form = k->type == KT_STATE || k->type == KT_OPS;
	char	*s;

	if (k->type == KT_STATE && rg_conf_check_state(v, why, wlen) == -1)
		return -1;
	if (k->type == KT_OPS && rg_conf_ops_check(k->full, v, why, wlen) == -1)
		return -1;
	for (const char *p = v; !free_form && *p != '\0'; p++) {
		unsigned char	c = (unsigned char)*p;

		if (c > ' ' && c != 0x7f && (k->type == KT_STRING || c != '@'))
			continue;
		return WHY("invalid %s '%s' (no spaces or control characters"
		    "%s)", k->type == KT_STRING ? "name" : "delimiter", show,
		    k->type == KT_DELIM ? ", no '@'" : "");
	}
	if ((s = strdup(v)) == NULL)
		return WHY("out of memory");
	rg_conf_field_free(k, f);
	*(char **)f = s;
	return 0;
}

static int
set_loglevel(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	int	lvl;

	if ((lvl = rg_log_level_parse(v)) == -1)
		return WHY("unknown level '%s' (error, warning, info or debug)",
		    show);
	*(int *)f = lvl;
	return 0;
}

/* One item of a KT_DOMAINS, KT_NAMES or KT_LOCALPARTS list, normalised. */
static bool
list_item_ok(enum key_type t, char *it)
{
	bool	ok;

	if (t == KT_DOMAINS)
		return strcmp(it, "*") == 0 || rg_conf_norm_domain(it, true);
	if (t == KT_NAMES)
		return rg_conf_valid_name(it);
	ok = strchr(it, '@') == NULL;
	for (char *p = it; *p != '\0'; p++) {
		*p = (char)tolower((unsigned char)*p);
		ok &= !iscntrl((unsigned char)*p);
	}
	return ok;
}

static int
set_list(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	struct rg_list	 l;
	char		 item[VALUE_SHOW];

	if (rg_parse_list(v, &l) == -1)
		return WHY("out of memory");
	for (size_t i = 0; i < l.n; i++) {
		if (list_item_ok(k->type, l.v[i]))
			continue;
		rg_conf_show(item, sizeof(item), l.v[i]);
		rg_list_free(&l);
		return WHY("invalid %s '%s'", k->type == KT_DOMAINS ? "domain" :
		    k->type == KT_NAMES ? "backend name" : "local part", item);
	}
	rg_conf_field_free(k, f);
	*(struct rg_list *)f = l;
	return 0;
}

static int
set_failure(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	if (strcasecmp(v, "tempfail") == 0)
		*(enum rg_failure_action *)f = RG_FAILURE_TEMPFAIL;
	else if (strcasecmp(v, "accept") == 0)
		*(enum rg_failure_action *)f = RG_FAILURE_ACCEPT;
	else if (strcasecmp(v, "reject") == 0)
		return WHY("a backend failure is never a reject (an outage "
		    "would bounce real mail); use tempfail or accept");
	else
		return WHY("unknown action '%s' (tempfail or accept)", show);
	return 0;
}

static int
set_haction(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	if (strcasecmp(v, "tempfail") == 0)
		*(enum rg_harvest_action *)f = RG_HARVEST_TEMPFAIL;
	else if (strcasecmp(v, "reject") == 0)
		*(enum rg_harvest_action *)f = RG_HARVEST_REJECT;
	else
		return WHY("unknown action '%s' (tempfail or reject)", show);
	return 0;
}

static int
set_bool(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	bool	b;

	if (rg_parse_bool(v, &b) == -1)
		return WHY("invalid boolean '%s' (yes or no)", show);
	*(bool *)f = b;
	return 0;
}

static int
set_netlist(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	struct rg_list		 l;
	struct rg_netlist	 nl;
	struct rg_net		 n;
	char			 item[VALUE_SHOW];

	/* Name the bad item: rg_parse_netlist only says that one is bad. */
	if (rg_parse_list(v, &l) == -1)
		return WHY("out of memory");
	for (size_t i = 0; i < l.n; i++) {
		if (rg_parse_net(l.v[i], &n) == 0)
			continue;
		rg_conf_show(item, sizeof(item), l.v[i]);
		rg_list_free(&l);
		return WHY("invalid network '%s' (ADDRESS or ADDRESS/PREFIX)",
		    item);
	}
	rg_list_free(&l);
	if (rg_parse_netlist(v, &nl) == -1)
		return WHY("out of memory");
	rg_conf_field_free(k, f);
	*(struct rg_netlist *)f = nl;
	return 0;
}

static int
set_duration(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	uint64_t	u;

	if (rg_parse_duration(v, &u) == -1)
		return WHY("invalid duration '%s' (a number with ms, s, m, h "
		    "or d)", show);
	if (u < k->min || u > k->max)
		return WHY("'%s' out of range (%s)", show, k->range);
	*(uint64_t *)f = u;
	return 0;
}

/* Octal, at most four digits, at most k->max. */
static int
set_mode(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	uint64_t	u = 0;

	for (const char *p = v; *p != '\0' && u <= k->max; p++)
		u = *p >= '0' && *p <= '7' && p - v < 4 ?
		    u * 8 + (uint64_t)(*p - '0') : k->max + 1;
	if (*v == '\0' || u > k->max)
		return WHY("invalid mode '%s' (%s)", show, k->range);
	*(unsigned *)f = (unsigned)u;
	return 0;
}

/* KT_UINT into a uint64_t, KT_PREFIX into an int. */
static int
set_uint(const struct key *k, void *f, const char *v, const char *show,
    char *why, size_t wlen)
{
	uint64_t	u;

	if (rg_parse_uint(v, UINT64_MAX, &u) == -1)
		return WHY("invalid number '%s'", show);
	if (u < k->min || u > k->max)
		return WHY("'%s' out of range (%s)", show, k->range);
	if (k->type == KT_PREFIX)
		*(int *)f = (int)u;
	else
		*(uint64_t *)f = u;
	return 0;
}

#undef WHY

/*
 * Parse v for key k into field f (freeing the old value). On error why
 * gets the reason (without file, line or key: the caller adds them) and
 * f is unchanged. Allocates only what f then owns.
 */
int
rg_conf_field_set(const struct key *k, void *f, const char *v, char *why,
    size_t wlen)
{
	static int (*const set[])(const struct key *, void *, const char *,
	    const char *, char *, size_t) = {
		[KT_SOCKET] = set_socket,	[KT_STRING] = set_string,
		[KT_LOGLEVEL] = set_loglevel,	[KT_DOMAINS] = set_list,
		[KT_NAMES] = set_list,		[KT_LOCALPARTS] = set_list,
		[KT_DELIM] = set_string,	[KT_FAILURE] = set_failure,
		[KT_BOOL] = set_bool,		[KT_NETLIST] = set_netlist,
		[KT_DURATION] = set_duration,	[KT_UINT] = set_uint,
		[KT_PREFIX] = set_uint,		[KT_HACTION] = set_haction,
		[KT_STATE] = set_string,	[KT_MODE] = set_mode,
		[KT_OPS] = set_string,
	};
	char	show[VALUE_SHOW];

	if ((size_t)k->type >= sizeof(set) / sizeof(set[0]) ||
	    set[k->type] == NULL)
		return -1;
	rg_conf_show(show, sizeof(show), v);
	return set[k->type](k, f, v, show, why, wlen);
}

/* Every key's default into c (and c->policy); -1 only out of memory. */
int
rg_conf_apply_defaults(struct rg_conf *c)
{
	char	why[256];

	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &rg_conf_keys[i];

		if (rg_conf_field_set(k, rg_conf_field(k, c, &c->policy),
		    k->def, why, sizeof(why)) == -1)
			return -1;
	}
	c->all_domains = false;
	return 0;
}
