/* SPDX-License-Identifier: MIT */
/*
 * The backend interface, the registry of drivers and the surrogate.
 *
 * Each driver (backend_sqlite.c, backend_ldap.c, backend_callahead.c)
 * exports one const struct rg_backend_ops; everything else in it is
 * static. Drivers never cache (cache.c does) and never hold a lock across
 * network or disk I/O. lookup() is reentrant: libmilter calls it from one
 * thread per SMTP connection, many at once.
 */
#ifndef RG_BACKEND_H
#define RG_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "rg_error.h"

enum rg_result {
	RG_FOUND = 0,	/* the recipient exists */
	RG_NOTFOUND,	/* the directory answered: no such recipient */
	RG_TEMPFAIL,	/* could not tell (down, slow, busy): never a reject */
	RG_CONFIG,	/* the backend is misconfigured: treated as tempfail */
};

const char *rg_result_str(enum rg_result);	/* "found", "notfound", ... */

struct rg_query {
	const char	*key;		/* what to look up: "user@d", "user@d" without
					 * subaddress, or "@d" for the catch-all */
	const char	*local;		/* local part of key ("" for a catch-all) */
	const char	*domain;	/* domain of key */
	uint64_t	 deadline_ms;	/* rg_now_ms() clock; every driver honours it */
	char		*trace;		/* if not NULL, the driver may write a short
					 * human detail (filter sent, server that
					 * answered) for `rcptgate -t -v` */
	size_t		 tracelen;
};

struct rg_backend;

#define RG_TARGETS_MAX		16	/* per backend (LDAP URIs, hosts) */
#define RG_TARGET_MAX		272	/* a URI, host:port or file path */
#define RG_TARGET_ERR_MAX	256

/* One target of a backend as last seen by its lookups (targets op). */
struct rg_target_state {
	char		 target[RG_TARGET_MAX];	/* URI, host, file */
	int		 up;		/* 1 up, 0 down, -1 not tried yet */
	int64_t		 since;		/* wall-clock s of the last change */
	char		 error[RG_TARGET_ERR_MAX];	/* when down; escaped */
};

struct rg_backend_ops {
	const char	*type;		/* "sqlite", "ldap", "callahead" */

	/*
	 * Read the section (validating every key with rg_section_* so errors
	 * name file, line and key) and set b->priv. Must not block on the
	 * network: connect lazily. Returns 0, -1 for a configuration error
	 * (err says why; the configuration is rejected), or -2 when the
	 * backend is configured right but cannot run now (err says why; the
	 * registry installs a surrogate that tempfails every lookup).
	 */
	int		(*open)(struct rg_backend *, const struct rg_section *,
			    struct rg_error *);

	/* One lookup of q->key. Honour q->deadline_ms; timeout = RG_TEMPFAIL. */
	enum rg_result	(*lookup)(struct rg_backend *, const struct rg_query *,
			    struct rg_error *);

	/* Free b->priv and every connection. No lookup runs concurrently. */
	void		(*close)(struct rg_backend *);

	/*
	 * Optional. A number that changes whenever the data behind the
	 * backend may have changed (a replaced or edited SQLite file), so
	 * negative cache entries from before die. Cheap (a stat at most).
	 */
	uint64_t	(*generation)(struct rg_backend *);

	/*
	 * Optional. A live check for `rcptgate -n` (connect, bind, probe);
	 * 0 if fine. May write warnings into warn (e.g. accept-all server).
	 */
	int		(*check)(struct rg_backend *, struct rg_error *err,
			    struct rg_error *warn);

	/* Optional. Worst-case milliseconds one lookup can take (timeouts x
	 * hosts), for the `-n` warning against [policy] deadline. */
	uint64_t	(*worst_case_ms)(struct rg_backend *);

	/* Optional. Log-friendly counters for SIGUSR2, into buf. */
	void		(*stats)(struct rg_backend *, char *buf, size_t len);

	/*
	 * Optional. Each target's recorded state (no I/O, no wait on a
	 * lookup) into out, at most max; returns how many.
	 */
	size_t		(*targets)(struct rg_backend *,
			    struct rg_target_state *out, size_t max);
};

/*
 * Outside backend.c (and a driver's own unit tests), never call through
 * ops: use the rg_backend_* helpers below. A surrogate keeps its
 * driver's ops but not the driver's priv, so a direct call on one reads
 * the wrong struct; the helpers handle it.
 */
struct rg_backend {
	const struct rg_backend_ops *ops;	/* backend.c's only */
	char		 name[RG_NAME_MAX];	/* section name */
	void		*priv;			/* the driver's */
	char		*surrogate_reason;	/* set: every lookup tempfails */
	/* failure warnings: at most one a minute (rg_backend_lookup) */
	_Atomic uint64_t fail_next_log_ms;	/* rg_now_ms() of the next one */
	_Atomic uint64_t fail_suppressed;	/* failures not logged since */
};

/*
 * Open the driver named by sec's "type" key. Returns a backend, or NULL
 * with err set (unknown type, type not built in, bad keys). A driver that
 * returns -2 from open gives a surrogate backend that tempfails with the
 * reason logged. Free with rg_backend_free.
 */
struct rg_backend *rg_backend_open(const struct rg_section *sec,
	    struct rg_error *err);
void	rg_backend_free(struct rg_backend *);	/* NULL allowed */

/*
 * Dispatch helpers; surrogate and optional ops handled here. A failed
 * lookup (tempfail, config) is logged by rg_backend_lookup at most once
 * a minute per backend, with the count of those held back; the verdict's
 * own log line carries each decision's reason.
 */
enum rg_result rg_backend_lookup(struct rg_backend *, const struct rg_query *,
	    struct rg_error *);
uint64_t rg_backend_generation(struct rg_backend *);
uint64_t rg_backend_worst_case_ms(struct rg_backend *);
int	rg_backend_check(struct rg_backend *, struct rg_error *err,
	    struct rg_error *warn);		/* -n: 0 if usable */
void	rg_backend_stats(struct rg_backend *, char *buf, size_t len);
const char *rg_backend_type(const struct rg_backend *);
/*
 * Each target's up/down state as the lookups left it, into out (at most
 * max); returns the count, 0 if the driver keeps none. A surrogate
 * gives one target, down since it was opened, with its reason. Reads
 * recorded state only: never blocks on a backend.
 */
size_t	rg_backend_targets(struct rg_backend *, struct rg_target_state *out,
	    size_t max);

/*
 * Tests only: make one more driver known to rg_backend_open (a scripted
 * backend for test/unit/test_policy.c). Call before any open; not
 * thread-safe. NULL removes it.
 */
void	rg_backend_set_test_driver(const struct rg_backend_ops *);

/* The drivers built in, NULL-terminated. */
extern const struct rg_backend_ops *const rg_backend_drivers[];

extern const struct rg_backend_ops rg_backend_sqlite_ops;
extern const struct rg_backend_ops rg_backend_ldap_ops;
extern const struct rg_backend_ops rg_backend_callahead_ops;

#endif
