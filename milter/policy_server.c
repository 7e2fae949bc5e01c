/* SPDX-License-Identifier: MIT */
/*
 * The Postfix policy door (see policy_server.h): the listener, one
 * thread per connection, and the translation of a request into one
 * rg_decide and of the verdict into one "action=" line.
 *
 * A connection holds a runtime reference and swaps it for the current
 * one when rg_engine_generation says a reload happened, so the
 * per-request path takes no global lock. Per-session harvest state lives
 * in a table keyed by the SMTP session (harvest_sessions.h): Postfix may
 * reopen its policy connection in the middle of a session, and one
 * connection serves many sessions.
 *
 * Junk (a line without '=', a NUL, a request over RG_PF_REQUEST_MAX,
 * half a request and then silence) closes that connection with one log
 * line; nothing else is affected.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harvest_sessions.h"
#include "log.h"
#include "opstats.h"
#include "policy_request.h"
#include "policy_server.h"
#include "rg_time.h"

#define CONN_STACK	(512 * 1024)
#define SESSIONS_MAX	100000		/* per-session states kept */
#define SESSION_IDLE_MS	(330 * 1000)	/* > smtpd_timeout (300s) */
#define REPLY_MAX	(RG_REPLY_LINE_MAX + 32)
#define DUNNO		"action=DUNNO\n\n"

static struct {
	int			 fd;		/* listening; -1 = off */
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct rg_engine	*engine;
	struct rg_hv_sessions	*sessions;
	_Atomic uint64_t	 active;
	_Atomic uint64_t	 limit_warned_ms;
} pf = { .fd = -1 };

struct pf_conn {
	int			 fd;
	struct rg_runtime	*rt;
	uint64_t		 generation;	/* of rt */
	char			 peer[64];	/* for log lines */
	uint64_t		 req_deadline;	/* a begun request's, or 0 */
	size_t			 len;
	char			 buf[RG_PF_REQUEST_MAX];
};

/* ---- one request ---- */

/* The client as the request describes it. */
static void
client_from(const struct rg_pf_request *r, struct rg_client *cl)
{
	memset(cl, 0, sizeof(*cl));
	cl->reply_form = RG_REPLY_POLICY;
	cl->authenticated = r->sasl_username != NULL &&
	    r->sasl_username[0] != '\0';
	cl->queue_id = r->queue_id;
	(void)rg_client_set_addr(cl, r->client_address);
}

/* The runtime of the latest reload, taken only when there was one. */
static struct rg_runtime *
conn_runtime(struct pf_conn *c)
{
	uint64_t	g = rg_engine_generation(pf.engine);

	if (c->rt == NULL || g != c->generation) {
		rg_runtime_unref(c->rt);
		c->generation = g;
		c->rt = rg_engine_acquire(pf.engine);
	}
	return c->rt;
}

/* Decide the recipient of an RCPT request; the reply into out. */
static void
decide_rcpt(struct pf_conn *c, const struct rg_pf_request *r, char *out,
    size_t outlen)
{
	struct rg_client	 cl;
	struct rg_verdict	 v;
	char			 key[256], rcpt[RG_PATH_MAX * 2 + 8];
	bool			 keyed, was_clean;

	client_from(r, &cl);
	keyed = rg_pf_session_key(r, key, sizeof(key));
	if (keyed)
		rg_hv_sessions_get(pf.sessions, key, &cl.harvest, rg_now_ms());
	was_clean = cl.harvest.unknown == 0 && !cl.harvest.blocked &&
	    cl.harvest.shared_ok_until == 0;
	/* Too long to quote again: the decision refuses it as too long. */
	if (r->recipient == NULL ||
	    !rg_pf_recipient_external(r->recipient, rcpt, sizeof(rcpt)))
		(void)snprintf(rcpt, sizeof(rcpt), "%s",
		    r->recipient != NULL ? r->recipient : "");
	rg_decide(pf.engine, conn_runtime(c), &cl, rcpt, false, &v);
	/* Sessions with nothing to remember cost no table entry. */
	if (keyed && !(was_clean && cl.harvest.unknown == 0 &&
	    !cl.harvest.blocked && cl.harvest.shared_ok_until == 0))
		rg_hv_sessions_put(pf.sessions, key, &cl.harvest, rg_now_ms());
	rg_verdict_log(&cl, &v);
	rg_opstats_decision(rg_action_word(v.action), v.decided_by);
	if (v.delay_ms > 0) {
		rg_sleep_ms(v.delay_ms);	/* tarpit; no lock is held */
		rg_tarpit_done(pf.engine);
	}
	if (v.action == RG_ACT_CONTINUE)
		memcpy(out, DUNNO, sizeof(DUNNO));
	else
		(void)snprintf(out, outlen, "action=%s %s %s\n\n",
		    v.reply.rcode, v.reply.xcode, v.reply.text);
}

