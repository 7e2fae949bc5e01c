/* SPDX-License-Identifier: MIT */
/*
 * Envelope recipient parsing and normalisation (RFC 5321, RFC 6531).
 *
 * One forward pass over the raw RCPT argument with a cursor that stops at
 * the first byte it does not expect, so a missing NUL is the only way to
 * read too far and every buffer write goes through a bounded sink that
 * keeps counting past its end: an over-long part is then reported as
 * RG_ADDR_TOOLONG, never truncated. It must not allocate, log or consult
 * the locale (tolower() would fold bytes >= 0x80 under some locales).
 * No shared state: reentrant and lock-free.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/*
 * Bounded writer: stores at most cap bytes but counts all of them, so the
 * caller learns the real length and can report it as too long.
 */
struct sink {
	char	*buf;
	size_t	 cap;	/* usable bytes; buf has cap + 1 for the NUL */
	size_t	 len;	/* bytes offered, may exceed cap */
};

static void
sink_put(struct sink *s, unsigned char c)
{
	if (s->len < s->cap)
		s->buf[s->len] = (char)c;
	s->len++;
}

static void
sink_end(struct sink *s)
{
	s->buf[s->len < s->cap ? s->len : s->cap] = '\0';
}

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* RFC 5322 atext, ASCII part. */
static int
is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~",
	    c) != NULL);
}

/*
 * Length of the valid UTF-8 sequence at p (2-4), or 0. Rejects overlong
 * forms, surrogates, code points over U+10FFFF and the C1 controls
 * (U+0080-U+009F: valid UTF-8 but control characters all the same). A NUL
 * fails the continuation test, so this never reads past the string.
 */
size_t
rg_utf8_seq(const unsigned char *p)
{
	uint32_t cp;
	size_t	 i, n;

	if (p[0] < 0xc2)
		return 0;
	if (p[0] < 0xe0) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] < 0xf0) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] < 0xf5) {
		n = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 0;
	return n;
}

