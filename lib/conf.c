/* SPDX-License-Identifier: MIT */
/*
 * The configuration loader: INI text (read by inih) to an immutable,
 * refcounted struct rg_conf, plus the value parsers and the rg_section_*
 * helpers that backend drivers use on their raw [backend NAME] sections.
 *
 * Loading runs in two passes. The first feeds inih line by line through
 * our own reader, which counts lines (Debian's inih has no
 * INI_HANDLER_LINENO), mirrors inih's line classification to see section
 * headers, continuations and syntax errors, and stores every key raw with
 * its line. The second pass interprets the raw sections through one
 * declarative key table, then resolves [domain] inheritance and backend
 * references. Every problem is appended to the caller's rg_error, so an
 * operator sees all of them at once; nothing is silently defaulted.
 *
 * It must not open backends, files other than the config, or sockets.
 * Locking: none. A load touches only its own memory; a loaded conf is
 * never written again, only its refcount (atomic builtins) changes.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"

#define CONF_FILE_MAX	(4u << 20)	/* a bigger config is a mistake */
#define VALUE_SHOW	72		/* bytes of a value quoted in errors */

#define MS_S	UINT64_C(1000)
#define MS_M	(60 * MS_S)
#define MS_H	(60 * MS_M)
#define MS_D	(24 * MS_H)

/* ---- value parsers ---- */

static int
parse_digits(const char **sp, uint64_t *out)
{
	const char	*p = *sp;
	uint64_t	 v = 0;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++)
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
			return -1;
	*sp = p;
	*out = v;
	return 0;
}

/* "8s" "500ms" "30" (seconds) to ms; -1 on garbage, sign, space, overflow. */
int
rg_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char	*unit;
		uint64_t	 mult;
	} units[] = {
		{ "", MS_S }, { "ms", 1 }, { "s", MS_S }, { "m", MS_M },
		{ "h", MS_H }, { "d", MS_D },
	};
	const char	*p = s;
	uint64_t	 v;

	if (s == NULL || parse_digits(&p, &v) == -1)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit) != 0)
			continue;
		if (__builtin_mul_overflow(v, units[i].mult, &v))
			return -1;
		*ms = v;
		return 0;
	}
	return -1;
}

/* yes/no true/false on/off 1/0, any case. */
int
rg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	if (s == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Decimal digits only, at most max; *out untouched on error. */
int
rg_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	const char	*p = s;
	uint64_t	 v;

	if (s == NULL || parse_digits(&p, &v) == -1 || *p != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

static bool
is_list_sep(char c)
{
	return c == ',' || isspace((unsigned char)c);
}

/*
 * Split on commas and white space, skipping empty items. The caller frees
 * out with rg_list_free; -1 only when out of memory (out is then empty).
 */
int
rg_parse_list(const char *s, struct rg_list *out)
{
	struct rg_list	 l = { 0, NULL };
	const char	*p, *q;
	size_t		 cap = 0;

	out->n = 0;
	out->v = NULL;
	if (s == NULL)
		return 0;
	for (p = s; *p != '\0'; p = q) {
		while (*p != '\0' && is_list_sep(*p))
			p++;
		for (q = p; *q != '\0' && !is_list_sep(*q); q++)
			;
		if (q == p)
			continue;
		if (l.n == cap) {
			size_t	 ncap = cap ? 2 * cap : 4;
			char	**nv = realloc(l.v, ncap * sizeof(*nv));

			if (nv == NULL)
				goto fail;
			l.v = nv;
			cap = ncap;
		}
		if ((l.v[l.n] = strndup(p, (size_t)(q - p))) == NULL)
			goto fail;
		l.n++;
	}
	*out = l;
	return 0;
fail:
	rg_list_free(&l);
	return -1;
}

void
rg_list_free(struct rg_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->n = 0;
	l->v = NULL;
}

bool
rg_list_contains_ci(const struct rg_list *l, const char *s)
{
	if (l == NULL || s == NULL)
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], s) == 0)
			return true;
	return false;
}

/* ADDRESS[/PREFIX], IPv4 or IPv6; host bits are masked off. */
int
rg_parse_net(const char *s, struct rg_net *out)
{
	char		 buf[INET6_ADDRSTRLEN + 8];
	char		*slash;
	struct rg_net	 n;
	uint64_t	 prefix;
	int		 max;
	size_t		 len;

	if (s == NULL || (len = strlen(s)) == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len + 1);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	memset(&n, 0, sizeof(n));
	if (inet_pton(AF_INET, buf, n.addr) == 1) {
		n.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, n.addr) == 1) {
		n.family = AF_INET6;
		max = 128;
	} else
		return -1;
	prefix = (uint64_t)max;
	if (slash != NULL && (strlen(slash) > 3 ||
	    rg_parse_uint(slash, (uint64_t)max, &prefix) == -1))
		return -1;
	n.prefix = (int)prefix;
	/* Mask host bits, so matching is a plain compare. */
	for (int bit = n.prefix; bit < max; bit++)
		n.addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	*out = n;
	return 0;
}

/* A list of rg_parse_net; caller frees with rg_netlist_free. */
int
rg_parse_netlist(const char *s, struct rg_netlist *out)
{
	struct rg_list	 l;
	struct rg_net	*v = NULL;

	out->n = 0;
	out->v = NULL;
	if (rg_parse_list(s, &l) == -1)
		return -1;
	if (l.n > 0 && (v = calloc(l.n, sizeof(*v))) == NULL)
		goto fail;
	for (size_t i = 0; i < l.n; i++)
		if (rg_parse_net(l.v[i], &v[i]) == -1)
			goto fail;
	out->n = l.n;
	out->v = v;
	rg_list_free(&l);
	return 0;
fail:
	free(v);
	rg_list_free(&l);
	return -1;
}

void
rg_netlist_free(struct rg_netlist *nl)
{
	if (nl == NULL)
		return;
	free(nl->v);
	nl->n = 0;
	nl->v = NULL;
}

