/* SPDX-License-Identifier: MIT */
/*
 * bench_sqlite: the SQLite backend and the whole decision path on a
 * 1,000,000-row table, in process, with no MTA.
 *
 * Kinds, each a round of ROUND_MS, rounds interleaved (a noisy neighbour
 * hits every kind alike), medians printed with p50/p99 latency:
 *   raw      a bare sqlite3 loop: the same query on one read-only
 *            connection, no rcptgate code (the baseline)
 *   backend  rg_backend_lookup of one key (a "cold lookup")
 *   decide0  rg_decide with the cache off: parse, generation, backend
 *            (an unknown address asks twice: the address and @domain)
 *   warm     rg_decide answered by the cache (10,000 hot keys)
 *   backend2 rg_backend_lookup on 2 threads (total rate, no latency)
 *   warm2    rg_decide warm on 2 threads
 * Keys are u<i>@example.com, one in eleven beyond the table (unknown).
 *
 * Not part of ctest (timings never gate CI); test/bench/run.sh builds
 * and runs it:  bench_sqlite DB [rounds] [ms_per_round]
 * DB is created with 1,000,000 rows (the rcptgate-table schema) if it
 * does not exist.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "backend.h"
#include "conf.h"
#include "policy.h"
#include "rg_time.h"
#include "table.h"

#define NROWS		1000000u
#define HOT_KEYS	10000u
#define MAX_SAMPLES	(4u * 1024 * 1024)
#define MAX_ROUNDS	15

enum kind { K_RAW, K_BACKEND, K_DECIDE0, K_WARM, K_BACKEND2, K_WARM2, K_N };
static const char *const kind_name[K_N] = { "raw", "backend", "decide0",
    "warm", "backend2", "warm2" };

static const char	*dbpath;
static uint64_t		 round_ms;
static uint64_t		*samples;
static sqlite3		*raw_db;
static sqlite3_stmt	*raw_stmt;
static struct rg_backend *backend;
static struct rg_engine	*eng_cold, *eng_warm;
static struct rg_runtime *rt_cold, *rt_warm;
static atomic_bool	 stop;

static uint64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
make_key(uint64_t *seed, unsigned range, char *buf, size_t len)
{
	unsigned	i = (unsigned)(rnd(seed) % (range + range / 10));

	snprintf(buf, len, "u%u@example.com", i);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The backend reads a marked table without locks only once it has been
 * left alone for 2 s (backend_sqlite.c, SQ_QUIET_MS): wait as long, as
 * a daemon reading a table written earlier would.
 */
static int
wait_quiet(void)
{
	struct stat	st;
	time_t		age;

	if (stat(dbpath, &st) == -1)
		return -1;
	age = time(NULL) - st.st_mtime;
	if (age >= 0 && age < 3)
		sleep((unsigned)(3 - age));
	return 0;
}

static int
make_table(void)
{
	sqlite3		*db;
	sqlite3_stmt	*st;
	char		 key[64];
	unsigned	 i;
	int		 rc;

	if (access(dbpath, F_OK) == 0)
		return wait_quiet();
	fprintf(stderr, "bench_sqlite: creating %s with %u rows\n", dbpath,
	    NROWS);
	if (sqlite3_open(dbpath, &db) != SQLITE_OK)
		return -1;
	/* The file rcptgate-table would write, mark included. */
	rc = sqlite3_exec(db, "PRAGMA journal_mode = OFF; "
	    "PRAGMA synchronous = OFF; PRAGMA application_id = "
	    RG_TABLE_APPLICATION_ID_STR "; CREATE TABLE recipients "
	    "(address TEXT PRIMARY KEY COLLATE NOCASE); BEGIN", NULL, NULL,
	    NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "INSERT INTO recipients VALUES (?)",
		    -1, &st, NULL);
	for (i = 0; rc == SQLITE_OK && i < NROWS; i++) {
		snprintf(key, sizeof(key), "u%u@example.com", i);
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sqlite3_reset(st);
	}
	if (rc == SQLITE_OK) {
		sqlite3_finalize(st);
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK)
		fprintf(stderr, "bench_sqlite: %s\n", sqlite3_errmsg(db));
	sqlite3_close(db);
	return rc == SQLITE_OK ? wait_quiet() : -1;
}

