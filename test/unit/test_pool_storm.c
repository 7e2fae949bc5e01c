/* SPDX-License-Identifier: MIT */
/*
 * A concurrent storm against rg_pool, meant for ThreadSanitizer as well
 * as the normal build: 8 threads acquire and release connections of a
 * pool of 3 (keep, close, broken, rebuild, with an idle timeout so the
 * reaper path runs too) for a bounded number of operations.
 *
 * Invariants: never more than max connections in use or open at once;
 * no connection handed to two threads; every acquisition with a
 * generous deadline succeeds; at the end every opened connection is
 * closed exactly once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pool.h"
#include "rg_time.h"

#define NTHREADS	8
#define MAX		3
#define OPS		20000	/* per thread */

struct fake {
	atomic_int	open_now, open_peak, opened, closed;
	atomic_int	in_use, in_use_peak, doubled, failed;
	struct rg_pool	*p;
};

struct fconn {
	atomic_int	users;
};

static void
peak(atomic_int *peak, int v)
{
	int	old = atomic_load(peak);

	while (v > old && !atomic_compare_exchange_weak(peak, &old, v))
		;
}

static void *
f_open(void *ctx, uint64_t deadline_ms, struct rg_error *err)
{
	struct fake	*f = ctx;
	struct fconn	*c;

	(void)deadline_ms;
	(void)err;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	atomic_fetch_add(&f->opened, 1);
	peak(&f->open_peak, atomic_fetch_add(&f->open_now, 1) + 1);
	return c;
}

static void
f_close(void *ctx, void *conn, bool graceful)
{
	struct fake	*f = ctx;

	(void)graceful;
	atomic_fetch_sub(&f->open_now, 1);
	atomic_fetch_add(&f->closed, 1);
	free(conn);
}

static void *
worker(void *arg)
{
	struct fake	*f = arg;
	struct rg_error	 err;
	struct fconn	*c;
	void		*v;
	uint64_t	 seed = (uint64_t)(uintptr_t)&err;

	for (int i = 0; i < OPS; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		if (rg_pool_acquire(f->p, rg_now_ms() + 10000, &v, NULL,
		    &err) != RG_POOL_OK) {
			atomic_fetch_add(&f->failed, 1);
			continue;
		}
		c = v;
		peak(&f->in_use_peak, atomic_fetch_add(&f->in_use, 1) + 1);
		if (atomic_fetch_add(&c->users, 1) != 0)
			atomic_fetch_add(&f->doubled, 1);
		if ((seed >> 33) % 50 == 0) {
			atomic_fetch_sub(&c->users, 1);
			c = rg_pool_rebuild(f->p, c, rg_now_ms() + 10000,
			    &err);
			if (c == NULL) {
				atomic_fetch_add(&f->failed, 1);
				atomic_fetch_sub(&f->in_use, 1);
				continue;
			}
			atomic_fetch_add(&c->users, 1);
		}
		atomic_fetch_sub(&c->users, 1);
		atomic_fetch_sub(&f->in_use, 1);
		switch ((seed >> 40) % 40) {
		case 0:
			rg_pool_release(f->p, c, RG_POOL_CLOSE);
			break;
		case 1:
			rg_pool_release(f->p, c, RG_POOL_BROKEN);
			break;
		default:
			rg_pool_release(f->p, c, RG_POOL_KEEP);
		}
		if ((seed >> 20) % 1000 == 0)
			rg_pool_reap(f->p);
	}
	return NULL;
}

static void
test_pool_concurrency(void **state)
{
	static const struct rg_pool_hooks hooks = { f_open, f_close, NULL };
	struct fake		 f = { 0 };
	struct rg_pool_stats	 st;
	struct rg_error		 err;
	pthread_t		 t[NTHREADS];

	(void)state;
	/* 1 ms idle timeout: the reaping path races with the rest */
	f.p = rg_pool_new(&hooks, &f, MAX, 1, &err);
	assert_non_null(f.p);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, &f), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	rg_pool_stats(f.p, &st);
	assert_true(st.peak <= MAX);
	assert_int_equal(atomic_load(&f.failed), 0);
	assert_int_equal(atomic_load(&f.doubled), 0);
	assert_true(atomic_load(&f.in_use_peak) <= MAX);
	assert_true(atomic_load(&f.open_peak) <= MAX);
	rg_pool_free(f.p);
	assert_int_equal(atomic_load(&f.opened), atomic_load(&f.closed));
	assert_int_equal(atomic_load(&f.open_now), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_concurrency),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