static bool
prefix_equal(const uint8_t *net, const uint8_t *addr, int prefix)
{
	int	full = prefix / 8, rest = prefix % 8;
	uint8_t	mask;

	if (memcmp(net, addr, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xffu << (8 - rest));
	return (net[full] & mask) == (addr[full] & mask);
}

/*
 * Is the client (AF_INET or AF_INET6) in one of the networks? An
 * IPv4-mapped IPv6 address also matches IPv4 networks. Never blocks.
 */
bool
rg_netlist_match(const struct rg_netlist *nl, const struct sockaddr *sa)
{
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	uint8_t			 a4[4], a6[16];
	bool			 has4 = false, has6 = false;

	if (nl == NULL || sa == NULL)
		return false;
	/* Copy out: the caller's sockaddr need not be aligned for in6. */
	if (sa->sa_family == AF_INET) {
		memcpy(&sin, sa, sizeof(sin));
		memcpy(a4, &sin.sin_addr, 4);
		has4 = true;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(&sin6, sa, sizeof(sin6));
		memcpy(a6, &sin6.sin6_addr, 16);
		has6 = true;
		/* A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
			memcpy(a4, a6 + 12, 4);
			has4 = true;
		}
	} else
		return false;
	for (size_t i = 0; i < nl->n; i++) {
		const struct rg_net *n = &nl->v[i];

		if (n->family == AF_INET && has4 &&
		    prefix_equal(n->addr, a4, n->prefix))
			return true;
		if (n->family == AF_INET6 && has6 &&
		    prefix_equal(n->addr, a6, n->prefix))
			return true;
	}
	return false;
}

/* ---- raw sections ---- */

/* The first value of key, pointing into sec; NULL when absent. */
const char *
rg_section_get(const struct rg_section *sec, const char *key, int *line)
{
	if (sec == NULL || key == NULL)
		return NULL;
	for (size_t i = 0; i < sec->n; i++) {
		if (strcmp(sec->kv[i].key, key) != 0)
			continue;
		if (line != NULL)
			*line = sec->kv[i].line;
		return sec->kv[i].value;
	}
	return NULL;
}

/* Appends (never replaces) one line to err, so drivers can report all. */
void
rg_section_error(const struct rg_section *sec, const char *key,
    struct rg_error *err, const char *fmt, ...)
{
	char	 head[RG_NAME_MAX + 256];
	char	 msg[1024];
	va_list	 ap;
	int	 line = sec->line;

	if (key != NULL)
		(void)rg_section_get(sec, key, &line);
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (key != NULL)
		(void)snprintf(head, sizeof(head), "[backend %s] key '%s'",
		    sec->name, key);
	else
		(void)snprintf(head, sizeof(head), "[backend %s]", sec->name);
	rg_error_append(err, "%s:%d: %s: %s", sec->file ? sec->file : "-",
	    line, head, msg);
}

static void
show_value(char *dst, size_t len, const char *v)
{
	rg_log_escape(dst, len, v);
}

int
rg_section_string(const struct rg_section *sec, const char *key,
    const char *def, const char **out, struct rg_error *err)
{
	const char	*v = rg_section_get(sec, key, NULL);

	*out = v != NULL ? v : def;
	return 0;
}

int
rg_section_duration(const struct rg_section *sec, const char *key,
    uint64_t def, uint64_t *out, struct rg_error *err)
{
	const char	*v = rg_section_get(sec, key, NULL);
	char		 show[VALUE_SHOW];

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (rg_parse_duration(v, out) == 0)
		return 0;
	show_value(show, sizeof(show), v);
	rg_section_error(sec, key, err, "invalid duration '%s' (a number "
	    "with ms, s, m, h or d)", show);
	return -1;
}

int
rg_section_bool(const struct rg_section *sec, const char *key, bool def,
    bool *out, struct rg_error *err)
{
	const char	*v = rg_section_get(sec, key, NULL);
	char		 show[VALUE_SHOW];

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (rg_parse_bool(v, out) == 0)
		return 0;
	show_value(show, sizeof(show), v);
	rg_section_error(sec, key, err, "invalid boolean '%s' (yes or no)",
	    show);
	return -1;
}

int
rg_section_uint(const struct rg_section *sec, const char *key, uint64_t def,
    uint64_t max, uint64_t *out, struct rg_error *err)
{
	const char	*v = rg_section_get(sec, key, NULL);
	char		 show[VALUE_SHOW];

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (rg_parse_uint(v, max, out) == 0)
		return 0;
	show_value(show, sizeof(show), v);
	rg_section_error(sec, key, err, "invalid number '%s' (0 to %llu)",
	    show, (unsigned long long)max);
	return -1;
}

int
rg_section_list(const struct rg_section *sec, const char *key,
    struct rg_list *out, struct rg_error *err)
{
	if (rg_parse_list(rg_section_get(sec, key, NULL), out) == 0)
		return 0;
	rg_section_error(sec, key, err, "out of memory");
	return -1;
}

/* Reports every unknown key (one line each), not only the first. */
int
rg_section_check_keys(const struct rg_section *sec,
    const char *const *allowed, struct rg_error *err)
{
	int	rc = 0;

	/* Report every unknown key, not only the first: one run, all fixes. */
	for (size_t i = 0; i < sec->n; i++) {
		const char	*k = sec->kv[i].key;
		bool		 ok = strcmp(k, "type") == 0;

		for (size_t j = 0; !ok && allowed != NULL &&
		    allowed[j] != NULL; j++)
			ok = strcmp(k, allowed[j]) == 0;
		if (ok)
			continue;
		rg_error_append(err, "%s:%d: [backend %s] key '%s': unknown "
		    "key for this backend type", sec->file ? sec->file : "-",
		    sec->kv[i].line, sec->name, k);
		rc = -1;
	}
	return rc;
}

/* ---- the key table ---- */

enum sec_kind {
	SK_NONE,		/* keys before any [section] */
	SK_BAD,			/* an invalid header: its keys are skipped */
	SK_MILTER,
	SK_POLICY,
	SK_DOMAIN,
	SK_BACKEND,
	SK_CACHE,
	SK_HARVEST,
	SK_CONTROL,
	SK_METRICS,
};

enum key_type {
	KT_SOCKET,
	KT_STRING,
	KT_LOGLEVEL,
	KT_DOMAINS,
	KT_NAMES,
	KT_LOCALPARTS,
	KT_DELIM,
	KT_FAILURE,
	KT_BOOL,
	KT_NETLIST,
	KT_DURATION,
	KT_UINT,
	KT_PREFIX,
	KT_HACTION,
	KT_STATE,
	KT_MODE,
	KT_OPS,			/* string checked by rg_conf_ops_check */
};

struct key {
	const char	*full;		/* "section.key" */
	enum sec_kind	 sec;		/* SK_POLICY keys also fit [domain] */
	enum key_type	 type;
	bool		 in_policy;	/* off is into struct rg_policy */
	size_t		 off;
	const char	*def;		/* default, as config text */
	uint64_t	 min, max;	/* duration (ms), uint, prefix */
	const char	*range;		/* said when out of min..max */
};

#define C(f)	false, offsetof(struct rg_conf, f)
#define P(f)	true, offsetof(struct rg_policy, f)

static const struct key keys[] = {
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

	{ "control.socket", SK_CONTROL, KT_OPS, C(control_socket), "",
	    0, 0, NULL },
	{ "control.group", SK_CONTROL, KT_OPS, C(control_group), "",
	    0, 0, NULL },
	{ "metrics.listen", SK_METRICS, KT_OPS, C(metrics_listen), "",
	    0, 0, NULL },
};

#undef C
#undef P

#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

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
		known[i] = keys[i].full;
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

static void *
field_of(const struct key *k, struct rg_conf *conf, struct rg_policy *pol)
{
	return k->in_policy ? (char *)pol + k->off : (char *)conf + k->off;
}

static void
field_free(const struct key *k, void *f)
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
static int
field_copy(const struct key *k, void *dst, const void *src)
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

static bool
valid_name(const char *s)
{
	size_t	len = strlen(s);

	if (len == 0 || len >= RG_NAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("-_.", *s) == NULL)
			return false;
	return true;
}

/*
 * Lower-case s in place, drop one trailing dot and check it is a domain
 * name (labels of letters, digits, '-', '_' or UTF-8 bytes). A leading
 * '.' (every subdomain) is allowed when dot_ok.
 */
static bool
norm_domain(char *s, bool dot_ok)
{
	size_t	 len = strlen(s), label = 0;
	char	*p = s;

	if (len > 0 && s[len - 1] == '.')
		s[--len] = '\0';
	if (dot_ok && *p == '.')
		p++;
	if (*p == '\0' || len > 255)
		return false;
	for (; *p != '\0'; p++) {
		unsigned char	c = (unsigned char)*p;

		*p = (char)tolower(c);
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_' && c < 0x80)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

static int
check_socket(const char *v, char **out, char *why, size_t wlen)
{
	struct sockaddr_un	 sun;
	const char		*path = NULL, *p, *at;
	uint64_t		 port;

	if (strncmp(v, "unix:", 5) == 0)
		path = v + 5;
	else if (strncmp(v, "local:", 6) == 0)
		path = v + 6;
	else if (v[0] == '/')
		path = v;
	if (path != NULL) {
		if (path[0] != '/') {
			(void)snprintf(why, wlen, "socket path must be "
			    "absolute");
			return -1;
		}
		if (strlen(path) >= sizeof(sun.sun_path)) {
			(void)snprintf(why, wlen, "socket path longer than "
			    "%zu bytes", sizeof(sun.sun_path) - 1);
			return -1;
		}
		/* One spelling for the daemon: unix:/PATH. */
		if (asprintf(out, "unix:%s", path) == -1) {
			*out = NULL;
			(void)snprintf(why, wlen, "out of memory");
			return -1;
		}
		return 0;
	}
	if (strncmp(v, "inet:", 5) == 0)
		p = v + 5;
	else if (strncmp(v, "inet6:", 6) == 0)
		p = v + 6;
	else {
		(void)snprintf(why, wlen, "expected unix:/PATH, inet:PORT@HOST "
		    "or inet6:PORT@HOST");
		return -1;
	}
	at = strchr(p, '@');
	{
		char	portbuf[8];
		size_t	plen = at ? (size_t)(at - p) : strlen(p);

		if (plen == 0 || plen >= sizeof(portbuf)) {
			(void)snprintf(why, wlen, "bad port (1 to 65535)");
			return -1;
		}
		memcpy(portbuf, p, plen);
		portbuf[plen] = '\0';
		if (rg_parse_uint(portbuf, 65535, &port) == -1 || port == 0) {
			(void)snprintf(why, wlen, "bad port (1 to 65535)");
			return -1;
		}
	}
	if (at != NULL) {
		if (at[1] == '\0') {
			(void)snprintf(why, wlen, "empty host after '@'");
			return -1;
		}
		for (p = at + 1; *p != '\0'; p++)
			if (isspace((unsigned char)*p) || iscntrl((unsigned
			    char)*p) || *p == '@') {
				(void)snprintf(why, wlen, "bad host");
				return -1;
			}
	}
	if ((*out = strdup(v)) == NULL) {
		(void)snprintf(why, wlen, "out of memory");
		return -1;
	}
	return 0;
}

static int
check_state(const char *v, char *why, size_t wlen)
{
	const char	*h, *colon, *slash;
	uint64_t	 n;
	char		 num[16];
	size_t		 len;

	if (v[0] == '\0' || v[0] == '/')
		return 0;
	if (strncmp(v, "redis://", 8) != 0) {
		(void)snprintf(why, wlen, "expected an absolute path, \"\" "
		    "(memory only) or redis://HOST:PORT/DB");
		return -1;
	}
	h = v + 8;
	if ((slash = strchr(h, '/')) == NULL) {
		(void)snprintf(why, wlen, "expected redis://HOST:PORT/DB");
		return -1;
	}
	/* The last ':' before '/', so a bracketed IPv6 host works. */
	for (colon = slash; colon > h && *colon != ':'; colon--)
		;
	if (colon == h || *colon != ':') {
		(void)snprintf(why, wlen, "expected redis://HOST:PORT/DB");
		return -1;
	}
	for (const char *p = h; p < colon; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p) ||
		    *p == '@') {
			(void)snprintf(why, wlen, "bad redis host");
			return -1;
		}
	len = (size_t)(slash - colon - 1);
	if (len == 0 || len >= sizeof(num)) {
		(void)snprintf(why, wlen, "bad redis port (1 to 65535)");
		return -1;
	}
	memcpy(num, colon + 1, len);
	num[len] = '\0';
	if (rg_parse_uint(num, 65535, &n) == -1 || n == 0) {
		(void)snprintf(why, wlen, "bad redis port (1 to 65535)");
		return -1;
	}
	if (rg_parse_uint(slash + 1, INT_MAX, &n) == -1) {
		(void)snprintf(why, wlen, "bad redis database number");
		return -1;
	}
	return 0;
}

/*
 * Parse v for key k into field f (freeing the old value). On error,
 * why gets the reason and f is unchanged.
 */
static int
field_set(const struct key *k, void *f, const char *v, char *why,
    size_t wlen)
{
	char		 show[VALUE_SHOW];
	struct rg_list	 l;
	struct rg_netlist nl;
	uint64_t	 u;
	bool		 b;
	char		*s;
	int		 lvl;

	show_value(show, sizeof(show), v);
	switch (k->type) {
	case KT_SOCKET:
		if (check_socket(v, &s, why, wlen) == -1)
			return -1;
		field_free(k, f);
		*(char **)f = s;
		return 0;
	case KT_OPS:
		if (rg_conf_ops_check(k->full, v, why, wlen) == -1)
			return -1;
		if ((s = strdup(v)) == NULL)
			goto oom;
		field_free(k, f);
		*(char **)f = s;
		return 0;
	case KT_STATE:
		if (check_state(v, why, wlen) == -1)
			return -1;
		/* FALLTHROUGH */
	case KT_STRING:
	case KT_DELIM:
		for (const char *p = v; k->type != KT_STATE && *p; p++) {
			unsigned char	c = (unsigned char)*p;

			if (c > ' ' && c != 0x7f && (k->type == KT_STRING ||
			    c != '@'))
				continue;
			(void)snprintf(why, wlen, "invalid %s '%s' (no spaces "
			    "or control characters%s)", k->type == KT_STRING ?
			    "name" : "delimiter", show, k->type == KT_DELIM ?
			    ", no '@'" : "");
			return -1;
		}
		if ((s = strdup(v)) == NULL)
			goto oom;
		field_free(k, f);
		*(char **)f = s;
		return 0;
	case KT_LOGLEVEL:
		if ((lvl = rg_log_level_parse(v)) == -1) {
			(void)snprintf(why, wlen, "unknown level '%s' (error, "
			    "warning, info or debug)", show);
			return -1;
		}
		*(int *)f = lvl;
		return 0;
	case KT_DOMAINS:
	case KT_NAMES:
	case KT_LOCALPARTS:
		if (rg_parse_list(v, &l) == -1)
			goto oom;
		for (size_t i = 0; i < l.n; i++) {
			char	*it = l.v[i];
			bool	 ok;

			if (k->type == KT_DOMAINS)
				ok = strcmp(it, "*") == 0 ||
				    norm_domain(it, true);
			else if (k->type == KT_NAMES)
				ok = valid_name(it);
			else {
				ok = strchr(it, '@') == NULL;
				for (char *p = it; *p != '\0'; p++) {
					*p = (char)tolower((unsigned char)*p);
					ok &= !iscntrl((unsigned char)*p);
				}
			}
			if (ok)
				continue;
			show_value(show, sizeof(show), it);
			(void)snprintf(why, wlen, "invalid %s '%s'",
			    k->type == KT_DOMAINS ? "domain" :
			    k->type == KT_NAMES ? "backend name" :
			    "local part", show);
			rg_list_free(&l);
			return -1;
		}
		field_free(k, f);
		*(struct rg_list *)f = l;
		return 0;
	case KT_FAILURE:
		if (strcasecmp(v, "tempfail") == 0)
			*(enum rg_failure_action *)f = RG_FAILURE_TEMPFAIL;
		else if (strcasecmp(v, "accept") == 0)
			*(enum rg_failure_action *)f = RG_FAILURE_ACCEPT;
		else if (strcasecmp(v, "reject") == 0) {
			(void)snprintf(why, wlen, "a backend failure is never "
			    "a reject (an outage would bounce real mail); use "
			    "tempfail or accept");
			return -1;
		} else {
			(void)snprintf(why, wlen, "unknown action '%s' "
			    "(tempfail or accept)", show);
			return -1;
		}
		return 0;
	case KT_HACTION:
		if (strcasecmp(v, "tempfail") == 0)
			*(enum rg_harvest_action *)f = RG_HARVEST_TEMPFAIL;
		else if (strcasecmp(v, "reject") == 0)
			*(enum rg_harvest_action *)f = RG_HARVEST_REJECT;
		else {
			(void)snprintf(why, wlen, "unknown action '%s' "
			    "(tempfail or reject)", show);
			return -1;
		}
		return 0;
	case KT_BOOL:
		if (rg_parse_bool(v, &b) == -1) {
			(void)snprintf(why, wlen, "invalid boolean '%s' (yes "
			    "or no)", show);
			return -1;
		}
		*(bool *)f = b;
		return 0;
	case KT_NETLIST:
		if (rg_parse_list(v, &l) == -1)
			goto oom;
		for (size_t i = 0; i < l.n; i++) {
			struct rg_net	n;

			if (rg_parse_net(l.v[i], &n) == 0)
				continue;
			show_value(show, sizeof(show), l.v[i]);
			(void)snprintf(why, wlen, "invalid network '%s' "
			    "(ADDRESS or ADDRESS/PREFIX)", show);
			rg_list_free(&l);
			return -1;
		}
		rg_list_free(&l);
		if (rg_parse_netlist(v, &nl) == -1)
			goto oom;
		field_free(k, f);
		*(struct rg_netlist *)f = nl;
		return 0;
	case KT_DURATION:
		if (rg_parse_duration(v, &u) == -1) {
			(void)snprintf(why, wlen, "invalid duration '%s' (a "
			    "number with ms, s, m, h or d)", show);
			return -1;
		}
		if (u < k->min || u > k->max) {
			(void)snprintf(why, wlen, "'%s' out of range (%s)",
			    show, k->range);
			return -1;
		}
		*(uint64_t *)f = u;
		return 0;
	case KT_MODE:
		u = 0;
		for (const char *p = v; *p != '\0' && u <= k->max; p++)
			u = *p >= '0' && *p <= '7' && p - v < 4 ?
			    u * 8 + (uint64_t)(*p - '0') : k->max + 1;
		if (*v == '\0' || u > k->max) {
			(void)snprintf(why, wlen, "invalid mode '%s' (%s)",
			    show, k->range);
			return -1;
		}
		*(unsigned *)f = (unsigned)u;
		return 0;
	case KT_UINT:
	case KT_PREFIX:
		if (rg_parse_uint(v, UINT64_MAX, &u) == -1) {
			(void)snprintf(why, wlen, "invalid number '%s'", show);
			return -1;
		}
		if (u < k->min || u > k->max) {
			(void)snprintf(why, wlen, "'%s' out of range (%s)",
			    show, k->range);
			return -1;
		}
		if (k->type == KT_PREFIX)
			*(int *)f = (int)u;
		else
			*(uint64_t *)f = u;
		return 0;
	}
	return -1;
oom:
	(void)snprintf(why, wlen, "out of memory");
	return -1;
}

/* ---- pass 1: lines to raw sections ---- */

enum line_class {
	LC_NONE,		/* no line yet, or already checked */
	LC_COMMENT,		/* blank or comment: inih skips it */
	LC_SECTION,
	LC_KEY,
	LC_CONT,		/* indented line continuing the last value */
	LC_BAD,			/* syntax error, already reported */
};

struct raw_sec {
	enum sec_kind	 kind;
	char		*name;		/* NAME of [domain/backend NAME] */
	char		*label;		/* "milter", "backend corp", ... */
	int		 line;
	size_t		 n, cap;
	struct rg_kv	*kv;
};

struct lmsg {
	int	 line;
	int	 seq;
	char	*text;
};

struct loader {
	const char	*file;
	const char	*p;		/* next unread byte of the text */
	int		 line;		/* number of the last line read */
	int		 maxlen;	/* longest line inih takes */
	enum line_class	 cls;		/* class of that line */
	bool		 called;	/* the handler ran for it */
	bool		 prev_name;	/* mirror of inih's prev_name[0] */
	bool		 oom;
	size_t		 nsecs, capsecs;
	struct raw_sec	*secs;
	struct rg_error	*err;
	int		 nerr;
	size_t		 nmsgs, capmsgs;
	struct lmsg	*msgs;		/* errors, sorted by line at the end */
};

static void
lerr(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
lerr(struct loader *ld, int line, const char *fmt, ...)
{
	char	msg[1024];
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ld->nerr++;
	if (ld->nmsgs == ld->capmsgs) {
		size_t		 ncap = ld->capmsgs ? 2 * ld->capmsgs : 16;
		struct lmsg	*n = realloc(ld->msgs, ncap * sizeof(*n));

		if (n == NULL)
			goto direct;
		ld->msgs = n;
		ld->capmsgs = ncap;
	}
	if (asprintf(&ld->msgs[ld->nmsgs].text, "%s:%d: %s", ld->file, line,
	    msg) == -1)
		goto direct;
	ld->msgs[ld->nmsgs].line = line;
	ld->msgs[ld->nmsgs].seq = ld->nerr;
	ld->nmsgs++;
	return;
direct:
	/* Out of memory: unsorted beats lost. */
	rg_error_append(ld->err, "%s:%d: %s", ld->file, line, msg);
}

static int
lmsg_cmp(const void *a, const void *b)
{
	const struct lmsg *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hand the errors to the caller in file order, whichever pass found them. */
static void
lmsg_flush(struct loader *ld)
{
	if (ld->nmsgs > 0)
		qsort(ld->msgs, ld->nmsgs, sizeof(*ld->msgs), lmsg_cmp);
	for (size_t i = 0; i < ld->nmsgs; i++) {
		rg_error_append(ld->err, "%s", ld->msgs[i].text);
		free(ld->msgs[i].text);
	}
	free(ld->msgs);
	ld->msgs = NULL;
	ld->nmsgs = ld->capmsgs = 0;
}

static struct raw_sec *
sec_add(struct loader *ld, enum sec_kind kind, const char *name,
    const char *label, int line)
{
	struct raw_sec	*s;

	if (ld->nsecs == ld->capsecs) {
		size_t		 ncap = ld->capsecs ? 2 * ld->capsecs : 8;
		struct raw_sec	*n = realloc(ld->secs, ncap * sizeof(*n));

		if (n == NULL)
			goto oom;
		ld->secs = n;
		ld->capsecs = ncap;
	}
	s = &ld->secs[ld->nsecs];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->line = line;
	s->name = name ? strdup(name) : NULL;
	s->label = strdup(label);
	if ((name != NULL && s->name == NULL) || s->label == NULL) {
		free(s->name);
		free(s->label);
		goto oom;
	}
	ld->nsecs++;
	return s;
oom:
	ld->oom = true;
	return NULL;
}

static void
sec_free(struct raw_sec *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->kv[i].key);
		free(s->kv[i].value);
	}
	free(s->kv);
	free(s->name);
	free(s->label);
}

/* The same test inih applies to find '=', ':', ']' or a " ;" comment. */
static const char *
find_chars_or_comment(const char *s, const char *chars)
{
	bool	was_space = false;

	while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
	    !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

static void
section_header(struct loader *ld, const char *start, const char *end)
{
	char		 buf[512], *name, *kind, *rest, *sp;
	size_t		 len = (size_t)(end - start);
	const char	*after = end + 1;
	enum sec_kind	 k;

	while (isspace((unsigned char)*after))
		after++;
	if (*after != '\0' && *after != ';' && *after != '#') {
		lerr(ld, ld->line, "text after ']' of a section header");
		(void)sec_add(ld, SK_BAD, NULL, "?", ld->line);
		return;
	}
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;	/* longer is invalid anyway */
	memcpy(buf, start, len);
	buf[len] = '\0';
	for (kind = buf; isspace((unsigned char)*kind); kind++)
		;
	for (sp = kind + strlen(kind); sp > kind &&
	    isspace((unsigned char)sp[-1]); sp--)
		*--sp = '\0';
	for (rest = kind; *rest != '\0' && !isspace((unsigned char)*rest);
	    rest++)
		;
	name = rest;
	if (*rest != '\0') {
		*rest = '\0';
		for (name = rest + 1; isspace((unsigned char)*name); name++)
			;
	}
	if (strcmp(kind, "domain") == 0 || strcmp(kind, "backend") == 0) {
		char	label[2 * sizeof(buf) + 2];
		char	show[VALUE_SHOW];
		bool	dom = kind[0] == 'd';

		if (*name == '\0') {
			lerr(ld, ld->line, "[%s]: missing name (write [%s "
			    "NAME])", kind, kind);
			(void)sec_add(ld, SK_BAD, NULL, kind, ld->line);
			return;
		}
		show_value(show, sizeof(show), name);
		if (dom ? !norm_domain(name, false) : !valid_name(name)) {
			lerr(ld, ld->line, "[%s %s]: invalid %s name", kind,
			    show, kind);
			(void)sec_add(ld, SK_BAD, NULL, kind, ld->line);
			return;
		}
		for (size_t i = 0; i < ld->nsecs; i++) {
			struct raw_sec *o = &ld->secs[i];

			if (o->kind != (dom ? SK_DOMAIN : SK_BACKEND) ||
			    strcasecmp(o->name, name) != 0)
				continue;
			lerr(ld, ld->line, "[%s %s]: defined twice (first at "
			    "line %d)", kind, name, o->line);
			(void)sec_add(ld, SK_BAD, NULL, kind, ld->line);
			return;
		}
		(void)snprintf(label, sizeof(label), "%s %s", kind, name);
		(void)sec_add(ld, dom ? SK_DOMAIN : SK_BACKEND, name, label,
		    ld->line);
		return;
	}
	if (strcmp(kind, "milter") == 0)
		k = SK_MILTER;
	else if (strcmp(kind, "policy") == 0)
		k = SK_POLICY;
	else if (strcmp(kind, "cache") == 0)
		k = SK_CACHE;
	else if (strcmp(kind, "harvest") == 0)
		k = SK_HARVEST;
	else if (strcmp(kind, "control") == 0)
		k = SK_CONTROL;
	else if (strcmp(kind, "metrics") == 0)
		k = SK_METRICS;
	else {
		char	show[VALUE_SHOW];

		show_value(show, sizeof(show), kind);
		lerr(ld, ld->line, "[%s]: unknown section (milter, policy, "
		    "domain NAME, backend NAME, cache, harvest, control or metrics)", show);
		(void)sec_add(ld, SK_BAD, NULL, "?", ld->line);
		return;
	}
	if (*name != '\0') {
		lerr(ld, ld->line, "[%s]: this section takes no name", kind);
		(void)sec_add(ld, SK_BAD, NULL, kind, ld->line);
		return;
	}
	(void)sec_add(ld, k, NULL, kind, ld->line);
}

/* Classify a line exactly as inih 55 will, before it sees it. */
static void
classify(struct loader *ld, const char *line)
{
	const char	*start = line, *end;

	while (isspace((unsigned char)*start))
		start++;
	if (*start == '\0' || *start == ';' || *start == '#') {
		ld->cls = LC_COMMENT;
	} else if (ld->prev_name && start > line) {
		ld->cls = LC_CONT;
	} else if (*start == '[') {
		end = find_chars_or_comment(start + 1, "]");
		if (*end == ']') {
			ld->cls = LC_SECTION;
			ld->prev_name = false;
			section_header(ld, start + 1, end);
		} else {
			ld->cls = LC_BAD;
			lerr(ld, ld->line, "section header without ']'");
		}
	} else {
		end = find_chars_or_comment(start, "=:");
		if (*end == '=' || *end == ':') {
			const char *ne = end;

			while (ne > start && isspace((unsigned char)ne[-1]))
				ne--;
			ld->cls = LC_KEY;
			ld->prev_name = ne > start;
		} else {
			ld->cls = LC_BAD;
			lerr(ld, ld->line, "expected 'key = value', "
			    "'[section]' or a comment");
		}
	}
}

/* Did inih do with the last line what we expected? */
static void
check_last(struct loader *ld)
{
	bool	want = ld->cls == LC_KEY || ld->cls == LC_CONT;

	if (ld->cls != LC_NONE && want != ld->called && ld->cls != LC_BAD)
		lerr(ld, ld->line, "cannot parse this line");
	ld->cls = LC_NONE;
	ld->called = false;
}

/* inih's reader: hands out one line per call, like fgets. */
static char *
conf_reader(char *buf, int num, void *arg)
{
	struct loader	*ld = arg;
	const char	*nl, *line = ld->p;
	size_t		 n;

	check_last(ld);
	if (*ld->p == '\0')
		return NULL;
	nl = strchr(ld->p, '\n');
	n = nl != NULL ? (size_t)(nl - ld->p) + 1 : strlen(ld->p);
	ld->p += n;
	ld->line++;
	ld->maxlen = num - 2;
	/* inih keeps its own BOM check; strip it here so both agree. */
	if (ld->line == 1 && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		n -= 3;
	}
	if (num < 2 || n > (size_t)num - 1) {
		/* inih would split it into several lines: refuse instead. */
		lerr(ld, ld->line, "line longer than %d characters (continue "
		    "a long value on indented lines)", num - 2);
		ld->cls = LC_BAD;
		(void)snprintf(buf, (size_t)num, "\n");
		return buf;
	}
	memcpy(buf, line, n);
	buf[n] = '\0';
	classify(ld, buf);
	return buf;
}

static int
conf_handler(void *arg, const char *section, const char *name,
    const char *value)
{
	struct loader	*ld = arg;
	struct raw_sec	*s;
	struct rg_kv	*kv;

	if (ld->called || (ld->cls != LC_KEY && ld->cls != LC_CONT)) {
		ld->called = true;
		return 1;	/* check_last reports the mismatch */
	}
	ld->called = true;
	if (ld->nsecs == 0 && sec_add(ld, SK_NONE, NULL, "", 0) == NULL)
		return 1;
	s = &ld->secs[ld->nsecs - 1];
	if (ld->cls == LC_CONT) {
		/*
		 * inih 55 leaves " ; comment" on continuation lines, and
		 * keeps only the first 50 bytes of the key name for them:
		 * strip the comment here and append to our own last key.
		 */
		const char	*e = find_chars_or_comment(value, NULL);
		size_t		 add = (size_t)(e - value), old;
		char		*nv;

		while (add > 0 && isspace((unsigned char)value[add - 1]))
			add--;
		if (s->n == 0 || add == 0)
			return 1;
		kv = &s->kv[s->n - 1];
		old = strlen(kv->value);
		if ((nv = realloc(kv->value, old + add + 2)) == NULL) {
			ld->oom = true;
			return 1;
		}
		if (old > 0)
			nv[old++] = ' ';
		memcpy(nv + old, value, add);
		nv[old + add] = '\0';
		kv->value = nv;
		return 1;
	}
	if (s->n == s->cap) {
		size_t		 ncap = s->cap ? 2 * s->cap : 8;
		struct rg_kv	*n = realloc(s->kv, ncap * sizeof(*n));

		if (n == NULL) {
			ld->oom = true;
			return 1;
		}
		s->kv = n;
		s->cap = ncap;
	}
	kv = &s->kv[s->n];
	kv->key = strdup(name);
	kv->value = strdup(value);
	kv->line = ld->line;
	if (kv->key == NULL || kv->value == NULL) {
		free(kv->key);
		free(kv->value);
		ld->oom = true;
		return 1;
	}
	s->n++;
	return 1;
}

/* ---- pass 2: raw sections to the model ---- */

static void
policy_free(struct rg_policy *p)
{
	rg_list_free(&p->backends);
	free(p->backend_idx);
	p->backend_idx = NULL;
	free(p->subaddress_delimiter);
	p->subaddress_delimiter = NULL;
	rg_list_free(&p->always_accept);
	rg_netlist_free(&p->trusted_networks);
}

static void
conf_free(struct rg_conf *c)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!keys[i].in_policy)
			field_free(&keys[i], field_of(&keys[i], c, NULL));
	policy_free(&c->policy);
	for (size_t i = 0; i < c->ndomains; i++) {
		free(c->domain[i].name);
		policy_free(&c->domain[i].policy);
	}
	free(c->domain);
	for (size_t i = 0; i < c->nbackends; i++) {
		struct rg_section *s = &c->backends[i];

		for (size_t j = 0; j < s->n; j++) {
			free(s->kv[j].key);
			free(s->kv[j].value);
		}
		free(s->kv);
		free(s->name);
	}
	free(c->backends);
	free(c->path);
	free(c);
}

static int
apply_defaults(struct rg_conf *c)
{
	char	why[256];

	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];

		if (field_set(k, field_of(k, c, &c->policy), k->def, why,
		    sizeof(why)) == -1)
			return -1;
	}
	c->all_domains = false;
	return 0;
}

static const struct key *
key_find(enum sec_kind sk, const char *name)
{
	enum sec_kind want = sk == SK_DOMAIN ? SK_POLICY : sk;

	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].sec == want &&
		    strcmp(key_name(&keys[i]), name) == 0)
			return &keys[i];
	return NULL;
}

