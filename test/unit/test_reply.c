/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/reply.c: code validation, '%' doubling, control and
 * non-ASCII removal, and the 980-byte cut that never splits a "%%".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reply.h"

struct build_case {
	const char	*rcode;
	const char	*xcode;
	const char	*text;
	int		 ret;
	const char	*line;
};

static const struct build_case build_cases[] = {
	{ "550", "5.1.1", "<bob@example.com>: Recipient address rejected: "
	    "User unknown", 0, "550 5.1.1 <bob@example.com>: Recipient "
	    "address rejected: User unknown" },
	{ "451", "4.4.3", "Directory lookup failed, try again later", 0,
	    "451 4.4.3 Directory lookup failed, try again later" },
	{ "421", "4.7.0", "x", 0, "421 4.7.0 x" },
	{ "550", "5.123.456", "x", 0, "550 5.123.456 x" },
	{ "550", "5.1.1", "", 0, "550 5.1.1" },
	{ "550", "5.1.1", NULL, 0, "550 5.1.1" },
	/* % doubling */
	{ "550", "5.1.1", "100%", 0, "550 5.1.1 100%%" },
	{ "550", "5.1.1", "%n%s@x", 0, "550 5.1.1 %%n%%s@x" },
	{ "550", "5.1.1", "%%", 0, "550 5.1.1 %%%%" },
	/* control characters, DEL and non-ASCII */
	{ "550", "5.1.1", "a\r\nb", 0, "550 5.1.1 ab" },
	{ "550", "5.1.1", "a\r\n550 5.7.1 forged", 0,
	    "550 5.1.1 a550 5.7.1 forged" },
	{ "550", "5.1.1", "\ta\x01\x1f\x7f" "b", 0, "550 5.1.1 ab" },
	{ "550", "5.1.1", "j\xc3\xbcrgen", 0, "550 5.1.1 j\xc3\xbcrgen" },
	{ "550", "5.1.1", "j\xc3rgen", 0, "550 5.1.1 j?rgen" },	/* cut sequence */
	{ "550", "5.1.1", "\xff", 0, "550 5.1.1 ?" },
	/* invalid codes: safe 451 4.3.0 */
	{ "550", "4.1.1", "x", -1, "451 4.3.0 Temporary failure" },
	{ "450", "5.1.1", "x", -1, "451 4.3.0 Temporary failure" },
	{ "250", "2.0.0", "x", -1, "451 4.3.0 Temporary failure" },
	{ "650", "6.0.0", "x", -1, "451 4.3.0 Temporary failure" },
	{ "55", "5.1.1", "x", -1, "451 4.3.0 Temporary failure" },
	{ "5500", "5.1.1", "x", -1, "451 4.3.0 Temporary failure" },
	{ "5a0", "5.1.1", "x", -1, "451 4.3.0 Temporary failure" },
	{ NULL, "5.1.1", "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", NULL, "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", "", "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", "5.1", "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", "5..1", "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", "5.1.", "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", "5.1.1.", "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", "5.1.1 ", "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", "5.1234.1", "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", "5.1.1234", "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", "5.a.1", "x", -1, "451 4.3.0 Temporary failure" },
	{ "550", "5.1.1\r\n", "x", -1, "451 4.3.0 Temporary failure" },
};

static void
test_build_table(void **state)
{
	struct rg_reply r;
	char	 line[RG_REPLY_LINE_MAX + 1];
	size_t	 i;

	for (i = 0; i < sizeof(build_cases) / sizeof(build_cases[0]); i++) {
		const struct build_case *c = &build_cases[i];
		int	 ret;

		memset(&r, 'Z', sizeof(r));
		ret = rg_reply_build(&r, c->rcode, c->xcode, c->text);
		rg_reply_line(&r, line, sizeof(line));
		if (ret != c->ret || strcmp(line, c->line) != 0)
			print_error("case %zu: %d \"%s\"\n", i, ret, line);
		assert_int_equal(ret, c->ret);
		assert_string_equal(line, c->line);
	}
}

/* Every '%' in s belongs to a "%%" pair. */
static int
no_lone_percent(const char *s)
{
	while (*s != '\0') {
		if (*s == '%') {
			if (s[1] != '%')
				return 0;
			s += 2;
		} else
			s++;
	}
	return 1;
}