static bool
one_raw(const char *key)
{
	int	rc;

	sqlite3_bind_text(raw_stmt, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(raw_stmt);
	sqlite3_reset(raw_stmt);
	return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

static bool
one_backend(const char *key)
{
	struct rg_query	 q;
	struct rg_error	 err;
	char		 local[64];
	const char	*at = strchr(key, '@');

	snprintf(local, sizeof(local), "%.*s", (int)(at - key), key);
	q.key = key;
	q.local = local;
	q.domain = at + 1;
	q.deadline_ms = rg_now_ms() + 3000;
	q.trace = NULL;
	q.tracelen = 0;
	return rg_backend_lookup(backend, &q, &err) != RG_TEMPFAIL;
}

static bool
one_decide(struct rg_engine *e, struct rg_runtime *rt, const char *key)
{
	struct rg_client	cl;
	struct rg_verdict	v;

	memset(&cl, 0, sizeof(cl));
	rg_decide(e, rt, &cl, key, false, &v);
	return v.action == RG_ACT_CONTINUE || v.action == RG_ACT_REJECT;
}

struct worker {
	pthread_t	th;
	enum kind	k;
	uint64_t	seed, n, bad;
};

static void *
work(void *p)
{
	struct worker	*w = p;
	char		 key[64];
	bool		 ok;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (w->k == K_BACKEND2) {
			make_key(&w->seed, NROWS, key, sizeof(key));
			ok = one_backend(key);
		} else {
			make_key(&w->seed, HOT_KEYS, key, sizeof(key));
			ok = one_decide(eng_warm, rt_warm, key);
		}
		w->bad += !ok;
		w->n++;
	}
	return NULL;
}

/* One round of kind k: rate, p50 and p99 (us; 0 for threaded kinds). */
static void
run_round(enum kind k, uint64_t seed, double *rate, double *p50, double *p99,
    uint64_t *bad)
{
	uint64_t	start = now_ns(), end = start + round_ms * 1000000u;
	uint64_t	n = 0, t0, t1;
	char		key[64];
	bool		ok;

	*p50 = *p99 = 0;
	if (k == K_BACKEND2 || k == K_WARM2) {
		struct worker	w[2];

		atomic_store(&stop, false);
		for (int i = 0; i < 2; i++) {
			w[i] = (struct worker){ .k = k,
			    .seed = seed + (uint64_t)i * 7919 };
			pthread_create(&w[i].th, NULL, work, &w[i]);
		}
		rg_sleep_ms(round_ms);
		atomic_store(&stop, true);
		for (int i = 0; i < 2; i++) {
			pthread_join(w[i].th, NULL);
			n += w[i].n;
			*bad += w[i].bad;
		}
		*rate = (double)n * 1e9 / (double)(now_ns() - start);
		return;
	}
	for (t0 = start; t0 < end && n < MAX_SAMPLES; t0 = t1) {
		make_key(&seed, k == K_WARM ? HOT_KEYS : NROWS, key,
		    sizeof(key));
		switch (k) {
		case K_RAW:
			ok = one_raw(key);
			break;
		case K_BACKEND:
			ok = one_backend(key);
			break;
		case K_DECIDE0:
			ok = one_decide(eng_cold, rt_cold, key);
			break;
		default:
			ok = one_decide(eng_warm, rt_warm, key);
			break;
		}
		*bad += !ok;
		t1 = now_ns();
		samples[n++] = t1 - t0;
	}
	*rate = (double)n * 1e9 / (double)(t0 - start);
	qsort(samples, n, sizeof(samples[0]), cmp_u64);
	*p50 = (double)samples[n / 2] / 1000.0;
	*p99 = (double)samples[n * 99 / 100] / 1000.0;
}

static double
median(const double *v, int n)
{
	double	tmp[MAX_ROUNDS], x;

	memcpy(tmp, v, sizeof(double) * (size_t)n);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && tmp[j - 1] > tmp[j]; j--) {
			x = tmp[j];
			tmp[j] = tmp[j - 1];
			tmp[j - 1] = x;
		}
	return tmp[n / 2];
}

