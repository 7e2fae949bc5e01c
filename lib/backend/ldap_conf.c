/* SPDX-License-Identifier: MIT */
/*
 * The LDAP backend's configuration: reads a [backend] section of type
 * ldap into a struct ldap_backend (servers, base, filter, bind, TLS,
 * timeouts, pool size) and frees it.
 *
 * It must not connect (open() runs before privileges are dropped and
 * at reload; a directory down then must not fail the configuration),
 * and must keep the bind password out of every message.
 *
 * Locking: none; an instance is built by one thread before use.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldap_filter.h"
#include "ldap_priv.h"
#include "log.h"

void
rg_ldap_backend_free(struct ldap_backend *lb)
{
	if (lb == NULL)
		return;
	rg_pool_free(lb->pool);
	for (size_t i = 0; i < lb->nuris; i++)
		free(lb->uris[i]);
	for (size_t i = 0; i < LDAP_URIS_MAX; i++)
		rg_tstate_destroy(&lb->ts[i]);
	free(lb->base);
	free(lb->filter);
	free(lb->bind_dn);
	if (lb->password != NULL) {
		explicit_bzero(lb->password, strlen(lb->password));
		free(lb->password);
	}
	free(lb->tls_ca_file);
	free(lb->result_attr);
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
conf_scope(struct ldap_backend *lb, const struct rg_section *sec,
    struct rg_error *err)
{
	const char	*s;

	if (rg_section_string(sec, "scope", "sub", &s, err) == -1)
		return -1;
	if (strcmp(s, "sub") == 0)
		lb->scope = LDAP_SCOPE_SUBTREE;
	else if (strcmp(s, "one") == 0)
		lb->scope = LDAP_SCOPE_ONELEVEL;
	else if (strcmp(s, "base") == 0)
		lb->scope = LDAP_SCOPE_BASE;
	else {
		rg_section_error(sec, "scope", err, "'%s': must be sub, one "
		    "or base", s);
		return -1;
	}
	return 0;
}

/* timeout, failback, result_attribute and pool_size (and the pool). */
static int
conf_limits(struct ldap_backend *lb, const struct rg_section *sec,
    struct rg_error *err)
{
	const char	*s;
	uint64_t	 u;

	if (rg_section_duration(sec, "timeout", LDAP_DEFAULT_TIMEOUT_MS,
	    &lb->timeout_ms, err) == -1 ||
	    rg_section_duration(sec, "failback", LDAP_DEFAULT_FAILBACK_MS,
	    &lb->failback_ms, err) == -1)
		return -1;
	if (lb->timeout_ms == 0 || lb->timeout_ms > 300000) {
		rg_section_error(sec, "timeout", err, "must be between 1ms "
		    "and 5m");
		return -1;
	}
	if (rg_section_string(sec, "result_attribute", NULL, &s, err) == -1)
		return -1;
	if (s != NULL) {
		if (!attr_name_ok(s)) {
			rg_section_error(sec, "result_attribute", err,
			    "'%s': not an attribute name", s);
			return -1;
		}
		if ((lb->result_attr = xstrdup(s, err)) == NULL)
			return -1;
	}
	if (rg_section_uint(sec, "pool_size", LDAP_DEFAULT_POOL, LDAP_POOL_MAX,
	    &u, err) == -1)
		return -1;
	if (u == 0) {
		rg_section_error(sec, "pool_size", err, "must be at least 1");
		return -1;
	}
	lb->pool_size = (size_t)u;
	/* Handles are made unconnected and connect on first use. */
	lb->pool = rg_pool_new(&rg_ldap_pool_hooks, lb, lb->pool_size, 0,
	    err);
	return lb->pool != NULL ? 0 : -1;
}

struct ldap_backend *
rg_ldap_backend_new(const char *name, const struct rg_section *sec,
    struct rg_error *err)
{
	struct ldap_backend	*lb;
	const char		*s;

	if ((lb = calloc(1, sizeof(*lb))) == NULL) {
		rg_error_set(err, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < LDAP_URIS_MAX; i++)
		rg_tstate_init(&lb->ts[i]);
	snprintf(lb->name, sizeof(lb->name), "%s", name);
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
	if (conf_scope(lb, sec, err) == -1 || conf_filter(lb, sec, err) == -1
	    || conf_bind(lb, sec, err) == -1 || conf_tls(lb, sec, err) == -1 ||
	    conf_limits(lb, sec, err) == -1)
		goto fail;
	return lb;
fail:
	rg_ldap_backend_free(lb);
	return NULL;
}
