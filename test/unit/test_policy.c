/* SPDX-License-Identifier: MIT */
/*
 * The decision core (rg_decide) where it decides, with a scripted
 * backend: a driver registered through rg_backend_set_test_driver whose
 * lookups answer what the case's section says (found, failing and slow
 * keys, a default), so every rule of the decision order can be shown
 * with two backends, clients inside and outside trusted networks, AUTH,
 * harvest on during an outage, and a deadline that runs out between
 * candidates. The real backends have their own tests (test_sqlite,
 * test_ldap_backend, test_callahead) and the real MTA the integration
 * tests; what a scripted backend stands in for here is a directory that
 * fails, answers not-found or is slow exactly when a case needs it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "conf.h"
#include "log.h"
#include "policy.h"
#include "rg_time.h"

/* ---- the scripted backend ---- */

/* Every scripted lookup, and an outage switch for the "outage" keys. */
static _Atomic unsigned	lookups;
static _Atomic bool	outage;

struct script {
	struct rg_list	found;		/* keys that exist */
	struct rg_list	fail;		/* keys whose lookup tempfails */
	struct rg_list	slow;		/* keys answered only after delay */
	enum rg_result	dflt;		/* every other key */
	uint64_t	delay_ms;	/* for slow keys ("*": every key) */
	bool		outage_fails;	/* tempfail while outage is set */
};

static int
script_open(struct rg_backend *b, const struct rg_section *sec,
    struct rg_error *err)
{
	struct script	*s;
	const char	*dflt;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	b->priv = s;
	if (rg_section_list(sec, "found", &s->found, err) != 0 ||
	    rg_section_list(sec, "fail", &s->fail, err) != 0 ||
	    rg_section_list(sec, "slow", &s->slow, err) != 0 ||
	    rg_section_string(sec, "default", "notfound", &dflt, err) != 0 ||
	    rg_section_duration(sec, "delay", 0, &s->delay_ms, err) != 0 ||
	    rg_section_bool(sec, "outage", false, &s->outage_fails, err) != 0)
		return -1;
	s->dflt = strcmp(dflt, "found") == 0 ? RG_FOUND :
	    strcmp(dflt, "tempfail") == 0 ? RG_TEMPFAIL : RG_NOTFOUND;
	return 0;
}

/*
 * A slow key sleeps past whatever deadline the case set, as a driver
 * whose timeout is longer than the policy's deadline would.
 */
static enum rg_result
script_lookup(struct rg_backend *b, const struct rg_query *q,
    struct rg_error *err)
{
	struct script	*s = b->priv;

	atomic_fetch_add(&lookups, 1);
	if (rg_list_contains_ci(&s->slow, q->key) ||
	    rg_list_contains_ci(&s->slow, "*"))
		rg_sleep_ms(s->delay_ms);
	if (s->outage_fails && atomic_load(&outage)) {
		rg_error_set(err, "directory down");
		return RG_TEMPFAIL;
	}
	if (rg_list_contains_ci(&s->fail, q->key)) {
		rg_error_set(err, "no such table: recipients");
		return RG_TEMPFAIL;
	}
	if (rg_list_contains_ci(&s->found, q->key))
		return RG_FOUND;
	if (s->dflt == RG_TEMPFAIL)
		rg_error_set(err, "directory down");
	return s->dflt;
}

static void
script_close(struct rg_backend *b)
{
	struct script	*s = b->priv;

	if (s == NULL)
		return;
	rg_list_free(&s->found);
	rg_list_free(&s->fail);
	rg_list_free(&s->slow);
	free(s);
}

static const struct rg_backend_ops script_ops = {
	.type = "script",
	.open = script_open,
	.lookup = script_lookup,
	.close = script_close,
};

/* ---- helpers ---- */

#define HEAD \
	"[milter]\nuser =\nlog_level = error\n[cache]\nsize = 1000\n"
/* unless the case sets [harvest] itself */
#define NO_HARVEST \
	"[harvest]\nmax_unknown = 0\nmax_unknown_per_session = 0\nstate =\n"

enum who { NOBODY, OUTSIDE, TRUSTED, AUTH };

