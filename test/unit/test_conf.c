/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the configuration loader (lib/conf*.c): SPEC.md's example,
 * defaults, every kind of error with its file:line and key, durations,
 * networks and matching, [domain] inheritance, rg_conf_policy_for,
 * refcounting, loading real files, the rg_section_* driver helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"

#define ARRAY_LEN(a)	(sizeof(a) / sizeof((a)[0]))

/* SPEC.md's example, verbatim, inline comments and all. */
static const char spec_example[] =
"[milter]\n"
"socket = unix:/run/rcptgate/rcptgate.sock   ; or inet:PORT@HOST, inet6:PORT@HOST\n"
"user = rcptgate\n"
"log_level = info                            ; error | warning | info | debug\n"
"\n"
"[policy]\n"
"domains = example.com, example.org   ; recipient domains to check; others pass untouched. `*` = all\n"
"backends = local, corp               ; consulted in order; the first definite answer wins\n"
"subaddress_delimiter = +             ; user+tag@d is also looked up as user@d (empty: off)\n"
"always_accept = postmaster, abuse    ; local parts accepted in every checked domain (RFC 5321 4.5.1)\n"
"on_backend_failure = tempfail        ; tempfail | accept   (never reject on failure)\n"
"skip_authenticated = yes             ; SMTP AUTH clients are not checked\n"
"trusted_networks = 127.0.0.0/8, ::1  ; clients not checked\n"
"deadline = 8s                        ; whole budget for one recipient across all backends; must stay\n"
"                                     ; below the MTA's milter timeout (Sendmail's default read timeout\n"
"                                     ; is 10s, Postfix's milter_command_timeout 30s); `-n` warns when\n"
"                                     ; backend timeouts times hosts can exceed it\n"
"\n"
"[domain example.org]                 ; per-domain override of the policy keys\n"
"backends = exchange\n"
"\n"
"[backend local]\n"
"type = sqlite\n"
"path = /var/lib/rcptgate/recipients.db\n"
"; query = SELECT 1 FROM mailbox WHERE username = :address AND active = 1\n"
";   optional; named parameters :address, :local, :domain\n"
"\n"
"[backend corp]\n"
"type = ldap\n"
"uri = ldap://dc1.example.com ldap://dc2.example.com   ; tried in order (failover)\n"
"base = dc=example,dc=com\n"
"bind_dn = cn=rcptgate,ou=services,dc=example,dc=com\n"
"bind_password_file = /etc/rcptgate/ldap.secret\n"
"filter = (|(mail=%s)(proxyAddresses=smtp:%s))         ; %s address, %u local part, %d domain, RFC 4515-escaped\n"
"starttls = yes\n"
"timeout = 3s\n"
"\n"
"[backend exchange]\n"
"type = callahead\n"
"hosts = 192.0.2.10:25, 192.0.2.11:25   ; internal server(s), tried in order\n"
"helo = mx1.example.com\n"
"mail_from = <>\n"
"timeout = 3s\n"
"\n"
"[cache]\n"
"positive_ttl = 1h\n"
"negative_ttl = 10m\n"
"size = 100000                          ; entries; least recently used are dropped\n"
"stale_ttl = 1d                         ; outage mode: when every backend fails, a positive answer\n"
"                                       ; up to this old is still accepted; unseen addresses tempfail\n"
"\n"
"[harvest]\n"
"max_unknown = 5                        ; unknown recipients from one client within `window` before it is blocked\n"
"window = 10m\n"
"block_time = 1h\n"
"max_unknown_per_session = 3            ; within one SMTP session\n"
"ipv4_prefix = 32                       ; clients are counted per prefix\n"
"ipv6_prefix = 64\n"
"action = tempfail                      ; tempfail | reject\n"
"state = /var/lib/rcptgate/harvest.db   ; blocks survive a restart\n";

static struct rg_conf *
load_ok(const char *text)
{
	struct rg_error	 err;
	struct rg_conf	*c;

	c = rg_conf_load_string(text, "t.conf", &err);
	if (c == NULL)
		fail_msg("config did not load:\n%s\n--- text ---\n%s",
		    err.msg, text);
	assert_int_equal(err.count, 0);
	return c;
}

static void
assert_list(const struct rg_list *l, const char *const *want, size_t n)
{
	assert_int_equal(l->n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l->v[i], want[i]);
}

/* ---- SPEC.md example ---- */

static void
test_spec_example(void **state)
{
	static const char *const domains[] = { "example.com", "example.org" };
	static const char *const backends[] = { "local", "corp" };
	static const char *const always[] = { "postmaster", "abuse" };
	static const char *const exch[] = { "exchange" };
	struct rg_conf		*c = load_ok(spec_example);
	const struct rg_policy	*p = &c->policy, *dp;
	const struct rg_section	*b;
	int			 line;
	const struct {
		const char	*what;
		uint64_t	 got, want;
	} nums[] = {
		{ "log_level", (uint64_t)c->log_level, RG_LOG_INFO },
		{ "all_domains", c->all_domains, 0 },
		{ "on_backend_failure", p->on_backend_failure,
		    RG_FAILURE_TEMPFAIL },
		{ "skip_authenticated", p->skip_authenticated, 1 },
		{ "trusted n", p->trusted_networks.n, 2 },
		{ "deadline", p->deadline_ms, 8000 },
		{ "backend_idx[0]", p->backend_idx[0], 0 },
		{ "backend_idx[1]", p->backend_idx[1], 1 },
		{ "ndomains", c->ndomains, 1 },
		{ "nbackends", c->nbackends, 3 },
		{ "positive_ttl", c->positive_ttl_ms, 3600000 },
		{ "negative_ttl", c->negative_ttl_ms, 600000 },
		{ "size", c->cache_size, 100000 },
		{ "stale_ttl", c->stale_ttl_ms, 86400000 },
		{ "max_unknown", c->harvest_max_unknown, 5 },
		{ "window", c->harvest_window_ms, 600000 },
		{ "block_time", c->harvest_block_time_ms, 3600000 },
		{ "per_session", c->harvest_max_unknown_per_session, 3 },
		{ "ipv4_prefix", (uint64_t)c->harvest_ipv4_prefix, 32 },
		{ "ipv6_prefix", (uint64_t)c->harvest_ipv6_prefix, 64 },
		{ "action", c->harvest_action, RG_HARVEST_TEMPFAIL },
	};

	for (size_t i = 0; i < ARRAY_LEN(nums); i++)
		if (nums[i].got != nums[i].want)
			fail_msg("%s: got %llu, want %llu", nums[i].what,
			    (unsigned long long)nums[i].got,
			    (unsigned long long)nums[i].want);
	assert_string_equal(c->path, "t.conf");
	assert_string_equal(c->socket, "unix:/run/rcptgate/rcptgate.sock");
	assert_string_equal(c->user, "rcptgate");
	assert_list(&c->domains, domains, 2);
	assert_list(&p->backends, backends, 2);
	assert_string_equal(p->subaddress_delimiter, "+");
	assert_list(&p->always_accept, always, 2);
	assert_int_equal(p->trusted_networks.v[0].family, AF_INET);
	assert_int_equal(p->trusted_networks.v[0].prefix, 8);
	assert_int_equal(p->trusted_networks.v[1].family, AF_INET6);
	assert_int_equal(p->trusted_networks.v[1].prefix, 128);
	assert_string_equal(c->harvest_state, "/var/lib/rcptgate/harvest.db");

	/* [domain example.org]: own backends, the rest from [policy]. */
	assert_string_equal(c->domain[0].name, "example.org");
	assert_int_equal(c->domain[0].line, 19);
	dp = &c->domain[0].policy;
	assert_list(&dp->backends, exch, 1);
	assert_int_equal(dp->backend_idx[0], 2);
	assert_int_equal(dp->deadline_ms, 8000);
	assert_int_equal(dp->trusted_networks.n, 2);
	assert_list(&dp->always_accept, always, 2);
	assert_string_equal(dp->subaddress_delimiter, "+");
	assert_ptr_equal(rg_conf_policy_for(c, "example.org"), dp);
	assert_ptr_equal(rg_conf_policy_for(c, "example.com"), p);
	assert_null(rg_conf_policy_for(c, "example.net"));

	/* Raw backend sections, in file order, with lines. */
	assert_string_equal(c->backends[0].name, "local");
	assert_string_equal(c->backends[1].name, "corp");
	assert_string_equal(c->backends[2].name, "exchange");
	b = rg_conf_backend(c, "corp");
	assert_ptr_equal(b, &c->backends[1]);
	assert_int_equal(b->line, 28);
	assert_string_equal(b->file, "t.conf");
	assert_int_equal(b->n, 8);
	assert_string_equal(rg_section_get(b, "uri", &line),
	    "ldap://dc1.example.com ldap://dc2.example.com");
	assert_int_equal(line, 30);
	assert_string_equal(rg_section_get(b, "filter", NULL),
	    "(|(mail=%s)(proxyAddresses=smtp:%s))");
	assert_string_equal(rg_section_get(b, "base", NULL),
	    "dc=example,dc=com");
	b = rg_conf_backend(c, "exchange");
	assert_string_equal(rg_section_get(b, "mail_from", NULL), "<>");
	assert_string_equal(rg_section_get(b, "hosts", NULL),
	    "192.0.2.10:25, 192.0.2.11:25");
	b = rg_conf_backend(c, "local");
	assert_int_equal(b->n, 2);
	assert_string_equal(rg_section_get(b, "path", &line),
	    "/var/lib/rcptgate/recipients.db");
	assert_int_equal(line, 24);
	assert_null(rg_section_get(b, "query", NULL));
	assert_null(rg_conf_backend(c, "nope"));
	rg_conf_unref(c);
}

