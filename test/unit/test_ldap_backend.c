/* SPDX-License-Identifier: MIT */
/*
 * The LDAP backend against real slapd servers (no mocks): private slapd
 * instances on free loopback ports, started through
 * test/integration/lib_slapd.sh with the fixture of
 * test/integration/ldap/. Covers the AD and OpenLDAP presets, escaping
 * (injection), binds, failover and failback, a stopped and restarted
 * server, a server that never answers, the pool and the key checks.
 *
 * slapd is started by a shell that exits at once; this process makes
 * itself the subreaper so it can wait for the orphaned slapd, and
 * RG_SLAPD_LIFETIME bounds how long a slapd outlives a crashed test.
 * Skipped (exit 77 in the cmocka sense: all tests skipped) without slapd.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "rg_time.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define BASE		"dc=example,dc=com"

static char	 tmpdir[64];
static char	 srcdir[1024];
static bool	 have_slapd;
static int	 port_a, port_b;	/* a: always up; b: stopped/started */
static pid_t	 pid_a, pid_b;
static char	 uri_a[64], uri_b[64], ldapi_a[320];

/* ---- servers ---- */

/* Run a lib_slapd.sh snippet; its first stdout line into out. */
static int
slapd_sh(char *out, size_t outlen, const char *fmt, ...)
{
	char	script[2048], cmd[4096], line[512] = "";
	va_list	ap;
	FILE	*fp;
	int	 st;

	va_start(ap, fmt);
	vsnprintf(script, sizeof(script), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "T='%s' RG_SOURCE_DIR='%s' "
	    "RG_SLAPD_LIFETIME=600 bash -c '. \"$RG_SOURCE_DIR/test/"
	    "integration/lib_slapd.sh\"; %s'", tmpdir, srcdir, script);
	if ((fp = popen(cmd, "r")) == NULL)
		return -1;
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	while (fgetc(fp) != EOF)
		;
	st = pclose(fp);
	line[strcspn(line, "\n")] = '\0';
	if (out != NULL)
		snprintf(out, outlen, "%s", line);
	return st == 0 ? 0 : -1;
}

static int
slapd_start(const char *name, int *port, pid_t *pid)
{
	char	out[256];
	int	p, d;

	if (slapd_sh(out, sizeof(out), "rg_slapd_start %s && "
	    "echo $SLAPD_PORT_%s $SLAPD_PID_%s", name, name, name) == -1 ||
	    sscanf(out, "%d %d", &p, &d) != 2)
		return -1;
	*port = p;
	*pid = (pid_t)d;
	return 0;
}

/* Restart on the known port (the shell variable is passed in). */
static int
slapd_restart(const char *name, int port, pid_t *pid)
{
	char	out[256];
	int	p, d;

	if (slapd_sh(out, sizeof(out), "SLAPD_PORT_%s=%d; rg_slapd_start %s "
	    "&& echo $SLAPD_PORT_%s $SLAPD_PID_%s", name, port, name, name,
	    name) == -1 || sscanf(out, "%d %d", &p, &d) != 2 || p != port)
		return -1;
	*pid = (pid_t)d;
	return 0;
}

/* SIGTERM and reap (we are the subreaper); at most 10 s. */
static void
slapd_stop(pid_t *pid)
{
	int	st;

	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		while (waitpid(-1, &st, WNOHANG) > 0)
			;
		if (kill(*pid, 0) == -1 && errno == ESRCH)
			break;
		if (i == 100)
			kill(*pid, SIGKILL);
		rg_sleep_ms(50);
	}
	*pid = 0;
}

/* A loopback port nothing listens on. */
static int
dead_port(void)
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

/* A listener that completes TCP handshakes (kernel backlog) and never
 * reads or answers: a hung LDAP server. Returns the fd; *port set. */
