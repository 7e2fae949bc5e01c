/* SPDX-License-Identifier: MIT */
/*
 * The harvest limiter: counting per prefix (IPv4 /24, IPv6 /64, mapped
 * IPv4), window and block expiry on a fake clock, the per-session limit,
 * exemptions, the memory bound under floods, tarpit delays and slots,
 * persistence across free/new with a real SQLite file, operator list and
 * unblock noticed by a running limiter, an unusable state file, a
 * bounded concurrent storm (also built with -fsanitize=thread), and
 * Redis mode against a real redis-server on a free loopback port: two
 * limiters sharing it see one harvester, and with Redis stopped the
 * limiter still counts locally. Redis cases skip with a message when
 * redis-server is missing.
 *
 * Fake times are offsets from the real monotonic clock at start, so the
 * state file's wall-clock conversion round-trips.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harvest.h"
#include "rg_time.h"

#define MIN	(60 * 1000ULL)

static uint64_t	base;		/* fake clock origin */
static char	tmpdir[] = "/tmp/test_harvest.XXXXXX";

/* ---- helpers ---- */

static void
conf_init(struct rg_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->harvest_max_unknown = 5;
	c->harvest_window_ms = 10 * MIN;
	c->harvest_block_time_ms = 60 * MIN;
	c->harvest_max_unknown_per_session = 0;
	c->harvest_ipv4_prefix = 32;
	c->harvest_ipv6_prefix = 64;
	c->harvest_state = (char *)"";
	c->harvest_tarpit_ms = 0;
	c->harvest_tarpit_max_ms = 16000;
	c->harvest_tarpit_sessions = 64;
	c->harvest_max_clients = 100000;
}

/* A sockaddr_storage for a literal address. */
static struct sockaddr_storage
sa(const char *addr)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else
		fail_msg("bad address in test: %s", addr);
	return ss;
}

#define SA(x)	((const struct sockaddr *)&(x))

static struct rg_harvest *
mk(const struct rg_conf *c)
{
	struct rg_error		 err;
	struct rg_harvest	*h;

	rg_error_clear(&err);
	h = rg_harvest_new(c, &err);
	if (h == NULL)
		fail_msg("rg_harvest_new: %s", err.msg);
	return h;
}

/* One unknown recipient in a session of its own. */
static enum rg_harvest_state
unknown1(struct rg_harvest *h, const char *addr, uint64_t now)
{
	struct rg_harvest_session	s = { 0 };
	struct sockaddr_storage		ss = sa(addr);

	return rg_harvest_note_unknown(h, SA(ss), &s, now, NULL);
}

/* Is addr blocked for a fresh session at now? */
static bool
blocked(struct rg_harvest *h, const char *addr, uint64_t now)
{
	struct rg_harvest_session	s = { 0 };
	struct sockaddr_storage		ss = sa(addr);

	return rg_harvest_check(h, SA(ss), &s, now) == RG_HARVEST_BLOCKED;
}

/* ---- counting per prefix ---- */

struct prefix_case {
	const char	*name;
	int		 v4, v6;
	const char	*probes[5];	/* five unknowns, distinct sessions */
	const char	*same[3];	/* then blocked */
	const char	*other[3];	/* then still free */
};

