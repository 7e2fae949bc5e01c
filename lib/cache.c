/* SPDX-License-Identifier: MIT */
/*
 * The decision cache: recipient key -> found / not found, sharded, with
 * an LRU bound per shard and single-flight misses.
 *
 * Keys come from strangers, so the shard and bucket are picked with
 * SipHash-2-4 under a random key drawn at rg_cache_new: an attacker
 * cannot aim every address at one chain. A key longer than
 * RG_CACHE_KEY_MAX is not cacheable: rg_cache_begin says MISS without an
 * in-flight marker and rg_cache_finish ignores it.
 *
 * What is stored: only found and notfound. A positive entry stays usable
 * as a HIT while younger than positive_ttl and is then kept, but never
 * served as a HIT, until it is stale_ttl old (both measured from
 * stored_at), so outage mode can accept it (ans->stale_found on MISS).
 * A negative entry is a HIT only while younger than negative_ttl, with
 * the caller's current generation and the cache's current epoch
 * (rg_cache_drop_negatives bumps the epoch). A tempfail never replaces
 * or erases anything.
 *
 * Single flight: a MISS puts an in-flight record on the shard; a
 * concurrent rg_cache_begin on the same key waits on the shard's
 * condition variable for rg_cache_finish, or until its own deadline. If
 * the owner never calls rg_cache_finish (a bug), its waiters give up at
 * their deadlines, and the first rg_cache_begin after the owner's own
 * deadline takes the key over, so a key is never blocked for good.
 *
 * It must not: do I/O, hold a lock while the caller looks up, or store a
 * failure. The only blocking is the waiter's timed wait.
 *
 * Locking: one mutex per shard guards that shard's hash table, LRU list,
 * in-flight records and counters; no function holds two shard locks at
 * once. TTLs, size and the epoch are atomics read without a lock.
 */
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "cache_int.h"
#include "hash.h"
#include "log.h"
#include "rg_time.h"

#define MAX_SHARDS	64
#define MIN_PER_SHARD	16	/* a small cache gets fewer shards */
#define MIN_BUCKETS	16

/* Copy a backend name; -1 (and dst "") when it does not fit. */
static int
copy_name(char dst[RG_NAME_MAX], const char *src)
{
	size_t	len = src == NULL ? 0 : strlen(src);

	if (len >= RG_NAME_MAX) {
		dst[0] = '\0';
		return -1;
	}
	memcpy(dst, src == NULL ? "" : src, len + 1);
	return 0;
}

/* Shard i's share of size: the shares add up to size exactly. */
static uint64_t
shard_cap(uint64_t size, unsigned nshards, unsigned i)
{
	return size / nshards + (i < size % nshards ? 1 : 0);
}

/* Shard lock held by every function below up to the public API. */

struct entry *
rg_cache_entry_find(struct shard *s, uint64_t h, const char *key, size_t len)
{
	struct entry	*e;

	for (e = s->table[rg_cache_bucket_of(s, h)]; e != NULL; e = e->hnext)
		if (e->hash == h && memcmp(e->key, key, len + 1) == 0)
			return e;
	return NULL;
}

/*
 * A hit moves the entry to the LRU head only when it is not among the
 * shard's most recent cap/4 inserts and relinks. Relinking writes the
 * entry and both neighbours, which on a hot key bounces those cache
 * lines between cores (2 threads ran at 0.3x one thread with a relink
 * on every hit). The order stays LRU up to that quarter: an entry
 * skipped is still in the front quarter, far from the tail, and is
 * relinked by any hit once it drifts further back. Small shards
 * (cap < 4) are exact.
 */
static void
lru_touch(struct shard *s, struct entry *e)
{
	if (s->tick - e->touched < s->cap / 4)
		return;
	e->touched = ++s->tick;
	if (s->lru.head == &e->lru)
		return;
	rg_dlist_remove(&s->lru, &e->lru);
	rg_dlist_push_head(&s->lru, &e->lru);
}

void
rg_cache_entry_remove(struct shard *s, struct entry *e)
{
	struct entry	**pp;

	for (pp = &s->table[rg_cache_bucket_of(s, e->hash)]; *pp != e;
	    pp = &(*pp)->hnext)
		;
	*pp = e->hnext;
	rg_dlist_remove(&s->lru, &e->lru);
	s->count--;
	free(e);
}

static void
evict_to_cap(struct shard *s)
{
	while (s->count > s->cap && s->lru.tail != NULL) {
		rg_cache_entry_remove(s, RG_DLIST_ENTRY(s->lru.tail, struct entry, lru));
		s->evictions++;
	}
}

