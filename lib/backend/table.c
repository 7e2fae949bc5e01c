/* SPDX-License-Identifier: MIT */
/*
 * The default recipient table: input line parsing and the replace / add /
 * remove / list operations behind rcptgate-table.
 *
 * No operation writes the live file: each builds a new database beside
 * it (add and remove from a copy of the old) and rename()s it over, so
 * the daemon (which reopens when the inode changes) sees the old table
 * or the new, never half, and may read without SQLite's file locks.
 * That makes add and remove O(table size): about a second for 1,000,000
 * rows. Nothing here is used by the daemon's hot path. No global
 * state, no locks in memory; writers are serialised across processes by
 * an flock() on "DB.lock" so an add is never lost under a concurrent
 * replace.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "table.h"

#define TABLE_SCHEMA \
	"CREATE TABLE IF NOT EXISTS recipients " \
	"(address TEXT PRIMARY KEY COLLATE NOCASE)"
#define TABLE_BUSY_MS	10000	/* wait this long for another writer */
#define TOKEN_MAX	1024	/* longer first fields are "too long" */

static void
errf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *buf, size_t len, const char *fmt, ...)
{
	va_list	ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* why = "'TOKEN': MSG", the token escaped and shortened. */
static void
bad_token(char *why, size_t whylen, const char *token, const char *msg)
{
	char	esc[96];

	rg_log_escape(esc, sizeof(esc), token);
	errf(why, whylen, "'%s': %s", esc, msg);
}

int
rg_table_normalise(const char *arg, char key[RG_PATH_MAX + 1], char *why,
    size_t whylen)
{
	struct rg_addr		a;
	enum rg_addr_status	st;
	char			buf[RG_PATH_MAX + 8];
	int			n;

	if (arg[0] == '@') {
		/* A catch-all: check the domain as the domain of an address. */
		if (arg[1] == '\0') {
			bad_token(why, whylen, arg,
			    "catch-all without a domain");
			return -1;
		}
		if (strpbrk(arg + 1, "@,:<>\"") != NULL) {
			bad_token(why, whylen, arg, "not a catch-all @domain");
			return -1;
		}
		n = snprintf(buf, sizeof(buf), "x@%s", arg + 1);
		if (n < 0 || (size_t)n >= sizeof(buf)) {
			bad_token(why, whylen, arg, "domain too long");
			return -1;
		}
		if ((st = rg_addr_parse(buf, &a)) != RG_ADDR_OK) {
			bad_token(why, whylen, arg, rg_addr_status_str(st));
			return -1;
		}
		key[0] = '@';
		memcpy(key + 1, a.domain, strlen(a.domain) + 1);
		return 0;
	}
	st = rg_addr_parse(arg, &a);
	/*
	 * A bare local part is no recipient. Ask the parse, not the text:
	 * rg_addr_parse takes "bob X=a@b" as "bob" with an ESMTP parameter.
	 */
	if (st == RG_ADDR_OK && a.domain[0] == '\0')
		st = RG_ADDR_SYNTAX;
	if (st != RG_ADDR_OK) {
		bad_token(why, whylen, arg, st == RG_ADDR_EMPTY ?
		    "empty address" : st == RG_ADDR_TOOLONG ?
		    "address too long" : "not an address");
		return -1;
	}
	memcpy(key, a.address, strlen(a.address) + 1);
	return 0;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
	    c == '\v' || c == '\f';
}

/* [p, end) into tok (TOKEN_MAX bytes); too long is an error, not a cut. */
static int
copy_field(char *tok, const char *p, const char *end, char *why,
    size_t whylen)
{
	size_t	n = (size_t)(end - p);

	if (n >= TOKEN_MAX) {
		errf(why, whylen, "first field too long");
		return -1;
	}
	memcpy(tok, p, n);
	tok[n] = '\0';
	return 0;
}

/*
 * The first field of line into tok (TOKEN_MAX bytes): a CSV quoted field
 * ("" is a quote), an RFC 5321 quoted local part ("a b"@d, kept whole),
 * or the text up to the first comma or white space. 0, or -1 with why.
 */
static int
first_field(const char *p, char *tok, char *why, size_t whylen)
{
	const char	*q;
	size_t		 n = 0;

	if (*p == '"') {
		/* "local part"@domain: an address, not a CSV quote. */
		for (q = p + 1; *q != '\0' && *q != '"'; q++)
			if (*q == '\\' && q[1] != '\0')
				q++;
		if (*q == '"' && q[1] == '@') {
			for (q += 2; *q != '\0' && *q != ',' && !is_space(*q);
			    q++)
				;
			return copy_field(tok, p, q, why, whylen);
		}
		/* A CSV quoted field. */
		for (q = p + 1;; q++) {
			if (*q == '\0') {
				errf(why, whylen, "unterminated quote");
				return -1;
			}
			if (*q == '"') {
				if (q[1] != '"')
					break;
				q++;
			}
			if (n + 1 >= TOKEN_MAX) {
				errf(why, whylen, "first field too long");
				return -1;
			}
			tok[n++] = *q;
		}
		tok[n] = '\0';
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '\0' && *q != ',' && *q != '\r' && *q != '\n') {
			errf(why, whylen, "text after the closing quote");
			return -1;
		}
		return 0;
	}
	for (q = p; *q != '\0' && *q != ',' && !is_space(*q); q++)
		;
	return copy_field(tok, p, q, why, whylen);
}

