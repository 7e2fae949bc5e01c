/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/addr.c: normal forms, normalisation, hostile input
 * and the RFC 5321 length limits, each exactly at and one past the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"

struct parse_case {
	const char	*raw;
	enum rg_addr_status st;
	const char	*address;	/* expected on RG_ADDR_OK */
	const char	*local;
	const char	*domain;
	bool		 quoted;
};

#define OK(raw, a, l, d)	{ raw, RG_ADDR_OK, a, l, d, false }
#define OKQ(raw, a, l, d)	{ raw, RG_ADDR_OK, a, l, d, true }
#define BAD(raw, st)		{ raw, st, NULL, NULL, NULL, false }

static const struct parse_case parse_cases[] = {
	/* valid forms */
	OK("<user@example.com>", "user@example.com", "user", "example.com"),
	OK("user@example.com", "user@example.com", "user", "example.com"),
	OK("  <user@example.com>  ", "user@example.com", "user",
	    "example.com"),
	OK("<a@b> NOTIFY=NEVER", "a@b", "a", "b"),
	OK("<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b", "a@b", "a", "b"),
	OK("<a@b> SMTPUTF8", "a@b", "a", "b"),
	OK("a@b NOTIFY=NEVER", "a@b", "a", "b"),
	OK("<first.last@sub.example.org>", "first.last@sub.example.org",
	    "first.last", "sub.example.org"),
	OK("<x!#$%&'*+-/=?^_`{|}~@b>", "x!#$%&'*+-/=?^_`{|}~@b",
	    "x!#$%&'*+-/=?^_`{|}~", "b"),
	OK("<a@my_host.example>", "a@my_host.example", "a",
	    "my_host.example"),
	OK("<a@[192.0.2.1]>", "a@[192.0.2.1]", "a", "[192.0.2.1]"),
	OK("<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]", "a",
	    "[IPv6:2001:db8::1]"),
	/* bare local part, RFC 5321 4.5.1 */
	OK("<Postmaster>", "postmaster", "postmaster", ""),
	OK("postmaster", "postmaster", "postmaster", ""),
	/* case folding, trailing dot */
	OK("<John.Doe@EXAMPLE.Com>", "john.doe@example.com", "john.doe",
	    "example.com"),
	OK("<a@example.com.>", "a@example.com", "a", "example.com"),
	OK("<A@B.>", "a@b", "a", "b"),
	/* source routes are dropped */
	OK("<@a.example,@b.example:user@d.example>", "user@d.example",
	    "user", "d.example"),
	OK("<@a.example:User@D>", "user@d", "user", "d"),
	/* quoted local parts */
	OK("<\"john.doe\"@example.com>", "john.doe@example.com", "john.doe",
	    "example.com"),
	OK("<\"J\\ohn\"@b>", "john@b", "john", "b"),
	OKQ("<\"a b\"@example.com>", "\"a b\"@example.com", "\"a b\"",
	    "example.com"),
	OKQ("<\"A\\\"B\"@x>", "\"a\\\"b\"@x", "\"a\\\"b\"", "x"),
	OKQ("<\"a\\\\b\"@x>", "\"a\\\\b\"@x", "\"a\\\\b\"", "x"),
	OKQ("<\"a..b\"@x>", "\"a..b\"@x", "\"a..b\"", "x"),
	OKQ("<\".a\"@x>", "\".a\"@x", "\".a\"", "x"),
	OKQ("<\"\"@x>", "\"\"@x", "\"\"", "x"),
	OKQ("<\"a>b\"@x>", "\"a>b\"@x", "\"a>b\"", "x"),
	OKQ("<\"a@b\"@x>", "\"a@b\"@x", "\"a@b\"", "x"),
	/* UTF-8 (SMTPUTF8) */
	OK("<J\xc3\xbcrgen@B\xc3\xbc\x63her.example>",
	    "j\xc3\xbcrgen@b\xc3\xbc\x63her.example", "j\xc3\xbcrgen",
	    "b\xc3\xbc\x63her.example"),
	OK("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.cn>",
	    "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.cn",
	    "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.cn"),
	OK("<\xf0\x9f\x98\x80@x>", "\xf0\x9f\x98\x80@x", "\xf0\x9f\x98\x80",
	    "x"),
	OK("<\xc3\x84@x>", "\xc3\x84@x", "\xc3\x84", "x"),	/* not folded */
	/* syntactically valid, hostile only to careless backends */
	OK("<%n%s@x>", "%n%s@x", "%n%s", "x"),
	OK("<*@x>", "*@x", "*", "x"),
	OK("<x*@x>", "x*@x", "x*", "x"),
	/* empty */
	BAD("<>", RG_ADDR_EMPTY),
	BAD("", RG_ADDR_EMPTY),
	BAD("   ", RG_ADDR_EMPTY),
	BAD("<> NOTIFY=NEVER", RG_ADDR_EMPTY),
	/* hostile and malformed */
	BAD("a)(mail=*@x", RG_ADDR_SYNTAX),
	BAD("<a)(mail=*@x>", RG_ADDR_SYNTAX),
	BAD("'; DROP TABLE x; --@x", RG_ADDR_SYNTAX),
	BAD("<a@b", RG_ADDR_SYNTAX),
	BAD("a@b>", RG_ADDR_SYNTAX),
	BAD("<<a@b>>", RG_ADDR_SYNTAX),
	BAD("<a@b>>", RG_ADDR_SYNTAX),
	BAD("a@@b", RG_ADDR_SYNTAX),
	BAD("<a@@b>", RG_ADDR_SYNTAX),
	BAD("a@b c", RG_ADDR_SYNTAX),
	BAD("<a@b c>", RG_ADDR_SYNTAX),
	BAD("<a b@c>", RG_ADDR_SYNTAX),
	BAD("<a@b>x", RG_ADDR_SYNTAX),
	BAD("<a@b> =x", RG_ADDR_SYNTAX),
	BAD("<a@b> X=", RG_ADDR_SYNTAX),
	BAD("<a@b>\r\n", RG_ADDR_SYNTAX),
	BAD("<a\r\n@b>", RG_ADDR_SYNTAX),
	BAD("<a@b\r\nRCPT TO:<c@d>>", RG_ADDR_SYNTAX),
	BAD("<a\n@b>", RG_ADDR_SYNTAX),
	BAD("<a\t@b>", RG_ADDR_SYNTAX),
	BAD("\t<a@b>", RG_ADDR_SYNTAX),
	BAD("<a@b> NOTIFY=\x01", RG_ADDR_SYNTAX),
	BAD("<\"a\rb\"@x>", RG_ADDR_SYNTAX),
	BAD("<\"a\\\nb\"@x>", RG_ADDR_SYNTAX),
	BAD("<\"ab@x>", RG_ADDR_SYNTAX),
	BAD("<\"ab\\", RG_ADDR_SYNTAX),
	BAD("<\"a\"b@x>", RG_ADDR_SYNTAX),
	BAD("<.a@b>", RG_ADDR_SYNTAX),
	BAD("<a.@b>", RG_ADDR_SYNTAX),
	BAD("<a..b@c>", RG_ADDR_SYNTAX),
	BAD("<a@.b>", RG_ADDR_SYNTAX),
	BAD("<a@b..c>", RG_ADDR_SYNTAX),
	BAD("<a@b..>", RG_ADDR_SYNTAX),
	BAD("<a@.>", RG_ADDR_SYNTAX),
	BAD("<a@>", RG_ADDR_SYNTAX),
	BAD("<@b>", RG_ADDR_SYNTAX),
	BAD("@b", RG_ADDR_SYNTAX),
	BAD("<@a.example:>", RG_ADDR_SYNTAX),
	BAD("<@a.example,b.example:u@d>", RG_ADDR_SYNTAX),
	BAD("<@a..example:u@d>", RG_ADDR_SYNTAX),
	BAD("<a@b!c>", RG_ADDR_SYNTAX),
	BAD("<a@[192.0.2.1>", RG_ADDR_SYNTAX),
	BAD("<a@[192.0.2.256]>", RG_ADDR_SYNTAX),
	BAD("<a@[IPv6:zz::1]>", RG_ADDR_SYNTAX),
	BAD("<a@[x]>", RG_ADDR_SYNTAX),
	BAD("<a@[192.0.2.1].x>", RG_ADDR_SYNTAX),
	BAD("<a(comment)@b>", RG_ADDR_SYNTAX),
	BAD("<a;b@c>", RG_ADDR_SYNTAX),
	BAD("<a,b@c>", RG_ADDR_SYNTAX),
	/* bad UTF-8: lone continuation, overlong, surrogate, C1, truncated */
	BAD("<\x80@x>", RG_ADDR_SYNTAX),
	BAD("<\xc0\xaf@x>", RG_ADDR_SYNTAX),
	BAD("<\xed\xa0\x80@x>", RG_ADDR_SYNTAX),
	BAD("<\xc2\x85@x>", RG_ADDR_SYNTAX),
	BAD("<\xe4\xbe@x>", RG_ADDR_SYNTAX),
	BAD("<\xf4\x90\x80\x80@x>", RG_ADDR_SYNTAX),
	BAD("<\xff@x>", RG_ADDR_SYNTAX),
	BAD("<a@\xe4\xbe>", RG_ADDR_SYNTAX),
	BAD("<\"\xff\"@x>", RG_ADDR_SYNTAX),
	BAD("<a@b\xc3>", RG_ADDR_SYNTAX),
};