/* Where each key was set: line per key table index, 0 = unset. */
struct seen {
	int	line[NKEYS];
};

static void
interpret_kv(struct loader *ld, struct raw_sec *s, const struct rg_kv *kv,
    struct rg_conf *c, struct rg_policy *pol, struct seen *seen)
{
	const struct key	*k;
	char			 why[512], show[VALUE_SHOW];
	size_t			 idx;

	show_value(show, sizeof(show), kv->key);
	if (s->kind == SK_NONE) {
		lerr(ld, kv->line, "key '%s': outside of any [section]",
		    show);
		return;
	}
	if (s->kind == SK_DOMAIN && strcmp(kv->key, "domains") == 0) {
		lerr(ld, kv->line, "[%s] key 'domains': not allowed in a "
		    "[domain] section (it is the domain itself)", s->label);
		return;
	}
	if ((k = key_find(s->kind, kv->key)) == NULL) {
		lerr(ld, kv->line, "[%s] key '%s': unknown key", s->label,
		    show);
		return;
	}
	idx = (size_t)(k - keys);
	if (seen->line[idx] != 0) {
		lerr(ld, kv->line, "[%s] key '%s': duplicate key (first at "
		    "line %d)", s->label, show, seen->line[idx]);
		return;
	}
	seen->line[idx] = kv->line;
	if (field_set(k, field_of(k, c, pol), kv->value, why,
	    sizeof(why)) == -1) {
		/* A hint for the common slip: '#' starts no inline comment. */
		const char *hint = strstr(kv->value, " #") != NULL ||
		    strstr(kv->value, "\t#") != NULL ? " (inline comments "
		    "start with ';', not '#')" : "";

		lerr(ld, kv->line, "[%s] key '%s': %s%s", s->label, show,
		    why, hint);
	}
}

