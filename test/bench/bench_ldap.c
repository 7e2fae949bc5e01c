/* SPDX-License-Identifier: MIT */
/*
 * bench_ldap: lookups per second and p99 latency of the LDAP backend
 * against a slapd holding N synthetic users (u0..u(N-1)@example.com, see
 * rg_slapd_gen_users), each as a ratio to a bare libldap loop in the
 * same run:
 *
 *   bare   one LDAP handle, ldap_search_ext_s with the same filter, attrs
 *          "1.1", sizelimit 1: what libldap and slapd give at best
 *   cold   the backend's lookup() directly (pool, deadline, escaping)
 *   warm   rg_decide() through the engine and its cache, keys prewarmed
 *   coldN  the backend from THREADS threads at once (pool_size THREADS)
 *
 * Keys are pseudo-random; 1 in 10 does not exist. Rounds of the kinds are
 * interleaved and medians printed, so a noisy neighbour hits all kinds.
 * Single-threaded kinds record every latency; p99 from the sorted array.
 *
 * The directory (uri, base, bind_dn, bind_password_file, starttls,
 * tls_ca_file, ...) comes from the first [backend NAME] section of type
 * ldap in an rcptgate.conf, so the bench runs against any directory
 * holding the synthetic users; the bare loop uses its first uri and the
 * same bind and TLS settings.
 *
 * Run through test/bench/bench_ldap.sh (starts slapd, loads 100k users,
 * writes the configuration):
 *   bench_ldap CONF N [rounds] [ms_per_round] [threads]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ldap.h>

#include "backend.h"
#include "conf.h"
#include "log.h"
#include "policy.h"
#include "rg_time.h"

#define HOT_KEYS	10000	/* warm set: all fit in the cache */
#define MAX_SAMPLES	(4 * 1024 * 1024)
#define MAX_ROUNDS	15
#define MAX_THREADS	64

enum kind { K_BARE, K_COLD, K_WARM, K_COLDN, K_N };
static const char *const kind_name[K_N] = { "bare", "cold", "warm", "coldN" };

static const struct rg_section *dir;	/* [backend NAME] from CONF */
static const char	*uri, *base;		/* the first of its uris */
static char		 first_uri[1024];
static unsigned		 nusers;
static uint64_t		 round_ms;
static int		 nthreads;
static uint64_t		*samples;
static LDAP		*bare_ld;
static struct rg_backend backend, backend_n;
static struct rg_engine	*engine;
static struct rg_runtime *runtime;

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

/* u<i>@example.com; 1 in 10 beyond the users (does not exist) */
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

/* A copy of dir with pool_size set to poolsize. */
static struct rg_section *
section(const char *poolsize)
{
	struct rg_section	*s = calloc(1, sizeof(*s));
	size_t			 n = 0;

	s->name = strdup(dir->name);
	s->file = dir->file;
	s->kv = calloc(dir->n + 1, sizeof(*s->kv));
	for (size_t i = 0; i < dir->n; i++) {
		if (strcmp(dir->kv[i].key, "pool_size") == 0)
			continue;
		s->kv[n].key = strdup(dir->kv[i].key);
		s->kv[n].value = strdup(dir->kv[i].value);
		s->kv[n++].line = dir->kv[i].line;
	}
	s->kv[n].key = strdup("pool_size");
	s->kv[n].value = strdup(poolsize);
	s->kv[n++].line = dir->line;
	s->n = n;
	return s;
}

static void
section_free(struct rg_section *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->kv[i].key);
		free(s->kv[i].value);
	}
	free(s->kv);
	free(s->name);
	free(s);
}

/* dir: the first ldap backend of the configuration at path. */
static struct rg_conf *
load_dir(const char *path)
{
	struct rg_error	 err;
	struct rg_conf	*conf;
	const char	*type, *u;

	rg_error_clear(&err);
	if ((conf = rg_conf_load(path, &err)) == NULL) {
		fprintf(stderr, "bench_ldap: %s\n", err.msg);
		return NULL;
	}
	for (size_t i = 0; i < conf->nbackends && dir == NULL; i++)
		if ((type = rg_section_get(&conf->backends[i], "type",
		    NULL)) != NULL && strcmp(type, "ldap") == 0)
			dir = &conf->backends[i];
	if (dir == NULL || (u = rg_section_get(dir, "uri", NULL)) == NULL ||
	    (base = rg_section_get(dir, "base", NULL)) == NULL) {
		fprintf(stderr, "bench_ldap: %s: no [backend] of type ldap "
		    "with uri and base\n", path);
		rg_conf_unref(conf);
		return NULL;
	}
	snprintf(first_uri, sizeof(first_uri), "%.*s",
	    (int)strcspn(u, " \t,"), u);
	uri = first_uri;
	return conf;
}

