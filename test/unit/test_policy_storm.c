/* SPDX-License-Identifier: MIT */
/*
 * A concurrent storm through the Postfix policy door
 * (milter/policy_server.c) on a real unix socket, meant for
 * ThreadSanitizer as well as the normal build: 8 client threads, each
 * for a bounded number of requests and at most about 2 seconds, with
 * known and unknown recipients from 64 clients in sessions of a few
 * recipients each (harvest counting on, memory state, so the per-session
 * table is shared and sessions get blocked), reconnecting every 50
 * requests as Postfix does; a junk thread sending bad requests on
 * connections of its own; a reload thread swapping in a new runtime
 * every 40 ms while connections notice it by the engine's generation.
 *
 * Invariants: a known recipient never gets 550 5.1.1; an unknown one
 * never gets DUNNO; every reply is one action line; each junk connection
 * is closed by the server; at least one known recipient is answered
 * DUNNO.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "policy.h"
#include "policy_server.h"
#include "rg_time.h"

#define NTHREADS	8
#define MAX_OPS		20000	/* requests per thread */
#define MAX_MS		2000	/* per thread */
#define RELOAD_MS	40

static char	tmpdir[64], sock[96], db[96];

struct storm {
	struct rg_engine	*e;
	_Atomic bool		 stop;
	_Atomic uint64_t	 requests, dunno, rejected, blocked, other,
				 junk_closed, junk_sent, bad;
	char			 bad_msg[1400];
};

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
note_bad(struct storm *st, const char *what, const char *reply)
{
	if (atomic_fetch_add(&st->bad, 1) == 0)
		snprintf(st->bad_msg, sizeof(st->bad_msg), "%s: %s", what,
		    reply);
}

static struct rg_runtime *
runtime_for(int variant)
{
	struct rg_error	 err;
	struct rg_conf	*c;
	struct rg_runtime *rt;
	char		 text[2048];

	snprintf(text, sizeof(text), "[milter]\nsocket = none\nuser =\n"
	    "log_level = error\n[postfix_policy]\nsocket = unix:%s\n"
	    "request_timeout = 1s\n[cache]\nsize = %d\npositive_ttl = 50ms\n"
	    "negative_ttl = 50ms\n[harvest]\nmax_unknown = 0\n"
	    "max_unknown_per_session = %d\nstate =\nexempt =\n[policy]\n"
	    "domains = example.com\nbackends = t\n[backend t]\ntype = sqlite\n"
	    "path = %s\n", sock, variant % 2 ? 0 : 1000, 2 + variant % 3, db);
	rg_error_clear(&err);
	if ((c = rg_conf_load_string(text, "storm.conf", &err)) == NULL) {
		fprintf(stderr, "config: %s\n", err.msg);
		return NULL;
	}
	rt = rg_runtime_new(c, &err);
	if (rt == NULL)
		fprintf(stderr, "runtime: %s\n", err.msg);
	rg_conf_unref(c);
	return rt;
}

