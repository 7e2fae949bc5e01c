/* SPDX-License-Identifier: MIT */
/*
 * Counters the front doors keep for the metrics endpoint: decisions by
 * verdict and deciding backend (or rule), milter and policy connections. Process
 * lifetime, atomics only: a scrape never waits.
 */
#ifndef RG_OPSTATS_H
#define RG_OPSTATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "conf.h"

#define RG_OPSTATS_SLOTS	128

struct rg_decision_stat {
	_Atomic int	 used;		/* set (release) once the names are */
	char		 verdict[16];	/* accept, reject, tempfail, shutdown */
	char		 by[RG_NAME_MAX];
	_Atomic uint64_t n;
};

/* Count one decision. Never blocks but on the first use of a pair. */
void	rg_opstats_decision(const char *verdict, const char *by);
const struct rg_decision_stat *rg_opstats_decision_slot(unsigned i);

/* "accept", "reject", "tempfail", "shutdown" for an enum rg_action. */
const char *rg_action_word(int action);

extern _Atomic uint64_t rg_opstats_milter_connections;	/* total */
extern _Atomic int64_t	rg_opstats_milter_active;	/* now */
extern _Atomic uint64_t	rg_opstats_reloads;		/* control "reload" */
extern _Atomic uint64_t rg_opstats_policy_connections;	/* total */
extern _Atomic int64_t	rg_opstats_policy_active;	/* now */
extern _Atomic uint64_t	rg_opstats_policy_requests;	/* total */
extern _Atomic uint64_t	rg_opstats_policy_protocol_errors; /* closed */

#endif
