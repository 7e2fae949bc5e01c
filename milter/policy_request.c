/* SPDX-License-Identifier: MIT */
/*
 * Postfix policy requests (see policy_request.h). Attribute names that
 * rcptgate does not read are skipped, as Postfix's documentation asks of
 * a policy server: Postfix adds attributes over its releases.
 */
#include <stdio.h>
#include <string.h>

#include "policy_request.h"

size_t
rg_pf_request_end(const char *buf, size_t len)
{
	const char	*p = buf, *nl;

	/* an empty line: "\n" or "\r\n" at the start of a line */
	while ((nl = memchr(p, '\n', len - (size_t)(p - buf))) != NULL) {
		size_t	linelen = (size_t)(nl - p);

		if (linelen == 0 || (linelen == 1 && p[0] == '\r'))
			return (size_t)(nl - buf) + 1;
		p = nl + 1;
	}
	return 0;
}

static const char **
field(struct rg_pf_request *r, const char *name)
{
	static const struct {
		const char	*name;
		size_t		 off;
	} names[] = {
#define F(n)	{ #n, offsetof(struct rg_pf_request, n) }
		F(request), F(protocol_state), F(recipient),
		F(client_address), F(client_port), F(server_address),
		F(server_port), F(sasl_username), F(instance), F(queue_id),
#undef F
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i].name) == 0)
			return (const char **)(void *)((char *)r + names[i].off);
	return NULL;
}

/* One "name=value" line of len bytes (no LF) at line. */
static int
parse_line(char *line, size_t len, unsigned lineno, struct rg_pf_request *r,
    char *why, size_t wlen)
{
	const char	**f;
	char		 *eq;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\0', len) != NULL) {
		(void)snprintf(why, wlen, "NUL byte (line %u)", lineno);
		return -1;
	}
	line[len] = '\0';
	if ((eq = strchr(line, '=')) == NULL || eq == line) {
		(void)snprintf(why, wlen, "line without '=' (line %u)",
		    lineno);
		return -1;
	}
	/*
	 * A name is plain text. A value may hold what an SMTP client sent
	 * (a HELO name, an address): the decision handles hostile bytes.
	 */
	for (const char *n = line; n < eq; n++)
		if ((unsigned char)*n <= 0x20 || (unsigned char)*n >= 0x7f) {
			(void)snprintf(why, wlen, "byte 0x%02x in an attribute "
			    "name (line %u)", (unsigned char)*n, lineno);
			return -1;
		}
	*eq = '\0';
	if ((f = field(r, line)) != NULL)
		*f = eq + 1;	/* a repeated name: the last one counts */
	return 0;
}

int
rg_pf_request_parse(char *buf, size_t end, struct rg_pf_request *r,
    char *why, size_t wlen)
{
	char		*p = buf, *nl;
	unsigned	 lineno = 0;

	memset(r, 0, sizeof(*r));
	while ((nl = memchr(p, '\n', end - (size_t)(p - buf))) != NULL) {
		size_t	len = (size_t)(nl - p);

		lineno++;
		if (len == 0 || (len == 1 && p[0] == '\r'))
			break;	/* the empty line that ends the request */
		if (parse_line(p, len, lineno, r, why, wlen) == -1)
			return -1;
		p = nl + 1;
	}
	if (r->request == NULL || strcmp(r->request, "smtpd_access_policy")) {
		(void)snprintf(why, wlen, "not an smtpd_access_policy request");
		return -1;
	}
	return 0;
}

/* RFC 5322 atext, and any byte of a UTF-8 sequence (RFC 6531). */
static bool
atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80 ||
	    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
dot_atom(const char *s, size_t len)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '.' ? s[i + 1] == '.' : !atext((unsigned char)s[i]))
			return false;
	return true;
}

bool
rg_pf_recipient_external(const char *in, char *out, size_t outlen)
{
	const char	*at = strrchr(in, '@');
	size_t		 llen = at != NULL ? (size_t)(at - in) : strlen(in);
	size_t		 o = 0;

	if (dot_atom(in, llen) || (llen == 0 && at == NULL))
		return (size_t)snprintf(out, outlen, "%s", in) < outlen;
	/* "local" with '"' and '\' escaped (RFC 5321 quoted-string) */
	if (outlen < 3)
		return false;
	out[o++] = '"';
	for (size_t i = 0; i < llen; i++) {
		if (o + 3 >= outlen)
			return false;
		if (in[i] == '"' || in[i] == '\\')
			out[o++] = '\\';
		out[o++] = in[i];
	}
	out[o++] = '"';
	return (size_t)snprintf(out + o, outlen - o, "%s",
	    at != NULL ? at : "") < outlen - o;
}

bool
rg_pf_session_key(const struct rg_pf_request *r, char *out, size_t outlen)
{
	size_t	pidlen;
	int	n;

	if (r->client_address == NULL || r->client_port == NULL ||
	    r->server_address == NULL || r->server_port == NULL ||
	    r->client_port[0] == '\0' || r->server_port[0] == '\0')
		return false;
	pidlen = r->instance != NULL ? strcspn(r->instance, ".") : 0;
	n = snprintf(out, outlen, "%s|%s|%s|%s|%.*s", r->client_address,
	    r->client_port, r->server_address, r->server_port, (int)pidlen,
	    r->instance != NULL ? r->instance : "");
	return n > 0 && (size_t)n < outlen;
}
