/* SPDX-License-Identifier: MIT */
/*
 * RFC 4515 escaping, filter template expansion and a filter syntax check.
 *
 * Every value that comes from a recipient address goes through
 * rg_ldap_escape, so an address can never add a wildcard or a filter
 * component of its own. Overflow is reported, never truncated. No state,
 * no locks: callable from any thread.
 */
#include <string.h>

#include "ldap_filter.h"

#define FILTER_DEPTH_MAX	32

static const char hexdigits[] = "0123456789abcdef";

static bool
needs_escape(unsigned char c)
{
	return c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20 ||
	    c >= 0x7f;
}

int
rg_ldap_escape(const char *src, char *dst, size_t dstlen, size_t *outlen)
{
	size_t	o = 0;

	if (dstlen == 0)
		return -1;
	for (const unsigned char *p = (const unsigned char *)src; *p != '\0';
	    p++) {
		size_t	need = needs_escape(*p) ? 3 : 1;

		if (o + need >= dstlen) {
			dst[0] = '\0';
			return -1;
		}
		if (need == 3) {
			dst[o++] = '\\';
			dst[o++] = hexdigits[*p >> 4];
			dst[o++] = hexdigits[*p & 15];
		} else
			dst[o++] = (char)*p;
	}
	dst[o] = '\0';
	if (outlen != NULL)
		*outlen = o;
	return 0;
}

int
rg_ldap_filter_expand(const char *tmpl, const char *address,
    const char *local, const char *domain, char *dst, size_t dstlen,
    struct rg_error *err)
{
	size_t	o = 0, n;

	if (dstlen == 0) {
		rg_error_set(err, "LDAP filter buffer has no room");
		return -1;
	}
	for (const char *p = tmpl; *p != '\0'; p++) {
		const char	*val;

		if (*p != '%') {
			if (o + 1 >= dstlen)
				goto overflow;
			dst[o++] = *p;
			continue;
		}
		switch (*++p) {
		case 's':
			val = address;
			break;
		case 'u':
			val = local;
			break;
		case 'd':
			val = domain;
			break;
		case '%':
			if (o + 1 >= dstlen)
				goto overflow;
			dst[o++] = '%';
			continue;
		default:
			dst[0] = '\0';
			rg_error_set(err, "LDAP filter template: '%%' must be "
			    "followed by s, u, d or %%");
			return -1;
		}
		if (rg_ldap_escape(val != NULL ? val : "", dst + o, dstlen - o,
		    &n) == -1)
			goto overflow;
		o += n;
	}
	dst[o] = '\0';
	return 0;
overflow:
	dst[0] = '\0';
	rg_error_set(err, "LDAP filter would exceed %zu bytes", dstlen - 1);
	return -1;
}

int
rg_ldap_filter_check_template(const char *tmpl, struct rg_error *err)
{
	char		buf[RG_LDAP_FILTER_MAX];
	bool		has_value = false;

	for (const char *p = tmpl; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == 's' || *p == 'u' || *p == 'd')
			has_value = true;
		else if (*p != '%') {
			rg_error_set(err, "'%%' must be followed by s, u, d or "
			    "%% (use %%%% for a literal percent)");
			return -1;
		}
	}
	if (!has_value) {
		rg_error_set(err, "filter uses none of %%s, %%u, %%d");
		return -1;
	}
	if (rg_ldap_filter_expand(tmpl, "user@example.com", "user",
	    "example.com", buf, sizeof(buf), err) == -1)
		return -1;
	if (!rg_ldap_filter_valid(buf)) {
		rg_error_set(err, "not a valid RFC 4515 filter (expanded for "
		    "user@example.com: %s)", buf);
		return -1;
	}
	return 0;
}

/* ---- RFC 4515 syntax check: a recursive descent over the string ---- */

