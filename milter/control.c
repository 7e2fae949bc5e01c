/* SPDX-License-Identifier: MIT */
/*
 * The control socket: rcptgate-ctl's requests (lib/ctlproto.h) turned
 * into calls of the core. One thread serves one client at a time (an
 * operator's tool, not a hot path); a client that stalls is dropped
 * after IO_TIMEOUT_S. It decides nothing itself: explain is
 * rg_explain, flush the cache's, blocks and unblock the limiter's state
 * store, reload a SIGUSR1 to our own signal thread.
 *
 * Who may connect is the socket file's business: mode 0660, group
 * [control] group (never the MTA's group: see rcptgate.conf(5)).
 * Every command but status and blocks is logged with its arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend.h"
#include "backend_stats.h"
#include "ctlproto.h"
#include "explain.h"
#include "log.h"
#include "opstats.h"
#include "ops.h"
#include "rg_time.h"

#define IO_TIMEOUT_S	10

static const char *
sock_path(const struct rg_conf *c)
{
	if (c->control_socket == NULL || strncmp(c->control_socket, "unix:",
	    5) != 0)
		return NULL;
	return c->control_socket + 5;
}

int
rg_control_open(const struct rg_conf *c, uid_t uid, struct rg_error *err)
{
	struct sockaddr_un	 sun;
	struct group		 gr, *grp = NULL;
	char			 gbuf[4096];
	const char		*path = sock_path(c);
	gid_t			 gid = (gid_t)-1;
	int			 fd;

	if (path == NULL)
		return -2;
	if (c->control_group[0] != '\0') {
		if (getgrnam_r(c->control_group, &gr, gbuf, sizeof(gbuf),
		    &grp) != 0 || grp == NULL) {
			rg_error_set(err, "%s: [control] group: no group "
			    "'%s'", c->path, c->control_group);
			return -1;
		}
		gid = grp->gr_gid;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	(void)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		rg_error_set(err, "control socket: %s", strerror(errno));
		return -1;
	}
	(void)unlink(path);	/* a stale socket of an earlier run */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    chmod(path, 0660) != 0 || chown(path, uid, gid) != 0 ||
	    listen(fd, 16) != 0) {
		rg_error_set(err, "control socket %s: %s", path,
		    strerror(errno));
		(void)close(fd);
		return -1;
	}
	return fd;
}

void
rg_control_unlink(const struct rg_conf *c)
{
	const char	*path = sock_path(c);

	if (path != NULL)
		(void)unlink(path);
}

/* ---- status ---- */

/* s as a JSON string, or null when empty. */
static void
json_str_or_null(FILE *f, const char *s)
{
	if (s[0] != '\0')
		rg_json_str(f, s);
	else
		fputs("null", f);
}

