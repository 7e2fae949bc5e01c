/* SPDX-License-Identifier: MIT */
/*
 * Envelope recipient parsing and normalisation (RFC 5321).
 *
 * Pure functions: no allocation, no locks, no I/O. Every buffer has a
 * fixed size set by the RFC limits, so nothing is ever truncated: input
 * over a limit is reported as RG_ADDR_TOOLONG.
 */
#ifndef RG_ADDR_H
#define RG_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define RG_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define RG_DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define RG_PATH_MAX	256	/* RFC 5321 4.5.3.1.3, counting the <> */

enum rg_addr_status {
	RG_ADDR_OK = 0,
	RG_ADDR_EMPTY,		/* "<>" or nothing */
	RG_ADDR_SYNTAX,		/* malformed: 550 5.1.3 */
	RG_ADDR_TOOLONG,	/* over an RFC 5321 limit: 550 5.1.3 */
};

struct rg_addr {
	/* "local@domain": domain lower-cased without trailing dot, local part
	 * lower-cased, quotes removed when the quoted text is a dot-atom. */
	char	address[RG_PATH_MAX + 1];
	char	local[RG_LOCAL_MAX + 1];
	char	domain[RG_DOMAIN_MAX + 1];
	bool	quoted;		/* local part stays quoted ("a b"@d) */
};

/*
 * Parse a raw RCPT TO argument as the MTA passes it: optional <>, an
 * optional source route (@a,@b:) that is dropped, a dot-atom or quoted
 * local part, a domain or address literal. ESMTP parameters after the
 * closing '>' are ignored. Returns the status; *out is valid only on OK.
 */
enum rg_addr_status rg_addr_parse(const char *raw, struct rg_addr *out);

/*
 * If the local part holds one of the delimiter characters (a non-empty
 * string such as "+" or "+-"), write the address without the subaddress
 * ("user+tag@d" -> "user@d") into out (RG_PATH_MAX + 1 bytes) and return
 * true. A delimiter at position 0 ("+tag@d") is not a subaddress.
 */
bool	rg_addr_strip_subaddress(const struct rg_addr *, const char *delims,
	    char *out, size_t outlen);

/* Human text for a status ("syntax error", ...). Static string. */
const char *rg_addr_status_str(enum rg_addr_status);

#endif
