/* SPDX-License-Identifier: MIT */
/*
 * What an LDAP failure means to the operator: the server's own words
 * (the diagnostic message, which after a failed StartTLS carries the TLS
 * library's reason) on one line, and for `rcptgate -n` the setting to
 * change. A Samba or AD server says "Transport encryption required" or
 * "Operation unavailable without authentication" while the result code
 * alone only says "Strong(er) authentication required" or "Operations
 * error"; both are kept.
 *
 * It must not change a lookup's result and must not set a libldap global
 * option. Locking: none; it works on a handle its caller owns.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ldap_priv.h"

void
rg_ldap_oneline(const char *src, char *dst, size_t len)
{
	size_t	o = 0;
	bool	gap = false;

	if (len == 0)
		return;
	/* line breaks become "; " so that a log line stays one line
	 * instead of carrying escaped \x0a sequences */
	for (; src != NULL && *src != '\0'; src++) {
		if (*src == '\r' || *src == '\n') {
			gap = o > 0;
			continue;
		}
		/* this character, the "; " before it, the NUL */
		if (o + (gap ? 3 : 1) + 1 > len)
			break;
		if (gap) {
			dst[o++] = ';';
			dst[o++] = ' ';
			gap = false;
		}
		dst[o++] = *src;
	}
	/* a trailing NUL the server padded with, or spaces, say nothing */
	while (o > 0 && (dst[o - 1] == ' ' || dst[o - 1] == '\t'))
		o--;
	dst[o] = '\0';
}

void
rg_ldap_diag(LDAP *ld, char *buf, size_t len)
{
	char	*msg = NULL;

	if (len > 0)
		buf[0] = '\0';
	if (ld == NULL || ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE,
	    &msg) != LDAP_OPT_SUCCESS || msg == NULL)
		return;
	rg_ldap_oneline(msg, buf, len);
	ldap_memfree(msg);
}

/* A DER length at *p (short or long form); 0 on a malformed one. */
static size_t
der_len(const unsigned char **p, const unsigned char *end)
{
	size_t	n = 0, k;

	if (*p >= end)
		return 0;
	if ((**p & 0x80) == 0)
		return *(*p)++;
	k = *(*p)++ & 0x7f;
	if (k == 0 || k > 3 || (size_t)(end - *p) < k)
		return 0;
	while (k-- > 0)
		n = n << 8 | *(*p)++;
	return n;
}

static void
add_name(char *out, size_t len, const unsigned char *s, size_t n)
{
	size_t	o = strlen(out);

	if (o > 0 && o + 2 < len) {
		memcpy(out + o, ", ", 3);
		o += 2;
	}
	for (size_t i = 0; i < n && o + 1 < len; i++)
		/* names are ASCII; anything else is not printed as is */
		out[o++] = s[i] > 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	out[o] = '\0';
}

/*
 * The DNS names a DER certificate is for: the subjectAltName dNSNames,
 * else the subject's (last) common name. A scan for the two OIDs, not a
 * full parser: this only words a warning, it decides nothing.
 */
static void
cert_names(const unsigned char *der, size_t dlen, char *out, size_t len)
{
	static const unsigned char san[] = { 0x06, 0x03, 0x55, 0x1d, 0x11 };
	static const unsigned char cn[] = { 0x06, 0x03, 0x55, 0x04, 0x03 };
	const unsigned char	*end = der + dlen, *p, *q, *lastcn = NULL;
	size_t			 n, cnlen = 0;

	out[0] = '\0';
	for (p = der; p + sizeof(san) < end; p++) {
		if (memcmp(p, san, sizeof(san)) == 0) {
			q = p + sizeof(san);
			if (q < end && *q == 0x01)	/* critical flag */
				q += 3;
			if (q >= end || *q++ != 0x04 || der_len(&q, end) == 0 ||
			    q >= end || *q++ != 0x30)
				continue;
			n = der_len(&q, end);
			for (const unsigned char *e = q + n; q < e && q < end;
			    q += n) {
				unsigned char	tag = *q++;

				n = der_len(&q, end);
				if (n > (size_t)(end - q))
					break;
				if (tag == 0x82)	/* dNSName */
					add_name(out, len, q, n);
			}
		} else if (memcmp(p, cn, sizeof(cn)) == 0) {
			q = p + sizeof(cn) + 1;
			n = der_len(&q, end);
			if (n > 0 && n <= (size_t)(end - q))
				lastcn = q, cnlen = n;
		}
	}
	if (out[0] == '\0' && lastcn != NULL)
		add_name(out, len, lastcn, cnlen);
}

