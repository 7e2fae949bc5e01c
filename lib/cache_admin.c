/* SPDX-License-Identifier: MIT */
/*
 * The operator's view of the decision cache (rcptgate-ctl flush and
 * explain): drop one entry or all, and say what is held for a key
 * without counting a hit or moving it in the LRU.
 *
 * Must not: answer lookups (cache.c) or touch in-flight lookups.
 * Locking: one shard lock at a time, briefly.
 */
#include <stdlib.h>

#include "cache_int.h"
#include "hash.h"

/*
 * Drop key's entry, positive or negative. Returns true if there was
 * one. An in-flight lookup of key is left alone: what it stores is
 * fresh. Brief shard lock; never blocks otherwise.
 */
bool
rg_cache_flush(struct rg_cache *c, const char *key)
{
	struct shard	*s;
	struct entry	*e;
	uint64_t	 h;
	size_t		 len = rg_cache_key_len(key);

	if (c == NULL || len == 0)
		return false;
	h = rg_siphash24(c->sipkey, key, len);
	s = rg_cache_shard_of(c, h);
	pthread_mutex_lock(&s->mu);
	if ((e = rg_cache_entry_find(s, h, key, len)) != NULL)
		rg_cache_entry_remove(s, e);
	pthread_mutex_unlock(&s->mu);
	return e != NULL;
}

/* Drop every entry; returns how many. One shard lock at a time. */
uint64_t
rg_cache_flush_all(struct rg_cache *c)
{
	uint64_t	n = 0;
	unsigned	i;

	if (c == NULL)
		return 0;
	for (i = 0; i < c->nshards; i++) {
		struct shard	*s = &c->shards[i].s;

		pthread_mutex_lock(&s->mu);
		while (s->lru.head != NULL) {
			rg_cache_entry_remove(s, RG_DLIST_ENTRY(s->lru.head,
			    struct entry, lru));
			n++;
		}
		pthread_mutex_unlock(&s->mu);
	}
	return n;
}

/*
 * What the cache holds for key, without counting a hit or miss, moving
 * it in the LRU or removing it: RG_CACHE_VIEW_NONE, _FOUND, _NOTFOUND
 * (fresh under its TTL, any generation), _STALE (a positive past its
 * TTL kept for outage mode), _EXPIRED. backend and age_ms are set when
 * an entry exists. Brief shard lock.
 */
enum rg_cache_view
rg_cache_inspect(struct rg_cache *c, const char *key, uint64_t now_ms,
    char backend[RG_NAME_MAX], uint64_t *age_ms)
{
	enum rg_cache_view	 v = RG_CACHE_VIEW_NONE;
	struct shard		*s;
	struct entry		*e;
	uint64_t		 h, age;
	size_t			 len = rg_cache_key_len(key);

	backend[0] = '\0';
	*age_ms = 0;
	if (c == NULL || len == 0)
		return v;
	h = rg_siphash24(c->sipkey, key, len);
	s = rg_cache_shard_of(c, h);
	pthread_mutex_lock(&s->mu);
	if ((e = rg_cache_entry_find(s, h, key, len)) != NULL) {
		age = now_ms > e->stored_at ? now_ms - e->stored_at : 0;
		*age_ms = age;
		memcpy(backend, e->backend, RG_NAME_MAX);
		if (e->result == RG_FOUND)
			v = age < atomic_load(&c->positive_ttl) ?
			    RG_CACHE_VIEW_FOUND : age < atomic_load(&c->stale_ttl) ?
			    RG_CACHE_VIEW_STALE : RG_CACHE_VIEW_EXPIRED;
		else
			v = age < atomic_load(&c->negative_ttl) &&
			    e->epoch == atomic_load(&c->epoch) ?
			    RG_CACHE_VIEW_NOTFOUND : RG_CACHE_VIEW_EXPIRED;
	}
	pthread_mutex_unlock(&s->mu);
	return v;
}
