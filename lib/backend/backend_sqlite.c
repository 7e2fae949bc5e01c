/* SPDX-License-Identifier: MIT */
/*
 * The SQLite backend: is the key a row of a local SQLite table?
 *
 * Read-only, prepared statements with bound parameters only (:address,
 * :local, :domain), never SQL built from a recipient. A missing,
 * unreadable, locked or replaced-under-us file gives RG_TEMPFAIL, never
 * RG_NOTFOUND: the caller must not reject on a failure. It does not cache.
 *
 * Locking: no lock shared by all lookups. Lookups run on a small pool
 * of SQLite connections (pool.c; SQLITE_OPEN_NOMUTEX, so SQLite takes no
 * mutex of its own), each used by one thread at a time: a thread takes
 * an idle one, or waits (until its deadline) when every connection is
 * busy; a lookup holds one for a few microseconds. A pool, not a
 * connection per milter thread, so that the page caches stay few and
 * large (the b-tree's interior pages stay hot) however many SMTP
 * sessions are open. Per-thread state and the file's change detection
 * are sqlite_file.c's (its locking is described there).
 *
 * A replaced table (rcptgate-table replace renames a new file over the
 * old) is noticed by a stat() before each lookup: when (st_dev, st_ino)
 * differ from those of the file the connection opened, it is
 * reopened. So a lookup sees the old table or the new, never half.
 *
 * Cost (test/bench/bench_sqlite.c, docs/performance.md): the decision
 * path calls generation() and then up to three lookups per recipient.
 * generation() keeps a per-thread descriptor on the file, so it costs a
 * stat() and a pread() instead of a stat, open, pread, close and a stat
 * of the -wal file; the lookups of the same decision (same millisecond,
 * at most SQ_STAT_REUSE of them) reuse its stat(). No mmap (PRAGMA
 * mmap_size): a table truncated in place under a mapping kills the
 * daemon with SIGBUS (t_fault_sqlite).
 *
 * Immutable reads. SQLite's own per-statement file locking and
 * hot-journal check (4 fcntl, 3 stat a lookup) cost three quarters of a
 * cold lookup. A file rcptgate-table wrote carries its mark
 * (RG_TABLE_APPLICATION_ID, table.h) and is never written in place,
 * only replaced by rename(), so it is opened with immutable=1: no locks.
 * Only when it is in rollback-journal mode, has no -journal file beside
 * it (a crashed in-place writer) and has not been modified for
 * SQ_QUIET_MS (another program writing it in place right now); a
 * connection opened without immutable for that last reason reopens with
 * it once the file is quiet. Should a program write a marked file in
 * place after all, the stat() before each lookup sees its size, mtime
 * or ctime change and the connection reopens, and a "no row" from an immutable
 * connection is only believed if a second stat() shows the file
 * unchanged (otherwise the lookup runs again, with locks): an in-place
 * write can then cost a tempfail, never a wrong 550.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "rg_time.h"
#include "sqlite_priv.h"

static const char *const sq_keys[] = { "path", "query", NULL };

static void
db_close(struct sq_db *d)
{
	if (d->any != NULL)
		sqlite3_finalize(d->any);
	d->any = NULL;
	d->empty = -1;
	if (d->stmt != NULL)
		sqlite3_finalize(d->stmt);
	if (d->db != NULL)
		sqlite3_close_v2(d->db);
	d->stmt = NULL;
	d->db = NULL;
}

/* The pool's hooks: a connection is made unopened; db_lookup() opens
 * it on the file it stats (and reopens it when the file changes). */
static void *
pool_open(void *ctx, uint64_t deadline_ms, struct rg_error *err)
{
	struct sq_db	*d;

	(void)deadline_ms;
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		rg_error_set(err, "out of memory");
		return NULL;
	}
	d->owner = ctx;
	d->empty = -1;
	return d;
}

static void
pool_close(void *ctx, void *conn, bool graceful)
{
	(void)ctx;
	(void)graceful;
	db_close(conn);
	free(conn);
}

static const struct rg_pool_hooks pool_hooks = {
	.open = pool_open,
	.close = pool_close,
};

/* Progress handler: interrupt a statement that runs past the deadline. */
static int
db_progress(void *arg)
{
	struct sq_db	*d = arg;

	return d->deadline_ms != 0 && rg_now_ms() >= d->deadline_ms;
}