/* ---- defaults ---- */

static void
check_defaults(const struct rg_conf *c)
{
	static const char *const always[] = { "postmaster", "abuse" };
	const struct rg_policy *p = &c->policy;
	const struct {
		const char	*what;
		uint64_t	 got, want;
	} nums[] = {
		{ "log_level", (uint64_t)c->log_level, RG_LOG_INFO },
		{ "socket_mode", c->socket_mode, 0660 },
		{ "domains", c->domains.n, 0 },
		{ "all_domains", c->all_domains, 0 },
		{ "backends", p->backends.n, 0 },
		{ "on_backend_failure", p->on_backend_failure,
		    RG_FAILURE_TEMPFAIL },
		{ "skip_authenticated", p->skip_authenticated, 1 },
		{ "trusted_networks", p->trusted_networks.n, 0 },
		{ "deadline", p->deadline_ms, 8000 },
		{ "ndomains", c->ndomains, 0 },
		{ "nbackends", c->nbackends, 0 },
		{ "positive_ttl", c->positive_ttl_ms, 3600000 },
		{ "negative_ttl", c->negative_ttl_ms, 600000 },
		{ "size", c->cache_size, 100000 },
		{ "stale_ttl", c->stale_ttl_ms, 86400000 },
		{ "max_unknown", c->harvest_max_unknown, 5 },
		{ "window", c->harvest_window_ms, 600000 },
		{ "block_time", c->harvest_block_time_ms, 3600000 },
		{ "per_session", c->harvest_max_unknown_per_session, 3 },
		{ "ipv4_prefix", (uint64_t)c->harvest_ipv4_prefix, 32 },
		{ "ipv6_prefix", (uint64_t)c->harvest_ipv6_prefix, 64 },
		{ "action", c->harvest_action, RG_HARVEST_TEMPFAIL },
		{ "tarpit", c->harvest_tarpit_ms, 0 },
		{ "tarpit_max", c->harvest_tarpit_max_ms, 16000 },
		{ "tarpit_sessions", c->harvest_tarpit_sessions, 64 },
		{ "exempt", c->harvest_exempt.n, 2 },	/* 127.0.0.0/8, ::1 */
		{ "block_allows_postmaster",
		    c->harvest_block_allows_postmaster, 0 },
		{ "max_clients", c->harvest_max_clients, 100000 },
		{ "refs", (uint64_t)c->refs, 1 },
	};

	for (size_t i = 0; i < ARRAY_LEN(nums); i++)
		if (nums[i].got != nums[i].want)
			fail_msg("%s: got %llu, want %llu", nums[i].what,
			    (unsigned long long)nums[i].got,
			    (unsigned long long)nums[i].want);
	assert_string_equal(c->socket, "unix:/run/rcptgate/rcptgate.sock");
	assert_string_equal(c->user, "rcptgate");
	assert_string_equal(p->subaddress_delimiter, "+");
	assert_list(&p->always_accept, always, 2);
	assert_string_equal(c->harvest_state, "/var/lib/rcptgate/harvest.db");
	assert_null(rg_conf_policy_for(c, "example.com"));
}

static void
test_defaults(void **state)
{
	static const char *const texts[] = {
		"", "\n", "; only a comment\n# another\n",
		"[milter]\n[policy]\n[cache]\n[harvest]\n",
	};
	struct rg_conf	*c = rg_conf_defaults();

	assert_non_null(c);
	check_defaults(c);
	rg_conf_unref(c);
	for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
		c = load_ok(texts[i]);
		check_defaults(c);
		rg_conf_unref(c);
	}
}

/* ---- values that load, and what they become ---- */

static void
test_values(void **state)
{
	static const struct {
		const char	*text;
		const char	*socket, *state, *delim;
	} cases[] = {
		{ "[milter]\nsocket = /run/x.sock\n", "unix:/run/x.sock",
		    NULL, NULL },
		{ "[milter]\nsocket = local:/a/b\n", "unix:/a/b", NULL, NULL },
		{ "[milter]\nsocket = unix:/a/b\n", "unix:/a/b", NULL, NULL },
		{ "[milter]\nsocket = inet:8890@127.0.0.1\n",
		    "inet:8890@127.0.0.1", NULL, NULL },
		{ "[milter]\nsocket = inet:65535\n", "inet:65535", NULL, NULL },
		{ "[milter]\nsocket = inet6:1@::1\n", "inet6:1@::1", NULL,
		    NULL },
		{ "[milter]\nsocket: inet:25@localhost\n", "inet:25@localhost",
		    NULL, NULL },
		{ "[harvest]\nstate =\n", NULL, "", NULL },
		{ "[harvest]\nstate = redis://127.0.0.1:6379/2\n", NULL,
		    "redis://127.0.0.1:6379/2", NULL },
		{ "[harvest]\nstate = redis://[::1]:6379/0\n", NULL,
		    "redis://[::1]:6379/0", NULL },
		{ "[harvest]\nstate = /tmp/h.db\n", NULL, "/tmp/h.db", NULL },
		{ "[policy]\nsubaddress_delimiter =\n", NULL, NULL, "" },
		{ "[policy]\nsubaddress_delimiter = +-\n", NULL, NULL, "+-" },
		{ "[policy]\nsubaddress_delimiter = ;\n", NULL, NULL, "" },
	};

	static const struct {
		const char	*v;
		unsigned	 mode;
	} modes[] = {
		{ "0660", 0660 }, { "660", 0660 }, { "0", 0 }, { "0777", 0777 },
		{ "600", 0600 },
	};

	for (size_t i = 0; i < ARRAY_LEN(modes); i++) {
		char		 text[64];
		struct rg_conf	*c;

		(void)snprintf(text, sizeof(text),
		    "[milter]\nsocket_mode = %s\n", modes[i].v);
		c = load_ok(text);
		assert_int_equal(c->socket_mode, modes[i].mode);
		rg_conf_unref(c);
	}
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct rg_conf *c = load_ok(cases[i].text);

		if (cases[i].socket)
			assert_string_equal(c->socket, cases[i].socket);
		if (cases[i].state)
			assert_string_equal(c->harvest_state, cases[i].state);
		if (cases[i].delim)
			assert_string_equal(c->policy.subaddress_delimiter,
			    cases[i].delim);
		rg_conf_unref(c);
	}
}

