/* SPDX-License-Identifier: MIT */
/*
 * The LDAP / Active Directory backend: a recipient exists when a search
 * under base with the configured filter (RFC 4515-escaped address) finds
 * an entry. Servers are tried in the order of `uri` (failover), and a
 * connection to a later server is moved back to an earlier one once that
 * one's holdoff (`failback`) has passed.
 *
 * It must not cache (cache.c does), must not follow referrals (AD returns
 * them from the domain root; libldap's chasing binds anonymously and can
 * hang), and must never turn a failure into "not found": every error,
 * timeout or odd answer is RG_TEMPFAIL.
 *
 * Locking: a pool of LDAP handles. One mutex guards only the free list
 * and the handle count; a handle is owned by one thread between acquire
 * and release, and every connect, bind and search runs with no lock held.
 * A caller finding the pool empty and at its cap waits on a condition
 * variable until its deadline. Per-server holdoffs and counters are
 * atomics.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ldap.h>

#include "backend.h"
#include "ldap_filter.h"
#include "log.h"
#include "rg_time.h"

#define LDAP_DEFAULT_TIMEOUT_MS	3000
#define LDAP_DEFAULT_FAILBACK_MS 30000
#define LDAP_DEFAULT_POOL	8
#define LDAP_POOL_MAX		1024
#define LDAP_URIS_MAX		16
#define LDAP_PASSWORD_MAX	1024

#define AD_FILTER	"(|(mail=%s)(proxyAddresses=smtp:%s))"
#define OPENLDAP_FILTER	"(mail=%s)"
/* LDAP_MATCHING_RULE_BIT_AND on userAccountControl ACCOUNTDISABLE (2) */
#define AD_ENABLED	"(!(userAccountControl:1.2.840.113556.1.4.803:=2))"

/* One pooled handle. ld is NULL until connected (lazy). */
struct ldap_conn {
	LDAP		*ld;
	size_t		 uri_idx;	/* server it is connected to */
	struct ldap_conn *next;		/* free list link */
};

struct ldap_backend {
	char		 name[RG_NAME_MAX];
	size_t		 nuris;
	char		*uris[LDAP_URIS_MAX];
	char		*base;
	int		 scope;
	char		*filter;	/* the template, preset or `filter` */
	char		*bind_dn;	/* NULL: anonymous (or EXTERNAL) */
	char		*password;	/* from bind_password_file */
	bool		 sasl_external;
	bool		 starttls;
	char		*tls_ca_file;
	bool		 tls_verify;
	uint64_t	 timeout_ms;
	uint64_t	 failback_ms;
	char		*result_attr;	/* NULL: an entry is enough */
	size_t		 pool_size;

	/* Guards free_list and nconns; never held across LDAP I/O. */
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;		/* signalled on each release */
	struct ldap_conn *free_list;
	size_t		 nconns;	/* handles created (idle + in use) */

	/* Per server: rg_now_ms() until which it is tried last (0: up). */
	_Atomic uint64_t down_until[LDAP_URIS_MAX];

	_Atomic uint64_t n_lookups, n_found, n_notfound, n_tempfail,
			 n_connects, n_reconnects, n_pool_waits;
};

static const char *const ldap_keys[] = {
	"uri", "base", "scope", "preset", "exclude_disabled", "filter",
	"bind_dn", "bind_password_file", "sasl_mech", "starttls",
	"tls_ca_file", "tls_verify", "timeout", "failback",
	"result_attribute", "pool_size", NULL
};

/* ---- configuration ---- */

static void
ldap_backend_free(struct ldap_backend *lb)
{
	struct ldap_conn	*c, *next;

	if (lb == NULL)
		return;
	for (c = lb->free_list; c != NULL; c = next) {
		next = c->next;
		if (c->ld != NULL)
			ldap_unbind_ext_s(c->ld, NULL, NULL);
		free(c);
	}
	for (size_t i = 0; i < lb->nuris; i++)
		free(lb->uris[i]);
	free(lb->base);
	free(lb->filter);
	free(lb->bind_dn);
	if (lb->password != NULL) {
		explicit_bzero(lb->password, strlen(lb->password));
		free(lb->password);
	}
	free(lb->tls_ca_file);
	free(lb->result_attr);
	pthread_mutex_destroy(&lb->lock);
	pthread_cond_destroy(&lb->cond);
	free(lb);
}