static struct rg_runtime *
runtime_from(const char *tail)
{
	char		 text[4096];
	struct rg_error	 err;
	struct rg_conf	*c;
	struct rg_runtime *rt;

	snprintf(text, sizeof(text), "%s%s%s", HEAD,
	    strstr(tail, "[harvest]") != NULL ? "" : NO_HARVEST, tail);
	rg_error_clear(&err);
	c = rg_conf_load_string(text, "test.conf", &err);
	if (c == NULL)
		fail_msg("config: %s\n%s", err.msg, text);
	rt = rg_runtime_new(c, &err);
	rg_conf_unref(c);
	if (rt == NULL)
		fail_msg("runtime: %s", err.msg);
	return rt;
}

/* A client at ip (10.0.0.1 outside, 10.0.0.5 trusted in the cases). */
static void
client_at(struct rg_client *cl, const char *ip, bool auth)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)&cl->addr;

	memset(cl, 0, sizeof(*cl));
	if (ip != NULL) {
		sin->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
		cl->have_addr = true;
	}
	cl->authenticated = auth;
}

static void
client_for(struct rg_client *cl, enum who who)
{
	static const char *const ip[] = { NULL, "10.0.0.1", "10.0.0.5",
	    "10.0.0.6" };

	client_at(cl, ip[who], who == AUTH);
}

static const char *
act_str(enum rg_action a)
{
	static const char *const s[] = { "continue", "reject", "tempfail",
	    "shutdown" };

	return a <= RG_ACT_SHUTDOWN ? s[a] : "?";
}

/* ---- the decision order, table-driven ---- */

/* Two backends, "a" then "b", and the keys of [policy] that vary. */
#define POLICY(extra) \
	"[policy]\ndomains = example.com\nbackends = a, b\n" \
	"trusted_networks = 10.0.0.5\n" extra

#define A(keys)	"[backend a]\ntype = script\n" keys
#define B(keys)	"[backend b]\ntype = script\n" keys

struct pcase {
	const char	*name;
	const char	*conf;		/* after HEAD */
	enum who	 who;
	const char	*rcpt;
	int		 times;		/* decide this often (0 = once); check
					 * the last verdict */
	enum rg_action	 action;
	const char	*reply;		/* "550 5.1.1 ..." prefix, or NULL */
	const char	*by;		/* decided_by */
	const char	*reason;	/* prefix of reason */
	int		 nlookups;	/* scripted lookups expected, -1 any */
};

#define L64 "l234567890123456789012345678901234567890123456789012345678901234"
#define L70 L64 "567890"