static void
iso_time(time_t t, char *buf, size_t len)
{
	struct tm	tm;

	(void)gmtime_r(&t, &tm);
	(void)strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * Each URI, host or file of a backend, up or down and since when, as
 * its driver recorded them (no lookup is made for it), then the
 * driver's own counters. The state on the backend's line is its last
 * lookup's, over every target it tried.
 */
static void
status_targets(FILE *f, struct rg_backend *b, int json)
{
	struct rg_target_state	 ts[RG_TARGETS_MAX];
	char			 buf[512], since[32];
	size_t			 i, n = rg_backend_targets(b, ts,
				    RG_TARGETS_MAX);

	for (i = 0; i < n; i++) {
		const char	*state = ts[i].up < 0 ? "unknown" :
		    ts[i].up ? "up" : "down";

		since[0] = '\0';
		if (ts[i].up >= 0)
			iso_time((time_t)ts[i].since, since, sizeof(since));
		if (json) {
			fprintf(f, "%s{\"target\":", i ? "," : "");
			rg_json_str(f, ts[i].target);
			fprintf(f, ",\"state\":\"%s\",\"since\":", state);
			json_str_or_null(f, since);
			fprintf(f, ",\"error\":");
			json_str_or_null(f, ts[i].error);
			fputc('}', f);
			continue;
		}
		fprintf(f, "  %s %s%s%s", ts[i].target, state, since[0] ?
		    " since " : " (not tried yet)", since);
		if (ts[i].error[0] != '\0')
			fprintf(f, " (%s)", ts[i].error);
		fputc('\n', f);
	}
	if (json)
		return;
	buf[0] = '\0';
	rg_backend_stats(b, buf, sizeof(buf));
	if (buf[0] != '\0')
		fprintf(f, "  driver, since the last reload: %s\n", buf);
}

static void
status_backends(FILE *f, struct rg_runtime *rt, int json)
{
	size_t	i;
	char	since[32];

	for (i = 0; i < rt->nbackends; i++) {
		struct rg_backend	*b = rt->backends[i];
		const struct rg_bstat	*s = rg_bstat_find(b->name);
		const char		*state = "unknown";

		since[0] = '\0';
		if (s != NULL && atomic_load(&s->up) >= 0) {
			state = atomic_load(&s->up) ? "up" : "down";
			iso_time((time_t)atomic_load(&s->since), since,
			    sizeof(since));
		}
		if (!json) {
			fprintf(f, "backend %s (%s): %s%s%s", b->name,
			    rg_backend_type(b), state, since[0] ? " since " :
			    " (no lookup yet)", since);
			if (s != NULL)
				fprintf(f, ", found=%llu notfound=%llu "
				    "failed=%llu",
				    (unsigned long long)atomic_load(&s->found),
				    (unsigned long long)atomic_load(&s->notfound),
				    (unsigned long long)atomic_load(&s->failures));
			fputc('\n', f);
			status_targets(f, b, 0);
			continue;
		}
		fprintf(f, "%s{\"name\":", i ? "," : "");
		rg_json_str(f, b->name);
		fprintf(f, ",\"type\":");
		rg_json_str(f, rg_backend_type(b));
		fprintf(f, ",\"state\":\"%s\",\"since\":", state);
		if (since[0])
			rg_json_str(f, since);
		else
			fputs("null", f);
		fprintf(f, ",\"found\":%llu,\"notfound\":%llu,\"failed\":%llu,"
		    "\"targets\":[",
		    s ? (unsigned long long)atomic_load(&s->found) : 0ULL,
		    s ? (unsigned long long)atomic_load(&s->notfound) : 0ULL,
		    s ? (unsigned long long)atomic_load(&s->failures) : 0ULL);
		status_targets(f, b, 1);
		fputs("]}", f);
	}
}

void
rg_control_status(FILE *f, const struct rg_ops_info *in, int json)
{
	struct rg_runtime	*rt = rg_engine_acquire(in->engine);
	const struct rg_conf	*c = rt->conf;
	struct rg_cache_stats	 cs;
	struct rg_harvest_stats	 hs;
	struct rg_harvest	*h = rg_engine_harvest(in->engine);
	char			 started[32];
	long long		 up = (long long)(time(NULL) - in->started);
	double			 rate;

	rg_cache_stats(rg_engine_cache(in->engine), &cs);
	memset(&hs, 0, sizeof(hs));
	if (h != NULL)
		rg_harvest_stats(h, &hs);
	rate = cs.hits + cs.misses ? 100.0 * (double)cs.hits /
	    (double)(cs.hits + cs.misses) : 0.0;
	iso_time(in->started, started, sizeof(started));
	if (json) {
		fprintf(f, "{\"version\":\"%s\",\"started\":\"%s\",\"uptime_"
		    "seconds\":%lld,\"config\":", RG_VERSION, started, up);
		rg_json_str(f, in->conf_path);
		fprintf(f, ",\"milter_socket\":");
		rg_json_str(f, in->milter_socket);
		fprintf(f, ",\"policy_socket\":");
		rg_json_str(f, in->policy_socket);
		fprintf(f, ",\"control_socket\":");
		rg_json_str(f, c->control_socket);
		fprintf(f, ",\"metrics_listen\":");
		rg_json_str(f, c->metrics_listen);
		fprintf(f, ",\"backends\":[");
		status_backends(f, rt, 1);
		fprintf(f, "],\"cache\":{\"entries\":%llu,\"hits\":%llu,"
		    "\"misses\":%llu,\"hit_rate\":%.4f,\"stale_used\":%llu},"
		    "\"harvest\":{\"clients\":%llu,\"blocked\":%llu,"
		    "\"blocks_total\":%llu}}\n",
		    (unsigned long long)cs.entries, (unsigned long long)cs.hits,
		    (unsigned long long)cs.misses, rate / 100.0,
		    (unsigned long long)cs.stale_used,
		    (unsigned long long)hs.clients,
		    (unsigned long long)hs.blocked,
		    (unsigned long long)hs.blocks);
	} else {
		fprintf(f, "rcptgate %s, up %llds (since %s)\n", RG_VERSION, up,
		    started);
		fprintf(f, "config: %s\nmilter socket: %s\npolicy socket: %s\n"
		    "control socket: %s\nmetrics: %s\n", in->conf_path,
		    in->milter_socket, in->policy_socket, c->control_socket,
		    c->metrics_listen[0] ? c->metrics_listen : "off");
		status_backends(f, rt, 0);
		fprintf(f, "cache: %llu entries, %llu hits, %llu misses, hit "
		    "rate %.1f%%, %llu stale answers\n",
		    (unsigned long long)cs.entries, (unsigned long long)cs.hits,
		    (unsigned long long)cs.misses, rate,
		    (unsigned long long)cs.stale_used);
		fprintf(f, "harvest: %llu clients counted, %llu blocked now, "
		    "%llu blocks since start\n", (unsigned long long)hs.clients,
		    (unsigned long long)hs.blocked,
		    (unsigned long long)hs.blocks);
	}
	rg_runtime_unref(rt);
}

/* ---- explain ---- */

static int
do_explain(FILE *f, const struct rg_ops_info *in, const struct rg_ctl_req *r,
    char *why, size_t wlen)
{
	struct sockaddr_storage	 ss;
	struct rg_explain	*x;
	struct rg_runtime	*rt;
	size_t			 i;

	memset(&ss, 0, sizeof(ss));
	if (r->client != NULL) {
		struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, r->client, &s4->sin_addr) == 1)
			s4->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, r->client, &s6->sin6_addr) == 1)
			s6->sin6_family = AF_INET6;
		else {
			(void)snprintf(why, wlen, "--client: not an IP "
			    "address");
			return -1;
		}
	}
	if ((x = malloc(sizeof(*x))) == NULL) {
		(void)snprintf(why, wlen, "out of memory");
		return -1;
	}
	rt = rg_engine_acquire(in->engine);
	rg_explain(in->engine, rt, r->args[0], r->client ?
	    (struct sockaddr *)&ss : NULL, x);
	rg_runtime_unref(rt);
	if (r->json) {
		fprintf(f, "{\"address\":");
		rg_json_str(f, x->address);
		fprintf(f, ",\"verdict\":\"%s\",\"decided_by\":", x->verdict);
		rg_json_str(f, x->decided_by);
		fprintf(f, ",\"reason\":");
		rg_json_str(f, x->reason);
		fprintf(f, ",\"harvest\":\"%s\",\"cache\":{\"state\":\"%s\","
		    "\"backend\":", x->harvest, x->cache);
		rg_json_str(f, x->cache_backend);
		fprintf(f, ",\"age_ms\":%llu},\"answers\":[",
		    (unsigned long long)x->cache_age_ms);
	} else {
		fprintf(f, "address: %s\nverdict: %s (by %s: %s)\nharvest: "
		    "%s\ncache: %s", x->address, x->verdict, x->decided_by,
		    x->reason, x->harvest, x->cache);
		if (x->cache_backend[0])
			fprintf(f, " (from %s, %llus old)", x->cache_backend,
			    (unsigned long long)x->cache_age_ms / 1000);
		fputc('\n', f);
	}
	for (i = 0; i < x->nanswers; i++) {
		const struct rg_explain_answer *a = &x->answer[i];

		if (!r->json) {
			fprintf(f, "backend %s: %s -> %s (%llu ms)%s%s\n",
			    a->backend, a->key, a->result,
			    (unsigned long long)a->ms, a->detail[0] ? ": " : "",
			    a->detail);
			continue;
		}
		fprintf(f, "%s{\"backend\":", i ? "," : "");
		rg_json_str(f, a->backend);
		fprintf(f, ",\"key\":");
		rg_json_str(f, a->key);
		fprintf(f, ",\"result\":\"%s\",\"ms\":%llu,\"detail\":",
		    a->result, (unsigned long long)a->ms);
		rg_json_str(f, a->detail);
		fputc('}', f);
	}
	if (r->json)
		fprintf(f, "]}\n");
	free(x);
	return 0;
}