/*
 * Read the bind password: the whole file, one trailing newline (LF or
 * CRLF) stripped. Runs in open(): at start before privileges are
 * dropped, and at every reload as the daemon's user (so a rotated
 * password is picked up, and the file must be readable by that user).
 */
static int
read_password(const struct rg_section *sec, const char *path, char **out,
    struct rg_error *err)
{
	char		 buf[LDAP_PASSWORD_MAX + 2];
	struct stat	 st;
	size_t		 len = 0;
	ssize_t		 n = 0;
	int		 fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		saved = errno;
		rg_section_error(sec, "bind_password_file", err, "%s: %s",
		    path, strerror(saved));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		rg_section_error(sec, "bind_password_file", err,
		    "%s: not a regular file", path);
		return -1;
	}
	/* Group-readable is the documented way (root:rcptgate 0640): the
	 * daemon reads the file again at each reload, as its own user. */
	if (st.st_mode & S_IROTH)
		rg_warnx("%s: [backend %s] bind_password_file %s is readable "
		    "by everyone; make it root:rcptgate 0640 (the group the "
		    "daemon runs as)", sec->file, sec->name, path);
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	saved = errno;
	close(fd);
	if (n == -1) {
		rg_section_error(sec, "bind_password_file", err, "%s: %s",
		    path, strerror(saved));
		return -1;
	}
	if (len > LDAP_PASSWORD_MAX) {
		explicit_bzero(buf, sizeof(buf));
		rg_section_error(sec, "bind_password_file", err,
		    "%s: longer than %d bytes", path, LDAP_PASSWORD_MAX);
		return -1;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len == 0 || memchr(buf, '\0', len) != NULL ||
	    memchr(buf, '\n', len) != NULL) {
		explicit_bzero(buf, sizeof(buf));
		/* An empty simple-bind password is an anonymous bind (RFC
		 * 4513 5.1.2): refuse it, never bind as nobody silently. */
		rg_section_error(sec, "bind_password_file", err,
		    "%s: must hold one non-empty line", path);
		return -1;
	}
	*out = strndup(buf, len);
	explicit_bzero(buf, sizeof(buf));
	if (*out == NULL) {
		rg_error_set(err, "out of memory");
		return -1;
	}
	return 0;
}

static bool
attr_name_ok(const char *s)
{
	char	f[256];

	/* an attribute description is valid iff "(ATTR=*)" parses */
	if (snprintf(f, sizeof(f), "(%s=*)", s) >= (int)sizeof(f))
		return false;
	return strpbrk(s, "=()*\\ ") == NULL && rg_ldap_filter_valid(f);
}

static char *
xstrdup(const char *s, struct rg_error *err)
{
	char	*d = strdup(s);

	if (d == NULL)
		rg_error_set(err, "out of memory");
	return d;
}

static int
conf_uris(struct ldap_backend *lb, const struct rg_section *sec,
    struct rg_error *err)
{
	struct rg_list	 l = { 0, NULL };
	LDAP		*ld;
	int		 rc = -1;

	if (rg_section_list(sec, "uri", &l, err) == -1)
		return -1;
	if (l.n == 0) {
		rg_section_error(sec, "uri", err, "required (ldap://, "
		    "ldaps:// or ldapi:// URIs)");
		goto out;
	}
	if (l.n > LDAP_URIS_MAX) {
		rg_section_error(sec, "uri", err, "at most %d URIs",
		    LDAP_URIS_MAX);
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		const char	*u = l.v[i];

		if (strncasecmp(u, "ldap://", 7) != 0 &&
		    strncasecmp(u, "ldaps://", 8) != 0 &&
		    strncasecmp(u, "ldapi://", 8) != 0) {
			rg_section_error(sec, "uri", err, "'%s': not an "
			    "ldap://, ldaps:// or ldapi:// URI", u);
			goto out;
		}
		/* libldap's own parser; does not connect. */
		if (ldap_initialize(&ld, u) != LDAP_SUCCESS) {
			rg_section_error(sec, "uri", err, "'%s': invalid URI",
			    u);
			goto out;
		}
		ldap_unbind_ext_s(ld, NULL, NULL);
		if ((lb->uris[i] = xstrdup(u, err)) == NULL)
			goto out;
		lb->nuris = i + 1;
	}
	rc = 0;
out:
	rg_list_free(&l);
	return rc;
}

