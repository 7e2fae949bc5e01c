/* SPDX-License-Identifier: MIT */
/*
 * Directory harvest limits: distinct unknown recipients are counted per
 * client prefix in a fixed window that opens at the client's first
 * unknown recipient (so Redis can keep the same set with SADD +
 * PEXPIRE); reaching max_unknown blocks the prefix for block_time. The
 * per-session limit ends that session only; its unknowns also count for
 * the client. Distinct, because a harvester tries different names while
 * a list server retries the same stale ones: each entry remembers keyed
 * hashes of its addresses, at most max_unknown + 1 (RG_HV_SEEN_MAX), and
 * a session its first RG_HARVEST_SESSION_SEEN. The hash key is the state
 * file's (or Redis's) so a restart does not count an address again.
 *
 * Memory is bounded by max_clients (rounded up to a multiple of the shard
 * count): when a shard is full, an expired block goes first, then the
 * least recently counted non-blocked client, and a live block only when
 * a shard holds nothing else (the oldest block first). Lookups of
 * clients that never sent an unknown recipient allocate nothing.
 *
 * Persistence: a background thread writes changed entries to the SQLite
 * state file once a second, one transaction per batch, reads the journal
 * of operator unblocks, and purges dead rows. A failing file is logged
 * at most every five minutes and counting goes on in memory. With
 * state = redis:// Redis is the store and no thread runs.
 *
 * Must not: ask any backend, do I/O while holding a shard lock, sleep
 * for a tarpit, reject or tempfail mail because a store failed.
 * Locking: the client table is split in NSHARDS shards by a keyed hash,
 * each with its own mutex (no global lock on the RCPT path). Limits are
 * an immutable snapshot behind an atomic pointer; reload publishes a new
 * one and keeps the old until rg_harvest_free (readers never lock).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harvest.h"
#include "hash.h"
#include "harvest_store.h"
#include "log.h"
#include "rg_time.h"

#define NSHARDS			64	/* power of two */
#define FLUSH_MS		1000	/* state file batch interval */
#define PURGE_MS		60000	/* dead rows purged this often */
#define REOPEN_MS		60000	/* retry an unopenable state file */
#define STORE_WARN_MS		300000	/* at most one store warning per 5m */
#define REMOTE_TTL_MS		2000	/* trust a Redis answer this long */
#define TARPIT_SHIFT_MAX	20

struct hv_entry {
	struct rg_hv_key	 key;
	uint64_t		 hash;
	struct hv_entry		*hnext;		/* bucket chain */
	struct hv_entry		*prev, *next;	/* counters or blocks list */
	uint64_t		 count;		/* distinct unknowns */
	uint64_t		*seen;		/* hashes of nseen of them */
	uint16_t		 nseen;
	uint16_t		 seencap;	/* allocated */
	uint64_t		 window_end;	/* rg_now_ms; count dead then */
	uint64_t		 blocked_until;	/* rg_now_ms; 0 = not blocked */
	uint64_t		 remote_until;	/* Redis answer trusted until */
	bool			 remote_block;	/* the block is in Redis too */
	bool			 dirty;		/* not yet in the state file */
	bool			 in_blocks;	/* on blocks, else counters */
};

struct hv_list {
	struct hv_entry	*head;		/* oldest */
	struct hv_entry	*tail;		/* newest */
};

struct hv_shard {
	/* guards every field below and every entry in this shard */
	pthread_mutex_t	  mu;
	struct hv_entry	**bucket;
	size_t		  nbucket;	/* power of two */
	size_t		  n;		/* entries */
	size_t		  ndirty;
	/* not blocked, least recently counted first */
	struct hv_list	  counters;
	struct hv_list	  blocks;	/* blocked, oldest block first */
	uint64_t	  evicted;
	char		  pad[64];	/* keep shards on their own lines */
};

struct hv_limits {
	uint64_t		 max_unknown;
	uint64_t		 window_ms;
	uint64_t		 block_ms;
	uint64_t		 max_session;
	int			 v4prefix;
	int			 v6prefix;
	uint64_t		 tarpit_ms;
	uint64_t		 tarpit_max_ms;
	uint64_t		 tarpit_sessions;
	struct rg_net		*exempt;
	size_t			 nexempt;
	struct hv_limits	*older;		/* retired snapshots */
};

struct rg_harvest {
	struct hv_shard		  shard[NSHARDS];
	_Atomic(struct hv_limits *) lim;
	/* guards publishing a new limits snapshot (reload only) */
	pthread_mutex_t		  conf_mu;
	uint64_t		  sipkey[2];	/* read-only after new */
	uint64_t		  addrkey[2];	/* address hashes; read-only
						 * after new */
	size_t			  cap;		/* entries per shard */
	atomic_uint_fast64_t	  tarpit_active;
	atomic_uint_fast64_t	  blocks;
	atomic_uint_fast64_t	  store_errors;
	atomic_uint_fast64_t	  store_warned;	/* rg_now_ms of last warning */

