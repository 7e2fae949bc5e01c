/* SPDX-License-Identifier: MIT */
/*
 * Logging to syslog (facility mail) and, in the foreground, to stderr.
 *
 * Thread-safe: each call formats into a local buffer and writes one line.
 * rg_warn saves errno first and appends strerror, rg_warnx does not.
 */
#ifndef RG_LOG_H
#define RG_LOG_H

#include <stddef.h>

enum rg_log_level {
	RG_LOG_ERROR = 0,
	RG_LOG_WARNING,
	RG_LOG_INFO,
	RG_LOG_DEBUG,
};

/* Open syslog with ident; also copy lines to stderr when to_stderr. */
void	rg_log_init(const char *ident, int to_stderr, enum rg_log_level);
void	rg_log_set_level(enum rg_log_level);
enum rg_log_level rg_log_get_level(void);

/* Parse "error|warning|info|debug"; -1 if unknown. */
int	rg_log_level_parse(const char *);

void	rg_err(const char *, ...) __attribute__((format(printf, 1, 2)));
void	rg_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	rg_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	rg_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	rg_debug(const char *, ...) __attribute__((format(printf, 1, 2)));

/*
 * Copy src into dst escaping control characters, backslash and bytes
 * >= 0x7f as \xNN, so a hostile address cannot forge log lines.
 * Always NUL-terminates; a too-long result ends in "...".
 */
void	rg_log_escape(char *dst, size_t dstlen, const char *src);

/*
 * The `rcptgate -t -v` trace. rg_trace_set writes a formatted detail into
 * buf (len bytes; a driver's answer to one lookup); rg_trace_add appends
 * one to what buf already holds (NUL-terminated; the decision's trace of
 * several lookups). buf NULL or len 0 does nothing. A detail that does
 * not fit is cut and ends in "..."; the trace is for display only.
 */
void	rg_trace_set(char *buf, size_t len, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	rg_trace_add(char *buf, size_t len, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
