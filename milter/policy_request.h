/* SPDX-License-Identifier: MIT */
/*
 * One request of Postfix's policy delegation protocol
 * (SMTPD_POLICY_README): "name=value" lines, an empty line at the end.
 * Pure, no I/O, no allocation: the parser works in the caller's buffer.
 */
#ifndef RG_POLICY_REQUEST_H
#define RG_POLICY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

/* A request this long without its empty line is refused (Postfix's own
 * requests stay under a few KiB: every attribute is bounded by smtpd). */
#define RG_PF_REQUEST_MAX	16384

/* The attributes rcptgate reads; NULL when the request had none. */
struct rg_pf_request {
	const char	*request;		/* "smtpd_access_policy" */
	const char	*protocol_state;	/* "RCPT", "DATA", ... */
	const char	*recipient;
	const char	*client_address;
	const char	*client_port;
	const char	*server_address;
	const char	*server_port;
	const char	*sasl_username;
	const char	*instance;		/* "PID.SEC.USEC.SEQ", hex */
	const char	*queue_id;
};

/*
 * Where the request in buf[0..len) ends: the offset just after its empty
 * line, or 0 when it is not complete yet. Reads only bytes it is given.
 */
size_t	rg_pf_request_end(const char *buf, size_t len);

/*
 * Parse the complete request buf[0..end) (end from rg_pf_request_end),
 * NUL-terminating names and values in place; the pointers in *r point
 * into buf. A CR before each LF is allowed. 0, or -1 with why (a line
 * without '=', a control byte or NUL, not an smtpd_access_policy
 * request) and *r unusable.
 */
int	rg_pf_request_parse(char *buf, size_t end, struct rg_pf_request *r,
	    char *why, size_t wlen);

/*
 * Postfix sends the recipient in its internal form, unquoted
 * ("john doe@example.com" for RCPT TO:<"john doe"@example.com>); the
 * decision reads addresses as an SMTP client sends them. Write the
 * external form into out (the local part quoted again when it is not a
 * dot-atom). false when it does not fit in outlen.
 */
bool	rg_pf_recipient_external(const char *in, char *out, size_t outlen);

/*
 * The name of the SMTP session a request belongs to, for the per-session
 * harvest state: client and server address and port, and the smtpd
 * process id from instance, so a later session that happens to reuse
 * the client's port in another smtpd is another session. false (no
 * per-session state) when Postfix sent no ports.
 */
bool	rg_pf_session_key(const struct rg_pf_request *, char *out,
	    size_t outlen);

#endif
