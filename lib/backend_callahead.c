/* SPDX-License-Identifier: MIT */
/*
 * The call-ahead backend (type = callahead): asks the internal mail
 * server "RCPT TO:<key>" and maps its answer to found / not found /
 * tempfail, over kept connections (RSET between probes).
 *
 * It must not probe any host but the configured ones, must not turn a
 * failure (4xx, 421, timeout, broken connection, 5xx to EHLO/HELO/MAIL,
 * anything unexpected) into RG_NOTFOUND, and must not let the internal
 * server's text reach an SMTP client: it goes into err and the log only.
 * The catch-all key "@domain" is never probed (see lookup()).
 *
 * Locking: each host has a mutex guarding its idle-connection list and
 * counters, and a condition variable for callers waiting for a free
 * connection slot (max_connections); the domain table of the accept-all
 * check has its own mutex; the reaper thread's start/stop flags have a
 * third. No lock is ever held across network I/O: a connection is taken
 * from the idle list under the lock, used unlocked, and put back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "backend.h"
#include "conf.h"
#include "log.h"
#include "rg_time.h"
#include "smtp_client.h"

#define CA_MAX_HOSTS		16
#define CA_MAX_DOMAINS		1024	/* accept-all state kept per domain */
#define CA_HOST_MAX		255
#define CA_MAX_CONNECTIONS	1000
#define CA_DEFAULT_TIMEOUT_MS	3000

struct ca_conn {
	struct rg_smtp_conn	*smtp;
	bool			 smtputf8;	/* offered in EHLO */
	uint64_t		 last_used_ms;
	struct ca_conn		*next;
};

struct ca_host {
	char		 host[CA_HOST_MAX + 1];	/* name or literal, no [] */
	char		 port[8];
	char		 label[CA_HOST_MAX + 16];	/* as configured */

	/* Guards idle, nconn, nconn_peak, connects, reuses, waits_failed. */
	pthread_mutex_t	 lock;
	/* Signalled under lock when a connection goes idle or is closed. */
	pthread_cond_t	 freed;
	struct ca_conn	*idle;		/* most recently used first */
	unsigned	 nconn;		/* open or being opened: idle + busy */
	unsigned	 nconn_peak;	/* highest nconn seen */
	uint64_t	 connects;	/* connections opened */
	uint64_t	 reuses;	/* probes on a kept connection */
	uint64_t	 waits_failed;	/* callers refused a slot in time */
};

struct ca_domain {
	char		 name[RG_DOMAIN_MAX + 1];
	uint64_t	 checked_ms;	/* last conclusive check; 0 = never */
	bool		 accept_all;
	bool		 busy;		/* a check is running */
};

struct ca {
	char		 name[RG_NAME_MAX];
	size_t		 nhosts;
	struct ca_host	 hosts[CA_MAX_HOSTS];
	char		 helo[CA_HOST_MAX + 1];
	char		 mail_from[257];	/* no <>; "" = null sender */
	uint64_t	 timeout_ms;
	uint64_t	 idle_ms;		/* 0 = no reuse */
	uint64_t	 accept_all_ms;		/* 0 = no accept-all check */
	unsigned	 max_conn;
	struct rg_list	 check_domains;		/* for check(); owned */

	/* Guards doms and ndoms. */
	pthread_mutex_t	 dom_lock;
	struct ca_domain *doms;
	size_t		 ndoms;

	/* Guards reap_started and reap_stop; reap_cond wakes the reaper. */
	pthread_mutex_t	 reap_lock;
	pthread_cond_t	 reap_cond;
	bool		 reap_started, reap_stop;
	pthread_t	 reaper;

	atomic_uint_fast64_t probes, found, notfound, tempfail;
};

/* ---- helpers ---- */

static uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* The deadline of one step: the timeout, within the query's deadline. */
static uint64_t
step_deadline(const struct ca *ca, uint64_t q_deadline)
{
	return min_u64(rg_now_ms() + ca->timeout_ms, q_deadline);
}

/* "550 5.1.1 text" for logs, the server's words escaped (\xNN). */
static void
fmt_reply(const struct rg_smtp_reply *r, char *buf, size_t len)
{
	char	text[RG_SMTP_TEXT_MAX * 4 + 1];

	rg_log_escape(text, sizeof(text), r->text);
	if (r->enh[0] != 0)
		snprintf(buf, len, "%d %d.%d.%d %s", r->code, r->enh[0],
		    r->enh[1], r->enh[2], text);
	else
		snprintf(buf, len, "%d %s", r->code, text);
}

