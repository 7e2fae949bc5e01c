/* SPDX-License-Identifier: MIT */
/*
 * rg_pool (lib/pool.c): bounded acquisition, deadline expiry, open
 * failure, broken connections rebuilt (health hook and rg_pool_rebuild),
 * idle reaping, a preferred connection, and a waiter woken by a
 * release. The concurrent storm
 * is test_pool_storm.c (run under TSan too).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pool.h"
#include "rg_time.h"

/* A fake driver: connections are numbered; some may be marked broken. */
struct fake {
	int	next_id;
	int	fail_open;		/* open() fails while set */
	int	opened, closed, closed_broken;
	int	broken_id;		/* healthy() says no to this id */
};

struct fconn {
	int	id;
};

static void *
f_open(void *ctx, uint64_t deadline_ms, struct rg_error *err)
{
	struct fake	*f = ctx;
	struct fconn	*c;

	(void)deadline_ms;
	if (f->fail_open) {
		rg_error_set(err, "refused");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	c->id = ++f->next_id;
	f->opened++;
	return c;
}

static void
f_close(void *ctx, void *conn, bool graceful)
{
	struct fake	*f = ctx;

	f->closed++;
	if (!graceful)
		f->closed_broken++;
	free(conn);
}

static bool
f_healthy(void *ctx, void *conn)
{
	return ((struct fconn *)conn)->id != ((struct fake *)ctx)->broken_id;
}

static const struct rg_pool_hooks hooks = { f_open, f_close, f_healthy };

static struct rg_pool *
mk(struct fake *f, size_t max, uint64_t idle_ms)
{
	struct rg_error	 err;
	struct rg_pool	*p = rg_pool_new(&hooks, f, max, idle_ms, &err);

	assert_non_null(p);
	return p;
}

/* Up to max at once; then a bounded wait ending in RG_POOL_TIMEOUT. */
static void
test_bounded(void **state)
{
	/* deadline offsets (ms from now) for the acquisition beyond max */
	static const struct {
		size_t		max;
		uint64_t	wait_ms;	/* 0: no deadline, no wait */
	} cases[] = { { 1, 0 }, { 2, 30 }, { 3, 60 } };
	struct rg_pool_stats	 st;
	struct rg_error		 err;
	void			*c[4], *extra;
	bool			 reused;

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct fake	 f = { 0 };
		struct rg_pool	*p = mk(&f, cases[k].max, 0);
		uint64_t	 t0, dl;

		for (size_t i = 0; i < cases[k].max; i++) {
			assert_int_equal(rg_pool_acquire(p, 0, &c[i], &reused,
			    &err), RG_POOL_OK);
			assert_false(reused);
		}
		t0 = rg_now_ms();
		dl = cases[k].wait_ms ? t0 + cases[k].wait_ms : 0;
		assert_int_equal(rg_pool_acquire(p, dl, &extra, NULL, &err),
		    RG_POOL_TIMEOUT);
		assert_null(extra);
		assert_true(rg_now_ms() - t0 + 2 >= cases[k].wait_ms);
		assert_true(rg_now_ms() - t0 < cases[k].wait_ms + 1000);
		rg_pool_stats(p, &st);
		assert_int_equal(st.size, cases[k].max);
		assert_int_equal(st.timeouts, 1);
		/* A release makes one available again, reused. */
		rg_pool_release(p, c[0], RG_POOL_KEEP);
		assert_int_equal(rg_pool_acquire(p, 0, &extra, &reused, &err),
		    RG_POOL_OK);
		assert_ptr_equal(extra, c[0]);
		assert_true(reused);
		for (size_t i = 0; i < cases[k].max; i++)
			rg_pool_release(p, i == 0 ? extra : c[i],
			    RG_POOL_KEEP);
		assert_int_equal(f.opened, (int)cases[k].max);
		rg_pool_free(p);
		assert_int_equal(f.closed, (int)cases[k].max);
		assert_int_equal(f.closed_broken, 0);
	}
}

