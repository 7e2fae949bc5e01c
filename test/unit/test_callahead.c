/* SPDX-License-Identifier: MIT */
/*
 * The call-ahead driver against real SMTP servers on 127.0.0.1: a small
 * scripted server in this process (one thread per connection, so its
 * answers per address and its connection counts are exact), a listener
 * that never answers, and Postfix's smtp-sink (accept-all, slow answers).
 * Ports are picked by binding port 0; every wait is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend.h"
#include "conf.h"
#include "rg_time.h"

/* ---- a scripted SMTP server ---- */

struct srv {
	int		 lfd;
	int		 port;
	pthread_t	 thr;
	atomic_bool	 stop;
	/* behaviour */
	atomic_int	 greeting;	/* 220, or e.g. 554 */
	atomic_bool	 ehlo_5xx;	/* EHLO gets 502: client must HELO */
	atomic_bool	 mail_5xx;	/* MAIL answered 553 */
	atomic_bool	 accept_all;	/* every RCPT 250 */
	atomic_bool	 drop_after_rset;	/* close after answering RSET */
	atomic_bool	 smtputf8;	/* offer SMTPUTF8 in EHLO */
	atomic_int	 mails_utf8;	/* MAIL FROM:<...> SMTPUTF8 seen */
	atomic_int	 rcpt_delay_ms;
	/* what it saw */
	atomic_int	 connections;
	atomic_int	 active, max_active;
	atomic_int	 rcpts;
	atomic_int	 quits;
	atomic_int	 helos;
};

struct srv_conn {
	struct srv	*s;
	int		 fd;
};

