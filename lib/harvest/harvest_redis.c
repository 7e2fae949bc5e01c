/* SPDX-License-Identifier: MIT */
/*
 * The harvest limiter's shared store in Redis, so that several MX hosts
 * count one harvester once: the distinct unknown addresses of a prefix
 * are a small set of keyed hashes (SADD, capped, PEXPIRE at its first
 * member: a fixed window from the first unknown), blocks are SET PX.
 *
 * Keys: rcptgate:harvest:seen:PREFIX (a set of at most max_unknown + 1
 * hex hashes), rcptgate:harvest:block:PREFIX ("count=N") and
 * rcptgate:harvest:hashkey (the hash key every host uses, made by the
 * first); PREFIX as "203.0.113.0/24". rcptgate:harvest:count:PREFIX, the
 * plain counter of releases before distinct counting, is read (added to
 * the set's size until it expires) and deleted by unblock, never
 * written: an upgrade, or hosts of both releases sharing one Redis,
 * keep every block and count.
 *
 * Must not: hold a lock across a command, wait longer than the connect
 * and command timeouts (REDIS_TIMEOUT_MS), or retry an unreachable
 * server on every RCPT (after a failure it is left alone for
 * REDIS_RETRY_MS and the caller counts locally).
 * Locking: the connections are a pool (pool.c, at most REDIS_POOL_MAX;
 * its lock guards the idle ones only); a thread takes a connection, runs
 * its command unlocked, and returns it. key_mu guards the shared hash
 * key. The outage state is atomics.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "harvest_store.h"
#include "hash.h"
#include "log.h"
#include "pool.h"
#include "rg_time.h"

#define REDIS_TIMEOUT_MS	300
#define REDIS_RETRY_MS		5000
#define REDIS_POOL_MAX		16
#define KEY_COUNT		"rcptgate:harvest:count:"	/* old form */
#define KEY_SEEN		"rcptgate:harvest:seen:"
#define KEY_BLOCK		"rcptgate:harvest:block:"
#define KEY_HASHKEY		"rcptgate:harvest:hashkey"

/*
 * One round trip, atomic: add the member while the set has room, open
 * the window at the first member, return the distinct count plus an old
 * release's counter. KEYS: seen, count; ARGV: member, cap, window ms.
 */
static const char note_script[] =
	"local n = redis.call('SCARD', KEYS[1]) "
	"if n < tonumber(ARGV[2]) then "
	"n = n + redis.call('SADD', KEYS[1], ARGV[1]) end "
	"if redis.call('PTTL', KEYS[1]) == -1 then "
	"redis.call('PEXPIRE', KEYS[1], ARGV[3]) end "
	"local old = tonumber(redis.call('GET', KEYS[2]) or '0') or 0 "
	"return n + old";

struct rg_hv_redis {
	char		 host[256];
	int		 port;
	int		 db;
	struct rg_pool	*pool;		/* of redisContext; pool.c locks */
	_Atomic uint64_t down_until;	/* rg_now_ms; 0 = up */
	atomic_bool	 down_logged;	/* this outage was logged */
	/* guards key; have_key is set (release) once key is valid */
	pthread_mutex_t	 key_mu;
	uint64_t	 key[2];
	atomic_bool	 have_key;
	atomic_uint_fast64_t nonce;	/* members for addresses not known */
};

static const struct rg_pool_hooks pool_hooks;

static int
parse_url(const char *url, char *host, size_t hostlen, int *port, int *db)
{
	const char	*p, *h, *hend;
	char		*end;
	long		 v;

	if (strncmp(url, "redis://", 8) != 0)
		return -1;
	p = url + 8;
	if (*p == '[') {
		h = p + 1;
		if ((hend = strchr(h, ']')) == NULL)
			return -1;
		p = hend + 1;
	} else {
		h = p;
		hend = p + strcspn(p, ":/");
		p = hend;
	}
	if (hend == h || (size_t)(hend - h) >= hostlen)
		return -1;
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	*port = 6379;
	*db = 0;
	if (*p == ':') {
		errno = 0;
		v = strtol(p + 1, &end, 10);
		if (errno != 0 || end == p + 1 || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
		p = end;
	}
	if (*p == '/' && p[1] != '\0') {
		errno = 0;
		v = strtol(p + 1, &end, 10);
		if (errno != 0 || end == p + 1 || *end != '\0' || v < 0 ||
		    v > 65535)
			return -1;
		*db = (int)v;
	} else if (*p == '/' || *p == '\0')
		;
	else
		return -1;
	return 0;
}

struct rg_hv_redis *
rg_hv_redis_new(const char *url, struct rg_error *err)
{
	struct rg_hv_redis	*r;
	uint64_t		 seed[2];

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		rg_error_set(err, "harvest: out of memory");
		return NULL;
	}
	if (parse_url(url, r->host, sizeof(r->host), &r->port, &r->db) == -1) {
		rg_error_set(err, "harvest state '%s': "
		    "not redis://HOST:PORT/DB", url);
		free(r);
		return NULL;
	}
	/* A caller finding every connection busy waits at most one
	 * command timeout, then counts locally (take()). */
	if ((r->pool = rg_pool_new(&pool_hooks, r, REDIS_POOL_MAX, 0, err)) ==
	    NULL) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->key_mu, NULL);
	rg_hash_key_init(seed);		/* hosts must not share nonces */
	atomic_store(&r->nonce, seed[0]);
	return r;
}

