/* SPDX-License-Identifier: MIT */
/*
 * The one bounded connection pool (pool.h): a count of connections, a
 * list of idle ones most recently used first, a condition variable on
 * CLOCK_MONOTONIC for callers waiting for a slot.
 *
 * It must not call a hook with its lock held (open and close may do
 * network I/O), must never let more than max connections exist at once
 * (a slot is reserved before open() and given back only after close(),
 * so a peer never sees more than max), and must not allocate on the
 * acquire/release path (idle list nodes are preallocated, one a slot).
 *
 * Locking: one mutex per pool, held only to move a node between lists
 * and to count; waiters sleep on one condition variable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "dlist.h"
#include "pool.h"
#include "rg_time.h"

/* An idle connection, or (on the spare stack) an unused node. */
struct node {
	void		*conn;
	uint64_t	 since_ms;	/* idle since (rg_now_ms()) */
	struct rg_dlink	 link;		/* on the idle list */
	struct node	*spare_next;	/* on the spare stack */
};

/* The node of an idle-list link (NULL for NULL). */
#define IDLE(l)	RG_DLIST_ENTRY((l), struct node, link)

struct rg_pool {
	struct rg_pool_hooks	 hooks;
	void			*ctx;
	size_t			 max;
	uint64_t		 idle_ms;	/* 0: never reap */
	struct node		*nodes;		/* max of them */

	/*
	 * Guards everything below: the idle list (head most recently
	 * used, tail the oldest), the spare node stack and the counters.
	 * Never held across a hook.
	 */
	pthread_mutex_t		 lock;
	/* Signalled under lock when a connection goes idle or a slot frees. */
	pthread_cond_t		 freed;
	struct rg_dlist		 idle;
	struct node		*spare;		/* linked by spare_next */
	size_t			 size, nidle, peak;
	size_t			 nwaiting;	/* callers in wait_until() */
	uint64_t		 opens, reuses, waits, timeouts;
};

struct rg_pool *
rg_pool_new(const struct rg_pool_hooks *hooks, void *ctx, size_t max,
    uint64_t idle_ms, struct rg_error *err)
{
	struct rg_pool		*p;
	pthread_condattr_t	 ca;
	pthread_mutexattr_t	 ma;
	size_t			 i;

	if (max == 0 || hooks->open == NULL || hooks->close == NULL) {
		rg_error_set(err, "pool: bad arguments");
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->nodes = calloc(max, sizeof(*p->nodes))) == NULL) {
		free(p);
		rg_error_set(err, "pool: out of memory");
		return NULL;
	}
	p->hooks = *hooks;
	p->ctx = ctx;
	p->max = max;
	p->idle_ms = idle_ms;
	for (i = 0; i < max; i++) {
		p->nodes[i].spare_next = p->spare;
		p->spare = &p->nodes[i];
	}
	/* Deadlines are rg_now_ms(): the condition must wait on the same
	 * clock, or a clock step would stretch or cut every wait. */
	if (pthread_condattr_init(&ca) != 0) {
		free(p->nodes);
		free(p);
		rg_error_set(err, "pool: pthread_condattr_init failed");
		return NULL;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&p->freed, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		free(p->nodes);
		free(p);
		rg_error_set(err, "pool: pthread_cond_init failed");
		return NULL;
	}
	pthread_condattr_destroy(&ca);
	/*
	 * Adaptive: the lock is held for a few instructions, but SQLite
	 * lookups take and give it back every few microseconds from
	 * every thread; a contended default mutex would sleep in the
	 * kernel (futex) where a short spin would do.
	 */
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&p->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	return p;
}

/* Unlink n from the idle list onto the spare stack; returns its conn. */
static void *
idle_take(struct rg_pool *p, struct node *n)
{
	void	*conn = n->conn;

	rg_dlist_remove(&p->idle, &n->link);
	n->conn = NULL;
	n->spare_next = p->spare;
	p->spare = n;
	p->nidle--;
	return conn;
}

void
rg_pool_free(struct rg_pool *p)
{
	if (p == NULL)
		return;
	while (p->idle.head != NULL)
		p->hooks.close(p->ctx, idle_take(p, IDLE(p->idle.head)), true);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->freed);
	free(p->nodes);
	free(p);
}

/* Wake one waiter, if any; caller holds the lock. */
static void
wake(struct rg_pool *p)
{
	if (p->nwaiting > 0)
		pthread_cond_signal(&p->freed);
}

/* Give a slot back (after its close()); caller holds the lock. */
static void
slot_free(struct rg_pool *p)
{
	p->size--;
	wake(p);
}

/*
 * Detach the tail connection if idle too long: the caller closes it
 * unlocked. Caller holds the lock. NULL: none expired.
 */
static void *
expired(struct rg_pool *p)
{
	/* idle_ms first: the drivers that never reap skip the clock */
	if (p->idle_ms == 0 || p->idle.tail == NULL ||
	    rg_now_ms() - IDLE(p->idle.tail)->since_ms < p->idle_ms)
		return NULL;
	/* The slot stays counted until close() is done (slot_free). */
	return idle_take(p, IDLE(p->idle.tail));
}

