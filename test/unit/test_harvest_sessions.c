/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for lib/harvest/harvest_sessions.c: a session's state comes
 * back by its key, is forgotten after idle_ms, and the table stays
 * within its bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harvest_sessions.h"

static void
test_get_put(void **state)
{
	struct rg_hv_sessions		*t = rg_hv_sessions_new(1000, 5000);
	struct rg_harvest_session	 s;

	(void)state;
	assert_non_null(t);
	rg_hv_sessions_get(t, "a", &s, 100);
	assert_int_equal(s.unknown, 0);
	s.unknown = 2;
	s.seen[0] = 42;
	s.nseen = 1;
	rg_hv_sessions_put(t, "a", &s, 100);
	memset(&s, 0, sizeof(s));
	rg_hv_sessions_get(t, "a", &s, 200);
	assert_int_equal(s.unknown, 2);
	assert_int_equal(s.seen[0], 42);
	rg_hv_sessions_get(t, "b", &s, 200);
	assert_int_equal(s.unknown, 0);
	/* updated in place, not added */
	s.unknown = 3;
	rg_hv_sessions_put(t, "a", &s, 300);
	assert_int_equal(rg_hv_sessions_count(t), 1);
	rg_hv_sessions_get(t, "a", &s, 300);
	assert_int_equal(s.unknown, 3);
	rg_hv_sessions_free(t);
}

static void
test_idle(void **state)
{
	struct rg_hv_sessions		*t = rg_hv_sessions_new(1000, 5000);
	struct rg_harvest_session	 s = { .unknown = 1 };

	(void)state;
	rg_hv_sessions_put(t, "a", &s, 1000);
	rg_hv_sessions_get(t, "a", &s, 5999);
	assert_int_equal(s.unknown, 1);
	rg_hv_sessions_get(t, "a", &s, 6000);
	assert_int_equal(s.unknown, 0);
	assert_int_equal(rg_hv_sessions_count(t), 0);
	rg_hv_sessions_free(t);
}

static void
test_bound(void **state)
{
	struct rg_hv_sessions		*t = rg_hv_sessions_new(160, 1000000);
	struct rg_harvest_session	 s = { .unknown = 1 };
	char				 key[32];

	(void)state;
	for (int i = 0; i < 5000; i++) {
		(void)snprintf(key, sizeof(key), "k%d", i);
		rg_hv_sessions_put(t, key, &s, (uint64_t)i);
	}
	assert_true(rg_hv_sessions_count(t) <= 160);
	/* the newest is kept */
	rg_hv_sessions_get(t, "k4999", &s, 5000);
	assert_int_equal(s.unknown, 1);
	rg_hv_sessions_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_put),
		cmocka_unit_test(test_idle),
		cmocka_unit_test(test_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
