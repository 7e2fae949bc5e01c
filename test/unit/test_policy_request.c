/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the Postfix policy request parser
 * (milter/policy_request.c): where a request ends, what a line may hold,
 * the recipient's external form and the session key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy_request.h"

#define REQ	"request=smtpd_access_policy\n"

static int
parse(const char *text, struct rg_pf_request *r, char *why, size_t wlen)
{
	static char	buf[RG_PF_REQUEST_MAX];
	size_t		len = strlen(text), end;

	memcpy(buf, text, len);
	end = rg_pf_request_end(buf, len);
	if (end == 0)
		return -2;
	return rg_pf_request_parse(buf, end, r, why, wlen);
}

static void
test_end(void **state)
{
	(void)state;
	assert_int_equal(rg_pf_request_end("", 0), 0);
	assert_int_equal(rg_pf_request_end("a=b\n", 4), 0);
	assert_int_equal(rg_pf_request_end("a=b\n\n", 5), 5);
	assert_int_equal(rg_pf_request_end("a=b\r\n\r\nx", 8), 7);
	assert_int_equal(rg_pf_request_end("\n", 1), 1);
	/* a value that ends in CR is not an empty line */
	assert_int_equal(rg_pf_request_end("a=\r\n", 4), 0);
	/* two requests: the first one's end */
	assert_int_equal(rg_pf_request_end("a=b\n\nc=d\n\n", 10), 5);
}

static void
test_parse_fields(void **state)
{
	struct rg_pf_request	r;
	char			why[128];

	(void)state;
	assert_int_equal(parse(REQ "protocol_state=RCPT\nrecipient=bob@x\n"
	    "client_address=192.0.2.1\nclient_port=4000\nfuture_attr=1\n"
	    "sasl_username=\ninstance=a.b.c.0\n\n", &r, why, sizeof(why)), 0);
	assert_string_equal(r.protocol_state, "RCPT");
	assert_string_equal(r.recipient, "bob@x");
	assert_string_equal(r.client_address, "192.0.2.1");
	assert_string_equal(r.client_port, "4000");
	assert_string_equal(r.sasl_username, "");
	assert_null(r.server_address);
	/* CR LF line ends; a value may hold '=' */
	assert_int_equal(parse(REQ "protocol_state=DATA\r\nrecipient=a=b@x\r\n"
	    "\r\n", &r, why, sizeof(why)), 0);
	assert_string_equal(r.protocol_state, "DATA");
	assert_string_equal(r.recipient, "a=b@x");
}

static void
test_parse_junk(void **state)
{
	struct rg_pf_request	r;
	char			why[128];

	(void)state;
	assert_int_equal(parse(REQ "junk\n\n", &r, why, sizeof(why)), -1);
	assert_string_equal(why, "line without '=' (line 2)");
	assert_int_equal(parse(REQ "=value\n\n", &r, why, sizeof(why)), -1);
	assert_int_equal(parse(REQ "na me=v\n\n", &r, why, sizeof(why)), -1);
	assert_int_equal(parse("protocol_state=RCPT\n\n", &r, why,
	    sizeof(why)), -1);
	assert_string_equal(why, "not an smtpd_access_policy request");
	assert_int_equal(parse("request=other\n\n", &r, why, sizeof(why)), -1);
	{
		static const char	nul[] = REQ "recipient=a\0b\n\n";
		static char		buf[64];

		memcpy(buf, nul, sizeof(nul) - 1);
		assert_int_equal(rg_pf_request_parse(buf, sizeof(nul) - 1, &r,
		    why, sizeof(why)), -1);
		assert_string_equal(why, "NUL byte (line 2)");
	}
	/* a HELO name or address with odd bytes is the decision's business */
	assert_int_equal(parse(REQ "helo_name=a\tb\xff\n\n", &r, why,
	    sizeof(why)), 0);
}

static void
test_external(void **state)
{
	char	out[64];

	(void)state;
	assert_true(rg_pf_recipient_external("bob@example.com", out, sizeof(out)));
	assert_string_equal(out, "bob@example.com");
	assert_true(rg_pf_recipient_external("john doe@example.com", out,
	    sizeof(out)));
	assert_string_equal(out, "\"john doe\"@example.com");
	assert_true(rg_pf_recipient_external("a\"b\\c@x", out, sizeof(out)));
	assert_string_equal(out, "\"a\\\"b\\\\c\"@x");
	assert_true(rg_pf_recipient_external("a@b@x", out, sizeof(out)));
	assert_string_equal(out, "\"a@b\"@x");
	assert_true(rg_pf_recipient_external("a..b@x", out, sizeof(out)));
	assert_string_equal(out, "\"a..b\"@x");
	assert_true(rg_pf_recipient_external("postmaster", out, sizeof(out)));
	assert_string_equal(out, "postmaster");
	assert_true(rg_pf_recipient_external("j\xc3\xb6rg@x", out, sizeof(out)));
	assert_string_equal(out, "j\xc3\xb6rg@x");
	assert_false(rg_pf_recipient_external("a b c d e f g h i j k l m n o"
	    " p q r s t u v w x y z@example.com", out, 40));
}

static void
test_session_key(void **state)
{
	struct rg_pf_request	r;
	char			key[256], why[128];

	(void)state;
	assert_int_equal(parse(REQ "client_address=192.0.2.1\nclient_port=4000\n"
	    "server_address=192.0.2.25\nserver_port=25\ninstance=3fa.65.7.2\n\n",
	    &r, why, sizeof(why)), 0);
	assert_true(rg_pf_session_key(&r, key, sizeof(key)));
	assert_string_equal(key, "192.0.2.1|4000|192.0.2.25|25|3fa");
	/* no ports (an old Postfix): no per-session state at all */
	assert_int_equal(parse(REQ "client_address=192.0.2.1\n\n", &r, why,
	    sizeof(why)), 0);
	assert_false(rg_pf_session_key(&r, key, sizeof(key)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_end),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_parse_junk),
		cmocka_unit_test(test_external),
		cmocka_unit_test(test_session_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