static void
trace_set(const struct rg_query *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
trace_set(const struct rg_query *q, const char *fmt, ...)
{
	va_list	ap;

	if (q->trace == NULL || q->tracelen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(q->trace, q->tracelen, fmt, ap);
	va_end(ap);
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

/* Wait on c until the rg_now_ms() deadline: 0 signalled, ETIMEDOUT. */
static int
cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, uint64_t deadline_ms)
{
	struct timespec	ts;
	uint64_t	left = rg_ms_left(deadline_ms);

	if (left == 0)
		return ETIMEDOUT;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(left / 1000);
	ts.tv_nsec += (long)(left % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_cond_timedwait(c, m, &ts);
}

/* ---- configuration ---- */

static const char *const ca_keys[] = {
	"hosts", "port", "helo", "mail_from", "timeout", "max_connections",
	"idle_timeout", "accept_all_check", "starttls", "check_domains", NULL
};

/* A host name or address literal: letters, digits, '.', '-', ':', '_'. */
static bool
host_ok(const char *s, size_t len)
{
	if (len == 0 || len > CA_HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char	c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		    c == ':' || c == '_'))
			return false;
	}
	return true;
}

static bool
port_ok(const char *s, size_t len, char out[8])
{
	uint64_t	v;
	char		tmp[8];

	if (len == 0 || len > 5)
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (rg_parse_uint(tmp, 65535, &v) != 0 || v == 0)
		return false;
	snprintf(out, 8, "%u", (unsigned)v);
	return true;
}

/*
 * Split one hosts entry: "host", "host:port", "[v6]", "[v6]:port", or a
 * bare IPv6 literal (two or more colons). 0 or -1 with err set.
 */
static int
parse_host(const struct rg_section *sec, const char *ent, const char *defport,
    struct ca_host *h, struct rg_error *err)
{
	const char	*host = ent, *port = NULL, *p;
	size_t		 hlen;

	if (ent[0] == '[') {
		if ((p = strchr(ent, ']')) == NULL)
			goto bad;
		host = ent + 1;
		hlen = (size_t)(p - host);
		if (p[1] == ':')
			port = p + 2;
		else if (p[1] != '\0')
			goto bad;
		if (memchr(host, ':', hlen) == NULL)
			goto bad;
	} else if ((p = strchr(ent, ':')) != NULL &&
	    strchr(p + 1, ':') == NULL) {
		hlen = (size_t)(p - ent);
		port = p + 1;
	} else
		hlen = strlen(ent);
	if (!host_ok(host, hlen))
		goto bad;
	if (port == NULL)
		port = defport;
	if (!port_ok(port, strlen(port), h->port))
		goto bad;
	memcpy(h->host, host, hlen);
	h->host[hlen] = '\0';
	snprintf(h->label, sizeof(h->label), strchr(h->host, ':') != NULL ?
	    "[%s]:%s" : "%s:%s", h->host, h->port);
	return 0;
bad:
	rg_section_error(sec, "hosts", err, "'%s' is not host, host:port, "
	    "[ipv6] or [ipv6]:port", ent);
	return -1;
}

static int
parse_keys(struct ca *ca, const struct rg_section *sec, struct rg_error *err)
{
	struct rg_list	 hosts = { 0, NULL };
	const char	*s, *port;
	uint64_t	 v;
	char		 defport[8];
	int		 rc = -1;

	if (rg_section_check_keys(sec, ca_keys, err) != 0)
		return -1;

	if (rg_section_string(sec, "starttls", "off", &s, err) != 0)
		return -1;
	if (strcmp(s, "off") != 0 && strcmp(s, "no") != 0) {
		rg_section_error(sec, "starttls", err, "'%s': STARTTLS is not "
		    "built into this rcptgate (no TLS library); use off", s);
		return -1;
	}

	if (rg_section_string(sec, "port", "25", &port, err) != 0)
		return -1;
	if (!port_ok(port, strlen(port), defport)) {
		rg_section_error(sec, "port", err, "'%s' is not a port", port);
		return -1;
	}
	if (rg_section_list(sec, "hosts", &hosts, err) != 0)
		return -1;
	if (hosts.n == 0) {
		rg_section_error(sec, "hosts", err, "required: the internal "
		    "server(s) to probe");
		goto out;
	}
	if (hosts.n > CA_MAX_HOSTS) {
		rg_section_error(sec, "hosts", err, "at most %d hosts",
		    CA_MAX_HOSTS);
		goto out;
	}
	for (size_t i = 0; i < hosts.n; i++)
		if (parse_host(sec, hosts.v[i], defport, &ca->hosts[i], err)
		    != 0)
			goto out;
	ca->nhosts = hosts.n;

	/*
	 * helo defaults to the system's host name, like Postfix's
	 * myhostname, but only a fully qualified one: internal servers
	 * commonly refuse a bare name, and a wrong guess fails every probe.
	 */
	if (rg_section_string(sec, "helo", NULL, &s, err) != 0)
		goto out;
	if (s == NULL) {
		if (gethostname(ca->helo, sizeof(ca->helo)) != 0 ||
		    memchr(ca->helo, '\0', sizeof(ca->helo)) == NULL ||
		    strchr(ca->helo, '.') == NULL) {
			ca->helo[sizeof(ca->helo) - 1] = '\0';
			rg_section_error(sec, "helo", err, "not set, and the "
			    "host name '%s' is not fully qualified; set helo",
			    ca->helo);
			goto out;
		}
	} else if ((!host_ok(s, strlen(s)) && !(s[0] == '[' &&
	    s[strlen(s) - 1] == ']' && host_ok(s + 1, strlen(s) - 2)))) {
		rg_section_error(sec, "helo", err, "'%s' is not a host name "
		    "or [address literal]", s);
		goto out;
	} else
		snprintf(ca->helo, sizeof(ca->helo), "%s", s);

	if (rg_section_string(sec, "mail_from", "<>", &s, err) != 0)
		goto out;
	{
		size_t	len = strlen(s);

		if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
			s++;
			len -= 2;
		}
		if (len >= sizeof(ca->mail_from) || !rg_smtp_path_ok(s, len) ||
		    (len > 0 && memchr(s, '@', len) == NULL)) {
			rg_section_error(sec, "mail_from", err, "'%s' is not "
			    "<> or an address", s);
			goto out;
		}
		memcpy(ca->mail_from, s, len);
		ca->mail_from[len] = '\0';
	}

	/* 3s: two hosts' worth stays within the default 8s deadline, so
	 * the defaults pass `rcptgate -n` without a warning. */
	if (rg_section_duration(sec, "timeout", CA_DEFAULT_TIMEOUT_MS,
	    &ca->timeout_ms, err) != 0)
		goto out;
	if (ca->timeout_ms == 0) {
		rg_section_error(sec, "timeout", err, "must be more than 0");
		goto out;
	}
	if (rg_section_uint(sec, "max_connections", 4, CA_MAX_CONNECTIONS,
	    &v, err) != 0)
		goto out;
	if (v == 0) {
		rg_section_error(sec, "max_connections", err,
		    "must be 1..%d", CA_MAX_CONNECTIONS);
		goto out;
	}
	ca->max_conn = (unsigned)v;
	if (rg_section_duration(sec, "idle_timeout", 30000, &ca->idle_ms,
	    err) != 0)
		goto out;
	if (rg_section_duration(sec, "accept_all_check", 3600000,
	    &ca->accept_all_ms, err) != 0)
		goto out;
	if (rg_section_list(sec, "check_domains", &ca->check_domains,
	    err) != 0)
		goto out;
	for (size_t i = 0; i < ca->check_domains.n; i++) {
		const char	*d = ca->check_domains.v[i];

		if (!host_ok(d, strlen(d)) || strchr(d, ':') != NULL) {
			rg_section_error(sec, "check_domains", err,
			    "'%s' is not a domain", d);
			goto out;
		}
	}
	rc = 0;
out:
	rg_list_free(&hosts);
	return rc;
}

