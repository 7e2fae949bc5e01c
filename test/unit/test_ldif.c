/* SPDX-License-Identifier: MIT */
/*
 * lib/backend/ldif.c: LDIF as ldapsearch and ldifde write it (folded
 * lines, base64, comments, version:, CRLF, UTF-16LE with BOM), mail and
 * proxyAddresses values, disabled AD accounts, errors with the line
 * number in the file, and hostile input (NUL bytes, huge lines).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ldif.h"

struct seen {
	long	nbad, nwarn;
	long	first_line;
	char	first_why[512];
};

static void
on_bad(void *arg, const char *name, long line, const char *why)
{
	struct seen	*s = arg;

	if (s->nbad++ == 0) {
		s->first_line = line;
		snprintf(s->first_why, sizeof(s->first_why), "%s", why);
	}
}

static void
on_warn(void *arg, const char *name, long line, const char *why)
{
	struct seen	*s = arg;

	s->nwarn++;
	s->first_line = line;
}

/* Read len bytes of LDIF; keys joined by ',' into out. */
static long
run(const char *in, size_t len, const char *attrs, bool disabled,
    struct seen *s, char *out, size_t outlen)
{
	struct rg_ldif_opts	 o = { .attrs = attrs,
				    .include_disabled = disabled,
				    .warn = on_warn, .arg = s };
	struct rg_table_keys	 keys = { 0 };
	FILE			*f;
	long			 n;
	size_t			 i;

	memset(s, 0, sizeof(*s));
	f = fmemopen((void *)in, len, "r");
	assert_non_null(f);
	n = rg_ldif_read(f, "t.ldif", &o, &keys, on_bad, s);
	fclose(f);
	out[0] = '\0';
	for (i = 0; i < keys.n; i++) {
		if (i > 0)
			strncat(out, ",", outlen - strlen(out) - 1);
		strncat(out, keys.v[i], outlen - strlen(out) - 1);
	}
	rg_table_keys_free(&keys);
	return n;
}

#define E(s)	s, sizeof(s) - 1