static void
test_syntax_variants(void **state)
{
	static const char *const doms[] = { "a.com", "b.com", "c.com",
	    ".sub.d.com", "e.com" };
	static char	 longq[1000], text[1200];
	struct rg_conf	*c;

	/* Continuations, inline ';' on them, CRLF, a BOM, ':' separator,
	 * upper case and trailing dots, '#' full-line comments. */
	c = load_ok("\xef\xbb\xbf# top comment\r\n"
	    "[policy]\r\n"
	    "domains = A.com, b.com. ; first line\r\n"
	    "   c.com ; continued\r\n"
	    "; a comment between\r\n"
	    "\t.Sub.D.com,e.com\r\n"
	    "backends: x\r\n"
	    "always_accept = PostMaster\r\n"
	    "[backend x]\r\n"
	    "type = sqlite\r\n");
	assert_list(&c->domains, doms, 5);
	assert_string_equal(c->policy.always_accept.v[0], "postmaster");
	assert_int_equal(c->policy.always_accept.n, 1);
	assert_int_equal(c->backends[0].line, 9);
	assert_int_equal(c->nbackends, 1);
	assert_ptr_equal(rg_conf_policy_for(c, "x.sub.d.com"), &c->policy);
	rg_conf_unref(c);

	/* A long value split over indented lines is one value. */
	c = load_ok("[backend q]\ntype = sqlite\nquery = SELECT 1\n"
	    "  FROM t WHERE a = :address\n");
	assert_string_equal(rg_section_get(&c->backends[0], "query", NULL),
	    "SELECT 1 FROM t WHERE a = :address");
	rg_conf_unref(c);

	/* ... or stays on one line: the reader has no line limit. */
	memset(longq, 'x', sizeof(longq) - 1);
	memcpy(longq, "SELECT ", 7);
	(void)snprintf(text, sizeof(text), "[backend q]\ntype = sqlite\n"
	    "query = %s ; comment\n[backend r]\ntype = ldap\n", longq);
	c = load_ok(text);
	assert_string_equal(rg_section_get(&c->backends[0], "query", NULL),
	    longq);
	assert_int_equal(c->backends[1].line, 4);
	rg_conf_unref(c);

	/* Blank lines and comments do not end a key; spaces in a header
	 * around the name are dropped (once read as "[backend]"). */
	c = load_ok("[ backend  a ]\ntype = sqlite\nquery = SELECT 1\n\n"
	    "; note\n  FROM t\n[backend b ] ; b\ntype = ldap\n");
	assert_string_equal(rg_section_get(&c->backends[0], "query", NULL),
	    "SELECT 1 FROM t");
	assert_string_equal(c->backends[1].name, "b");
	assert_int_equal(c->backends[1].line, 7);
	rg_conf_unref(c);
}

/* ---- errors: file, line, section, key ---- */

