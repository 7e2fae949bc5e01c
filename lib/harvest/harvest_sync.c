/* SPDX-License-Identifier: MIT */
/*
 * Directory harvest limits, keeping the counter table in step with its
 * store. With a SQLite state file: the table is loaded at start, then a
 * background thread writes changed entries once a second, one
 * transaction per batch, reads the journal of operator unblocks, and
 * purges dead rows; a failing file is logged at most every five minutes
 * and counting goes on in memory. With state = redis:// Redis is the
 * store, asked on the RCPT path, and no thread runs.
 *
 * Must not: hold a shard lock across I/O, reject or tempfail mail
 * because a store failed.
 * Locking: the thread takes one shard lock at a time, only to copy or
 * update entries; h->store and the lift/purge/reopen times are the
 * thread's alone (or start's and stop's, around it); bg_mu guards
 * bg_stop.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harvest_int.h"
#include "harvest_store.h"
#include "log.h"
#include "rg_time.h"

#define FLUSH_MS		1000	/* state file batch interval */
#define PURGE_MS		60000	/* dead rows purged this often */
#define REOPEN_MS		60000	/* retry an unopenable state file */
#define STORE_WARN_MS		300000	/* at most one store warning per 5m */

/* ---- the state file ---- */

static void
store_warn(struct rg_harvest *h, const char *what, const char *msg)
{
	uint64_t	now = rg_now_ms();
	uint64_t	last = atomic_load(&h->store_warned);

	if (last != 0 && now - last < STORE_WARN_MS)
		return;
	atomic_store(&h->store_warned, now);
	rg_warnx("harvest: state file %s: %s: %s; counting in memory",
	    h->path, what, msg);
}

struct load_ctx {
	struct rg_harvest	*h;
	uint64_t		 mono;	/* rg_now_ms at load */
	uint64_t		 wall;	/* rg_wall_ms at load */
};

static uint64_t
wall_to_mono(const struct load_ctx *c, uint64_t wall)
{
	return wall == 0 || wall <= c->wall ? 0 : c->mono + (wall - c->wall);
}

static void
load_row(const struct rg_hv_row *r, void *arg)
{
	struct load_ctx		*c = arg;
	struct rg_harvest	*h = c->h;
	uint64_t		 hash = rg_hv_key_hash(h, &r->key);
	struct hv_shard		*s = rg_hv_shard_of(h, hash);
	struct hv_entry		*e;

	pthread_mutex_lock(&s->mu);
	if ((e = rg_hv_find_or_add(h, s, &r->key, hash, c->mono)) != NULL) {
		rg_hv_entry_reset(e);
		for (size_t i = 0; i < r->nseen; i++)
			(void)rg_hv_entry_note(e, true, r->seen[i],
			    RG_HV_SEEN_MAX);
		/* a row from before distinct counting: a count, no hashes */
		e->count = r->count > e->nseen ? r->count : e->nseen;
		e->window_end = wall_to_mono(c, r->window_end);
		e->blocked_until = wall_to_mono(c, r->blocked_until);
		if (e->window_end == 0)
			rg_hv_entry_reset(e);
		rg_hv_requeue(s, e);
	}
	pthread_mutex_unlock(&s->mu);
}

static void
lift_key(const struct rg_hv_key *k, void *arg)
{
	struct rg_harvest	*h = arg;
	uint64_t		 hash = rg_hv_key_hash(h, k);
	struct hv_shard		*s = rg_hv_shard_of(h, hash);
	struct hv_entry		*e;
	bool			 was = false;

	pthread_mutex_lock(&s->mu);
	if ((e = rg_hv_find(s, k, hash)) != NULL) {
		was = e->blocked_until != 0;
		e->blocked_until = 0;
		rg_hv_entry_reset(e);
		/* rewritten as a deletion, in case a flush raced the lift */
		rg_hv_mark_dirty(s, e);
		rg_hv_requeue(s, e);
	}
	pthread_mutex_unlock(&s->mu);
	if (was)
		rg_hv_log_unblock(k, "operator");
}