/* Write all of s; false when the peer is gone. */
static bool
send_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t	n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		s += n;
		len -= (size_t)n;
	}
	return true;
}

static void
close_log(const struct pf_conn *c, const char *why)
{
	atomic_fetch_add(&rg_opstats_policy_protocol_errors, 1);
	rg_warnx("policy: closing connection from %s: %s", c->peer, why);
}

/* Answer the complete request buf[0..end). false: close the connection. */
static bool
answer(struct pf_conn *c, size_t end)
{
	struct rg_pf_request	 r;
	char			 why[128], out[REPLY_MAX];

	if (rg_pf_request_parse(c->buf, end, &r, why, sizeof(why)) == -1) {
		close_log(c, why);
		return false;
	}
	atomic_fetch_add(&rg_opstats_policy_requests, 1);
	if (r.protocol_state != NULL && strcmp(r.protocol_state, "RCPT") == 0)
		decide_rcpt(c, &r, out, sizeof(out));
	else
		memcpy(out, DUNNO, sizeof(DUNNO));
	return send_all(c->fd, out, strlen(out));
}

/* ---- one connection ---- */

/*
 * Wait for more bytes: up to idle_timeout between requests; a request
 * that has begun must be whole within request_timeout of its first
 * bytes, however slowly they trickle in. >0 bytes read, 0 the peer
 * closed or the wait ran out (logged), -1 error.
 *
 * poll, then recv. A blocking recv with SO_RCVTIMEO saves the poll
 * call but measured dearer behind a real Postfix: 1.2-1.5 times
 * rcptgate's CPU per message (docs/performance.md, the policy door).
 */
static ssize_t
read_more(struct pf_conn *c, const struct rg_conf *conf)
{
	struct pollfd	p = { .fd = c->fd, .events = POLLIN };
	uint64_t	wait = conf->policy_idle_timeout_ms;
	ssize_t		n;
	int		r;
	char		why[96];

	if (c->len > 0 && (wait = rg_ms_left(c->req_deadline)) == 0)
		wait = 1;
	do
		r = poll(&p, 1, (int)wait);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r > 0) {
		do
			n = recv(c->fd, c->buf + c->len,
			    sizeof(c->buf) - c->len, 0);
		while (n < 0 && errno == EINTR);
		return n;	/* 0: Postfix closed it, the normal end */
	}
	if (c->len > 0) {
		(void)snprintf(why, sizeof(why), "request incomplete after "
		    "%llus", (unsigned long long)
		    conf->policy_request_timeout_ms / 1000);
		close_log(c, why);
	} else
		rg_debug("policy: closing idle connection from %s", c->peer);
	return 0;
}

/* Read and answer requests until the peer leaves or misbehaves. */
static void
serve(struct pf_conn *c)
{
	const struct rg_conf	*conf;
	size_t			 end;
	ssize_t			 n;

	for (;;) {
		conf = conn_runtime(c)->conf;
		if ((n = read_more(c, conf)) <= 0)
			return;
		c->len += (size_t)n;
		while ((end = rg_pf_request_end(c->buf, c->len)) > 0) {
			if (!answer(c, end))
				return;
			memmove(c->buf, c->buf + end, c->len - end);
			c->len -= end;
			c->req_deadline = 0;
		}
		if (c->len == sizeof(c->buf)) {
			close_log(c, "request over 16384 bytes");
			return;
		}
		if (c->len > 0 && c->req_deadline == 0)
			c->req_deadline = rg_now_ms() +
			    conf->policy_request_timeout_ms;
	}
}