static void
test_errors(void **state)
{
	static char longline[400];
	static const struct {
		const char	*text;
		const char	*want;
	} cases[] = {
		{ "[foo]\n", "t.conf:1: [foo]: unknown section" },
		{ "\n[Milter]\n", "t.conf:2: [Milter]: unknown section" },
		{ "[milter x]\n", "t.conf:1: [milter]: this section takes no "
		    "name" },
		{ "[milter] junk\n", "t.conf:1: text after ']'" },
		{ "[milter\n", "t.conf:1: section header without ']'" },
		{ "[milter]\nsockt = /x\n", "t.conf:2: [milter] key 'sockt': "
		    "unknown key" },
		{ "[milter]\nnoequals\n", "t.conf:2: expected 'key = value'" },
		/* Half a BOM is text, read without running past its end. */
		{ "\xef\xbb", "t.conf:1: expected 'key = value'" },
		{ "socket = /x\n", "t.conf:1: key 'socket': outside of any "
		    "[section]" },
		{ "[cache]\nsize = 1\n\nsize = 2\n", "t.conf:4: [cache] key "
		    "'size': duplicate key (first at line 2)" },
		{ "[cache]\nsize = 1\n[cache]\nsize = 2\n", "t.conf:4: [cache] "
		    "key 'size': duplicate key (first at line 2)" },
		{ "[backend a]\ntype = sqlite\ntype = ldap\n", "t.conf:3: "
		    "[backend a] key 'type': duplicate key (first at line 2)" },
		{ "[backend a]\ntype=sqlite\n[backend A]\ntype=sqlite\n",
		    "t.conf:3: [backend A]: defined twice (first at line 1)" },
		{ "[policy]\nbackends=a\n[backend a]\ntype=x\n[domain x.org]\n"
		    "[domain X.ORG.]\n", "t.conf:6: [domain x.org]: defined "
		    "twice (first at line 5)" },
		{ "[backend ]\n", "t.conf:1: [backend]: missing name" },
		{ "[domain]\n", "t.conf:1: [domain]: missing name" },
		{ "[backend a b]\ntype=x\n", "t.conf:1: [backend a b]: invalid "
		    "backend name" },
		{ "[domain a..b]\n", "t.conf:1: [domain a..b]: invalid domain "
		    "name" },
		{ "[backend b]\npath = /x\n", "t.conf:1: [backend b]: no "
		    "'type' key" },
		{ "[cache]\npositive_ttl = 1x\n", "t.conf:2: [cache] key "
		    "'positive_ttl': invalid duration '1x'" },
		{ "[cache]\nnegative_ttl = -1s\n", "t.conf:2: [cache] key "
		    "'negative_ttl': invalid duration '-1s'" },
		{ "[cache]\nstale_ttl = 366d\n", "t.conf:2: [cache] key "
		    "'stale_ttl': '366d' out of range" },
		{ "[cache]\nsize = 100000001\n", "t.conf:2: [cache] key "
		    "'size': '100000001' out of range" },
		{ "[cache]\nsize = -1\n", "t.conf:2: [cache] key 'size': "
		    "invalid number '-1'" },
		{ "[cache]\nsize = 10 # entries\n", "inline comments start "
		    "with ';'" },
		{ "[policy]\nskip_authenticated = maybe\n", "t.conf:2: "
		    "[policy] key 'skip_authenticated': invalid boolean" },
		{ "[policy]\ndeadline = 0\n", "t.conf:2: [policy] key "
		    "'deadline': '0' out of range (must be more than 0" },
		{ "[policy]\ndeadline = 10m\n", "t.conf:2: [policy] key "
		    "'deadline': '10m' out of range" },
		{ "[policy]\non_backend_failure = reject\n", "t.conf:2: "
		    "[policy] key 'on_backend_failure': a backend failure is "
		    "never a reject" },
		{ "[policy]\non_backend_failure = bounce\n", "unknown action "
		    "'bounce' (tempfail or accept)" },
		{ "[policy]\ntrusted_networks = 10.0.0.0/8 10.0.0.0/33\n",
		    "t.conf:2: [policy] key 'trusted_networks': invalid "
		    "network '10.0.0.0/33'" },
		{ "[policy]\nbackends = a/b\n", "t.conf:2: [policy] key "
		    "'backends': invalid backend name 'a/b'" },
		{ "[policy]\ndomains = a.com, -bad domain!\n", "t.conf:2: "
		    "[policy] key 'domains': invalid domain 'domain!'" },
		{ "[policy]\nalways_accept = postmaster@x.com\n", "t.conf:2: "
		    "[policy] key 'always_accept': invalid local part" },
		{ "[policy]\ndomains = a.com\n\nbackends = nope\n", "t.conf:4: "
		    "[policy] key 'backends': no [backend nope] section" },
		{ "[domain a.com]\nbackends = nope\n", "t.conf:2: "
		    "[domain a.com] key 'backends': no [backend nope]" },
		{ "[policy]\ndomains = a.com\n", "t.conf:2: [policy] key "
		    "'domains': domains are checked but [policy] has no "
		    "backends" },
		{ "[policy]\ndomains = *\n", "t.conf:2: [policy] key "
		    "'domains': domains are checked" },
		{ "[domain a.com]\ndeadline = 1s\n",
		    "t.conf:1: [domain a.com]: no backends" },
		{ "[domain a.com]\ndomains = b.com\n", "t.conf:2: "
		    "[domain a.com] key 'domains': not allowed" },
		{ "[milter]\nlog_level = loud\n", "t.conf:2: [milter] key "
		    "'log_level': unknown level 'loud'" },
		{ "[milter]\nsocket = tcp:25\n", "t.conf:2: [milter] key "
		    "'socket': expected unix:/PATH" },
		{ "[milter]\nsocket = inet:0@127.0.0.1\n", "key 'socket': bad "
		    "port" },
		{ "[milter]\nsocket = inet:65536\n", "key 'socket': bad port" },
		{ "[milter]\nsocket = inet:25@\n", "key 'socket': empty host" },
		{ "[milter]\nsocket = unix:run/x\n",
		    "key 'socket': socket path must be absolute" },
		{ "[milter]\nsocket = unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaa\n",
		    "key 'socket': socket path longer" },
		{ "[milter]\nsocket_mode = 0800\n", "t.conf:2: [milter] key "
		    "'socket_mode': invalid mode '0800'" },
		{ "[milter]\nsocket_mode = 01777\n", "invalid mode '01777'" },
		{ "[milter]\nsocket_mode =\n", "invalid mode ''" },
		{ "[milter]\nuser = rcpt gate\n", "t.conf:2: [milter] key "
		    "'user': invalid name 'rcpt gate'" },
		{ "[policy]\nsubaddress_delimiter = +@\n", "key "
		    "'subaddress_delimiter': invalid delimiter '+@'" },
		{ "[harvest]\naction = accept\n", "t.conf:2: [harvest] key "
		    "'action': unknown action 'accept' (tempfail or reject)" },
		{ "[harvest]\nipv4_prefix = 7\n", "t.conf:2: [harvest] key "
		    "'ipv4_prefix': '7' out of range (8 to 32)" },
		{ "[harvest]\nipv6_prefix = 129\n", "key 'ipv6_prefix': '129' "
		    "out of range" },
		{ "[harvest]\ntarpit_max = 60s\n", "key 'tarpit_max': '60s' "
		    "out of range" },
		{ "[harvest]\ntarpit = 20s\n", "t.conf:2: [harvest] key "
		    "'tarpit': longer than tarpit_max" },
		{ "[harvest]\nmax_clients = 0\n", "key 'max_clients': '0' out "
		    "of range" },
		{ "[harvest]\nstate = relative.db\n", "key 'state': expected "
		    "an absolute path" },
		{ "[harvest]\nstate = redis://h/0\n", "key 'state': expected "
		    "redis://HOST:PORT/DB" },
		{ "[harvest]\nstate = redis://h:99999/0\n", "key 'state': bad "
		    "redis port" },
		{ "[harvest]\nstate = redis://h:6379/x\n", "key 'state': bad "
		    "redis database" },
		{ "[harvest]\nexempt = ::1, fe80::1%eth0\n", "key 'exempt': "
		    "invalid network 'fe80::1%eth0'" },
		/* No line limit: a long line is read whole; its value fails. */
		{ longline, "t.conf:2: [policy] key 'domains': invalid domain "
		    "'aaaa" },
	};
	struct rg_error	 err;

	memset(longline, 0, sizeof(longline));
	(void)snprintf(longline, sizeof(longline), "[policy]\ndomains = ");
	memset(longline + strlen(longline), 'a', 250);
	strcat(longline, ".com\n");

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct rg_conf *c = rg_conf_load_string(cases[i].text,
		    "t.conf", &err);

		if (c != NULL)
			fail_msg("case %zu loaded: %s", i, cases[i].text);
		if (strstr(err.msg, cases[i].want) == NULL)
			fail_msg("case %zu: want '%s' in:\n%s", i,
			    cases[i].want, err.msg);
		assert_true(err.count >= 1);
	}
}

/* All errors, not only the first; one per line, in file order. */
static void
test_errors_collected(void **state)
{
	static const char text[] =
	    "[milter]\n"
	    "log_level = loud\n"		/* 2 */
	    "bogus = 1\n"			/* 3 */
	    "[nope]\n"				/* 4 */
	    "ignored = 1\n"
	    "[cache]\n"
	    "size = x\n"			/* 7 */
	    "size = 1\n"			/* 8 */
	    "[policy]\n"
	    "domains = a.com\n"
	    "backends = ghost\n";		/* 11 */
	static const char *const want[] = {
		"t.conf:2: [milter] key 'log_level'",
		"t.conf:3: [milter] key 'bogus': unknown key",
		"t.conf:4: [nope]: unknown section",
		"t.conf:7: [cache] key 'size': invalid number 'x'",
		"t.conf:8: [cache] key 'size': duplicate key",
		"t.conf:11: [policy] key 'backends': no [backend ghost]",
	};
	struct rg_error	 err;
	const char	*p;

	assert_null(rg_conf_load_string(text, "t.conf", &err));
	assert_int_equal(err.count, (int)ARRAY_LEN(want));
	p = err.msg;
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		const char *hit = strstr(p, want[i]);

		if (hit == NULL)
			fail_msg("want '%s' after offset %zu in:\n%s", want[i],
			    (size_t)(p - err.msg), err.msg);
		p = hit;
	}
	/* Lines, not one long string. */
	assert_int_equal(strspn(strchr(err.msg, '\n') + 1, "t"), 1);
}

/* ---- durations, numbers, booleans, lists ---- */

