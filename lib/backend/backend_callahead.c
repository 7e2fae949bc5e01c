/* SPDX-License-Identifier: MIT */
/*
 * The call-ahead backend (type = callahead): asks the internal mail
 * server "RCPT TO:<key>" and maps its answer to found / not found /
 * tempfail, over kept connections (RSET between probes). This file
 * holds the dialogue, the accept-all detection and the ops table;
 * callahead_conn.c the connections, callahead_conf.c the configuration.
 *
 * It must not probe any host but the configured ones, must not turn a
 * failure (4xx, 421, timeout, broken connection, 5xx to EHLO/HELO/MAIL,
 * anything unexpected) into RG_NOTFOUND, and must not let the internal
 * server's text reach an SMTP client: it goes into err and the log only.
 * The catch-all key "@domain" is never probed (see lookup()).
 *
 * Locking: each host has a pool (pool.c) of at most max_connections
 * connections, whose lock guards only its idle list and counters;
 * callers wait for a free slot until the step deadline. The domain
 * table of the accept-all check has its own mutex (dom_lock); the
 * reaper thread's start/stop flags have a third (callahead_conn.c). No
 * lock is ever held across network I/O: a connection is taken from
 * the pool, used unlocked, and given back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "callahead_priv.h"
#include "log.h"

/* ---- the probe ---- */


/*
 * Map the answer to RCPT: only "no such user" is not found (see
 * rg_smtp_rcpt_class); a policy refusal (5.7.x), "must declare
 * SMTPUTF8" (5.6.7) and the like say nothing about the recipient, and
 * taking them for "unknown" would reject real users.
 */
static enum rg_result
classify_rcpt(const struct rg_smtp_reply *r)
{
	switch (rg_smtp_rcpt_class(r)) {
	case RG_SMTP_RCPT_OK:
		return RG_FOUND;
	case RG_SMTP_RCPT_UNKNOWN:
		return RG_NOTFOUND;
	default:
		return RG_TEMPFAIL;
	}
}

/* Was this failure on a kept connection the server having dropped it? */
static bool
looks_dead(enum rg_smtp_status st, const struct rg_smtp_reply *r)
{
	if (st == RG_SMTP_ERR_CLOSED || st == RG_SMTP_ERR_IO)
		return true;
	return st == RG_SMTP_OK && r->code == 421;
}

/*
 * One transaction on c: MAIL FROM, optionally RCPT of the accept-all
 * probe address (its answer in *aa_res), RCPT TO:<key>, RSET. Sets *keep
 * if c may be reused, *dead if a kept connection proved dead before
 * anything was learnt (the caller retries on a new one).
 */
