/* SPDX-License-Identifier: MIT */
/*
 * Private to the configuration loader (lib/conf*.c); nothing else
 * includes it. The loader is split by job:
 *
 *	conf_read.c	the INI reader: text to [section] headers, keys and
 *			continuation lines, each with its line number; and
 *			pass 1, those items to raw sections
 *	conf_value.c	value parsers (durations, numbers, lists, networks,
 *			sockets, state URLs, names, domains)
 *	conf_section.c	the rg_section_* helpers drivers use on [backend]
 *	conf_keys.c	the declarative key table and its per-type setters
 *	conf.c		pass 2 (raw sections to the model), loading, lookup,
 *			refcount
 *
 * It must not grow a second public API: what drivers and tools use is in
 * conf.h. Locking: none; a load touches only its own memory.
 */
#ifndef RG_CONF_INT_H
#define RG_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define VALUE_SHOW	72		/* bytes of a value quoted in errors */

#define MS_S	UINT64_C(1000)
#define MS_M	(60 * MS_S)
#define MS_H	(60 * MS_M)
#define MS_D	(24 * MS_H)

/* ---- the INI reader (conf_read.c) ---- */

enum rg_ini_kind {
	RG_INI_END,		/* no more lines */
	RG_INI_SECTION,		/* "[name]": name */
	RG_INI_KEY,		/* "name = value" or "name: value" */
	RG_INI_CONT,		/* indented line under a key: value */
	RG_INI_ERROR,		/* a line that is none of these: error */
};

/* One item; name and value point into the text and are not terminated. */
struct rg_ini_item {
	enum rg_ini_kind kind;
	int		 line;
	const char	*name;
	size_t		 namelen;
	const char	*value;
	size_t		 valuelen;
	bool		 trailing;	/* SECTION: text after ']' */
	const char	*error;		/* ERROR: why, static */
};

struct rg_ini {
	const char	*p;		/* next unread byte */
	int		 line;		/* number of the last line read */
	bool		 in_key;	/* indented lines continue a key */
};

void	rg_ini_init(struct rg_ini *, const char *text);
void	rg_ini_next(struct rg_ini *, struct rg_ini_item *);

/* ---- loading (pass 1 in conf_read.c, pass 2 in conf.c) ---- */

enum sec_kind {
	SK_NONE,		/* keys before any [section] */
	SK_BAD,			/* an invalid header: its keys are skipped */
	SK_MILTER,
	SK_POLICY,
	SK_DOMAIN,
	SK_BACKEND,
	SK_CACHE,
	SK_HARVEST,
	SK_PFPOLICY,		/* [postfix_policy] */
	SK_CONTROL,
	SK_METRICS,
};

struct raw_sec {
	enum sec_kind	 kind;
	char		*name;		/* NAME of [domain/backend NAME] */
	char		*label;		/* "milter", "backend corp", ... */
	int		 line;
	size_t		 n, cap;
	struct rg_kv	*kv;
};

struct lmsg {
	int	 line;
	int	 seq;
	char	*text;
};

struct loader {
	const char	*file;
	bool		 oom;
	size_t		 nsecs, capsecs;
	struct raw_sec	*secs;
	struct rg_error	*err;
	int		 nerr;
	size_t		 nmsgs, capmsgs;
	struct lmsg	*msgs;		/* errors, sorted by line at the end */
};

void	rg_conf_lerr(struct loader *, int line, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	rg_conf_lerr_flush(struct loader *);
int	rg_conf_grow(void *arrayp, size_t n, size_t *cap, size_t first,
	    size_t size);
int	rg_conf_read(struct loader *, const char *text);
void	rg_conf_read_free(struct loader *);

/* ---- value checks shared by the passes (conf_value.c) ---- */

void	rg_conf_show(char *dst, size_t len, const char *v);
bool	rg_conf_valid_name(const char *);
bool	rg_conf_norm_domain(char *, bool dot_ok);
int	rg_conf_check_socket(const char *, char **out, char *why, size_t wlen);
int	rg_conf_check_state(const char *, char *why, size_t wlen);

/* ---- the key table (conf_keys.c) ---- */

enum key_type {
	KT_SOCKET,
	KT_STRING,
	KT_LOGLEVEL,
	KT_DOMAINS,
	KT_NAMES,
	KT_LOCALPARTS,
	KT_DELIM,
	KT_FAILURE,
	KT_BOOL,
	KT_NETLIST,
	KT_DURATION,
	KT_UINT,
	KT_PREFIX,
	KT_HACTION,
	KT_STATE,
	KT_MODE,
	KT_OPS,			/* string checked by rg_conf_ops_check */
};

struct key {
	const char	*full;		/* "section.key" */
	enum sec_kind	 sec;		/* SK_POLICY keys also fit [domain] */
	enum key_type	 type;
	bool		 in_policy;	/* off is into struct rg_policy */
	size_t		 off;
	const char	*def;		/* default, as config text */
	uint64_t	 min, max;	/* duration (ms), uint, prefix */
	const char	*range;		/* said when out of min..max */
};

#define NKEYS	37			/* entries of rg_conf_keys[] */

extern const struct key	rg_conf_keys[];	/* NKEYS of them */

const struct key *rg_conf_key_find(enum sec_kind, const char *name);
const struct key *rg_conf_key_by_full(const char *full);
void	*rg_conf_field(const struct key *, struct rg_conf *,
	    struct rg_policy *);
void	rg_conf_field_free(const struct key *, void *);
int	rg_conf_field_copy(const struct key *, void *dst, const void *src);
int	rg_conf_apply_defaults(struct rg_conf *);
int	rg_conf_field_set(const struct key *, void *, const char *v,
	    char *why, size_t wlen);

#endif