static void
interpret_backend(struct loader *ld, struct raw_sec *s, struct rg_conf *c)
{
	struct rg_section	*b = &c->backends[c->nbackends];
	size_t			 j;

	for (size_t i = 0; i < s->n; i++)
		for (j = 0; j < i; j++)
			if (strcmp(s->kv[i].key, s->kv[j].key) == 0) {
				lerr(ld, s->kv[i].line, "[%s] key '%s': "
				    "duplicate key (first at line %d)",
				    s->label, s->kv[i].key, s->kv[j].line);
				break;
			}
	if (rg_section_get(&(struct rg_section){ .n = s->n, .kv = s->kv },
	    "type", NULL) == NULL)
		lerr(ld, s->line, "[%s]: no 'type' key (sqlite, ldap or "
		    "callahead)", s->label);
	/* Move the raw keys: the driver validates them at open. */
	b->name = s->name;
	s->name = NULL;
	b->file = c->path;
	b->line = s->line;
	b->n = s->n;
	b->kv = s->kv;
	s->kv = NULL;
	s->n = 0;
	c->nbackends++;
}

static size_t
backend_index(const struct rg_conf *c, const char *name)
{
	for (size_t i = 0; i < c->nbackends; i++)
		if (strcasecmp(c->backends[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

static const struct key *
key_by_full(const char *full)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].full, full) == 0)
			return &keys[i];
	return NULL;
}