static const struct {
	const char	*in;
	size_t		 len;
	const char	*attrs;
	bool		 disabled;
	const char	*want;		/* keys, ',' joined */
	long		 nbad;
	long		 line;		/* of the first error, if nbad */
	const char	*why;		/* in the first error */
} cases[] = {
	/* plain, comments, version:, multiple records */
	{ E("version: 1\n\n# c\ndn: cn=a\nmail: A@Example.com\n\n"
	    "dn: cn=b\nmail: b@example.com\n"), NULL, false,
	  "a@example.com,b@example.com", 0, 0, NULL },
	/* folded value, folded comment, folded dn */
	{ E("# long\n  comment\ndn: cn=a,\n dc=x\nmail: al\n ice@exa\n"
	    " mple.com\n"), NULL, false, "alice@example.com", 0, 0, NULL },
	/* base64, UTF-8 local part */
	{ E("dn: cn=a\nmail:: YWxpY2VAZXhhbXBsZS5jb20=\n"
	    "mail:: YsO2YkBleGFtcGxlLmNvbQ==\n"), NULL, false,
	  "alice@example.com,b\xc3\xb6" "b@example.com", 0, 0, NULL },
	/* proxyAddresses: smtp:, SMTP:, X400:, SIP: */
	{ E("dn: cn=a\nproxyAddresses: SMTP:a@example.com\n"
	    "proxyaddresses: smtp:a2@example.com\n"
	    "proxyAddresses: X400:c=US;a= ;p=Org;o=Ex;s=a;\n"
	    "proxyAddresses: SIP:a@example.com\n"), NULL, false,
	  "a@example.com,a2@example.com", 0, 0, NULL },
	/* disabled accounts out ... */
	{ E("dn: cn=a\nuserAccountControl: 514\nmail: a@example.com\n\n"
	    "dn: cn=b\nuserAccountControl: 512\nmail: b@example.com\n"),
	  NULL, false, "b@example.com", 0, 0, NULL },
	/* ... and in when asked */
	{ E("dn: cn=a\nuserAccountControl: 514\nmail: a@example.com\n\n"
	    "dn: cn=b\nuserAccountControl: 512\nmail: b@example.com\n"),
	  NULL, true, "a@example.com,b@example.com", 0, 0, NULL },
	/* CRLF, ldifde's changetype: add */
	{ E("dn: cn=a\r\nchangetype: add\r\nmail: a@exa\r\n mple.com\r\n"
	    "\r\ndn: cn=b\r\nmail: b@example.com\r\n"), NULL, false,
	  "a@example.com,b@example.com", 0, 0, NULL },
	/* UTF-16LE with BOM, CRLF: "dn: x\r\nmail: a@b.c\r\n" */
	{ E("\xff\xfe" "d\0n\0:\0 \0x\0\r\0\n\0m\0a\0i\0l\0:\0 \0a\0@\0b\0"
	    ".\0c\0\r\0\n\0"), NULL, false, "a@b.c", 0, 0, NULL },
	/* UTF-16LE, a non-ASCII local part (U+00F6) */
	{ E("\xff\xfe" "d\0n\0:\0 \0x\0\n\0m\0a\0i\0l\0:\0 \0\xf6\0@\0b\0"
	    ".\0c\0\n\0"), NULL, false, "\xc3\xb6@b.c", 0, 0, NULL },
	/* a UTF-8 BOM */
	{ E("\xef\xbb\xbf" "dn: x\nmail: a@b.c\n"), NULL, false, "a@b.c",
	  0, 0, NULL },
	/* configured attributes, case-insensitive; options ignored */
	{ E("dn: x\nmail: a@b.c\nOtherMailbox: o@b.c\n"
	    "othermailbox;x-1: p@b.c\n"), "otherMailbox", false,
	  "o@b.c,p@b.c", 0, 0, NULL },
	/* ldapsearch's trailer and an entry with no wanted attribute */
	{ E("dn: x\ncn: x\n\n# search result\nsearch: 2\nresult: 0 "
	    "Success\n"), NULL, false, "", 0, 0, NULL },
	/* URL values: warned, skipped, never fetched */
	{ E("dn: x\nmail:< file:///etc/passwd\nmail: a@b.c\n"), NULL, false,
	  "a@b.c", 0, 0, NULL },
	/* errors, with the line number in the file */
	{ E("dn: x\nmail: a@b.c\n\ndn: y\nmail: not an address\n"), NULL,
	  false, "", 1, 5, "not an address" },
	{ E("dn: x\n\nmail: a@b.c\n"), NULL, false, "", 1, 3,
	  "outside an entry" },
	{ E("dn: x\nthis line has no colon\n"), NULL, false, "", 1, 2,
	  "not an LDIF line" },
	{ E("# c\n\ndn: x\nmail:: !!!!\n"), NULL, false, "", 1, 4,
	  "not base64" },
	{ E("dn: x\nmail: a@\n b.c\nmail: @b.c\n"), NULL, false, "", 1, 4,
	  "catch-all" },
	{ E("dn: x\ndn: y\n"), NULL, false, "", 1, 2, "second dn" },
	{ E("dn: x\nchangetype: delete\n"), NULL, false, "", 1, 2,
	  "change record" },
	{ E("dn: x\nuserAccountControl: lots\n"), NULL, false, "", 1, 2,
	  "not a number" },
	{ E("dn: x\r\nmail: a@b.c\r\nmail: x\r\n"), NULL, false, "", 1, 3,
	  "not an address" },
	/* a space would end the address in rg_addr_parse (fuzz find) */
	{ E("dn: x\nmail: ~3 Ys@b.c\n"), NULL, false, "", 1, 2, "space" },
	{ E("dn: x\nmail: a@b.c \n"), NULL, false, "", 1, 2, "space" },
	{ E("dn: x\nmail:: YUBiLmMJ\n"), NULL, false, "", 1, 2, "control" },
	/* hostile: NUL bytes, odd UTF-16 */
	{ E("dn: x\nmail: a\0@b.c\n"), NULL, false, "", 1, 2, "NUL" },
	{ E("dn: x\nmail:: YQBiQGIuYw==\n"), NULL, false, "", 1, 2, "NUL" },
	{ E("dn: x\nm\0il: a@b.c\n"), NULL, false, "", 1, 2, "NUL" },
	{ E("\xff\xfe" "d\0n\0:\0 \0x\0\n\0m\0a\0i\0l\0:\0 \0\x00\xd8@\0"
	    "\n\0"), NULL, false, "", 1, 2, "UTF-16" },
	{ E("\xff\xfe" "d\0n\0:\0 \0x\0\n\0m"), NULL, false, "", 1, 1,
	  "UTF-16" },
};