static const struct prefix_case prefix_cases[] = {
	{ "v4 /32", 32, 64,
	    { "192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1" },
	    { "192.0.2.1", "::ffff:192.0.2.1", NULL },
	    { "192.0.2.2", "192.0.3.1", "2001:db8::1" } },
	{ "v4 /24 spread over hosts", 24, 64,
	    { "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5" },
	    { "192.0.2.200", "192.0.2.0", "::ffff:192.0.2.77" },
	    { "192.0.3.1", "192.0.1.255", NULL } },
	{ "mapped v4 counts as v4", 24, 64,
	    { "::ffff:198.51.100.1", "198.51.100.2", "::ffff:198.51.100.3",
	      "198.51.100.4", "::ffff:198.51.100.5" },
	    { "198.51.100.9", NULL, NULL },
	    { "198.51.101.1", NULL, NULL } },
	{ "v6 /64 random hosts", 32, 64,
	    { "2001:db8:1:2::1", "2001:db8:1:2:a::1", "2001:db8:1:2:b::1",
	      "2001:db8:1:2:c::1", "2001:db8:1:2:ffff:ffff:ffff:fffe" },
	    { "2001:db8:1:2::99", "2001:db8:1:2:1234:5678:9abc:def0", NULL },
	    { "2001:db8:1:3::1", "2001:db8:1:1::1", NULL } },
	{ "v6 /128", 32, 128,
	    { "2001:db8::7", "2001:db8::7", "2001:db8::7", "2001:db8::7",
	      "2001:db8::7" },
	    { "2001:db8::7", NULL, NULL },
	    { "2001:db8::8", NULL, NULL } },
	{ "v6 /48", 32, 48,
	    { "2001:db8:5:1::1", "2001:db8:5:2::1", "2001:db8:5:3::1",
	      "2001:db8:5:4::1", "2001:db8:5:ffff::1" },
	    { "2001:db8:5:9::9", NULL, NULL },
	    { "2001:db8:6::1", NULL, NULL } },
};

static void
test_prefix(void **state)
{
	for (size_t i = 0; i < sizeof(prefix_cases) / sizeof(*prefix_cases);
	    i++) {
		const struct prefix_case	*pc = &prefix_cases[i];
		struct rg_conf			 c;
		struct rg_harvest		*h;
		uint64_t			 t = base + 1000;

		conf_init(&c);
		c.harvest_ipv4_prefix = pc->v4;
		c.harvest_ipv6_prefix = pc->v6;
		h = mk(&c);
		for (int k = 0; k < 5; k++) {
			enum rg_harvest_state	st;

			if (blocked(h, pc->probes[k], t))
				fail_msg("%s: blocked before probe %d",
				    pc->name, k);
			st = unknown1(h, pc->probes[k], t);
			if ((st == RG_HARVEST_BLOCKED) != (k == 4))
				fail_msg("%s: probe %d gave %d", pc->name, k,
				    (int)st);
			t += 1000;
		}
		for (int k = 0; k < 3 && pc->same[k] != NULL; k++)
			if (!blocked(h, pc->same[k], t))
				fail_msg("%s: %s not blocked", pc->name,
				    pc->same[k]);
		for (int k = 0; k < 3 && pc->other[k] != NULL; k++)
			if (blocked(h, pc->other[k], t))
				fail_msg("%s: %s blocked", pc->name,
				    pc->other[k]);
		rg_harvest_free(h);
	}
}

/* ---- window and block expiry (fixed window from the first unknown) ---- */

struct time_case {
	const char	*name;
	uint64_t	 at[6];	/* offsets (ms) of unknowns, ends at 0 */
	size_t		 n;
	bool		 blocked_after;	/* checked at the last offset + 1 */
};

static const struct time_case window_cases[] = {
	{ "5 inside the window", { 0, 1, 2, 3, 9 * MIN }, 5, true },
	{ "5th just inside", { 0, 1, 2, 3, 10 * MIN - 1 }, 5, true },
	{ "5th at window end starts anew", { 0, 1, 2, 3, 10 * MIN }, 5, false },
	{ "window reopens, 5 in second",
	    { 0, 11 * MIN, 12 * MIN, 13 * MIN, 14 * MIN, 15 * MIN }, 6, true },
	{ "4 only", { 0, 1, 2, 3 }, 4, false },
};

static void
test_window(void **state)
{
	for (size_t i = 0; i < sizeof(window_cases) / sizeof(*window_cases);
	    i++) {
		const struct time_case	*tc = &window_cases[i];
		struct rg_conf		 c;
		struct rg_harvest	*h;

		conf_init(&c);
		h = mk(&c);
		for (size_t k = 0; k < tc->n; k++)
			unknown1(h, "203.0.113.9", base + tc->at[k]);
		if (blocked(h, "203.0.113.9", base + tc->at[tc->n - 1] + 1) !=
		    tc->blocked_after)
			fail_msg("%s: blocked != %d", tc->name,
			    tc->blocked_after);
		rg_harvest_free(h);
	}
}