void
rg_hv_redis_free(struct rg_hv_redis *r)
{
	if (r == NULL)
		return;
	rg_pool_free(r->pool);
	pthread_mutex_destroy(&r->key_mu);
	free(r);
}

static redisContext *
connect_one(const char *host, int port, int db, char *why, size_t whylen)
{
	struct timeval	 tv = { 0, REDIS_TIMEOUT_MS * 1000 };
	redisContext	*c;
	redisReply	*rep;

	c = redisConnectWithTimeout(host, port, tv);
	if (c == NULL || c->err) {
		snprintf(why, whylen, "%s", c != NULL ? c->errstr :
		    "out of memory");
		redisFree(c);
		return NULL;
	}
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		snprintf(why, whylen, "cannot set timeout");
		redisFree(c);
		return NULL;
	}
	if (db != 0) {
		rep = redisCommand(c, "SELECT %d", db);
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
			/* a log text only: cut to fit */
			snprintf(why, whylen, "SELECT %d: %.80s", db,
			    rep != NULL ? rep->str : c->errstr);
			freeReplyObject(rep);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(rep);
	}
	return c;
}

static void
mark_down(struct rg_hv_redis *r, const char *why)
{
	atomic_store(&r->down_until, rg_now_ms() + REDIS_RETRY_MS);
	if (!atomic_exchange(&r->down_logged, true))
		rg_warnx("harvest: redis %s:%d unavailable (%s): counting "
		    "locally, retrying every %ds", r->host, r->port, why,
		    REDIS_RETRY_MS / 1000);
}

/* The pool's hooks: connect (and SELECT) now; a context hiredis has
 * flagged with an error is never handed out again. */
static void *
pool_open(void *ctx, uint64_t deadline_ms, struct rg_error *err)
{
	struct rg_hv_redis	*r = ctx;
	redisContext		*c;
	char			 why[128];

	(void)deadline_ms;	/* bounded by REDIS_TIMEOUT_MS instead */
	if ((c = connect_one(r->host, r->port, r->db, why, sizeof(why))) ==
	    NULL)
		rg_error_set(err, "%s", why);
	return c;
}

static void
pool_close(void *ctx, void *conn, bool graceful)
{
	(void)ctx;
	(void)graceful;
	redisFree(conn);
}

static bool
pool_healthy(void *ctx, void *conn)
{
	(void)ctx;
	return ((redisContext *)conn)->err == 0;
}

static const struct rg_pool_hooks pool_hooks = {
	.open = pool_open,
	.close = pool_close,
	.healthy = pool_healthy,
};

/*
 * A connection for one command, or NULL while Redis is down (or every
 * connection stayed busy for a command timeout: count locally, as in
 * an outage, but do not call it one).
 */
static redisContext *
take(struct rg_hv_redis *r)
{
	struct rg_error	 err;
	uint64_t	 until = atomic_load(&r->down_until);
	void		*c;

	if (until != 0 && rg_now_ms() < until)
		return NULL;
	rg_error_clear(&err);
	switch (rg_pool_acquire(r->pool, rg_now_ms() + REDIS_TIMEOUT_MS, &c,
	    NULL, &err)) {
	case RG_POOL_OK:
		return c;
	case RG_POOL_FAILED:
		mark_down(r, err.msg);
		return NULL;
	default:
		return NULL;
	}
}

/* Return c after a command: ok keeps it, a failure drops it. */
static void
give(struct rg_hv_redis *r, redisContext *c, bool ok)
{
	if (!ok) {
		mark_down(r, c->err ? c->errstr : "protocol error");
		rg_pool_release(r->pool, c, RG_POOL_BROKEN);
		return;
	}
	if (atomic_load(&r->down_until) != 0) {
		atomic_store(&r->down_until, 0);
		if (atomic_exchange(&r->down_logged, false))
			rg_info("harvest: redis %s:%d reachable again",
			    r->host, r->port);
	}
	rg_pool_release(r->pool, c, RG_POOL_KEEP);
}

