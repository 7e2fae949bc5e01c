/* SPDX-License-Identifier: MIT */
/*
 * LDAP search filters for the LDAP backend: RFC 4515 value escaping, the
 * expansion of a filter template (%s address, %u local part, %d domain,
 * %% percent) into a caller's buffer, and a syntax check of a filter
 * string (RFC 4515 grammar, with RFC 4526 absolute true/false).
 *
 * Pure functions: no allocation, no locks, no I/O, no libldap. Nothing is
 * ever truncated: a result that does not fit is an error.
 */
#ifndef RG_LDAP_FILTER_H
#define RG_LDAP_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "rg_error.h"

/* Room for any filter the backend builds: a template of a few hundred
 * bytes with each of its values escaped (up to 3x an RFC 5321 path). */
#define RG_LDAP_FILTER_MAX	4096

/*
 * Escape src for use as an assertion value: '*', '(', ')', '\', control
 * characters, DEL and every byte >= 0x80 become \XX (RFC 4515 allows any
 * octet escaped; escaping non-ASCII too keeps the filter plain ASCII).
 * Writes a NUL-terminated string into dst and its length into *outlen
 * (may be NULL). Returns 0, or -1 if dst is too small (dst is then "").
 * Never blocks.
 */
int	rg_ldap_escape(const char *src, char *dst, size_t dstlen,
	    size_t *outlen);

/*
 * Expand tmpl with each value escaped by rg_ldap_escape. Returns 0, or -1
 * with err set when the result would not fit in dstlen bytes or tmpl has
 * a '%' not followed by s, u, d or % (dst is then ""). Never blocks.
 */
int	rg_ldap_filter_expand(const char *tmpl, const char *address,
	    const char *local, const char *domain, char *dst, size_t dstlen,
	    struct rg_error *err);

/*
 * Check a template at configuration time: only %s %u %d %% conversions,
 * at least one of %s %u %d, and the expansion for a sample address is a
 * valid filter. Returns 0, or -1 with the reason in err.
 */
int	rg_ldap_filter_check_template(const char *tmpl, struct rg_error *err);

/*
 * Is s one syntactically valid RFC 4515 filter, parentheses and all,
 * with nothing after it? Nesting deeper than 32 levels is refused.
 */
bool	rg_ldap_filter_valid(const char *s);

#endif