/* After a failed batch: mark what is still there dirty again. */
static void
redirty(struct rg_harvest *h, const struct rg_hv_row *rows, size_t n,
    uint64_t now)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t	 hash = rg_hv_key_hash(h, &rows[i].key);
		struct hv_shard	*s = rg_hv_shard_of(h, hash);
		struct hv_entry	*e;

		pthread_mutex_lock(&s->mu);
		e = rg_hv_find_or_add(h, s, &rows[i].key, hash, now);
		if (e != NULL)
			rg_hv_mark_dirty(s, e);
		pthread_mutex_unlock(&s->mu);
	}
}

/*
 * A batch of rows for the state file; the hashes of all rows in hs, row
 * i's from off[i] (pointers are set once hs stops moving).
 */
struct batch {
	struct rg_hv_row	*rows;
	size_t			*off;
	size_t			 n, cap;
	uint64_t		*hs;
	size_t			 nh, caph;
};

/* Room for more rows and hashes. -1 when out of memory. */
static int
batch_grow(struct batch *b, size_t rows, size_t hashes)
{
	if (b->n + rows > b->cap) {
		size_t			 ncap = (b->n + rows) * 2;
		struct rg_hv_row	*nr;
		size_t			*no;

		if ((nr = realloc(b->rows, ncap * sizeof(*nr))) == NULL)
			return -1;
		b->rows = nr;
		if ((no = realloc(b->off, ncap * sizeof(*no))) == NULL)
			return -1;
		b->off = no;
		b->cap = ncap;
	}
	if (b->nh + hashes > b->caph) {
		size_t		 ncap = (b->nh + hashes) * 2;
		uint64_t	*nh;

		if ((nh = realloc(b->hs, ncap * sizeof(*nh))) == NULL)
			return -1;
		b->hs = nh;
		b->caph = ncap;
	}
	return 0;
}

/* Copy s's dirty entries into b (shard locked). */
static void
batch_shard(struct batch *b, struct hv_shard *s, uint64_t mono,
    uint64_t wall)
{
	struct rg_dlist	*lists[2] = { &s->counters, &s->blocks };

	if (s->ndirty == 0 || batch_grow(b, s->ndirty, 0) == -1)
		return;		/* out of memory: the rest stays dirty */
	for (int l = 0; l < 2 && s->ndirty > 0; l++) {
		struct hv_entry	*e, *next;

		for (e = HV_ENTRY(lists[l]->head); e != NULL; e = next) {
			struct rg_hv_row	*r;

			next = HV_ENTRY(e->link.next);
			if (!e->dirty)
				continue;
			if (batch_grow(b, 0, e->nseen) == -1)
				return;
			b->off[b->n] = b->nh;
			r = &b->rows[b->n++];
			r->key = e->key;
			r->count = e->window_end > mono ? e->count : 0;
			r->window_end = r->count > 0 ?
			    wall + (e->window_end - mono) : 0;
			r->blocked_until = e->blocked_until > mono ?
			    wall + (e->blocked_until - mono) : 0;
			r->nseen = r->count > 0 ? e->nseen : 0;
			if (r->nseen > 0) {
				memcpy(b->hs + b->nh, e->seen, r->nseen *
				    sizeof(*b->hs));
				b->nh += r->nseen;
			}
			e->dirty = false;
			s->ndirty--;
			/* a lifted entry was kept for its deletion */
			if (r->count == 0 && r->blocked_until == 0)
				rg_hv_entry_free(s, e);
		}
	}
}

/*
 * One batch: copy dirty entries shard by shard (short lock each), then
 * write them in one transaction with no lock held.
 */
static void
flush(struct rg_harvest *h)
{
	struct batch	 b = { 0 };
	uint64_t	 mono = rg_now_ms(), wall = rg_wall_ms();
	struct rg_error	 err;

	for (int i = 0; i < NSHARDS; i++) {
		pthread_mutex_lock(&h->shard[i].mu);
		batch_shard(&b, &h->shard[i], mono, wall);
		pthread_mutex_unlock(&h->shard[i].mu);
	}
	for (size_t i = 0; i < b.n; i++)
		b.rows[i].seen = b.hs != NULL ? b.hs + b.off[i] : NULL;
	if (b.n > 0 && rg_hv_store_write(h->store, b.rows, b.n, wall, &err) ==
	    -1) {
		atomic_fetch_add(&h->store_errors, 1);
		store_warn(h, "write", err.msg);
		redirty(h, b.rows, b.n, mono);
	}
	free(b.rows);
	free(b.off);
	free(b.hs);
}