static void
say(int fd, const char *text)
{
	size_t	len = strlen(text);

	while (len > 0) {
		ssize_t	n = send(fd, text, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		text += n;
		len -= (size_t)n;
	}
}

/* Read one line (without CRLF); -1 at EOF, error, or after 10 s. */
static int
read_line(int fd, char *buf, size_t len)
{
	size_t	o = 0;

	while (o + 1 < len) {
		struct pollfd	pfd = { .fd = fd, .events = POLLIN };
		char		c;

		if (poll(&pfd, 1, 10000) <= 0 || recv(fd, &c, 1, 0) != 1)
			return -1;
		if (c == '\n')
			break;
		if (c != '\r')
			buf[o++] = c;
	}
	buf[o] = '\0';
	return 0;
}

static bool
ascii(const char *p)
{
	for (; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			return false;
	return true;
}

static const char *
rcpt_answer(struct srv *s, const char *arg, bool utf8)
{
	/* As Postfix with strict_smtputf8 = yes. */
	if (!ascii(arg) && !utf8)
		return "553 5.6.7 <j\xc3\xb6rg@example.test>: Recipient "
		    "address rejected: Must declare SMTPUTF8 to send unicode "
		    "address\r\n";
	if (strncasecmp(arg, "<j\xc3\xb6rg@", 7) == 0)
		return "250 2.1.5 Ok\r\n";
	if (s->accept_all)
		return "250 2.1.5 Ok\r\n";
	if (strncasecmp(arg, "<alice@", 7) == 0 ||
	    strncasecmp(arg, "<bob@", 5) == 0)
		return "250 2.1.5 Ok\r\n";
	if (strncasecmp(arg, "<multi@", 7) == 0)
		return "250-first line\r\n250-second\r\n250 2.1.5 Ok\r\n";
	if (strncasecmp(arg, "<forward@", 9) == 0)
		return "251 2.1.5 will forward\r\n";
	if (strncasecmp(arg, "<tempuser@", 10) == 0)
		return "451 4.3.0 try again later\r\n";
	if (strncasecmp(arg, "<shutdown@", 10) == 0)
		return "421 4.3.2 shutting down\r\n";
	if (strncasecmp(arg, "<policy@", 8) == 0)
		return "550 5.7.1 relay access denied\r\n";
	if (strncasecmp(arg, "<full@", 6) == 0)
		return "552 5.2.2 mailbox full\r\n";
	if (strncasecmp(arg, "<odd@", 5) == 0)
		return "554 5.1.10 recipient not found\r\n";
	if (strncasecmp(arg, "<nocode@", 8) == 0)
		return "553 no such user\r\n";
	if (strncasecmp(arg, "<junk@", 6) == 0)
		return "hello there\r\n";
	if (strncasecmp(arg, "<mustutf8@", 10) == 0)
		return "553 5.6.7 Must declare SMTPUTF8 to send unicode "
		    "address\r\n";
	if (strncasecmp(arg, "<sender@", 8) == 0)
		return "550 5.1.8 <>: Sender address rejected: Domain not "
		    "found\r\n";
	if (strncasecmp(arg, "<bare554@", 9) == 0)
		return "554 transaction failed\r\n";
	return "550-5.1.1 <x>: Recipient address rejected:\r\n"
	    "550 5.1.1 User unknown in local recipient table\r\n";
}

static void *
srv_conn_main(void *arg)
{
	struct srv_conn	*c = arg;
	struct srv	*s = c->s;
	char		 line[1024], buf[64];
	int		 act = atomic_fetch_add(&s->active, 1) + 1;
	bool		 utf8 = false;

	for (int m = s->max_active; act > m;)
		if (atomic_compare_exchange_weak(&s->max_active, &m, act))
			break;
	atomic_fetch_add(&s->connections, 1);
	snprintf(buf, sizeof(buf), "%d test.example.test ESMTP\r\n",
	    s->greeting);
	say(c->fd, buf);
	while (s->greeting == 220 &&
	    read_line(c->fd, line, sizeof(line)) == 0) {
		if (strncasecmp(line, "EHLO ", 5) == 0)
			say(c->fd, s->ehlo_5xx ? "502 5.5.2 no EHLO here\r\n" :
			    s->smtputf8 ? "250-test.example.test\r\n"
			    "250-PIPELINING\r\n250-SMTPUTF8\r\n"
			    "250 8BITMIME\r\n" :
			    "250-test.example.test\r\n250-PIPELINING\r\n"
			    "250 8BITMIME\r\n");
		else if (strncasecmp(line, "HELO ", 5) == 0) {
			atomic_fetch_add(&s->helos, 1);
			say(c->fd, "250 test.example.test\r\n");
		} else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
			utf8 = strstr(line, "> SMTPUTF8") != NULL;
			if (utf8)
				atomic_fetch_add(&s->mails_utf8, 1);
			say(c->fd, s->mail_5xx ?
			    "553 5.7.1 sender refused\r\n" : "250 2.1.0 Ok\r\n");
		}
		else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
			atomic_fetch_add(&s->rcpts, 1);
			if (s->rcpt_delay_ms > 0)
				rg_sleep_ms((uint64_t)s->rcpt_delay_ms);
			say(c->fd, rcpt_answer(s, line + 8, utf8));
		} else if (strcasecmp(line, "RSET") == 0) {
			say(c->fd, "250 2.0.0 Ok\r\n");
			if (s->drop_after_rset)
				break;
		} else if (strcasecmp(line, "QUIT") == 0) {
			atomic_fetch_add(&s->quits, 1);
			say(c->fd, "221 2.0.0 Bye\r\n");
			break;
		} else
			say(c->fd, "502 5.5.2 Error: unknown command\r\n");
	}
	atomic_fetch_sub(&s->active, 1);
	close(c->fd);
	free(c);
	return NULL;
}

