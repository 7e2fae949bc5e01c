/* SPDX-License-Identifier: MIT */
/*
 * The harvest limiter's client keys and its SQLite state file.
 *
 * The state file holds one row per client prefix (distinct count, the
 * hashes of those addresses, window end, block end, all wall-clock ms so
 * they survive a reboot), the key of those hashes, and a journal of
 * blocks lifted by an operator, which running daemons poll. A file
 * written before distinct counting (no "seen" column, no key) is
 * upgraded in place when opened: its rows keep their counts and blocks. It runs
 * in WAL mode and every batch is one transaction, so a crash leaves the
 * previous batch or the new one, never half.
 *
 * Must not: be called on the RCPT path (it does disk I/O) except the
 * pure rg_hv_key_* helpers.
 * Locking: none inside; one struct rg_hv_store is used by one thread at
 * a time. SQLite's own file locks (with a busy timeout) order a daemon
 * and an operator's command working on the same file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harvest_store.h"
#include "netprefix.h"
#include "rg_time.h"

#define STORE_BUSY_MS	2000
#define LIFT_KEEP_MS	(3600 * 1000ULL)	/* journal of lifts kept 1h */

struct rg_hv_store {
	sqlite3		*db;
	sqlite3_stmt	*put;		/* INSERT OR REPLACE one row */
	sqlite3_stmt	*del;		/* DELETE one row */
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS clients ("
	" prefix TEXT PRIMARY KEY,"
	" count INTEGER NOT NULL,"
	" window_end INTEGER NOT NULL,"
	" blocked_until INTEGER NOT NULL,"
	" updated INTEGER NOT NULL,"
	" seen BLOB);"
	"CREATE TABLE IF NOT EXISTS meta ("
	" name TEXT PRIMARY KEY,"
	" value BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS lifted ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" prefix TEXT NOT NULL,"
	" at INTEGER NOT NULL);";

/* ---- keys ---- */

int
rg_hv_key_from_sockaddr(const struct sockaddr *sa, int v4prefix,
    int v6prefix, struct rg_hv_key *key, char *client, size_t clientlen)
{
	const uint8_t	*src;
	int		 family, prefix;
	size_t		 len;

	if (sa == NULL)
		return -1;
	memset(key, 0, sizeof(*key));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		src = (const uint8_t *)&sin->sin_addr;
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			src = sin6->sin6_addr.s6_addr + 12;
			family = AF_INET;
		} else {
			src = sin6->sin6_addr.s6_addr;
			family = AF_INET6;
		}
	} else
		return -1;
	key->family = (uint8_t)family;
	len = family == AF_INET ? 4 : 16;
	memcpy(key->addr, src, len);
	if (client != NULL &&
	    inet_ntop(family, key->addr, client, clientlen) == NULL)
		return -1;
	prefix = family == AF_INET ? v4prefix : v6prefix;
	key->prefix = (uint8_t)(prefix < 0 ? 0 :
	    prefix > (int)len * 8 ? (int)len * 8 : prefix);
	rg_prefix_mask(key->addr, len, key->prefix);
	return 0;
}

void
rg_hv_key_mask(struct rg_hv_key *key, int v4prefix, int v6prefix)
{
	int	prefix = key->family == AF_INET ? v4prefix : v6prefix;

	if (prefix < key->prefix)
		key->prefix = (uint8_t)(prefix < 0 ? 0 : prefix);
	rg_prefix_mask(key->addr, key->family == AF_INET ? 4 : 16,
	    key->prefix);
}

