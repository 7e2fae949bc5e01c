/* SPDX-License-Identifier: MIT */
/*
 * rcptgate: options, the -n and -t modes, the daemon (sockets, privileges,
 * pid file, signals) and smfi_main.
 *
 * Fatal exits happen only here and only before smfi_main. Signals: the
 * five we handle are blocked in main before any thread starts, so
 * libmilter's own signal thread alone receives SIGHUP, SIGTERM and SIGINT
 * (it stops the filter; with the milter door off, wait_for_stop takes
 * them instead) and our signal thread alone SIGUSR1 (reload) and SIGUSR2
 * (counters).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "log.h"
#include "milter.h"
#include "ops.h"
#include "policy_server.h"

#ifndef RG_DEFAULT_CONF
#define RG_DEFAULT_CONF "/etc/rcptgate/rcptgate.conf"
#endif

struct options {
	const char	*conf_path;
	const char	*socket;	/* -p, overrides [milter] socket */
	const char	*user;		/* -u, overrides [milter] user */
	const char	*pidfile;	/* -P */
	int		 foreground;	/* -f */
	int		 verbose;	/* -v */
	int		 check;		/* -n */
	int		 test;		/* -t */
	const char	*harvest;	/* -b list | unblock */
};

static struct options	opt = { .conf_path = RG_DEFAULT_CONF };

static int	lookup_user(const char *, uid_t *, gid_t *);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: rcptgate [-c FILE] [-f] [-p SOCKET] [-u USER] [-P PIDFILE] [-v]\n"
	    "       rcptgate [-c FILE] -n\n"
	    "       rcptgate [-c FILE] [-v] -t ADDRESS...\n"
	    "       rcptgate [-c FILE] -b list\n"
	    "       rcptgate [-c FILE] -b unblock ADDRESS[/PREFIX]...\n"
	    "       rcptgate -V\n");
	exit(EX_USAGE);
}

static int
effective_log_level(const struct rg_conf *c)
{
	return opt.verbose ? RG_LOG_DEBUG : c->log_level;
}

/* Load and open a configuration; NULL with the reasons in err. */
static struct rg_runtime *
load_runtime(struct rg_error *err)
{
	struct rg_conf		*conf;
	struct rg_runtime	*rt;

	conf = rg_conf_load(opt.conf_path, err);
	if (conf == NULL)
		return NULL;
	rt = rg_runtime_new(conf, err);
	rg_conf_unref(conf);
	return rt;
}

/* The milter socket: -p, else [milter] socket; "" when off ("none"). */
static const char *
milter_socket(const struct rg_conf *c)
{
	if (opt.socket == NULL)
		return c->socket;
	return strcmp(opt.socket, "none") == 0 ? "" : opt.socket;
}