/* Double the bucket array; on allocation failure keep the longer chains. */
static void
table_grow(struct shard *s)
{
	size_t		 n = s->nbuckets * 2, i;
	struct entry	**t, *e, *next;

	t = calloc(n, sizeof(*t));
	if (t == NULL)
		return;
	for (i = 0; i < s->nbuckets; i++)
		for (e = s->table[i]; e != NULL; e = next) {
			size_t	b = (size_t)(e->hash >> 32) & (n - 1);

			next = e->hnext;
			e->hnext = t[b];
			t[b] = e;
		}
	free(s->table);
	s->table = t;
	s->nbuckets = n;
}

static struct flight *
flight_find(struct shard *s, uint64_t h, const char *key, size_t len)
{
	struct flight	*f;

	for (f = s->flights; f != NULL; f = f->next)
		if (f->hash == h && memcmp(f->key, key, len + 1) == 0)
			return f;
	return NULL;
}

/* Take f off the list, publish its result, wake everyone on the shard. */
static void
flight_end(struct shard *s, struct flight *f, enum rg_result result,
    const char *backend, uint64_t generation)
{
	struct flight	**pp;

	for (pp = &s->flights; *pp != f; pp = &(*pp)->next)
		;
	*pp = f->next;
	f->next = NULL;
	f->done = true;
	f->result = result;
	f->generation = generation;
	(void)copy_name(f->backend, backend);
	if (f->waiters == 0)
		free(f);
	else
		pthread_cond_broadcast(&s->cv);
}

/*
 * Classify the entry for key at now: fresh (HIT, filled into ans),
 * stale positive (ans->stale_found set), or dead (removed).
 * Returns true for a fresh HIT.
 */
static bool
entry_check(struct rg_cache *c, struct shard *s, struct entry *e,
    uint64_t cur_generation, uint64_t now_ms, struct rg_cache_answer *ans)
{
	uint64_t	age = now_ms > e->stored_at ? now_ms - e->stored_at : 0;
	uint64_t	ttl;

	if (e->result == RG_FOUND) {
		ttl = atomic_load_explicit(&c->positive_ttl,
		    memory_order_relaxed);
		if (age < ttl) {
			ans->result = RG_FOUND;
			memcpy(ans->backend, e->backend, RG_NAME_MAX);
			ans->generation = e->generation;
			lru_touch(s, e);
			return true;
		}
		if (age < atomic_load_explicit(&c->stale_ttl,
		    memory_order_relaxed)) {
			ans->stale_found = true;
			memcpy(ans->stale_backend, e->backend, RG_NAME_MAX);
			return false;
		}
	} else {
		ttl = atomic_load_explicit(&c->negative_ttl,
		    memory_order_relaxed);
		if (age < ttl && e->generation == cur_generation &&
		    e->epoch == atomic_load_explicit(&c->epoch,
		    memory_order_relaxed)) {
			ans->result = RG_NOTFOUND;
			memcpy(ans->backend, e->backend, RG_NAME_MAX);
			ans->generation = e->generation;
			lru_touch(s, e);
			return true;
		}
	}
	rg_cache_entry_remove(s, e);
	return false;
}

bool
rg_cache_peek_found(struct rg_cache *c, const char *key, uint64_t now_ms,
    struct rg_cache_answer *ans)
{
	struct shard	*s;
	struct entry	*e;
	uint64_t	 h, age;
	size_t		 len = rg_cache_key_len(key);
	bool		 hit = false;