static int
hung_listener(int *port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	socklen_t		len = sizeof(sin);
	int			fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static int
group_setup(void **state)
{
	const char	*env = getenv("RG_SOURCE_DIR");
	char		 out[256];

	if (env != NULL)
		snprintf(srcdir, sizeof(srcdir), "%s", env);
	else	/* __FILE__ is test/unit/test_ldap_backend.c */
		snprintf(srcdir, sizeof(srcdir), "%.*s/../..",
		    (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__);
	if (access("/usr/sbin/slapd", X_OK) != 0) {
		fprintf(stderr, "no /usr/sbin/slapd: skipping\n");
		return 0;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/rg-ldap-unit.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	chmod(tmpdir, 0755);
	if (slapd_sh(NULL, 0, "rg_slapd_init a && rg_slapd_init b && "
	    "rg_slapd_load a $RG_LDAP_DIR/fixture.ldif && "
	    "rg_slapd_load b $RG_LDAP_DIR/fixture.ldif") == -1 ||
	    slapd_start("a", &port_a, &pid_a) == -1 ||
	    slapd_start("b", &port_b, &pid_b) == -1) {
		fprintf(stderr, "slapd did not start; see %s\n", tmpdir);
		return -1;
	}
	slapd_stop(&pid_b);	/* b is started by the tests that need it */
	snprintf(uri_a, sizeof(uri_a), "ldap://127.0.0.1:%d/", port_a);
	snprintf(uri_b, sizeof(uri_b), "ldap://127.0.0.1:%d/", port_b);
	if (slapd_sh(out, sizeof(out), "SLAPD_PORT_a=%d; echo "
	    "ldapi://$(rg_slapd_urlenc $T/slapd-a/ldapi)/", port_a) == -1)
		return -1;
	snprintf(ldapi_a, sizeof(ldapi_a), "%s", out);
	have_slapd = true;
	return 0;
}

static int
group_teardown(void **state)
{
	char	cmd[PATH_MAX + 16];

	slapd_stop(&pid_a);
	slapd_stop(&pid_b);
	if (tmpdir[0] != '\0' && getenv("RG_KEEP") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	return 0;
}

#define NEED_SLAPD()	do { if (!have_slapd) skip(); } while (0)

/* ---- backends from key lists ---- */

struct kv {
	const char	*k, *v;
};

static struct rg_section *
sec_new(const struct kv *kv)
{
	struct rg_section	*s = calloc(1, sizeof(*s));
	size_t			 n = 0;

	assert_non_null(s);
	while (kv[n].k != NULL)
		n++;
	s->name = strdup("corp");
	s->file = "test.conf";
	s->line = 10;
	s->n = n + 1;
	s->kv = calloc(n + 1, sizeof(*s->kv));
	s->kv[0].key = strdup("type");
	s->kv[0].value = strdup("ldap");
	s->kv[0].line = 11;
	for (size_t i = 0; i < n; i++) {
		s->kv[i + 1].key = strdup(kv[i].k);
		s->kv[i + 1].value = strdup(kv[i].v);
		s->kv[i + 1].line = 12 + (int)i;
	}
	return s;
}

static void
sec_free(struct rg_section *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->kv[i].key);
		free(s->kv[i].value);
	}
	free(s->kv);
	free(s->name);
	free(s);
}

/* Open a backend; returns open()'s status, err filled. */
static int
be_open(struct rg_backend *b, const struct kv *kv, struct rg_error *err)
{
	struct rg_section	*s = sec_new(kv);
	int			 rc;

	memset(b, 0, sizeof(*b));
	b->ops = &rg_backend_ldap_ops;
	snprintf(b->name, sizeof(b->name), "corp");
	rg_error_clear(err);
	rc = b->ops->open(b, s, err);
	sec_free(s);	/* the driver must have copied what it keeps */
	return rc;
}

static void
be_open_ok(struct rg_backend *b, const struct kv *kv)
{
	struct rg_error	err;

	if (be_open(b, kv, &err) != 0)
		fail_msg("open: %s", err.msg);
}

static enum rg_result
be_lookup(struct rg_backend *b, const char *addr, uint64_t budget_ms,
    char *trace, size_t tracelen)
{
	char		 local[512];
	const char	*at = strrchr(addr, '@');
	struct rg_query	 q;
	struct rg_error	 err;
	enum rg_result	 r;

	assert_non_null(at);
	snprintf(local, sizeof(local), "%.*s", (int)(at - addr), addr);
	q.key = addr;
	q.local = local;
	q.domain = at + 1;
	q.deadline_ms = rg_now_ms() + budget_ms;
	q.trace = trace;
	q.tracelen = tracelen;
	rg_error_clear(&err);
	r = b->ops->lookup(b, &q, &err);
	if (r == RG_TEMPFAIL)
		assert_true(err.count > 0);	/* a failure says why */
	return r;
}

struct lk {
	const char	*addr;
	enum rg_result	 want;
};

static void
run_table(struct rg_backend *b, const struct lk *t, size_t n)
{
	char	trace[512];

	for (size_t i = 0; i < n; i++) {
		enum rg_result	r = be_lookup(b, t[i].addr, 5000, trace,
				    sizeof(trace));

		if (r != t[i].want)
			fail_msg("%s: got %s want %s (%s)", t[i].addr,
			    rg_result_str(r), rg_result_str(t[i].want), trace);
	}
}

/* ---- the tests ---- */

static void
test_ad_preset(void **state)
{
	static const struct lk t[] = {
		{ "alice@example.com", RG_FOUND },		/* mail */
		{ "ALICE@Example.COM", RG_FOUND },
		{ "alice.smith@example.com", RG_FOUND },	/* smtp: */
		{ "Alice.Smith@EXAMPLE.com", RG_FOUND },
		/* stored as smtp:Carol.White@Example.COM */
		{ "carol.white@example.com", RG_FOUND },
		{ "sales@example.com", RG_FOUND },		/* group */
		{ "team@example.com", RG_FOUND },	/* group, smtp: */
		{ "partner@example.com", RG_FOUND },		/* contact */
		{ "dave@example.com", RG_FOUND },	/* disabled, kept */
		{ "bob@example.com", RG_FOUND },
		{ "xonly@example.com", RG_NOTFOUND },		/* only X500: */
		{ "siponly@example.com", RG_NOTFOUND },	/* only SIP: */
		{ "xonly2@example.com", RG_NOTFOUND },	/* x500:smtp: */
		{ "alice.sip@example.com", RG_NOTFOUND },	/* SIP: */
		{ "nobody@example.com", RG_NOTFOUND },
		{ "alice@example.org", RG_NOTFOUND },
		/* injection: would match if pasted in unescaped */
		{ "*@example.com", RG_NOTFOUND },
		{ "x*@example.com", RG_NOTFOUND },
		{ "a)(mail=*@example.com", RG_NOTFOUND },
		{ "*)(|(mail=*@example.com", RG_NOTFOUND },
		{ "alice@example.com)(mail=*", RG_NOTFOUND },
		{ "\\2a@example.com", RG_NOTFOUND },
		{ "*@*", RG_NOTFOUND },
		{ "@example.com", RG_NOTFOUND },	/* catch-all */
	};
	const struct kv	kv[] = {
		{ "uri", uri_a }, { "base", BASE },
		{ "preset", "activedirectory" }, { NULL, NULL }
	};
	struct rg_backend	b;

	NEED_SLAPD();
	be_open_ok(&b, kv);
	run_table(&b, t, NELEM(t));
	b.ops->close(&b);
}

static void
test_ad_exclude_disabled(void **state)
{
	static const struct lk t[] = {
		{ "dave@example.com", RG_NOTFOUND },	/* uAC 514 */
		{ "erin@example.com", RG_FOUND },	/* uAC 512 */
		{ "alice.smith@example.com", RG_FOUND },
		{ "bob@example.com", RG_FOUND },	/* no uAC at all */
		{ "sales@example.com", RG_FOUND },
		{ "partner@example.com", RG_FOUND },
		{ "*@example.com", RG_NOTFOUND },
	};
	const struct kv	kv[] = {
		{ "uri", uri_a }, { "base", BASE },
		{ "preset", "activedirectory" }, { "exclude_disabled", "yes" },
		{ NULL, NULL }
	};
	struct rg_backend	b;

	NEED_SLAPD();
	be_open_ok(&b, kv);
	run_table(&b, t, NELEM(t));
	b.ops->close(&b);
}

static void
test_openldap_and_custom(void **state)
{
	static const struct lk t_ol[] = {
		{ "bob@example.com", RG_FOUND },
		{ "alice@example.com", RG_FOUND },
		{ "alice.smith@example.com", RG_NOTFOUND },	/* proxy only */
		{ "carol.white@example.com", RG_NOTFOUND },
		{ "*@example.com", RG_NOTFOUND },
	};
	static const struct lk t_custom[] = {
		{ "alice@example.com", RG_FOUND },
		{ "bob@example.com", RG_FOUND },
		{ "bob@example.org", RG_NOTFOUND },
		{ "*@example.com", RG_NOTFOUND },
		{ "b*@example.com", RG_NOTFOUND },
	};
	static const struct lk t_attr[] = {
		{ "alice@example.com", RG_FOUND },	/* has proxyAddresses */
		{ "bob@example.com", RG_NOTFOUND },	/* has none */
	};
	static const struct lk t_one[] = {
		/* scope one under the suffix: people are a level deeper */
		{ "alice@example.com", RG_NOTFOUND },
	};
	const struct kv	kv_ol[] = {
		{ "uri", uri_a }, { "base", BASE }, { NULL, NULL }
	};
	const struct kv	kv_custom[] = {
		{ "uri", uri_a }, { "base", "ou=people," BASE },
		{ "scope", "one" },
		{ "filter",
		  "(&(uid=%u)(mail=%u@%d)(objectClass=inetOrgPerson))" },
		{ NULL, NULL }
	};
	const struct kv	kv_attr[] = {
		{ "uri", uri_a }, { "base", BASE },
		{ "result_attribute", "proxyAddresses" }, { NULL, NULL }
	};
	const struct kv	kv_one[] = {
		{ "uri", uri_a }, { "base", BASE }, { "scope", "one" },
		{ NULL, NULL }
	};
	struct rg_backend	b;

	NEED_SLAPD();
	be_open_ok(&b, kv_ol);
	run_table(&b, t_ol, NELEM(t_ol));
	b.ops->close(&b);
	be_open_ok(&b, kv_custom);
	run_table(&b, t_custom, NELEM(t_custom));
	b.ops->close(&b);
	be_open_ok(&b, kv_attr);
	run_table(&b, t_attr, NELEM(t_attr));
	b.ops->close(&b);
	be_open_ok(&b, kv_one);
	run_table(&b, t_one, NELEM(t_one));
	b.ops->close(&b);
}

static void
test_trace_and_overflow(void **state)
{
	const struct kv	kv[] = {
		{ "uri", uri_a }, { "base", BASE },
		{ "preset", "activedirectory" }, { NULL, NULL }
	};
	struct rg_backend	b;
	char			trace[512], want[600], longaddr[1500];

	NEED_SLAPD();
	be_open_ok(&b, kv);
	assert_int_equal(be_lookup(&b, "a)(mail=*@example.com", 5000, trace,
	    sizeof(trace)), RG_NOTFOUND);
	/* the escaped filter and the server that answered */
	snprintf(want, sizeof(want), "filter=(|(mail=a\\29\\28mail=\\2a@"
	    "example.com)(proxyAddresses=smtp:a\\29\\28mail=\\2a@example.com))"
	    " server=%s", uri_a);
	if (strstr(trace, want) == NULL)
		fail_msg("trace [%s] lacks [%s]", trace, want);
	/* 1400 '*' escape to 4200 bytes: over the filter buffer. An error
	 * (tempfail), never a truncated filter that might match. */
	memset(longaddr, '*', 1400);
	strcpy(longaddr + 1400, "@example.com");
	assert_int_equal(be_lookup(&b, longaddr, 5000, trace, sizeof(trace)),
	    RG_TEMPFAIL);
	b.ops->close(&b);
}

static void
test_keys(void **state)
{
	static const struct {
		struct kv	kv[6];
		const char	*want;	/* in the message; NULL: opens */
	} cases[] = {
		{ { { "base", BASE } }, "'uri'" },
		{ { { "uri", "http://x/" }, { "base", BASE } }, "'uri'" },
		{ { { "uri", "ldap://127.0.0.1:1/" } }, "'base'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "scope", "subtree" } }, "'scope'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "preset", "exchange" } }, "'preset'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "exclude_disabled", "yes" } }, "'exclude_disabled'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "filter", "(mail=%s" } }, "'filter'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "filter", "(mail=*)" } }, "'filter'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "filter", "(mail=%q)" } }, "'filter'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "bind_dn", "cn=x" } }, "'bind_dn'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "bind_dn", "cn=x" },
		    { "bind_password_file", "/nonexistent/pw" } },
		  "'bind_password_file'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "sasl_mech", "PLAIN" } }, "'sasl_mech'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "sasl_mech", "EXTERNAL" } }, "'sasl_mech'" },
		{ { { "uri", "ldaps://127.0.0.1:1/" }, { "base", BASE },
		    { "starttls", "yes" } }, "'starttls'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "tls_ca_file", "/nonexistent/ca.pem" } },
		  "'tls_ca_file'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "timeout", "0s" } }, "'timeout'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "pool_size", "0" } }, "'pool_size'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "result_attribute", "a b" } }, "'result_attribute'" },
		{ { { "uri", "ldap://127.0.0.1:1/" }, { "base", BASE },
		    { "colour", "blue" } }, "'colour'" },
		{ { { "uri", "ldap://127.0.0.1:1/ ldaps://h:636/ "
		    "ldapi://%2Frun%2Fslapd%2Fldapi/" }, { "base", BASE },
		    { "preset", "activedirectory" },
		    { "exclude_disabled", "yes" }, { "timeout", "2s" } },
		  NULL },
	};
	struct rg_backend	b;
	struct rg_error		err;

	for (size_t i = 0; i < NELEM(cases); i++) {
		int	rc = be_open(&b, cases[i].kv, &err);

		if (cases[i].want == NULL) {
			if (rc != 0)
				fail_msg("case %zu: %s", i, err.msg);
			/* open() must not connect: a dead URI opens fine */
			b.ops->close(&b);
			continue;
		}
		if (rc != -1)
			fail_msg("case %zu opened; want error %s", i,
			    cases[i].want);
		/* file, line and key named */
		if (strstr(err.msg, "test.conf:") == NULL ||
		    strstr(err.msg, cases[i].want) == NULL)
			fail_msg("case %zu: [%s] lacks %s", i, err.msg,
			    cases[i].want);
	}
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE	*fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	chmod(path, mode);
}