/*
 * The names on uri's certificate, fetched over a second StartTLS or
 * ldaps:// connection that does not verify it (only -n does this, after
 * the verified one failed; nothing is sent over it but the handshake).
 * Empty when the server cannot be reached or sends none.
 */
static void
peer_names(const struct ldap_backend *lb, const char *uri, char *out,
    size_t len)
{
	struct berval	 cert = { 0, NULL };
	LDAP		*ld = NULL;
	int		 v;

	out[0] = '\0';
	if (ldap_initialize(&ld, uri) != LDAP_SUCCESS)
		return;
	v = LDAP_VERSION3;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v);
	rg_ldap_set_timeouts(ld, lb->timeout_ms);
	v = LDAP_OPT_X_TLS_ALLOW;
	ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &v);
	v = 0;
	ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &v);
	if ((strncasecmp(uri, "ldaps://", 8) == 0 ||
	    ldap_start_tls_s(ld, NULL, NULL) == LDAP_SUCCESS) &&
	    (strncasecmp(uri, "ldaps://", 8) != 0 ||
	    ldap_whoami_s(ld, NULL, NULL, NULL) != LDAP_SERVER_DOWN) &&
	    ldap_get_option(ld, LDAP_OPT_X_TLS_PEERCERT, &cert) ==
	    LDAP_OPT_SUCCESS && cert.bv_val != NULL) {
		cert_names((const unsigned char *)cert.bv_val, cert.bv_len,
		    out, len);
		ldap_memfree(cert.bv_val);
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
}

/* The host part of uri, into host (len bytes); empty when unparsable. */
static void
uri_host(const char *uri, char *host, size_t len)
{
	LDAPURLDesc	*u = NULL;

	host[0] = '\0';
	if (ldap_url_parse(uri, &u) == LDAP_URL_SUCCESS && u->lud_host)
		snprintf(host, len, "%s", u->lud_host);
	ldap_free_urldesc(u);
}

static bool
said(const char *diag, const char *what)
{
	return diag != NULL && strcasestr(diag, what) != NULL;
}

void
rg_ldap_hint(const struct ldap_backend *lb, const char *uri, int stage,
    int rc, const char *diag, struct rg_error *warn)
{
	char	names[512], host[256];

	if (rc == LDAP_STRONG_AUTH_REQUIRED ||
	    rc == LDAP_CONFIDENTIALITY_REQUIRED ||
	    said(diag, "encryption required")) {
		rg_error_append(warn, "%s: this server requires TLS: set "
		    "starttls = yes and tls_ca_file (or use an ldaps:// uri)",
		    uri);
	} else if (stage == RG_LDAP_STAGE_TLS) {
		peer_names(lb, uri, names, sizeof(names));
		uri_host(uri, host, sizeof(host));
		if (names[0] != '\0' && host[0] != '\0' &&
		    strcasestr(names, host) == NULL)
			rg_error_append(warn, "%s: the certificate is for %s, "
			    "not %s: use that name in uri (and in /etc/hosts "
			    "if needed)", uri, names, host);
		else
			rg_error_append(warn, "%s: the TLS handshake or the "
			    "certificate check failed: set tls_ca_file to the "
			    "CA that signed the server's certificate%s%s%s",
			    uri, names[0] != '\0' ? " (it is for " : "", names,
			    names[0] != '\0' ? ")" : "");
	} else if (rc == LDAP_INVALID_CREDENTIALS) {
		rg_error_append(warn, "%s: bind refused: check bind_dn (Active "
		    "Directory takes a UPN, user@realm, or DOMAIN\\user) and "
		    "bind_password_file", uri);
	} else if (lb->bind_dn == NULL && !lb->sasl_external &&
	    (rc == LDAP_OPERATIONS_ERROR || rc == LDAP_INSUFFICIENT_ACCESS ||
	    said(diag, "without authentication"))) {
		rg_error_append(warn, "%s: anonymous search refused: set "
		    "bind_dn and bind_password_file", uri);
	}
}
