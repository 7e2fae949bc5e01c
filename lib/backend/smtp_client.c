/* SPDX-License-Identifier: MIT */
/*
 * A small blocking SMTP client with per-call deadlines, and its reply
 * parser.
 *
 * Every socket is non-blocking; each wait is a poll() bounded by the
 * caller's deadline, so a server that accepts TCP and then says nothing
 * costs at most the deadline. The parser is a pure function over a byte
 * buffer (fuzzed by test/fuzz/fuzz_smtp_reply.c). This module must not
 * write a command holding CR, LF or NUL or a path holding '<' or '>':
 * both are checked before anything is written.
 *
 * Locking: none; a connection is used by one thread at a time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rg_time.h"
#include "smtp_client.h"

struct rg_smtp_conn {
	int	fd;
	char	peer[INET6_ADDRSTRLEN + 16];	/* "[addr]:port" for logs */
	size_t	rlen;				/* bytes buffered in rbuf */
	char	rbuf[RG_SMTP_REPLY_MAX];
};

/* ---- the parser ---- */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Parse an RFC 3463 enhanced status code "C.S.D" at s[0..len) whose class
 * must equal the reply's first digit; on success store it and return the
 * length taken (code and one following space), else 0.
 */
static size_t
parse_enhanced(const char *s, size_t len, int first, int enh[3])
{
	size_t	i = 0;
	int	v[3];

	for (int part = 0; part < 3; part++) {
		size_t	start = i;
		int	n = 0;

		while (i < len && is_digit(s[i]) && i - start < 3)
			n = n * 10 + (s[i++] - '0');
		if (i == start || (i < len && is_digit(s[i])))
			return 0;
		if (part == 0 && i - start != 1)
			return 0;
		v[part] = n;
		if (part < 2) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return 0;
	if (v[0] != first)
		return 0;
	memcpy(enh, v, sizeof(v));
	return i < len ? i + 1 : i;
}

/* Copy a line's text for logs: control bytes become '?', cut with "...". */
static void
copy_text(struct rg_smtp_reply *out, const char *s, size_t len)
{
	size_t	room = sizeof(out->text) - 1;
	size_t	n = len;

	out->text_truncated = false;
	if (n > room) {
		n = room - 3;
		out->text_truncated = true;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char	c = (unsigned char)s[i];

		out->text[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (out->text_truncated) {
		memcpy(out->text + n, "...", 3);
		n += 3;
	}
	out->text[n] = '\0';
}

/* Note an EHLO keyword ("SMTPUTF8", "SIZE 1000", ...) of one line. */
static void
note_keyword(struct rg_smtp_reply *out, const char *s, size_t len)
{
	static const char	kw[] = "SMTPUTF8";
	size_t			n = sizeof(kw) - 1;

	if (len >= n && strncasecmp(s, kw, n) == 0 &&
	    (len == n || s[n] == ' '))
		out->ext |= RG_SMTP_EXT_SMTPUTF8;
}

long
rg_smtp_reply_parse(const char *buf, size_t len, struct rg_smtp_reply *out)
{
	size_t	pos = 0;
	int	code = 0;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		const char	*line = buf + pos;
		size_t		 avail = len - pos, n, end;
		const char	*lf;
		int		 c;
		bool		 last;

		/* Fail early on a bad start, before the line is complete. */
		for (size_t i = 0; i < avail && i < 3; i++)
			if (!is_digit(line[i]))
				return -1;
		if (avail >= 1 && (line[0] < '2' || line[0] > '5'))
			return -1;
		if (avail >= 4 && line[3] != ' ' && line[3] != '-' &&
		    line[3] != '\r' && line[3] != '\n')
			return -1;
		lf = memchr(line, '\n', avail);
		if (memchr(line, '\0', lf != NULL ? (size_t)(lf - line) :
		    avail) != NULL)
			return -1;
		if (lf == NULL)
			return 0;
		n = (size_t)(lf - line);	/* without the LF */
		end = n;
		if (end > 0 && line[end - 1] == '\r')
			end--;
		if (end < 3)
			return -1;
		if (end > 3 && line[3] != ' ' && line[3] != '-')
			return -1;
		c = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (code != 0 && c != code)
			return -1;
		code = c;
		last = end == 3 || line[3] == ' ';
		out->nlines++;
		if (out->nlines > 1 && end > 4)
			note_keyword(out, line + 4, end - 4);
		if (end > 4) {
			int	enh[3];
			size_t	skip = parse_enhanced(line + 4, end - 4,
			    line[0] - '0', enh);

			if (skip > 0)
				memcpy(out->enh, enh, sizeof(enh));
			if (last)
				copy_text(out, line + 4 + skip, end - 4 - skip);
		} else if (last)
			copy_text(out, "", 0);
		pos += n + 1;
		if (last) {
			out->code = code;
			return (long)pos;
		}
	}
	return 0;
}

enum rg_smtp_rcpt
rg_smtp_rcpt_class(const struct rg_smtp_reply *r)
{
	if (r->code / 100 == 2)
		return RG_SMTP_RCPT_OK;
	if (r->code / 100 != 5)
		return RG_SMTP_RCPT_FAILED;
	if (r->enh[0] == 5)	/* 5.1.7, 5.1.8: the sender, not him */
		return r->enh[1] == 1 && r->enh[2] != 7 && r->enh[2] != 8 ?
		    RG_SMTP_RCPT_UNKNOWN : RG_SMTP_RCPT_FAILED;
	if (r->code == 550 || r->code == 551 || r->code == 553)
		return RG_SMTP_RCPT_UNKNOWN;
	return RG_SMTP_RCPT_FAILED;
}

bool
rg_smtp_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

bool
rg_smtp_path_ok(const char *s, size_t len)
{
	if (len > 256)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char	c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
			return false;
	}
	return true;
}

const char *
rg_smtp_status_str(enum rg_smtp_status st)
{
	switch (st) {
	case RG_SMTP_OK:		return "ok";
	case RG_SMTP_ERR_IO:		return "I/O error";
	case RG_SMTP_ERR_CLOSED:	return "connection closed by server";
	case RG_SMTP_ERR_TIMEOUT:	return "timed out";
	case RG_SMTP_ERR_PROTO:		return "protocol error";
	case RG_SMTP_ERR_ARG:		return "refused to send unsafe command";
	}
	return "unknown";
}

/* ---- the client ---- */

/* poll timeout for the time left, capped so it fits an int. */
static int
poll_ms(uint64_t deadline_ms)
{
	uint64_t	left = rg_ms_left(deadline_ms);

	return left > 600000 ? 600000 : (int)left;
}

/* Wait for events on fd until the deadline: 1 ready, 0 timeout, -1 error. */
static int
wait_fd(int fd, short events, uint64_t deadline_ms)
{
	struct pollfd	pfd = { .fd = fd, .events = events };

	for (;;) {
		int	ms = poll_ms(deadline_ms), r;

		if (ms == 0)
			return 0;
		r = poll(&pfd, 1, ms);
		if (r > 0)
			return 1;
		if (r == 0) {
			if (rg_ms_left(deadline_ms) == 0)
				return 0;
			continue;
		}
		if (errno != EINTR)
			return -1;
	}
}

static void
format_peer(const struct sockaddr *sa, char *dst, size_t len)
{
	char	a[INET6_ADDRSTRLEN] = "?";
	int	port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		port = ntohs(s6->sin6_port);
	}
	snprintf(dst, len, "[%s]:%d", a, port);
}