/* ---- the connection pool ---- */

/* Detach the idle connections unused for idle_ms; caller holds h->lock. */
static struct ca_conn *
detach_expired(struct ca *ca, struct ca_host *h, uint64_t now)
{
	struct ca_conn	**pp = &h->idle, *dead = NULL, *c;

	while ((c = *pp) != NULL) {
		if (now - c->last_used_ms >= ca->idle_ms) {
			*pp = c->next;
			c->next = dead;
			dead = c;
			h->nconn--;
		} else
			pp = &c->next;
	}
	if (dead != NULL)
		pthread_cond_broadcast(&h->freed);
	return dead;
}

/* Close a detached list with QUIT; no lock held (it writes). */
static void
close_list(struct ca_conn *c)
{
	while (c != NULL) {
		struct ca_conn	*next = c->next;

		rg_smtp_close(c->smtp, true);
		free(c);
		c = next;
	}
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
		for (size_t i = 0; i < ca->nhosts; i++) {
			struct ca_host	*h = &ca->hosts[i];
			struct ca_conn	*dead;

			pthread_mutex_lock(&h->lock);
			dead = detach_expired(ca, h, rg_now_ms());
			pthread_mutex_unlock(&h->lock);
			close_list(dead);
		}
		pthread_mutex_lock(&ca->reap_lock);
	}
	pthread_mutex_unlock(&ca->reap_lock);
	return NULL;
}

