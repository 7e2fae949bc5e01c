/* SPDX-License-Identifier: MIT */
/*
 * LDIF input for rcptgate-table (see ldif.h): a streaming reader that
 * keeps one unfolded line and one entry's addresses in memory, so a
 * nightly export of a large directory reads in constant memory beside
 * the key list itself.
 *
 * What it must not do: fetch an "attr:< URL" value (a file: URL in an
 * export is a way to read local files; we warn and skip instead); take
 * a catch-all "@domain" from a directory (one odd value would accept a
 * whole domain); add anything of an entry or file that had an error
 * (the caller then changes nothing); read an unbounded line into
 * memory. No global state, no locks.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ldif.h"

#define ATTR_NAME_MAX	64
#define VALUE_MAX	4096	/* a wanted value; addresses are <= 256 */
#define PROGRESS_EVERY	1024	/* entries between progress calls */

struct reader {
	FILE		*in;
	const char	*name;
	bool		 utf16;
	int		 back;		/* pushed-back byte, or -1 */
	unsigned char	 u8[4];		/* one decoded UTF-16 character */
	int		 u8n, u8i;
	long		 lineno;	/* physical lines consumed */
	char		*buf;		/* the unfolded line */
	size_t		 len, cap;
	bool		 overflow, nul, badenc;
	bool		 oddbyte;	/* UTF-16 input ended mid-unit */
	char		 attrs[RG_LDIF_ATTRS_MAX][ATTR_NAME_MAX + 1];
	int		 nattrs;
	const struct rg_ldif_opts *o;
	rg_table_bad_fn	*bad;
	void		*arg;
	long		 nbad;
	/* the current entry */
	long		 entry_line;
	bool		 has_dn, disabled;
	struct rg_table_keys pend;
	long		 entries;
};