static void *
conn_thread(void *arg)
{
	struct pf_conn	*c = arg;

	serve(c);
	(void)close(c->fd);
	rg_runtime_unref(c->rt);
	free(c);
	atomic_fetch_sub(&pf.active, 1);
	atomic_fetch_sub(&rg_opstats_policy_active, 1);
	return NULL;
}

static void
peer_name(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof(ss);
	char			host[INET6_ADDRSTRLEN] = "?";

	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    ss.ss_family == AF_UNIX) {
		(void)snprintf(out, outlen, "the unix socket");
		return;
	}
	if (ss.ss_family == AF_INET6)
		(void)inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
		    host, sizeof(host));
	else
		(void)inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
		    host, sizeof(host));
	(void)snprintf(out, outlen, "[%s]:%u", host, ntohs(ss.ss_family ==
	    AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port));
}

/* Over max_connections: say so at most once a minute. */
static void
refuse(int fd, uint64_t max)
{
	uint64_t	now = rg_now_ms(), last = atomic_load(&pf.limit_warned_ms);

	(void)close(fd);
	if ((last == 0 || now - last >= 60000) &&
	    atomic_compare_exchange_strong(&pf.limit_warned_ms, &last, now))
		rg_warnx("policy: %llu connections open, the limit of "
		    "[postfix_policy] max_connections; closing a new one "
		    "(Postfix answers its smtpd_policy_service_default_action)",
		    (unsigned long long)max);
}

static void
start_conn(int fd, const pthread_attr_t *attr)
{
	struct pf_conn	*c;
	pthread_t	 tid;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		(void)close(fd);
		return;
	}
	/* the limit of the latest reload */
	(void)conn_runtime(c);
	if (atomic_load(&pf.active) >= c->rt->conf->policy_max_connections) {
		refuse(fd, c->rt->conf->policy_max_connections);
		rg_runtime_unref(c->rt);
		free(c);
		return;
	}
	c->fd = fd;
	peer_name(fd, c->peer, sizeof(c->peer));
	atomic_fetch_add(&pf.active, 1);
	atomic_fetch_add(&rg_opstats_policy_active, 1);
	atomic_fetch_add(&rg_opstats_policy_connections, 1);
	if (pthread_create(&tid, attr, conn_thread, c) != 0) {
		rg_warnx("policy: cannot start a thread for %s; closing it",
		    c->peer);
		atomic_fetch_sub(&pf.active, 1);
		atomic_fetch_sub(&rg_opstats_policy_active, 1);
		(void)close(fd);
		rg_runtime_unref(c->rt);
		free(c);
	}
}

