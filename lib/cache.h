/* SPDX-License-Identifier: MIT */
/*
 * The decision cache: recipient key -> found / not found, with positive
 * and negative TTLs, an LRU bound on entries, sharded locks, and
 * single-flight misses (concurrent misses on one key wait for one lookup).
 *
 * A tempfail is never stored. A positive entry older than its TTL but
 * younger than stale_ttl is kept for outage mode: the caller may accept
 * it when every backend fails. Negative entries carry the generation of
 * the data they came from and an epoch; rg_cache_drop_negatives (reload)
 * bumps the epoch so every older negative entry dies.
 *
 * Locking: one mutex per shard guards that shard's table and LRU list;
 * no lock is held while the caller does its lookup.
 */
#ifndef RG_CACHE_H
#define RG_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "conf.h"

#define RG_CACHE_KEY_MAX 260

struct rg_cache;

struct rg_cache_conf {
	uint64_t	size;		/* max entries; 0 = cache disabled */
	uint64_t	positive_ttl_ms;
	uint64_t	negative_ttl_ms;
	uint64_t	stale_ttl_ms;	/* 0 = no outage mode */
};

enum rg_cache_status {
	RG_CACHE_HIT,	/* *ans holds a fresh answer (found or notfound), or the
			 * result another thread's in-flight lookup just got
			 * (may be RG_TEMPFAIL, with ans->shared set) */
	RG_CACHE_MISS,	/* the caller must look up and then call
			 * rg_cache_finish(key) exactly once; ans->stale_found
			 * tells whether a stale positive answer exists */
	RG_CACHE_TIMEOUT,/* waited for another thread's lookup until deadline */
};

struct rg_cache_answer {
	enum rg_result	result;
	char		backend[RG_NAME_MAX];	/* who decided */
	uint64_t	generation;		/* data generation at store time */
	bool		shared;			/* from another thread's lookup */
	bool		stale_found;		/* MISS: a positive answer older than
						 * positive_ttl, within stale_ttl */
	char		stale_backend[RG_NAME_MAX];
};

/* Returns NULL only on allocation failure. */
struct rg_cache *rg_cache_new(const struct rg_cache_conf *);
void	rg_cache_free(struct rg_cache *);	/* NULL allowed */

/* Change sizes/TTLs on reload; entries over the new size are evicted. */
void	rg_cache_configure(struct rg_cache *, const struct rg_cache_conf *);

/*
 * Look key up at time now_ms. A negative entry whose generation differs
 * from cur_generation is treated as absent. If another thread is
 * already looking key up, wait for its result until deadline_ms.
 * Blocks only in that wait.
 */
enum rg_cache_status rg_cache_begin(struct rg_cache *, const char *key,
	    uint64_t cur_generation, uint64_t now_ms, uint64_t deadline_ms,
	    struct rg_cache_answer *ans);

/*
 * A fresh positive answer for key, if there is one (a HIT, counted as
 * such); false otherwise, with no in-flight marker placed: then call
 * rg_cache_begin. Positive entries do not depend on the data generation,
 * so the common case (a known recipient seen recently) needs none.
 */
bool	rg_cache_peek_found(struct rg_cache *, const char *key,
	    uint64_t now_ms, struct rg_cache_answer *ans);

/*
 * End the lookup started by a RG_CACHE_MISS: store found/notfound (with
 * backend name and generation), never RG_TEMPFAIL/RG_CONFIG, and wake
 * the waiters with result either way.
 */
void	rg_cache_finish(struct rg_cache *, const char *key, enum rg_result,
	    const char *backend, uint64_t generation, uint64_t now_ms);

/* Forget every negative entry (reload, table replaced). */
void	rg_cache_drop_negatives(struct rg_cache *);

struct rg_cache_stats {
	uint64_t	hits, misses, waits, stale_used, evictions, entries;
};
void	rg_cache_stats(struct rg_cache *, struct rg_cache_stats *);
/* Count one use of a stale entry (outage mode) in the stats. */
void	rg_cache_note_stale_used(struct rg_cache *);

/* ---- operator view (rcptgate-ctl; cache.c's end) ---- */

bool	rg_cache_flush(struct rg_cache *, const char *key);
uint64_t rg_cache_flush_all(struct rg_cache *);

enum rg_cache_view {
	RG_CACHE_VIEW_NONE = 0,
	RG_CACHE_VIEW_FOUND,
	RG_CACHE_VIEW_NOTFOUND,
	RG_CACHE_VIEW_STALE,
	RG_CACHE_VIEW_EXPIRED,
};
enum rg_cache_view rg_cache_inspect(struct rg_cache *, const char *key,
	    uint64_t now_ms, char backend[RG_NAME_MAX], uint64_t *age_ms);

#endif