static int
conf_filter(struct ldap_backend *lb, const struct rg_section *sec,
    struct rg_error *err)
{
	const char	*preset, *filter;
	bool		 ad, exclude_disabled;
	char		 buf[RG_LDAP_FILTER_MAX];
	struct rg_error	 why;
	int		 n;

	if (rg_section_string(sec, "preset", "openldap", &preset, err) == -1 ||
	    rg_section_bool(sec, "exclude_disabled", false, &exclude_disabled,
	    err) == -1 ||
	    rg_section_string(sec, "filter", NULL, &filter, err) == -1)
		return -1;
	if (strcmp(preset, "activedirectory") == 0)
		ad = true;
	else if (strcmp(preset, "openldap") == 0)
		ad = false;
	else {
		rg_section_error(sec, "preset", err, "'%s': must be "
		    "activedirectory or openldap", preset);
		return -1;
	}
	if (exclude_disabled && !ad) {
		rg_section_error(sec, "exclude_disabled", err, "needs preset "
		    "= activedirectory (userAccountControl is AD's)");
		return -1;
	}
	if (filter == NULL)
		filter = ad ? AD_FILTER : OPENLDAP_FILTER;
	rg_error_clear(&why);
	if (rg_ldap_filter_check_template(filter, &why) == -1) {
		rg_section_error(sec, "filter", err, "%s", why.msg);
		return -1;
	}
	if (exclude_disabled)
		n = snprintf(buf, sizeof(buf), "(&%s%s)", filter, AD_ENABLED);
	else
		n = snprintf(buf, sizeof(buf), "%s", filter);
	if (n < 0 || (size_t)n >= sizeof(buf) / 3) {
		/* leave room for the escaped values */
		rg_section_error(sec, "filter", err, "longer than %zu bytes",
		    sizeof(buf) / 3);
		return -1;
	}
	lb->filter = xstrdup(buf, err);
	return lb->filter == NULL ? -1 : 0;
}

static int
conf_bind(struct ldap_backend *lb, const struct rg_section *sec,
    struct rg_error *err)
{
	const char	*dn, *pwfile, *mech;

	if (rg_section_string(sec, "bind_dn", NULL, &dn, err) == -1 ||
	    rg_section_string(sec, "bind_password_file", NULL, &pwfile,
	    err) == -1 ||
	    rg_section_string(sec, "sasl_mech", NULL, &mech, err) == -1)
		return -1;
	if (mech != NULL) {
		if (strcasecmp(mech, "EXTERNAL") != 0) {
			rg_section_error(sec, "sasl_mech", err, "'%s': only "
			    "EXTERNAL is supported", mech);
			return -1;
		}
		if (dn != NULL || pwfile != NULL) {
			rg_section_error(sec, "sasl_mech", err, "EXTERNAL "
			    "takes no bind_dn or bind_password_file");
			return -1;
		}
		for (size_t i = 0; i < lb->nuris; i++)
			if (strncasecmp(lb->uris[i], "ldapi://", 8) != 0) {
				rg_section_error(sec, "sasl_mech", err,
				    "EXTERNAL needs ldapi:// URIs, not '%s'",
				    lb->uris[i]);
				return -1;
			}
		lb->sasl_external = true;
		return 0;
	}
	if ((dn == NULL) != (pwfile == NULL)) {
		rg_section_error(sec, dn == NULL ? "bind_password_file" :
		    "bind_dn", err, "bind_dn and bind_password_file go "
		    "together (neither: anonymous bind)");
		return -1;
	}
	if (dn == NULL)
		return 0;
	if (*dn == '\0') {
		rg_section_error(sec, "bind_dn", err, "empty");
		return -1;
	}
	if ((lb->bind_dn = xstrdup(dn, err)) == NULL)
		return -1;
	return read_password(sec, pwfile, &lb->password, err);
}