static void
test_block_expiry(void **state)
{
	static const struct {
		uint64_t	at;
		bool		blocked;
	} checks[] = {
		{ 4, true }, { 30 * MIN, true }, { 60 * MIN + 3, true },
		{ 60 * MIN + 4, false }, { 61 * MIN, false },
	};
	struct rg_conf		 c;
	struct rg_harvest	*h;

	conf_init(&c);
	h = mk(&c);
	for (uint64_t k = 0; k < 5; k++)
		unknown1(h, "203.0.113.9", base + k);	/* blocked at +4 */
	for (size_t i = 0; i < sizeof(checks) / sizeof(*checks); i++)
		if (blocked(h, "203.0.113.9", base + checks[i].at) !=
		    checks[i].blocked)
			fail_msg("at +%llu: want blocked=%d",
			    (unsigned long long)checks[i].at,
			    checks[i].blocked);
	/* After the block, counting starts from zero. */
	for (uint64_t k = 0; k < 4; k++)
		unknown1(h, "203.0.113.9", base + 62 * MIN + k);
	assert_false(blocked(h, "203.0.113.9", base + 62 * MIN + 10));
	assert_int_equal(unknown1(h, "203.0.113.9", base + 62 * MIN + 11),
	    RG_HARVEST_BLOCKED);
	rg_harvest_free(h);
}

/* ---- per-session limit ---- */

static void
test_session(void **state)
{
	struct rg_conf			 c;
	struct rg_harvest		*h;
	struct rg_harvest_session	 s = { 0 }, s2 = { 0 };
	struct sockaddr_storage		 ss = sa("198.51.100.7");
	static const enum rg_harvest_state want[] = {
		RG_HARVEST_OK, RG_HARVEST_OK, RG_HARVEST_BLOCKED,
	};

	conf_init(&c);
	c.harvest_max_unknown = 100;
	c.harvest_max_unknown_per_session = 3;
	h = mk(&c);
	for (size_t k = 0; k < 3; k++) {
		assert_int_equal(rg_harvest_check(h, SA(ss), &s, base + k),
		    RG_HARVEST_OK);
		assert_int_equal(rg_harvest_note_unknown(h, SA(ss), &s,
		    base + k, NULL), want[k]);
	}
	assert_int_equal(s.unknown, 3);
	/* the fourth recipient of the session */
	assert_int_equal(rg_harvest_check(h, SA(ss), &s, base + 10),
	    RG_HARVEST_BLOCKED);
	/* only the session: a new one from the same client goes on */
	assert_int_equal(rg_harvest_check(h, SA(ss), &s2, base + 11),
	    RG_HARVEST_OK);
	rg_harvest_free(h);

	/* both limits: sessions of 3 add up to the client's 5 */
	c.harvest_max_unknown = 5;
	h = mk(&c);
	memset(&s, 0, sizeof(s));
	memset(&s2, 0, sizeof(s2));
	for (int k = 0; k < 3; k++)
		rg_harvest_note_unknown(h, SA(ss), &s, base + k, NULL);
	assert_int_equal(rg_harvest_check(h, SA(ss), &s2, base + 5),
	    RG_HARVEST_OK);
	rg_harvest_note_unknown(h, SA(ss), &s2, base + 6, NULL);
	assert_int_equal(rg_harvest_note_unknown(h, SA(ss), &s2, base + 7,
	    NULL), RG_HARVEST_BLOCKED);
	assert_true(blocked(h, "198.51.100.7", base + 8));
	rg_harvest_free(h);
}

/* ---- exemptions, disabled limits, non-IP clients ---- */