static void *
accept_thread(void *arg)
{
	pthread_attr_t	attr;
	uint64_t	warned = 0;
	int		fd;

	(void)arg;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, CONN_STACK);
	for (;;) {
		fd = accept4(pf.fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			start_conn(fd, &attr);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EBADF || errno == EINVAL)
			break;	/* rg_pf_stop closed the socket */
		/* EMFILE and friends: wait rather than spin, say it once a
		 * minute */
		if (rg_now_ms() - warned >= 60000 || warned == 0) {
			rg_warn("policy: accept");
			warned = rg_now_ms();
		}
		rg_sleep_ms(100);
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

/* ---- the listening socket ---- */

static int
listen_unix(const char *path, const struct rg_conf *c, bool change_user,
    uid_t uid, gid_t gid, struct rg_error *err)
{
	struct sockaddr_un	sun = { .sun_family = AF_UNIX };
	int			fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		rg_error_set(err, "[postfix_policy] socket path too long: %s",
		    path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	(void)snprintf(pf.path, sizeof(pf.path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || (unlink(path) != 0 && errno != ENOENT) ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		rg_error_set(err, "cannot listen on unix:%s: %s", path,
		    strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		pf.path[0] = '\0';
		return -1;
	}
	/* Postfix reaches the socket through the group (README). */
	if (change_user && chown(path, uid, gid) != 0)
		rg_warn("chown %s", path);
	if (chmod(path, c->socket_mode) != 0)
		rg_warn("chmod %s", path);
	return fd;
}

/* "PORT@HOST" or "PORT" (every address) of family af. */
static int
listen_inet(const char *spec, int af, struct rg_error *err)
{
	struct addrinfo	 hints = { .ai_family = af, .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res = NULL;
	char		 port[16];
	const char	*at = strchr(spec, '@');
	size_t		 plen = at != NULL ? (size_t)(at - spec) : strlen(spec);
	int		 fd = -1, one = 1, rc;

	(void)snprintf(port, sizeof(port), "%.*s", (int)plen, spec);
	if ((rc = getaddrinfo(at != NULL ? at + 1 : NULL, port, &hints,
	    &res)) != 0) {
		rg_error_set(err, "[postfix_policy] socket %s: %s", spec,
		    gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
		rg_error_set(err, "cannot listen on %s: %s", spec,
		    strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Enough descriptors for max_connections: raise the soft limit. */
static void
check_nofile(uint64_t conns)
{
	struct rlimit	rl;
	rlim_t		want = (rlim_t)conns + 256;	/* + milter, backends */

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max >= want ? want : rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		rg_warnx("policy: [postfix_policy] max_connections %llu needs "
		    "about %llu descriptors, the limit is %llu (LimitNOFILE "
		    "in the unit, ulimit -n)", (unsigned long long)conns,
		    (unsigned long long)want, (unsigned long long)rl.rlim_cur);
}

int
rg_pf_open(const struct rg_conf *c, bool change_user, uid_t uid, gid_t gid,
    struct rg_error *err)
{
	const char	*s = c->policy_socket;

	if (s[0] == '\0')
		return 0;
	if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0 ||
	    s[0] == '/')
		pf.fd = listen_unix(s[0] == '/' ? s : strchr(s, ':') + 1, c,
		    change_user, uid, gid, err);
	else if (strncmp(s, "inet6:", 6) == 0)
		pf.fd = listen_inet(s + 6, AF_INET6, err);
	else
		pf.fd = listen_inet(s + 5, AF_INET, err);
	/* Postfix starts many smtpd processes at once after a reload */
	if (pf.fd >= 0 && listen(pf.fd, SOMAXCONN) != 0) {
		rg_error_set(err, "cannot listen on %s: %s", s, strerror(errno));
		(void)close(pf.fd);
		pf.fd = -1;
	}
	if (pf.fd < 0)
		return -1;
	check_nofile(c->policy_max_connections);
	return 0;
}

int
rg_pf_start(struct rg_engine *e, struct rg_error *err)
{
	pthread_t	tid;

	if (pf.fd < 0)
		return 0;
	pf.engine = e;
	pf.sessions = rg_hv_sessions_new(SESSIONS_MAX, SESSION_IDLE_MS);
	if (pf.sessions == NULL ||
	    pthread_create(&tid, NULL, accept_thread, NULL) != 0) {
		rg_error_set(err, "cannot start the policy server");
		return -1;
	}
	pthread_detach(tid);
	return 0;
}

void
rg_pf_describe(const struct rg_conf *c, FILE *f)
{
	if (c->policy_socket[0] == '\0') {
		fprintf(f, "postfix_policy: off\n");
		return;
	}
	fprintf(f, "postfix_policy: socket=%s max_connections=%llu "
	    "idle_timeout=%llus request_timeout=%llus\n", c->policy_socket,
	    (unsigned long long)c->policy_max_connections,
	    (unsigned long long)c->policy_idle_timeout_ms / 1000,
	    (unsigned long long)c->policy_request_timeout_ms / 1000);
}

void
rg_pf_stop(void)
{
	if (pf.fd < 0)
		return;
	/* wakes accept(2) in the acceptor thread, which then leaves */
	(void)shutdown(pf.fd, SHUT_RDWR);
	if (pf.path[0] != '\0')
		(void)unlink(pf.path);
}