static int
conf_tls(struct ldap_backend *lb, const struct rg_section *sec,
    struct rg_error *err)
{
	const char	*ca;

	if (rg_section_bool(sec, "starttls", false, &lb->starttls, err) == -1 ||
	    rg_section_bool(sec, "tls_verify", true, &lb->tls_verify,
	    err) == -1 ||
	    rg_section_string(sec, "tls_ca_file", NULL, &ca, err) == -1)
		return -1;
	for (size_t i = 0; lb->starttls && i < lb->nuris; i++)
		if (strncasecmp(lb->uris[i], "ldap://", 7) != 0) {
			rg_section_error(sec, "starttls", err, "only for "
			    "ldap:// URIs, not '%s' (ldaps:// is TLS already)",
			    lb->uris[i]);
			return -1;
		}
	if (ca == NULL)
		return 0;
	if (access(ca, R_OK) == -1) {
		int	saved = errno;

		rg_section_error(sec, "tls_ca_file", err, "%s: %s", ca,
		    strerror(saved));
		return -1;
	}
	lb->tls_ca_file = xstrdup(ca, err);
	return lb->tls_ca_file == NULL ? -1 : 0;
}

static int
ldap_open(struct rg_backend *b, const struct rg_section *sec,
    struct rg_error *err)
{
	struct ldap_backend	*lb;
	pthread_condattr_t	 ca;
	const char		*s;
	uint64_t		 u;

	if (rg_section_check_keys(sec, ldap_keys, err) == -1)
		return -1;
	if ((lb = calloc(1, sizeof(*lb))) == NULL) {
		rg_error_set(err, "out of memory");
		return -1;
	}
	pthread_mutex_init(&lb->lock, NULL);
	/* deadlines are rg_now_ms(), CLOCK_MONOTONIC */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&lb->cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(lb->name, sizeof(lb->name), "%s", b->name);

	if (conf_uris(lb, sec, err) == -1)
		goto fail;
	if (rg_section_string(sec, "base", NULL, &s, err) == -1)
		goto fail;
	if (s == NULL) {
		rg_section_error(sec, "base", err, "required (e.g. "
		    "dc=example,dc=com)");
		goto fail;
	}
	if ((lb->base = xstrdup(s, err)) == NULL)
		goto fail;
	if (rg_section_string(sec, "scope", "sub", &s, err) == -1)
		goto fail;
	if (strcmp(s, "sub") == 0)
		lb->scope = LDAP_SCOPE_SUBTREE;
	else if (strcmp(s, "one") == 0)
		lb->scope = LDAP_SCOPE_ONELEVEL;
	else if (strcmp(s, "base") == 0)
		lb->scope = LDAP_SCOPE_BASE;
	else {
		rg_section_error(sec, "scope", err, "'%s': must be sub, one "
		    "or base", s);
		goto fail;
	}
	if (conf_filter(lb, sec, err) == -1 || conf_bind(lb, sec, err) == -1 ||
	    conf_tls(lb, sec, err) == -1)
		goto fail;
	if (rg_section_duration(sec, "timeout", LDAP_DEFAULT_TIMEOUT_MS,
	    &lb->timeout_ms, err) == -1 ||
	    rg_section_duration(sec, "failback", LDAP_DEFAULT_FAILBACK_MS,
	    &lb->failback_ms, err) == -1)
		goto fail;
	if (lb->timeout_ms == 0 || lb->timeout_ms > 300000) {
		rg_section_error(sec, "timeout", err, "must be between 1ms "
		    "and 5m");
		goto fail;
	}
	if (rg_section_string(sec, "result_attribute", NULL, &s, err) == -1)
		goto fail;
	if (s != NULL) {
		if (!attr_name_ok(s)) {
			rg_section_error(sec, "result_attribute", err,
			    "'%s': not an attribute name", s);
			goto fail;
		}
		if ((lb->result_attr = xstrdup(s, err)) == NULL)
			goto fail;
	}
	if (rg_section_uint(sec, "pool_size", LDAP_DEFAULT_POOL, LDAP_POOL_MAX,
	    &u, err) == -1)
		goto fail;
	if (u == 0) {
		rg_section_error(sec, "pool_size", err, "must be at least 1");
		goto fail;
	}
	lb->pool_size = (size_t)u;
	b->priv = lb;
	return 0;
fail:
	ldap_backend_free(lb);
	return -1;
}