static void
test_parse_table(void **state)
{
	struct rg_addr a;
	size_t	 i;

	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		enum rg_addr_status st = rg_addr_parse(c->raw, &a);

		if (st != c->st)
			print_error("case %zu \"%s\": status %s, want %s\n", i,
			    c->raw, rg_addr_status_str(st),
			    rg_addr_status_str(c->st));
		assert_int_equal(st, c->st);
		if (st != RG_ADDR_OK)
			continue;
		assert_string_equal(a.address, c->address);
		assert_string_equal(a.local, c->local);
		assert_string_equal(a.domain, c->domain);
		assert_int_equal(a.quoted, c->quoted);
	}
}

/* Parsing the normalised form again gives the same address. */
static void
test_parse_idempotent(void **state)
{
	struct rg_addr a, b;
	char	 buf[RG_PATH_MAX + 3];
	size_t	 i;

	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		if (parse_cases[i].st != RG_ADDR_OK)
			continue;
		assert_int_equal(rg_addr_parse(parse_cases[i].raw, &a),
		    RG_ADDR_OK);
		assert_int_equal(rg_addr_parse(a.address, &b), RG_ADDR_OK);
		assert_string_equal(a.address, b.address);
		snprintf(buf, sizeof(buf), "<%s>", a.address);
		assert_int_equal(rg_addr_parse(buf, &b), RG_ADDR_OK);
		assert_string_equal(a.address, b.address);
		assert_int_equal(a.quoted, b.quoted);
	}
}