static void
test_bind(void **state)
{
	char		good[PATH_MAX], bad[PATH_MAX], empty[PATH_MAX];
	struct kv	kv[] = {
		{ "uri", uri_a }, { "base", BASE },
		{ "bind_dn", "cn=rcptgate,ou=services," BASE },
		{ "bind_password_file", good }, { NULL, NULL }
	};
	struct rg_backend	b;
	struct rg_error		err, warn;

	NEED_SLAPD();
	snprintf(good, sizeof(good), "%s/good.secret", tmpdir);
	snprintf(bad, sizeof(bad), "%s/bad.secret", tmpdir);
	snprintf(empty, sizeof(empty), "%s/empty.secret", tmpdir);
	write_file(good, "s3cret\n", 0600);	/* newline stripped */
	write_file(bad, "wrong\n", 0600);
	write_file(empty, "\n", 0600);

	be_open_ok(&b, kv);
	rg_error_clear(&err);
	rg_error_clear(&warn);
	assert_int_equal(b.ops->check(&b, &err, &warn), 0);
	assert_int_equal(be_lookup(&b, "alice@example.com", 5000, NULL, 0),
	    RG_FOUND);
	b.ops->close(&b);

	kv[3].v = bad;
	be_open_ok(&b, kv);
	rg_error_clear(&err);
	rg_error_clear(&warn);
	/* What the directory said is a loud warning, not a configuration
	 * error: -n exits 0 and rcptgate starts (issue 12, point 11). */
	assert_int_equal(b.ops->check(&b, &err, &warn), 0);
	/* clear: names the DN, the server and the reason */
	if (strstr(warn.msg, "Invalid credentials") == NULL ||
	    strstr(warn.msg, "cn=rcptgate,ou=services") == NULL ||
	    strstr(warn.msg, uri_a) == NULL ||
	    strstr(warn.msg, "DIRECTORY UNUSABLE NOW") == NULL)
		fail_msg("check message: %s", warn.msg);
	/* a refused bind is a tempfail, never "unknown" */
	assert_int_equal(be_lookup(&b, "alice@example.com", 5000, NULL, 0),
	    RG_TEMPFAIL);
	assert_int_equal(be_lookup(&b, "nobody@example.com", 5000, NULL, 0),
	    RG_TEMPFAIL);
	b.ops->close(&b);

	/* an empty password would be an anonymous bind: refused at open */
	kv[3].v = empty;
	assert_int_equal(be_open(&b, kv, &err), -1);
	assert_non_null(strstr(err.msg, "bind_password_file"));
}