static const struct pcase cases[] = {
	/* syntax and length: only in a checked domain, only if not exempt */
	{ "70-octet local part, checked, outside", POLICY("") A("") B(""),
	    OUTSIDE, "<" L70 "@example.com>", 0, RG_ACT_REJECT,
	    "550 5.1.3 Bad recipient address syntax", "syntax",
	    "address too long", 0 },
	{ "64-octet local part is fine", POLICY("") A("") B(""),
	    OUTSIDE, "<" L64 "@example.com>", 0, RG_ACT_REJECT,
	    "550 5.1.1 <" L64 "@example.com>", "b", "unknown", 4 },
	{ "70-octet local part, unchecked domain", POLICY("") A("") B(""),
	    OUTSIDE, "<" L70 "@example.org>", 0, RG_ACT_CONTINUE, NULL,
	    "domain", "not checked", 0 },
	{ "70-octet local part, trusted client", POLICY("") A("") B(""),
	    TRUSTED, "<" L70 "@example.com>", 0, RG_ACT_CONTINUE, NULL,
	    "trusted", "client not checked", 0 },
	{ "70-octet local part, AUTH client", POLICY("") A("") B(""),
	    AUTH, "<" L70 "@example.com>", 0, RG_ACT_CONTINUE, NULL,
	    "auth", "client not checked", 0 },
	{ "AUTH client when skip_authenticated = no",
	    POLICY("skip_authenticated = no\n") A("") B(""),
	    AUTH, "<" L70 "@example.com>", 0, RG_ACT_REJECT, "550 5.1.3",
	    "syntax", "address too long", 0 },
	{ "a..b, checked", POLICY("") A("") B(""), OUTSIDE,
	    "<a..b@Example.COM.>", 0, RG_ACT_REJECT, "550 5.1.3", "syntax",
	    "syntax error", 0 },
	{ "a..b, unchecked", POLICY("") A("") B(""), OUTSIDE,
	    "<a..b@example.org>", 0, RG_ACT_CONTINUE, NULL, "domain",
	    "not checked", 0 },
	{ "bad UTF-8, checked", POLICY("") A("") B(""), OUTSIDE,
	    "<j\xc3rgen@example.com>", 0, RG_ACT_REJECT, "550 5.1.3",
	    "syntax", "syntax error", 0 },
	{ "bad UTF-8, unchecked", POLICY("") A("") B(""), OUTSIDE,
	    "<j\xc3rgen@example.org>", 0, RG_ACT_CONTINUE, NULL, "domain",
	    "not checked", 0 },
	{ "quoted @ and > do not hide the domain", POLICY("") A("") B(""),
	    OUTSIDE, "<\"a@example.org>\"..x@example.com>", 0, RG_ACT_REJECT,
	    "550 5.1.3", "syntax", "syntax error", 0 },
	{ "quoted @ and > at an unchecked domain", POLICY("") A("") B(""),
	    OUTSIDE, "<\"a@example.com>\"..x@example.org>", 0,
	    RG_ACT_CONTINUE, NULL, "domain", "not checked", 0 },
	{ "empty path", POLICY("") A("") B(""), OUTSIDE, "<>", 0,
	    RG_ACT_CONTINUE, NULL, "domain", "unqualified", 0 },
	/* domain */
	{ "unchecked domain", POLICY("") A("default = tempfail\n") B(""),
	    OUTSIDE, "<x@example.org>", 0, RG_ACT_CONTINUE, NULL, "domain",
	    "not checked", 0 },
	{ "unqualified", POLICY("") A("") B(""), OUTSIDE, "<postmaster>", 0,
	    RG_ACT_CONTINUE, NULL, "domain", "unqualified", 0 },
	/* exemption: the backends are not even asked */
	{ "trusted client, unknown", POLICY("") A("") B(""), TRUSTED,
	    "<nobody@example.com>", 0, RG_ACT_CONTINUE, NULL, "trusted",
	    "client not checked", 0 },
	{ "AUTH client, unknown", POLICY("") A("") B(""), AUTH,
	    "<nobody@example.com>", 0, RG_ACT_CONTINUE, NULL, "auth",
	    "client not checked", 0 },
	/* always_accept */
	{ "always_accept", POLICY("") A("default = tempfail\n") B(""),
	    OUTSIDE, "<Postmaster@example.com>", 0, RG_ACT_CONTINUE, NULL,
	    "always_accept", "found", 0 },
	{ "always_accept with a subaddress", POLICY("") A("default = tempfail\n")
	    B(""), OUTSIDE, "<abuse+x@example.com>", 0, RG_ACT_CONTINUE, NULL,
	    "always_accept", "found", 0 },
	/* cache: the second decision asks nobody */
	{ "cache, found", POLICY("") A("found = alice@example.com\n") B(""),
	    OUTSIDE, "<alice@example.com>", 2, RG_ACT_CONTINUE, NULL,
	    "cache", "found", 1 },
	{ "cache, unknown", POLICY("") A("") B(""), OUTSIDE,
	    "<nobody@example.com>", 2, RG_ACT_REJECT, "550 5.1.1", "cache",
	    "unknown", 4 },
	/* the union of the backends */
	{ "found by the second backend", POLICY("") A("")
	    B("found = alice@example.com\n"), OUTSIDE, "<alice@example.com>",
	    0, RG_ACT_CONTINUE, NULL, "b", "found", 3 },
	{ "found by the first backend", POLICY("")
	    A("found = alice@example.com\n") B("default = tempfail\n"),
	    OUTSIDE, "<alice@example.com>", 0, RG_ACT_CONTINUE, NULL, "a",
	    "found", 1 },
	{ "unknown to both", POLICY("") A("") B(""), OUTSIDE,
	    "<Nobody@Example.com>", 0, RG_ACT_REJECT,
	    "550 5.1.1 <Nobody@Example.com>: Recipient address rejected: "
	    "User unknown", "b", "unknown", 4 },
	{ "reply carries the address as sent (UTF-8)", POLICY("") A("") B(""),
	    OUTSIDE, "<J\xc3\xbcrgen@example.com>", 0, RG_ACT_REJECT,
	    "550 5.1.1 <J\xc3\xbcrgen@example.com>: Recipient", "b",
	    "unknown", 4 },
	{ "reply carries the address as sent (%)", POLICY("") A("") B(""),
	    OUTSIDE, "<a%b@example.com>", 0, RG_ACT_REJECT,
	    "550 5.1.1 <a%%b@example.com>: Recipient", "b", "unknown", 4 },
	/* a failure is never a reject */
	{ "first fails, second not found: tempfail", POLICY("")
	    A("fail = nobody@example.com\n") B(""), OUTSIDE,
	    "<nobody@example.com>", 0, RG_ACT_TEMPFAIL,
	    "451 4.4.3 Directory lookup failed", "a", "backend failure", 3 },
	{ "first not found, second fails: tempfail", POLICY("") A("")
	    B("default = tempfail\n"), OUTSIDE, "<nobody@example.com>", 0,
	    RG_ACT_TEMPFAIL, "451 4.4.3", "b", "backend failure", 3 },
	{ "first fails, second finds", POLICY("") A("default = tempfail\n")
	    B("found = alice@example.com\n"), OUTSIDE, "<alice@example.com>",
	    0, RG_ACT_CONTINUE, NULL, "b", "found", 2 },
	{ "failure is never cached", POLICY("")
	    A("fail = nobody@example.com\n") B(""), OUTSIDE,
	    "<nobody@example.com>", 2, RG_ACT_TEMPFAIL, "451 4.4.3", "a",
	    "backend failure", 6 },
	{ "catch-all lookup fails after not-found", POLICY("")
	    A("fail = @example.com\n") B(""), OUTSIDE, "<nobody@example.com>",
	    0, RG_ACT_TEMPFAIL, "451 4.4.3", "a", "backend failure", 4 },
	{ "on_backend_failure = accept",
	    POLICY("on_backend_failure = accept\n") A("default = tempfail\n")
	    B(""), OUTSIDE, "<nobody@example.com>", 0, RG_ACT_CONTINUE, NULL,
	    "a", "backend failure, accepted", 3 },
	/* subaddress and catch-all */
	{ "subaddress", POLICY("") A("found = alice@example.com\n") B(""),
	    OUTSIDE, "<alice+tag@example.com>", 0, RG_ACT_CONTINUE, NULL, "a",
	    "subaddress", 2 },
	{ "subaddress off", POLICY("subaddress_delimiter =\n")
	    A("found = alice@example.com\n") B(""), OUTSIDE,
	    "<alice+tag@example.com>", 0, RG_ACT_REJECT, "550 5.1.1", "b",
	    "unknown", 4 },
	{ "catch-all", POLICY("") A("") B("found = @example.com\n"), OUTSIDE,
	    "<anyone@example.com>", 0, RG_ACT_CONTINUE, NULL, "b",
	    "catch-all", 4 },
	/* the deadline passing between candidates: tempfail, never 550 */
	{ "deadline after the address", POLICY("deadline = 100ms\n")
	    A("slow = nobody@example.com\ndelay = 250ms\n") B(""), OUTSIDE,
	    "<nobody@example.com>", 0, RG_ACT_TEMPFAIL, "451 4.4.3", "a",
	    "deadline", 1 },
	{ "deadline after the subaddress", POLICY("deadline = 100ms\n")
	    A("slow = nobody@example.com\ndelay = 250ms\n") B(""), OUTSIDE,
	    "<nobody+tag@example.com>", 0, RG_ACT_TEMPFAIL, "451 4.4.3", "a",
	    "deadline", 2 },
	{ "deadline after the catch-all, before the next backend",
	    POLICY("deadline = 100ms\n")
	    A("slow = @example.com\ndelay = 250ms\n") B(""), OUTSIDE,
	    "<nobody@example.com>", 0, RG_ACT_TEMPFAIL, "451 4.4.3", "b",
	    "deadline", 2 },
};