/* Is s[0..n) a dot-atom (atext or UTF-8, single inner dots)? */
static int
is_dot_atom(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t	 i;

	if (n == 0 || p[0] == '.' || p[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		if (p[i] == '.') {
			if (p[i + 1] == '.')
				return 0;
		} else if (p[i] < 0x80 && !is_atext(p[i]))
			return 0;
		/* bytes >= 0x80 were checked as UTF-8 by the caller */
	}
	return 1;
}

/*
 * Domain: dot-separated labels of letters, digits, '-', '_' (seen in the
 * wild) and UTF-8, lower-cased, one trailing dot dropped; or an address
 * literal [IPv4] / [IPv6:...] copied as is. Advances *pp past it.
 */
static enum rg_addr_status
parse_domain(const unsigned char **pp, struct sink *out)
{
	const unsigned char *p = *pp, *start;
	char	 lit[RG_DOMAIN_MAX + 1];
	size_t	 n, label = 0;

	if (*p == '[') {
		start = p++;
		while ((*p >= 33 && *p <= 90) || (*p >= 94 && *p <= 126))
			p++;
		if (*p != ']')
			return RG_ADDR_SYNTAX;
		n = (size_t)(p - start) - 1;
		if (n >= sizeof(lit))
			return RG_ADDR_TOOLONG;
		memcpy(lit, start + 1, n);
		lit[n] = '\0';
		if (strncasecmp(lit, "IPv6:", 5) == 0) {
			struct in6_addr a6;

			if (inet_pton(AF_INET6, lit + 5, &a6) != 1)
				return RG_ADDR_SYNTAX;
		} else {
			struct in_addr a4;

			if (inet_pton(AF_INET, lit, &a4) != 1)
				return RG_ADDR_SYNTAX;
		}
		for (p = start; *p != ']'; p++)
			sink_put(out, *p);
		sink_put(out, *p++);
		*pp = p;
		return RG_ADDR_OK;
	}

	for (;;) {
		if (is_alnum(*p) || *p == '-' || *p == '_') {
			sink_put(out, lower(*p++));
			label++;
		} else if (*p >= 0x80) {
			if ((n = rg_utf8_seq(p)) == 0)
				return RG_ADDR_SYNTAX;
			while (n-- > 0)
				sink_put(out, *p++);
			label++;
		} else if (*p == '.') {
			if (label == 0)
				return RG_ADDR_SYNTAX;	/* ".x", "x..y" */
			p++;
			label = 0;
			/* one trailing dot: the root, dropped */
			if (!(is_alnum(*p) || *p == '-' || *p == '_' ||
			    *p >= 0x80))
				break;
			sink_put(out, '.');
		} else
			break;
	}
	if (out->len == 0)
		return RG_ADDR_SYNTAX;
	*pp = p;
	return RG_ADDR_OK;
}

/*
 * Source route "@a,@b:" (RFC 5321 A-d-l): checked for shape, then dropped
 * as RFC 5321 4.1.1.3 says receivers should.
 */
static enum rg_addr_status
skip_route(const unsigned char **pp)
{
	const unsigned char *p = *pp;
	char	 scratch[RG_DOMAIN_MAX + 1];
	struct sink s;
	enum rg_addr_status st;

	for (;;) {
		if (*p++ != '@')
			return RG_ADDR_SYNTAX;
		s = (struct sink){ scratch, RG_DOMAIN_MAX, 0 };
		if ((st = parse_domain(&p, &s)) != RG_ADDR_OK)
			return RG_ADDR_SYNTAX;
		if (*p == ':')
			break;
		if (*p++ != ',')
			return RG_ADDR_SYNTAX;
	}
	*pp = p + 1;
	return RG_ADDR_OK;
}

/*
 * Local part into out->local: a dot-atom, or a quoted string that is
 * unquoted when its content is a dot-atom and otherwise kept in minimal
 * quoted form. Lower-cased (ASCII). *len gets the full length even when
 * it did not fit.
 */
static enum rg_addr_status
parse_local(const unsigned char **pp, struct rg_addr *out, size_t *len)
{
	const unsigned char *p = *pp;
	char	 content[RG_LOCAL_MAX + 1];
	struct sink s = { out->local, RG_LOCAL_MAX, 0 };
	struct sink c = { content, RG_LOCAL_MAX, 0 };
	size_t	 i, n;

	if (*p != '"') {
		for (;;) {
			if (is_atext(*p)) {
				sink_put(&s, lower(*p++));
			} else if (*p >= 0x80) {
				if ((n = rg_utf8_seq(p)) == 0)
					return RG_ADDR_SYNTAX;
				while (n-- > 0)
					sink_put(&s, *p++);
			} else if (*p == '.') {
				if (s.len == 0 || p[1] == '.')
					return RG_ADDR_SYNTAX;
				sink_put(&s, *p++);
			} else
				break;
		}
		if (s.len == 0 || p[-1] == '.')
			return RG_ADDR_SYNTAX;
		sink_end(&s);
		*len = s.len;
		*pp = p;
		return RG_ADDR_OK;
	}

	/* quoted-string: qtextSMTP, quoted-pairSMTP, UTF-8 (RFC 6531) */
	for (p++; *p != '"'; ) {
		if (*p == '\\') {
			if (p[1] < 32 || p[1] > 126)
				return RG_ADDR_SYNTAX;
			sink_put(&c, lower(p[1]));
			p += 2;
		} else if (*p >= 32 && *p <= 126) {
			sink_put(&c, lower(*p++));
		} else if (*p >= 0x80 && (n = rg_utf8_seq(p)) != 0) {
			while (n-- > 0)
				sink_put(&c, *p++);
		} else
			return RG_ADDR_SYNTAX;	/* control, bad UTF-8, NUL */
	}
	p++;
	*pp = p;
	if (c.len > RG_LOCAL_MAX) {
		/* the quoted form is never shorter than its content */
		*len = c.len;
		return RG_ADDR_OK;
	}
	sink_end(&c);
	if (is_dot_atom(content, c.len)) {
		memcpy(out->local, content, c.len + 1);
		*len = c.len;
		return RG_ADDR_OK;
	}
	out->quoted = true;
	sink_put(&s, '"');
	for (i = 0; i < c.len; i++) {
		if (content[i] == '"' || content[i] == '\\')
			sink_put(&s, '\\');
		sink_put(&s, (unsigned char)content[i]);
	}
	sink_put(&s, '"');
	sink_end(&s);
	*len = s.len;
	return RG_ADDR_OK;
}

/*
 * What follows the path: nothing, or spaces and ESMTP parameters
 * (keyword[=value], RFC 5321 4.1.2). Without brackets a bare word could be
 * the rest of a broken address ("a@b c"), so there each parameter must
 * carry a value.
 */
static enum rg_addr_status
check_params(const unsigned char *p, bool bracketed)
{
	size_t	 n;

	if (*p != '\0' && *p != ' ')
		return RG_ADDR_SYNTAX;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return RG_ADDR_OK;
		if (!is_alnum(*p))
			return RG_ADDR_SYNTAX;
		while (is_alnum(*p) || *p == '-')
			p++;
		if (*p == '=') {
			p++;
			if (*p == ' ' || *p == '\0')
				return RG_ADDR_SYNTAX;
			while (*p != ' ' && *p != '\0') {
				if (*p >= 33 && *p <= 126 && *p != '=')
					p++;
				else if ((n = rg_utf8_seq(p)) != 0)
					p += n;
				else
					return RG_ADDR_SYNTAX;
			}
		} else if (!bracketed)
			return RG_ADDR_SYNTAX;
		if (*p != ' ' && *p != '\0')
			return RG_ADDR_SYNTAX;
	}
}

