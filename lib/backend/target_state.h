/* SPDX-License-Identifier: MIT */
/*
 * Per-target up/down state for the drivers with several targets (each
 * LDAP URI, each call-ahead host) and for SQLite's one file: up or
 * down, since when (wall clock, for display) and the last error text,
 * for `rcptgate-ctl status` and rcptgate_backend_target_up.
 *
 * Drivers record what they already learn (a connect, a bind, a lookup's
 * network failure); they must not do I/O to find it out. A target that
 * stays up costs one relaxed atomic load per note; the error text is
 * copied under a leaf mutex (a string cannot be one atomic store), taken
 * only on a failure or by a reader, never across I/O.
 */
#ifndef RG_TARGET_STATE_H
#define RG_TARGET_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend.h"

struct rg_tstate {
	_Atomic int	 up;		/* 1 up, 0 down, -1 not tried yet */
	_Atomic int64_t	 since;		/* wall-clock s of the last change */
	pthread_mutex_t	 mu;		/* guards error only (a leaf lock) */
	char		 error[RG_TARGET_ERR_MAX];	/* escaped; "" if up */
};

/* Not tried yet. Pair with rg_tstate_destroy. */
void	rg_tstate_init(struct rg_tstate *);
void	rg_tstate_destroy(struct rg_tstate *);

/* The target answered. Cheap when it was up already; never blocks. */
void	rg_tstate_up(struct rg_tstate *);

/*
 * The target failed: why is the driver's error text; a leading
 * "...TARGET: " naming the target is cut, the rest escaped
 * (rg_log_escape). Takes the leaf mutex briefly.
 */
void	rg_tstate_down(struct rg_tstate *, const char *target,
	    const char *why);

/* A copy of the state into out, named target. Never waits on I/O. */
void	rg_tstate_read(struct rg_tstate *, const char *target,
	    struct rg_target_state *out);

#endif