/* Wait for the condition until deadline_ms: 0 or ETIMEDOUT. */
static int
wait_until(struct rg_pool *p, uint64_t deadline_ms)
{
	struct timespec	ts;
	int		rc;

	if (rg_ms_left(deadline_ms) == 0)
		return ETIMEDOUT;
	ts.tv_sec = (time_t)(deadline_ms / 1000);
	ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000;
	p->nwaiting++;
	rc = pthread_cond_timedwait(&p->freed, &p->lock, &ts);
	p->nwaiting--;
	return rc;
}

/* Close conn (unlocked) and give its slot back. */
static void
close_slot(struct rg_pool *p, void *conn, bool graceful)
{
	p->hooks.close(p->ctx, conn, graceful);
	pthread_mutex_lock(&p->lock);
	slot_free(p);
	pthread_mutex_unlock(&p->lock);
}

/*
 * Open into a reserved slot; gives the slot back on failure. Caller
 * holds no lock.
 */
static enum rg_pool_status
open_slot(struct rg_pool *p, uint64_t deadline_ms, void **conn,
    struct rg_error *err)
{
	*conn = p->hooks.open(p->ctx, deadline_ms, err);
	pthread_mutex_lock(&p->lock);
	if (*conn == NULL)
		slot_free(p);
	else
		p->opens++;
	pthread_mutex_unlock(&p->lock);
	return *conn != NULL ? RG_POOL_OK : RG_POOL_FAILED;
}

enum rg_pool_status
rg_pool_acquire(struct rg_pool *p, uint64_t deadline_ms, void **conn,
    bool *reused, struct rg_error *err)
{
	return rg_pool_acquire_prefer(p, NULL, deadline_ms, conn, reused,
	    err);
}

/* The idle node holding prefer, else the most recently used one;
 * caller holds the lock and has checked the list is not empty. */
static struct node *
idle_pick(struct rg_pool *p, const void *prefer)
{
	struct node	*n;

	if (prefer != NULL)
		for (n = IDLE(p->idle.head); n != NULL;
		    n = IDLE(n->link.next))
			if (n->conn == prefer)
				return n;
	return IDLE(p->idle.head);
}

enum rg_pool_status
rg_pool_acquire_prefer(struct rg_pool *p, const void *prefer,
    uint64_t deadline_ms, void **conn, bool *reused, struct rg_error *err)
{
	void	*c, *old;
	bool	 waited = false;

	*conn = NULL;
	if (reused != NULL)
		*reused = false;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if ((old = expired(p)) != NULL) {
			pthread_mutex_unlock(&p->lock);
			close_slot(p, old, true);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		if (p->idle.head != NULL) {
			c = idle_take(p, idle_pick(p, prefer));
			p->reuses++;
			pthread_mutex_unlock(&p->lock);
			if (p->hooks.healthy != NULL &&
			    !p->hooks.healthy(p->ctx, c)) {
				/* Rebuilt in its slot: still ours. */
				p->hooks.close(p->ctx, c, false);
				return open_slot(p, deadline_ms, conn, err);
			}
			if (reused != NULL)
				*reused = true;
			*conn = c;
			return RG_POOL_OK;
		}
		if (p->size < p->max) {
			if (++p->size > p->peak)
				p->peak = p->size;
			pthread_mutex_unlock(&p->lock);
			return open_slot(p, deadline_ms, conn, err);
		}
		if (!waited) {
			waited = true;
			p->waits++;
		}
		if (wait_until(p, deadline_ms) == ETIMEDOUT &&
		    p->idle.head == NULL && p->size >= p->max) {
			p->timeouts++;
			pthread_mutex_unlock(&p->lock);
			rg_error_set(err, "all %zu connections busy until the "
			    "deadline", p->max);
			return RG_POOL_TIMEOUT;
		}
	}
}

void
rg_pool_release(struct rg_pool *p, void *conn, enum rg_pool_return how)
{
	struct node	*n;

	if (how != RG_POOL_KEEP) {
		close_slot(p, conn, how == RG_POOL_CLOSE);
		return;
	}
	pthread_mutex_lock(&p->lock);
	/* size <= max and conn is not idle: a spare node is there. */
	n = p->spare;
	p->spare = n->spare_next;
	n->conn = conn;
	n->since_ms = p->idle_ms != 0 ? rg_now_ms() : 0;
	rg_dlist_push_head(&p->idle, &n->link);
	p->nidle++;
	wake(p);
	pthread_mutex_unlock(&p->lock);
}

void *
rg_pool_rebuild(struct rg_pool *p, void *conn, uint64_t deadline_ms,
    struct rg_error *err)
{
	void	*c;

	p->hooks.close(p->ctx, conn, false);
	return open_slot(p, deadline_ms, &c, err) == RG_POOL_OK ? c : NULL;
}

size_t
rg_pool_reap(struct rg_pool *p)
{
	size_t	 n = 0;
	void	*old;

	pthread_mutex_lock(&p->lock);
	while ((old = expired(p)) != NULL) {
		pthread_mutex_unlock(&p->lock);
		close_slot(p, old, true);
		n++;
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

void
rg_pool_stats(struct rg_pool *p, struct rg_pool_stats *st)
{
	pthread_mutex_lock(&p->lock);
	st->opens = p->opens;
	st->reuses = p->reuses;
	st->waits = p->waits;
	st->timeouts = p->timeouts;
	st->size = p->size;
	st->idle = p->nidle;
	st->peak = p->peak;
	st->max = p->max;
	pthread_mutex_unlock(&p->lock);
}