static bool
is_int(const redisReply *rep)
{
	return rep != NULL && rep->type == REDIS_REPLY_INTEGER;
}

/*
 * The hash key shared by every host: the first one to ask stores a
 * random one (SET NX), all read it back. Fetched once per process.
 */
static bool
shared_key(struct rg_hv_redis *r, redisContext *c, uint64_t key[2])
{
	uint64_t	 mine[2];
	redisReply	*rep;
	bool		 ok;

	if (atomic_load(&r->have_key)) {
		pthread_mutex_lock(&r->key_mu);
		memcpy(key, r->key, sizeof(r->key));
		pthread_mutex_unlock(&r->key_mu);
		return true;
	}
	rg_hash_key_init(mine);
	rep = redisCommand(c, "SET " KEY_HASHKEY " %016" PRIx64 "%016" PRIx64
	    " NX", mine[0], mine[1]);
	freeReplyObject(rep);
	rep = redisCommand(c, "GET " KEY_HASHKEY);
	ok = rep != NULL && rep->type == REDIS_REPLY_STRING &&
	    rep->len == 32 && sscanf(rep->str, "%16" SCNx64 "%16" SCNx64,
	    &key[0], &key[1]) == 2;
	freeReplyObject(rep);
	if (ok) {
		pthread_mutex_lock(&r->key_mu);
		memcpy(r->key, key, sizeof(r->key));
		pthread_mutex_unlock(&r->key_mu);
		atomic_store(&r->have_key, true);
	}
	return ok;
}

int
rg_hv_redis_note(struct rg_hv_redis *r, const char *prefix,
    const char *rcpt, uint64_t window_ms, size_t cap, uint64_t *count)
{
	redisContext	*c;
	redisReply	*a = NULL;
	uint64_t	 key[2];
	char		 member[40], ks[128], kc[128], sc[24], sw[24];
	bool		 ok = false;

	if ((c = take(r)) == NULL)
		return -1;
	if (!shared_key(r, c, key))
		goto out;
	if (rcpt != NULL)
		snprintf(member, sizeof(member), "%016" PRIx64,
		    rg_siphash24(key, rcpt, strlen(rcpt)));
	else		/* never equal to a hash: 17 characters */
		snprintf(member, sizeof(member), "n%016" PRIx64,
		    (uint64_t)atomic_fetch_add(&r->nonce, 1));
	snprintf(ks, sizeof(ks), KEY_SEEN "%s", prefix);
	snprintf(kc, sizeof(kc), KEY_COUNT "%s", prefix);
	snprintf(sc, sizeof(sc), "%zu", cap > 0 ? cap : 1);
	snprintf(sw, sizeof(sw), "%" PRIu64, window_ms > 0 ? window_ms : 1);
	a = redisCommand(c, "EVAL %s 2 %s %s %s %s %s", note_script, ks, kc,
	    member, sc, sw);
	if (!is_int(a))
		goto out;
	*count = a->integer < 0 ? 0 : (uint64_t)a->integer;
	ok = true;
out:
	freeReplyObject(a);
	give(r, c, ok);
	return ok ? 0 : -1;
}

int
rg_hv_redis_block(struct rg_hv_redis *r, const char *prefix,
    uint64_t block_ms, uint64_t count)
{
	redisContext	*c;
	redisReply	*rep;
	bool		 ok;

	if ((c = take(r)) == NULL)
		return -1;
	rep = redisCommand(c, "SET " KEY_BLOCK "%s count=%" PRIu64 " PX %"
	    PRIu64, prefix, count, block_ms > 0 ? block_ms : 1);
	ok = rep != NULL && rep->type == REDIS_REPLY_STATUS;
	freeReplyObject(rep);
	give(r, c, ok);
	return ok ? 0 : -1;
}

int
rg_hv_redis_blocked(struct rg_hv_redis *r, const char *prefix,
    uint64_t *left_ms)
{
	redisContext	*c;
	redisReply	*rep;
	bool		 ok;

	if ((c = take(r)) == NULL)
		return -1;
	rep = redisCommand(c, "PTTL " KEY_BLOCK "%s", prefix);
	ok = is_int(rep);
	if (ok) {
		/* -2: no key; -1: set by hand without expiry, honour 1h */
		*left_ms = rep->integer == -2 ? 0 : rep->integer == -1 ?
		    3600 * 1000 : (uint64_t)rep->integer;
	}
	freeReplyObject(rep);
	give(r, c, ok);
	return ok ? 0 : -1;
}

