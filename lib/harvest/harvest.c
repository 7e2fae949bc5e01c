/* SPDX-License-Identifier: MIT */
/*
 * Directory harvest limits, the counter table: distinct unknown
 * recipients are counted per client prefix in a fixed window that opens
 * at the client's first unknown recipient (so Redis can keep the same
 * set with SADD + PEXPIRE); reaching max_unknown blocks the prefix for
 * block_time. The per-session limit ends that session only; its
 * unknowns also count for the client. Distinct, because a harvester
 * tries different names while a list server retries the same stale
 * ones: each entry remembers keyed hashes of its addresses, at most
 * max_unknown + 1 (RG_HV_SEEN_MAX), and a session its first
 * RG_HARVEST_SESSION_SEEN. The hash key is the state file's (or
 * Redis's) so a restart does not count an address again.
 *
 * Memory is bounded by max_clients (rounded up to a multiple of the shard
 * count): when a shard is full, an expired block goes first, then the
 * least recently counted non-blocked client, and a live block only when
 * a shard holds nothing else (the oldest block first). Lookups of
 * clients that never sent an unknown recipient allocate nothing.
 *
 * Persistence (the state file, its thread, Redis) is harvest_sync.c's;
 * the operator's view is harvest_admin.c's.
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

#include "harvest.h"
#include "harvest_int.h"
#include "harvest_store.h"
#include "hash.h"
#include "log.h"
#include "netprefix.h"
#include "rg_time.h"

#define TARPIT_SHIFT_MAX	20

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

		if (net->family == exact->family &&
		    rg_prefix_equal(exact->addr, net->addr, net->prefix))
			return true;
	}
	return false;
}

/* ---- the table ---- */

/* Keyed, so a flood of chosen addresses cannot crowd one bucket. */
uint64_t
rg_hv_key_hash(const struct rg_harvest *h, const struct rg_hv_key *k)
{
	unsigned char	buf[sizeof(k->addr) + 2];

	memcpy(buf, k->addr, sizeof(k->addr));
	buf[sizeof(k->addr)] = (unsigned char)k->family;
	buf[sizeof(k->addr) + 1] = k->prefix;
	return rg_siphash24(h->sipkey, buf, sizeof(buf));
}