/* One connect attempt: 0 connected, else a status with err set. */
static enum rg_smtp_status
connect_one(const struct addrinfo *ai, uint64_t deadline_ms, int *fdp,
    const char *peer, struct rg_error *err)
{
	int		fd, soerr = 0, r;
	socklen_t	slen = sizeof(soerr);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		rg_error_set(err, "%s: socket: %s", peer, strerror(errno));
		return RG_SMTP_ERR_IO;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		if (errno != EINPROGRESS) {
			rg_error_set(err, "%s: connect: %s", peer,
			    strerror(errno));
			close(fd);
			return RG_SMTP_ERR_IO;
		}
		r = wait_fd(fd, POLLOUT, deadline_ms);
		if (r <= 0) {
			rg_error_set(err, "%s: connect: %s", peer,
			    r == 0 ? "timed out" : strerror(errno));
			close(fd);
			return r == 0 ? RG_SMTP_ERR_TIMEOUT : RG_SMTP_ERR_IO;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) == -1)
			soerr = errno;
		if (soerr != 0) {
			rg_error_set(err, "%s: connect: %s", peer,
			    strerror(soerr));
			close(fd);
			return RG_SMTP_ERR_IO;
		}
	}
	*fdp = fd;
	return RG_SMTP_OK;
}

enum rg_smtp_status
rg_smtp_connect(const char *host, const char *port, uint64_t deadline_ms,
    struct rg_smtp_conn **out, struct rg_error *err)
{
	struct addrinfo		 hints, *res = NULL;
	struct rg_smtp_conn	*c;
	enum rg_smtp_status	 st = RG_SMTP_ERR_IO;
	int			 gai, fd = -1;
	char			 peer[sizeof(c->peer)];

	*out = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0) {
		rg_error_set(err, "%s port %s: %s", host, port,
		    gai_strerror(gai));
		return RG_SMTP_ERR_IO;
	}
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		format_peer(ai->ai_addr, peer, sizeof(peer));
		st = connect_one(ai, deadline_ms, &fd, peer, err);
		if (st == RG_SMTP_OK || st == RG_SMTP_ERR_TIMEOUT)
			break;
	}
	freeaddrinfo(res);
	if (st != RG_SMTP_OK)
		return st;
	if ((c = malloc(sizeof(*c))) == NULL) {
		rg_error_set(err, "%s: out of memory", peer);
		close(fd);
		return RG_SMTP_ERR_IO;
	}
	c->fd = fd;
	c->rlen = 0;
	memcpy(c->peer, peer, sizeof(c->peer));
	*out = c;
	return RG_SMTP_OK;
}