static enum rg_result
transact(struct ca *ca, struct ca_host *h, struct ca_conn *c, bool reused,
    const struct rg_query *q, const char *aa_addr, enum rg_result *aa_res,
    bool *keep, bool *dead, struct rg_error *err)
{
	struct rg_smtp_reply	r;
	enum rg_smtp_status	st;
	enum rg_result		res;
	struct rg_error		e;
	char			rbuf[RG_SMTP_TEXT_MAX * 4 + 32];
	bool			utf8 = !rg_smtp_ascii(q->key);

	*keep = false;
	*dead = false;
	if (utf8 && !c->smtputf8) {
		/*
		 * The server cannot be asked about a UTF-8 address without
		 * SMTPUTF8, and its answer to a bare one (553 5.6.7, or a
		 * 550 from a server that mangles the bytes) says nothing
		 * of the mailbox. Pass it, as an unchecked domain would:
		 * the internal server has the last word at delivery.
		 * Neither a 550 for a user who exists nor mail deferred
		 * for days (docs/callahead.md).
		 */
		rg_trace_set(q->trace, q->tracelen, "%s does not offer "
		    "SMTPUTF8: a UTF-8 address is not asked, it passes",
		    h->label);
		*keep = true;
		return RG_FOUND;
	}
	st = rg_smtp_command_params(c->smtp, "MAIL FROM:", ca->mail_from,
	    utf8 ? "SMTPUTF8" : NULL, step_deadline(ca, q->deadline_ms), &r,
	    &e);
	if (reused && looks_dead(st, &r)) {
		*dead = true;
		rg_error_set(err, "%s: kept connection: %s", h->label,
		    st == RG_SMTP_OK ? "421" : e.msg);
		return RG_TEMPFAIL;
	}
	if (st != RG_SMTP_OK) {
		rg_error_set(err, "%s: MAIL FROM: %s", h->label, e.msg);
		rg_tstate_down(&h->ts, h->label, err->msg);
		return RG_TEMPFAIL;
	}
	if (r.code / 100 != 2) {
		rg_ca_fmt_reply(&r, rbuf, sizeof(rbuf));
		rg_error_set(err, "%s: MAIL FROM:<%s>%s refused: %s",
		    h->label, ca->mail_from, utf8 ? " SMTPUTF8" : "", rbuf);
		return RG_TEMPFAIL;
	}
	if (aa_addr != NULL) {
		st = rg_smtp_command(c->smtp, "RCPT TO:", aa_addr,
		    step_deadline(ca, q->deadline_ms), &r, &e);
		if (st != RG_SMTP_OK) {
			rg_error_set(err, "%s: RCPT TO (accept-all check): %s",
			    h->label, e.msg);
			return RG_TEMPFAIL;
		}
		*aa_res = classify_rcpt(&r);
	}
	st = rg_smtp_command(c->smtp, "RCPT TO:", q->key,
	    step_deadline(ca, q->deadline_ms), &r, &e);
	if (st != RG_SMTP_OK) {
		rg_error_set(err, "%s: RCPT TO: %s", h->label, e.msg);
		rg_tstate_down(&h->ts, h->label, err->msg);
		return RG_TEMPFAIL;
	}
	/* it answered (even a 4xx is an answer): the host is up */
	rg_tstate_up(&h->ts);
	res = classify_rcpt(&r);
	rg_ca_fmt_reply(&r, rbuf, sizeof(rbuf));
	if (res != RG_FOUND)
		rg_error_set(err, "%s: RCPT TO answered %s", h->label, rbuf);
	rg_trace_set(q->trace, q->tracelen, "%s%s answered %s", h->label,
	    reused ? " (kept connection)" : "", rbuf);
	if (r.code == 421)
		return res;		/* the server is closing: do not keep */
	if (ca->idle_ms == 0)
		return res;		/* no reuse: close with QUIT */
	st = rg_smtp_command(c->smtp, "RSET", NULL,
	    step_deadline(ca, q->deadline_ms), &r, &e);
	*keep = st == RG_SMTP_OK && r.code / 100 == 2;
	return res;
}


/*
 * A connection of h for one probe: a kept one (*reused), or a new one
 * connected now. NULL with err set if none could be had in time.
 */
static struct ca_conn *
conn_get(struct ca *ca, struct ca_host *h, uint64_t q_deadline,
    bool *reused, struct rg_error *err)
{
	enum rg_pool_status	 st;
	struct ca_conn		*c;
	void			*v;

	st = rg_pool_acquire(h->pool, step_deadline(ca, q_deadline), &v,
	    NULL, err);
	if (st == RG_POOL_TIMEOUT)
		rg_error_set(err, "%s: all %u connections busy "
		    "(max_connections)", h->label, ca->max_conn);
	if (st != RG_POOL_OK)
		return NULL;
	c = v;
	*reused = c->smtp != NULL;
	if (!*reused && rg_ca_conn_connect(h, c, q_deadline, err) != 0) {
		/* nothing to close: the slot comes back at once */
		rg_pool_release(h->pool, c, RG_POOL_BROKEN);
		return NULL;
	}
	return c;
}