	memset(ans, 0, sizeof(*ans));
	ans->result = RG_TEMPFAIL;
	if (len == 0 || atomic_load_explicit(&c->size,
	    memory_order_relaxed) == 0)
		return false;
	h = rg_siphash24(c->sipkey, key, len);
	s = rg_cache_shard_of(c, h);
	pthread_mutex_lock(&s->mu);
	e = rg_cache_entry_find(s, h, key, len);
	if (e != NULL && e->result == RG_FOUND) {
		age = now_ms > e->stored_at ? now_ms - e->stored_at : 0;
		if (age < atomic_load_explicit(&c->positive_ttl,
		    memory_order_relaxed)) {
			ans->result = RG_FOUND;
			memcpy(ans->backend, e->backend, RG_NAME_MAX);
			ans->generation = e->generation;
			lru_touch(s, e);
			s->hits++;
			hit = true;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return hit;
}

/*
 * Create a cache for conf. The shard count is fixed here: 64, or fewer
 * for a small initial size (at least MIN_PER_SHARD entries per shard),
 * so that per-shard LRU stays close to a global LRU; a size of 0
 * (disabled) gets 64 in case a reload enables it. Returns NULL on
 * allocation failure. Free with rg_cache_free. Never blocks.
 */
struct rg_cache *
rg_cache_new(const struct rg_cache_conf *conf)
{
	struct rg_cache	*c;
	unsigned	 i, n;
	pthread_condattr_t ca;

	/* over-aligned (see stale_used): calloc would not do */
	c = aligned_alloc(alignof(struct rg_cache), sizeof(*c));
	if (c == NULL)
		return NULL;
	memset(c, 0, sizeof(*c));
	rg_hash_key_init(c->sipkey);
	n = MAX_SHARDS;
	if (conf->size > 0)
		while (n > 1 && conf->size / n < MIN_PER_SHARD)
			n /= 2;
	c->nshards = n;
	c->shards = aligned_alloc(alignof(struct padded_shard),
	    n * sizeof(*c->shards));
	if (c->shards == NULL) {
		free(c);
		return NULL;
	}
	memset(c->shards, 0, n * sizeof(*c->shards));
	if (pthread_condattr_init(&ca) != 0)
		goto fail_shards;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (i = 0; i < n; i++) {
		struct shard	*s = &c->shards[i].s;

		s->nbuckets = MIN_BUCKETS;
		s->table = calloc(s->nbuckets, sizeof(*s->table));
		if (s->table == NULL)
			break;
		pthread_mutex_init(&s->mu, NULL);
		pthread_cond_init(&s->cv, &ca);
		s->cap = shard_cap(conf->size, n, i);
	}
	pthread_condattr_destroy(&ca);
	if (i < n) {
		while (i-- > 0) {
			pthread_mutex_destroy(&c->shards[i].s.mu);
			pthread_cond_destroy(&c->shards[i].s.cv);
			free(c->shards[i].s.table);
		}
		goto fail_shards;
	}
	atomic_init(&c->size, conf->size);
	atomic_init(&c->positive_ttl, conf->positive_ttl_ms);
	atomic_init(&c->negative_ttl, conf->negative_ttl_ms);
	atomic_init(&c->stale_ttl, conf->stale_ttl_ms);
	atomic_init(&c->epoch, 1);
	atomic_init(&c->stale_used, 0);
	atomic_init(&c->misses_nocache, 0);
	return c;

fail_shards:
	free(c->shards);
	free(c);
	return NULL;
}

/*
 * Free the cache, its entries and any in-flight records. No other
 * thread may use it any more (no waiter may be blocked in it).
 */
void
rg_cache_free(struct rg_cache *c)
{
	unsigned	 i;
	size_t		 b;
	struct entry	*e, *en;
	struct flight	*f, *fn;

	if (c == NULL)
		return;
	for (i = 0; i < c->nshards; i++) {
		struct shard	*s = &c->shards[i].s;

		for (b = 0; b < s->nbuckets; b++)
			for (e = s->table[b]; e != NULL; e = en) {
				en = e->hnext;
				free(e);
			}
		for (f = s->flights; f != NULL; f = fn) {
			fn = f->next;
			free(f);
		}
		free(s->table);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
	}
	free(c->shards);
	free(c);
}

/*
 * Apply new TTLs and size. Shrinking evicts least recently used entries
 * shard by shard; a size of 0 empties and disables the cache (lookups
 * in flight still finish and wake their waiters). The shard count stays
 * as rg_cache_new chose it, and the size is split exactly among shards,
 * so the bound holds; a size below the shard count leaves some shards
 * with no room (their keys are simply never cached). Blocks only on the
 * shard locks, one at a time.
 */
void
rg_cache_configure(struct rg_cache *c, const struct rg_cache_conf *conf)
{
	unsigned	i;

	atomic_store(&c->positive_ttl, conf->positive_ttl_ms);
	atomic_store(&c->negative_ttl, conf->negative_ttl_ms);
	atomic_store(&c->stale_ttl, conf->stale_ttl_ms);
	atomic_store(&c->size, conf->size);
	for (i = 0; i < c->nshards; i++) {
		struct shard	*s = &c->shards[i].s;

		pthread_mutex_lock(&s->mu);
		s->cap = shard_cap(conf->size, c->nshards, i);
		evict_to_cap(s);
		pthread_mutex_unlock(&s->mu);
	}
}

/*
 * See cache.h. On a HIT that is another thread's RG_TEMPFAIL or
 * RG_CONFIG (shared), ans->stale_found is filled as on a MISS, so the
 * waiter can use outage mode too. A MISS on a disabled cache, for a key
 * too long to cache, or when the in-flight record cannot be allocated,
 * places no marker; rg_cache_finish must still be called and is then
 * harmless. Blocks only while waiting for another thread's lookup, at
 * most until deadline_ms (rg_now_ms clock); now_ms is only for TTLs.
 */
/*
 * After a shared lookup failed, the caller may still answer from a stale
 * positive entry (outage mode): say so in ans. Called with s->mu held.
 */
static void
note_stale(struct rg_cache *c, struct shard *s, uint64_t h, const char *key,
    size_t len, uint64_t cur_generation, uint64_t now_ms,
    struct rg_cache_answer *ans)
{
	struct rg_cache_answer	 tmp;
	struct entry		*e = rg_cache_entry_find(s, h, key, len);

	if (e == NULL || e->result != RG_FOUND)
		return;
	memset(&tmp, 0, sizeof(tmp));
	if (!entry_check(c, s, e, cur_generation, now_ms, &tmp) &&
	    tmp.stale_found) {
		ans->stale_found = true;
		memcpy(ans->stale_backend, tmp.stale_backend, RG_NAME_MAX);
	}
}

/*
 * Wait, until deadline_ms, for the lookup another thread has in flight
 * for the key, and take its answer. Called and returns with s->mu held;
 * frees f when the last waiter leaves a finished flight.
 */
static enum rg_cache_status
flight_wait(struct rg_cache *c, struct shard *s, struct flight *f,
    uint64_t h, const char *key, size_t len, uint64_t cur_generation,
    uint64_t now_ms, uint64_t deadline_ms, struct rg_cache_answer *ans)
{
	enum rg_cache_status	st = RG_CACHE_TIMEOUT;
	struct timespec		ts;

	s->waits++;
	f->waiters++;
	rg_mono_timespec(deadline_ms, &ts);	/* the condattr's clock */
	while (!f->done) {
		/* ETIMEDOUT, or any error: never spin */
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
			break;
	}
	if (f->done) {
		st = RG_CACHE_HIT;
		s->hits++;
		ans->result = f->result;
		memcpy(ans->backend, f->backend, RG_NAME_MAX);
		ans->generation = f->generation;
		ans->shared = true;
		/* look again: the stale entry may be there */
		if (f->result != RG_FOUND && f->result != RG_NOTFOUND)
			note_stale(c, s, h, key, len, cur_generation, now_ms,
			    ans);
	}
	if (--f->waiters == 0 && f->done)
		free(f);
	return st;
}

/*
 * Record that this thread looks the key up, so concurrent misses wait
 * for it. Called with s->mu held. Without a record (out of memory),
 * concurrent misses each look up: harmless.
 */
static void
flight_start(struct rg_cache *c, struct shard *s, uint64_t h,
    const char *key, size_t len, uint64_t deadline_ms)
{
	struct flight	*f = calloc(1, sizeof(*f) + len + 1);

	if (f == NULL)
		return;
	f->hash = h;
	f->owner_deadline = deadline_ms;
	f->epoch = atomic_load(&c->epoch);
	memcpy(f->key, key, len + 1);
	f->next = s->flights;
	s->flights = f;
}

enum rg_cache_status
rg_cache_begin(struct rg_cache *c, const char *key, uint64_t cur_generation,
    uint64_t now_ms, uint64_t deadline_ms, struct rg_cache_answer *ans)
{
	struct shard		*s;
	struct entry		*e;
	struct flight		*f;
	uint64_t		 h;
	size_t			 len = rg_cache_key_len(key);
	enum rg_cache_status	 st;

	memset(ans, 0, sizeof(*ans));
	ans->result = RG_TEMPFAIL;
	if (len == 0 || atomic_load_explicit(&c->size,
	    memory_order_relaxed) == 0) {
		/* not cacheable: the caller looks up, finish ignores it */
		atomic_fetch_add_explicit(&c->misses_nocache, 1,
		    memory_order_relaxed);
		return RG_CACHE_MISS;
	}
	h = rg_siphash24(c->sipkey, key, len);
	s = rg_cache_shard_of(c, h);

	pthread_mutex_lock(&s->mu);
	e = rg_cache_entry_find(s, h, key, len);
	if (e != NULL && entry_check(c, s, e, cur_generation, now_ms, ans)) {
		s->hits++;
		pthread_mutex_unlock(&s->mu);
		return RG_CACHE_HIT;
	}

	f = flight_find(s, h, key, len);
	if (f != NULL && rg_now_ms() >= f->owner_deadline) {
		/*
		 * The owner is past its own deadline and has not finished:
		 * it is stuck or gone. End its flight as a tempfail (its
		 * waiters then decide as on any failure) and take over.
		 */
		flight_end(s, f, RG_TEMPFAIL, "", 0);
		f = NULL;
	}
	if (f != NULL) {
		st = flight_wait(c, s, f, h, key, len, cur_generation, now_ms,
		    deadline_ms, ans);
		pthread_mutex_unlock(&s->mu);
		return st;
	}
	s->misses++;
	flight_start(c, s, h, key, len, deadline_ms);
	pthread_mutex_unlock(&s->mu);
	return RG_CACHE_MISS;
}

/*
 * See cache.h. Stores found/notfound (replacing any entry for key),
 * leaves the cache as it is for anything else, and ends the in-flight
 * record if there is one. A negative answer from a lookup that began
 * before rg_cache_drop_negatives is stored already dead. A backend name
 * of RG_NAME_MAX bytes or more is not stored (waiters see ""). Never
 * blocks except on the shard lock.
 */
void
rg_cache_finish(struct rg_cache *c, const char *key, enum rg_result result,
    const char *backend, uint64_t generation, uint64_t now_ms)
{
	struct shard	*s;
	struct entry	*e, *ne = NULL;
	struct flight	*f;
	uint64_t	 h, epoch;
	size_t		 len = rg_cache_key_len(key);

	if (len == 0)
		return;
	h = rg_siphash24(c->sipkey, key, len);
	s = rg_cache_shard_of(c, h);

	if ((result == RG_FOUND || result == RG_NOTFOUND) &&
	    atomic_load_explicit(&c->size, memory_order_relaxed) > 0) {
		/* allocate before locking: keep the critical section short */
		ne = malloc(sizeof(*ne) + len + 1);
		if (ne != NULL && copy_name(ne->backend, backend) == -1) {
			rg_warnx("cache: backend name too long, not cached");
			free(ne);
			ne = NULL;
		}
	}
	pthread_mutex_lock(&s->mu);
	epoch = atomic_load(&c->epoch);
	f = flight_find(s, h, key, len);
	if (f != NULL) {
		epoch = f->epoch;
		flight_end(s, f, result, backend, generation);
	}
	if (ne != NULL && s->cap > 0) {
		e = rg_cache_entry_find(s, h, key, len);
		if (e != NULL)
			rg_cache_entry_remove(s, e);
		ne->hash = h;
		ne->generation = generation;
		ne->stored_at = now_ms;
		ne->epoch = epoch;
		ne->touched = ++s->tick;
		ne->result = result;
		memcpy(ne->key, key, len + 1);
		ne->hnext = s->table[rg_cache_bucket_of(s, h)];
		s->table[rg_cache_bucket_of(s, h)] = ne;
		rg_dlist_push_head(&s->lru, &ne->lru);
		s->count++;
		ne = NULL;
		evict_to_cap(s);
		if (s->count > s->nbuckets)
			table_grow(s);
	}
	pthread_mutex_unlock(&s->mu);
	free(ne);
}

/*
 * Kill every negative entry by bumping the epoch; they are removed
 * lazily when next looked at or evicted. Never blocks.
 */
void
rg_cache_drop_negatives(struct rg_cache *c)
{
	atomic_fetch_add(&c->epoch, 1);
}

/* Fill st with the counters, summed over shards (each under its lock). */
void
rg_cache_stats(struct rg_cache *c, struct rg_cache_stats *st)
{
	unsigned	i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < c->nshards; i++) {
		struct shard	*s = &c->shards[i].s;

		pthread_mutex_lock(&s->mu);
		st->hits += s->hits;
		st->misses += s->misses;
		st->waits += s->waits;
		st->evictions += s->evictions;
		st->entries += s->count;
		pthread_mutex_unlock(&s->mu);
	}
	st->misses += atomic_load(&c->misses_nocache);
	st->stale_used = atomic_load(&c->stale_used);
}

/* Count one outage-mode use of a stale entry. Never blocks. */
void
rg_cache_note_stale_used(struct rg_cache *c)
{
	atomic_fetch_add_explicit(&c->stale_used, 1, memory_order_relaxed);
}