/* A failed open() frees its slot and says why. */
static void
test_open_fails(void **state)
{
	struct fake		 f = { .fail_open = 1 };
	struct rg_pool		*p = mk(&f, 1, 0);
	struct rg_pool_stats	 st;
	struct rg_error		 err;
	void			*c;

	(void)state;
	rg_error_clear(&err);
	assert_int_equal(rg_pool_acquire(p, rg_now_ms() + 1000, &c, NULL,
	    &err), RG_POOL_FAILED);
	assert_string_equal(err.msg, "refused");
	rg_pool_stats(p, &st);
	assert_int_equal(st.size, 0);
	f.fail_open = 0;
	assert_int_equal(rg_pool_acquire(p, 0, &c, NULL, &err), RG_POOL_OK);
	rg_pool_release(p, c, RG_POOL_KEEP);
	rg_pool_free(p);
}

/* How a connection comes back decides whether and how it is closed. */
static void
test_release_modes(void **state)
{
	static const struct {
		enum rg_pool_return	how;
		int			closed, broken, idle;
	} cases[] = {
		{ RG_POOL_KEEP, 0, 0, 1 },
		{ RG_POOL_CLOSE, 1, 0, 0 },
		{ RG_POOL_BROKEN, 1, 1, 0 },
	};
	struct rg_pool_stats	 st;
	struct rg_error		 err;
	void			*c;

	(void)state;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct fake	 f = { 0 };
		struct rg_pool	*p = mk(&f, 2, 0);

		assert_int_equal(rg_pool_acquire(p, 0, &c, NULL, &err),
		    RG_POOL_OK);
		rg_pool_release(p, c, cases[k].how);
		assert_int_equal(f.closed, cases[k].closed);
		assert_int_equal(f.closed_broken, cases[k].broken);
		rg_pool_stats(p, &st);
		assert_int_equal(st.idle, (size_t)cases[k].idle);
		assert_int_equal(st.size, (size_t)cases[k].idle);
		rg_pool_free(p);
	}
}

/* An idle connection the health hook rejects is rebuilt in its slot;
 * so is one the caller found broken (rg_pool_rebuild). */
static void
test_rebuild(void **state)
{
	struct fake		 f = { 0 };
	struct rg_pool		*p = mk(&f, 1, 0);
	struct rg_pool_stats	 st;
	struct rg_error		 err;
	struct fconn		*c;
	void			*v;
	bool			 reused;

	(void)state;
	assert_int_equal(rg_pool_acquire(p, 0, &v, NULL, &err), RG_POOL_OK);
	c = v;
	f.broken_id = c->id;
	rg_pool_release(p, c, RG_POOL_KEEP);
	assert_int_equal(rg_pool_acquire(p, 0, &v, &reused, &err),
	    RG_POOL_OK);
	c = v;
	assert_false(reused);
	assert_int_equal(c->id, 2);
	assert_int_equal(f.closed_broken, 1);
	/* The caller finds it broken mid-use: same slot, new connection. */
	c = rg_pool_rebuild(p, c, rg_now_ms() + 1000, &err);
	assert_non_null(c);
	assert_int_equal(c->id, 3);
	assert_int_equal(f.closed_broken, 2);
	rg_pool_stats(p, &st);
	assert_int_equal(st.size, 1);
	/* A rebuild that cannot open gives the slot back. */
	f.fail_open = 1;
	assert_null(rg_pool_rebuild(p, c, 0, &err));
	rg_pool_stats(p, &st);
	assert_int_equal(st.size, 0);
	rg_pool_free(p);
	assert_int_equal(f.opened, f.closed);
}