/* Probe one host, retrying once on a new connection if a kept one died. */
static enum rg_result
probe_host(struct ca *ca, struct ca_host *h, const struct rg_query *q,
    const char *aa_addr, enum rg_result *aa_res, struct rg_error *err)
{
	struct ca_conn	*c;
	enum rg_result	 res;
	bool		 reused, keep, dead;

	if ((c = conn_get(ca, h, q->deadline_ms, &reused, err)) == NULL)
		return RG_TEMPFAIL;
	res = transact(ca, h, c, reused, q, aa_addr, aa_res, &keep, &dead,
	    err);
	if (dead && rg_ms_left(q->deadline_ms) > 0) {
		rg_debug("backend %s: %s; reconnecting", ca->name, err->msg);
		/* Keep the slot: the new connection replaces the dead one. */
		rg_smtp_close(c->smtp, false);
		c->smtp = NULL;
		if (rg_ca_conn_connect(h, c, q->deadline_ms, err) != 0) {
			rg_pool_release(h->pool, c, RG_POOL_BROKEN);
			return RG_TEMPFAIL;
		}
		res = transact(ca, h, c, false, q, aa_addr, aa_res, &keep,
		    &dead, err);
	}
	/* A closed one gives its slot back only once closed (pool.c), so
	 * the internal server never sees more than max_connections. */
	if (!keep || ca->idle_ms == 0) {
		rg_pool_release(h->pool, c, RG_POOL_CLOSE);
		return res;
	}
	rg_pool_release(h->pool, c, RG_POOL_KEEP);
	rg_ca_reaper_ensure(ca);
	return res;
}

/* ---- accept-all detection ---- */

/* Is an accept-all check of domain due? If so mark it running. */
static bool
domain_check_due(struct ca *ca, const char *domain)
{
	struct ca_domain	*d = NULL;
	uint64_t		 now = rg_now_ms();
	bool			 due = false;

	if (ca->accept_all_ms == 0 || strlen(domain) > RG_DOMAIN_MAX)
		return false;
	pthread_mutex_lock(&ca->dom_lock);
	for (size_t i = 0; i < ca->ndoms; i++)
		if (strcasecmp(ca->doms[i].name, domain) == 0) {
			d = &ca->doms[i];
			break;
		}
	if (d == NULL && ca->ndoms < CA_MAX_DOMAINS) {
		d = &ca->doms[ca->ndoms++];
		memset(d, 0, sizeof(*d));
		strcpy(d->name, domain);	/* length checked above */
	}
	if (d != NULL && !d->busy && (d->checked_ms == 0 ||
	    now - d->checked_ms >= ca->accept_all_ms)) {
		d->busy = true;
		due = true;
	}
	pthread_mutex_unlock(&ca->dom_lock);
	return due;
}

static void
domain_check_done(struct ca *ca, const char *domain, const char *probe,
    enum rg_result res)
{
	bool	was = false, now_aa = false, changed = false;

	pthread_mutex_lock(&ca->dom_lock);
	for (size_t i = 0; i < ca->ndoms; i++) {
		struct ca_domain	*d = &ca->doms[i];

		if (strcasecmp(d->name, domain) != 0)
			continue;
		d->busy = false;
		if (res != RG_TEMPFAIL) {
			was = d->accept_all;
			now_aa = res == RG_FOUND;
			changed = d->checked_ms == 0 ? now_aa : was != now_aa;
			d->accept_all = now_aa;
			d->checked_ms = rg_now_ms();
		}
		break;
	}
	pthread_mutex_unlock(&ca->dom_lock);
	if (changed && now_aa)
		rg_warnx("backend %s: the internal server accepted <%s>, an "
		    "address that cannot exist: it accepts every recipient of "
		    "%s, so call-ahead cannot tell users apart for that domain "
		    "(the internal server would generate the backscatter "
		    "itself)", ca->name, probe, domain);
	else if (changed)
		rg_info("backend %s: the internal server now rejects unknown "
		    "recipients of %s", ca->name, domain);
}

