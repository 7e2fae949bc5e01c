/* SPDX-License-Identifier: MIT */
/*
 * The SMTP reply parser and the path check of smtp_client.c, as tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_client.h"

#define WHOLE	(-2)	/* expect the whole input consumed */

struct reply_case {
	const char	*name;
	const char	*in;
	long		 want;		/* return value, or WHOLE */
	int		 code;
	int		 enh[3];
	size_t		 nlines;
	const char	*text;		/* NULL: do not check */
};

static const struct reply_case reply_cases[] = {
	{ "greeting", "220 mx.example.test ESMTP\r\n", WHOLE, 220,
	    { 0, 0, 0 }, 1, "mx.example.test ESMTP" },
	{ "bare LF", "250 ok\n", WHOLE, 250, { 0, 0, 0 }, 1, "ok" },
	{ "code only", "250\r\n", WHOLE, 250, { 0, 0, 0 }, 1, "" },
	{ "enhanced", "250 2.1.5 Ok\r\n", WHOLE, 250, { 2, 1, 5 }, 1, "Ok" },
	{ "enhanced only", "550 5.1.1\r\n", WHOLE, 550, { 5, 1, 1 }, 1, "" },
	{ "unknown user", "550 5.1.1 <x@example.test>: Recipient address "
	    "rejected: User unknown in local recipient table\r\n", WHOLE, 550,
	    { 5, 1, 1 }, 1, "<x@example.test>: Recipient address rejected: "
	    "User unknown in local recipient table" },
	{ "multi-line EHLO", "250-mx.example.test\r\n250-PIPELINING\r\n"
	    "250-SIZE 10240000\r\n250 8BITMIME\r\n", WHOLE, 250, { 0, 0, 0 },
	    4, "8BITMIME" },
	{ "multi-line enhanced", "550-5.1.1 The email account that you tried "
	    "to reach does not exist.\r\n550 5.1.1 Try again.\r\n", WHOLE, 550,
	    { 5, 1, 1 }, 2, "Try again." },
	{ "three-digit enhanced parts", "452 4.123.999 busy\r\n", WHOLE, 452,
	    { 4, 123, 999 }, 1, "busy" },
	{ "enhanced class mismatch ignored", "550 4.1.1 odd\r\n", WHOLE, 550,
	    { 0, 0, 0 }, 1, "4.1.1 odd" },
	{ "enhanced four digits ignored", "550 5.1111.1 x\r\n", WHOLE, 550,
	    { 0, 0, 0 }, 1, "5.1111.1 x" },
	{ "enhanced no space ignored", "550 5.1.1x\r\n", WHOLE, 550,
	    { 0, 0, 0 }, 1, "5.1.1x" },
	{ "enhanced two-digit class ignored", "550 55.1.1 x\r\n", WHOLE, 550,
	    { 0, 0, 0 }, 1, "55.1.1 x" },
	{ "421 shutdown", "421 4.3.2 Service shutting down\r\n", WHOLE, 421,
	    { 4, 3, 2 }, 1, "Service shutting down" },
	{ "trailing bytes stay", "250 ok\r\n220 next\r\n", 8, 250,
	    { 0, 0, 0 }, 1, "ok" },
	{ "control bytes masked", "250 a\tb\x01" "c\r\n", WHOLE, 250,
	    { 0, 0, 0 }, 1, "a?b?c" },
	/* incomplete: read more */
	{ "empty", "", 0, 0, { 0 }, 0, NULL },
	{ "partial code", "25", 0, 0, { 0 }, 0, NULL },
	{ "no LF yet", "250 ok\r", 0, 0, { 0 }, 0, NULL },
	{ "continuation only", "250-one\r\n250-two\r\n", 0, 0, { 0 }, 0, NULL },
	/* malformed */
	{ "letters", "hello\r\n", -1, 0, { 0 }, 0, NULL },
	{ "letters early", "h", -1, 0, { 0 }, 0, NULL },
	{ "code 199", "199 x\r\n", -1, 0, { 0 }, 0, NULL },
	{ "code 600", "600 x\r\n", -1, 0, { 0 }, 0, NULL },
	{ "short line", "25\r\n", -1, 0, { 0 }, 0, NULL },
	{ "bad separator", "250_ok\r\n", -1, 0, { 0 }, 0, NULL },
	{ "bad separator early", "250x", -1, 0, { 0 }, 0, NULL },
	{ "codes differ", "250-a\r\n251 b\r\n", -1, 0, { 0 }, 0, NULL },
	{ "bad continuation", "250-a\r\nxyz\r\n", -1, 0, { 0 }, 0, NULL },
	{ "empty line", "\r\n", -1, 0, { 0 }, 0, NULL },
};

