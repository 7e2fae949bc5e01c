/* SPDX-License-Identifier: MIT */
/*
 * milterload: a load generator that speaks the milter wire protocol
 * (version 6) to a filter directly, as an MTA would, with no MTA: OPTNEG
 * (taking the filter's macro list and skipped steps), then per
 * connection transactions of CONNECT / HELO / MAIL as negotiated, the
 * RCPT-stage macros ({client_addr}, i) and many RCPTs, each transaction
 * ended with ABORT, and QUIT after a few. Every RCPT waits for its reply
 * (unless the filter negotiated SMFIP_NR_RCPT).
 *
 * Prints RCPT decisions per second, p50/p99 latency of an RCPT round
 * trip, the replies seen, and, given the filter's PID, its peak RSS
 * (VmHWM) and highest thread count sampled every 100 ms.
 *
 *   milterload -s unix:/path | -s inet:PORT@127.0.0.1  [-c CONNS]
 *       [-d SECONDS] [-n RCPTS_PER_MSG] [-m MSGS_PER_CONN] [-k KEYS]
 *       [-p PID] [-r RCPTS_PER_SEC] [-i SECONDS]
 *
 * -r caps the total RCPT rate over all connections (0, the default: no
 * cap); each connection paces itself at RATE/CONNS, so a long run need
 * not take every core. -i N (with -p) prints a line every N seconds:
 *   rss t=SECONDS vmrss_kib=K vmhwm_kib=K threads=N
 * with the filter's current VmRSS, VmHWM and thread count.
 *
 * Keys are u<i>@example.com, i < KEYS*1.1 (one in eleven unknown).
 * Threads: one per connection, no shared state but atomics. Bounded:
 * runs for -d seconds (at most 900), every socket has a 10 s timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NBUCKETS	(40 * 16)	/* log2 buckets, 16 steps each */
#define MAX_CONNS	1000
#define SMFIP_NOCONNECT	0x1
#define SMFIP_NOHELO	0x2
#define SMFIP_NOMAIL	0x4
#define SMFIP_NR_CONN	0x1000
#define SMFIP_NR_HELO	0x2000
#define SMFIP_NR_MAIL	0x4000
#define SMFIP_NR_RCPT	0x8000

static const char	*sockspec;
static int		 nconns = 1, seconds = 5, nrcpt = 50, nmsg = 10;
static unsigned		 nkeys = 1000000;
static uint64_t		 pace_ns;	/* per connection per RCPT; 0: none */
static atomic_bool	 stop;
static atomic_uint_fast64_t total_rcpt, total_err, replies[4];
static uint64_t		 hist[NBUCKETS];
static pthread_mutex_t	 hist_lock = PTHREAD_MUTEX_INITIALIZER; /* hist */

static uint64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
bucket(uint64_t ns)
{
	int	b = 0;

	if (ns < 16)
		return (int)ns;
	while ((ns >> b) >= 32)
		b++;
	/* ns in [16<<b, 32<<b): 16 steps */
	return (b + 1) * 16 + (int)((ns >> b) - 16) < NBUCKETS ?
	    (b + 1) * 16 + (int)((ns >> b) - 16) : NBUCKETS - 1;
}

static uint64_t
bucket_ns(int i)
{
	if (i < 16)
		return (uint64_t)i;
	return (uint64_t)(16 + i % 16) << (i / 16 - 1);
}