static void
random_probe(char *buf, size_t len, const char *domain)
{
	unsigned char	rnd[8];
	char		hex[17];

	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(rnd)) {
		uint64_t	x = rg_now_ms() ^ ((uint64_t)getpid() << 32) ^
		    (uint64_t)(uintptr_t)buf;

		memcpy(rnd, &x, sizeof(rnd));
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	snprintf(buf, len, "rcptgate-probe-%s@%s", hex, domain);
}

/* ---- the ops ---- */

/* ---- the ops ---- */

static const char *const ca_keys[] = {
	"hosts", "port", "helo", "mail_from", "timeout", "max_connections",
	"idle_timeout", "accept_all_check", "starttls", "check_domains", NULL
};

static void
ca_free(struct ca *ca)
{
	if (ca == NULL)
		return;
	rg_ca_reaper_stop(ca);
	for (size_t i = 0; i < CA_MAX_HOSTS; i++) {
		rg_pool_free(ca->hosts[i].pool);
		rg_tstate_destroy(&ca->hosts[i].ts);
	}
	rg_list_free(&ca->check_domains);
	pthread_mutex_destroy(&ca->dom_lock);
	free(ca->doms);
	free(ca);
}

static int
ca_open(struct rg_backend *b, const struct rg_section *sec,
    struct rg_error *err)
{
	struct ca	*ca;

	if ((ca = calloc(1, sizeof(*ca))) == NULL) {
		rg_error_set(err, "backend %s: out of memory", sec->name);
		return -2;
	}
	snprintf(ca->name, sizeof(ca->name), "%s", sec->name);
	pthread_mutex_init(&ca->dom_lock, NULL);
	if (rg_ca_reaper_init(ca) != 0) {
		rg_error_set(err, "backend %s: pthread_cond_init failed",
		    sec->name);
		pthread_mutex_destroy(&ca->dom_lock);
		free(ca);
		return -2;
	}
	for (size_t i = 0; i < CA_MAX_HOSTS; i++)	/* ca_free's too */
		rg_tstate_init(&ca->hosts[i].ts);
	if (rg_section_check_keys(sec, ca_keys, err) != 0 ||
	    rg_ca_parse_keys(ca, sec, err) != 0) {
		ca_free(ca);
		return -1;
	}
	for (size_t i = 0; i < ca->nhosts; i++) {
		ca->hosts[i].ca = ca;
		if ((ca->hosts[i].pool = rg_pool_new(&rg_ca_pool_hooks,
		    &ca->hosts[i], ca->max_conn, ca->idle_ms, NULL)) == NULL)
			goto nomem;
	}
	if ((ca->doms = calloc(CA_MAX_DOMAINS, sizeof(*ca->doms))) == NULL)
		goto nomem;
	b->priv = ca;
	return 0;
nomem:
	rg_error_set(err, "backend %s: out of memory", sec->name);
	ca_free(ca);
	return -2;
}

static void
ca_close(struct rg_backend *b)
{
	ca_free(b->priv);
	b->priv = NULL;
}

/*
 * The catch-all key "@domain" is answered RG_NOTFOUND without I/O: SMTP
 * has no way to ask "is there a catch-all?" ("RCPT TO:<@d>" is a syntax
 * error), and the full address was already probed: an internal server
 * with a catch-all has answered 250 for it.
 */
static enum rg_result
ca_lookup(struct rg_backend *b, const struct rg_query *q,
    struct rg_error *err)
{
	struct ca	*ca = b->priv;
	enum rg_result	 res = RG_TEMPFAIL, aa_res = RG_TEMPFAIL;
	char		 probe[RG_DOMAIN_MAX + 40];
	char		 shown[RG_PATH_MAX * 4 + 1];
	bool		 check;
	struct rg_error	 e;

