/* SPDX-License-Identifier: MIT */
/*
 * A concurrent storm against the decision cache, meant to be run under
 * ThreadSanitizer as well as in the normal build: 8 threads, each for a
 * bounded number of operations and at most about 2 seconds, doing mixed
 * hits, misses, finishes with every result, expiries (a shared fake clock
 * jumps forward), generation changes, rg_cache_drop_negatives and
 * rg_cache_configure with other sizes and TTLs.
 *
 * Invariants checked: the entry count never exceeds the largest size
 * configured and ends within the final size; no begin ever times out and
 * each returns well before its deadline (a lost wakeup would make a
 * waiter sleep to its deadline); every answer that is not shared agrees
 * with the data it came from (each key's answer is a function of key and
 * generation), and a fresh negative answer is of the current generation.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache.h"
#include "rg_time.h"

#define NTHREADS	8
#define MAX_OPS		300000	/* per thread */
#define MAX_MS		2000	/* per thread */
#define NKEYS		300
#define WAIT_MS		1500	/* begin deadline: far beyond any lookup */

static const uint64_t sizes[] = { 0, 16, 64, 200 };
#define MAX_SIZE	200

struct storm {
	struct rg_cache		*c;
	pthread_barrier_t	 bar;
	_Atomic uint64_t	 clock;		/* fake now_ms for TTLs */
	_Atomic uint64_t	 generation;
	_Atomic uint64_t	 begins, hits, shared, misses, timeouts;
	_Atomic uint64_t	 late;		/* returned near the deadline */
	_Atomic uint64_t	 bad;		/* wrong answers */
	_Atomic uint64_t	 over;		/* entries over MAX_SIZE */
	_Atomic uint64_t	 configures, drops;
};

struct targ {
	struct storm	*st;
	uint64_t	 seed;
};

