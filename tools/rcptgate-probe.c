/* SPDX-License-Identifier: MIT */
/*
 * rcptgate-probe: the backscatter self-test for any MX, as an outside
 * client would see it. It asks at RCPT for a random unknown recipient,
 * for postmaster, and for an address in an outside domain, and with
 * --harvest for many unknown recipients, and prints one line per check:
 * a verdict (good, RISK, unknown) and the server's words, escaped.
 *
 * It never sends DATA (only EHLO/HELO, MAIL, RCPT, RSET and QUIT), so
 * no message is ever queued; every step has a deadline (--timeout).
 * It reuses the call-ahead SMTP client (lib/backend/smtp_client.h).
 *
 * Exit: 0 every check good; 1 a risk found; 75 nothing risky but some
 * check could not tell (no answer, 4xx); 64 bad command line.
 * Single-threaded; no locking.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sysexits.h>
#include <unistd.h>

#include "rg_error.h"
#include "rg_time.h"
#include "smtp_client.h"

enum verdict { V_GOOD, V_RISK, V_UNKNOWN };

/*
 * Buffer sizes, each big enough for what goes in, so nothing is cut:
 * a reply escaped (4 bytes per byte at worst), a reason around one,
 * and a line around a reason.
 */
#define WORDS_MAX	(4 * (RG_SMTP_TEXT_MAX + 32))
#define WHY_MAX		(WORDS_MAX + 64)
#define LINE_MAX_	(2 * WHY_MAX + 64)

/* The command line, and the worst verdict so far. */
struct probe {
	char		 host[256];
	char		 port[16];
	char		 domain[256];
	char		 helo[256];
	const char	*from;		/* MAIL FROM path ("" = null sender) */
	const char	*relay_domain;
	const char	*known;		/* NULL: postmaster@domain */
	uint64_t	 timeout_ms;
	long		 harvest;	/* 0: no harvest check */
	bool		 risk, unsure;
	/* No session could be opened: later checks say so without waiting
	 * out the timeouts again. */
	char		 down[WHY_MAX];
	char		 local[64];	/* our address as the socket says */
};

/* One SMTP session, up to an open transaction (after MAIL FROM). */
struct sess {
	struct rg_smtp_conn	*c;
	struct rg_smtp_reply	 last;	/* the reply that ended it, if any */
	enum rg_smtp_status	 st;	/* why it failed, if it did */
	char			 detail[256];	/* the client's words on it */
};

static void
usage(int code)
{
	FILE	*f = code == 0 ? stdout : stderr;

	fprintf(f, "usage: rcptgate-probe [options] HOST[:PORT] [DOMAIN]\n"
	    "  Ask an MX, as an outside client, whether it refuses unknown\n"
	    "  recipients at RCPT (no backscatter), takes postmaster, refuses\n"
	    "  to relay, and (--harvest) stops a directory harvest.\n"
	    "  Never sends DATA. DOMAIN: default HOST without its first "
	    "label;\n"
	    "  required when HOST is an address.\n"
	    "  -t, --timeout SEC     per step (connect, greeting, each "
	    "command); 10\n"
	    "  -H, --helo NAME       EHLO name; default this host's name or "
	    "probe.invalid\n"
	    "  -f, --from ADDR       MAIL FROM; default <> (as a bounce)\n"
	    "  -r, --relay-domain D  outside domain for the relay check; "
	    "example.org\n"
	    "  -n, --harvest N       also send N unknown recipients (gets this "
	    "address\n"
	    "                        blocked on a gateway that works)\n"
	    "  -k, --known ADDR      an address that exists, for --harvest; "
	    "default\n"
	    "                        postmaster@DOMAIN\n"
	    "  -h, --help            this text\n"
	    "Exit: 0 all good, 1 a risk found, 75 could not tell, 64 usage.\n");
	exit(code);
}

static void
die_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "rcptgate-probe: %s%s%s\n", msg, arg ? ": " : "",
	    arg ? arg : "");
	usage(EX_USAGE);
}