static void
test_sasl_external(void **state)
{
	const struct kv	kv[] = {
		{ "uri", ldapi_a }, { "base", BASE },
		{ "sasl_mech", "EXTERNAL" }, { NULL, NULL }
	};
	struct rg_backend	b;
	struct rg_error		err, warn;
	char			trace[512];

	NEED_SLAPD();
	be_open_ok(&b, kv);
	rg_error_clear(&err);
	rg_error_clear(&warn);
	if (b.ops->check(&b, &err, &warn) != 0)
		fail_msg("check: %s", err.msg);
	assert_int_equal(be_lookup(&b, "bob@example.com", 5000, trace,
	    sizeof(trace)), RG_FOUND);
	assert_non_null(strstr(trace, "server=ldapi://"));
	b.ops->close(&b);
}

static void
test_no_such_base(void **state)
{
	const struct kv	kv[] = {
		{ "uri", uri_a }, { "base", "dc=nowhere,dc=test" },
		{ NULL, NULL }
	};
	struct rg_backend	b;
	struct rg_error		err, warn;

	NEED_SLAPD();
	be_open_ok(&b, kv);
	assert_int_equal(be_lookup(&b, "alice@example.com", 5000, NULL, 0),
	    RG_TEMPFAIL);
	rg_error_clear(&err);
	rg_error_clear(&warn);
	assert_int_equal(b.ops->check(&b, &err, &warn), 0);
	assert_non_null(strstr(warn.msg, "dc=nowhere"));
	assert_non_null(strstr(warn.msg, "DIRECTORY UNUSABLE NOW"));
	b.ops->close(&b);
}