/* Returns 0, or 1 after printing what the case got. */
static int
run_case(const struct pcase *c)
{
	struct rg_runtime	*rt;
	struct rg_engine	*e;
	struct rg_error		 err;
	struct rg_client	 cl;
	struct rg_verdict	 v;
	char			 line[1100];
	int			 i, bad = 0;

	rt = runtime_from(c->conf);
	e = rg_engine_new(rt, 0, &err);
	assert_non_null(e);
	atomic_store(&lookups, 0);
	for (i = 0; i < (c->times ? c->times : 1); i++) {
		client_for(&cl, c->who);
		rg_decide(e, rt, &cl, c->rcpt, false, &v);
	}
	rg_reply_line(&v.reply, line, sizeof(line));
	if (v.action != c->action || strcmp(v.decided_by, c->by) != 0 ||
	    strncmp(v.reason, c->reason, strlen(c->reason)) != 0 ||
	    (c->reply != NULL && strncmp(line, c->reply,
	    strlen(c->reply)) != 0) ||
	    (c->nlookups >= 0 && atomic_load(&lookups) != (unsigned)c->nlookups))
		bad = 1;
	if (bad)
		print_error("%s: got %s %s/%s [%s] after %u lookups; want %s "
		    "%s/%s [%s] after %d\n", c->name, act_str(v.action),
		    v.decided_by, v.reason, line, atomic_load(&lookups),
		    act_str(c->action), c->by, c->reason,
		    c->reply ? c->reply : "", c->nlookups);
	rg_engine_free(e);
	rg_runtime_unref(rt);
	return bad;
}

