/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the operator pieces of lib/: the control protocol
 * parser (a table of good and bad request lines), the [control] and
 * [metrics] keys (errors name file, line and key), the cache's flush,
 * flush_all and inspect (which counts nothing and moves nothing), and
 * the per-backend counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend.h"
#include "backend_stats.h"
#include "cache.h"
#include "conf.h"
#include "ctlproto.h"

static const struct {
	const char	*line;
	int		 ok;
	enum rg_ctl_cmd	 cmd;
	size_t		 nargs;
	int		 json;
	const char	*client;
} reqs[] = {
	{ "status\n", 1, RG_CTL_STATUS, 0, 0, NULL },
	{ "json\tstatus\n", 1, RG_CTL_STATUS, 0, 1, NULL },
	{ "status", 1, RG_CTL_STATUS, 0, 0, NULL },
	{ "flush\ta@example.com\tb@example.com\n", 1, RG_CTL_FLUSH, 2, 0, NULL },
	{ "flush\t--all\n", 1, RG_CTL_FLUSH_ALL, 0, 0, NULL },
	{ "explain\ta@example.com\n", 1, RG_CTL_EXPLAIN, 1, 0, NULL },
	{ "explain\t--client\t192.0.2.1\ta@example.com\n", 1, RG_CTL_EXPLAIN,
	    1, 0, "192.0.2.1" },
	{ "json\texplain\ta@example.com\t--client\t::1\n", 1, RG_CTL_EXPLAIN,
	    1, 1, "::1" },
	{ "blocks\n", 1, RG_CTL_BLOCKS, 0, 0, NULL },
	{ "unblock\t192.0.2.0/24\n", 1, RG_CTL_UNBLOCK, 1, 0, NULL },
	{ "reload\r\n", 1, RG_CTL_RELOAD, 0, 0, NULL },
	{ "\n", 0, 0, 0, 0, NULL },
	{ "json\n", 0, 0, 0, 0, NULL },
	{ "frob\n", 0, 0, 0, 0, NULL },
	{ "status\textra\n", 0, 0, 0, 0, NULL },
	{ "flush\n", 0, 0, 0, 0, NULL },
	{ "flush\t--all\tx@example.com\n", 0, 0, 0, 0, NULL },
	{ "flush\tx@example.com\t--all\n", 0, 0, 0, 0, NULL },
	{ "explain\n", 0, 0, 0, 0, NULL },
	{ "explain\ta@b\tc@d\n", 0, 0, 0, 0, NULL },
	{ "explain\ta@b\t--client\n", 0, 0, 0, 0, NULL },
	{ "unblock\n", 0, 0, 0, 0, NULL },
	{ "unblock\ta\tb\n", 0, 0, 0, 0, NULL },
	{ "flush\t\ta@b\n", 0, 0, 0, 0, NULL },
	{ "status\nstatus\n", 0, 0, 0, 0, NULL },
};

static void
test_parse(void **state)
{
	struct rg_ctl_req	r;
	char			why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		int rc = rg_ctl_parse(reqs[i].line, strlen(reqs[i].line), &r,
		    why, sizeof(why));

		if ((rc == 0) != reqs[i].ok)
			fail_msg("case %zu: rc %d (%s)", i, rc, why);
		if (rc != 0) {
			assert_true(why[0] != '\0');
			continue;
		}
		assert_int_equal(r.cmd, reqs[i].cmd);
		assert_int_equal(r.nargs, reqs[i].nargs);
		assert_int_equal(r.json, reqs[i].json);
		if (reqs[i].client == NULL)
			assert_null(r.client);
		else
			assert_string_equal(r.client, reqs[i].client);
	}
	/* NUL inside, too long */
	assert_int_equal(rg_ctl_parse("sta\0tus\n", 8, &r, why, sizeof(why)),
	    -1);
	{
		static char	big[RG_CTL_LINE_MAX + 10];

		memset(big, 'a', sizeof(big) - 1);
		assert_int_equal(rg_ctl_parse(big, sizeof(big) - 1, &r, why,
		    sizeof(why)), -1);
	}
}

static void
test_json_str(void **state)
{
	char	*out = NULL;
	size_t	 len = 0;
	FILE	*f = open_memstream(&out, &len);

	(void)state;
	rg_json_str(f, "a\"b\\c\n\x01");
	fclose(f);
	assert_string_equal(out, "\"a\\\"b\\\\c\\u000a\\u0001\"");
	free(out);
}