static void
test_exempt(void **state)
{
	struct rg_conf			 c;
	struct rg_harvest		*h;
	struct rg_net			 nets[2];
	struct rg_harvest_stats		 st;
	struct rg_harvest_session	 s = { 0 };
	struct sockaddr_storage		 un;
	static const struct {
		const char	*addr;
		bool		 exempt;
	} cases[] = {
		{ "198.51.100.1", true }, { "198.51.100.254", true },
		{ "::ffff:198.51.100.3", true }, { "2001:db8:aa::5", true },
		{ "198.51.101.1", false }, { "2001:db8:ab::5", false },
	};

	memset(nets, 0, sizeof(nets));
	nets[0].family = AF_INET;
	inet_pton(AF_INET, "198.51.100.0", nets[0].addr);
	nets[0].prefix = 24;
	nets[1].family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8:aa::", nets[1].addr);
	nets[1].prefix = 48;
	conf_init(&c);
	c.harvest_exempt.n = 2;
	c.harvest_exempt.v = nets;
	c.harvest_max_unknown_per_session = 3;
	h = mk(&c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		for (int k = 0; k < 10; k++)
			unknown1(h, cases[i].addr, base + (uint64_t)k);
		bool b = blocked(h, cases[i].addr, base + 20);

		/* print what was measured, not what the case expected */
		if (b == cases[i].exempt)
			fail_msg("%s: exempt=%d but blocked=%d", cases[i].addr,
			    cases[i].exempt, b);
	}
	rg_harvest_stats(h, &st);
	assert_int_equal(st.clients, 2);	/* exempt ones never stored */
	rg_harvest_free(h);

	/* limits off: nothing counted, nothing blocked */
	conf_init(&c);
	c.harvest_max_unknown = 0;
	h = mk(&c);
	for (int k = 0; k < 50; k++)
		assert_int_equal(unknown1(h, "192.0.2.50", base + (uint64_t)k),
		    RG_HARVEST_OK);
	assert_false(blocked(h, "192.0.2.50", base + 60));
	rg_harvest_stats(h, &st);
	assert_int_equal(st.clients, 0);
	rg_harvest_free(h);

	/* a client without an IP address: the session limit still works */
	conf_init(&c);
	c.harvest_max_unknown_per_session = 2;
	h = mk(&c);
	memset(&un, 0, sizeof(un));
	un.ss_family = AF_UNIX;
	assert_int_equal(rg_harvest_note_unknown(h, SA(un), &s, base, NULL),
	    RG_HARVEST_OK);
	assert_int_equal(rg_harvest_note_unknown(h, SA(un), &s, base, NULL),
	    RG_HARVEST_BLOCKED);
	assert_int_equal(rg_harvest_check(h, NULL, &s, base),
	    RG_HARVEST_BLOCKED);
	rg_harvest_free(h);
}

/* ---- memory bound ---- */

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
test_memory_bound(void **state)
{
	struct rg_conf		 c;
	struct rg_harvest	*h;
	struct rg_harvest_stats	 st;
	uint64_t		 seed = 0x9e3779b97f4a7c15ULL;
	char			 a[INET6_ADDRSTRLEN];
	const uint64_t		 maxc = 1000, bound = 1024; /* 64 x 16 */

	conf_init(&c);
	c.harvest_max_clients = maxc;
	h = mk(&c);
	/* a few blocked clients first: blocks are kept longest */
	for (int k = 0; k < 5; k++) {
		unknown1(h, "203.0.113.1", base + (uint64_t)k);
		unknown1(h, "2001:db8:bad::1", base + (uint64_t)k);
	}
	/* one-shot IPv4 clients */
	for (uint32_t i = 0; i < 50000; i++) {
		uint32_t	ip = htonl(0x0a000000u + i);

		inet_ntop(AF_INET, &ip, a, sizeof(a));
		unknown1(h, a, base + 10 + i / 100);
		/* lookups of unseen clients allocate nothing */
		blocked(h, "10.255.0.1", base + 10);
	}
	rg_harvest_stats(h, &st);
	if (st.clients > bound)
		fail_msg("v4 flood: %llu entries > %llu",
		    (unsigned long long)st.clients,
		    (unsigned long long)bound);
	assert_true(st.evicted >= 50000 - bound);
	/* random IPv6 addresses, each its own /64 */
	for (int i = 0; i < 50000; i++) {
		uint8_t	b[16];
		uint64_t	r1 = rnd(&seed), r2 = rnd(&seed);

		memcpy(b, &r1, 8);
		memcpy(b + 8, &r2, 8);
		b[0] = 0x20;
		inet_ntop(AF_INET6, b, a, sizeof(a));
		unknown1(h, a, base + 1000 + (uint64_t)i / 100);
	}
	rg_harvest_stats(h, &st);
	if (st.clients > bound)
		fail_msg("v6 flood: %llu entries > %llu",
		    (unsigned long long)st.clients,
		    (unsigned long long)bound);
	assert_true(blocked(h, "203.0.113.1", base + 2000));
	assert_true(blocked(h, "2001:db8:bad::2", base + 2000));
	rg_harvest_free(h);
}

