/* SPDX-License-Identifier: MIT */
/*
 * The dispatch helpers of backend.c on a surrogate, and what SIGUSR2
 * (rg_engine_log_counters) does with one: issue 12 point 8. The daemon
 * called the driver's stats through b->ops on a surrogate, whose priv is
 * the surrogate's and not the driver's: a crash or garbage in the log.
 *
 * A surrogate is what rg_backend_open makes of a driver whose open
 * returns -2; today only an out-of-memory call-ahead open does, which a
 * test cannot provoke, so the test builds the same shape by hand.
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

#include "backend.h"
#include "log.h"
#include "policy.h"

static const char conf_text[] =
    "[milter]\n"
    "socket = unix:/nonexistent/rcptgate.sock\n"
    "user =\n"
    "[policy]\n"
    "domains = example.com\n"
    "backends = dead, alive\n"
    "[backend dead]\n"
    "type = sqlite\n"
    "path = /nonexistent/dead.db\n"
    "[backend alive]\n"
    "type = sqlite\n"
    "path = /nonexistent/alive.db\n"
    "[harvest]\n"
    "state =\n";

/* Turn b (an opened sqlite backend) into a surrogate, as rg_backend_open
 * does when a driver's open returns -2: the driver's ops stay, its priv
 * goes (NULL here, so a driver call on it cannot go unnoticed). */
static void
make_surrogate(struct rg_backend *b, const char *reason)
{
	b->ops->close(b);
	b->priv = NULL;
	b->surrogate_reason = strdup(reason);
	assert_non_null(b->surrogate_reason);
}

/* Run rg_engine_log_counters with stderr into a file; return its text
 * (the caller frees it). */
static char *
log_counters(struct rg_engine *e)
{
	char	 path[] = "/tmp/test_backend.XXXXXX", *text;
	int	 fd, saved;
	FILE	*f;
	long	 n;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	rg_engine_log_counters(e);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	close(fd);
	f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(path);
	return text;
}

static void
test_sigusr2_on_surrogate(void **state)
{
	struct rg_error		 err, warn;
	struct rg_conf		*conf;
	struct rg_runtime	*rt;
	struct rg_engine	*e;
	char			 buf[64], *text;

	(void)state;
	rg_log_init("test_backend", 1, RG_LOG_INFO);
	conf = rg_conf_load_string(conf_text, "t.conf", &err);
	assert_non_null(conf);
	rt = rg_runtime_new(conf, &err);
	rg_conf_unref(conf);
	assert_non_null(rt);
	assert_int_equal(rt->nbackends, 2);
	make_surrogate(rt->backends[0], "driver could not start");

	/* The helpers never reach the driver for a surrogate. */
	rg_backend_stats(rt->backends[0], buf, sizeof(buf));
	assert_string_equal(buf, "unavailable");
	assert_string_equal(rg_backend_type(rt->backends[0]), "sqlite");
	rg_error_clear(&err);
	rg_error_clear(&warn);
	assert_int_equal(rg_runtime_check(rt, true, &err, &warn), -1);
	assert_non_null(strstr(err.msg, "driver could not start"));

	/* SIGUSR2: one sane line per backend, the surrogate's says so. */
	e = rg_engine_new(rt, RG_ENGINE_NO_HARVEST, &err);
	assert_non_null(e);
	text = log_counters(e);
	assert_non_null(strstr(text, "counters: accepted=0 "));
	assert_non_null(strstr(text,
	    "backend dead: found=0 notfound=0 failed=0; unavailable\n"));
	assert_non_null(strstr(text, "backend alive: "));
	assert_null(strstr(text, "backend dead: unavailable "));
	free(text);
	rg_engine_free(e);
	rg_runtime_unref(rt);
}

static void
test_stats_edge_cases(void **state)
{
	struct rg_backend	b;
	char			buf[8] = "junk";

	(void)state;
	memset(&b, 0, sizeof(b));
	b.ops = &rg_backend_sqlite_ops;
	b.surrogate_reason = (char *)"x";
	rg_backend_stats(&b, buf, 0);		/* no room: nothing written */
	assert_string_equal(buf, "junk");
	rg_backend_stats(&b, buf, 4);		/* truncated, terminated */
	assert_string_equal(buf, "una");
	b.ops = NULL;
	assert_string_equal(rg_backend_type(&b), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigusr2_on_surrogate),
		cmocka_unit_test(test_stats_edge_cases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
