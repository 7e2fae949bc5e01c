/* SPDX-License-Identifier: MIT */
/*
 * Configuration value parsers: durations, booleans, numbers, lists,
 * networks (with the prefix matcher rg_netlist_match and rg_prefix_equal,
 * which the harvest limiter can share), and the checks the key table and
 * the section headers use: names, domains, milter sockets, harvest state.
 *
 * Each parser takes a whole value (a C string, already without comments
 * or surrounding space) and either fills its output or leaves it alone
 * and fails. They must not log, read files or resolve names (no DNS: a
 * config check must not depend on the network). Locking: none; they touch
 * only their arguments and are safe from any thread.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "conf_int.h"
#include "log.h"

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
		if (rg_conf_grow(&l.v, l.n, &cap, 4, sizeof(*l.v)) == -1)
			goto fail;
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

/* Frees the items; l is then empty and can be freed again. */
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

/* Is s one of the items, ignoring case? NULL l or s: no. */
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
	/* Mask host bits, so a network prints as what it matches. */
	rg_prefix_mask(n.addr, (size_t)max / 8, n.prefix);
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

/* Frees the networks; nl is then empty and can be freed again. */
void
rg_netlist_free(struct rg_netlist *nl)
{
	if (nl == NULL)
		return;
	free(nl->v);
	nl->n = 0;
	nl->v = NULL;
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
		    rg_prefix_equal(n->addr, a4, n->prefix))
			return true;
		if (n->family == AF_INET6 && has6 &&
		    rg_prefix_equal(n->addr, a6, n->prefix))
			return true;
	}
	return false;
}


/* v, escaped for an error message and cut to len. */
void
rg_conf_show(char *dst, size_t len, const char *v)
{
	rg_log_escape(dst, len, v);
}


/* A backend name: 1 to 63 of letters, digits, '-', '_', '.'. */
bool
rg_conf_valid_name(const char *s)
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
bool
rg_conf_norm_domain(char *s, bool dot_ok)
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

/* unix:/PATH (or local:/PATH, or /PATH) into "unix:/PATH". */
static int
socket_unix(const char *path, char **out, char *why, size_t wlen)
{
	struct sockaddr_un	 sun;

	if (path[0] != '/') {
		(void)snprintf(why, wlen, "socket path must be absolute");
		return -1;
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		(void)snprintf(why, wlen, "socket path longer than %zu bytes",
		    sizeof(sun.sun_path) - 1);
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

/* p is PORT[@HOST] of inet: or inet6:; the host is not resolved. */
static int
socket_inet(const char *p, char *why, size_t wlen)
{
	const char	*at = strchr(p, '@');
	char		 portbuf[8];
	size_t		 plen = at ? (size_t)(at - p) : strlen(p);
	uint64_t	 port;

	if (plen > 0 && plen < sizeof(portbuf)) {
		memcpy(portbuf, p, plen);
		portbuf[plen] = '\0';
	}
	if (plen == 0 || plen >= sizeof(portbuf) ||
	    rg_parse_uint(portbuf, 65535, &port) == -1 || port == 0) {
		(void)snprintf(why, wlen, "bad port (1 to 65535)");
		return -1;
	}
	if (at == NULL)
		return 0;
	if (at[1] == '\0') {
		(void)snprintf(why, wlen, "empty host after '@'");
		return -1;
	}
	for (p = at + 1; *p != '\0'; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p) ||
		    *p == '@') {
			(void)snprintf(why, wlen, "bad host");
			return -1;
		}
	return 0;
}

/*
 * A milter socket: unix:/PATH, local:/PATH, /PATH, inet:PORT[@HOST] or
 * inet6:PORT[@HOST]. *out gets the daemon's spelling (caller frees); on
 * error why says what is wrong and *out is untouched.
 */
int
rg_conf_check_socket(const char *v, char **out, char *why, size_t wlen)
{
	const char	*p;

	if (strncmp(v, "unix:", 5) == 0)
		return socket_unix(v + 5, out, why, wlen);
	if (strncmp(v, "local:", 6) == 0)
		return socket_unix(v + 6, out, why, wlen);
	if (v[0] == '/')
		return socket_unix(v, out, why, wlen);
	if (strncmp(v, "inet:", 5) == 0)
		p = v + 5;
	else if (strncmp(v, "inet6:", 6) == 0)
		p = v + 6;
	else {
		(void)snprintf(why, wlen, "expected unix:/PATH, inet:PORT@HOST "
		    "or inet6:PORT@HOST");
		return -1;
	}
	if (socket_inet(p, why, wlen) == -1)
		return -1;
	if ((*out = strdup(v)) == NULL) {
		(void)snprintf(why, wlen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * The harvest state: "" (memory only), an absolute path, or
 * redis://HOST:PORT/DB. 0, or -1 with why.
 */
int
rg_conf_check_state(const char *v, char *why, size_t wlen)
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