enum rg_addr_status
rg_addr_parse(const char *raw, struct rg_addr *out)
{
	const unsigned char *p = (const unsigned char *)raw;
	struct sink dom = { out->domain, RG_DOMAIN_MAX, 0 };
	enum rg_addr_status st;
	size_t	 llen = 0, alen;
	bool	 bracketed;

	memset(out, 0, sizeof(*out));
	if (raw == NULL)
		return RG_ADDR_EMPTY;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return RG_ADDR_EMPTY;
	bracketed = *p == '<';
	if (bracketed)
		p++;
	if (bracketed && *p == '>') {
		st = check_params(p + 1, true);
		return st == RG_ADDR_OK ? RG_ADDR_EMPTY : st;
	}
	if (*p == '@' && (st = skip_route(&p)) != RG_ADDR_OK)
		return st;
	if ((st = parse_local(&p, out, &llen)) != RG_ADDR_OK)
		return st;
	if (*p == '@') {
		p++;
		if ((st = parse_domain(&p, &dom)) != RG_ADDR_OK)
			return st;
		sink_end(&dom);
	}
	if (bracketed && *p++ != '>')
		return RG_ADDR_SYNTAX;
	if ((st = check_params(p, bracketed)) != RG_ADDR_OK)
		return st;

	/* syntax first, then the limits, on the normalised form */
	alen = llen + (dom.len > 0 ? 1 + dom.len : 0);
	if (llen > RG_LOCAL_MAX || dom.len > RG_DOMAIN_MAX ||
	    alen + 2 > RG_PATH_MAX)
		return RG_ADDR_TOOLONG;
	memcpy(out->address, out->local, llen);
	if (dom.len > 0) {
		out->address[llen] = '@';
		memcpy(out->address + llen + 1, out->domain, dom.len);
	}
	out->address[alen] = '\0';
	return RG_ADDR_OK;
}

bool
rg_addr_strip_subaddress(const struct rg_addr *a, const char *delims,
    char *out, size_t outlen)
{
	size_t	 i, dlen;

	if (a == NULL || delims == NULL || out == NULL || a->quoted)
		return false;
	/* position 0 is never a subaddress ("+tag@d" is a whole name) */
	for (i = 1; a->local[i] != '\0'; i++) {
		unsigned char c = (unsigned char)a->local[i];

		/* an ASCII delimiter cannot match inside a UTF-8 sequence */
		if (c < 0x80 && strchr(delims, c) != NULL)
			break;
	}
	if (a->local[i] == '\0')
		return false;
	/* "a.+tag" would leave "a.", not a dot-atom: no lookup for it */
	if (a->local[i - 1] == '.')
		return false;
	dlen = strlen(a->domain);
	if (i + (dlen > 0 ? 1 + dlen : 0) + 1 > outlen)
		return false;	/* never truncate */
	memcpy(out, a->local, i);
	if (dlen > 0) {
		out[i] = '@';
		memcpy(out + i + 1, a->domain, dlen);
		i += 1 + dlen;
	}
	out[i] = '\0';
	return true;
}

/*
 * The path of a raw RCPT argument as the client sent it: after leading
 * spaces and the '<', up to the closing '>' (or, unbracketed, the first
 * space), reading quoted strings whole so that a '>', '@' or space
 * inside quotes does not end it. *at gets the last '@' outside quotes
 * (NULL if none). Reads no further than the NUL.
 */
static size_t
path_span(const char *raw, const char **start, const char **at)
{
	const char *p = raw;
	bool	 bracketed, quoted = false;

	*at = NULL;
	while (*p == ' ')
		p++;
	bracketed = *p == '<';
	if (bracketed)
		p++;
	*start = p;
	for (; *p != '\0'; p++) {
		if (quoted) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				quoted = false;
		} else if (*p == '"')
			quoted = true;
		else if (bracketed ? *p == '>' : *p == ' ')
			break;
		else if (*p == '@')
			*at = p;
	}
	return (size_t)(p - *start);
}

size_t
rg_addr_as_sent(const char *raw, const char **start)
{
	const char *at;

	if (raw == NULL) {
		*start = "";
		return 0;
	}
	return path_span(raw, start, &at);
}

bool
rg_addr_domain_of(const char *raw, char *out)
{
	const char *start, *at;
	const unsigned char *p;
	char	 tmp[RG_DOMAIN_MAX + 2];	/* a trailing dot, the NUL */
	struct sink s = { out, RG_DOMAIN_MAX, 0 };
	size_t	 len, n;

	out[0] = '\0';
	if (raw == NULL)
		return false;
	len = path_span(raw, &start, &at);
	if (at == NULL)
		return false;
	n = len - (size_t)(at + 1 - start);
	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, at + 1, n);
	tmp[n] = '\0';
	p = (const unsigned char *)tmp;
	if (parse_domain(&p, &s) != RG_ADDR_OK || *p != '\0' ||
	    s.len > RG_DOMAIN_MAX) {
		out[0] = '\0';
		return false;
	}
	sink_end(&s);
	return true;
}

const char *
rg_addr_status_str(enum rg_addr_status st)
{
	switch (st) {
	case RG_ADDR_OK:
		return "ok";
	case RG_ADDR_EMPTY:
		return "empty address";
	case RG_ADDR_SYNTAX:
		return "syntax error";
	case RG_ADDR_TOOLONG:
		return "address too long";
	}
	return "unknown status";
}