	char			 *path;		/* SQLite state file or NULL */
	struct rg_hv_redis	 *redis;	/* or NULL */

	/* used by the background thread only (or by new/free around it) */
	struct rg_hv_store	 *store;
	uint64_t		  lift_since;
	uint64_t		  next_purge;
	uint64_t		  next_reopen;

	pthread_t		  bg;
	bool			  bg_running;
	/* guards bg_stop; bg_cv wakes the thread early */
	pthread_mutex_t		  bg_mu;
	pthread_cond_t		  bg_cv;
	bool			  bg_stop;
};

/* ---- limits ---- */

static struct hv_limits *
limits_new(const struct rg_conf *conf)
{
	struct hv_limits	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->max_unknown = conf->harvest_max_unknown;
	l->window_ms = conf->harvest_window_ms;
	l->block_ms = conf->harvest_block_time_ms;
	l->max_session = conf->harvest_max_unknown_per_session;
	l->v4prefix = conf->harvest_ipv4_prefix;
	l->v6prefix = conf->harvest_ipv6_prefix;
	l->tarpit_ms = conf->harvest_tarpit_ms;
	l->tarpit_max_ms = conf->harvest_tarpit_max_ms;
	l->tarpit_sessions = conf->harvest_tarpit_sessions;
	if (conf->harvest_exempt.n > 0) {
		l->exempt = calloc(conf->harvest_exempt.n, sizeof(*l->exempt));
		if (l->exempt == NULL) {
			free(l);
			return NULL;
		}
		memcpy(l->exempt, conf->harvest_exempt.v,
		    conf->harvest_exempt.n * sizeof(*l->exempt));
		l->nexempt = conf->harvest_exempt.n;
	}
	return l;
}

static void
limits_free(struct hv_limits *l)
{
	while (l != NULL) {
		struct hv_limits	*older = l->older;

		free(l->exempt);
		free(l);
		l = older;
	}
}

/* exact: the client's full address as a key (prefix 32 or 128). */
static bool
is_exempt(const struct hv_limits *l, const struct rg_hv_key *exact)
{
	for (size_t i = 0; i < l->nexempt; i++) {
		const struct rg_net	*net = &l->exempt[i];
		struct rg_hv_key	 k = *exact;
		size_t			 len = net->family == AF_INET ? 4 : 16;

		if (net->family != k.family)
			continue;
		rg_hv_key_mask(&k, net->prefix, net->prefix);
		if (memcmp(k.addr, net->addr, len) == 0)
			return true;
	}
	return false;
}

/* ---- the table ---- */

/* Keyed, so a flood of chosen addresses cannot crowd one bucket. */
static uint64_t
key_hash(const struct rg_harvest *h, const struct rg_hv_key *k)
{
	unsigned char	buf[sizeof(k->addr) + 2];

	memcpy(buf, k->addr, sizeof(k->addr));
	buf[sizeof(k->addr)] = (unsigned char)k->family;
	buf[sizeof(k->addr) + 1] = k->prefix;
	return rg_siphash24(h->sipkey, buf, sizeof(buf));
}

static struct hv_shard *
shard_of(struct rg_harvest *h, uint64_t hash)
{
	return &h->shard[hash >> 58 & (NSHARDS - 1)];
}

