/* SPDX-License-Identifier: MIT */
/*
 * bench_cache: warm-cache decisions per second through rg_cache_begin,
 * on 1 and on 2 threads, and the ratio. Hot keys: a few thousand
 * recipient addresses, all stored (found and notfound), looked up in a
 * per-thread pseudo-random order. Rounds of 1 and 2 threads are
 * interleaved and the medians printed, so a noisy neighbour hits both.
 * The same is done for a loop that shares nothing (pure arithmetic):
 * its 2/1 ratio is what the machine itself gives two threads right now,
 * the ceiling for the cache's ratio.
 *
 * Build and run (not part of ctest):
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Ilib lib/rg_error.c lib/rg_time.c \
 *     lib/log.c lib/cache.c test/bench/bench_cache.c -o bench_cache -lpthread
 *   ./bench_cache [rounds] [ms_per_round]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "rg_time.h"

#define NKEYS		4096	/* power of two */
#define MAX_THREADS	2

static char		 keys[NKEYS][48];
static struct rg_cache	*cache;
static atomic_bool	 stop;

struct worker {
	pthread_t	 th;
	bool		 spin;		/* baseline: share nothing */
	uint64_t	 seed;
	uint64_t	 gets;
	uint64_t	 bad;
};

static void *
work(void *p)
{
	struct worker		*w = p;
	struct rg_cache_answer	 a;
	uint64_t		 s = w->seed, n = 0, bad = 0;
	unsigned		 i;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (w->spin) {
			for (i = 0; i < 1024; i++) {
				s ^= s << 13;
				s ^= s >> 7;
				s ^= s << 17;
			}
			n += i;
			bad += s == 0;	/* keep the loop */
			continue;
		}
		for (i = 0; i < 1024; i++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			if (rg_cache_begin(cache, keys[s & (NKEYS - 1)], 1, 10,
			    UINT64_MAX / 2, &a) != RG_CACHE_HIT)
				bad++;
		}
		n += i;
	}
	w->gets = n;
	w->bad = bad;
	return NULL;
}

/* One round of nthreads for ms; returns gets per second. */
static double
round_gets(int nthreads, unsigned ms, bool spin)
{
	struct worker	w[MAX_THREADS];
	uint64_t	t0, t1, total = 0;
	int		i;

	atomic_store(&stop, false);
	t0 = rg_now_ms();
	for (i = 0; i < nthreads; i++) {
		w[i].seed = 0x9e3779b97f4a7c15ULL + (uint64_t)i * 7919 + t0;
		w[i].spin = spin;
		if (pthread_create(&w[i].th, NULL, work, &w[i]) != 0) {
			perror("pthread_create");
			exit(1);
		}
	}
	rg_sleep_ms(ms);
	atomic_store(&stop, true);
	for (i = 0; i < nthreads; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].gets;
		if (w[i].bad != 0) {
			fprintf(stderr, "bench_cache: %llu gets were not "
			    "hits\n", (unsigned long long)w[i].bad);
			exit(1);
		}
	}
	t1 = rg_now_ms();
	return (double)total * 1000.0 / (double)(t1 - t0);
}

static int
cmp_double(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct rg_cache_conf	 conf = { 100000, 3600000, 600000, 86400000 };
	struct rg_cache_answer	 a;
	int			 rounds = argc > 1 ? atoi(argv[1]) : 5;
	unsigned		 ms = argc > 2 ? (unsigned)atoi(argv[2]) : 500;
	double			*r1, *r2, *s1, *s2, m1, m2;
	int			 i;

	if (rounds < 1 || rounds > 100 || ms < 10 || ms > 10000) {
		fprintf(stderr, "usage: bench_cache [rounds 1-100] "
		    "[ms_per_round 10-10000]\n");
		return 2;
	}
	cache = rg_cache_new(&conf);
	r1 = calloc((size_t)rounds, sizeof(*r1));
	r2 = calloc((size_t)rounds, sizeof(*r2));
	s1 = calloc((size_t)rounds, sizeof(*s1));
	s2 = calloc((size_t)rounds, sizeof(*s2));
	if (cache == NULL || r1 == NULL || r2 == NULL || s1 == NULL ||
	    s2 == NULL) {
		perror("bench_cache");
		return 1;
	}
	for (i = 0; i < NKEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "recipient%d@example.org",
		    i);
		if (rg_cache_begin(cache, keys[i], 1, 1, rg_now_ms() + 1000,
		    &a) != RG_CACHE_MISS)
			return 1;
		rg_cache_finish(cache, keys[i], i % 4 ? RG_FOUND : RG_NOTFOUND,
		    "bench", 1, 1);
	}
	for (i = 0; i < rounds; i++) {
		r1[i] = round_gets(1, ms, false);
		r2[i] = round_gets(2, ms, false);
		s1[i] = round_gets(1, ms / 4 + 1, true);
		s2[i] = round_gets(2, ms / 4 + 1, true);
	}
	qsort(r1, (size_t)rounds, sizeof(*r1), cmp_double);
	qsort(r2, (size_t)rounds, sizeof(*r2), cmp_double);
	qsort(s1, (size_t)rounds, sizeof(*s1), cmp_double);
	qsort(s2, (size_t)rounds, sizeof(*s2), cmp_double);
	m1 = r1[rounds / 2];
	m2 = r2[rounds / 2];
	printf("bench_cache: %d warm keys, %d rounds x %u ms, medians\n",
	    NKEYS, rounds, ms);
	printf("1 thread:  %.0f gets/s\n", m1);
	printf("2 threads: %.0f gets/s\n", m2);
	printf("ratio 2/1: %.2f\n", m2 / m1);
	printf("machine baseline ratio 2/1 (shared-nothing loop): %.2f\n",
	    s2[rounds / 2] / s1[rounds / 2]);
	printf("target >= 1000000 gets/s: %s\n", m1 >= 1e6 ? "met" : "MISSED");
	free(r1);
	free(r2);
	free(s1);
	free(s2);
	rg_cache_free(cache);
	return 0;
}