int
rg_hv_key_format(const struct rg_hv_key *key, char *buf, size_t len)
{
	char	a[INET6_ADDRSTRLEN];
	int	n;

	if (inet_ntop(key->family, key->addr, a, sizeof(a)) == NULL)
		return -1;
	n = snprintf(buf, len, "%s/%u", a, (unsigned)key->prefix);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
rg_hv_key_parse(const char *s, int v4prefix, int v6prefix,
    struct rg_hv_key *key)
{
	char		 a[INET6_ADDRSTRLEN];
	const char	*slash = strchr(s, '/');
	size_t		 alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	long		 plen = -1;
	struct in6_addr	 a6;

	if (alen == 0 || alen >= sizeof(a))
		return -1;
	memcpy(a, s, alen);
	a[alen] = '\0';
	if (slash != NULL) {
		char	*end;

		if (slash[1] < '0' || slash[1] > '9')
			return -1;
		errno = 0;
		plen = strtol(slash + 1, &end, 10);
		if (errno != 0 || *end != '\0' || plen > 128)
			return -1;
	}
	memset(key, 0, sizeof(*key));
	if (inet_pton(AF_INET, a, key->addr) == 1) {
		key->family = AF_INET;
		if (plen > 32)
			return -1;
		key->prefix = (uint8_t)(plen >= 0 ? plen : v4prefix);
		rg_prefix_mask(key->addr, 4, key->prefix);
		return 0;
	}
	if (inet_pton(AF_INET6, a, &a6) != 1)
		return -1;
	if (IN6_IS_ADDR_V4MAPPED(&a6) && plen < 0) {
		key->family = AF_INET;
		memcpy(key->addr, a6.s6_addr + 12, 4);
		key->prefix = (uint8_t)v4prefix;
		rg_prefix_mask(key->addr, 4, key->prefix);
		return 0;
	}
	key->family = AF_INET6;
	memcpy(key->addr, a6.s6_addr, 16);
	key->prefix = (uint8_t)(plen >= 0 ? plen : v6prefix);
	rg_prefix_mask(key->addr, 16, key->prefix);
	return 0;
}

void
rg_hv_wall_format(uint64_t wall_ms, char *buf, size_t len)
{
	time_t		t = (time_t)(wall_ms / 1000);
	struct tm	tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		if (len > 0)
			snprintf(buf, len, "%" PRIu64, wall_ms / 1000);
	}
}

/* ---- the state file ---- */

static int
db_fail(sqlite3 *db, struct rg_error *err, const char *what)
{
	rg_error_set(err, "harvest state %s: %s", what,
	    db != NULL ? sqlite3_errmsg(db) : "out of memory");
	return -1;
}

static sqlite3 *
db_open(const char *path, int flags, struct rg_error *err)
{
	sqlite3	*db = NULL;

	if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		rg_error_set(err, "harvest state %s: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_MS);
	return db;
}

/*
 * A file from before distinct counting has no "seen" column: add it (an
 * old row reads as NULL, i.e. a count without hashes). Its CREATE
 * statement above left the old table as it was. 0 or -1.
 */
static int
upgrade(sqlite3 *db)
{
	sqlite3_stmt	*q;

	if (sqlite3_prepare_v2(db, "SELECT seen FROM clients LIMIT 0", -1,
	    &q, NULL) == SQLITE_OK) {
		sqlite3_finalize(q);
		return 0;
	}
	return sqlite3_exec(db, "ALTER TABLE clients ADD COLUMN seen BLOB",
	    NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Hashes as big-endian 8-byte words: the file moves between machines. */
static void
seen_encode(unsigned char *buf, const uint64_t *seen, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int b = 0; b < 8; b++)
			buf[i * 8 + (size_t)b] =
			    (unsigned char)(seen[i] >> (56 - 8 * b));
}

static size_t
seen_decode(uint64_t *seen, size_t max, const unsigned char *buf,
    size_t len)
{
	size_t	n = len / 8 < max ? len / 8 : max;

	for (size_t i = 0; i < n; i++) {
		seen[i] = 0;
		for (int b = 0; b < 8; b++)
			seen[i] = seen[i] << 8 | buf[i * 8 + (size_t)b];
	}
	return n;
}

struct rg_hv_store *
rg_hv_store_open(const char *path, struct rg_error *err)
{
	struct rg_hv_store	*st;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		rg_error_set(err, "harvest state: out of memory");
		return NULL;
	}
	st->db = db_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err);
	if (st->db == NULL)
		goto fail;
	if (sqlite3_exec(st->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    upgrade(st->db) == -1) {
		rg_error_set(err, "harvest state %s: %s", path,
		    sqlite3_errmsg(st->db));
		goto fail;
	}
	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO clients"
	    " (prefix, count, window_end, blocked_until, updated, seen)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", -1, &st->put, NULL) !=
	    SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, "DELETE FROM clients WHERE prefix = ?1",
	    -1, &st->del, NULL) != SQLITE_OK) {
		rg_error_set(err, "harvest state %s: %s", path,
		    sqlite3_errmsg(st->db));
		goto fail;
	}
	return st;