static void
test_failover(void **state)
{
	char		uris[256], trace[512];
	const struct kv	kv[] = {
		{ "uri", uris }, { "base", BASE }, { "timeout", "2s" },
		{ NULL, NULL }
	};
	struct rg_backend	b;
	struct rg_error		err, warn;

	NEED_SLAPD();
	snprintf(uris, sizeof(uris), "ldap://127.0.0.1:%d/ %s", dead_port(),
	    uri_a);
	be_open_ok(&b, kv);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(be_lookup(&b, "bob@example.com", 5000, trace,
		    sizeof(trace)), RG_FOUND);
		assert_non_null(strstr(trace, uri_a));
	}
	/* -n: usable, with a warning about the dead one */
	rg_error_clear(&err);
	rg_error_clear(&warn);
	assert_int_equal(b.ops->check(&b, &err, &warn), 0);
	assert_true(warn.count == 1);
	b.ops->close(&b);
}

/*
 * Stopped server: tempfail (never notfound); started again: found, on
 * the same backend (stale handles rebuilt). And failback: with b first
 * and a second, lookups move to a while b is down, back to b after the
 * holdoff once b runs again.
 */
static void
test_restart_and_failback(void **state)
{
	char		uris[256], trace[512];
	const struct kv	kv_b[] = {
		{ "uri", uri_b }, { "base", BASE }, { "timeout", "2s" },
		{ "failback", "1s" }, { "pool_size", "2" }, { NULL, NULL }
	};
	const struct kv	kv_ba[] = {
		{ "uri", uris }, { "base", BASE }, { "timeout", "2s" },
		{ "failback", "1s" }, { "pool_size", "1" }, { NULL, NULL }
	};
	struct rg_backend	b, fb;
	uint64_t		t0;

	NEED_SLAPD();
	snprintf(uris, sizeof(uris), "%s %s", uri_b, uri_a);
	assert_int_equal(slapd_restart("b", port_b, &pid_b), 0);
	be_open_ok(&b, kv_b);
	be_open_ok(&fb, kv_ba);
	assert_int_equal(be_lookup(&b, "alice@example.com", 5000, NULL, 0),
	    RG_FOUND);
	assert_int_equal(be_lookup(&fb, "alice@example.com", 5000, trace,
	    sizeof(trace)), RG_FOUND);
	assert_non_null(strstr(trace, uri_b));

	slapd_stop(&pid_b);
	t0 = rg_now_ms();
	assert_int_equal(be_lookup(&b, "alice@example.com", 5000, NULL, 0),
	    RG_TEMPFAIL);
	assert_int_equal(be_lookup(&b, "nobody@example.com", 5000, NULL, 0),
	    RG_TEMPFAIL);
	/* refused connections: fast, not the timeout */
	assert_true(rg_now_ms() - t0 < 1500);
	assert_int_equal(be_lookup(&fb, "alice@example.com", 5000, trace,
	    sizeof(trace)), RG_FOUND);
	assert_non_null(strstr(trace, uri_a));

	assert_int_equal(slapd_restart("b", port_b, &pid_b), 0);
	assert_int_equal(be_lookup(&b, "alice@example.com", 5000, NULL, 0),
	    RG_FOUND);
	assert_int_equal(be_lookup(&b, "nobody@example.com", 5000, NULL, 0),
	    RG_NOTFOUND);
	/* failback after the 1 s holdoff; bounded wait */
	for (int i = 0; i < 30; i++) {
		assert_int_equal(be_lookup(&fb, "alice@example.com", 5000,
		    trace, sizeof(trace)), RG_FOUND);
		if (strstr(trace, uri_b) != NULL)
			break;
		rg_sleep_ms(100);
	}
	assert_non_null(strstr(trace, uri_b));

	/* a restart under a live pooled handle: the dead handle is
	 * rebuilt and the search retried once, so no tempfail at all */
	slapd_stop(&pid_b);
	assert_int_equal(slapd_restart("b", port_b, &pid_b), 0);
	assert_int_equal(be_lookup(&b, "bob@example.com", 5000, NULL, 0),
	    RG_FOUND);
	b.ops->close(&b);
	fb.ops->close(&fb);
	slapd_stop(&pid_b);
}