static int
resolve_backends(struct loader *ld, struct rg_conf *c, struct rg_policy *p,
    const char *label, int line)
{
	if (p->backends.n == 0)
		return 0;
	if ((p->backend_idx = calloc(p->backends.n,
	    sizeof(*p->backend_idx))) == NULL) {
		ld->oom = true;
		return -1;
	}
	for (size_t i = 0; i < p->backends.n; i++) {
		if ((p->backend_idx[i] = backend_index(c,
		    p->backends.v[i])) != SIZE_MAX)
			continue;
		/* line == 0: inherited; reported once at [policy]. */
		if (line != 0)
			lerr(ld, line, "[%s] key 'backends': no [backend %s] "
			    "section", label, p->backends.v[i]);
	}
	return 0;
}

static int
interpret(struct loader *ld, struct rg_conf *c)
{
	struct seen	 global;
	struct seen	*dseen = NULL;
	size_t		 nd = 0, nb = 0;
	const struct key *kb = key_by_full("policy.backends");
	const struct key *kd = key_by_full("policy.domains");
	size_t		 ib = (size_t)(kb - keys);

	memset(&global, 0, sizeof(global));
	for (size_t i = 0; i < ld->nsecs; i++) {
		nd += ld->secs[i].kind == SK_DOMAIN;
		nb += ld->secs[i].kind == SK_BACKEND;
	}
	if ((nd > 0 && ((c->domain = calloc(nd, sizeof(*c->domain))) == NULL ||
	    (dseen = calloc(nd, sizeof(*dseen))) == NULL)) ||
	    (nb > 0 && (c->backends = calloc(nb,
	    sizeof(*c->backends))) == NULL)) {
		free(dseen);
		ld->oom = true;
		return -1;
	}

	for (size_t i = 0; i < ld->nsecs; i++) {
		struct raw_sec		*s = &ld->secs[i];
		struct rg_domain_conf	*d;

		switch (s->kind) {
		case SK_BAD:
			continue;
		case SK_BACKEND:
			interpret_backend(ld, s, c);
			continue;
		case SK_DOMAIN:
			d = &c->domain[c->ndomains];
			d->name = s->name;
			s->name = NULL;
			d->line = s->line;
			for (size_t j = 0; j < s->n; j++)
				interpret_kv(ld, s, &s->kv[j], c, &d->policy,
				    &dseen[c->ndomains]);
			c->ndomains++;
			continue;
		default:
			for (size_t j = 0; j < s->n; j++)
				interpret_kv(ld, s, &s->kv[j], c, &c->policy,
				    &global);
			continue;
		}
	}
	c->all_domains = rg_list_contains_ci(&c->domains, "*");

	/* [policy] may come after [domain]: inherit only now. */
	for (size_t i = 0; i < c->ndomains; i++) {
		struct rg_domain_conf *d = &c->domain[i];

		for (size_t k = 0; k < NKEYS; k++) {
			if (!keys[k].in_policy || dseen[i].line[k] != 0)
				continue;
			if (field_copy(&keys[k], field_of(&keys[k], c,
			    &d->policy), field_of(&keys[k], c,
			    &c->policy)) == -1)
				ld->oom = true;
		}
	}

	(void)resolve_backends(ld, c, &c->policy, "policy", global.line[ib]);
	if ((c->domains.n > 0) && c->policy.backends.n == 0)
		lerr(ld, global.line[kd - keys], "[policy] key 'domains': "
		    "domains are checked but [policy] has no backends");
	for (size_t i = 0; i < c->ndomains; i++) {
		struct rg_domain_conf	*d = &c->domain[i];
		char			 label[300];

		(void)snprintf(label, sizeof(label), "domain %s", d->name);
		(void)resolve_backends(ld, c, &d->policy, label,
		    dseen[i].line[ib]);
		if (d->policy.backends.n == 0)
			lerr(ld, d->line, "[%s]: no backends (set backends "
			    "here or in [policy])", label);
	}
	if (c->harvest_tarpit_ms > c->harvest_tarpit_max_ms)
		lerr(ld, global.line[key_by_full("harvest.tarpit") - keys] ?
		    global.line[key_by_full("harvest.tarpit") - keys] :
		    global.line[key_by_full("harvest.tarpit_max") - keys],
		    "[harvest] key 'tarpit': longer than tarpit_max");
	free(dseen);
	return 0;
}