static void
test_reply_table(void **state)
{
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]);
	    i++) {
		const struct reply_case	*tc = &reply_cases[i];
		struct rg_smtp_reply	 r;
		size_t			 len = strlen(tc->in);
		long			 want = tc->want == WHOLE ?
		    (long)len : tc->want;
		long			 got;

		got = rg_smtp_reply_parse(tc->in, len, &r);
		if (got != want)
			fail_msg("%s: returned %ld, want %ld", tc->name, got,
			    want);
		if (got <= 0)
			continue;
		if (r.code != tc->code)
			fail_msg("%s: code %d, want %d", tc->name, r.code,
			    tc->code);
		if (memcmp(r.enh, tc->enh, sizeof(r.enh)) != 0)
			fail_msg("%s: enhanced %d.%d.%d, want %d.%d.%d",
			    tc->name, r.enh[0], r.enh[1], r.enh[2],
			    tc->enh[0], tc->enh[1], tc->enh[2]);
		if (r.nlines != tc->nlines)
			fail_msg("%s: %zu lines, want %zu", tc->name,
			    r.nlines, tc->nlines);
		if (tc->text != NULL && strcmp(r.text, tc->text) != 0)
			fail_msg("%s: text [%s], want [%s]", tc->name, r.text,
			    tc->text);
		assert_false(r.text_truncated);
	}
}

/* A NUL byte inside a line is refused, wherever it is. */
static void
test_reply_nul(void **state)
{
	static const char	in[] = "250 o\0k\r\n";
	struct rg_smtp_reply	r;

	assert_int_equal(rg_smtp_reply_parse(in, sizeof(in) - 1, &r), -1);
	assert_int_equal(rg_smtp_reply_parse(in, 5, &r), 0);
	assert_int_equal(rg_smtp_reply_parse(in, 6, &r), -1);
}

/*
 * Lines far over the RFC 5321 limit of 512 octets: parsed, the text kept
 * cut and marked, nothing read beyond len (ASan checks the heap copy).
 */
static void
test_reply_long(void **state)
{
	static const size_t	sizes[] = { 511, 512, 513, 4000, 100000 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t			n = sizes[i];
		char			*buf = malloc(n + 20);
		struct rg_smtp_reply	r;
		size_t			len;

		assert_non_null(buf);
		memcpy(buf, "550-5.1.1 ", 10);
		memset(buf + 10, 'a', n);
		memcpy(buf + 10 + n, "\r\n550 ", 6);
		memset(buf + 16 + n, 'b', 2);
		memcpy(buf + 18 + n, "\r\n", 2);
		len = n + 20;
		assert_int_equal(rg_smtp_reply_parse(buf, len, &r), (long)len);
		assert_int_equal(r.code, 550);
		assert_int_equal(r.nlines, 2);
		assert_string_equal(r.text, "bb");
		/* A long last line is cut for the log, and says so. */
		memcpy(buf + 3, " ", 1);
		assert_int_equal(rg_smtp_reply_parse(buf, 12 + n, &r),
		    (long)(12 + n));
		assert_int_equal(r.enh[0], 5);
		assert_int_equal(strlen(r.text), sizeof(r.text) - 1);
		assert_true(r.text_truncated);
		assert_memory_equal(r.text + sizeof(r.text) - 4, "...", 3);
		/* Every proper prefix of one line needs more bytes. */
		for (size_t cut = 0; cut < 12 + n; cut += 1 + cut / 3)
			assert_int_equal(rg_smtp_reply_parse(buf, cut, &r), 0);
		free(buf);
	}
}

struct path_case {
	const char	*s;
	size_t		 len;
	bool		 ok;
};

static void
test_path_table(void **state)
{
	static char		long256[257], long257[258];
	const struct path_case	cases[] = {
		{ "bob@example.com", 15, true },
		{ "", 0, true },
		{ "\"a b\"@example.com", 17, true },
		{ "bob@example.com\r\nRCPT TO:<x@y>", 30, false },
		{ "bob\n@x", 6, false },
		{ "bob\r@x", 6, false },
		{ "bob\0@x", 6, false },
		{ "bob>@x", 6, false },
		{ "<bob@x", 6, false },
		{ "bob\x7f@x", 6, false },
		{ long256, 256, true },
		{ long257, 257, false },
	};

	memset(long256, 'a', 256);
	memset(long257, 'a', 257);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (rg_smtp_path_ok(cases[i].s, cases[i].len) != cases[i].ok)
			fail_msg("path case %zu: want %s", i,
			    cases[i].ok ? "ok" : "refused");
}

/*
 * Issue 12, point 6: only "no such user" is unknown. Each reply as a
 * real server sends it, through the parser, then classified.
 */
