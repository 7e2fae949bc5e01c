/* SPDX-License-Identifier: MIT */
/*
 * The LDAP backend's private header: the instance, one pooled handle,
 * and what its three files (backend_ldap.c the lookup and the ops,
 * ldap_conf.c the configuration, ldap_conn.c connecting and failover)
 * share. Nothing outside lib/backend/backend_ldap*.c and ldap_*.c
 * includes it.
 */
#ifndef RG_LDAP_PRIV_H
#define RG_LDAP_PRIV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ldap.h>

#include "backend.h"
#include "pool.h"
#include "target_state.h"

#define LDAP_DEFAULT_TIMEOUT_MS	3000
#define LDAP_DEFAULT_FAILBACK_MS 30000
#define LDAP_DEFAULT_POOL	8
#define LDAP_POOL_MAX		1024
#define LDAP_URIS_MAX		16
#define LDAP_PASSWORD_MAX	1024

#define AD_FILTER	"(|(mail=%s)(proxyAddresses=smtp:%s))"
#define OPENLDAP_FILTER	"(mail=%s)"
/* LDAP_MATCHING_RULE_BIT_AND on userAccountControl ACCOUNTDISABLE (2) */
#define AD_ENABLED	"(!(userAccountControl:1.2.840.113556.1.4.803:=2))"

/* One pooled handle. ld is NULL until connected (lazy). */
struct ldap_conn {
	LDAP		*ld;
	size_t		 uri_idx;	/* server it is connected to */
};

struct ldap_backend {
	char		 name[RG_NAME_MAX];
	size_t		 nuris;
	char		*uris[LDAP_URIS_MAX];
	char		*base;
	int		 scope;
	char		*filter;	/* the template, preset or `filter` */
	char		*bind_dn;	/* NULL: anonymous (or EXTERNAL) */
	char		*password;	/* from bind_password_file */
	bool		 sasl_external;
	bool		 starttls;
	char		*tls_ca_file;
	bool		 tls_verify;
	uint64_t	 timeout_ms;
	uint64_t	 failback_ms;
	char		*result_attr;	/* NULL: an entry is enough */
	size_t		 pool_size;

	/* The handles (pool.c locks it); never held across LDAP I/O. */
	struct rg_pool	*pool;

	/* Per server: rg_now_ms() until which it is tried last (0: up). */
	_Atomic uint64_t down_until[LDAP_URIS_MAX];

	/* Per server: up/down as connects and searches found it, for
	 * `rcptgate-ctl status` (all LDAP_URIS_MAX initialised). */
	struct rg_tstate ts[LDAP_URIS_MAX];

	_Atomic uint64_t n_lookups, n_found, n_notfound, n_tempfail,
			 n_connects, n_reconnects;
};

/* ldap_conf.c */

/*
 * A configured instance from section sec (no connection yet), pool
 * included; the caller has checked its keys (ldap_keys). NULL with err set. Free with rg_ldap_backend_free().
 */
struct ldap_backend *rg_ldap_backend_new(const char *name,
		    const struct rg_section *sec, struct rg_error *err);
/* Close every idle handle and free lb. NULL does nothing. */
void		 rg_ldap_backend_free(struct ldap_backend *lb);

/* Where a connect failed (rg_ldap_connect_one's *stage). */
#define RG_LDAP_STAGE_CONNECT	0
#define RG_LDAP_STAGE_TLS	1
#define RG_LDAP_STAGE_BIND	2
#define RG_LDAP_STAGE_SEARCH	3

/* ldap_conn.c */

/* The pool's hooks: a handle is made unconnected, connected on use. */
extern const struct rg_pool_hooks rg_ldap_pool_hooks;

/* Unbind c's handle (blocks briefly: it writes the unbind). */
void		 rg_ldap_conn_drop(struct ldap_conn *c);
/* Network and operation timeouts of ld, both ms. */
void		 rg_ldap_set_timeouts(LDAP *ld, uint64_t ms);
/* min(timeout, time left before deadline_ms). */
uint64_t	 rg_ldap_budget(const struct ldap_backend *lb,
		    uint64_t deadline_ms);
/*
 * Connect and bind to one server by deadline_ms. An LDAP result code;
 * on success *out is the bound handle (the caller unbinds), else why
 * says what failed. Blocks.
 */
int		 rg_ldap_connect_one(struct ldap_backend *lb, const char *uri,
		    uint64_t deadline_ms, LDAP **out, int *stage,
		    struct rg_error *why);
/*
 * Connect c, servers in order (those not held off first), probe (if <
 * nuris) before all. 0, or -1 with every server's reason. Blocks.
 */
int		 rg_ldap_conn_connect(struct ldap_backend *lb,
		    struct ldap_conn *c, size_t probe, uint64_t deadline_ms,
		    struct rg_error *err);
/* The earlier server c should move back to, or nuris for none. */
size_t		 rg_ldap_failback_probe(struct ldap_backend *lb,
		    const struct ldap_conn *c);

/* ldap_diag.c */

/* src into dst (len bytes) with each run of CR/LF made "; ". */
void		 rg_ldap_oneline(const char *src, char *dst, size_t len);
/*
 * ld's diagnostic message (the server's text, or the TLS library's
 * reason after a failed StartTLS) on one line into buf; empty if none.
 */
void		 rg_ldap_diag(LDAP *ld, char *buf, size_t len);
/*
 * For -n: append to warn the setting that fixes a failure at stage
 * (RG_LDAP_STAGE_*) with result rc and diagnostic diag, if one is known.
 * After a failed StartTLS it connects again, unverified, to read the
 * certificate's names. Blocks.
 */
void		 rg_ldap_hint(const struct ldap_backend *lb, const char *uri,
		    int stage, int rc, const char *diag, struct rg_error *warn);

#endif
