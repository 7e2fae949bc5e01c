/* SPDX-License-Identifier: MIT */
/*
 * The control socket protocol between rcptgate-ctl and the daemon.
 *
 * Request: one line of at most RG_CTL_LINE_MAX bytes, fields separated
 * by TAB (no address holds a TAB), ending in LF:
 *	[json<TAB>]COMMAND[<TAB>ARG]...
 * COMMAND is status | flush ADDRESS... | flush --all | explain ADDRESS
 * [--client IP] | blocks | unblock PREFIX | reload. Reply: a first line
 * "ok" or "error<TAB>MESSAGE", then the body (text or one JSON
 * document) until the daemon closes the connection.
 *
 * Pure: no I/O, no locks, no allocation.
 */
#ifndef RG_CTLPROTO_H
#define RG_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define RG_CTL_LINE_MAX	4096
#define RG_CTL_ARGS_MAX	64

enum rg_ctl_cmd {
	RG_CTL_STATUS,
	RG_CTL_FLUSH,
	RG_CTL_FLUSH_ALL,
	RG_CTL_EXPLAIN,
	RG_CTL_BLOCKS,
	RG_CTL_UNBLOCK,
	RG_CTL_RELOAD,
};

struct rg_ctl_req {
	enum rg_ctl_cmd	 cmd;
	bool		 json;
	size_t		 nargs;			/* flush: addresses; explain: 1;
						 * unblock: 1 */
	const char	*args[RG_CTL_ARGS_MAX];	/* point into buf */
	const char	*client;		/* explain --client, or NULL */
	char		 buf[RG_CTL_LINE_MAX + 1];
};

/*
 * Parse one request line (len bytes, with or without its LF; NUL bytes
 * are an error). 0, or -1 with a one-line reason in why.
 */
int	rg_ctl_parse(const char *line, size_t len, struct rg_ctl_req *req,
	    char *why, size_t wlen);

/* Write s as a JSON string (quotes included) to f. */
void	rg_json_str(FILE *f, const char *s);

#endif
