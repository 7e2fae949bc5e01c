/* SPDX-License-Identifier: MIT */
/*
 * Logging to syslog (facility mail) and optionally stderr.
 *
 * The level and the stderr flag are set once before threads start (and
 * the level again on reload, an atomic int). Each line is formatted in a
 * local buffer and written with one call, so lines never interleave.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static atomic_int	log_level = RG_LOG_INFO;
static int		log_stderr;
static const char	*log_ident = "rcptgate";

static const char *const level_names[] = { "error", "warning", "info", "debug" };
static const int	syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void
rg_log_init(const char *ident, int to_stderr, enum rg_log_level level)
{
	log_ident = ident;
	/* Under systemd, stderr goes to the journal, which gets syslog too:
	 * one copy is enough. */
	log_stderr = to_stderr && getenv("JOURNAL_STREAM") == NULL;
	atomic_store(&log_level, (int)level);
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
rg_log_set_level(enum rg_log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum rg_log_level
rg_log_get_level(void)
{
	return (enum rg_log_level)atomic_load(&log_level);
}

int
rg_log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

static void
log_write(enum rg_log_level level, const char *suffix, const char *fmt,
    va_list ap)
{
	char	line[2048];
	int	n;

	if ((int)level > atomic_load(&log_level))
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (suffix != NULL && (size_t)n < sizeof(line))
		snprintf(line + n, sizeof(line) - (size_t)n, ": %s", suffix);
	syslog(syslog_prio[level], "%s", line);
	if (log_stderr) {
		struct timespec	ts;
		struct tm	tm;
		char		stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s[%ld]: %s%s\n", stamp,
		    ts.tv_nsec / 1000000, log_ident, (long)getpid(),
		    level == RG_LOG_ERROR ? "error: " :
		    level == RG_LOG_WARNING ? "warning: " : "", line);
	}
}

void
rg_err(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_write(RG_LOG_ERROR, NULL, fmt, ap);
	va_end(ap);
}

void
rg_warn(const char *fmt, ...)
{
	char		 buf[128];
	const char	*text;
	int		 saved = errno;
	va_list		 ap;

	text = strerror_r(saved, buf, sizeof(buf));	/* GNU: may not use buf */
	va_start(ap, fmt);
	log_write(RG_LOG_WARNING, text, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
rg_warnx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_write(RG_LOG_WARNING, NULL, fmt, ap);
	va_end(ap);
}

void
rg_info(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_write(RG_LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

void
rg_debug(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_write(RG_LOG_DEBUG, NULL, fmt, ap);
	va_end(ap);
}

void
rg_log_escape(char *dst, size_t dstlen, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t	o = 0;

	if (dstlen == 0)
		return;
	for (; *src != '\0'; src++) {
		unsigned char	c = (unsigned char)*src;
		size_t		need = (c < 0x20 || c >= 0x7f || c == '\\') ? 4 : 1;

		if (o + need + 1 > dstlen) {
			if (dstlen >= 4)
				memcpy(dst + (o > dstlen - 4 ? dstlen - 4 : o), "...", 4);
			else
				dst[0] = '\0';
			return;
		}
		if (need == 4) {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		} else
			dst[o++] = (char)c;
	}
	dst[o] = '\0';
}

static void trace_put(char *, size_t, size_t, const char *, va_list)
    __attribute__((format(printf, 4, 0)));

/* Format at buf + used; a cut detail ends in "...". */
static void
trace_put(char *buf, size_t len, size_t used, const char *fmt, va_list ap)
{
	int	n = vsnprintf(buf + used, len - used, fmt, ap);

	if (n >= 0 && (size_t)n >= len - used && len > 4)
		memcpy(buf + len - 4, "...", 4);
}

void
rg_trace_set(char *buf, size_t len, const char *fmt, ...)
{
	va_list	ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	trace_put(buf, len, 0, fmt, ap);
	va_end(ap);
}

void
rg_trace_add(char *buf, size_t len, const char *fmt, ...)
{
	size_t	used;
	va_list	ap;

	if (buf == NULL || len == 0 || (used = strlen(buf)) + 1 >= len)
		return;
	va_start(ap, fmt);
	trace_put(buf, len, used, fmt, ap);
	va_end(ap);
}