static int
connect_door(void)
{
	struct sockaddr_un	sun = { .sun_family = AF_UNIX };
	struct timeval		tv = { .tv_sec = 10 };
	int			fd = socket(AF_UNIX, SOCK_STREAM, 0);

	(void)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Send req, read one reply (up to its empty line) into out. 0 or -1. */
static int
ask(int fd, const char *req, char *out, size_t outlen)
{
	size_t	len = 0;
	ssize_t	n;

	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		return -1;
	while (len < 4 || memcmp(out + len - 2, "\n\n", 2) != 0) {
		if (len + 1 >= outlen ||
		    (n = recv(fd, out + len, outlen - 1 - len, 0)) <= 0)
			return -1;
		len += (size_t)n;
	}
	out[len] = '\0';
	return 0;
}

static void
judge(struct storm *st, bool is_known, const char *reply)
{
	if (strcmp(reply, "action=DUNNO\n\n") == 0) {
		atomic_fetch_add(&st->dunno, 1);
		if (!is_known)
			note_bad(st, "unknown answered DUNNO", reply);
	} else if (strncmp(reply, "action=550 5.1.1 User unknown\n\n", 31) == 0) {
		atomic_fetch_add(&st->rejected, 1);
		if (is_known)
			note_bad(st, "known rejected", reply);
	} else if (strncmp(reply, "action=421 4.7.0 ", 17) == 0)
		atomic_fetch_add(&st->blocked, 1);
	else if (strncmp(reply, "action=451 4.", 13) == 0)
		atomic_fetch_add(&st->other, 1);
	else
		note_bad(st, "unexpected reply", reply);
}

static void *
client(void *arg)
{
	struct storm	*st = arg;
	uint64_t	 seed = (uint64_t)(uintptr_t)&seed | 1, start = rg_now_ms();
	uint64_t	 sess = 0;
	int		 fd = -1;
	char		 req[512], reply[1200];

	for (int i = 0; i < MAX_OPS && rg_now_ms() - start < MAX_MS; i++) {
		uint64_t	r = rnd(&seed);
		bool		is_known = (r & 3) != 0;

		if (i % 4 == 0)		/* a new SMTP session */
			sess = rnd(&seed);

		if (fd < 0 || i % 50 == 0) {
			if (fd >= 0)
				close(fd);
			if ((fd = connect_door()) < 0) {
				note_bad(st, "connect", strerror(errno));
				break;
			}
		}
		/* 64 clients, sessions of about 4 requests by port */
		snprintf(req, sizeof(req), "request=smtpd_access_policy\n"
		    "protocol_state=%s\nrecipient=%s%.0u@example.com\n"
		    "client_address=10.0.0.%u\nclient_port=%u\n"
		    "server_address=127.0.0.1\nserver_port=25\n"
		    "instance=%x.1.2.0\n\n", (r >> 40) % 16 ? "RCPT" : "DATA",
		    is_known ? ((r >> 8) & 1 ? "alice" : "bob") : "nobody",
		    is_known ? 0 : (unsigned)(r >> 30) % 8,
		    (unsigned)(sess % 64), (unsigned)(1024 + (sess >> 8) % 60000),
		    (unsigned)(sess >> 50));
		if (ask(fd, req, reply, sizeof(reply)) != 0) {
			note_bad(st, "no reply", req);
			break;
		}
		atomic_fetch_add(&st->requests, 1);
		if ((r >> 40) % 16 != 0)
			judge(st, is_known, reply);
		else if (strcmp(reply, "action=DUNNO\n\n") != 0)
			note_bad(st, "not DUNNO at DATA", reply);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* Bad requests, each on its own connection: the server must close it. */
static void *
junk(void *arg)
{
	static const char *const bad[] = {
		"request=smtpd_access_policy\nno equals sign\n\n",
		"request=smtpd_access_policy\nrecipient=a\0b\n\n",
		"request=something_else\n\n",
	};
	struct storm	*st = arg;
	char		 buf[64];

	for (int i = 0; i < 60 && !atomic_load(&st->stop); i++) {
		const char	*b = bad[i % 3];
		size_t		 len = i % 3 == 1 ? 44 : strlen(b);
		int		 fd = connect_door();

		if (fd < 0)
			continue;
		if (send(fd, b, len, MSG_NOSIGNAL) == (ssize_t)len) {
			atomic_fetch_add(&st->junk_sent, 1);
			if (recv(fd, buf, sizeof(buf), 0) == 0)
				atomic_fetch_add(&st->junk_closed, 1);
		}
		close(fd);
		rg_sleep_ms(20);
	}
	return NULL;
}

static void *
reloader(void *arg)
{
	struct storm	*st = arg;

	for (int v = 1; !atomic_load(&st->stop); v++) {
		struct rg_runtime	*rt = runtime_for(v);

		if (rt != NULL) {
			rg_engine_swap(st->e, rt);
			rg_runtime_unref(rt);
		}
		rg_sleep_ms(RELOAD_MS);
	}
	return NULL;
}

static void
write_table(void)
{
	sqlite3	*h;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "CREATE TABLE recipients (address "
	    "TEXT PRIMARY KEY COLLATE NOCASE); INSERT INTO recipients VALUES "
	    "('alice@example.com'), ('bob@example.com')", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(h);
}

static void
test_policy_storm(void **state)
{
	static struct storm	 st;
	struct rg_runtime	*rt;
	struct rg_error		 err;
	pthread_t		 t[NTHREADS], jt, rl;

	(void)state;
	write_table();
	assert_non_null(rt = runtime_for(0));
	rg_error_clear(&err);
	assert_int_equal(rg_pf_open(rt->conf, false, 0, 0, &err), 0);
	assert_non_null(st.e = rg_engine_new(rt, 0, &err));
	assert_int_equal(rg_pf_start(st.e, &err), 0);
	assert_int_equal(pthread_create(&rl, NULL, reloader, &st), 0);
	assert_int_equal(pthread_create(&jt, NULL, junk, &st), 0);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, client, &st), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	atomic_store(&st.stop, true);
	pthread_join(jt, NULL);
	pthread_join(rl, NULL);
	rg_pf_stop();
	fprintf(stderr, "# requests=%llu dunno=%llu rejected=%llu "
	    "blocked=%llu tempfail=%llu junk=%llu/%llu closed\n",
	    (unsigned long long)st.requests, (unsigned long long)st.dunno,
	    (unsigned long long)st.rejected, (unsigned long long)st.blocked,
	    (unsigned long long)st.other, (unsigned long long)st.junk_closed,
	    (unsigned long long)st.junk_sent);
	if (st.bad > 0)
		fail_msg("%llu bad: %s", (unsigned long long)st.bad,
		    st.bad_msg);
	assert_true(st.dunno > 0);
	assert_true(st.rejected > 0);
	assert_true(st.junk_sent > 0);
	assert_int_equal(st.junk_closed, st.junk_sent);
	/* The door's threads may still hold the engine: not freed. */
	rg_runtime_unref(rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_storm),
	};
	int	rc;

	rg_log_init("test_policy_storm", 1, RG_LOG_ERROR);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/rg-pstorm-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(sock, sizeof(sock), "%s/policy.sock", tmpdir);
	snprintf(db, sizeof(db), "%s/recipients.db", tmpdir);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(db);
	unlink(sock);
	rmdir(tmpdir);
	return rc;
}