/* ---- tarpit ---- */

static void
test_tarpit(void **state)
{
	struct rg_conf			 c;
	struct rg_harvest		*h;
	struct rg_harvest_session	 s = { 0 };
	struct sockaddr_storage		 ss = sa("192.0.2.33");
	struct rg_harvest_stats		 st;
	static const uint64_t want[] = { 1000, 2000, 4000, 5000, 5000 };
	uint64_t			 d;

	conf_init(&c);
	c.harvest_max_unknown = 100;
	c.harvest_tarpit_ms = 1000;
	c.harvest_tarpit_max_ms = 5000;
	c.harvest_tarpit_sessions = 2;
	h = mk(&c);
	for (size_t k = 0; k < sizeof(want) / sizeof(*want); k++) {
		rg_harvest_note_unknown(h, SA(ss), &s, base + k, &d);
		assert_int_equal(d, want[k]);
		rg_harvest_tarpit_done(h);
	}
	/* slots: two held, the third answers at once */
	rg_harvest_note_unknown(h, SA(ss), &s, base + 10, &d);
	assert_true(d > 0);
	rg_harvest_note_unknown(h, SA(ss), &s, base + 11, &d);
	assert_true(d > 0);
	rg_harvest_note_unknown(h, SA(ss), &s, base + 12, &d);
	assert_int_equal(d, 0);
	rg_harvest_stats(h, &st);
	assert_int_equal(st.tarpit_active, 2);
	rg_harvest_tarpit_done(h);
	rg_harvest_note_unknown(h, SA(ss), &s, base + 13, &d);
	assert_int_equal(d, 5000);
	rg_harvest_tarpit_done(h);
	rg_harvest_tarpit_done(h);
	rg_harvest_stats(h, &st);
	assert_int_equal(st.tarpit_active, 0);
	rg_harvest_free(h);
}

/* ---- persistence with a real SQLite file ---- */

static void
state_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void
test_persist(void **state)
{
	struct rg_conf		 c;
	struct rg_harvest	*h;
	struct rg_error		 err;
	char			 path[256], *out = NULL;
	size_t			 outlen = 0;
	FILE			*f;
	uint64_t		 t = rg_now_ms();

	state_path(path, sizeof(path), "persist.db");
	conf_init(&c);
	c.harvest_state = path;
	h = mk(&c);
	for (int k = 0; k < 5; k++)
		unknown1(h, "203.0.113.50", t);
	for (int k = 0; k < 2; k++)
		unknown1(h, "2001:db8:77::1", t);
	assert_true(blocked(h, "203.0.113.50", t + 1));
	rg_harvest_free(h);		/* flushes */

	h = mk(&c);
	assert_true(blocked(h, "203.0.113.50", t + 2));
	assert_false(blocked(h, "2001:db8:77::1", t + 2));
	/* the counter survived too: 2 + 3 = 5 */
	unknown1(h, "2001:db8:77::2", t + 3);
	unknown1(h, "2001:db8:77::3", t + 3);
	assert_false(blocked(h, "2001:db8:77::1", t + 4));
	assert_int_equal(unknown1(h, "2001:db8:77::4", t + 5),
	    RG_HARVEST_BLOCKED);
	rg_harvest_free(h);

	/* the operator view reads the file directly */
	f = open_memstream(&out, &outlen);
	assert_non_null(f);
	rg_error_clear(&err);
	assert_int_equal(rg_harvest_list(&c, f, &err), 0);
	fclose(f);
	assert_non_null(strstr(out,
	    "203.0.113.50/32\tblocked\tcount=5\tuntil="));
	assert_non_null(strstr(out, "2001:db8:77::/64\tblocked\tcount=5"));
	free(out);

	/* expired entries are not loaded (a window and block later) */
	h = mk(&c);
	assert_false(blocked(h, "203.0.113.50", t + 61 * MIN));
	rg_harvest_free(h);
}