/* The bare handle, bound and with TLS as dir says. */
static int
bare_open(void)
{
	const char	*dn = rg_section_get(dir, "bind_dn", NULL);
	const char	*pwf = rg_section_get(dir, "bind_password_file", NULL);
	const char	*ca = rg_section_get(dir, "tls_ca_file", NULL);
	const char	*st = rg_section_get(dir, "starttls", NULL);
	char		 pw[1024] = "";
	struct berval	 cred;
	FILE		*f;
	bool		 tls = false;
	int		 v = LDAP_VERSION3;

	if (pwf != NULL && ((f = fopen(pwf, "r")) == NULL ||
	    fgets(pw, sizeof(pw), f) == NULL || fclose(f) != 0)) {
		fprintf(stderr, "bench_ldap: cannot read %s\n", pwf);
		return -1;
	}
	pw[strcspn(pw, "\r\n")] = '\0';
	if (ldap_initialize(&bare_ld, uri) != LDAP_SUCCESS)
		return -1;
	ldap_set_option(bare_ld, LDAP_OPT_PROTOCOL_VERSION, &v);
	ldap_set_option(bare_ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	if (ca != NULL) {
		ldap_set_option(bare_ld, LDAP_OPT_X_TLS_CACERTFILE, ca);
		v = 0;
		ldap_set_option(bare_ld, LDAP_OPT_X_TLS_NEWCTX, &v);
	}
	if (st != NULL && rg_parse_bool(st, &tls) == 0 && tls &&
	    ldap_start_tls_s(bare_ld, NULL, NULL) != LDAP_SUCCESS)
		return -1;
	cred.bv_val = pw;
	cred.bv_len = strlen(pw);
	return ldap_sasl_bind_s(bare_ld, dn != NULL ? dn : "",
	    LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL) == LDAP_SUCCESS ? 0 : -1;
}

static int
one_bare(const char *addr)
{
	char		 filter[512];
	char		*attrs[] = { (char *)LDAP_NO_ATTRS, NULL };
	struct timeval	 tv = { 3, 0 };
	LDAPMessage	*res = NULL;
	int		 rc;

	snprintf(filter, sizeof(filter), "(|(mail=%s)(proxyAddresses=smtp:%s))",
	    addr, addr);
	rc = ldap_search_ext_s(bare_ld, base, LDAP_SCOPE_SUBTREE, filter, attrs,
	    0, NULL, NULL, &tv, 1, &res);
	if (rc == LDAP_SUCCESS && ldap_count_entries(bare_ld, res) == 0)
		rc = 1;		/* not found */
	ldap_msgfree(res);
	return rc;
}

static enum rg_result
one_cold(struct rg_backend *b, const char *addr)
{
	struct rg_query	 q;
	struct rg_error	 err;
	char		 local[64];
	const char	*at = strchr(addr, '@');

	snprintf(local, sizeof(local), "%.*s", (int)(at - addr), addr);
	q.key = addr;
	q.local = local;
	q.domain = at + 1;
	q.deadline_ms = rg_now_ms() + 3000;
	q.trace = NULL;
	q.tracelen = 0;
	return b->ops->lookup(b, &q, &err);
}

static bool
one_warm(const char *addr)
{
	struct rg_client	cl;
	struct rg_verdict	v;

	memset(&cl, 0, sizeof(cl));
	rg_decide(engine, runtime, &cl, addr, false, &v);
	return v.action == RG_ACT_CONTINUE || v.action == RG_ACT_REJECT;
}

struct nworker {
	pthread_t	th;
	uint64_t	seed, n, bad;
};

static atomic_bool	stop;

static void *
nwork(void *p)
{
	struct nworker	*w = p;
	char		 key[64];

	while (!atomic_load(&stop)) {
		make_key(&w->seed, nusers, key, sizeof(key));
		if (one_cold(&backend_n, key) == RG_TEMPFAIL)
			w->bad++;
		w->n++;
	}
	return NULL;
}

/* One round of kind k: lookups/s into *rate, p99 (us) into *p99. */
static void
run_round(enum kind k, uint64_t seed, double *rate, double *p99, uint64_t *bad)
{
	uint64_t	start = now_ns(), end = start + round_ms * 1000000u;
	uint64_t	n = 0, t0, t1;
	char		key[64];

	if (k == K_COLDN) {
		struct nworker	w[MAX_THREADS];

		atomic_store(&stop, false);
		for (int i = 0; i < nthreads; i++) {
			w[i] = (struct nworker){ .seed = seed +
			    (uint64_t)i * 7919 };
			pthread_create(&w[i].th, NULL, nwork, &w[i]);
		}
		rg_sleep_ms(round_ms);
		atomic_store(&stop, true);
		for (int i = 0; i < nthreads; i++) {
			pthread_join(w[i].th, NULL);
			n += w[i].n;
			*bad += w[i].bad;
		}
		*rate = (double)n * 1e9 / (double)(now_ns() - start);
		*p99 = 0;
		return;
	}
	for (t0 = start; t0 < end && n < MAX_SAMPLES; t0 = t1) {
		make_key(&seed, k == K_WARM ? HOT_KEYS : nusers, key,
		    sizeof(key));
		switch (k) {
		case K_BARE:
			if (one_bare(key) > 1)
				(*bad)++;
			break;
		case K_COLD:
			if (one_cold(&backend, key) == RG_TEMPFAIL)
				(*bad)++;
			break;
		default:
			if (!one_warm(key))
				(*bad)++;
			break;
		}
		t1 = now_ns();
		samples[n++] = t1 - t0;
	}
	*rate = (double)n * 1e9 / (double)(t0 - start);
	qsort(samples, n, sizeof(samples[0]), cmp_u64);
	*p99 = (double)samples[n * 99 / 100] / 1000.0;
}

static double
median(double *v, int n)
{
	double	tmp[MAX_ROUNDS];

	memcpy(tmp, v, sizeof(double) * (size_t)n);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && tmp[j - 1] > tmp[j]; j--) {
			double	x = tmp[j];

			tmp[j] = tmp[j - 1];
			tmp[j - 1] = x;
		}
	return tmp[n / 2];
}

