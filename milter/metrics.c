/* SPDX-License-Identifier: MIT */
/*
 * The Prometheus endpoint: GET /metrics in the text exposition format
 * (version 0.0.4), served by libmicrohttpd on its own thread.
 *
 * A scrape reads counters only: atomics (decisions, connections,
 * backend lookups and latencies, each target's recorded up/down state,
 * whose error text sits behind a leaf lock held for a copy), the
 * cache's and the limiter's stats
 * (each a brief lock that no lookup ever holds across I/O) and /proc.
 * It never calls a backend, so a dead directory cannot stall it.
 */
#include <dirent.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backend.h"
#include "backend_stats.h"
#include "log.h"
#include "ops.h"
#include "opstats.h"

static struct MHD_Daemon	*mhd;

/* Prometheus label value: escape \, " and newline. */
static void
label(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void
head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
write_decisions(FILE *f)
{
	const struct rg_decision_stat	*d;

	head(f, "rcptgate_decisions_total", "counter", "Recipients decided "
	    "at RCPT, by verdict and by the backend, cache or rule that "
	    "decided.");
	for (unsigned i = 0; (d = rg_opstats_decision_slot(i)) != NULL; i++) {
		fprintf(f, "rcptgate_decisions_total{verdict=");
		label(f, d->verdict);
		fprintf(f, ",decided_by=");
		label(f, d->by);
		fprintf(f, "} %llu\n", (unsigned long long)atomic_load(&d->n));
	}
	head(f, "rcptgate_milter_connections_total", "counter",
	    "Milter connections opened by the MTA.");
	fprintf(f, "rcptgate_milter_connections_total %llu\n",
	    (unsigned long long)atomic_load(&rg_opstats_milter_connections));
	head(f, "rcptgate_milter_connections", "gauge",
	    "Milter connections open now.");
	fprintf(f, "rcptgate_milter_connections %lld\n",
	    (long long)atomic_load(&rg_opstats_milter_active));
	head(f, "rcptgate_policy_connections_total", "counter",
	    "Postfix policy connections opened.");
	fprintf(f, "rcptgate_policy_connections_total %llu\n",
	    (unsigned long long)atomic_load(&rg_opstats_policy_connections));
	head(f, "rcptgate_policy_connections", "gauge",
	    "Postfix policy connections open now.");
	fprintf(f, "rcptgate_policy_connections %lld\n",
	    (long long)atomic_load(&rg_opstats_policy_active));
	head(f, "rcptgate_policy_requests_total", "counter",
	    "Postfix policy requests answered.");
	fprintf(f, "rcptgate_policy_requests_total %llu\n",
	    (unsigned long long)atomic_load(&rg_opstats_policy_requests));
	head(f, "rcptgate_policy_protocol_errors_total", "counter",
	    "Postfix policy connections closed for a bad or stalled request.");
	fprintf(f, "rcptgate_policy_protocol_errors_total %llu\n",
	    (unsigned long long)atomic_load(&rg_opstats_policy_protocol_errors));
}

static void
write_backend_hist(FILE *f, const struct rg_bstat *s)
{
	unsigned long long	cum = 0;

	for (unsigned b = 0; b <= RG_BSTAT_NBUCKETS; b++) {
		cum += atomic_load(&s->bucket[b]);
		fprintf(f, "rcptgate_backend_lookup_duration_seconds_bucket"
		    "{backend=");
		label(f, s->name);
		if (b < RG_BSTAT_NBUCKETS)
			fprintf(f, ",le=\"%g\"} %llu\n",
			    (double)rg_bstat_bounds_us[b] / 1e6, cum);
		else
			fprintf(f, ",le=\"+Inf\"} %llu\n", cum);
	}
	fprintf(f, "rcptgate_backend_lookup_duration_seconds_sum{backend=");
	label(f, s->name);
	fprintf(f, "} %.6f\n", (double)atomic_load(&s->sum_us) / 1e6);
	fprintf(f, "rcptgate_backend_lookup_duration_seconds_count{backend=");
	label(f, s->name);
	fprintf(f, "} %llu\n", cum);
}

static void
write_backends(FILE *f)
{
	const struct rg_bstat	*s;
	unsigned		 i;

	head(f, "rcptgate_backend_lookups_total", "counter",
	    "Backend lookups by result (found, notfound, failed).");
	for (i = 0; (s = rg_bstat_slot(i)) != NULL; i++) {
		const char *const res[] = { "found", "notfound", "failed" };
		unsigned long long v[] = { atomic_load(&s->found),
		    atomic_load(&s->notfound), atomic_load(&s->failures) };

		for (int r = 0; r < 3; r++) {
			fprintf(f, "rcptgate_backend_lookups_total{backend=");
			label(f, s->name);
			fprintf(f, ",type=");
			label(f, s->type);
			fprintf(f, ",result=\"%s\"} %llu\n", res[r], v[r]);
		}
	}
	head(f, "rcptgate_backend_failures_total", "counter",
	    "Backend lookups that failed (timeout, down, misconfigured).");
	for (i = 0; (s = rg_bstat_slot(i)) != NULL; i++) {
		fprintf(f, "rcptgate_backend_failures_total{backend=");
		label(f, s->name);
		fprintf(f, "} %llu\n",
		    (unsigned long long)atomic_load(&s->failures));
	}
	head(f, "rcptgate_backend_up", "gauge", "1 if the backend's last "
	    "lookup got an answer, 0 if it failed (absent before any).");
	for (i = 0; (s = rg_bstat_slot(i)) != NULL; i++) {
		if (atomic_load(&s->up) < 0)
			continue;
		fprintf(f, "rcptgate_backend_up{backend=");
		label(f, s->name);
		fprintf(f, "} %d\n", atomic_load(&s->up));
	}
	head(f, "rcptgate_backend_lookup_duration_seconds", "histogram",
	    "Time of one backend lookup.");
	for (i = 0; (s = rg_bstat_slot(i)) != NULL; i++)
		write_backend_hist(f, s);
}

static void
counter(FILE *f, const char *name, const char *help, unsigned long long v)
{
	head(f, name, "counter", help);
	fprintf(f, "%s %llu\n", name, v);
}

static void
gauge(FILE *f, const char *name, const char *help, double v)
{
	head(f, name, "gauge", help);
	fprintf(f, "%s %.17g\n", name, v);
}

static void
write_core(FILE *f, const struct rg_ops_info *in)
{
	struct rg_cache_stats	cs;
	struct rg_harvest_stats	hs;
	struct rg_counters	ct;
	struct rg_harvest	*h = rg_engine_harvest(in->engine);

	rg_cache_stats(rg_engine_cache(in->engine), &cs);
	memset(&hs, 0, sizeof(hs));
	if (h != NULL)
		rg_harvest_stats(h, &hs);
	rg_engine_counters(in->engine, &ct);
	counter(f, "rcptgate_cache_hits_total", "Cache lookups answered "
	    "from the cache.", cs.hits);
	counter(f, "rcptgate_cache_misses_total", "Cache lookups that had to "
	    "ask the backends.", cs.misses);
	counter(f, "rcptgate_cache_stale_answers_total", "Stale positive "
	    "entries used while every backend failed (outage mode).",
	    cs.stale_used);
	counter(f, "rcptgate_cache_evictions_total", "Entries evicted for "
	    "[cache] size.", cs.evictions);
	gauge(f, "rcptgate_cache_entries", "Entries in the cache now.",
	    (double)cs.entries);
	counter(f, "rcptgate_harvest_unknown_recipients_total", "Recipients "
	    "refused as unknown (what the harvest limits count).",
	    ct.rejected);
	counter(f, "rcptgate_harvest_blocked_recipients_total", "Recipients "
	    "refused because their client is blocked.", ct.blocked);
	counter(f, "rcptgate_harvest_blocks_total", "Client blocks issued.",
	    hs.blocks);
	gauge(f, "rcptgate_harvest_blocked_clients", "Client prefixes "
	    "blocked now.", (double)hs.blocked);
	gauge(f, "rcptgate_harvest_tracked_clients", "Client prefixes "
	    "counted now.", (double)hs.clients);
	gauge(f, "rcptgate_harvest_tarpit_sessions", "Sessions in a "
	    "tarpit now.", (double)hs.tarpit_active);
	counter(f, "rcptgate_harvest_evictions_total", "Client entries "
	    "dropped for [harvest] max_clients.", hs.evicted);
	counter(f, "rcptgate_harvest_store_errors_total", "Failed writes "
	    "of the harvest state store.", hs.store_errors);
}

static int
count_fds(void)
{
	DIR		*d = opendir("/proc/self/fd");
	struct dirent	*e;
	int		 n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	(void)closedir(d);
	return n - 1;	/* the DIR's own */
}

static void
write_process(FILE *f, const struct rg_ops_info *in)
{
	unsigned long	utime = 0, stime = 0, vsize = 0;
	long		rss = 0, tck = sysconf(_SC_CLK_TCK);
	struct rlimit	rl;
	char		buf[1024], *p;
	FILE		*st = fopen("/proc/self/stat", "r");
	int		fds;

	if (st != NULL) {
		if (fgets(buf, sizeof(buf), st) != NULL &&
		    (p = strrchr(buf, ')')) != NULL)
			(void)sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u "
			    "%*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u "
			    "%lu %ld", &utime, &stime, &vsize, &rss);
		(void)fclose(st);
	}
	gauge(f, "process_start_time_seconds", "Start time of the process "
	    "since the Unix epoch.", (double)in->started);
	head(f, "process_cpu_seconds_total", "counter", "User and system "
	    "CPU time spent.");
	fprintf(f, "process_cpu_seconds_total %.2f\n",
	    (double)(utime + stime) / (double)(tck > 0 ? tck : 100));
	gauge(f, "process_resident_memory_bytes", "Resident memory size.",
	    (double)rss * (double)sysconf(_SC_PAGESIZE));
	gauge(f, "process_virtual_memory_bytes", "Virtual memory size.",
	    (double)vsize);
	if ((fds = count_fds()) >= 0)
		gauge(f, "process_open_fds", "Open file descriptors.",
		    (double)fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		gauge(f, "process_max_fds", "Limit of open file descriptors.",
		    (double)rl.rlim_cur);
	head(f, "rcptgate_build_info", "gauge", "Always 1; the version in "
	    "a label.");
	fprintf(f, "rcptgate_build_info{version=\"%s\"} 1\n", RG_VERSION);
}

/*
 * Each target (URI, host, file) of each backend of the running
 * configuration: the state its driver recorded, read without a lookup
 * (rg_backend_targets never waits on a backend). Absent until tried.
 */
static void
write_targets(FILE *f, const struct rg_ops_info *in)
{
	struct rg_runtime	*rt = rg_engine_acquire(in->engine);
	struct rg_target_state	 ts[RG_TARGETS_MAX];
	size_t			 i, k, n;

	head(f, "rcptgate_backend_target_up", "gauge", "1 if the backend's "
	    "URI, host or file answered when last tried, 0 if it failed "
	    "(absent before any try).");
	for (i = 0; i < rt->nbackends; i++) {
		n = rg_backend_targets(rt->backends[i], ts, RG_TARGETS_MAX);
		for (k = 0; k < n; k++) {
			if (ts[k].up < 0)
				continue;
			fprintf(f, "rcptgate_backend_target_up{backend=");
			label(f, rt->backends[i]->name);
			fprintf(f, ",target=");
			label(f, ts[k].target);
			fprintf(f, "} %d\n", ts[k].up);
		}
	}
	rg_runtime_unref(rt);
}

void
rg_metrics_write(FILE *f, const struct rg_ops_info *in)
{
	write_decisions(f);
	write_core(f, in);
	write_backends(f);
	write_targets(f, in);
	write_process(f, in);
}

static enum MHD_Result
answer(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_len, void **con_cls)
{
	const struct rg_ops_info *in = cls;
	struct MHD_Response	*resp;
	enum MHD_Result		 ret;
	char			*body = NULL;
	size_t			 len = 0;
	unsigned		 code = MHD_HTTP_OK;
	FILE			*m;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
		body = strdup("GET only\n");
	} else if (strcmp(url, "/metrics") != 0) {
		code = MHD_HTTP_NOT_FOUND;
		body = strdup("not found: try /metrics\n");
	} else if ((m = open_memstream(&body, &len)) != NULL) {
		rg_metrics_write(m, in);
		(void)fclose(m);
	}
	if (body == NULL)
		return MHD_NO;
	len = strlen(body);
	resp = MHD_create_response_from_buffer(len, body,
	    MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	(void)MHD_add_response_header(resp, "Content-Type", code ==
	    MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8" :
	    "text/plain");
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

int
rg_metrics_start(const struct rg_conf *c, const struct rg_ops_info *in,
    struct rg_error *err)
{
	struct sockaddr_storage	ss;
	unsigned		flags = MHD_USE_INTERNAL_POLLING_THREAD |
				    MHD_USE_ERROR_LOG;

	if (c->metrics_listen == NULL || c->metrics_listen[0] == '\0')
		return 0;
	if (rg_conf_parse_listen(c->metrics_listen, &ss) != 0) {
		rg_error_set(err, "%s: [metrics] listen: bad address '%s'",
		    c->path, c->metrics_listen);
		return -1;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	mhd = MHD_start_daemon(flags, 0, NULL, NULL, answer, (void *)in,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, 16U,
	    MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
	if (mhd == NULL) {
		rg_error_set(err, "[metrics] listen = %s: cannot listen (in "
		    "use, or not an address of this host)", c->metrics_listen);
		return -1;
	}
	return 0;
}

void
rg_metrics_stop(void)
{
	if (mhd != NULL)
		MHD_stop_daemon(mhd);
	mhd = NULL;
}
