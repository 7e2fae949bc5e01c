/* SPDX-License-Identifier: MIT */
/*
 * Load for the call-ahead driver: THREADS threads share N lookups of
 * distinct addresses (user0@DOMAIN ...) against HOST:PORT and print
 * lookups per second and the driver's own counters. Used by
 * bench_callahead.sh, which runs it with and without connection reuse.
 *   bench_callahead HOST:PORT IDLE_TIMEOUT N THREADS DOMAIN
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "conf.h"
#include "rg_time.h"

static struct rg_backend	be;
static atomic_int		next_i, res[4];
static int			total;
static const char		*domain;

static void *
worker(void *arg)
{
	int	i;

	while ((i = atomic_fetch_add(&next_i, 1)) < total) {
		char		key[300], local[64];
		struct rg_query	q = { 0 };
		struct rg_error	err;

		snprintf(local, sizeof(local), "user%d", i);
		snprintf(key, sizeof(key), "%s@%s", local, domain);
		q.key = key;
		q.local = local;
		q.domain = domain;
		q.deadline_ms = rg_now_ms() + 8000;
		atomic_fetch_add(&res[be.ops->lookup(&be, &q, &err)], 1);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct rg_kv		kv[5];
	struct rg_section	sec = { .name = (char *)"bench",
	    .file = "bench", .line = 1, .n = 5, .kv = kv };
	struct rg_error		err;
	pthread_t		*t;
	int			nthreads;
	uint64_t		t0, ms;
	char			stats[512];

	if (argc != 6) {
		fprintf(stderr, "usage: bench_callahead HOST:PORT IDLE N "
		    "THREADS DOMAIN\n");
		return 64;
	}
	total = atoi(argv[3]);
	nthreads = atoi(argv[4]);
	domain = argv[5];
	kv[0] = (struct rg_kv){ (char *)"type", (char *)"callahead", 2 };
	kv[1] = (struct rg_kv){ (char *)"hosts", argv[1], 3 };
	kv[2] = (struct rg_kv){ (char *)"helo", (char *)"bench.example.test",
	    4 };
	kv[3] = (struct rg_kv){ (char *)"idle_timeout", argv[2], 5 };
	kv[4] = (struct rg_kv){ (char *)"accept_all_check", (char *)"0", 6 };
	be.ops = &rg_backend_callahead_ops;
	if (be.ops->open(&be, &sec, &err) != 0) {
		fprintf(stderr, "open: %s\n", err.msg);
		return 78;
	}
	if (nthreads < 1 || (t = calloc((size_t)nthreads, sizeof(*t))) == NULL)
		return 64;
	t0 = rg_now_ms();
	for (int i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	ms = rg_now_ms() - t0;
	be.ops->stats(&be, stats, sizeof(stats));
	printf("idle_timeout=%s lookups=%d threads=%d seconds=%.2f "
	    "probes_per_s=%.0f found=%d notfound=%d tempfail=%d | %s\n",
	    argv[2], total, nthreads, (double)ms / 1000,
	    ms ? total * 1000.0 / (double)ms : 0.0, res[RG_FOUND],
	    res[RG_NOTFOUND], res[RG_TEMPFAIL], stats);
	be.ops->close(&be);
	free(t);
	return res[RG_TEMPFAIL] ? 1 : 0;
}
