/* SPDX-License-Identifier: MIT */
/*
 * The operator front doors of the daemon: the control socket
 * (control.c) and the metrics endpoint (metrics.c). Both only translate
 * their protocol into calls of the core (lib/explain.h, cache, harvest,
 * the counters); main.c opens them before dropping privileges and
 * starts them once the engine exists.
 */
#ifndef RG_OPS_H
#define RG_OPS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "policy.h"

struct rg_ops_info {
	const char	*conf_path;
	const char	*milter_socket;	/* "none" when off */
	const char	*policy_socket;	/* "none" when off */
	time_t		 started;	/* wall clock */
	struct rg_engine *engine;
};

/*
 * Make conf's [control] socket: bind, mode 0660, owner uid (-1: keep),
 * group [control] group. Call as root before dropping privileges.
 * Returns the listening fd, -2 when there is no [control] socket, or -1
 * with err set.
 */
int	rg_control_open(const struct rg_conf *, uid_t uid, struct rg_error *);

/* Serve fd on a thread of its own. 0 or -1. info must live on. */
int	rg_control_start(int fd, const struct rg_ops_info *info);

/* Remove the socket file of conf's [control] socket (at shutdown). */
void	rg_control_unlink(const struct rg_conf *);

/*
 * Start the [metrics] listener (libmicrohttpd, its own thread). 0 when
 * started or not configured, -1 with err set.
 */
int	rg_metrics_start(const struct rg_conf *, const struct rg_ops_info *,
	    struct rg_error *);
void	rg_metrics_stop(void);

/* The metrics page, Prometheus text format, into f (also for tests). */
void	rg_metrics_write(FILE *f, const struct rg_ops_info *);

/* ops.c: what main.c calls (see there). 0 or -1 with err. */
int	rg_ops_open(const struct rg_conf *, uid_t uid, struct rg_error *);
int	rg_ops_start(struct rg_engine *, const char *conf_path,
	    const char *milter_socket, const char *policy_socket,
	    struct rg_error *);
void	rg_ops_stop(const struct rg_conf *);

/* status, in text or JSON, into f (control.c; metrics shares nothing). */
void	rg_control_status(FILE *f, const struct rg_ops_info *, int json);

#endif