static void
ldap_close(struct rg_backend *b)
{
	ldap_backend_free(b->priv);
	b->priv = NULL;
}

/* ---- the pool ---- */

/*
 * Take a handle, waiting until deadline_ms when all pool_size are busy.
 * NULL on timeout. The handle may be unconnected.
 */
static struct ldap_conn *
pool_get(struct ldap_backend *lb, uint64_t deadline_ms)
{
	struct ldap_conn	*c = NULL;
	struct timespec		 ts;
	bool			 create = false, waited = false;

	ts.tv_sec = (time_t)(deadline_ms / 1000);
	ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000;
	pthread_mutex_lock(&lb->lock);
	for (;;) {
		if (lb->free_list != NULL) {
			c = lb->free_list;
			lb->free_list = c->next;
			break;
		}
		if (lb->nconns < lb->pool_size) {
			lb->nconns++;
			create = true;
			break;
		}
		waited = true;
		if (pthread_cond_timedwait(&lb->cond, &lb->lock, &ts) ==
		    ETIMEDOUT && lb->free_list == NULL)
			break;
	}
	pthread_mutex_unlock(&lb->lock);
	if (waited)
		atomic_fetch_add(&lb->n_pool_waits, 1);
	if (create && (c = calloc(1, sizeof(*c))) == NULL) {
		pthread_mutex_lock(&lb->lock);
		lb->nconns--;
		pthread_mutex_unlock(&lb->lock);
		pthread_cond_signal(&lb->cond);
	}
	return c;
}

static void
conn_drop(struct ldap_conn *c)
{
	if (c->ld != NULL)
		ldap_unbind_ext_s(c->ld, NULL, NULL);
	c->ld = NULL;
}

static void
pool_put(struct ldap_backend *lb, struct ldap_conn *c)
{
	pthread_mutex_lock(&lb->lock);
	c->next = lb->free_list;
	lb->free_list = c;
	pthread_mutex_unlock(&lb->lock);
	pthread_cond_signal(&lb->cond);
}

/* ---- connecting ---- */

static void
set_timeouts(LDAP *ld, uint64_t ms)
{
	struct timeval	tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	/* never ld == NULL here: that would set libldap's global default */
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
}

static uint64_t
budget(const struct ldap_backend *lb, uint64_t deadline_ms)
{
	uint64_t	left = rg_ms_left(deadline_ms);

	return left < lb->timeout_ms ? left : lb->timeout_ms;
}

/*
 * Connect and bind to one server within min(timeout, time left). Returns
 * an LDAP result code; on success *out is the bound handle. why gets a
 * human reason on failure.
 */
static int
connect_one(struct ldap_backend *lb, const char *uri, uint64_t deadline_ms,
    LDAP **out, struct rg_error *why)
{
	LDAP		*ld = NULL;
	struct berval	 cred;
	const char	*what = "connect";
	uint64_t	 ms;
	int		 rc, v;

	*out = NULL;
	if ((ms = budget(lb, deadline_ms)) == 0) {
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
	set_timeouts(ld, ms);
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
		if ((rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS)
			goto fail;
	}
	if ((ms = budget(lb, deadline_ms)) == 0) {
		rc = LDAP_TIMEOUT;
		goto fail;
	}
	set_timeouts(ld, ms);
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
	rg_error_set(why, "%s: %s%s%s failed: %s (%d)", uri, what,
	    lb->bind_dn != NULL && strcmp(what, "bind") == 0 ? " as " : "",
	    lb->bind_dn != NULL && strcmp(what, "bind") == 0 ? lb->bind_dn :
	    "", ldap_err2string(rc), rc);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return rc;
}

/*
 * Connect c, trying servers in order: those not held off first, then
 * the held-off ones; probe (if < nuris) before all. Returns 0 or -1 with
 * err holding every server's reason.
 */
static int
conn_connect(struct ldap_backend *lb, struct ldap_conn *c, size_t probe,
    uint64_t deadline_ms, struct rg_error *err)
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
		if (connect_one(lb, lb->uris[i], deadline_ms, &ld, &why) ==
		    LDAP_SUCCESS) {
			atomic_store(&lb->down_until[i], 0);
			c->ld = ld;
			c->uri_idx = i;
			rg_error_clear(err);
			return 0;
		}
		atomic_store(&lb->down_until[i], rg_now_ms() + lb->failback_ms);
		rg_error_append(err, "%s", why.msg);
	}
	return -1;
}