static void
test_rcpt_class(void **state)
{
	static const struct {
		const char		*in;
		enum rg_smtp_rcpt	 want;
	} cases[] = {
		{ "250 2.1.5 Ok\r\n",				RG_SMTP_RCPT_OK },
		{ "251 2.1.5 will forward\r\n",		RG_SMTP_RCPT_OK },
		{ "252 2.1.5 cannot verify, will accept\r\n",	RG_SMTP_RCPT_OK },
		{ "550 5.1.1 <x@example.test>: Recipient address rejected: "
		    "User unknown in local recipient table\r\n",
		    RG_SMTP_RCPT_UNKNOWN },
		{ "550 5.1.0 Address rejected\r\n",	RG_SMTP_RCPT_UNKNOWN },
		{ "554 5.1.1 no such mailbox\r\n",	RG_SMTP_RCPT_UNKNOWN },
		{ "553 5.1.3 bad address syntax\r\n",	RG_SMTP_RCPT_UNKNOWN },
		{ "550 5.1.10 null MX\r\n",		RG_SMTP_RCPT_UNKNOWN },
		{ "550 no such user\r\n",		RG_SMTP_RCPT_UNKNOWN },
		{ "551 User not local\r\n",		RG_SMTP_RCPT_UNKNOWN },
		{ "553 mailbox name not allowed\r\n",	RG_SMTP_RCPT_UNKNOWN },
		{ "550-5.1.1 The account\r\n550 5.1.1 does not exist\r\n",
		    RG_SMTP_RCPT_UNKNOWN },
		/* not about the recipient */
		{ "553 5.6.7 <j\xc3\xb6rg@example.test>: Recipient address "
		    "rejected: Must declare SMTPUTF8 to send unicode "
		    "address\r\n",				RG_SMTP_RCPT_FAILED },
		{ "550 5.7.1 Relaying denied\r\n",	RG_SMTP_RCPT_FAILED },
		{ "553 5.7.1 Sender address rejected\r\n", RG_SMTP_RCPT_FAILED },
		{ "550 5.1.8 Sender address rejected: Domain not found\r\n",
		    RG_SMTP_RCPT_FAILED },
		{ "553 5.1.7 bad sender syntax\r\n",	RG_SMTP_RCPT_FAILED },
		{ "550 5.2.2 mailbox full\r\n",		RG_SMTP_RCPT_FAILED },
		{ "552 5.3.4 too big\r\n",		RG_SMTP_RCPT_FAILED },
		{ "554 5.7.1 Service unavailable; Client host blocked\r\n",
		    RG_SMTP_RCPT_FAILED },
		{ "550 5.0.0 rejected\r\n",		RG_SMTP_RCPT_FAILED },
		{ "554 transaction failed\r\n",		RG_SMTP_RCPT_FAILED },
		{ "552 Requested action aborted\r\n",	RG_SMTP_RCPT_FAILED },
		{ "450 4.1.1 try later\r\n",		RG_SMTP_RCPT_FAILED },
		{ "450 4.2.0 Greylisted\r\n",		RG_SMTP_RCPT_FAILED },
		{ "421 4.3.2 shutting down\r\n",	RG_SMTP_RCPT_FAILED },
		{ "550 4.1.1 odd (class mismatch)\r\n",	RG_SMTP_RCPT_UNKNOWN },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rg_smtp_reply	r;

		assert_true(rg_smtp_reply_parse(cases[i].in,
		    strlen(cases[i].in), &r) > 0);
		if (rg_smtp_rcpt_class(&r) != cases[i].want)
			fail_msg("[%s]: class %d, want %d", cases[i].in,
			    rg_smtp_rcpt_class(&r), cases[i].want);
	}
}

/* The EHLO keyword SMTPUTF8, on a line after the first only. */
static void
test_ehlo_smtputf8(void **state)
{
	static const struct {
		const char	*in;
		bool		 want;
	} cases[] = {
		{ "250-mx.example.test\r\n250-PIPELINING\r\n"
		    "250-SMTPUTF8\r\n250 CHUNKING\r\n",	true },
		{ "250-mx.example.test\r\n250 smtputf8\r\n",	true },
		{ "250-mx.example.test\r\n250-8BITMIME\r\n"
		    "250 DSN\r\n",				false },
		{ "250 SMTPUTF8 is my name\r\n",		false },
		{ "250-mx\r\n250 SMTPUTF8X\r\n",		false },
		{ "250-mx\r\n250 XSMTPUTF8\r\n",		false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rg_smtp_reply	r;

		assert_true(rg_smtp_reply_parse(cases[i].in,
		    strlen(cases[i].in), &r) > 0);
		if (((r.ext & RG_SMTP_EXT_SMTPUTF8) != 0) != cases[i].want)
			fail_msg("case %zu: SMTPUTF8 %s", i,
			    cases[i].want ? "missed" : "seen");
	}
	assert_true(rg_smtp_ascii("bob@example.test"));
	assert_false(rg_smtp_ascii("j\xc3\xb6rg@example.test"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_reply_nul),
		cmocka_unit_test(test_reply_long),
		cmocka_unit_test(test_path_table),
		cmocka_unit_test(test_rcpt_class),
		cmocka_unit_test(test_ehlo_smtputf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