static bool
is_param(const char *name)
{
	return name != NULL && (strcmp(name, ":address") == 0 ||
	    strcmp(name, ":local") == 0 || strcmp(name, ":domain") == 0);
}

/*
 * Is stmt a usable lookup: a read-only statement returning columns,
 * with only our named parameters? 0, or -1 with why (static text or
 * the parameter's name) in *why / *bad.
 */
static int
stmt_validate(sqlite3_stmt *stmt, const char **why, const char **bad)
{
	int	i, n;

	*bad = NULL;
	if (!sqlite3_stmt_readonly(stmt) || sqlite3_column_count(stmt) < 1) {
		*why = "must be a SELECT that returns a row when the "
		    "recipient exists";
		return -1;
	}
	n = sqlite3_bind_parameter_count(stmt);
	for (i = 1; i <= n; i++) {
		if (!is_param(sqlite3_bind_parameter_name(stmt, i))) {
			*bad = sqlite3_bind_parameter_name(stmt, i);
			*why = "parameters must be among :address, :local, "
			    ":domain";
			return -1;
		}
	}
	return 0;
}

/*
 * Open c on the file whose stat (taken before the open, so a replace in
 * between only causes one extra reopen) is *st. RG_FOUND on success,
 * RG_CONFIG if the query is wrong for this file, RG_TEMPFAIL otherwise.
 */
static enum rg_result
db_open(struct sq_db *d, const struct stat *st, uint64_t busy_ms,
    struct rg_error *err)
{
	struct sq	*sq = d->owner;
	const char	*why, *bad;
	bool		 marked;
	int		 rc;

	db_close(d);
	atomic_fetch_add(&sq->opens, 1);
	marked = rg_sq_marked_clean(sq, st);
	d->immutable = marked && rg_sq_quiet(st);
	d->upgrade = marked && !d->immutable;
	if (d->immutable)
		atomic_fetch_add(&sq->immutable_opens, 1);
	rc = sqlite3_open_v2(d->immutable ? sq->uri : sq->path, &d->db,
	    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX |
	    (d->immutable ? SQLITE_OPEN_URI : 0), NULL);
	if (rc != SQLITE_OK) {
		rg_error_set(err, "sqlite %s: open: %s", sq->path,
		    d->db != NULL ? sqlite3_errmsg(d->db) :
		    sqlite3_errstr(rc));
		db_close(d);
		return RG_TEMPFAIL;
	}
	sqlite3_extended_result_codes(d->db, 1);
	sqlite3_busy_timeout(d->db, (int)(busy_ms > INT32_MAX ? INT32_MAX :
	    busy_ms));
	sqlite3_progress_handler(d->db, SQ_PROGRESS_STEPS, db_progress, d);
	/* A few pooled connections, not one a milter thread: with one a
	 * thread, 200 connections' page caches made 110 MiB. */
	(void)sqlite3_exec(d->db, "PRAGMA cache_size = " SQ_CACHE_KIB, NULL,
	    NULL, NULL);
	rc = sqlite3_prepare_v3(d->db, sq->query, -1,
	    SQLITE_PREPARE_PERSISTENT, &d->stmt, NULL);
	if (rc != SQLITE_OK) {
		rg_error_set(err, "sqlite %s: %s: %s", sq->path,
		    sq->custom ? "query" : "default query",
		    sqlite3_errmsg(d->db));
		db_close(d);
		return RG_TEMPFAIL;
	}
	if (stmt_validate(d->stmt, &why, &bad) == -1) {
		rg_error_set(err, "sqlite %s: query %s%s%s", sq->path, why,
		    bad ? ", not " : "", bad ? bad : "");
		db_close(d);
		return RG_CONFIG;
	}
	d->i_address = sqlite3_bind_parameter_index(d->stmt, ":address");
	d->i_local = sqlite3_bind_parameter_index(d->stmt, ":local");
	d->i_domain = sqlite3_bind_parameter_index(d->stmt, ":domain");
	d->dev = st->st_dev;
	d->ino = st->st_ino;
	d->size = st->st_size;
	d->mtim = st->st_mtim;
	d->ctim = st->st_ctim;
	return RG_FOUND;
}

static int
bind(sqlite3_stmt *stmt, int idx, const char *v)
{
	if (idx == 0)
		return SQLITE_OK;
	return sqlite3_bind_text(stmt, idx, v != NULL ? v : "", -1,
	    SQLITE_STATIC);
}

