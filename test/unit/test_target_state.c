/* SPDX-License-Identifier: MIT */
/*
 * Per-target state (target_state.c) and rg_backend_targets (issue 14):
 * transitions and their since, the error text cut of the target's name
 * and escaped, a target that stays up storing nothing, SQLite's one
 * target (the file) following its lookups, and a surrogate answering
 * with its reason. Single-threaded; makes a file under /tmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "policy.h"
#include "target_state.h"

/* One step of a target's life and what a reader sees after it. */
struct step {
	const char	*what;		/* "up", "down" */
	const char	*why;		/* for down */
	int		 up;		/* expected */
	const char	*error;		/* expected */
	int		 changed;	/* does since move? */
};

static const struct step steps[] = {
	{ "down", "ldap://h/: bind failed: Can't contact LDAP server (-1)",
	    0, "bind failed: Can't contact LDAP server (-1)", 1 },
	{ "down", "deadline reached before ldap://h/", 0,
	    "deadline reached before ldap://h/", 0 },
	{ "down", "ldap://h/: evil\r\nforged line", 0,
	    "evil\\x0d\\x0aforged line", 0 },
	{ "up", NULL, 1, "", 1 },
	{ "up", NULL, 1, "", 0 },
	{ "down", "", 0, "failed", 1 },
};

static void
test_transitions(void **state)
{
	struct rg_tstate	t;
	struct rg_target_state	out;

	(void)state;
	rg_tstate_init(&t);
	rg_tstate_read(&t, "ldap://h/", &out);
	assert_int_equal(out.up, -1);
	assert_string_equal(out.target, "ldap://h/");
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const struct step	*s = &steps[i];

		atomic_store(&t.since, 1);	/* did the step store one? */
		if (strcmp(s->what, "up") == 0)
			rg_tstate_up(&t);
		else
			rg_tstate_down(&t, "ldap://h/", s->why);
		rg_tstate_read(&t, "ldap://h/", &out);
		assert_int_equal(out.up, s->up);
		assert_string_equal(out.error, s->error);
		if (s->changed)
			assert_true(out.since > 1000000000);
		else
			assert_int_equal(out.since, 1);
	}
	rg_tstate_destroy(&t);
}

static struct rg_runtime *
runtime(const char *db)
{
	struct rg_error		 err;
	struct rg_conf		*conf;
	struct rg_runtime	*rt;
	char			 text[1024];

	(void)snprintf(text, sizeof(text), "[milter]\nsocket = unix:/x\n"
	    "user =\n[policy]\ndomains = example.com\nbackends = local\n"
	    "[backend local]\ntype = sqlite\npath = %s\n[harvest]\n"
	    "state =\n", db);
	conf = rg_conf_load_string(text, "t.conf", &err);
	assert_non_null(conf);
	rt = rg_runtime_new(conf, &err);
	rg_conf_unref(conf);
	assert_non_null(rt);
	return rt;
}

static enum rg_result
lookup(struct rg_backend *b)
{
	struct rg_query	q = { "a@example.com", "a", "example.com",
			    0, NULL, 0 };
	struct rg_error	err;

	rg_error_clear(&err);
	return rg_backend_lookup(b, &q, &err);
}

static void
test_sqlite_file(void **state)
{
	char			 db[] = "/tmp/test_target_state.XXXXXX";
	struct rg_target_state	 ts[RG_TARGETS_MAX];
	struct rg_runtime	*rt;
	sqlite3			*h;
	int			 fd;

	(void)state;
	fd = mkstemp(db);
	assert_true(fd >= 0);
	close(fd);
	unlink(db);
	rt = runtime(db);
	assert_int_equal(rg_backend_targets(rt->backends[0], ts, 0), 0);
	assert_int_equal(rg_backend_targets(rt->backends[0], ts,
	    RG_TARGETS_MAX), 1);
	assert_string_equal(ts[0].target, db);
	assert_int_equal(ts[0].up, -1);		/* no file at open */

	assert_int_equal(lookup(rt->backends[0]), RG_TEMPFAIL);
	assert_int_equal(rg_backend_targets(rt->backends[0], ts, 1), 1);
	assert_int_equal(ts[0].up, 0);
	assert_true(ts[0].error[0] != '\0');
	assert_null(strstr(ts[0].error, db));	/* the name is said once */

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "CREATE TABLE recipients "
	    "(address TEXT PRIMARY KEY); INSERT INTO recipients VALUES "
	    "('a@example.com')", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	assert_int_equal(lookup(rt->backends[0]), RG_FOUND);
	assert_int_equal(rg_backend_targets(rt->backends[0], ts, 1), 1);
	assert_int_equal(ts[0].up, 1);
	assert_string_equal(ts[0].error, "");
	rg_runtime_unref(rt);
	unlink(db);
}

static void
test_surrogate(void **state)
{
	struct rg_target_state	 ts[2];
	struct rg_runtime	*rt = runtime("/nonexistent/x.db");
	struct rg_backend	*b = rt->backends[0];

	(void)state;
	/* the shape rg_backend_open gives a driver whose open said -2 */
	b->ops->close(b);
	b->priv = NULL;
	b->surrogate_reason = strdup("driver could not start\n");
	assert_non_null(b->surrogate_reason);
	assert_int_equal(rg_backend_targets(b, ts, 2), 1);
	assert_string_equal(ts[0].target, "local");
	assert_int_equal(ts[0].up, 0);
	assert_string_equal(ts[0].error, "driver could not start\\x0a");
	rg_runtime_unref(rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transitions),
		cmocka_unit_test(test_sqlite_file),
		cmocka_unit_test(test_surrogate),
	};

	rg_log_init("test_target_state", 1, RG_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