/*
 * Start the reaper at the first kept connection, not at open(): open()
 * may run before the daemon forks, which would lose the thread.
 */
static void
reaper_ensure(struct ca *ca)
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

/*
 * Open a connection, read the 220 greeting, say EHLO (HELO after a 5xx).
 * Returns the connection, or NULL with err saying which step failed.
 */
static struct ca_conn *
conn_open(struct ca *ca, struct ca_host *h, uint64_t q_deadline,
    struct rg_error *err)
{
	struct rg_smtp_conn	*s;
	struct rg_smtp_reply	 r;
	struct ca_conn		*c;
	char			 cmd[CA_HOST_MAX + 8];
	char			 rbuf[RG_SMTP_TEXT_MAX * 4 + 32];
	struct rg_error		 e;
	bool			 utf8;

	if (rg_smtp_connect(h->host, h->port, step_deadline(ca, q_deadline),
	    &s, &e) != RG_SMTP_OK) {
		rg_error_set(err, "%s: %s", h->label, e.msg);
		return NULL;
	}
	if (rg_smtp_read_reply(s, step_deadline(ca, q_deadline), &r, &e) !=
	    RG_SMTP_OK) {
		rg_error_set(err, "%s: greeting: %s", h->label, e.msg);
		goto fail;
	}
	if (r.code != 220) {
		fmt_reply(&r, rbuf, sizeof(rbuf));
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
		fmt_reply(&r, rbuf, sizeof(rbuf));
		rg_error_set(err, "%s: %.4s refused: %s", h->label, cmd, rbuf);
		goto fail;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		rg_error_set(err, "%s: out of memory", h->label);
		goto fail;
	}
	c->smtp = s;
	c->smtputf8 = utf8;
	pthread_mutex_lock(&h->lock);
	h->connects++;
	pthread_mutex_unlock(&h->lock);
	return c;
fail:
	rg_smtp_close(s, true);
	return NULL;
}

/*
 * Take a connection for one probe: a kept one if any (*reused = true),
 * else a new one if fewer than max_connections exist, else wait for one
 * until the step deadline. NULL with err set if none could be had.
 */
static struct ca_conn *
conn_get(struct ca *ca, struct ca_host *h, uint64_t q_deadline, bool *reused,
    struct rg_error *err)
{
	uint64_t	 wait_until = step_deadline(ca, q_deadline);
	struct ca_conn	*c = NULL, *dead;

	*reused = false;
	pthread_mutex_lock(&h->lock);
	for (;;) {
		dead = ca->idle_ms > 0 ? detach_expired(ca, h, rg_now_ms()) :
		    NULL;
		if (dead != NULL) {
			/* QUIT writes: never under the lock. */
			pthread_mutex_unlock(&h->lock);
			close_list(dead);
			pthread_mutex_lock(&h->lock);
			continue;
		}
		if ((c = h->idle) != NULL) {
			h->idle = c->next;
			h->reuses++;
			*reused = true;
			break;
		}
		if (h->nconn < ca->max_conn) {
			/* Reserve the slot; connect unlocked. */
			if (++h->nconn > h->nconn_peak)
				h->nconn_peak = h->nconn;
			break;
		}
		if (cond_wait_until(&h->freed, &h->lock, wait_until) ==
		    ETIMEDOUT && h->idle == NULL && h->nconn >= ca->max_conn) {
			h->waits_failed++;
			pthread_mutex_unlock(&h->lock);
			rg_error_set(err, "%s: all %u connections busy "
			    "(max_connections)", h->label, ca->max_conn);
			return NULL;
		}
	}
	pthread_mutex_unlock(&h->lock);
	if (c != NULL)
		return c;
	if ((c = conn_open(ca, h, q_deadline, err)) == NULL) {
		pthread_mutex_lock(&h->lock);
		h->nconn--;
		pthread_cond_signal(&h->freed);
		pthread_mutex_unlock(&h->lock);
	}
	return c;
}

