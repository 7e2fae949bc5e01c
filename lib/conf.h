/* SPDX-License-Identifier: MIT */
/*
 * The configuration model and its loader.
 *
 * A loaded struct rg_conf is immutable and refcounted: a reload parses a
 * new one, validates it, swaps a pointer and drops the old reference.
 * The loader is declarative: one table of keys (name, type, default,
 * section) over our own INI reader; errors name file, line and key.
 * [backend NAME] sections are kept raw (struct rg_section) and validated
 * by the backend driver's open(), through the rg_section_* helpers here.
 */
#ifndef RG_CONF_H
#define RG_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netprefix.h"
#include "rg_error.h"

#define RG_NAME_MAX	64	/* backend and section names */

/* ---- value types shared with drivers ---- */

struct rg_list {
	size_t	  n;
	char	**v;		/* n strings, owned */
};

struct rg_net {
	int	family;		/* AF_INET or AF_INET6 */
	uint8_t	addr[16];	/* network byte order, masked */
	int	prefix;		/* 0..32 or 0..128 */
};

struct rg_netlist {
	size_t		 n;
	struct rg_net	*v;
};

/* Parsers (also used by drivers and tools). 0 on success, -1 if invalid. */
int	rg_parse_duration(const char *, uint64_t *ms);	/* "8s" "10m" "1h" "1d" "500ms" "30" (s) */
int	rg_parse_bool(const char *, bool *);		/* yes/no true/false on/off 1/0 */
int	rg_parse_uint(const char *, uint64_t max, uint64_t *);
int	rg_parse_list(const char *, struct rg_list *);	/* comma and/or space separated */
int	rg_parse_net(const char *, struct rg_net *);	/* "10.0.0.0/8", "::1", "192.0.2.1" */
int	rg_parse_netlist(const char *, struct rg_netlist *);
void	rg_list_free(struct rg_list *);
void	rg_netlist_free(struct rg_netlist *);
bool	rg_list_contains_ci(const struct rg_list *, const char *);

/* Is the address (struct sockaddr *) inside one of the networks? */
struct sockaddr;
bool	rg_netlist_match(const struct rg_netlist *, const struct sockaddr *);

/* rg_prefix_equal and rg_prefix_mask: netprefix.h. */

/* ---- raw sections, for backend drivers ---- */

struct rg_kv {
	char	*key;
	char	*value;
	int	 line;
};

struct rg_section {
	char		*name;		/* "corp" for [backend corp] */
	const char	*file;		/* the config file, for messages */
	int		 line;		/* line of the [header] */
	size_t		 n;
	struct rg_kv	*kv;
};

/* The value of key, or NULL; *line (may be NULL) gets its line. */
const char *rg_section_get(const struct rg_section *, const char *key, int *line);

/*
 * Typed getters: if the key is absent *out = def and 0 is returned; if it
 * is present but invalid, err gets "FILE:LINE: [backend NAME] key 'KEY':
 * WHY" and -1 is returned. rg_section_string returns a pointer into the
 * section (no copy).
 */
int	rg_section_string(const struct rg_section *, const char *key,
	    const char *def, const char **out, struct rg_error *);
int	rg_section_duration(const struct rg_section *, const char *key,
	    uint64_t def, uint64_t *out, struct rg_error *);
int	rg_section_bool(const struct rg_section *, const char *key, bool def,
	    bool *out, struct rg_error *);
int	rg_section_uint(const struct rg_section *, const char *key, uint64_t def,
	    uint64_t max, uint64_t *out, struct rg_error *);
int	rg_section_list(const struct rg_section *, const char *key,
	    struct rg_list *out, struct rg_error *);	/* absent: empty list */

/*
 * Fail with file/line/key naming the first key of sec that is not in the
 * NULL-terminated allowed[] ("type" is always allowed).
 */
int	rg_section_check_keys(const struct rg_section *,
	    const char *const *allowed, struct rg_error *);

/* Format "FILE:LINE: [backend NAME] key 'KEY': " + message into err. */
void	rg_section_error(const struct rg_section *, const char *key,
	    struct rg_error *, const char *, ...)
	    __attribute__((format(printf, 4, 5)));

/* ---- the model ---- */

enum rg_failure_action {
	RG_FAILURE_TEMPFAIL = 0,
	RG_FAILURE_ACCEPT,
};

enum rg_harvest_action {
	RG_HARVEST_TEMPFAIL = 0,	/* 421 4.7.0 */
	RG_HARVEST_REJECT,		/* 550 5.7.1 */
};

/* The keys of [policy], also overridable per [domain X]. */
struct rg_policy {
	struct rg_list		 backends;	/* names, each defined as [backend NAME] */
	size_t			*backend_idx;	/* backends.n indices into rg_conf.backends */
	char			*subaddress_delimiter;	/* "" = off */
	struct rg_list		 always_accept;	/* local parts */
	enum rg_failure_action	 on_backend_failure;
	bool			 skip_authenticated;
	struct rg_netlist	 trusted_networks;
	uint64_t		 deadline_ms;
};