static void
test_unblock_live(void **state)
{
	struct rg_conf		 c;
	struct rg_harvest	*h;
	struct rg_error		 err;
	char			 path[256];
	uint64_t		 t = rg_now_ms(), start;
	bool			 lifted = false;

	state_path(path, sizeof(path), "unblock.db");
	conf_init(&c);
	c.harvest_state = path;
	c.harvest_ipv4_prefix = 24;
	h = mk(&c);
	for (int k = 0; k < 5; k++)
		unknown1(h, "192.0.2.10", t);
	assert_true(blocked(h, "192.0.2.99", t + 1));
	rg_sleep_ms(1500);		/* let it reach the file */

	rg_error_clear(&err);
	assert_int_equal(rg_harvest_unblock(&c, "bogus", &err), -1);
	assert_int_equal(rg_harvest_unblock(&c, "192.0.2.77", &err), 1);
	assert_int_equal(rg_harvest_unblock(&c, "192.0.2.0/24", &err), 0);
	start = rg_now_ms();
	while (rg_now_ms() - start < 5000) {	/* bounded */
		if (!blocked(h, "192.0.2.10", t + 2)) {
			lifted = true;
			break;
		}
		rg_sleep_ms(50);
	}
	assert_true(lifted);
	print_message("unblock noticed after %llu ms\n",
	    (unsigned long long)(rg_now_ms() - start));
	/* and the counter was reset with it */
	unknown1(h, "192.0.2.10", t + 3);
	assert_false(blocked(h, "192.0.2.10", t + 4));
	rg_harvest_free(h);

	/* nor does it come back after a restart */
	h = mk(&c);
	assert_false(blocked(h, "192.0.2.10", t + 5));
	rg_harvest_free(h);
}

static void
test_unwritable(void **state)
{
	struct rg_conf		 c;
	struct rg_harvest	*h;
	char			 path[300], file[256];
	FILE			*f;

	/* a path under a regular file: not even root can create it */
	state_path(file, sizeof(file), "plainfile");
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/harvest.db", file);
	conf_init(&c);
	c.harvest_state = path;
	h = mk(&c);			/* starts anyway */
	for (int k = 0; k < 4; k++)
		assert_int_equal(unknown1(h, "192.0.2.1", base + 1),
		    RG_HARVEST_OK);
	assert_int_equal(unknown1(h, "192.0.2.1", base + 1),
	    RG_HARVEST_BLOCKED);
	assert_true(blocked(h, "192.0.2.1", base + 2));
	assert_false(blocked(h, "192.0.2.2", base + 2));
	rg_harvest_free(h);
}

/* ---- concurrency: bounded storm (run under TSan too) ---- */

#define STORM_THREADS	8
#define STORM_OPS	40000
#define STORM_MS	3000

struct storm {
	struct rg_harvest	*h;
	_Atomic uint64_t	 clock;		/* shared fake now */
	_Atomic uint64_t	 blocks_seen;
};

struct storm_arg {
	struct storm	*st;
	uint64_t	 seed;
};

