/* SPDX-License-Identifier: MIT */
/*
 * Concurrent storms through the whole decision path (rg_decide), one per
 * backend's pool, meant for ThreadSanitizer as well as the normal build:
 * 8 deciding threads, each for a bounded number of decisions and at most
 * about 2 seconds, with mixed hits, misses and cache expiries (50 ms
 * TTLs), harvest counting on (memory state; 16384 clients over a
 * 2000-client bound: counted, blocked and evicted), and a reload thread
 * swapping in a new runtime (other cache and harvest sizes, new backend
 * pools) every 40 ms while connections keep the runtime they took.
 * Backends: a SQLite table that is also atomically replaced during the
 * storm (per-thread connections);
 * a real slapd (the LDAP pool, smaller than the thread count); a real
 * smtp-sink (the call-ahead pool, 2 connections per host).
 *
 * Invariants: an existing recipient is never rejected 550 5.1.1; an
 * unknown one is never accepted; every reply is 4xx/5xx and a known
 * recipient may only be tempfailed or blocked; at least one known
 * recipient is accepted. Skipped when slapd or smtp-sink is missing.
 * Not covered here: single-flight and LRU details (test_cache_storm).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "conf.h"
#include "log.h"
#include "policy.h"
#include "rg_time.h"

#define NTHREADS	8
#define MAX_OPS		40000	/* decisions per thread */
#define MAX_MS		2000	/* per thread */
#define RELOAD_MS	40

static char	tmpdir[64];
static char	srcdir[1024];

static const char *const known[] = {
	"alice@example.com", "bob@example.com", "<Alice+tag@Example.COM>",
};
static const char *const unknown[] = {
	"nobody@example.com", "x1@example.com", "x2@example.com",
	"<nobody+tag@example.com>",
};

struct storm {
	struct rg_engine	*e;
	char			 backend[512];	/* backends line + section */
	bool			 accept_all;	/* backend finds everyone */
	bool			 replace_db;	/* atomically replace db */
	_Atomic bool		 stop;
	_Atomic uint64_t	 decisions, accepted, rejected, tempfailed,
				 blocked, reloads, bad;
	char			 bad_msg[1400];
};

struct targ {
	struct storm	*st;
	uint64_t	 seed;
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
note_bad(struct storm *st, const char *what, const char *addr,
    const struct rg_verdict *v)
{
	if (atomic_fetch_add(&st->bad, 1) == 0)
		snprintf(st->bad_msg, sizeof(st->bad_msg), "%s: %s -> %s %s "
		    "%s (%s/%s)", what, addr, v->reply.rcode, v->reply.xcode,
		    v->reply.text, v->decided_by, v->reason);
}

/* Shared part of every storm config: %d cache size, %d max_unknown; then
 * the policy's backends line and the backend section. */
#define CONF_HEAD \
	"[milter]\nuser =\nlog_level = error\n" \
	"[cache]\nsize = %d\npositive_ttl = 50ms\nnegative_ttl = 50ms\n" \
	"[harvest]\nmax_unknown = %d\nwindow = 1s\nblock_time = 1s\n" \
	"max_unknown_per_session = 4\nmax_clients = 2000\nstate =\n" \
	"[policy]\ndomains = example.com\nalways_accept = postmaster\n" \
	"deadline = 5s\n"

static struct rg_runtime *
runtime_for(struct storm *st, int variant)
{
	static const int sizes[] = { 0, 8, 64, 1000 };
	struct rg_error	 err;
	struct rg_conf	*c;
	struct rg_runtime *rt;
	char		 text[2048];

	snprintf(text, sizeof(text), CONF_HEAD "%s", sizes[variant % 4],
	    variant % 2 ? 4 : 6, st->backend);
	/* NULL on error, never fail_msg: the reload thread calls this too,
	 * and cmocka can only fail from the main thread. */
	rg_error_clear(&err);
	c = rg_conf_load_string(text, "storm.conf", &err);
	if (c == NULL) {
		fprintf(stderr, "config: %s\n", err.msg);
		return NULL;
	}
	rt = rg_runtime_new(c, &err);
	if (rt == NULL)
		fprintf(stderr, "runtime: %s\n", err.msg);
	rg_conf_unref(c);
	return rt;
}

/* A whole new table file renamed over the old one (rcptgate-table's
 * way). 0 or -1; no cmocka asserts, the reload thread calls it. */
static int
write_table(const char *db)
{
	char	 tmp[PATH_MAX], sql[128];
	sqlite3	*h;
	int	 bad;

	snprintf(tmp, sizeof(tmp), "%s.new", db);
	unlink(tmp);
	if (sqlite3_open(tmp, &h) != SQLITE_OK) {
		sqlite3_close(h);
		return -1;
	}
	bad = sqlite3_exec(h, "CREATE TABLE recipients (address TEXT "
	    "PRIMARY KEY COLLATE NOCASE)", NULL, NULL, NULL) != SQLITE_OK;
	for (size_t i = 0; i < 2 && !bad; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO recipients VALUES "
		    "('%s')", known[i]);
		bad = sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK;
	}
	sqlite3_close(h);
	return bad || rename(tmp, db) == -1 ? -1 : 0;
}

