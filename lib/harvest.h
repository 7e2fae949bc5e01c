/* SPDX-License-Identifier: MIT */
/*
 * Directory harvest limits: count unknown recipients per client prefix
 * (IPv4 masked to ipv4_prefix, IPv6 to ipv6_prefix) and per SMTP session,
 * block a client that reaches the limits, keep blocks across restarts.
 *
 * Must not: ask any backend, hold a lock across I/O or a tarpit delay.
 * Locking: see harvest.c.
 */
#ifndef RG_HARVEST_H
#define RG_HARVEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"
#include "rg_error.h"

struct rg_harvest;

/* Per SMTP session state, owned by the caller (zero it at connect). */
struct rg_harvest_session {
	uint64_t	unknown;	/* unknown recipients in this session */
	bool		blocked;	/* the session hit a limit */
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
void	rg_harvest_free(struct rg_harvest *);	/* NULL allowed; flushes state */

/* Apply new limits on reload (state store path changes need a restart). */
void	rg_harvest_configure(struct rg_harvest *, const struct rg_conf *);

/* Is this client (or its session) blocked now? Never blocks on I/O. */
enum rg_harvest_state rg_harvest_check(struct rg_harvest *,
	    const struct sockaddr *client, struct rg_harvest_session *,
	    uint64_t now_ms);

/*
 * Count one unknown recipient for client and session. Returns BLOCKED
 * when this reached a limit. *tarpit_ms (may be NULL) gets the delay the
 * caller should wait before replying (0 = none).
 */
enum rg_harvest_state rg_harvest_note_unknown(struct rg_harvest *,
	    const struct sockaddr *client, struct rg_harvest_session *,
	    uint64_t now_ms, uint64_t *tarpit_ms);

#endif
