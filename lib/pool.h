/* SPDX-License-Identifier: MIT */
/*
 * rg_pool: the one bounded connection pool every driver uses (SQLite,
 * LDAP, call-ahead per host, the harvest limiter's Redis store).
 *
 * The pool knows nothing of what it holds: the driver gives it hooks to
 * open, close and (optionally) health-check one connection, and the
 * pool bounds how many exist, hands idle ones out most recently used
 * first, makes callers wait (until their CLOCK_MONOTONIC deadline, in
 * rg_now_ms() milliseconds) when all are busy, and closes those left
 * idle too long.
 *
 * It must not hold its lock across a hook: open and close may do
 * network I/O. Thread-safe; see pool.c for the locking.
 */
#ifndef RG_POOL_H
#define RG_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rg_error.h"

struct rg_pool;

/* What the driver provides. ctx is passed back to every hook. */
struct rg_pool_hooks {
	/*
	 * Make one connection, by deadline_ms (rg_now_ms(); 0 = the
	 * caller has no deadline). May block. NULL with err set on
	 * failure. Never called with the pool's lock held.
	 */
	void	*(*open)(void *ctx, uint64_t deadline_ms,
		    struct rg_error *err);
	/*
	 * Close and free conn. graceful is false for a connection found
	 * broken (no goodbye to a peer that is gone). May block.
	 */
	void	 (*close)(void *ctx, void *conn, bool graceful);
	/* Optional: may this idle connection be handed out again? */
	bool	 (*healthy)(void *ctx, void *conn);
};

/* What rg_pool_acquire() says. */
enum rg_pool_status {
	RG_POOL_OK,		/* *conn is the caller's until release */
	RG_POOL_TIMEOUT,	/* every slot busy until the deadline */
	RG_POOL_FAILED		/* open() failed: err says why */
};

/* How a connection comes back. */
enum rg_pool_return {
	RG_POOL_KEEP,		/* idle, for the next caller */
	RG_POOL_CLOSE,		/* close it gracefully, free the slot */
	RG_POOL_BROKEN		/* close it without a goodbye */
};

struct rg_pool_stats {
	uint64_t	opens;		/* successful open() calls */
	uint64_t	reuses;		/* acquisitions of an idle one */
	uint64_t	waits;		/* acquisitions that had to wait */
	uint64_t	timeouts;	/* ... and got nothing in time */
	size_t		size;		/* connections (idle + busy + opening) */
	size_t		idle;
	size_t		peak;		/* highest size seen */
	size_t		max;
};

/*
 * A pool of at most max connections (max >= 1); idle_ms > 0 closes
 * connections idle that long (at the next acquire or rg_pool_reap()),
 * 0 keeps them. The hooks are copied. NULL with err set on failure
 * (out of memory). Free with rg_pool_free(). Never blocks.
 */
struct rg_pool	*rg_pool_new(const struct rg_pool_hooks *hooks, void *ctx,
		    size_t max, uint64_t idle_ms, struct rg_error *err);

/*
 * Close every idle connection and free the pool. Every acquired
 * connection must have been released. NULL does nothing.
 */
void		 rg_pool_free(struct rg_pool *pool);

/*
 * Take a connection: an idle one if any (*reused = true, when reused
 * is not NULL), else a new one by open() while fewer than max exist,
 * else wait for one until deadline_ms (0: do not wait). Blocks for
 * open() and the wait. On RG_POOL_OK *conn belongs to the caller until
 * rg_pool_release() or rg_pool_rebuild().
 */
enum rg_pool_status rg_pool_acquire(struct rg_pool *pool,
		    uint64_t deadline_ms, void **conn, bool *reused,
		    struct rg_error *err);

/*
 * rg_pool_acquire(), but taking the idle connection prefer if it is
 * idle (compared, never dereferenced: it may be long gone). A thread
 * that keeps to one connection keeps its caches warm on its core (the
 * SQLite page cache: two threads swapping connections cost a tenth of
 * their lookups). The idle list is scanned: for small pools.
 */
enum rg_pool_status rg_pool_acquire_prefer(struct rg_pool *pool,
		    const void *prefer, uint64_t deadline_ms, void **conn,
		    bool *reused, struct rg_error *err);

/* Give conn back (see enum rg_pool_return). Blocks only in close(). */
void		 rg_pool_release(struct rg_pool *pool, void *conn,
		    enum rg_pool_return how);

/*
 * conn proved broken: close it without a goodbye and open another in
 * its slot, so no other caller takes the slot meanwhile. The new
 * connection (the caller's until released), or NULL with err set and
 * the slot freed.
 */
void		*rg_pool_rebuild(struct rg_pool *pool, void *conn,
		    uint64_t deadline_ms, struct rg_error *err);

/*
 * Close the connections idle for idle_ms or more. Returns how many.
 * Blocks in close() (never with the lock held).
 */
size_t		 rg_pool_reap(struct rg_pool *pool);

/* The counters, read consistently under the lock. */
void		 rg_pool_stats(struct rg_pool *pool, struct rg_pool_stats *st);

#endif