/* ---- flush, blocks, unblock ---- */

static int
do_flush(FILE *f, const struct rg_ops_info *in, const struct rg_ctl_req *r,
    char *why, size_t wlen)
{
	struct rg_cache	*cache = rg_engine_cache(in->engine);
	struct rg_addr	 a;
	char		 esc[RG_PATH_MAX + 1];
	size_t		 i;

	if (r->cmd == RG_CTL_FLUSH_ALL) {
		unsigned long long n = rg_cache_flush_all(cache);

		rg_info("control: flush --all: %llu entries dropped", n);
		fprintf(f, r->json ? "{\"flushed\":%llu}\n" :
		    "flushed %llu entries\n", n);
		return 0;
	}
	for (i = 0; i < r->nargs; i++)
		if (rg_addr_parse(r->args[i], &a) != RG_ADDR_OK) {
			rg_log_escape(esc, sizeof(esc), r->args[i]);
			(void)snprintf(why, wlen, "%s: not an address", esc);
			return -1;
		}
	if (r->json)
		fputc('[', f);
	for (i = 0; i < r->nargs; i++) {
		bool	had;

		(void)rg_addr_parse(r->args[i], &a);
		had = rg_cache_flush(cache, a.address);
		rg_log_escape(esc, sizeof(esc), a.address);
		rg_info("control: flush %s: %s", esc, had ? "dropped" :
		    "not cached");
		if (r->json) {
			fprintf(f, "%s{\"address\":", i ? "," : "");
			rg_json_str(f, a.address);
			fprintf(f, ",\"was_cached\":%s}", had ? "true" : "false");
		} else
			fprintf(f, "%s: %s\n", esc, had ? "flushed" :
			    "not in the cache");
	}
	if (r->json)
		fputs("]\n", f);
	return 0;
}