static void *
decider(void *arg)
{
	struct targ		*ta = arg;
	struct storm		*st = ta->st;
	uint64_t		 seed = ta->seed, start = rg_now_ms();
	struct rg_runtime	*rt = NULL;
	struct rg_client	 cl;
	struct rg_verdict	 v;

	for (int i = 0; i < MAX_OPS && rg_now_ms() - start < MAX_MS; i++) {
		uint64_t		 r = rnd(&seed);
		bool			 is_known = (r & 3) != 0;
		const char		*addr;
		struct sockaddr_in	*sin = (struct sockaddr_in *)&cl.addr;

		if (rt == NULL || i % 13 == 0) {	/* a new connection */
			rg_runtime_unref(rt);
			rt = rg_engine_acquire(st->e);
			memset(&cl, 0, sizeof(cl));
			cl.have_addr = true;
			sin->sin_family = AF_INET;
			/* 16384 clients, more than max_clients: some
			 * get blocked, some evicted. */
			sin->sin_addr.s_addr = htonl(0x0a000000u |
			    (uint32_t)((r >> 8) & 0x3fff));
		}
		addr = is_known ? known[(r >> 24) % 3] :
		    unknown[(r >> 24) % 4];
		rg_decide(st->e, rt, &cl, addr, false, &v);
		atomic_fetch_add(&st->decisions, 1);
		if (v.delay_ms > 0)
			rg_tarpit_done(st->e);	/* no sleeping in a storm */
		switch (v.action) {
		case RG_ACT_CONTINUE:
			atomic_fetch_add(&st->accepted, 1);
			if (!is_known && !st->accept_all)
				note_bad(st, "unknown accepted", addr, &v);
			continue;
		case RG_ACT_REJECT:
			if (strcmp(v.decided_by, "harvest") == 0) {
				atomic_fetch_add(&st->blocked, 1);
				break;
			}
			atomic_fetch_add(&st->rejected, 1);
			if (is_known)
				note_bad(st, "known rejected", addr, &v);
			break;
		default:
			if (strcmp(v.decided_by, "harvest") == 0)
				atomic_fetch_add(&st->blocked, 1);
			else
				atomic_fetch_add(&st->tempfailed, 1);
			break;
		}
		if (v.reply.rcode[0] != '4' && v.reply.rcode[0] != '5')
			note_bad(st, "bad reply code", addr, &v);
	}
	rg_runtime_unref(rt);
	return NULL;
}

static void *
reloader(void *arg)
{
	struct storm	*st = arg;
	char		 db[PATH_MAX];
	int		 n = 1;

	snprintf(db, sizeof(db), "%s/recipients.db", tmpdir);
	while (!atomic_load(&st->stop)) {
		struct rg_runtime *rt = runtime_for(st, n++);

		if (rt == NULL) {
			atomic_fetch_add(&st->bad, 1);
			break;
		}
		if (st->replace_db && n % 3 == 0 && write_table(db) == -1)
			atomic_fetch_add(&st->bad, 1);
		rg_engine_swap(st->e, rt);
		rg_runtime_unref(rt);
		atomic_fetch_add(&st->reloads, 1);
		rg_sleep_ms(RELOAD_MS);
	}
	return NULL;
}