static void *
srv_main(void *arg)
{
	struct srv	*s = arg;

	while (!s->stop) {
		struct pollfd	 pfd = { .fd = s->lfd, .events = POLLIN };
		struct srv_conn	*c;
		pthread_t	 t;
		int		 fd;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((fd = accept(s->lfd, NULL, NULL)) < 0)
			continue;
		c = malloc(sizeof(*c));
		assert_non_null(c);
		c->s = s;
		c->fd = fd;
		if (pthread_create(&t, NULL, srv_conn_main, c) != 0) {
			close(fd);
			free(c);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

/* Bind 127.0.0.1:0 and listen; the port is read back into *port. */
static int
listen_any(int *port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	socklen_t		slen = sizeof(sin);
	int			fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 128), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static struct srv *
srv_start(void)
{
	struct srv	*s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->greeting = 220;
	s->lfd = listen_any(&s->port);
	assert_int_equal(pthread_create(&s->thr, NULL, srv_main, s), 0);
	return s;
}

static void
srv_stop(struct srv *s)
{
	s->stop = true;
	pthread_join(s->thr, NULL);
	close(s->lfd);
	/* Connection threads end when the client closes; wait, bounded. */
	for (int i = 0; i < 100 && s->active > 0; i++)
		rg_sleep_ms(20);
	if (s->active == 0)
		free(s);
}

/* Wait (bounded) until cond reads true. */
#define WAIT_FOR(cond, ms) do {						\
	for (int w_ = 0; w_ < (ms) / 10 && !(cond); w_++)		\
		rg_sleep_ms(10);					\
} while (0)

/* ---- sections and backends ---- */

#define MAX_KV	16

struct sec_buf {
	struct rg_section	sec;
	struct rg_kv		kv[MAX_KV];
	char			vals[MAX_KV][256];
};

/* Build a section from "key", "value", ... NULL. */
static void
sec_make(struct sec_buf *sb, ...)
{
	va_list		 ap;
	const char	*k;

	memset(sb, 0, sizeof(*sb));
	sb->sec.name = (char *)"ca";
	sb->sec.file = "test.conf";
	sb->sec.line = 1;
	sb->sec.kv = sb->kv;
	va_start(ap, sb);
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char	*v = va_arg(ap, const char *);
		size_t		 i = sb->sec.n++;

		assert_true(i < MAX_KV);
		snprintf(sb->vals[i], sizeof(sb->vals[i]), "%s", v);
		sb->kv[i].key = (char *)k;
		sb->kv[i].value = sb->vals[i];
		sb->kv[i].line = (int)i + 2;
	}
	va_end(ap);
}

static int
be_open(struct rg_backend *b, struct sec_buf *sb, struct rg_error *err)
{
	memset(b, 0, sizeof(*b));
	b->ops = &rg_backend_callahead_ops;
	snprintf(b->name, sizeof(b->name), "ca");
	rg_error_clear(err);
	return b->ops->open(b, &sb->sec, err);
}

static enum rg_result
be_lookup(struct rg_backend *b, const char *key, uint64_t budget_ms,
    struct rg_error *err)
{
	char		 local[300], trace[512] = "";
	const char	*at = strrchr(key, '@');
	struct rg_query	 q;

	assert_non_null(at);
	snprintf(local, sizeof(local), "%.*s", (int)(at - key), key);
	q.key = key;
	q.local = local;
	q.domain = at + 1;
	q.deadline_ms = rg_now_ms() + budget_ms;
	q.trace = trace;
	q.tracelen = sizeof(trace);
	rg_error_clear(err);
	return b->ops->lookup(b, &q, err);
}

static char *
hostport(int port)
{
	static char	buf[4][64];
	static int	n;
	char		*p = buf[n++ % 4];

	snprintf(p, 64, "127.0.0.1:%d", port);
	return p;
}

/* ---- tests ---- */

struct answer_case {
	const char	*key;
	enum rg_result	 want;
	int		 rcpts;		/* RCPTs the server should see */
};

static void
test_answers(void **state)
{
	static const struct answer_case	cases[] = {
		{ "alice@example.test", RG_FOUND, 1 },
		{ "bob@example.test", RG_FOUND, 1 },
		{ "multi@example.test", RG_FOUND, 1 },
		{ "forward@example.test", RG_FOUND, 1 },
		{ "nobody@example.test", RG_NOTFOUND, 1 },
		{ "nocode@example.test", RG_NOTFOUND, 1 },
		{ "odd@example.test", RG_NOTFOUND, 1 },	/* 554 5.1.10 */
		{ "tempuser@example.test", RG_TEMPFAIL, 1 },
		{ "shutdown@example.test", RG_TEMPFAIL, 1 },
		{ "policy@example.test", RG_TEMPFAIL, 1 },	/* 550 5.7.1 */
		{ "full@example.test", RG_TEMPFAIL, 1 },
		{ "junk@example.test", RG_TEMPFAIL, 1 },
		/* issue 12, point 6: only "no such user" is unknown */
		{ "mustutf8@example.test", RG_TEMPFAIL, 1 },	/* 553 5.6.7 */
		{ "sender@example.test", RG_TEMPFAIL, 1 },	/* 550 5.1.8 */
		{ "bare554@example.test", RG_TEMPFAIL, 1 },
		{ "@example.test", RG_NOTFOUND, 0 },		/* no I/O */
		{ "a\r\nRSET@example.test", RG_TEMPFAIL, 0 },	/* not sent */
		{ "a>b@example.test", RG_TEMPFAIL, 0 },
		{ "<a@example.test", RG_TEMPFAIL, 0 },
	};
	struct srv	*s = srv_start();
	struct sec_buf	 sb;
	struct rg_backend b;
	struct rg_error	 err;

	sec_make(&sb, "type", "callahead", "hosts", hostport(s->port),
	    "helo", "gw.example.test", "timeout", "2s",
	    "accept_all_check", "0", NULL);
	assert_int_equal(be_open(&b, &sb, &err), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int		before = s->rcpts;
		enum rg_result	got = be_lookup(&b, cases[i].key, 3000, &err);

		if (got != cases[i].want)
			fail_msg("%s: got %s want %s (%s)", cases[i].key,
			    rg_result_str(got), rg_result_str(cases[i].want),
			    err.msg);
		if (s->rcpts - before != cases[i].rcpts)
			fail_msg("%s: server saw %d RCPTs, want %d",
			    cases[i].key, s->rcpts - before, cases[i].rcpts);
		/* The internal reply is in err for the log, on failure. */
		if (got == RG_TEMPFAIL && cases[i].rcpts > 0 &&
		    strstr(err.msg, "127.0.0.1") == NULL)
			fail_msg("%s: err lacks the host: %s", cases[i].key,
			    err.msg);
	}
	/* 15 probes; the 421 and the junk reply each close the
	 * connection, so two more. */
	assert_int_equal(s->connections, 3);
	b.ops->close(&b);
	srv_stop(s);
}

/*
 * A UTF-8 address: asked with MAIL FROM:<...> SMTPUTF8 when the server
 * offers SMTPUTF8; passed without asking when it does not (its answer to
 * an undeclared UTF-8 address, 553 5.6.7, says nothing of the mailbox).
 */
static void
test_smtputf8(void **state)
{
	struct srv	*s = srv_start();
	struct sec_buf	 sb;
	struct rg_backend b;
	struct rg_error	 err;
	int		 before;

	sec_make(&sb, "type", "callahead", "hosts", hostport(s->port),
	    "helo", "gw.example.test", "timeout", "2s",
	    "accept_all_check", "0", "idle_timeout", "0", NULL);
	assert_int_equal(be_open(&b, &sb, &err), 0);
	/* Not offered: not asked, passes; ASCII is asked as before. */
	before = s->rcpts;
	assert_int_equal(be_lookup(&b, "j\xc3\xb6rg@example.test", 3000,
	    &err), RG_FOUND);
	assert_int_equal(be_lookup(&b, "j\xc3\xbcrgen@example.test", 3000,
	    &err), RG_FOUND);
	assert_int_equal(s->rcpts - before, 0);
	assert_int_equal(be_lookup(&b, "nobody@example.test", 3000, &err),
	    RG_NOTFOUND);
	assert_int_equal(s->mails_utf8, 0);
	/* Offered: asked with SMTPUTF8, and its answer counts. */
	atomic_store(&s->smtputf8, true);
	before = s->rcpts;
	assert_int_equal(be_lookup(&b, "j\xc3\xb6rg@example.test", 3000,
	    &err), RG_FOUND);
	assert_int_equal(be_lookup(&b, "j\xc3\xbcrgen@example.test", 3000,
	    &err), RG_NOTFOUND);
	assert_int_equal(s->rcpts - before, 2);
	assert_int_equal(s->mails_utf8, 2);
	/* ASCII addresses are still sent without the parameter. */
	assert_int_equal(be_lookup(&b, "alice@example.test", 3000, &err),
	    RG_FOUND);
	assert_int_equal(s->mails_utf8, 2);
	b.ops->close(&b);
	srv_stop(s);
}

/* 200 probes: one connection with reuse, 200 without; QUIT each time. */
static void
test_reuse(void **state)
{
	static const char *const idle[] = { "30s", "0" };
	static const int	 want_conns[] = { 1, 200 };

	for (size_t m = 0; m < 2; m++) {
		struct srv	*s = srv_start();
		struct sec_buf	 sb;
		struct rg_backend b;
		struct rg_error	 err;
		char		 key[64];

		sec_make(&sb, "type", "callahead", "hosts", hostport(s->port),
		    "helo", "gw.example.test", "idle_timeout", idle[m], NULL);
		assert_int_equal(be_open(&b, &sb, &err), 0);
		for (int i = 0; i < 200; i++) {
			snprintf(key, sizeof(key), "user%d@example.test", i);
			assert_int_equal(be_lookup(&b, key, 3000, &err),
			    RG_NOTFOUND);
		}
		assert_int_equal(s->connections, want_conns[m]);
		b.ops->close(&b);
		WAIT_FOR(s->quits == want_conns[m], 2000);
		assert_int_equal(s->quits, want_conns[m]);
		srv_stop(s);
	}
}

/* A kept connection the server dropped is reopened and the probe retried. */
static void
test_dead_kept_connection(void **state)
{
	struct srv	*s = srv_start();
	struct sec_buf	 sb;
	struct rg_backend b;
	struct rg_error	 err;

	s->drop_after_rset = true;
	sec_make(&sb, "type", "callahead", "hosts", hostport(s->port),
	    "helo", "gw.example.test", "accept_all_check", "0", NULL);
	assert_int_equal(be_open(&b, &sb, &err), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(be_lookup(&b, "alice@example.test", 3000,
		    &err), RG_FOUND);
	assert_int_equal(s->connections, 5);
	b.ops->close(&b);
	srv_stop(s);
}

struct step_case {
	const char	*name;
	int		 greeting;
	bool		 ehlo_5xx, mail_5xx;
	enum rg_result	 want;
	const char	*err_has;
};

/* 5xx anywhere before RCPT is the probe failing: tempfail, never reject. */
static void
test_session_steps(void **state)
{
	static const struct step_case	cases[] = {
		{ "greeting 554", 554, false, false, RG_TEMPFAIL, "greeting" },
		{ "EHLO 502, HELO", 220, true, false, RG_NOTFOUND, NULL },
		{ "MAIL 553", 220, false, true, RG_TEMPFAIL, "MAIL FROM" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct srv	*s = srv_start();
		struct sec_buf	 sb;
		struct rg_backend b;
		struct rg_error	 err;
		enum rg_result	 got;

		s->greeting = cases[i].greeting;
		s->ehlo_5xx = cases[i].ehlo_5xx;
		s->mail_5xx = cases[i].mail_5xx;
		sec_make(&sb, "type", "callahead", "hosts", hostport(s->port),
		    "helo", "gw.example.test", NULL);
		assert_int_equal(be_open(&b, &sb, &err), 0);
		got = be_lookup(&b, "nobody@example.test", 3000, &err);
		if (got != cases[i].want)
			fail_msg("%s: got %s (%s)", cases[i].name,
			    rg_result_str(got), err.msg);
		if (cases[i].err_has != NULL &&
		    strstr(err.msg, cases[i].err_has) == NULL)
			fail_msg("%s: err [%s] lacks [%s]", cases[i].name,
			    err.msg, cases[i].err_has);
		if (cases[i].ehlo_5xx)
			assert_int_equal(s->helos, 1);
		b.ops->close(&b);
		srv_stop(s);
	}
}

/*
 * A listener that accepts TCP (the kernel completes the handshake) and
 * never says a word: tempfail after the timeout, not before, not much
 * after. Then failover: the silent host first, a good one second.
 */
static void
test_silent_server(void **state)
{
	int		 port, lfd = listen_any(&port);
	struct srv	*s = srv_start();
	struct sec_buf	 sb;
	struct rg_backend b;
	struct rg_error	 err;
	uint64_t	 t0, took;

	sec_make(&sb, "type", "callahead", "hosts", hostport(port),
	    "helo", "gw.example.test", "timeout", "500ms", NULL);
	assert_int_equal(be_open(&b, &sb, &err), 0);
	t0 = rg_now_ms();
	assert_int_equal(be_lookup(&b, "alice@example.test", 5000, &err),
	    RG_TEMPFAIL);
	took = rg_now_ms() - t0;
	print_message("silent server: tempfail after %ju ms (timeout 500)\n",
	    (uintmax_t)took);
	assert_in_range(took, 480, 900);
	assert_non_null(strstr(err.msg, "timed out"));
	/* The query's deadline wins over a longer timeout. */
	t0 = rg_now_ms();
	assert_int_equal(be_lookup(&b, "alice@example.test", 200, &err),
	    RG_TEMPFAIL);
	assert_in_range(rg_now_ms() - t0, 180, 500);
	b.ops->close(&b);

	sec_make(&sb, "type", "callahead", "hosts", "",
	    "helo", "gw.example.test", "timeout", "300ms", NULL);
	snprintf(sb.vals[1], sizeof(sb.vals[1]), "%s, %s", hostport(port),
	    hostport(s->port));
	assert_int_equal(be_open(&b, &sb, &err), 0);
	assert_int_equal(be_lookup(&b, "alice@example.test", 3000, &err),
	    RG_FOUND);
	b.ops->close(&b);
	close(lfd);
	srv_stop(s);
}

/* A refused port first: the next host answers at once. */
static void
test_failover_refused(void **state)
{
	int		 dead_port, fd = listen_any(&dead_port);
	struct srv	*s = srv_start();
	struct sec_buf	 sb;
	struct rg_backend b;
	struct rg_error	 err;
	uint64_t	 t0;

	close(fd);		/* nothing listens there now */
	sec_make(&sb, "type", "callahead", "hosts", "",
	    "helo", "gw.example.test", NULL);
	snprintf(sb.vals[1], sizeof(sb.vals[1]), "%s %s", hostport(dead_port),
	    hostport(s->port));
	assert_int_equal(be_open(&b, &sb, &err), 0);
	t0 = rg_now_ms();
	assert_int_equal(be_lookup(&b, "nobody@example.test", 3000, &err),
	    RG_NOTFOUND);
	assert_true(rg_now_ms() - t0 < 1000);
	b.ops->close(&b);
	srv_stop(s);
}

struct storm {
	struct rg_backend	*b;
	int			 id;
	atomic_int		*res[4];
};

static void *
storm_main(void *arg)
{
	struct storm	*st = arg;
	struct rg_error	 err;

	for (int i = 0; i < 5; i++) {
		char		key[64];
		enum rg_result	r;

		snprintf(key, sizeof(key), "alice%d.%d@example.test", st->id,
		    i);
		r = be_lookup(st->b, key, 1000, &err);
		atomic_fetch_add(st->res[r], 1);
	}
	return NULL;
}

/*
 * max_connections = 2 against a slow server (200 ms a RCPT) and 8
 * threads: the server never sees more than 2 connections at once, and
 * callers that cannot get one before their deadline tempfail.
 */
static void
test_max_connections(void **state)
{
	struct srv	*s = srv_start();
	struct sec_buf	 sb;
	struct rg_backend b;
	struct rg_error	 err;
	pthread_t	 t[8];
	struct storm	 st[8];
	char		 stats[256];
	atomic_int	 res[4] = { 0 };

	s->rcpt_delay_ms = 200;
	sec_make(&sb, "type", "callahead", "hosts", hostport(s->port),
	    "helo", "gw.example.test", "max_connections", "2",
	    "accept_all_check", "0", NULL);
	assert_int_equal(be_open(&b, &sb, &err), 0);
	for (int i = 0; i < 8; i++) {
		st[i].b = &b;
		st[i].id = i;
		for (int j = 0; j < 4; j++)
			st[i].res[j] = &res[j];
		assert_int_equal(pthread_create(&t[i], NULL, storm_main,
		    &st[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	b.ops->stats(&b, stats, sizeof(stats));
	print_message("max_connections=2, 8 threads x 5: %d notfound, "
	    "%d tempfail, server connections %d; %s\n", res[RG_NOTFOUND],
	    res[RG_TEMPFAIL], s->connections, stats);
	/*
	 * The pool's own high-water mark is exact; the server's count of
	 * open connections lags a client's close by a scheduling delay, so
	 * it is only printed.
	 */
	assert_non_null(strstr(stats, "peak_per_host=2 "));
	/* A probe cut off mid-RCPT by its deadline costs its connection. */
	assert_in_range(s->connections, 2, 2 + res[RG_TEMPFAIL]);
	assert_int_equal(res[RG_NOTFOUND] + res[RG_TEMPFAIL], 40);
	assert_true(res[RG_NOTFOUND] >= 5);
	assert_true(res[RG_TEMPFAIL] >= 1);
	b.ops->close(&b);
	srv_stop(s);
}

/* Kept connections are closed with QUIT after idle_timeout. */
static void
test_idle_timeout(void **state)
{
	struct srv	*s = srv_start();
	struct sec_buf	 sb;
	struct rg_backend b;
	struct rg_error	 err;

	sec_make(&sb, "type", "callahead", "hosts", hostport(s->port),
	    "helo", "gw.example.test", "idle_timeout", "200ms", NULL);
	assert_int_equal(be_open(&b, &sb, &err), 0);
	assert_int_equal(be_lookup(&b, "alice@example.test", 3000, &err),
	    RG_FOUND);
	assert_int_equal(s->active, 1);
	WAIT_FOR(s->quits == 1, 3000);
	assert_int_equal(s->quits, 1);
	WAIT_FOR(s->active == 0, 1000);
	assert_int_equal(s->active, 0);
	/* And a new probe opens a new one. */
	assert_int_equal(be_lookup(&b, "alice@example.test", 3000, &err),
	    RG_FOUND);
	assert_int_equal(s->connections, 2);
	b.ops->close(&b);
	srv_stop(s);
}

/* An accept-all server: lookups still answer; check() warns. */
static void
test_accept_all(void **state)
{
	struct srv	*s = srv_start();
	struct sec_buf	 sb;
	struct rg_backend b;
	struct rg_error	 err, warn;

	s->accept_all = true;
	sec_make(&sb, "type", "callahead", "hosts", hostport(s->port),
	    "helo", "gw.example.test", NULL);
	assert_int_equal(be_open(&b, &sb, &err), 0);
	assert_int_equal(be_lookup(&b, "nobody@example.org", 3000, &err),
	    RG_FOUND);
	assert_int_equal(s->rcpts, 2);		/* the random probe + key */
	assert_int_equal(be_lookup(&b, "nobody2@example.org", 3000, &err),
	    RG_FOUND);
	assert_int_equal(s->rcpts, 3);		/* checked once per hour */
	rg_error_clear(&err);
	rg_error_clear(&warn);
	assert_int_equal(b.ops->check(&b, &err, &warn), 0);
	print_message("check() warn: %s\n", warn.msg);
	assert_non_null(strstr(warn.msg, "cannot tell users of "
	    "example.test apart"));
	assert_non_null(strstr(warn.msg, "example.org was seen to accept"));
	b.ops->close(&b);

	/* A normal server: no warning; a dead one: check fails. */
	s->accept_all = false;
	assert_int_equal(be_open(&b, &sb, &err), 0);
	rg_error_clear(&warn);
	assert_int_equal(b.ops->check(&b, &err, &warn), 0);
	assert_null(strstr(warn.msg, "cannot tell"));
	b.ops->close(&b);
	srv_stop(s);
}

struct conf_case {
	const char	*key, *value;
	const char	*err_has;	/* NULL: valid */
};

static void
test_config(void **state)
{
	static const struct conf_case	cases[] = {
		{ "hosts", "192.0.2.1", NULL },
		{ "hosts", "192.0.2.1:2525, [2001:db8::1]:25, [::1], ::1, "
		    "mx.example.com", NULL },
		{ "hosts", "", "required" },
		{ "hosts", "[::1", "is not host" },
		{ "hosts", "a:0", "is not host" },
		{ "hosts", "a:70000", "is not host" },
		{ "hosts", "[1.2.3.4]:25", "is not host" },
		{ "hosts", "a/b", "is not host" },
		{ "port", "x", "not a port" },
		{ "helo", "bad name", "not a host name" },
		{ "helo", "[127.0.0.1]", NULL },
		{ "mail_from", "<>", NULL },
		{ "mail_from", "<probe@example.com>", NULL },
		{ "mail_from", "probe@example.com", NULL },
		{ "mail_from", "<a>b@c>", "mail_from" },
		{ "mail_from", "nobody", "mail_from" },
		{ "timeout", "0", "more than 0" },
		{ "timeout", "soon", "timeout" },
		{ "max_connections", "0", "max_connections" },
		{ "idle_timeout", "0", NULL },
		{ "accept_all_check", "0", NULL },
		{ "starttls", "off", NULL },
		{ "starttls", "required", "not built" },
		{ "starttls", "opportunistic", "not built" },
		{ "check_domains", "example.com, example.org", NULL },
		{ "check_domains", "a:b", "not a domain" },
		{ "bogus", "1", "bogus" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sec_buf		sb;
		struct rg_backend	b;
		struct rg_error		err;
		int			rc;

		if (strcmp(cases[i].key, "hosts") == 0)
			sec_make(&sb, "type", "callahead", "helo", "gw.x.test",
			    cases[i].key, cases[i].value, NULL);
		else if (strcmp(cases[i].key, "helo") == 0)
			sec_make(&sb, "type", "callahead", "hosts", "127.0.0.1",
			    cases[i].key, cases[i].value, NULL);
		else
			sec_make(&sb, "type", "callahead", "helo", "gw.x.test",
			    "hosts", "127.0.0.1", cases[i].key,
			    cases[i].value, NULL);
		rc = be_open(&b, &sb, &err);
		if (cases[i].err_has == NULL) {
			if (rc != 0)
				fail_msg("%s = %s: %s", cases[i].key,
				    cases[i].value, err.msg);
			b.ops->close(&b);
			continue;
		}
		if (rc != -1)
			fail_msg("%s = %s: accepted", cases[i].key,
			    cases[i].value);
		if (strstr(err.msg, cases[i].err_has) == NULL ||
		    strstr(err.msg, "test.conf:") == NULL)
			fail_msg("%s = %s: err [%s]", cases[i].key,
			    cases[i].value, err.msg);
	}
}

/* ---- against Postfix's smtp-sink ---- */

static pid_t
sink_start(int *port, const char *const *extra)
{
	const char	*argv[16];
	char		 where[64];
	int		 n = 0;
	pid_t		 pid;

	/* Bind port 0 to find a free one; smtp-sink binds it itself. */
	close(listen_any(port));
	snprintf(where, sizeof(where), "127.0.0.1:%d", *port);
	argv[n++] = "smtp-sink";
	argv[n++] = "-h";
	argv[n++] = "sink.example.test";
	if (geteuid() == 0) {
		argv[n++] = "-u";
		argv[n++] = "nobody";
	}
	for (; extra != NULL && *extra != NULL; extra++)
		argv[n++] = *extra;
	argv[n++] = where;
	argv[n++] = "64";
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execvp("smtp-sink", (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		struct sockaddr_in	sin = { .sin_family = AF_INET };
		int			fd = socket(AF_INET, SOCK_STREAM, 0);

		sin.sin_port = htons((uint16_t)*port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
			close(fd);
			return pid;
		}
		close(fd);
		rg_sleep_ms(30);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	fail_msg("smtp-sink did not start on port %d", *port);
	return -1;
}

static void
sink_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static void
test_smtp_sink(void **state)
{
	static const char *const slow[] = { "-W", "RCPT:3", NULL };
	struct sec_buf	 sb;
	struct rg_backend b;
	struct rg_error	 err, warn;
	int		 port;
	pid_t		 pid;
	uint64_t	 t0, took;

	if (system("command -v smtp-sink >/dev/null 2>&1") != 0)
		skip();
	/* Accept-all: found, and check() warns. */
	pid = sink_start(&port, NULL);
	sec_make(&sb, "type", "callahead", "hosts", hostport(port),
	    "helo", "gw.example.test", NULL);
	assert_int_equal(be_open(&b, &sb, &err), 0);
	assert_int_equal(be_lookup(&b, "anyone@example.test", 3000, &err),
	    RG_FOUND);
	rg_error_clear(&warn);
	assert_int_equal(b.ops->check(&b, &err, &warn), 0);
	assert_non_null(strstr(warn.msg, "cannot tell users"));
	b.ops->close(&b);
	sink_stop(pid);

	/* RCPT answered after 3 s, timeout 1 s: tempfail in about 1 s. */
	pid = sink_start(&port, slow);
	sec_make(&sb, "type", "callahead", "hosts", hostport(port),
	    "helo", "gw.example.test", "timeout", "1s",
	    "accept_all_check", "0", NULL);
	assert_int_equal(be_open(&b, &sb, &err), 0);
	t0 = rg_now_ms();
	assert_int_equal(be_lookup(&b, "anyone@example.test", 8000, &err),
	    RG_TEMPFAIL);
	took = rg_now_ms() - t0;
	print_message("smtp-sink -W RCPT:3, timeout 1s: tempfail after %ju "
	    "ms\n", (uintmax_t)took);
	assert_in_range(took, 950, 1500);
	b.ops->close(&b);
	sink_stop(pid);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_smtputf8),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_dead_kept_connection),
		cmocka_unit_test(test_session_steps),
		cmocka_unit_test(test_silent_server),
		cmocka_unit_test(test_failover_refused),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_accept_all),
		cmocka_unit_test(test_smtp_sink),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