struct cut_case {
	const char	*xcode;
	const char	*head;	/* text is head then fill repeated */
	char		 fill;
	size_t		 count;
	int		 cut;	/* expect "..." at the end */
	size_t		 linelen;
};

/* "550 5.1.1 " is 10 octets, leaving 970 for the text. */
static const struct cut_case cut_cases[] = {
	{ "5.1.1", "", 'a', 970, 0, 980 },
	{ "5.1.1", "", 'a', 971, 1, 980 },
	{ "5.1.1", "", 'a', 5000, 1, 980 },
	{ "5.123.456", "", 'a', 966, 0, 980 },
	{ "5.123.456", "", 'a', 967, 1, 980 },
	{ "5.1.1", "", '%', 485, 0, 980 },	/* 970 after doubling */
	{ "5.1.1", "", '%', 486, 1, 979 },	/* 483 pairs + "..." */
	{ "5.1.1", "a", '%', 485, 1, 980 },	/* a + 483 pairs + ... */
	{ "5.1.1", "ab", '%', 484, 0, 980 },	/* fits exactly */
	{ "5.1.1", "ab", '%', 485, 1, 979 },
	{ "5.1.1", "", '%', 100000, 1, 979 },
	{ "5.1.1", "", '\n', 100000, 0, 9 },	/* all dropped, no cut */
	{ "5.1.1", "", '\xe9', 2000, 1, 980 },
};

static void
test_cut(void **state)
{
	struct rg_reply r;
	char	 line[RG_REPLY_LINE_MAX + 1];
	size_t	 i, hl;

	for (i = 0; i < sizeof(cut_cases) / sizeof(cut_cases[0]); i++) {
		const struct cut_case *c = &cut_cases[i];
		char	*t;
		size_t	 ll;
		int	 ret;

		hl = strlen(c->head);
		t = malloc(hl + c->count + 1);
		assert_non_null(t);
		memcpy(t, c->head, hl);
		memset(t + hl, c->fill, c->count);
		t[hl + c->count] = '\0';
		ret = rg_reply_build(&r, "550", c->xcode, t);
		free(t);	/* before any assert: cmocka longjmps out */
		assert_int_equal(ret, 0);
		rg_reply_line(&r, line, sizeof(line));
		ll = strlen(line);
		if (ll != c->linelen)
			print_error("cut case %zu: length %zu\n", i, ll);
		assert_int_equal(ll, c->linelen);
		assert_true(ll <= RG_REPLY_LINE_MAX);
		assert_true(no_lone_percent(r.text));
		if (c->cut)
			assert_string_equal(line + ll - 3, "...");
		else
			assert_true(ll < 3 ||
			    strcmp(line + ll - 3, "...") != 0);
	}
}

/* rg_reply_line never hands out a cut line. */
static void
test_line_exact_buffer(void **state)
{
	struct rg_reply r;
	char	 buf[13];

	assert_int_equal(rg_reply_build(&r, "550", "5.1.1", "xy"), 0);
	rg_reply_line(&r, buf, sizeof(buf));
	assert_string_equal(buf, "550 5.1.1 xy");
	rg_reply_line(&r, buf, 12);
	assert_string_equal(buf, "");
}

/* The policy form: '%' as it is (Postfix does not undo "%%"), control
 * characters still dropped (a LF would end the policy reply). */
static void
test_policy_form(void **state)
{
	struct rg_reply	r;

	(void)state;
	assert_int_equal(rg_reply_build_form(&r, RG_REPLY_POLICY, "550",
	    "5.1.1", "100% unknown\r\naction=OK"), 0);
	assert_string_equal(r.text, "100% unknownaction=OK");
	assert_int_equal(rg_reply_build_form(&r, RG_REPLY_MILTER, "550",
	    "5.1.1", "100% unknown"), 0);
	assert_string_equal(r.text, "100%% unknown");
	assert_int_equal(rg_reply_build_form(&r, RG_REPLY_POLICY, "250",
	    "2.0.0", "x"), -1);
	assert_string_equal(r.rcode, "451");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_table),
		cmocka_unit_test(test_cut),
		cmocka_unit_test(test_policy_form),
		cmocka_unit_test(test_line_exact_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
