/* SPDX-License-Identifier: MIT */
/*
 * A small blocking SMTP client for call-ahead probes, with a deadline on
 * every call (poll() on a non-blocking socket), and the reply parser it
 * uses, a pure function over a buffer so it can be unit-tested and fuzzed.
 *
 * It must not resolve anything but the configured host names, never
 * writes a command holding CR, LF or NUL, and never writes a path holding
 * '<' or '>' (checked before a byte is sent). Reply text is kept only for
 * logs: callers must never pass it on to an SMTP client of their own.
 *
 * Locking: none. A struct rg_smtp_conn belongs to one thread at a time
 * (the call-ahead pool hands it over under its own lock).
 */
#ifndef RG_SMTP_CLIENT_H
#define RG_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rg_error.h"

/* Reply text kept for logs (the last line); longer text ends in "...". */
#define RG_SMTP_TEXT_MAX	256
/* Largest reply (all lines) accepted; RFC 5321 lines are 512 octets, but
 * real servers send longer ones; anything bigger is a protocol error. */
#define RG_SMTP_REPLY_MAX	16384

struct rg_smtp_reply {
	int	code;		/* 200..599 */
	int	enh[3];		/* enhanced status code (RFC 3463) of the last
				 * line, e.g. {5, 1, 1}; {0, 0, 0} if none */
	size_t	nlines;
	char	text[RG_SMTP_TEXT_MAX];	/* last line after code and enhanced
				 * code, control bytes replaced by '?' */
	bool	text_truncated;	/* text was cut (it then ends in "...") */
	unsigned ext;		/* RG_SMTP_EXT_* keywords on lines after the
				 * first (an EHLO reply's extensions) */
};

#define RG_SMTP_EXT_SMTPUTF8	0x1	/* RFC 6531 */

/*
 * Parse one complete reply at the start of buf[0..len). Lines end in LF
 * (CR before it optional); every line is "DDD-text" except the last,
 * "DDD text" or "DDD"; all lines carry the same code, first digit 2..5.
 * Returns the number of bytes the reply takes (> 0) and fills *out; 0 if
 * buf holds no complete reply yet (read more); -1 if the bytes cannot be
 * an SMTP reply (bad code, codes differ, NUL byte). Pure: no allocation,
 * no I/O, reads nothing beyond len; any length is handled.
 */
long	rg_smtp_reply_parse(const char *buf, size_t len,
	    struct rg_smtp_reply *out);

/* What an answer to RCPT says about the recipient. */
enum rg_smtp_rcpt {
	RG_SMTP_RCPT_OK,	/* 2xx: the server takes it */
	RG_SMTP_RCPT_UNKNOWN,	/* no such user */
	RG_SMTP_RCPT_FAILED,	/* anything else: says nothing of it */
};

/*
 * Classify an answer to RCPT. Unknown only for a 5xx with an enhanced
 * code 5.1.x (bad destination address, RFC 3463) other than the
 * sender's 5.1.7 / 5.1.8, or a bare 550, 551 or 553 without any
 * enhanced code; every other non-2xx (4xx, 5.7.x policy, 5.6.7 "must
 * declare SMTPUTF8", 552, 554, ...) is a failure. Pure.
 */
enum rg_smtp_rcpt rg_smtp_rcpt_class(const struct rg_smtp_reply *);

/* Does s hold only 7-bit bytes (no SMTPUTF8 needed to send it)? */
bool	rg_smtp_ascii(const char *s);

/*
 * Is s[0..len) safe inside "<...>" of MAIL FROM / RCPT TO? Refuses CR,
 * LF, NUL, '<', '>', other control bytes, and lengths over 256 octets
 * (RFC 5321 4.5.3.1.3). The empty path (null sender) is allowed.
 */
bool	rg_smtp_path_ok(const char *s, size_t len);

/* Why a call failed; RG_SMTP_OK means a reply was read. */
enum rg_smtp_status {
	RG_SMTP_OK = 0,
	RG_SMTP_ERR_IO,		/* connect/read/write error */
	RG_SMTP_ERR_CLOSED,	/* peer closed (EOF, reset, EPIPE) */
	RG_SMTP_ERR_TIMEOUT,	/* the deadline passed */
	RG_SMTP_ERR_PROTO,	/* not a reply, or too long */
	RG_SMTP_ERR_ARG,	/* refused before writing (unsafe command) */
};

const char *rg_smtp_status_str(enum rg_smtp_status);	/* static string */

struct rg_smtp_conn;

/*
 * Connect to host (an IPv4 or IPv6 literal, or a name resolved with
 * getaddrinfo, which may block on DNS and is not bounded by the deadline)
 * and port, trying each address in turn until deadline_ms (rg_now_ms()
 * clock). Does not read the greeting. On success *out is a connection to
 * free with rg_smtp_close. Blocks up to the deadline.
 */
enum rg_smtp_status rg_smtp_connect(const char *host, const char *port,
	    uint64_t deadline_ms, struct rg_smtp_conn **out,
	    struct rg_error *err);

/* Read one reply (greeting or answer) before deadline_ms. Blocks. */
enum rg_smtp_status rg_smtp_read_reply(struct rg_smtp_conn *,
	    uint64_t deadline_ms, struct rg_smtp_reply *, struct rg_error *);

/*
 * Send "verb" or "verb<path>" (path may be NULL: no angle brackets) plus
 * CRLF, then read the reply. verb must hold no CR, LF or NUL, path must
 * pass rg_smtp_path_ok; otherwise RG_SMTP_ERR_ARG and nothing is written.
 * Example: rg_smtp_command(c, "RCPT TO:", "bob@example.com", ...).
 * Blocks up to deadline_ms.
 */
enum rg_smtp_status rg_smtp_command(struct rg_smtp_conn *, const char *verb,
	    const char *path, uint64_t deadline_ms, struct rg_smtp_reply *,
	    struct rg_error *);

/*
 * The same with ESMTP parameters after the path: "verb<path> params"
 * (params NULL or "" for none, e.g. "SMTPUTF8"; no CR, LF or NUL).
 */
enum rg_smtp_status rg_smtp_command_params(struct rg_smtp_conn *,
	    const char *verb, const char *path, const char *params,
	    uint64_t deadline_ms, struct rg_smtp_reply *, struct rg_error *);

/* The peer's address as "[addr]:port", for logs. */
const char *rg_smtp_peer(const struct rg_smtp_conn *);

/*
 * Our own address on the connection (getsockname), without the port,
 * into buf[0..size): what the server sees unless NAT stands between.
 * Returns 0, or -1 (buf then holds "?").
 */
int	rg_smtp_local(const struct rg_smtp_conn *, char *buf, size_t size);

/*
 * Close the connection. If quit, first write "QUIT" without waiting for
 * the answer (never blocks). NULL allowed.
 */
void	rg_smtp_close(struct rg_smtp_conn *, bool quit);

#endif
