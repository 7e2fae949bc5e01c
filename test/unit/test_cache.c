/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the decision cache (lib/cache.c): hits and misses, TTL
 * boundaries, generations and epochs, outage-mode stale entries, LRU
 * eviction and capacity, the disabled cache, long keys, and single-flight
 * waits with real threads. TTLs use explicit now_ms values, never sleeps;
 * only the wait tests use the real clock, bounded by short deadlines.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache.h"
#include "rg_time.h"

#define POS	1000
#define NEG	100
#define STALE	5000
#define FAR	(rg_now_ms() + 10000)	/* a deadline never reached */

static struct rg_cache *
mk(uint64_t size, uint64_t pos, uint64_t neg, uint64_t stale)
{
	struct rg_cache_conf	conf = { size, pos, neg, stale };
	struct rg_cache		*c = rg_cache_new(&conf);

	assert_non_null(c);
	return c;
}

/* Store result for key through a real MISS + finish. */
static void
put(struct rg_cache *c, const char *key, enum rg_result r, uint64_t gen,
    uint64_t now)
{
	struct rg_cache_answer	a;
	enum rg_cache_status	st;

	/* on a HIT, finish without a flight still replaces the entry */
	st = rg_cache_begin(c, key, gen, now, FAR, &a);
	assert_int_not_equal(st, RG_CACHE_TIMEOUT);
	rg_cache_finish(c, key, r, "b1", gen, now);
}

/* Begin on key; on a MISS end the flight with a tempfail (stores nothing). */
static enum rg_cache_status
probe(struct rg_cache *c, const char *key, uint64_t gen, uint64_t now,
    struct rg_cache_answer *a)
{
	enum rg_cache_status	st;

	st = rg_cache_begin(c, key, gen, now, FAR, a);
	if (st == RG_CACHE_MISS)
		rg_cache_finish(c, key, RG_TEMPFAIL, "b1", gen, now);
	return st;
}

static uint64_t
entries(struct rg_cache *c)
{
	struct rg_cache_stats	s;

	rg_cache_stats(c, &s);
	return s.entries;
}

static void
test_hit_miss(void **state)
{
	struct rg_cache		*c = mk(100, POS, NEG, STALE);
	struct rg_cache_answer	 a;
	struct rg_cache_stats	 s;

	assert_int_equal(rg_cache_begin(c, "a@x", 1, 10, FAR, &a),
	    RG_CACHE_MISS);
	assert_false(a.stale_found);
	rg_cache_finish(c, "a@x", RG_FOUND, "corp", 1, 10);
	assert_int_equal(rg_cache_begin(c, "a@x", 1, 20, FAR, &a),
	    RG_CACHE_HIT);
	assert_int_equal(a.result, RG_FOUND);
	assert_string_equal(a.backend, "corp");
	assert_int_equal(a.generation, 1);
	assert_false(a.shared);

	assert_int_equal(rg_cache_begin(c, "b@x", 1, 10, FAR, &a),
	    RG_CACHE_MISS);
	rg_cache_finish(c, "b@x", RG_NOTFOUND, "tbl", 1, 10);
	assert_int_equal(rg_cache_begin(c, "b@x", 1, 20, FAR, &a),
	    RG_CACHE_HIT);
	assert_int_equal(a.result, RG_NOTFOUND);
	assert_string_equal(a.backend, "tbl");

	/* keys are exact: case and length matter */
	assert_int_equal(probe(c, "A@x", 1, 20, &a), RG_CACHE_MISS);
	assert_int_equal(probe(c, "a@", 1, 20, &a), RG_CACHE_MISS);

	rg_cache_stats(c, &s);
	assert_int_equal(s.hits, 2);
	assert_int_equal(s.misses, 4);
	assert_int_equal(s.entries, 2);
	assert_int_equal(s.evictions, 0);
	rg_cache_free(c);
	rg_cache_free(NULL);
}

