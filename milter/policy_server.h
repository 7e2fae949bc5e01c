/* SPDX-License-Identifier: MIT */
/*
 * The Postfix policy door ([postfix_policy] socket): Postfix's
 * check_policy_service asks, one request per recipient, over
 * connections each smtpd process keeps open across sessions. Each
 * request is translated into one rg_decide and its verdict into one
 * "action=" line; nothing is decided here.
 *
 * One thread per connection (a small stack), at most max_connections of
 * them; main.c opens the socket as root and starts the acceptor once the
 * engine exists.
 */
#ifndef RG_POLICY_SERVER_H
#define RG_POLICY_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "policy.h"

/*
 * Listen on conf's [postfix_policy] socket: a unix socket gets [milter]
 * socket_mode and, when change_user, the owner uid:gid (a stale socket
 * file is replaced). 0 (also when the door is off), or -1 with err.
 */
int	rg_pf_open(const struct rg_conf *, bool change_user, uid_t, gid_t,
	    struct rg_error *);

/* Serve on the acceptor thread. 0 (also when off) or -1 with err. */
int	rg_pf_start(struct rg_engine *, struct rg_error *);

/* Stop accepting and remove a unix socket file. Connections in flight
 * end with the process. */
void	rg_pf_stop(void);

#endif
