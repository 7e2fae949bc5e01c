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
 * of SQLite connections (SQLITE_OPEN_NOMUTEX, so SQLite takes no mutex
 * of its own), each under its own mutex: a thread tries the pool slot
 * it was given first, then any free one, and only waits (until its
 * deadline) when every connection is busy; a lookup holds one for a few
 * microseconds. A pool, not a connection per milter thread, so that the
 * page caches stay few and large (the b-tree's interior pages stay hot)
 * however many SMTP sessions are open.
 *
 * Per thread there is only generation()'s state: a descriptor on the
 * file and the last stat(), found through one process-wide pthread key
 * whose value is the head of the thread's list (one entry a backend
 * instance). conns_lock is taken only when a thread makes an entry,
 * when a thread exits and when an instance is closed. One process-wide
 * key rather than one per instance because a pthread_key_delete() does
 * not wait for a destructor already running on an exiting thread. close()
 * only marks another thread's entry dead; the memory always belongs to,
 * and is freed by, the thread that made it.
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
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "backend.h"
#include "table.h"
#include "log.h"
#include "rg_time.h"

#define SQ_DEFAULT_PATH		"/var/lib/rcptgate/recipients.db"
#define SQ_DEFAULT_QUERY \
	"SELECT 1 FROM recipients WHERE address = :address LIMIT 1"
/* Busy timeout for open-time checks and lookups without a deadline. */
#define SQ_DEFAULT_BUSY_MS	2000
/* VM steps between two deadline checks of the progress handler. */
#define SQ_PROGRESS_STEPS	200
/* Page cache per pooled connection, KiB (negative: SQLite's unit is
 * KiB): the b-tree's interior pages of a 1,000,000-row table and then
 * some leaves. */
#define SQ_CACHE_KIB		"-2048"
/* Bounds of the connection pool (pool_size()). */
#define SQ_POOL_MIN		4
#define SQ_POOL_MAX		32
/* Lookups that may reuse the stat() of the generation() before them. */
#define SQ_STAT_REUSE		3
/* A marked file unmodified this long may be read with immutable=1. */
#define SQ_QUIET_MS		2000

struct sq;

/* One pooled SQLite connection to an instance's file. */
struct sq_db {
	pthread_mutex_t	 lock;		/* held for a whole lookup */
	struct sq	*owner;
	sqlite3		*db;		/* NULL: not open (yet, or failed) */
	sqlite3_stmt	*stmt;
	int		 i_address;	/* bind indices, 0 if unused */
	int		 i_local;
	int		 i_domain;
	dev_t		 dev;		/* the file db was opened on */
	ino_t		 ino;
	off_t		 size;		/* ... its size, mtime, ctime then */
	struct timespec	 mtim;
	struct timespec	 ctim;
	bool		 immutable;	/* opened with immutable=1 */
	bool		 upgrade;	/* reopen immutable once quiet */
	uint64_t	 deadline_ms;	/* of the running lookup; 0 = none */
	sqlite3_stmt	*any;		/* "is there a row at all?" */
	int		 empty;		/* its answer: 1, 0, -1 unknown */
	off_t		 empty_size;	/* ... for the file at this size, */
	struct timespec	 empty_mtim;	/* mtime and ctime */
	struct timespec	 empty_ctim;
};

/* One thread's state for one instance: generation()'s file and stat. */
struct sq_conn {
	struct sq	*owner;		/* valid while !dead */
	unsigned	 slot;		/* the pool connection tried first */
	int		 gen_fd;	/* generation(): the path's file, or -1 */
	dev_t		 gen_dev;	/* what gen_fd has open */
	ino_t		 gen_ino;
	uint64_t	 st_ms;		/* generation()'s stat: when (0 = none) */
	unsigned	 st_uses;	/* lookups that reused it */
	int		 st_errno;	/* its errno, 0 if it succeeded */
	struct stat	 st;
	atomic_int	 dead;		/* owner closed; thread frees */
	struct sq_conn	*tnext;		/* the owning thread's list */
	struct sq_conn	*iprev;		/* owner->conns, under conns_lock */
	struct sq_conn	*inext;
};

struct sq {
	char		*path;
	char		*walpath;	/* path + "-wal", for generation() */
	char		*journalpath;	/* path + "-journal" */
	char		*uri;		/* path as an immutable=1 URI */
	char		*query;
	bool		 custom;	/* query came from the config */
	struct sq_conn	*conns;		/* every thread's, under conns_lock */
	struct sq_db	*pool;		/* npool connections */
	unsigned	 npool;
	atomic_uint	 next_slot;	/* spreads threads over the pool */
	atomic_uint_fast64_t lookups;
	atomic_uint_fast64_t found;
	atomic_uint_fast64_t notfound;
	atomic_uint_fast64_t errors;
	atomic_uint_fast64_t opens;
	atomic_uint_fast64_t immutable_opens;
	atomic_uint_fast64_t rechecks;	/* "no row"s looked up again */
	atomic_uint_fast64_t empty_ms;	/* last "empty table" warning */
};

