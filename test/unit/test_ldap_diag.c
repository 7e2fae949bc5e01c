/* SPDX-License-Identifier: MIT */
/*
 * ldap_diag.c's one-line rule: a server's multi-line diagnostic text
 * reaches the log as one line ("; " between its lines), never as
 * escaped line breaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "ldap_priv.h"

static const struct {
	const char	*in, *want;
	size_t		 len;
} cases[] = {
	{ "", "", 64 },
	{ "one line", "one line", 64 },
	{ "line 1\nline 2", "line 1; line 2", 64 },
	{ "a\r\n\r\nb\n", "a; b", 64 },
	{ "\n\nlead", "lead", 64 },
	{ "trailing  \n", "trailing", 64 },
	/* AD's padded text: "...DSID-0C0906E8, comment: ...\n" */
	{ "00002020: Operation unavailable without authentication\n",
	  "00002020: Operation unavailable without authentication", 128 },
	/* truncated, never overrun */
	{ "abcdef\nghij", "abcdef", 8 },
	{ "abc", "", 1 },
};

static void
test_oneline(void **state)
{
	char	buf[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 'X', sizeof(buf));
		rg_ldap_oneline(cases[i].in, buf, cases[i].len);
		assert_string_equal(buf, cases[i].want);
	}
	rg_ldap_oneline(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oneline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