static int
xwrite(int fd, const void *p, size_t n)
{
	const char	*s = p;
	ssize_t		 w;

	while (n > 0) {
		if ((w = write(fd, s, n)) <= 0) {
			if (w == -1 && errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
xread(int fd, void *p, size_t n)
{
	char	*s = p;
	ssize_t	 r;

	while (n > 0) {
		if ((r = read(fd, s, n)) <= 0) {
			if (r == -1 && errno == EINTR)
				continue;
			return -1;
		}
		s += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Send one packet: cmd and len bytes of data, in one write. */
static int
send_pkt(int fd, char cmd, const void *data, size_t len)
{
	char		buf[2048];
	uint32_t	n = htonl((uint32_t)len + 1);

	if (len + 5 > sizeof(buf))
		return -1;
	memcpy(buf, &n, 4);
	buf[4] = cmd;
	memcpy(buf + 5, data, len);
	return xwrite(fd, buf, len + 5);
}

/* Read one packet into buf (NUL-terminated); its command, or -1. */
static int
recv_pkt(int fd, char *buf, size_t size, size_t *len)
{
	uint32_t	n;
	char		cmd;

	if (xread(fd, &n, 4) == -1)
		return -1;
	n = ntohl(n);
	if (n < 1 || n > size)
		return -1;
	if (xread(fd, &cmd, 1) == -1 || xread(fd, buf, n - 1) == -1)
		return -1;
	buf[n - 1] = '\0';
	*len = n - 1;
	return (unsigned char)cmd;
}

static int
dial(void)
{
	struct sockaddr_un	sun;
	struct sockaddr_in	sin;
	struct timeval		tv = { 10, 0 };
	int			fd, one = 1;

	if (strncmp(sockspec, "unix:", 5) == 0) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
		    sockspec + 5);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
			return -1;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
			close(fd);
			return -1;
		}
		return fd;
	}
	/* inet:PORT@127.0.0.1 */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(sockspec + 5));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* An MTA may or may not; we write whole packets anyway. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

struct worker {
	pthread_t	th;
	uint64_t	seed;
	uint64_t	next;		/* -r: when the next RCPT may go */
	uint64_t	hist[NBUCKETS];
};

/*
 * -r: wait until this connection's next RCPT is due. A connection that
 * fell more than a second behind (a stall, a reconnect) starts afresh
 * rather than bursting to catch up.
 */
static void
pace(struct worker *w)
{
	struct timespec	ts;
	uint64_t	t = now_ns();

	if (pace_ns == 0)
		return;
	if (w->next == 0 || t > w->next + 1000000000u)
		w->next = t;
	if (w->next > t) {
		ts.tv_sec = (time_t)(w->next / 1000000000u);
		ts.tv_nsec = (long)(w->next % 1000000000u);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
		    NULL) == EINTR)
			;
	}
	w->next += pace_ns;
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Expect a reply that is not a modification: 'c' 'y' 'r' 't' ... */
static int
reply(int fd)
{
	char	buf[4096];
	size_t	len;
	int	c = recv_pkt(fd, buf, sizeof(buf), &len);

	switch (c) {
	case 'c': atomic_fetch_add(&replies[0], 1); return 0;
	case 'y':
		atomic_fetch_add(&replies[buf[0] == '5' ? 1 : 2], 1);
		return 0;
	case 'r': atomic_fetch_add(&replies[1], 1); return 0;
	case 't': atomic_fetch_add(&replies[2], 1); return 0;
	case -1: return -1;
	default: atomic_fetch_add(&replies[3], 1); return 0;
	}
}

/* One connection: OPTNEG, nmsg transactions, QUIT. -1 on error. */
static int
session(struct worker *w)
{
	char		 buf[4096], pkt[600];
	uint32_t	 opt[3], got[3];
	size_t		 len, n;
	uint32_t	 steps;
	uint64_t	 t0;
	int		 fd, m, i, ret = -1;

	if ((fd = dial()) == -1)
		return -1;
	opt[0] = htonl(6);
	opt[1] = htonl(0x1ff);
	opt[2] = htonl(0x1fffff);
	if (send_pkt(fd, 'O', opt, sizeof(opt)) == -1 ||
	    recv_pkt(fd, buf, sizeof(buf), &len) != 'O' || len < 12)
		goto out;
	memcpy(got, buf, 12);
	steps = ntohl(got[2]);
	for (m = 0; m < nmsg && !atomic_load(&stop); m++) {
		if (!(steps & SMFIP_NOCONNECT)) {
			static const char c[] = "client.example.test\0" "4"
			    "\x00\x19" "127.0.0.1";
			if (send_pkt(fd, 'C', c, sizeof(c)) == -1 ||
			    (!(steps & SMFIP_NR_CONN) && reply(fd) == -1))
				goto out;
		}
		if (!(steps & SMFIP_NOHELO)) {
			if (send_pkt(fd, 'H', "client.example.test", 20) == -1
			    || (!(steps & SMFIP_NR_HELO) && reply(fd) == -1))
				goto out;
		}
		if (!(steps & SMFIP_NOMAIL)) {
			if (send_pkt(fd, 'M', "<sender@example.net>", 21) == -1
			    || (!(steps & SMFIP_NR_MAIL) && reply(fd) == -1))
				goto out;
		}
		for (i = 0; i < nrcpt && !atomic_load(&stop); i++) {
			/* Macros and RCPT in one write, as an MTA's buffer. */
			static const char mac[] = "R{client_addr}\0" "127.0.0.1"
			    "\0i\0" "4XyZ1\0";
			char	 rc[80];
			uint32_t l;
			int	 rl;

			pace(w);
			if (atomic_load(&stop))
				break;
			rl = snprintf(rc, sizeof(rc), "<u%u@example.com>",
			    (unsigned)(rnd(&w->seed) % (nkeys + nkeys / 10)));
			/* Without the literal's own NUL: an odd count of
			 * strings crashes libmilter's smfi_getsymval. */
			l = htonl((uint32_t)sizeof(mac));
			memcpy(pkt, &l, 4);
			pkt[4] = 'D';
			memcpy(pkt + 5, mac, sizeof(mac) - 1);
			n = 4 + sizeof(mac);
			l = htonl((uint32_t)rl + 2);
			memcpy(pkt + n, &l, 4);
			pkt[n + 4] = 'R';
			memcpy(pkt + n + 5, rc, (size_t)rl + 1);
			n += 5 + (size_t)rl + 1;
			t0 = now_ns();
			if (xwrite(fd, pkt, n) == -1 ||
			    (!(steps & SMFIP_NR_RCPT) && reply(fd) == -1))
				goto out;
			w->hist[bucket(now_ns() - t0)]++;
			atomic_fetch_add(&total_rcpt, 1);
		}
		if (send_pkt(fd, 'A', "", 0) == -1)
			goto out;
	}
	(void)send_pkt(fd, 'Q', "", 0);
	ret = 0;
out:
	close(fd);
	return ret;
}

static void *
work(void *p)
{
	struct worker	*w = p;
	int		 fails = 0;

	while (!atomic_load(&stop)) {
		if (session(w) == -1) {
			atomic_fetch_add(&total_err, 1);
			if (++fails > 100)
				break;
			usleep(10000);
		}
	}
	pthread_mutex_lock(&hist_lock);
	for (int i = 0; i < NBUCKETS; i++)
		hist[i] += w->hist[i];
	pthread_mutex_unlock(&hist_lock);
	return NULL;
}

/*
 * VmHWM (kB) and the highest Threads of pid so far; with rss and cur
 * non-NULL also the current VmRSS (kB) and Threads. Unchanged if unknown.
 */
static void
proc_status(long pid, long *hwm, long *threads, long *rss, long *cur)
{
	char	path[64], line[256];
	FILE	*f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmHWM:", 6) == 0)
			*hwm = atol(line + 6);
		else if (rss != NULL && strncmp(line, "VmRSS:", 6) == 0)
			*rss = atol(line + 6);
		else if (strncmp(line, "Threads:", 8) == 0) {
			long t = atol(line + 8);
			if (t > *threads)
				*threads = t;
			if (cur != NULL)
				*cur = t;
		}
	}
	fclose(f);
}

static uint64_t
percentile(uint64_t total, double q)
{
	uint64_t	want = (uint64_t)((double)total * q), acc = 0;

	for (int i = 0; i < NBUCKETS; i++) {
		acc += hist[i];
		if (acc > want)
			return bucket_ns(i);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct worker	*w;
	long		 pid = 0, hwm = 0, threads = 0, rss, cur;
	uint64_t	 t0, t1, total = 0;
	long		 rate = 0, interval = 0;
	int		 ch, i;

	while ((ch = getopt(argc, argv, "s:c:d:n:m:k:p:r:i:")) != -1) {
		switch (ch) {
		case 's': sockspec = optarg; break;
		case 'c': nconns = atoi(optarg); break;
		case 'd': seconds = atoi(optarg); break;
		case 'n': nrcpt = atoi(optarg); break;
		case 'm': nmsg = atoi(optarg); break;
		case 'k': nkeys = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'p': pid = atol(optarg); break;
		case 'r': rate = atol(optarg); break;
		case 'i': interval = atol(optarg); break;
		default: goto usage;
		}
	}
	if (sockspec == NULL || (strncmp(sockspec, "unix:", 5) != 0 &&
	    strncmp(sockspec, "inet:", 5) != 0) || nconns < 1 ||
	    nconns > MAX_CONNS || seconds < 1 || seconds > 900 || nrcpt < 1 ||
	    nmsg < 1 || nkeys < 10 || rate < 0 || rate > 100000000 ||
	    interval < 0 || interval > 900 || (interval > 0 && pid <= 0))
		goto usage;
	if (rate > 0)
		pace_ns = (uint64_t)nconns * 1000000000u / (uint64_t)rate;
	if ((w = calloc((size_t)nconns, sizeof(*w))) == NULL)
		return 1;
	t0 = now_ns();
	for (i = 0; i < nconns; i++) {
		w[i].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1) ^ t0;
		if (pthread_create(&w[i].th, NULL, work, &w[i]) != 0) {
			nconns = i;
			break;
		}
	}
	for (i = 0; i < seconds * 10; i++) {
		/* Sleep to the next 100 ms tick, not 100 ms: no drift. */
		uint64_t due = t0 + (uint64_t)(i + 1) * 100000000u, t = now_ns();

		if (due > t)
			usleep((useconds_t)((due - t) / 1000));
		if (pid <= 0)
			continue;
		if (interval > 0 && (i + 1) % (interval * 10) == 0) {
			rss = cur = 0;
			proc_status(pid, &hwm, &threads, &rss, &cur);
			printf("rss t=%ld vmrss_kib=%ld vmhwm_kib=%ld "
			    "threads=%ld\n", (long)(i + 1) / 10, rss, hwm, cur);
			fflush(stdout);
		} else
			proc_status(pid, &hwm, &threads, NULL, NULL);
	}
	atomic_store(&stop, true);
	for (i = 0; i < nconns; i++)
		pthread_join(w[i].th, NULL);
	t1 = now_ns();
	for (i = 0; i < NBUCKETS; i++)
		total += hist[i];
	printf("milter %s conns=%d keys=%u rcpt/s=%.0f p50_us=%.1f "
	    "p99_us=%.1f continue=%llu reject=%llu tempfail=%llu other=%llu "
	    "errors=%llu",
	    strncmp(sockspec, "unix:", 5) == 0 ? "unix" : "tcp", nconns, nkeys,
	    (double)atomic_load(&total_rcpt) * 1e9 / (double)(t1 - t0),
	    (double)percentile(total, 0.5) / 1000.0,
	    (double)percentile(total, 0.99) / 1000.0,
	    (unsigned long long)atomic_load(&replies[0]),
	    (unsigned long long)atomic_load(&replies[1]),
	    (unsigned long long)atomic_load(&replies[2]),
	    (unsigned long long)atomic_load(&replies[3]),
	    (unsigned long long)atomic_load(&total_err));
	if (pid > 0)
		printf(" rss_peak_kib=%ld threads_max=%ld", hwm, threads);
	printf("\n");
	free(w);
	return atomic_load(&total_rcpt) > 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage: milterload -s unix:PATH|inet:PORT@127.0.0.1 "
	    "[-c conns] [-d s] [-n rcpts] [-m msgs] [-k keys] [-p pid]\n"
	    "                  [-r rcpts_per_s] [-i sample_s]\n");
	return 2;
}