/* The server's words, printable: bytes outside 0x20..0x7e as \xHH. */
static void
escape(const char *s, char *out, size_t size)
{
	size_t	n = 0;

	for (; *s != '\0' && n + 5 < size; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			out[n++] = (char)ch;
		else
			n += (size_t)snprintf(out + n, size - n, "\\x%02x",
			    ch);
	}
	out[n] = '\0';
}

/* "550 5.1.1 text", the whole reply as the server put it (escaped). */
static void
reply_words(const struct rg_smtp_reply *r, char *out, size_t size)
{
	char	raw[RG_SMTP_TEXT_MAX + 32], esc[WORDS_MAX];

	if (r->enh[0] != 0)
		snprintf(raw, sizeof(raw), "%d %d.%d.%d %s", r->code,
		    r->enh[0], r->enh[1], r->enh[2], r->text);
	else
		snprintf(raw, sizeof(raw), "%d %s", r->code, r->text);
	escape(raw, esc, sizeof(esc));
	snprintf(out, size, "%s", esc);
}

/* Keep the first line of a failed call's error for the report. */
static void
save_err(struct sess *s, const struct rg_error *err)
{
	char	line[sizeof(s->detail)];

	snprintf(line, sizeof(line), "%.*s", (int)strcspn(err->msg, "\n"),
	    err->msg);
	escape(line, s->detail, sizeof(s->detail));
}

static void
report(struct probe *p, enum verdict v, const char *check, const char *what,
    const char *words)
{
	static const char *const names[] = { "good", "RISK", "unknown" };

	if (v == V_RISK)
		p->risk = true;
	else if (v == V_UNKNOWN)
		p->unsure = true;
	printf("%-7s %-10s %s: %s\n", names[v], check, what, words);
	fflush(stdout);
}