static char *
repeat(char c, size_t n)
{
	char	*s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* A domain of exactly n octets: labels of 63 "b" joined by dots. */
static char *
make_domain(size_t n)
{
	char	*s = repeat('b', n);
	size_t	 i;

	for (i = 63; i < n - 1; i += 64)
		s[i] = '.';
	return s;
}

struct len_case {
	size_t	 local;		/* octets of local part */
	size_t	 domain;	/* octets of domain, 0: none */
	bool	 quoted;	/* local part "a a...", quotes counted */
	enum rg_addr_status st;
};

static const struct len_case len_cases[] = {
	{ 64, 1, false, RG_ADDR_OK },
	{ 65, 1, false, RG_ADDR_TOOLONG },
	{ 64, 0, false, RG_ADDR_OK },
	{ 65, 0, false, RG_ADDR_TOOLONG },
	{ 64, 1, true, RG_ADDR_OK },
	{ 65, 1, true, RG_ADDR_TOOLONG },
	{ 300, 1, false, RG_ADDR_TOOLONG },
	/* path: "<" + address + ">" <= 256, so address <= 254 */
	{ 64, 189, false, RG_ADDR_OK },		/* 64 + 1 + 189 = 254 */
	{ 64, 190, false, RG_ADDR_TOOLONG },	/* 255 */
	{ 1, 252, false, RG_ADDR_OK },		/* 254 */
	{ 1, 253, false, RG_ADDR_TOOLONG },	/* 255 */
	/* domain 255 is legal alone but can never fit a path */
	{ 1, 255, false, RG_ADDR_TOOLONG },
	{ 1, 256, false, RG_ADDR_TOOLONG },
	{ 1, 1000, false, RG_ADDR_TOOLONG },
};

static void
test_lengths(void **state)
{
	struct rg_addr a;
	char	 raw[2048];
	size_t	 i;

	for (i = 0; i < sizeof(len_cases) / sizeof(len_cases[0]); i++) {
		const struct len_case *c = &len_cases[i];
		char	*l, *d;
		enum rg_addr_status st;

		l = repeat('a', c->local);
		if (c->quoted) {
			/* "a a ... a": content local - 2 octets, one space */
			l[0] = l[c->local - 1] = '"';
			l[2] = ' ';
		}
		d = c->domain > 0 ? make_domain(c->domain) : NULL;
		assert_in_range(snprintf(raw, sizeof(raw), "<%s%s%s>", l,
		    d != NULL ? "@" : "", d != NULL ? d : ""), 1,
		    sizeof(raw) - 1);
		st = rg_addr_parse(raw, &a);
		free(l);	/* before any assert: cmocka longjmps out */
		free(d);
		if (st != c->st)
			print_error("len case %zu: %s\n", i,
			    rg_addr_status_str(st));
		assert_int_equal(st, c->st);
		if (st == RG_ADDR_OK) {
			assert_int_equal(strlen(a.local), c->local);
			assert_int_equal(strlen(a.domain), c->domain);
			assert_int_equal(a.quoted, c->quoted);
			assert_true(strlen(a.address) + 2 <= RG_PATH_MAX);
		}
	}
}

/* 100 kB of input: no overrun, a clear answer, in one pass. */
static void
test_huge_input(void **state)
{
	static const struct {
		char	 fill;
		const char *tail;
		enum rg_addr_status st;
	} cases[] = {
		{ 'a', "@b>", RG_ADDR_TOOLONG },
		{ 'a', "", RG_ADDR_SYNTAX },	/* no closing '>' */
		{ '.', "@b>", RG_ADDR_SYNTAX },
		{ '"', "@b>", RG_ADDR_SYNTAX },
		{ '\\', "@b>", RG_ADDR_SYNTAX },
		{ '@', ">", RG_ADDR_SYNTAX },
		{ '<', ">", RG_ADDR_SYNTAX },
		{ ' ', "", RG_ADDR_EMPTY },
	};
	const size_t n = 100 * 1024;
	struct rg_addr a;
	enum rg_addr_status st;
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char	*s = malloc(n + 16);

		assert_non_null(s);
		s[0] = cases[i].fill == ' ' ? ' ' : '<';
		memset(s + 1, cases[i].fill, n);
		strcpy(s + 1 + n, cases[i].tail);
		st = rg_addr_parse(s, &a);
		free(s);
		assert_int_equal(st, cases[i].st);
	}
	{
		/* huge domain, huge quoted local part, huge params */
		char	*s = malloc(n + 16);
		enum rg_addr_status st1, st2, st3;

		assert_non_null(s);
		memcpy(s, "<a@", 3);
		memset(s + 3, 'b', n);
		strcpy(s + 3 + n, ">");
		st1 = rg_addr_parse(s, &a);
		s[0] = '<';
		s[1] = '"';
		memset(s + 2, 'x', n);
		strcpy(s + 2 + n, "\"@b>");
		st2 = rg_addr_parse(s, &a);
		memcpy(s, "<a@b> X=", 8);
		memset(s + 8, 'v', n);
		s[8 + n] = '\0';
		st3 = rg_addr_parse(s, &a);
		free(s);
		assert_int_equal(st1, RG_ADDR_TOOLONG);
		assert_int_equal(st2, RG_ADDR_TOOLONG);
		assert_int_equal(st3, RG_ADDR_OK);
		assert_string_equal(a.address, "a@b");
	}
}