/*
 * Guards every instance's conns list, the iprev/inext links and the
 * transition of a connection to dead. Never taken by a lookup that
 * already has its connection.
 */
static pthread_mutex_t	conns_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_key_t	conns_key;
static pthread_once_t	conns_key_once = PTHREAD_ONCE_INIT;
static int		conns_key_error;

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

static void
conn_close_gen(struct sq_conn *c)
{
	if (c->gen_fd >= 0)
		close(c->gen_fd);
	c->gen_fd = -1;
	c->st_ms = 0;
}

/* Thread exit: close and free this thread's connections. */
static void
conns_destroy(void *v)
{
	struct sq_conn	*c, *next;

	pthread_mutex_lock(&conns_lock);
	for (c = v; c != NULL; c = c->tnext) {
		if (atomic_load(&c->dead))
			continue;
		if (c->iprev != NULL)
			c->iprev->inext = c->inext;
		else
			c->owner->conns = c->inext;
		if (c->inext != NULL)
			c->inext->iprev = c->iprev;
		atomic_store(&c->dead, 1);
	}
	pthread_mutex_unlock(&conns_lock);
	/* Now nobody else can reach them. */
	for (c = v; c != NULL; c = next) {
		next = c->tnext;
		conn_close_gen(c);
		free(c);
	}
}

static void
conns_key_init(void)
{
	conns_key_error = pthread_key_create(&conns_key, conns_destroy);
}

/* Free this thread's dead connections; returns the list head. */
static struct sq_conn *
conns_prune(void)
{
	struct sq_conn	*head, **pp, *c;
	bool		 changed = false;

	head = pthread_getspecific(conns_key);
	for (pp = &head; (c = *pp) != NULL;) {
		if (atomic_load(&c->dead)) {
			*pp = c->tnext;
			conn_close_gen(c);	/* only this thread uses it */
			free(c);	/* close() already closed its db */
			changed = true;
		} else
			pp = &c->tnext;
	}
	if (changed)
		pthread_setspecific(conns_key, head);
	return head;
}

/* This thread's connection to sq, made (not opened) if new; NULL: ENOMEM. */
static struct sq_conn *
conn_get(struct sq *sq, struct rg_error *err)
{
	struct sq_conn	*head, *c;

	if (pthread_once(&conns_key_once, conns_key_init) != 0 ||
	    conns_key_error != 0) {
		rg_error_set(err, "sqlite %s: pthread_key_create failed",
		    sq->path);
		return NULL;
	}
	head = conns_prune();
	for (c = head; c != NULL; c = c->tnext)
		if (c->owner == sq)
			return c;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		rg_error_set(err, "sqlite %s: out of memory", sq->path);
		return NULL;
	}
	c->owner = sq;
	c->slot = atomic_fetch_add(&sq->next_slot, 1) % sq->npool;
	c->gen_fd = -1;
	c->tnext = head;
	if (pthread_setspecific(conns_key, c) != 0) {
		free(c);
		rg_error_set(err, "sqlite %s: pthread_setspecific failed",
		    sq->path);
		return NULL;
	}
	pthread_mutex_lock(&conns_lock);
	c->inext = sq->conns;
	if (sq->conns != NULL)
		sq->conns->iprev = c;
	sq->conns = c;
	pthread_mutex_unlock(&conns_lock);
	return c;
}

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

/* Has the file been left alone for SQ_QUIET_MS? */
static bool
quiet(const struct stat *st)
{
	uint64_t	mtime_ms;

	mtime_ms = (uint64_t)st->st_mtim.tv_sec * 1000 +
	    (uint64_t)st->st_mtim.tv_nsec / 1000000;
	return rg_wall_ms() >= mtime_ms + SQ_QUIET_MS;
}

/*
 * Does the file that *st describes carry rcptgate-table's mark, in
 * rollback-journal mode, with no -journal beside it? Reads its header
 * through a descriptor checked to be that same inode.
 */
