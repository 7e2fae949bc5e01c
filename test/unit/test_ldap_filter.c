/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/backend/ldap_filter.c: RFC 4515 escaping, template
 * expansion (overflow is an error), template checks and the filter
 * syntax check. Pure functions, table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ldap_filter.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_escape(void **state)
{
	static const struct {
		const char	*in;
		const char	*want;
	} cases[] = {
		{ "alice@example.com", "alice@example.com" },
		{ "*@example.com", "\\2a@example.com" },
		{ "x*@example.com", "x\\2a@example.com" },
		{ "a)(mail=*@example.com", "a\\29\\28mail=\\2a@example.com" },
		{ "back\\slash", "back\\5cslash" },
		{ "ctl\x01\x1f\x7f", "ctl\\01\\1f\\7f" },
		{ "caf\xc3\xa9", "caf\\c3\\a9" },
		{ "%s%%", "%s%%" },	/* escaping is not expansion */
		{ "", "" },
	};
	char	buf[256];
	size_t	n;

	for (size_t i = 0; i < NELEM(cases); i++) {
		n = 999;
		assert_int_equal(rg_ldap_escape(cases[i].in, buf, sizeof(buf),
		    &n), 0);
		assert_string_equal(buf, cases[i].want);
		assert_int_equal(n, strlen(cases[i].want));
	}
}

static void
test_escape_overflow(void **state)
{
	char	buf[8];

	/* exactly fits: 7 chars + NUL */
	assert_int_equal(rg_ldap_escape("abcdefg", buf, sizeof(buf), NULL), 0);
	assert_string_equal(buf, "abcdefg");
	assert_int_equal(rg_ldap_escape("abcdefgh", buf, sizeof(buf), NULL),
	    -1);
	assert_string_equal(buf, "");
	/* an escape that would be split at the end is refused whole */
	assert_int_equal(rg_ldap_escape("abcde*", buf, sizeof(buf), NULL), -1);
	assert_string_equal(buf, "");
	assert_int_equal(rg_ldap_escape("abcd*", buf, sizeof(buf), NULL), 0);
	assert_string_equal(buf, "abcd\\2a");
	assert_int_equal(rg_ldap_escape("", buf, 0, NULL), -1);
}

static void
test_expand(void **state)
{
	static const struct {
		const char	*tmpl, *addr, *local, *domain, *want;
	} cases[] = {
		{ "(mail=%s)", "a@b.c", "a", "b.c", "(mail=a@b.c)" },
		{ "(|(mail=%s)(proxyAddresses=smtp:%s))", "a@b.c", "a", "b.c",
		  "(|(mail=a@b.c)(proxyAddresses=smtp:a@b.c))" },
		{ "(&(uid=%u)(dc=%d))", "a@b.c", "a", "b.c",
		  "(&(uid=a)(dc=b.c))" },
		{ "(mail=%s)", "*@b.c", "*", "b.c", "(mail=\\2a@b.c)" },
		{ "(mail=%s)", "a)(mail=*@b.c", "a)(mail=*", "b.c",
		  "(mail=a\\29\\28mail=\\2a@b.c)" },
		{ "(x=100%%)(mail=%s)", "a@b", "a", "b", "(x=100%)(mail=a@b)" },
		{ "(mail=%s)", "@b.c", "", "b.c", "(mail=@b.c)" },
	};
	char		buf[RG_LDAP_FILTER_MAX];
	struct rg_error	err;

	for (size_t i = 0; i < NELEM(cases); i++) {
		rg_error_clear(&err);
		assert_int_equal(rg_ldap_filter_expand(cases[i].tmpl,
		    cases[i].addr, cases[i].local, cases[i].domain, buf,
		    sizeof(buf), &err), 0);
		assert_string_equal(buf, cases[i].want);
		assert_int_equal(err.count, 0);
	}
}