/* A random local part no directory holds: 12 hex digits. */
static void
random_local(char *out, size_t size)
{
	unsigned char	b[6] = { 0 };
	uint64_t	t = rg_now_ms();

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		memcpy(b, &t, sizeof(b) < sizeof(t) ? sizeof(b) : sizeof(t));
	snprintf(out, size, "rgprobe-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	    b[2], b[3], b[4], b[5]);
}

static uint64_t
deadline(const struct probe *p)
{
	return rg_now_ms() + p->timeout_ms;
}

static void
sess_close(struct sess *s)
{
	rg_smtp_close(s->c, true);
	s->c = NULL;
}

/* Send verb/path; false (session closed) unless a reply was read. */
static bool
cmd(const struct probe *p, struct sess *s, const char *verb,
    const char *path, struct rg_smtp_reply *r)
{
	struct rg_error	err;

	rg_error_clear(&err);
	s->st = rg_smtp_command(s->c, verb, path, deadline(p), r, &err);
	if (s->st != RG_SMTP_OK) {
		save_err(s, &err);
		sess_close(s);
		return false;
	}
	s->last = *r;
	if (r->code == 421)	/* the server closes; so do we */
		sess_close(s);
	return s->c != NULL;
}

/*
 * Connect, read the greeting, EHLO (HELO if refused), MAIL FROM.
 * Returns true with an open transaction; false with s->st or s->last
 * saying why (s->last.code 0 if no reply came).
 */
static bool
sess_open(struct probe *p, struct sess *s)
{
	struct rg_error		err;
	struct rg_smtp_reply	r;
	char			hello[sizeof(p->helo) + 8];

	memset(s, 0, sizeof(*s));
	rg_error_clear(&err);
	s->st = rg_smtp_connect(p->host, p->port, deadline(p), &s->c, &err);
	if (s->st != RG_SMTP_OK) {
		save_err(s, &err);
		return false;
	}
	rg_smtp_local(s->c, p->local, sizeof(p->local));
	s->st = rg_smtp_read_reply(s->c, deadline(p), &r, &err);
	if (s->st != RG_SMTP_OK) {
		save_err(s, &err);
		sess_close(s);
		return false;
	}
	s->last = r;
	if (r.code != 220) {
		sess_close(s);
		return false;
	}
	/* The name is no path: no angle brackets, so it goes in the verb. */
	snprintf(hello, sizeof(hello), "EHLO %s", p->helo);
	if (!cmd(p, s, hello, NULL, &r))
		return false;
	/* An old server that knows no EHLO. */
	hello[0] = 'H';
	if (r.code / 100 == 5 && !cmd(p, s, hello, NULL, &r))
		return false;
	if (r.code / 100 != 2) {
		sess_close(s);
		return false;
	}
	if (!cmd(p, s, "MAIL FROM:", p->from, &r) || r.code / 100 != 2) {
		sess_close(s);
		return false;
	}
	return true;
}

/* Why a session did not get as far as RCPT, in words for the report. */
static void
sess_why(const struct sess *s, char *out, size_t size)
{
	char	w[WORDS_MAX];

	if (s->st != RG_SMTP_OK && s->detail[0] != '\0')
		snprintf(out, size, "(%s: %s)", rg_smtp_status_str(s->st),
		    s->detail);
	else if (s->st != RG_SMTP_OK)
		snprintf(out, size, "(%s)", rg_smtp_status_str(s->st));
	else if (s->last.code != 0) {
		reply_words(&s->last, w, sizeof(w));
		snprintf(out, size, "before RCPT: %s", w);
	} else
		snprintf(out, size, "(no reply)");
}

/*
 * One RCPT in a session opened on demand (and reopened once if it was
 * closed). Returns true with *r filled; false with the reason in why.
 */
static bool
rcpt(struct probe *p, struct sess *s, const char *addr,
    struct rg_smtp_reply *r, char *why, size_t whysize)
{
	int	tries;

	if (p->down[0] != '\0') {
		snprintf(why, whysize, "%s", p->down);
		return false;
	}
	for (tries = 0; tries < 2; tries++) {
		if (s->c == NULL && !sess_open(p, s)) {
			sess_why(s, p->down, sizeof(p->down));
			snprintf(why, whysize, "%s", p->down);
			return false;
		}
		if (cmd(p, s, "RCPT TO:", addr, r) || s->st == RG_SMTP_OK)
			return true;
	}
	sess_why(s, why, whysize);
	return false;
}

/* One RCPT check: what a 2xx and a 5xx mean for it (a 4xx tells nothing). */
struct rcpt_check {
	const char	*name;
	enum verdict	 on2xx;
	const char	*what2xx;
	enum verdict	 on5xx;
	const char	*what5xx;
};

static const struct rcpt_check check_unknown = {
	/* 1: a random unknown recipient must be refused at RCPT */
	"unknown", V_RISK, "accepted at RCPT: it will bounce later "
	    "(backscatter)", V_GOOD, "refused at RCPT",
};
static const struct rcpt_check check_postmaster = {
	/* 2: postmaster@domain must be taken (RFC 5321 4.5.1) */
	"postmaster", V_GOOD, "accepted", V_RISK,
	    "refused (RFC 5321 4.5.1 requires it)",
};
static const struct rcpt_check check_relay = {
	/* 3: an address in an outside domain must not be relayed */
	"relay", V_RISK, "accepted: open relay", V_GOOD, "refused",
};

/* RCPT TO:<local@domain> (local NULL: a random one), and its verdict. */
static void
rcpt_check(struct probe *p, struct sess *s, const struct rcpt_check *c,
    const char *local, const char *domain)
{
	struct rg_smtp_reply	r;
	char			addr[512], lp[32], w[WHY_MAX];

	if (local == NULL) {
		random_local(lp, sizeof(lp));
		local = lp;
	}
	snprintf(addr, sizeof(addr), "%s@%s", local, domain);
	if (!rcpt(p, s, addr, &r, w, sizeof(w))) {
		report(p, V_UNKNOWN, c->name, addr, w);
		return;
	}
	reply_words(&r, w, sizeof(w));
	if (r.code / 100 == 2)
		report(p, c->on2xx, c->name, c->what2xx, w);
	else if (r.code / 100 == 5)
		report(p, c->on5xx, c->name, c->what5xx, w);
	else
		report(p, V_UNKNOWN, c->name, "temporary failure: could not "
		    "tell", w);
}

/* A reply that says "you are blocked" rather than "no such user". */
static bool
is_block(const struct rg_smtp_reply *r)
{
	return r->code == 421 || (r->code / 100 >= 4 && r->enh[1] == 7);
}

/* What the harvest run saw. */
struct harvest {
	long			sent;		/* RCPTs answered */
	long			blocked_at;	/* 0: never blocked */
	char			block_words[WHY_MAX + 32];
	uint64_t		first_ms, last_ms;	/* mean of first and
						 * last quarter, per RCPT */
};

/*
 * Send p->harvest unknown recipients, at most 10 per session (a real
 * harvester spreads them out too), reconnecting as needed, until done
 * or blocked (a 421, a 4xx/5xx x.7.x, a refused or dropped session).
 */
static void
harvest_run(struct probe *p, struct harvest *h)
{
	struct sess		s = { 0 };
	struct rg_smtp_reply	r;
	char			addr[512], lp[32], w[WHY_MAX];
	uint64_t		t0, sum_first = 0, sum_last = 0, dt;
	long			q = p->harvest / 4 > 0 ? p->harvest / 4 : 1;
	int			in_sess = 0;

	memset(h, 0, sizeof(*h));
	while (h->sent < p->harvest) {
		if (s.c != NULL && in_sess >= 10) {
			sess_close(&s);
			in_sess = 0;
		}
		if (s.c == NULL && !sess_open(p, &s)) {
			sess_why(&s, w, sizeof(w));
			h->blocked_at = h->sent + 1;
			snprintf(h->block_words, sizeof(h->block_words),
			    "session refused %s", w);
			break;
		}
		random_local(lp, sizeof(lp));
		snprintf(addr, sizeof(addr), "%s@%s", lp, p->domain);
		t0 = rg_now_ms();
		if (!cmd(p, &s, "RCPT TO:", addr, &r) && s.st != RG_SMTP_OK) {
			h->blocked_at = h->sent + 1;
			snprintf(h->block_words, sizeof(h->block_words),
			    "session dropped (%s)", rg_smtp_status_str(s.st));
			break;
		}
		dt = rg_now_ms() - t0;
		h->sent++;
		in_sess++;
		if (h->sent <= q)
			sum_first += dt;
		if (h->sent > p->harvest - q)
			sum_last += dt;
		if (is_block(&r)) {
			h->blocked_at = h->sent;
			reply_words(&r, h->block_words,
			    sizeof(h->block_words));
			break;
		}
	}
	sess_close(&s);
	h->first_ms = sum_first / (uint64_t)q;
	h->last_ms = sum_last / (uint64_t)q;
}

/* The reply to addr in a session of its own, as words for comparing. */
static void
lone_reply(struct probe *p, const char *addr, char *out, size_t size)
{
	struct sess		s = { 0 };
	struct rg_smtp_reply	r;
	char			w[WHY_MAX], *at;
	size_t			n;

	if (!rcpt(p, &s, addr, &r, w, sizeof(w)))
		snprintf(out, size, "%s", w);
	else
		reply_words(&r, out, size);
	sess_close(&s);
	/* A reply may name the address; compare the rest. */
	n = strlen(addr);
	while ((at = strstr(out, addr)) != NULL)
		memmove(at, at + n, strlen(at + n) + 1);
}

/* Check 4: slowed or blocked, and does a blocked client still learn? */
static void
check_harvest(struct probe *p)
{
	struct harvest	h;
	char		w[LINE_MAX_], known[512], unk[512], lp[32];
	char		rk[WHY_MAX], ru[WHY_MAX];

	if (p->down[0] != '\0') {
		report(p, V_UNKNOWN, "harvest", "not tried", p->down);
		return;
	}
	harvest_run(p, &h);
	snprintf(w, sizeof(w), "mean per RCPT %llu ms (first quarter), "
	    "%llu ms (last quarter)", (unsigned long long)h.first_ms,
	    (unsigned long long)h.last_ms);
	if (h.blocked_at > 0) {
		snprintf(w, sizeof(w), "blocked at unknown recipient %ld of "
		    "%ld", h.blocked_at, p->harvest);
		report(p, V_GOOD, "harvest", w, h.block_words);
	} else if (h.last_ms >= 500 && h.last_ms > 2 * h.first_ms + 200) {
		report(p, V_GOOD, "harvest", "slowed, not blocked", w);
	} else {
		snprintf(known, sizeof(known), "%ld unknown recipients "
		    "neither slowed nor blocked", h.sent);
		report(p, V_RISK, "harvest", known, w);
		return;
	}
	if (h.blocked_at == 0)
		return;
	if (p->known != NULL)
		snprintf(known, sizeof(known), "%s", p->known);
	else
		snprintf(known, sizeof(known), "postmaster@%s", p->domain);
	random_local(lp, sizeof(lp));
	snprintf(unk, sizeof(unk), "%s@%s", lp, p->domain);
	lone_reply(p, known, rk, sizeof(rk));
	lone_reply(p, unk, ru, sizeof(ru));
	snprintf(w, sizeof(w), "known: %s | unknown: %s", rk, ru);
	if (strcmp(rk, ru) == 0)
		report(p, V_GOOD, "blocked", "same reply for known and "
		    "unknown", w);
	else
		report(p, V_RISK, "blocked", "a blocked client still tells "
		    "known from unknown", w);
}

/* HOST, [HOST], HOST:PORT or [HOST]:PORT into p->host and p->port. */
static void
parse_target(struct probe *p, const char *arg)
{
	const char	*end, *colon;
	size_t		 n;

	snprintf(p->port, sizeof(p->port), "25");
	if (arg[0] == '[') {
		if ((end = strchr(arg, ']')) == NULL)
			die_usage("bad host", arg);
		n = (size_t)(end - arg - 1);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			die_usage("bad host", arg);
		arg++;
	} else if ((colon = strchr(arg, ':')) != NULL &&
	    strchr(colon + 1, ':') != NULL) {
		colon = NULL;	/* a bare IPv6 address, no port */
		n = strlen(arg);
	} else
		n = colon != NULL ? (size_t)(colon - arg) : strlen(arg);
	if (n == 0 || n >= sizeof(p->host))
		die_usage("bad host", arg);
	memcpy(p->host, arg, n);
	p->host[n] = '\0';
	if (colon != NULL) {
		if (colon[1] == '\0' || strlen(colon + 1) >= sizeof(p->port) ||
		    strspn(colon + 1, "0123456789") != strlen(colon + 1))
			die_usage("bad port", arg);
		snprintf(p->port, sizeof(p->port), "%s", colon + 1);
	}
}

/* DOMAIN, else the host name without its first label. */
static void
pick_domain(struct probe *p, const char *arg)
{
	const char	*dot;
	bool		 literal;

	if (arg != NULL) {
		if (strlen(arg) >= sizeof(p->domain) ||
		    !rg_smtp_path_ok(arg, strlen(arg)) ||
		    strchr(arg, '@') != NULL || arg[0] == '\0')
			die_usage("bad domain", arg);
		snprintf(p->domain, sizeof(p->domain), "%s", arg);
		return;
	}
	literal = strchr(p->host, ':') != NULL ||
	    strspn(p->host, "0123456789.") == strlen(p->host);
	dot = strchr(p->host, '.');
	if (literal || dot == NULL || strchr(dot + 1, '.') == NULL)
		die_usage("give DOMAIN (HOST is an address or has no "
		    "domain part)", p->host);
	snprintf(p->domain, sizeof(p->domain), "%s", dot + 1);
}

static long
number(const char *s, long min, long max, const char *what)
{
	char	*end;
	long	 v;

	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < min || v > max)
		die_usage(what, s);
	return v;
}

