/* SPDX-License-Identifier: MIT */
/*
 * The SQLite backend's view of its table file: has it changed (the
 * generation() every decision asks, cache hits included), has it been
 * replaced or written in place under a pooled connection (reopen), may
 * it be opened immutable=1 (rcptgate-table's mark, quiet, no journal).
 *
 * It must not read the table through SQLite (a stat() and a pread() of
 * the header only: this runs on every decision), and must not keep a
 * descriptor on a replaced file.
 *
 * Locking: per thread there is only generation()'s state: a descriptor
 * on the file and the last stat(), found through one process-wide
 * pthread key whose value is the head of the thread's list (one entry a
 * backend instance). conns_lock is taken only when a thread makes an
 * entry, when a thread exits and when an instance is closed. One
 * process-wide key rather than one per instance because a
 * pthread_key_delete() does not wait for a destructor already running
 * on an exiting thread. Closing only marks another thread's entry dead;
 * the memory always belongs to, and is freed by, the thread that made
 * it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sqlite_priv.h"
#include "table.h"
#include "rg_time.h"

/*
 * Guards every instance's conns list, the iprev/inext links and the
 * transition of a connection to dead. Never taken by a lookup that
 * already has its connection.
 */
static pthread_mutex_t	conns_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_key_t	conns_key;
static pthread_once_t	conns_key_once = PTHREAD_ONCE_INIT;
static int		conns_key_error;

static void
conn_close_gen(struct sq_conn *c)
{
	if (c->gen_fd >= 0)
		close(c->gen_fd);
	c->gen_fd = -1;
	c->st_ms = 0;
}

/* Thread exit: close and free this thread's connections. */
static void
conns_destroy(void *v)
{
	struct sq_conn	*c, *next;

	pthread_mutex_lock(&conns_lock);
	for (c = v; c != NULL; c = c->tnext) {
		if (atomic_load(&c->dead))
			continue;
		if (c->iprev != NULL)
			c->iprev->inext = c->inext;
		else
			c->owner->conns = c->inext;
		if (c->inext != NULL)
			c->inext->iprev = c->iprev;
		atomic_store(&c->dead, 1);
	}
	pthread_mutex_unlock(&conns_lock);
	/* Now nobody else can reach them. */
	for (c = v; c != NULL; c = next) {
		next = c->tnext;
		conn_close_gen(c);
		free(c);
	}
}

static void
conns_key_init(void)
{
	conns_key_error = pthread_key_create(&conns_key, conns_destroy);
}

/* Free this thread's dead connections; returns the list head. */
static struct sq_conn *
conns_prune(void)
{
	struct sq_conn	*head, **pp, *c;
	bool		 changed = false;

	head = pthread_getspecific(conns_key);
	for (pp = &head; (c = *pp) != NULL;) {
		if (atomic_load(&c->dead)) {
			*pp = c->tnext;
			conn_close_gen(c);	/* only this thread uses it */
			free(c);	/* close() already closed its db */
			changed = true;
		} else
			pp = &c->tnext;
	}
	if (changed)
		pthread_setspecific(conns_key, head);
	return head;
}

/* This thread's connection to sq, made (not opened) if new; NULL: ENOMEM. */
struct sq_conn *
rg_sq_conn_get(struct sq *sq, struct rg_error *err)
{
	struct sq_conn	*head, *c;

	if (pthread_once(&conns_key_once, conns_key_init) != 0 ||
	    conns_key_error != 0) {
		rg_error_set(err, "sqlite %s: pthread_key_create failed",
		    sq->path);
		return NULL;
	}
	head = conns_prune();
	for (c = head; c != NULL; c = c->tnext)
		if (c->owner == sq)
			return c;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		rg_error_set(err, "sqlite %s: out of memory", sq->path);
		return NULL;
	}
	c->owner = sq;
	c->gen_fd = -1;
	c->tnext = head;
	if (pthread_setspecific(conns_key, c) != 0) {
		free(c);
		rg_error_set(err, "sqlite %s: pthread_setspecific failed",
		    sq->path);
		return NULL;
	}
	pthread_mutex_lock(&conns_lock);
	c->inext = sq->conns;
	if (sq->conns != NULL)
		sq->conns->iprev = c;
	sq->conns = c;
	pthread_mutex_unlock(&conns_lock);
	return c;
}

/* Has the file been left alone for SQ_QUIET_MS? */
bool
rg_sq_quiet(const struct stat *st)
{
	uint64_t	mtime_ms;

	mtime_ms = (uint64_t)st->st_mtim.tv_sec * 1000 +
	    (uint64_t)st->st_mtim.tv_nsec / 1000000;
	return rg_wall_ms() >= mtime_ms + SQ_QUIET_MS;
}

/*
 * Does the file that *st describes carry rcptgate-table's mark, in
 * rollback-journal mode, with no -journal beside it? Reads its header
 * through a descriptor checked to be that same inode.
 */
