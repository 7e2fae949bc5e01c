/* SPDX-License-Identifier: MIT */
/*
 * The libmilter callbacks: the only file that calls smfi_*.
 *
 * rcptgate needs only the RCPT step. It negotiates every other step away
 * but DATA (answered with continue, never accept: see mlfi_negotiate and
 * mlfi_data) and asks the MTA for the client address, the AUTH name and
 * the queue id as macros at RCPT (SMFIF_SETSYMLIST), so a session costs
 * the MTA one milter round trip per recipient plus DATA and end of
 * message. MTAs without macro lists get the connect step instead.
 *
 * Lifetimes: the per-connection struct rg_conn is made at the first
 * callback, holds a runtime reference for the whole connection (so a
 * reload applies at the next connection) and is freed in mlfi_close,
 * which accepts a NULL priv and touches nothing after free. No locks here.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "milter.h"
#include "log.h"
#include "opstats.h"
#include "rg_time.h"

struct rg_engine *rg_milter_engine;

struct rg_conn {
	struct rg_runtime	*rt;
	struct rg_client	 client;
	char			 queue_id[64];
	unsigned long		 steps;		/* protocol flags agreed at negotiation */
};

static struct rg_conn *
conn_get(SMFICTX *ctx)
{
	struct rg_conn	*conn = smfi_getpriv(ctx);

	if (conn != NULL)
		return conn;
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return NULL;
	conn->rt = rg_engine_acquire(rg_milter_engine);
	if (smfi_setpriv(ctx, conn) != MI_SUCCESS) {
		rg_runtime_unref(conn->rt);
		free(conn);
		return NULL;
	}
	atomic_fetch_add(&rg_opstats_milter_connections, 1);
	atomic_fetch_add(&rg_opstats_milter_active, 1);
	return conn;
}

static void
client_set_sockaddr(struct rg_client *cl, const struct sockaddr *sa)
{
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		memcpy(&cl->addr, sa, sizeof(struct sockaddr_in));
		cl->have_addr = true;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(&cl->addr, sa, sizeof(struct sockaddr_in6));
		cl->have_addr = true;
	}
}

/* "{client_addr}" as the MTA gives it: "192.0.2.1", "2001:db8::1", or
 * Sendmail's "IPv6:2001:db8::1". */
static void
client_set_string(struct rg_client *cl, const char *s)
{
	if (s != NULL && strncasecmp(s, "IPv6:", 5) == 0)
		s += 5;
	(void)rg_client_set_addr(cl, s);
}

/*
 * No macros at any stage but RCPT. Sendmail sends a stage's macros in a
 * packet of their own before the command, even for a step we skipped,
 * and each costs a read and a wakeup here; an empty list means no packet
 * at all. On TCP each such packet also makes Sendmail wait for our
 * delayed ACK (40 ms) before it sends the command: the lists leave that
 * stall at RCPT only, whose macros we need (README, "Attaching it to
 * Sendmail", for the fixes). Postfix already treats a stage missing
 * from the lists as empty. A failure only leaves the MTA's default list.
 */