	if (q->key[0] == '@' || q->local[0] == '\0') {
		rg_trace_set(q->trace, q->tracelen,
		    "catch-all key not probed (SMTP cannot ask)");
		return RG_NOTFOUND;
	}
	if (!rg_smtp_path_ok(q->key, strlen(q->key))) {
		rg_error_set(err, "backend %s: address not sent: unsafe "
		    "characters", ca->name);
		atomic_fetch_add(&ca->tempfail, 1);
		return RG_TEMPFAIL;
	}
	atomic_fetch_add(&ca->probes, 1);
	check = domain_check_due(ca, q->domain);
	if (check)
		random_probe(probe, sizeof(probe), q->domain);
	rg_error_clear(&e);
	for (size_t i = 0; i < ca->nhosts; i++) {
		res = probe_host(ca, &ca->hosts[i], q, check ? probe : NULL,
		    &aa_res, &e);
		if (res != RG_TEMPFAIL)
			break;
		rg_log_escape(shown, sizeof(shown), q->key);
		rg_warnx("backend %s: probe of <%s> failed: %s", ca->name,
		    shown, e.msg);
		if (rg_ms_left(q->deadline_ms) == 0)
			break;
	}
	if (check)
		domain_check_done(ca, q->domain, probe, aa_res);
	if (res != RG_FOUND)
		rg_error_set(err, "backend %s: %s", ca->name, e.msg);
	atomic_fetch_add(res == RG_FOUND ? &ca->found : res == RG_NOTFOUND ?
	    &ca->notfound : &ca->tempfail, 1);
	return res;
}

/*
 * One host for ca_check(): a session (greeting, EHLO, MAIL) and one RCPT
 * of a random address that cannot exist for each of doms. What it
 * answers goes into warn. Did the session work?
 */
static bool
check_host(struct ca *ca, struct ca_host *h, const struct rg_list *doms,
    struct rg_error *err, struct rg_error *warn)
{
	uint64_t		 deadline = rg_now_ms() + ca->timeout_ms * 4;
	struct ca_conn		 c = { NULL, false };
	struct rg_smtp_reply	 r;
	struct rg_error		 e;
	bool			 good = true;

	rg_error_clear(&e);
	if (rg_ca_conn_connect(h, &c, deadline, err) != 0) {
		rg_error_append(warn, "%s", err->msg);
		return false;
	}
	if (rg_smtp_command(c.smtp, "MAIL FROM:", ca->mail_from,
	    step_deadline(ca, deadline), &r, &e) != RG_SMTP_OK ||
	    r.code / 100 != 2) {
		rg_error_append(warn, "%s: MAIL FROM:<%s> failed: %s",
		    h->label, ca->mail_from,
		    e.count ? e.msg : r.text);
		good = false;
	}
	for (size_t j = 0; good && j < doms->n; j++) {
		char	probe[RG_DOMAIN_MAX + 40];

		random_probe(probe, sizeof(probe), doms->v[j]);
		rg_error_clear(&e);
		if (rg_smtp_command(c.smtp, "RCPT TO:", probe,
		    step_deadline(ca, deadline), &r, &e) != RG_SMTP_OK) {
			rg_error_append(warn, "%s: %s", h->label, e.msg);
			good = false;
		} else if (classify_rcpt(&r) == RG_FOUND)
			rg_error_append(warn, "%s accepts "
			    "<%s>, an address that cannot exist: "
			    "call-ahead cannot tell users of %s apart",
			    h->label, probe, doms->v[j]);
	}
	rg_smtp_close(c.smtp, true);
	return good;
}

/*
 * For `rcptgate -n`: a live session with each host (greeting, EHLO, MAIL)
 * and, for each check_domains entry (default: the domain of helo), one
 * RCPT of a random address that cannot exist, to find accept-all servers
 * before the first mail does. What the hosts answer goes into warn,
 * loud when none works, never into err: an internal server down at boot
 * must not keep rcptgate from starting (see ldap_check).
 */