static void
test_decision_order(void **state)
{
	size_t	i;
	int	bad = 0;

	(void)state;
	/* every case, so one run shows every rule that broke */
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		bad += run_case(&cases[i]);
	if (bad > 0)
		fail_msg("%d of %zu cases failed", bad,
		    sizeof(cases) / sizeof(cases[0]));
}

/* A failure says why in the verdict, for its one log line. */
static void
test_failure_detail(void **state)
{
	struct rg_runtime	*rt;
	struct rg_engine	*e;
	struct rg_error		 err;
	struct rg_client	 cl;
	struct rg_verdict	 v;

	(void)state;
	rt = runtime_from(POLICY("") A("fail = nobody@example.com\n") B(""));
	e = rg_engine_new(rt, RG_ENGINE_NO_HARVEST, &err);
	client_for(&cl, OUTSIDE);
	rg_decide(e, rt, &cl, "<nobody@example.com>", false, &v);
	assert_string_equal(v.detail, "lookup of <nobody@example.com> failed: "
	    "no such table: recipients");
	rg_engine_free(e);
	rg_runtime_unref(rt);
}

/* The policy door's form: Postfix adds "<ADDRESS>: Recipient address
 * rejected:" itself, so the verdict carries the short reason only. */
static void
test_policy_form(void **state)
{
	struct rg_runtime	*rt;
	struct rg_engine	*e;
	struct rg_error		 err;
	struct rg_client	 cl;
	struct rg_verdict	 v;

	(void)state;
	rt = runtime_from(POLICY("") A("") B(""));
	e = rg_engine_new(rt, RG_ENGINE_NO_HARVEST, &err);
	client_for(&cl, OUTSIDE);
	cl.reply_form = RG_REPLY_POLICY;
	rg_decide(e, rt, &cl, "<no%body@example.com>", false, &v);
	assert_int_equal(v.action, RG_ACT_REJECT);
	assert_string_equal(v.reply.text, "User unknown");
	cl.reply_form = RG_REPLY_MILTER;
	rg_decide(e, rt, &cl, "<no%body@example.com>", false, &v);
	assert_string_equal(v.reply.text, "<no%%body@example.com>: Recipient "
	    "address rejected: User unknown");
	rg_engine_free(e);
	rg_runtime_unref(rt);
}

/* ---- outage mode: a stale positive ---- */

static void
test_outage_stale(void **state)
{
	struct rg_runtime	*rt;
	struct rg_engine	*e;
	struct rg_error		 err;
	struct rg_client	 cl;
	struct rg_verdict	 v;

	(void)state;
	rt = runtime_from("[cache]\npositive_ttl = 20ms\nstale_ttl = 1d\n"
	    POLICY("") A("found = alice@example.com\noutage = yes\n")
	    B("outage = yes\n"));
	e = rg_engine_new(rt, RG_ENGINE_NO_HARVEST, &err);
	client_for(&cl, OUTSIDE);
	atomic_store(&outage, false);
	rg_decide(e, rt, &cl, "<alice@example.com>", false, &v);
	assert_int_equal(v.action, RG_ACT_CONTINUE);
	rg_sleep_ms(40);
	atomic_store(&outage, true);
	rg_decide(e, rt, &cl, "<alice@example.com>", false, &v);
	assert_int_equal(v.action, RG_ACT_CONTINUE);
	assert_string_equal(v.reason, "stale");
	rg_decide(e, rt, &cl, "<bob@example.com>", false, &v);
	assert_int_equal(v.action, RG_ACT_TEMPFAIL);
	atomic_store(&outage, false);
	rg_engine_free(e);
	rg_runtime_unref(rt);
}