/* Connections idle for idle_ms are closed, oldest first, gracefully. */
static void
test_reap(void **state)
{
	struct fake		 f = { 0 };
	struct rg_pool		*p = mk(&f, 3, 40);
	struct rg_pool_stats	 st;
	struct rg_error		 err;
	void			*c[3];

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(rg_pool_acquire(p, 0, &c[i], NULL, &err),
		    RG_POOL_OK);
	rg_pool_release(p, c[0], RG_POOL_KEEP);
	rg_pool_release(p, c[1], RG_POOL_KEEP);
	assert_int_equal(rg_pool_reap(p), 0);
	rg_sleep_ms(60);
	rg_pool_release(p, c[2], RG_POOL_KEEP);	/* fresh */
	assert_int_equal(rg_pool_reap(p), 2);
	assert_int_equal(f.closed, 2);
	assert_int_equal(f.closed_broken, 0);
	rg_pool_stats(p, &st);
	assert_int_equal(st.size, 1);
	assert_int_equal(st.idle, 1);
	/* acquire reaps too, before it reuses */
	rg_sleep_ms(60);
	assert_int_equal(rg_pool_acquire(p, 0, &c[0], NULL, &err),
	    RG_POOL_OK);
	assert_int_equal(f.closed, 3);
	assert_int_equal(f.opened, 4);
	rg_pool_release(p, c[0], RG_POOL_CLOSE);
	rg_pool_free(p);
}

/* A preferred idle connection is handed out over the most recent one;
 * a preference that is not idle falls back to it. */
static void
test_prefer(void **state)
{
	struct fake	 f = { 0 };
	struct rg_pool	*p = mk(&f, 3, 0);
	struct rg_error	 err;
	void		*a, *b, *c;
	int		 other;

	(void)state;
	assert_int_equal(rg_pool_acquire(p, 0, &a, NULL, &err), RG_POOL_OK);
	assert_int_equal(rg_pool_acquire(p, 0, &b, NULL, &err), RG_POOL_OK);
	rg_pool_release(p, a, RG_POOL_KEEP);
	rg_pool_release(p, b, RG_POOL_KEEP);	/* b is the most recent */
	assert_int_equal(rg_pool_acquire_prefer(p, a, 0, &c, NULL, &err),
	    RG_POOL_OK);
	assert_ptr_equal(c, a);
	rg_pool_release(p, c, RG_POOL_KEEP);
	assert_int_equal(rg_pool_acquire_prefer(p, &other, 0, &c, NULL,
	    &err), RG_POOL_OK);
	assert_ptr_equal(c, a);		/* not there: the most recent */
	rg_pool_release(p, c, RG_POOL_KEEP);
	rg_pool_free(p);
	assert_int_equal(f.opened, 2);
}

struct holder {
	struct rg_pool	*p;
	void		*c;
};

static void *
release_later(void *arg)
{
	struct holder	*h = arg;

	rg_sleep_ms(30);
	rg_pool_release(h->p, h->c, RG_POOL_KEEP);
	return NULL;
}

/* A caller waiting for a full pool gets the connection released. */
static void
test_wait_woken(void **state)
{
	struct fake	 f = { 0 };
	struct holder	 h = { mk(&f, 1, 0), NULL };
	struct rg_error	 err;
	pthread_t	 t;
	void		*c;
	uint64_t	 t0;

	(void)state;
	assert_int_equal(rg_pool_acquire(h.p, 0, &h.c, NULL, &err),
	    RG_POOL_OK);
	assert_int_equal(pthread_create(&t, NULL, release_later, &h), 0);
	t0 = rg_now_ms();
	assert_int_equal(rg_pool_acquire(h.p, t0 + 5000, &c, NULL, &err),
	    RG_POOL_OK);
	assert_ptr_equal(c, h.c);
	assert_true(rg_now_ms() - t0 < 2000);
	pthread_join(t, NULL);
	rg_pool_release(h.p, c, RG_POOL_KEEP);
	rg_pool_free(h.p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_open_fails),
		cmocka_unit_test(test_release_modes),
		cmocka_unit_test(test_rebuild),
		cmocka_unit_test(test_reap),
		cmocka_unit_test(test_prefer),
		cmocka_unit_test(test_wait_woken),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