enum rg_table_line
rg_table_parse_line(const char *line, char key[RG_PATH_MAX + 1], char *why,
    size_t whylen)
{
	char	tok[TOKEN_MAX];

	errf(why, whylen, "%s", "");
	while (is_space(*line))
		line++;
	if (*line == '\0' || *line == '#')
		return RG_TABLE_SKIP;
	if (first_field(line, tok, why, whylen) == -1)
		return RG_TABLE_BAD;
	while (tok[0] != '\0' && is_space(tok[strlen(tok) - 1]))
		tok[strlen(tok) - 1] = '\0';
	if (tok[0] == '\0') {
		errf(why, whylen, "empty first field");
		return RG_TABLE_BAD;
	}
	if (rg_table_normalise(tok, key, why, whylen) == -1)
		return RG_TABLE_BAD;
	return RG_TABLE_KEY;
}

void
rg_table_keys_free(struct rg_table_keys *k)
{
	size_t	i;

	if (k == NULL)
		return;
	for (i = 0; i < k->n; i++)
		free(k->v[i]);
	free(k->v);
	k->v = NULL;
	k->n = k->cap = 0;
}

int
rg_table_keys_add(struct rg_table_keys *k, const char *key)
{
	char	**v;
	size_t	  cap;

	if (k->n == k->cap) {
		cap = k->cap ? k->cap * 2 : 64;
		if ((v = realloc(k->v, cap * sizeof(*v))) == NULL)
			return -1;
		k->v = v;
		k->cap = cap;
	}
	if ((k->v[k->n] = strdup(key)) == NULL)
		return -1;
	k->n++;
	return 0;
}

long
rg_table_read(FILE *in, const char *name, struct rg_table_keys *keys,
    rg_table_bad_fn *bad, void *arg)
{
	char		*line = NULL, *p, key[RG_PATH_MAX + 1], why[256];
	size_t		 cap = 0;
	ssize_t		 len;
	long		 lineno = 0, nbad = 0;
	int		 saved;

	while ((len = getline(&line, &cap, in)) != -1) {
		lineno++;
		p = line;
		if (lineno == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0)
			p += 3;		/* a UTF-8 BOM from a spreadsheet */
		if (strlen(line) != (size_t)len) {
			bad(arg, name, lineno, "NUL byte in line");
			nbad++;
			continue;
		}
		switch (rg_table_parse_line(p, key, why, sizeof(why))) {
		case RG_TABLE_SKIP:
			break;
		case RG_TABLE_BAD:
			bad(arg, name, lineno, why);
			nbad++;
			break;
		case RG_TABLE_KEY:
			if (nbad == 0 && rg_table_keys_add(keys, key) == -1) {
				free(line);
				errno = ENOMEM;
				return -1;
			}
			break;
		}
	}
	saved = errno;
	free(line);
	if (ferror(in)) {
		errno = saved;
		return -1;
	}
	return nbad;
}