/* ---- harvest: exempt clients in a blocked prefix, outages ---- */

#define HARVEST \
	"[harvest]\nmax_unknown = 3\nwindow = 10m\nblock_time = 1h\n" \
	"max_unknown_per_session = 0\nipv4_prefix = 24\nexempt =\nstate =\n"

static void
decide_at(struct rg_engine *e, struct rg_runtime *rt, const char *ip,
    bool auth, const char *rcpt, struct rg_verdict *v)
{
	struct rg_client	cl;

	client_at(&cl, ip, auth);
	rg_decide(e, rt, &cl, rcpt, false, v);
}

static void
test_exempt_in_blocked_prefix(void **state)
{
	struct rg_runtime	*rt;
	struct rg_engine	*e;
	struct rg_error		 err;
	struct rg_verdict	 v;
	char			 rcpt[64];
	int			 i;

	(void)state;
	rt = runtime_from(HARVEST POLICY("") A("found = alice@example.com\n")
	    B(""));
	e = rg_engine_new(rt, 0, &err);
	assert_non_null(e);
	/* four distinct unknown addresses (a repeated one counts once) */
	for (i = 0; i < 4; i++) {
		snprintf(rcpt, sizeof(rcpt), "<nobody%d@example.com>", i);
		decide_at(e, rt, "10.0.0.1", false, rcpt, &v);
	}
	/* the /24 is blocked now */
	decide_at(e, rt, "10.0.0.7", false, "<alice@example.com>", &v);
	assert_int_equal(v.action, RG_ACT_SHUTDOWN);
	assert_string_equal(v.decided_by, "harvest");
	/* a trusted client in it: never blocked, still not checked */
	decide_at(e, rt, "10.0.0.5", false, "<alice@example.com>", &v);
	assert_int_equal(v.action, RG_ACT_CONTINUE);
	assert_string_equal(v.decided_by, "trusted");
	decide_at(e, rt, "10.0.0.5", false, "<nobody@example.com>", &v);
	assert_int_equal(v.action, RG_ACT_CONTINUE);
	/* an AUTH client in it (skip_authenticated = yes): never blocked */
	decide_at(e, rt, "10.0.0.6", true, "<alice@example.com>", &v);
	assert_int_equal(v.action, RG_ACT_CONTINUE);
	assert_string_equal(v.decided_by, "auth");
	decide_at(e, rt, "10.0.0.6", true, "<" L70 "@example.com>", &v);
	assert_int_equal(v.action, RG_ACT_CONTINUE);
	rg_engine_free(e);
	rg_runtime_unref(rt);
}

static void
test_outage_counts_nothing(void **state)
{
	struct rg_runtime	*rt;
	struct rg_engine	*e;
	struct rg_error		 err;
	struct rg_verdict	 v;
	char			 rcpt[64];
	int			 i;

	(void)state;
	rt = runtime_from(HARVEST POLICY("")
	    A("found = alice@example.com\noutage = yes\n") B("outage = yes\n"));
	e = rg_engine_new(rt, 0, &err);
	assert_non_null(e);
	atomic_store(&outage, true);
	for (i = 0; i < 20; i++) {
		snprintf(rcpt, sizeof(rcpt), "<x%d@example.com>", i);
		decide_at(e, rt, "10.0.1.1", false, rcpt, &v);
		if (v.action != RG_ACT_TEMPFAIL || strcmp(v.reply.rcode, "451"))
			fail_msg("outage, %s: %s %s", rcpt, act_str(v.action),
			    v.reply.rcode);
	}
	atomic_store(&outage, false);
	/* the directory is back: the client was never counted */
	decide_at(e, rt, "10.0.1.1", false, "<alice@example.com>", &v);
	if (v.action != RG_ACT_CONTINUE)
		fail_msg("after the outage: %s by %s", act_str(v.action),
		    v.decided_by);
	decide_at(e, rt, "10.0.1.1", false, "<x1@example.com>", &v);
	assert_int_equal(v.action, RG_ACT_REJECT);
	assert_string_equal(v.reply.xcode, "5.1.1");
	rg_engine_free(e);
	rg_runtime_unref(rt);
}

