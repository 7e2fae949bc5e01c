/* SPDX-License-Identifier: MIT */
/*
 * The harvest limiter's shared store in Redis, so that several MX hosts
 * count one harvester once: counters are INCR + PEXPIRE (a fixed window
 * from the first unknown), blocks are SET PX.
 *
 * Keys: rcptgate:harvest:count:PREFIX (integer) and
 * rcptgate:harvest:block:PREFIX ("count=N"), PREFIX as "203.0.113.0/24".
 *
 * Must not: hold a lock across a command, wait longer than the connect
 * and command timeouts (REDIS_TIMEOUT_MS), or retry an unreachable
 * server on every RCPT (after a failure it is left alone for
 * REDIS_RETRY_MS and the caller counts locally).
 * Locking: pool_mu guards the stack of idle connections only; a thread
 * takes a connection, runs its command unlocked, and returns it. The
 * outage state is atomics.
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
#include "log.h"
#include "rg_time.h"

#define REDIS_TIMEOUT_MS	300
#define REDIS_RETRY_MS		5000
#define REDIS_POOL_MAX		16
#define KEY_COUNT		"rcptgate:harvest:count:"
#define KEY_BLOCK		"rcptgate:harvest:block:"

struct rg_hv_redis {
	char		 host[256];
	int		 port;
	int		 db;
	pthread_mutex_t	 pool_mu;	/* guards idle[] and nidle */
	redisContext	*idle[REDIS_POOL_MAX];
	int		 nidle;
	_Atomic uint64_t down_until;	/* rg_now_ms; 0 = up */
	atomic_bool	 down_logged;	/* this outage was logged */
};

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
	pthread_mutex_init(&r->pool_mu, NULL);
	return r;
}

void
rg_hv_redis_free(struct rg_hv_redis *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < r->nidle; i++)
		redisFree(r->idle[i]);
	pthread_mutex_destroy(&r->pool_mu);
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

/* A connection for one command, or NULL while Redis is down. */
static redisContext *
take(struct rg_hv_redis *r)
{
	redisContext	*c = NULL;
	uint64_t	 until = atomic_load(&r->down_until);
	char		 why[128];

	if (until != 0 && rg_now_ms() < until)
		return NULL;
	pthread_mutex_lock(&r->pool_mu);
	if (r->nidle > 0)
		c = r->idle[--r->nidle];
	pthread_mutex_unlock(&r->pool_mu);
	if (c != NULL)
		return c;
	if ((c = connect_one(r->host, r->port, r->db, why, sizeof(why))) ==
	    NULL)
		mark_down(r, why);
	return c;
}

/* Return c after a command: ok keeps it, a failure drops it. */
static void
give(struct rg_hv_redis *r, redisContext *c, bool ok)
{
	if (!ok) {
		mark_down(r, c->err ? c->errstr : "protocol error");
		redisFree(c);
		return;
	}
	if (atomic_load(&r->down_until) != 0) {
		atomic_store(&r->down_until, 0);
		if (atomic_exchange(&r->down_logged, false))
			rg_info("harvest: redis %s:%d reachable again",
			    r->host, r->port);
	}
	pthread_mutex_lock(&r->pool_mu);
	if (r->nidle < REDIS_POOL_MAX) {
		r->idle[r->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&r->pool_mu);
	redisFree(c);
}

static bool
is_int(const redisReply *rep)
{
	return rep != NULL && rep->type == REDIS_REPLY_INTEGER;
}

int
rg_hv_redis_incr(struct rg_hv_redis *r, const char *prefix,
    uint64_t window_ms, uint64_t *count)
{
	redisContext	*c;
	redisReply	*a = NULL, *b = NULL, *e = NULL;
	bool		 ok = false;

	if ((c = take(r)) == NULL)
		return -1;
	/* Pipelined: one round trip for the common case. */
	redisAppendCommand(c, "INCR " KEY_COUNT "%s", prefix);
	redisAppendCommand(c, "PTTL " KEY_COUNT "%s", prefix);
	if (redisGetReply(c, (void **)&a) != REDIS_OK ||
	    redisGetReply(c, (void **)&b) != REDIS_OK || !is_int(a) ||
	    !is_int(b))
		goto out;
	/*
	 * No expiry yet: the first INCR of a window, or one whose PEXPIRE
	 * was lost in a crash. Either way the window starts now.
	 */
	if (b->integer == -1) {
		e = redisCommand(c, "PEXPIRE " KEY_COUNT "%s %" PRIu64, prefix,
		    window_ms > 0 ? window_ms : 1);
		if (!is_int(e))
			goto out;
	}
	*count = a->integer < 0 ? 0 : (uint64_t)a->integer;
	ok = true;
out:
	freeReplyObject(a);
	freeReplyObject(b);
	freeReplyObject(e);
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
	rep = redisCommand(c, "DEL " KEY_BLOCK "%s " KEY_COUNT "%s", prefix,
	    prefix);
	if (!is_int(rep)) {
		rg_error_set(err, "harvest state %s: DEL failed", url);
		ret = -1;
	} else
		ret = rep->integer > 0 ? 1 : 0;
	freeReplyObject(rep);
	redisFree(c);
	return ret;
}