static void
test_durations(void **state)
{
	static const struct {
		const char	*s;
		int		 rc;
		uint64_t	 ms;
	} cases[] = {
		{ "8s", 0, 8000 }, { "10m", 0, 600000 }, { "1h", 0, 3600000 },
		{ "1d", 0, 86400000 }, { "500ms", 0, 500 }, { "30", 0, 30000 },
		{ "0", 0, 0 }, { "0ms", 0, 0 },
		{ "213503982334d", 0, UINT64_C(213503982334) * 86400000 },
		{ "-1s", -1, 0 }, { "1x", -1, 0 }, { "", -1, 0 },
		{ "99999999999999999999d", -1, 0 },
		{ "213503982335d", -1, 0 },	/* overflows in ms */
		{ "18446744073709551616ms", -1, 0 },
		{ "s", -1, 0 }, { "1 s", -1, 0 }, { " 1s", -1, 0 },
		{ "1S", -1, 0 }, { "1.5s", -1, 0 }, { "1sm", -1, 0 },
		{ "+1s", -1, 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		uint64_t	ms = 12345;
		int		rc = rg_parse_duration(cases[i].s, &ms);

		if (rc != cases[i].rc)
			fail_msg("'%s': rc %d, want %d", cases[i].s, rc,
			    cases[i].rc);
		if (rc == 0 && ms != cases[i].ms)
			fail_msg("'%s': %llu ms", cases[i].s,
			    (unsigned long long)ms);
		if (rc == -1 && ms != 12345)
			fail_msg("'%s': output written on error", cases[i].s);
	}
	assert_int_equal(rg_parse_duration(NULL, &(uint64_t){ 0 }), -1);
}

static void
test_scalars(void **state)
{
	static const struct {
		const char	*s;
		int		 rc;
		bool		 v;
	} bools[] = {
		{ "yes", 0, true }, { "No", 0, false }, { "TRUE", 0, true },
		{ "false", 0, false }, { "on", 0, true }, { "off", 0, false },
		{ "1", 0, true }, { "0", 0, false }, { "", -1, false },
		{ "y", -1, false }, { "2", -1, false }, { "yes!", -1, false },
	};
	static const struct {
		const char	*s;
		uint64_t	 max;
		int		 rc;
		uint64_t	 v;
	} uints[] = {
		{ "0", 10, 0, 0 }, { "10", 10, 0, 10 }, { "11", 10, -1, 0 },
		{ "18446744073709551615", UINT64_MAX, 0, UINT64_MAX },
		{ "18446744073709551616", UINT64_MAX, -1, 0 },
		{ "", 10, -1, 0 }, { "-1", 10, -1, 0 }, { "1a", 10, -1, 0 },
		{ " 1", 10, -1, 0 },
	};
	static const struct {
		const char	*s;
		size_t		 n;
		const char	*first, *last;
	} lists[] = {
		{ "a, b c,,d", 4, "a", "d" }, { "", 0, NULL, NULL },
		{ " , ,\t", 0, NULL, NULL }, { "one", 1, "one", "one" },
		{ ",x,", 1, "x", "x" },
	};

	for (size_t i = 0; i < ARRAY_LEN(bools); i++) {
		bool	v = !bools[i].v;

		assert_int_equal(rg_parse_bool(bools[i].s, &v), bools[i].rc);
		if (bools[i].rc == 0)
			assert_int_equal(v, bools[i].v);
	}
	for (size_t i = 0; i < ARRAY_LEN(uints); i++) {
		uint64_t	v = 7;

		if (rg_parse_uint(uints[i].s, uints[i].max, &v) !=
		    uints[i].rc)
			fail_msg("uint '%s'", uints[i].s);
		assert_int_equal(v, uints[i].rc == 0 ? uints[i].v : 7);
	}
	for (size_t i = 0; i < ARRAY_LEN(lists); i++) {
		struct rg_list	l;

		assert_int_equal(rg_parse_list(lists[i].s, &l), 0);
		assert_int_equal(l.n, lists[i].n);
		if (l.n > 0) {
			assert_string_equal(l.v[0], lists[i].first);
			assert_string_equal(l.v[l.n - 1], lists[i].last);
			assert_true(rg_list_contains_ci(&l,
			    lists[i].first));
		}
		assert_false(rg_list_contains_ci(&l, "zz"));
		rg_list_free(&l);
		rg_list_free(&l);	/* twice: emptied, harmless */
	}
}

/* ---- networks ---- */

static void
make_sa(const char *addr, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else
		fail_msg("bad test address %s", addr);
}

static void
test_networks(void **state)
{
	static const struct {
		const char	*nets;
		const char	*addr;
		bool		 match;
	} cases[] = {
		{ "10.0.0.0/8", "10.1.2.3", true },
		{ "10.0.0.0/8", "11.0.0.1", false },
		{ "10.0.0.0/8", "::ffff:10.1.2.3", true },
		{ "10.0.0.0/8", "::ffff:11.1.2.3", false },
		{ "10.0.0.0/8", "::a01:203", false },	/* not mapped */
		{ "0.0.0.0/0", "203.0.113.9", true },
		{ "0.0.0.0/0", "::ffff:203.0.113.9", true },
		{ "0.0.0.0/0", "2001:db8::1", false },
		{ "::/0", "2001:db8::1", true },
		{ "::/0", "::ffff:1.2.3.4", true },
		{ "::/0", "1.2.3.4", false },
		{ "192.0.2.1", "192.0.2.1", true },
		{ "192.0.2.1/32", "192.0.2.2", false },
		{ "192.168.1.130/25", "192.168.1.200", true },
		{ "192.168.1.130/25", "192.168.1.100", false },
		{ "192.168.1.0/31", "192.168.1.1", true },
		{ "192.168.1.0/31", "192.168.1.2", false },
		{ "2001:db8::/32", "2001:db8:ffff::1", true },
		{ "2001:db8::/32", "2001:db9::1", false },
		{ "2001:db8::1/128", "2001:db8::1", true },
		{ "2001:db8::1/128", "2001:db8::2", false },
		{ "2001:db8::/127", "2001:db8::1", true },
		{ "2001:db8::/127", "2001:db8::2", false },
		{ "::ffff:0:0/96", "10.9.9.9", false },
		{ "::ffff:0:0/96", "::ffff:10.9.9.9", true },
		{ "127.0.0.0/8, ::1", "::1", true },
		{ "127.0.0.0/8 ::1", "127.0.0.53", true },
		{ "", "127.0.0.1", false },
	};
	static const char *const bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "1.2.3.4/8x",
		"1.2.3.4/-1", "::/129", "fe80::1%eth0", "10.0.0", "host",
		"1.2.3.4/0008", "10.0.0.0/8/8",
	};
	struct rg_net		 n;
	struct rg_netlist	 nl;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct sockaddr_storage	ss;

		make_sa(cases[i].addr, &ss);
		assert_int_equal(rg_parse_netlist(cases[i].nets, &nl), 0);
		if (rg_netlist_match(&nl, (struct sockaddr *)&ss) !=
		    cases[i].match)
			fail_msg("%s in %s: want %d", cases[i].addr,
			    cases[i].nets, cases[i].match);
		rg_netlist_free(&nl);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (rg_parse_net(bad[i], &n) != -1)
			fail_msg("'%s' parsed", bad[i]);
	assert_int_equal(rg_parse_netlist("10.0.0.0/8, nope", &nl), -1);
	assert_int_equal(nl.n, 0);

	/* Host bits are masked off; prefixes 0 and max. */
	assert_int_equal(rg_parse_net("192.168.1.130/25", &n), 0);
	assert_int_equal(n.addr[3], 128);
	assert_int_equal(rg_parse_net("255.255.255.255/0", &n), 0);
	assert_int_equal(n.prefix, 0);
	assert_int_equal(n.addr[0] | n.addr[1] | n.addr[2] | n.addr[3], 0);
	assert_int_equal(rg_parse_net("2001:db8::ff/128", &n), 0);
	assert_int_equal(n.prefix, 128);
	assert_int_equal(n.addr[15], 0xff);
	assert_int_equal(rg_parse_net("2001:db8::ff", &n), 0);
	assert_int_equal(n.prefix, 128);
	assert_false(rg_netlist_match(NULL, NULL));
}