struct hung_arg {
	struct rg_backend	*b;
	uint64_t		 budget_ms;
	enum rg_result		 r;
	uint64_t		 took_ms;
};

static void *
hung_thread(void *p)
{
	struct hung_arg	*a = p;
	uint64_t	 t0 = rg_now_ms();

	a->r = be_lookup(a->b, "alice@example.com", a->budget_ms, NULL, 0);
	a->took_ms = rg_now_ms() - t0;
	return NULL;
}

static void
test_hung_server(void **state)
{
	char		uri[64];
	const struct kv	kv[] = {
		{ "uri", uri }, { "base", BASE }, { "timeout", "1s" },
		{ "pool_size", "1" }, { NULL, NULL }
	};
	struct rg_backend	b;
	struct hung_arg		a1, a2;
	pthread_t		t1, t2;
	uint64_t		t0, took;
	int			fd, port;

	fd = hung_listener(&port);
	snprintf(uri, sizeof(uri), "ldap://127.0.0.1:%d/", port);
	be_open_ok(&b, kv);

	/* timeout 1s: tempfail after about 1s, not before, not much after */
	t0 = rg_now_ms();
	assert_int_equal(be_lookup(&b, "alice@example.com", 10000, NULL, 0),
	    RG_TEMPFAIL);
	took = rg_now_ms() - t0;
	fprintf(stderr, "hung server, timeout 1s: tempfail after %llu ms\n",
	    (unsigned long long)took);
	assert_true(took >= 900 && took < 1600);

	/* a deadline shorter than timeout wins */
	t0 = rg_now_ms();
	assert_int_equal(be_lookup(&b, "alice@example.com", 300, NULL, 0),
	    RG_TEMPFAIL);
	took = rg_now_ms() - t0;
	fprintf(stderr, "hung server, deadline 300ms: tempfail after %llu "
	    "ms\n", (unsigned long long)took);
	assert_true(took >= 250 && took < 700);

	/* pool of one held by a hung lookup: a second caller waits only
	 * until its own deadline */
	a1 = (struct hung_arg){ &b, 10000, RG_FOUND, 0 };
	a2 = (struct hung_arg){ &b, 300, RG_FOUND, 0 };
	assert_int_equal(pthread_create(&t1, NULL, hung_thread, &a1), 0);
	rg_sleep_ms(100);
	assert_int_equal(pthread_create(&t2, NULL, hung_thread, &a2), 0);
	pthread_join(t2, NULL);
	pthread_join(t1, NULL);
	assert_int_equal(a1.r, RG_TEMPFAIL);
	assert_int_equal(a2.r, RG_TEMPFAIL);
	assert_true(a2.took_ms >= 250 && a2.took_ms < 700);
	assert_true(a1.took_ms >= 900 && a1.took_ms < 1600);
	b.ops->close(&b);
	close(fd);
}