static int
engine(const char *cache, struct rg_engine **e, struct rg_runtime **rt)
{
	struct rg_error	 err;
	struct rg_conf	*conf;
	char		 text[1024];

	rg_error_clear(&err);
	snprintf(text, sizeof(text),
	    "[milter]\nuser =\n"
	    "[policy]\ndomains = example.com\nbackends = local\n"
	    "always_accept =\n"
	    "[cache]\nsize = %s\n"
	    "[harvest]\nmax_unknown = 0\nmax_unknown_per_session = 0\n"
	    "state =\n"
	    "[backend local]\ntype = sqlite\npath = %s\n", cache, dbpath);
	if ((conf = rg_conf_load_string(text, "bench", &err)) == NULL ||
	    (*rt = rg_runtime_new(conf, &err)) == NULL ||
	    (*e = rg_engine_new(*rt, RG_ENGINE_NO_HARVEST, &err)) == NULL) {
		fprintf(stderr, "bench_sqlite: engine: %s\n", err.msg);
		return -1;
	}
	rg_conf_unref(conf);
	return 0;
}

static int
setup(void)
{
	struct rg_section	 sec;
	struct rg_kv		 kv[2];
	struct rg_error		 err;
	char			 key[64];

	if (make_table() == -1)
		return -1;
	if (sqlite3_open_v2(dbpath, &raw_db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(raw_db, "SELECT 1 FROM recipients WHERE "
	    "address = ?1 LIMIT 1", -1, &raw_stmt, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench_sqlite: %s\n", sqlite3_errmsg(raw_db));
		return -1;
	}
	/* For experiments: PRAGMAs for the raw connection only. */
	if (getenv("BENCH_RAW_SQL") != NULL)
		sqlite3_exec(raw_db, getenv("BENCH_RAW_SQL"), NULL, NULL, NULL);
	memset(&sec, 0, sizeof(sec));
	memset(kv, 0, sizeof(kv));
	sec.name = (char *)"local";
	sec.file = "bench";
	sec.n = 2;
	sec.kv = kv;
	kv[0].key = (char *)"type";
	kv[0].value = (char *)"sqlite";
	kv[1].key = (char *)"path";
	kv[1].value = (char *)dbpath;
	rg_error_clear(&err);
	if ((backend = rg_backend_open(&sec, &err)) == NULL) {
		fprintf(stderr, "bench_sqlite: open: %s\n", err.msg);
		return -1;
	}
	if (engine("0", &eng_cold, &rt_cold) == -1 ||
	    engine("100000", &eng_warm, &rt_warm) == -1)
		return -1;
	for (unsigned i = 0; i < HOT_KEYS + HOT_KEYS / 10; i++) {
		snprintf(key, sizeof(key), "u%u@example.com", i);
		if (!one_decide(eng_warm, rt_warm, key))
			return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	double		 rate[K_N][MAX_ROUNDS], p50[K_N][MAX_ROUNDS];
	double		 p99[K_N][MAX_ROUNDS], base;
	uint64_t	 bad = 0;
	int		 rounds, r, k;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_sqlite DB [rounds] [ms]\n");
		return 2;
	}
	dbpath = argv[1];
	rounds = argc > 2 ? atoi(argv[2]) : 5;
	round_ms = argc > 3 ? strtoull(argv[3], NULL, 10) : 2000;
	if (rounds < 1 || rounds > MAX_ROUNDS || round_ms < 10 ||
	    round_ms > 60000) {
		fprintf(stderr, "bench_sqlite: rounds 1..%d, ms 10..60000\n",
		    MAX_ROUNDS);
		return 2;
	}
	if ((samples = malloc(MAX_SAMPLES * sizeof(*samples))) == NULL ||
	    setup() == -1)
		return 1;
	for (r = 0; r < rounds; r++)
		for (k = 0; k < K_N; k++)
			run_round((enum kind)k, 0x9e3779b97f4a7c15ULL ^
			    (uint64_t)(r * K_N + k + 1), &rate[k][r],
			    &p50[k][r], &p99[k][r], &bad);
	printf("# bench_sqlite: %u-row table, %d interleaved rounds of "
	    "%llu ms, medians\n", NROWS, rounds, (unsigned long long)round_ms);
	base = median(rate[K_RAW], rounds);
	for (k = 0; k < K_N; k++)
		printf("sqlite %-8s %10.0f /s  p50 %7.2f us  p99 %7.2f us  "
		    "x raw %.2f\n", kind_name[k], median(rate[k], rounds),
		    median(p50[k], rounds), median(p99[k], rounds),
		    median(rate[k], rounds) / base);
	printf("sqlite errors (tempfail) %llu\n", (unsigned long long)bad);
	free(samples);
	return bad != 0;
}