/*
 * Return a connection: kept (after a good RSET) or closed with QUIT. A
 * closed one gives its slot back only once closed, so the internal
 * server never sees more than max_connections at once.
 */
static void
conn_put(struct ca *ca, struct ca_host *h, struct ca_conn *c, bool keep)
{
	if (!keep || ca->idle_ms == 0) {
		rg_smtp_close(c->smtp, true);
		free(c);
		pthread_mutex_lock(&h->lock);
		h->nconn--;
		pthread_cond_signal(&h->freed);
		pthread_mutex_unlock(&h->lock);
		return;
	}
	pthread_mutex_lock(&h->lock);
	c->last_used_ms = rg_now_ms();
	c->next = h->idle;
	h->idle = c;
	pthread_cond_signal(&h->freed);
	pthread_mutex_unlock(&h->lock);
	reaper_ensure(ca);
}

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
		trace_set(q, "%s does not offer SMTPUTF8: a UTF-8 address "
		    "is not asked, it passes", h->label);
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
		return RG_TEMPFAIL;
	}
	if (r.code / 100 != 2) {
		fmt_reply(&r, rbuf, sizeof(rbuf));
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
		return RG_TEMPFAIL;
	}
	res = classify_rcpt(&r);
	fmt_reply(&r, rbuf, sizeof(rbuf));
	if (res != RG_FOUND)
		rg_error_set(err, "%s: RCPT TO answered %s", h->label, rbuf);
	trace_set(q, "%s%s answered %s", h->label, reused ?
	    " (kept connection)" : "", rbuf);
	if (r.code == 421)
		return res;		/* the server is closing: do not keep */
	if (ca->idle_ms == 0)
		return res;		/* no reuse: close with QUIT */
	st = rg_smtp_command(c->smtp, "RSET", NULL,
	    step_deadline(ca, q->deadline_ms), &r, &e);
	*keep = st == RG_SMTP_OK && r.code / 100 == 2;
	return res;
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
		rg_smtp_close(c->smtp, false);
		free(c);
		/* Keep the slot: the new connection replaces the dead one. */
		if ((c = conn_open(ca, h, q->deadline_ms, err)) == NULL) {
			pthread_mutex_lock(&h->lock);
			h->nconn--;
			pthread_cond_signal(&h->freed);
			pthread_mutex_unlock(&h->lock);
			return RG_TEMPFAIL;
		}
		res = transact(ca, h, c, false, q, aa_addr, aa_res, &keep,
		    &dead, err);
	}
	conn_put(ca, h, c, keep);
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