/* rg_prefix_equal, rg_prefix_mask: the prefix matcher lib/ shares. */
static void
test_prefix_equal(void **state)
{
	static const struct {
		uint8_t	 a[4], b[4];
		int	 prefix;
		bool	 eq;
	} cases[] = {
		{ { 10, 0, 0, 0 }, { 11, 0, 0, 0 }, 0, true },
		{ { 10, 0, 0, 0 }, { 11, 0, 0, 0 }, 7, true },
		{ { 10, 0, 0, 0 }, { 11, 0, 0, 0 }, 8, false },
		{ { 192, 168, 1, 128 }, { 192, 168, 1, 200 }, 25, true },
		{ { 192, 168, 1, 128 }, { 192, 168, 1, 100 }, 25, false },
		{ { 1, 2, 3, 4 }, { 1, 2, 3, 4 }, 32, true },
		{ { 1, 2, 3, 4 }, { 1, 2, 3, 5 }, 32, false },
		{ { 1, 2, 3, 4 }, { 1, 2, 3, 5 }, 31, true },
	};

	static const struct {
		uint8_t	 in[4], out[4];
		int	 prefix;
	} masks[] = {
		{ { 10, 1, 2, 3 }, { 10, 0, 0, 0 }, 8 },
		{ { 10, 1, 2, 3 }, { 0, 0, 0, 0 }, 0 },
		{ { 10, 1, 2, 3 }, { 0, 0, 0, 0 }, -1 },
		{ { 10, 1, 2, 3 }, { 10, 1, 2, 3 }, 32 },
		{ { 10, 1, 2, 3 }, { 10, 1, 2, 3 }, 40 },
		{ { 192, 168, 1, 200 }, { 192, 168, 1, 128 }, 25 },
		{ { 255, 255, 255, 255 }, { 255, 254, 0, 0 }, 15 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		if (rg_prefix_equal(cases[i].a, cases[i].b, cases[i].prefix) !=
		    cases[i].eq)
			fail_msg("case %zu: want %d", i, cases[i].eq);
	for (size_t i = 0; i < ARRAY_LEN(masks); i++) {
		uint8_t	a[4];

		memcpy(a, masks[i].in, 4);
		rg_prefix_mask(a, 4, masks[i].prefix);
		if (memcmp(a, masks[i].out, 4) != 0)
			fail_msg("mask %zu: got %u.%u.%u.%u", i, a[0], a[1],
			    a[2], a[3]);
	}
}

/* ---- [domain] inheritance, in either section order ---- */

static void
test_inheritance(void **state)
{
	static const char pol[] =
	    "[policy]\n"
	    "domains = a.com\n"
	    "backends = one, two\n"
	    "subaddress_delimiter = -\n"
	    "always_accept = hostmaster\n"
	    "on_backend_failure = accept\n"
	    "skip_authenticated = no\n"
	    "trusted_networks = 192.0.2.0/24\n"
	    "deadline = 3s\n";
	static const char dom[] =
	    "[domain B.com.]\n"
	    "deadline = 2s\n"
	    "skip_authenticated = yes\n"
	    "[domain c.com]\n"
	    "backends = two\n"
	    "trusted_networks =\n";
	static const char bk[] =
	    "[backend one]\ntype = sqlite\n[backend two]\ntype = ldap\n";
	char	 text[2][1024];

	(void)snprintf(text[0], sizeof(text[0]), "%s%s%s", pol, dom, bk);
	(void)snprintf(text[1], sizeof(text[1]), "%s%s%s", bk, dom, pol);
	for (size_t i = 0; i < 2; i++) {
		struct rg_conf		*c = load_ok(text[i]);
		const struct rg_policy	*b = rg_conf_policy_for(c, "b.com");
		const struct rg_policy	*cc = rg_conf_policy_for(c, "c.com");

		assert_non_null(b);
		assert_non_null(cc);
		assert_ptr_not_equal(b, &c->policy);
		/* b.com: own deadline and skip, the rest inherited. */
		assert_int_equal(b->deadline_ms, 2000);
		assert_true(b->skip_authenticated);
		assert_int_equal(b->backends.n, 2);
		assert_string_equal(b->backends.v[1], "two");
		assert_int_equal(b->backend_idx[0], i == 0 ? 0 : 0);
		assert_int_equal(b->backend_idx[1], 1);
		assert_string_equal(b->subaddress_delimiter, "-");
		assert_string_equal(b->always_accept.v[0], "hostmaster");
		assert_int_equal(b->on_backend_failure, RG_FAILURE_ACCEPT);
		assert_int_equal(b->trusted_networks.n, 1);
		/* c.com: own backends, empty trusted list stays empty. */
		assert_int_equal(cc->backends.n, 1);
		assert_int_equal(cc->backend_idx[0], 1);
		assert_int_equal(cc->trusted_networks.n, 0);
		assert_int_equal(cc->deadline_ms, 3000);
		assert_false(cc->skip_authenticated);
		/* [policy] itself is untouched by the overrides. */
		assert_int_equal(c->policy.deadline_ms, 3000);
		assert_false(c->policy.skip_authenticated);
		assert_int_equal(c->policy.trusted_networks.n, 1);
		rg_conf_unref(c);
	}
}

/* ---- rg_conf_policy_for ---- */

static void
test_policy_for(void **state)
{
	static const char text[] =
	    "[policy]\n"
	    "domains = example.com, .sub.example.net\n"
	    "backends = b\n"
	    "[domain other.org]\n"
	    "[domain sub.example.net]\n"
	    "deadline = 1s\n"
	    "[backend b]\ntype = sqlite\n";
	static const struct {
		const char	*dom;
		int		 want;	/* 0 NULL, 1 policy, 2 other, 3 sub */
	} cases[] = {
		{ "example.com", 1 }, { "EXAMPLE.COM", 1 },
		{ "a.example.com", 0 }, { "xexample.com", 0 },
		{ "x.sub.example.net", 1 }, { "a.b.sub.example.net", 1 },
		{ "sub.example.net", 3 }, { "xsub.example.net", 0 },
		{ "example.net", 0 }, { "other.org", 2 },
		{ "x.other.org", 0 }, { "", 0 }, { "com", 0 },
	};
	struct rg_conf	*c = load_ok(text), *star;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct rg_policy *want[] = { NULL, &c->policy,
		    &c->domain[0].policy, &c->domain[1].policy };

		if (rg_conf_policy_for(c, cases[i].dom) != want[cases[i].want])
			fail_msg("%s: want %d", cases[i].dom, cases[i].want);
	}
	assert_null(rg_conf_policy_for(c, NULL));
	assert_null(rg_conf_policy_for(NULL, "example.com"));
	rg_conf_unref(c);

	star = load_ok("[policy]\ndomains = *\nbackends = b\n"
	    "[domain x.org]\n[backend b]\ntype = sqlite\n");
	assert_true(star->all_domains);
	assert_ptr_equal(rg_conf_policy_for(star, "any.thing"),
	    &star->policy);
	assert_ptr_equal(rg_conf_policy_for(star, "x.org"),
	    &star->domain[0].policy);
	rg_conf_unref(star);
}

/* ---- refcount ---- */

static void *
ref_storm(void *arg)
{
	struct rg_conf	*c = arg;

	for (int i = 0; i < 10000; i++)
		rg_conf_unref(rg_conf_ref(c));
	rg_conf_unref(c);	/* the reference main took for us */
	return NULL;
}

static void
test_refcount(void **state)
{
	struct rg_conf	*c = load_ok(spec_example);
	pthread_t	 t[4];

	assert_ptr_equal(rg_conf_ref(c), c);
	assert_int_equal(c->refs, 2);
	rg_conf_unref(c);
	assert_int_equal(c->refs, 1);
	for (size_t i = 0; i < ARRAY_LEN(t); i++)
		assert_int_equal(pthread_create(&t[i], NULL, ref_storm,
		    rg_conf_ref(c)), 0);
	for (size_t i = 0; i < ARRAY_LEN(t); i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(c->refs, 1);
	rg_conf_unref(c);	/* freed here: ASan/valgrind see no leak */
	rg_conf_unref(NULL);
	assert_null(rg_conf_ref(NULL));
}

/* ---- files ---- */

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE	*f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
test_files(void **state)
{
	char		 dir[] = "/tmp/rg_test_conf.XXXXXX";
	char		 path[256], missing[256], nul[256];
	struct rg_error	 err;
	struct rg_conf	*c;
	pid_t		 pid;
	int		 status;

	assert_non_null(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/rcptgate.conf", dir);
	(void)snprintf(missing, sizeof(missing), "%s/none.conf", dir);
	(void)snprintf(nul, sizeof(nul), "%s/nul.conf", dir);
	write_file(path, spec_example, strlen(spec_example));
	write_file(nul, "[milter]\n\nuser = a\0b\n", 20);

	c = rg_conf_load(path, &err);
	assert_non_null(c);
	assert_string_equal(c->path, path);
	assert_string_equal(c->backends[1].file, path);
	assert_int_equal(c->nbackends, 3);
	rg_conf_unref(c);

	assert_null(rg_conf_load(missing, &err));
	assert_non_null(strstr(err.msg, missing));
	assert_non_null(strstr(err.msg, "cannot open: No such file"));
	assert_null(rg_conf_load(dir, &err));
	assert_non_null(strstr(err.msg, "not a regular file"));
	assert_null(rg_conf_load(nul, &err));
	assert_non_null(strstr(err.msg, "nul.conf:3: NUL byte"));

	/* Errors from a file carry the file's name. */
	write_file(path, "[milter]\nbad = 1\n", 17);
	assert_null(rg_conf_load(path, &err));
	assert_non_null(strstr(err.msg, "rcptgate.conf:2: [milter] key "
	    "'bad': unknown key"));

	/* Unreadable: root reads anything, so test as nobody. */
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		if (geteuid() == 0 && setuid(65534) == -1)
			_exit(2);
		if (geteuid() == 0)
			_exit(2);
		if (chmod(path, 0) == -1 && errno != EPERM)
			_exit(3);
		if (rg_conf_load(path, &err) != NULL)
			_exit(4);
		_exit(strstr(err.msg, "cannot open: Permission denied") ?
		    0 : 5);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(unlink(nul), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* ---- known keys ---- */

static void
test_known_keys(void **state)
{
	static const char *const must[] = {
		"milter.socket", "milter.user", "milter.log_level",
		"milter.socket_mode",
		"policy.domains", "policy.backends",
		"policy.subaddress_delimiter", "policy.always_accept",
		"policy.on_backend_failure", "policy.skip_authenticated",
		"policy.trusted_networks", "policy.deadline",
		"cache.positive_ttl", "cache.negative_ttl", "cache.size",
		"cache.stale_ttl", "harvest.max_unknown", "harvest.window",
		"harvest.block_time", "harvest.max_unknown_per_session",
		"harvest.ipv4_prefix", "harvest.ipv6_prefix",
		"harvest.action", "harvest.state", "harvest.tarpit",
		"harvest.tarpit_max", "harvest.tarpit_sessions",
		"harvest.exempt", "harvest.block_allows_postmaster",
		"harvest.max_clients",
		"postfix_policy.socket", "postfix_policy.max_connections",
		"postfix_policy.idle_timeout", "postfix_policy.request_timeout",
		"control.socket", "control.group", "metrics.listen",
	};
	const char *const	*k = rg_conf_known_keys();
	size_t			 n = 0;

	for (; k[n] != NULL; n++) {
		char		 text[256];
		const char	*dot = strchr(k[n], '.');
		struct rg_error	 err;

		for (size_t j = 0; j < n; j++)
			assert_string_not_equal(k[j], k[n]);
		/* The loader accepts each key: a bad value, never unknown. */
		assert_non_null(dot);
		(void)snprintf(text, sizeof(text), "[%.*s]\n%s = \x01 bad\n",
		    (int)(dot - k[n]), k[n], dot + 1);
		if (rg_conf_load_string(text, "k", &err) != NULL)
			fail_msg("%s accepts a control character", k[n]);
		if (strstr(err.msg, "unknown key") != NULL ||
		    strstr(err.msg, "k:2: [") == NULL)
			fail_msg("%s: %s", k[n], err.msg);
	}
	assert_int_equal(n, ARRAY_LEN(must));
	for (size_t i = 0; i < ARRAY_LEN(must); i++) {
		bool	found = false;

		for (size_t j = 0; j < n; j++)
			found |= strcmp(k[j], must[i]) == 0;
		if (!found)
			fail_msg("%s missing", must[i]);
	}
	assert_ptr_equal(rg_conf_known_keys(), k);
}

/* ---- the packaged example config ---- */

static char *
slurp(const char *path)
{
	FILE	*f = fopen(path, "r");
	char	*buf;
	long	 len;

	if (f == NULL)
		fail_msg("%s: %s (set RG_SOURCE_DIR)", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	assert_true((len = ftell(f)) > 0);
	rewind(f);
	buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	(void)fclose(f);
	return buf;
}

/*
 * packaging/rcptgate.conf loads as shipped, names every known key, and
 * still loads with every commented `;key = value` and `;[section]` line
 * switched on: each default it shows is valid.
 */
/* [postfix_policy] and turning the milter door off. */
static void
test_postfix_policy(void **state)
{
	struct rg_conf	*c;
	struct rg_error	 err;

	(void)state;
	c = load_ok("[milter]\n");
	assert_string_equal(c->policy_socket, "");
	assert_int_equal(c->policy_max_connections, 1000);
	assert_int_equal(c->policy_idle_timeout_ms, 330000);
	assert_int_equal(c->policy_request_timeout_ms, 10000);
	rg_conf_unref(c);
	c = load_ok("[milter]\nsocket = none\n[postfix_policy]\n"
	    "socket = inet:10040@127.0.0.1\nmax_connections = 5\n"
	    "idle_timeout = 10m\nrequest_timeout = 2s\n");
	assert_string_equal(c->socket, "");
	assert_string_equal(c->policy_socket, "inet:10040@127.0.0.1");
	assert_int_equal(c->policy_max_connections, 5);
	assert_int_equal(c->policy_idle_timeout_ms, 600000);
	assert_int_equal(c->policy_request_timeout_ms, 2000);
	rg_conf_unref(c);
	/* no door at all */
	assert_null(rg_conf_load_string("[milter]\nsocket = none\n", "t.conf",
	    &err));
	assert_non_null(strstr(err.msg, "t.conf:2: [milter] key 'socket': "
	    "none, and no [postfix_policy] socket"));
	assert_null(rg_conf_load_string("[postfix_policy]\nsocket = tcp:1\n",
	    "t.conf", &err));
	assert_non_null(strstr(err.msg, "t.conf:2: [postfix_policy] key "
	    "'socket'"));
	assert_null(rg_conf_load_string("[postfix_policy]\nmax_connections = 0"
	    "\n", "t.conf", &err));
	assert_non_null(strstr(err.msg, "1 to 100000"));
	assert_null(rg_conf_load_string("[postfix_policy]\nrequest_timeout = "
	    "0\n", "t.conf", &err));
}

static void
test_packaged_conf(void **state)
{
	const char	*src = getenv("RG_SOURCE_DIR");
	char		 path[1024], *text, *on, *o;
	struct rg_error	 err;
	struct rg_conf	*c;
	const char *const *k;

	(void)snprintf(path, sizeof(path), "%s/packaging/rcptgate.conf",
	    src != NULL ? src : ".");
	c = rg_conf_load(path, &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	assert_int_equal(c->policy.backends.n, 1);
	assert_string_equal(rg_section_get(rg_conf_backend(c, "local"),
	    "path", NULL), "/var/lib/rcptgate/recipients.db");
	assert_true(rg_list_contains_ci(&c->policy.always_accept,
	    "postmaster"));
	assert_true(rg_list_contains_ci(&c->policy.always_accept, "abuse"));
	assert_non_null(rg_conf_policy_for(c, "example.com"));
	rg_conf_unref(c);

	text = slurp(path);
	for (k = rg_conf_known_keys(); *k != NULL; k++) {
		char	pat[128];

		(void)snprintf(pat, sizeof(pat), "\n%s = ",
		    strchr(*k, '.') + 1);
		if (strstr(text, pat) == NULL) {
			pat[0] = ';';
			if (strstr(text, pat) == NULL)
				fail_msg("%s not shown", *k);
		}
	}
	on = calloc(1, strlen(text) + 1);
	assert_non_null(on);
	o = on;
	for (const char *p = text; *p != '\0'; ) {
		const char	*nl = strchr(p, '\n');
		size_t		 len = nl ? (size_t)(nl - p) + 1 : strlen(p);

		if (p[0] == ';' && (p[1] == '[' || (p[1] >= 'a' &&
		    p[1] <= 'z' && strstr(p, " = ") != NULL &&
		    strstr(p, " = ") < p + len)))
			p++, len--;
		memcpy(o, p, len);
		o += len;
		p += len;
	}
	c = rg_conf_load_string(on, "on.conf", &err);
	if (c == NULL)
		fail_msg("with defaults switched on:\n%s\n%s", err.msg, on);
	assert_int_equal(c->nbackends, 3);
	assert_int_equal(c->ndomains, 1);
	assert_int_equal(c->policy.trusted_networks.n, 2);
	assert_int_equal(c->harvest_exempt.n, 2);
	rg_conf_unref(c);
	free(on);
	free(text);
}

/* ---- rg_section_* helpers for drivers ---- */

static void
test_section_helpers(void **state)
{
	static const char *const allowed[] = { "path", "timeout", "tls",
	    "max", "hosts", NULL };
	struct rg_conf		*c = load_ok("[backend b]\ntype = sqlite\n"
	    "path = /x.db\ntimeout = 3s\ntls = yes\nmax = 7\n"
	    "hosts = h1, h2 h3\n[backend bad]\ntype = ldap\n"
	    "timeout = 3 s\ntls = perhaps\nmax = 99\nfoo = 1\nbar = 2\n");
	const struct rg_section	*b = rg_conf_backend(c, "b");
	const struct rg_section	*bad = rg_conf_backend(c, "bad");
	struct rg_error		 err;
	const char		*s;
	uint64_t		 u;
	bool			 flag;
	struct rg_list		 l;

	rg_error_clear(&err);
	assert_int_equal(rg_section_string(b, "path", "/d", &s, &err), 0);
	assert_string_equal(s, "/x.db");
	assert_int_equal(rg_section_string(b, "query", "/d", &s, &err), 0);
	assert_string_equal(s, "/d");
	assert_int_equal(rg_section_duration(b, "timeout", 1, &u, &err), 0);
	assert_int_equal(u, 3000);
	assert_int_equal(rg_section_duration(b, "nope", 5, &u, &err), 0);
	assert_int_equal(u, 5);
	assert_int_equal(rg_section_bool(b, "tls", false, &flag, &err), 0);
	assert_true(flag);
	assert_int_equal(rg_section_uint(b, "max", 1, 10, &u, &err), 0);
	assert_int_equal(u, 7);
	assert_int_equal(rg_section_list(b, "hosts", &l, &err), 0);
	assert_int_equal(l.n, 3);
	rg_list_free(&l);
	assert_int_equal(rg_section_list(b, "none", &l, &err), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(rg_section_check_keys(b, allowed, &err), 0);
	assert_int_equal(err.count, 0);

	assert_int_equal(rg_section_duration(bad, "timeout", 1, &u, &err), -1);
	assert_non_null(strstr(err.msg, "t.conf:10: [backend bad] key "
	    "'timeout': invalid duration '3 s'"));
	assert_int_equal(rg_section_bool(bad, "tls", 0, &flag, &err), -1);
	assert_non_null(strstr(err.msg, "t.conf:11: [backend bad] key "
	    "'tls': invalid boolean"));
	assert_int_equal(rg_section_uint(bad, "max", 1, 10, &u, &err), -1);
	assert_non_null(strstr(err.msg, "t.conf:12: [backend bad] key "
	    "'max': invalid number '99' (0 to 10)"));
	assert_int_equal(rg_section_check_keys(bad, allowed, &err), -1);
	assert_non_null(strstr(err.msg, "t.conf:13: [backend bad] key "
	    "'foo': unknown key"));
	assert_non_null(strstr(err.msg, "t.conf:14: [backend bad] key "
	    "'bar': unknown key"));
	rg_section_error(bad, NULL, &err, "cannot reach %s", "dc1");
	assert_non_null(strstr(err.msg, "t.conf:8: [backend bad]: cannot "
	    "reach dc1"));
	assert_int_equal(err.count, 6);
	rg_conf_unref(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_syntax_variants),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_errors_collected),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_networks),
		cmocka_unit_test(test_prefix_equal),
		cmocka_unit_test(test_inheritance),
		cmocka_unit_test(test_policy_for),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_known_keys),
		cmocka_unit_test(test_postfix_policy),
		cmocka_unit_test(test_section_helpers),
		cmocka_unit_test(test_packaged_conf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