static void
run_storm(struct storm *st)
{
	pthread_t		 th[NTHREADS], rl;
	struct targ		 ta[NTHREADS];
	struct rg_runtime	*rt;
	struct rg_error		 err;

	rg_log_set_level(RG_LOG_ERROR);
	rt = runtime_for(st, 0);
	assert_non_null(rt);
	rg_error_clear(&err);
	st->e = rg_engine_new(rt, 0, &err);
	if (st->e == NULL)
		fail_msg("engine: %s", err.msg);
	rg_runtime_unref(rt);
	assert_int_equal(pthread_create(&rl, NULL, reloader, st), 0);
	for (int i = 0; i < NTHREADS; i++) {
		ta[i].st = st;
		ta[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
		assert_int_equal(pthread_create(&th[i], NULL, decider, &ta[i]),
		    0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	atomic_store(&st->stop, true);
	pthread_join(rl, NULL);
	rg_engine_free(st->e);
	print_message("%ju decisions: %ju accepted, %ju rejected, %ju "
	    "tempfailed, %ju blocked; %ju reloads\n",
	    (uintmax_t)st->decisions, (uintmax_t)st->accepted,
	    (uintmax_t)st->rejected, (uintmax_t)st->tempfailed,
	    (uintmax_t)st->blocked, (uintmax_t)st->reloads);
	if (atomic_load(&st->bad) != 0)
		fail_msg("%ju bad verdicts, first: %s",
		    (uintmax_t)atomic_load(&st->bad), st->bad_msg);
	assert_true(st->accepted > 0);
	assert_true(st->reloads > 0);
}

static void
test_sqlite_storm(void **state)
{
	struct storm	st = { 0 };
	char		db[PATH_MAX];

	snprintf(db, sizeof(db), "%s/recipients.db", tmpdir);
	assert_int_equal(write_table(db), 0);
	snprintf(st.backend, sizeof(st.backend), "backends = local\n"
	    "[backend local]\ntype = sqlite\npath = %.400s\n", db);
	st.replace_db = true;
	run_storm(&st);
}

/* ---- slapd through test/integration/lib_slapd.sh ---- */

static int
slapd_sh(char *out, size_t outlen, const char *script)
{
	char	cmd[4096], line[512] = "";
	FILE	*fp;
	int	 st;

	snprintf(cmd, sizeof(cmd), "T='%s' RG_SOURCE_DIR='%s' "
	    "RG_SLAPD_LIFETIME=300 bash -c '. \"$RG_SOURCE_DIR/test/"
	    "integration/lib_slapd.sh\"; %s'", tmpdir, srcdir, script);
	if ((fp = popen(cmd, "r")) == NULL)
		return -1;
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	while (fgetc(fp) != EOF)
		;
	st = pclose(fp);
	line[strcspn(line, "\n")] = '\0';
	snprintf(out, outlen, "%s", line);
	return st == 0 ? 0 : -1;
}

/* SIGTERM and reap (we are the subreaper); at most 10 s. */
static void
stop_pid(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (kill(pid, 0) == -1 && errno == ESRCH)
			return;
		if (i == 100)
			kill(pid, SIGKILL);
		rg_sleep_ms(50);
	}
}

static void
test_ldap_storm(void **state)
{
	struct storm	st = { 0 };
	char		out[512], uri[64];
	int		port, pid;

	if (access("/usr/sbin/slapd", X_OK) != 0)
		skip();
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (slapd_sh(out, sizeof(out), "rg_slapd_init s && rg_slapd_load s "
	    "$RG_LDAP_DIR/fixture.ldif && rg_slapd_start s && "
	    "echo $SLAPD_PORT_s $SLAPD_PID_s") == -1 ||
	    sscanf(out, "%d %d", &port, &pid) != 2)
		fail_msg("slapd did not start; see %s", tmpdir);
	snprintf(uri, sizeof(uri), "ldap://127.0.0.1:%d/", port);
	snprintf(st.backend, sizeof(st.backend), "backends = corp\n"
	    "[backend corp]\ntype = ldap\nuri = %s\n"
	    "base = dc=example,dc=com\npool_size = 3\ntimeout = 3s\n", uri);
	run_storm(&st);
	stop_pid((pid_t)pid);
}

/* ---- smtp-sink: accepts every recipient ---- */

static int
free_port(void)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	socklen_t		len = sizeof(sin);
	int			fd, port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static void
test_callahead_storm(void **state)
{
	struct storm	st = { 0 };
	char		where[64], hosts[64];
	pid_t		pid;
	int		port = free_port(), i;

	if (system("command -v smtp-sink >/dev/null 2>&1") != 0)
		skip();
	snprintf(where, sizeof(where), "127.0.0.1:%d", port);
	if ((pid = fork()) == 0) {
		/* smtp-sink refuses to run as root without -u */
		if (geteuid() == 0)
			execlp("smtp-sink", "smtp-sink", "-h", "sink.test",
			    "-u", "nobody", where, "64", (char *)NULL);
		else
			execlp("smtp-sink", "smtp-sink", "-h", "sink.test",
			    where, "64", (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	for (i = 0; i < 100; i++) {	/* up to 3 s */
		struct sockaddr_in	sin = { .sin_family = AF_INET };
		int			fd = socket(AF_INET, SOCK_STREAM, 0);

		sin.sin_port = htons((uint16_t)port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
			close(fd);
			break;
		}
		close(fd);
		rg_sleep_ms(30);
	}
	if (i == 100) {
		stop_pid(pid);
		fail_msg("smtp-sink did not start on %s", where);
	}
	snprintf(hosts, sizeof(hosts), "%s", where);
	snprintf(st.backend, sizeof(st.backend), "backends = inner\n"
	    "[backend inner]\ntype = callahead\nhosts = %s\n"
	    "helo = gw.example.test\ntimeout = 3s\nmax_connections = 2\n"
	    "accept_all_check = 0\n", hosts);
	st.accept_all = true;
	run_storm(&st);
	stop_pid(pid);
}

static int
group_setup(void **state)
{
	const char	*env = getenv("RG_SOURCE_DIR");

	if (env != NULL)
		snprintf(srcdir, sizeof(srcdir), "%s", env);
	else	/* __FILE__ is test/unit/test_engine_storm.c */
		snprintf(srcdir, sizeof(srcdir), "%.*s/../..",
		    (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/rg-storm-unit.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	chmod(tmpdir, 0755);
	return 0;
}

static int
group_teardown(void **state)
{
	char	cmd[PATH_MAX + 16];

	if (tmpdir[0] != '\0' && getenv("RG_KEEP") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sqlite_storm),
		cmocka_unit_test(test_ldap_storm),
		cmocka_unit_test(test_callahead_storm),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
