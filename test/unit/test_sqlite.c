/* SPDX-License-Identifier: MIT */
/*
 * The backend registry and the SQLite backend, on real SQLite files in a
 * temporary directory: answers, configuration errors, failures that must
 * tempfail (never notfound), the deadline under a lock, generations,
 * concurrent lookups and lookups across atomic replaces.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "backend.h"
#include "rg_time.h"
#include "table.h"

static char	dir[64];

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static int
setup(void **state)
{
	strcpy(dir, "/tmp/rg-sqlite-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
path_in(char *buf, size_t len, const char *name)
{
	int	n = snprintf(buf, len, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < len);
}

/* A table holding exactly the NULL-terminated addrs, via lib/table.c. */
static void
make_table(const char *db, const char *const *addrs)
{
	struct rg_table_keys	 keys = { 0 };
	char			 key[RG_PATH_MAX + 1], why[256], err[512];
	size_t			 i;

	for (i = 0; addrs[i] != NULL; i++) {
		assert_int_equal(rg_table_normalise(addrs[i], key, why,
		    sizeof(why)), 0);
		keys.v = realloc(keys.v, (keys.n + 1) * sizeof(*keys.v));
		assert_non_null(keys.v);
		keys.v[keys.n++] = strdup(key);
	}
	keys.cap = keys.n;
	assert_int_equal(rg_table_replace(db, &keys, RG_TABLE_FORCE, err,
	    sizeof(err)), 0);
	rg_table_keys_free(&keys);
}

/* A [backend NAME] section as the loader would build it. */
struct secbuf {
	struct rg_section	sec;
	struct rg_kv		kv[8];
};

static void
sec_init(struct secbuf *s, const char *name, ...)
{
	va_list		 ap;
	const char	*k;

	memset(s, 0, sizeof(*s));
	s->sec.name = (char *)name;
	s->sec.file = "test.conf";
	s->sec.line = 10;
	s->sec.kv = s->kv;
	va_start(ap, name);
	while ((k = va_arg(ap, const char *)) != NULL) {
		assert_true(s->sec.n < 8);
		s->kv[s->sec.n].key = (char *)k;
		s->kv[s->sec.n].value = va_arg(ap, char *);
		s->kv[s->sec.n].line = 11 + (int)s->sec.n;
		s->sec.n++;
	}
	va_end(ap);
}

static struct rg_backend *
open_sqlite(const char *db, const char *query)
{
	struct secbuf		 s;
	struct rg_error		 err = { .count = 0 };
	struct rg_backend	*b;

	if (query != NULL)
		sec_init(&s, "local", "type", "sqlite", "path", db, "query",
		    query, (char *)NULL);
	else
		sec_init(&s, "local", "type", "sqlite", "path", db,
		    (char *)NULL);
	b = rg_backend_open(&s.sec, &err);
	if (b == NULL)
		fail_msg("open: %s", err.msg);
	assert_null(b->surrogate_reason);
	return b;
}

static enum rg_result
lookup(struct rg_backend *b, const char *key, uint64_t budget_ms,
    struct rg_error *err)
{
	struct rg_query	 q;
	char		 local[RG_LOCAL_MAX + 1];
	const char	*at = strrchr(key, '@');

	assert_non_null(at);
	assert_true((size_t)(at - key) < sizeof(local));
	memcpy(local, key, (size_t)(at - key));
	local[at - key] = '\0';
	memset(&q, 0, sizeof(q));
	q.key = key;
	q.local = local;
	q.domain = at + 1;
	q.deadline_ms = rg_now_ms() + budget_ms;
	return rg_backend_lookup(b, &q, err);
}

static const char *const base_rows[] = { "alice@example.com",
	"Bob.Smith@Example.COM", "@example.net", NULL };