static bool
key_eq(const struct rg_hv_key *a, const struct rg_hv_key *b)
{
	return a->family == b->family && a->prefix == b->prefix &&
	    memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static struct hv_entry *
find(struct hv_shard *s, const struct rg_hv_key *k, uint64_t hash)
{
	struct hv_entry	*e;

	for (e = s->bucket[hash & (s->nbucket - 1)]; e != NULL; e = e->hnext)
		if (e->hash == hash && key_eq(&e->key, k))
			return e;
	return NULL;
}

static void
list_remove(struct hv_list *l, struct hv_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
list_append(struct hv_list *l, struct hv_entry *e)
{
	e->next = NULL;
	e->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
}

static struct hv_list *
list_of(struct hv_shard *s, struct hv_entry *e)
{
	return e->in_blocks ? &s->blocks : &s->counters;
}

static void
entry_free(struct hv_shard *s, struct hv_entry *e)
{
	struct hv_entry	**pp = &s->bucket[e->hash & (s->nbucket - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	list_remove(list_of(s, e), e);
	if (e->dirty)
		s->ndirty--;
	s->n--;
	free(e->seen);
	free(e);
}

/* Room for this many remembered addresses under limits l. */
static size_t
seen_cap(const struct hv_limits *l)
{
	return l->max_unknown < RG_HV_SEEN_MAX ? (size_t)l->max_unknown + 1 :
	    RG_HV_SEEN_MAX;
}

/*
 * Is hash a new address for e? Remembered while there is room; beyond
 * cap (or out of memory) an address counts without being remembered:
 * by then the client is over max_unknown anyway.
 */
static bool
entry_note(struct hv_entry *e, bool have, uint64_t hash, size_t cap)
{
	if (!have)
		return true;
	for (size_t i = 0; i < e->nseen; i++)
		if (e->seen[i] == hash)
			return false;
	if (e->nseen >= cap)
		return true;
	if (e->nseen == e->seencap) {
		size_t		 ncap = e->seencap == 0 ? 4 : e->seencap * 2;
		uint64_t	*n;

		if (ncap > RG_HV_SEEN_MAX)
			ncap = RG_HV_SEEN_MAX;
		if (ncap <= e->nseen ||
		    (n = realloc(e->seen, ncap * sizeof(*n))) == NULL)
			return true;
		e->seen = n;
		e->seencap = (uint16_t)ncap;
	}
	e->seen[e->nseen++] = hash;
	return true;
}

/* The window (re)starts: forget its count and addresses. */
static void
entry_reset(struct hv_entry *e)
{
	e->count = 0;
	e->nseen = 0;
	e->window_end = 0;
}

static void
mark_dirty(struct hv_shard *s, struct hv_entry *e)
{
	if (!e->dirty) {
		e->dirty = true;
		s->ndirty++;
	}
}

/* Move e to the end of the list it belongs on now. */
static void
requeue(struct hv_shard *s, struct hv_entry *e)
{
	bool	blocked = e->blocked_until != 0;

	list_remove(list_of(s, e), e);
	e->in_blocks = blocked;
	list_append(list_of(s, e), e);
}

/*
 * Make room for one entry: an expired block first, then the least
 * recently counted client, a live block only when nothing else is left.
 */
static void
evict_one(struct hv_shard *s, uint64_t now)
{
	struct hv_entry	*e = s->blocks.head;

	if (e == NULL || e->blocked_until > now)
		e = s->counters.head != NULL ? s->counters.head :
		    s->blocks.head;
	if (e != NULL) {
		entry_free(s, e);
		s->evicted++;
	}
}

static struct hv_entry *
find_or_add(struct rg_harvest *h, struct hv_shard *s,
    const struct rg_hv_key *k, uint64_t hash, uint64_t now)
{
	struct hv_entry	*e;
	size_t		 b;

	if ((e = find(s, k, hash)) != NULL)
		return e;
	while (s->n >= h->cap && s->n > 0)
		evict_one(s, now);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	e->key = *k;
	e->hash = hash;
	b = hash & (s->nbucket - 1);
	e->hnext = s->bucket[b];
	s->bucket[b] = e;
	list_append(&s->counters, e);
	s->n++;
	return e;
}

/* ---- log lines (stable: fail2ban and SIEMs parse them) ---- */

static void
log_block(const struct rg_hv_key *exact, const struct rg_hv_key *key,
    uint64_t count, uint64_t window_ms, uint64_t block_left_ms,
    const char *reason)
{
	char	c[INET6_ADDRSTRLEN] = "?", p[RG_HV_KEYSTR] = "?", u[32];

	if (exact != NULL)
		inet_ntop(exact->family, exact->addr, c, sizeof(c));
	rg_hv_key_format(key, p, sizeof(p));
	rg_hv_wall_format(rg_wall_ms() + block_left_ms, u, sizeof(u));
	rg_info("harvest: block client=%s prefix=%s count=%" PRIu64
	    " window=%" PRIu64 "s until=%s reason=%s", c, p, count,
	    window_ms / 1000, u, reason);
}

static void
log_unblock(const struct rg_hv_key *key, const char *reason)
{
	char	p[RG_HV_KEYSTR] = "?";

	rg_hv_key_format(key, p, sizeof(p));
	rg_info("harvest: unblock prefix=%s reason=%s", p, reason);
}

/*
 * e's block ran out (shard locked): forget it. The caller logs the
 * unblock line after unlocking.
 */
static void
expire_block(struct hv_shard *s, struct hv_entry *e)
{
	e->blocked_until = 0;
	e->remote_block = false;
	entry_reset(e);		/* a fresh start after serving the block */
	requeue(s, e);
	/* The file's row is dead too; purge removes it. */
}

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
	uint64_t		 hash = key_hash(h, &r->key);
	struct hv_shard		*s = shard_of(h, hash);
	struct hv_entry		*e;

	pthread_mutex_lock(&s->mu);
	if ((e = find_or_add(h, s, &r->key, hash, c->mono)) != NULL) {
		entry_reset(e);
		for (size_t i = 0; i < r->nseen; i++)
			(void)entry_note(e, true, r->seen[i], RG_HV_SEEN_MAX);
		/* a row from before distinct counting: a count, no hashes */
		e->count = r->count > e->nseen ? r->count : e->nseen;
		e->window_end = wall_to_mono(c, r->window_end);
		e->blocked_until = wall_to_mono(c, r->blocked_until);
		if (e->window_end == 0)
			entry_reset(e);
		requeue(s, e);
	}
	pthread_mutex_unlock(&s->mu);
}

static void
lift_key(const struct rg_hv_key *k, void *arg)
{
	struct rg_harvest	*h = arg;
	uint64_t		 hash = key_hash(h, k);
	struct hv_shard		*s = shard_of(h, hash);
	struct hv_entry		*e;
	bool			 was = false;

	pthread_mutex_lock(&s->mu);
	if ((e = find(s, k, hash)) != NULL) {
		was = e->blocked_until != 0;
		e->blocked_until = 0;
		entry_reset(e);
		/* rewritten as a deletion, in case a flush raced the lift */
		mark_dirty(s, e);
		requeue(s, e);
	}
	pthread_mutex_unlock(&s->mu);
	if (was)
		log_unblock(k, "operator");
}

/* After a failed batch: mark what is still there dirty again. */
static void
redirty(struct rg_harvest *h, const struct rg_hv_row *rows, size_t n,
    uint64_t now)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t	 hash = key_hash(h, &rows[i].key);
		struct hv_shard	*s = shard_of(h, hash);
		struct hv_entry	*e;

		pthread_mutex_lock(&s->mu);
		if ((e = find_or_add(h, s, &rows[i].key, hash, now)) != NULL)
			mark_dirty(s, e);
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
	struct hv_list	*lists[2] = { &s->counters, &s->blocks };

	if (s->ndirty == 0 || batch_grow(b, s->ndirty, 0) == -1)
		return;		/* out of memory: the rest stays dirty */
	for (int l = 0; l < 2 && s->ndirty > 0; l++) {
		struct hv_entry	*e, *next;

		for (e = lists[l]->head; e != NULL; e = next) {
			struct rg_hv_row	*r;

			next = e->next;
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
				entry_free(s, e);
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
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += FLUSH_MS / 1000;
			ts.tv_nsec += (FLUSH_MS % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&h->bg_cv, &h->bg_mu, &ts);
		}
		stop = h->bg_stop;
		pthread_mutex_unlock(&h->bg_mu);
		store_cycle(h, stop);
		if (stop)
			return NULL;
	}
}

/* ---- lifecycle ---- */

static bool
is_redis(const char *state)
{
	return state != NULL && strncmp(state, "redis://", 8) == 0;
}

static int
harvest_open_state(struct rg_harvest *h, const struct rg_conf *conf,
    struct rg_error *err)
{
	const char	*state = conf->harvest_state;
	struct load_ctx	 c;
	struct rg_error	 e2;
	pthread_condattr_t ca;

	if (state == NULL || state[0] == '\0')
		return 0;
	if (is_redis(state)) {
#ifdef RG_HAVE_HIREDIS
		h->redis = rg_hv_redis_new(state, err);
		return h->redis != NULL ? 0 : -1;
#else
		rg_error_set(err, "harvest state '%s': built without hiredis",
		    state);
		return -1;
#endif
	}
	if ((h->path = strdup(state)) == NULL) {
		rg_error_set(err, "harvest: out of memory");
		return -1;
	}
	/* An unusable file is not fatal: mail flows, the thread retries. */
	if ((h->store = rg_hv_store_open(h->path, &e2)) == NULL) {
		atomic_fetch_add(&h->store_errors, 1);
		store_warn(h, "open", e2.msg);
		h->next_reopen = rg_now_ms() + REOPEN_MS;
	} else {
		/* before loading: the rows' hashes were made with it */
		if (rg_hv_store_hashkey(h->store, h->addrkey, &e2) == -1)
			store_warn(h, "key", e2.msg);
		c.h = h;
		c.mono = rg_now_ms();
		c.wall = rg_wall_ms();
		if (rg_hv_store_load(h->store, c.wall, h->cap * NSHARDS,
		    load_row, &c, &e2) == -1)
			store_warn(h, "load", e2.msg);
		h->lift_since = UINT64_MAX;
		if (rg_hv_store_lifted(h->store, &h->lift_since, lift_key, h,
		    &e2) == -1)
			store_warn(h, "unblock journal", e2.msg);
	}
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

struct rg_harvest *
rg_harvest_new(const struct rg_conf *conf, struct rg_error *err)
{
	struct rg_harvest	*h;
	struct hv_limits	*lim;
	size_t			 nb;
	uint64_t		 maxc = conf->harvest_max_clients;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		rg_error_set(err, "harvest: out of memory");
		return NULL;
	}
	rg_hash_key_init(h->sipkey);
	rg_hash_key_init(h->addrkey);	/* the state file's replaces it */
	h->cap = (size_t)((maxc + NSHARDS - 1) / NSHARDS);
	if (h->cap == 0)
		h->cap = 1;
	for (nb = 16; nb < h->cap && nb < ((size_t)1 << 20); nb <<= 1)
		;
	pthread_mutex_init(&h->conf_mu, NULL);
	for (int i = 0; i < NSHARDS; i++) {
		pthread_mutex_init(&h->shard[i].mu, NULL);
		h->shard[i].nbucket = nb;
		h->shard[i].bucket = calloc(nb, sizeof(*h->shard[i].bucket));
		if (h->shard[i].bucket == NULL) {
			rg_error_set(err, "harvest: out of memory");
			goto fail;
		}
	}
	/* Through a plain pointer: clang 14 refuses to compare the value
	 * of an assignment to an _Atomic object (the RG_FUZZ build). */
	if ((lim = limits_new(conf)) == NULL) {
		rg_error_set(err, "harvest: out of memory");
		goto fail;
	}
	atomic_store(&h->lim, lim);
	if (harvest_open_state(h, conf, err) == -1)
		goto fail;
	return h;
fail:
	rg_harvest_free(h);
	return NULL;
}

void
rg_harvest_free(struct rg_harvest *h)
{
	if (h == NULL)
		return;
	if (h->bg_running) {
		pthread_mutex_lock(&h->bg_mu);
		h->bg_stop = true;
		pthread_cond_signal(&h->bg_cv);
		pthread_mutex_unlock(&h->bg_mu);
		pthread_join(h->bg, NULL);	/* it flushes a last batch */
		pthread_cond_destroy(&h->bg_cv);
		pthread_mutex_destroy(&h->bg_mu);
	}
	rg_hv_store_close(h->store);
#ifdef RG_HAVE_HIREDIS
	rg_hv_redis_free(h->redis);
#endif
	for (int i = 0; i < NSHARDS; i++) {
		struct hv_shard	*s = &h->shard[i];

		for (size_t b = 0; s->bucket != NULL && b < s->nbucket; b++) {
			struct hv_entry	*e, *next;

			for (e = s->bucket[b]; e != NULL; e = next) {
				next = e->hnext;
				free(e->seen);
				free(e);
			}
		}
		free(s->bucket);
		pthread_mutex_destroy(&s->mu);
	}
	limits_free(atomic_load(&h->lim));
	pthread_mutex_destroy(&h->conf_mu);
	free(h->path);
	free(h);
}

void
rg_harvest_configure(struct rg_harvest *h, const struct rg_conf *conf)
{
	struct hv_limits	*l;

	if ((l = limits_new(conf)) == NULL) {
		rg_warnx("harvest: out of memory; keeping the old limits");
		return;
	}
	pthread_mutex_lock(&h->conf_mu);
	/*
	 * Readers may still hold the old snapshot: retire it, free it with
	 * the limiter. Reloads are rare, so the chain stays short.
	 */
	l->older = atomic_load(&h->lim);
	atomic_store(&h->lim, l);
	pthread_mutex_unlock(&h->conf_mu);
}

/* ---- the RCPT path ---- */

struct client {
	struct rg_hv_key	exact;
	struct rg_hv_key	key;
	uint64_t		hash;
	bool			ok;	/* an IP client */
};

static void
client_key(struct rg_harvest *h, const struct hv_limits *l,
    const struct sockaddr *sa, struct client *c)
{
	c->ok = rg_hv_key_from_sockaddr(sa, 128, 128, &c->exact, NULL, 0) == 0;
	if (!c->ok)
		return;
	c->key = c->exact;
	rg_hv_key_mask(&c->key, l->v4prefix, l->v6prefix);
	c->hash = key_hash(h, &c->key);
}

#ifdef RG_HAVE_HIREDIS
/* Ask Redis whether c is blocked; update the local entry. No lock held. */
static void
remote_check(struct rg_harvest *h, const struct hv_limits *l,
    const struct client *c, struct rg_harvest_session *sess, uint64_t now)
{
	char		 p[RG_HV_KEYSTR];
	uint64_t	 left;
	struct hv_shard	*s = shard_of(h, c->hash);
	struct hv_entry	*e;
	bool		 lifted = false, learned = false;

	if (rg_hv_key_format(&c->key, p, sizeof(p)) == -1 ||
	    rg_hv_redis_blocked(h->redis, p, &left) == -1)
		return;		/* Redis down: local counts decide */
	pthread_mutex_lock(&s->mu);
	e = left > 0 ? find_or_add(h, s, &c->key, c->hash, now) :
	    find(s, &c->key, c->hash);
	if (e != NULL) {
		e->remote_until = now + REMOTE_TTL_MS;
		if (left > 0) {
			learned = e->blocked_until <= now;
			e->blocked_until = now + left;
			e->remote_block = true;
			requeue(s, e);
		} else if (e->blocked_until > now && e->remote_block) {
			/* lifted in Redis (an operator or its expiry) */
			e->blocked_until = 0;
			e->remote_block = false;
			entry_reset(e);
			requeue(s, e);
			lifted = true;
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (left == 0)
		sess->shared_ok_until = now + REMOTE_TTL_MS;
	if (learned)
		log_block(&c->exact, &c->key, l->max_unknown, l->window_ms,
		    left, "shared");
	if (lifted)
		log_unblock(&c->key, "shared");
}
#endif

enum rg_harvest_state
rg_harvest_check(struct rg_harvest *h, const struct sockaddr *client,
    struct rg_harvest_session *sess, uint64_t now)
{
	struct hv_limits	*l = atomic_load(&h->lim);
	struct client		 c;
	struct hv_shard		*s;
	struct hv_entry		*e;
	bool			 blocked = false, ask = false;
	bool			 expired = false;

	client_key(h, l, client, &c);
	if (c.ok && is_exempt(l, &c.exact))
		return RG_HARVEST_OK;
	if (sess->blocked)
		return RG_HARVEST_BLOCKED;
	if (!c.ok)
		return RG_HARVEST_OK;
	s = shard_of(h, c.hash);
	pthread_mutex_lock(&s->mu);
	if ((e = find(s, &c.key, c.hash)) != NULL && e->blocked_until != 0) {
		if (e->blocked_until > now)
			blocked = true;
		else {
			expire_block(s, e);
			expired = true;
		}
	}
	/*
	 * Redis: a "blocked" answer is cached in the entry, "not blocked"
	 * only in the session, so a new session always asks once and a
	 * block made on another MX host is seen at its first RCPT.
	 */
	if (h->redis != NULL)
		ask = blocked ? e->remote_until <= now :
		    sess->shared_ok_until <= now;
	pthread_mutex_unlock(&s->mu);
	if (expired)
		log_unblock(&c.key, "expired");
#ifdef RG_HAVE_HIREDIS
	if (ask) {
		remote_check(h, l, &c, sess, now);
		pthread_mutex_lock(&s->mu);
		e = find(s, &c.key, c.hash);
		blocked = e != NULL && e->blocked_until > now;
		pthread_mutex_unlock(&s->mu);
	}
#else
	(void)ask;
#endif
	if (blocked)
		sess->blocked = true;
	return blocked ? RG_HARVEST_BLOCKED : RG_HARVEST_OK;
}

static uint64_t
tarpit_delay(struct rg_harvest *h, const struct hv_limits *l, uint64_t n)
{
	uint64_t	d, cur;
	unsigned	shift;

	if (l->tarpit_ms == 0 || n == 0)
		return 0;
	shift = n - 1 > TARPIT_SHIFT_MAX ? TARPIT_SHIFT_MAX : (unsigned)(n - 1);
	d = l->tarpit_ms << shift;
	if (l->tarpit_max_ms > 0 && d > l->tarpit_max_ms)
		d = l->tarpit_max_ms;
	/* Full: answer now rather than tie up more MTA processes. */
	cur = atomic_load(&h->tarpit_active);
	do {
		if (cur >= l->tarpit_sessions)
			return 0;
	} while (!atomic_compare_exchange_weak(&h->tarpit_active, &cur,
	    cur + 1));
	return d;
}

/*
 * Count the address for the session unless the session has seen it:
 * a session retrying an address (one message after another to the same
 * stale subscriber) is not harvesting.
 */
static enum rg_harvest_state
session_note(const struct hv_limits *l, const struct client *c,
    struct rg_harvest_session *sess, bool have, uint64_t ahash)
{
	bool	fresh = true;

	for (unsigned i = 0; have && i < sess->nseen; i++)
		if (sess->seen[i] == ahash)
			fresh = false;
	if (fresh) {
		sess->unknown++;
		if (have && sess->nseen < RG_HARVEST_SESSION_SEEN)
			sess->seen[sess->nseen++] = ahash;
	}
	if (l->max_session == 0 || sess->unknown < l->max_session)
		return RG_HARVEST_OK;
	if (!sess->blocked && c->ok) {
		char	p[RG_HV_KEYSTR] = "?";

		rg_hv_key_format(&c->key, p, sizeof(p));
		rg_info("harvest: session-limit prefix=%s count=%" PRIu64
		    " limit=%" PRIu64, p, sess->unknown, l->max_session);
	}
	sess->blocked = true;
	return RG_HARVEST_BLOCKED;
}

/* What one client_note did, for the logs and Redis after unlocking. */
struct note_out {
	uint64_t	count;		/* the client's count now */
	uint64_t	left;		/* block time left, 0 = not blocked */
	bool		newly;		/* this note imposed the block */
	bool		expired;	/* an old block ran out */
};

/* Count one address for e (shard locked). */
static void
entry_count(struct rg_harvest *h, const struct hv_limits *l,
    struct hv_shard *s, struct hv_entry *e, bool have, uint64_t ahash,
    const uint64_t *shared, uint64_t now, struct note_out *o)
{
	bool	fresh;

	if (e->blocked_until != 0 && e->blocked_until <= now) {
		expire_block(s, e);
		o->expired = true;
	}
	if (e->window_end <= now) {
		entry_reset(e);
		e->window_end = now + l->window_ms;
	}
	fresh = entry_note(e, have, ahash, seen_cap(l));
	/*
	 * Redis counted it distinct over every host: its count decides, but
	 * never below what this host saw itself (Redis restarted or was
	 * down). Adding our own on top would count an address twice.
	 */
	if (shared != NULL)
		e->count = *shared > e->nseen ? *shared : e->nseen;
	else if (fresh)
		e->count++;
	if (e->blocked_until == 0 && e->count >= l->max_unknown) {
		e->blocked_until = now + l->block_ms;
		e->remote_block = shared != NULL;
		/* our own answer; no need to ask Redis back */
		if (shared != NULL)
			e->remote_until = now + REMOTE_TTL_MS;
		o->newly = true;
	}
	o->count = e->count;
	o->left = e->blocked_until > now ? e->blocked_until - now : 0;
	if (h->path != NULL)
		mark_dirty(s, e);
	requeue(s, e);
}

/*
 * Count rcpt for c's prefix, distinct within the window (and in Redis,
 * shared by every host). *n gets the client's count when higher.
 * Returns true when the client is blocked.
 */
static bool
client_note(struct rg_harvest *h, const struct hv_limits *l,
    const struct client *c, const char *rcpt, uint64_t ahash, uint64_t now,
    uint64_t *n)
{
	struct hv_shard		*s = shard_of(h, c->hash);
	struct hv_entry		*e;
	struct note_out		 o = { 0 };
	uint64_t		 shared = 0;
	bool			 have_shared = false;
#ifdef RG_HAVE_HIREDIS
	char			 p[RG_HV_KEYSTR];

	if (h->redis != NULL &&
	    rg_hv_key_format(&c->key, p, sizeof(p)) == 0 &&
	    rg_hv_redis_note(h->redis, p, rcpt, l->window_ms, seen_cap(l),
	    &shared) == 0)
		have_shared = true;
#else
	(void)rcpt;
#endif
	pthread_mutex_lock(&s->mu);
	if ((e = find_or_add(h, s, &c->key, c->hash, now)) != NULL)
		entry_count(h, l, s, e, rcpt != NULL, ahash,
		    have_shared ? &shared : NULL, now, &o);
	pthread_mutex_unlock(&s->mu);
	if (o.expired)
		log_unblock(&c->key, "expired");
	if (o.newly) {
		atomic_fetch_add(&h->blocks, 1);
		log_block(&c->exact, &c->key, o.count, l->window_ms, o.left,
		    "limit");
	}
#ifdef RG_HAVE_HIREDIS
	if (o.newly && have_shared)
		(void)rg_hv_redis_block(h->redis, p, l->block_ms, shared);
#endif
	if (o.count > *n)
		*n = o.count;
	return o.left > 0;
}

enum rg_harvest_state
rg_harvest_note_unknown(struct rg_harvest *h, const struct sockaddr *client,
    struct rg_harvest_session *sess, const char *rcpt, uint64_t now,
    uint64_t *tarpit_ms)
{
	struct hv_limits	*l = atomic_load(&h->lim);
	struct client		 c;
	enum rg_harvest_state	 st;
	uint64_t		 ahash = 0, n;

	if (tarpit_ms != NULL)
		*tarpit_ms = 0;
	client_key(h, l, client, &c);
	if (c.ok && is_exempt(l, &c.exact))
		return RG_HARVEST_OK;
	if (rcpt != NULL)
		ahash = rg_siphash24(h->addrkey, rcpt, strlen(rcpt));
	st = session_note(l, &c, sess, rcpt != NULL, ahash);
	n = sess->unknown;
	if (c.ok && l->max_unknown > 0 &&
	    client_note(h, l, &c, rcpt, ahash, now, &n)) {
		sess->blocked = true;
		st = RG_HARVEST_BLOCKED;
	}
	if (tarpit_ms != NULL)
		*tarpit_ms = tarpit_delay(h, l, n);
	return st;
}

bool
rg_harvest_mta_status_counts(const char *status)
{
	/* Exactly "no such mailbox": nothing else says a name is unused. */
	return status != NULL && strcmp(status, "5.1.1") == 0;
}

void
rg_harvest_tarpit_done(struct rg_harvest *h)
{
	atomic_fetch_sub(&h->tarpit_active, 1);
}

void
rg_harvest_stats(struct rg_harvest *h, struct rg_harvest_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (int i = 0; i < NSHARDS; i++) {
		struct hv_shard	*s = &h->shard[i];
		struct hv_entry	*e;

		pthread_mutex_lock(&s->mu);
		st->clients += s->n;
		st->evicted += s->evicted;
		for (e = s->blocks.head; e != NULL; e = e->next)
			st->blocked++;
		pthread_mutex_unlock(&s->mu);
	}
	st->blocks = atomic_load(&h->blocks);
	st->store_errors = atomic_load(&h->store_errors);
	st->tarpit_active = atomic_load(&h->tarpit_active);
}

/* ---- operator view ---- */

int
rg_harvest_list(const struct rg_conf *conf, FILE *out, struct rg_error *err)
{
	const char	*state = conf->harvest_state;

	if (state == NULL || state[0] == '\0') {
		rg_error_set(err, "harvest: state is memory only (state = ): "
		    "nothing to list outside the daemon");
		return -1;
	}
	if (is_redis(state)) {
#ifdef RG_HAVE_HIREDIS
		return rg_hv_redis_list(state, out, err);
#else
		rg_error_set(err, "harvest state '%s': built without hiredis",
		    state);
		return -1;
#endif
	}
	return rg_hv_store_list(state, out, err);
}

int
rg_harvest_unblock(const struct rg_conf *conf, const char *what,
    struct rg_error *err)
{
	const char		*state = conf->harvest_state;
	struct rg_hv_key	 key;
	char			 p[RG_HV_KEYSTR];

	if (rg_hv_key_parse(what, conf->harvest_ipv4_prefix,
	    conf->harvest_ipv6_prefix, &key) == -1 ||
	    rg_hv_key_format(&key, p, sizeof(p)) == -1) {
		rg_error_set(err, "harvest unblock: '%s' is not an IP address "
		    "or ADDRESS/LENGTH", what);
		return -1;
	}
	if (state == NULL || state[0] == '\0') {
		rg_error_set(err, "harvest: state is memory only (state = ): "
		    "restart the daemon to lift blocks");
		return -1;
	}
	if (is_redis(state)) {
#ifdef RG_HAVE_HIREDIS
		return rg_hv_redis_unblock(state, p, err);
#else
		rg_error_set(err, "harvest state '%s': built without hiredis",
		    state);
		return -1;
#endif
	}
	return rg_hv_store_unblock(state, &key, err);
}

void
rg_harvest_describe(const struct rg_conf *conf, FILE *out)
{
	const char	*state = conf->harvest_state;

	fprintf(out, "harvest: max_unknown=%" PRIu64 " window=%" PRIu64
	    "s block_time=%" PRIu64 "s max_unknown_per_session=%" PRIu64
	    " ipv4_prefix=%d ipv6_prefix=%d action=%s\n",
	    conf->harvest_max_unknown, conf->harvest_window_ms / 1000,
	    conf->harvest_block_time_ms / 1000,
	    conf->harvest_max_unknown_per_session, conf->harvest_ipv4_prefix,
	    conf->harvest_ipv6_prefix,
	    conf->harvest_action == RG_HARVEST_REJECT ? "reject" : "tempfail");
	fprintf(out, "harvest: state=%s tarpit=%" PRIu64 "ms tarpit_max=%"
	    PRIu64 "ms tarpit_sessions=%" PRIu64 " exempt=%zu networks"
	    " block_allows_postmaster=%s max_clients=%" PRIu64 "\n",
	    state == NULL || state[0] == '\0' ? "(memory only)" : state,
	    conf->harvest_tarpit_ms, conf->harvest_tarpit_max_ms,
	    conf->harvest_tarpit_sessions, conf->harvest_exempt.n,
	    conf->harvest_block_allows_postmaster ? "yes" : "no",
	    conf->harvest_max_clients);
}