/* One stored answer, one later begin: what does it see? */
static const struct ttl_case {
	const char	*name;
	enum rg_result	 stored;
	uint64_t	 gen_stored, gen_query;
	uint64_t	 at, query_at;
	enum rg_cache_status want;
	bool		 want_stale;
} ttl_cases[] = {
	{ "pos fresh", RG_FOUND, 1, 1, 1000, 1000, RG_CACHE_HIT, false },
	{ "pos last ms", RG_FOUND, 1, 1, 1000, 1999, RG_CACHE_HIT, false },
	{ "pos expired", RG_FOUND, 1, 1, 1000, 2000, RG_CACHE_MISS, true },
	{ "pos stale end", RG_FOUND, 1, 1, 1000, 5999, RG_CACHE_MISS, true },
	{ "pos too old", RG_FOUND, 1, 1, 1000, 6000, RG_CACHE_MISS, false },
	{ "pos other gen", RG_FOUND, 1, 2, 1000, 1500, RG_CACHE_HIT, false },
	{ "pos clock back", RG_FOUND, 1, 1, 1000, 500, RG_CACHE_HIT, false },
	{ "neg fresh", RG_NOTFOUND, 7, 7, 1000, 1000, RG_CACHE_HIT, false },
	{ "neg last ms", RG_NOTFOUND, 7, 7, 1000, 1099, RG_CACHE_HIT, false },
	{ "neg expired", RG_NOTFOUND, 7, 7, 1000, 1100, RG_CACHE_MISS, false },
	{ "neg other gen", RG_NOTFOUND, 7, 8, 1000, 1001, RG_CACHE_MISS,
	    false },
	{ "neg older gen", RG_NOTFOUND, 7, 6, 1000, 1001, RG_CACHE_MISS,
	    false },
};

static void
test_ttl(void **state)
{
	size_t	i;

	for (i = 0; i < sizeof(ttl_cases) / sizeof(ttl_cases[0]); i++) {
		const struct ttl_case	*t = &ttl_cases[i];
		struct rg_cache		*c = mk(100, POS, NEG, STALE);
		struct rg_cache_answer	 a;
		enum rg_cache_status	 st;

		print_message("case %s\n", t->name);
		put(c, "k@x", t->stored, t->gen_stored, t->at);
		st = probe(c, "k@x", t->gen_query, t->query_at, &a);
		assert_int_equal(st, t->want);
		assert_int_equal(a.stale_found, t->want_stale);
		if (st == RG_CACHE_HIT)
			assert_int_equal(a.result, t->stored);
		if (t->want_stale)
			assert_string_equal(a.stale_backend, "b1");
		/* a stale entry is kept, a dead one removed */
		if (st == RG_CACHE_MISS)
			assert_int_equal(entries(c), t->want_stale ? 1 : 0);
		rg_cache_free(c);
	}
}

static void
test_drop_negatives(void **state)
{
	struct rg_cache		*c = mk(100, POS, NEG, STALE);
	struct rg_cache_answer	 a;

	put(c, "neg@x", RG_NOTFOUND, 1, 0);
	put(c, "pos@x", RG_FOUND, 1, 0);
	rg_cache_drop_negatives(c);
	assert_int_equal(probe(c, "neg@x", 1, 1, &a), RG_CACHE_MISS);
	assert_int_equal(probe(c, "pos@x", 1, 1, &a), RG_CACHE_HIT);
	assert_int_equal(a.result, RG_FOUND);

	/* stored after the drop: lives again */
	put(c, "neg@x", RG_NOTFOUND, 1, 2);
	assert_int_equal(probe(c, "neg@x", 1, 3, &a), RG_CACHE_HIT);

	/* a lookup that began before a drop stores a dead negative */
	assert_int_equal(rg_cache_begin(c, "fly@x", 1, 10, FAR, &a),
	    RG_CACHE_MISS);
	rg_cache_drop_negatives(c);
	rg_cache_finish(c, "fly@x", RG_NOTFOUND, "b1", 1, 10);
	assert_int_equal(probe(c, "fly@x", 1, 11, &a), RG_CACHE_MISS);
	/* ... but a positive one is fine */
	assert_int_equal(rg_cache_begin(c, "fly2@x", 1, 10, FAR, &a),
	    RG_CACHE_MISS);
	rg_cache_drop_negatives(c);
	rg_cache_finish(c, "fly2@x", RG_FOUND, "b1", 1, 10);
	assert_int_equal(probe(c, "fly2@x", 1, 11, &a), RG_CACHE_HIT);
	rg_cache_free(c);
}

