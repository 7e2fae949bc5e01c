/* SPDX-License-Identifier: MIT */
/*
 * rg_error: a small error record filled by functions that can fail.
 *
 * Texts in it are for logs and for `rcptgate -n`; they are never echoed
 * into an SMTP reply. A record may hold several lines (rg_error_append),
 * so a configuration check can report every problem at once.
 */
#ifndef RG_ERROR_H
#define RG_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#define RG_ERROR_MAX 4096

struct rg_error {
	char	msg[RG_ERROR_MAX];	/* NUL-terminated, may hold '\n's */
	int	count;			/* number of messages recorded */
};

/* Empty the record. */
void	rg_error_clear(struct rg_error *);

/* Replace the record's text with one message. NULL err is allowed. */
void	rg_error_set(struct rg_error *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

/* Add one more message on its own line (truncated with "..." when full). */
void	rg_error_append(struct rg_error *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	rg_error_vappend(struct rg_error *, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));

#endif
