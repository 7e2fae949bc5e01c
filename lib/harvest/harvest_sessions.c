/* SPDX-License-Identifier: MIT */
/*
 * Per-session harvest state keyed by a door's session name (see
 * harvest_sessions.h): a sharded hash table, each shard with its own
 * mutex, chains and least-recently-used list; idle entries are dropped
 * from the tail of that list whenever the shard is touched.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dlist.h"
#include "harvest_sessions.h"
#include "hash.h"

#define NSHARDS		16
#define NBUCKETS	1024		/* per shard; chains stay short */

struct sess {
	struct sess			*chain;
	struct rg_dlink			 lru;	/* head: most recently used */
	uint64_t			 hash;
	uint64_t			 used_ms;
	struct rg_harvest_session	 state;
	char				 key[];
};

struct shard {
	pthread_mutex_t	 mu;
	struct sess	*bucket[NBUCKETS];
	struct rg_dlist	 lru;
	size_t		 n;
};

struct rg_hv_sessions {
	uint64_t	 hkey[2];
	size_t		 max_per_shard;
	uint64_t	 idle_ms;
	struct shard	 shard[NSHARDS];
};

struct rg_hv_sessions *
rg_hv_sessions_new(size_t max, uint64_t idle_ms)
{
	struct rg_hv_sessions	*t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	rg_hash_key_init(t->hkey);
	t->max_per_shard = max / NSHARDS > 0 ? max / NSHARDS : 1;
	t->idle_ms = idle_ms;
	for (size_t i = 0; i < NSHARDS; i++)
		pthread_mutex_init(&t->shard[i].mu, NULL);
	return t;
}

void
rg_hv_sessions_free(struct rg_hv_sessions *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < NSHARDS; i++) {
		struct rg_dlink	*l = t->shard[i].lru.head, *next;

		for (; l != NULL; l = next) {
			next = l->next;
			free(RG_DLIST_ENTRY(l, struct sess, lru));
		}
		pthread_mutex_destroy(&t->shard[i].mu);
	}
	free(t);
}

static struct sess **
slot_of(struct shard *s, uint64_t hash, const char *key)
{
	struct sess	**pp = &s->bucket[(hash / NSHARDS) % NBUCKETS];

	for (; *pp != NULL; pp = &(*pp)->chain)
		if ((*pp)->hash == hash && strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

static void
drop(struct shard *s, struct sess *e)
{
	struct sess	**pp = slot_of(s, e->hash, e->key);

	*pp = e->chain;
	rg_dlist_remove(&s->lru, &e->lru);
	s->n--;
	free(e);
}

/* Drop what has been idle too long, then the oldest while over max. */
static void
expire(struct rg_hv_sessions *t, struct shard *s, uint64_t now)
{
	struct sess	*e;

	while ((e = RG_DLIST_ENTRY(s->lru.tail, struct sess, lru)) != NULL &&
	    (e->used_ms + t->idle_ms <= now || s->n > t->max_per_shard))
		drop(s, e);
}

static struct shard *
shard_of(struct rg_hv_sessions *t, const char *key, uint64_t *hash)
{
	*hash = rg_siphash24(t->hkey, key, strlen(key));
	return &t->shard[*hash % NSHARDS];
}

void
rg_hv_sessions_get(struct rg_hv_sessions *t, const char *key,
    struct rg_harvest_session *out, uint64_t now_ms)
{
	struct shard	*s;
	struct sess	*e;
	uint64_t	 h;

	memset(out, 0, sizeof(*out));
	s = shard_of(t, key, &h);
	pthread_mutex_lock(&s->mu);
	expire(t, s, now_ms);
	if ((e = *slot_of(s, h, key)) != NULL)
		*out = e->state;
	pthread_mutex_unlock(&s->mu);
}

void
rg_hv_sessions_put(struct rg_hv_sessions *t, const char *key,
    const struct rg_harvest_session *in, uint64_t now_ms)
{
	struct shard	*s;
	struct sess	**pp, *e;
	uint64_t	 h;
	size_t		 klen = strlen(key);

	s = shard_of(t, key, &h);
	pthread_mutex_lock(&s->mu);
	pp = slot_of(s, h, key);
	if ((e = *pp) != NULL)
		rg_dlist_remove(&s->lru, &e->lru);
	else if ((e = malloc(sizeof(*e) + klen + 1)) != NULL) {
		e->hash = h;
		memcpy(e->key, key, klen + 1);
		e->chain = NULL;
		*pp = e;
		s->n++;
	}
	if (e != NULL) {
		e->state = *in;
		e->used_ms = now_ms;
		rg_dlist_push_head(&s->lru, &e->lru);
	}
	expire(t, s, now_ms);
	pthread_mutex_unlock(&s->mu);
}

size_t
rg_hv_sessions_count(struct rg_hv_sessions *t)
{
	size_t	n = 0;

	for (size_t i = 0; i < NSHARDS; i++) {
		pthread_mutex_lock(&t->shard[i].mu);
		n += t->shard[i].n;
		pthread_mutex_unlock(&t->shard[i].mu);
	}
	return n;
}