/* ---- loading ---- */

static struct rg_conf *
load_text(const char *text, const char *name, struct rg_error *err)
{
	struct loader	 ld;
	struct rg_conf	*c;
	int		 rc;

	memset(&ld, 0, sizeof(ld));
	ld.file = name;
	ld.p = text;
	ld.err = err;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->path = strdup(name)) == NULL || apply_defaults(c) == -1) {
		if (c != NULL)
			conf_free(c);
		rg_error_append(err, "%s: out of memory", name);
		return NULL;
	}
	c->refs = 1;
	rc = ini_parse_stream(conf_reader, &ld, conf_handler, &ld);
	check_last(&ld);
	if (rc < 0)
		ld.oom = true;
	if (!ld.oom)
		(void)interpret(&ld, c);
	for (size_t i = 0; i < ld.nsecs; i++)
		sec_free(&ld.secs[i]);
	free(ld.secs);
	lmsg_flush(&ld);
	if (ld.oom) {
		rg_error_append(err, "%s: out of memory", name);
		ld.nerr++;
	}
	if (ld.nerr > 0) {
		conf_free(c);
		return NULL;
	}
	return c;
}

/*
 * Clears err, then parses text. Returns a conf with one reference (free
 * with rg_conf_unref) or NULL with all errors, in line order, in err.
 */