struct rg_domain_conf {
	char		*name;		/* lower-case, no trailing dot */
	int		 line;
	struct rg_policy policy;	/* [policy] values overridden by this section */
};

struct rg_conf {
	char		*path;		/* file it was read from */

	/* [milter] */
	char		*socket;	/* "unix:/run/rcptgate/rcptgate.sock";
					 * "" = milter door off ("none") */
	char		*user;		/* "rcptgate"; "" = do not change user */
	unsigned	 socket_mode;	/* unix socket permissions, default 0660 */
	int		 log_level;	/* enum rg_log_level */

	/* [policy] */
	struct rg_list	 domains;	/* lower-case; "*" = every domain */
	bool		 all_domains;	/* domains contains "*" */
	struct rg_policy policy;

	/* [domain X]: checked too, even when not in domains */
	size_t		 ndomains;
	struct rg_domain_conf *domain;

	/* [backend NAME], in file order */
	size_t		 nbackends;
	struct rg_section *backends;

	/* [cache] */
	uint64_t	 positive_ttl_ms;	/* default 1h */
	uint64_t	 negative_ttl_ms;	/* default 10m */
	uint64_t	 cache_size;		/* default 100000; 0 = no cache */
	uint64_t	 stale_ttl_ms;		/* default 1d; 0 = off */

	/* [harvest] */
	uint64_t	 harvest_max_unknown;		/* default 5; 0 = off */
	uint64_t	 harvest_window_ms;		/* default 10m */
	uint64_t	 harvest_block_time_ms;		/* default 1h */
	uint64_t	 harvest_max_unknown_per_session;/* default 3; 0 = off */
	int		 harvest_ipv4_prefix;		/* default 32 */
	int		 harvest_ipv6_prefix;		/* default 64 */
	enum rg_harvest_action harvest_action;		/* default tempfail */
	char		*harvest_state;		/* default /var/lib/rcptgate/harvest.db; "" = memory only;
						 * "redis://HOST:PORT/DB" = shared */
	uint64_t	 harvest_tarpit_ms;		/* default 0 = off; first delay, doubling */
	uint64_t	 harvest_tarpit_max_ms;		/* default 16s: cap of one delay */
	uint64_t	 harvest_tarpit_sessions;	/* default 64: sessions held at once */
	struct rg_netlist harvest_exempt;		/* never counted nor blocked */
	bool		 harvest_block_allows_postmaster;/* default no */
	uint64_t	 harvest_max_clients;		/* default 100000: counters kept */

	/* [postfix_policy]: Postfix's check_policy_service door */
	char		*policy_socket;		/* "" = off */
	uint64_t	 policy_max_connections;	/* default 1000 */
	uint64_t	 policy_idle_timeout_ms;	/* default 330s */
	uint64_t	 policy_request_timeout_ms;	/* default 10s */

	/* [control], [metrics] (conf_ops.c checks them; "" = off) */
	char		*control_socket;	/* "unix:/run/rcptgate/control.sock" */
	char		*control_group;		/* "rcptgate-admin"; "" = keep */
	char		*metrics_listen;	/* "127.0.0.1:9469" */

	int		 refs;		/* see rg_conf_ref; atomic */
};

/*
 * Read and validate path. Returns a conf with one reference, or NULL with
 * every problem found in err, one per line, each "FILE:LINE: key 'K': why".
 * Does not open backends (that is rg_runtime's job, which also reports
 * driver key errors).
 */
struct rg_conf *rg_conf_load(const char *path, struct rg_error *err);

/* Same from a string (for tests and fuzzing); name is used in messages. */
struct rg_conf *rg_conf_load_string(const char *text, const char *name,
	    struct rg_error *err);

/* The built-in defaults, as if from an empty file. */
struct rg_conf *rg_conf_defaults(void);

struct rg_conf *rg_conf_ref(struct rg_conf *);
void	rg_conf_unref(struct rg_conf *);	/* NULL allowed; frees at zero */

/*
 * The policy for a recipient domain (lower-case): its [domain] section if
 * any, else [policy] if the domain is checked, else NULL (pass untouched).
 */
const struct rg_policy *rg_conf_policy_for(const struct rg_conf *,
	    const char *domain);

/* Find a [backend NAME] section by name, or NULL. */
const struct rg_section *rg_conf_backend(const struct rg_conf *, const char *name);

/*
 * Every key the loader knows, as "section.key" strings (section "backend"
 * for keys of any driver is not included): NULL-terminated, static.
 * Used by the man page test.
 */
const char *const *rg_conf_known_keys(void);

/*
 * conf_ops.c: check a [control] or [metrics] value (key "control.socket",
 * "control.group", "metrics.listen"). 0, or -1 with why.
 */
int	rg_conf_ops_check(const char *key, const char *v, char *why,
	    size_t wlen);
struct sockaddr_storage;
int	rg_conf_parse_listen(const char *v, struct sockaddr_storage *);

#endif