/* The engine's configuration: dir's keys under a fixed policy. */
static int
engine_text(char *text, size_t len)
{
	size_t	o;
	int	n;

	n = snprintf(text, len,
	    "[milter]\nuser =\n"
	    "[policy]\ndomains = example.com\nbackends = %s\n"
	    "always_accept =\nsubaddress_delimiter =\n"
	    "[cache]\nsize = 100000\n"
	    "[harvest]\nmax_unknown = 0\nmax_unknown_per_session = 0\n"
	    "state =\n[backend %s]\n", dir->name, dir->name);
	for (size_t i = 0; n >= 0 && (size_t)n < len && i < dir->n; i++) {
		o = (size_t)n;
		n = snprintf(text + o, len - o, "%s = %s\n", dir->kv[i].key,
		    dir->kv[i].value);
		n = n < 0 ? n : n + (int)o;
	}
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int
setup(void)
{
	struct rg_section	*s;
	struct rg_error		 err;
	struct rg_conf		*conf;
	char			 text[8192], pool[16];

	if (bare_open() == -1) {
		fprintf(stderr, "bench_ldap: bare connection to %s failed\n",
		    uri);
		return -1;
	}
	rg_error_clear(&err);
	backend.ops = backend_n.ops = &rg_backend_ldap_ops;
	snprintf(backend.name, sizeof(backend.name), "%s", dir->name);
	snprintf(backend_n.name, sizeof(backend_n.name), "%s", dir->name);
	s = section("8");
	if (backend.ops->open(&backend, s, &err) != 0) {
		fprintf(stderr, "open: %s\n", err.msg);
		return -1;
	}
	section_free(s);
	snprintf(pool, sizeof(pool), "%d", nthreads);
	s = section(pool);
	if (backend_n.ops->open(&backend_n, s, &err) != 0) {
		fprintf(stderr, "open: %s\n", err.msg);
		return -1;
	}
	section_free(s);

	if (engine_text(text, sizeof(text)) == -1 ||
	    (conf = rg_conf_load_string(text, "bench", &err)) == NULL ||
	    (runtime = rg_runtime_new(conf, &err)) == NULL ||
	    (engine = rg_engine_new(runtime, RG_ENGINE_NO_HARVEST, &err)) ==
	    NULL) {
		fprintf(stderr, "engine: %s\n", err.msg);
		return -1;
	}
	rg_conf_unref(conf);
	/* prewarm: every hot key, found and not found, into the cache */
	for (unsigned i = 0; i < HOT_KEYS + HOT_KEYS / 10; i++) {
		snprintf(text, sizeof(text), "u%u@example.com", i);
		if (!one_warm(text))
			return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	double		rate[K_N][MAX_ROUNDS], p99[K_N][MAX_ROUNDS];
	uint64_t	bad[K_N] = { 0 };
	int		rounds;
	double		r[K_N], p[K_N];
	struct rg_conf	*dirconf;

	if (argc < 3) {
		fprintf(stderr, "usage: bench_ldap CONF N [rounds] "
		    "[ms_per_round] [threads]\n");
		return 2;
	}
	nusers = (unsigned)strtoul(argv[2], NULL, 10);
	rounds = argc > 3 ? atoi(argv[3]) : 5;
	round_ms = argc > 4 ? strtoull(argv[4], NULL, 10) : 3000;
	nthreads = argc > 5 ? atoi(argv[5]) : 4;
	if (rounds < 1 || rounds > MAX_ROUNDS || nthreads < 1 ||
	    nthreads > MAX_THREADS || nusers < HOT_KEYS) {
		fprintf(stderr, "bench_ldap: bad arguments\n");
		return 2;
	}
	rg_log_init("bench_ldap", 1, RG_LOG_ERROR);
	if ((dirconf = load_dir(argv[1])) == NULL)
		return 2;
	samples = malloc(sizeof(*samples) * MAX_SAMPLES);
	if (samples == NULL || setup() == -1) {
		fprintf(stderr, "bench_ldap: setup failed\n");
		return 1;
	}
	for (int i = 0; i < rounds; i++)
		for (int k = 0; k < K_N; k++)
			run_round((enum kind)k, 0x9e3779b97f4a7c15ull +
			    (uint64_t)i, &rate[k][i], &p99[k][i], &bad[k]);
	for (int k = 0; k < K_N; k++) {
		r[k] = median(rate[k], rounds);
		p[k] = median(p99[k], rounds);
	}
	printf("%s (%s), %u users, %d rounds of %llu ms, medians\n", uri,
	    dir->name, nusers, rounds, (unsigned long long)round_ms);
	printf("%-6s %12s %10s %10s %10s %8s\n", "kind", "lookups/s", "ratio",
	    "p99_us", "p99_ratio", "errors");
	for (int k = 0; k < K_N; k++) {
		if (k == K_COLDN)
			printf("%-6s %12.0f %10.3f %10s %10s %8llu  "
			    "(%d threads, pool %d)\n", kind_name[k], r[k],
			    r[k] / r[K_BARE], "-", "-",
			    (unsigned long long)bad[k], nthreads, nthreads);
		else
			printf("%-6s %12.0f %10.3f %10.1f %10.3f %8llu\n",
			    kind_name[k], r[k], r[k] / r[K_BARE], p[k],
			    p[k] / p[K_BARE], (unsigned long long)bad[k]);
	}
	backend.ops->close(&backend);
	backend_n.ops->close(&backend_n);
	rg_engine_free(engine);
	rg_runtime_unref(runtime);
	ldap_unbind_ext_s(bare_ld, NULL, NULL);
	rg_conf_unref(dirconf);
	free(samples);
	return bad[K_BARE] + bad[K_COLD] + bad[K_WARM] + bad[K_COLDN] ? 1 : 0;
}