static void
test_lookups(void **state)
{
	static const struct {
		const char	*key;
		enum rg_result	 want;
	} cases[] = {
		{ "alice@example.com",		RG_FOUND },
		{ "ALICE@EXAMPLE.COM",		RG_FOUND },	/* NOCASE */
		{ "bob.smith@example.com",	RG_FOUND },	/* normalised */
		{ "carol@example.com",		RG_NOTFOUND },
		{ "@example.net",		RG_FOUND },	/* catch-all */
		{ "@EXAMPLE.NET",		RG_FOUND },
		{ "@example.com",		RG_NOTFOUND },
		{ "alice@example.net",		RG_NOTFOUND },	/* key only */
		{ "x' OR '1'='1@example.com",	RG_NOTFOUND },	/* bound */
	};
	struct rg_backend	*b;
	struct rg_error		 err;
	char			 db[128], trace[128];
	struct rg_query		 q = { 0 };
	size_t			 i;

	path_in(db, sizeof(db), "lookups.db");
	make_table(db, base_rows);
	b = open_sqlite(db, NULL);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rg_error_clear(&err);
		if (lookup(b, cases[i].key, 2000, &err) != cases[i].want)
			fail_msg("%s: want %s (%s)", cases[i].key,
			    rg_result_str(cases[i].want), err.msg);
	}
	/* The trace for `rcptgate -t -v`. */
	q.key = "alice@example.com";
	q.local = "alice";
	q.domain = "example.com";
	q.deadline_ms = rg_now_ms() + 1000;
	q.trace = trace;
	q.tracelen = sizeof(trace);
	assert_int_equal(rg_backend_lookup(b, &q, &err), RG_FOUND);
	assert_non_null(strstr(trace, "row"));
	/* A deadline already passed: tempfail, no lookup. */
	q.deadline_ms = rg_now_ms() - 1;
	assert_int_equal(rg_backend_lookup(b, &q, &err), RG_TEMPFAIL);
	rg_backend_free(b);
}

static void
sql_exec(const char *db, const char *sql)
{
	sqlite3	*h;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	sqlite3_close(h);
}

/* Issue 12, point 5: a default table without rows never says "no". */
static void
test_empty_table(void **state)
{
	static const char *const none[] = { NULL };
	struct rg_backend	*b;
	struct rg_error		 err;
	char			 db[128], plain[128];

	path_in(db, sizeof(db), "empty.db");
	make_table(db, none);
	b = open_sqlite(db, NULL);
	rg_error_clear(&err);
	assert_int_equal(lookup(b, "alice@example.com", 2000, &err),
	    RG_TEMPFAIL);
	assert_non_null(strstr(err.msg, "no row at all"));
	assert_int_equal(lookup(b, "@example.com", 2000, &err), RG_TEMPFAIL);
	/* Filled: answers again; emptied again: tempfails again. */
	make_table(db, base_rows);
	assert_int_equal(lookup(b, "alice@example.com", 2000, &err),
	    RG_FOUND);
	assert_int_equal(lookup(b, "carol@example.com", 2000, &err),
	    RG_NOTFOUND);
	make_table(db, none);
	assert_int_equal(lookup(b, "carol@example.com", 2000, &err),
	    RG_TEMPFAIL);
	rg_backend_free(b);

	/* A custom query is the operator's: an empty result is "no". */
	b = open_sqlite(db, "SELECT 1 FROM recipients WHERE address = "
	    ":address");
	assert_int_equal(lookup(b, "carol@example.com", 2000, &err),
	    RG_NOTFOUND);
	rg_backend_free(b);

	/* A table written in place by another program (with locks). */
	path_in(plain, sizeof(plain), "inplace-empty.db");
	sql_exec(plain, "CREATE TABLE recipients (address TEXT PRIMARY KEY "
	    "COLLATE NOCASE)");
	b = open_sqlite(plain, NULL);
	assert_int_equal(lookup(b, "carol@example.com", 2000, &err),
	    RG_TEMPFAIL);
	sql_exec(plain, "INSERT INTO recipients VALUES ('alice@example.com')");
	assert_int_equal(lookup(b, "carol@example.com", 2000, &err),
	    RG_NOTFOUND);
	sql_exec(plain, "DELETE FROM recipients");
	assert_int_equal(lookup(b, "carol@example.com", 2000, &err),
	    RG_TEMPFAIL);
	rg_backend_free(b);
}

