/* SPDX-License-Identifier: MIT */
/*
 * The cache's insides, shared by cache.c (lookups, single flight) and
 * cache_admin.c (the operator's flush and inspect). Nothing else
 * includes this file.
 *
 * Locking: as cache.c says; one mutex per shard.
 */
#ifndef RG_CACHE_INT_H
#define RG_CACHE_INT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "cache.h"
#include "dlist.h"

struct entry {
	struct entry	*hnext;		/* hash chain */
	struct rg_dlink	 lru;		/* LRU list, most recent at head */
	uint64_t	 hash;
	uint64_t	 generation;
	uint64_t	 stored_at;
	uint64_t	 epoch;
	uint64_t	 touched;	/* shard tick of the last relink */
	enum rg_result	 result;	/* RG_FOUND or RG_NOTFOUND only */
	char		 backend[RG_NAME_MAX];
	char		 key[];
};

struct flight {
	struct flight	*next;		/* shard's in-flight list */
	uint64_t	 hash;
	uint64_t	 owner_deadline;	/* rg_now_ms clock */
	uint64_t	 epoch;		/* cache epoch when the lookup began */
	unsigned	 waiters;	/* threads waiting; last one frees */
	bool		 done;		/* unlinked, result valid */
	enum rg_result	 result;
	uint64_t	 generation;
	char		 backend[RG_NAME_MAX];
	char		 key[];
};

struct shard {
	/* guards every other field of this shard: table, LRU, flights,
	 * counters, tick and cap */
	pthread_mutex_t	 mu;
	/* counters next to the lock: a hit then writes one cache line */
	uint64_t	 hits, misses, waits;
	pthread_cond_t	 cv;		/* broadcast when a flight ends */
	struct entry	**table;
	size_t		 nbuckets;	/* power of two */
	struct rg_dlist	 lru;
	struct flight	*flights;
	uint64_t	 count;
	uint64_t	 cap;
	uint64_t	 tick;		/* counts inserts and relinks */
	uint64_t	 evictions;
};

/* Padded so two threads on two shards do not share a cache line. */
struct padded_shard {
	alignas(64) struct shard s;
};

struct rg_cache {
	uint64_t		 sipkey[2];	/* read-only after new */
	unsigned		 nshards;	/* power of two, fixed */
	_Atomic uint64_t	 size;
	_Atomic uint64_t	 positive_ttl;
	_Atomic uint64_t	 negative_ttl;
	_Atomic uint64_t	 stale_ttl;
	_Atomic uint64_t	 epoch;
	struct padded_shard	*shards;
	/* written rarely, kept off the line every hit reads */
	alignas(64) _Atomic uint64_t stale_used;
	_Atomic uint64_t	 misses_nocache; /* disabled, long key */
};

/* Key length, or 0 when the key cannot be cached (NULL, empty, too long). */
static inline size_t
rg_cache_key_len(const char *key)
{
	size_t	len;

	if (key == NULL)
		return 0;
	len = strnlen(key, RG_CACHE_KEY_MAX + 1);
	return len > RG_CACHE_KEY_MAX ? 0 : len;
}

static inline struct shard *
rg_cache_shard_of(struct rg_cache *c, uint64_t h)
{
	return &c->shards[h & (c->nshards - 1)].s;
}

static inline size_t
rg_cache_bucket_of(const struct shard *s, uint64_t h)
{
	/* the low bits picked the shard; use the high ones here */
	return (size_t)(h >> 32) & (s->nbuckets - 1);
}

/* With the shard lock held: key's entry, or NULL. */
struct entry *rg_cache_entry_find(struct shard *, uint64_t h, const char *key,
	    size_t len);

/* With the shard lock held: unlink and free e. */
void	rg_cache_entry_remove(struct shard *, struct entry *);

#endif