static int
ca_check(struct rg_backend *b, struct rg_error *err, struct rg_error *warn)
{
	struct ca	*ca = b->priv;
	struct rg_list	 doms = ca->check_domains;
	const char	*dot = strchr(ca->helo, '.');
	char		*helo_dom[1];
	size_t		 ok = 0;

	if (doms.n == 0 && dot != NULL && ca->helo[0] != '[') {
		helo_dom[0] = (char *)(dot + 1);
		doms.n = 1;
		doms.v = helo_dom;
	}
	for (size_t i = 0; i < ca->nhosts; i++)
		if (check_host(ca, &ca->hosts[i], &doms, err, warn))
			ok++;
	if (doms.n == 0)
		rg_error_append(warn, "accept-all not checked: no "
		    "domain (set check_domains)");
	pthread_mutex_lock(&ca->dom_lock);
	for (size_t i = 0; i < ca->ndoms; i++)
		if (ca->doms[i].accept_all)
			rg_error_append(warn, "%s was seen to "
			    "accept every recipient", ca->doms[i].name);
	pthread_mutex_unlock(&ca->dom_lock);
	if (ok == 0)
		rg_error_append(warn, "INTERNAL SERVER UNUSABLE "
		    "NOW: no host answered a probe. rcptgate starts anyway: "
		    "recipients it checks with this backend get 451 4.4.3 "
		    "(cached positives still pass) until one answers");
	rg_error_clear(err);
	return 0;
}

/* The per-host timeout times the hosts; each probe also stops at the
 * query's deadline. */
static uint64_t
ca_worst_case_ms(struct rg_backend *b)
{
	struct ca	*ca = b->priv;

	return ca->timeout_ms * ca->nhosts;
}

static void
ca_stats(struct rg_backend *b, char *buf, size_t len)
{
	struct ca		*ca = b->priv;
	struct rg_pool_stats	 ps;
	uint64_t		 connects = 0, reuses = 0, busy = 0;
	size_t			 open = 0, peak = 0;
	int			 n;

	for (size_t i = 0; i < ca->nhosts; i++) {
		struct ca_host	*h = &ca->hosts[i];

		rg_pool_stats(h->pool, &ps);
		connects += atomic_load(&h->connects);
		reuses += ps.reuses;
		busy += ps.timeouts;
		open += ps.size;
		peak = ps.peak > peak ? ps.peak : peak;
	}
	n = snprintf(buf, len, "probes=%ju found=%ju notfound=%ju "
	    "tempfail=%ju connects=%ju reuses=%ju open=%zu peak_per_host=%zu "
	    "slot_timeouts=%ju",
	    (uintmax_t)atomic_load(&ca->probes),
	    (uintmax_t)atomic_load(&ca->found),
	    (uintmax_t)atomic_load(&ca->notfound),
	    (uintmax_t)atomic_load(&ca->tempfail), (uintmax_t)connects,
	    (uintmax_t)reuses, open, peak, (uintmax_t)busy);
	if (n < 0 || (size_t)n >= len)
		snprintf(buf, len, "stats truncated");
}

/* Each host of `hosts`, as the probes last found it. */
static size_t
ca_targets(struct rg_backend *b, struct rg_target_state *out, size_t max)
{
	struct ca	*ca = b->priv;
	size_t		 i;

	for (i = 0; i < ca->nhosts && i < max; i++)
		rg_tstate_read(&ca->hosts[i].ts, ca->hosts[i].label, &out[i]);
	return i;
}

const struct rg_backend_ops rg_backend_callahead_ops = {
	.type = "callahead",
	.open = ca_open,
	.lookup = ca_lookup,
	.close = ca_close,
	.check = ca_check,
	.worst_case_ms = ca_worst_case_ms,
	.stats = ca_stats,
	.targets = ca_targets,
};
