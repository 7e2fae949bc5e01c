/* SPDX-License-Identifier: MIT */
/*
 * The default SQLite recipient table, as rcptgate-table keeps it:
 *
 *	CREATE TABLE recipients (address TEXT PRIMARY KEY COLLATE NOCASE);
 *
 * Line parsing (plain list, CSV, Postfix map) and the whole-table
 * operations. Writers only: the daemon reads through backend_sqlite.c.
 * No shared state, no locks of its own; concurrent writers are
 * serialised by an flock() on "DB.lock" beside the database.
 */
#ifndef RG_TABLE_H
#define RG_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "addr.h"

#define RG_TABLE_DEFAULT_DB	"/var/lib/rcptgate/recipients.db"

/*
 * The SQLite application_id (header bytes 68-71) of every file
 * rcptgate-table writes ("rgtb"). It promises that the file is never
 * written in place, only replaced by rename(), so the SQLite backend may
 * read it with immutable=1 (no file locks, no hot-journal check).
 */
#define RG_TABLE_APPLICATION_ID		0x72677462
#define RG_TABLE_APPLICATION_ID_STR	"1919382626"

enum rg_table_line {
	RG_TABLE_SKIP = 0,	/* blank or '#' comment */
	RG_TABLE_KEY,		/* key: a normalised address or "@domain" */
	RG_TABLE_BAD,		/* malformed; why says why */
};

/*
 * Parse one input line (without or with its "\n" / "\r\n"): an address,
 * a CSV line (first column, possibly double-quoted with "" for a quote)
 * or a Postfix map line "key value" (first whitespace-separated token).
 * The key must be an address rg_addr_parse accepts or a catch-all
 * "@domain"; key (RG_PATH_MAX + 1 bytes) gets its normalised form. On
 * RG_TABLE_BAD why (whylen bytes) says why, quoting the key with control
 * characters escaped. Pure; never blocks.
 */
enum rg_table_line rg_table_parse_line(const char *line,
	    char key[RG_PATH_MAX + 1], char *why, size_t whylen);

/* Normalise one address or "@domain" given on a command line: 0, or -1
 * with why set as above. */
int	rg_table_normalise(const char *arg, char key[RG_PATH_MAX + 1],
	    char *why, size_t whylen);

/* Rows written so far, of total; see struct rg_table_keys. */
typedef void rg_table_progress_fn(void *arg, size_t done, size_t total);

/*
 * A list of keys, owned. progress (optional, with progress_arg) is
 * called every 4096 rows while replace / add / remove write the keys:
 * it travels with the keys so the write paths need no extra argument.
 */
struct rg_table_keys {
	size_t			  n;
	size_t			  cap;
	char			**v;
	rg_table_progress_fn	 *progress;
	void			 *progress_arg;
};

void	rg_table_keys_free(struct rg_table_keys *);	/* NULL allowed */

/* Append a copy of key: 0, or -1 (ENOMEM) with k unchanged. */
int	rg_table_keys_add(struct rg_table_keys *k, const char *key);

/* Called once per malformed line. */
typedef void rg_table_bad_fn(void *arg, const char *name, long line,
	    const char *why);

/*
 * Read every line of in (name is used in messages) into keys, calling
 * bad for EVERY malformed line. Returns the number of malformed lines
 * (0: keys is complete), or -1 on a read or memory error (errno set).
 * The caller frees keys with rg_table_keys_free, even on failure.
 */
long	rg_table_read(FILE *in, const char *name, struct rg_table_keys *keys,
	    rg_table_bad_fn *bad, void *arg);

/*
 * The operations. Each returns 0 or a <sysexits.h> code with a message
 * in errbuf (errlen bytes). All block on disk I/O and on another
 * writer's lock.
 *
 * replace, add and remove never write db itself: each writes the new
 * table to a temporary file in the same directory (mode and owner of the
 * old file, or 0644 less the umask), marks it RG_TABLE_APPLICATION_ID,
 * fsyncs it, rename()s it over db and fsyncs the directory: a reader
 * sees the old table or the new, never half.
 *
 * replace: the new table has exactly keys. Unless flags has
 * RG_TABLE_FORCE it refuses (EX_DATAERR, db untouched) a new table that
 * is empty, or one that would remove more than half of db's rows: a
 * failed export piped into replace must not turn every user into a 550.
 */
#define RG_TABLE_FORCE	0x1
int	rg_table_replace(const char *db, const struct rg_table_keys *keys,
	    int flags, char *errbuf, size_t errlen);

/* add: db's rows plus keys; creates db and table if missing. */
int	rg_table_add(const char *db, const struct rg_table_keys *keys,
	    char *errbuf, size_t errlen);

/* remove: db's rows less keys; *removed gets the row count. */
int	rg_table_remove(const char *db, const struct rg_table_keys *keys,
	    size_t *removed, char *errbuf, size_t errlen);

/* list: write every key to out, one a line, sorted. */
int	rg_table_list(const char *db, FILE *out, char *errbuf, size_t errlen);

#endif