/* ---- operator commands: one connection, no pool ---- */

static redisContext *
tool_connect(const char *url, struct rg_error *err)
{
	char		 host[256], why[128];
	int		 port, db;
	redisContext	*c;

	if (parse_url(url, host, sizeof(host), &port, &db) == -1) {
		rg_error_set(err, "harvest state '%s': "
		    "not redis://HOST:PORT/DB", url);
		return NULL;
	}
	if ((c = connect_one(host, port, db, why, sizeof(why))) == NULL)
		rg_error_set(err, "harvest state %s: %s", url, why);
	return c;
}

/* A set of distinct unknowns, listed as a counter. */
static void
list_seen(redisContext *c, const char *k, uint64_t wall, FILE *out)
{
	redisReply	*n, *t;
	char		 until[32];

	n = redisCommand(c, "SCARD %s", k);
	t = redisCommand(c, "PTTL %s", k);
	if (is_int(n) && is_int(t) && t->integer > 0) {
		rg_hv_wall_format(wall + (uint64_t)t->integer, until,
		    sizeof(until));
		fprintf(out, "%s\tcounting\tcount=%lld\twindow_end=%s\n",
		    k + strlen(KEY_SEEN), n->integer, until);
	}
	freeReplyObject(n);
	freeReplyObject(t);
}

int
rg_hv_redis_list(const char *url, FILE *out, struct rg_error *err)
{
	redisContext	*c;
	redisReply	*scan = NULL;
	char		 cursor[32] = "0";
	int		 ret = -1, rounds = 0;
	uint64_t	 wall = rg_wall_ms();

	if ((c = tool_connect(url, err)) == NULL)
		return -1;
	do {
		scan = redisCommand(c, "SCAN %s MATCH rcptgate:harvest:* "
		    "COUNT 1000", cursor);
		if (scan == NULL || scan->type != REDIS_REPLY_ARRAY ||
		    scan->elements != 2 ||
		    scan->element[0]->type != REDIS_REPLY_STRING) {
			rg_error_set(err, "harvest state %s: SCAN failed", url);
			goto out;
		}
		snprintf(cursor, sizeof(cursor), "%s", scan->element[0]->str);
		for (size_t i = 0; i < scan->element[1]->elements; i++) {
			const char	*k = scan->element[1]->element[i]->str;
			redisReply	*v, *t;
			char		 until[32];
			bool		 block;

			block = strncmp(k, KEY_BLOCK, strlen(KEY_BLOCK)) == 0;
			if (strncmp(k, KEY_SEEN, strlen(KEY_SEEN)) == 0) {
				list_seen(c, k, wall, out);
				continue;
			}
			if (!block && strncmp(k, KEY_COUNT,
			    strlen(KEY_COUNT)) != 0)
				continue;
			v = redisCommand(c, "GET %s", k);
			t = redisCommand(c, "PTTL %s", k);
			if (v != NULL && v->type == REDIS_REPLY_STRING &&
			    is_int(t) && t->integer > 0) {
				rg_hv_wall_format(wall + (uint64_t)t->integer,
				    until, sizeof(until));
				if (block)
					fprintf(out,
					    "%s\tblocked\t%s\tuntil=%s\n",
					    k + strlen(KEY_BLOCK), v->str,
					    until);
				else
					fprintf(out, "%s\tcounting\tcount=%s\t"
					    "window_end=%s\n",
					    k + strlen(KEY_COUNT), v->str,
					    until);
			}
			freeReplyObject(v);
			freeReplyObject(t);
		}
		freeReplyObject(scan);
		scan = NULL;
	} while (strcmp(cursor, "0") != 0 && ++rounds < 100000);
	ret = 0;
out:
	freeReplyObject(scan);
	redisFree(c);
	return ret;
}

int
rg_hv_redis_unblock(const char *url, const char *prefix, struct rg_error *err)
{
	redisContext	*c;
	redisReply	*rep;
	int		 ret;

	if ((c = tool_connect(url, err)) == NULL)
		return -1;
	rep = redisCommand(c, "DEL " KEY_BLOCK "%s " KEY_COUNT "%s " KEY_SEEN
	    "%s", prefix, prefix, prefix);
	if (!is_int(rep)) {
		rg_error_set(err, "harvest state %s: DEL failed", url);
		ret = -1;
	} else
		ret = rep->integer > 0 ? 1 : 0;
	freeReplyObject(rep);
	redisFree(c);
	return ret;
}
