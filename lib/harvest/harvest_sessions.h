/* SPDX-License-Identifier: MIT */
/*
 * Per-session harvest state for a front door that sees no SMTP session
 * of its own: Postfix's policy protocol sends one request per recipient,
 * possibly over a connection Postfix reopened in the middle of the
 * session, so the door names the session by a key it builds from the
 * request (client and server address and port) and keeps its struct
 * rg_harvest_session here between requests.
 *
 * Bounded: an entry unused for idle_ms is forgotten, and at most max
 * entries are kept (the least recently used goes first). Forgetting a
 * session only forgets its per-session count; the per-client limits in
 * harvest.c still hold. Locking: one mutex per shard, held only to copy.
 */
#ifndef RG_HARVEST_SESSIONS_H
#define RG_HARVEST_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "harvest.h"

struct rg_hv_sessions;

/* NULL when out of memory. */
struct rg_hv_sessions *rg_hv_sessions_new(size_t max, uint64_t idle_ms);
void	rg_hv_sessions_free(struct rg_hv_sessions *);	/* NULL allowed */

/* key's state into *out: a zeroed one for a session not seen (or
 * forgotten). */
void	rg_hv_sessions_get(struct rg_hv_sessions *, const char *key,
	    struct rg_harvest_session *out, uint64_t now_ms);

/* Keep *in as key's state (out of memory: the state is not kept). */
void	rg_hv_sessions_put(struct rg_hv_sessions *, const char *key,
	    const struct rg_harvest_session *in, uint64_t now_ms);

/* Entries held now (tests). */
size_t	rg_hv_sessions_count(struct rg_hv_sessions *);

#endif