static void
ca_free(struct ca *ca)
{
	if (ca == NULL)
		return;
	pthread_mutex_lock(&ca->reap_lock);
	ca->reap_stop = true;
	pthread_cond_broadcast(&ca->reap_cond);
	pthread_mutex_unlock(&ca->reap_lock);
	if (ca->reap_started)
		pthread_join(ca->reaper, NULL);
	for (size_t i = 0; i < CA_MAX_HOSTS; i++) {
		close_list(ca->hosts[i].idle);
		pthread_mutex_destroy(&ca->hosts[i].lock);
		pthread_cond_destroy(&ca->hosts[i].freed);
	}
	rg_list_free(&ca->check_domains);
	pthread_mutex_destroy(&ca->dom_lock);
	pthread_mutex_destroy(&ca->reap_lock);
	pthread_cond_destroy(&ca->reap_cond);
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
	pthread_mutex_init(&ca->reap_lock, NULL);
	if (cond_init_monotonic(&ca->reap_cond) != 0) {
		rg_error_set(err, "backend %s: pthread_cond_init failed",
		    sec->name);
		pthread_mutex_destroy(&ca->dom_lock);
		pthread_mutex_destroy(&ca->reap_lock);
		free(ca);
		return -2;
	}
	for (size_t i = 0; i < CA_MAX_HOSTS; i++) {
		pthread_mutex_init(&ca->hosts[i].lock, NULL);
		cond_init_monotonic(&ca->hosts[i].freed);
	}
	if (parse_keys(ca, sec, err) != 0) {
		ca_free(ca);
		return -1;
	}
	if ((ca->doms = calloc(CA_MAX_DOMAINS, sizeof(*ca->doms))) == NULL) {
		rg_error_set(err, "backend %s: out of memory", sec->name);
		ca_free(ca);
		return -2;
	}
	b->priv = ca;
	return 0;
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
		trace_set(q, "catch-all key not probed (SMTP cannot ask)");
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
	for (size_t i = 0; i < ca->nhosts; i++) {
		struct ca_host		*h = &ca->hosts[i];
		uint64_t		 deadline = rg_now_ms() +
		    ca->timeout_ms * 4;
		struct ca_conn		*c = conn_open(ca, h, deadline, err);
		struct rg_smtp_reply	 r;
		struct rg_error		 e;
		bool			 good = true;

		rg_error_clear(&e);
		if (c == NULL) {
			rg_error_append(warn, "backend %s: %s", ca->name,
			    err->msg);
			continue;
		}
		if (rg_smtp_command(c->smtp, "MAIL FROM:", ca->mail_from,
		    step_deadline(ca, deadline), &r, &e) != RG_SMTP_OK ||
		    r.code / 100 != 2) {
			rg_error_append(warn, "backend %s: %s: MAIL FROM:<%s> "
			    "failed: %s", ca->name, h->label, ca->mail_from,
			    e.count ? e.msg : r.text);
			good = false;
		}
		for (size_t j = 0; good && j < doms.n; j++) {
			char	probe[RG_DOMAIN_MAX + 40];

			random_probe(probe, sizeof(probe), doms.v[j]);
			rg_error_clear(&e);
			if (rg_smtp_command(c->smtp, "RCPT TO:", probe,
			    step_deadline(ca, deadline), &r, &e) !=
			    RG_SMTP_OK) {
				rg_error_append(warn, "backend %s: %s: %s",
				    ca->name, h->label, e.msg);
				good = false;
			} else if (classify_rcpt(&r) == RG_FOUND)
				rg_error_append(warn, "backend %s: %s accepts "
				    "<%s>, an address that cannot exist: "
				    "call-ahead cannot tell users of %s apart",
				    ca->name, h->label, probe, doms.v[j]);
		}
		rg_smtp_close(c->smtp, true);
		free(c);
		if (good)
			ok++;
	}
	if (doms.n == 0)
		rg_error_append(warn, "backend %s: accept-all not checked: no "
		    "domain (set check_domains)", ca->name);
	pthread_mutex_lock(&ca->dom_lock);
	for (size_t i = 0; i < ca->ndoms; i++)
		if (ca->doms[i].accept_all)
			rg_error_append(warn, "backend %s: %s was seen to "
			    "accept every recipient", ca->name,
			    ca->doms[i].name);
	pthread_mutex_unlock(&ca->dom_lock);
	if (ok == 0)
		rg_error_append(warn, "backend %s: INTERNAL SERVER UNUSABLE "
		    "NOW: no host answered a probe. rcptgate starts anyway: "
		    "recipients it checks with this backend get 451 4.4.3 "
		    "(cached positives still pass) until one answers",
		    ca->name);
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
	struct ca	*ca = b->priv;
	uint64_t	 connects = 0, reuses = 0, busy = 0;
	unsigned	 open = 0, peak = 0;
	int		 n;

	for (size_t i = 0; i < ca->nhosts; i++) {
		struct ca_host	*h = &ca->hosts[i];

		pthread_mutex_lock(&h->lock);
		connects += h->connects;
		reuses += h->reuses;
		busy += h->waits_failed;
		open += h->nconn;
		peak = h->nconn_peak > peak ? h->nconn_peak : peak;
		pthread_mutex_unlock(&h->lock);
	}
	n = snprintf(buf, len, "probes=%ju found=%ju notfound=%ju "
	    "tempfail=%ju connects=%ju reuses=%ju open=%u peak_per_host=%u "
	    "slot_timeouts=%ju",
	    (uintmax_t)atomic_load(&ca->probes),
	    (uintmax_t)atomic_load(&ca->found),
	    (uintmax_t)atomic_load(&ca->notfound),
	    (uintmax_t)atomic_load(&ca->tempfail), (uintmax_t)connects,
	    (uintmax_t)reuses, open, peak, (uintmax_t)busy);
	if (n < 0 || (size_t)n >= len)
		snprintf(buf, len, "stats truncated");
}

const struct rg_backend_ops rg_backend_callahead_ops = {
	.type = "callahead",
	.open = ca_open,
	.lookup = ca_lookup,
	.close = ca_close,
	.check = ca_check,
	.worst_case_ms = ca_worst_case_ms,
	.stats = ca_stats,
};