static const struct {
	const char	*text;
	const char	*err;	/* NULL: loads */
} confs[] = {
	{ "[control]\nsocket = unix:/run/x.sock\ngroup = rcptgate-admin\n"
	  "[metrics]\nlisten = 127.0.0.1:9469\n", NULL },
	{ "[metrics]\nlisten = [::1]:9469\n", NULL },
	{ "[control]\nsocket =\n", NULL },
	{ "[control]\nsocket = /run/x.sock\n", "t.conf:2: [control] key 'socket'" },
	{ "[control]\nsocket = unix:relative\n", "t.conf:2: [control] key 'socket'" },
	{ "[control]\ngroup = a b\n", "t.conf:2: [control] key 'group'" },
	{ "[metrics]\nlisten = 9469\n", "t.conf:2: [metrics] key 'listen'" },
	{ "[metrics]\nlisten = 127.0.0.1:0\n", "t.conf:2: [metrics] key 'listen'" },
	{ "[metrics]\nlisten = localhost:9469\n", "t.conf:2: [metrics] key 'listen'" },
	{ "[metrics]\nport = 1\n", "t.conf:2:" },
};

static void
test_conf(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(confs) / sizeof(confs[0]); i++) {
		struct rg_error	 err;
		struct rg_conf	*c;

		rg_error_clear(&err);
		c = rg_conf_load_string(confs[i].text, "t.conf", &err);
		if (confs[i].err == NULL) {
			if (c == NULL)
				fail_msg("case %zu: %s", i, err.msg);
			rg_conf_unref(c);
			continue;
		}
		if (c != NULL)
			fail_msg("case %zu loads", i);
		if (strstr(err.msg, confs[i].err) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg,
			    confs[i].err);
	}
}

static void
test_cache_ops(void **state)
{
	struct rg_cache_conf	 cc = { 100, 1000, 100, 5000 };
	struct rg_cache		*c = rg_cache_new(&cc);
	struct rg_cache_answer	 ans;
	struct rg_cache_stats	 st;
	char			 be[RG_NAME_MAX];
	uint64_t		 age;
	const char		*keys[] = { "a@x", "b@x", "c@x" };

	(void)state;
	assert_non_null(c);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rg_cache_begin(c, keys[i], 7, 10, 10000, &ans),
		    RG_CACHE_MISS);
		rg_cache_finish(c, keys[i], i == 2 ? RG_NOTFOUND : RG_FOUND,
		    "local", 7, 10);
	}
	rg_cache_stats(c, &st);
	assert_int_equal(rg_cache_inspect(c, "a@x", 20, be, &age),
	    RG_CACHE_VIEW_FOUND);
	assert_string_equal(be, "local");
	assert_int_equal(age, 10);
	assert_int_equal(rg_cache_inspect(c, "c@x", 20, be, &age),
	    RG_CACHE_VIEW_NOTFOUND);
	assert_int_equal(rg_cache_inspect(c, "a@x", 2000, be, &age),
	    RG_CACHE_VIEW_STALE);
	assert_int_equal(rg_cache_inspect(c, "c@x", 2000, be, &age),
	    RG_CACHE_VIEW_EXPIRED);
	assert_int_equal(rg_cache_inspect(c, "zz@x", 20, be, &age),
	    RG_CACHE_VIEW_NONE);
	{	/* inspect counted nothing */
		struct rg_cache_stats	st2;

		rg_cache_stats(c, &st2);
		assert_int_equal(st2.hits, st.hits);
		assert_int_equal(st2.misses, st.misses);
	}
	assert_true(rg_cache_flush(c, "a@x"));
	assert_false(rg_cache_flush(c, "a@x"));
	assert_int_equal(rg_cache_inspect(c, "a@x", 20, be, &age),
	    RG_CACHE_VIEW_NONE);
	assert_int_equal(rg_cache_flush_all(c), 2);
	rg_cache_stats(c, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(rg_cache_begin(c, "c@x", 7, 30, 10000, &ans),
	    RG_CACHE_MISS);
	rg_cache_finish(c, "c@x", RG_TEMPFAIL, "local", 7, 30);
	rg_cache_free(c);
}

static void
test_bstat(void **state)
{
	const struct rg_bstat	*s;

	(void)state;
	rg_bstat_note("t1", "sqlite", RG_FOUND, 500);
	rg_bstat_note("t1", "sqlite", RG_NOTFOUND, 3000);
	rg_bstat_note("t1", "sqlite", RG_TEMPFAIL, 20000000);
	s = rg_bstat_find("t1");
	assert_non_null(s);
	assert_int_equal(atomic_load(&s->found), 1);
	assert_int_equal(atomic_load(&s->notfound), 1);
	assert_int_equal(atomic_load(&s->failures), 1);
	assert_int_equal(atomic_load(&s->bucket[0]), 1);	/* <= 1 ms */
	assert_int_equal(atomic_load(&s->bucket[2]), 1);	/* <= 5 ms */
	assert_int_equal(atomic_load(&s->bucket[RG_BSTAT_NBUCKETS]), 1);
	assert_int_equal(atomic_load(&s->up), 0);
	rg_bstat_note("t1", "sqlite", RG_FOUND, 1);
	assert_int_equal(atomic_load(&s->up), 1);
	assert_null(rg_bstat_find("nope"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_json_str),
		cmocka_unit_test(test_conf),
		cmocka_unit_test(test_cache_ops),
		cmocka_unit_test(test_bstat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