static void
no_macros(SMFICTX *ctx)
{
	static const int	stages[] = { SMFIM_CONNECT, SMFIM_HELO,
	    SMFIM_ENVFROM, SMFIM_DATA, SMFIM_EOH, SMFIM_EOM };
	size_t			i;

	for (i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
		(void)smfi_setsymlist(ctx, stages[i], "");
}

static sfsistat
mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
    unsigned long f2, unsigned long f3, unsigned long *pf0,
    unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	struct rg_conn	*conn = conn_get(ctx);
	unsigned long	 proto;		/* the SMFIP_* flags we ask for */

	(void)f2, (void)f3;
	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	/* Steps rcptgate never looks at. */
	proto = SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NOBODY | SMFIP_NOHDRS |
	    SMFIP_NOEOH | SMFIP_NOUNKNOWN;
	*pf0 = 0;
	if ((f0 & SMFIF_SETSYMLIST) &&
	    smfi_setsymlist(ctx, SMFIM_ENVRCPT,
	    "{client_addr} {auth_authen} i {rcpt_mailer} {rcpt_host}") ==
	    MI_SUCCESS) {
		*pf0 |= SMFIF_SETSYMLIST;
		proto |= SMFIP_NOCONNECT;
		no_macros(ctx);
	}
	/* Not a step skipped but one added: recipients the MTA refused
	 * itself are shown too, and count for the harvest limits. */
	proto |= SMFIP_RCPT_REJ;
	/*
	 * Keep the DATA step and answer it with continue (mlfi_data).
	 * Without a reply, or without the step, the MTA writes several small
	 * packets (DATA, the end-of-data macros, EOM) before it reads: on
	 * TCP Nagle holds the later ones until our kernel's delayed ACK
	 * (40 ms) because we send nothing (0.44 of Postfix alone with
	 * SMFIP_NR_DATA, docs/performance.md). Never accept there: Postfix
	 * 3.7 keeps a milter's "accepted" state after an end-of-data
	 * restriction rejects the message, and lets the session send RCPT
	 * without a new MAIL FROM that no milter is then asked about.
	 */
	proto |= SMFIP_NR_CONN;
	*pf1 = proto & f1;
	conn->steps = *pf1;
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct rg_conn	*conn = conn_get(ctx);

	(void)hostname;
	if (conn == NULL)
		return SMFIS_TEMPFAIL;
	client_set_sockaddr(&conn->client, (struct sockaddr *)hostaddr);
	return (conn->steps & SMFIP_NR_CONN) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/*
 * The queue id as the MTA gives it at this RCPT, or none. Postfix makes
 * the queue file only at the first recipient it accepts, so the first
 * RCPT of each message comes without one: a copy kept from the previous
 * message would put that message's id on this one's log lines.
 */
static void
conn_set_queue_id(struct rg_conn *conn, const char *qid)
{
	if (qid == NULL || *qid == '\0') {
		conn->queue_id[0] = '\0';
		conn->client.queue_id = NULL;
		return;
	}
	strncpy(conn->queue_id, qid, sizeof(conn->queue_id) - 1);
	conn->client.queue_id = conn->queue_id;
}

/*
 * Our reply text for a reject or tempfail. If libmilter refuses it (it
 * checks the codes and the text, and needs memory), the caller's
 * SMFIS_REJECT or SMFIS_TEMPFAIL still goes out, with the MTA's own
 * generic text: the verdict never changes, only its wording. Logged
 * once per process, as a refusal would repeat for every such reply.
 */
static void
set_reply(SMFICTX *ctx, struct rg_verdict *v)
{
	static atomic_flag	logged = ATOMIC_FLAG_INIT;

	if (smfi_setreply(ctx, v->reply.rcode, v->reply.xcode,
	    v->reply.text) == MI_SUCCESS)
		return;
	if (!atomic_flag_test_and_set(&logged))
		rg_warnx("libmilter refused the reply \"%s %s ...\"; the MTA "
		    "sends its own text with the same verdict (logged once)",
		    v->reply.rcode, v->reply.xcode);
}

static sfsistat
mlfi_envrcpt(SMFICTX *ctx, char **argv)
{
	struct rg_conn		*conn = conn_get(ctx);
	struct rg_verdict	 v;
	const char		*mailer, *auth;

	if (conn == NULL || argv == NULL || argv[0] == NULL)
		return SMFIS_TEMPFAIL;	/* out of memory: never a reject */
	if (!conn->client.have_addr)
		client_set_string(&conn->client, smfi_getsymval(ctx, "{client_addr}"));
	auth = smfi_getsymval(ctx, "{auth_authen}");
	conn->client.authenticated = auth != NULL && *auth != '\0';
	conn_set_queue_id(conn, smfi_getsymval(ctx, "i"));
	/* With SMFIP_RCPT_REJ the MTA shows recipients it rejected itself,
	 * with rcpt_mailer "error" and the enhanced code in rcpt_host: a
	 * 5.1.1 counts, answer nothing new. */
	mailer = smfi_getsymval(ctx, "{rcpt_mailer}");
	if (mailer != NULL && strcmp(mailer, "error") == 0) {
		rg_note_mta_reject(rg_milter_engine, conn->rt, &conn->client,
		    argv[0], smfi_getsymval(ctx, "{rcpt_host}"));
		return SMFIS_CONTINUE;
	}

	rg_decide(rg_milter_engine, conn->rt, &conn->client, argv[0], false, &v);
	rg_verdict_log(&conn->client, &v);
	rg_opstats_decision(rg_action_word(v.action), v.decided_by);
	if (v.delay_ms > 0) {
		rg_sleep_ms(v.delay_ms);	/* tarpit; no lock is held */
		rg_tarpit_done(rg_milter_engine);
	}
	switch (v.action) {
	case RG_ACT_CONTINUE:
		/* Never SMFIS_ACCEPT: it would switch the filter off for the
		 * message's later recipients. */
		return SMFIS_CONTINUE;
	case RG_ACT_REJECT:
		set_reply(ctx, &v);
		return SMFIS_REJECT;
	case RG_ACT_TEMPFAIL:
	case RG_ACT_SHUTDOWN:
	default:
		set_reply(ctx, &v);
		return SMFIS_TEMPFAIL;
	}
}

/*
 * Every recipient has been decided by now, but answer continue, never
 * accept: with accept, Postfix 3.7 (the bug is fixed only in 2026
 * snapshots) stays in its "message accepted" state when its own
 * smtpd_end_of_data_restrictions reject the message, and takes RCPT and
 * DATA without a new MAIL FROM, never asking the milter: unknown
 * recipients get 250 (test/integration/t_eod_reject.sh). The reply is
 * what keeps the TCP stall away (mlfi_negotiate); the end-of-message
 * step it costs is answered by libmilter itself (no xxfi_eom).
 */
static sfsistat
mlfi_data(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_close(SMFICTX *ctx)
{
	struct rg_conn	*conn = smfi_getpriv(ctx);

	if (conn == NULL)
		return SMFIS_CONTINUE;
	smfi_setpriv(ctx, NULL);
	atomic_fetch_sub(&rg_opstats_milter_active, 1);
	rg_runtime_unref(conn->rt);
	free(conn);
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
	.xxfi_name = "rcptgate",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_NONE,
	.xxfi_connect = mlfi_connect,
	.xxfi_envrcpt = mlfi_envrcpt,
	.xxfi_close = mlfi_close,
	.xxfi_data = mlfi_data,
	.xxfi_negotiate = mlfi_negotiate,
};

struct smfiDesc *
rg_milter_desc(void)
{
	return &desc;
}