static void
test_custom_query(void **state)
{
	static const struct {
		const char	*key;
		enum rg_result	 want;
	} cases[] = {
		{ "alice@example.com",	RG_FOUND },
		{ "alice@example.org",	RG_NOTFOUND },	/* other domain */
		{ "bob@example.com",	RG_NOTFOUND },	/* active = 0 */
		{ "@example.com",	RG_FOUND },	/* :local = "" row */
	};
	struct rg_backend	*b;
	struct rg_error		 err;
	sqlite3			*sq;
	char			 db[128];
	size_t			 i;

	path_in(db, sizeof(db), "custom.db");
	assert_int_equal(sqlite3_open(db, &sq), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq,
	    "CREATE TABLE mailbox (username TEXT, domain TEXT, active INT);"
	    "INSERT INTO mailbox VALUES ('alice', 'example.com', 1),"
	    " ('bob', 'example.com', 0), ('', 'example.com', 1);",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
	b = open_sqlite(db, "SELECT 1 FROM mailbox WHERE username = :local "
	    "AND domain = :domain AND active = 1");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rg_error_clear(&err);
		if (lookup(b, cases[i].key, 2000, &err) != cases[i].want)
			fail_msg("%s: want %s (%s)", cases[i].key,
			    rg_result_str(cases[i].want), err.msg);
	}
	rg_backend_free(b);
}

static void
test_config_errors(void **state)
{
	static const struct {
		const char	*key1, *val1, *key2, *val2;
		const char	*want1, *want2;
	} cases[] = {
		{ "query", "SELEKT 1", NULL, NULL,
		  "test.conf:13: [backend local] key 'query'", "syntax" },
		{ "query", "SELECT 1 FROM nosuch WHERE a = :address", NULL,
		  NULL, "key 'query'", "no such table" },
		{ "query", "SELECT 1 FROM recipients WHERE address = :user",
		  NULL, NULL, "key 'query'", ":user" },
		{ "query", "SELECT 1 FROM recipients WHERE address = ?", NULL,
		  NULL, "key 'query'", "parameters must be" },
		{ "query", "DELETE FROM recipients WHERE address = :address",
		  NULL, NULL, "key 'query'", "SELECT" },
		{ "query", "", NULL, NULL, "key 'query'", "empty" },
		{ "bogus", "1", NULL, NULL, "test.conf:13: [backend local] "
		  "key 'bogus'", "unknown key" },
		{ "path", "", NULL, NULL, "key 'path'", "empty" },
	};
	struct secbuf		 s;
	struct rg_error		 err;
	struct rg_backend	*b;
	char			 db[128];
	size_t			 i;

	path_in(db, sizeof(db), "conf.db");
	make_table(db, base_rows);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rg_error_clear(&err);
		if (strcmp(cases[i].key1, "path") == 0)
			sec_init(&s, "local", "type", "sqlite", cases[i].key1,
			    cases[i].val1, (char *)NULL);
		else
			sec_init(&s, "local", "type", "sqlite", "path", db,
			    cases[i].key1, cases[i].val1, (char *)NULL);
		b = rg_backend_open(&s.sec, &err);
		if (b != NULL)
			fail_msg("case %zu: opened", i);
		if (strstr(err.msg, cases[i].want1) == NULL ||
		    strstr(err.msg, cases[i].want2) == NULL)
			fail_msg("case %zu: '%s' lacks '%s' / '%s'", i,
			    err.msg, cases[i].want1, cases[i].want2);
	}

	/* The registry: types known but not built in (until they are). */
	for (i = 0; i < 2; i++) {
		static const char *const later[] = { "ldap", "callahead" };
		bool	built = false;
		char	want[128];

		for (size_t j = 0; rg_backend_drivers[j] != NULL; j++)
			built |= strcmp(rg_backend_drivers[j]->type,
			    later[i]) == 0;
		rg_error_clear(&err);
		sec_init(&s, "corp", "type", later[i], (char *)NULL);
		assert_null(rg_backend_open(&s.sec, &err));	/* keys lack */
		snprintf(want, sizeof(want), "test.conf:11: [backend corp] "
		    "key 'type': '%s' is not available in this build",
		    later[i]);
		if ((strstr(err.msg, want) != NULL) == built)
			fail_msg("%s (%s): %s", later[i], built ? "built" :
			    "not built", err.msg);
	}
	rg_error_clear(&err);
	sec_init(&s, "x", "type", "mysql", (char *)NULL);
	assert_null(rg_backend_open(&s.sec, &err));
	assert_non_null(strstr(err.msg, "test.conf:11: [backend x] key "
	    "'type': unknown type 'mysql'; built-in types: sqlite"));
	rg_error_clear(&err);
	sec_init(&s, "x", "path", db, (char *)NULL);
	assert_null(rg_backend_open(&s.sec, &err));
	assert_non_null(strstr(err.msg, "key 'type': missing"));
}