/* The detail for `rcptgate -t -v`; a cut trace is harmless. */
static void
trace(const struct rg_query *q, const char *path, const char *what)
{
	rg_trace_set(q->trace, q->tracelen, "sqlite %s: %s", path, what);
}

/* Run c's statement for q: RG_FOUND, RG_NOTFOUND or RG_TEMPFAIL. */
static enum rg_result
db_step(struct sq_db *d, const struct rg_query *q, uint64_t left,
    struct rg_error *err)
{
	struct sq	*sq = d->owner;
	enum rg_result	 r;
	int		 rc;

	d->deadline_ms = q->deadline_ms;
	sqlite3_busy_timeout(d->db, (int)(left > INT32_MAX ? INT32_MAX :
	    left));
	if (bind(d->stmt, d->i_address, q->key) != SQLITE_OK ||
	    bind(d->stmt, d->i_local, q->local) != SQLITE_OK ||
	    bind(d->stmt, d->i_domain, q->domain) != SQLITE_OK) {
		rg_error_set(err, "sqlite %s: bind: %s", sq->path,
		    sqlite3_errmsg(d->db));
		sqlite3_clear_bindings(d->stmt);
		d->deadline_ms = 0;
		return RG_TEMPFAIL;
	}
	rc = sqlite3_step(d->stmt);
	if (rc == SQLITE_ROW)
		r = RG_FOUND;
	else if (rc == SQLITE_DONE)
		r = RG_NOTFOUND;
	else {
		r = RG_TEMPFAIL;
		if ((rc & 0xff) == SQLITE_INTERRUPT)
			rg_error_set(err, "sqlite %s: deadline reached",
			    sq->path);
		else
			rg_error_set(err, "sqlite %s: %s", sq->path,
			    sqlite3_errmsg(d->db));
	}
	sqlite3_reset(d->stmt);
	sqlite3_clear_bindings(d->stmt);
	d->deadline_ms = 0;
	/* Corrupt, I/O error, ...: start afresh next time. */
	if (r == RG_TEMPFAIL && (rc & 0xff) != SQLITE_BUSY &&
	    (rc & 0xff) != SQLITE_LOCKED && (rc & 0xff) != SQLITE_INTERRUPT)
		db_close(d);
	return r;
}


/*
 * Does the default table hold no row at all? Asked only after a "no
 * row", and answered again only when the file changed since (an
 * immutable connection is reopened then; one with locks may be written
 * in place, so its size and times are compared) or while it was empty,
 * so a lookup of a filled table costs nothing more. -1: cannot tell.
 */