static void *
storm_main(void *arg)
{
	struct storm_arg		*sa_ = arg;
	struct storm			*st = sa_->st;
	uint64_t			 seed = sa_->seed, start = rg_now_ms();
	struct rg_harvest_session	 s = { 0 };
	char				 a[INET6_ADDRSTRLEN];

	for (int i = 0; i < STORM_OPS && rg_now_ms() - start < STORM_MS;
	    i++) {
		uint64_t		r = rnd(&seed);
		uint64_t		now = atomic_fetch_add(&st->clock, 3);
		struct sockaddr_storage	ss;
		uint64_t		d;

		if (r & 1)
			snprintf(a, sizeof(a), "10.1.%u.%u",
			    (unsigned)(r >> 8 & 3), (unsigned)(r >> 16 & 255));
		else
			snprintf(a, sizeof(a), "2001:db8:%x::%x",
			    (unsigned)(r >> 8 & 7), (unsigned)(r >> 16 & 255));
		ss = sa(a);
		if (i % 17 == 0)
			memset(&s, 0, sizeof(s));	/* a new session */
		if (rg_harvest_check(st->h, SA(ss), &s, now) ==
		    RG_HARVEST_BLOCKED) {
			atomic_fetch_add(&st->blocks_seen, 1);
			memset(&s, 0, sizeof(s));
			continue;
		}
		if (r & 2) {
			rg_harvest_note_unknown(st->h, SA(ss), &s, now, &d);
			if (d > 0)
				rg_harvest_tarpit_done(st->h);
		}
	}
	return NULL;
}

static void
test_storm(void **state)
{
	struct rg_conf		 c;
	struct storm		 st;
	pthread_t		 th[STORM_THREADS];
	struct storm_arg	 per[STORM_THREADS];
	struct rg_harvest_stats	 hs;
	char			 path[256];

	state_path(path, sizeof(path), "storm.db");
	conf_init(&c);
	c.harvest_state = path;
	c.harvest_max_clients = 500;
	c.harvest_window_ms = 2000;
	c.harvest_block_time_ms = 5000;
	c.harvest_max_unknown_per_session = 3;
	c.harvest_tarpit_ms = 10;
	c.harvest_tarpit_sessions = 4;
	memset(&st, 0, sizeof(st));
	st.h = mk(&c);
	atomic_store(&st.clock, base);
	for (int i = 0; i < STORM_THREADS; i++) {
		per[i].st = &st;
		per[i].seed = 0x1234567ULL * (uint64_t)(i + 1);
		assert_int_equal(pthread_create(&th[i], NULL, storm_main,
		    &per[i]), 0);
	}
	for (int i = 0; i < STORM_THREADS; i++)
		pthread_join(th[i], NULL);
	/* one reload while nothing runs is also fine */
	c.harvest_max_unknown = 7;
	rg_harvest_configure(st.h, &c);
	rg_harvest_stats(st.h, &hs);
	assert_true(hs.clients <= 512);
	assert_true(hs.blocks > 0);
	assert_int_equal(hs.tarpit_active, 0);
	rg_harvest_free(st.h);
}

/* ---- Redis ---- */

static pid_t	redis_pid = -1;

static void
redis_stop(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGTERM);
		waitpid(redis_pid, NULL, 0);
		redis_pid = -1;
	}
}

#ifdef RG_HAVE_HIREDIS
static int	redis_port;

