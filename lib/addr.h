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

/*
 * The address of a raw RCPT argument as the client sent it, for replies:
 * without leading spaces, the angle brackets or ESMTP parameters, bytes
 * untouched (the reply builder sanitises them). *start points into raw;
 * returns the length. Never fails ("" for NULL).
 */
size_t	rg_addr_as_sent(const char *raw, const char **start);

/*
 * The domain of a raw RCPT argument found leniently, so that an address
 * rg_addr_parse refuses (a local part over 64 octets, "a..b@d", bad
 * UTF-8 in the local part) still names its domain: the text after the
 * last '@' outside quotes, normalised as rg_addr_parse does, into out
 * (RG_DOMAIN_MAX + 1 bytes). false, with out "", when there is no '@' or
 * what follows is not a valid domain of at most RG_DOMAIN_MAX octets.
 */
bool	rg_addr_domain_of(const char *raw, char *out);

/*
 * Length of the valid UTF-8 sequence at p (2-4 bytes), or 0 for anything
 * else (ASCII, overlong forms, surrogates, C1 controls, a NUL inside).
 */
size_t	rg_utf8_seq(const unsigned char *p);

/* Human text for a status ("syntax error", ...). Static string. */
const char *rg_addr_status_str(enum rg_addr_status);

#endif