struct strip_case {
	const char	*raw;
	const char	*delims;
	bool		 stripped;
	const char	*out;
};

static const struct strip_case strip_cases[] = {
	{ "<user+tag@d>", "+", true, "user@d" },
	{ "<User+Tag@D>", "+", true, "user@d" },
	{ "<user+tag+more@d>", "+", true, "user@d" },
	{ "<user-tag@d>", "+", false, NULL },
	{ "<user-tag@d>", "+-", true, "user@d" },
	{ "<user+a-b@d>", "-+", true, "user@d" },
	{ "<user-a+b@d>", "+-", true, "user@d" },
	{ "<+tag@d>", "+", false, NULL },	/* delimiter at start */
	{ "<+a+b@d>", "+", true, "+a@d" },
	{ "<user+@d>", "+", true, "user@d" },
	{ "<user+tag@d>", "", false, NULL },	/* empty set: off */
	{ "<user+tag@d>", NULL, false, NULL },
	{ "<user@d>", "+", false, NULL },
	{ "<user+tag>", "+", true, "user" },	/* unqualified */
	{ "<a.+tag@d>", "+", false, NULL },	/* "a." is no dot-atom */
	{ "<\"a+b c\"@d>", "+", false, NULL },	/* quoted: left alone */
	{ "<\"a+b\"@d>", "+", true, "a@d" },	/* unquoted by parse */
	{ "<j\xc3\xbcr+x@d>", "+", true, "j\xc3\xbcr@d" },
	{ "<j\xc3\xbcr+x@d>", "\xbc", false, NULL },	/* not ASCII */
};