/* sysexits code for an SQLite result. */
static int
sq_exit(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EX_TEMPFAIL;
	case SQLITE_CANTOPEN:
		return EX_CANTCREAT;
	case SQLITE_PERM:
	case SQLITE_READONLY:
	case SQLITE_AUTH:
		return EX_NOPERM;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return EX_DATAERR;
	case SQLITE_IOERR:
	case SQLITE_FULL:
		return EX_IOERR;
	default:
		return EX_SOFTWARE;
	}
}

/* Take the writers' lock; returns the fd (close to release) or -1. */
static int
table_lock(const char *db, char *errbuf, size_t errlen, int *ex)
{
	char	*path;
	int	 fd, saved;

	if (asprintf(&path, "%s.lock", db) == -1) {
		errf(errbuf, errlen, "out of memory");
		*ex = EX_OSERR;
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		saved = errno;
		errf(errbuf, errlen, "%s: %s", path, strerror(saved));
		*ex = saved == ENOENT ? EX_CANTCREAT : saved == EACCES ?
		    EX_NOPERM : EX_CANTCREAT;
		free(path);
		return -1;
	}
	while (flock(fd, LOCK_EX) == -1) {
		if (errno == EINTR)
			continue;
		saved = errno;
		errf(errbuf, errlen, "%s: flock: %s", path, strerror(saved));
		*ex = EX_IOERR;
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	return fd;
}

/* Insert (or delete) every key with stmt; *changes gets rows changed. */
static int
run_keys(sqlite3 *db, const char *sql, const struct rg_table_keys *keys,
    size_t *changes)
{
	sqlite3_stmt	*stmt;
	size_t		 i;
	int		 rc;

	*changes = 0;
	rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return rc;
	for (i = 0; i < keys->n; i++) {
		rc = sqlite3_bind_text(stmt, 1, keys->v[i], -1, SQLITE_STATIC);
		if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_DONE)
			rc = SQLITE_OK;
		sqlite3_reset(stmt);
		if (rc != SQLITE_OK)
			break;
		*changes += (size_t)sqlite3_changes(db);
		if (keys->progress != NULL && (i + 1) % 4096 == 0)
			keys->progress(keys->progress_arg, i + 1, keys->n);
	}
	sqlite3_finalize(stmt);
	return rc;
}

