/* SPDX-License-Identifier: MIT */
/*
 * The call-ahead backend's private header: the instance and what its
 * files share: backend_callahead.c (the dialogue, accept-all detection,
 * the ops), callahead_conn.c (connections: open, the per-host pool
 * hooks, the idle reaper), callahead_conf.c (the configuration).
 * Nothing else includes it.
 */
#ifndef RG_CALLAHEAD_PRIV_H
#define RG_CALLAHEAD_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "backend.h"
#include "conf.h"
#include "pool.h"
#include "rg_time.h"
#include "smtp_client.h"
#include "target_state.h"

#define CA_MAX_HOSTS		16
#define CA_MAX_DOMAINS		1024	/* accept-all state kept per domain */
#define CA_HOST_MAX		255
#define CA_MAX_CONNECTIONS	1000
#define CA_DEFAULT_TIMEOUT_MS	3000

struct ca;

/* One connection, made unconnected by the pool (smtp NULL) and
 * connected by the probe that takes it. */
struct ca_conn {
	struct rg_smtp_conn	*smtp;		/* NULL: not connected */
	bool			 smtputf8;	/* offered in EHLO */
};

struct ca_host {
	char		 host[CA_HOST_MAX + 1];	/* name or literal, no [] */
	char		 port[8];
	char		 label[CA_HOST_MAX + 16];	/* as configured */
	struct ca	*ca;
	/* Kept connections, at most max_connections (pool.c locks it). */
	struct rg_pool	*pool;
	atomic_uint_fast64_t connects;	/* connections opened */
	struct rg_tstate ts;		/* up/down as probes found it */
};

struct ca_domain {
	char		 name[RG_DOMAIN_MAX + 1];
	uint64_t	 checked_ms;	/* last conclusive check; 0 = never */
	bool		 accept_all;
	bool		 busy;		/* a check is running */
};

struct ca {
	char		 name[RG_NAME_MAX];
	size_t		 nhosts;
	struct ca_host	 hosts[CA_MAX_HOSTS];
	char		 helo[CA_HOST_MAX + 1];
	char		 mail_from[257];	/* no <>; "" = null sender */
	uint64_t	 timeout_ms;
	uint64_t	 idle_ms;		/* 0 = no reuse */
	uint64_t	 accept_all_ms;		/* 0 = no accept-all check */
	unsigned	 max_conn;
	struct rg_list	 check_domains;		/* for check(); owned */

	/* Guards doms and ndoms. */
	pthread_mutex_t	 dom_lock;
	struct ca_domain *doms;
	size_t		 ndoms;

	/* Guards reap_started and reap_stop; reap_cond wakes the reaper. */
	pthread_mutex_t	 reap_lock;
	pthread_cond_t	 reap_cond;
	bool		 reap_started, reap_stop;
	pthread_t	 reaper;

	atomic_uint_fast64_t probes, found, notfound, tempfail;
};

static inline uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* The deadline of one step: the timeout, within the query's deadline. */
static inline uint64_t
step_deadline(const struct ca *ca, uint64_t q_deadline)
{
	return min_u64(rg_now_ms() + ca->timeout_ms, q_deadline);
}

/* callahead_conf.c */

/* Read section sec (its keys checked: ca_keys) into ca. 0, or -1
 * with err set. */
int		 rg_ca_parse_keys(struct ca *ca, const struct rg_section *sec,
		    struct rg_error *err);

/* callahead_conn.c */

/* The per-host pools' hooks (ctx is the struct ca_host). */
extern const struct rg_pool_hooks rg_ca_pool_hooks;

/* "550 5.1.1 text" for logs, the server's words escaped (\xNN). */
void		 rg_ca_fmt_reply(const struct rg_smtp_reply *r, char *buf,
		    size_t len);
/*
 * Connect c to h: read the 220 greeting, say EHLO (HELO after a 5xx),
 * each step by step_deadline(). 0, or -1 with err saying which step
 * failed. Blocks.
 */
int		 rg_ca_conn_connect(struct ca_host *h, struct ca_conn *c,
		    uint64_t q_deadline, struct rg_error *err);
/* Init / start (at the first kept connection) / stop the idle reaper. */
int		 rg_ca_reaper_init(struct ca *ca);
void		 rg_ca_reaper_ensure(struct ca *ca);
void		 rg_ca_reaper_stop(struct ca *ca);

#endif