static void
test_expand_errors(void **state)
{
	char		small[24], buf[RG_LDAP_FILTER_MAX];
	char		longaddr[1400];
	struct rg_error	err;

	/* "(mail=a@b.c)" is 12 bytes: fits in 13, not in 12 */
	rg_error_clear(&err);
	assert_int_equal(rg_ldap_filter_expand("(mail=%s)", "a@b.c", "a",
	    "b.c", small, 13, &err), 0);
	assert_string_equal(small, "(mail=a@b.c)");
	assert_int_equal(rg_ldap_filter_expand("(mail=%s)", "a@b.c", "a",
	    "b.c", small, 12, &err), -1);
	assert_string_equal(small, "");
	assert_non_null(strstr(err.msg, "exceed"));

	/* escaping triples a value: 1300 '*' = 3900 bytes, plus 2x... */
	memset(longaddr, '*', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = '\0';
	rg_error_clear(&err);
	assert_int_equal(rg_ldap_filter_expand("(|(mail=%s)(x=%s))", longaddr,
	    "", "", buf, sizeof(buf), &err), -1);
	assert_string_equal(buf, "");
	assert_int_equal(err.count, 1);

	/* bad conversion */
	rg_error_clear(&err);
	assert_int_equal(rg_ldap_filter_expand("(mail=%x)", "a@b", "a", "b",
	    buf, sizeof(buf), &err), -1);
	assert_int_equal(err.count, 1);
	/* a lone trailing '%' */
	rg_error_clear(&err);
	assert_int_equal(rg_ldap_filter_expand("(mail=%s)%", "a@b", "a", "b",
	    buf, sizeof(buf), &err), -1);
}

static void
test_check_template(void **state)
{
	static const struct {
		const char	*tmpl;
		int		 want;
	} cases[] = {
		{ "(mail=%s)", 0 },
		{ "(|(mail=%s)(proxyAddresses=smtp:%s))", 0 },
		{ "(&(|(mail=%s)(proxyAddresses=smtp:%s))"
		  "(!(userAccountControl:1.2.840.113556.1.4.803:=2)))", 0 },
		{ "(&(uid=%u)(associatedDomain=%d))", 0 },
		{ "(&(mail=%s)(description=50%%))", 0 },
		{ "(mail=%s", -1 },		/* unbalanced */
		{ "mail=%s", -1 },		/* no parentheses */
		{ "(mail=*)", -1 },		/* no value: matches everyone */
		{ "(mail=%z)", -1 },
		{ "(mail=%s))", -1 },		/* trailing junk */
		{ "(mail=%s)(uid=%u)", -1 },	/* two filters */
		{ "(|(mail=%s)(bad attr=%s))", -1 },
		{ "", -1 },
	};
	struct rg_error	err;

	for (size_t i = 0; i < NELEM(cases); i++) {
		rg_error_clear(&err);
		if (rg_ldap_filter_check_template(cases[i].tmpl, &err) !=
		    cases[i].want)
			fail_msg("template %s: want %d (%s)", cases[i].tmpl,
			    cases[i].want, err.msg);
		if (cases[i].want == -1)
			assert_true(err.count > 0);
	}
}

static void
test_valid(void **state)
{
	static const struct {
		const char	*f;
		bool		 want;
	} cases[] = {
		{ "(mail=a@b)", true },
		{ "(mail=*)", true },
		{ "(mail=a*b*c)", true },
		{ "(mail=*a)", true },
		{ "(mail=)", true },
		{ "(mail=a\\2ab)", true },
		{ "(mail=a\\2Ab)", true },
		{ "(cn>=x)", true },
		{ "(cn<=x)", true },
		{ "(cn~=x)", true },
		{ "(cn;lang-en=x)", true },
		{ "(2.5.4.3=x)", true },
		{ "(&)", true },
		{ "(|)", true },
		{ "(!(a=b))", true },
		{ "(&(a=b)(|(c=d)(!(e=f))))", true },
		{ "(uac:1.2.840.113556.1.4.803:=2)", true },
		{ "(cn:dn:caseExactMatch:=x)", true },
		{ "(:dn:2.5.13.5:=x)", true },
		{ "(:caseExactMatch:=x)", true },
		{ "(cn:=x)", true },
		{ "", false },
		{ "a=b", false },
		{ "(a=b", false },
		{ "(a=b))", false },
		{ "((a=b))", false },
		{ "(a=b)(c=d)", false },
		{ "(=b)", false },
		{ "(a b=c)", false },
		{ "(a=b(c)", false },
		{ "(a=\\2)", false },
		{ "(a=\\zz)", false },
		{ "(a=b\\)", false },
		{ "(cn>=x*)", false },
		{ "(a=b**c)", false },	/* found by fuzz_ldap_filter */
		{ "(a=**)", false },
		{ "(!(a=b)(c=d))", false },
		{ "(!)", false },
		{ "(:=x)", false },
		{ "(:dn:=x)", false },
		{ "(01.2=x)", false },
		{ "(1..2=x)", false },
		{ "(&(a=b)x)", false },
	};

	for (size_t i = 0; i < NELEM(cases); i++)
		if (rg_ldap_filter_valid(cases[i].f) != cases[i].want)
			fail_msg("%s: want %s", cases[i].f,
			    cases[i].want ? "valid" : "invalid");
}

static void
test_valid_depth(void **state)
{
	char	buf[512];
	size_t	o = 0;
	int	depth;

	/* 30 nested (!...) is fine, 40 is refused (bounded recursion) */
	for (int round = 0; round < 2; round++) {
		depth = round == 0 ? 30 : 40;
		o = 0;
		for (int i = 0; i < depth; i++) {
			memcpy(buf + o, "(!", 2);
			o += 2;
		}
		memcpy(buf + o, "(a=b)", 5);
		o += 5;
		for (int i = 0; i < depth; i++)
			buf[o++] = ')';
		buf[o] = '\0';
		assert_int_equal(rg_ldap_filter_valid(buf), round == 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_escape_overflow),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_expand_errors),
		cmocka_unit_test(test_check_template),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_valid_depth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