/* Run keys through sql in one transaction on an open database. */
static int
txn_keys(sqlite3 *db, const char *begin, const char *sql,
    const struct rg_table_keys *keys, size_t *changes)
{
	int	rc;

	if ((rc = sqlite3_exec(db, TABLE_SCHEMA, NULL, NULL, NULL)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_exec(db, begin, NULL, NULL, NULL)) != SQLITE_OK)
		return rc;
	if ((rc = run_keys(db, sql, keys, changes)) != SQLITE_OK ||
	    (rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) !=
	    SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return SQLITE_OK;
}

/* fsync the directory holding path, so a rename survives a crash. */
static int
fsync_dir(const char *dir)
{
	int	fd, rc, saved;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/*
 * Copy the database at db into the open, empty sq with SQLite's backup
 * API (a consistent snapshot even while another program writes db).
 */
static int
copy_into(sqlite3 *sq, const char *db, char *errbuf, size_t errlen)
{
	sqlite3		*src = NULL;
	sqlite3_backup	*bk;
	int		 rc;

	rc = sqlite3_open_v2(db, &src, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(src, TABLE_BUSY_MS);
		if ((bk = sqlite3_backup_init(sq, "main", src, "main")) ==
		    NULL)
			rc = sqlite3_errcode(sq);
		else {
			do {
				rc = sqlite3_backup_step(bk, -1);
				if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
					sqlite3_sleep(10);
			} while (rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
			(void)sqlite3_backup_finish(bk);
			if (rc == SQLITE_DONE)
				rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK)
		errf(errbuf, errlen, "%s: %s", db, sqlite3_errstr(rc));
	sqlite3_close(src);
	return rc;
}

/* One count(*) on sq; -1 if it cannot be run. */
static long long
count_rows(sqlite3 *sq, const char *sql)
{
	sqlite3_stmt	*stmt;
	long long	 n = -1;

	if (sqlite3_prepare_v2(sq, sql, -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		n = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return n;
}

/*
 * replace without -f: refuse a new table (built in sq) that is empty or
 * would drop more than half of db's rows. A failed export piped into
 * replace is the usual cause, and an empty or halved table turns real
 * users into 550s. Rows of db that cannot be read (no table, not a
 * database) count as none: the daemon cannot read them either, and
 * replace is how such a file is repaired. 0, or EX_DATAERR with why.
 */
static int
replace_guard(sqlite3 *sq, const char *db, bool exists, char *errbuf,
    size_t errlen)
{
	sqlite3_stmt	*stmt;
	long long	 now, old = -1, gone = 0;

	now = count_rows(sq, "SELECT count(*) FROM main.recipients");
	if (now == 0) {
		errf(errbuf, errlen, "refusing to replace %s with an empty "
		    "table: the input holds no address (a failed export?); "
		    "every recipient would be refused. Use -f to empty it "
		    "anyway", db);
		return EX_DATAERR;
	}
	if (!exists || sqlite3_prepare_v2(sq, "ATTACH DATABASE ?1 AS old",
	    -1, &stmt, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(stmt, 1, db, -1, SQLITE_STATIC);
	if (sqlite3_step(stmt) == SQLITE_DONE) {
		old = count_rows(sq, "SELECT count(*) FROM old.recipients");
		gone = count_rows(sq, "SELECT count(*) FROM old.recipients o "
		    "WHERE NOT EXISTS (SELECT 1 FROM main.recipients m "
		    "WHERE m.address = o.address)");
		sqlite3_exec(sq, "DETACH DATABASE old", NULL, NULL, NULL);
	}
	sqlite3_finalize(stmt);
	if (old > 0 && gone > 0 && gone * 2 > old) {
		errf(errbuf, errlen, "refusing to replace %s: it would remove "
		    "%lld of its %lld rows (more than half; the input has %lld)."
		    " Use -f if that is intended", db, gone, old, now);
		return EX_DATAERR;
	}
	return 0;
}

/* The temporary file a rewrite builds beside the table, then renames. */
struct newfile {
	char		*dcopy, *bcopy;	/* dirname(3) / basename(3) scratch */
	const char	*dir;		/* db's directory, fsynced last */
	char		*tmp;		/* NULL: nothing to unlink */
	int		 fd;
};

/* Create an empty temporary file beside db. 0 or a sysexits code. */
static int
newfile_open(struct newfile *nf, const char *db, char *errbuf,
    size_t errlen)
{
	int	saved;

	if ((nf->dcopy = strdup(db)) == NULL ||
	    (nf->bcopy = strdup(db)) == NULL) {
		errf(errbuf, errlen, "out of memory");
		return EX_OSERR;
	}
	nf->dir = dirname(nf->dcopy);
	if (asprintf(&nf->tmp, "%s/.%s.XXXXXX", nf->dir,
	    basename(nf->bcopy)) == -1) {
		nf->tmp = NULL;
		errf(errbuf, errlen, "out of memory");
		return EX_OSERR;
	}
	if ((nf->fd = mkostemp(nf->tmp, O_CLOEXEC)) == -1) {
		saved = errno;
		errf(errbuf, errlen, "%s: %s", nf->tmp, strerror(saved));
		free(nf->tmp);
		nf->tmp = NULL;	/* nothing to unlink */
		return saved == EACCES ? EX_NOPERM : EX_CANTCREAT;
	}
	return 0;
}

/*
 * The daemon runs as another user: give the new file the old file's
 * mode and owner (st, when exists), else 0644 less the umask.
 */
static int
newfile_access(const struct newfile *nf, const char *db, bool exists,
    const struct stat *st, char *errbuf, size_t errlen)
{
	mode_t	mask;
	int	saved;

	if (exists) {
		if (fchmod(nf->fd, st->st_mode & 07777) == -1 ||
		    (fchown(nf->fd, st->st_uid, st->st_gid) == -1 &&
		    (errno != EPERM || geteuid() == 0))) {
			saved = errno;
			errf(errbuf, errlen, "%s: keeping mode and owner of "
			    "%s: %s", nf->tmp, db, strerror(saved));
			return EX_NOPERM;
		}
		return 0;
	}
	mask = umask(022);
	umask(mask);
	if (fchmod(nf->fd, 0644 & ~mask) == -1) {
		saved = errno;
		errf(errbuf, errlen, "%s: chmod: %s", nf->tmp, strerror(saved));
		return EX_CANTCREAT;
	}
	return 0;
}

/*
 * Fill the temporary database tmp: db's rows first (copy, when db
 * exists), then keys through sql, marked RG_TABLE_APPLICATION_ID;
 * replace_guard (guard) before closing it. 0 or a sysexits code.
 */
static int
newfile_fill(const char *tmp, const char *db, bool copy, bool exists,
    bool guard, const char *sql, const struct rg_table_keys *keys,
    size_t *changes, char *errbuf, size_t errlen)
{
	sqlite3	*sq = NULL;
	int	 rc, ex = 0;

	rc = sqlite3_open_v2(tmp, &sq, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK && copy && exists &&
	    (rc = copy_into(sq, db, errbuf, errlen)) != SQLITE_OK) {
		ex = sq_exit(rc);
		goto out;
	}
	/* Durability comes from our fsync before the rename; readers
	 * never see this file before it is complete. */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(sq, "PRAGMA journal_mode = OFF; "
		    "PRAGMA synchronous = OFF; "
		    "PRAGMA application_id = " RG_TABLE_APPLICATION_ID_STR,
		    NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = txn_keys(sq, "BEGIN", sql, keys, changes);
	if (rc != SQLITE_OK) {
		errf(errbuf, errlen, "%s: %s", copy ? db : tmp, sq != NULL ?
		    sqlite3_errmsg(sq) : sqlite3_errstr(rc));
		ex = sq_exit(rc);
		goto out;
	}
	if (guard && (ex = replace_guard(sq, db, exists, errbuf, errlen)) != 0)
		goto out;
	rc = sqlite3_close(sq);
	sq = NULL;
	if (rc != SQLITE_OK) {
		errf(errbuf, errlen, "%s: close: %s", tmp, sqlite3_errstr(rc));
		ex = sq_exit(rc);
	}
out:
	if (sq != NULL)
		sqlite3_close(sq);
	return ex;
}

/* fsync the new file, rename it over db, fsync the directory. */
static int
newfile_commit(struct newfile *nf, const char *db, char *errbuf,
    size_t errlen)
{
	int	saved;

	if (fsync(nf->fd) == -1) {
		saved = errno;
		errf(errbuf, errlen, "%s: fsync: %s", nf->tmp, strerror(saved));
		return EX_IOERR;
	}
	if (rename(nf->tmp, db) == -1) {
		saved = errno;
		errf(errbuf, errlen, "rename %s to %s: %s", nf->tmp, db,
		    strerror(saved));
		return EX_CANTCREAT;
	}
	free(nf->tmp);
	nf->tmp = NULL;		/* renamed: nothing to unlink */
	if (fsync_dir(nf->dir) == -1) {
		saved = errno;
		errf(errbuf, errlen, "%s: fsync: %s", nf->dir,
		    strerror(saved));
		return EX_IOERR;
	}
	return 0;
}

/* Close, and unlink a temporary file that was not renamed. */
static void
newfile_close(struct newfile *nf)
{
	if (nf->fd != -1)
		close(nf->fd);
	if (nf->tmp != NULL) {
		unlink(nf->tmp);
		free(nf->tmp);
	}
	free(nf->dcopy);
	free(nf->bcopy);
}

/*
 * Every change is a new file: build the new database in a temporary
 * file beside db (mode and owner of the old file, or 0644 less the
 * umask), from nothing (replace) or from a copy of db (add, remove),
 * run keys through sql in it, mark it RG_TABLE_APPLICATION_ID, fsync it,
 * rename() it over db and fsync the directory. A reader sees the old
 * table or the new, never half, and the live file is never written: the
 * daemon may read a marked file without locks (backend_sqlite.c).
 * copy: start from db's rows; a missing db is then an error unless
 * create. guard: run replace_guard before the rename.
 */
static int
rewrite(const char *db, bool copy, bool create, bool guard, const char *sql,
    const struct rg_table_keys *keys, size_t *changes, char *errbuf,
    size_t errlen)
{
	struct stat	 st;
	struct newfile	 nf = { .fd = -1 };
	bool		 exists;
	int		 lockfd, ex = 0, saved;

	*changes = 0;
	if ((lockfd = table_lock(db, errbuf, errlen, &ex)) == -1)
		return ex;
	exists = stat(db, &st) == 0;
	if (!exists && (errno != ENOENT || (copy && !create))) {
		saved = errno;
		errf(errbuf, errlen, "%s: %s", db, strerror(saved));
		ex = saved == ENOENT ? EX_NOINPUT : EX_IOERR;
	} else if ((ex = newfile_open(&nf, db, errbuf, errlen)) == 0 &&
	    (ex = newfile_access(&nf, db, exists, &st, errbuf, errlen)) == 0 &&
	    (ex = newfile_fill(nf.tmp, db, copy, exists, guard, sql, keys,
	    changes, errbuf, errlen)) == 0)
		ex = newfile_commit(&nf, db, errbuf, errlen);
	newfile_close(&nf);
	close(lockfd);
	return ex;
}

/* A key already in the table is no error: keys may repeat in the input. */
#define SQL_INSERT	"INSERT OR IGNORE INTO recipients (address) VALUES (?1)"

int
rg_table_replace(const char *db, const struct rg_table_keys *keys, int flags,
    char *errbuf, size_t errlen)
{
	size_t	changes;

	return rewrite(db, false, true, !(flags & RG_TABLE_FORCE), SQL_INSERT,
	    keys, &changes, errbuf, errlen);
}

int
rg_table_add(const char *db, const struct rg_table_keys *keys, char *errbuf,
    size_t errlen)
{
	size_t	changes;

	return rewrite(db, true, true, false, SQL_INSERT, keys, &changes,
	    errbuf, errlen);
}

int
rg_table_remove(const char *db, const struct rg_table_keys *keys,
    size_t *removed, char *errbuf, size_t errlen)
{
	return rewrite(db, true, false, false, "DELETE FROM recipients WHERE "
	    "address = ?1", keys, removed, errbuf, errlen);
}

int
rg_table_list(const char *db, FILE *out, char *errbuf, size_t errlen)
{
	sqlite3		*sq = NULL;
	sqlite3_stmt	*stmt = NULL;
	struct stat	 st;
	int		 rc, ex = 0, saved;

	if (stat(db, &st) == -1) {
		saved = errno;
		errf(errbuf, errlen, "%s: %s", db, strerror(saved));
		return saved == ENOENT ? EX_NOINPUT : EX_IOERR;
	}
	rc = sqlite3_open_v2(db, &sq, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(sq, TABLE_BUSY_MS);
		rc = sqlite3_prepare_v2(sq, "SELECT address FROM recipients "
		    "ORDER BY address COLLATE BINARY", -1, &stmt, NULL);
	}
	while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (fprintf(out, "%s\n", sqlite3_column_text(stmt, 0)) < 0) {
			saved = errno;
			errf(errbuf, errlen, "write: %s", strerror(saved));
			ex = EX_IOERR;
			goto out;
		}
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE) {
		errf(errbuf, errlen, "%s: %s", db, sq != NULL ?
		    sqlite3_errmsg(sq) : sqlite3_errstr(rc));
		ex = sq_exit(rc);
		goto out;
	}
	if (fflush(out) == EOF || ferror(out)) {
		saved = errno;
		errf(errbuf, errlen, "write: %s", strerror(saved));
		ex = EX_IOERR;
	}
out:
	sqlite3_finalize(stmt);
	sqlite3_close(sq);
	return ex;
}