static int
free_port(void)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static bool
port_open(int port)
{
	struct sockaddr_in	sin;
	int			fd, ok;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return false;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

/* Start redis-server on a free port; false (skip) if it is missing. */
static bool
redis_start(void)
{
	char	port[16];

	if (access("/usr/bin/redis-server", X_OK) != 0)
		return false;
	for (int attempt = 0; attempt < 5; attempt++) {
		redis_port = free_port();
		snprintf(port, sizeof(port), "%d", redis_port);
		if ((redis_pid = fork()) == 0) {
			int	null = open("/dev/null", O_WRONLY);

			if (null >= 0) {
				dup2(null, 1);
				dup2(null, 2);
			}
			execl("/usr/bin/redis-server", "redis-server",
			    "--port", port, "--bind", "127.0.0.1", "--save", "",
			    "--appendonly", "no", "--dir", tmpdir,
			    (char *)NULL);
			_exit(127);
		}
		for (int i = 0; i < 50; i++) {		/* 5 s */
			if (port_open(redis_port))
				return true;
			if (waitpid(redis_pid, NULL, WNOHANG) == redis_pid)
				break;		/* lost the port race */
			rg_sleep_ms(100);
		}
		redis_stop();
	}
	fail_msg("redis-server did not start");
	return false;
}
#endif

static void
test_redis(void **state)
{
#ifndef RG_HAVE_HIREDIS
	print_message("SKIP: built without hiredis\n");
	skip();
#else
	struct rg_conf		 c;
	struct rg_harvest	*h1, *h2;
	struct rg_error		 err;
	char			 url[64], *out = NULL;
	size_t			 outlen = 0;
	FILE			*f;
	uint64_t		 t = base + 1000;

	if (!redis_start()) {
		print_message("SKIP: /usr/bin/redis-server not installed\n");
		skip();
	}
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/3", redis_port);
	conf_init(&c);
	c.harvest_state = url;
	h1 = mk(&c);		/* two MX hosts sharing one Redis */
	h2 = mk(&c);

	/* a harvester spread over both: 3 on one, 2 on the other */
	for (int k = 0; k < 3; k++)
		assert_int_equal(unknown1(h1, "203.0.113.77", t),
		    RG_HARVEST_OK);
	assert_int_equal(unknown1(h2, "203.0.113.77", t), RG_HARVEST_OK);
	/* h1 asks Redis now: not blocked yet (nor cached as such later) */
	assert_false(blocked(h1, "203.0.113.77", t + 1));
	assert_int_equal(unknown1(h2, "203.0.113.77", t), RG_HARVEST_BLOCKED);
	/* h1 counted only 3 itself, yet sees the block through Redis */
	assert_true(blocked(h1, "203.0.113.77", t + 1));
	assert_false(blocked(h1, "203.0.113.78", t + 1));

	f = open_memstream(&out, &outlen);
	assert_int_equal(rg_harvest_list(&c, f, &err), 0);
	fclose(f);
	assert_non_null(strstr(out, "203.0.113.77/32\tblocked\tcount=5"));
	free(out);

	/* an operator lifts it; both notice after the local answer TTL */
	assert_int_equal(rg_harvest_unblock(&c, "203.0.113.77", &err), 1);
	assert_false(blocked(h1, "203.0.113.77", t + 5000));
	assert_false(blocked(h2, "203.0.113.77", t + 5000));

	/* Redis stops: mail flows and counting goes on locally */
	redis_stop();
	for (int k = 0; k < 4; k++)
		assert_int_equal(unknown1(h1, "192.0.2.200", t + 6000),
		    RG_HARVEST_OK);
	assert_false(blocked(h1, "192.0.2.200", t + 6001));
	assert_int_equal(unknown1(h1, "192.0.2.200", t + 6002),
	    RG_HARVEST_BLOCKED);
	assert_true(blocked(h1, "192.0.2.200", t + 6003));
	assert_false(blocked(h2, "192.0.2.201", t + 6003));
	assert_int_equal(rg_harvest_list(&c, stderr, &err), -1);
	rg_harvest_free(h1);
	rg_harvest_free(h2);
#endif
}

/* ---- the key helpers through the operator's input ---- */

static void
test_unblock_input(void **state)
{
	struct rg_conf	c;
	struct rg_error	err;
	static const char *const bad[] = {
		"", "x", "1.2.3.4/33", "1.2.3.4/", "::1/129", "1.2.3.4/a",
		"1.2.3.4.5",
	};

	conf_init(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		rg_error_clear(&err);
		if (rg_harvest_unblock(&c, bad[i], &err) != -1)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(err.msg, "not an IP"));
	}
	/* memory only: a clear error, not a crash */
	assert_int_equal(rg_harvest_unblock(&c, "192.0.2.1", &err), -1);
	assert_non_null(strstr(err.msg, "memory only"));
}

static int
setup(void **state)
{
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	base = rg_now_ms();
	return 0;
}

static int
teardown(void **state)
{
	char	cmd[300];

	redis_stop();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_block_expiry),
		cmocka_unit_test(test_session),
		cmocka_unit_test(test_exempt),
		cmocka_unit_test(test_memory_bound),
		cmocka_unit_test(test_tarpit),
		cmocka_unit_test(test_persist),
		cmocka_unit_test(test_unblock_live),
		cmocka_unit_test(test_unwritable),
		cmocka_unit_test(test_storm),
		cmocka_unit_test(test_unblock_input),
		cmocka_unit_test(test_redis),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
