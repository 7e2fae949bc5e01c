/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the static `rcptgate -n` checks of rg_runtime_check
 * (lib/policy.c), as a table of configurations: the deadline against
 * the backends' worst case (timeouts times hosts) and against the MTA's
 * milter timeout once the tarpit is added. No network: live = false,
 * and the call-ahead backend contacts nothing when opened.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "policy.h"

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

struct check_case {
	const char	*name;
	const char	*policy;	/* extra [policy] lines */
	const char	*backend;	/* extra [backend ca] lines */
	const char	*harvest;	/* extra [harvest] lines */
	const char	*extra;		/* extra sections */
	const char	*want;		/* substring of the warnings; NULL: none */
};

static const struct check_case cases[] = {
	{ "call-ahead defaults, one host: silent", "", "", "", "", NULL },
	{ "call-ahead defaults, two hosts: silent", "",
	    "hosts = 127.0.0.1:25, 127.0.0.2:25\n", "", "", NULL },
	{ "call-ahead 5s x 2 hosts over 8s: warned", "",
	    "hosts = 127.0.0.1:25, 127.0.0.2:25\ntimeout = 5s\n", "", "",
	    "deadline 8000ms is shorter than its backends' worst case "
	    "10000ms" },
	{ "tarpit on, default tarpit_max 16s: warned", "", "",
	    "tarpit = 1s\n", "",
	    "deadline 8000ms + [harvest] tarpit_max 16000ms = 24000ms is not "
	    "below the MTA's milter timeout (assumed 10000ms" },
	{ "tarpit on, 8s + 1s: silent", "", "",
	    "tarpit = 1s\ntarpit_max = 1s\n", "", NULL },
	{ "tarpit on, 8s + 2s reaches 10s: warned", "", "",
	    "tarpit = 1s\ntarpit_max = 2s\n", "", "= 10000ms is not below" },
	{ "tarpit off, long tarpit_max: silent", "", "",
	    "tarpit_max = 30s\n", "", NULL },
	{ "deadline 12s alone: warned", "deadline = 12s\n", "", "", "",
	    "[policy] deadline 12000ms = 12000ms is not below" },
	{ "[domain] deadline 9s + tarpit 2s: warned for it", "", "",
	    "tarpit = 1s\ntarpit_max = 1s\n",
	    "[domain example.org]\ndeadline = 9500ms\n",
	    "[domain example.org] deadline 9500ms + [harvest] tarpit_max "
	    "1000ms = 10500ms" },
	{ "policy door on a unix socket, defaults: silent", "", "", "",
	    "[postfix_policy]\nsocket = unix:/tmp/p.sock\n", NULL },
	{ "policy door on loopback: silent", "", "", "",
	    "[postfix_policy]\nsocket = inet:10040@127.0.0.1\n", NULL },
	{ "policy door idle_timeout 60s: warned", "", "", "",
	    "[postfix_policy]\nsocket = unix:/tmp/p.sock\nidle_timeout = 60s\n",
	    "[postfix_policy] idle_timeout 60s is shorter than Postfix's "
	    "smtpd_policy_service_max_idle" },
	{ "policy door on every address: warned", "", "", "",
	    "[postfix_policy]\nsocket = inet:10040\n",
	    "[postfix_policy] socket inet:10040 is not on loopback" },
	{ "policy door on a public address: warned", "", "", "",
	    "[postfix_policy]\nsocket = inet:10040@192.0.2.1\n",
	    "is not on loopback: whoever reaches it can ask" },
};

static void
write_conf(const char *path, const struct check_case *c)
{
	FILE	*f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f, "[milter]\nsocket = unix:/tmp/x.sock\nuser =\n\n"
	    "[policy]\ndomains = example.com\nbackends = ca\n%s\n"
	    "[backend ca]\ntype = callahead\nhelo = mx.example.com\n%s%s\n"
	    "[harvest]\nmax_unknown = 0\nstate =\n%s\n%s",
	    c->policy, strstr(c->backend, "hosts") == NULL ?
	    "hosts = 127.0.0.1:25\n" : "", c->backend, c->harvest, c->extra);
	assert_int_equal(fclose(f), 0);
}

static void
test_cases(void **state)
{
	char	path[] = "/tmp/rg-test-check.XXXXXX";
	int	fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct check_case	*c = &cases[i];
		struct rg_error		 err, warn;
		struct rg_conf		*conf;
		struct rg_runtime	*rt;

		write_conf(path, c);
		rg_error_clear(&err);
		rg_error_clear(&warn);
		conf = rg_conf_load(path, &err);
		if (conf == NULL)
			fail_msg("%s: load: %s", c->name, err.msg);
		rt = rg_runtime_new(conf, &err);
		rg_conf_unref(conf);
		if (rt == NULL)
			fail_msg("%s: runtime: %s", c->name, err.msg);
		assert_int_equal(rg_runtime_check(rt, false, &err, &warn), 0);
		if (c->want == NULL && warn.msg[0] != '\0')
			fail_msg("%s: unexpected warning: %s", c->name,
			    warn.msg);
		if (c->want != NULL && strstr(warn.msg, c->want) == NULL)
			fail_msg("%s: warning [%s] lacks [%s]", c->name,
			    warn.msg, c->want);
		rg_runtime_unref(rt);
	}
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
	};

	rg_log_init("test_check", true, RG_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