bool
rg_sq_marked_clean(const struct sq *sq, const struct stat *st)
{
	unsigned char	 h[100];
	struct stat	 fst;
	uint32_t	 id;
	bool		 ok = false;
	int		 fd;

	if ((fd = open(sq->path, O_RDONLY | O_CLOEXEC)) == -1)
		return false;
	if (fstat(fd, &fst) == 0 && fst.st_dev == st->st_dev &&
	    fst.st_ino == st->st_ino &&
	    pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
	    memcmp(h, "SQLite format 3", 16) == 0 && h[18] == 1 &&
	    h[19] == 1) {
		id = (uint32_t)h[68] << 24 | (uint32_t)h[69] << 16 |
		    (uint32_t)h[70] << 8 | h[71];
		ok = id == RG_TABLE_APPLICATION_ID;
	}
	close(fd);
	return ok && access(sq->journalpath, F_OK) == -1 && errno == ENOENT;
}

/* Must c be reopened before it reads the file *st describes? */
bool
rg_sq_db_stale(const struct sq_db *d, const struct stat *st)
{
	if (st->st_dev != d->dev || st->st_ino != d->ino)
		return true;	/* replaced: read the new file */
	if (d->immutable)	/* written in place after all */
		return st->st_size != d->size ||
		    st->st_mtim.tv_sec != d->mtim.tv_sec ||
		    st->st_mtim.tv_nsec != d->mtim.tv_nsec ||
		    st->st_ctim.tv_sec != d->ctim.tv_sec ||
		    st->st_ctim.tv_nsec != d->ctim.tv_nsec;
	return d->upgrade && rg_sq_quiet(st);
}

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char	*s = p;

	while (n-- > 0)
		h = (h ^ *s++) * 0x100000001b3ULL;
	return h;
}

/*
 * Changes when the file is replaced (dev, ino), written (size, mtime, and
 * SQLite's file change counter at offset 24, bumped by every commit in
 * rollback mode: mtime alone has the kernel's coarse tick) or, for WAL
 * databases (header byte 18 is 2), when the -wal file changes.
 *
 * Called on every decision, cache hits included, so it must be cheap: a
 * stat() and a pread() on this thread's descriptor for the file, opened
 * again only when the stat shows another inode. The stat is kept for the
 * lookups of the same decision. Without a per-thread connection (out of
 * memory) it opens and closes the file each time, as before.
 */
uint64_t
rg_sq_generation(struct rg_backend *b)
{
	struct sq	*sq = b->priv;
	struct sq_conn	*c;
	struct stat	 st;
	unsigned char	 hdr[10] = { 0 };	/* bytes 18..27 */
	uint64_t	 h = 0xcbf29ce484222325ULL, v[5];
	int		 fd = -1, e;

	c = rg_sq_conn_get(sq, NULL);
	if (stat(sq->path, &st) == -1) {
		e = errno;
		h = fnv(h, &e, sizeof(e));
		if (c != NULL) {
			conn_close_gen(c);
			c->st_errno = e;
			c->st_ms = rg_now_ms();
			c->st_uses = 0;
		}
		return h != 0 ? h : 1;
	}
	v[0] = (uint64_t)st.st_dev;
	v[1] = (uint64_t)st.st_ino;
	v[2] = (uint64_t)st.st_size;
	v[3] = (uint64_t)st.st_mtim.tv_sec;
	v[4] = (uint64_t)st.st_mtim.tv_nsec;
	h = fnv(h, v, sizeof(v));
	if (c != NULL) {
		if (c->gen_fd >= 0 && (c->gen_dev != st.st_dev ||
		    c->gen_ino != st.st_ino))
			conn_close_gen(c);
		if (c->gen_fd < 0 && (c->gen_fd = open(sq->path,
		    O_RDONLY | O_CLOEXEC)) >= 0) {
			/* The inode stat() saw, or one renamed over it since:
			 * then the next call sees the difference and reopens. */
			c->gen_dev = st.st_dev;
			c->gen_ino = st.st_ino;
		}
		fd = c->gen_fd;
		c->st = st;
		c->st_errno = 0;
		c->st_ms = rg_now_ms();
		c->st_uses = 0;
	} else
		fd = open(sq->path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && pread(fd, hdr, sizeof(hdr), 18) != (ssize_t)sizeof(hdr))
		memset(hdr, 0, sizeof(hdr));
	if (c == NULL && fd >= 0)
		close(fd);
	h = fnv(h, hdr + 6, 4);
	if (hdr[0] == 2 && stat(sq->walpath, &st) == 0) {
		v[0] = (uint64_t)st.st_size;
		v[1] = (uint64_t)st.st_mtim.tv_sec;
		v[2] = (uint64_t)st.st_mtim.tv_nsec;
		h = fnv(h, v, 3 * sizeof(v[0]));
	}
	return h != 0 ? h : 1;
}

void
rg_sq_conns_release(struct sq *sq)
{
	struct sq_conn	*c, *next;

	/*
	 * Mark every thread's state dead under the lock, so an exiting
	 * thread (conns_destroy) sees it either still linked or dead.
	 * close() is rare (reload, stop).
	 */
	pthread_mutex_lock(&conns_lock);
	for (c = sq->conns; c != NULL; c = next) {
		next = c->inext;
		c->iprev = c->inext = NULL;
		atomic_store(&c->dead, 1);
	}
	sq->conns = NULL;
	pthread_mutex_unlock(&conns_lock);
	/* This thread's own entries can go now; others' at their next
	 * lookup or exit. */
	if (pthread_once(&conns_key_once, conns_key_init) == 0 &&
	    conns_key_error == 0)
		(void)conns_prune();
}