static void
test_missing_and_unusable(void **state)
{
	struct rg_backend	*b;
	struct rg_error		 err, warn;
	char			 db[128], other[128];
	int			 fd;

	/* Missing at open: not a config error; lookups tempfail. */
	path_in(db, sizeof(db), "missing.db");
	b = open_sqlite(db, NULL);
	rg_error_clear(&err);
	assert_int_equal(lookup(b, "alice@example.com", 1000, &err),
	    RG_TEMPFAIL);
	assert_non_null(strstr(err.msg, "No such file"));
	assert_int_equal(lookup(b, "nobody@example.com", 1000, &err),
	    RG_TEMPFAIL);	/* never notfound */
	rg_error_clear(&err);
	rg_error_clear(&warn);
	assert_int_equal(rg_backend_check(b, &err, &warn), -1);
	assert_non_null(strstr(err.msg, "missing.db"));

	/* It appears: found. */
	make_table(db, base_rows);
	assert_int_equal(lookup(b, "alice@example.com", 1000, &err),
	    RG_FOUND);
	assert_int_equal(lookup(b, "nobody@example.com", 1000, &err),
	    RG_NOTFOUND);
	rg_error_clear(&err);
	assert_int_equal(rg_backend_check(b, &err, &warn), 0);

	/* Replaced by a file that is not a database: tempfail. */
	path_in(other, sizeof(other), "garbage");
	fd = open(other, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(write(fd, "this is not a database at all\n",
		    30), 30);
	close(fd);
	assert_int_equal(rename(other, db), 0);
	assert_int_equal(lookup(b, "nobody@example.com", 1000, &err),
	    RG_TEMPFAIL);
	assert_int_equal(lookup(b, "alice@example.com", 1000, &err),
	    RG_TEMPFAIL);
	assert_int_equal(rg_backend_check(b, &err, &warn), -1);

	/* Replaced by an empty database (no table): tempfail. */
	assert_int_equal(unlink(db), 0);
	fd = open(db, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(lookup(b, "nobody@example.com", 1000, &err),
	    RG_TEMPFAIL);

	/* A directory at the path (root reads any file): tempfail. */
	assert_int_equal(unlink(db), 0);
	assert_int_equal(mkdir(db, 0755), 0);
	rg_error_clear(&err);
	assert_int_equal(lookup(b, "nobody@example.com", 1000, &err),
	    RG_TEMPFAIL);
	assert_true(err.msg[0] != '\0');
	assert_int_equal(rg_backend_check(b, &err, &warn), -1);
	rg_backend_free(b);
	assert_int_equal(rmdir(db), 0);

	/* An empty table: check() warns that every recipient is rejected. */
	{
		static const char *const none[] = { NULL };

		make_table(db, none);
		b = open_sqlite(db, NULL);
		rg_error_clear(&err);
		rg_error_clear(&warn);
		assert_int_equal(rg_backend_check(b, &err, &warn), 0);
		assert_non_null(strstr(warn.msg, "empty"));
		rg_backend_free(b);
	}
}

static void
test_locked(void **state)
{
	static const uint64_t	budgets[] = { 150, 400 };
	struct rg_backend	*b;
	struct rg_error		 err;
	sqlite3			*w;
	char			 db[128];
	uint64_t		 t0, took;
	size_t			 i;

	path_in(db, sizeof(db), "locked.db");
	make_table(db, base_rows);
	b = open_sqlite(db, NULL);
	assert_int_equal(lookup(b, "alice@example.com", 1000, &err),
	    RG_FOUND);
	assert_int_equal(sqlite3_open(db, &w), SQLITE_OK);
	assert_int_equal(sqlite3_exec(w, "BEGIN EXCLUSIVE", NULL, NULL,
	    NULL), SQLITE_OK);
	for (i = 0; i < sizeof(budgets) / sizeof(budgets[0]); i++) {
		rg_error_clear(&err);
		t0 = rg_now_ms();
		assert_int_equal(lookup(b, "alice@example.com", budgets[i],
		    &err), RG_TEMPFAIL);
		took = rg_now_ms() - t0;
		if (took + 20 < budgets[i] || took > budgets[i] + 250)
			fail_msg("budget %llu ms, took %llu ms",
			    (unsigned long long)budgets[i],
			    (unsigned long long)took);
		assert_non_null(strstr(err.msg, "locked"));
	}
	assert_int_equal(sqlite3_exec(w, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(w);
	assert_int_equal(lookup(b, "alice@example.com", 1000, &err),
	    RG_FOUND);
	rg_backend_free(b);
}

static void
test_generation(void **state)
{
	static const char *const rows2[] = { "zed@example.com", NULL };
	struct rg_table_keys	 keys = { 0 };
	struct rg_backend	*b;
	char			 db[128], errbuf[256], *one = "new@example.com";
	uint64_t		 g0, g1, g2, g3;
	struct rg_error		 err;

	path_in(db, sizeof(db), "gen.db");
	make_table(db, base_rows);
	b = open_sqlite(db, NULL);
	g0 = rg_backend_generation(b);
	assert_true(g0 != 0);
	assert_true(rg_backend_generation(b) == g0);	/* stable */
	make_table(db, rows2);				/* replace */
	g1 = rg_backend_generation(b);
	assert_true(g1 != g0);
	keys.v = &one;
	keys.n = keys.cap = 1;
	assert_int_equal(rg_table_add(db, &keys, errbuf, sizeof(errbuf)), 0);
	g2 = rg_backend_generation(b);				/* in place */
	assert_true(g2 != g1);
	assert_int_equal(lookup(b, "new@example.com", 1000, &err), RG_FOUND);
	assert_int_equal(unlink(db), 0);
	g3 = rg_backend_generation(b);				/* gone */
	assert_true(g3 != g2);
	rg_backend_free(b);
}

/* ---- threads ---- */

#define NTHREADS	4

struct worker {
	struct rg_backend	*b;
	const char *const	*keys;	/* all must be FOUND */
	const char		*absent;	/* must be NOTFOUND, or NULL */
	atomic_int		*stop;
	long			 max_iter;
	uint64_t		 until_ms;
	long			 iter, found, notfound, tempfail;
	char			 lasterr[256];
};

static void *
worker_run(void *arg)
{
	struct worker	*w = arg;
	struct rg_error	 err;
	enum rg_result	 r;
	size_t		 k = 0;

	while (w->iter < w->max_iter && rg_now_ms() < w->until_ms &&
	    (w->stop == NULL || !atomic_load(w->stop))) {
		rg_error_clear(&err);
		if (w->absent != NULL && w->iter % 2 == 1) {
			r = lookup(w->b, w->absent, 2000, &err);
			if (r == RG_NOTFOUND)
				r = RG_FOUND;	/* the right answer */
			else if (r == RG_FOUND)
				r = RG_NOTFOUND;
		} else {
			r = lookup(w->b, w->keys[k], 2000, &err);
			if (w->keys[++k] == NULL)
				k = 0;
		}
		if (r == RG_FOUND)
			w->found++;
		else if (r == RG_NOTFOUND)
			w->notfound++;
		else {
			w->tempfail++;
			snprintf(w->lasterr, sizeof(w->lasterr), "%.200s",
			    err.msg);
		}
		w->iter++;
	}
	return NULL;
}

static void
test_threads(void **state)
{
	static const char *const keys[] = { "alice@example.com",
		"bob.smith@example.com", "@example.net", NULL };
	struct worker		 w[NTHREADS];
	pthread_t		 t[NTHREADS];
	struct rg_backend	*b;
	char			 db[128], stats[256];
	int			 i;

	path_in(db, sizeof(db), "threads.db");
	make_table(db, base_rows);
	b = open_sqlite(db, NULL);
	memset(w, 0, sizeof(w));
	for (i = 0; i < NTHREADS; i++) {
		w[i].b = b;
		w[i].keys = keys;
		w[i].absent = "nobody@example.com";
		w[i].max_iter = 4000;
		w[i].until_ms = rg_now_ms() + 20000;
		assert_int_equal(pthread_create(&t[i], NULL, worker_run,
		    &w[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (w[i].notfound != 0 || w[i].tempfail != 0 ||
		    w[i].iter != w[i].max_iter)
			fail_msg("thread %d: %ld right, %ld wrong, %ld "
			    "tempfail (%s), %ld of %ld", i, w[i].found,
			    w[i].notfound, w[i].tempfail, w[i].lasterr,
			    w[i].iter, w[i].max_iter);
	}
	rg_backend_stats(b, stats, sizeof(stats));
	assert_non_null(strstr(stats, "lookups=16000 "));
	assert_non_null(strstr(stats, "opens=4"));	/* one per thread */
	rg_backend_free(b);
}

/* A thread that outlives the backend it used frees its own connection. */
struct park {
	struct rg_backend	*b, *b2;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	int			 phase;
	enum rg_result		 r1, r2;
};

static void *
park_run(void *arg)
{
	struct park	*p = arg;
	struct rg_error	 err;

	p->r1 = lookup(p->b, "alice@example.com", 1000, &err);
	pthread_mutex_lock(&p->mu);
	p->phase = 1;
	pthread_cond_broadcast(&p->cv);
	while (p->phase != 2)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	p->r2 = lookup(p->b2, "alice@example.com", 1000, &err);
	return NULL;
}

static void
test_close_while_threads_live(void **state)
{
	struct park	 p;
	pthread_t	 t;
	char		 db[128];
	struct rg_error	 err;

	path_in(db, sizeof(db), "park.db");
	make_table(db, base_rows);
	memset(&p, 0, sizeof(p));
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	p.b = open_sqlite(db, NULL);
	assert_int_equal(lookup(p.b, "alice@example.com", 1000, &err),
	    RG_FOUND);
	assert_int_equal(pthread_create(&t, NULL, park_run, &p), 0);
	pthread_mutex_lock(&p.mu);
	while (p.phase != 1)
		pthread_cond_wait(&p.cv, &p.mu);
	/* The thread holds a connection to p.b: close under it (a reload). */
	rg_backend_free(p.b);
	p.b = NULL;
	p.b2 = open_sqlite(db, NULL);
	p.phase = 2;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p.r1, RG_FOUND);
	assert_int_equal(p.r2, RG_FOUND);
	rg_backend_free(p.b2);
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
}

/*
 * Readers look up addresses present in every version of the table while
 * the main thread replaces it 20 times: never a notfound.
 */
static void
test_atomic_replace(void **state)
{
	static const char *const common[] = { "alice@example.com",
		"bob@example.com", "@example.net", NULL };
	struct worker		 w[NTHREADS];
	pthread_t		 t[NTHREADS];
	struct rg_backend	*b;
	struct rg_error		 err;
	atomic_int		 stop = 0;
	const char		*rows[600];
	char			 db[128], extra[500][40], last[40], stats[256];
	int			 i, j, n;
	long			 total = 0;

	path_in(db, sizeof(db), "replace.db");
	make_table(db, common);
	b = open_sqlite(db, NULL);
	memset(w, 0, sizeof(w));
	for (i = 0; i < NTHREADS; i++) {
		w[i].b = b;
		w[i].keys = common;
		w[i].stop = &stop;
		w[i].max_iter = 2000000;
		w[i].until_ms = rg_now_ms() + 60000;
		assert_int_equal(pthread_create(&t[i], NULL, worker_run,
		    &w[i]), 0);
	}
	for (i = 0; i < 20; i++) {
		/* Tables of different sizes, the common rows spread out. */
		n = 0;
		for (j = 0; j < 100 + 20 * i; j++) {
			snprintf(extra[j], sizeof(extra[j]),
			    "user%d.%d@example.com", i, j);
			rows[n++] = extra[j];
			if (j % 37 == 0 && j / 37 < 3)
				rows[n++] = common[j / 37];
		}
		snprintf(last, sizeof(last), "only%d@example.org", i);
		rows[n++] = last;
		rows[n] = NULL;
		make_table(db, rows);
		rg_sleep_ms(10);
	}
	atomic_store(&stop, 1);
	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (w[i].notfound != 0 || w[i].tempfail != 0)
			fail_msg("reader %d: %ld found, %ld NOTFOUND, %ld "
			    "tempfail (%s)", i, w[i].found, w[i].notfound,
			    w[i].tempfail, w[i].lasterr);
		total += w[i].iter;
	}
	/* The readers did read, and the last table is the one seen now. */
	assert_true(total >= 20 * NTHREADS);
	assert_int_equal(lookup(b, "only19@example.org", 1000, &err),
	    RG_FOUND);
	assert_int_equal(lookup(b, "only18@example.org", 1000, &err),
	    RG_NOTFOUND);
	rg_backend_stats(b, stats, sizeof(stats));
	print_message("atomic replace: %ld lookups in 4 threads across 20 "
	    "replaces; %s\n", total, stats);
	rg_backend_free(b);
}

/* Set db's mtime an hour back: "quiet" to the backend. */
static void
age(const char *db, long seconds)
{
	struct timespec	ts[2];

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts[0]), 0);
	ts[0].tv_sec -= seconds;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, db, ts, 0), 0);
}

/* The backend's counter NAME from its stats line. */
static long
stat_of(struct rg_backend *b, const char *name)
{
	char		 buf[512], pat[64];
	const char	*p;

	rg_backend_stats(b, buf, sizeof(buf));
	snprintf(pat, sizeof(pat), " %s=", name);
	p = strstr(buf, pat);
	if (p == NULL)
		fail_msg("no %s in '%s'", name, buf);
	return strtol(p + strlen(pat), NULL, 10);
}

/*
 * A table rcptgate-table wrote (marked) and left alone is read with
 * immutable=1; one written in place after all is seen at the next
 * lookup; a fresh, unmarked or hot-journalled file is read with locks.
 */
static void
test_immutable(void **state)
{
	struct rg_backend	*b;
	struct rg_error		 err;
	sqlite3			*w;
	char			 db[128], journal[160];
	FILE			*f;

	path_in(db, sizeof(db), "imm.db");
	make_table(db, base_rows);
	b = open_sqlite(db, NULL);
	/* Just written: locks, until it has been quiet. */
	assert_int_equal(lookup(b, "alice@example.com", 1000, &err),
	    RG_FOUND);
	assert_int_equal(stat_of(b, "immutable_opens"), 0);
	age(db, 3600);
	assert_int_equal(lookup(b, "alice@example.com", 1000, &err),
	    RG_FOUND);
	assert_int_equal(stat_of(b, "immutable_opens"), 1);
	assert_int_equal(lookup(b, "carol@example.com", 1000, &err),
	    RG_NOTFOUND);

	/* Another program writes it in place: the next lookup sees it. */
	assert_int_equal(sqlite3_open(db, &w), SQLITE_OK);
	assert_int_equal(sqlite3_exec(w, "INSERT INTO recipients VALUES "
	    "('carol@example.com')", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(w);
	assert_int_equal(lookup(b, "carol@example.com", 1000, &err),
	    RG_FOUND);
	assert_int_equal(stat_of(b, "immutable_opens"), 1);
	age(db, 3000);		/* quiet again: immutable again */
	assert_int_equal(lookup(b, "carol@example.com", 1000, &err),
	    RG_FOUND);
	assert_int_equal(stat_of(b, "immutable_opens"), 2);

	/* A -journal beside it (a crashed in-place writer): locks. */
	snprintf(journal, sizeof(journal), "%s-journal", db);
	assert_non_null(f = fopen(journal, "w"));
	fclose(f);
	age(db, 2000);
	assert_int_equal(lookup(b, "alice@example.com", 1000, &err),
	    RG_FOUND);
	assert_int_equal(stat_of(b, "immutable_opens"), 2);
	assert_int_equal(unlink(journal), 0);
	rg_backend_free(b);

	/* Not written by rcptgate-table: never immutable. */
	path_in(db, sizeof(db), "plain.db");
	assert_int_equal(sqlite3_open(db, &w), SQLITE_OK);
	assert_int_equal(sqlite3_exec(w, "CREATE TABLE recipients (address "
	    "TEXT PRIMARY KEY COLLATE NOCASE); INSERT INTO recipients "
	    "VALUES ('alice@example.com')", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(w);
	age(db, 3600);
	b = open_sqlite(db, NULL);
	assert_int_equal(lookup(b, "alice@example.com", 1000, &err),
	    RG_FOUND);
	assert_int_equal(lookup(b, "bob@example.com", 1000, &err),
	    RG_NOTFOUND);
	assert_int_equal(stat_of(b, "immutable_opens"), 0);
	rg_backend_free(b);

	/* Characters that mean something in a URI, in the path. */
	path_in(db, sizeof(db), "a%20b?c#d.db");
	make_table(db, base_rows);
	age(db, 3600);
	b = open_sqlite(db, NULL);
	assert_int_equal(lookup(b, "alice@example.com", 1000, &err),
	    RG_FOUND);
	assert_int_equal(lookup(b, "carol@example.com", 1000, &err),
	    RG_NOTFOUND);
	assert_int_equal(stat_of(b, "immutable_opens"), 1);
	rg_backend_free(b);
}

static void
test_surrogate(void **state)
{
	struct rg_backend	 b;
	struct rg_error		 err, warn;
	char			 reason[] = "cannot reach anything", buf[64];
	int			 i;

	memset(&b, 0, sizeof(b));
	b.ops = &rg_backend_sqlite_ops;
	strcpy(b.name, "dead");
	b.surrogate_reason = reason;
	for (i = 0; i < 3; i++) {
		rg_error_clear(&err);
		assert_int_equal(lookup(&b, "alice@example.com", 1000, &err),
		    RG_TEMPFAIL);
		assert_non_null(strstr(err.msg, reason));
	}
	assert_int_equal(rg_backend_generation(&b), 0);
	assert_int_equal(rg_backend_worst_case_ms(&b), 0);
	assert_int_equal(rg_backend_check(&b, &err, &warn), -1);
	rg_backend_stats(&b, buf, sizeof(buf));
	assert_string_equal(buf, "unavailable");
	assert_string_equal(rg_result_str(RG_FOUND), "found");
	assert_string_equal(rg_result_str(RG_NOTFOUND), "notfound");
	assert_string_equal(rg_result_str(RG_TEMPFAIL), "tempfail");
	assert_string_equal(rg_result_str(RG_CONFIG), "config");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_empty_table),
		cmocka_unit_test(test_custom_query),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_missing_and_unusable),
		cmocka_unit_test(test_locked),
		cmocka_unit_test(test_generation),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_close_while_threads_live),
		cmocka_unit_test(test_atomic_replace),
		cmocka_unit_test(test_immutable),
		cmocka_unit_test(test_surrogate),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