fail:
	rg_hv_store_close(st);
	return NULL;
}

void
rg_hv_store_close(struct rg_hv_store *st)
{
	if (st == NULL)
		return;
	sqlite3_finalize(st->put);
	sqlite3_finalize(st->del);
	sqlite3_close(st->db);
	free(st);
}

int
rg_hv_store_hashkey(struct rg_hv_store *st, uint64_t key[2],
    struct rg_error *err)
{
	sqlite3_stmt	*q;
	unsigned char	 buf[16];
	uint64_t	 k[2];
	int		 rc;

	seen_encode(buf, key, 2);
	if (sqlite3_prepare_v2(st->db, "INSERT OR IGNORE INTO meta"
	    " (name, value) VALUES ('hashkey', ?1)", -1, &q, NULL) !=
	    SQLITE_OK)
		return db_fail(st->db, err, "key");
	sqlite3_bind_blob(q, 1, buf, sizeof(buf), SQLITE_TRANSIENT);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE || sqlite3_prepare_v2(st->db, "SELECT value"
	    " FROM meta WHERE name = 'hashkey'", -1, &q, NULL) != SQLITE_OK)
		return db_fail(st->db, err, "key");
	if ((rc = sqlite3_step(q)) == SQLITE_ROW &&
	    sqlite3_column_bytes(q, 0) == (int)sizeof(buf) &&
	    seen_decode(k, 2, sqlite3_column_blob(q, 0), sizeof(buf)) == 2) {
		key[0] = k[0];
		key[1] = k[1];
	}
	sqlite3_finalize(q);
	return rc == SQLITE_ROW ? 0 : db_fail(st->db, err, "key");
}

static int64_t
i64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static uint64_t
u64(int64_t v)
{
	return v < 0 ? 0 : (uint64_t)v;
}

int
rg_hv_store_load(struct rg_hv_store *st, uint64_t now, size_t max,
    void (*fn)(const struct rg_hv_row *, void *), void *arg,
    struct rg_error *err)
{
	sqlite3_stmt	*q;
	int		 rc, n = 0;

	if (sqlite3_prepare_v2(st->db, "SELECT prefix, count, window_end,"
	    " blocked_until, seen FROM clients"
	    " WHERE blocked_until > ?1 OR (window_end > ?1 AND count > 0)"
	    " ORDER BY blocked_until > ?1 DESC, updated DESC LIMIT ?2",
	    -1, &q, NULL) != SQLITE_OK)
		return db_fail(st->db, err, "load");
	sqlite3_bind_int64(q, 1, i64(now));
	sqlite3_bind_int64(q, 2, i64(max));
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct rg_hv_row	 row;
		const char		*p;
		uint64_t		 seen[RG_HV_SEEN_MAX];
		const void		*blob;

		p = (const char *)sqlite3_column_text(q, 0);
		if (p == NULL || rg_hv_key_parse(p, 32, 128, &row.key) == -1)
			continue;	/* a hand-edited row: skip it */
		row.count = u64(sqlite3_column_int64(q, 1));
		row.window_end = u64(sqlite3_column_int64(q, 2));
		row.blocked_until = u64(sqlite3_column_int64(q, 3));
		/* NULL in a row written before distinct counting */
		blob = sqlite3_column_blob(q, 4);
		row.nseen = blob == NULL ? 0 : seen_decode(seen, RG_HV_SEEN_MAX,
		    blob, (size_t)sqlite3_column_bytes(q, 4));
		row.seen = seen;
		if (row.nseen > row.count)
			row.count = row.nseen;
		if (row.blocked_until <= now)
			row.blocked_until = 0;
		if (row.window_end <= now)
			row.count = 0, row.window_end = 0, row.nseen = 0;
		fn(&row, arg);
		n++;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return db_fail(st->db, err, "load");
	return n;
}

