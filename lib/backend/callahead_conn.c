/* SPDX-License-Identifier: MIT */
/*
 * The call-ahead backend's connections to the internal servers: connect,
 * greeting and EHLO (HELO after a 5xx); the per-host pools' hooks (a
 * connection is made unconnected, connected by the probe that takes it,
 * closed with QUIT unless broken); and the reaper thread that closes
 * connections left idle for idle_timeout when no probe comes to do it.
 *
 * It must not connect to any host but the configured ones, must not
 * hold a lock across network I/O, and must not let the server's text
 * reach an SMTP client (it goes into err, escaped, for the log).
 *
 * Locking: each host's pool (pool.c) guards its connections; reap_lock
 * guards the reaper's start and stop flags (reap_cond wakes it). Each
 * connect's outcome goes into the host's rg_tstate (atomics, and a leaf
 * lock for the error text).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "callahead_priv.h"
#include "log.h"

void
rg_ca_fmt_reply(const struct rg_smtp_reply *r, char *buf, size_t len)
{
	char	text[RG_SMTP_TEXT_MAX * 4 + 1];

	rg_log_escape(text, sizeof(text), r->text);
	if (r->enh[0] != 0)
		snprintf(buf, len, "%d %d.%d.%d %s", r->code, r->enh[0],
		    r->enh[1], r->enh[2], text);
	else
		snprintf(buf, len, "%d %s", r->code, text);
}

static int
cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t	attr;
	int			r;

	if (pthread_condattr_init(&attr) != 0)
		return -1;
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	r = pthread_cond_init(c, &attr);
	pthread_condattr_destroy(&attr);
	return r == 0 ? 0 : -1;
}

/* Wait on c until the rg_now_ms() deadline (the condition's clock is
 * CLOCK_MONOTONIC, rg_now_ms()'s): 0 signalled, ETIMEDOUT. */
static int
cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, uint64_t deadline_ms)
{
	struct timespec	ts;

	if (rg_ms_left(deadline_ms) == 0)
		return ETIMEDOUT;
	ts.tv_sec = (time_t)(deadline_ms / 1000);
	ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000;
	return pthread_cond_timedwait(c, m, &ts);
}

static void *
reaper_main(void *arg)
{
	struct ca	*ca = arg;
	uint64_t	 period = min_u64(5000, ca->idle_ms / 4 + 50);

	pthread_mutex_lock(&ca->reap_lock);
	while (!ca->reap_stop) {
		cond_wait_until(&ca->reap_cond, &ca->reap_lock,
		    rg_now_ms() + period);
		if (ca->reap_stop)
			break;
		pthread_mutex_unlock(&ca->reap_lock);
		/* QUIT writes: the pool closes with no lock held */
		for (size_t i = 0; i < ca->nhosts; i++)
			rg_pool_reap(ca->hosts[i].pool);
		pthread_mutex_lock(&ca->reap_lock);
	}
	pthread_mutex_unlock(&ca->reap_lock);
	return NULL;
}

int
rg_ca_reaper_init(struct ca *ca)
{
	pthread_mutex_init(&ca->reap_lock, NULL);
	if (cond_init_monotonic(&ca->reap_cond) != 0) {
		pthread_mutex_destroy(&ca->reap_lock);
		return -1;
	}
	return 0;
}

/*
 * Start the reaper at the first kept connection, not at open(): open()
 * may run before the daemon forks, which would lose the thread.
 */
void
rg_ca_reaper_ensure(struct ca *ca)
{
	pthread_mutex_lock(&ca->reap_lock);
	if (!ca->reap_started && !ca->reap_stop) {
		if (pthread_create(&ca->reaper, NULL, reaper_main, ca) == 0)
			ca->reap_started = true;
		else
			rg_warnx("backend %s: cannot start the idle "
			    "connection reaper; idle connections are closed "
			    "at next use instead", ca->name);
	}
	pthread_mutex_unlock(&ca->reap_lock);
}