static bool
marked_clean(const struct sq *sq, const struct stat *st)
{
	unsigned char	 h[100];
	struct stat	 fst;
	uint32_t	 id;
	bool		 ok = false;
	int		 fd;

	if ((fd = open(sq->path, O_RDONLY | O_CLOEXEC)) == -1)
		return false;
	if (fstat(fd, &fst) == 0 && fst.st_dev == st->st_dev &&
	    fst.st_ino == st->st_ino &&
	    pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
	    memcmp(h, "SQLite format 3", 16) == 0 && h[18] == 1 &&
	    h[19] == 1) {
		id = (uint32_t)h[68] << 24 | (uint32_t)h[69] << 16 |
		    (uint32_t)h[70] << 8 | h[71];
		ok = id == RG_TABLE_APPLICATION_ID;
	}
	close(fd);
	return ok && access(sq->journalpath, F_OK) == -1 && errno == ENOENT;
}

/* Must c be reopened before it reads the file *st describes? */
static bool
db_stale(const struct sq_db *d, const struct stat *st)
{
	if (st->st_dev != d->dev || st->st_ino != d->ino)
		return true;	/* replaced: read the new file */
	if (d->immutable)	/* written in place after all */
		return st->st_size != d->size ||
		    st->st_mtim.tv_sec != d->mtim.tv_sec ||
		    st->st_mtim.tv_nsec != d->mtim.tv_nsec ||
		    st->st_ctim.tv_sec != d->ctim.tv_sec ||
		    st->st_ctim.tv_nsec != d->ctim.tv_nsec;
	return d->upgrade && quiet(st);
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
	marked = marked_clean(sq, st);
	d->immutable = marked && quiet(st);
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
	if (q->trace != NULL && q->tracelen > 0)
		snprintf(q->trace, q->tracelen, "sqlite %s: %s", path, what);
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
 * A pool connection, locked: the thread's own slot if free, else any
 * free one, else wait for the thread's own until the deadline. NULL: the
 * deadline passed.
 */
static struct sq_db *
pool_acquire(struct sq *sq, unsigned slot, uint64_t left_ms)
{
	struct sq_db	*d;
	struct timespec	 ts;
	unsigned	 i;

	for (i = 0; i < sq->npool; i++) {
		d = &sq->pool[(slot + i) % sq->npool];
		if (pthread_mutex_trylock(&d->lock) == 0)
			return d;
	}
	d = &sq->pool[slot];
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(left_ms / 1000);
	ts.tv_nsec += (long)(left_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_mutex_timedlock(&d->lock, &ts) == 0 ? d : NULL;
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
		if (d->db != NULL && db_stale(d, st))
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
		if (saved == 0 && !db_stale(d, st))
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

	atomic_fetch_add(&sq->lookups, 1);
	if ((c = conn_get(sq, err)) == NULL)
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
	if ((d = pool_acquire(sq, c->slot, left)) == NULL) {
		rg_error_set(err, "sqlite %s: deadline passed waiting for a "
		    "connection", sq->path);
		goto fail;
	}
	r = db_lookup(d, q, &st, saved, left, err);
	pthread_mutex_unlock(&d->lock);
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
	unsigned	i;

	if (sq == NULL)
		return;
	for (i = 0; sq->pool != NULL && i < sq->npool; i++) {
		db_close(&sq->pool[i]);
		pthread_mutex_destroy(&sq->pool[i].lock);
	}
	free(sq->pool);
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
	}
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
	unsigned	 i;

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
	sq->npool = pool_size();
	if ((sq->pool = calloc(sq->npool, sizeof(*sq->pool))) == NULL)
		goto nomem;
	for (i = 0; i < sq->npool; i++) {
		sq->pool[i].owner = sq;
		sq->pool[i].empty = -1;
		if (pthread_mutex_init(&sq->pool[i].lock, NULL) != 0) {
			sq->npool = i;	/* sq_free destroys these */
			goto nomem;
		}
	}
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
	struct sq_conn	*c, *next;

	if (sq == NULL)
		return;
	/*
	 * No lookup runs (the runtime holding the backend is released).
	 * Mark every thread's state dead under the lock, so an exiting
	 * thread (conns_destroy) sees it either still linked or dead.
	 * close() is rare (reload, stop).
	 */
	pthread_mutex_lock(&conns_lock);
	for (c = sq->conns; c != NULL; c = next) {
		next = c->inext;
		c->iprev = c->inext = NULL;
		atomic_store(&c->dead, 1);
	}
	sq->conns = NULL;
	pthread_mutex_unlock(&conns_lock);
	/* This thread's own connections can go now; others' at their next
	 * lookup or exit. */
	if (pthread_once(&conns_key_once, conns_key_init) == 0 &&
	    conns_key_error == 0)
		(void)conns_prune();
	sq_free(sq);
	b->priv = NULL;
}

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char	*s = p;

	while (n-- > 0)
		h = (h ^ *s++) * 0x100000001b3ULL;
	return h;
}

