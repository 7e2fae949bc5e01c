/* SPDX-License-Identifier: MIT */
/*
 * Private to the harvest limiter (harvest.c, harvest_sync.c,
 * harvest_admin.c, harvest_store.c, harvest_redis.c): client keys, the
 * SQLite state file and the Redis store. Not part of librcptgate's
 * interface.
 *
 * Must not: be called on the RCPT path except rg_hv_key_* (pure) and the
 * Redis calls, which wait at most their command timeout.
 * Locking: a struct rg_hv_store is used by one thread at a time (the
 * limiter's background thread, or a command-line tool); the Redis store
 * keeps a pool of connections behind one mutex held only to take or
 * return a connection, never across a command.
 */
#ifndef RG_HARVEST_STORE_H
#define RG_HARVEST_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "rg_error.h"

/* "2001:db8:1234:5678::/64" and a NUL fit. */
#define RG_HV_KEYSTR	64

/* A client prefix: family, prefix length, masked address. */
struct rg_hv_key {
	uint8_t	family;		/* AF_INET or AF_INET6 */
	uint8_t	prefix;		/* 0..32 or 0..128 */
	uint8_t	addr[16];	/* masked; IPv4 in addr[0..3], rest zero */
};

/*
 * Key of an IP client: IPv4 masked to v4prefix, IPv6 to v6prefix,
 * IPv4-mapped IPv6 treated as IPv4. client (may be NULL) gets the
 * unmasked address as text. Returns 0, or -1 if sa is not IPv4/IPv6.
 */
int	rg_hv_key_from_sockaddr(const struct sockaddr *sa, int v4prefix,
	    int v6prefix, struct rg_hv_key *key, char *client,
	    size_t clientlen);

/* Clear the host bits of key beyond v4prefix / v6prefix (by family). */
void	rg_hv_key_mask(struct rg_hv_key *, int v4prefix, int v6prefix);

/* "203.0.113.0/24" into buf. Returns 0, or -1 if buf is too small. */
int	rg_hv_key_format(const struct rg_hv_key *, char *buf, size_t len);

/*
 * Parse "IP" (masked to v4prefix / v6prefix, mapped IPv6 as IPv4) or
 * "IP/LEN" (exactly that prefix; host bits are cleared). 0 or -1.
 */
int	rg_hv_key_parse(const char *s, int v4prefix, int v6prefix,
	    struct rg_hv_key *key);

/* "2024-05-01T12:00:00Z" for wall ms. */
void	rg_hv_wall_format(uint64_t wall_ms, char *buf, size_t len);

/*
 * Keyed hashes of the distinct unknown addresses a client entry keeps
 * (in memory, in the state file, in Redis), at most max_unknown + 1 and
 * never more than this: once over max_unknown the client is blocked, so
 * more would only cost memory.
 */
#define RG_HV_SEEN_MAX	64

/* ---- SQLite state file ---- */

/*
 * One client's state, times in wall-clock ms (0 = none). count is the
 * number of distinct unknown addresses in the window; seen holds the
 * hashes of those remembered (nseen <= count: a row written by a
 * release before distinct counting has a count and no hashes).
 */
struct rg_hv_row {
	struct rg_hv_key key;
	uint64_t	count;		/* distinct unknowns in the window */
	uint64_t	window_end;	/* the window closes then */
	uint64_t	blocked_until;	/* 0 = not blocked */
	const uint64_t	*seen;		/* nseen hashes; owned by the caller */
	size_t		 nseen;
};

struct rg_hv_store;

/*
 * Open (creating if needed) the state file in WAL mode. NULL with err
 * if it cannot be opened or its schema created. Blocks on disk I/O.
 */
struct rg_hv_store *rg_hv_store_open(const char *path, struct rg_error *);
void	rg_hv_store_close(struct rg_hv_store *);	/* NULL allowed */

/*
 * The key the file's address hashes are made with: key is stored unless
 * the file has one, then replaced by the file's, so hashes written
 * before a restart match those made after it. 0, or -1 with err.
 */
int	rg_hv_store_hashkey(struct rg_hv_store *, uint64_t key[2],
	    struct rg_error *);

/*
 * Call fn for each row still alive at wall time now (blocks first, then
 * the most recently updated counters), at most max rows. Returns the
 * number of rows, or -1 with err.
 */
int	rg_hv_store_load(struct rg_hv_store *, uint64_t now, size_t max,
	    void (*fn)(const struct rg_hv_row *, void *), void *arg,
	    struct rg_error *);

/*
 * Write rows in one transaction: a row with count 0 and no block is
 * deleted, others replaced. All or nothing. 0, or -1 with err.
 */
int	rg_hv_store_write(struct rg_hv_store *, const struct rg_hv_row *,
	    size_t n, uint64_t now, struct rg_error *);

/* Delete rows dead at wall time now and old lift records. 0 or -1. */
int	rg_hv_store_purge(struct rg_hv_store *, uint64_t now,
	    struct rg_error *);

/*
 * Blocks lifted by an operator after journal id *since: call fn for each
 * and advance *since. Start with *since = UINT64_MAX ("from now on":
 * only sets *since). 0, or -1 with err.
 */
int	rg_hv_store_lifted(struct rg_hv_store *, uint64_t *since,
	    void (*fn)(const struct rg_hv_key *, void *), void *arg,
	    struct rg_error *);

/* Operator view: print rows alive now to out. 0 or -1 with err. */
int	rg_hv_store_list(const char *path, FILE *out, struct rg_error *);

/*
 * Lift the block and the counter of key and record the lift for running
 * daemons. Returns 1 if something was lifted, 0 if nothing matched, -1
 * with err.
 */
int	rg_hv_store_unblock(const char *path, const struct rg_hv_key *,
	    struct rg_error *);

/* ---- Redis (only with RG_HAVE_HIREDIS) ---- */

struct rg_hv_redis;

/*
 * Parse "redis://HOST:PORT/DB" (HOST may be [v6]); does not connect yet.
 * NULL with err if the URL is malformed.
 */
struct rg_hv_redis *rg_hv_redis_new(const char *url, struct rg_error *);
void	rg_hv_redis_free(struct rg_hv_redis *);	/* NULL allowed */

/*
 * Count the unknown address rcpt (NULL: a new one) for prefix, once per
 * window: a set of at most cap keyed hashes that expires window_ms after
 * its first member. *count gets the distinct count shared by every
 * host (plus a counter left by a release before distinct counting). 0,
 * or -1 when Redis is unavailable (logged once per outage; retried
 * after a pause).
 */
int	rg_hv_redis_note(struct rg_hv_redis *, const char *prefix,
	    const char *rcpt, uint64_t window_ms, size_t cap,
	    uint64_t *count);

/* Block prefix for block_ms (SET PX). 0 or -1. */
int	rg_hv_redis_block(struct rg_hv_redis *, const char *prefix,
	    uint64_t block_ms, uint64_t count);

/* *left_ms gets the block's remaining time, 0 if none. 0 or -1. */
int	rg_hv_redis_blocked(struct rg_hv_redis *, const char *prefix,
	    uint64_t *left_ms);

/* Operator view and unblock, as for the SQLite store. */
int	rg_hv_redis_list(const char *url, FILE *out, struct rg_error *);
int	rg_hv_redis_unblock(const char *url, const char *prefix,
	    struct rg_error *);

#endif