/* Stop and join the reaper, and free what rg_ca_reaper_init made. */
void
rg_ca_reaper_stop(struct ca *ca)
{
	pthread_mutex_lock(&ca->reap_lock);
	ca->reap_stop = true;
	pthread_cond_broadcast(&ca->reap_cond);
	pthread_mutex_unlock(&ca->reap_lock);
	if (ca->reap_started)
		pthread_join(ca->reaper, NULL);
	pthread_mutex_destroy(&ca->reap_lock);
	pthread_cond_destroy(&ca->reap_cond);
}

int
rg_ca_conn_connect(struct ca_host *h, struct ca_conn *c, uint64_t q_deadline,
    struct rg_error *err)
{
	struct ca		*ca = h->ca;
	struct rg_smtp_conn	*s;
	struct rg_smtp_reply	 r;
	char			 cmd[CA_HOST_MAX + 8];
	char			 rbuf[RG_SMTP_TEXT_MAX * 4 + 32];
	struct rg_error		 e;
	bool			 utf8;

	if (rg_smtp_connect(h->host, h->port, step_deadline(ca, q_deadline),
	    &s, &e) != RG_SMTP_OK) {
		rg_error_set(err, "%s: %s", h->label, e.msg);
		rg_tstate_down(&h->ts, h->label, err->msg);
		return -1;
	}
	if (rg_smtp_read_reply(s, step_deadline(ca, q_deadline), &r, &e) !=
	    RG_SMTP_OK) {
		rg_error_set(err, "%s: greeting: %s", h->label, e.msg);
		goto fail;
	}
	if (r.code != 220) {
		rg_ca_fmt_reply(&r, rbuf, sizeof(rbuf));
		rg_error_set(err, "%s: greeting was %s", h->label, rbuf);
		goto fail;
	}
	snprintf(cmd, sizeof(cmd), "EHLO %s", ca->helo);
	if (rg_smtp_command(s, cmd, NULL, step_deadline(ca, q_deadline), &r,
	    &e) != RG_SMTP_OK) {
		rg_error_set(err, "%s: EHLO: %s", h->label, e.msg);
		goto fail;
	}
	utf8 = r.code == 250 && (r.ext & RG_SMTP_EXT_SMTPUTF8) != 0;
	if (r.code >= 500) {
		snprintf(cmd, sizeof(cmd), "HELO %s", ca->helo);
		if (rg_smtp_command(s, cmd, NULL, step_deadline(ca,
		    q_deadline), &r, &e) != RG_SMTP_OK) {
			rg_error_set(err, "%s: HELO: %s", h->label, e.msg);
			goto fail;
		}
	}
	if (r.code / 100 != 2) {
		rg_ca_fmt_reply(&r, rbuf, sizeof(rbuf));
		rg_error_set(err, "%s: %.4s refused: %s", h->label, cmd, rbuf);
		goto fail;
	}
	c->smtp = s;
	c->smtputf8 = utf8;
	atomic_fetch_add(&h->connects, 1);
	rg_tstate_up(&h->ts);
	return 0;
fail:
	rg_tstate_down(&h->ts, h->label, err->msg);
	rg_smtp_close(s, true);
	return -1;
}

static void *
pool_open(void *ctx, uint64_t deadline_ms, struct rg_error *err)
{
	struct ca_host	*h = ctx;
	struct ca_conn	*c;

	(void)deadline_ms;
	/* Connected by the probe: a failed connect there frees the slot
	 * (RG_POOL_BROKEN) and says which step failed. */
	if ((c = calloc(1, sizeof(*c))) == NULL)
		rg_error_set(err, "%s: out of memory", h->label);
	return c;
}

/* QUIT unless broken (the server has gone: nothing to say goodbye to). */
static void
pool_close(void *ctx, void *conn, bool graceful)
{
	struct ca_conn	*c = conn;

	(void)ctx;
	if (c->smtp != NULL)
		rg_smtp_close(c->smtp, graceful);
	free(c);
}

const struct rg_pool_hooks rg_ca_pool_hooks = {
	.open = pool_open,
	.close = pool_close,
};
