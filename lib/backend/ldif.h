/* SPDX-License-Identifier: MIT */
/*
 * An LDIF reader for rcptgate-table: the content records that OpenLDAP's
 * ldapsearch (RFC 2849) and Active Directory's ldifde write, reduced to
 * the addresses in chosen attributes (default "mail,proxyAddresses").
 * Reads folded lines, base64 values, comments, CRLF line ends and the
 * UTF-16LE (with BOM) of "ldifde -u". Never fetches an "attr:< URL"
 * value. No global state, no locks; one reader per call.
 */
#ifndef RG_LDIF_H
#define RG_LDIF_H

#include <stdbool.h>
#include <stdio.h>

#include "table.h"

#define RG_LDIF_DEFAULT_ATTRS	"mail,proxyAddresses"
#define RG_LDIF_LINE_MAX	(1024 * 1024)	/* one unfolded line */
#define RG_LDIF_ATTRS_MAX	16

/* Progress: entries read so far and addresses kept so far. */
typedef void rg_ldif_progress_fn(void *arg, long entries, size_t keys);

struct rg_ldif_opts {
	const char		*attrs;		/* comma list; NULL: default */
	bool			 include_disabled;
	rg_table_bad_fn		*warn;		/* NULL: no warnings */
	rg_ldif_progress_fn	*progress;	/* NULL: none; every 1024 */
	void			*arg;		/* for warn and progress */
};

/*
 * Check an attribute list as given to --ldif-attrs: 0, or -1 with why
 * (whylen bytes) set. Pure.
 */
int	rg_ldif_check_attrs(const char *attrs, char *why, size_t whylen);

/*
 * Read the LDIF in in (name is used in messages) and add to keys the
 * normalised address of every value of the chosen attributes, taking
 * "smtp:"/"SMTP:" values without their prefix and leaving out other
 * typed values ("X400:", "SIP:") and, unless include_disabled, entries
 * whose userAccountControl has bit 0x2 (ACCOUNTDISABLE). bad is called
 * for EVERY error with the line number in the file (the first physical
 * line of a folded line). Returns the number of errors (0: keys is
 * complete), or -1 on a read or memory error (errno set). The caller
 * frees keys, even on failure. Blocks on reading in.
 */
long	rg_ldif_read(FILE *in, const char *name, const struct rg_ldif_opts *o,
	    struct rg_table_keys *keys, rg_table_bad_fn *bad, void *arg);

#endif