static void say_bad(struct reader *, long, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
say_bad(struct reader *r, long line, const char *fmt, ...)
{
	va_list	ap;
	char	why[384];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	r->bad(r->arg, r->name, line, why);
	r->nbad++;
}

static bool
is_attr_char(int c)
{
	return isalnum((unsigned char)c) || c == '-' || c == ';' || c == '.';
}

int
rg_ldif_check_attrs(const char *attrs, char *why, size_t whylen)
{
	const char	*p = attrs, *e;
	size_t		 n;
	int		 count = 0;

	for (;;) {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n == 0 || n > ATTR_NAME_MAX) {
			snprintf(why, whylen, "attribute list '%.80s': %s",
			    attrs, n == 0 ? "empty name" : "name too long");
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			if (!is_attr_char(p[i]) || p[i] == ';') {
				snprintf(why, whylen, "attribute list "
				    "'%.80s': not an attribute name", attrs);
				return -1;
			}
		if (++count > RG_LDIF_ATTRS_MAX) {
			snprintf(why, whylen, "attribute list: more than %d "
			    "names", RG_LDIF_ATTRS_MAX);
			return -1;
		}
		if (e == NULL)
			return 0;
		p = e + 1;
	}
}

static void
utf8_put(struct reader *r, uint32_t cp)
{
	r->u8i = 0;
	if (cp < 0x80) {
		r->u8[0] = (unsigned char)cp;
		r->u8n = 1;
	} else if (cp < 0x800) {
		r->u8[0] = (unsigned char)(0xc0 | cp >> 6);
		r->u8[1] = (unsigned char)(0x80 | (cp & 0x3f));
		r->u8n = 2;
	} else if (cp < 0x10000) {
		r->u8[0] = (unsigned char)(0xe0 | cp >> 12);
		r->u8[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		r->u8[2] = (unsigned char)(0x80 | (cp & 0x3f));
		r->u8n = 3;
	} else {
		r->u8[0] = (unsigned char)(0xf0 | cp >> 18);
		r->u8[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
		r->u8[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		r->u8[3] = (unsigned char)(0x80 | (cp & 0x3f));
		r->u8n = 4;
	}
}

/* One UTF-16LE code unit, or -1 at end of file (an odd byte is bad). */
static long
unit16(struct reader *r)
{
	int	lo, hi;

	if ((lo = getc(r->in)) == EOF)
		return -1;
	if ((hi = getc(r->in)) == EOF) {
		r->oddbyte = true;
		return -1;
	}
	return lo | hi << 8;
}

/* The next byte of the input as UTF-8, or EOF. */
static int
src_getc(struct reader *r)
{
	long	u, u2;
	int	c;

	if (r->back >= 0) {
		c = r->back;
		r->back = -1;
		return c;
	}
	if (r->u8i < r->u8n)
		return r->u8[r->u8i++];
	if (!r->utf16)
		return getc(r->in);
	if ((u = unit16(r)) == -1)
		return EOF;
	if (u >= 0xd800 && u <= 0xdbff) {
		if ((u2 = unit16(r)) < 0xdc00 || u2 > 0xdfff) {
			r->badenc = true;	/* unpaired: U+FFFD */
			u = 0xfffd;
		} else
			u = 0x10000 + ((u - 0xd800) << 10) + (u2 - 0xdc00);
	} else if (u >= 0xdc00 && u <= 0xdfff) {
		r->badenc = true;
		u = 0xfffd;
	}
	utf8_put(r, (uint32_t)u);
	return r->u8[r->u8i++];
}

static int
buf_put(struct reader *r, int c)
{
	char	*nb;
	size_t	 cap;

	if (c == '\0')
		r->nul = true;
	if (r->len + 1 >= RG_LDIF_LINE_MAX) {
		r->overflow = true;	/* keep the head: it names the attr */
		return 0;
	}
	if (r->len + 1 >= r->cap) {
		cap = r->cap ? r->cap * 2 : 256;
		if ((nb = realloc(r->buf, cap)) == NULL)
			return -1;
		r->buf = nb;
		r->cap = cap;
	}
	r->buf[r->len++] = (char)c;
	return 0;
}

/*
 * Read one unfolded line into r->buf (NUL-terminated, no line end):
 * 1, 0 at end of input, -1 on a read or memory error. *start gets the
 * number of its first physical line.
 */
static int
read_line(struct reader *r, long *start)
{
	size_t	seg;
	int	c;

	r->len = 0;
	r->overflow = r->nul = r->badenc = false;
	if ((c = src_getc(r)) == EOF)
		return ferror(r->in) ? -1 : 0;
	*start = ++r->lineno;
	seg = 0;
	for (;;) {
		if (c == EOF || c == '\n') {
			/* CRLF: drop this segment's CR only */
			if (r->len > seg && r->buf[r->len - 1] == '\r')
				r->len--;
			if (c == EOF || (c = src_getc(r)) != ' ') {
				if (c != EOF)
					r->back = c;
				break;
			}
			r->lineno++;	/* a folded continuation */
			seg = r->len;
		} else if (buf_put(r, c) == -1)
			return -1;
		c = src_getc(r);
	}
	if (ferror(r->in))
		return -1;
	if (buf_put(r, 0) == -1)
		return -1;
	r->len--;
	r->nul = r->nul && memchr(r->buf, '\0', r->len) != NULL;
	return 1;
}

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decode base64 s into out (outlen bytes, NUL-terminated): the decoded
 * length, or -1 if s is not base64 or does not fit.
 */
static long
b64_decode(const char *s, char *out, size_t outlen)
{
	size_t		 n = strlen(s), o = 0, i;
	unsigned long	 acc = 0;
	int		 bits = 0, v, pad = 0;

	while (n > 0 && s[n - 1] == ' ')
		n--;
	if (n % 4 != 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] == '=') {
			if (i + 2 < n || ++pad > 2)
				return -1;
			continue;
		}
		if (pad > 0 || (v = b64val((unsigned char)s[i])) < 0)
			return -1;
		acc = (acc << 6 | (unsigned long)v) & 0xffffff;
		if ((bits += 6) >= 8) {
			bits -= 8;
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	out[o] = '\0';
	return (long)o;
}

static bool
attr_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

static bool
attr_wanted(const struct reader *r, const char *name, size_t n)
{
	for (int i = 0; i < r->nattrs; i++)
		if (attr_is(name, n, r->attrs[i]))
			return true;
	return false;
}

/* End the current entry: keep its addresses unless disabled or bad. */
static int
entry_end(struct reader *r, struct rg_table_keys *keys)
{
	size_t	i;
	int	rc = 0;

	if (r->has_dn && (!r->disabled || r->o->include_disabled) &&
	    r->nbad == 0)
		for (i = 0; i < r->pend.n && rc == 0; i++)
			rc = rg_table_keys_add(keys, r->pend.v[i]);
	if (r->has_dn && ++r->entries % PROGRESS_EVERY == 0 &&
	    r->o->progress != NULL)
		r->o->progress(r->o->arg, r->entries, keys->n);
	rg_table_keys_free(&r->pend);
	r->has_dn = r->disabled = false;
	return rc;
}

/*
 * The address in one value of a wanted attribute, into key: 1, 0 for a
 * value that is no SMTP address ("X400:...", "SIP:..."), -1 if bad.
 */
static int
value_key(struct reader *r, long line, const char *v,
    char key[RG_PATH_MAX + 1])
{
	const char	*colon = strchr(v, ':'), *p;
	char		 why[256];

	if (colon != NULL && memchr(v, '@', (size_t)(colon - v)) == NULL) {
		/* proxyAddresses: "type:address"; SMTP: is the primary */
		for (p = v; p < colon; p++)
			if (!isalnum((unsigned char)*p) && *p != '-')
				break;
		if (p == colon && colon > v) {
			if (colon - v != 4 || strncasecmp(v, "smtp", 4) != 0)
				return 0;
			v = colon + 1;
		}
	}
	/*
	 * rg_addr_parse reads an RCPT TO argument: after a space come ESMTP
	 * parameters, so "a@b.c X=1" would become "a@b.c" and junk pass
	 * unseen. A directory value is one address: refuse any space or
	 * control byte in it before it gets there.
	 */
	for (p = v; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			say_bad(r, line, "'%.80s': not an address (space or "
			    "control character)", v);
			return -1;
		}
	if (v[0] == '@') {
		say_bad(r, line, "'%.80s': a catch-all is not taken from "
		    "LDIF", v);
		return -1;
	}
	if (rg_table_normalise(v, key, why, sizeof(why)) == -1) {
		say_bad(r, line, "%s", why);
		return -1;
	}
	return 1;
}

/* Decode the value after "name:" at v (plain, "::" base64, "<" URL) */
static int
value_decode(struct reader *r, long line, const char *v, char *out,
    size_t outlen, const char *attr)
{
	long	n;

	if (*v == '<') {
		if (r->o->warn != NULL) {
			char	why[160];

			snprintf(why, sizeof(why), "warning: '%.64s:<' URL "
			    "value not fetched; skipped", attr);
			r->o->warn(r->o->arg, r->name, line, why);
		}
		return 0;
	}
	if (*v == ':') {
		for (v++; *v == ' '; v++)
			;
		if ((n = b64_decode(v, out, outlen)) == -1) {
			say_bad(r, line, "'%.64s::' value is not base64 "
			    "(or too long)", attr);
			return -1;
		}
		if (memchr(out, '\0', (size_t)n) != NULL) {
			say_bad(r, line, "'%.64s::' value holds a NUL byte",
			    attr);
			return -1;
		}
		return 1;
	}
	while (*v == ' ')
		v++;
	if (strlen(v) >= outlen) {
		say_bad(r, line, "'%.64s' value too long", attr);
		return -1;
	}
	memcpy(out, v, strlen(v) + 1);
	return 1;
}

/* userAccountControl: remember ACCOUNTDISABLE (0x2). */
static int
uac_value(struct reader *r, long line, const char *val)
{
	char		*end;
	long long	 n;

	errno = 0;
	n = strtoll(val, &end, 10);
	if (errno != 0 || end == val || *end != '\0') {
		say_bad(r, line, "userAccountControl '%.40s' is not a number",
		    val);
		return -1;
	}
	if (n & 0x2)
		r->disabled = true;
	return 0;
}

/* One unfolded, non-blank, non-comment line of an entry. */
static int
parse_line(struct reader *r, long line)
{
	char		 name[ATTR_NAME_MAX + 1], val[VALUE_MAX + 1];
	char		 key[RG_PATH_MAX + 1];
	const char	*colon, *opt;
	size_t		 n, base;
	bool		 want, uac;
	int		 rc;

	for (colon = r->buf; is_attr_char(*colon); colon++)
		;
	n = (size_t)(colon - r->buf);
	if (*colon != ':' || n == 0 || n > ATTR_NAME_MAX) {
		say_bad(r, line, "not an LDIF line (attribute: value)%s",
		    r->nul ? "; holds a NUL byte" : "");
		return -1;
	}
	memcpy(name, r->buf, n);
	name[n] = '\0';
	opt = strchr(name, ';');	/* "mail;lang-de": the base name */
	base = opt != NULL ? (size_t)(opt - name) : n;
	if (attr_is(name, base, "dn")) {
		if (r->has_dn) {
			say_bad(r, line, "%s", "a second dn: in one entry "
			    "(missing blank line?)");
			return -1;
		}
		r->has_dn = true;
		return 0;
	}
	want = attr_wanted(r, name, base);
	uac = attr_is(name, base, "userAccountControl");
	if (!want && !uac && !attr_is(name, base, "changetype"))
		return 0;	/* dn-less "version:", "search:", others */
	if (r->nul || r->badenc || r->overflow) {
		say_bad(r, line, "'%s' value: NUL byte, bad UTF-16 or line "
		    "too long", name);
		return -1;
	}
	if ((rc = value_decode(r, line, colon + 1, val, sizeof(val),
	    name)) != 1)
		return rc;
	if (!r->has_dn) {
		say_bad(r, line, "'%s' outside an entry (no dn: before it)",
		    name);
		return -1;
	}
	if (uac)
		return uac_value(r, line, val);
	if (!want) {
		if (strcasecmp(val, "add") == 0)
			return 0;	/* ldifde writes "changetype: add" */
		say_bad(r, line, "changetype: %.40s: a change record, not "
		    "an export", val);
		return -1;
	}
	if ((rc = value_key(r, line, val, key)) != 1)
		return rc;
	return rg_table_keys_add(&r->pend, key) == -1 ? -2 : 0;
}

static int
attrs_load(struct reader *r, const char *attrs)
{
	const char	*p = attrs, *e;
	size_t		 n;

	for (r->nattrs = 0; r->nattrs < RG_LDIF_ATTRS_MAX; p = e + 1) {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n > ATTR_NAME_MAX)
			return -1;
		memcpy(r->attrs[r->nattrs], p, n);
		r->attrs[r->nattrs++][n] = '\0';
		if (e == NULL)
			return 0;
	}
	return -1;
}

/* A byte order mark: FF FE is UTF-16LE (ldifde -u); EF BB BF is UTF-8. */
static void
read_bom(struct reader *r)
{
	int	c1, c2, c3;

	if ((c1 = getc(r->in)) == EOF)
		return;
	if ((c2 = getc(r->in)) != EOF) {
		if (c1 == 0xff && c2 == 0xfe) {
			r->utf16 = true;
			return;
		}
		if (c1 == 0xef && c2 == 0xbb) {
			if ((c3 = getc(r->in)) == 0xbf)
				return;
			/* not a BOM after all: replay "EF BB" + c3 */
			r->u8[0] = 0xbb;
			r->u8n = 1;
			if (c3 != EOF)
				r->u8[r->u8n++] = (unsigned char)c3;
			r->back = c1;
			return;
		}
		r->u8[0] = (unsigned char)c2;
		r->u8n = 1;
	}
	r->back = c1;
}

long
rg_ldif_read(FILE *in, const char *name, const struct rg_ldif_opts *o,
    struct rg_table_keys *keys, rg_table_bad_fn *bad, void *arg)
{
	struct reader	 r = { .in = in, .name = name, .back = -1, .o = o,
			    .bad = bad, .arg = arg };
	char		 why[256];
	long		 line = 0;
	int		 rc, saved = 0;

	if (rg_ldif_check_attrs(o->attrs != NULL ? o->attrs :
	    RG_LDIF_DEFAULT_ATTRS, why, sizeof(why)) == -1 ||
	    attrs_load(&r, o->attrs != NULL ? o->attrs :
	    RG_LDIF_DEFAULT_ATTRS) == -1) {
		errno = EINVAL;
		return -1;
	}
	read_bom(&r);
	while ((rc = read_line(&r, &line)) == 1) {
		if (r.len == 0 && !r.overflow) {
			if (entry_end(&r, keys) == -1) {
				rc = -1;
				break;
			}
			continue;
		}
		if (r.buf[0] == '#')
			continue;	/* a comment, folded or not */
		if (parse_line(&r, line) == -2) {
			rc = -1;
			break;
		}
	}
	saved = errno;
	if (rc == 0 && entry_end(&r, keys) == -1)
		rc = -1;
	if (rc == 0 && r.oddbyte)
		say_bad(&r, r.lineno > 0 ? r.lineno : 1, "%s", "UTF-16 input ends in the "
		    "middle of a character");
	free(r.buf);
	rg_table_keys_free(&r.pend);
	if (rc == -1) {
		errno = saved != 0 ? saved : ENOMEM;
		return -1;
	}
	return r.nbad;
}