/* A failure after a stored answer: what is left for the next begin? */
static const struct fail_case {
	const char	*name;
	bool		 have_stale;	/* a stale positive exists first */
	enum rg_result	 fail;
	bool		 has_then;
	enum rg_result	 then;		/* a later real answer */
	enum rg_cache_status want;
	bool		 want_stale;
} fail_cases[] = {
	{ "tempfail empty", false, RG_TEMPFAIL, false, 0, RG_CACHE_MISS,
	    false },
	{ "config empty", false, RG_CONFIG, false, 0, RG_CACHE_MISS, false },
	{ "tempfail keeps stale", true, RG_TEMPFAIL, false, 0, RG_CACHE_MISS,
	    true },
	{ "config keeps stale", true, RG_CONFIG, false, 0, RG_CACHE_MISS,
	    true },
	{ "notfound replaces stale", true, RG_TEMPFAIL, true, RG_NOTFOUND,
	    RG_CACHE_HIT, false },
	{ "found refreshes stale", true, RG_TEMPFAIL, true, RG_FOUND,
	    RG_CACHE_HIT, false },
};

static void
test_failures_not_stored(void **state)
{
	size_t	i;

	for (i = 0; i < sizeof(fail_cases) / sizeof(fail_cases[0]); i++) {
		const struct fail_case	*t = &fail_cases[i];
		struct rg_cache		*c = mk(100, POS, NEG, STALE);
		struct rg_cache_answer	 a;
		uint64_t		 now = 0;

		print_message("case %s\n", t->name);
		if (t->have_stale) {
			put(c, "k@x", RG_FOUND, 1, 0);
			now = POS + 10;
		}
		assert_int_equal(rg_cache_begin(c, "k@x", 1, now, FAR, &a),
		    RG_CACHE_MISS);
		assert_int_equal(a.stale_found, t->have_stale);
		rg_cache_finish(c, "k@x", t->fail, "b1", 1, now);
		if (t->has_then) {
			assert_int_equal(rg_cache_begin(c, "k@x", 1, now, FAR,
			    &a), RG_CACHE_MISS);
			rg_cache_finish(c, "k@x", t->then, "b2", 1, now);
		}
		assert_int_equal(probe(c, "k@x", 1, now + 1, &a), t->want);
		assert_int_equal(a.stale_found, t->want_stale);
		if (t->want == RG_CACHE_HIT) {
			assert_int_equal(a.result, t->then);
			assert_string_equal(a.backend, "b2");
		}
		assert_int_equal(entries(c),
		    t->want_stale || t->want == RG_CACHE_HIT ? 1 : 0);
		rg_cache_free(c);
	}
}

static void
test_no_stale_ttl(void **state)
{
	struct rg_cache		*c = mk(100, POS, NEG, 0);
	struct rg_cache_answer	 a;

	put(c, "k@x", RG_FOUND, 1, 0);
	assert_int_equal(probe(c, "k@x", 1, POS, &a), RG_CACHE_MISS);
	assert_false(a.stale_found);
	assert_int_equal(entries(c), 0);
	rg_cache_free(c);
}

static void
test_lru_order(void **state)
{
	struct rg_cache		*c = mk(3, POS, NEG, STALE);
	struct rg_cache_answer	 a;
	struct rg_cache_stats	 s;

	put(c, "a", RG_FOUND, 1, 0);
	put(c, "b", RG_FOUND, 1, 1);
	put(c, "c", RG_NOTFOUND, 1, 2);
	/* touching a protects it: b is now least recently used */
	assert_int_equal(probe(c, "a", 1, 3, &a), RG_CACHE_HIT);
	put(c, "d", RG_FOUND, 1, 4);
	rg_cache_stats(c, &s);
	assert_int_equal(s.evictions, 1);
	assert_int_equal(s.entries, 3);
	assert_int_equal(probe(c, "b", 1, 5, &a), RG_CACHE_MISS);
	/* order now c (oldest), a, d */
	put(c, "e", RG_FOUND, 1, 6);
	assert_int_equal(probe(c, "c", 1, 7, &a), RG_CACHE_MISS);
	assert_int_equal(probe(c, "a", 1, 7, &a), RG_CACHE_HIT);
	assert_int_equal(probe(c, "d", 1, 7, &a), RG_CACHE_HIT);
	assert_int_equal(probe(c, "e", 1, 7, &a), RG_CACHE_HIT);
	rg_cache_stats(c, &s);
	assert_int_equal(s.evictions, 2);
	assert_int_equal(s.entries, 3);
	rg_cache_free(c);
}