static void
parse_args(struct probe *p, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "helo", required_argument, NULL, 'H' },
		{ "from", required_argument, NULL, 'f' },
		{ "relay-domain", required_argument, NULL, 'r' },
		{ "harvest", required_argument, NULL, 'n' },
		{ "known", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int	ch;

	while ((ch = getopt_long(argc, argv, "t:H:f:r:n:k:h", opts,
	    NULL)) != -1) {
		switch (ch) {
		case 't':
			p->timeout_ms = (uint64_t)number(optarg, 1, 3600,
			    "bad timeout") * 1000;
			break;
		case 'H':
			if (strlen(optarg) >= sizeof(p->helo) ||
			    !rg_smtp_path_ok(optarg, strlen(optarg)) ||
			    strchr(optarg, ' ') != NULL || !*optarg)
				die_usage("bad HELO name", optarg);
			snprintf(p->helo, sizeof(p->helo), "%s", optarg);
			break;
		case 'f':
			p->from = optarg;
			break;
		case 'r':
			p->relay_domain = optarg;
			break;
		case 'n':
			p->harvest = number(optarg, 1, 10000, "bad --harvest");
			break;
		case 'k':
			p->known = optarg;
			break;
		case 'h':
			usage(0);
			break;
		default:
			usage(EX_USAGE);
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		usage(EX_USAGE);
	parse_target(p, argv[optind]);
	pick_domain(p, argc - optind == 2 ? argv[optind + 1] : NULL);
}

/* Paths go inside <...>: refuse what the client would refuse anyway. */
static void
check_paths(const struct probe *p)
{
	const char	*v[] = { p->from, p->relay_domain, p->known };
	size_t		 i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (v[i] != NULL && !rg_smtp_path_ok(v[i], strlen(v[i])))
			die_usage("bad address or domain", v[i]);
}

static void
default_helo(struct probe *p)
{
	char	name[256] = { 0 };

	if (p->helo[0] != '\0')
		return;
	/* A name without a dot is no FQDN; some servers refuse it. */
	if (gethostname(name, sizeof(name)) == 0 &&
	    name[sizeof(name) - 1] == '\0' && strchr(name, '.') != NULL &&
	    rg_smtp_path_ok(name, strlen(name)))
		snprintf(p->helo, sizeof(p->helo), "%s", name);
	else
		snprintf(p->helo, sizeof(p->helo), "probe.invalid");
}

int
main(int argc, char **argv)
{
	struct probe	p;
	struct sess	s = { 0 };

	memset(&p, 0, sizeof(p));
	p.from = "";
	p.relay_domain = "example.org";
	p.timeout_ms = 10000;
	parse_args(&p, argc, argv);
	check_paths(&p);
	default_helo(&p);
	printf("probing %s port %s for domain %s as %s (timeout %llu s)\n",
	    p.host, p.port, p.domain, p.helo,
	    (unsigned long long)(p.timeout_ms / 1000));
	fflush(stdout);
	rcpt_check(&p, &s, &check_unknown, NULL, p.domain);
	rcpt_check(&p, &s, &check_postmaster, "postmaster", p.domain);
	rcpt_check(&p, &s, &check_relay, NULL, p.relay_domain);
	if (s.c != NULL) {
		struct rg_smtp_reply r;

		(void)cmd(&p, &s, "RSET", NULL, &r);
	}
	sess_close(&s);
	if (p.harvest > 0) {
		fprintf(stderr, "rcptgate-probe: warning: --harvest %ld: a "
		    "gateway that works will block this client's address "
		    "(%s as this host sees it) for a while\n", p.harvest,
		    p.local[0] != '\0' ? p.local : "?");
		check_harvest(&p);
		/* Printed even when no block was seen: one may come from
		 * a limit this run left counting, or after it. */
		printf("to lift any block and counter this run left on an "
		    "rcptgate MX (behind NAT the server sees another "
		    "address):\n"
		    "  rcptgate-ctl unblock %s\n",
		    p.local[0] != '\0' ? p.local : "ADDRESS");
	}
	if (p.risk)
		return 1;
	return p.unsure ? EX_TEMPFAIL : 0;
}