/*
 * A handle on a later server goes back to an earlier one whose holdoff
 * has passed. One caller claims the probe (compare-and-swap renews the
 * holdoff) so a dead first server costs one connect per holdoff, not one
 * per lookup. Returns the server to probe, or nuris for none.
 */
static size_t
failback_probe(struct ldap_backend *lb, const struct ldap_conn *c)
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

static void
trace_set(const struct rg_query *q, const char *filter, const char *uri)
{
	int	n;

	if (q->trace == NULL || q->tracelen == 0)
		return;
	n = snprintf(q->trace, q->tracelen, "filter=%s server=%s", filter,
	    uri != NULL ? uri : "none");
	/* never silently cut: mark it */
	if (n >= 0 && (size_t)n >= q->tracelen && q->tracelen > 4)
		memcpy(q->trace + q->tracelen - 4, "...", 4);
}

static enum rg_result
ldap_lookup(struct rg_backend *b, const struct rg_query *q,
    struct rg_error *err)
{
	struct ldap_backend	*lb = b->priv;
	struct ldap_conn	*c;
	struct timeval		 tv;
	LDAPMessage		*res = NULL;
	char			 filter[RG_LDAP_FILTER_MAX];
	char			*attrs[2];
	enum rg_result		 r = RG_TEMPFAIL;
	uint64_t		 ms;
	size_t			 probe;
	int			 rc = LDAP_OTHER;

	atomic_fetch_add(&lb->n_lookups, 1);
	if (rg_ldap_filter_expand(lb->filter, q->key, q->local, q->domain,
	    filter, sizeof(filter), err) == -1) {
		/* the address is over the limits addr.c enforces: refuse
		 * to guess, as for any other failure */
		trace_set(q, "(too long)", NULL);
		atomic_fetch_add(&lb->n_tempfail, 1);
		return RG_TEMPFAIL;
	}
	/* with result_attribute the server filters too, so sizelimit 2
	 * never hides an entry that has it behind two that do not */
	if (lb->result_attr != NULL) {
		char	tmp[RG_LDAP_FILTER_MAX];
		int	n = snprintf(tmp, sizeof(tmp), "(&%s(%s=*))", filter,
			    lb->result_attr);

		if (n < 0 || (size_t)n >= sizeof(tmp)) {
			rg_error_set(err, "LDAP filter would exceed %zu bytes",
			    sizeof(tmp) - 1);
			atomic_fetch_add(&lb->n_tempfail, 1);
			return RG_TEMPFAIL;
		}
		memcpy(filter, tmp, (size_t)n + 1);
	}
	attrs[0] = lb->result_attr != NULL ? lb->result_attr :
	    (char *)LDAP_NO_ATTRS;
	attrs[1] = NULL;