static bool
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* descr / numericoid; returns false if there is none at *pp. */
static bool
parse_oid_or_descr(const char **pp)
{
	const char	*p = *pp;

	if (is_alpha(*p)) {
		while (is_alpha(*p) || is_digit(*p) || *p == '-')
			p++;
	} else if (is_digit(*p)) {
		for (;;) {
			if (!is_digit(*p))
				return false;
			/* number = DIGIT / LDIGIT 1*DIGIT: no leading 0 */
			if (*p == '0' && is_digit(p[1]))
				return false;
			while (is_digit(*p))
				p++;
			if (*p != '.')
				break;
			p++;
		}
	} else
		return false;
	*pp = p;
	return true;
}

/* attr = attributedescription: oid *(";" option) */
static bool
parse_attr(const char **pp)
{
	const char	*p = *pp;

	if (!parse_oid_or_descr(&p))
		return false;
	while (*p == ';') {
		p++;
		if (!is_alpha(*p) && !is_digit(*p) && *p != '-')
			return false;
		while (is_alpha(*p) || is_digit(*p) || *p == '-')
			p++;
	}
	*pp = p;
	return true;
}

/*
 * A value up to ')' ; '*' allowed as a substring separator only when
 * star_ok. Sets *stars to the number of unescaped '*'.
 */
static bool
parse_value(const char **pp, bool star_ok, int *stars)
{
	const char	*p = *pp;

	*stars = 0;
	for (; *p != ')'; p++) {
		switch (*p) {
		case '\0':
		case '(':
			return false;
		case '*':
			/* substrings are 1*valuechar: no "**" */
			if (!star_ok || p[1] == '*')
				return false;
			(*stars)++;
			break;
		case '\\':
			if (!is_hex(p[1]) || !is_hex(p[2]))
				return false;
			p += 2;
			break;
		default:
			break;
		}
	}
	*pp = p;
	return true;
}

static bool parse_filter(const char **, int);

/* item = simple / present / substring / extensible; *pp after '(' */
static bool
parse_item(const char **pp)
{
	const char	*p = *pp;
	int		 stars;
	bool		 have_attr;

	have_attr = parse_attr(&p);
	if (*p == ':') {
		/* extensible: [attr] [":dn"] [":" rule] ":=" value */
		if (strncmp(p, ":dn", 3) == 0 && (p[3] == ':'))
			p += 3;
		if (p[0] == ':' && p[1] != '=') {
			p++;
			if (!parse_oid_or_descr(&p))
				return false;
		} else if (!have_attr)
			return false;	/* no attr needs a matching rule */
		if (p[0] != ':' || p[1] != '=')
			return false;
		p += 2;
		if (!parse_value(&p, false, &stars))
			return false;
		*pp = p;
		return true;
	}
	if (!have_attr)
		return false;
	if ((p[0] == '~' || p[0] == '>' || p[0] == '<') && p[1] == '=') {
		p += 2;
		if (!parse_value(&p, false, &stars))
			return false;
	} else if (p[0] == '=') {
		p++;
		/* simple, present ("=*") or substring: stars separate parts */
		if (!parse_value(&p, true, &stars))
			return false;
	} else
		return false;
	*pp = p;
	return true;
}

static bool
parse_filter(const char **pp, int depth)
{
	const char	*p = *pp;

	if (depth > FILTER_DEPTH_MAX || *p != '(')
		return false;
	p++;
	switch (*p) {
	case '&':
	case '|':
		p++;
		while (*p == '(')
			if (!parse_filter(&p, depth + 1))
				return false;
		break;
	case '!':
		p++;
		if (!parse_filter(&p, depth + 1))
			return false;
		break;
	default:
		if (!parse_item(&p))
			return false;
		break;
	}
	if (*p != ')')
		return false;
	*pp = p + 1;
	return true;
}

bool
rg_ldap_filter_valid(const char *s)
{
	const char	*p = s;

	if (!parse_filter(&p, 0))
		return false;
	return *p == '\0';
}