struct rg_conf *
rg_conf_load_string(const char *text, const char *name, struct rg_error *err)
{
	rg_error_clear(err);
	return load_text(text != NULL ? text : "", name != NULL ? name :
	    "(string)", err);
}

/*
 * Reads path (a regular file up to 4 MiB, no NUL bytes; blocks on the
 * read) and parses it as rg_conf_load_string does.
 */
struct rg_conf *
rg_conf_load(const char *path, struct rg_error *err)
{
	struct stat	 st;
	struct rg_conf	*c = NULL;
	char		*buf = NULL;
	size_t		 got = 0;
	ssize_t		 n;
	int		 fd, saved;

	rg_error_clear(err);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		saved = errno;
		rg_error_append(err, "%s: cannot open: %s", path,
		    strerror(saved));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		rg_error_append(err, "%s: cannot stat: %s", path,
		    strerror(saved));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rg_error_append(err, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > CONF_FILE_MAX) {
		rg_error_append(err, "%s: larger than %u bytes", path,
		    CONF_FILE_MAX);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		rg_error_append(err, "%s: out of memory", path);
		goto out;
	}
	/* Read what fstat promised, bounded: a growing file is cut there. */
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			rg_error_append(err, "%s: read: %s", path,
			    strerror(saved));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (memchr(buf, '\0', got) != NULL) {
		int line = 1;

		for (const char *p = buf; *p != '\0'; p++)
			line += *p == '\n';
		rg_error_append(err, "%s:%d: NUL byte in the file", path,
		    line);
		goto out;
	}
	c = load_text(buf, path, err);
out:
	free(buf);
	(void)close(fd);
	return c;
}

