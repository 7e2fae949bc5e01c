/* SPDX-License-Identifier: MIT */
/*
 * Private to the harvest limiter: what its three parts share.
 * harvest.c is the counter table (shards of per-prefix entries, their
 * distinct-address sets, blocks, the tarpit) and the RCPT path;
 * harvest_sync.c keeps the table in step with its store (loading the
 * state file at start, the write-behind thread, the Redis calls);
 * harvest_admin.c is the operator's view (list, unblock, describe).
 * Not part of librcptgate's interface.
 *
 * Must not: be included outside lib/harvest/.
 * Locking: every rg_hv_* function taking a struct hv_shard expects its
 * mutex held by the caller; the others take shard locks themselves and
 * never hold one across I/O.
 */
#ifndef RG_HARVEST_INT_H
#define RG_HARVEST_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "dlist.h"
#include "harvest.h"
#include "harvest_store.h"
#include "rg_error.h"

#define NSHARDS			64	/* power of two */
#define REMOTE_TTL_MS		2000	/* trust a Redis answer this long */

struct hv_entry {
	struct rg_hv_key	 key;
	uint64_t		 hash;
	struct hv_entry		*hnext;		/* bucket chain */
	struct rg_dlink		 link;		/* counters or blocks list */
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

/* The entry on a counters or blocks list (head: oldest), or NULL. */
#define HV_ENTRY(l)	RG_DLIST_ENTRY((l), struct hv_entry, link)

struct hv_shard {
	/* guards every field below and every entry in this shard */
	pthread_mutex_t	  mu;
	struct hv_entry	**bucket;
	size_t		  nbucket;	/* power of two */
	size_t		  n;		/* entries */
	size_t		  ndirty;
	/* not blocked, least recently counted first */
	struct rg_dlist	  counters;
	struct rg_dlist	  blocks;	/* blocked, oldest block first */
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

/* A client as the RCPT path sees it: its address and its prefix. */
struct hv_client {
	struct rg_hv_key	exact;
	struct rg_hv_key	key;
	uint64_t		hash;
	bool			ok;	/* an IP client */
};

/* ---- the counter table (harvest.c) ---- */

/* Keyed hash of k: picks the shard and the bucket. Pure. */
uint64_t	rg_hv_key_hash(const struct rg_harvest *,
		    const struct rg_hv_key *);

static inline struct hv_shard *
rg_hv_shard_of(struct rg_harvest *h, uint64_t hash)
{
	return &h->shard[hash >> 58 & (NSHARDS - 1)];
}

/* The entry of k in s, or NULL; or a new one (evicting to make room). */
struct hv_entry	*rg_hv_find(struct hv_shard *, const struct rg_hv_key *,
		    uint64_t hash);
struct hv_entry	*rg_hv_find_or_add(struct rg_harvest *, struct hv_shard *,
		    const struct rg_hv_key *, uint64_t hash, uint64_t now);
void		 rg_hv_entry_free(struct hv_shard *, struct hv_entry *);

/* Remember an address hash; true if it is new for the entry. */
bool		 rg_hv_entry_note(struct hv_entry *, bool have, uint64_t hash,
		    size_t cap);
void		 rg_hv_entry_reset(struct hv_entry *);	/* window restarts */
void		 rg_hv_mark_dirty(struct hv_shard *, struct hv_entry *);
/* Move e to the list its block state says (after changing it). */
void		 rg_hv_requeue(struct hv_shard *, struct hv_entry *);
/* Room for this many remembered addresses under limits l. */
size_t		 rg_hv_seen_cap(const struct hv_limits *);

/* The stable log lines (fail2ban and SIEMs parse them). */
void	rg_hv_log_block(const struct rg_hv_key *exact,
	    const struct rg_hv_key *key, uint64_t count, uint64_t window_ms,
	    uint64_t block_left_ms, const char *reason);
void	rg_hv_log_unblock(const struct rg_hv_key *, const char *reason);

/* ---- keeping the table in step with its store (harvest_sync.c) ---- */

/*
 * Open conf's state store: Redis, or the state file (loaded into the
 * table, then written behind by a thread started here). An unusable
 * file is only logged. 0, or -1 with err (bad Redis URL, no thread).
 */
int	rg_hv_sync_start(struct rg_harvest *, const struct rg_conf *,
	    struct rg_error *);
/* Stop the thread after a last batch and close the stores. */
void	rg_hv_sync_stop(struct rg_harvest *);

/*
 * Redis on the RCPT path (no lock held; each waits at most the command
 * timeout). remote_check asks whether c is blocked and updates the
 * table; remote_note counts rcpt and gives the shared count (false when
 * Redis did not answer); remote_block shares a block this host imposed.
 * Without hiredis, h->redis is NULL and nothing calls them.
 */
void	rg_hv_remote_check(struct rg_harvest *, const struct hv_limits *,
	    const struct hv_client *, struct rg_harvest_session *,
	    uint64_t now);
bool	rg_hv_remote_note(struct rg_harvest *, const struct hv_limits *,
	    const struct hv_client *, const char *rcpt, uint64_t *shared);
void	rg_hv_remote_block(struct rg_harvest *, const struct hv_limits *,
	    const struct hv_client *, uint64_t count);

/* ---- the operator's view (harvest_admin.c) ---- */

enum hv_state {
	HV_STATE_MEMORY,	/* state = (empty): nothing outlives us */
	HV_STATE_FILE,		/* a SQLite state file */
	HV_STATE_REDIS,		/* redis://HOST:PORT/DB */
};

/*
 * Which store the state key names. 0, or -1 with err for a redis://
 * URL in a build without hiredis. Pure.
 */
int	rg_hv_state_kind(const char *state, enum hv_state *,
	    struct rg_error *);

#endif