static void
test_strip(void **state)
{
	struct rg_addr a;
	char	 out[RG_PATH_MAX + 1];
	size_t	 i;

	for (i = 0; i < sizeof(strip_cases) / sizeof(strip_cases[0]); i++) {
		const struct strip_case *c = &strip_cases[i];
		bool	 r;

		assert_int_equal(rg_addr_parse(c->raw, &a), RG_ADDR_OK);
		memset(out, 'Z', sizeof(out));
		r = rg_addr_strip_subaddress(&a, c->delims, out, sizeof(out));
		if (r != c->stripped)
			print_error("strip case %zu %s\n", i, c->raw);
		assert_int_equal(r, c->stripped);
		if (r)
			assert_string_equal(out, c->out);
	}
}

/* A buffer one byte short is refused, never filled with a cut address. */
static void
test_strip_small_buffer(void **state)
{
	struct rg_addr a;
	char	 out[8];

	assert_int_equal(rg_addr_parse("<user+t@dom>", &a), RG_ADDR_OK);
	/* "user@dom" is 8 octets + NUL */
	memset(out, 'Z', sizeof(out));
	assert_false(rg_addr_strip_subaddress(&a, "+", out, 8));
	assert_memory_equal(out, "ZZZZZZZZ", 8);
	{
		char	 big[9];

		assert_true(rg_addr_strip_subaddress(&a, "+", big, 9));
		assert_string_equal(big, "user@dom");
	}
}

/*
 * The lenient domain finder: the domain of addresses rg_addr_parse
 * refuses, so that syntax is judged only where rcptgate decides.
 */
static void
test_domain_of(void **state)
{
	static const struct {
		const char	*raw;
		const char	*domain;	/* NULL: none found */
	} cases[] = {
		{ "<a..b@Example.COM>", "example.com" },
		{ "a..b@example.com NOTIFY=NEVER", "example.com" },
		{ "<.a@example.com.>", "example.com" },
		{ "<j\xc3rgen@example.com>", "example.com" },
		{ "<\"a@x.org>\"..b@example.com>", "example.com" },
		{ "<\"a\\\"@x.org>\"@example.com> X=y@z.org", "example.com" },
		{ "<@r1,@r2:a..b@example.com>", "example.com" },
		{ "<a@b@example.com>", "example.com" },
		{ "<a@[192.0.2.1]>", "[192.0.2.1]" },
		{ "<a@>", NULL },
		{ "<a@exa mple.com>", NULL },
		{ "<a@example..com>", NULL },
		{ "<a@ex\xff" "ample.com>", NULL },
		{ "<postmaster>", NULL },
		{ "<>", NULL },
		{ "", NULL },
		{ "<\"a@example.com>", NULL },	/* unterminated quote */
		{ "<@r1:postmaster>", NULL },
	};
	char	 dom[RG_DOMAIN_MAX + 1];
	size_t	 i;
	bool	 ok;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(dom, 'x', sizeof(dom));
		ok = rg_addr_domain_of(cases[i].raw, dom);
		if (ok != (cases[i].domain != NULL) ||
		    strcmp(dom, cases[i].domain ? cases[i].domain : "") != 0)
			fail_msg("%s: got %d [%s]", cases[i].raw, ok, dom);
	}
	assert_false(rg_addr_domain_of(NULL, dom));
}