static void
store_cycle(struct rg_harvest *h, bool final)
{
	struct rg_error	err;
	uint64_t	now = rg_now_ms(), k[2];

	if (h->store == NULL) {
		if (now < h->next_reopen && !final)
			return;
		h->next_reopen = now + REOPEN_MS;
		if ((h->store = rg_hv_store_open(h->path, &err)) == NULL) {
			atomic_fetch_add(&h->store_errors, 1);
			store_warn(h, "open", err.msg);
			return;
		}
		/*
		 * Counting already uses addrkey: store it if the file has
		 * none. Should the file hold another, only addresses seen
		 * before this start may count once more after a restart.
		 */
		memcpy(k, h->addrkey, sizeof(k));
		(void)rg_hv_store_hashkey(h->store, k, &err);
		h->lift_since = UINT64_MAX;
	}
	if (rg_hv_store_lifted(h->store, &h->lift_since, lift_key, h, &err) ==
	    -1)
		store_warn(h, "unblock journal", err.msg);
	flush(h);
	if (now >= h->next_purge || final) {
		h->next_purge = now + PURGE_MS;
		if (rg_hv_store_purge(h->store, rg_wall_ms(), &err) == -1)
			store_warn(h, "purge", err.msg);
	}
}

static void *
bg_main(void *arg)
{
	struct rg_harvest	*h = arg;
	bool			 stop;

	for (;;) {
		struct timespec	ts;

		pthread_mutex_lock(&h->bg_mu);
		if (!h->bg_stop) {
			rg_mono_timespec(rg_now_ms() + FLUSH_MS, &ts);
			pthread_cond_timedwait(&h->bg_cv, &h->bg_mu, &ts);
		}
		stop = h->bg_stop;
		pthread_mutex_unlock(&h->bg_mu);
		store_cycle(h, stop);
		if (stop)
			return NULL;
	}
}


/* ---- start and stop ---- */

/*
 * Open the state file, key the address hashes with its key and load its
 * rows (before any counting). An unusable file is not fatal: mail
 * flows, the thread retries.
 */
static void
file_open_load(struct rg_harvest *h)
{
	struct load_ctx	 c;
	struct rg_error	 err;

	if ((h->store = rg_hv_store_open(h->path, &err)) == NULL) {
		atomic_fetch_add(&h->store_errors, 1);
		store_warn(h, "open", err.msg);
		h->next_reopen = rg_now_ms() + REOPEN_MS;
		return;
	}
	/* before loading: the rows' hashes were made with it */
	if (rg_hv_store_hashkey(h->store, h->addrkey, &err) == -1)
		store_warn(h, "key", err.msg);
	c.h = h;
	c.mono = rg_now_ms();
	c.wall = rg_wall_ms();
	if (rg_hv_store_load(h->store, c.wall, h->cap * NSHARDS, load_row, &c,
	    &err) == -1)
		store_warn(h, "load", err.msg);
	h->lift_since = UINT64_MAX;
	if (rg_hv_store_lifted(h->store, &h->lift_since, lift_key, h, &err) ==
	    -1)
		store_warn(h, "unblock journal", err.msg);
}

/* The write-behind thread; its condition variable waits on CLOCK_MONOTONIC. */
static int
bg_start(struct rg_harvest *h, struct rg_error *err)
{
	pthread_condattr_t	ca;

	pthread_mutex_init(&h->bg_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->bg_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&h->bg, NULL, bg_main, h) != 0) {
		rg_error_set(err, "harvest: cannot start the state thread");
		pthread_cond_destroy(&h->bg_cv);
		pthread_mutex_destroy(&h->bg_mu);
		return -1;
	}
	h->bg_running = true;
	return 0;
}

int
rg_hv_sync_start(struct rg_harvest *h, const struct rg_conf *conf,
    struct rg_error *err)
{
	enum hv_state	kind;

	if (rg_hv_state_kind(conf->harvest_state, &kind, err) == -1)
		return -1;
	switch (kind) {
	case HV_STATE_MEMORY:
		return 0;
	case HV_STATE_REDIS:
#ifdef RG_HAVE_HIREDIS
		h->redis = rg_hv_redis_new(conf->harvest_state, err);
#endif
		return h->redis != NULL ? 0 : -1;
	case HV_STATE_FILE:
		break;
	}
	if ((h->path = strdup(conf->harvest_state)) == NULL) {
		rg_error_set(err, "harvest: out of memory");
		return -1;
	}
	file_open_load(h);
	return bg_start(h, err);
}