static bool
key_eq(const struct rg_hv_key *a, const struct rg_hv_key *b)
{
	return a->family == b->family && a->prefix == b->prefix &&
	    memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

struct hv_entry *
rg_hv_find(struct hv_shard *s, const struct rg_hv_key *k, uint64_t hash)
{
	struct hv_entry	*e;

	for (e = s->bucket[hash & (s->nbucket - 1)]; e != NULL; e = e->hnext)
		if (e->hash == hash && key_eq(&e->key, k))
			return e;
	return NULL;
}

static struct rg_dlist *
list_of(struct hv_shard *s, struct hv_entry *e)
{
	return e->in_blocks ? &s->blocks : &s->counters;
}

void
rg_hv_entry_free(struct hv_shard *s, struct hv_entry *e)
{
	struct hv_entry	**pp = &s->bucket[e->hash & (s->nbucket - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	rg_dlist_remove(list_of(s, e), &e->link);
	if (e->dirty)
		s->ndirty--;
	s->n--;
	free(e->seen);
	free(e);
}

/* Room for this many remembered addresses under limits l. */
size_t
rg_hv_seen_cap(const struct hv_limits *l)
{
	return l->max_unknown < RG_HV_SEEN_MAX ? (size_t)l->max_unknown + 1 :
	    RG_HV_SEEN_MAX;
}

/*
 * Is hash a new address for e? Remembered while there is room; beyond
 * cap (or out of memory) an address counts without being remembered:
 * by then the client is over max_unknown anyway.
 */
bool
rg_hv_entry_note(struct hv_entry *e, bool have, uint64_t hash, size_t cap)
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
void
rg_hv_entry_reset(struct hv_entry *e)
{
	e->count = 0;
	e->nseen = 0;
	e->window_end = 0;
}

void
rg_hv_mark_dirty(struct hv_shard *s, struct hv_entry *e)
{
	if (!e->dirty) {
		e->dirty = true;
		s->ndirty++;
	}
}

/* Move e to the end of the list it belongs on now. */
void
rg_hv_requeue(struct hv_shard *s, struct hv_entry *e)
{
	bool	blocked = e->blocked_until != 0;

	rg_dlist_remove(list_of(s, e), &e->link);
	e->in_blocks = blocked;
	rg_dlist_push_tail(list_of(s, e), &e->link);
}

/*
 * Make room for one entry: an expired block first, then the least
 * recently counted client, a live block only when nothing else is left.
 */
static void
evict_one(struct hv_shard *s, uint64_t now)
{
	struct hv_entry	*e = HV_ENTRY(s->blocks.head);

	if (e == NULL || e->blocked_until > now)
		e = HV_ENTRY(s->counters.head != NULL ? s->counters.head :
		    s->blocks.head);
	if (e != NULL) {
		rg_hv_entry_free(s, e);
		s->evicted++;
	}
}

struct hv_entry *
rg_hv_find_or_add(struct rg_harvest *h, struct hv_shard *s,
    const struct rg_hv_key *k, uint64_t hash, uint64_t now)
{
	struct hv_entry	*e;
	size_t		 b;

	if ((e = rg_hv_find(s, k, hash)) != NULL)
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
	rg_dlist_push_tail(&s->counters, &e->link);
	s->n++;
	return e;
}

/* ---- log lines (stable: fail2ban and SIEMs parse them) ---- */

void
rg_hv_log_block(const struct rg_hv_key *exact, const struct rg_hv_key *key,
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

void
rg_hv_log_unblock(const struct rg_hv_key *key, const char *reason)
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
	/* a fresh start after serving the block */
	rg_hv_entry_reset(e);
	rg_hv_requeue(s, e);
	/* The file's row is dead too; purge removes it. */
}

/* ---- lifecycle ---- */

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
	if (rg_hv_sync_start(h, conf, err) == -1)
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
	rg_hv_sync_stop(h);	/* a last batch first */
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

static void
client_key(struct rg_harvest *h, const struct hv_limits *l,
    const struct sockaddr *sa, struct hv_client *c)
{
	c->ok = rg_hv_key_from_sockaddr(sa, 128, 128, &c->exact, NULL, 0) == 0;
	if (!c->ok)
		return;
	c->key = c->exact;
	rg_hv_key_mask(&c->key, l->v4prefix, l->v6prefix);
	c->hash = rg_hv_key_hash(h, &c->key);
}

enum rg_harvest_state
rg_harvest_check(struct rg_harvest *h, const struct sockaddr *client,
    struct rg_harvest_session *sess, uint64_t now)
{
	struct hv_limits	*l = atomic_load(&h->lim);
	struct hv_client	 c;
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
	s = rg_hv_shard_of(h, c.hash);
	pthread_mutex_lock(&s->mu);
	e = rg_hv_find(s, &c.key, c.hash);
	if (e != NULL && e->blocked_until != 0) {
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
		rg_hv_log_unblock(&c.key, "expired");
	if (ask) {
		rg_hv_remote_check(h, l, &c, sess, now);
		pthread_mutex_lock(&s->mu);
		e = rg_hv_find(s, &c.key, c.hash);
		blocked = e != NULL && e->blocked_until > now;
		pthread_mutex_unlock(&s->mu);
	}
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
session_note(const struct hv_limits *l, const struct hv_client *c,
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
		rg_hv_entry_reset(e);
		e->window_end = now + l->window_ms;
	}
	fresh = rg_hv_entry_note(e, have, ahash, rg_hv_seen_cap(l));
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
		rg_hv_mark_dirty(s, e);
	rg_hv_requeue(s, e);
}

/*
 * Count rcpt for c's prefix, distinct within the window (and in Redis,
 * shared by every host). *n gets the client's count when higher.
 * Returns true when the client is blocked.
 */
static bool
client_note(struct rg_harvest *h, const struct hv_limits *l,
    const struct hv_client *c, const char *rcpt, uint64_t ahash, uint64_t now,
    uint64_t *n)
{
	struct hv_shard		*s = rg_hv_shard_of(h, c->hash);
	struct hv_entry		*e;
	struct note_out		 o = { 0 };
	uint64_t		 shared = 0;
	bool			 have_shared;

	have_shared = h->redis != NULL &&
	    rg_hv_remote_note(h, l, c, rcpt, &shared);
	pthread_mutex_lock(&s->mu);
	if ((e = rg_hv_find_or_add(h, s, &c->key, c->hash, now)) != NULL)
		entry_count(h, l, s, e, rcpt != NULL, ahash,
		    have_shared ? &shared : NULL, now, &o);
	pthread_mutex_unlock(&s->mu);
	if (o.expired)
		rg_hv_log_unblock(&c->key, "expired");
	if (o.newly) {
		atomic_fetch_add(&h->blocks, 1);
		rg_hv_log_block(&c->exact, &c->key, o.count, l->window_ms,
		    o.left, "limit");
	}
	if (o.newly && have_shared)
		rg_hv_remote_block(h, l, c, shared);
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
	struct hv_client	 c;
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
		for (e = HV_ENTRY(s->blocks.head); e != NULL;
		    e = HV_ENTRY(e->link.next))
			st->blocked++;
		pthread_mutex_unlock(&s->mu);
	}
	st->blocks = atomic_load(&h->blocks);
	st->store_errors = atomic_load(&h->store_errors);
	st->tarpit_active = atomic_load(&h->tarpit_active);
}