static const uint64_t cap_sizes[] = { 1, 3, 17, 100, 1000, 5000 };

static void
test_capacity_bound(void **state)
{
	size_t	i;
	char	key[64];

	for (i = 0; i < sizeof(cap_sizes) / sizeof(cap_sizes[0]); i++) {
		uint64_t		 size = cap_sizes[i], n;
		struct rg_cache		*c = mk(size, POS, NEG, STALE);
		struct rg_cache_stats	 s;

		print_message("size %llu\n", (unsigned long long)size);
		for (n = 0; n < size * 10; n++) {
			snprintf(key, sizeof(key), "user%llu@example.org",
			    (unsigned long long)n);
			put(c, key, n % 3 ? RG_FOUND : RG_NOTFOUND, 1, n);
			assert_true(entries(c) <= size);
		}
		rg_cache_stats(c, &s);
		assert_true(s.entries <= size);
		/* keyed hashing spreads keys: shards fill up */
		assert_true(s.entries >= size - size / 10);
		assert_int_equal(s.evictions, size * 10 - s.entries);
		rg_cache_free(c);
	}
}

static void
test_configure(void **state)
{
	struct rg_cache_conf	 conf = { 1000, POS, NEG, STALE };
	struct rg_cache		*c = mk(1000, POS, NEG, STALE);
	struct rg_cache_answer	 a;
	char			 key[64];
	int			 n;

	for (n = 0; n < 1000; n++) {
		snprintf(key, sizeof(key), "u%d@x", n);
		put(c, key, RG_FOUND, 1, 0);
	}
	assert_true(entries(c) > 900);
	/* shrink (to no fewer entries than shards: see cache.c) */
	conf.size = 100;
	rg_cache_configure(c, &conf);
	assert_true(entries(c) <= 100);
	assert_true(entries(c) >= 90);

	/* TTL change applies to entries already stored */
	put(c, "t@x", RG_FOUND, 1, 0);
	assert_int_equal(probe(c, "t@x", 1, 500, &a), RG_CACHE_HIT);
	conf.positive_ttl_ms = 400;
	rg_cache_configure(c, &conf);
	assert_int_equal(probe(c, "t@x", 1, 500, &a), RG_CACHE_MISS);
	assert_true(a.stale_found);

	/* disable: empties; enable again: works */
	conf.size = 0;
	rg_cache_configure(c, &conf);
	assert_int_equal(entries(c), 0);
	conf.size = 50;
	rg_cache_configure(c, &conf);
	put(c, "t@x", RG_FOUND, 1, 0);
	assert_int_equal(probe(c, "t@x", 1, 1, &a), RG_CACHE_HIT);
	rg_cache_free(c);
}

static void
test_disabled(void **state)
{
	struct rg_cache		*c = mk(0, POS, NEG, STALE);
	struct rg_cache_answer	 a, b;
	struct rg_cache_stats	 s;

	assert_int_equal(rg_cache_begin(c, "k@x", 1, 0, FAR, &a),
	    RG_CACHE_MISS);
	/* no in-flight marker: a second begin does not wait */
	assert_int_equal(rg_cache_begin(c, "k@x", 1, 0, rg_now_ms(), &b),
	    RG_CACHE_MISS);
	rg_cache_finish(c, "k@x", RG_FOUND, "b1", 1, 0);
	rg_cache_finish(c, "k@x", RG_FOUND, "b1", 1, 0);
	assert_int_equal(probe(c, "k@x", 1, 1, &a), RG_CACHE_MISS);
	rg_cache_stats(c, &s);
	assert_int_equal(s.entries, 0);
	assert_int_equal(s.misses, 3);
	rg_cache_free(c);
}