enum rg_smtp_status
rg_smtp_read_reply(struct rg_smtp_conn *c, uint64_t deadline_ms,
    struct rg_smtp_reply *reply, struct rg_error *err)
{
	for (;;) {
		long	used = rg_smtp_reply_parse(c->rbuf, c->rlen, reply);
		ssize_t	n;
		int	r;

		if (used > 0) {
			c->rlen -= (size_t)used;
			memmove(c->rbuf, c->rbuf + used, c->rlen);
			return RG_SMTP_OK;
		}
		if (used < 0) {
			rg_error_set(err, "%s: malformed reply", c->peer);
			return RG_SMTP_ERR_PROTO;
		}
		if (c->rlen == sizeof(c->rbuf)) {
			rg_error_set(err, "%s: reply longer than %zu bytes",
			    c->peer, sizeof(c->rbuf));
			return RG_SMTP_ERR_PROTO;
		}
		r = wait_fd(c->fd, POLLIN, deadline_ms);
		if (r == 0) {
			rg_error_set(err, "%s: no reply: timed out", c->peer);
			return RG_SMTP_ERR_TIMEOUT;
		}
		if (r < 0) {
			rg_error_set(err, "%s: poll: %s", c->peer,
			    strerror(errno));
			return RG_SMTP_ERR_IO;
		}
		n = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
		if (n == 0) {
			rg_error_set(err, "%s: connection closed by server",
			    c->peer);
			return RG_SMTP_ERR_CLOSED;
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rg_error_set(err, "%s: read: %s", c->peer,
			    strerror(errno));
			return errno == ECONNRESET ? RG_SMTP_ERR_CLOSED :
			    RG_SMTP_ERR_IO;
		}
		c->rlen += (size_t)n;
	}
}

static enum rg_smtp_status
write_all(struct rg_smtp_conn *c, const char *buf, size_t len,
    uint64_t deadline_ms, struct rg_error *err)
{
	while (len > 0) {
		ssize_t	n = send(c->fd, buf, len, MSG_NOSIGNAL);
		int	r;

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			rg_error_set(err, "%s: write: %s", c->peer,
			    strerror(errno));
			return errno == EPIPE || errno == ECONNRESET ?
			    RG_SMTP_ERR_CLOSED : RG_SMTP_ERR_IO;
		}
		r = wait_fd(c->fd, POLLOUT, deadline_ms);
		if (r == 0) {
			rg_error_set(err, "%s: write: timed out", c->peer);
			return RG_SMTP_ERR_TIMEOUT;
		}
		if (r < 0) {
			rg_error_set(err, "%s: poll: %s", c->peer,
			    strerror(errno));
			return RG_SMTP_ERR_IO;
		}
	}
	return RG_SMTP_OK;
}

enum rg_smtp_status
rg_smtp_command(struct rg_smtp_conn *c, const char *verb, const char *path,
    uint64_t deadline_ms, struct rg_smtp_reply *reply, struct rg_error *err)
{
	return rg_smtp_command_params(c, verb, path, NULL, deadline_ms, reply,
	    err);
}

enum rg_smtp_status
rg_smtp_command_params(struct rg_smtp_conn *c, const char *verb,
    const char *path, const char *params, uint64_t deadline_ms,
    struct rg_smtp_reply *reply, struct rg_error *err)
{
	char			line[600];
	int			n;
	enum rg_smtp_status	st;

	if (params == NULL)
		params = "";
	if (strpbrk(verb, "\r\n") != NULL || strpbrk(params, "\r\n") != NULL ||
	    (path != NULL && !rg_smtp_path_ok(path, strlen(path)))) {
		rg_error_set(err, "refused to send %s: unsafe characters",
		    verb);
		return RG_SMTP_ERR_ARG;
	}
	if (path != NULL)
		n = snprintf(line, sizeof(line), "%s<%s>%s%s\r\n", verb, path,
		    *params != '\0' ? " " : "", params);
	else
		n = snprintf(line, sizeof(line), "%s\r\n", verb);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		rg_error_set(err, "refused to send %s: command too long", verb);
		return RG_SMTP_ERR_ARG;
	}
	st = write_all(c, line, (size_t)n, deadline_ms, err);
	if (st != RG_SMTP_OK)
		return st;
	return rg_smtp_read_reply(c, deadline_ms, reply, err);
}

const char *
rg_smtp_peer(const struct rg_smtp_conn *c)
{
	return c->peer;
}

int
rg_smtp_local(const struct rg_smtp_conn *c, char *buf, size_t size)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof(ss);
	const void		*a;
	int			rc;

	snprintf(buf, size, "?");
	if (getsockname(c->fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		a = &((struct sockaddr_in *)&ss)->sin_addr;
	else if (ss.ss_family == AF_INET6)
		a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	else
		return -1;
	rc = inet_ntop(ss.ss_family, a, buf, size) == NULL ? -1 : 0;
	if (rc != 0)
		snprintf(buf, size, "?");
	return rc;
}

void
rg_smtp_close(struct rg_smtp_conn *c, bool quit)
{
	if (c == NULL)
		return;
	/* Best effort: a full socket buffer or a dead peer just loses it. */
	if (quit && send(c->fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		(void)0;
	close(c->fd);
	free(c);
}