/* ---- a reload: an old runtime's negative never reaches new ones ---- */

#define WRONG	POLICY("") A("") B("")
#define FIXED	POLICY("") A("found = alice@example.com\n") B("")

static void
test_reload_negative(void **state)
{
	struct rg_runtime	*old, *cur;
	struct rg_engine	*e;
	struct rg_error		 err;
	struct rg_verdict	 v;

	(void)state;
	old = runtime_from(WRONG);
	e = rg_engine_new(old, RG_ENGINE_NO_HARVEST, &err);
	decide_at(e, old, "10.0.0.1", false, "<alice@example.com>", &v);
	assert_int_equal(v.action, RG_ACT_REJECT);
	cur = runtime_from(FIXED);
	assert_true(cur->serial != old->serial);
	rg_engine_swap(e, cur);
	/* a connection from before the reload asks again: the old answer */
	decide_at(e, old, "10.0.0.1", false, "<alice@example.com>", &v);
	assert_int_equal(v.action, RG_ACT_REJECT);
	/* a new connection must not get it from the cache */
	decide_at(e, cur, "10.0.0.2", false, "<alice@example.com>", &v);
	if (v.action != RG_ACT_CONTINUE)
		fail_msg("new runtime got %s by %s/%s", act_str(v.action),
		    v.decided_by, v.reason);
	/* and the old connection, asking once more, does no harm either */
	decide_at(e, old, "10.0.0.1", false, "<alice@example.com>", &v);
	decide_at(e, cur, "10.0.0.2", false, "<alice@example.com>", &v);
	assert_int_equal(v.action, RG_ACT_CONTINUE);
	rg_engine_free(e);
	rg_runtime_unref(old);
	rg_runtime_unref(cur);
}

struct racer {
	struct rg_engine	*e;
	struct rg_runtime	*rt;
	struct rg_verdict	 v;
};

static void *
race_old(void *arg)
{
	struct racer	*r = arg;

	decide_at(r->e, r->rt, "10.0.0.1", false, "<alice@example.com>", &r->v);
	return NULL;
}

/*
 * The old runtime's lookup is in flight when a new connection asks for
 * the same key: the new one waits for it (single flight) and must not
 * take its negative answer.
 */
static void
test_reload_inflight(void **state)
{
	struct rg_runtime	*old, *cur;
	struct racer		 r;
	struct rg_error		 err;
	struct rg_verdict	 v;
	pthread_t		 t;

	(void)state;
	old = runtime_from(POLICY("") A("slow = alice@example.com\n"
	    "delay = 300ms\n") B(""));
	cur = runtime_from(FIXED);
	r.e = rg_engine_new(old, RG_ENGINE_NO_HARVEST, &err);
	r.rt = old;
	rg_engine_swap(r.e, cur);
	assert_int_equal(pthread_create(&t, NULL, race_old, &r), 0);
	rg_sleep_ms(100);
	decide_at(r.e, cur, "10.0.0.2", false, "<alice@example.com>", &v);
	pthread_join(t, NULL);
	assert_int_equal(r.v.action, RG_ACT_REJECT);
	if (v.action != RG_ACT_CONTINUE)
		fail_msg("new runtime got %s by %s/%s", act_str(v.action),
		    v.decided_by, v.reason);
	rg_engine_free(r.e);
	rg_runtime_unref(old);
	rg_runtime_unref(cur);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decision_order),
		cmocka_unit_test(test_failure_detail),
		cmocka_unit_test(test_policy_form),
		cmocka_unit_test(test_outage_stale),
		cmocka_unit_test(test_exempt_in_blocked_prefix),
		cmocka_unit_test(test_outage_counts_nothing),
		cmocka_unit_test(test_reload_negative),
		cmocka_unit_test(test_reload_inflight),
	};

	rg_log_init("test_policy", true, RG_LOG_ERROR);
	rg_backend_set_test_driver(&script_ops);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
