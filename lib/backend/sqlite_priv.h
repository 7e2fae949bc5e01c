/* SPDX-License-Identifier: MIT */
/*
 * The SQLite backend's private header: the instance, its pooled
 * connections and per-thread state, shared by backend_sqlite.c (open,
 * lookups, check) and sqlite_file.c (the table file: per-thread
 * descriptors, generation(), has the file changed or been replaced).
 * Nothing else includes it.
 */
#ifndef RG_SQLITE_PRIV_H
#define RG_SQLITE_PRIV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "backend.h"
#include "pool.h"
#include "target_state.h"

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

/* One pooled SQLite connection to an instance's file: used by one
 * thread at a time (the one that took it from the pool). */
struct sq_db {
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
	const void	*last;		/* pool connection last used (compared
					 * only: rg_pool_acquire_prefer) */
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
	struct rg_pool	*pool;		/* of struct sq_db; pool.c locks */
	atomic_uint_fast64_t lookups;
	atomic_uint_fast64_t found;
	atomic_uint_fast64_t notfound;
	atomic_uint_fast64_t errors;
	atomic_uint_fast64_t opens;
	atomic_uint_fast64_t immutable_opens;
	atomic_uint_fast64_t rechecks;	/* "no row"s looked up again */
	atomic_uint_fast64_t empty_ms;	/* last "empty table" warning */
	struct rg_tstate ts;		/* the file: did the last open or
					 * lookup work? */
};

/* sqlite_file.c */

/* This thread's state for sq, made if new; NULL: out of memory (err). */
struct sq_conn	*rg_sq_conn_get(struct sq *sq, struct rg_error *err);
/*
 * sq is being closed (no lookup runs): detach every thread's state
 * from it; each thread frees its own at its next lookup or exit.
 */
void		 rg_sq_conns_release(struct sq *sq);
/* Has the file been left alone for SQ_QUIET_MS? */
bool		 rg_sq_quiet(const struct stat *st);
/* Is the file *st describes rcptgate-table's, in rollback mode, with no
 * -journal beside it (safe to open immutable=1)? */
bool		 rg_sq_marked_clean(const struct sq *sq, const struct stat *st);
/* Must d be reopened before it reads the file *st describes? */
bool		 rg_sq_db_stale(const struct sq_db *d, const struct stat *st);
/* The backend's generation() (see sqlite_file.c). */
uint64_t	 rg_sq_generation(struct rg_backend *b);

#endif