int
rg_hv_store_write(struct rg_hv_store *st, const struct rg_hv_row *rows,
    size_t n, uint64_t now, struct rg_error *err)
{
	char		p[RG_HV_KEYSTR];
	unsigned char	blob[RG_HV_SEEN_MAX * 8];

	if (n == 0)
		return 0;
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return db_fail(st->db, err, "begin");
	for (size_t i = 0; i < n; i++) {
		const struct rg_hv_row	*r = &rows[i];
		sqlite3_stmt		*s;

		if (rg_hv_key_format(&r->key, p, sizeof(p)) == -1)
			continue;
		if (r->blocked_until == 0 && r->count == 0) {
			s = st->del;
			sqlite3_bind_text(s, 1, p, -1, SQLITE_TRANSIENT);
		} else {
			s = st->put;
			sqlite3_bind_text(s, 1, p, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(s, 2, i64(r->count));
			sqlite3_bind_int64(s, 3, i64(r->window_end));
			sqlite3_bind_int64(s, 4, i64(r->blocked_until));
			sqlite3_bind_int64(s, 5, i64(now));
			if (r->nseen > 0 && r->nseen <= RG_HV_SEEN_MAX) {
				seen_encode(blob, r->seen, r->nseen);
				sqlite3_bind_blob(s, 6, blob,
				    (int)(r->nseen * 8), SQLITE_TRANSIENT);
			} else
				sqlite3_bind_null(s, 6);
		}
		if (sqlite3_step(s) != SQLITE_DONE) {
			db_fail(st->db, err, "write");
			sqlite3_reset(s);
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_fail(st->db, err, "commit");
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int
rg_hv_store_purge(struct rg_hv_store *st, uint64_t now, struct rg_error *err)
{
	sqlite3_stmt	*q;
	int		 rc;

	if (sqlite3_prepare_v2(st->db, "DELETE FROM clients WHERE"
	    " blocked_until <= ?1 AND (window_end <= ?1 OR count = 0);"
	    , -1, &q, NULL) != SQLITE_OK)
		return db_fail(st->db, err, "purge");
	sqlite3_bind_int64(q, 1, i64(now));
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return db_fail(st->db, err, "purge");
	if (sqlite3_prepare_v2(st->db, "DELETE FROM lifted WHERE at < ?1",
	    -1, &q, NULL) != SQLITE_OK)
		return db_fail(st->db, err, "purge");
	sqlite3_bind_int64(q, 1, i64(now > LIFT_KEEP_MS ? now - LIFT_KEEP_MS :
	    0));
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return db_fail(st->db, err, "purge");
	return 0;
}

/*
 * *since is the journal id last seen; UINT64_MAX means "start now": it is
 * set to the newest id without calling fn, since the rows of lifts made
 * before the daemon started are already gone from the file it loaded.
 */
int
rg_hv_store_lifted(struct rg_hv_store *st, uint64_t *since,
    void (*fn)(const struct rg_hv_key *, void *), void *arg,
    struct rg_error *err)
{
	sqlite3_stmt	*q;
	int		 rc;

	if (*since == UINT64_MAX) {
		if (sqlite3_prepare_v2(st->db, "SELECT coalesce(max(id), 0)"
		    " FROM lifted", -1, &q, NULL) != SQLITE_OK)
			return db_fail(st->db, err, "lifted");
		if ((rc = sqlite3_step(q)) == SQLITE_ROW)
			*since = u64(sqlite3_column_int64(q, 0));
		sqlite3_finalize(q);
		if (rc != SQLITE_ROW)
			return db_fail(st->db, err, "lifted");
		return 0;
	}
	if (sqlite3_prepare_v2(st->db, "SELECT id, prefix FROM lifted"
	    " WHERE id > ?1 ORDER BY id", -1, &q, NULL) != SQLITE_OK)
		return db_fail(st->db, err, "lifted");
	sqlite3_bind_int64(q, 1, i64(*since));
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char		*p;
		struct rg_hv_key	 key;

		*since = u64(sqlite3_column_int64(q, 0));
		p = (const char *)sqlite3_column_text(q, 1);
		if (p != NULL && rg_hv_key_parse(p, 32, 128, &key) == 0)
			fn(&key, arg);
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return db_fail(st->db, err, "lifted");
	return 0;
}

int
rg_hv_store_list(const char *path, FILE *out, struct rg_error *err)
{
	sqlite3		*db;
	sqlite3_stmt	*q = NULL;
	uint64_t	 now = rg_wall_ms();
	int		 rc, ret = -1;

	if ((db = db_open(path, SQLITE_OPEN_READONLY, err)) == NULL)
		return -1;
	if (sqlite3_prepare_v2(db, "SELECT prefix, count, window_end,"
	    " blocked_until FROM clients WHERE blocked_until > ?1"
	    " OR (window_end > ?1 AND count > 0)"
	    " ORDER BY blocked_until > ?1 DESC, prefix", -1, &q, NULL) !=
	    SQLITE_OK) {
		db_fail(db, err, "list");
		goto out;
	}
	sqlite3_bind_int64(q, 1, i64(now));
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char	*p = (const char *)sqlite3_column_text(q, 0);
		uint64_t	 count = u64(sqlite3_column_int64(q, 1));
		uint64_t	 wend = u64(sqlite3_column_int64(q, 2));
		uint64_t	 until = u64(sqlite3_column_int64(q, 3));
		char		 t[32];

		if (until > now) {
			rg_hv_wall_format(until, t, sizeof(t));
			fprintf(out, "%s\tblocked\tcount=%" PRIu64
			    "\tuntil=%s\n", p != NULL ? p : "?", count, t);
		} else {
			rg_hv_wall_format(wend, t, sizeof(t));
			fprintf(out, "%s\tcounting\tcount=%" PRIu64
			    "\twindow_end=%s\n", p != NULL ? p : "?", count, t);
		}
	}
	if (rc != SQLITE_DONE) {
		db_fail(db, err, "list");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(q);
	sqlite3_close(db);
	return ret;
}

int
rg_hv_store_unblock(const char *path, const struct rg_hv_key *key,
    struct rg_error *err)
{
	struct rg_hv_store	*st;
	sqlite3_stmt		*q = NULL;
	char			 p[RG_HV_KEYSTR];
	int			 ret = -1, changed;

	if (rg_hv_key_format(key, p, sizeof(p)) == -1) {
		rg_error_set(err, "harvest unblock: bad prefix");
		return -1;
	}
	if ((st = rg_hv_store_open(path, err)) == NULL)
		return -1;
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		db_fail(st->db, err, "begin");
		goto out;
	}
	sqlite3_bind_text(st->del, 1, p, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st->del) != SQLITE_DONE) {
		db_fail(st->db, err, "unblock");
		goto rollback;
	}
	changed = sqlite3_changes(st->db);
	/*
	 * Recorded even when no row matched: a daemon may hold a block it
	 * has not flushed yet.
	 */
	if (sqlite3_prepare_v2(st->db, "INSERT INTO lifted (prefix, at)"
	    " VALUES (?1, ?2)", -1, &q, NULL) != SQLITE_OK) {
		db_fail(st->db, err, "unblock");
		goto rollback;
	}
	sqlite3_bind_text(q, 1, p, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, i64(rg_wall_ms()));
	if (sqlite3_step(q) != SQLITE_DONE) {
		db_fail(st->db, err, "unblock");
		goto rollback;
	}
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		db_fail(st->db, err, "commit");
		goto rollback;
	}
	ret = changed > 0 ? 1 : 0;
	goto out;
rollback:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(q);
	sqlite3_reset(st->del);
	rg_hv_store_close(st);
	return ret;
}