static void
test_long_keys(void **state)
{
	struct rg_cache		*c = mk(100, POS, NEG, STALE);
	struct rg_cache_answer	 a;
	char			 k260[RG_CACHE_KEY_MAX + 1];
	char			 k261[RG_CACHE_KEY_MAX + 2];
	char			 k5000[5000];

	memset(k260, 'a', sizeof(k260) - 1);
	k260[sizeof(k260) - 1] = '\0';
	memset(k261, 'a', sizeof(k261) - 1);
	k261[sizeof(k261) - 1] = '\0';
	memset(k5000, 'b', sizeof(k5000) - 1);
	k5000[sizeof(k5000) - 1] = '\0';

	put(c, k260, RG_NOTFOUND, 1, 0);
	assert_int_equal(probe(c, k260, 1, 1, &a), RG_CACHE_HIT);

	/* too long: MISS, no marker (no wait), finish harmless */
	assert_int_equal(rg_cache_begin(c, k261, 1, 0, FAR, &a),
	    RG_CACHE_MISS);
	assert_int_equal(rg_cache_begin(c, k261, 1, 0, rg_now_ms(), &a),
	    RG_CACHE_MISS);
	rg_cache_finish(c, k261, RG_NOTFOUND, "b1", 1, 0);
	rg_cache_finish(c, k5000, RG_FOUND, "b1", 1, 0);
	assert_int_equal(probe(c, k261, 1, 1, &a), RG_CACHE_MISS);
	assert_int_equal(probe(c, k5000, 1, 1, &a), RG_CACHE_MISS);
	/* the 261-byte key did not clobber its 260-byte prefix */
	assert_int_equal(probe(c, k260, 1, 1, &a), RG_CACHE_HIT);
	assert_int_equal(a.result, RG_NOTFOUND);
	assert_int_equal(entries(c), 1);

	/* empty key: not cacheable either */
	assert_int_equal(rg_cache_begin(c, "", 1, 0, FAR, &a), RG_CACHE_MISS);
	rg_cache_finish(c, "", RG_FOUND, "b1", 1, 0);
	assert_int_equal(entries(c), 1);
	rg_cache_free(c);
}

static void
test_backend_name_too_long(void **state)
{
	struct rg_cache		*c = mk(100, POS, NEG, STALE);
	struct rg_cache_answer	 a;
	char			 name[RG_NAME_MAX + 1];

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(rg_cache_begin(c, "k@x", 1, 0, FAR, &a),
	    RG_CACHE_MISS);
	rg_cache_finish(c, "k@x", RG_FOUND, name, 1, 0);
	/* never stored truncated */
	assert_int_equal(probe(c, "k@x", 1, 1, &a), RG_CACHE_MISS);
	name[RG_NAME_MAX - 1] = '\0';
	put(c, "k@x", RG_FOUND, 1, 0);
	rg_cache_finish(c, "k@x", RG_FOUND, name, 1, 0);
	assert_int_equal(probe(c, "k@x", 1, 1, &a), RG_CACHE_HIT);
	assert_string_equal(a.backend, name);
	rg_cache_free(c);
}

/* Single flight with real threads. */

#define NTHREADS 8

struct sf {
	struct rg_cache		*c;
	pthread_barrier_t	 bar;
	enum rg_result		 result;
	uint64_t		 deadline;
	enum rg_cache_status	 st[NTHREADS];
	struct rg_cache_answer	 ans[NTHREADS];
	uint64_t		 took_ms[NTHREADS];
};

struct sf_arg {
	struct sf	*sf;
	int		 i;
};

static void *
sf_thread(void *p)
{
	struct sf_arg		*arg = p;
	struct sf		*sf = arg->sf;
	struct rg_cache_stats	 s;
	uint64_t		 t0, limit;

	pthread_barrier_wait(&sf->bar);
	t0 = rg_now_ms();
	sf->st[arg->i] = rg_cache_begin(sf->c, "hot@x", 1, 100, sf->deadline,
	    &sf->ans[arg->i]);
	if (sf->st[arg->i] == RG_CACHE_MISS) {
		/* the lookup: wait (bounded) until everyone else waits */
		limit = rg_now_ms() + 3000;
		do {
			rg_cache_stats(sf->c, &s);
			if (s.waits >= NTHREADS - 1)
				break;
			rg_sleep_ms(1);
		} while (rg_now_ms() < limit);
		rg_cache_finish(sf->c, "hot@x", sf->result, "slow", 1, 100);
	}
	sf->took_ms[arg->i] = rg_now_ms() - t0;
	return NULL;
}