/* "PREFIX\tSTATE\tcount=N\tuntil=T" lines to JSON objects. */
static void
blocks_json(FILE *f, char *text)
{
	char	*line, *save = NULL;
	int	 n = 0;

	fputc('[', f);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char	*fs[4] = { 0 }, *p = line;

		for (int i = 0; i < 4 && p != NULL; i++) {
			fs[i] = p;
			if ((p = strchr(p, '\t')) != NULL)
				*p++ = '\0';
		}
		fprintf(f, "%s{\"prefix\":", n++ ? "," : "");
		rg_json_str(f, fs[0]);
		fprintf(f, ",\"state\":");
		rg_json_str(f, fs[1] ? fs[1] : "");
		for (int i = 2; i < 4; i++) {
			char *eq = fs[i] ? strchr(fs[i], '=') : NULL;

			if (eq == NULL)
				continue;
			*eq = '\0';
			fputc(',', f);
			rg_json_str(f, fs[i]);
			fputc(':', f);
			rg_json_str(f, eq + 1);
		}
		fputc('}', f);
	}
	fputs("]\n", f);
}

static int
do_blocks(FILE *f, const struct rg_ops_info *in, const struct rg_ctl_req *r,
    char *why, size_t wlen)
{
	struct rg_runtime	*rt = rg_engine_acquire(in->engine);
	struct rg_error		 err;
	char			*text = NULL;
	size_t			 len = 0;
	FILE			*m;
	int			 rc = 0;

	rg_error_clear(&err);
	if ((m = open_memstream(&text, &len)) == NULL) {
		rg_runtime_unref(rt);
		(void)snprintf(why, wlen, "out of memory");
		return -1;
	}
	if (r->cmd == RG_CTL_BLOCKS)
		rc = rg_harvest_list(rt->conf, m, &err) == 0 ? 0 : -1;
	else {
		char	esc[128];
		int	u = rg_harvest_unblock(rt->conf, r->args[0], &err);

		rg_log_escape(esc, sizeof(esc), r->args[0]);
		rg_info("control: unblock %s: %s", esc, u > 0 ? "lifted" :
		    u == 0 ? "none" : "failed");
		if (u == 0)
			rg_error_set(&err, "%s: no block or counter", esc);
		else if (u > 0)
			fprintf(m, "unblocked %s\n", esc);
		rc = u > 0 ? 0 : -1;
	}
	(void)fclose(m);
	rg_runtime_unref(rt);
	if (rc != 0)
		(void)snprintf(why, wlen, "%s", err.msg);
	else if (r->json && r->cmd == RG_CTL_BLOCKS)
		blocks_json(f, text);
	else if (r->json)
		fprintf(f, "{\"unblocked\":true}\n");
	else
		fputs(text, f);
	free(text);
	return rc;
}