static uint64_t
rnd(uint64_t *s)
{
	/* xorshift64*: per thread, no shared state */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* What the "directory" says for key k at generation g. */
static enum rg_result
truth(unsigned k, uint64_t g)
{
	return (k + g) % 3 == 0 ? RG_NOTFOUND : RG_FOUND;
}

static unsigned
key_index(const char *key)
{
	unsigned	k = 0;

	sscanf(key, "user%u@", &k);
	return k;
}

static void
check_hit(struct storm *st, const char *key, uint64_t gen,
    const struct rg_cache_answer *a)
{
	unsigned	k = key_index(key);

	if (a->shared)
		return;		/* any result, even a failure, can be shared */
	if (a->result != RG_FOUND && a->result != RG_NOTFOUND)
		atomic_fetch_add(&st->bad, 1);
	else if (a->result != truth(k, a->generation))
		atomic_fetch_add(&st->bad, 1);
	else if (a->result == RG_NOTFOUND && a->generation != gen)
		atomic_fetch_add(&st->bad, 1);
	else if (strcmp(a->backend, "storm") != 0)
		atomic_fetch_add(&st->bad, 1);
}

static void
one_lookup(struct storm *st, uint64_t *seed)
{
	struct rg_cache_answer	a;
	enum rg_cache_status	s;
	enum rg_result		r;
	char			key[64];
	unsigned		k = (unsigned)(rnd(seed) % NKEYS);
	uint64_t		gen = atomic_load(&st->generation);
	uint64_t		now = atomic_load(&st->clock);
	uint64_t		t0 = rg_now_ms(), took;

	snprintf(key, sizeof(key), "user%u@example.org", k);
	atomic_fetch_add(&st->begins, 1);
	s = rg_cache_begin(st->c, key, gen, now, t0 + WAIT_MS, &a);
	took = rg_now_ms() - t0;
	if (took >= WAIT_MS / 2)
		atomic_fetch_add(&st->late, 1);
	switch (s) {
	case RG_CACHE_HIT:
		atomic_fetch_add(&st->hits, 1);
		if (a.shared)
			atomic_fetch_add(&st->shared, 1);
		check_hit(st, key, gen, &a);
		break;
	case RG_CACHE_TIMEOUT:
		atomic_fetch_add(&st->timeouts, 1);
		break;
	case RG_CACHE_MISS:
		atomic_fetch_add(&st->misses, 1);
		/* a short "lookup" so others pile up on hot keys */
		if (rnd(seed) % 4 == 0)
			sched_yield();
		switch (rnd(seed) % 10) {
		case 0:
			r = RG_TEMPFAIL;
			break;
		case 1:
			r = RG_CONFIG;
			break;
		default:
			r = truth(k, gen);
			break;
		}
		rg_cache_finish(st->c, key, r, "storm", gen,
		    atomic_load(&st->clock));
		break;
	}
}

static void
one_admin(struct storm *st, uint64_t *seed)
{
	struct rg_cache_conf	conf;
	struct rg_cache_stats	s;

	switch (rnd(seed) % 5) {
	case 0:
		/* expiry: jump the fake clock up to twice the longest TTL */
		atomic_fetch_add(&st->clock, rnd(seed) % 400);
		break;
	case 1:
		atomic_fetch_add(&st->generation, 1);
		break;
	case 2:
		rg_cache_drop_negatives(st->c);
		atomic_fetch_add(&st->drops, 1);
		break;
	case 3:
		conf.size = sizes[rnd(seed) % (sizeof(sizes) /
		    sizeof(sizes[0]))];
		conf.positive_ttl_ms = 50 + rnd(seed) % 150;
		conf.negative_ttl_ms = 10 + rnd(seed) % 50;
		conf.stale_ttl_ms = rnd(seed) % 2 ? 0 : 200;
		rg_cache_configure(st->c, &conf);
		atomic_fetch_add(&st->configures, 1);
		break;
	default:
		rg_cache_stats(st->c, &s);
		if (s.entries > MAX_SIZE)
			atomic_fetch_add(&st->over, 1);
		break;
	}
}

static void *
storm_thread(void *p)
{
	struct targ	*t = p;
	struct storm	*st = t->st;
	uint64_t	 seed = t->seed, end, n;

	pthread_barrier_wait(&st->bar);
	end = rg_now_ms() + MAX_MS;
	for (n = 0; n < MAX_OPS; n++) {
		if ((n & 255) == 0 && rg_now_ms() >= end)
			break;
		if (rnd(&seed) % 1000 < 5)
			one_admin(st, &seed);
		else
			one_lookup(st, &seed);
	}
	return NULL;
}

static void
test_storm(void **state)
{
	struct rg_cache_conf	 conf = { 64, 100, 30, 200 };
	struct storm		 st;
	struct targ		 args[NTHREADS];
	pthread_t		 th[NTHREADS];
	struct rg_cache_stats	 s;
	struct rg_cache_answer	 a;
	int			 i;
	uint64_t		 t0 = rg_now_ms();

	memset(&st, 0, sizeof(st));
	atomic_init(&st.clock, 1000);
	atomic_init(&st.generation, 1);
	st.c = rg_cache_new(&conf);
	assert_non_null(st.c);
	pthread_barrier_init(&st.bar, NULL, NTHREADS);
	for (i = 0; i < NTHREADS; i++) {
		args[i].st = &st;
		args[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1) ^ t0;
		assert_int_equal(pthread_create(&th[i], NULL, storm_thread,
		    &args[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&st.bar);

	rg_cache_stats(st.c, &s);
	print_message("%llu begins in %llu ms: %llu hits (%llu shared), "
	    "%llu misses, %llu timeouts, %llu configures, %llu drops; "
	    "cache: %llu waits, %llu evictions, %llu entries\n",
	    (unsigned long long)st.begins,
	    (unsigned long long)(rg_now_ms() - t0),
	    (unsigned long long)st.hits, (unsigned long long)st.shared,
	    (unsigned long long)st.misses, (unsigned long long)st.timeouts,
	    (unsigned long long)st.configures, (unsigned long long)st.drops,
	    (unsigned long long)s.waits, (unsigned long long)s.evictions,
	    (unsigned long long)s.entries);
	assert_int_equal(st.bad, 0);
	assert_int_equal(st.timeouts, 0);
	assert_int_equal(st.late, 0);
	assert_int_equal(st.over, 0);
	assert_true(st.begins > 1000);
	assert_int_equal(s.hits + s.misses, st.begins);
	assert_int_equal(st.hits, s.hits);

	/* the final size holds after the storm */
	conf.size = sizes[1];
	rg_cache_configure(st.c, &conf);
	rg_cache_stats(st.c, &s);
	assert_true(s.entries <= sizes[1]);

	/* no flight left behind: every key answers at once */
	for (i = 0; i < NKEYS; i++) {
		char	key[64];

		snprintf(key, sizeof(key), "user%d@example.org", i);
		assert_int_not_equal(rg_cache_begin(st.c, key, 1, 1,
		    rg_now_ms(), &a), RG_CACHE_TIMEOUT);
	}
	rg_cache_free(st.c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_storm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