static const struct {
	enum rg_result	 r;
	const char	*name;
} sf_results[] = {
	{ RG_FOUND, "found" },
	{ RG_NOTFOUND, "notfound" },
	{ RG_TEMPFAIL, "tempfail" },
	{ RG_CONFIG, "config" },
};

static void
test_single_flight(void **state)
{
	size_t	r;
	int	i;

	for (r = 0; r < sizeof(sf_results) / sizeof(sf_results[0]); r++) {
		struct sf		 sf;
		struct sf_arg		 args[NTHREADS];
		pthread_t		 th[NTHREADS];
		struct rg_cache_stats	 s;
		struct rg_cache_answer	 a;
		int			 misses = 0, shared = 0;
		bool			 stored;

		memset(&sf, 0, sizeof(sf));
		sf.c = mk(100, POS, NEG, STALE);
		sf.result = sf_results[r].r;
		sf.deadline = rg_now_ms() + 5000;
		print_message("result %s\n", sf_results[r].name);
		pthread_barrier_init(&sf.bar, NULL, NTHREADS);
		for (i = 0; i < NTHREADS; i++) {
			args[i].sf = &sf;
			args[i].i = i;
			assert_int_equal(pthread_create(&th[i], NULL,
			    sf_thread, &args[i]), 0);
		}
		for (i = 0; i < NTHREADS; i++)
			pthread_join(th[i], NULL);
		for (i = 0; i < NTHREADS; i++) {
			if (sf.st[i] == RG_CACHE_MISS) {
				misses++;
				continue;
			}
			assert_int_equal(sf.st[i], RG_CACHE_HIT);
			assert_true(sf.ans[i].shared);
			assert_int_equal(sf.ans[i].result, sf.result);
			assert_string_equal(sf.ans[i].backend, "slow");
			assert_true(sf.took_ms[i] < 4000);
			shared++;
		}
		assert_int_equal(misses, 1);
		assert_int_equal(shared, NTHREADS - 1);
		rg_cache_stats(sf.c, &s);
		assert_int_equal(s.waits, NTHREADS - 1);
		assert_int_equal(s.misses, 1);
		/* found/notfound stored, failures not */
		stored = sf.result == RG_FOUND || sf.result == RG_NOTFOUND;
		assert_int_equal(probe(sf.c, "hot@x", 1, 101, &a),
		    stored ? RG_CACHE_HIT : RG_CACHE_MISS);
		pthread_barrier_destroy(&sf.bar);
		rg_cache_free(sf.c);
	}
}

struct waiter {
	struct rg_cache		*c;
	uint64_t		 deadline;
	uint64_t		 now;
	enum rg_cache_status	 st;
	struct rg_cache_answer	 ans;
	uint64_t		 took_ms;
	uint64_t		 end_ms;
};

static void *
waiter_thread(void *p)
{
	struct waiter	*w = p;
	uint64_t	 t0 = rg_now_ms();

	w->st = rg_cache_begin(w->c, "k@x", 1, w->now, w->deadline, &w->ans);
	w->end_ms = rg_now_ms();
	w->took_ms = w->end_ms - t0;
	return NULL;
}

static void
test_waiter_timeout(void **state)
{
	struct rg_cache		*c = mk(100, POS, NEG, STALE);
	struct rg_cache_answer	 a;
	struct waiter		 w = { 0 };
	pthread_t		 th;
	uint64_t		 owner_deadline;

	/* the owner never finishes before its deadline */
	owner_deadline = rg_now_ms() + 300;
	assert_int_equal(rg_cache_begin(c, "k@x", 1, 0, owner_deadline, &a),
	    RG_CACHE_MISS);
	w.c = c;
	w.deadline = rg_now_ms() + 100;
	assert_int_equal(pthread_create(&th, NULL, waiter_thread, &w), 0);
	pthread_join(th, NULL);
	assert_int_equal(w.st, RG_CACHE_TIMEOUT);
	/* not before its deadline, and not much after */
	assert_true(w.end_ms >= w.deadline);
	assert_true(w.end_ms < w.deadline + 500);
	assert_false(w.ans.shared);

	/* a deadline already past: TIMEOUT at once */
	assert_int_equal(rg_cache_begin(c, "k@x", 1, 0, rg_now_ms() - 1, &a),
	    RG_CACHE_TIMEOUT);

	/* after the owner's deadline the key is taken over, not blocked */
	rg_sleep_ms(rg_ms_left(owner_deadline) + 5);
	assert_int_equal(rg_cache_begin(c, "k@x", 1, 0, FAR, &a),
	    RG_CACHE_MISS);
	/* the stuck owner's late finish is harmless (ends the new flight) */
	rg_cache_finish(c, "k@x", RG_FOUND, "late", 1, 0);
	rg_cache_finish(c, "k@x", RG_FOUND, "new", 1, 0);
	assert_int_equal(probe(c, "k@x", 1, 1, &a), RG_CACHE_HIT);
	assert_string_equal(a.backend, "new");
	rg_cache_free(c);
}