/*
 * Changes when the file is replaced (dev, ino), written (size, mtime, and
 * SQLite's file change counter at offset 24, bumped by every commit in
 * rollback mode: mtime alone has the kernel's coarse tick) or, for WAL
 * databases (header byte 18 is 2), when the -wal file changes.
 *
 * Called on every decision, cache hits included, so it must be cheap: a
 * stat() and a pread() on this thread's descriptor for the file, opened
 * again only when the stat shows another inode. The stat is kept for the
 * lookups of the same decision. Without a per-thread connection (out of
 * memory) it opens and closes the file each time, as before.
 */
static uint64_t
sq_generation(struct rg_backend *b)
{
	struct sq	*sq = b->priv;
	struct sq_conn	*c;
	struct stat	 st;
	unsigned char	 hdr[10] = { 0 };	/* bytes 18..27 */
	uint64_t	 h = 0xcbf29ce484222325ULL, v[5];
	int		 fd = -1, e;

	c = conn_get(sq, NULL);
	if (stat(sq->path, &st) == -1) {
		e = errno;
		h = fnv(h, &e, sizeof(e));
		if (c != NULL) {
			conn_close_gen(c);
			c->st_errno = e;
			c->st_ms = rg_now_ms();
			c->st_uses = 0;
		}
		return h != 0 ? h : 1;
	}
	v[0] = (uint64_t)st.st_dev;
	v[1] = (uint64_t)st.st_ino;
	v[2] = (uint64_t)st.st_size;
	v[3] = (uint64_t)st.st_mtim.tv_sec;
	v[4] = (uint64_t)st.st_mtim.tv_nsec;
	h = fnv(h, v, sizeof(v));
	if (c != NULL) {
		if (c->gen_fd >= 0 && (c->gen_dev != st.st_dev ||
		    c->gen_ino != st.st_ino))
			conn_close_gen(c);
		if (c->gen_fd < 0 && (c->gen_fd = open(sq->path,
		    O_RDONLY | O_CLOEXEC)) >= 0) {
			/* The inode stat() saw, or one renamed over it since:
			 * then the next call sees the difference and reopens. */
			c->gen_dev = st.st_dev;
			c->gen_ino = st.st_ino;
		}
		fd = c->gen_fd;
		c->st = st;
		c->st_errno = 0;
		c->st_ms = rg_now_ms();
		c->st_uses = 0;
	} else
		fd = open(sq->path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && pread(fd, hdr, sizeof(hdr), 18) != (ssize_t)sizeof(hdr))
		memset(hdr, 0, sizeof(hdr));
	if (c == NULL && fd >= 0)
		close(fd);
	h = fnv(h, hdr + 6, 4);
	if (hdr[0] == 2 && stat(sq->walpath, &st) == 0) {
		v[0] = (uint64_t)st.st_size;
		v[1] = (uint64_t)st.st_mtim.tv_sec;
		v[2] = (uint64_t)st.st_mtim.tv_nsec;
		h = fnv(h, v, 3 * sizeof(v[0]));
	}
	return h != 0 ? h : 1;
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
		rg_error_set(err, "backend %s: %s: %s (lookups tempfail)",
		    b->name, sq->path, strerror(saved));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		rg_error_set(err, "backend %s: %s: not a regular file",
		    b->name, sq->path);
		return -1;
	}
	if (access(sq->path, R_OK) == -1) {
		saved = errno;
		rg_error_set(err, "backend %s: %s: %s", b->name, sq->path,
		    strerror(saved));
		return -1;
	}
	rc = sqlite3_open_v2(sq->path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, SQ_DEFAULT_BUSY_MS);
		rc = sqlite3_prepare_v2(db, sq->query, -1, &stmt, NULL);
	}
	if (rc != SQLITE_OK) {
		rg_error_set(err, "backend %s: %s: %s", b->name, sq->path,
		    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	if (stmt_validate(stmt, &why, &bad) == -1) {
		rg_error_set(err, "backend %s: query %s%s%s", b->name, why,
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
			rg_error_append(warn, "backend %s: %s: the table is "
			    "empty: every lookup tempfails until it has rows",
			    b->name, sq->path);
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

const struct rg_backend_ops rg_backend_sqlite_ops = {
	.type = "sqlite",
	.open = sq_open,
	.lookup = sq_lookup,
	.close = sq_close,
	.generation = sq_generation,
	.check = sq_check,
	.stats = sq_stats,
};
