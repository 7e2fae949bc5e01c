/* SPDX-License-Identifier: MIT */
/*
 * rg_error: fill and extend an error record. No locks; one record
 * belongs to one caller.
 */
#include <stdio.h>
#include <string.h>

#include "rg_error.h"

void
rg_error_clear(struct rg_error *err)
{
	if (err == NULL)
		return;
	err->msg[0] = '\0';
	err->count = 0;
}

void
rg_error_vappend(struct rg_error *err, const char *fmt, va_list ap)
{
	size_t	used, room;
	int	n;

	if (err == NULL)
		return;
	used = strlen(err->msg);
	if (used > 0 && used + 1 < sizeof(err->msg))
		err->msg[used++] = '\n', err->msg[used] = '\0';
	room = sizeof(err->msg) - used;
	n = vsnprintf(err->msg + used, room, fmt, ap);
	if (n >= 0 && (size_t)n >= room && sizeof(err->msg) > 4)
		memcpy(err->msg + sizeof(err->msg) - 4, "...", 4);
	err->count++;
}

void
rg_error_append(struct rg_error *err, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	rg_error_vappend(err, fmt, ap);
	va_end(ap);
}

void
rg_error_set(struct rg_error *err, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL)
		return;
	rg_error_clear(err);
	va_start(ap, fmt);
	rg_error_vappend(err, fmt, ap);
	va_end(ap);
}