/* The defaults with one reference; NULL only when out of memory. */
struct rg_conf *
rg_conf_defaults(void)
{
	return load_text("", "(defaults)", NULL);
}

/* Takes one more reference; any thread, lock-free. Returns c. */
struct rg_conf *
rg_conf_ref(struct rg_conf *c)
{
	if (c != NULL)
		(void)__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

/* Drops one reference; the last one frees everything. */
void
rg_conf_unref(struct rg_conf *c)
{
	if (c == NULL)
		return;
	/* Release our writes; the last one acquires all of them. */
	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		conf_free(c);
}

/*
 * Never blocks, allocates nothing; the pointer lives as long as the
 * caller's reference on c.
 */
const struct rg_policy *
rg_conf_policy_for(const struct rg_conf *c, const char *domain)
{
	size_t	dlen;

	if (c == NULL || domain == NULL)
		return NULL;
	for (size_t i = 0; i < c->ndomains; i++)
		if (strcasecmp(c->domain[i].name, domain) == 0)
			return &c->domain[i].policy;
	if (c->all_domains)
		return &c->policy;
	dlen = strlen(domain);
	for (size_t i = 0; i < c->domains.n; i++) {
		const char	*d = c->domains.v[i];
		size_t		 len = strlen(d);

		if (d[0] != '.') {
			if (strcasecmp(d, domain) == 0)
				return &c->policy;
			continue;
		}
		/* ".example.com": strict subdomains, not the parent. */
		if (dlen > len && strcasecmp(domain + dlen - len, d) == 0)
			return &c->policy;
	}
	return NULL;
}

/* Case-insensitive, as [backend] names are unique that way. */
const struct rg_section *
rg_conf_backend(const struct rg_conf *c, const char *name)
{
	size_t	i;

	if (c == NULL || name == NULL)
		return NULL;
	i = backend_index(c, name);
	return i == SIZE_MAX ? NULL : &c->backends[i];
}
