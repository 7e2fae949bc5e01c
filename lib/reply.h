/* SPDX-License-Identifier: MIT */
/*
 * The one place SMTP reply texts are built.
 *
 * Guarantees for every reply handed to libmilter: `%` doubled (Sendmail
 * turns a lone `%` into "550 5.7.1 Command rejected"), CR, LF and other
 * control characters removed, valid UTF-8 kept (an address is echoed as
 * the client sent it) and any other byte >= 0x80 shown as '?', the whole
 * line within libmilter's 980-byte limit, and the enhanced code's class
 * equal to the reply's first digit (Postfix treats a mismatch as a milter
 * failure). Pure, thread-safe.
 */
#ifndef RG_REPLY_H
#define RG_REPLY_H

#include <stddef.h>

#define RG_REPLY_LINE_MAX	980	/* libmilter's MAXREPLYLEN */

struct rg_reply {
	char	rcode[4];		/* "550" */
	char	xcode[16];		/* "5.1.1" */
	char	text[RG_REPLY_LINE_MAX];/* sanitised, %-doubled */
};

/*
 * Where the reply goes. The milter form doubles '%' (libmilter hands the
 * text to the MTA as a format: Sendmail turns a lone '%' into "550 5.7.1
 * Command rejected"). Postfix's policy protocol takes the text as it is
 * and does not undo "%%", so that form leaves '%' alone. Both forms drop
 * control characters: a LF would end a policy reply early.
 */
enum rg_reply_form {
	RG_REPLY_MILTER = 0,
	RG_REPLY_POLICY,
};

/*
 * Fill r from rcode, xcode and text (text may hold an untrusted address).
 * Returns 0, or -1 when rcode is not a 4xx/5xx code or xcode is not
 * "C.S.D" with C equal to rcode's first digit (a programming or config
 * error: r is then set to a safe "451 4.3.0 Temporary failure").
 * Text that does not fit is cut at a character boundary and ends in "...".
 */
int	rg_reply_build(struct rg_reply *r, const char *rcode, const char *xcode,
	    const char *text);

/* The same, for the given form (rg_reply_build is RG_REPLY_MILTER). */
int	rg_reply_build_form(struct rg_reply *r, enum rg_reply_form form,
	    const char *rcode, const char *xcode, const char *text);

/* The whole line "rcode xcode text" (for -t, logs and tests). */
void	rg_reply_line(const struct rg_reply *, char *buf, size_t buflen);

#endif