static void
test_cases(void **state)
{
	struct seen	s;
	char		out[1024];
	size_t		i;
	long		n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = run(cases[i].in, cases[i].len, cases[i].attrs,
		    cases[i].disabled, &s, out, sizeof(out));
		/* on errors keys is incomplete by contract: not compared */
		if (n != cases[i].nbad ||
		    (n == 0 && strcmp(out, cases[i].want) != 0) ||
		    (n > 0 && (s.first_line != cases[i].line ||
		    strstr(s.first_why, cases[i].why) == NULL)))
			fail_msg("case %zu: n %ld keys '%s' line %ld why '%s'",
			    i, n, out, s.first_line, s.first_why);
	}
}

static void
test_url_warns(void **state)
{
	static const char	in[] = "dn: x\nmail:< http://x/\n";
	struct seen		s;
	char			out[64];

	assert_int_equal(run(in, sizeof(in) - 1, NULL, false, &s, out,
	    sizeof(out)), 0);
	assert_int_equal(s.nwarn, 1);
	assert_int_equal(s.first_line, 2);
}

/* A huge line: an unwanted one is skipped, a wanted one is an error. */
static void
test_huge_lines(void **state)
{
	size_t		 big = RG_LDIF_LINE_MAX + 4096, n;
	char		*in = malloc(big + 128), out[256];
	struct seen	 s;

	assert_non_null(in);
	n = (size_t)sprintf(in, "dn: x\njpegPhoto:: ");
	memset(in + n, 'A', big);
	n += big;
	n += (size_t)sprintf(in + n, "\nmail: a@b.c\n");
	assert_int_equal(run(in, n, NULL, false, &s, out, sizeof(out)), 0);
	assert_string_equal(out, "a@b.c");

	n = (size_t)sprintf(in, "dn: x\nmail: ");
	memset(in + n, 'a', big);
	n += big;
	n += (size_t)sprintf(in + n, "\n\n");
	assert_int_equal(run(in, n, NULL, false, &s, out, sizeof(out)), 1);
	assert_int_equal(s.first_line, 2);
	/* folded into many physical lines: still bounded */
	n = (size_t)sprintf(in, "dn: x\nmail: a");
	while (n < big) {
		memcpy(in + n, "\n b", 3);
		n += 3;
	}
	n += (size_t)sprintf(in + n, "\nmail: c@d.e\n");
	assert_int_equal(run(in, n, NULL, false, &s, out, sizeof(out)), 1);
	assert_int_equal(s.first_line, 2);
	free(in);
}

static void
test_check_attrs(void **state)
{
	char	why[256];

	assert_int_equal(rg_ldif_check_attrs("mail", why, sizeof(why)), 0);
	assert_int_equal(rg_ldif_check_attrs("mail,proxyAddresses", why,
	    sizeof(why)), 0);
	assert_int_equal(rg_ldif_check_attrs("", why, sizeof(why)), -1);
	assert_int_equal(rg_ldif_check_attrs("mail,", why, sizeof(why)), -1);
	assert_int_equal(rg_ldif_check_attrs("ma il", why, sizeof(why)), -1);
	assert_int_equal(rg_ldif_check_attrs("mail;x", why, sizeof(why)),
	    -1);
	assert_int_equal(rg_ldif_check_attrs("a,b,c,d,e,f,g,h,i,j,k,l,m,n,"
	    "o,p,q", why, sizeof(why)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_url_warns),
		cmocka_unit_test(test_huge_lines),
		cmocka_unit_test(test_check_attrs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