static int
db_empty(struct sq_db *d, const struct stat *st)
{
	int	rc;

	if (d->empty == 0 && st->st_size == d->empty_size &&
	    st->st_mtim.tv_sec == d->empty_mtim.tv_sec &&
	    st->st_mtim.tv_nsec == d->empty_mtim.tv_nsec &&
	    st->st_ctim.tv_sec == d->empty_ctim.tv_sec &&
	    st->st_ctim.tv_nsec == d->empty_ctim.tv_nsec)
		return 0;
	if (d->any == NULL && sqlite3_prepare_v3(d->db,
	    "SELECT 1 FROM recipients LIMIT 1", -1,
	    SQLITE_PREPARE_PERSISTENT, &d->any, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(d->any);
	sqlite3_reset(d->any);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	d->empty = rc == SQLITE_DONE;
	d->empty_size = st->st_size;
	d->empty_mtim = st->st_mtim;
	d->empty_ctim = st->st_ctim;
	return d->empty;
}

/*
 * A default table without a single row is a failed export or a
 * mistake, never a domain without users: taken at its word it would
 * reject every recipient. Tempfail instead, and say why at most once a
 * minute (each lookup would otherwise log it).
 */
static enum rg_result
empty_table(struct sq *sq, struct rg_error *err)
{
	uint64_t	now = rg_now_ms(), last;

	rg_error_set(err, "sqlite %s: the table has no row at all: every "
	    "lookup tempfails until it is filled (rcptgate-table replace)",
	    sq->path);
	last = atomic_load(&sq->empty_ms);
	if ((last == 0 || now - last >= 60000) &&
	    atomic_compare_exchange_strong(&sq->empty_ms, &last, now))
		rg_warnx("%s", err->msg);
	return RG_TEMPFAIL;
}

/* The lookup proper, on the locked pool connection d. */
static enum rg_result
db_lookup(struct sq_db *d, const struct rg_query *q, struct stat *st,
    int saved, uint64_t left, struct rg_error *err)
{
	struct sq	*sq = d->owner;
	enum rg_result	 r;
	int		 attempt, empty;

	for (attempt = 0;; attempt++) {
		if (saved != 0) {
			rg_error_set(err, "sqlite %s: %s", sq->path,
			    strerror(saved));
			/* Release the old file's inode; nothing to read. */
			db_close(d);
			return RG_TEMPFAIL;
		}
		if (d->db != NULL && rg_sq_db_stale(d, st))
			db_close(d);
		if (d->db == NULL && (r = db_open(d, st, left, err)) !=
		    RG_FOUND)
			return r;
		r = db_step(d, q, left, err);
		if (r == RG_NOTFOUND && !sq->custom &&
		    (empty = db_empty(d, st)) != 0) {
			if (empty == 1)
				return empty_table(sq, err);
			rg_error_set(err, "sqlite %s: is the table empty? %s",
			    sq->path, sqlite3_errmsg(d->db));
			return RG_TEMPFAIL;
		}
		if (r != RG_NOTFOUND || !d->immutable || attempt > 0)
			return r;
		/* Believe "no row" only from a file nobody wrote meanwhile. */
		saved = stat(sq->path, st) == -1 ? errno : 0;
		if (saved == 0 && !rg_sq_db_stale(d, st))
			return r;
		atomic_fetch_add(&sq->rechecks, 1);
		left = q->deadline_ms != 0 ? rg_ms_left(q->deadline_ms) :
		    SQ_DEFAULT_BUSY_MS;
		if (left == 0) {
			rg_error_set(err, "sqlite %s: deadline passed",
			    sq->path);
			return RG_TEMPFAIL;
		}
	}
}

static enum rg_result
sq_lookup(struct rg_backend *b, const struct rg_query *q,
    struct rg_error *err)
{
	struct sq	*sq = b->priv;
	struct sq_conn	*c;
	struct sq_db	*d;
	struct stat	 st;
	enum rg_result	 r;
	uint64_t	 left;
	int		 saved;
	void		*v;

	atomic_fetch_add(&sq->lookups, 1);
	if ((c = rg_sq_conn_get(sq, err)) == NULL)
		goto fail;
	left = q->deadline_ms != 0 ? rg_ms_left(q->deadline_ms) :
	    SQ_DEFAULT_BUSY_MS;
	if (left == 0) {
		rg_error_set(err, "sqlite %s: deadline passed", sq->path);
		goto fail;
	}
	if (c->st_ms != 0 && c->st_uses < SQ_STAT_REUSE &&
	    c->st_ms == rg_now_ms()) {
		/* The same decision's generation() has just looked. */
		c->st_uses++;
		st = c->st;
		saved = c->st_errno;
	} else
		saved = stat(sq->path, &st) == -1 ? errno : 0;
	/* The connection this thread used last: its page cache is hot on
	 * this core. */
	if (rg_pool_acquire_prefer(sq->pool, c->last, q->deadline_ms != 0 ?
	    q->deadline_ms : rg_now_ms() + left, &v, NULL, err) !=
	    RG_POOL_OK) {
		rg_error_set(err, "sqlite %s: deadline passed waiting for a "
		    "connection", sq->path);
		goto fail;
	}
	d = v;
	c->last = d;
	r = db_lookup(d, q, &st, saved, left, err);
	rg_pool_release(sq->pool, d, RG_POOL_KEEP);
	/* the file's state: what this lookup found of it */
	if (r == RG_TEMPFAIL || r == RG_CONFIG)
		rg_tstate_down(&sq->ts, sq->path, err->msg);
	else
		rg_tstate_up(&sq->ts);
	if (r == RG_TEMPFAIL)
		goto fail;
	if (r == RG_CONFIG) {
		atomic_fetch_add(&sq->errors, 1);
		trace(q, sq->path, "error");
		return r;
	}
	atomic_fetch_add(r == RG_FOUND ? &sq->found : &sq->notfound, 1);
	trace(q, sq->path, r == RG_FOUND ? "row" : "no row");
	return r;

fail:
	atomic_fetch_add(&sq->errors, 1);
	trace(q, sq->path, "error");
	return RG_TEMPFAIL;
}

/* path as an SQLite URI opening it with immutable=1; NULL: ENOMEM. */
static char *
immutable_uri(const char *path)
{
	char	*uri, *o;

	if ((uri = malloc(strlen(path) * 3 + 32)) == NULL)
		return NULL;
	/* "file:" then "//" (an empty authority) before an absolute path,
	 * so a path starting with "//" is not taken for an authority. */
	o = uri + sprintf(uri, "file:%s", path[0] == '/' ? "//" : "");
	for (; *path != '\0'; path++) {
		if (*path == '%' || *path == '?' || *path == '#')
			o += sprintf(o, "%%%02X", (unsigned char)*path);
		else
			*o++ = *path;
	}
	strcpy(o, "?immutable=1");
	return uri;
}

static void
sq_free(struct sq *sq)
{
	if (sq == NULL)
		return;
	rg_pool_free(sq->pool);
	rg_tstate_destroy(&sq->ts);
	free(sq->path);
	free(sq->walpath);
	free(sq->journalpath);
	free(sq->uri);
	free(sq->query);
	free(sq);
}

/*
 * Open the file once, read-only, and prepare the query, so that a wrong
 * query is a configuration error now and not a tempfail on every lookup.
 * A missing or unusable file is not a configuration error (it may
 * appear later; lookups tempfail meanwhile and check() reports it).
 */
static int
sq_validate(const struct rg_section *sec, struct sq *sq,
    struct rg_error *err)
{
	sqlite3		*db = NULL;
	sqlite3_stmt	*stmt = NULL;
	struct stat	 st;
	const char	*why, *bad;
	int		 rc, ret = 0;

	if (stat(sq->path, &st) == -1 || !S_ISREG(st.st_mode))
		return 0;
	rc = sqlite3_open_v2(sq->path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(db, SQ_DEFAULT_BUSY_MS);
	rc = sqlite3_prepare_v2(db, sq->query, -1, &stmt, NULL);
	if (rc == SQLITE_ERROR) {
		if (sq->custom)
			rg_section_error(sec, "query", err, "%s",
			    sqlite3_errmsg(db));
		else
			rg_section_error(sec, "path", err,
			    "'%s': %s (make the table with rcptgate-table)",
			    sq->path, sqlite3_errmsg(db));
		ret = -1;
		goto out;
	}
	if (rc != SQLITE_OK)
		goto out;	/* not a database, locked, ...: runtime */
	if (stmt_validate(stmt, &why, &bad) == -1) {
		rg_section_error(sec, "query", err, "%s%s%s", why,
		    bad ? ", not " : "", bad ? bad : "");
		ret = -1;
	} else
		rg_tstate_up(&sq->ts);	/* the file opened and prepared */
out:
	sqlite3_finalize(stmt);
	sqlite3_close_v2(db);
	return ret;
}

/*
 * Connections in the pool: two a core (a lookup holds one for a few
 * microseconds, so more rarely help), at least SQ_POOL_MIN.
 */
static unsigned
pool_size(void)
{
	long	n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < SQ_POOL_MIN / 2)
		return SQ_POOL_MIN;
	return n > SQ_POOL_MAX / 2 ? SQ_POOL_MAX : (unsigned)n * 2;
}

static int
sq_open(struct rg_backend *b, const struct rg_section *sec,
    struct rg_error *err)
{
	struct sq	*sq;
	const char	*path, *query;

	if (rg_section_check_keys(sec, sq_keys, err) == -1 ||
	    rg_section_string(sec, "path", SQ_DEFAULT_PATH, &path, err) == -1
	    || rg_section_string(sec, "query", NULL, &query, err) == -1)
		return -1;
	if (*path == '\0') {
		rg_section_error(sec, "path", err, "empty");
		return -1;
	}
	if (query != NULL && *query == '\0') {
		rg_section_error(sec, "query", err,
		    "empty (leave the key out for the default)");
		return -1;
	}
	if ((sq = calloc(1, sizeof(*sq))) == NULL)
		goto nomem;
	rg_tstate_init(&sq->ts);
	if ((sq->path = strdup(path)) == NULL ||
	    (sq->query = strdup(query != NULL ? query : SQ_DEFAULT_QUERY))
	    == NULL || (sq->uri = immutable_uri(path)) == NULL)
		goto nomem;
	if (asprintf(&sq->walpath, "%s-wal", path) == -1) {
		sq->walpath = NULL;	/* asprintf leaves it undefined */
		goto nomem;
	}
	if (asprintf(&sq->journalpath, "%s-journal", path) == -1) {
		sq->journalpath = NULL;
		goto nomem;
	}
	sq->custom = query != NULL;
	if ((sq->pool = rg_pool_new(&pool_hooks, sq, pool_size(), 0, NULL)) ==
	    NULL)
		goto nomem;
	if (sq_validate(sec, sq, err) == -1) {
		sq_free(sq);
		return -1;
	}
	b->priv = sq;
	return 0;

nomem:
	sq_free(sq);
	rg_section_error(sec, "path", err, "out of memory");
	return -1;
}

static void
sq_close(struct rg_backend *b)
{
	struct sq	*sq = b->priv;

	if (sq == NULL)
		return;
	/* No lookup runs (the runtime holding the backend is released). */
	rg_sq_conns_release(sq);
	sq_free(sq);
	b->priv = NULL;
}


/*
 * For `rcptgate -n`: the file exists, is a readable SQLite database and
 * the query prepares. Warns when the default table is empty (every
 * recipient of the checked domains would be rejected).
 */
static int
sq_check(struct rg_backend *b, struct rg_error *err, struct rg_error *warn)
{
	struct sq	*sq = b->priv;
	sqlite3		*db = NULL;
	sqlite3_stmt	*stmt = NULL;
	struct stat	 st;
	const char	*why, *bad;
	int		 rc, ret = -1, saved;

	if (stat(sq->path, &st) == -1) {
		saved = errno;
		rg_error_set(err, "%s: %s (lookups tempfail)", sq->path, strerror(saved));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		rg_error_set(err, "%s: not a regular file", sq->path);
		return -1;
	}
	if (access(sq->path, R_OK) == -1) {
		saved = errno;
		rg_error_set(err, "%s: %s", sq->path, strerror(saved));
		return -1;
	}
	rc = sqlite3_open_v2(sq->path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, SQ_DEFAULT_BUSY_MS);
		rc = sqlite3_prepare_v2(db, sq->query, -1, &stmt, NULL);
	}
	if (rc != SQLITE_OK) {
		rg_error_set(err, "%s: %s", sq->path,
		    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	if (stmt_validate(stmt, &why, &bad) == -1) {
		rg_error_set(err, "query %s%s%s", why,
		    bad ? ", not " : "", bad ? bad : "");
		goto out;
	}
	ret = 0;
	if (!sq->custom) {
		sqlite3_finalize(stmt);
		stmt = NULL;
		if (sqlite3_prepare_v2(db,
		    "SELECT 1 FROM recipients LIMIT 1", -1, &stmt, NULL) ==
		    SQLITE_OK && sqlite3_step(stmt) == SQLITE_DONE)
			rg_error_append(warn, "%s: the table is "
			    "empty: every lookup tempfails until it has rows",
			    sq->path);
	}
out:
	sqlite3_finalize(stmt);
	sqlite3_close_v2(db);
	return ret;
}

static void
sq_stats(struct rg_backend *b, char *buf, size_t len)
{
	struct sq	*sq = b->priv;

	snprintf(buf, len, "lookups=%" PRIu64 " found=%" PRIu64
	    " notfound=%" PRIu64 " errors=%" PRIu64 " opens=%" PRIu64
	    " immutable_opens=%" PRIu64 " rechecks=%" PRIu64,
	    (uint64_t)atomic_load(&sq->lookups),
	    (uint64_t)atomic_load(&sq->found),
	    (uint64_t)atomic_load(&sq->notfound),
	    (uint64_t)atomic_load(&sq->errors),
	    (uint64_t)atomic_load(&sq->opens),
	    (uint64_t)atomic_load(&sq->immutable_opens),
	    (uint64_t)atomic_load(&sq->rechecks));
}

/* One target, the file. */
static size_t
sq_targets(struct rg_backend *b, struct rg_target_state *out, size_t max)
{
	struct sq	*sq = b->priv;

	if (max == 0)
		return 0;
	rg_tstate_read(&sq->ts, sq->path, out);
	return 1;
}

const struct rg_backend_ops rg_backend_sqlite_ops = {
	.type = "sqlite",
	.open = sq_open,
	.lookup = sq_lookup,
	.close = sq_close,
	.generation = rg_sq_generation,
	.check = sq_check,
	.stats = sq_stats,
	.targets = sq_targets,
};