static void
print_lines(FILE *f, const char *prefix, const char *text)
{
	const char	*p = text, *nl;

	while (*p != '\0') {
		nl = strchr(p, '\n');
		fprintf(f, "%s%.*s\n", prefix, (int)(nl ? nl - p : (long)strlen(p)), p);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
}

static void
print_policy(const char *name, const struct rg_policy *p)
{
	size_t	i;

	printf("%s: backends=", name);
	for (i = 0; i < p->backends.n; i++)
		printf("%s%s", i ? "," : "", p->backends.v[i]);
	printf(" subaddress_delimiter=\"%s\" always_accept=", p->subaddress_delimiter);
	for (i = 0; i < p->always_accept.n; i++)
		printf("%s%s", i ? "," : "", p->always_accept.v[i]);
	printf(" on_backend_failure=%s skip_authenticated=%s trusted_networks=%zu "
	    "deadline=%llums\n",
	    p->on_backend_failure == RG_FAILURE_ACCEPT ? "accept" : "tempfail",
	    p->skip_authenticated ? "yes" : "no", p->trusted_networks.n,
	    (unsigned long long)p->deadline_ms);
}

/* -n: what an operator wants to see of the effective configuration. */
static void
print_summary(const struct rg_runtime *rt)
{
	const struct rg_conf	*c = rt->conf;
	size_t			 i;

	printf("config: %s\n", c->path);
	printf("socket: %s\n", milter_socket(c)[0] ? milter_socket(c) : "none");
	if (c->policy_socket[0] != '\0')
		printf("postfix_policy: socket=%s max_connections=%llu "
		    "idle_timeout=%llus request_timeout=%llus\n",
		    c->policy_socket,
		    (unsigned long long)c->policy_max_connections,
		    (unsigned long long)c->policy_idle_timeout_ms / 1000,
		    (unsigned long long)c->policy_request_timeout_ms / 1000);
	else
		printf("postfix_policy: off\n");
	printf("domains:");
	if (c->all_domains)
		printf(" *");
	for (i = 0; i < c->domains.n; i++)
		if (strcmp(c->domains.v[i], "*") != 0)
			printf(" %s", c->domains.v[i]);
	for (i = 0; i < c->ndomains; i++)
		printf(" %s", c->domain[i].name);
	printf("\n");
	print_policy("[policy]", &c->policy);
	for (i = 0; i < c->ndomains; i++) {
		char	name[RG_DOMAIN_MAX + 16];

		snprintf(name, sizeof(name), "[domain %s]", c->domain[i].name);
		print_policy(name, &c->domain[i].policy);
	}
	for (i = 0; i < rt->nbackends; i++)
		printf("backend %s: type=%s%s%s\n", rt->backends[i]->name,
		    rg_backend_type(rt->backends[i]),
		    rt->backends[i]->surrogate_reason ? " unavailable: " : "",
		    rt->backends[i]->surrogate_reason ?
		    rt->backends[i]->surrogate_reason : "");
	printf("cache: size=%llu positive_ttl=%llus negative_ttl=%llus "
	    "stale_ttl=%llus\n", (unsigned long long)c->cache_size,
	    (unsigned long long)c->positive_ttl_ms / 1000,
	    (unsigned long long)c->negative_ttl_ms / 1000,
	    (unsigned long long)c->stale_ttl_ms / 1000);
	rg_harvest_describe(c, stdout);
}

/* Read the child's report (at most one rg_error) from fd into err. */
static void
read_report(int fd, struct rg_error *err)
{
	size_t	len = 0;
	ssize_t	n;

	while (len < sizeof(err->msg) - 1 && ((n = read(fd, err->msg + len,
	    sizeof(err->msg) - 1 - len)) > 0 || (n == -1 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	err->msg[len] = '\0';
}

/*
 * -n run as root for a daemon that drops to user: load the configuration
 * once more as that user, in a child that drops privileges exactly as the
 * daemon does, because every reload reads the configuration and the files
 * it names (the LDAP bind password) with those credentials only. Testing
 * with the real credentials, not by reading mode bits, also covers ACLs,
 * supplementary groups and directories the user cannot traverse.
 * 0 if that load works, -1 with why in err; 1 (warn) if the user is
 * unknown.
 */
static int
check_as_user(const char *user, struct rg_error *err)
{
	struct rg_runtime	*rt;
	struct rg_error		 e;
	uid_t			 uid;
	gid_t			 gid;
	pid_t			 pid;
	int			 pfd[2], status;

	if (lookup_user(user, &uid, &gid) != 0) {
		rg_error_set(err, "user '%s' (-u or [milter] user) does not "
		    "exist: started as root, rcptgate would exit 67", user);
		return 1;
	}
	if (uid == 0)
		return 0;
	if (pipe(pfd) == -1) {
		rg_error_set(err, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	if ((pid = fork()) == -1) {
		rg_error_set(err, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		rg_error_clear(&e);
		rg_log_set_level(RG_LOG_ERROR);	/* the parent warned already */
		if (initgroups(user, gid) != 0 || setgid(gid) != 0 ||
		    setuid(uid) != 0)
			rg_error_set(&e, "cannot become user %s: %s", user,
			    strerror(errno));
		else if ((rt = load_runtime(&e)) != NULL)
			_exit(0);
		(void)!write(pfd[1], e.msg, strlen(e.msg));
		_exit(1);
	}
	close(pfd[1]);
	rg_error_clear(&e);
	read_report(pfd[0], &e);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	rg_error_set(err, "as user %s, which the daemon runs as and reloads "
	    "as: %s", user, e.msg[0] != '\0' ? e.msg : "check failed");
	return -1;
}

static int
run_check(void)
{
	struct rg_runtime	*rt;
	struct rg_error		 err, warn, one;
	const char		*user;
	int			 rc = 0;

	rg_error_clear(&err);
	rg_error_clear(&warn);
	rt = load_runtime(&err);
	if (rt == NULL) {
		print_lines(stderr, "rcptgate: ", err.msg);
		return EX_CONFIG;
	}
	rg_error_clear(&err);
	user = opt.user ? opt.user : rt->conf->user;
	if (getuid() == 0 && user[0] != '\0') {
		rg_error_clear(&one);
		rc = check_as_user(user, &one);
		if (rc != 0)
			rg_error_append(rc == 1 ? &warn : &err, "%s", one.msg);
	}
	if (rg_runtime_check(rt, true, &err, &warn) != 0 || rc == -1) {
		print_lines(stderr, "rcptgate: warning: ", warn.msg);
		print_lines(stderr, "rcptgate: ", err.msg);
		rg_runtime_unref(rt);
		return EX_CONFIG;
	}
	print_lines(stderr, "rcptgate: warning: ", warn.msg);
	print_summary(rt);
	printf("configuration ok\n");
	rg_runtime_unref(rt);
	return EX_OK;
}

static const char *
action_word(enum rg_action a)
{
	switch (a) {
	case RG_ACT_CONTINUE:
		return "accept";
	case RG_ACT_REJECT:
		return "reject";
	default:
		return "tempfail";
	}
}

/* -t: the live decision path, one line per address. */
static int
run_test(int argc, char **argv)
{
	struct rg_runtime	*rt;
	struct rg_engine	*e;
	struct rg_error		 err;
	struct rg_verdict	 v;
	char			 shown[RG_PATH_MAX * 4 + 8];
	int			 i, rejected = 0, tempfailed = 0;

	rg_error_clear(&err);
	rt = load_runtime(&err);
	if (rt == NULL) {
		print_lines(stderr, "rcptgate: ", err.msg);
		return EX_CONFIG;
	}
	rg_log_set_level(opt.verbose ? RG_LOG_DEBUG : RG_LOG_WARNING);
	e = rg_engine_new(rt, RG_ENGINE_NO_HARVEST, &err);
	if (e == NULL) {
		print_lines(stderr, "rcptgate: ", err.msg);
		rg_runtime_unref(rt);
		return EX_SOFTWARE;
	}
	for (i = 0; i < argc; i++) {
		struct rg_client	cl;

		memset(&cl, 0, sizeof(cl));
		rg_decide(e, rt, &cl, argv[i], opt.verbose, &v);
		rg_log_escape(shown, sizeof(shown), argv[i]);
		printf("%s\t%s\t%s\t%s", shown, action_word(v.action),
		    v.decided_by, v.reason);
		if (v.action != RG_ACT_CONTINUE)
			printf(" (%s %s %s)", v.reply.rcode, v.reply.xcode,
			    v.reply.text);
		if (opt.verbose && v.trace[0] != '\0')
			printf(" [%s]", v.trace);
		printf("\n");
		if (v.action == RG_ACT_REJECT)
			rejected = 1;
		else if (v.action != RG_ACT_CONTINUE)
			tempfailed = 1;
	}
	fflush(stdout);
	rg_engine_free(e);
	rg_runtime_unref(rt);
	return rejected ? 1 : tempfailed ? EX_TEMPFAIL : EX_OK;
}

/* -b: list or lift harvest blocks in the state store. */
static int
run_harvest(int argc, char **argv)
{
	struct rg_conf	*conf;
	struct rg_error	 err;
	int		 i, rc = EX_OK, r;

	rg_error_clear(&err);
	conf = rg_conf_load(opt.conf_path, &err);
	if (conf == NULL) {
		print_lines(stderr, "rcptgate: ", err.msg);
		return EX_CONFIG;
	}
	if (strcmp(opt.harvest, "list") == 0 && argc == 0) {
		if (rg_harvest_list(conf, stdout, &err) != 0) {
			print_lines(stderr, "rcptgate: ", err.msg);
			rc = EX_UNAVAILABLE;
		}
	} else if (strcmp(opt.harvest, "unblock") == 0 && argc > 0) {
		for (i = 0; i < argc; i++) {
			rg_error_clear(&err);
			r = rg_harvest_unblock(conf, argv[i], &err);
			if (r < 0) {
				print_lines(stderr, "rcptgate: ", err.msg);
				rc = EX_UNAVAILABLE;
			} else if (r == 0) {
				fprintf(stderr, "rcptgate: %s: no block or counter\n",
				    argv[i]);
				if (rc == EX_OK)
					rc = 1;
			} else
				printf("unblocked %s\n", argv[i]);
		}
	} else {
		rg_conf_unref(conf);
		usage();
	}
	rg_conf_unref(conf);
	return rc;
}

/* ---- the daemon ---- */

static struct rg_runtime *daemon_rt;	/* the runtime at start */

static void
reload(void)
{
	struct rg_runtime	*rt, *old;
	struct rg_error		 err;

	rg_error_clear(&err);
	rt = load_runtime(&err);
	if (rt == NULL) {
		rg_err("reload of %s failed, keeping the running configuration: %s",
		    opt.conf_path, err.msg);
		return;
	}
	old = rg_engine_acquire(rg_milter_engine);
	if (opt.socket == NULL && strcmp(old->conf->socket, rt->conf->socket) != 0)
		rg_warnx("reload: socket changed to %s; it takes effect at the "
		    "next restart", rt->conf->socket[0] ? rt->conf->socket :
		    "none");
	if (strcmp(old->conf->policy_socket, rt->conf->policy_socket) != 0)
		rg_warnx("reload: [postfix_policy] socket changed to %s; it "
		    "takes effect at the next restart",
		    rt->conf->policy_socket[0] ? rt->conf->policy_socket :
		    "none");
	rg_runtime_unref(old);
	rg_engine_swap(rg_milter_engine, rt);
	rg_log_set_level(effective_log_level(rt->conf));
	rg_info("configuration reloaded from %s", opt.conf_path);
	rg_runtime_unref(rt);
}

static void *
signal_thread(void *arg)
{
	sigset_t	set;
	int		sig;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1)
			reload();
		else if (sig == SIGUSR2)
			rg_engine_log_counters(rg_milter_engine);
	}
	return NULL;
}

static int
lookup_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd	 pw, *res = NULL;
	char		 buf[4096];

	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return -1;
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	return 0;
}

static int
drop_privileges(const char *user, uid_t uid, gid_t gid)
{
	if (initgroups(user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
		fprintf(stderr, "rcptgate: cannot become user %s: %s\n", user,
		    strerror(errno));
		return -1;
	}
	if (uid != 0 && setuid(0) == 0) {
		fprintf(stderr, "rcptgate: could regain root after dropping it\n");
		return -1;
	}
	return 0;
}

static const char *
unix_socket_path(const char *sock)
{
	if (strncmp(sock, "unix:", 5) == 0)
		return sock + 5;
	if (strncmp(sock, "local:", 6) == 0)
		return sock + 6;
	if (sock[0] == '/')
		return sock;
	return NULL;
}

static int
daemonize(void)
{
	pid_t	pid;
	int	fd;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	if (chdir("/") != 0)
		return -1;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

static int
write_pidfile(const char *path)
{
	FILE	*f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fprintf(f, "%ld\n", (long)getpid());
	return fclose(f);
}

/*
 * Before any thread: these signals are for sigwait only (our signal
 * thread), so libmilter's own signal thread never sees them.
 */
static void
block_signals(void)
{
	sigset_t	set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/*
 * Register the filter and listen on sock, still as root; a unix socket
 * (*path, else NULL) gets socket_mode and, when we change user, its
 * owner. 0 or a sysexits code, said on stderr.
 */
static int
open_listener(const char *sock, bool change_user, uid_t uid, gid_t gid,
    const char **path)
{
	*path = NULL;
	if (smfi_register(*rg_milter_desc()) != MI_SUCCESS ||
	    smfi_setconn((char *)sock) != MI_SUCCESS) {
		fprintf(stderr, "rcptgate: cannot register the filter on %s\n",
		    sock);
		return EX_SOFTWARE;
	}
	smfi_setbacklog(256);
	/* true: remove a stale unix socket left by an earlier run. */
	if (smfi_opensocket(true) != MI_SUCCESS) {
		fprintf(stderr, "rcptgate: cannot listen on %s: %s\n", sock,
		    strerror(errno));
		return EX_UNAVAILABLE;
	}
	*path = unix_socket_path(sock);
	if (*path != NULL) {
		/* The MTA reaches the socket through the group (README). */
		if (change_user && chown(*path, uid, gid) != 0)
			rg_warn("chown %s", *path);
		if (chmod(*path, daemon_rt->conf->socket_mode) != 0)
			rg_warn("chmod %s", *path);
	}
	return 0;
}

/*
 * Whether syslog(3) has a listener: once detached, stderr is gone and a
 * missing /dev/log (containers, minimal machines) swallows every line
 * without a trace, so the operator hears of it while stderr still works.
 */
static bool
syslog_reachable(void)
{
	struct sockaddr_un	 sun = { .sun_family = AF_UNIX };
	int			 fd, rc;

	(void)strncpy(sun.sun_path, "/dev/log", sizeof(sun.sun_path) - 1);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return true;	/* cannot tell: do not cry wolf */
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	(void)close(fd);
	return rc == 0;
}

/* Detach, write the pid file, drop root. 0 or a sysexits code. */
static int
become_daemon(const char *user, bool change_user, uid_t uid, gid_t gid)
{
	/* Under systemd the journal takes stderr and syslog alike. */
	if (!opt.foreground && getenv("JOURNAL_STREAM") == NULL &&
	    !syslog_reachable())
		fprintf(stderr, "rcptgate: warning: no syslog at /dev/log: "
		    "logs are lost once detached; run with -f or start a "
		    "syslog daemon\n");
	if (!opt.foreground && daemonize() != 0) {
		fprintf(stderr, "rcptgate: cannot detach: %s\n",
		    strerror(errno));
		return EX_OSERR;
	}
	if (opt.pidfile != NULL && write_pidfile(opt.pidfile) != 0) {
		rg_warn("cannot write pid file %s", opt.pidfile);
		return EX_CANTCREAT;
	}
	if (change_user && drop_privileges(user, uid, gid) != 0)
		return EX_NOPERM;
	return 0;
}

/*
 * Without the milter door there is no smfi_main to catch SIGTERM and
 * friends: wait for them here (they are blocked in every thread).
 */
static int
wait_for_stop(void)
{
	sigset_t	set;
	int		sig;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	while (sigwait(&set, &sig) != 0)
		continue;
	return MI_SUCCESS;
}

/* As root: the milter socket (if on), the policy and control sockets. */
static int
open_doors(const char *sock, bool change_user, uid_t uid, gid_t gid,
    const char **path, struct rg_error *err)
{
	int	rc;

	*path = NULL;
	if (sock[0] != '\0' &&
	    (rc = open_listener(sock, change_user, uid, gid, path)) != 0)
		return rc;
	if (rg_pf_open(daemon_rt->conf, change_user, uid, gid, err) != 0) {
		fprintf(stderr, "rcptgate: %s\n", err->msg);
		return EX_UNAVAILABLE;
	}
	/* [control] socket: made as root, for the daemon's user (ops.c) */
	if (rg_ops_open(daemon_rt->conf, change_user ? uid : (uid_t)-1,
	    err) != 0) {
		fprintf(stderr, "rcptgate: %s\n", err->msg);
		return EX_UNAVAILABLE;
	}
	return 0;
}

/* After detaching: the engine and the threads that serve it. */
static int
start_engine(const char *sock, struct rg_error *err)
{
	pthread_t	tid;

	rg_milter_engine = rg_engine_new(daemon_rt, 0, err);
	if (rg_milter_engine == NULL) {
		rg_err("cannot start: %s", err->msg);
		return EX_SOFTWARE;
	}
	if (pthread_create(&tid, NULL, signal_thread, NULL) != 0) {
		rg_err("cannot start the signal thread");
		return EX_OSERR;
	}
	pthread_detach(tid);
	if (rg_ops_start(rg_milter_engine, opt.conf_path, sock,
	    daemon_rt->conf->policy_socket, err) != 0 ||
	    rg_pf_start(rg_milter_engine, err) != 0) {
		rg_err("cannot start: %s", err->msg);
		return EX_UNAVAILABLE;
	}
	if (sock[0] != '\0')
		rg_info("rcptgate %s listening on %s", RG_VERSION, sock);
	if (daemon_rt->conf->policy_socket[0] != '\0')
		rg_info("postfix policy server listening on %s",
		    daemon_rt->conf->policy_socket);
	return 0;
}

static int
run_daemon(void)
{
	struct rg_error		 err;
	const char		*sock, *user, *path;
	uid_t			 uid = 0;
	gid_t			 gid = 0;
	int			 rc;
	bool			 change_user;

	rg_error_clear(&err);
	daemon_rt = load_runtime(&err);
	if (daemon_rt == NULL) {
		print_lines(stderr, "rcptgate: ", err.msg);
		return EX_CONFIG;
	}
	rg_log_set_level(effective_log_level(daemon_rt->conf));
	sock = milter_socket(daemon_rt->conf);
	if (sock[0] == '\0' && daemon_rt->conf->policy_socket[0] == '\0') {
		fprintf(stderr, "rcptgate: -p none and no [postfix_policy] "
		    "socket: no door for the MTA\n");
		return EX_CONFIG;
	}
	user = opt.user ? opt.user : daemon_rt->conf->user;
	change_user = user[0] != '\0' && getuid() == 0;
	if (change_user && lookup_user(user, &uid, &gid) != 0) {
		fprintf(stderr, "rcptgate: unknown user '%s' "
		    "(-u or [milter] user)\n", user);
		return EX_NOUSER;
	}
	block_signals();
	if ((rc = open_doors(sock, change_user, uid, gid, &path, &err)) != 0 ||
	    (rc = become_daemon(user, change_user, uid, gid)) != 0 ||
	    (rc = start_engine(sock, &err)) != 0)
		return rc;

	rc = sock[0] != '\0' ? smfi_main() : wait_for_stop();
	rg_info("stopping (%s)",
	    rc == MI_SUCCESS ? "signal" : "libmilter error");
	rg_pf_stop();
	rg_ops_stop(daemon_rt->conf);
	if (opt.pidfile != NULL)
		unlink(opt.pidfile);
	if (path != NULL)
		unlink(path);
	/* Not freed: the signal thread may still use the engine. */
	return rc == MI_SUCCESS ? EX_OK : EX_SOFTWARE;
}

int
main(int argc, char **argv)
{
	int	c;

	while ((c = getopt(argc, argv, "b:c:fp:u:P:vntVh")) != -1) {
		switch (c) {
		case 'b':
			opt.harvest = optarg;
			break;
		case 'c':
			opt.conf_path = optarg;
			break;
		case 'f':
			opt.foreground = 1;
			break;
		case 'p':
			opt.socket = optarg;
			break;
		case 'u':
			opt.user = optarg;
			break;
		case 'P':
			opt.pidfile = optarg;
			break;
		case 'v':
			opt.verbose = 1;
			break;
		case 'n':
			opt.check = 1;
			break;
		case 't':
			opt.test = 1;
			break;
		case 'V':
			printf("rcptgate %s\n", RG_VERSION);
			return EX_OK;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (opt.check + opt.test + (opt.harvest != NULL) > 1 ||
	    (opt.test && argc == 0) || (!opt.test && !opt.harvest && argc > 0))
		usage();

	rg_log_init("rcptgate", opt.foreground || opt.check || opt.test,
	    opt.verbose ? RG_LOG_DEBUG : RG_LOG_INFO);
	if (opt.check)
		return run_check();
	if (opt.test)
		return run_test(argc, argv);
	if (opt.harvest != NULL)
		return run_harvest(argc, argv);
	return run_daemon();
}
