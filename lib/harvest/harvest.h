/* SPDX-License-Identifier: MIT */
/*
 * Directory harvest limits: count unknown recipients per client prefix
 * (IPv4 masked to ipv4_prefix, IPv6 to ipv6_prefix) and per SMTP session,
 * block a client that reaches the limits, keep blocks across restarts.
 *
 * Must not: ask any backend, hold a lock across I/O or a tarpit delay.
 * Locking: see harvest.c (the table) and harvest_sync.c (its store).
 */
#ifndef RG_HARVEST_H
#define RG_HARVEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "conf.h"
#include "rg_error.h"

struct rg_harvest;

/*
 * Addresses a session remembers to count each unknown recipient once;
 * past this many distinct ones every further unknown counts (a session
 * limit above it is unusual, and such a session is harvesting anyway).
 */
#define RG_HARVEST_SESSION_SEEN	16

/* Per SMTP session state, owned by the caller (zero it at connect). */
struct rg_harvest_session {
	uint64_t	unknown;	/* distinct unknown recipients */
	bool		blocked;	/* the session hit a limit */
	uint64_t	shared_ok_until; /* Redis said "not blocked"; trust
					  * that until this time (ms) */
	uint64_t	seen[RG_HARVEST_SESSION_SEEN]; /* their keyed hashes */
	unsigned	nseen;
};

enum rg_harvest_state {
	RG_HARVEST_OK = 0,
	RG_HARVEST_BLOCKED,
};

/*
 * Create the limiter from conf's [harvest] keys; opens the state store.
 * NULL with err on failure. A limiter with max_unknown = 0 and
 * max_unknown_per_session = 0 counts nothing and never blocks.
 */
struct rg_harvest *rg_harvest_new(const struct rg_conf *, struct rg_error *);
void	rg_harvest_free(struct rg_harvest *); /* NULL allowed; flushes state */

/* Apply new limits on reload (state store path changes need a restart). */
void	rg_harvest_configure(struct rg_harvest *, const struct rg_conf *);

/*
 * Is this client (or its session) blocked now? With a file state or none
 * it never waits on I/O. With state = redis://, it asks Redis at most
 * once per session and then once per few seconds per blocked client
 * (waiting at most the 300 ms command timeout; unreachable Redis is
 * skipped for a few seconds and local counts decide).
 */
enum rg_harvest_state rg_harvest_check(struct rg_harvest *,
	    const struct sockaddr *client, struct rg_harvest_session *,
	    uint64_t now_ms);

/*
 * Count one unknown recipient rcpt (normalised; NULL = not known, counts
 * as a new one) for client and session. Each distinct address counts
 * once per session and once per client window: a server retrying the
 * same stale addresses is not harvesting. Returns BLOCKED
 * when this reached a limit. *tarpit_ms (may be NULL) gets the delay the
 * caller should wait before replying (0 = none). A non-zero *tarpit_ms
 * holds one of tarpit_sessions slots: the caller sleeps (no lock held)
 * and then MUST call rg_harvest_tarpit_done once. With state = redis://
 * it waits on Redis as rg_harvest_check does.
 */
enum rg_harvest_state rg_harvest_note_unknown(struct rg_harvest *,
	    const struct sockaddr *client, struct rg_harvest_session *,
	    const char *rcpt, uint64_t now_ms, uint64_t *tarpit_ms);

/*
 * Does a recipient the MTA rejected itself (SMFIP_RCPT_REJ) count for
 * the limits? status is the enhanced code the MTA gives in {rcpt_host}
 * for such a recipient: only "5.1.1" (no such mailbox) counts; a 4.x.x
 * (greylisting), 5.7.x (relay, RBL), 5.1.8 (a sender reject Postfix
 * reports at RCPT), anything else, NULL or empty does not. Pure.
 */
bool	rg_harvest_mta_status_counts(const char *status);

/* Release the tarpit slot taken by a note_unknown that set *tarpit_ms. */
void	rg_harvest_tarpit_done(struct rg_harvest *);

/* Counters for SIGUSR2 and tests. */
struct rg_harvest_stats {
	uint64_t	clients;	/* entries in memory now */
	uint64_t	blocked;	/* of which blocked (maybe expired) */
	uint64_t	blocks;		/* blocks imposed since start */
	uint64_t	evicted;	/* entries dropped for max_clients */
	uint64_t	store_errors;	/* failed state file batches */
	uint64_t	tarpit_active;	/* sessions in a tarpit now */
};
void	rg_harvest_stats(struct rg_harvest *, struct rg_harvest_stats *);

/*
 * Operator view, working on the state store of conf (SQLite file or
 * Redis) directly, without a running daemon; a running daemon notices
 * an unblock within about two seconds.
 *
 * rg_harvest_list prints one line per client prefix alive now:
 * "PREFIX<TAB>blocked<TAB>count=N<TAB>until=ISO8601" or
 * "PREFIX<TAB>counting<TAB>count=N<TAB>window_end=ISO8601".
 * rg_harvest_unblock lifts the block and the counter of an address
 * (masked to ipv4_prefix / ipv6_prefix) or an exact "ADDR/LEN" prefix.
 * Both block on disk or network I/O. list returns 0 or -1; unblock 1 if
 * a block or counter was lifted, 0 if none matched, -1 on error (err).
 */
int	rg_harvest_list(const struct rg_conf *, FILE *out, struct rg_error *);
int	rg_harvest_unblock(const struct rg_conf *, const char *client_or_prefix,
	    struct rg_error *);

/* The [harvest] settings in effect, for `rcptgate -n`. */
void	rg_harvest_describe(const struct rg_conf *, FILE *out);

#endif
