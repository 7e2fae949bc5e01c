/* SPDX-License-Identifier: MIT */
/*
 * The one place SMTP reply texts are built (see reply.h for the rules).
 *
 * Works a byte at a time into the caller's struct, so the output can never
 * outgrow its buffer; it must not allocate, log or echo anything it has
 * not sanitised. No shared state: reentrant and lock-free.
 */
#include "reply.h"
#include "addr.h"

#include <stdio.h>
#include <string.h>

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "4xx" or "5xx": libmilter refuses anything else. */
static int
rcode_ok(const char *rc)
{
	return rc != NULL && (rc[0] == '4' || rc[0] == '5') &&
	    is_digit(rc[1]) && is_digit(rc[2]) && rc[3] == '\0';
}

/* 1 to 3 digits starting at *pp, then advance. */
static int
digits(const char **pp)
{
	const char *p = *pp;
	int	 n = 0;

	while (n < 3 && is_digit(p[n]))
		n++;
	*pp = p + n;
	return n > 0 && !is_digit(p[n]);
}

/*
 * "C.S.D" (RFC 3463) with C the reply's class: Postfix treats a mismatch
 * as a milter failure and applies milter_default_action instead.
 */
static int
xcode_ok(const char *x, char cls)
{
	if (x == NULL || x[0] != cls || x[1] != '.')
		return 0;
	x += 2;
	if (!digits(&x) || *x++ != '.' || !digits(&x))
		return 0;
	return *x == '\0';
}

static void
set_safe(struct rg_reply *r)
{
	memcpy(r->rcode, "451", sizeof("451"));
	memcpy(r->xcode, "4.3.0", sizeof("4.3.0"));
	memcpy(r->text, "Temporary failure", sizeof("Temporary failure"));
}

int
rg_reply_build(struct rg_reply *r, const char *rcode, const char *xcode,
    const char *text)
{
	return rg_reply_build_form(r, RG_REPLY_MILTER, rcode, xcode, text);
}

int
rg_reply_build_form(struct rg_reply *r, enum rg_reply_form form,
    const char *rcode, const char *xcode, const char *text)
{
	const int	 dbl = form == RG_REPLY_MILTER;
	const unsigned char *p;
	size_t	 budget, len = 0, mark = 0, unit, utf8, step;

	if (r == NULL)
		return -1;
	if (!rcode_ok(rcode) || !xcode_ok(xcode, rcode[0])) {
		set_safe(r);
		return -1;
	}
	memcpy(r->rcode, rcode, 4);
	memcpy(r->xcode, xcode, strlen(xcode) + 1);	/* <= 9 bytes */

	/* "rcode xcode text" within the line limit; always < sizeof text */
	budget = RG_REPLY_LINE_MAX - strlen(r->rcode) - strlen(r->xcode) - 2;
	for (p = (const unsigned char *)(text != NULL ? text : ""); *p != '\0';
	    p += step) {
		step = 1;
		if (*p < 0x20 || *p == 0x7f)
			continue;	/* CR, LF, TAB, DEL, ...: dropped */
		/*
		 * Valid UTF-8 stays as it is: an address is echoed as the
		 * client sent it (SMTPUTF8). Any other byte >= 0x80 is '?'.
		 */
		utf8 = *p >= 0x80 ? rg_utf8_seq(p) : 0;
		unit = *p == '%' && dbl ? 2 : utf8 ? utf8 : 1;
		if (len + unit > budget) {
			/* cut at the last whole unit that leaves room */
			memcpy(r->text + mark, "...", 3);
			len = mark + 3;
			break;
		}
		if (*p == '%' && dbl) {
			/* a lone '%' makes Sendmail answer 550 5.7.1 */
			r->text[len++] = '%';
			r->text[len++] = '%';
		} else if (utf8) {
			memcpy(r->text + len, p, utf8);
			len += utf8;
			step = utf8;
		} else
			r->text[len++] = *p >= 0x80 ? '?' : (char)*p;
		if (len + 3 <= budget)
			mark = len;
	}
	r->text[len] = '\0';
	return 0;
}

void
rg_reply_line(const struct rg_reply *r, char *buf, size_t buflen)
{
	int	 n;

	if (buf == NULL || buflen == 0)
		return;
	if (r->text[0] != '\0')
		n = snprintf(buf, buflen, "%s %s %s", r->rcode, r->xcode,
		    r->text);
	else
		n = snprintf(buf, buflen, "%s %s", r->rcode, r->xcode);
	/* a cut reply line would mislead: give nothing instead */
	if (n < 0 || (size_t)n >= buflen)
		buf[0] = '\0';
}