/* ---- the server ---- */

static int
dispatch(FILE *f, const struct rg_ops_info *in, const struct rg_ctl_req *r,
    char *why, size_t wlen)
{
	switch (r->cmd) {
	case RG_CTL_STATUS:
		rg_control_status(f, in, r->json);
		return 0;
	case RG_CTL_FLUSH:
	case RG_CTL_FLUSH_ALL:
		return do_flush(f, in, r, why, wlen);
	case RG_CTL_EXPLAIN:
		return do_explain(f, in, r, why, wlen);
	case RG_CTL_BLOCKS:
	case RG_CTL_UNBLOCK:
		return do_blocks(f, in, r, why, wlen);
	case RG_CTL_RELOAD:
		/* our signal thread sigwaits on SIGUSR1 (main.c) */
		rg_info("control: reload requested");
		atomic_fetch_add(&rg_opstats_reloads, 1);
		(void)kill(getpid(), SIGUSR1);
		fputs(r->json ? "{\"reload\":\"requested\"}\n" :
		    "reload requested; the log says whether it took\n", f);
		return 0;
	}
	return -1;
}

static void
write_all(int fd, const char *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void
serve_one(int fd, const struct rg_ops_info *in)
{
	static struct rg_ctl_req req;	/* one client at a time */
	char		 line[RG_CTL_LINE_MAX + 2], why[RG_ERROR_MAX + 16];
	char		*body = NULL;
	size_t		 got = 0, blen = 0;
	ssize_t		 n;
	FILE		*m;
	int		 rc;

	while (got < sizeof(line) && memchr(line, '\n', got) == NULL) {
		n = read(fd, line + got, sizeof(line) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	why[0] = '\0';
	if (memchr(line, '\n', got) == NULL)
		rc = -1, (void)snprintf(why, sizeof(why), "no complete "
		    "request line");
	else
		rc = rg_ctl_parse(line, (size_t)((char *)memchr(line, '\n',
		    got) - line), &req, why, sizeof(why));
	if ((m = open_memstream(&body, &blen)) == NULL)
		return;
	if (rc == 0)
		rc = dispatch(m, in, &req, why, sizeof(why));
	(void)fclose(m);
	if (rc != 0) {
		for (char *p = why; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		write_all(fd, "error\t", 6);
		write_all(fd, why, strlen(why));
		write_all(fd, "\n", 1);
	} else {
		write_all(fd, "ok\n", 3);
		write_all(fd, body, blen);
	}
	free(body);
}

struct ctl_thread {
	int			 fd;
	const struct rg_ops_info *info;
};

static void *
control_thread(void *arg)
{
	struct ctl_thread	*t = arg;
	struct timeval		 tv = { IO_TIMEOUT_S, 0 };
	int			 c;

	for (;;) {
		c = accept4(t->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				rg_sleep_ms(100);
			continue;
		}
		(void)setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void)setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		serve_one(c, t->info);
		(void)close(c);
	}
	return NULL;
}

int
rg_control_start(int fd, const struct rg_ops_info *info)
{
	static struct ctl_thread t;
	pthread_t		 tid;

	t.fd = fd;
	t.info = info;
	if (pthread_create(&tid, NULL, control_thread, &t) != 0)
		return -1;
	(void)pthread_detach(tid);
	return 0;
}