	if ((c = pool_get(lb, q->deadline_ms)) == NULL) {
		rg_error_set(err, "all %zu LDAP connections busy until the "
		    "deadline", lb->pool_size);
		trace_set(q, filter, NULL);
		atomic_fetch_add(&lb->n_tempfail, 1);
		return RG_TEMPFAIL;
	}
	probe = lb->nuris;
	if (c->ld != NULL && c->uri_idx > 0 &&
	    (probe = failback_probe(lb, c)) < lb->nuris)
		conn_drop(c);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (c->ld == NULL &&
		    conn_connect(lb, c, probe, q->deadline_ms, err) == -1) {
			rc = LDAP_SERVER_DOWN;
			break;
		}
		probe = lb->nuris;
		if ((ms = budget(lb, q->deadline_ms)) == 0) {
			rg_error_set(err, "%s: deadline reached",
			    lb->uris[c->uri_idx]);
			rc = LDAP_TIMEOUT;
			break;
		}
		set_timeouts(c->ld, ms);
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
		rc = ldap_search_ext_s(c->ld, lb->base, lb->scope, filter,
		    attrs, 0, NULL, NULL, &tv, lb->result_attr ? 2 : 1, &res);
		if (rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED) {
			if (has_entry(lb, c->ld, res))
				r = RG_FOUND;
			else if (rc == LDAP_SUCCESS)
				r = RG_NOTFOUND;
			else
				rg_error_set(err, "%s: size limit exceeded "
				    "with no entry", lb->uris[c->uri_idx]);
			break;
		}
		rg_error_set(err, "%s: search failed: %s (%d)",
		    lb->uris[c->uri_idx], ldap_err2string(rc), rc);
		if (rc == LDAP_NO_SUCH_OBJECT)
			rg_error_append(err, "base '%s' does not exist",
			    lb->base);
		if (!conn_is_dead(rc))
			break;
		/* a handle found dead (idle drop, server restart) is
		 * rebuilt and the search retried once; a timeout is not
		 * retried: the time is spent */
		ldap_msgfree(res);
		res = NULL;
		conn_drop(c);
		if (rc == LDAP_TIMEOUT)
			break;
		atomic_fetch_add(&lb->n_reconnects, 1);
	}
	ldap_msgfree(res);
	trace_set(q, filter, c->ld != NULL ? lb->uris[c->uri_idx] : NULL);
	pool_put(lb, c);
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
static int
ldap_check(struct rg_backend *b, struct rg_error *err, struct rg_error *warn)
{
	struct ldap_backend	*lb = b->priv;
	struct rg_error		 why;
	struct timeval		 tv;
	LDAPMessage		*res;
	LDAP			*ld;
	char			*attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	char			 bad[RG_ERROR_MAX];
	size_t			 ok = 0;
	int			 rc;

	bad[0] = '\0';
	for (size_t i = 0; i < lb->nuris; i++) {
		uint64_t	deadline = rg_now_ms() + lb->timeout_ms;

		rg_error_clear(&why);
		if (connect_one(lb, lb->uris[i], deadline, &ld, &why) !=
		    LDAP_SUCCESS) {
			rg_error_append(warn, "%s", why.msg);
			snprintf(bad, sizeof(bad), "%s", why.msg);
			continue;
		}
		tv.tv_sec = (time_t)(lb->timeout_ms / 1000);
		tv.tv_usec = (suseconds_t)(lb->timeout_ms % 1000) * 1000;
		res = NULL;
		rc = ldap_search_ext_s(ld, lb->base, LDAP_SCOPE_BASE,
		    "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 1, &res);
		ldap_msgfree(res);
		ldap_unbind_ext_s(ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			rg_error_append(warn, "%s: base '%s': %s (%d)",
			    lb->uris[i], lb->base, ldap_err2string(rc), rc);
			snprintf(bad, sizeof(bad), "%s: base '%s': %s",
			    lb->uris[i], lb->base, ldap_err2string(rc));
			continue;
		}
		ok++;
	}
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
	size_t			 nconns;
	int			 n;

	pthread_mutex_lock(&lb->lock);
	nconns = lb->nconns;
	pthread_mutex_unlock(&lb->lock);
	n = snprintf(buf, len, "lookups=%llu found=%llu notfound=%llu "
	    "tempfail=%llu connects=%llu reconnects=%llu pool_waits=%llu "
	    "connections=%zu/%zu",
	    (unsigned long long)atomic_load(&lb->n_lookups),
	    (unsigned long long)atomic_load(&lb->n_found),
	    (unsigned long long)atomic_load(&lb->n_notfound),
	    (unsigned long long)atomic_load(&lb->n_tempfail),
	    (unsigned long long)atomic_load(&lb->n_connects),
	    (unsigned long long)atomic_load(&lb->n_reconnects),
	    (unsigned long long)atomic_load(&lb->n_pool_waits),
	    nconns, lb->pool_size);
	if (n >= 0 && (size_t)n >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
}

const struct rg_backend_ops rg_backend_ldap_ops = {
	.type = "ldap",
	.open = ldap_open,
	.lookup = ldap_lookup,
	.close = ldap_close,
	.check = ldap_check,
	.worst_case_ms = ldap_worst_case_ms,
	.stats = ldap_stats,
};
