/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the address parser, the subaddress stripper and
 * the reply builder: every byte of these comes from a stranger.
 *
 * Invariants checked with abort(): a parsed address is within the RFC 5321
 * limits, is local[@domain], holds no control characters or invalid
 * bytes, and parses again to itself; a stripped address parses and fits;
 * a reply built from the input has no CR, LF, control byte or invalid
 * UTF-8, no lone '%', and its line fits in 980 bytes. Single-threaded by libFuzzer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "reply.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_text(const char *s, size_t max)
{
	size_t	 n = strlen(s);

	if (n > max)
		abort();
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

static void
check_addr(const struct rg_addr *a)
{
	struct rg_addr b;
	char	 buf[RG_PATH_MAX + 3], strip[RG_PATH_MAX + 1];
	size_t	 ll = strlen(a->local), dl = strlen(a->domain);

	check_text(a->local, RG_LOCAL_MAX);
	check_text(a->domain, RG_DOMAIN_MAX);
	check_text(a->address, RG_PATH_MAX - 2);
	if (ll == 0 || strncmp(a->address, a->local, ll) != 0)
		abort();
	if (dl > 0 ? a->address[ll] != '@' ||
	    strcmp(a->address + ll + 1, a->domain) != 0 :
	    a->address[ll] != '\0')
		abort();
	if (a->quoted != (a->local[0] == '"'))
		abort();

	/* normal form is a fixed point, bare and in brackets */
	if (rg_addr_parse(a->address, &b) != RG_ADDR_OK ||
	    strcmp(a->address, b.address) != 0)
		abort();
	snprintf(buf, sizeof(buf), "<%s>", a->address);
	if (rg_addr_parse(buf, &b) != RG_ADDR_OK ||
	    strcmp(a->address, b.address) != 0 || a->quoted != b.quoted)
		abort();

	if (rg_addr_strip_subaddress(a, "+-", strip, sizeof(strip))) {
		if (rg_addr_parse(strip, &b) != RG_ADDR_OK ||
		    strcmp(b.domain, a->domain) != 0 ||
		    strlen(b.local) >= ll || a->local[strlen(b.local)] ==
		    '\0' || strchr("+-", a->local[strlen(b.local)]) == NULL)
			abort();
	}
}

static void
check_reply(const char *text)
{
	struct rg_reply r;
	char	 line[RG_REPLY_LINE_MAX + 1];
	const char *p;

	if (rg_reply_build(&r, "550", "5.1.1", text) != 0)
		abort();
	rg_reply_line(&r, line, sizeof(line));
	if (strncmp(line, "550 5.1.1", 9) != 0)
		abort();
	check_text(line, RG_REPLY_LINE_MAX);
	for (p = line; *p != '\0'; p++) {
		/* non-ASCII only as whole, valid UTF-8 (kept as sent) */
		if ((unsigned char)*p >= 0x80) {
			size_t n = rg_utf8_seq((const unsigned char *)p);

			if (n == 0)
				abort();
			p += n - 1;
			continue;
		}
		if (*p == '%' && *++p != '%')
			abort();
	}
	if (strlen(r.text) + 10 > RG_REPLY_LINE_MAX)
		abort();

	/* the input as a code pair must never get past validation */
	if (rg_reply_build(&r, text, text, text) == 0)
		abort();
	if (strcmp(r.rcode, "451") != 0 || strcmp(r.xcode, "4.3.0") != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rg_addr a;
	char	*s;

	/* the MTA hands a C string: the first NUL ends it */
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	switch (rg_addr_parse(s, &a)) {
	case RG_ADDR_OK:
		check_addr(&a);
		check_reply(a.address);
		break;
	case RG_ADDR_EMPTY:
	case RG_ADDR_SYNTAX:
	case RG_ADDR_TOOLONG:
		break;
	default:
		abort();
	}
	check_reply(s);
	free(s);
	return 0;
}