struct storm_arg {
	struct rg_backend	*b;
	int			 id;
	int			 bad;
};

static void *
storm_thread(void *p)
{
	static const struct lk	t[] = {
		{ "alice@example.com", RG_FOUND },
		{ "nobody@example.com", RG_NOTFOUND },
		{ "team@example.com", RG_FOUND },
		{ "*@example.com", RG_NOTFOUND },
	};
	struct storm_arg	*a = p;

	for (int i = 0; i < 100; i++) {
		const struct lk	*c = &t[(i + a->id) % NELEM(t)];

		if (be_lookup(a->b, c->addr, 5000, NULL, 0) != c->want)
			a->bad++;
	}
	return NULL;
}

static void
test_pool_storm(void **state)
{
	const struct kv	kv[] = {
		{ "uri", uri_a }, { "base", BASE },
		{ "preset", "activedirectory" }, { "pool_size", "3" },
		{ NULL, NULL }
	};
	struct rg_backend	b;
	struct storm_arg	a[12];
	pthread_t		t[12];
	char			stats[256];

	NEED_SLAPD();
	be_open_ok(&b, kv);
	for (int i = 0; i < 12; i++) {
		a[i] = (struct storm_arg){ &b, i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, storm_thread,
		    &a[i]), 0);
	}
	for (int i = 0; i < 12; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].bad, 0);
	}
	b.ops->stats(&b, stats, sizeof(stats));
	fprintf(stderr, "storm: %s\n", stats);
	assert_non_null(strstr(stats, "lookups=1200 "));
	assert_non_null(strstr(stats, "connections=3/3"));
	b.ops->close(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_ad_preset),
		cmocka_unit_test(test_ad_exclude_disabled),
		cmocka_unit_test(test_openldap_and_custom),
		cmocka_unit_test(test_trace_and_overflow),
		cmocka_unit_test(test_bind),
		cmocka_unit_test(test_sasl_external),
		cmocka_unit_test(test_no_such_base),
		cmocka_unit_test(test_failover),
		cmocka_unit_test(test_restart_and_failback),
		cmocka_unit_test(test_hung_server),
		cmocka_unit_test(test_pool_storm),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