/* Hostile sizes: a domain longer than any buffer, a huge local part. */
static void
test_domain_of_huge(void **state)
{
	const size_t n = 100 * 1024;
	char	 dom[RG_DOMAIN_MAX + 1], *s;

	(void)state;
	s = malloc(n + 32);
	assert_non_null(s);
	/* huge local part, normal domain */
	s[0] = '<';
	memset(s + 1, 'a', n);
	strcpy(s + 1 + n, "@example.com>");
	assert_true(rg_addr_domain_of(s, dom));
	assert_string_equal(dom, "example.com");
	/* a domain of 256 octets and one of 100 kB: none */
	memcpy(s, "<a@", 3);
	memset(s + 3, 'd', 256);
	strcpy(s + 3 + 256, ">");
	assert_false(rg_addr_domain_of(s, dom));
	assert_string_equal(dom, "");
	memset(s + 3, 'd', n);
	strcpy(s + 3 + n, ">");
	assert_false(rg_addr_domain_of(s, dom));
	/* 255 octets is the limit */
	memset(s + 3, 'd', 255);
	strcpy(s + 3 + 255, ">");
	assert_true(rg_addr_domain_of(s, dom));
	assert_int_equal(strlen(dom), 255);
	free(s);
}

/* The address as sent, for replies: brackets and parameters off. */
static void
test_as_sent(void **state)
{
	static const struct {
		const char	*raw;
		const char	*sent;
	} cases[] = {
		{ "<Alice@Example.COM>", "Alice@Example.COM" },
		{ "  <J\xc3\xbcrgen@example.com> SMTPUTF8",
		    "J\xc3\xbcrgen@example.com" },
		{ "a@b NOTIFY=NEVER", "a@b" },
		{ "<\"a> b\"@example.com>", "\"a> b\"@example.com" },
		{ "<a%b@example.com", "a%b@example.com" },
		{ "<>", "" },
		{ "", "" },
	};
	const char	*start;
	size_t		 i, len;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = rg_addr_as_sent(cases[i].raw, &start);
		if (len != strlen(cases[i].sent) ||
		    strncmp(start, cases[i].sent, len) != 0)
			fail_msg("%s: got [%.*s]", cases[i].raw, (int)len, start);
	}
	assert_int_equal(rg_addr_as_sent(NULL, &start), 0);
	assert_string_equal(start, "");
}

static void
test_status_str(void **state)
{
	assert_string_equal(rg_addr_status_str(RG_ADDR_OK), "ok");
	assert_string_equal(rg_addr_status_str(RG_ADDR_SYNTAX),
	    "syntax error");
	assert_string_equal(rg_addr_status_str(RG_ADDR_TOOLONG),
	    "address too long");
	assert_string_equal(rg_addr_status_str(RG_ADDR_EMPTY),
	    "empty address");
	assert_string_equal(rg_addr_status_str((enum rg_addr_status)99),
	    "unknown status");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_idempotent),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_huge_input),
		cmocka_unit_test(test_strip),
		cmocka_unit_test(test_strip_small_buffer),
		cmocka_unit_test(test_domain_of),
		cmocka_unit_test(test_domain_of_huge),
		cmocka_unit_test(test_as_sent),
		cmocka_unit_test(test_status_str),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