/* A waiter that shares a tempfail also learns of the stale entry. */
static void
test_shared_tempfail_stale(void **state)
{
	struct rg_cache		*c = mk(100, POS, NEG, STALE);
	struct rg_cache_answer	 a;
	struct rg_cache_stats	 s;
	struct waiter		 w = { 0 };
	pthread_t		 th;
	uint64_t		 limit;

	put(c, "k@x", RG_FOUND, 1, 0);
	assert_int_equal(rg_cache_begin(c, "k@x", 1, POS + 1, FAR, &a),
	    RG_CACHE_MISS);
	assert_true(a.stale_found);
	w.c = c;
	w.now = POS + 1;
	w.deadline = rg_now_ms() + 3000;
	assert_int_equal(pthread_create(&th, NULL, waiter_thread, &w), 0);
	limit = rg_now_ms() + 2000;
	do {
		rg_cache_stats(c, &s);
		if (s.waits == 1)
			break;
		rg_sleep_ms(1);
	} while (rg_now_ms() < limit);
	assert_int_equal(s.waits, 1);
	rg_cache_finish(c, "k@x", RG_TEMPFAIL, "down", 1, POS + 1);
	pthread_join(th, NULL);
	assert_int_equal(w.st, RG_CACHE_HIT);
	assert_true(w.ans.shared);
	assert_int_equal(w.ans.result, RG_TEMPFAIL);
	assert_true(w.ans.stale_found);
	assert_string_equal(w.ans.stale_backend, "b1");
	rg_cache_note_stale_used(c);
	rg_cache_stats(c, &s);
	assert_int_equal(s.stale_used, 1);
	rg_cache_free(c);
}

/* rg_cache_peek_found: fresh positives only, and no in-flight marker. */
static void
test_peek_found(void **state)
{
	struct rg_cache		*c = mk(100, POS, NEG, STALE);
	struct rg_cache_answer	 a;

	(void)state;
	assert_false(rg_cache_peek_found(c, "none@d", 10, &a));
	put(c, "yes@d", RG_FOUND, 1, 10);
	put(c, "no@d", RG_NOTFOUND, 1, 10);
	assert_true(rg_cache_peek_found(c, "yes@d", 10 + POS - 1, &a));
	assert_int_equal(a.result, RG_FOUND);
	assert_string_equal(a.backend, "b1");
	assert_false(rg_cache_peek_found(c, "yes@d", 10 + POS, &a));
	assert_false(rg_cache_peek_found(c, "no@d", 11, &a));
	/* a miss of the peek leaves nothing in flight: begin owns the key */
	assert_false(rg_cache_peek_found(c, "new@d", 11, &a));
	assert_int_equal(rg_cache_begin(c, "new@d", 1, 11, rg_now_ms() + 50, &a),
	    RG_CACHE_MISS);
	rg_cache_finish(c, "new@d", RG_FOUND, "b1", 1, 11);
	assert_true(rg_cache_peek_found(c, "new@d", 12, &a));
	rg_cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss),
		cmocka_unit_test(test_peek_found),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_drop_negatives),
		cmocka_unit_test(test_failures_not_stored),
		cmocka_unit_test(test_no_stale_ttl),
		cmocka_unit_test(test_lru_order),
		cmocka_unit_test(test_capacity_bound),
		cmocka_unit_test(test_configure),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_long_keys),
		cmocka_unit_test(test_backend_name_too_long),
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_waiter_timeout),
		cmocka_unit_test(test_shared_tempfail_stale),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