void
rg_hv_sync_stop(struct rg_harvest *h)
{
	if (h->bg_running) {
		pthread_mutex_lock(&h->bg_mu);
		h->bg_stop = true;
		pthread_cond_signal(&h->bg_cv);
		pthread_mutex_unlock(&h->bg_mu);
		pthread_join(h->bg, NULL);	/* it flushes a last batch */
		pthread_cond_destroy(&h->bg_cv);
		pthread_mutex_destroy(&h->bg_mu);
		h->bg_running = false;
	}
	rg_hv_store_close(h->store);
	h->store = NULL;
#ifdef RG_HAVE_HIREDIS
	rg_hv_redis_free(h->redis);
	h->redis = NULL;
#endif
	free(h->path);
	h->path = NULL;
}

/* ---- Redis on the RCPT path ---- */

#ifdef RG_HAVE_HIREDIS
void
rg_hv_remote_check(struct rg_harvest *h, const struct hv_limits *l,
    const struct hv_client *c, struct rg_harvest_session *sess, uint64_t now)
{
	char		 p[RG_HV_KEYSTR];
	uint64_t	 left;
	struct hv_shard	*s = rg_hv_shard_of(h, c->hash);
	struct hv_entry	*e;
	bool		 lifted = false, learned = false;

	if (rg_hv_key_format(&c->key, p, sizeof(p)) == -1 ||
	    rg_hv_redis_blocked(h->redis, p, &left) == -1)
		return;		/* Redis down: local counts decide */
	pthread_mutex_lock(&s->mu);
	e = left > 0 ? rg_hv_find_or_add(h, s, &c->key, c->hash, now) :
	    rg_hv_find(s, &c->key, c->hash);
	if (e != NULL) {
		e->remote_until = now + REMOTE_TTL_MS;
		if (left > 0) {
			learned = e->blocked_until <= now;
			e->blocked_until = now + left;
			e->remote_block = true;
			rg_hv_requeue(s, e);
		} else if (e->blocked_until > now && e->remote_block) {
			/* lifted in Redis (an operator or its expiry) */
			e->blocked_until = 0;
			e->remote_block = false;
			rg_hv_entry_reset(e);
			rg_hv_requeue(s, e);
			lifted = true;
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (left == 0)
		sess->shared_ok_until = now + REMOTE_TTL_MS;
	if (learned)
		rg_hv_log_block(&c->exact, &c->key, l->max_unknown,
		    l->window_ms, left, "shared");
	if (lifted)
		rg_hv_log_unblock(&c->key, "shared");
}

bool
rg_hv_remote_note(struct rg_harvest *h, const struct hv_limits *l,
    const struct hv_client *c, const char *rcpt, uint64_t *shared)
{
	char	p[RG_HV_KEYSTR];

	return rg_hv_key_format(&c->key, p, sizeof(p)) == 0 &&
	    rg_hv_redis_note(h->redis, p, rcpt, l->window_ms,
	    rg_hv_seen_cap(l), shared) == 0;
}

void
rg_hv_remote_block(struct rg_harvest *h, const struct hv_limits *l,
    const struct hv_client *c, uint64_t count)
{
	char	p[RG_HV_KEYSTR];

	if (rg_hv_key_format(&c->key, p, sizeof(p)) == 0)
		(void)rg_hv_redis_block(h->redis, p, l->block_ms, count);
}
#else
/* Without hiredis h->redis stays NULL and the RCPT path never calls these. */
void
rg_hv_remote_check(struct rg_harvest *h, const struct hv_limits *l,
    const struct hv_client *c, struct rg_harvest_session *sess, uint64_t now)
{
	(void)h, (void)l, (void)c, (void)sess, (void)now;
}

bool
rg_hv_remote_note(struct rg_harvest *h, const struct hv_limits *l,
    const struct hv_client *c, const char *rcpt, uint64_t *shared)
{
	(void)h, (void)l, (void)c, (void)rcpt, (void)shared;
	return false;
}

void
rg_hv_remote_block(struct rg_harvest *h, const struct hv_limits *l,
    const struct hv_client *c, uint64_t count)
{
	(void)h, (void)l, (void)c, (void)count;
}
#endif
